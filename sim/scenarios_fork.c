/*
 * scenarios_fork.c — forks at every scheduling point of the allocator's
 * short paths and at random points of its long ones, a child that runs
 * every public operation, and worlds past every fixed size of src/.
 *
 * Theory
 * ------
 * A fork freezes every other thread where it stands; whatever state a
 * thread can be in between two scheduling points is a state a child must
 * live with.  So:
 *   - fork_points: thread 2 does ONE operation of the allocator (an arena
 *     create, plain or VMC_POPULATOR; a destroy of each; vmem_add; the
 *     allocation that runs a populate; umem_reap; its own exit with loaded
 *     magazines; a cache create; a cache destroy) while thread 1 waits
 *     (sim_wait_points) until thread 2 has taken exactly k scheduling
 *     points of it, then forks with thread 2 frozen (sim_freeze: it runs
 *     only while the fork's prepare waits for a lock it holds).  The seed
 *     picks the operation and k (seed / SEED_DIV, through the table
 *     fp_slots), so a sweep of consecutive seeds forks at every point of
 *     every short path in turn (a k past the end forks after thread 2
 *     exited).  Only one thread runs meanwhile, so the point is exact
 *     whatever the strategy.
 *   - fork_long: workers run the long paths (populate storms, creates and
 *     destroys of populators and caches over them, reaps, exits with full
 *     magazines) and thread 1 forks several times, each at a random point
 *     of a random worker's run.
 *   - scale: the sizes below, each past its first chunk, forks among
 *     them; one phase a seed (seed / SEED_DIV mod SC_PHASES): 0 the
 *     lock table, 1 the crowd of threads, 2 populators, 3 "many",
 *     4 caches (qwide, magmax, tiny1), 5 umem_alloc, 6 thread ids.
 * Every child runs child_all: first "nothing the parent held is lost"
 * (each allocation the parent's threads completed and did not start to
 * free is inside an allocated segment of its arena — vmem_walk — and
 * keeps its pattern; nothing the child is handed overlaps one), then
 * every public operation: vmem_create plain (then vmem_add) and
 * VMC_POPULATOR, vmem_alloc under each policy and vmem_xalloc under each
 * with align, phase and nocross, on its own arenas and the parent's;
 * a forced populate (the global tag list drained until a populate runs);
 * a cache created over its populator, allocated, freed, umem_reap; the
 * parent's caches and umem_alloc/free; every free; its arenas empty
 * (their quantum caches' slabs aside) before vmem_destroy and
 * umem_cache_destroy; then the parent's allocations freed; then the whole
 * checker with the caches.  A child that hangs (deadlock, step budget) or
 * fails a check fails the seed, with its trace (sched.c).
 *
 * Fixed sizes and first chunks of src/ and sim/, and what crosses them
 * (scenario scale, phase in brackets, unless named):
 *   VMEM_BOOTSTRAP_SEGS 128, VMEM_POPULATE_BYTES 64 KiB (a batch of
 *     tags): "many" [3] holds SC_MANY segments, several batches; every
 *     fork child's forced populate drains a batch (fork_points,
 *     fork_long, scale [0, 1, 3]).
 *   VMEM_HASH_INITIAL 16 (the embedded table) and the hash's growth and
 *     shrink: "many" [3] (4,096 buckets, checked), then freed.
 *   VMEM_SPARES_MAX 64: "many" freed gives its tags back (checked).
 *   VMEM_QCACHE_MAX 16: "qwide" [4] asks qcache_max 32 quanta and
 *     allocates 1..24 quanta (16 caches, the rest by segment).
 *   VMEM_RELEASE_MAX 2 (pending span releases an operation carries):
 *     the populator destroys [2] and fork_long's give-backs.
 *   The populator table (VMEM_POPULATORS_MAX 16 until main's 4aa8077,
 *     a list since, with no bound): SC_POPULATORS at once [2] (vmem_list
 *     counted), each used, a forced populate restocking all of them,
 *     destroyed, created again.
 *   LOCKTAB_FIRST_SLOTS 256 (the static chunk), LOCKTAB_CHUNK_BYTES
 *     64 KiB (1,024 slots): SC_ARENAS arenas with 4 quantum caches each
 *     (2 locks a cache) and SC_CACHES caches [0]: over 1,500 lock slots,
 *     past the static chunk and the first mapped one; a fork locks all.
 *   UMEM_SLOTS_PER_CHUNK 64 (thread slots a chunk): SC_THREADS workers
 *     alive at once [1], each holding a buffer of both shared caches; a
 *     fork at a random point of one of them.
 *   UMEM_THREADS_MAX 4096 (UMEM_SLOT_CHUNKS 64 chunks), a hard limit,
 *     crossed [6]: all but SC_IDS_LEFT ids taken out of umem_thread_ids,
 *     then SC_IDS_LEFT + SC_OVER_LIMIT workers at once: the last get no
 *     id and no slot (umem_thread.c: depot and slabs directly; checked)
 *     and allocate and free alike.
 *   UMEM_MAGSIZE_MAX 255: "magmax" [4] at its largest magazine type,
 *     600 buffers freed by one thread (255-round magazines to the
 *     depot; checked), reaped.
 *   UMEM_SLAB_HASH_INITIAL 16: "magmax" (checked) and "f_big" [4] past
 *     16 slabs.
 *   UMEM_SLAB_BUFS_MAX 4096: "tiny1" [4] (1-byte buffers: a 4 KiB slab
 *     holds exactly 4,096, the clamp itself binds only on larger pages)
 *     past 4,096 buffers, into a second slab (checked).
 *   UMEM_CLASSES_MAX 37, UMEM_CLASS_MAX_BYTES 16 KiB [5]: umem_alloc
 *     from 8 bytes to 16 KiB + 8 in steps of at most 1/64 of the size
 *     (every class, and past the last).
 *   VMEM_HEAP_CHUNK 1 MiB [5]: umem_alloc of 3 MiB, and far over 1 MiB
 *     in pieces.
 *   PLAT_LOCK_BOOK_SLOTS 16 (per thread, one per lock rank): a static
 *     assertion against the ranks; nothing to cross.
 * And of sim/:
 *   SIM_THREADS_MAX 255 (was 12): scale runs up to 3 + SC_THREADS
 *     threads [1]; sim_spawn past it fails the run, saying so.
 *   SIM_HELD_ARENAS 4 (per-object locks a thread's books name): only the
 *     fork's lockup holds more, and its thread is never lost.
 *   SIM_CHOICES_MAX 65536 decisions recorded: a longer run records its
 *     first 65,536 (shrink pins those); scale's phases stay under it.
 *   SIM_FREE_BLOCKS_MAX 4096 unmapped blocks kept for reuse (past it the
 *     region, 4 GiB, is used afresh), SIM_POINTS_MAX 32 preemption
 *     points, SIM_TSD_KEYS 8: src/ uses far fewer.
 *   REG_MAX 16384 here (the registry of held allocations): scale's
 *     largest phase holds under 5,000.
 */
#include <string.h>

#include "sim.h"
#include "umem_impl.h"
#include "vmem_impl.h"

