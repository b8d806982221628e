/*
 * quanta — bench/bench_umem.c: speed of the object caches' fast path.
 *
 * This program prints figures; it never judges them.  Exit status 0
 * whatever the timings, 2 when the allocator misbehaves (a NULL from an
 * allocation that must succeed) or the command line is wrong.
 *
 * Workload: alloc+free pairs, each pair allocating k quanta and freeing
 * them at once, k cycling 1..8, on one arena (quantum 16, qcache_max 8
 * quanta, over an integer range that is not memory).  Run by 1 thread, then
 * by 2 threads at once on the same arena and caches.  Each line gives
 * ns/pair (per thread) and Mpairs/s (all threads together); the 2-thread
 * lines add the throughput ratio to 1 thread.  Every figure is the median of
 * 3 repetitions, timed with CLOCK_MONOTONIC around whole loops.
 *
 * Lines:
 *   vmem_alloc   vmem_alloc/vmem_free of k quanta: through the quantum
 *                caches once vmem routes small sizes to them
 *   qcache       the same pairs straight into the arena's quantum caches
 *                (umem_qcache_alloc/free): the cache layer alone
 *   umem_alloc   umem_alloc(64)/umem_free(64)
 *   malloc       malloc(64)/free: the baseline of the same run
 *
 * Usage: bench_umem [--quick]
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"

#define REPS 3
#define EXIT_API 2
#define Q 16u
#define KMAX 8u
#define ARENA_BASE ((uintptr_t)0x10000000u)
#define ARENA_BYTES ((size_t)1 << 32)
#define THREADS_MAX 2

typedef enum { W_VMEM, W_QCACHE, W_UMEM, W_MALLOC } workload_t;

static vmem_t *arena;
static umem_cache_t *qc[KMAX + 1];
static long pairs_per_rep;
static pthread_barrier_t start_line;

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_umem: %s\n", what);
	exit(EXIT_API);
}

/* One thread's loop of pairs; returns its elapsed ns. */
static double run_pairs(workload_t w, long n)
{
	double t0 = now_ns();
	for (long i = 0; i < n; i++) {
		size_t k = (size_t)(i & (KMAX - 1)) + 1;
		void *p;
		switch (w) {
		case W_VMEM:
			p = vmem_alloc(arena, k * Q, VM_NOSLEEP);
			if (p == NULL)
				die("vmem_alloc returned NULL");
			vmem_free(arena, p, k * Q);
			break;
		case W_QCACHE:
			p = umem_qcache_alloc(qc[k], VM_NOSLEEP);
			if (p == NULL)
				die("umem_qcache_alloc returned NULL");
			umem_qcache_free(qc[k], p, k * Q);
			break;
		case W_UMEM:
			p = umem_alloc(64, UMEM_DEFAULT);
			if (p == NULL)
				die("umem_alloc returned NULL");
			__asm__ volatile("" : : "r"(p) : "memory");
			umem_free(p, 64);
			break;
		case W_MALLOC:
		default:
			p = malloc(64);
			if (p == NULL)
				die("malloc returned NULL");
			__asm__ volatile("" : : "r"(p) : "memory");
			free(p);
			break;
		}
	}
	return now_ns() - t0;
}

typedef struct worker {
	workload_t w;
	double elapsed_ns;
} worker_t;

static void *worker_main(void *arg)
{
	worker_t *wk = arg;
	(void)run_pairs(wk->w, pairs_per_rep / 16); /* warm: slots, slabs */
	(void)pthread_barrier_wait(&start_line);
	wk->elapsed_ns = run_pairs(wk->w, pairs_per_rep);
	return NULL;
}

/* Wall ns of pairs_per_rep pairs on each of nthreads threads at once. */
static double run_threads(workload_t w, int nthreads)
{
	pthread_t t[THREADS_MAX];
	worker_t wk[THREADS_MAX];
	pthread_barrier_init(&start_line, NULL, (unsigned)nthreads);
	for (int i = 0; i < nthreads; i++) {
		wk[i].w = w;
		if (pthread_create(&t[i], NULL, worker_main, &wk[i]) != 0)
			die("pthread_create failed");
	}
	double slowest = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		if (wk[i].elapsed_ns > slowest)
			slowest = wk[i].elapsed_ns;
	}
	pthread_barrier_destroy(&start_line);
	return slowest;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median_run(workload_t w, int nthreads)
{
	double r[REPS];
	for (int i = 0; i < REPS; i++)
		r[i] = run_threads(w, nthreads);
	qsort(r, REPS, sizeof(r[0]), cmp_double);
	return r[REPS / 2];
}

static void report(const char *name, workload_t w)
{
	double t1 = median_run(w, 1);
	double t2 = median_run(w, 2);
	double ns1 = t1 / (double)pairs_per_rep;
	double ns2 = t2 / (double)pairs_per_rep;
	double mp1 = (double)pairs_per_rep / t1 * 1e3;
	double mp2 = 2.0 * (double)pairs_per_rep / t2 * 1e3;
	printf("%-11s 1 thread : %6.2f ns/pair %7.2f Mpairs/s\n", name, ns1,
	    mp1);
	printf("%-11s 2 threads: %6.2f ns/pair %7.2f Mpairs/s  x%.2f of 1 "
	    "thread\n", name, ns2, mp2, mp2 / mp1);
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	if (argc > 2 || (argc == 2 && !quick)) {
		fprintf(stderr, "usage: bench_umem [--quick]\n");
		return EXIT_API;
	}
	pairs_per_rep = quick ? 200000 : 5000000;
	arena = vmem_create("bench_qc", (void *)ARENA_BASE, ARENA_BYTES, Q,
	    NULL, NULL, NULL, KMAX * Q, VMC_IDENTIFIER);
	vmem_t *direct = vmem_create("bench_direct", (void *)ARENA_BASE,
	    ARENA_BYTES, Q, NULL, NULL, NULL, 0, VMC_IDENTIFIER | VMC_NO_QCACHE);
	if (arena == NULL || direct == NULL)
		die("vmem_create failed");
	for (size_t k = 1; k <= KMAX; k++)
		if ((qc[k] = umem_qcache_create(direct, k * Q)) == NULL)
			die("umem_qcache_create failed");
	printf("bench_umem: %ld pairs per thread per repetition, median of "
	    "%d, k = 1..%u quanta of %u bytes\n", pairs_per_rep, REPS, KMAX,
	    Q);
	report("vmem_alloc", W_VMEM);
	report("qcache", W_QCACHE);
	report("umem_alloc", W_UMEM);
	report("malloc", W_MALLOC);
	return 0;
}
