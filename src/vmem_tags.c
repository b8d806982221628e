/*
 * vmem_tags.c — where boundary tags come from: the static bootstrap, the
 * global free list, each arena's private reserve, and populate.
 *
 * Theory
 * ------
 * Tags are themselves allocated by vmem: populate takes VMEM_POPULATE_BYTES
 * from the tag arena (vmem_seg), which imports from vmem_internal, which
 * imports from the heap, which maps pages.  An allocation that needs tags
 * may therefore recurse into the allocator that needs tags.  Three rules
 * make that recursion finite:
 *   1. Reserve first.  Every operation that may consume tags first makes sure
 *      its arena holds VMEM_MINFREE spares (vmem_impl.h derives 8), then
 *      consumes at most VMEM_SEGS_PER_OP (4).  So between operations every
 *      arena holds at least 4, and a populator arena always has the 4 that
 *      one allocation on the populate's behalf costs.
 *   2. Serialize populates.  The populate lock admits one populate at a
 *      time, and records the populating thread.  The arenas that the
 *      populate's allocation passes through (VMC_POPULATOR: tags, internal,
 *      heap) see that the current thread is the populator and live on their
 *      reserve instead of populating again.
 *   3. Restock.  Afterwards the populate gives every populator arena
 *      VMEM_MINFREE again, its own arena VMEM_MINFREE, and the rest of the
 *      batch to the global free list.
 * The first VMEM_BOOTSTRAP_SEGS tags and the three bootstrap arenas are
 * static, so the first populate has tags to run on.  Tags are never returned
 * to the tag arena: they move between the global list and the arenas.
 *
 * Locks, in order: the populate lock, then arena locks, then the global tag
 * lock (held only to move tags, never across a call).
 */
#include <string.h>

#include "vmem_impl.h"

static plat_mutex_t vmem_tag_lock = PLAT_MUTEX_INITIALIZER;
static vmem_seg_t *vmem_tag_free;     /* global free list, by sg_next */
static size_t vmem_tag_free_count;
static size_t vmem_tag_created;

plat_mutex_t vmem_populate_lock = PLAT_MUTEX_INITIALIZER;
static _Atomic uintptr_t vmem_populator; /* thread id, 0 when none */
/* The populator arenas, linked by ar_popnext: no bound on their number. */
static vmem_t *vmem_populators;
static size_t vmem_npopulators;

static vmem_seg_t vmem_bootstrap_segs[VMEM_BOOTSTRAP_SEGS];
static vmem_t vmem_bootstrap_arenas[3];
static _Atomic long vmem_boot_owner; /* the gate: see vmem_bootstrap */
void (*vmem_test_populate_hook)(void);
void (*vmem_test_bootstrap_hook)(void);

/* Move tags from the global list until the arena holds want (lock held). */
static void tags_take_global(vmem_t *vmp, size_t want)
{
	qlock_enter(&vmem_tag_lock, QLOCK_TAG);
	while (vmp->ar_nspares < want && vmem_tag_free != NULL) {
		vmem_seg_t *s = vmem_tag_free;
		vmem_tag_free = s->sg_next;
		vmem_tag_free_count--;
		vmem_seg_put(vmp, s);
	}
	VMEM_ASSERT(vmp->ar_nspares >= want || vmem_tag_free == NULL);
	VMEM_ASSERT((vmem_tag_free == NULL) == (vmem_tag_free_count == 0));
	qlock_exit(&vmem_tag_lock, QLOCK_TAG);
}

/* Give the arena's spares beyond keep to the global list (lock held). */
static void tags_give_global(vmem_t *vmp, size_t keep)
{
	qlock_enter(&vmem_tag_lock, QLOCK_TAG);
	while (vmp->ar_nspares > keep) {
		vmem_seg_t *s = vmem_seg_get(vmp);
		s->sg_next = vmem_tag_free;
		vmem_tag_free = s;
		vmem_tag_free_count++;
	}
	VMEM_ASSERT(vmp->ar_nspares <= keep && vmem_tag_free_count <=
	    vmem_tag_created);
	qlock_exit(&vmem_tag_lock, QLOCK_TAG);
}

void vmem_tag_lock_enter(void)
{
	qlock_enter(&vmem_tag_lock, QLOCK_TAG);
}

void vmem_tag_lock_exit(void)
{
	qlock_exit(&vmem_tag_lock, QLOCK_TAG);
}

