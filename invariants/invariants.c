/*
 * invariants.c — the checker's report, the global checks (R3 tag
 * conservation, R4 one populator), and the hook src/ calls after every
 * arena-changing operation (invariant_after_op).  The per-arena checks are
 * in invariants_arena.c.
 *
 * Theory
 * ------
 * R3 needs one instant at which no tag moves: it takes the arena-list lock,
 * every arena lock in list order, then the tag lock — the order of the fork
 * protocol (vmem_fork.c), so it cannot deadlock with any path of src/.  It
 * then counts every tag where it can be: on an arena list (span markers and
 * pieces; the rotor, walkers, sentinels and free-list heads are not tags
 * that were created), on a spare list, in a stash, on the global free list.
 * The sum must be the number ever created.  A tag in two places is found
 * without a set of all tags, in linear time:
 *   - everything off the arena lists has type SEG_SPARE and everything on
 *     them another type, so a tag on both kinds of list has the wrong type
 *     on one of them;
 *   - two singly linked chains (spare lists, stashes, the global list) that
 *     share a tag share everything after it, down to the same last tag: so
 *     they are found by their last tags, and the shared length is measured
 *     once and taken off the sum, which then stays exact.
 * While an arena that holds tags is off vmem_list (being created,
 * destroyed or bootstrapped: vmem_offlist_arenas), its tags are out of sight and R3 waits;
 * the count is read under the tag lock, so it cannot miss one (see
 * VMEM_OFFLIST in vmem_impl.h).  A populate moves tags only under the tag
 * lock, so R3 stays exact while one is running.
 *
 * The hook.  After an operation on arena A it checks A in full, and R3/R4
 * with the other arenas only counted.  The calling thread may hold another
 * arena's lock (a vmem_walk callback that allocates elsewhere), so the hook
 * only tries the other arenas' locks; if one is busy it checks A alone and
 * leaves R3 for a later operation.  A violation prints the report on stderr
 * and aborts.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "invariants_impl.h"

static const char *const invariant_codes[INVARIANT_NCODES] = {
    "A1", "A2", "A3", "A4", "A5", "A6", "F1", "F2", "F3", "F4", "H1", "H2", "H3",
    "S1", "S2", "S3", "C1", "C2", "C3", "R1", "R2", "R3", "R4"};

static int invariant_code_index(const char *code)
{
	for (int i = 0; i < INVARIANT_NCODES; i++)
		if (strcmp(invariant_codes[i], code) == 0)
			return i;
	return -1;
}

/* ---- the report -------------------------------------------------------- */

void invariant_report_init(invariant_report_t *r)
{
	memset(r, 0, sizeof(*r));
}

void invariant_add(invariant_report_t *r, const char *code,
    const vmem_t *vmp, const vmem_seg_t *s, const char *counter,
    const char *fmt, ...)
{
	int i = invariant_code_index(code);
	if (i < 0)
		abort(); /* a checker bug: every code is in the table */
	r->count++;
	r->by_code[i]++;
	if (r->kept == INVARIANT_KEEP_MAX)
		return;
	invariant_violation_t *v = &r->v[r->kept++];
	memset(v, 0, sizeof(*v));
	(void)snprintf(v->code, sizeof(v->code), "%s", code);
	(void)snprintf(v->arena, sizeof(v->arena), "%s",
	    vmp != NULL ? vmp->ar_name : "");
	v->has_seg = s != NULL;
	if (s != NULL) {
		v->start = s->sg_start;
		v->end = s->sg_end;
	}
	v->counter = counter;
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(v->what, sizeof(v->what), fmt, ap);
	va_end(ap);
}

bool invariant_report_has(const invariant_report_t *r, const char *code)
{
	return invariant_report_count(r, code) != 0;
}

size_t invariant_report_count(const invariant_report_t *r, const char *code)
{
	int i = invariant_code_index(code);
	return i < 0 ? 0 : r->by_code[i];
}

static void invariant_json_string(FILE *fp, const char *s)
{
	(void)fputc('"', fp);
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			(void)fprintf(fp, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			(void)fprintf(fp, "\\u%04x", ch);
		else
			(void)fputc(ch, fp);
	}
	(void)fputc('"', fp);
}

static void invariant_print_json(const invariant_report_t *r, FILE *fp)
{
	(void)fprintf(fp, "{\"violations\": [");
	for (size_t i = 0; i < r->kept; i++) {
		const invariant_violation_t *v = &r->v[i];
		(void)fprintf(fp, "%s\n  {\"code\": \"%s\", \"arena\": ",
		    i == 0 ? "" : ",", v->code);
		invariant_json_string(fp, v->arena);
		if (v->has_seg)
			(void)fprintf(fp, ", \"start\": %" PRIuPTR
			    ", \"end\": %" PRIuPTR, v->start, v->end);
		if (v->counter != NULL) {
			(void)fprintf(fp, ", \"counter\": ");
			invariant_json_string(fp, v->counter);
		}
		(void)fprintf(fp, ", \"what\": ");
		invariant_json_string(fp, v->what);
		(void)fprintf(fp, "}");
	}
	(void)fprintf(fp, "%s], \"count\": %zu, \"omitted\": %zu}\n",
	    r->kept == 0 ? "" : "\n", r->count, r->count - r->kept);
}

