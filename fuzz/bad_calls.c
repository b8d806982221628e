/*
 * bad_calls.c — fuzz target: a small valid prefix, then ONE bad call, which
 * must end in the diagnostic that names it, then abort (VMEM.md "Bad
 * calls"; the substrings are those src/ prints and tests/test_vmem_bad.c
 * and tests/test_umem_bad.c assert).
 *
 * Theory
 * ------
 * The parent makes no allocator call at all: it forks one child per input
 * and reads the child's stderr through a pipe.  The child decodes the
 * input, runs the prefix (an arena or a cache, a few allocations), writes
 * each substring the diagnostic must contain as a line "@@EXPECT:<text>"
 * (addresses are only known at run time), then makes the bad call.  The
 * oracle, in the parent: the child died of SIGABRT, and every expected
 * substring appears in what it wrote after its last @@EXPECT line.
 * Anything else — it returned from the bad call (exit status 77), crashed
 * another way (a sanitizer report, SIGSEGV), hung (killed after
 * BC_TIMEOUT_MS), or printed another diagnostic — is a fuzz_fail that
 * shows the child's whole output (its decoded program is in it: the child
 * logs every step).
 *
 * Which substrings: always the call made and its arena or cache, as the
 * diagnostic's opening "call(arena \"name\", addr 0x..., size 0x...)" when
 * the arguments are known exactly; and the reason, when the prefix
 * determines it (a free through a quantum cache is judged by the cache
 * layer, a larger one by the arena: different, both right, reasons).
 *
 * Known limit: the engine sees the coverage of the parent only (the
 * child's counters die with it), so it mutates blind; the table is small
 * and every body reads few bytes, so random inputs still reach every
 * entry, but a prefix that needs a particular allocator state will not be
 * steered towards.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "umem.h"
#include "umem_impl.h"
#include "vmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BC_BASE ((uintptr_t)0x100000)
#define BC_SIZE ((size_t)0x100000)
#define BC_OTHER_BASE ((uintptr_t)0x400000)
#define BC_OUTSIDE ((uintptr_t)0x900000)
#define BC_TIMEOUT_MS 10000
#define BC_OUT_MAX 16384
#define BC_EXIT_RETURNED 77
#define BC_EXPECT "@@EXPECT:"

#define ADDR(x) ((void *)(uintptr_t)(x))

/* ---- the child's side ------------------------------------------------------ */

static void bc_expect(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bc_expect(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, BC_EXPECT "%s\n", line);
	fflush(stderr);
}

typedef struct bc_arena {
	vmem_t *vmp;
	char name[VMEM_NAMELEN];
	size_t q, qmax; /* qmax: the arena's effective qcache_max */
} bc_arena_t;

static size_t bc_roundup(size_t x, size_t q)
{
	return (x + q - 1) & ~(q - 1);
}

/* An arena over [base, base + BC_SIZE): quantum 1..64, 0..4 quantum
 * caches, and 0..3 live allocations low in it (noise). */
static void bc_arena_make_n(fuzz_in_t *in, bc_arena_t *a, const char *name,
    uintptr_t base, bool want_qcache, bool noise)
{
	a->q = (size_t)1 << (fuzz_u8(in) % 7);
	size_t k = fuzz_u8(in) % 5;
	if (want_qcache && k == 0)
		k = 1;
	(void)snprintf(a->name, sizeof(a->name), "%s", name);
	fuzz_step("vmem_create(\"%s\", 0x%lx, 0x%zx, quantum %zu, qcache_max "
	    "%zu)", name, (unsigned long)base, BC_SIZE, a->q, k * a->q);
	a->vmp = vmem_create(name, ADDR(base), BC_SIZE, a->q, NULL, NULL, NULL,
	    k * a->q, VMC_IDENTIFIER);
	if (a->vmp == NULL)
		fuzz_fail("prefix: vmem_create(\"%s\") returned NULL", name);
	a->qmax = a->vmp->ar_qcache_max;
	unsigned n = noise ? fuzz_u8(in) % 4 : 0;
	for (unsigned i = 0; i < n; i++) {
		size_t s = (1 + fuzz_u8(in) % 8) * a->q;
		fuzz_step("noise: vmem_alloc(\"%s\", %zu)", name, s);
		if (vmem_alloc(a->vmp, s, VM_NOSLEEP) == NULL)
			fuzz_fail("prefix: vmem_alloc(\"%s\", %zu) returned NULL",
			    name, s);
	}
}

static void bc_arena_make(fuzz_in_t *in, bc_arena_t *a, const char *name,
    uintptr_t base, bool want_qcache)
{
	bc_arena_make_n(in, a, name, base, want_qcache, true);
}

static void *bc_valloc(bc_arena_t *a, size_t s)
{
	fuzz_step("vmem_alloc(\"%s\", %zu)", a->name, s);
	void *p = vmem_alloc(a->vmp, s, VM_NOSLEEP);
	if (p == NULL)
		fuzz_fail("prefix: vmem_alloc(\"%s\", %zu) returned NULL", a->name,
		    s);
	return p;
}

