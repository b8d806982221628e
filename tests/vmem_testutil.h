/*
 * tests/vmem_testutil.h — what the arena tests share: integer/pointer
 * casts, the usual fake range, an arena over it, a stats snapshot.
 * Include after qtest.h and vmem.h.
 */
#ifndef QUANTA_VMEM_TESTUTIL_H
#define QUANTA_VMEM_TESTUTIL_H

#define ADDR(x) ((void *)(uintptr_t)(x))
#define UADDR(p) ((uintptr_t)(p))

#define BASE 0x100000u
#define SIZE 0x100000u
#define Q16 16u

static inline QT_UNUSED vmem_t *
make_arena(const char *name, uintptr_t base, size_t size, size_t quantum)
{
	vmem_t *vmp = vmem_create(name, ADDR(base), size, quantum, NULL, NULL,
	    NULL, 0, VM_SLEEP);
	QT_TRUE(vmp != NULL);
	return vmp;
}

/* A snapshot; the fill pattern shows a field vmem_stats forgot to set. */
static inline QT_UNUSED vmem_stats_t
stats_of(vmem_t *vmp)
{
	vmem_stats_t st;
	memset(&st, 0xA5, sizeof(st));
	vmem_stats(vmp, &st);
	return st;
}

#endif
