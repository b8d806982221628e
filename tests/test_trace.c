/*
 * test_trace.c — the allocation trace (malloc/trace.h): what the recorder
 * writes, read back by the reader, record by record.  The recorder only
 * maps pointer values to ids, so most tests feed it made-up addresses.
 * Each test runs in a child of its own (qtest.h), so the recorder's
 * globals start fresh.
 */
#include "qtest.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "trace.h"

static char path[128];

static void trace_start(void)
{
	snprintf(path, sizeof(path), "/tmp/qtrace-test-%d", (int)getpid());
	setenv("QUANTA_MALLOC_TRACE", path, 1);
	qtrace_init_from_env();
}

static void *P(uintptr_t a)
{
	return (void *)(a * 16);
}

static void expect_rec(const qtrace_rec_t *r, unsigned op, unsigned flags,
    unsigned ref, unsigned id, uint64_t size, uint64_t align)
{
	QT_EQ(r->op, op);
	QT_EQ(r->flags, flags);
	QT_EQ(r->ref, ref);
	QT_EQ(r->id, id);
	QT_EQ(r->size, size);
	QT_EQ(r->align, align);
}

QTEST(trace_round_trip_every_operation)
{
	trace_start();
	QT_TRUE(qtrace_active());
	qtrace_record(QTRACE_MALLOC, NULL, 100, 0, P(1));          /* id 1 */
	qtrace_record(QTRACE_CALLOC, NULL, 3000, 0, P(2));         /* id 2 */
	qtrace_record(QTRACE_REALLOC, P(1), 200, 0, P(3));         /* id 3 */
	qtrace_record(QTRACE_POSIX_MEMALIGN, NULL, 4096, 64, P(4)); /* id 4 */
	qtrace_record(QTRACE_FREE, P(2), 0, 0, NULL);
	qtrace_record(QTRACE_FREE, NULL, 0, 0, NULL);     /* not recorded */
	qtrace_record(QTRACE_FREE, P(99), 0, 0, NULL);    /* foreign */
	qtrace_record(QTRACE_REALLOC, NULL, 50, 0, P(5));          /* id 5 */
	qtrace_record(QTRACE_REALLOC, P(5), 0, 0, NULL);  /* a free of 5 */
	qtrace_record(QTRACE_MALLOC, NULL, 1u << 30, 0, NULL);     /* failed */
	qtrace_record(QTRACE_REALLOC, P(3), 1u << 30, 0, NULL);    /* failed */
	qtrace_record(QTRACE_ALIGNED_ALLOC, NULL, 64, 32, P(3));   /* id 6 */
	qtrace_record(QTRACE_MEMALIGN, NULL, 8, 4096, P(6));       /* id 7 */
	qtrace_record(QTRACE_FREE, P(3), 0, 0, NULL);
	qtrace_flush();
	QT_TRUE(!qtrace_active());
	qtrace_t t;
	char err[200];
	QT_EQ(qtrace_read(path, &t, err, sizeof(err)), 0);
	unlink(path);
	QT_TRUE(t.complete);
	QT_EQ(t.nrec, 13);
	QT_EQ(t.nthreads, 1);
	QT_EQ(t.nobjects, 7);
	QT_EQ(t.live_end, 3); /* 3 (the failed realloc kept it), 4, 7 */
	QT_EQ(t.pid, (uint64_t)getpid());
	QT_EQ(t.parent, 0);
	expect_rec(&t.rec[0], QTRACE_MALLOC, 0, 0, 1, 100, 0);
	expect_rec(&t.rec[1], QTRACE_CALLOC, 0, 0, 2, 3000, 0);
	expect_rec(&t.rec[2], QTRACE_REALLOC, 0, 1, 3, 200, 0);
	expect_rec(&t.rec[3], QTRACE_POSIX_MEMALIGN, 0, 0, 4, 4096, 64);
	expect_rec(&t.rec[4], QTRACE_FREE, 0, 2, 0, 0, 0);
	expect_rec(&t.rec[5], QTRACE_FREE, QTRACE_F_FOREIGN, 0, 0, 0, 0);
	expect_rec(&t.rec[6], QTRACE_REALLOC, 0, 0, 5, 50, 0);
	expect_rec(&t.rec[7], QTRACE_FREE, 0, 5, 0, 0, 0);
	expect_rec(&t.rec[8], QTRACE_MALLOC, QTRACE_F_FAILED, 0, 0, 1u << 30, 0);
	expect_rec(&t.rec[9], QTRACE_REALLOC, QTRACE_F_FAILED, 3, 0, 1u << 30, 0);
	expect_rec(&t.rec[10], QTRACE_ALIGNED_ALLOC, 0, 0, 6, 64, 32);
	expect_rec(&t.rec[11], QTRACE_MEMALIGN, 0, 0, 7, 8, 4096);
	expect_rec(&t.rec[12], QTRACE_FREE, 0, 6, 0, 0, 0);
	qtrace_release(&t);
}

