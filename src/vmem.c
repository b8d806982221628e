/*
 * vmem.c — the arena: segments, spans, free lists, the allocated-segment
 * hash, the allocation policies, import and give-back, walk, destroy.
 *
 * Theory
 * ------
 * An arena owns spans of an integer resource and describes every part of
 * them with a boundary tag (vmem_impl.h) kept outside the resource.  All tags
 * of an arena sit on one circular list in address order (the arena list),
 * headed by the sentinel ar_sentinel: each span marker is followed by the pieces
 * that tile its span, free or allocated.  Three more structures make the
 * operations constant time:
 *   - the free lists: free piece of size s is on list highbit(s) - 1, so
 *     every member of list i is at least 2^i.  The 65 list heads are chained
 *     into one long list (head 0, its members, head 1, ...), so a search that
 *     runs off list i goes on into list i + 1, and ar_freemap has bit i set
 *     exactly when list i has a member;
 *   - the hash of allocated pieces by start address, so that free finds its
 *     tag in one probe on average; it doubles when the load passes 1 and
 *     halves below 1/2 once b/4 frees have passed since the last rescale
 *     (hash_wanted), inline at the end of the operation that crossed the
 *     line (amortised O(1), no maintenance thread);
 *   - the span list (span markers alone, address-sorted), for contains, add
 *     and the placement of a new span in the arena list.
 *
 * Instant fit.  A request of size s, s a power of two, is satisfied by the
 * head of any non-empty list i >= log2(s); otherwise by the head of any
 * non-empty list i > floor(log2(s)).  One find-first-set on ar_freemap picks
 * the list: constant time whatever the fragmentation.  A constrained request
 * starts at the list whose every member is guaranteed to hold it once
 * aligned (size + align - quantum) and walks forward; when nothing is found
 * the search falls back to a first-fit walk from the size's own list.
 *
 * Best fit in O(log n).  Within list i sizes still range over [2^i,
 * 2^(i+1)), so finding the smallest fit by walking the list is linear.  The
 * first VM_BESTFIT request turns the arena's free lists into treaps keyed by
 * (size, start) (vmem_impl.h), for good: best fit is then a descent to the
 * smallest key of at least the size in the first non-empty list that holds
 * a fit — O(log n) expected steps for an unconstrained request, and a
 * constrained one visits pieces in size order from there until one fits.
 * The priorities are a hash of the start, so the shape is the one of a
 * random insertion order whatever the order of frees.  Instant fit takes a
 * root (still one find-first-set), but inserting and removing become
 * O(log n): an arena pays for ordered lists only once it asks for best fit,
 * and an arena that never does keeps the constant-time lists and their LIFO
 * order.  Among equal sizes the lowest address wins.
 *
 * Cutting.  An allocation is cut from the lowest fitting address of the
 * chosen free piece.  Whole piece: no new tag.  From one end: one new tag.
 * From the middle: two.  Taking the front of a piece whose remainder stays in
 * the same size class only moves its start (it keeps its place in its list).
 *
 * Freeing.  The tag is found in the hash (not found: "bad free"; another
 * size: "wrong size"), coalesced with a free successor and predecessor (free
 * neighbours on the arena list are always adjacent pieces of one span), and
 * either given back to the source (when it is a whole imported span and the
 * arena has ffunc) or put at the head of its free list.
 *
 * Markers.  The next-fit rotor and reentrant-walk walkers are tags on the
 * arena list too.  They may hold two free pieces apart; when one moves on,
 * the pieces it separated are coalesced (and a whole free imported span is
 * given back).
 *
 * Locking.  One mutex per arena guards all of the above; it is never held
 * across a call into the source (afunc/ffunc), a populate or a user walk
 * callback of a VMEM_REENTRANT walk.  Tags come from vmem_tags.c: an
 * operation that may consume tags first reserves VMEM_MINFREE of them and
 * then consumes at most VMEM_SEGS_PER_OP.
 *
 * What holds when a public function returns: every invariant of
 * shared/design/INVARIANTS.md (A, F, H, S, C, R), which the checker proves.
 */
#include <string.h>

#include "bugs.h"
#include "umem_impl.h"
#include "vmem_impl.h"

/* The fast path, inlined into its callers: no call frames between
 * vmem_alloc/vmem_free and the list and hash operations. */
#define QUANTA_HOT __attribute__((always_inline)) inline

vmem_t *vmem_internal_arena;
vmem_t *vmem_seg_arena;
static vmem_t *vmem_heap;

plat_mutex_t vmem_list_lock = PLAT_MUTEX_INITIALIZER;
vmem_t *vmem_list;

static _Atomic uint64_t vmem_mtbf_global;

/* A request, normalised: sizes rounded to the quantum, window closed. */
typedef struct vmem_req {
	size_t size;
	size_t align;
	size_t phase;
	size_t nocross;
	uintptr_t minaddr;
	uintptr_t maxaddr;   /* exclusive; UINTPTR_MAX when unlimited */
	int vmflag;
	bool constrained;    /* anything beyond size: align, phase, ... */
	const char *caller;
} vmem_req_t;

/* A span to hand back to the source once the arena lock is dropped. */
typedef struct vmem_release {
	uintptr_t addr;
	size_t size;
} vmem_release_t;

#define VMEM_RELEASE_MAX 2

typedef struct vmem_pending {
	vmem_release_t rel[VMEM_RELEASE_MAX];
	unsigned n;
} vmem_pending_t;

QUANTA_HOT static bool is_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* roundup of x to the power of two q; false on overflow. */
QUANTA_HOT static bool roundup_q(size_t x, size_t q, size_t *out)
{
	if (x > SIZE_MAX - (q - 1))
		return false;
	*out = (x + q - 1) & ~(q - 1);
	return true;
}

/* ---- arena list ------------------------------------------------------- */

static void seg_init(vmem_seg_t *s, uintptr_t start, uintptr_t end, int type)
{
	s->sg_start = start;
	s->sg_end = end;
	s->sg_next = s;
	s->sg_prevtype = (uintptr_t)s | (uintptr_t)type;
	s->sg_link.next = NULL;
	s->sg_link.prev = NULL;
}

QUANTA_HOT static void seg_link_after(vmem_seg_t *prev, vmem_seg_t *s)
{
	vmem_seg_t *next = prev->sg_next;
	s->sg_next = next;
	seg_set_prev(s, prev);
	seg_set_prev(next, s);
	prev->sg_next = s;
}

QUANTA_HOT static void seg_unlink(vmem_seg_t *s)
{
	vmem_seg_t *p = seg_prev(s), *n = s->sg_next;
	VMEM_ASSERT(p->sg_next == s && seg_prev(n) == s);
	p->sg_next = n;
	seg_set_prev(n, p);
}

/* ---- free lists --------------------------------------------------------- */

/*
 * The free trees of an ordered arena.  Insert descends while the nodes
 * outrank s, then splits the subtree found there by s's key into s's two
 * children; remove finds s by its key and merges its children into its
 * place.  Both iterative, through the link that points at the current
 * node.
 */
static void tree_insert(vmem_seg_t **root, vmem_seg_t *s)
{
	vmem_seg_t **pp = root;
	uint64_t pri = seg_priority(s);
	size_t size = seg_size(s);
	uintptr_t start = s->sg_start;
	vmem_seg_t *t;
	while ((t = *pp) != NULL && seg_priority(t) > pri)
		pp = seg_key_before(size, start, t) ? &t->sg_tree.left
						    : &t->sg_tree.right;
	vmem_seg_t **l = &s->sg_tree.left, **r = &s->sg_tree.right;
	while (t != NULL) {
		if (!seg_key_before(size, start, t)) { /* t before s */
			*l = t;
			l = &t->sg_tree.right;
			t = t->sg_tree.right;
		} else {
			*r = t;
			r = &t->sg_tree.left;
			t = t->sg_tree.left;
		}
	}
	*l = NULL;
	*r = NULL;
	*pp = s;
}

/* Put the merge of s's children where *pp points at s. */
static void tree_unlink_at(vmem_seg_t **pp, vmem_seg_t *s)
{
	VMEM_ASSERT(*pp == s);
	vmem_seg_t *a = s->sg_tree.left, *b = s->sg_tree.right;
	while (a != NULL && b != NULL) {
		if (seg_priority(a) > seg_priority(b)) {
			*pp = a;
			pp = &a->sg_tree.right;
			a = a->sg_tree.right;
		} else {
			*pp = b;
			pp = &b->sg_tree.left;
			b = b->sg_tree.left;
		}
	}
	*pp = a != NULL ? a : b;
}

static void tree_remove(vmem_seg_t **root, vmem_seg_t *s)
{
	vmem_seg_t **pp = root, *t;
	size_t size = seg_size(s);
	uintptr_t start = s->sg_start;
	while ((t = *pp) != s) {
		VMEM_ASSERT(t != NULL);
		pp = seg_key_before(size, start, t) ? &t->sg_tree.left
						    : &t->sg_tree.right;
	}
	tree_unlink_at(pp, s);
}

static void freelist_insert_ordered(vmem_t *vmp, vmem_seg_t *s, unsigned i)
{
	vmp->ar_found = NULL;
	tree_insert(&vmp->ar_freelist[i].sg_tree.left, s);
	vmp->ar_freemap |= (uint64_t)1 << i;
}

/*
 * The piece the last search found (ar_found) comes with the link that
 * points at it (ar_found_link), valid until the next change of a tree:
 * taking it then costs no second descent.
 */
static void freelist_remove_ordered(vmem_t *vmp, vmem_seg_t *s)
{
	unsigned i = vmem_freelist_index(seg_size(s));
	vmem_seg_t **root = &vmp->ar_freelist[i].sg_tree.left;
	if (vmp->ar_found == s)
		tree_unlink_at(vmp->ar_found_link, s);
	else
		tree_remove(root, s);
	vmp->ar_found = NULL;
	/* planted bug QB_FREEMAP_STALE: an emptied list keeps its freemap bit */
	if (*root == NULL && !QUANTA_BUG(QB_FREEMAP_STALE))
		vmp->ar_freemap &= ~((uint64_t)1 << i);
}

QUANTA_HOT static void freelist_insert(vmem_t *vmp, vmem_seg_t *s)
{
	unsigned i = vmem_freelist_index(seg_size(s));
	if (vmp->ar_ordered) {
		VMEM_ASSERT(seg_type(s) == SEG_FREE && i < VMEM_FREELISTS);
		freelist_insert_ordered(vmp, s, i);
		return;
	}
	vmem_seg_t *head = &vmp->ar_freelist[i];
	vmem_seg_t *first = head->sg_link.next;
	VMEM_ASSERT(seg_type(s) == SEG_FREE && i < VMEM_FREELISTS);
	s->sg_link.next = first;
	s->sg_link.prev = head;
	first->sg_link.prev = s;
	head->sg_link.next = s;
	vmp->ar_freemap |= (uint64_t)1 << i;
}

