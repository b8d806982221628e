/*
 * fuzz_leak.h — the end-of-input leak oracle of the arena fuzz targets:
 * once an input's arenas and caches are destroyed (and fuzz_quiesce has
 * flushed and reaped), every internal arena holds what it held before the
 * input, except what the library legitimately keeps.
 *
 * Theory
 * ------
 * The internal arenas form a tree: the heap (pages) is the source of
 * vmem_internal (vmem_t structures), umem_meta (slab headers, magazines,
 * cache structures) and umem_default (umem_alloc, caches without a
 * source); vmem_internal is the source of vmem_seg (boundary tags).  What
 * an input may leave behind, exactly, and why:
 *   - vmem_seg: whole populates.  Tags are never returned (vmem_tags.c:
 *     they move between the global list and the arenas), so the tag
 *     arena's allocated bytes grow by VMEM_POPULATE_BYTES for each batch
 *     of VMEM_POPULATE_BYTES / sizeof(vmem_seg_t) tags the census counts
 *     as created during the input, and by nothing else.
 *   - vmem_internal: the tag arena's imports (its spans hold tags, which
 *     never come back); every vmem_t of a destroyed arena is back.
 *   - umem_meta, umem_default: nothing, beyond what the caches that
 *     outlive the input (the umem_alloc size classes) hold: their slabs
 *     (us_slabs x us_slab_bytes, in umem_default) and the slab headers,
 *     magazines and per-thread slot chunks that go with them (umem_meta;
 *     not itemised: its allowance is zero unless a persistent cache's
 *     slab count, depot, slot chunks or slot magazines changed).
 *   - the heap: its children's imports (their spans), nothing of its own.
 * A snapshot is taken when the input starts (after the bootstrap), the
 * check runs after the input's teardown; any other difference is a leak
 * (or a span not given back) and fails with the arena and the figures.
 */
#ifndef QUANTA_FUZZ_LEAK_H
#define QUANTA_FUZZ_LEAK_H

#include "fuzz_common.h"
#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"
#include "vmem_impl.h"

enum { FL_SEG, FL_INTERNAL, FL_META, FL_DEFAULT, FL_HEAP, FL_N };

typedef struct fuzz_leak_snap {
	size_t alloc[FL_N], span[FL_N];
	size_t tags_created;
	size_t persist_slab_bytes; /* slabs of the caches that outlive inputs */
	size_t persist_meta_sig;   /* their slab and magazine counts */
} fuzz_leak_snap_t;

static fuzz_leak_snap_t fuzz_leak_before;

static inline vmem_t *fuzz_leak_arena(int i)
{
	switch (i) {
	case FL_SEG: return vmem_seg_arena;
	case FL_INTERNAL: return vmem_internal_arena;
	case FL_META: return umem_meta_arena;
	case FL_DEFAULT: return umem_default;
	default: return vmem_heap_arena();
	}
}

static const char *const fuzz_leak_names[FL_N] = {"vmem_seg",
    "vmem_internal", "umem_meta", "umem_default", "vmem_heap"};

