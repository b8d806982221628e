/*
 * umem_check.c — the invariant checker's object-cache part: Q1, Q2, Q3 of
 * shared/design/INVARIANTS.md over one cache.
 *
 * Theory
 * ------
 * Q1 (every buffer in exactly one place).  Gather every magazine round —
 * the depot's full magazines and every thread slot's loaded and previous
 * magazine — sort them, and check that each is the start of a buffer of
 * this cache, appears once, and is not also free in its slab.  Then count:
 * buffers in slabs = free in slabs (popcount of the free maps) + rounds +
 * with callers, where "with callers" is what the slots and the slab layer
 * handed out minus what they took back.  Debug builds also check each
 * buffer's state byte against where it was found.
 * Q2 (slab free counts).  For each slab on each list: the popcount of its
 * free map equals sb_nfree; the list it is on is the one its count says
 * (a fully free slab is on the free list: reclaimable); it is in the hash;
 * the cache's totals agree with the sums.
 * Q3 (quantum caches).  Each slab of a UMC_QCACHE cache is an allocated
 * piece [base, base + slab) of its arena.
 *
 * Locking: the cache's depot lock, then its slab lock, then (Q3) its arena's
 * lock — the documented order.  The slots are read without a lock, so the
 * cache must be quiescent.  Every walk is bounded by the counts it checks
 * (plus one), so a corrupted (cyclic) list is reported, not followed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umem_impl.h"

typedef struct qcheck {
	umem_violation_t *out;
	size_t max;
	size_t found;
} qcheck_t;

static void qadd(qcheck_t *q, const char *code, uintptr_t addr,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void qadd(qcheck_t *q, const char *code, uintptr_t addr,
    const char *fmt, ...)
{
	if (q->found < q->max) {
		umem_violation_t *v = &q->out[q->found];
		va_list ap;
		(void)snprintf(v->uv_code, sizeof(v->uv_code), "%s", code);
		v->uv_addr = addr;
		va_start(ap, fmt);
		(void)vsnprintf(v->uv_what, sizeof(v->uv_what), fmt, ap);
		va_end(ap);
	}
	q->found++;
}

static size_t popcount_map(const uint64_t *map, uint32_t words)
{
	size_t n = 0;
	for (uint32_t w = 0; w < words; w++)
		n += (size_t)__builtin_popcountll(map[w]);
	return n;
}

/* ---- Q2 ---------------------------------------------------------------- */

typedef struct slab_totals {
	size_t slabs, free_slabs, free_bufs;
} slab_totals_t;

static void check_slab(umem_cache_t *cp, umem_slab_t *sp, uint32_t list,
    qcheck_t *q, slab_totals_t *t)
{
	size_t pop = popcount_map(sp->sb_map, cp->cc_map_words);
	if (pop != sp->sb_nfree)
		qadd(q, "Q2", sp->sb_base, "cache \"%s\": slab 0x%lx counts %u "
		    "free, its free map has %lu", cp->cc_name,
		    (unsigned long)sp->sb_base, sp->sb_nfree,
		    (unsigned long)pop);
	uint32_t want = pop == 0 ? UMEM_SL_FULL
	    : pop == cp->cc_nbufs ? UMEM_SL_FREE
				  : UMEM_SL_PARTIAL;
	if (want != list || sp->sb_list != list)
		qadd(q, "Q2", sp->sb_base, "cache \"%s\": slab 0x%lx with %lu of "
		    "%u free is on list %u (tagged %u), belongs on %u%s",
		    cp->cc_name, (unsigned long)sp->sb_base, (unsigned long)pop,
		    cp->cc_nbufs, list, sp->sb_list, want,
		    want == UMEM_SL_FREE ? " (not reclaimable)" : "");
	if (umem_slab_lookup(cp, sp->sb_base) != sp)
		qadd(q, "Q2", sp->sb_base, "cache \"%s\": slab 0x%lx is not in "
		    "the slab hash", cp->cc_name, (unsigned long)sp->sb_base);
	t->slabs++;
	t->free_slabs += list == UMEM_SL_FREE;
	t->free_bufs += pop;
}

