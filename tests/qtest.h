/*
 * quanta — tests/qtest.h: a single-header test harness.
 *
 * QTEST(name) { ... } defines a test and registers it (a constructor function
 * appends it to a table; the runner sorts the table by line so that tests run
 * in the order they are written).  QTEST_MAIN() provides main(), which accepts
 * an optional argv[1]: only tests whose name contains it are run.
 *
 * Every test runs in a forked child with a QT_TIMEOUT_S alarm, so a crash, an
 * abort or a hang fails that test only and the next one runs.  A failing
 * assertion writes its reason (file:line, the expressions and both values)
 * into a pipe that the parent reads, and ends the child.  Output, one line per
 * test:
 *     ok - <name>
 *     not ok - <name>: <reason>
 * and last, exactly "N passed, M failed".  The exit code is 0 iff M == 0.
 *
 * Death tests: qt_expect_abort(fn, arg, substring) runs fn(arg) in a further
 * child whose stderr goes into a pipe, and is true only if that child died of
 * SIGABRT and its stderr contains the substring.  qt_last_stderr() returns
 * what the last such child wrote, for further checks.
 *
 * Only fork, waitpid, pipe and alarm are used (no signal handlers), so the
 * harness works unchanged under Valgrind.  Include this header first: it asks
 * for POSIX.1-2008 before any system header is read.
 */
#ifndef QUANTA_QTEST_H
#define QUANTA_QTEST_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

#define QT_TESTS_MAX 1024
#define QT_TIMEOUT_S 60
#define QT_DEATH_TIMEOUT_S 30

#define QT_REASON_BYTES_MAX 4096
#define QT_CAPTURE_BYTES_MAX (256 * 1024)
#define QT_HAYSTACK_SHOWN_MAX 1500

#define QT_UNUSED __attribute__((unused))

/* gcov's flush, present only in a coverage build: a child that ends with
 * _exit (every test, every death test) writes its counters first. */
extern void __gcov_dump(void) __attribute__((weak));

static QT_UNUSED _Noreturn void qt_exit(int code)
{
	if (__gcov_dump != NULL)
		__gcov_dump();
	_exit(code);
}


/*
 * QTEST_TIMEOUT_SCALE=k multiplies both timeouts (ci/check sets it for runs
 * under Valgrind, which is some 30x slower); a hang still fails, later.
 */
static inline QT_UNUSED unsigned
qt_timeout(unsigned base_s)
{
	const char *e = getenv("QTEST_TIMEOUT_SCALE");
	long k = e != NULL ? strtol(e, NULL, 10) : 1;
	return base_s * (unsigned)(k >= 1 && k <= 100 ? k : 1);
}

typedef void (*qt_body_fn)(void);

struct qt_test {
	const char *name;
	qt_body_fn body;
	int line;
};

static struct qt_test qt_tests[QT_TESTS_MAX] QT_UNUSED;
static int qt_test_count QT_UNUSED;
/* Write end of the reason pipe in a test child; -1 in the runner. */
static int qt_reason_fd QT_UNUSED = -1;
/* What the last death-test child wrote on stderr (NUL-terminated). */
static char qt_capture[QT_CAPTURE_BYTES_MAX + 1] QT_UNUSED;

static inline QT_UNUSED void
qt_register(const char *name, qt_body_fn body, int line)
{
	if (qt_test_count >= QT_TESTS_MAX) {
		fprintf(stderr, "qtest: more than %d tests\n", QT_TESTS_MAX);
		abort();
	}
	qt_tests[qt_test_count].name = name;
	qt_tests[qt_test_count].body = body;
	qt_tests[qt_test_count].line = line;
	qt_test_count++;
}

#define QTEST(name)                                                       \
	static void qt_body_##name(void);                                 \
	__attribute__((constructor)) static void qt_register_##name(void) \
	{                                                                 \
		qt_register(#name, qt_body_##name, __LINE__);             \
	}                                                                 \
	static void qt_body_##name(void)

/* Write all of buf to fd, retrying short writes and EINTR. */
static inline QT_UNUSED void
qt_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Read fd to EOF into buf (at most cap bytes kept, the rest drained so the
 * writer never blocks); returns the bytes kept and NUL-terminates.
 */
static inline QT_UNUSED size_t
qt_read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	char drain[4096];

	for (;;) {
		ssize_t n;
		if (len < cap)
			n = read(fd, buf + len, cap - len);
		else
			n = read(fd, drain, sizeof(drain));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (len < cap)
			len += (size_t)n;
	}
	buf[len] = '\0';
	return len;
}

