/*
 * lockrank.c — the lock-order witness of debug builds (lockrank.h gives
 * the ranks and the rule).  Each thread keeps, per rank, how many locks of
 * that rank it holds; a thread's book is its own, so it needs no lock.  A
 * violation is reported with one write(2) naming both locks, then abort:
 * the order is a property of the code, and a run that broke it once can
 * deadlock on the next.  Release builds hold none of this.
 */
#include "lockrank.h"

#if QLOCK_WITNESS
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *const qlock_names[QLOCK_RANKS] = {
	[QLOCK_NONE] = "(none)",
	[QLOCK_BOOTSTRAP] = "umem_bootstrap_lock",
	[QLOCK_CACHE_LIST] = "umem_cache_list_lock",
	[QLOCK_DEPOT] = "cc_depot_lock",
	[QLOCK_SLAB] = "cc_slab_lock",
	[QLOCK_VMEM_LIST] = "vmem_list_lock",
	[QLOCK_POPULATE] = "vmem_populate_lock",
	[QLOCK_ARENA] = "ar_lock",
	[QLOCK_TAG] = "vmem_tag_lock",
	[QLOCK_LOCKTAB] = "locktab_guard",
};

/* Locks held by this thread, per rank.  The fork lockup holds one depot
 * and one slab per cache: an unsigned count has room for any number.
 * The book is the platform's (a simulated thread has its own). */
_Static_assert(QLOCK_RANKS <= PLAT_LOCK_BOOK_SLOTS,
    "the platform's lock book has a counter per rank");
#define qlock_held_n (plat_thread_area()->lock_book)

const char *qlock_rank_name(qlock_rank_t rank)
{
	return (unsigned)rank < QLOCK_RANKS ? qlock_names[rank] : "(bad rank)";
}

static _Noreturn void witness_fail(const char *what, qlock_rank_t rank,
    qlock_rank_t held)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "quanta: lock order: %s %s "
	    "(rank %d) while holding %s (rank %d)\n", what,
	    qlock_rank_name(rank), (int)rank, qlock_rank_name(held),
	    (int)held);
	if (n > 0) {
		ssize_t w = write(STDERR_FILENO, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
		(void)w;
	}
	abort();
}

/* The highest rank this thread holds, QLOCK_NONE when none. */
static qlock_rank_t witness_top(void)
{
	for (int r = QLOCK_RANKS - 1; r > QLOCK_NONE; r--)
		if (qlock_held_n[r] != 0)
			return (qlock_rank_t)r;
	return QLOCK_NONE;
}

/* nested: 0 strictly above, 1 at least (the exceptions), 2 unchecked. */
void qlock_witness_enter(qlock_rank_t rank, int nested)
{
	if (rank <= QLOCK_NONE || rank >= QLOCK_RANKS)
		witness_fail("taking a lock of unknown rank", rank, QLOCK_NONE);
	qlock_rank_t top = witness_top();
	if (nested == 0 && top >= rank)
		witness_fail("taking", rank, top);
	if (nested == 1 && top > rank)
		witness_fail("taking (nested)", rank, top);
	qlock_held_n[rank]++;
}

void qlock_witness_exit(qlock_rank_t rank)
{
	if (rank <= QLOCK_NONE || rank >= QLOCK_RANKS ||
	    qlock_held_n[rank] == 0)
		witness_fail("releasing, not holding,", rank, witness_top());
	qlock_held_n[rank]--;
}

unsigned qlock_witness_held(qlock_rank_t rank)
{
	return (unsigned)rank < QLOCK_RANKS ? qlock_held_n[rank] : 0;
}
#endif

#ifndef QUANTA_SIM
/* The pthread seam's per-thread area (platform.h). */
_Thread_local plat_thread_area_t plat_thread_area_tls;
#ifndef QUANTA_RELEASE
uint64_t (*plat_clock_override)(void);
void *(*plat_pages_map_override)(size_t size);
#endif
#endif
