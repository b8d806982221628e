/*
 * umem_cache.c — object caches: bootstrap, create and destroy, the public
 * allocate/free entry points with their fast paths, quantum caches,
 * diagnostics of bad frees, statistics and the fork protocol's locks.
 *
 * Theory
 * ------
 * A cache serves buffers through three layers (umem_impl.h): the calling
 * thread's slot (two magazines, no lock), the depot (umem_mag.c, one lock)
 * and the slabs (umem_slab.c, one lock).  The fast path here is the first
 * layer only: find the slot (umem_slot_find: the thread-specific datum and
 * two loads), pop or push one round.  Everything else is out of line.
 *
 * Bootstrap.  No init call: the first umem_* call (or the first cache
 * create, e.g. a quantum cache of vmem_create) runs umem_bootstrap once:
 * it creates the metadata arena (umem_meta, quantum 16, importing from the
 * heap arena), the default arena (umem_default, quantum 16, over the heap),
 * the thread id arena and key, and the size-class caches of umem_alloc.
 *
 * Bad frees.  Each is diagnosed by vmem_panic with the call and its
 * arguments.  Debug builds check a buffer's state at every hand-over
 * (umem_slab.c), so a free into a magazine of a buffer that is not with a
 * caller, of a buffer of another cache, or (umem_free) with another size
 * than it was allocated with, dies at the call.  Release builds check when
 * a buffer reaches its slab (a magazine emptied, a direct free), where the
 * slab lookup is paid anyway: a wrong cache or a double free is caught
 * there, later than the call; the same-class wrong size of umem_free is not.
 *
 * Lock order (and the fork protocol; the ranks are in lockrank.h): the
 * bootstrap lock (held across the bootstrap only); the cache-list lock;
 * then every depot lock; then every slab lock; then the
 * vmem locks (vmem_fork.c).  No path takes them the other way: the cache
 * layer holds no depot or slab lock across a call into vmem, and holds a
 * depot lock and a slab lock together only in that order (umem_lockup and
 * the checker).
 */
#include <stdio.h>
#include <string.h>

#include "umem_impl.h"

plat_mutex_t umem_cache_list_lock = PLAT_MUTEX_INITIALIZER;
umem_cache_t *umem_cache_list;
vmem_t *umem_meta_arena;
vmem_t *umem_default;
_Atomic bool umem_ready;
/*
 * The bootstrap runs under its own lock, the first of the ranks, not a
 * pthread_once: the fork prepare takes this lock too, so a fork waits for
 * a bootstrap under way and none begins until the child or parent goes on
 * — no child ever sees one half done, whatever the once of the C library
 * (or a sanitizer's interceptor of it) does across a fork.  vmem is
 * bootstrapped first, outside the lock: that installs the fork handlers,
 * so by the time any thread holds this lock, every fork takes it too.
 */
plat_mutex_t umem_bootstrap_lock = PLAT_MUTEX_INITIALIZER;

static void umem_bootstrap_run(void)
{
	vmem_t *heap = vmem_heap_arena();
	umem_meta_arena = vmem_create("umem_meta", NULL, 0, 16, vmem_alloc,
	    vmem_free, heap, 0, VM_SLEEP);
	umem_default = vmem_create("umem_default", NULL, 0, 16, vmem_alloc,
	    vmem_free, heap, 0, VM_SLEEP);
	if (umem_meta_arena == NULL || umem_default == NULL)
		vmem_panic("umem: cannot create the umem_meta and umem_default "
		    "arenas");
	umem_thread_init();
	umem_classes_init();
	plat_preempt_point("umem bootstrap: run, not yet published");
	QANN_PUBLISH(&umem_ready);
	atomic_store_explicit(&umem_ready, true, memory_order_release);
}

void umem_bootstrap(void)
{
	QANN_ATOMIC(&umem_ready);
	if (atomic_load_explicit(&umem_ready, memory_order_acquire)) {
		QANN_RECEIVE(&umem_ready);
		return;
	}
	vmem_bootstrap();
	qlock_enter(&umem_bootstrap_lock, QLOCK_BOOTSTRAP);
	if (!atomic_load_explicit(&umem_ready, memory_order_relaxed))
		umem_bootstrap_run();
	qlock_exit(&umem_bootstrap_lock, QLOCK_BOOTSTRAP);
}

void *umem_meta_alloc(size_t size, size_t align)
{
	return vmem_xalloc(umem_meta_arena, size, align, 0, 0, NULL, NULL,
	    VM_NOSLEEP);
}

