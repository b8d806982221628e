/*
 * vmem_stat.c — what an arena can tell about itself: the counters, the
 * largest free segment and the fragmentation figure (vmem_stats), and a dump
 * of spans, free lists and counters in text or JSON (vmem_dump).
 *
 * Both take the arena lock for a consistent snapshot and only read.  The JSON
 * form is versioned by its "schema" key (VMEM_DUMP_SCHEMA); a reader that
 * sees another version must not guess.  Keys are only ever added within a
 * version, never renamed or removed ("segments", every allocated and free
 * segment, was added to version 1 for tools/quanta-view; docs/howto-dump.md
 * describes every key).
 */
#include <inttypes.h>
#include <string.h>

#include "vmem_impl.h"

/*
 * The free pieces (lock held), read from the arena list: the free lists are
 * lists or trees depending on the arena (vmem.c), the arena list is one
 * list in every arena.  Members and bytes of every free list, their count
 * and the largest.
 */
typedef struct free_census {
	size_t n[VMEM_FREELISTS], bytes[VMEM_FREELISTS];
	size_t count, largest;
} free_census_t;

static void free_census(const vmem_t *vmp, free_census_t *fc)
{
	memset(fc, 0, sizeof(*fc));
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next) {
		if (seg_type(s) != SEG_FREE)
			continue;
		size_t size = seg_size(s);
		unsigned i = vmem_freelist_index(size);
		fc->n[i]++;
		fc->bytes[i] += size;
		fc->count++;
		if (size > fc->largest)
			fc->largest = size;
	}
}

static size_t span_count(const vmem_t *vmp)
{
	size_t n = 0;
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	for (const vmem_seg_t *s = seg0->sg_link.next; s != seg0;
	     s = s->sg_link.next)
		n++;
	return n;
}

static void stats_locked(const vmem_t *vmp, vmem_stats_t *out)
{
	const vmem_kstat_t *k = &vmp->ar_kstat;
	memset(out, 0, sizeof(*out));
	out->vs_alloc = k->alloc;
	out->vs_free = k->free;
	out->vs_wait = k->wait;
	out->vs_fail = k->fail;
	out->vs_lookup = k->lookup;
	out->vs_search = k->search;
	out->vs_populate_fail = k->populate_fail;
	out->vs_contains = k->contains;
	out->vs_contains_search = k->contains_search;
	out->vs_mem_inuse = k->mem_inuse;
	out->vs_mem_total = k->mem_total;
	out->vs_mem_import = k->mem_import;
	out->vs_free_bytes = k->mem_total - k->mem_inuse;
	free_census_t fc;
	free_census(vmp, &fc);
	out->vs_segs_free = fc.count;
	out->vs_largest_free = fc.largest;
	out->vs_fragmentation = out->vs_free_bytes == 0 ? 0.0
	    : 1.0 - (double)out->vs_largest_free / (double)out->vs_free_bytes;
	out->vs_spans = span_count(vmp);
	out->vs_segs_alloc = vmp->ar_htab_count;
	out->vs_hash_buckets = vmp->ar_htab_mask + 1;
	out->vs_spare_tags = vmp->ar_nspares;
}

void vmem_stats(vmem_t *vmp, vmem_stats_t *out)
{
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	stats_locked(vmp, out);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
}

/* A JSON string: the name may hold any byte. */
static void json_string(FILE *fp, const char *s)
{
	(void)fputc('"', fp);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			(void)fprintf(fp, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			(void)fprintf(fp, "\\u%04x", c);
		else
			(void)fputc(c, fp);
	}
	(void)fputc('"', fp);
}

#define U64(x) ((uint64_t)(x))

/* Every span in address order: start, size, imported or added. */
static void dump_json_spans(const vmem_t *vmp, FILE *fp)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	const char *sep = "";
	(void)fputs(" \"spans\": [", fp);
	for (const vmem_seg_t *s = seg0->sg_link.next; s != seg0;
	     s = s->sg_link.next, sep = ", ")
		(void)fprintf(fp, "%s{\"start\": %" PRIu64 ", \"size\": %" PRIu64
		    ", \"imported\": %s}", sep, U64(s->sg_start),
		    U64(seg_size(s)),
		    seg_type(s) == SEG_ISPAN ? "true" : "false");
	(void)fputs("],\n", fp);
}

/*
 * Every allocated and free segment in address order, one a line, read from
 * the arena list (span markers and the rotor/walker markers are not
 * resources and are left out; the spans are listed above).
 */
static void dump_json_segments(const vmem_t *vmp, FILE *fp)
{
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	const char *sep = "\n  ";
	(void)fputs(" \"segments\": [", fp);
	for (const vmem_seg_t *s = seg0->sg_next; s != seg0; s = s->sg_next) {
		int t = seg_type(s);
		if (t != SEG_ALLOC && t != SEG_FREE)
			continue;
		(void)fprintf(fp, "%s{\"start\": %" PRIu64 ", \"size\": %" PRIu64
		    ", \"state\": \"%s\"}", sep, U64(s->sg_start),
		    U64(seg_size(s)), t == SEG_ALLOC ? "alloc" : "free");
		sep = ",\n  ";
	}
	(void)fputs("],\n", fp);
}

