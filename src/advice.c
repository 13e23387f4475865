/* What to do about the gap, each piece of advice tied to a figure of the report and given only
 * when the figure supports it (the "Decision Framework" and "Common Debugging Scenarios" of
 * shared/seeds/memory-metrics.md): trim or purge what is releasable, tune glibc's arenas and
 * trim threshold or jemalloc's decay, suspect a structural leak when the allocators keep more
 * than they hand out, look at the container limit or the machine when those are the constraint.
 * Thresholds are relative to the RSS so that a small process is not told to act on kilobytes. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define MiB (1024ULL * 1024)
#define GLIBC_DEFAULT_TRIM_THRESHOLD (128 * 1024ULL)

struct builder {
	struct md_advice *list;
	size_t n, cap;
	struct md_error *err;
};

static void add(struct builder *b, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void add(struct builder *b, const char *topic, const char *fmt, ...)
{
	if (b->err)
		return;
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		struct md_advice *l = realloc(b->list, cap * sizeof(*l));
		if (!l) {
			b->err = &md_error_nomem;
			return;
		}
		b->list = l;
		b->cap = cap;
	}
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = &md_error_nomem;
		return;
	}
	b->list[b->n++] = (struct md_advice){ .topic = topic, .text = text };
}

/* Percent with one decimal in integers (no FPU or locale in the output). */
static const char *pct(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	if (!whole) {
		snprintf(buf, len, "-");
		return buf;
	}
	unsigned __int128 tenths = ((unsigned __int128)part * 1000 + whole / 2) / whole;
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%%", (uint64_t)(tenths / 10), (uint64_t)(tenths % 10));
	return buf;
}

static const char *hb(uint64_t v, char *buf, size_t len)
{
	return md_format_bytes(v, buf, len);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static const struct md_node *allocator_named(const struct md_report *r, const char *name)
{
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *n = md_node_get_string(md_node_get(a, "name"));
		if (n && strcmp(n, name) == 0)
			return a;
	}
	return NULL;
}

static bool node_u64(const struct md_node *n, uint64_t *v)
{
	enum md_node_type ty = md_node_type(n);
	if (!n || (ty != MD_NODE_U64 && ty != MD_NODE_I64))
		return false;
	*v = md_node_get_u64(n);
	return true;
}

/* The row of an allocator with the most of some figure, for "mostly in ...". */
static const struct md_gap_row *top_row(const struct md_gap *g, const char *allocator,
					uint64_t (*figure)(const struct md_gap_row *))
{
	const struct md_gap_row *best = NULL;
	for (size_t i = 0; i < g->n_rows; i++) {
		const struct md_gap_row *row = &g->rows[i];
		if (allocator && strcmp(row->allocator, allocator) != 0)
			continue;
		if (figure(row) && (!best || figure(row) > figure(best)))
			best = row;
	}
	return best;
}

static uint64_t fig_releasable(const struct md_gap_row *row)
{
	return row->releasable_bytes;
}

static uint64_t fig_pinned(const struct md_gap_row *row)
{
	return row->pinned_free_bytes;
}

/* " (most in glibc arena 1 heap 0, 0x7f..-0x7f..: 2.00 MiB)" */
static void where(char *buf, size_t len, const struct md_gap_row *row, uint64_t amount)
{
	char b[32];
	if (!row) {
		buf[0] = 0;
		return;
	}
	snprintf(buf, len, "; the most in %s [0x%" PRIx64 "-0x%" PRIx64 "): %s", row->label, row->start,
		 row->end, hb(amount, b, sizeof(b)));
}

/* Releasable bytes of one allocator: per region when known, else its own figure. */
static uint64_t releasable_of(const struct md_report *r, const struct md_gap *g, const char *name,
			      const char *key, bool *present_ret)
{
	const struct md_node *a = allocator_named(r, name);
	*present_ret = a != NULL;
	if (!a)
		return 0;
	if (g->have_regions) {
		uint64_t sum = 0;
		bool any = false;
		for (size_t i = 0; i < g->n_rows; i++) {
			if (strcmp(g->rows[i].allocator, name) == 0) {
				sum += g->rows[i].releasable_bytes;
				any = true;
			}
		}
		if (any)
			return sum;
	}
	uint64_t v = 0;
	node_u64(md_node_get(a, key), &v);
	return v;
}

static bool allocator_untrustworthy(const struct md_report *r, const char *name, char *why, size_t len);

