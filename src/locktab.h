/*
 * locktab.h — the lock table: where every arena and cache keeps its
 * mutexes (ar_lock, cc_depot_lock, cc_slab_lock point into it).
 *
 * Theory
 * ------
 * A fork's prepare handler takes every allocator lock and the parent and
 * child handlers drop them (vmem_fork.c).  Each write to a page shared
 * copy-on-write costs a page fault on each side of the fork, so a lock
 * inside its arena or cache — one page apart from the next — costs one
 * fault per object per side: 1,000 arenas and caches made a fork 11x as
 * slow as glibc's.  Kept here, one cache line each (no false sharing
 * between two hot locks), the locks of 1,000 arenas and caches fill
 * 3,000 x 64 bytes = 47 pages: a fork dirties those and nothing per
 * object.
 *
 * The slots come from a static first chunk (the first arenas are made
 * before any allocator exists, and a small program maps nothing for
 * them), then from chunks of whole pages mapped through the platform
 * seam, never given back: a destroyed arena's or cache's slot goes on a
 * free list, and the next lock taken from the table is the last one given
 * back (LIFO), so the live locks stay packed.  The table's own guard is a
 * leaf lock (platform.h) of rank QLOCK_LOCKTAB, held for a few stores,
 * never across the page map; the fork protocol takes it last.
 */
#ifndef QUANTA_LOCKTAB_H
#define QUANTA_LOCKTAB_H

#include <stddef.h>

#include "lockrank.h"
#include "platform.h"

#define LOCKTAB_SLOT_BYTES 64           /* one cache line per lock */
#define LOCKTAB_FIRST_SLOTS 256         /* the static chunk: 16 KiB */
#define LOCKTAB_CHUNK_BYTES (64 * 1024) /* each mapped chunk, at least */

/* An initialised mutex of its own slot; NULL when no chunk can be mapped. */
plat_mutex_t *locktab_get(void);
/* Destroy m, a lock of the table no thread holds, and give its slot back. */
void locktab_put(plat_mutex_t *m);
/* Whether m is a slot of the table (live or free). */
int locktab_owns(const plat_mutex_t *m);

typedef struct locktab_stats {
	size_t lt_live;    /* slots handed out and not given back */
	size_t lt_free;    /* slots on the free list */
	size_t lt_carved;  /* slots ever handed out: live + free */
	size_t lt_chunks;  /* mapped chunks (the static one not counted) */
} locktab_stats_t;
void locktab_stats(locktab_stats_t *out);

/*
 * The owners' lists, seen from the table.  An arena on the arena list, a
 * cache on the cache list, has its locks' slots marked with their rank
 * (locktab_list, locktab_unlist: under that list's lock), so the fork
 * protocol takes and drops every listed lock of a rank by a walk of these
 * few pages, never of the owners' pages: after a fork the parent's and
 * the child's first touch of a page costs a TLB miss, of a written one a
 * copy too.  The walks go in table order; only the fork protocol and the
 * checker hold several locks of one rank, each under its list's lock, so
 * the two never wait on each other mid-walk (lockrank.h).
 *
 * locktab_walk_listed calls fn(owner, lock, arg) for every slot listed
 * at rank; the caller holds that list's lock (or is a fork's child,
 * alone).  locktab_pending(m) is a word of m's slot its owner keeps under
 * m: an arena counts there the transient states a fork's child repairs
 * (vmem_child_fixup_arena), so the child visits only the arenas that
 * have one.
 */
typedef void locktab_visit_t(void *owner, plat_mutex_t *m, void *arg);
void locktab_list(plat_mutex_t *m, void *owner, qlock_rank_t rank);
void locktab_unlist(plat_mutex_t *m);
void locktab_walk_listed(qlock_rank_t rank, locktab_visit_t *fn, void *arg);
unsigned *locktab_pending(plat_mutex_t *m);
/* Whether m's slot is listed at rank (its owner is on that list). */
int locktab_listed(const plat_mutex_t *m, qlock_rank_t rank);
/* Take (nested, lockrank.h) or drop every listed lock of rank. */
void locktab_enter_listed(qlock_rank_t rank);
void locktab_exit_listed(qlock_rank_t rank);

/* The fork protocol (vmem_fork.c): take the table's guard last in
 * prepare, drop it in the parent and in the child. */
void locktab_lockup(void);
void locktab_release(void);

#endif /* QUANTA_LOCKTAB_H */
