/*
 * test_fork.c — the fork protocol (src/vmem_fork.c, docs/fork.md): a child
 * of a fork taken while other threads use the allocator can allocate and
 * free at once and passes the checker; the parent goes on undisturbed.
 *
 * Each scenario that needs a fork at a particular moment (inside a
 * populate, a reap, another thread's reentrant walk) is arranged with a
 * hook and an atfork handler of the test's own, never with timing: the
 * test's prepare handler runs before quanta's (handlers registered later
 * run first), so the hook can wait until a fork has begun, and quanta's
 * prepare then waits for the hook's lock.
 *
 * QUANTA_FORK_STRESS_FORKS overrides the 30 forks of the stress test; it
 * prints one line "# stress: ..." with its figures (docs/fork.md).
 * QUANTA_FORK_NO_CHILD_THREADS=1 (the tsan run: ThreadSanitizer cannot
 * start threads in the child of a multi-threaded fork) keeps children
 * single-threaded.
 */
#include "qtest.h"

#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"
#include "vmem_impl.h"
#ifdef QUANTA_CHECKER
#include "invariants.h"
#endif

extern char **environ;

#define CHURN_THREADS 8
#define CHURN_BATCH 16
#define CHILD_ROUNDS 200
#define CHILD_ALARM_S 30

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- shared arenas and caches, and threads that churn them -------------- */

struct shared {
	vmem_t *arena;        /* quantum caches up to 64 bytes, over the heap */
	vmem_t *ids;          /* an identifier arena */
	umem_cache_t *cache;  /* 96-byte buffers with magazines */
	atomic_int stop;
	atomic_long ops;
};

static struct shared S;

