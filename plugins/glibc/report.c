/* The glibc allocator object of the report. Runs after the target resumed: only the state the
 * walk kept and the classifier's figures are used, never target memory. */
#include <stdio.h>
#include <string.h>

#include "glibc_figures.h"
#include "glibc_internal.h"

/* Node building with one error slot: the first failure sticks, later calls are skipped. */
struct builder {
	struct md_error *err;
};

static void put(struct builder *b, struct md_node *obj, const char *key, struct md_node *child)
{
	if (b->err) {
		md_node_destroy(child);
		return;
	}
	b->err = md_node_set(obj, key, child);
}

static void put_u64(struct builder *b, struct md_node *obj, const char *key, uint64_t v)
{
	put(b, obj, key, md_node_u64(v));
}

static void put_hex(struct builder *b, struct md_node *obj, const char *key, uint64_t v)
{
	put(b, obj, key, md_node_hex(v));
}

static void put_str(struct builder *b, struct md_node *obj, const char *key, const char *s)
{
	put(b, obj, key, s ? md_node_string(s) : md_node_null());
}

static void put_bool(struct builder *b, struct md_node *obj, const char *key, bool v)
{
	put(b, obj, key, md_node_bool(v));
}

static void append(struct builder *b, struct md_node *arr, struct md_node *child)
{
	if (b->err) {
		md_node_destroy(child);
		return;
	}
	b->err = md_node_append(arr, child);
}

static struct md_node *mallinfo_node(struct builder *b, const struct gl_mallinfo *mi)
{
	struct md_node *o = md_node_object();
	if (!o) {
		if (!b->err)
			b->err = &md_error_nomem;
		return NULL;
	}
	put_u64(b, o, "arena", mi->arena);
	put_u64(b, o, "ordblks", mi->ordblks);
	put_u64(b, o, "smblks", mi->smblks);
	put_u64(b, o, "hblks", mi->hblks);
	put_u64(b, o, "hblkhd", mi->hblkhd);
	put_u64(b, o, "usmblks", mi->usmblks);
	put_u64(b, o, "fsmblks", mi->fsmblks);
	put_u64(b, o, "uordblks", mi->uordblks);
	put_u64(b, o, "fordblks", mi->fordblks);
	put_u64(b, o, "keepcost", mi->keepcost);
	return o;
}

static struct md_node *pages_node(struct builder *b, const struct md_group_stats *st)
{
	struct md_node *o = md_node_object();
	if (!o)
		return NULL;
	put_u64(b, o, "live", st->live_pages);
	put_u64(b, o, "free", st->free_pages);
	put_u64(b, o, "metadata", st->metadata_pages);
	put_u64(b, o, "nonresident", st->nonresident_pages);
	return o;
}

/* The size-class histogram: one row per non-empty class, chunk sizes [size_from, size_to]
 * (inclusive, as src/histogram.c reads them); the last class has no upper bound, its size_to is
 * the largest size seen. Bytes are chunk sizes (header included). */
static struct md_node *histogram_node(struct builder *b, const struct gl_hist *hist)
{
	struct md_node *arr = md_node_array();
	if (!arr) {
		if (!b->err)
			b->err = &md_error_nomem;
		return NULL;
	}
	for (unsigned k = 0; k < GL_HIST_CLASSES; k++) {
		const struct gl_hist *h = &hist[k];
		if (!h->count[GL_HIST_LIVE] && !h->count[GL_HIST_FREE] && !h->count[GL_HIST_CACHED])
			continue;
		struct md_node *o = md_node_object();
		if (!o) {
			if (!b->err)
				b->err = &md_error_nomem;
			break;
		}
		uint64_t from = 16ULL << k;
		uint64_t to = k + 1 < GL_HIST_CLASSES ? (32ULL << k) - 1 : (h->max_size > from ? h->max_size : from);
		put_u64(b, o, "size_from", from);
		put_u64(b, o, "size_to", to);
		put_u64(b, o, "live_count", h->count[GL_HIST_LIVE]);
		put_u64(b, o, "live_bytes", h->bytes[GL_HIST_LIVE]);
		put_u64(b, o, "free_count", h->count[GL_HIST_FREE]);
		put_u64(b, o, "free_bytes", h->bytes[GL_HIST_FREE]);
		put_u64(b, o, "cached_count", h->count[GL_HIST_CACHED]);
		put_u64(b, o, "cached_bytes", h->bytes[GL_HIST_CACHED]);
		append(b, arr, o);
	}
	return arr;
}