static void *bc_xalloc(bc_arena_t *a, size_t s, size_t align)
{
	fuzz_step("vmem_xalloc(\"%s\", %zu, align %zu)", a->name, s, align);
	void *p = vmem_xalloc(a->vmp, s, align, 0, 0, NULL, NULL, VM_NOSLEEP);
	if (p == NULL)
		fuzz_fail("prefix: vmem_xalloc(\"%s\", %zu) returned NULL",
		    a->name, s);
	return p;
}

static bool bc_qpath(const bc_arena_t *a, size_t s)
{
	return s - 1 < a->qmax; /* vmem_free's own test */
}

/* The opening of every free diagnostic, arena path or quantum cache path. */
static void bc_expect_free(const char *call, const bc_arena_t *a, void *p,
    size_t s)
{
	bc_expect("%s(arena \"%s\", addr 0x%lx, size 0x%lx)", call, a->name,
	    (unsigned long)(uintptr_t)p, (unsigned long)s);
}

static void bc_expect_qcache(const bc_arena_t *a, size_t s)
{
	bc_expect("(quantum cache \"%s_%zu\")", a->name,
	    bc_roundup(s, a->q));
}

/* ---- vmem frees ---------------------------------------------------------- */

static void bad_vmem_free_never(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_never", BC_BASE, false);
	uint8_t where = fuzz_u8(in);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	/* The top half of the span is free: the noise and the quantum
	 * caches' slabs sit low.  Or no span at all. */
	uintptr_t addr = (where & 1) ? BC_OUTSIDE + a.q * (where >> 1)
	    : BC_BASE + BC_SIZE / 2 + a.q * (fuzz_u16(in) % (BC_SIZE / 2 / a.q));
	bc_expect_free("vmem_free", &a, ADDR(addr), s);
	if (bc_qpath(&a, s)) {
		bc_expect("buffer belongs to no cache");
		bc_expect_qcache(&a, s);
	} else {
		bc_expect("bad free: no allocated segment starts there (%s)",
		    (where & 1) ? "not in any span of the arena" : "already free");
	}
	fuzz_step("BAD: vmem_free(\"%s\", 0x%lx, %zu) never allocated", a.name,
	    (unsigned long)addr, s);
	vmem_free(a.vmp, ADDR(addr), s);
}

static void bad_vmem_free_size(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_size", BC_BASE, false);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	size_t s2 = (1 + fuzz_u8(in) % 8) * a.q;
	if (s2 == s)
		s2 = s + a.q;
	void *p = bc_valloc(&a, s);
	bc_expect_free("vmem_free", &a, p, s2);
	if (!bc_qpath(&a, s) && !bc_qpath(&a, s2)) {
		bc_expect("wrong size: the segment at 0x%lx has size 0x%lx",
		    (unsigned long)(uintptr_t)p, (unsigned long)s);
	} else if (bc_qpath(&a, s2)) {
		if (bc_qpath(&a, s))
			bc_expect("buffer belongs to cache \"%s_%zu\"", a.name, s);
		else
			bc_expect("buffer belongs to no cache");
		bc_expect_qcache(&a, s2);
	}
	fuzz_step("BAD: vmem_free(\"%s\", %p, %zu) of %zu", a.name, p, s2, s);
	vmem_free(a.vmp, p, s2);
}

static void bad_vmem_free_twice(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_twice", BC_BASE, false);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	void *p = bc_valloc(&a, s);
	(void)bc_valloc(&a, (1 + fuzz_u8(in) % 8) * a.q);
	fuzz_step("vmem_free(\"%s\", %p, %zu)", a.name, p, s);
	vmem_free(a.vmp, p, s);
	bc_expect_free("vmem_free", &a, p, s);
	bc_expect(bc_qpath(&a, s) ? "double free"
				  : "bad free: no allocated segment starts "
				    "there (already free)");
	fuzz_step("BAD: vmem_free(\"%s\", %p, %zu) again", a.name, p, s);
	vmem_free(a.vmp, p, s);
}

static void bad_vmem_free_interior(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_interior", BC_BASE, false);
	size_t k = 2 + fuzz_u8(in) % 7;
	size_t s = k * a.q;
	void *p = bc_valloc(&a, s);
	char *inner = (char *)p + a.q * (1 + fuzz_u8(in) % (k - 1));
	bc_expect_free("vmem_free", &a, inner, s);
	bc_expect(bc_qpath(&a, s) ? "not the start of a buffer"
				  : "bad free: no allocated segment starts "
				    "there (inside an allocated segment)");
	fuzz_step("BAD: vmem_free(\"%s\", %p, %zu) inside %p", a.name,
	    (void *)inner, s, p);
	vmem_free(a.vmp, inner, s);
}

