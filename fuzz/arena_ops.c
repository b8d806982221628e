/*
 * arena_ops.c — fuzz target: programs of arena operations on up to three
 * source-less arenas (integer ranges in a fake address space, never touched
 * as memory), checked step by step against a shadow model (shadow.h) and
 * the invariant checker.
 *
 * The program: create (quantum, base, size, qcache_max), add span, alloc
 * under each policy (NOSLEEP, or SLEEP when the model guarantees a fit),
 * xalloc with valid constraints, free/xfree, walk, contains, size, extend,
 * mtbf on/off, reap, destroy.  Oracles (FUZZ.md): every allocation inside a
 * span, overlapping nothing, honouring its constraints and its policy's
 * choice; a NOSLEEP failure only when nothing fits (or mtbf / a failed tag
 * populate); a failed call changes nothing; walks, sizes and statistics
 * equal the model.  Arenas with quantum caches hold cached slabs the model
 * does not see, so there only the placement oracles and the spans apply.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_leak.h"
#include "invariants.h"
#include "shadow.h"
#include "umem.h"
#include "vmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define AO_ARENAS 3
#define AO_MAX_OPS 200
#define AO_REGION_UNITS 8192u

typedef struct ao_arena {
	vmem_t *vmp;
	shadow_t sh;
	size_t q;
	size_t qcache_max; /* as passed; 0: the model sees everything */
	bool qcache;
	uint64_t mtbf;     /* the arena's own mtbf, 0: the global one */
	uintptr_t base;    /* of the fake region */
	char name[24];
} ao_arena_t;

static ao_arena_t ao[AO_ARENAS];
static invariant_report_t ao_rep;
static uint64_t ao_gmtbf; /* vmem_mtbf_set(NULL, ...) of this input */

/* Arm the mtbf that applies to a call on a (fuzz_common.h). */
static void ao_arm(const ao_arena_t *a)
{
	fuzz_mtbf_arm(a->mtbf != 0 ? a->mtbf : ao_gmtbf);
}

static const size_t ao_quanta[5] = {1, 8, 16, 64, 4096};

/* ---- checks ---------------------------------------------------------------- */

/*
 * The checker after every operation: the touched arena in full (it is
 * small), every arena and the global tag accounting (R3, linear in the
 * ~1500 tags ever created, so it would dominate the run) on every 16th
 * operation and at the end of the input.  The
 * library's own hook (QUANTA_CHECKER) still runs after every arena-changing
 * call; ao_setup lowers its size threshold so that it too checks the small
 * arenas in full every time and R3 about every 7th time.
 */
static void ao_check_invariants(vmem_t *vmp)
{
	invariant_report_init(&ao_rep);
	size_t n = vmp != NULL ? invariant_check_arena(vmp, &ao_rep)
			       : invariant_check_all(&ao_rep);
	if (n != 0) {
		invariant_report_print(&ao_rep, stderr, 0);
		fuzz_fail("invariant checker: %zu violation(s)", ao_rep.count);
	}
}

typedef struct ao_walk {
	unsigned n, max;
	bool overflow;
	sh_seg_t *v;
} ao_walk_t;

#define AO_WALK_MAX (SH_MAX_SEGS + 16)
static sh_seg_t ao_walk_buf[AO_WALK_MAX];
static sh_seg_t ao_model_buf[SH_MAX_SEGS];

static void ao_walk_cb(void *arg, void *start, size_t size)
{
	ao_walk_t *w = arg;
	if (w->n >= w->max) {
		w->overflow = true;
		return;
	}
	w->v[w->n].start = (uintptr_t)start;
	w->v[w->n].end = (uintptr_t)start + size;
	w->n++;
}

static unsigned ao_walk(const ao_arena_t *a, int type, bool reentrant)
{
	ao_walk_t w = {.n = 0, .max = AO_WALK_MAX, .v = ao_walk_buf};
	vmem_walk(a->vmp, type | (reentrant ? (int)VMEM_REENTRANT : 0),
	    ao_walk_cb, &w);
	if (w.overflow)
		fuzz_fail("%s: walk 0x%x returned more than %u segments",
		    a->name, (unsigned)type, (unsigned)AO_WALK_MAX);
	return w.n;
}

/*
 * The arena against the model: spans always; for an arena without quantum
 * caches also the allocated and free segments, the sizes and the counters.
 */