QUANTA_HOT static void freelist_remove(vmem_t *vmp, vmem_seg_t *s)
{
	if (vmp->ar_ordered) {
		VMEM_ASSERT(seg_type(s) == SEG_FREE);
		freelist_remove_ordered(vmp, s);
		return;
	}
	vmem_seg_t *p = s->sg_link.prev, *n = s->sg_link.next;
	VMEM_ASSERT(seg_type(s) == SEG_FREE && p->sg_link.next == s);
	p->sg_link.next = n;
	n->sg_link.prev = p;
	/* Both neighbours heads: p heads a list that is now empty. */
	/* planted bug QB_FREEMAP_STALE: an emptied list keeps its freemap bit */
	if (seg_type(p) == SEG_HEAD && seg_type(n) == SEG_HEAD &&
	    !QUANTA_BUG(QB_FREEMAP_STALE))
		vmp->ar_freemap &= ~((uint64_t)1 << (p - vmp->ar_freelist));
}

/* ---- allocated-segment hash ------------------------------------------- */

QUANTA_HOT static void hash_insert(vmem_t *vmp, vmem_seg_t *s)
{
	vmem_seg_t **b = &vmp->ar_htab[vmem_hash_index(vmp, s->sg_start)];
	VMEM_ASSERT(seg_type(s) == SEG_ALLOC);
	s->sg_hnext = *b;
	*b = s;
	vmp->ar_htab_count++;
	vmp->ar_kstat.alloc++;
	vmp->ar_kstat.mem_inuse += seg_size(s);
}

/* Remove and return the allocated piece starting at addr, or NULL. */
QUANTA_HOT static vmem_seg_t *hash_remove(vmem_t *vmp, uintptr_t addr)
{
	vmem_seg_t **pp = &vmp->ar_htab[vmem_hash_index(vmp, addr)];
	vmem_seg_t *s;
	uint64_t steps = 0;
	while ((s = *pp) != NULL && s->sg_start != addr) {
		pp = &s->sg_hnext;
		steps++;
	}
	vmp->ar_kstat.lookup += steps;
	if (s == NULL)
		return NULL;
	*pp = s->sg_hnext;
	VMEM_ASSERT(seg_type(s) == SEG_ALLOC && vmp->ar_htab_count > 0);
	vmp->ar_htab_count--;
	vmp->ar_htab_frees++;
	vmp->ar_kstat.free++;
	vmp->ar_kstat.mem_inuse -= seg_size(s);
	return s;
}

static size_t hash_buckets(const vmem_t *vmp)
{
	return vmp->ar_htab_mask + 1;
}

/*
 * The bucket count the current load asks for, or 0 when it is fine.  The
 * table doubles when the load passes 1 (chains of about one entry: a free
 * reads one cold tag, not two) and halves when it falls below 1/2 — but only
 * after b/4 frees since the last rescale, so that a count hovering at a
 * boundary cannot rehash on every operation: every O(n) rescale is paid for
 * by Omega(n) operations before it.
 */
QUANTA_HOT static size_t hash_wanted(const vmem_t *vmp)
{
	size_t b = hash_buckets(vmp), n = vmp->ar_htab_count;
	if (n > b)
		return 2 * b;
	if (b > VMEM_HASH_INITIAL && n < b / 2 &&
	    vmp->ar_htab_frees >= b / 4)
		return b / 2;
	return 0;
}

static void hash_install(vmem_t *vmp, vmem_seg_t **table, size_t buckets)
{
	vmem_seg_t **old = vmp->ar_htab;
	size_t oldb = hash_buckets(vmp);
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp) && is_pow2(buckets));
	vmp->ar_htab = table;
	vmp->ar_htab_frees = 0;
	vmp->ar_htab_mask = buckets - 1;
	vmp->ar_htab_shift = 64u - (vmem_highbit(buckets) - 1);
	memset(table, 0, buckets * sizeof(*table));
	for (size_t i = 0; i < oldb; i++) {
		vmem_seg_t *s = old[i], *next;
		for (; s != NULL; s = next) {
			next = s->sg_hnext;
			vmem_seg_t **b = &table[vmem_hash_index(vmp, s->sg_start)];
			s->sg_hnext = *b;
			*b = s;
		}
	}
}

static size_t hash_table_bytes(size_t buckets)
{
	size_t bytes = buckets * sizeof(vmem_seg_t *);
	return (bytes + 4095) & ~(size_t)4095;
}

/*
 * Rescale the hash to the size its load asks for.  The new table is mapped
 * with the arena unlocked; if that fails the arena keeps its table, which is
 * only slower.  A populate in progress on this thread never rescales: the
 * populator arenas must not take detours while they live on their reserve.
 */
static void hash_rescale(vmem_t *vmp)
{
	if (vmem_populating_self())
		return;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	size_t want = hash_wanted(vmp);
	if (want == 0 || vmp->ar_htab_rescaling) {
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		return;
	}
	vmp->ar_htab_rescaling = true;
	*vmem_pending(vmp) += 1;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	VMEM_ASSERT(is_pow2(want) && want >= VMEM_HASH_INITIAL);

	vmem_seg_t **table = plat_pages_map(hash_table_bytes(want));

	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	/* Only this thread rescales meanwhile (or a fork's child forgot it). */
	VMEM_ASSERT(vmp->ar_htab_rescaling);
	vmp->ar_htab_rescaling = false;
	*vmem_pending(vmp) -= 1;
	vmem_seg_t **old = vmp->ar_htab;
	size_t oldb = hash_buckets(vmp);
	if (table != NULL)
		hash_install(vmp, table, want);
	VMEM_ASSERT(table == NULL || hash_buckets(vmp) == want);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (table != NULL && old != vmp->ar_htab_embedded)
		plat_pages_unmap(old, hash_table_bytes(oldb));
}

/* ---- spans -------------------------------------------------------------- */

/*
 * The span after which a span starting at addr belongs on the sorted span
 * list (ar_sentinel when it would be the lowest).  The highest and the lowest
 * span are looked at first, so that growing at either end is O(1).
 */
static vmem_seg_t *span_find_prev(vmem_t *vmp, uintptr_t addr)
{
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	vmem_seg_t *sp = seg0->sg_link.prev;
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp));
	if (sp == seg0 || sp->sg_start < addr)
		return sp;
	if (seg0->sg_link.next->sg_start > addr)
		return seg0;
	while (sp != seg0 && sp->sg_start >= addr)
		sp = sp->sg_link.prev;
	VMEM_ASSERT(sp == seg0 || (seg_is_span(sp) && sp->sg_start < addr));
	return sp;
}

static void span_overlap_check(vmem_t *vmp, vmem_seg_t *kprev, uintptr_t addr,
    uintptr_t end, const char *caller)
{
	vmem_seg_t *seg0 = &vmp->ar_sentinel, *knext = kprev->sg_link.next;
	vmem_seg_t *hit = NULL;
	if (kprev != seg0 && kprev->sg_end > addr)
		hit = kprev;
	else if (knext != seg0 && knext->sg_start < end)
		hit = knext;
	if (hit != NULL)
		vmem_panic("%s(arena \"%s\", addr 0x%lx, size 0x%lx): overlaps "
		    "the span [0x%lx, 0x%lx) the arena already has", caller,
		    vmp->ar_name, (unsigned long)addr,
		    (unsigned long)(end - addr), (unsigned long)hit->sg_start,
		    (unsigned long)hit->sg_end);
}

/*
 * Put a span [addr, addr + size) of the given type and its one free piece on
 * the arena.  Consumes two tags.  Returns the free piece.
 */
static vmem_seg_t *span_create(vmem_t *vmp, uintptr_t addr, size_t size,
    int type, const char *caller)
{
	uintptr_t end = addr + size;
	VMEM_ASSERT(addr < end && (type == SEG_SPAN || type == SEG_ISPAN));
	vmem_seg_t *kprev = span_find_prev(vmp, addr);
	vmem_seg_t *knext = kprev->sg_link.next;
	span_overlap_check(vmp, kprev, addr, end, caller);

	vmem_seg_t *sp = vmem_seg_get(vmp);
	seg_init(sp, addr, end, type);
	sp->sg_link.next = knext;
	sp->sg_link.prev = kprev;
	kprev->sg_link.next = sp;
	knext->sg_link.prev = sp;
	seg_link_after(seg_prev(knext), sp);

	vmem_seg_t *f = vmem_seg_get(vmp);
	seg_init(f, addr, end, SEG_FREE);
	seg_link_after(sp, f);
	freelist_insert(vmp, f);

	vmp->ar_kstat.mem_total += size;
	if (type == SEG_ISPAN)
		vmp->ar_kstat.mem_import += size;
	VMEM_ASSERT(seg_prev(f) == sp && f->sg_start == addr && f->sg_end == end);
	VMEM_ASSERT(vmp->ar_kstat.mem_import <= vmp->ar_kstat.mem_total);
	return f;
}

/* Take a span marker off both lists and return its tag (its pieces gone). */
static void span_destroy(vmem_t *vmp, vmem_seg_t *sp)
{
	VMEM_ASSERT(seg_is_span(sp) && ARENA_LOCK_HELD(vmp));
	VMEM_ASSERT(vmp->ar_kstat.mem_total >= seg_size(sp));
	sp->sg_link.prev->sg_link.next = sp->sg_link.next;
	sp->sg_link.next->sg_link.prev = sp->sg_link.prev;
	seg_unlink(sp);
	vmp->ar_kstat.mem_total -= seg_size(sp);
	if (seg_type(sp) == SEG_ISPAN)
		vmp->ar_kstat.mem_import -= seg_size(sp);
	vmem_seg_put(vmp, sp);
}

/* Give a whole imported span back if the free piece s is all of it. */
QUANTA_HOT static bool span_release_if_whole(vmem_t *vmp, vmem_seg_t *s,
    vmem_pending_t *pend)
{
	vmem_seg_t *p = seg_prev(s);
	if (seg_type(p) != SEG_ISPAN || p->sg_start != s->sg_start ||
	    p->sg_end != s->sg_end || vmp->ar_source_free == NULL ||
	    pend == NULL || pend->n >= VMEM_RELEASE_MAX)
		return false;
	pend->rel[pend->n].addr = p->sg_start;
	pend->rel[pend->n].size = seg_size(p);
	pend->n++;
	seg_unlink(s);
	vmem_seg_put(vmp, s);
	span_destroy(vmp, p);
	return true;
}

/*
 * s is a free piece on the arena list and on no free list.  Coalesce it with
 * free neighbours, then give a whole imported span back (recorded in pend,
 * carried out by the caller after unlocking) or put the result at the head
 * of its free list.  LIFO on purpose: the piece just freed is the one in the
 * cache, and instant fit hands out list heads (measured: keeping a merged
 * neighbour's old place instead makes random frees at 1e5 live 4x slower).
 * Returns the resulting free piece, or NULL if it was released.
 */
