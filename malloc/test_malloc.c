/*
 * test_malloc.c — the C allocation API of libquanta-malloc.so, edge case by
 * edge case, each with its one exact outcome: sizes 0, 1, SIZE_MAX and
 * PTRDIFF_MAX; every power-of-two alignment up to 1 MiB through memalign,
 * posix_memalign and aligned_alloc, and their EINVAL cases; realloc in
 * place (grow and shrink) and moving, contents kept, and the room a growing
 * large block is given; calloc zeroed (fresh pages left untouched) and its
 * overflow; which freed large blocks give their pages back; usable sizes; errno; and the misuse that must end in a
 * diagnostic and abort (checked in a child: the signal and the text).
 *
 * Linked against the front end (which then precedes libc in the lookup
 * order); ci/malloc-test also runs it with LD_PRELOAD.  The exact usable
 * sizes follow from the layout (qmalloc.c): a 16-byte header, whole
 * umem_alloc classes up to 16 KiB, 16-byte rounding to 128 KiB, pages
 * above.  Compiled with -fno-builtin, so the compiler keeps every call.
 */
#include "qtest.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* Sizes the compiler cannot see through. */
static volatile size_t size_max = SIZE_MAX;
static volatile size_t ptrdiff_max = PTRDIFF_MAX;
static volatile size_t size_one = 1;
static volatile size_t align_0 = 0, align_24 = 24, align_48 = 48;

static int aligned_to(const void *p, size_t align)
{
	return ((uintptr_t)p & (align - 1)) == 0;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t k = 0; k < n; k++)
		p[k] = (unsigned char)(seed + k * 7);
}

static size_t count_unlike(const unsigned char *p, size_t n, unsigned seed)
{
	size_t bad = 0;
	for (size_t k = 0; k < n; k++)
		bad += p[k] != (unsigned char)(seed + k * 7);
	return bad;
}

QTEST(the_process_malloc_is_the_front_end)
{
	Dl_info info;
	QT_TRUE(dladdr((void *)(uintptr_t)&malloc, &info) != 0);
	QT_TRUE(strstr(info.dli_fname, "libquanta-malloc.so") != NULL);
}

QTEST(malloc_0_returns_distinct_aligned_freeable_pointers_with_usable_size_0)
{
	void *p = malloc(0), *q = malloc(0);
	QT_TRUE(p != NULL && q != NULL && p != q);
	QT_TRUE(aligned_to(p, 16) && aligned_to(q, 16));
	QT_EQ(malloc_usable_size(p), 0);
	free(p);
	free(q);
}

QTEST(malloc_1_gives_16_usable_bytes_and_free_null_is_a_no_op)
{
	unsigned char *p = malloc(size_one);
	QT_TRUE(p != NULL && aligned_to(p, 16));
	QT_EQ(malloc_usable_size(p), 16);
	fill(p, 16, 3);
	QT_EQ(count_unlike(p, 16, 3), 0);
	free(p);
	free(NULL);
	QT_EQ(malloc_usable_size(NULL), 0);
}

QTEST(malloc_of_size_max_and_ptrdiff_max_returns_null_with_enomem)
{
	errno = 0;
	QT_TRUE(malloc(size_max) == NULL);
	QT_EQ(errno, ENOMEM);
	errno = 0;
	QT_TRUE(malloc(ptrdiff_max) == NULL);
	QT_EQ(errno, ENOMEM);
	errno = 0;
	QT_TRUE(malloc(ptrdiff_max / 2 + 1) == NULL);
	QT_EQ(errno, ENOMEM);
}

QTEST(a_successful_call_leaves_errno_alone)
{
	errno = 1234;
	void *p = malloc(100), *q = malloc(1 << 20), *r = calloc(3, 5000);
	QT_TRUE(p != NULL && q != NULL && r != NULL);
	free(p);
	free(q);
	free(r);
	QT_EQ(errno, 1234);
}

QTEST(every_size_to_40000_and_some_large_ones_are_16_aligned_and_usable)
{
	size_t bad = 0;
	for (size_t n = 0; n <= 40000; n += (n < 300 ? 1 : 97)) {
		unsigned char *p = malloc(n);
		QT_TRUE(p != NULL);
		bad += !aligned_to(p, 16) || malloc_usable_size(p) < n;
		fill(p, malloc_usable_size(p), (unsigned)n);
		bad += count_unlike(p, malloc_usable_size(p), (unsigned)n) != 0;
		free(p);
	}
	for (size_t n = 100000; n <= (8u << 20); n = n * 3 + 1) {
		unsigned char *p = malloc(n);
		QT_TRUE(p != NULL);
		bad += !aligned_to(p, 16) || malloc_usable_size(p) < n;
		fill(p, n, 9);
		bad += count_unlike(p, n, 9) != 0;
		free(p);
	}
	QT_EQ(bad, 0);
}

