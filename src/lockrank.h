/*
 * lockrank.h — the rank of every lock of src/, written once, and the
 * lock-order witness that checks them in debug builds.
 *
 * Theory
 * ------
 * Deadlock needs a cycle of threads each waiting for a lock another holds.
 * A cycle cannot form if every thread takes its locks in increasing rank:
 * the holder of the highest-ranked lock in the cycle could not be waiting
 * for a lower one.  So each lock gets a rank below, and the fork protocol
 * (vmem_fork.c) takes every lock in exactly this order; the two are the
 * same list, so they cannot drift apart.
 *
 *   rank  lock                  held across
 *   1     umem_bootstrap_lock   the cache layer's bootstrap (arenas, caches)
 *   2     umem_cache_list_lock  a reap of every cache, a thread's slot flush
 *   3     cc_depot_lock         (nothing: magazines are freed after it)
 *   4     cc_slab_lock          (nothing: dropped around vmem_xalloc/xfree)
 *   5     vmem_list_lock        the checker's walk of every arena
 *   6     vmem_populate_lock    a populate's allocation from vmem_seg
 *   7     ar_lock (an arena's)  never a source call nor a reap (L1)
 *   8     vmem_tag_lock         nothing: taken to move tags
 *   9     locktab_guard         nothing: a leaf lock, taken last (the
 *                               lock table, locktab.h, where the mutexes
 *                               of ranks 3, 4 and 7 live)
 *
 * Documented exceptions (qlock_enter_nested): several locks of one rank
 * may be held at once only by the fork lockup (every depot, every slab,
 * every arena, each in list order) and by the checker (every arena in list
 * order).  Both walk a list under the list's lock, so two of them agree on
 * the order.  A trylock that may fail (qlock_tryenter_any) never waits,
 * so it cannot close a cycle and is not checked; the checker and the
 * bad-free diagnostics use it.
 *
 * The witness (QUANTA_DEBUG builds): each thread counts the locks it holds
 * per rank; taking a lock whose rank is not above every rank held (or not
 * at least, for a nested one) prints both lock names and aborts.  Release
 * builds compile it out: every call below is one static inline pthread
 * call through the platform seam.
 */
#ifndef QUANTA_LOCKRANK_H
#define QUANTA_LOCKRANK_H

#include "platform.h"

typedef enum qlock_rank {
	QLOCK_NONE = 0,
	QLOCK_BOOTSTRAP = 1,
	QLOCK_CACHE_LIST = 2,
	QLOCK_DEPOT = 3,
	QLOCK_SLAB = 4,
	QLOCK_VMEM_LIST = 5,
	QLOCK_POPULATE = 6,
	QLOCK_ARENA = 7,
	QLOCK_TAG = 8,
	QLOCK_LOCKTAB = 9,
	QLOCK_RANKS = 10 /* one past the highest */
} qlock_rank_t;

#if defined(QUANTA_DEBUG) && !defined(QUANTA_NO_WITNESS)
#define QLOCK_WITNESS 1
#else
#define QLOCK_WITNESS 0
#endif

#if QLOCK_WITNESS
/* lockrank.c: the per-thread book, checked before each wait. */
void qlock_witness_enter(qlock_rank_t rank, int nested);
void qlock_witness_exit(qlock_rank_t rank);
unsigned qlock_witness_held(qlock_rank_t rank);
const char *qlock_rank_name(qlock_rank_t rank);
#else
static inline void qlock_witness_enter(qlock_rank_t rank, int nested)
{
	(void)rank;
	(void)nested;
}
static inline void qlock_witness_exit(qlock_rank_t rank)
{
	(void)rank;
}
#endif

/* Take m, of the given rank, above every rank this thread holds. */
static inline void qlock_enter(plat_mutex_t *m, qlock_rank_t rank)
{
	qlock_witness_enter(rank, 0);
	plat_lock_rank_note((int)rank);
	plat_mutex_lock(m);
}

/* Take m while holding others of its own rank: the exceptions above. */
static inline void qlock_enter_nested(plat_mutex_t *m, qlock_rank_t rank)
{
	qlock_witness_enter(rank, 1);
	plat_lock_rank_note((int)rank);
	plat_mutex_lock(m);
}

/* Try m; checked like qlock_enter (the caller waits for it if busy). */
static inline int qlock_tryenter(plat_mutex_t *m, qlock_rank_t rank)
{
	qlock_witness_enter(rank, 0);
	plat_lock_rank_note((int)rank);
	if (plat_mutex_trylock(m))
		return 1;
	qlock_witness_exit(rank);
	return 0;
}

/* Try m in any order: never waits, so never checked. */
static inline int qlock_tryenter_any(plat_mutex_t *m, qlock_rank_t rank)
{
	plat_lock_rank_note((int)rank);
	if (!plat_mutex_trylock(m))
		return 0;
	qlock_witness_enter(rank, 2);
	return 1;
}

static inline void qlock_exit(plat_mutex_t *m, qlock_rank_t rank)
{
	qlock_witness_exit(rank);
	plat_mutex_unlock(m);
}

#endif /* QUANTA_LOCKRANK_H */