/*
 * What a seed picks (fork_points' operation and k, scale's phase) is
 * seed / SEED_DIV: fixed, so a kept record means the same run whatever
 * the scenario count; and a plain sweep, whose seeds of one scenario are
 * nscenarios apart, still meets every value in turn while nscenarios is
 * at most SEED_DIV.
 */
#define SEED_DIV 16u

/* ---- the registry of what the parent's threads hold ------------------- */

enum { K_VMEM, K_XVMEM, K_CACHE, K_UMEM };

typedef struct fheld {
	uintptr_t a;
	size_t size;
	int kind;
	vmem_t *vmp;
	umem_cache_t *cp;
	bool memory;
	uint64_t pattern;
} fheld_t;

#define REG_MAX 16384u
#define FK_ARENAS_MAX 512u
#define FK_CACHES_MAX 512u

static struct {
	fheld_t h[REG_MAX];
	size_t n;
	/* shared arenas and caches every child uses */
	vmem_t *arena[FK_ARENAS_MAX];
	bool memory[FK_ARENAS_MAX];
	unsigned narenas;
	umem_cache_t *cache[FK_CACHES_MAX];
	unsigned ncaches;
} R;

static unsigned rnd(unsigned n)
{
	return n == 0 ? 0 : (unsigned)(sim_rand_ops() % n);
}

static void pattern_fill(fheld_t *h)
{
	h->pattern = sim_rand_ops() | 1u;
	if (!h->memory)
		return;
	size_t off = h->kind == K_CACHE ? 8 : 0; /* a constructor's word */
	for (size_t i = off; i + 8 <= h->size && i < 64; i += 8)
		memcpy((char *)h->a + i, &h->pattern, 8);
}

static void pattern_verify(const fheld_t *h, const char *who)
{
	if (!h->memory)
		return;
	size_t off = h->kind == K_CACHE ? 8 : 0;
	for (size_t i = off; i + 8 <= h->size && i < 64; i += 8) {
		uint64_t v;
		memcpy(&v, (char *)h->a + i, 8);
		if (v != h->pattern)
			sim_fail("%s: +0x%lx (%zu bytes) changed while held",
			    who, (unsigned long)sim_addr((void *)h->a),
			    h->size);
	}
}

/* A new piece must overlap nothing held in the same arena or cache. */
static void reg_overlap(const fheld_t *x, const char *who)
{
	for (size_t i = 0; i < R.n; i++) {
		const fheld_t *h = &R.h[i];
		bool same = (x->kind == K_UMEM || h->kind == K_UMEM) ?
		    x->kind == h->kind : (x->vmp != NULL ?
		    x->vmp == h->vmp : x->cp == h->cp);
		if (same && x->a < h->a + h->size && h->a < x->a + x->size)
			sim_fail("%s: [+0x%lx, +0x%zx) handed out overlaps one "
			    "held since before (+0x%lx, %zu bytes)", who,
			    (unsigned long)sim_addr((void *)x->a),
			    (size_t)sim_addr((void *)x->a) + x->size,
			    (unsigned long)sim_addr((void *)h->a), h->size);
	}
}

static void reg_add(const fheld_t *x, const char *who)
{
	reg_overlap(x, who);
	if (R.n == REG_MAX)
		sim_fail("registry full (%u)", REG_MAX);
	R.h[R.n++] = *x;
}

static fheld_t reg_take(size_t i)
{
	fheld_t h = R.h[i];
	R.h[i] = R.h[--R.n];
	return h;
}

static const int pols[] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT,
    VM_NEXTFIT};
static const char *const pol_names[] = {"instant", "best", "first",
    "next"};

/* Allocate, check, register (returns false on a NOSLEEP failure). */
static bool do_vmem_alloc(vmem_t *vmp, bool memory, size_t size, int pol,
    bool sleep)
{
	sim_op("vmem_alloc(%s, 0x%zx, %s%s)", vmem_name(vmp), size,
	    pol_names[pol], sleep ? "|SLEEP" : "");
	void *p = vmem_alloc(vmp, size, pols[pol] |
	    (sleep ? VM_SLEEP : VM_NOSLEEP));
	sim_op_end();
	if (p == NULL) {
		if (sleep)
			sim_fail("vmem_alloc(%s, 0x%zx, %s|VM_SLEEP) returned "
			    "NULL", vmem_name(vmp), size, pol_names[pol]);
		return false;
	}
	if ((uintptr_t)p % vmem_quantum(vmp) != 0)
		sim_fail("vmem_alloc(%s): +0x%lx off the quantum",
		    vmem_name(vmp), (unsigned long)sim_addr(p));
	fheld_t h = {(uintptr_t)p, size, K_VMEM, vmp, NULL, memory, 0};
	reg_add(&h, vmem_name(vmp));
	pattern_fill(&R.h[R.n - 1]);
	return true;
}

static bool do_vmem_xalloc(vmem_t *vmp, bool memory, size_t size, int pol,
    bool sleep)
{
	size_t q = vmem_quantum(vmp);
	size_t align = (q & (q - 1)) == 0 ? q << (1 + rnd(3)) : q;
	size_t phase = q * rnd((unsigned)(align / q));
	/* nocross is met from the spans only, never by an import
	 * (reference.md): with VM_SLEEP it could wait for ever. */
	size_t nocross = (q & (q - 1)) == 0 && !sleep ? align << 4 : 0;
	if (nocross != 0 && nocross < size + phase + align)
		nocross = 0;
	sim_op("vmem_xalloc(%s, 0x%zx, align 0x%zx, phase 0x%zx, nocross "
	    "0x%zx, %s%s)", vmem_name(vmp), size, align, phase, nocross,
	    pol_names[pol], sleep ? "|SLEEP" : "");
	void *p = vmem_xalloc(vmp, size, align, phase, nocross, NULL, NULL,
	    pols[pol] | (sleep ? VM_SLEEP : VM_NOSLEEP));
	sim_op_end();
	if (p == NULL) {
		if (sleep)
			sim_fail("vmem_xalloc(%s, 0x%zx, %s|VM_SLEEP) returned "
			    "NULL", vmem_name(vmp), size, pol_names[pol]);
		return false;
	}
	uintptr_t a = (uintptr_t)p;
	if ((a - phase) % align != 0 || (nocross != 0 &&
	    a / nocross != (a + size - 1) / nocross))
		sim_fail("vmem_xalloc(%s, 0x%zx, align 0x%zx, phase 0x%zx, "
		    "nocross 0x%zx): +0x%lx breaks them", vmem_name(vmp), size,
		    align, phase, nocross, (unsigned long)sim_addr(p));
	fheld_t h = {a, size, K_XVMEM, vmp, NULL, memory, 0};
	reg_add(&h, vmem_name(vmp));
	pattern_fill(&R.h[R.n - 1]);
	return true;
}

static bool do_cache_alloc(umem_cache_t *cp, bool nofail)
{
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
	fheld_t h = {(uintptr_t)p, cp->cc_bufsize, K_CACHE, NULL, cp, true,
	    0};
	reg_add(&h, umem_cache_name(cp));
	pattern_fill(&R.h[R.n - 1]);
	return true;
}