static void check_q2(umem_cache_t *cp, qcheck_t *q)
{
	slab_totals_t t = {0, 0, 0};
	umem_slab_t *heads[3] = {cp->cc_partial, cp->cc_fullslabs,
	    cp->cc_freeslabs};
	for (uint32_t l = 0; l < 3; l++) {
		umem_slab_t *sp = heads[l];
		for (size_t n = 0; sp != NULL; sp = sp->sb_next, n++) {
			if (n > cp->cc_nslabs) {
				qadd(q, "Q2", 0, "cache \"%s\": slab list %u "
				    "longer than the %lu slabs (a cycle?)",
				    cp->cc_name, l + 1,
				    (unsigned long)cp->cc_nslabs);
				break;
			}
			check_slab(cp, sp, l + 1, q, &t);
		}
	}
	if (t.slabs != cp->cc_nslabs || t.free_slabs != cp->cc_nslabs_free ||
	    t.free_bufs != cp->cc_bufs_slab_free)
		qadd(q, "Q2", 0, "cache \"%s\": lists hold %lu slabs (%lu free, "
		    "%lu free buffers); the cache counts %lu (%lu, %lu)",
		    cp->cc_name, (unsigned long)t.slabs,
		    (unsigned long)t.free_slabs, (unsigned long)t.free_bufs,
		    (unsigned long)cp->cc_nslabs,
		    (unsigned long)cp->cc_nslabs_free,
		    (unsigned long)cp->cc_bufs_slab_free);
}

/* ---- Q1 ---------------------------------------------------------------- */

typedef struct rounds {
	uintptr_t *v;
	size_t n, cap;
	uint64_t to_caller, from_caller;
} rounds_t;

static void rounds_add(rounds_t *r, const umem_mag_t *m, uint32_t n)
{
	for (uint32_t i = 0; i < n && i < m->mg_cap; i++) {
		if (r->n == r->cap) {
			size_t cap = r->cap == 0 ? 1024 : 2 * r->cap;
			uintptr_t *v = realloc(r->v, cap * sizeof(*v));
			if (v == NULL)
				return;
			r->v = v;
			r->cap = cap;
		}
		r->v[r->n++] = (uintptr_t)m->mg_round[i];
	}
}

static void gather_rounds(umem_cache_t *cp, rounds_t *r)
{
	size_t n = 0;
	for (umem_mag_t *m = cp->cc_full.ml_head; m != NULL &&
	    n <= cp->cc_full.ml_count; m = m->mg_next, n++)
		rounds_add(r, m, m->mg_cap);
	for (size_t c = 0; c < UMEM_SLOT_CHUNKS; c++) {
		umem_slot_chunk_t *ch = atomic_load(&cp->cc_slotdir[c]);
		for (size_t s = 0; ch != NULL && s < UMEM_SLOTS_PER_CHUNK; s++) {
			const umem_slot_t *sl = &ch->sc_slot[s];
			if (sl->sl_loaded != NULL)
				rounds_add(r, sl->sl_loaded, sl->sl_rounds);
			if (sl->sl_prev != NULL)
				rounds_add(r, sl->sl_prev, sl->sl_prounds);
			r->to_caller += sl->sl_to_caller;
			r->from_caller += sl->sl_from_caller;
		}
	}
	r->to_caller += cp->cc_direct_to_caller;
	r->from_caller += cp->cc_direct_from_caller;
}

static int cmp_addr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Each round: a buffer of this cache, once, not free in its slab. */
static size_t check_rounds(umem_cache_t *cp, rounds_t *r, qcheck_t *q)
{
	size_t mag_state = 0;
	if (r->n > 1)
		qsort(r->v, r->n, sizeof(*r->v), cmp_addr);
	for (size_t i = 0; i < r->n; i++) {
		uintptr_t a = r->v[i];
		if (i > 0 && r->v[i - 1] == a) {
			qadd(q, "Q1", a, "cache \"%s\": buffer 0x%lx is in two "
			    "magazine places", cp->cc_name, (unsigned long)a);
			continue;
		}
		umem_slab_t *sp = umem_slab_lookup(cp, a);
		size_t k = sp == NULL ? SIZE_MAX : umem_slab_index(cp, sp, a);
		if (k == SIZE_MAX) {
			qadd(q, "Q1", a, "cache \"%s\": magazine round 0x%lx is "
			    "no buffer of the cache", cp->cc_name,
			    (unsigned long)a);
			continue;
		}
		if (umem_map_test(sp->sb_map, k))
			qadd(q, "Q1", a, "cache \"%s\": buffer 0x%lx is in a "
			    "magazine and free in its slab", cp->cc_name,
			    (unsigned long)a);
		if (cp->cc_debug && umem_slab_state(cp, sp)[k] != UMEM_BS_MAG)
			qadd(q, "Q1", a, "cache \"%s\": buffer 0x%lx is in a "
			    "magazine but its state says %u", cp->cc_name,
			    (unsigned long)a, umem_slab_state(cp, sp)[k]);
		mag_state++;
	}
	return mag_state;
}

