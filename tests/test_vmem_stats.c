/*
 * quanta — tests/test_vmem_stats.c: vmem_stats figures and vmem_dump output.
 *
 * vmem_stats: every derived figure exactly (largest free segment,
 * fragmentation = 1 - largest / free bytes and 0 when nothing is free,
 * allocated and free segment counts, spans).  vmem_dump: the text form names
 * the arena; the JSON form is checked by a small recursive-descent validator
 * written here (objects, arrays, strings with escapes, numbers, true, false,
 * null), which also records every key with the kind of its value, so the
 * tests can ask for "schema" = VMEM_DUMP_SCHEMA and the keys "name",
 * "quantum", "counters", "spans", "segments" and "freelists".  The spans,
 * segments and free lists are also compared as exact text.
 */
#include "qtest.h"

#include "vmem.h"

#include "vmem_testutil.h"

static int
near(double a, double b)
{
	double d = a - b;
	return d < 1e-12 && d > -1e-12;
}

#define QT_NEAR(a, b)                                                      \
	do {                                                               \
		double qt_da_ = (a), qt_db_ = (b);                         \
		if (!near(qt_da_, qt_db_))                                 \
			qt_fail(__FILE__, __LINE__,                        \
			    "QT_NEAR(%s, %s): %.17g != %.17g", #a, #b,     \
			    qt_da_, qt_db_);                               \
	} while (0)

/* ---- vmem_stats ------------------------------------------------------- */

QTEST(stats_of_a_fresh_arena)
{
	vmem_t *vmp = make_arena("st_fresh", BASE, SIZE, Q16);
	vmem_stats_t st = stats_of(vmp);
	QT_EQ(st.vs_alloc, 0);
	QT_EQ(st.vs_free, 0);
	QT_EQ(st.vs_fail, 0);
	QT_EQ(st.vs_wait, 0);
	QT_EQ(st.vs_mem_inuse, 0);
	QT_EQ(st.vs_mem_total, SIZE);
	QT_EQ(st.vs_mem_import, 0);
	QT_EQ(st.vs_free_bytes, SIZE);
	QT_EQ(st.vs_largest_free, SIZE);
	QT_NEAR(st.vs_fragmentation, 0.0);
	QT_EQ(st.vs_spans, 1);
	QT_EQ(st.vs_segs_alloc, 0);
	QT_EQ(st.vs_segs_free, 1);
	QT_TRUE(st.vs_hash_buckets > 0);
	vmem_destroy(vmp);
}

QTEST(stats_of_an_empty_arena_are_all_zero)
{
	vmem_t *vmp = make_arena("st_empty", 0, 0, Q16);
	vmem_stats_t st = stats_of(vmp);
	QT_EQ(st.vs_mem_total, 0);
	QT_EQ(st.vs_free_bytes, 0);
	QT_EQ(st.vs_largest_free, 0);
	QT_NEAR(st.vs_fragmentation, 0.0);
	QT_EQ(st.vs_spans, 0);
	QT_EQ(st.vs_segs_alloc, 0);
	QT_EQ(st.vs_segs_free, 0);
	vmem_destroy(vmp);
}

QTEST(fragmentation_is_one_minus_largest_over_free_bytes)
{
	/* 16 pieces of 0x100 fill the arena; freeing every other one leaves
	 * 8 holes of 0x100: largest 0x100, free 0x800, 1 - 1/8 = 0.875. */
	vmem_t *vmp = make_arena("st_frag", BASE, 0x1000, Q16);
	vmem_stats_t st;
	for (uintptr_t i = 0; i < 16; i++)
		QT_EQ(UADDR(vmem_alloc(vmp, 0x100, VM_SLEEP)), BASE + i * 0x100);
	for (uintptr_t i = 0; i < 16; i += 2)
		vmem_free(vmp, ADDR(BASE + i * 0x100), 0x100);
	st = stats_of(vmp);
	QT_EQ(st.vs_free_bytes, 0x800);
	QT_EQ(st.vs_largest_free, 0x100);
	QT_NEAR(st.vs_fragmentation, 0.875);
	QT_EQ(st.vs_segs_free, 8);
	QT_EQ(st.vs_segs_alloc, 8);
	QT_EQ(st.vs_mem_inuse, 0x800);
	vmem_destroy(vmp);
}

