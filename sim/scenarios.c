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

#include "locktab.h"
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

/* Format version 2 (sim.h): the state-aware generators and the oracles. */
static bool v2(void)
{
	return sim_config()->version >= 2;
}

/*
 * The largest free run and the total free of a shared arena, read from
 * its tags while nobody holds its lock (its list is then whole); false
 * when someone does.  Free pieces that meet count as one run, whatever
 * marker lies between their tags.
 */
static bool arena_free_now(const vmem_t *vmp, size_t *largest, size_t *total)
{
	if (vmp->ar_lock->pm_owner != 0)
		return false;
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	size_t run = 0;
	uintptr_t end = 0;
	*largest = *total = 0;
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next) {
		int t = seg_type(s);
		if (t == SEG_FREE) {
			run = run != 0 && end == s->sg_start ? run +
			    seg_size(s) : seg_size(s);
			end = s->sg_end;
			*total += seg_size(s);
			if (run > *largest)
				*largest = run;
		} else if (!seg_is_marker(s)) {
			run = 0;
		}
	}
	return true;
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
	size_t largest, total;
	if (v2() && rnd(8) == 0 && arena_free_now(vmp, &largest, &total)) {
		/* From the state: the largest run or the total free, +/- a
		 * quantum (NOSLEEP: others may hold the rest for long). */
		size = (rnd(2) ? largest : total) + q * rnd(3);
		size = size > q ? size - q : q;
		sleep = false;
	}
	int flags = policies[pol] | (sleep ? VM_SLEEP : VM_NOSLEEP);
	if (sleep)
		sim_op_bounded("vmem_alloc(%s, 0x%zx, %s|SLEEP)",
		    vmem_name(vmp), size, policy_names[pol]);
	else
		sim_op("vmem_alloc(%s, 0x%zx, %s)", vmem_name(vmp), size,
		    policy_names[pol]);
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
	if (sleep)
		sim_op_bounded("vmem_xalloc(%s, 0x%zx, align 0x%zx, phase "
		    "0x%zx, nocross 0x%zx, SLEEP)", vmem_name(vmp), size, align,
		    phase, nocross);
	else
		sim_op("vmem_xalloc(%s, 0x%zx, align 0x%zx, phase 0x%zx, "
		    "nocross 0x%zx)", vmem_name(vmp), size, align, phase,
		    nocross);
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
	if (nofail)
		sim_op_bounded("umem_cache_alloc(%s, NOFAIL)",
		    umem_cache_name(cp));
	else
		sim_op("umem_cache_alloc(%s)", umem_cache_name(cp));
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

/* ---- version 2: state-aware requests on private arenas, the fit oracle ---- */

/* The global mtbf as the scenarios set it, and a count of its changes (a
 * call during which it changed cannot tell which value it ran under). */
static uint64_t mtbf_global, mtbf_global_gen;

static void mtbf_global_set(uint64_t m)
{
	vmem_mtbf_set(NULL, m);
	mtbf_global = m;
	mtbf_global_gen++;
}

/* A maximal run of free space: free pieces of one span whose ends meet,
 * whatever markers (the rotor, a walker) lie between their tags. */
typedef struct run { uintptr_t s, e; } run_t;
#define RUNS_MAX 160u
#define PROBE_HELD 72u
#define PROBE_SPANS 2u

typedef struct probe {
	vmem_t *vmp;       /* private to its worker */
	vmem_t *src;       /* its private source (importing kind), or NULL */
	char name[16], sname[16];
	size_t q;
	uintptr_t span[PROBE_SPANS][2]; /* the spans added (or the source's) */
	unsigned nspans;
	size_t span_total;
	uint64_t mtbf;     /* the arena's own */
	unsigned src_fail; /* the source refuses this many more calls */
	unsigned n;
	struct { uintptr_t a; size_t size; bool x; } h[PROBE_HELD];
} probe_t;

static probe_t probes[SIM_THREADS_MAX + 1];

/* Read the arena's tags (sim is white-box): only its own thread calls
 * into a private arena, and nothing here is a scheduling point, so no
 * other thread runs meanwhile. */
static unsigned arena_runs(const vmem_t *vmp, run_t *r)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	unsigned n = 0;
	bool open = false;
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next) {
		int t = seg_type(s);
		if (t == SEG_FREE) {
			if (open && r[n - 1].e == s->sg_start) {
				r[n - 1].e = s->sg_end;
			} else {
				if (n == RUNS_MAX)
					sim_fail("arena \"%s\": more than %u free "
					    "runs", vmp->ar_name, RUNS_MAX);
				r[n++] = (run_t){s->sg_start, s->sg_end};
				open = true;
			}
		} else if (t != SEG_ROTOR && t != SEG_WALKER) {
			open = false; /* a span marker or an allocated piece */
		}
	}
	return n;
}

typedef struct req {
	size_t size, align, phase, nocross;
	uintptr_t lo, hi;     /* hi exclusive; 0: no window */
	unsigned pol;
	bool x, sleep;
} req_t;

/* The lowest a >= x with a = phase modulo align (align a power of two);
 * false on overflow. */
