/*
 * quanta — tests/test_vmem_xalloc.c: constrained allocation.
 *
 * align (a power of two, 0 meaning the quantum), phase (addr % align ==
 * phase), nocross (the allocation may not straddle a multiple of nocross;
 * ending exactly on one is not straddling), and the window [minaddr,
 * maxaddr), alone and combined.  vmem_xalloc places the allocation at the
 * lowest address inside the chosen free segment that meets every constraint,
 * so each address below is exact.  Valid requests that cannot be met with the
 * space available fail with NULL under VM_NOSLEEP and count in vs_fail.
 */
#include "qtest.h"

#include "vmem.h"

#include "vmem_testutil.h"

/* xalloc with NOSLEEP, addresses as integers. */
static uintptr_t
xa(vmem_t *vmp, size_t size, size_t align, size_t phase, size_t nocross,
    uintptr_t minaddr, uintptr_t maxaddr)
{
	return UADDR(vmem_xalloc(vmp, size, align, phase, nocross,
	    ADDR(minaddr), ADDR(maxaddr), VM_NOSLEEP));
}

QTEST(xalloc_without_constraints_cuts_from_the_start_like_alloc)
{
	vmem_t *vmp = make_arena("xa_plain", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0, 0), 0x100000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0, 0), 0x100100);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x200);
	vmem_xfree(vmp, ADDR(0x100000), 0x100);
	vmem_xfree(vmp, ADDR(0x100100), 0x100);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0);
	QT_EQ(stats_of(vmp).vs_segs_free, 1);
	vmem_destroy(vmp);
}

/* Nothing constrains it: instant fit takes a list head, no search step. */
QTEST(xalloc_without_constraints_takes_a_list_head_without_a_search_step)
{
	vmem_t *vmp = make_arena("xa_plain_head", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0, 0), 0x100000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0, 0), 0x100100);
	QT_EQ(stats_of(vmp).vs_search, 0);
	vmem_xfree(vmp, ADDR(0x100000), 0x100);
	vmem_xfree(vmp, ADDR(0x100100), 0x100);
	vmem_destroy(vmp);
}

QTEST(xalloc_rounds_size_up_to_the_quantum)
{
	vmem_t *vmp = make_arena("xa_round", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x11, 0, 0, 0, 0, 0), 0x100000);
	QT_EQ(xa(vmp, 0x1, 0, 0, 0, 0, 0), 0x100020);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x30);
	vmem_xfree(vmp, ADDR(0x100000), 0x11);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x10);
	vmem_destroy(vmp);
}

QTEST(xalloc_align_takes_the_lowest_aligned_address)
{
	vmem_t *vmp = make_arena("xa_align", BASE, SIZE, Q16);
	vmem_stats_t st;
	QT_EQ(UADDR(vmem_alloc(vmp, 0x10, VM_SLEEP)), 0x100000);
	QT_EQ(xa(vmp, 0x100, 0x1000, 0, 0, 0, 0), 0x101000);
	QT_EQ(xa(vmp, 0x100, 0x1000, 0, 0, 0, 0), 0x102000);
	QT_EQ(xa(vmp, 0x10, 0x40, 0, 0, 0, 0x101000), 0x100040);
	st = stats_of(vmp);
	QT_EQ(st.vs_segs_alloc, 4);
	QT_EQ(st.vs_mem_inuse, 0x220);
	vmem_destroy(vmp);
}

QTEST(xalloc_align_zero_means_the_quantum)
{
	vmem_t *vmp = make_arena("xa_align0", BASE, SIZE, Q16);
	QT_EQ(UADDR(vmem_alloc(vmp, 0x10, VM_SLEEP)), 0x100000);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0, 0), 0x100010);
	QT_EQ(xa(vmp, 0x10, 16, 0, 0, 0, 0), 0x100020);
	vmem_destroy(vmp);
}