static void ao_check_arena(const ao_arena_t *a, bool reentrant)
{
	const shadow_t *sh = &a->sh;
	unsigned n = ao_walk(a, VMEM_SPAN, reentrant);
	for (unsigned i = 0; i < sh->nspans; i++) {
		ao_model_buf[i].start = sh->span[i].start;
		ao_model_buf[i].end = sh->span[i].end;
	}
	sh_compare_walk(a->name, "spans", ao_walk_buf, n, ao_model_buf, sh->nspans);
	size_t total = sh_span_total(sh, false);
	size_t vs_span = vmem_size(a->vmp, VMEM_SPAN);
	size_t vs_alloc = vmem_size(a->vmp, VMEM_ALLOC);
	size_t vs_free = vmem_size(a->vmp, VMEM_FREE);
	size_t live = sh_live_bytes(sh);
	if (vs_span != total)
		fuzz_fail("%s: vmem_size(VMEM_SPAN) 0x%zx, spans add up to 0x%zx",
		    a->name, vs_span, total);
	if (vs_alloc + vs_free != total)
		fuzz_fail("%s: vmem_size ALLOC 0x%zx + FREE 0x%zx != SPAN 0x%zx",
		    a->name, vs_alloc, vs_free, total);
	if (a->qcache) {
		if (vs_alloc < live)
			fuzz_fail("%s: vmem_size(VMEM_ALLOC) 0x%zx below the live "
			    "0x%zx", a->name, vs_alloc, live);
		return;
	}
	if (vs_alloc != live)
		fuzz_fail("%s: vmem_size(VMEM_ALLOC) 0x%zx, live allocations add "
		    "up to 0x%zx", a->name, vs_alloc, live);
	n = ao_walk(a, VMEM_ALLOC, reentrant);
	for (unsigned i = 0; i < sh->nallocs; i++) {
		ao_model_buf[i].start = sh->a[i].start;
		ao_model_buf[i].end = sh->a[i].end;
	}
	sh_compare_walk(a->name, "allocated segments", ao_walk_buf, n, ao_model_buf,
	    sh->nallocs);
	unsigned nf = sh_free_segs(sh, ao_model_buf, SH_MAX_SEGS);
	n = ao_walk(a, VMEM_FREE, reentrant);
	sh_compare_walk(a->name, "free segments", ao_walk_buf, n, ao_model_buf, nf);
	size_t largest = 0;
	for (unsigned i = 0; i < nf; i++)
		if (ao_model_buf[i].end - ao_model_buf[i].start > largest)
			largest = ao_model_buf[i].end - ao_model_buf[i].start;
	vmem_stats_t st;
	vmem_stats(a->vmp, &st);
	if (st.vs_alloc - st.vs_free != sh->nallocs ||
	    st.vs_segs_alloc != sh->nallocs || st.vs_spans != sh->nspans ||
	    st.vs_segs_free != nf || st.vs_largest_free != largest ||
	    st.vs_mem_inuse != live || st.vs_mem_total != total ||
	    st.vs_mem_import != 0 || st.vs_free_bytes != total - live)
		fuzz_fail("%s: statistics disagree with the model: alloc-free "
		    "%lu segs_alloc %zu (model %u), spans %zu (%u), segs_free %zu "
		    "(%u), largest_free 0x%zx (0x%zx), inuse 0x%zx (0x%zx), "
		    "total 0x%zx (0x%zx), import 0x%zx", a->name,
		    (unsigned long)(st.vs_alloc - st.vs_free), st.vs_segs_alloc,
		    sh->nallocs, st.vs_spans, sh->nspans, st.vs_segs_free, nf,
		    st.vs_largest_free, largest, st.vs_mem_inuse, live,
		    st.vs_mem_total, total, st.vs_mem_import);
}

/* What must not change when a call fails. */
typedef struct ao_snap {
	vmem_stats_t st;
	size_t sz_alloc, sz_free;
} ao_snap_t;

static void ao_snap(const ao_arena_t *a, ao_snap_t *s)
{
	vmem_stats(a->vmp, &s->st);
	s->sz_alloc = vmem_size(a->vmp, VMEM_ALLOC);
	s->sz_free = vmem_size(a->vmp, VMEM_FREE);
}

static void ao_check_unchanged(const ao_arena_t *a, const ao_snap_t *b)
{
	ao_snap_t s;
	ao_snap(a, &s);
	if (s.sz_alloc != b->sz_alloc || s.sz_free != b->sz_free ||
	    s.st.vs_alloc != b->st.vs_alloc || s.st.vs_free != b->st.vs_free ||
	    s.st.vs_mem_inuse != b->st.vs_mem_inuse ||
	    s.st.vs_mem_total != b->st.vs_mem_total ||
	    s.st.vs_mem_import != b->st.vs_mem_import ||
	    s.st.vs_segs_alloc != b->st.vs_segs_alloc ||
	    s.st.vs_segs_free != b->st.vs_segs_free ||
	    s.st.vs_largest_free != b->st.vs_largest_free ||
	    s.st.vs_spans != b->st.vs_spans)
		fuzz_fail("%s: a failed call changed the arena: ALLOC 0x%zx -> "
		    "0x%zx, FREE 0x%zx -> 0x%zx, alloc %lu -> %lu, free %lu -> "
		    "%lu, segs_free %zu -> %zu, spans %zu -> %zu", a->name,
		    b->sz_alloc, s.sz_alloc, b->sz_free, s.sz_free,
		    (unsigned long)b->st.vs_alloc, (unsigned long)s.st.vs_alloc,
		    (unsigned long)b->st.vs_free, (unsigned long)s.st.vs_free,
		    b->st.vs_segs_free, s.st.vs_segs_free, b->st.vs_spans,
		    s.st.vs_spans);
	if (s.st.vs_fail != b->st.vs_fail + 1)
		fuzz_fail("%s: a failed allocation counted fail %lu -> %lu",
		    a->name, (unsigned long)b->st.vs_fail,
		    (unsigned long)s.st.vs_fail);
	if (!a->qcache)
		ao_check_arena(a, false);
}

/* ---- decoding helpers ------------------------------------------------------ */

static ao_arena_t *ao_pick(fuzz_in_t *in)
{
	unsigned k = fuzz_u8(in) % AO_ARENAS;
	for (unsigned i = 0; i < AO_ARENAS; i++) {
		ao_arena_t *a = &ao[(k + i) % AO_ARENAS];
		if (a->vmp != NULL)
			return a;
	}
	return NULL;
}

/* A size in bytes: mostly a few quanta, sometimes ragged or huge. */
static size_t ao_size(fuzz_in_t *in, size_t q)
{
	uint8_t b = fuzz_u8(in);
	size_t units;
	switch (b >> 5) {
	case 0: case 1: case 2:
		units = 1 + (b & 7);
		break;
	case 3: case 4:
		units = 1 + (b & 31);
		break;
	case 5:
		units = 1 + fuzz_u16(in) % 1024;
		break;
	case 6: {
		size_t s = (size_t)(1 + (b & 31)) * q;
		size_t cut = q > 1 ? fuzz_u16(in) % q : 0;
		return s - cut;
	}
	default:
		switch (b & 7) {
		case 0: return SIZE_MAX;
		case 1: return q > 1 ? SIZE_MAX - q + 2 : SIZE_MAX - 1;
		case 2: return SIZE_MAX - q + 1;
		case 3: return SIZE_MAX / 2 + 1;
		case 4: return (size_t)1 << 40;
		case 5: return (size_t)AO_REGION_UNITS * q;
		default: return (size_t)(AO_REGION_UNITS + fuzz_u16(in)) * q;
		}
	}
	return units * q;
}

