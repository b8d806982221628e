/*
 * sim.h — the deterministic simulator's interface between its scheduler
 * (sched.c), its scenarios (scenarios.c) and its command-line tool
 * (main.c).  Not a public interface of quanta.
 *
 * A run is one seed record (sim_config_t): a scenario, a strategy and its
 * parameters, and a 64-bit PRNG seed.  It runs in a process of its own
 * (the allocator's globals start fresh), and its outcome — steps, the
 * trace hash, coverage, the failure if any — comes back through a shared
 * page (sim_result_t), so that even a run that aborts reports how far it
 * got.
 */
#ifndef QUANTA_SIM_H
#define QUANTA_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* The record's format version: "quanta-sim/V".  Version 1 records run
 * the scenarios as they were before the state-aware generators and the
 * progress, fit and leak oracles (so that their recorded outcomes hold);
 * version 2 (SIM_VERSION, what seeds make now) runs them all. */
#define SIM_FORMAT_PREFIX "quanta-sim/"
#define SIM_VERSION 2u
#define SIM_FORMAT "quanta-sim/2"
/* A bounded call (sim_op_bounded) takes at most this many of its own
 * steps (version 2). */
#define SIM_CALL_STEPS_MAX 20000u
/* Threads of a run, main included: a decision records its choice in a
 * byte.  Ordinary seeds pay for the threads they spawn only. */
#define SIM_THREADS_MAX 255
#define SIM_RANKS 16
#define SIM_POINTS_MAX 32
#define SIM_CHOICES_MAX 65536
#define SIM_MSG_BYTES 1024

enum sim_strategy { SIM_RANDOM = 0, SIM_PCT = 1, SIM_FORCED = 2 };

typedef struct sim_config {
	char scenario[32];
	unsigned version;        /* the record's format version (1, 2) */
	int strategy;            /* enum sim_strategy */
	unsigned depth;          /* PCT: bug depth d (d - 1 change points) */
	unsigned threads;        /* worker threads (besides the main one) */
	unsigned ops;            /* operations per worker */
	uint64_t seed;
	unsigned check_every;    /* checker every k steps (0: only at the end) */
	unsigned faults;         /* 0 none, else 1-in-N fault odds */
	bool preempt;            /* plat_preempt_point is a scheduling point */
	int bug;                 /* planted bug (bugs.h), 0 none */
	uint64_t step_budget;
	/* SIM_FORCED: the thread chosen at each multi-way decision. */
	unsigned nchoices;
	uint8_t choices[SIM_CHOICES_MAX];
} sim_config_t;

/* What a run leaves behind (in a MAP_SHARED page of the parent). */
typedef struct sim_result {
	int done;                /* the run reached its end (pass or fail) */
	int failed;
	uint64_t steps;
	uint64_t hash;
	uint64_t checks;         /* checker passes */
	uint64_t q_checks;       /* of them with the caches (Q1-Q3) */
	uint64_t switches;       /* context switches */
	unsigned forks;
	uint64_t call_steps_max; /* the longest bounded call, own steps */
	char call_max[160];      /* ... which call it was */
	uint32_t rank_pairs[SIM_RANKS]; /* bit j of [i]: took j holding i */
	uint32_t contended;      /* bit r: a thread waited for rank r */
	uint64_t points_hit;     /* bit k: preempt point k reached */
	uint64_t points_switched;/* bit k: a switch happened there */
	char points[SIM_POINTS_MAX][64];
	unsigned npoints;
	char msg[SIM_MSG_BYTES]; /* the failure, one paragraph */
	/* The decisions the run took (thread chosen, and whether the current
	 * thread was runnable there), for shrink and exhaustive search. */
	unsigned ndecisions;
	uint8_t decision[SIM_CHOICES_MAX];
	uint8_t decision_cur[SIM_CHOICES_MAX];   /* current thread then */
	/* Bit 0: the current thread was runnable; bit t (1..15): thread t
	 * was (explore enumerates threads 1..15 only). */
	uint16_t decision_set[SIM_CHOICES_MAX];
} sim_result_t;

/* ---- sched.c ------------------------------------------------------- */
/* Run cfg in this process; trace lines go to trace (NULL: none). */
void sim_run(const sim_config_t *cfg, sim_result_t *res, FILE *trace);
/* A failed property: report, leave the result, end the run (and process). */
_Noreturn void sim_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
typedef void sim_fn_t(void *arg);
unsigned sim_spawn(sim_fn_t *fn, void *arg);
void sim_join(unsigned id);
/* A real fork(): the child runs child_fn with this thread alone; returns
 * in the parent once the child has passed its checks. */
