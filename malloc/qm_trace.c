/*
 * qm_trace.c — QUANTA_MALLOC_TRACE=prefix: a compact binary trace of the
 * front end's operations in the file prefix.<pid>, for replaying a real
 * program's allocation traffic against other allocators (the format, and
 * the reader malloc/qm-trace, are in malloc/README.md).
 *
 * Theory
 * ------
 * One 32-byte record per operation: sequence, pointer, size, thread id,
 * op, log2 of the alignment.  The sequence is the order in which records
 * were appended, under one lock: an allocation is recorded after its
 * piece was taken and a free before its piece is given back, so for any
 * address the records alternate alloc, free, alloc ... in sequence order,
 * across threads, and a replay can match each free to its allocation by
 * pointer.  Records gather in a static 64 KiB buffer written with one
 * write(2) when full and at exit: no allocation, no stdio, and the lock is
 * a leaf (nothing is called under it but write).  A fork's child (its own
 * pid) drops the parent's buffered records, which the parent writes, and
 * goes on in its own file from sequence 0; an exec'd child opens its own.
 * What a process does after the exit flush (later destructors), or
 * buffered when it ends with _exit, is not recorded.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "qmalloc.h"

#define QM_TRACE_MAGIC "QMTRACE1"
#define QM_TRACE_BUF_RECORDS 2048u /* 64 KiB of 32-byte records */
#define QM_TRACE_PATH_MAX 4096

typedef struct qm_record {
	uint64_t r_seq;
	uint64_t r_ptr;
	uint64_t r_size;
	uint32_t r_tid;
	uint8_t r_op;
	uint8_t r_align_log2;
	uint16_t r_zero;
} qm_record_t;
_Static_assert(sizeof(qm_record_t) == 32, "32-byte records");

_Atomic bool qm_trace_on;
static pthread_mutex_t qm_trace_lock = PTHREAD_MUTEX_INITIALIZER;
static qm_record_t qm_trace_buf[QM_TRACE_BUF_RECORDS];
static unsigned qm_trace_n;
static uint64_t qm_trace_seq;
static int qm_trace_fd = -1;
static char qm_trace_prefix[QM_TRACE_PATH_MAX];
static __thread uint32_t qm_tid __attribute__((tls_model("initial-exec")));

static void qm_write_all(const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0 && qm_trace_fd >= 0) {
		ssize_t w = write(qm_trace_fd, p, len);
		if (w <= 0)
			return;
		p += w;
		len -= (size_t)w;
	}
}

/* Open prefix.<pid> and write the file header (16 bytes: the magic, the
 * record size, the pid). */
static void qm_trace_open(void)
{
	char path[QM_TRACE_PATH_MAX + 24];
	int n = snprintf(path, sizeof(path), "%s.%ld", qm_trace_prefix,
	    (long)getpid());
	qm_trace_fd = n > 0 && (size_t)n < sizeof(path) ? open(path,
	    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	uint32_t head[2] = {(uint32_t)sizeof(qm_record_t), (uint32_t)getpid()};
	qm_write_all(QM_TRACE_MAGIC, 8);
	qm_write_all(head, sizeof(head));
	qm_trace_n = 0;
	qm_trace_seq = 0;
}

static void qm_trace_flush_locked(void)
{
	qm_write_all(qm_trace_buf, qm_trace_n * sizeof(qm_record_t));
	qm_trace_n = 0;
}

static void qm_trace_prepare(void)
{
	(void)pthread_mutex_lock(&qm_trace_lock);
}

static void qm_trace_parent(void)
{
	(void)pthread_mutex_unlock(&qm_trace_lock);
}

static void qm_trace_child(void)
{
	if (qm_trace_fd >= 0)
		(void)close(qm_trace_fd);
	qm_tid = 0;
	qm_trace_open();
	(void)pthread_mutex_unlock(&qm_trace_lock);
}

void qm_trace_setup(const char *path)
{
	if (path == NULL || path[0] == '\0' ||
	    strlen(path) >= sizeof(qm_trace_prefix))
		return;
	memcpy(qm_trace_prefix, path, strlen(path) + 1);
	qm_trace_open();
	if (qm_trace_fd < 0)
		return;
	(void)pthread_atfork(qm_trace_prepare, qm_trace_parent,
	    qm_trace_child);
	atomic_store_explicit(&qm_trace_on, true, memory_order_release);
}

void qm_trace_slow(int op, const void *p, size_t size, size_t align)
{
	if (qm_tid == 0)
		qm_tid = (uint32_t)syscall(SYS_gettid);
	qm_record_t r = {.r_ptr = (uint64_t)(uintptr_t)p, .r_size = size,
		.r_tid = qm_tid, .r_op = (uint8_t)op,
		.r_align_log2 = (uint8_t)(align == 0 ? 0 : __builtin_ctzl(align))};
	(void)pthread_mutex_lock(&qm_trace_lock);
	r.r_seq = qm_trace_seq++;
	qm_trace_buf[qm_trace_n++] = r;
	if (qm_trace_n == QM_TRACE_BUF_RECORDS)
		qm_trace_flush_locked();
	(void)pthread_mutex_unlock(&qm_trace_lock);
}

/* Late among the destructors (the lowest priority number runs last). */
__attribute__((destructor(101))) static void qm_trace_exit(void)
{
	if (!atomic_load(&qm_trace_on))
		return;
	(void)pthread_mutex_lock(&qm_trace_lock);
	qm_trace_flush_locked();
	(void)pthread_mutex_unlock(&qm_trace_lock);
}
