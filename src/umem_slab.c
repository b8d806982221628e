/*
 * umem_slab.c — the slab layer of an object cache: slabs imported from the
 * cache's arena, their out-of-band headers and bitmaps, the slab hash,
 * lazy construction, and destruction when a slab goes back.
 *
 * Theory
 * ------
 * A slab is one piece [base, base + S) that the cache took from its arena
 * with vmem_xalloc(arena, S, align S); S = cc_slab_bytes is a power of two,
 * so the slab of any buffer is its address rounded down to S, and a hash
 * keyed by that base finds the slab header in at most two probes on
 * average: the table grows fourfold when the slabs outnumber twice the
 * buckets (load 2 down to 1/2) and never shrinks.  The
 * slab holds N = S / chunk buffers, buffer i at base + i * chunk.  Its
 * header lives in the metadata arena, never in the slab: a quantum cache's
 * slab may be a range of IDs that is no memory at all.  The header carries
 * two bitmaps of N bits: the free map (bit set: buffer i is free in the
 * slab) and the constructed map (bit set: buffer i holds a constructed
 * object), plus, in debug builds, one state byte per buffer (UMEM_BS_*) and
 * the size umem_alloc was asked for.  Overhead, derived: a header of 56
 * bytes (five pointers, four 32-bit fields) plus 2 bits per buffer, e.g.
 * 56 + 128 bytes for the 512 buffers of an 8-byte class in a 4 KiB slab
 * (4.5 %), 56 + 16 bytes for 64 buffers of 64 bytes (1.8 %).
 *
 * Lazy construction.  A slab's buffers are constructed the first time each
 * is handed out, not when the slab arrives, so a slab imported for one
 * buffer does not pay N constructor calls.  Destruction is the mirror: when
 * a slab goes back, exactly the buffers of its constructed map are
 * destroyed.  So every constructed object is destroyed once, at the latest
 * when the cache is destroyed.
 *
 * Lists.  Each slab is on exactly one list of its cache: partial (some free,
 * some not), full (none free) or free (all free).  Allocation takes from a
 * partial slab first, so that free slabs stay free and can be given back.
 * At most UMEM_FREE_SLABS_KEEP free slabs are kept between reaps; more are
 * given back as soon as they become free; a reap gives back all of them.
 *
 * Locking.  cc_slab_lock guards the lists, the hash, the bitmaps and the
 * debug arrays.  It is never held across a call into vmem (import, give
 * back, metadata) or into a constructor or destructor: each such call is
 * made with the slab detached or the buffer reserved, then the lock is
 * taken again.  A buffer being constructed has its bit already taken, so no
 * one else can hand it out or release its slab meanwhile.
 *
 * What may be called: vmem_xalloc/vmem_xfree on the cache's arena, the
 * metadata arena (umem_meta_alloc/free), the cache's constructor and
 * destructor.  What holds on return: Q1 and Q2 for this cache's slabs.
 */
#include <string.h>

#include "umem_impl.h"

/* ---- layout --------------------------------------------------------------- */

static size_t pow2_at_least(size_t x)
{
	size_t p = 1;
	while (p < x && p != 0)
		p <<= 1;
	return p;
}

static size_t slab_debug_bytes(uint32_t nbufs)
{
	return UMEM_DEBUG ? (size_t)nbufs * (sizeof(uint32_t) + 1) : 0;
}

/*
 * Decide chunk, slab size, buffers per slab and header size.  A memory
 * cache's slab is at least a page and at least UMEM_SLAB_BUFS_MIN buffers;
 * a quantum cache's is its arena's common slab size (all its quantum caches
 * share it, so that a slab one gives back fits any other), which holds at
 * least 3 of its largest buffers; without one (qcache_max 0), as above.
 */
