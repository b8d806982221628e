/*
 * White-box tests of the arena: the tag reserve and populate, the hash that
 * rescales inline, the heap's growth in place, VM_SLEEP waits, and several
 * threads sharing one arena.  They read the internal structures
 * (vmem_impl.h) to assert what the public API cannot show.
 */
#include "qtest.h"

#include <pthread.h>
#include <stdatomic.h>

#include "vmem.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#define BASE ((uintptr_t)0x10000000)
#define ADDR(x) ((void *)(uintptr_t)(x))

static vmem_t *fake_arena(const char *name, size_t size, size_t quantum)
{
	vmem_t *vmp = vmem_create(name, ADDR(BASE), size, quantum, NULL, NULL,
	    NULL, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	return vmp;
}

static vmem_stats_t stats_of(vmem_t *vmp)
{
	vmem_stats_t st;
	vmem_stats(vmp, &st);
	return st;
}

/* ---- the tag reserve ------------------------------------------------------ */

QTEST(every_arena_holds_minfree_spares_after_an_operation)
{
	vmem_t *vmp = fake_arena("res_min", 1 << 20, 16);
	QT_TRUE(stats_of(vmp).vs_spare_tags >= VMEM_MINFREE);
	for (int i = 0; i < 200; i++)
		QT_TRUE(vmem_alloc(vmp, 16, VM_NOSLEEP) != NULL);
	/* Each allocation reserved MINFREE first and then consumed one. */
	QT_TRUE(stats_of(vmp).vs_spare_tags >= VMEM_MINFREE - 1);
	QT_TRUE(vmem_seg_arena->ar_nspares >= VMEM_SEGS_PER_OP);
	QT_TRUE(vmem_internal_arena->ar_nspares >= VMEM_SEGS_PER_OP);
	QT_TRUE(vmem_heap_arena()->ar_nspares >= VMEM_SEGS_PER_OP);
}

QTEST(populate_makes_a_batch_of_tags_when_the_global_list_runs_dry)
{
	vmem_tag_census_t before, after;
	vmem_t *vmp = fake_arena("res_pop", (size_t)1 << 30, 16);
	vmem_tag_census(&before);
	size_t batch = VMEM_POPULATE_BYTES / sizeof(vmem_seg_t);
	/* Consume more tags than the global list and one batch hold. */
	size_t n = before.global_free + batch + 16;
	for (size_t i = 0; i < n; i++)
		QT_TRUE(vmem_alloc(vmp, 16, VM_NOSLEEP) != NULL);
	vmem_tag_census(&after);
	QT_TRUE(after.created > before.created);
	QT_EQ((after.created - before.created) % batch, 0);
	QT_EQ(stats_of(vmp).vs_populate_fail, 0);
	/* The tag arena handed out whole batches. */
	QT_EQ(vmem_size(vmem_seg_arena, VMEM_ALLOC),
	    (after.created - before.created) / batch * VMEM_POPULATE_BYTES);
}

/*
 * Drain the global list with the tag arena refusing: the allocation that
 * needs a populate fails with NULL, counts populate_fail, and leaves the
 * arena as it was; once the tag arena works again the same call succeeds.
 */
#ifndef QUANTA_RELEASE
/*
 * A populate that fails for real: the heap cannot grow (test builds
 * replace the page map; the heap maps at least 1 MiB at a time, an
 * arena's hash table less), so once the heap's free space is used up the
 * tag batch cannot be made.  (Failure injection cannot stand in: it fails
 * the caller's own VM_NOSLEEP requests only, never a populate's.)
 */
#include <sys/mman.h>

static void *map_refused(size_t size)
{
	if (size >= ((size_t)1 << 20))
		return NULL;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

QTEST(failed_populate_fails_the_allocation_and_restores_on_retry)
{
	vmem_t *vmp = fake_arena("res_fail", (size_t)1 << 30, 16);
	plat_pages_map_override = map_refused;
	size_t ok = 0;
	void *p;
	while ((p = vmem_alloc(vmp, 16, VM_NOSLEEP)) != NULL && ok < 1000000)
		ok++;
	QT_PTR_EQ(p, NULL);
	vmem_stats_t st = stats_of(vmp);
	QT_EQ(st.vs_populate_fail, 1);
	QT_EQ(st.vs_fail, 1);
	QT_EQ(st.vs_alloc, ok);
	QT_EQ(st.vs_mem_inuse, ok * 16);
	QT_EQ(st.vs_segs_free, 1);
	QT_EQ(st.vs_largest_free, ((size_t)1 << 30) - ok * 16);
	/* vmem_add needs two tags: it fails the same way, and counts it. */
	QT_PTR_EQ(vmem_add(vmp, ADDR(BASE + ((size_t)1 << 31)), 4096,
	    VM_NOSLEEP), NULL);
	QT_EQ(stats_of(vmp).vs_fail, 2);
	QT_EQ(stats_of(vmp).vs_populate_fail, 2);
	QT_EQ(stats_of(vmp).vs_spans, 1);
	plat_pages_map_override = NULL;
	QT_EQ((uintptr_t)vmem_alloc(vmp, 16, VM_NOSLEEP), BASE + ok * 16);
	QT_EQ(stats_of(vmp).vs_populate_fail, 2);
	for (size_t i = 0; i <= ok; i++)
		vmem_free(vmp, ADDR(BASE + i * 16), 16);
	QT_EQ(stats_of(vmp).vs_segs_free, 1);
	QT_EQ(vmem_size(vmp, VMEM_FREE), (size_t)1 << 30);
}

struct unfailer {
	vmem_t *vmp;
	void *got;
};

/* Once the sleeper waits, pages can be mapped again. */
static void *unfail_after_a_wait(void *varg)
{
	struct unfailer *u = varg;
	while (stats_of(u->vmp).vs_wait == 0)
		usleep(1000);
	plat_pages_map_override = NULL;
	return NULL;
}

/*
 * VM_SLEEP never returns NULL, also when the tags it needs cannot be
 * made: vmem_add and vmem_alloc wait out a failing populate (found by the
 * simulator: vmem_create(..., VM_SLEEP) of a span returned NULL).
 */
QTEST(sleep_add_and_alloc_wait_out_a_failing_populate)
{
	vmem_t *vmp = fake_arena("res_wait", (size_t)1 << 30, 16);
	plat_pages_map_override = map_refused;
	size_t ok = 0;
	while (vmem_alloc(vmp, 16, VM_NOSLEEP) != NULL && ok < 1000000)
		ok++;
	QT_EQ(stats_of(vmp).vs_populate_fail, 1);
	struct unfailer u = {vmp, NULL};
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, unfail_after_a_wait, &u), 0);
	QT_PTR_EQ(vmem_add(vmp, ADDR(BASE + ((size_t)1 << 31)), 4096,
	    VM_SLEEP), ADDR(BASE + ((size_t)1 << 31)));
	QT_EQ(pthread_join(t, NULL), 0);
	vmem_stats_t st = stats_of(vmp);
	QT_TRUE(st.vs_wait >= 1);
	QT_TRUE(st.vs_populate_fail >= 2);
	QT_EQ(st.vs_fail, 1);
	QT_EQ(st.vs_spans, 2);
	/* Instant fit: the smallest list that guarantees a fit, the new
	 * span's. */
	QT_EQ((uintptr_t)vmem_alloc(vmp, 16, VM_SLEEP),
	    BASE + ((size_t)1 << 31));
	vmem_free(vmp, ADDR(BASE + ((size_t)1 << 31)), 16);
	for (size_t i = 0; i < ok; i++)
		vmem_free(vmp, ADDR(BASE + i * 16), 16);
	QT_EQ(vmem_size(vmp, VMEM_FREE), ((size_t)1 << 30) + 4096);
}