static void shared_init(void)
{
#ifdef QUANTA_CHECKER
	/* The per-operation hook with 8 threads is slow; the tests run the
	 * full checker themselves, in the child and at the end. */
	invariant_set_every(64);
#endif
	S.arena = vmem_create("fork_arena", NULL, 0, 16, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 64, VM_SLEEP);
	S.ids = vmem_create("fork_ids", (void *)(uintptr_t)1, 1 << 20, 1, NULL,
	    NULL, NULL, 0, VMC_IDENTIFIER | VM_SLEEP);
	S.cache = umem_cache_create("fork_cache", 96, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	QT_TRUE(S.arena != NULL && S.ids != NULL && S.cache != NULL);
	atomic_store(&S.stop, 0);
	atomic_store(&S.ops, 0);
}

/* One round: a batch of every kind of allocation, then all freed.
 * Returns the operations done, or -1 when an allocation failed. */
static long churn_round(unsigned seed)
{
	void *u[CHURN_BATCH], *c[CHURN_BATCH], *v[CHURN_BATCH], *w[CHURN_BATCH];
	size_t usz[CHURN_BATCH], vsz[CHURN_BATCH];
	for (unsigned i = 0; i < CHURN_BATCH; i++) {
		usz[i] = 8 + (size_t)((seed * 131u + i * 977u) % 3000u);
		vsz[i] = 16 * (1 + (size_t)((seed + i) % 24u));
		u[i] = umem_alloc(usz[i], UMEM_DEFAULT);
		c[i] = umem_cache_alloc(S.cache, UMEM_DEFAULT);
		v[i] = vmem_alloc(S.arena, vsz[i], VM_NOSLEEP);
		w[i] = vmem_alloc(S.ids, 1 + i % 3, VM_NOSLEEP);
		if (u[i] == NULL || c[i] == NULL || v[i] == NULL || w[i] == NULL)
			return -1;
		memset(u[i], 0x5a, usz[i] < 64 ? usz[i] : 64);
		memset(c[i], 0xa5, 96);
	}
	for (unsigned i = 0; i < CHURN_BATCH; i++) {
		umem_free(u[i], usz[i]);
		umem_cache_free(S.cache, c[i]);
		vmem_free(S.arena, v[i], vsz[i]);
		vmem_free(S.ids, w[i], 1 + i % 3);
	}
	return 8 * CHURN_BATCH;
}

static void *churn_loop(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (unsigned r = 0; !atomic_load(&S.stop); r++) {
		long n = churn_round(seed + r);
		if (n < 0)
			return (void *)1;
		atomic_fetch_add(&S.ops, n);
	}
	return NULL;
}

static void churn_start(pthread_t *t, int n)
{
	for (int k = 0; k < n; k++)
		QT_EQ(pthread_create(&t[k], NULL, churn_loop,
		    (void *)(uintptr_t)(k * 7919 + 1)), 0);
}

/* Stop the threads; none may have seen an allocation fail. */
static void churn_stop(pthread_t *t, int n)
{
	atomic_store(&S.stop, 1);
	for (int k = 0; k < n; k++) {
		void *rv = (void *)1;
		QT_EQ(pthread_join(t[k], &rv), 0);
		QT_PTR_EQ(rv, NULL);
	}
}

/* The arena checker over every arena: 0 when clean (no cache exists). */
static int arenas_clean(void)
{
#ifdef QUANTA_CHECKER
	static invariant_report_t r;
	invariant_report_init(&r);
	if (invariant_check_all(&r) != 0) {
		invariant_report_print(&r, stderr, 0);
		return 1;
	}
#endif
	return 0;
}

/*
 * The checker over every arena and the shared cache: 0 when clean.  In a
 * fork's child too, with no tolerance: a debug cache (every build with the
 * checker) moves a buffer's state byte, its round and the slot's caller
 * counter in one slab critical section, which a fork never cuts, and the
 * child reclaims the slow paths' magazines (docs/fork.md).
 */
static int checker_clean(void)
{
#ifdef QUANTA_CHECKER
	umem_violation_t uv[16];
	if (arenas_clean() != 0)
		return 1;
	size_t n = invariant_umem_cache(S.cache, uv, 16);
	for (size_t i = 0; i < n && i < 16; i++)
		fprintf(stderr, "%s %s\n", uv[i].uv_code, uv[i].uv_what);
	return n != 0;
#else
	return 0;
#endif
}

/* The arenas hold nothing once every thread has freed all it took. */
static void shared_intact(void)
{
	QT_EQ(vmem_size(S.ids, VMEM_ALLOC), 0);
	QT_EQ(checker_clean(), 0);
}

static bool child_threads_ok(void)
{
	const char *e = getenv("QUANTA_FORK_NO_CHILD_THREADS");
	return e == NULL || *e == '\0' || *e == '0';
}

static void *child_thread(void *arg)
{
	(void)arg;
	for (unsigned r = 0; r < CHILD_ROUNDS / 4; r++)
		if (churn_round(r * 3) < 0)
			return (void *)1;
	return NULL;
}

/* In a child: allocate and free at once, from this thread and a new one,
 * then the checker.  The exit status says what failed (0: nothing). */
static int child_work(long *ops)
{
	alarm(CHILD_ALARM_S);
	long n = 0;
	for (unsigned r = 0; r < CHILD_ROUNDS; r++) {
		long k = churn_round(r);
		if (k < 0)
			return 2;
		n += k;
	}
	pthread_t t;
	void *rv = (void *)1;
	if (child_threads_ok() && (pthread_create(&t, NULL, child_thread,
	    NULL) != 0 || pthread_join(t, &rv) != 0 || rv != NULL))
		return 3;
	if (child_threads_ok())
		n += (long)(CHILD_ROUNDS / 4) * 8 * CHURN_BATCH;
	vmem_t *fresh = vmem_create("fork_child", (void *)(uintptr_t)0x10000,
	    0x10000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	if (fresh == NULL)
		return 4;
	void *f = vmem_alloc(fresh, 0x100, VM_NOSLEEP);
	if ((uintptr_t)f != 0x10000)
		return 5;
	vmem_free(fresh, f, 0x100);
	vmem_destroy(fresh);
	if (vmem_size(S.ids, VMEM_ALLOC) != 0 && atomic_load(&S.stop))
		return 6;
	if (checker_clean() != 0)
		return 7;
	if (ops != NULL)
		*ops = n + 2;
	return 0;
}

/* Wait for a child; fail the test with how it ended unless it exited 0. */
static void child_reap(pid_t pid, const char *what, int round)
{
	int status = 0;
	QT_TRUE(pid > 0);
	QT_EQ(qt_wait(pid, &status), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char how[128];
		atomic_store(&S.stop, 1);
		qt_describe_status(status, how, sizeof(how));
		qt_fail(__FILE__, __LINE__, "%s %d: child %s", what, round, how);
	}
}

static pid_t fork_child_working(void)
{
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_work(NULL));
	return pid;
}

/* ---- the stress test ---------------------------------------------------- */

QTEST(fork_while_8_threads_allocate_30_times_gives_children_that_allocate_and_pass_the_checker)
{
	pthread_t t[CHURN_THREADS];
	const char *e = getenv("QUANTA_FORK_STRESS_FORKS");
	int forks = e != NULL && atoi(e) > 0 ? atoi(e) : 30;
	long child_ops = 0;
	shared_init();
	churn_start(t, CHURN_THREADS);
	uint64_t t0 = now_ns();
	for (int round = 0; round < forks; round++) {
		int fd[2];
		long got = 0;
		QT_EQ(pipe(fd), 0);
		sleep_ms(2);
		pid_t pid = fork();
		if (pid == 0) {
			long ops = 0;
			int rc = child_work(&ops);
			ssize_t w = write(fd[1], &ops, sizeof(ops));
			qt_exit(rc != 0 ? rc : w == (ssize_t)sizeof(ops) ? 0 : 9);
		}
		close(fd[1]);
		child_reap(pid, "fork", round);
		QT_EQ(read(fd[0], &got, sizeof(got)), sizeof(got));
		close(fd[0]);
		child_ops += got;
	}
	uint64_t t1 = now_ns();
	long parent_ops = atomic_load(&S.ops);
	churn_stop(t, CHURN_THREADS);
	shared_intact();
	printf("# stress: %d forks with %d threads allocating, %ld child "
	    "operations, %ld parent operations, %.3f s\n", forks,
	    CHURN_THREADS, child_ops, parent_ops, (double)(t1 - t0) / 1e9);
	QT_TRUE(parent_ops > 0);
}

/* ---- a child's populates and the populator table ------------------------ */

/*
 * Found by a user (release build, 5 of 100 children hung): threads create
 * and destroy arenas, every other one VMC_POPULATOR, while the main thread
 * forks; each child makes an arena and enough allocations that populates
 * run.  A create entered its arena in the populator table before listing
 * it for the fork lockup (a destroy took it out after unlisting), so a
 * thread the child lacks could hold that arena's lock at the fork, and
 * the child's first populate waited for it for ever.  Every child must
 * exit.  QUANTA_FORK_POPULATOR_FORKS sets the forks (default 1,000; 30
 * under a slow tool, QTEST_TIMEOUT_SCALE).
 */
#define POP_THREADS 3
#define POP_PIECES 16
#define POP_CHILD_ALLOCS 4000

static atomic_int pop_stop;

static void *populator_churn(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;
	uintptr_t base = 0x10000000u + (uintptr_t)k * 0x1000000u;
	for (unsigned round = 0; !atomic_load(&pop_stop); round++) {
		int flags = VM_SLEEP | (round % 2 == 0 ? VMC_POPULATOR : 0);
		vmem_t *a = vmem_create("pop_churn", (void *)base, 1 << 20, 16,
		    NULL, NULL, NULL, 0, flags);
		if (a == NULL)
			return (void *)1;
		void *p[POP_PIECES];
		for (unsigned i = 0; i < POP_PIECES; i++)
			p[i] = vmem_alloc(a, 16 * (1 + i % 3), VM_SLEEP);
		for (unsigned i = 0; i < POP_PIECES; i++)
			vmem_free(a, p[i], 16 * (1 + i % 3));
		vmem_destroy(a);
	}
	return NULL;
}

static int populating_child(void)
{
	alarm(CHILD_ALARM_S);
	vmem_t *a = vmem_create("pop_child", (void *)0x70000000u, 16u << 20,
	    16, NULL, NULL, NULL, 0, VM_SLEEP);
	if (a == NULL)
		return 3;
	for (unsigned i = 0; i < POP_CHILD_ALLOCS; i++)
		if (vmem_alloc(a, 16 + 16 * (i % 3), VM_NOSLEEP) == NULL)
			return 4;
#ifdef QUANTA_CHECKER
	invariant_report_t r;
	invariant_report_init(&r);
	if (invariant_check_all(&r) != 0)
		return 5;
#endif
	return 0;
}

QTEST(forks_while_threads_create_and_destroy_populator_arenas_give_children_that_populate)
{
	const char *e = getenv("QUANTA_FORK_POPULATOR_FORKS");
	int forks = e != NULL && atoi(e) > 0 ? atoi(e) :
	    getenv("QTEST_TIMEOUT_SCALE") != NULL ? 30 : 1000;
	pthread_t t[POP_THREADS];
#ifdef QUANTA_CHECKER
	invariant_set_every(64);
#endif
	atomic_store(&pop_stop, 0);
	for (unsigned k = 0; k < POP_THREADS; k++)
		QT_EQ(pthread_create(&t[k], NULL, populator_churn,
		    (void *)(uintptr_t)k), 0);
	for (int round = 0; round < forks; round++) {
		pid_t pid = fork();
		if (pid == 0)
			qt_exit(populating_child());
		child_reap(pid, "populator fork", round);
	}
	atomic_store(&pop_stop, 1);
	for (unsigned k = 0; k < POP_THREADS; k++) {
		void *rc = (void *)2;
		QT_EQ(pthread_join(t[k], &rc), 0);
		QT_PTR_EQ(rc, NULL);
	}
	printf("# populator forks: %d children, every one exited 0\n", forks);
}

/* ---- forks at chosen moments ------------------------------------------- */

static atomic_int fork_began;   /* the test's prepare handler ran */
static atomic_int hook_entered; /* a hook is waiting for a fork */

static void test_prepare(void)
{
	atomic_store(&fork_began, 1);
}

/* After quanta's handlers exist: ours run before them at each fork. */
static void install_test_prepare(void)
{
	(void)vmem_heap_arena();
	QT_EQ(pthread_atfork(test_prepare, NULL, NULL), 0);
}

/* In a hook: say so, then hold on until a fork has begun (bounded). */
static void hold_until_fork(void)
{
	atomic_store(&hook_entered, 1);
	for (int i = 0; i < 20000 && !atomic_load(&fork_began); i++)
		sleep_ms(1);
}

static void wait_for_hook(void)
{
	for (int i = 0; i < 20000 && !atomic_load(&hook_entered); i++)
		sleep_ms(1);
	QT_EQ(atomic_load(&hook_entered), 1);
}

static atomic_int populate_hook_calls;

static void populate_hook(void)
{
	if (atomic_fetch_add(&populate_hook_calls, 1) == 0)
		hold_until_fork();
}

/* Cut an arena into pieces until a populate has run (each cut costs a
 * tag, a populate makes some 1,300). */
static void *populate_some(void *arg)
{
	vmem_t *vmp = arg;
	for (uintptr_t i = 0; i < 40000 && atomic_load(&populate_hook_calls) ==
	    0; i++)
		if (vmem_alloc(vmp, 2, VM_NOSLEEP) == NULL)
			return (void *)1;
	return atomic_load(&populate_hook_calls) != 0 ? NULL : (void *)2;
}

QTEST(fork_during_a_populate_waits_for_it_and_the_child_allocates)
{
	pthread_t t;
	void *rv = (void *)1;
	shared_init();
	install_test_prepare();
	vmem_t *vmp = vmem_create("fork_populate", (void *)(uintptr_t)0x100000,
	    1 << 20, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	vmem_test_populate_hook = populate_hook;
	QT_EQ(pthread_create(&t, NULL, populate_some, vmp), 0);
	wait_for_hook();
	pid_t pid = fork_child_working();
	child_reap(pid, "populate", 0);
	QT_EQ(pthread_join(t, &rv), 0);
	QT_PTR_EQ(rv, NULL);
	vmem_test_populate_hook = NULL;
	QT_EQ(vmem_populate_in_progress(), false);
	QT_EQ(checker_clean(), 0);
}

static void reap_hook(void)
{
	hold_until_fork();
}

static void *reap_once(void *arg)
{
	(void)arg;
	umem_reap();
	return NULL;
}

/* The child's reap must run: one that another thread was in is gone. */
static int child_reaps(void)
{
	uint64_t before = atomic_load(&umem_reap_count);
	umem_test_reap_hook = NULL;
	umem_reap();
	if (atomic_load(&umem_reap_count) != before + 1)
		return 10;
	return child_work(NULL);
}

QTEST(fork_during_a_reap_waits_for_it_and_the_child_can_reap)
{
	pthread_t t;
	shared_init();
	install_test_prepare();
	QT_EQ(churn_round(1), 8 * CHURN_BATCH);
	umem_test_reap_hook = reap_hook;
	QT_EQ(pthread_create(&t, NULL, reap_once, NULL), 0);
	wait_for_hook();
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_reaps());
	child_reap(pid, "reap", 0);
	QT_EQ(pthread_join(t, NULL), 0);
	umem_test_reap_hook = NULL;
	QT_TRUE(atomic_load(&umem_reap_count) >= 1);
	QT_EQ(checker_clean(), 0);
}

static atomic_int walk_release;

static void walk_and_wait(void *arg, void *start, size_t size)
{
	(void)arg;
	(void)start;
	(void)size;
	if (atomic_exchange(&hook_entered, 1) != 0)
		return;
	for (int i = 0; i < 20000 && !atomic_load(&walk_release); i++)
		sleep_ms(1);
}

static void *walker_thread(void *arg)
{
	vmem_walk(arg, VMEM_ALLOC | VMEM_REENTRANT, walk_and_wait, NULL);
	return NULL;
}

/* Child: the other thread's walker is gone, the arena works. */
static int child_after_walk(vmem_t *vmp)
{
	if (vmp->ar_nwalkers != 0)
		return 20;
	void *a = vmem_alloc(vmp, 0x40, VM_NOSLEEP);
	if (a == NULL)
		return 21;
	vmem_free(vmp, a, 0x40);
	return child_work(NULL);
}

/* An arena's walker count, read under its lock (the walk drops it). */
static size_t walkers_of(vmem_t *vmp)
{
	plat_mutex_lock(vmp->ar_lock);
	size_t n = vmp->ar_nwalkers;
	plat_mutex_unlock(vmp->ar_lock);
	return n;
}

QTEST(fork_during_another_threads_reentrant_walk_drops_its_walker_in_the_child)
{
	pthread_t t;
	void *piece[8];
	shared_init();
	vmem_t *vmp = vmem_create("fork_walk", (void *)(uintptr_t)0x100000,
	    0x10000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	for (int i = 0; i < 8; i++)
		QT_TRUE((piece[i] = vmem_alloc(vmp, 0x40, VM_NOSLEEP)) != NULL);
	QT_EQ(pthread_create(&t, NULL, walker_thread, vmp), 0);
	wait_for_hook();
	QT_EQ(walkers_of(vmp), 1);
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_after_walk(vmp));
	child_reap(pid, "walk", 0);
	atomic_store(&walk_release, 1);
	QT_EQ(pthread_join(t, NULL), 0);
	QT_EQ(vmp->ar_nwalkers, 0);
	for (int i = 0; i < 8; i++)
		vmem_free(vmp, piece[i], 0x40);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0);
	QT_EQ(checker_clean(), 0);
}

