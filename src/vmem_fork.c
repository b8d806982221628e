/*
 * vmem_fork.c — the fork protocol: a child of a fork taken while other
 * threads hold allocator locks must be able to allocate and free at once.
 *
 * Theory
 * ------
 * POSIX gives the child one thread: the one that forked.  Any lock another
 * thread held at the instant of fork stays held forever in the child.  So
 * the forking thread itself takes every allocator lock before fork (prepare)
 * and drops them after, in the parent and in the child (parent, child).  It
 * takes them in the one global order that every other path respects:
 *   1. the arena-list lock (no arena is created or destroyed meanwhile);
 *   2. the populate lock (no populate is half done);
 *   3. every arena's lock, in arena-list order (no operation is half done;
 *      no thread ever holds two arena locks, so list order cannot invert);
 *   4. the global tag-list lock (taken last everywhere, held only briefly).
 * The handlers are installed once, at bootstrap, with pthread_atfork; a
 * process that never used the library has nothing to lock.  A thread that
 * waited in VM_SLEEP is simply absent in the child; the child may allocate.
 *
 * _Fork (and vfork) run no handlers: the child of those may only exec or
 * _exit, as POSIX already requires after a multi-threaded fork.
 */
#include "umem_impl.h"
#include "vmem_impl.h"

void vmem_lockup(void)
{
	plat_mutex_lock(&vmem_list_lock);
	plat_mutex_lock(&vmem_populate_lock);
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		plat_mutex_lock(&vmp->ar_lock);
	vmem_tag_lock_enter();
}

void vmem_release(void)
{
	vmem_tag_lock_exit();
	for (vmem_t *vmp = vmem_list; vmp != NULL; vmp = vmp->ar_next)
		plat_mutex_unlock(&vmp->ar_lock);
	plat_mutex_unlock(&vmem_populate_lock);
	plat_mutex_unlock(&vmem_list_lock);
}

/* The cache layer's locks rank before every vmem lock. */
static void fork_prepare(void)
{
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
}

void vmem_fork_install(void)
{
	plat_atfork(fork_prepare, fork_parent, fork_child);
}