static bool ao_roundup(size_t x, size_t q, size_t *out)
{
	if (x > SIZE_MAX - (q - 1))
		return false;
	*out = (x + q - 1) & ~(q - 1);
	return true;
}

static const int ao_policy[4] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT,
    VM_NEXTFIT};

static const char *ao_policy_name(int p)
{
	return p == VM_BESTFIT ? "best" : p == VM_FIRSTFIT ? "first"
	    : p == VM_NEXTFIT ? "next" : "instant";
}

/* A range of the fake region that no span of the arena overlaps. */
static bool ao_free_range(fuzz_in_t *in, const ao_arena_t *a, uintptr_t *addrp,
    size_t *sizep)
{
	const shadow_t *sh = &a->sh;
	uint8_t how = fuzz_u8(in);
	size_t size = (size_t)(1 + ((how & 0x80) ? fuzz_u16(in) % 1024
						 : fuzz_u8(in) % 64)) * a->q;
	uintptr_t addr;
	if ((how & 3) == 1 && sh->nspans != 0) {
		const sh_span_t *s = &sh->span[fuzz_below(in, sh->nspans)];
		addr = s->end;              /* right after a span */
	} else if ((how & 3) == 2 && sh->nspans != 0) {
		const sh_span_t *s = &sh->span[fuzz_below(in, sh->nspans)];
		if (s->start - a->base < size)
			return false;
		addr = s->start - size;     /* right before a span */
	} else {
		addr = a->base + (uintptr_t)(fuzz_u16(in) % AO_REGION_UNITS) * a->q;
	}
	if (addr < a->base || addr + size < addr ||
	    addr + size > a->base + (uintptr_t)(2 * AO_REGION_UNITS) * a->q ||
	    sh_span_overlap(sh, addr, addr + size) >= 0)
		return false;
	*addrp = addr;
	*sizep = size;
	return true;
}

/* ---- operations ------------------------------------------------------------ */

static void ao_create(fuzz_in_t *in)
{
	unsigned slot = fuzz_u8(in) % AO_ARENAS;
	ao_arena_t *a = &ao[slot];
	if (a->vmp != NULL)
		return;
	uint8_t b = fuzz_u8(in);
	size_t q = ao_quanta[b % 5];
	bool high = (b & 0x80) != 0;
	uint8_t c = fuzz_u8(in);
	size_t qcache_max = 0;
	if ((c & 7) == 7) /* rarely: 16 object caches cost a lot to make */
		qcache_max = q * (size_t)(1 + ((c >> 2) % 20));
	int cflags = (c & 0x40) ? VMC_IDENTIFIER : 0;
	if (qcache_max != 0 && (c & 0x80))
		cflags |= VMC_NO_QCACHE;
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "fz%u", slot);
	a->q = q;
	a->qcache_max = qcache_max;
	a->qcache = qcache_max != 0 && !(cflags & VMC_NO_QCACHE);
	/* The region: low, or just below the top of the address space (no
	 * span may end at 2^64). */
	a->base = high ? (uintptr_t)0 - (uintptr_t)(4 * AO_REGION_UNITS) * q
		       : (uintptr_t)0x40000000u;
	sh_init(&a->sh, q);
	uintptr_t addr = 0;
	size_t size = 0;
	if ((c & 0x20) == 0 && !ao_free_range(in, a, &addr, &size))
		size = 0;
	if (size == 0)
		addr = 0;
	fuzz_step("create %s quantum 0x%zx base 0x%lx size 0x%zx qcache_max "
	    "0x%zx flags 0x%x", a->name, q, (unsigned long)addr, size,
	    qcache_max, (unsigned)cflags);
	a->vmp = vmem_create(a->name, (void *)addr, size, q, NULL, NULL, NULL,
	    qcache_max, cflags | VM_SLEEP);
	if (a->vmp == NULL)
		fuzz_fail("vmem_create with VM_SLEEP returned NULL");
	if (size != 0 && !sh_span_add(&a->sh, addr, addr + size, 0))
		fuzz_fail("harness: initial span rejected by the model");
	if (vmem_quantum(a->vmp) != q || strcmp(vmem_name(a->vmp), a->name))
		fuzz_fail("%s: vmem_quantum/vmem_name disagree", a->name);
	ao_check_arena(a, false);
}

static void ao_add(fuzz_in_t *in, ao_arena_t *a)
{
	uintptr_t addr;
	size_t size;
	int flag = (fuzz_u8(in) & 1) ? VM_NOSLEEP : VM_SLEEP;
	if (a->sh.nspans >= SH_MAX_SPANS || !ao_free_range(in, a, &addr, &size))
		return;
	fuzz_step("add %s [0x%lx, +0x%zx) %s", a->name, (unsigned long)addr,
	    size, flag ? "NOSLEEP" : "SLEEP");
	vmem_stats_t before;
	vmem_stats(a->vmp, &before);
	void *r = vmem_add(a->vmp, (void *)addr, size, flag);
	if (r == NULL) {
		vmem_stats_t after;
		vmem_stats(a->vmp, &after);
		if (flag == VM_SLEEP ||
		    after.vs_populate_fail == before.vs_populate_fail)
			fuzz_fail("%s: vmem_add failed without a populate failure",
			    a->name);
		return;
	}
	if (r != (void *)addr)
		fuzz_fail("%s: vmem_add returned %p, not the address %p", a->name,
		    r, (void *)addr);
	(void)sh_span_add(&a->sh, addr, addr + size, 0);
}