static inline void fuzz_leak_take(fuzz_leak_snap_t *s)
{
	(void)umem_default_arena(); /* the bootstrap */
	for (int i = 0; i < FL_N; i++) {
		vmem_t *vmp = fuzz_leak_arena(i);
		s->alloc[i] = vmem_size(vmp, VMEM_ALLOC);
		s->span[i] = vmem_size(vmp, VMEM_SPAN);
	}
	vmem_tag_census_t c;
	vmem_tag_census(&c);
	s->tags_created = c.created;
	s->persist_slab_bytes = 0;
	s->persist_meta_sig = 0;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		s->persist_slab_bytes += st.us_slabs * st.us_slab_bytes;
		size_t chunks = 0, mags = 0;
		for (size_t ci = 0; ci < UMEM_SLOT_CHUNKS; ci++) {
			umem_slot_chunk_t *ch = atomic_load(&cp->cc_slotdir[ci]);
			if (ch == NULL)
				continue;
			chunks++;
			for (size_t k = 0; k < UMEM_SLOTS_PER_CHUNK; k++)
				mags += (ch->sc_slot[k].sl_loaded != NULL) +
				    (ch->sc_slot[k].sl_prev != NULL);
		}
		s->persist_meta_sig = s->persist_meta_sig * 31u + st.us_slabs *
		    7u + st.us_mags_full * 3u + st.us_mags_empty +
		    chunks * 1009u + mags * 101u;
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

/* The start of an input (after the bootstrap). */
static inline void fuzz_leak_begin(void)
{
	fuzz_leak_take(&fuzz_leak_before);
}

/* The end of an input: its arenas and caches destroyed, quiesced. */
static inline void fuzz_leak_check(void)
{
	fuzz_leak_snap_t a;
	const fuzz_leak_snap_t *b = &fuzz_leak_before;
	fuzz_leak_take(&a);
	size_t per = VMEM_POPULATE_BYTES / sizeof(vmem_seg_t);
	size_t made = a.tags_created - b->tags_created;
	if (made % per != 0)
		fuzz_fail("leak: %zu tags created during the input, not a "
		    "whole number of populates of %zu", made, per);
	size_t want[FL_N];
	long dspan[FL_N];
	for (int i = 0; i < FL_N; i++)
		dspan[i] = (long)(a.span[i] - b->span[i]);
	want[FL_SEG] = b->alloc[FL_SEG] + made / per * VMEM_POPULATE_BYTES;
	want[FL_INTERNAL] = b->alloc[FL_INTERNAL] + (size_t)dspan[FL_SEG];
	want[FL_DEFAULT] = b->alloc[FL_DEFAULT] + a.persist_slab_bytes -
	    b->persist_slab_bytes;
	want[FL_META] = b->alloc[FL_META];
	want[FL_HEAP] = b->alloc[FL_HEAP] + (size_t)dspan[FL_INTERNAL] +
	    (size_t)dspan[FL_META] + (size_t)dspan[FL_DEFAULT];
	bool meta_free = a.persist_meta_sig != b->persist_meta_sig;
	for (int i = 0; i < FL_N; i++) {
		if (a.alloc[i] == want[i] || (i == FL_META && meta_free))
			continue;
		fuzz_fail("leak: after the input's teardown, internal arena %s "
		    "holds 0x%zx allocated bytes; before the input 0x%zx, and "
		    "all it may keep is 0x%zx (%s)", fuzz_leak_names[i],
		    a.alloc[i], b->alloc[i], want[i],
		    i == FL_SEG ? "whole tag populates" :
		    i == FL_INTERNAL ? "the tag arena's imports" :
		    i == FL_DEFAULT ? "the persistent caches' slabs" :
		    i == FL_HEAP ? "its children's imports" : "nothing");
	}
}

/*
 * A state the generators reach on purpose: a tag populate inside a call,
 * under whatever mtbf is set.  Populates happen when the global tag list
 * runs dry, which depends on the process's history, so an input cannot
 * count on its own allocations to cause one.  This spends tags, from the
 * census, until one happens: a private identifier arena, one-quantum
 * allocations (each costs a tag) until the census has created more tags
 * (at most FUZZ_SPEND_MAX calls), then everything freed and the arena
 * destroyed.  VM_SLEEP calls must return and not be NULL (the watchdog
 * bounds them); a NOSLEEP NULL is excused only by an injection the clock
 * could fire (m, fuzz_mtbf_arm) and ends the spending.
 */
#define FUZZ_SPEND_MAX 8192

static uintptr_t fuzz_spend_buf[FUZZ_SPEND_MAX];

static inline void fuzz_spend_tags(int policy, bool sleep, uint64_t m)
{
	vmem_tag_census_t c0, c;
	vmem_tag_census(&c0);
	fuzz_step("spend tags until a populate (%zu on the global list) with "
	    "%s allocations, mtbf %lu", c0.global_free, sleep ? "SLEEP" :
	    "NOSLEEP", (unsigned long)m);
	vmem_t *vmp = vmem_create("fz_tags", (void *)(uintptr_t)0x10000000u,
	    FUZZ_SPEND_MAX, 1, NULL, NULL, NULL, 0, VMC_IDENTIFIER | VM_SLEEP);
	if (vmp == NULL)
		fuzz_fail("vmem_create(\"fz_tags\", VM_SLEEP) returned NULL");
	unsigned n = 0;
	for (; n < FUZZ_SPEND_MAX; n++) {
		fuzz_mtbf_arm(m);
		void *p = vmem_alloc(vmp, 1, policy |
		    (sleep ? VM_SLEEP : VM_NOSLEEP));
		if (p == NULL) {
			if (sleep)
				fuzz_fail("fz_tags: VM_SLEEP allocation %u returned "
				    "NULL", n);
			if (m == 0 || !fuzz_mtbf_fired())
				fuzz_fail("fz_tags: NOSLEEP allocation %u of 1 "
				    "failed with %u of %u free, no injection "
				    "possible", n, FUZZ_SPEND_MAX - n,
				    FUZZ_SPEND_MAX);
			break;
		}
		fuzz_spend_buf[n] = (uintptr_t)p;
		vmem_tag_census(&c);
		if (c.created != c0.created) {
			n++;
			break;
		}
	}
	fuzz_mtbf_arm(0);
	fuzz_step("spent: %u allocations", n);
	while (n > 0)
		vmem_free(vmp, (void *)fuzz_spend_buf[--n], 1);
	vmem_destroy(vmp);
}

#endif /* QUANTA_FUZZ_LEAK_H */
