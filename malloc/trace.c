/*
 * trace.c — the recorder of QUANTA_MALLOC_TRACE=path: every allocation
 * call of the front end as one compact record (format: TRACE.md).
 *
 * Theory
 * ------
 * It runs inside malloc, so it must never call malloc: the file is written
 * with open/write from a static buffer, the pointer-to-id map lives in
 * mmap'd pages, and thread numbers live in initial-exec TLS (reading it
 * never allocates).  One mutex orders everything: the map, the id counter,
 * the thread numbers and the buffer change together, so record order is
 * lock order, and ids (the allocation's number, from 1) agree with it.
 *
 * The map is open addressing with linear probing over a power-of-two
 * table, kept at most half full (so a probe ends within a few slots), and
 * a deletion shifts the following entries back instead of leaving
 * tombstones, so it never degrades.  It doubles by rehashing into fresh
 * pages.  A reference is written as next_id - id: a block freed soon
 * after its allocation (the common case) costs one byte.
 *
 * Fork: the child's copy of the state may be torn (another thread held the
 * lock at the fork), so qtrace_fork_child keeps none of it: a new lock, an
 * empty map and buffer, ids and thread numbers from the start, and a file
 * of its own, path.<pid>.  Its frees of blocks inherited from the parent
 * are recorded as foreign (QTRACE_F_FOREIGN), which a replay skips.
 *
 * Exec: a program the traced one runs inherits QUANTA_MALLOC_TRACE.  The
 * first process holds an flock on path for its life, so a later one finds
 * path locked and writes path.<pid> instead of truncating it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "trace.h"

#define QT_BUF_BYTES ((size_t)64 << 10)
#define QT_REC_BYTES_MAX 48u   /* 5 varints of at most 10 bytes */
#define QT_PATH_BYTES 4096u
#define QT_MAP_SLOTS_MIN ((size_t)1 << 12)
#define QT_ID_MAX 0xfffffff0u  /* ids are 32-bit in a reader */

typedef struct qt_slot {
	uintptr_t key;         /* 0: empty */
	uint32_t id;
} qt_slot_t;

_Atomic bool qtrace_on;
static bool qt_inited;
static pthread_mutex_t qt_lock = PTHREAD_MUTEX_INITIALIZER;
static int qt_fd = -1;
static char qt_path[QT_PATH_BYTES];
static unsigned char qt_buf[QT_BUF_BYTES];
static size_t qt_used;
static qt_slot_t *qt_map;
static size_t qt_slots, qt_count;
static uint32_t qt_next_id = 1;
static uint32_t qt_nthreads;
static uint32_t qt_gen = 1;    /* thread numbers of generation != this are stale */
static uint64_t qt_pid;
static __thread uint32_t qt_tnum __attribute__((tls_model("initial-exec")));
static __thread uint32_t qt_tgen __attribute__((tls_model("initial-exec")));

/* ---- output -------------------------------------------------------- */

static size_t put_varint(unsigned char *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (unsigned char)v;
	return n;
}

/* Everything buffered to the file; on an error tracing stops. */
static void buf_drain(void)
{
	size_t off = 0;
	while (off < qt_used) {
		ssize_t k = write(qt_fd, qt_buf + off, qt_used - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			atomic_store(&qtrace_on, false);
			break;
		}
		off += (size_t)k;
	}
	qt_used = 0;
}

static void buf_put(const unsigned char *rec, size_t len)
{
	if (qt_used + len > QT_BUF_BYTES)
		buf_drain();
	memcpy(qt_buf + qt_used, rec, len);
	qt_used += len;
}

/* The header, written at once: a process that ends without its flush
 * (an exec, an _exit) still leaves a readable, incomplete trace. */
static bool header_write(uint64_t parent)
{
	unsigned char hdr[4 + 3 * 10];
	memcpy(hdr, QTRACE_MAGIC, 4);
	size_t n = 4;
	n += put_varint(hdr + n, QTRACE_VERSION);
	n += put_varint(hdr + n, qt_pid);
	n += put_varint(hdr + n, parent);
	qt_used = 0;
	buf_put(hdr, n);
	buf_drain();
	return qt_fd >= 0;
}

