/*
 * shadow.h — the fuzz targets' shadow model of one vmem arena: the spans it
 * owns (added or imported) and the live allocations (start, rounded size,
 * how they were made), kept by the harness from what the public calls
 * returned, independently of the arena's own structures.
 *
 * Theory
 * ------
 * The free segments of an arena are not stored: they are the gaps between
 * live allocations inside each span (free pieces never coalesce across a
 * span boundary), split at the next-fit rotor when the rotor stands strictly
 * inside a gap (VMEM.md: "Markers can keep two free neighbours apart").
 * A free RANGE is a maximal run of free addresses inside one span: the
 * free segments between two live allocations (or a span's ends), however
 * many markers split them.  The promise of the headers is about ranges:
 * a marker is the arena's bookkeeping, not an allocation, so it may not
 * make a request fail (issue #18: the rotor held a wholly free arena in
 * two pieces and next fit of the whole failed; the arena now joins the
 * range the rotor splits when nothing else fits: sh_check_join).  From
 * them the model answers the oracle's questions:
 *   - is there a free range satisfying (size, align, phase, nocross,
 *     minaddr, maxaddr)?  (sh_fit over every free RANGE, sh_fits)
 *   - was the segment the arena chose the one its policy must choose?
 *     (sh_check_choice, per policy: see there)
 * Everything is bounded (SH_MAX_SPANS spans, SH_MAX_ALLOCS allocations);
 * when full the harness skips the operation.  Header-only, static
 * functions, no allocation: the targets run many inputs in one process.
 */
#ifndef QUANTA_FUZZ_SHADOW_H
#define QUANTA_FUZZ_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vmem.h"

#define SH_MAX_SPANS 64
#define SH_MAX_ALLOCS 512
/* free segments: at most one per allocation plus one per span, plus the
 * rotor's split */
#define SH_MAX_SEGS (SH_MAX_ALLOCS + SH_MAX_SPANS + 2)

enum { SH_ALLOC = 1, SH_XALLOC = 2, SH_CHILD = 3 };

typedef struct sh_span {
	uintptr_t start, end; /* end > start: an arena span never wraps */
	int imported;
} sh_span_t;

typedef struct sh_alloc {
	uintptr_t start, end; /* rounded to the quantum */
	size_t req;           /* the size the caller passed */
	int how;              /* SH_ALLOC, SH_XALLOC, SH_CHILD (a child's span) */
} sh_alloc_t;

typedef struct sh_seg {
	uintptr_t start, end;
} sh_seg_t;

typedef struct shadow {
	size_t quantum;
	unsigned nspans, nallocs;
	sh_span_t span[SH_MAX_SPANS];   /* sorted by start, disjoint */
	sh_alloc_t a[SH_MAX_ALLOCS];    /* sorted by start, disjoint */
	/* The rotor: when set, it stands before every segment that starts at
	 * or above rotor, and splits a free gap that holds it strictly. */
	bool rotor_set;
	uintptr_t rotor;
} shadow_t;

/* A request, normalised like the arena does: size rounded to the quantum,
 * align 0 -> quantum, maxaddr exclusive with UINTPTR_MAX for "none". */
typedef struct sh_req {
	size_t size;
	size_t align;
	size_t phase;
	size_t nocross;
	uintptr_t minaddr, maxaddr;
	bool constrained; /* vmem_xalloc with anything beyond size */
} sh_req_t;

static inline void sh_init(shadow_t *sh, size_t quantum)
{
	memset(sh, 0, sizeof(*sh));
	sh->quantum = quantum;
}

/* ---- spans ------------------------------------------------------------ */

/* The span that overlaps [start, end), or -1. */
static inline int sh_span_overlap(const shadow_t *sh, uintptr_t start, uintptr_t end)
{
	for (unsigned i = 0; i < sh->nspans; i++)
		if (sh->span[i].start < end && start < sh->span[i].end)
			return (int)i;
	return -1;
}

