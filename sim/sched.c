/*
 * sched.c — the deterministic scheduler: simulated threads, the sim
 * platform seam (sim_platform.h), strategies, checks, trace and fork.
 *
 * Theory
 * ------
 * Simulated threads are coroutines (ucontext) on one real thread, so one
 * runs at a time and a switch happens only where the scheduler says: at
 * the seam's calls (lock, trylock, unlock, condition wait and broadcast,
 * thread identity, clock, page map, fork handlers) and at the explicit
 * plat_preempt_point()s of src/.  At each such point the strategy picks
 * the next thread among the runnable ones from one PRNG stream seeded by
 * the seed record, so a seed fixes the whole run: same choices, same
 * steps, same trace on any machine.  Nothing else may decide anything:
 * the clock is virtual (SIM_NS_PER_STEP a step), lock ids are handed out
 * in order of first use (never addresses), and pages come from one region
 * at a fixed address in a fixed order.
 *
 * Strategies.  Random walk: uniform among the runnable.  PCT (Burckhardt
 * et al., ASPLOS 2010): thread priorities are a random permutation above
 * d, the highest-priority runnable thread runs, and at d - 1 random steps
 * (change points, drawn from [1, k] with k the scenario's expected
 * length) the running thread's priority drops to i < d; a bug of depth d
 * is found with probability at least 1 / (n k^(d-1)).  Forced: a list of
 * choices (one per multi-way decision), then "keep running the current
 * thread" — what shrinking and the exhaustive search replay.  A thread
 * that yields (a spin wait) is passed over while another can run (under
 * PCT for one of the others drawn at random, so that spinners cannot
 * starve the thread they wait for).
 *
 * Checks.  Every check_every steps, at the first step after that where no
 * thread holds any lock, the whole arena checker runs (invariant_check_all:
 * A F H S C R codes), and when no thread is inside an operation also the
 * cache checker (Q1-Q3) over every cache.  The checker's own lock calls
 * run "quiet": no scheduling point, no step, no trace.  L1 is asserted by
 * every callback of a scenario (sim_callback_enter), L2 by the debug
 * lock-order witness (compiled in) and by deadlock detection here: no
 * runnable thread, no timed waiter, and a live thread not done.  A run
 * longer than its step budget (a livelock: a spin that never ends, a
 * VM_SLEEP that never returns) fails too.
 *
 * Progress (format version 2).  An operation the scenario marks bounded
 * (sim_op_bounded: a VM_SLEEP or UMEM_NOFAIL call, a create) fails the
 * run, naming the call, once it has taken more than SIM_CALL_STEPS_MAX
 * steps of the calling thread's own — the steps of the thread, not of
 * the run, so that a strategy that starves the thread (PCT) does not
 * count against the call, while a call that loops (waits, retries,
 * populates that keep failing) does.  While the page map refuses (a
 * drain: no memory exists) the count stands still, and it starts afresh
 * when the map works again.  The longest bounded call of each run is
 * reported.  Each thread also logs the clock values it read since
 * sim_clock_log_reset, so that a scenario can tell whether an mtbf of m
 * may have failed its NOSLEEP call (an injected failure reads the clock
 * once and fires when m divides it).  The page region counts its live
 * bytes (sim_pages_live) for the leak check.
 *
 * Fork.  sim_fork runs the prepare handlers as simulated code (other
 * threads run while it waits for their locks), then a real fork(): the
 * child continues this same simulation with the forking thread alone —
 * every other thread is "lost", frozen where it was, its locks held for
 * ever — runs the child handlers, the scenario's child workload and the
 * checkers, and reports its trace hash through a pipe.  The parent waits
 * for it, mixes the hash into its own, and runs the parent handlers.  A
 * lost thread may hold only locks the child never takes: an arena's off
 * the arena list, a cache's depot and slab locks off the cache list (one
 * it was creating or destroying); any other fails the seed.
 *
 * Forking at a chosen point.  Every thread counts the scheduling points
 * it takes.  sim_wait_points blocks a thread until another has taken a
 * given number (or ended, or waits in a join), and then runs it before
 * that other's next step — no decision, so the same on every strategy;
 * sim_freeze keeps that other from running while anyone else can (the
 * fork's prepare then finds it where it stopped, unless it holds a lock
 * prepare needs).  So a scenario forks at the k-th point of another
 * thread's operation, for every k (scenarios_fork.c).
 *
 * Threads.  Up to SIM_THREADS_MAX (255: a decision's choice is a byte);
 * a set of threads is a few words, and the thread table lies apart from
 * the state a run clears, so a run touches only the threads it spawns.
 * A decision records bit 0 (the current thread could run) and threads
 * 1-15, what shrink and explore use (explore enumerates those only).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "bugs.h"
#include "invariants.h"
#include "lockrank.h"
#include "sim.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#define SIM_NS_PER_STEP 100u
#define SIM_STACK_BYTES (512u * 1024u)
#define SIM_TSD_KEYS 8u
#define SIM_REGION_BASE ((uintptr_t)0x200000000000ull)
#define SIM_REGION_BYTES ((size_t)4 << 30)
#define SIM_FREE_BLOCKS_MAX 4096u
#define SIM_CHECKER_ID 999u
#define SIM_PCT_CHANGES_MAX 8u
#define SIM_HELD_ARENAS 4u
#define SIM_CLOCK_LOG 16u

enum tstate { T_UNUSED, T_RUN, T_MUTEX, T_COND, T_JOIN, T_DONE, T_LOST,
	T_WATCH };

enum ev {
	EV_LOCK, EV_TRYLOCK, EV_UNLOCK, EV_WAIT, EV_BROADCAST, EV_SELF,
	EV_CLOCK, EV_YIELD, EV_PREEMPT, EV_MAP, EV_UNMAP, EV_ATFORK, EV_SPAWN,
	EV_JOIN, EV_EXIT, EV_FORK, EV_OP, EV_CHECK, EV_FAULT, EV_WATCH
};
static const char *const ev_names[] = {
	"lock", "trylock", "unlock", "wait", "broadcast", "self", "clock",
	"yield", "preempt", "map", "unmap", "atfork", "spawn", "join", "exit",
	"fork", "op", "check", "fault", "watch"
};

typedef struct sim_thread {
	unsigned id;
	int state;
	ucontext_t ctx;
	void *stack;
	sim_fn_t *fn;
	void *arg;
	plat_mutex_t *wmutex;
	plat_cond_t *wcond;
	uint64_t deadline;
	unsigned wjoin;
	void *tsd[SIM_TSD_KEYS];
	plat_thread_area_t area;
	unsigned held[SIM_RANKS];  /* locks held, per rank (the sim's view) */
	/* arena, depot and slab locks held (the per-object ones) */
	plat_mutex_t *held_arena[SIM_HELD_ARENAS];
	unsigned nheld_arena;
	int next_rank;
	unsigned prio;
	bool yielded;
	int in_op;
	uint64_t points;           /* scheduling points it has taken */
	sim_rng_t ops;
	/* Progress: the steps this thread took, and the bounded call it is
	 * in (sim_op_bounded: its nesting level, 0 none; its first own step
	 * and the run's step then; what it is). */
	uint64_t own_steps, bound_start, bound_step0;
	int bound_level;
	char bound_what[160];
	/* The clock values this thread read since sim_clock_log_reset. */
	uint64_t clk[SIM_CLOCK_LOG];
	unsigned nclk;
	bool clk_over;
} sim_thread_t;

