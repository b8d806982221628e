/*
 * scenarios.c — what the simulated threads do, and the properties each
 * operation is checked against (the oracle), on every step of every run.
 *
 * Theory
 * ------
 * A scenario is a main function (simulated thread 1) that sets up shared
 * arenas and caches, spawns workers, joins them, frees and destroys
 * everything and checks that nothing leaked.  Workers choose operations
 * from their own PRNG stream (sim_rand_ops), so the operations are fixed
 * by the seed and only the interleaving is the scheduler's.  Beside the
 * invariant checker (every k steps, sched.c), each operation's result is
 * checked at once against the promises of vmem.h and umem.h:
 *   - VM_SLEEP / UMEM_NOFAIL never return NULL;
 *   - a result honours size, quantum, align, phase, nocross, window;
 *   - no two live allocations of one arena overlap (a shadow set per
 *     arena; a free leaves the shadow before the call, an allocation
 *     enters it after, so no other thread can see the range in between);
 *   - a memory buffer keeps the pattern its owner wrote (nobody else was
 *     handed it meanwhile);
 *   - a NOSLEEP failure on an arena private to its thread changes nothing
 *     (vmem_size of allocated and free, the alloc counter);
 *   - callbacks (afunc, ffunc, constructor, destructor, reclaim) run with
 *     no arena, tag or populate lock held (L1);
 *   - at the end every arena is empty before its destroy, and the caches
 *     balance (Q1) after every thread's exit.
 * Fork scenarios check the same in the child, which also allocates,
 * frees, creates and destroys arenas and caches.
 */
#include <string.h>

#include "sim.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#define LIVE_MAX 4096u
#define HELD_MAX 24u

typedef struct shadow {
	const char *name;
	size_t n;
	struct { uintptr_t a; size_t size; } v[LIVE_MAX];
} shadow_t;

static void shadow_add(shadow_t *sh, uintptr_t a, size_t size)
{
	for (size_t i = 0; i < sh->n; i++) {
		uintptr_t b = sh->v[i].a;
		if (a < b + sh->v[i].size && b < a + size)
			sim_fail("arena \"%s\": [+0x%lx, +0x%lx) handed out "
			    "overlaps live [+0x%lx, +0x%lx)", sh->name,
			    (unsigned long)sim_addr((void *)a),
			    (unsigned long)sim_addr((void *)(a + size)),
			    (unsigned long)sim_addr((void *)b),
			    (unsigned long)sim_addr((void *)(b + sh->v[i].size)));
	}
	if (sh->n == LIVE_MAX)
		sim_fail("shadow of \"%s\" full", sh->name);
	sh->v[sh->n].a = a;
	sh->v[sh->n].size = size;
	sh->n++;
}

static void shadow_remove(shadow_t *sh, uintptr_t a)
{
	for (size_t i = 0; i < sh->n; i++) {
		if (sh->v[i].a == a) {
			sh->v[i] = sh->v[--sh->n];
			return;
		}
	}
	sim_fail("arena \"%s\": +0x%lx not in the shadow", sh->name,
	    (unsigned long)sim_addr((void *)a));
}

static unsigned rnd(unsigned n)
{
	return (unsigned)(sim_rand_ops() % n);
}

/* ---- the shared world of a scenario ---------------------------------------- */

typedef struct held {
	uintptr_t a;
	size_t size;
	int kind;      /* 0 vmem_alloc, 1 vmem_xalloc, 2 cache, 3 umem_alloc */
	unsigned which;
	uint64_t pattern;
} held_t;

#define ARENAS_MAX 4u
#define CACHES_MAX 3u

static struct world {
	vmem_t *arena[ARENAS_MAX];
	shadow_t *sh[ARENAS_MAX];
	bool memory[ARENAS_MAX];     /* writable memory */
	unsigned maxq[ARENAS_MAX];   /* largest request, in quanta */
	unsigned narenas;
	umem_cache_t *cache[CACHES_MAX];
	shadow_t *csh[CACHES_MAX];
	unsigned ncaches;
	shadow_t *ush;               /* umem_alloc */
	unsigned workers;
	unsigned tids[SIM_THREADS_MAX];
	unsigned fork_worker;        /* worker that forks, 0 none */
	unsigned fork_at;            /* at which of its operations */
	bool nextfit_ok;
	bool mtbf_always;            /* chaos sets mtbf without faults */
	bool warm;                   /* tiny_push_fork: the worker's slot is set */
} W;

static shadow_t shadows[ARENAS_MAX + CACHES_MAX + 1];

static shadow_t *shadow_new(const char *name)
{
	for (size_t i = 0; i < sizeof(shadows) / sizeof(shadows[0]); i++)
		if (shadows[i].name == NULL) {
			shadows[i].name = name;
			return &shadows[i];
		}
	sim_fail("no shadow left");
}

static void arena_add(vmem_t *vmp, bool memory)
{
	W.arena[W.narenas] = vmp;
	W.sh[W.narenas] = shadow_new(vmem_name(vmp));
	W.memory[W.narenas] = memory;
	W.maxq[W.narenas] = memory ? 40 : 64;
	W.narenas++;
}