void umem_meta_free(void *p, size_t size)
{
	vmem_xfree(umem_meta_arena, p, size);
}

vmem_t *umem_default_arena(void)
{
	umem_bootstrap();
	return umem_default;
}

/* ---- create, destroy ------------------------------------------------------- */

static void cache_list_insert(umem_cache_t *cp)
{
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	umem_cache_t **pp = &umem_cache_list;
	while (*pp != NULL)
		pp = &(*pp)->cc_next;
	*pp = cp;
	locktab_list(cp->cc_depot_lock, cp, QLOCK_DEPOT);
	locktab_list(cp->cc_slab_lock, cp, QLOCK_SLAB);
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

static bool cache_list_remove(umem_cache_t *cp)
{
	bool found = false;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	umem_cache_t **pp = &umem_cache_list;
	while (*pp != NULL && *pp != cp)
		pp = &(*pp)->cc_next;
	if (*pp == cp) {
		*pp = cp->cc_next;
		locktab_unlist(cp->cc_depot_lock);
		locktab_unlist(cp->cc_slab_lock);
		found = true;
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	return found;
}

/* The cache's two locks, slots of the lock table (locktab.h). */
static bool cache_locks_get(umem_cache_t *cp)
{
	cp->cc_depot_lock = locktab_get();
	if (cp->cc_depot_lock != NULL)
		cp->cc_slab_lock = locktab_get();
	return cp->cc_slab_lock != NULL;
}

/* Give back what cache_locks_get took (no thread holds either lock). */
static void cache_locks_put(umem_cache_t *cp)
{
	if (cp->cc_slab_lock != NULL)
		locktab_put(cp->cc_slab_lock);
	if (cp->cc_depot_lock != NULL)
		locktab_put(cp->cc_depot_lock);
	cp->cc_slab_lock = NULL;
	cp->cc_depot_lock = NULL;
}

umem_cache_t *umem_cache_create_impl(const char *name, size_t bufsize,
    size_t align, umem_constructor_t *ctor, umem_destructor_t *dtor,
    umem_reclaim_t *reclaim, void *priv, vmem_t *source, int cflags)
{
	VMEM_ASSERT(bufsize != 0 && align != 0);
	umem_cache_t *cp = umem_meta_alloc(sizeof(*cp), UMEM_CACHE_LINE);
	if (cp == NULL)
		return NULL;
	memset(cp, 0, sizeof(*cp));
	(void)snprintf(cp->cc_name, sizeof(cp->cc_name), "%s", name);
	cp->cc_cflags = cflags;
	cp->cc_arena = source != NULL ? source : umem_default;
	/* Tell a memory checker about buffers only when they are memory
	 * the caller did not ask to keep readable (umem.h, vmem.h). */
	cp->cc_annotate = !(cflags & (UMC_QCACHE | UMC_NOTOUCH)) &&
	    !(cp->cc_arena->ar_cflags & VMC_IDENTIFIER);
	cp->cc_debug = UMEM_DEBUG && !(cflags & UMC_NODEBUG);
	cp->cc_bufsize = bufsize;
	cp->cc_ctor = ctor;
	cp->cc_dtor = dtor;
	cp->cc_reclaim = reclaim;
	cp->cc_private = priv;
	if (!cache_locks_get(cp) || !umem_slab_layout(cp, align)) {
		cache_locks_put(cp);
		umem_meta_free(cp, sizeof(*cp));
		return NULL;
	}
	umem_mag_init_cache(cp);
	cache_list_insert(cp);
	VMEM_ASSERT(cp->cc_slab_bytes >= cp->cc_chunk_bytes);
	VMEM_ASSERT((size_t)cp->cc_nbufs * cp->cc_chunk_bytes <=
	    cp->cc_slab_bytes && cp->cc_chunk_bytes >= bufsize);
	return cp;
}

umem_cache_t *umem_cache_create(const char *name, size_t bufsize,
    size_t align, umem_constructor_t *ctor, umem_destructor_t *dtor,
    umem_reclaim_t *reclaim, void *priv, vmem_t *source, int cflags)
{
	umem_bootstrap();
	const char *nm = name != NULL ? name : "(null)";
	const char *why = NULL;
	if (name == NULL)
		why = "no name";
	else if (bufsize == 0)
		why = "size 0";
	else if (align != 0 && (align & (align - 1)) != 0)
		why = "align is not a power of two";
	else if ((cflags & UMC_QCACHE) && (ctor != NULL || dtor != NULL))
		why = "a quantum cache (UMC_QCACHE) has no constructor";
	else if (cflags & ~UMEM_CFLAGS_KNOWN)
		why = "unknown flags";
	if (why != NULL)
		vmem_panic("umem_cache_create(name \"%s\", size %lu, align %lu, "
		    "flags 0x%x): %s", nm, (unsigned long)bufsize,
		    (unsigned long)align, (unsigned)cflags, why);
	if (align == 0)
		align = 8;
	return umem_cache_create_impl(name, bufsize, align, ctor, dtor,
	    reclaim, priv, source, cflags);
}

void umem_cache_destroy(umem_cache_t *cp)
{
	if (cp == NULL)
		vmem_panic("umem_cache_destroy(cache NULL): no cache");
	if (!cache_list_remove(cp))
		vmem_panic("umem_cache_destroy(cache %p): not a live cache",
		    (void *)cp);
	umem_slots_flush_all(cp);
	umem_depot_purge(cp);
	VMEM_ASSERT(cp->cc_full.ml_count == 0 && cp->cc_empty.ml_count == 0);
	size_t leaked = umem_slab_destroy_all(cp);
	if (leaked != 0) {
		char buf[160];
		int n = snprintf(buf, sizeof(buf), "umem_cache_destroy(%s): "
		    "leaked %lu buffers\n", cp->cc_name, (unsigned long)leaked);
		(void)fwrite(buf, 1, (size_t)n, stderr);
	}
	VMEM_ASSERT(cp->cc_nslabs == 0);
	umem_slab_hash_fini(cp);
	umem_slots_fini(cp);
	cache_locks_put(cp);
	umem_meta_free(cp, sizeof(*cp));
}

/* ---- the fast paths ------------------------------------------------------- */

static inline void *cache_alloc_fast(umem_cache_t *cp, int vmflag)
{
	umem_slot_t *sl = umem_slot_find(cp);
	if (__builtin_expect(sl != NULL && sl->sl_rounds > 0, 1))
		return umem_slot_pop(cp, sl);
	return umem_alloc_slow(cp, sl, vmflag);
}

static inline void cache_free_fast(umem_cache_t *cp, void *buf,
    umem_call_t call, size_t size)
{
	if (UMEM_DEBUG && cp->cc_debug)
		umem_debug_check_free(cp, buf, call, size);
	umem_slot_t *sl = umem_slot_find(cp);
	if (__builtin_expect(umem_slot_free(cp, sl, buf, call, size), 1))
		return;
	umem_free_slow(cp, sl, buf, call, size);
}

void *umem_cache_alloc_impl(umem_cache_t *cp, int vmflag)
{
	return cache_alloc_fast(cp, vmflag);
}

/* ---- the public calls ---------------------------------------------------- */

static void annotate_alloc(const umem_cache_t *cp, void *buf, size_t size)
{
	if (!cp->cc_annotate)
		return;
	UMEM_ASAN_UNPOISON(buf, size);
	VALGRIND_MALLOCLIKE_BLOCK(buf, size, 0, cp->cc_ctor != NULL);
}

static void annotate_free(const umem_cache_t *cp, void *buf, size_t size)
{
	if (!cp->cc_annotate)
		return;
	VALGRIND_FREELIKE_BLOCK(buf, 0);
	UMEM_ASAN_POISON(buf, size);
}

/* One try of umem_cache_alloc (arg: the cache). */
static void *cache_alloc_once(void *arg)
{
	umem_cache_t *cp = arg;
	void *buf = cache_alloc_fast(cp, VM_NOSLEEP);
	if (buf == NULL) {
		atomic_fetch_add(&cp->cc_alloc_fail, 1);
		return NULL;
	}
	annotate_alloc(cp, buf, cp->cc_bufsize);
	return buf;
}

void *umem_cache_alloc(umem_cache_t *cp, int umflag)
{
	if (cp == NULL)
		vmem_panic("umem_cache_alloc(cache NULL, flags 0x%x): no cache",
		    (unsigned)umflag);
	/* A call that may not fail is spared failure injection (vmem.c). */
	bool nofail = (umflag & UMEM_NOFAIL) != 0;
	if (nofail)
		vmem_inject_spare_enter();
	void *buf = cache_alloc_once(cp);
	if (buf == NULL && nofail)
		buf = umem_nofail_retry(cache_alloc_once, cp,
		    "umem_cache_alloc", cp->cc_name, cp->cc_bufsize);
	if (nofail)
		vmem_inject_spare_exit();
	return buf;
}

void umem_cache_free(umem_cache_t *cp, void *buf)
{
	if (cp == NULL)
		vmem_panic("umem_cache_free(cache NULL, buf %p): no cache", buf);
	if (buf == NULL)
		vmem_panic("umem_cache_free(cache \"%s\", buf NULL): no buffer",
		    cp->cc_name);
	if (UMEM_DEBUG && cp->cc_debug)
		umem_debug_check_free(cp, buf, UMEM_CALL_CACHE_FREE, 0);
	annotate_free(cp, buf, cp->cc_bufsize);
	umem_slot_t *sl = umem_slot_find(cp);
	if (umem_slot_free(cp, sl, buf, UMEM_CALL_CACHE_FREE, 0))
		return;
	umem_free_slow(cp, sl, buf, UMEM_CALL_CACHE_FREE, 0);
}

/* ---- quantum caches --------------------------------------------------------- */

/* All quantum caches of an arena share one slab size: a power of two at
 * least 3 x qcache_max, so the largest holds 3 (and a slab one cache gives
 * back fits any other). */
size_t umem_qcache_slab_bytes(const vmem_t *arena)
{
	size_t want = 3 * arena->ar_qcache_max, s = arena->ar_quantum;
	for (unsigned i = 0; i < 64 && s < want; i++)
		s <<= 1;
	return s;
}

/*
 * A vmem_free of an arena with quantum caches, of a size above qcache_max:
 * the hash would find a slab of a quantum cache if addr is a slab's first
 * buffer and the size is the slab's, and free the slab under the cache
 * (found by the bad_calls fuzz target).  So a size equal to the slab size
 * is checked against every quantum cache's slabs first.
 */
void umem_qcache_check_arena_free(vmem_t *arena, void *addr, size_t size)
{
	size_t slab = umem_qcache_slab_bytes(arena);
	size_t q = arena->ar_quantum;
	if (size > SIZE_MAX - (q - 1) || ((size + q - 1) & ~(q - 1)) != slab)
		return;
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++) {
		umem_cache_t *cp = arena->ar_qcache[k];
		if (cp == NULL)
			continue;
		qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
		umem_slab_t *sp = umem_slab_lookup(cp, (uintptr_t)addr);
		bool slab_start = sp != NULL && sp->sb_base == (uintptr_t)addr;
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
		if (slab_start)
			vmem_panic("vmem_free(arena \"%s\", addr 0x%lx, size "
			    "0x%lx): wrong size: the address is a slab of "
			    "quantum cache \"%s\" (its buffers are freed with "
			    "sizes up to qcache_max 0x%lx)", arena->ar_name,
			    (unsigned long)(uintptr_t)addr, (unsigned long)size,
			    cp->cc_name, (unsigned long)arena->ar_qcache_max);
	}
}

umem_cache_t *umem_qcache_create(vmem_t *arena, size_t size)
{
	char name[VMEM_NAMELEN + 24];
	umem_bootstrap();
	VMEM_ASSERT(size != 0 && size % arena->ar_quantum == 0);
	(void)snprintf(name, sizeof(name), "%s_%lu", arena->ar_name,
	    (unsigned long)size);
	return umem_cache_create_impl(name, size, arena->ar_quantum, NULL, NULL,
	    NULL, NULL, arena, UMC_QCACHE);
}

void *umem_qcache_alloc(umem_cache_t *cp, int vmflag)
{
	void *addr = cache_alloc_fast(cp, vmflag);
	if (addr == NULL)
		atomic_fetch_add(&cp->cc_alloc_fail, 1);
	return addr;
}

void umem_qcache_free(umem_cache_t *cp, void *addr, size_t size)
{
	cache_free_fast(cp, addr, UMEM_CALL_VMEM_FREE, size);
}

void umem_qcache_destroy(umem_cache_t *cp)
{
	umem_cache_destroy(cp);
}

/* ---- diagnostics ----------------------------------------------------------- */

_Noreturn void umem_bad_free(const umem_cache_t *cp, const void *buf,
    umem_call_t call, size_t size, const char *why)
{
	switch (call) {
	case UMEM_CALL_FREE:
		vmem_panic("umem_free(buf %p, size %lu): %s (cache \"%s\")",
		    buf, (unsigned long)size, why, cp->cc_name);
	case UMEM_CALL_VMEM_FREE:
		vmem_panic("vmem_free(arena \"%s\", addr %p, size 0x%lx): %s "
		    "(quantum cache \"%s\")", vmem_name(cp->cc_arena), buf,
		    (unsigned long)size, why, cp->cc_name);
	case UMEM_CALL_INTERNAL:
		vmem_panic("umem_cache_free(cache \"%s\", buf %p): %s (found "
		    "when the buffer left a magazine for its slab)",
		    cp->cc_name, buf, why);
	case UMEM_CALL_CACHE_FREE:
	default:
		vmem_panic("umem_cache_free(cache \"%s\", buf %p): %s",
		    cp->cc_name, buf, why);
	}
}

/*
 * The cache whose slabs hold addr, for a diagnostic.  Best effort, since
 * the process is about to abort: the list is walked even when its lock is
 * busy (the dying thread may hold it: a flush at thread exit), and a cache
 * whose slab lock is busy is skipped rather than waited for.
 */
static const umem_cache_t *cache_owning(uintptr_t addr)
{
	const umem_cache_t *owner = NULL;
	bool listed = qlock_tryenter_any(&umem_cache_list_lock,
	    QLOCK_CACHE_LIST);
	size_t n = 0;
	for (umem_cache_t *cp = umem_cache_list; cp != NULL && owner == NULL &&
	    n < 100000; cp = cp->cc_next, n++) {
		if (!qlock_tryenter_any(cp->cc_slab_lock, QLOCK_SLAB))
			continue;
		if (umem_slab_lookup(cp, addr) != NULL)
			owner = cp;
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	}
	if (listed)
		qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	return owner;
}

_Noreturn void umem_bad_free_foreign(const umem_cache_t *cp, const void *buf,
    umem_call_t call, size_t size)
{
	char why[96];
	const umem_cache_t *owner = cache_owning((uintptr_t)buf);
	if (owner != NULL)
		(void)snprintf(why, sizeof(why), "buffer belongs to cache "
		    "\"%s\"", owner->cc_name);
	else
		(void)snprintf(why, sizeof(why), "buffer belongs to no cache");
	umem_bad_free(cp, buf, call, size, why);
}

/* ---- statistics, names ------------------------------------------------------ */

void umem_cache_stats(umem_cache_t *cp, umem_cache_stats_t *out)
{
	memset(out, 0, sizeof(*out));
	out->us_bufsize = cp->cc_bufsize;
	out->us_chunk_bytes = cp->cc_chunk_bytes;
	out->us_slab_bytes = cp->cc_slab_bytes;
	qlock_enter(cp->cc_depot_lock, QLOCK_DEPOT);
	out->us_mags_full = cp->cc_full.ml_count;
	out->us_mags_empty = cp->cc_empty.ml_count;
	for (umem_mag_t *m = cp->cc_full.ml_head; m != NULL; m = m->mg_next)
		out->us_bufs_depot += m->mg_cap;
	out->us_magsize = atomic_load(&cp->cc_magsize);
	out->us_depot_contended = cp->cc_depot_contended;
	qlock_exit(cp->cc_depot_lock, QLOCK_DEPOT);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	out->us_slabs = cp->cc_nslabs;
	out->us_slabs_free = cp->cc_nslabs_free;
	out->us_bufs_total = cp->cc_nslabs * cp->cc_nbufs;
	out->us_bufs_slab_free = cp->cc_bufs_slab_free;
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	out->us_constructed = atomic_load(&cp->cc_constructed);
	out->us_destructed = atomic_load(&cp->cc_destructed);
	out->us_slab_create = atomic_load(&cp->cc_slab_create);
	out->us_slab_destroy = atomic_load(&cp->cc_slab_destroy);
	out->us_alloc_fail = atomic_load(&cp->cc_alloc_fail);
}

const char *umem_cache_name(const umem_cache_t *cp)
{
	return cp->cc_name;
}

/* ---- fork ---------------------------------------------------------------- */

/* In rank order (lockrank.h): the list, every depot, then every slab of
 * a listed cache, found in the lock table (locktab.h), not by the list. */
void umem_lockup(void)
{
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	locktab_enter_listed(QLOCK_DEPOT);
	locktab_enter_listed(QLOCK_SLAB);
}

void umem_release(void)
{
	locktab_exit_listed(QLOCK_SLAB);
	locktab_exit_listed(QLOCK_DEPOT);
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}