/* Apart from S, so that a run clears (and faults in) only the threads it
 * spawns: thread_new clears each. */
static sim_thread_t sim_threads[SIM_THREADS_MAX + 1];

typedef struct sim_block { uintptr_t addr; size_t size; } sim_block_t;

/* What a fork's child tells its parent through a pipe. */
typedef struct child_report {
	uint64_t hash, steps, checks;
	int failed;
	char msg[SIM_MSG_BYTES];
} child_report_t;

static struct sim_state {
	sim_config_t cfg;
	sim_result_t *res;
	FILE *trace;
	sim_thread_t *th;           /* sim_threads: ids 1..nthreads */
	unsigned nthreads;          /* ids 1..nthreads used */
	sim_thread_t *cur;
	ucontext_t main_ctx;
	sim_rng_t sched, faults;
	uint64_t step, clock, last_check;
	bool check_pending;      /* sim_check_soon: at the next lock-free step */
	unsigned next_lock_id, next_cond_id;
	unsigned locks_held;        /* by anyone */
	int quiet;                  /* the checker runs: no points */
	plat_thread_area_t checker_area;
	long pid;
	bool in_child;
	int child_fd;               /* in a fork child: the pipe to the parent */
	uint64_t pct_change[SIM_PCT_CHANGES_MAX];
	unsigned pct_nchange;
	/* fork handlers */
	void (*prepare)(void), (*parent)(void), (*child)(void);
	/* thread-specific data keys */
	unsigned ntsd;
	void (*tsd_dtor[SIM_TSD_KEYS])(void *);
	/* the page region */
	uintptr_t region, bump;
	size_t pages_live;          /* mapped and not unmapped, in bytes */
	sim_block_t freeb[SIM_FREE_BLOCKS_MAX];
	unsigned nfree;
	bool map_refuse;            /* sim_map_refuse: every map fails */
	char opbuf[160];
	const char *point_ptr[SIM_POINTS_MAX];
	/* sim_wait_points: watcher waits until th[watch_tid] has taken
	 * watch_target points; sim_freeze: frozen runs only when alone. */
	unsigned watcher, watch_tid, frozen;
	uint64_t watch_target;
} S;

/* ---- sets of threads (ids 1..SIM_THREADS_MAX) ------------------------------ */

#define SET_WORDS ((SIM_THREADS_MAX + 64) / 64)
typedef struct tset { uint64_t w[SET_WORDS]; } tset_t;

static void set_add(tset_t *s, unsigned i)
{
	s->w[i / 64] |= 1ull << (i % 64);
}

static void set_del(tset_t *s, unsigned i)
{
	s->w[i / 64] &= ~(1ull << (i % 64));
}

static bool set_has(const tset_t *s, unsigned i)
{
	return (s->w[i / 64] >> (i % 64)) & 1u;
}

static unsigned set_count(const tset_t *s)
{
	unsigned n = 0;
	for (unsigned k = 0; k < SET_WORDS; k++)
		n += (unsigned)__builtin_popcountll(s->w[k]);
	return n;
}

/* The lowest id in s (s not empty). */
static unsigned set_first(const tset_t *s)
{
	for (unsigned k = 0; k < SET_WORDS; k++)
		if (s->w[k] != 0)
			return k * 64 + (unsigned)__builtin_ctzll(s->w[k]);
	return 0;
}

/* ---- PRNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng_t *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static uint64_t rng_below(sim_rng_t *r, uint64_t n)
{
	return n == 0 ? 0 : sim_rng_next(r) % n;
}

/* ---- trace and hash -------------------------------------------------------- */

static void hash_mix(uint64_t v)
{
	uint64_t h = S.res->hash;
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xffu;
		h *= 0x100000001b3ull;
	}
	S.res->hash = h;
}

static const char *rank_name(int rank)
{
#if QLOCK_WITNESS
	return qlock_rank_name((qlock_rank_t)rank);
#else
	(void)rank;
	return "lock";
#endif
}

/* A preemption point's index: its name is a literal of src/, so the
 * pointer finds it (the name is compared only the first time). */
static unsigned point_index(const char *where)
{
	sim_result_t *r = S.res;
	for (unsigned k = 0; k < r->npoints; k++)
		if (S.point_ptr[k] == where)
			return k;
	for (unsigned k = 0; k < r->npoints; k++)
		if (strcmp(r->points[k], where) == 0)
			return k;
	S.point_ptr[r->npoints < SIM_POINTS_MAX ? r->npoints :
	    SIM_POINTS_MAX - 1] = where;
	if (r->npoints == SIM_POINTS_MAX)
		return SIM_POINTS_MAX - 1;
	snprintf(r->points[r->npoints], sizeof(r->points[0]), "%s", where);
	return r->npoints++;
}