/* ---- callbacks (L1, faults) ------------------------------------------------ */

static void *afunc_refusing(vmem_t *src, size_t size, int vmflag)
{
	sim_callback_enter("afunc");
	if (sim_fault(1))
		return NULL;
	return vmem_alloc(src, size, vmflag);
}

static void ffunc_plain(vmem_t *src, void *addr, size_t size)
{
	sim_callback_enter("ffunc");
	vmem_free(src, addr, size);
}

static int ctor_side(void *buf, void *priv, int flags)
{
	(void)priv;
	sim_callback_enter("constructor");
	if (sim_fault(2))
		return -1;
	void *side = umem_alloc(24, flags);
	if (side == NULL)
		return -1;
	memcpy(buf, &side, sizeof(side));
	return 0;
}

static void dtor_side(void *buf, void *priv)
{
	(void)priv;
	sim_callback_enter("destructor");
	void *side;
	memcpy(&side, buf, sizeof(side));
	umem_free(side, 24);
}

static void reclaim_cb(void *priv)
{
	(void)priv;
	sim_callback_enter("reclaim");
}

/* ---- operations, each checked ---------------------------------------------- */

static bool is_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static void fill(held_t *h)
{
	h->pattern = (sim_rand_ops() | 1u);
	size_t n = h->size < 64 ? h->size : 64;
	for (size_t i = 0; i + 8 <= n; i += 8)
		memcpy((char *)h->a + i, &h->pattern, 8);
}

static void verify(const held_t *h, const char *what)
{
	size_t n = h->size < 64 ? h->size : 64;
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, (char *)h->a + i, 8);
		if (v != h->pattern)
			sim_fail("%s +0x%lx: its contents changed while held "
			    "(handed to another owner?)", what,
			    (unsigned long)sim_addr((void *)h->a));
	}
}

static const int policies[] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT,
    VM_NEXTFIT};
static const char *const policy_names[] = {"instant", "best", "first",
    "next"};

static bool op_vmem_alloc(held_t *h, unsigned ai)
{
	vmem_t *vmp = W.arena[ai];
	size_t q = vmem_quantum(vmp);
	size_t size = q * (1 + rnd(W.maxq[ai]));
	unsigned pol = rnd(W.nextfit_ok ? 4 : 3);
	bool sleep = rnd(3) == 0;
	int flags = policies[pol] | (sleep ? VM_SLEEP : VM_NOSLEEP);
	sim_op("vmem_alloc(%s, 0x%zx, %s%s)", vmem_name(vmp), size,
	    policy_names[pol], sleep ? "|SLEEP" : "");
	void *p = vmem_alloc(vmp, size, flags);
	sim_op_end();
	if (p == NULL) {
		if (sleep)
			sim_fail("vmem_alloc(%s, 0x%zx, VM_SLEEP) returned NULL",
			    vmem_name(vmp), size);
		return false;
	}
	if ((uintptr_t)p % q != 0)
		sim_fail("vmem_alloc(%s): +0x%lx not on the quantum",
		    vmem_name(vmp), (unsigned long)sim_addr(p));
	*h = (held_t){(uintptr_t)p, size, 0, ai, 0};
	shadow_add(W.sh[ai], h->a, size);
	if (W.memory[ai])
		fill(h);
	return true;
}

static bool op_vmem_xalloc(held_t *h, unsigned ai)
{
	vmem_t *vmp = W.arena[ai];
	size_t q = vmem_quantum(vmp);
	size_t size = q * (1 + rnd(W.maxq[ai] < 16 ? W.maxq[ai] : 16));
	size_t align = is_pow2(q) ? q << rnd(5) : q;
	size_t phase = rnd(2) ? q * rnd((unsigned)(align / q)) : 0;
	size_t nocross = 0;
	if (rnd(3) == 0 && is_pow2(q)) {
		nocross = align << (2 + rnd(3));
		if (nocross < size + phase + align)
			nocross = 0;
	}
	int pol = policies[rnd(3)];
	bool sleep = rnd(4) == 0 && nocross == 0;
	sim_op("vmem_xalloc(%s, 0x%zx, align 0x%zx, phase 0x%zx, nocross "
	    "0x%zx%s)", vmem_name(vmp), size, align, phase, nocross,
	    sleep ? ", SLEEP" : "");
	void *p = vmem_xalloc(vmp, size, align, phase, nocross, NULL, NULL,
	    pol | (sleep ? VM_SLEEP : VM_NOSLEEP));
	sim_op_end();
	if (p == NULL) {
		if (sleep)
			sim_fail("vmem_xalloc(%s, 0x%zx, VM_SLEEP) returned "
			    "NULL", vmem_name(vmp), size);
		return false;
	}
	uintptr_t a = (uintptr_t)p;
	if ((a - phase) % align != 0)
		sim_fail("vmem_xalloc(%s, align 0x%zx, phase 0x%zx): +0x%lx",
		    vmem_name(vmp), align, phase, (unsigned long)sim_addr(p));
	if (nocross != 0 && (a / nocross) != ((a + size - 1) / nocross))
		sim_fail("vmem_xalloc(%s, nocross 0x%zx): [+0x%lx, +0x%zx) "
		    "crosses", vmem_name(vmp), nocross,
		    (unsigned long)sim_addr(p), (size_t)sim_addr(p) + size);
	*h = (held_t){a, size, 1, ai, 0};
	shadow_add(W.sh[ai], a, size);
	if (W.memory[ai])
		fill(h);
	return true;
}

