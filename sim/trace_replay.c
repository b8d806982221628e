/*
 * trace_replay.c — the scenario "trace" of quanta-sim trace FILE: an
 * allocation trace (malloc/TRACE.md) replayed on the simulated platform,
 * over the calls the malloc front end makes.
 *
 * Theory
 * ------
 * Each trace thread is a simulated worker (threads beyond
 * TR_WORKERS_MAX workers share one, t mod the number of workers);
 * a worker does its records in trace order, and the seed's scheduler
 * picks the interleaving between workers.  A record that names a block
 * another thread allocates waits (sim_yield) until that block is live.
 * That wait always ends: the trace's own order is a total order in which
 * every block is made before it is named, so the earliest record not yet
 * done can always run.  Records that changed nothing in the recorded run
 * (a failed call, a free of a pointer the recorder never saw) are skipped.
 *
 * A block is placed as the front end places it: a 16-byte header before
 * the user's pointer (align bytes for align > 16), a small one (header
 * included, at most UMEM_CLASS_MAX_BYTES) from umem_alloc, which rounds it
 * to its size class, a larger one from a page-quantum arena over the heap
 * (vmem_xalloc when the alignment is above the page).  Each operation is
 * checked at once: the pointer is aligned as asked; a block keeps the
 * pattern written at its allocation (nobody else was handed its bytes);
 * a realloc's new block holds the old one's bytes.  After every operation
 * the invariant checker runs, at the first step at which no thread holds a
 * lock (sim_check_soon; the caches too if no thread is inside one).  At the end, the blocks
 * the trace never freed must be exactly its live_end; the replay frees
 * them, and then no umem_alloc class holds a buffer out and the large
 * arena is empty.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "trace.h"
#include "umem_impl.h"
#include "vmem_impl.h"

#define TR_HDR_BYTES 16u
#define TR_WORKERS_MAX 11u /* as when the simulator had 12 threads */
#define TR_PATTERN_BYTES 64u

enum { OBJ_UNBORN = 0, OBJ_LIVE, OBJ_FREED };
enum { K_SMALL = 0, K_LARGE, K_XLARGE };

typedef struct tr_obj {
	uintptr_t base;     /* what the source handed out */
	uintptr_t user;     /* the caller's pointer */
	size_t bytes;       /* what the source was asked for */
	size_t size;        /* what the caller asked for */
	uint8_t state, kind;
} tr_obj_t;

const qtrace_t *sim_trace_loaded;

static struct {
	tr_obj_t *obj;      /* by id, 1..nobjects */
	vmem_t *large;
	unsigned workers;
	unsigned tids[SIM_THREADS_MAX];
} R;

static size_t pattern_len(size_t size)
{
	return size < TR_PATTERN_BYTES ? size : TR_PATTERN_BYTES;
}

static uint8_t pattern_at(uint32_t id, size_t i)
{
	return (uint8_t)(id * 37u + i);
}

static void fill(const tr_obj_t *o, uint32_t id)
{
	uint8_t *u = (uint8_t *)o->user;
	for (size_t i = 0; i < pattern_len(o->size); i++)
		u[i] = pattern_at(id, i);
}

/* The first n bytes at p still hold id's pattern. */
static void verify(const void *p, size_t n, uint32_t id, const char *what)
{
	const uint8_t *u = p;
	for (size_t i = 0; i < pattern_len(n); i++)
		if (u[i] != pattern_at(id, i))
			sim_fail("trace: %s of o%u: byte %zu is 0x%02x, not "
			    "0x%02x (the block was handed to another owner?)",
			    what, id, i, u[i], pattern_at(id, i));
}

/* The source's piece for need bytes (the front end's choice). */
static void *piece_alloc(tr_obj_t *o, size_t need, size_t align)
{
	size_t page = plat_page_size();
	if (need <= UMEM_CLASS_MAX_BYTES) {
		o->kind = K_SMALL;
		o->bytes = need;
		return umem_alloc(need, UMEM_DEFAULT);
	}
	o->bytes = (need + page - 1) & ~(page - 1);
	if (align > page) {
		o->kind = K_XLARGE;
		return vmem_xalloc(R.large, o->bytes, align, 0, 0, NULL, NULL,
		    VM_SLEEP | VM_BESTFIT);
	}
	o->kind = K_LARGE;
	return vmem_alloc(R.large, o->bytes, VM_SLEEP | VM_INSTANTFIT);
}

/* size bytes aligned to align (0: 16) behind a 16-byte header. */
static void block_alloc(tr_obj_t *o, uint32_t id, size_t size, size_t align)
{
	size_t pad = align > TR_HDR_BYTES ? align : TR_HDR_BYTES;
	void *p = piece_alloc(o, size + pad, align);
	if (p == NULL)
		sim_fail("trace: o%u: no memory for %zu bytes", id, size + pad);
	o->base = (uintptr_t)p;
	o->user = (uintptr_t)p + pad;
	if (align > TR_HDR_BYTES)
		o->user &= ~(uintptr_t)(align - 1);
	o->size = size;
	if (o->user < o->base + TR_HDR_BYTES || o->user + size > o->base +
	    o->bytes)
		sim_fail("trace: o%u: [+0x%lx, +%zu) outside its piece", id,
		    (unsigned long)sim_addr((void *)o->user), size);
	if (align != 0 && o->user % align != 0)
		sim_fail("trace: o%u: +0x%lx not aligned to %zu", id,
		    (unsigned long)sim_addr((void *)o->user), align);
	fill(o, id);
}