void vmem_spares_trim(vmem_t *vmp)
{
	tags_give_global(vmp, VMEM_SPARES_KEEP);
}

void vmem_spares_release_all(vmem_t *vmp)
{
	tags_give_global(vmp, 0);
}

bool vmem_populating_self(void)
{
	return atomic_load_explicit(&vmem_populator, memory_order_relaxed) ==
	    plat_thread_self();
}

bool vmem_populate_in_progress(void)
{
	return atomic_load_explicit(&vmem_populator, memory_order_acquire) != 0;
}

/*
 * A populator arena holds its reserve from the start (R2).  vmem_create
 * takes it before the arena is listed: until then no other thread can see
 * the arena, so no populate restocks it and no fork can find it.
 */
void vmem_populator_reserve(vmem_t *vmp)
{
	VMEM_ASSERT(vmp->ar_cflags & VMC_POPULATOR);
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	bool ok = vmem_reserve(vmp, VM_SLEEP);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	if (!ok)
		vmem_panic("vmem_create(name \"%s\", VMC_POPULATOR): no tags "
		    "for its reserve", vmp->ar_name);
}

/*
 * The table is changed only together with the arena list, under the list
 * lock and the populate lock (vmem_list_insert, vmem_list_remove): the
 * fork lockup takes both, then the lock of every listed arena, so a
 * child finds in the table only arenas whose locks the lockup held, never
 * one that a thread it lacks held (planted bug QB_POPULATOR_UNLISTED puts
 * back the old order, in which a create registered before listing and a
 * destroy unregistered after unlisting: a child hung in its first
 * populate, on such an arena's lock).
 */
void vmem_populator_add(vmem_t *vmp)
{
	qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
	vmp->ar_popnext = vmem_populators;
	vmem_populators = vmp;
	vmem_npopulators++;
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
}

void vmem_populator_remove(vmem_t *vmp)
{
	qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
	for (vmem_t **pp = &vmem_populators; *pp != NULL;
	     pp = &(*pp)->ar_popnext) {
		if (*pp == vmp) {
			*pp = vmp->ar_popnext;
			vmem_npopulators--;
			break;
		}
	}
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
}

#ifndef NDEBUG
/* A fork's child (alone) or a holder of the populate lock. */
bool vmem_populators_listed(void)
{
	for (const vmem_t *pa = vmem_populators; pa != NULL;
	     pa = pa->ar_popnext)
		if (!locktab_listed(pa->ar_lock, QLOCK_ARENA))
			return false;
	return true;
}
#endif

/* Carve a fresh batch from the tag arena onto the global list. */
static bool tags_make_batch(void)
{
	/* Only a populate makes tags, with no arena lock held (L1). */
	VMEM_ASSERT(vmem_populating_self() && ARENA_LOCKS_NONE());
	vmem_seg_t *batch = vmem_alloc(vmem_seg_arena, VMEM_POPULATE_BYTES,
	    VM_NOSLEEP);
	if (batch == NULL)
		return false;
	size_t n = VMEM_POPULATE_BYTES / sizeof(vmem_seg_t);
	memset(batch, 0, n * sizeof(vmem_seg_t));
	qlock_enter(&vmem_tag_lock, QLOCK_TAG);
	for (size_t i = 0; i < n; i++) {
		batch[i].sg_next = vmem_tag_free;
		vmem_tag_free = &batch[i];
	}
	vmem_tag_free_count += n;
	vmem_tag_created += n;
	VMEM_ASSERT(vmem_tag_free_count <= vmem_tag_created);
	qlock_exit(&vmem_tag_lock, QLOCK_TAG);
	return true;
}

/*
 * Make new tags: called with vmp locked and short of VMEM_MINFREE, returns
 * with vmp locked, true when it now holds VMEM_MINFREE.  Other threads may
 * drain the global list between our batch and our own take, so the take is
 * retried with a fresh batch a bounded number of times.
 */
#define VMEM_POPULATE_TRIES 3

