/*
 * vmem_fork.c — the fork protocol: a child of a fork taken while other
 * threads hold allocator locks must be able to allocate and free at once,
 * and the parent goes on as if nothing happened.
 *
 * Theory
 * ------
 * POSIX gives the child one thread: the one that forked.  Any lock another
 * thread held at the instant of fork stays held forever in the child.  So
 * the forking thread itself takes every allocator lock before fork
 * (prepare) and drops them after, in the parent and in the child.  It takes
 * them in rank order (lockrank.h, where the ranks are written once; the
 * debug witness checks this code against them like any other):
 *   1. the cache layer's bootstrap lock (no bootstrap is half done);
 *   2. the cache-list lock (no cache is created, destroyed or reaped);
 *   3. every cache's depot lock, then 4. every cache's slab lock (no
 *      magazine or slab operation is half done);
 *   5. the arena-list lock (no arena is created or destroyed);
 *   6. the populate lock (no populate is half done);
 *   7. every arena's lock (no operation is half done);
 *   8. the global tag-list lock;
 *   9. the lock table's guard (no lock is being handed out or given back).
 * The per-object locks of 3, 4 and 7 are those of the listed caches and
 * arenas, found by a walk of the lock table (locktab.h), in its order.
 * Lock-free state is what the locks cannot freeze; the child repairs it:
 * the thread slots of the threads it lacks give their magazines and ids
 * back (umem_thread_child_fixup, busy slots included), and their reentrant
 * walks come off the arenas, since their stacks will be reused, and the
 * tags they had stashed across a source call go back to the arenas'
 * spares (vmem_child_fixup_arena) — docs/fork.md, "What a child reclaims".
 * Only the arenas whose lock slot counts such a state are visited.
 *
 * The handlers are installed once, first thing in the vmem bootstrap (its
 * gate, vmem_tags.c), so a program that only calls umem_alloc gets them
 * too (the caches bootstrap over the heap arena, which bootstraps vmem),
 * and a process that never used the library runs none.  Prepare first
 * finishes (or waits for) the vmem bootstrap, then takes the cache layer's
 * bootstrap lock, so no child sees either bootstrap half done; a fork
 * taken before the handlers existed leaves a child that runs the vmem
 * bootstrap over.  vmem_fork_handlers_installed counts the installs
 * (tests: 1).
 *
 * Cost: prepare takes 5 + 2 x caches + arenas locks, uncontended in the
 * common case — some tens of nanoseconds each (bench/bench_fork.c).  The
 * pages they write are what a fork pays for most: each page written by
 * the handlers after the fork takes a copy-on-write fault in the parent
 * and one in the child.  So every per-object lock lives in the lock
 * table (locktab.h), 64 locks to a 4 KiB page, and the handlers write
 * nothing else per arena or cache: the child's fixups store into an
 * arena only what is not already so.
 *
 * _Fork and vfork run no handlers.  Their child may call no quanta function
 * at all — a lock may be held by a thread that is gone — only exec, _exit
 * and async-signal-safe calls, as POSIX already requires after a fork of a
 * multi-threaded process (docs/fork.md).
 */
#include "bugs.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <link.h>
#include <valgrind/helgrind.h>
#define VMEM_HAVE_HELGRIND 1
#endif
#endif

_Atomic unsigned vmem_fork_handlers_installed;
#if QLOCK_WITNESS
_Atomic bool vmem_fork_test_misorder;
#endif

void vmem_lockup(void)
{
	/* planted bug QB_LOCKUP_ORDER: the populate lock before the list lock */
	bool swapped = QUANTA_BUG(QB_LOCKUP_ORDER);
	if (swapped)
		qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
#if QLOCK_WITNESS
	if (atomic_load(&vmem_fork_test_misorder))
		qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
#endif
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
#if QLOCK_WITNESS
	if (!atomic_load(&vmem_fork_test_misorder))
#endif
		if (!swapped)
			qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
	locktab_enter_listed(QLOCK_ARENA);
	vmem_tag_lock_enter();
	locktab_lockup();
	/* With the populate lock, no populate is half done, and the child
	 * starts with none (vmem_populator is cleared before its unlock). */
	VMEM_ASSERT(QLOCK_HELD(QLOCK_VMEM_LIST) && QLOCK_HELD(QLOCK_TAG));
	VMEM_ASSERT(!vmem_populate_in_progress());
}

