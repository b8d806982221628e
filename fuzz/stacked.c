/*
 * stacked.c — fuzz target: stacked arenas.  A base arena (a fixed fake
 * span, no source), a middle arena importing from it (through
 * vmem_alloc/vmem_free, or through this file's afunc/ffunc, which by a
 * byte of the input fails on command or returns a span aligned only to the
 * middle arena's quantum), and an optional top arena importing from the
 * middle (vmem_alloc/vmem_free, i.e. vmem_xalloc semantics).  Programs of
 * alloc/xalloc/free/mtbf/walk on any level, checked against one shadow
 * model per level (shadow.h).
 *
 * Oracles, besides those of arena_ops (placement, policy, walks, sizes):
 *   - the spans of a level are imported pieces of the level below: the
 *     parent's allocations are exactly the harness's own plus the child's
 *     spans (the afunc table's original pieces for the custom source);
 *   - every imported span that is wholly free is given back at once
 *     (unless the next-fit rotor stands inside it and keeps two free pieces
 *     apart: VMEM.md lets a marker hold them until it moves on), so when
 *     everything above is freed the base's VMEM_ALLOC returns to 0;
 *   - a NOSLEEP failure only when no level can satisfy it (or mtbf is on,
 *     or the afunc failed on command), and it changes no level;
 *   - VM_SLEEP is only issued when the chain can certainly satisfy it, and
 *     then must not return NULL.
 * The levels have no quantum caches (the model would not see the slabs).
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
#include "vmem.h"
#include "vmem_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ST_MAX_OPS 200
#define ST_BASE_ADDR ((uintptr_t)0x40000000u)
#define ST_TABLE 128

enum { ST_B, ST_M, ST_T, ST_LEVELS };

typedef struct st_level {
	vmem_t *vmp;
	shadow_t sh;
	size_t q;
	int src;       /* level it imports from, -1 for none */
	bool custom;   /* imports through st_afunc/st_ffunc */
	bool mtbf;
	uint64_t mtbf_v;
	const char *name;
} st_level_t;

typedef struct st_piece {
	uintptr_t span;  /* what the afunc returned */
	size_t size;     /* the size asked for */
	uintptr_t orig;  /* what it took from the base */
	size_t origsize;
} st_piece_t;

static st_level_t st[ST_LEVELS];
static st_piece_t st_table[ST_TABLE];
static unsigned st_ntable;
static fuzz_in_t *st_in;          /* the afunc reads its orders from here */
static bool st_cmd_failed;        /* the afunc failed on command this op */
static unsigned st_fail_for;      /* the afunc's next calls that fail, even
				   * VM_SLEEP ones: a source out of memory
				   * for a while, which then recovers */
static uint64_t st_gmtbf;         /* vmem_mtbf_set(NULL, ...) of the input */
static invariant_report_t st_rep;

#define ST_WALK_MAX (SH_MAX_SEGS + 16)
static sh_seg_t st_walk_buf[ST_WALK_MAX];
static sh_seg_t st_model_buf[SH_MAX_SEGS];

static bool st_roundup(size_t x, size_t q, size_t *out)
{
	if (x > SIZE_MAX - (q - 1))
		return false;
	*out = (x + q - 1) & ~(q - 1);
	return true;
}

static void st_check_invariants(vmem_t *vmp)
{
	invariant_report_init(&st_rep);
	size_t n = vmp != NULL ? invariant_check_arena(vmp, &st_rep)
			       : invariant_check_all(&st_rep);
	if (n != 0) {
		invariant_report_print(&st_rep, stderr, 0);
		fuzz_fail("invariant checker: %zu violation(s)", st_rep.count);
	}
}

/* ---- the custom source ---------------------------------------------------- */

static void *st_afunc(vmem_t *src, size_t size, int vmflag)
{
	st_level_t *b = &st[ST_B], *m = &st[ST_M];
	if (src != b->vmp)
		fuzz_fail("afunc called with a foreign source");
	uint8_t order = st_in != NULL ? fuzz_u8(st_in) : 1;
	bool nosleep = (vmflag & VM_NOSLEEP) != 0;
	if (st_fail_for != 0) {
		st_fail_for--;
		st_cmd_failed = true;
		fuzz_step("  afunc(0x%zx, %s): out of memory for a while (%u "
		    "more)", size, nosleep ? "NOSLEEP" : "SLEEP", st_fail_for);
		return NULL;
	}
	if (nosleep && order % 4 == 0) {
		st_cmd_failed = true;
		fuzz_step("  afunc(0x%zx): fail on command", size);
		return NULL;
	}
	if (st_ntable >= ST_TABLE) {
		if (!nosleep)
			fuzz_fail("harness: afunc table full under VM_SLEEP");
		st_cmd_failed = true;
		return NULL;
	}
	bool skew = order % 4 == 3 && m->q < b->q;
	size_t take = skew ? size + m->q : size;
	if (take < size)
		return NULL;
	size_t rt;
	sh_req_t r = {.align = b->q, .maxaddr = UINTPTR_MAX};
	if (!nosleep && (!st_roundup(take, b->q, &rt) ||
	    (r.size = rt, !sh_fits(&b->sh, &r))))
		fuzz_fail("harness: a VM_SLEEP import of 0x%zx cannot be "
		    "satisfied by the base (it would wait for ever)", take);
	void *p = vmem_alloc(src, take, vmflag & VM_NOSLEEP);
	fuzz_step("  afunc(0x%zx)%s = %p", size, skew ? " skewed" : "", p);
	if (p == NULL)
		return NULL;
	uintptr_t span = (uintptr_t)p + (skew ? m->q : 0);
	st_table[st_ntable++] = (st_piece_t){span, size, (uintptr_t)p, take};
	return (void *)span;
}