static bool vmem_populate(vmem_t *vmp)
{
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp) && !vmem_populating_self());
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
	/* Populates are serialized: none was in progress (MINFREE's "x 1"). */
	VMEM_ASSERT(!vmem_populate_in_progress());
	atomic_store(&vmem_populator, plat_thread_self());
	if (vmem_test_populate_hook != NULL)
		vmem_test_populate_hook();

	bool ok = false;
	for (unsigned tries = 0; tries < VMEM_POPULATE_TRIES && !ok; tries++) {
		/* Another populate may have refilled the global list. */
		size_t need = (vmem_npopulators + 1) * VMEM_MINFREE;
		qlock_enter(&vmem_tag_lock, QLOCK_TAG);
		bool enough = vmem_tag_free_count >= need;
		qlock_exit(&vmem_tag_lock, QLOCK_TAG);
		if (!enough && !tags_make_batch()) {
			qlock_enter(vmp->ar_lock, QLOCK_ARENA);
			break;
		}
		for (vmem_t *pa = vmem_populators; pa != NULL;
		     pa = pa->ar_popnext) {
			if (pa == vmp)
				continue;
			qlock_enter(pa->ar_lock, QLOCK_ARENA);
			tags_take_global(pa, VMEM_MINFREE);
			qlock_exit(pa->ar_lock, QLOCK_ARENA);
		}
		qlock_enter(vmp->ar_lock, QLOCK_ARENA);
		tags_take_global(vmp, VMEM_MINFREE);
		ok = vmp->ar_nspares >= VMEM_MINFREE_CHECK;
		if (!ok && tries + 1 < VMEM_POPULATE_TRIES)
			qlock_exit(vmp->ar_lock, QLOCK_ARENA);
	}
	VMEM_ASSERT(vmem_populating_self());
	atomic_store(&vmem_populator, (uintptr_t)0);
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
	/* Returns as it was called: vmp locked, on every path. */
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp));
	VMEM_ASSERT(!ok || vmp->ar_nspares >= VMEM_MINFREE_CHECK);
	/* A reap the populate deferred may run now — but not here, with vmp
	 * locked: it is run by the next cache slow path or failure. */
	if (!ok)
		vmp->ar_kstat.populate_fail++;
	return ok;
}

/*
 * VM_SLEEP never fails: a populate that fails (no memory for a batch,
 * an injected failure) is waited out like any allocation that finds no
 * fit (found by the simulator: vmem_create(..., VM_SLEEP) returned NULL
 * when its vmem_add's populate failed).  Inside this thread's own
 * populate nothing waits: a populator arena lives on its reserve.
 */
bool vmem_reserve(vmem_t *vmp, int vmflag)
{
	VMEM_ASSERT(ARENA_LOCK_HELD(vmp));
	/* planted bug QB_RESERVE_SHORT: VMEM_MINFREE_CHECK is one short */
	if (vmp->ar_nspares >= VMEM_MINFREE_CHECK)
		return true;
	if (vmem_populating_self()) {
		/* Inside this thread's populate: live on the reserve. */
		if (!(vmp->ar_cflags & VMC_POPULATOR))
			vmem_panic("arena \"%s\": reached from a populate but "
			    "not a VMC_POPULATOR arena", vmp->ar_name);
		return vmp->ar_nspares >= VMEM_SEGS_PER_OP;
	}
	for (;;) {
		tags_take_global(vmp, 2 * VMEM_MINFREE);
		if (vmp->ar_nspares >= VMEM_MINFREE_CHECK || vmem_populate(vmp))
			return true;
		if (vmflag & (VM_NOSLEEP | VM_PANIC))
			return false;
		vmem_sleep_wait(vmp);
		VMEM_ASSERT(ARENA_LOCK_HELD(vmp));
		if (vmp->ar_nspares >= VMEM_MINFREE_CHECK)
			return true;
	}
}

void vmem_tag_census(vmem_tag_census_t *out)
{
	qlock_enter(&vmem_tag_lock, QLOCK_TAG);
	out->created = vmem_tag_created;
	out->global_free = vmem_tag_free_count;
	qlock_exit(&vmem_tag_lock, QLOCK_TAG);
}

#ifdef QUANTA_CHECKER
_Atomic unsigned vmem_offlist_arenas;

void vmem_tag_census_locked(vmem_tag_census_t *out,
    const vmem_seg_t **global_head)
{
	out->created = vmem_tag_created;
	out->global_free = vmem_tag_free_count;
	*global_head = vmem_tag_free;
}

uintptr_t vmem_populator_thread(void)
{
	return atomic_load(&vmem_populator);
}

void vmem_populator_thread_set(uintptr_t id)
{
	atomic_store(&vmem_populator, id);
}
#endif