/* The outcome of an allocation call, checked against the model. */
static void ao_alloc_result(ao_arena_t *a, const sh_req_t *r, bool overflow,
    bool fits, int policy, int flag, bool viacache, void *p, size_t req,
    int how, const ao_snap_t *before)
{
	uintptr_t addr = (uintptr_t)p;
	char msg[256];
	if (p == NULL) {
		if (flag == VM_SLEEP)
			fuzz_fail("%s: VM_SLEEP allocation returned NULL", a->name);
		vmem_stats_t st;
		vmem_stats(a->vmp, &st);
		bool excused = overflow || !fits || fuzz_mtbf_fired() ||
		    a->qcache ||
		    st.vs_populate_fail != before->st.vs_populate_fail;
		if (!excused)
			fuzz_fail("%s: NOSLEEP %s fit of 0x%zx (align 0x%zx phase "
			    "0x%zx nocross 0x%zx min 0x%lx max 0x%lx) failed, but "
			    "the model has a free range that satisfies it (no "
			    "injected failure could fire: mtbf %lu)", a->name,
			    ao_policy_name(policy), r->size, r->align, r->phase,
			    r->nocross, (unsigned long)r->minaddr,
			    (unsigned long)r->maxaddr,
			    (unsigned long)(a->mtbf ? a->mtbf : ao_gmtbf));
		if (!viacache && !a->qcache)
			ao_check_unchanged(a, before);
		return;
	}
	if (overflow)
		fuzz_fail("%s: a request whose size overflows returned %p",
		    a->name, p);
	const char *why = sh_req_honoured(r, addr);
	if (why != NULL)
		fuzz_fail("%s: %p: %s", a->name, p, why);
	bool joined = false;
	if (!a->qcache && (why = sh_check_join(&a->sh, r, addr, &joined, msg,
	    sizeof(msg))) != NULL)
		fuzz_fail("%s: %s fit: %s", a->name, ao_policy_name(policy), why);
	if (!a->qcache && !joined && (why = sh_check_choice(&a->sh, r, policy,
	    addr, msg, sizeof(msg))) != NULL)
		fuzz_fail("%s: %s", a->name, why);
	if ((why = sh_alloc_add(&a->sh, addr, r->size, req, how)) != NULL)
		fuzz_fail("%s: %p size 0x%zx: %s", a->name, p, r->size, why);
	if (policy == VM_NEXTFIT && !viacache) {
		a->sh.rotor_set = true;
		a->sh.rotor = addr + r->size;
	}
}

static void ao_alloc(fuzz_in_t *in, ao_arena_t *a)
{
	if (a->sh.nallocs >= SH_MAX_ALLOCS)
		return;
	uint8_t b = fuzz_u8(in);
	int policy = ao_policy[b & 3];
	size_t size = ao_size(in, a->q);
	sh_req_t r = {.align = a->q, .maxaddr = UINTPTR_MAX};
	bool overflow = !ao_roundup(size, a->q, &r.size);
	bool viacache = a->qcache && !overflow && r.size <= a->qcache_max;
	bool fits = !overflow && !a->qcache && sh_fits(&a->sh, &r);
	int flag = (b & 4) && fits ? VM_SLEEP : VM_NOSLEEP;
	fuzz_step("alloc %s size 0x%zx %s %s", a->name, size,
	    ao_policy_name(policy), flag ? "NOSLEEP" : "SLEEP");
	ao_snap_t before;
	ao_snap(a, &before);
	ao_arm(a);
	void *p = vmem_alloc(a->vmp, size, policy | flag);
	ao_alloc_result(a, &r, overflow, fits, policy, flag, viacache, p, size,
	    SH_ALLOC, &before);
}

static void ao_xalloc(fuzz_in_t *in, ao_arena_t *a)
{
	if (a->sh.nallocs >= SH_MAX_ALLOCS)
		return;
	size_t q = a->q;
	uint8_t b = fuzz_u8(in);
	int policy = ao_policy[b & 3];
	size_t size = ao_size(in, q);
	sh_req_t r = {.maxaddr = UINTPTR_MAX};
	bool overflow = !ao_roundup(size, q, &r.size);
	/* align: 0 (the quantum) or a power of two multiple of it */
	uint8_t k = fuzz_u8(in);
	size_t align = 0;
	if (k & 0x80) {
		unsigned sh = (k & 0x40) ? 20u + (k % 40u) : k % 10u;
		unsigned qb = (unsigned)__builtin_ctzll((unsigned long long)q);
		if (sh + qb > 62)
			sh = 62 - qb;
		align = q << sh;
	}
	r.align = align ? align : q;
	size_t phase = 0;
	if (r.align > q && (fuzz_u8(in) & 1))
		phase = (size_t)(fuzz_u16(in) % (r.align / q > 65535 ? 65535
		    : r.align / q)) * q;
	r.phase = phase;
	size_t nocross = 0;
	uint8_t c = fuzz_u8(in);
	if ((c & 1) && !overflow) {
		nocross = q << ((c >> 1) % 14);
		if ((phase & (nocross - 1)) > nocross ||
		    r.size > nocross - (phase & (nocross - 1)))
			nocross = 0;
	}
	r.nocross = nocross;
	uintptr_t lo = 0, hi = 0;
	uint8_t w = fuzz_u8(in);
	if (w & 1)
		lo = a->base + (uintptr_t)(fuzz_u16(in) % (2 * AO_REGION_UNITS)) * q;
	if (w & 2)
		hi = a->base + (uintptr_t)(fuzz_u16(in) % (2 * AO_REGION_UNITS)) * q;
	if ((hi != 0 && lo >= hi) || overflow ||
	    (hi ? hi : UINTPTR_MAX) - lo < r.size)
		lo = hi = 0; /* over-constrained: bad-calls' business */
	r.minaddr = lo;
	r.maxaddr = hi ? hi : UINTPTR_MAX;
	r.constrained = r.align > q || phase != 0 || nocross != 0 || lo != 0 ||
	    hi != 0;
	bool fits = !overflow && !a->qcache && sh_fits(&a->sh, &r);
	int flag = (b & 4) && fits ? VM_SLEEP : VM_NOSLEEP;
	fuzz_step("xalloc %s size 0x%zx align 0x%zx phase 0x%zx nocross 0x%zx "
	    "min 0x%lx max 0x%lx %s %s", a->name, size, align, phase, nocross,
	    (unsigned long)lo, (unsigned long)hi, ao_policy_name(policy),
	    flag ? "NOSLEEP" : "SLEEP");
	ao_snap_t before;
	ao_snap(a, &before);
	ao_arm(a);
	void *p = vmem_xalloc(a->vmp, size, align, phase, nocross, (void *)lo,
	    (void *)hi, policy | flag);
	ao_alloc_result(a, &r, overflow, fits, policy, flag, false, p, size,
	    SH_XALLOC, &before);
}

