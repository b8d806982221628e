/*
 * umem_thread.c — per-thread state of the object caches: thread ids, the
 * slot directory of each cache, and what a departing thread gives back.
 *
 * Theory
 * ------
 * A thread's first use of a cache's magazine layer gives it a thread id
 * from umem_thread_ids, an identifier arena of [1, UMEM_THREADS_MAX] that
 * quanta's own vmem serves (instant fit keeps ids low, so directories stay
 * small).  The id is the value of the thread-specific datum umem_tsd_key;
 * the key's destructor runs when the thread exits, flushes the thread's
 * slot of every cache into that cache's depot and gives the id back.  Ids
 * are unique among live threads, so two threads never share a slot: a slot
 * is written by one thread only, with plain loads and stores.  (Mapping
 * threads onto slots by bits of the thread handle, as some ports do, lets
 * two threads collide on one slot and serialise on its lock; there is no
 * slot lock here to serialise on.)
 *
 * A cache finds slot id-1 in constant time: directory entry (id-1)/64 points
 * to a chunk of 64 slots, allocated (zeroed, 64-byte aligned) the first
 * time a thread of that range uses the cache and published with a
 * compare-and-swap, so two first uses of one chunk agree on one chunk.
 *
 * A thread beyond UMEM_THREADS_MAX live ones gets no id and no slot: it
 * allocates from the depot and the slabs directly.  A UMC_NOMAGAZINE cache
 * has no slots at all.
 *
 * Locking.  The cache-list lock is held while a departing thread flushes
 * its slots, so that no cache is destroyed meanwhile; a cache destroy takes
 * the cache off the list first, so a departing thread never sees it again.
 * The flush calls into the depot and the slabs (their own locks, in that
 * order) and may call destructors: those must not create or destroy caches.
 */
#include <string.h>

#include "umem_impl.h"

plat_tsd_key_t umem_tsd_key;
static vmem_t *umem_thread_ids;