static atomic_int walk_forked_child; /* 1 in the child of the walk's fork */
static pid_t walk_fork_pid;

static void walk_and_fork(void *arg, void *start, size_t size)
{
	(void)arg;
	(void)start;
	(void)size;
	if (walk_fork_pid != 0 || atomic_load(&walk_forked_child))
		return;
	pid_t pid = fork();
	if (pid == 0)
		atomic_store(&walk_forked_child, 1);
	else
		walk_fork_pid = pid;
}

QTEST(fork_from_inside_a_reentrant_walk_keeps_that_walk_in_the_child)
{
	shared_init();
	vmem_t *vmp = vmem_create("fork_selfwalk", (void *)(uintptr_t)0x100000,
	    0x10000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	void *a = vmem_alloc(vmp, 0x40, VM_NOSLEEP);
	void *b = vmem_alloc(vmp, 0x40, VM_NOSLEEP);
	QT_TRUE(a != NULL && b != NULL);
	vmem_walk(vmp, VMEM_ALLOC | VMEM_REENTRANT, walk_and_fork, NULL);
	if (atomic_load(&walk_forked_child)) {
		/* The walk the child inherited finished normally. */
		int rc = vmp->ar_nwalkers != 0 ? 30 : 0;
		vmem_free(vmp, a, 0x40);
		vmem_free(vmp, b, 0x40);
		qt_exit(rc != 0 ? rc : child_work(NULL));
	}
	child_reap(walk_fork_pid, "self walk", 0);
	QT_EQ(vmp->ar_nwalkers, 0);
	vmem_free(vmp, a, 0x40);
	vmem_free(vmp, b, 0x40);
	QT_EQ(checker_clean(), 0);
}

/* ---- a fork between two stores of another thread's free --------------- */

#define TIGHT_FORKS 300

/* Allocates and frees the shared cache in a tight loop: a batch out, the
 * batch back in another order, so rounds move between the magazines,
 * the depot and the slabs, and a magazine's entries above its count are
 * stale pointers to buffers that are elsewhere. */
static void *tight_loop(void *arg)
{
	void *b[40];
	unsigned n = 0;
	(void)arg;
	while (!atomic_load(&S.stop)) {
		unsigned k = 8 + n++ % 33;
		for (unsigned i = 0; i < k; i++)
			if ((b[i] = umem_cache_alloc(S.cache, UMEM_DEFAULT)) ==
			    NULL)
				return (void *)1;
		for (unsigned i = 0; i < k; i++)
			umem_cache_free(S.cache, b[n % 2 != 0 ? i : k - 1 - i]);
	}
	return NULL;
}

/* In the child: the fixup has emptied the lost thread's slot into the
 * slabs (a stale round would have died there as a double free); the
 * cache must still be whole. */
static int child_after_tight_loop(void)
{
	alarm(CHILD_ALARM_S);
	void *p = umem_cache_alloc(S.cache, UMEM_DEFAULT);
	if (p == NULL)
		return 80;
	umem_cache_free(S.cache, p);
	return checker_clean() != 0 ? 81 : 0;
}

QTEST(fork_while_a_thread_frees_in_a_tight_loop_never_hands_the_child_a_stale_round)
{
	pthread_t t[2];
	shared_init();
	for (int k = 0; k < 2; k++)
		QT_EQ(pthread_create(&t[k], NULL, tight_loop, NULL), 0);
	for (int round = 0; round < TIGHT_FORKS; round++) {
		pid_t pid = fork();
		if (pid == 0)
			qt_exit(child_after_tight_loop());
		child_reap(pid, "tight loop fork", round);
	}
	atomic_store(&S.stop, 1);
	for (int k = 0; k < 2; k++) {
		void *rv = (void *)1;
		QT_EQ(pthread_join(t[k], &rv), 0);
		QT_PTR_EQ(rv, NULL);
	}
	QT_EQ(checker_clean(), 0);
}

/* ---- what lost threads held: every child balances (R3, Q1) ------------- */

/*
 * Each test holds another thread at one moment between locks — inside a
 * source call with its arena's tags stashed, or in a magazine slow path
 * with its slot busy and magazines in motion — forks, and checks in the
 * child that nothing the held thread had is lost: the full checker (R3,
 * Q1 exact, no tolerance), the stash empty and its tags among the spares,
 * and a child that allocates, frees and destroys.  The child's exit code
 * says which check failed.
 */

#define HOLD_MS 20000

/* ---- a thread inside a source call -------------------------------------- */

static atomic_int src_block;   /* 1: the next source call blocks */
static atomic_int src_inside;  /* a source call is blocked */
static atomic_int src_release; /* let it go on */

static void *blocking_source(vmem_t *src, size_t size, int vmflag)
{
	if (atomic_exchange(&src_block, 0) == 1) {
		atomic_store(&src_inside, 1);
		for (int i = 0; i < HOLD_MS && !atomic_load(&src_release); i++)
			sleep_ms(1);
	}
	return vmem_alloc(src, size, vmflag);
}

static void *alloc_through_blocking_source(void *arg)
{
	void *p = vmem_alloc(arg, 64, VM_SLEEP);
	if (p == NULL)
		return (void *)1;
	vmem_free(arg, p, 64);
	return NULL;
}

/* The child: the held thread's stash is back among the spares (exactly
 * the tags the arena had), and the arena imports, frees and goes. */
static int child_after_source_call(vmem_t *vmp, size_t tags)
{
	alarm(CHILD_ALARM_S);
	plat_mutex_lock(vmp->ar_lock);
	size_t stash = vmp->ar_nstash, spares = vmp->ar_nspares;
	plat_mutex_unlock(vmp->ar_lock);
	if (stash != 0) {
		fprintf(stderr, "child: %zu tags still stashed\n", stash);
		return 90;
	}
	if (spares != tags) {
		fprintf(stderr, "child: %zu spares, %zu expected\n", spares,
		    tags);
		return 91;
	}
	if (arenas_clean() != 0)
		return 92;
	void *p = vmem_alloc(vmp, 64, VM_NOSLEEP);
	if (p == NULL)
		return 93;
	vmem_free(vmp, p, 64);
	vmem_destroy(vmp);
	return arenas_clean() != 0 ? 94 : 0;
}

QTEST(fork_while_another_thread_is_in_a_source_call_gives_its_stashed_tags_back_in_the_child)
{
	pthread_t t;
	void *rv = (void *)1;
	shared_init();
	vmem_t *src = vmem_create("fork_stash_src", (void *)(uintptr_t)0x40000000,
	    1 << 24, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *vmp = vmem_create("fork_stash", NULL, 0, 16, blocking_source,
	    vmem_free, src, 0, VM_SLEEP);
	QT_TRUE(src != NULL && vmp != NULL);
	atomic_store(&src_block, 1);
	QT_EQ(pthread_create(&t, NULL, alloc_through_blocking_source, vmp), 0);
	for (int i = 0; i < HOLD_MS && !atomic_load(&src_inside); i++)
		sleep_ms(1);
	QT_EQ(atomic_load(&src_inside), 1);
	plat_mutex_lock(vmp->ar_lock);
	size_t stash = vmp->ar_nstash, tags = vmp->ar_nspares + stash;
	plat_mutex_unlock(vmp->ar_lock);
	QT_EQ(stash, VMEM_SEGS_PER_OP);
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_after_source_call(vmp, tags));
	child_reap(pid, "source call", 0);
	atomic_store(&src_release, 1);
	QT_EQ(pthread_join(t, &rv), 0);
	QT_PTR_EQ(rv, NULL);
	QT_EQ(vmp->ar_nstash, 0);
	vmem_destroy(vmp);
	vmem_destroy(src);
	QT_EQ(checker_clean(), 0);
}

/* ---- a thread in a magazine slow path ------------------------------------ */

#define HELD_BUFS 21

static umem_cache_t *held_cache;
static int held_want;          /* UMEM_HOOK_* to hold at */
static atomic_int held_at;     /* the hook point a thread is held at */
static atomic_int held_release;
static atomic_int held_out;    /* buffers the held thread's caller has */

static void hold_in_slow_path(umem_cache_t *cp, umem_slot_t *sl, int where)
{
	if (cp != held_cache || where != held_want ||
	    atomic_load(&held_at) != 0)
		return;
	/* A free exchange with a previous magazine: one more in motion. */
	if (where == UMEM_HOOK_FREE_EXCHANGE && sl->sl_prev == NULL)
		return;
	atomic_store(&held_at, where);
	for (int i = 0; i < HOLD_MS && !atomic_load(&held_release); i++)
		sleep_ms(1);
}

/* Alloc HELD_BUFS, free them, alloc them again, free them: every slow
 * path of a slot runs; held_out follows what the caller holds. */
static void *slot_cycle(void *arg)
{
	void *b[HELD_BUFS];
	(void)arg;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < HELD_BUFS; i++) {
			if ((b[i] = umem_cache_alloc(held_cache, UMEM_DEFAULT)) ==
			    NULL)
				return (void *)1;
			atomic_fetch_add(&held_out, 1);
		}
		for (int i = 0; i < HELD_BUFS; i++) {
			umem_cache_free(held_cache, b[i]);
			atomic_fetch_sub(&held_out, 1);
		}
	}
	return NULL;
}