QTEST(fragmentation_follows_holes_of_different_sizes)
{
	vmem_t *vmp = make_arena("st_frag2", BASE, SIZE, Q16);
	void *a = vmem_alloc(vmp, 0x100, VM_SLEEP); /* 0x100000 */
	vmem_stats_t st;
	(void)vmem_alloc(vmp, 0x10, VM_SLEEP);      /* 0x100100 */
	(void)vmem_alloc(vmp, 0x200, VM_SLEEP);     /* 0x100110 */
	vmem_free(vmp, a, 0x100);
	st = stats_of(vmp);
	QT_EQ(st.vs_free_bytes, SIZE - 0x210);
	QT_EQ(st.vs_largest_free, SIZE - 0x310);
	QT_NEAR(st.vs_fragmentation,
	    1.0 - (double)(SIZE - 0x310) / (double)(SIZE - 0x210));
	QT_EQ(st.vs_segs_free, 2);
	vmem_destroy(vmp);
}

QTEST(a_full_arena_has_no_free_segment_and_zero_fragmentation)
{
	vmem_t *vmp = make_arena("st_full", BASE, 0x1000, Q16);
	vmem_stats_t st;
	QT_EQ(UADDR(vmem_alloc(vmp, 0x800, VM_SLEEP)), BASE);
	QT_EQ(UADDR(vmem_alloc(vmp, 0x800, VM_SLEEP)), BASE + 0x800);
	st = stats_of(vmp);
	QT_EQ(st.vs_free_bytes, 0);
	QT_EQ(st.vs_largest_free, 0);
	QT_NEAR(st.vs_fragmentation, 0.0);
	QT_EQ(st.vs_segs_free, 0);
	QT_EQ(st.vs_segs_alloc, 2);
	QT_EQ(st.vs_mem_inuse, 0x1000);
	vmem_destroy(vmp);
}

QTEST(free_bytes_is_total_minus_in_use_after_every_step)
{
	vmem_t *vmp = make_arena("st_balance", BASE, SIZE, Q16);
	void *p[10];
	for (int i = 0; i < 10; i++) {
		vmem_stats_t st;
		p[i] = vmem_alloc(vmp, (size_t)(i + 1) * 0x30, VM_SLEEP);
		st = stats_of(vmp);
		QT_EQ(st.vs_free_bytes, st.vs_mem_total - st.vs_mem_inuse);
		QT_EQ(st.vs_mem_inuse, vmem_size(vmp, VMEM_ALLOC));
		QT_EQ(st.vs_free_bytes, vmem_size(vmp, VMEM_FREE));
	}
	for (int i = 0; i < 10; i += 3) {
		vmem_stats_t st;
		vmem_free(vmp, p[i], (size_t)(i + 1) * 0x30);
		st = stats_of(vmp);
		QT_EQ(st.vs_free_bytes, st.vs_mem_total - st.vs_mem_inuse);
		QT_EQ(st.vs_mem_inuse, vmem_size(vmp, VMEM_ALLOC));
	}
	QT_EQ(stats_of(vmp).vs_mem_inuse, 0x30 * (55 - 1 - 4 - 7 - 10));
	vmem_destroy(vmp);
}

QTEST(middle_cut_by_xalloc_leaves_two_free_segments)
{
	vmem_t *vmp = make_arena("st_middle", BASE, SIZE, Q16);
	vmem_stats_t st;
	QT_EQ(UADDR(vmem_xalloc(vmp, 0x1000, 0, 0, 0, ADDR(0x140000), NULL,
		  VM_NOSLEEP)),
	    0x140000);
	st = stats_of(vmp);
	QT_EQ(st.vs_segs_free, 2);
	QT_EQ(st.vs_segs_alloc, 1);
	QT_EQ(st.vs_largest_free, 0x200000 - 0x141000);
	QT_NEAR(st.vs_fragmentation,
	    1.0 - (double)0xBF000 / (double)(SIZE - 0x1000));
	vmem_destroy(vmp);
}

