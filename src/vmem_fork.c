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
 *   1. the cache-list lock (no cache is created, destroyed or reaped);
 *   2. every cache's depot lock, then 3. every cache's slab lock, in list
 *      order (no magazine or slab operation is half done);
 *   4. the arena-list lock (no arena is created or destroyed);
 *   5. the populate lock (no populate is half done);
 *   6. every arena's lock, in arena-list order (no operation is half done);
 *   7. the global tag-list lock.
 * Lock-free state is what the locks cannot freeze; the child repairs it:
 * the thread slots of the threads it lacks give their magazines and ids
 * back (umem_thread_child_fixup), and their reentrant walks come off the
 * arenas (vmem_child_fixup_arena), since their stacks will be reused.
 *
 * The handlers are installed once, first thing in the vmem bootstrap (a
 * pthread_once), so a program that only calls umem_alloc gets them too
 * (the caches bootstrap over the heap arena, which bootstraps vmem), and a
 * process that never used the library runs none.  Prepare first waits for
 * a bootstrap that another thread has begun, so no child sees one half
 * done.  vmem_fork_handlers_installed counts the installs (tests: 1).
 *
 * Cost: prepare takes 3 + 2 x caches + arenas locks, uncontended in the
 * common case — some tens of nanoseconds each (bench/bench_fork.c).
 *
 * _Fork and vfork run no handlers.  Their child may call no quanta function
 * at all — a lock may be held by a thread that is gone — only exec, _exit
 * and async-signal-safe calls, as POSIX already requires after a fork of a
 * multi-threaded process (docs/fork.md).
 */
#include "umem_impl.h"
#include "vmem_impl.h"

_Atomic unsigned vmem_fork_handlers_installed;
#if QLOCK_WITNESS
_Atomic bool vmem_fork_test_misorder;
#endif

void vmem_lockup(void)
{
#if QLOCK_WITNESS
	if (atomic_load(&vmem_fork_test_misorder))
		qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
#endif
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
#if QLOCK_WITNESS
	if (!atomic_load(&vmem_fork_test_misorder))
#endif
		qlock_enter(&vmem_populate_lock, QLOCK_POPULATE);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		qlock_enter_nested(&vmp->ar_lock, QLOCK_ARENA);
	vmem_tag_lock_enter();
}

void vmem_release(void)
{
	vmem_tag_lock_exit();
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		qlock_exit(&vmp->ar_lock, QLOCK_ARENA);
	qlock_exit(&vmem_populate_lock, QLOCK_POPULATE);
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
}

static void fork_prepare(void)
{
	vmem_bootstrap();
	umem_bootstrap_wait();
	umem_lockup();
	vmem_lockup();
}

static void fork_parent(void)
{
	vmem_release();
	umem_release();
}

static void fork_child(void)
{
	vmem_release();
	umem_release();
	umem_child_fixup();
	uintptr_t self = plat_thread_self();
	qlock_enter(&vmem_list_lock, QLOCK_VMEM_LIST);
	vmem_t *arenas = vmem_list;
	qlock_exit(&vmem_list_lock, QLOCK_VMEM_LIST);
	/* Single-threaded now: the list cannot change under the walk. */
	for (vmem_t *vmp = arenas; vmp != NULL; vmp = vmp->ar_next)
		vmem_child_fixup_arena(vmp, self);
	umem_thread_child_fixup();
}

void vmem_fork_install(void)
{
	plat_atfork(fork_prepare, fork_parent, fork_child);
	atomic_fetch_add(&vmem_fork_handlers_installed, 1u);
	VMEM_ASSERT(atomic_load(&vmem_fork_handlers_installed) >= 1u);
}
