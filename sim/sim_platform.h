/*
 * sim_platform.h — the platform seam of the sim variant (platform.h
 * includes it when QUANTA_SIM is defined).  Same functions, same
 * contracts as the pthread seam; each one is a scheduling point of the
 * deterministic scheduler (sim/sched.c):
 *   - a mutex is an owner id and a lock id (handed out in order of first
 *     use, never an address, so the trace is the same on every machine);
 *     lock blocks the simulated thread, unlock wakes nobody by itself (a
 *     blocked thread is runnable again once the owner is gone);
 *   - a condition variable is a waiters' generation; a timed wait blocks
 *     until a broadcast or until the virtual clock passes its deadline;
 *   - thread identity and thread-specific data are the simulated thread's;
 *   - the clock is virtual: it advances with the steps of the run;
 *   - pages come from one region mapped at a fixed address, handed out in
 *     a fixed order, and a page map fails when the run's fault plan says;
 *   - fork handlers are kept by the simulator, which runs them around the
 *     real fork() of sim_fork;
 *   - plat_preempt_point is a scheduling point like the others.
 * Nothing here is thread-safe: the simulated threads run one at a time on
 * one real thread.
 */
#ifndef QUANTA_SIM_PLATFORM_H
#define QUANTA_SIM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

typedef struct plat_mutex {
	unsigned pm_owner;  /* simulated thread id, 0 when free */
	unsigned pm_id;     /* 0 until first use, then 1, 2, ... */
	int pm_rank;        /* the rank it was last taken at (lockrank.h) */
} plat_mutex_t;

typedef struct plat_cond {
	unsigned pc_id;
	unsigned pc_waiters;
} plat_cond_t;

/* A leaf lock (platform.h): its holder, id pl_owner, makes no seam call
 * before it lets go, so no other simulated thread can ever find it held:
 * no scheduling point, and a held one found is a failure of the run. */
typedef struct plat_leaf {
	unsigned pl_owner;
} plat_leaf_t;

#define PLAT_MUTEX_INITIALIZER {0, 0, 0}
#define PLAT_LEAF_INITIALIZER {0}
#define PLAT_COND_INITIALIZER {0, 0}

typedef unsigned plat_tsd_key_t;
plat_thread_area_t *sim_thread_area(void);

void sim_mutex_init(plat_mutex_t *m);
void sim_mutex_lock(plat_mutex_t *m);
int sim_mutex_trylock(plat_mutex_t *m);
void sim_mutex_unlock(plat_mutex_t *m);
void sim_leaf_lock(plat_leaf_t *l);
void sim_leaf_unlock(plat_leaf_t *l);
void sim_cond_init(plat_cond_t *c);
void sim_cond_broadcast(plat_cond_t *c);
void sim_cond_timedwait(plat_cond_t *c, plat_mutex_t *m, uint64_t timeout_ns);
uint64_t sim_clock_ns(void);
uintptr_t sim_thread_self(void);
int sim_tsd_key_create(plat_tsd_key_t *key, void (*destructor)(void *));
void *sim_tsd_get(plat_tsd_key_t key);
void sim_tsd_set(plat_tsd_key_t key, const void *value);
void sim_atfork(void (*prepare)(void), void (*parent)(void),
    void (*child)(void));
long sim_process_id(void);
void sim_yield(void);
void sim_preempt_point(const char *where);
void *sim_pages_map(size_t size);
void sim_pages_unmap(void *addr, size_t size);
void sim_lock_rank_note(int rank);

static inline void plat_mutex_init(plat_mutex_t *m) { sim_mutex_init(m); }
static inline void plat_mutex_destroy(plat_mutex_t *m) { (void)m; }
static inline void plat_mutex_lock(plat_mutex_t *m) { sim_mutex_lock(m); }
static inline int plat_mutex_trylock(plat_mutex_t *m)
{
	return sim_mutex_trylock(m);
}
static inline void plat_mutex_unlock(plat_mutex_t *m) { sim_mutex_unlock(m); }
static inline void plat_leaf_lock(plat_leaf_t *l) { sim_leaf_lock(l); }
static inline void plat_leaf_unlock(plat_leaf_t *l) { sim_leaf_unlock(l); }
static inline void plat_cond_init(plat_cond_t *c) { sim_cond_init(c); }
static inline void plat_cond_destroy(plat_cond_t *c) { (void)c; }
static inline void plat_cond_broadcast(plat_cond_t *c)
{
	sim_cond_broadcast(c);
}
static inline uint64_t plat_clock_ns(void) { return sim_clock_ns(); }
static inline void plat_cond_timedwait(plat_cond_t *c, plat_mutex_t *m,
    uint64_t timeout_ns)
{
	sim_cond_timedwait(c, m, timeout_ns);
}
static inline uintptr_t plat_thread_self(void) { return sim_thread_self(); }
static inline int plat_tsd_key_create(plat_tsd_key_t *key,
    void (*destructor)(void *))
{
	return sim_tsd_key_create(key, destructor);
}
static inline void *plat_tsd_get(plat_tsd_key_t key) { return sim_tsd_get(key); }
static inline void plat_tsd_set(plat_tsd_key_t key, const void *value)
{
	sim_tsd_set(key, value);
}
static inline void plat_atfork(void (*prepare)(void), void (*parent)(void),
    void (*child)(void))
{
	sim_atfork(prepare, parent, child);
}
static inline long plat_process_id(void) { return sim_process_id(); }
static inline void plat_yield(void) { sim_yield(); }
static inline void plat_preempt_point(const char *where)
{
	sim_preempt_point(where);
}
static inline size_t plat_page_size(void) { return 4096; }
static inline void *plat_pages_map(size_t size) { return sim_pages_map(size); }
static inline void plat_pages_unmap(void *addr, size_t size)
{
	sim_pages_unmap(addr, size);
}
static inline plat_thread_area_t *plat_thread_area(void)
{
	return sim_thread_area();
}
static inline void plat_lock_rank_note(int rank) { sim_lock_rank_note(rank); }

#endif /* QUANTA_SIM_PLATFORM_H */