static void bad_vmem_free_other_arena(fuzz_in_t *in)
{
	bc_arena_t a, b;
	bc_arena_make(in, &a, "bc_owner", BC_BASE, false);
	bc_arena_make(in, &b, "bc_stranger", BC_OTHER_BASE, false);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	void *p = bc_valloc(&a, s);
	/* The stranger's diagnostic, whatever its reason (its quantum cache
	 * may find the owner's cache, or no cache; its segments none). */
	bc_expect_free("vmem_free", &b, p, s);
	fuzz_step("BAD: vmem_free(\"%s\", %p, %zu) from \"%s\"", b.name, p, s,
	    a.name);
	vmem_free(b.vmp, p, s);
}

static void bad_vmem_xfree(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_xfree", BC_BASE, false);
	uint8_t how = fuzz_u8(in);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	size_t align = a.q << (fuzz_u8(in) % 4);
	void *p = bc_xalloc(&a, s, align);
	if (how % 2 == 0) {
		uintptr_t never = BC_BASE + BC_SIZE / 2 + a.q * (how >> 1);
		bc_expect_free("vmem_xfree", &a, ADDR(never), s);
		bc_expect("bad free: no allocated segment starts there (already "
		    "free)");
		fuzz_step("BAD: vmem_xfree(\"%s\", 0x%lx, %zu) never allocated",
		    a.name, (unsigned long)never, s);
		vmem_xfree(a.vmp, ADDR(never), s);
	} else {
		size_t s2 = s + a.q * (1 + (how >> 1) % 4);
		bc_expect_free("vmem_xfree", &a, p, s2);
		bc_expect("wrong size: the segment at 0x%lx has size 0x%lx",
		    (unsigned long)(uintptr_t)p, (unsigned long)s);
		fuzz_step("BAD: vmem_xfree(\"%s\", %p, %zu) of %zu", a.name, p,
		    s2, s);
		vmem_xfree(a.vmp, p, s2);
	}
}

/* vmem_xfree of what vmem_alloc's quantum cache gave, and vmem_free of a
 * small vmem_xalloc (which goes to a quantum cache that never gave it). */
static void bad_vmem_mismatch(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_mismatch", BC_BASE, true);
	uint8_t how = fuzz_u8(in);
	size_t s = (1 + fuzz_u8(in) % (a.qmax / a.q)) * a.q;
	if (how & 1) {
		void *p = bc_valloc(&a, s);
		bc_expect_free("vmem_xfree", &a, p, s);
		fuzz_step("BAD: vmem_xfree(\"%s\", %p, %zu) of a vmem_alloc",
		    a.name, p, s);
		vmem_xfree(a.vmp, p, s);
	} else {
		void *p = bc_xalloc(&a, s, 0);
		bc_expect_free("vmem_free", &a, p, s);
		bc_expect("buffer belongs to no cache");
		bc_expect_qcache(&a, s);
		fuzz_step("BAD: vmem_free(\"%s\", %p, %zu) of a vmem_xalloc",
		    a.name, p, s);
		vmem_free(a.vmp, p, s);
	}
}

/* ---- vmem_xalloc arguments, vmem_alloc, vmem_create, vmem_add ------------- */

typedef struct bc_x {
	size_t size, align, phase, nocross;
	uintptr_t min, max;
	const char *why;
	uintmax_t key; /* the argument that is wrong, in hex */
} bc_x_t;

/* One argument broken, every other valid (so the reason is certain). */
static bool bc_x_make(fuzz_in_t *in, size_t q, bc_x_t *x)
{
	uint8_t kind = fuzz_u8(in), r = fuzz_u8(in);
	memset(x, 0, sizeof(*x));
	x->size = (1 + r % 8) * q;
	switch (kind % 10) {
	case 0:
		x->align = q * (3 + 2 * (size_t)(r % 5));
		x->why = "align is not a power of two multiple of the quantum";
		x->key = x->align;
		return true;
	case 1:
		if (q == 1)
			return false;
		x->align = q >> (1 + (q > 2 ? r % 2 : 0));
		x->why = "align is not a power of two multiple of the quantum";
		x->key = x->align;
		return true;
	case 2:
		if (q == 1)
			return false;
		x->phase = q * (r % 4) + 1 + r % (q - 1);
		x->why = "phase is not a multiple of the quantum";
		x->key = x->phase;
		return true;
	case 3:
		x->align = q << (r % 5);
		x->phase = x->align + q * (r % 3);
		x->why = "phase >= align";
		x->key = x->phase;
		return true;
	case 4:
		x->nocross = (r & 1) && q > 1 ? q / 2 : q * (3 + 2 * (size_t)(r % 3));
		x->why = "nocross is not a power of two multiple of the quantum";
		x->key = x->nocross;
		return true;
	case 5:
		if (q == 1)
			return false;
		x->min = BC_BASE + q * (r % 16) + 1;
		x->why = "minaddr or maxaddr is not aligned to the quantum";
		x->key = x->min;
		return true;
	case 6:
		x->min = BC_BASE + q * (16 + r % 16);
		x->max = x->min - q * (r % 4);
		x->why = "minaddr >= maxaddr";
		x->key = x->min;
		return true;
	case 7:
		x->nocross = q << (r % 4);
		x->size = x->nocross + q * (1 + r % 3);
		x->why = "over-constrained: no address satisfies nocross";
		x->key = x->nocross;
		return true;
	case 8:
		x->min = BC_BASE;
		x->max = BC_BASE + q * (1 + r % 4);
		x->size = x->max - x->min + q * (1 + r % 3);
		x->why = "over-constrained: the window is smaller than size";
		x->key = x->min;
		return true;
	default:
		x->size = 0;
		x->why = "size 0";
		x->key = 0;
		return true;
	}
}

