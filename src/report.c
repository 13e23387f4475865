/* The report model: lifecycle, notes, human byte units, and the JSON document of docs/json.md. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/report.h"
#include "wss.h"

static const char *const class_names[MD_CLASS_COUNT] = {
	[MD_CLASS_LIVE] = "live",
	[MD_CLASS_FREE] = "free",
	[MD_CLASS_METADATA] = "metadata",
	[MD_CLASS_STACK] = "stack",
	[MD_CLASS_FILE] = "file",
	[MD_CLASS_SHARED] = "shared",
	[MD_CLASS_ANON_OTHER] = "anon_other",
};

const char *md_class_name(enum md_class c)
{
	if ((unsigned)c >= MD_CLASS_COUNT)
		return "unknown";
	return class_names[c];
}

void md_report_init(struct md_report *r)
{
	memset(r, 0, sizeof(*r));
	r->schema_version = 1;
	/* Plugins' objects are appended to it. Out of memory leaves it NULL: appending then fails
	 * with an error and the JSON still says "allocators": []. */
	r->allocators = md_node_array();
}

void md_report_deinit(struct md_report *r)
{
	if (!r)
		return;
	free(r->target.exe);
	for (size_t i = 0; i < r->n_regions; i++)
		free(r->regions[i].path);
	free(r->regions);
	for (size_t i = 0; i < r->n_alloc_regions; i++) {
		free(r->alloc_regions[i].label);
		free(r->alloc_regions[i].cells);
	}
	free(r->alloc_regions);
	free(r->cgroup.path);
	md_node_destroy(r->allocators);
	for (size_t i = 0; i < r->n_findings; i++)
		free(r->findings[i].message);
	free(r->findings);
	for (size_t i = 0; i < r->n_notes; i++)
		free(r->notes[i]);
	free(r->notes);
	for (size_t i = 0; i < r->n_unanalysed; i++) {
		free(r->unanalysed[i].name);
		free(r->unanalysed[i].module);
		free(r->unanalysed[i].evidence);
	}
	free(r->unanalysed);
	/* a second deinit stays harmless */
	memset(r, 0, sizeof(*r));
	r->schema_version = 1;
}

struct md_error *md_report_add_note(struct md_report *r, const char *fmt, ...)
{
	char *note = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&note, fmt, ap);
	va_end(ap);
	if (n < 0)
		return &md_error_nomem;
	char **notes = realloc(r->notes, (r->n_notes + 1) * sizeof(*notes));
	if (!notes) {
		free(note);
		return &md_error_nomem;
	}
	r->notes = notes;
	r->notes[r->n_notes++] = note;
	return NULL;
}

const char *md_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	/* 1023.7 KiB would print as "1024 KiB": promote it to "1.00 MiB" instead. */
	if (v >= 1023.5 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	/* Three significant digits; the thresholds include rounding so 9.996 gives "10.0". */
	if (v >= 99.5)
		snprintf(buf, len, "%.0f %s", v, units[u]);
	else if (v >= 9.995)
		snprintf(buf, len, "%.1f %s", v, units[u]);
	else
		snprintf(buf, len, "%.2f %s", v, units[u]);
	return buf;
}

/* ---- JSON document ---- */

#define CHECK(expr)                  \
	do {                         \
		err = (expr);        \
		if (err)             \
			goto out;    \
	} while (0)

static const char *map_kind_name(enum md_map_kind kind)
{
	switch (kind) {
	case MD_MAP_ANON: return "anon";
	case MD_MAP_HEAP: return "heap";
	case MD_MAP_STACK: return "stack";
	case MD_MAP_FILE: return "file";
	case MD_MAP_SHARED: return "shared";
	case MD_MAP_SPECIAL: return "special";
	}
	return "anon";
}

static struct md_node *string_or_null(const char *s)
{
	return s ? md_node_string(s) : md_node_null();
}

/* Milliseconds to the microsecond: more digits would be noise from the clock. */
static double round_ms(double ms)
{
	if (!isfinite(ms))
		return 0;
	return round(ms * 1000.0) / 1000.0;
}

/* The report keeps its allocator tree; the document gets its own copy so that either can be
 * destroyed first. */