void invariant_report_print(const invariant_report_t *r, FILE *fp, int json)
{
	if (json) {
		invariant_print_json(r, fp);
		return;
	}
	for (size_t i = 0; i < r->kept; i++) {
		const invariant_violation_t *v = &r->v[i];
		(void)fprintf(fp, "%s arena \"%s\" ", v->code, v->arena);
		if (v->has_seg)
			(void)fprintf(fp, "seg [0x%" PRIxPTR ", 0x%" PRIxPTR ")",
			    v->start, v->end);
		else
			(void)fprintf(fp, "%s", v->counter != NULL ? v->counter
								    : "-");
		(void)fprintf(fp, ": %s\n", v->what);
	}
	if (r->count > r->kept)
		(void)fprintf(fp, "... and %zu more violations\n",
		    r->count - r->kept);
}

/* ---- one arena ---------------------------------------------------------- */

size_t invariant_check_arena_locked(vmem_t *vmp, invariant_report_t *r)
{
	vmem_tag_census_t c;
	invariant_tally_t t;
	vmem_tag_census(&c);
	return invariant_arena_full(vmp, r, invariant_bound(vmp, c.created),
	    &t);
}

size_t invariant_check_arena(vmem_t *vmp, invariant_report_t *r)
{
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	size_t n = invariant_check_arena_locked(vmp, r);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	return n;
}

/* ---- R3: conservation, R4: the populator ---------------------------------- */

/* One chain of the census, and whose it is. */
typedef struct invariant_link {
	invariant_chain_t ch;
	const vmem_t *owner;  /* NULL: the global free list */
	const char *what;     /* "spare", "stash", "global free" */
} invariant_link_t;

/* Chains whose overlaps are looked for: two per arena and the global
 * list; past this many arenas the sum still catches a shared tag. */
#define INVARIANT_LINKS_MAX 257

typedef struct invariant_census {
	invariant_report_t *r;
	size_t sum;           /* tags counted, shared ones once */
	bool exact;           /* every place could be counted */
	invariant_link_t *links;
	size_t nlinks, cap;
} invariant_census_t;

static void invariant_census_link(invariant_census_t *k, const vmem_t *owner,
    const char *what, const invariant_chain_t *ch)
{
	k->sum += ch->len;
	if (!ch->ended) {
		k->exact = false;
		return;
	}
	if (ch->tail == NULL || k->nlinks == k->cap)
		return;
	invariant_link_t *l = &k->links[k->nlinks++];
	l->ch = *ch;
	l->owner = owner;
	l->what = what;
}

/* By last tag; insertion sort: a few chains per arena, no allocation. */
static void invariant_links_sort(invariant_link_t *l, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		invariant_link_t x = l[i];
		size_t j = i;
		for (; j > 0 && (uintptr_t)l[j - 1].ch.tail > (uintptr_t)x.ch.tail;
		     j--)
			l[j] = l[j - 1];
		l[j] = x;
	}
}

/* The first tag two chains with one last tag share; their shared length. */
static const vmem_seg_t *invariant_merge_point(const invariant_chain_t *a,
    const invariant_chain_t *b, size_t *shared)
{
	const vmem_seg_t *x = a->head, *y = b->head;
	size_t lx = a->len, ly = b->len;
	for (; lx > ly; lx--)
		x = x->sg_next;
	for (; ly > lx; ly--)
		y = y->sg_next;
	for (; x != y; lx--) {
		x = x->sg_next;
		y = y->sg_next;
	}
	*shared = lx;
	return x;
}

static void invariant_census_overlaps(invariant_census_t *k)
{
	invariant_links_sort(k->links, k->nlinks);
	for (size_t i = 1; i < k->nlinks; i++) {
		const invariant_link_t *a = &k->links[i - 1], *b = &k->links[i];
		if (a->ch.tail != b->ch.tail)
			continue;
		size_t shared;
		const vmem_seg_t *m = invariant_merge_point(&a->ch, &b->ch,
		    &shared);
		k->sum -= shared;
		invariant_add(k->r, "R3", b->owner, NULL, b->what,
		    "tag %p and the %zu after it are on the %s list of \"%s\" "
		    "and on the %s list of \"%s\"", (const void *)m,
		    shared - 1, b->what, b->owner ? b->owner->ar_name : "",
		    a->what, a->owner ? a->owner->ar_name : "");
	}
}