static void ao_free(fuzz_in_t *in, ao_arena_t *a)
{
	if (a->sh.nallocs == 0)
		return;
	unsigned i = fuzz_below(in, a->sh.nallocs);
	sh_alloc_t e = a->sh.a[i];
	fuzz_step("%s %s 0x%lx size 0x%zx", e.how == SH_ALLOC ? "free" : "xfree",
	    a->name, (unsigned long)e.start, e.req);
	sh_alloc_remove(&a->sh, i);
	if (e.how == SH_ALLOC)
		vmem_free(a->vmp, (void *)e.start, e.req);
	else
		vmem_xfree(a->vmp, (void *)e.start, e.req);
}

static void ao_extend(fuzz_in_t *in, ao_arena_t *a)
{
	uintptr_t addr;
	size_t size;
	uint8_t b = fuzz_u8(in);
	if (a->sh.nallocs >= SH_MAX_ALLOCS || a->sh.nspans >= SH_MAX_SPANS ||
	    !ao_free_range(in, a, &addr, &size))
		return;
	size_t alloc = 1 + fuzz_u16(in) % size;
	int flag = (b & 1) ? VM_NOSLEEP : VM_SLEEP;
	fuzz_step("extend_alloc %s [0x%lx, +0x%zx) alloc 0x%zx %s", a->name,
	    (unsigned long)addr, size, alloc, flag ? "NOSLEEP" : "SLEEP");
	vmem_stats_t before;
	vmem_stats(a->vmp, &before);
	void *p = vmem_extend_alloc(a->vmp, (void *)addr, size, alloc, flag);
	if (p == NULL) {
		vmem_stats_t after;
		vmem_stats(a->vmp, &after);
		if (flag == VM_SLEEP ||
		    after.vs_populate_fail == before.vs_populate_fail)
			fuzz_fail("%s: vmem_extend_alloc failed without a populate "
			    "failure", a->name);
		return;
	}
	if (p != (void *)addr)
		fuzz_fail("%s: vmem_extend_alloc returned %p, not %p", a->name, p,
		    (void *)addr);
	/* The model: join an added span ending at addr and/or one starting at
	 * addr + size (VMEM.md, "Growing an arena in place"). */
	shadow_t *sh = &a->sh;
	uintptr_t start = addr, end = addr + size;
	for (unsigned i = 0; i < sh->nspans; i++) {
		if (!sh->span[i].imported && sh->span[i].end == addr) {
			start = sh->span[i].start;
			sh_span_remove(sh, i);
			break;
		}
	}
	for (unsigned i = 0; i < sh->nspans; i++) {
		if (!sh->span[i].imported && sh->span[i].start == addr + size) {
			end = sh->span[i].end;
			sh_span_remove(sh, i);
			break;
		}
	}
	(void)sh_span_add(sh, start, end, 0);
	size_t asize = 0;
	if (!ao_roundup(alloc, a->q, &asize))
		fuzz_fail("%s: extend_alloc: alloc 0x%zx overflows", a->name, alloc);
	const char *why = sh_alloc_add(sh, addr, asize, asize, SH_XALLOC);
	if (why != NULL)
		fuzz_fail("%s: extend_alloc: %s", a->name, why);
}

static void ao_contains(fuzz_in_t *in, ao_arena_t *a)
{
	uintptr_t addr;
	if (a->sh.nspans != 0 && (fuzz_u8(in) & 1)) {
		const sh_span_t *s = &a->sh.span[fuzz_below(in, a->sh.nspans)];
		addr = s->start + (uintptr_t)fuzz_u16(in) * a->q / 4;
	} else {
		addr = a->base + (uintptr_t)(fuzz_u16(in) % (2 * AO_REGION_UNITS)) *
		    a->q;
	}
	size_t size = (size_t)fuzz_u16(in) * a->q / 8;
	fuzz_step("contains %s 0x%lx size 0x%zx", a->name, (unsigned long)addr,
	    size);
	int got = vmem_contains(a->vmp, (void *)addr, size);
	int sp = sh_span_find(&a->sh, addr);
	int want = sp >= 0 && size <= a->sh.span[sp].end - addr;
	if (got != want)
		fuzz_fail("%s: vmem_contains(0x%lx, 0x%zx) = %d, the model says %d",
		    a->name, (unsigned long)addr, size, got, want);
}

static void ao_destroy(ao_arena_t *a)
{
	fuzz_step("destroy %s (freeing %u live)", a->name, a->sh.nallocs);
	while (a->sh.nallocs != 0) {
		sh_alloc_t e = a->sh.a[a->sh.nallocs - 1];
		sh_alloc_remove(&a->sh, a->sh.nallocs - 1);
		if (e.how == SH_ALLOC)
			vmem_free(a->vmp, (void *)e.start, e.req);
		else
			vmem_xfree(a->vmp, (void *)e.start, e.req);
	}
	ao_check_arena(a, false);
	if (!a->qcache && vmem_size(a->vmp, VMEM_ALLOC) != 0)
		fuzz_fail("%s: all freed, vmem_size(VMEM_ALLOC) 0x%zx", a->name,
		    vmem_size(a->vmp, VMEM_ALLOC));
	vmem_destroy(a->vmp);
	a->vmp = NULL;
}