static void bad_vmem_xalloc_args(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_xargs", BC_BASE, false);
	bc_x_t x;
	if (!bc_x_make(in, a.q, &x)) {
		fuzz_step("quantum 1: that argument cannot be wrong; no bad call");
		_exit(0);
	}
	bc_expect("vmem_xalloc(arena \"%s\", size 0x%lx, ", a.name,
	    (unsigned long)x.size);
	bc_expect("0x%jx", x.key);
	bc_expect("): %s", x.why);
	fuzz_step("BAD: vmem_xalloc(\"%s\", size %zu, align %zu, phase %zu, "
	    "nocross %zu, min 0x%lx, max 0x%lx): %s", a.name, x.size, x.align,
	    x.phase, x.nocross, (unsigned long)x.min, (unsigned long)x.max,
	    x.why);
	(void)vmem_xalloc(a.vmp, x.size, x.align, x.phase, x.nocross,
	    ADDR(x.min), ADDR(x.max), VM_NOSLEEP);
}

static void bad_vmem_alloc_size0(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_size0", BC_BASE, false);
	int flags = (fuzz_u8(in) & 1) ? VM_NOSLEEP : VM_SLEEP;
	bc_expect("vmem_alloc(arena \"%s\", size 0x0, flags 0x%x): size 0",
	    a.name, (unsigned)flags);
	fuzz_step("BAD: vmem_alloc(\"%s\", 0, 0x%x)", a.name, (unsigned)flags);
	(void)vmem_alloc(a.vmp, 0, flags);
}

/* Any failure of a VM_PANIC request is a diagnostic naming the call made,
 * even when the failure happens below it (a quantum cache's slab import,
 * which is a vmem_xalloc of the same arena). */
static void bad_vmem_panic(fuzz_in_t *in)
{
	bc_arena_t a;
	/* No noise: a quantum cache with a slab could serve the request. */
	bc_arena_make_n(in, &a, "bc_panic", BC_BASE, false, false);
	uint8_t how = fuzz_u8(in);
	size_t s = (1 + fuzz_u8(in) % 8) * a.q;
	/* Take every free byte: one xalloc of the largest free piece, until
	 * nothing is free (the noise splits the span at most in a few). */
	for (int i = 0; i < 64 && vmem_size(a.vmp, VMEM_FREE) != 0; i++) {
		vmem_stats_t st;
		vmem_stats(a.vmp, &st);
		fuzz_step("fill: vmem_xalloc(\"%s\", %zu, VM_BESTFIT)", a.name,
		    st.vs_largest_free);
		if (vmem_xalloc(a.vmp, st.vs_largest_free, 0, 0, 0, NULL, NULL,
		    VM_NOSLEEP | VM_BESTFIT) == NULL)
			fuzz_fail("prefix: the fill returned NULL");
	}
	if (vmem_size(a.vmp, VMEM_FREE) != 0)
		fuzz_fail("prefix: arena \"%s\" still has free bytes", a.name);
	const char *call = (how & 1) ? "vmem_xalloc" : "vmem_alloc";
	bc_expect("%s(arena \"%s\", size 0x%lx", call, a.name,
	    (unsigned long)(how & 1 ? s : bc_roundup(s, a.q)));
	bc_expect("allocation failed (VM_PANIC)");
	fuzz_step("BAD: %s(\"%s\", %zu, VM_NOSLEEP | VM_PANIC) in a full arena",
	    call, a.name, s);
	if (how & 1)
		(void)vmem_xalloc(a.vmp, s, 0, 0, 0, NULL, NULL,
		    VM_NOSLEEP | VM_PANIC);
	else
		(void)vmem_alloc(a.vmp, s, VM_NOSLEEP | VM_PANIC);
}

static void bad_vmem_create(fuzz_in_t *in)
{
	uint8_t how = fuzz_u8(in), r = fuzz_u8(in);
	if (how & 1) {
		static const size_t bad_q[] = {0, 3, 5, 6, 7, 12, 24, 100, 4095};
		size_t q = bad_q[r % (sizeof(bad_q) / sizeof(bad_q[0]))];
		bc_expect("vmem_create(name \"bc_quantum\", base ");
		bc_expect("quantum 0x%lx): quantum is not a power of two",
		    (unsigned long)q);
		fuzz_step("BAD: vmem_create(\"bc_quantum\", quantum %zu)", q);
		(void)vmem_create("bc_quantum", ADDR(BC_BASE), BC_SIZE, q, NULL,
		    NULL, NULL, 0, VM_SLEEP);
	} else {
		bc_expect("vmem_create(name \"bc_ffunc\"): ffunc without afunc");
		fuzz_step("BAD: vmem_create(\"bc_ffunc\", afunc NULL, ffunc "
		    "vmem_free)");
		(void)vmem_create("bc_ffunc", NULL, 0, 16, NULL, vmem_free,
		    vmem_heap_arena(), 0, VM_SLEEP);
	}
}