static inline QT_UNUSED pid_t
qt_wait(pid_t pid, int *status)
{
	pid_t r;
	do {
		r = waitpid(pid, status, 0);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Describe a wait status in words, into buf. */
static inline QT_UNUSED void
qt_describe_status(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status)) {
		snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		if (sig == SIGALRM)
			snprintf(buf, cap, "timed out (alarm, signal %d)", sig);
		else
			snprintf(buf, cap, "killed by signal %d (%s)", sig,
			    strsignal(sig));
	} else {
		snprintf(buf, cap, "wait status 0x%x", (unsigned)status);
	}
}

/*
 * Fail the running test: format the reason (newlines shown as "\n" so the
 * report stays one line), hand it to the runner and end the child.
 */
__attribute__((noreturn, format(printf, 3, 4))) static inline QT_UNUSED void
qt_fail(const char *file, int line, const char *fmt, ...)
{
	char raw[QT_REASON_BYTES_MAX];
	char out[QT_REASON_BYTES_MAX];
	size_t o = 0;
	int n;
	va_list ap;

	n = snprintf(raw, sizeof(raw), "%s:%d: ", file, line);
	if (n < 0)
		n = 0;
	va_start(ap, fmt);
	if ((size_t)n < sizeof(raw))
		vsnprintf(raw + n, sizeof(raw) - (size_t)n, fmt, ap);
	va_end(ap);
	for (size_t i = 0; raw[i] != '\0' && o + 3 < sizeof(out); i++) {
		if (raw[i] == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = raw[i];
		}
	}
	out[o] = '\0';
	fflush(NULL);
	if (qt_reason_fd >= 0)
		qt_write_all(qt_reason_fd, out, o);
	else
		fprintf(stderr, "%s\n", out);
	qt_exit(1);
}

