/*
 * caches.c — fuzz target: programs over object caches, umem_alloc and the
 * quantum caches of vmem arenas, checked against a shadow after every step.
 *
 * Theory
 * ------
 * The input decodes into up to FC_STEPS operations over at most FC_CACHES
 * object caches made by the program (any buffer size 1..2048, alignment 0
 * or a power of two up to 256, an optional constructor that fails every
 * k-th call, an optional destructor), the umem_alloc size classes (sizes up
 * to 20000, so the arena path above 16 KiB is taken too) and at most
 * FC_ARENAS identifier arenas with quantum caches (a fake base: the ranges
 * are integers and are never touched).  Operations: create, alloc (cache,
 * umem_alloc, umem_zalloc, vmem_alloc), free of a live buffer, umem_reap,
 * a magazine resize (white-box, as the depot's contention window does it),
 * cache destroy, arena destroy and umem_thread_flush_self.
 *
 * The shadow keeps every live buffer with its owner, size and the seed of
 * the pattern its owner wrote over it.  What is checked:
 *   - a NULL only when a constructor failed during the call (memory caches
 *     and umem_alloc here never run out: a few MiB at most) or, for a
 *     quantum cache, when neither the cache nor its arena had room;
 *   - every buffer aligned as asked, inside its arena (ranges), overlapping
 *     no live buffer of its name space (memory, or that arena);
 *   - a constructed object comes back constructed (its tag intact), a
 *     umem_zalloc buffer reads zero, a buffer keeps its pattern until freed;
 *   - constructors run only on buffers nobody holds, destructors only on
 *     buffers that were constructed and are not held, each tag intact;
 *   - the statistics agree with the shadow: buffers in slabs minus free in
 *     slabs, in depot magazines and in slot magazines = buffers the program
 *     holds; constructions, destructions and failed allocations counted
 *     exactly; every constructed object destroyed by the cache's destroy;
 *     at most UMEM_FREE_SLABS_KEEP wholly free slabs between reaps; an
 *     arena's bytes in use = its quantum caches' slabs;
 *   - invariant_umem_cache clean for every cache after every step.
 * Every input frees what it holds and destroys what it made, so the next
 * starts from the same state (the size-class caches persist; the end of
 * each input checks that they hold nothing for a caller).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_leak.h"
#include "lockrank.h"
#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FC_CACHES 4
#define FC_ARENAS 2
#define FC_LIVE 512
#define FC_STEPS 600
#define FC_TAG_BYTES 8
#define FC_BUFSIZE_MAX 2048
#define FC_UMEM_SIZE_MAX 20000
/* A fake, slab-aligned base for the identifier arenas: 16 MiB. */
#define FC_ARENA_BASE ((uintptr_t)1 << 24)

typedef struct fc_cache {
	umem_cache_t *cp;
	size_t bufsize, align;
	bool ctor, dtor, nofail_ok;
	uint32_t fail_every; /* 0: the constructor never fails */
	uint64_t ctor_calls, ctor_ok, ctor_fail, dtor_calls, reclaims;
	uint64_t inj_fail; /* NULLs excused by injection (us_alloc_fail) */
	uint64_t tagseed;
	size_t live;
	char name[UMEM_NAMELEN];
} fc_cache_t;

typedef struct fc_arena {
	vmem_t *vmp;
	uintptr_t base;
	size_t size, quantum, qmax, slab;
	size_t live;
	uint64_t inj_fail; /* quantum cache NULLs excused by injection */
	char name[VMEM_NAMELEN];
} fc_arena_t;

enum { FC_K_CACHE = 1, FC_K_UMEM = 2, FC_K_VMEM = 3 };

typedef struct fc_live {
	int kind, owner; /* owner: cache or arena index */
	uint8_t *p;
	size_t size; /* bytes the owner may touch (cache: bufsize) */
	uint8_t seed;
} fc_live_t;

static struct {
	fc_cache_t c[FC_CACHES];
	fc_arena_t a[FC_ARENAS];
	fc_live_t l[FC_LIVE];
	size_t nlive;
	uint64_t serial;
	uint64_t nofail_calls;
	bool step_all;         /* the step touched every cache */
	size_t step_umem_size; /* the umem_alloc size the step used, or 0 */
	umem_cache_t *step_qcache; /* the quantum cache the step used */
	uint64_t mtbf;         /* the global mtbf around this step, 0: none */
} fc;

/* A NULL from a call that may fail, excused by injection: only when the
 * clock could have fired it during the call (fuzz_common.h). */
static bool fc_injected(void)
{
	return fc.mtbf != 0 && fuzz_mtbf_fired();
}

static const uint32_t fc_magsizes[UMEM_MAGTYPES] = {1, 3, 7, 15, 31, 63, 127,
    255};

/* ---- patterns and tags --------------------------------------------------- */

static uint8_t fc_pattern(uint8_t seed, size_t i)
{
	return (uint8_t)(seed ^ (uint8_t)(i * 131u + (i >> 8) * 7u + 1u));
}

static size_t fc_tag_bytes(const fc_cache_t *c)
{
	return c->ctor ? (c->bufsize < FC_TAG_BYTES ? c->bufsize
						    : FC_TAG_BYTES)
		       : 0;
}