QTEST(usable_sizes_follow_the_layout_header_class_rounding_and_pages)
{
	size_t want[][2] = {{16, 16}, {17, 32}, {112, 112}, {113, 144},
		{16368, 16368}, {16369, 16384}, {131056, 131056},
		{131057, PAGE * 33 - 16}};
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		void *p = malloc(want[k][0]);
		QT_EQ(malloc_usable_size(p), want[k][1]);
		free(p);
	}
}

/* memalign, aligned_alloc and posix_memalign at 1 << k, k = 0..20, for a
 * small and a large size: aligned, usable, writable. */
QTEST(every_power_of_two_alignment_to_1_mib_is_honoured_by_all_three_calls)
{
	size_t bad = 0;
	for (int k = 0; k <= 20; k++) {
		size_t align = (size_t)1 << k;
		for (size_t n = 100; n <= 300000; n += 299900) {
			void *p[3] = {memalign(align, n),
			    aligned_alloc(align, n), NULL};
			int rc = posix_memalign(&p[2], align, n);
			QT_EQ(rc, align < sizeof(void *) ? EINVAL : 0);
			for (int c = 0; c < 3; c++) {
				if (c == 2 && rc != 0)
					continue;
				QT_TRUE(p[c] != NULL);
				bad += !aligned_to(p[c], align < 16 ? 16 : align);
				bad += malloc_usable_size(p[c]) < n;
				fill(p[c], n, (unsigned)k);
				bad += count_unlike(p[c], n, (unsigned)k) != 0;
				free(p[c]);
			}
		}
	}
	QT_EQ(bad, 0);
}

QTEST(alignments_that_are_not_powers_of_two_are_einval)
{
	errno = 0;
	QT_TRUE(memalign(align_24, 10) == NULL);
	QT_EQ(errno, EINVAL);
	errno = 0;
	QT_TRUE(memalign(align_0, 10) == NULL);
	QT_EQ(errno, EINVAL);
	errno = 0;
	QT_TRUE(aligned_alloc(align_48, 10) == NULL);
	QT_EQ(errno, EINVAL);
	void *p = &p;
	errno = 77;
	QT_EQ(posix_memalign(&p, 24, 10), EINVAL);
	QT_EQ(posix_memalign(&p, 0, 10), EINVAL);
	QT_EQ(posix_memalign(&p, 4, 10), EINVAL);
	QT_EQ(posix_memalign(&p, 16, size_max), ENOMEM);
	QT_EQ(posix_memalign(&p, (size_t)1 << 62, 10), ENOMEM);
	QT_EQ(errno, 77);
	QT_TRUE(p == (void *)&p);
}

QTEST(valloc_and_pvalloc_return_page_aligned_blocks_of_whole_pages)
{
	void *v = valloc(100), *pv = pvalloc(100), *z = pvalloc(0);
	QT_TRUE(v != NULL && pv != NULL && z != NULL);
	QT_TRUE(aligned_to(v, PAGE) && aligned_to(pv, PAGE) && aligned_to(z, PAGE));
	QT_TRUE(malloc_usable_size(v) >= 100);
	QT_TRUE(malloc_usable_size(pv) >= PAGE);
	QT_TRUE(malloc_usable_size(z) >= PAGE);
	free(v);
	free(pv);
	free(z);
	errno = 0;
	QT_TRUE(pvalloc(size_max) == NULL);
	QT_EQ(errno, ENOMEM);
}

QTEST(realloc_grows_and_shrinks_a_small_block_in_place_then_moves_it)
{
	unsigned char *p = malloc(100);
	QT_EQ(malloc_usable_size(p), 112);
	fill(p, 100, 1);
	QT_PTR_EQ(realloc(p, 112), p);
	QT_PTR_EQ(realloc(p, 28), p);
	QT_EQ(count_unlike(p, 28, 1), 0);
	unsigned char *q = realloc(p, 27);
	QT_TRUE(q != p && q != NULL);
	QT_EQ(count_unlike(q, 27, 1), 0);
	unsigned char *r = realloc(q, 5000);
	QT_TRUE(r != q && r != NULL);
	QT_EQ(count_unlike(r, 27, 1), 0);
	free(r);
}

QTEST(realloc_shrinks_a_large_block_in_place_and_moves_it_to_grow)
{
	size_t n = (size_t)1 << 20;
	unsigned char *p = malloc(n);
	QT_EQ(malloc_usable_size(p), n + PAGE - 16);
	fill(p, n, 5);
	QT_PTR_EQ(realloc(p, 600000), p);
	QT_EQ(count_unlike(p, 600000, 5), 0);
	unsigned char *q = realloc(p, 2 * n);
	QT_TRUE(q != NULL && q != p);
	QT_EQ(count_unlike(q, 600000, 5), 0);
	free(q);
}