static void advise_glibc(struct builder *b, const struct md_report *r, const struct md_gap *g)
{
	bool present;
	uint64_t rss = g->rss_bytes;
	uint64_t rel = releasable_of(r, g, "glibc", "trim_release_bytes", &present);
	if (!present)
		return;
	const struct md_node *a = allocator_named(r, "glibc");
	const struct md_node *params = md_node_get(a, "params");
	char b1[32], b2[32], b3[32], p1[16], w[256];

	uint64_t trim_threshold = 0;
	bool have_tt = node_u64(md_node_get(params, "trim_threshold"), &trim_threshold);
	/* a figure from an arena that is corrupt or was mid-update is no ground for calling trim,
	 * and malloc_trim walks every arena: on a corrupt one it can abort the process */
	char why[128];
	if (allocator_untrustworthy(r, "glibc", why, sizeof(why))) {
		if (rel >= max_u64(1 * MiB, rss / 20))
			add(b, "trim-unsafe",
			    "Do not call malloc_trim(0) on this evidence: %s. The walk counted %s as "
			    "releasable, but trim visits every arena and glibc aborts the process on a "
			    "corrupt one; find the heap corruption first (the findings name the addresses).",
			    why, hb(rel, b1, sizeof(b1)));
		return;
	}
	if (rel >= max_u64(1 * MiB, rss / 20)) {
		const struct md_gap_row *row = top_row(g, "glibc", fig_releasable);
		where(w, sizeof(w), row, row ? row->releasable_bytes : 0);
		add(b, "trim",
		    "Trim: malloc_trim(0) would return %s to the kernel now (%s of RSS)%s. Call it after "
		    "a burst of frees (or from a maintenance hook); glibc by itself only trims the top of "
		    "the main heap, and only when the free top exceeds M_TRIM_THRESHOLD%s%s%s.",
		    hb(rel, b1, sizeof(b1)), pct(rel, rss, p1, sizeof(p1)), w,
		    have_tt ? " (now " : "", have_tt ? hb(trim_threshold, b2, sizeof(b2)) : "",
		    have_tt ? ")" : "");
	}
	/* glibc's dynamic threshold: freeing a large mmapped chunk raises the mmap threshold and
	 * sets the trim threshold to twice it, so the top is kept much longer than the default. */
	if (have_tt && trim_threshold > GLIBC_DEFAULT_TRIM_THRESHOLD && rel >= max_u64(1 * MiB, rss / 50)) {
		add(b, "trim-threshold",
		    "Lower M_TRIM_THRESHOLD: it is %s, above glibc's default of %s (the dynamic mmap "
		    "threshold raised it after a large mmapped chunk was freed), while %s is releasable. "
		    "Setting M_TRIM_THRESHOLD and M_MMAP_THRESHOLD explicitly (mallopt, or "
		    "GLIBC_TUNABLES=glibc.malloc.trim_threshold=...) stops the rise.",
		    hb(trim_threshold, b1, sizeof(b1)), hb(GLIBC_DEFAULT_TRIM_THRESHOLD, b2, sizeof(b2)),
		    hb(rel, b3, sizeof(b3)));
	}

	/* Arenas: free memory kept in thread arenas is reused only by the threads attached to
	 * them; capping the arenas lets threads share it. */
	const struct md_node *arenas = md_node_get(a, "arenas");
	size_t n_arenas = md_node_count(arenas);
	uint64_t thread_gap = 0;
	if (g->have_regions) {
		for (size_t i = 0; i < g->n_rows; i++) {
			const struct md_gap_row *row = &g->rows[i];
			if (strcmp(row->allocator, "glibc") == 0 && row->group > 0)
				thread_gap += row->releasable_bytes + row->kept_free_bytes + row->pinned_free_bytes;
		}
	} else {
		for (size_t i = 0; i < n_arenas; i++) {
			const struct md_node *ar = md_node_at(arenas, i);
			const char *kind = md_node_get_string(md_node_get(ar, "kind"));
			uint64_t f = 0, c = 0;
			if (kind && strcmp(kind, "main") == 0)
				continue;
			node_u64(md_node_get(ar, "free_bytes"), &f);
			node_u64(md_node_get(ar, "cached_bytes"), &c);
			thread_gap += f + c;
		}
	}
	uint64_t arena_max = 0;
	bool have_am = node_u64(md_node_get(params, "arena_max"), &arena_max);
	if (n_arenas >= 3 && thread_gap >= max_u64(2 * MiB, rss / 10)) {
		char am[64] = "";
		if (have_am)
			snprintf(am, sizeof(am), " (arena_max is now %" PRIu64 "%s)", arena_max,
				 arena_max ? "" : ", that is 8 per core");
		add(b, "arenas",
		    "Cap the arenas: %zu glibc arenas, and the thread arenas keep %s of free memory (%s of "
		    "RSS) that only their own threads reuse%s. M_ARENA_MAX (mallopt, or "
		    "MALLOC_ARENA_MAX=2 to 4) makes threads share fewer arenas, at some cost in lock "
		    "contention.",
		    n_arenas, hb(thread_gap, b1, sizeof(b1)), pct(thread_gap, rss, p1, sizeof(p1)), am);
	}
}

