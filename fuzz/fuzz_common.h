/*
 * fuzz_common.h — what every fuzz target of quanta shares: a reader that
 * turns the engine's bytes into a program (every read is bounded and
 * yields 0 past the end, so any input is a valid program), a log of the
 * decoded program, and the failure report.
 *
 * Theory
 * ------
 * A target decodes its input into operations one at a time and checks
 * each result against its oracle (a shadow model of what the headers
 * promise) before decoding the next.  When an oracle fails, fuzz_fail
 * prints the program decoded so far, the failing step and what was
 * expected, then aborts: the engine records the input as a crash, and
 * ci/replay shows the same report.  With QUANTA_FUZZ_VERBOSE=1 in the
 * environment (ci/replay sets it) every step is printed as it runs.
 * Each input must leave the process as it found it (every arena and
 * cache it made destroyed), because both engines run many inputs in one
 * process.
 *
 * Progress.  A call that must return (VM_SLEEP when memory exists,
 * UMEM_NOFAIL, and every NOSLEEP call) and does not is a finding, not a
 * libFuzzer timeout to guess at: a target that calls fuzz_watch_begin at
 * the start of its input and fuzz_watch_end before returning is watched by
 * a thread that wakes every 50 ms and, when one step (fuzz_step: the call
 * with its arguments) has run longer than the bound, prints that step and
 * aborts.  The bound is 2 s (QUANTA_FUZZ_PROGRESS_MS), well under
 * libFuzzer's -timeout (5 s in fuzz/bugs-table, 10 s in ci/fuzz) and the
 * replay's 20 s: every step of the targets takes milliseconds, and a
 * VM_SLEEP call that waits retries every 10 ms.  A thread, not a timer
 * signal: libFuzzer owns SIGALRM (its -timeout) and the replay program
 * uses alarm(), and a signal would interrupt the library's waits.  The
 * watch is off between inputs (AFL++'s persistent driver blocks there).
 */
#ifndef QUANTA_FUZZ_COMMON_H
#define QUANTA_FUZZ_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuzz_in {
	const uint8_t *p;
	size_t n, at;
} fuzz_in_t;

static inline void fuzz_in_init(fuzz_in_t *in, const uint8_t *p, size_t n)
{
	in->p = p;
	in->n = n;
	in->at = 0;
}

static inline int fuzz_in_more(const fuzz_in_t *in)
{
	return in->at < in->n;
}

static inline uint8_t fuzz_u8(fuzz_in_t *in)
{
	return in->at < in->n ? in->p[in->at++] : 0;
}

