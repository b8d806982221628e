/*
 * quanta — bench/figures.c: clock, median, baselines and the figure line
 * shared by the bench programs (bench/figures.h says what each one is for).
 *
 * The two baseline loops keep the compiler from removing or merging their
 * calls: the mutex is a static object with external effects, and every
 * malloc result passes through an empty asm that claims to read it and to
 * touch memory, so the malloc + free pair cannot be folded away (GCC and
 * clang both elide a malloc whose result is only freed).
 *
 * The seam line times the library's own lock call, plat_mutex_lock/unlock of
 * src/platform.h (static inline wrappers of pthread in every build but the
 * simulator's), against the bare pthread pair, in loops that differ only in
 * that call: in release the ratio is 1 up to noise, the seam costing nothing.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "figures.h"
#include "platform.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static clockid_t bench_clock = CLOCK_MONOTONIC;

void bench_clock_use_cpu(void)
{
	bench_clock = CLOCK_PROCESS_CPUTIME_ID;
}

const char *bench_clock_name(void)
{
	return bench_clock == CLOCK_MONOTONIC ? "CLOCK_MONOTONIC" :
	    "CLOCK_PROCESS_CPUTIME_ID";
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(bench_clock, &ts) != 0) {
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

/* One repetition of the pthread pair, ns per pair. */
static double mutex_rep_ns(uint64_t pairs)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < pairs; i++) {
		pthread_mutex_lock(&lock);
		pthread_mutex_unlock(&lock);
	}
	return (double)(bench_now_ns() - t0) / (double)pairs;
}

/* The same through the platform seam. */
static double plat_mutex_rep_ns(uint64_t pairs)
{
	static plat_mutex_t lock = PLAT_MUTEX_INITIALIZER;
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < pairs; i++) {
		plat_mutex_lock(&lock);
		plat_mutex_unlock(&lock);
	}
	return (double)(bench_now_ns() - t0) / (double)pairs;
}

static double mutex_ns_per_pair(uint64_t pairs)
{
	double ns[BENCH_REPS];

	for (int rep = 0; rep < BENCH_REPS; rep++)
		ns[rep] = mutex_rep_ns(pairs);
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

void bench_seam_print(const struct bench_baseline *base, uint64_t pairs_per_rep)
{
	double raw[BENCH_REPS], seam[BENCH_REPS];

	for (int rep = 0; rep < BENCH_REPS; rep++) {
		raw[rep] = mutex_rep_ns(pairs_per_rep);
		seam[rep] = plat_mutex_rep_ns(pairs_per_rep);
	}
	double raw_ns = bench_median3(raw), seam_ns = bench_median3(seam);
	bench_figure_begin(base, "plat-mutex", "", seam_ns, 1);
	printf(" pthread-ns/pair=%.1f x-pthread=%.2f", raw_ns, seam_ns / raw_ns);
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
