/*
 * quanta — bench/bench_vmem.c: speed and memory figures of the vmem arena.
 *
 * This program prints figures; it never judges them.  Its exit status is 0
 * whatever the timings, 2 only when the allocator misbehaves (a NULL from an
 * allocation that must succeed, an address that breaks the request's
 * constraints, an arena that cannot be created) or the command line is wrong.
 *
 * Every figure is the median of 3 repetitions.  Times come from
 * CLOCK_MONOTONIC around whole loops; random sizes and victims come from a
 * fixed-seed xorshift64 generator, so two runs do the same work.  The loops
 * also carry the generator and the bench's own array bookkeeping, a few
 * nanoseconds of every pair; the mutex baseline in the header gives the scale.
 *
 * Figures (bench/README.md explains each one):
 *   baseline    uncontended pthread_mutex lock + unlock, ns/pair
 *   W1-ring     N live; free the oldest, allocate a new one
 *   W1-instant  N live; free a random live one, allocate a new one
 *   xalloc      constrained vmem_xalloc + vmem_xfree beside 1e4 live segments
 *   memory      RSS growth per live allocation (1e6 allocated, evens freed)
 *   hash        ns/free, random order, 100k live vs 1k live, and the ratio
 *
 * The memory figure runs first, each repetition in a forked child that has
 * never called the library, so that tags recycled from earlier arenas cannot
 * hide the growth.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmem.h"

#define REPS 3
#define EXIT_API 2

/* Workload constants, named with their units last. */
#define W1_BASE ((uintptr_t)0x10000000u)
#define W1_SIZE_BYTES ((size_t)1 << 40)
#define W1_QUANTUM_BYTES ((size_t)16)
#define XA_QUANTUM_BYTES ((size_t)4096)
#define XA_LIVE_COUNT ((size_t)10000)
#define XA_ALIGN_BYTES ((size_t)64 * 1024)
#define XA_NOCROSS_BYTES ((size_t)1 << 20)
#define MEM_BASE ((uintptr_t)0x100000000000u)
#define MEM_SIZE_BYTES ((size_t)1 << 44)
#define MEM_QUANTUM_BYTES ((size_t)4096)
#define MEM_ALLOC_COUNT ((size_t)1000000)
#define HASH_BIG_COUNT ((size_t)100000)
#define HASH_SMALL_COUNT ((size_t)1000)

/* How much work each figure does, per mode. */
struct bench_plan {
	const char *mode_name;
	uint64_t mutex_pairs;      /* per repetition */
	uint64_t w1_pairs;         /* timed pairs per repetition */
	size_t w1_live_max;        /* largest N of W1-ring / W1-instant */
	uint64_t xalloc_pairs;     /* per repetition */
	uint64_t hash_frees_total; /* frees per repetition, each size */
};

static const struct bench_plan plan_full = {
	"full", 20000000u, 2000000u, 1000000u, 2000000u, 1000000u,
};
static const struct bench_plan plan_quick = {
	"quick", 2000000u, 200000u, 100000u, 200000u, 200000u,
};

/* One live allocation held by a workload. */
struct live_seg {
	uintptr_t addr;
	size_t size_bytes;
};

/* ---- helpers: errors, clock, generator, median ------------------------- */

