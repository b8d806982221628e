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
	m->mg_rounds = 0;
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

/* ---- depot lists ----------------------------------------------------------- */

static umem_mag_t *maglist_get(umem_maglist_t *ml)
{
	umem_mag_t *m = ml->ml_head;
	if (m == NULL)
		return NULL;
	VMEM_ASSERT(ml->ml_count > 0 && ml->ml_min <= ml->ml_count);
	ml->ml_head = m->mg_next;
	m->mg_next = NULL;
	ml->ml_count--;
	if (ml->ml_count < ml->ml_min)
		ml->ml_min = ml->ml_count;
	return m;
}

static void maglist_put(umem_maglist_t *ml, umem_mag_t *m)
{
	VMEM_ASSERT(m->mg_next == NULL && m->mg_rounds <= m->mg_cap);
	m->mg_next = ml->ml_head;
	ml->ml_head = m;
	ml->ml_count++;
}

/*
 * What a depot critical section leaves for after its unlock: empty
 * magazines to free (linked by mg_next) and slabs to give back.  Nothing
 * in it holds a buffer: a magazine that leaves the depot or a slot for
 * good is emptied into its slabs before the depot lock drops
 * (umem_slab_free_rounds), so that at any instant a fork can see, every
 * round is in a slot, in the depot or in a slab — never only in a local
 * variable of a thread the child will not have.
 */
typedef struct depot_drop {
	umem_mag_t *mags;
	umem_slab_t *slabs;
} depot_drop_t;

static void depot_lock(umem_cache_t *cp)
{
	if (!qlock_tryenter(cp->cc_depot_lock, QLOCK_DEPOT)) {
		qlock_enter(cp->cc_depot_lock, QLOCK_DEPOT);
		cp->cc_depot_contended++;
		cp->cc_window_contended++;
	}
	cp->cc_depot_ops++;
	cp->cc_window_ops++;
	VMEM_ASSERT(DEPOT_LOCK_HELD(cp) &&
	    cp->cc_window_contended <= cp->cc_window_ops);
}

/* A magazine leaves for good (depot lock held): its rounds to the slabs
 * now, the magazine itself to the metadata arena after the unlock. */
static void depot_drop_mag(umem_cache_t *cp, umem_mag_t *m,
    depot_drop_t *drop)
{
	VMEM_ASSERT(DEPOT_LOCK_HELD(cp) && m->mg_next == NULL);
	umem_slab_free_rounds(cp, m, &drop->slabs);
	VMEM_ASSERT(m->mg_rounds == 0);
	m->mg_next = drop->mags;
	drop->mags = m;
}

static void depot_drop_list(umem_cache_t *cp, umem_maglist_t *ml,
    depot_drop_t *drop)
{
	umem_mag_t *m;
	while ((m = maglist_get(ml)) != NULL)
		depot_drop_mag(cp, m, drop);
	VMEM_ASSERT(ml->ml_head == NULL && ml->ml_count == 0);
}

/*
 * Close the contention window when it is complete; a contended window
 * moves the cache to the next magazine size and empties the depot, whose
 * magazines are all of the old size (lock held).
 */
static void depot_window_close(umem_cache_t *cp, depot_drop_t *drop)
{
	VMEM_ASSERT(DEPOT_LOCK_HELD(cp) && cp->cc_magtype < UMEM_MAGTYPES);
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
	depot_drop_list(cp, &cp->cc_full, drop);
	depot_drop_list(cp, &cp->cc_empty, drop);
	cp->cc_full.ml_min = cp->cc_empty.ml_min = 0;
	VMEM_ASSERT(cp->cc_full.ml_count == 0 && cp->cc_empty.ml_count == 0);
}

static void depot_unlock(umem_cache_t *cp, depot_drop_t *drop)
{
	depot_window_close(cp, drop);
	qlock_exit(cp->cc_depot_lock, QLOCK_DEPOT);
	/* Destructors may use the cache: no cache lock is held past here. */
	VMEM_ASSERT(SLAB_LOCKS_NONE() && QLOCK_NONE_HELD(QLOCK_DEPOT));
	umem_slab_give_back(cp, drop->slabs);
	for (umem_mag_t *m = drop->mags, *next; m != NULL; m = next) {
		next = m->mg_next;
		VMEM_ASSERT(m->mg_rounds == 0);
		umem_meta_free(m, umem_mag_bytes(m->mg_cap));
	}
	drop->mags = NULL;
	drop->slabs = NULL;
}

/* A magazine with rounds (0 or its capacity) into the depot, or, of
 * another size than the current, dropped (lock held). */