static void st_ffunc(vmem_t *src, void *addr, size_t size)
{
	for (unsigned i = 0; i < st_ntable; i++) {
		st_piece_t *e = &st_table[i];
		if (e->span != (uintptr_t)addr)
			continue;
		if (e->size != size)
			fuzz_fail("ffunc(%p, 0x%zx): the afunc returned it with "
			    "size 0x%zx", addr, size, e->size);
		fuzz_step("  ffunc(%p, 0x%zx)", addr, size);
		vmem_free(src, (void *)e->orig, e->origsize);
		*e = st_table[--st_ntable];
		return;
	}
	fuzz_fail("ffunc(%p, 0x%zx): not a span the afunc returned", addr, size);
}

/* ---- the model against the arenas ----------------------------------------- */

typedef struct st_walk {
	unsigned n;
	bool overflow;
} st_walk_t;

static void st_walk_cb(void *arg, void *start, size_t size)
{
	st_walk_t *w = arg;
	if (w->n >= ST_WALK_MAX) {
		w->overflow = true;
		return;
	}
	st_walk_buf[w->n].start = (uintptr_t)start;
	st_walk_buf[w->n].end = (uintptr_t)start + size;
	w->n++;
}

static unsigned st_walk(const st_level_t *l, int type)
{
	st_walk_t w = {0, false};
	vmem_walk(l->vmp, type, st_walk_cb, &w);
	if (w.overflow)
		fuzz_fail("%s: walk overflow", l->name);
	return w.n;
}

/* Where the next-fit rotor stands (white box): the start of the segment
 * after it, or unset when it is last. */
static void st_rotor(st_level_t *l)
{
	vmem_t *vmp = l->vmp;
	const vmem_seg_t *seg0 = &vmp->ar_sentinel, *s;
	l->sh.rotor_set = false;
	for (s = seg0->sg_next; s != seg0 && s != &vmp->ar_rotor; s = s->sg_next)
		;
	if (s == seg0)
		fuzz_fail("%s: the rotor is not on the arena list", l->name);
	for (s = s->sg_next; s != seg0 && seg_is_marker(s); s = s->sg_next)
		;
	if (s != seg0) {
		l->sh.rotor_set = true;
		l->sh.rotor = s->sg_start;
	}
}

/* One level against its model, exactly: spans, allocated, free, sizes. */
static void st_check_level(st_level_t *l)
{
	shadow_t *sh = &l->sh;
	st_rotor(l);
	unsigned n = st_walk(l, VMEM_SPAN);
	for (unsigned i = 0; i < sh->nspans; i++)
		st_model_buf[i] = (sh_seg_t){sh->span[i].start, sh->span[i].end};
	sh_compare_walk(l->name, "spans", st_walk_buf, n, st_model_buf, sh->nspans);
	n = st_walk(l, VMEM_ALLOC);
	for (unsigned i = 0; i < sh->nallocs; i++)
		st_model_buf[i] = (sh_seg_t){sh->a[i].start, sh->a[i].end};
	sh_compare_walk(l->name, "allocated segments", st_walk_buf, n, st_model_buf,
	    sh->nallocs);
	unsigned nf = sh_free_segs(sh, st_model_buf, SH_MAX_SEGS);
	n = st_walk(l, VMEM_FREE);
	sh_compare_walk(l->name, "free segments", st_walk_buf, n, st_model_buf, nf);
	size_t total = sh_span_total(sh, false), live = sh_live_bytes(sh);
	vmem_stats_t s;
	vmem_stats(l->vmp, &s);
	if (vmem_size(l->vmp, VMEM_ALLOC) != live ||
	    vmem_size(l->vmp, VMEM_SPAN) != total ||
	    vmem_size(l->vmp, VMEM_FREE) != total - live ||
	    s.vs_mem_import != sh_span_total(sh, true) ||
	    s.vs_spans != sh->nspans || s.vs_segs_free != nf)
		fuzz_fail("%s: sizes disagree with the model: ALLOC 0x%zx (0x%zx) "
		    "SPAN 0x%zx (0x%zx) import 0x%zx (0x%zx) spans %zu (%u)",
		    l->name, vmem_size(l->vmp, VMEM_ALLOC), live,
		    vmem_size(l->vmp, VMEM_SPAN), total, s.vs_mem_import,
		    sh_span_total(sh, true), s.vs_spans, sh->nspans);
}

