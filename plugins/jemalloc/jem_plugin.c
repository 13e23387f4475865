/* The jemalloc 5.3 plugin: entry point and report. Locating is in jem_locate.c, the walk in
 * jem_walk.c, the quiescence check in jem_quiesce.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"

#include "jem_locate.h"
#include "jem_walk.h"

struct jem_state {
	struct jem_roots roots;
	struct jem_walk walk;
	bool walked;
	char module_path[512];
	struct jem_held held; /* from the last quiescence check */
};

static struct md_error *jem_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	*state_ret = NULL;
	struct jem_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	bool no_debug = (opts && opts->debuginfo_disabled) || md_target_debuginfo_disabled(t);
	struct md_error *err = jem_locate(t, no_debug, &s->roots);
	if (err || !s->roots.module) {
		jem_roots_deinit(&s->roots);
		free(s);
		return err;
	}
	const char *path = md_target_module_file(t, s->roots.module);
	snprintf(s->module_path, sizeof(s->module_path), "%s", path ? path : s->roots.module->name);
	*state_ret = s;
	return NULL;
}

static bool jem_quiescent_cb(void *state, struct md_target *t, char *why, size_t why_len)
{
	struct jem_state *s = state;
	return jem_quiescent(t, &s->roots, &s->held, why, why_len);
}

static bool jem_must_run_cb(void *state, struct md_target *t, const struct md_thread *thread)
{
	struct jem_state *s = state;
	return jem_must_run(t, &s->roots, &s->held, thread);
}

static struct md_error *jem_walk_cb(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct jem_state *s = state;
	if (s->walked)
		jem_walk_deinit(&s->walk);
	struct md_error *err = jem_walk_run(t, &s->roots, sink, inconsistent, &s->walk);
	s->walked = !err;
	return err;
}

static const char *source_name(enum md_symbol_source src)
{
	switch (src) {
	case MD_SYMSRC_DWARF:
		return "dwarf";
	case MD_SYMSRC_SYMTAB:
	case MD_SYMSRC_DYNSYM:
		return "symtab";
	default:
		return "heuristic";
	}
}

static const char *arena_state(const struct jem_walk *w, const struct jem_arena *a)
{
	if (a->corrupt)
		return "corrupt";
	if (w->inconsistent || a->mismatch)
		return "inconsistent";
	return "consistent";
}