static uint8_t fc_tag(const fc_cache_t *c, const void *buf, size_t i)
{
	uint64_t t = ((uint64_t)(uintptr_t)buf * 0x9E3779B97F4A7C15ull) ^
	    c->tagseed;
	return (uint8_t)(t >> (8 * (i % 8)));
}

static bool fc_tag_ok(const fc_cache_t *c, const uint8_t *buf)
{
	for (size_t i = 0; i < fc_tag_bytes(c); i++)
		if (buf[i] != fc_tag(c, buf, i))
			return false;
	return true;
}

/* ---- the shadow ---------------------------------------------------------- */

/* The live buffer of the same name space overlapping [p, p + n), or -1. */
static long fc_overlap(int space, const uint8_t *p, size_t n)
{
	uintptr_t a = (uintptr_t)p, e = a + n;
	for (size_t i = 0; i < fc.nlive; i++) {
		const fc_live_t *l = &fc.l[i];
		int ls = l->kind == FC_K_VMEM ? 1 + l->owner : 0;
		uintptr_t b = (uintptr_t)l->p, f = b + l->size;
		if (ls == space && a < f && b < e)
			return (long)i;
	}
	return -1;
}

static void fc_live_add(int kind, int owner, uint8_t *p, size_t n,
    uint8_t seed)
{
	int space = kind == FC_K_VMEM ? 1 + owner : 0;
	long o = fc_overlap(space, p, n);
	if (o >= 0)
		fuzz_fail("buffer %p size %zu overlaps live buffer %p size %zu "
		    "(kind %d owner %d)", (void *)p, n, (void *)fc.l[o].p,
		    fc.l[o].size, fc.l[o].kind, fc.l[o].owner);
	if (fc.nlive >= FC_LIVE)
		fuzz_fail("harness: live table full");
	fc.l[fc.nlive++] = (fc_live_t){kind, owner, p, n, seed};
}

static void fc_live_remove(size_t i)
{
	fc.l[i] = fc.l[--fc.nlive];
}

/* Write the owner's pattern (memory buffers only). */
static void fc_fill(const fc_live_t *l, size_t from)
{
	for (size_t i = from; i < l->size; i++)
		l->p[i] = fc_pattern(l->seed, i);
}

static void fc_verify(const fc_live_t *l, size_t from)
{
	for (size_t i = from; i < l->size; i++)
		if (l->p[i] != fc_pattern(l->seed, i))
			fuzz_fail("buffer %p (kind %d owner %d size %zu): byte "
			    "%zu is 0x%02x, the owner wrote 0x%02x", (void *)l->p,
			    l->kind, l->owner, l->size, i, l->p[i],
			    fc_pattern(l->seed, i));
}

/* ---- constructor, destructor, reclaim, nofail ------------------------------ */

static int fc_ctor(void *buf, void *arg, int flags)
{
	fc_cache_t *c = arg;
	(void)flags;
	c->ctor_calls++;
	long o = fc_overlap(0, buf, c->bufsize);
	if (o >= 0)
		fuzz_fail("cache \"%s\": constructor called on %p, which "
		    "overlaps live buffer %p", c->name, buf, (void *)fc.l[o].p);
	if (c->align != 0 && ((uintptr_t)buf & (c->align - 1)) != 0)
		fuzz_fail("cache \"%s\": constructor got %p, not aligned to "
		    "%zu", c->name, buf, c->align);
	bool fail = c->fail_every != 0 && c->ctor_calls % c->fail_every == 0;
	uint8_t *b = buf;
	for (size_t i = 0; i < fc_tag_bytes(c); i++)
		b[i] = (uint8_t)(fail ? ~fc_tag(c, buf, i) : fc_tag(c, buf, i));
	if (fail) {
		c->ctor_fail++;
		return 1;
	}
	c->ctor_ok++;
	return 0;
}

static void fc_dtor(void *buf, void *arg)
{
	fc_cache_t *c = arg;
	c->dtor_calls++;
	long o = fc_overlap(0, buf, c->bufsize);
	if (o >= 0)
		fuzz_fail("cache \"%s\": destructor called on %p, which a "
		    "caller holds", c->name, buf);
	if (!fc_tag_ok(c, buf))
		fuzz_fail("cache \"%s\": destructor found the tag of %p "
		    "smashed (not constructed, or written by the allocator)",
		    c->name, buf);
	if (c->ctor && c->dtor_calls > c->ctor_ok)
		fuzz_fail("cache \"%s\": %llu destructions, only %llu "
		    "constructions", c->name,
		    (unsigned long long)c->dtor_calls,
		    (unsigned long long)c->ctor_ok);
}

static void fc_reclaim(void *arg)
{
	fc_cache_t *c = arg;
	c->reclaims++;
}

static int fc_nofail(void)
{
	fc.nofail_calls++;
	return UMEM_CALLBACK_RETRY;
}

/* ---- checks ----------------------------------------------------------------- */