static void invariant_census_arena(invariant_census_t *k, const vmem_t *vmp,
    const invariant_tally_t *t)
{
	k->sum += t->on_list;
	k->exact &= t->list_ok && !t->misplaced;
	invariant_census_link(k, vmp, "spare", &t->spares);
	invariant_census_link(k, vmp, "stash", &t->stash);
}

/* Tag lock held: the global list, then the sum against created. */
static void invariant_census_close(invariant_census_t *k, size_t bound)
{
	vmem_tag_census_t c;
	const vmem_seg_t *head;
	invariant_chain_t g;
	vmem_tag_census_locked(&c, &head);
	invariant_chain_walk(head, bound, &g);
	if (g.bad != NULL) {
		invariant_add(k->r, "R3", NULL, g.bad, "global free",
		    "a tag of type %d on the global free list",
		    seg_type(g.bad));
		k->exact = false;
	} else if (g.ended && g.len != c.global_free) {
		invariant_add(k->r, "R3", NULL, NULL, "global free",
		    "global free count %zu, the list holds %zu",
		    c.global_free, g.len);
	}
	invariant_census_link(k, NULL, "global free", &g);
	invariant_census_overlaps(k);
	if (atomic_load(&vmem_offlist_arenas) != 0 || !k->exact)
		return;
	if (k->sum != c.created)
		invariant_add(k->r, "R3", NULL, NULL, "created",
		    "%zu tags created, %zu found (arena lists, spares, "
		    "stashes, global list): %zu %s", c.created, k->sum,
		    k->sum < c.created ? c.created - k->sum
				       : k->sum - c.created,
		    k->sum < c.created ? "lost" : "counted twice");
}

static void invariant_populator(invariant_report_t *r)
{
	/* The recorded populator is only ever set under the populate lock;
	 * holding it ourselves, nobody may be recorded. */
	if (!qlock_tryenter_any(&vmem_populate_lock, QLOCK_POPULATE))
		return;
	uintptr_t id = vmem_populator_thread();
	if (id != 0)
		invariant_add(r, "R4", NULL, NULL, "populator",
		    "thread 0x%" PRIxPTR " is recorded as populating, but "
		    "nobody holds the populate lock", id);
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
}

/* Lock every listed arena in lock-table order, the fork lockup's (so
 * that the two never disagree, not even for Helgrind, which records the
 * order of trylocks too); false (nothing held) if one is busy.  The list
 * lock is held: the listed set cannot change meanwhile. */
typedef struct lock_all {
	bool block, ok;
	size_t n;
} lock_all_t;

static void lock_all_visit(void *owner, plat_mutex_t *m, void *arg)
{
	lock_all_t *la = arg;
	(void)owner;
	if (!la->ok)
		return;
	if (la->block)
		qlock_enter_nested(m, QLOCK_ARENA);
	else if (!qlock_tryenter_any(m, QLOCK_ARENA)) {
		la->ok = false;
		return;
	}
	la->n++;
}

static void unlock_first_visit(void *owner, plat_mutex_t *m, void *arg)
{
	size_t *n = arg;
	(void)owner;
	if (*n == 0)
		return;
	qlock_exit(m, QLOCK_ARENA);
	(*n)--;
}

static bool invariant_lock_all(bool block, size_t *n)
{
	lock_all_t la = {.block = block, .ok = true, .n = 0};
	locktab_walk_listed(QLOCK_ARENA, lock_all_visit, &la);
	*n = la.n;
	if (!la.ok) {
		locktab_walk_listed(QLOCK_ARENA, unlock_first_visit, &la.n);
		*n = 0;
	}
	return la.ok;
}

static void invariant_unlock_all(void)
{
	locktab_exit_listed(QLOCK_ARENA);
}

/*
 * Check every arena (focus == NULL) or focus (if full) in full and the
 * others only counted, then R3 and R4.  Returns false, having checked nothing, when
 * block is false and an arena lock was busy.
 */
static bool invariant_global(invariant_report_t *r, vmem_t *focus, bool full,
    bool block)
{
	vmem_tag_census_t c;
	size_t narenas;
	/* The hook (block false) only tries the list lock, never waits; it
	 * does not come here from inside a populate, whose lock ranks above
	 * the list lock (invariant_after_op). */
	if (block)
		qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
	else if (!qlock_tryenter_any(&vmem_list_lock, QLOCK_VMEM_LIST))
		return false;
	if (!invariant_lock_all(block, &narenas)) {
		qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
		return false;
	}
	vmem_tag_census(&c);
	/* No malloc here: the hook may run in any thread at a fork. */
	invariant_link_t links[INVARIANT_LINKS_MAX];
	invariant_census_t k = {.r = r, .exact = true, .links = links,
	    .cap = INVARIANT_LINKS_MAX};
	(void)narenas;
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next) {
		invariant_tally_t t;
		size_t bound = invariant_bound(vmp, c.created);
		if (focus == NULL || (vmp == focus && full))
			(void)invariant_arena_full(vmp, r, bound, &t);
		else
			invariant_arena_tally(vmp, bound, &t);
		invariant_census_arena(&k, vmp, &t);
	}
	vmem_tag_lock_enter();
	invariant_census_close(&k, c.created + 1);
	vmem_tag_lock_exit();
	invariant_unlock_all();
	/* After the arena locks, which rank above the populate lock: even a
	 * trylock is taken in rank order here (Helgrind's lock-order graph
	 * counts trylocks too). */
	invariant_populator(r);
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
	return true;
}

