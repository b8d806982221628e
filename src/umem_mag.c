/*
 * umem_mag.c — the magazine layer: magazines, the exchanges a thread slot
 * makes with the depot when its two magazines cannot serve, the depot's
 * full and empty lists with their working-set bookkeeping, and the growth
 * of the magazine size under depot contention.
 *
 * Theory
 * ------
 * A magazine is an array of up to M buffer pointers (rounds).  A thread slot
 * holds two, loaded and previous, as in the paper: allocation pops a round
 * from loaded, free pushes one onto it.  When loaded cannot serve, the slot
 * first swaps loaded and previous, and only if that does not help goes to
 * the depot.  The previous magazine is always full, empty or absent — it
 * became previous either by a swap or by an exchange, and both happen only
 * when loaded was empty (allocation) or full (free).  Hence, derived: a
 * thread that alternates allocation and free never visits the depot, and a
 * thread that does a run of allocations or frees visits it at most once per
 * M operations — at least M operations between two depot visits after a
 * visit that leaves loaded full (or empty) and previous the other way.
 *
 * The depot holds full magazines (M rounds each) and empty ones, each list
 * with ml_min, the fewest it held since the last reap.  Those ml_min
 * magazines were never needed during the interval: that is the excess
 * working set a reap releases (full ones go back to the slabs round by
 * round, empty ones to the metadata arena).  A reap then starts a new
 * interval.  So a magazine is released by the second reap after it last
 * entered the depot, never while it is part of the working set.
 *
 * Magazine size.  Each depot acquisition first tries the lock; a failed try
 * counts as contended.  Every UMEM_DEPOT_WINDOW_OPS acquisitions, a window
 * with more than 1 in UMEM_DEPOT_CONTENTION_RATIO contended moves the cache
 * to the next magazine size (2^k - 1 rounds, up to 255).  Depot visits are
 * then rarer by the ratio of the sizes.  The depot keeps only magazines of
 * the current size: at a resize it empties itself, and a slot's older
 * magazine that comes back to it later is emptied instead of being kept.
 *
 * Locking.  cc_depot_lock guards the lists, the counters and the size; it is
 * never held across a call to the slab layer or to vmem: magazines to be
 * emptied or freed are detached first.  A slot is touched only by its
 * thread (umem_impl.h), except at cache destroy and by a quiescent checker.
 *
 * What may be called: the slab layer (umem_slab_alloc, umem_slab_free,
 * umem_slab_free_batch) and the metadata arena.  What holds on return:
 * every magazine is in one slot or on one depot list, or freed (Q1).
 */
#include <string.h>

#include "umem_impl.h"

static const uint32_t umem_magsizes[UMEM_MAGTYPES] = {1, 3, 7, 15, 31, 63,
    127, UMEM_MAGSIZE_MAX};

/* Whole cache lines, line-aligned (umem_meta_alloc below): two threads'
 * magazines never share a line, so a push by one never invalidates the
 * other's. */
size_t umem_mag_bytes(uint32_t cap)
{
	size_t bytes = sizeof(umem_mag_t) + (size_t)cap * sizeof(void *);
	return (bytes + UMEM_CACHE_LINE - 1) & ~(size_t)(UMEM_CACHE_LINE - 1);
}

/* The first magazine size: small buffers cost little to hold, large ones a
 * lot, so large buffers start with few rounds per thread. */
void umem_mag_init_cache(umem_cache_t *cp)
{
	size_t chunk = cp->cc_chunk_bytes;
	uint32_t type = 0;
	if ((cp->cc_cflags & UMC_QCACHE) || chunk <= 64)
		type = 3;
	else if (chunk <= 256)
		type = 2;
	else if (chunk <= 4096)
		type = 1;
	cp->cc_magtype = type;
	atomic_store(&cp->cc_magsize, umem_magsizes[type]);
	plat_mutex_init(&cp->cc_depot_lock);
	VMEM_ASSERT(type < UMEM_MAGTYPES);
	VMEM_ASSERT(cp->cc_full.ml_count == 0 && cp->cc_empty.ml_count == 0);
}

static umem_mag_t *mag_create(uint32_t cap)
{
	umem_mag_t *m = umem_meta_alloc(umem_mag_bytes(cap), UMEM_CACHE_LINE);
	if (m == NULL)
		return NULL;
	m->mg_next = NULL;
	m->mg_cap = cap;
	return m;
}

