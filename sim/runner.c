/*
 * runner.c — one run of the simulator in a process of its own: a fork of
 * the calling process (which must never have called the allocator), the
 * run's result in a shared page, its stderr in a temporary file, and the
 * failure's signature (the message without steps, numbers and addresses,
 * what shrink and the corpus compare).  Used by quanta-sim and by the
 * scheduler fuzz target.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sim.h"

#define SIM_RUN_TIMEOUT_S 120

sim_result_t *sim_result_page(void)
{
	void *p = mmap(NULL, sizeof(sim_result_t), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("quanta-sim: mmap");
		exit(2);
	}
	return p;
}

void sim_run_start(sim_run_slot_t *s, const sim_config_t *cfg,
    const char *trace_path)
{
	s->cfg = *cfg;
	memset(s->res, 0, sizeof(*s->res));
	char tmpl[] = "/tmp/quanta-sim-err-XXXXXX";
	s->errfd = mkstemp(tmpl);
	if (s->errfd >= 0)
		unlink(tmpl);
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		perror("quanta-sim: fork");
		exit(2);
	}
	if (s->pid == 0) {
		alarm(SIM_RUN_TIMEOUT_S);
		if (s->errfd >= 0)
			dup2(s->errfd, 2);
		FILE *trace = NULL;
		if (trace_path != NULL)
			trace = strcmp(trace_path, "-") == 0 ? stdout :
			    fopen(trace_path, "w");
		sim_run(&s->cfg, s->res, trace);
		if (trace != NULL)
			fflush(trace);
		_exit(s->res->failed ? 1 : 0);
	}
}

/* The last lines of the run's stderr (a panic's diagnostic). */
static void tail_stderr(int fd, char *out, size_t len)
{
	out[0] = '\0';
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)len - 1 ? end - (off_t)len + 1 : 0;
	ssize_t n = pread(fd, out, len - 1, from);
	out[n > 0 ? n : 0] = '\0';
}

void sim_run_finish(sim_run_slot_t *s, int status)
{
	sim_result_t *r = s->res;
	if (!r->done || (WIFSIGNALED(status) && !r->failed)) {
		char err[SIM_MSG_BYTES / 2];
		tail_stderr(s->errfd, err, sizeof(err));
		r->failed = 1;
		snprintf(r->msg, sizeof(r->msg), "step %llu: %s%s\n%s",
		    (unsigned long long)r->steps,
		    WIFSIGNALED(status) ? "killed by signal " : "exit ",
		    WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "",
		    err);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
	    !r->failed) {
		r->failed = 1;
		snprintf(r->msg, sizeof(r->msg), "exit %d", WEXITSTATUS(status));
	} else if (r->failed && strstr(r->msg, "died of signal") != NULL) {
		/* A fork child's abort: its diagnostic is in the run's stderr. */
		char err[SIM_MSG_BYTES / 4];
		tail_stderr(s->errfd, err, sizeof(err));
		const char *d = strstr(err, "quanta: ");
		size_t n = strlen(r->msg);
		if (d != NULL && n + 2 < sizeof(r->msg))
			snprintf(r->msg + n, sizeof(r->msg) - n, "\n%s", d);
	}
	if (s->errfd >= 0)
		close(s->errfd);
	s->pid = 0;
}

void sim_run_one(const sim_config_t *cfg, sim_result_t *res,
    const char *trace_path)
{
	sim_run_slot_t s = {.res = res};
	sim_run_start(&s, cfg, trace_path);
	int status;
	while (waitpid(s.pid, &status, 0) < 0 && errno == EINTR)
		;
	sim_run_finish(&s, status);
}

/* A failure's signature: its message with the step, the numbers and
 * addresses taken out, up to the end of the first line. */
void sim_signature(const char *msg, char *out, size_t len)
{
	const char *p = strstr(msg, ": ");
	p = p != NULL && strncmp(msg, "step", 4) == 0 ? p + 2 : msg;
	/* An abort: the allocator's own diagnostic says what went wrong. */
	const char *diag = strstr(msg, "\nquanta: ");
	if ((strstr(msg, "killed by signal") != NULL ||
	    strstr(msg, "died of signal") != NULL) && diag != NULL)
		p = diag + 1;
	size_t n = 0;
	/* A checker's report: its first violation's code comes too. */
	for (int line = 0; line < 2 && *p != '\0'; line++) {
		for (; *p != '\0' && *p != '\n' && n + 1 < len; p++) {
			if ((*p >= '0' && *p <= '9') || (n > 0 &&
			    out[n - 1] == '#' && *p == 'x'))
				continue;
			out[n++] = *p;
		}
		if (n < 13 || memcmp(out + n - 13, "violation(s):", 13) != 0 ||
		    *p != '\n')
			break;
		p++;
		for (int k = 0; k < 3 && *p != '\0' && *p != '\n' &&
		    n + 1 < len; k++)
			out[n++] = *p++;
		break;
	}
	out[n] = '\0';
}

bool sim_same_failure(const sim_result_t *r, const char *sig)
{
	char s[256];
	if (!r->failed)
		return false;
	sim_signature(r->msg, s, sizeof(s));
	return sig == NULL || strcmp(s, sig) == 0;
}

