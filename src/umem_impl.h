/*
 * umem_impl.h — the object caches' internal structures, shared by the
 * umem_*.c files of src/, the white-box tests and the invariant checker.
 * Not a public interface.
 *
 * Where a buffer can be, and the one place each structure lives
 * -------------------------------------------------------------
 * A cache's buffers are chunks of slabs; a slab is one piece the cache took
 * from its arena with vmem_xalloc (size and alignment cc_slab_bytes, a power
 * of two, so that the slab of a buffer is its address rounded down).  At any
 * instant a buffer is in exactly one of four places (invariant Q1):
 *   1. free in its slab: its bit in the slab's free map is set;
 *   2. a round of a magazine: loaded or previous magazine of a thread slot,
 *      or a full magazine in the depot;
 *   3. with a caller;
 *   4. (transiently, inside one call) in a local variable of the cache layer.
 * All the bookkeeping is out of band: slab headers (with their bitmaps),
 * magazines, slot tables and the slab hash come from the metadata arena
 * (umem_meta_arena) and never from the buffers.  That is one design for both
 * kinds of cache: a quantum cache's "buffers" may be integers that are not
 * memory (IDs), and a memory cache gets, for free, buffers that the
 * allocator never writes into (no free-list link to smash, nothing for
 * Valgrind to see us touch).  The price, one slab header per slab plus two
 * bits per buffer, is derived in umem_slab.c.
 *
 * Thread slots
 * ------------
 * Every thread that uses the caches gets a thread id from the identifier
 * arena umem_thread_ids (1..UMEM_THREADS_MAX), kept in a thread-specific
 * datum whose destructor gives the id back.  A cache has a two-level slot
 * directory: chunk id/64, slot id%64, so a slot is found with two loads,
 * and a chunk is allocated the first time a thread of its range uses the
 * cache.  A slot belongs to one live thread only — ids are unique among live
 * threads — so its fields are read and written without a lock or an atomic
 * operation.  Each slot fills one 64-byte line so that two threads never
 * write the same line.  More than UMEM_THREADS_MAX live threads: the extra
 * ones get no id and use the depot and slabs directly (correct, slower).
 */
#ifndef QUANTA_UMEM_IMPL_H
#define QUANTA_UMEM_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bugs.h"
#include "platform.h"
#include "umem.h"
#include "vmem.h"
#include "vmem_impl.h"

#if defined(QUANTA_DEBUG)
#define UMEM_DEBUG 1
#else
#define UMEM_DEBUG 0
#endif

/* ---- memory-checker client requests (Valgrind, ASan) --------------------- */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define UMEM_HAVE_VALGRIND 1
#endif
#endif
#ifndef UMEM_HAVE_VALGRIND
#define VALGRIND_MALLOCLIKE_BLOCK(a, s, r, z)                                  \
	((void)(a), (void)(s), (void)(r), (void)(z))
#define VALGRIND_FREELIKE_BLOCK(a, r) ((void)(a), (void)(r))
#define VALGRIND_MAKE_MEM_NOACCESS(a, s) ((void)(a), (void)(s))
#define VALGRIND_MAKE_MEM_UNDEFINED(a, s) ((void)(a), (void)(s))
#define VALGRIND_MAKE_MEM_DEFINED(a, s) ((void)(a), (void)(s))
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UMEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UMEM_ASAN 1
#endif
#endif
#ifdef UMEM_ASAN
void __asan_poison_memory_region(void const volatile *addr, size_t size);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#define UMEM_ASAN_POISON(a, s) __asan_poison_memory_region((a), (s))
#define UMEM_ASAN_UNPOISON(a, s) __asan_unpoison_memory_region((a), (s))
#else
#define UMEM_ASAN_POISON(a, s) ((void)(a), (void)(s))
#define UMEM_ASAN_UNPOISON(a, s) ((void)(a), (void)(s))
#endif

/* The cache locks an assertion may ask about (vmem_impl.h says how). */
#define DEPOT_LOCK_HELD(cp) ((void)(cp), QLOCK_HELD(QLOCK_DEPOT))
#define SLAB_LOCK_HELD(cp) ((void)(cp), QLOCK_HELD(QLOCK_SLAB))
#define SLAB_LOCKS_NONE() QLOCK_NONE_HELD(QLOCK_SLAB)

/* ---- constants, derived ------------------------------------------------ */