static bool op_cache_alloc(held_t *h, unsigned ci)
{
	umem_cache_t *cp = W.cache[ci];
	bool nofail = rnd(4) == 0;
	sim_op("umem_cache_alloc(%s%s)", umem_cache_name(cp),
	    nofail ? ", NOFAIL" : "");
	void *p = umem_cache_alloc(cp, nofail ? UMEM_NOFAIL : UMEM_DEFAULT);
	sim_op_end();
	if (p == NULL) {
		if (nofail)
			sim_fail("umem_cache_alloc(%s, UMEM_NOFAIL) returned "
			    "NULL", umem_cache_name(cp));
		return false;
	}
	size_t size = cp->cc_bufsize;
	*h = (held_t){(uintptr_t)p, size, 2, ci, 0};
	shadow_add(W.csh[ci], h->a, size);
	if (size >= 16) {
		/* The first word is the constructor's; the rest is ours. */
		held_t tail = *h;
		tail.a += 8;
		tail.size -= 8;
		fill(&tail);
		h->pattern = tail.pattern;
	}
	return true;
}

static bool op_umem_alloc(held_t *h)
{
	static const size_t sizes[] = {8, 24, 100, 512, 3000, 20000};
	size_t size = sizes[rnd(6)];
	sim_op("umem_alloc(%zu)", size);
	void *p = umem_alloc(size, UMEM_DEFAULT);
	sim_op_end();
	if (p == NULL)
		return false;
	*h = (held_t){(uintptr_t)p, size, 3, 0, 0};
	shadow_add(W.ush, h->a, size);
	fill(h);
	return true;
}

static void op_free(held_t *h)
{
	switch (h->kind) {
	case 0:
	case 1: {
		vmem_t *vmp = W.arena[h->which];
		if (W.memory[h->which])
			verify(h, vmem_name(vmp));
		shadow_remove(W.sh[h->which], h->a);
		sim_op("vmem_%sfree(%s, +0x%lx, 0x%zx)", h->kind ? "x" : "",
		    vmem_name(vmp), (unsigned long)sim_addr((void *)h->a),
		    h->size);
		if (h->kind == 1)
			vmem_xfree(vmp, (void *)h->a, h->size);
		else
			vmem_free(vmp, (void *)h->a, h->size);
		break;
	}
	case 2: {
		umem_cache_t *cp = W.cache[h->which];
		if (h->size >= 16) {
			held_t tail = *h;
			tail.a += 8;
			tail.size -= 8;
			verify(&tail, umem_cache_name(cp));
		}
		shadow_remove(W.csh[h->which], h->a);
		sim_op("umem_cache_free(%s, +0x%lx)", umem_cache_name(cp),
		    (unsigned long)sim_addr((void *)h->a));
		umem_cache_free(cp, (void *)h->a);
		break;
	}
	default:
		verify(h, "umem_alloc");
		shadow_remove(W.ush, h->a);
		sim_op("umem_free(+0x%lx, %zu)",
		    (unsigned long)sim_addr((void *)h->a), h->size);
		umem_free((void *)h->a, h->size);
		break;
	}
	sim_op_end();
}

/* ---- chaos: reaps, magazine resizes, mtbf --------------------------------- */

/* Grow a cache's magazines one step, as a contended depot window does. */
static void mag_resize(umem_cache_t *cp)
{
	qlock_enter(cp->cc_depot_lock, QLOCK_DEPOT);
	if (cp->cc_magtype + 1 < UMEM_MAGTYPES) {
		static const uint32_t sizes[UMEM_MAGTYPES] = {1, 3, 7, 15, 31,
		    63, 127, 255};
		cp->cc_magtype++;
		atomic_store(&cp->cc_magsize, sizes[cp->cc_magtype]);
	}
	qlock_exit(cp->cc_depot_lock, QLOCK_DEPOT);
}

static void op_chaos(void)
{
	switch (rnd(4)) {
	case 0:
		sim_op("umem_reap()");
		umem_reap();
		break;
	case 1:
		if (W.ncaches == 0)
			return;
		sim_op("magazine resize");
		mag_resize(W.cache[rnd(W.ncaches)]);
		break;
	case 2:
		/* A failing populate: the tag arena's NOSLEEP allocations
		 * fail now and then (with faults, or in a populate storm). */
		if (sim_config()->faults == 0 && !W.mtbf_always)
			return;
		sim_op("vmem_mtbf_set(tags, 5)");
		vmem_mtbf_set(vmem_seg_arena, 5);
		if (W.narenas != 0)
			vmem_mtbf_set(W.arena[rnd(W.narenas)], 7);
		break;
	default:
		sim_op("vmem_mtbf_set(tags, 0)");
		vmem_mtbf_set(vmem_seg_arena, 0);
		for (unsigned ai = 0; ai < W.narenas; ai++)
			vmem_mtbf_set(W.arena[ai], 0);
		break;
	}
	sim_op_end();
}

