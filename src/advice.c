/* What to do about the gap, each piece of advice tied to a figure of the report and given only
 * when the figure supports it (the "Decision Framework" and "Common Debugging Scenarios" of
 * shared/seeds/memory-metrics.md): call each allocator's release action on what is releasable,
 * the allocators' own advice items (their tunables, with the figures that support them), suspect
 * a structural leak when the allocators keep more than they hand out, look at the container
 * limit or the machine when those are the constraint. Only the standard figures of the allocator
 * objects are read (include/memdissect/figures.h): no allocator is known here by name.
 * Thresholds are relative to the RSS so that a small process is not told to act on kilobytes. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"
#include "render.h"
#include "unanalysed.h"

#define MiB (1024ULL * 1024)

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
	struct md_advice *a = &b->list[b->n++];
	snprintf(a->topic, sizeof(a->topic), "%s", topic);
	a->text = text;
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

/* "; the most in main heap [0x7f..-0x7f..): 2.00 MiB" */
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

static bool in_use(const struct md_node *a)
{
	const struct md_node *u = md_node_get(a, "in_use");
	return !(md_node_type(u) == MD_NODE_BOOL && !md_node_get_bool(u));
}

/* Releasable bytes of one allocator: per region when known, else its release figure. */
static uint64_t releasable_of(const struct md_gap *g, const struct md_node *a)
{
	const char *name = md_node_get_string(md_node_get(a, "name"));
	if (g->have_regions && name) {
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
	node_u64(md_node_path(a, "release.bytes"), &v);
	return v;
}

/* A group of the allocator is corrupt or was changing: its release figure is not to be acted
 * on. why_ret: "<group name> is corrupt (see the findings)", from the group's own name. */
static bool untrustworthy(const struct md_node *a, char *why, size_t len)
{
	const struct md_node *groups = md_node_get(a, MD_FIG_GROUPS);
	for (size_t i = 0; i < md_node_count(groups); i++) {
		const struct md_node *gr = md_node_at(groups, i);
		const char *st = md_node_get_string(md_node_get(gr, "state"));
		const char *name = md_node_get_string(md_node_get(gr, "name"));
		if (st && (strcmp(st, "corrupt") == 0 || strcmp(st, "inconsistent") == 0)) {
			snprintf(why, len, "%s is %s", name ? md_esc(name) : "a group",
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

/* A release call, not a word such as "none" (docs/plugins.md). */
static bool is_call(const char *action)
{
	return action && (strchr(action, '(') || strchr(action, '.'));
}

/* The plugin's text with "{share}" (bytes as a share of RSS) and "{bytes:N}" (N in units). */
static void expand(char *out, size_t len, const char *text, uint64_t bytes, uint64_t rss)
{
	size_t o = 0;
	for (const char *p = text; *p && o + 1 < len;) {
		char v[40];
		const char *ins = NULL;
		size_t skip = 1;
		if (strncmp(p, "{share}", 7) == 0) {
			ins = pct(bytes, rss, v, sizeof(v));
			skip = 7;
		} else if (strncmp(p, "{bytes:", 7) == 0) {
			char *endp;
			unsigned long long n = strtoull(p + 7, &endp, 10);
			if (*endp == '}') {
				ins = hb(n, v, sizeof(v));
				skip = (size_t)(endp + 1 - p);
			}
		}
		if (ins) {
			int w = snprintf(out + o, len - o, "%s", ins);
			o += w > 0 ? (size_t)w : 0;
			if (o >= len)
				o = len - 1;
		} else {
			out[o++] = *p;
		}
		p += skip;
	}
	out[o] = 0;
}

/* The release advice of one allocator from its "release" object: what the call would give back
 * now, when that is worth it; or why not to call it when the walk cannot vouch for the heap. */
static void advise_release(struct builder *b, const struct md_gap *g, const struct md_node *a)
{
	const struct md_node *rel_obj = md_node_get(a, MD_FIG_RELEASE);
	const char *action = md_node_get_string(md_node_get(rel_obj, "action"));
	if (!is_call(action) || !in_use(a))
		return;
	const char *name = md_node_get_string(md_node_get(a, "name"));
	const char *topic = md_node_get_string(md_node_get(rel_obj, "topic")) ?: "release";
	const char *hint = md_node_get_string(md_node_get(rel_obj, "hint"));
	const char *caution = md_node_get_string(md_node_get(rel_obj, "caution"));
	uint64_t rss = g->rss_bytes, rel = releasable_of(g, a);
	char b1[32], p1[16], w[256], why[160], title[32];
	if (rel < max_u64(1 * MiB, rss / 20))
		return;
	if (untrustworthy(a, why, sizeof(why))) {
		char unsafe[48];
		snprintf(unsafe, sizeof(unsafe), "%s-unsafe", topic);
		if (caution)
			add(b, unsafe,
			    "Do not call %s on this evidence: %s. The walk counted %s as releasable, but %s; "
			    "find the heap corruption first (the findings name the addresses).",
			    md_esc(action), why, hb(rel, b1, sizeof(b1)), md_esc(caution));
		return;
	}
	const struct md_gap_row *row = top_row(g, name, fig_releasable);
	where(w, sizeof(w), row, row ? row->releasable_bytes : 0);
	snprintf(title, sizeof(title), "%s", topic);
	if (title[0] >= 'a' && title[0] <= 'z')
		title[0] = (char)(title[0] - 'a' + 'A');
	char hint_text[1024] = "";
	if (hint)
		expand(hint_text, sizeof(hint_text), hint, rel, rss);
	add(b, topic,
	    "%s: %s would return %s to the kernel now (%s of RSS)%s.%s%s", md_esc(title), md_esc(action),
	    hb(rel, b1, sizeof(b1)), pct(rel, rss, p1, sizeof(p1)), w, hint ? " " : "", md_esc(hint_text));
}

/* The allocator's own advice items, each given only when its figure passes its thresholds. */
static void advise_items(struct builder *b, const struct md_gap *g, const struct md_node *a)
{
	const struct md_node *items = md_node_get(a, MD_FIG_ADVICE);
	if (!in_use(a))
		return;
	for (size_t i = 0; i < md_node_count(items); i++) {
		const struct md_node *it = md_node_at(items, i);
		const char *text = md_node_get_string(md_node_get(it, "text"));
		const char *topic = md_node_get_string(md_node_get(it, "topic"));
		uint64_t bytes = 0, min_bytes = 0, permille = 0;
		if (!text || !topic || !node_u64(md_node_get(it, "bytes"), &bytes))
			continue;
		node_u64(md_node_get(it, "min_bytes"), &min_bytes);
		node_u64(md_node_get(it, "min_rss_permille"), &permille);
		if (bytes < min_bytes || (unsigned __int128)bytes * 1000 < (unsigned __int128)g->rss_bytes * permille)
			continue;
		char out[1536];
		expand(out, sizeof(out), text, bytes, g->rss_bytes);
		add(b, topic, "%s", md_esc(out));
	}
}

/* Some allocator in use keeps size classes apart already. */
static bool any_slabs(const struct md_report *r)
{
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const struct md_node *s = md_node_get(a, MD_FIG_SLABS);
		if (in_use(a) && md_node_type(s) == MD_NODE_BOOL && md_node_get_bool(s))
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
			const char *tool = md_known_allocator_tool(r->unanalysed[i].name);
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

	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		advise_release(&b, g, md_node_at(r->allocators, i));
		advise_items(&b, g, md_node_at(r->allocators, i));
	}

	/* Fragmentation: free bytes on pages that also hold live data; only the live neighbours
	 * going away frees them. */
	uint64_t heap_res = g->allocator_resident_bytes;
	if (g->pinned_free_bytes >= max_u64(1 * MiB, heap_res / 10)) {
		const struct md_gap_row *row = top_row(g, NULL, fig_pinned);
		where(w, sizeof(w), row, row ? row->pinned_free_bytes : 0);
		/* an allocator with size-class slabs: that is no advice to its users */
		bool slabs = any_slabs(r);
		add(&b, "fragmentation",
		    "Expect no help from %s with %s of free memory (%s of the allocators' "
		    "resident pages): it is pinned by fragmentation, on pages that also hold live "
		    "data%s. It comes back only when the live neighbours are freed: allocate long-lived "
		    "and short-lived objects apart (pools, a separate heap)%s.",
		    md_release_verb(r), hb(g->pinned_free_bytes, b1, sizeof(b1)),
		    pct(g->pinned_free_bytes, heap_res, p1, sizeof(p1)), w,
		    slabs ? "" : ", or use an allocator that keeps size classes apart in slabs");
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
		    "bookkeeping, a sign of very many heaps, thread caches or tiny allocations.",
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
			    "cgroup's %s limit (the cgroup uses %s); releasing what the release calls can "
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
