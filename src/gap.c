/* The gap between the heap and RSS, from the report alone: what the program holds (the
 * allocators' live bytes), and the rest of RSS term by term (free memory the allocators' release
 * calls would give back now, free memory kept out of its reach, free bytes pinned on live pages, metadata,
 * headers and rounding, memory outside the allocators), then per allocator region, ranked.
 * The terms always add up to the gap: a term that cannot be known (no per-region figures) is
 * folded into its neighbour, never guessed. */
#include <stdlib.h>
#include <string.h>

#include "render.h"

uint64_t md_allocators_sum(const struct md_report *r, const char *key, bool *found_ret)
{
	uint64_t sum = 0;
	bool found = false;
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *v = md_node_path(md_node_at(r->allocators, i), key);
		enum md_node_type ty = md_node_type(v);
		if (v && (ty == MD_NODE_U64 || ty == MD_NODE_I64)) {
			sum += md_node_get_u64(v);
			found = true;
		}
	}
	if (found_ret)
		*found_ret = found;
	return sum;
}

/* An allocator of the report that is in use (another allocator may have taken malloc over from
 * it: its object then says "in_use": false). */
static bool allocator_in_use(const struct md_report *r, const char *name)
{
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *n = md_node_get_string(md_node_get(a, "name"));
		const struct md_node *in_use = md_node_get(a, "in_use");
		if (n && strcmp(n, name) == 0)
			return !(md_node_type(in_use) == MD_NODE_BOOL && !md_node_get_bool(in_use));
	}
	return false;
}

/* The release calls of the allocators in use, from each one's "release": {"action"}: "A or B".
 * An action that is not a call ("none", or a word for "a group goes back only when it empties")
 * is left out. */
const char *md_release_verb(const struct md_report *r)
{
	static char verb[256];
	size_t used = 0;
	unsigned n = 0;
	verb[0] = 0;
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		const char *action = md_node_get_string(md_node_path(a, "release.action"));
		if (!name || !action || !allocator_in_use(r, name) || (!strchr(action, '(') && !strchr(action, '.')))
			continue;
		if (strstr(verb, action))
			continue;
		used += (size_t)snprintf(verb + used, used < sizeof(verb) ? sizeof(verb) - used : 0, "%s%s", n++ ? " or " : "",
					 md_esc(action));
	}
	return n ? verb : "no call memdissect knows of";
}

/* Same allocator and same label: one row. */
static bool same_row(const struct md_alloc_region *a, const struct md_alloc_region *b)
{
	const char *la = a->label ? a->label : "", *lb = b->label ? b->label : "";
	const char *pa = a->allocator ? a->allocator : "", *pb = b->allocator ? b->allocator : "";
	return a->group == b->group && strcmp(la, lb) == 0 && strcmp(pa, pb) == 0;
}

static void row_label(struct md_gap_row *row, const struct md_alloc_region *first, size_t n)
{
	/* plugins may build labels from target strings: the row's label is display-safe */
	const char *label = first->label && first->label[0] ? md_esc(first->label) : "allocator region";
	if (n <= 1) {
		snprintf(row->label, sizeof(row->label), "%s", label);
		return;
	}
	/* "mmapped chunk" x 12 -> "mmapped chunks (12)"; "group 0" x 3 -> "group 0 (3 spans)" */
	size_t l = strlen(label);
	char last = l ? label[l - 1] : 0;
	bool word = (last >= 'a' && last <= 'z') || (last >= 'A' && last <= 'Z');
	if (word && last != 's')
		snprintf(row->label, sizeof(row->label), "%ss (%zu)", label, n);
	else
		snprintf(row->label, sizeof(row->label), "%s (%zu spans)", label, n);
}