QTEST(xalloc_phase_places_the_start_at_that_offset_from_alignment)
{
	vmem_t *vmp = make_arena("xa_phase", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0x1000, 0x10, 0, 0, 0), 0x100010);
	QT_EQ(xa(vmp, 0x100, 0x1000, 0x10, 0, 0, 0), 0x101010);
	/* 0x100F00 + 0x200 would overrun [0x100110, 0x101010). */
	QT_EQ(xa(vmp, 0x200, 0x1000, 0xF00, 0, 0, 0), 0x101F00);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x400);
	vmem_destroy(vmp);
}

QTEST(xalloc_align_and_phase_with_page_quantum)
{
	vmem_t *vmp = make_arena("xa_page", 0x10000000, 0x1000000, 0x1000);
	QT_EQ(xa(vmp, 0x1000, 0x10000, 0x3000, 0, 0, 0), 0x10003000);
	QT_EQ(xa(vmp, 0x1000, 0x10000, 0x3000, 0, 0, 0), 0x10013000);
	QT_EQ(xa(vmp, 0x1, 0, 0, 0, 0, 0), 0x10000000);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x3000);
	vmem_destroy(vmp);
}

QTEST(xalloc_nocross_moves_the_allocation_past_the_boundary)
{
	vmem_t *vmp = make_arena("xa_nocross", BASE, SIZE, Q16);
	QT_EQ(UADDR(vmem_alloc(vmp, 0xF80, VM_SLEEP)), 0x100000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0x1000, 0, 0), 0x101000);
	/* The 0x80 left before the boundary still serves what fits. */
	QT_EQ(xa(vmp, 0x80, 0, 0, 0x1000, 0, 0), 0x100F80);
	vmem_destroy(vmp);
}

QTEST(xalloc_nocross_allows_ending_exactly_on_the_boundary)
{
	vmem_t *vmp = make_arena("xa_nocross_edge", BASE, SIZE, Q16);
	QT_EQ(UADDR(vmem_alloc(vmp, 0xF00, VM_SLEEP)), 0x100000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0x1000, 0, 0), 0x100F00);
	QT_EQ(xa(vmp, 0x1000, 0, 0, 0x1000, 0, 0), 0x101000);
	vmem_destroy(vmp);
}

QTEST(xalloc_nocross_in_an_identifier_arena)
{
	vmem_t *vmp = vmem_create("xa_ids", ADDR(1), 999, 1, NULL, NULL, NULL,
	    0, VMC_IDENTIFIER);
	QT_TRUE(vmp != NULL);
	QT_EQ(xa(vmp, 10, 8, 0, 0, 0, 0), 8);   /* [8, 18) */
	QT_EQ(xa(vmp, 10, 0, 0, 16, 0, 0), 18); /* [18, 28) within [16, 32) */
	QT_EQ(xa(vmp, 10, 0, 0, 16, 0, 0), 32); /* 28 would straddle 32 */
	QT_EQ(xa(vmp, 4, 0, 0, 16, 16, 40), 28); /* [28, 32) fits */
	vmem_destroy(vmp);
}

QTEST(xalloc_window_starts_at_minaddr)
{
	vmem_t *vmp = make_arena("xa_window", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x180000, 0x190000), 0x180000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x180000, 0x190000), 0x180100);
	QT_EQ(stats_of(vmp).vs_segs_free, 2);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x200);
	vmem_destroy(vmp);
}

QTEST(xalloc_window_maxaddr_is_exclusive)
{
	vmem_t *vmp = make_arena("xa_window_max", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x180000, 0x180100), 0x180000);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x180000, 0x180100), 0);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x180100, 0x180200), 0x180100);
	QT_EQ(stats_of(vmp).vs_fail, 1);
	QT_EQ(stats_of(vmp).vs_alloc, 2);
	vmem_destroy(vmp);
}

QTEST(xalloc_window_with_only_minaddr_has_no_upper_bound)
{
	vmem_t *vmp = make_arena("xa_window_min", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0x1FFF00, 0), 0x1FFF00);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0x1FFF00, 0), 0);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0x1FFE00, 0), 0x1FFE00);
	vmem_destroy(vmp);
}

