/* The musl mallocng plugin: entry point, quiescence check and report. Locating is in
 * musl_locate.c, the walk in musl_walk.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "musl.h"

static struct md_error *mu_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	*state_ret = NULL;
	struct mu_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	bool no_debug = (opts && opts->debuginfo_disabled) || md_target_debuginfo_disabled(t);
	struct md_error *err = mu_locate(t, no_debug, &s->roots);
	if (err || !s->roots.module) {
		free(s);
		return err;
	}
	*state_ret = s;
	return NULL;
}

/* Functions of mallocng and its entry points: a thread stopped in one may be mid-update. */
static const char *const alloc_functions[] = {
	"malloc", "__libc_malloc", "__libc_malloc_impl", "free", "__libc_free", "calloc", "__libc_calloc",
	"realloc", "__libc_realloc", "aligned_alloc", "posix_memalign", "memalign", "malloc_usable_size",
	"alloc_slot", "alloc_group", "alloc_meta", "try_avail", "nontrivial_free", "__malloc_donate",
	"__malloc_alloc_meta", "__malloc_allzerop", "get_meta",
};

/* In the pause: a held __malloc_lock (when the symbol is known) or a thread inside a mallocng
 * function (when it can be symbolised) means the masks and headers may be mid-update. Stripped
 * and dynamic builds give neither reliably, so a check walk follows: a heap that shows problems
 * is mid-update unless exactly the same problems were seen at the previous stop (the target ran
 * in between, so they are damage, not a race, and the real walk reports them as such). */
static bool mu_quiescent_cb(void *state, struct md_target *t, char *why, size_t why_len)
{
	struct mu_state *s = state;
	const struct mu_roots *r = &s->roots;
	if (r->has_lock_symbol) {
		uint32_t lock = 0;
		struct md_error *err = md_target_read(t, r->lock_symbol, &lock, sizeof(lock));
		if (!err && lock) {
			snprintf(why, why_len, "__malloc_lock is held (0x%x)", lock);
			return false;
		}
		md_error_destroy(err);
	}
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	for (size_t i = 0; i < n; i++) {
		uint64_t pcs[16];
		size_t np = 0;
		struct md_error *err = md_target_backtrace(t, &th[i], pcs, 16, &np);
		if (err) {
			md_error_destroy(err);
			np = 0;
			if (th[i].regs_valid) {
				pcs[0] = th[i].regs[MD_REG_RIP];
				np = 1;
			}
		}
		for (size_t k = 0; k < np; k++) {
			const char *fn = md_target_symbolize(t, pcs[k], NULL);
			if (!fn)
				continue;
			for (size_t j = 0; j < sizeof(alloc_functions) / sizeof(alloc_functions[0]); j++)
				if (strcmp(fn, alloc_functions[j]) == 0) {
					snprintf(why, why_len, "thread %d is in %s", (int)th[i].tid, fn);
					return false;
				}
		}
	}
	if (r->has_lock_symbol)
		return true;
	struct mu_walk check;
	struct md_error *err = mu_walk_run(t, r, NULL, false, &check);
	md_error_destroy(err);
	uint64_t problems = check.problems, hash = check.problem_hash, transient = check.transient_slots;
	mu_walk_deinit(&check);
	if (!err && transient) {
		snprintf(why, why_len, "%" PRIu64 " slots are mid-malloc or mid-free", transient);
		return false;
	}
	if (err || !problems || hash == s->last_problem_hash)
		return true;
	s->last_problem_hash = hash;
	snprintf(why, why_len, "a check walk of the heap found %" PRIu64 " problems (a malloc or free in progress?)", problems);
	return false;
}

static struct md_error *mu_walk_cb(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct mu_state *s = state;
	mu_walk_deinit(&s->walk);
	struct md_error *err = mu_walk_run(t, &s->roots, sink, inconsistent, &s->walk);
	s->walked = !err;
	return err;
}

#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)

static int cmp_pin(const void *a, const void *b)
{
	const struct mu_group *x = *(const struct mu_group *const *)a, *y = *(const struct mu_group *const *)b;
	return x->resident_bytes < y->resident_bytes ? 1 : x->resident_bytes > y->resident_bytes ? -1 : 0;
}

#define MAX_LISTED_GROUPS 32

