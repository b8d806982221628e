/*
 * The lock table (src/locktab.h): the mutexes of arenas and caches packed
 * one cache line each into a few pages, slots given back on destroy and
 * handed out again, listed locks found by a walk of the table.
 *
 * Why it matters: a fork writes every such lock on both sides, and each
 * page written costs a copy-on-write fault; packed, N arenas and caches
 * cost N x 3 x 64 bytes of pages, not N pages.  Each test runs in a fresh
 * child (qtest.h), so the table holds only the bootstrap's locks at the
 * start.
 */
#include "qtest.h"

#include <sys/wait.h>
#include <unistd.h>

#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"
#include "vmem_impl.h"

#define NOBJ 300

static vmem_t *arenas[NOBJ];
static umem_cache_t *caches[NOBJ];

/* n arenas without quantum caches, each with one cache of 64-byte objects. */
static void make(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "lt_%zu", i);
		arenas[i] = vmem_create(name, NULL, 0, 16, vmem_alloc,
		    vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
		caches[i] = umem_cache_create(name, 64, 0, NULL, NULL, NULL,
		    NULL, arenas[i], 0);
		QT_TRUE(arenas[i] != NULL && caches[i] != NULL);
	}
}

static void unmake(size_t n)
{
	for (size_t i = n; i-- > 0;) {
		umem_cache_destroy(caches[i]);
		vmem_destroy(arenas[i]);
	}
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Distinct pages among the n addresses of v (sorted in place). */
static size_t distinct_pages(uintptr_t *v, size_t n)
{
	size_t page = plat_page_size(), pages = 0;
	qsort(v, n, sizeof(v[0]), cmp_uptr);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || v[i] / page != v[i - 1] / page)
			pages++;
	return pages;
}

QTEST(the_locks_of_many_arenas_and_caches_fill_few_pages)
{
	static uintptr_t addr[3 * NOBJ];
	locktab_stats_t st;
	umem_free(umem_alloc(8, UMEM_DEFAULT), 8); /* both bootstraps done */
	locktab_stats(&st);
	QT_EQ(st.lt_free, 0); /* nothing given back yet: slots come in order */
	make(NOBJ);
	for (size_t i = 0; i < NOBJ; i++) {
		addr[3 * i] = (uintptr_t)arenas[i]->ar_lock;
		addr[3 * i + 1] = (uintptr_t)caches[i]->cc_depot_lock;
		addr[3 * i + 2] = (uintptr_t)caches[i]->cc_slab_lock;
		QT_TRUE(locktab_owns(arenas[i]->ar_lock));
	}
	size_t n = 3 * NOBJ, page = plat_page_size();
	size_t bound = (n * LOCKTAB_SLOT_BYTES + page - 1) / page + 1;
	/* Slots fill whole pages in order; the run may start mid-page and
	 * crosses one chunk header: 63 + 900 + 1 slots, 16 pages at most. */
	QT_TRUE(distinct_pages(addr, n) <= bound);
	for (size_t i = 1; i < n; i++)
		QT_TRUE(addr[i] - addr[i - 1] >= LOCKTAB_SLOT_BYTES);
}

QTEST(chunks_are_mapped_as_the_static_one_runs_out)
{
	locktab_stats_t st;
	make(NOBJ);
	locktab_stats(&st);
	size_t per_chunk = LOCKTAB_CHUNK_BYTES / LOCKTAB_SLOT_BYTES - 1;
	size_t beyond = st.lt_carved - LOCKTAB_FIRST_SLOTS;
	QT_TRUE(st.lt_carved > LOCKTAB_FIRST_SLOTS);
	QT_EQ(st.lt_chunks, (beyond + per_chunk - 1) / per_chunk);
	QT_EQ(st.lt_live + st.lt_free, st.lt_carved);
}

#ifndef QUANTA_RELEASE
/* The page map of the failing case: every call fails, and is counted. */
static size_t map_calls, map_last_bytes;

static void *map_refused(size_t size)
{
	map_calls++;
	map_last_bytes = size;
	return NULL;
}

/* True when the table has no free slot and its last chunk is carved out:
 * the next slot needs a new chunk. */
static bool table_full(void)
{
	locktab_stats_t st;
	locktab_stats(&st);
	size_t per_chunk = LOCKTAB_CHUNK_BYTES / LOCKTAB_SLOT_BYTES - 1;
	return st.lt_free == 0 &&
	    st.lt_carved == LOCKTAB_FIRST_SLOTS + st.lt_chunks * per_chunk;
}

/* Take slots until the table is full; they are kept in held[]. */
static size_t fill_table(plat_mutex_t **held, size_t cap)
{
	size_t n = 0;
	while (!table_full()) {
		QT_TRUE(n < cap);
		held[n] = locktab_get();
		QT_TRUE(held[n] != NULL);
		n++;
	}
	return n;
}

