/*
 * quanta — tests/test_umem_qcache.c: quantum caches and deferred reaps.
 *
 * A quantum cache's "buffers" are ranges of its arena, which may be no
 * memory at all: the arenas here span unmapped integers, so a cache that
 * touched one would crash.  The tests that go through vmem_alloc need the
 * arena side (vmem.c creating the caches and routing to them); they are
 * compiled once vmem_impl.h defines VMEM_QCACHE_WIRED.  One of them runs
 * threads through the caches while a reap runs beside them.
 */
#include "qtest.h"

#include <pthread.h>
#include <stdatomic.h>

#include "umem.h"
#include "umem_impl.h"

#define ID_BASE ((uintptr_t)0x7000000000ull) /* not mapped */
#define ID_SPAN ((size_t)1 << 24)
#define Q 16u

static vmem_t *id_arena(const char *name, size_t qcache_max, int flags)
{
	vmem_t *vmp = vmem_create(name, (void *)ID_BASE, ID_SPAN, Q, NULL, NULL,
	    NULL, qcache_max, flags | VMC_IDENTIFIER);
	QT_TRUE(vmp != NULL);
	return vmp;
}

typedef struct seg_list {
	uintptr_t start[64];
	size_t size[64];
	int n;
} seg_list_t;

static void collect(void *arg, void *start, size_t size)
{
	seg_list_t *l = arg;
	if (l->n < 64) {
		l->start[l->n] = (uintptr_t)start;
		l->size[l->n] = size;
	}
	l->n++;
}

QTEST(a_quantum_cache_serves_distinct_ranges_without_touching_them)
{
	vmem_t *vmp = id_arena("qc_ids", 0, VMC_NO_QCACHE);
	umem_cache_t *cp = umem_qcache_create(vmp, 3 * Q);
	QT_TRUE(cp != NULL);
	QT_TRUE(strcmp(umem_cache_name(cp), "qc_ids_48") == 0);
	enum { N = 1000 };
	static uintptr_t a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (uintptr_t)umem_qcache_alloc(cp, VM_NOSLEEP);
		QT_TRUE(a[i] >= ID_BASE && a[i] + 3 * Q <= ID_BASE + ID_SPAN);
		QT_EQ(a[i] % Q, 0);
		for (int j = 0; j < i; j++)
			QT_TRUE(a[j] + 3 * Q <= a[i] || a[i] + 3 * Q <= a[j]);
	}
	/* Each slab is one allocated piece of the arena, slab-aligned. */
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	seg_list_t segs = {.n = 0};
	vmem_walk(vmp, VMEM_ALLOC, collect, &segs);
	QT_EQ((size_t)segs.n, st.us_slabs);
	for (int i = 0; i < segs.n && i < 64; i++) {
		QT_EQ(segs.size[i], st.us_slab_bytes);
		QT_EQ(segs.start[i] % st.us_slab_bytes, 0);
	}
	for (int i = 0; i < N; i++)
		umem_qcache_free(cp, (void *)a[i], 3 * Q);
	umem_qcache_destroy(cp);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0);
	vmem_destroy(vmp);
}

QTEST(quantum_caches_of_one_arena_share_one_slab_size)
{
	vmem_t *vmp = vmem_create("qc_slab", (void *)ID_BASE, ID_SPAN, Q, NULL,
	    NULL, NULL, 8 * Q, VMC_IDENTIFIER | VMC_NO_QCACHE);
	/* VMC_NO_QCACHE zeroes qcache_max: the size is then 8 buffers. */
	QT_EQ(umem_qcache_slab_bytes(vmp), Q);
	vmp->ar_qcache_max = 8 * Q;
	QT_EQ(umem_qcache_slab_bytes(vmp), 32 * Q); /* >= 3 x 8 quanta */
	umem_cache_t *c1 = umem_qcache_create(vmp, Q);
	umem_cache_t *c8 = umem_qcache_create(vmp, 8 * Q);
	umem_cache_stats_t s1, s8;
	umem_cache_stats(c1, &s1);
	umem_cache_stats(c8, &s8);
	QT_EQ(s1.us_slab_bytes, 32 * Q);
	QT_EQ(s8.us_slab_bytes, 32 * Q);
	umem_qcache_destroy(c1);
	umem_qcache_destroy(c8);
	vmp->ar_qcache_max = 0;
	vmem_destroy(vmp);
}

