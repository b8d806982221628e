/*
 * invariants_arena.c — the checks of one arena: its list (A1-A5, and the
 * per-piece halves of F1, H1, S1, S3), its free lists (F1-F3) or free
 * trees (F1-F4, arenas ordered for best fit), its hash
 * (H1-H3), its span list (S1, S2), its counters (C1-C3) and its reserve
 * (R1, R2).  The caller holds the arena lock.
 *
 * Theory
 * ------
 * One pass over each structure, never a nested scan, so the cost is linear
 * in the arena's size.  The arena list is the ground truth: the pass over it
 * counts what every other structure must hold (free pieces per size class,
 * allocated pieces, span markers, bytes).  The other passes then compare
 * counts, and prove each member locally:
 *   - a tag is taken to be on a doubly linked list when a neighbour on that
 *     list points back at it (either neighbour, so that one broken pointer
 *     is reported once, by the code it belongs to, and not again by every
 *     check that looks through it);
 *   - a tag is in its hash bucket when the bucket's chain, walked from its
 *     head, meets it (chains average two entries: O(1) per piece).
 * Every walk is bounded by the number of tags that exist, so a cycle is a
 * reported violation, not a hang.  Where one corruption would show through
 * two checks (a missing member and a count that no longer agrees), the
 * count is compared only when no member was reported, so that a report
 * names the structure that broke and little else.
 */
#include <inttypes.h>
#include <string.h>

#include "invariants_impl.h"

typedef struct invariant_ctx {
	vmem_t *vmp;
	invariant_report_t *r;
	size_t bound;
	size_t q;
	bool list_ok;
	bool hash_ok;                 /* the table's shape can be indexed */
	size_t on_list;               /* created tags met on the arena list */
	bool spare_on_list;
	size_t nalloc, nspan, nrotor, nwalker;
	size_t span_bytes, import_bytes, alloc_bytes, free_bytes;
	size_t free_class[VMEM_FREELISTS];
	size_t free_missing[VMEM_FREELISTS];
	size_t spans_missing;
	const vmem_seg_t *prev;       /* the list pass's previous segment */
	/* The span the list pass is in. */
	const vmem_seg_t *span;
	uintptr_t cursor;             /* where the next piece must start */
	uintptr_t prev_span_end;
	size_t span_pieces, span_free;
	bool marker_pending, marker_inside;
} invariant_ctx_t;

static const char *invariant_type_name(int t)
{
	static const char *const names[] = {"spare", "allocated", "free",
	    "span", "imported span", "rotor", "walker", "head"};
	return names[t & 7];
}

size_t invariant_bound(const vmem_t *vmp, size_t created)
{
	size_t walkers = vmp->ar_nwalkers < 1024 ? vmp->ar_nwalkers : 1024;
	return created + walkers + VMEM_FREELISTS + 8;
}

/* On a doubly linked list whose links are sg_link: a neighbour points back. */
static bool invariant_linked(const vmem_seg_t *s)
{
	const vmem_seg_t *p = s->sg_link.prev, *n = s->sg_link.next;
	return (p != NULL && p->sg_link.next == s) ||
	    (n != NULL && n->sg_link.prev == s);
}

/* On an arena list: a neighbour points back. */
static bool invariant_on_arena_list(const vmem_seg_t *s)
{
	const vmem_seg_t *p = seg_prev(s), *n = s->sg_next;
	return (p != NULL && p->sg_next == s) || (n != NULL && seg_prev(n) == s);
}

static bool invariant_hash_shape_ok(const vmem_t *vmp)
{
	size_t b = vmp->ar_htab_mask + 1;
	return vmp->ar_htab != NULL && b != 0 && (b & (b - 1)) == 0 &&
	    vmp->ar_htab_shift == 64u - (vmem_highbit(b) - 1);
}

/* ---- the arena list: A1-A5, and per piece F1, H1, S1, S3 ---------------- */