/*
 * With every slot of the child flushed (the lost thread's by the fork's
 * fixup, this thread's here), a buffer is free in a slab, in a full
 * magazine of the depot, or with a caller: the difference, 0 when Q1
 * balances.  Release builds too (the statistics, not the checker).
 */
static long cache_unbalance(umem_cache_t *cp, long callers)
{
	umem_cache_stats_t st;
	umem_thread_flush_self();
	umem_cache_stats(cp, &st);
	return (long)st.us_bufs_total - (long)st.us_bufs_slab_free -
	    (long)st.us_bufs_depot - callers;
}

/* The checker over every cache and arena: 0 when clean, exactly. */
static int caches_clean(void)
{
#ifdef QUANTA_CHECKER
	umem_violation_t uv[8];
	int bad = 0;
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		size_t n = invariant_umem_cache(cp, uv, 8);
		for (size_t i = 0; i < n && i < 8; i++)
			fprintf(stderr, "%s %s\n", uv[i].uv_code, uv[i].uv_what);
		bad |= n != 0;
	}
	return bad | arenas_clean();
#else
	return arenas_clean();
#endif
}

/* The child: nothing of the held thread's slot is lost or doubled. */
static int child_after_slow_path(long callers)
{
	void *b[3 * HELD_BUFS];
	alarm(CHILD_ALARM_S);
	if (caches_clean() != 0)
		return 95;
	long d = cache_unbalance(held_cache, callers);
	if (d != 0) {
		fprintf(stderr, "child: %ld buffers unaccounted for\n", d);
		return 96;
	}
	for (int i = 0; i < 3 * HELD_BUFS; i++)
		if ((b[i] = umem_cache_alloc(held_cache, UMEM_DEFAULT)) == NULL)
			return 97;
	for (int i = 0; i < 3 * HELD_BUFS; i++)
		umem_cache_free(held_cache, b[i]);
	if (cache_unbalance(held_cache, callers) != 0 || caches_clean() != 0)
		return 98;
	umem_cache_destroy(held_cache);
	return arenas_clean() != 0 ? 99 : 0;
}