static const char *state_name(enum gl_arena_state st)
{
	switch (st) {
	case GL_ARENA_OK:
		return "ok";
	case GL_ARENA_INCONSISTENT:
		return "inconsistent";
	case GL_ARENA_UNUSED:
		return "unused";
	case GL_ARENA_CORRUPT:
		break;
	}
	return "corrupt";
}

static struct md_node *arena_node(struct builder *b, const struct glibc_state *s, const struct gl_arena *a,
				  const struct md_sink *sink)
{
	struct md_node *o = md_node_object();
	if (!o)
		return NULL;
	struct md_group_stats st;
	md_sink_group_stats(sink, a->index, &st);
	put_u64(b, o, "index", (uint64_t)a->index);
	put_hex(b, o, "address", a->address);
	put_str(b, o, "kind", a->is_main ? "main" : "thread");
	put_str(b, o, "state", state_name(a->state));
	if (a->inconsistent_why)
		put_str(b, o, "inconsistent_reason", a->inconsistent_why);
	put_u64(b, o, "attached_threads", a->attached_threads);
	put_u64(b, o, "system_mem", a->system_mem);
	put_u64(b, o, "max_system_mem", a->max_system_mem);
	put_hex(b, o, "top", a->top);
	put_u64(b, o, "top_size", a->top_size);
	struct md_node *heaps = md_node_array();
	for (size_t k = 0; heaps && k < a->n_heaps; k++) {
		const struct gl_heap *h = &a->heaps[k];
		struct md_node *ho = md_node_object();
		if (!ho)
			break;
		put_hex(b, ho, "address", h->start);
		put_hex(b, ho, "first_chunk", h->first);
		put_hex(b, ho, "end", h->end);
		put_u64(b, ho, "size", h->end - h->start);
		put_u64(b, ho, "mapped_size", h->mprotect_end - h->start);
		put_u64(b, ho, "chunks", h->chunks);
		append(b, heaps, ho);
	}
	put(b, o, "heaps", heaps);
	put(b, o, "mallinfo", mallinfo_node(b, &a->mi));
	put_u64(b, o, "trim_release_bytes", st.releasable_bytes);
	put_u64(b, o, "trim_release_range_bytes", a->releasable_range_bytes);
	put_u64(b, o, "live_bytes", a->live_bytes);
	put_u64(b, o, "free_bytes", a->top_span + a->bin_bytes);
	put_u64(b, o, "cached_bytes", a->tcache_bytes + a->fastwalk_bytes);
	put_u64(b, o, "metadata_bytes", a->metadata_bytes);
	put_u64(b, o, "overhead_bytes", a->overhead_bytes);
	put_u64(b, o, "pinned_free_bytes", st.pinned_free_bytes);
	put_u64(b, o, "unknown_bytes", a->unknown_bytes);
	put_u64(b, o, "in_use_chunks", a->inuse_count);
	put_u64(b, o, "binned_chunks", a->bin_count);
	put_u64(b, o, "binned_bytes", a->bin_bytes);
	put_u64(b, o, "fastbin_chunks", a->fast_count);
	put_u64(b, o, "fastbin_bytes", a->fast_bytes);
	put_u64(b, o, "tcache_chunks", a->tcache_count);
	put_u64(b, o, "tcache_bytes", a->tcache_bytes);
	put_bool(b, o, "bins_checked", a->bins_chased);
	put(b, o, "pages", pages_node(b, &st));
	put(b, o, "histogram", histogram_node(b, a->hist));
	put_u64(b, o, "findings", a->findings);
	(void)s;
	return o;
}

/* ---- the standard figures (include/memdissect/figures.h) ---- */

#define GL_MiB (1024ULL * 1024)
/* glibc's default M_TRIM_THRESHOLD (DEFAULT_TRIM_THRESHOLD, 128 KiB) */
#define GL_DEFAULT_TRIM_THRESHOLD (128 * 1024ULL)

/* An arena the walk cannot vouch for: no ground for calling trim (it visits every arena). */
static bool gl_trustworthy(const struct glibc_state *s)
{
	if (s->inconsistent_walk)
		return false;
	for (size_t i = 0; i < s->n_arenas; i++)
		if (s->arenas[i].state == GL_ARENA_CORRUPT || s->arenas[i].state == GL_ARENA_INCONSISTENT)
			return false;
	return true;
}