QTEST(spans_count_every_added_span)
{
	vmem_t *vmp = make_arena("st_spans", BASE, SIZE, Q16);
	vmem_stats_t st;
	(void)vmem_add(vmp, ADDR(0x300000), 0x1000, VM_SLEEP);
	(void)vmem_add(vmp, ADDR(0x400000), 0x2000, VM_SLEEP);
	st = stats_of(vmp);
	QT_EQ(st.vs_spans, 3);
	QT_EQ(st.vs_segs_free, 3);
	QT_EQ(st.vs_mem_total, SIZE + 0x3000);
	QT_EQ(st.vs_largest_free, SIZE);
	vmem_destroy(vmp);
}

QTEST(contains_counter_counts_each_call)
{
	vmem_t *vmp = make_arena("st_contains", BASE, SIZE, Q16);
	for (int i = 0; i < 7; i++)
		(void)vmem_contains(vmp, ADDR(BASE + (uintptr_t)i * 0x1000), 16);
	QT_EQ(stats_of(vmp).vs_contains, 7);
	vmem_destroy(vmp);
}

/* ---- a small JSON validator ------------------------------------------ */

#define JSON_KEYS_MAX 256
#define JSON_DEPTH_MAX 64
#define JSON_TEXT_MAX 256

enum json_kind {
	JSON_NONE,
	JSON_OBJECT,
	JSON_ARRAY,
	JSON_STRING,
	JSON_NUMBER,
	JSON_LITERAL
};

struct json_key {
	char key[JSON_TEXT_MAX];
	int depth;           /* 1 = member of the top-level object */
	enum json_kind kind; /* of the value */
	int count;           /* array elements or object members */
	char text[JSON_TEXT_MAX]; /* decoded string value */
};

struct json {
	const char *s;
	size_t i, n;
	const char *error;
	size_t error_at;
	int key_count;
	struct json_key keys[JSON_KEYS_MAX];
};

static int json_value(struct json *j, int depth, struct json_key *rec);

static int
json_fail(struct json *j, const char *why)
{
	if (j->error == NULL) {
		j->error = why;
		j->error_at = j->i;
	}
	return 0;
}

static void
json_ws(struct json *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
	    j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int
json_hex4(struct json *j, unsigned *out)
{
	unsigned v = 0;
	for (int k = 0; k < 4; k++, j->i++) {
		char c;
		if (j->i >= j->n)
			return json_fail(j, "short \\u escape");
		c = j->s[j->i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return json_fail(j, "bad hex digit in \\u escape");
	}
	*out = v;
	return 1;
}

/* A string; its decoded text (ASCII escapes only, truncated) into out. */
static int
json_string(struct json *j, char *out, size_t cap)
{
	size_t o = 0;
	if (j->i >= j->n || j->s[j->i] != '"')
		return json_fail(j, "expected a string");
	j->i++;
	for (;;) {
		unsigned char c;
		char d;
		if (j->i >= j->n)
			return json_fail(j, "unterminated string");
		c = (unsigned char)j->s[j->i++];
		if (c == '"')
			break;
		if (c < 0x20)
			return json_fail(j, "control character in string");
		d = (char)c;
		if (c == '\\') {
			char e;
			if (j->i >= j->n)
				return json_fail(j, "unterminated escape");
			e = j->s[j->i++];
			switch (e) {
			case '"': d = '"'; break;
			case '\\': d = '\\'; break;
			case '/': d = '/'; break;
			case 'b': d = '\b'; break;
			case 'f': d = '\f'; break;
			case 'n': d = '\n'; break;
			case 'r': d = '\r'; break;
			case 't': d = '\t'; break;
			case 'u': {
				unsigned v;
				if (!json_hex4(j, &v))
					return 0;
				d = v < 0x80 ? (char)v : '?';
				break;
			}
			default:
				j->i--;
				return json_fail(j, "bad escape");
			}
		}
		if (out != NULL && o + 1 < cap)
			out[o++] = d;
	}
	if (out != NULL && cap > 0)
		out[o] = '\0';
	return 1;
}

static int
json_digits(struct json *j)
{
	size_t start = j->i;
	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
		j->i++;
	return j->i > start;
}

static int
json_number(struct json *j)
{
	if (j->i < j->n && j->s[j->i] == '-')
		j->i++;
	if (j->i < j->n && j->s[j->i] == '0') {
		j->i++;
	} else if (!json_digits(j)) {
		return json_fail(j, "bad number");
	}
	if (j->i < j->n && j->s[j->i] == '.') {
		j->i++;
		if (!json_digits(j))
			return json_fail(j, "no digits after '.'");
	}
	if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		j->i++;
		if (j->i < j->n && (j->s[j->i] == '+' || j->s[j->i] == '-'))
			j->i++;
		if (!json_digits(j))
			return json_fail(j, "no digits in exponent");
	}
	return 1;
}

static int
json_literal(struct json *j, const char *word)
{
	size_t len = strlen(word);
	if (j->n - j->i < len || memcmp(j->s + j->i, word, len) != 0)
		return json_fail(j, "unexpected character");
	j->i += len;
	return 1;
}

static int
json_object(struct json *j, int depth, int *count)
{
	j->i++; /* '{' */
	json_ws(j);
	if (j->i < j->n && j->s[j->i] == '}') {
		j->i++;
		return 1;
	}
	for (;;) {
		struct json_key scratch;
		struct json_key *rec = &scratch;
		json_ws(j);
		if (j->key_count < JSON_KEYS_MAX)
			rec = &j->keys[j->key_count++];
		memset(rec, 0, sizeof(*rec));
		rec->depth = depth;
		if (!json_string(j, rec->key, sizeof(rec->key)))
			return 0;
		json_ws(j);
		if (j->i >= j->n || j->s[j->i] != ':')
			return json_fail(j, "expected ':'");
		j->i++;
		json_ws(j);
		if (!json_value(j, depth, rec))
			return 0;
		(*count)++;
		json_ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->n && j->s[j->i] == '}') {
			j->i++;
			return 1;
		}
		return json_fail(j, "expected ',' or '}'");
	}
}