#endif /* QUANTA_RELEASE */

/* Tags an arena holds: on its arena list (not the embedded sentinel, rotor
 * or list heads), on its spare list, in its stash. */
static size_t tags_held(vmem_t *vmp)
{
	size_t n = vmp->ar_nspares + vmp->ar_nstash;
	vmem_seg_t *seg0 = &vmp->ar_sentinel;
	for (vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next)
		if (!seg_is_marker(s))
			n++;
	return n;
}

static size_t tags_everywhere(void)
{
	vmem_tag_census_t c;
	size_t n = 0;
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		n += tags_held(vmp);
	vmem_tag_census(&c);
	return n + c.global_free;
}

QTEST(destroy_gives_every_tag_back_and_none_is_lost)
{
	vmem_tag_census_t before, after;
	vmem_tag_census(&before);
	QT_EQ(tags_everywhere(), before.created);
	vmem_t *vmp = fake_arena("res_destroy", 1 << 24, 16);
	for (int i = 0; i < 3000; i++)
		QT_TRUE(vmem_alloc(vmp, 32, VM_NOSLEEP) != NULL);
	size_t held = tags_held(vmp);
	QT_TRUE(held >= 3000);
	vmem_tag_census(&before);
	QT_EQ(tags_everywhere(), before.created);
	vmem_destroy(vmp);
	vmem_tag_census(&after);
	QT_EQ(after.created, before.created);
	QT_TRUE(after.global_free >= before.global_free + held - VMEM_MINFREE);
	QT_EQ(tags_everywhere(), after.created);
}

