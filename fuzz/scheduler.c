/*
 * scheduler.c — the scheduler fuzz target (QUANTA_SIM_TARGET: built over
 * the sim variant of the library and the simulator's core).
 *
 * Theory
 * ------
 * The bytes are a seed record: the first ones choose the scenario, its
 * threads, operations and faults, and the 64-bit PRNG seed of the
 * operations; every byte after them is a forced scheduling choice (the
 * thread that runs at each multi-way decision; a choice of a thread that
 * cannot run keeps the current one).  So the engine mutates schedules
 * directly, and the simulator's oracle (every invariant every 64 steps,
 * the per-operation promises, deadlock, livelock, fork children) judges
 * each one.  A run needs the allocator's globals fresh, so it runs in a
 * child process (sim_run_one); a failing run aborts here, with its
 * record, for the engine to keep.
 *
 * Feedback.  AFL++ sees the child's edges (the child inherits its shared
 * coverage map).  libFuzzer counts only this process's edges, so the run's
 * interleaving coverage — which lock ranks were taken holding which,
 * which were contended, which preemption points were reached and switched
 * at — is handed to it as extra counters: a new lock order is a new
 * feature, and the engine keeps the input that found it.
 * QUANTA_FUZZ_BUG=<name> plants a bug of src/bugs.h in every run (the
 * proof that a campaign finds them).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bugs.h"
#include "fuzz_common.h"
#include "sim.h"

#define SCHED_HEADER_BYTES 12
#define SCHED_OPS_MAX 24

#if defined(__clang__) && defined(__linux__)
__attribute__((used, section("__libfuzzer_extra_counters")))
#endif
static uint8_t sched_counters[SIM_RANKS * SIM_RANKS + SIM_RANKS +
    2 * SIM_POINTS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode(sim_config_t *cfg, fuzz_in_t *in)
{
	sim_config_from_seed(cfg, 0);
	const sim_scenario_t *sc = &sim_scenarios[fuzz_u8(in) %
	    sim_nscenarios];
	snprintf(cfg->scenario, sizeof(cfg->scenario), "%s", sc->name);
	cfg->threads = 1 + fuzz_u8(in) % sc->threads_max;
	unsigned ops = sc->ops_default < SCHED_OPS_MAX ? sc->ops_default :
	    SCHED_OPS_MAX;
	cfg->ops = fuzz_u8(in) % (ops + 1);
	cfg->faults = fuzz_u8(in) & 1 ? 16 : 0;
	cfg->seed = fuzz_u64(in);
	cfg->strategy = SIM_FORCED;
	cfg->step_budget = 200000;
	const char *bug = getenv("QUANTA_FUZZ_BUG");
	cfg->bug = bug != NULL ? sim_bug_lookup(bug) : 0;
	if (cfg->bug < 0)
		cfg->bug = 0;
	cfg->nchoices = 0;
	while (fuzz_in_more(in) && cfg->nchoices < SIM_CHOICES_MAX)
		cfg->choices[cfg->nchoices++] =
		    (uint8_t)(1 + fuzz_u8(in) % (cfg->threads + 1));
}

static void feedback(const sim_result_t *r)
{
	uint8_t *c = sched_counters;
	for (unsigned i = 0; i < SIM_RANKS; i++)
		for (unsigned j = 0; j < SIM_RANKS; j++)
			if ((r->rank_pairs[i] >> j) & 1u)
				c[i * SIM_RANKS + j]++;
	c += SIM_RANKS * SIM_RANKS;
	for (unsigned j = 0; j < SIM_RANKS; j++)
		if ((r->contended >> j) & 1u)
			c[j]++;
	c += SIM_RANKS;
	for (unsigned k = 0; k < SIM_POINTS_MAX; k++) {
		c[k] += (uint8_t)((r->points_hit >> k) & 1u);
		c[SIM_POINTS_MAX + k] += (uint8_t)((r->points_switched >> k) & 1u);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static sim_result_t *res;
	static sim_config_t cfg;
	if (size < SCHED_HEADER_BYTES)
		return 0;
	if (res == NULL)
		res = sim_result_page();
	fuzz_in_t in;
	fuzz_in_init(&in, data, size);
	fuzz_log_reset();
	decode(&cfg, &in);
	static char rec[SIM_CHOICES_MAX * 4];
	sim_config_format(&cfg, rec, sizeof(rec));
	fuzz_step("%s", rec);
	sim_run_one(&cfg, res, NULL);
	feedback(res);
	if (res->failed)
		fuzz_fail("the simulator: %s\n  record: %s\n  replay: "
		    "build/sim/bin/quanta-sim run '%s' --trace", res->msg, rec,
		    rec);
	return 0;
}