size_t invariant_check_all(invariant_report_t *r)
{
	size_t before = r->count;
	(void)invariant_global(r, NULL, true, true);
	return r->count - before;
}

/* ---- the hook ------------------------------------------------------------ */

#define INVARIANT_EVERY_UNSET UINT32_MAX
#define INVARIANT_LOCK_TRIES 4

#define INVARIANT_SEGS_UNSET SIZE_MAX
#define INVARIANT_SEGS_DEFAULT 1024

static _Atomic unsigned invariant_every_k = INVARIANT_EVERY_UNSET;
static _Atomic size_t invariant_segs_max_n = INVARIANT_SEGS_UNSET;
static _Atomic uint64_t invariant_ops;

unsigned invariant_every(void)
{
	unsigned k = atomic_load(&invariant_every_k);
	if (k != INVARIANT_EVERY_UNSET)
		return k;
	const char *env = getenv("QUANTA_CHECK_EVERY");
	k = 1;
	if (env != NULL && *env != '\0') {
		char *end;
		unsigned long v = strtoul(env, &end, 10);
		if (*end == '\0' && v < INVARIANT_EVERY_UNSET)
			k = (unsigned)v;
	}
	unsigned unset = INVARIANT_EVERY_UNSET;
	(void)atomic_compare_exchange_strong(&invariant_every_k, &unset, k);
	return atomic_load(&invariant_every_k);
}

void invariant_set_every(unsigned k)
{
	atomic_store(&invariant_every_k, k);
}

size_t invariant_segs_max(void)
{
	size_t n = atomic_load(&invariant_segs_max_n);
	if (n != INVARIANT_SEGS_UNSET)
		return n;
	const char *env = getenv("QUANTA_CHECK_SEGS");
	n = INVARIANT_SEGS_DEFAULT;
	if (env != NULL && *env != '\0') {
		char *end;
		unsigned long long v = strtoull(env, &end, 10);
		if (*end == '\0' && v < INVARIANT_SEGS_UNSET)
			n = (size_t)v;
	}
	size_t unset = INVARIANT_SEGS_UNSET;
	(void)atomic_compare_exchange_strong(&invariant_segs_max_n, &unset, n);
	return atomic_load(&invariant_segs_max_n);
}

void invariant_set_segs_max(size_t n)
{
	atomic_store(&invariant_segs_max_n, n);
}

/* Whether a structure of about n tags is checked at hook call number op. */
static bool invariant_size_due(size_t n, uint64_t op, size_t max)
{
	return max == 0 || n <= max || op % (n / max + 1) == 0;
}

void invariant_after_op(vmem_t *vmp)
{
	unsigned k = invariant_every();
	if (k == 0)
		return;
	uint64_t op = atomic_fetch_add(&invariant_ops, 1) + 1;
	if (op % k != 0)
		return;
	op /= k;
	size_t max = invariant_segs_max();
	vmem_tag_census_t c;
	vmem_tag_census(&c);
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	size_t segs = 2 * vmp->ar_htab_count + 64; /* about: one free each */
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	bool arena_due = invariant_size_due(segs, op, max);
	/* Inside a populate (this thread holds the populate lock, ranked
	 * above the list lock) the global check would take locks out of
	 * order; the arena alone is checked, the rest at a later operation. */
	bool global_due = invariant_size_due(c.created, op, max) &&
	    !vmem_populating_self();
	if (!arena_due && !global_due)
		return;
	invariant_report_t report;
	invariant_report_t *r = &report;
	invariant_report_init(r);
	bool done = !global_due;
	for (int i = 0; i < INVARIANT_LOCK_TRIES && !done; i++)
		done = invariant_global(r, vmp, arena_due, false);
	if (!done || !global_due)
		(void)invariant_check_arena(vmp, r);
	if (r->count != 0) {
		(void)fprintf(stderr, "quanta: invariant violated after an "
		    "operation on arena \"%s\":\n", vmp->ar_name);
		invariant_report_print(r, stderr, 0);
		(void)fflush(stderr);
		abort();
	}
}