/* path.<pid> into out (no snprintf: it may allocate). */
static void pid_path(char *out, uint64_t pid)
{
	size_t n = strlen(qt_path);
	memcpy(out, qt_path, n);
	out[n++] = '.';
	char digits[24];
	size_t k = 0;
	do {
		digits[k++] = (char)('0' + pid % 10);
		pid /= 10;
	} while (pid != 0);
	while (k > 0)
		out[n++] = digits[--k];
	out[n] = '\0';
}

/* The process's file: path itself, unless another live process holds
 * path's lock (the traced program exec'd a program that inherited the
 * variable): then path.<pid>.  parent != 0: a fork's child, path.<pid>. */
static bool file_start(uint64_t parent)
{
	int saved = errno, fd = -1;
	char own[QT_PATH_BYTES];
	if (parent == 0) {
		fd = open(qt_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    ftruncate(fd, 0) == 0) {
			qt_fd = fd;
			errno = saved;
			return header_write(parent);
		}
		if (fd >= 0)
			close(fd);
	}
	pid_path(own, qt_pid);
	qt_fd = open(own, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	errno = saved;
	return qt_fd >= 0 && header_write(parent);
}

/* ---- the pointer -> id map ------------------------------------------ */

static size_t slot_of(uintptr_t key)
{
	uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 20) & (qt_slots - 1);
}

static bool map_grow(void)
{
	size_t nslots = qt_slots ? qt_slots * 2 : QT_MAP_SLOTS_MIN;
	void *p = mmap(NULL, nslots * sizeof(qt_slot_t), PROT_READ |
	    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return false;
	qt_slot_t *old = qt_map;
	size_t oslots = qt_slots;
	qt_map = p;
	qt_slots = nslots;
	for (size_t i = 0; i < oslots; i++) {
		if (old[i].key == 0)
			continue;
		size_t s = slot_of(old[i].key);
		while (qt_map[s].key != 0)
			s = (s + 1) & (qt_slots - 1);
		qt_map[s] = old[i];
	}
	if (old != NULL)
		munmap(old, oslots * sizeof(qt_slot_t));
	return true;
}

/* Key's id (an existing entry is replaced: its free was never seen). */
static bool map_insert(uintptr_t key, uint32_t id)
{
	if ((qt_count + 1) * 2 > qt_slots && !map_grow())
		return false;
	size_t s = slot_of(key);
	while (qt_map[s].key != 0 && qt_map[s].key != key)
		s = (s + 1) & (qt_slots - 1);
	if (qt_map[s].key == 0)
		qt_count++;
	qt_map[s] = (qt_slot_t){key, id};
	return true;
}

static uint32_t map_find(uintptr_t key)
{
	if (qt_slots == 0)
		return 0;
	for (size_t s = slot_of(key); qt_map[s].key != 0;
	     s = (s + 1) & (qt_slots - 1))
		if (qt_map[s].key == key)
			return qt_map[s].id;
	return 0;
}

/* Remove key; its id, or 0 if it was not there.  The entries after it in
 * its run move back into the hole when their home slot allows it. */
static uint32_t map_remove(uintptr_t key)
{
	if (qt_slots == 0)
		return 0;
	size_t mask = qt_slots - 1, s = slot_of(key);
	while (qt_map[s].key != key) {
		if (qt_map[s].key == 0)
			return 0;
		s = (s + 1) & mask;
	}
	uint32_t id = qt_map[s].id;
	size_t hole = s;
	for (size_t j = (s + 1) & mask; qt_map[j].key != 0; j = (j + 1) & mask) {
		size_t home = slot_of(qt_map[j].key);
		/* j may move to hole iff home is not in (hole, j]. */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			qt_map[hole] = qt_map[j];
			hole = j;
		}
	}
	qt_map[hole].key = 0;
	qt_count--;
	return id;
}

/* ---- records ---------------------------------------------------------- */

static uint32_t thread_number(void)
{
	if (qt_tgen != qt_gen) {
		qt_tgen = qt_gen;
		qt_tnum = qt_nthreads++;
	}
	return qt_tnum;
}