static struct md_error *node_copy(const struct md_node *n, struct md_node **copy_ret)
{
	struct md_node *c = NULL;
	struct md_error *err = NULL;
	switch (md_node_type(n)) {
	case MD_NODE_NULL: c = md_node_null(); break;
	case MD_NODE_BOOL: c = md_node_bool(md_node_get_bool(n)); break;
	case MD_NODE_U64: c = md_node_u64(md_node_get_u64(n)); break;
	case MD_NODE_I64: c = md_node_i64(md_node_get_i64(n)); break;
	case MD_NODE_DOUBLE: c = md_node_double(md_node_get_double(n)); break;
	case MD_NODE_STRING: c = md_node_string(md_node_get_string(n)); break;
	case MD_NODE_ARRAY:
	case MD_NODE_OBJECT: {
		bool is_obj = md_node_type(n) == MD_NODE_OBJECT;
		c = is_obj ? md_node_object() : md_node_array();
		if (!c)
			break;
		for (size_t i = 0; i < md_node_count(n) && !err; i++) {
			struct md_node *child = NULL;
			err = node_copy(md_node_at(n, i), &child);
			if (err)
				break;
			err = is_obj ? md_node_set(c, md_node_key_at(n, i), child)
				     : md_node_append(c, child);
		}
		break;
	}
	}
	if (!c)
		return &md_error_nomem;
	if (err) {
		md_node_destroy(c);
		return err;
	}
	*copy_ret = c;
	return NULL;
}

static struct md_error *set_classes(struct md_node *parent, const uint64_t classes[MD_CLASS_COUNT])
{
	struct md_node *o = md_node_object();
	struct md_error *err = md_node_set(parent, "classes", o);
	for (int c = 0; c < MD_CLASS_COUNT && !err; c++)
		err = md_node_set_u64(o, md_class_name((enum md_class)c), classes[c]);
	return err;
}

static struct md_error *add_target(struct md_node *root, const struct md_report *r)
{
	struct md_error *err;
	struct md_node *t = md_node_object();
	CHECK(md_node_set(root, "target", t));
	CHECK(md_node_set_i64(t, "pid", r->target.pid));
	CHECK(md_node_set_string(t, "comm", r->target.comm));
	CHECK(md_node_set(t, "exe", string_or_null(r->target.exe)));
	CHECK(md_node_set_string(t, "source", r->target.source ? r->target.source : "live"));
	CHECK(md_node_set_string(t, "residency", r->target.residency ? r->target.residency : "pagemap"));
	CHECK(md_node_set_double(t, "pause_ms", round_ms(r->target.pause_ms)));
	CHECK(md_node_set_double(t, "total_ms", round_ms(r->target.total_ms)));
	CHECK(md_node_set_u64(t, "threads", r->target.threads));
	CHECK(md_node_set_u64(t, "attach_retries", r->target.attach_retries));
	CHECK(md_node_set_u64(t, "attach_polls", r->target.attach_polls));
out:
	return err;
}

static struct md_error *add_memory(struct md_node *root, const struct md_report *r)
{
	struct md_error *err;
	struct md_node *m = md_node_object();
	CHECK(md_node_set(root, "memory", m));
	CHECK(md_node_set_u64(m, "rss_bytes", r->memory.rss_bytes));
	CHECK(md_node_set_u64(m, "pss_bytes", r->memory.pss_bytes));
	CHECK(md_node_set_u64(m, "uss_bytes", r->memory.uss_bytes));
	CHECK(md_node_set_u64(m, "swap_bytes", r->memory.swap_bytes));
	CHECK(md_node_set_u64(m, "vm_size_bytes", r->memory.vm_size_bytes));
	CHECK(md_node_set_u64(m, "anon_bytes", r->memory.anon_bytes));
	CHECK(md_node_set_u64(m, "file_bytes", r->memory.file_bytes));
	CHECK(md_node_set_u64(m, "shmem_bytes", r->memory.shmem_bytes));
	CHECK(md_node_set_u64(m, "status_vm_rss_bytes", r->memory.status_vm_rss_bytes));
	CHECK(md_node_set_u64(m, "hugetlb_bytes", r->memory.hugetlb_bytes));
	CHECK(md_node_set_u64(m, "lazy_free_bytes", r->memory.lazy_free_bytes));
	CHECK(md_node_set_u64(m, "allocator_lazy_free_bytes", r->memory.allocator_lazy_free_bytes));
out:
	return err;
}

