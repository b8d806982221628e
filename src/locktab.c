/*
 * locktab.c — the lock table (the theory is in locktab.h): arena and
 * cache mutexes packed one cache line each into a few pages, so that a
 * fork's lockup and release dirty those pages and nothing per object.
 *
 * A slot is a mutex while handed out, a free-list link while given back.
 * Carving goes in address order through the static chunk, then through
 * each mapped chunk (whose first slot heads the list of chunks); a new
 * chunk is mapped only when the free list is empty and the newest chunk
 * is carved out.  The page map happens outside the guard (in the
 * simulator it is a scheduling point, and a leaf lock is held across
 * none): a thread that finds room made meanwhile unmaps its chunk.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lockrank.h"
#include "locktab.h"
#include "vmem_impl.h"

typedef union locktab_slot locktab_slot_t;
union locktab_slot {
	struct {
		union {
			plat_mutex_t m;           /* handed out */
			locktab_slot_t *next;     /* on the free list */
		} u;
		void *owner;                  /* its arena or cache, when listed */
		_Atomic unsigned listed;      /* the owner's list's rank, or 0 */
		unsigned pending;             /* locktab_pending */
	} ls;
	struct {                              /* the first slot of a mapped chunk */
		locktab_slot_t *ch_next;
		size_t ch_slots;
	} ls_chunk;
	unsigned char ls_line[LOCKTAB_SLOT_BYTES];
};
_Static_assert(sizeof(locktab_slot_t) == LOCKTAB_SLOT_BYTES,
    "a lock of the table fits in one cache line");
_Static_assert(LOCKTAB_FIRST_SLOTS * LOCKTAB_SLOT_BYTES % 4096 == 0,
    "the static chunk is whole 4 KiB pages");

static _Alignas(4096) locktab_slot_t lt_first[LOCKTAB_FIRST_SLOTS];
static plat_leaf_t lt_guard = PLAT_LEAF_INITIALIZER;
/* The newest mapped chunk: written under lt_guard, read by the walks
 * without it (a chunk is published whole and never unmapped). */
static _Atomic(locktab_slot_t *) lt_chunks;
/* Under lt_guard: */
static locktab_slot_t *lt_free;
static locktab_slot_t *lt_bump = lt_first;   /* next slot to carve */
static locktab_slot_t *lt_end = lt_first + LOCKTAB_FIRST_SLOTS;
static size_t lt_nlive, lt_nfree, lt_ncarved, lt_nchunks;

static locktab_slot_t *slot_of(const plat_mutex_t *m)
{
	return (locktab_slot_t *)(void *)(uintptr_t)m;
}

static void guard_enter(void)
{
	qlock_witness_enter(QLOCK_LOCKTAB, 0);
	plat_leaf_lock(&lt_guard);
}

static void guard_exit(void)
{
	qlock_witness_exit(QLOCK_LOCKTAB);
	plat_leaf_unlock(&lt_guard);
}

/* A slot from the free list, else carved; NULL when neither has one. */
static locktab_slot_t *slot_take(void)
{
	locktab_slot_t *s = lt_free;
	if (s != NULL) {
		lt_free = s->ls.u.next;
		lt_nfree--;
	} else if (lt_bump < lt_end) {
		s = lt_bump++;
		lt_ncarved++;
	}
	if (s != NULL)
		lt_nlive++;
	return s;
}

static size_t chunk_bytes(void)
{
	size_t page = plat_page_size();
	return (LOCKTAB_CHUNK_BYTES + page - 1) / page * page;
}

/* Carve from c (bytes long) from now on; its first slot heads it. */
static void chunk_install(locktab_slot_t *c, size_t bytes)
{
	c->ls_chunk.ch_next = atomic_load(&lt_chunks);
	c->ls_chunk.ch_slots = bytes / LOCKTAB_SLOT_BYTES;
	atomic_store_explicit(&lt_chunks, c, memory_order_release);
	lt_nchunks++;
	lt_bump = c + 1;
	lt_end = c + c->ls_chunk.ch_slots;
}

plat_mutex_t *locktab_get(void)
{
	guard_enter();
	locktab_slot_t *s = slot_take();
	guard_exit();
	while (s == NULL) {
		size_t bytes = chunk_bytes();
		locktab_slot_t *c = plat_pages_map(bytes);
		if (c == NULL)
			return NULL;
		guard_enter();
		bool used = lt_free == NULL && lt_bump == lt_end;
		if (used)
			chunk_install(c, bytes);
		s = slot_take();
		guard_exit();
		if (!used)
			plat_pages_unmap(c, bytes);
	}
	s->ls.owner = NULL;
	s->ls.pending = 0;
	/* An atomic word: the fork walks of one rank read it while a list
	 * of another rank writes it (Helgrind sees no atomics). */
	QANN_ATOMIC(&s->ls.listed);
	VMEM_ASSERT(atomic_load_explicit(&s->ls.listed,
	    memory_order_relaxed) == 0);
	plat_mutex_init(&s->ls.u.m);
	return &s->ls.u.m;
}