/* Rounds held by every thread slot's magazines (quiescent cache). */
static size_t fc_slot_rounds(umem_cache_t *cp)
{
	size_t n = 0;
	for (size_t c = 0; c < UMEM_SLOT_CHUNKS; c++) {
		umem_slot_chunk_t *ch = atomic_load(&cp->cc_slotdir[c]);
		for (size_t s = 0; ch != NULL && s < UMEM_SLOTS_PER_CHUNK; s++) {
			const umem_slot_t *sl = &ch->sc_slot[s];
			if (sl->sl_loaded != NULL)
				n += sl->sl_rounds;
			if (sl->sl_prev != NULL)
				n += sl->sl_prounds;
		}
	}
	return n;
}

/* Buffers the cache believes are with callers. */
static size_t fc_held(umem_cache_t *cp, umem_cache_stats_t *st)
{
	umem_cache_stats(cp, st);
	return st->us_bufs_total - st->us_bufs_slab_free - st->us_bufs_depot -
	    fc_slot_rounds(cp);
}

static void fc_check_invariant(umem_cache_t *cp)
{
	umem_violation_t v[4];
	size_t n = invariant_umem_cache(cp, v, 4);
	if (n == 0)
		return;
	for (size_t i = 0; i < n && i < 4; i++)
		fprintf(stderr, "  %s at 0x%lx: %s\n", v[i].uv_code,
		    (unsigned long)v[i].uv_addr, v[i].uv_what);
	fuzz_fail("invariant_umem_cache(\"%s\"): %zu violation(s), first %s: "
	    "%s", cp->cc_name, n, v[0].uv_code, v[0].uv_what);
}

static void fc_check_all_invariants(void)
{
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next)
		fc_check_invariant(cp);
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

static void fc_check_cache(fc_cache_t *c)
{
	umem_cache_stats_t st;
	size_t held = fc_held(c->cp, &st);
	if (held != c->live)
		fuzz_fail("cache \"%s\": stats say %zu buffers with callers "
		    "(total %zu - slab free %zu - depot %zu - slots), the "
		    "program holds %zu", c->name, held, st.us_bufs_total,
		    st.us_bufs_slab_free, st.us_bufs_depot, c->live);
	if (st.us_alloc_fail != c->ctor_fail + c->inj_fail)
		fuzz_fail("cache \"%s\": us_alloc_fail %llu, constructor "
		    "failures %llu (and injected failures)", c->name,
		    (unsigned long long)st.us_alloc_fail,
		    (unsigned long long)c->ctor_fail);
	if (c->ctor && st.us_constructed != c->ctor_ok)
		fuzz_fail("cache \"%s\": us_constructed %llu, constructor "
		    "successes %llu", c->name,
		    (unsigned long long)st.us_constructed,
		    (unsigned long long)c->ctor_ok);
	if (c->dtor && st.us_destructed != c->dtor_calls)
		fuzz_fail("cache \"%s\": us_destructed %llu, destructor calls "
		    "%llu", c->name, (unsigned long long)st.us_destructed,
		    (unsigned long long)c->dtor_calls);
	if (st.us_slab_create - st.us_slab_destroy != st.us_slabs)
		fuzz_fail("cache \"%s\": %llu slabs created, %llu destroyed, "
		    "%zu held", c->name, (unsigned long long)st.us_slab_create,
		    (unsigned long long)st.us_slab_destroy, st.us_slabs);
	if (st.us_slabs_free > UMEM_FREE_SLABS_KEEP)
		fuzz_fail("cache \"%s\": %zu wholly free slabs kept (at most "
		    "%u between reaps)", c->name, st.us_slabs_free,
		    UMEM_FREE_SLABS_KEEP);
}

/* An arena's bytes in use are its quantum caches' slabs (the program
 * allocates only sizes its quantum caches serve). */
static void fc_check_arena(const fc_arena_t *a)
{
	vmem_stats_t vs;
	vmem_stats(a->vmp, &vs);
	size_t slabs = 0;
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++) {
		umem_cache_t *cp = a->vmp->ar_qcache[k];
		if (cp == NULL)
			continue;
		umem_cache_stats_t st;
		umem_cache_stats(cp, &st);
		slabs += st.us_slabs;
		if (st.us_alloc_fail != 0 && vs.vs_fail == 0 &&
		    a->inj_fail == 0)
			fuzz_fail("quantum cache \"%s\" failed %llu times, its "
			    "arena never", cp->cc_name,
			    (unsigned long long)st.us_alloc_fail);
	}
	if (vs.vs_mem_inuse != slabs * a->slab)
		fuzz_fail("arena \"%s\": %zu bytes in use, its quantum caches "
		    "hold %zu slabs of %zu", a->name, vs.vs_mem_inuse, slabs,
		    a->slab);
	size_t held = 0;
	for (size_t k = 0; k < VMEM_QCACHE_MAX; k++)
		if (a->vmp->ar_qcache[k] != NULL) {
			umem_cache_stats_t st;
			held += fc_held(a->vmp->ar_qcache[k], &st);
		}
	if (held != a->live)
		fuzz_fail("arena \"%s\": its quantum caches say %zu ranges with "
		    "callers, the program holds %zu", a->name, held, a->live);
}