static int rank_cmp(const void *a, const void *b, void *arg)
{
	const struct md_gap_row *rows = arg;
	const struct md_gap_row *x = &rows[*(const size_t *)a], *y = &rows[*(const size_t *)b];
	if (x->gap_bytes != y->gap_bytes)
		return x->gap_bytes > y->gap_bytes ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

static struct md_error *build_rows(const struct md_report *r, struct md_gap *g)
{
	size_t n = r->n_alloc_regions;
	if (!n || !r->alloc_regions)
		return NULL;
	bool *taken = calloc(n, sizeof(*taken));
	g->rows = calloc(n, sizeof(*g->rows));
	if (!taken || !g->rows) {
		free(taken);
		return &md_error_nomem;
	}
	/* Rows in the order of their first member: alloc_regions is in address order. Grouping
	 * is quadratic only in the number of distinct labels that repeat; a plugin declaring many
	 * regions declares them under few labels. */
	for (size_t i = 0; i < n; i++) {
		if (taken[i])
			continue;
		const struct md_alloc_region *first = &r->alloc_regions[i];
		size_t count = 0;
		for (size_t j = i; j < n; j++)
			count += !taken[j] && same_row(first, &r->alloc_regions[j]);
		struct md_gap_row *row = &g->rows[g->n_rows++];
		row->members = malloc(count * sizeof(*row->members));
		if (!row->members) {
			free(taken);
			return &md_error_nomem;
		}
		row->allocator = first->allocator ? first->allocator : "?";
		row->group = first->group;
		row->start = first->start;
		row_label(row, first, count);
		for (size_t j = i; j < n; j++) {
			const struct md_alloc_region *ar = &r->alloc_regions[j];
			if (taken[j] || !same_row(first, ar))
				continue;
			taken[j] = true;
			row->members[row->n_members++] = j;
			if (ar->end > row->end)
				row->end = ar->end;
			uint64_t pages = 0;
			for (int p = 0; p < MD_CELL_PART_COUNT; p++) {
				row->pages[p] += ar->pages[p];
				pages += ar->pages[p];
			}
			row->total_pages += pages;
			row->releasable_bytes += ar->releasable_bytes;
			row->pinned_free_bytes += ar->pinned_free_bytes;
		}
		uint64_t free_b = row->pages[MD_CELL_FREE] * MD_PAGE_SIZE;
		uint64_t rel = row->releasable_bytes < free_b ? row->releasable_bytes : free_b;
		row->releasable_bytes = rel;
		row->kept_free_bytes = free_b - rel;
		row->metadata_bytes = row->pages[MD_CELL_METADATA] * MD_PAGE_SIZE;
		row->resident_bytes = (row->pages[MD_CELL_LIVE] + row->pages[MD_CELL_FREE] +
				       row->pages[MD_CELL_METADATA] + row->pages[MD_CELL_OTHER]) *
				      MD_PAGE_SIZE;
		row->gap_bytes = free_b + row->pinned_free_bytes + row->metadata_bytes;
	}
	free(taken);
	g->rank = malloc((g->n_rows ? g->n_rows : 1) * sizeof(*g->rank));
	if (!g->rank)
		return &md_error_nomem;
	for (size_t i = 0; i < g->n_rows; i++)
		g->rank[i] = i;
	qsort_r(g->rank, g->n_rows, sizeof(*g->rank), rank_cmp, g->rows);
	return NULL;
}

struct md_error *md_gap_compute(const struct md_report *r, struct md_gap *gap_ret)
{
	struct md_gap g;
	memset(&g, 0, sizeof(g));
	g.rss_bytes = r->memory.rss_bytes;

	uint64_t live_pages_b = r->classes[MD_CLASS_LIVE];
	uint64_t free_b = r->classes[MD_CLASS_FREE];
	g.metadata_bytes = r->classes[MD_CLASS_METADATA];
	g.allocator_resident_bytes = live_pages_b + free_b + g.metadata_bytes;
	g.outside_bytes = r->classes[MD_CLASS_STACK] + r->classes[MD_CLASS_FILE] +
			  r->classes[MD_CLASS_SHARED] + r->classes[MD_CLASS_ANON_OTHER];

	struct md_error *err = build_rows(r, &g);
	if (err) {
		md_gap_deinit(&g);
		return err;
	}
	g.have_regions = g.n_rows > 0;

	/* Releasable and pinned: per region when the classifier gave regions, else what the
	 * plugins said for the whole allocator. */
	uint64_t releasable = 0, pinned = 0;
	if (g.have_regions) {
		for (size_t i = 0; i < g.n_rows; i++) {
			releasable += g.rows[i].releasable_bytes;
			pinned += g.rows[i].pinned_free_bytes;
		}
	} else {
		bool any;
		releasable = md_allocators_sum(r, "release.bytes", &any);
		pinned = md_allocators_sum(r, "pinned_free_bytes", &any);
	}
	g.releasable_bytes = releasable < free_b ? releasable : free_b;
	g.kept_free_bytes = free_b - g.releasable_bytes;
	g.pinned_free_bytes = pinned < live_pages_b ? pinned : live_pages_b;

	bool found;
	uint64_t live = md_allocators_sum(r, "live_bytes", &found);
	g.live_from_allocators = found;
	g.live_heap_bytes = found ? live : live_pages_b - g.pinned_free_bytes;
	g.live_slack_bytes = (int64_t)(live_pages_b - g.pinned_free_bytes) - (int64_t)g.live_heap_bytes;
	/* The classifier measured the live bytes on pages not in RSS; what the allocator counts
	 * beyond what the resident live pages can hold is on such pages too. */
	uint64_t resident_cap = live_pages_b - g.pinned_free_bytes;
	uint64_t untouched = r->untouched_live_bytes < g.live_heap_bytes ? r->untouched_live_bytes : g.live_heap_bytes;
	uint64_t resident_live = g.live_heap_bytes - untouched;
	if (resident_live > resident_cap) {
		untouched += resident_live - resident_cap;
		resident_live = resident_cap;
	}
	g.untouched_live_bytes = untouched;
	g.headers_bytes = resident_cap - resident_live;
	g.gap_bytes = g.rss_bytes > g.live_heap_bytes ? g.rss_bytes - g.live_heap_bytes : 0;
	*gap_ret = g;
	return NULL;
}

void md_gap_deinit(struct md_gap *gap)
{
	if (!gap)
		return;
	for (size_t i = 0; i < gap->n_rows; i++)
		free(gap->rows[i].members);
	free(gap->rows);
	free(gap->rank);
	memset(gap, 0, sizeof(*gap));
}