static struct md_node *gl_group_node(struct builder *b, const struct gl_arena *a, const struct md_sink *sink)
{
	struct md_group_stats st;
	md_sink_group_stats(sink, a->index, &st);
	char name[32];
	snprintf(name, sizeof(name), "arena %d", a->index);
	struct md_fig_group fg = {
		.group = a->index,
		.name = name,
		.kind = a->is_main ? "main" : "thread",
		.state = state_name(a->state),
		.threads = (int64_t)a->attached_threads,
		.regions = (int64_t)a->n_heaps,
		.live_bytes = a->live_bytes,
		.free_bytes = a->top_span + a->bin_bytes,
		.cached_bytes = a->tcache_bytes + a->fastwalk_bytes,
		.metadata_bytes = a->metadata_bytes,
		.findings = a->findings,
	};
	struct md_node *o = md_fig_group_node(&fg, &st);
	if (!o) {
		if (!b->err)
			b->err = &md_error_nomem;
		return NULL;
	}
	struct md_node *counts = md_node_object();
	if (counts) {
		put_u64(b, counts, "in_use_chunks", a->inuse_count);
		put_u64(b, counts, "binned_chunks", a->bin_count);
		put_u64(b, counts, "fastbin_chunks", a->fast_count);
		put_u64(b, counts, "tcache_chunks", a->tcache_count);
	}
	put(b, o, "counts", counts);
	put(b, o, "histogram", histogram_node(b, a->hist));
	return o;
}

/* The advice only glibc's tunables can act on, with the figures that support it; the core gives
 * each item when its figure passes the item's thresholds against the RSS. */
static void gl_advice(struct builder *b, const struct glibc_state *s, const struct md_sink *sink,
		      struct md_node *node, uint64_t releasable)
{
	if (b->err || !gl_trustworthy(s))
		return;
	/* the dynamic threshold: freeing a large mmapped chunk raises the mmap threshold and sets
	 * the trim threshold to twice it, so the top is kept much longer than the default */
	if (s->trim_threshold > GL_DEFAULT_TRIM_THRESHOLD)
		b->err = md_fig_advise(node, "trim-threshold", releasable, 1 * GL_MiB, 20,
				       "Lower M_TRIM_THRESHOLD: it is {bytes:%llu}, above glibc's default of {bytes:%llu} "
				       "(the dynamic mmap threshold raised it after a large mmapped chunk was freed), "
				       "while {bytes:%llu} is releasable. Setting M_TRIM_THRESHOLD and M_MMAP_THRESHOLD "
				       "explicitly (mallopt, or GLIBC_TUNABLES=glibc.malloc.trim_threshold=...) stops the rise.",
				       (unsigned long long)s->trim_threshold, (unsigned long long)GL_DEFAULT_TRIM_THRESHOLD,
				       (unsigned long long)releasable);
	/* free memory kept in thread arenas is reused only by the threads attached to them;
	 * capping the arenas lets threads share it */
	uint64_t thread_gap = 0;
	for (size_t i = 0; i < s->n_arenas; i++) {
		if (s->arenas[i].is_main)
			continue;
		struct md_group_stats st;
		md_sink_group_stats(sink, s->arenas[i].index, &st);
		thread_gap += st.free_pages * MD_PAGE_SIZE + st.pinned_free_bytes;
	}
	if (!b->err && s->n_arenas >= 3) {
		char am[96];
		snprintf(am, sizeof(am), " (arena_max is now %llu%s)", (unsigned long long)s->arena_max,
			 s->arena_max ? "" : ", that is 8 per core");
		b->err = md_fig_advise(node, "arenas", thread_gap, 2 * GL_MiB, 100,
				       "Cap the arenas: %zu glibc arenas, and the thread arenas keep {bytes:%llu} of free "
				       "memory ({share} of RSS) that only their own threads reuse%s. M_ARENA_MAX (mallopt, "
				       "or MALLOC_ARENA_MAX=2 to 4) makes threads share fewer arenas, at some cost in lock "
				       "contention.",
				       s->n_arenas, (unsigned long long)thread_gap, am);
	}
}

/* The standard keys of the object that need no walk. */
static void gl_standard_static(struct builder *b, const struct glibc_state *s, struct md_node *node)
{
	if (s->roots.module && s->roots.module->name)
		put_str(b, node, MD_FIG_MODULE, s->roots.module->name);
	if (!b->err)
		b->err = gl_describe_figures(node);
}