bool umem_slab_layout(umem_cache_t *cp, size_t align)
{
	size_t q = vmem_quantum(cp->cc_arena);
	VMEM_ASSERT(align != 0 && (align & (align - 1)) == 0);
	if (cp->cc_bufsize > SIZE_MAX / 2 - align)
		return false;
	size_t chunk = (cp->cc_bufsize + align - 1) & ~(align - 1);
	size_t slab = plat_page_size();
	if (slab < UMEM_SLAB_BUFS_MIN * chunk)
		slab = pow2_at_least(UMEM_SLAB_BUFS_MIN * chunk);
	if ((cp->cc_cflags & UMC_QCACHE) &&
	    umem_qcache_slab_bytes(cp->cc_arena) >= 3 * chunk)
		slab = umem_qcache_slab_bytes(cp->cc_arena);
	if (slab < q)
		slab = q;
	if (slab == 0 || slab < chunk)
		return false;
	size_t nbufs = slab / chunk;
	if (nbufs > UMEM_SLAB_BUFS_MAX)
		nbufs = UMEM_SLAB_BUFS_MAX;
	cp->cc_chunk_bytes = chunk;
	cp->cc_slab_bytes = slab;
	cp->cc_nbufs = (uint32_t)nbufs;
	cp->cc_map_words = (uint32_t)((nbufs + 63) / 64);
	cp->cc_slab_hdr_bytes = sizeof(umem_slab_t) +
	    2u * cp->cc_map_words * sizeof(uint64_t) +
	    slab_debug_bytes(cp->cc_nbufs);
	cp->cc_htab = cp->cc_htab_embedded;
	cp->cc_htab_mask = UMEM_SLAB_HASH_INITIAL - 1;
	VMEM_ASSERT(cp->cc_nbufs >= 1 && cp->cc_map_words <= 64);
	return true;
}

static uint64_t *slab_freemap(umem_slab_t *sp)
{
	return sp->sb_map;
}

static uint64_t *slab_ctormap(const umem_cache_t *cp, umem_slab_t *sp)
{
	return sp->sb_map + cp->cc_map_words;
}

uint32_t *umem_slab_reqsize(const umem_cache_t *cp, umem_slab_t *sp)
{
	return (uint32_t *)(void *)(sp->sb_map + 2u * cp->cc_map_words);
}

uint8_t *umem_slab_state(const umem_cache_t *cp, umem_slab_t *sp)
{
	return (uint8_t *)(umem_slab_reqsize(cp, sp) + cp->cc_nbufs);
}

/* ---- lists ----------------------------------------------------------------- */

static umem_slab_t **slab_list_head(umem_cache_t *cp, uint32_t which)
{
	VMEM_ASSERT(which >= UMEM_SL_PARTIAL && which <= UMEM_SL_FREE);
	return which == UMEM_SL_PARTIAL ? &cp->cc_partial
	    : which == UMEM_SL_FULL ? &cp->cc_fullslabs
				    : &cp->cc_freeslabs;
}

static void slab_list_insert(umem_cache_t *cp, umem_slab_t *sp, uint32_t which)
{
	umem_slab_t **head = slab_list_head(cp, which);
	VMEM_ASSERT(SLAB_LOCK_HELD(cp) && sp->sb_list == 0);
	sp->sb_prev = NULL;
	sp->sb_next = *head;
	if (*head != NULL)
		(*head)->sb_prev = sp;
	*head = sp;
	sp->sb_list = which;
	if (which == UMEM_SL_FREE)
		cp->cc_nslabs_free++;
}

static void slab_list_remove(umem_cache_t *cp, umem_slab_t *sp)
{
	umem_slab_t **head = slab_list_head(cp, sp->sb_list);
	VMEM_ASSERT(sp->sb_prev != NULL || *head == sp);
	if (sp->sb_prev != NULL)
		sp->sb_prev->sb_next = sp->sb_next;
	else
		*head = sp->sb_next;
	if (sp->sb_next != NULL)
		sp->sb_next->sb_prev = sp->sb_prev;
	if (sp->sb_list == UMEM_SL_FREE)
		cp->cc_nslabs_free--;
	sp->sb_next = sp->sb_prev = NULL;
	sp->sb_list = 0;
}

/* Put sp on the list its free count says (lock held). */
static void slab_list_update(umem_cache_t *cp, umem_slab_t *sp)
{
	uint32_t want = sp->sb_nfree == 0 ? UMEM_SL_FULL
	    : sp->sb_nfree == cp->cc_nbufs ? UMEM_SL_FREE
					   : UMEM_SL_PARTIAL;
	VMEM_ASSERT(sp->sb_nfree <= cp->cc_nbufs && SLAB_LOCK_HELD(cp));
	if (sp->sb_list == want)
		return;
	slab_list_remove(cp, sp);
	slab_list_insert(cp, sp, want);
}