static struct md_node *release_node(const struct mu_walk *w, struct md_error **errp)
{
	struct md_error *err = NULL;
	struct md_node *rel = md_node_object();
	SET(md_node_set_string(rel, "action", "free_live_slots"));
	SET(md_node_set_u64(rel, "bytes", w->release_bytes));
	SET(md_node_set_u64(rel, "pages", w->release_pages));
	SET(md_node_set_string(rel, "note", "musl has no malloc_trim: a group is unmapped as soon as its last used slot is freed; "
					    "bytes are the resident pages of freeable mmapped groups, which go when their live "
					    "slots are freed"));
	SET(md_node_set_u64(rel, "kept_bytes", w->kept_bytes));
	/* The groups that hold the most resident memory, with the live slots that pin them. */
	size_t n = 0;
	const struct mu_group **top = calloc(w->n_groups ? w->n_groups : 1, sizeof(*top));
	for (size_t i = 0; top && i < w->n_groups; i++)
		if (w->groups[i].valid && w->groups[i].parent < 0)
			top[n++] = &w->groups[i];
	if (top)
		qsort(top, n, sizeof(*top), cmp_pin);
	struct md_node *arr = md_node_array();
	for (size_t i = 0; i < n && i < MAX_LISTED_GROUPS; i++) {
		const struct mu_group *g = top[i];
		struct md_node *gn = md_node_object();
		SET(md_node_set_hex(gn, "address", g->mem));
		SET(md_node_set_u64(gn, "size_class", g->sizeclass));
		SET(md_node_set_u64(gn, "stride", g->stride));
		SET(md_node_set_u64(gn, "slots", (uint64_t)g->last_idx + 1));
		SET(md_node_set_u64(gn, "live_slots", g->pinning_live));
		SET(md_node_set_u64(gn, "resident_bytes", g->resident_bytes));
		SET(md_node_set_u64(gn, "returns_bytes", g->maplen && g->freeable ? g->resident_bytes : 0));
		SET(md_node_set_string(gn, "kind", g->donated ? "donated" : g->freeable ? "mmapped" : "kept"));
		SET(md_node_append(arr, gn));
	}
	free(top);
	SET(md_node_set(rel, "groups", arr));
	SET(md_node_set_u64(rel, "groups_listed_of", n));
	if (err) {
		*errp = err;
		md_node_destroy(rel);
		return NULL;
	}
	return rel;
}