struct md_error *gl_report(struct glibc_state *s, const struct md_sink *sink, struct md_node *node)
{
	struct builder b = { NULL };
	put_str(&b, node, "version", s->version);
	put_str(&b, node, "symbols", s->symbols);
	put_str(&b, node, "symbols_detail", s->roots.how[0] ? s->roots.how : NULL);
	struct md_node *layout = md_node_object();
	if (layout) {
		put_str(&b, layout, "source", s->layout.from_dwarf ? "dwarf" : "builtin");
		if (s->layout_checked) {
			put_bool(&b, layout, "builtin_matches_dwarf", s->layout_mismatches == 0);
			if (s->layout_mismatches)
				put_str(&b, layout, "differences", s->layout_diff);
		} else if (s->layout_known) {
			/* Not read this time: this build's DWARF is known to match (layout.c). */
			put_bool(&b, layout, "builtin_matches_dwarf", true);
			put_str(&b, layout, "dwarf_verified_build_id", s->roots.module ? s->roots.module->build_id : NULL);
		} else {
			put(&b, layout, "builtin_matches_dwarf", md_node_null());
		}
	}
	put(&b, node, "layout", layout);
	gl_standard_static(&b, s, node);
	if (!s->walked) {
		put_bool(&b, node, "walked", false);
		put_str(&b, node, "walk_note", s->walk_note ? s->walk_note : "the heap was not walked");
		return b.err;
	}
	put_bool(&b, node, "consistent", !s->inconsistent_walk);
	if (s->inconsistent_walk)
		put_str(&b, node, "inconsistent_reason", s->why[0] ? s->why : NULL);

	struct gl_mallinfo total;
	memset(&total, 0, sizeof(total));
	uint64_t live = s->mmapped_live_bytes, free_b = 0, cached = 0, meta = 0, over = 0, unknown = 0;
	uint64_t range_bytes = 0;
	for (size_t i = 0; i < s->n_arenas; i++) {
		const struct gl_arena *a = &s->arenas[i];
		total.arena += a->mi.arena;
		total.ordblks += a->mi.ordblks;
		total.smblks += a->mi.smblks;
		total.fsmblks += a->mi.fsmblks;
		total.uordblks += a->mi.uordblks;
		total.fordblks += a->mi.fordblks;
		if (a->is_main) {
			total.hblks = a->mi.hblks;
			total.hblkhd = a->mi.hblkhd;
			total.usmblks = a->mi.usmblks;
			total.keepcost = a->mi.keepcost;
		}
		live += a->live_bytes;
		free_b += a->top_span + a->bin_bytes;
		cached += a->tcache_bytes + a->fastwalk_bytes;
		meta += a->metadata_bytes;
		over += a->overhead_bytes;
		unknown += a->unknown_bytes;
		range_bytes += a->releasable_range_bytes;
	}
	struct gl_hist hist[GL_HIST_CLASSES];
	memcpy(hist, s->mmapped_hist, sizeof(hist));
	for (size_t i = 0; i < s->n_arenas; i++)
		for (unsigned k = 0; k < GL_HIST_CLASSES; k++) {
			const struct gl_hist *h = &s->arenas[i].hist[k];
			for (int kind = 0; kind < GL_HIST_KINDS; kind++) {
				hist[k].count[kind] += h->count[kind];
				hist[k].bytes[kind] += h->bytes[kind];
			}
			hist[k].max_size = h->max_size > hist[k].max_size ? h->max_size : hist[k].max_size;
		}
	struct md_group_stats all;
	md_sink_group_stats(sink, -1, &all);
	put(&b, node, "mallinfo", mallinfo_node(&b, &total));
	put_u64(&b, node, "trim_release_bytes", all.releasable_bytes);
	put_u64(&b, node, "trim_release_pages", all.releasable_bytes / MD_PAGE_SIZE);
	put_u64(&b, node, "trim_release_range_bytes", range_bytes);
	struct md_node *release = md_fig_release_node("malloc_trim(0)", all.releasable_bytes);
	if (release) {
		char hint[320];
		snprintf(hint, sizeof(hint), GL_RELEASE_HINT_FMT, (unsigned long long)s->trim_threshold);
		put_str(&b, release, "topic", GL_RELEASE_TOPIC);
		put_str(&b, release, "hint", hint);
		put_str(&b, release, "caution", GL_RELEASE_CAUTION);
	}
	put(&b, node, MD_FIG_RELEASE, release);

	struct md_node *mm = md_node_object();
	if (mm) {
		put_u64(&b, mm, "count", s->mmapped_count);
		put_u64(&b, mm, "bytes", s->mmapped_bytes);
		put_u64(&b, mm, "live_bytes", s->mmapped_live_bytes);
		put_u64(&b, mm, "expected_count", s->n_mmaps);
		put_u64(&b, mm, "expected_bytes", s->mmapped_mem);
		put_u64(&b, mm, "group", (uint64_t)s->mmap_group);
	}
	put(&b, node, "mmapped_chunks", mm);