/* ---- populates that fail for real --------------------------------------------- */

/*
 * Injection spares a populate (vmem_mtbf_set fails the caller's own
 * requests only), so a populate fails only when memory runs out: the page
 * map refuses (sim_map_refuse) and the tag, internal and heap arenas are
 * drained, each to its last free range by requests sized from its state
 * (its largest free range, again and again).  The drainer holds the
 * pieces for a few operations (others' VM_SLEEP calls wait meanwhile,
 * since no memory exists), then gives everything back.
 */
#define DRAIN_MAX 64u

typedef struct drain {
	unsigned n;
	vmem_t *a[DRAIN_MAX];
	void *p[DRAIN_MAX];
	size_t size[DRAIN_MAX];
} drain_t;

static void largest_free_cb(void *arg, void *start, size_t size)
{
	(void)start;
	size_t *max = arg;
	if (size > *max)
		*max = size;
}

static size_t largest_free(vmem_t *vmp)
{
	size_t max = 0;
	vmem_walk(vmp, VMEM_FREE, largest_free_cb, &max);
	return max;
}

static void drain_begin(drain_t *d)
{
	vmem_t *internal[3] = {vmem_seg_arena, vmem_internal_arena,
	    vmem_heap_arena()};
	sim_op("drain the tag, internal and heap arenas; page maps refused");
	sim_map_refuse(true);
	for (unsigned k = 0; k < 3; k++) {
		size_t f;
		while (d->n < DRAIN_MAX && (f = largest_free(internal[k])) != 0) {
			void *p = vmem_alloc(internal[k], f, VM_NOSLEEP);
			if (p == NULL)
				break;
			d->a[d->n] = internal[k];
			d->p[d->n] = p;
			d->size[d->n++] = f;
		}
	}
	sim_op_end();
}

static void drain_end(drain_t *d)
{
	sim_op("give the drained pieces back; page maps work again");
	while (d->n != 0) {
		d->n--;
		vmem_free(d->a[d->n], d->p[d->n], d->size[d->n]);
	}
	sim_map_refuse(false);
	sim_op_end();
}

/* ---- the child of a fork ---------------------------------------------------- */

static void child_work(void *arg)
{
	(void)arg;
	held_t h[8];
	unsigned n = 0;
	for (unsigned ai = 0; ai < W.narenas && n < 8; ai++)
		if (op_vmem_alloc(&h[n], ai))
			n++;
	for (unsigned ci = 0; ci < W.ncaches && n < 8; ci++)
		if (op_cache_alloc(&h[n], ci))
			n++;
	if (n < 8 && op_umem_alloc(&h[n]))
		n++;
	sim_op("child: create and destroy an arena and a cache");
	vmem_t *x = vmem_create("child", (void *)0x1000, 0x1000, 16, NULL,
	    NULL, NULL, 64, VM_SLEEP);
	void *p = vmem_alloc(x, 32, VM_SLEEP);
	vmem_free(x, p, 32);
	vmem_destroy(x);
	umem_cache_t *c = umem_cache_create("child_cache", 48, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	void *b = umem_cache_alloc(c, UMEM_NOFAIL);
	umem_cache_free(c, b);
	umem_cache_destroy(c);
	sim_op_end();
	while (n > 0)
		op_free(&h[--n]);
	sim_op("child: umem_reap()");
	umem_reap();
	sim_op_end();
}

/* ---- workers --------------------------------------------------------------- */

typedef struct worker_plan {
	unsigned vmem_pct, cache_pct, umem_pct, chaos_pct;
} worker_plan_t;

static worker_plan_t plan;

static bool op_alloc_any(held_t *h)
{
	unsigned r = rnd(100);
	if (r < plan.vmem_pct && W.narenas != 0) {
		unsigned ai = rnd(W.narenas);
		return rnd(3) == 0 ? op_vmem_xalloc(h, ai) : op_vmem_alloc(h, ai);
	}
	r -= plan.vmem_pct;
	if (r < plan.cache_pct && W.ncaches != 0)
		return op_cache_alloc(h, rnd(W.ncaches));
	return op_umem_alloc(h);
}

static void worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	held_t held[HELD_MAX];
	unsigned n = 0, ops = sim_config()->ops;
	for (unsigned i = 0; i < ops; i++) {
		if (W.fork_worker == me && W.fork_at == i)
			sim_fork(child_work, NULL);
		if (rnd(100) < plan.chaos_pct) {
			op_chaos();
			continue;
		}
		bool alloc = n == 0 || (n < HELD_MAX && rnd(2) == 0);
		if (alloc) {
			if (op_alloc_any(&held[n]))
				n++;
		} else {
			unsigned k = rnd(n);
			op_free(&held[k]);
			held[k] = held[--n];
		}
	}
	/* Free what is held, then exit with full magazines: the thread's
	 * exit (its thread-specific destructor) gives them back. */
	while (n > 0)
		op_free(&held[--n]);
}

