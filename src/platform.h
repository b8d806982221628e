/*
 * platform.h — the one seam between the allocator and the operating system.
 *
 * Every lock, condition variable, thread-identity, clock, process and page call
 * of src/ goes through the functions below; nothing else in src/ names
 * pthread_*, clock_gettime or mmap.  Two implementations exist:
 *   - pthread (this file): static inline wrappers, so the release build pays
 *     nothing for the seam;
 *   - sim (QUANTA_SIM, sim/sim_platform.h): each call is a scheduling point of
 *     the deterministic scheduler, the clock is virtual and thread identity is
 *     the simulated thread.
 * The allocator is compiled once per implementation and cannot tell which it
 * got.  The seam is also where failures are injected (page maps that fail).
 */
#ifndef QUANTA_PLATFORM_H
#define QUANTA_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/*
 * The calling thread's own words: the lock book (PLAT_LOCK_BOOK_SLOTS
 * counters the debug lock-order witness keeps per thread) and
 * PLAT_THREAD_PTRS pointers (vmem.c keeps the list of its source calls in
 * progress in one, for a fork's child, and in the other how deep the
 * thread is in calls that failure injection spares).  Both seams
 * hand out this area: the pthread one a thread-local that lockrank.c owns,
 * the simulator's one per simulated thread.  (Each seam also takes a note
 * of the rank of the lock about to be taken; only the simulator reads it.)
 */
#define PLAT_LOCK_BOOK_SLOTS 16
#define PLAT_THREAD_PTRS 2
#define PLAT_PTR_STASH 0
#define PLAT_PTR_NOINJECT 1
typedef struct plat_thread_area {
	unsigned lock_book[PLAT_LOCK_BOOK_SLOTS];
	void *ptr[PLAT_THREAD_PTRS];
} plat_thread_area_t;

#ifdef QUANTA_SIM
#include "sim_platform.h"
#else

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef pthread_mutex_t plat_mutex_t;
typedef pthread_cond_t plat_cond_t;
#define PLAT_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#define PLAT_COND_INITIALIZER PTHREAD_COND_INITIALIZER

static inline void plat_mutex_init(plat_mutex_t *m)
{
	(void)pthread_mutex_init(m, NULL);
}

static inline void plat_mutex_destroy(plat_mutex_t *m)
{
	(void)pthread_mutex_destroy(m);
}

static inline void plat_mutex_lock(plat_mutex_t *m)
{
	(void)pthread_mutex_lock(m);
}

static inline int plat_mutex_trylock(plat_mutex_t *m)
{
	return pthread_mutex_trylock(m) == 0;
}

static inline void plat_mutex_unlock(plat_mutex_t *m)
{
	(void)pthread_mutex_unlock(m);
}

/*
 * A leaf lock: its holder makes no other seam call and takes no lock
 * before it lets go (a few stores, no wait).  Here a plain mutex; the
 * simulator's leaf lock is no scheduling point, since no simulated thread
 * can be switched out while holding one (the lock table, locktab.c).
 */
typedef pthread_mutex_t plat_leaf_t;
#define PLAT_LEAF_INITIALIZER PTHREAD_MUTEX_INITIALIZER

static inline void plat_leaf_lock(plat_leaf_t *l)
{
	(void)pthread_mutex_lock(l);
}

static inline void plat_leaf_unlock(plat_leaf_t *l)
{
	(void)pthread_mutex_unlock(l);
}

static inline void plat_cond_init(plat_cond_t *c)
{
	(void)pthread_cond_init(c, NULL);
}

static inline void plat_cond_destroy(plat_cond_t *c)
{
	(void)pthread_cond_destroy(c);
}

static inline void plat_cond_broadcast(plat_cond_t *c)
{
	(void)pthread_cond_broadcast(c);
}

#ifndef QUANTA_RELEASE
/*
 * Test builds only: a harness may replace the clock.  The fuzz targets count
 * calls instead, so that the mtbf failures of an input are the same on every
 * run of it (replay, AFL++'s stability); NULL means the real clock.
 */
extern uint64_t (*plat_clock_override)(void);
#endif

/* Nanoseconds of a monotonic clock (the mtbf clock). */
static inline uint64_t plat_clock_ns(void)
{
#ifndef QUANTA_RELEASE
	uint64_t (*clock_fn)(void) = plat_clock_override;
	if (clock_fn != NULL)
		return clock_fn();
#endif
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait on c (m held) until signalled or timeout_ns has passed. */
static inline void plat_cond_timedwait(plat_cond_t *c, plat_mutex_t *m,
    uint64_t timeout_ns)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns;
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	(void)pthread_cond_timedwait(c, m, &ts);
}

/* A non-zero identity of the calling thread, stable for its lifetime. */
static inline uintptr_t plat_thread_self(void)
{
	return (uintptr_t)pthread_self();
}

/*
 * Thread-specific data: one pointer per thread per key, and a destructor
 * that runs when a thread that set a non-NULL value exits (the object
 * caches give a departing thread's magazines back with it).
 */
typedef pthread_key_t plat_tsd_key_t;

static inline int plat_tsd_key_create(plat_tsd_key_t *key,
    void (*destructor)(void *))
{
	return pthread_key_create(key, destructor) == 0;
}

static inline void *plat_tsd_get(plat_tsd_key_t key)
{
	return pthread_getspecific(key);
}

static inline void plat_tsd_set(plat_tsd_key_t key, const void *value)
{
	(void)pthread_setspecific(key, value);
}

static inline void plat_atfork(void (*prepare)(void), void (*parent)(void),
    void (*child)(void))
{
	(void)pthread_atfork(prepare, parent, child);
}

/* The identity of the calling process: a child of fork gets a new one
 * (the bootstrap gate of vmem_tags.c tells a parent's half-done bootstrap
 * from its own with it). */
static inline long plat_process_id(void)
{
	return (long)getpid();
}

/*
 * A place where a real processor could be preempted between two stores
 * that another thread (or a fork's child) may observe apart: the magazine
 * push, the bootstrap gate, flag publications.  Nothing here; the
 * simulator's seam makes each one a scheduling point, named for its trace.
 */
static inline void plat_preempt_point(const char *where)
{
	(void)where;
}

extern _Thread_local plat_thread_area_t plat_thread_area_tls;

static inline plat_thread_area_t *plat_thread_area(void)
{
	return &plat_thread_area_tls;
}

static inline void plat_lock_rank_note(int rank)
{
	(void)rank;
}

/* Give the processor to another thread (a short wait with no lock). */
static inline void plat_yield(void)
{
	(void)sched_yield();
}

static inline size_t plat_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

#ifndef QUANTA_RELEASE
/* Test builds only: a test may replace the page map (to make it fail);
 * NULL means mmap. */
extern void *(*plat_pages_map_override)(size_t size);
#endif

/* Whole pages of anonymous memory, or NULL. */
static inline void *plat_pages_map(size_t size)
{
#ifndef QUANTA_RELEASE
	void *(*map_fn)(size_t) = plat_pages_map_override;
	if (map_fn != NULL)
		return map_fn(size);
#endif
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static inline void plat_pages_unmap(void *addr, size_t size)
{
	(void)munmap(addr, size);
}

#endif /* QUANTA_SIM */
#endif /* QUANTA_PLATFORM_H */
