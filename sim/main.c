/*
 * main.c — quanta-sim, the simulator's command-line tool.
 *
 *   quanta-sim list                       scenarios and planted bugs
 *   quanta-sim run SEED|RECORD [--trace]  one run: record, steps, hash
 *   quanta-sim sweep --seeds A..B [--jobs N] [--scenario S] [--strategy
 *              random|pct] [--bug B] [--first] [--out DIR]
 *   quanta-sim replay FILE [--full]       the trace, the failure; names
 *                                         the first step that diverges
 *   quanta-sim shrink FILE|RECORD [--out DIR]
 *   quanta-sim explore SCENARIO [--preemptions P] [--max-runs N]
 *   quanta-sim corpus DIR                 replay every seed kept in DIR
 *   quanta-sim trace FILE [--seed S|--seeds A..B] [--bug B] [--trace]
 *                                         an allocation trace replayed
 *                                         (trace_replay.c), one run a seed
 *
 * Theory
 * ------
 * Every run is a process of its own (fork of this tool, which never calls
 * the allocator itself), so each starts with the allocator's globals
 * fresh, a crash or abort ends that run only, and a sweep runs --jobs of
 * them at once.  A run's result page is shared with this process, so an
 * aborted run still says how many steps it took and where.  A seed
 * record is one line of text (its format version, "quanta-sim/2" for
 * what seeds make now or "quanta-sim/1" for a record kept from before
 * the version 2 generators and oracles, which then run as they were;
 * then key=value fields); a
 * replay file is a record line followed by the run's trace, which is
 * what replay compares against to name the first divergence.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bugs.h"
#include "sim.h"
#include "trace.h"

#define SIM_JOBS_MAX 64
/* ---- list, run ------------------------------------------------------------------- */

static int cmd_list(void)
{
	printf("scenarios:\n");
	for (size_t i = 0; i < sim_nscenarios; i++)
		printf("  %-16s %s%s\n", sim_scenarios[i].name,
		    sim_scenarios[i].what, sim_scenarios[i].tiny ?
		    " [tiny: explore]" : "");
	printf("planted bugs (--bug NAME; the sim variant only):\n");
	for (int b = 1; b < QB_COUNT; b++)
		printf("  %s\n", sim_bug_name(b));
	printf("strategies: random, pct (depth d), forced (choices=...)\n");
	return 0;
}

static int config_from_arg(sim_config_t *cfg, const char *arg)
{
	char err[200];
	if (strncmp(arg, SIM_FORMAT_PREFIX, strlen(SIM_FORMAT_PREFIX)) == 0) {
		if (sim_config_parse(cfg, arg, err, sizeof(err)) != 0) {
			fprintf(stderr, "quanta-sim: %s\n", err);
			return -1;
		}
		return 0;
	}
	char *end;
	unsigned long long seed = strtoull(arg, &end, 10);
	if (*end != '\0') {
		fprintf(stderr, "quanta-sim: \"%s\" is neither a seed nor a "
		    "%s record\n", arg, SIM_FORMAT);
		return -1;
	}
	sim_config_from_seed(cfg, seed);
	return 0;
}

static void print_result(const sim_config_t *cfg, const sim_result_t *r)
{
	char rec[SIM_CHOICES_MAX * 2];
	sim_config_format(cfg, rec, sizeof(rec));
	printf("%s\n", rec);
	printf("%s: %llu steps, %llu checks (%llu with caches), %llu switches, "
	    "%u fork(s), hash %016llx\n", r->failed ? "FAIL" : "pass",
	    (unsigned long long)r->steps, (unsigned long long)r->checks,
	    (unsigned long long)r->q_checks, (unsigned long long)r->switches,
	    r->forks, (unsigned long long)r->hash);
	if (r->failed)
		printf("%s\n", r->msg);
}

static sim_config_t gcfg;
static char grec[SIM_CHOICES_MAX * 4];

static int cmd_run(int argc, char **argv)
{
	if (argc < 1 || config_from_arg(&gcfg, argv[0]) != 0)
		return 2;
	const char *trace = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--trace") == 0)
			trace = "-";
		else if (strcmp(argv[i], "--bug") == 0 && i + 1 < argc)
			gcfg.bug = sim_bug_lookup(argv[++i]);
	}
	if (gcfg.bug < 0)
		return 2;
	sim_result_t *r = sim_result_page();
	sim_run_one(&gcfg, r, trace);
	print_result(&gcfg, r);
	return r->failed ? 1 : 0;
}

