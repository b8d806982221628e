/*
 * quanta — bench/bench_vmem.c: speed and memory figures of the vmem arena.
 *
 * This program prints figures; it never judges them.  Its exit status is 0
 * whatever the timings, 2 only when the allocator misbehaves (a NULL from an
 * allocation that must succeed, an address that breaks the request's
 * constraints, an arena that cannot be created) or the command line is wrong.
 *
 * Every figure is the median of 3 repetitions.  Times come from
 * CLOCK_MONOTONIC (--cpu-clock: the process's CPU clock, blind to the time
 * other work takes the processor; ci/bench's assertion ratios) around whole
 * loops; random sizes and victims come from a
 * fixed-seed xorshift64 generator, so two runs do the same work.  The loops
 * also carry the generator and the bench's own array bookkeeping, a few
 * nanoseconds of every pair; the two baselines of the header (mutex pair,
 * malloc(64) + free pair, bench/figures.h) give the scale.
 *
 * Figures (bench/README.md explains each one):
 *   baseline    uncontended pthread_mutex lock + unlock; malloc(64) + free
 *   plat-mutex  the same mutex pair through the platform seam (platform.h)
 *   W1-ring     N live; free the oldest, allocate a new one (instant fit)
 *   W1-instant  N live; free a random live one, allocate a new one
 *   W2-bestfit  W1-instant with VM_BESTFIT on every allocation
 *   W4-xalloc   constrained vmem_xalloc + vmem_xfree beside 1e4 live segments
 *   memory      RSS growth per live allocation (1e6 allocated, evens freed)
 *   hash        ns/free, random order, 100k live vs 1k live, and the ratio
 *
 * The W figures run at N = 1e3, 1e4, 1e5, 1e6 (1e5 at most with --quick);
 * --sweep FILE runs them at N = 1, 2, 5 x 10^k as well and writes every
 * figure to FILE, one row per N, one column per workload (bench/sweep.gp
 * draws it).  Only the decades print a line.
 *
 * Time budget.  A W figure's cost may grow with N (best fit searches a whole
 * free list), and a full run must stay within minutes on a loaded 2-core
 * machine.  So the untimed warm-up of N pairs stops early once it has taken
 * plan.warm_budget_ns, and the first timed repetition stops early once it
 * has taken plan.rep_budget_ns; the other two do as many pairs as it did,
 * so every repetition of a figure does the same work.  A line whose work
 * the budget cut says so (pairs=, warm=).  A full sweep then takes at most
 * about 30 figures x (1.5 s warm-up + 3 x 1.5 s), 3 minutes (if the cost
 * still grows during the repetitions, a little more), and a fast allocator
 * on an idle machine never meets the budget: 2e6 pairs of 750 ns fit.
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
#include <math.h>
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

#include "figures.h"
#include "vmem.h"

#define REPS BENCH_REPS
#define EXIT_API BENCH_EXIT_API

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

/*
 * A W loop reads the clock every STEADY_CHUNK_PAIRS pairs to keep its time
 * budget: a clock read (~20 ns) per 256 pairs of >= 20 ns each is under
 * 0.5% of the loop, and a chunk of even 100 us pairs overruns the budget by
 * only 26 ms.
 */
#define STEADY_CHUNK_PAIRS ((uint64_t)256)

/* How much work each figure does, per mode. */
struct bench_plan {
	const char *mode_name;
	uint64_t baseline_pairs;   /* per repetition, each baseline */
	uint64_t steady_pairs;     /* timed pairs of a W figure, per repetition */
	size_t steady_live_max;    /* largest N of the W figures */
	uint64_t warm_budget_ns;   /* the most a W warm-up may take */
	uint64_t rep_budget_ns;    /* the most a W repetition should take */
	uint64_t xalloc_pairs;     /* per repetition */
	uint64_t hash_frees_total; /* frees per repetition, each size */
};

static const struct bench_plan plan_full = {
	"full", 20000000u, 2000000u, 1000000u, 1500000000u, 1500000000u,
	2000000u, 1000000u,
};
static const struct bench_plan plan_quick = {
	"quick", 2000000u, 200000u, 100000u, 100000000u, 100000000u,
	200000u, 200000u,
};