static bool first_at(uintptr_t x, size_t align, size_t phase, uintptr_t *a)
{
	uintptr_t b = (x & ~(uintptr_t)(align - 1)) + phase;
	if (b < x)
		b += align;
	if (b < x)
		return false;
	*a = b;
	return true;
}

static bool crosses(uintptr_t a, size_t size, size_t nocross)
{
	return nocross != 0 && (a & ~(uintptr_t)(nocross - 1)) !=
	    ((a + size - 1) & ~(uintptr_t)(nocross - 1));
}

/* Where in [s, e) the request fits, lowest first; false: nowhere. */
static bool fit_in(uintptr_t s, uintptr_t e, const req_t *q, uintptr_t *at)
{
	uintptr_t lo = s > q->lo ? s : q->lo;
	uintptr_t hi = q->hi != 0 && q->hi < e ? q->hi : e;
	uintptr_t a;
	if (lo >= hi || hi - lo < q->size || !first_at(lo, q->align, q->phase,
	    &a))
		return false;
	if (crosses(a, q->size, q->nocross) &&
	    !first_at((a | (q->nocross - 1)) + 1, q->align, q->phase, &a))
		return false;
	if (a < lo || a >= hi || hi - a < q->size ||
	    crosses(a, q->size, q->nocross))
		return false;
	*at = a;
	return true;
}

static bool runs_fit(const run_t *r, unsigned n, const req_t *q, uintptr_t *at)
{
	for (unsigned i = 0; i < n; i++)
		if (fit_in(r[i].s, r[i].e, q, at))
			return true;
	return false;
}

static void req_text(const probe_t *p, const req_t *q, char *buf, size_t len)
{
	if (q->x)
		snprintf(buf, len, "vmem_xalloc(%s, 0x%zx, align 0x%zx, phase "
		    "0x%zx, nocross 0x%zx, min 0x%lx, max 0x%lx, %s|%s)", p->name,
		    q->size, q->align, q->phase, q->nocross,
		    (unsigned long)q->lo, (unsigned long)q->hi,
		    policy_names[q->pol], q->sleep ? "SLEEP" : "NOSLEEP");
	else
		snprintf(buf, len, "vmem_alloc(%s, 0x%zx, %s|%s)", p->name,
		    q->size, policy_names[q->pol], q->sleep ? "SLEEP" :
		    "NOSLEEP");
}

static void runs_text(const run_t *r, unsigned n, char *buf, size_t len)
{
	size_t at = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < n && at + 40 < len; i++)
		at += (size_t)snprintf(buf + at, len - at, "%s[0x%lx, 0x%lx)",
		    i ? " " : "", (unsigned long)r[i].s, (unsigned long)r[i].e);
	if (n == 0)
		snprintf(buf, len, "none");
}

/* How many free pieces (tags) make up the run around addr. */
static unsigned run_pieces(const vmem_t *vmp, uintptr_t addr)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	unsigned n = 0;
	uintptr_t end = 0;
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next) {
		int t = seg_type(s);
		if (t == SEG_FREE) {
			n = n != 0 && end == s->sg_start ? n + 1 : 1;
			end = s->sg_end;
			if (s->sg_start <= addr && addr < s->sg_end) {
				for (s = s->sg_next; s != seg0 && (seg_type(s)
				    == SEG_FREE || seg_is_marker(s)); s =
				    s->sg_next)
					n += seg_type(s) == SEG_FREE &&
					    s->sg_start == end;
				return n;
			}
		} else if (t != SEG_ROTOR && t != SEG_WALKER) {
			n = 0;
		}
	}
	return 0;
}

static bool same_runs(const run_t *a, unsigned na, const run_t *b,
    unsigned nb)
{
	return na == nb && memcmp(a, b, na * sizeof(*a)) == 0;
}

/*
 * One request on a private arena, checked against the arena's state just
 * before it: a result lies inside one free run and honours every
 * constraint; a NULL from VM_SLEEP is a failure; a NOSLEEP failure
 * changes nothing (the free runs, vmem_size) and happens only when no fit
 * exists under the request (every policy finds any fit: next fit wraps
 * around, and free space held apart by the rotor is still one run) —
 * unless an injected failure may have fired (the arena's mtbf, or the
 * global one, divides a clock value the call read) or a populate failed
 * (the arena's populate_fail counter moved: no tags, a legitimate NULL).
 * An importing arena's own runs count; what its source may give is not
 * asked of NOSLEEP.  Returns whether it allocated.
 */