static void die_api(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_api(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("bench_vmem: API misbehaved: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_API);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("bench_vmem: clock_gettime");
		exit(1);
	}
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the process (this one only: not the forked children). */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64 (Marsaglia 2003, shifts 13/7/17); never zero once seeded. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed != 0 ? seed : 0x9e3779b97f4a7c15u;
}

static inline uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* Uniform in [1, 64] from the top six bits. */
static inline size_t rng_quanta_1_64(void)
{
	return (size_t)(rng_next() >> 58) + 1;
}

/* Uniform in [0, n) for n <= 2^32, by a multiply instead of a division. */
static inline size_t rng_below(size_t n)
{
	return (size_t)(((rng_next() >> 32) * (uint64_t)n) >> 32);
}

static double median3(const double v[REPS])
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

/*
 * An array whose pages are all resident before any figure is taken.  The fill
 * is not zero: compilers turn calloc + memset(0) back into a bare calloc,
 * whose untouched pages would fault in later, inside a measurement.
 */
static void *array_alloc_resident(size_t count, size_t size)
{
	void *p = count <= SIZE_MAX / size ? malloc(count * size) : NULL;

	if (p == NULL) {
		fprintf(stderr, "bench_vmem: out of memory (%zu x %zu)\n", count, size);
		exit(1);
	}
	memset(p, 0xa5, count * size);
	return p;
}

static vmem_t *arena_create(const char *name, uintptr_t base, size_t size_bytes,
    size_t quantum_bytes)
{
	vmem_t *vm = vmem_create(name, (void *)base, size_bytes, quantum_bytes,
	    NULL, NULL, NULL, 0, VM_SLEEP);

	if (vm == NULL)
		die_api("vmem_create(%s, %#lx, %#zx, %zu) returned NULL", name,
		    (unsigned long)base, size_bytes, quantum_bytes);
	return vm;
}

/* Allocate 1..64 quanta into *seg; any failure is an API failure. */
static inline void seg_alloc_random(vmem_t *vm, struct live_seg *seg,
    size_t quantum_bytes)
{
	size_t size_bytes = rng_quanta_1_64() * quantum_bytes;
	void *p = vmem_alloc(vm, size_bytes, VM_NOSLEEP);

	if (p == NULL || ((uintptr_t)p & (quantum_bytes - 1)) != 0)
		die_api("vmem_alloc(%s, %zu, VM_NOSLEEP) returned %p", vmem_name(vm),
		    size_bytes, p);
	seg->addr = (uintptr_t)p;
	seg->size_bytes = size_bytes;
}

static inline void seg_free(vmem_t *vm, const struct live_seg *seg)
{
	vmem_free(vm, (void *)seg->addr, seg->size_bytes);
}

static void segs_free_all(vmem_t *vm, const struct live_seg *segs, size_t count)
{
	for (size_t i = 0; i < count; i++)
		seg_free(vm, &segs[i]);
}

/* ---- 1. baseline: uncontended mutex pair -------------------------------- */

static double bench_mutex_ns_per_pair(const struct bench_plan *plan)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	double ns[REPS];

	for (int rep = 0; rep < REPS; rep++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < plan->mutex_pairs; i++) {
			pthread_mutex_lock(&lock);
			pthread_mutex_unlock(&lock);
		}
		ns[rep] = (double)(now_ns() - t0) / (double)plan->mutex_pairs;
	}
	return median3(ns);
}

/* ---- 2 and 3. W1: steady state of N live segments ------------------------ */

enum w1_victim { W1_OLDEST, W1_RANDOM };

/* Free the oldest (slot *head), allocate into its slot; pairs times. */
static void w1_ring_pairs(vmem_t *vm, struct live_seg *segs, size_t live_count,
    size_t *head, uint64_t pairs)
{
	size_t h = *head;

	for (uint64_t i = 0; i < pairs; i++) {
		seg_free(vm, &segs[h]);
		seg_alloc_random(vm, &segs[h], W1_QUANTUM_BYTES);
		h = h + 1 == live_count ? 0 : h + 1;
	}
	*head = h;
}

/*
 * Free a random live one (swap-remove), allocate a new one at the end.  The
 * victim is drawn one pair ahead and its slot prefetched: a caller of
 * vmem_free has the address at hand, so the miss on the bench's own array
 * (16 MB at N = 1e6) is not charged to the allocator.
 */
static void w1_random_pairs(vmem_t *vm, struct live_seg *segs,
    size_t live_count, uint64_t pairs)
{
	size_t next_victim = rng_below(live_count);

	for (uint64_t i = 0; i < pairs; i++) {
		size_t victim = next_victim;
		next_victim = rng_below(live_count);
		__builtin_prefetch(&segs[next_victim]);
		seg_free(vm, &segs[victim]);
		segs[victim] = segs[live_count - 1];
		seg_alloc_random(vm, &segs[live_count - 1], W1_QUANTUM_BYTES);
	}
}

static void w1_pairs(enum w1_victim how, vmem_t *vm, struct live_seg *segs,
    size_t live_count, size_t *head, uint64_t pairs)
{
	if (how == W1_OLDEST)
		w1_ring_pairs(vm, segs, live_count, head, pairs);
	else
		w1_random_pairs(vm, segs, live_count, pairs);
}

/*
 * Fill the arena to live_count, run live_count untimed pairs so that the
 * free lists reach their steady state, then time REPS runs of plan pairs.
 */