/* Its rounds back to the slabs, then the magazine to the metadata arena. */
static void mag_destroy(umem_cache_t *cp, umem_mag_t *m, uint32_t rounds)
{
	VMEM_ASSERT(rounds <= m->mg_cap);
	if (rounds != 0)
		umem_slab_free_batch(cp, m->mg_round, rounds);
	umem_meta_free(m, umem_mag_bytes(m->mg_cap));
}

/* Destroy a detached chain; full says whether its magazines hold rounds. */
static void mag_destroy_chain(umem_cache_t *cp, umem_mag_t *m, bool full)
{
	for (size_t n = 0; m != NULL && n < SIZE_MAX; n++) {
		umem_mag_t *next = m->mg_next;
		mag_destroy(cp, m, full ? m->mg_cap : 0);
		m = next;
	}
}

/* ---- depot lists ----------------------------------------------------------- */

static umem_mag_t *maglist_get(umem_maglist_t *ml)
{
	umem_mag_t *m = ml->ml_head;
	if (m == NULL)
		return NULL;
	VMEM_ASSERT(ml->ml_count > 0);
	ml->ml_head = m->mg_next;
	m->mg_next = NULL;
	ml->ml_count--;
	if (ml->ml_count < ml->ml_min)
		ml->ml_min = ml->ml_count;
	return m;
}

static void maglist_put(umem_maglist_t *ml, umem_mag_t *m)
{
	VMEM_ASSERT(m->mg_next == NULL);
	m->mg_next = ml->ml_head;
	ml->ml_head = m;
	ml->ml_count++;
}

/* Detach up to n magazines of ml (depot lock held). */
static umem_mag_t *maglist_detach(umem_maglist_t *ml, size_t n)
{
	umem_mag_t *chain = NULL;
	for (size_t i = 0; i < n && ml->ml_head != NULL; i++) {
		umem_mag_t *m = maglist_get(ml);
		m->mg_next = chain;
		chain = m;
	}
	return chain;
}

/* Magazines that the depot's unlock must destroy, once unlocked. */
typedef struct depot_drop {
	umem_mag_t *full;
	umem_mag_t *empty;
} depot_drop_t;

static void depot_lock(umem_cache_t *cp)
{
	if (!qlock_tryenter(&cp->cc_depot_lock, QLOCK_DEPOT)) {
		qlock_enter(&cp->cc_depot_lock, QLOCK_DEPOT);
		cp->cc_depot_contended++;
		cp->cc_window_contended++;
	}
	cp->cc_depot_ops++;
	cp->cc_window_ops++;
}

/*
 * Close the contention window when it is complete; a contended window
 * moves the cache to the next magazine size and empties the depot, whose
 * magazines are all of the old size (lock held).
 */
static void depot_window_close(umem_cache_t *cp, depot_drop_t *drop)
{
	if (cp->cc_window_ops < UMEM_DEPOT_WINDOW_OPS)
		return;
	bool contended = (uint64_t)cp->cc_window_contended *
	    UMEM_DEPOT_CONTENTION_RATIO > cp->cc_window_ops;
	cp->cc_window_ops = 0;
	cp->cc_window_contended = 0;
	if (!contended || cp->cc_magtype + 1 >= UMEM_MAGTYPES)
		return;
	cp->cc_magtype++;
	atomic_store(&cp->cc_magsize, umem_magsizes[cp->cc_magtype]);
	drop->full = maglist_detach(&cp->cc_full, cp->cc_full.ml_count);
	drop->empty = maglist_detach(&cp->cc_empty, cp->cc_empty.ml_count);
	cp->cc_full.ml_min = cp->cc_empty.ml_min = 0;
	VMEM_ASSERT(cp->cc_full.ml_count == 0 && cp->cc_empty.ml_count == 0);
}

static void depot_unlock(umem_cache_t *cp)
{
	depot_drop_t drop = {NULL, NULL};
	depot_window_close(cp, &drop);
	qlock_exit(&cp->cc_depot_lock, QLOCK_DEPOT);
	mag_destroy_chain(cp, drop.full, true);
	mag_destroy_chain(cp, drop.empty, false);
}

static umem_mag_t *depot_get(umem_cache_t *cp, umem_maglist_t *ml)
{
	depot_lock(cp);
	umem_mag_t *m = maglist_get(ml);
	depot_unlock(cp);
	VMEM_ASSERT(m == NULL || m->mg_next == NULL);
	return m;
}