/* Debug builds: state bytes agree with the free maps; count callers. */
static size_t count_caller_states(umem_cache_t *cp, qcheck_t *q,
    size_t *mags)
{
	size_t callers = 0;
	*mags = 0;
	umem_slab_t *heads[3] = {cp->cc_partial, cp->cc_fullslabs,
	    cp->cc_freeslabs};
	for (uint32_t l = 0; l < 3; l++) {
		umem_slab_t *sp = heads[l];
		for (size_t n = 0; sp != NULL && n <= cp->cc_nslabs;
		    sp = sp->sb_next, n++) {
			uint8_t *st = umem_slab_state(cp, sp);
			for (uint32_t k = 0; k < cp->cc_nbufs; k++) {
				bool free = umem_map_test(sp->sb_map, k);
				if (free != (st[k] == UMEM_BS_SLAB))
					qadd(q, "Q1", sp->sb_base + k *
					    cp->cc_chunk_bytes, "cache \"%s\": "
					    "buffer %u of slab 0x%lx: free bit "
					    "%d, state %u", cp->cc_name, k,
					    (unsigned long)sp->sb_base, free,
					    st[k]);
				callers += st[k] == UMEM_BS_CALLER;
				*mags += st[k] == UMEM_BS_MAG;
			}
		}
	}
	return callers;
}

static void check_q1(umem_cache_t *cp, qcheck_t *q)
{
	rounds_t r;
	memset(&r, 0, sizeof(r));
	gather_rounds(cp, &r);
	size_t distinct = check_rounds(cp, &r, q);
	size_t slab_free = 0, total = 0;
	umem_slab_t *heads[3] = {cp->cc_partial, cp->cc_fullslabs,
	    cp->cc_freeslabs};
	for (uint32_t l = 0; l < 3; l++)
		for (umem_slab_t *sp = heads[l]; sp != NULL &&
		    total <= cp->cc_nslabs * cp->cc_nbufs; sp = sp->sb_next) {
			slab_free += popcount_map(sp->sb_map, cp->cc_map_words);
			total += cp->cc_nbufs;
		}
	uint64_t callers = r.to_caller - r.from_caller;
	if ((uint64_t)total != (uint64_t)slab_free + r.n + callers)
		qadd(q, "Q1", 0, "cache \"%s\": %lu buffers in slabs, but %lu "
		    "free in slabs + %lu in magazines + %lu with callers",
		    cp->cc_name, (unsigned long)total,
		    (unsigned long)slab_free, (unsigned long)r.n,
		    (unsigned long)callers);
	if (cp->cc_debug) {
		size_t mags;
		size_t cs = count_caller_states(cp, q, &mags);
		if ((uint64_t)cs != callers)
			qadd(q, "Q1", 0, "cache \"%s\": %lu buffers are in the "
			    "caller state, the counters say %lu", cp->cc_name,
			    (unsigned long)cs, (unsigned long)callers);
		if (mags != distinct)
			qadd(q, "Q1", 0, "cache \"%s\": %lu buffers are in the "
			    "magazine state, %lu found in magazines (one lost)",
			    cp->cc_name, (unsigned long)mags,
			    (unsigned long)distinct);
	}
	free(r.v);
}

/* ---- Q3 ---------------------------------------------------------------- */

static bool arena_has_piece(vmem_t *vmp, uintptr_t start, size_t size)
{
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	size_t n = 0;
	for (vmem_seg_t *s = seg0->sg_next; s != seg0 && n < SIZE_MAX / 2;
	    s = s->sg_next, n++)
		if (seg_type(s) == SEG_ALLOC && s->sg_start == start &&
		    seg_size(s) == size)
			return true;
	return false;
}

static void check_q3(umem_cache_t *cp, qcheck_t *q)
{
	if (!(cp->cc_cflags & UMC_QCACHE))
		return;
	vmem_t *vmp = cp->cc_arena;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	umem_slab_t *heads[3] = {cp->cc_partial, cp->cc_fullslabs,
	    cp->cc_freeslabs};
	for (uint32_t l = 0; l < 3; l++) {
		size_t n = 0;
		for (umem_slab_t *sp = heads[l]; sp != NULL &&
		    n <= cp->cc_nslabs; sp = sp->sb_next, n++)
			if (!arena_has_piece(vmp, sp->sb_base,
			    cp->cc_slab_bytes))
				qadd(q, "Q3", sp->sb_base, "quantum cache \"%s\": "
				    "slab 0x%lx is no allocated piece of arena "
				    "\"%s\"", cp->cc_name,
				    (unsigned long)sp->sb_base, vmp->ar_name);
	}
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
}

size_t invariant_umem_cache(umem_cache_t *cp, umem_violation_t *out,
    size_t max)
{
	qcheck_t q = {out, max, 0};
	qlock_enter(cp->cc_depot_lock, QLOCK_DEPOT);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	check_q2(cp, &q);
	check_q1(cp, &q);
	check_q3(cp, &q);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	qlock_exit(cp->cc_depot_lock, QLOCK_DEPOT);
	return q.found;
}
