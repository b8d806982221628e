/*
 * quanta — tests/test_umem_threads.c: per-thread slots and the depot.
 * Several threads sharing a cache never get one object at once, even with
 * a reap running beside them; two live
 * threads never share a slot; an exiting thread's magazines go back to the
 * depot; the magazine size grows when the depot lock is contended.
 * White-box (umem_impl.h) where the public API cannot show the fact.
 */
#include "qtest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "umem.h"
#include "umem_impl.h"

#define MT_THREADS 4
#define MT_OPS 200000
#define MT_LIVE 64

typedef struct mt_arg {
	umem_cache_t *cp;
	int self;           /* 1..MT_THREADS */
	int ops;            /* allocations and frees, all told */
	_Atomic int failed;
} mt_arg_t;

/* Each object carries an owner word: a thread claims it with a CAS from 0
 * and gives it back before freeing it.  A CAS that finds another owner is
 * an object handed to two owners at once. */
static void *mt_main(void *p)
{
	mt_arg_t *a = p;
	_Atomic int *live[MT_LIVE] = {0};
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)a->self;
	for (int op = 0; op < a->ops; op++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		int k = (int)(x % MT_LIVE);
		if (live[k] == NULL) {
			_Atomic int *o = umem_cache_alloc(a->cp, UMEM_DEFAULT);
			int expected = 0;
			if (o == NULL || !atomic_compare_exchange_strong(o,
			    &expected, a->self)) {
				atomic_store(&a->failed, 1);
				return NULL;
			}
			live[k] = o;
		} else {
			int expected = a->self;
			if (!atomic_compare_exchange_strong(live[k], &expected,
			    0)) {
				atomic_store(&a->failed, 2);
				return NULL;
			}
			umem_cache_free(a->cp, (void *)live[k]);
			live[k] = NULL;
		}
	}
	for (int k = 0; k < MT_LIVE; k++) {
		if (live[k] != NULL) {
			atomic_store(live[k], 0);
			umem_cache_free(a->cp, (void *)live[k]);
		}
	}
	return NULL;
}

static int zero_ctor(void *buf, void *priv, int flags)
{
	(void)priv;
	(void)flags;
	atomic_store((_Atomic int *)buf, 0);
	return 0;
}

QTEST(threads_sharing_a_cache_never_hand_one_object_to_two_owners)
{
	umem_cache_t *cp = umem_cache_create("mt", 48, 0, zero_ctor, NULL,
	    NULL, NULL, NULL, 0);
	pthread_t t[MT_THREADS];
	mt_arg_t args[MT_THREADS];
	for (int i = 0; i < MT_THREADS; i++) {
		args[i].cp = cp;
		args[i].self = i + 1;
		args[i].ops = MT_OPS;
		atomic_store(&args[i].failed, 0);
		QT_EQ(pthread_create(&t[i], NULL, mt_main, &args[i]), 0);
	}
	for (int i = 0; i < MT_THREADS; i++) {
		QT_EQ(pthread_join(t[i], NULL), 0);
		QT_EQ(atomic_load(&args[i].failed), 0);
	}
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	/* Every thread exited: all buffers are in slabs or depot magazines. */
	QT_EQ(st.us_bufs_total, st.us_bufs_slab_free + st.us_bufs_depot);
	umem_cache_destroy(cp);
}

/* The same threads while the main thread reaps every cache and reads the
 * cache's statistics until they are done: the reap empties the depot and
 * gives slabs back under the fast paths' feet (the release fast path takes
 * no lock; ci/check runs this under ThreadSanitizer over release's code). */
typedef struct mt_done_arg {
	mt_arg_t mt;
	_Atomic int *done;
} mt_done_arg_t;

static void *mt_done_main(void *p)
{
	mt_done_arg_t *a = p;
	(void)mt_main(&a->mt);
	atomic_fetch_add(a->done, 1);
	return NULL;
}

