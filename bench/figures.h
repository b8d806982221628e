/*
 * quanta — bench/figures.h: what the bench programs share.
 *
 * Every bench program prints figures and never judges them.  The pieces they
 * have in common live here, so that every program reads its clock, takes its
 * median and writes its figure lines the same way:
 *
 *   - the clock (CLOCK_MONOTONIC, whole loops timed, never single calls);
 *   - the median of BENCH_REPS = 3 repetitions, the statistic of every figure;
 *   - the two baselines every figure is divided by, measured by the program
 *     itself moments before its figures: an uncontended pthread mutex
 *     lock + unlock, and a glibc malloc(64) + free.  A figure divided by a
 *     baseline of the same run is comparable across machines and loads;
 *   - the figure line: "WORKLOAD PARAM ns/pair=… Mpairs/s=… x-malloc=…
 *     x-mutex=…", to which a program may append fields of its own before
 *     ending the line (bench/README.md lists every line).
 *
 * Exit statuses shared by the programs: 0 whatever the timings, BENCH_EXIT_API
 * (2) when the allocator misbehaves or the command line is wrong, 1 when the
 * machine fails the bench (out of memory, a failed fork or clock).
 */
#ifndef QUANTA_BENCH_FIGURES_H
#define QUANTA_BENCH_FIGURES_H

#include <stdint.h>

#define BENCH_REPS 3
#define BENCH_EXIT_API 2

/* The figures' clock in ns (CLOCK_MONOTONIC unless bench_clock_use_cpu was
 * called); exits 1 if the clock fails. */
uint64_t bench_now_ns(void);

/* From now on, time with the process's CPU clock (CLOCK_PROCESS_CPUTIME_ID):
 * the time the process lost to other work is not counted.  Single-threaded
 * programs only (bench_vmem --cpu-clock). */
void bench_clock_use_cpu(void);

/* "CLOCK_MONOTONIC" or "CLOCK_PROCESS_CPUTIME_ID", for the header line. */
const char *bench_clock_name(void);

/* The median of BENCH_REPS values (the array is left as it was). */
double bench_median3(const double v[BENCH_REPS]);

/* The baselines of one run, ns per pair; 0 when not measured (--no-baseline). */
struct bench_baseline {
	double mutex_ns;
	double malloc_ns;
};

/* Measure both baselines, pairs_per_rep pairs per repetition, median of 3. */
void bench_baseline_measure(struct bench_baseline *base, uint64_t pairs_per_rep);

/* Print the "baseline-mutex" and "baseline-malloc64" figure lines. */
void bench_baseline_print(const struct bench_baseline *base);

/*
 * The "plat-mutex" line: an uncontended plat_mutex_lock + plat_mutex_unlock
 * pair (the library's platform seam, src/platform.h), with the bare pthread
 * pair measured in the same run, in alternating chunks (pthread-ns/pair),
 * and x-pthread, the seam's figure over pthread's.  Both are timed with the
 * calling thread's CPU clock (clock=thread-cpu), whatever bench_now_ns
 * reads, so the line carries no x-malloc / x-mutex.
 */
void bench_seam_print(uint64_t pairs_per_rep);

/*
 * Begin a figure line: "WORKLOAD PARAM ns/pair=… Mpairs/s=… x-malloc=…
 * x-mutex=…" (PARAM may be "", the ratios only when the baselines were
 * measured), without the newline: the caller may append " key=value"
 * fields, then ends the line with bench_figure_end.  ns_per_pair is the
 * wall time of one pair on one thread; Mpairs/s counts the pairs of all
 * `threads` threads together.
 */
void bench_figure_begin(const struct bench_baseline *base, const char *workload,
    const char *param, double ns_per_pair, unsigned threads);
void bench_figure_end(void);

/* "# cpus=… loadavg-1min=…": the conditions every time below depends on. */
void bench_print_machine(void);

#endif /* QUANTA_BENCH_FIGURES_H */
