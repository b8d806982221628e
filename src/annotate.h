/*
 * annotate.h — what Helgrind cannot see for itself, said in debug builds.
 *
 * Theory
 * ------
 * Helgrind orders memory accesses by the pthread calls it intercepts
 * (mutexes, condition variables, create and join).  C11 atomics are plain
 * loads and stores to it: a flag published with a release store and read
 * with an acquire load looks like a race on the flag, and the data it
 * publishes looks racy too.  Where src/ relies on such a pair on a path
 * Helgrind sees (the two bootstrap flags; a cache's slot chunks, published
 * with a compare-and-swap), the two sides say so:
 *   QANN_ATOMIC(p)   p is only ever accessed atomically: its own accesses
 *                    are not data races (Helgrind stops checking them);
 *   QANN_PUBLISH(p)  before the release store: what this thread did so far
 *                    happens before ...
 *   QANN_RECEIVE(p)  ... what the thread that saw the store (acquire) does
 *                    after this point.
 * The fork protocol's own Helgrind request (a child owns all memory) is in
 * vmem_fork.c.  Each macro is a Valgrind client request — a few
 * instructions, nothing when not under Valgrind — and compiles to nothing
 * in builds without QUANTA_DEBUG or without Valgrind's headers: release
 * builds never pay for them.
 */
#ifndef QUANTA_ANNOTATE_H
#define QUANTA_ANNOTATE_H

#if defined(QUANTA_DEBUG) && defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#define QUANTA_HELGRIND 1
#endif
#endif

#ifdef QUANTA_HELGRIND
#define QANN_ATOMIC(p) VALGRIND_HG_DISABLE_CHECKING((p), sizeof(*(p)))
#define QANN_PUBLISH(p) ANNOTATE_HAPPENS_BEFORE(p)
#define QANN_RECEIVE(p) ANNOTATE_HAPPENS_AFTER(p)
#else
#define QANN_ATOMIC(p) ((void)(p))
#define QANN_PUBLISH(p) ((void)(p))
#define QANN_RECEIVE(p) ((void)(p))
#endif

#endif /* QUANTA_ANNOTATE_H */
