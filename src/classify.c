#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"

#define MAX_GROUPS 65536
#define MAX_FINDINGS 10000
/* Live spans of at least a page, kept to tell a region nested in another allocator's live span
 * from one that straddles its spans: 16 bytes per such span, at most this many in all. */
#define MAX_BIG_LIVE (1u << 20)
#define MAX_SINKS 127 /* a page's owner byte holds sink index + 1, its top bit marks resolved pages */

/* While the spans come, a page's flags hold its first sink's flags in the low nibble and every
 * other sink's in the high one; md_classifier_finish resolves them (resolve_layers) to one set
 * in the low nibble, plus F_HELD on pages of a region nested in another sink's live span. */
enum page_flag { F_LIVE = 1, F_META = 2, F_FREE = 4, F_RELEASE = 8, F_HELD = 16 };
#define OWNER_RESOLVED 0x80

struct map_acc {
	uint8_t *flags;
	uint8_t *page_owner; /* sink index + 1 of the page's first span (after finish: innermost), 0 none */
	uint16_t *free_bytes;
	int owner; /* index of the first sink that put a span here, -1 none */
};

enum region_layer { LAYER_TOP, LAYER_NESTED, LAYER_REJECTED };

struct region {
	struct md_region_result res;
	char *label;
	int sink;             /* index of the sink that declared it */
	enum region_layer layer;
	int host;             /* LAYER_NESTED: the sink whose live span holds it */
};

struct span {
	uint64_t start, end;
};


struct md_sink {
	struct md_classifier *c;
	int index;
	char *name;
	struct md_group_stats *groups; /* [0] is group -1, [g+1] is group g */
	size_t n_groups;
	struct md_group_stats total;
	struct span *big_live; /* live spans >= a page (see MAX_BIG_LIVE), sorted at finish */
	size_t n_big_live, cap_big_live;
	struct md_classifier_hold *holds; /* what this sink's live spans hold of other sinks */
	size_t n_holds;
};

struct md_classifier {
	const struct md_target *t;
	const struct md_mapping *maps;
	size_t n_maps;
	struct map_acc *acc;
	size_t last_map; /* locality hint for lookups */
	struct md_sink **sinks;
	size_t n_sinks;
	struct region *regions;
	size_t n_regions, cap_regions;
	struct md_region_result *results; /* flat copy for md_classifier_regions */
	struct md_report_finding *findings;
	size_t n_findings, cap_findings;
	uint64_t dropped_findings;
	unsigned total_findings;
	uint64_t untouched_live_bytes; /* live span bytes on pages not in RSS (never touched) */
	size_t n_big_live;             /* over all sinks, for MAX_BIG_LIVE */
	bool big_live_dropped;
	bool finished;
};

struct md_error *md_classifier_create(const struct md_target *t, struct md_classifier **c_ret)
{
	struct md_classifier *c = calloc(1, sizeof(*c));
	if (!c)
		return &md_error_nomem;
	c->t = t;
	c->maps = md_target_mappings(t, &c->n_maps);
	c->acc = calloc(c->n_maps ? c->n_maps : 1, sizeof(*c->acc));
	if (!c->acc) {
		free(c);
		return &md_error_nomem;
	}
	for (size_t i = 0; i < c->n_maps; i++)
		c->acc[i].owner = -1;
	*c_ret = c;
	return NULL;
}

void md_classifier_destroy(struct md_classifier *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_maps; i++) {
		free(c->acc[i].flags);
		free(c->acc[i].page_owner);
		free(c->acc[i].free_bytes);
	}
	free(c->acc);
	for (size_t i = 0; i < c->n_sinks; i++) {
		free(c->sinks[i]->name);
		free(c->sinks[i]->groups);
		free(c->sinks[i]->big_live);
		free(c->sinks[i]->holds);
		free(c->sinks[i]);
	}
	free(c->sinks);
	for (size_t i = 0; i < c->n_regions; i++)
		free(c->regions[i].label);
	free(c->regions);
	free(c->results);
	for (size_t i = 0; i < c->n_findings; i++)
		free(c->findings[i].message);
	free(c->findings);
	free(c);
}

struct md_sink *md_classifier_sink(struct md_classifier *c, const char *plugin_name)
{
	for (size_t i = 0; i < c->n_sinks; i++)
		if (strcmp(c->sinks[i]->name, plugin_name) == 0)
			return c->sinks[i];
	if (c->n_sinks >= MAX_SINKS)
		return NULL;
	struct md_sink **ns = realloc(c->sinks, (c->n_sinks + 1) * sizeof(*ns));
	if (!ns)
		return NULL;
	c->sinks = ns;
	struct md_sink *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->name = strdup(plugin_name);
	if (!s->name) {
		free(s);
		return NULL;
	}
	s->c = c;
	s->index = (int)c->n_sinks;
	c->sinks[c->n_sinks++] = s;
	return s;
}