static bool do_umem_alloc(size_t size, bool nofail)
{
	sim_op("umem_alloc(%zu%s)", size, nofail ? ", NOFAIL" : "");
	void *p = umem_alloc(size, nofail ? UMEM_NOFAIL : UMEM_DEFAULT);
	sim_op_end();
	if (p == NULL) {
		if (nofail)
			sim_fail("umem_alloc(%zu, UMEM_NOFAIL) returned NULL",
			    size);
		return false;
	}
	fheld_t h = {(uintptr_t)p, size, K_UMEM, NULL, NULL, true, 0};
	reg_add(&h, "umem_alloc");
	pattern_fill(&R.h[R.n - 1]);
	return true;
}

static void do_free(fheld_t h)
{
	switch (h.kind) {
	case K_VMEM:
	case K_XVMEM:
		pattern_verify(&h, vmem_name(h.vmp));
		sim_op("vmem_%sfree(%s, +0x%lx, 0x%zx)",
		    h.kind == K_XVMEM ? "x" : "", vmem_name(h.vmp),
		    (unsigned long)sim_addr((void *)h.a), h.size);
		if (h.kind == K_XVMEM)
			vmem_xfree(h.vmp, (void *)h.a, h.size);
		else
			vmem_free(h.vmp, (void *)h.a, h.size);
		break;
	case K_CACHE:
		pattern_verify(&h, umem_cache_name(h.cp));
		sim_op("umem_cache_free(%s, +0x%lx)", umem_cache_name(h.cp),
		    (unsigned long)sim_addr((void *)h.a));
		umem_cache_free(h.cp, (void *)h.a);
		break;
	default:
		pattern_verify(&h, "umem_alloc");
		sim_op("umem_free(+0x%lx, %zu)",
		    (unsigned long)sim_addr((void *)h.a), h.size);
		umem_free((void *)h.a, h.size);
		break;
	}
	sim_op_end();
}

/* Free what matches (vmp, cp; NULL, NULL: everything). */
static void free_matching(vmem_t *vmp, umem_cache_t *cp)
{
	for (size_t i = R.n; i-- > 0;) {
		if (i >= R.n)
			continue;
		fheld_t *h = &R.h[i];
		if ((vmp != NULL && h->vmp != vmp) || (cp != NULL &&
		    h->cp != cp))
			continue;
		do_free(reg_take(i));
	}
}

/* Free the registry entries from index `from` on (a thread's own). */
static void free_from(size_t from)
{
	while (R.n > from)
		do_free(reg_take(R.n - 1));
}

/*
 * vmem_create returns NULL, whatever the flag, when its quantum caches'
 * metadata cannot be allocated, and umem_cache_create when its metadata
 * or locks cannot (reference.md): only under injected faults here, where
 * the call is retried.
 */
static vmem_t *mk_arena(const char *name, void *base, size_t size,
    size_t quantum, vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *src,
    size_t qcache_max, int vmflag)
{
	for (unsigned tries = 0; tries < 64; tries++) {
		vmem_t *vmp = vmem_create(name, base, size, quantum, afunc,
		    ffunc, src, qcache_max, vmflag);
		if (vmp != NULL)
			return vmp;
		if (sim_config()->faults == 0)
			break;
	}
	sim_fail("vmem_create(%s, VM_SLEEP) returned NULL%s", name,
	    sim_config()->faults ? " 64 times" : " with no fault injected");
}

static umem_cache_t *mk_cache(const char *name, size_t size, size_t align,
    umem_constructor_t *ctor, umem_destructor_t *dtor, vmem_t *vmp)
{
	for (unsigned tries = 0; tries < 64; tries++) {
		umem_cache_t *cp = umem_cache_create(name, size, align, ctor,
		    dtor, NULL, NULL, vmp, 0);
		if (cp != NULL)
			return cp;
		if (sim_config()->faults == 0)
			break;
	}
	sim_fail("umem_cache_create(%s) returned NULL%s", name,
	    sim_config()->faults ? " 64 times" : " with no fault injected");
}

static int nofail_retry(void)
{
	return UMEM_CALLBACK_RETRY;
}

/* The arena's bytes in its quantum caches' slabs (what a destroy gives
 * back first). */
static size_t qcache_bytes(vmem_t *vmp)
{
	size_t cached = 0;
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++) {
		umem_cache_t *cp = vmp->ar_qcache[k];
		if (cp == NULL)
			continue;
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		cached += st.us_slabs * st.us_slab_bytes;
	}
	return cached;
}

static void arena_empty_destroy(vmem_t *vmp)
{
	for (size_t i = 0; i < R.n; i++)
		if (R.h[i].vmp == vmp)
			sim_fail("arena \"%s\": destroyed with +0x%lx held",
			    vmem_name(vmp),
			    (unsigned long)sim_addr((void *)R.h[i].a));
	sim_op("vmem_size(%s)", vmem_name(vmp));
	size_t inuse = vmem_size(vmp, VMEM_ALLOC), cached = qcache_bytes(vmp);
	sim_op_end();
	if (inuse != cached)
		sim_fail("arena \"%s\": 0x%zx bytes in use at its destroy, "
		    "0x%zx of them in quantum-cache slabs: leaked",
		    vmem_name(vmp), inuse, cached);
	sim_op("vmem_destroy(%s)", vmem_name(vmp));
	vmem_destroy(vmp);
	sim_op_end();
}

/* ---- a forced populate -------------------------------------------------- */

/*
 * Drain the global tag list through a fresh arena (each allocation off
 * the start of a free segment costs 2 tags) until the census shows a new
 * batch: a populate ran.  Then everything back, the arena destroyed.
 */