static struct md_node *arena_node(const struct jem_walk *w, const struct jem_arena *a, const struct md_sink *sink)
{
	struct md_node *n = md_node_object();
	struct md_group_stats gs;
	md_sink_group_stats(sink, (int)a->index, &gs);
	struct md_error *err = NULL;
#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)
	SET(md_node_set_u64(n, "index", a->index));
	SET(md_node_set_hex(n, "address", a->address));
	SET(md_node_set_string(n, "kind", a->huge ? "huge" : a->manual ? "manual" : "auto"));
	SET(md_node_set_string(n, "state", arena_state(w, a)));
	SET(md_node_set_u64(n, "nthreads", a->nthreads));
	SET(md_node_set_u64(n, "pactive", a->nactive));
	SET(md_node_set_u64(n, "pdirty", a->ndirty));
	SET(md_node_set_u64(n, "pmuzzy", a->nmuzzy));
	SET(md_node_set_u64(n, "pretained", a->nretained));
	SET(md_node_set_u64(n, "allocated", a->allocated_small + a->allocated_large));
	SET(md_node_set_u64(n, "small_allocated", a->allocated_small));
	SET(md_node_set_u64(n, "large_allocated", a->allocated_large));
	SET(md_node_set_u64(n, "tcache_bytes", a->tcache_bytes));
	SET(md_node_set_u64(n, "metadata", a->base_allocated + a->internal));
	SET(md_node_set_u64(n, "internal", a->internal));
	SET(md_node_set_u64(n, "resident", a->base_resident + (a->nactive + a->ndirty) * JEM_PAGE));
	SET(md_node_set_u64(n, "mapped", a->base_mapped + a->pac_mapped));
	SET(md_node_set_u64(n, "retained", a->nretained * JEM_PAGE));
	SET(md_node_set_u64(n, "purge_release_bytes", gs.releasable_bytes));
	SET(md_node_set_u64(n, "resident_bytes", (gs.live_pages + gs.free_pages + gs.metadata_pages) * JEM_PAGE));
	SET(md_node_set_u64(n, "tcaches", a->n_tcaches));
	SET(md_node_set_u64(n, "curslabs", a->curslabs));
	SET(md_node_set_u64(n, "nonfull_slabs", a->nonfull_slabs));
	struct md_node *wn = md_node_object();
	SET(md_node_set_u64(wn, "slabs", a->w_slabs));
	SET(md_node_set_u64(wn, "nonfull_slabs", a->w_nonfull_slabs));
	SET(md_node_set_u64(wn, "large_extents", a->w_large));
	SET(md_node_set_u64(wn, "live_bytes", a->w_live));
	SET(md_node_set_u64(wn, "cached_bytes", a->w_cached));
	SET(md_node_set_u64(wn, "free_region_bytes", a->w_free_regions));
	SET(md_node_set_u64(wn, "large_pad_bytes", a->w_pad));
	SET(md_node_set_u64(wn, "tcache_stack_bytes", a->w_metadata_extents));
	SET(md_node_set_u64(wn, "dirty_bytes", a->w_dirty));
	SET(md_node_set_u64(wn, "muzzy_bytes", a->w_muzzy));
	SET(md_node_set_u64(wn, "retained_bytes", a->w_retained));
	SET(md_node_set_u64(wn, "retained_resident_bytes", a->retained_resident_pages * JEM_PAGE));
	SET(md_node_set_u64(wn, "releasable_resident_bytes", a->releasable_pages * JEM_PAGE));
	SET(md_node_set_u64(wn, "base_blocks", a->w_base_blocks));
	SET(md_node_set_u64(wn, "base_bytes", a->w_base_bytes));
	SET(md_node_set(n, "walk", wn));
	/* Small size classes with slabs: where free regions (fragmentation) sit. */
	struct md_node *bins = md_node_array();
	for (unsigned b = 0; b < JEM_NBINS && bins; b++) {
		if (!a->w_bin_slabs[b])
			continue;
		struct md_node *bn = md_node_object();
		uint64_t size = b < w->n_sizes ? w->sizes[b] : 0;
		SET(md_node_set_u64(bn, "index", b));
		SET(md_node_set_u64(bn, "size", size));
		SET(md_node_set_u64(bn, "slabs", a->w_bin_slabs[b]));
		SET(md_node_set_u64(bn, "nonfull_slabs", a->w_bin_nonfull[b]));
		SET(md_node_set_u64(bn, "curregs", a->curregs[b]));
		SET(md_node_set_u64(bn, "free_regions", a->w_bin_free_regs[b]));
		SET(md_node_set_u64(bn, "free_bytes", a->w_bin_free_regs[b] * size));
		SET(md_node_set_u64(bn, "cached_regions", a->w_bin_cached_regs[b]));
		SET(md_node_append(bins, bn));
	}
	SET(md_node_set(n, "bins", bins));
	SET(md_node_set_u64(n, "findings", a->findings));
#undef SET
	if (err) {
		md_error_destroy(err);
		md_node_destroy(n);
		return NULL;
	}
	return n;
}

/* ---- the standard figures (include/memdissect/figures.h) ---- */

static const char *const jem_stats_keys[] = { "allocated", "active", "metadata", "resident", "mapped", "retained", NULL };

/* One group row per arena: its figures, slab counts and its bins as histogram rows. */
static struct md_node *group_node(const struct jem_walk *w, const struct jem_arena *a, const struct md_sink *sink)
{
	struct md_group_stats gs;
	md_sink_group_stats(sink, (int)a->index, &gs);
	char name[32];
	snprintf(name, sizeof(name), "arena %u", (unsigned)a->index);
	const char *st = arena_state(w, a);
	struct md_fig_group fg = {
		.group = (int)a->index,
		.name = name,
		.kind = a->huge ? "huge" : a->manual ? "manual" : "auto",
		.state = strcmp(st, "consistent") == 0 ? "ok" : st,
		.threads = (int64_t)a->nthreads,
		.regions = -1,
		.live_bytes = a->allocated_small + a->allocated_large,
		.free_bytes = a->w_free_regions + a->w_dirty + a->w_muzzy,
		.cached_bytes = a->tcache_bytes,
		.metadata_bytes = a->base_allocated + a->internal,
		.findings = a->findings,
	};
	struct md_node *n = md_fig_group_node(&fg, &gs);
	struct md_node *counts = md_node_object(), *hist = md_node_array();
	struct md_error *err = NULL;
	if (!n || !counts || !hist)
		err = &md_error_nomem;
	if (!err)
		err = md_node_set_u64(counts, "curslabs", a->curslabs);
	if (!err)
		err = md_node_set_u64(counts, "nonfull_slabs", a->nonfull_slabs);
	for (unsigned b = 0; b < JEM_NBINS && !err; b++) {
		if (!a->w_bin_slabs[b])
			continue;
		uint64_t size = b < w->n_sizes ? w->sizes[b] : 0;
		if (size)
			err = md_node_append(hist, md_fig_hist_row(size, size, a->curregs[b], a->curregs[b] * size,
								  a->w_bin_free_regs[b], a->w_bin_free_regs[b] * size));
	}
	if (!err) {
		err = md_node_set(n, "counts", counts);
		counts = NULL;
	}
	if (!err) {
		err = md_node_set(n, "histogram", hist);
		hist = NULL;
	}
	md_node_destroy(counts);
	md_node_destroy(hist);
	if (err) {
		md_error_destroy(err);
		md_node_destroy(n);
		return NULL;
	}
	return n;
}