/* ---- trace: an allocation trace replayed (trace_replay.c) ------------------------ */

static void trace_config(sim_config_t *cfg, const qtrace_t *t, uint64_t seed)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->scenario, sizeof(cfg->scenario), "trace");
	cfg->version = SIM_VERSION;
	cfg->strategy = SIM_RANDOM;
	cfg->depth = 3;
	cfg->threads = t->nthreads;
	cfg->ops = (unsigned)t->nrec;
	cfg->seed = seed;
	cfg->check_every = 0; /* the scenario asks after every operation */
	cfg->preempt = true;
	cfg->step_budget = 2000000u + 4000u * (uint64_t)t->nrec;
}

static int parse_seeds(const char *arg, uint64_t *lo, uint64_t *hi)
{
	char *end;
	*lo = *hi = strtoull(arg, &end, 10);
	if (strncmp(end, "..", 2) == 0)
		*hi = strtoull(end + 2, &end, 10);
	return *end == '\0' && *lo <= *hi ? 0 : -1;
}

static int cmd_trace(int argc, char **argv)
{
	uint64_t lo = 1, hi = 1;
	const char *show = NULL;
	int bug = 0;
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "--seed") == 0 ||
		    strcmp(argv[i], "--seeds") == 0) && i + 1 < argc) {
			if (parse_seeds(argv[++i], &lo, &hi) != 0)
				return 2;
		} else if (strcmp(argv[i], "--trace") == 0) {
			show = "-";
		} else if (strcmp(argv[i], "--bug") == 0 && i + 1 < argc) {
			if ((bug = sim_bug_lookup(argv[++i])) < 0)
				return 2;
		}
	}
	static qtrace_t t;
	char err[256];
	if (argc < 1 || qtrace_read(argv[0], &t, err, sizeof(err)) != 0) {
		fprintf(stderr, "quanta-sim: trace: %s\n", argc < 1 ?
		    "usage: quanta-sim trace FILE [--seed S|--seeds A..B] "
		    "[--bug B] [--trace]" : err);
		return 2;
	}
	printf("trace %s: %zu records, %u threads, %u blocks (%u live at the "
	    "end), %s\n", argv[0], t.nrec, t.nthreads, t.nobjects, t.live_end,
	    t.complete ? "complete" : "INCOMPLETE (no end record)");
	sim_trace_loaded = &t;
	sim_scenario_extra = &sim_trace_scenario;
	unsigned pass = 0, fail = 0;
	sim_result_t *r = sim_result_page();
	for (uint64_t seed = lo; seed <= hi; seed++) {
		trace_config(&gcfg, &t, seed);
		gcfg.bug = bug;
		sim_run_one(&gcfg, r, show);
		print_result(&gcfg, r);
		r->failed ? fail++ : pass++;
	}
	printf("%u passed, %u failed\n", pass, fail);
	qtrace_release(&t);
	return fail != 0;
}

/* ---- replay ------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	size_t k;
	while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += k;
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	buf[n] = '\0';
	*lenp = n;
	return buf;
}

/* The record line of a seed or replay file (comments start with #). */
static int load_record(const char *path, sim_config_t *cfg, char **rest,
    char *expect, size_t elen)
{
	size_t len;
	char *buf = read_file(path, &len);
	if (buf == NULL) {
		fprintf(stderr, "quanta-sim: cannot read %s\n", path);
		return -1;
	}
	char *line = buf, *next;
	expect[0] = '\0';
	for (; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(line, "# expect: ", 10) == 0)
			snprintf(expect, elen, "%s", line + 10);
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char err[200];
		if (sim_config_parse(cfg, line, err, sizeof(err)) != 0) {
			fprintf(stderr, "quanta-sim: %s: %s\n", path, err);
			free(buf);
			return -1;
		}
		*rest = next != NULL ? strdup(next) : strdup("");
		free(buf);
		return 0;
	}
	fprintf(stderr, "quanta-sim: %s holds no record\n", path);
	free(buf);
	return -1;
}