/* One live allocation held by a workload. */
struct live_seg {
	uintptr_t addr;
	size_t size_bytes;
};

/* ---- helpers: errors, clock, generator --------------------------------- */

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

/* A clock of the timed-part line, 0 if it fails (cpu: this process only,
 * not the forked children). */
static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
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

/* Allocate 1..64 quanta into *seg with vmflag (VM_NOSLEEP and a policy);
 * any failure is an API failure: the arena is far larger than it holds. */
static inline void seg_alloc_random(vmem_t *vm, struct live_seg *seg,
    size_t quantum_bytes, int vmflag)
{
	size_t size_bytes = rng_quanta_1_64() * quantum_bytes;
	void *p = vmem_alloc(vm, size_bytes, vmflag);

	if (p == NULL || ((uintptr_t)p & (quantum_bytes - 1)) != 0)
		die_api("vmem_alloc(%s, %zu, %#x) returned %p", vmem_name(vm),
		    size_bytes, (unsigned)vmflag, p);
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

/* ---- 1. W1 and W2: steady state of N live segments ----------------------- */

enum steady_victim { VICTIM_OLDEST, VICTIM_RANDOM };

struct steady_workload {
	const char *name;       /* the figure, as --only spells it */
	const char *arena_name;
	enum steady_victim victim;
	int vmflag;             /* of every vmem_alloc: VM_NOSLEEP | policy */
	uint64_t seed;          /* plus N: the same work in every run */
};

/*
 * W2-bestfit draws the same sizes and victims as W1-instant (same seed): the
 * two differ only in the policy, so their ratio is the price of best fit.
 */
enum { W1_RING, W1_INSTANT, W2_BESTFIT, STEADY_WORKLOADS };
static const struct steady_workload steady_workloads[STEADY_WORKLOADS] = {
	{ "W1-ring", "bench-w1-ring", VICTIM_OLDEST, VM_NOSLEEP, 0x5eed0001u },
	{ "W1-instant", "bench-w1-instant", VICTIM_RANDOM, VM_NOSLEEP,
	    0x5eed0101u },
	{ "W2-bestfit", "bench-w2-bestfit", VICTIM_RANDOM,
	    VM_NOSLEEP | VM_BESTFIT, 0x5eed0101u },
};

/* A steady-state arena and the bench's record of its live segments. */
struct steady_run {
	const struct steady_workload *w;
	vmem_t *vm;
	struct live_seg *segs;
	size_t live_count;
	size_t head; /* VICTIM_OLDEST: the slot of the oldest */
};

/* Free the oldest (slot head), allocate into its slot; pairs times. */
static void steady_ring_pairs(struct steady_run *run, uint64_t pairs)
{
	struct live_seg *segs = run->segs;
	int vmflag = run->w->vmflag;
	size_t h = run->head;

	for (uint64_t i = 0; i < pairs; i++) {
		seg_free(run->vm, &segs[h]);
		seg_alloc_random(run->vm, &segs[h], W1_QUANTUM_BYTES, vmflag);
		h = h + 1 == run->live_count ? 0 : h + 1;
	}
	run->head = h;
}

/*
 * Free a random live one (swap-remove), allocate a new one at the end.  The
 * victim is drawn one pair ahead and its slot prefetched: a caller of
 * vmem_free has the address at hand, so the miss on the bench's own array
 * (16 MB at N = 1e6) is not charged to the allocator.
 */
static void steady_random_pairs(struct steady_run *run, uint64_t pairs)
{
	struct live_seg *segs = run->segs;
	size_t last = run->live_count - 1;
	int vmflag = run->w->vmflag;
	size_t next_victim = rng_below(run->live_count);

	for (uint64_t i = 0; i < pairs; i++) {
		size_t victim = next_victim;
		next_victim = rng_below(run->live_count);
		__builtin_prefetch(&segs[next_victim]);
		seg_free(run->vm, &segs[victim]);
		segs[victim] = segs[last];
		seg_alloc_random(run->vm, &segs[last], W1_QUANTUM_BYTES, vmflag);
	}
}

static void steady_pairs(struct steady_run *run, uint64_t pairs)
{
	if (run->w->victim == VICTIM_OLDEST)
		steady_ring_pairs(run, pairs);
	else
		steady_random_pairs(run, pairs);
}

/*
 * Up to max_pairs pairs, stopping at the first chunk boundary after
 * budget_ns; returns the pairs run, their wall time in *elapsed_ns.
 */
static uint64_t steady_pairs_within(struct steady_run *run, uint64_t max_pairs,
    uint64_t budget_ns, uint64_t *elapsed_ns)
{
	uint64_t done = 0, t0 = bench_now_ns(), now = t0;

	while (done < max_pairs && now - t0 < budget_ns) {
		uint64_t chunk = max_pairs - done;
		if (chunk > STEADY_CHUNK_PAIRS)
			chunk = STEADY_CHUNK_PAIRS;
		steady_pairs(run, chunk);
		done += chunk;
		now = bench_now_ns();
	}
	*elapsed_ns = now - t0;
	return done;
}

struct steady_result {
	double ns_per_pair;
	uint64_t pairs;      /* timed pairs per repetition */
	uint64_t warm_pairs; /* untimed pairs before them */
	bool cut;            /* the time budget cut the warm-up or the pairs */
};

/*
 * Fill the arena to live_count, run up to live_count untimed pairs so that
 * the free lists reach their steady state, then time REPS runs of the same
 * number of pairs: as many as the first run did within its budget (see
 * "Time budget" at the top).
 */
static struct steady_result steady_measure(const struct steady_workload *w,
    size_t live_count, const struct bench_plan *plan, struct live_seg *segs)
{
	struct steady_run run = { w, NULL, segs, live_count, 0 };
	struct steady_result res;
	uint64_t elapsed_ns = 0;
	double ns[REPS];

	run.vm = arena_create(w->arena_name, W1_BASE, W1_SIZE_BYTES,
	    W1_QUANTUM_BYTES);
	rng_seed(w->seed + live_count);
	for (size_t i = 0; i < live_count; i++)
		seg_alloc_random(run.vm, &segs[i], W1_QUANTUM_BYTES, w->vmflag);
	res.warm_pairs = steady_pairs_within(&run, live_count,
	    plan->warm_budget_ns, &elapsed_ns);
	res.pairs = steady_pairs_within(&run, plan->steady_pairs,
	    plan->rep_budget_ns, &elapsed_ns);
	res.cut = res.warm_pairs < live_count || res.pairs < plan->steady_pairs;
	ns[0] = (double)elapsed_ns / (double)res.pairs;
	for (int rep = 1; rep < REPS; rep++) {
		steady_pairs_within(&run, res.pairs, UINT64_MAX, &elapsed_ns);
		ns[rep] = (double)elapsed_ns / (double)res.pairs;
	}
	segs_free_all(run.vm, segs, live_count);
	vmem_destroy(run.vm);
	res.ns_per_pair = bench_median3(ns);
	return res;
}

/* ---- 2. W4: constrained allocation -------------------------------------- */

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
		seg_alloc_random(vm, &segs[i], XA_QUANTUM_BYTES, VM_NOSLEEP);
	for (uint64_t i = 0; i < plan->xalloc_pairs / 10; i++)
		xalloc_pair_once(vm);
	for (int rep = 0; rep < REPS; rep++) {
		uint64_t t0 = bench_now_ns();
		for (uint64_t i = 0; i < plan->xalloc_pairs; i++)
			xalloc_pair_once(vm);
		ns[rep] = (double)(bench_now_ns() - t0) / (double)plan->xalloc_pairs;
	}
	segs_free_all(vm, segs, XA_LIVE_COUNT);
	vmem_destroy(vm);
	return bench_median3(ns);
}