/* ---- the allocated-segment hash -------------------------------------------- */

QTEST(hash_doubles_past_load_one_and_halves_below_one_half)
{
	vmem_t *vmp = fake_arena("hash_scale", (size_t)1 << 30, 16);
	enum { N = 100000 };
	QT_EQ(stats_of(vmp).vs_hash_buckets, VMEM_HASH_INITIAL);
	for (uintptr_t i = 0; i < N; i++)
		QT_EQ((uintptr_t)vmem_alloc(vmp, 16, VM_NOSLEEP), BASE + i * 16);
	/* Doubling from 16 whenever count > buckets: 131072 holds 100000. */
	QT_EQ(stats_of(vmp).vs_hash_buckets, 131072);
	uint64_t lookups0 = stats_of(vmp).vs_lookup;
	for (uintptr_t i = 0; i < N; i++)
		vmem_free(vmp, ADDR(BASE + i * 16), 16);
	vmem_stats_t st = stats_of(vmp);
	/* Halving below load 1/2 (each after buckets/4 frees) brings it back
	 * to the start. */
	QT_EQ(st.vs_hash_buckets, VMEM_HASH_INITIAL);
	/* Chains stayed short: under 2 extra steps per free on average. */
	QT_TRUE(st.vs_lookup - lookups0 < 2 * (uint64_t)N);
	QT_EQ(st.vs_segs_free, 1);
}

QTEST(hash_lookup_cost_per_free_is_flat_from_1k_to_100k_live)
{
	vmem_t *vmp = fake_arena("hash_flat", (size_t)1 << 32, 16);
	double per_free[2];
	size_t ns[2] = {1000, 100000};
	for (int k = 0; k < 2; k++) {
		size_t n = ns[k];
		for (size_t i = 0; i < n; i++)
			(void)vmem_alloc(vmp, 16, VM_NOSLEEP);
		uint64_t l0 = stats_of(vmp).vs_lookup;
		/* Free in a scattered order (a stride coprime with n). */
		for (size_t j = 0, i = 0; j < n; j++, i = (i + 7919) % n)
			vmem_free(vmp, ADDR(BASE + i * 16), 16);
		per_free[k] = (double)(stats_of(vmp).vs_lookup - l0) / (double)n;
	}
	/* Chain steps per free: bounded by the load factor, whatever n. */
	QT_TRUE(per_free[0] < 2.0);
	QT_TRUE(per_free[1] < 2.0);
}

/* ---- the heap ------------------------------------------------------------ */

QTEST(heap_arena_memory_is_real_and_grows_on_demand)
{
	vmem_t *heap = vmem_heap_arena();
	size_t total0 = vmem_size(heap, VMEM_ALLOC | VMEM_FREE);
	size_t big = (size_t)8 << 20;
	char *p = vmem_alloc(heap, big, VM_NOSLEEP);
	QT_TRUE(p != NULL);
	memset(p, 0x5a, big);
	QT_EQ(p[big - 1], 0x5a);
	QT_TRUE(vmem_size(heap, VMEM_ALLOC | VMEM_FREE) >= total0 + big);
	QT_EQ(vmem_quantum(heap), (size_t)sysconf(_SC_PAGESIZE));
	vmem_free(heap, p, big);
}

/*
 * A request no growth could satisfy maps nothing: the heap grows by
 * size + phase + align, and for a size near SIZE_MAX that sum wraps to a
 * few pages.  Unchecked, the heap mapped a chunk (1 MiB) for it, kept it,
 * and then failed the request anyway — and a VM_SLEEP caller would have
 * mapped another chunk at every retry.
 */
