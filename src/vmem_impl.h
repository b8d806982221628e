/*
 * vmem_impl.h — the arena's internal structures, shared by the files of src/
 * (vmem.c: the arena operations; vmem_tags.c: where tags come from;
 * vmem_stat.c: statistics and dump; vmem_panic.c: diagnostics) and by the
 * white-box tests and the invariant checker.  Not a public interface.
 *
 * The boundary tag, and why it is 48 bytes
 * ----------------------------------------
 * Every segment (span marker, free piece, allocated piece, rotor, walker,
 * free-list head) is one vmem_seg_t.  A tag must answer, in O(1):
 *   - where it is: start and end (16 bytes; end, not size, so that an
 *     adjacent-segment test is one comparison);
 *   - its address-order neighbours, for coalescing on free: next and prev
 *     (16 bytes);
 *   - its other list, which depends on the type and so shares one union:
 *     a free piece is on a doubly linked free list (16 bytes) — or, in
 *     an arena ordered for best fit, in a free tree (two children, the
 *     same 16 bytes) — an allocated
 *     piece on a singly linked hash chain (8), a span marker on the doubly
 *     linked span list (16).
 * The type (3 bits) rides in the low bits of the prev pointer: tags are
 * 8-byte aligned, so those bits are always zero in a real pointer.
 * The start and the list link come first, together: a hash-chain or
 * free-list walk reads just those 16 bytes of each tag, and 16 bytes at an
 * offset that is a multiple of 16 never straddle a cache line (48-byte tags
 * packed from a line boundary start at 0, 48, 32, 16 mod 64).
 * 16 + 16 + 16 = 48 bytes, with no padding.  In the "every other allocation
 * freed" layout each live allocation costs its own tag, the free tag beside
 * it and one hash bucket pointer (the table keeps the load between 1/2 and
 * 1, below 1/2 only until b/4 frees have passed): 2 x 48 + 8 = 104 bytes at
 * load 1, 112 at load 1/2.
 */
#ifndef QUANTA_VMEM_IMPL_H
#define QUANTA_VMEM_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "annotate.h"
#include "bugs.h"
#include "lockrank.h"
#include "locktab.h"
#include "platform.h"
#include "vmem.h"