QTEST(a_reap_beside_threads_sharing_a_cache_hands_no_object_to_two_owners)
{
	umem_cache_t *cp = umem_cache_create("mt-reap", 48, 0, zero_ctor, NULL,
	    NULL, NULL, NULL, 0);
	pthread_t t[MT_THREADS];
	mt_done_arg_t args[MT_THREADS];
	_Atomic int done = 0;
	for (int i = 0; i < MT_THREADS; i++) {
		args[i].mt.cp = cp;
		args[i].mt.self = i + 1;
		args[i].mt.ops = MT_OPS / 4; /* the overlap counts, not the volume */
		atomic_store(&args[i].mt.failed, 0);
		args[i].done = &done;
		QT_EQ(pthread_create(&t[i], NULL, mt_done_main, &args[i]), 0);
	}
	umem_cache_stats_t st;
	while (atomic_load(&done) < MT_THREADS) {
		umem_reap();
		umem_cache_stats(cp, &st);
	}
	for (int i = 0; i < MT_THREADS; i++) {
		QT_EQ(pthread_join(t[i], NULL), 0);
		QT_EQ(atomic_load(&args[i].mt.failed), 0);
	}
	umem_cache_stats(cp, &st);
	QT_EQ(st.us_bufs_total, st.us_bufs_slab_free + st.us_bufs_depot);
	umem_cache_destroy(cp);
}

/* ---- slots ----------------------------------------------------------------- */

typedef struct slot_probe {
	umem_cache_t *cp;
	umem_slot_t *slot;
	uintptr_t id;
	pthread_barrier_t *both_alive;
} slot_probe_t;

static void *slot_main(void *p)
{
	slot_probe_t *s = p;
	void *b = umem_cache_alloc(s->cp, UMEM_DEFAULT);
	umem_cache_free(s->cp, b);
	s->slot = umem_slot_find(s->cp);
	s->id = umem_thread_id();
	(void)pthread_barrier_wait(s->both_alive);
	return NULL;
}

QTEST(two_live_threads_never_share_a_slot)
{
	umem_cache_t *cp = umem_cache_create("slots", 32, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	enum { N = 8 };
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, N);
	pthread_t t[N];
	slot_probe_t s[N];
	for (int i = 0; i < N; i++) {
		s[i] = (slot_probe_t){cp, NULL, 0, &bar};
		QT_EQ(pthread_create(&t[i], NULL, slot_main, &s[i]), 0);
	}
	for (int i = 0; i < N; i++)
		QT_EQ(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < N; i++) {
		QT_TRUE(s[i].slot != NULL && s[i].id != 0);
		for (int j = i + 1; j < N; j++) {
			QT_TRUE(s[i].slot != s[j].slot);
			QT_TRUE(s[i].id != s[j].id);
			/* Not even one cache line apart. */
			QT_TRUE((uintptr_t)s[i].slot / UMEM_CACHE_LINE !=
			    (uintptr_t)s[j].slot / UMEM_CACHE_LINE);
		}
	}
	pthread_barrier_destroy(&bar);
	umem_cache_destroy(cp);
}

static void *hold_main(void *p)
{
	umem_cache_t *cp = p;
	void *v[100];
	for (int i = 0; i < 100; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	for (int i = 0; i < 100; i++)
		umem_cache_free(cp, v[i]);
	umem_slot_t *sl = umem_slot_find(cp);
	QT_TRUE(sl->sl_rounds + sl->sl_prounds > 0);
	return NULL;
}

QTEST(an_exiting_thread_gives_its_magazines_back_to_the_depot)
{
	umem_cache_t *cp = umem_cache_create("exit", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, hold_main, cp), 0);
	QT_EQ(pthread_join(t, NULL), 0);
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	/* 100 buffers: whole magazines in the depot, the rest in slabs; none
	 * left in the dead thread's slot. */
	QT_EQ(st.us_bufs_slab_free + st.us_bufs_depot, st.us_bufs_total);
	QT_TRUE(st.us_bufs_depot >= 100 - st.us_magsize);
	umem_cache_destroy(cp);
}

QTEST(a_thread_id_is_reused_after_its_thread_exits)
{
	umem_cache_t *cp = umem_cache_create("ids", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	slot_probe_t a, b;
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 1);
	pthread_t t;
	a = (slot_probe_t){cp, NULL, 0, &bar};
	QT_EQ(pthread_create(&t, NULL, slot_main, &a), 0);
	QT_EQ(pthread_join(t, NULL), 0);
	b = (slot_probe_t){cp, NULL, 0, &bar};
	QT_EQ(pthread_create(&t, NULL, slot_main, &b), 0);
	QT_EQ(pthread_join(t, NULL), 0);
	QT_EQ(a.id, b.id);
	QT_PTR_EQ(a.slot, b.slot);
	pthread_barrier_destroy(&bar);
	umem_cache_destroy(cp);
}