static void trace_line(unsigned tid, int ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void trace_line(unsigned tid, int ev, const char *fmt, ...)
{
	if (S.trace == NULL)
		return;
	fprintf(S.trace, "%s%7llu T%u %s ", S.in_child ? "child " : "",
	    (unsigned long long)S.step, tid, ev_names[ev]);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(S.trace, fmt, ap);
	va_end(ap);
	fputc('\n', S.trace);
}

/* ---- failure ------------------------------------------------------------ */

static void report_where(char *buf, size_t len)
{
	size_t n = strlen(buf);
	for (unsigned i = 1; i <= S.nthreads && n + 80 < len; i++) {
		sim_thread_t *t = &S.th[i];
		static const char *const sn[] = {"unused", "runnable",
		    "blocked on a lock", "waiting", "joining", "done", "lost",
		    "watching a thread"};
		n += (size_t)snprintf(buf + n, len - n, "\n  T%u %s", i,
		    sn[t->state]);
		if (t->state == T_MUTEX && n + 80 < len)
			n += (size_t)snprintf(buf + n, len - n,
			    " %s#%u held by T%u", rank_name(t->wmutex->pm_rank),
			    t->wmutex->pm_id, t->wmutex->pm_owner);
	}
}

void sim_fail(const char *fmt, ...)
{
	sim_result_t *r = S.res;
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(r->msg, sizeof(r->msg), "%sstep %llu T%u: ",
	    S.in_child ? "fork child: " : "", (unsigned long long)S.step,
	    S.cur != NULL ? S.cur->id : 0);
	vsnprintf(r->msg + n, sizeof(r->msg) - (size_t)n, fmt, ap);
	va_end(ap);
	report_where(r->msg, sizeof(r->msg));
	r->failed = 1;
	r->done = 1;
	if (S.in_child && S.child_fd >= 0) {
		static child_report_t rep;
		rep.failed = 1;
		rep.hash = r->hash;
		rep.steps = S.step;
		snprintf(rep.msg, sizeof(rep.msg), "%s", r->msg);
		if (write(S.child_fd, &rep, sizeof(rep)) < 0)
			rep.failed = 2;
	}
	if (S.trace != NULL) {
		fprintf(S.trace, "FAIL %s\n", r->msg);
		fflush(S.trace);
	}
	fflush(NULL);
	_exit(S.in_child ? 3 : 1);
}

/* ---- choosing the next thread --------------------------------------------- */

static bool runnable(const sim_thread_t *t)
{
	if (t->state == T_RUN)
		return true;
	if (t->state == T_MUTEX)
		return t->wmutex->pm_owner == 0;
	if (t->state == T_JOIN)
		return S.th[t->wjoin].state == T_DONE;
	if (t->state == T_COND)
		return t->deadline <= S.clock;
	if (t->state == T_WATCH) /* its point, or it ended or joins */
		return S.th[S.watch_tid].points >= S.watch_target ||
		    S.th[S.watch_tid].state == T_DONE ||
		    S.th[S.watch_tid].state == T_JOIN;
	return false;
}

/* The runnable set; wakes the earliest timed waiter when it would be
 * empty (virtual time jumps to its deadline). */
static bool runnable_set(tset_t *set)
{
	memset(set, 0, sizeof(*set));
	bool any = false;
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (runnable(&S.th[i])) {
			set_add(set, i);
			any = true;
		}
	if (any)
		return true;
	uint64_t best = UINT64_MAX;
	unsigned who = 0;
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (S.th[i].state == T_COND && S.th[i].deadline < best) {
			best = S.th[i].deadline;
			who = i;
		}
	if (who == 0)
		return false;
	S.clock = best;
	set_add(set, who);
	return true;
}

static unsigned pick_pct(const tset_t *set)
{
	unsigned best = 0;
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (set_has(set, i))
			if (best == 0 || S.th[i].prio > S.th[best].prio)
				best = i;
	return best;
}

static unsigned pick(tset_t *set)
{
	unsigned cur = S.cur->id;
	sim_result_t *r = S.res;
	/* A watcher whose thread reached its point runs at once, and a
	 * frozen thread only when nobody else can: no decision either. */
	if (S.watcher != 0 && set_has(set, S.watcher))
		return S.watcher;
	unsigned n = set_count(set);
	/* A spinner alone beside the frozen thread lets it run: the spinner
	 * may wait for it (a gate that every worker must reach), and the
	 * frozen thread may hold the lock the forker's prepare waits for
	 * (found by a random-walk sweep of the scale scenario: a livelock). */
	bool spin_alone = S.cur->yielded && n == 2 && set_has(set, cur) &&
	    cur != S.frozen;
	if (S.frozen != 0 && n > 1 && set_has(set, S.frozen) && !spin_alone) {
		set_del(set, S.frozen);
		n--;
	}
	bool mine = set_has(set, cur);
	bool yielded = S.cur->yielded && n > (mine ? 1u : 0u);
	if (yielded && mine) {
		set_del(set, cur);
		n--;
	}
	S.cur->yielded = false;
	if (n == 1)
		return set_first(set);
	unsigned d = r->ndecisions, choice = 0;
	/* A spinner passes the turn to any other at random, PCT's
	 * priorities notwithstanding: two spinners of high priority would
	 * otherwise hand it to each other for ever, and the thread they wait
	 * for would never run. */
	if (S.cfg.strategy == SIM_RANDOM ||
	    (S.cfg.strategy == SIM_PCT && yielded)) {
		unsigned k = (unsigned)rng_below(&S.sched, n);
		for (unsigned i = 1; i <= S.nthreads; i++)
			if (set_has(set, i) && k-- == 0)
				choice = i;
	} else if (S.cfg.strategy == SIM_PCT) {
		choice = pick_pct(set);
	} else {
		if (d < S.cfg.nchoices &&
		    set_has(set, S.cfg.choices[d]))
			choice = S.cfg.choices[d];
		else if (set_has(set, cur))
			choice = cur;
		else
			choice = set_first(set);
	}
	if (d < SIM_CHOICES_MAX) {
		/* Bit 0: the current thread was runnable; bits 1-15: threads
		 * 1-15 (what explore enumerates). */
		r->decision[d] = (uint8_t)choice;
		r->decision_cur[d] = (uint8_t)cur;
		r->decision_set[d] = (uint16_t)((set->w[0] & 0xfffeu) |
		    (set_has(set, cur) ? 1u : 0u));
		r->ndecisions = d + 1;
	}
	return choice;
}

static void switch_to(sim_thread_t *next)
{
	sim_thread_t *prev = S.cur;
	if (next == prev)
		return;
	S.res->switches++;
	S.cur = next;
	swapcontext(&prev->ctx, &next->ctx);
}

/* Choose who runs next; the current thread may be blocked or done. */
static void reschedule(void)
{
	tset_t set;
	if (!runnable_set(&set)) {
		for (unsigned i = 1; i <= S.nthreads; i++)
			if (S.th[i].state != T_DONE && S.th[i].state != T_LOST)
				sim_fail("deadlock: no thread can run");
		setcontext(&S.main_ctx); /* every thread is done */
	}
	unsigned next = pick(&set);
	if (S.th[next].state == T_COND)
		S.th[next].wcond = NULL; /* timed out */
	if (S.th[next].state != T_DONE && S.th[next].state != T_LOST)
		S.th[next].state = T_RUN;
	switch_to(&S.th[next]);
}

static void maybe_check(void);

/* One scheduling point: a step of the run. */
static void point(int ev, unsigned obj, uint64_t arg)
{
	S.step++;
	S.clock += SIM_NS_PER_STEP;
	S.res->steps = S.step;
	S.cur->points++;
	hash_mix(((uint64_t)S.cur->id << 56) ^ ((uint64_t)ev << 48) ^
	    ((uint64_t)obj << 24) ^ arg);
	if (S.step > S.cfg.step_budget)
		sim_fail("step budget of %llu exhausted: a livelock (a spin "
		    "or a VM_SLEEP call that never ends)",
		    (unsigned long long)S.cfg.step_budget);
	sim_thread_t *t = S.cur;
	t->own_steps++;
	/* No memory exists while the page map refuses (a drain): a bound
	 * counts from the moment it does again. */
	if (S.map_refuse)
		t->bound_start = t->own_steps;
	if (t->bound_level != 0 &&
	    t->own_steps - t->bound_start > SIM_CALL_STEPS_MAX)
		sim_fail("no progress: %s has taken %llu steps of its own (%llu "
		    "of the run) without returning; a call that must complete "
		    "does so within %u of its own steps while memory exists",
		    t->bound_what, (unsigned long long)(t->own_steps -
		    t->bound_start), (unsigned long long)(S.step -
		    t->bound_step0), SIM_CALL_STEPS_MAX);
	if (S.cfg.strategy == SIM_PCT)
		for (unsigned j = 0; j < S.pct_nchange; j++)
			if (S.pct_change[j] == S.step)
				S.cur->prio = j; /* below every initial one */
	maybe_check();
	reschedule();
}

/* ---- the seam: mutexes ------------------------------------------------------ */

static unsigned mutex_id(plat_mutex_t *m)
{
	if (m->pm_id == 0)
		m->pm_id = ++S.next_lock_id;
	return m->pm_id;
}

void sim_mutex_init(plat_mutex_t *m)
{
	m->pm_owner = 0;
	m->pm_id = 0;
	m->pm_rank = 0;
}

void sim_lock_rank_note(int rank)
{
	if (!S.quiet && S.cur != NULL)
		S.cur->next_rank = rank;
}

static int top_rank(const sim_thread_t *t)
{
	for (int r = SIM_RANKS - 1; r > 0; r--)
		if (t->held[r] != 0)
			return r;
	return 0;
}

static void mutex_take(plat_mutex_t *m)
{
	sim_thread_t *t = S.cur;
	int rank = t->next_rank;
	if (rank > 0 && rank < SIM_RANKS) {
		S.res->rank_pairs[top_rank(t)] |= 1u << rank;
		t->held[rank]++;
	}
	if ((rank == QLOCK_ARENA || rank == QLOCK_DEPOT ||
	    rank == QLOCK_SLAB) && t->nheld_arena < SIM_HELD_ARENAS)
		t->held_arena[t->nheld_arena++] = m;
	m->pm_rank = rank;
	m->pm_owner = t->id;
	S.locks_held++;
}

static void quiet_take(plat_mutex_t *m)
{
	if (m->pm_owner != 0)
		sim_fail("the checker found %s#%u held by T%u",
		    rank_name(m->pm_rank), m->pm_id, m->pm_owner);
	m->pm_owner = SIM_CHECKER_ID;
}

void sim_mutex_lock(plat_mutex_t *m)
{
	unsigned id = mutex_id(m);
	if (S.quiet) {
		quiet_take(m);
		return;
	}
	sim_thread_t *t = S.cur;
	trace_line(t->id, EV_LOCK, "%s#%u", rank_name(t->next_rank), id);
	point(EV_LOCK, id, 0);
	if (m->pm_owner == t->id)
		sim_fail("%s#%u taken twice by T%u", rank_name(t->next_rank),
		    id, t->id);
	while (m->pm_owner != 0) {
		if (t->next_rank > 0 && t->next_rank < SIM_RANKS)
			S.res->contended |= 1u << t->next_rank;
		t->state = T_MUTEX;
		t->wmutex = m;
		reschedule();
	}
	t->state = T_RUN;
	mutex_take(m);
}

int sim_mutex_trylock(plat_mutex_t *m)
{
	unsigned id = mutex_id(m);
	if (S.quiet) {
		if (m->pm_owner != 0)
			return 0;
		m->pm_owner = SIM_CHECKER_ID;
		return 1;
	}
	sim_thread_t *t = S.cur;
	trace_line(t->id, EV_TRYLOCK, "%s#%u", rank_name(t->next_rank), id);
	point(EV_TRYLOCK, id, 0);
	if (m->pm_owner != 0)
		return 0;
	mutex_take(m);
	return 1;
}

/* The sim's books of what t holds lose m. */
static void held_drop(sim_thread_t *t, plat_mutex_t *m)
{
	int rank = m->pm_rank;
	if (rank > 0 && rank < SIM_RANKS && t->held[rank])
		t->held[rank]--;
	for (unsigned k = 0; k < t->nheld_arena; k++)
		if (t->held_arena[k] == m) {
			t->held_arena[k] = t->held_arena[--t->nheld_arena];
			break;
		}
}

void sim_mutex_unlock(plat_mutex_t *m)
{
	unsigned id = mutex_id(m);
	if (S.quiet) {
		m->pm_owner = 0;
		return;
	}
	sim_thread_t *t = S.cur;
	if (m->pm_owner != t->id)
		sim_fail("%s#%u released by T%u, held by T%u",
		    rank_name(m->pm_rank), id, t->id, m->pm_owner);
	m->pm_owner = 0;
	S.locks_held--;
	held_drop(t, m);
	trace_line(t->id, EV_UNLOCK, "%s#%u", rank_name(m->pm_rank), id);
	point(EV_UNLOCK, id, 0);
}

/* ---- leaf locks: never found held, so never a scheduling point ------------- */

void sim_leaf_lock(plat_leaf_t *l)
{
	unsigned me = S.quiet || S.cur == NULL ? SIM_CHECKER_ID : S.cur->id;
	if (l->pl_owner != 0)
		sim_fail("a leaf lock found held by T%u (its holder made a seam "
		    "call)", l->pl_owner);
	l->pl_owner = me;
}

void sim_leaf_unlock(plat_leaf_t *l)
{
	unsigned me = S.quiet || S.cur == NULL ? SIM_CHECKER_ID : S.cur->id;
	if (l->pl_owner != me)
		sim_fail("a leaf lock released by T%u, held by T%u", me,
		    l->pl_owner);
	l->pl_owner = 0;
}

/* ---- condition variables ---------------------------------------------- */

void sim_cond_init(plat_cond_t *c)
{
	c->pc_id = 0;
	c->pc_waiters = 0;
}

void sim_cond_broadcast(plat_cond_t *c)
{
	if (c->pc_id == 0)
		c->pc_id = ++S.next_cond_id;
	for (unsigned i = 1; i <= S.nthreads; i++) {
		sim_thread_t *t = &S.th[i];
		if (t->state == T_COND && t->wcond == c) {
			t->state = T_RUN;
			t->wcond = NULL;
		}
	}
	c->pc_waiters = 0;
	trace_line(S.cur->id, EV_BROADCAST, "cv#%u", c->pc_id);
	point(EV_BROADCAST, c->pc_id, 0);
}

void sim_cond_timedwait(plat_cond_t *c, plat_mutex_t *m, uint64_t timeout_ns)
{
	if (c->pc_id == 0)
		c->pc_id = ++S.next_cond_id;
	sim_thread_t *t = S.cur;
	int rank = m->pm_rank;
	if (m->pm_owner != t->id)
		sim_fail("cv#%u waited on without its lock", c->pc_id);
	m->pm_owner = 0;
	S.locks_held--;
	held_drop(t, m);
	trace_line(t->id, EV_WAIT, "cv#%u %llu ns", c->pc_id,
	    (unsigned long long)timeout_ns);
	t->state = T_COND;
	t->wcond = c;
	t->deadline = S.clock + timeout_ns;
	c->pc_waiters++;
	point(EV_WAIT, c->pc_id, 0);
	t->next_rank = rank;
	sim_mutex_lock(m);
}

/* ---- identity, clock, thread-specific data --------------------------------- */

uintptr_t sim_thread_self(void)
{
	if (S.quiet)
		return SIM_CHECKER_ID;
	point(EV_SELF, 0, 0);
	return S.cur->id;
}

unsigned sim_self(void)
{
	return S.cur->id;
}

uint64_t sim_clock_ns(void)
{
	if (!S.quiet) {
		point(EV_CLOCK, 0, 0);
		sim_thread_t *t = S.cur;
		if (t->nclk < SIM_CLOCK_LOG)
			t->clk[t->nclk++] = S.clock;
		else
			t->clk_over = true;
	}
	return S.clock;
}

void sim_clock_log_reset(void)
{
	S.cur->nclk = 0;
	S.cur->clk_over = false;
}

bool sim_clock_log_hit(uint64_t m)
{
	sim_thread_t *t = S.cur;
	if (m == 0)
		return false;
	if (t->clk_over)
		return true;
	for (unsigned i = 0; i < t->nclk; i++)
		if (t->clk[i] % m == 0)
			return true;
	return false;
}

int sim_tsd_key_create(plat_tsd_key_t *key, void (*destructor)(void *))
{
	if (S.ntsd == SIM_TSD_KEYS)
		return 0;
	S.tsd_dtor[S.ntsd] = destructor;
	*key = S.ntsd++;
	return 1;
}

void *sim_tsd_get(plat_tsd_key_t key)
{
	return key < SIM_TSD_KEYS ? S.cur->tsd[key] : NULL;
}

void sim_tsd_set(plat_tsd_key_t key, const void *value)
{
	if (key < SIM_TSD_KEYS)
		S.cur->tsd[key] = (void *)(uintptr_t)value;
}

plat_thread_area_t *sim_thread_area(void)
{
	return S.quiet || S.cur == NULL ? &S.checker_area : &S.cur->area;
}

long sim_process_id(void)
{
	return S.pid;
}

void sim_yield(void)
{
	S.cur->yielded = true;
	trace_line(S.cur->id, EV_YIELD, "%s", "");
	point(EV_YIELD, 0, 0);
}

void sim_preempt_point(const char *where)
{
	if (S.quiet)
		return;
	unsigned k = point_index(where);
	S.res->points_hit |= 1ull << k;
	if (!S.cfg.preempt)
		return;
	trace_line(S.cur->id, EV_PREEMPT, "\"%s\"", where);
	uint64_t sw = S.res->switches;
	point(EV_PREEMPT, k, 0);
	if (S.res->switches != sw)
		S.res->points_switched |= 1ull << k;
}

void sim_atfork(void (*prepare)(void), void (*parent)(void),
    void (*child)(void))
{
	trace_line(S.cur->id, EV_ATFORK, "%s", "");
	point(EV_ATFORK, 0, 0);
	S.prepare = prepare;
	S.parent = parent;
	S.child = child;
}

/* ---- pages: one region at a fixed address ------------------------------- */

static void region_init(void)
{
	void *p = mmap((void *)SIM_REGION_BASE, SIM_REGION_BYTES,
	    PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		p = mmap(NULL, SIM_REGION_BYTES, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		perror("quanta-sim: mmap of the page region");
		_exit(2);
	}
	S.region = S.bump = (uintptr_t)p;
}

uintptr_t sim_addr(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return a >= S.region && a < S.region + SIM_REGION_BYTES ?
	    a - S.region : a;
}

void *sim_pages_map(size_t size)
{
	trace_line(S.cur->id, EV_MAP, "%zu", size);
	point(EV_MAP, 0, size);
	if (S.map_refuse) {
		trace_line(S.cur->id, EV_FAULT, "page map of %zu refused", size);
		return NULL;
	}
	if (S.cfg.faults != 0 && sim_fault(4)) {
		trace_line(S.cur->id, EV_FAULT, "page map of %zu fails", size);
		return NULL;
	}
	size = (size + 4095u) & ~(size_t)4095u;
	for (unsigned i = 0; i < S.nfree; i++) {
		if (S.freeb[i].size == size) {
			uintptr_t a = S.freeb[i].addr;
			S.freeb[i] = S.freeb[--S.nfree];
			S.pages_live += size;
			return (void *)a;
		}
	}
	if (S.bump + size > S.region + SIM_REGION_BYTES)
		return NULL;
	uintptr_t a = S.bump;
	S.bump += size;
	S.pages_live += size;
	return (void *)a;
}

void sim_pages_unmap(void *addr, size_t size)
{
	size = (size + 4095u) & ~(size_t)4095u;
	if (!S.quiet) {
		trace_line(S.cur->id, EV_UNMAP, "+0x%lx %zu",
		    (unsigned long)sim_addr(addr), size);
		point(EV_UNMAP, 0, size);
	}
	/* Zero, as a fresh map is. */
	(void)madvise(addr, size, MADV_DONTNEED);
	S.pages_live -= size;
	if (S.nfree < SIM_FREE_BLOCKS_MAX)
		S.freeb[S.nfree++] = (sim_block_t){(uintptr_t)addr, size};
}

/* ---- faults and operation streams --------------------------------------- */

bool sim_fault(unsigned odds_scale)
{
	if (S.cfg.faults == 0)
		return false;
	return rng_below(&S.faults, (uint64_t)S.cfg.faults * odds_scale) == 0;
}

void sim_map_refuse(bool on)
{
	S.map_refuse = on;
	for (unsigned i = 1; i <= S.nthreads; i++)
		S.th[i].bound_start = S.th[i].own_steps;
}

uint64_t sim_rand_ops(void)
{
	return sim_rng_next(&S.cur->ops);
}

const sim_config_t *sim_config(void)
{
	return &S.cfg;
}

bool sim_in_child(void)
{
	return S.in_child;
}

void sim_op(const char *fmt, ...)
{
	sim_thread_t *t = S.cur;
	t->in_op++;
	if (S.trace != NULL) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(S.opbuf, sizeof(S.opbuf), fmt, ap);
		va_end(ap);
		trace_line(t->id, EV_OP, "%s", S.opbuf);
	}
	point(EV_OP, 0, 0);
}

/* An operation that must return (VM_SLEEP, UMEM_NOFAIL, a create):
 * from format version 2 on, it fails the run once it has taken more than
 * SIM_CALL_STEPS_MAX steps of its own (the calling thread's steps, so
 * that a strategy starving the thread does not count against it). */
void sim_op_bounded(const char *fmt, ...)
{
	sim_thread_t *t = S.cur;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->bound_what, sizeof(t->bound_what), fmt, ap);
	va_end(ap);
	t->in_op++;
	trace_line(t->id, EV_OP, "%s", t->bound_what);
	if (S.cfg.version >= 2 && t->bound_level == 0) {
		t->bound_level = t->in_op;
		t->bound_start = t->own_steps;
		t->bound_step0 = S.step;
	}
	point(EV_OP, 0, 0);
}

