/* The mimalloc plugin: entry point, quiescence check and report. Locating is in mi_locate.c,
 * the walk and the mi_collect(true) prediction in mi_walk.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mimalloc.h"

static struct md_error *mi_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	(void)opts;
	*state_ret = NULL;
	struct mi_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	struct md_error *err = mi_locate(t, &s->roots);
	if (err || !s->roots.module) {
		free(s);
		return err;
	}
	*state_ret = s;
	return NULL;
}

/* The functions of libmimalloc.a 2.0.9 not named mi_* or _mi_* (nm of the release and secure
 * archives linked into the truth target), besides the __libc_* aliases. */
static const char *const api_names[] = { "malloc", "free", "calloc", "realloc", "reallocf", "reallocarray", "reallocarr", "memalign",
					 "valloc", "pvalloc", "aligned_alloc", "posix_memalign", "__posix_memalign", "_aligned_malloc",
					 "malloc_usable_size", "malloc_size", "malloc_good_size", "cfree", "vfree", "chacha_block" };

/* A pc inside mimalloc's code: anywhere in libmimalloc.so; in a static link, a function of the
 * library by its name (mi_*, _mi_*, the malloc family it defines, operator new/delete). */
static bool in_mimalloc(const struct mi_roots *r, struct md_target *t, uint64_t pc)
{
	const struct md_module *m = r->module;
	if (pc < m->start || pc >= m->end)
		return false;
	if (!r->linked_static)
		return true;
	uint64_t off = 0;
	const char *fn = md_target_symbolize(t, pc, &off);
	if (!fn)
		return false;
	if (strncmp(fn, "mi_", 3) == 0 || strncmp(fn, "_mi_", 4) == 0 || strncmp(fn, "_Zn", 3) == 0 || strncmp(fn, "_Zd", 3) == 0 ||
	    strncmp(fn, "__libc_", 7) == 0)
		return true;
	for (size_t i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++)
		if (strcmp(fn, api_names[i]) == 0)
			return true;
	return false;
}

/* The pcs of a thread: inside mimalloc, or maybe. A thread in the vDSO counts as inside: the
 * unwinder has no unwind tables for it (not a file), so its callers are lost or garbage, and
 * mimalloc's _mi_clock_now calls clock_gettime there in the middle of freeing a span
 * (segment.c mi_segment_perhaps_decommit), when the segment's page count is one off. */
static bool pcs_in_mimalloc(const struct mi_roots *r, struct md_target *t, const uint64_t *pcs, size_t np)
{
	for (size_t k = 0; k < np; k++) {
		if (in_mimalloc(r, t, pcs[k]))
			return true;
		const struct md_mapping *m = md_target_find_mapping(t, pcs[k]);
		if (m && m->path && strcmp(m->path, "[vdso]") == 0)
			return true;
	}
	return false;
}

/* mimalloc takes no locks on its fast paths: a thread whose stack shows a frame in the library
 * may be mid-update. */
static bool mi_quiescent_cb(void *state, struct md_target *t, char *why, size_t why_len)
{
	struct mi_state *s = state;
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
		if (pcs_in_mimalloc(&s->roots, t, pcs, np)) {
			snprintf(why, why_len, "thread %d is inside mimalloc (pc 0x%" PRIx64 ")", (int)th[i].tid, pcs[0]);
			return false;
		}
	}
	return true;
}

/* A thread with a frame inside libmimalloc (also one in a system call mimalloc made) must run on
 * until it leaves the library. */
static bool mi_must_run_cb(void *state, struct md_target *t, const struct md_thread *th)
{
	struct mi_state *s = state;
	uint64_t pcs[16];
	size_t np = 0;
	struct md_error *err = md_target_backtrace(t, th, pcs, 16, &np);
	if (err) {
		md_error_destroy(err);
		np = 0;
		if (th->regs_valid) {
			pcs[0] = th->regs[MD_REG_RIP];
			np = 1;
		}
	}
	return pcs_in_mimalloc(&s->roots, t, pcs, np);
}

