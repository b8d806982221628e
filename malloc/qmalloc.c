/*
 * qmalloc.c — libquanta-malloc.so: the C allocation API (malloc, free,
 * calloc, realloc, reallocarray, memalign, posix_memalign, aligned_alloc,
 * valloc, pvalloc, malloc_usable_size) over quanta, so that an unmodified
 * program runs on it with LD_PRELOAD.
 *
 * Theory
 * ------
 * A block is a piece of one of four sources, with a 16-byte header right
 * in front of the pointer the caller gets (so free needs no size):
 *   small   need <= UMEM_CLASS_MAX_BYTES (16 KiB): a whole umem_alloc size
 *           class (umem_alloc_class_bytes), the object caches' fast path;
 *   medium  need <= QM_MEDIUM_MAX (128 KiB): vmem_alloc of umem_default
 *           (quantum 16), the arena umem_alloc itself uses above 16 KiB;
 *   large   above: vmem_xalloc of qm_large, a page-quantum arena that
 *           imports from mmap; the address range stays in the arena, so
 *           a second free of the pointer still reads a header and is
 *           diagnosed, never a fault.  A free of a piece of 4 MiB or more
 *           gives its pages but the header's back (madvise
 *           MADV_DONTNEED); smaller ones keep theirs for the next block,
 *           as a heap does (giving every one back made each reuse fault
 *           its pages in again: bench/README.md, ci/bench-malloc);
 *   boot    a call made from inside the front end itself (a glibc or
 *           pthread routine that quanta's bootstrap calls, which calls
 *           malloc): a bump allocator over a static region, never reused.
 * need = size + 16 (the header), or size + align for align > 16: a source
 * piece is 16-aligned, so the first align boundary at least 16 bytes in
 * lies at most align bytes in.  A large block aligned above the page gets
 * phase align - page from vmem_xalloc, so its pointer is one page in.
 *
 * The header: the piece's size in bytes (exactly what its source was asked
 * for: umem_free and vmem_free need it), the pointer's offset in the piece,
 * and a tag: a hash of the pointer, the source (2 bits) and live/freed (1
 * bit).  free and realloc check the tag: a pointer whose header does not
 * carry its own hash was not handed out here, a freed tag is a double
 * free; either is a diagnostic naming the call and the pointer, then abort
 * (vmem_panic), in every build.  Usable size = piece size - offset.
 *
 * Recursion: qm_depth (thread-local, initial-exec so that reading it never
 * allocates) counts the front end's frames on this thread; a call made
 * with it non-zero is served from the boot region.  Fork: quanta's own
 * protocol (vmem_fork.c), installed by the first allocation, takes every
 * lock of the caches and arenas, qm_large's included; the boot region is
 * lock-free.  errno is kept across a call that succeeds.
 *
 * realloc moves a block above the size classes that grows into half as
 * much again as asked, so that a chain of growths moves it a logarithmic
 * number of times, not once a call.  calloc does not clear a large piece
 * the arena has just imported from mmap (qm_fresh): it is zero.
 *
 * Valgrind: a block is made a MALLOCLIKE block of its usable size (so
 * reads of the slack are not errors, as malloc_usable_size promises);
 * a small piece, which umem_alloc already announced, is un-announced
 * first and announced again before umem_free (which un-announces it); a
 * medium piece is made addressable again when it goes back to
 * umem_default, whose memory also becomes the caches' metadata.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "qmalloc.h"
#include "trace.h"
#include "umem_impl.h"

/* A large piece at least this big gives its pages back when freed. */
#define QM_LARGE_RETURN_MIN ((size_t)4 << 20)
#define QM_BOOT_BYTES ((size_t)512 << 10)
/* A request above this fails (ENOMEM) before any sum can wrap. */
#define QM_REQUEST_MAX ((size_t)PTRDIFF_MAX / 2)

#define QM_KIND_MASK 3u
#define QM_LIVE 4u
#define QM_TAG_MASK (~7u)

typedef struct qm_hdr {
	size_t h_piece_bytes; /* what the source handed out */
	uint32_t h_off;       /* pointer - piece start */
	uint32_t h_tag;       /* hash of the pointer | live | kind */
} qm_hdr_t;
_Static_assert(sizeof(qm_hdr_t) == QM_HDR_BYTES, "a 16-byte header");

static __thread unsigned qm_depth __attribute__((tls_model("initial-exec")));
/* The span qm_large imported from mmap during this thread's current call
 * (zero pages), and whether the last block this thread made lies in such
 * a span: calloc then need not clear it. */