static void invariant_close_span(invariant_ctx_t *c)
{
	const vmem_seg_t *sp = c->span;
	vmem_t *vmp = c->vmp;
	if (sp == NULL)
		return;
	if (c->cursor != sp->sg_end)
		invariant_add(c->r, "A2", vmp, sp, NULL,
		    "pieces tile the span only up to 0x%" PRIxPTR, c->cursor);
	if (seg_type(sp) == SEG_ISPAN && vmp->ar_source_free != NULL &&
	    c->span_pieces > 0 && c->span_free == c->span_pieces &&
	    !c->marker_inside)
		invariant_add(c->r, "S3", vmp, sp, NULL,
		    "imported span entirely free (%zu piece%s, no marker "
		    "between) and not given back", c->span_pieces,
		    c->span_pieces == 1 ? "" : "s");
	c->prev_span_end = sp->sg_end;
	c->span = NULL;
}

static void invariant_visit_span(invariant_ctx_t *c, const vmem_seg_t *s)
{
	invariant_close_span(c);
	if (s->sg_start >= s->sg_end)
		invariant_add(c->r, "A2", c->vmp, s, NULL, "empty span");
	else if (c->nspan > 0 && s->sg_start < c->prev_span_end)
		invariant_add(c->r, "A2", c->vmp, s, NULL,
		    "span not above the previous one (which ends at "
		    "0x%" PRIxPTR ")", c->prev_span_end);
	if (((s->sg_start | s->sg_end) & (c->q - 1)) != 0)
		invariant_add(c->r, "A3", c->vmp, s, NULL,
		    "span not aligned to the quantum 0x%zx", c->q);
	if (!invariant_linked(s)) {
		invariant_add(c->r, "S1", c->vmp, s, NULL,
		    "span marker not on the span list");
		c->spans_missing++;
	}
	c->nspan++;
	c->span_bytes += seg_size(s);
	if (seg_type(s) == SEG_ISPAN)
		c->import_bytes += seg_size(s);
	c->span = s;
	c->cursor = s->sg_start;
	c->span_pieces = c->span_free = 0;
	c->marker_pending = c->marker_inside = false;
}

/* H1 for one allocated piece: in the bucket of its start, exactly once. */
static void invariant_piece_hashed(invariant_ctx_t *c, const vmem_seg_t *s)
{
	vmem_t *vmp = c->vmp;
	if (!c->hash_ok)
		return;
	size_t b = vmem_hash_index(vmp, s->sg_start), seen = 0, steps = 0;
	for (const vmem_seg_t *e = vmp->ar_htab[b]; e != NULL &&
	     steps < c->bound; e = e->sg_hnext, steps++)
		seen += e == s;
	if (seen != 1)
		invariant_add(c->r, "H1", vmp, s, NULL,
		    "allocated piece found %zu times in its hash bucket %zu",
		    seen, b);
}

static void invariant_visit_free(invariant_ctx_t *c, const vmem_seg_t *s)
{
	unsigned i = vmem_freelist_index(seg_size(s));
	if (((s->sg_start | s->sg_end) & (c->q - 1)) != 0)
		invariant_add(c->r, "A3", c->vmp, s, NULL,
		    "free piece not aligned to the quantum 0x%zx", c->q);
	if (seg_type(c->prev) == SEG_FREE)
		invariant_add(c->r, "A4", c->vmp, s, NULL,
		    "free piece right after the free piece [0x%" PRIxPTR
		    ", 0x%" PRIxPTR ") with no marker between",
		    c->prev->sg_start, c->prev->sg_end);
	c->free_bytes += seg_size(s);
	c->span_free++;
	if (i >= VMEM_FREELISTS)
		return;
	c->free_class[i]++;
	/* A tree member has no link back to it: a missing one shows in the
	 * count of its tree (F1, invariant_freetrees). */
	if (!c->vmp->ar_ordered && !invariant_linked(s)) {
		invariant_add(c->r, "F1", c->vmp, s, NULL,
		    "free piece not on free list %u", i);
		c->free_missing[i]++;
	}
}