void sim_op_end(void)
{
	sim_thread_t *t = S.cur;
	if (t->bound_level != 0 && t->in_op == t->bound_level) {
		uint64_t took = t->own_steps - t->bound_start;
		if (took > S.res->call_steps_max) {
			S.res->call_steps_max = took;
			snprintf(S.res->call_max, sizeof(S.res->call_max),
			    "%s", t->bound_what);
		}
		t->bound_level = 0;
	}
	if (t->in_op > 0)
		t->in_op--;
}

size_t sim_pages_live(void)
{
	return S.pages_live;
}

void sim_callback_enter(const char *what)
{
	sim_thread_t *t = S.cur;
	if (t->held[QLOCK_ARENA] != 0)
		sim_fail("L1: %s called with %u arena lock(s) held", what,
		    t->held[QLOCK_ARENA]);
	if (t->held[QLOCK_TAG] != 0 || t->held[QLOCK_POPULATE] != 0)
		sim_fail("L1: %s called with the tag or populate lock held",
		    what);
}

/* ---- checks ---------------------------------------------------------------- */

static void check_caches(const char *why)
{
	umem_violation_t v[8];
	for (umem_cache_t *cp = umem_cache_list; cp != NULL;
	     cp = cp->cc_next) {
		size_t n = invariant_umem_cache(cp, v, 8);
		if (n != 0)
			sim_fail("checker (%s): %zu violation(s) in cache "
			    "\"%s\": %s %s", why, n, cp->cc_name, v[0].uv_code,
			    v[0].uv_what);
	}
	S.res->q_checks++;
}