/* The parent's allocations that are the child's spans, from the child's
 * model (or the afunc table). */
static void st_rebuild_child_allocs(int child)
{
	st_level_t *c = &st[child], *p = &st[c->src];
	for (unsigned i = p->sh.nallocs; i-- > 0;)
		if (p->sh.a[i].how == SH_CHILD)
			sh_alloc_remove(&p->sh, i);
	if (c->vmp == NULL)
		return;
	if (c->custom) {
		for (unsigned i = 0; i < st_ntable; i++) {
			size_t rs;
			(void)st_roundup(st_table[i].origsize, p->q, &rs);
			const char *why = sh_alloc_add(&p->sh, st_table[i].orig, rs,
			    st_table[i].origsize, SH_CHILD);
			if (why != NULL)
				fuzz_fail("%s: the afunc's piece 0x%lx: %s", p->name,
				    (unsigned long)st_table[i].orig, why);
		}
		if (st_ntable != c->sh.nspans)
			fuzz_fail("%s: %u spans, but the afunc has %u out", c->name,
			    c->sh.nspans, st_ntable);
		return;
	}
	for (unsigned i = 0; i < c->sh.nspans; i++) {
		const sh_span_t *sp = &c->sh.span[i];
		const char *why = sh_alloc_add(&p->sh, sp->start,
		    sp->end - sp->start, sp->end - sp->start, SH_CHILD);
		if (why != NULL)
			fuzz_fail("%s: the span [0x%lx, 0x%lx) of %s: %s", p->name,
			    (unsigned long)sp->start, (unsigned long)sp->end,
			    c->name, why);
	}
}

/* Does a live allocation of the harness's own lie in [start, end)?  (The
 * child's spans are rebuilt after every level's spans are learned, and
 * each then must lie inside a span of the parent.) */
static bool st_direct_busy(const shadow_t *sh, uintptr_t start, uintptr_t end)
{
	for (unsigned i = 0; i < sh->nallocs; i++)
		if (sh->a[i].how != SH_CHILD && sh->a[i].start < end &&
		    start < sh->a[i].end)
			return true;
	return false;
}

/* Learn a level's spans from its walk: the imports and give-backs of the
 * last operation.  A span given back must have been wholly free; a span
 * still there must not be wholly free (with the rotor's exception). */
static void st_sync_spans(st_level_t *l, bool check_free)
{
	shadow_t *sh = &l->sh;
	unsigned n = st_walk(l, VMEM_SPAN);
	for (unsigned i = sh->nspans; i-- > 0;) {
		bool found = false;
		for (unsigned j = 0; j < n && !found; j++)
			found = st_walk_buf[j].start == sh->span[i].start &&
			    st_walk_buf[j].end == sh->span[i].end;
		if (found)
			continue;
		if (st_direct_busy(sh, sh->span[i].start, sh->span[i].end))
			fuzz_fail("%s: span [0x%lx, 0x%lx) vanished with live "
			    "allocations in it", l->name,
			    (unsigned long)sh->span[i].start,
			    (unsigned long)sh->span[i].end);
		sh_span_remove(sh, i);
	}
	for (unsigned j = 0; j < n; j++) {
		if (sh_span_find(sh, st_walk_buf[j].start) >= 0)
			continue;
		if (!sh_span_add(sh, st_walk_buf[j].start, st_walk_buf[j].end, 1))
			fuzz_fail("%s: new span [0x%lx, 0x%lx) overlaps the model "
			    "or the model is full", l->name,
			    (unsigned long)st_walk_buf[j].start,
			    (unsigned long)st_walk_buf[j].end);
	}
	st_rotor(l);
	for (unsigned i = 0; check_free && i < sh->nspans; i++) {
		const sh_span_t *sp = &sh->span[i];
		if (!sp->imported || sh_range_busy(sh, sp->start, sp->end))
			continue;
		if (sh->rotor_set && sp->start < sh->rotor && sh->rotor < sp->end)
			continue; /* the rotor keeps it in two pieces */
		fuzz_fail("%s: imported span [0x%lx, 0x%lx) is wholly free but "
		    "was not given back", l->name, (unsigned long)sp->start,
		    (unsigned long)sp->end);
	}
}

/* After a successful operation: learn the spans top-down, then check every
 * level exactly. */
static void st_sync_all(void)
{
	bool top = st[ST_T].vmp != NULL;
	if (top)
		st_sync_spans(&st[ST_T], false);
	st_sync_spans(&st[ST_M], false);
	st_rebuild_child_allocs(ST_T);
	st_rebuild_child_allocs(ST_M);
	if (top)
		st_sync_spans(&st[ST_T], true);
	st_sync_spans(&st[ST_M], true);
	for (int i = 0; i < ST_LEVELS; i++)
		if (st[i].vmp != NULL)
			st_check_level(&st[i]);
}