static struct md_error *add_system(struct md_node *root, const struct md_report *r)
{
	struct md_error *err;
	if (!r->system.valid)
		return md_node_set(root, "system", md_node_null());
	struct md_node *s = md_node_object();
	CHECK(md_node_set(root, "system", s));
	CHECK(md_node_set_u64(s, "mem_total_bytes", r->system.mem_total_bytes));
	CHECK(md_node_set_u64(s, "mem_available_bytes", r->system.mem_available_bytes));
	CHECK(md_node_set_u64(s, "mem_free_bytes", r->system.mem_free_bytes));
	CHECK(md_node_set_u64(s, "cached_bytes", r->system.cached_bytes));
	CHECK(md_node_set_u64(s, "swap_total_bytes", r->system.swap_total_bytes));
	CHECK(md_node_set_u64(s, "swap_free_bytes", r->system.swap_free_bytes));
out:
	return err;
}

static struct md_error *add_cgroup(struct md_node *root, const struct md_report *r)
{
	struct md_error *err;
	if (!r->cgroup.valid)
		return md_node_set(root, "cgroup", md_node_null());
	struct md_node *c = md_node_object();
	bool unlimited = r->cgroup.limit_bytes == UINT64_MAX;
	CHECK(md_node_set(root, "cgroup", c));
	CHECK(md_node_set(c, "path", string_or_null(r->cgroup.path)));
	CHECK(md_node_set_i64(c, "version", r->cgroup.version));
	CHECK(md_node_set_u64(c, "usage_bytes", r->cgroup.usage_bytes));
	CHECK(md_node_set(c, "limit_bytes",
			  unlimited ? md_node_null() : md_node_u64(r->cgroup.limit_bytes)));
	CHECK(md_node_set_bool(c, "unlimited", unlimited));
out:
	return err;
}

static struct md_error *add_region(struct md_node *regions, const struct md_report_region *reg, bool wss)
{
	struct md_error *err;
	struct md_node *o = md_node_object();
	CHECK(md_node_append(regions, o));
	CHECK(md_node_set_hex(o, "start", reg->start));
	CHECK(md_node_set_hex(o, "end", reg->end));
	/* perms is a fixed array: never trust it to be terminated */
	CHECK(md_node_set(o, "perms", md_node_stringf("%.4s", reg->perms)));
	CHECK(md_node_set_u64(o, "offset", reg->offset));
	CHECK(md_node_set(o, "path", string_or_null(reg->path)));
	CHECK(md_node_set_bool(o, "deleted", reg->deleted));
	CHECK(md_node_set_string(o, "kind", reg->kind_name ? reg->kind_name : map_kind_name(reg->kind)));
	CHECK(md_node_set(o, "allocator", string_or_null(reg->allocator)));
	CHECK(md_node_set(o, "owner", string_or_null(reg->owner)));
	CHECK(md_node_set_u64(o, "rss_bytes", reg->rss_bytes));
	CHECK(md_node_set_u64(o, "pss_bytes", reg->pss_bytes));
	CHECK(md_node_set_u64(o, "swap_bytes", reg->swap_bytes));
	CHECK(set_classes(o, reg->classes));
	if (wss)
		CHECK(md_node_set_u64(o, "wss_bytes", reg->wss_bytes));
out:
	return err;
}

/* One allocator region of the drainability map; cells as compact arrays
 * [live, free, metadata, nonresident, other, releasable_pages, pinned_free_bytes] (docs/report.md). */
static struct md_error *add_alloc_region(struct md_node *arr, const struct md_alloc_region *ar)
{
	static const char *const parts[MD_CELL_PART_COUNT] = { "live", "free", "metadata", "nonresident", "other" };
	struct md_error *err;
	struct md_node *o = md_node_object();
	CHECK(md_node_append(arr, o));
	CHECK(md_node_set_hex(o, "start", ar->start));
	CHECK(md_node_set_hex(o, "end", ar->end));
	CHECK(md_node_set(o, "allocator", string_or_null(ar->allocator)));
	CHECK(md_node_set(o, "label", string_or_null(ar->label)));
	CHECK(md_node_set_i64(o, "group", ar->group));
	struct md_node *pages = md_node_object();
	CHECK(md_node_set(o, "pages", pages));
	for (int p = 0; p < MD_CELL_PART_COUNT; p++)
		CHECK(md_node_set_u64(pages, parts[p], ar->pages[p]));
	CHECK(md_node_set_u64(o, "releasable_bytes", ar->releasable_bytes));
	CHECK(md_node_set_u64(o, "pinned_free_bytes", ar->pinned_free_bytes));
	CHECK(md_node_set_u64(o, "pages_per_cell", ar->pages_per_cell));
	struct md_node *cells = md_node_array();
	CHECK(md_node_set(o, "cells", cells));
	for (size_t i = 0; ar->cells && i < ar->n_cells; i++) {
		const struct md_map_cell *c = &ar->cells[i];
		struct md_node *cell = md_node_array();
		CHECK(md_node_append(cells, cell));
		for (int p = 0; p < MD_CELL_PART_COUNT; p++)
			CHECK(md_node_append(cell, md_node_u64(c->pages[p])));
		CHECK(md_node_append(cell, md_node_u64(c->releasable_pages)));
		CHECK(md_node_append(cell, md_node_u64(c->pinned_free_bytes)));
	}
out:
	return err;
}

