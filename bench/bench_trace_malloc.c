/*
 * bench_trace_malloc.c — an allocation trace (malloc/TRACE.md) replayed
 * through the process's own malloc, free, calloc, realloc and the aligned
 * calls, so that ci/bench-malloc can run one trace under glibc, jemalloc,
 * mimalloc and libquanta-malloc.so (LD_PRELOAD) and compare them on the
 * very same calls.
 *
 *   bench_trace_malloc FILE [--repeat N]
 *
 * Theory: the trace is read first (the reader's own allocations happen
 * before the timed part), then replayed N times on one thread in record
 * order — every thread's records in the order the recorder saw them, so
 * the calls, sizes and lifetimes are the trace's and nothing depends on
 * a schedule; an allocator's cross-thread costs are not measured here.
 * Each block gets its first and last byte written (the allocator's pages
 * are touched as a program would).  Blocks the trace leaves live are
 * freed after each repetition.  Failed and foreign records are skipped
 * (as the simulator's replay does).  Prints one line: records, calls
 * made, ns per call (CLOCK_MONOTONIC around the N repetitions).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace.h"

typedef struct blk {
	unsigned char *p;
	size_t size;
} blk_t;

static void touch(blk_t *b)
{
	if (b->size == 0)
		return;
	b->p[0] = 1;
	b->p[b->size - 1] = 1;
}

static void *aligned(const qtrace_rec_t *r)
{
	size_t size = (size_t)r->size, align = (size_t)r->align;
	void *p = NULL;
	if (r->op == QTRACE_MEMALIGN)
		return memalign(align, size);
	if (r->op == QTRACE_ALIGNED_ALLOC)
		return aligned_alloc(align, size);
	return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

/* One record; 0, or -1 if an allocation the trace made failed here. */
static int replay_one(const qtrace_rec_t *r, blk_t *obj)
{
	void *p;
	size_t size = (size_t)r->size;
	switch (r->op) {
	case QTRACE_FREE:
		free(obj[r->ref].p);
		obj[r->ref].p = NULL;
		return 0;
	case QTRACE_MALLOC:
		p = malloc(size);
		break;
	case QTRACE_CALLOC:
		p = calloc(1, size);
		break;
	case QTRACE_REALLOC:
		p = realloc(r->ref ? obj[r->ref].p : NULL, size);
		if (r->ref != 0 && p != NULL)
			obj[r->ref].p = NULL;
		break;
	default:
		p = aligned(r);
		break;
	}
	if (p == NULL)
		return -1;
	obj[r->id] = (blk_t){p, size};
	touch(&obj[r->id]);
	return 0;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	unsigned repeat = 1;
	if (argc < 2) {
		fprintf(stderr, "usage: bench_trace_malloc FILE [--repeat N]\n");
		return 2;
	}
	if (argc > 3 && strcmp(argv[2], "--repeat") == 0)
		repeat = (unsigned)atoi(argv[3]);
	qtrace_t t;
	char err[256];
	if (qtrace_read(argv[1], &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_trace_malloc: %s\n", err);
		return 2;
	}
	blk_t *obj = calloc((size_t)t.nobjects + 1, sizeof(*obj));
	if (obj == NULL)
		return 2;
	unsigned long long calls = 0;
	double t0 = now_ns();
	for (unsigned k = 0; k < repeat; k++) {
		for (size_t i = 0; i < t.nrec; i++) {
			const qtrace_rec_t *r = &t.rec[i];
			if (r->flags & (QTRACE_F_FAILED | QTRACE_F_FOREIGN))
				continue;
			if (replay_one(r, obj) != 0) {
				fprintf(stderr, "bench_trace_malloc: record %zu "
				    "(%s of %llu bytes) failed\n", i,
				    qtrace_op_name(r->op),
				    (unsigned long long)r->size);
				return 2;
			}
			calls++;
		}
		for (uint32_t id = 1; id <= t.nobjects; id++) {
			if (obj[id].p != NULL)
				free(obj[id].p);
			obj[id].p = NULL;
		}
	}
	double ns = now_ns() - t0;
	printf("trace-replay %s records=%zu threads=%u repeat=%u calls=%llu "
	    "ns/call=%.1f\n", argv[1], t.nrec, t.nthreads, repeat, calls,
	    calls ? ns / (double)calls : 0.0);
	free(obj);
	qtrace_release(&t);
	return 0;
}