static bool probe_call(probe_t *p, const req_t *q)
{
	static run_t before[SIM_THREADS_MAX + 1][RUNS_MAX], after[RUNS_MAX];
	run_t *rb = before[sim_self() % (SIM_THREADS_MAX + 1)];
	unsigned nb = arena_runs(p->vmp, rb);
	uintptr_t fit = 0;
	bool fits = runs_fit(rb, nb, q, &fit);
	size_t a0 = p->vmp->ar_kstat.mem_inuse, t0 = p->vmp->ar_kstat.mem_total;
	uint64_t pf0 = p->vmp->ar_kstat.populate_fail, gen0 = mtbf_global_gen;
	char what[200];
	req_text(p, q, what, sizeof(what));
	int flags = policies[q->pol] | (q->sleep ? VM_SLEEP : VM_NOSLEEP);
	if (q->sleep)
		sim_op_bounded("%s", what);
	else
		sim_op("%s", what);
	sim_clock_log_reset();
	void *r = q->x ? vmem_xalloc(p->vmp, q->size, q->align, q->phase,
	    q->nocross, (void *)q->lo, (void *)q->hi, flags) :
	    vmem_alloc(p->vmp, q->size, flags);
	sim_op_end();
	char runs[400];
	if (r == NULL) {
		if (q->sleep)
			sim_fail("%s returned NULL", what);
		unsigned na = arena_runs(p->vmp, after);
		if (!same_runs(rb, nb, after, na) ||
		    p->vmp->ar_kstat.mem_inuse != a0 ||
		    p->vmp->ar_kstat.mem_total != t0) {
			runs_text(after, na, runs, sizeof(runs));
			sim_fail("%s failed and changed the arena (free runs "
			    "now %s)", what, runs);
		}
		uint64_t m = p->mtbf != 0 ? p->mtbf : mtbf_global;
		bool injected = mtbf_global_gen != gen0 ||
		    sim_clock_log_hit(m);
		if (fits && !injected &&
		    p->vmp->ar_kstat.populate_fail == pf0) {
			runs_text(rb, nb, runs, sizeof(runs));
			sim_fail("%s returned NULL though 0x%lx fits (free runs "
			    "%s; that run is %u free piece(s); no injected "
			    "failure could fire, no populate failed)", what,
			    (unsigned long)fit, runs, run_pieces(p->vmp, fit));
		}
		return false;
	}
	uintptr_t a = (uintptr_t)r;
	size_t size = q->size;
	bool inside = false;
	for (unsigned i = 0; i < nb && !inside; i++)
		inside = rb[i].s <= a && size <= rb[i].e - a && a < rb[i].e;
	if (!inside && p->src == NULL) {
		runs_text(rb, nb, runs, sizeof(runs));
		sim_fail("%s returned [0x%lx, 0x%lx), not inside a free run "
		    "before it (%s)", what, (unsigned long)a,
		    (unsigned long)(a + size), runs);
	}
	if (a % p->q != 0 || (a - q->phase) % q->align != 0 ||
	    crosses(a, size, q->nocross) || a < q->lo ||
	    (q->hi != 0 && (a >= q->hi || size > q->hi - a)))
		sim_fail("%s returned 0x%lx, which breaks its constraints",
		    what, (unsigned long)a);
	for (unsigned i = 0; i < p->n; i++)
		if (a < p->h[i].a + p->h[i].size && p->h[i].a < a + size)
			sim_fail("%s returned [0x%lx, 0x%lx), overlapping live "
			    "[0x%lx, 0x%lx)", what, (unsigned long)a,
			    (unsigned long)(a + size), (unsigned long)p->h[i].a,
			    (unsigned long)(p->h[i].a + p->h[i].size));
	if (p->n == PROBE_HELD)
		sim_fail("probe %s: more than %u held", p->name, PROBE_HELD);
	p->h[p->n].a = a;
	p->h[p->n].size = size;
	p->h[p->n].x = q->x;
	p->n++;
	return true;
}

static void probe_free(probe_t *p, unsigned k)
{
	sim_op("vmem_%sfree(%s, 0x%lx, 0x%zx)", p->h[k].x ? "x" : "",
	    p->name, (unsigned long)p->h[k].a, p->h[k].size);
	if (p->h[k].x)
		vmem_xfree(p->vmp, (void *)p->h[k].a, p->h[k].size);
	else
		vmem_free(p->vmp, (void *)p->h[k].a, p->h[k].size);
	sim_op_end();
	p->h[k] = p->h[--p->n];
}

static probe_t *probe_of_source(const vmem_t *src)
{
	for (unsigned i = 0; i <= SIM_THREADS_MAX; i++)
		if (probes[i].src == src && src != NULL)
			return &probes[i];
	sim_fail("a probe source without its probe");
}

/* A source that refuses for a while (src_fail calls), then recovers. */
static void *probe_afunc(vmem_t *src, size_t size, int vmflag)
{
	sim_callback_enter("afunc");
	probe_t *p = probe_of_source(src);
	if (p->src_fail != 0) {
		p->src_fail--;
		return NULL;
	}
	return vmem_alloc(src, size, vmflag);
}

static void probe_ffunc(vmem_t *src, void *addr, size_t size)
{
	sim_callback_enter("ffunc");
	vmem_free(src, addr, size);
}