/* The non-empty free lists: index, smallest member size, members, bytes. */
static void dump_json_freelists(const vmem_t *vmp, FILE *fp)
{
	const char *sep = "";
	free_census_t fc;
	free_census(vmp, &fc);
	(void)fputs(" \"freelists\": [", fp);
	for (unsigned i = 0; i < VMEM_FREELISTS; i++) {
		if (fc.n[i] == 0)
			continue;
		(void)fprintf(fp, "%s{\"index\": %u, \"min_size\": %" PRIu64
		    ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", sep, i,
		    U64(1) << i, U64(fc.n[i]), U64(fc.bytes[i]));
		sep = ", ";
	}
	(void)fputs("]}\n", fp);
}

static void dump_json(const vmem_t *vmp, const vmem_stats_t *st, FILE *fp)
{
	(void)fprintf(fp, "{\"schema\": \"%s\", \"name\": ", VMEM_DUMP_SCHEMA);
	json_string(fp, vmp->ar_name);
	(void)fprintf(fp, ", \"quantum\": %" PRIu64 ", \"qcache_max\": %" PRIu64
	    ", \"identifier\": %s, \"source\": ", U64(vmp->ar_quantum),
	    U64(vmp->ar_qcache_max),
	    (vmp->ar_cflags & VMC_IDENTIFIER) ? "true" : "false");
	if (vmp->ar_source != NULL)
		json_string(fp, vmp->ar_source->ar_name);
	else
		(void)fputs("null", fp);
	(void)fprintf(fp, ",\n \"counters\": {\"alloc\": %" PRIu64
	    ", \"free\": %" PRIu64 ", \"wait\": %" PRIu64 ", \"fail\": %" PRIu64
	    ", \"lookup\": %" PRIu64 ", \"search\": %" PRIu64
	    ", \"populate_fail\": %" PRIu64 ", \"contains\": %" PRIu64
	    ", \"contains_search\": %" PRIu64 ", \"mem_inuse\": %" PRIu64
	    ", \"mem_total\": %" PRIu64 ", \"mem_import\": %" PRIu64 "},\n",
	    st->vs_alloc, st->vs_free, st->vs_wait, st->vs_fail, st->vs_lookup,
	    st->vs_search, st->vs_populate_fail, st->vs_contains,
	    st->vs_contains_search, U64(st->vs_mem_inuse), U64(st->vs_mem_total),
	    U64(st->vs_mem_import));
	(void)fprintf(fp, " \"figures\": {\"free_bytes\": %" PRIu64
	    ", \"largest_free\": %" PRIu64 ", \"fragmentation\": %.6f"
	    ", \"segs_alloc\": %" PRIu64 ", \"segs_free\": %" PRIu64
	    ", \"hash_buckets\": %" PRIu64 ", \"spare_tags\": %" PRIu64 "},\n",
	    U64(st->vs_free_bytes), U64(st->vs_largest_free),
	    st->vs_fragmentation, U64(st->vs_segs_alloc), U64(st->vs_segs_free),
	    U64(st->vs_hash_buckets), U64(st->vs_spare_tags));
	dump_json_spans(vmp, fp);
	dump_json_segments(vmp, fp);
	dump_json_freelists(vmp, fp);
}

static void dump_text(const vmem_t *vmp, const vmem_stats_t *st, FILE *fp)
{
	(void)fprintf(fp, "arena %s%s: quantum %#" PRIx64 ", source %s\n",
	    vmp->ar_name,
	    (vmp->ar_cflags & VMC_IDENTIFIER) ? " (identifiers)" : "",
	    U64(vmp->ar_quantum),
	    vmp->ar_source != NULL ? vmp->ar_source->ar_name : "(none)");
	(void)fprintf(fp, "  in use %" PRIu64 " of %" PRIu64 " bytes (%" PRIu64
	    " imported); largest free %" PRIu64 ", fragmentation %.3f\n",
	    U64(st->vs_mem_inuse), U64(st->vs_mem_total),
	    U64(st->vs_mem_import), U64(st->vs_largest_free),
	    st->vs_fragmentation);
	(void)fprintf(fp, "  alloc %" PRIu64 " free %" PRIu64 " fail %" PRIu64
	    " wait %" PRIu64 " lookup %" PRIu64 " search %" PRIu64
	    " populate_fail %" PRIu64 "\n", st->vs_alloc, st->vs_free,
	    st->vs_fail, st->vs_wait, st->vs_lookup, st->vs_search,
	    st->vs_populate_fail);
	const vmem_seg_t *seg0 = &vmp->ar_sentinel;
	for (const vmem_seg_t *s = seg0->sg_link.next; s != seg0;
	     s = s->sg_link.next)
		(void)fprintf(fp, "  span [%#" PRIx64 ", %#" PRIx64 ") %s\n",
		    U64(s->sg_start), U64(s->sg_end),
		    seg_type(s) == SEG_ISPAN ? "imported" : "added");
	free_census_t fc;
	free_census(vmp, &fc);
	for (unsigned i = 0; i < VMEM_FREELISTS; i++)
		if (fc.n[i] != 0)
			(void)fprintf(fp, "  freelist %u (>= %#" PRIx64 "): %"
			    PRIu64 " segments\n", i, U64(1) << i, U64(fc.n[i]));
}

void vmem_dump(vmem_t *vmp, FILE *fp, int format)
{
	vmem_stats_t st;
	qlock_enter(vmp->ar_lock, QLOCK_ARENA);
	stats_locked(vmp, &st);
	if (format == VMEM_DUMP_JSON)
		dump_json(vmp, &st, fp);
	else
		dump_text(vmp, &st, fp);
	qlock_exit(vmp->ar_lock, QLOCK_ARENA);
}
