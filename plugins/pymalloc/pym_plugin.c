/* The pymalloc plugin: entry point and report. Locating is in pym_locate.c, the walk and the
 * type census in pym_walk.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pym.h"

/* Arenas pinned by at most this many live blocks are reported as "nearly drainable". */
#define PYM_FEW_BLOCKS 16

struct pym_plugin_state {
	struct pym_roots roots;
	struct pym_walk walk;
	struct pym_scratch scratch;
	bool walked;
	char module_path[512];
};

static struct md_error *pym_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	*state_ret = NULL;
	struct pym_plugin_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	bool no_debug = (opts && opts->debuginfo_disabled) || md_target_debuginfo_disabled(t);
	struct md_error *err = pym_locate(t, no_debug, &s->roots);
	if (err || !s->roots.module) {
		free(s);
		return err;
	}
	err = pym_scratch_init(&s->scratch, s->roots.arena_size);
	if (err) {
		free(s);
		return err;
	}
	const char *path = md_target_module_file(t, s->roots.module);
	snprintf(s->module_path, sizeof(s->module_path), "%s", path ? path : s->roots.module->name);
	*state_ret = s;
	return NULL;
}

/* pymalloc runs under the GIL; a thread stopped inside it may leave one pool's count and free
 * list out of step, which the walk reports as a finding. Nothing to wait for here. */
static bool pym_quiescent(void *state, struct md_target *t, char *why, size_t why_len)
{
	(void)state;
	(void)t;
	(void)why;
	(void)why_len;
	return true;
}

static struct md_error *pym_walk_cb(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct pym_plugin_state *s = state;
	/* Also after a failed walk: what it allocated is still owned by s->walk. */
	pym_walk_deinit(&s->walk);
	struct md_error *err = pym_walk_run(t, &s->roots, sink, inconsistent, &s->scratch, &s->walk);
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

#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)

static struct md_node *stats_node(const struct pym_stats *st)
{
	struct md_node *n = md_node_object();
	struct md_error *err = NULL;
	SET(md_node_set_u64(n, "arenas_current", st->arenas_current));
	SET(md_node_set_u64(n, "bytes_allocated_blocks", st->bytes_allocated_blocks));
	SET(md_node_set_u64(n, "bytes_available_blocks", st->bytes_available_blocks));
	SET(md_node_set_u64(n, "unused_pools", st->unused_pools));
	SET(md_node_set_u64(n, "bytes_pool_headers", st->bytes_pool_headers));
	SET(md_node_set_u64(n, "bytes_quantization", st->bytes_quantization));
	SET(md_node_set_u64(n, "bytes_arena_alignment", st->bytes_arena_alignment));
	SET(md_node_set_u64(n, "allocated_blocks", st->allocated_blocks));
	SET(md_node_set_u64(n, "raw_allocated_blocks", st->raw_allocated_blocks));
	if (err) {
		md_error_destroy(err);
		md_node_destroy(n);
		return NULL;
	}
	return n;
}

static struct md_node *classes_node(const struct pym_stats *st)
{
	struct md_node *arr = md_node_array();
	struct md_error *err = NULL;
	for (unsigned c = 0; c < PYM_NCLASSES && arr; c++) {
		if (!st->classes[c].pools)
			continue;
		struct md_node *cn = md_node_object();
		SET(md_node_set_u64(cn, "size", (c + 1) * 16));
		SET(md_node_set_u64(cn, "pools", st->classes[c].pools));
		SET(md_node_set_u64(cn, "blocks_in_use", st->classes[c].blocks_in_use));
		SET(md_node_set_u64(cn, "blocks_available", st->classes[c].blocks_available));
		SET(md_node_append(arr, cn));
	}
	if (err) {
		md_error_destroy(err);
		md_node_destroy(arr);
		return NULL;
	}
	return arr;
}

static int by_bytes(const void *a, const void *b)
{
	const struct pym_type *x = *(const struct pym_type *const *)a, *y = *(const struct pym_type *const *)b;
	if (x->bytes != y->bytes)
		return x->bytes < y->bytes ? 1 : -1;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->name, y->name);
}