static void invariant_visit_piece(invariant_ctx_t *c, const vmem_seg_t *s)
{
	if (c->span == NULL) {
		invariant_add(c->r, "A2", c->vmp, s, NULL,
		    "piece outside every span");
	} else if (s->sg_start != c->cursor || s->sg_end <= s->sg_start ||
	    s->sg_end > c->span->sg_end) {
		invariant_add(c->r, "A2", c->vmp, s, NULL,
		    "piece does not tile its span [0x%" PRIxPTR ", 0x%" PRIxPTR
		    ") (expected a start at 0x%" PRIxPTR ")",
		    c->span->sg_start, c->span->sg_end, c->cursor);
	}
	if (c->span != NULL && s->sg_end > c->cursor)
		c->cursor = s->sg_end;
	c->span_pieces++;
	if (c->marker_pending)
		c->marker_inside = true;
	if (seg_type(s) == SEG_FREE) {
		invariant_visit_free(c, s);
		return;
	}
	if ((s->sg_start & (c->q - 1)) != 0)
		invariant_add(c->r, "A3", c->vmp, s, NULL,
		    "allocated piece does not start on the quantum 0x%zx",
		    c->q);
	c->nalloc++;
	c->alloc_bytes += seg_size(s);
	invariant_piece_hashed(c, s);
}

static void invariant_visit(invariant_ctx_t *c, const vmem_seg_t *s)
{
	switch (seg_type(s)) {
	case SEG_SPAN:
	case SEG_ISPAN:
		c->on_list++;
		invariant_visit_span(c, s);
		break;
	case SEG_ALLOC:
	case SEG_FREE:
		c->on_list++;
		invariant_visit_piece(c, s);
		break;
	case SEG_ROTOR:
		/* The arena's own is counted; a foreign one reported. */
		if (s != &c->vmp->ar_rotor)
			invariant_add(c->r, "A5", c->vmp, s, NULL,
			    "a rotor that is not the arena's own");
		else
			c->nrotor++;
		c->marker_pending = c->span != NULL;
		break;
	case SEG_WALKER:
		c->nwalker++;
		c->marker_pending = c->span != NULL;
		break;
	case SEG_SPARE:
		c->on_list++;
		c->spare_on_list = true;
		invariant_add(c->r, "R3", c->vmp, s, NULL,
		    "a spare tag is on the arena list");
		break;
	default:
		invariant_add(c->r, "A1", c->vmp, s, NULL,
		    "a list head is on the arena list");
		break;
	}
}

static void invariant_arena_list(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	const vmem_seg_t *seg0 = &vmp->ar_sentinel, *prev = seg0, *s;
	size_t steps = 0;
	c->list_ok = false;
	for (s = seg0->sg_next; s != seg0; prev = s, s = s->sg_next) {
		if (s == NULL || ++steps > c->bound) {
			invariant_add(c->r, "A1", vmp, prev, NULL, s == NULL ?
			    "next is NULL" : "the arena list does not return "
			    "to its sentinel within %zu steps", c->bound);
			return;
		}
		if (seg_prev(s) != prev)
			invariant_add(c->r, "A1", vmp, s, NULL,
			    "prev does not point at the segment before it");
		c->prev = prev;
		invariant_visit(c, s);
	}
	if (seg_prev(seg0) != prev)
		invariant_add(c->r, "A1", vmp, NULL, "sentinel",
		    "sentinel prev is not the last segment");
	invariant_close_span(c);
	c->list_ok = true;
	if (c->nrotor != 1)
		invariant_add(c->r, "A5", vmp, NULL, "rotor",
		    "the arena's rotor is on its list %zu times, not once",
		    c->nrotor);
	if (c->nwalker != vmp->ar_nwalkers)
		invariant_add(c->r, "A5", vmp, NULL, "ar_nwalkers",
		    "%zu walkers on the arena list, ar_nwalkers %zu",
		    c->nwalker, vmp->ar_nwalkers);
	size_t transient = vmp->ar_nwaiters + (vmp->ar_htab_rescaling ? 1u : 0u) +
	    vmp->ar_nstash + vmp->ar_nwalkers;
	if (*vmem_pending(vmp) != transient)
		invariant_add(c->r, "A6", vmp, NULL, "pending",
		    "its lock's slot counts %u transient states, the arena "
		    "has %zu (waiters %zu, rescaling %d, stashed %zu, "
		    "walkers %zu)", *vmem_pending(vmp), transient,
		    vmp->ar_nwaiters, (int)vmp->ar_htab_rescaling,
		    vmp->ar_nstash, vmp->ar_nwalkers);
}