#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)
static struct md_error *standard_figures(const struct jem_walk *w, const struct md_sink *sink, struct md_node *out,
					 uint64_t releasable, uint64_t pdirty)
{
	struct md_error *err = NULL;
	struct md_node *release = md_fig_release_node("arena.<all>.purge", releasable);
	char hint[400];
	snprintf(hint, sizeof(hint),
		 "Of that, {bytes:%llu} is in dirty pages. Purge with mallctl(\"arena.4096.purge\"); "
		 "jemalloc returns unused dirty pages only as they decay: shorter decay times "
		 "(MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0) give memory back sooner at some CPU cost.",
		 (unsigned long long)(pdirty * JEM_PAGE));
	SET(release ? md_node_set_string(release, "topic", "purge") : &md_error_nomem);
	SET(md_node_set_string(release, "hint", hint));
	SET(md_node_set(out, MD_FIG_RELEASE, release));
	SET(md_node_set_string(out, MD_FIG_GROUP_NOUN, "arena"));
	SET(md_node_set_bool(out, MD_FIG_SLABS, true));
	struct md_node *groups = md_node_array();
	for (size_t i = 0; i < w->n_arenas && groups; i++)
		SET(md_node_append(groups, group_node(w, &w->arenas[i], sink)));
	SET(md_node_set(out, MD_FIG_GROUPS, groups));
	struct md_node *grids = md_node_array(), *gd = md_node_object();
	static const char *const labels[] = { "allocated", "allocated", "active", "active", "metadata", "metadata",
					      "resident", "resident", "mapped", "mapped", "retained", "retained", NULL, NULL };
	SET(gd ? md_node_set_string(gd, "key", "stats") : &md_error_nomem);
	SET(md_node_set_string(gd, "title", "stats, as the allocator itself counts them:"));
	SET(md_node_set(gd, "labels", md_fig_labels(labels)));
	SET(md_node_set(gd, "byte_keys", md_fig_strings(jem_stats_keys)));
	SET(md_node_append(grids, gd));
	SET(md_node_set(out, MD_FIG_GRIDS, grids));
	struct md_node *aliases = md_node_object();
	SET(aliases ? md_node_set_string(aliases, "purge_release_bytes", "release.bytes") : &md_error_nomem);
	SET(md_node_set(out, MD_FIG_ALIASES, aliases));
	return err;
}
#undef SET