/* Can level li certainly satisfy r (unconstrained window)?  Follows the
 * import rule of VMEM.md down the chain; for the custom source it takes
 * the worst case (the second try with slack, skewed by a quantum). */
static bool st_certain(int li, const sh_req_t *r)
{
	st_level_t *l = &st[li];
	if (sh_fits(&l->sh, r))
		return true;
	if (l->src < 0 || r->nocross != 0 || r->minaddr != 0 ||
	    r->maxaddr != UINTPTR_MAX)
		return false;
	st_level_t *s = &st[l->src];
	size_t ialign = r->align > l->q ? r->align : l->q;
	size_t q = ialign > s->q ? ialign : s->q;
	if (r->size > SIZE_MAX - r->phase - ialign)
		return false;
	if (!l->custom) {
		sh_req_t sr = {.align = ialign > s->q ? ialign : s->q,
		    .maxaddr = UINTPTR_MAX, .constrained = ialign > s->q};
		if (!st_roundup(r->size + r->phase, q, &sr.size))
			return false;
		return st_certain(l->src, &sr);
	}
	/* Both tries can hold a piece of the base at once: the first span,
	 * unusable, is given back only when the call ends (vmem.c keeps it in
	 * its pending list across the second import).  VMEM.md allows that
	 * ("given back ... after dropping the arena lock"), so the model asks
	 * the base for room for both, as one range (conservative). */
	size_t slack = ialign > l->q ? ialign - l->q : 0, a1, a2, p1, p2;
	sh_req_t sr = {.align = s->q, .maxaddr = UINTPTR_MAX};
	if (!st_roundup(r->size + r->phase, q, &a1) ||
	    !st_roundup(r->size + r->phase + slack, q, &a2) ||
	    a2 > SIZE_MAX / 4 || !st_roundup(a1 + l->q, s->q, &p1) ||
	    !st_roundup(a2 + l->q, s->q, &p2))
		return false;
	sr.size = p1 + (slack != 0 ? p2 : 0);
	return sh_fits(&s->sh, &sr);
}

static bool st_chain_mtbf(int li)
{
	if (st_gmtbf != 0)
		return true;
	for (; li >= 0; li = st[li].src)
		if (st[li].mtbf)
			return true;
	return false;
}

/* The mtbf that applies along the chain from li, when it is one value
 * (then a failure is excused only if the clock could have fired it,
 * fuzz_common.h); 0 when none applies, UINT64_MAX when the levels differ
 * (then any failure along an mtbf chain is excused). */
static uint64_t st_chain_m(int li)
{
	uint64_t m = 0;
	for (; li >= 0; li = st[li].src) {
		uint64_t v = st[li].mtbf_v != 0 ? st[li].mtbf_v : st_gmtbf;
		if (v == 0)
			continue;
		if (m != 0 && m != v)
			return UINT64_MAX;
		m = v;
	}
	return m;
}

/* ---- operations ------------------------------------------------------------ */

static const int st_policy[4] = {VM_INSTANTFIT, VM_BESTFIT, VM_FIRSTFIT,
    VM_NEXTFIT};

static st_level_t *st_pick(fuzz_in_t *in, int *lip)
{
	int li = fuzz_u8(in) % ST_LEVELS;
	if (st[li].vmp == NULL)
		li = ST_M;
	*lip = li;
	return &st[li];
}

static uintptr_t st_call(int li, bool x, int policy, bool sleep_ok,
    size_t size, sh_req_t *rp, bool overflow, size_t align, size_t phase,
    size_t nocross, uintptr_t lo, uintptr_t hi);
static bool st_room(int li);

static void st_alloc(fuzz_in_t *in, bool x)
{
	int li;
	st_level_t *l = st_pick(in, &li);
	if (l->sh.nallocs >= SH_MAX_ALLOCS / 2)
		return;
	uint8_t b = fuzz_u8(in);
	int policy = st_policy[b & 3];
	size_t q = l->q;
	uint8_t sb = fuzz_u8(in);
	size_t size = (sb & 0x80) ? (size_t)(1 + fuzz_u16(in) % 2048) * q -
	    (q > 1 ? fuzz_u8(in) % q : 0) : (size_t)(1 + (sb & 15)) * q;
	if (sb == 0xff)
		size = SIZE_MAX - q;
	sh_req_t r = {.align = q, .maxaddr = UINTPTR_MAX};
	bool overflow = !st_roundup(size, q, &r.size);
	size_t align = 0, phase = 0, nocross = 0;
	uintptr_t lo = 0, hi = 0;
	if (x) {
		uint8_t k = fuzz_u8(in);
		if (k & 0x80)
			align = q << (k % 8);
		r.align = align ? align : q;
		if (r.align > q && (k & 0x40))
			phase = (size_t)(fuzz_u8(in) % (r.align / q)) * q;
		r.phase = phase;
		uint8_t c = fuzz_u8(in);
		if ((c & 3) == 1 && !overflow) {
			nocross = q << ((c >> 2) % 14);
			if (r.size > nocross - (phase & (nocross - 1)))
				nocross = 0;
		}
		r.nocross = nocross;
		if ((c & 3) == 2 && l->sh.nspans != 0 && !overflow) {
			const sh_span_t *sp = &l->sh.span[fuzz_below(in,
			    l->sh.nspans)];
			lo = sp->start;
			hi = sp->end;
			if (hi - lo < r.size)
				lo = hi = 0;
		}
		r.minaddr = lo;
		r.maxaddr = hi ? hi : UINTPTR_MAX;
		r.constrained = r.align > q || phase || nocross || lo || hi;
	}
	st_call(li, x, policy, (b & 4) != 0, size, &r, overflow, align, phase,
	    nocross, lo, hi);
}

