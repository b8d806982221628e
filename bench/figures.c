/*
 * quanta — bench/figures.c: clock, median, baselines and the figure line
 * shared by the bench programs (bench/figures.h says what each one is for).
 *
 * The two baseline loops keep the compiler from removing or merging their
 * calls: the mutex is a static object with external effects, and every
 * malloc result passes through an empty asm that claims to read it and to
 * touch memory, so the malloc + free pair cannot be folded away (GCC and
 * clang both elide a malloc whose result is only freed).
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "figures.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("bench: clock_gettime");
		exit(1);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_median3(const double v[BENCH_REPS])
{
	double a = v[0], b = v[1], c = v[2];

	if (a > b) {
		double t = a;
		a = b;
		b = t;
	}
	if (b > c)
		b = c;
	return a > b ? a : b;
}

static double mutex_ns_per_pair(uint64_t pairs)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	double ns[BENCH_REPS];

	for (int rep = 0; rep < BENCH_REPS; rep++) {
		uint64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < pairs; i++) {
			pthread_mutex_lock(&lock);
			pthread_mutex_unlock(&lock);
		}
		ns[rep] = (double)(bench_now_ns() - t0) / (double)pairs;
	}
	return bench_median3(ns);
}

static double malloc64_ns_per_pair(uint64_t pairs)
{
	double ns[BENCH_REPS];

	for (int rep = 0; rep < BENCH_REPS; rep++) {
		uint64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < pairs; i++) {
			void *p = malloc(64);
			if (p == NULL) {
				fputs("bench: malloc(64) returned NULL\n", stderr);
				exit(1);
			}
			__asm__ volatile("" : : "r"(p) : "memory");
			free(p);
		}
		ns[rep] = (double)(bench_now_ns() - t0) / (double)pairs;
	}
	return bench_median3(ns);
}

void bench_baseline_measure(struct bench_baseline *base, uint64_t pairs_per_rep)
{
	base->mutex_ns = mutex_ns_per_pair(pairs_per_rep);
	base->malloc_ns = malloc64_ns_per_pair(pairs_per_rep);
}

void bench_baseline_print(const struct bench_baseline *base)
{
	printf("# baselines: uncontended pthread_mutex lock+unlock, glibc "
	       "malloc(64)+free; x-mutex and x-malloc = figure / baseline\n");
	bench_figure_begin(base, "baseline-mutex", "", base->mutex_ns, 1);
	bench_figure_end();
	bench_figure_begin(base, "baseline-malloc64", "", base->malloc_ns, 1);
	bench_figure_end();
}

void bench_figure_begin(const struct bench_baseline *base, const char *workload,
    const char *param, double ns_per_pair, unsigned threads)
{
	double mpairs_per_s = ns_per_pair > 0 ? 1e3 * threads / ns_per_pair : 0;

	printf("%s%s%s ns/pair=%.1f Mpairs/s=%.2f", workload,
	    param[0] != '\0' ? " " : "", param, ns_per_pair, mpairs_per_s);
	if (base->malloc_ns > 0)
		printf(" x-malloc=%.2f", ns_per_pair / base->malloc_ns);
	if (base->mutex_ns > 0)
		printf(" x-mutex=%.2f", ns_per_pair / base->mutex_ns);
}

void bench_figure_end(void)
{
	putchar('\n');
	fflush(stdout);
}

void bench_print_machine(void)
{
	FILE *fp = fopen("/proc/loadavg", "r");
	double load1 = -1;

	if (fp != NULL) {
		if (fscanf(fp, "%lf", &load1) != 1)
			load1 = -1;
		fclose(fp);
	}
	printf("# cpus=%ld loadavg-1min=%.2f (a load near cpus or above it "
	       "inflates every time below)\n",
	    sysconf(_SC_NPROCESSORS_ONLN), load1);
}