static struct md_error *mi_walk_cb(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct mi_state *s = state;
	struct md_error *err = mi_walk_run(t, &s->roots, sink, inconsistent, &s->walk);
	s->walked = !err;
	return err;
}

#define SET(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)

static struct md_error *mi_report(void *state, const struct md_sink *sink, struct md_node *out)
{
	struct mi_state *s = state;
	const struct mi_roots *r = &s->roots;
	const struct mi_walk *w = &s->walk;
	struct md_error *err = NULL;
	SET(md_node_set_string(out, "version", r->b->version));
	SET(md_node_set_string(out, "symbols", r->linked_static ? "symtab" : "build-id"));
	SET(md_node_set_string(out, "build", r->b->build));
	SET(md_node_set_string(out, "module", r->module_path));
	/* standard figures (include/memdissect/figures.h): mimalloc takes malloc over, and keeps
	 * each size class in pages of its own */
	SET(md_node_set_bool(out, MD_FIG_REPLACES_MALLOC, true));
	SET(md_node_set_bool(out, MD_FIG_SLABS, true));
	SET(md_node_set_string(out, "linkage", r->linked_static ? "static" : "dynamic"));
	SET(md_node_set_string(out, "located_by", r->linked_static ? "the executable's .symtab, checked against mi_version, mi_usable_size and mi_is_in_heap_region's code"
				       : r->code_checked ? "build-id table, checked against mi_version, mi_usable_size and mi_is_in_heap_region's code"
							 : "build-id table"));
	SET(md_node_set_u64(out, "page_struct_bytes", r->page_stride));
	SET(md_node_set_bool(out, "encoded_free_lists", r->encoded));
	if (!s->walked) {
		SET(md_node_set_bool(out, "walked", false));
		return err;
	}
	SET(md_node_set_bool(out, "initialised", w->initialised));
	SET(md_node_set_bool(out, "consistent", !w->inconsistent && !w->truncated && w->findings == 0));
	struct md_node *st = md_node_object();
	SET(md_node_set_u64(st, "used_bytes", w->used_bytes));
	SET(md_node_set_u64(st, "used_blocks", w->used_blocks));
	SET(md_node_set_u64(st, "remote_freed_blocks", w->remote_blocks));
	SET(md_node_set_u64(st, "remote_freed_bytes", w->remote_bytes));
	SET(md_node_set_u64(st, "live_blocks", w->used_blocks - w->remote_blocks));
	SET(md_node_set_u64(st, "live_bytes", w->used_bytes - w->remote_bytes));
	SET(md_node_set_u64(st, "free_blocks", w->free_blocks));
	SET(md_node_set_u64(st, "free_bytes", w->free_bytes));
	SET(md_node_set_u64(st, "committed_bytes", w->committed_bytes));
	SET(md_node_set_u64(st, "reserved_bytes", w->reserved_bytes));
	SET(md_node_set_u64(st, "allocator_committed_bytes", w->allocator_committed));
	SET(md_node_set_u64(st, "allocator_reserved_bytes", w->allocator_reserved));
	SET(md_node_set_u64(st, "segments", w->segments));
	SET(md_node_set_u64(st, "huge_segments", w->huge_segments));
	SET(md_node_set_u64(st, "abandoned_segments", w->abandoned_segments));
	SET(md_node_set_u64(st, "cached_segments", w->cached_segments));
	SET(md_node_set_u64(st, "invalid_segments", w->bad_segments));
	SET(md_node_set_u64(st, "pages", w->pages));
	SET(md_node_set_u64(st, "abandoned_pages", w->abandoned_pages));
	SET(md_node_set_u64(st, "abandoned_used_blocks", w->abandoned_used_blocks));
	SET(md_node_set_u64(st, "abandoned_used_bytes", w->abandoned_used_bytes));
	SET(md_node_set_u64(st, "empty_pages", w->empty_pages));
	SET(md_node_set_u64(st, "invalid_pages", w->bad_pages));
	SET(md_node_set_u64(st, "thread_data", w->thread_data));
	if (r->encoded) {
		SET(md_node_set_u64(st, "guard_pages", w->guard_pages));
		SET(md_node_set_u64(st, "missing_guard_pages", w->missing_guards));
	}
	SET(md_node_set(out, "stats", st));
	struct md_node *heaps = md_node_array();
	for (unsigned i = 0; i < w->n_heaps; i++) {
		const struct mi_heap *h = &w->heaps[i];
		struct md_node *hn = md_node_object();
		SET(md_node_set_u64(hn, "thread", (uint64_t)h->tid));
		SET(md_node_set_hex(hn, "address", h->addr));
		SET(md_node_set_bool(hn, "main", h->main));
		SET(md_node_set_bool(hn, "backing", h->backing));
		SET(md_node_set_u64(hn, "used_bytes", h->used_bytes));
		SET(md_node_set_u64(hn, "used_blocks", h->used_blocks));
		SET(md_node_set_u64(hn, "remote_freed_blocks", h->remote_blocks));
		SET(md_node_set_u64(hn, "live_bytes", h->used_bytes - h->remote_bytes));
		SET(md_node_set_u64(hn, "pages", h->pages));
		SET(md_node_set_u64(hn, "delayed_free_blocks", h->delayed_blocks));
		struct md_group_stats gs;
		md_sink_group_stats(sink, (int)i, &gs);
		SET(md_node_set_u64(hn, "resident_bytes", (gs.live_pages + gs.free_pages + gs.metadata_pages) * MD_PAGE_SIZE));
		SET(md_node_append(heaps, hn));
	}
	SET(md_node_set(out, "heaps", heaps));
	struct md_node *opt = md_node_object();
	SET(md_node_set_i64(opt, "decommit_delay", w->decommit_delay));
	SET(md_node_set_i64(opt, "decommit_extend_delay", w->extend_delay));
	SET(md_node_set_i64(opt, "segment_decommit_delay", w->segment_decommit_delay));
	SET(md_node_set_i64(opt, "allow_decommit", w->allow_decommit));
	SET(md_node_set(out, "options", opt));
	struct md_node *fr = md_node_object();
	SET(md_node_set_u64(fr, "pending_decommit_bytes", w->pending_decommit));
	SET(md_node_set_u64(fr, "unmarked_free_span_bytes", w->unmarked_free));
	SET(md_node_set_u64(fr, "empty_page_bytes", w->empty_page_bytes));
	SET(md_node_set_u64(fr, "cached_segment_bytes", w->cached_resident));
	SET(md_node_set_u64(fr, "abandoned_free_bytes", w->abandoned_free));
	SET(md_node_set_u64(fr, "decommitted_resident_bytes", w->decommitted_resident));
	SET(md_node_set(out, "resident_free", fr));
	struct md_group_stats all;
	md_sink_group_stats(sink, -1, &all);
	SET(md_node_set_u64(out, "resident_bytes", (all.live_pages + all.free_pages + all.metadata_pages) * MD_PAGE_SIZE));
	struct md_node *rel = md_node_object();
	SET(md_node_set_string(rel, "action", "mi_collect(true) on the main thread"));
	SET(md_node_set_string(rel, "topic", "collect"));
	SET(md_node_set_u64(rel, "bytes", w->release_bytes));
	SET(md_node_set_u64(rel, "pages", w->release_bytes / MD_PAGE_SIZE));
	SET(md_node_set_string(rel, "note", "mimalloc decommits lazily and has no background thread: freed spans wait in the decommit mask "
					    "until their segment is next touched after the delay; an idle process keeps them resident"));
	SET(md_node_set(out, "release", rel));
	SET(md_node_set_bool(out, "truncated", w->truncated));
	return err;
}

static void mi_close(void *state)
{
	free(state);
}

static const struct md_plugin mimalloc_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "mimalloc",
	.description = "mimalloc 2.0.9 (Debian 12 libmimalloc.so.2; libmimalloc.a release or MI_SECURE): heaps, segments, pages, blocks, segment cache",
	.open = mi_open,
	.quiescent = mi_quiescent_cb,
	.walk = mi_walk_cb,
	.report = mi_report,
	.close = mi_close,
	.must_run = mi_must_run_cb,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &mimalloc_plugin;
}