static void force_populate(const char *name)
{
	vmem_tag_census_t c0, c;
	vmem_tag_census(&c0);
	sim_op("vmem_create(%s) to drain %zu global tags", name,
	    c0.global_free);
	vmem_t *d = mk_arena(name, (void *)(uintptr_t)1, (size_t)1 << 26, 1,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	sim_op_end();
	size_t cap = c0.global_free + 4 * VMEM_SPARES_MAX, n = 0;
	static uintptr_t got[REG_MAX];
	for (;;) {
		vmem_tag_census(&c);
		if (c.created != c0.created)
			break;
		if (n == cap || n == REG_MAX)
			sim_fail("%zu allocations drained no populate (%zu "
			    "global tags at first, %zu now)", n,
			    c0.global_free, c.global_free);
		void *p = vmem_xalloc(d, 1, 4, 1, 0, NULL, NULL,
		    VM_FIRSTFIT | VM_SLEEP);
		if (p == NULL)
			sim_fail("vmem_xalloc(%s, VM_SLEEP) returned NULL",
			    name);
		got[n++] = (uintptr_t)p;
	}
	sim_op("a populate ran after %zu allocations; free them", n);
	while (n > 0)
		vmem_xfree(d, (void *)got[--n], 1);
	sim_op_end();
	if (vmem_size(d, VMEM_ALLOC) != 0)
		sim_fail("%s not empty after its frees", name);
	sim_op("vmem_destroy(%s)", name);
	vmem_destroy(d);
	sim_op_end();
}

/* ---- the child: nothing lost, then every operation --------------------- */

typedef struct walk_ranges {
	uintptr_t lo[8192], hi[8192];
	size_t n;
	bool overflow;
} walk_ranges_t;

static walk_ranges_t wr;

static void walk_cb(void *arg, void *start, size_t size)
{
	walk_ranges_t *w = arg;
	if (w->n == sizeof(w->lo) / sizeof(w->lo[0])) {
		w->overflow = true;
		return;
	}
	w->lo[w->n] = (uintptr_t)start;
	w->hi[w->n] = (uintptr_t)start + size;
	w->n++;
}

static bool arena_listed(const vmem_t *vmp)
{
	for (vmem_t *v = vmem_list; v != NULL; v = v->ar_next)
		if (v == vmp)
			return true;
	return false;
}

/* Each allocation the parent completed lies in an allocated segment of
 * its arena, and keeps its pattern. */
static void child_nothing_lost(void)
{
	sim_op("child: what the parent held is still accounted for");
	for (unsigned ai = 0; ai < R.narenas; ai++) {
		vmem_t *vmp = R.arena[ai];
		if (!arena_listed(vmp))
			sim_fail("child: shared arena \"%s\" is off the arena "
			    "list", vmem_name(vmp));
		memset(&wr, 0, sizeof(wr));
		vmem_walk(vmp, VMEM_ALLOC, walk_cb, &wr);
		for (size_t i = 0; i < R.n && !wr.overflow; i++) {
			const fheld_t *h = &R.h[i];
			if (h->vmp != vmp)
				continue;
			size_t k = 0;
			while (k < wr.n && !(wr.lo[k] <= h->a &&
			    h->a + h->size <= wr.hi[k]))
				k++;
			if (k == wr.n)
				sim_fail("child: [+0x%lx, +0x%zx) of arena "
				    "\"%s\", held by the parent, is in no "
				    "allocated segment: lost",
				    (unsigned long)sim_addr((void *)h->a),
				    (size_t)sim_addr((void *)h->a) + h->size,
				    vmem_name(vmp));
		}
	}
	for (size_t i = 0; i < R.n; i++)
		pattern_verify(&R.h[i], "child: held by the parent");
	sim_op_end();
}

static void child_all(void *arg)
{
	(void)arg;
	size_t parent_n = R.n;
	child_nothing_lost();
	sim_op("child: mtbf off");
	vmem_mtbf_set(NULL, 0);
	vmem_mtbf_set(vmem_seg_arena, 0);
	for (unsigned ai = 0; ai < R.narenas; ai++)
		vmem_mtbf_set(R.arena[ai], 0);
	sim_op_end();

	sim_op("child: vmem_create(c_plain) and vmem_add");
	vmem_t *a = mk_arena("c_plain", (void *)0x10000, 0x10000, 16,
	    NULL, NULL, NULL, 64, VM_SLEEP);
	void *added = vmem_add(a, (void *)0x40000, 0x10000, VM_SLEEP);
	sim_op_end();
	if (a == NULL || added != (void *)0x40000)
		sim_fail("child: vmem_create/vmem_add(c_plain, VM_SLEEP) "
		    "failed");
	sim_op("child: vmem_create(c_pop, VMC_POPULATOR)");
	vmem_t *b = mk_arena("c_pop", NULL, 0, 64, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 512, VMC_POPULATOR | VM_SLEEP);
	sim_op_end();
	if (b == NULL)
		sim_fail("child: vmem_create(c_pop, VM_SLEEP) returned NULL");

	/* Every policy, on the child's arenas (VM_SLEEP: memory exists)
	 * and the parent's (NOSLEEP: they may be full). */
	for (int pol = 0; pol < 4; pol++) {
		do_vmem_alloc(a, false, 16 * (1 + (unsigned)pol * 3), pol,
		    true);
		do_vmem_alloc(b, true, 64 * (1 + (unsigned)pol * 5), pol,
		    true);
		if (pol < 3) {
			do_vmem_xalloc(a, false, 48, pol, true);
			do_vmem_xalloc(b, true, 192, pol, true);
		}
		/* Every policy on the first four shared arenas, one
		 * allocation on each of the others (scale has hundreds). */
		for (unsigned ai = 0; ai < R.narenas; ai++) {
			if (ai >= 4 && pol != (int)(ai % 4))
				continue;
			vmem_t *vmp = R.arena[ai];
			size_t q = vmem_quantum(vmp);
			do_vmem_alloc(vmp, R.memory[ai], q * (1 + rnd(8)), pol,
			    false);
			if (pol < 3)
				do_vmem_xalloc(vmp, R.memory[ai],
				    q * (1 + rnd(4)), pol, false);
		}
	}

	force_populate("c_drain");

	sim_op("child: umem_cache_create(c_cache) over c_pop");
	umem_cache_t *c = mk_cache("c_cache", 72, 8, NULL, NULL, b);
	sim_op_end();
	if (c == NULL)
		sim_fail("child: umem_cache_create returned NULL");
	for (unsigned i = 0; i < 40; i++)
		do_cache_alloc(c, i % 2 == 0);
	for (unsigned ci = 0; ci < R.ncaches; ci++)
		for (unsigned i = 0; i < (ci < 4 ? 3u : 1u); i++)
			do_cache_alloc(R.cache[ci], true);
	static const size_t usizes[] = {8, 100, 3000, 16384, 20000, 70000};
	for (size_t i = 0; i < sizeof(usizes) / sizeof(usizes[0]); i++)
		do_umem_alloc(usizes[i], true);

	/* The child's own, freed; then its caches reaped, its arenas
	 * checked empty and destroyed. */
	free_from(parent_n);
	sim_op("child: umem_reap()");
	umem_reap();
	sim_op_end();
	sim_op("child: umem_cache_destroy(c_cache)");
	umem_cache_destroy(c);
	sim_op_end();
	arena_empty_destroy(b);
	arena_empty_destroy(a);
	/* What the parent held can be given back in the child. */
	free_matching(NULL, NULL);
	sim_op("child: umem_reap()");
	umem_reap();
	sim_op_end();
	sim_check_now("fork child: every operation", true);
}

/* ---- a shared world ------------------------------------------------------ */

static int ctor_word(void *buf, void *priv, int flags)
{
	(void)priv;
	(void)flags;
	sim_callback_enter("constructor");
	memset(buf, 0x5a, 8);
	return 0;
}

static void dtor_word(void *buf, void *priv)
{
	(void)priv;
	sim_callback_enter("destructor");
	unsigned char x;
	memcpy(&x, buf, 1);
	if (x != 0x5a)
		sim_fail("destructor: the constructor's word changed");
}

static void world_start(void)
{
	umem_nofail_callback(nofail_retry);
	memset(&R, 0, sizeof(R));
	sim_op("create the shared arenas and caches");
	R.arena[0] = mk_arena("f_ids", (void *)0x100000, 0x100000, 1,
	    NULL, NULL, NULL, 8, VM_SLEEP);
	R.memory[0] = false;
	R.arena[1] = mk_arena("f_mem", NULL, 0, 64, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 512, VMC_POPULATOR | VM_SLEEP);
	R.memory[1] = true;
	R.narenas = 2;
	R.cache[0] = mk_cache("f_obj", 64, 0, ctor_word, dtor_word, NULL);
	R.cache[1] = mk_cache("f_big", 3000, 8, NULL, NULL, NULL);
	R.ncaches = 2;
	sim_op_end();
}

/* What the main thread holds across the run (the child must find). */
static void world_hold(unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		switch (i % 5) {
		case 0:
			do_vmem_alloc(R.arena[0], false, 1 + rnd(20),
			    (int)rnd(4), true);
			break;
		case 1:
			do_vmem_xalloc(R.arena[1], true, 64 * (1 + rnd(12)),
			    (int)rnd(3), true);
			break;
		case 2:
			do_vmem_alloc(R.arena[1], true, 64 * (1 + rnd(12)),
			    (int)rnd(3), true);
			break;
		case 3:
			do_cache_alloc(R.cache[rnd(R.ncaches)], true);
			break;
		default:
			do_umem_alloc(8 + rnd(5000), true);
			break;
		}
	}
}