/* Hold a thread cycling a fresh cache at the hook point where, fork, and
 * check the child; prefill: the depot holds full magazines first. */
static void fork_in_slow_path(int where, bool prefill)
{
	pthread_t t;
	void *rv = (void *)1;
	shared_init();
	held_cache = umem_cache_create("fork_held", 96, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	QT_TRUE(held_cache != NULL);
	if (prefill) {
		void *b[3 * HELD_BUFS];
		for (int i = 0; i < 3 * HELD_BUFS; i++)
			QT_TRUE((b[i] = umem_cache_alloc(held_cache,
			    UMEM_DEFAULT)) != NULL);
		for (int i = 0; i < 3 * HELD_BUFS; i++)
			umem_cache_free(held_cache, b[i]);
		umem_thread_flush_self();
		umem_cache_stats_t st;
		umem_cache_stats(held_cache, &st);
		QT_TRUE(st.us_mags_full >= 2);
	}
	held_want = where;
	umem_test_slow_hook = hold_in_slow_path;
	QT_EQ(pthread_create(&t, NULL, slot_cycle, NULL), 0);
	for (int i = 0; i < HOLD_MS && atomic_load(&held_at) == 0; i++)
		sleep_ms(1);
	QT_EQ(atomic_load(&held_at), where);
	long callers = atomic_load(&held_out);
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_after_slow_path(callers));
	child_reap(pid, "slow path", where);
	atomic_store(&held_release, 1);
	QT_EQ(pthread_join(t, &rv), 0);
	QT_PTR_EQ(rv, NULL);
	umem_test_slow_hook = NULL;
	QT_EQ(cache_unbalance(held_cache, 0), 0);
	QT_EQ(caches_clean(), 0);
	umem_cache_destroy(held_cache);
}