/* ---- free lists and bitmap: F1-F3 ------------------------------------------- */

/* One member of free list `list`; found[class] counts the good ones. */
static void invariant_freelist_member(invariant_ctx_t *c, const vmem_seg_t *s,
    unsigned list, size_t *found)
{
	if (seg_type(s) != SEG_FREE) {
		invariant_add(c->r, "F2", c->vmp, s, NULL,
		    "a %s tag on free list %u", invariant_type_name(seg_type(s)),
		    list);
		return;
	}
	unsigned i = vmem_freelist_index(seg_size(s));
	if (i != list) {
		invariant_add(c->r, "F2", c->vmp, s, NULL,
		    "free piece on list %u, its size class is %u", list, i);
		if (i < VMEM_FREELISTS)
			found[i]++; /* misplaced, but not missing (F1) */
		return;
	}
	if (!invariant_on_arena_list(s)) {
		invariant_add(c->r, "F2", c->vmp, s, NULL,
		    "free-list member is not on the arena list");
		return;
	}
	found[i]++;
}

/* A head of this arena's chain: its index, or -1. */
static int invariant_head_index(const vmem_t *vmp, const vmem_seg_t *s)
{
	uintptr_t a = (uintptr_t)s, lo = (uintptr_t)&vmp->ar_freelist[0];
	uintptr_t hi = (uintptr_t)&vmp->ar_freelist[VMEM_FREELISTS];
	if (a < lo || a > hi || (a - lo) % sizeof(vmem_seg_t) != 0)
		return -1;
	return (int)((a - lo) / sizeof(vmem_seg_t));
}

static void invariant_freelist_end(invariant_ctx_t *c, unsigned list,
    size_t members)
{
	bool bit = (c->vmp->ar_freemap >> list) & 1;
	if (bit != (members != 0))
		invariant_add(c->r, "F3", c->vmp, NULL, "ar_freemap",
		    "bit %u is %s, free list %u has %zu members", list,
		    bit ? "set" : "clear", list, members);
}

/* ---- free trees of an ordered arena: F1-F4 ----------------------------------- */

#define INVARIANT_TREE_DEPTH 512

typedef struct invariant_tree_frame {
	const vmem_seg_t *s;
	const vmem_seg_t *lo, *hi; /* keys s must lie strictly between */
} invariant_tree_frame_t;

/*
 * Free list `list` of an ordered arena, a treap (vmem_impl.h): every member
 * a free piece of the class, on the arena list (F2), in search-tree order
 * by (size, start) and in heap order by priority (F4); a node that breaks
 * an order is reported and not descended into (so a cycle, which must
 * break one, is one report).  Depth first with a
 * stack of INVARIANT_TREE_DEPTH frames: a treap of n pieces is about 3 ln n
 * deep (40 at a million), so a deeper one is reported, as is a walk longer
 * than the bound (a cycle).  Returns the members counted.
 */
