/*
 * quanta — tests/test_vmem_import.c: arenas that import from a source.
 *
 * An arena created with afunc = vmem_alloc, ffunc = vmem_free and a source
 * starts empty, imports a span from the source when nothing fits, and gives
 * a span back through ffunc as soon as it is entirely free.  For an
 * unconstrained request the import is exactly
 * roundup(size, max(source quantum, arena quantum)); for vmem_xalloc it is
 * roundup(size + phase, max(align, source quantum)) (VMEM.md, Import).  A
 * request with nocross or an address window never imports.  The source
 * arenas manage fake ranges and cut every allocation from the start of their
 * free segment, so imported addresses are exact.  The last tests import from
 * vmem_heap_arena(), whose memory is real and is written and read back.
 */
#include "qtest.h"

#include <pthread.h>

#include "vmem.h"

#define ADDR(x) ((void *)(uintptr_t)(x))
#define UADDR(p) ((uintptr_t)(p))

#define PBASE 0x10000000u
#define PSIZE 0x1000000u
#define PQUANTUM 0x1000u

static vmem_stats_t
stats_of(vmem_t *vmp)
{
	vmem_stats_t st;
	memset(&st, 0xA5, sizeof(st));
	vmem_stats(vmp, &st);
	return st;
}

static vmem_t *
make_parent(const char *name)
{
	vmem_t *vmp = vmem_create(name, ADDR(PBASE), PSIZE, PQUANTUM, NULL,
	    NULL, NULL, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	return vmp;
}

static vmem_t *
make_child(const char *name, size_t quantum, vmem_t *source)
{
	vmem_t *vmp = vmem_create(name, NULL, 0, quantum, vmem_alloc,
	    vmem_free, source, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	return vmp;
}

QTEST(importing_arena_starts_empty_and_takes_nothing_from_its_source)
{
	vmem_t *parent = make_parent("imp_p0");
	vmem_t *child = make_child("imp_c0", 16, parent);
	vmem_stats_t st = stats_of(child);
	QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
	QT_EQ(st.vs_spans, 0);
	QT_EQ(st.vs_mem_import, 0);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(first_alloc_imports_one_source_quantum_from_the_source_start)
{
	vmem_t *parent = make_parent("imp_p1");
	vmem_t *child = make_child("imp_c1", 16, parent);
	vmem_stats_t st;
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)), PBASE);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	QT_EQ(stats_of(parent).vs_alloc, 1);
	st = stats_of(child);
	QT_EQ(st.vs_mem_import, 0x1000);
	QT_EQ(st.vs_mem_total, 0x1000);
	QT_EQ(st.vs_mem_inuse, 0x100);
	QT_EQ(st.vs_spans, 1);
	QT_EQ(st.vs_alloc, 1);
	QT_EQ(vmem_size(child, VMEM_FREE), 0xF00);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(later_allocs_are_served_from_the_imported_span)
{
	vmem_t *parent = make_parent("imp_p2");
	vmem_t *child = make_child("imp_c2", 16, parent);
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)), PBASE);
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)), PBASE + 0x100);
	QT_EQ(UADDR(vmem_alloc(child, 0xE00, VM_SLEEP)), PBASE + 0x200);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	QT_EQ(stats_of(parent).vs_alloc, 1);
	QT_EQ(stats_of(child).vs_spans, 1);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(whole_free_imported_span_is_given_back_to_the_source)
{
	vmem_t *parent = make_parent("imp_p3");
	vmem_t *child = make_child("imp_c3", 16, parent);
	void *a = vmem_alloc(child, 0x100, VM_SLEEP);
	void *b = vmem_alloc(child, 0x100, VM_SLEEP);
	vmem_stats_t st;
	vmem_free(child, a, 0x100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000); /* b still lives */
	QT_EQ(stats_of(child).vs_spans, 1);
	vmem_free(child, b, 0x100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	QT_EQ(stats_of(parent).vs_free, 1);
	QT_EQ(stats_of(parent).vs_segs_free, 1);
	st = stats_of(child);
	QT_EQ(st.vs_spans, 0);
	QT_EQ(st.vs_mem_import, 0);
	QT_EQ(st.vs_mem_total, 0);
	QT_EQ(st.vs_segs_free, 0);
	QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * The rotor holds an imported span's free space in two pieces; a request
 * for the whole span joins them (no second import), and once freed the
 * span goes back to the source (found by the stacked fuzz target: the
 * join left the rotor between the span marker and the piece, which hid
 * the span freed whole from its give-back).
 */
QTEST(a_span_joined_across_the_rotor_is_used_and_then_given_back_whole)
{
	vmem_t *parent = make_parent("imp_rj_p");
	vmem_t *child = make_child("imp_rj_c", 16, parent);
	void *a = vmem_alloc(child, 0x100, VM_NEXTFIT | VM_SLEEP);
	QT_EQ(UADDR(a), PBASE);
	vmem_free(child, a, 0x100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000); /* the rotor holds it */
	void *w = vmem_alloc(child, 0x1000, VM_FIRSTFIT | VM_NOSLEEP);
	QT_EQ(UADDR(w), PBASE);
	QT_EQ(stats_of(parent).vs_alloc, 1);
	QT_EQ(stats_of(child).vs_spans, 1);
	vmem_free(child, w, 0x1000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	QT_EQ(stats_of(child).vs_spans, 0);
	QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(import_size_is_rounded_up_to_the_source_quantum)
{
	vmem_t *parent = make_parent("imp_p4");
	vmem_t *child = make_child("imp_c4", 16, parent);
	void *p = vmem_alloc(child, 0x1010, VM_SLEEP);
	QT_EQ(UADDR(p), PBASE);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x2000);
	QT_EQ(stats_of(child).vs_mem_import, 0x2000);
	QT_EQ(vmem_size(child, VMEM_FREE), 0x2000 - 0x1010);
	vmem_free(child, p, 0x1010);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(import_size_uses_the_larger_of_arena_and_source_quantum)
{
	vmem_t *parent = make_parent("imp_p5");
	vmem_t *child = make_child("imp_c5", 0x2000, parent);
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)), PBASE);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x2000);
	QT_EQ(vmem_size(child, VMEM_ALLOC), 0x2000);
	QT_EQ(stats_of(child).vs_mem_import, 0x2000);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(a_full_imported_span_leads_to_a_second_import)
{
	vmem_t *parent = make_parent("imp_p6");
	vmem_t *child = make_child("imp_c6", 16, parent);
	void *a = vmem_alloc(child, 0x1000, VM_SLEEP);
	void *b = vmem_alloc(child, 0x1000, VM_SLEEP);
	QT_EQ(UADDR(a), PBASE);
	QT_EQ(UADDR(b), PBASE + 0x1000);
	QT_EQ(stats_of(child).vs_spans, 2);
	QT_EQ(stats_of(child).vs_mem_import, 0x2000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x2000);
	vmem_free(child, a, 0x1000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	QT_EQ(stats_of(child).vs_spans, 1);
	vmem_free(child, b, 0x1000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	QT_EQ(stats_of(child).vs_spans, 0);
	QT_EQ(stats_of(parent).vs_alloc, 2);
	QT_EQ(stats_of(parent).vs_free, 2);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(three_level_stack_imports_through_each_level_and_returns_all)
{
	vmem_t *l0 = vmem_create("imp_l0", ADDR(0x40000000), 0x10000000,
	    0x10000, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *l1 = make_child("imp_l1", 0x1000, l0);
	vmem_t *l2 = make_child("imp_l2", 16, l1);
	void *p, *q;
	QT_TRUE(l0 != NULL);
	p = vmem_alloc(l2, 0x100, VM_SLEEP);
	QT_EQ(UADDR(p), 0x40000000);
	/* l2 imports 0x1000 from l1, which imports 0x10000 from l0. */
	QT_EQ(vmem_size(l0, VMEM_ALLOC), 0x10000);
	QT_EQ(vmem_size(l1, VMEM_ALLOC), 0x1000);
	QT_EQ(vmem_size(l1, VMEM_ALLOC | VMEM_FREE), 0x10000);
	QT_EQ(vmem_size(l2, VMEM_ALLOC), 0x100);
	QT_EQ(vmem_size(l2, VMEM_ALLOC | VMEM_FREE), 0x1000);
	/* A second l2 span comes from l1's existing span. */
	q = vmem_alloc(l2, 0x1000, VM_SLEEP);
	QT_EQ(UADDR(q), 0x40001000);
	QT_EQ(vmem_size(l1, VMEM_ALLOC), 0x2000);
	QT_EQ(vmem_size(l0, VMEM_ALLOC), 0x10000);
	vmem_free(l2, p, 0x100);
	vmem_free(l2, q, 0x1000);
	QT_EQ(vmem_size(l2, VMEM_ALLOC | VMEM_FREE), 0);
	QT_EQ(vmem_size(l1, VMEM_ALLOC | VMEM_FREE), 0);
	QT_EQ(vmem_size(l0, VMEM_ALLOC), 0);
	QT_EQ(stats_of(l1).vs_spans, 0);
	vmem_destroy(l2);
	vmem_destroy(l1);
	vmem_destroy(l0);
}

/* ---- custom import functions ----------------------------------------- */

struct import_log {
	int alloc_calls;
	int free_calls;
	vmem_t *last_source;
	size_t last_alloc_size;
	uintptr_t last_free_addr;
	size_t last_free_size;
	int refuse;
	int refuse_call;       /* refuse only this call (1, 2, ...); 0: none */
	int free_calls_at[8];  /* free_calls when alloc call k+1 began */
};

/* Only one import log per test process (each test is its own child). */
static struct import_log import_log;

static void *
logging_afunc(vmem_t *source, size_t size, int vmflag)
{
	if (import_log.alloc_calls < 8)
		import_log.free_calls_at[import_log.alloc_calls] =
		    import_log.free_calls;
	import_log.alloc_calls++;
	import_log.last_source = source;
	import_log.last_alloc_size = size;
	if (import_log.refuse || import_log.alloc_calls == import_log.refuse_call)
		return NULL;
	return vmem_alloc(source, size, vmflag);
}

static void
logging_ffunc(vmem_t *source, void *addr, size_t size)
{
	import_log.free_calls++;
	import_log.last_source = source;
	import_log.last_free_addr = UADDR(addr);
	import_log.last_free_size = size;
	vmem_free(source, addr, size);
}

static vmem_t *
make_logged_child(const char *name, size_t quantum, vmem_t *source)
{
	vmem_t *vmp = vmem_create(name, NULL, 0, quantum, logging_afunc,
	    logging_ffunc, source, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	return vmp;
}

QTEST(import_calls_afunc_with_the_source_and_ffunc_with_the_span)
{
	vmem_t *parent = make_parent("imp_p7");
	vmem_t *child = make_logged_child("imp_c7", 16, parent);
	void *p = vmem_alloc(child, 0x100, VM_SLEEP);
	QT_EQ(UADDR(p), PBASE);
	QT_EQ(import_log.alloc_calls, 1);
	QT_PTR_EQ(import_log.last_source, parent);
	QT_EQ(import_log.last_alloc_size, 0x1000);
	QT_EQ(import_log.free_calls, 0);
	vmem_free(child, p, 0x100);
	QT_EQ(import_log.free_calls, 1);
	QT_EQ(import_log.last_free_addr, PBASE);
	QT_EQ(import_log.last_free_size, 0x1000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

static void
refused_import_then_destroy(void *arg)
{
	vmem_t *parent = make_parent("imp_p8");
	vmem_t *child = make_logged_child("imp_refuse", 16, parent);
	vmem_stats_t st;
	(void)arg;
	import_log.refuse = 1;
	QT_PTR_EQ(vmem_alloc(child, 0x100, VM_NOSLEEP), NULL);
	QT_EQ(import_log.alloc_calls, 1);
	QT_EQ(import_log.free_calls, 0);
	st = stats_of(child);
	QT_EQ(st.vs_fail, 1);
	QT_EQ(st.vs_alloc, 0);
	QT_EQ(st.vs_spans, 0);
	QT_EQ(st.vs_mem_import, 0);
	QT_EQ(st.vs_mem_total, 0);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * A source other than vmem_alloc promises only the arena's quantum: when
 * the span imported for roundup(size + phase, align) comes back unaligned
 * and unusable, it goes back at once and a second import carries the
 * slack an aligned start needs (size + align - quantum, rounded).  Found
 * by the simulator (corpus/sim): without the second try, this request
 * imported a 0x1000 span at an odd 0x100 boundary, could not use it, gave
 * it back, and a VM_SLEEP caller did so for ever.
 */
QTEST(custom_source_import_carries_the_slack_an_aligned_request_needs)
{
	vmem_t *parent = vmem_create("imp_odd", ADDR(PBASE + 0x100), PSIZE,
	    0x100, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = make_logged_child("imp_slack", 0x100, parent);
	void *p = vmem_xalloc(child, 0x200, 0x1000, 0, 0, NULL, NULL,
	    VM_NOSLEEP);
	QT_EQ(UADDR(p), PBASE + 0x2000);
	QT_EQ(import_log.alloc_calls, 2);
	QT_EQ(import_log.last_alloc_size, 0x2000);
	QT_EQ(import_log.free_calls, 1);
	QT_EQ(import_log.last_free_addr, PBASE + 0x100);
	QT_EQ(import_log.last_free_size, 0x1000);
	vmem_xfree(child, p, 0x200);
	QT_EQ(import_log.free_calls, 2);
	QT_EQ(import_log.last_free_addr, PBASE + 0x1100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * The same with a phase larger than the size (0x800 > 0x200): the source
 * starts at an odd 0x900, so the first span [P+0x900, P+0x1900) holds no
 * start 0x800 past a 0x1000 boundary with 0x200 after it; the second
 * import (made while the first is still held, so it is the source's next
 * range, [P+0x1900, P+0x3900)) carries the slack (0x200 + 0x800 + 0xf00,
 * rounded: 0x2000) and the piece is at P+0x2800.  The overflow check of
 * the second import must add the phase to the size, not take it away
 * (size - phase wraps).
 */
QTEST(custom_source_import_carries_the_slack_for_a_phase_larger_than_the_size)
{
	vmem_t *parent = vmem_create("imp_odd_phase", ADDR(PBASE + 0x900),
	    PSIZE, 0x100, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = make_logged_child("imp_slack_phase", 0x100, parent);
	void *p = vmem_xalloc(child, 0x200, 0x1000, 0x800, 0, NULL, NULL,
	    VM_NOSLEEP);
	QT_EQ(UADDR(p), PBASE + 0x2800);
	QT_EQ(import_log.alloc_calls, 2);
	QT_EQ(import_log.last_alloc_size, 0x2000);
	QT_EQ(import_log.free_calls, 1);
	QT_EQ(import_log.last_free_addr, PBASE + 0x900);
	QT_EQ(import_log.last_free_size, 0x1000);
	vmem_xfree(child, p, 0x200);
	QT_EQ(import_log.free_calls, 2);
	QT_EQ(import_log.last_free_addr, PBASE + 0x1900);
	QT_EQ(import_log.last_free_size, 0x2000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * A huge aligned request to an arena with a custom source: the import
 * size (size + phase, rounded to the alignment) would wrap, so the source
 * is never asked and the request fails.
 */
QTEST(a_huge_aligned_request_whose_import_would_wrap_never_calls_the_source)
{
	vmem_t *parent = make_parent("imp_huge_p");
	vmem_t *child = make_logged_child("imp_huge", 0x100, parent);
	QT_PTR_EQ(vmem_xalloc(child, SIZE_MAX - 0x1000 + 1, 0x2000, 0x1000, 0,
	    NULL, NULL, VM_NOSLEEP), NULL);
	QT_PTR_EQ(vmem_xalloc(child, SIZE_MAX - 0x2000 + 1, 0x4000, 0, 0,
	    NULL, NULL, VM_NOSLEEP), NULL);
	QT_EQ(import_log.alloc_calls, 0);
	QT_EQ(stats_of(child).vs_fail, 2);
	QT_EQ(stats_of(child).vs_spans, 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/*
 * The same request with VM_SLEEP, the source refusing the second import
 * (the one with the slack): the unusable first span is given back before
 * the caller waits, not held across the wait, so the third import finds
 * the source as it was and takes that span again; the fourth, with the
 * slack, fits.  Exactly one wait.
 */
QTEST(a_sleeping_request_gives_an_unusable_import_back_before_it_waits)
{
	vmem_t *parent = vmem_create("imp_odd_wait", ADDR(PBASE + 0x100), PSIZE,
	    0x100, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = make_logged_child("imp_slack_wait", 0x100, parent);
	import_log.refuse_call = 2;
	void *p = vmem_xalloc(child, 0x200, 0x1000, 0, 0, NULL, NULL,
	    VM_SLEEP);
	QT_EQ(UADDR(p), PBASE + 0x2000);
	QT_EQ(import_log.alloc_calls, 4);
	QT_EQ(import_log.free_calls_at[1], 0);
	QT_EQ(import_log.free_calls_at[2], 1); /* given back before the wait */
	QT_EQ(import_log.free_calls_at[3], 1);
	QT_EQ(import_log.free_calls, 2);
	QT_EQ(import_log.last_free_addr, PBASE + 0x100);
	QT_EQ(import_log.last_free_size, 0x1000);
	QT_EQ(stats_of(child).vs_wait, 1);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x2000);
	vmem_xfree(child, p, 0x200);
	QT_EQ(import_log.free_calls, 3);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(refusing_afunc_makes_nosleep_alloc_fail_and_leaks_nothing)
{
	int status = qt_capture_stderr(refused_import_then_destroy, NULL);
	QT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	QT_TRUE(strstr(qt_last_stderr(), "leaked") == NULL);
}

QTEST(after_a_refused_import_the_next_import_succeeds)
{
	vmem_t *parent = make_parent("imp_p9");
	vmem_t *child = make_logged_child("imp_c9", 16, parent);
	import_log.refuse = 1;
	QT_PTR_EQ(vmem_alloc(child, 0x100, VM_NOSLEEP), NULL);
	import_log.refuse = 0;
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_NOSLEEP)), PBASE);
	QT_EQ(import_log.alloc_calls, 2);
	QT_EQ(stats_of(child).vs_fail, 1);
	QT_EQ(stats_of(child).vs_alloc, 1);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(xalloc_import_is_rounded_to_the_alignment_and_honours_phase)
{
	vmem_t *parent = make_parent("imp_p10");
	vmem_t *child = make_logged_child("imp_c10", 16, parent);
	/* roundup(0x100 + 0x1000, max(0x4000, 0x1000)) = 0x4000 */
	void *p = vmem_xalloc(child, 0x100, 0x4000, 0x1000, 0, NULL, NULL,
	    VM_SLEEP);
	QT_EQ(import_log.alloc_calls, 1);
	QT_EQ(import_log.last_alloc_size, 0x4000);
	QT_EQ(UADDR(p), PBASE + 0x1000);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x4000);
	vmem_xfree(child, p, 0x100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	QT_EQ(import_log.free_calls, 1);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(xalloc_with_a_window_or_nocross_never_imports)
{
	vmem_t *parent = make_parent("imp_p11");
	vmem_t *child = make_logged_child("imp_c11", 16, parent);
	QT_PTR_EQ(vmem_xalloc(child, 0x100, 0, 0, 0, ADDR(PBASE),
		      ADDR(PBASE + 0x100000), VM_NOSLEEP),
	    NULL);
	QT_PTR_EQ(vmem_xalloc(child, 0x100, 0, 0, 0x1000, NULL, NULL,
		      VM_NOSLEEP),
	    NULL);
	QT_EQ(import_log.alloc_calls, 0);
	QT_EQ(stats_of(child).vs_fail, 2);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(source_that_is_full_makes_nosleep_import_fail)
{
	vmem_t *parent = vmem_create("imp_p12", ADDR(PBASE), 0x2000, PQUANTUM,
	    NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = make_child("imp_c12", 16, parent);
	QT_TRUE(parent != NULL);
	QT_EQ(UADDR(vmem_alloc(child, 0x2000, VM_NOSLEEP)), PBASE);
	QT_PTR_EQ(vmem_alloc(child, 0x10, VM_NOSLEEP), NULL);
	QT_EQ(stats_of(child).vs_fail, 1);
	QT_EQ(stats_of(parent).vs_fail, 1);
	QT_EQ(stats_of(child).vs_spans, 1);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* ---- the heap arena: real memory --------------------------------------- */

QTEST(heap_arena_has_page_quantum)
{
	vmem_t *heap = vmem_heap_arena();
	QT_TRUE(heap != NULL);
	QT_EQ(vmem_quantum(heap), (uintmax_t)sysconf(_SC_PAGESIZE));
}

QTEST(memory_arena_importing_from_the_heap_is_writable_and_readable)
{
	enum { N = 8 };
	vmem_t *heap = vmem_heap_arena();
	vmem_t *mem = make_child("imp_mem", 16, heap);
	size_t page = vmem_quantum(heap);
	size_t sizes[N];
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		sizes[i] = (size_t)(i + 1) * 1000u + (i % 2 ? page : 0);
		p[i] = vmem_alloc(mem, sizes[i], VM_SLEEP);
		QT_TRUE(p[i] != NULL);
		QT_EQ(UADDR(p[i]) % 16, 0);
		memset(p[i], 0x11 * (i + 1), sizes[i]);
	}
	for (int i = 0; i < N; i++)
		for (size_t k = 0; k < sizes[i]; k++)
			if (p[i][k] != (unsigned char)(0x11 * (i + 1)))
				QT_EQ(p[i][k], 0x11 * (i + 1));
	QT_TRUE(stats_of(mem).vs_mem_import >= vmem_size(mem, VMEM_ALLOC));
	for (int i = 0; i < N; i++)
		vmem_free(mem, p[i], sizes[i]);
	QT_EQ(vmem_size(mem, VMEM_ALLOC), 0);
	QT_EQ(vmem_size(mem, VMEM_ALLOC | VMEM_FREE), 0);
	QT_EQ(stats_of(mem).vs_mem_import, 0);
	vmem_destroy(mem);
}

QTEST(heap_import_takes_exactly_one_page_for_a_small_request)
{
	vmem_t *heap = vmem_heap_arena();
	vmem_t *mem = make_child("imp_mem_page", 16, heap);
	size_t page = vmem_quantum(heap);
	size_t heap_before = vmem_size(heap, VMEM_ALLOC);
	char *p = vmem_alloc(mem, 100, VM_SLEEP);
	QT_TRUE(p != NULL);
	QT_EQ(UADDR(p) % page, 0);
	QT_EQ(stats_of(mem).vs_mem_import, page);
	QT_EQ(vmem_size(mem, VMEM_ALLOC | VMEM_FREE), page);
	/* The heap may also serve tags to the allocator itself: at least. */
	QT_TRUE(vmem_size(heap, VMEM_ALLOC) >= heap_before + page);
	memset(p, 'x', page);
	QT_EQ(p[page - 1], 'x');
	vmem_free(mem, p, 100);
	QT_EQ(stats_of(mem).vs_mem_import, 0);
	QT_EQ(vmem_size(mem, VMEM_ALLOC | VMEM_FREE), 0);
	vmem_destroy(mem);
}

QTEST(large_heap_backed_allocation_is_writable_end_to_end)
{
	vmem_t *heap = vmem_heap_arena();
	vmem_t *mem = make_child("imp_mem_big", 4096, heap);
	size_t size = 4u << 20;
	unsigned char *p = vmem_alloc(mem, size, VM_SLEEP);
	QT_TRUE(p != NULL);
	memset(p, 0x5A, size);
	QT_EQ(p[0], 0x5A);
	QT_EQ(p[size / 2], 0x5A);
	QT_EQ(p[size - 1], 0x5A);
	QT_EQ(vmem_size(mem, VMEM_ALLOC), size);
	vmem_free(mem, p, size);
	QT_EQ(vmem_size(mem, VMEM_ALLOC | VMEM_FREE), 0);
	vmem_destroy(mem);
}

/* ---- imports and markers, alignment, threads ----------------------------- */

struct freeing_walk {
	vmem_t *vmp;
	int visits;
};

static void
free_each_visited(void *arg, void *start, size_t size)
{
	struct freeing_walk *fw = arg;
	fw->visits++;
	vmem_free(fw->vmp, start, size);
}

QTEST(reentrant_walk_freeing_everything_gives_the_imported_span_back)
{
	vmem_t *parent = make_parent("imp_p13");
	vmem_t *child = make_child("imp_c13", 16, parent);
	struct freeing_walk fw = { child, 0 };
	for (uintptr_t i = 0; i < 3; i++)
		QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)),
		    PBASE + i * 0x100);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	vmem_walk(child, VMEM_ALLOC | VMEM_REENTRANT, free_each_visited, &fw);
	QT_EQ(fw.visits, 3);
	/* With the walker marker gone the span is whole and free. */
	QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
	QT_EQ(stats_of(child).vs_spans, 0);
	QT_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(child);
	vmem_destroy(parent);
}

QTEST(aligned_xalloc_importing_unaligned_source_space_aligns_or_fails_cleanly)
{
	vmem_t *parent = make_parent("imp_p14");
	vmem_t *child = make_logged_child("imp_c14", 16, parent);
	void *p;
	/* The source's next free address, PBASE + 0x1000, is not 0x4000
	 * aligned. */
	QT_EQ(UADDR(vmem_alloc(parent, 0x1000, VM_SLEEP)), PBASE);
	p = vmem_xalloc(child, 0x3000, 0x4000, 0, 0, NULL, NULL, VM_NOSLEEP);
	if (p == NULL) {
		QT_EQ(stats_of(child).vs_fail, 1);
		QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
		QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	} else {
		QT_EQ(UADDR(p) % 0x4000, 0);
		QT_EQ(vmem_size(child, VMEM_ALLOC), 0x3000);
		vmem_xfree(child, p, 0x3000);
		QT_EQ(vmem_size(child, VMEM_ALLOC | VMEM_FREE), 0);
		QT_EQ(vmem_size(parent, VMEM_ALLOC), 0x1000);
	}
	vmem_destroy(child);
	vmem_destroy(parent);
}

#define WORKERS 4
#define BLOCKS 200

struct mem_worker {
	vmem_t *mem;
	unsigned char tag;
	unsigned char *block[BLOCKS];
	size_t size[BLOCKS];
	int bad;
};

static void *
write_and_check_blocks(void *arg)
{
	struct mem_worker *w = arg;
	for (int i = 0; i < BLOCKS; i++) {
		w->size[i] = 16u + (size_t)((i * 7919 + w->tag * 104729) % 20000);
		w->block[i] = vmem_alloc(w->mem, w->size[i], VM_SLEEP);
		memset(w->block[i], w->tag, w->size[i]);
	}
	for (int i = 0; i < BLOCKS; i++)
		for (size_t k = 0; k < w->size[i]; k++)
			if (w->block[i][k] != w->tag)
				w->bad++;
	for (int i = 0; i < BLOCKS; i += 2)
		vmem_free(w->mem, w->block[i], w->size[i]);
	for (int i = 1; i < BLOCKS; i += 2)
		vmem_free(w->mem, w->block[i], w->size[i]);
	return NULL;
}

QTEST(threads_sharing_a_heap_backed_arena_never_overlap)
{
	vmem_t *mem = make_child("imp_mem_threads", 16, vmem_heap_arena());
	static struct mem_worker w[WORKERS];
	pthread_t t[WORKERS];
	vmem_stats_t st;
	for (int k = 0; k < WORKERS; k++) {
		w[k].mem = mem;
		w[k].tag = (unsigned char)(0x41 + k);
		QT_EQ(pthread_create(&t[k], NULL, write_and_check_blocks, &w[k]),
		    0);
	}
	for (int k = 0; k < WORKERS; k++)
		QT_EQ(pthread_join(t[k], NULL), 0);
	for (int k = 0; k < WORKERS; k++)
		QT_EQ(w[k].bad, 0);
	st = stats_of(mem);
	QT_EQ(st.vs_alloc, WORKERS * BLOCKS);
	QT_EQ(st.vs_free, WORKERS * BLOCKS);
	QT_EQ(st.vs_mem_inuse, 0);
	QT_EQ(st.vs_mem_import, 0);
	QT_EQ(st.vs_spans, 0);
	vmem_destroy(mem);
}

static void
destroy_leaking_importer(void *arg)
{
	vmem_t *parent = make_parent("imp_p15");
	vmem_t *child = make_child("imp_leaker", 16, parent);
	(void)arg;
	(void)vmem_alloc(child, 0x100, VM_SLEEP);
	(void)vmem_alloc(child, 0x1000, VM_SLEEP);
	vmem_destroy(child);
}

QTEST(destroy_of_an_importing_arena_reports_its_in_use_bytes)
{
	int status = qt_capture_stderr(destroy_leaking_importer, NULL);
	QT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	QT_STR_CONTAINS(qt_last_stderr(),
	    "vmem_destroy(imp_leaker): leaked 4352 bytes");
}

QTEST_MAIN()