/* ---- 3. memory: RSS growth per live allocation --------------------------- */

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
		seg_alloc_random(vm, &segs[i], MEM_QUANTUM_BYTES, VM_NOSLEEP);
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
	return (struct memory_result){ bench_median3(per_live), bench_median3(mib),
		bench_median3(buckets) };
}

/* ---- 4. hash: free cost at 100k live vs 1k live -------------------------- */

/* One round on a fresh arena: allocate count, time count frees in random order. */
static uint64_t hash_round_free_ns(size_t count, struct live_seg *segs,
    size_t *buckets_at_peak)
{
	vmem_t *vm = arena_create("bench-hash", W1_BASE, W1_SIZE_BYTES,
	    W1_QUANTUM_BYTES);
	vmem_stats_t st;
	uint64_t t0, elapsed_ns;

	for (size_t i = 0; i < count; i++)
		seg_alloc_random(vm, &segs[i], W1_QUANTUM_BYTES, VM_NOSLEEP);
	for (size_t i = count - 1; i > 0; i--) { /* Fisher-Yates */
		size_t j = rng_below(i + 1);
		struct live_seg t = segs[i];
		segs[i] = segs[j];
		segs[j] = t;
	}
	vmem_stats(vm, &st);
	*buckets_at_peak = st.vs_hash_buckets;
	t0 = bench_now_ns();
	segs_free_all(vm, segs, count);
	elapsed_ns = bench_now_ns() - t0;
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
	return bench_median3(ns);
}

