/*
 * bugs.h — planted bugs, for proving that the simulator and the fuzzers
 * find what they are meant to find.
 *
 * Theory
 * ------
 * A harness that has never caught a bug proves nothing about the bugs it
 * would catch.  So the sim variant (and only it: QUANTA_BUGS is refused
 * with QUANTA_RELEASE or NDEBUG) compiles each bug below behind
 * QUANTA_BUG(id); the simulator sets quanta_bug_planted to one id per run
 * (0: none, the correct allocator).  Every other variant compiles
 * QUANTA_BUG(id) to the constant 0, so the planted code is dead and the
 * compiler removes it: a release library holds no trace of it.
 *
 * Each bug is one small, realistic mistake of the kind the harness exists
 * for; docs/sim-bugs.md (made by sim/bugs-table) says which strategy found
 * each, after how many seeds, and how short its shrunk trace is, and
 * docs/fuzz-bugs.md (fuzz/bugs-table) how soon a short fuzzing campaign
 * finds the constraint bugs.  The simulator's builds (sim variant) and
 * the fuzz builds with bugs (the bugs variant, fuzz/build.sh with
 * QUANTA_FUZZ_BUGS=1) compile them in.
 */
#ifndef QUANTA_BUGS_H
#define QUANTA_BUGS_H

enum quanta_bug {
	QB_NONE = 0,
	QB_REAP_IN_POPULATE,   /* a reap requested during a populate runs */
	QB_LOCKUP_ORDER,       /* the fork lockup takes two ranks swapped */
	QB_RESERVE_SHORT,      /* vmem_reserve is content with one tag less */
	QB_FREEMAP_STALE,      /* a free list emptied keeps its freemap bit */
	QB_SPAN_TWICE,         /* an imported span is given back twice */
	QB_ROTOR_STALE,        /* the rotor leaves free neighbours uncoalesced */
	QB_MTBF_TAG_LEAK,      /* an mtbf failure drops a tag on the floor */
	QB_CHILD_LOCK_HELD,    /* a fork child inherits a held lock */
	QB_PUSH_COUNT_FIRST,   /* magazine push stores the count, then the round */
	QB_BOOT_GATE_NOPID,    /* the bootstrap gate forgets the process id */
	QB_PHASE_IGNORED,      /* a constrained fit forgets the phase */
	QB_NOCROSS_OFF_BY_ONE, /* nocross lets a piece end one past a boundary */
	QB_WINDOW_END_PAST,    /* a fit may end one quantum past maxaddr */
	QB_BESTFIT_SHORT,      /* best fit gives up one list early: no space */
	QB_NEXTFIT_SPLIT,      /* free space the rotor holds apart never joins */
	QB_SLEEP_INJECTED,     /* injection fails the allocator's own requests */
	QB_POPULATOR_UNLISTED, /* a populator is in the table but not listed */
	QB_COUNT               /* one past the last */
};



#ifdef QUANTA_BUGS
#if defined(QUANTA_RELEASE) || defined(NDEBUG)
#error "planted bugs are never compiled into a release build"
#endif
extern int quanta_bug_planted;
/* Their names, for the tools (bugs.c). */
const char *quanta_bug_name(int bug);
int quanta_bug_lookup(const char *name); /* -1: no such bug */
#define QUANTA_BUG(id) __builtin_expect(quanta_bug_planted == (id), 0)
#else
#define QUANTA_BUG(id) 0
#endif

#endif /* QUANTA_BUGS_H */
