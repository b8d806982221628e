/*
 * quanta — tests/test_vmem_bad.c: every misuse of VMEM.md "Bad calls".
 *
 * Each bad call runs in a child (qt_expect_abort); the child must die of
 * SIGABRT after writing a diagnostic on stderr.  What these tests assume of
 * that diagnostic, and nothing more (the sentence itself is the
 * implementer's):
 *   1. it names the public call that was made: "vmem_free", "vmem_xfree",
 *      "vmem_add", "vmem_xalloc" or "vmem_alloc" appears as a substring
 *      (a vmem_free misuse reported as "vmem_xfree" does NOT match, on
 *      purpose: the call made was vmem_free);
 *   2. it names the arena (its vmem_create name appears);
 *   3. it shows the key argument: an address in hex with a 0x prefix
 *      (any case, any zero padding); a size in hex or in decimal.
 * Which argument is "key" is stated per test.  Over-constrained means: no
 * address at all could satisfy the request, whatever the arena holds.
 */
#include "qtest.h"

#include <ctype.h>

#include "vmem.h"

#include "vmem_testutil.h"

/* True iff s holds a literal 0x<hex> (any case, any padding) equal to v. */
static int
has_hex(const char *s, uintmax_t v)
{
	for (const char *p = s; *p != '\0'; p++) {
		if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') &&
		    isxdigit((unsigned char)p[2])) {
			char *end;
			if (strtoumax(p + 2, &end, 16) == v)
				return 1;
			p = end - 1;
		}
	}
	return 0;
}

/* True iff s holds v as a hex literal or as a whole decimal number. */
static int
has_number(const char *s, uintmax_t v)
{
	if (has_hex(s, v))
		return 1;
	for (const char *p = s; *p != '\0'; p++) {
		if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
			p++;
			while (isxdigit((unsigned char)p[1]))
				p++;
			continue;
		}
		if (isdigit((unsigned char)*p) &&
		    (p == s || !isalnum((unsigned char)p[-1]))) {
			char *end;
			if (strtoumax(p, &end, 10) == v &&
			    !isalnum((unsigned char)*end))
				return 1;
			p = end - 1;
		}
	}
	return 0;
}

#define QT_STDERR_HAS_HEX(v)                                                \
	do {                                                                \
		if (!has_hex(qt_last_stderr(), (v)))                        \
			qt_fail(__FILE__, __LINE__,                         \
			    "no 0x%jx in the diagnostic: \"%.1500s\"",      \
			    (uintmax_t)(v), qt_last_stderr());              \
	} while (0)

#define QT_STDERR_HAS_NUMBER(v)                                             \
	do {                                                                \
		if (!has_number(qt_last_stderr(), (v)))                     \
			qt_fail(__FILE__, __LINE__,                         \
			    "no 0x%jx (%ju) in the diagnostic: \"%.1500s\"", \
			    (uintmax_t)(v), (uintmax_t)(v), qt_last_stderr()); \
	} while (0)

/* ---- free ------------------------------------------------------------- */