static void vmem_bootstrap_run(void)
{
	if (vmem_test_bootstrap_hook != NULL)
		vmem_test_bootstrap_hook();
	/* First: a fork from here on runs the handlers, whose prepare waits
	 * for this bootstrap to finish (vmem_fork.c). */
	vmem_fork_install();
	plat_preempt_point("vmem bootstrap: handlers installed, tags not yet");
	for (size_t i = 0; i < VMEM_BOOTSTRAP_SEGS; i++) {
		vmem_bootstrap_segs[i].sg_next = vmem_tag_free;
		vmem_tag_free = &vmem_bootstrap_segs[i];
	}
	vmem_tag_free_count = VMEM_BOOTSTRAP_SEGS;
	vmem_tag_created = VMEM_BOOTSTRAP_SEGS;

	size_t page = plat_page_size();
	vmem_t *heap = &vmem_bootstrap_arenas[0];
	vmem_t *internal = &vmem_bootstrap_arenas[1];
	vmem_t *segs = &vmem_bootstrap_arenas[2];
	/* The lock table's static chunk has their locks: no map can fail. */
	bool ok = vmem_arena_init(heap, "vmem_heap", page, NULL, NULL, NULL, 0,
	    VMC_POPULATOR);
	vmem_heap_setup(heap);
	ok = ok && vmem_arena_init(internal, "vmem_internal", page, vmem_alloc,
	    vmem_free, heap, 0, VMC_POPULATOR);
	ok = ok && vmem_arena_init(segs, "vmem_seg", page, vmem_alloc,
	    vmem_free, internal, 0, VMC_POPULATOR);
	if (!ok)
		vmem_panic("vmem bootstrap: no lock for a bootstrap arena (the "
		    "lock table could map no page)");
	vmem_internal_arena = internal;
	vmem_seg_arena = segs;
	for (size_t i = 0; i < 3; i++) {
		vmem_t *vmp = &vmem_bootstrap_arenas[i];
		vmp->ar_static = true;
		/* From the take to the insert the arena holds its reserve off
		 * vmem_list, out of the checker's sight (R3), as in
		 * vmem_create.  Taken after the insert instead, the reserve
		 * would be missing in view (R2).  The insert enters it in the
		 * populator table. */
		VMEM_OFFLIST_ENTER();
		tags_take_global(vmp, VMEM_MINFREE);
		vmem_list_insert(vmp);
		VMEM_OFFLIST_EXIT();
		plat_preempt_point("vmem bootstrap: an arena inserted");
	}
}

/*
 * The gate.  vmem_boot_owner is 0 before the bootstrap, the id of the
 * process running it while it runs, and -1 once it is done.  A thread
 * that finds it running in its own process waits (it takes microseconds);
 * one that finds it running in another process is in the child of a fork
 * taken mid-bootstrap — before the handlers were installed, so no prepare
 * froze it — and runs it over: the thread that began it does not exist
 * here.  Installing the handlers is the run's first step, so such a run
 * had changed nothing yet, and nothing needs undoing.  glibc's
 * pthread_once restarts a once the same way (by fork generation), but a
 * sanitizer's interceptor of it does not, and the child would wait
 * forever; so the gate is ours.  Its one blind spot: a grandchild whose
 * process id is that of its grandparent, dead by then and caught
 * mid-bootstrap by the first fork, with the library unused in the child
 * between the two forks — it would wait.
 */
void vmem_bootstrap(void)
{
	QANN_ATOMIC(&vmem_boot_owner);
	if (atomic_load_explicit(&vmem_boot_owner, memory_order_acquire) ==
	    -1) {
		QANN_RECEIVE(&vmem_boot_owner);
		return;
	}
	long me = plat_process_id();
	for (;;) {
		long owner = 0;
		if (atomic_compare_exchange_strong(&vmem_boot_owner, &owner,
		    me)) {
			vmem_bootstrap_run();
			break;
		}
		if (owner == -1) {
			QANN_RECEIVE(&vmem_boot_owner);
			return;
		}
		/* planted bug QB_BOOT_GATE_NOPID: another process's run looks ours */
		if (owner != me && !QUANTA_BUG(QB_BOOT_GATE_NOPID)) {
			/* Claim the parent's stale run; one thread wins. */
			if (atomic_compare_exchange_strong(&vmem_boot_owner,
			    &owner, me)) {
				vmem_fork_child_owns_memory(false);
				vmem_bootstrap_run();
				break;
			}
			continue;
		}
		plat_yield();
	}
	plat_preempt_point("vmem bootstrap: run, not yet published");
	QANN_PUBLISH(&vmem_boot_owner);
	atomic_store_explicit(&vmem_boot_owner, -1L, memory_order_release);
}
