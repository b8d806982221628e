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

#include "umem_impl.h"

#define QM_HDR_BYTES 16
#define QM_KINDS 4
#define QM_MEDIUM_MAX ((size_t)128 << 10)

/* The kind of piece a block sits in (a boot piece: a call made from
 * inside the front end, qmalloc.c). */
enum { QM_SMALL = 0, QM_MEDIUM = 1, QM_LARGE = 2, QM_BOOT = 3 };

static inline size_t qm_roundup(size_t x, size_t align)
{
	return (x + align - 1) & ~(align - 1);
}

/*
 * The placement policy, written once for the front end and for the fuzz
 * target that replays traces as the front end would (fuzz/malloc_trace.c):
 * the kind of piece a block that needs `need` bytes (its header included)
 * comes from, and in *bytesp the size of that piece.
 */
static inline int qm_place(size_t need, size_t page, size_t *bytesp)
{
	if (need <= UMEM_CLASS_MAX_BYTES) {
		*bytesp = umem_alloc_class_bytes(need);
		return QM_SMALL;
	}
	if (need <= QM_MEDIUM_MAX) {
		*bytesp = qm_roundup(need, 16);
		return QM_MEDIUM;
	}
	*bytesp = qm_roundup(need, page);
	return QM_LARGE;
}

/* Where the block starts in its piece: the first align boundary with room
 * for the header in front; a large piece aligned above a page is imported
 * one page below an align boundary, so its block starts one page in. */
static inline size_t qm_place_off(int kind, uintptr_t piece, size_t align,
    size_t page)
{
	if (kind == QM_LARGE && align > page)
		return page;
	return qm_roundup(piece + QM_HDR_BYTES, align) - piece;
}

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