/* Workers 1..threads; odd ones run odd (NULL: all run worker). */
static void spawn_workers(sim_fn_t *odd)
{
	unsigned nw = sim_config()->threads;
	if (nw > SIM_THREADS_MAX - 1)
		nw = SIM_THREADS_MAX - 1;
	W.workers = nw;
	for (unsigned i = 1; i <= nw; i++)
		W.tids[i] = sim_spawn(odd != NULL && i % 2 ? odd : worker,
		    (void *)(uintptr_t)i);
}

static void join_workers(void)
{
	for (unsigned i = 1; i <= W.workers; i++)
		sim_join(W.tids[i]);
}

/* Every arena empty before its destroy (its quantum caches' slabs
 * excepted: the destroy gives those back first). */
static void arena_teardown(unsigned ai)
{
	vmem_t *vmp = W.arena[ai];
	if (W.sh[ai]->n != 0)
		sim_fail("arena \"%s\": %zu allocations left at the end",
		    vmem_name(vmp), W.sh[ai]->n);
	size_t cached = 0;
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++) {
		umem_cache_t *cp = vmp->ar_qcache[k];
		if (cp == NULL)
			continue;
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		cached += st.us_slabs * st.us_slab_bytes;
	}
	sim_op("vmem_size(%s, VMEM_ALLOC)", vmem_name(vmp));
	size_t inuse = vmem_size(vmp, VMEM_ALLOC);
	sim_op_end();
	if (inuse != cached)
		sim_fail("arena \"%s\": 0x%zx bytes in use at the end, 0x%zx "
		    "of them in quantum-cache slabs: leaked", vmem_name(vmp),
		    inuse, cached);
	sim_op("vmem_destroy(%s)", vmem_name(vmp));
	vmem_destroy(vmp);
	sim_op_end();
}

static void cache_teardown(unsigned ci)
{
	umem_cache_t *cp = W.cache[ci];
	if (W.csh[ci]->n != 0)
		sim_fail("cache \"%s\": %zu buffers left at the end",
		    umem_cache_name(cp), W.csh[ci]->n);
	sim_op("umem_cache_destroy(%s)", umem_cache_name(cp));
	umem_cache_destroy(cp);
	sim_op_end();
}

static void world_teardown(void)
{
	vmem_mtbf_set(vmem_seg_arena, 0);
	for (unsigned ai = 0; ai < W.narenas; ai++)
		vmem_mtbf_set(W.arena[ai], 0);
	sim_check_now("workers joined", true);
	sim_op("flush this thread's magazines");
	umem_thread_flush_self();
	sim_op_end();
	for (unsigned ci = W.ncaches; ci-- > 0;)
		cache_teardown(ci);
	for (unsigned ai = W.narenas; ai-- > 0;)
		arena_teardown(ai);
	if (W.ush != NULL && W.ush->n != 0)
		sim_fail("umem_alloc: %zu buffers left", W.ush->n);
	sim_check_now("end", true);
}

/* A program's callback that waits a moment for memory (another thread may
 * hold it: a drain) and asks for a retry. */
static int nofail_retry(void)
{
	sim_yield();
	return UMEM_CALLBACK_RETRY;
}

static void world_init(void)
{
	/* UMEM_NOFAIL waits out a shortage instead of exiting. */
	umem_nofail_callback(nofail_retry);
	memset(&W, 0, sizeof(W));
	memset(shadows, 0, sizeof(shadows));
	W.ush = shadow_new("umem_alloc");
}

static void plan_fork(void)
{
	unsigned ops = sim_config()->ops;
	W.fork_worker = 1 + rnd(sim_config()->threads ? sim_config()->threads : 1);
	W.fork_at = ops ? rnd(ops) : 0;
}

/* ---- the scenarios ------------------------------------------------------ */

static void shared_arenas(void)
{
	sim_op("create arenas ids (quantum caches) and mem (over the heap, a populator)");
	arena_add(vmem_create("ids", (void *)0x10000, 0x10000, 1, NULL, NULL,
	    NULL, 8, VM_SLEEP), false);
	/* A populator too: it lives on its tag reserve like the bootstrap
	 * arenas, and R2 holds it to that reserve between operations. */
	arena_add(vmem_create("mem", NULL, 0, 64, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 512, VMC_POPULATOR | VM_SLEEP), true);
	sim_op_end();
}