/* Index of the mapping containing addr, else of the first mapping above it (n_maps if none). */
static size_t map_index(struct md_classifier *c, uint64_t addr)
{
	size_t h = c->last_map;
	if (h < c->n_maps && addr >= c->maps[h].start && addr < c->maps[h].end)
		return h;
	size_t lo = 0, hi = c->n_maps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->maps[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	c->last_map = lo;
	return lo;
}

static bool ensure_acc(struct md_classifier *c, size_t mi)
{
	struct map_acc *a = &c->acc[mi];
	if (a->flags)
		return true;
	size_t npages = (size_t)((c->maps[mi].end - c->maps[mi].start) / MD_PAGE_SIZE);
	a->flags = calloc(npages ? npages : 1, 1);
	a->page_owner = calloc(npages ? npages : 1, 1);
	a->free_bytes = calloc(npages ? npages : 1, sizeof(uint16_t));
	if (!a->flags || !a->page_owner || !a->free_bytes) {
		free(a->flags);
		free(a->page_owner);
		free(a->free_bytes);
		a->flags = NULL;
		a->page_owner = NULL;
		a->free_bytes = NULL;
		return false;
	}
	return true;
}

static struct md_group_stats *group_stats(struct md_sink *s, int group)
{
	if (group < -1 || group >= MAX_GROUPS - 1)
		group = -1;
	size_t idx = (size_t)(group + 1);
	if (idx >= s->n_groups) {
		size_t n = idx + 1 > s->n_groups * 2 ? idx + 1 : s->n_groups * 2;
		struct md_group_stats *ng = realloc(s->groups, n * sizeof(*ng));
		if (!ng)
			return NULL;
		memset(ng + s->n_groups, 0, (n - s->n_groups) * sizeof(*ng));
		s->groups = ng;
		s->n_groups = n;
	}
	return &s->groups[idx];
}

static uint8_t page_bits_of(const struct md_mapping *m, uint64_t page)
{
	return m->pages ? m->pages[(page - m->start) >> MD_PAGE_SHIFT] : 0;
}

/* Set a sink's flag on page idx: the first sink's nibble, or the others'. */
static void mark_page(struct map_acc *acc, size_t idx, const struct md_sink *s, uint8_t flag)
{
	uint8_t me = (uint8_t)(s->index + 1);
	if (!acc->page_owner[idx])
		acc->page_owner[idx] = me;
	acc->flags[idx] |= acc->page_owner[idx] == me ? flag : (uint8_t)(flag << 4);
}

static void keep_big_live(struct md_sink *s, uint64_t start, uint64_t end)
{
	struct md_classifier *c = s->c;
	if (end - start < MD_PAGE_SIZE)
		return;
	if (c->n_big_live >= MAX_BIG_LIVE) {
		c->big_live_dropped = true;
		return;
	}
	if (s->n_big_live == s->cap_big_live) {
		size_t n = s->cap_big_live ? s->cap_big_live * 2 : 64;
		struct span *ns = realloc(s->big_live, n * sizeof(*ns));
		if (!ns) {
			c->big_live_dropped = true;
			return;
		}
		s->big_live = ns;
		s->cap_big_live = n;
	}
	s->big_live[s->n_big_live++] = (struct span){ start, end };
	c->n_big_live++;
}

void md_sink_span(struct md_sink *s, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (!s || end <= start || (unsigned)kind >= MD_SPAN_KIND_COUNT)
		return;
	struct md_classifier *c = s->c;
	struct md_group_stats *g = group_stats(s, group);
	if (g)
		g->span_bytes[kind] += end - start;
	s->total.span_bytes[kind] += end - start;
	if (kind == MD_SPAN_LIVE)
		keep_big_live(s, start, end);

	uint64_t a = start;
	while (a < end) {
		size_t mi = map_index(c, a);
		if (mi >= c->n_maps)
			break;
		const struct md_mapping *m = &c->maps[mi];
		if (m->start >= end)
			break;
		if (a < m->start)
			a = m->start;
		uint64_t seg_end = end < m->end ? end : m->end;
		if (kind == MD_SPAN_RELEASABLE) {
			uint64_t first = MD_PAGE_UP(a), last = MD_PAGE_DOWN(seg_end);
			struct map_acc *racc = ensure_acc(c, mi) ? &c->acc[mi] : NULL;
			for (uint64_t p = first; p < last; p += MD_PAGE_SIZE) {
				if (racc)
					mark_page(racc, (size_t)((p - m->start) >> MD_PAGE_SHIFT), s, F_RELEASE);
				if (MD_PAGE_COUNTED(page_bits_of(m, p))) {
					if (g)
						g->releasable_bytes += MD_PAGE_SIZE;
					s->total.releasable_bytes += MD_PAGE_SIZE;
				}
			}
			a = seg_end;
			continue;
		}
		if (!ensure_acc(c, mi))
			return;
		struct map_acc *acc = &c->acc[mi];
		if (acc->owner < 0)
			acc->owner = s->index;
		uint8_t flag = kind == MD_SPAN_LIVE ? F_LIVE
			       : (kind == MD_SPAN_METADATA || kind == MD_SPAN_OVERHEAD) ? F_META
										 : F_FREE;
		for (uint64_t p = MD_PAGE_DOWN(a); p < seg_end; p += MD_PAGE_SIZE) {
			size_t idx = (size_t)((p - m->start) >> MD_PAGE_SHIFT);
			mark_page(acc, idx, s, flag);
			if (kind == MD_SPAN_LIVE && !MD_PAGE_COUNTED(page_bits_of(m, p))) {
				uint64_t lo = a > p ? a : p;
				uint64_t hi = seg_end < p + MD_PAGE_SIZE ? seg_end : p + MD_PAGE_SIZE;
				c->untouched_live_bytes += hi - lo;
			}
			if (flag == F_FREE) {
				uint64_t lo = a > p ? a : p;
				uint64_t hi = seg_end < p + MD_PAGE_SIZE ? seg_end : p + MD_PAGE_SIZE;
				uint32_t v = acc->free_bytes[idx] + (uint32_t)(hi - lo);
				acc->free_bytes[idx] = v > 0xffff ? 0xffff : (uint16_t)v;
			}
		}
		a = seg_end;
	}
}

int md_sink_region(struct md_sink *s, uint64_t start, uint64_t end, int group, const char *label)
{
	if (!s || end <= start)
		return -1;
	struct md_classifier *c = s->c;
	if (c->n_regions == c->cap_regions) {
		size_t n = c->cap_regions ? c->cap_regions * 2 : 64;
		struct region *nr = realloc(c->regions, n * sizeof(*nr));
		if (!nr)
			return -1;
		c->regions = nr;
		c->cap_regions = n;
	}
	struct region *r = &c->regions[c->n_regions];
	memset(r, 0, sizeof(*r));
	r->label = strdup(label ? label : "");
	if (!r->label)
		return -1;
	r->res.start = start;
	r->res.end = end;
	r->res.group = group;
	r->res.plugin = s->name;
	r->res.label = r->label;
	r->sink = s->index;
	r->layer = LAYER_TOP;
	r->host = -1;
	return (int)c->n_regions++;
}

void md_sink_finding(struct md_sink *s, enum md_finding_severity severity, uint64_t address, int group,
		     const char *fmt, ...)
{
	if (!s)
		return;
	struct md_classifier *c = s->c;
	c->total_findings++;
	if (c->n_findings >= MAX_FINDINGS) {
		c->dropped_findings++;
		return;
	}
	if (c->n_findings == c->cap_findings) {
		size_t n = c->cap_findings ? c->cap_findings * 2 : 32;
		struct md_report_finding *nf = realloc(c->findings, n * sizeof(*nf));
		if (!nf) {
			c->dropped_findings++;
			return;
		}
		c->findings = nf;
		c->cap_findings = n;
	}
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		c->dropped_findings++;
		return;
	}
	static const char *const sev[] = { "info", "warning", "corrupt" };
	c->findings[c->n_findings++] = (struct md_report_finding){
		.allocator = s->name,
		.severity = (unsigned)severity <= MD_FINDING_CORRUPT ? sev[severity] : "warning",
		.address = address,
		.group = group,
		.message = msg,
	};
}

