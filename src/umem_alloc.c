/*
 * umem_alloc.c — umem_alloc, umem_zalloc and umem_free over a fixed set of
 * size-class caches, the arena above the largest class, and the nofail
 * callback.
 *
 * Theory
 * ------
 * Size classes, derived: 8, then every 16 bytes up to 128 (small objects
 * are the common case and 16-byte steps keep their waste under 16 bytes),
 * then four classes per power of two, 2^k * {5/4, 6/4, 7/4, 8/4}, up to
 * UMEM_CLASS_MAX_BYTES = 16 KiB.  Quarter steps bound the waste of a class
 * above 128 by a quarter of the power below it: a request just over 2^k
 * gets 2^k * 5/4, at most 20 % waste.  That is 1 + 8 + 7 x 4 = 37 classes.
 * Every class but 8 is a multiple of 16 and gets 16-byte alignment.
 * A request maps to its class through a table indexed by (size + 7) / 8:
 * one load.  Above 16 KiB, umem_alloc is vmem_alloc of umem_default, which
 * the size given back to umem_free identifies.
 *
 * umem_free needs the size it was allocated with: it picks the class
 * cache from it.  Debug builds record each buffer's requested size out of
 * band (umem_slab.c) and check it at umem_free.
 *
 * UMEM_NOFAIL.  A failed allocation with UMEM_NOFAIL reaps every cache and
 * asks the nofail callback: UMEM_CALLBACK_RETRY tries again,
 * UMEM_CALLBACK_EXIT(status) exits the process with status.  With no
 * callback the failure is a diagnostic naming the call, then abort.
 * Failure injection (vmem_mtbf_set) spares the whole call: it fails the
 * caller's own VM_NOSLEEP requests only, and this call may not fail.
 */
#include <stdlib.h>
#include <string.h>

#include "umem_impl.h"

#define UMEM_CLASSES_MAX 37u
#define UMEM_CLASS_INDEX_MAX (UMEM_CLASS_MAX_BYTES / 8u)

static umem_cache_t *umem_class_cache[UMEM_CLASSES_MAX];
static uint8_t umem_class_of[UMEM_CLASS_INDEX_MAX + 1];
static umem_nofail_callback_t *_Atomic umem_nofail_cb;

static size_t class_sizes(size_t *out)
{
	size_t n = 0;
	out[n++] = 8;
	for (size_t s = 16; s <= 128; s += 16)
		out[n++] = s;
	for (size_t p = 128; p < UMEM_CLASS_MAX_BYTES; p *= 2)
		for (size_t q = 5; q <= 8; q++)
			out[n++] = p * q / 4;
	VMEM_ASSERT(n == UMEM_CLASSES_MAX);
	VMEM_ASSERT(out[n - 1] == UMEM_CLASS_MAX_BYTES);
	return n;
}

void umem_classes_init(void)
{
	size_t sizes[UMEM_CLASSES_MAX];
	size_t n = class_sizes(sizes);
	size_t c = 0;
	for (size_t i = 0; i < n; i++) {
		char name[UMEM_NAMELEN];
		(void)snprintf(name, sizeof(name), "umem_alloc_%lu",
		    (unsigned long)sizes[i]);
		umem_class_cache[i] = umem_cache_create_impl(name, sizes[i],
		    sizes[i] < 16 ? 8 : 16, NULL, NULL, NULL, NULL, umem_default,
		    0);
		if (umem_class_cache[i] == NULL)
			vmem_panic("umem: cannot create the size class %lu",
			    (unsigned long)sizes[i]);
	}
	for (size_t k = 0; k <= UMEM_CLASS_INDEX_MAX; k++) {
		while (c < n - 1 && sizes[c] < k * 8)
			c++;
		umem_class_of[k] = (uint8_t)c;
	}
}

static umem_cache_t *class_cache(size_t size)
{
	VMEM_ASSERT(size != 0 && size <= UMEM_CLASS_MAX_BYTES);
	umem_cache_t *cp = umem_class_cache[umem_class_of[(size + 7) / 8]];
	VMEM_ASSERT(cp->cc_bufsize >= size);
	return cp;
}

size_t umem_alloc_class_bytes(size_t size)
{
	umem_bootstrap();
	return class_cache(size)->cc_bufsize;
}

void umem_nofail_callback(umem_nofail_callback_t *cb)
{
	atomic_store(&umem_nofail_cb, cb);
}

/* Tries of a UMEM_NOFAIL allocation before it gives up: a callback that
 * keeps answering retry without freeing anything is a bug, not a wait. */