/* The size class umem_alloc serves size from (umem_alloc.c: 8, every 16
 * up to 128, then 5/4, 6/4, 7/4, 8/4 of each power of two up to 16 KiB),
 * found by its name; NULL above the classes. */
static umem_cache_t *fc_class_cache(size_t size)
{
	size_t cls = 0;
	if (size <= 8)
		cls = 8;
	else if (size <= 128)
		cls = (size + 15) & ~(size_t)15;
	for (size_t p = 128; cls == 0 && p < UMEM_CLASS_MAX_BYTES; p *= 2)
		for (size_t q = 5; cls == 0 && q <= 8; q++)
			if (size <= p * q / 4)
				cls = p * q / 4;
	if (cls == 0)
		return NULL;
	char name[UMEM_NAMELEN];
	(void)snprintf(name, sizeof(name), "umem_alloc_%zu", cls);
	umem_cache_t *found = NULL;
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL && found == NULL;
	    cp = cp->cc_next)
		if (strcmp(cp->cc_name, name) == 0)
			found = cp;
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	if (found == NULL)
		fuzz_fail("no size class cache \"%s\" for size %zu", name, size);
	return found;
}

/* The step's checks: the program's caches and arenas always; every cache
 * after a step that touches them all (reap, flush), else the size class
 * and the quantum cache the step used (an arena's 16 quantum caches each
 * step cost 8x the speed on long programs).  (Checking all 37 classes after every step cost 4x the
 * speed, mostly in libFuzzer's feature bookkeeping of the checker.) */
static void fc_check_step(bool all, size_t umem_size)
{
	for (int i = 0; i < FC_CACHES; i++)
		if (fc.c[i].cp != NULL) {
			fc_check_cache(&fc.c[i]);
			if (!all)
				fc_check_invariant(fc.c[i].cp);
		}
	for (int i = 0; i < FC_ARENAS; i++) {
		if (fc.a[i].vmp == NULL)
			continue;
		fc_check_arena(&fc.a[i]);
	}
	if (!all && fc.step_qcache != NULL)
		fc_check_invariant(fc.step_qcache);
	if (all)
		fc_check_all_invariants();
	else if (umem_size != 0 && fc_class_cache(umem_size) != NULL)
		fc_check_invariant(fc_class_cache(umem_size));
}

/* ---- operations --------------------------------------------------------- */

static void op_cache_create(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_CACHES);
	fc_cache_t *c = &fc.c[i];
	size_t bufsize = 1 + fuzz_below(in, FC_BUFSIZE_MAX);
	uint8_t a = fuzz_u8(in), mode = fuzz_u8(in);
	size_t align = a % 10 == 0 ? 0 : (size_t)1 << (a % 10 - 1);
	int cflags = 0;
	if (mode & 0x40)
		cflags |= UMC_NOMAGAZINE;
	if (mode & 0x80)
		cflags |= UMC_NODEBUG;
	if (c->cp != NULL) {
		fuzz_step("cache_create slot %d: busy, skipped", i);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->bufsize = bufsize;
	c->align = align;
	c->ctor = (mode & 1) != 0;
	c->dtor = (mode & 2) != 0;
	c->fail_every = c->ctor ? (mode >> 2) % 8 : 0; /* 0: never */
	/* UMEM_NOFAIL retries with a RETRY callback: only when no
	 * construction can fail forever (every one failing). */
	c->nofail_ok = c->fail_every != 1;
	c->tagseed = 0x5A5A5A5A00000000ull + ++fc.serial;
	(void)snprintf(c->name, sizeof(c->name), "fz_c%d_%llu", i,
	    (unsigned long long)fc.serial);
	fuzz_step("cache_create slot %d \"%s\" size %zu align %zu ctor %d "
	    "(fails every %u) dtor %d flags 0x%x", i, c->name, bufsize, align,
	    c->ctor, c->fail_every, c->dtor, (unsigned)cflags);
	c->cp = umem_cache_create(c->name, bufsize, align,
	    c->ctor ? fc_ctor : NULL, c->dtor ? fc_dtor : NULL, fc_reclaim, c,
	    NULL, cflags);
	if (c->cp == NULL)
		fuzz_fail("umem_cache_create(\"%s\", %zu, %zu) returned NULL",
		    c->name, bufsize, align);
	umem_cache_stats_t st;
	umem_cache_stats(c->cp, &st);
	if (st.us_bufsize != bufsize || st.us_chunk_bytes < bufsize ||
	    st.us_slab_bytes < st.us_chunk_bytes)
		fuzz_fail("cache \"%s\": stats bufsize %zu chunk %zu slab %zu",
		    c->name, st.us_bufsize, st.us_chunk_bytes,
		    st.us_slab_bytes);
	if (strcmp(umem_cache_name(c->cp), c->name) != 0)
		fuzz_fail("umem_cache_name says \"%s\"",
		    umem_cache_name(c->cp));
}