static void print_tail(const char *text, size_t lines_max, bool full)
{
	size_t n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n';
	const char *p = text;
	if (!full && n > lines_max) {
		size_t skip = n - lines_max;
		printf("... (%zu earlier trace lines; --full shows them)\n",
		    skip);
		while (skip > 0 && *p)
			if (*p++ == '\n')
				skip--;
	}
	fputs(p, stdout);
}

/* The first line where the recorded trace and this run's differ. */
static void compare_traces(const char *old, const char *now)
{
	size_t line = 1;
	while (*old != '\0' && *now != '\0') {
		const char *oe = strchrnul(old, '\n'), *ne = strchrnul(now, '\n');
		if (oe - old != ne - now || memcmp(old, now, (size_t)(oe - old))) {
			printf("replay DIVERGES at trace line %zu (the code or "
			    "the simulator changed since it was recorded):\n"
			    "  recorded: %.*s\n  now:      %.*s\n", line,
			    (int)(oe - old), old, (int)(ne - now), now);
			return;
		}
		old = *oe ? oe + 1 : oe;
		now = *ne ? ne + 1 : ne;
		line++;
	}
	if (*old != '\0' || *now != '\0')
		printf("replay DIVERGES after trace line %zu: the %s trace "
		    "is longer\n", line, *old ? "recorded" : "new");
	else
		printf("replay matches the recorded trace (%zu lines)\n",
		    line - 1);
}

static int cmd_replay(int argc, char **argv)
{
	if (argc < 1)
		return 2;
	bool full = argc > 1 && strcmp(argv[1], "--full") == 0;
	char *recorded, expect[256];
	if (load_record(argv[0], &gcfg, &recorded, expect, sizeof(expect)) != 0)
		return 2;
	char tmpl[] = "/tmp/quanta-sim-trace-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		return 2;
	close(fd);
	sim_result_t *r = sim_result_page();
	sim_run_one(&gcfg, r, tmpl);
	size_t len;
	char *now = read_file(tmpl, &len);
	unlink(tmpl);
	print_tail(now != NULL ? now : "", 200, full);
	print_result(&gcfg, r);
	if (recorded[0] != '\0')
		compare_traces(recorded, now != NULL ? now : "");
	free(now);
	free(recorded);
	return r->failed ? 1 : 0;
}

static void write_replay(const char *path, const sim_config_t *cfg,
    const char *comment)
{
	sim_result_t *r = sim_result_page();
	char tmpl[] = "/tmp/quanta-sim-trace-XXXXXX";
	int fd = mkstemp(tmpl);
	close(fd);
	sim_run_one(cfg, r, tmpl);
	size_t len;
	char *trace = read_file(tmpl, &len);
	unlink(tmpl);
	FILE *f = fopen(path, "w");
	if (f == NULL) {
		fprintf(stderr, "quanta-sim: cannot write %s\n", path);
		free(trace);
		return;
	}
	sim_config_format(cfg, grec, sizeof(grec));
	char sig[256];
	sim_signature(r->msg, sig, sizeof(sig));
	fprintf(f, "# %s\n# expect: %s%s\n%s\n%s", comment,
	    r->failed ? "fail: " : "pass", r->failed ? sig : "", grec,
	    trace != NULL ? trace : "");
	fclose(f);
	free(trace);
	munmap(r, sizeof(*r));
}

/* ---- sweep ---------------------------------------------------------------------- */

typedef struct sweep_opts {
	uint64_t from, to;
	unsigned jobs;
	const char *scenario;
	int strategy;
	int bug;
	long check; /* check_every for every seed; -1: the seed's own */
	bool first;
	const char *out;
	bool quiet;
} sweep_opts_t;

typedef struct sweep_totals {
	uint64_t seeds, failed, steps, checks, qchecks, switches, forks;
	uint64_t call_steps_max, call_max_seed;
	char call_max[160];
	uint32_t rank_pairs[SIM_RANKS];
	uint32_t contended;
	char points[SIM_POINTS_MAX][64];
	unsigned npoints;
	uint8_t hit[SIM_POINTS_MAX], switched[SIM_POINTS_MAX];
} sweep_totals_t;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sweep_config(const sweep_opts_t *o, uint64_t seed,
    sim_config_t *cfg)
{
	sim_config_from_seed(cfg, seed);
	if (o->scenario != NULL) {
		const sim_scenario_t *sc = sim_scenario_find(o->scenario);
		uint64_t s2 = seed * sim_nscenarios + (uint64_t)(sc - sim_scenarios);
		sim_config_from_seed(cfg, s2);
		cfg->seed = seed;
	}
	if (o->strategy >= 0)
		cfg->strategy = o->strategy;
	if (o->check >= 0)
		cfg->check_every = (unsigned)o->check;
	cfg->bug = o->bug;
}