QUANTA_HOT static vmem_seg_t *seg_merge_free(vmem_t *vmp, vmem_seg_t *s,
    vmem_pending_t *pend)
{
	vmem_seg_t *n = s->sg_next, *p = seg_prev(s);
	VMEM_ASSERT(seg_type(s) == SEG_FREE);
	if (seg_type(n) == SEG_FREE) {
		VMEM_ASSERT(n->sg_start == s->sg_end);
		freelist_remove(vmp, n);
		s->sg_end = n->sg_end;
		seg_unlink(n);
		vmem_seg_put(vmp, n);
	}
	if (seg_type(p) == SEG_FREE) {
		VMEM_ASSERT(p->sg_end == s->sg_start);
		freelist_remove(vmp, p);
		p->sg_end = s->sg_end;
		seg_unlink(s);
		vmem_seg_put(vmp, s);
		s = p;
	}
	if (span_release_if_whole(vmp, s, pend))
		return NULL;
	freelist_insert(vmp, s);
	return s;
}

/* Give back what seg_merge_free set aside; the arena lock is not held. */
static void vmem_release_pending(vmem_t *vmp, vmem_pending_t *pend)
{
	/* A source call: no arena lock (L1), at most what one operation set
	 * aside. */
	VMEM_ASSERT(ARENA_LOCKS_NONE() && pend->n <= VMEM_RELEASE_MAX);
	VMEM_ASSERT(pend->n == 0 || vmp->ar_source_free != NULL);
	for (unsigned i = 0; i < pend->n; i++) {
		void *addr = (void *)pend->rel[i].addr;
		/* planted bug QB_SPAN_TWICE: each span is given back twice */
		for (int k = QUANTA_BUG(QB_SPAN_TWICE) ? 2 : 1; k > 0; k--) {
			if (vmp->ar_source_free == vmem_free &&
			    vmp->ar_source_alloc == vmem_alloc)
				vmem_xfree(vmp->ar_source, addr,
				    pend->rel[i].size);
			else
				vmp->ar_source_free(vmp->ar_source, addr,
				    pend->rel[i].size);
		}
	}
	pend->n = 0;
}

/*
 * A marker has just left the place before the free piece n: coalesce n
 * with a free predecessor the marker held apart, or give n back if it is
 * now seen to be a whole imported span (the marker stood between the span
 * marker and n, and hid that).
 */
static void marker_left(vmem_t *vmp, vmem_seg_t *n, vmem_pending_t *pend)
{
	if (seg_type(n) != SEG_FREE)
		return;
	vmem_seg_t *p = seg_prev(n);
	if (seg_type(p) != SEG_FREE && seg_type(p) != SEG_ISPAN)
		return;
	freelist_remove(vmp, n);
	(void)seg_merge_free(vmp, n, pend);
}

/* Take a marker off the arena list, coalescing the pieces it held apart. */
static void marker_unlink(vmem_t *vmp, vmem_seg_t *m, vmem_pending_t *pend)
{
	vmem_seg_t *n = m->sg_next;
	VMEM_ASSERT(seg_is_marker(m));
	seg_unlink(m);
	marker_left(vmp, n, pend);
}

/* ---- fitting ------------------------------------------------------------ */

/* The lowest address in [start, end) that satisfies r, if there is one. */
QUANTA_HOT static bool seg_fit(const vmem_req_t *r, uintptr_t start, uintptr_t end,
    uintptr_t *addrp)
{
	uintptr_t maxaddr = r->maxaddr;
	/* planted bug QB_WINDOW_END_PAST: the window ends an align late */
	if (QUANTA_BUG(QB_WINDOW_END_PAST) && maxaddr <= UINTPTR_MAX - r->align)
		maxaddr += r->align;
	/* planted bug QB_PHASE_IGNORED: every start on the boundary itself */
	uintptr_t phase = QUANTA_BUG(QB_PHASE_IGNORED) ? 0 : r->phase;
	uintptr_t lo = start > r->minaddr ? start : r->minaddr;
	uintptr_t hi = end < maxaddr ? end : maxaddr;
	if (lo >= hi || hi - lo < r->size)
		return false;
	uintptr_t mask = r->align - 1;
	uintptr_t a = lo + ((phase - lo) & mask);
	if (a < lo || a > hi || hi - a < r->size)
		return false;
	if (r->nocross != 0) {
		uintptr_t nmask = ~(uintptr_t)(r->nocross - 1);
		/* planted bug QB_NOCROSS_OFF_BY_ONE: one byte may cross */
		uintptr_t last = a + r->size - 1 -
		    (QUANTA_BUG(QB_NOCROSS_OFF_BY_ONE) && r->size > 1);
		if (((a ^ last) & nmask) != 0) {
			uintptr_t b = (a & nmask) + r->nocross;
			if (b < a)
				return false;
			a = b + ((phase - b) & mask);
			if (a < b || a > hi || hi - a < r->size)
				return false;
			VMEM_ASSERT(((a ^ (a + r->size - 1)) & nmask) == 0);
		}
	}
	*addrp = a;
	return true;
}

/* The lowest list index >= i with a member, or VMEM_FREELISTS. */
QUANTA_HOT static unsigned freemap_first(const vmem_t *vmp, unsigned i)
{
	if (i >= VMEM_FREELISTS)
		return VMEM_FREELISTS;
	uint64_t map = vmp->ar_freemap & (~(uint64_t)0 << i);
	return map == 0 ? VMEM_FREELISTS : (unsigned)__builtin_ctzll(map);
}

/*
 * In a free tree: the piece of smallest key after prev, or, with prev
 * NULL, the piece of smallest key of size at least min.  One descent.
 */
static vmem_seg_t *tree_next(vmem_seg_t **root, const vmem_seg_t *prev,
    size_t min, uint64_t *steps, vmem_seg_t ***linkp)
{
	vmem_seg_t *next = NULL, *t;
	for (vmem_seg_t **pp = root; (t = *pp) != NULL;) {
		(*steps)++;
		if (prev != NULL ? seg_key_less(prev, t) : seg_size(t) >= min) {
			next = t;
			*linkp = pp;
			pp = &t->sg_tree.left;
		} else {
			pp = &t->sg_tree.right;
		}
	}
	return next;
}

/*
 * search_lists of an ordered arena: from list i on, the first list holding
 * a fit, and in it the fitting piece of smallest key, which is the best fit
 * of all (every member of a higher list is larger).  Unconstrained, the
 * first candidate fits: one descent.  Constrained, the candidates are
 * visited in key order, one descent each.
 */
static vmem_seg_t *search_trees(vmem_t *vmp, const vmem_req_t *r, unsigned i,
    bool best, uintptr_t *addrp)
{
	vmem_seg_t *found = NULL;
	uint64_t steps = 0;
	for (i = freemap_first(vmp, i); i < VMEM_FREELISTS && found == NULL;
	     i = freemap_first(vmp, i + 1)) {
		vmem_seg_t **root = &vmp->ar_freelist[i].sg_tree.left, **link;
		for (vmem_seg_t *t = tree_next(root, NULL, r->size, &steps,
			 &link);
		     t != NULL; t = tree_next(root, t, r->size, &steps, &link)) {
			if (seg_fit(r, t->sg_start, t->sg_end, addrp)) {
				found = t;
				vmp->ar_found = t;
				vmp->ar_found_link = link;
				break;
			}
		}
		/* planted bug QB_BESTFIT_SHORT: best fit stops after the
		 * first list it searched, fit or not */
		if (best && QUANTA_BUG(QB_BESTFIT_SHORT))
			break;
	}
	vmp->ar_kstat.search += steps;
	return found;
}

/*
 * Turn the free lists of vmp into free trees, for good (the first best-fit
 * request does).  The chain is read as it is taken apart: a head comes
 * before its members, so each head is emptied before its members go in.
 */
static void freelists_order(vmem_t *vmp)
{
	vmem_seg_t *end = &vmp->ar_freelist[VMEM_FREELISTS];
	vmem_seg_t *s = &vmp->ar_freelist[0];
	vmp->ar_ordered = true;
	while (s != NULL) {
		vmem_seg_t *next = s->sg_link.next;
		if (seg_type(s) == SEG_HEAD) {
			s->sg_tree.left = NULL;
			s->sg_tree.right = NULL;
		} else {
			freelist_insert_ordered(vmp, s,
			    vmem_freelist_index(seg_size(s)));
		}
		s = s == end ? NULL : next;
	}
	VMEM_ASSERT(vmp->ar_ordered && vmp->ar_found == NULL);
}

/*
 * Walk the free lists from list i on (they chain into each other).  First
 * fit takes the first piece that fits; best fit finishes the first list
 * holding a fit and takes its smallest fitting piece — every member of a
 * higher list is larger, so that piece is the smallest fit of all.
 */
static vmem_seg_t *search_lists(vmem_t *vmp, const vmem_req_t *r, unsigned i,
    bool best, uintptr_t *addrp)
{
	if (vmp->ar_ordered)
		return search_trees(vmp, r, i, best, addrp);
	vmem_seg_t *end = &vmp->ar_freelist[VMEM_FREELISTS];
	vmem_seg_t *found = NULL;
	uint64_t steps = 0;
	i = freemap_first(vmp, i);
	if (i == VMEM_FREELISTS)
		return NULL;
	for (vmem_seg_t *s = vmp->ar_freelist[i].sg_link.next; s != end;
	     s = s->sg_link.next) {
		uintptr_t a;
		if (seg_type(s) == SEG_HEAD) {
			/* planted bug QB_BESTFIT_SHORT: best fit stops after
			 * the first list it searched, fit or not */
			if (found != NULL || (best && QUANTA_BUG(QB_BESTFIT_SHORT)))
				break;
			continue;
		}
		steps++;
		if (!seg_fit(r, s->sg_start, s->sg_end, &a))
			continue;
		if (found == NULL || seg_size(s) < seg_size(found)) {
			found = s;
			*addrp = a;
		}
		if (!best)
			break;
	}
	vmp->ar_kstat.search += steps;
	VMEM_ASSERT(found == NULL || seg_type(found) == SEG_FREE);
	return found;
}

QUANTA_HOT static vmem_seg_t *instant_fit(vmem_t *vmp, const vmem_req_t *r,
    uintptr_t *addrp)
{
	size_t need = r->size;
	if (r->constrained) {
		size_t slack = r->align - vmp->ar_quantum;
		need = need > SIZE_MAX - slack ? 0 : need + slack;
	}
	if (need != 0) {
		unsigned i = vmem_freelist_index(need) + (is_pow2(need) ? 0 : 1);
		unsigned l = freemap_first(vmp, i);
		if (l < VMEM_FREELISTS) {
			vmem_seg_t *s = vmp->ar_freelist[l].sg_link.next;
			if (!r->constrained) {
				*addrp = s->sg_start;
				return s;
			}
			s = search_lists(vmp, r, l, false, addrp);
			if (s != NULL)
				return s;
		}
	}
	return search_lists(vmp, r, vmem_freelist_index(r->size), false, addrp);
}

