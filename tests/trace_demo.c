/*
 * trace_demo.c — the trace recorder (malloc/trace.c) without the malloc
 * front end: a synthetic multi-threaded workload on the C library's
 * malloc, each call recorded as the front end will record it.
 *
 *   trace_demo OUT [--threads N] [--ops K] [--seed S] [--fork]
 *
 * Each thread draws its operations from its own xorshift stream (seed and
 * thread number): malloc of mostly small and now and then large sizes,
 * calloc, realloc chains (a block grown again and again, up to 512 KiB),
 * the three aligned calls, frees, and blocks handed through a shared
 * mailbox to be freed by another thread.  Each thread keeps its last
 * block live at the end of the trace (freed only after the flush: a leak
 * the replay must account for).  --fork: after the threads, the process
 * forks; the child records into OUT.<pid>.  The sizes are the
 * seed's; the interleaving (hence the record order) is the machine's.
 *
 * realloc is done as the front end's moving realloc is recorded: the new
 * block, the record, then the old block's free (trace.h: the order that
 * keeps ids right when another thread gets the old address at once).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "trace.h"

#define HELD_MAX 64u
#define MAILBOX_MAX 256u
#define THREADS_MAX 64u

typedef struct block {
	void *p;
	size_t size;
} block_t;

static struct {
	pthread_mutex_t lock;
	block_t box[MAILBOX_MAX];
	unsigned n;
} mailbox = {PTHREAD_MUTEX_INITIALIZER, {{NULL, 0}}, 0};

static unsigned nops = 2000;
/* What each thread leaves live in the trace, freed after the flush. */
static block_t left[THREADS_MAX];
static uint64_t seed = 1;

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t draw_size(uint64_t *s)
{
	unsigned r = (unsigned)(next(s) % 100);
	if (r < 70)
		return 1 + next(s) % 256;
	if (r < 92)
		return 257 + next(s) % 8000;
	if (r < 98)
		return 8192 + next(s) % 65536;
	return 131072 + next(s) % 1048576;
}

static void touch(void *p, size_t size)
{
	memset(p, 0xa5, size < 64 ? size : 64);
}

static void release(block_t b)
{
	qtrace_record(QTRACE_FREE, b.p, 0, 0, NULL);
	free(b.p);
}

static block_t allocate(uint64_t *s)
{
	size_t size = draw_size(s), align = (size_t)16 << (next(s) % 9);
	void *p = NULL;
	unsigned how = (unsigned)(next(s) % 10);
	if (how < 6) {
		p = malloc(size);
		qtrace_record(QTRACE_MALLOC, NULL, size, 0, p);
	} else if (how < 8) {
		p = calloc(1, size);
		qtrace_record(QTRACE_CALLOC, NULL, size, 0, p);
	} else if (how == 8) {
		if (posix_memalign(&p, align, size) != 0)
			p = NULL;
		qtrace_record(QTRACE_POSIX_MEMALIGN, NULL, size, align, p);
	} else {
		size = (size + align - 1) & ~(align - 1);
		unsigned op = next(s) % 2 ? QTRACE_ALIGNED_ALLOC :
		    QTRACE_MEMALIGN;
		p = op == QTRACE_MEMALIGN ? memalign(align, size) :
		    aligned_alloc(align, size);
		qtrace_record(op, NULL, size, align, p);
	}
	if (p == NULL) {
		perror("trace_demo: allocation");
		exit(1);
	}
	touch(p, size);
	return (block_t){p, size};
}

/* Grow b to 1x-2x its size (a block past 256 KiB shrinks to a quarter
 * instead): new block, record, old block's free. */
static void grow(block_t *b, uint64_t *s)
{
	size_t size = b->size > ((size_t)256 << 10) ? b->size / 4 :
	    b->size + 1 + (size_t)(next(s) % (b->size + 1));
	void *q = malloc(size);
	if (q == NULL) {
		perror("trace_demo: realloc");
		exit(1);
	}
	memcpy(q, b->p, size < b->size ? size : b->size);
	qtrace_record(QTRACE_REALLOC, b->p, size, 0, q);
	free(b->p);
	*b = (block_t){q, size};
}

static void mailbox_op(block_t *held, unsigned *n, uint64_t *s)
{
	pthread_mutex_lock(&mailbox.lock);
	if (*n > 0 && mailbox.n < MAILBOX_MAX && next(s) % 2) {
		mailbox.box[mailbox.n++] = held[--*n];
	} else if (mailbox.n > 0) {
		block_t b = mailbox.box[--mailbox.n];
		pthread_mutex_unlock(&mailbox.lock);
		release(b);
		return;
	}
	pthread_mutex_unlock(&mailbox.lock);
}

static void *worker(void *arg)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + (uintptr_t)arg + 1;
	block_t held[HELD_MAX];
	unsigned n = 0;
	for (unsigned i = 0; i < nops; i++) {
		unsigned r = (unsigned)(next(&s) % 100);
		if (n == 0 || (r < 45 && n < HELD_MAX))
			held[n++] = allocate(&s);
		else if (r < 60)
			grow(&held[next(&s) % n], &s);
		else if (r < 70)
			mailbox_op(held, &n, &s);
		else {
			unsigned k = (unsigned)(next(&s) % n);
			release(held[k]);
			held[k] = held[--n];
		}
	}
	while (n > 1)
		release(held[--n]);
	left[(uintptr_t)arg] = n ? held[0] : (block_t){NULL, 0};
	return NULL;
}

static void fork_child_work(void)
{
	qtrace_fork_child();
	uint64_t s = seed + 77;
	block_t b = allocate(&s);
	grow(&b, &s);
	release(b);
	qtrace_flush();
	_exit(0);
}

int main(int argc, char **argv)
{
	unsigned nthreads = 4;
	int do_fork = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: trace_demo OUT [--threads N] [--ops K] "
		    "[--seed S] [--fork]\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			nthreads = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
			nops = (unsigned)atoi(argv[++i]);
		else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--fork") == 0)
			do_fork = 1;
	}
	if (nthreads == 0 || nthreads > THREADS_MAX)
		nthreads = 4;
	setenv("QUANTA_MALLOC_TRACE", argv[1], 1);
	qtrace_init_from_env();
	pthread_t th[THREADS_MAX];
	for (unsigned i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	while (mailbox.n > 0)
		release(mailbox.box[--mailbox.n]);
	if (do_fork) {
		pid_t pid = fork();
		if (pid == 0)
			fork_child_work();
		waitpid(pid, NULL, 0);
		printf("trace_demo: child %d traced into %s.%d\n", (int)pid,
		    argv[1], (int)pid);
	}
	qtrace_flush();
	for (unsigned i = 0; i < nthreads; i++)
		free(left[i].p);
	printf("trace_demo: %u threads x %u operations traced into %s\n",
	    nthreads, nops, argv[1]);
	return 0;
}
