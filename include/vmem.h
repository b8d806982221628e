/*
 * quanta — vmem.h: the public interface of the vmem resource arena.
 *
 * An arena hands out ranges of integers [addr, addr + size).  The integers may
 * be addresses, but also process IDs, file offsets or port numbers: the arena
 * keeps its bookkeeping (boundary tags) outside the resource and never touches
 * it.  The names, types and flags are those that illumos, NetBSD and FreeBSD
 * callers already use, so existing code compiles with -Iinclude unchanged.
 * The library needs no init call: it bootstraps itself on first use.
 *
 * quanta extensions (statistics, dump, failure injection, extend-and-alloc,
 * the heap arena) are declared at the end of this file.
 */
#ifndef QUANTA_VMEM_H
#define QUANTA_VMEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vmem vmem_t;

/* The source arena's import and release functions (vmem_alloc/vmem_free
 * themselves, or the caller's own). */
typedef void *vmem_alloc_t(vmem_t *source, size_t size, int vmflag);
typedef void vmem_free_t(vmem_t *source, void *addr, size_t size);

/* Allocation flags (vmflag of vmem_alloc, vmem_xalloc, vmem_add, ...). */
#define VM_SLEEP 0x00000000    /* may wait for a free; never fails */
#define VM_NOSLEEP 0x00000001  /* fail with NULL rather than wait */
#define VM_PANIC 0x00000002    /* a failure is a diagnostic and abort */
#define VM_BESTFIT 0x00000100  /* smallest free segment that satisfies */
#define VM_FIRSTFIT 0x00000200 /* first that satisfies, in free-list order */
#define VM_NEXTFIT 0x00000400  /* forward from the rotor; recycle late */
#define VM_INSTANTFIT 0x00000000 /* the default: constant time */

/* Creation flags (the vmflag of vmem_create). */
#define VMC_POPULATOR 0x00010000  /* an arena the tag populate passes through */
#define VMC_NO_QCACHE 0x00020000  /* no quantum caches, whatever qcache_max */
/*
 * VMC_IDENTIFIER: the arena's integers are not memory (IDs, ports, offsets).
 * Nothing of quanta ever dereferences an arena's range, so allocation is the
 * same; what changes: an object cache drawing from the arena (umem_cache_create
 * with it as source) never tells a memory checker (ASan, Valgrind) about its
 * buffers, as if created with UMC_NOTOUCH, since they are no addresses; and
 * vmem_dump says "identifier": true (JSON) or "(identifiers)" (text).
 */
#define VMC_IDENTIFIER 0x00040000

/* Type masks of vmem_walk and vmem_size. */
#define VMEM_ALLOC 0x01
#define VMEM_FREE 0x02
#define VMEM_SPAN 0x10
#define VMEM_REENTRANT 0x80000000

/*
 * qcache_max > 0 (and no VMC_NO_QCACHE) gives the arena one object cache per
 * multiple of the quantum up to qcache_max (at most 16): vmem_alloc and
 * vmem_free of those sizes go through them, whatever the policy flag, so an
 * ID arena that wants VM_NEXTFIT recycling keeps qcache_max at 0.
 * vmem_xalloc and vmem_xfree never use them.
 */
vmem_t *vmem_create(const char *arena_name, void *base, size_t size, size_t quantum,
    vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source, size_t qcache_max,
    int vmflag);
void vmem_destroy(vmem_t *arena);
void *vmem_alloc(vmem_t *arena, size_t size, int vmflag);
void vmem_free(vmem_t *arena, void *addr, size_t size);
void *vmem_xalloc(vmem_t *arena, size_t size, size_t align, size_t phase,
    size_t nocross, void *minaddr, void *maxaddr, int vmflag);
void vmem_xfree(vmem_t *arena, void *addr, size_t size);
void *vmem_add(vmem_t *arena, void *addr, size_t size, int vmflag);
int vmem_contains(vmem_t *arena, void *addr, size_t size);
void vmem_walk(vmem_t *arena, int typemask,
    void (*func)(void *arg, void *start, size_t size), void *arg);
size_t vmem_size(vmem_t *arena, int typemask);

/* ---- quanta extensions ------------------------------------------------ */

/* The per-arena counters and derived figures (a consistent snapshot). */
typedef struct vmem_stats {
	uint64_t vs_alloc;           /* segments allocated */
	uint64_t vs_free;            /* segments freed */
	uint64_t vs_wait;            /* VM_SLEEP waits */
	uint64_t vs_fail;            /* failed allocations */
	uint64_t vs_lookup;          /* hash chain steps */
	uint64_t vs_search;          /* free-list steps */
	uint64_t vs_populate_fail;   /* tag populates that failed */
	uint64_t vs_contains;        /* vmem_contains calls */
	uint64_t vs_contains_search; /* span-list steps of vmem_contains */
	size_t vs_mem_inuse;         /* bytes allocated */
	size_t vs_mem_total;         /* bytes in spans */
	size_t vs_mem_import;        /* bytes in imported spans */
	size_t vs_free_bytes;        /* bytes in free segments (total - inuse) */
	size_t vs_largest_free;      /* size of the largest free segment */
	double vs_fragmentation;     /* 1 - largest / free bytes; 0 if none free */
	size_t vs_spans;             /* span count */
	size_t vs_segs_alloc;        /* allocated segments (hash entries) */
	size_t vs_segs_free;         /* free segments */
	size_t vs_hash_buckets;      /* allocated-segment hash size */
	size_t vs_spare_tags;        /* tags on the arena's private spare list */
} vmem_stats_t;

void vmem_stats(vmem_t *arena, vmem_stats_t *out);

/* Dump an arena: its spans, free lists and counters. */
#define VMEM_DUMP_TEXT 0
#define VMEM_DUMP_JSON 1
#define VMEM_DUMP_SCHEMA "quanta.vmem.dump/1"
void vmem_dump(vmem_t *arena, FILE *fp, int format);

/*
 * Failure injection: a NOSLEEP allocation without VM_PANIC fails whenever the
 * platform clock modulo mtbf is zero.  vmp == NULL sets the global value.
 * 0 turns it off; 1 fails every such allocation.  Only the caller's own
 * requests fail: the library's requests on its own behalf (a tag populate)
 * and those under a UMEM_NOFAIL call are spared, so VM_SLEEP and
 * UMEM_NOFAIL calls return whenever memory exists, whatever mtbf is.
 */
void vmem_mtbf_set(vmem_t *arena, uint64_t mtbf);

/*
 * Add [addr, addr + size) to the arena and allocate alloc bytes at addr from
 * it in one step, joining the range to an added span that ends at addr or
 * begins at addr + size instead of creating a new span.
 */
void *vmem_extend_alloc(vmem_t *arena, void *addr, size_t size, size_t alloc,
    int vmflag);

/* The arena of process memory (mmap below it); page quantum. */
vmem_t *vmem_heap_arena(void);

const char *vmem_name(const vmem_t *arena);
size_t vmem_quantum(const vmem_t *arena);

#ifdef __cplusplus
}
#endif
#endif /* QUANTA_VMEM_H */
