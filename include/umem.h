/*
 * quanta — umem.h: the public interface of the object caches.
 *
 * An object cache hands out fixed-size buffers, kept constructed between
 * uses, through per-thread magazines in front of a depot in front of slabs
 * carved from a vmem arena.  umem_alloc/umem_free serve arbitrary sizes from
 * a fixed set of size-class caches (and from an arena above the largest
 * class).  The names, types and flags are those illumos callers already use,
 * so existing code compiles with -Iinclude unchanged.  No init call: the
 * first umem_* call bootstraps the library.
 */
#ifndef QUANTA_UMEM_H
#define QUANTA_UMEM_H

#include <stddef.h>
#include <stdint.h>

#include "vmem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct umem_cache umem_cache_t;

/* Returns 0 when buf is constructed, non-zero when construction failed. */
typedef int umem_constructor_t(void *buf, void *private_arg, int umflag);
typedef void umem_destructor_t(void *buf, void *private_arg);
/* Asked to give memory back: the cache's arena is short. */
typedef void umem_reclaim_t(void *private_arg);

/* Allocation flags (umflag). */
#define UMEM_DEFAULT 0x0000 /* may fail: NULL when no memory */
#define UMEM_NOFAIL 0x0100  /* never NULL: the nofail callback decides */

/*
 * Creation flags (cflags of umem_cache_create); any other bit is a
 * diagnostic and abort.  No cache ever writes into a buffer (free-list
 * links, slab headers and magazines all live outside the buffers), so
 * UMC_NOTOUCH changes one thing: a free buffer is not poisoned for ASan or
 * Valgrind, so a caller may still read it (type-stable memory, readers that
 * race a free).  illumos' UMC_NOHASH is not provided: the buffer-to-slab
 * lookup is always the slab hash, since the slab header is never inside
 * the slab (a quantum cache's slab may be IDs, not memory).
 */
#define UMC_NOTOUCH 0x00010000   /* free buffers stay readable to checkers */
#define UMC_NODEBUG 0x00020000   /* no per-buffer debug checks */
#define UMC_NOMAGAZINE 0x00040000 /* no magazine layer: every call locks */
/* quanta: a quantum cache.  Buffers are ranges of the source arena (maybe
 * IDs, not memory): no constructor, no debug memory checks, never touched. */
#define UMC_QCACHE 0x00100000

/* The nofail callback's answers. */
#define UMEM_CALLBACK_RETRY 0
#define UMEM_CALLBACK_EXIT(status) (0x100 | ((status) & 0xFF))
typedef int umem_nofail_callback_t(void);

umem_cache_t *umem_cache_create(const char *cache_name, size_t bufsize,
    size_t align, umem_constructor_t *constructor,
    umem_destructor_t *destructor, umem_reclaim_t *reclaim,
    void *private_arg, vmem_t *source, int cflags);
void umem_cache_destroy(umem_cache_t *cache);
void *umem_cache_alloc(umem_cache_t *cache, int umflag);
void umem_cache_free(umem_cache_t *cache, void *buf);

void *umem_alloc(size_t size, int umflag);
void *umem_zalloc(size_t size, int umflag);
void umem_free(void *buf, size_t size);

/* Give back what the caches hold beyond their working sets. */
void umem_reap(void);
void umem_nofail_callback(umem_nofail_callback_t *callback);

/* ---- quanta extensions ------------------------------------------------ */

/* A cache's counters and what it holds (a snapshot). */
typedef struct umem_cache_stats {
	size_t us_bufsize;        /* the size callers asked for */
	size_t us_chunk_bytes;    /* bytes one buffer occupies in a slab */
	size_t us_slab_bytes;     /* bytes of one slab */
	size_t us_slabs;          /* slabs the cache holds */
	size_t us_slabs_free;     /* slabs with every buffer free */
	size_t us_bufs_total;     /* buffers in all slabs */
	size_t us_bufs_slab_free; /* free in slabs */
	size_t us_bufs_depot;     /* in the depot's full magazines */
	size_t us_mags_full;      /* full magazines in the depot */
	size_t us_mags_empty;     /* empty magazines in the depot */
	size_t us_magsize;        /* rounds of a new magazine */
	uint64_t us_constructed;  /* constructor calls that succeeded */
	uint64_t us_destructed;   /* destructor calls */
	uint64_t us_slab_create;  /* slabs imported from the arena */
	uint64_t us_slab_destroy; /* slabs given back */
	uint64_t us_alloc_fail;   /* allocations that returned NULL */
	uint64_t us_depot_contended; /* depot lock acquisitions that waited */
} umem_cache_stats_t;

void umem_cache_stats(umem_cache_t *cache, umem_cache_stats_t *out);
const char *umem_cache_name(const umem_cache_t *cache);
/* The arena umem_alloc and caches without a source draw from. */
vmem_t *umem_default_arena(void);

#ifdef __cplusplus
}
#endif
#endif /* QUANTA_UMEM_H */