static void depot_put_locked(umem_cache_t *cp, umem_mag_t *m, uint32_t rounds,
    depot_drop_t *drop)
{
	VMEM_ASSERT(rounds == 0 || rounds == m->mg_cap);
	VMEM_ASSERT(DEPOT_LOCK_HELD(cp));
	m->mg_rounds = rounds;
	if (m->mg_cap != atomic_load(&cp->cc_magsize))
		depot_drop_mag(cp, m, drop);
	else
		maglist_put(rounds == 0 ? &cp->cc_empty : &cp->cc_full, m);
}

/* A full or empty magazine that is in no slot any more to the depot. */
static void depot_put(umem_cache_t *cp, umem_mag_t *m, uint32_t rounds)
{
	depot_drop_t drop = {NULL, NULL};
	depot_lock(cp);
	depot_put_locked(cp, m, rounds, &drop);
	depot_unlock(cp, &drop);
}

/* ---- slot exchanges ------------------------------------------------------- */

void (*umem_test_slow_hook)(umem_cache_t *cp, umem_slot_t *sl, int where);

static void slow_hook(umem_cache_t *cp, umem_slot_t *sl, int where)
{
	if (umem_test_slow_hook != NULL)
		umem_test_slow_hook(cp, sl, where);
}

/*
 * What a fork's child can read of a busy slot (umem_slot_child_reclaim).
 * The slot changes outside the depot lock in one way only, a swap, whose
 * stores a fork may cut anywhere: the child sees a prefix of them.  So a
 * swap parks the loaded magazine in sl_transit first and clears it last,
 * each pointer a release store (ordered on every processor, and after the
 * stores before it): at every cut, each of the slot's magazines is in
 * sl_loaded, sl_prev or sl_transit (one may be in two).  The round counts
 * in the slot may be cut too, so the child takes every count from the
 * magazine (mg_rounds), which a busy slot keeps exact: slot_busy_enter
 * stores the loaded one's, a previous one's is its count.  Exchanges with
 * the depot change the slot inside the depot's critical section, which a
 * fork never cuts (prepare holds the lock).  Round pops and pushes happen
 * outside the busy mark, as on the fast path.
 */
static void slot_swap(umem_cache_t *cp, umem_slot_t *sl)
{
	umem_mag_t *a = sl->sl_loaded, *b = sl->sl_prev;
	uint32_t r = sl->sl_rounds, c = sl->sl_cap;
	VMEM_ASSERT(a == NULL || a->mg_rounds == r);
	VMEM_ASSERT(b == NULL || b->mg_rounds == sl->sl_prounds);
	__atomic_store_n(&sl->sl_transit, a, __ATOMIC_RELEASE);
	__atomic_store_n(&sl->sl_loaded, b, __ATOMIC_RELEASE);
	slow_hook(cp, sl, UMEM_HOOK_SWAP);
	sl->sl_rounds = sl->sl_prounds;
	sl->sl_cap = sl->sl_pcap;
	__atomic_store_n(&sl->sl_prev, a, __ATOMIC_RELEASE);
	sl->sl_prounds = r;
	sl->sl_pcap = c;
	__atomic_store_n(&sl->sl_transit, NULL, __ATOMIC_RELEASE);
}

/* loaded becomes previous, m becomes loaded with rounds; the previous
 * place was emptied first (depot lock held). */
static void slot_load(umem_slot_t *sl, umem_mag_t *m, uint32_t rounds)
{
	VMEM_ASSERT(sl->sl_prev == NULL && m->mg_rounds == rounds);
	VMEM_ASSERT(rounds <= m->mg_cap && sl->sl_transit == NULL);
	if (sl->sl_loaded != NULL)
		sl->sl_loaded->mg_rounds = sl->sl_rounds;
	sl->sl_prev = sl->sl_loaded;
	sl->sl_prounds = sl->sl_rounds;
	sl->sl_pcap = sl->sl_cap;
	sl->sl_loaded = m;
	sl->sl_rounds = rounds;
	sl->sl_cap = m->mg_cap;
	VMEM_ASSERT(sl->sl_prev == NULL || sl->sl_prev->mg_rounds ==
	    sl->sl_prounds);
}

/* The previous magazine (full or empty) to the depot (depot lock held). */
static void slot_prev_to_depot(umem_cache_t *cp, umem_slot_t *sl,
    depot_drop_t *drop)
{
	umem_mag_t *p = sl->sl_prev;
	if (p == NULL)
		return;
	VMEM_ASSERT(sl->sl_prounds == 0 || sl->sl_prounds == sl->sl_pcap);
	depot_put_locked(cp, p, sl->sl_prounds, drop);
	sl->sl_prev = NULL;
	sl->sl_prounds = sl->sl_pcap = 0;
}

/*
 * The slot is changed outside the fast path: mark it for a fork's child
 * (umem_slot_child_reclaim), after storing the loaded magazine's count in
 * it (the child of a busy slot reads counts from the magazines) and before
 * the first change; unmark after the last.
 */
