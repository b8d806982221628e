/*
 * quanta — tests/test_umem_bad.c: every misuse of the object caches ends
 * in a diagnostic that names the call, then abort.
 *
 * Debug builds check a buffer's state at the call itself.  Release builds
 * check when the buffer reaches its slab, where the lookup is paid anyway;
 * so each body below ends by forcing that moment (a cache destroy, or the
 * thread's magazines flushed), and the substring each test expects is the
 * part both diagnostics share: the cache the buffer was freed to, what was
 * wrong, and the cache it belongs to.  The same-class wrong size of
 * umem_free is only visible to debug builds (they record each buffer's
 * requested size); that test exists there only.
 */
#include "qtest.h"

#include "umem.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#ifdef UMEM_ASAN
#include <sanitizer/asan_interface.h>
#endif

static umem_cache_t *mk(const char *name, size_t size)
{
	umem_cache_t *cp = umem_cache_create(name, size, 0, NULL, NULL, NULL,
	    NULL, NULL, 0);
	QT_TRUE(cp != NULL);
	return cp;
}

static char expect[256];

static void wrong_cache_body(void *arg)
{
	(void)arg;
	umem_cache_t *a = mk("bad_a", 64), *b = mk("bad_b", 64);
	void *buf = umem_cache_alloc(a, UMEM_DEFAULT);
	umem_cache_free(b, buf);
	umem_cache_destroy(b);
}

QTEST(freeing_to_the_wrong_cache_names_both_caches)
{
	QT_TRUE(qt_expect_abort(wrong_cache_body, NULL,
	    "belongs to cache \"bad_a\""));
	QT_STR_CONTAINS(qt_last_stderr(), "umem_cache_free(cache \"bad_b\", buf 0x");
}

static void double_free_body(void *arg)
{
	(void)arg;
	umem_cache_t *a = mk("dbl", 64);
	void *buf = umem_cache_alloc(a, UMEM_DEFAULT);
	umem_cache_free(a, buf);
	umem_cache_free(a, buf);
	umem_cache_destroy(a);
}

QTEST(a_double_free_into_a_magazine_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(double_free_body, NULL, "double free"));
	QT_STR_CONTAINS(qt_last_stderr(), "umem_cache_free(cache \"dbl\", buf 0x");
}

static void double_free_ctor_body(void *arg)
{
	(void)arg;
	umem_cache_t *a = mk("dbl2", 200);
	void *v[40];
	for (int i = 0; i < 40; i++)
		v[i] = umem_cache_alloc(a, UMEM_DEFAULT);
	for (int i = 0; i < 40; i++)
		umem_cache_free(a, v[i]);
	umem_cache_free(a, v[17]);
	umem_cache_destroy(a);
}

QTEST(a_double_free_after_many_frees_is_still_diagnosed)
{
	QT_TRUE(qt_expect_abort(double_free_ctor_body, NULL, "double free"));
	QT_STR_CONTAINS(qt_last_stderr(), "cache \"dbl2\"");
}

static void interior_body(void *arg)
{
	(void)arg;
	umem_cache_t *a = mk("interior", 64);
	char *buf = umem_cache_alloc(a, UMEM_DEFAULT);
	umem_cache_free(a, buf + 8);
	umem_cache_destroy(a);
}

QTEST(freeing_an_interior_address_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(interior_body, NULL,
	    "not the start of a buffer"));
	QT_STR_CONTAINS(qt_last_stderr(), "cache \"interior\"");
}

static void foreign_body(void *arg)
{
	(void)arg;
	static char not_ours[64] __attribute__((aligned(64)));
	umem_cache_t *a = mk("foreign", 64);
	umem_cache_free(a, not_ours);
	umem_cache_destroy(a);
}

QTEST(freeing_memory_of_no_cache_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(foreign_body, NULL, "belongs to no cache"));
	(void)snprintf(expect, sizeof(expect), "cache \"foreign\"");
	QT_STR_CONTAINS(qt_last_stderr(), expect);
}

static void wrong_class_body(void *arg)
{
	(void)arg;
	void *p = umem_alloc(100, UMEM_DEFAULT);
	umem_free(p, 20);
	umem_thread_flush_self();
}

QTEST(umem_free_with_a_size_of_another_class_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(wrong_class_body, NULL,
	    "belongs to cache \"umem_alloc_112\""));
#if UMEM_DEBUG
	QT_STR_CONTAINS(qt_last_stderr(), "umem_free(buf 0x");
	QT_STR_CONTAINS(qt_last_stderr(), "size 20)");
#else
	QT_STR_CONTAINS(qt_last_stderr(), "cache \"umem_alloc_32\"");