static void bad_vmem_add(fuzz_in_t *in)
{
	bc_arena_t a;
	bc_arena_make(in, &a, "bc_add", BC_BASE, false);
	uint8_t how = fuzz_u8(in), r = fuzz_u8(in);
	uintptr_t addr;
	size_t s;
	const char *why;
	switch (how % 3) {
	case 0:
		addr = BC_OTHER_BASE + a.q * r;
		s = 0;
		why = "empty range";
		break;
	case 1:
		/* Overlapping the span: starting inside it, or before it. */
		addr = (r & 1) ? BC_BASE + a.q * (r >> 1)
			       : BC_BASE - a.q * (1 + (r >> 1));
		s = a.q * (1 + (size_t)r * 7);
		if (!(r & 1) && addr + s <= BC_BASE)
			s = BC_BASE - addr + a.q;
		why = "overlaps the span";
		break;
	default:
		if (a.q == 1) {
			fuzz_step("quantum 1: every range is aligned; no bad call");
			_exit(0);
		}
		addr = BC_OTHER_BASE + 1 + r % (a.q - 1);
		s = a.q;
		why = "range not aligned to the quantum";
		break;
	}
	bc_expect("vmem_add(arena \"%s\", addr 0x%lx, size 0x%lx): %s", a.name,
	    (unsigned long)addr, (unsigned long)s, why);
	fuzz_step("BAD: vmem_add(\"%s\", 0x%lx, 0x%zx): %s", a.name,
	    (unsigned long)addr, s, why);
	(void)vmem_add(a.vmp, ADDR(addr), s, VM_NOSLEEP);
}

/* ---- object caches --------------------------------------------------------- */

static umem_cache_t *bc_cache_make(fuzz_in_t *in, const char *name,
    void ***bufs, size_t *nbufs)
{
	static void *noise[4];
	size_t size = 1 + fuzz_u16(in) % 512;
	uint8_t a = fuzz_u8(in);
	size_t align = a % 7 == 0 ? 0 : (size_t)1 << (a % 7 + 1);
	fuzz_step("umem_cache_create(\"%s\", %zu, %zu)", name, size, align);
	umem_cache_t *cp = umem_cache_create(name, size, align, NULL, NULL,
	    NULL, NULL, NULL, 0);
	if (cp == NULL)
		fuzz_fail("prefix: umem_cache_create(\"%s\") returned NULL",
		    name);
	*nbufs = fuzz_u8(in) % 4;
	for (size_t i = 0; i < *nbufs; i++) {
		noise[i] = umem_cache_alloc(cp, UMEM_DEFAULT);
		fuzz_step("noise: umem_cache_alloc(\"%s\") = %p", name, noise[i]);
		if (noise[i] == NULL)
			fuzz_fail("prefix: umem_cache_alloc returned NULL");
	}
	*bufs = noise;
	return cp;
}

static void *bc_calloc(umem_cache_t *cp)
{
	void *p = umem_cache_alloc(cp, UMEM_DEFAULT);
	fuzz_step("umem_cache_alloc(\"%s\") = %p", umem_cache_name(cp), p);
	if (p == NULL)
		fuzz_fail("prefix: umem_cache_alloc returned NULL");
	return p;
}

static void bad_cache_free(fuzz_in_t *in)
{
	static char not_ours[4096] __attribute__((aligned(4096)));
	void **noise;
	size_t nn;
	umem_cache_t *cp = bc_cache_make(in, "bc_cache", &noise, &nn);
	uint8_t how = fuzz_u8(in), r = fuzz_u8(in);
	char *p = bc_calloc(cp);
	if (nn > 0 && (how & 0x80)) {
		fuzz_step("umem_cache_free(\"bc_cache\", %p)", noise[0]);
		umem_cache_free(cp, noise[0]); /* a free magazine round */
	}
	switch (how % 4) {
	case 0:
		fuzz_step("umem_cache_free(\"bc_cache\", %p)", (void *)p);
		umem_cache_free(cp, p);
		bc_expect("umem_cache_free(cache \"bc_cache\", buf %p): double "
		    "free", (void *)p);
		fuzz_step("BAD: umem_cache_free(\"bc_cache\", %p) again",
		    (void *)p);
		umem_cache_free(cp, p);
		break;
	case 1: {
		char *f = not_ours + 64 * (r % 64);
		bc_expect("umem_cache_free(cache \"bc_cache\", buf %p): buffer "
		    "belongs to no cache", (void *)f);
		fuzz_step("BAD: umem_cache_free(\"bc_cache\", %p) foreign",
		    (void *)f);
		umem_cache_free(cp, f);
		break;
	}
	case 2: {
		size_t off = 1 + r % (cp->cc_chunk_bytes - 1);
		bc_expect("umem_cache_free(cache \"bc_cache\", buf %p): not the "
		    "start of a buffer", (void *)(p + off));
		fuzz_step("BAD: umem_cache_free(\"bc_cache\", %p) inside %p",
		    (void *)(p + off), (void *)p);
		umem_cache_free(cp, p + off);
		break;
	}
	default: {
		void **n2;
		size_t nn2;
		umem_cache_t *other = bc_cache_make(in, "bc_other", &n2, &nn2);
		bc_expect("umem_cache_free(cache \"bc_other\", buf %p): buffer "
		    "belongs to cache \"bc_cache\"", (void *)p);
		fuzz_step("BAD: umem_cache_free(\"bc_other\", %p) of "
		    "\"bc_cache\"", (void *)p);
		umem_cache_free(other, p);
		break;
	}
	}
}