/* ---- main ---------------------------------------------------------------- */

/* What to run: every figure by default; --only and --n narrow it (profiling). */
struct bench_select {
	const char *only;       /* NULL, or one of figure_names */
	size_t steady_live;     /* 0, or the one N of the W figures */
	bool no_baseline;       /* skip the baselines (keeps them out of a profile) */
	const char *sweep_path; /* NULL, or the file of the sweep over N */
};

static const char *const figure_names[] = {
	"W1-ring", "W1-instant", "W2-bestfit", "W4-xalloc", "memory", "hash",
};
#define FIGURE_NAMES (sizeof figure_names / sizeof figure_names[0])

static bool selected(const struct bench_select *sel, const char *name)
{
	return sel->only == NULL || strcmp(sel->only, name) == 0;
}

/* The N of the W figures: the decades print a line; the rest are sweep rows. */
static const size_t sweep_live_counts[] = {
	1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000,
};
#define SWEEP_POINTS (sizeof sweep_live_counts / sizeof sweep_live_counts[0])

struct steady_table {
	size_t count;
	size_t live[SWEEP_POINTS];
	bool printed[SWEEP_POINTS]; /* a figure line, not only a sweep row */
	struct steady_result cell[STEADY_WORKLOADS][SWEEP_POINTS]; /* NAN: not run */
};

static bool is_decade(size_t n)
{
	while (n >= 10 && n % 10 == 0)
		n /= 10;
	return n == 1;
}

static void steady_table_init(struct steady_table *t,
    const struct bench_plan *plan, const struct bench_select *sel)
{
	t->count = 0;
	for (size_t k = 0; k < SWEEP_POINTS && sel->steady_live == 0; k++) {
		size_t n = sweep_live_counts[k];
		if (n > plan->steady_live_max ||
		    (sel->sweep_path == NULL && !is_decade(n)))
			continue;
		t->live[t->count] = n;
		t->printed[t->count] = is_decade(n);
		t->count++;
	}
	if (sel->steady_live != 0) {
		t->live[0] = sel->steady_live;
		t->printed[0] = true;
		t->count = 1;
	}
	for (size_t w = 0; w < STEADY_WORKLOADS; w++)
		for (size_t k = 0; k < SWEEP_POINTS; k++)
			t->cell[w][k] = (struct steady_result){ NAN, 0, 0, false };
}

/* The W1-ring figures' largest over their smallest: 1.0 is perfectly flat. */
static void print_ring_spread(const struct steady_table *t)
{
	double lo = 0, hi = 0;
	size_t runs = 0;

	for (size_t k = 0; k < t->count; k++) {
		double ns = t->cell[W1_RING][k].ns_per_pair;
		if (!t->printed[k] || isnan(ns))
			continue;
		lo = runs == 0 || ns < lo ? ns : lo;
		hi = runs == 0 || ns > hi ? ns : hi;
		runs++;
	}
	if (runs > 1)
		printf("W1-ring spread max/min=%.2f\n", hi / lo);
}

static void report_steady(struct steady_table *t, unsigned wi,
    const struct bench_plan *plan, const struct bench_baseline *base,
    struct live_seg *segs)
{
	const struct steady_workload *w = &steady_workloads[wi];
	char param[32];