/* Header 4 + 3 varints (version 1 byte, pid 3 bytes below 2^21, parent 1),
 * then malloc(100) [op, thread, size] = 3 bytes, free of the block just
 * made [op, thread, ref 1] = 3 bytes, END 1 byte. */
QTEST(trace_pair_costs_six_bytes)
{
	trace_start();
	qtrace_record(QTRACE_MALLOC, NULL, 100, 0, P(1));
	qtrace_record(QTRACE_FREE, P(1), 0, 0, NULL);
	qtrace_flush();
	struct stat st;
	QT_EQ(stat(path, &st), 0);
	unlink(path);
	size_t pid_bytes = getpid() < 128 ? 1 : getpid() < 16384 ? 2 :
	    getpid() < (1 << 21) ? 3 : 4;
	QT_EQ((size_t)st.st_size, 4 + 1 + pid_bytes + 1 + 3 + 3 + 1);
}

#define THREADS 4
#define PAIRS 1000

static void *pair_worker(void *arg)
{
	uintptr_t base = (uintptr_t)arg * 100000;
	for (uintptr_t i = 1; i <= PAIRS; i++) {
		qtrace_record(QTRACE_MALLOC, NULL, i, 0, P(base + i));
		qtrace_record(QTRACE_FREE, P(base + i), 0, 0, NULL);
	}
	return NULL;
}

