/*
 * replay_main.c — a plain main() for every fuzz target, so that corpora
 * and crashes replay in the ordinary builds (scons: build/<variant>/fuzz/
 * <target>-replay), without a fuzzing engine.
 *
 *   <target>-replay [-v] PATH...
 * Each PATH is an input file or a folder (its files, and those of its
 * regressions/ subfolder).  Every input runs in a child process of its
 * own, so one that aborts fails alone, and one that runs longer than
 * QUANTA_REPLAY_TIMEOUT seconds (default 20; inputs take milliseconds) is
 * killed and fails: a hang is a finding, as under libFuzzer's -timeout.
 * -v (or QUANTA_FUZZ_VERBOSE=1) prints the decoded program step by step.  Output: "ok - FILE" or
 * "not ok - FILE: how it ended", then "N passed, M failed"; the exit
 * status is 0 iff nothing failed.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* gcov's flush, present only in a coverage build. */
extern void __gcov_dump(void) __attribute__((weak));

#define REPLAY_INPUT_MAX (1u << 20)

#define REPLAY_TIMEOUT_DEFAULT 20

static unsigned passed, failed;

static unsigned replay_timeout(void)
{
	const char *v = getenv("QUANTA_REPLAY_TIMEOUT");
	long t = v != NULL ? strtol(v, NULL, 10) : 0;
	return t > 0 ? (unsigned)t : REPLAY_TIMEOUT_DEFAULT;
}

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		printf("not ok - %s: cannot open: %s\n", path, strerror(errno));
		failed++;
		return;
	}
	static uint8_t buf[REPLAY_INPUT_MAX];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(replay_timeout());
		(void)LLVMFuzzerTestOneInput(buf, n);
		fflush(NULL);
		if (__gcov_dump != NULL)
			__gcov_dump();
		_exit(0);
	}
	int status = 0;
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok - %s\n", path);
		passed++;
		return;
	}
	if (pid > 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		printf("not ok - %s: timed out after %u s (a hang)\n", path,
		    replay_timeout());
	else if (pid > 0 && WIFSIGNALED(status))
		printf("not ok - %s: killed by signal %d (%s)\n", path,
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		printf("not ok - %s: exit %d\n", path,
		    pid > 0 ? WEXITSTATUS(status) : -1);
	failed++;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The files of a folder in name order, then its regressions/. */
static void replay_dir(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	char *names[4096];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < 4096) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
			continue;
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (!is_dir(path))
			replay_file(path);
		else if (depth == 0 && strcmp(names[i], "regressions") == 0)
			replay_dir(path, 1);
		free(names[i]);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			setenv("QUANTA_FUZZ_VERBOSE", "1", 1);
			continue;
		}
		if (is_dir(argv[i]))
			replay_dir(argv[i], 0);
		else
			replay_file(argv[i]);
	}
	printf("%u passed, %u failed\n", passed, failed);
	return failed != 0;
}