static void merge_points(sweep_totals_t *t, const sim_result_t *r)
{
	for (unsigned k = 0; k < r->npoints; k++) {
		unsigned j;
		for (j = 0; j < t->npoints; j++)
			if (strcmp(t->points[j], r->points[k]) == 0)
				break;
		if (j == t->npoints && t->npoints < SIM_POINTS_MAX)
			snprintf(t->points[t->npoints++], 64, "%s",
			    r->points[k]);
		if (j < SIM_POINTS_MAX) {
			t->hit[j] |= (uint8_t)((r->points_hit >> k) & 1u);
			t->switched[j] |=
			    (uint8_t)((r->points_switched >> k) & 1u);
		}
	}
}

static void sweep_account(const sweep_opts_t *o, sweep_totals_t *t,
    sim_run_slot_t *s)
{
	sim_result_t *r = s->res;
	t->seeds++;
	t->steps += r->steps;
	t->checks += r->checks;
	t->qchecks += r->q_checks;
	t->switches += r->switches;
	t->forks += r->forks;
	if (r->call_steps_max > t->call_steps_max) {
		t->call_steps_max = r->call_steps_max;
		t->call_max_seed = s->cfg.seed;
		memcpy(t->call_max, r->call_max, sizeof(t->call_max));
	}
	for (int i = 0; i < SIM_RANKS; i++)
		t->rank_pairs[i] |= r->rank_pairs[i];
	t->contended |= r->contended;
	merge_points(t, r);
	if (!r->failed)
		return;
	t->failed++;
	sim_config_format(&s->cfg, grec, sizeof(grec));
	char path[512];
	if (o->out != NULL) {
		mkdir(o->out, 0755);
		snprintf(path, sizeof(path), "%s/%s-%s-%llu.sim", o->out,
		    s->cfg.scenario, sim_bug_name(s->cfg.bug),
		    (unsigned long long)s->cfg.seed);
	}
	if (!o->quiet) {
		char first[300];
		memcpy(first, r->msg, sizeof(first) - 1);
		first[sizeof(first) - 1] = '\0';
		char *nl = strchr(first, '\n');
		if (nl != NULL)
			*nl = '\0';
		printf("FAIL seed %llu: %s\n  record: %s\n",
		    (unsigned long long)s->cfg.seed, first, grec);
		if (o->out != NULL)
			printf("  replay: build/sim/bin/quanta-sim replay %s\n",
			    path);
	}
	if (o->out != NULL) {
		sim_config_t c = s->cfg;
		write_replay(path, &c, "found by quanta-sim sweep");
	}
}

static void print_coverage(const sweep_totals_t *t)
{
	unsigned pairs = 0;
	printf("interleaving coverage:\n  lock-rank pairs taken in order "
	    "(held -> taken):");
	for (int i = 0; i < SIM_RANKS; i++)
		for (int j = 0; j < SIM_RANKS; j++)
			if ((t->rank_pairs[i] >> j) & 1u) {
				pairs++;
				printf("%s %d->%d", pairs % 10 == 1 ? "\n   " : "",
				    i, j);
			}
	printf("\n  %u pairs; ranks contended (a thread waited):", pairs);
	for (int j = 1; j < SIM_RANKS; j++)
		if ((t->contended >> j) & 1u)
			printf(" %d", j);
	printf("\n  preemption points (hit / switched there):\n");
	for (unsigned k = 0; k < t->npoints; k++)
		printf("    %-52s %s / %s\n", t->points[k],
		    t->hit[k] ? "hit" : "-", t->switched[k] ? "switched" : "-");
}

