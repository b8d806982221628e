/*
 * quanta — bench/bench_fork.c: what the fork protocol costs.
 *
 * The figure is the latency of fork() + waitpid() of a child that exits at
 * once, the median of n such pairs (n = 400, 40 with --quick), in three kinds
 * of process:
 *
 *   fork-bare    a process that never used quanta: no handlers run, nothing
 *                allocated beyond what the bench itself holds;
 *   fork-quanta  this process with 1, 100 and 1,000 arenas (each importing
 *                from the heap arena) and one object cache of 64-byte objects
 *                on each, one object allocated and freed per cache;
 *   fork-glibc   a process that holds the same memory as fork-quanta of the
 *                same size, but through glibc: malloc(64) objects, each one
 *                written, until its anonymous resident set (RssAnon) has
 *                grown by as many bytes as the quanta setup grew that of a
 *                fresh process.  The objects chain through their first word, so
 *                the bench keeps no array of its own.
 *
 * fork-quanta's x-bare and x-glibc divide its latency by those of the other
 * two: x-glibc is what quanta costs at fork beyond holding that much memory
 * (the handlers, and the kernel copying more mappings: each line gives the
 * process's mapping count from /proc/self/maps).  handlers-us is the median
 * of the prepare lockup + parent release alone, timed without a fork.
 *
 * Order keeps every process honest: the parent touches no quanta function
 * until the end.  First a probe child builds the quanta setups and reports
 * how much each grew its resident set; then the bare and glibc processes run
 * as children of the untouched parent (the library is linked but unused
 * there, exactly "a process that does not use quanta"); last the parent
 * builds the setups itself and forks.  With n = 400 the whole run takes a
 * few seconds (the slowest fork, 1,000 arenas, is a few ms).
 *
 * Exit status 0 whatever the times; 1 when a fork, pipe or setup fails.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "figures.h"
#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"
#include "vmem_impl.h"

#define SIZES 3
#define FORKS_MAX 400
#define OBJ_BYTES 64
/* The glibc process reads its resident set every RSS_CHECK_OBJS objects:
 * 256 x 80 bytes (64 and malloc's header) = 20 KiB, the most it may
 * overshoot its target by (the 1-arena setup holds about 8 times that);
 * at ~20 us a read, the 1,000-arena target (~11 MiB) costs ~10 ms of reads. */
#define RSS_CHECK_OBJS 256

static const int setup_sizes[SIZES] = { 1, 100, 1000 };

/* What a process reports of one fork figure. */
struct fork_figure {
	double us;              /* median fork + wait */
	double rss_delta_bytes; /* anonymous resident growth of the setup */
	long maps;              /* lines of /proc/self/maps at the fork */
	long objs;              /* fork-glibc: malloc(64) objects held */
	double minflt_parent;   /* minor faults per fork, forking process */
	double minflt_child;    /* ... and its children */
};

static double now_us(void)
{
	return (double)bench_now_ns() / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fflush(stdout);
	fprintf(stderr, "bench_fork: %s\n", what);
	exit(1);
}

/*
 * Anonymous resident bytes (RssAnon of /proc/self/status).  Not the whole
 * resident set: a fresh child maps the parent's file pages (libc's text)
 * without their page-table entries and faults them back in as it runs,
 * which would count hundreds of KiB of code as the setup's memory.
 */
static double rss_anon_bytes(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kib = 0;
	bool found = false;

	if (fp == NULL)
		die("cannot read /proc/self/status");
	while (!found && fgets(line, sizeof line, fp) != NULL)
		found = sscanf(line, "RssAnon: %llu", &kib) == 1;
	fclose(fp);
	if (!found)
		die("no RssAnon in /proc/self/status");
	return (double)kib * 1024;
}

/* Mappings of the process: the kernel copies each at fork. */
static long maps_count(void)
{
	FILE *fp = fopen("/proc/self/maps", "r");
	long lines = 0;
	int c;

	if (fp == NULL)
		die("cannot read /proc/self/maps");
	while ((c = getc(fp)) != EOF)
		lines += c == '\n';
	fclose(fp);
	return lines;
}

/* Median latency of n fork + wait pairs, in microseconds. */
/* Minor page faults per fork of the last fork_median_us: in the forking
 * process and in its children (copy-on-write faults of the pages the fork
 * handlers write, among others). */
static double fork_minflt_parent, fork_minflt_child;

static long minflt(int who)
{
	struct rusage ru;
	return getrusage(who, &ru) == 0 ? ru.ru_minflt : 0;
}

static double fork_median_us(int n)
{
	static double t[FORKS_MAX];
	long p0 = minflt(RUSAGE_SELF), c0 = minflt(RUSAGE_CHILDREN);
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		int status;
		if (pid < 0 || waitpid(pid, &status, 0) != pid)
			die("fork or waitpid failed");
		t[i] = now_us() - t0;
	}
	fork_minflt_parent = (double)(minflt(RUSAGE_SELF) - p0) / n;
	fork_minflt_child = (double)(minflt(RUSAGE_CHILDREN) - c0) / n;
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

/*
 * Run fn(n, arg, out) in a child of this process and copy its out_bytes
 * back through a pipe: the child's allocations and library state stay there.
 */