static struct md_error *mu_report(void *state, const struct md_sink *sink, struct md_node *out)
{
	struct mu_state *s = state;
	const struct mu_roots *r = &s->roots;
	const struct mu_walk *w = &s->walk;
	struct md_error *err = NULL;
	/* A static image has no version string; LazyFree pages prove free() uses MADV_FREE, which
	 * only 1.2.1-1.2.3 do. */
	const char *version = r->version[0] ? r->version
			      : s->walked && s->walk.lazy_free_bytes ? "1.2.1-1.2.3 (no version string; LazyFree pages: free() uses MADV_FREE)"
								     : "1.2.1-1.2.5 (mallocng; no version string in a static image)";
	SET(md_node_set_string(out, "version", version));
	SET(md_node_set_string(out, "symbols", r->has_ctx_symbol ? "symtab" : "heuristic"));
	SET(md_node_set_string(out, "module", r->module_path));
	/* standard figure (include/memdissect/figures.h): mallocng keeps size classes in groups */
	SET(md_node_set_bool(out, MD_FIG_SLABS, true));
	SET(md_node_set_string(out, "linkage", r->dynamic ? "dynamic" : "static"));
	SET(md_node_set_string(out, "located_by", r->has_ctx_symbol ? "__malloc_context" : "secret scan of the writable image"));
	if (!s->walked) {
		SET(md_node_set_bool(out, "walked", false));
		return err;
	}
	SET(md_node_set_bool(out, "initialised", w->found_ctx));
	if (w->found_ctx)
		SET(md_node_set_hex(out, "context", w->ctx));
	SET(md_node_set_u64(out, "scanned_bytes", w->scanned_bytes));
	SET(md_node_set_bool(out, "consistent", !w->inconsistent && !w->usage_mismatch && !w->invalid_groups && !w->bad_slots &&
						!w->truncated && w->findings == 0));
	struct md_node *st = md_node_object();
	SET(md_node_set_u64(st, "live_allocations", w->live_allocations));
	SET(md_node_set_u64(st, "live_bytes", w->live_bytes));
	SET(md_node_set_u64(st, "groups", w->n_groups - w->invalid_groups));
	SET(md_node_set_u64(st, "free_slots", w->free_slots));
	SET(md_node_set_u64(st, "mmapped_groups", w->mmapped_groups));
	SET(md_node_set_u64(st, "nested_groups", w->nested_groups));
	SET(md_node_set_u64(st, "donated_groups", w->donated_groups));
	SET(md_node_set_u64(st, "invalid_groups", w->invalid_groups));
	SET(md_node_set_u64(st, "invalid_slots", w->bad_slots));
	SET(md_node_set_u64(st, "transient_slots", w->transient_slots));
	SET(md_node_set_u64(st, "meta_areas", w->meta_areas));
	SET(md_node_set_u64(st, "metas", w->metas));
	SET(md_node_set_u64(st, "free_metas", w->free_metas));
	SET(md_node_set_u64(st, "overhead_bytes", w->overhead_bytes));
	SET(md_node_set_u64(st, "lazy_free_bytes", w->lazy_free_bytes));
	SET(md_node_set_u64(st, "madv_free_candidate_bytes", w->lazy_candidate_bytes));
	SET(md_node_set(out, "stats", st));
	struct md_node *cls = md_node_array(), *groups = md_node_array(), *hist = md_node_array();
	for (unsigned sc = 0; sc <= MU_NCLASSES; sc++) {
		const struct mu_class_stats *c = &w->classes[sc];
		if (!c->groups && !c->usage_by_class)
			continue;
		struct md_node *cn = md_node_object();
		SET(md_node_set_u64(cn, "class", sc < MU_NCLASSES ? sc : MU_CLASS_MMAP));
		SET(md_node_set_u64(cn, "size", sc < MU_NCLASSES ? (uint64_t)MU_UNIT * mu_size_classes[sc] - 4 : 0));
		SET(md_node_set_u64(cn, "groups", c->groups));
		SET(md_node_set_u64(cn, "slots_in_use", c->slots_in_use));
		SET(md_node_set_u64(cn, "slots_free", c->slots_free));
		SET(md_node_set_u64(cn, "live_bytes", c->live_bytes));
		if (sc < MU_NCLASSES)
			SET(md_node_set_u64(cn, "usage_by_class", c->usage_by_class));
		struct md_group_stats gs;
		md_sink_group_stats(sink, (int)sc, &gs);
		/* Donated groups have regions of their class; mmapped ones share regions (musl_walk.c). */
		SET(md_node_set_u64(cn, "resident_bytes",
				    (gs.live_pages + gs.free_pages + gs.metadata_pages) * MD_PAGE_SIZE + c->mmapped_resident_bytes));
		SET(md_node_append(cls, cn));
		/* the standard figures (include/memdissect/figures.h): the sink's groups are size classes */
		uint64_t size = sc < MU_NCLASSES ? (uint64_t)MU_UNIT * mu_size_classes[sc] - 4 : 0;
		char name[48];
		if (sc < MU_NCLASSES)
			snprintf(name, sizeof(name), "size class %u (%llu B)", sc, (unsigned long long)size);
		else
			snprintf(name, sizeof(name), "mmapped slots");
		struct md_fig_group fg = {
			.group = (int)sc,
			.name = name,
			.kind = sc < MU_NCLASSES ? "size class" : "mmapped",
			.threads = -1,
			.regions = (int64_t)c->groups,
			.live_bytes = c->live_bytes,
			.free_bytes = gs.span_bytes[MD_SPAN_FREE],
			.cached_bytes = gs.span_bytes[MD_SPAN_CACHED],
			.metadata_bytes = gs.span_bytes[MD_SPAN_METADATA],
		};
		SET(md_node_append(groups, md_fig_group_node(&fg, &gs)));
		if (size)
			SET(md_node_append(hist, md_fig_hist_row(size, size, c->slots_in_use, c->slots_in_use * size,
								 c->slots_free, c->slots_free * size)));
	}
	SET(md_node_set(out, "size_classes", cls));
	SET(md_node_set_string(out, MD_FIG_GROUP_NOUN, "size class"));
	SET(md_node_set_string(out, MD_FIG_GROUP_NOUN_PLURAL, "size classes"));
	SET(md_node_set(out, MD_FIG_GROUPS, groups));
	SET(md_node_set(out, MD_FIG_HISTOGRAM, hist));
	struct md_group_stats all;
	md_sink_group_stats(sink, -1, &all);
	SET(md_node_set_u64(out, "resident_bytes", (all.live_pages + all.free_pages + all.metadata_pages) * MD_PAGE_SIZE));
	SET(md_node_set_u64(out, "meta_area_bytes", w->meta_area_bytes));
	struct md_error *rerr = NULL;
	struct md_node *rel = release_node(w, &rerr);
	if (!err)
		err = rerr;
	else
		md_error_destroy(rerr);
	SET(md_node_set(out, "release", rel));
	SET(md_node_set_bool(out, "truncated", w->truncated));
	return err;
}

static void mu_close(void *state)
{
	struct mu_state *s = state;
	if (!s)
		return;
	mu_walk_deinit(&s->walk);
	free(s);
}

static const struct md_plugin musl_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "musl",
	.description = "musl 1.2.1-1.2.5 mallocng: meta areas, groups (mmapped, nested, donated), slots",
	.open = mu_open,
	.quiescent = mu_quiescent_cb,
	.walk = mu_walk_cb,
	.report = mu_report,
	.close = mu_close,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &musl_plugin;
}