static int
json_array(struct json *j, int depth, int *count)
{
	j->i++; /* '[' */
	json_ws(j);
	if (j->i < j->n && j->s[j->i] == ']') {
		j->i++;
		return 1;
	}
	for (;;) {
		json_ws(j);
		if (!json_value(j, depth, NULL))
			return 0;
		(*count)++;
		json_ws(j);
		if (j->i < j->n && j->s[j->i] == ',') {
			j->i++;
			continue;
		}
		if (j->i < j->n && j->s[j->i] == ']') {
			j->i++;
			return 1;
		}
		return json_fail(j, "expected ',' or ']'");
	}
}

/* One value; rec (if any) is the key it belongs to, told its kind. */
static int
json_value(struct json *j, int depth, struct json_key *rec)
{
	int count = 0;
	int ok;
	enum json_kind kind;
	char c;

	if (depth >= JSON_DEPTH_MAX)
		return json_fail(j, "nested too deeply");
	json_ws(j);
	if (j->i >= j->n)
		return json_fail(j, "expected a value");
	c = j->s[j->i];
	if (c == '{') {
		kind = JSON_OBJECT;
		ok = json_object(j, depth + 1, &count);
	} else if (c == '[') {
		kind = JSON_ARRAY;
		ok = json_array(j, depth + 1, &count);
	} else if (c == '"') {
		kind = JSON_STRING;
		ok = json_string(j, rec != NULL ? rec->text : NULL,
		    rec != NULL ? sizeof(rec->text) : 0);
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		kind = JSON_NUMBER;
		ok = json_number(j);
	} else if (c == 't') {
		kind = JSON_LITERAL;
		ok = json_literal(j, "true");
	} else if (c == 'f') {
		kind = JSON_LITERAL;
		ok = json_literal(j, "false");
	} else {
		kind = JSON_LITERAL;
		ok = json_literal(j, "null");
	}
	if (rec != NULL) {
		rec->kind = kind;
		rec->count = count;
	}
	return ok;
}

/* Validate a whole document: one value, then only whitespace. */
static int
json_validate(struct json *j, const char *text, size_t len)
{
	memset(j, 0, sizeof(*j));
	j->s = text;
	j->n = len;
	if (!json_value(j, 0, NULL))
		return 0;
	json_ws(j);
	if (j->i != j->n)
		return json_fail(j, "trailing characters after the value");
	return 1;
}

/* The first key named key (at any depth when depth is 0), or NULL. */
static const struct json_key *
json_find(const struct json *j, const char *key, int depth)
{
	for (int k = 0; k < j->key_count; k++)
		if (strcmp(j->keys[k].key, key) == 0 &&
		    (depth == 0 || j->keys[k].depth == depth))
			return &j->keys[k];
	return NULL;
}