static void in_child(void (*fn)(int, double, void *), int n, double arg,
    void *out, size_t out_bytes)
{
	int fd[2], status = 0;
	ssize_t got;
	pid_t pid;

	fflush(stdout);
	if (pipe(fd) != 0)
		die("pipe failed");
	pid = fork();
	if (pid < 0)
		die("fork failed");
	if (pid == 0) {
		close(fd[0]);
		fn(n, arg, out);
		ssize_t w = write(fd[1], out, out_bytes);
		_exit(w == (ssize_t)out_bytes ? 0 : 1);
	}
	close(fd[1]);
	got = read(fd[0], out, out_bytes);
	close(fd[0]);
	if (waitpid(pid, &status, 0) != pid || got != (ssize_t)out_bytes ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("a measuring child failed");
}

/* Grow the quanta setup to `total` arenas with a cache each. */
static void quanta_setup_grow(int *made, int total)
{
	for (; *made < total; (*made)++) {
		char name[32];
		snprintf(name, sizeof(name), "bench_fork_%d", *made);
		vmem_t *vmp = vmem_create(name, NULL, 0, 16, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
		umem_cache_t *cp = vmp == NULL ? NULL :
		    umem_cache_create(name, OBJ_BYTES, 0, NULL, NULL, NULL, NULL,
		        vmp, 0);
		void *b = cp != NULL ? umem_cache_alloc(cp, 0) : NULL;
		if (b == NULL)
			die("quanta setup failed");
		umem_cache_free(cp, b);
	}
}

/* Child: the resident growth of each quanta setup size (no forks). */
static void probe_child(int n, double unused, void *out)
{
	double *delta = out, rss0 = rss_anon_bytes();
	int made = 0;

	(void)n;
	(void)unused;
	for (int s = 0; s < SIZES; s++) {
		quanta_setup_grow(&made, setup_sizes[s]);
		delta[s] = rss_anon_bytes() - rss0;
	}
}

/* Child: a bare process, or (target_bytes > 0) one holding that much in
 * written malloc(64) objects. */
static void glibc_child(int n, double target_bytes, void *out)
{
	struct fork_figure *f = out;
	double rss0 = rss_anon_bytes();
	long objs_max = (long)(target_bytes / OBJ_BYTES) + 2 * RSS_CHECK_OBJS;
	void *chain = NULL;

	f->objs = 0;
	while (target_bytes > 0 && f->objs < objs_max &&
	    (f->objs % RSS_CHECK_OBJS != 0 || rss_anon_bytes() - rss0 < target_bytes)) {
		void **obj = malloc(OBJ_BYTES);
		if (obj == NULL)
			die("malloc(64) returned NULL");
		memset(obj, 0x5a, OBJ_BYTES);
		*obj = chain;
		chain = obj;
		f->objs++;
	}
	__asm__ volatile("" : : "r"(chain) : "memory");
	f->rss_delta_bytes = rss_anon_bytes() - rss0;
	f->maps = maps_count();
	f->us = fork_median_us(n);
	f->minflt_parent = fork_minflt_parent;
	f->minflt_child = fork_minflt_child;
}

static void print_glibc(const char *name, int like_arenas,
    const struct fork_figure *f)
{
	if (like_arenas > 0)
		printf("%s like-arenas=%d", name, like_arenas);
	else
		printf("%s", name);
	printf(" us/fork=%.1f anon-delta-KiB=%.0f maps=%ld objs=%ld "
	    "minflt-parent=%.0f minflt-child=%.0f\n", f->us,
	    f->rss_delta_bytes / 1024, f->maps, f->objs, f->minflt_parent,
	    f->minflt_child);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
	int n = quick ? 40 : FORKS_MAX;
	double probe[SIZES];
	struct fork_figure bare, glibc[SIZES];
	int made = 0;

	if (argc > 2 || (argc == 2 && !quick)) {
		fprintf(stderr, "usage: bench_fork [--quick]\n");
		return BENCH_EXIT_API;
	}
	printf("# quanta bench_fork mode=%s stat=median of %d fork+wait pairs "
	    "clock=CLOCK_MONOTONIC\n", quick ? "quick" : "full", n);
	bench_print_machine();
	in_child(probe_child, n, 0, probe, sizeof probe);
	in_child(glibc_child, n, 0, &bare, sizeof bare);
	print_glibc("fork-bare", 0, &bare);
	for (int s = 0; s < SIZES; s++) {
		in_child(glibc_child, n, probe[s], &glibc[s], sizeof glibc[s]);
		print_glibc("fork-glibc", setup_sizes[s], &glibc[s]);
	}
	double rss0 = rss_anon_bytes();
	for (int s = 0; s < SIZES; s++) {
		quanta_setup_grow(&made, setup_sizes[s]);
		double rss_delta = rss_anon_bytes() - rss0;
		long maps = maps_count();
		double us = fork_median_us(n);
		double fp = fork_minflt_parent, fc = fork_minflt_child;
		printf("fork-quanta arenas=%d us/fork=%.1f x-bare=%.2f "
		    "x-glibc=%.2f handlers-us=%.1f anon-delta-KiB=%.0f maps=%ld "
		    "minflt-parent=%.0f minflt-child=%.0f\n",
		    setup_sizes[s], us, us / bare.us, us / glibc[s].us,
		    handlers_median_us(n), rss_delta / 1024, maps, fp, fc);
		fflush(stdout);
	}
	return 0;
}