	for (size_t k = 0; k < t->count; k++) {
		struct steady_result r = steady_measure(w, t->live[k], plan, segs);
		double instant_ns = t->cell[W1_INSTANT][k].ns_per_pair;
		t->cell[wi][k] = r;
		if (!t->printed[k])
			continue;
		snprintf(param, sizeof param, "N=%zu", t->live[k]);
		bench_figure_begin(base, w->name, param, r.ns_per_pair, 1);
		if (wi == W2_BESTFIT && !isnan(instant_ns))
			printf(" x-W1-instant=%.2f", r.ns_per_pair / instant_ns);
		if (r.cut)
			printf(" pairs=%llu warm=%llu", (unsigned long long)r.pairs,
			    (unsigned long long)r.warm_pairs);
		bench_figure_end();
	}
	if (wi == W1_RING)
		print_ring_spread(t);
}

static void report_steady_all(struct steady_table *t,
    const struct bench_plan *plan, const struct bench_select *sel,
    const struct bench_baseline *base)
{
	size_t live_max = 0;
	bool any = false;
	struct live_seg *segs;

	for (unsigned wi = 0; wi < STEADY_WORKLOADS; wi++)
		any = any || selected(sel, steady_workloads[wi].name);
	for (size_t k = 0; k < t->count; k++)
		live_max = t->live[k] > live_max ? t->live[k] : live_max;
	if (!any || live_max == 0)
		return;
	segs = array_alloc_resident(live_max, sizeof *segs);
	for (unsigned wi = 0; wi < STEADY_WORKLOADS; wi++)
		if (selected(sel, steady_workloads[wi].name))
			report_steady(t, wi, plan, base, segs);
	free(segs);
}

/*
 * The sweep file: comment lines (#), then a header row "N W1-ring
 * W1-instant W2-bestfit" and one row per N of ns/pair, NaN where a figure
 * did not run.  gnuplot reads it as it is (bench/sweep.gp).
 */
static void sweep_write(const char *path, const struct steady_table *t,
    const struct bench_plan *plan, const struct bench_baseline *base)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		perror(path);
		exit(1);
	}
	fprintf(fp, "# quanta bench_vmem --sweep mode=%s: ns per vmem_free + "
	    "vmem_alloc pair with N segments live, median of %d\n",
	    plan->mode_name, REPS);
	fprintf(fp, "# baseline-mutex ns/pair=%.1f baseline-malloc64 "
	    "ns/pair=%.1f (0: not measured)\n", base->mutex_ns, base->malloc_ns);
	for (size_t w = 0; w < STEADY_WORKLOADS; w++)
		for (size_t k = 0; k < t->count; k++)
			if (t->cell[w][k].cut)
				fprintf(fp, "# time budget cut %s N=%zu: pairs=%llu "
				    "warm=%llu\n", steady_workloads[w].name, t->live[k],
				    (unsigned long long)t->cell[w][k].pairs,
				    (unsigned long long)t->cell[w][k].warm_pairs);
	fputs("N", fp);
	for (size_t w = 0; w < STEADY_WORKLOADS; w++)
		fprintf(fp, " %s", steady_workloads[w].name);
	for (size_t k = 0; k < t->count; k++) {
		fprintf(fp, "\n%zu", t->live[k]);
		for (size_t w = 0; w < STEADY_WORKLOADS; w++) {
			double ns = t->cell[w][k].ns_per_pair;
			if (isnan(ns))
				fputs(" NaN", fp); /* gnuplot's spelling */
			else
				fprintf(fp, " %.1f", ns);
		}
	}
	fputc('\n', fp);
	if (fclose(fp) != 0) {
		perror(path);
		exit(1);
	}
	printf("# sweep: N = %zu .. %zu, %zu rows, written to %s\n",
	    t->live[0], t->live[t->count - 1], t->count, path);
}

