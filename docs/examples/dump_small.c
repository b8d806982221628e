/*
 * dump_small — the two dump formats of one small arena, for
 * docs/howto-dump.md: an arena "child" of 16-byte quanta with one added span
 * and one span imported from an arena "parent", two holes cut into the added
 * span.  Prints vmem_dump's text form, then its JSON form.  Addresses are
 * plain integers (nothing here is memory), so the output is the same on
 * every run:  build/release/docs/examples/dump_small
 */
#include <stdio.h>
#include <stdlib.h>

#include "vmem.h"

#define ADDR(x) ((void *)(uintptr_t)(x))

int main(void)
{
	vmem_t *parent = vmem_create("parent", ADDR(0x10000000), 0x100000,
	    0x1000, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_t *child = vmem_create("child", ADDR(0x100000), 0x1000, 16,
	    vmem_alloc, vmem_free, parent, 0, VM_SLEEP);
	if (parent == NULL || child == NULL) {
		fprintf(stderr, "dump_small: vmem_create failed\n");
		return 2;
	}
	void *a = vmem_alloc(child, 0x100, VM_SLEEP);   /* 0x100000 */
	void *b = vmem_alloc(child, 0x40, VM_SLEEP);    /* 0x100100 */
	void *c = vmem_alloc(child, 0x100, VM_SLEEP);   /* 0x100140 */
	void *d = vmem_alloc(child, 0x40, VM_SLEEP);    /* 0x100240 */
	void *big = vmem_alloc(child, 0x1800, VM_SLEEP); /* imported */
	vmem_free(child, a, 0x100);
	vmem_free(child, c, 0x100);
	vmem_dump(child, stdout, VMEM_DUMP_TEXT);
	vmem_dump(child, stdout, VMEM_DUMP_JSON);
	vmem_free(child, big, 0x1800);
	vmem_free(child, b, 0x40);
	vmem_free(child, d, 0x40);
	vmem_destroy(child);
	vmem_destroy(parent);
	return 0;
}
