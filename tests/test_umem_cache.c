/*
 * quanta — tests/test_umem_cache.c: the object caches as their callers see
 * them: constructors and destructors, reuse of constructed objects, reap,
 * size classes, the nofail callback, statistics.  White-box where the
 * public API cannot show a fact (umem_impl.h: slots, depot counts).
 */
#include "qtest.h"

#include <pthread.h>
#include <stdatomic.h>

#include "umem.h"
#include "umem_impl.h"

#define OBJ_MAGIC 0x5eedf00du

typedef struct obj {
	uint32_t magic;
	uint32_t uses;
	char payload[56];
} obj_t;

static _Atomic int ctor_calls, dtor_calls;

static int obj_ctor(void *buf, void *priv, int flags)
{
	(void)flags;
	obj_t *o = buf;
	QT_PTR_EQ(priv, (void *)&ctor_calls);
	o->magic = OBJ_MAGIC;
	o->uses = 0;
	atomic_fetch_add(&ctor_calls, 1);
	return 0;
}

static void obj_dtor(void *buf, void *priv)
{
	obj_t *o = buf;
	(void)priv;
	QT_EQ(o->magic, OBJ_MAGIC);
	o->magic = 0;
	atomic_fetch_add(&dtor_calls, 1);
}

static umem_cache_t *obj_cache(const char *name)
{
	atomic_store(&ctor_calls, 0);
	atomic_store(&dtor_calls, 0);
	umem_cache_t *cp = umem_cache_create(name, sizeof(obj_t), 0, obj_ctor,
	    obj_dtor, NULL, (void *)&ctor_calls, NULL, 0);
	QT_TRUE(cp != NULL);
	return cp;
}

static umem_cache_stats_t stats_of(umem_cache_t *cp)
{
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	return st;
}

/* ---- constructors and destructors ------------------------------------------ */

QTEST(every_constructed_object_is_destroyed_at_cache_destroy)
{
	umem_cache_t *cp = obj_cache("ctor_dtor");
	void *v[500];
	for (int i = 0; i < 500; i++) {
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		QT_TRUE(v[i] != NULL);
		QT_EQ(((obj_t *)v[i])->magic, OBJ_MAGIC);
	}
	QT_EQ(atomic_load(&ctor_calls), 500);
	for (int i = 0; i < 500; i++)
		umem_cache_free(cp, v[i]);
	QT_EQ(atomic_load(&dtor_calls), 0);
	umem_cache_destroy(cp);
	QT_EQ(atomic_load(&dtor_calls), 500);
}

QTEST(constructors_run_lazily_one_per_buffer_handed_out)
{
	umem_cache_t *cp = obj_cache("lazy");
	void *a = umem_cache_alloc(cp, UMEM_DEFAULT);
	umem_cache_stats_t st = stats_of(cp);
	QT_EQ(st.us_slabs, 1);
	QT_TRUE(st.us_bufs_total > 1);
	QT_EQ(atomic_load(&ctor_calls), 1);
	QT_EQ(st.us_constructed, 1);
	umem_cache_free(cp, a);
	umem_cache_destroy(cp);
	QT_EQ(atomic_load(&dtor_calls), 1);
}

QTEST(freed_objects_are_reused_constructed_without_a_new_constructor_call)
{
	umem_cache_t *cp = obj_cache("reuse");
	obj_t *o = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(o != NULL);
	o->uses = 41;
	umem_cache_free(cp, o);
	obj_t *p = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_PTR_EQ(p, o);
	QT_EQ(p->magic, OBJ_MAGIC);
	QT_EQ(p->uses, 41);
	QT_EQ(atomic_load(&ctor_calls), 1);
	for (int round = 0; round < 1000; round++) {
		obj_t *q = umem_cache_alloc(cp, UMEM_DEFAULT);
		QT_EQ(q->magic, OBJ_MAGIC);
		umem_cache_free(cp, q);
	}
	QT_EQ(atomic_load(&ctor_calls), 2);
	umem_cache_free(cp, p);
	umem_cache_destroy(cp);
	QT_EQ(atomic_load(&dtor_calls), 2);
}