static double bench_w1_ns_per_pair(enum w1_victim how, size_t live_count,
    const struct bench_plan *plan, struct live_seg *segs)
{
	const char *name = how == W1_OLDEST ? "bench-w1-ring" : "bench-w1-instant";
	vmem_t *vm = arena_create(name, W1_BASE, W1_SIZE_BYTES, W1_QUANTUM_BYTES);
	size_t head = 0;
	double ns[REPS];

	rng_seed(0x5eed0001u + (uint64_t)how * 0x100u + live_count);
	for (size_t i = 0; i < live_count; i++)
		seg_alloc_random(vm, &segs[i], W1_QUANTUM_BYTES);
	w1_pairs(how, vm, segs, live_count, &head, live_count);
	for (int rep = 0; rep < REPS; rep++) {
		uint64_t t0 = now_ns();
		w1_pairs(how, vm, segs, live_count, &head, plan->w1_pairs);
		ns[rep] = (double)(now_ns() - t0) / (double)plan->w1_pairs;
	}
	segs_free_all(vm, segs, live_count);
	vmem_destroy(vm);
	return median3(ns);
}

/* ---- 4. constrained allocation ------------------------------------------ */

static inline void xalloc_pair_once(vmem_t *vm)
{
	size_t size_bytes = ((size_t)(rng_next() >> 60) + 1) * XA_QUANTUM_BYTES;
	void *p = vmem_xalloc(vm, size_bytes, XA_ALIGN_BYTES, 0, XA_NOCROSS_BYTES,
	    NULL, NULL, VM_NOSLEEP);
	uintptr_t a = (uintptr_t)p;

	if (p == NULL || (a & (XA_ALIGN_BYTES - 1)) != 0 ||
	    ((a ^ (a + size_bytes - 1)) & ~(uintptr_t)(XA_NOCROSS_BYTES - 1)) != 0)
		die_api("vmem_xalloc(%s, %zu, align %zu, nocross %zu) returned %p",
		    vmem_name(vm), size_bytes, XA_ALIGN_BYTES, XA_NOCROSS_BYTES, p);
	vmem_xfree(vm, p, size_bytes);
}

static double bench_xalloc_ns_per_pair(const struct bench_plan *plan,
    struct live_seg *segs)
{
	vmem_t *vm = arena_create("bench-xalloc", W1_BASE, W1_SIZE_BYTES,
	    XA_QUANTUM_BYTES);
	double ns[REPS];

	rng_seed(0x5eed0004u);
	for (size_t i = 0; i < XA_LIVE_COUNT; i++)
		seg_alloc_random(vm, &segs[i], XA_QUANTUM_BYTES);
	for (uint64_t i = 0; i < plan->xalloc_pairs / 10; i++)
		xalloc_pair_once(vm);
	for (int rep = 0; rep < REPS; rep++) {
		uint64_t t0 = now_ns();
		for (uint64_t i = 0; i < plan->xalloc_pairs; i++)
			xalloc_pair_once(vm);
		ns[rep] = (double)(now_ns() - t0) / (double)plan->xalloc_pairs;
	}
	segs_free_all(vm, segs, XA_LIVE_COUNT);
	vmem_destroy(vm);
	return median3(ns);
}

/* ---- 5. memory: RSS growth per live allocation --------------------------- */

/* Read a whole small /proc file with read(2): stdio would malloc a buffer. */
static size_t proc_read(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	size_t len = 0;

	if (fd < 0) {
		perror(path);
		exit(1);
	}
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return len;
}