static void
free_never_allocated(void *arg)
{
	vmem_t *vmp = make_arena("bf_never", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_alloc(vmp, 0x100, VM_SLEEP);
	vmem_free(vmp, ADDR(0x180000), 0x100);
}

QTEST(free_of_a_never_allocated_address_aborts)
{
	/* key argument: the address */
	QT_TRUE(qt_expect_abort(free_never_allocated, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_never");
	QT_STDERR_HAS_HEX(0x180000);
}

static void
free_wrong_size_larger(void *arg)
{
	vmem_t *vmp = make_arena("bf_size_up", BASE, SIZE, Q16);
	void *p = vmem_alloc(vmp, 0x100, VM_SLEEP);
	(void)arg;
	vmem_free(vmp, p, 0x200);
}

QTEST(free_with_a_larger_size_than_allocated_aborts_naming_both_sizes)
{
	/* key arguments: the address, and both sizes (VMEM.md, Free) */
	QT_TRUE(qt_expect_abort(free_wrong_size_larger, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_size_up");
	QT_STDERR_HAS_HEX(0x100000);
	QT_STDERR_HAS_NUMBER(0x100);
	QT_STDERR_HAS_NUMBER(0x200);
}

static void
free_wrong_size_smaller(void *arg)
{
	vmem_t *vmp = make_arena("bf_size_down", BASE, SIZE, Q16);
	void *p = vmem_alloc(vmp, 0x300, VM_SLEEP);
	(void)arg;
	vmem_free(vmp, p, 0x100);
}

QTEST(free_with_a_smaller_size_than_allocated_aborts)
{
	QT_TRUE(qt_expect_abort(free_wrong_size_smaller, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_size_down");
	QT_STDERR_HAS_HEX(0x100000);
	QT_STDERR_HAS_NUMBER(0x300);
}

static void
free_interior(void *arg)
{
	vmem_t *vmp = make_arena("bf_interior", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_alloc(vmp, 0x100, VM_SLEEP);
	vmem_free(vmp, ADDR(0x100010), 0x10);
}

QTEST(free_of_an_interior_address_aborts)
{
	QT_TRUE(qt_expect_abort(free_interior, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_interior");
	QT_STDERR_HAS_HEX(0x100010);
}

static void
free_foreign(void *arg)
{
	vmem_t *vmp = make_arena("bf_foreign", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_alloc(vmp, 0x100, VM_SLEEP);
	vmem_free(vmp, ADDR(0x900000), 0x10);
}

QTEST(free_of_an_address_outside_every_span_aborts)
{
	QT_TRUE(qt_expect_abort(free_foreign, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_foreign");
	QT_STDERR_HAS_HEX(0x900000);
}

static void
free_twice(void *arg)
{
	vmem_t *vmp = make_arena("bf_twice", BASE, SIZE, Q16);
	void *p = vmem_alloc(vmp, 0x100, VM_SLEEP);
	(void)arg;
	(void)vmem_alloc(vmp, 0x100, VM_SLEEP);
	vmem_free(vmp, p, 0x100);
	vmem_free(vmp, p, 0x100);
}

QTEST(double_free_aborts)
{
	QT_TRUE(qt_expect_abort(free_twice, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_twice");
	QT_STDERR_HAS_HEX(0x100000);
}

static void
free_to_other_arena(void *arg)
{
	vmem_t *a = make_arena("bf_owner", BASE, SIZE, Q16);
	vmem_t *b = make_arena("bf_stranger", 0x400000, SIZE, Q16);
	void *p = vmem_alloc(a, 0x100, VM_SLEEP);
	(void)arg;
	(void)vmem_alloc(b, 0x100, VM_SLEEP);
	vmem_free(b, p, 0x100);
}

QTEST(free_to_an_arena_that_did_not_allocate_it_aborts_naming_that_arena)
{
	QT_TRUE(qt_expect_abort(free_to_other_arena, NULL, "vmem_free"));
	QT_STR_CONTAINS(qt_last_stderr(), "bf_stranger");
	QT_STDERR_HAS_HEX(0x100000);
}

static void
xfree_never_allocated(void *arg)
{
	vmem_t *vmp = make_arena("bxf_never", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_xalloc(vmp, 0x100, 0x1000, 0, 0, NULL, NULL, VM_SLEEP);
	vmem_xfree(vmp, ADDR(0x101000), 0x100);
}

QTEST(xfree_of_a_never_allocated_address_aborts)
{
	QT_TRUE(qt_expect_abort(xfree_never_allocated, NULL, "vmem_xfree"));
	QT_STR_CONTAINS(qt_last_stderr(), "bxf_never");
	QT_STDERR_HAS_HEX(0x101000);
}

static void
xfree_wrong_size(void *arg)
{
	vmem_t *vmp = make_arena("bxf_size", BASE, SIZE, Q16);
	void *p = vmem_xalloc(vmp, 0x100, 0x1000, 0, 0, NULL, NULL, VM_SLEEP);
	(void)arg;
	vmem_xfree(vmp, p, 0x80);
}

QTEST(xfree_with_the_wrong_size_aborts)
{
	QT_TRUE(qt_expect_abort(xfree_wrong_size, NULL, "vmem_xfree"));
	QT_STR_CONTAINS(qt_last_stderr(), "bxf_size");
	QT_STDERR_HAS_HEX(0x100000);
	QT_STDERR_HAS_NUMBER(0x80);
}

/* ---- vmem_add ----------------------------------------------------------- */

static void
add_empty(void *arg)
{
	vmem_t *vmp = make_arena("ba_empty", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(0x300000), 0, VM_SLEEP);
}

QTEST(add_of_an_empty_range_aborts)
{
	/* key argument: the address */
	QT_TRUE(qt_expect_abort(add_empty, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_empty");
	QT_STDERR_HAS_HEX(0x300000);
}

static void
add_overlapping_end(void *arg)
{
	vmem_t *vmp = make_arena("ba_tail", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(0x1F0000), 0x20000, VM_SLEEP);
}

QTEST(add_overlapping_the_end_of_a_span_aborts)
{
	QT_TRUE(qt_expect_abort(add_overlapping_end, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_tail");
	QT_STDERR_HAS_HEX(0x1F0000);
}

static void
add_overlapping_start(void *arg)
{
	vmem_t *vmp = make_arena("ba_head", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(0xF8000), 0x10000, VM_SLEEP);
}

QTEST(add_overlapping_the_start_of_a_span_aborts)
{
	QT_TRUE(qt_expect_abort(add_overlapping_start, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_head");
	QT_STDERR_HAS_HEX(0xF8000);
}

static void
add_same_range(void *arg)
{
	vmem_t *vmp = make_arena("ba_same", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(BASE), SIZE, VM_SLEEP);
}

QTEST(add_of_the_same_range_twice_aborts)
{
	QT_TRUE(qt_expect_abort(add_same_range, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_same");
	QT_STDERR_HAS_HEX(BASE);
}

static void
add_enclosing(void *arg)
{
	vmem_t *vmp = make_arena("ba_enclose", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(0xF0000), 0x200000, VM_SLEEP);
}

QTEST(add_of_a_range_enclosing_a_span_aborts)
{
	QT_TRUE(qt_expect_abort(add_enclosing, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_enclose");
	QT_STDERR_HAS_HEX(0xF0000);
}

static void
add_overlapping_added(void *arg)
{
	vmem_t *vmp = make_arena("ba_added", 0, 0, Q16);
	(void)arg;
	(void)vmem_add(vmp, ADDR(0x300000), 0x10000, VM_SLEEP);
	(void)vmem_add(vmp, ADDR(0x30F000), 0x2000, VM_SLEEP);
}

QTEST(add_overlapping_an_added_span_aborts)
{
	QT_TRUE(qt_expect_abort(add_overlapping_added, NULL, "vmem_add"));
	QT_STR_CONTAINS(qt_last_stderr(), "ba_added");
	QT_STDERR_HAS_HEX(0x30F000);
}

/* ---- vmem_xalloc parameters ------------------------------------------ */

struct xargs {
	const char *name;
	size_t quantum;
	size_t size, align, phase, nocross;
	uintptr_t minaddr, maxaddr;
};

static void
xalloc_with(void *arg)
{
	const struct xargs *x = arg;
	vmem_t *vmp = make_arena(x->name, BASE, SIZE, x->quantum);
	(void)vmem_xalloc(vmp, x->size, x->align, x->phase, x->nocross,
	    ADDR(x->minaddr), ADDR(x->maxaddr), VM_NOSLEEP);
}

QTEST(xalloc_with_align_not_a_power_of_two_aborts)
{
	struct xargs x = { "bx_align3", Q16, 0x100, 0x30, 0, 0, 0, 0 };
	/* key argument: align */
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_align3");
	QT_STDERR_HAS_HEX(0x30);
}

QTEST(xalloc_with_align_not_a_multiple_of_the_quantum_aborts)
{
	struct xargs x = { "bx_align_small", 0x1000, 0x1000, 0x800, 0, 0, 0,
		0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_align_small");
	QT_STDERR_HAS_HEX(0x800);
}

QTEST(xalloc_with_phase_equal_to_align_aborts)
{
	struct xargs x = { "bx_phase_eq", Q16, 0x100, 0x1000, 0x1000, 0, 0,
		0 };
	/* key argument: phase (equal to align here) */
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_phase_eq");
	QT_STDERR_HAS_HEX(0x1000);
}

QTEST(xalloc_with_phase_above_align_aborts)
{
	struct xargs x = { "bx_phase_gt", Q16, 0x100, 0x1000, 0x2000, 0, 0,
		0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_phase_gt");
	QT_STDERR_HAS_HEX(0x2000);
}

QTEST(xalloc_with_phase_not_a_multiple_of_the_quantum_aborts)
{
	struct xargs x = { "bx_phase_odd", Q16, 0x100, 0x100, 0x8, 0, 0, 0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_phase_odd");
	QT_STDERR_HAS_HEX(0x8);
}

QTEST(xalloc_with_nocross_not_a_multiple_of_the_quantum_aborts)
{
	struct xargs x = { "bx_nocross_odd", Q16, 0x10, 0, 0, 0x1008, 0, 0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_nocross_odd");
	QT_STDERR_HAS_HEX(0x1008);
}

QTEST(xalloc_of_size_zero_aborts)
{
	struct xargs x = { "bx_size0", Q16, 0, 0, 0, 0, 0, 0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_size0");
}

static void
alloc_size_zero(void *arg)
{
	vmem_t *vmp = make_arena("bal_size0", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_alloc(vmp, 0, VM_NOSLEEP);
}

QTEST(alloc_of_size_zero_aborts)
{
	QT_TRUE(qt_expect_abort(alloc_size_zero, NULL, "vmem_alloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bal_size0");
}

QTEST(xalloc_with_nocross_smaller_than_size_aborts_as_over_constrained)
{
	struct xargs x = { "bx_nocross_small", Q16, 0x2000, 0, 0, 0x1000, 0,
		0 };
	/* key argument: nocross */
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_nocross_small");
	QT_STDERR_HAS_HEX(0x1000);
}

QTEST(xalloc_whose_phase_and_size_cannot_fit_between_nocross_lines_aborts)
{
	/* Every start is 0x200 past a 0x400 multiple, so it is 0x200, 0x600,
	 * 0xA00 or 0xE00 past a 0x1000 line; 0xE10 more always straddles the
	 * next line: no address can ever satisfy this request. */
	struct xargs x = { "bx_phase_nocross", Q16, 0xE10, 0x400, 0x200,
		0x1000, 0, 0 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_phase_nocross");
	QT_STDERR_HAS_HEX(0x1000);
}

QTEST(xalloc_with_minaddr_equal_to_maxaddr_aborts)
{
	struct xargs x = { "bx_window_empty", Q16, 0x10, 0, 0, 0, 0x180000,
		0x180000 };
	/* key argument: minaddr */
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_window_empty");
	QT_STDERR_HAS_HEX(0x180000);
}

QTEST(xalloc_with_minaddr_above_maxaddr_aborts)
{
	struct xargs x = { "bx_window_inverted", Q16, 0x10, 0, 0, 0, 0x190000,
		0x180000 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_window_inverted");
	QT_STDERR_HAS_HEX(0x190000);
}

QTEST(xalloc_with_window_smaller_than_size_aborts)
{
	struct xargs x = { "bx_window_small", Q16, 0x200, 0, 0, 0, 0x180000,
		0x180100 };
	QT_TRUE(qt_expect_abort(xalloc_with, &x, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bx_window_small");
	QT_STDERR_HAS_HEX(0x180000);
}

/* ---- VM_PANIC ---------------------------------------------------------- */

static void
panic_alloc_full(void *arg)
{
	vmem_t *vmp = make_arena("bp_alloc", BASE, 0x1000, Q16);
	(void)arg;
	(void)vmem_alloc(vmp, 0x1000, VM_SLEEP);
	(void)vmem_alloc(vmp, 0x20, VM_NOSLEEP | VM_PANIC);
}

QTEST(failed_vm_panic_alloc_aborts)
{
	/* key argument: the size */
	QT_TRUE(qt_expect_abort(panic_alloc_full, NULL, "vmem_alloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bp_alloc");
	QT_STDERR_HAS_NUMBER(0x20);
}

static void
panic_xalloc_window(void *arg)
{
	vmem_t *vmp = make_arena("bp_xalloc", BASE, SIZE, Q16);
	(void)arg;
	(void)vmem_xalloc(vmp, 0x1000, 0, 0, 0, ADDR(0x180000),
	    ADDR(0x181000), VM_NOSLEEP);
	(void)vmem_xalloc(vmp, 0x10, 0, 0, 0, ADDR(0x180000), ADDR(0x181000),
	    VM_NOSLEEP | VM_PANIC);
}

QTEST(failed_vm_panic_xalloc_aborts)
{
	QT_TRUE(qt_expect_abort(panic_xalloc_window, NULL, "vmem_xalloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bp_xalloc");
	QT_STDERR_HAS_NUMBER(0x10);
}

static void *
refusing_afunc(vmem_t *source, size_t size, int vmflag)
{
	(void)source;
	(void)size;
	(void)vmflag;
	return NULL;
}

static void
panic_import_refused(void *arg)
{
	vmem_t *parent = make_arena("bp_parent", BASE, SIZE, 0x1000);
	vmem_t *child = vmem_create("bp_child", NULL, 0, Q16, refusing_afunc,
	    vmem_free, parent, 0, VM_SLEEP);
	(void)arg;
	(void)vmem_alloc(child, 0x100, VM_NOSLEEP | VM_PANIC);
}

QTEST(failed_vm_panic_import_aborts_naming_the_importing_arena)
{
	QT_TRUE(qt_expect_abort(panic_import_refused, NULL, "vmem_alloc"));
	QT_STR_CONTAINS(qt_last_stderr(), "bp_child");
	QT_STDERR_HAS_NUMBER(0x100);
}

/* The checks above are not vacuous: the same calls, made correctly, live. */
static void
good_calls(void *arg)
{
	vmem_t *vmp = make_arena("b_good", BASE, SIZE, Q16);
	void *p = vmem_alloc(vmp, 0x100, VM_SLEEP);
	void *q = vmem_xalloc(vmp, 0x100, 0x1000, 0x10, 0x1000, NULL, NULL,
	    VM_NOSLEEP | VM_PANIC);
	(void)arg;
	vmem_free(vmp, p, 0x100);
	vmem_xfree(vmp, q, 0x100);
	(void)vmem_add(vmp, ADDR(0x300000), 0x1000, VM_SLEEP);
	vmem_destroy(vmp);
}

/*
 * Quantum caches (found by the bad_calls fuzz target, kept in
 * corpus/bad_calls/regressions/): a vmem_free whose wrong size is the
 * slab size, at a slab's first buffer, would find the slab's own segment
 * in the hash and free the slab under its cache; and a failed VM_PANIC
 * vmem_alloc served by a quantum cache named the cache's slab import (a
 * vmem_xalloc of the slab size) instead of the call made.
 */
static void
free_qcache_buffer_with_the_slab_size(void *arg)
{
	vmem_t *vmp = vmem_create("bq_slab", ADDR(BASE), SIZE, 1, NULL, NULL,
	    NULL, 2, VM_SLEEP);
	void *p = vmem_alloc(vmp, 2, VM_SLEEP);
	(void)arg;
	vmem_free(vmp, p, 8); /* the slab is 8: 3 x qcache_max, rounded up */
}

QTEST(free_of_a_quantum_cache_buffer_with_the_slab_size_aborts)
{
	/* key arguments: the address and the size given */
	QT_TRUE(qt_expect_abort(free_qcache_buffer_with_the_slab_size, NULL,
	    "vmem_free(arena \"bq_slab\""));
	QT_STR_CONTAINS(qt_last_stderr(), "wrong size");
	QT_STR_CONTAINS(qt_last_stderr(), "quantum cache \"bq_slab_2\"");
	QT_STDERR_HAS_HEX(BASE);
	QT_STDERR_HAS_NUMBER(8);
}

static void
panic_alloc_from_a_full_quantum_cache(void *arg)
{
	vmem_t *vmp = vmem_create("bq_panic", ADDR(BASE), 0x100, Q16, NULL,
	    NULL, NULL, 0x20, VM_SLEEP);
	(void)arg;
	(void)vmem_xalloc(vmp, 0x100, 0, 0, 0, NULL, NULL, VM_SLEEP);
	(void)vmem_alloc(vmp, 0x10, VM_NOSLEEP | VM_PANIC);
}

QTEST(failed_vm_panic_alloc_from_a_quantum_cache_names_vmem_alloc)
{
	/* key argument: the size asked for, not the slab's */
	QT_TRUE(qt_expect_abort(panic_alloc_from_a_full_quantum_cache, NULL,
	    "vmem_alloc(arena \"bq_panic\", size 0x10,"));
	QT_STR_CONTAINS(qt_last_stderr(), "allocation failed (VM_PANIC)");
	QT_TRUE(strstr(qt_last_stderr(), "vmem_xalloc") == NULL);
}

QTEST(the_same_calls_made_correctly_do_not_abort)
{
	int status = qt_capture_stderr(good_calls, NULL);
	QT_TRUE(WIFEXITED(status));
	QT_EQ(WEXITSTATUS(status), 0);
}

QTEST_MAIN()