static int failing_ctor(void *buf, void *priv, int flags)
{
	(void)buf;
	(void)flags;
	_Atomic int *n = priv;
	return atomic_fetch_add(n, 1) % 2 == 0 ? -1 : 0;
}

static void counting_dtor(void *buf, void *priv)
{
	(void)buf;
	(void)priv;
	atomic_fetch_add(&dtor_calls, 1);
}

QTEST(a_failing_constructor_fails_the_allocation_and_is_not_destroyed)
{
	static _Atomic int calls;
	atomic_store(&dtor_calls, 0);
	umem_cache_t *cp = umem_cache_create("ctor_fail", 64, 0, failing_ctor,
	    counting_dtor, NULL, (void *)&calls, NULL, 0);
	QT_TRUE(umem_cache_alloc(cp, UMEM_DEFAULT) == NULL);
	void *b = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(b != NULL);
	QT_EQ(stats_of(cp).us_constructed, 1);
	QT_EQ(stats_of(cp).us_alloc_fail, 1);
	umem_cache_free(cp, b);
	umem_cache_destroy(cp);
	QT_EQ(atomic_load(&dtor_calls), 1);
}

/* ---- cache destroy ----------------------------------------------------------- */

/* A slot's partly filled magazine (2 rounds of 15) goes back at destroy:
 * its rounds to the slabs, the magazine itself to the metadata arena, as
 * does every other piece of the cache's metadata. */