/* Resident pages of [from, from + len), both page-aligned (mincore). */
static size_t resident_pages(uintptr_t from, size_t len)
{
	static unsigned char vec[2048];
	size_t pages = len / PAGE, n = 0;
	if (pages > sizeof(vec) || mincore((void *)from, len, vec) != 0)
		return SIZE_MAX;
	for (size_t k = 0; k < pages; k++)
		n += vec[k] & 1;
	return n;
}

static uintptr_t first_page_after(const void *p)
{
	return ((uintptr_t)p + PAGE - 1) & ~(PAGE - 1);
}

/* A piece of 4 MiB or more gives its pages back when freed (qmalloc.c:
 * QM_LARGE_RETURN_MIN); a shrinking realloc in place gives the tail's. */
QTEST(free_and_shrinking_realloc_of_a_4_mib_block_give_its_pages_back)
{
	size_t n = 1024 * PAGE;
	unsigned char *p = malloc(n);
	memset(p, 1, n);
	uintptr_t first = first_page_after(p);
	QT_EQ(resident_pages(first, 1000 * PAGE), 1000);
	QT_PTR_EQ(realloc(p, 400 * PAGE), p);
	QT_EQ(resident_pages(first, 400 * PAGE), 400);
	QT_EQ(resident_pages(first + 401 * PAGE, 600 * PAGE), 0);
	free(p);
	QT_EQ(resident_pages(first, 1000 * PAGE), 0);
}

/* Below 4 MiB a freed block keeps its pages for the next one. */
QTEST(free_of_a_1_mib_block_keeps_its_pages)
{
	size_t n = 256 * PAGE;
	unsigned char *p = malloc(n);
	memset(p, 1, n);
	free(p);
	QT_EQ(resident_pages(first_page_after(p), 200 * PAGE), 200);
}

/* calloc of pages fresh from mmap does not touch them: they are zero. */
QTEST(calloc_of_fresh_pages_leaves_them_untouched_and_zero)
{
	size_t n = (size_t)64 << 20;
	unsigned char *z = calloc(n, 1);
	QT_TRUE(z != NULL);
	uintptr_t first = first_page_after(z);
	QT_EQ(resident_pages(first, 2000 * PAGE), 0);
	size_t nonzero = 0;
	for (size_t k = 0; k < n; k += 4096)
		nonzero += z[k] != 0;
	QT_EQ(nonzero, 0);
	free(z);
}

/* A block above 16 KiB that grows moves into half as much again (page
 * rounded), so the next growth up to that is in place. */
QTEST(realloc_growing_a_large_block_leaves_half_again_for_the_next)
{
	size_t n = (size_t)1 << 20;
	unsigned char *p = malloc(n);
	fill(p, n, 3);
	unsigned char *q = realloc(p, 2 * n);
	QT_TRUE(q != NULL && q != p);
	QT_EQ(malloc_usable_size(q), 3 * n + PAGE - 16);
	QT_PTR_EQ(realloc(q, 3 * n), q);
	QT_EQ(count_unlike(q, n, 3), 0);
	free(q);
}

QTEST(realloc_null_is_malloc_and_a_failed_realloc_keeps_the_block)
{
	unsigned char *p = realloc(NULL, 50);
	QT_TRUE(p != NULL);
	fill(p, 50, 2);
	errno = 0;
	QT_TRUE(realloc(p, size_max) == NULL);
	QT_EQ(errno, ENOMEM);
	errno = 0;
	QT_TRUE(reallocarray(p, size_max / 2, 3) == NULL);
	QT_EQ(errno, ENOMEM);
	QT_EQ(count_unlike(p, 50, 2), 0);
	unsigned char *q = reallocarray(p, 10, 1000);
	QT_TRUE(q != NULL);
	QT_EQ(count_unlike(q, 50, 2), 0);
	free(q);
}

QTEST(calloc_zeroes_recycled_memory_and_fails_on_overflow_with_enomem)
{
	for (size_t n = 40; n <= 4000000; n *= 10) {
		unsigned char *d = malloc(n);
		memset(d, 0xaa, n);
		free(d);
		unsigned char *z = calloc(n, 1);
		size_t nonzero = 0;
		for (size_t k = 0; k < n; k++)
			nonzero += z[k] != 0;
		QT_EQ(nonzero, 0);
		free(z);
	}
	errno = 0;
	QT_TRUE(calloc(size_max / 2, 3) == NULL);
	QT_EQ(errno, ENOMEM);
	void *e = calloc(0, 5);
	QT_TRUE(e != NULL);
	free(e);
}