static void op_cache_alloc(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_CACHES);
	uint8_t f = fuzz_u8(in), seed = fuzz_u8(in);
	fc_cache_t *c = &fc.c[i];
	if (c->cp == NULL) {
		fuzz_step("cache_alloc slot %d: no cache", i);
		return;
	}
	int flags = (f & 1) && c->nofail_ok ? UMEM_NOFAIL : UMEM_DEFAULT;
	uint64_t fails = c->ctor_fail;
	fuzz_step("cache_alloc \"%s\" flags 0x%x", c->name, (unsigned)flags);
	fuzz_mtbf_arm(fc.mtbf);
	uint8_t *p = umem_cache_alloc(c->cp, flags);
	if (p == NULL) {
		if (flags & UMEM_NOFAIL)
			fuzz_fail("umem_cache_alloc(\"%s\", UMEM_NOFAIL) "
			    "returned NULL", c->name);
		if (c->ctor_fail == fails && fc_injected()) {
			c->inj_fail++;
			return;
		}
		if (c->ctor_fail != fails + 1)
			fuzz_fail("umem_cache_alloc(\"%s\") returned NULL; "
			    "constructor failures during the call: %llu",
			    c->name,
			    (unsigned long long)(c->ctor_fail - fails));
		return;
	}
	if (flags == UMEM_DEFAULT && c->ctor_fail != fails)
		fuzz_fail("umem_cache_alloc(\"%s\") returned %p although the "
		    "constructor failed", c->name, (void *)p);
	if (c->align != 0 && ((uintptr_t)p & (c->align - 1)) != 0)
		fuzz_fail("umem_cache_alloc(\"%s\") = %p, not aligned to %zu",
		    c->name, (void *)p, c->align);
	if (!fc_tag_ok(c, p))
		fuzz_fail("umem_cache_alloc(\"%s\") = %p: not in the "
		    "constructed state (tag smashed)", c->name, (void *)p);
	fc_live_add(FC_K_CACHE, i, p, c->bufsize, seed);
	c->live++;
	fc_fill(&fc.l[fc.nlive - 1], fc_tag_bytes(c));
}

static size_t fc_umem_size(fuzz_in_t *in)
{
	uint8_t k = fuzz_u8(in);
	uint16_t v = fuzz_u16(in);
	switch (k % 4) {
	case 0:
		return 1 + v % 128u;
	case 1:
		return 1 + v % 2048u;
	case 2:
		return 1 + v % UMEM_CLASS_MAX_BYTES;
	default:
		return 1 + v % FC_UMEM_SIZE_MAX;
	}
}

static void op_umem_alloc(fuzz_in_t *in, bool zero)
{
	size_t size = fc_umem_size(in);
	uint8_t f = fuzz_u8(in), seed = fuzz_u8(in);
	int flags = (f & 1) ? UMEM_NOFAIL : UMEM_DEFAULT;
	fuzz_step("%s(%zu, 0x%x)", zero ? "umem_zalloc" : "umem_alloc", size,
	    (unsigned)flags);
	fuzz_mtbf_arm(fc.mtbf);
	uint8_t *p = zero ? umem_zalloc(size, flags) : umem_alloc(size, flags);
	if (p == NULL && !(flags & UMEM_NOFAIL) && fc_injected())
		return;
	if (p == NULL)
		fuzz_fail("%s(%zu) returned NULL", zero ? "umem_zalloc" :
		    "umem_alloc", size);
	/* umem.h promises no alignment; illumos callers rely on 8 bytes. */
	if (((uintptr_t)p & 7u) != 0)
		fuzz_fail("umem_alloc(%zu) = %p, not 8-byte aligned", size,
		    (void *)p);
	if (zero)
		for (size_t i = 0; i < size; i++)
			if (p[i] != 0)
				fuzz_fail("umem_zalloc(%zu) = %p: byte %zu is "
				    "0x%02x", size, (void *)p, i, p[i]);
	umem_cache_t *cls = fc_class_cache(size);
	if (cls != NULL) {
		qlock_enter(cls->cc_slab_lock, QLOCK_SLAB);
		bool mine = umem_slab_lookup(cls, (uintptr_t)p) != NULL;
		qlock_exit(cls->cc_slab_lock, QLOCK_SLAB);
		if (!mine || cls->cc_bufsize < size)
			fuzz_fail("umem_alloc(%zu) = %p: not a buffer of its size "
			    "class \"%s\"", size, (void *)p, cls->cc_name);
	}
	fc.step_umem_size = size;
	fc_live_add(FC_K_UMEM, -1, p, size, seed);
	fc_fill(&fc.l[fc.nlive - 1], 0);
}