QTEST(fork_while_another_thread_takes_a_full_magazine_from_the_depot_loses_no_buffer_in_the_child)
{
	fork_in_slow_path(UMEM_HOOK_ALLOC_EXCHANGE, true);
}

QTEST(fork_while_another_thread_trades_a_full_magazine_for_an_empty_one_loses_no_buffer_in_the_child)
{
	fork_in_slow_path(UMEM_HOOK_FREE_EXCHANGE, false);
}

QTEST(fork_while_another_thread_swaps_its_magazines_loses_no_buffer_in_the_child)
{
	fork_in_slow_path(UMEM_HOOK_SWAP, false);
}

/* ---- lost threads whose ids fill the first slot chunk ---------------------- */

/*
 * 64 threads each take a thread id (1..64: the main thread has none) and
 * leave one buffer in their slot, then wait; a fork loses them all.  Ids
 * 63 and 64 end the first chunk of 64 slots and the first 64-bit word of
 * the fixup's map of used ids: the child must reclaim the slots and ids of
 * all 64, those two included, and nothing else.
 */
#define ID_THREADS 64

static umem_cache_t *ids_cache;
static atomic_int ids_taken;
static atomic_uintptr_t ids_max;
static atomic_int ids_release;

static void *leave_a_buffer_in_the_slot(void *arg)
{
	(void)arg;
	void *b = umem_cache_alloc(ids_cache, UMEM_DEFAULT);
	if (b == NULL)
		return (void *)1;
	umem_cache_free(ids_cache, b);
	uintptr_t id = umem_thread_id(), max = atomic_load(&ids_max);
	while (id > max && !atomic_compare_exchange_weak(&ids_max, &max, id))
		;
	atomic_fetch_add(&ids_taken, 1);
	for (int i = 0; i < HOLD_MS && !atomic_load(&ids_release); i++)
		sleep_ms(1);
	return NULL;
}

/* The child: every buffer is in a slab or the depot, the checker is
 * clean, and every id is free again: this thread takes id 1. */
static int child_after_64_lost_threads(void)
{
	alarm(CHILD_ALARM_S);
	long d = cache_unbalance(ids_cache, 0);
	if (d != 0) {
		fprintf(stderr, "child: %ld buffers unaccounted for\n", d);
		return 100;
	}
	if (caches_clean() != 0)
		return 101;
	if (umem_thread_id() != 0)
		return 102;
	void *b = umem_cache_alloc(ids_cache, UMEM_DEFAULT);
	if (b == NULL)
		return 103;
	umem_cache_free(ids_cache, b);
	if (umem_thread_id() != 1) {
		fprintf(stderr, "child: took id %lu, not 1\n",
		    (unsigned long)umem_thread_id());
		return 104;
	}
	return cache_unbalance(ids_cache, 0) != 0 ? 105 : 0;
}

QTEST(fork_with_64_lost_threads_reclaims_the_slots_and_ids_of_all_64)
{
	pthread_t t[ID_THREADS];
	shared_init();
	ids_cache = umem_cache_create("fork_ids64", 96, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	QT_TRUE(ids_cache != NULL);
	QT_EQ(umem_thread_id(), 0);
	for (int k = 0; k < ID_THREADS; k++)
		QT_EQ(pthread_create(&t[k], NULL, leave_a_buffer_in_the_slot,
		    NULL), 0);
	for (int i = 0; i < HOLD_MS && atomic_load(&ids_taken) < ID_THREADS;
	     i++)
		sleep_ms(1);
	QT_EQ(atomic_load(&ids_taken), ID_THREADS);
	QT_EQ(atomic_load(&ids_max), ID_THREADS);
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_after_64_lost_threads());
	child_reap(pid, "64 lost threads", 0);
	atomic_store(&ids_release, 1);
	for (int k = 0; k < ID_THREADS; k++) {
		void *rv = (void *)1;
		QT_EQ(pthread_join(t[k], &rv), 0);
		QT_PTR_EQ(rv, NULL);
	}
	QT_EQ(cache_unbalance(ids_cache, 0), 0);
	QT_EQ(caches_clean(), 0);
	umem_cache_destroy(ids_cache);
}

/* ---- who forks, and how often ------------------------------------------ */