	put_u64(&b, node, "live_bytes", live);
	put_u64(&b, node, "free_bytes", free_b);
	put_u64(&b, node, "cached_bytes", cached);
	put_u64(&b, node, "metadata_bytes", meta);
	put_u64(&b, node, "overhead_bytes", over);
	put_u64(&b, node, "pinned_free_bytes", all.pinned_free_bytes);
	put_u64(&b, node, "unknown_bytes", unknown);
	put(&b, node, "pages", pages_node(&b, &all));
	put(&b, node, "histogram", histogram_node(&b, hist));

	struct md_node *params = md_node_object();
	if (params) {
		put_u64(&b, params, "trim_threshold", s->trim_threshold);
		put_u64(&b, params, "top_pad", s->top_pad);
		put_u64(&b, params, "mmap_threshold", s->mmap_threshold);
		put_u64(&b, params, "n_mmaps_max", s->n_mmaps_max);
		put_bool(&b, params, "dynamic_mmap_threshold", s->no_dyn_threshold == 0);
		put_u64(&b, params, "arena_max", s->arena_max);
		put_u64(&b, params, "global_max_fast", s->global_max_fast);
		put_u64(&b, params, "tcache_bins", s->tcache_bins);
		put_u64(&b, params, "tcache_max_bytes", s->tcache_max_bytes);
		put_u64(&b, params, "tcache_count", s->tcache_count);
		put_u64(&b, params, "heap_max", s->heap_max);
		put_u64(&b, params, "thp_pagesize", s->thp_pagesize);
	}
	put(&b, node, "params", params);

	struct md_node *arenas = md_node_array();
	for (size_t i = 0; arenas && i < s->n_arenas; i++)
		append(&b, arenas, arena_node(&b, s, &s->arenas[i], sink));
	put(&b, node, "arenas", arenas);
	struct md_node *groups = md_node_array();
	bool all_unused = s->n_arenas > 0;
	for (size_t i = 0; groups && i < s->n_arenas; i++) {
		append(&b, groups, gl_group_node(&b, &s->arenas[i], sink));
		all_unused &= s->arenas[i].state == GL_ARENA_UNUSED;
	}
	put(&b, node, MD_FIG_GROUPS, groups);
	put_bool(&b, node, MD_FIG_ALLOCATED_FROM, !all_unused);
	gl_advice(&b, s, sink, node, all.releasable_bytes);

	struct md_node *tcaches = md_node_array();
	for (size_t i = 0; tcaches && i < s->n_tcaches; i++) {
		const struct gl_tcache *c = &s->tcaches[i];
		struct md_node *o = md_node_object();
		if (!o)
			break;
		put_u64(&b, o, "tid", (uint64_t)c->tid);
		put(&b, o, "address", c->address ? md_node_hex(c->address) : md_node_null());
		put_bool(&b, o, "valid", c->valid);
		put_u64(&b, o, "count", c->count);
		put_u64(&b, o, "bytes", c->bytes);
		append(&b, tcaches, o);
	}
	put(&b, node, "tcaches", tcaches);

	if (s->n_in_malloc) {
		struct md_node *tm = md_node_array();
		for (size_t i = 0; tm && i < s->n_in_malloc; i++) {
			struct md_node *o = md_node_object();
			if (!o)
				break;
			put_u64(&b, o, "tid", (uint64_t)s->in_malloc[i].tid);
			put_str(&b, o, "backtrace", s->in_malloc[i].where);
			put(&b, o, "arena", s->in_malloc[i].arena ? md_node_hex(s->in_malloc[i].arena) : md_node_null());
			append(&b, tm, o);
		}
		put(&b, node, "threads_in_malloc", tm);
	}
	put_u64(&b, node, "findings", s->findings_total);

	static const char *const phases[GL_PHASE_COUNT] = { "ring", "tcache", "sort", "heaps", "fastbins", "bins", "mmapped" };
	struct md_node *times = md_node_object();
	for (int i = 0; times && i < GL_PHASE_COUNT; i++)
		put(&b, times, phases[i], md_node_double((double)(int64_t)(s->phase_ms[i] * 1000.0) / 1000.0));
	if (times)
		put(&b, times, "heap_reads", md_node_double((double)(int64_t)(s->read_ms * 1000.0) / 1000.0));
	put(&b, node, "walk_ms", times);
	put_u64(&b, node, "heap_read_bytes", s->read_bytes);
	return b.err;
}