static int sweep(const sweep_opts_t *o, sweep_totals_t *t)
{
	static sim_run_slot_t slots[SIM_JOBS_MAX];
	unsigned jobs = o->jobs ? o->jobs : 1, running = 0;
	if (jobs > SIM_JOBS_MAX)
		jobs = SIM_JOBS_MAX;
	for (unsigned j = 0; j < jobs; j++)
		if (slots[j].res == NULL)
			slots[j].res = sim_result_page();
	memset(t, 0, sizeof(*t));
	uint64_t next = o->from, total = o->to - o->from + 1;
	double t0 = now_s(), last = t0;
	bool stop = false;
	while ((next <= o->to && !stop) || running > 0) {
		for (unsigned j = 0; j < jobs && next <= o->to && !stop; j++) {
			if (slots[j].pid != 0)
				continue;
			sim_config_t cfg;
			sweep_config(o, next++, &cfg);
			sim_run_start(&slots[j], &cfg, NULL);
			running++;
		}
		int status;
		pid_t pid = wait(&status);
		if (pid < 0)
			break;
		for (unsigned j = 0; j < jobs; j++) {
			if (slots[j].pid != pid)
				continue;
			sim_run_finish(&slots[j], status);
			running--;
			sweep_account(o, t, &slots[j]);
			if (o->first && t->failed != 0)
				stop = true;
		}
		double now = now_s();
		if (!o->quiet && now - last >= 2.0) {
			last = now;
			fprintf(stderr, "sweep: %llu/%llu seeds, %llu failed, "
			    "%.0f steps/s\n", (unsigned long long)t->seeds,
			    (unsigned long long)total,
			    (unsigned long long)t->failed,
			    (double)t->steps / (now - t0));
		}
	}
	double secs = now_s() - t0;
	if (o->quiet)
		return 0;
	printf("\n== sweep summary\n");
	printf("  %-26s %llu..%llu (%llu run, %u jobs)\n", "seeds",
	    (unsigned long long)o->from, (unsigned long long)o->to,
	    (unsigned long long)t->seeds, jobs);
	printf("  %-26s %llu passed, %llu failed\n", "outcome",
	    (unsigned long long)(t->seeds - t->failed),
	    (unsigned long long)t->failed);
	printf("  %-26s %llu\n", "simulated steps", (unsigned long long)t->steps);
	printf("  %-26s %.1f s\n", "wall time", secs);
	printf("  %-26s %.0f (%.0f per job)\n", "steps/s",
	    (double)t->steps / secs, (double)t->steps / secs / jobs);
	printf("  %-26s %llu (%llu with caches)\n", "checker passes",
	    (unsigned long long)t->checks, (unsigned long long)t->qchecks);
	printf("  %-26s %llu\n", "context switches",
	    (unsigned long long)t->switches);
	printf("  %-26s %llu\n", "forks (children checked)",
	    (unsigned long long)t->forks);
	printf("  %-26s %llu of its own steps (bound %u): seed %llu, %s\n",
	    "longest bounded call", (unsigned long long)t->call_steps_max,
	    SIM_CALL_STEPS_MAX, (unsigned long long)t->call_max_seed,
	    t->call_max);
	print_coverage(t);
	printf("%llu passed, %llu failed\n",
	    (unsigned long long)(t->seeds - t->failed),
	    (unsigned long long)t->failed);
	return t->failed != 0;
}

static int parse_range(const char *s, uint64_t *a, uint64_t *b)
{
	char *end;
	*a = strtoull(s, &end, 10);
	if (strncmp(end, "..", 2) != 0)
		return -1;
	*b = strtoull(end + 2, &end, 10);
	return *end == '\0' && *a <= *b ? 0 : -1;
}

static int sweep_args(int argc, char **argv, sweep_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->strategy = -1;
	o->check = -1;
	o->jobs = 2;
	o->from = 1;
	o->to = 100;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--first") == 0) {
			o->first = true;
			continue;
		}
		if (v == NULL)
			return -1;
		i++;
		if (strcmp(a, "--seeds") == 0) {
			if (parse_range(v, &o->from, &o->to) != 0)
				return -1;
		} else if (strcmp(a, "--jobs") == 0) {
			o->jobs = (unsigned)atoi(v);
		} else if (strcmp(a, "--scenario") == 0) {
			if (sim_scenario_find(v) == NULL)
				return -1;
			o->scenario = v;
		} else if (strcmp(a, "--strategy") == 0) {
			o->strategy = strcmp(v, "pct") == 0 ? SIM_PCT :
			    strcmp(v, "random") == 0 ? SIM_RANDOM : -2;
			if (o->strategy == -2)
				return -1;
		} else if (strcmp(a, "--bug") == 0) {
			if ((o->bug = sim_bug_lookup(v)) < 0)
				return -1;
		} else if (strcmp(a, "--check") == 0) {
			char *end;
			o->check = strtol(v, &end, 10);
			if (end == v || *end != '\0' || o->check < 0)
				return -1;
		} else if (strcmp(a, "--out") == 0) {
			o->out = v;
		} else {
			return -1;
		}
	}
	return 0;
}