#define QT_EQ(a, b)                                                        \
	do {                                                               \
		uintmax_t qt_a_ = (uintmax_t)(a);                          \
		uintmax_t qt_b_ = (uintmax_t)(b);                          \
		if (qt_a_ != qt_b_)                                        \
			qt_fail(__FILE__, __LINE__,                        \
			    "QT_EQ(%s, %s): 0x%jx (%ju) != 0x%jx (%ju)", #a, \
			    #b, qt_a_, qt_a_, qt_b_, qt_b_);               \
	} while (0)

#define QT_PTR_EQ(a, b)                                                    \
	do {                                                               \
		const void *qt_pa_ = (const void *)(a);                    \
		const void *qt_pb_ = (const void *)(b);                    \
		if (qt_pa_ != qt_pb_)                                      \
			qt_fail(__FILE__, __LINE__,                        \
			    "QT_PTR_EQ(%s, %s): %p != %p", #a, #b, qt_pa_, \
			    qt_pb_);                                       \
	} while (0)

#define QT_TRUE(x)                                                       \
	do {                                                             \
		if (!(x))                                                \
			qt_fail(__FILE__, __LINE__, "QT_TRUE(%s) failed", \
			    #x);                                         \
	} while (0)

#define QT_STR_CONTAINS(haystack, needle)                                   \
	do {                                                                \
		const char *qt_h_ = (haystack);                             \
		const char *qt_n_ = (needle);                               \
		if (qt_h_ == NULL || strstr(qt_h_, qt_n_) == NULL)          \
			qt_fail(__FILE__, __LINE__,                         \
			    "QT_STR_CONTAINS(%s, %s): \"%s\" not in \"%.*s\"", \
			    #haystack, #needle, qt_n_,                      \
			    QT_HAYSTACK_SHOWN_MAX,                          \
			    qt_h_ == NULL ? "(null)" : qt_h_);              \
	} while (0)

/*
 * Run fn(arg) in a child whose stderr is a pipe; keep what it writes in
 * qt_capture and return its wait status.  The child gets its own alarm (a
 * pending alarm is not inherited across fork) and dumps no core.
 */
static inline QT_UNUSED int
qt_capture_stderr(void (*fn)(void *), void *arg)
{
	int fds[2];
	int status = 0;
	pid_t pid;

	qt_capture[0] = '\0';
	if (pipe(fds) != 0) {
		perror("qtest: pipe");
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("qtest: fork");
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		(void)setrlimit(RLIMIT_CORE, &no_core);
#if defined(__linux__)
		(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
		close(fds[0]);
		if (dup2(fds[1], STDERR_FILENO) < 0)
			_exit(126);
		close(fds[1]);
		alarm(qt_timeout(QT_DEATH_TIMEOUT_S));
		fn(arg);
		fflush(NULL);
		qt_exit(0);
	}
	close(fds[1]);
	(void)qt_read_all(fds[0], qt_capture, QT_CAPTURE_BYTES_MAX);
	close(fds[0]);
	if (qt_wait(pid, &status) < 0) {
		perror("qtest: waitpid");
		return -1;
	}
	return status;
}

static inline QT_UNUSED const char *
qt_last_stderr(void)
{
	return qt_capture;
}

/*
 * True iff fn(arg), run in a child, dies of SIGABRT having written
 * expected_stderr_substring on its stderr.  Otherwise says what happened.
 */
static inline QT_UNUSED int
qt_expect_abort(void (*fn)(void *), void *arg,
    const char *expected_stderr_substring)
{
	char how[128];
	int status = qt_capture_stderr(fn, arg);
	int aborted;

	if (status == -1)
		return 0;
	aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
	if (aborted && strstr(qt_capture, expected_stderr_substring) != NULL)
		return 1;
	qt_describe_status(status, how, sizeof(how));
	fprintf(stderr,
	    "qt_expect_abort: wanted SIGABRT and stderr containing \"%s\";\n"
	    "  got: %s; stderr was:\n%s\n--- end of stderr ---\n",
	    expected_stderr_substring, how, qt_capture);
	return 0;
}

/* Run one test in a child; print its line; return 1 if it passed. */
static inline QT_UNUSED int
qt_run_one(const struct qt_test *t)
{
	char reason[QT_REASON_BYTES_MAX + 1];
	char how[128];
	int fds[2];
	int status = 0;
	size_t len;
	pid_t pid;

	if (pipe(fds) != 0) {
		printf("not ok - %s: harness: pipe failed: %s\n", t->name,
		    strerror(errno));
		return 0;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		printf("not ok - %s: harness: fork failed: %s\n", t->name,
		    strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return 0;
	}
	if (pid == 0) {
		close(fds[0]);
		qt_reason_fd = fds[1];
		alarm(qt_timeout(QT_TIMEOUT_S));
		t->body();
		fflush(NULL);
		qt_exit(0);
	}
	close(fds[1]);
	len = qt_read_all(fds[0], reason, QT_REASON_BYTES_MAX);
	close(fds[0]);
	if (qt_wait(pid, &status) < 0) {
		printf("not ok - %s: harness: waitpid failed: %s\n", t->name,
		    strerror(errno));
		return 0;
	}
	if (len == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok - %s\n", t->name);
		return 1;
	}
	if (len > 0) {
		printf("not ok - %s: %s\n", t->name, reason);
	} else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
		printf("not ok - %s: timed out after %u s\n", t->name,
		    qt_timeout(QT_TIMEOUT_S));
	} else {
		qt_describe_status(status, how, sizeof(how));
		printf("not ok - %s: %s\n", t->name, how);
	}
	return 0;
}

static inline QT_UNUSED int
qt_main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int passed = 0;
	int failed = 0;

	/* Constructors may run in any order: restore source order. */
	for (int i = 1; i < qt_test_count; i++) {
		struct qt_test t = qt_tests[i];
		int j = i;
		while (j > 0 && qt_tests[j - 1].line > t.line) {
			qt_tests[j] = qt_tests[j - 1];
			j--;
		}
		qt_tests[j] = t;
	}
	for (int i = 0; i < qt_test_count; i++) {
		if (filter != NULL && strstr(qt_tests[i].name, filter) == NULL)
			continue;
		if (qt_run_one(&qt_tests[i]))
			passed++;
		else
			failed++;
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	fflush(stdout);
	return failed == 0 ? 0 : 1;
}

#define QTEST_MAIN()                         \
	int main(int argc, char **argv)      \
	{                                    \
		return qt_main(argc, argv);  \
	}

#endif /* QUANTA_QTEST_H */