/* jemalloc's decay settings, wherever the plugin puts them. */
static bool jem_decay(const struct md_node *a, const char *key, int64_t *v)
{
	const struct md_node *n = md_node_get(a, key);
	if (!n)
		n = md_node_get(md_node_get(a, "opt"), key);
	if (!n)
		n = md_node_get(md_node_get(a, "params"), key);
	enum md_node_type ty = md_node_type(n);
	if (!n || (ty != MD_NODE_U64 && ty != MD_NODE_I64))
		return false;
	*v = md_node_get_i64(n);
	return true;
}

static void advise_jemalloc(struct builder *b, const struct md_report *r, const struct md_gap *g)
{
	bool present;
	uint64_t rss = g->rss_bytes;
	uint64_t rel = releasable_of(r, g, "jemalloc", "purge_release_bytes", &present);
	if (!present)
		return;
	const struct md_node *a = allocator_named(r, "jemalloc");
	char b1[32], b2[32], p1[16], w[256], decay[128] = "";
	char why[128];
	if (rel < max_u64(1 * MiB, rss / 20) || allocator_untrustworthy(r, "jemalloc", why, sizeof(why)))
		return;
	const struct md_gap_row *row = top_row(g, "jemalloc", fig_releasable);
	where(w, sizeof(w), row, row ? row->releasable_bytes : 0);
	int64_t dirty = 0, muzzy = 0;
	bool hd = jem_decay(a, "dirty_decay_ms", &dirty), hm = jem_decay(a, "muzzy_decay_ms", &muzzy);
	if (hd && hm)
		snprintf(decay, sizeof(decay), " (now dirty_decay_ms %" PRId64 ", muzzy_decay_ms %" PRId64 ")",
			 dirty, muzzy);
	else if (hd)
		snprintf(decay, sizeof(decay), " (now dirty_decay_ms %" PRId64 ")", dirty);
	uint64_t pdirty = 0;
	bool hp = node_u64(md_node_get(a, "pdirty"), &pdirty);
	char dirty_txt[64] = "";
	if (hp)
		snprintf(dirty_txt, sizeof(dirty_txt), ", %s of it in dirty pages",
			 hb(pdirty * MD_PAGE_SIZE, b2, sizeof(b2)));
	add(b, "purge",
	    "Purge: arena.<all>.purge (mallctl \"arena.4096.purge\") would return %s now (%s of "
	    "RSS)%s%s. jemalloc returns unused dirty pages only as they decay: shorter decay times%s "
	    "(MALLOC_CONF=dirty_decay_ms:1000,muzzy_decay_ms:0) give memory back sooner at some CPU "
	    "cost.",
	    hb(rel, b1, sizeof(b1)), pct(rel, rss, p1, sizeof(p1)), dirty_txt, w, decay);
}

/* What each runtime offers to see into its own heap. */
static const char *own_tool(const char *name)
{
	static const struct { const char *name, *tool; } tools[] = {
		{ "tcmalloc", "tcmalloc: MallocExtension::GetStats() or TCMALLOC_* heap profiling" },
		{ "mimalloc", "mimalloc: MIMALLOC_SHOW_STATS=1 or mi_stats_print()" },
		{ "musl", "musl: no statistics interface; mallinfo is not provided" },
		{ "pymalloc", "Python: sys._debugmallocstats() and tracemalloc" },
		{ "go", "Go: runtime.ReadMemStats or GODEBUG=gctrace=1" },
		{ "hotspot", "Java: jcmd PID GC.heap_info and -XX:NativeMemoryTracking=summary" },
		{ "v8", "node: process.memoryUsage() and a heap snapshot (--inspect)" },
	};
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (strcmp(tools[i].name, name) == 0)
			return tools[i].tool;
	return NULL;
}

/* An arena of the allocator is corrupt or was changing: its trim figure is not to be acted on.
 * why_ret: "arena 1 is corrupt" (or "its structures were changing during the pause"). */