static int cmd_sweep(int argc, char **argv)
{
	sweep_opts_t o;
	if (sweep_args(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: quanta-sim sweep --seeds A..B [--jobs N] "
		    "[--scenario S] [--strategy random|pct] [--bug B] [--check K] "
		    "[--first] [--out DIR]\n");
		return 2;
	}
	static sweep_totals_t t;
	return sweep(&o, &t);
}

/* ---- shrink ---------------------------------------------------------------------- */

static unsigned preemptions_of(const sim_result_t *r)
{
	unsigned n = 0;
	for (unsigned i = 0; i < r->ndecisions; i++)
		if ((r->decision_set[i] & 1u) &&
		    r->decision[i] != r->decision_cur[i])
			n++;
	return n;
}

/* Whether c still fails alike, in no more steps than the best so far:
 * every accepted step of a shrink makes the run shorter or keeps it. */
static uint64_t shrink_best_steps = UINT64_MAX;

/* A shrink stops after this many runs or this long, whichever first. */
#define SHRINK_RUNS_MAX 1000u
#define SHRINK_SECONDS_MAX 60.0
static double shrink_deadline;

static double now_s(void);

static bool shrink_budget_left(unsigned runs)
{
	return runs < SHRINK_RUNS_MAX && now_s() < shrink_deadline;
}

static bool try_cfg(const sim_config_t *c, const char *sig, sim_result_t *r,
    unsigned *runs)
{
	(*runs)++;
	sim_run_one(c, r, NULL);
	if (!sim_same_failure(r, sig) || r->steps > shrink_best_steps)
		return false;
	shrink_best_steps = r->steps;
	return true;
}

/* Forced choices that replay r's decisions exactly. */
static void pin_choices(sim_config_t *c, const sim_result_t *r)
{
	c->strategy = SIM_FORCED;
	c->nchoices = r->ndecisions;
	memcpy(c->choices, r->decision, r->ndecisions);
}

static void shrink_schedule(sim_config_t *c, const char *sig,
    sim_result_t *r, unsigned *runs)
{
	static sim_config_t t;
	/* The shortest prefix of forced choices (then: no preemption). */
	unsigned lo = 0, hi = c->nchoices;
	while (lo < hi && shrink_budget_left(*runs)) {
		unsigned mid = (lo + hi) / 2;
		t = *c;
		t.nchoices = mid;
		if (try_cfg(&t, sig, r, runs))
			hi = mid;
		else
			lo = mid + 1;
	}
	c->nchoices = hi;
	/* Each remaining preemption, last first: keep the current thread. */
	sim_run_one(c, r, NULL);
	for (unsigned i = c->nchoices; i-- > 0 && shrink_budget_left(*runs);) {
		if (i >= r->ndecisions)
			continue;
		unsigned cur = r->decision_cur[i];
		if (!(r->decision_set[i] & 1u) || c->choices[i] == cur)
			continue;
		t = *c;
		t.choices[i] = (uint8_t)cur;
		if (try_cfg(&t, sig, r, runs)) {
			pin_choices(c, r);
			if (c->nchoices > t.nchoices)
				c->nchoices = t.nchoices;
		}
	}
}