#define UMEM_NAMELEN 32
/* Every creation flag umem.h defines; other bits are a caller's error. */
#define UMEM_CFLAGS_KNOWN                                                      \
	(UMC_NOTOUCH | UMC_NODEBUG | UMC_NOMAGAZINE | UMC_QCACHE)
/* Slot directory: 64 chunks of 64 slots (a chunk is one 4 KiB page of
 * 64-byte slots); 4096 live threads at once is far beyond the machines
 * this runs on, and the 64 directory pointers cost a cache 512 bytes. */
#define UMEM_SLOTS_PER_CHUNK 64u
#define UMEM_SLOT_CHUNKS 64u
#define UMEM_THREADS_MAX (UMEM_SLOTS_PER_CHUNK * UMEM_SLOT_CHUNKS)
#define UMEM_CACHE_LINE 64u
/* Magazine sizes 2^k - 1 (a magazine header of 2 words plus the rounds is
 * then 2^k + 1 words), from 1 to 255.  A cache starts at the size its
 * buffer size suggests (umem_mag.c) and moves up one step when the depot
 * lock was contended in more than 1 of UMEM_DEPOT_CONTENTION_RATIO
 * acquisitions of a window of UMEM_DEPOT_WINDOW_OPS. */
#define UMEM_MAGTYPES 8u
#define UMEM_MAGSIZE_MAX 255u
#define UMEM_DEPOT_WINDOW_OPS 256u
#define UMEM_DEPOT_CONTENTION_RATIO 16u
/* Fully free slabs kept when no reap asks for them, to avoid giving a slab
 * back and importing it again (and re-running constructors) at a boundary. */
#define UMEM_FREE_SLABS_KEEP 1u
/* A slab holds at least this many buffers (so that the per-slab header and
 * the import are amortised over them), and at most UMEM_SLAB_BUFS_MAX (the
 * bound of every bitmap loop: 64 words). */
#define UMEM_SLAB_BUFS_MIN 8u
#define UMEM_SLAB_BUFS_MAX 4096u
#define UMEM_SLAB_HASH_INITIAL 16u
/* Every size-class cache limit: umem_alloc above it goes to the arena. */
#define UMEM_CLASS_MAX_BYTES 16384u

/* ---- magazines, slots, depot --------------------------------------------- */

typedef struct umem_mag umem_mag_t;
struct umem_mag {
	umem_mag_t *mg_next;  /* depot list link */
	uint32_t mg_cap;      /* rounds when full */
	/* Rounds held, kept for the child of a fork: exact for a magazine
	 * in the depot or a slot's previous place, and for a busy slot's
	 * loaded one (slot_busy_enter stores it); the fast path keeps a
	 * loaded magazine's count in the slot only (sl_rounds). */
	uint32_t mg_rounds;
	void *mg_round[];     /* mg_cap entries */
};

typedef struct umem_slot {
	_Alignas(UMEM_CACHE_LINE) umem_mag_t *sl_loaded;
	umem_mag_t *sl_prev;   /* always full, empty or NULL */
	uint32_t sl_rounds;    /* rounds in sl_loaded */
	uint32_t sl_cap;       /* sl_loaded's capacity (0 when NULL) */
	uint32_t sl_prounds;   /* rounds in sl_prev */
	uint32_t sl_pcap;
	uint64_t sl_to_caller;   /* buffers handed out through this slot */
	uint64_t sl_from_caller; /* buffers taken back through this slot */
	/* The magazine a swap holds between its stores, NULL otherwise: a
	 * fork's child finds it here (umem_slot_child_reclaim). */
	umem_mag_t *sl_transit;
	/* Non-zero while a slow path or a flush changes several fields: the
	 * child of a fork then takes the slot's magazines from sl_loaded,
	 * sl_prev and sl_transit, each with its mg_rounds. */
	_Atomic uint32_t sl_busy;
} umem_slot_t;

_Static_assert(sizeof(umem_slot_t) == UMEM_CACHE_LINE,
    "a slot fills one cache line, so no two threads share a line");

/*
 * The one push of a round from a caller onto the loaded magazine (room
 * checked by the caller; umem_slot_free and umem_debug_push call it): the
 * round first, then the count, in that order in memory too — a release
 * store, which on x86 is a plain store the compiler may not hoist above
 * the round's.  No other thread reads a slot; the child of a fork another
 * thread takes at this instant does: it sees a prefix of this thread's
 * stores, and a count stored before its round would give it a stale
 * pointer in the magazine — a buffer that is elsewhere, freed twice when
 * the child empties the slot.  (The compilers did store the count first;
 * test_fork's tight-loop test caught it.)  Popping needs nothing: a child
 * that sees the old count has the buffer still in the magazine, one that
 * sees the new count lost it with the thread.
 */