static bool allocator_untrustworthy(const struct md_report *r, const char *name, char *why, size_t len)
{
	const struct md_node *a = allocator_named(r, name);
	const struct md_node *arenas = md_node_get(a, "arenas");
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		const struct md_node *ar = md_node_at(arenas, i);
		const char *st = md_node_get_string(md_node_get(ar, "state"));
		if (st && (strcmp(st, "corrupt") == 0 || strcmp(st, "inconsistent") == 0)) {
			uint64_t idx = i;
			node_u64(md_node_get(ar, "index"), &idx);
			snprintf(why, len, "arena %" PRIu64 " is %s", idx,
				 strcmp(st, "corrupt") == 0 ? "corrupt (see the findings)" : "inconsistent (it was mid-update)");
			return true;
		}
	}
	const struct md_node *consistent = md_node_get(a, "consistent");
	if (md_node_type(consistent) == MD_NODE_BOOL && !md_node_get_bool(consistent)) {
		snprintf(why, len, "its structures were changing during the pause");
		return true;
	}
	return false;
}

struct md_error *md_advice_build(const struct md_report *r, const struct md_gap *g,
				 struct md_advice **list_ret, size_t *n_ret)
{
	struct builder b = { 0 };
	char b1[32], b2[32], b3[32], p1[16], p2[16], w[256];
	uint64_t rss = g->rss_bytes;

	if (r->n_unanalysed) {
		char names[256] = "", tools[768] = "";
		for (size_t i = 0; i < r->n_unanalysed; i++) {
			size_t l = strlen(names);
			snprintf(names + l, sizeof(names) - l, "%s%s", i ? (i + 1 == r->n_unanalysed ? " and " : ", ") : "",
				 r->unanalysed[i].name);
			const char *tool = own_tool(r->unanalysed[i].name);
			if (tool && !strstr(tools, tool)) {
				l = strlen(tools);
				snprintf(tools + l, sizeof(tools) - l, "%s%s", tools[0] ? "; " : "", tool);
			}
		}
		add(&b, "unknown",
		    "Unknown: %s %s memory memdissect does not walk, so how much of the %s of other "
		    "anonymous memory (%s of RSS) is live, free or overhead is not known, and nothing "
		    "below speaks for it. Ask the %s itself%s%s.",
		    names, r->n_unanalysed == 1 ? "holds" : "hold", hb(r->classes[MD_CLASS_ANON_OTHER], b1, sizeof(b1)),
		    pct(r->classes[MD_CLASS_ANON_OTHER], rss, p1, sizeof(p1)),
		    r->n_unanalysed == 1 ? "allocator or runtime" : "allocators and runtimes", tools[0] ? ": " : "", tools);
	} else if (r->partial) {
		add(&b, "partial",
		    "Fix the partial analysis first: an allocator is present but was not analysed (see "
		    "the notes); its memory counts as other anonymous (%s here), and the advice below "
		    "cannot see into it.",
		    hb(r->classes[MD_CLASS_ANON_OTHER], b1, sizeof(b1)));
	}

	advise_glibc(&b, r, g);
	advise_jemalloc(&b, r, g);

	/* Fragmentation: free bytes on pages that also hold live data; only the live neighbours
	 * going away frees them. */
	uint64_t heap_res = g->allocator_resident_bytes;
	if (g->pinned_free_bytes >= max_u64(1 * MiB, heap_res / 10)) {
		const struct md_gap_row *row = top_row(g, NULL, fig_pinned);
		where(w, sizeof(w), row, row ? row->pinned_free_bytes : 0);
		/* jemalloc already keeps size classes in slabs: that is no advice to its users */
		bool slabs = allocator_named(r, "jemalloc") != NULL;
		add(&b, "fragmentation",
		    "Expect no help from %s with %s of free memory (%s of the allocators' "
		    "resident pages): it is pinned by fragmentation, on pages that also hold live "
		    "data%s. It comes back only when the live neighbours are freed: allocate long-lived "
		    "and short-lived objects apart (pools, a separate arena)%s.",
		    md_release_verb(r), hb(g->pinned_free_bytes, b1, sizeof(b1)),
		    pct(g->pinned_free_bytes, heap_res, p1, sizeof(p1)), w,
		    slabs ? "" : ", or use an allocator with size-class slabs (jemalloc, mimalloc)");
	}