static int cmd_shrink(int argc, char **argv)
{
	if (argc < 1)
		return 2;
	const char *outdir = "corpus/sim";
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--out") == 0)
			outdir = argv[i + 1];
	static sim_config_t c, t;
	char *rest = NULL, expect[256];
	if (access(argv[0], R_OK) == 0) {
		if (load_record(argv[0], &c, &rest, expect, sizeof(expect)) != 0)
			return 2;
		free(rest);
	} else if (config_from_arg(&c, argv[0]) != 0) {
		return 2;
	}
	sim_result_t *r = sim_result_page();
	sim_run_one(&c, r, NULL);
	if (!r->failed) {
		printf("shrink: the record passes; nothing to shrink\n");
		return 1;
	}
	char sig[256];
	sim_signature(r->msg, sig, sizeof(sig));
	uint64_t steps0 = r->steps;
	shrink_best_steps = steps0;
	unsigned threads0 = c.threads, ops0 = c.ops, pre0 = preemptions_of(r);
	unsigned runs = 0;
	shrink_deadline = now_s() + SHRINK_SECONDS_MAX;
	/* A livelock fails only at its step budget: try a tenth of it. */
	if (strstr(sig, "step budget") != NULL) {
		t = c;
		t.step_budget = c.step_budget / 10;
		sim_run_one(&t, r, NULL);
		char s2[256];
		sim_signature(r->msg, s2, sizeof(s2));
		if (r->failed && strstr(s2, "step budget") != NULL) {
			c = t;
			snprintf(sig, sizeof(sig), "%s", s2);
			shrink_best_steps = r->steps;
		}
	}
	printf("shrink: failure \"%s\"\n  from %llu steps, %u threads, %u ops, "
	    "%u preemptions\n", sig, (unsigned long long)steps0, threads0, ops0,
	    pre0);
	/* Fewer threads, then fewer operations, with the same seed. */
	while (c.threads > 1 && shrink_budget_left(runs)) {
		t = c;
		t.threads--;
		if (!try_cfg(&t, sig, r, &runs))
			break;
		c = t;
	}
	while (c.ops > 1 && shrink_budget_left(runs)) {
		t = c;
		t.ops = c.ops / 2;
		if (!try_cfg(&t, sig, r, &runs)) {
			t.ops = c.ops - 1;
			if (!try_cfg(&t, sig, r, &runs))
				break;
		}
		c = t;
	}
	/* Then the schedule: pin it, shorten it, drop preemptions. */
	sim_run_one(&c, r, NULL);
	pin_choices(&c, r);
	if (try_cfg(&c, sig, r, &runs))
		shrink_schedule(&c, sig, r, &runs);
	else
		printf("  (the pinned schedule does not fail alike: kept "
		    "the strategy)\n");
	sim_run_one(&c, r, NULL);
	if (!sim_same_failure(r, sig)) {
		printf("shrink: lost the failure; keeping the original\n");
		return 2;
	}
	printf("  to   %llu steps, %u threads, %u ops, %u preemptions (%u "
	    "runs)\n", (unsigned long long)r->steps, c.threads, c.ops,
	    preemptions_of(r), runs);
	mkdir(outdir, 0755);
	char path[512];
	snprintf(path, sizeof(path), "%s/%s-%s-%llu.sim", outdir, c.scenario,
	    sim_bug_name(c.bug), (unsigned long long)c.seed);
	write_replay(path, &c, "shrunk by quanta-sim shrink");
	printf("shrink: wrote %s\nshrunk steps: %llu\n", path,
	    (unsigned long long)r->steps);
	return 0;
}

/* ---- corpus: every kept seed, with its expected outcome ----------------------- */

static int cmd_corpus(int argc, char **argv)
{
	if (argc < 1)
		return 2;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "ls %s/*.sim 2>/dev/null", argv[0]);
	FILE *ls = popen(cmd, "r");
	if (ls == NULL)
		return 2;
	char path[512];
	unsigned pass = 0, fail = 0;
	sim_result_t *r = sim_result_page();
	while (fgets(path, sizeof(path), ls) != NULL) {
		path[strcspn(path, "\n")] = '\0';
		char *rest, expect[256];
		if (load_record(path, &gcfg, &rest, expect, sizeof(expect)) != 0) {
			fail++;
			continue;
		}
		free(rest);
		sim_run_one(&gcfg, r, NULL);
		char sig[256];
		sim_signature(r->msg, sig, sizeof(sig));
		bool ok;
		if (strncmp(expect, "fail: ", 6) == 0)
			ok = r->failed && strcmp(sig, expect + 6) == 0;
		else
			ok = !r->failed;
		printf("%s - %s (%s; %llu steps, hash %016llx)\n",
		    ok ? "ok" : "not ok", path, r->failed ? sig : "passed",
		    (unsigned long long)r->steps, (unsigned long long)r->hash);
		if (!ok)
			printf("  expected: %s\n  got: %s\n",
			    expect[0] ? expect : "pass", r->msg);
		ok ? pass++ : fail++;
	}
	pclose(ls);
	printf("%u passed, %u failed\n", pass, fail);
	return fail != 0;
}