/* The span holding addr, or -1. */
static inline int sh_span_find(const shadow_t *sh, uintptr_t addr)
{
	for (unsigned i = 0; i < sh->nspans; i++)
		if (sh->span[i].start <= addr && addr < sh->span[i].end)
			return (int)i;
	return -1;
}

/* Insert a disjoint span; false when full or overlapping. */
static inline bool sh_span_add(shadow_t *sh, uintptr_t start, uintptr_t end,
    int imported)
{
	if (sh->nspans >= SH_MAX_SPANS || end <= start ||
	    sh_span_overlap(sh, start, end) >= 0)
		return false;
	unsigned i = sh->nspans;
	while (i > 0 && sh->span[i - 1].start > start) {
		sh->span[i] = sh->span[i - 1];
		i--;
	}
	sh->span[i].start = start;
	sh->span[i].end = end;
	sh->span[i].imported = imported;
	sh->nspans++;
	return true;
}

static inline void sh_span_remove(shadow_t *sh, unsigned idx)
{
	memmove(&sh->span[idx], &sh->span[idx + 1],
	    (sh->nspans - idx - 1) * sizeof(sh->span[0]));
	sh->nspans--;
}

static inline size_t sh_span_total(const shadow_t *sh, bool imported_only)
{
	size_t t = 0;
	for (unsigned i = 0; i < sh->nspans; i++)
		if (!imported_only || sh->span[i].imported)
			t += sh->span[i].end - sh->span[i].start;
	return t;
}

/* Does any live allocation lie in [start, end)? */
static inline bool sh_range_busy(const shadow_t *sh, uintptr_t start, uintptr_t end)
{
	for (unsigned i = 0; i < sh->nallocs; i++)
		if (sh->a[i].start < end && start < sh->a[i].end)
			return true;
	return false;
}

/* ---- allocations -------------------------------------------------------- */

