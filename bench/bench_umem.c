/*
 * quanta — bench/bench_umem.c: speed of the object caches' fast path (W3).
 *
 * This program prints figures; it never judges them.  Exit status 0
 * whatever the timings, 2 when the allocator misbehaves (a NULL from an
 * allocation that must succeed) or the command line is wrong.
 *
 * Workload: alloc+free pairs, each pair allocating k quanta and freeing
 * them at once, k cycling 1..8, on one arena (quantum 16, qcache_max 8
 * quanta, over an integer range that is not memory).  Run by 1 thread, then
 * by 2 threads at once on the same arena and caches.  Every figure is the
 * median of 3 repetitions, timed with CLOCK_MONOTONIC around whole loops;
 * a repetition's time is that of its slowest thread.
 *
 * Lines (the format of bench/figures.h; bench/README.md explains them):
 *   baseline-*     mutex pair and malloc(64) + free pair of this run
 *   W3-qcache      vmem_alloc/vmem_free of k quanta: the public calls, which
 *                  route sizes up to qcache_max to the quantum caches
 *   qcache-layer   the same pairs straight into quantum caches
 *                  (umem_qcache_alloc/free): the cache layer alone
 *   umem_alloc64   umem_alloc(64)/umem_free(64)
 *   malloc64       malloc(64)/free, on 1 and 2 threads
 * ns/pair is per thread (wall time of a repetition / its pairs per thread),
 * Mpairs/s counts both threads' pairs, and the 2-thread lines end with
 * 2t/1t: their throughput over that of 1 thread (2.00 is perfect scaling;
 * on a 2-core machine with other work running, expect less).
 *
 * Usage: bench_umem [--quick]
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"

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

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fflush(stdout);
	fprintf(stderr, "bench_umem: %s\n", what);
	exit(BENCH_EXIT_API);
}

/* One thread's loop of pairs; returns its elapsed ns. */
static uint64_t run_pairs(workload_t w, long n)
{
	uint64_t t0 = bench_now_ns();
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
	return bench_now_ns() - t0;
}

typedef struct worker {
	workload_t w;
	uint64_t elapsed_ns;
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
		if (pthread_create(&t[i], NULL, worker_main, &wk[i]) != 0) {
			perror("bench_umem: pthread_create");
			exit(1);
		}
	}
	uint64_t slowest = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], NULL);
		if (wk[i].elapsed_ns > slowest)
			slowest = wk[i].elapsed_ns;
	}
	pthread_barrier_destroy(&start_line);
	return (double)slowest;
}

/* ns per pair per thread, median of BENCH_REPS repetitions. */
static double median_ns_per_pair(workload_t w, int nthreads)
{
	double ns[BENCH_REPS];
	for (int i = 0; i < BENCH_REPS; i++)
		ns[i] = run_threads(w, nthreads) / (double)pairs_per_rep;
	return bench_median3(ns);
}

static void report(const struct bench_baseline *base, const char *name,
    workload_t w)
{
	double ns1 = median_ns_per_pair(w, 1);
	double ns2 = median_ns_per_pair(w, 2);

	bench_figure_begin(base, name, "threads=1", ns1, 1);
	bench_figure_end();
	bench_figure_begin(base, name, "threads=2", ns2, 2);
	/* Throughput ratio: (2 / ns2) / (1 / ns1). */
	printf(" 2t/1t=%.2f", 2.0 * ns1 / ns2);
	bench_figure_end();
}

static void setup_arenas(void)
{
	arena = vmem_create("bench_qc", (void *)ARENA_BASE, ARENA_BYTES, Q,
	    NULL, NULL, NULL, KMAX * Q, VMC_IDENTIFIER);
	vmem_t *direct = vmem_create("bench_direct", (void *)ARENA_BASE,
	    ARENA_BYTES, Q, NULL, NULL, NULL, 0, VMC_IDENTIFIER | VMC_NO_QCACHE);
	if (arena == NULL || direct == NULL)
		die("vmem_create failed");
	for (size_t k = 1; k <= KMAX; k++)
		if ((qc[k] = umem_qcache_create(direct, k * Q)) == NULL)
			die("umem_qcache_create failed");
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	struct bench_baseline base;

	if (argc > 2 || (argc == 2 && !quick)) {
		fprintf(stderr, "usage: bench_umem [--quick]\n");
		return BENCH_EXIT_API;
	}
	pairs_per_rep = quick ? 200000 : 5000000;
	printf("# quanta bench_umem mode=%s reps=%d stat=median "
	    "clock=CLOCK_MONOTONIC pairs=%ld per thread per repetition, "
	    "k = 1..%u quanta of %u bytes\n", quick ? "quick" : "full",
	    BENCH_REPS, pairs_per_rep, KMAX, Q);
	bench_print_machine();
	bench_baseline_measure(&base, (uint64_t)pairs_per_rep * 4);
	bench_baseline_print(&base);
	setup_arenas();
	report(&base, "W3-qcache", W_VMEM);
	report(&base, "qcache-layer", W_QCACHE);
	report(&base, "umem_alloc64", W_UMEM);
	report(&base, "malloc64", W_MALLOC);
	return 0;
}