#endif
}

#if UMEM_DEBUG
static void wrong_size_body(void *arg)
{
	(void)arg;
	void *p = umem_alloc(100, UMEM_DEFAULT);
	umem_free(p, 110);
}

QTEST(umem_free_with_another_size_of_the_same_class_is_diagnosed_in_debug)
{
	QT_TRUE(qt_expect_abort(wrong_size_body, NULL,
	    "wrong size: the buffer was allocated with size 100"));
	QT_STR_CONTAINS(qt_last_stderr(), "umem_free(buf 0x");
	QT_STR_CONTAINS(qt_last_stderr(), "size 110)");
}
#endif

static void zero_size_body(void *arg)
{
	(void)arg;
	void *p = umem_alloc(10, UMEM_DEFAULT);
	umem_free(p, 0);
}

QTEST(umem_free_with_size_zero_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(zero_size_body, NULL, "umem_free(buf 0x"));
	QT_STR_CONTAINS(qt_last_stderr(), "size 0");
}

static void qcache_foreign_body(void *arg)
{
	(void)arg;
	vmem_t *vmp = vmem_create("qc_bad", (void *)(uintptr_t)0x100000, 1 << 20,
	    16, NULL, NULL, NULL, 0, VMC_IDENTIFIER);
	umem_cache_t *cp = umem_qcache_create(vmp, 32);
	void *a = umem_qcache_alloc(cp, VM_SLEEP);
	umem_qcache_free(cp, (char *)a + 0x10000, 32);
	umem_qcache_destroy(cp);
}

QTEST(vmem_free_of_a_range_the_quantum_cache_never_gave_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(qcache_foreign_body, NULL,
	    "belongs to no cache"));
	QT_STR_CONTAINS(qt_last_stderr(), "qc_bad_32");
}

static void bad_align_body(void *arg)
{
	(void)arg;
	(void)umem_cache_create("badalign", 64, 24, NULL, NULL, NULL, NULL,
	    NULL, 0);
}

QTEST(umem_cache_create_with_a_bad_alignment_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(bad_align_body, NULL,
	    "umem_cache_create(name \"badalign\", size 64, align 24"));
	QT_STR_CONTAINS(qt_last_stderr(), "not a power of two");
}

/* illumos' UMC_NOHASH bit (quanta does not provide it) is an unknown flag. */
static void unknown_flag_body(void *arg)
{
	(void)arg;
	(void)umem_cache_create("badflag", 64, 0, NULL, NULL, NULL, NULL,
	    NULL, 0x00080000);
}

QTEST(umem_cache_create_with_an_unknown_flag_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(unknown_flag_body, NULL,
	    "umem_cache_create(name \"badflag\", size 64, align 0, "
	    "flags 0x80000): unknown flags\n"));
}

static void null_cache_body(void *arg)
{
	(void)arg;
	(void)umem_cache_alloc(NULL, UMEM_DEFAULT);
}

QTEST(umem_cache_alloc_of_no_cache_is_diagnosed)
{
	QT_TRUE(qt_expect_abort(null_cache_body, NULL,
	    "umem_cache_alloc(cache NULL"));
}

/* ---- memory checkers see freed cache objects ---------------------------------- */

static void use_after_free_body(void *arg)
{
	(void)arg;
	umem_cache_t *a = mk("uaf", 64);
	volatile char *buf = umem_cache_alloc(a, UMEM_DEFAULT);
	buf[0] = 1;
	umem_cache_free(a, (void *)buf);
#if defined(UMEM_HAVE_VALGRIND)
	unsigned before = VALGRIND_COUNT_ERRORS;
#endif
	if (buf[3] == 42)
		(void)fputs("unlikely\n", stderr);
#if defined(UMEM_HAVE_VALGRIND)
	/* Valgrind writes its report to the stderr it started with, not to
	 * this child's pipe: count its errors instead. */
	if (VALGRIND_COUNT_ERRORS > before)
		(void)fputs("memcheck reported the read of a freed object\n",
		    stderr);
#endif
	abort();
}

QTEST(a_use_of_a_freed_cache_object_is_reported_by_the_memory_checker)
{
#if defined(UMEM_HAVE_VALGRIND)
	if (RUNNING_ON_VALGRIND) {
		QT_TRUE(qt_expect_abort(use_after_free_body, NULL,
		    "memcheck reported the read of a freed object"));
		return;
	}
#endif
#if defined(UMEM_ASAN)
	/* ASan reports the read and exits with its error code, 1: the
	 * body's abort is never reached. */
	int status = qt_capture_stderr(use_after_free_body, NULL);
	QT_TRUE(WIFEXITED(status));
	QT_EQ(WEXITSTATUS(status), 1);
	QT_STR_CONTAINS(qt_last_stderr(), "ERROR: AddressSanitizer: "
	    "use-after-poison on address");
#else
	/* No checker watching: the read is silent and the body aborts
	 * having written nothing. */
	QT_TRUE(qt_expect_abort(use_after_free_body, NULL, ""));
	QT_EQ(strlen(qt_last_stderr()), 0);
#endif
}