static inline void umem_slot_push(umem_slot_t *sl, void *buf)
{
	uint32_t r = sl->sl_rounds;
	/* planted bug QB_PUSH_COUNT_FIRST: the count is stored before the round */
	bool count_first = QUANTA_BUG(QB_PUSH_COUNT_FIRST);
	if (count_first)
		__atomic_store_n(&sl->sl_rounds, r + 1, __ATOMIC_RELEASE);
	else
		sl->sl_loaded->mg_round[r] = buf;
	plat_preempt_point("magazine push: round stored, count not yet");
	if (count_first)
		sl->sl_loaded->mg_round[r] = buf;
	else
		__atomic_store_n(&sl->sl_rounds, r + 1, __ATOMIC_RELEASE);
	sl->sl_from_caller++;
}

/* The one pop of a round for a caller (a round is there: the caller
 * checked); umem_slot_pop and umem_debug_pop call it. */
static inline void *umem_slot_pop_round(umem_slot_t *sl)
{
	void *buf = sl->sl_loaded->mg_round[--sl->sl_rounds];
	sl->sl_to_caller++;
	return buf;
}

typedef struct umem_slot_chunk {
	umem_slot_t sc_slot[UMEM_SLOTS_PER_CHUNK];
} umem_slot_chunk_t;

typedef struct umem_maglist {
	umem_mag_t *ml_head;
	size_t ml_count;
	size_t ml_min;       /* fewest members since the last reap */
} umem_maglist_t;

/* ---- slabs ----------------------------------------------------------- */

/* Debug state of a buffer (a byte per buffer, debug builds only). */
enum { UMEM_BS_SLAB = 0, UMEM_BS_CALLER = 1, UMEM_BS_MAG = 2 };
/* Which list of its cache a slab is on. */
enum { UMEM_SL_PARTIAL = 1, UMEM_SL_FULL = 2, UMEM_SL_FREE = 3 };

typedef struct umem_slab umem_slab_t;
struct umem_slab {
	uintptr_t sb_base;
	umem_cache_t *sb_cache;
	umem_slab_t *sb_next;   /* its list (partial, full or free) */
	umem_slab_t *sb_prev;
	umem_slab_t *sb_hnext;  /* hash chain */
	uint32_t sb_nfree;      /* set bits of the free map */
	uint32_t sb_hint;       /* no free bit below word sb_hint */
	uint32_t sb_list;       /* UMEM_SL_* */
	uint32_t sb_unused;
	uint64_t sb_map[];      /* free map, constructed map, [debug arrays] */
};

/* ---- the cache --------------------------------------------------------- */

struct umem_cache {
	/* Read by the fast path: the slot directory, then constants. */
	_Atomic(umem_slot_chunk_t *) cc_slotdir[UMEM_SLOT_CHUNKS];
	char cc_name[UMEM_NAMELEN];
	int cc_cflags;
	bool cc_annotate;     /* tell Valgrind/ASan about buffers */
	bool cc_debug;        /* per-buffer state checks (debug builds) */
	size_t cc_bufsize;
	size_t cc_chunk_bytes;
	size_t cc_slab_bytes;
	uint32_t cc_nbufs;     /* buffers per slab */
	uint32_t cc_map_words; /* 64-bit words per bitmap */
	size_t cc_slab_hdr_bytes;
	umem_constructor_t *cc_ctor;
	umem_destructor_t *cc_dtor;
	umem_reclaim_t *cc_reclaim;
	void *cc_private;
	vmem_t *cc_arena;
	umem_cache_t *cc_next;    /* the list of all caches */

	/* Depot: cc_depot_lock (each lock a slot of locktab.h). */
	plat_mutex_t *cc_depot_lock;
	umem_maglist_t cc_full;
	umem_maglist_t cc_empty;
	_Atomic uint32_t cc_magsize;
	uint32_t cc_magtype;
	uint64_t cc_depot_ops;
	uint64_t cc_depot_contended;
	uint32_t cc_window_ops;
	uint32_t cc_window_contended;