QTEST(heap_request_whose_growth_would_wrap_fails_and_maps_nothing)
{
	vmem_t *heap = vmem_heap_arena();
	size_t pg = vmem_quantum(heap);
	void *warm = vmem_alloc(heap, pg, VM_NOSLEEP);
	QT_TRUE(warm != NULL);
	vmem_free(heap, warm, pg);
	size_t total0 = vmem_size(heap, VMEM_SPAN);
	uint64_t fail0 = stats_of(heap).vs_fail;
	QT_TRUE(total0 > 0);
	/* size + align = 2^64 + 4 pages: wraps to 4 pages. */
	size_t size = SIZE_MAX - 4 * pg + 1;
	QT_PTR_EQ(vmem_xalloc(heap, size, 8 * pg, 0, 0, NULL, NULL,
	    VM_NOSLEEP), NULL);
	QT_EQ(vmem_size(heap, VMEM_SPAN), total0);
	/* The same with a phase carrying the sum over. */
	QT_PTR_EQ(vmem_xalloc(heap, SIZE_MAX - 8 * pg + 1, 8 * pg, 4 * pg, 0,
	    NULL, NULL, VM_NOSLEEP), NULL);
	QT_EQ(vmem_size(heap, VMEM_SPAN), total0);
	QT_EQ(stats_of(heap).vs_fail, fail0 + 2);
}

/* ---- VM_SLEEP --------------------------------------------------------------- */

struct sleeper {
	vmem_t *vmp;
	void *got;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *s = arg;
	s->got = vmem_alloc(s->vmp, 64, VM_SLEEP);
	return NULL;
}

QTEST(sleep_allocation_waits_for_a_free_and_counts_the_wait)
{
	vmem_t *vmp = fake_arena("sleep", 256, 64);
	void *a[4];
	for (int i = 0; i < 4; i++)
		a[i] = vmem_alloc(vmp, 64, VM_SLEEP);
	QT_PTR_EQ(vmem_alloc(vmp, 64, VM_NOSLEEP), NULL);
	struct sleeper s = {vmp, NULL};
	pthread_t t;
	QT_EQ(pthread_create(&t, NULL, sleeper_main, &s), 0);
	while (stats_of(vmp).vs_wait == 0)
		usleep(1000);
	vmem_free(vmp, a[2], 64);
	QT_EQ(pthread_join(t, NULL), 0);
	QT_PTR_EQ(s.got, a[2]);
	QT_TRUE(stats_of(vmp).vs_wait >= 1);
}

/* ---- threads sharing an arena -------------------------------------------------- */

#define MT_THREADS 4
#define MT_OPS 20000
#define MT_QUANTA 4096

struct mt_arg {
	vmem_t *vmp;
	_Atomic int *owner; /* per quantum: 0 free, else thread id + 1 */
	int id;
	int errors;
};

static void *mt_main(void *varg)
{
	struct mt_arg *a = varg;
	void *held[64];
	size_t sz[64];
	int n = 0;
	unsigned seed = (unsigned)a->id * 2654435761u + 1;
	int policies[] = {VM_NOSLEEP, VM_NOSLEEP | VM_BESTFIT,
	    VM_NOSLEEP | VM_FIRSTFIT, VM_NOSLEEP | VM_NEXTFIT};
	for (int op = 0; op < MT_OPS; op++) {
		seed = seed * 1103515245u + 12345u;
		if (n < 64 && (seed >> 20) % 3 != 0) {
			size_t q = 1 + (seed >> 8) % 8;
			void *p = vmem_alloc(a->vmp, q * 16, policies[op % 4]);
			if (p == NULL)
				continue;
			size_t first = ((uintptr_t)p - BASE) / 16;
			for (size_t i = 0; i < q; i++) {
				int expect = 0;
				if (!atomic_compare_exchange_strong(
				    &a->owner[first + i], &expect, a->id + 1))
					a->errors++;
			}
			held[n] = p;
			sz[n++] = q;
		} else if (n > 0) {
			int k = (int)((seed >> 4) % (unsigned)n);
			size_t first = ((uintptr_t)held[k] - BASE) / 16;
			for (size_t i = 0; i < sz[k]; i++)
				atomic_store(&a->owner[first + i], 0);
			vmem_free(a->vmp, held[k], sz[k] * 16);
			held[k] = held[--n];
			sz[k] = sz[n];
		}
	}
	while (n > 0) {
		n--;
		size_t first = ((uintptr_t)held[n] - BASE) / 16;
		for (size_t i = 0; i < sz[n]; i++)
			atomic_store(&a->owner[first + i], 0);
		vmem_free(a->vmp, held[n], sz[n] * 16);
	}
	return NULL;
}