static void probe_init(probe_t *p, unsigned me)
{
	static const size_t quanta[] = {1, 16, 4096};
	memset(p, 0, sizeof(*p));
	p->q = quanta[rnd(3)];
	unsigned kind = rnd(4);
	uintptr_t base = p->q * (1 + rnd(64));
	size_t size = p->q * (1 + rnd(64));
	snprintf(p->name, sizeof(p->name), "p%u", me);
	if (kind == 3) {
		snprintf(p->sname, sizeof(p->sname), "ps%u", me);
		sim_op_bounded("vmem_create(%s, 0x%lx, 0x%zx) and %s importing "
		    "from it", p->sname, (unsigned long)base, size, p->name);
		p->src = vmem_create(p->sname, (void *)base, size, p->q, NULL,
		    NULL, NULL, 0, VM_SLEEP);
		p->vmp = vmem_create(p->name, NULL, 0, p->q, probe_afunc,
		    probe_ffunc, p->src, 0, VM_SLEEP);
		sim_op_end();
	} else {
		sim_op_bounded("vmem_create(%s, 0x%lx, 0x%zx)", p->name,
		    (unsigned long)base, size);
		p->vmp = vmem_create(p->name, (void *)base, size, p->q, NULL,
		    NULL, NULL, 0, VM_SLEEP);
		sim_op_end();
	}
	if (p->vmp == NULL || (kind == 3 && p->src == NULL))
		sim_fail("vmem_create(%s, VM_SLEEP) returned NULL", p->name);
	p->span[0][0] = base;
	p->span[0][1] = base + size;
	p->nspans = 1;
	p->span_total = size;
	if (kind == 1 || kind == 2) {
		/* A second span: right after the first (adjacent spans are
		 * still two: no piece may straddle them), or apart. */
		uintptr_t b2 = base + size + (kind == 2 ? p->q * (1 + rnd(8)) : 0);
		size_t s2 = p->q * (1 + rnd(32));
		sim_op_bounded("vmem_add(%s, 0x%lx, 0x%zx, SLEEP)", p->name,
		    (unsigned long)b2, s2);
		if (vmem_add(p->vmp, (void *)b2, s2, VM_SLEEP) == NULL)
			sim_fail("vmem_add(%s, VM_SLEEP) returned NULL", p->name);
		sim_op_end();
		p->span[1][0] = b2;
		p->span[1][1] = b2 + s2;
		p->nspans = 2;
		p->span_total += s2;
	}
}

static size_t pow2_at_most(size_t x)
{
	return x == 0 ? 0 : (size_t)1 << (63 - __builtin_clzll(x));
}

/* A size from the arena's state: the largest run, the total free, the
 * span, a run's own size, or a few quanta; each -1, 0 or +1 quantum. */
static size_t state_size(const probe_t *p, const run_t *r, unsigned n)
{
	size_t largest = 0, total = 0, q = p->q;
	for (unsigned i = 0; i < n; i++) {
		size_t l = r[i].e - r[i].s;
		total += l;
		largest = l > largest ? l : largest;
	}
	size_t base;
	switch (rnd(6)) {
	case 0: case 1: base = largest; break;
	case 2: base = total; break;
	case 3: base = p->span_total; break;
	case 4: base = n ? r[rnd(n)].e - r[rnd(n)].s : q; break;
	default: base = q * (1 + rnd(4)); break;
	}
	unsigned d = rnd(3);
	size_t size = d == 0 && base > q ? base - q : d == 2 ? base + q : base;
	return size == 0 ? q : size;
}

/* Whether a VM_SLEEP request is sure to be met: it fits in the arena
 * now, or (an importing arena, no constraint) in its source. */
static bool sleep_ok(const probe_t *p, const run_t *r, unsigned n,
    const req_t *q)
{
	uintptr_t at;
	if (runs_fit(r, n, q, &at))
		return true;
	if (p->src == NULL || q->x)
		return false;
	static run_t sr[RUNS_MAX];
	unsigned ns = arena_runs(p->src, sr);
	return runs_fit(sr, ns, q, &at);
}

static void probe_alloc_state(probe_t *p)
{
	static run_t r[SIM_THREADS_MAX + 1][RUNS_MAX];
	run_t *rr = r[sim_self() % (SIM_THREADS_MAX + 1)];
	unsigned n = arena_runs(p->vmp, rr);
	req_t q = {.size = state_size(p, rr, n), .align = p->q, .pol = rnd(4)};
	q.sleep = rnd(4) == 0 && sleep_ok(p, rr, n, &q);
	if (q.sleep && p->src != NULL && rnd(2) == 0)
		p->src_fail = 1 + rnd(6); /* fails a while, then recovers */
	probe_call(p, &q);
}

/* A constrained request that fits exactly at a boundary of a free run
 * (or misses it by one quantum): align and phase that put the start
 * exactly on the run's start, a window that is exactly the run, a
 * nocross boundary the piece ends exactly on. */