	/* Slab layer: cc_slab_lock. */
	plat_mutex_t *cc_slab_lock;
	umem_slab_t *cc_partial;
	umem_slab_t *cc_fullslabs;
	umem_slab_t *cc_freeslabs;
	size_t cc_nslabs;
	size_t cc_nslabs_free;
	size_t cc_bufs_slab_free;
	umem_slab_t **cc_htab;
	size_t cc_htab_mask;
	umem_slab_t *cc_htab_embedded[UMEM_SLAB_HASH_INITIAL];
	uint64_t cc_direct_to_caller;   /* slotless allocations */
	uint64_t cc_direct_from_caller; /* slotless frees */
	/* Counters changed outside the lock (constructors, destructors and
	 * slab give-backs run unlocked). */
	_Atomic uint64_t cc_constructed;
	_Atomic uint64_t cc_destructed;
	_Atomic uint64_t cc_slab_create;
	_Atomic uint64_t cc_slab_destroy;
	_Atomic uint64_t cc_alloc_fail;
};

/* A diagnostic's description of the public call that is being served. */
typedef enum {
	UMEM_CALL_CACHE_FREE = 0, /* umem_cache_free(cache, buf) */
	UMEM_CALL_FREE = 1,       /* umem_free(buf, size) */
	UMEM_CALL_VMEM_FREE = 2,  /* vmem_free(arena, addr, size) (qcache) */
	UMEM_CALL_INTERNAL = 3,   /* the cache layer itself (a flush) */
} umem_call_t;

/* ---- umem_cache.c: bootstrap, the cache list, diagnostics -------------- */
extern plat_mutex_t umem_cache_list_lock;
extern umem_cache_t *umem_cache_list;
extern vmem_t *umem_meta_arena;     /* slab headers, magazines, slot chunks */
extern vmem_t *umem_default;        /* umem_alloc, caches without a source */
extern _Atomic bool umem_ready;
void umem_bootstrap(void);
void *umem_meta_alloc(size_t size, size_t align);
void umem_meta_free(void *p, size_t size);
_Noreturn void umem_bad_free(const umem_cache_t *cp, const void *buf,
    umem_call_t call, size_t size, const char *why);
_Noreturn void umem_bad_free_foreign(const umem_cache_t *cp, const void *buf,
    umem_call_t call, size_t size);
umem_cache_t *umem_cache_create_impl(const char *name, size_t bufsize,
    size_t align, umem_constructor_t *ctor, umem_destructor_t *dtor,
    umem_reclaim_t *reclaim, void *priv, vmem_t *source, int cflags);
void *umem_cache_alloc_impl(umem_cache_t *cp, int vmflag);

/* ---- umem_alloc.c ------------------------------------------------------------ */
void umem_classes_init(void);
/* The buffer size of the class that serves umem_alloc(size), for 0 < size
 * <= UMEM_CLASS_MAX_BYTES (the malloc front end allocates whole classes). */
size_t umem_alloc_class_bytes(size_t size);
/* The one retry loop of UMEM_NOFAIL: once(arg) failed; reap, ask the
 * nofail callback (retry, exit, or a diagnostic) and try again until once
 * returns a buffer.  cache_name NULL: umem_alloc of size (diagnostics). */
void *umem_nofail_retry(void *(*once)(void *arg), void *arg,
    const char *call, const char *cache_name, size_t size);

/* ---- umem_slab.c ------------------------------------------------------------ */
bool umem_slab_layout(umem_cache_t *cp, size_t align);
void *umem_slab_alloc(umem_cache_t *cp, int vmflag);
void umem_slab_free(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size);
void umem_slab_free_batch(umem_cache_t *cp, void *const *bufs, size_t n);
/* The rounds of m (mg_rounds of them) into their slabs, m->mg_rounds set to
 * 0 in the same critical section; slabs to give back are added to *chain
 * (umem_slab_give_back, once no lock is held).  May be called with the
 * depot lock held. */
void umem_slab_free_rounds(umem_cache_t *cp, umem_mag_t *m,
    umem_slab_t **chain);
void umem_slab_give_back(umem_cache_t *cp, umem_slab_t *chain);
umem_slab_t *umem_slab_lookup(const umem_cache_t *cp, uintptr_t addr);
size_t umem_slab_index(const umem_cache_t *cp, const umem_slab_t *sp,
    uintptr_t addr);
void umem_slab_release_free(umem_cache_t *cp, size_t keep);
size_t umem_slab_destroy_all(umem_cache_t *cp);
void umem_slab_hash_fini(umem_cache_t *cp);
void umem_debug_check_free(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size);
void umem_debug_push(umem_cache_t *cp, umem_slot_t *sl, void *buf,
    umem_call_t call, size_t size);