static size_t invariant_freetree(invariant_ctx_t *c, unsigned list,
    size_t *found, size_t *steps)
{
	invariant_tree_frame_t stack[INVARIANT_TREE_DEPTH];
	size_t depth = 0, members = 0;
	const vmem_seg_t *root = c->vmp->ar_freelist[list].sg_tree.left;
	if (root != NULL)
		stack[depth++] = (invariant_tree_frame_t){root, NULL, NULL};
	while (depth > 0) {
		invariant_tree_frame_t f = stack[--depth];
		if (++*steps > c->bound) {
			invariant_add(c->r, "F4", c->vmp, f.s, NULL,
			    "the free trees hold more than %zu nodes (a cycle)",
			    c->bound);
			return members;
		}
		members++;
		size_t before = c->r->count;
		invariant_freelist_member(c, f.s, list, found);
		if (c->r->count != before)
			continue; /* not a free piece: its links are not ours */
		if ((f.lo != NULL && !seg_key_less(f.lo, f.s)) ||
		    (f.hi != NULL && !seg_key_less(f.s, f.hi))) {
			invariant_add(c->r, "F4", c->vmp, f.s, NULL,
			    "free tree %u out of search order: size 0x%zx is "
			    "not between its ancestors' keys", list,
			    seg_size(f.s));
			continue;
		}
		const vmem_seg_t *kid[2] = {f.s->sg_tree.left, f.s->sg_tree.right};
		for (int k = 0; k < 2; k++) {
			if (kid[k] == NULL)
				continue;
			if (seg_priority(kid[k]) > seg_priority(f.s)) {
				invariant_add(c->r, "F4", c->vmp, kid[k], NULL,
				    "free tree %u out of heap order: a child "
				    "outranks its parent", list);
				continue;
			}
			if (depth == INVARIANT_TREE_DEPTH) {
				invariant_add(c->r, "F4", c->vmp, f.s, NULL,
				    "free tree %u deeper than %d", list,
				    INVARIANT_TREE_DEPTH);
				return members;
			}
			stack[depth++] = k == 0 ?
			    (invariant_tree_frame_t){kid[k], f.lo, f.s} :
			    (invariant_tree_frame_t){kid[k], f.s, f.hi};
		}
	}
	return members;
}

static void invariant_freetrees(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	size_t found[VMEM_FREELISTS] = {0}, steps = 0;
	bool clean[VMEM_FREELISTS];
	for (unsigned i = 0; i < VMEM_FREELISTS; i++) {
		size_t before = c->r->count;
		size_t members = invariant_freetree(c, i, found, &steps);
		if (steps > c->bound)
			return;
		clean[i] = c->r->count == before;
		if (clean[i])
			invariant_freelist_end(c, i, members);
	}
	if (vmp->ar_found != NULL && (vmp->ar_found_link == NULL ||
	    *vmp->ar_found_link != vmp->ar_found))
		invariant_add(c->r, "F4", vmp, vmp->ar_found, "ar_found",
		    "the last search's piece is not where its link points");
	/* Counts only of trees with no member reported (one report each). */
	for (unsigned i = 0; i < VMEM_FREELISTS && c->list_ok; i++)
		if (clean[i] && found[i] != c->free_class[i])
			invariant_add(c->r, "F1", vmp, NULL, "ar_freelist",
			    "free tree %u holds %zu pieces, the arena has %zu "
			    "free pieces of that class", i, found[i],
			    c->free_class[i]);
}