static void probe_xalloc_boundary(probe_t *p)
{
	static run_t r[SIM_THREADS_MAX + 1][RUNS_MAX];
	run_t *rr = r[sim_self() % (SIM_THREADS_MAX + 1)];
	unsigned n = arena_runs(p->vmp, rr);
	size_t q = p->q;
	uintptr_t s, e;
	if (n != 0) {
		unsigned k = rnd(n);
		s = rr[k].s;
		e = rr[k].e;
	} else {
		s = p->span[0][0];
		e = p->span[0][1];
	}
	req_t x = {.align = q, .pol = rnd(4), .x = true};
	unsigned off = rnd(3); /* 0: exact, 1: one quantum short, 2: over */
	size_t len = e - s;
	switch (rnd(3)) {
	case 0: { /* align and phase: the start lands on s (or s + q) */
		size_t al = q << rnd(7);
		uintptr_t at = s + (off == 1 ? q : 0);
		x.align = al;
		x.phase = at & (al - 1);
		x.size = off == 2 ? len + q : at < e ? e - at : q;
		break;
	}
	case 1: /* a window exactly the run (or one quantum in) */
		x.lo = s + (off == 1 ? q : 0);
		x.hi = e;
		if (x.lo >= x.hi)
			x.lo = s;
		x.size = x.hi - x.lo + (off == 2 ? q : 0);
		if (rnd(3) == 0) {
			/* or only one side of it */
			if (rnd(2))
				x.lo = 0;
			else
				x.hi = 0;
		}
		break;
	default: { /* nocross: the piece ends on a boundary above s */
		size_t nc = pow2_at_most(len);
		if (nc < q)
			nc = q;
		uintptr_t b = (s | (nc - 1)) + 1; /* the first boundary above s */
		x.nocross = nc;
		x.size = b - s;
		if (off == 2)
			x.size += q;
		else if (off == 1 && x.size > q)
			x.size -= q;
		if (x.size > nc)
			x.size = nc;
		break;
	}
	}
	if (x.size == 0)
		x.size = q;
	if (x.hi != 0 && (x.hi <= x.lo || x.hi - x.lo < x.size))
		x.hi = 0;
	if (x.nocross != 0 && (x.phase & (x.nocross - 1)) + x.size > x.nocross)
		x.nocross = 0;
	x.sleep = rnd(6) == 0 && x.nocross == 0 && x.lo == 0 && x.hi == 0 &&
	    sleep_ok(p, rr, n, &x);
	probe_call(p, &x);
}

/* Fill the arena to the last quantum (the largest run, or a few quanta,
 * until nothing fits), free it all in a random order, then ask for each
 * span whole and one quantum more, under every policy. */
static void probe_cycle(probe_t *p)
{
	static run_t r[SIM_THREADS_MAX + 1][RUNS_MAX];
	run_t *rr = r[sim_self() % (SIM_THREADS_MAX + 1)];
	for (unsigned i = 0; i < 2 * PROBE_HELD && p->n < PROBE_HELD; i++) {
		unsigned n = arena_runs(p->vmp, rr);
		size_t largest = 0;
		for (unsigned k = 0; k < n; k++)
			if (rr[k].e - rr[k].s > largest)
				largest = rr[k].e - rr[k].s;
		if (largest == 0 && p->src == NULL)
			break;
		req_t q = {.align = p->q, .pol = rnd(4)};
		q.size = rnd(2) || largest == 0 ? p->q * (1 + rnd(3)) : largest;
		if (!probe_call(p, &q) && largest == 0)
			break;
	}
	while (p->n > 0)
		probe_free(p, rnd(p->n));
	if (p->src == NULL) {
		unsigned n = arena_runs(p->vmp, rr);
		size_t total = 0;
		for (unsigned k = 0; k < n; k++)
			total += rr[k].e - rr[k].s;
		if (total != p->span_total || n != p->nspans)
			sim_fail("%s: all freed, yet %zu of %zu bytes are free "
			    "in %u runs (%u spans)", p->name, total,
			    p->span_total, n, p->nspans);
	}
	unsigned order = rnd(24);
	for (unsigned k = 0; k < 4; k++) {
		unsigned pol = (k + order) % 4;
		for (unsigned sp = 0; sp < p->nspans; sp++) {
			size_t whole = p->span[sp][1] - p->span[sp][0];
			req_t q = {.size = whole, .align = p->q, .pol = pol};
			if (probe_call(p, &q))
				probe_free(p, p->n - 1);
			q.size = whole + p->q;
			if (probe_call(p, &q))
				probe_free(p, p->n - 1);
		}
	}
}

/* Injected failures: the arena's mtbf or the global one, 1 included. */
static void probe_mtbf(probe_t *p)
{
	static const uint64_t ms[] = {0, 0, 1, 1, 2, 3, 5};
	uint64_t m = ms[rnd(7)];
	if (rnd(3) == 0) {
		sim_op("vmem_mtbf_set(NULL, %llu)", (unsigned long long)m);
		mtbf_global_set(m);
	} else {
		sim_op("vmem_mtbf_set(%s, %llu)", p->name, (unsigned long long)m);
		vmem_mtbf_set(p->vmp, m);
		p->mtbf = m;
	}
	sim_op_end();
}

static void probe_op(unsigned me)
{
	probe_t *p = &probes[me];
	if (p->vmp == NULL)
		probe_init(p, me);
	unsigned r = rnd(100);
	if (p->n == 0 ? r < 50 : r < 35)
		probe_alloc_state(p);
	else if (r < 60)
		probe_xalloc_boundary(p);
	else if (r < 68)
		probe_cycle(p);
	else if (r < 76)
		probe_mtbf(p);
	else if (p->n != 0)
		probe_free(p, rnd(p->n));
}