static void world_end(void)
{
	vmem_mtbf_set(NULL, 0);
	vmem_mtbf_set(vmem_seg_arena, 0);
	free_matching(NULL, NULL);
	sim_op("flush this thread's magazines");
	umem_thread_flush_self();
	sim_op_end();
	for (unsigned ci = R.ncaches; ci-- > 0;) {
		sim_op("umem_cache_destroy(%s)", umem_cache_name(R.cache[ci]));
		umem_cache_destroy(R.cache[ci]);
		sim_op_end();
	}
	for (unsigned ai = R.narenas; ai-- > 0;)
		arena_empty_destroy(R.arena[ai]);
	R.narenas = R.ncaches = 0;
	sim_check_now("end", true);
}

/* ---- fork_points ---------------------------------------------------------- */

enum {
	FP_CREATE, FP_CREATE_POP, FP_DESTROY, FP_DESTROY_POP, FP_ADD,
	FP_POPULATE, FP_REAP, FP_EXIT, FP_CACHE_CREATE, FP_CACHE_DESTROY,
	FP_OPS
};
static const char *const fp_names[FP_OPS] = {"vmem_create",
    "vmem_create(VMC_POPULATOR)", "vmem_destroy",
    "vmem_destroy(VMC_POPULATOR)", "vmem_add", "populate", "umem_reap",
    "thread exit", "umem_cache_create", "umem_cache_destroy"};
/*
 * (operation, k) pairs in seed order: fp_slots[op] values of k for each,
 * k = slot * fp_stride[op] + (pass % fp_stride[op]).  Each short path is
 * under its slot count (measured: create 35 points, with VMC_POPULATOR
 * 52, destroy 59 and 61, add 3, the populating allocation 48, cache
 * create 9, destroy 35, exit 18 — each traced as "took N points"), so
 * every point of it is a k; umem_reap (about 280) is the long one: every
 * third point, shifted by one each pass.  The 500 slots in all: the
 * seeds 0..7999 (500 * SEED_DIV) of fork_points fork at every pair, so
 * does a plain sweep of them.
 */
static const unsigned fp_slots[FP_OPS] = {44, 64, 72, 74, 6, 60, 100, 24,
    12, 44};
static const unsigned fp_stride[FP_OPS] = {1, 1, 1, 1, 1, 1, 3, 1, 1, 1};

static struct {
	unsigned op;
	volatile bool ready, go;
	vmem_t *target;
	umem_cache_t *ctarget;
	uint64_t p0, op_points;
} FP;

/* Drain the global tags until one more allocation from d populates. */
static size_t drain_to_edge(vmem_t *d, uintptr_t *got, size_t max)
{
	size_t n = 0;
	vmem_tag_census_t c;
	for (vmem_tag_census(&c); c.global_free > 0 && n < max;
	     vmem_tag_census(&c))
		got[n++] = (uintptr_t)vmem_xalloc(d, 1, 4, 1, 0, NULL, NULL,
		    VM_FIRSTFIT | VM_SLEEP);
	return n;
}

static void fp_other(void *arg)
{
	(void)arg;
	static uintptr_t got[REG_MAX];
	size_t ngot = 0;
	vmem_t *d = NULL;
	sim_op("prepare for %s", fp_names[FP.op]);
	switch (FP.op) {
	case FP_DESTROY:
	case FP_DESTROY_POP: {
		FP.target = mk_arena("fp_victim", NULL, 0, 32, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 128,
		    (FP.op == FP_DESTROY_POP ? VMC_POPULATOR : 0) | VM_SLEEP);
		void *p = vmem_alloc(FP.target, 64, VM_SLEEP);
		void *q = vmem_alloc(FP.target, 4096, VM_SLEEP);
		vmem_free(FP.target, p, 64);
		vmem_free(FP.target, q, 4096);
		break;
	}
	case FP_ADD:
		FP.target = mk_arena("fp_add", (void *)0x1000, 0x1000, 16,
		    NULL, NULL, NULL, 0, VM_SLEEP);
		break;
	case FP_POPULATE:
		d = mk_arena("fp_drain", (void *)(uintptr_t)1,
		    (size_t)1 << 26, 1, NULL, NULL, NULL, 0, VM_SLEEP);
		ngot = drain_to_edge(d, got, REG_MAX / 2);
		break;
	case FP_REAP:
	case FP_EXIT:
		/* Loaded magazines and a depot with full ones. */
		for (unsigned ci = 0; ci < R.ncaches; ci++) {
			size_t from = R.n;
			for (unsigned i = 0; i < 40; i++)
				do_cache_alloc(R.cache[ci], true);
			free_from(from);
		}
		break;
	case FP_CACHE_DESTROY: {
		FP.ctarget = mk_cache("fp_cvictim", 96, 0, ctor_word,
		    dtor_word, R.arena[1]);
		void *x[20];
		for (unsigned i = 0; i < 20; i++)
			x[i] = umem_cache_alloc(FP.ctarget, UMEM_NOFAIL);
		for (unsigned i = 0; i < 20; i++)
			umem_cache_free(FP.ctarget, x[i]);
		break;
	}
	default:
		break;
	}
	sim_op_end();
	FP.ready = true;
	while (!FP.go)
		sim_yield();
	/* The operation: thread 1 forks at its k-th point. */
	sim_op("%s", fp_names[FP.op]);
	switch (FP.op) {
	case FP_CREATE:
	case FP_CREATE_POP:
		FP.target = mk_arena("fp_new", NULL, 0, 32, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 128,
		    (FP.op == FP_CREATE_POP ? VMC_POPULATOR : 0) | VM_SLEEP);
		break;
	case FP_DESTROY:
	case FP_DESTROY_POP:
		vmem_destroy(FP.target);
		FP.target = NULL;
		break;
	case FP_ADD:
		(void)vmem_add(FP.target, (void *)0x3000, 0x1000, VM_SLEEP);
		break;
	case FP_POPULATE:
		got[ngot++] = (uintptr_t)vmem_xalloc(d, 1, 4, 1, 0, NULL,
		    NULL, VM_FIRSTFIT | VM_SLEEP);
		got[ngot++] = (uintptr_t)vmem_xalloc(d, 1, 4, 1, 0, NULL,
		    NULL, VM_FIRSTFIT | VM_SLEEP);
		break;
	case FP_REAP:
		umem_reap();
		break;
	case FP_CACHE_CREATE:
		FP.ctarget = mk_cache("fp_cnew", 96, 0, ctor_word,
		    dtor_word, R.arena[1]);
		break;
	case FP_CACHE_DESTROY:
		umem_cache_destroy(FP.ctarget);
		FP.ctarget = NULL;
		break;
	default:
		break; /* FP_EXIT: returning is the operation */
	}
	sim_op_end();
	FP.op_points = sim_points(sim_self()) - FP.p0;
	if (FP.op == FP_POPULATE) {
		sim_op("fp_drain: free %zu, destroy", ngot);
		while (ngot > 0)
			vmem_xfree(d, (void *)got[--ngot], 1);
		vmem_destroy(d);
		sim_op_end();
	}
	if (FP.op == FP_EXIT)
		return;
	/* Use and end what the operation made. */
	sim_op("use and end what %s left", fp_names[FP.op]);
	if (FP.target != NULL) {
		void *p = vmem_alloc(FP.target, 32, VM_SLEEP);
		vmem_free(FP.target, p, 32);
		vmem_destroy(FP.target);
		FP.target = NULL;
	}
	if (FP.ctarget != NULL) {
		void *p = umem_cache_alloc(FP.ctarget, UMEM_NOFAIL);
		umem_cache_free(FP.ctarget, p);
		umem_cache_destroy(FP.ctarget);
		FP.ctarget = NULL;
	}
	sim_op_end();
}