static struct md_error *add_finding(struct md_node *findings, const struct md_report_finding *f)
{
	struct md_error *err;
	struct md_node *o = md_node_object();
	CHECK(md_node_append(findings, o));
	CHECK(md_node_set(o, "allocator", string_or_null(f->allocator)));
	CHECK(md_node_set_string(o, "severity", f->severity ? f->severity : "info"));
	CHECK(md_node_set_hex(o, "address", f->address));
	CHECK(md_node_set_i64(o, "group", f->group));
	CHECK(md_node_set_string(o, "message", f->message ? f->message : ""));
out:
	return err;
}

struct md_error *md_report_to_node(const struct md_report *r, struct md_node **node_ret)
{
	struct md_error *err;
	struct md_node *root = md_node_object();
	if (!root)
		return &md_error_nomem;
	/* Small, most-read keys first; the long regions array last, so `head` shows the summary. */
	CHECK(md_node_set_i64(root, "schema_version", r->schema_version ? r->schema_version : 1));
	CHECK(md_node_set_bool(root, "partial", r->partial));
	CHECK(add_target(root, r));
	CHECK(add_memory(root, r));
	CHECK(set_classes(root, r->classes));
	CHECK(md_node_set_u64(root, "reconciled_pages", r->reconciled_pages));
	CHECK(md_node_set_u64(root, "untouched_live_bytes", r->untouched_live_bytes));
	CHECK(add_system(root, r));
	CHECK(add_cgroup(root, r));
	if (r->wss.valid)
		CHECK(md_wss_add_node(root, r));

	struct md_node *allocators = NULL;
	if (md_node_type(r->allocators) == MD_NODE_ARRAY)
		CHECK(node_copy(r->allocators, &allocators));
	else
		allocators = md_node_array();
	CHECK(md_node_set(root, "allocators", allocators));

	struct md_node *unanalysed = md_node_array();
	CHECK(md_node_set(root, "unanalysed_allocators", unanalysed));
	for (size_t i = 0; i < r->n_unanalysed; i++) {
		struct md_node *u = md_node_object();
		CHECK(md_node_append(unanalysed, u));
		CHECK(md_node_set_string(u, "name", r->unanalysed[i].name));
		CHECK(md_node_set_string(u, "module", r->unanalysed[i].module));
		CHECK(md_node_set_string(u, "evidence", r->unanalysed[i].evidence));
	}

	struct md_node *findings = md_node_array();
	CHECK(md_node_set(root, "findings", findings));
	for (size_t i = 0; i < r->n_findings; i++)
		CHECK(add_finding(findings, &r->findings[i]));

	struct md_node *notes = md_node_array();
	CHECK(md_node_set(root, "notes", notes));
	for (size_t i = 0; i < r->n_notes; i++)
		CHECK(md_node_append(notes, md_node_string(r->notes[i])));

	struct md_node *alloc_regions = md_node_array();
	CHECK(md_node_set(root, "alloc_regions", alloc_regions));
	for (size_t i = 0; i < r->n_alloc_regions; i++)
		CHECK(add_alloc_region(alloc_regions, &r->alloc_regions[i]));

	struct md_node *regions = md_node_array();
	CHECK(md_node_set(root, "regions", regions));
	for (size_t i = 0; i < r->n_regions; i++)
		CHECK(add_region(regions, &r->regions[i], r->wss.valid));
out:
	if (err) {
		md_node_destroy(root);
		return err;
	}
	*node_ret = root;
	return NULL;
}