QTEST(reap_gives_a_quantum_caches_slabs_back_to_its_arena)
{
	vmem_t *vmp = id_arena("qc_reap", 0, VMC_NO_QCACHE);
	umem_cache_t *cp = umem_qcache_create(vmp, Q);
	void *v[500];
	for (int i = 0; i < 500; i++)
		v[i] = umem_qcache_alloc(cp, VM_SLEEP);
	for (int i = 0; i < 500; i++)
		umem_qcache_free(cp, v[i], Q);
	QT_TRUE(vmem_size(vmp, VMEM_ALLOC) > 0);
	umem_thread_flush_self();
	umem_reap();
	umem_reap();
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0);
	/* And it serves again. */
	void *a = umem_qcache_alloc(cp, VM_NOSLEEP);
	QT_TRUE(a != NULL);
	umem_qcache_free(cp, a, Q);
	umem_qcache_destroy(cp);
	vmem_destroy(vmp);
}

/* ---- deferred reap ---------------------------------------------------------- */

static _Atomic bool fake_populating;

static bool fake_probe(void)
{
	return atomic_load(&fake_populating);
}

QTEST(a_reap_requested_during_a_populate_waits_until_the_populate_ends)
{
	umem_cache_t *cp = umem_cache_create("deferred", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	void *v[300];
	for (int i = 0; i < 300; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (int i = 0; i < 300; i++)
		umem_cache_free(cp, v[i]);
	umem_thread_flush_self();
	umem_reap();
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	QT_TRUE(st.us_mags_full > 0);
	uint64_t reaps = atomic_load(&umem_reap_count);

	umem_populate_probe = fake_probe;
	atomic_store(&fake_populating, true);
	umem_reap_request();
	QT_TRUE(umem_reap_pending());
	QT_EQ(atomic_load(&umem_reap_count), reaps);
	umem_cache_stats(cp, &st);
	QT_TRUE(st.us_mags_full > 0);
	/* Still populating: the pending reap must not run. */
	umem_reap_pending_run();
	QT_EQ(atomic_load(&umem_reap_count), reaps);
	/* The populate lock is dropped: now it runs, once. */
	atomic_store(&fake_populating, false);
	umem_reap_pending_run();
	QT_TRUE(!umem_reap_pending());
	QT_EQ(atomic_load(&umem_reap_count), reaps + 1);
	umem_cache_stats(cp, &st);
	QT_EQ(st.us_mags_full, 0);
	QT_EQ(st.us_slabs, 0);
	umem_reap_pending_run();
	QT_EQ(atomic_load(&umem_reap_count), reaps + 1);
	umem_populate_probe = vmem_populate_in_progress;
	umem_cache_destroy(cp);
}

QTEST(a_deferred_reap_also_runs_from_the_next_allocation_slow_path)
{
	umem_cache_t *cp = umem_cache_create("deferred2", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	uint64_t reaps = atomic_load(&umem_reap_count);
	umem_populate_probe = fake_probe;
	atomic_store(&fake_populating, true);
	umem_reap();
	QT_TRUE(umem_reap_pending());
	atomic_store(&fake_populating, false);
	void *b = umem_cache_alloc(cp, UMEM_DEFAULT); /* empty slot: slow */
	QT_TRUE(b != NULL);
	QT_EQ(atomic_load(&umem_reap_count), reaps + 1);
	QT_TRUE(!umem_reap_pending());
	umem_cache_free(cp, b);
	umem_populate_probe = vmem_populate_in_progress;
	umem_cache_destroy(cp);
}

/* ---- through vmem_alloc (needs the arena side) ------------------------------ */
#ifdef VMEM_QCACHE_WIRED

QTEST(vmem_alloc_of_small_sizes_goes_through_the_quantum_caches)
{
	vmem_t *vmp = id_arena("qc_vmem", 8 * Q, 0);
	void *a[8];
	for (size_t k = 1; k <= 8; k++) {
		a[k - 1] = vmem_alloc(vmp, k * Q, VM_NOSLEEP);
		QT_TRUE(a[k - 1] != NULL);
	}
	/* The arena holds slabs, not 8 pieces of 1..8 quanta. */
	seg_list_t segs = {.n = 0};
	vmem_walk(vmp, VMEM_ALLOC, collect, &segs);
	for (int i = 0; i < segs.n && i < 64; i++)
		QT_EQ(segs.size[i], umem_qcache_slab_bytes(vmp));
	for (size_t k = 1; k <= 8; k++)
		vmem_free(vmp, a[k - 1], k * Q);
	/* vmem_xalloc never does: its piece is exactly what was asked. */
	void *x = vmem_xalloc(vmp, 2 * Q, 0, 0, 0, NULL, NULL, VM_NOSLEEP);
	segs.n = 0;
	vmem_walk(vmp, VMEM_ALLOC, collect, &segs);
	int exact = 0;
	for (int i = 0; i < segs.n && i < 64; i++)
		exact += segs.start[i] == (uintptr_t)x && segs.size[i] == 2 * Q;
	QT_EQ(exact, 1);
	vmem_xfree(vmp, x, 2 * Q);
	vmem_destroy(vmp);
}

QTEST(vmc_no_qcache_turns_the_quantum_caches_off)
{
	vmem_t *vmp = id_arena("qc_off", 8 * Q, VMC_NO_QCACHE);
	void *a = vmem_alloc(vmp, 2 * Q, VM_NOSLEEP);
	seg_list_t segs = {.n = 0};
	vmem_walk(vmp, VMEM_ALLOC, collect, &segs);
	QT_EQ(segs.n, 1);
	QT_EQ(segs.size[0], 2 * Q);
	vmem_free(vmp, a, 2 * Q);
	vmem_destroy(vmp);
}

/*
 * Threads allocating and freeing 1..8 quanta through vmem_alloc (so through
 * the quantum caches' lock-free release fast path) while the main thread
 * reaps until they are done: each thread claims every quantum of a range it
 * gets with a CAS in a table of owners, so a range handed to two threads at
 * once is seen.  ci/check runs it under ThreadSanitizer over release's code.
 */
#define QTH_THREADS 4
#define QTH_OPS 20000
#define QTH_LIVE 32

typedef struct qth_arg {
	vmem_t *vmp;
	_Atomic unsigned char *owner; /* one per quantum of ID_SPAN */
	unsigned char self;           /* 1..QTH_THREADS */
	int errors;
	_Atomic int *done;
} qth_arg_t;

static void qth_claim(qth_arg_t *a, uintptr_t p, size_t q, unsigned char from,
    unsigned char to)
{
	size_t first = (p - ID_BASE) / Q;
	for (size_t i = 0; i < q; i++) {
		unsigned char expect = from;
		if (!atomic_compare_exchange_strong(&a->owner[first + i], &expect,
		    to))
			a->errors++;
	}
}

static void *qth_main(void *arg)
{
	qth_arg_t *a = arg;
	uintptr_t held[QTH_LIVE] = {0};
	size_t q[QTH_LIVE] = {0};
	uint64_t x = 0x9e3779b97f4a7c15ull * a->self;
	for (int op = 0; op < QTH_OPS; op++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int k = (int)(x % QTH_LIVE);
		if (held[k] == 0) {
			q[k] = 1 + (size_t)(x >> 32) % 8;
			held[k] = (uintptr_t)vmem_alloc(a->vmp, q[k] * Q,
			    VM_NOSLEEP);
			if (held[k] == 0) {
				a->errors++;
				continue;
			}
			qth_claim(a, held[k], q[k], 0, a->self);
		} else {
			qth_claim(a, held[k], q[k], a->self, 0);
			vmem_free(a->vmp, (void *)held[k], q[k] * Q);
			held[k] = 0;
		}
	}
	for (int k = 0; k < QTH_LIVE; k++) {
		if (held[k] != 0) {
			qth_claim(a, held[k], q[k], a->self, 0);
			vmem_free(a->vmp, (void *)held[k], q[k] * Q);
		}
	}
	atomic_fetch_add(a->done, 1);
	return NULL;
}

QTEST(threads_sharing_the_quantum_caches_with_a_reap_never_share_a_range)
{
	static _Atomic unsigned char owner[ID_SPAN / Q];
	vmem_t *vmp = id_arena("qc_threads", 8 * Q, 0);
	pthread_t t[QTH_THREADS];
	qth_arg_t args[QTH_THREADS];
	_Atomic int done = 0;
	for (int i = 0; i < QTH_THREADS; i++) {
		args[i] = (qth_arg_t){vmp, owner, (unsigned char)(i + 1), 0, &done};
		QT_EQ(pthread_create(&t[i], NULL, qth_main, &args[i]), 0);
	}
	while (atomic_load(&done) < QTH_THREADS)
		umem_reap();
	for (int i = 0; i < QTH_THREADS; i++) {
		QT_EQ(pthread_join(t[i], NULL), 0);
		QT_EQ(args[i].errors, 0);
	}
	vmem_destroy(vmp);
}

#endif /* VMEM_QCACHE_WIRED */

QTEST_MAIN()