void sim_check_now(const char *why, bool caches)
{
	if (S.locks_held != 0)
		sim_fail("check (%s) with %u lock(s) held", why, S.locks_held);
	S.quiet++;
	static invariant_report_t rep;
	invariant_report_init(&rep);
	(void)invariant_check_all(&rep);
	if (rep.count != 0) {
		char text[SIM_MSG_BYTES / 2];
		FILE *f = fmemopen(text, sizeof(text), "w");
		if (f != NULL) {
			invariant_report_print(&rep, f, 0);
			fclose(f);
		}
		text[sizeof(text) - 1] = '\0';
		S.quiet = 0;
		sim_fail("checker (%s): %zu violation(s):\n%s", why,
		    rep.count, text);
	}
	if (caches && atomic_load(&umem_ready))
		check_caches(why);
	S.quiet--;
	S.res->checks++;
	S.last_check = S.step;
	if (S.trace != NULL)
		trace_line(S.cur != NULL ? S.cur->id : 0, EV_CHECK,
		    "%s: clean%s", why, caches ? " (with caches)" : "");
}

void sim_check_soon(void)
{
	S.check_pending = true;
}

static void maybe_check(void)
{
	if (S.quiet || S.locks_held != 0)
		return;
	if (!S.check_pending && (S.cfg.check_every == 0 ||
	    S.step - S.last_check < S.cfg.check_every))
		return;
	S.check_pending = false;
	/* vmem_offlist_arenas: an arena mid create, destroy or bootstrap
	 * insert; the checker skips R3 then by itself. */
	bool quiescent = true;
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (S.th[i].state != T_DONE && S.th[i].state != T_LOST &&
		    S.th[i].in_op != 0)
			quiescent = false;
	sim_check_now("periodic", quiescent);
}