static void shared_caches(void)
{
	sim_op("create caches obj_ctor and obj_200");
	W.cache[0] = umem_cache_create("obj_ctor", 64, 0, ctor_side,
	    dtor_side, reclaim_cb, NULL, NULL, 0);
	W.cache[1] = umem_cache_create("obj_200", 200, 8, NULL, NULL, NULL,
	    NULL, NULL, 0);
	W.ncaches = 2;
	W.csh[0] = shadow_new("obj_ctor");
	W.csh[1] = shadow_new("obj_200");
	sim_op_end();
}

/* Workers on the shared arenas and/or caches; one of them may fork. */
enum { WORLD_ARENAS = 1, WORLD_CACHES = 2, WORLD_NEXTFIT = 4, WORLD_FORK = 8 };

static void shared_world(worker_plan_t p, unsigned with)
{
	world_init();
	plan = p;
	W.nextfit_ok = (with & WORLD_NEXTFIT) != 0;
	if (with & WORLD_ARENAS)
		shared_arenas();
	if (with & WORLD_CACHES)
		shared_caches();
	if (with & WORLD_FORK)
		plan_fork();
	spawn_workers(NULL);
	join_workers();
	world_teardown();
}

static void sc_vmem_shared(void *arg)
{
	(void)arg;
	shared_world((worker_plan_t){100, 0, 0, 0},
	    WORLD_ARENAS | WORLD_NEXTFIT);
}

static void sc_umem(void *arg)
{
	(void)arg;
	shared_world((worker_plan_t){0, 70, 25, 5}, WORLD_CACHES);
}

static void sc_mixed(void *arg)
{
	(void)arg;
	shared_world((worker_plan_t){40, 40, 15, 5},
	    WORLD_ARENAS | WORLD_CACHES);
}

static void sc_fork(void *arg)
{
	(void)arg;
	shared_world((worker_plan_t){40, 40, 15, 5},
	    WORLD_ARENAS | WORLD_CACHES | WORLD_FORK);
}

/* The fork comes before anything was bootstrapped: a worker's first call
 * bootstraps vmem and the caches while the main thread forks. */
static void boot_worker(void *arg)
{
	(void)arg;
	sim_op("umem_alloc(100) (first use)");
	void *p = umem_alloc(100, UMEM_NOFAIL);
	sim_op_end();
	sim_op("umem_free");
	umem_free(p, 100);
	sim_op_end();
}

