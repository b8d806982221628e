/*
 * qm_smoke.c — a small, deterministic program of ordinary allocation
 * traffic (4 threads of malloc/calloc/realloc/aligned/free of sizes from 1
 * byte to 1 MiB, a fork from a thread, stdio), built against plain libc.
 * ci/malloc-test runs it with libquanta-malloc.so preloaded, plainly and
 * under Valgrind memcheck, and compares its output with a plain run: the
 * output depends only on the data, never on addresses.  With an argument
 * "short" it runs a tenth of the rounds; with use-after-free or leak it
 * makes that one mistake instead; keys-first
 * makes glibc call malloc from inside the front end (keys_first).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SMOKE_THREADS 4
#define SMOKE_SLOTS 64
#define SMOKE_ROUNDS 3000
static int smoke_rounds = SMOKE_ROUNDS; /* "short": a tenth (Valgrind) */

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick_size(uint64_t r)
{
	static const size_t tops[] = {16, 256, 4096, 40000, 300000, 1 << 20};
	size_t top = tops[r % 6 == 5 && (r >> 8) % 8 != 0 ? 0 : r % 6];
	return 1 + (size_t)((r >> 16) % top);
}

/* One thread: a slot array of blocks, each filled with a byte pattern
 * checked before it is freed or grown; returns the checksum of the
 * bytes checked. */
static void *worker(void *arg)
{
	uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1), sum = 0;
	unsigned char *blk[SMOKE_SLOTS] = {0};
	size_t len[SMOKE_SLOTS] = {0};
	for (int round = 0; round < smoke_rounds; round++) {
		uint64_t r = next_rand(&s);
		size_t i = r % SMOKE_SLOTS, n = pick_size(next_rand(&s));
		for (size_t k = 0; k < len[i]; k++)
			sum += blk[i][k] == (unsigned char)(i + k) ? k % 7 : 1000;
		if (blk[i] != NULL && (r >> 40) % 3 == 0) {
			blk[i] = realloc(blk[i], n);
		} else {
			free(blk[i]);
			blk[i] = (r >> 40) % 3 == 1 ? calloc(1, n)
			    : aligned_alloc((size_t)64 << ((r >> 50) % 6), n);
		}
		if (blk[i] == NULL)
			abort();
		len[i] = n;
		for (size_t k = 0; k < n; k++)
			blk[i][k] = (unsigned char)(i + k);
	}
	for (size_t i = 0; i < SMOKE_SLOTS; i++)
		free(blk[i]);
	return (void *)(uintptr_t)sum;
}

/* Fork from a thread; the child allocates and exits with a known code. */
static void *forker(void *arg)
{
	(void)arg;
	pid_t pid = fork();
	if (pid == 0) {
		/* Allocate, then exec (so that Valgrind's leak check, which
		 * would run at the child's exit, sees no parent's threads
		 * gone with their blocks). */
		char *p = strdup("child allocates after a fork");
		if (p == NULL || strlen(p) != 28)
			_exit(1);
		execl("/bin/sh", "sh", "-c", "exit 42", (char *)NULL);
		_exit(2);
	}
	int st = 0;
	(void)waitpid(pid, &st, 0);
	return (void *)(uintptr_t)(WIFEXITED(st) ? WEXITSTATUS(st) : 255);
}

/*
 * The two mistakes a Valgrind run must see through the front end's client
 * requests (ci/malloc-test checks that it does): a read of a freed block,
 * and a block no pointer reaches any more.
 */
static int mistake(const char *what)
{
	static char *volatile held, *volatile lost;
	if (strcmp(what, "use-after-free") == 0) {
		held = malloc(100);
		memset(held, 1, 100);
		free(held);
		return held[10] == 1 ? 0 : 1;
	}
	if (strcmp(what, "leak") == 0) {
		lost = malloc(1000);
		lost[0] = 1;
		lost = NULL;
		return 0;
	}
	return 2;
}

static void *alloc_once(void *arg)
{
	void *volatile p = malloc(100);
	free(p);
	return arg;
}

/*
 * A program that takes 40 thread-specific keys before its first malloc:
 * the front end's bootstrap then gets key 40, and glibc's
 * pthread_setspecific of a key above 31 callocs a second-level array for
 * the thread — from inside the front end (the main thread and each of 2
 * threads: 3 boot allocations, which QUANTA_MALLOC_STATS=1 shows).
 */
static int keys_first(void)
{
	pthread_key_t k;
	for (int n = 0; n < 40; n++)
		if (pthread_key_create(&k, NULL) != 0)
			return 1;
	(void)alloc_once(NULL);
	pthread_t t[2];
	for (int n = 0; n < 2; n++)
		if (pthread_create(&t[n], NULL, alloc_once, NULL) != 0)
			return 1;
	for (int n = 0; n < 2; n++)
		(void)pthread_join(t[n], NULL);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "keys-first") == 0)
		return keys_first();
	if (argc > 1 && strcmp(argv[1], "short") == 0)
		smoke_rounds = SMOKE_ROUNDS / 10;
	else if (argc > 1)
		return mistake(argv[1]);
	pthread_t t[SMOKE_THREADS], f;
	for (uintptr_t k = 0; k < SMOKE_THREADS; k++)
		if (pthread_create(&t[k], NULL, worker, (void *)k) != 0)
			return 1;
	if (pthread_create(&f, NULL, forker, NULL) != 0)
		return 1;
	for (int k = 0; k < SMOKE_THREADS; k++) {
		void *sum;
		(void)pthread_join(t[k], &sum);
		printf("thread %d checksum %lu\n", k, (unsigned long)(uintptr_t)sum);
	}
	void *code;
	(void)pthread_join(f, &code);
	printf("forked child exit %lu\n", (unsigned long)(uintptr_t)code);
	return 0;
}