static void op_arena_create(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_ARENAS);
	uint8_t qb = fuzz_u8(in), kb = fuzz_u8(in), nb = fuzz_u8(in);
	fc_arena_t *a = &fc.a[i];
	if (a->vmp != NULL) {
		fuzz_step("arena_create slot %d: busy, skipped", i);
		return;
	}
	memset(a, 0, sizeof(*a));
	a->quantum = (size_t)1 << (qb % 13);
	size_t k = 1 + kb % 18; /* up to 18 quanta: 16 is the clamp */
	size_t qreq = k * a->quantum + ((kb & 0x80) ? a->quantum / 2 : 0);
	size_t keff = k > VMEM_QCACHE_MAX ? VMEM_QCACHE_MAX : k;
	a->qmax = keff * a->quantum;
	a->slab = a->quantum;
	while (a->slab < 3 * a->qmax)
		a->slab <<= 1;
	a->size = a->slab * (1 + nb % 12);
	a->base = FC_ARENA_BASE * (uintptr_t)(1 + i);
	(void)snprintf(a->name, sizeof(a->name), "fz_a%d_%llu", i,
	    (unsigned long long)++fc.serial);
	fuzz_step("arena_create slot %d \"%s\" base 0x%lx size 0x%zx quantum "
	    "%zu qcache_max %zu", i, a->name, (unsigned long)a->base, a->size,
	    a->quantum, qreq);
	a->vmp = vmem_create(a->name, (void *)a->base, a->size, a->quantum,
	    NULL, NULL, NULL, qreq, VMC_IDENTIFIER);
	if (a->vmp == NULL)
		fuzz_fail("vmem_create(\"%s\") returned NULL", a->name);
	/* vmem.h: one cache per multiple of the quantum up to qcache_max,
	 * at most 16. */
	if (a->vmp->ar_qcache_max != a->qmax)
		fuzz_fail("arena \"%s\": qcache_max %zu asked, %zu quantum "
		    "caches expected, it serves up to %zu", a->name, qreq,
		    keff, a->vmp->ar_qcache_max);
	for (size_t j = 0; j < VMEM_QCACHE_MAX; j++)
		if ((a->vmp->ar_qcache[j] != NULL) != (j < keff))
			fuzz_fail("arena \"%s\": quantum cache %zu %s", a->name,
			    j + 1, j < keff ? "missing" : "unexpected");
	if (umem_qcache_slab_bytes(a->vmp) != a->slab)
		fuzz_fail("arena \"%s\": slab bytes %zu, expected %zu", a->name,
		    umem_qcache_slab_bytes(a->vmp), a->slab);
}

/* What the quantum cache of size (k quanta) can serve without its arena. */
static size_t fc_qcache_avail(umem_cache_t *cp)
{
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	return st.us_bufs_slab_free + st.us_bufs_depot + fc_slot_rounds(cp);
}

static void op_vmem_alloc(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_ARENAS);
	uint8_t kb = fuzz_u8(in), rb = fuzz_u8(in);
	fc_arena_t *a = &fc.a[i];
	if (a->vmp == NULL) {
		fuzz_step("vmem_alloc slot %d: no arena", i);
		return;
	}
	size_t k = 1 + kb % (a->qmax / a->quantum);
	size_t size = k * a->quantum - rb % a->quantum;
	umem_cache_t *cp = a->vmp->ar_qcache[k - 1];
	fc.step_qcache = cp;
	vmem_stats_t vs;
	vmem_stats(a->vmp, &vs);
	size_t avail = fc_qcache_avail(cp);
	fuzz_step("vmem_alloc(\"%s\", %zu, VM_NOSLEEP)", a->name, size);
	fuzz_mtbf_arm(fc.mtbf);
	uint8_t *p = vmem_alloc(a->vmp, size, VM_NOSLEEP);
	if (p == NULL) {
		if (fc_injected()) {
			a->inj_fail++;
			return;
		}
		if (avail != 0 || vs.vs_free_bytes >= a->slab)
			fuzz_fail("vmem_alloc(\"%s\", %zu) returned NULL with "
			    "%zu ranges in its quantum cache and %zu free bytes "
			    "in the arena (slab %zu)", a->name, size, avail,
			    vs.vs_free_bytes, a->slab);
		return;
	}
	uintptr_t u = (uintptr_t)p;
	if (u % a->quantum != 0 || u < a->base ||
	    u + k * a->quantum > a->base + a->size)
		fuzz_fail("vmem_alloc(\"%s\", %zu) = 0x%lx: not a quantum "
		    "multiple inside [0x%lx, 0x%lx)", a->name, size,
		    (unsigned long)u, (unsigned long)a->base,
		    (unsigned long)(a->base + a->size));
	fc_live_add(FC_K_VMEM, i, p, size, 0);
	a->live++;
}

static void fc_free_live(size_t j)
{
	fc_live_t l = fc.l[j];
	switch (l.kind) {
	case FC_K_CACHE: {
		fc_cache_t *c = &fc.c[l.owner];
		fc_verify(&l, fc_tag_bytes(c));
		if (!fc_tag_ok(c, l.p))
			fuzz_fail("cache \"%s\": the tag of live %p changed",
			    c->name, (void *)l.p);
		fuzz_step("umem_cache_free(\"%s\", %p)", c->name, (void *)l.p);
		fc_live_remove(j);
		c->live--;
		umem_cache_free(c->cp, l.p);
		break;
	}
	case FC_K_UMEM:
		fc_verify(&l, 0);
		fuzz_step("umem_free(%p, %zu)", (void *)l.p, l.size);
		fc.step_umem_size = l.size;
		fc_live_remove(j);
		umem_free(l.p, l.size);
		break;
	default: {
		fc_arena_t *a = &fc.a[l.owner];
		fuzz_step("vmem_free(\"%s\", 0x%lx, %zu)", a->name,
		    (unsigned long)(uintptr_t)l.p, l.size);
		fc_live_remove(j);
		a->live--;
		fc.step_qcache = a->vmp->ar_qcache[(l.size + a->quantum - 1) /
		    a->quantum - 1];
		vmem_free(a->vmp, l.p, l.size);
		break;
	}
	}
}

