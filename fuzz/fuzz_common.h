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
 */
#ifndef QUANTA_FUZZ_COMMON_H
#define QUANTA_FUZZ_COMMON_H

#include <stdarg.h>
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

static inline uint64_t fuzz_clock(void)
{
	return ++fuzz_clock_now;
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
