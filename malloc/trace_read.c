/*
 * trace_read.c — the reader of the allocation trace (TRACE.md): a file
 * (qtrace_read) or bytes in memory (qtrace_parse) into an array of records
 * with object ids made absolute, checked for consistency, for the
 * simulator's replay (quanta-sim trace), the benchmark's driver
 * (bench/bench_trace_malloc.c) and the fuzz target fuzz/malloc_trace.c.  Not part of the
 * front end: it uses malloc freely.
 *
 * Theory
 * ------
 * The reader repeats the recorder's bookkeeping: ids are handed out in
 * record order to every successful allocating record, and a reference
 * code c names id next_id - c.  It accepts a trace only if every
 * reference names a block live at that point (the recorded program's
 * order made that true, and a replay relies on it: a free waits for its
 * block's allocation, and that wait always ends) and thread numbers
 * appear in order.  A trace without the END record (the process died
 * before its flush) is read up to its last whole record and marked
 * incomplete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

typedef struct cursor {
	const unsigned char *p, *end;
} cursor_t;

static bool get_varint(cursor_t *c, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (c->p == c->end)
			return false;
		unsigned char b = *c->p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 1 << 16, n = 0, k;
	unsigned char *buf = malloc(cap);
	while (buf != NULL && (k = fread(buf + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap) {
			unsigned char *nb = realloc(buf, cap *= 2);
			if (nb == NULL)
				free(buf);
			buf = nb;
		}
	}
	fclose(f);
	*len = n;
	return buf;
}

typedef struct reader {
	qtrace_t *t;
	size_t cap;
	uint8_t *live;        /* by id */
	size_t live_cap;
	char *err;
	size_t errlen;
} reader_t;

static int fail(reader_t *r, const char *what, size_t i)
{
	snprintf(r->err, r->errlen, "record %zu: %s", i, what);
	return -1;
}

/* Ids and liveness of one decoded record. */
static int account(reader_t *r, qtrace_rec_t *rec, uint64_t refcode)
{
	qtrace_t *t = r->t;
	size_t i = t->nrec;
	uint32_t next = t->nobjects + 1;
	if (refcode != 0) {
		if (refcode >= next || (rec->flags & QTRACE_F_FOREIGN))
			return fail(r, "reference out of range", i);
		rec->ref = next - (uint32_t)refcode;
		if (!r->live[rec->ref])
			return fail(r, "reference to a block not live", i);
		if (!(rec->flags & QTRACE_F_FAILED))
			r->live[rec->ref] = 0, t->live_end--;
	}
	if (rec->op != QTRACE_FREE && !(rec->flags & QTRACE_F_FAILED)) {
		if (next + 1 >= r->live_cap) {
			size_t nc = r->live_cap * 2;
			uint8_t *nl = realloc(r->live, nc);
			if (nl == NULL)
				return fail(r, "out of memory", i);
			memset(nl + r->live_cap, 0, nc - r->live_cap);
			r->live = nl;
			r->live_cap = nc;
		}
		rec->id = next;
		r->live[next] = 1;
		t->nobjects = next;
		t->live_end++;
	}
	return 0;
}

/* One record at c; 1 on END, 0 on a record, -1 on an error, 2 at a
 * truncated end. */
static int decode_one(reader_t *r, cursor_t *c)
{
	qtrace_t *t = r->t;
	uint64_t head, thread, refcode = 0, size = 0, align = 0;
	if (!get_varint(c, &head))
		return 2;
	unsigned op = head & QTRACE_OP_MASK;
	if (op == QTRACE_END)
		return 1;
	if (op >= QTRACE_OPS || (head & ~0x3fu) != 0)
		return fail(r, "unknown operation", t->nrec);
	bool names = op == QTRACE_FREE || op == QTRACE_REALLOC;
	if (!get_varint(c, &thread) || (names && !get_varint(c, &refcode)) ||
	    (op != QTRACE_FREE && !get_varint(c, &size)) ||
	    (op >= QTRACE_MEMALIGN && !get_varint(c, &align)))
		return 2;
	if (thread > t->nthreads || thread > 0xffff)
		return fail(r, "thread number out of order", t->nrec);
	if (thread == t->nthreads)
		t->nthreads++;
	qtrace_rec_t rec = {(uint8_t)op, (uint8_t)(head & 0x30),
	    (uint16_t)thread, 0, 0, size, align};
	if (account(r, &rec, refcode) != 0)
		return -1;
	if (t->nrec == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		qtrace_rec_t *nr = realloc(t->rec, r->cap * sizeof(*nr));
		if (nr == NULL)
			return fail(r, "out of memory", t->nrec);
		t->rec = nr;
	}
	t->rec[t->nrec++] = rec;
	return 0;
}

static int read_header(cursor_t *c, qtrace_t *t)
{
	uint64_t v;
	if (c->end - c->p < 4 || memcmp(c->p, QTRACE_MAGIC, 4) != 0)
		return -1;
	c->p += 4;
	if (!get_varint(c, &v) || v != QTRACE_VERSION)
		return -1;
	t->version = (uint32_t)v;
	if (!get_varint(c, &t->pid) || !get_varint(c, &t->parent))
		return -1;
	return 0;
}

/* The trace in [buf, buf + len): 0, -1 with a reason in err, or -2 when
 * the header is not a version 1 header (err not written). */
static int parse(const void *buf, size_t len, qtrace_t *t, char *err,
    size_t errlen)
{
	memset(t, 0, sizeof(*t));
	cursor_t c = {buf, (const unsigned char *)buf + len};
	reader_t r = {t, 0, calloc(1024, 1), 1024, err, errlen};
	int rc = r.live == NULL ? fail(&r, "out of memory", 0) : 0;
	if (rc == 0 && read_header(&c, t) != 0)
		rc = -2;
	while (rc == 0) {
		int k = decode_one(&r, &c);
		if (k == 0)
			continue;
		t->complete = k == 1;
		rc = k < 0 ? -1 : 0;
		break;
	}
	free(r.live);
	if (rc != 0)
		qtrace_release(t);
	return rc;
}

int qtrace_parse(const void *buf, size_t len, qtrace_t *t, char *err,
    size_t errlen)
{
	int rc = parse(buf, len, t, err, errlen);
	if (rc == -2)
		snprintf(err, errlen, "not a version %u trace", QTRACE_VERSION);
	return rc == 0 ? 0 : -1;
}

int qtrace_read(const char *path, qtrace_t *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	size_t len;
	unsigned char *buf = slurp(path, &len);
	if (buf == NULL) {
		snprintf(err, errlen, "cannot read %s", path);
		return -1;
	}
	int rc = parse(buf, len, t, err, errlen);
	if (rc == -2)
		snprintf(err, errlen, "%s: not a version %u trace", path,
		    QTRACE_VERSION);
	free(buf);
	return rc == 0 ? 0 : -1;
}

void qtrace_release(qtrace_t *t)
{
	free(t->rec);
	t->rec = NULL;
	t->nrec = 0;
}

const char *qtrace_op_name(unsigned op)
{
	static const char *const names[QTRACE_OPS] = {"end", "malloc", "free",
	    "calloc", "realloc", "memalign", "posix_memalign",
	    "aligned_alloc"};
	return op < QTRACE_OPS ? names[op] : "?";
}