static void report_xalloc(const struct bench_plan *plan,
    const struct bench_baseline *base)
{
	struct live_seg *segs = array_alloc_resident(XA_LIVE_COUNT, sizeof *segs);
	double ns = bench_xalloc_ns_per_pair(plan, segs);
	char param[32];

	snprintf(param, sizeof param, "live=%zu", XA_LIVE_COUNT);
	bench_figure_begin(base, "W4-xalloc", param, ns, 1);
	bench_figure_end();
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
	fputs("usage: bench_vmem [--quick] [--sweep FILE] [--only NAME] [--n N] "
	      "[--no-baseline] [--cpu-clock]\n"
	      "  (default)    full run: W figures at N = 1e3..1e6, 2e6 pairs per "
	      "repetition\n"
	      "  --quick      smoke run: N up to 1e5, 2e5 pairs per repetition\n"
	      "  --sweep FILE also N = 2, 5 x 10^k; every W figure written to "
	      "FILE\n"
	      "  --only NAME  one figure: W1-ring, W1-instant, W2-bestfit, "
	      "W4-xalloc, memory, hash\n"
	      "  --n N        W figures at this N only\n"
	      "  --no-baseline  skip the baselines and x- ratios (for profiling)\n"
	      "  --cpu-clock  time with the process's CPU clock, not the wall "
	      "clock\n",
	    fp);
}

/* "xalloc" is W4-xalloc's name of earlier versions. */
static bool parse_only(const char *name, struct bench_select *sel)
{
	if (strcmp(name, "xalloc") == 0)
		name = "W4-xalloc";
	for (size_t i = 0; i < FIGURE_NAMES; i++) {
		if (strcmp(name, figure_names[i]) == 0) {
			sel->only = figure_names[i];
			return true;
		}
	}
	return false;
}

static bool parse_args(int argc, char **argv, const struct bench_plan **plan,
    struct bench_select *sel)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			*plan = &plan_quick;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			if (!parse_only(argv[++i], sel))
				return false;
		} else if (strcmp(argv[i], "--no-baseline") == 0) {
			sel->no_baseline = true;
		} else if (strcmp(argv[i], "--cpu-clock") == 0) {
			bench_clock_use_cpu();
		} else if (strcmp(argv[i], "--sweep") == 0 && i + 1 < argc) {
			sel->sweep_path = argv[++i];
		} else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
			char *end;
			unsigned long long n = strtoull(argv[++i], &end, 10);
			if (*end != '\0' || n < 2 || n > ((size_t)1 << 30))
				return false;
			sel->steady_live = (size_t)n;
		} else {
			return false;
		}
	}
	return true;
}

static void report_baseline(const struct bench_plan *plan,
    const struct bench_select *sel, struct bench_baseline *base)
{
	if (sel->no_baseline) {
		printf("# baselines: skipped (--no-baseline)\n");
		return;
	}
	bench_baseline_measure(base, plan->baseline_pairs);
	bench_baseline_print(base);
	bench_seam_print(plan->baseline_pairs);
}

int main(int argc, char **argv)
{
	const struct bench_plan *plan = &plan_full;
	struct bench_select sel = { NULL, 0, false, NULL };
	struct memory_result mem = { 0, 0, 0 };
	struct bench_baseline base = { 0, 0 };
	static struct steady_table steady;
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

	printf("# quanta bench_vmem mode=%s reps=%d stat=median clock=%s "
	       "prng=xorshift64\n", plan->mode_name, REPS, bench_clock_name());
	wall0_ns = clock_ns(CLOCK_MONOTONIC);
	cpu0_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	bench_print_machine();
	report_baseline(plan, &sel, &base);

	steady_table_init(&steady, plan, &sel);
	report_steady_all(&steady, plan, &sel, &base);
	if (selected(&sel, "W4-xalloc"))
		report_xalloc(plan, &base);
	if (selected(&sel, "memory"))
		report_memory(&mem);
	if (selected(&sel, "hash"))
		report_hash(plan);
	if (sel.sweep_path != NULL)
		sweep_write(sel.sweep_path, &steady, plan, &base);
	/* Wall time well above CPU time: the bench was descheduled. */
	double wall_s = (double)(clock_ns(CLOCK_MONOTONIC) - wall0_ns) / 1e9;
	double cpu_s = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0_ns) / 1e9;
	printf("# timed part: wall=%.1f s cpu=%.1f s wall/cpu=%.2f (above ~1.05 "
	       "the bench lost the cpu to other work: rerun on an idle machine)\n",
	    wall_s, cpu_s, cpu_s > 0 ? wall_s / cpu_s : 0.0);
	return 0;
}
