/*
 * bugs.c — the planted-bug switch (bugs.h): which bug is live in this run.
 * Only the sim variant defines QUANTA_BUGS; every other variant compiles
 * QUANTA_BUG(id) to 0 and needs no variable.
 */
#include "bugs.h"

#ifdef QUANTA_BUGS
int quanta_bug_planted;
#else
typedef int quanta_bugs_absent_t;
#endif