/* Like json_find, but the key must be there (depth 0: any depth). */
static const struct json_key *
json_need_at(const struct json *j, const char *key, int depth)
{
	const struct json_key *k = json_find(j, key, depth);
	if (k == NULL)
		qt_fail(__FILE__, __LINE__,
		    "JSON has no key \"%s\" at depth %d (0: any)", key, depth);
	return k;
}

static const struct json_key *
json_need(const struct json *j, const char *key)
{
	return json_need_at(j, key, 0);
}

#define QT_JSON_VALID(j, text, len)                                        \
	do {                                                               \
		if (!json_validate((j), (text), (len)))                    \
			qt_fail(__FILE__, __LINE__,                        \
			    "invalid JSON: %s at offset %zu: \"%.200s\"",  \
			    (j)->error, (j)->error_at,                     \
			    (text) + ((j)->error_at > 40 ? (j)->error_at - 40 \
							 : 0));             \
	} while (0)

#define QT_JSON_HAS_KEY(j, key)                                            \
	do {                                                               \
		if (json_find((j), (key), 0) == NULL)                      \
			qt_fail(__FILE__, __LINE__,                        \
			    "JSON dump has no key \"%s\"", (key));         \
	} while (0)

/* The validator validates: a few documents it must accept and reject. */
QTEST(json_validator_accepts_json_and_rejects_near_misses)
{
	static const char *const good[] = {
		"{}", "[]", "0", "-1.5e+3", "\"a\\\"b\\\\c\\u00e9\\n\"",
		"{\"a\": [1, 2, {\"b\": null}], \"c\": true, \"d\": false}",
		" {\"x\":\"y\"} \n",
	};
	static const char *const bad[] = {
		"{", "{\"a\" 1}", "{\"a\": 1,}", "[1 2]", "01", "1.", "\"\\x\"",
		"{\"a\": 1} x", "tru", "\"tab\there\"", "{a: 1}", "nan", "",
	};
	struct json j;
	for (size_t k = 0; k < sizeof(good) / sizeof(good[0]); k++)
		if (!json_validate(&j, good[k], strlen(good[k])))
			qt_fail(__FILE__, __LINE__, "rejected %s: %s", good[k],
			    j.error);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		if (json_validate(&j, bad[k], strlen(bad[k])))
			qt_fail(__FILE__, __LINE__, "accepted %s", bad[k]);
	QT_TRUE(json_validate(&j, good[5], strlen(good[5])));
	QT_EQ(json_need_at(&j, "a", 1)->kind, JSON_ARRAY);
	QT_EQ(json_need_at(&j, "a", 1)->count, 3);
	QT_EQ(json_need_at(&j, "b", 3)->kind, JSON_LITERAL);
}

/* ---- vmem_dump --------------------------------------------------------- */

/* Dump into a tmpfile and read it back (caller frees). */
static char *
dump_to_string(vmem_t *vmp, int format, size_t *len_out)
{
	FILE *fp = tmpfile();
	char *buf;
	long len;
	QT_TRUE(fp != NULL);
	vmem_dump(vmp, fp, format);
	QT_EQ(fflush(fp), 0);
	QT_TRUE(fseek(fp, 0, SEEK_END) == 0);
	len = ftell(fp);
	QT_TRUE(len >= 0);
	rewind(fp);
	buf = malloc((size_t)len + 1);
	QT_TRUE(buf != NULL);
	QT_EQ(fread(buf, 1, (size_t)len, fp), (size_t)len);
	buf[len] = '\0';
	fclose(fp);
	*len_out = (size_t)len;
	return buf;
}

static void
populate_for_dump(vmem_t *vmp)
{
	void *a = vmem_alloc(vmp, 0x100, VM_SLEEP);
	(void)vmem_alloc(vmp, 0x40, VM_SLEEP);
	(void)vmem_alloc(vmp, 0x300, VM_SLEEP);
	vmem_free(vmp, a, 0x100);
	(void)vmem_add(vmp, ADDR(0x300000), 0x10000, VM_SLEEP);
}