void sim_sc_fork_points(void *arg)
{
	(void)arg;
	const sim_config_t *cfg = sim_config();
	uint64_t i = cfg->seed / SEED_DIV;
	memset(&FP, 0, sizeof(FP));
	unsigned pairs = 0;
	for (unsigned op = 0; op < FP_OPS; op++)
		pairs += fp_slots[op];
	unsigned slot = (unsigned)(i % pairs), pass = (unsigned)(i / pairs);
	while (slot >= fp_slots[FP.op])
		slot -= fp_slots[FP.op++];
	unsigned k = slot * fp_stride[FP.op] + pass % fp_stride[FP.op];
	world_start();
	world_hold(10);
	unsigned t = sim_spawn(fp_other, NULL);
	while (!FP.ready)
		sim_yield();
	uint64_t p0 = sim_points(t);
	FP.p0 = p0;
	FP.go = true;
	sim_op("fork at point %u of T%u's %s", k, t, fp_names[FP.op]);
	sim_op_end();
	sim_wait_points(t, p0 + k);
	sim_freeze(t);
	sim_fork(child_all, NULL);
	sim_freeze(0);
	sim_join(t);
	sim_op("T%u's %s took %llu points (exit: %llu to its end)", t,
	    fp_names[FP.op], (unsigned long long)FP.op_points,
	    (unsigned long long)(sim_points(t) - p0));
	sim_op_end();
	world_end();
}

/* ---- fork_long: random points of the long paths --------------------------- */

static void long_worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	unsigned ops = sim_config()->ops;
	char name[32];
	for (unsigned i = 0; i < ops; i++) {
		switch (rnd(6)) {
		case 0: {
			/* A populate storm on an arena of its own. */
			snprintf(name, sizeof(name), "storm%u_%u", me, i);
			vmem_t *d = mk_arena(name, (void *)(uintptr_t)1,
			    (size_t)1 << 24, 1, NULL, NULL, NULL, 0, VM_SLEEP);
			static uintptr_t got[SIM_THREADS_MAX][512];
			unsigned n = 256 + rnd(256);
			for (unsigned j = 0; j < n; j++)
				got[me][j] = (uintptr_t)vmem_xalloc(d, 1, 4, 1,
				    0, NULL, NULL, VM_FIRSTFIT | VM_SLEEP);
			for (unsigned j = n; j-- > 0;)
				vmem_xfree(d, (void *)got[me][j], 1);
			vmem_destroy(d);
			break;
		}
		case 1: {
			/* A populator and a cache over it, made and ended. */
			snprintf(name, sizeof(name), "lp%u_%u", me, i);
			vmem_t *vmp = mk_arena(name, NULL, 0, 64, vmem_alloc,
			    vmem_free, vmem_heap_arena(), 256,
			    VMC_POPULATOR | VM_SLEEP);
			umem_cache_t *cp = mk_cache(name, 80, 0,
			    ctor_word, dtor_word, vmp);
			void *x[30];
			for (unsigned j = 0; j < 30; j++)
				x[j] = umem_cache_alloc(cp, UMEM_NOFAIL);
			for (unsigned j = 0; j < 30; j++)
				umem_cache_free(cp, x[j]);
			umem_cache_destroy(cp);
			vmem_destroy(vmp);
			break;
		}
		case 2:
			sim_op("umem_reap()");
			umem_reap();
			sim_op_end();
			break;
		default: {
			/* Shared arenas and caches; some kept a while. */
			size_t from = R.n;
			for (unsigned j = 0; j < 8; j++) {
				if (rnd(2))
					do_cache_alloc(R.cache[rnd(R.ncaches)],
					    true);
				else
					do_vmem_alloc(R.arena[1], true,
					    64 * (1 + rnd(16)), (int)rnd(3),
					    true);
			}
			/* Only this thread frees its own entries: others'
			 * may have moved below `from`, so find ours. */
			(void)from;
			break;
		}
		}
	}
}

void sim_sc_fork_long(void *arg)
{
	(void)arg;
	world_start();
	world_hold(10);
	unsigned nw = sim_config()->threads;
	if (nw + 1 > SIM_THREADS_MAX)
		nw = SIM_THREADS_MAX - 1;
	unsigned tids[SIM_THREADS_MAX];
	for (unsigned w = 0; w < nw; w++)
		tids[w] = sim_spawn(long_worker, (void *)(uintptr_t)(w + 1));
	unsigned forks = 1 + rnd(3);
	for (unsigned f = 0; f < forks; f++) {
		unsigned t = tids[rnd(nw)];
		if (sim_thread_done(t))
			continue;
		unsigned k = rnd(3000);
		sim_op("fork at %u points on in T%u", k, t);
		sim_op_end();
		sim_wait_points(t, sim_points(t) + k);
		sim_freeze(t);
		sim_fork(child_all, NULL);
		sim_freeze(0);
	}
	for (unsigned w = 0; w < nw; w++)
		sim_join(tids[w]);
	world_end();
}

/* ---- scale: past every fixed size ----------------------------------------- */

#define SC_ARENAS 150u    /* x (1 + 4 quantum caches x 2) lock slots */
#define SC_CACHES 120u
#define SC_THREADS 100u   /* alive at once: past 64 thread slots */
#define SC_IDS_LEFT 4u    /* thread ids left free at the limit */
#define SC_OVER_LIMIT 2u  /* workers beyond them: no id, no slot */
#define SC_MANY 3000u     /* segments of "many": tag batches, the hash */
#define SC_PHASES 7u
#define SC_POPULATORS 40u /* populator arenas at once (the old table: 16) */

static struct {
	volatile unsigned arrived, n;
	unsigned gate;           /* the thread the crowd joins */
	unsigned noid;           /* workers that got no thread id */
} SCB;