static void bc_dtor_unused(void *buf, void *arg)
{
	(void)buf;
	(void)arg;
	fuzz_fail("a destructor of a cache that should not exist ran");
}

static void bad_cache_args(fuzz_in_t *in)
{
	void **noise;
	size_t nn;
	uint8_t how = fuzz_u8(in), r = fuzz_u8(in);
	switch (how % 9) {
	case 0: {
		umem_cache_t *cp = bc_cache_make(in, "bc_args", &noise, &nn);
		void *p = bc_calloc(cp);
		bc_expect("umem_cache_free(cache NULL, buf %p): no cache", p);
		fuzz_step("BAD: umem_cache_free(NULL, %p)", p);
		umem_cache_free(NULL, p);
		break;
	}
	case 1: {
		umem_cache_t *cp = bc_cache_make(in, "bc_args", &noise, &nn);
		bc_expect("umem_cache_free(cache \"bc_args\", buf NULL): no "
		    "buffer");
		fuzz_step("BAD: umem_cache_free(\"bc_args\", NULL)");
		umem_cache_free(cp, NULL);
		break;
	}
	case 2:
		bc_expect("umem_cache_alloc(cache NULL, flags 0x%x): no cache",
		    (unsigned)(r & 1 ? UMEM_NOFAIL : UMEM_DEFAULT));
		fuzz_step("BAD: umem_cache_alloc(NULL)");
		(void)umem_cache_alloc(NULL, r & 1 ? UMEM_NOFAIL : UMEM_DEFAULT);
		break;
	case 3: {
		size_t al = 3 + 2 * (size_t)(r % 60);
		bc_expect("umem_cache_create(name \"bc_align\", size 64, align "
		    "%zu, flags 0x0): align is not a power of two", al);
		fuzz_step("BAD: umem_cache_create(\"bc_align\", 64, align %zu)",
		    al);
		(void)umem_cache_create("bc_align", 64, al, NULL, NULL, NULL,
		    NULL, NULL, 0);
		break;
	}
	case 4:
		bc_expect("umem_cache_create(name \"bc_zero\", size 0, align "
		    "%u, flags 0x0): size 0", r % 2 * 8u);
		fuzz_step("BAD: umem_cache_create(\"bc_zero\", 0)");
		(void)umem_cache_create("bc_zero", 0, r % 2 * 8u, NULL, NULL,
		    NULL, NULL, NULL, 0);
		break;
	case 5:
		bc_expect("umem_cache_create(name \"(null)\", size 64, align 0, "
		    "flags 0x0): no name");
		fuzz_step("BAD: umem_cache_create(NULL, 64)");
		(void)umem_cache_create(NULL, 64, 0, NULL, NULL, NULL, NULL,
		    NULL, 0);
		break;
	case 6:
		bc_expect("umem_cache_destroy(cache NULL): no cache");
		fuzz_step("BAD: umem_cache_destroy(NULL)");
		umem_cache_destroy(NULL);
		break;
	case 7: {
		umem_cache_t *cp = bc_cache_make(in, "bc_gone", &noise, &nn);
		for (size_t i = 0; i < nn; i++)
			umem_cache_free(cp, noise[i]);
		fuzz_step("umem_cache_destroy(\"bc_gone\")");
		umem_cache_destroy(cp);
		bc_expect("umem_cache_destroy(cache %p): not a live cache",
		    (void *)cp);
		fuzz_step("BAD: umem_cache_destroy(\"bc_gone\") again");
		umem_cache_destroy(cp);
		break;
	}
	default:
		bc_expect("umem_cache_create(name \"bc_qc\", size 64, align 0, "
		    "flags 0x%x): a quantum cache (UMC_QCACHE) has no "
		    "constructor", (unsigned)UMC_QCACHE);
		fuzz_step("BAD: umem_cache_create(\"bc_qc\", UMC_QCACHE, dtor)");
		(void)umem_cache_create("bc_qc", 64, 0, NULL, bc_dtor_unused,
		    NULL, NULL, NULL, UMC_QCACHE);
		break;
	}
}