/* ---- threads ---------------------------------------------------------------- */

static void thread_exit_tsd(sim_thread_t *t)
{
	for (int round = 0; round < 4; round++) {
		bool any = false;
		for (unsigned k = 0; k < S.ntsd; k++) {
			void *v = t->tsd[k];
			if (v == NULL || S.tsd_dtor[k] == NULL)
				continue;
			t->tsd[k] = NULL;
			any = true;
			S.tsd_dtor[k](v);
		}
		if (!any)
			break;
	}
}

static void thread_entry(void)
{
	sim_thread_t *t = S.cur;
	t->fn(t->arg);
	thread_exit_tsd(t);
	for (int r = 1; r < SIM_RANKS; r++)
		if (t->held[r] != 0)
			sim_fail("thread exits holding %s", rank_name(r));
	trace_line(t->id, EV_EXIT, "%s", "");
	t->state = T_DONE;
	point(EV_EXIT, 0, 0);
	sim_fail("a done thread was scheduled");
}

static sim_thread_t *thread_new(sim_fn_t *fn, void *arg)
{
	if (S.nthreads == SIM_THREADS_MAX)
		sim_fail("more than %d simulated threads", SIM_THREADS_MAX);
	sim_thread_t *t = &S.th[++S.nthreads];
	memset(t, 0, sizeof(*t));
	t->id = S.nthreads;
	t->fn = fn;
	t->arg = arg;
	t->stack = mmap(NULL, SIM_STACK_BYTES, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (t->stack == MAP_FAILED)
		sim_fail("no stack for a simulated thread");
	getcontext(&t->ctx);
	t->ctx.uc_stack.ss_sp = t->stack;
	t->ctx.uc_stack.ss_size = SIM_STACK_BYTES;
	t->ctx.uc_link = NULL;
	makecontext(&t->ctx, thread_entry, 0);
	t->state = T_RUN;
	sim_rng_seed(&t->ops, S.cfg.seed * 0x100000001b3ull + t->id);
	t->prio = S.cfg.depth + 1 + (unsigned)rng_below(&S.sched, 1000) *
	    SIM_THREADS_MAX + t->id;
	return t;
}

unsigned sim_spawn(sim_fn_t *fn, void *arg)
{
	sim_thread_t *t = thread_new(fn, arg);
	trace_line(S.cur->id, EV_SPAWN, "T%u", t->id);
	point(EV_SPAWN, t->id, 0);
	return t->id;
}

void sim_join(unsigned id)
{
	sim_thread_t *t = S.cur;
	trace_line(t->id, EV_JOIN, "T%u", id);
	if (S.th[id].state != T_DONE) {
		t->state = T_JOIN;
		t->wjoin = id;
	}
	point(EV_JOIN, id, 0);
	t->state = T_RUN;
}

uint64_t sim_points(unsigned id)
{
	return id >= 1 && id <= S.nthreads ? S.th[id].points : 0;
}

bool sim_thread_done(unsigned id)
{
	return id >= 1 && id <= S.nthreads && S.th[id].state == T_DONE;
}

void sim_wait_points(unsigned id, uint64_t target)
{
	sim_thread_t *t = S.cur;
	if (id == t->id || id < 1 || id > S.nthreads)
		sim_fail("sim_wait_points: T%u cannot watch T%u", t->id, id);
	trace_line(t->id, EV_WATCH, "T%u to point %llu", id,
	    (unsigned long long)target);
	S.watcher = t->id;
	S.watch_tid = id;
	S.watch_target = target;
	t->state = T_WATCH;
	point(EV_WATCH, id, target);
	S.watcher = 0;
	t->state = T_RUN;
}

void sim_freeze(unsigned id)
{
	S.frozen = id;
}

/* ---- fork ------------------------------------------------------------------- */

/* Whether m is the lock of an arena on the arena list, or a depot or
 * slab lock of a cache on the cache list. */
static bool object_lock_listed(const plat_mutex_t *m)
{
	if (m->pm_rank == QLOCK_ARENA) {
		for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
			if (vmp->ar_lock == m)
				return true;
		return false;
	}
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next)
		if (cp->cc_depot_lock == m || cp->cc_slab_lock == m)
			return true;
	return false;
}