QTEST(dump_text_names_the_arena)
{
	vmem_t *vmp = make_arena("st_dump_text", BASE, SIZE, Q16);
	size_t len;
	char *text;
	populate_for_dump(vmp);
	text = dump_to_string(vmp, VMEM_DUMP_TEXT, &len);
	QT_TRUE(len > 0);
	QT_STR_CONTAINS(text, "st_dump_text");
	free(text);
	vmem_destroy(vmp);
}

QTEST(dump_json_is_valid_json_with_schema_and_required_keys)
{
	static const char *const keys[] = { "name", "quantum", "counters",
		"spans", "segments", "freelists" };
	vmem_t *vmp = make_arena("st_dump_json", BASE, SIZE, Q16);
	struct json *j = malloc(sizeof(*j));
	const struct json_key *name;
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	populate_for_dump(vmp);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	QT_EQ(strncmp(text, "{\"schema\": \"" VMEM_DUMP_SCHEMA "\", \"name\": ",
	    strlen("{\"schema\": \"" VMEM_DUMP_SCHEMA "\", \"name\": ")), 0);
	QT_TRUE(strcmp(json_need_at(j, "schema", 1)->text,
		    VMEM_DUMP_SCHEMA) == 0);
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		QT_JSON_HAS_KEY(j, keys[k]);
	name = json_need(j, "name");
	QT_EQ(name->kind, JSON_STRING);
	QT_TRUE(strcmp(name->text, "st_dump_json") == 0);
	QT_EQ(json_need(j, "quantum")->kind, JSON_NUMBER);
	free(text);
	free(j);
	vmem_destroy(vmp);
}

QTEST(dump_json_lists_every_span)
{
	vmem_t *vmp = make_arena("st_dump_spans", BASE, SIZE, Q16);
	struct json *j = malloc(sizeof(*j));
	const struct json_key *spans;
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	populate_for_dump(vmp);
	(void)vmem_add(vmp, ADDR(0x500000), 0x1000, VM_SLEEP);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	spans = json_need(j, "spans");
	QT_EQ(spans->kind, JSON_ARRAY);
	QT_EQ(spans->count, 3);
	free(text);
	free(j);
	vmem_destroy(vmp);
}

QTEST(dump_json_of_an_empty_arena_is_valid)
{
	vmem_t *vmp = make_arena("st_dump_empty", 0, 0, Q16);
	struct json *j = malloc(sizeof(*j));
	const struct json_key *spans;
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	spans = json_need(j, "spans");
	QT_EQ(spans->kind, JSON_ARRAY);
	QT_EQ(spans->count, 0);
	QT_JSON_HAS_KEY(j, "freelists");
	free(text);
	free(j);
	vmem_destroy(vmp);
}

QTEST(dump_json_escapes_quotes_and_backslashes_in_the_arena_name)
{
	static const char odd_name[] = "st \"quoted\" back\\slash";
	vmem_t *vmp = make_arena(odd_name, BASE, SIZE, Q16);
	struct json *j = malloc(sizeof(*j));
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	(void)vmem_alloc(vmp, 0x100, VM_SLEEP);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	QT_TRUE(json_find(j, "name", 0) != NULL);
	QT_TRUE(strcmp(json_need(j, "name")->text, odd_name) == 0);
	free(text);
	free(j);
	vmem_destroy(vmp);
}

QTEST(dump_json_of_a_full_arena_is_valid)
{
	/* No free bytes: fragmentation must still print as a JSON number. */
	vmem_t *vmp = make_arena("st_dump_full", BASE, 0x1000, Q16);
	struct json *j = malloc(sizeof(*j));
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	(void)vmem_alloc(vmp, 0x1000, VM_SLEEP);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	QT_JSON_HAS_KEY(j, "counters");
	free(text);
	free(j);
	vmem_destroy(vmp);
}