static void op_free(fuzz_in_t *in)
{
	uint32_t j = fuzz_below(in, FC_LIVE);
	if (fc.nlive == 0) {
		fuzz_step("free: nothing live");
		return;
	}
	fc_free_live(j % fc.nlive);
}

static void op_reap(void)
{
	uint64_t before[FC_CACHES];
	for (int i = 0; i < FC_CACHES; i++)
		before[i] = fc.c[i].reclaims;
	fuzz_step("umem_reap()");
	fc.step_all = true;
	umem_reap();
	for (int i = 0; i < FC_CACHES; i++)
		if (fc.c[i].cp != NULL && fc.c[i].reclaims != before[i] + 1)
			fuzz_fail("umem_reap(): cache \"%s\" reclaim callback "
			    "ran %llu times", fc.c[i].name,
			    (unsigned long long)(fc.c[i].reclaims - before[i]));
}

/*
 * The depot's contention window, forced: the cache moves to the next
 * magazine size under its depot lock.  The real resize (depot_window_close)
 * also empties the depot of the old size's magazines; bit 0 of the byte
 * does that too (umem_depot_purge after the unlock), else the depot keeps
 * them, which the magazine layer must tolerate (a slot's old-size
 * magazine coming back is emptied, not kept).
 */
static void op_mag_resize(fuzz_in_t *in)
{
	uint8_t w = fuzz_u8(in), b = fuzz_u8(in);
	umem_cache_t *cands[FC_CACHES + FC_ARENAS * VMEM_QCACHE_MAX];
	size_t n = 0;
	for (int i = 0; i < FC_CACHES; i++)
		if (fc.c[i].cp != NULL)
			cands[n++] = fc.c[i].cp;
	for (int i = 0; i < FC_ARENAS; i++)
		for (size_t k = 0; fc.a[i].vmp != NULL && k < VMEM_QCACHE_MAX;
		    k++)
			if (fc.a[i].vmp->ar_qcache[k] != NULL)
				cands[n++] = fc.a[i].vmp->ar_qcache[k];
	if (n == 0) {
		fuzz_step("mag_resize: no cache");
		return;
	}
	umem_cache_t *cp = cands[w % n];
	fc.step_qcache = cp;
	qlock_enter(cp->cc_depot_lock, QLOCK_DEPOT);
	uint32_t from = atomic_load(&cp->cc_magsize);
	if (cp->cc_magtype < UMEM_MAGTYPES - 1) {
		cp->cc_magtype++;
		atomic_store(&cp->cc_magsize, fc_magsizes[cp->cc_magtype]);
	}
	uint32_t to = atomic_load(&cp->cc_magsize);
	qlock_exit(cp->cc_depot_lock, QLOCK_DEPOT);
	fuzz_step("mag_resize(\"%s\") %u -> %u%s", cp->cc_name, from, to,
	    (b & 1) ? ", depot purged" : "");
	if (b & 1)
		umem_depot_purge(cp);
}

static void fc_cache_destroy(int i)
{
	fc_cache_t *c = &fc.c[i];
	for (size_t j = fc.nlive; j-- > 0;)
		if (fc.l[j].kind == FC_K_CACHE && fc.l[j].owner == i)
			fc_free_live(j);
	fc_check_cache(c);
	fuzz_step("umem_cache_destroy(\"%s\")", c->name);
	umem_cache_t *cp = c->cp;
	umem_cache_stats_t st;
	umem_cache_stats(cp, &st);
	umem_cache_destroy(cp);
	c->cp = NULL;
	/* umem_slab.c: every constructed object is destroyed once, at the
	 * latest when the cache is destroyed.  Without a constructor, an
	 * object counts as constructed when first handed out (the
	 * destructor still runs for it), so the cache's count is the truth;
	 * with one, that count was checked against the calls each step. */
	if (c->dtor && c->dtor_calls != st.us_constructed)
		fuzz_fail("umem_cache_destroy(\"%s\"): %llu objects "
		    "constructed, %llu destroyed", c->name,
		    (unsigned long long)st.us_constructed,
		    (unsigned long long)c->dtor_calls);
}

static void op_cache_destroy(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_CACHES);
	if (fc.c[i].cp == NULL) {
		fuzz_step("cache_destroy slot %d: no cache", i);
		return;
	}
	fc_cache_destroy(i);
}

static void fc_arena_destroy(int i)
{
	fc_arena_t *a = &fc.a[i];
	for (size_t j = fc.nlive; j-- > 0;)
		if (fc.l[j].kind == FC_K_VMEM && fc.l[j].owner == i)
			fc_free_live(j);
	fc_check_arena(a);
	fuzz_step("vmem_destroy(\"%s\")", a->name);
	vmem_destroy(a->vmp);
	a->vmp = NULL;
	fc.step_qcache = NULL; /* its quantum caches went with it */
}

