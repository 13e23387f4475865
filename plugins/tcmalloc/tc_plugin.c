/* The gperftools tcmalloc 2.10 plugin (issue 15): entry point, quiescence check and report.
 * Locating is in tc_locate.c, the walk in tc_walk.c; docs/tcmalloc.md has the facts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc.h"

struct tc_state {
	struct tc_roots roots;
	struct tc_walk walk;
};

static struct md_error *tc_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	(void)opts; /* no debug info is used: dynsym/symtab and the built-in 2.10 layout only */
	*state_ret = NULL;
	struct tc_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	struct md_error *err = tc_locate(t, &s->roots);
	if (err || !s->roots.module) {
		free(s);
		return err;
	}
	*state_ret = s;
	return NULL;
}

/* SpinLock words: 0 free, 1 held, 2 held with a sleeper. */
static bool lock_free(struct md_target *t, uint64_t addr, uint32_t *v)
{
	struct md_error *err = md_target_read(t, addr, v, 4);
	if (err) {
		md_error_destroy(err);
		*v = 0;
		return true;
	}
	return *v == 0;
}

static bool in_tcmalloc(struct md_target *t, const struct tc_roots *r, uint64_t pc)
{
	if (!r->is_static)
		return pc >= r->module->start && pc < r->module->end;
	/* A static link: tcmalloc's functions by name (tc_*, tcmalloc::*, the MallocExtension shims). */
	const char *fn = md_target_symbolize(t, pc, NULL);
	return fn && (strncmp(fn, "tc_", 3) == 0 || strncmp(fn, "_ZN8tcmalloc", 12) == 0 ||
		      strncmp(fn, "_ZN12_GLOBAL__N_1", 17) == 0 || strncmp(fn, "MallocExtension", 15) == 0);
}

bool tc_quiescent(struct md_target *t, const struct tc_roots *r, char *why, size_t why_len)
{
	uint32_t v;
	if (!lock_free(t, r->pageheap_lock, &v)) {
		snprintf(why, why_len, "tcmalloc: the page-heap lock is held (%u)", v);
		return false;
	}
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	for (size_t i = 0; i < n; i++)
		if (th[i].regs_valid && in_tcmalloc(t, r, th[i].regs[MD_REG_RIP])) {
			snprintf(why, why_len, "tcmalloc: thread %d is inside tcmalloc (pc 0x%" PRIx64 ")", (int)th[i].tid,
				 th[i].regs[MD_REG_RIP]);
			return false;
		}
	for (unsigned cl = 1; cl < TC_MAX_CLASSES; cl++)
		if (!lock_free(t, r->central + (uint64_t)cl * TC_CFL_STRIDE, &v)) {
			snprintf(why, why_len, "tcmalloc: central free list %u is locked", cl);
			return false;
		}
	return true;
}

static bool tc_quiescent_cb(void *state, struct md_target *t, char *why, size_t why_len)
{
	struct tc_state *s = state;
	return tc_quiescent(t, &s->roots, why, why_len);
}

static struct md_error *tc_walk_cb(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct tc_state *s = state;
	tc_walk_deinit(&s->walk);
	return tc_walk_run(t, &s->roots, sink, inconsistent, &s->walk);
}

/* After the pause: the spans of what the walk read (target memory is not touched). */
static struct md_error *tc_finish_cb(void *state, struct md_target *t, struct md_sink *sink)
{
	(void)t;
	struct tc_state *s = state;
	tc_walk_finish(sink, &s->walk);
	return NULL;
}

/* docs/json.md: "dwarf", "symtab" or "heuristic"; .dynsym and .symtab are both symbol tables. */
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