static inline uint16_t fuzz_u16(fuzz_in_t *in)
{
	uint16_t lo = fuzz_u8(in);
	return (uint16_t)(lo | (uint16_t)fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(fuzz_in_t *in)
{
	uint32_t lo = fuzz_u16(in);
	return lo | (uint32_t)fuzz_u16(in) << 16;
}

static inline uint64_t fuzz_u64(fuzz_in_t *in)
{
	uint64_t lo = fuzz_u32(in);
	return lo | (uint64_t)fuzz_u32(in) << 32;
}

/* A value below n (0 when n is 0). */
static inline uint32_t fuzz_below(fuzz_in_t *in, uint32_t n)
{
	return n == 0 ? 0 : fuzz_u16(in) % n;
}

/* ---- the program log ----------------------------------------------------- */

#ifndef QUANTA_SIM
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#endif

#define FUZZ_LOG_LINES 256
#define FUZZ_LOG_BYTES 160

typedef struct fuzz_log {
	unsigned steps;
	int verbose;
	char line[FUZZ_LOG_LINES][FUZZ_LOG_BYTES];
} fuzz_log_t;

static fuzz_log_t fuzz_log_state;

#ifdef QUANTA_BUGS
#include "bugs.h"
#endif

/* Builds with planted bugs (QUANTA_BUGS): QUANTA_FUZZ_BUG=<name> makes
 * that bug live (src/bugs.h); an unknown name is an error. */
static inline void fuzz_plant_bug(void)
{
#ifdef QUANTA_BUGS
	const char *name = getenv("QUANTA_FUZZ_BUG");
	int bug = name != NULL ? quanta_bug_lookup(name) : 0;
	if (bug < 0) {
		fprintf(stderr, "QUANTA_FUZZ_BUG=%s: no such planted bug\n", name);
		abort();
	}
	quanta_bug_planted = bug;
#endif
}

#ifndef QUANTA_SIM
#include "platform.h"

/*
 * The clock of an input: it counts the library's reads from 0, so an mtbf
 * set by the input fails the same calls on every run of it (a replay, and
 * AFL++'s stability, which the real clock brought down to 55-65%).  The
 * scheduler target runs on the simulator's virtual clock already.
 */
static uint64_t fuzz_clock_now;

/*
 * Injected failures are known, not guessed: before a call the harness arms
 * the mtbf that applies (fuzz_mtbf_arm), and the clock notes whether any
 * read during the call returned a multiple of it — the only way injection
 * can fire (vmem.h: "whenever the platform clock modulo mtbf is zero").  A
 * NOSLEEP failure of a call during which no such read happened is not
 * excused by mtbf.
 */
static uint64_t fuzz_mtbf_m;
static bool fuzz_mtbf_hit;

static inline uint64_t fuzz_clock(void)
{
	uint64_t v = ++fuzz_clock_now;
	if (fuzz_mtbf_m != 0 && v % fuzz_mtbf_m == 0)
		fuzz_mtbf_hit = true;
	return v;
}

static inline void fuzz_mtbf_arm(uint64_t m)
{
	fuzz_mtbf_m = m;
	fuzz_mtbf_hit = false;
}

/* Could injection have failed the call since the arm? */
static inline bool fuzz_mtbf_fired(void)
{
	return fuzz_mtbf_hit;
}
#endif

#ifndef QUANTA_SIM
#include "umem.h"
void umem_thread_flush_self(void); /* umem_impl.h */

/*
 * The end of every input: the process-wide caches brought back to one
 * state, so the next input starts where every input starts.  AFL++ runs
 * many inputs in one process and counts an edge that comes and goes
 * between two runs of one input as instability: left alone, the magazines
 * of this thread and the depots of the internal caches carried one
 * input's history into the next.  This thread's magazines are flushed;
 * each reap empties what the depots did not use since the previous one.
 */
static inline void fuzz_quiesce(void)
{
	/* The bootstrap first: before it, the thread-specific key that
	 * umem_thread_flush_self reads is not ours. */
	(void)umem_default_arena();
	umem_thread_flush_self();
	for (int i = 0; i < 3; i++)
		umem_reap();
}
#endif

/* The start of every input: a fresh log and clock (and the planted bug). */
static inline void fuzz_log_reset(void)
{
#ifndef QUANTA_SIM
	plat_clock_override = fuzz_clock;
	fuzz_clock_now = 0;
#endif
	static int verbose = -1;
	if (verbose < 0) {
		const char *v = getenv("QUANTA_FUZZ_VERBOSE");
		verbose = v != NULL && *v == '1';
		fuzz_plant_bug();
	}
	fuzz_log_state.steps = 0;
	fuzz_log_state.verbose = verbose;
}

/* ---- progress: the watchdog ----------------------------------------------- */

#ifndef QUANTA_SIM
static _Atomic uint64_t fuzz_watch_since; /* the step's start (ns), 0: off */
static _Atomic unsigned fuzz_watch_step;
static uint64_t fuzz_watch_bound_ns;
static pid_t fuzz_watch_pid; /* the process whose thread watches */

static inline uint64_t fuzz_watch_now(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void *fuzz_watch_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec nap = {0, 50 * 1000 * 1000};
		(void)nanosleep(&nap, NULL);
		uint64_t since = atomic_load(&fuzz_watch_since);
		if (since == 0 || fuzz_watch_now() - since < fuzz_watch_bound_ns)
			continue;
		fuzz_log_t *l = &fuzz_log_state;
		unsigned s = atomic_load(&fuzz_watch_step);
		unsigned from = s >= 3 ? s - 3 : 0;
		for (unsigned i = from; i < s; i++)
			fprintf(stderr, "  step %u: %s\n", i,
			    l->line[i % FUZZ_LOG_LINES]);
		fprintf(stderr, "FUZZ FAIL at step %u: no progress: the call "
		    "\"%s\" has not returned after %lu ms (bound "
		    "QUANTA_FUZZ_PROGRESS_MS=%lu): a call that must return "
		    "(VM_SLEEP with memory there, UMEM_NOFAIL, NOSLEEP) is "
		    "waiting or looping\n", s ? s - 1 : 0,
		    s ? l->line[(s - 1) % FUZZ_LOG_LINES] : "(none)",
		    (unsigned long)((fuzz_watch_now() - since) / 1000000u),
		    (unsigned long)(fuzz_watch_bound_ns / 1000000u));
		fflush(stderr);
		abort();
	}
	return NULL;
}

/* The start of a watched input (after fuzz_log_reset). */
static inline void fuzz_watch_begin(void)
{
	if (fuzz_watch_pid != getpid()) {
		const char *v = getenv("QUANTA_FUZZ_PROGRESS_MS");
		long ms = v != NULL ? strtol(v, NULL, 10) : 0;
		fuzz_watch_bound_ns = (uint64_t)(ms > 0 ? ms : 2000) * 1000000u;
		pthread_t t;
		if (pthread_create(&t, NULL, fuzz_watch_thread, NULL) != 0) {
			fprintf(stderr, "harness: cannot start the watchdog\n");
			abort();
		}
		(void)pthread_detach(t);
		fuzz_watch_pid = getpid();
	}
	atomic_store(&fuzz_watch_since, fuzz_watch_now());
}

/* The end of a watched input: the engine may keep the process idle. */
static inline void fuzz_watch_end(void)
{
	atomic_store(&fuzz_watch_since, 0);
}
#endif

/* One step of the program, as a line of text. */
static inline void fuzz_step(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void fuzz_step(const char *fmt, ...)
{
	fuzz_log_t *l = &fuzz_log_state;
	char *buf = l->line[l->steps % FUZZ_LOG_LINES];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, FUZZ_LOG_BYTES, fmt, ap);
	va_end(ap);
	if (l->verbose)
		fprintf(stderr, "step %u: %s\n", l->steps, buf);
	l->steps++;
#ifndef QUANTA_SIM
	/* The watched step is this one, from now. */
	if (atomic_load_explicit(&fuzz_watch_since, memory_order_relaxed) != 0) {
		atomic_store(&fuzz_watch_step, l->steps);
		atomic_store(&fuzz_watch_since, fuzz_watch_now());
	}
#endif
}

/* An oracle failed: the program so far, the step, what was wrong. */
static inline _Noreturn void fuzz_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline _Noreturn void fuzz_fail(const char *fmt, ...)
{
	fuzz_log_t *l = &fuzz_log_state;
	if (!l->verbose) {
		unsigned from = l->steps > FUZZ_LOG_LINES ?
		    l->steps - FUZZ_LOG_LINES : 0;
		fprintf(stderr, "program (steps %u..%u):\n", from,
		    l->steps ? l->steps - 1 : 0);
		for (unsigned s = from; s < l->steps; s++)
			fprintf(stderr, "  step %u: %s\n", s,
			    l->line[s % FUZZ_LOG_LINES]);
	}
	fprintf(stderr, "FUZZ FAIL at step %u: ", l->steps ? l->steps - 1 : 0);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	abort();
}

#endif /* QUANTA_FUZZ_COMMON_H */