QTEST(dump_json_of_an_importing_arena_is_valid)
{
	vmem_t *parent = make_arena("st_dump_parent", 0x10000000, 0x1000000,
	    0x1000);
	vmem_t *child = vmem_create("st_dump_child", NULL, 0, Q16, vmem_alloc,
	    vmem_free, parent, 0, VM_SLEEP);
	struct json *j = malloc(sizeof(*j));
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	QT_TRUE(child != NULL);
	(void)vmem_alloc(child, 0x100, VM_SLEEP);
	(void)vmem_alloc(child, 0x2000, VM_SLEEP);
	text = dump_to_string(child, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	QT_TRUE(strcmp(json_need(j, "name")->text, "st_dump_child") == 0);
	QT_EQ(json_need(j, "spans")->count, 2);
	free(text);
	free(j);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* VMC_IDENTIFIER shows in the dump: "identifier": true in JSON and
 * "(identifiers)" after the name in text; false and nothing without it. */
QTEST(dump_says_whether_the_arena_holds_identifiers)
{
	vmem_t *ids = vmem_create("st_dump_ids", ADDR(0x1000), 0x1000, 1, NULL,
	    NULL, NULL, 0, VMC_IDENTIFIER);
	vmem_t *mem = make_arena("st_dump_mem", BASE, SIZE, Q16);
	size_t len;
	char *text;
	QT_TRUE(ids != NULL);
	text = dump_to_string(ids, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "\"qcache_max\": 0, \"identifier\": true, "
	    "\"source\": null,");
	free(text);
	text = dump_to_string(ids, VMEM_DUMP_TEXT, &len);
	QT_STR_CONTAINS(text, "arena st_dump_ids (identifiers): quantum 0x1, "
	    "source (none)\n");
	free(text);
	text = dump_to_string(mem, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "\"identifier\": false, \"source\": null,");
	free(text);
	text = dump_to_string(mem, VMEM_DUMP_TEXT, &len);
	QT_STR_CONTAINS(text, "arena st_dump_mem: quantum 0x10, source (none)\n");
	free(text);
	vmem_destroy(mem);
	vmem_destroy(ids);
}

/* An importing arena with one added span too: the imported span says
 * "imported": true, the added one false, each with its start and size. */
QTEST(dump_json_says_which_spans_are_imported_and_which_added)
{
	vmem_t *parent = make_arena("st_dump_imp_parent", 0x10000000, 0x1000000,
	    0x1000);
	vmem_t *child = vmem_create("st_dump_imp_child", NULL, 0, Q16,
	    vmem_alloc, vmem_free, parent, 0, VM_SLEEP);
	size_t len;
	char *text;
	QT_TRUE(child != NULL);
	QT_EQ(UADDR(vmem_alloc(child, 0x100, VM_SLEEP)), 0x10000000);
	QT_PTR_EQ(vmem_add(child, ADDR(0x500000), 0x1000, VM_SLEEP),
	    ADDR(0x500000));
	text = dump_to_string(child, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "\"spans\": ["
	    "{\"start\": 5242880, \"size\": 4096, \"imported\": false}, "
	    "{\"start\": 268435456, \"size\": 4096, \"imported\": true}],");
	free(text);
	text = dump_to_string(child, VMEM_DUMP_TEXT, &len);
	QT_STR_CONTAINS(text, "  span [0x500000, 0x501000) added\n"
	    "  span [0x10000000, 0x10001000) imported\n");
	free(text);
	vmem_free(child, ADDR(0x10000000), 0x100);
	vmem_destroy(child);
	vmem_destroy(parent);
}

/* Two 0x100 holes (list 8) and the 0xffd80-byte tail (list 19). */
static void
two_holes_and_a_tail(vmem_t *vmp)
{
	void *a = vmem_alloc(vmp, 0x100, VM_SLEEP);
	QT_EQ(UADDR(vmem_alloc(vmp, 0x40, VM_SLEEP)), 0x100100);
	void *c = vmem_alloc(vmp, 0x100, VM_SLEEP);
	QT_EQ(UADDR(vmem_alloc(vmp, 0x40, VM_SLEEP)), 0x100240);
	QT_EQ(UADDR(a), 0x100000);
	QT_EQ(UADDR(c), 0x100140);
	vmem_free(vmp, a, 0x100);
	vmem_free(vmp, c, 0x100);
}

QTEST(dump_json_counts_the_members_and_bytes_of_each_free_list_exactly)
{
	vmem_t *vmp = make_arena("st_dump_lists", BASE, SIZE, Q16);
	size_t len;
	char *text;
	two_holes_and_a_tail(vmp);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "\"freelists\": ["
	    "{\"index\": 8, \"min_size\": 256, \"count\": 2, \"bytes\": 512}, "
	    "{\"index\": 19, \"min_size\": 524288, \"count\": 1, "
	    "\"bytes\": 1047936}]}\n");
	free(text);
	vmem_free(vmp, ADDR(0x100100), 0x40);
	vmem_free(vmp, ADDR(0x100240), 0x40);
	vmem_destroy(vmp);
}

/* Every allocated and free segment in address order, one a line, the
 * next-fit rotor (always on the arena list) and the span marker left out. */
QTEST(dump_json_lists_every_segment_in_address_order_exactly)
{
	vmem_t *vmp = make_arena("st_dump_segs", BASE, SIZE, Q16);
	size_t len;
	char *text;
	two_holes_and_a_tail(vmp);
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "\n \"spans\": [{\"start\": 1048576, "
	    "\"size\": 1048576, \"imported\": false}],\n"
	    " \"segments\": [\n"
	    "  {\"start\": 1048576, \"size\": 256, \"state\": \"free\"},\n"
	    "  {\"start\": 1048832, \"size\": 64, \"state\": \"alloc\"},\n"
	    "  {\"start\": 1048896, \"size\": 256, \"state\": \"free\"},\n"
	    "  {\"start\": 1049152, \"size\": 64, \"state\": \"alloc\"},\n"
	    "  {\"start\": 1049216, \"size\": 1047936, \"state\": \"free\"}],\n"
	    " \"freelists\": [");
	free(text);
	vmem_free(vmp, ADDR(0x100100), 0x40);
	vmem_free(vmp, ADDR(0x100240), 0x40);
	vmem_destroy(vmp);
}