/* Resident bytes: the second field of /proc/self/statm times the page size. */
static uint64_t rss_statm_bytes(void)
{
	char buf[256];
	unsigned long long size_pages = 0, resident_pages = 0;

	proc_read("/proc/self/statm", buf, sizeof buf);
	if (sscanf(buf, "%llu %llu", &size_pages, &resident_pages) != 2) {
		fprintf(stderr, "bench_vmem: cannot parse /proc/self/statm\n");
		exit(1);
	}
	return (uint64_t)resident_pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* VmRSS of /proc/self/status, in KiB. */
static uint64_t vmrss_kib(void)
{
	char buf[4096];
	unsigned long long kib = 0;
	const char *line;

	proc_read("/proc/self/status", buf, sizeof buf);
	line = strstr(buf, "VmRSS:");
	if (line == NULL || sscanf(line + 6, "%llu", &kib) != 1) {
		fprintf(stderr, "bench_vmem: no VmRSS in /proc/self/status\n");
		exit(1);
	}
	return (uint64_t)kib;
}

struct memory_result {
	double bytes_per_live;
	double vmrss_delta_mib;
	double hash_buckets; /* the arena's hash size after the frees */
};

/* One repetition, in a process that has not used the library before. */
static struct memory_result memory_measure_once(void)
{
	struct live_seg *segs = array_alloc_resident(MEM_ALLOC_COUNT, sizeof *segs);
	size_t live_count = MEM_ALLOC_COUNT / 2;
	vmem_t *vm = arena_create("bench-memory", MEM_BASE, MEM_SIZE_BYTES,
	    MEM_QUANTUM_BYTES);
	struct memory_result r;
	vmem_stats_t st;
	uint64_t rss0, rss1, kib0, kib1;

	rng_seed(0x5eed0005u);
	rss0 = rss_statm_bytes();
	kib0 = vmrss_kib();
	for (size_t i = 0; i < MEM_ALLOC_COUNT; i++)
		seg_alloc_random(vm, &segs[i], MEM_QUANTUM_BYTES);
	for (size_t i = 0; i < MEM_ALLOC_COUNT; i += 2)
		seg_free(vm, &segs[i]);
	rss1 = rss_statm_bytes();
	kib1 = vmrss_kib();
	r.bytes_per_live = ((double)rss1 - (double)rss0) / (double)live_count;
	r.vmrss_delta_mib = ((double)kib1 - (double)kib0) / 1024.0;
	vmem_stats(vm, &st);
	r.hash_buckets = (double)st.vs_hash_buckets;
	return r;
}

/* Each repetition in a fresh child; the parent never touches the library. */
static struct memory_result bench_memory(void)
{
	double per_live[REPS], mib[REPS], buckets[REPS];

	for (int rep = 0; rep < REPS; rep++) {
		int fds[2], status = 0;
		struct memory_result r;
		pid_t pid;

		fflush(stdout);
		fflush(stderr);
		if (pipe(fds) != 0 || (pid = fork()) < 0) {
			perror("bench_vmem: pipe/fork");
			exit(1);
		}
		if (pid == 0) {
			close(fds[0]);
			r = memory_measure_once();
			if (write(fds[1], &r, sizeof r) != (ssize_t)sizeof r)
				_exit(1);
			_exit(0);
		}
		close(fds[1]);
		ssize_t got = read(fds[0], &r, sizeof r);
		close(fds[0]);
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0 || got != (ssize_t)sizeof r) {
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
			fprintf(stderr, "bench_vmem: memory child failed (status %#x)\n",
			    status);
			exit(code == EXIT_API ? EXIT_API : 1);
		}
		per_live[rep] = r.bytes_per_live;
		mib[rep] = r.vmrss_delta_mib;
		buckets[rep] = r.hash_buckets;
	}
	return (struct memory_result){ median3(per_live), median3(mib),
		median3(buckets) };
}

/* ---- 6. hash: free cost at 100k live vs 1k live -------------------------- */

/* One round on a fresh arena: allocate count, time count frees in random order. */
static uint64_t hash_round_free_ns(size_t count, struct live_seg *segs,
    size_t *buckets_at_peak)
{
	vmem_t *vm = arena_create("bench-hash", W1_BASE, W1_SIZE_BYTES,
	    W1_QUANTUM_BYTES);
	vmem_stats_t st;
	uint64_t t0, elapsed_ns;

	for (size_t i = 0; i < count; i++)
		seg_alloc_random(vm, &segs[i], W1_QUANTUM_BYTES);
	for (size_t i = count - 1; i > 0; i--) { /* Fisher-Yates */
		size_t j = rng_below(i + 1);
		struct live_seg t = segs[i];
		segs[i] = segs[j];
		segs[j] = t;
	}
	vmem_stats(vm, &st);
	*buckets_at_peak = st.vs_hash_buckets;
	t0 = now_ns();
	segs_free_all(vm, segs, count);
	elapsed_ns = now_ns() - t0;
	vmem_destroy(vm);
	return elapsed_ns;
}

