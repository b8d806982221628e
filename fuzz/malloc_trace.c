/*
 * malloc_trace.c — fuzz target: the input is an allocation trace
 * (malloc/TRACE.md), replayed over the placement of the malloc front end,
 * so that recorded programs (corpus/traces/) are the seeds and the engines
 * mutate real allocation behaviour.
 *
 * Theory
 * ------
 * The bytes go through the trace reader (qtrace_parse); an input it
 * rejects is rejected here (return 0).  The records replay single-threaded
 * in trace order; thread numbers are ignored (the trace's order is a total
 * order valid for one thread).  Failed and foreign records are skipped, as
 * the simulator's replay skips them.  Work is bounded: the first MT_RECORDS
 * records, sizes clamped to MT_SIZE_MAX, and an allocation that would take
 * the live bytes past MT_LIVE_MAX, or asks for an alignment that is not a
 * power of two up to MT_ALIGN_MAX, is dropped (its block never exists; a
 * later free of it is skipped, a realloc of it is a realloc(NULL, n)).
 *
 * A block is placed as the front end places it, by the front end's own
 * policy (qm_place and qm_place_off, malloc/qmalloc.h; sim/trace_replay.c
 * has an older two-source version bound to the simulator): a 16-byte
 * header before the caller's
 * pointer (align bytes when align > 16); a piece of at most
 * UMEM_CLASS_MAX_BYTES is a whole umem_alloc size class, one of at most
 * 128 KiB comes from umem_default (vmem_alloc), a larger one from a
 * page-quantum arena over the heap made for the input (vmem_xalloc one
 * page before the alignment when it is above the page).  The shadow: every
 * live block carries a pattern derived from its id in its first and last
 * MT_PATTERN bytes, checked on free and realloc (no one else was handed
 * its bytes); a realloc's new block holds the old bytes; every pointer is
 * aligned as asked and inside its piece.  The checker runs on the arena a
 * record touched and everywhere every 16th record.  At the end every block
 * is freed, and then no umem_alloc class holds a buffer out and the large
 * arena is empty.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "invariants.h"
#include "lockrank.h"
#include "qmalloc.h"
#include "trace.h"
#include "umem_impl.h"
#include "vmem_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MT_RECORDS 5000u
#define MT_SIZE_MAX ((size_t)4 << 20)
#define MT_LIVE_MAX ((size_t)64 << 20)
#define MT_ALIGN_MAX ((size_t)1 << 20)
#define MT_HDR QM_HDR_BYTES
#define MT_PATTERN 64u

/* A live block's kind is its QM_* placement kind + 1 (0: not live). */
enum { MT_NONE = 0, MT_SMALL = QM_SMALL + 1, MT_MEDIUM = QM_MEDIUM + 1,
    MT_LARGE = QM_LARGE + 1 };

typedef struct mt_obj {
	uintptr_t base, user;
	size_t bytes, size;
	uint8_t kind; /* MT_NONE: not live (never made, dropped or freed) */
} mt_obj_t;

static struct {
	mt_obj_t *obj; /* by id, 1..nobjects */
	vmem_t *large;
	size_t live;
	invariant_report_t rep;
} mt;

/* ---- the shadow ------------------------------------------------------------ */

static uint8_t mt_pattern(uint32_t id, size_t i)
{
	return (uint8_t)(id * 37u + i * 11u + (id >> 8));
}

/* The offset after i among those patterned in a block of n bytes: its
 * first and last MT_PATTERN bytes. */
static size_t mt_next(size_t i, size_t n)
{
	return i + 1 == MT_PATTERN && n > 2 * MT_PATTERN ? n - MT_PATTERN :
	    i + 1;
}

static void mt_fill(uint8_t *u, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i = mt_next(i, n))
		u[i] = mt_pattern(id, i);
}