unsigned md_sink_finding_count(const struct md_sink *s)
{
	return s ? s->c->total_findings : 0;
}

/* The host keeps every kind it knows in span_bytes[]: a kind added after MD_GROUP_SPAN_KINDS
 * needs an array of its own here (the struct plugins see stays as it is). */
_Static_assert(MD_SPAN_KIND_COUNT == MD_GROUP_SPAN_KINDS, "a new span kind needs its own storage");

static const struct md_group_stats *stats_of(const struct md_sink *s, int group)
{
	if (!s)
		return NULL;
	if (group < 0) /* the whole plugin */
		return &s->total;
	size_t idx = (size_t)(group + 1);
	return idx < s->n_groups ? &s->groups[idx] : NULL;
}

void md_sink_group_stats_sized(const struct md_sink *s, int group, void *stats_ret, size_t size)
{
	if (!stats_ret)
		return;
	memset(stats_ret, 0, size);
	const struct md_group_stats *st = stats_of(s, group);
	if (st)
		memcpy(stats_ret, st, size < sizeof(*st) ? size : sizeof(*st));
}

void md_sink_group_stats(const struct md_sink *s, int group, struct md_group_stats *stats_ret)
{
	/* the struct of ABI 1-3: its size is fixed for ever */
	md_sink_group_stats_sized(s, group, stats_ret, sizeof(struct md_group_stats));
}