static struct md_node *types_node(const struct pym_walk *w)
{
	struct md_node *arr = md_node_array();
	const struct pym_type **v = calloc(w->n_types ? w->n_types : 1, sizeof(*v));
	if (!arr || !v || !w->types) {
		free(v);
		return arr;
	}
	size_t n = 0;
	for (size_t i = 0; i < PYM_MAX_TYPES * 2 && n < w->n_types; i++)
		if (w->types[i].addr && w->types[i].valid == 1 && w->types[i].count)
			v[n++] = &w->types[i];
	qsort(v, n, sizeof(*v), by_bytes);
	struct md_error *err = NULL;
	for (size_t i = 0; i < n; i++) {
		struct md_node *tn = md_node_object();
		SET(md_node_set_string(tn, "name", v[i]->name));
		SET(md_node_set_u64(tn, "count", v[i]->count));
		SET(md_node_set_u64(tn, "bytes", v[i]->bytes));
		SET(md_node_set_hex(tn, "type", v[i]->addr));
		SET(md_node_append(arr, tn));
	}
	free(v);
	if (err) {
		md_error_destroy(err);
		md_node_destroy(arr);
		return NULL;
	}
	return arr;
}

static struct md_error *pym_report(void *state, const struct md_sink *sink, struct md_node *out)
{
	struct pym_plugin_state *s = state;
	const struct pym_roots *r = &s->roots;
	const struct pym_walk *w = &s->walk;
	struct md_error *err = NULL;
	if (r->micro_known)
		SET(md_node_set(out, "version", md_node_stringf("%u.%u.%u", r->major, r->minor, r->micro)));
	else
		SET(md_node_set(out, "version", md_node_stringf("%u.%u", r->major, r->minor)));
	SET(md_node_set_string(out, "symbols", source_name(r->source)));
	SET(md_node_set_string(out, "module", s->module_path));
	SET(md_node_set_string(out, "located_by", r->how));
	struct md_node *lay = md_node_object();
	SET(md_node_set_u64(lay, "arena_size", r->arena_size));
	SET(md_node_set_u64(lay, "pool_size", r->pool_size));
	if (r->dwarf_compared)
		SET(md_node_set_bool(lay, "builtin_matches_dwarf", r->builtin_matches_dwarf));
	if (r->mismatch[0])
		SET(md_node_set_string(lay, "mismatch", r->mismatch));
	SET(md_node_set(out, "layout", lay));
	if (!s->walked) {
		SET(md_node_set_bool(out, "walked", false));
		return err;
	}
	SET(md_node_set_string(out, "mode", pym_mode_name(w->mode)));
	SET(md_node_set_bool(out, "pymalloc_in_use", w->mode == PYM_MODE_PYMALLOC || w->mode == PYM_MODE_DEBUG));
	SET(md_node_set_string(out, "mode_detail", w->mode_detail));
	SET(md_node_set_bool(out, "consistent", !w->corrupt_pools && !w->corrupt_arenas));
	struct md_node *interps = md_node_array();
	for (size_t i = 0; i < w->n_states && interps; i++) {
		const struct pym_walked_state *st = &w->states[i];
		struct md_node *in = md_node_object();
		SET(md_node_set_i64(in, "id", st->loc.interp_id));
		SET(md_node_set_u64(in, "maxarenas", st->maxarenas));
		if (st->counters_known) {
			SET(md_node_set_u64(in, "narenas_currently_allocated", st->narenas_current));
			SET(md_node_set_u64(in, "ntimes_arena_allocated", st->ntimes_allocated));
			SET(md_node_set_u64(in, "narenas_highwater", st->highwater));
		}
		SET(md_node_set(in, "stats", stats_node(&st->stats)));
		SET(md_node_set(in, "size_classes", classes_node(&st->stats)));
		SET(md_node_append(interps, in));
	}
	SET(md_node_set(out, "interpreters", interps));
	SET(md_node_set(out, "stats", stats_node(&w->total)));
	/* The core's live heap sums "live_bytes" over allocators: pymalloc blocks are in arenas that
	 * no other allocator claims (objects above 512 bytes are glibc's), so nothing is counted twice. */
	SET(md_node_set_u64(out, "live_bytes", w->total.bytes_allocated_blocks));
	SET(md_node_set(out, "size_classes", classes_node(&w->total)));
	/* the same classes as standard histogram rows (include/memdissect/figures.h) */
	struct md_node *hist = md_node_array();
	for (unsigned c = 0; c < PYM_NCLASSES && hist; c++) {
		const uint64_t size = (c + 1) * 16;
		if (w->total.classes[c].pools)
			SET(md_node_append(hist, md_fig_hist_row(size, size, w->total.classes[c].blocks_in_use,
								 w->total.classes[c].blocks_in_use * size,
								 w->total.classes[c].blocks_available,
								 w->total.classes[c].blocks_available * size)));
	}
	SET(md_node_set(out, MD_FIG_HISTOGRAM, hist));
	SET(md_node_set(out, "types", types_node(w)));
	struct md_node *cen = md_node_object();
	SET(md_node_set_u64(cen, "objects", w->census_objects));
	SET(md_node_set_u64(cen, "bytes", w->census_bytes));
	SET(md_node_set_u64(cen, "unidentified_blocks", w->unidentified_blocks));
	SET(md_node_set_u64(cen, "unidentified_bytes", w->unidentified_bytes));
	SET(md_node_set_u64(cen, "types", w->n_types));
	SET(md_node_set_bool(cen, "gc_lists_walked", w->gc_walked && !w->gc_broken));
	SET(md_node_set_u64(cen, "gc_nodes", w->gc_nodes));
	SET(md_node_set_u64(cen, "gc_exits_ignored", w->gc_exits_ignored));
	SET(md_node_set_u64(cen, "gc_objects_outside_pymalloc", w->gc_outside_objects));
	SET(md_node_set_u64(cen, "gc_bytes_outside_pymalloc", w->gc_outside_bytes));
	SET(md_node_set_string(cen, "scope",
			       w->gc_walked ? "live pymalloc blocks, and GC-tracked objects outside pymalloc (glibc chunks) "
					      "through the interpreters' GC lists; untracked objects above 512 bytes are not seen"
					    : "live pymalloc blocks only (objects above 512 bytes are glibc chunks: not censused)"));
	SET(md_node_set(out, "census", cen));
	/* Drainability: an arena is unmapped only when its last block is freed. */
	struct md_node *arr = md_node_array(), *groups = md_node_array();
	uint64_t pinned = 0, few = 0, few_bytes = 0;
	for (size_t i = 0; i < w->n_arenas && arr; i++) {
		const struct pym_arena *a = &w->arenas[i];
		struct md_group_stats gs;
		md_sink_group_stats(sink, a->group, &gs);
		if (a->live_blocks)
			pinned++;
		if (a->live_blocks && a->live_blocks <= PYM_FEW_BLOCKS) {
			few++;
			few_bytes += (gs.live_pages + gs.free_pages + gs.metadata_pages) * MD_PAGE_SIZE;
		}
		struct md_node *an = md_node_object();
		SET(md_node_set_i64(an, "interpreter", w->states[a->state].loc.interp_id));
		SET(md_node_set_u64(an, "index", a->index));
		SET(md_node_set_hex(an, "address", a->address));
		SET(md_node_set_u64(an, "live_blocks", a->live_blocks));
		SET(md_node_set_u64(an, "live_bytes", a->live_bytes));
		SET(md_node_set_u64(an, "used_pools", a->used_pools));
		SET(md_node_set_u64(an, "empty_pools", a->free_pools));
		SET(md_node_set_u64(an, "resident_bytes", (gs.live_pages + gs.free_pages + gs.metadata_pages) * MD_PAGE_SIZE));
		SET(md_node_set_u64(an, "pinned_free_bytes", gs.pinned_free_bytes));
		SET(md_node_append(arr, an));
		/* the standard group row (include/memdissect/figures.h) */
		char name[48];
		snprintf(name, sizeof(name), "arena %u", (unsigned)a->index);
		struct md_fig_group fg = {
			.group = a->group,
			.name = name,
			.threads = -1,
			.regions = -1,
			.live_bytes = a->live_bytes,
			.free_bytes = gs.span_bytes[MD_SPAN_FREE],
			.cached_bytes = gs.span_bytes[MD_SPAN_CACHED],
			.metadata_bytes = gs.span_bytes[MD_SPAN_METADATA],
		};
		SET(md_node_append(groups, md_fig_group_node(&fg, &gs)));
	}
	SET(md_node_set(out, "arenas", arr));
	SET(md_node_set_string(out, MD_FIG_GROUP_NOUN, "arena"));
	SET(md_node_set(out, MD_FIG_GROUPS, groups));
	struct md_node *dr = md_node_object();
	SET(md_node_set_u64(dr, "arenas_pinned", pinned));
	SET(md_node_set_u64(dr, "arenas_pinned_by_few_blocks", few));
	SET(md_node_set_u64(dr, "few_blocks", PYM_FEW_BLOCKS));
	SET(md_node_set_u64(dr, "resident_bytes_freed_if_few_blocks_went", few_bytes));
	SET(md_node_set(out, "drainability", dr));
	/* pymalloc has no trim: it unmaps an arena when its last block is freed, never otherwise. */
	struct md_node *rel = md_node_object();
	SET(md_node_set_string(rel, "action", "none"));
	SET(md_node_set_u64(rel, "bytes", 0));
	SET(md_node_set_u64(rel, "pages", 0));
	SET(md_node_set(out, "release", rel));
	struct md_group_stats all;
	md_sink_group_stats(sink, -1, &all);
	SET(md_node_set_u64(out, "resident_bytes", (all.live_pages + all.free_pages + all.metadata_pages) * MD_PAGE_SIZE));
	SET(md_node_set_u64(out, "pinned_free_bytes", all.pinned_free_bytes));
	SET(md_node_set_u64(out, "corrupt_pools", w->corrupt_pools));
	SET(md_node_set_u64(out, "corrupt_arenas", w->corrupt_arenas));
	SET(md_node_set_u64(out, "findings", w->findings));
	SET(md_node_set_bool(out, "truncated", w->truncated));
	struct md_node *wm = md_node_object();
	SET(md_node_set_double(wm, "arenas", w->arenas_ms));
	SET(md_node_set_double(wm, "gc_lists", w->gc_ms));
	SET(md_node_set(out, "walk_ms", wm));
	struct md_node *th = md_node_object();
	SET(md_node_set_u64(th, "arenas_by_helper_thread", w->arenas_by_helper));
	SET(md_node_set_u64(th, "arenas_read_again", w->arenas_read_again));
	SET(md_node_set(out, "walk_threads", th));
	return err;
}
#undef SET

static void pym_close(void *state)
{
	struct pym_plugin_state *s = state;
	if (!s)
		return;
	pym_walk_deinit(&s->walk);
	pym_scratch_deinit(&s->scratch);
	free(s);
}

static const struct md_plugin pymalloc_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "pymalloc",
	.description = "CPython 3.8-3.13 obmalloc: arenas, pools, blocks, per-interpreter states, type census",
	.open = pym_open,
	.quiescent = pym_quiescent,
	.walk = pym_walk_cb,
	.report = pym_report,
	.close = pym_close,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &pymalloc_plugin;
}
