/*
 * bugs.c — the planted-bug switch (bugs.h): which bug is live in this run.
 * Only the sim variant defines QUANTA_BUGS; every other variant compiles
 * QUANTA_BUG(id) to 0 and needs no variable.
 */
#include <string.h>

#include "bugs.h"

#ifdef QUANTA_BUGS
int quanta_bug_planted;

static const char *const quanta_bug_names[QB_COUNT] = {
	[QB_NONE] = "none",
	[QB_REAP_IN_POPULATE] = "reap_in_populate",
	[QB_LOCKUP_ORDER] = "lockup_order",
	[QB_RESERVE_SHORT] = "reserve_short",
	[QB_FREEMAP_STALE] = "freemap_stale",
	[QB_SPAN_TWICE] = "span_twice",
	[QB_ROTOR_STALE] = "rotor_stale",
	[QB_MTBF_TAG_LEAK] = "mtbf_tag_leak",
	[QB_CHILD_LOCK_HELD] = "child_lock_held",
	[QB_PUSH_COUNT_FIRST] = "push_count_first",
	[QB_BOOT_GATE_NOPID] = "boot_gate_nopid",
	[QB_PHASE_IGNORED] = "phase_ignored",
	[QB_NOCROSS_OFF_BY_ONE] = "nocross_off_by_one",
	[QB_WINDOW_END_PAST] = "window_end_past",
	[QB_BESTFIT_SHORT] = "bestfit_short",
	[QB_NEXTFIT_SPLIT] = "nextfit_split",
	[QB_SLEEP_INJECTED] = "sleep_injected",
	[QB_POPULATOR_UNLISTED] = "populator_unlisted",
};

const char *quanta_bug_name(int bug)
{
	return bug >= 0 && bug < QB_COUNT ? quanta_bug_names[bug] : "?";
}

int quanta_bug_lookup(const char *name)
{
	for (int i = 0; i < QB_COUNT; i++)
		if (strcmp(quanta_bug_names[i], name) == 0)
			return i;
	return -1;
}
#else
typedef int quanta_bugs_absent_t;
#endif
