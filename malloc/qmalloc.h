/*
 * qmalloc.h — what the files of the malloc front end share (not a public
 * interface: the library exports only the C allocation API, exports.map).
 * qmalloc.c owns the blocks and records each call in the allocation trace
 * (trace.h, malloc/TRACE.md); qm_stats.c reads the environment (the
 * counters QUANTA_MALLOC_STATS=1 prints at exit, the trace's
 * QUANTA_MALLOC_TRACE) and ends the trace at exit.
 */
#ifndef QUANTA_QMALLOC_H
#define QUANTA_QMALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QM_HDR_BYTES 16
#define QM_KINDS 4

/* Read the environment once, from the first allocation. */
void qm_env_setup(void);
void qm_stat_alloc_slow(int kind);
void qm_stat_free_slow(int kind);
void qm_stat_realloc_slow(bool in_place);
extern _Atomic bool qm_stats_on;

static inline void qm_stat_alloc(int kind)
{
	if (__builtin_expect(atomic_load_explicit(&qm_stats_on,
	    memory_order_relaxed), 0))
		qm_stat_alloc_slow(kind);
}

static inline void qm_stat_free(int kind)
{
	if (__builtin_expect(atomic_load_explicit(&qm_stats_on,
	    memory_order_relaxed), 0))
		qm_stat_free_slow(kind);
}

static inline void qm_stat_realloc(bool in_place)
{
	if (__builtin_expect(atomic_load_explicit(&qm_stats_on,
	    memory_order_relaxed), 0))
		qm_stat_realloc_slow(in_place);
}

#endif /* QUANTA_QMALLOC_H */