static void invariant_freelists(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	if (vmp->ar_ordered) {
		invariant_freetrees(c);
		return;
	}
	const vmem_seg_t *prev = &vmp->ar_freelist[0], *s;
	size_t found[VMEM_FREELISTS] = {0}, members = 0, steps = 0;
	unsigned list = 0;
	if (prev->sg_link.prev != NULL)
		invariant_add(c->r, "F2", vmp, prev, NULL,
		    "head 0 has a predecessor");
	for (s = prev->sg_link.next; s != NULL; prev = s, s = s->sg_link.next) {
		if (++steps > c->bound) {
			invariant_add(c->r, "F2", vmp, prev, NULL,
			    "the free lists do not end within %zu steps",
			    c->bound);
			return;
		}
		if (s->sg_link.prev != prev)
			invariant_add(c->r, "F2", vmp, s, NULL,
			    "free-list prev does not point at the tag before it");
		int h = invariant_head_index(vmp, s);
		if (h < 0) {
			members++;
			invariant_freelist_member(c, s, list, found);
			continue;
		}
		if ((unsigned)h != list + 1)
			invariant_add(c->r, "F2", vmp, NULL, "ar_freelist",
			    "head %u is followed by head %d", list, h);
		invariant_freelist_end(c, list, members);
		list = (unsigned)h;
		members = 0;
		if (list >= VMEM_FREELISTS)
			break;
	}
	if (list != VMEM_FREELISTS || s == NULL)
		invariant_add(c->r, "F2", vmp, NULL, "ar_freelist",
		    "the chain of free lists ends after list %u, not at head %d",
		    list, VMEM_FREELISTS);
	else if (s->sg_link.next != NULL)
		invariant_add(c->r, "F2", vmp, NULL, "ar_freelist",
		    "the last head has a successor");
	for (unsigned i = 0; i < VMEM_FREELISTS && c->list_ok; i++)
		if (c->free_missing[i] == 0 && found[i] != c->free_class[i])
			invariant_add(c->r, "F1", vmp, NULL, "ar_freelist",
			    "free list %u holds %zu pieces, the arena has %zu "
			    "free pieces of that class", i, found[i],
			    c->free_class[i]);
}

/* ---- hash: H1-H3 ------------------------------------------------------------ */

static void invariant_hash(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	const vmem_kstat_t *k = &vmp->ar_kstat;
	size_t steps = 0;
	if (!invariant_hash_shape_ok(vmp)) {
		invariant_add(c->r, "H1", vmp, NULL, "ar_htab",
		    "hash shape inconsistent: mask 0x%zx, shift %u",
		    vmp->ar_htab_mask, vmp->ar_htab_shift);
		return;
	}
	for (size_t b = 0; b <= vmp->ar_htab_mask; b++) {
		for (const vmem_seg_t *e = vmp->ar_htab[b]; e != NULL;
		     e = e->sg_hnext) {
			if (++steps > c->bound) {
				invariant_add(c->r, "H2", vmp, NULL, "ar_htab",
				    "hash chains hold more than %zu entries "
				    "(a cycle)", c->bound);
				return;
			}
			if (seg_type(e) != SEG_ALLOC)
				invariant_add(c->r, "H2", vmp, e, NULL,
				    "a %s tag in hash bucket %zu",
				    invariant_type_name(seg_type(e)), b);
			else if (!invariant_on_arena_list(e))
				invariant_add(c->r, "H2", vmp, e, NULL,
				    "hash entry in bucket %zu is not on the "
				    "arena list", b);
		}
	}
	if (k->alloc < k->free)
		return; /* C3 says so */
	uint64_t live = k->alloc - k->free;
	if (vmp->ar_htab_count != live || (c->list_ok && c->nalloc != live))
		invariant_add(c->r, "H3", vmp, NULL, "ar_htab_count",
		    "%zu hashed pieces (ar_htab_count), %zu allocated pieces on "
		    "the arena list, alloc - free = %" PRIu64,
		    vmp->ar_htab_count, c->nalloc, live);
}

/* ---- span list: S1, S2 ----------------------------------------------------- */