#define UMEM_NOFAIL_ATTEMPTS_MAX (1u << 20)

/* A failed UMEM_NOFAIL try: reap, then ask the nofail callback; returns to
 * retry.  args names the call's object ("cache \"x\"" or "size n"). */
static void nofail_wait(const char *call, const char *args, unsigned attempt)
{
	umem_reap();
	umem_nofail_callback_t *cb = atomic_load(&umem_nofail_cb);
	if (cb == NULL)
		vmem_panic("%s(%s, UMEM_NOFAIL): out of memory and no nofail "
		    "callback (attempt %u)", call, args, attempt);
	int rc = cb();
	if (rc == UMEM_CALLBACK_RETRY)
		return;
	if ((rc & ~0xff) == 0x100)
		exit(rc & 0xff);
	vmem_panic("%s(%s, UMEM_NOFAIL): the nofail callback returned 0x%x, "
	    "neither retry nor exit", call, args, (unsigned)rc);
}

void *umem_nofail_retry(void *(*once)(void *arg), void *arg,
    const char *call, const char *cache_name, size_t size)
{
	char args[96];
	/* The callback and the reap may do anything: no lock is held. */
	VMEM_ASSERT(once != NULL && ARENA_LOCKS_NONE() && SLAB_LOCKS_NONE());
	if (cache_name != NULL)
		(void)snprintf(args, sizeof(args), "cache \"%s\"", cache_name);
	else
		(void)snprintf(args, sizeof(args), "size %lu",
		    (unsigned long)size);
	/* The caller made try 0; tries 1 .. MAX - 1 follow a wait each. */
	for (unsigned attempt = 0; attempt + 1 < UMEM_NOFAIL_ATTEMPTS_MAX;
	    attempt++) {
		nofail_wait(call, args, attempt);
		void *buf = once(arg);
		if (buf != NULL)
			return buf;
	}
	vmem_panic("%s(%s, UMEM_NOFAIL): still no memory after %u attempts",
	    call, args, UMEM_NOFAIL_ATTEMPTS_MAX);
}

static void *alloc_once(size_t size)
{
	if (size > UMEM_CLASS_MAX_BYTES)
		return vmem_alloc(umem_default, size, VM_NOSLEEP);
	umem_cache_t *cp = class_cache(size);
	void *buf = umem_cache_alloc_impl(cp, VM_NOSLEEP);
	if (buf == NULL)
		return NULL;
	if (UMEM_DEBUG && cp->cc_debug)
		umem_debug_set_reqsize(cp, buf, size);
	UMEM_ASAN_UNPOISON(buf, size);
	VALGRIND_MALLOCLIKE_BLOCK(buf, size, 0, 0);
	return buf;
}

static void *alloc_once_arg(void *arg)
{
	return alloc_once(*(const size_t *)arg);
}

void *umem_alloc(size_t size, int umflag)
{
	if (size == 0)
		return NULL;
	umem_bootstrap();
	/* A call that may not fail is spared failure injection (vmem.c). */
	bool nofail = (umflag & UMEM_NOFAIL) != 0;
	if (nofail)
		vmem_inject_spare_enter();
	void *buf = alloc_once(size);
	if (buf == NULL && nofail)
		buf = umem_nofail_retry(alloc_once_arg, &size, "umem_alloc",
		    NULL, size);
	if (nofail)
		vmem_inject_spare_exit();
	return buf;
}

void *umem_zalloc(size_t size, int umflag)
{
	void *buf = umem_alloc(size, umflag);
	if (buf != NULL)
		memset(buf, 0, size);
	return buf;
}

void umem_free(void *buf, size_t size)
{
	if (buf == NULL)
		return;
	if (size == 0)
		vmem_panic("umem_free(buf %p, size 0): size 0", buf);
	if (size > UMEM_CLASS_MAX_BYTES) {
		vmem_free(umem_default, buf, size);
		return;
	}
	umem_cache_t *cp = class_cache(size);
	if (UMEM_DEBUG && cp->cc_debug)
		umem_debug_check_free(cp, buf, UMEM_CALL_FREE, size);
	VALGRIND_FREELIKE_BLOCK(buf, 0);
	UMEM_ASAN_POISON(buf, size);
	umem_slot_t *sl = umem_slot_find(cp);
	if (umem_slot_free(cp, sl, buf, UMEM_CALL_FREE, size))
		return;
	umem_free_slow(cp, sl, buf, UMEM_CALL_FREE, size);
}