QTEST(threads_sharing_an_arena_never_get_overlapping_ranges)
{
	vmem_t *vmp = fake_arena("mt", MT_QUANTA * 16, 16);
	static _Atomic int owner[MT_QUANTA];
	struct mt_arg args[MT_THREADS];
	pthread_t t[MT_THREADS];
	for (int i = 0; i < MT_THREADS; i++) {
		args[i] = (struct mt_arg){vmp, owner, i, 0};
		QT_EQ(pthread_create(&t[i], NULL, mt_main, &args[i]), 0);
	}
	for (int i = 0; i < MT_THREADS; i++) {
		QT_EQ(pthread_join(t[i], NULL), 0);
		QT_EQ(args[i].errors, 0);
	}
	vmem_stats_t st = stats_of(vmp);
	QT_EQ(st.vs_mem_inuse, 0);
	QT_EQ(st.vs_alloc, st.vs_free);
	/* With the rotor moved off, nothing keeps free pieces apart. */
	QT_TRUE(st.vs_segs_free <= 2);
	QT_EQ(st.vs_free_bytes, MT_QUANTA * 16);
}

/* ---- counters that are exact ------------------------------------------------ */

/*
 * vs_lookup counts hash-chain steps past the bucket head.  Chains are
 * insert-at-head, so freeing in allocation order walks, for each address,
 * past every later allocation still hashed into the same bucket.
 */
QTEST(lookup_counter_counts_exactly_the_chain_steps_walked)
{
	enum { N = 12 };
	vmem_t *vmp = fake_arena("lookup_exact", 1 << 20, 16);
	uintptr_t a[N];
	for (int i = 0; i < N; i++)
		a[i] = (uintptr_t)vmem_alloc(vmp, 16, VM_NOSLEEP);
	QT_EQ(stats_of(vmp).vs_hash_buckets, VMEM_HASH_INITIAL);
	uint64_t expect = 0;
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			expect += vmem_hash_index(vmp, a[i]) ==
			    vmem_hash_index(vmp, a[j]);
	uint64_t before = stats_of(vmp).vs_lookup;
	for (int i = 0; i < N; i++)
		vmem_free(vmp, ADDR(a[i]), 16);
	QT_EQ(stats_of(vmp).vs_lookup - before, expect);
}

/* vs_search counts free-list members examined by a searching policy. */
QTEST(search_counter_counts_free_list_members_examined)
{
	vmem_t *vmp = fake_arena("search_exact", 0x1000, 16);
	void *a = vmem_alloc(vmp, 0x100, VM_NOSLEEP);
	void *b = vmem_alloc(vmp, 0x100, VM_NOSLEEP);
	(void)b;
	vmem_free(vmp, a, 0x100); /* free: [a, 0x100) and the tail 0xe00 */
	uint64_t s0 = stats_of(vmp).vs_search;
	/* First fit from 0x100's own list (8): a's piece is the first member. */
	QT_PTR_EQ(vmem_alloc(vmp, 0x100, VM_FIRSTFIT | VM_NOSLEEP), a);
	QT_EQ(stats_of(vmp).vs_search - s0, 1);
	/* Instant fit of a power of two takes a list head: no search. */
	s0 = stats_of(vmp).vs_search;
	QT_TRUE(vmem_alloc(vmp, 0x100, VM_NOSLEEP) != NULL);
	QT_EQ(stats_of(vmp).vs_search - s0, 0);
}

/* ---- what a bad free says ------------------------------------------------------ */

struct bad_free_arg {
	int kind;
};

static void bad_free_of_kind(void *varg)
{
	struct bad_free_arg *arg = varg;
	vmem_t *vmp = fake_arena("badfree", 0x1000, 16);
	char *a = vmem_alloc(vmp, 0x40, VM_NOSLEEP);
	char *b = vmem_alloc(vmp, 0x40, VM_NOSLEEP);
	(void)b;
	vmem_free(vmp, a, 0x40);
	if (arg->kind == 0)
		vmem_free(vmp, a, 0x40);         /* a again: already free */
	else if (arg->kind == 1)
		vmem_free(vmp, b + 0x10, 0x10);  /* inside b */
	else
		vmem_free(vmp, ADDR(0x10), 0x10); /* no span of the arena */
}