/* A full (rounds == cap) or empty (rounds == 0) magazine to the depot; one
 * of another size than the current is emptied and freed instead. */
static void depot_put(umem_cache_t *cp, umem_mag_t *m, uint32_t rounds)
{
	VMEM_ASSERT(rounds == 0 || rounds == m->mg_cap);
	depot_lock(cp);
	if (m->mg_cap != atomic_load(&cp->cc_magsize)) {
		depot_unlock(cp);
		mag_destroy(cp, m, rounds);
		return;
	}
	maglist_put(rounds == 0 ? &cp->cc_empty : &cp->cc_full, m);
	depot_unlock(cp);
}

/* ---- slot exchanges ------------------------------------------------------- */

void (*umem_test_slow_hook)(umem_cache_t *cp, umem_slot_t *sl, int where);

static void slow_hook(umem_cache_t *cp, umem_slot_t *sl, int where)
{
	if (umem_test_slow_hook != NULL)
		umem_test_slow_hook(cp, sl, where);
}

static void slot_swap(umem_cache_t *cp, umem_slot_t *sl)
{
	umem_mag_t *m = sl->sl_loaded;
	uint32_t r = sl->sl_rounds, c = sl->sl_cap;
	sl->sl_loaded = sl->sl_prev;
	slow_hook(cp, sl, UMEM_HOOK_SWAP);
	sl->sl_rounds = sl->sl_prounds;
	sl->sl_cap = sl->sl_pcap;
	sl->sl_prev = m;
	sl->sl_prounds = r;
	sl->sl_pcap = c;
}

/* loaded becomes previous, m becomes loaded with rounds. */
static void slot_load(umem_slot_t *sl, umem_mag_t *m, uint32_t rounds)
{
	sl->sl_prev = sl->sl_loaded;
	sl->sl_prounds = sl->sl_rounds;
	sl->sl_pcap = sl->sl_cap;
	sl->sl_loaded = m;
	sl->sl_rounds = rounds;
	sl->sl_cap = m->mg_cap;
}

/* The slot is changed outside the fast path: mark it for a fork's child
 * (umem_thread_child_fixup), before the first change and after the last. */
static void slot_busy_enter(umem_slot_t *sl)
{
	if (sl != NULL) {
		atomic_store_explicit(&sl->sl_busy, 1u, memory_order_relaxed);
		/* The mark is in memory before any change after it: a fork's
		 * child sees a prefix of this thread's stores (umem_slot_push),
		 * and a change without the mark would look finished. */
		atomic_thread_fence(memory_order_seq_cst);
	}
}

static void slot_busy_exit(umem_slot_t *sl)
{
	if (sl != NULL)
		atomic_store_explicit(&sl->sl_busy, 0u, memory_order_release);
}

/*
 * Allocation that loaded could not serve.  At most three passes: a swap,
 * then an exchange with the depot, then the round — after which loaded
 * holds rounds or the depot had no full magazine and the slabs serve.
 */
void *umem_alloc_slow(umem_cache_t *cp, umem_slot_t *sl, int vmflag)
{
	if (umem_reap_pending())
		umem_reap_pending_run();
	slot_busy_enter(sl);
	for (int pass = 0; sl != NULL && pass < 3; pass++) {
		if (sl->sl_rounds > 0) {
			void *buf = sl->sl_loaded->mg_round[--sl->sl_rounds];
			sl->sl_to_caller++;
			slot_busy_exit(sl);
			if (UMEM_DEBUG && cp->cc_debug)
				umem_debug_mag_to_caller(cp, buf);
			return buf;
		}
		if (sl->sl_prounds > 0) {
			slot_swap(cp, sl);
			continue;
		}
		umem_mag_t *full = depot_get(cp, &cp->cc_full);
		if (full == NULL)
			break;
		slow_hook(cp, sl, UMEM_HOOK_ALLOC_EXCHANGE);
		VMEM_ASSERT(sl->sl_prev == NULL || sl->sl_prounds == 0);
		if (sl->sl_prev != NULL)
			depot_put(cp, sl->sl_prev, 0);
		sl->sl_prev = NULL;
		slot_load(sl, full, full->mg_cap);
	}
	slot_busy_exit(sl);
	return umem_slab_alloc(cp, vmflag);
}