static void boot_child(void *arg)
{
	(void)arg;
	sim_op("child: umem_alloc(100)");
	void *p = umem_alloc(100, UMEM_NOFAIL);
	sim_op_end();
	sim_op("child: an arena created, used, destroyed; umem_free");
	vmem_t *x = vmem_create("child", (void *)0x1000, 0x1000, 16, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	void *q = vmem_alloc(x, 16, VM_SLEEP);
	vmem_free(x, q, 16);
	vmem_destroy(x);
	umem_free(p, 100);
	sim_op_end();
}

static void sc_fork_boot(void *arg)
{
	(void)arg;
	umem_nofail_callback(nofail_retry);
	unsigned t = sim_spawn(boot_worker, NULL);
	unsigned delay = rnd(40);
	for (unsigned i = 0; i < delay; i++)
		sim_yield();
	sim_fork(boot_child, NULL);
	sim_join(t);
	sim_check_now("end", true);
}

/* Stacked arenas: l0 (a fixed span of integers) <- l1 (imports through a
 * refusing afunc) <- l2 (imports with vmem_alloc); constrained requests
 * on l2 and l1. */
static void sc_stacked(void *arg)
{
	(void)arg;
	world_init();
	plan = (worker_plan_t){100, 0, 0, 0};
	sim_op("create the stack l0 <- l1 <- l2");
	vmem_t *l0 = vmem_create("l0", (void *)0x100000, 0x100000, 256, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	vmem_t *l1 = vmem_create("l1", NULL, 0, 256, afunc_refusing,
	    ffunc_plain, l0, 0, VM_SLEEP);
	vmem_t *l2 = vmem_create("l2", NULL, 0, 16, vmem_alloc, vmem_free,
	    l1, 64, VM_SLEEP);
	arena_add(l0, false);
	arena_add(l1, false);
	arena_add(l2, false);
	sim_op_end();
	spawn_workers(NULL);
	join_workers();
	world_teardown();
}

/* Populate storms: every worker fills an arena of its own with single
 * quanta, every other one freed, so tags run out again and again while
 * the others allocate; reaps and mtbf come from the chaos operations. */
static void storm_worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	char name[32];
	snprintf(name, sizeof(name), "storm%u", me);
	sim_op("vmem_create(%s)", name);
	vmem_t *vmp = vmem_create(name, (void *)0x1000, 0x100000, 1, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	sim_op_end();
	/* Enough single-quantum pieces (a tag each) that the storms drain
	 * the tag batches, and a window in which populates fail (the tag
	 * arena's allocations fail one time in three). */
	unsigned n = sim_config()->ops * 16;
	bool fail_window = rnd(2) == 0;
	drain_t drain = {.n = 0};
	sim_op("umem_alloc(%zu)", n * sizeof(uintptr_t));
	uintptr_t *got = umem_alloc(n * sizeof(uintptr_t), UMEM_NOFAIL);
	sim_op_end();
	for (unsigned i = 0; i < n; i++) {
		if (fail_window && i == n / 2)
			drain_begin(&drain);
		if (fail_window && i == n / 2 + 24) {
			drain_end(&drain);
			fail_window = false;
		}
		if (rnd(64) == 0)
			op_chaos();
		size_t before_a = vmem_size(vmp, VMEM_ALLOC);
		size_t before_f = vmem_size(vmp, VMEM_FREE);
		sim_op("vmem_alloc(%s, 1, NOSLEEP)", name);
		void *p = vmem_alloc(vmp, 1, VM_NOSLEEP | VM_FIRSTFIT);
		sim_op_end();
		if (p == NULL && (vmem_size(vmp, VMEM_ALLOC) != before_a ||
		    vmem_size(vmp, VMEM_FREE) != before_f))
			sim_fail("vmem_alloc(%s, 1, VM_NOSLEEP) failed and "
			    "changed the arena", name);
		got[i] = (uintptr_t)p;
	}
	if (fail_window)
		drain_end(&drain);
	for (unsigned i = 0; i < n; i += 2)
		if (got[i] != 0) {
			sim_op("vmem_free(%s, 0x%lx)", name,
			    (unsigned long)got[i]);
			vmem_free(vmp, (void *)got[i], 1);
			sim_op_end();
		}
	sim_op("free the rest of %s", name);
	for (unsigned i = 1; i < n; i += 2)
		if (got[i] != 0)
			vmem_free(vmp, (void *)got[i], 1);
	umem_free(got, n * sizeof(uintptr_t));
	sim_op_end();
	if (vmem_size(vmp, VMEM_ALLOC) != 0)
		sim_fail("%s not empty at the end", name);
	sim_op("vmem_destroy(%s)", name);
	vmem_destroy(vmp);
	sim_op_end();
	vmem_mtbf_set(vmem_seg_arena, 0);
}

static void sc_populate(void *arg)
{
	(void)arg;
	world_init();
	plan = (worker_plan_t){0, 60, 40, 10};
	W.mtbf_always = true;
	shared_caches();
	spawn_workers(storm_worker);
	join_workers();
	vmem_mtbf_set(vmem_seg_arena, 0);
	world_teardown();
}

/* Arenas and caches created and destroyed while others allocate. */
static void lifecycle_worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	char name[32];
	for (unsigned i = 0; i < sim_config()->ops / 4 + 1; i++) {
		if (W.fork_worker == me && W.fork_at / 4 == i)
			sim_fork(child_work, NULL);
		snprintf(name, sizeof(name), "life%u_%u", me, i);
		sim_op("create, use and destroy %s and a cache over it", name);
		/* Every other one a populator: its registration and its
		 * removal race populates and forks too. */
		vmem_t *vmp = vmem_create(name, NULL, 0, 32, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 128,
		    (i % 2 ? VMC_POPULATOR : 0) | VM_SLEEP);
		void *p = vmem_alloc(vmp, 64, VM_SLEEP);
		void *q = vmem_alloc(vmp, 4096, VM_SLEEP);
		if (p == NULL || q == NULL)
			sim_fail("VM_SLEEP returned NULL in %s", name);
		vmem_free(vmp, p, 64);
		vmem_free(vmp, q, 4096);
		umem_cache_t *cp = umem_cache_create(name, 40 + 8 * me, 0,
		    ctor_side, dtor_side, NULL, NULL, vmp, 0);
		void *b = umem_cache_alloc(cp, UMEM_DEFAULT);
		if (b != NULL)
			umem_cache_free(cp, b);
		umem_cache_destroy(cp);
		vmem_destroy(vmp);
		sim_op_end();
	}
}

static void sc_lifecycle(void *arg)
{
	(void)arg;
	world_init();
	plan = (worker_plan_t){40, 40, 15, 5};
	shared_arenas();
	shared_caches();
	plan_fork();
	spawn_workers(lifecycle_worker);
	join_workers();
	world_teardown();
}

/* Tiny: one thread frees into its magazine while the main thread forks
 * (the stale-round bug of a push that stores the count first). */
static void tiny_push_worker(void *arg)
{
	(void)arg;
	umem_cache_t *cp = W.cache[1];
	sim_op("alloc a, free a");
	void *a = umem_cache_alloc(cp, UMEM_NOFAIL);
	umem_cache_free(cp, a);
	sim_op_end();
	W.warm = true; /* its slot and magazine exist: the fork may come */
	sim_op("alloc b, c, free c, b");
	void *b = umem_cache_alloc(cp, UMEM_NOFAIL);
	void *c = umem_cache_alloc(cp, UMEM_NOFAIL);
	umem_cache_free(cp, c);
	umem_cache_free(cp, b);
	sim_op_end();
}

static void tiny_child(void *arg)
{
	(void)arg;
	umem_cache_t *cp = W.cache[1];
	sim_op("child: alloc x, y; free both");
	void *x = umem_cache_alloc(cp, UMEM_NOFAIL);
	void *y = umem_cache_alloc(cp, UMEM_NOFAIL);
	if (x == y)
		sim_fail("child: one buffer handed out twice");
	umem_cache_free(cp, x);
	umem_cache_free(cp, y);
	sim_op_end();
}

static void sc_tiny_push_fork(void *arg)
{
	(void)arg;
	world_init();
	/* UMC_NODEBUG: the release fast path (no state bytes, no slab lock
	 * around the push), whose two stores a fork may cut apart. */
	sim_op("umem_cache_create(tiny, UMC_NODEBUG)");
	W.cache[1] = umem_cache_create("tiny", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, UMC_NODEBUG);
	sim_op_end();
	W.csh[1] = shadow_new("tiny");
	W.ncaches = 0; /* the child's generic work leaves it alone */
	unsigned t = sim_spawn(tiny_push_worker, NULL);
	/* Fork once the worker's slot is set up (before, the worker waits
	 * for the locks the fork's prepare holds and never pushes during
	 * it), then at a delay the seed picks. */
	for (unsigned i = 0; i < 10000 && !W.warm; i++)
		sim_yield();
	unsigned delay = rnd(40);
	for (unsigned i = 0; i < delay; i++)
		sim_yield();
	sim_fork(tiny_child, NULL);
	sim_join(t);
	sim_op("umem_cache_destroy(tiny)");
	umem_cache_destroy(W.cache[1]);
	sim_op_end();
	sim_check_now("end", true);
}

/* Tiny: two threads, one allocation and free each, on one arena. */
static void tiny_alloc_worker(void *arg)
{
	held_t h;
	(void)arg;
	if (op_vmem_alloc(&h, 0))
		op_free(&h);
}

static void sc_tiny_alloc(void *arg)
{
	(void)arg;
	world_init();
	sim_op("create arena tiny");
	arena_add(vmem_create("tiny", (void *)0x1000, 0x100, 16, NULL, NULL,
	    NULL, 0, VM_SLEEP), false);
	W.maxq[0] = 4; /* two of the largest fit at once: VM_SLEEP returns */
	sim_op_end();
	unsigned a = sim_spawn(tiny_alloc_worker, NULL);
	unsigned b = sim_spawn(tiny_alloc_worker, NULL);
	sim_join(a);
	sim_join(b);
	world_teardown();
}

const sim_scenario_t sim_scenarios[] = {
	{"vmem_shared", "threads allocate and free on shared arenas (every "
	    "policy, constraints, quantum caches, import from the heap)",
	    sc_vmem_shared, 8, 40, false},
	{"umem", "object caches with constructors that allocate, umem_alloc, "
	    "reaps and magazine resizes; threads exit holding magazines",
	    sc_umem, 8, 40, false},
	{"mixed", "arenas and caches together", sc_mixed, 8, 40, false},
	{"stacked", "three stacked arenas, a refusing source, give-back",
	    sc_stacked, 8, 40, false},
	{"populate", "populate storms (tags drained) while others allocate; "
	    "reaps and mtbf during populates", sc_populate, 6, 30, false},
	{"lifecycle", "arenas (populators among them) and caches created and "
	    "destroyed while others allocate and one forks", sc_lifecycle, 6,
	    24, false},
	{"fork", "a worker forks while the others hold or wait for any lock; "
	    "the child allocates, frees and is checked", sc_fork, 6, 30, false},
	{"fork_boot", "a fork while another thread runs the first bootstrap",
	    sc_fork_boot, 1, 1, true},
	{"tiny_push_fork", "a magazine push racing a fork", sc_tiny_push_fork,
	    1, 1, true},
	{"tiny_alloc", "two threads, one allocation each", sc_tiny_alloc, 2, 1,
	    true},
	/* scenarios_fork.c */
	{"fork_points", "a fork at the k-th point (the seed's) of another "
	    "thread's create, destroy, add, populate, reap, exit, cache create "
	    "or destroy; the child runs every operation", sim_sc_fork_points,
	    1, 1, false},
	{"fork_long", "forks at random points of populate storms, populator "
	    "and cache lifecycles, reaps; the child runs every operation",
	    sim_sc_fork_long, 4, 12, false},
	{"scale", "past every fixed size and first chunk of src/: hundreds "
	    "of arenas, caches and threads, populators and thread ids at "
	    "their limits, a fork among them", sim_sc_scale, 1, 1, false},
};
const size_t sim_nscenarios = sizeof(sim_scenarios) / sizeof(sim_scenarios[0]);

const sim_scenario_t *sim_scenario_extra;

const sim_scenario_t *sim_scenario_find(const char *name)
{
	for (size_t i = 0; i < sim_nscenarios; i++)
		if (strcmp(sim_scenarios[i].name, name) == 0)
			return &sim_scenarios[i];
	if (sim_scenario_extra != NULL &&
	    strcmp(sim_scenario_extra->name, name) == 0)
		return sim_scenario_extra;
	return NULL;
}