static __thread uintptr_t qm_fresh_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t qm_fresh_hi __attribute__((tls_model("initial-exec")));
static __thread bool qm_fresh __attribute__((tls_model("initial-exec")));
static _Alignas(16) unsigned char qm_boot[QM_BOOT_BYTES];
static _Atomic size_t qm_boot_used;
static vmem_t *_Atomic qm_large;
/* Set by every racing first call to the same values (hence atomics). */
static vmem_t *_Atomic qm_medium_arena;
static _Atomic size_t qm_page_bytes;

static inline uint32_t qm_hash(const void *p)
{
	return ((uint32_t)((uintptr_t)p >> 4) * 0x9e3779b1u) & QM_TAG_MASK;
}

static inline qm_hdr_t *qm_hdr(void *p)
{
	return (qm_hdr_t *)p - 1;
}

static inline size_t qm_page(void)
{
	return atomic_load_explicit(&qm_page_bytes, memory_order_relaxed);
}

static inline vmem_t *qm_medium(void)
{
	return atomic_load_explicit(&qm_medium_arena, memory_order_relaxed);
}

/* ---- sources ------------------------------------------------------- */

static void *qm_pages_map(vmem_t *src, size_t size, int vmflag)
{
	(void)src;
	(void)vmflag;
	void *p = plat_pages_map(size);
	if (p != NULL) {
		qm_fresh_lo = (uintptr_t)p;
		qm_fresh_hi = (uintptr_t)p + size;
	}
	return p;
}

/* A large piece from lg, noting in qm_fresh whether it is fresh from mmap. */
static void *qm_large_get(vmem_t *lg, size_t bytes, size_t align)
{
	qm_fresh_lo = qm_fresh_hi = 0;
	void *p = align <= qm_page() ? vmem_alloc(lg, bytes, VM_NOSLEEP) :
	    vmem_xalloc(lg, bytes, align, align - qm_page(), 0, NULL, NULL,
	    VM_NOSLEEP);
	qm_fresh = p != NULL && (uintptr_t)p >= qm_fresh_lo &&
	    (uintptr_t)p + bytes <= qm_fresh_hi;
	return p;
}

/* Once per process, under the depth guard; racing first calls agree. */
static vmem_t *qm_setup(void)
{
	vmem_t *lg = atomic_load(&qm_large);
	if (lg != NULL)
		return lg;
	size_t page = plat_page_size();
	vmem_t *medium = umem_default_arena();
	VMEM_ASSERT(vmem_quantum(medium) == 16 && page >= 4096);
	atomic_store_explicit(&qm_page_bytes, page, memory_order_relaxed);
	atomic_store_explicit(&qm_medium_arena, medium, memory_order_relaxed);
	vmem_t *made = vmem_create("qmalloc_large", NULL, 0, page,
	    qm_pages_map, NULL, NULL, 0, VM_SLEEP);
	if (made == NULL)
		vmem_panic("malloc: cannot create the arena qmalloc_large");
	vmem_t *expect = NULL;
	if (!atomic_compare_exchange_strong(&qm_large, &expect, made)) {
		vmem_destroy(made);
		return expect;
	}
	qm_env_setup(); /* once: the winner */
	return made;
}

static void *qm_boot_take(size_t bytes)
{
	size_t at = atomic_fetch_add(&qm_boot_used, bytes);
	if (at > QM_BOOT_BYTES - bytes || bytes > QM_BOOT_BYTES)
		return NULL;
	return qm_boot + at;
}

/* A piece of *bytesp bytes (rounded up to what the source hands out) of
 * the kind need and align call for, or NULL. */
static void *qm_piece_get(size_t need, size_t align, int *kindp,
    size_t *bytesp)
{
	if (qm_depth > 1) {
		*kindp = QM_BOOT;
		*bytesp = qm_roundup(need, 16);
		return qm_boot_take(*bytesp);
	}
	vmem_t *lg = qm_setup();
	*kindp = qm_place(need, qm_page(), bytesp);
	if (*kindp == QM_SMALL) {
		void *p = umem_alloc(*bytesp, UMEM_DEFAULT);
		if (p != NULL)
			VALGRIND_FREELIKE_BLOCK(p, 0);
		return p;
	}
	if (*kindp == QM_MEDIUM)
		return vmem_alloc(qm_medium(), *bytesp, VM_NOSLEEP);
	return qm_large_get(lg, *bytesp, align);
}

static void qm_piece_put(void *piece, size_t bytes, int kind, void *user)
{
	switch (kind) {
	case QM_SMALL:
		VALGRIND_MALLOCLIKE_BLOCK(piece, bytes, 0, 0);
		umem_free(piece, bytes);
		break;
	case QM_MEDIUM:
		/* umem_default's pieces may come back as the caches' own
		 * metadata, which Valgrind must not see as a freed block. */
		VALGRIND_MAKE_MEM_UNDEFINED(piece, bytes);
		vmem_free(qm_medium(), piece, bytes);
		break;
	case QM_LARGE: {
		/* The header's page stays: a second free still finds it. */
		uintptr_t from = qm_roundup((uintptr_t)user, qm_page());
		uintptr_t end = (uintptr_t)piece + bytes;
		if (bytes >= QM_LARGE_RETURN_MIN && end > from)
			(void)madvise((void *)from, end - from, MADV_DONTNEED);
		vmem_free(atomic_load(&qm_large), piece, bytes);
		break;
	}
	default: /* QM_BOOT: never reused */
		break;
	}
}

