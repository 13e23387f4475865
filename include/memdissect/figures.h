/* The standard figures a plugin hands the core in its allocator object (docs/plugins.md, "The
 * standard figures"). The core's advice, gap and renderers read only these keys, whatever the
 * allocator: a new allocator needs no edit in the core to be reported as well as the first two.
 *
 * They are plain md_node keys, so the ABI does not change and an ABI 1/2 plugin that does not
 * know them still loads (its object is then shown as a grid of whatever it holds). The helpers
 * below are static inline: they build the shapes with the exported md_node_* calls only, and
 * add no symbol to the ABI. */
#ifndef MEMDISSECT_FIGURES_H
#define MEMDISSECT_FIGURES_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "memdissect/node.h"
#include "memdissect/target.h"

/* --- keys of the allocator object --- */

/* "release": {"action", "bytes", "pages", "topic", "hint", "caution"}: the call that gives free
 * memory back now and what it would give. "action" is the call ("malloc_trim(0)"); "none" or a
 * word without '(' or '.' when there is none. Optional: "topic" (the advice's fixed word, e.g.
 * "trim"), "hint" (sentences after "X would return N now", e.g. when to call it), "caution" (why
 * not to call it when the walk found the allocator corrupt or changing). */
#define MD_FIG_RELEASE "release"
/* "live_bytes": the allocator's own count of bytes handed out. */
#define MD_FIG_LIVE_BYTES "live_bytes"
/* "groups": [{"group", "name", "kind", "state", "threads", "regions", "live_bytes", "free_bytes",
 * "cached_bytes", "metadata_bytes", "resident_bytes", "releasable_bytes", "pinned_free_bytes",
 * "findings", "counts": {...}, "histogram": [...]}]: one row per arena, heap, segment or size
 * class, "group" being the number given to md_sink_*. "state": "ok", "unused" (never allocated
 * from), "inconsistent" (mid-update during the pause) or "corrupt". "regions": how many regions
 * (heaps, extents, segments) it has. "releasable_bytes" is the
 * group's part of release.bytes. "counts" holds the group's object counts by name ("in_use_chunks":
 * 12), shown beside its rows. */
#define MD_FIG_GROUPS "groups"
/* "group_noun": what one group is called ("arena", "heap", "segment"): "arenas (3):". */
#define MD_FIG_GROUP_NOUN "group_noun"
/* "group_noun_plural": when the plural is not the noun and "s" ("size classes"). */
#define MD_FIG_GROUP_NOUN_PLURAL "group_noun_plural"
/* "histogram": [{"size_from", "size_to", "live_count", "live_bytes", "free_count",
 * "free_bytes"}]: size classes of the whole allocator (a group's own in its row). Inclusive
 * bounds; size_from == size_to for an exact size class. */
#define MD_FIG_HISTOGRAM "histogram"
/* "advice": [{"topic", "text", "bytes", "min_bytes", "min_rss_permille"}]: a piece of advice of
 * the allocator, given only when bytes >= min_bytes and bytes >= RSS * min_rss_permille / 1000.
 * "{share}" in the text becomes bytes as a share of RSS ("4.2%"). */
#define MD_FIG_ADVICE "advice"
/* "module" (a path) or "modules" ([paths]): the modules the allocator lives in; the core does not
 * call them unanalysed. */
#define MD_FIG_MODULE "module"
#define MD_FIG_MODULES "modules"
/* "grids": [{"key", "title", "labels": {key: label, ...}, "byte_keys": [...]}]: sub-objects of
 * the allocator object shown as a grid of figures, labels first in their order, byte_keys being
 * the keys without a "_bytes" suffix that count bytes. Without it, "stats" is the one grid. */
#define MD_FIG_GRIDS "grids"
/* "byte_keys": [...]: keys anywhere in the object, without a "_bytes" suffix, that count bytes. */
#define MD_FIG_BYTE_KEYS "byte_keys"
/* "aliases": {key: standard path}: keys kept for older consumers that repeat a standard figure
 * ("trim_release_bytes": "release.bytes"); shown once, under the standard name. */
#define MD_FIG_ALIASES "aliases"
/* "slabs": true when the allocator keeps size classes apart in slabs or pages (no advice to
 * switch to such an allocator). */
#define MD_FIG_SLABS "slabs"
/* "replaces_malloc": true when the allocator interposes the C library's malloc. */
#define MD_FIG_REPLACES_MALLOC "replaces_malloc"
/* "allocated_from": false when the allocator's state was never used (another one took malloc
 * over); the core then says so instead of showing its zero figures. */
#define MD_FIG_ALLOCATED_FROM "allocated_from"

/* Findings go through md_sink_finding (plugin.h), not the object. */

/* --- helpers --- */