/* ---- explore: every schedule up to a preemption bound ----------------------- */

typedef struct prefix {
	unsigned n, pre;
	uint8_t *c;
} prefix_t;

static int cmd_explore(int argc, char **argv)
{
	if (argc < 1 || sim_scenario_find(argv[0]) == NULL)
		return 2;
	unsigned bound = 2, runs_max = 20000;
	int bug = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--preemptions") == 0)
			bound = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--max-runs") == 0)
			runs_max = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--bug") == 0)
			bug = sim_bug_lookup(argv[i + 1]);
	}
	if (bug < 0)
		return 2;
	static sim_config_t c;
	sim_config_from_seed(&c, 0);
	snprintf(c.scenario, sizeof(c.scenario), "%s", argv[0]);
	const sim_scenario_t *sc = sim_scenario_find(argv[0]);
	c.threads = sc->threads_max;
	c.ops = sc->ops_default;
	c.strategy = SIM_FORCED;
	c.faults = 0;
	c.bug = bug;
	size_t cap = 1024, top = 0;
	prefix_t *stack = malloc(cap * sizeof(*stack));
	stack[top++] = (prefix_t){0, 0, NULL};
	sim_result_t *r = sim_result_page();
	unsigned runs = 0, failures = 0;
	uint64_t steps = 0;
	double t0 = now_s();
	while (top > 0 && runs < runs_max) {
		prefix_t p = stack[--top];
		c.nchoices = p.n;
		if (p.n)
			memcpy(c.choices, p.c, p.n);
		sim_run_one(&c, r, NULL);
		runs++;
		steps += r->steps;
		if (r->failed) {
			if (failures++ < 3) {
				sim_config_format(&c, grec, sizeof(grec));
				char first[300];
				memcpy(first, r->msg, sizeof(first) - 1);
				first[sizeof(first) - 1] = '\0';
				first[strcspn(first, "\n")] = '\0';
				printf("FAIL: %s\n  record: %s\n", first, grec);
			}
		}
		unsigned pre = p.pre;
		for (unsigned i = p.n; i < r->ndecisions; i++) {
			unsigned cur = r->decision_cur[i];
			bool cur_ok = r->decision_set[i] & 1u;
			for (unsigned th = 1; th < 16; th++) {
				if (!((r->decision_set[i] >> th) & 1u) ||
				    th == r->decision[i])
					continue;
				unsigned np = pre + (cur_ok && th != cur);
				if (np > bound)
					continue;
				if (top == cap)
					stack = realloc(stack,
					    (cap *= 2) * sizeof(*stack));
				uint8_t *nc = malloc(i + 1);
				memcpy(nc, r->decision, i);
				nc[i] = (uint8_t)th;
				stack[top++] = (prefix_t){i + 1, np, nc};
			}
			pre += cur_ok && r->decision[i] != cur;
		}
		free(p.c);
	}
	double secs = now_s() - t0;
	printf("explore %s: %u schedules run (preemption bound %u%s), %u "
	    "failed, %llu steps, %.1f s\n", argv[0], runs, bound,
	    top > 0 ? ", run limit reached" : ", exhaustive", failures,
	    (unsigned long long)steps, secs);
	printf("%u passed, %u failed\n", runs - failures, failures);
	return failures != 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fprintf(stderr, "usage: quanta-sim list | run SEED|RECORD "
		    "[--trace] | sweep --seeds A..B [--jobs N] ... | replay FILE "
		    "| shrink FILE|RECORD | explore SCENARIO | corpus DIR | trace FILE "
		    "[--seed S]\n");
		return 2;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{"run", cmd_run}, {"sweep", cmd_sweep}, {"replay", cmd_replay},
		{"shrink", cmd_shrink}, {"corpus", cmd_corpus},
		{"explore", cmd_explore}, {"trace", cmd_trace},
	};
	const char *cmd = argv[1];
	if (strcmp(cmd, "list") == 0)
		return cmd_list();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			return cmds[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "quanta-sim: unknown command \"%s\"\n", cmd);
	return 2;
}