#ifdef NDEBUG
#define VMEM_ASSERT(e) ((void)0)
#else
#define VMEM_ASSERT(e)                                                         \
	((e) ? (void)0 : vmem_assert_fail(#e, __FILE__, __LINE__))
#endif

/*
 * What an assertion may say about the locks this thread holds: the
 * witness's book (lockrank.h) counts them per rank, so "an arena lock is
 * held" is all it knows, not which arena's.  One macro per kind of object,
 * so that a change in how a lock is reached changes these lines only.
 * Without the witness (release, QUANTA_NO_WITNESS) they hold trivially.
 */
#if QLOCK_WITNESS
#define QLOCK_HELD(rank) (qlock_witness_held(rank) != 0)
#define QLOCK_NONE_HELD(rank) (qlock_witness_held(rank) == 0)
#else
#define QLOCK_HELD(rank) true
#define QLOCK_NONE_HELD(rank) true
#endif
#define ARENA_LOCK_HELD(vmp) ((void)(vmp), QLOCK_HELD(QLOCK_ARENA))
/* No arena lock at all: the state of a source call, a populate's
 * allocation, a reap (L1). */
#define ARENA_LOCKS_NONE() QLOCK_NONE_HELD(QLOCK_ARENA)

/* Segment types, kept in the low 3 bits of sg_prevtype. */
enum {
	SEG_SPARE = 0,  /* on a spare list, in no arena structure */
	SEG_ALLOC = 1,  /* allocated piece: on a hash chain */
	SEG_FREE = 2,   /* free piece: on a free list */
	SEG_SPAN = 3,   /* span marker of an added span: on the span list */
	SEG_ISPAN = 4,  /* span marker of an imported span */
	SEG_ROTOR = 5,  /* the next-fit rotor (a marker) */
	SEG_WALKER = 6, /* a reentrant walk's position (a marker) */
	SEG_HEAD = 7,   /* a list head or sentinel, never a resource */
};
#define SEG_TYPE_MASK ((uintptr_t)7)

typedef struct vmem_seg vmem_seg_t;
struct vmem_seg {
	uintptr_t sg_start;
	union {
		struct {
			vmem_seg_t *next;
			vmem_seg_t *prev;
		} sg_link;            /* free list (FREE) or span list (SPAN) */
		struct {
			vmem_seg_t *left;
			vmem_seg_t *right;
		} sg_tree;            /* free tree (FREE, ordered arenas) */
		vmem_seg_t *sg_hnext; /* hash chain (ALLOC) */
	};
	uintptr_t sg_end;
	vmem_seg_t *sg_next;      /* arena list: next in address order */
	uintptr_t sg_prevtype;    /* arena list: prev in address order | type */
};

_Static_assert(sizeof(vmem_seg_t) == 48, "the tag layout is derived as 48 bytes");

static inline int seg_type(const vmem_seg_t *s)
{
	return (int)(s->sg_prevtype & SEG_TYPE_MASK);
}

static inline vmem_seg_t *seg_prev(const vmem_seg_t *s)
{
	return (vmem_seg_t *)(s->sg_prevtype & ~SEG_TYPE_MASK);
}

static inline void seg_set_prev(vmem_seg_t *s, vmem_seg_t *p)
{
	s->sg_prevtype = (uintptr_t)p | (s->sg_prevtype & SEG_TYPE_MASK);
}

static inline void seg_set_type(vmem_seg_t *s, int t)
{
	s->sg_prevtype = (s->sg_prevtype & ~SEG_TYPE_MASK) | (uintptr_t)t;
}

static inline size_t seg_size(const vmem_seg_t *s)
{
	return s->sg_end - s->sg_start;
}

static inline bool seg_is_span(const vmem_seg_t *s)
{
	return seg_type(s) == SEG_SPAN || seg_type(s) == SEG_ISPAN;
}

static inline bool seg_is_marker(const vmem_seg_t *s)
{
	return seg_type(s) == SEG_ROTOR || seg_type(s) == SEG_WALKER;
}

/*
 * The tag reserve, derived.  An operation that may consume tags consumes at
 * most VMEM_SEGS_PER_OP: two for a new span (its marker and its free piece)
 * and two for a cut from the middle of a free segment (the allocated piece
 * and the free tail).  Before it starts it makes sure the arena holds
 * VMEM_MINFREE.  Why twice the per-operation worst case: while one
 * populate runs (they are serialized by the populate lock, so there is at
 * most one), the populate's own allocation passes through the populator
 * arenas (tags <- internal <- heap) and each may have to carry out one
 * allocation without being able to populate itself — that costs it up to
 * VMEM_SEGS_PER_OP on top of the operation it may have been in the middle of
 * when the populate began.  1 populate x 4 + 1 operation x 4 = 8.
 */
#define VMEM_SEGS_PER_OP 4
#define VMEM_MINFREE (1 * VMEM_SEGS_PER_OP + VMEM_SEGS_PER_OP)
/* planted bug QB_RESERVE_SHORT: the reserve checks accept one tag less */
#define VMEM_MINFREE_CHECK \
	((size_t)VMEM_MINFREE - (QUANTA_BUG(QB_RESERVE_SHORT) ? 1u : 0u))
/* An arena whose spare list exceeds this gives the surplus back. */
#define VMEM_SPARES_MAX 64
#define VMEM_SPARES_KEEP 32

/* At most this many quantum caches (one per multiple of the quantum). */
#define VMEM_QCACHE_MAX 16
#define VMEM_QCACHE_WIRED 1

#define VMEM_FREELISTS 64      /* one per power of two of a 64-bit size */
#define VMEM_HASH_INITIAL 16   /* embedded first hash table */
#define VMEM_NAMELEN 32
#define VMEM_BOOTSTRAP_SEGS 128 /* static tags before the first populate */
#define VMEM_POPULATE_BYTES (64 * 1024) /* tags carved per populate */

typedef struct vmem_kstat {
	uint64_t alloc, free, wait, fail, lookup, search, populate_fail,
	    contains, contains_search;
	size_t mem_inuse, mem_total, mem_import;
} vmem_kstat_t;

struct vmem {
	char ar_name[VMEM_NAMELEN];
	plat_mutex_t *ar_lock;   /* a slot of the lock table (locktab.h) */
	plat_cond_t ar_cv;
	int ar_cflags;           /* vmem_create's VMC_* bits */
	size_t ar_quantum;
	unsigned ar_qshift;      /* log2(ar_quantum) */
	size_t ar_qcache_max;    /* sizes up to this go to the quantum caches */
	struct umem_cache *ar_qcache[VMEM_QCACHE_MAX]; /* [k-1]: k quanta */
	vmem_alloc_t *ar_source_alloc;
	vmem_free_t *ar_source_free;
	vmem_t *ar_source;
	/* Grows the arena in place when nothing fits (the heap only). */
	void *(*ar_grow)(size_t size, size_t *lenp);
	_Atomic uint64_t ar_mtbf;
	uint64_t ar_freemap;     /* bit i set <=> free list i non-empty */
	bool ar_ordered;         /* free lists are trees (vmem.c: best fit) */
	vmem_seg_t *ar_found;    /* ordered: the last search's piece ... */
	vmem_seg_t **ar_found_link; /* ... and the link that points at it */
	vmem_seg_t ar_sentinel;      /* arena-list and span-list sentinel */
	vmem_seg_t ar_rotor;
	vmem_seg_t ar_freelist[VMEM_FREELISTS + 1]; /* heads i -> i+1; [64] ends */
	vmem_seg_t **ar_htab;
	size_t ar_htab_mask;     /* buckets - 1 */
	unsigned ar_htab_shift;  /* 64 - log2(buckets) */
	size_t ar_htab_count;    /* allocated pieces */
	size_t ar_htab_frees;    /* frees since the last rescale */
	bool ar_htab_rescaling;
	vmem_seg_t *ar_htab_embedded[VMEM_HASH_INITIAL];
	vmem_seg_t *ar_spares;   /* private tag reserve, linked by sg_next */
	size_t ar_nspares;
	vmem_seg_t *ar_stash;    /* spares set aside across a source call */
	size_t ar_nstash;
	size_t ar_nwalkers;
	size_t ar_nwaiters;      /* threads in a VM_SLEEP wait */
	vmem_kstat_t ar_kstat;
	vmem_t *ar_next;         /* the list of all arenas */
	vmem_t *ar_popnext;      /* the populator table (vmem_tags.c) */
	bool ar_static;          /* bootstrap arena: never destroyed */
};

/*
 * The transient states of an arena that a fork's child repairs (waiters,
 * a rescale, stashed tags, walkers: ar_nwaiters + ar_htab_rescaling +
 * ar_nstash + ar_nwalkers), counted in its lock's slot (locktab.h), so
 * that the child visits only the arenas that have one.  Under ar_lock.
 */
static inline unsigned *vmem_pending(vmem_t *vmp)
{
	return locktab_pending(vmp->ar_lock);
}

/*
 * The invariant checker (invariants/), linked into every variant but
 * release, runs after each public operation that changes an arena.  The
 * release build holds neither the checker nor the calls.
 */
#ifdef QUANTA_CHECKER
void invariant_after_op(vmem_t *vmp);
#define VMEM_CHECK(vmp) invariant_after_op(vmp)
/*
 * Arenas that hold tags while off vmem_list (a create before its insert, a
 * destroy after its remove, a bootstrap arena from taking its reserve to
 * its insert): the checker's conservation count (R3) cannot
 * see their tags, so it waits until there are none.  vmem_tags.c.
 */
extern _Atomic unsigned vmem_offlist_arenas;
#define VMEM_OFFLIST_ENTER() ((void)atomic_fetch_add(&vmem_offlist_arenas, 1u))
#define VMEM_OFFLIST_EXIT() ((void)atomic_fetch_sub(&vmem_offlist_arenas, 1u))
#else
#define VMEM_CHECK(vmp) ((void)0)
#define VMEM_OFFLIST_ENTER() ((void)0)
#define VMEM_OFFLIST_EXIT() ((void)0)
#endif

/* vmem_panic.c */
_Noreturn void vmem_panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
#ifndef NDEBUG
_Noreturn void vmem_assert_fail(const char *expr, const char *file, int line);
#endif

/* vmem_tags.c: where tags come from. */
void vmem_bootstrap(void);
/* Make sure vmp (locked) holds its reserve; VM_SLEEP waits until it does
 * (a populate may fail), VM_NOSLEEP and VM_PANIC return false. */
bool vmem_reserve(vmem_t *vmp, int vmflag);
void vmem_sleep_wait(vmem_t *vmp);
void vmem_spares_trim(vmem_t *vmp);
void vmem_spares_release_all(vmem_t *vmp);
bool vmem_populating_self(void);
/* A populate is running, on any thread (reaps must wait for its end). */
bool vmem_populate_in_progress(void);
/* Before listing a populator arena: its reserve, taken while no other
 * thread can see it (vmem_create). */
void vmem_populator_reserve(vmem_t *vmp);
/* The populator table, changed with the arena list under both its lock
 * and the populate lock, so that a fork sees an arena in both or in
 * neither (vmem_list_insert, vmem_list_remove). */
void vmem_populator_add(vmem_t *vmp);
void vmem_populator_remove(vmem_t *vmp);
#ifndef NDEBUG
/* Every populator arena's lock is listed for the fork lockup. */
bool vmem_populators_listed(void);
#endif
/* vmem.c: calls that failure injection spares while the thread is inside
 * (vmem_mtbf_set fails only the caller's own VM_NOSLEEP requests). */
void vmem_inject_spare_enter(void);
void vmem_inject_spare_exit(void);

/* Take a tag from the arena's reserve (which vmem_reserve has filled). */
static inline vmem_seg_t *vmem_seg_get(vmem_t *vmp)
{
	vmem_seg_t *s = vmp->ar_spares;
	if (s == NULL)
		vmem_panic("arena \"%s\": tag reserve exhausted", vmp->ar_name);
	vmp->ar_spares = s->sg_next;
	vmp->ar_nspares--;
	return s;
}

static inline void vmem_seg_put(vmem_t *vmp, vmem_seg_t *s)
{
	s->sg_prevtype = SEG_SPARE;
	s->sg_start = s->sg_end = 0;
	s->sg_next = vmp->ar_spares;
	vmp->ar_spares = s;
	vmp->ar_nspares++;
}

/* vmem_fork.c: the fork protocol (lockup before fork, release after). */
void vmem_lockup(void);
void vmem_release(void);
void vmem_fork_install(void);
/* In a fork's child, under Helgrind: this thread owns quanta's static data
 * and (heap_too) the heap arena's spans; elsewhere nothing. */
void vmem_fork_child_owns_memory(bool heap_too);
void vmem_tag_lock_enter(void);
void vmem_tag_lock_exit(void);
extern plat_mutex_t vmem_populate_lock;
/* In a fork's child: drop the other threads' walks of an arena (vmem.c). */
void vmem_child_fixup_arena(vmem_t *vmp, uintptr_t self);
/* Times the fork handlers were installed: 1 in a process that used quanta. */
extern _Atomic unsigned vmem_fork_handlers_installed;
/* Tests: called inside a populate, with the populate lock held. */
extern void (*vmem_test_populate_hook)(void);
/* Tests: called first thing in the vmem bootstrap, before the fork
 * handlers are installed (a fork mid-bootstrap, arranged). */
extern void (*vmem_test_bootstrap_hook)(void);
#if QLOCK_WITNESS
/* Tests: the prepare handler takes the populate lock before the list lock
 * (a wrong order, for the witness to catch). */
extern _Atomic bool vmem_fork_test_misorder;
#endif

/* vmem.c */
extern vmem_t *vmem_internal_arena;
extern vmem_t *vmem_seg_arena;
bool vmem_arena_init(vmem_t *vmp, const char *name, size_t quantum,
    vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag);
void vmem_list_insert(vmem_t *vmp);
void vmem_heap_setup(vmem_t *heap);

/* The list of all arenas (dump, lockup, the checker). */
extern plat_mutex_t vmem_list_lock;
extern vmem_t *vmem_list;

/* Global tag accounting, for the checker's conservation proof (R3). */
typedef struct vmem_tag_census {
	size_t created;      /* tags ever made: bootstrap + populated */
	size_t global_free;  /* on the global free list */
} vmem_tag_census_t;
void vmem_tag_census(vmem_tag_census_t *out);
#ifdef QUANTA_CHECKER
/* The census and the global free list's head; the caller holds the tag
 * lock (vmem_tag_lock_enter).  For the checker only. */
void vmem_tag_census_locked(vmem_tag_census_t *out,
    const vmem_seg_t **global_head);
/* The populating thread's id, 0 when none (R4); set: corruption tests. */
uintptr_t vmem_populator_thread(void);
void vmem_populator_thread_set(uintptr_t id);
#endif

/* Highest set bit, 1-based: highbit(1) == 1, highbit(0) == 0. */
static inline unsigned vmem_highbit(uint64_t x)
{
	return x == 0 ? 0 : 64u - (unsigned)__builtin_clzll(x);
}

/*
 * The allocated-segment hash bucket of a start address: Fibonacci hashing
 * of the address in quanta (consecutive allocations spread over buckets),
 * the top bits kept.  Shared with the checker (H1).
 */
static inline size_t vmem_hash_index(const vmem_t *vmp, uintptr_t addr)
{
	uint64_t x = (uint64_t)(addr >> vmp->ar_qshift);
	return (size_t)((x * 0x9e3779b97f4a7c15ull) >> vmp->ar_htab_shift);
}

static inline unsigned vmem_freelist_index(size_t size)
{
	return vmem_highbit(size) - 1;
}

/*
 * Ordered free lists (vmem.c, "Best fit").  In an arena with ar_ordered
 * set, free list i is a treap: ar_freelist[i].sg_tree.left is its root
 * (NULL when empty), a member's sg_tree holds its children (the place of
 * the list links).  Keys are (size, start), in search-tree order; the
 * priority of a piece is a hash of its start (a bijection, so priorities
 * are distinct), in heap order: a parent's above its children's.
 */
static inline uint64_t seg_priority(const vmem_seg_t *s)
{
	return (uint64_t)s->sg_start * 0x9e3779b97f4a7c15u;
}

/* Whether the key (size, start) comes before piece b in a free tree. */
static inline bool seg_key_before(size_t size, uintptr_t start,
    const vmem_seg_t *b)
{
	size_t sb = b->sg_end - b->sg_start;
	return size < sb || (size == sb && start < b->sg_start);
}

/* Whether piece a comes before piece b in a free tree. */
static inline bool seg_key_less(const vmem_seg_t *a, const vmem_seg_t *b)
{
	return seg_key_before(a->sg_end - a->sg_start, a->sg_start, b);
}

#endif /* QUANTA_VMEM_IMPL_H */