static void op_arena_destroy(fuzz_in_t *in)
{
	int i = (int)fuzz_below(in, FC_ARENAS);
	if (fc.a[i].vmp == NULL) {
		fuzz_step("arena_destroy slot %d: no arena", i);
		return;
	}
	fc_arena_destroy(i);
}

/* ---- calls under injected failure (issue #18) ------------------------------
 *
 * Opcodes 0xf0-0xff (the older ones decode as before): one operation with
 * the global mtbf set (1: every NOSLEEP request of a caller fails; or a
 * small value) and then cleared.  UMEM_NOFAIL calls and vmem_create (a
 * VM_SLEEP call) must still return, and not NULL, within the watchdog's
 * bound; a UMEM_DEFAULT or NOSLEEP call may return NULL only when the
 * clock could have fired the injection.
 */
static const uint64_t fc_mtbf_vals[4] = {1, 2, 3, 7};

static void op_under_mtbf(fuzz_in_t *in, uint8_t op)
{
	uint8_t b = fuzz_u8(in);
	fc.mtbf = fc_mtbf_vals[b % 4];
	fuzz_step("mtbf global %lu", (unsigned long)fc.mtbf);
	vmem_mtbf_set(NULL, fc.mtbf);
	switch (op % 4) {
	case 0:
		op_cache_alloc(in);
		break;
	case 1:
		op_umem_alloc(in, (b & 0x10) != 0);
		break;
	case 2:
		op_vmem_alloc(in);
		break;
	default:
		op_arena_create(in);
		break;
	}
	fuzz_step("mtbf global 0");
	vmem_mtbf_set(NULL, 0);
	fc.mtbf = 0;
	fuzz_mtbf_arm(0);
}

/* ---- the end of an input ------------------------------------------------ */

/* Every cache that is not the program's (the size classes) holds nothing
 * for a caller once the program freed everything. */
static void fc_check_nothing_held(void)
{
	qlock_enter(&umem_cache_list_lock, QLOCK_CACHE_LIST);
	for (umem_cache_t *cp = umem_cache_list; cp != NULL; cp = cp->cc_next) {
		umem_cache_stats_t st;
		size_t held = fc_held(cp, &st);
		if (held != 0)
			fuzz_fail("cache \"%s\": %zu buffers with callers after "
			    "the program freed everything", cp->cc_name, held);
	}
	qlock_exit(&umem_cache_list_lock, QLOCK_CACHE_LIST);
}

static void fc_teardown(void)
{
	fuzz_step("teardown");
	for (size_t j = fc.nlive; j-- > 0;)
		fc_free_live(j);
	for (int i = 0; i < FC_CACHES; i++)
		if (fc.c[i].cp != NULL)
			fc_cache_destroy(i);
	for (int i = 0; i < FC_ARENAS; i++)
		if (fc.a[i].vmp != NULL)
			fc_arena_destroy(i);
	fuzz_quiesce();
	fc_check_all_invariants();
	fc_check_nothing_held();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in_t in;
	fuzz_in_init(&in, data, size);
	fuzz_log_reset();
	fuzz_watch_begin();
	memset(&fc.c, 0, sizeof(fc.c));
	memset(&fc.a, 0, sizeof(fc.a));
	fc.nlive = 0;
	/* Bootstrap first: umem_thread_flush_self (white-box) reads the
	 * thread-specific key, which exists only after the bootstrap (before
	 * it, key 0 is someone else's: libFuzzer's own datum came back as a
	 * thread id and failed an assertion). */
	(void)umem_default_arena();
	fuzz_leak_begin();
	umem_nofail_callback(fc_nofail);
	for (unsigned step = 0; step < FC_STEPS && fuzz_in_more(&in); step++) {
		uint8_t op = fuzz_u8(&in);
		fc.step_all = false;
		fc.step_umem_size = 0;
		fc.step_qcache = NULL;
		if (op >= 0xf0) {
			op_under_mtbf(&in, op);
			fc_check_step(fc.step_all, fc.step_umem_size);
			continue;
		}
		switch (op % 12) {
		case 0:
			op_cache_create(&in);
			break;
		case 1:
		case 2:
			op_cache_alloc(&in);
			break;
		case 3:
		case 4:
			op_free(&in);
			break;
		case 5:
			op_umem_alloc(&in, (op & 0x10) != 0);
			break;
		case 6:
			op_arena_create(&in);
			break;
		case 7:
			op_vmem_alloc(&in);
			break;
		case 8:
			if (op & 0x10)
				op_reap();
			else {
				fuzz_step("umem_thread_flush_self()");
				fc.step_all = true;
				umem_thread_flush_self();
			}
			break;
		case 9:
			op_mag_resize(&in);
			break;
		case 10:
			op_cache_destroy(&in);
			break;
		default:
			op_arena_destroy(&in);
			break;
		}
		fc_check_step(fc.step_all, fc.step_umem_size);
	}
	fc_teardown();
	fuzz_step("leak check");
	fuzz_leak_check();
	fuzz_watch_end();
	return 0;
}
