/*
 * qm_stats.c — the front end's environment, read once at the first
 * allocation, and its exit: QUANTA_MALLOC_TRACE=path starts the allocation
 * trace (trace.c, malloc/TRACE.md), whose fork child handler and exit
 * flush are here; QUANTA_MALLOC_STATS=1 counts the front end's operations,
 * one line on stderr at exit, e.g.
 *   quanta-malloc: pid 123 (sqlite3) alloc 5021 (small 4980 medium 30 large 11 boot 0)
 *   free 4990 realloc 12 in place, 40 moved
 * It is how a test proves the preloaded library served the program.  The
 * counters are relaxed atomics, touched only when the variable is set (a
 * flag read from the environment at the first allocation; calls before it
 * are not counted).  The line is formatted into a stack buffer and written
 * with one write(2): no allocation at exit.
 *
 * One destructor, late among the library's (the lowest priority number
 * runs last), ends the trace and then prints the line, with nothing
 * allocated in between: both count the same calls (ci/malloc-test checks
 * that the trace's blocks are the line's allocations plus its in-place
 * reallocs).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "qmalloc.h"
#include "trace.h"

_Atomic bool qm_stats_on;
static _Atomic uint64_t qm_n_alloc[QM_KINDS], qm_n_free;
static _Atomic uint64_t qm_n_inplace, qm_n_moved;

static void qm_fork_child(void)
{
	qtrace_fork_child();
}

/* Under the front end's depth guard: pthread_atfork's own allocation is
 * served from the boot region. */
void qm_env_setup(void)
{
	const char *s = getenv("QUANTA_MALLOC_STATS");
	atomic_store(&qm_stats_on, s != NULL && s[0] == '1');
	qtrace_init_from_env();
	if (qtrace_active())
		(void)pthread_atfork(NULL, NULL, qm_fork_child);
}

void qm_stat_alloc_slow(int kind)
{
	atomic_fetch_add_explicit(&qm_n_alloc[kind], 1, memory_order_relaxed);
}

void qm_stat_free_slow(int kind)
{
	(void)kind;
	atomic_fetch_add_explicit(&qm_n_free, 1, memory_order_relaxed);
}

void qm_stat_realloc_slow(bool in_place)
{
	atomic_fetch_add_explicit(in_place ? &qm_n_inplace : &qm_n_moved, 1,
	    memory_order_relaxed);
}

static void qm_stats_print(void)
{
	uint64_t a[QM_KINDS], all = 0;
	for (int k = 0; k < QM_KINDS; k++)
		all += a[k] = atomic_load(&qm_n_alloc[k]);
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "quanta-malloc: pid %ld (%s) alloc %llu "
	    "(small %llu medium %llu large %llu boot %llu) free %llu realloc "
	    "%llu in place, %llu moved\n", (long)getpid(),
	    program_invocation_short_name,
	    (unsigned long long)all, (unsigned long long)a[0],
	    (unsigned long long)a[1], (unsigned long long)a[2],
	    (unsigned long long)a[3],
	    (unsigned long long)atomic_load(&qm_n_free),
	    (unsigned long long)atomic_load(&qm_n_inplace),
	    (unsigned long long)atomic_load(&qm_n_moved));
	if (n > 0)
		(void)!write(STDERR_FILENO, buf,
		    (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

__attribute__((destructor(101))) static void qm_exit(void)
{
	qtrace_flush();
	if (atomic_load(&qm_stats_on))
		qm_stats_print();
}