/*
 * No lock a lost thread held may be one the child can reach: every
 * allocator lock is the prepare handler's at the fork, except the lock
 * of an arena off the arena list — one the lost thread was creating or
 * destroying, which nobody can reach again (docs/fork.md) — and the
 * depot and slab locks of a cache off the cache list (one it was
 * destroying, which the child never sees either).
 */
static void lost_locks_check(const sim_thread_t *t)
{
	for (int r = 1; r < SIM_RANKS; r++) {
		if (t->held[r] == 0)
			continue;
		unsigned named = 0;
		for (unsigned k = 0; k < t->nheld_arena; k++)
			named += t->held_arena[k]->pm_rank == r;
		if ((r != QLOCK_ARENA && r != QLOCK_DEPOT && r != QLOCK_SLAB) ||
		    t->held[r] != named)
			sim_fail("%s held by T%u, lost in the fork",
			    rank_name(r), t->id);
	}
	for (unsigned k = 0; k < t->nheld_arena; k++) {
		const plat_mutex_t *m = t->held_arena[k];
		if (object_lock_listed(m))
			sim_fail("%s#%u of a listed %s held by T%u, lost in the "
			    "fork", rank_name(m->pm_rank), m->pm_id,
			    m->pm_rank == QLOCK_ARENA ? "arena" : "cache",
			    t->id);
		trace_line(S.cur->id, EV_FORK, "T%u, lost, holds %s#%u of %s "
		    "off its list (mid create or destroy)", t->id,
		    rank_name(m->pm_rank), m->pm_id,
		    m->pm_rank == QLOCK_ARENA ? "an arena" : "a cache");
	}
	/* Held for ever, by nobody the checks wait for. */
	S.locks_held -= t->nheld_arena;
}