/* The patterned bytes below limit of id's n-byte block, at u. */
static void mt_verify(const uint8_t *u, size_t n, size_t limit, uint32_t id,
    const char *what)
{
	for (size_t i = 0; i < n && i < limit; i = mt_next(i, n))
		if (u[i] != mt_pattern(id, i))
			fuzz_fail("%s of o%u (%zu bytes): byte %zu is 0x%02x, "
			    "not 0x%02x (its bytes were handed to another "
			    "owner?)", what, id, n, i, u[i],
			    mt_pattern(id, i));
}

/* The checker on vmp, or everywhere if vmp is NULL. */
static void mt_check(vmem_t *vmp)
{
	invariant_report_init(&mt.rep);
	size_t n = vmp == NULL ? invariant_check_all(&mt.rep) :
	    invariant_check_arena(vmp, &mt.rep);
	if (n != 0) {
		invariant_report_print(&mt.rep, stderr, 0);
		fuzz_fail("invariant checker: %zu violation(s)", mt.rep.count);
	}
}

/* ---- placement (the front end's policy: qm_place, malloc/qmalloc.h) ------ */

static void *mt_piece(mt_obj_t *o, size_t need, size_t align)
{
	size_t page = plat_page_size();
	o->kind = (uint8_t)(qm_place(need, page, &o->bytes) + 1);
	if (o->kind == MT_SMALL)
		return umem_alloc(o->bytes, UMEM_DEFAULT);
	if (o->kind == MT_MEDIUM)
		return vmem_alloc(umem_default_arena(), o->bytes, VM_SLEEP);
	if (align <= page)
		return vmem_alloc(mt.large, o->bytes, VM_SLEEP);
	/* One page in is aligned: the header fits in front of it. */
	return vmem_xalloc(mt.large, o->bytes, align, align - page, 0, NULL,
	    NULL, VM_SLEEP);
}

/* Block id of size bytes aligned to align (0: 16); false if dropped. */
static bool mt_alloc(uint32_t id, size_t size, size_t align)
{
	mt_obj_t *o = &mt.obj[id];
	if (size > MT_SIZE_MAX)
		size = MT_SIZE_MAX;
	if ((align & (align - 1)) != 0 || align > MT_ALIGN_MAX ||
	    mt.live + size > MT_LIVE_MAX) {
		fuzz_step("o%u dropped (size %zu, align %zu)", id, size, align);
		return false;
	}
	size_t pad = align > MT_HDR ? align : MT_HDR;
	void *p = mt_piece(o, size + pad, align);
	if (p == NULL)
		fuzz_fail("o%u: no memory for %zu bytes", id, size + pad);
	o->base = (uintptr_t)p;
	o->user = o->base + qm_place_off(o->kind - 1, o->base, pad,
	    plat_page_size());
	o->size = size;
	if (o->user < o->base + MT_HDR || o->user + size > o->base + o->bytes)
		fuzz_fail("o%u: %p+%zu outside its piece %p+%zu", id,
		    (void *)o->user, size, p, o->bytes);
	if (o->user % (align ? align : MT_HDR) != 0)
		fuzz_fail("o%u: %p not aligned to %zu", id, (void *)o->user,
		    align);
	mt_fill((uint8_t *)o->user, size, id);
	mt.live += size;
	return true;
}

static void mt_free(uint32_t id)
{
	mt_obj_t *o = &mt.obj[id];
	mt_verify((const uint8_t *)o->user, o->size, o->size, id, "free");
	if (o->kind == MT_SMALL)
		umem_free((void *)o->base, o->bytes);
	else if (o->kind == MT_MEDIUM)
		vmem_free(umem_default_arena(), (void *)o->base, o->bytes);
	else
		vmem_free(mt.large, (void *)o->base, o->bytes);
	mt.live -= o->size;
	o->kind = MT_NONE;
}

/* ---- the records ------------------------------------------------------------ */