/* ---- state-aware operations (issue #18) -------------------------------------
 *
 * Requests sized from the model's state, so that arenas are filled to the
 * last quantum and requests for exactly the free space come: the largest
 * free range, the total free, a span's size, each plus or minus a quantum;
 * fill-to-full then free-all; every policy on one request; exact fits at
 * each constraint boundary; mtbf (global and per arena, 1 and small) around
 * calls that must still return.  They sit behind the opcodes 0x4f, 0x5f,
 * ... 0xdf (kind 15, an alloc before): no input of the corpus, its
 * regressions or planted crashes used those as an opcode (measured by
 * decoding every one), so they all decode as before.
 */

static sh_seg_t ao_range_buf[SH_MAX_SEGS];

/* One request built by a generator: NULL when the arguments would be a bad
 * call (bad_calls' business) or the model is full; else the call is made
 * (VM_SLEEP only when sleep_ok and the model has a fit) and checked. */
static bool ao_request(ao_arena_t *a, size_t size, size_t align, size_t phase,
    size_t nocross, uintptr_t lo, uintptr_t hi, int policy, bool sleep_ok,
    bool x, uintptr_t *addrp)
{
	size_t q = a->q;
	if (a->sh.nallocs >= SH_MAX_ALLOCS || size == 0)
		return false;
	sh_req_t r = {.maxaddr = UINTPTR_MAX};
	bool overflow = !ao_roundup(size, q, &r.size);
	if (!x && (align | phase | nocross | lo | hi) != 0)
		return false;
	r.align = align ? align : q;
	if (!sh_pow2(r.align) || (r.align & (q - 1)) != 0 || phase >= r.align ||
	    (phase & (q - 1)) != 0 || (lo & (q - 1)) != 0 || (hi & (q - 1)) != 0 ||
	    (hi != 0 && lo >= hi) || (nocross != 0 && (!sh_pow2(nocross) ||
	    (nocross & (q - 1)) != 0)))
		return false;
	if (x && !overflow && ((nocross != 0 &&
	    (phase & (nocross - 1)) + r.size > nocross) ||
	    (hi ? hi : UINTPTR_MAX) - lo < r.size))
		return false;
	if (x && overflow)
		return false; /* a SLEEP/overflow mix is bad_calls' */
	r.phase = phase;
	r.nocross = nocross;
	r.minaddr = lo;
	r.maxaddr = hi ? hi : UINTPTR_MAX;
	r.constrained = r.align > q || phase != 0 || nocross != 0 || lo != 0 ||
	    hi != 0;
	bool viacache = !x && a->qcache && !overflow && r.size <= a->qcache_max;
	bool fits = !overflow && !a->qcache && sh_fits(&a->sh, &r);
	int flag = sleep_ok && fits ? VM_SLEEP : VM_NOSLEEP;
	if (x)
		fuzz_step("xalloc %s size 0x%zx align 0x%zx phase 0x%zx nocross "
		    "0x%zx min 0x%lx max 0x%lx %s %s (state)", a->name, size,
		    align, phase, nocross, (unsigned long)lo, (unsigned long)hi,
		    ao_policy_name(policy), flag ? "NOSLEEP" : "SLEEP");
	else
		fuzz_step("alloc %s size 0x%zx %s %s (state)", a->name, size,
		    ao_policy_name(policy), flag ? "NOSLEEP" : "SLEEP");
	ao_snap_t before;
	ao_snap(a, &before);
	ao_arm(a);
	void *p = x ? vmem_xalloc(a->vmp, size, align, phase, nocross,
			  (void *)lo, (void *)hi, policy | flag)
		    : vmem_alloc(a->vmp, size, policy | flag);
	ao_alloc_result(a, &r, overflow, fits, policy, flag, viacache, p, size,
	    x ? SH_XALLOC : SH_ALLOC, &before);
	if (p != NULL && addrp != NULL)
		*addrp = (uintptr_t)p;
	return p != NULL;
}

/* A size from the arena's state: the largest free range, the total free,
 * a span's size or a small count of quanta, then -q, 0 or +q, sometimes
 * ragged below the quantum. */
static size_t ao_state_size(fuzz_in_t *in, const ao_arena_t *a)
{
	uint8_t b = fuzz_u8(in);
	size_t q = a->q, base;
	sh_freeinfo_t fi = sh_free_info(&a->sh);
	switch (b % 5) {
	case 0: base = fi.largest; break;
	case 1: base = fi.total; break;
	case 2:
		base = a->sh.nspans == 0 ? q : a->sh.span[fuzz_below(in,
		    a->sh.nspans)].end - a->sh.span[fuzz_below(in,
		    a->sh.nspans)].start;
		break;
	case 3: base = q * (1 + fuzz_u8(in) % 64u); break;
	default: {
		/* a free range's size, not the largest */
		unsigned n = sh_free_ranges(&a->sh, ao_range_buf, SH_MAX_SEGS);
		base = n == 0 ? q : ao_range_buf[fuzz_below(in, n)].end -
		    ao_range_buf[fuzz_below(in, n)].start;
		break;
	}
	}
	switch ((b >> 3) % 4) {
	case 1: base = base > q ? base - q : q; break;
	case 2: base += q; break;
	default: break;
	}
	if (base == 0)
		base = q;
	if ((b & 0x80) && q > 1)
		base -= 1 + fuzz_u8(in) % (q - 1); /* rounds up to the same */
	return base;
}

/* Free allocation i of the model and the arena. */
static void ao_free_idx(ao_arena_t *a, unsigned i)
{
	sh_alloc_t e = a->sh.a[i];
	fuzz_step("%s %s 0x%lx size 0x%zx", e.how == SH_ALLOC ? "free" : "xfree",
	    a->name, (unsigned long)e.start, e.req);
	sh_alloc_remove(&a->sh, i);
	if (e.how == SH_ALLOC)
		vmem_free(a->vmp, (void *)e.start, e.req);
	else
		vmem_xfree(a->vmp, (void *)e.start, e.req);
}