void *umem_debug_pop(umem_cache_t *cp, umem_slot_t *sl);
void umem_debug_set_reqsize(umem_cache_t *cp, void *buf, size_t size);
uint8_t *umem_slab_state(const umem_cache_t *cp, umem_slab_t *sp);
uint32_t *umem_slab_reqsize(const umem_cache_t *cp, umem_slab_t *sp);

static inline bool umem_map_test(const uint64_t *map, size_t i)
{
	return (map[i / 64] >> (i % 64)) & 1u;
}

/* ---- umem_mag.c: magazines, depot, slot exchanges ---------------------------- */
void umem_mag_init_cache(umem_cache_t *cp);
void *umem_alloc_slow(umem_cache_t *cp, umem_slot_t *sl, int vmflag);
void umem_free_slow(umem_cache_t *cp, umem_slot_t *sl, void *buf,
    umem_call_t call, size_t size);
void umem_slot_flush(umem_cache_t *cp, umem_slot_t *sl);
/* In a fork's child: the slot of a thread that is gone gives back every
 * magazine it holds, busy or not (umem_thread_child_fixup). */
void umem_slot_child_reclaim(umem_cache_t *cp, umem_slot_t *sl);
void umem_depot_reap(umem_cache_t *cp);
void umem_depot_purge(umem_cache_t *cp);
size_t umem_mag_bytes(uint32_t cap);

/* ---- umem_thread.c: thread ids, slots --------------------------------------- */
extern plat_tsd_key_t umem_tsd_key;
void umem_thread_init(void);
umem_slot_t *umem_slot_find_slow(umem_cache_t *cp);
void umem_slots_flush_all(umem_cache_t *cp);
void umem_slots_fini(umem_cache_t *cp);
/* Give the calling thread's magazines of every cache back to the depots
 * (what a thread exit does; tests call it to force buffers out). */
void umem_thread_flush_self(void);
/* The calling thread's id (0: none), for tests. */
uintptr_t umem_thread_id(void);

/* The calling thread's slot of cp, or NULL when it has none (a slotless
 * thread, or a UMC_NOMAGAZINE cache).  Constant time: two loads and the
 * thread-specific datum. */
static inline umem_slot_t *umem_slot_find(umem_cache_t *cp)
{
	uintptr_t id = (uintptr_t)plat_tsd_get(umem_tsd_key);
	if (id != 0) {
		id--;
		umem_slot_chunk_t *ch = atomic_load_explicit(
		    &cp->cc_slotdir[id / UMEM_SLOTS_PER_CHUNK],
		    memory_order_acquire);
		if (ch != NULL) {
			QANN_RECEIVE(&cp->cc_slotdir[id / UMEM_SLOTS_PER_CHUNK]);
			return &ch->sc_slot[id % UMEM_SLOTS_PER_CHUNK];
		}
	}
	return umem_slot_find_slow(cp);
}

/*
 * The one place a round leaves or enters a thread's loaded magazine on
 * the way to or from a caller (the fast paths and the ends of the slow
 * paths).  Pop: the caller checked that a round is there.  Push: false
 * when there is no slot or no room.  Debug caches change the buffer's
 * state byte with the round in one critical section (umem_debug_pop,
 * umem_debug_push); release builds compile that branch out.
 */
static inline void *umem_slot_pop(umem_cache_t *cp, umem_slot_t *sl)
{
	if (UMEM_DEBUG && cp->cc_debug)
		return umem_debug_pop(cp, sl);
	return umem_slot_pop_round(sl);
}

static inline bool umem_slot_free(umem_cache_t *cp, umem_slot_t *sl,
    void *buf, umem_call_t call, size_t size)
{
	if (sl == NULL || sl->sl_rounds >= sl->sl_cap)
		return false;
	if (UMEM_DEBUG && cp->cc_debug) {
		umem_debug_push(cp, sl, buf, call, size);
		return true;
	}
	umem_slot_push(sl, buf);
	return true;
}

/* ---- umem_reap.c ------------------------------------------------------------ */
/*
 * The hooks vmem.c calls:
 *   umem_reap_request()   — call after an allocation of an arena failed,
 *                           with no arena lock held.  Runs a reap of every
 *                           cache now, or, when a populate is in progress
 *                           (on this thread or anywhere), records it as
 *                           pending and returns at once.
 *   umem_reap_pending_run() — call right after dropping the populate lock:
 *                           runs the reap a populate deferred, if any.  The
 *                           cache layer also calls it from its slow paths.
 */