uint64_t md_sink_span_bytes(const struct md_sink *s, int group, enum md_span_kind kind)
{
	const struct md_group_stats *st = stats_of(s, group);
	return st && (unsigned)kind < MD_GROUP_SPAN_KINDS ? st->span_bytes[kind] : 0;
}

/* The class of one resident page. */
static enum md_class page_class(const struct md_mapping *m, uint8_t bits, uint8_t flags)
{
	if (m->kind == MD_MAP_SHARED || (m->perms & MD_PERM_SHARED))
		return MD_CLASS_SHARED;
	if (flags & F_LIVE)
		return MD_CLASS_LIVE;
	if (flags & F_META)
		return MD_CLASS_METADATA;
	if (flags & F_FREE)
		return MD_CLASS_FREE;
	if (!(bits & MD_PAGE_EXCLUSIVE) && !(bits & MD_PAGE_UNKNOWN))
		return MD_CLASS_SHARED;
	if (m->kind == MD_MAP_STACK)
		return MD_CLASS_STACK;
	if (m->kind == MD_MAP_FILE || m->kind == MD_MAP_SPECIAL)
		return MD_CLASS_FILE;
	return MD_CLASS_ANON_OTHER;
}

/* The class a page gets when only smaps knows it is resident. */
static enum md_class mapping_class(const struct md_mapping *m)
{
	if (m->kind == MD_MAP_SHARED || (m->perms & MD_PERM_SHARED))
		return MD_CLASS_SHARED;
	if (m->kind == MD_MAP_STACK)
		return MD_CLASS_STACK;
	if (m->kind == MD_MAP_FILE || m->kind == MD_MAP_SPECIAL)
		return MD_CLASS_FILE;
	return MD_CLASS_ANON_OTHER;
}

static const char *kind_name(enum md_map_kind k)
{
	switch (k) {
	case MD_MAP_ANON:
		return "anon";
	case MD_MAP_HEAP:
		return "heap";
	case MD_MAP_STACK:
		return "stack";
	case MD_MAP_FILE:
		return "file";
	case MD_MAP_SHARED:
		return "shared";
	case MD_MAP_SPECIAL:
		return "special";
	}
	return "anon";
}

static void add_pages(struct md_group_stats *g, enum md_class cls, uint64_t n)
{
	if (cls == MD_CLASS_LIVE)
		g->live_pages += n;
	else if (cls == MD_CLASS_FREE)
		g->free_pages += n;
	else if (cls == MD_CLASS_METADATA)
		g->metadata_pages += n;
}

/* Which cell part a page of an allocator region is. */
static enum md_cell_part cell_part(enum md_class cls)
{
	switch (cls) {
	case MD_CLASS_LIVE:
		return MD_CELL_LIVE;
	case MD_CLASS_FREE:
		return MD_CELL_FREE;
	case MD_CLASS_METADATA:
		return MD_CELL_METADATA;
	default:
		return MD_CELL_OTHER;
	}
}

static struct md_map_cell *region_cell(struct md_alloc_region *ar, uint64_t page)
{
	if (!ar || !ar->cells)
		return NULL;
	uint64_t idx = ((page - MD_PAGE_DOWN(ar->start)) >> MD_PAGE_SHIFT) / ar->pages_per_cell;
	return idx < ar->n_cells ? &ar->cells[idx] : NULL;
}