/* Free everything live: ascending, descending or every other first. */
static void ao_free_all(ao_arena_t *a, unsigned order)
{
	fuzz_step("free-all %s (%u live, order %u)", a->name, a->sh.nallocs,
	    order % 3);
	switch (order % 3) {
	case 0:
		while (a->sh.nallocs != 0)
			ao_free_idx(a, 0);
		break;
	case 1:
		while (a->sh.nallocs != 0)
			ao_free_idx(a, a->sh.nallocs - 1);
		break;
	default:
		for (unsigned i = 0; i < a->sh.nallocs; i++)
			ao_free_idx(a, i); /* every other one, then the rest */
		while (a->sh.nallocs != 0)
			ao_free_idx(a, 0);
		break;
	}
	if (!a->qcache)
		ao_check_arena(a, false);
}

/* Fill the arena to the last quantum (the largest free range, exactly,
 * each time; or pieces of one to four quanta, which also uses up hundreds
 * of tags, so a tag populate happens within the input, under whatever
 * mtbf is set), check that nothing is free, then maybe free it all. */
static void ao_fill(fuzz_in_t *in, ao_arena_t *a)
{
	uint8_t b = fuzz_u8(in), o = fuzz_u8(in);
	int policy = ao_policy[b & 3];
	bool sleep_ok = (b & 4) != 0, small = (b & 0x10) != 0;
	size_t piece = a->q * (1 + (b >> 5) % 4);
	fuzz_step("fill %s %s %s", a->name, ao_policy_name(policy),
	    small ? "in small pieces" : "by the largest range");
	for (unsigned k = 0; k < SH_MAX_ALLOCS; k++) {
		sh_freeinfo_t fi = sh_free_info(&a->sh);
		if (fi.total == 0 || a->qcache)
			break;
		size_t size = !small ? fi.largest : piece <= fi.largest ? piece
		    : fi.largest;
		if (!ao_request(a, size, 0, 0, 0, 0, 0, policy, sleep_ok,
		    false, NULL))
			break;
	}
	if (!a->qcache && sh_free_info(&a->sh).total == 0) {
		if (vmem_size(a->vmp, VMEM_FREE) != 0)
			fuzz_fail("%s: filled to the last quantum, vmem_size("
			    "VMEM_FREE) is 0x%zx", a->name,
			    vmem_size(a->vmp, VMEM_FREE));
		/* Nothing fits: one quantum NOSLEEP must fail. */
		(void)ao_request(a, a->q, 0, 0, 0, 0, 0, policy, false, false,
		    NULL);
	}
	if (b & 8)
		ao_free_all(a, o);
}

/* An exact fit at a constraint boundary of a free range, +/- a quantum. */
static void ao_boundary(fuzz_in_t *in, ao_arena_t *a)
{
	uint8_t b = fuzz_u8(in), k = fuzz_u8(in);
	int policy = ao_policy[b & 3];
	bool sleep_ok = (b & 4) != 0;
	size_t q = a->q;
	unsigned n = sh_free_ranges(&a->sh, ao_range_buf, SH_MAX_SEGS);
	if (n == 0)
		return;
	sh_seg_t rg = ao_range_buf[fuzz_below(in, n)];
	uintptr_t s = rg.start, e = rg.end;
	size_t align = 0, phase = 0, nocross = 0, size;
	uintptr_t lo = 0, hi = 0;
	unsigned qb = (unsigned)__builtin_ctzll((unsigned long long)q);
	unsigned sh = (k >> 2) % 12;
	if (sh + qb > 40)
		sh = 40 - qb;
	switch (k % 4) {
	case 0: { /* align and phase: from the lowest fitting address to the end */
		align = q << sh;
		phase = align > q ? (size_t)fuzz_u16(in) % (align / q) * q : 0;
		uintptr_t at = s + (((uintptr_t)phase - s) & (align - 1));
		if (at >= e)
			return;
		size = e - at;
		break;
	}
	case 1: { /* nocross: the first or the last block's share of the range */
		nocross = q << sh;
		uintptr_t m = nocross - 1;
		if (b & 0x10) {
			uintptr_t be = (s | m) + 1;
			size = (be == 0 || be > e ? e : be) - s;
		} else {
			uintptr_t bs = (e - 1) & ~m;
			size = e - (bs > s ? bs : s);
		}
		break;
	}
	case 2: /* the window: exactly the range */
		lo = s;
		hi = e;
		size = e - s;
		break;
	default: { /* all at once: aligned start, window to the end, nocross */
		align = q << (sh % 6);
		uintptr_t at = s + ((0 - s) & (align - 1));
		if (at >= e)
			return;
		lo = at;
		hi = e;
		size = e - at;
		/* the smallest nocross the fit does not straddle */
		nocross = q;
		while (nocross < size ||
		    ((at ^ (at + size - 1)) & ~(uintptr_t)(nocross - 1)) != 0) {
			if (nocross >= ((size_t)1 << 50)) {
				nocross = 0;
				break;
			}
			nocross <<= 1;
		}
		break;
	}
	}
	switch ((b >> 5) % 4) { /* the boundary itself, or one quantum off */
	case 1: size = size > q ? size - q : size; break;
	case 2: size += q; break;
	case 3:
		if (lo != 0 && hi - lo > q)
			lo += q; /* the window one quantum short */
		break;
	default: break;
	}
	if (!(b & 0x80)) {
		(void)ao_request(a, size, align, phase, nocross, lo, hi, policy,
		    sleep_ok, true, NULL);
		return;
	}
	/* every policy on the same request, each freed again */
	for (unsigned i = 0; i < 4; i++) {
		uintptr_t addr;
		if (!ao_request(a, size, align, phase, nocross, lo, hi,
		    ao_policy[i], sleep_ok, true, &addr))
			continue;
		int j = sh_alloc_find(&a->sh, addr);
		if (j >= 0)
			ao_free_idx(a, (unsigned)j);
	}
}