static double bench_hash_ns_per_free(size_t count,
    const struct bench_plan *plan, struct live_seg *segs, size_t *buckets)
{
	uint64_t rounds = plan->hash_frees_total / count;
	double ns[REPS];

	if (rounds == 0)
		rounds = 1;
	rng_seed(0x5eed0006u + count);
	for (int rep = 0; rep < REPS; rep++) {
		uint64_t total_ns = 0;
		for (uint64_t r = 0; r < rounds; r++)
			total_ns += hash_round_free_ns(count, segs, buckets);
		ns[rep] = (double)total_ns / (double)(rounds * count);
	}
	return median3(ns);
}

/* ---- main ---------------------------------------------------------------- */

/* What to run: every figure by default; --only and --n narrow it (profiling). */
struct bench_select {
	const char *only; /* NULL, or one of the names in usage() */
	size_t w1_live;   /* 0, or the one N of the W1 figures */
	bool no_baseline; /* skip the mutex loop (keeps it out of a profile) */
};

static bool selected(const struct bench_select *sel, const char *name)
{
	return sel->only == NULL || strcmp(sel->only, name) == 0;
}

/* End a figure line with its ratio to the baseline (none when skipped). */
static void print_x_mutex(double ns, double mutex_ns)
{
	if (mutex_ns > 0)
		printf(" x-mutex=%.2f", ns / mutex_ns);
	putchar('\n');
}

/* The conditions of the run: other load on the machine moves every figure. */
static void print_machine(void)
{
	char buf[256];
	double load1 = 0;

	proc_read("/proc/loadavg", buf, sizeof buf);
	if (sscanf(buf, "%lf", &load1) != 1)
		load1 = -1;
	printf("# cpus=%ld loadavg-1min=%.2f (a load near cpus or above it "
	       "inflates every time below)\n",
	    sysconf(_SC_NPROCESSORS_ONLN), load1);
}

static const size_t w1_live_counts[] = { 1000, 10000, 100000, 1000000 };
#define W1_LIVE_COUNTS (sizeof w1_live_counts / sizeof w1_live_counts[0])

static void report_w1(enum w1_victim how, const struct bench_plan *plan,
    const struct bench_select *sel, double mutex_ns)
{
	const char *name = how == W1_OLDEST ? "W1-ring" : "W1-instant";
	size_t live_max = sel->w1_live != 0 ? sel->w1_live : plan->w1_live_max;
	struct live_seg *segs = array_alloc_resident(live_max, sizeof *segs);
	double lo = 0, hi = 0;
	size_t runs = 0;

	for (size_t k = 0; k < W1_LIVE_COUNTS; k++) {
		size_t n = sel->w1_live != 0 ? sel->w1_live : w1_live_counts[k];
		if (n > live_max || (sel->w1_live != 0 && k > 0))
			break;
		double ns = bench_w1_ns_per_pair(how, n, plan, segs);
		printf("%s N=%zu ns/pair=%.1f", name, n, ns);
		print_x_mutex(ns, mutex_ns);
		fflush(stdout);
		lo = runs == 0 || ns < lo ? ns : lo;
		hi = runs == 0 || ns > hi ? ns : hi;
		runs++;
	}
	if (how == W1_OLDEST && runs > 1)
		printf("W1-ring spread max/min=%.2f\n", hi / lo);
	free(segs);
}

static void report_xalloc(const struct bench_plan *plan, double mutex_ns)
{
	struct live_seg *segs = array_alloc_resident(XA_LIVE_COUNT, sizeof *segs);
	double ns = bench_xalloc_ns_per_pair(plan, segs);

	printf("xalloc live=%zu ns/pair=%.1f", XA_LIVE_COUNT, ns);
	print_x_mutex(ns, mutex_ns);
	free(segs);
}

static void report_memory(const struct memory_result *mem)
{
	printf("memory allocs=%zu live=%zu bytes/live=%.1f hash-buckets=%.0f\n",
	    MEM_ALLOC_COUNT, MEM_ALLOC_COUNT / 2, mem->bytes_per_live,
	    mem->hash_buckets);
	printf("memory VmRSS-delta MiB=%.1f\n", mem->vmrss_delta_mib);
}

