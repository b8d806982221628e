/*
 * trace.h — the allocation trace of the malloc front end: the recorder the
 * front end calls (trace.c, QUANTA_MALLOC_TRACE=path) and the reader that
 * the simulator's replay and the benchmark's driver use (trace_read.c).
 * The format is specified in malloc/TRACE.md.
 *
 * Theory
 * ------
 * A trace keeps what an allocator decides nothing about and drops what it
 * decides: the operations, their sizes and alignments, which thread made
 * each, and which earlier block each free or realloc names — as an object
 * id (the number of the allocation that made the block, counted from 1 in
 * record order), never an address.  So a trace recorded over one allocator
 * replays on any other, and its replay does not depend on where blocks
 * land.  Threads are numbered 0, 1, 2, ... in order of first appearance.
 * Every field is an unsigned LEB128 varint, so a typical record is 3 to 5
 * bytes.
 *
 * Record order is the order in which calls took the recorder's one lock,
 * which is a total order consistent with the program's own (a block is
 * recorded as freed before it can be handed out again: see qtrace_record).
 */
#ifndef QUANTA_MALLOC_TRACE_H
#define QUANTA_MALLOC_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QTRACE_MAGIC "QTRC"
#define QTRACE_VERSION 1u

/* Operation codes (the low 4 bits of a record's first varint). */
enum qtrace_op {
	QTRACE_END = 0,           /* the last record: the trace is complete */
	QTRACE_MALLOC = 1,        /* size */
	QTRACE_FREE = 2,          /* ref */
	QTRACE_CALLOC = 3,        /* size = nmemb * size, the product */
	QTRACE_REALLOC = 4,       /* ref, size */
	QTRACE_MEMALIGN = 5,      /* size, align (memalign, valloc, pvalloc) */
	QTRACE_POSIX_MEMALIGN = 6,/* size, align */
	QTRACE_ALIGNED_ALLOC = 7, /* size, align */
	QTRACE_OPS = 8
};

/* Flags (bits 4.. of the first varint). */
#define QTRACE_F_FAILED 0x10u  /* the call returned NULL (or an error) */
#define QTRACE_F_FOREIGN 0x20u /* free/realloc of a pointer the recorder
				  never saw allocated (ref is then 0) */
#define QTRACE_OP_MASK 0x0fu

/* ---- the recorder (trace.c): never calls malloc ---------------------- */

/* The recorder reads only the pointer values, never what they point at
 * (gcc would otherwise warn about passing a block just malloc'ed). */
#if defined(__GNUC__) && !defined(__clang__)
#define QTRACE_NO_DEREF __attribute__((access(none, 2), access(none, 5)))
#else
#define QTRACE_NO_DEREF
#endif

/* Reads QUANTA_MALLOC_TRACE once; if it names a path, truncates that file
 * and writes the header.  Call before the first qtrace_record. */
void qtrace_init_from_env(void);
/* One call, after it returned.  ptr: the block a free or realloc names
 * (NULL for the others); size: the size asked for (calloc: nmemb * size);
 * align: the alignment of the aligned calls (0 for the others); result:
 * what the call returned (NULL: failed; a realloc(p, 0) that freed p and
 * returned NULL is recorded as a free of p).  free(NULL) records nothing.
 * A free must be recorded before
 * the block is released, a realloc after its new block exists and before
 * the old one is released: then no other thread can be handed the same
 * address and record it first. */
void qtrace_record(unsigned op, const void *ptr, size_t size, size_t align,
    const void *result) QTRACE_NO_DEREF;
/* In the child of a fork: stop writing the parent's file, and trace the
 * child into path.<pid> from a fresh state (TRACE.md: fork). */
void qtrace_fork_child(void);
/* Write what is buffered and the END record; later records are dropped.
 * At exit (a destructor or atexit of the front end). */
void qtrace_flush(void);
/* The recorder is writing: the front end's fast-path test. */
extern _Atomic bool qtrace_on;
static inline bool qtrace_active(void)
{
	return __builtin_expect(atomic_load_explicit(&qtrace_on,
	    memory_order_relaxed), 0);
}

/* ---- the reader (trace_read.c): uses malloc ------------------------- */

typedef struct qtrace_rec {
	uint8_t op;         /* enum qtrace_op */
	uint8_t flags;      /* QTRACE_F_* */
	uint16_t thread;
	uint32_t ref;       /* object id freed / reallocated, 0: none */
	uint32_t id;        /* object id the call made, 0: none */
	uint64_t size;
	uint64_t align;
} qtrace_rec_t;

typedef struct qtrace {
	uint32_t version;
	uint64_t pid;       /* the recording process */
	uint64_t parent;    /* the process it forked from, 0: none */
	qtrace_rec_t *rec;
	size_t nrec;
	unsigned nthreads;
	uint32_t nobjects;  /* ids 1..nobjects */
	uint32_t live_end;  /* objects never freed in the trace */
	bool complete;      /* ended with the END record */
} qtrace_t;

/* Parse a trace file; 0, or -1 with a reason in err. */
int qtrace_read(const char *path, qtrace_t *t, char *err, size_t errlen);
/* The same over len bytes in memory (the fuzz target malloc_trace). */
int qtrace_parse(const void *buf, size_t len, qtrace_t *t, char *err,
    size_t errlen);
void qtrace_release(qtrace_t *t);
const char *qtrace_op_name(unsigned op);

#endif /* QUANTA_MALLOC_TRACE_H */