/* In a child: threads again, and a fork again; the grandchild works. */
static int child_forks_again(void)
{
	pthread_t t[4];
	int nt = child_threads_ok() ? 4 : 0;
	alarm(CHILD_ALARM_S);
	atomic_store(&S.stop, 0);
	for (int k = 0; k < nt; k++)
		if (pthread_create(&t[k], NULL, churn_loop,
		    (void *)(uintptr_t)(k + 100)) != 0)
			return 40;
	int rc = 0;
	for (int round = 0; round < 3 && rc == 0; round++) {
		sleep_ms(2);
		pid_t pid = fork();
		if (pid == 0)
			qt_exit(child_work(NULL));
		int status = 0;
		if (qt_wait(pid, &status) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			rc = 41;
	}
	atomic_store(&S.stop, 1);
	for (int k = 0; k < nt; k++) {
		void *rv = (void *)1;
		if (pthread_join(t[k], &rv) != 0 || rv != NULL)
			rc = rc != 0 ? rc : 42;
	}
	return rc != 0 ? rc : checker_clean();
}

QTEST(fork_from_a_child_of_a_child_works)
{
	pthread_t t[4];
	shared_init();
	churn_start(t, 4);
	for (int round = 0; round < 3; round++) {
		sleep_ms(2);
		pid_t pid = fork();
		if (pid == 0)
			qt_exit(child_forks_again());
		child_reap(pid, "fork of a child", round);
	}
	churn_stop(t, 4);
	shared_intact();
}

static atomic_int exit_handler_ran_ok;

static void exit_handler_allocates(void)
{
	void *p = umem_alloc(200, UMEM_DEFAULT);
	void *v = vmem_alloc(S.arena, 48, VM_NOSLEEP);
	if (p != NULL && v != NULL) {
		umem_free(p, 200);
		vmem_free(S.arena, v, 48);
		static const char ok[] = "exit handler ok\n";
		ssize_t w = write(STDOUT_FILENO, ok, sizeof(ok) - 1);
		(void)w;
	} else {
		qt_exit(50);
	}
}

QTEST(the_child_of_a_fork_runs_its_exit_handlers_without_hanging)
{
	pthread_t t[CHURN_THREADS];
	shared_init();
	QT_EQ(atexit(exit_handler_allocates), 0);
	churn_start(t, CHURN_THREADS);
	for (int round = 0; round < 5; round++) {
		sleep_ms(2);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(CHILD_ALARM_S);
			/* exit, not _exit: atexit handlers, stdio, TSD. */
			exit(churn_round(5) < 0 ? 51 : 0);
		}
		child_reap(pid, "exit", round);
	}
	churn_stop(t, CHURN_THREADS);
	shared_intact();
	(void)exit_handler_ran_ok;
}

static void *fork_from_thread(void *arg)
{
	int forks = (int)(uintptr_t)arg;
	for (int round = 0; round < forks; round++) {
		pid_t pid = fork_child_working();
		int status = 0;
		if (pid <= 0 || qt_wait(pid, &status) != pid ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return (void *)(uintptr_t)(100 + round);
	}
	return NULL;
}

QTEST(forks_from_a_thread_other_than_main_give_working_children)
{
	pthread_t t[CHURN_THREADS - 1], f;
	void *rv = (void *)1;
	shared_init();
	churn_start(t, CHURN_THREADS - 1);
	QT_EQ(pthread_create(&f, NULL, fork_from_thread, (void *)10), 0);
	QT_EQ(pthread_join(f, &rv), 0);
	QT_PTR_EQ(rv, NULL);
	churn_stop(t, CHURN_THREADS - 1);
	shared_intact();
}

QTEST(several_threads_forking_at_once_each_get_working_children)
{
	pthread_t t[4], f[4];
	shared_init();
	churn_start(t, 4);
	for (int k = 0; k < 4; k++)
		QT_EQ(pthread_create(&f[k], NULL, fork_from_thread,
		    (void *)8), 0);
	for (int k = 0; k < 4; k++) {
		void *rv = (void *)1;
		QT_EQ(pthread_join(f[k], &rv), 0);
		QT_PTR_EQ(rv, NULL);
	}
	churn_stop(t, 4);
	shared_intact();
}

/* ---- first use racing a fork ------------------------------------------- */

static atomic_int race_go;

static void *first_use(void *arg)
{
	(void)arg;
	while (!atomic_load(&race_go))
		;
	for (int i = 0; i < 50; i++) {
		void *p = umem_alloc(64 + (size_t)i, UMEM_DEFAULT);
		if (p == NULL)
			return (void *)1;
		umem_free(p, 64 + (size_t)i);
	}
	return NULL;
}

/* A fresh process (nothing used quanta yet): 8 threads make their first
 * call at once while this thread forks.  0 when all went well. */
static int race_first_use_with_fork(void)
{
	pthread_t t[8];
	alarm(CHILD_ALARM_S);
	if (atomic_load(&vmem_fork_handlers_installed) != 0)
		return 60;
	for (int k = 0; k < 8; k++)
		if (pthread_create(&t[k], NULL, first_use, NULL) != 0)
			return 61;
	atomic_store(&race_go, 1);
	pid_t pid = fork();
	if (pid == 0) {
		void *p = umem_alloc(100, UMEM_DEFAULT);
		if (p == NULL)
			qt_exit(62);
		umem_free(p, 100);
		qt_exit(atomic_load(&vmem_fork_handlers_installed) == 1 ? 0 : 63);
	}
	int status = 0, rc = 0;
	if (pid <= 0 || qt_wait(pid, &status) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		rc = 64;
	for (int k = 0; k < 8; k++) {
		void *rv = (void *)1;
		if (pthread_join(t[k], &rv) != 0 || rv != NULL)
			rc = rc != 0 ? rc : 65;
	}
	if (rc == 0 && atomic_load(&vmem_fork_handlers_installed) != 1)
		rc = 66;
	return rc;
}

QTEST(first_use_racing_in_8_threads_with_a_fork_installs_the_handlers_once)
{
	/* This test's process has not used quanta: each child starts fresh. */
	QT_EQ(atomic_load(&vmem_fork_handlers_installed), 0);
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		if (pid == 0)
			qt_exit(race_first_use_with_fork());
		int status = 0;
		QT_EQ(qt_wait(pid, &status), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			char how[128];
			qt_describe_status(status, how, sizeof(how));
			qt_fail(__FILE__, __LINE__, "round %d: %s", round, how);
		}
	}
}

/* ---- a fork in the middle of the first bootstrap ----------------------- */

/* 1: a thread is held in the vmem bootstrap, before the handlers exist;
 * 2: let it go. */
static atomic_int boot_stage;
static pid_t boot_parent;

static void boot_hold(void)
{
	if (getpid() != boot_parent)
		return; /* the child's run over goes through */
	atomic_store(&boot_stage, 1);
	while (atomic_load(&boot_stage) != 2)
		;
}

static void *boot_first_use(void *arg)
{
	(void)arg;
	void *p = umem_alloc(64, UMEM_DEFAULT);
	if (p == NULL)
		return (void *)1;
	umem_free(p, 64);
	return NULL;
}

/* In the child: the parent's bootstrap is half done and no handler ran
 * (none was installed yet); the first call runs it over. */
static int child_after_half_bootstrap(void)
{
	alarm(CHILD_ALARM_S);
	if (atomic_load(&vmem_fork_handlers_installed) != 0)
		return 70;
	void *p = umem_alloc(100, UMEM_DEFAULT);
	if (p == NULL)
		return 71;
	umem_free(p, 100);
	if (atomic_load(&vmem_fork_handlers_installed) != 1)
		return 72;
	/* The handlers the child installed work: its own child allocates. */
	pid_t pid = fork();
	if (pid == 0) {
		void *q = umem_alloc(200, UMEM_DEFAULT);
		qt_exit(q == NULL ? 73 : 0);
	}
	int status = 0;
	if (qt_wait(pid, &status) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return 74;
	return arenas_clean() != 0 ? 75 : 0;
}

QTEST(a_fork_in_the_middle_of_the_first_bootstrap_gives_a_child_that_bootstraps_anew)
{
	QT_EQ(atomic_load(&vmem_fork_handlers_installed), 0);
	boot_parent = getpid();
	vmem_test_bootstrap_hook = boot_hold;
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, boot_first_use, NULL), 0);
	while (atomic_load(&boot_stage) != 1)
		;
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(child_after_half_bootstrap());
	atomic_store(&boot_stage, 2);
	void *rv = (void *)1;
	QT_EQ(pthread_join(t, &rv), 0);
	QT_PTR_EQ(rv, NULL);
	child_reap(pid, "half bootstrap", 0);
	QT_EQ(atomic_load(&vmem_fork_handlers_installed), 1);
	QT_EQ(arenas_clean(), 0);
}