static struct md_error *jem_report(void *state, const struct md_sink *sink, struct md_node *out)
{
	struct jem_state *s = state;
	const struct jem_roots *r = &s->roots;
	const struct jem_walk *w = &s->walk;
	struct md_error *err = NULL;
#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)
	SET(md_node_set_string(out, "version", r->version[0] ? r->version : "5.3 (version string not found)"));
	SET(md_node_set_string(out, "symbols", source_name(r->source)));
	SET(md_node_set_string(out, "module", s->module_path));
	SET(md_node_set_string(out, "located_by", r->how));
	if (!s->walked) {
		SET(md_node_set_bool(out, "walked", false));
		return err;
	}
	/* mallctl's formulas (ctl_refresh over arena_stats_merge, pa_shard_stats_merge and
	 * base_stats_get), summed over every initialized arena. */
	uint64_t allocated = 0, active = 0, metadata = 0, resident = 0, mapped = 0, retained = 0;
	uint64_t tcache = 0, pdirty = 0, pmuzzy = 0, pactive = 0;
	uint64_t live = 0, cached = 0, free_regions = 0, pad = 0, dirty_b = 0, muzzy_b = 0, base_b = 0, stacks = 0;
	for (size_t i = 0; i < w->n_arenas; i++) {
		const struct jem_arena *a = &w->arenas[i];
		allocated += a->allocated_small + a->allocated_large;
		active += a->nactive * JEM_PAGE;
		metadata += a->base_allocated + a->internal;
		resident += a->base_resident + (a->nactive + a->ndirty) * JEM_PAGE;
		mapped += a->base_mapped + a->pac_mapped;
		retained += a->nretained * JEM_PAGE;
		tcache += a->tcache_bytes;
		pactive += a->nactive;
		pdirty += a->ndirty;
		pmuzzy += a->nmuzzy;
		live += a->w_live;
		cached += a->w_cached;
		free_regions += a->w_free_regions;
		pad += a->w_pad;
		dirty_b += a->w_dirty;
		muzzy_b += a->w_muzzy;
		base_b += a->w_base_bytes;
		stacks += a->w_metadata_extents;
	}
	SET(md_node_set_bool(out, "consistent", !w->inconsistent && !w->counters_mismatch));
	struct md_node *st = md_node_object();
	SET(md_node_set_u64(st, "allocated", allocated));
	SET(md_node_set_u64(st, "active", active));
	SET(md_node_set_u64(st, "metadata", metadata));
	SET(md_node_set_u64(st, "resident", resident));
	SET(md_node_set_u64(st, "mapped", mapped));
	SET(md_node_set_u64(st, "retained", retained));
	SET(md_node_set(out, "stats", st));
	SET(md_node_set_u64(out, "tcache_bytes", tcache));
	SET(md_node_set_u64(out, "live_bytes", allocated - (tcache <= allocated ? tcache : allocated)));
	SET(md_node_set_u64(out, "pactive", pactive));
	SET(md_node_set_u64(out, "pdirty", pdirty));
	SET(md_node_set_u64(out, "pmuzzy", pmuzzy));
	struct md_group_stats gs;
	md_sink_group_stats(sink, -1, &gs);
	SET(md_node_set_u64(out, "purge_release_bytes", gs.releasable_bytes));
	SET(standard_figures(w, sink, out, gs.releasable_bytes, pdirty));
	SET(md_node_set_u64(out, "resident_bytes", (gs.live_pages + gs.free_pages + gs.metadata_pages) * JEM_PAGE));
	struct md_node *wn = md_node_object();
	SET(md_node_set_u64(wn, "extents", w->extents));
	SET(md_node_set_u64(wn, "rtree_leaves", w->rtree_leaves));
	SET(md_node_set_u64(wn, "rtree_entries", w->rtree_entries));
	SET(md_node_set_u64(wn, "live_bytes", live));
	SET(md_node_set_u64(wn, "cached_bytes", cached));
	SET(md_node_set_u64(wn, "free_region_bytes", free_regions));
	SET(md_node_set_u64(wn, "large_pad_bytes", pad));
	SET(md_node_set_u64(wn, "tcache_stack_bytes", stacks));
	SET(md_node_set_u64(wn, "dirty_bytes", dirty_b));
	SET(md_node_set_u64(wn, "muzzy_bytes", muzzy_b));
	SET(md_node_set_u64(wn, "base_bytes", base_b));
	SET(md_node_set_bool(wn, "truncated", w->truncated));
	SET(md_node_set(out, "walk", wn));
	struct md_node *tc = md_node_object();
	SET(md_node_set_u64(tc, "thread", w->n_thread_tcaches));
	SET(md_node_set_u64(tc, "explicit", w->n_explicit_tcaches));
	SET(md_node_set_u64(tc, "cached_regions", w->cached_regions));
	SET(md_node_set_u64(tc, "unresolved", w->cached_unresolved));
	SET(md_node_set(out, "tcaches", tc));
	struct md_node *arr = md_node_array();
	for (size_t i = 0; i < w->n_arenas && arr; i++)
		SET(md_node_append(arr, arena_node(w, &w->arenas[i], sink)));
	SET(md_node_set(out, "arenas", arr));
#undef SET
	return err;
}

static void jem_close(void *state)
{
	struct jem_state *s = state;
	if (!s)
		return;
	jem_walk_deinit(&s->walk);
	jem_roots_deinit(&s->roots);
	free(s);
}

static const struct md_plugin jemalloc_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "jemalloc",
	.description = "jemalloc 5.3: arenas, extents (emap rtree), slabs, large extents, tcaches, base",
	.open = jem_open,
	.quiescent = jem_quiescent_cb,
	.walk = jem_walk_cb,
	.report = jem_report,
	.close = jem_close,
	.must_run = jem_must_run_cb,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &jemalloc_plugin;
}