/* The one thread that waits (sim_yield) until the whole crowd holds its
 * buffers; the crowd and thread 1 join it, so that a hundred threads
 * wait without a step, and no two yielders starve the rest under PCT. */
static void scale_gate(void *arg)
{
	(void)arg;
	while (SCB.arrived < SCB.n)
		sim_yield();
}

/* A worker alive among many: a buffer of each shared cache and an
 * allocation of f_mem held until every worker has one. */
static void scale_worker(void *arg)
{
	(void)arg;
	sim_op("scale worker: allocate");
	void *a = umem_cache_alloc(R.cache[0], UMEM_NOFAIL);
	void *b = umem_cache_alloc(R.cache[1], UMEM_NOFAIL);
	void *c = vmem_alloc(R.arena[1], 128, VM_SLEEP);
	sim_op_end();
	if (a == NULL || b == NULL || c == NULL)
		sim_fail("NOFAIL/VM_SLEEP returned NULL in a scale worker");
	memset((char *)b + 8, (int)sim_self(), 64);
	if (plat_tsd_get(umem_tsd_key) == NULL)
		SCB.noid++;
	SCB.arrived++;
	sim_join(SCB.gate);
	for (size_t i = 8; i < 72; i++)
		if (((unsigned char *)b)[i] != (unsigned char)sim_self())
			sim_fail("a scale worker's buffer changed while held");
	sim_op("scale worker: free, exit");
	umem_cache_free(R.cache[0], a);
	umem_cache_free(R.cache[1], b);
	vmem_free(R.arena[1], c, 128);
	sim_op_end();
}

/* Spawn n workers, wait until all hold their buffers (forking at a
 * random point of one of them first, if fork), let them go, join. */
static void scale_crowd(unsigned n, bool fork)
{
	static unsigned tids[SIM_THREADS_MAX];
	SCB.arrived = 0;
	SCB.noid = 0;
	SCB.n = n;
	SCB.gate = sim_spawn(scale_gate, NULL);
	for (unsigned i = 0; i < n; i++)
		tids[i] = sim_spawn(scale_worker, NULL);
	if (fork) {
		unsigned t = tids[rnd(n)];
		unsigned k = rnd(40);
		sim_op("fork at %u points on in T%u, %u workers alive", k, t, n);
		sim_op_end();
		sim_wait_points(t, sim_points(t) + k);
		sim_freeze(t);
		sim_fork(child_all, NULL);
		sim_freeze(0);
	}
	sim_join(SCB.gate);
	for (unsigned i = 0; i < n; i++)
		sim_join(tids[i]);
}

static vmem_t *arena_named(const char *name)
{
	for (vmem_t *v = vmem_list; v != NULL; v = v->ar_next)
		if (strcmp(v->ar_name, name) == 0)
			return v;
	return NULL;
}

static unsigned populators_now(void)
{
	unsigned n = 0;
	for (vmem_t *v = vmem_list; v != NULL; v = v->ar_next)
		if (v->ar_cflags & VMC_POPULATOR)
			n++;
	return n;
}

/* UMEM_THREADS_MAX: all but SC_IDS_LEFT ids taken (as by 4,096 live
 * threads), then SC_IDS_LEFT + SC_OVER_LIMIT workers at once. */
static void scale_thread_ids(void)
{
	vmem_t *ids = arena_named("umem_thread_ids");
	if (ids == NULL)
		sim_fail("no umem_thread_ids arena");
	static struct { void *p; size_t n; } taken[64];
	unsigned nt = 0;
	sim_op("take all but %u thread ids", SC_IDS_LEFT);
	for (size_t want = UMEM_THREADS_MAX; want > 0 && nt < 64;) {
		size_t left = vmem_size(ids, VMEM_FREE);
		if (left <= SC_IDS_LEFT)
			break;
		if (want > left - SC_IDS_LEFT)
			want = left - SC_IDS_LEFT;
		void *p = vmem_alloc(ids, want, VM_NOSLEEP | VM_BESTFIT);
		if (p == NULL) {
			want /= 2;
			continue;
		}
		taken[nt].p = p;
		taken[nt++].n = want;
	}
	size_t left = vmem_size(ids, VMEM_FREE);
	sim_op_end();
	if (left != SC_IDS_LEFT)
		sim_fail("umem_thread_ids: %zu ids left, not %u", left,
		    SC_IDS_LEFT);
	scale_crowd(SC_IDS_LEFT + SC_OVER_LIMIT, false);
	if (SCB.noid != SC_OVER_LIMIT)
		sim_fail("%u of %u workers got no thread id, not %u", SCB.noid,
		    SC_IDS_LEFT + SC_OVER_LIMIT, SC_OVER_LIMIT);
	sim_op("give the thread ids back");
	while (nt > 0) {
		nt--;
		vmem_free(ids, taken[nt].p, taken[nt].n);
	}
	sim_op_end();
}

static void scale_many(void);
static void scale_caches(void);
static void scale_umem_alloc(void);

void sim_sc_scale(void *arg)
{
	(void)arg;
	/* One phase a seed (seed / nscenarios walks them), each past its
	 * sizes, so that a run stays short. */
	unsigned phase = (unsigned)((sim_config()->seed / SEED_DIV) %
	    SC_PHASES);
	world_start();
	world_hold(10);
	char name[32];
	sim_op("scale phase %u", phase);
	sim_op_end();

	/* Lock table: the static 256 slots and the first 64 KiB chunk;
	 * a fork with all of them to lock. */
	unsigned a0 = R.narenas, c0 = R.ncaches;
	for (unsigned i = 0; i < SC_ARENAS && phase == 0; i++) {
		snprintf(name, sizeof(name), "sa%u", i);
		vmem_t *vmp = mk_arena(name, (void *)(uintptr_t)
		    ((i + 1) << 20), 1 << 16, 8, NULL, NULL, NULL, 32,
		    VM_SLEEP);
		R.arena[R.narenas] = vmp;
		R.memory[R.narenas++] = false;
		do_vmem_alloc(vmp, false, 8 * (1 + rnd(6)), (int)rnd(4), true);
	}
	for (unsigned i = 0; i < SC_CACHES && phase == 0; i++) {
		snprintf(name, sizeof(name), "sc%u", i);
		umem_cache_t *cp = mk_cache(name, 16 + 8 * i, 0,
		    NULL, NULL, NULL);
		if (cp == NULL)
			sim_fail("umem_cache_create(%s) returned NULL", name);
		R.cache[R.ncaches++] = cp;
		do_cache_alloc(cp, true);
	}

	if (phase == 0)
		sim_fork(child_all, NULL);

	/* Thread slots past the first chunk of 64, a fork among them. */
	unsigned crowd = SC_THREADS;
	if (crowd + 2 > SIM_THREADS_MAX)
		crowd = SIM_THREADS_MAX - 2;
	if (phase == 1)
		scale_crowd(crowd, true);

	/* Populators past the old table of 16, twice. */
	for (unsigned round = 0; round < 2 && phase == 2; round++) {
		static vmem_t *pops[SC_POPULATORS];
		unsigned np = 0, have = populators_now();
		sim_op("create populators from %u to %u", have, SC_POPULATORS);
		sim_op_end();
		for (unsigned i = have; i < SC_POPULATORS; i++) {
			snprintf(name, sizeof(name), "pop%u_%u", round, i);
			pops[np++] = mk_arena(name, NULL, 0, 64, vmem_alloc,
			    vmem_free, vmem_heap_arena(), 0,
			    VMC_POPULATOR | VM_SLEEP);
		}
		if (populators_now() != SC_POPULATORS)
			sim_fail("%u populators, not %u", populators_now(),
			    SC_POPULATORS);
		for (unsigned i = 0; i < np; i++) {
			void *p = vmem_alloc(pops[i], 64 * (1 + i),
			    VM_SLEEP);
			vmem_free(pops[i], p, 64 * (1 + i));
		}
		force_populate("sc_drain");
		for (unsigned i = np; i-- > 0;)
			arena_empty_destroy(pops[i]);
	}

	if (phase == 3)
		scale_many();
	if (phase == 4)
		scale_caches();
	if (phase == 5)
		scale_umem_alloc();
	/* Thread ids at their hard limit. */
	if (phase == 6)
		scale_thread_ids();

	/* The lock-table phase's arenas and caches, then the rest. */
	for (unsigned ci = R.ncaches; ci-- > c0;) {
		free_matching(NULL, R.cache[ci]);
		sim_op("umem_cache_destroy(%s)", umem_cache_name(R.cache[ci]));
		umem_cache_destroy(R.cache[ci]);
		sim_op_end();
	}
	R.ncaches = c0;
	for (unsigned ai = R.narenas; ai-- > a0;) {
		free_matching(R.arena[ai], NULL);
		arena_empty_destroy(R.arena[ai]);
	}
	R.narenas = a0;
	world_end();
}