/* Make one allocation call on level li (r normalised from the arguments)
 * and check it; VM_SLEEP only when sleep_ok and the chain can certainly
 * satisfy it.  Returns the address or 0. */
static uintptr_t st_call(int li, bool x, int policy, bool sleep_ok,
    size_t size, sh_req_t *rp, bool overflow, size_t align, size_t phase,
    size_t nocross, uintptr_t lo, uintptr_t hi)
{
	st_level_t *l = &st[li];
	sh_req_t r = *rp;
	if (!st_room(li))
		return 0; /* the models are full: skipped */
	bool certain = !overflow && st_certain(li, &r);
	int flag = sleep_ok && certain ? VM_SLEEP : VM_NOSLEEP;
	fuzz_step("%s %s size 0x%zx align 0x%zx phase 0x%zx nocross 0x%zx "
	    "min 0x%lx max 0x%lx policy 0x%x %s", x ? "xalloc" : "alloc",
	    l->name, size, align, phase, nocross, (unsigned long)lo,
	    (unsigned long)hi, (unsigned)policy, flag ? "NOSLEEP" : "SLEEP");
	st_cmd_failed = false;
	uint64_t m = st_chain_m(li);
	fuzz_mtbf_arm(m == UINT64_MAX ? 0 : m);
	void *p = x ? vmem_xalloc(l->vmp, size, align, phase, nocross,
			  (void *)lo, (void *)hi, policy | flag)
		    : vmem_alloc(l->vmp, size, policy | flag);
	if (p == NULL) {
		if (flag == VM_SLEEP)
			fuzz_fail("%s: VM_SLEEP allocation returned NULL", l->name);
		bool injected = m == UINT64_MAX ? st_chain_mtbf(li)
		    : m != 0 && fuzz_mtbf_fired();
		if (certain && !st_cmd_failed && !injected)
			fuzz_fail("%s: NOSLEEP allocation of 0x%zx failed, but the "
			    "chain could satisfy it (no injected failure could "
			    "fire: mtbf %lu)", l->name, r.size,
			    (unsigned long)(m == UINT64_MAX ? 0 : m));
		/* Nothing changed, on any level. */
		for (int i = 0; i < ST_LEVELS; i++)
			if (st[i].vmp != NULL)
				st_check_level(&st[i]);
		return 0;
	}
	uintptr_t addr = (uintptr_t)p;
	const char *why = sh_req_honoured(&r, addr);
	if (why != NULL)
		fuzz_fail("%s: %p: %s", l->name, p, why);
	/* The spans may have changed (an import): learn them first, then
	 * check the choice against the free segments it had. */
	if (l->src >= 0)
		st_sync_spans(l, false);
	char msg[256];
	st_rotor(l);
	/* The rotor has moved past a next-fit allocation already; put the
	 * model's rotor back where the arena searched from is not possible
	 * white-box, so next fit is checked only for "a fitting segment". */
	if (policy != VM_NEXTFIT &&
	    (why = sh_check_choice(&l->sh, &r, policy, addr, msg,
	    sizeof(msg))) != NULL)
		fuzz_fail("%s: %s", l->name, why);
	if ((why = sh_alloc_add(&l->sh, addr, r.size, size,
	    x ? SH_XALLOC : SH_ALLOC)) != NULL)
		fuzz_fail("%s: %p size 0x%zx: %s", l->name, p, r.size, why);
	st_sync_all();
	return addr;
}

/* Allocation i of level l leaves the model, then the arena (the shadow
 * first: no other owner may see the range between), and every level is
 * read again. */
static void st_free_one(st_level_t *l, unsigned i)
{
	sh_alloc_t e = l->sh.a[i];
	sh_alloc_remove(&l->sh, i);
	if (e.how == SH_ALLOC)
		vmem_free(l->vmp, (void *)e.start, e.req);
	else
		vmem_xfree(l->vmp, (void *)e.start, e.req);
	st_sync_all();
}