/*
 * Which caches tell a memory checker about their buffers: a memory cache
 * does; a UMC_NOTOUCH cache does not, nor a quantum cache (its buffers may
 * be no memory at all).  The flag is all a build without a checker shows;
 * under ASan, a freed buffer of the first is poisoned, of the second not.
 */
QTEST(memory_caches_annotate_their_buffers_and_notouch_and_quantum_caches_do_not)
{
	static char space[1 << 12] __attribute__((aligned(16)));
	umem_cache_t *mem = mk("ann_mem", 64);
	umem_cache_t *nt = umem_cache_create("ann_notouch", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, UMC_NOTOUCH);
	vmem_t *arena = vmem_create("ann_q", space, sizeof(space), 16, NULL,
	    NULL, NULL, 64, VM_SLEEP);
	QT_TRUE(nt != NULL && arena != NULL && arena->ar_qcache[0] != NULL);
	QT_TRUE(mem->cc_annotate);
	QT_TRUE(!nt->cc_annotate);
	QT_TRUE(!arena->ar_qcache[0]->cc_annotate);
	char *a = umem_cache_alloc(mem, UMEM_DEFAULT);
	char *b = umem_cache_alloc(nt, UMEM_DEFAULT);
	QT_TRUE(a != NULL && b != NULL);
	umem_cache_free(mem, a);
	umem_cache_free(nt, b);
#ifdef UMEM_ASAN
	QT_EQ(__asan_address_is_poisoned(a), 1);
	QT_EQ(__asan_address_is_poisoned(b), 0);
#endif
	umem_cache_destroy(nt);
	umem_cache_destroy(mem);
	vmem_destroy(arena);
}

/*
 * A cache drawing from a VMC_IDENTIFIER arena tells no memory checker about
 * its buffers: they are integers (here 1 MiB up, where nothing is mapped),
 * so under ASan a freed one is not poisoned.
 */
QTEST(a_cache_of_an_identifier_arena_does_not_annotate_its_buffers)
{
	vmem_t *ids = vmem_create("ann_ids", (void *)0x100000, 0x10000, 16,
	    NULL, NULL, NULL, 0, VMC_IDENTIFIER);
	umem_cache_t *cp = umem_cache_create("ann_idcache", 64, 0, NULL, NULL,
	    NULL, NULL, ids, 0);
	QT_TRUE(ids != NULL && cp != NULL);
	QT_TRUE(!cp->cc_annotate);
	void *id = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_EQ((uintptr_t)id, 0x100000);
	umem_cache_free(cp, id);
#ifdef UMEM_ASAN
	QT_EQ(__asan_address_is_poisoned(id), 0);
#endif
	umem_cache_destroy(cp);
	vmem_destroy(ids);
}

/*
 * No cache writes into a buffer it holds: a pattern a caller left in a
 * UMC_NOTOUCH buffer (readable after free, by that flag) is intact while it
 * sits free in its slab and when it is handed out again.
 */
QTEST(a_notouch_buffer_keeps_its_bytes_while_free)
{
	umem_cache_t *cp = umem_cache_create("nt_bytes", 64, 0, NULL, NULL,
	    NULL, NULL, NULL, UMC_NOTOUCH);
	QT_TRUE(cp != NULL);
	unsigned char *b = umem_cache_alloc(cp, UMEM_DEFAULT);
	QT_TRUE(b != NULL);
	memset(b, 0xa5, 64);
	umem_cache_free(cp, b);
	umem_thread_flush_self();
	umem_depot_purge(cp);
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	QT_EQ(st.us_bufs_slab_free, st.us_bufs_total);
	size_t same = 0;
	for (size_t i = 0; i < 64; i++)
		same += b[i] == 0xa5;
	QT_EQ(same, 64);
	QT_PTR_EQ(umem_cache_alloc(cp, UMEM_DEFAULT), b);
	same = 0;
	for (size_t i = 0; i < 64; i++)
		same += b[i] == 0xa5;
	QT_EQ(same, 64);
	umem_cache_free(cp, b);
	umem_cache_destroy(cp);
}

QTEST_MAIN()