/* ---- blocks ---------------------------------------------------------- */

/* A block of size bytes aligned to align (a power of two >= 16), or NULL
 * with errno ENOMEM. */
static void *qm_block_alloc(size_t size, size_t align)
{
	if (size > QM_REQUEST_MAX || align > QM_REQUEST_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	int saved = errno, kind;
	size_t bytes, need = size + (align > 16 ? align : 16);
	qm_fresh = false;
	qm_depth++;
	void *piece = qm_piece_get(need, align, &kind, &bytes);
	qm_depth--;
	if (piece == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	size_t off = qm_place_off(kind, (uintptr_t)piece, align, qm_page());
	unsigned char *user = (unsigned char *)piece + off;
	VMEM_ASSERT(off >= 16 && off + size <= bytes && off <= UINT32_MAX);
	VMEM_ASSERT(((uintptr_t)user & (align - 1)) == 0);
	qm_hdr_t *h = qm_hdr(user);
	VALGRIND_MAKE_MEM_UNDEFINED(h, sizeof(*h));
	h->h_piece_bytes = bytes;
	h->h_off = (uint32_t)off;
	h->h_tag = qm_hash(user) | QM_LIVE | (uint32_t)kind;
	VALGRIND_MALLOCLIKE_BLOCK(user, bytes - off, 0, 0);
	qm_stat_alloc(kind);
	errno = saved;
	return user;
}

/* The header of a block p that call (with size, for the message) was
 * given; p is not NULL.  Anything else is a diagnostic and abort. */
static qm_hdr_t *qm_block_check(void *p, const char *call, size_t size)
{
	const char *why = NULL;
	qm_hdr_t *h = qm_hdr(p);
	if (((uintptr_t)p & 15u) != 0)
		why = "not a pointer malloc returned (misaligned)";
	else if ((uintptr_t)p < 4096)
		why = "not a pointer malloc returned (in the first page)";
	else if ((h->h_tag & QM_TAG_MASK) != qm_hash(p) || h->h_off < 16 ||
	    h->h_off > h->h_piece_bytes)
		why = "not a pointer malloc returned (no header of ours)";
	else if ((h->h_tag & QM_LIVE) == 0)
		why = strcmp(call, "malloc_usable_size") == 0 ?
		    "the block is free" : "double free (the block is already free)";
	if (why == NULL)
		return h;
	if (size == SIZE_MAX)
		vmem_panic("%s(ptr %p): %s", call, p, why);
	vmem_panic("%s(ptr %p, size %lu): %s", call, p, (unsigned long)size,
	    why);
}

static size_t qm_block_usable(const qm_hdr_t *h)
{
	return h->h_piece_bytes - h->h_off;
}

static void qm_block_free(void *p, qm_hdr_t *h)
{
	int kind = (int)(h->h_tag & QM_KIND_MASK);
	void *piece = (unsigned char *)p - h->h_off;
	size_t bytes = h->h_piece_bytes;
	h->h_tag &= ~QM_LIVE;
	qm_stat_free(kind);
	VALGRIND_FREELIKE_BLOCK(p, 0);
	int saved = errno;
	qm_depth++;
	qm_piece_put(piece, bytes, kind, p);
	qm_depth--;
	errno = saved;
}

/* ---- the API ---------------------------------------------------------- */
/*
 * Each call is one record of the trace (malloc/TRACE.md), made here at the
 * API level and nowhere below: an allocation after its block exists, a
 * free before its block is released, a realloc after its new block exists
 * and before the old one is released.  So the calls share only unrecorded
 * helpers, and a call is never recorded twice.
 */

/* Record an allocating call (ptr NULL) and return its result. */
static inline void *qm_traced(unsigned op, size_t size, size_t align,
    void *result)
{
	if (qtrace_active())
		qtrace_record(op, NULL, size, align, result);
	return result;
}

void *malloc(size_t size)
{
	return qm_traced(QTRACE_MALLOC, size, 0, qm_block_alloc(size, 16));
}

void free(void *p)
{
	if (p == NULL)
		return;
	qm_hdr_t *h = qm_block_check(p, "free", SIZE_MAX);
	if (qtrace_active())
		qtrace_record(QTRACE_FREE, p, 0, 0, NULL);
	qm_block_free(p, h);
}

/* A block fresh from mmap is zero already.  An overflowing product is
 * recorded as a failed calloc of SIZE_MAX. */
void *calloc(size_t n, size_t size)
{
	size_t total;
	void *p = NULL;
	if (__builtin_mul_overflow(n, size, &total)) {
		total = SIZE_MAX;
		errno = ENOMEM;
	} else if ((p = qm_block_alloc(total, 16)) != NULL) {
		if (qm_fresh)
			VALGRIND_MAKE_MEM_DEFINED(p, total);
		else
			memset(p, 0, total);
	}
	return qm_traced(QTRACE_CALLOC, total, 0, p);
}

/*
 * realloc's block for p of size bytes: p itself when the new size fits
 * the block and uses at least a quarter of it (a block shrunk further
 * moves, so a small request does not keep a big piece; a large block
 * shrunk in place gives its tail pages back), else a new block holding
 * p's bytes, or NULL.  p is still live either way.
 */
static void *qm_resize(void *p, qm_hdr_t *h, size_t size)
{
	size_t usable = qm_block_usable(h);
	if (size <= usable && size >= usable / 4) {
		if ((h->h_tag & QM_KIND_MASK) == QM_LARGE) {
			uintptr_t from = qm_roundup((uintptr_t)p + size,
			    qm_page());
			uintptr_t end = (uintptr_t)p + usable;
			if (end > from)
				(void)madvise((void *)from, end - from,
				    MADV_DONTNEED);
		}
		qm_stat_realloc(true);
		return p;
	}
	/* A block above the size classes that grows gets half as much
	 * again, so that a chain of growths moves it a logarithmic number of
	 * times. */
	void *q = NULL;
	if (size > usable && size > UMEM_CLASS_MAX_BYTES &&
	    size < QM_REQUEST_MAX)
		q = qm_block_alloc(size + size / 2, 16);
	if (q == NULL)
		q = qm_block_alloc(size, 16);
	if (q != NULL) {
		memcpy(q, p, size < usable ? size : usable);
		qm_stat_realloc(false);
	}
	return q;
}

/* realloc(p, 0) frees p and returns NULL, as glibc does. */
void *realloc(void *p, size_t size)
{
	if (p == NULL)
		return qm_traced(QTRACE_REALLOC, size, 0,
		    qm_block_alloc(size, 16));
	qm_hdr_t *h = qm_block_check(p, "realloc", size);
	void *q = size == 0 ? NULL : qm_resize(p, h, size);
	if (qtrace_active())
		qtrace_record(QTRACE_REALLOC, p, size, 0, q);
	if (size == 0 || (q != NULL && q != p))
		qm_block_free(p, h);
	return q;
}

/* An overflowing product is recorded as a failed realloc to SIZE_MAX. */
void *reallocarray(void *p, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		if (qtrace_active())
			qtrace_record(QTRACE_REALLOC, p, SIZE_MAX, 0, NULL);
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, total);
}

static int qm_pow2(size_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* memalign and aligned_alloc: align must be a power of two (EINVAL). */
static void *qm_memalign(size_t align, size_t size)
{
	if (!qm_pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return qm_block_alloc(size, align < 16 ? 16 : align);
}

void *memalign(size_t align, size_t size)
{
	return qm_traced(QTRACE_MEMALIGN, size, align,
	    qm_memalign(align, size));
}

void *aligned_alloc(size_t align, size_t size)
{
	return qm_traced(QTRACE_ALIGNED_ALLOC, size, align,
	    qm_memalign(align, size));
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p = NULL;
	int err = EINVAL;
	if (qm_pow2(align) && align % sizeof(void *) == 0) {
		int saved = errno;
		p = qm_block_alloc(size, align < 16 ? 16 : align);
		errno = saved;
		err = p == NULL ? ENOMEM : 0;
	}
	(void)qm_traced(QTRACE_POSIX_MEMALIGN, size, align, p);
	if (p != NULL)
		*out = p;
	return err;
}

/* valloc and pvalloc are recorded as memalign(page, the size served). */
void *valloc(size_t size)
{
	size_t page = plat_page_size();
	return qm_traced(QTRACE_MEMALIGN, size, page,
	    qm_block_alloc(size, page));
}

void *pvalloc(size_t size)
{
	size_t page = plat_page_size();
	/* Above QM_REQUEST_MAX qm_block_alloc fails before any rounding. */
	size_t bytes = size == 0 ? page : size > QM_REQUEST_MAX ? size :
	    qm_roundup(size, page);
	return qm_traced(QTRACE_MEMALIGN, bytes, page,
	    qm_block_alloc(bytes, page));
}

size_t malloc_usable_size(void *p)
{
	if (p == NULL)
		return 0;
	return qm_block_usable(qm_block_check(p, "malloc_usable_size",
	    SIZE_MAX));
}