static void init_alloc_region(struct md_alloc_region *ar, const struct md_region_result *res)
{
	memset(ar, 0, sizeof(*ar));
	ar->start = res->start;
	ar->end = res->end;
	ar->allocator = res->plugin;
	ar->label = strdup(res->label ? res->label : "");
	ar->group = res->group;
	uint64_t npages = (MD_PAGE_UP(res->end) - MD_PAGE_DOWN(res->start)) / MD_PAGE_SIZE;
	uint64_t ppc = (npages + MD_MAX_CELLS - 1) / MD_MAX_CELLS;
	ar->pages_per_cell = (uint32_t)(ppc ? ppc : 1);
	ar->n_cells = (size_t)((npages + ar->pages_per_cell - 1) / ar->pages_per_cell);
	ar->cells = calloc(ar->n_cells ? ar->n_cells : 1, sizeof(*ar->cells));
}

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Whether [start, end) lies inside one live span (of at least a page) of sink s. */
static bool inside_live_span(const struct md_sink *s, uint64_t start, uint64_t end)
{
	size_t lo = 0, hi = s->n_big_live;
	while (lo < hi) { /* the first span starting above start */
		size_t mid = lo + (hi - lo) / 2;
		if (s->big_live[mid].start <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && s->big_live[lo - 1].end >= end;
}

static struct md_classifier_hold *hold_of(struct md_sink *host, const struct md_sink *inner)
{
	for (size_t i = 0; i < host->n_holds; i++)
		if (host->holds[i].allocator == inner->name)
			return &host->holds[i];
	struct md_classifier_hold *nh = realloc(host->holds, (host->n_holds + 1) * sizeof(*nh));
	if (!nh)
		return NULL;
	host->holds = nh;
	nh[host->n_holds] = (struct md_classifier_hold){ .allocator = inner->name };
	return &nh[host->n_holds++];
}

static int cmp_region_start(const void *a, const void *b, void *arg)
{
	const struct region *regs = arg;
	const struct region *x = &regs[*(const size_t *)a], *y = &regs[*(const size_t *)b];
	return x->res.start < y->res.start ? -1 : x->res.start > y->res.start;
}

/* Two regions of different sinks overlap and neither lies in a live span of the other's sink:
 * the smaller claim is rejected (its pages keep the other sink's classes), and said so. */
static void reject_overlap(struct md_classifier *c, struct region *x, struct region *y)
{
	struct region *bad = x->res.end - x->res.start < y->res.end - y->res.start ? x : y;
	struct region *other = bad == x ? y : x;
	bad->layer = LAYER_REJECTED;
	md_sink_finding(c->sinks[bad->sink], MD_FINDING_WARNING, bad->res.start, bad->res.group,
			"%s region 0x%llx-0x%llx (%s) overlaps %s region 0x%llx-0x%llx (%s) without lying inside "
			"one of %s's live spans: the claim is rejected, its pages keep %s's classes",
			bad->res.plugin, (unsigned long long)bad->res.start, (unsigned long long)bad->res.end, bad->label,
			other->res.plugin, (unsigned long long)other->res.start, (unsigned long long)other->res.end,
			other->label, other->res.plugin, other->res.plugin);
}

/* One page of a nested (or rejected) region: the inner sink's flags win (or the rejected
 * sink's are dropped). Returns whether the page was resolved here. */
static bool resolve_page(struct map_acc *acc, size_t idx, const struct region *rg)
{
	uint8_t own = acc->page_owner[idx];
	if (own & OWNER_RESOLVED)
		return false; /* an earlier nested region took it */
	uint8_t me = (uint8_t)(rg->sink + 1);
	uint8_t mine = own == me ? acc->flags[idx] & 0xf : acc->flags[idx] >> 4;
	uint8_t others = own == me ? acc->flags[idx] >> 4 : acc->flags[idx] & 0xf;
	if (rg->layer == LAYER_NESTED) {
		acc->flags[idx] = (uint8_t)((mine ? mine : others) | F_HELD);
		acc->page_owner[idx] = me | OWNER_RESOLVED;
	} else {
		acc->flags[idx] = others;
		acc->page_owner[idx] = (own == me ? 0 : own) | OWNER_RESOLVED;
	}
	return true;
}

/* Layered claims: a region of one sink inside a live span of another is nested (its sink sets
 * the class of its pages, the host keeps its live bytes and says it holds the region); regions
 * of different sinks that overlap otherwise are rejected as a finding. Then every page's flags
 * are resolved to one set, so each page is counted once. */
static void resolve_layers(struct md_classifier *c)
{
	for (size_t k = 0; k < c->n_sinks; k++)
		if (c->sinks[k]->n_big_live)
			qsort(c->sinks[k]->big_live, c->sinks[k]->n_big_live, sizeof(struct span), cmp_span);
	for (size_t i = 0; i < c->n_regions && c->n_sinks > 1; i++) {
		struct region *rg = &c->regions[i];
		for (size_t k = 0; k < c->n_sinks && rg->layer == LAYER_TOP; k++)
			if ((int)k != rg->sink && inside_live_span(c->sinks[k], rg->res.start, rg->res.end)) {
				rg->layer = LAYER_NESTED;
				rg->host = (int)k;
			}
	}
	/* Overlaps by a sweep in start order: the inner loop meets only regions that start inside x,
	 * so the cost is the sort plus the overlapping pairs. Without every big live span, a nested
	 * region could look like an overlap: then nothing is rejected (the flags are merged, as
	 * before layered claims). */
	size_t *order = c->n_sinks > 1 && c->n_regions > 1 && !c->big_live_dropped
				? malloc(c->n_regions * sizeof(*order))
				: NULL;
	if (order) {
		for (size_t i = 0; i < c->n_regions; i++)
			order[i] = i;
		qsort_r(order, c->n_regions, sizeof(*order), cmp_region_start, c->regions);
		for (size_t i = 0; i < c->n_regions; i++) {
			struct region *x = &c->regions[order[i]];
			for (size_t j = i + 1; j < c->n_regions && x->layer != LAYER_REJECTED; j++) {
				struct region *y = &c->regions[order[j]];
				if (y->res.start >= x->res.end)
					break;
				if (y->sink == x->sink || y->layer == LAYER_REJECTED || y->host == x->sink || x->host == y->sink)
					continue;
				reject_overlap(c, x, y);
			}
		}
		free(order);
	}
	for (size_t i = 0; i < c->n_regions; i++) {
		struct region *rg = &c->regions[i];
		if (rg->layer == LAYER_TOP)
			continue;
		struct md_classifier_hold *h = NULL;
		if (rg->layer == LAYER_NESTED && (h = hold_of(c->sinks[rg->host], c->sinks[rg->sink]))) {
			h->bytes += rg->res.end - rg->res.start;
			h->regions++;
		}
		size_t first = map_index(c, rg->res.start); /* a mapping is its outermost claimer's */
		if (rg->layer == LAYER_NESTED && first < c->n_maps && c->acc[first].owner == rg->sink)
			c->acc[first].owner = rg->host;
		for (uint64_t p = MD_PAGE_DOWN(rg->res.start); p < rg->res.end;) {
			size_t mi = map_index(c, p);
			if (mi >= c->n_maps || c->maps[mi].start >= rg->res.end)
				break;
			const struct md_mapping *m = &c->maps[mi];
			if (p < m->start)
				p = m->start;
			uint64_t seg_end = MD_PAGE_UP(rg->res.end) < m->end ? MD_PAGE_UP(rg->res.end) : m->end;
			struct map_acc *acc = &c->acc[mi];
			for (; acc->flags && p < seg_end; p += MD_PAGE_SIZE)
				if (resolve_page(acc, (size_t)((p - m->start) >> MD_PAGE_SHIFT), rg) && h &&
				    MD_PAGE_COUNTED(page_bits_of(m, p)))
					h->resident_pages++;
			p = seg_end;
		}
	}
	for (size_t mi = 0; mi < c->n_maps; mi++) {
		struct map_acc *acc = &c->acc[mi];
		size_t npages = acc->flags ? (size_t)((c->maps[mi].end - c->maps[mi].start) / MD_PAGE_SIZE) : 0;
		for (size_t i = 0; i < npages; i++) {
			if (acc->page_owner[i] & OWNER_RESOLVED)
				acc->page_owner[i] &= (uint8_t)~OWNER_RESOLVED;
			else
				acc->flags[i] = (uint8_t)((acc->flags[i] & 0xf) | (acc->flags[i] >> 4));
		}
	}
}

const struct md_classifier_hold *md_classifier_holds(const struct md_sink *s, size_t *n_ret)
{
	*n_ret = s ? s->n_holds : 0;
	return s ? s->holds : NULL;
}

static void finish_regions(struct md_classifier *c, struct md_alloc_region *ars)
{
	for (size_t ri = 0; ri < c->n_regions; ri++) {
		struct md_region_result *res = &c->regions[ri].res;
		struct md_alloc_region *ar = ars ? &ars[ri] : NULL;
		if (ar)
			init_alloc_region(ar, res);
		struct md_sink *s = c->sinks[c->regions[ri].sink];
		uint8_t me = (uint8_t)(s->index + 1);
		uint64_t a = MD_PAGE_DOWN(res->start);
		while (a < res->end && c->regions[ri].layer != LAYER_REJECTED) {
			size_t mi = map_index(c, a);
			const struct md_mapping *m = mi < c->n_maps ? &c->maps[mi] : NULL;
			uint64_t seg_end;
			if (!m || m->start >= res->end) {
				for (uint64_t p = a; p < MD_PAGE_UP(res->end); p += MD_PAGE_SIZE) {
					struct md_map_cell *cell = region_cell(ar, p);
					if (cell)
						cell->pages[MD_CELL_NONRESIDENT]++;
				}
				res->nonresident_pages += (MD_PAGE_UP(res->end) - a) / MD_PAGE_SIZE;
				break;
			}
			if (a < m->start) {
				for (uint64_t p = a; p < m->start; p += MD_PAGE_SIZE) {
					struct md_map_cell *cell = region_cell(ar, p);
					if (cell)
						cell->pages[MD_CELL_NONRESIDENT]++;
				}
				res->nonresident_pages += (m->start - a) / MD_PAGE_SIZE;
				a = m->start;
			}
			seg_end = res->end < m->end ? MD_PAGE_UP(res->end) : m->end;
			const struct map_acc *acc = &c->acc[mi];
			for (uint64_t p = a; p < seg_end; p += MD_PAGE_SIZE) {
				size_t idx = (size_t)((p - m->start) >> MD_PAGE_SHIFT);
				uint8_t bits = page_bits_of(m, p);
				struct md_map_cell *cell = region_cell(ar, p);
				if (!MD_PAGE_COUNTED(bits)) { /* unknown residency counts as not resident, as in the classes */
					res->nonresident_pages++;
					if (cell)
						cell->pages[MD_CELL_NONRESIDENT]++;
					continue;
				}
				uint8_t flags = acc->flags ? acc->flags[idx] : 0;
				enum md_class cls = page_class(m, bits, flags);
				if (cell)
					cell->pages[cell_part(cls)]++;
				if ((flags & F_HELD) && acc->page_owner[idx] != me)
					continue; /* a page of another sink's region nested here: counted there */
				res->pages[cls]++;
				if (flags & F_RELEASE) {
					res->releasable_bytes += MD_PAGE_SIZE;
					if (cell)
						cell->releasable_pages++;
				}
				if ((flags & F_LIVE) && acc->free_bytes) {
					res->pinned_free_bytes += acc->free_bytes[idx];
					if (cell)
						cell->pinned_free_bytes += acc->free_bytes[idx];
				}
			}
			a = seg_end;
		}
		if (s) {
			struct md_group_stats *g = group_stats(s, res->group);
			struct md_group_stats *tot = &s->total;
			for (int cls = 0; cls < MD_CLASS_COUNT; cls++) {
				if (g)
					add_pages(g, (enum md_class)cls, res->pages[cls]);
				add_pages(tot, (enum md_class)cls, res->pages[cls]);
			}
			if (g) {
				g->nonresident_pages += res->nonresident_pages;
				g->pinned_free_bytes += res->pinned_free_bytes;
			}
			tot->nonresident_pages += res->nonresident_pages;
			tot->pinned_free_bytes += res->pinned_free_bytes;
		}
	}
	c->results = calloc(c->n_regions ? c->n_regions : 1, sizeof(*c->results));
	if (c->results)
		for (size_t i = 0; i < c->n_regions; i++)
			c->results[i] = c->regions[i].res;
	for (size_t i = 0; ars && i < c->n_regions; i++) {
		struct md_alloc_region *ar = &ars[i];
		const struct md_region_result *res = &c->regions[i].res;
		ar->pages[MD_CELL_LIVE] = res->pages[MD_CLASS_LIVE];
		ar->pages[MD_CELL_FREE] = res->pages[MD_CLASS_FREE];
		ar->pages[MD_CELL_METADATA] = res->pages[MD_CLASS_METADATA];
		ar->pages[MD_CELL_NONRESIDENT] = res->nonresident_pages;
		for (int k = 0; k < MD_CLASS_COUNT; k++)
			if (k != MD_CLASS_LIVE && k != MD_CLASS_FREE && k != MD_CLASS_METADATA)
				ar->pages[MD_CELL_OTHER] += res->pages[k];
		ar->releasable_bytes = res->releasable_bytes;
		ar->pinned_free_bytes = res->pinned_free_bytes;
	}
}

static int cmp_alloc_region(const void *a, const void *b)
{
	const struct md_alloc_region *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

const struct md_region_result *md_classifier_regions(const struct md_classifier *c, size_t *n_ret)
{
	*n_ret = c->results ? c->n_regions : 0;
	return c->results;
}

struct md_error *md_classifier_finish(struct md_classifier *c, struct md_report *r)
{
	if (c->finished)
		return md_error_create(MD_ERR_USAGE, "classifier finished twice");
	c->finished = true;
	resolve_layers(c);
	if (c->big_live_dropped)
		md_report_add_note(r, "more than %u live spans of a page or more: regions nested in the others may not "
				   "have been recognised as layered claims, and overlapping claims were not checked",
				   MAX_BIG_LIVE);
	struct md_alloc_region *ars = c->n_regions ? calloc(c->n_regions, sizeof(*ars)) : NULL;
	finish_regions(c, ars);
	if (ars) {
		qsort(ars, c->n_regions, sizeof(*ars), cmp_alloc_region);
		r->alloc_regions = ars;
		r->n_alloc_regions = c->n_regions;
	}

	r->regions = calloc(c->n_maps ? c->n_maps : 1, sizeof(*r->regions));
	if (!r->regions)
		return &md_error_nomem;
	r->n_regions = c->n_maps;
	memset(r->classes, 0, sizeof(r->classes));
	r->memory.lazy_free_bytes = r->memory.allocator_lazy_free_bytes = 0;
	for (size_t mi = 0; mi < c->n_maps; mi++) {
		r->memory.lazy_free_bytes += c->maps[mi].smaps.lazy_free;
		if (c->acc[mi].flags && c->acc[mi].owner >= 0)
			r->memory.allocator_lazy_free_bytes += c->maps[mi].smaps.lazy_free;
	}
	for (size_t mi = 0; mi < c->n_maps; mi++) {
		const struct md_mapping *m = &c->maps[mi];
		const struct map_acc *acc = &c->acc[mi];
		struct md_report_region *rr = &r->regions[mi];
		rr->start = m->start;
		rr->end = m->end;
		rr->offset = m->offset;
		snprintf(rr->perms, sizeof(rr->perms), "%c%c%c%c", m->perms & MD_PERM_READ ? 'r' : '-',
			 m->perms & MD_PERM_WRITE ? 'w' : '-', m->perms & MD_PERM_EXEC ? 'x' : '-',
			 m->perms & MD_PERM_SHARED ? 's' : 'p');
		if (m->path) {
			rr->path = strdup(m->path);
			if (!rr->path)
				return &md_error_nomem;
		}
		rr->deleted = m->deleted;
		rr->kind = m->kind;
		rr->kind_name = kind_name(m->kind);
		rr->allocator = acc->owner >= 0 ? c->sinks[acc->owner]->name : NULL;
		rr->rss_bytes = m->smaps.rss;
		rr->pss_bytes = m->smaps.pss;
		rr->swap_bytes = m->smaps.swap;
		uint64_t counted = 0;
		if (m->pages) {
			size_t npages = (size_t)((m->end - m->start) / MD_PAGE_SIZE);
			for (size_t i = 0; i < npages; i++) {
				uint8_t bits = m->pages[i];
				if (!MD_PAGE_COUNTED(bits))
					continue;
				enum md_class cls = page_class(m, bits, acc->flags ? acc->flags[i] : 0);
				rr->classes[cls] += MD_PAGE_SIZE;
				counted += MD_PAGE_SIZE;
			}
		}
		rr->classes[mapping_class(m)] += m->extra_rss_pages * MD_PAGE_SIZE;
		counted += m->extra_rss_pages * MD_PAGE_SIZE;
		if (!m->smaps.valid)
			rr->rss_bytes = counted;
		for (int k = 0; k < MD_CLASS_COUNT; k++)
			r->classes[k] += rr->classes[k];
	}

	if (c->n_findings) {
		r->findings = c->findings;
		r->n_findings = c->n_findings;
		c->findings = NULL; /* the report owns them now; allocator names live in the sinks */
		c->n_findings = c->cap_findings = 0;
	}
	r->untouched_live_bytes = c->untouched_live_bytes;
	if (c->dropped_findings)
		md_report_add_note(r, "%llu more findings were not recorded: the report keeps the first %zu of %llu",
				   (unsigned long long)c->dropped_findings, r->n_findings,
				   (unsigned long long)(c->dropped_findings + r->n_findings));
	return NULL;
}