QTEST(xalloc_window_with_only_maxaddr_has_no_lower_bound)
{
	vmem_t *vmp = make_arena("xa_window_maxonly", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x100, 0, 0, 0, 0, 0x100100), 0x100000);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0, 0x100100), 0);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0, 0x100110), 0x100100);
	vmem_destroy(vmp);
}

/* maxaddr 1 is a window like any other (only 0 means none): [0, 1) of
 * an arena of [1, 1000) holds nothing. */
QTEST(xalloc_window_ending_at_address_1_holds_nothing_of_an_arena_starting_at_1)
{
	vmem_t *vmp = vmem_create("xa_window_at_1", ADDR(1), 999, 1, NULL,
	    NULL, NULL, 0, VMC_IDENTIFIER);
	QT_TRUE(vmp != NULL);
	QT_EQ(xa(vmp, 1, 0, 0, 0, 0, 1), 0);
	QT_EQ(stats_of(vmp).vs_fail, 1);
	QT_EQ(xa(vmp, 1, 0, 0, 0, 0, 2), 1);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 1);
	vmem_xfree(vmp, ADDR(1), 1);
	vmem_destroy(vmp);
}

QTEST(xalloc_align_phase_nocross_and_window_combined)
{
	vmem_t *vmp = make_arena("xa_combined", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x400, 0, 0, 0, 0x150000, 0x160000), 0x150000);
	/* From 0x150400: 0x150600 is 0x200 past a 0x400 multiple, and
	 * [0x150600, 0x151000) ends exactly on the nocross boundary. */
	QT_EQ(xa(vmp, 0xA00, 0x400, 0x200, 0x1000, 0x150000, 0x160000),
	    0x150600);
	/* 0xA10 from 0x151200 ends at 0x151C10: the first that does not
	 * straddle a 0x1000 multiple. */
	QT_EQ(xa(vmp, 0xA10, 0x400, 0x200, 0x1000, 0x150000, 0x160000),
	    0x151200);
	/* Both constraints and a window near its top. */
	QT_EQ(xa(vmp, 0x100, 0x100, 0x80, 0x1000, 0x15F000, 0x160000),
	    0x15F080);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x400 + 0xA00 + 0xA10 + 0x100);
	vmem_destroy(vmp);
}

QTEST(xalloc_window_and_alignment_with_no_aligned_room_returns_null)
{
	vmem_t *vmp = make_arena("xa_window_align", BASE, SIZE, Q16);
	/* [0x180010, 0x181000) has no 0x1000-aligned start for 0x100. */
	QT_EQ(xa(vmp, 0x100, 0x1000, 0, 0, 0x180010, 0x181000), 0);
	QT_EQ(xa(vmp, 0x100, 0x1000, 0, 0, 0x180010, 0x181100), 0x181000);
	QT_EQ(stats_of(vmp).vs_fail, 1);
	vmem_destroy(vmp);
}

QTEST(xalloc_nosleep_returns_null_when_the_window_is_in_use)
{
	vmem_t *vmp = make_arena("xa_window_full", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, 0x1000, 0, 0, 0, 0x180000, 0x181000), 0x180000);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0x180000, 0x181000), 0);
	QT_EQ(stats_of(vmp).vs_fail, 1);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0x1000);
	/* The rest of the arena is untouched and still serves. */
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0x181000, 0), 0x181000);
	vmem_destroy(vmp);
}

QTEST(xalloc_nosleep_returns_null_when_no_aligned_address_has_room)
{
	/* Span [0x100010, 0x101010): the only 0x1000-aligned start is
	 * 0x101000, with 0x10 bytes after it. */
	vmem_t *vmp = make_arena("xa_align_room", 0x100010, 0x1000, Q16);
	QT_EQ(xa(vmp, 0x1000, 0x1000, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, 0x20, 0x1000, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, 0x10, 0x1000, 0, 0, 0, 0), 0x101000);
	QT_EQ(stats_of(vmp).vs_fail, 2);
	QT_EQ(stats_of(vmp).vs_alloc, 1);
	vmem_destroy(vmp);
}