static void st_free(fuzz_in_t *in)
{
	int li;
	st_level_t *l = st_pick(in, &li);
	unsigned direct = 0;
	for (unsigned i = 0; i < l->sh.nallocs; i++)
		direct += l->sh.a[i].how != SH_CHILD;
	if (direct == 0)
		return;
	unsigned k = fuzz_below(in, direct), i;
	for (i = 0; i < l->sh.nallocs; i++)
		if (l->sh.a[i].how != SH_CHILD && k-- == 0)
			break;
	fuzz_step("%s %s 0x%lx size 0x%zx",
	    l->sh.a[i].how == SH_ALLOC ? "free" : "xfree", l->name,
	    (unsigned long)l->sh.a[i].start, l->sh.a[i].req);
	st_free_one(l, i);
}

static void st_free_all(int li)
{
	st_level_t *l = &st[li];
	for (unsigned i = l->sh.nallocs; i-- > 0;) {
		if (i >= l->sh.nallocs || l->sh.a[i].how == SH_CHILD)
			continue;
		st_free_one(l, i);
	}
}

/* ---- state-aware operations (issue #18) -------------------------------------
 *
 * Behind the opcodes 0x87, 0x8f, ... 0xf7 (kind 7, a walk before; no
 * input of the corpus used one of them as an opcode, so they all decode
 * as before): requests sized from a level's state (its
 * largest free range, its total free, the source's largest free range, so
 * that an import takes exactly what the level below has left, each +/- a
 * quantum), every policy on one request, fill-to-full and free-all, exact
 * fits to a free range's window, the global mtbf (1 and small values)
 * around VM_SLEEP calls that must still return, and a custom source out of
 * memory for a while (its next calls fail, VM_SLEEP ones too) under a
 * VM_SLEEP call that needs an import: the call must wait and then return.
 */

static sh_seg_t st_range_buf[SH_MAX_SEGS];

/* The models are bounded: a request that may import (down the chain) is
 * made only while every level has room for new spans and for the child
 * spans they become below. */
static bool st_room(int li)
{
	for (int k = li; k >= 0; k = st[k].src)
		if (st[k].sh.nspans >= SH_MAX_SPANS - 4 ||
		    st[k].sh.nallocs >= SH_MAX_ALLOCS - 8)
			return false;
	return true;
}

/* An unconstrained request of size bytes on level li. */
static uintptr_t st_simple(int li, int policy, bool sleep_ok, size_t size)
{
	st_level_t *l = &st[li];
	if (size == 0 || l->sh.nallocs >= SH_MAX_ALLOCS / 2 ||
	    (l->custom && st_ntable >= ST_TABLE - 2))
		return 0;
	if (!st_room(li))
		return 0;
	sh_req_t r = {.align = l->q, .maxaddr = UINTPTR_MAX};
	bool overflow = !st_roundup(size, l->q, &r.size);
	return st_call(li, false, policy, sleep_ok, size, &r, overflow, 0, 0, 0,
	    0, 0);
}

static size_t st_state_size(fuzz_in_t *in, int li)
{
	st_level_t *l = &st[li];
	uint8_t b = fuzz_u8(in);
	size_t q = l->q, base;
	sh_freeinfo_t fi = sh_free_info(&l->sh);
	switch (b % 4) {
	case 0: base = fi.largest; break;
	case 1: base = fi.total; break;
	case 2:
		base = l->src >= 0 ? sh_free_info(&st[l->src].sh).largest
				   : fi.largest;
		break;
	default: base = q * (1 + fuzz_u8(in) % 64u); break;
	}
	switch ((b >> 2) % 4) {
	case 1: base = base > q ? base - q : q; break;
	case 2: base += q; break;
	default: break;
	}
	return base == 0 ? q : base;
}

static void st_boundary(fuzz_in_t *in, int li)
{
	st_level_t *l = &st[li];
	uint8_t b = fuzz_u8(in);
	size_t q = l->q;
	unsigned n = sh_free_ranges(&l->sh, st_range_buf, SH_MAX_SEGS);
	if (n == 0 || l->sh.nallocs >= SH_MAX_ALLOCS / 2 ||
	    (l->custom && st_ntable >= ST_TABLE - 2) || !st_room(li))
		return;
	sh_seg_t rg = st_range_buf[fuzz_below(in, n)];
	sh_req_t r = {.maxaddr = UINTPTR_MAX};
	size_t align = 0, size;
	uintptr_t lo = 0, hi = 0;
	if (b & 0x10) { /* the window: exactly the range */
		lo = rg.start;
		hi = rg.end;
		size = hi - lo;
	} else { /* aligned: from the lowest fitting address to the end */
		align = q << ((b >> 5) % 8);
		uintptr_t at = rg.start + ((0 - rg.start) & (align - 1));
		if (at >= rg.end)
			return;
		size = rg.end - at;
	}
	if (b & 0x08)
		size += q; /* one quantum too many */
	if (hi != 0 && hi - lo < size)
		hi = 0, lo = 0, align = 0;
	r.align = align ? align : q;
	r.size = size;
	r.minaddr = lo;
	r.maxaddr = hi ? hi : UINTPTR_MAX;
	r.constrained = r.align > q || lo != 0 || hi != 0;
	(void)st_call(li, true, st_policy[b & 3], (b & 4) != 0, size, &r, false,
	    align, 0, 0, lo, hi);
}