/* A new id for result, or 0 when the map cannot hold it (tracing ends). */
static uint32_t object_new(const void *result)
{
	if (qt_next_id >= QT_ID_MAX || !map_insert((uintptr_t)result,
	    qt_next_id)) {
		atomic_store(&qtrace_on, false);
		return 0;
	}
	return qt_next_id++;
}

static uint64_t ref_code(uint32_t id)
{
	return id == 0 ? 0 : (uint64_t)(qt_next_id - id);
}

/* Under the lock: the record's fields, then the map's change. */
static void record_locked(unsigned op, const void *ptr, size_t size,
    size_t align, const void *result)
{
	if (op == QTRACE_REALLOC && ptr != NULL && result == NULL && size == 0)
		op = QTRACE_FREE;
	bool names = op == QTRACE_FREE || op == QTRACE_REALLOC;
	bool failed = op != QTRACE_FREE && result == NULL;
	unsigned flags = failed ? QTRACE_F_FAILED : 0;
	uint32_t ref = 0;
	if (names && ptr != NULL) {
		/* A failed realloc leaves its block live and named. */
		ref = failed ? map_find((uintptr_t)ptr) :
		    map_remove((uintptr_t)ptr);
		flags |= ref == 0 ? QTRACE_F_FOREIGN : 0;
	}
	unsigned char rec[QT_REC_BYTES_MAX];
	size_t n = put_varint(rec, op | flags);
	n += put_varint(rec + n, thread_number());
	if (names)
		n += put_varint(rec + n, ref_code(ref));
	if (op != QTRACE_FREE)
		n += put_varint(rec + n, size);
	if (op >= QTRACE_MEMALIGN)
		n += put_varint(rec + n, align);
	buf_put(rec, n);
	if (op != QTRACE_FREE && !failed)
		(void)object_new(result);
}

void qtrace_record(unsigned op, const void *ptr, size_t size, size_t align,
    const void *result)
{
	if (!qtrace_active() || op == QTRACE_END || op >= QTRACE_OPS)
		return;
	if (op == QTRACE_FREE && ptr == NULL)
		return;
	int saved = errno;
	pthread_mutex_lock(&qt_lock);
	if (atomic_load(&qtrace_on))
		record_locked(op, ptr, size, align, result);
	pthread_mutex_unlock(&qt_lock);
	errno = saved;
}

/* ---- lifecycle ---------------------------------------------------------- */

void qtrace_init_from_env(void)
{
	pthread_mutex_lock(&qt_lock);
	if (!qt_inited) {
		qt_inited = true;
		const char *path = getenv("QUANTA_MALLOC_TRACE");
		size_t len = path != NULL ? strlen(path) : 0;
		if (len > 0 && len + 24 < QT_PATH_BYTES) {
			memcpy(qt_path, path, len + 1);
			qt_pid = (uint64_t)getpid();
			if (file_start(0))
				atomic_store(&qtrace_on, true);
		}
	}
	pthread_mutex_unlock(&qt_lock);
}

void qtrace_fork_child(void)
{
	pthread_mutex_init(&qt_lock, NULL);
	if (qt_path[0] == '\0')
		return;
	bool was_on = atomic_load(&qtrace_on);
	atomic_store(&qtrace_on, false);
	if (qt_fd >= 0)
		close(qt_fd);
	qt_fd = -1;
	qt_used = 0;
	if (qt_map != NULL)
		munmap(qt_map, qt_slots * sizeof(qt_slot_t));
	qt_map = NULL;
	qt_slots = qt_count = 0;
	qt_next_id = 1;
	qt_nthreads = 0;
	qt_gen++;
	if (!was_on)
		return;
	uint64_t parent = qt_pid;
	qt_pid = (uint64_t)getpid();
	if (file_start(parent))
		atomic_store(&qtrace_on, true);
}

void qtrace_flush(void)
{
	int saved = errno;
	pthread_mutex_lock(&qt_lock);
	if (atomic_load(&qtrace_on)) {
		unsigned char end = QTRACE_END;
		buf_put(&end, 1);
		buf_drain();
		atomic_store(&qtrace_on, false);
	}
	if (qt_fd >= 0)
		close(qt_fd);
	qt_fd = -1;
	pthread_mutex_unlock(&qt_lock);
	errno = saved;
}