QTEST(a_program_that_only_calls_umem_alloc_gets_the_fork_handlers)
{
	void *p = umem_alloc(32, UMEM_DEFAULT);
	QT_TRUE(p != NULL);
	QT_EQ(atomic_load(&vmem_fork_handlers_installed), 1);
	umem_free(p, 32);
}

/* ---- spawn and vfork from a busy process ------------------------------- */

QTEST(posix_spawn_from_a_busy_process_runs_the_program)
{
	pthread_t t[CHURN_THREADS];
	shared_init();
	churn_start(t, CHURN_THREADS);
	for (int round = 0; round < 10; round++) {
		pid_t pid = 0;
		char *argv[] = {(char *)"true", NULL};
		QT_EQ(posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ),
		    0);
		child_reap(pid, "posix_spawn", round);
	}
	churn_stop(t, CHURN_THREADS);
	shared_intact();
}

QTEST(vfork_and_exec_from_a_busy_process_runs_the_program)
{
	pthread_t t[CHURN_THREADS];
	shared_init();
	churn_start(t, CHURN_THREADS);
	for (int round = 0; round < 10; round++) {
		pid_t pid = vfork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		child_reap(pid, "vfork", round);
	}
	churn_stop(t, CHURN_THREADS);
	shared_intact();
}

/* ---- the witness ------------------------------------------------------- */

#if QLOCK_WITNESS
static void fork_with_prepare_misordered(void *arg)
{
	(void)arg;
	(void)vmem_heap_arena();
	atomic_store(&vmem_fork_test_misorder, true);
	pid_t pid = fork();
	if (pid == 0)
		qt_exit(0);
}

QTEST(a_wrong_order_in_prepare_is_caught_by_the_witness_naming_both_locks)
{
	QT_TRUE(qt_expect_abort(fork_with_prepare_misordered, NULL,
	    "taking vmem_list_lock (rank 5) while holding "
	    "vmem_populate_lock (rank 6)"));
}

static void take_arena_then_populate(void *arg)
{
	plat_mutex_t *m = arg;
	qlock_enter(&m[0], QLOCK_ARENA);
	qlock_enter(&m[1], QLOCK_POPULATE);
}

QTEST(taking_a_lower_ranked_lock_is_reported_with_both_names)
{
	static plat_mutex_t m[2] = {PLAT_MUTEX_INITIALIZER,
	    PLAT_MUTEX_INITIALIZER};
	QT_TRUE(qt_expect_abort(take_arena_then_populate, m,
	    "taking vmem_populate_lock (rank 6) while holding ar_lock "
	    "(rank 7)"));
}

static void take_two_arenas(void *arg)
{
	plat_mutex_t *m = arg;
	qlock_enter(&m[0], QLOCK_ARENA);
	qlock_enter(&m[1], QLOCK_ARENA);
}

QTEST(two_arena_locks_outside_the_documented_exceptions_are_reported)
{
	static plat_mutex_t m[2] = {PLAT_MUTEX_INITIALIZER,
	    PLAT_MUTEX_INITIALIZER};
	QT_TRUE(qt_expect_abort(take_two_arenas, m,
	    "taking ar_lock (rank 7) while holding ar_lock (rank 7)"));
}

static void take_rank(void *arg)
{
	static plat_mutex_t m = PLAT_MUTEX_INITIALIZER;
	qlock_enter(&m, (qlock_rank_t)(intptr_t)arg);
}

QTEST(taking_a_lock_of_rank_none_or_past_the_last_rank_is_reported_as_unknown)
{
	QT_TRUE(qt_expect_abort(take_rank, (void *)(intptr_t)QLOCK_NONE,
	    "taking a lock of unknown rank (none) (rank 0)"));
	QT_TRUE(qt_expect_abort(take_rank, (void *)(intptr_t)QLOCK_RANKS,
	    "taking a lock of unknown rank (bad rank) (rank 10)"));
}

QTEST(the_lockup_order_passes_the_witness_and_leaves_nothing_held)
{
	shared_init();
	umem_lockup();
	vmem_lockup();
	/* One lock per arena, one depot and one slab lock per cache. */
	unsigned arenas = 0, caches = 0;
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		arenas++;
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next)
		caches++;
	QT_EQ(qlock_witness_held(QLOCK_CACHE_LIST), 1);
	QT_EQ(qlock_witness_held(QLOCK_ARENA), arenas);
	QT_EQ(qlock_witness_held(QLOCK_DEPOT), caches);
	QT_EQ(qlock_witness_held(QLOCK_SLAB), caches);
	QT_EQ(qlock_witness_held(QLOCK_TAG), 1);
	QT_EQ(qlock_witness_held(QLOCK_LOCKTAB), 1);
	vmem_release();
	umem_release();
	for (int r = QLOCK_CACHE_LIST; r < QLOCK_RANKS; r++)
		QT_EQ(qlock_witness_held((qlock_rank_t)r), 0);
}
#endif

QTEST_MAIN()