/* The release object: {"action", "bytes", "pages"}. NULL when out of memory. */
static inline struct md_node *md_fig_release_node(const char *action, uint64_t bytes)
{
	struct md_node *o = md_node_object();
	if (o && (md_node_set_string(o, "action", action) || md_node_set_u64(o, "bytes", bytes) ||
		  md_node_set_u64(o, "pages", bytes / MD_PAGE_SIZE))) {
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

/* A group row's standard figures; the resident, releasable and pinned ones come from
 * md_sink_group_stats. */
struct md_fig_group {
	int group;
	const char *name;  /* "arena 1" */
	const char *kind;  /* "main", "thread", "size class", ... or NULL */
	const char *state; /* "ok", "unused", "inconsistent", "corrupt" or NULL */
	int64_t threads;   /* threads using it, -1 unknown */
	int64_t regions;   /* heaps, extents or segments it has, -1 unknown */
	uint64_t live_bytes, free_bytes, cached_bytes, metadata_bytes;
	uint64_t findings;
};

/* A group row; NULL when out of memory. The caller may add "counts" and "histogram". */
static inline struct md_node *md_fig_group_node(const struct md_fig_group *g, const struct md_group_stats *st)
{
	struct md_node *o = md_node_object();
	if (!o)
		return NULL;
	struct md_error *err = md_node_set_i64(o, "group", g->group);
	if (!err)
		err = md_node_set_string(o, "name", g->name ? g->name : "?");
	if (!err && g->kind)
		err = md_node_set_string(o, "kind", g->kind);
	if (!err && g->state)
		err = md_node_set_string(o, "state", g->state);
	if (!err && g->threads >= 0)
		err = md_node_set_u64(o, "threads", (uint64_t)g->threads);
	if (!err && g->regions >= 0)
		err = md_node_set_u64(o, "regions", (uint64_t)g->regions);
	if (!err)
		err = md_node_set_u64(o, "live_bytes", g->live_bytes);
	if (!err)
		err = md_node_set_u64(o, "free_bytes", g->free_bytes);
	if (!err)
		err = md_node_set_u64(o, "cached_bytes", g->cached_bytes);
	if (!err)
		err = md_node_set_u64(o, "metadata_bytes", g->metadata_bytes);
	if (!err)
		err = md_node_set_u64(o, "resident_bytes",
				      (st->live_pages + st->free_pages + st->metadata_pages) * MD_PAGE_SIZE);
	if (!err)
		err = md_node_set_u64(o, "releasable_bytes", st->releasable_bytes);
	if (!err)
		err = md_node_set_u64(o, "pinned_free_bytes", st->pinned_free_bytes);
	if (!err)
		err = md_node_set_u64(o, "findings", g->findings);
	if (err) {
		md_error_destroy(err);
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

/* One histogram row; NULL when out of memory. */
static inline struct md_node *md_fig_hist_row(uint64_t size_from, uint64_t size_to, uint64_t live_count,
					      uint64_t live_bytes, uint64_t free_count, uint64_t free_bytes)
{
	struct md_node *o = md_node_object();
	if (o && (md_node_set_u64(o, "size_from", size_from) || md_node_set_u64(o, "size_to", size_to) ||
		  md_node_set_u64(o, "live_count", live_count) || md_node_set_u64(o, "live_bytes", live_bytes) ||
		  md_node_set_u64(o, "free_count", free_count) || md_node_set_u64(o, "free_bytes", free_bytes))) {
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

/* Appends {"topic", "text", "bytes", "min_bytes", "min_rss_permille"} to the "advice" array of
 * the allocator object (made on first use). */
static inline struct md_error *md_fig_advise(struct md_node *alloc, const char *topic, uint64_t bytes,
					     uint64_t min_bytes, unsigned min_rss_permille, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static inline struct md_error *md_fig_advise(struct md_node *alloc, const char *topic, uint64_t bytes,
					     uint64_t min_bytes, unsigned min_rss_permille, const char *fmt, ...)
{
	struct md_node *list = md_node_get(alloc, MD_FIG_ADVICE);
	struct md_error *err = NULL;
	if (!list) {
		err = md_node_set(alloc, MD_FIG_ADVICE, md_node_array());
		if (err)
			return err;
		list = md_node_get(alloc, MD_FIG_ADVICE);
	}
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	struct md_node *o = md_node_object();
	if (o && (md_node_set_string(o, "topic", topic) || md_node_set_string(o, "text", text) ||
		  md_node_set_u64(o, "bytes", bytes) || md_node_set_u64(o, "min_bytes", min_bytes) ||
		  md_node_set_u64(o, "min_rss_permille", min_rss_permille))) {
		md_node_destroy(o);
		o = NULL;
	}
	return md_node_append(list, o);
}

/* A {"key": label, ...} object from a NULL-terminated list of key, label pairs. */
static inline struct md_node *md_fig_labels(const char *const *pairs)
{
	struct md_node *o = md_node_object();
	for (size_t i = 0; o && pairs[i] && pairs[i + 1]; i += 2) {
		struct md_error *err = md_node_set_string(o, pairs[i], pairs[i + 1]);
		if (err) {
			md_error_destroy(err);
			md_node_destroy(o);
			return NULL;
		}
	}
	return o;
}

/* A string array from a NULL-terminated list. */
static inline struct md_node *md_fig_strings(const char *const *list)
{
	struct md_node *a = md_node_array();
	for (size_t i = 0; a && list[i]; i++) {
		struct md_error *err = md_node_append(a, md_node_string(list[i]));
		if (err) {
			md_error_destroy(err);
			md_node_destroy(a);
			return NULL;
		}
	}
	return a;
}

#endif