static void invariant_spanlist(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	const vmem_seg_t *seg0 = &vmp->ar_sentinel, *prev = seg0, *sp;
	const vmem_seg_t *last = NULL;
	size_t n = 0, steps = 0, bad = 0;
	for (sp = seg0->sg_link.next; sp != seg0; prev = sp,
	     sp = sp->sg_link.next) {
		if (sp == NULL || ++steps > c->bound) {
			invariant_add(c->r, "S1", vmp, prev, NULL,
			    "the span list does not return to the sentinel");
			return;
		}
		if (sp->sg_link.prev != prev)
			invariant_add(c->r, "S1", vmp, sp, NULL,
			    "span-list prev does not point at the tag before it");
		if (!seg_is_span(sp) || !invariant_on_arena_list(sp)) {
			invariant_add(c->r, "S1", vmp, sp, NULL, seg_is_span(sp)
			    ? "span-list member is not on the arena list"
			    : "a %s tag on the span list",
			    invariant_type_name(seg_type(sp)));
			bad++;
			continue;
		}
		if (last != NULL && sp->sg_start < last->sg_end)
			invariant_add(c->r, "S2", vmp, sp, NULL,
			    "span list out of address order: after [0x%" PRIxPTR
			    ", 0x%" PRIxPTR ")", last->sg_start, last->sg_end);
		last = sp;
		n++;
	}
	if (seg0->sg_link.prev != prev)
		invariant_add(c->r, "S1", vmp, NULL, "span list",
		    "sentinel's span-list prev is not the last span");
	if (c->list_ok && bad == 0 && c->spans_missing == 0 && n != c->nspan)
		invariant_add(c->r, "S1", vmp, NULL, "span list",
		    "%zu spans on the span list, %zu on the arena list", n,
		    c->nspan);
}

/* ---- counters: C1-C3 ------------------------------------------------------- */

static void invariant_counters(invariant_ctx_t *c)
{
	vmem_t *vmp = c->vmp;
	const vmem_kstat_t *k = &vmp->ar_kstat;
	const uint64_t u64[] = {k->alloc, k->free, k->wait, k->fail, k->lookup,
	    k->search, k->populate_fail, k->contains, k->contains_search};
	const size_t sz[] = {k->mem_inuse, k->mem_total, k->mem_import};
	bool wrapped = false;
	for (size_t i = 0; i < sizeof(u64) / sizeof(u64[0]); i++)
		wrapped |= u64[i] > (UINT64_MAX >> 1);
	for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
		wrapped |= sz[i] > (SIZE_MAX >> 1);
	if (wrapped)
		invariant_add(c->r, "C3", vmp, NULL, "kstat",
		    "a counter went below zero (wrapped)");
	if (k->alloc < k->free)
		invariant_add(c->r, "C3", vmp, NULL, "kstat.free",
		    "free %" PRIu64 " > alloc %" PRIu64, k->free, k->alloc);
	if (k->mem_inuse > k->mem_total || k->mem_import > k->mem_total)
		invariant_add(c->r, "C3", vmp, NULL, "kstat.mem_total",
		    "mem_total 0x%zx below mem_inuse 0x%zx or mem_import 0x%zx",
		    k->mem_total, k->mem_inuse, k->mem_import);
	if (!c->list_ok)
		return;
	bool c1 = k->mem_total == c->span_bytes &&
	    k->mem_import == c->import_bytes;
	if (k->mem_total != c->span_bytes)
		invariant_add(c->r, "C1", vmp, NULL, "kstat.mem_total",
		    "mem_total 0x%zx, spans add up to 0x%zx", k->mem_total,
		    c->span_bytes);
	if (k->mem_import != c->import_bytes)
		invariant_add(c->r, "C1", vmp, NULL, "kstat.mem_import",
		    "mem_import 0x%zx, imported spans add up to 0x%zx",
		    k->mem_import, c->import_bytes);
	if (k->mem_inuse != c->alloc_bytes)
		invariant_add(c->r, "C2", vmp, NULL, "kstat.mem_inuse",
		    "mem_inuse 0x%zx, allocated pieces add up to 0x%zx",
		    k->mem_inuse, c->alloc_bytes);
	else if (c1 && k->mem_total - k->mem_inuse != c->free_bytes)
		invariant_add(c->r, "C2", vmp, NULL, "vmem_size",
		    "vmem_size(VMEM_FREE) would say 0x%zx, free pieces add up "
		    "to 0x%zx", k->mem_total - k->mem_inuse, c->free_bytes);
}

/* ---- the reserve: R1, R2 --------------------------------------------------- */