static void probe_teardown(unsigned me)
{
	probe_t *p = &probes[me];
	if (p->vmp == NULL)
		return;
	while (p->n > 0)
		probe_free(p, p->n - 1);
	sim_op("vmem_destroy(%s)", p->name);
	vmem_mtbf_set(p->vmp, 0);
	if (vmem_size(p->vmp, VMEM_ALLOC) != 0)
		sim_fail("%s: 0x%zx bytes in use after every free", p->name,
		    vmem_size(p->vmp, VMEM_ALLOC));
	vmem_destroy(p->vmp);
	if (p->src != NULL) {
		if (vmem_size(p->src, VMEM_ALLOC) != 0)
			sim_fail("%s: 0x%zx bytes still imported after every "
			    "free", p->sname, vmem_size(p->src, VMEM_ALLOC));
		vmem_destroy(p->src);
	}
	sim_op_end();
	p->vmp = NULL;
}

/* ---- version 2: nothing leaked --------------------------------------------- */

/*
 * What the internal arenas and the page region hold, read between steps
 * with one thread left (the scenario's start and its end), no lock taken:
 *   - per arena on vmem_list, its direct use: bytes allocated from it
 *     less the spans arenas importing from it hold (those are accounted
 *     in the importer);
 *   - the tags ever made (the census) and the live pages of the region,
 *     the lock table's chunks, the arenas' hash tables beyond the
 *     embedded one;
 *   - per cache on the cache list, its buffers in use (in slabs, not
 *     free there nor in the depot; no thread holds magazines then).
 */
#define LEAK_MAX 48u

typedef struct leak_snap {
	unsigned n, nc;
	struct { const vmem_t *vmp; size_t direct; } a[LEAK_MAX];
	struct { const umem_cache_t *cp; size_t inuse, chunks, htab; }
	    c[LEAK_MAX];
	size_t tags, pages, lt_chunks, htab, heap_total;
} leak_snap_t;

static leak_snap_t leak_base;
static bool leak_armed;

static size_t htab_bytes(const vmem_t *vmp)
{
	if (vmp->ar_htab == vmp->ar_htab_embedded)
		return 0;
	size_t b = (vmp->ar_htab_mask + 1) * sizeof(vmem_seg_t *);
	return (b + 4095) & ~(size_t)4095;
}

static void leak_snap(leak_snap_t *s)
{
	memset(s, 0, sizeof(*s));
	for (const vmem_t *x = vmem_list; x != NULL; x = x->ar_next) {
		if (s->n == LEAK_MAX)
			sim_fail("leak check: more than %u arenas", LEAK_MAX);
		size_t d = x->ar_kstat.mem_inuse;
		for (const vmem_t *y = vmem_list; y != NULL; y = y->ar_next)
			if (y->ar_source == x)
				d -= y->ar_kstat.mem_import;
		s->a[s->n].vmp = x;
		s->a[s->n].direct = d;
		s->n++;
		s->htab += htab_bytes(x);
	}
	for (umem_cache_t *cp = umem_cache_list; cp != NULL;
	     cp = cp->cc_next) {
		if (s->nc == LEAK_MAX)
			sim_fail("leak check: more than %u caches", LEAK_MAX);
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		s->c[s->nc].cp = cp;
		s->c[s->nc].inuse = st.us_bufs_total - st.us_bufs_slab_free -
		    st.us_bufs_depot;
		if (cp->cc_htab != cp->cc_htab_embedded)
			s->c[s->nc].htab = (cp->cc_htab_mask + 1) *
			    sizeof(umem_slab_t *);
		for (size_t k = 0; k < UMEM_SLOT_CHUNKS; k++)
			s->c[s->nc].chunks += atomic_load(&cp->cc_slotdir[k]) !=
			    NULL;
		s->nc++;
	}
	vmem_tag_census_t c;
	const vmem_seg_t *head;
	vmem_tag_census_locked(&c, &head);
	s->tags = c.created;
	s->pages = sim_pages_live();
	locktab_stats_t lt;
	locktab_stats(&lt);
	s->lt_chunks = lt.lt_chunks;
	s->heap_total = vmem_heap_arena()->ar_kstat.mem_total;
}

static size_t leak_direct(const leak_snap_t *s, const vmem_t *vmp, bool *found)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->a[i].vmp == vmp) {
			*found = true;
			return s->a[i].direct;
		}
	*found = false;
	return 0;
}

static void leak_baseline(void)
{
	sim_op("leak check: the baseline (bootstrap, one umem_alloc, reaps)");
	(void)vmem_heap_arena();
	void *b = umem_alloc(8, UMEM_NOFAIL);
	umem_free(b, 8);
	umem_thread_flush_self();
	/* A reap keeps the depot's working set (what was used since the
	 * previous reap): three in a row with nothing between leave none. */
	for (int i = 0; i < 3; i++)
		umem_reap();
	sim_op_end();
	leak_snap(&leak_base);
	leak_armed = true;
}