static void thread_slots_flush(uintptr_t id)
{
	VMEM_ASSERT(id >= 1 && id <= UMEM_THREADS_MAX);
	size_t c = (id - 1) / UMEM_SLOTS_PER_CHUNK;
	size_t s = (id - 1) % UMEM_SLOTS_PER_CHUNK;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		umem_slot_chunk_t *ch = atomic_load_explicit(&cp->cc_slotdir[c],
		    memory_order_acquire);
		if (ch != NULL)
			umem_slot_flush(cp, &ch->sc_slot[s]);
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

/* The thread-specific datum's destructor: the thread is exiting. */
static void thread_exit(void *value)
{
	uintptr_t id = (uintptr_t)value;
	VMEM_ASSERT(id != 0);
	thread_slots_flush(id);
	vmem_free(umem_thread_ids, (void *)id, 1);
	/* A destructor that the flush ran may have used a cache again and
	 * taken a new id: then this runs again for that one. */
	VMEM_ASSERT(plat_tsd_get(umem_tsd_key) != value);
}

void umem_thread_init(void)
{
	if (!plat_tsd_key_create(&umem_tsd_key, thread_exit))
		vmem_panic("umem: no thread-specific data key left");
	umem_thread_ids = vmem_create("umem_thread_ids", (void *)(uintptr_t)1,
	    UMEM_THREADS_MAX, 1, NULL, NULL, NULL, 0,
	    VMC_IDENTIFIER | VM_SLEEP);
	if (umem_thread_ids == NULL)
		vmem_panic("umem: cannot create the thread id arena");
	VMEM_ASSERT(vmem_quantum(umem_thread_ids) == 1);
}

static uintptr_t thread_id_get(void)
{
	uintptr_t id = (uintptr_t)plat_tsd_get(umem_tsd_key);
	if (id != 0)
		return id;
	void *p = vmem_alloc(umem_thread_ids, 1, VM_NOSLEEP);
	if (p == NULL)
		return 0;
	id = (uintptr_t)p;
	VMEM_ASSERT(id >= 1 && id <= UMEM_THREADS_MAX);
	plat_tsd_set(umem_tsd_key, (void *)id);
	return id;
}

uintptr_t umem_thread_id(void)
{
	return (uintptr_t)plat_tsd_get(umem_tsd_key);
}

umem_slot_t *umem_slot_find_slow(umem_cache_t *cp)
{
	if (cp->cc_cflags & UMC_NOMAGAZINE)
		return NULL;
	uintptr_t id = thread_id_get();
	if (id == 0)
		return NULL;
	size_t c = (id - 1) / UMEM_SLOTS_PER_CHUNK;
	umem_slot_chunk_t *ch = atomic_load_explicit(&cp->cc_slotdir[c],
	    memory_order_acquire);
	if (ch == NULL) {
		umem_slot_chunk_t *mine = umem_meta_alloc(sizeof(*mine),
		    UMEM_CACHE_LINE);
		if (mine == NULL)
			return NULL;
		memset(mine, 0, sizeof(*mine));
		umem_slot_chunk_t *expected = NULL;
		QANN_PUBLISH(&cp->cc_slotdir[c]);
		if (atomic_compare_exchange_strong(&cp->cc_slotdir[c],
		    &expected, mine)) {
			ch = mine;
		} else {
			umem_meta_free(mine, sizeof(*mine));
			ch = expected;
		}
	}
	VMEM_ASSERT(ch != NULL && ((uintptr_t)ch & (UMEM_CACHE_LINE - 1)) == 0);
	QANN_RECEIVE(&cp->cc_slotdir[c]);
	return &ch->sc_slot[(id - 1) % UMEM_SLOTS_PER_CHUNK];
}

void umem_thread_flush_self(void)
{
	uintptr_t id = umem_thread_id();
	if (id != 0)
		thread_slots_flush(id);
}

/* Every slot of a cache that is being destroyed (no thread uses it). */
void umem_slots_flush_all(umem_cache_t *cp)
{
	for (size_t c = 0; c < UMEM_SLOT_CHUNKS; c++) {
		umem_slot_chunk_t *ch = atomic_load(&cp->cc_slotdir[c]);
		if (ch == NULL)
			continue;
		for (size_t s = 0; s < UMEM_SLOTS_PER_CHUNK; s++)
			umem_slot_flush(cp, &ch->sc_slot[s]);
	}
}

void umem_slots_fini(umem_cache_t *cp)
{
	for (size_t c = 0; c < UMEM_SLOT_CHUNKS; c++) {
		umem_slot_chunk_t *ch = atomic_exchange(&cp->cc_slotdir[c],
		    NULL);
		if (ch == NULL)
			continue;
		VMEM_ASSERT(ch->sc_slot[0].sl_loaded == NULL);
		umem_meta_free(ch, sizeof(*ch));
	}
}

/* ---- the child of a fork ----------------------------------------------- */

#define UMEM_ID_WORDS (UMEM_THREADS_MAX / 64u)

/* vmem_walk callback: mark the ids of a piece of the id arena. */
static void thread_ids_mark(void *arg, void *start, size_t size)
{
	uint64_t *map = arg;
	uintptr_t id = (uintptr_t)start;
	for (size_t k = 0; k < size && id + k <= UMEM_THREADS_MAX; k++)
		map[(id + k - 1) / 64] |= (uint64_t)1 << ((id + k - 1) % 64);
}

/*
 * The slots of a thread the child lacks: each gives back every magazine it
 * holds, as at a thread exit — a slot its thread was in the middle of
 * changing (sl_busy) too, from where the slow paths keep them findable
 * (umem_slot_child_reclaim, umem_mag.c): no magazine and no buffer of a
 * lost thread's slot stays lost.  The counters stay, like a flush's: the
 * buffers the thread had taken are with its callers, gone with it.
 */
static void thread_slots_reclaim(uintptr_t id)
{
	/* The child of a fork, single-threaded: a lost thread's id only. */
	VMEM_ASSERT(id >= 1 && id <= UMEM_THREADS_MAX && id != umem_thread_id());
	size_t c = (id - 1) / UMEM_SLOTS_PER_CHUNK;
	size_t s = (id - 1) % UMEM_SLOTS_PER_CHUNK;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		umem_slot_chunk_t *ch = atomic_load(&cp->cc_slotdir[c]);
		if (ch != NULL)
			umem_slot_child_reclaim(cp, &ch->sc_slot[s]);
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

/*
 * In the child of a fork only the forking thread lives on; every other id
 * in use belongs to a thread that will never run its exit destructor.  Its
 * slots are reclaimed and its id goes back to the arena, as if it had
 * exited.  Its slow paths never hold a buffer in a local between locks,
 * so nothing of a slot is lost with it (umem_slot_child_reclaim); what it
 * can still take along is memory no allocator structure holds yet — a new
 * empty magazine, a slab being imported (docs/fork.md).  The forking
 * thread's own slots are whole: it is in fork(), on no slow path.  The
 * child is single-threaded here.
 */
void umem_thread_child_fixup(void)
{
	if (!atomic_load(&umem_ready))
		return;
	uint64_t used[UMEM_ID_WORDS];
	memset(used, 0, sizeof(used));
	vmem_walk(umem_thread_ids, VMEM_ALLOC, thread_ids_mark, used);
	uintptr_t self = umem_thread_id();
	for (uintptr_t id = 1; id <= UMEM_THREADS_MAX; id++) {
		if (!((used[(id - 1) / 64] >> ((id - 1) % 64)) & 1u))
			continue;
		if (id == self)
			continue;
		thread_slots_reclaim(id);
		vmem_free(umem_thread_ids, (void *)id, 1);
	}
	VMEM_ASSERT(self == umem_thread_id());
}