static void st_gmtbf_set(uint64_t v)
{
	fuzz_step("mtbf global %lu", (unsigned long)v);
	vmem_mtbf_set(NULL, v);
	st_gmtbf = v;
}

static const uint64_t st_mtbf_vals[8] = {0, 1, 2, 3, 4, 7, 16, 1};

static void st_ext(fuzz_in_t *in)
{
	uint8_t sub = fuzz_u8(in);
	int li;
	(void)st_pick(in, &li);
	st_level_t *l = &st[li];
	if (sub % 16 == 8) { /* a tag populate under the mtbf in force */
		uint8_t b = fuzz_u8(in);
		fuzz_spend_tags(st_policy[b & 3], (b & 4) != 0, st_gmtbf);
		return;
	}
	switch (sub % 8) {
	case 0: {
		uint8_t b = fuzz_u8(in);
		(void)st_simple(li, st_policy[b & 3], (b & 4) != 0,
		    st_state_size(in, li));
		break;
	}
	case 1: {
		uint8_t b = fuzz_u8(in);
		size_t size = st_state_size(in, li);
		for (unsigned i = 0; i < 4; i++) {
			uintptr_t a = st_simple(li, st_policy[i], (b & 4) != 0,
			    size);
			int j = a != 0 ? sh_alloc_find(&l->sh, a) : -1;
			if (j >= 0 && !(b & 8))
				st_free_one(l, (unsigned)j);
		}
		break;
	}
	case 2: { /* fill: the largest free range, or pieces of a few quanta */
		uint8_t b = fuzz_u8(in);
		bool small = (b & 0x10) != 0;
		fuzz_step("fill %s %s", l->name, small ? "in small pieces"
		    : "by the largest range");
		for (unsigned k = 0; k < SH_MAX_ALLOCS / 2; k++) {
			sh_freeinfo_t fi = sh_free_info(&l->sh);
			size_t size = small ? l->q * (1 + (b >> 5) % 4) :
			    fi.largest;
			if (size == 0 || st_simple(li, st_policy[b & 3],
			    (b & 4) != 0, size) == 0)
				break;
		}
		if (b & 8) {
			fuzz_step("free-all %s", l->name);
			st_free_all(li);
		}
		break;
	}
	case 3:
		fuzz_step("free-all %s", l->name);
		st_free_all(li);
		break;
	case 4:
		st_gmtbf_set(st_mtbf_vals[fuzz_u8(in) % 8]);
		break;
	case 5: { /* the source out of memory for a while, under VM_SLEEP */
		uint8_t b = fuzz_u8(in);
		if (!st[ST_M].custom)
			break;
		size_t size = sh_free_info(&st[ST_M].sh).largest + st[ST_M].q *
		    (1 + b % 4); /* more than the middle has: an import */
		st_fail_for = 1 + (b >> 2) % 4;
		fuzz_step("source out of memory for the next %u calls",
		    st_fail_for);
		(void)st_simple(ST_M, st_policy[(b >> 4) & 3], true, size);
		st_fail_for = 0;
		break;
	}
	case 6: { /* VM_SLEEP calls under mtbf 1 must return */
		uint8_t b = fuzz_u8(in);
		uint64_t was = st_gmtbf;
		st_gmtbf_set(1);
		if (b & 0x10) /* across a tag populate */
			fuzz_spend_tags(st_policy[b & 3], true, 1);
		(void)st_simple(li, st_policy[b & 3], true, st_state_size(in,
		    li));
		st_gmtbf_set(was);
		break;
	}
	default:
		st_boundary(in, li);
		break;
	}
}