static bool slot_in(const plat_mutex_t *m, const locktab_slot_t *lo,
    const locktab_slot_t *hi)
{
	uintptr_t a = (uintptr_t)m;
	return a >= (uintptr_t)lo && a < (uintptr_t)hi &&
	    (a - (uintptr_t)lo) % LOCKTAB_SLOT_BYTES == 0;
}

int locktab_owns(const plat_mutex_t *m)
{
	guard_enter();
	bool mine = slot_in(m, lt_first, lt_first + LOCKTAB_FIRST_SLOTS);
	for (const locktab_slot_t *c = atomic_load(&lt_chunks);
	    c != NULL && !mine;
	    c = c->ls_chunk.ch_next)
		mine = slot_in(m, c + 1, c + c->ls_chunk.ch_slots);
	guard_exit();
	return mine;
}

void locktab_put(plat_mutex_t *m)
{
	VMEM_ASSERT(locktab_owns(m));
	locktab_slot_t *s = slot_of(m);
	VMEM_ASSERT(atomic_load_explicit(&s->ls.listed,
	    memory_order_relaxed) == 0);
	plat_mutex_destroy(m);
	guard_enter();
	VMEM_ASSERT(lt_nlive > 0);
	s->ls.u.next = lt_free;
	lt_free = s;
	lt_nfree++;
	lt_nlive--;
	guard_exit();
}

void locktab_stats(locktab_stats_t *out)
{
	guard_enter();
	out->lt_live = lt_nlive;
	out->lt_free = lt_nfree;
	out->lt_carved = lt_ncarved;
	out->lt_chunks = lt_nchunks;
	guard_exit();
	VMEM_ASSERT(out->lt_live + out->lt_free == out->lt_carved);
}

void locktab_lockup(void)
{
	guard_enter();
}

void locktab_release(void)
{
	guard_exit();
}

/* ---- the owners' lists, seen from the table ------------------------------ */

void locktab_list(plat_mutex_t *m, void *owner, qlock_rank_t rank)
{
	locktab_slot_t *s = slot_of(m);
	s->ls.owner = owner;
	atomic_store_explicit(&s->ls.listed, (unsigned)rank,
	    memory_order_relaxed);
}

void locktab_unlist(plat_mutex_t *m)
{
	atomic_store_explicit(&slot_of(m)->ls.listed, 0u,
	    memory_order_relaxed);
}

int locktab_listed(const plat_mutex_t *m, qlock_rank_t rank)
{
	return atomic_load_explicit(&slot_of(m)->ls.listed,
	    memory_order_relaxed) == (unsigned)rank;
}

unsigned *locktab_pending(plat_mutex_t *m)
{
	return &slot_of(m)->ls.pending;
}

static void walk_run(locktab_slot_t *lo, locktab_slot_t *hi,
    qlock_rank_t rank, locktab_visit_t *fn, void *arg)
{
	for (locktab_slot_t *s = lo; s < hi; s++)
		if (atomic_load_explicit(&s->ls.listed, memory_order_relaxed) ==
		    (unsigned)rank)
			fn(s->ls.owner, &s->ls.u.m, arg);
}

void locktab_walk_listed(qlock_rank_t rank, locktab_visit_t *fn, void *arg)
{
	walk_run(lt_first, lt_first + LOCKTAB_FIRST_SLOTS, rank, fn, arg);
	for (locktab_slot_t *c = atomic_load_explicit(&lt_chunks,
	    memory_order_acquire); c != NULL; c = c->ls_chunk.ch_next)
		walk_run(c + 1, c + c->ls_chunk.ch_slots, rank, fn, arg);
}

static void visit_enter(void *owner, plat_mutex_t *m, void *arg)
{
	(void)owner;
	qlock_enter_nested(m, (qlock_rank_t)(uintptr_t)arg);
}

static void visit_exit(void *owner, plat_mutex_t *m, void *arg)
{
	(void)owner;
	qlock_exit(m, (qlock_rank_t)(uintptr_t)arg);
}

void locktab_enter_listed(qlock_rank_t rank)
{
	locktab_walk_listed(rank, visit_enter, (void *)(uintptr_t)rank);
}

void locktab_exit_listed(qlock_rank_t rank)
{
	locktab_walk_listed(rank, visit_exit, (void *)(uintptr_t)rank);
}
