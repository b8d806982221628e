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
 * It is a ratio of two loops of a few ns per pair, so it is timed with the
 * thread's CPU clock: on a loaded machine, wall time lost to other processes
 * swung it from 0.5 to 1.1; CPU time holds it at 1.00.
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

/* Pairs of the pthread pair, and the same through the platform seam. */
static void mutex_pairs(uint64_t pairs)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	for (uint64_t i = 0; i < pairs; i++) {
		pthread_mutex_lock(&lock);
		pthread_mutex_unlock(&lock);
	}
}

static void plat_mutex_pairs(uint64_t pairs)
{
	static plat_mutex_t lock = PLAT_MUTEX_INITIALIZER;

	for (uint64_t i = 0; i < pairs; i++) {
		plat_mutex_lock(&lock);
		plat_mutex_unlock(&lock);
	}
}

static double mutex_ns_per_pair(uint64_t pairs)
{
	double ns[BENCH_REPS];

	for (int rep = 0; rep < BENCH_REPS; rep++) {
		uint64_t t0 = bench_now_ns();
		mutex_pairs(pairs);
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

/* The calling thread's CPU clock in ns (the seam line's). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) {
		perror("bench: clock_gettime");
		exit(1);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A repetition of the seam line is SEAM_CHUNKS turns of pthread pairs then
 * seam pairs, so that whatever else slows the processor slows both alike. */
#define SEAM_CHUNKS 16

void bench_seam_print(uint64_t pairs_per_rep)
{
	static const struct bench_baseline no_ratios = { 0, 0 };
	double raw[BENCH_REPS], seam[BENCH_REPS];
	uint64_t chunk = pairs_per_rep / SEAM_CHUNKS + 1;

	for (int rep = 0; rep < BENCH_REPS; rep++) {
		uint64_t raw_sum = 0, seam_sum = 0;
		for (int c = 0; c < SEAM_CHUNKS; c++) {
			uint64_t t0 = thread_cpu_ns();
			mutex_pairs(chunk);
			uint64_t t1 = thread_cpu_ns();
			plat_mutex_pairs(chunk);
			raw_sum += t1 - t0;
			seam_sum += thread_cpu_ns() - t1;
		}
		raw[rep] = (double)raw_sum / (double)(chunk * SEAM_CHUNKS);
		seam[rep] = (double)seam_sum / (double)(chunk * SEAM_CHUNKS);
	}
	double raw_ns = bench_median3(raw), seam_ns = bench_median3(seam);
	bench_figure_begin(&no_ratios, "plat-mutex", "", seam_ns, 1);
	printf(" pthread-ns/pair=%.1f x-pthread=%.2f clock=thread-cpu", raw_ns,
	    seam_ns / raw_ns);
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