/* ---- misuse: diagnostic and abort ------------------------------------ */

static void double_free_body(void *arg)
{
	void *p = malloc((size_t)(uintptr_t)arg);
	free(p);
	free(p);
}

QTEST(a_double_free_of_a_small_medium_or_large_block_aborts_naming_free)
{
	size_t sizes[] = {10, 50000, 500000};
	for (int k = 0; k < 3; k++) {
		QT_TRUE(qt_expect_abort(double_free_body,
		    (void *)(uintptr_t)sizes[k],
		    "): double free (the block is already free)"));
		QT_STR_CONTAINS(qt_last_stderr(), "quanta: free(ptr 0x");
	}
}

static void realloc_freed_body(void *arg)
{
	(void)arg;
	void *p = malloc(64);
	free(p);
	if (realloc(p, 10) != NULL)
		_exit(3);
}

static void realloc_zero_frees_body(void *arg)
{
	(void)arg;
	void *p = malloc(64);
	if (realloc(p, 0) != NULL)
		_exit(3);
	free(p);
}

QTEST(realloc_of_a_freed_block_aborts_and_realloc_to_0_frees)
{
	QT_TRUE(qt_expect_abort(realloc_freed_body, NULL,
	    "realloc(ptr 0x"));
	QT_STR_CONTAINS(qt_last_stderr(), ", size 10): double free");
	QT_TRUE(qt_expect_abort(realloc_zero_frees_body, NULL,
	    "): double free (the block is already free)"));
}

static void usable_size_freed_body(void *arg)
{
	(void)arg;
	void *volatile p = malloc(64);
	free(p);
	(void)malloc_usable_size(p);
}

QTEST(malloc_usable_size_of_a_freed_block_aborts_naming_it)
{
	QT_TRUE(qt_expect_abort(usable_size_freed_body, NULL,
	    "): the block is free"));
	QT_STR_CONTAINS(qt_last_stderr(), "quanta: malloc_usable_size(ptr 0x");
}

static void free_interior_body(void *arg)
{
	(void)arg;
	char *p = malloc(200);
	memset(p, 0, 200);
	free(p + 32);
}

static void free_misaligned_body(void *arg)
{
	(void)arg;
	char *p = malloc(200);
	free(p + 1);
}

static void free_stack_body(void *arg)
{
	(void)arg;
	_Alignas(16) char buf[64];
	memset(buf, 0x55, sizeof(buf));
	free(buf + 32);
}

static void free_low_body(void *arg)
{
	(void)arg;
	static volatile uintptr_t low = 16;
	free((void *)low);
}

QTEST(free_of_a_pointer_malloc_did_not_return_aborts_naming_it)
{
	QT_TRUE(qt_expect_abort(free_interior_body, NULL,
	    "): not a pointer malloc returned (no header of ours)"));
	QT_STR_CONTAINS(qt_last_stderr(), "quanta: free(ptr 0x");
	QT_TRUE(qt_expect_abort(free_misaligned_body, NULL,
	    "): not a pointer malloc returned (misaligned)"));
	QT_TRUE(qt_expect_abort(free_stack_body, NULL,
	    "): not a pointer malloc returned (no header of ours)"));
	QT_TRUE(qt_expect_abort(free_low_body, NULL,
	    "quanta: free(ptr 0x10): not a pointer malloc returned (in the "
	    "first page)"));
}

/* ---- threads and fork -------------------------------------------------- */

static volatile int churn_stop;

static void *churn(void *arg)
{
	size_t n = 1 + (size_t)(uintptr_t)arg * 1000;
	while (!churn_stop) {
		void *p = malloc(n);
		free(malloc(n * 50));
		free(p);
	}
	return NULL;
}

static void *fork_and_wait(void *arg)
{
	(void)arg;
	int ok = 0;
	for (int k = 0; k < 20; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			void *p = malloc(300), *q = malloc(300000);
			_exit(p != NULL && q != NULL ? 0 : 1);
		}
		int st = -1;
		(void)waitpid(pid, &st, 0);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	return (void *)(uintptr_t)ok;
}

QTEST(forks_from_a_thread_while_3_threads_allocate_give_children_that_allocate)
{
	pthread_t t[3], f;
	for (uintptr_t k = 0; k < 3; k++)
		QT_EQ(pthread_create(&t[k], NULL, churn, (void *)k), 0);
	QT_EQ(pthread_create(&f, NULL, fork_and_wait, NULL), 0);
	void *ok;
	(void)pthread_join(f, &ok);
	churn_stop = 1;
	for (int k = 0; k < 3; k++)
		(void)pthread_join(t[k], NULL);
	QT_EQ((uintptr_t)ok, 20);
}

QTEST_MAIN()