static void slot_busy_enter(umem_slot_t *sl)
{
	if (sl->sl_loaded != NULL)
		sl->sl_loaded->mg_rounds = sl->sl_rounds;
	atomic_store_explicit(&sl->sl_busy, 1u, memory_order_release);
	/* The mark is in memory before any change after it: a fork's
	 * child sees a prefix of this thread's stores (umem_slot_push),
	 * and a change without the mark would look finished. */
	atomic_thread_fence(memory_order_seq_cst);
}

static void slot_busy_exit(umem_slot_t *sl)
{
	VMEM_ASSERT(sl->sl_transit == NULL);
	atomic_store_explicit(&sl->sl_busy, 0u, memory_order_release);
}

/* Loaded is empty and so is previous: a full magazine of the depot becomes
 * loaded, loaded becomes previous, previous goes to the depot — in one
 * critical section.  False when the depot has no full magazine. */
static bool slot_exchange_full(umem_cache_t *cp, umem_slot_t *sl)
{
	depot_drop_t drop = {NULL, NULL};
	depot_lock(cp);
	umem_mag_t *full = maglist_get(&cp->cc_full);
	if (full != NULL) {
		VMEM_ASSERT(full->mg_rounds == full->mg_cap);
		VMEM_ASSERT(sl->sl_prev == NULL || sl->sl_prounds == 0);
		slot_prev_to_depot(cp, sl, &drop);
		slot_load(sl, full, full->mg_cap);
	}
	depot_unlock(cp, &drop);
	VMEM_ASSERT(full == NULL || (sl->sl_loaded == full &&
	    sl->sl_rounds == full->mg_cap && sl->sl_prounds == 0));
	if (full != NULL)
		slow_hook(cp, sl, UMEM_HOOK_ALLOC_EXCHANGE);
	return full != NULL;
}

/* Loaded is full and previous full or absent: an empty magazine (the
 * depot's, else a new one) becomes loaded, loaded becomes previous,
 * previous goes to the depot — in one critical section.  A new magazine
 * is made outside the lock (the metadata arena) and held in a local until
 * the second critical section: empty, so a fork then loses its memory
 * (one metadata piece), never a buffer.  False when there is none. */
static bool slot_exchange_empty(umem_cache_t *cp, umem_slot_t *sl)
{
	umem_mag_t *fresh = NULL;
	for (int pass = 0; pass < 2; pass++) {
		depot_drop_t drop = {NULL, NULL};
		depot_lock(cp);
		umem_mag_t *empty = maglist_get(&cp->cc_empty);
		if (empty == NULL) {
			empty = fresh;
			fresh = NULL;
		}
		if (empty != NULL) {
			VMEM_ASSERT(empty->mg_rounds == 0);
			VMEM_ASSERT(sl->sl_prev == NULL ||
			    sl->sl_prounds == sl->sl_pcap);
			slot_prev_to_depot(cp, sl, &drop);
			slot_load(sl, empty, 0);
		}
		if (fresh != NULL) {
			/* The depot had one after all: ours goes. */
			fresh->mg_next = drop.mags;
			drop.mags = fresh;
		}
		depot_unlock(cp, &drop);
		if (empty != NULL) {
			VMEM_ASSERT(sl->sl_loaded == empty &&
			    sl->sl_rounds == 0 && sl->sl_cap > 0);
			slow_hook(cp, sl, UMEM_HOOK_FREE_EXCHANGE);
			return true;
		}
		if (pass == 0 &&
		    (fresh = mag_create(atomic_load(&cp->cc_magsize))) == NULL)
			return false;
	}
	return false;
}

/*
 * Allocation that loaded could not serve: swap with a full previous, else
 * exchange for a full magazine of the depot; then the round is popped as
 * on the fast path.  No full magazine anywhere: the slabs serve.
 */
void *umem_alloc_slow(umem_cache_t *cp, umem_slot_t *sl, int vmflag)
{
	/* The fast path could not serve; no cache lock is held. */
	VMEM_ASSERT(sl == NULL || sl->sl_rounds == 0);
	VMEM_ASSERT(SLAB_LOCKS_NONE() && QLOCK_NONE_HELD(QLOCK_DEPOT));
	if (umem_reap_pending())
		umem_reap_pending_run();
	if (sl != NULL) {
		bool ok = true;
		slot_busy_enter(sl);
		if (sl->sl_rounds == 0) {
			if (sl->sl_prounds > 0)
				slot_swap(cp, sl);
			else
				ok = slot_exchange_full(cp, sl);
		}
		slot_busy_exit(sl);
		if (ok) {
			VMEM_ASSERT(sl->sl_rounds > 0);
			return umem_slot_pop(cp, sl);
		}
	}
	return umem_slab_alloc(cp, vmflag);
}