QTEST(xalloc_nosleep_returns_null_when_free_space_straddles_nocross)
{
	vmem_t *vmp = make_arena("xa_nocross_room", BASE, 0x2000, Q16);
	void *mid;
	QT_EQ(UADDR(vmem_alloc(vmp, 0x800, VM_SLEEP)), 0x100000);
	mid = vmem_alloc(vmp, 0x1000, VM_SLEEP);
	QT_EQ(UADDR(mid), 0x100800);
	QT_EQ(UADDR(vmem_alloc(vmp, 0x800, VM_SLEEP)), 0x101800);
	vmem_free(vmp, mid, 0x1000);
	/* [0x100800, 0x101800) is 0x1000 free but straddles 0x101000. */
	QT_EQ(xa(vmp, 0x1000, 0, 0, 0x1000, 0, 0), 0);
	QT_EQ(xa(vmp, 0x900, 0, 0, 0x1000, 0, 0), 0);
	QT_EQ(xa(vmp, 0x800, 0, 0, 0x1000, 0, 0), 0x100800);
	QT_EQ(xa(vmp, 0x800, 0, 0, 0x1000, 0, 0), 0x101000);
	QT_EQ(stats_of(vmp).vs_fail, 2);
	QT_EQ(vmem_size(vmp, VMEM_FREE), 0);
	vmem_destroy(vmp);
}

QTEST(xalloc_fail_counter_counts_only_null_returns)
{
	vmem_t *vmp = make_arena("xa_failcount", BASE, 0x1000, Q16);
	vmem_stats_t st;
	QT_EQ(xa(vmp, 0x800, 0x800, 0, 0, 0, 0), 0x100000);
	QT_EQ(xa(vmp, 0x1000, 0, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, 0x10, 0x1000, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, 0x10, 0, 0, 0, 0x100000, 0x100800), 0);
	QT_EQ(xa(vmp, 0x800, 0, 0, 0, 0, 0), 0x100800);
	st = stats_of(vmp);
	QT_EQ(st.vs_fail, 3);
	QT_EQ(st.vs_alloc, 2);
	QT_EQ(st.vs_free, 0);
	vmem_destroy(vmp);
}

QTEST(xfree_of_constrained_segments_coalesces_back_to_one_segment)
{
	vmem_t *vmp = make_arena("xa_xfree", BASE, SIZE, Q16);
	vmem_stats_t st;
	uintptr_t a = xa(vmp, 0x100, 0x1000, 0x10, 0, 0, 0);
	uintptr_t b = xa(vmp, 0x300, 0, 0, 0x1000, 0x180F00, 0);
	uintptr_t c = xa(vmp, 0x40, 0x100, 0, 0, 0, 0x100300);
	QT_EQ(a, 0x100010);
	QT_EQ(b, 0x181000);
	QT_EQ(c, 0x100200);
	st = stats_of(vmp);
	QT_EQ(st.vs_segs_alloc, 3);
	vmem_xfree(vmp, ADDR(a), 0x100);
	vmem_xfree(vmp, ADDR(b), 0x300);
	vmem_xfree(vmp, ADDR(c), 0x40);
	st = stats_of(vmp);
	QT_EQ(st.vs_segs_alloc, 0);
	QT_EQ(st.vs_segs_free, 1);
	QT_EQ(st.vs_largest_free, SIZE);
	QT_EQ(st.vs_free, 3);
	vmem_destroy(vmp);
}

QTEST(xalloc_of_sizes_near_the_top_of_size_t_returns_null)
{
	vmem_t *vmp = make_arena("xa_huge", BASE, SIZE, Q16);
	QT_EQ(xa(vmp, SIZE_MAX - 0xF, 0, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, SIZE_MAX, 0, 0, 0, 0, 0), 0);
	QT_EQ(xa(vmp, SIZE_MAX - 0xFFF, 0x1000, 0x10, 0, 0, 0), 0);
	QT_EQ(stats_of(vmp).vs_fail, 3);
	QT_EQ(vmem_size(vmp, VMEM_ALLOC), 0);
	QT_EQ(stats_of(vmp).vs_segs_free, 1);
	vmem_destroy(vmp);
}

QTEST_MAIN()