static void st_setup(fuzz_in_t *in)
{
	static const char *names[ST_LEVELS] = {"base", "middle", "top"};
	memset(st, 0, sizeof(st));
	st_ntable = 0;
	uint8_t b = fuzz_u8(in), c = fuzz_u8(in);
	size_t qb = (size_t)4096 >> (b % 4 * 2);          /* 4096 .. 64 */
	size_t qm = qb >> ((b >> 2) % 4);                  /* qb .. qb/8 */
	size_t qt = qm >> ((b >> 4) % 3);
	if (qt == 0)
		qt = 1;
	size_t units = 64 + (size_t)(c % 16) * 64;
	for (int i = 0; i < ST_LEVELS; i++) {
		st[i].name = names[i];
		st[i].src = i - 1;
	}
	st[ST_B].q = qb;
	st[ST_M].q = qm;
	st[ST_T].q = qt;
	st[ST_M].custom = (b & 0x40) != 0;
	bool top = (b & 0x80) != 0;
	fuzz_step("setup base q 0x%zx [0x%lx, +0x%zx), middle q 0x%zx %s, "
	    "top %s q 0x%zx", qb, (unsigned long)ST_BASE_ADDR, units * qb, qm,
	    st[ST_M].custom ? "custom afunc" : "vmem_alloc", top ? "yes" : "no",
	    qt);
	for (int i = 0; i < ST_LEVELS; i++)
		sh_init(&st[i].sh, st[i].q);
	st[ST_B].vmp = vmem_create("st_base", (void *)ST_BASE_ADDR, units * qb,
	    qb, NULL, NULL, NULL, 0, VMC_IDENTIFIER | VM_SLEEP);
	(void)sh_span_add(&st[ST_B].sh, ST_BASE_ADDR, ST_BASE_ADDR + units * qb,
	    0);
	st[ST_M].vmp = st[ST_M].custom
	    ? vmem_create("st_middle", NULL, 0, qm, st_afunc, st_ffunc,
		  st[ST_B].vmp, 0, VMC_IDENTIFIER | VM_SLEEP)
	    : vmem_create("st_middle", NULL, 0, qm, vmem_alloc, vmem_free,
		  st[ST_B].vmp, 0, VMC_IDENTIFIER | VM_SLEEP);
	if (top)
		st[ST_T].vmp = vmem_create("st_top", NULL, 0, qt, vmem_alloc,
		    vmem_free, st[ST_M].vmp, 0, VMC_IDENTIFIER | VM_SLEEP);
	if (st[ST_B].vmp == NULL || st[ST_M].vmp == NULL ||
	    (top && st[ST_T].vmp == NULL))
		fuzz_fail("vmem_create with VM_SLEEP returned NULL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in_t in;
	static bool once;
	if (!once) {
		once = true;
		/* the library's hook: small arenas in full every time, the
		 * global tag count (R3) every few operations */
		invariant_set_segs_max(256);
	}
	fuzz_in_init(&in, data, size);
	fuzz_log_reset();
	fuzz_watch_begin();
	fuzz_leak_begin();
	st_gmtbf = 0;
	st_fail_for = 0;
	st_in = &in;
	st_setup(&in);
	for (unsigned op = 0; op < ST_MAX_OPS && fuzz_in_more(&in); op++) {
		uint8_t o = fuzz_u8(&in);
		vmem_t *touched = NULL;
		switch (o % 8) {
		case 0: case 1: case 2:
			st_alloc(&in, false);
			break;
		case 3:
			st_alloc(&in, true);
			break;
		case 4: case 5:
			st_free(&in);
			break;
		case 6: {
			int li;
			st_level_t *l = st_pick(&in, &li);
			uint8_t m = fuzz_u8(&in);
			uint64_t v = (m & 1) ? 1 + (m >> 1) % 8 : 0;
			fuzz_step("mtbf %s %lu", l->name, (unsigned long)v);
			vmem_mtbf_set(l->vmp, v);
			l->mtbf = v != 0;
			l->mtbf_v = v;
			touched = l->vmp;
			break;
		}
		default: {
			if (o >= 0x87 && o <= 0xf7) {
				st_ext(&in);
				break;
			}
			int li;
			st_level_t *l = st_pick(&in, &li);
			fuzz_step("walk %s", l->name);
			st_check_level(l);
			touched = l->vmp;
			break;
		}
		}
		st_check_invariants(op % 16 == 15 ? NULL : touched);
	}
	/* Free everything, top down; then every import must be back. */
	st_in = NULL;
	fuzz_step("teardown");
	for (int li = ST_LEVELS - 1; li >= 0; li--)
		if (st[li].vmp != NULL)
			st_free_all(li);
	for (int li = ST_LEVELS - 1; li >= 0; li--) {
		if (st[li].vmp == NULL)
			continue;
		/* The level above is gone (its destroy gave its spans back):
		 * nothing of this one may be in use. */
		if (vmem_size(st[li].vmp, VMEM_ALLOC) != 0)
			fuzz_fail("%s: everything above destroyed and freed, "
			    "vmem_size(VMEM_ALLOC) is 0x%zx", st[li].name,
			    vmem_size(st[li].vmp, VMEM_ALLOC));
		fuzz_step("destroy %s", st[li].name);
		vmem_destroy(st[li].vmp);
		st[li].vmp = NULL;
	}
	if (st_ntable != 0)
		fuzz_fail("%u afunc pieces never given back", st_ntable);
	if (st_gmtbf != 0)
		st_gmtbf_set(0);
	fuzz_mtbf_arm(0);
	fuzz_quiesce();
	st_check_invariants(NULL);
	fuzz_step("leak check");
	fuzz_leak_check();
	fuzz_watch_end();
	return 0;
}