/*
 * Free that loaded could not take: swap with an empty previous, or give
 * the full previous to the depot and load an empty magazine (from the
 * depot, else a new one).  No magazine to be had: straight to the slab.
 */
void umem_free_slow(umem_cache_t *cp, umem_slot_t *sl, void *buf,
    umem_call_t call, size_t size)
{
	slot_busy_enter(sl);
	for (int pass = 0; sl != NULL && pass < 3; pass++) {
		if (sl->sl_rounds < sl->sl_cap) {
			umem_slot_push(sl, buf);
			sl->sl_from_caller++;
			slot_busy_exit(sl);
			return;
		}
		if (sl->sl_prev != NULL && sl->sl_prounds == 0) {
			slot_swap(cp, sl);
			continue;
		}
		umem_mag_t *empty = depot_get(cp, &cp->cc_empty);
		if (empty == NULL)
			empty = mag_create(atomic_load(&cp->cc_magsize));
		if (empty == NULL)
			break;
		slow_hook(cp, sl, UMEM_HOOK_FREE_EXCHANGE);
		VMEM_ASSERT(sl->sl_prev == NULL ||
		    sl->sl_prounds == sl->sl_pcap);
		if (sl->sl_prev != NULL)
			depot_put(cp, sl->sl_prev, sl->sl_prounds);
		sl->sl_prev = NULL;
		slot_load(sl, empty, 0);
	}
	slot_busy_exit(sl);
	umem_slab_free(cp, buf, call, size);
}

/* One of a slot's magazines back: whole ones to the depot, a partly
 * filled one emptied into the slabs. */
static void slot_mag_return(umem_cache_t *cp, umem_mag_t *m, uint32_t rounds)
{
	if (m == NULL)
		return;
	VMEM_ASSERT(rounds <= m->mg_cap);
	if (rounds == 0 || rounds == m->mg_cap)
		depot_put(cp, m, rounds);
	else
		mag_destroy(cp, m, rounds);
}

/* Empty a slot (its thread exits, or the cache is destroyed).  The
 * counters stay: the buffers they count may still be with callers. */
void umem_slot_flush(umem_cache_t *cp, umem_slot_t *sl)
{
	slot_busy_enter(sl);
	umem_mag_t *m = sl->sl_loaded, *p = sl->sl_prev;
	uint32_t r = sl->sl_rounds, pr = sl->sl_prounds;
	sl->sl_loaded = sl->sl_prev = NULL;
	sl->sl_rounds = sl->sl_cap = sl->sl_prounds = sl->sl_pcap = 0;
	slot_mag_return(cp, m, r);
	slot_mag_return(cp, p, pr);
	slot_busy_exit(sl);
	VMEM_ASSERT(sl->sl_loaded == NULL && sl->sl_prev == NULL);
}

/* ---- reap, purge ---------------------------------------------------------- */

/* Release the magazines the last interval did not need; start another. */
void umem_depot_reap(umem_cache_t *cp)
{
	depot_lock(cp);
	umem_mag_t *full = maglist_detach(&cp->cc_full, cp->cc_full.ml_min);
	umem_mag_t *empty = maglist_detach(&cp->cc_empty,
	    cp->cc_empty.ml_min);
	cp->cc_full.ml_min = cp->cc_full.ml_count;
	cp->cc_empty.ml_min = cp->cc_empty.ml_count;
	VMEM_ASSERT(cp->cc_full.ml_min <= cp->cc_full.ml_count);
	depot_unlock(cp);
	mag_destroy_chain(cp, full, true);
	mag_destroy_chain(cp, empty, false);
}

/* Release every depot magazine (cache destroy). */
void umem_depot_purge(umem_cache_t *cp)
{
	depot_lock(cp);
	umem_mag_t *full = maglist_detach(&cp->cc_full, cp->cc_full.ml_count);
	umem_mag_t *empty = maglist_detach(&cp->cc_empty,
	    cp->cc_empty.ml_count);
	cp->cc_full.ml_min = cp->cc_empty.ml_min = 0;
	VMEM_ASSERT(cp->cc_full.ml_head == NULL && cp->cc_empty.ml_head == NULL);
	depot_unlock(cp);
	mag_destroy_chain(cp, full, true);
	mag_destroy_chain(cp, empty, false);
}