static vmem_seg_t *next_fit(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp)
{
	vmem_seg_t *rotor = &vmp->ar_rotor;
	uint64_t steps = 0;
	vmem_seg_t *s;
	for (s = rotor->sg_next; s != rotor; s = s->sg_next) {
		steps++;
		if (seg_type(s) == SEG_FREE &&
		    seg_fit(r, s->sg_start, s->sg_end, addrp))
			break;
	}
	vmp->ar_kstat.search += steps;
	VMEM_ASSERT(s == rotor || seg_type(s) == SEG_FREE);
	return s == rotor ? NULL : s;
}

/*
 * The rotor stands between two free pieces when a piece it passed is freed
 * next to free space: the two are one free range, which no policy sees
 * (each searches pieces).  So when nothing else fits and the range across
 * the rotor does, the two pieces join and the rotor moves past the
 * allocation cut from them at once (so nothing is given back here), as
 * after a next-fit allocation.  Only the failure path pays for this.
 * (Found by a user: in a 999-quantum arena, 998 allocated by next fit and
 * freed, 999 by any
 * policy returned NULL; a walker of a reentrant walk may still hold two
 * pieces apart while it lasts — docs/reference.md, vmem_walk.)
 */
static vmem_seg_t *rotor_join(vmem_t *vmp, const vmem_req_t *r,
    uintptr_t *addrp)
{
	vmem_seg_t *rotor = &vmp->ar_rotor, *p = seg_prev(rotor);
	vmem_seg_t *n = rotor->sg_next;
	/* planted bug QB_NEXTFIT_SPLIT: the range across the rotor is not seen */
	if (QUANTA_BUG(QB_NEXTFIT_SPLIT) || seg_type(p) != SEG_FREE ||
	    seg_type(n) != SEG_FREE || !seg_fit(r, p->sg_start, n->sg_end, addrp))
		return NULL;
	uintptr_t end = n->sg_end;
	VMEM_ASSERT(p->sg_end == n->sg_start);
	seg_unlink(rotor);
	freelist_remove(vmp, p);
	vmem_seg_t *j = seg_merge_free(vmp, p, NULL);
	VMEM_ASSERT(j == p && p->sg_end == end);
	(void)end;
	/* The allocation cut from j moves the rotor past it, as a next-fit
	 * one does (alloc_take); until then it stands after j.  Never before
	 * j: between a span marker and its first piece, it hid a span freed
	 * whole from its give-back (found by the stacked fuzz target). */
	seg_link_after(j, rotor);
	vmp->ar_rotor_joined = true;
	return j;
}

QUANTA_HOT static vmem_seg_t *vmem_find_policy(vmem_t *vmp, const vmem_req_t *r,
    uintptr_t *addrp)
{
	if (r->vmflag & VM_NEXTFIT)
		return next_fit(vmp, r, addrp);
	if (r->vmflag & VM_BESTFIT) {
		if (!vmp->ar_ordered)
			freelists_order(vmp);
		return search_lists(vmp, r, vmem_freelist_index(r->size), true,
		    addrp);
	}
	if (r->vmflag & VM_FIRSTFIT)
		return search_lists(vmp, r, vmem_freelist_index(r->size), false,
		    addrp);
	return instant_fit(vmp, r, addrp);
}

QUANTA_HOT static vmem_seg_t *vmem_find(vmem_t *vmp, const vmem_req_t *r, uintptr_t *addrp)
{
	vmem_seg_t *s = vmem_find_policy(vmp, r, addrp);
	return s != NULL ? s : rotor_join(vmp, r, addrp);
}

/*
 * Allocate [addr, addr + size) from the free piece vsp.  Consumes at most
 * two tags.  Returns the allocated piece, hashed.
 */
QUANTA_HOT static vmem_seg_t *seg_cut(vmem_t *vmp, vmem_seg_t *vsp, uintptr_t addr,
    size_t size)
{
	uintptr_t start = vsp->sg_start, end = vsp->sg_end, aend = addr + size;
	unsigned oldi = vmem_freelist_index(end - start);
	VMEM_ASSERT(seg_type(vsp) == SEG_FREE);
	VMEM_ASSERT(start <= addr && aend <= end && addr < aend);
	if (addr == start && aend == end) {
		freelist_remove(vmp, vsp);
		seg_set_type(vsp, SEG_ALLOC);
		hash_insert(vmp, vsp);
		return vsp;
	}
	/* In a free tree vsp's place depends on its start and size, which
	 * change: it leaves the tree first and goes back where it belongs. */
	if (vmp->ar_ordered)
		freelist_remove(vmp, vsp);
	vmem_seg_t *a = vmem_seg_get(vmp);
	seg_init(a, addr, aend, SEG_ALLOC);
	if (addr == start) {
		seg_link_after(seg_prev(vsp), a);
		vsp->sg_start = aend;
	} else {
		if (aend != end) {
			vmem_seg_t *t = vmem_seg_get(vmp);
			seg_init(t, aend, end, SEG_FREE);
			seg_link_after(vsp, t);
			freelist_insert(vmp, t);
		}
		seg_link_after(vsp, a);
		vsp->sg_end = addr;
	}
	if (vmp->ar_ordered)
		freelist_insert(vmp, vsp);
	else if (vmem_freelist_index(seg_size(vsp)) != oldi) {
		freelist_remove(vmp, vsp);
		freelist_insert(vmp, vsp);
	}
	hash_insert(vmp, a);
	return a;
}

/* ---- import --------------------------------------------------------------- */

static bool vmem_can_import(const vmem_t *vmp, const vmem_req_t *r)
{
	return (vmp->ar_source_alloc != NULL || vmp->ar_grow != NULL) &&
	    r->nocross == 0 && r->minaddr == 0 && r->maxaddr == UINTPTR_MAX;
}

/*
 * Set aside n spares for an operation that drops the lock around a source
 * call, so that no other thread can take them meanwhile.  The stash stays on
 * the arena (ar_stash) so that every tag remains accounted for (R3).
 *
 * Each stash is also recorded on the calling thread (a node on its stack,
 * linked from a thread-local head), for the child of a fork: the stash of
 * an arena mixes the tags of every thread inside a source call, and the
 * child gives back those of the threads it lacks and keeps exactly those of
 * the forking thread (vmem_child_fixup_arena).  Two thread-local stores per
 * import; nothing on the paths that do not import.
 */
typedef struct stash_rec {
	const vmem_t *vmp;
	struct stash_rec *next;
} stash_rec_t;

/* The calling thread's list: a word of its platform area. */
#define stash_self (*(stash_rec_t **)&plat_thread_area()->ptr[PLAT_PTR_STASH])

static void spares_stash(vmem_t *vmp, unsigned n, stash_rec_t *rec)
{
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp) && vmp->ar_nspares >= n);
	for (unsigned i = 0; i < n; i++) {
		vmem_seg_t *s = vmem_seg_get(vmp);
		s->sg_next = vmp->ar_stash;
		vmp->ar_stash = s;
		vmp->ar_nstash++;
	}
	*vmem_pending(vmp) += n;
	rec->vmp = vmp;
	rec->next = stash_self;
	stash_self = rec;
	VMEM_ASSERT(vmp->ar_nstash >= n);
}

static void spares_unstash(vmem_t *vmp, unsigned n, stash_rec_t *rec)
{
	VMEM_ASSERT(stash_self == rec && rec->vmp == vmp);
	stash_self = rec->next;
	for (unsigned i = 0; i < n; i++) {
		vmem_seg_t *s = vmp->ar_stash;
		VMEM_ASSERT(s != NULL && vmp->ar_nstash > 0);
		vmp->ar_stash = s->sg_next;
		vmp->ar_nstash--;
		vmem_seg_put(vmp, s);
	}
	*vmem_pending(vmp) -= n;
}

/* The tags the calling thread has stashed on vmp (its source calls in
 * progress on that arena, nested through sources, times the stash each). */
static size_t stash_held_by_self(const vmem_t *vmp)
{
	size_t n = 0;
	for (const stash_rec_t *r = stash_self; r != NULL; r = r->next)
		n += r->vmp == vmp ? VMEM_SEGS_PER_OP : 0;
	return n;
}

/*
 * Nothing fits: bring a span in from the source (an imported span, given
 * back when it is entirely free again).  Called and returns with the
 * lock held; drops it around the source call, having stashed the tags the
 * worst case consumes so that no other thread can take them meanwhile.
 * Returns the new free piece, or NULL.
 */
static bool inject_spare_begin(int vmflag);

static vmem_seg_t *vmem_import(vmem_t *vmp, const vmem_req_t *r,
    bool with_slack)
{
	vmem_t *src = vmp->ar_source;
	size_t srcq = src != NULL ? src->ar_quantum : vmp->ar_quantum;
	size_t ialign = r->align > vmp->ar_quantum ? r->align : vmp->ar_quantum;
	size_t q = ialign > srcq ? ialign : srcq;
	size_t asize;
	bool xsrc = vmp->ar_source_alloc == vmem_alloc && src != NULL;
	/* with_slack: a source other than vmem_alloc promises only this
	 * arena's quantum, and the span it returned for the exact size was
	 * not aligned: the second try carries the slack in which an aligned
	 * start must lie (found by the simulator: without it a VM_SLEEP
	 * request aligned above the quantum imported unusable spans for
	 * ever). */
	size_t slack = with_slack && !xsrc && ialign > vmp->ar_quantum ?
	    ialign - vmp->ar_quantum : 0;
	if (r->size > SIZE_MAX - r->phase ||
	    r->size + r->phase > SIZE_MAX - slack ||
	    !roundup_q(r->size + r->phase + slack, q, &asize))
		return NULL;
	int iflag = r->vmflag & VM_NOSLEEP;
	stash_rec_t rec;
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp) && vmp->ar_nspares >= VMEM_SEGS_PER_OP);
	spares_stash(vmp, VMEM_SEGS_PER_OP, &rec);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	VMEM_ASSERT(ARENA_LOCKS_NONE());

	void *addr;
	bool spare = inject_spare_begin(r->vmflag);
	if (xsrc)
		addr = vmem_xalloc(src, asize, ialign > srcq ? ialign : 0, 0, 0,
		    NULL, NULL, iflag);
	else
		addr = vmp->ar_source_alloc(src, asize, iflag);
	if (spare)
		vmem_inject_spare_exit();

	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	/* Whatever ran meanwhile, this call's stash is still on the arena:
	 * only a fork's child takes stashes, and it keeps its own thread's. */
	VMEM_ASSERT(vmp->ar_nstash >= VMEM_SEGS_PER_OP && stash_self == &rec);
	spares_unstash(vmp, VMEM_SEGS_PER_OP, &rec);
	if (addr == NULL)
		return NULL;
	if (((uintptr_t)addr & (vmp->ar_quantum - 1)) != 0)
		vmem_panic("%s(arena \"%s\"): the source returned 0x%lx, not "
		    "aligned to the quantum 0x%lx", r->caller, vmp->ar_name,
		    (unsigned long)(uintptr_t)addr,
		    (unsigned long)vmp->ar_quantum);
	vmem_seg_t *f = span_create(vmp, (uintptr_t)addr, asize, SEG_ISPAN,
	    r->caller);
	VMEM_ASSERT(f->sg_start == (uintptr_t)addr && seg_size(f) == asize);
	VMEM_ASSERT(vmp->ar_nspares >= VMEM_SEGS_PER_OP - 2);
	return f;
}