/* ---- magazine size --------------------------------------------------------- */

QTEST(the_magazine_size_grows_when_the_depot_lock_is_contended)
{
	umem_cache_t *cp = umem_cache_create("grow", 64, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	uint32_t m0 = atomic_load(&cp->cc_magsize);
	QT_EQ(m0, 15);
	/* Uncontended depot traffic: no growth. */
	void *v[4000];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 4000; i++)
			v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		for (int i = 0; i < 4000; i++)
			umem_cache_free(cp, v[i]);
	}
	QT_TRUE(cp->cc_depot_ops > UMEM_DEPOT_WINDOW_OPS);
	QT_EQ(atomic_load(&cp->cc_magsize), m0);
	/* A window in which every acquisition waited (as if it had). */
	plat_mutex_lock(cp->cc_depot_lock);
	cp->cc_window_contended = UMEM_DEPOT_WINDOW_OPS;
	cp->cc_window_ops = UMEM_DEPOT_WINDOW_OPS - 1;
	plat_mutex_unlock(cp->cc_depot_lock);
	for (int i = 0; i < 4000; i++)
		v[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_EQ(atomic_load(&cp->cc_magsize), 31);
	for (int i = 0; i < 4000; i++)
		umem_cache_free(cp, v[i]);
	/* The depot now holds only magazines of the new size. */
	plat_mutex_lock(cp->cc_depot_lock);
	for (umem_mag_t *m = cp->cc_full.ml_head; m != NULL; m = m->mg_next)
		QT_EQ(m->mg_cap, 31);
	plat_mutex_unlock(cp->cc_depot_lock);
	umem_cache_destroy(cp);
}

/* ---- depot contention ------------------------------------------------------ */

typedef struct waiter {
	umem_cache_t *cp;
	pthread_barrier_t *tid_known;
	long tid;
	void *buf;
} waiter_t;

static void *waiter_main(void *p)
{
	waiter_t *w = p;
	w->tid = (long)syscall(SYS_gettid);
	(void)pthread_barrier_wait(w->tid_known);
	/* A fresh slot: the first allocation goes to the depot. */
	w->buf = umem_cache_alloc(w->cp, UMEM_DEFAULT);
	return NULL;
}

/* True once thread tid sleeps in a futex wait on the word at addr (the
 * kernel's view: /proc/self/task/<tid>/syscall is "<nr> <arg1> ..."). */
static bool waits_on_futex(long tid, const void *addr)
{
	char path[64], line[256];
	(void)snprintf(path, sizeof(path), "/proc/self/task/%ld/syscall", tid);
	FILE *fp = fopen(path, "r");
	QT_TRUE(fp != NULL);
	bool got = fgets(line, sizeof(line), fp) != NULL;
	fclose(fp);
	if (!got)
		return false;
	char *end;
	long nr = strtol(line, &end, 10);
	if (end == line || nr != SYS_futex)
		return false;
	return (uintptr_t)strtoull(end, NULL, 16) == (uintptr_t)addr;
}

/* Another thread holds the depot lock: the depot visit of this one finds
 * it busy, waits, and is counted as contended — once. */
QTEST(a_depot_visit_that_waits_for_the_lock_is_counted_as_contended)
{
	umem_cache_t *cp = umem_cache_create("contend", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	QT_EQ(st.us_depot_contended, 0);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, 2);
	waiter_t w = {cp, &bar, 0, NULL};
	plat_mutex_lock(cp->cc_depot_lock);
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, waiter_main, &w), 0);
	(void)pthread_barrier_wait(&bar);
	/* pthread_mutex_t begins with its futex word. */
	for (int i = 0; !waits_on_futex(w.tid, cp->cc_depot_lock); i++) {
		QT_TRUE(i < 20000); /* 20 s */
		(void)usleep(1000);
	}
	plat_mutex_unlock(cp->cc_depot_lock);
	QT_EQ(pthread_join(t, NULL), 0);
	QT_TRUE(w.buf != NULL);
	umem_cache_stats(cp, &st);
	QT_EQ(st.us_depot_contended, 1);
	umem_cache_free(cp, w.buf);
	pthread_barrier_destroy(&bar);
	umem_cache_destroy(cp);
}

QTEST_MAIN()