/* The index of the first allocation whose start is >= addr. */
static inline unsigned sh_alloc_lower(const shadow_t *sh, uintptr_t addr)
{
	unsigned lo = 0, hi = sh->nallocs;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (sh->a[mid].start < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline int sh_alloc_find(const shadow_t *sh, uintptr_t addr)
{
	unsigned i = sh_alloc_lower(sh, addr);
	return i < sh->nallocs && sh->a[i].start == addr ? (int)i : -1;
}

/*
 * Record [start, start + size) (size already rounded).  Returns NULL, or
 * what is wrong: not inside one span, overlapping a live allocation, not
 * on the quantum, table full.
 */
static const char *sh_alloc_add(shadow_t *sh, uintptr_t start, size_t size,
    size_t req, int how)
{
	if (sh->nallocs >= SH_MAX_ALLOCS)
		return "shadow allocation table full";
	if (size == 0 || start + size < start)
		return "empty or wrapping allocation";
	if ((start & (sh->quantum - 1)) != 0)
		return "start not aligned to the quantum";
	uintptr_t end = start + size;
	int sp = sh_span_find(sh, start);
	if (sp < 0)
		return "allocation outside every span of the arena";
	if (end > sh->span[sp].end)
		return "allocation runs past the end of its span";
	unsigned i = sh_alloc_lower(sh, start);
	if (i < sh->nallocs && sh->a[i].start < end)
		return "allocation overlaps a live allocation (above)";
	if (i > 0 && sh->a[i - 1].end > start)
		return "allocation overlaps a live allocation (below)";
	memmove(&sh->a[i + 1], &sh->a[i], (sh->nallocs - i) * sizeof(sh->a[0]));
	sh->a[i].start = start;
	sh->a[i].end = end;
	sh->a[i].req = req;
	sh->a[i].how = how;
	sh->nallocs++;
	return NULL;
}

static inline void sh_alloc_remove(shadow_t *sh, unsigned idx)
{
	memmove(&sh->a[idx], &sh->a[idx + 1],
	    (sh->nallocs - idx - 1) * sizeof(sh->a[0]));
	sh->nallocs--;
}

static inline size_t sh_live_bytes(const shadow_t *sh)
{
	size_t t = 0;
	for (unsigned i = 0; i < sh->nallocs; i++)
		t += sh->a[i].end - sh->a[i].start;
	return t;
}

/* ---- free segments ------------------------------------------------------ */

static inline void sh_push_seg(sh_seg_t *out, unsigned *n, unsigned max,
    const shadow_t *sh, uintptr_t s, uintptr_t e)
{
	if (sh->rotor_set && s < sh->rotor && sh->rotor < e) {
		if (*n < max)
			out[(*n)++] = (sh_seg_t){s, sh->rotor};
		s = sh->rotor;
	}
	if (*n < max)
		out[(*n)++] = (sh_seg_t){s, e};
}

/* The free segments in address order; returns their count. */
static inline unsigned sh_free_segs(const shadow_t *sh, sh_seg_t *out, unsigned max)
{
	unsigned n = 0, ai = 0;
	for (unsigned si = 0; si < sh->nspans; si++) {
		uintptr_t cur = sh->span[si].start, end = sh->span[si].end;
		while (ai < sh->nallocs && sh->a[ai].start < cur)
			ai++;
		while (ai < sh->nallocs && sh->a[ai].start < end) {
			if (sh->a[ai].start > cur)
				sh_push_seg(out, &n, max, sh, cur,
				    sh->a[ai].start);
			cur = sh->a[ai].end;
			ai++;
		}
		if (cur < end)
			sh_push_seg(out, &n, max, sh, cur, end);
	}
	return n;
}

/* The free ranges in address order (free segments not split at the rotor:
 * maximal free runs inside one span); returns their count. */
static inline unsigned sh_free_ranges(const shadow_t *sh, sh_seg_t *out,
    unsigned max)
{
	unsigned n = 0, ai = 0;
	for (unsigned si = 0; si < sh->nspans; si++) {
		uintptr_t cur = sh->span[si].start, end = sh->span[si].end;
		while (ai < sh->nallocs && sh->a[ai].start < cur)
			ai++;
		while (ai < sh->nallocs && sh->a[ai].start < end) {
			if (sh->a[ai].start > cur && n < max)
				out[n++] = (sh_seg_t){cur, sh->a[ai].start};
			cur = sh->a[ai].end;
			ai++;
		}
		if (cur < end && n < max)
			out[n++] = (sh_seg_t){cur, end};
	}
	return n;
}

/* The state of the free space, for requests sized from it (the targets'
 * state-aware generators): the largest free range, the total free bytes,
 * the number of ranges. */
typedef struct sh_freeinfo {
	size_t largest, total;
	unsigned nranges;
} sh_freeinfo_t;

static inline sh_freeinfo_t sh_free_info(const shadow_t *sh)
{
	sh_freeinfo_t fi = {0, 0, 0};
	unsigned ai = 0;
	for (unsigned si = 0; si < sh->nspans; si++) {
		uintptr_t cur = sh->span[si].start, end = sh->span[si].end;
		while (ai < sh->nallocs && sh->a[ai].start < cur)
			ai++;
		while (ai <= sh->nallocs) {
			uintptr_t stop = ai < sh->nallocs &&
			    sh->a[ai].start < end ? sh->a[ai].start : end;
			if (stop > cur) {
				fi.nranges++;
				fi.total += stop - cur;
				if (stop - cur > fi.largest)
					fi.largest = stop - cur;
			}
			if (stop == end)
				break;
			cur = sh->a[ai].end;
			ai++;
		}
	}
	return fi;
}

/* ---- fitting ------------------------------------------------------------ */

/*
 * The lowest address a in [start, end) with [a, a + size) inside the window,
 * a == phase (mod align), and [a, a + size) not straddling a multiple of
 * nocross.  Written from the definition: the first candidate is the lowest
 * address of the right residue; if it straddles the boundary b, every
 * candidate below b straddles it too (they end no earlier), so the next one
 * to try is the first of the residue at or above b.  When align >= nocross
 * every candidate has the same position inside its nocross block, so a
 * second straddle means none fits.
 */
static inline bool sh_fit(const sh_req_t *r, uintptr_t start, uintptr_t end,
    uintptr_t *addrp)
{
	uintptr_t lo = start > r->minaddr ? start : r->minaddr;
	uintptr_t hi = end < r->maxaddr ? end : r->maxaddr;
	if (lo >= hi)
		return false;
	uintptr_t m = (uintptr_t)r->align - 1;
	uintptr_t off = ((uintptr_t)r->phase - lo) & m;
	if (off >= hi - lo)
		return false;
	uintptr_t a = lo + off;
	for (int tries = 0; tries < 2; tries++) {
		if (hi - a < r->size)
			return false;
		if (r->nocross == 0)
			break;
		uintptr_t nm = (uintptr_t)r->nocross - 1;
		if ((a & ~nm) == ((a + r->size - 1) & ~nm))
			break;
		if (tries == 1)
			return false;
		uintptr_t b = (a | nm) + 1;
		if (b == 0 || b >= hi)
			return false;
		off = ((uintptr_t)r->phase - b) & m;
		if (off >= hi - b)
			return false;
		a = b + off;
	}
	*addrp = a;
	return true;
}

/* Does [addr, addr + size) honour every constraint of r? */
static const char *sh_req_honoured(const sh_req_t *r, uintptr_t addr)
{
	if (((addr - r->phase) & (r->align - 1)) != 0)
		return "address does not honour align/phase";
	if (addr < r->minaddr)
		return "address below minaddr";
	if (addr + r->size < addr || addr + r->size > r->maxaddr)
		return "allocation ends above maxaddr";
	if (r->nocross != 0 &&
	    ((addr ^ (addr + r->size - 1)) & ~((uintptr_t)r->nocross - 1)) != 0)
		return "allocation straddles a nocross boundary";
	return NULL;
}

static inline unsigned sh_class(size_t size)
{
	return 63u - (unsigned)__builtin_clzll((unsigned long long)size);
}

static inline bool sh_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

static sh_seg_t sh_segs_buf[SH_MAX_SEGS];

/* Does one of the first n pieces of sh_segs_buf satisfy r? */
static inline bool sh_fits_any(const sh_req_t *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uintptr_t a;
		if (sh_fit(r, sh_segs_buf[i].start, sh_segs_buf[i].end, &a))
			return true;
	}
	return false;
}

/* Is there a free range that satisfies r (under any policy: each of them
 * must succeed whenever one does, next fit wrapping around)?  Ranges, not
 * segments: a marker splitting a free range is no excuse. */
static inline bool sh_fits(const shadow_t *sh, const sh_req_t *r)
{
	return sh_fits_any(r, sh_free_ranges(sh, sh_segs_buf, SH_MAX_SEGS));
}

/* Does some free SEGMENT (the rotor splitting its range) satisfy r? */
static inline bool sh_fits_segs(const shadow_t *sh, const sh_req_t *r)
{
	return sh_fits_any(r, sh_free_segs(sh, sh_segs_buf, SH_MAX_SEGS));
}

/* The free range the rotor stands strictly inside (two free segments it
 * holds apart), if any. */
static inline bool sh_rotor_range(const shadow_t *sh, sh_seg_t *out)
{
	if (!sh->rotor_set)
		return false;
	unsigned n = sh_free_ranges(sh, sh_segs_buf, SH_MAX_SEGS);
	for (unsigned i = 0; i < n; i++)
		if (sh_segs_buf[i].start < sh->rotor &&
		    sh->rotor < sh_segs_buf[i].end) {
			*out = sh_segs_buf[i];
			return true;
		}
	return false;
}

/*
 * The rotor's join (vmem.c, rotor_join): when no free segment satisfies r
 * but the range the rotor splits does, its two pieces join, r is cut at
 * the lowest fitting address of the range (every policy), and the rotor
 * moves past that allocation, as after a next-fit one.  Call before
 * recording the allocation; when the join applies it checks addr and moves
 * the model's rotor to addr + size (*joined true).  Returns NULL or what
 * is wrong.
 */
static inline const char *sh_check_join(shadow_t *sh, const sh_req_t *r,
    uintptr_t addr, bool *joined, char *msg, size_t msglen)
{
	*joined = false;
	if (sh_fits_segs(sh, r))
		return NULL;
	sh_seg_t rg;
	uintptr_t low;
	if (!sh_rotor_range(sh, &rg) || !sh_fit(r, rg.start, rg.end, &low)) {
		snprintf(msg, msglen, "0x%lx returned, but no free range of the "
		    "model satisfies the request", (unsigned long)addr);
		return msg;
	}
	if (addr != low) {
		snprintf(msg, msglen, "no free segment fits, so the range "
		    "[0x%lx, 0x%lx) across the rotor 0x%lx must be joined and "
		    "cut at 0x%lx; the arena returned 0x%lx",
		    (unsigned long)rg.start, (unsigned long)rg.end,
		    (unsigned long)sh->rotor, (unsigned long)low,
		    (unsigned long)addr);
		return msg;
	}
	sh->rotor = addr + r->size;
	*joined = true;
	return NULL;
}

/*
 * The arena allocated addr for r under policy (VM_BESTFIT, VM_FIRSTFIT,
 * VM_NEXTFIT or 0 for instant fit); call before recording the allocation.
 * Checks, from VMEM.md (and the cut rule of vmem.c's theory):
 *   - addr lies in one free segment, which fits r, at its lowest fitting
 *     address ("An allocation is cut from the lowest fitting address of
 *     the chosen free piece");
 *   - next fit: that segment is the first fitting one from the rotor
 *     forward, wrapping around to the lowest address;
 *   - best fit: no fitting segment is smaller;
 *   - first fit ("the first that satisfies it, in free-list order", the
 *     lists walked upwards from the size's own): the segment's list is the
 *     lowest list holding a fitting segment (the order inside one list is
 *     LIFO, not visible to the model);
 *   - instant fit: the lowest non-empty list l whose every member is big
 *     enough (list of size + align - quantum when constrained, size's own
 *     for a power of two, the next one otherwise); the segment is in the
 *     lowest list >= l holding a fit, or, when none does, in the lowest
 *     list holding a fit (the constrained fallback).
 * Every policy succeeds whenever some free range fits (next fit wraps
 * around; a range the rotor splits is joined when nothing else fits,
 * sh_check_join): sh_fits() true and a NOSLEEP failure is an allocator
 * bug (unless mtbf or a tag populate failed).  Returns NULL or what is
 * wrong, written into msg.
 */
static const char *sh_check_choice(const shadow_t *sh, const sh_req_t *r,
    int policy, uintptr_t addr, char *msg, size_t msglen)
{
	unsigned n = sh_free_segs(sh, sh_segs_buf, SH_MAX_SEGS);
	const sh_seg_t *seg = sh_segs_buf;
	int chosen = -1;
	for (unsigned i = 0; i < n; i++)
		if (seg[i].start <= addr && addr < seg[i].end) {
			chosen = (int)i;
			break;
		}
	if (chosen < 0 || addr + r->size < addr ||
	    addr + r->size > seg[chosen].end) {
		snprintf(msg, msglen, "0x%lx+0x%lx is not inside one free "
		    "segment", (unsigned long)addr, (unsigned long)r->size);
		return msg;
	}
	const sh_seg_t *c = &seg[chosen];
	uintptr_t low;
	if (!sh_fit(r, c->start, c->end, &low) || low != addr) {
		snprintf(msg, msglen, "0x%lx is not the lowest fitting address "
		    "of the free segment [0x%lx, 0x%lx)", (unsigned long)addr,
		    (unsigned long)c->start, (unsigned long)c->end);
		return msg;
	}
	size_t csize = c->end - c->start;
	if (policy & VM_NEXTFIT) {
		int first = -1;
		for (int pass = 0; pass < 2 && first < 0; pass++)
			for (unsigned i = 0; i < n; i++) {
				bool after = sh->rotor_set &&
				    seg[i].start >= sh->rotor;
				if (pass == 0 && sh->rotor_set && !after)
					continue;
				if (pass == 1 && (!sh->rotor_set || after))
					continue;
				uintptr_t a;
				if (sh_fit(r, seg[i].start, seg[i].end, &a)) {
					first = (int)i;
					break;
				}
			}
		if (first != chosen) {
			snprintf(msg, msglen, "next fit took [0x%lx, 0x%lx), the "
			    "first fit from the rotor 0x%lx%s is [0x%lx, 0x%lx)",
			    (unsigned long)c->start, (unsigned long)c->end,
			    (unsigned long)sh->rotor,
			    sh->rotor_set ? "" : " (unset)",
			    first < 0 ? 0ul : (unsigned long)seg[first].start,
			    first < 0 ? 0ul : (unsigned long)seg[first].end);
			return msg;
		}
		return NULL;
	}
	/* The lowest class holding a fit, the smallest fit, and for instant
	 * fit the lowest fitting class >= l. */
	size_t need = r->size;
	if (r->constrained) {
		size_t slack = r->align - sh->quantum;
		need = need > SIZE_MAX - slack ? 0 : need + slack;
	}
	unsigned il = 64, minfitclass = 64, fitclass_ge_l = 64;
	size_t minfit = 0;
	if (need != 0) {
		unsigned i0 = sh_class(need) + (sh_pow2(need) ? 0u : 1u);
		for (unsigned i = 0; i < n; i++) {
			unsigned k = sh_class(seg[i].end - seg[i].start);
			if (k >= i0 && k < il)
				il = k;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		uintptr_t a;
		if (!sh_fit(r, seg[i].start, seg[i].end, &a))
			continue;
		size_t s = seg[i].end - seg[i].start;
		unsigned k = sh_class(s);
		if (k < minfitclass)
			minfitclass = k;
		if (minfit == 0 || s < minfit)
			minfit = s;
		if (il < 64 && k >= il && k < fitclass_ge_l)
			fitclass_ge_l = k;
	}
	unsigned cclass = sh_class(csize);
	if (policy & VM_BESTFIT) {
		if (csize != minfit) {
			snprintf(msg, msglen, "best fit took a free segment of "
			    "0x%lx, the smallest fit is 0x%lx",
			    (unsigned long)csize, (unsigned long)minfit);
			return msg;
		}
		return NULL;
	}
	unsigned want = minfitclass;
	if (!(policy & VM_FIRSTFIT) && fitclass_ge_l < 64)
		want = fitclass_ge_l;
	if (cclass != want) {
		snprintf(msg, msglen, "%s fit took a free segment [0x%lx, 0x%lx) "
		    "of list %u, expected list %u (need 0x%lx, l %u)",
		    (policy & VM_FIRSTFIT) ? "first" : "instant",
		    (unsigned long)c->start, (unsigned long)c->end, cclass,
		    want, (unsigned long)need, il);
		return msg;
	}
	return NULL;
}

/* A walk of an arena (got) against the model (want), both in address
 * order: the first difference is an oracle failure. */
static void sh_compare_walk(const char *arena, const char *what,
    const sh_seg_t *got, unsigned ngot, const sh_seg_t *want, unsigned nwant)
{
	for (unsigned i = 0; i < ngot || i < nwant; i++) {
		if (i < ngot && i < nwant && got[i].start == want[i].start &&
		    got[i].end == want[i].end)
			continue;
		fuzz_fail("%s: walk of %s has %u entries, model %u; first "
		    "difference at %u: walk [0x%lx, 0x%lx) model [0x%lx, 0x%lx)",
		    arena, what, ngot, nwant, i,
		    i < ngot ? (unsigned long)got[i].start : 0ul,
		    i < ngot ? (unsigned long)got[i].end : 0ul,
		    i < nwant ? (unsigned long)want[i].start : 0ul,
		    i < nwant ? (unsigned long)want[i].end : 0ul);
	}
}

#endif /* QUANTA_FUZZ_SHADOW_H */