static void report_hash(const struct bench_plan *plan)
{
	struct live_seg *segs = array_alloc_resident(HASH_BIG_COUNT, sizeof *segs);
	size_t buckets_big = 0, buckets_small = 0;
	double big_ns = bench_hash_ns_per_free(HASH_BIG_COUNT, plan, segs,
	    &buckets_big);
	double small_ns = bench_hash_ns_per_free(HASH_SMALL_COUNT, plan, segs,
	    &buckets_small);

	printf("hash live=%zu ns/free=%.1f buckets=%zu\n", HASH_BIG_COUNT, big_ns,
	    buckets_big);
	printf("hash live=%zu ns/free=%.1f buckets=%zu\n", HASH_SMALL_COUNT,
	    small_ns, buckets_small);
	printf("hash ratio 100k/1k=%.2f\n", big_ns / small_ns);
	free(segs);
}

static void usage(FILE *fp)
{
	fputs("usage: bench_vmem [--quick] [--only NAME] [--n N] [--no-baseline]\n"
	      "  (default)   full run: W1 up to N=1e6, 2e6 pairs per repetition\n"
	      "  --quick     smoke run: W1 up to N=1e5, 2e5 pairs per repetition\n"
	      "  --only NAME one figure: W1-ring, W1-instant, xalloc, memory, hash\n"
	      "  --n N       W1 figures at this N only\n"
	      "  --no-baseline  skip the mutex baseline and x-mutex (for profiling)\n",
	    fp);
}

static bool parse_args(int argc, char **argv, const struct bench_plan **plan,
    struct bench_select *sel)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			*plan = &plan_quick;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			sel->only = argv[++i];
			if (strcmp(sel->only, "W1-ring") != 0 &&
			    strcmp(sel->only, "W1-instant") != 0 &&
			    strcmp(sel->only, "xalloc") != 0 &&
			    strcmp(sel->only, "memory") != 0 &&
			    strcmp(sel->only, "hash") != 0)
				return false;
		} else if (strcmp(argv[i], "--no-baseline") == 0) {
			sel->no_baseline = true;
		} else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
			char *end;
			unsigned long long n = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || n < 2 || n > ((size_t)1 << 30))
				return false;
			sel->w1_live = (size_t)n;
		} else {
			return false;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	const struct bench_plan *plan = &plan_full;
	struct bench_select sel = { NULL, 0, false };
	struct memory_result mem = { 0, 0, 0 };
	double mutex_ns = 0;
	uint64_t wall0_ns, cpu0_ns;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (!parse_args(argc, argv, &plan, &sel)) {
		usage(stderr);
		return EXIT_API;
	}

	/* First, before this process has ever called the library. */
	if (selected(&sel, "memory"))
		mem = bench_memory();

	printf("# quanta bench_vmem mode=%s reps=%d stat=median clock=CLOCK_MONOTONIC "
	       "prng=xorshift64\n", plan->mode_name, REPS);
	wall0_ns = now_ns();
	cpu0_ns = cpu_ns();
	print_machine();
	if (sel.no_baseline) {
		printf("# baseline: skipped (--no-baseline)\n");
	} else {
		mutex_ns = bench_mutex_ns_per_pair(plan);
		printf("# baseline: uncontended pthread_mutex lock+unlock = %.1f "
		       "ns/pair; x-mutex = figure / baseline\n", mutex_ns);
		printf("baseline-mutex ns/pair=%.1f\n", mutex_ns);
	}
	fflush(stdout);

	if (selected(&sel, "W1-ring"))
		report_w1(W1_OLDEST, plan, &sel, mutex_ns);
	if (selected(&sel, "W1-instant"))
		report_w1(W1_RANDOM, plan, &sel, mutex_ns);
	if (selected(&sel, "xalloc"))
		report_xalloc(plan, mutex_ns);
	if (selected(&sel, "memory"))
		report_memory(&mem);
	if (selected(&sel, "hash"))
		report_hash(plan);
	/* Wall time well above CPU time: the bench was descheduled. */
	double wall_s = (double)(now_ns() - wall0_ns) / 1e9;
	double cpu_s = (double)(cpu_ns() - cpu0_ns) / 1e9;
	printf("# timed part: wall=%.1f s cpu=%.1f s wall/cpu=%.2f (above ~1.05 "
	       "the bench lost the cpu to other work: rerun on an idle machine)\n",
	    wall_s, cpu_s, cpu_s > 0 ? wall_s / cpu_s : 0.0);
	return 0;
}