static void vmem_release_locks(bool child)
{
	VMEM_ASSERT(QLOCK_HELD(QLOCK_VMEM_LIST) && QLOCK_HELD(QLOCK_POPULATE));
	locktab_release();
	/* planted bug QB_CHILD_LOCK_HELD: the child never drops the tag lock */
	if (!(child && QUANTA_BUG(QB_CHILD_LOCK_HELD)))
		vmem_tag_lock_exit();
	locktab_exit_listed(QLOCK_ARENA);
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
}

void vmem_release(void)
{
	vmem_release_locks(false);
}

#ifdef VMEM_HAVE_HELGRIND
/* Clean the writable segments of the object that holds quanta's data. */
static int child_clean_object(struct dl_phdr_info *info, size_t size,
    void *arg)
{
	(void)size;
	uintptr_t mine = (uintptr_t)arg;
	bool found = false;
	for (int k = 0; k < info->dlpi_phnum && !found; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		found = ph->p_type == PT_LOAD && mine >= lo &&
		    mine - lo < ph->p_memsz;
	}
	if (!found)
		return 0;
	for (int k = 0; k < info->dlpi_phnum; k++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[k];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) != 0)
			VALGRIND_HG_CLEAN_MEMORY(info->dlpi_addr + ph->p_vaddr,
			    ph->p_memsz);
	}
	return 1;
}
#endif

/*
 * Under Helgrind: the child's one thread owns all memory.  Helgrind keeps
 * the parent's threads in its happens-before graph across a fork, so what
 * they wrote without a lock the forking thread later took (their slots,
 * magazines, buffers) looks racy to the child, though those threads do
 * not exist here and everything they did precedes everything the child
 * does.  Telling Helgrind the memory is this thread's is exact for a
 * fork's child: quanta's static data and, once bootstrapped, every span of
 * the heap arena (which holds all its metadata and buffers).  Without
 * Valgrind this is one unlikely branch.
 */
void vmem_fork_child_owns_memory(bool heap_too)
{
#ifdef VMEM_HAVE_HELGRIND
	if (!RUNNING_ON_VALGRIND)
		return;
	(void)dl_iterate_phdr(child_clean_object, (void *)&vmem_list);
	if (!heap_too)
		return;
	vmem_t *heap = vmem_heap_arena();
	vmem_seg_t *seg0 = &heap->ar_sentinel;
	qlock_enter(heap->ar_lock, QLOCK_ARENA);
	for (vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next)
		if (seg_is_span(s))
			VALGRIND_HG_CLEAN_MEMORY(s->sg_start, seg_size(s));
	qlock_exit(heap->ar_lock, QLOCK_ARENA);
#else
	(void)heap_too;
#endif
}

static void fork_prepare(void)
{
	/* A fork from under a lock of quanta would wait for itself here. */
	VMEM_ASSERT(ARENA_LOCKS_NONE() && QLOCK_NONE_HELD(QLOCK_POPULATE));
	vmem_bootstrap();
	qlock_enter(&umem_bootstrap_lock, QLOCK_BOOTSTRAP);
	umem_lockup();
	vmem_lockup();
}

static void fork_parent(void)
{
	vmem_release();
	umem_release();
	qlock_exit(&umem_bootstrap_lock, QLOCK_BOOTSTRAP);
}

/* An arena with transient states to repair has them counted in its
 * lock's slot: the others are not touched (locktab.h). */
static void child_fixup_visit(void *owner, plat_mutex_t *m, void *arg)
{
	if (*locktab_pending(m) != 0)
		vmem_child_fixup_arena(owner, *(const uintptr_t *)arg);
}

static void fork_child(void)
{
	vmem_release_locks(true);
	umem_release();
	qlock_exit(&umem_bootstrap_lock, QLOCK_BOOTSTRAP);
	vmem_fork_child_owns_memory(true);
	umem_child_fixup();
	uintptr_t self = plat_thread_self();
	/* Alone now: the arena list cannot change under the walk. */
	locktab_walk_listed(QLOCK_ARENA, child_fixup_visit, &self);
	umem_thread_child_fixup();
	VMEM_ASSERT(ARENA_LOCKS_NONE() && !vmem_populate_in_progress());
	/* No table reaches a lock the lockup did not hold: every populator
	 * the child's populates visit is listed (vmem_list_insert). */
	VMEM_ASSERT(vmem_populators_listed());
}

void vmem_fork_install(void)
{
	plat_atfork(fork_prepare, fork_parent, fork_child);
	atomic_fetch_add(&vmem_fork_handlers_installed, 1u);
	VMEM_ASSERT(atomic_load(&vmem_fork_handlers_installed) >= 1u);
}
