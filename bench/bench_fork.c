/*
 * bench_fork.c — what the fork protocol costs: the latency of fork() +
 * waitpid() of a child that exits at once, in a process with 1, 100 and
 * 1,000 arenas and object caches, against the same fork in a process that
 * never used quanta (no handlers run).  The baseline runs first, in a
 * child of this process that touches no quanta function, so the library is
 * linked but unused there — exactly "a process that does not use quanta".
 *
 * Output: one line per size, the median of the runs in microseconds, the
 * ratio to the baseline, and the median of the handlers' own share (the
 * prepare lockup and the parent release, timed without a fork): the rest
 * of the difference is the kernel copying a larger address space.
 * --quick: fewer forks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"
#include "vmem_impl.h"

#define SIZES 3
#define FORKS_MAX 400

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median latency of n fork + wait pairs, in microseconds. */
static double fork_median_us(int n)
{
	static double t[FORKS_MAX];
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		int status;
		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			return -1.0;
		t[i] = now_us() - t0;
	}
	qsort(t, (size_t)n, sizeof(t[0]), cmp_double);
	return t[n / 2];
}

/* Median of n prepare + parent handler pairs (lockup, release). */
static double handlers_median_us(int n)
{
	static double t[FORKS_MAX];
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		umem_lockup();
		vmem_lockup();
		vmem_release();
		umem_release();
		t[i] = now_us() - t0;
	}
	qsort(t, (size_t)n, sizeof(t[0]), cmp_double);
	return t[n / 2];
}

/* The baseline in a child that never calls quanta; back through a pipe. */
static double baseline_us(int n)
{
	int fd[2];
	double v = -1.0;
	if (pipe(fd) != 0)
		return -1.0;
	pid_t pid = fork();
	if (pid == 0) {
		double m = fork_median_us(n);
		ssize_t w = write(fd[1], &m, sizeof(m));
		_exit(w == (ssize_t)sizeof(m) ? 0 : 1);
	}
	close(fd[1]);
	if (read(fd[0], &v, sizeof(v)) != (ssize_t)sizeof(v))
		v = -1.0;
	close(fd[0]);
	waitpid(pid, NULL, 0);
	return v;
}

int main(int argc, char **argv)
{
	int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	int n = quick ? 40 : FORKS_MAX;
	static const int sizes[SIZES] = {1, 100, 1000};
	double base = baseline_us(n);
	if (base <= 0) {
		fprintf(stderr, "bench_fork: baseline failed\n");
		return 1;
	}
	printf("fork+wait median, %d forks each; baseline (quanta unused): "
	    "%.1f us\n", n, base);
	int made = 0;
	for (int s = 0; s < SIZES; s++) {
		for (; made < sizes[s]; made++) {
			char name[32];
			snprintf(name, sizeof(name), "bench_fork_%d", made);
			vmem_t *vmp = vmem_create(name, NULL, 0, 16, vmem_alloc,
			    vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
			umem_cache_t *cp = umem_cache_create(name, 64, 0, NULL,
			    NULL, NULL, NULL, vmp, 0);
			void *b = cp != NULL ? umem_cache_alloc(cp, 0) : NULL;
			if (vmp == NULL || b == NULL) {
				fprintf(stderr, "bench_fork: setup failed\n");
				return 1;
			}
			umem_cache_free(cp, b);
		}
		double m = fork_median_us(n);
		if (m <= 0)
			return 1;
		printf("%5d arenas + %5d caches: %8.1f us  ratio %6.2f  "
		    "(handlers %7.1f us)\n", sizes[s], sizes[s], m, m / base,
		    handlers_median_us(n));
	}
	return 0;
}
