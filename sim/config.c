/*
 * config.c — seed records: the text form of a run (sim_config_t), the
 * configuration a bare seed number stands for, and the names of the
 * planted bugs.  Shared by quanta-sim and the scheduler fuzz target.
 *
 * A record is one line: the format version first ("quanta-sim/2", or
 * "quanta-sim/1" for a record made before the version 2 generators and
 * oracles: it runs the scenarios as they were then), then
 * key=value fields (scenario, strategy, depth, threads, ops, seed, check,
 * faults, preempt, bug, budget, and for forced schedules choices=, runs
 * of thread ids as "t" or "txN").  Unknown keys and bad values are
 * errors; a field left out keeps the value a bare seed of 0 gives it.
 */
#include <stdlib.h>
#include <string.h>

#include "bugs.h"
#include "sim.h"

#define SIM_BUDGET_DEFAULT 2000000u

const char *sim_bug_name(int bug)
{
	return quanta_bug_name(bug);
}

int sim_bug_lookup(const char *name)
{
	return quanta_bug_lookup(name);
}

/* ---- seed records ------------------------------------------------------------ */

void sim_config_from_seed(sim_config_t *cfg, uint64_t seed)
{
	memset(cfg, 0, sizeof(*cfg));
	sim_rng_t r;
	sim_rng_seed(&r, seed ^ 0x51u);
	const sim_scenario_t *sc = &sim_scenarios[seed % sim_nscenarios];
	snprintf(cfg->scenario, sizeof(cfg->scenario), "%s", sc->name);
	cfg->version = SIM_VERSION;
	cfg->strategy = (seed / sim_nscenarios) % 2 ? SIM_PCT : SIM_RANDOM;
	cfg->depth = 2 + (unsigned)(sim_rng_next(&r) % 3);
	cfg->threads = sc->threads_max <= 2 ? sc->threads_max :
	    2 + (unsigned)(sim_rng_next(&r) % (sc->threads_max - 1));
	cfg->ops = sc->ops_default / 2 +
	    (unsigned)(sim_rng_next(&r) % (sc->ops_default + 1));
	cfg->seed = seed;
	cfg->check_every = 64;
	cfg->faults = sim_rng_next(&r) % 3 == 0 ? 16 : 0;
	cfg->preempt = true;
	cfg->bug = 0;
	cfg->step_budget = SIM_BUDGET_DEFAULT;
}

static const char *strategy_name(int s)
{
	return s == SIM_PCT ? "pct" : s == SIM_FORCED ? "forced" : "random";
}

void sim_config_format(const sim_config_t *cfg, char *out, size_t len)
{
	int n = snprintf(out, len, "%s%u scenario=%s strategy=%s depth=%u "
	    "threads=%u ops=%u seed=%llu check=%u faults=%u preempt=%d bug=%s "
	    "budget=%llu", SIM_FORMAT_PREFIX, cfg->version, cfg->scenario,
	    strategy_name(cfg->strategy), cfg->depth, cfg->threads, cfg->ops,
	    (unsigned long long)cfg->seed, cfg->check_every, cfg->faults,
	    cfg->preempt ? 1 : 0, sim_bug_name(cfg->bug),
	    (unsigned long long)cfg->step_budget);
	if (cfg->strategy != SIM_FORCED || n < 0)
		return;
	size_t at = (size_t)n;
	at += (size_t)snprintf(out + at, len - at, " choices=");
	for (unsigned i = 0; i < cfg->nchoices && at + 16 < len;) {
		unsigned j = i;
		while (j < cfg->nchoices && cfg->choices[j] == cfg->choices[i])
			j++;
		at += (size_t)snprintf(out + at, len - at, "%s%u", i ? "," : "",
		    cfg->choices[i]);
		if (j - i > 1)
			at += (size_t)snprintf(out + at, len - at, "x%u", j - i);
		i = j;
	}
}

static int parse_choices(sim_config_t *cfg, const char *v)
{
	cfg->nchoices = 0;
	while (*v != '\0') {
		char *end;
		unsigned long t = strtoul(v, &end, 10), rep = 1;
		if (end == v || t > SIM_THREADS_MAX)
			return -1;
		if (*end == 'x') {
			v = end + 1;
			rep = strtoul(v, &end, 10);
		}
		for (unsigned long k = 0; k < rep; k++) {
			if (cfg->nchoices == SIM_CHOICES_MAX)
				return -1;
			cfg->choices[cfg->nchoices++] = (uint8_t)t;
		}
		v = *end == ',' ? end + 1 : end;
		if (end == v && *v != '\0')
			return -1;
	}
	return 0;
}

static int parse_field(sim_config_t *cfg, const char *k, const char *v)
{
	if (strcmp(k, "scenario") == 0) {
		snprintf(cfg->scenario, sizeof(cfg->scenario), "%s", v);
		return sim_scenario_find(v) != NULL ? 0 : -1;
	}
	if (strcmp(k, "strategy") == 0) {
		cfg->strategy = strcmp(v, "pct") == 0 ? SIM_PCT :
		    strcmp(v, "forced") == 0 ? SIM_FORCED :
		    strcmp(v, "random") == 0 ? SIM_RANDOM : -1;
		return cfg->strategy < 0 ? -1 : 0;
	}
	if (strcmp(k, "bug") == 0)
		return (cfg->bug = sim_bug_lookup(v)) < 0 ? -1 : 0;
	if (strcmp(k, "choices") == 0)
		return parse_choices(cfg, v);
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end != '\0')
		return -1;
	if (strcmp(k, "depth") == 0) cfg->depth = (unsigned)n;
	else if (strcmp(k, "threads") == 0) cfg->threads = (unsigned)n;
	else if (strcmp(k, "ops") == 0) cfg->ops = (unsigned)n;
	else if (strcmp(k, "seed") == 0) cfg->seed = n;
	else if (strcmp(k, "check") == 0) cfg->check_every = (unsigned)n;
	else if (strcmp(k, "faults") == 0) cfg->faults = (unsigned)n;
	else if (strcmp(k, "preempt") == 0) cfg->preempt = n != 0;
	else if (strcmp(k, "budget") == 0) cfg->step_budget = n;
	else if (strcmp(k, "expect") != 0) return -1;
	return 0;
}

int sim_config_parse(sim_config_t *cfg, const char *text, char *err,
    size_t errlen)
{
	char *copy = strdup(text), *save = NULL;
	char *tok = strtok_r(copy, " \t\n", &save);
	size_t pl = strlen(SIM_FORMAT_PREFIX);
	unsigned version = 0;
	if (tok != NULL && strncmp(tok, SIM_FORMAT_PREFIX, pl) == 0 &&
	    (strcmp(tok + pl, "1") == 0 || strcmp(tok + pl, "2") == 0))
		version = (unsigned)(tok[pl] - '0');
	if (version == 0) {
		snprintf(err, errlen, "not a %s1 or %s2 record (the format "
		    "version must come first)", SIM_FORMAT_PREFIX,
		    SIM_FORMAT_PREFIX);
		free(copy);
		return -1;
	}
	sim_config_from_seed(cfg, 0);
	cfg->version = version;
	while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL) {
		char *eq = strchr(tok, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "field \"%s\" has no value", tok);
			free(copy);
			return -1;
		}
		*eq = '\0';
		if (parse_field(cfg, tok, eq + 1) != 0) {
			snprintf(err, errlen, "bad field %s=%s", tok, eq + 1);
			free(copy);
			return -1;
		}
	}
	free(copy);
	return 0;
}