static struct md_error *tc_report(void *state, const struct md_sink *sink, struct md_node *out)
{
	struct tc_state *s = state;
	const struct tc_roots *r = &s->roots;
	const struct tc_walk *w = &s->walk;
	struct md_error *err = NULL;
#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)
	SET(md_node_set_string(out, "version", r->version[0] ? r->version : "2.10"));
	SET(md_node_set_string(out, "symbols", source_name(r->source)));
	char detail[768];
	snprintf(detail, sizeof(detail), "%s of %s (Static::pageheap_lock_ 0x%" PRIx64 ", pageheap_ 0x%" PRIx64 ")",
		 r->source == MD_SYMSRC_DYNSYM ? ".dynsym" : ".symtab", r->module_path, r->pageheap_lock, r->pageheap);
	SET(md_node_set_string(out, "symbols_detail", detail));
	SET(md_node_set_string(out, "build", r->variant));
	SET(md_node_set_string(out, "module", r->module_path));
	/* standard figures (include/memdissect/figures.h): tcmalloc takes malloc over, and keeps
	 * small objects in spans of one size class */
	SET(md_node_set_bool(out, MD_FIG_REPLACES_MALLOC, true));
	SET(md_node_set_bool(out, MD_FIG_SLABS, true));
	if (!w->done) {
		SET(md_node_set_bool(out, "walked", false));
		return err;
	}
	SET(md_node_set_bool(out, "consistent", !w->inconsistent && w->counters_match && !w->findings));
	struct md_node *st = md_node_object();
	SET(md_node_set_u64(st, "current_allocated_bytes", w->st.current_allocated));
	SET(md_node_set_u64(st, "heap_size", w->st.system_bytes));
	SET(md_node_set_u64(st, "pageheap_free_bytes", w->st.free_bytes));
	SET(md_node_set_u64(st, "pageheap_unmapped_bytes", w->st.unmapped_bytes));
	SET(md_node_set_u64(st, "central_cache_free_bytes", w->st.central_bytes));
	SET(md_node_set_u64(st, "transfer_cache_free_bytes", w->st.transfer_bytes));
	SET(md_node_set_u64(st, "thread_cache_free_bytes", w->st.thread_bytes));
	SET(md_node_set(out, "stats", st));
	struct md_group_stats gs;
	md_sink_group_stats(sink, -1, &gs);
	/* The standard figures (bytes of the walk, resident pages by class). */
	SET(md_node_set_u64(out, "live_bytes", w->live_bytes));
	SET(md_node_set_u64(out, "free_bytes", gs.span_bytes[MD_SPAN_FREE] + gs.span_bytes[MD_SPAN_CACHED]));
	SET(md_node_set_u64(out, "metadata_bytes", w->metadata_bytes));
	SET(md_node_set_u64(out, "resident_bytes", (gs.live_pages + gs.free_pages + gs.metadata_pages) * MD_PAGE_SIZE));
	struct md_node *rel = md_node_object();
	SET(md_node_set_string(rel, "action", "MallocExtension::ReleaseFreeMemory()"));
	SET(md_node_set_string(rel, "topic", "release"));
	SET(md_node_set_string(rel, "hint", "It returns the page heap's normal free spans; objects in the central, transfer "
					    "and thread caches stay."));
	SET(md_node_set_u64(rel, "bytes", gs.releasable_bytes));
	SET(md_node_set_u64(rel, "pages", gs.releasable_bytes / MD_PAGE_SIZE));
	SET(md_node_set(out, "release", rel));
	struct md_node *wn = md_node_object();
	SET(md_node_set_u64(wn, "spans", (uint64_t)w->small_spans + w->large_spans + 0));
	SET(md_node_set_u64(wn, "small_spans", w->small_spans));
	SET(md_node_set_u64(wn, "large_spans", w->large_spans));
	SET(md_node_set_u64(wn, "pagemap_leaves", w->leaves));
	SET(md_node_set_u64(wn, "in_use_pages", w->in_use_pages));
	SET(md_node_set_u64(wn, "normal_free_pages", w->normal_pages));
	SET(md_node_set_u64(wn, "returned_pages", w->returned_pages));
	SET(md_node_set_u64(wn, "large_set_nodes", w->large_set_nodes));
	SET(md_node_set_u64(wn, "live_bytes", w->live_bytes));
	SET(md_node_set_u64(wn, "central_free_bytes", w->central_objs_bytes));
	SET(md_node_set_u64(wn, "span_tail_bytes", w->tail_bytes));
	SET(md_node_set_u64(wn, "transfer_free_bytes", w->transfer_objs_bytes));
	SET(md_node_set_u64(wn, "thread_cache_bytes", w->thread_objs_bytes));
	SET(md_node_set_u64(wn, "normal_free_bytes", w->normal_bytes));
	SET(md_node_set_u64(wn, "returned_bytes", w->returned_bytes));
	SET(md_node_set_u64(wn, "returned_resident_bytes", w->returned_resident_bytes));
	SET(md_node_set_u64(wn, "free_objects", w->free_objects));
	SET(md_node_set_u64(wn, "bad_objects", w->bad_objects));
	SET(md_node_set_bool(wn, "truncated", w->truncated));
	SET(md_node_set(out, "walk", wn));
	struct md_node *tc = md_node_object();
	SET(md_node_set_u64(tc, "count", w->thread_caches));
	SET(md_node_set_u64(tc, "of_threads", w->thread_caches_mapped));
	SET(md_node_set(out, "thread_caches", tc));
	SET(md_node_set_u64(out, "findings", w->findings));
#undef SET
	return err;
}

static void tc_close(void *state)
{
	struct tc_state *s = state;
	if (s)
		tc_walk_deinit(&s->walk);
	free(s);
}

static const struct md_plugin tcmalloc_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "tcmalloc",
	.description = "gperftools tcmalloc 2.10: page heap (page map, free lists, large sets), spans, central and "
		       "transfer caches, thread caches",
	.open = tc_open,
	.quiescent = tc_quiescent_cb,
	.walk = tc_walk_cb,
	.report = tc_report,
	.close = tc_close,
	.finish = tc_finish_cb,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &tcmalloc_plugin;
}
