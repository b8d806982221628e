/*
 * quanta — tests/test_umem_check.c: the checker's object-cache invariants
 * Q1, Q2, Q3 (invariants/umem_check.c).  A clean cache has no violation;
 * each corruption below breaks one invariant on purpose and the checker
 * must report exactly that code.  The checker is linked into every variant
 * but release; there this file holds no test (it prints "0 passed").
 */
#include "qtest.h"

#include "umem.h"
#include "umem_impl.h"

#ifdef QUANTA_CHECKER

#define VMAX 16

static umem_violation_t viol[VMAX];

static size_t check(umem_cache_t *cp)
{
	memset(viol, 0, sizeof(viol));
	return invariant_umem_cache(cp, viol, VMAX);
}

/* Exactly n violations, all of code. */
static void expect_only(size_t n, size_t got, const char *code)
{
	QT_EQ(got, n);
	for (size_t i = 0; i < got && i < VMAX; i++)
		QT_STR_CONTAINS(viol[i].uv_code, code);
}

/* A cache in every state at once: buffers with callers, in the slot's
 * magazines, in the depot, free in slabs, and a fully free slab. */
static umem_cache_t *busy_cache(const char *name, void **held, int nheld)
{
	umem_cache_t *cp = umem_cache_create(name, 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	void *v[600];
	for (int i = 0; i < 600; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (int i = nheld; i < 600; i++)
		umem_cache_free(cp, v[i]);
	for (int i = 0; i < nheld; i++)
		held[i] = v[i];
	return cp;
}

QTEST(a_cache_in_every_state_has_no_violation)
{
	void *held[10];
	umem_cache_t *cp = busy_cache("q_clean", held, 10);
	QT_EQ(check(cp), 0);
	umem_thread_flush_self();
	QT_EQ(check(cp), 0);
	umem_reap();
	umem_reap();
	QT_EQ(check(cp), 0);
	for (int i = 0; i < 10; i++)
		umem_cache_free(cp, held[i]);
	QT_EQ(check(cp), 0);
	umem_cache_destroy(cp);
}

QTEST(q1_a_buffer_in_two_magazine_places_is_reported)
{
	void *held[2];
	umem_cache_t *cp = busy_cache("q1_dup", held, 2);
	umem_slot_t *sl = umem_slot_find(cp);
	QT_TRUE(sl->sl_rounds >= 2);
	/* Round 1 becomes a copy of round 0: one buffer twice, one lost. */
	sl->sl_loaded->mg_round[1] = sl->sl_loaded->mg_round[0];
	size_t n = check(cp);
	QT_TRUE(n >= 1);
	expect_only(n, n, "Q1");
	QT_STR_CONTAINS(viol[0].uv_what, "two magazine places");
}

QTEST(q1_a_round_that_is_also_free_in_its_slab_is_reported)
{
	void *held[1];
	umem_cache_t *cp = busy_cache("q1_free", held, 1);
	umem_slot_t *sl = umem_slot_find(cp);
	/* The caller's buffer shows up in a magazine as well. */
	sl->sl_loaded->mg_round[sl->sl_rounds - 1] = held[0];
	size_t n = check(cp);
	QT_TRUE(n >= 1);
	expect_only(n, n, "Q1");
}

QTEST(q1_counts_that_disagree_are_reported)
{
	void *held[3];
	umem_cache_t *cp = busy_cache("q1_count", held, 3);
	umem_slot_find(cp)->sl_to_caller++;
	size_t n = check(cp);
	QT_TRUE(n >= 1);
	expect_only(n, n, "Q1");
}

QTEST(q2_a_slab_free_count_that_disagrees_with_its_map_is_reported)
{
	void *held[3];
	umem_cache_t *cp = busy_cache("q2_count", held, 3);
	QT_TRUE(cp->cc_partial != NULL);
	cp->cc_partial->sb_nfree--;
	expect_only(1, check(cp), "Q2");
	QT_STR_CONTAINS(viol[0].uv_what, "free map");
}

QTEST(q2_a_fully_free_slab_off_the_free_list_is_reported)
{
	void *held[1];
	umem_cache_t *cp = busy_cache("q2_list", held, 1);
	umem_thread_flush_self();
	umem_reap();
	umem_reap();
	umem_cache_free(cp, held[0]);
	umem_thread_flush_self();
	umem_reap();
	umem_reap();
	/* All free and given back; make one fully free slab by hand. */
	void *b = umem_cache_alloc(cp, UMEM_DEFAULT);
	umem_cache_free(cp, b);
	umem_thread_flush_self();
	umem_reap();
	umem_reap();
	b = umem_cache_alloc(cp, UMEM_DEFAULT); /* one slab, partial */
	umem_slab_t *sp = cp->cc_partial;
	QT_TRUE(sp != NULL);
	umem_cache_free(cp, b); /* into the magazine: slab stays partial */
	umem_thread_flush_self(); /* partial magazine: emptied -> free slab */
	QT_TRUE(cp->cc_freeslabs == sp);
	/* Move it onto the partial list, keeping the counts. */
	cp->cc_freeslabs = NULL;
	cp->cc_nslabs_free--;
	sp->sb_list = UMEM_SL_PARTIAL;
	cp->cc_partial = sp;
	size_t n = check(cp);
	QT_TRUE(n >= 1);
	expect_only(n, n, "Q2");
	QT_STR_CONTAINS(viol[0].uv_what, "not reclaimable");
}

QTEST(q3_a_quantum_cache_slab_the_arena_does_not_hold_is_reported)
{
	vmem_t *vmp = vmem_create("q3_ids", (void *)(uintptr_t)0x4000000, 1 << 24,
	    16, NULL, NULL, NULL, 0, VMC_IDENTIFIER);
	umem_cache_t *cp = umem_qcache_create(vmp, 32);
	void *a = umem_qcache_alloc(cp, VM_SLEEP);
	QT_EQ(check(cp), 0);
	umem_slab_t *sp = umem_slab_lookup(cp, (uintptr_t)a);
	/* The slab goes back behind the cache's back. */
	vmem_xfree(vmp, (void *)sp->sb_base, cp->cc_slab_bytes);
	expect_only(1, check(cp), "Q3");
	QT_EQ(viol[0].uv_addr, sp->sb_base);
}

#endif

QTEST_MAIN()