/*
 * Free that loaded could not take: swap with an empty previous, else give
 * the full previous to the depot and load an empty magazine; then the
 * round is pushed as on the fast path.  No magazine to be had: straight
 * to the slab.  Debug builds: buf is still the caller's (its state byte
 * says so, as the counters do) until the push marks it, so a fork's child
 * that loses this thread here finds every state byte where the counters
 * say (Q1).
 */
void umem_free_slow(umem_cache_t *cp, umem_slot_t *sl, void *buf,
    umem_call_t call, size_t size)
{
	VMEM_ASSERT(sl == NULL || sl->sl_rounds >= sl->sl_cap);
	VMEM_ASSERT(buf != NULL && SLAB_LOCKS_NONE());
	if (sl != NULL) {
		bool ok = true;
		slot_busy_enter(sl);
		if (sl->sl_rounds >= sl->sl_cap) {
			if (sl->sl_prev != NULL && sl->sl_prounds == 0)
				slot_swap(cp, sl);
			else
				ok = slot_exchange_empty(cp, sl);
		}
		slot_busy_exit(sl);
		if (ok) {
			VMEM_ASSERT(sl->sl_rounds < sl->sl_cap);
			(void)umem_slot_free(cp, sl, buf, call, size);
			return;
		}
	}
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

/*
 * In a fork's child, the slot of a thread that is gone.  Not busy: the
 * slot is whole (its thread was on the fast path or outside the cache) and
 * is flushed as at a thread exit.  Busy: its thread was in a slow path,
 * between locks, and its magazines are in sl_loaded, sl_prev and
 * sl_transit, possibly one in two of them (a swap cut short, slot_swap),
 * each with its exact count in mg_rounds; none is in the depot as well,
 * since every depot exchange is one critical section.  Each distinct one
 * goes back once.  What the thread held in locals at that instant holds no
 * buffer (a new empty magazine at most; slot_exchange_empty).  What the
 * fast path's two stores leave (a round popped or pushed, its caller
 * counter not yet changed) cannot be told from a finished operation: no
 * slow path is involved (docs/fork.md).
 */
void umem_slot_child_reclaim(umem_cache_t *cp, umem_slot_t *sl)
{
	if (atomic_load(&sl->sl_busy) == 0) {
		VMEM_ASSERT(sl->sl_transit == NULL);
		umem_slot_flush(cp, sl);
		return;
	}
	umem_mag_t *m[3] = {sl->sl_loaded, sl->sl_prev, sl->sl_transit};
	sl->sl_loaded = sl->sl_prev = sl->sl_transit = NULL;
	sl->sl_rounds = sl->sl_cap = sl->sl_prounds = sl->sl_pcap = 0;
	atomic_store(&sl->sl_busy, 0u);
	for (int i = 0; i < 3; i++) {
		bool seen = m[i] == NULL;
		for (int j = 0; j < i && !seen; j++)
			seen = m[j] == m[i];
		if (!seen)
			slot_mag_return(cp, m[i], m[i]->mg_rounds);
	}
	VMEM_ASSERT(sl->sl_loaded == NULL && sl->sl_transit == NULL);
}

/* ---- reap, purge ---------------------------------------------------------- */

/* Release the magazines the last interval did not need; start another.
 * The full ones are emptied before the lock drops, like every magazine
 * leaving the depot (depot_drop_t). */
void umem_depot_reap(umem_cache_t *cp)
{
	depot_drop_t drop = {NULL, NULL};
	umem_mag_t *m;
	depot_lock(cp);
	for (size_t n = cp->cc_full.ml_min; n > 0 &&
	    (m = maglist_get(&cp->cc_full)) != NULL; n--)
		depot_drop_mag(cp, m, &drop);
	for (size_t n = cp->cc_empty.ml_min; n > 0 &&
	    (m = maglist_get(&cp->cc_empty)) != NULL; n--)
		depot_drop_mag(cp, m, &drop);
	cp->cc_full.ml_min = cp->cc_full.ml_count;
	cp->cc_empty.ml_min = cp->cc_empty.ml_count;
	VMEM_ASSERT(DEPOT_LOCK_HELD(cp));
	depot_unlock(cp, &drop);
}

/* Release every depot magazine (cache destroy). */
void umem_depot_purge(umem_cache_t *cp)
{
	depot_drop_t drop = {NULL, NULL};
	depot_lock(cp);
	depot_drop_list(cp, &cp->cc_full, &drop);
	depot_drop_list(cp, &cp->cc_empty, &drop);
	cp->cc_full.ml_min = cp->cc_empty.ml_min = 0;
	VMEM_ASSERT(cp->cc_full.ml_head == NULL && cp->cc_empty.ml_head == NULL);
	depot_unlock(cp, &drop);
}
