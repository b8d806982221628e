/*
 * arena_demo — builds a three-level arena stack over process memory,
 * exercises every policy and constraint, and prints each arena's statistics
 * and JSON dump.  The main command (ci/campaign) runs it until the fuzzing
 * and simulation campaigns exist.
 *
 * When every other allocation of the 64-byte arena has been freed, the arena
 * is at its most fragmented: the demo then writes the JSON dumps of the
 * stack (small, pages, pids) as one JSON array to a file, for
 * tools/quanta-view to draw:  arena_demo [DUMP.json], or the path in
 * $QUANTA_DEMO_DUMP, or build/arena_demo.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmem.h"

#define NLIVE 4096

static void must(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "arena_demo: %s failed\n", what);
		exit(2);
	}
}

static void print_stats(vmem_t *vmp)
{
	vmem_stats_t st;
	vmem_stats(vmp, &st);
	printf("%-10s inuse %9zu total %9zu import %9zu alloc %6llu free %6llu "
	    "largest-free %9zu frag %.3f\n", vmem_name(vmp), st.vs_mem_inuse,
	    st.vs_mem_total, st.vs_mem_import, (unsigned long long)st.vs_alloc,
	    (unsigned long long)st.vs_free, st.vs_largest_free,
	    st.vs_fragmentation);
}

/* The arenas' JSON dumps as one JSON array in the file at path. */
static void write_dumps(const char *path, vmem_t *const *arenas, int n)
{
	FILE *fp = fopen(path, "w");
	if (fp == NULL) {
		perror(path);
		exit(2);
	}
	(void)fputs("[\n", fp);
	for (int i = 0; i < n; i++) {
		if (i > 0)
			(void)fputs(",\n", fp);
		vmem_dump(arenas[i], fp, VMEM_DUMP_JSON);
	}
	(void)fputs("]\n", fp);
	must(ferror(fp) == 0 && fclose(fp) == 0, "writing the dump");
	printf("dumps of small, pages, pids written to %s\n", path);
}

int main(int argc, char **argv)
{
	const char *dump_path = argc > 1 ? argv[1] : getenv("QUANTA_DEMO_DUMP");
	if (dump_path == NULL)
		dump_path = "build/arena_demo.json";
	/* Level 1: 4 KiB pages from the heap; level 2: 64-byte quanta of
	 * memory; level 3: an ID space that is not memory at all. */
	vmem_t *pages = vmem_create("pages", NULL, 0, 4096, vmem_alloc,
	    vmem_free, vmem_heap_arena(), 0, VM_SLEEP);
	vmem_t *small = vmem_create("small", NULL, 0, 64, vmem_alloc, vmem_free,
	    pages, 0, VM_SLEEP);
	vmem_t *ids = vmem_create("pids", (void *)1, 30000, 1, NULL, NULL, NULL,
	    0, VMC_IDENTIFIER | VM_SLEEP);
	must(pages && small && ids, "vmem_create");

	static void *live[NLIVE];
	static size_t sizes[NLIVE];
	unsigned seed = 12345;
	for (int i = 0; i < NLIVE; i++) {
		seed = seed * 1103515245u + 12345u;
		sizes[i] = 64 * (1 + (seed >> 16) % 64);
		live[i] = vmem_alloc(small, sizes[i], VM_SLEEP);
		memset(live[i], 0xa5, sizes[i]); /* it is real memory */
	}
	void *x = vmem_xalloc(small, 1000, 4096, 128, 0, NULL, NULL,
	    VM_NOSLEEP);
	must(x != NULL && ((uintptr_t)x & 4095) == 128, "vmem_xalloc");
	void *pid1 = vmem_alloc(ids, 1, VM_NEXTFIT | VM_SLEEP);
	void *pid2 = vmem_alloc(ids, 1, VM_NEXTFIT | VM_SLEEP);
	vmem_free(ids, pid1, 1);
	void *pid3 = vmem_alloc(ids, 1, VM_NEXTFIT | VM_SLEEP);
	printf("pids: %lu %lu, then %lu (next fit recycles late)\n",
	    (unsigned long)(uintptr_t)pid1, (unsigned long)(uintptr_t)pid2,
	    (unsigned long)(uintptr_t)pid3);

	printf("-- with %d live allocations\n", NLIVE);
	print_stats(small);
	print_stats(pages);
	for (int i = 0; i < NLIVE; i += 2)
		vmem_free(small, live[i], sizes[i]);
	printf("-- every other one freed\n");
	print_stats(small);
	print_stats(pages);
	vmem_dump(small, stdout, VMEM_DUMP_TEXT);
	write_dumps(dump_path, (vmem_t *const[]){ small, pages, ids }, 3);
	for (int i = 1; i < NLIVE; i += 2)
		vmem_free(small, live[i], sizes[i]);
	vmem_xfree(small, x, 1000);
	printf("-- all freed: imported spans went back to the source\n");
	print_stats(small);
	print_stats(pages);
	vmem_dump(small, stdout, VMEM_DUMP_JSON);
	vmem_free(ids, pid2, 1);
	vmem_free(ids, pid3, 1);
	vmem_destroy(ids);
	vmem_destroy(small);
	vmem_destroy(pages);
	return 0;
}