/* The size class umem_alloc serves size from (umem_alloc.c). */
static size_t bc_class(size_t size)
{
	if (size <= 8)
		return 8;
	if (size <= 128)
		return (size + 15) & ~(size_t)15;
	for (size_t p = 128; p < UMEM_CLASS_MAX_BYTES; p *= 2)
		for (size_t q = 5; q <= 8; q++)
			if (size <= p * q / 4)
				return p * q / 4;
	return 0;
}

static size_t bc_umem_size(fuzz_in_t *in)
{
	uint8_t k = fuzz_u8(in);
	uint16_t v = fuzz_u16(in);
	return k & 1 ? 1 + v % UMEM_CLASS_MAX_BYTES
		     : UMEM_CLASS_MAX_BYTES + 1 + v % 8192;
}

static void bad_umem_free(fuzz_in_t *in)
{
	size_t s = bc_umem_size(in), s2 = bc_umem_size(in);
	uint8_t zero = fuzz_u8(in);
	if (zero % 4 == 0)
		s2 = 0;
	/* Over 16 KiB, umem_free is vmem_free of umem_default, which rounds
	 * sizes to its quantum (16): sizes that round alike are one size. */
	if (s2 == s || (s > UMEM_CLASS_MAX_BYTES && s2 > UMEM_CLASS_MAX_BYTES &&
	    bc_roundup(s, 16) == bc_roundup(s2, 16)))
		s2 = s + 16 <= UMEM_CLASS_MAX_BYTES || s > UMEM_CLASS_MAX_BYTES
		    ? s + 16 : s - 1;
	void *p = umem_alloc(s, UMEM_DEFAULT);
	fuzz_step("umem_alloc(%zu) = %p", s, p);
	if (p == NULL)
		fuzz_fail("prefix: umem_alloc(%zu) returned NULL", s);
	if (s2 == 0) {
		bc_expect("umem_free(buf %p, size 0): size 0", p);
	} else if (s2 > UMEM_CLASS_MAX_BYTES) {
		bc_expect("vmem_free(arena \"umem_default\", addr %p, size 0x%lx)",
		    p, (unsigned long)s2);
		if (s > UMEM_CLASS_MAX_BYTES)
			bc_expect("wrong size: the segment at %p has size 0x%lx",
			    p, (unsigned long)bc_roundup(s, 16));
	} else {
		bc_expect("umem_free(buf %p, size %zu): ", p, s2);
		if (s > UMEM_CLASS_MAX_BYTES)
			bc_expect("buffer belongs to no cache");
		else if (bc_class(s) != bc_class(s2))
			bc_expect("buffer belongs to cache \"umem_alloc_%zu\"",
			    bc_class(s));
		else
			bc_expect("wrong size: the buffer was allocated with "
			    "size %zu", s);
		bc_expect("(cache \"umem_alloc_%zu\")", bc_class(s2));
	}
	fuzz_step("BAD: umem_free(%p, %zu) of %zu", p, s2, s);
	umem_free(p, s2);
}

static int bc_ctor_fails(void *buf, void *arg, int flags)
{
	(void)buf;
	(void)arg;
	(void)flags;
	return 1;
}

static int bc_nofail_neither(void)
{
	return 5;
}

static void bad_nofail(fuzz_in_t *in)
{
	uint8_t how = fuzz_u8(in);
	umem_cache_t *cp = umem_cache_create("bc_nofail", 1 + how % 200, 0,
	    bc_ctor_fails, NULL, NULL, NULL, NULL, 0);
	if (cp == NULL)
		fuzz_fail("prefix: umem_cache_create returned NULL");
	if (how & 0x80) {
		umem_nofail_callback(bc_nofail_neither);
		bc_expect("umem_cache_alloc(cache \"bc_nofail\", UMEM_NOFAIL): "
		    "the nofail callback returned 0x5, neither retry nor exit");
	} else {
		bc_expect("umem_cache_alloc(cache \"bc_nofail\", UMEM_NOFAIL): "
		    "out of memory and no nofail callback");
	}
	fuzz_step("BAD: umem_cache_alloc(\"bc_nofail\", UMEM_NOFAIL), the "
	    "constructor always fails, callback %s",
	    (how & 0x80) ? "returns 5" : "none");
	(void)umem_cache_alloc(cp, UMEM_NOFAIL);
}

/* ---- the table ----------------------------------------------------------- */

typedef void bc_body_t(fuzz_in_t *in);

static bc_body_t *const bc_table[] = {
	bad_vmem_free_never,	   /* 0 */
	bad_vmem_free_size,	   /* 1 */
	bad_vmem_free_twice,	   /* 2 */
	bad_vmem_free_interior,    /* 3 */
	bad_vmem_free_other_arena, /* 4 */
	bad_vmem_xfree,		   /* 5 */
	bad_vmem_mismatch,	   /* 6 */
	bad_vmem_xalloc_args,	   /* 7 */
	bad_vmem_alloc_size0,	   /* 8 */
	bad_vmem_panic,		   /* 9 */
	bad_vmem_create,	   /* 10 */
	bad_vmem_add,		   /* 11 */
	bad_cache_free,		   /* 12 */
	bad_cache_args,		   /* 13 */
	bad_umem_free,		   /* 14 */
	bad_nofail,		   /* 15 */
};
#define BC_KINDS (sizeof(bc_table) / sizeof(bc_table[0]))