QTEST(trace_threads_numbered_and_pairs_matched)
{
	trace_start();
	pthread_t th[THREADS];
	for (uintptr_t i = 0; i < THREADS; i++)
		QT_EQ(pthread_create(&th[i], NULL, pair_worker,
		    (void *)(i + 1)), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	qtrace_flush();
	qtrace_t t;
	char err[200];
	QT_EQ(qtrace_read(path, &t, err, sizeof(err)), 0);
	unlink(path);
	QT_EQ(t.nrec, 2 * THREADS * PAIRS);
	QT_EQ(t.nthreads, THREADS);
	QT_EQ(t.live_end, 0);
	/* Each thread's own records: malloc i, free of that very id. */
	uint64_t next[THREADS] = {1, 1, 1, 1};
	uint32_t last_id[THREADS] = {0};
	for (size_t k = 0; k < t.nrec; k++) {
		const qtrace_rec_t *r = &t.rec[k];
		QT_TRUE(r->thread < THREADS);
		if (r->op == QTRACE_MALLOC) {
			QT_EQ(r->size, next[r->thread]);
			last_id[r->thread] = r->id;
		} else {
			QT_EQ(r->op, QTRACE_FREE);
			QT_EQ(r->ref, last_id[r->thread]);
			next[r->thread]++;
		}
	}
	qtrace_release(&t);
}

/* 50,000 live blocks (the map doubles from 4096 slots), freed in a
 * scrambled order: every free names its own block's id. */
QTEST(trace_map_grows_and_deletes)
{
	enum { N = 50000 };
	trace_start();
	for (uintptr_t i = 1; i <= N; i++)
		qtrace_record(QTRACE_MALLOC, NULL, 8, 0, P(i * 4099));
	uint32_t *order = malloc(N * sizeof(*order));
	for (uint32_t i = 0; i < N; i++)
		order[i] = (uint32_t)(((uint64_t)i * 7919) % N) + 1;
	for (uint32_t i = 0; i < N; i++)
		qtrace_record(QTRACE_FREE, P((uintptr_t)order[i] * 4099), 0, 0,
		    NULL);
	qtrace_flush();
	qtrace_t t;
	char err[200];
	QT_EQ(qtrace_read(path, &t, err, sizeof(err)), 0);
	unlink(path);
	QT_EQ(t.nrec, 2 * N);
	QT_EQ(t.live_end, 0);
	for (uint32_t i = 0; i < N; i++)
		QT_EQ(t.rec[N + i].ref, order[i]);
	free(order);
	qtrace_release(&t);
}

QTEST(trace_fork_child_writes_its_own_file)
{
	trace_start();
	qtrace_record(QTRACE_MALLOC, NULL, 10, 0, P(1));
	pid_t pid = fork();
	if (pid == 0) {
		qtrace_fork_child();
		qtrace_record(QTRACE_FREE, P(1), 0, 0, NULL);   /* inherited */
		qtrace_record(QTRACE_MALLOC, NULL, 20, 0, P(2));
		qtrace_flush();
		_exit(0);
	}
	int st;
	QT_EQ(waitpid(pid, &st, 0), pid);
	QT_EQ(st, 0);
	qtrace_record(QTRACE_FREE, P(1), 0, 0, NULL);
	qtrace_flush();
	char cpath[160];
	snprintf(cpath, sizeof(cpath), "%s.%d", path, (int)pid);
	qtrace_t t, c;
	char err[200];
	QT_EQ(qtrace_read(path, &t, err, sizeof(err)), 0);
	QT_EQ(qtrace_read(cpath, &c, err, sizeof(err)), 0);
	unlink(path);
	unlink(cpath);
	QT_EQ(t.nrec, 2);
	QT_EQ(t.rec[1].ref, 1);
	QT_EQ(c.pid, (uint64_t)pid);
	QT_EQ(c.parent, (uint64_t)getpid());
	QT_EQ(c.nrec, 2);
	expect_rec(&c.rec[0], QTRACE_FREE, QTRACE_F_FOREIGN, 0, 0, 0, 0);
	expect_rec(&c.rec[1], QTRACE_MALLOC, 0, 0, 1, 20, 0);
	QT_EQ(c.live_end, 1);
	QT_TRUE(c.complete);
	qtrace_release(&t);
	qtrace_release(&c);
}

/* Another process (here: another open file description) holds path's
 * lock, as the traced parent does for a program it exec'd: the recorder
 * writes path.<pid> and leaves path alone. */
QTEST(trace_locked_path_goes_to_path_pid)
{
	snprintf(path, sizeof(path), "/tmp/qtrace-test-%d", (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	QT_TRUE(fd >= 0);
	QT_EQ(write(fd, "x", 1), 1);
	QT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
	trace_start();
	qtrace_record(QTRACE_MALLOC, NULL, 10, 0, P(1));
	qtrace_flush();
	char own[160];
	snprintf(own, sizeof(own), "%s.%d", path, (int)getpid());
	struct stat st;
	QT_EQ(stat(path, &st), 0);
	QT_EQ(st.st_size, 1);
	qtrace_t t;
	char err[200];
	QT_EQ(qtrace_read(own, &t, err, sizeof(err)), 0);
	QT_EQ(t.nrec, 1);
	QT_EQ(t.parent, 0);
	QT_TRUE(t.complete);
	qtrace_release(&t);
	close(fd);
	unlink(path);
	unlink(own);
}

/* A process that ends without the flush leaves the header: a readable
 * trace, incomplete, with no records. */
QTEST(trace_header_written_at_once)
{
	trace_start();
	qtrace_record(QTRACE_MALLOC, NULL, 10, 0, P(1));
	qtrace_t t;
	char err[200];
	QT_EQ(qtrace_read(path, &t, err, sizeof(err)), 0);
	unlink(path);
	QT_EQ(t.nrec, 0);
	QT_TRUE(!t.complete);
	QT_EQ(t.pid, (uint64_t)getpid());
	qtrace_release(&t);
}

QTEST(trace_off_without_the_variable)
{
	unsetenv("QUANTA_MALLOC_TRACE");
	qtrace_init_from_env();
	QT_TRUE(!qtrace_active());
	qtrace_record(QTRACE_MALLOC, NULL, 10, 0, P(1));
	qtrace_flush();
	QT_TRUE(!qtrace_active());
}

static int read_bytes(const unsigned char *b, size_t n, qtrace_t *t,
    char *err, size_t errlen)
{
	snprintf(path, sizeof(path), "/tmp/qtrace-bytes-%d", (int)getpid());
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
	int rc = qtrace_read(path, t, err, errlen);
	unlink(path);
	return rc;
}

QTEST(trace_reader_rejects_and_truncates)
{
	qtrace_t t;
	char err[200];
	/* A free of id 1 (ref code 1) before anything was allocated. */
	const unsigned char dangling[] = {'Q', 'T', 'R', 'C', 1, 5, 0,
	    QTRACE_FREE, 0, 1, QTRACE_END};
	QT_EQ(read_bytes(dangling, sizeof(dangling), &t, err,
	    sizeof(err)), -1);
	QT_TRUE(strcmp(err, "record 0: reference out of range") == 0);
	/* Thread 2 before thread 1. */
	const unsigned char order[] = {'Q', 'T', 'R', 'C', 1, 5, 0,
	    QTRACE_MALLOC, 2, 8, QTRACE_END};
	QT_EQ(read_bytes(order, sizeof(order), &t, err, sizeof(err)), -1);
	QT_TRUE(strcmp(err, "record 0: thread number out of order") == 0);
	const unsigned char magic[] = {'Q', 'T', 'R', 'X', 1, 5, 0};
	QT_EQ(read_bytes(magic, sizeof(magic), &t, err, sizeof(err)), -1);
	/* Two malloc records, the second cut after its thread number. */
	const unsigned char cut[] = {'Q', 'T', 'R', 'C', 1, 5, 0,
	    QTRACE_MALLOC, 0, 8, QTRACE_MALLOC, 0};
	QT_EQ(read_bytes(cut, sizeof(cut), &t, err, sizeof(err)), 0);
	QT_EQ(t.nrec, 1);
	QT_TRUE(!t.complete);
	QT_EQ(t.live_end, 1);
	qtrace_release(&t);
}

QTEST_MAIN()