QTEST(a_create_whose_lock_cannot_be_mapped_fails_and_keeps_nothing)
{
	static plat_mutex_t *held[2 * LOCKTAB_CHUNK_BYTES / LOCKTAB_SLOT_BYTES];
	size_t cap = sizeof(held) / sizeof(held[0]);
	/* An arena and a cache made and destroyed first: their structures'
	 * room stays in the internal arenas, so only the lock needs a map. */
	make(1);
	unmake(1);
	size_t n = fill_table(held, cap);
	locktab_stats_t before, after;
	locktab_stats(&before);

	plat_pages_map_override = map_refused;
	vmem_t *vm = vmem_create("lt_nomap", (void *)0x1000, 0x1000, 16, NULL,
	    NULL, NULL, 0, VM_NOSLEEP);
	umem_cache_t *cp = umem_cache_create("lt_nomap", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	/* The cache's depot lock takes the one slot given back, its slab
	 * lock finds none: the depot's slot goes back too. */
	locktab_put(held[--n]);
	umem_cache_t *cp1 = umem_cache_create("lt_nomap1", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, 0);
	plat_pages_map_override = NULL;

	QT_TRUE(vm == NULL && cp == NULL && cp1 == NULL);
	QT_EQ(map_calls, 3);
	QT_EQ(map_last_bytes, (LOCKTAB_CHUNK_BYTES + plat_page_size() - 1) /
	    plat_page_size() * plat_page_size());
	locktab_stats(&after);
	QT_EQ(after.lt_chunks, before.lt_chunks);
	QT_EQ(after.lt_carved, before.lt_carved);
	QT_EQ(after.lt_live, before.lt_live - 1);
	QT_EQ(after.lt_free, 1);
	/* With the map back, the same create succeeds. */
	vm = vmem_create("lt_nomap", (void *)0x1000, 0x1000, 16, NULL, NULL,
	    NULL, 0, VM_NOSLEEP);
	QT_TRUE(vm != NULL);
	vmem_destroy(vm);
	while (n > 0)
		locktab_put(held[--n]);
}
#endif

QTEST(a_destroyed_arena_gives_its_slot_to_the_next_one)
{
	vmem_t *a = vmem_create("lt_a", NULL, 0, 16, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 0, VM_SLEEP);
	plat_mutex_t *lock = a->ar_lock;
	locktab_stats_t before, after;
	locktab_stats(&before);
	vmem_destroy(a);
	locktab_stats(&after);
	QT_EQ(after.lt_live, before.lt_live - 1);
	QT_EQ(after.lt_free, before.lt_free + 1);
	vmem_t *b = vmem_create("lt_b", NULL, 0, 16, vmem_alloc, vmem_free,
	    vmem_heap_arena(), 0, VM_SLEEP);
	QT_TRUE(b->ar_lock == lock);
	vmem_destroy(b);
}

QTEST(destroyed_arenas_and_caches_are_rebuilt_on_their_own_slots)
{
	locktab_stats_t base, full, empty, again;
	umem_free(umem_alloc(8, UMEM_DEFAULT), 8); /* both bootstraps done */
	locktab_stats(&base);
	make(NOBJ);
	locktab_stats(&full);
	QT_EQ(full.lt_live, base.lt_live + 3 * NOBJ);
	unmake(NOBJ);
	locktab_stats(&empty);
	QT_EQ(empty.lt_live, base.lt_live);
	QT_EQ(empty.lt_free, full.lt_free + 3 * NOBJ);
	make(NOBJ);
	locktab_stats(&again);
	QT_EQ(again.lt_carved, full.lt_carved);
	QT_EQ(again.lt_chunks, full.lt_chunks);
	QT_EQ(again.lt_live, full.lt_live);
}

struct census {
	size_t n, mine;
};

static void count_arena(void *owner, plat_mutex_t *m, void *arg)
{
	struct census *c = arg;
	const vmem_t *vmp = owner;
	c->n++;
	for (size_t i = 0; i < NOBJ; i++)
		if (vmp == arenas[i] && m == arenas[i]->ar_lock)
			c->mine++;
}

QTEST(the_walk_of_listed_arena_locks_finds_exactly_the_arena_list)
{
	make(NOBJ);
	vmem_destroy(arenas[NOBJ - 1]); /* its slot is free, not listed */
	umem_cache_destroy(caches[NOBJ - 1]);
	arenas[NOBJ - 1] = NULL;
	struct census c = {0, 0};
	size_t listed = 0;
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		listed++;
	locktab_walk_listed(QLOCK_ARENA, count_arena, &c);
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
	QT_EQ(c.n, listed);
	QT_EQ(c.mine, NOBJ - 1);
}

QTEST(a_child_of_a_fork_uses_and_destroys_every_arena_and_cache)
{
	make(NOBJ);
	pid_t pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < NOBJ; i++) {
			void *b = umem_cache_alloc(caches[i], UMEM_DEFAULT);
			if (b == NULL)
				_exit(2);
			umem_cache_free(caches[i], b);
		}
		unmake(NOBJ);
		make(NOBJ);
		_exit(0);
	}
	int status = -1;
	QT_EQ(waitpid(pid, &status, 0), pid);
	QT_TRUE(WIFEXITED(status));
	QT_EQ(WEXITSTATUS(status), 0);
	unmake(NOBJ);
}

QTEST_MAIN()