QTEST(cache_destroy_gives_a_partly_filled_magazine_back_to_the_metadata_arena)
{
	(void)umem_default_arena(); /* bootstrapped before the baseline */
	size_t meta0 = vmem_size(umem_meta_arena, VMEM_ALLOC);
	umem_cache_t *cp = umem_cache_create("part_mag", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	QT_TRUE(cp != NULL);
	void *a = umem_cache_alloc(cp, UMEM_DEFAULT);
	void *b = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(a != NULL && b != NULL);
	umem_cache_free(cp, a);
	umem_cache_free(cp, b);
	umem_slot_t *sl = umem_slot_find(cp);
	QT_TRUE(sl != NULL && sl->sl_loaded != NULL);
	QT_EQ(sl->sl_rounds, 2);
	QT_EQ(sl->sl_cap, 15);
	QT_TRUE(vmem_size(umem_meta_arena, VMEM_ALLOC) > meta0);
	umem_cache_destroy(cp);
	QT_EQ(vmem_size(umem_meta_arena, VMEM_ALLOC), meta0);
}

static void destroy_with_three_buffers_out(void *arg)
{
	(void)arg;
	umem_cache_t *cp = umem_cache_create("leaky_cache", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	void *v[5];
	for (int i = 0; i < 5; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	umem_cache_free(cp, v[0]);
	umem_cache_free(cp, v[3]);
	umem_cache_destroy(cp);
}

/* Buffers still with callers at destroy are counted and reported; those
 * freed (here into a magazine) are not. */
QTEST(cache_destroy_reports_exactly_the_buffers_still_with_callers)
{
	int status = qt_capture_stderr(destroy_with_three_buffers_out, NULL);
	QT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	QT_STR_CONTAINS(qt_last_stderr(),
	    "umem_cache_destroy(leaky_cache): leaked 3 buffers\n");
}

/* ---- reap ------------------------------------------------------------------- */

typedef struct burst {
	umem_cache_t *cp;
	int n;
} burst_t;

static void *burst_main(void *arg)
{
	burst_t *b = arg;
	void **v = umem_alloc((size_t)b->n * sizeof(void *), UMEM_NOFAIL);
	for (int i = 0; i < b->n; i++) {
		v[i] = umem_cache_alloc(b->cp, UMEM_DEFAULT);
		QT_TRUE(v[i] != NULL);
	}
	for (int i = 0; i < b->n; i++)
		umem_cache_free(b->cp, v[i]);
	umem_free(v, (size_t)b->n * sizeof(void *));
	return NULL;
}

/* A thread allocates and frees n objects, then exits: its magazines go to
 * the depot with it. */
static void burst_in_thread(umem_cache_t *cp, int n)
{
	burst_t b = {cp, n};
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, burst_main, &b), 0);
	QT_EQ(pthread_join(t, NULL), 0);
}

QTEST(reap_gives_every_slab_back_after_the_working_set_expires)
{
	umem_cache_t *cp = obj_cache("reap");
	vmem_t *arena = umem_default_arena();
	size_t before = vmem_size(arena, VMEM_ALLOC);
	burst_in_thread(cp, 4000);
	umem_cache_stats_t st = stats_of(cp);
	/* 4000 objects alive at once fill that many slabs exactly. */
	QT_EQ(st.us_slabs, (4000 + cp->cc_nbufs - 1) / cp->cc_nbufs);
	QT_EQ(st.us_bufs_total, st.us_bufs_slab_free + st.us_bufs_depot);
	QT_EQ(vmem_size(arena, VMEM_ALLOC) - before,
	    st.us_slabs * st.us_slab_bytes);
	/* First reap: the full magazines entered the depot during this
	 * interval (its minimum was 0), so they are working set. */
	umem_reap();
	QT_EQ(stats_of(cp).us_mags_full, st.us_mags_full);
	/* Second reap: nobody took one since; all go, and all slabs. */
	umem_reap();
	st = stats_of(cp);
	QT_EQ(st.us_mags_full, 0);
	QT_EQ(st.us_slabs, 0);
	QT_EQ(vmem_size(arena, VMEM_ALLOC), before);
	QT_EQ(atomic_load(&dtor_calls), 4000);
	/* Allocation works after the reap, constructing afresh. */
	obj_t *o = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(o != NULL);
	QT_EQ(o->magic, OBJ_MAGIC);
	QT_EQ(atomic_load(&ctor_calls), 4001);
	umem_cache_free(cp, o);
	umem_cache_destroy(cp);
	QT_EQ(atomic_load(&dtor_calls), 4001);
	QT_EQ(vmem_size(arena, VMEM_ALLOC), before);
}

static _Atomic int reclaim_calls;

static void count_reclaim(void *priv)
{
	QT_PTR_EQ(priv, (void *)&reclaim_calls);
	atomic_fetch_add(&reclaim_calls, 1);
}

QTEST(reap_calls_the_reclaim_callback_of_every_cache)
{
	umem_cache_t *cp = umem_cache_create("reclaim", 32, 0, NULL, NULL,
	    count_reclaim, (void *)&reclaim_calls, NULL, 0);
	umem_reap();
	QT_EQ(atomic_load(&reclaim_calls), 1);
	umem_reap();
	QT_EQ(atomic_load(&reclaim_calls), 2);
	umem_cache_destroy(cp);
}

QTEST(the_depot_keeps_magazines_that_were_used_since_the_last_reap)
{
	umem_cache_t *cp = umem_cache_create("ws", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	burst_in_thread(cp, 1000);
	size_t full = stats_of(cp).us_mags_full;
	/* 1000 frees fill 66 magazines of 15; the thread's exit sends the
	 * 10 rounds of the last one to the slabs. */
	QT_EQ(stats_of(cp).us_magsize, 15);
	QT_EQ(full, 66);
	umem_reap();
	/* Take 3 full magazines out and back: the minimum drops by 3. */
	burst_in_thread(cp, (int)(3 * stats_of(cp).us_magsize));
	umem_reap();
	/* Released: the 63 never taken (the depot's lowest count since the
	 * last reap); kept: the 3 of the working set, which the exiting
	 * thread returned full. */
	QT_EQ(stats_of(cp).us_mags_full, 3);
	umem_reap();
	QT_EQ(stats_of(cp).us_mags_full, 0);
	umem_cache_destroy(cp);
}

/* ---- size classes ----------------------------------------------------------- */

QTEST(umem_alloc_serves_every_size_with_room_and_alignment)
{
	for (size_t size = 1; size <= 20000; size += (size < 300 ? 1 : 97)) {
		unsigned char *p = umem_alloc(size, UMEM_DEFAULT);
		QT_TRUE(p != NULL);
		QT_EQ((uintptr_t)p % (size >= 16 ? 16 : 8), 0);
		p[0] = 1;
		p[size - 1] = 2;
		umem_free(p, size);
	}
	QT_TRUE(umem_alloc(0, UMEM_DEFAULT) == NULL);
	umem_free(NULL, 0);
}

QTEST(umem_zalloc_returns_zeroed_memory_even_when_reused)
{
	unsigned char *p = umem_alloc(100, UMEM_DEFAULT);
	memset(p, 0xab, 100);
	umem_free(p, 100);
	unsigned char *q = umem_zalloc(100, UMEM_DEFAULT);
	QT_PTR_EQ(q, p);
	for (int i = 0; i < 100; i++)
		QT_EQ(q[i], 0);
	umem_free(q, 100);
}

QTEST(live_buffers_of_all_classes_never_overlap)
{
	enum { N = 2000 };
	static unsigned char *p[N];
	static size_t sz[N];
	uint64_t x = 88172645463325252ull;
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sz[i] = 1 + x % 3000;
		p[i] = umem_alloc(sz[i], UMEM_DEFAULT);
		memset(p[i], i & 0xff, sz[i]);
	}
	for (int i = 0; i < N; i++) {
		QT_EQ(p[i][0], i & 0xff);
		QT_EQ(p[i][sz[i] - 1], i & 0xff);
		umem_free(p[i], sz[i]);
	}
}

/* ---- the slab layer --------------------------------------------------------- */

/* Allocate buffers until the cache holds exactly `slabs` slabs; the
 * buffers stay allocated. */
static void grow_to_slabs(umem_cache_t *cp, void **held, size_t *n,
    size_t slabs)
{
	while (stats_of(cp).us_slabs < slabs) {
		held[*n] = umem_cache_alloc(cp, UMEM_DEFAULT);
		QT_TRUE(held[*n] != NULL);
		(*n)++;
	}
	QT_EQ(stats_of(cp).us_slabs, slabs);
}

/* The slab hash starts with UMEM_SLAB_HASH_INITIAL = 16 buckets and grows
 * fourfold when a new slab makes the slabs more than twice the buckets:
 * at the 33rd slab to 64, at the 129th to 256. */
QTEST(the_slab_hash_grows_fourfold_when_slabs_outnumber_twice_its_buckets)
{
	size_t n = 0;
	umem_cache_t *cp = umem_cache_create("slab_hash", 512, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	QT_TRUE(cp != NULL);
	void **held = calloc(129 * (size_t)cp->cc_nbufs, sizeof(void *));
	QT_TRUE(held != NULL);
	QT_EQ(cp->cc_htab_mask + 1, UMEM_SLAB_HASH_INITIAL);
	grow_to_slabs(cp, held, &n, 32);
	QT_EQ(cp->cc_htab_mask + 1, 16);
	grow_to_slabs(cp, held, &n, 33);
	QT_EQ(cp->cc_htab_mask + 1, 64);
	grow_to_slabs(cp, held, &n, 128);
	QT_EQ(cp->cc_htab_mask + 1, 64);
	grow_to_slabs(cp, held, &n, 129);
	QT_EQ(cp->cc_htab_mask + 1, 256);
	for (size_t i = 0; i < n; i++)
		umem_cache_free(cp, held[i]);
	free(held);
	umem_cache_destroy(cp);
}

/* A slab's header comes from the metadata arena: when that fails (every
 * NOSLEEP allocation of it, here), the slab just taken from the cache's
 * arena goes back and the allocation returns NULL. */
QTEST(a_slab_whose_header_cannot_be_allocated_goes_back_to_the_arena)
{
	static char pages[2 * 4096] __attribute__((aligned(4096)));
	vmem_t *src = vmem_create("hdrless", pages, sizeof(pages), 4096, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	QT_TRUE(src != NULL);
	umem_cache_t *cp = umem_cache_create("hdrless", 512, 0, NULL, NULL,
	    NULL, NULL, src, 0);
	QT_TRUE(cp != NULL);
	vmem_mtbf_set(umem_meta_arena, 1);
	void *b = umem_cache_alloc(cp, UMEM_DEFAULT);
	vmem_mtbf_set(umem_meta_arena, 0);
	QT_PTR_EQ(b, NULL);
	umem_cache_stats_t st = stats_of(cp);
	QT_EQ(st.us_alloc_fail, 1);
	QT_EQ(st.us_slabs, 0);
	QT_EQ(st.us_slab_create, 0);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 0);
	/* The metadata arena works again: so does the cache. */
	b = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(b != NULL);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 4096);
	umem_cache_free(cp, b);
	umem_cache_destroy(cp);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(src);
}

/* ---- UMEM_NOFAIL ------------------------------------------------------------ */

static vmem_t *tiny;
static void *tiny_held;
static _Atomic int nofail_calls;

static int nofail_release(void)
{
	atomic_fetch_add(&nofail_calls, 1);
	if (atomic_load(&nofail_calls) == 2 && tiny_held != NULL) {
		vmem_free(tiny, tiny_held, 4096);
		tiny_held = NULL;
	}
	return UMEM_CALLBACK_RETRY;
}

static int nofail_exit(void)
{
	return UMEM_CALLBACK_EXIT(7);
}

/* A cache over a source arena of one page that is already taken. */
static umem_cache_t *starved_cache(void)
{
	static char page[8192] __attribute__((aligned(4096)));
	tiny = vmem_create("tiny", page, 4096, 4096, NULL, NULL, NULL, 0,
	    VM_SLEEP);
	tiny_held = vmem_alloc(tiny, 4096, VM_SLEEP);
	QT_TRUE(tiny_held != NULL);
	umem_cache_t *cp = umem_cache_create("starved", 512, 0, NULL, NULL,
	    NULL, NULL, tiny, 0);
	QT_TRUE(umem_cache_alloc(cp, UMEM_DEFAULT) == NULL);
	return cp;
}

QTEST(nofail_retries_as_the_callback_asks_until_memory_returns)
{
	umem_cache_t *cp = starved_cache();
	umem_nofail_callback(nofail_release);
	void *b = umem_cache_alloc(cp, UMEM_NOFAIL);
	QT_TRUE(b != NULL);
	QT_EQ(atomic_load(&nofail_calls), 2);
	umem_cache_free(cp, b);
	umem_cache_destroy(cp);
}

static void nofail_exit_body(void *arg)
{
	(void)arg;
	umem_cache_t *cp = starved_cache();
	umem_nofail_callback(nofail_exit);
	(void)umem_cache_alloc(cp, UMEM_NOFAIL);
}

QTEST(nofail_exits_with_the_status_the_callback_gives)
{
	int status = qt_capture_stderr(nofail_exit_body, NULL);
	QT_TRUE(WIFEXITED(status));
	QT_EQ(WEXITSTATUS(status), 7);
}

static void nofail_default_body(void *arg)
{
	(void)arg;
	umem_cache_t *cp = starved_cache();
	(void)umem_cache_alloc(cp, UMEM_NOFAIL);
}

QTEST(nofail_without_a_callback_is_a_diagnostic_and_abort)
{
	QT_TRUE(qt_expect_abort(nofail_default_body, NULL,
	    "umem_cache_alloc(cache \"starved\", UMEM_NOFAIL): out of memory"));
}

/*
 * umem_alloc above the largest class is vmem_alloc of umem_default, which
 * imports from the heap.  Failure injection no longer reaches a
 * UMEM_NOFAIL call (it fails the caller's VM_NOSLEEP requests only), so
 * memory is made to run out for real: a page map that refuses (test
 * builds), or a size no map can give.
 */
#define NOFAIL_BIG ((size_t)8 << 20) /* past the heap's free space: a map */

#ifndef QUANTA_RELEASE
static _Atomic int alloc_nofail_calls;

static void *map_refused(size_t size)
{
	(void)size;
	return NULL;
}

static int nofail_heal_map(void)
{
	atomic_fetch_add(&alloc_nofail_calls, 1);
	plat_pages_map_override = NULL;
	return UMEM_CALLBACK_RETRY;
}

QTEST(umem_alloc_nofail_asks_the_callback_and_retries)
{
	/* The cache layer bootstrapped first: its arenas are VM_SLEEP. */
	umem_free(umem_alloc(8, UMEM_DEFAULT), 8);
	umem_nofail_callback(nofail_heal_map);
	plat_pages_map_override = map_refused;
	QT_PTR_EQ(umem_alloc(NOFAIL_BIG, UMEM_DEFAULT), NULL);
	QT_EQ(atomic_load(&alloc_nofail_calls), 0);
	void *p = umem_alloc(NOFAIL_BIG, UMEM_NOFAIL);
	QT_TRUE(p != NULL);
	QT_EQ(atomic_load(&alloc_nofail_calls), 1);
	QT_PTR_EQ(plat_pages_map_override, NULL);
	umem_free(p, NOFAIL_BIG);
}
#endif

static void umem_alloc_nofail_default_body(void *arg)
{
	(void)arg;
	(void)umem_alloc((size_t)1 << 62, UMEM_NOFAIL);
}

QTEST(umem_alloc_nofail_without_a_callback_is_a_diagnostic_and_abort)
{
	QT_TRUE(qt_expect_abort(umem_alloc_nofail_default_body, NULL,
	    "umem_alloc(size 4611686018427387904, UMEM_NOFAIL): out of memory "
	    "and no nofail callback (attempt 0)"));
}

/*
 * UMEM_NOFAIL returns whenever memory exists, whatever mtbf is (found by
 * a user: with a global mtbf of 1 every try failed by injection and the
 * call, without a callback, aborted).  A UMEM_DEFAULT call under the same
 * mtbf still fails: injection fails the caller's own requests.
 */
QTEST(umem_nofail_calls_return_under_a_global_mtbf_of_one)
{
	umem_cache_t *cp = umem_cache_create("nofail_mtbf", 96, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	QT_TRUE(cp != NULL);
	vmem_mtbf_set(NULL, 1);
	QT_PTR_EQ(umem_cache_alloc(cp, UMEM_DEFAULT), NULL);
	QT_PTR_EQ(umem_alloc(NOFAIL_BIG, UMEM_DEFAULT), NULL);
	void *held[512];
	for (size_t i = 0; i < 512; i++) {
		held[i] = umem_cache_alloc(cp, UMEM_NOFAIL);
		QT_TRUE(held[i] != NULL);
		memset(held[i], (int)i, 96);
	}
	void *big = umem_alloc(NOFAIL_BIG, UMEM_NOFAIL);
	QT_TRUE(big != NULL);
	void *small = umem_zalloc(40, UMEM_NOFAIL);
	QT_TRUE(small != NULL);
	vmem_mtbf_set(NULL, 0);
	for (size_t i = 0; i < 512; i++)
		umem_cache_free(cp, held[i]);
	umem_free(big, NOFAIL_BIG);
	umem_free(small, 40);
	umem_cache_destroy(cp);
}

QTEST_MAIN()