static void block_free(tr_obj_t *o, uint32_t id)
{
	verify((void *)o->user, o->size, id, "free");
	if (o->kind == K_SMALL)
		umem_free((void *)o->base, o->bytes);
	else if (o->kind == K_XLARGE)
		vmem_xfree(R.large, (void *)o->base, o->bytes);
	else
		vmem_free(R.large, (void *)o->base, o->bytes);
	o->state = OBJ_FREED;
}

/* ---- the workers -------------------------------------------------------------- */

static bool skipped(const qtrace_rec_t *r)
{
	return (r->flags & (QTRACE_F_FAILED | QTRACE_F_FOREIGN)) != 0;
}

/* A realloc: the new block, the old one's bytes copied, the old freed. */
static void do_realloc(const qtrace_rec_t *r)
{
	tr_obj_t *old = r->ref ? &R.obj[r->ref] : NULL, *o = &R.obj[r->id];
	block_alloc(o, r->id, (size_t)r->size, 0);
	if (old == NULL)
		return;
	verify((void *)old->user, old->size, r->ref, "realloc");
	size_t n = old->size < o->size ? old->size : o->size;
	memcpy((void *)o->user, (void *)old->user, n);
	verify((void *)o->user, n, r->ref, "realloc's copy");
	block_free(old, r->ref);
	fill(o, r->id);
}

static void do_record(size_t k)
{
	const qtrace_rec_t *r = &sim_trace_loaded->rec[k];
	while (r->ref != 0 && R.obj[r->ref].state != OBJ_LIVE)
		sim_yield();
	sim_op("trace #%zu t%u %s(o%u, %llu, %llu) -> o%u", k, r->thread,
	    qtrace_op_name(r->op), r->ref, (unsigned long long)r->size,
	    (unsigned long long)r->align, r->id);
	if (r->op == QTRACE_FREE)
		block_free(&R.obj[r->ref], r->ref);
	else if (r->op == QTRACE_REALLOC)
		do_realloc(r);
	else
		block_alloc(&R.obj[r->id], r->id, (size_t)r->size,
		    (size_t)r->align);
	/* Live for the other threads only once its operation is done. */
	if (r->id != 0)
		R.obj[r->id].state = OBJ_LIVE;
	sim_op_end();
	sim_check_soon();
}

static void tr_worker(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	const qtrace_t *t = sim_trace_loaded;
	for (size_t k = 0; k < t->nrec; k++)
		if (t->rec[k].thread % R.workers == me && !skipped(&t->rec[k]))
			do_record(k);
}

/* ---- the end ------------------------------------------------------------------- */

/* Buffers of the umem_alloc classes not back in a slab or the depot. */
static size_t class_buffers_out(void)
{
	size_t out = 0;
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		if (strncmp(cp->cc_name, "umem_alloc_", 11) != 0)
			continue;
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		out += st.us_bufs_total - st.us_bufs_slab_free -
		    st.us_bufs_depot;
	}
	return out;
}

static void trace_end(void)
{
	const qtrace_t *t = sim_trace_loaded;
	sim_check_now("workers joined", true);
	uint32_t live = 0;
	for (uint32_t id = 1; id <= t->nobjects; id++)
		live += R.obj[id].state == OBJ_LIVE;
	if (live != t->live_end)
		sim_fail("trace: %u blocks live at the end, the trace leaves "
		    "%u", live, t->live_end);
	sim_op("free the %u blocks the trace leaves live", live);
	for (uint32_t id = 1; id <= t->nobjects; id++)
		if (R.obj[id].state == OBJ_LIVE)
			block_free(&R.obj[id], id);
	umem_thread_flush_self();
	sim_op_end();
	size_t out = class_buffers_out();
	if (out != 0)
		sim_fail("trace: %zu umem_alloc buffers still out at the end",
		    out);
	size_t inuse = vmem_size(R.large, VMEM_ALLOC);
	if (inuse != 0)
		sim_fail("trace: 0x%zx bytes of trace_large in use at the end",
		    inuse);
	sim_op("vmem_destroy(trace_large)");
	vmem_destroy(R.large);
	sim_op_end();
	sim_check_now("end", true);
}

static void sc_trace(void *arg)
{
	(void)arg;
	const qtrace_t *t = sim_trace_loaded;
	if (t == NULL)
		sim_fail("trace: no trace loaded (quanta-sim trace FILE)");
	R.obj = calloc((size_t)t->nobjects + 1, sizeof(*R.obj));
	if (R.obj == NULL)
		sim_fail("trace: no memory for %u objects", t->nobjects);
	R.workers = t->nthreads < TR_WORKERS_MAX ? t->nthreads :
	    TR_WORKERS_MAX;
	sim_op("vmem_create(trace_large, page quantum, from the heap)");
	R.large = vmem_create("trace_large", NULL, 0, plat_page_size(),
	    vmem_alloc, vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
	sim_op_end();
	for (unsigned i = 0; i < R.workers; i++)
		R.tids[i] = sim_spawn(tr_worker, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < R.workers; i++)
		sim_join(R.tids[i]);
	trace_end();
	free(R.obj);
}

const sim_scenario_t sim_trace_scenario = {"trace", "an allocation trace "
    "(quanta-sim trace FILE) replayed over umem_alloc and a page arena",
    sc_trace, TR_WORKERS_MAX, 0, false};