/* ---- allocation --------------------------------------------------------- */

/*
 * Failure injection (vmem_mtbf_set) fails the caller's VM_NOSLEEP requests
 * only.  The requests the allocator makes on its own behalf are spared:
 * those of a populate (its tag batch and the imports under it), and
 * everything under a call that may not fail (VM_SLEEP and VM_PANIC here,
 * UMEM_NOFAIL in umem_alloc.c and umem_cache.c).
 * Injected there, a VM_SLEEP call that needs tags waited for ever with
 * mtbf 1, and a UMEM_NOFAIL one panicked, while memory existed (found by
 * a user; the progress oracles of the simulator and fuzzers now see it).
 * The depth is a word of the thread's platform area.
 */
static uintptr_t noinject_depth(void)
{
	return (uintptr_t)plat_thread_area()->ptr[PLAT_PTR_NOINJECT];
}

static void inject_spare_enter(void)
{
	plat_thread_area()->ptr[PLAT_PTR_NOINJECT] =
	    (void *)(noinject_depth() + 1);
}

void vmem_inject_spare_exit(void)
{
	VMEM_ASSERT(noinject_depth() > 0);
	plat_thread_area()->ptr[PLAT_PTR_NOINJECT] =
	    (void *)(noinject_depth() - 1);
}

/*
 * A call that may not fail (VM_SLEEP, or VM_PANIC) spares what it asks for
 * on its way: an import, a quantum cache's slab header (umem_slab.c), a new
 * arena's quantum caches (found by the fuzz targets and the simulator: a
 * VM_SLEEP vmem_create returned NULL when its quantum caches' metadata was
 * failed by injection, and a VM_SLEEP vmem_alloc through a quantum cache
 * likewise).  Kept on the slow paths only: those are where such requests
 * are made.
 */
bool vmem_inject_spare_begin(bool may_not_fail)
{
	if (!may_not_fail)
		return false;
	inject_spare_enter();
	return true;
}

static bool inject_spare_begin(int vmflag)
{
	return vmem_inject_spare_begin((vmflag & (VM_NOSLEEP | VM_PANIC)) !=
	    VM_NOSLEEP);
}

QUANTA_HOT static bool mtbf_fires(const vmem_t *vmp, int vmflag)
{
	if ((vmflag & (VM_NOSLEEP | VM_PANIC)) != VM_NOSLEEP)
		return false;
	uint64_t m = atomic_load_explicit(&vmp->ar_mtbf, memory_order_relaxed);
	if (m == 0)
		m = atomic_load_explicit(&vmem_mtbf_global,
		    memory_order_relaxed);
	if (m == 0)
		return false;
	/* planted bug QB_SLEEP_INJECTED: the allocator's own requests fail */
	if (!QUANTA_BUG(QB_SLEEP_INJECTED) &&
	    (noinject_depth() != 0 || vmem_populating_self()))
		return false;
	return plat_clock_ns() % m == 0;
}

static vmem_seg_t *vmem_extend_locked(vmem_t *vmp, uintptr_t addr,
    size_t size, const char *caller);

/* One attempt to find or bring in a fit; lock held, tags reserved. */
QUANTA_HOT static vmem_seg_t *vmem_find_or_import(vmem_t *vmp, const vmem_req_t *r,
    uintptr_t *addrp, vmem_pending_t *pend)
{
	vmem_seg_t *s = vmem_find(vmp, r, addrp);
	if (s != NULL || !vmem_can_import(vmp, r))
		return s;
	if (vmp->ar_grow != NULL) {
		/* The heap grows in place: map, then join. */
		stash_rec_t rec;
		spares_stash(vmp, VMEM_SEGS_PER_OP, &rec);
		size_t need, len = 0;
		/* phase < align: only the sum with the size can wrap, and a
		 * request it wraps for no growth can serve. */
		if (r->size > SIZE_MAX - (r->phase + r->align) ||
		    !roundup_q(r->size + r->phase + r->align, vmp->ar_quantum,
		    &need))
			need = 0;
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		VMEM_ASSERT(ARENA_LOCKS_NONE());
		void *p = need != 0 ? vmp->ar_grow(need, &len) : NULL;
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		VMEM_ASSERT(vmp->ar_nstash >= VMEM_SEGS_PER_OP);
		spares_unstash(vmp, VMEM_SEGS_PER_OP, &rec);
		if (p == NULL)
			return NULL;
		VMEM_ASSERT(len >= need && ((uintptr_t)p &
		    (vmp->ar_quantum - 1)) == 0);
		(void)vmem_extend_locked(vmp, (uintptr_t)p, len, r->caller);
		return vmem_find(vmp, r, addrp);
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		vmem_seg_t *f = vmem_import(vmp, r, attempt == 1);
		if (f == NULL)
			return NULL;
		s = vmem_find(vmp, r, addrp);
		if (s == f)
			return s;
		/* The new span went unused: a source without xalloc returned
		 * one the constraints do not fit in, or another thread freed
		 * a fitting piece while the lock was dropped.  It goes back
		 * whole at once (S3); in the first case once more, with the
		 * slack an aligned start needs. */
		VMEM_ASSERT(seg_type(f) == SEG_FREE &&
		    seg_type(seg_prev(f)) == SEG_ISPAN);
		freelist_remove(vmp, f);
		(void)seg_merge_free(vmp, f, pend);
		if (s != NULL || r->align <= vmp->ar_quantum)
			return s;
	}
	return s;
}

static void *vmem_alloc_fail(vmem_t *vmp, const vmem_req_t *r)
{
	vmp->ar_kstat.fail++;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	/* Memory held in caches may satisfy the next try (deferred while a
	 * populate runs: a reap allocates and frees). */
	umem_reap_request();
	if (r->vmflag & VM_PANIC)
		vmem_panic("%s(arena \"%s\", size 0x%lx, align 0x%lx, phase "
		    "0x%lx, nocross 0x%lx, flags 0x%x): allocation failed "
		    "(VM_PANIC)", r->caller, vmp->ar_name,
		    (unsigned long)r->size, (unsigned long)r->align,
		    (unsigned long)r->phase, (unsigned long)r->nocross,
		    (unsigned)r->vmflag);
	return NULL;
}

/*
 * A VM_SLEEP caller that found nothing (no fit, or no tags: a populate
 * failed) waits on the arena for a free, or a bounded while (the source or
 * the heap may have memory again), then tries again.  Every 64th wait asks
 * for a reap first: the caches may hold what it needs.  The arena lock is
 * held on entry and on return; the populate lock is not.
 */
void vmem_sleep_wait(vmem_t *vmp)
{
	VMEM_ASSERT(!vmem_populating_self() && ARENA_LOCK_HELD(vmp));
	vmp->ar_kstat.wait++;
	vmp->ar_nwaiters++;
	*vmem_pending(vmp) += 1;
	if (vmp->ar_kstat.wait % 64 == 1) {
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		umem_reap_request();
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	}
	plat_cond_timedwait(&vmp->ar_cv, vmp->ar_lock, 10000000u);
	VMEM_ASSERT(vmp->ar_nwaiters > 0 && ARENA_LOCK_HELD(vmp));
	vmp->ar_nwaiters--;
	*vmem_pending(vmp) -= 1;
}

#ifndef NDEBUG
/* What every allocation for r must satisfy (assertions only). */
static bool req_satisfied(const vmem_req_t *r, uintptr_t addr)
{
	uintptr_t last = addr + r->size - 1;
	return ((addr - r->phase) & (r->align - 1)) == 0 &&
	    addr >= r->minaddr && addr < r->maxaddr &&
	    r->size <= r->maxaddr - addr &&
	    (r->nocross == 0 || ((addr ^ last) & ~(r->nocross - 1)) == 0);
}
#endif

/* Cut [addr, addr + r->size) from the free piece s that vmem_find chose;
 * next fit, or any fit from a range joined across the rotor, moves the
 * rotor just past it (lock held). */
QUANTA_HOT static void alloc_take(vmem_t *vmp, const vmem_req_t *r,
    vmem_seg_t *s, uintptr_t addr, vmem_pending_t *pend)
{
	vmem_seg_t *a = seg_cut(vmp, s, addr, r->size);
	VMEM_ASSERT(a->sg_start == addr && seg_size(a) == r->size);
	VMEM_ASSERT(req_satisfied(r, addr));
	if ((r->vmflag & VM_NEXTFIT) || vmp->ar_rotor_joined) {
		vmp->ar_rotor_joined = false;
		/* planted bug QB_ROTOR_STALE: the pieces it held apart stay so */
		if (QUANTA_BUG(QB_ROTOR_STALE))
			seg_unlink(&vmp->ar_rotor);
		else
			marker_unlink(vmp, &vmp->ar_rotor, pend);
		seg_link_after(a, &vmp->ar_rotor);
	}
}

static void *vmem_alloc_req(vmem_t *vmp, const vmem_req_t *r)
{
	vmem_pending_t pend = {.n = 0};
	uintptr_t addr = 0;
	vmem_seg_t *s;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	if (mtbf_fires(vmp, r->vmflag)) {
		/* planted bug QB_MTBF_TAG_LEAK: a spare tag is dropped */
		if (QUANTA_BUG(QB_MTBF_TAG_LEAK) && vmp->ar_nspares != 0)
			(void)vmem_seg_get(vmp);
		return vmem_alloc_fail(vmp, r);
	}
	for (;;) {
		/* planted bug QB_RESERVE_SHORT: VMEM_MINFREE_CHECK is one short */
		if (vmp->ar_nspares >= VMEM_MINFREE_CHECK ||
		    vmem_reserve(vmp, r->vmflag)) {
			s = vmem_find_or_import(vmp, r, &addr, &pend);
			if (s != NULL)
				break;
		}
		if (r->vmflag & (VM_NOSLEEP | VM_PANIC)) {
			(void)vmem_alloc_fail(vmp, r);
			if (pend.n != 0)
				vmem_release_pending(vmp, &pend);
			return NULL;
		}
		/* VM_SLEEP: give back what this try set aside (an imported
		 * span that went unused: holding it across the wait would
		 * keep it from both arenas, and a full pend would leave the
		 * next one wholly free in the arena, against S3 — both found
		 * by the simulator), then wait for a free (or a bounded
		 * while: the source may have memory again) and try again. */
		if (pend.n != 0) {
			qlock_exit(vmp->ar_lock, QLOCK_ARENA);
			vmem_release_pending(vmp, &pend);
			qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		}
		VMEM_ASSERT(pend.n == 0);
		vmem_sleep_wait(vmp);
	}
	alloc_take(vmp, r, s, addr, &pend);
	bool rescale = hash_wanted(vmp) != 0;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (pend.n != 0)
		vmem_release_pending(vmp, &pend);
	if (rescale)
		hash_rescale(vmp);
	if (umem_reap_pending())
		umem_reap_pending_run();
	VMEM_CHECK(vmp);
	return (void *)addr;
}