static void leak_check(void)
{
	if (!leak_armed)
		return;
	sim_op("leak check: flush, reaps");
	umem_thread_flush_self();
	/* A reap keeps the depot's working set (what was used since the
	 * previous reap): three in a row with nothing between leave none. */
	for (int i = 0; i < 3; i++)
		umem_reap();
	sim_op_end();
	static leak_snap_t now;
	leak_snap(&now);
	const leak_snap_t *b = &leak_base;
	for (unsigned i = 0; i < now.nc; i++) {
		unsigned j;
		for (j = 0; j < b->nc && b->c[j].cp != now.c[i].cp; j++)
			;
		if (j == b->nc)
			sim_fail("leaked: cache \"%s\" (made during the run) was "
			    "never destroyed", now.c[i].cp->cc_name);
		if (now.c[i].inuse != b->c[j].inuse)
			sim_fail("leaked: cache \"%s\" has %zu buffers in use at "
			    "the end, %zu at the start", now.c[i].cp->cc_name,
			    now.c[i].inuse, b->c[j].inuse);
	}
	size_t per = VMEM_POPULATE_BYTES / sizeof(vmem_seg_t);
	size_t dtags = now.tags - b->tags;
	if (dtags % per != 0)
		sim_fail("leak check: %zu tags made during the run, not whole "
		    "batches of %zu", dtags, per);
	for (unsigned i = 0; i < now.n; i++) {
		const vmem_t *x = now.a[i].vmp;
		bool found;
		size_t was = leak_direct(b, x, &found);
		if (!found)
			sim_fail("leaked: arena \"%s\" (made during the run) was "
			    "never destroyed: 0x%zx bytes", x->ar_name,
			    x->ar_kstat.mem_inuse);
		size_t allowed = was;
		if (x == vmem_seg_arena)
			allowed += dtags / per * VMEM_POPULATE_BYTES;
		/* A cache's slot chunk, made the first time a thread of
		 * its range uses the cache, stays until the cache goes;
		 * so does its slab hash table, once grown. */
		if (x == umem_meta_arena)
			for (unsigned k = 0; k < now.nc; k++)
				for (unsigned j = 0; j < b->nc; j++)
					if (b->c[j].cp == now.c[k].cp)
						allowed += (now.c[k].chunks -
						    b->c[j].chunks) *
						    sizeof(umem_slot_chunk_t) +
						    ((now.c[k].htab + 15) &
						    ~(size_t)15) - ((b->c[j].htab +
						    15) & ~(size_t)15);
		if (now.a[i].direct != allowed)
			sim_fail("leaked: arena \"%s\" holds 0x%zx bytes of its "
			    "own at the end, 0x%zx at the start; 0x%zx are "
			    "accounted for (tags made: %zu)",
			    x->ar_name, now.a[i].direct, was, allowed, dtags);
	}
	size_t pages_allowed = b->pages + (now.heap_total - b->heap_total) +
	    (now.htab - b->htab) + (now.lt_chunks - b->lt_chunks) *
	    LOCKTAB_CHUNK_BYTES;
	if (now.pages != pages_allowed)
		sim_fail("leaked: 0x%zx bytes of pages mapped at the end, 0x%zx "
		    "at the start; 0x%zx are accounted for (the heap's spans "
		    "0x%zx, hash tables 0x%zx, lock table chunks %zu)",
		    now.pages, b->pages, pages_allowed, now.heap_total,
		    now.htab, now.lt_chunks);
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
		if (v2()) {
			/* Every value, 1 (every NOSLEEP call fails) first:
			 * the tag arena's, a shared arena's, the global. */
			static const uint64_t ms[] = {1, 1, 2, 3, 5, 7};
			uint64_t m = ms[rnd(6)];
			unsigned which = rnd(3);
			sim_op("vmem_mtbf_set(%s, %llu)", which == 0 ? "tags" :
			    which == 1 ? "an arena" : "NULL",
			    (unsigned long long)m);
			if (which == 0)
				vmem_mtbf_set(vmem_seg_arena, m);
			else if (which == 1 && W.narenas != 0)
				vmem_mtbf_set(W.arena[rnd(W.narenas)], m);
			else
				mtbf_global_set(m);
			break;
		}
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
		if (v2())
			mtbf_global_set(0);
		break;
	}
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
	sim_op_bounded("child: create and destroy an arena and a cache");
	vmem_t *x = vmem_create("child", (void *)0x1000, 0x1000, 16, NULL,
	    NULL, NULL, 64, VM_SLEEP);
	if (x == NULL && v2())
		sim_fail("child: vmem_create(child, VM_SLEEP) returned NULL");
	void *p = vmem_alloc(x, 32, VM_SLEEP);
	if (p == NULL && v2())
		sim_fail("child: vmem_alloc(child, 32, VM_SLEEP) returned NULL");
	vmem_free(x, p, 32);
	vmem_destroy(x);
	umem_cache_t *c = umem_cache_create("child_cache", 48, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	if (c != NULL || !v2()) {
		void *b = umem_cache_alloc(c, UMEM_NOFAIL);
		umem_cache_free(c, b);
		umem_cache_destroy(c);
	}
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
		if (v2() && rnd(100) < 20) {
			probe_op(me);
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
	if (v2())
		probe_teardown(me);
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
	if (v2())
		mtbf_global_set(0);
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
	if (v2())
		leak_check();
	sim_check_now("end", true);
}

static int nofail_retry(void)
{
	return UMEM_CALLBACK_RETRY;
}

static void world_init(void)
{
	/* UMEM_NOFAIL waits out injected failures instead of exiting. */
	umem_nofail_callback(nofail_retry);
	memset(&W, 0, sizeof(W));
	memset(shadows, 0, sizeof(shadows));
	W.ush = shadow_new("umem_alloc");
	memset(probes, 0, sizeof(probes));
	mtbf_global = 0;
	leak_armed = false;
}

/* Version 2: the leak check's baseline, for the scenarios with workers. */
static void world_baseline(void)
{
	if (v2())
		leak_baseline();
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
	sim_op_bounded("create arenas ids (quantum caches) and mem (over the heap, a populator)");
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
	world_baseline();
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
	sim_op_bounded("umem_alloc(100) (first use)");
	void *p = umem_alloc(100, UMEM_NOFAIL);
	sim_op_end();
	sim_op("umem_free");
	umem_free(p, 100);
	sim_op_end();
}

static void boot_child(void *arg)
{
	(void)arg;
	sim_op_bounded("child: umem_alloc(100)");
	void *p = umem_alloc(100, UMEM_NOFAIL);
	sim_op_end();
	sim_op_bounded("child: an arena created, used, destroyed; umem_free");
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
	world_baseline();
	sim_op_bounded("create the stack l0 <- l1 <- l2");
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
	sim_op_bounded("vmem_create(%s)", name);
	vmem_t *vmp = vmem_create(name, (void *)0x1000, 0x100000, 1, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	sim_op_end();
	/* Enough single-quantum pieces (a tag each) that the storms drain
	 * the tag batches, and a window in which populates fail (the tag
	 * arena's allocations fail one time in three). */
	unsigned n = sim_config()->ops * 16;
	bool fail_window = rnd(2) == 0;
	sim_op_bounded("umem_alloc(%zu)", n * sizeof(uintptr_t));
	uintptr_t *got = umem_alloc(n * sizeof(uintptr_t), UMEM_NOFAIL);
	sim_op_end();
	for (unsigned i = 0; i < n; i++) {
		if (fail_window && (i == n / 2 || i == 3 * n / 4)) {
			uint64_t m = i == n / 2 ? 3 : 0;
			sim_op("vmem_mtbf_set(tags, %llu)", (unsigned long long)m);
			vmem_mtbf_set(vmem_seg_arena, m);
			sim_op_end();
		}
		if (rnd(64) == 0)
			op_chaos();
		if (v2() && rnd(32) == 0)
			probe_op(me);
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
	if (v2())
		probe_teardown(me);
}

static void sc_populate(void *arg)
{
	(void)arg;
	world_init();
	plan = (worker_plan_t){0, 60, 40, 10};
	W.mtbf_always = true;
	world_baseline();
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
		if (v2())
			probe_op(me);
		sim_op_bounded("create, use and destroy %s and a cache over it",
		    name);
		/* Every other one a populator: its registration and its
		 * removal race populates and forks too. */
		vmem_t *vmp = vmem_create(name, NULL, 0, 32, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 128,
		    (i % 2 ? VMC_POPULATOR : 0) | VM_SLEEP);
		if (vmp == NULL && v2())
			sim_fail("vmem_create(%s, VM_SLEEP) returned NULL", name);
		void *p = vmem_alloc(vmp, 64, VM_SLEEP);
		void *q = vmem_alloc(vmp, 4096, VM_SLEEP);
		if (p == NULL || q == NULL)
			sim_fail("VM_SLEEP returned NULL in %s", name);
		vmem_free(vmp, p, 64);
		vmem_free(vmp, q, 4096);
		umem_cache_t *cp = umem_cache_create(name, 40 + 8 * me, 0,
		    ctor_side, dtor_side, NULL, NULL, vmp, 0);
		/* A create may fail (injected failures, version 2). */
		void *b = cp != NULL || !v2() ?
		    umem_cache_alloc(cp, UMEM_DEFAULT) : NULL;
		if (b != NULL)
			umem_cache_free(cp, b);
		if (cp != NULL || !v2())
			umem_cache_destroy(cp);
		vmem_destroy(vmp);
		sim_op_end();
	}
	if (v2())
		probe_teardown(me);
}

static void sc_lifecycle(void *arg)
{
	(void)arg;
	world_init();
	plan = (worker_plan_t){40, 40, 15, 5};
	world_baseline();
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
	sim_op_bounded("alloc a, free a");
	void *a = umem_cache_alloc(cp, UMEM_NOFAIL);
	umem_cache_free(cp, a);
	sim_op_end();
	W.warm = true; /* its slot and magazine exist: the fork may come */
	sim_op_bounded("alloc b, c, free c, b");
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
	sim_op_bounded("child: alloc x, y; free both");
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
	sim_op_bounded("create arena tiny");
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