/* ---- hash ------------------------------------------------------------------ */

static size_t slab_hash_index(const umem_cache_t *cp, uintptr_t base,
    size_t mask)
{
	uint64_t k = (uint64_t)(base / cp->cc_slab_bytes);
	return (size_t)((k * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

umem_slab_t *umem_slab_lookup(const umem_cache_t *cp, uintptr_t addr)
{
	uintptr_t base = addr & ~(uintptr_t)(cp->cc_slab_bytes - 1);
	umem_slab_t *sp = cp->cc_htab[slab_hash_index(cp, base,
	    cp->cc_htab_mask)];
	for (size_t steps = 0; sp != NULL && steps <= cp->cc_nslabs; steps++) {
		if (sp->sb_base == base)
			return sp;
		sp = sp->sb_hnext;
	}
	return NULL;
}

static void slab_hash_insert(umem_cache_t *cp, umem_slab_t *sp)
{
	size_t i = slab_hash_index(cp, sp->sb_base, cp->cc_htab_mask);
	VMEM_ASSERT(umem_slab_lookup(cp, sp->sb_base) == NULL);
	VMEM_ASSERT(SLAB_LOCK_HELD(cp) && sp->sb_cache == cp);
	sp->sb_hnext = cp->cc_htab[i];
	cp->cc_htab[i] = sp;
	cp->cc_nslabs++;
}

static void slab_hash_remove(umem_cache_t *cp, umem_slab_t *sp)
{
	umem_slab_t **pp = &cp->cc_htab[slab_hash_index(cp, sp->sb_base,
	    cp->cc_htab_mask)];
	for (size_t steps = 0; *pp != NULL && steps <= cp->cc_nslabs; steps++) {
		if (*pp == sp) {
			*pp = sp->sb_hnext;
			sp->sb_hnext = NULL;
			cp->cc_nslabs--;
			return;
		}
		pp = &(*pp)->sb_hnext;
	}
	VMEM_ASSERT(!"slab not in its cache's hash");
}

/*
 * Grow the table fourfold when the slabs outnumber twice the buckets (to a
 * load of 1/2: a growing cache rehashes half as often as by doubling).  The
 * new table is allocated without the lock; if another thread grew it meanwhile
 * (or the allocation failed), nothing happens: lookups stay correct, only
 * chains are longer.
 */
static void slab_hash_grow(umem_cache_t *cp)
{
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	size_t buckets = cp->cc_htab_mask + 1;
	bool want = cp->cc_nslabs > 2 * buckets;
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	if (!want)
		return;
	size_t nb = buckets * 4;
	umem_slab_t **nt = umem_meta_alloc(nb * sizeof(*nt), 0);
	if (nt == NULL)
		return;
	memset(nt, 0, nb * sizeof(*nt));
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	VMEM_ASSERT(SLAB_LOCK_HELD(cp));
	umem_slab_t **old = cp->cc_htab;
	size_t oldn = cp->cc_htab_mask + 1;
	if (oldn != buckets) {
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
		umem_meta_free(nt, nb * sizeof(*nt));
		return;
	}
	for (size_t i = 0; i < oldn; i++) {
		umem_slab_t *sp = old[i];
		while (sp != NULL) {
			umem_slab_t *next = sp->sb_hnext;
			size_t j = slab_hash_index(cp, sp->sb_base, nb - 1);
			sp->sb_hnext = nt[j];
			nt[j] = sp;
			sp = next;
		}
	}
	cp->cc_htab = nt;
	cp->cc_htab_mask = nb - 1;
	VMEM_ASSERT(cp->cc_nslabs <= 2 * nb);
	/* Every slab moved: the newest partial or free one is found. */
	VMEM_ASSERT(cp->cc_partial == NULL ||
	    umem_slab_lookup(cp, cp->cc_partial->sb_base) == cp->cc_partial);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	if (old != cp->cc_htab_embedded)
		umem_meta_free(old, oldn * sizeof(*old));
}

void umem_slab_hash_fini(umem_cache_t *cp)
{
	VMEM_ASSERT(cp->cc_nslabs == 0);
	if (cp->cc_htab != cp->cc_htab_embedded)
		umem_meta_free(cp->cc_htab,
		    (cp->cc_htab_mask + 1) * sizeof(*cp->cc_htab));
	cp->cc_htab = cp->cc_htab_embedded;
	cp->cc_htab_mask = UMEM_SLAB_HASH_INITIAL - 1;
}

/* ---- create, destroy ------------------------------------------------------- */

static umem_slab_t *slab_create(umem_cache_t *cp, int vmflag)
{
	int vf = vmflag & (VM_NOSLEEP | VM_PANIC);
	/* A call into vmem: no slab lock (lockrank.h, rank 4 above none). */
	VMEM_ASSERT(SLAB_LOCKS_NONE());
	void *base = vmem_xalloc(cp->cc_arena, cp->cc_slab_bytes,
	    cp->cc_slab_bytes, 0, 0, NULL, NULL, vf);
	if (base == NULL)
		return NULL;
	/* A caller that may not fail spares its header from injection. */
	bool spare = vmem_inject_spare_begin(vf != VM_NOSLEEP);
	umem_slab_t *sp = umem_meta_alloc(cp->cc_slab_hdr_bytes, 0);
	if (spare)
		vmem_inject_spare_exit();
	if (sp == NULL) {
		vmem_xfree(cp->cc_arena, base, cp->cc_slab_bytes);
		return NULL;
	}
	memset(sp, 0, cp->cc_slab_hdr_bytes);
	sp->sb_base = (uintptr_t)base;
	sp->sb_cache = cp;
	sp->sb_nfree = cp->cc_nbufs;
	uint64_t *fm = slab_freemap(sp);
	for (uint32_t i = 0; i < cp->cc_nbufs; i++)
		fm[i / 64] |= (uint64_t)1 << (i % 64);
	if (cp->cc_annotate) {
		VALGRIND_MAKE_MEM_NOACCESS(base, cp->cc_slab_bytes);
		UMEM_ASAN_POISON(base, cp->cc_slab_bytes);
	}
	atomic_fetch_add(&cp->cc_slab_create, 1);
	VMEM_ASSERT(((uintptr_t)base & (cp->cc_slab_bytes - 1)) == 0);
	return sp;
}

/* Destroy the constructed buffers of a detached slab and give it back. */
static void slab_destroy(umem_cache_t *cp, umem_slab_t *sp)
{
	VMEM_ASSERT(sp->sb_list == 0 && sp->sb_cache == cp);
	/* Destructors and the give-back run unlocked, the slab detached
	 * (free, or with the leaked buffers of a destroyed cache). */
	VMEM_ASSERT(SLAB_LOCKS_NONE() && sp->sb_nfree <= cp->cc_nbufs);
	uint64_t *cm = slab_ctormap(cp, sp);
	uint64_t *fm = slab_freemap(sp);
	for (uint32_t i = 0; i < cp->cc_nbufs; i++) {
		if (!umem_map_test(cm, i) || !umem_map_test(fm, i))
			continue;
		void *buf = (void *)(sp->sb_base + i * cp->cc_chunk_bytes);
		if (cp->cc_annotate) {
			UMEM_ASAN_UNPOISON(buf, cp->cc_bufsize);
			VALGRIND_MAKE_MEM_DEFINED(buf, cp->cc_bufsize);
		}
		if (cp->cc_dtor != NULL)
			cp->cc_dtor(buf, cp->cc_private);
		atomic_fetch_add(&cp->cc_destructed, 1);
	}
	if (cp->cc_annotate) {
		UMEM_ASAN_UNPOISON((void *)sp->sb_base, cp->cc_slab_bytes);
		VALGRIND_MAKE_MEM_UNDEFINED((void *)sp->sb_base,
		    cp->cc_slab_bytes);
	}
	vmem_xfree(cp->cc_arena, (void *)sp->sb_base, cp->cc_slab_bytes);
	umem_meta_free(sp, cp->cc_slab_hdr_bytes);
	atomic_fetch_add(&cp->cc_slab_destroy, 1);
}

/* Detach a free slab for release (lock held). */
static void slab_detach(umem_cache_t *cp, umem_slab_t *sp)
{
	VMEM_ASSERT(sp->sb_list == UMEM_SL_FREE);
	slab_list_remove(cp, sp);
	slab_hash_remove(cp, sp);
	cp->cc_bufs_slab_free -= cp->cc_nbufs;
}

static void slab_destroy_chain(umem_cache_t *cp, umem_slab_t *chain)
{
	for (size_t n = 0; chain != NULL && n < SIZE_MAX; n++) {
		umem_slab_t *next = chain->sb_next;
		chain->sb_next = NULL;
		slab_destroy(cp, chain);
		chain = next;
	}
}

/* Give back free slabs beyond keep. */
void umem_slab_release_free(umem_cache_t *cp, size_t keep)
{
	umem_slab_t *chain = NULL;
	VMEM_ASSERT(SLAB_LOCKS_NONE());
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	size_t bound = cp->cc_nslabs_free;
	for (size_t i = 0; i < bound && cp->cc_nslabs_free > keep; i++) {
		umem_slab_t *sp = cp->cc_freeslabs;
		slab_detach(cp, sp);
		sp->sb_next = chain;
		chain = sp;
	}
	VMEM_ASSERT(cp->cc_nslabs_free <= keep || bound == 0);
	/* Under the lock: other threads move slabs on and off the free list
	 * as soon as it drops, and the two fields agree only while it is held. */
	VMEM_ASSERT(cp->cc_nslabs_free == 0 || cp->cc_freeslabs != NULL);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	slab_destroy_chain(cp, chain);
}

/*
 * At cache destroy: give back every slab.  Returns the buffers that were
 * not free (still with callers: the caller's leak, reported by destroy).
 */
size_t umem_slab_destroy_all(umem_cache_t *cp)
{
	size_t leaked = 0;
	umem_slab_t *chain = NULL;
	VMEM_ASSERT(SLAB_LOCKS_NONE());
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	uint32_t lists[3] = {UMEM_SL_PARTIAL, UMEM_SL_FULL, UMEM_SL_FREE};
	for (unsigned l = 0; l < 3; l++) {
		umem_slab_t **head = slab_list_head(cp, lists[l]);
		size_t bound = cp->cc_nslabs;
		for (size_t i = 0; *head != NULL && i <= bound; i++) {
			umem_slab_t *sp = *head;
			leaked += cp->cc_nbufs - sp->sb_nfree;
			cp->cc_bufs_slab_free -= sp->sb_nfree;
			slab_list_remove(cp, sp);
			slab_hash_remove(cp, sp);
			sp->sb_next = chain;
			chain = sp;
		}
	}
	VMEM_ASSERT(cp->cc_nslabs == 0 && cp->cc_nslabs_free == 0);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	slab_destroy_chain(cp, chain);
	return leaked;
}

/* ---- allocate, free ---------------------------------------------------- */

static uint32_t slab_take(umem_cache_t *cp, umem_slab_t *sp)
{
	uint64_t *fm = slab_freemap(sp);
	VMEM_ASSERT(sp->sb_nfree > 0 && SLAB_LOCK_HELD(cp));
	for (uint32_t w = sp->sb_hint; w < cp->cc_map_words; w++) {
		if (fm[w] == 0)
			continue;
		uint32_t bit = (uint32_t)__builtin_ctzll(fm[w]);
		fm[w] &= ~((uint64_t)1 << bit);
		sp->sb_hint = w;
		sp->sb_nfree--;
		cp->cc_bufs_slab_free--;
		slab_list_update(cp, sp);
		return w * 64 + bit;
	}
	vmem_panic("umem cache \"%s\": slab 0x%lx counts %u free buffers but "
	    "its free map has none", cp->cc_name, (unsigned long)sp->sb_base,
	    sp->sb_nfree);
}

static void slab_put(umem_cache_t *cp, umem_slab_t *sp, uint32_t i)
{
	uint64_t *fm = slab_freemap(sp);
	VMEM_ASSERT(i < cp->cc_nbufs && !umem_map_test(fm, i));
	fm[i / 64] |= (uint64_t)1 << (i % 64);
	if (i / 64 < sp->sb_hint)
		sp->sb_hint = i / 64;
	sp->sb_nfree++;
	cp->cc_bufs_slab_free++;
	slab_list_update(cp, sp);
	VMEM_ASSERT(sp->sb_nfree <= cp->cc_nbufs);
}

/* A slab with a free buffer, importing one if none (lock held; may drop
 * and retake it).  NULL when the import failed. */
static umem_slab_t *slab_with_free(umem_cache_t *cp, int vmflag,
    bool *grow_hash)
{
	if (cp->cc_partial != NULL)
		return cp->cc_partial;
	if (cp->cc_freeslabs != NULL)
		return cp->cc_freeslabs;
	VMEM_ASSERT(SLAB_LOCK_HELD(cp) && cp->cc_bufs_slab_free == 0);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	umem_slab_t *sp = slab_create(cp, vmflag);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	/* Others may have filled or emptied slabs meanwhile; the new one is
	 * this thread's alone until it is inserted. */
	VMEM_ASSERT(sp == NULL || (sp->sb_nfree == cp->cc_nbufs &&
	    sp->sb_list == 0));
	if (sp == NULL)
		return cp->cc_partial != NULL ? cp->cc_partial
					      : cp->cc_freeslabs;
	slab_hash_insert(cp, sp);
	slab_list_insert(cp, sp, UMEM_SL_FREE);
	cp->cc_bufs_slab_free += cp->cc_nbufs;
	*grow_hash = cp->cc_nslabs > 2 * (cp->cc_htab_mask + 1);
	VMEM_ASSERT(cp->cc_freeslabs != NULL && cp->cc_nslabs_free >= 1);
	return cp->cc_partial != NULL ? cp->cc_partial : cp->cc_freeslabs;
}

/* Construction failed: the buffer goes back unconstructed. */
static void slab_unconstruct(umem_cache_t *cp, void *buf)
{
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	umem_slab_t *sp = umem_slab_lookup(cp, (uintptr_t)buf);
	VMEM_ASSERT(sp != NULL);
	uint32_t i = (uint32_t)umem_slab_index(cp, sp, (uintptr_t)buf);
	slab_ctormap(cp, sp)[i / 64] &= ~((uint64_t)1 << (i % 64));
	if (cp->cc_debug)
		umem_slab_state(cp, sp)[i] = UMEM_BS_SLAB;
	cp->cc_direct_from_caller++;
	slab_put(cp, sp, i);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	atomic_fetch_sub(&cp->cc_constructed, 1);
}

/*
 * One buffer from the slabs, constructed, now with the caller (its debug
 * state says so and the direct counter counts it; a slot that hands it out
 * moves the count to itself).  NULL when no slab could be imported or the
 * constructor failed.
 */
void *umem_slab_alloc(umem_cache_t *cp, int vmflag)
{
	bool grow = false;
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	umem_slab_t *sp = slab_with_free(cp, vmflag, &grow);
	if (sp == NULL) {
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
		return NULL;
	}
	uint32_t i = slab_take(cp, sp);
	VMEM_ASSERT(i < cp->cc_nbufs && !umem_map_test(slab_freemap(sp), i));
	uint64_t *cm = slab_ctormap(cp, sp);
	bool construct = !umem_map_test(cm, i);
	cm[i / 64] |= (uint64_t)1 << (i % 64);
	if (cp->cc_debug)
		umem_slab_state(cp, sp)[i] = UMEM_BS_CALLER;
	cp->cc_direct_to_caller++;
	void *buf = (void *)(sp->sb_base + i * cp->cc_chunk_bytes);
	VMEM_ASSERT(umem_slab_lookup(cp, (uintptr_t)buf) == sp);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	if (grow)
		slab_hash_grow(cp);
	if (!construct)
		return buf;
	atomic_fetch_add(&cp->cc_constructed, 1);
	if (cp->cc_ctor == NULL)
		return buf;
	if (cp->cc_annotate) {
		UMEM_ASAN_UNPOISON(buf, cp->cc_bufsize);
		VALGRIND_MAKE_MEM_UNDEFINED(buf, cp->cc_bufsize);
	}
	int rc = cp->cc_ctor(buf, cp->cc_private, UMEM_DEFAULT);
	if (cp->cc_annotate) {
		VALGRIND_MAKE_MEM_NOACCESS(buf, cp->cc_bufsize);
		UMEM_ASAN_POISON(buf, cp->cc_bufsize);
	}
	if (rc == 0)
		return buf;
	slab_unconstruct(cp, buf);
	return NULL;
}

size_t umem_slab_index(const umem_cache_t *cp, const umem_slab_t *sp,
    uintptr_t addr)
{
	VMEM_ASSERT(addr >= sp->sb_base);
	size_t off = addr - sp->sb_base;
	if (off % cp->cc_chunk_bytes != 0 || off / cp->cc_chunk_bytes >=
	    cp->cc_nbufs)
		return SIZE_MAX;
	return off / cp->cc_chunk_bytes;
}

/* Checks and frees one buffer into its slab (lock held); a slab that became
 * free beyond the keep count is detached onto *chain. */
static void slab_free_locked(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size, umem_slab_t **chain)
{
	VMEM_ASSERT(SLAB_LOCK_HELD(cp));
	umem_slab_t *sp = umem_slab_lookup(cp, (uintptr_t)buf);
	if (sp == NULL) {
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
		umem_bad_free_foreign(cp, buf, call, size);
	}
	size_t i = umem_slab_index(cp, sp, (uintptr_t)buf);
	if (i == SIZE_MAX)
		umem_bad_free(cp, buf, call, size,
		    "not the start of a buffer (an address inside a slab)");
	if (umem_map_test(slab_freemap(sp), i))
		umem_bad_free(cp, buf, call, size,
		    "double free (the buffer is already free in its slab)");
	if (cp->cc_debug) {
		uint8_t *st = umem_slab_state(cp, sp);
		VMEM_ASSERT(st[i] == UMEM_BS_CALLER || st[i] == UMEM_BS_MAG);
		st[i] = UMEM_BS_SLAB;
	}
	slab_put(cp, sp, (uint32_t)i);
	if (sp->sb_list == UMEM_SL_FREE &&
	    cp->cc_nslabs_free > UMEM_FREE_SLABS_KEEP) {
		slab_detach(cp, sp);
		sp->sb_next = *chain;
		*chain = sp;
	}
	VMEM_ASSERT(cp->cc_nslabs_free <= UMEM_FREE_SLABS_KEEP ||
	    sp->sb_list != UMEM_SL_FREE);
}

/* A buffer straight from a caller (no magazine took it). */
void umem_slab_free(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size)
{
	umem_slab_t *chain = NULL;
	VMEM_ASSERT(buf != NULL && SLAB_LOCKS_NONE());
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	slab_free_locked(cp, buf, call, size, &chain);
	cp->cc_direct_from_caller++;
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	slab_destroy_chain(cp, chain);
}

/* The rounds of a magazine being emptied. */
void umem_slab_free_batch(umem_cache_t *cp, void *const *bufs, size_t n)
{
	umem_slab_t *chain = NULL;
	VMEM_ASSERT(SLAB_LOCKS_NONE() && n <= UMEM_MAGSIZE_MAX);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	for (size_t k = 0; k < n; k++)
		slab_free_locked(cp, bufs[k], UMEM_CALL_INTERNAL, 0, &chain);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	slab_destroy_chain(cp, chain);
}

/*
 * A magazine leaving the depot or a slot for good: its rounds go to the
 * slabs inside the depot's critical section (the caller holds the depot
 * lock; slab after depot is the lock order), so that no buffer ever waits
 * in a local variable, where a fork would lose it with the thread (the
 * child finds every magazine in a slot or the depot: umem_mag.c).  The
 * slabs that became free are given back by the caller after every lock is
 * dropped: their destructors may use the cache.
 */
void umem_slab_free_rounds(umem_cache_t *cp, umem_mag_t *m,
    umem_slab_t **chain)
{
	VMEM_ASSERT(m->mg_rounds <= m->mg_cap);
	if (m->mg_rounds == 0)
		return;
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	for (uint32_t k = 0; k < m->mg_rounds; k++)
		slab_free_locked(cp, m->mg_round[k], UMEM_CALL_INTERNAL, 0,
		    chain);
	m->mg_rounds = 0;
	VMEM_ASSERT(cp->cc_bufs_slab_free <= cp->cc_nslabs * cp->cc_nbufs);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
}

void umem_slab_give_back(umem_cache_t *cp, umem_slab_t *chain)
{
	slab_destroy_chain(cp, chain);
}

/* ---- debug: every buffer's state, checked at each hand-over ----------------- */
/* Debug builds only (UMEM_DEBUG): release builds call none of these, and
 * compile them out. */
#if UMEM_DEBUG

/* Find buf's slab and index under the lock, or die naming the call. */
static umem_slab_t *debug_find(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size, size_t *ip)
{
	umem_slab_t *sp = umem_slab_lookup(cp, (uintptr_t)buf);
	if (sp == NULL) {
		qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
		umem_bad_free_foreign(cp, buf, call, size);
	}
	*ip = umem_slab_index(cp, sp, (uintptr_t)buf);
	if (*ip == SIZE_MAX)
		umem_bad_free(cp, buf, call, size,
		    "not the start of a buffer (an address inside a slab)");
	return sp;
}

/* A buffer a caller frees must be with a caller, freed with its size
 * (slab lock held; *ip gets its index). */
static umem_slab_t *debug_check_caller(umem_cache_t *cp, void *buf,
    umem_call_t call, size_t size, size_t *ip)
{
	umem_slab_t *sp = debug_find(cp, buf, call, size, ip);
	uint8_t *st = umem_slab_state(cp, sp);
	if (st[*ip] == UMEM_BS_MAG)
		umem_bad_free(cp, buf, call, size,
		    "double free (the buffer is already in a magazine)");
	if (st[*ip] == UMEM_BS_SLAB)
		umem_bad_free(cp, buf, call, size,
		    "double free (the buffer is already free in its slab)");
	uint32_t req = umem_slab_reqsize(cp, sp)[*ip];
	if (call == UMEM_CALL_FREE && req != size) {
		char why[96];
		(void)snprintf(why, sizeof(why), "wrong size: the buffer was "
		    "allocated with size %lu", (unsigned long)req);
		umem_bad_free(cp, buf, call, size, why);
	}
	VMEM_ASSERT(!umem_map_test(slab_freemap(sp), *ip));
	return sp;
}

void umem_debug_check_free(umem_cache_t *cp, void *buf, umem_call_t call,
    size_t size)
{
	size_t i;
	VMEM_ASSERT(cp->cc_debug);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	(void)debug_check_caller(cp, buf, call, size, &i);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
}

/*
 * Debug caches: the buffer's state byte, the round and its count, and the
 * slot's caller counter change in one slab critical section.  The fork's
 * prepare holds every slab lock, so a child never finds them apart: a
 * buffer a lost thread was freeing is still with its caller, or already in
 * the magazine, never counted in one place with its state in another (Q1
 * balances in every child).
 */
void umem_debug_push(umem_cache_t *cp, umem_slot_t *sl, void *buf,
    umem_call_t call, size_t size)
{
	size_t i;
	VMEM_ASSERT(cp->cc_debug && sl->sl_rounds < sl->sl_cap);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	umem_slab_t *sp = debug_check_caller(cp, buf, call, size, &i);
	umem_slab_state(cp, sp)[i] = UMEM_BS_MAG;
	umem_slot_push(sl, buf);
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
}

void *umem_debug_pop(umem_cache_t *cp, umem_slot_t *sl)
{
	size_t i;
	VMEM_ASSERT(cp->cc_debug && sl->sl_rounds > 0);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	void *buf = umem_slot_pop_round(sl);
	umem_slab_t *sp = debug_find(cp, buf, UMEM_CALL_INTERNAL, 0, &i);
	uint8_t *st = umem_slab_state(cp, sp);
	if (st[i] != UMEM_BS_MAG)
		vmem_panic("umem cache \"%s\": buffer %p came out of a magazine "
		    "in state %u (a magazine was corrupted)", cp->cc_name, buf,
		    (unsigned)st[i]);
	st[i] = UMEM_BS_CALLER;
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
	return buf;
}

void umem_debug_set_reqsize(umem_cache_t *cp, void *buf, size_t size)
{
	size_t i;
	VMEM_ASSERT(cp->cc_debug && size <= UINT32_MAX);
	qlock_enter(cp->cc_slab_lock, QLOCK_SLAB);
	umem_slab_t *sp = debug_find(cp, buf, UMEM_CALL_INTERNAL, 0, &i);
	VMEM_ASSERT(umem_slab_state(cp, sp)[i] == UMEM_BS_CALLER);
	umem_slab_reqsize(cp, sp)[i] = (uint32_t)size;
	qlock_exit(cp->cc_slab_lock, QLOCK_SLAB);
}
#endif /* UMEM_DEBUG */