QTEST(bad_free_says_whether_the_address_is_free_interior_or_foreign)
{
	struct bad_free_arg arg = {0};
	QT_TRUE(qt_expect_abort(bad_free_of_kind, &arg,
	    "vmem_free(arena \"badfree\", addr 0x10000000, size 0x40): bad "
	    "free: no allocated segment starts there (already free)"));
	arg.kind = 1;
	QT_TRUE(qt_expect_abort(bad_free_of_kind, &arg,
	    "(inside an allocated segment)"));
	arg.kind = 2;
	QT_TRUE(qt_expect_abort(bad_free_of_kind, &arg,
	    "(not in any span of the arena)"));
}

/* ---- what a panic writes ------------------------------------------------------- */

static void panic_short(void *arg)
{
	(void)arg;
	vmem_panic("short message %d", 7);
}

static void panic_long(void *arg)
{
	char a[601];
	(void)arg;
	memset(a, 'a', 600);
	a[600] = '\0';
	vmem_panic("%s", a);
}

/* True iff s begins with prefix. */
static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* One line: "quanta: ", the message, one newline, and nothing in between
 * (what a tool running the test adds after the abort may follow). */
QTEST(a_panic_writes_its_message_and_one_newline_and_nothing_more)
{
	QT_TRUE(qt_expect_abort(panic_short, NULL, "short message 7"));
	QT_TRUE(starts_with(qt_last_stderr(), "quanta: short message 7\n"));
}

/* The line fits the 512-byte buffer: 510 characters, then the newline. */
QTEST(a_panic_longer_than_its_buffer_is_cut_to_one_line_of_511_bytes)
{
	char want[512];
	QT_TRUE(qt_expect_abort(panic_long, NULL, "quanta: aaaa"));
	memcpy(want, "quanta: ", 8);
	memset(want + 8, 'a', 502);
	want[510] = '\n';
	want[511] = '\0';
	QT_TRUE(starts_with(qt_last_stderr(), want));
}

/* VMEM_SPAN alone is the total; with VMEM_ALLOC or VMEM_FREE it adds
 * nothing to them. */
QTEST(vmem_size_span_alone_is_total_and_adds_nothing_to_alloc_or_free)
{
	vmem_t *vmp = fake_arena("size_span", 0x1000, 16);
	QT_TRUE(vmem_alloc(vmp, 0x100, VM_NOSLEEP) != NULL);
	QT_EQ(vmem_size(vmp, VMEM_SPAN), 0x1000);
	QT_EQ(vmem_size(vmp, VMEM_SPAN | VMEM_ALLOC), 0x100);
	QT_EQ(vmem_size(vmp, VMEM_SPAN | VMEM_FREE), 0xf00);
	QT_EQ(vmem_size(vmp, VMEM_SPAN | VMEM_ALLOC | VMEM_FREE), 0x1000);
}

/* ---- import and give-back with a caching source ------------------------------- */

/*
 * A source with quantum caches: spans imported through vmem_alloc bypass
 * them (vmem_xalloc), so they must go back through vmem_xfree, not through
 * vmem_free, which would hand them to a quantum cache that never gave them.
 */
QTEST(spans_of_a_caching_source_go_back_by_xfree)
{
	vmem_t *src = vmem_create("src_qc", ADDR(BASE), 1 << 20, 4096, NULL,
	    NULL, NULL, 4 * 4096, VM_SLEEP);
	vmem_t *imp = vmem_create("imp_qc", NULL, 0, 4096, vmem_alloc,
	    vmem_free, src, 0, VM_SLEEP);
	QT_TRUE(src != NULL && imp != NULL);
	void *p = vmem_alloc(imp, 4096, VM_NOSLEEP);
	QT_TRUE(p != NULL);
	QT_EQ(vmem_size(imp, VMEM_SPAN), 4096);
	vmem_free(imp, p, 4096);
	QT_EQ(vmem_size(imp, VMEM_SPAN), 0);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 0);
}

