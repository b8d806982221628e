/*
 * umem_reap.c — reap: what the caches hold beyond their working sets goes
 * back to the arenas; and the deferral of reaps asked for during a
 * populate.
 *
 * Theory
 * ------
 * A reap of one cache: (1) its reclaim callback, so the client can free
 * buffers it was keeping; (2) the depot's excess working set — the
 * magazines each list did not dip into since the previous reap
 * (umem_mag.c) — full ones emptied into the slabs, empty ones freed;
 * (3) every slab that is now entirely free goes back to the arena (its
 * constructed buffers destroyed first).  Thread slots are not touched: a
 * slot is its thread's, and at most 2 magazines per thread per cache stay.
 *
 * umem_reap reaps every cache.  One reap runs at a time (umem_reaping): a
 * reap requested while one runs — typically from inside it, when a
 * destructor's allocation fails — returns at once, since the running reap
 * is already doing the work.
 *
 * Deferral.  A reap allocates and frees (it calls into vmem and into client
 * callbacks), so it must never run inside a populate: the populating thread
 * holds the populate lock and lives on the tag reserve.  umem_reap_request
 * (the arena's hook after a failed allocation) and umem_reap therefore
 * check whether a populate is in progress — on this thread or on any — and
 * if so only set umem_reap_wanted.  umem_reap_pending_run, called by vmem
 * right after it drops the populate lock and by the caches' slow paths,
 * runs the deferred reap once no populate is in progress.
 *
 * What may be called: the depot and slab layers, reclaim callbacks.  Locks:
 * the cache-list lock is held across the reap of all caches (so no cache is
 * destroyed under it); callbacks must not create or destroy caches.
 */
#include "bugs.h"
#include "umem_impl.h"

static _Atomic bool umem_reap_wanted;
static _Atomic bool umem_reaping;
_Atomic uint64_t umem_reap_count;
bool (*umem_populate_probe)(void) = vmem_populate_in_progress;
void (*umem_test_reap_hook)(void);

void umem_cache_reap(umem_cache_t *cp)
{
	VMEM_ASSERT(cp != NULL);
	/* A reap allocates and frees: never inside a populate, never under
	 * an arena or a cache lock (lockrank.h). */
	VMEM_ASSERT(!vmem_populating_self() && ARENA_LOCKS_NONE());
	VMEM_ASSERT(SLAB_LOCKS_NONE() && QLOCK_NONE_HELD(QLOCK_DEPOT));
	if (cp->cc_reclaim != NULL)
		cp->cc_reclaim(cp->cc_private);
	umem_depot_reap(cp);
	umem_slab_release_free(cp, 0);
}

static void reap_all(void)
{
	if (atomic_exchange(&umem_reaping, true))
		return;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	if (umem_test_reap_hook != NULL)
		umem_test_reap_hook();
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next)
		umem_cache_reap(cp);
	VMEM_ASSERT(atomic_load(&umem_reaping));
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	atomic_fetch_add(&umem_reap_count, 1);
	atomic_store(&umem_reaping, false);
}

/* Run now, or defer when a populate is in progress. */
static void reap_or_defer(void)
{
	/* planted bug QB_REAP_IN_POPULATE: the reap runs inside a populate */
	if (umem_populate_probe() && !QUANTA_BUG(QB_REAP_IN_POPULATE)) {
		atomic_store(&umem_reap_wanted, true);
		return;
	}
	atomic_store(&umem_reap_wanted, false);
	reap_all();
}

void umem_reap(void)
{
	umem_bootstrap();
	reap_or_defer();
}

void umem_reap_request(void)
{
	if (!atomic_load_explicit(&umem_ready, memory_order_acquire))
		return;
	reap_or_defer();
}

bool umem_reap_pending(void)
{
	return atomic_load_explicit(&umem_reap_wanted, memory_order_relaxed);
}

void umem_reap_pending_run(void)
{
	/* planted bug QB_REAP_IN_POPULATE: the deferred reap runs in a populate */
	if (!umem_reap_pending() ||
	    (umem_populate_probe() && !QUANTA_BUG(QB_REAP_IN_POPULATE)))
		return;
	if (!atomic_exchange(&umem_reap_wanted, false))
		return;
	reap_all();
}

/* In the child of a fork: a reap another thread was running is gone. */
void umem_child_fixup(void)
{
	atomic_store(&umem_reaping, false);
	VMEM_ASSERT(!atomic_load(&umem_reaping));
}