static void vmem_check_arena(const vmem_t *vmp, const char *caller)
{
	if (vmp == NULL)
		vmem_panic("%s(arena NULL): no arena", caller);
}

/*
 * From the quantum cache of r->size.  VM_PANIC goes down as VM_NOSLEEP
 * and the failure is this call's diagnostic: the cache's slab import is
 * a vmem_xalloc of another size, and a panic there would name that call
 * instead of the caller's (found by the bad_calls fuzz target).
 */
static void *qcache_alloc(vmem_t *vmp, const vmem_req_t *r)
{
	int qflag = r->vmflag;
	if (qflag & VM_PANIC)
		qflag = (qflag & ~VM_PANIC) | VM_NOSLEEP;
	/* VM_PANIC goes down as VM_NOSLEEP, so the cache cannot see that it
	 * may not fail: spared here (VM_SLEEP is, in the slab layer). */
	bool spare = (r->vmflag & VM_PANIC) && vmem_inject_spare_begin(true);
	void *p = umem_qcache_alloc(vmp->ar_qcache[(r->size >> vmp->ar_qshift) -
	    1], qflag);
	if (spare)
		vmem_inject_spare_exit();
	if (p == NULL && (r->vmflag & VM_PANIC))
		vmem_panic("vmem_alloc(arena \"%s\", size 0x%lx, align 0x%lx, "
		    "phase 0x0, nocross 0x0, flags 0x%x): allocation failed "
		    "(VM_PANIC)", vmp->ar_name, (unsigned long)r->size,
		    (unsigned long)r->align, (unsigned)r->vmflag);
	return p;
}

void *vmem_alloc(vmem_t *vmp, size_t size, int vmflag)
{
	vmem_check_arena(vmp, "vmem_alloc");
	vmem_req_t r = {.align = vmp->ar_quantum, .maxaddr = UINTPTR_MAX,
	    .vmflag = vmflag, .caller = "vmem_alloc"};
	if (size == 0)
		vmem_panic("vmem_alloc(arena \"%s\", size 0x0, flags 0x%x): "
		    "size 0", vmp->ar_name, (unsigned)vmflag);
	if (!roundup_q(size, vmp->ar_quantum, &r.size)) {
		if (!(vmflag & VM_NOSLEEP) || (vmflag & VM_PANIC))
			vmem_panic("vmem_alloc(arena \"%s\", size 0x%lx, flags "
			    "0x%x): size overflows", vmp->ar_name,
			    (unsigned long)size, (unsigned)vmflag);
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		return vmem_alloc_fail(vmp, &r);
	}
	if (r.size <= vmp->ar_qcache_max)
		return qcache_alloc(vmp, &r);
	return vmem_alloc_req(vmp, &r);
}

static void xalloc_bad(const vmem_t *vmp, size_t size, size_t align,
    size_t phase, size_t nocross, void *minaddr, void *maxaddr, int vmflag,
    const char *why)
{
	vmem_panic("vmem_xalloc(arena \"%s\", size 0x%lx, align 0x%lx, phase "
	    "0x%lx, nocross 0x%lx, min %p, max %p, flags 0x%x): %s",
	    vmp->ar_name, (unsigned long)size, (unsigned long)align,
	    (unsigned long)phase, (unsigned long)nocross, minaddr, maxaddr,
	    (unsigned)vmflag, why);
}

void *vmem_xalloc(vmem_t *const vmp, size_t size, size_t align, size_t phase,
    size_t nocross, void *minaddr, void *maxaddr, int vmflag)
{
	vmem_check_arena(vmp, "vmem_xalloc");
	size_t q = vmp->ar_quantum;
	const char *why = NULL;
	uintptr_t lo = (uintptr_t)minaddr, hi = (uintptr_t)maxaddr;
	if (align == 0)
		align = q;
	if (size == 0)
		why = "size 0";
	else if (!is_pow2(align) || (align & (q - 1)) != 0)
		why = "align is not a power of two multiple of the quantum";
	else if ((phase & (q - 1)) != 0)
		why = "phase is not a multiple of the quantum";
	else if (phase >= align)
		why = "phase >= align";
	else if (nocross != 0 && (!is_pow2(nocross) || (nocross & (q - 1))))
		why = "nocross is not a power of two multiple of the quantum";
	else if ((lo & (q - 1)) != 0 || (hi & (q - 1)) != 0)
		why = "minaddr or maxaddr is not aligned to the quantum";
	else if (hi != 0 && lo >= hi)
		why = "minaddr >= maxaddr";
	if (why != NULL)
		xalloc_bad(vmp, size, align, phase, nocross, minaddr, maxaddr,
		    vmflag, why);
	vmem_req_t r = {.align = align, .phase = phase, .nocross = nocross,
	    .minaddr = lo, .maxaddr = hi == 0 ? UINTPTR_MAX : hi,
	    .vmflag = vmflag, .caller = "vmem_xalloc"};
	if (!roundup_q(size, q, &r.size)) {
		if (!(vmflag & VM_NOSLEEP) || (vmflag & VM_PANIC))
			xalloc_bad(vmp, size, align, phase, nocross, minaddr,
			    maxaddr, vmflag, "size overflows");
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		return vmem_alloc_fail(vmp, &r);
	}
	if (nocross != 0 && (phase & (nocross - 1)) + r.size > nocross)
		xalloc_bad(vmp, size, align, phase, nocross, minaddr, maxaddr,
		    vmflag, "over-constrained: no address satisfies nocross");
	if (r.maxaddr - r.minaddr < r.size)
		xalloc_bad(vmp, size, align, phase, nocross, minaddr, maxaddr,
		    vmflag, "over-constrained: the window is smaller than size");
	r.constrained = align > q || phase != 0 || nocross != 0 || lo != 0 ||
	    hi != 0;
	return vmem_alloc_req(vmp, &r);
}

/* ---- free ------------------------------------------------------------------ */

/* Find, for the diagnostic, the piece that contains addr (lock held). */
static const vmem_seg_t *seg_containing(const vmem_t *vmp, uintptr_t addr)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next)
		if ((seg_type(s) == SEG_ALLOC || seg_type(s) == SEG_FREE) &&
		    s->sg_start <= addr && addr < s->sg_end)
			return s;
	return NULL;
}

static _Noreturn void bad_free(vmem_t *vmp, uintptr_t addr, size_t size,
    const char *caller)
{
	const vmem_seg_t *s = seg_containing(vmp, addr);
	const char *what = s == NULL ? "not in any span of the arena"
	    : seg_type(s) == SEG_FREE ? "already free"
				      : "inside an allocated segment";
	vmem_panic("%s(arena \"%s\", addr 0x%lx, size 0x%lx): bad free: no "
	    "allocated segment starts there (%s)", caller, vmp->ar_name,
	    (unsigned long)addr, (unsigned long)size, what);
}

static void vmem_free_req(vmem_t *vmp, void *vaddr, size_t size,
    const char *caller)
{
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_pending_t pend = {.n = 0};
	vmem_check_arena(vmp, caller);
	size_t rsize;
	if (!roundup_q(size, vmp->ar_quantum, &rsize))
		rsize = 0;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	vmem_seg_t *s = hash_remove(vmp, addr);
	if (s == NULL)
		bad_free(vmp, addr, size, caller);
	if (seg_size(s) != rsize || size == 0)
		vmem_panic("%s(arena \"%s\", addr 0x%lx, size 0x%lx): wrong "
		    "size: the segment at 0x%lx has size 0x%lx", caller,
		    vmp->ar_name, (unsigned long)addr, (unsigned long)size,
		    (unsigned long)addr, (unsigned long)seg_size(s));
	seg_set_type(s, SEG_FREE);
	(void)seg_merge_free(vmp, s, &pend);
	VMEM_ASSERT(vmp->ar_kstat.mem_inuse <= vmp->ar_kstat.mem_total);
	if (vmp->ar_nspares > VMEM_SPARES_MAX)
		vmem_spares_trim(vmp);
	if (vmp->ar_nwaiters != 0)
		plat_cond_broadcast(&vmp->ar_cv);
	bool rescale = hash_wanted(vmp) != 0;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (pend.n != 0)
		vmem_release_pending(vmp, &pend);
	if (rescale)
		hash_rescale(vmp);
	VMEM_CHECK(vmp);
}

void vmem_free(vmem_t *vmp, void *addr, size_t size)
{
	vmem_check_arena(vmp, "vmem_free");
	if (size - 1 < vmp->ar_qcache_max) {
		size_t k = (size + vmp->ar_quantum - 1) >> vmp->ar_qshift;
		umem_qcache_free(vmp->ar_qcache[k - 1], addr, size);
		return;
	}
	if (vmp->ar_qcache_max != 0)
		umem_qcache_check_arena_free(vmp, addr, size);
	vmem_free_req(vmp, addr, size, "vmem_free");
}

void vmem_xfree(vmem_t *vmp, void *addr, size_t size)
{
	vmem_free_req(vmp, addr, size, "vmem_xfree");
}

/* ---- add, extend ---------------------------------------------------------- */

static void range_check(const vmem_t *vmp, uintptr_t addr, size_t size,
    const char *caller)
{
	const char *why = NULL;
	if (size == 0)
		why = "empty range";
	else if (((addr | size) & (vmp->ar_quantum - 1)) != 0)
		why = "range not aligned to the quantum";
	else if (addr == 0)
		why = "range includes address 0, which no allocation may return";
	else if (addr + size < addr || addr + size == 0)
		why = "range wraps around the end of the address space";
	if (why != NULL)
		vmem_panic("%s(arena \"%s\", addr 0x%lx, size 0x%lx): %s", caller,
		    vmp->ar_name, (unsigned long)addr, (unsigned long)size, why);
}