static void fork_child_side(sim_fn_t *child_fn, void *arg, int fd)
{
	S.in_child = true;
	S.map_refuse = false; /* the child maps afresh */
	S.pid = 1000 + S.res->forks;
	S.frozen = 0;
	S.watcher = 0;
	sim_thread_t *me = S.cur;
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (&S.th[i] != me && S.th[i].state != T_DONE)
			S.th[i].state = T_LOST;
	/* Locks held by lost threads stay held; ours we count again. */
	S.child_fd = fd;
	trace_line(me->id, EV_FORK, "child: T%u alone", me->id);
	if (S.child != NULL)
		S.child();
	for (int r = 1; r < SIM_RANKS; r++)
		if (me->held[r] != 0)
			sim_fail("the fork child handlers left %s held",
			    rank_name(r));
	for (unsigned i = 1; i <= S.nthreads; i++)
		if (S.th[i].state == T_LOST)
			lost_locks_check(&S.th[i]);
	child_fn(arg);
	sim_check_now("fork child, end", true);
	child_report_t rep = {S.res->hash, S.step, S.res->checks, 0, ""};
	if (write(fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(4);
	fflush(NULL);
	_exit(0);
}

void sim_fork(sim_fn_t *child_fn, void *arg)
{
	sim_thread_t *me = S.cur;
	trace_line(me->id, EV_FORK, "prepare");
	point(EV_FORK, 0, 0);
	if (S.prepare != NULL)
		S.prepare();
	S.res->forks++;
	int fds[2];
	if (pipe(fds) != 0)
		sim_fail("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		sim_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fds[0]);
		/* A failure in the child reports through the result page
		 * too: give it a private copy so the parent's survives. */
		static sim_result_t childres;
		memcpy(&childres, S.res, sizeof(childres));
		S.res = &childres;
		fork_child_side(child_fn, arg, fds[1]);
	}
	close(fds[1]);
	child_report_t rep;
	memset(&rep, 0, sizeof(rep));
	ssize_t n = read(fds[0], &rep, sizeof(rep));
	close(fds[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(rep) && rep.failed) {
		S.step = rep.steps; /* the child's steps count too */
		S.res->steps = rep.steps;
		sim_fail("%s", rep.msg);
	}
	if (n != (ssize_t)sizeof(rep) || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		if (WIFSIGNALED(status))
			sim_fail("the fork child died of signal %d (its "
			    "stderr above)", WTERMSIG(status));
		sim_fail("the fork child failed (exit %d; its report "
		    "above)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	hash_mix(rep.hash);
	S.res->checks += rep.checks;
	trace_line(me->id, EV_FORK, "parent: child passed, %llu steps",
	    (unsigned long long)(rep.steps - S.step));
	if (S.parent != NULL)
		S.parent();
}

/* ---- a run ------------------------------------------------------------------- */

static void pct_setup(uint64_t expected_steps)
{
	S.pct_nchange = 0;
	unsigned d = S.cfg.depth;
	if (d > SIM_PCT_CHANGES_MAX)
		d = SIM_PCT_CHANGES_MAX;
	for (unsigned j = 0; j + 1 < d; j++)
		S.pct_change[S.pct_nchange++] =
		    1 + rng_below(&S.sched, expected_steps);
}

void sim_run(const sim_config_t *cfg, sim_result_t *res, FILE *trace)
{
	const sim_scenario_t *sc = sim_scenario_find(cfg->scenario);
	memset(&S, 0, sizeof(S));
	S.th = sim_threads;
	S.child_fd = -1;
	S.cfg = *cfg;
	S.res = res;
	S.trace = trace;
	S.pid = 1;
	memset(res, 0, sizeof(*res));
	res->hash = 0xcbf29ce484222325ull;
#ifdef QUANTA_BUGS
	quanta_bug_planted = cfg->bug;
#endif
	invariant_set_every(0); /* the simulator checks, every k steps */
	sim_rng_seed(&S.sched, cfg->seed);
	sim_rng_seed(&S.faults, cfg->seed ^ 0x5deece66dull);
	region_init();
	if (sc == NULL) {
		snprintf(res->msg, sizeof(res->msg), "no scenario \"%s\"",
		    cfg->scenario);
		res->failed = 1;
		res->done = 1;
		return;
	}
	sim_thread_t *main_thread = thread_new(sc->main, NULL);
	pct_setup(cfg->step_budget < 20000 ? cfg->step_budget : 20000);
	S.cur = main_thread;
	swapcontext(&S.main_ctx, &main_thread->ctx);
	/* Every thread is done. */
	res->done = 1;
}