/* The global mtbf of the input: 0, 1 (every NOSLEEP request of a caller
 * fails) or a small value. */
static void ao_gmtbf_set(uint64_t v)
{
	fuzz_step("mtbf global %lu", (unsigned long)v);
	vmem_mtbf_set(NULL, v);
	ao_gmtbf = v;
}

static const uint64_t ao_mtbf_vals[8] = {0, 1, 2, 3, 4, 7, 16, 1};

static void ao_ext(fuzz_in_t *in, ao_arena_t *a)
{
	uint8_t sub = fuzz_u8(in);
	if (sub % 16 == 8) { /* a tag populate under the mtbf in force */
		uint8_t b = fuzz_u8(in);
		fuzz_spend_tags(ao_policy[b & 3], (b & 4) != 0, ao_gmtbf);
		return;
	}
	switch (sub % 8) {
	case 0: { /* one request sized from the state */
		uint8_t b = fuzz_u8(in);
		size_t size = ao_state_size(in, a);
		(void)ao_request(a, size, 0, 0, 0, 0, 0, ao_policy[b & 3],
		    (b & 4) != 0, false, NULL);
		break;
	}
	case 1: { /* every policy on the same request, each freed again */
		uint8_t b = fuzz_u8(in);
		size_t size = ao_state_size(in, a);
		for (unsigned i = 0; i < 4; i++) {
			uintptr_t addr;
			if (!ao_request(a, size, 0, 0, 0, 0, 0, ao_policy[i],
			    (b & 4) != 0, false, &addr))
				continue;
			int j = sh_alloc_find(&a->sh, addr);
			if (j >= 0 && !(b & 8))
				ao_free_idx(a, (unsigned)j);
		}
		break;
	}
	case 2:
		ao_fill(in, a);
		break;
	case 3:
		ao_free_all(a, fuzz_u8(in));
		break;
	case 4:
		ao_boundary(in, a);
		break;
	case 5:
		ao_gmtbf_set(ao_mtbf_vals[fuzz_u8(in) % 8]);
		break;
	case 6: { /* calls that must return under mtbf 1: SLEEP alloc, add */
		uint64_t was = ao_gmtbf;
		uint8_t b = fuzz_u8(in);
		ao_gmtbf_set(1);
		if (b & 0x10) /* across a tag populate */
			fuzz_spend_tags(ao_policy[b & 3], true, 1);
		size_t size = ao_state_size(in, a);
		(void)ao_request(a, size, 0, 0, 0, 0, 0, ao_policy[b & 3], true,
		    false, NULL);
		if (b & 4)
			ao_add(in, a);
		if (b & 8)
			ao_create(in);
		ao_gmtbf_set(was);
		break;
	}
	default: { /* the arena's own small mtbf over a state request */
		uint8_t b = fuzz_u8(in);
		uint64_t was = a->mtbf, v = 1 + (b >> 4) % 3;
		fuzz_step("mtbf %s %lu", a->name, (unsigned long)v);
		vmem_mtbf_set(a->vmp, v);
		a->mtbf = v;
		size_t size = ao_state_size(in, a);
		(void)ao_request(a, size, 0, 0, 0, 0, 0, ao_policy[b & 3],
		    (b & 4) != 0, false, NULL);
		vmem_mtbf_set(a->vmp, was);
		a->mtbf = was;
		break;
	}
	}
}

static void ao_setup(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	invariant_set_segs_max(256);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in_t in;
	ao_setup();
	fuzz_in_init(&in, data, size);
	fuzz_log_reset();
	fuzz_watch_begin();
	fuzz_leak_begin();
	for (unsigned op = 0; op < AO_MAX_OPS && fuzz_in_more(&in); op++) {
		uint8_t o = fuzz_u8(&in);
		ao_arena_t *a = NULL;
		unsigned kind = o % 16;
		if (kind != 0) {
			a = ao_pick(&in);
			if (a == NULL)
				kind = 0;
		}
		switch (kind) {
		case 0:
			ao_create(&in);
			break;
		case 1:
			ao_add(&in, a);
			break;
		case 2: case 3: case 4:
			ao_alloc(&in, a);
			break;
		case 5: case 6:
			ao_xalloc(&in, a);
			break;
		case 7: case 8: case 9:
			ao_free(&in, a);
			break;
		case 10: {
			bool re = fuzz_u8(&in) & 1;
			fuzz_step("walk %s%s", a->name, re ? " reentrant" : "");
			ao_check_arena(a, re);
			break;
		}
		case 11:
			ao_contains(&in, a);
			break;
		case 12:
			ao_extend(&in, a);
			break;
		case 13: {
			uint8_t m = fuzz_u8(&in);
			uint64_t v = (m & 1) ? 1 + (m >> 1) % 8 : 0;
			fuzz_step("mtbf %s %lu", a->name, (unsigned long)v);
			vmem_mtbf_set(a->vmp, v);
			a->mtbf = v;
			break;
		}
		case 14:
			if ((fuzz_u8(&in) & 7) == 0) {
				ao_destroy(a);
			} else {
				fuzz_step("reap");
				umem_reap();
			}
			break;
		default:
			if (o >= 0x4f && o <= 0xdf)
				ao_ext(&in, a);
			else
				ao_alloc(&in, a);
			break;
		}
		ao_check_invariants(op % 16 == 15 || a == NULL ||
		    a->vmp == NULL ? NULL : a->vmp);
		if (a != NULL && a->vmp != NULL && !a->qcache && kind != 10)
			ao_check_arena(a, false);
	}
	for (unsigned i = 0; i < AO_ARENAS; i++)
		if (ao[i].vmp != NULL)
			ao_destroy(&ao[i]);
	if (ao_gmtbf != 0)
		ao_gmtbf_set(0);
	fuzz_mtbf_arm(0);
	fuzz_quiesce();
	ao_check_invariants(NULL);
	fuzz_step("leak check");
	fuzz_leak_check();
	fuzz_watch_end();
	return 0;
}