static void mt_realloc(const qtrace_rec_t *r)
{
	mt_obj_t *old = r->ref ? &mt.obj[r->ref] : NULL;
	if (old != NULL && old->kind == MT_NONE)
		old = NULL; /* its block was dropped: realloc(NULL, n) */
	if (!mt_alloc(r->id, (size_t)r->size, 0))
		return; /* the old block stays, as after a failed realloc */
	mt_obj_t *o = &mt.obj[r->id];
	if (old == NULL)
		return;
	mt_verify((const uint8_t *)old->user, old->size, old->size, r->ref,
	    "realloc");
	size_t n = old->size < o->size ? old->size : o->size;
	memcpy((void *)o->user, (const void *)old->user, n);
	mt_verify((const uint8_t *)o->user, old->size, n, r->ref,
	    "realloc's copy");
	mt_free(r->ref);
	mt_fill((uint8_t *)o->user, o->size, r->id);
}

/* The arena a block of this kind is a piece of (NULL: a size class). */
static vmem_t *mt_arena(uint8_t kind)
{
	return kind == MT_MEDIUM ? umem_default_arena() :
	    kind == MT_LARGE ? mt.large : NULL;
}

/* One record; the arena it touched last (NULL: none). */
static vmem_t *mt_record(const qtrace_rec_t *r, size_t k)
{
	fuzz_step("#%zu %s(o%u, %llu, %llu) -> o%u", k, qtrace_op_name(r->op),
	    r->ref, (unsigned long long)r->size,
	    (unsigned long long)r->align, r->id);
	if (r->flags & (QTRACE_F_FAILED | QTRACE_F_FOREIGN))
		return NULL;
	uint8_t before = r->ref ? mt.obj[r->ref].kind : MT_NONE;
	if (r->op == QTRACE_FREE) {
		if (before != MT_NONE)
			mt_free(r->ref);
	} else if (r->op == QTRACE_REALLOC) {
		mt_realloc(r);
	} else {
		(void)mt_alloc(r->id, (size_t)r->size, (size_t)r->align);
	}
	vmem_t *made = r->id != 0 ? mt_arena(mt.obj[r->id].kind) : NULL;
	return made != NULL ? made : mt_arena(before);
}

/* ---- the end of an input -------------------------------------------------- */

/* Buffers of the umem_alloc classes not back in a slab or the depot. */
static size_t mt_class_buffers_out(void)
{
	size_t out = 0;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		if (strncmp(cp->cc_name, "umem_alloc_", 11) != 0)
			continue;
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		out += st.us_bufs_total - st.us_bufs_slab_free -
		    st.us_bufs_depot;
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	return out;
}

static void mt_end(const qtrace_t *t)
{
	fuzz_step("free every live block, destroy the large arena");
	for (uint32_t id = 1; id <= t->nobjects; id++)
		if (mt.obj[id].kind != MT_NONE)
			mt_free(id);
	if (mt.live != 0)
		fuzz_fail("%zu live bytes after freeing every block", mt.live);
	fuzz_quiesce();
	size_t out = mt_class_buffers_out();
	if (out != 0)
		fuzz_fail("%zu umem_alloc buffers still out at the end", out);
	size_t inuse = vmem_size(mt.large, VMEM_ALLOC);
	if (inuse != 0)
		fuzz_fail("0x%zx bytes of the large arena in use at the end",
		    inuse);
	vmem_destroy(mt.large);
	mt.large = NULL;
	mt_check(NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	qtrace_t t;
	char err[200];
	fuzz_log_reset();
	if (qtrace_parse(data, size, &t, err, sizeof(err)) != 0)
		return 0;
	size_t nrec = t.nrec < MT_RECORDS ? t.nrec : MT_RECORDS;
	mt.obj = calloc((size_t)t.nobjects + 1, sizeof(*mt.obj));
	if (mt.obj == NULL)
		fuzz_fail("no memory for %u objects", t.nobjects);
	mt.live = 0;
	(void)umem_default_arena();
	mt.large = vmem_create("malloc_trace_large", NULL, 0, plat_page_size(),
	    vmem_alloc, vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
	for (size_t k = 0; k < nrec; k++) {
		vmem_t *touched = mt_record(&t.rec[k], k);
		if (k % 16 == 15)
			mt_check(NULL);
		else if (touched != NULL)
			mt_check(touched);
	}
	mt_end(&t);
	free(mt.obj);
	mt.obj = NULL;
	qtrace_release(&t);
	return 0;
}