/* "many": tag batches past the bootstrap's, the hash grown and shrunk,
 * spares past VMEM_SPARES_MAX given back; a fork with it full. */
static void scale_many(void)
{
	sim_op("vmem_create(many)");
	vmem_t *many = mk_arena("many", (void *)(uintptr_t)1, 1 << 20, 1,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	sim_op_end();
	size_t from = R.n;
	for (unsigned i = 0; i < SC_MANY; i++)
		do_vmem_alloc(many, false, 1, 2, true);
	vmem_stats_t st;
	vmem_stats(many, &st);
	sim_op("many: %zu segments allocated, %zu hash buckets", st.vs_segs_alloc,
	    st.vs_hash_buckets);
	sim_op_end();
	if (st.vs_hash_buckets <= 16)
		sim_fail("many: %zu allocations, hash still at %zu buckets",
		    (size_t)SC_MANY, st.vs_hash_buckets);
	R.arena[R.narenas] = many;
	R.memory[R.narenas++] = false;
	/* A fork with it full: the child walks and frees it all. */
	sim_fork(child_all, NULL);
	R.narenas--;
	free_from(from);
	vmem_stats(many, &st);
	if (st.vs_spare_tags > VMEM_SPARES_MAX)
		sim_fail("many: %zu spare tags kept, over %d", st.vs_spare_tags,
		    VMEM_SPARES_MAX);
	arena_empty_destroy(many);
}

/* VMEM_QCACHE_MAX, UMEM_MAGSIZE_MAX, the slab hash past 16 slabs, 1-byte
 * buffers past UMEM_SLAB_BUFS_MAX a slab. */
static void scale_caches(void)
{
	size_t from;
	/* VMEM_QCACHE_MAX: qcache_max 32 quanta clamped to 16. */
	sim_op("vmem_create(qwide, qcache_max 32 quanta)");
	vmem_t *qw = mk_arena("qwide", (void *)0x1000000, 1 << 20, 16,
	    NULL, NULL, NULL, 32 * 16, VM_SLEEP);
	sim_op_end();
	from = R.n;
	for (unsigned q = 1; q <= 24; q++)
		do_vmem_alloc(qw, false, 16 * q, (int)(q % 4), true);
	free_from(from);
	arena_empty_destroy(qw);

	/* UMEM_MAGSIZE_MAX, slab hash past 16 slabs, 1-byte buffers past
	 * UMEM_SLAB_BUFS_MAX a slab. */
	sim_op("umem_cache_create(magmax, tiny1)");
	umem_cache_t *mm = mk_cache("magmax", 200, 0, NULL, NULL, NULL);
	umem_cache_t *t1 = mk_cache("tiny1", 1, 1, NULL, NULL, NULL);
	if (mm == NULL || t1 == NULL)
		sim_fail("umem_cache_create(magmax/tiny1) returned NULL");
	qlock_enter(mm->cc_depot_lock, QLOCK_DEPOT);
	mm->cc_magtype = UMEM_MAGTYPES - 1;
	atomic_store(&mm->cc_magsize, UMEM_MAGSIZE_MAX);
	qlock_exit(mm->cc_depot_lock, QLOCK_DEPOT);
	sim_op_end();
	from = R.n;
	for (unsigned i = 0; i < 600; i++)
		do_cache_alloc(mm, true);
	for (unsigned i = 0; i < 200; i++)
		do_cache_alloc(R.cache[1], true);
	free_from(from);
	umem_cache_stats_t cs;
	umem_cache_stats(mm, &cs);
	sim_op("magmax: %zu slabs, %zu full magazines of %zu", cs.us_slabs,
	    cs.us_mags_full, cs.us_magsize);
	sim_op_end();
	if (cs.us_slabs <= 16 || cs.us_magsize != UMEM_MAGSIZE_MAX)
		sim_fail("magmax: %zu slabs, magazines of %zu", cs.us_slabs,
		    cs.us_magsize);
	sim_op("umem_reap()");
	umem_reap();
	sim_op_end();
	umem_cache_stats(t1, &cs);
	size_t per = cs.us_slab_bytes / (cs.us_chunk_bytes ? cs.us_chunk_bytes : 1);
	if (per > UMEM_SLAB_BUFS_MAX)
		per = UMEM_SLAB_BUFS_MAX;
	from = R.n;
	for (size_t i = 0; i < per + 8 && i < REG_MAX / 2; i++)
		do_cache_alloc(t1, true);
	umem_cache_stats(t1, &cs);
	sim_op("tiny1: %zu buffers a slab, %zu slabs", per, cs.us_slabs);
	sim_op_end();
	if (cs.us_slabs < 2)
		sim_fail("tiny1: %zu slabs for %zu buffers", cs.us_slabs,
		    per + 8);
	free_from(from);
	sim_op("umem_cache_destroy(magmax, tiny1)");
	umem_cache_destroy(mm);
	umem_cache_destroy(t1);
	sim_op_end();

}

/* umem_alloc: every class up to 16 KiB and past it; the heap's 1 MiB
 * chunk, in pieces and at once. */
static void scale_umem_alloc(void)
{
	size_t from = R.n;
	for (size_t sz = 8; sz <= UMEM_CLASS_MAX_BYTES + 8; sz += 8 * (1 + sz / 512))
		do_umem_alloc(sz, true);
	do_umem_alloc(3u << 20, true);
	free_from(from);
}
