/*
 * qmalloc.h — what the files of the malloc front end share (not a public
 * interface: the library exports only the C allocation API, exports.map).
 * qmalloc.c owns the blocks; qm_stats.c the counters QUANTA_MALLOC_STATS=1
 * prints at exit; qm_trace.c the operation trace QUANTA_MALLOC_TRACE=file
 * records (its format: malloc/README.md).
 */
#ifndef QUANTA_QMALLOC_H
#define QUANTA_QMALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QM_HDR_BYTES 16
#define QM_KINDS 4

/* Trace operations (one byte in a record). */
enum {
	QM_OP_ALLOC = 1,          /* malloc, calloc, memalign, ... and a move */
	QM_OP_FREE = 2,           /* free, realloc(p, 0), the old block of a move */
	QM_OP_REALLOC_INPLACE = 3 /* realloc that kept the block */
};

/* Read the environment once, from the first allocation. */
void qm_stats_setup(void);
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

void qm_trace_setup(const char *path);
void qm_trace_slow(int op, const void *p, size_t size, size_t align);
extern _Atomic bool qm_trace_on;

static inline void qm_trace(int op, const void *p, size_t size, size_t align)
{
	if (__builtin_expect(atomic_load_explicit(&qm_trace_on,
	    memory_order_acquire), 0))
		qm_trace_slow(op, p, size, align);
}

#endif /* QUANTA_QMALLOC_H */