void umem_reap_request(void);
void umem_reap_pending_run(void);
bool umem_reap_pending(void);
/* Whether a populate is in progress (vmem_tags.c); tests may replace it. */
bool vmem_populate_in_progress(void);
extern bool (*umem_populate_probe)(void);
/* Reap one cache (reclaim callback, depot working set, free slabs). */
void umem_cache_reap(umem_cache_t *cp);
extern _Atomic uint64_t umem_reap_count;  /* reaps that ran */

/* ---- fork (the vmem atfork handlers of vmem_fork.c call these) -------------
 * umem_lockup(): before vmem_lockup, in prepare.  Takes the cache-list lock,
 *   then for each cache in list order its depot lock, then its slab lock.
 * umem_release(): after vmem_release, in parent and child.
 * umem_child_fixup(): in the child, after umem_release: forgets a reap that
 *   another thread was running (it does not exist in the child).
 * umem_thread_child_fixup(): in the child, after umem_child_fixup: the slots
 *   of the threads that did not survive give their magazines back to the
 *   depots and their ids to the id arena; a slot that its thread was
 *   changing at the fork (sl_busy) too (umem_slot_child_reclaim).
 * umem_test_reap_hook: when set, a reap of every cache calls it with the
 *   cache-list lock held (tests arrange a fork during a reap with it). */
void umem_lockup(void);
void umem_release(void);
void umem_child_fixup(void);
void umem_thread_child_fixup(void);
extern void (*umem_test_reap_hook)(void);
/* Tests: called by a slow path at a moment when its slot is busy with
 * magazines in motion (UMEM_HOOK_*), so that a test can hold a thread
 * there while another forks.  NULL (one load and branch, slow paths only)
 * in every program but test_fork. */
enum {
	UMEM_HOOK_ALLOC_EXCHANGE = 1, /* alloc: a full magazine came from the depot */
	UMEM_HOOK_FREE_EXCHANGE = 2,  /* free: an empty magazine was found */
	UMEM_HOOK_SWAP = 3,           /* loaded and previous half swapped */
};
extern void (*umem_test_slow_hook)(umem_cache_t *cp, umem_slot_t *sl,
    int where);
/* Held across the cache layer's bootstrap (rank 1); the fork prepare
 * takes it first, so no child sees a bootstrap half done. */
extern plat_mutex_t umem_bootstrap_lock;

/* ---- quantum caches (for vmem_create / vmem_alloc / vmem_free) ------------
 * umem_qcache_create(arena, size): a cache of size-byte pieces of arena
 *   (size a multiple of its quantum), named "<arena>_<size>", slabs of
 *   umem_qcache_slab_bytes(arena) taken with vmem_xalloc(arena, slab, slab,
 *   0, 0, NULL, NULL, flags) and given back with vmem_xfree.  No
 *   constructor; the pieces are never touched.  NULL when out of memory.
 * umem_qcache_alloc(cp, vmflag): vmflag is vmem_alloc's (VM_SLEEP,
 *   VM_NOSLEEP, VM_PANIC); it is what the slab import is called with.
 * umem_qcache_free(cp, addr, size): size is vmem_free's, for diagnostics.
 * umem_qcache_destroy(cp): at vmem_destroy, before the arena goes. */
umem_cache_t *umem_qcache_create(vmem_t *arena, size_t size);
size_t umem_qcache_slab_bytes(const vmem_t *arena);
void *umem_qcache_alloc(umem_cache_t *cp, int vmflag);
void umem_qcache_free(umem_cache_t *cp, void *addr, size_t size);
void umem_qcache_destroy(umem_cache_t *cp);
/* vmem_free of a size above qcache_max: a slab's size at a slab's start
 * is a wrong size (diagnostic, abort). */
void umem_qcache_check_arena_free(vmem_t *arena, void *addr, size_t size);

/* ---- the invariant checker (invariants/umem_check.c) -----------------------
 * Q1, Q2, Q3 of INVARIANTS.md over one cache.  The cache must be quiescent
 * (no thread inside an operation on it): the checker reads other threads'
 * slots.  Returns the number of violations; each is written to out (up to
 * max) with its code. */
typedef struct umem_violation {
	char uv_code[4];       /* "Q1", "Q2", "Q3" */
	uintptr_t uv_addr;     /* the buffer or slab involved (or 0) */
	char uv_what[120];
} umem_violation_t;
#ifdef QUANTA_CHECKER
size_t invariant_umem_cache(umem_cache_t *cp, umem_violation_t *out,
    size_t max);
#endif

#endif /* QUANTA_UMEM_IMPL_H */
