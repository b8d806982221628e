/*
 * invariants.h — the invariant checker's interface, for the hook in src/ and
 * for the tests.  Not part of the public API: the release build holds
 * neither this code nor any call to it.
 *
 * The checker reads an arena's structures and records every violation of
 * shared/design/INVARIANTS.md it finds (codes A1-A5, F1-F3, H1-H3, S1-S3,
 * C1-C3, R1-R4) in a report; it never stops at the first and never repairs
 * anything.  Every check is one bounded pass over one structure: no list is
 * followed for more steps than there are tags, so a corrupted (cyclic) list
 * is reported, not followed forever.
 *
 * Locking.  invariant_check_arena_locked: the caller holds the arena lock.
 * invariant_check_arena: takes it.  invariant_check_all (every arena, plus
 * the global tag accounting R3 and R4): the caller holds no arena lock; it
 * takes the arena-list lock, every arena lock in list order, then the tag
 * lock, so that the conservation count is one consistent snapshot.
 */
#ifndef QUANTA_INVARIANTS_H
#define QUANTA_INVARIANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmem.h"

/* Violations kept in full; further ones are only counted (by code too). */
#define INVARIANT_KEEP_MAX 64
#define INVARIANT_WHAT_BYTES 160
#define INVARIANT_NAME_BYTES 32
/* A1..A5 F1..F3 H1..H3 S1..S3 C1..C3 R1..R4 */
#define INVARIANT_NCODES 23

typedef struct invariant_violation {
	char code[4];                       /* "A1" */
	char arena[INVARIANT_NAME_BYTES];   /* "" for global accounting */
	bool has_seg;                       /* start/end name a segment */
	uintptr_t start, end;
	const char *counter;                /* else: the counter or list */
	char what[INVARIANT_WHAT_BYTES];    /* one line, no newline */
} invariant_violation_t;

typedef struct invariant_report {
	size_t count;                       /* violations found */
	size_t kept;                        /* of them, in v[] */
	size_t by_code[INVARIANT_NCODES];
	invariant_violation_t v[INVARIANT_KEEP_MAX];
} invariant_report_t;

void invariant_report_init(invariant_report_t *r);

/* Each adds what it finds to r and returns how many it found. */
size_t invariant_check_arena_locked(vmem_t *vmp, invariant_report_t *r);
size_t invariant_check_arena(vmem_t *vmp, invariant_report_t *r);
size_t invariant_check_all(invariant_report_t *r);

/* Text: one line per violation.  JSON: {"violations": [...], ...}. */
void invariant_report_print(const invariant_report_t *r, FILE *fp, int json);
bool invariant_report_has(const invariant_report_t *r, const char *code);
size_t invariant_report_count(const invariant_report_t *r, const char *code);

/*
 * The hook runs the checker after every k-th arena-changing operation
 * (process-wide count).  k comes from QUANTA_CHECK_EVERY, read once
 * (default 1; 0 turns the hook off); invariant_set_every overrides it.
 */
void invariant_set_every(unsigned k);
unsigned invariant_every(void);

/*
 * Long runs: a structure of about more than n tags (QUANTA_CHECK_SEGS,
 * default 1024; 0 = no limit) is checked on every (tags / n + 1)-th of the
 * operations above instead: the arena by its segments, the conservation
 * proof R3 by the tags ever created.  So the hook costs about n tag visits
 * per operation, and a test with 100k live segments stays linear.
 */
void invariant_set_segs_max(size_t n);
size_t invariant_segs_max(void);

#endif /* QUANTA_INVARIANTS_H */