void invariant_chain_walk(const vmem_seg_t *head, size_t bound,
    invariant_chain_t *out)
{
	memset(out, 0, sizeof(*out));
	out->head = head;
	for (const vmem_seg_t *s = head; s != NULL; s = s->sg_next) {
		if (out->len >= bound)
			return;
		if (seg_type(s) != SEG_SPARE) {
			/* Its sg_next belongs to another structure: stop. */
			out->bad = s;
			return;
		}
		out->len++;
		out->tail = s;
	}
	out->ended = true;
}

static void invariant_chain_check(invariant_ctx_t *c, const char *name,
    const invariant_chain_t *ch, size_t count)
{
	if (ch->bad != NULL)
		invariant_add(c->r, "R3", c->vmp, ch->bad, name,
		    "a %s tag on the %s list: it is in two places",
		    invariant_type_name(seg_type(ch->bad)), name);
	else if (!ch->ended)
		invariant_add(c->r, "R1", c->vmp, NULL, name,
		    "the %s list does not end within %zu tags", name, c->bound);
	else if (ch->len != count)
		invariant_add(c->r, "R1", c->vmp, NULL, name,
		    "count %zu, the %s list holds %zu", count, name, ch->len);
}

static void invariant_reserve(invariant_ctx_t *c, invariant_tally_t *t)
{
	vmem_t *vmp = c->vmp;
	invariant_chain_walk(vmp->ar_spares, c->bound, &t->spares);
	invariant_chain_walk(vmp->ar_stash, c->bound, &t->stash);
	invariant_chain_check(c, "spare", &t->spares, vmp->ar_nspares);
	invariant_chain_check(c, "stash", &t->stash, vmp->ar_nstash);
	/* During a populate the populator arenas live on their reserve
	 * (vmem_tags.c, rule 2); the restock at its end refills them. */
	if (!(vmp->ar_cflags & VMC_POPULATOR) || vmem_populator_thread() != 0)
		return;
	if (t->spares.len + t->stash.len < VMEM_SEGS_PER_OP)
		invariant_add(c->r, "R2", vmp, NULL, "ar_spares",
		    "populator arena holds %zu spares (+%zu stashed), below "
		    "the reserve of %d", t->spares.len, t->stash.len,
		    VMEM_SEGS_PER_OP);
}

size_t invariant_arena_full(vmem_t *vmp, invariant_report_t *r, size_t bound,
    invariant_tally_t *t)
{
	static invariant_ctx_t zero;
	invariant_ctx_t c = zero;
	size_t before = r->count;
	c.vmp = vmp;
	c.r = r;
	c.bound = bound;
	c.q = vmp->ar_quantum;
	if (c.q == 0 || (c.q & (c.q - 1)) != 0)
		c.q = 1;
	c.hash_ok = invariant_hash_shape_ok(vmp);
	invariant_arena_list(&c);
	invariant_freelists(&c);
	invariant_hash(&c);
	invariant_spanlist(&c);
	invariant_counters(&c);
	memset(t, 0, sizeof(*t));
	invariant_reserve(&c, t);
	t->on_list = c.on_list;
	t->list_ok = c.list_ok;
	t->misplaced = c.spare_on_list || t->spares.bad != NULL ||
	    t->stash.bad != NULL;
	return r->count - before;
}

void invariant_arena_tally(vmem_t *vmp, size_t bound, invariant_tally_t *t)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel, *s;
	size_t steps = 0;
	memset(t, 0, sizeof(*t));
	for (s = seg0->sg_next; s != seg0 && s != NULL && steps <= bound;
	     s = s->sg_next, steps++) {
		int ty = seg_type(s);
		t->on_list += ty != SEG_ROTOR && ty != SEG_WALKER &&
		    ty != SEG_HEAD;
		t->misplaced |= ty == SEG_SPARE;
	}
	t->list_ok = s == seg0;
	invariant_chain_walk(vmp->ar_spares, bound, &t->spares);
	invariant_chain_walk(vmp->ar_stash, bound, &t->stash);
	t->misplaced |= t->spares.bad != NULL || t->stash.bad != NULL;
}