void *vmem_add(vmem_t *const vmp, void *vaddr, size_t size, int vmflag)
{
	vmem_check_arena(vmp, "vmem_add");
	uintptr_t addr = (uintptr_t)vaddr;
	range_check(vmp, addr, size, "vmem_add");
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	if (!vmem_reserve(vmp, vmflag)) {
		vmp->ar_kstat.fail++;
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		if (vmflag & VM_PANIC)
			vmem_panic("vmem_add(arena \"%s\", addr 0x%lx, size "
			    "0x%lx): no tags (VM_PANIC)", vmp->ar_name,
			    (unsigned long)addr, (unsigned long)size);
		return NULL;
	}
	(void)span_create(vmp, addr, size, SEG_SPAN, "vmem_add");
	VMEM_ASSERT(vmp->ar_kstat.mem_total >= size);
	if (vmp->ar_nwaiters != 0)
		plat_cond_broadcast(&vmp->ar_cv);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	VMEM_CHECK(vmp);
	return vaddr;
}

/*
 * Add [addr, addr + size) as added span, joined to an added span that ends
 * at addr and/or one that starts at addr + size.  Consumes at most two tags.
 * Returns the free piece that now contains the range.
 */
static vmem_seg_t *vmem_extend_locked(vmem_t *vmp, uintptr_t addr,
    size_t size, const char *caller)
{
	uintptr_t end = addr + size;
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	VMEM_ASSERT(addr < end && vmp->ar_nspares >= 2);
	vmem_seg_t *kprev = span_find_prev(vmp, addr);
	vmem_seg_t *knext = kprev->sg_link.next;
	span_overlap_check(vmp, kprev, addr, end, caller);
	bool join_prev = kprev != seg0 && seg_type(kprev) == SEG_SPAN &&
	    kprev->sg_end == addr;
	bool join_next = knext != seg0 && seg_type(knext) == SEG_SPAN &&
	    knext->sg_start == end;
	if (!join_prev && !join_next)
		return span_create(vmp, addr, size, SEG_SPAN, caller);

	vmem_seg_t *f = vmem_seg_get(vmp);
	seg_init(f, addr, end, SEG_FREE);
	if (join_prev) {
		seg_link_after(seg_prev(knext), f);
		kprev->sg_end = end;
		if (join_next) {
			kprev->sg_end = knext->sg_end;
			knext->sg_link.prev->sg_link.next = knext->sg_link.next;
			knext->sg_link.next->sg_link.prev = knext->sg_link.prev;
			seg_unlink(knext);
			vmem_seg_put(vmp, knext);
		}
	} else {
		knext->sg_start = addr;
		seg_link_after(knext, f);
	}
	vmp->ar_kstat.mem_total += size;
	f = seg_merge_free(vmp, f, NULL);
	VMEM_ASSERT(f != NULL && f->sg_start <= addr && end <= f->sg_end);
	return f;
}

void *vmem_extend_alloc(vmem_t *vmp, void *vaddr, size_t size, size_t alloc,
    int vmflag)
{
	vmem_check_arena(vmp, "vmem_extend_alloc");
	uintptr_t addr = (uintptr_t)vaddr;
	range_check(vmp, addr, size, "vmem_extend_alloc");
	size_t asize;
	if (alloc == 0 || !roundup_q(alloc, vmp->ar_quantum, &asize) ||
	    asize > size)
		vmem_panic("vmem_extend_alloc(arena \"%s\", addr 0x%lx, size "
		    "0x%lx, alloc 0x%lx): alloc must be in (0, size]",
		    vmp->ar_name, (unsigned long)addr, (unsigned long)size,
		    (unsigned long)alloc);
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	if (!vmem_reserve(vmp, vmflag)) {
		vmp->ar_kstat.fail++;
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		return NULL;
	}
	vmem_seg_t *f = vmem_extend_locked(vmp, addr, size,
	    "vmem_extend_alloc");
	VMEM_ASSERT(seg_type(f) == SEG_FREE);
	vmem_seg_t *a = seg_cut(vmp, f, addr, asize);
	VMEM_ASSERT(a->sg_start == addr && seg_size(a) == asize);
	(void)a; /* release builds compile the assertion out */
	bool rescale = hash_wanted(vmp) != 0;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (rescale)
		hash_rescale(vmp);
	VMEM_CHECK(vmp);
	return vaddr;
}

/* ---- contains, size, walk -------------------------------------------------- */

int vmem_contains(vmem_t *vmp, void *vaddr, size_t size)
{
	vmem_check_arena(vmp, "vmem_contains");
	uintptr_t addr = (uintptr_t)vaddr;
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	int found = 0;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	vmp->ar_kstat.contains++;
	for (vmem_seg_t *sp = seg0->sg_link.next; sp != seg0;
	     sp = sp->sg_link.next) {
		vmp->ar_kstat.contains_search++;
		if (addr >= sp->sg_start && addr < sp->sg_end) {
			found = size <= sp->sg_end - addr;
			break;
		}
	}
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	return found;
}

size_t vmem_size(vmem_t *vmp, int typemask)
{
	vmem_check_arena(vmp, "vmem_size");
	size_t size = 0;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	if (typemask & VMEM_ALLOC)
		size += vmp->ar_kstat.mem_inuse;
	if (typemask & VMEM_FREE)
		size += vmp->ar_kstat.mem_total - vmp->ar_kstat.mem_inuse;
	if ((typemask & VMEM_SPAN) && !(typemask & (VMEM_ALLOC | VMEM_FREE)))
		size = vmp->ar_kstat.mem_total;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	return size;
}

static bool seg_matches(const vmem_seg_t *s, int typemask)
{
	switch (seg_type(s)) {
	case SEG_ALLOC:
		return (typemask & VMEM_ALLOC) != 0;
	case SEG_FREE:
		return (typemask & VMEM_FREE) != 0;
	case SEG_SPAN:
	case SEG_ISPAN:
		return (typemask & VMEM_SPAN) != 0;
	default:
		return false;
	}
}

/*
 * Visit every segment of the types in typemask, in address order.  With
 * VMEM_REENTRANT the lock is dropped around each callback (which may then
 * allocate from and free to this arena); a walker marker keeps the place.
 */
void vmem_walk(vmem_t *vmp, int typemask,
    void (*func)(void *arg, void *start, size_t size), void *arg)
{
	vmem_check_arena(vmp, "vmem_walk");
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	vmem_pending_t pend = {.n = 0};
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	if (!(typemask & VMEM_REENTRANT)) {
		for (vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next)
			if (seg_matches(s, typemask))
				func(arg, (void *)s->sg_start, seg_size(s));
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		return;
	}
	vmem_seg_t walker;
	seg_init(&walker, 0, 0, SEG_WALKER);
	/* A marker covers no address: its start names the walking thread, so
	 * that the child of a fork drops the walks of the threads it lacks. */
	walker.sg_start = plat_thread_self();
	seg_link_after(seg0, &walker);
	vmp->ar_nwalkers++;
	*vmem_pending(vmp) += 1;
	for (;;) {
		vmem_seg_t *s = walker.sg_next;
		if (s == seg0)
			break;
		/* Step over s; if the walker held s apart from a free
		 * predecessor (already visited), they coalesce and the walk
		 * moves on; so does a free s that was a whole imported span. */
		vmem_seg_t *p = seg_prev(&walker);
		seg_unlink(&walker);
		seg_link_after(s, &walker);
		if (seg_type(s) == SEG_FREE &&
		    (seg_type(p) == SEG_FREE || seg_type(p) == SEG_ISPAN)) {
			size_t spans = vmp->ar_kstat.mem_total;
			marker_left(vmp, s, &pend);
			if (seg_type(p) == SEG_FREE ||
			    vmp->ar_kstat.mem_total != spans)
				continue;
		}
		if (!seg_matches(s, typemask))
			continue;
		uintptr_t start = s->sg_start;
		size_t size = seg_size(s);
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		if (pend.n != 0)
			vmem_release_pending(vmp, &pend);
		func(arg, (void *)start, size);
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		/* The walker kept its place while the lock was dropped. */
		VMEM_ASSERT(seg_type(&walker) == SEG_WALKER &&
		    seg_prev(walker.sg_next) == &walker);
	}
	VMEM_ASSERT(vmp->ar_nwalkers > 0 && ARENA_LOCK_HELD(vmp));
	marker_unlink(vmp, &walker, &pend);
	vmp->ar_nwalkers--;
	*vmem_pending(vmp) -= 1;
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (pend.n != 0)
		vmem_release_pending(vmp, &pend);
	VMEM_CHECK(vmp);
}

/*
 * The stash of the threads the child lacks goes back to the spares.  A
 * thread inside a source call at the fork had stashed VMEM_SEGS_PER_OP
 * tags (spares_stash) and would have put them back after the call; it
 * never will, and without this they would stay stranded on ar_stash for
 * the child's life (and be lost to R3 when the arena is destroyed, since a
 * destroy gives back only the spares).  The forking thread's own stashes
 * — it may fork from inside a source function — stay: it unstashes them
 * when its call returns.  Lock held; moves tags only between two lists of
 * this arena, so R1 and R3 hold throughout.
 */
static void stash_child_reclaim(vmem_t *vmp)
{
	size_t keep = stash_held_by_self(vmp);
	VMEM_ASSERT(vmp->ar_nstash >= keep &&
	    (vmp->ar_nstash - keep) % VMEM_SEGS_PER_OP == 0);
	while (vmp->ar_nstash > keep) {
		vmem_seg_t *s = vmp->ar_stash;
		vmp->ar_stash = s->sg_next;
		vmp->ar_nstash--;
		*vmem_pending(vmp) -= 1;
		vmem_seg_put(vmp, s);
	}
}

/*
 * In the child of a fork, only the forking thread (self) exists: take the
 * walkers of every other thread off the arena (their stacks will be reused),
 * give the tags they had stashed across a source call back to the spares,
 * and forget the waiters and the rescale that those threads were in.  One
 * walker per pass, from the start again, since taking one off may coalesce
 * (or give back) its neighbours; the passes are bounded by ar_nwalkers.
 */
void vmem_child_fixup_arena(vmem_t *vmp, uintptr_t self)
{
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	*vmem_pending(vmp) -= (unsigned)vmp->ar_nwaiters +
	    (vmp->ar_htab_rescaling ? 1u : 0u);
	vmp->ar_nwaiters = 0;
	vmp->ar_htab_rescaling = false;
	stash_child_reclaim(vmp);
	VMEM_ASSERT(vmp->ar_nstash == stash_held_by_self(vmp));
	for (size_t pass = 0, n = vmp->ar_nwalkers; pass < n; pass++) {
		vmem_pending_t pend = {.n = 0};
		vmem_seg_t *s = seg0->sg_next;
		while (s != seg0 && (seg_type(s) != SEG_WALKER ||
		    s->sg_start == self))
			s = s->sg_next;
		if (s == seg0)
			break;
		marker_unlink(vmp, s, &pend);
		vmp->ar_nwalkers--;
		*vmem_pending(vmp) -= 1;
		qlock_exit(vmp->ar_lock, QLOCK_ARENA);
		if (pend.n != 0)
			vmem_release_pending(vmp, &pend);
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		VMEM_ASSERT(ARENA_LOCK_HELD(vmp));
	}
	VMEM_ASSERT(vmp->ar_nwaiters == 0 && !vmp->ar_htab_rescaling);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
}

