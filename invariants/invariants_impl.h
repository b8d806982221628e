/*
 * invariants_impl.h — what the checker's files share: how a violation is
 * recorded, and what one arena's check hands to the global one (the tag
 * tally that the conservation proof R3 sums).
 */
#ifndef QUANTA_INVARIANTS_IMPL_H
#define QUANTA_INVARIANTS_IMPL_H

#include "invariants.h"
#include "vmem_impl.h"

/* Record one violation.  vmp may be NULL (global), s may be NULL (then
 * counter names what is involved). */
void invariant_add(invariant_report_t *r, const char *code,
    const vmem_t *vmp, const vmem_seg_t *s, const char *counter,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* One singly linked tag chain (a spare list, a stash, the global list). */
typedef struct invariant_chain {
	const vmem_seg_t *head;
	const vmem_seg_t *tail;   /* last tag; NULL when empty */
	size_t len;               /* tags walked */
	const vmem_seg_t *bad;    /* first tag that is not a spare, or NULL */
	bool ended;               /* reached NULL within the bound */
} invariant_chain_t;

void invariant_chain_walk(const vmem_seg_t *head, size_t bound,
    invariant_chain_t *out);

/* Where one arena's tags are, for R3. */
typedef struct invariant_tally {
	size_t on_list;           /* created tags on the arena list */
	bool list_ok;             /* the arena list could be counted */
	bool misplaced;           /* a tag in two places was reported */
	invariant_chain_t spares, stash;
} invariant_tally_t;

/* Every per-arena code (A, F, H, S, C, R1, R2); lock held.  bound: no list
 * is longer (the tags ever created, plus the markers). */
size_t invariant_arena_full(vmem_t *vmp, invariant_report_t *r, size_t bound,
    invariant_tally_t *t);
/* Only the tally, reporting nothing (an arena the hook is not about). */
void invariant_arena_tally(vmem_t *vmp, size_t bound, invariant_tally_t *t);
/* The bound for the lists of vmp: tags ever created plus its markers. */
size_t invariant_bound(const vmem_t *vmp, size_t created);

#endif /* QUANTA_INVARIANTS_IMPL_H */