/* Destroy gives every imported span back, live allocations or not. */
QTEST(destroy_gives_imported_spans_back_even_with_live_allocations)
{
	vmem_t *src = fake_arena("src_destroy", 1 << 20, 4096);
	vmem_t *imp = vmem_create("imp_destroy", NULL, 0, 16, vmem_alloc,
	    vmem_free, src, 0, VM_SLEEP);
	QT_TRUE(imp != NULL);
	QT_TRUE(vmem_alloc(imp, 100, VM_NOSLEEP) != NULL);
	QT_TRUE(vmem_alloc(imp, 8000, VM_NOSLEEP) != NULL);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 4096 + 8192);
	vmem_destroy(imp);
	QT_EQ(vmem_size(src, VMEM_ALLOC), 0);
}

/* ---- constrained instant fit ---------------------------------------------------- */

/*
 * A constrained instant fit starts at the lowest list whose every member
 * holds the request once aligned (size + align - quantum), even when a
 * piece in a lower list would also fit: free pieces of 0x30 (list 5, at an
 * aligned address) and 0x50 (list 6); xalloc(0x20, align 0x20) needs 0x30,
 * not a power of two, so list 6: the 0x50 piece.
 */
QTEST(constrained_instant_fit_takes_the_list_that_guarantees_a_fit)
{
	vmem_t *vmp = fake_arena("cinstant", 0x1000, 16);
	uintptr_t b = BASE;
	/* Lay out: [0x30 free][0x10 used][0x50 free][0x10 used][rest]. */
	QT_EQ((uintptr_t)vmem_alloc(vmp, 0x30, VM_NOSLEEP), b);
	QT_EQ((uintptr_t)vmem_alloc(vmp, 0x10, VM_NOSLEEP), b + 0x30);
	QT_EQ((uintptr_t)vmem_alloc(vmp, 0x50, VM_NOSLEEP), b + 0x40);
	QT_EQ((uintptr_t)vmem_alloc(vmp, 0x10, VM_NOSLEEP), b + 0x90);
	QT_EQ((uintptr_t)vmem_alloc(vmp, 0x1000 - 0xa0, VM_NOSLEEP), b + 0xa0);
	vmem_free(vmp, ADDR(b), 0x30);
	vmem_free(vmp, ADDR(b + 0x40), 0x50);
	QT_EQ((uintptr_t)vmem_xalloc(vmp, 0x20, 0x20, 0, 0, NULL, NULL,
	    VM_NOSLEEP), b + 0x40);
	/* First fit walks list 5 from its head: the 0x30 remainder at
	 * b + 0x60 went there last (LIFO), ahead of the piece at b. */
	QT_EQ((uintptr_t)vmem_xalloc(vmp, 0x20, 0x20, 0, 0, NULL, NULL,
	    VM_NOSLEEP | VM_FIRSTFIT), b + 0x60);
	QT_EQ((uintptr_t)vmem_xalloc(vmp, 0x20, 0x20, 0, 0, NULL, NULL,
	    VM_NOSLEEP | VM_FIRSTFIT), b);
}

static void xalloc_overflow_sleep(void *arg)
{
	(void)arg;
	vmem_t *vmp = fake_arena("xoverflow", 0x1000, 16);
	(void)vmem_xalloc(vmp, SIZE_MAX - 4, 0, 0, 0, NULL, NULL, VM_SLEEP);
}

/* VM_SLEEP cannot return NULL: a size that overflows is a bad call. */
QTEST(xalloc_of_an_overflowing_size_with_sleep_is_a_bad_call)
{
	QT_TRUE(qt_expect_abort(xalloc_overflow_sleep, NULL,
	    "vmem_xalloc(arena \"xoverflow\", size 0xfffffffffffffffb"));
	QT_STR_CONTAINS(qt_last_stderr(), "size overflows");
}

/* ---- quantum caches live and die with their arena ------------------------------ */

static size_t caches_named_like(const char *prefix)
{
	size_t n = 0;
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next)
		n += strncmp(umem_cache_name(cp), prefix, strlen(prefix)) == 0;
	return n;
}

QTEST(an_arenas_quantum_caches_are_created_and_destroyed_with_it)
{
	vmem_t *vmp = vmem_create("qclife", ADDR(BASE), 1 << 20, 16, NULL,
	    NULL, NULL, 4 * 16, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	QT_EQ(caches_named_like("qclife_"), 4);
	QT_TRUE(vmem_alloc(vmp, 48, VM_NOSLEEP) != NULL);
	vmem_destroy(vmp);
	QT_EQ(caches_named_like("qclife_"), 0);
}

QTEST_MAIN()