/* ---- create, destroy ---------------------------------------------------- */

static void vmem_qcaches_destroy(vmem_t *vmp)
{
	vmp->ar_qcache_max = 0; /* from here on, frees go to the arena */
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++) {
		if (vmp->ar_qcache[k] != NULL)
			umem_qcache_destroy(vmp->ar_qcache[k]);
		vmp->ar_qcache[k] = NULL;
	}
}

bool vmem_arena_init(vmem_t *vmp, const char *name, size_t quantum,
    vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag)
{
	memset(vmp, 0, sizeof(*vmp));
	(void)snprintf(vmp->ar_name, sizeof(vmp->ar_name), "%s",
	    name != NULL ? name : "(null)");
	vmp->ar_lock = locktab_get();
	if (vmp->ar_lock == NULL)
		return false;
	plat_cond_init(&vmp->ar_cv);
	vmp->ar_cflags = vmflag;
	vmp->ar_quantum = quantum;
	vmp->ar_qshift = vmem_highbit(quantum) - 1;
	vmp->ar_qcache_max = (vmflag & VMC_NO_QCACHE) ? 0 : qcache_max;
	vmp->ar_source_alloc = afunc;
	vmp->ar_source_free = ffunc;
	vmp->ar_source = source;

	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	seg_init(seg0, 0, 0, SEG_HEAD);
	seg0->sg_link.next = seg0;
	seg0->sg_link.prev = seg0;
	seg_init(&vmp->ar_rotor, 0, 0, SEG_ROTOR);
	seg_link_after(seg0, &vmp->ar_rotor);

	for (unsigned i = 0; i <= VMEM_FREELISTS; i++) {
		vmem_seg_t *h = &vmp->ar_freelist[i];
		seg_init(h, 0, 0, SEG_HEAD);
		h->sg_link.prev = i == 0 ? NULL : &vmp->ar_freelist[i - 1];
		h->sg_link.next = i == VMEM_FREELISTS ? NULL
						      : &vmp->ar_freelist[i + 1];
	}
	vmp->ar_htab = vmp->ar_htab_embedded;
	vmp->ar_htab_mask = VMEM_HASH_INITIAL - 1;
	vmp->ar_htab_shift = 64u - (vmem_highbit(VMEM_HASH_INITIAL) - 1);
	VMEM_ASSERT(((size_t)1 << vmp->ar_qshift) == quantum);
	VMEM_ASSERT(vmp->ar_freemap == 0 && vmp->ar_nspares == 0);
	return true;
}

/* A populator arena enters the populator table with the list, under the
 * list lock (vmem_populator_add, vmem_tags.c). */
void vmem_list_insert(vmem_t *vmp)
{
	bool populator = (vmp->ar_cflags & VMC_POPULATOR) != 0;
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
	vmem_t **pp = &vmem_list;
	while (*pp != NULL)
		pp = &(*pp)->ar_next;
	*pp = vmp;
	locktab_list(vmp->ar_lock, vmp, QLOCK_ARENA);
	if (populator && !QUANTA_BUG(QB_POPULATOR_UNLISTED))
		vmem_populator_add(vmp);
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
}

static void vmem_list_remove(vmem_t *vmp)
{
	bool populator = (vmp->ar_cflags & VMC_POPULATOR) != 0;
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
	vmem_t **pp = &vmem_list;
	while (*pp != NULL && *pp != vmp)
		pp = &(*pp)->ar_next;
	if (*pp == vmp) {
		*pp = vmp->ar_next;
		locktab_unlist(vmp->ar_lock);
		if (populator && !QUANTA_BUG(QB_POPULATOR_UNLISTED))
			vmem_populator_remove(vmp);
	}
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
	/* planted bug QB_POPULATOR_UNLISTED: unregistered after unlisting */
	if (populator && QUANTA_BUG(QB_POPULATOR_UNLISTED)) {
		plat_preempt_point("vmem_destroy: unlisted, still a populator");
		vmem_populator_remove(vmp);
	}
}

/*
 * Quantum caches: one object cache per multiple of the quantum up to
 * qcache_max (clamped to VMEM_QCACHE_MAX quanta), whose slabs are
 * vmem_xalloc'd pieces of this arena.  vmem_alloc and vmem_free of those
 * sizes go through them and never take the arena lock on a cache hit.
 */
static bool vmem_qcaches_create(vmem_t *vmp)
{
	size_t max = vmp->ar_qcache_max & ~(vmp->ar_quantum - 1);
	if (max > VMEM_QCACHE_MAX * vmp->ar_quantum)
		max = VMEM_QCACHE_MAX * vmp->ar_quantum;
	vmp->ar_qcache_max = 0;
	if (max == 0)
		return true;
	size_t n = max >> vmp->ar_qshift;
	VMEM_ASSERT(n >= 1 && n <= VMEM_QCACHE_MAX);
	/* The slab size is derived from the final qcache_max. */
	vmp->ar_qcache_max = max;
	for (size_t k = 1; k <= n; k++) {
		vmp->ar_qcache[k - 1] = umem_qcache_create(vmp,
		    k * vmp->ar_quantum);
		if (vmp->ar_qcache[k - 1] == NULL) {
			vmem_qcaches_destroy(vmp);
			return false;
		}
	}
	VMEM_ASSERT(vmp->ar_qcache[n - 1] != NULL &&
	    (n == VMEM_QCACHE_MAX || vmp->ar_qcache[n] == NULL));
	return true;
}

vmem_t *vmem_create(const char *const name, void *base, size_t size, size_t quantum,
    vmem_alloc_t *afunc, vmem_free_t *ffunc, vmem_t *source,
    size_t qcache_max, int vmflag)
{
	vmem_bootstrap();
	if (!is_pow2(quantum))
		vmem_panic("vmem_create(name \"%s\", base %p, size 0x%lx, quantum "
		    "0x%lx): quantum is not a power of two",
		    name != NULL ? name : "(null)", base, (unsigned long)size,
		    (unsigned long)quantum);
	if ((afunc == NULL) != (ffunc == NULL) && afunc == NULL)
		vmem_panic("vmem_create(name \"%s\"): ffunc without afunc",
		    name != NULL ? name : "(null)");
	vmem_t *vmp = vmem_alloc(vmem_internal_arena, sizeof(vmem_t),
	    vmflag & VM_NOSLEEP);
	if (vmp == NULL)
		return NULL;
	if (!vmem_arena_init(vmp, name, quantum, afunc, ffunc, source,
	    qcache_max, vmflag & ~(VM_NOSLEEP | VM_PANIC))) {
		vmem_free(vmem_internal_arena, vmp, sizeof(vmem_t));
		return NULL;
	}
	VMEM_OFFLIST_ENTER();
	if (vmflag & VMC_POPULATOR) {
		/* planted bug QB_POPULATOR_UNLISTED: registered before listing */
		if (QUANTA_BUG(QB_POPULATOR_UNLISTED))
			vmem_populator_add(vmp);
		vmem_populator_reserve(vmp);
	}
	vmem_list_insert(vmp);
	VMEM_OFFLIST_EXIT();
	if (size != 0 && vmem_add(vmp, base, size, vmflag & ~VMC_POPULATOR &
	    (VM_NOSLEEP | VM_PANIC)) == NULL) {
		vmem_destroy(vmp);
		return NULL;
	}
	bool spare = inject_spare_begin(vmflag);
	bool ok = vmem_qcaches_create(vmp);
	if (spare)
		vmem_inject_spare_exit();
	if (!ok) {
		vmem_destroy(vmp);
		return NULL;
	}
	return vmp;
}

void vmem_destroy(vmem_t *vmp)
{
	vmem_check_arena(vmp, "vmem_destroy");
	if (vmp->ar_static)
		vmem_panic("vmem_destroy(arena \"%s\"): a bootstrap arena",
		    vmp->ar_name);
	vmem_qcaches_destroy(vmp);
	VMEM_OFFLIST_ENTER();
	vmem_list_remove(vmp);
	size_t leaked = vmp->ar_kstat.mem_inuse;
	if (leaked != 0) {
		char buf[160];
		int n = snprintf(buf, sizeof(buf),
		    "vmem_destroy(%s): leaked %lu bytes\n", vmp->ar_name,
		    (unsigned long)leaked);
		(void)fwrite(buf, 1, (size_t)n, stderr);
	}
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	vmem_seg_t *s = seg0->sg_next;
	while (s != seg0) {
		vmem_seg_t *next = s->sg_next;
		if (seg_type(s) == SEG_ISPAN && vmp->ar_source_free != NULL) {
			vmem_pending_t pend = {.n = 1};
			pend.rel[0].addr = s->sg_start;
			pend.rel[0].size = seg_size(s);
			qlock_exit(vmp->ar_lock, QLOCK_ARENA);
			vmem_release_pending(vmp, &pend);
			qlock_enter(vmp->ar_lock, QLOCK_ARENA);
			VMEM_ASSERT(pend.n == 0);
		}
		if (!seg_is_marker(s))
			vmem_seg_put(vmp, s);
		s = next;
	}
	/* No thread may be inside a source call of an arena it destroys. */
	VMEM_ASSERT(vmp->ar_nstash == 0);
	vmem_spares_release_all(vmp);
	VMEM_ASSERT(vmp->ar_nspares == 0);
	VMEM_OFFLIST_EXIT();
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (vmp->ar_htab != vmp->ar_htab_embedded)
		plat_pages_unmap(vmp->ar_htab,
		    hash_table_bytes(hash_buckets(vmp)));
	plat_cond_destroy(&vmp->ar_cv);
	locktab_put(vmp->ar_lock);
	vmem_free(vmem_internal_arena, vmp, sizeof(vmem_t));
}

/* ---- the heap, bootstrap arenas, failure injection, names ----------------- */

#define VMEM_HEAP_CHUNK ((size_t)1 << 20)

/* The heap grows by mapping at least a chunk; adjacent maps are joined. */
static void *heap_grow(size_t size, size_t *lenp)
{
	size_t len = size < VMEM_HEAP_CHUNK ? VMEM_HEAP_CHUNK : size;
	*lenp = len;
	return plat_pages_map(len);
}

void vmem_heap_setup(vmem_t *heap)
{
	heap->ar_grow = heap_grow;
	vmem_heap = heap;
}

vmem_t *vmem_heap_arena(void)
{
	vmem_bootstrap();
	return vmem_heap;
}

void vmem_mtbf_set(vmem_t *vmp, uint64_t mtbf)
{
	if (vmp == NULL)
		atomic_store(&vmem_mtbf_global, mtbf);
	else
		atomic_store(&vmp->ar_mtbf, mtbf);
}

const char *vmem_name(const vmem_t *vmp)
{
	return vmp->ar_name;
}

size_t vmem_quantum(const vmem_t *vmp)
{
	return vmp->ar_quantum;
}