/* Segments of several spans: as many as vmem_stats counts, none of an
 * empty arena. */
QTEST(dump_json_segments_are_the_allocated_and_free_segments_of_every_span)
{
	vmem_t *vmp = make_arena("st_dump_segs_spans", BASE, SIZE, Q16);
	struct json *j = malloc(sizeof(*j));
	vmem_t *empty = make_arena("st_dump_segs_empty", 0, 0, Q16);
	size_t len;
	char *text;
	QT_TRUE(j != NULL);
	populate_for_dump(vmp); /* 2 alloc, 2 free; 1 free in the added span */
	text = dump_to_string(vmp, VMEM_DUMP_JSON, &len);
	QT_JSON_VALID(j, text, len);
	QT_EQ(json_need_at(j, "segments", 1)->kind, JSON_ARRAY);
	QT_EQ(json_need_at(j, "segments", 1)->count, 5);
	QT_EQ(stats_of(vmp).vs_segs_alloc + stats_of(vmp).vs_segs_free, 5);
	QT_STR_CONTAINS(text, "  {\"start\": 3145728, \"size\": 65536, "
	    "\"state\": \"free\"}],\n");
	free(text);
	text = dump_to_string(empty, VMEM_DUMP_JSON, &len);
	QT_STR_CONTAINS(text, "],\n \"segments\": [],\n \"freelists\": []}\n");
	free(text);
	free(j);
	vmem_destroy(empty);
	vmem_destroy(vmp);
}

QTEST(dump_text_counts_the_members_of_each_free_list_exactly)
{
	static const char tail[] = "\n  freelist 8 (>= 0x100): 2 segments\n"
	    "  freelist 19 (>= 0x80000): 1 segments\n";
	vmem_t *vmp = make_arena("st_dump_lists_text", BASE, SIZE, Q16);
	size_t len;
	char *text;
	two_holes_and_a_tail(vmp);
	text = dump_to_string(vmp, VMEM_DUMP_TEXT, &len);
	/* The free lists come last, the non-empty ones only. */
	QT_TRUE(len > strlen(tail));
	QT_STR_CONTAINS(text + len - strlen(tail), tail);
	QT_PTR_EQ(strstr(text, "  freelist "), text + len - strlen(tail) + 1);
	free(text);
	vmem_free(vmp, ADDR(0x100100), 0x40);
	vmem_free(vmp, ADDR(0x100240), 0x40);
	vmem_destroy(vmp);
}

QTEST(dump_text_of_an_empty_arena_names_the_arena)
{
	vmem_t *vmp = make_arena("st_dump_text_empty", 0, 0, Q16);
	size_t len;
	char *text = dump_to_string(vmp, VMEM_DUMP_TEXT, &len);
	QT_STR_CONTAINS(text, "st_dump_text_empty");
	free(text);
	vmem_destroy(vmp);
}

QTEST_MAIN()