void sim_fork(sim_fn_t *child_fn, void *arg);
bool sim_in_child(void);
/* Scheduling points thread id has taken so far; whether it is done. */
uint64_t sim_points(unsigned id);
bool sim_thread_done(unsigned id);
/* Block until thread id has taken target points in all (or is done, or
 * waits in sim_join);
 * then this thread runs at once, before id's next step. */
void sim_wait_points(unsigned id, uint64_t target);
/* Thread id (0: none) runs only while no other thread can: a fork's
 * prepare after sim_wait_points finds it where it stopped. */
void sim_freeze(unsigned id);
unsigned sim_self(void);
/* Operations: the trace names them; the checker's Q1 waits for every
 * thread to be between operations. */
void sim_op(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sim_op_end(void);
/* An operation that must return (VM_SLEEP, UMEM_NOFAIL): version 2 fails
 * the run when it takes more than SIM_CALL_STEPS_MAX steps of its own. */
void sim_op_bounded(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The clock values the calling thread read (each mtbf test reads it once)
 * since the reset; hit: one of them is a multiple of m (or too many to
 * tell), so an mtbf of m may have failed a NOSLEEP call meanwhile. */
void sim_clock_log_reset(void);
bool sim_clock_log_hit(uint64_t m);
/* Bytes of the page region mapped and not unmapped. */
size_t sim_pages_live(void);
/* Callbacks (afunc, ffunc, constructors, reclaim) assert L1 with it. */
void sim_callback_enter(const char *what);
/* The run's PRNGs: the schedule's own, and one stream per thread for the
 * operations a scenario chooses, and one for faults. */
uint64_t sim_rand_ops(void);
bool sim_fault(unsigned odds_scale);
/* While on, every page map fails: the heap cannot grow (a source that
 * fails for a while; with the internal arenas drained, a populate that
 * fails for real, since injection spares populates). */
void sim_map_refuse(bool on);
const sim_config_t *sim_config(void);
/* Run the whole checker now (no lock may be held by anyone). */
void sim_check_now(const char *why, bool caches);
/* Run it at the first step from now at which no thread holds a lock
 * (the trace replay: after every operation). */
void sim_check_soon(void);
/* An address as the trace prints it: an offset into the page region. */
uintptr_t sim_addr(const void *p);
/* PRNG: splitmix64 seeding, xoshiro256** stream. */
typedef struct sim_rng { uint64_t s[4]; } sim_rng_t;
void sim_rng_seed(sim_rng_t *r, uint64_t seed);
uint64_t sim_rng_next(sim_rng_t *r);

/* ---- scenarios.c -------------------------------------------------- */
typedef struct sim_scenario {
	const char *name;
	const char *what;
	sim_fn_t *main;          /* runs as thread 1 */
	unsigned threads_max;
	unsigned ops_default;
	bool tiny;               /* small enough for exhaustive search */
} sim_scenario_t;
/* scenarios_fork.c: forks at every point, every operation in the
 * child, worlds past every fixed size (rows of the table). */
sim_fn_t sim_sc_fork_points, sim_sc_fork_long, sim_sc_scale;
extern const sim_scenario_t sim_scenarios[];
extern const size_t sim_nscenarios;
const sim_scenario_t *sim_scenario_find(const char *name);
/* A scenario outside the table (so not in seeds or sweeps) that
 * sim_scenario_find also finds: quanta-sim trace sets it. */
extern const sim_scenario_t *sim_scenario_extra;

/* ---- trace_replay.c (quanta-sim only) ----------------------------------- */
struct qtrace;
/* The trace the scenario "trace" replays (read before the runs fork). */
extern const struct qtrace *sim_trace_loaded;
extern const sim_scenario_t sim_trace_scenario;

/* ---- runner.c ------------------------------------------------------- */
typedef struct sim_run_slot {
	pid_t pid;
	sim_result_t *res;
	sim_config_t cfg;
	int errfd;
} sim_run_slot_t;
sim_result_t *sim_result_page(void);
void sim_run_start(sim_run_slot_t *s, const sim_config_t *cfg,
    const char *trace_path);
void sim_run_finish(sim_run_slot_t *s, int status);
void sim_run_one(const sim_config_t *cfg, sim_result_t *res,
    const char *trace_path);
void sim_signature(const char *msg, char *out, size_t len);
bool sim_same_failure(const sim_result_t *r, const char *sig);

/* ---- config.c ------------------------------------------------------- */
int sim_config_parse(sim_config_t *cfg, const char *text, char *err,
    size_t errlen);
void sim_config_format(const sim_config_t *cfg, char *out, size_t outlen);
void sim_config_from_seed(sim_config_t *cfg, uint64_t seed);
const char *sim_bug_name(int bug);
int sim_bug_lookup(const char *name); /* -1: no such bug */

#endif /* QUANTA_SIM_H */
