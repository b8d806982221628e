/*
 * demo.c — a program built against an installed quanta (tests/install/run.sh
 * compiles it with pkg-config, statically and shared, and compares what it
 * prints with demo.expected).  It uses what an embedder uses: an ID arena
 * with next-fit recycling and a constrained allocation, and an object cache
 * whose constructor runs once per buffer, not once per allocation.  With
 * the argument "double-free" it frees an ID twice: the release library
 * must still end that in its one-line diagnostic and abort.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <umem.h>
#include <vmem.h>

static int point_construct(void *buf, void *arg, int umflag)
{
	(void)umflag;
	memset(buf, 0, 24);
	++*(int *)arg;
	return 0;
}

static unsigned long id(void *p)
{
	return (unsigned long)(uintptr_t)p;
}

static void ids(void)
{
	vmem_t *a = vmem_create("ids", (void *)1, 100, 1, NULL, NULL, NULL, 0,
	    VMC_IDENTIFIER | VM_SLEEP);
	void *x = vmem_alloc(a, 1, VM_NEXTFIT | VM_SLEEP);
	void *y = vmem_alloc(a, 1, VM_NEXTFIT | VM_SLEEP);
	vmem_free(a, x, 1);
	void *z = vmem_alloc(a, 1, VM_NEXTFIT | VM_SLEEP);
	void *w = vmem_xalloc(a, 4, 8, 0, 0, NULL, NULL, VM_NOSLEEP);
	printf("ids: %lu %lu, then %lu; 4 aligned to 8 at %lu\n", id(x), id(y),
	    id(z), id(w));
	printf("in use %zu of %zu; 1000 more: %s\n", vmem_size(a, VMEM_ALLOC),
	    vmem_size(a, VMEM_ALLOC | VMEM_FREE),
	    vmem_alloc(a, 1000, VM_NOSLEEP) == NULL ? "NULL" : "?");
	vmem_free(a, y, 1);
	vmem_free(a, z, 1);
	vmem_xfree(a, w, 4);
	printf("in use after the frees %zu\n", vmem_size(a, VMEM_ALLOC));
	vmem_destroy(a);
}

static void points(void)
{
	int made = 0;
	umem_cache_t *c = umem_cache_create("points", 24, 8, point_construct,
	    NULL, NULL, &made, NULL, 0);
	void *p[3];
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 3; i++)
			p[i] = umem_cache_alloc(c, UMEM_DEFAULT);
		for (int i = 0; i < 3; i++)
			umem_cache_free(c, p[i]);
	}
	umem_cache_stats_t st;
	umem_cache_stats(c, &st);
	printf("%s: bufsize %zu, constructed %d (stats %llu), distinct %s\n",
	    umem_cache_name(c), st.us_bufsize, made,
	    (unsigned long long)st.us_constructed,
	    p[0] != p[1] && p[1] != p[2] && p[0] != p[2] ? "yes" : "no");
	umem_cache_destroy(c);
	char *s = umem_zalloc(100, UMEM_DEFAULT);
	printf("umem_zalloc(100): %s\n", s != NULL && s[99] == 0 ? "zeroed" : "?");
	umem_free(s, 100);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "double-free") == 0) {
		vmem_t *a = vmem_create("once", (void *)1, 10, 1, NULL, NULL,
		    NULL, 0, VM_SLEEP);
		void *x = vmem_alloc(a, 1, VM_SLEEP);
		vmem_free(a, x, 1);
		vmem_free(a, x, 1);
		return 0;
	}
	ids();
	points();
	return 0;
}