	/* The allocators keep more than they hand out: one snapshot cannot tell a stable gap
	 * from a growing one (only watch's trend may say "structural leak"), so the advice is to
	 * watch, with the rule that decides. */
	uint64_t kept = g->releasable_bytes + g->kept_free_bytes + g->pinned_free_bytes + g->metadata_bytes;
	if (kept >= max_u64(8 * MiB, g->live_heap_bytes) && kept >= rss / 4) {
		add(&b, "watch",
		    "Watch the gap: the allocators keep %s resident beyond the %s of live heap they hand "
		    "out (%s of RSS). One snapshot cannot tell overhead from a leak: a gap that stays "
		    "stable is overhead, a gap that grows while the live heap stays flat is a structural "
		    "leak. memdissect watch PID --interval 60 fits both slopes and says which.",
		    hb(kept, b1, sizeof(b1)), hb(g->live_heap_bytes, b2, sizeof(b2)), pct(kept, rss, p1, sizeof(p1)));
	}

	if (g->metadata_bytes >= max_u64(4 * MiB, heap_res / 10)) {
		add(&b, "metadata",
		    "Look at the allocator metadata: %s (%s of the allocators' resident pages) is "
		    "bookkeeping, a sign of very many arenas, thread caches or tiny allocations.",
		    hb(g->metadata_bytes, b1, sizeof(b1)), pct(g->metadata_bytes, heap_res, p1, sizeof(p1)));
	}

	/* The container: its limit counts page cache and every process of the cgroup. */
	bool limited = r->cgroup.valid && r->cgroup.limit_bytes != UINT64_MAX && r->cgroup.limit_bytes;
	if (limited && (unsigned __int128)r->cgroup.usage_bytes * 10 >= (unsigned __int128)r->cgroup.limit_bytes * 9) {
		uint64_t limit = r->cgroup.limit_bytes;
		if ((unsigned __int128)rss * 4 < (unsigned __int128)limit * 3)
			add(&b, "container",
			    "Raise the container limit, or cut what else is charged to it: the cgroup uses "
			    "%s of its %s limit (%s) while this process's RSS is %s; page cache and other "
			    "processes of the cgroup make up the rest, and the OOM killer acts on the "
			    "cgroup's total.",
			    hb(r->cgroup.usage_bytes, b1, sizeof(b1)), hb(limit, b2, sizeof(b2)),
			    pct(r->cgroup.usage_bytes, limit, p1, sizeof(p1)), hb(rss, b3, sizeof(b3)));
		else
			add(&b, "container",
			    "Raise the container limit or shrink the process: its RSS of %s is %s of the "
			    "cgroup's %s limit (the cgroup uses %s); releasing what trim or purge can "
			    "(%s) buys headroom, not a fix.",
			    hb(rss, b1, sizeof(b1)), pct(rss, limit, p1, sizeof(p1)), hb(limit, b2, sizeof(b2)),
			    pct(r->cgroup.usage_bytes, limit, p2, sizeof(p2)), hb(g->releasable_bytes, b3, sizeof(b3)));
	}

	if (r->system.valid && r->system.mem_total_bytes &&
	    r->system.mem_available_bytes * 10 < r->system.mem_total_bytes)
		add(&b, "system",
		    "Free memory on the machine: MemAvailable is %s (%s of MemTotal), the figure that "
		    "predicts the OOM killer; this process holds %s of RSS.",
		    hb(r->system.mem_available_bytes, b1, sizeof(b1)),
		    pct(r->system.mem_available_bytes, r->system.mem_total_bytes, p1, sizeof(p1)),
		    hb(rss, b2, sizeof(b2)));

	if (!b.err && b.n == 0 && !r->partial) {
		uint64_t alloc_gap = g->releasable_bytes + g->kept_free_bytes + g->pinned_free_bytes + g->metadata_bytes;
		if (heap_res)
			add(&b, "nothing",
			    "Nothing to do now: the allocators keep %s beyond the live heap (%s of RSS), "
			    "ordinary overhead at this size. If RSS grows, memdissect watch tells whether "
			    "the gap or the heap is growing.",
			    hb(alloc_gap, b1, sizeof(b1)), pct(alloc_gap, rss, p1, sizeof(p1)));
		else
			add(&b, "nothing",
			    "Nothing to do about an allocator: no allocator heap was found in this process "
			    "(RSS %s).", hb(rss, b1, sizeof(b1)));
	}
	if (b.err) {
		md_advice_free(b.list, b.n);
		return b.err;
	}
	*list_ret = b.list;
	*n_ret = b.n;
	return NULL;
}

void md_advice_free(struct md_advice *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].text);
	free(list);
}
