/*
 * vmem_panic.c — the end of every misuse: one line on stderr that names the
 * call, the arena and the arguments, then abort().  Present in every build:
 * bad frees and bad arguments are cheap to detect, and silent corruption of
 * an allocator is the most expensive bug there is.  Writes with one write(2)
 * of a stack buffer so that it works with the allocator's own state broken.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vmem_impl.h"

#ifdef QUANTA_DEBUG
extern void __gcov_dump(void) __attribute__((weak));
#endif

_Noreturn void vmem_panic(const char *fmt, ...)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "quanta: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
#ifdef QUANTA_DEBUG
	/* A coverage build keeps the counters of a run that ends here. */
	if (__gcov_dump != NULL)
		__gcov_dump();
#endif
	abort();
}

#ifndef NDEBUG
/* VMEM_ASSERT's end; NDEBUG (release) compiles the assertions and this out. */
_Noreturn void vmem_assert_fail(const char *expr, const char *file, int line)
{
	vmem_panic("assertion failed: %s, file %s, line %d", expr, file, line);
}
#endif