static _Noreturn void bc_child(const uint8_t *data, size_t size, int fd)
{
	struct rlimit no_core = {0, 0};
	(void)setrlimit(RLIMIT_CORE, &no_core);
	/* The engine's handlers (libFuzzer's crash callback would write a
	 * crash file from the child) give way to the default action. */
	(void)signal(SIGABRT, SIG_DFL);
	(void)signal(SIGALRM, SIG_DFL);
	sigset_t all;
	sigemptyset(&all);
	sigaddset(&all, SIGABRT);
	(void)sigprocmask(SIG_UNBLOCK, &all, NULL);
	if (dup2(fd, STDERR_FILENO) < 0)
		_exit(3);
	(void)close(fd);
	alarm(BC_TIMEOUT_MS / 1000);
	fuzz_in_t in;
	fuzz_in_init(&in, data, size);
	fuzz_log_state.verbose = 1;
	uint8_t kind = fuzz_u8(&in);
	bc_table[kind % BC_KINDS](&in);
	fflush(stderr);
	_exit(BC_EXIT_RETURNED);
}

/* ---- the parent's side ---------------------------------------------------- */

static long bc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Read the child's stderr until EOF or the deadline; false on timeout. */
static bool bc_read_all(int fd, char *out, size_t cap, size_t *len)
{
	long deadline = bc_now_ms() + BC_TIMEOUT_MS;
	*len = 0;
	for (;;) {
		long left = deadline - bc_now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = {fd, POLLIN, 0};
		int rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return false;
		char tmp[4096];
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return true;
		size_t take = (size_t)n < cap - 1 - *len ? (size_t)n
							 : cap - 1 - *len;
		memcpy(out + *len, tmp, take);
		*len += take;
		out[*len] = '\0';
	}
}

/* Every @@EXPECT substring is in the text after the last @@EXPECT line;
 * *missing gets the first one that is not (NULL: none expected). */
static bool bc_expectations_met(char *out, const char **missing)
{
	char *last = NULL, *p = out;
	while ((p = strstr(p, BC_EXPECT)) != NULL) {
		last = p;
		p += strlen(BC_EXPECT);
	}
	*missing = NULL;
	if (last == NULL)
		return false;
	char *diag = strchr(last, '\n');
	diag = diag != NULL ? diag + 1 : last + strlen(last);
	for (p = strstr(out, BC_EXPECT); p != NULL;
	    p = strstr(p, BC_EXPECT)) {
		p += strlen(BC_EXPECT);
		char *nl = strchr(p, '\n');
		char want[512];
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n >= sizeof(want))
			n = sizeof(want) - 1;
		memcpy(want, p, n);
		want[n] = '\0';
		if (strstr(diag, want) == NULL) {
			static char miss[512];
			memcpy(miss, want, n + 1);
			*missing = miss;
			return false;
		}
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[BC_OUT_MAX];
	fuzz_log_reset();
	int fds[2];
	if (pipe(fds) != 0)
		fuzz_fail("harness: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fuzz_fail("harness: fork: %s", strerror(errno));
	if (pid == 0) {
		(void)close(fds[0]);
		bc_child(data, size, fds[1]);
	}
	(void)close(fds[1]);
	size_t len;
	bool done = bc_read_all(fds[0], out, sizeof(out), &len);
	(void)close(fds[0]);
	if (!done)
		(void)kill(pid, SIGKILL);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	fuzz_step("bad call kind %u", size > 0 ? data[0] % (unsigned)BC_KINDS
					       : 0u);
	if (fuzz_log_state.verbose) /* QUANTA_FUZZ_VERBOSE=1: the child's run */
		fprintf(stderr, "child's stderr:\n%s", out);
	if (!done)
		fuzz_fail("the child hung (killed after %d ms); its stderr:\n%s",
		    BC_TIMEOUT_MS, out);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    strstr(out, BC_EXPECT) == NULL)
		return 0; /* no bad call to make (the body said why) */
	const char *missing;
	bool met = bc_expectations_met(out, &missing);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && met)
		return 0;
	char how[96];
	if (WIFEXITED(status))
		(void)snprintf(how, sizeof(how), "%s (exit status %d)",
		    WEXITSTATUS(status) == BC_EXIT_RETURNED
			? "the bad call returned"
			: "the child exited",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		(void)snprintf(how, sizeof(how), "the child died of signal %d%s",
		    WTERMSIG(status),
		    WTERMSIG(status) == SIGABRT ? " (SIGABRT)" : "");
	else
		(void)snprintf(how, sizeof(how), "status 0x%x", status);
	fuzz_fail("%s; %s%s%s; the child's stderr:\n%s", how,
	    missing != NULL ? "the diagnostic lacks \"" : "",
	    missing != NULL ? missing : "no expectation was written",
	    missing != NULL ? "\"" : "", out);
}
