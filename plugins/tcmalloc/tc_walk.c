/* The tcmalloc 2.10 walk (docs/tcmalloc.md): the two-level page map gives every span (a page-map
 * entry counts only where span->start is that page: stale entries of merged-away spans stay in
 * the map); the free lists and the large sets are cross-checked against it; the central free
 * lists, transfer slots and thread caches give the free objects of small-object spans. Then every
 * span is emitted: objects in use live, objects on any free list free or cached, normal free
 * spans free and releasable, returned spans free (not resident), structures metadata.
 * Target memory is hostile: every pointer is checked against the spans or the mappings before
 * it is followed, every list walk is bounded by what its container can hold. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc.h"
#include "read_ahead.h"

#define MAX_FINDINGS 64
#define MAX_SPANS (1u << 24)
#define MAX_THREAD_CACHES 65536u
#define WINDOW (256u << 10)

enum obj_kind { OBJ_CENTRAL = 1, OBJ_TRANSFER = 2, OBJ_THREAD = 3 };

struct span_rec {
	uint64_t addr, ptr, objects;
	uint64_t next; /* Span::next, read with the span */
	uint32_t pages, refcount;
	uint32_t link_first, nlinks; /* its entries in the link index */
	uint32_t chain; /* objects on its free list, when followed while streaming (chained) */
	uint8_t cl, loc;
	bool chained;
};

struct range {
	uint64_t start, end;
};

struct region_acc {
	const struct md_mapping *m;
	uint64_t lo, hi;
};

/* An object of a small span whose first word could be a free-list link: NULL-free, pointing to an
 * object boundary of a span of the same class. Found while streaming every small span once in
 * address order, so that following a free list is a lookup, not a read of a random block of the
 * target (a miss in the read cache costs 256 KiB). */
struct link {
	uint64_t addr, next;
};

/* One singly linked list of free objects being followed: a transfer slot's chain or a thread
 * cache's list. */
struct cursor {
	uint64_t o;     /* the next object */
	uint64_t owner; /* the thread cache's address, or the transfer slot's number */
	uint32_t left;  /* objects the container says are still to come */
	uint32_t seen;
	uint32_t cache; /* index of the thread cache */
	uint64_t tortoise; /* Brent's cycle check */
	uint32_t power, lam;
	uint16_t cl;
	uint8_t kind;
	bool done;
};

struct ctx {
	struct md_target *t;
	struct md_sink *sink;
	const struct tc_roots *r;
	struct tc_walk *w;
	unsigned ncl;
	uint64_t size[TC_MAX_CLASSES], pages[TC_MAX_CLASSES], move[TC_MAX_CLASSES];
	struct span_rec *spans;
	size_t nspans, capspans;
	uint32_t *page_span; /* TC_PAGE page of [page_lo, ...) -> span index + 1 (0: none); NULL: search */
	uint64_t page_lo, page_n;
	uint64_t *byptr; /* span pointers, sorted, low bits unused: index kept in a parallel array */
	uint32_t *byptr_idx;
	uint64_t *objs; /* object address | kind (objects are 8-aligned) */
	uint64_t obj_budget; /* the objects all small spans hold: no list can name more */
	bool over_budget;
	size_t nobjs, capobjs;
	struct range *meta;
	size_t nmeta, capmeta;
	uint8_t *tail; /* PageHeap from TC_PH_TAIL to its end */
	uint8_t *cfl;  /* the central free lists' bytes, TC_CFL_SIZE per class */
	bool cfl_ok[TC_MAX_CLASSES];
	struct cursor *cur; /* transfer-slot chains and thread-cache lists */
	size_t ncur, capcur;
	struct link *links; /* sorted by address: objects whose first word is a free-list link */
	size_t nlinks, caplinks;
	/* emission */
	bool pending;
	enum md_span_kind pk;
	uint64_t ps, pe;
	uint64_t rls, rle;
	struct region_acc regions[64];
	size_t nregions, last_region;
};

__attribute__((format(printf, 4, 5))) static void finding(struct ctx *c, enum md_finding_severity sev, uint64_t addr,
							  const char *fmt, ...)
{
	c->w->findings++;
	if (c->w->findings > MAX_FINDINGS) {
		if (c->w->findings == MAX_FINDINGS + 1)
			md_sink_finding(c->sink, MD_FINDING_WARNING, 0, -1,
					"more than %u tcmalloc findings: the rest are counted, not listed", MAX_FINDINGS);
		return;
	}
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	md_sink_finding(c->sink, sev, addr, -1, "%s", msg);
}

static bool rd(struct ctx *c, uint64_t addr, void *buf, size_t len, const char *what)
{
	struct md_error *err = md_target_read(c->t, addr, buf, len);
	if (!err)
		return true;
	finding(c, MD_FINDING_CORRUPT, addr, "%s at 0x%" PRIx64 " cannot be read: %s", what, addr, err->message);
	md_error_destroy(err);
	return false;
}

static bool rd_quiet(struct ctx *c, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(c->t, addr, buf, len);
	if (!err)
		return true;
	md_error_destroy(err);
	return false;
}

static uint64_t u64_at(const uint8_t *b, size_t off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static uint32_t u32_at(const uint8_t *b, size_t off)
{
	uint32_t v;
	memcpy(&v, b + off, 4);
	return v;
}

static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return true;
	size_t nc = *cap ? *cap * 2 : 1024;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return false;
	*p = np;
	*cap = nc;
	return true;
}

static void add_meta(struct ctx *c, uint64_t start, uint64_t len)
{
	if (!grow((void **)&c->meta, &c->capmeta, c->nmeta, sizeof(*c->meta)))
		return;
	c->meta[c->nmeta++] = (struct range){start, start + len};
	c->w->metadata_bytes += len;
}

static void add_obj(struct ctx *c, uint64_t addr, enum obj_kind kind)
{
	if (c->nobjs >= c->obj_budget) {
		if (!c->over_budget)
			finding(c, MD_FINDING_CORRUPT, addr,
				"the free lists name more than the %" PRIu64 " objects all small spans hold (a loop?)", c->obj_budget);
		c->over_budget = true;
		return;
	}
	if (!grow((void **)&c->objs, &c->capobjs, c->nobjs, sizeof(*c->objs)))
		return;
	c->objs[c->nobjs++] = addr | (uint64_t)kind;
}

/* The span holding addr (spans are sorted by address), or NULL. */
static const struct span_rec *span_at(const struct ctx *c, uint64_t addr)
{
	if (c->page_span) {
		uint64_t k = (addr - c->page_lo) >> TC_PAGE_SHIFT;
		if (addr < c->page_lo || k >= c->page_n || !c->page_span[k])
			return NULL;
		return &c->spans[c->page_span[k] - 1];
	}
	size_t lo = 0, hi = c->nspans;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct span_rec *s = &c->spans[mid];
		if (addr < s->addr)
			hi = mid;
		else if (addr >= s->addr + (uint64_t)s->pages * TC_PAGE)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

/* The span whose Span structure is at ptr, or NULL. */
static const struct span_rec *span_by_ptr(const struct ctx *c, uint64_t ptr)
{
	size_t lo = 0, hi = c->nspans;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->byptr[mid] < ptr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nspans && c->byptr[lo] == ptr ? &c->spans[c->byptr_idx[lo]] : NULL;
}

/* Is addr the start of an object of class cl? */
static bool object_ok(const struct ctx *c, uint64_t addr, unsigned cl, const struct span_rec **span_ret)
{
	const struct span_rec *s = span_at(c, addr);
	if (!s || s->loc != TC_IN_USE || s->cl != cl || (addr & 7))
		return false;
	uint64_t off = addr - s->addr, sz = c->size[cl];
	if (off % sz || off / sz >= (uint64_t)s->pages * TC_PAGE / sz)
		return false;
	if (span_ret)
		*span_ret = s;
	return true;
}

/* ---- size map ----------------------------------------------------------------------------- */

static struct md_error *read_sizemap(struct ctx *c)
{
	uint8_t sm[TC_SM_SIZE];
	struct md_error *err = md_target_read(c->t, c->r->sizemap, sm, sizeof(sm));
	if (err)
		return err;
	uint32_t n = u32_at(sm, TC_SM_NUM_CLASSES);
	if (n < 2 || n > TC_MAX_CLASSES)
		return md_error_create(MD_ERR_BAD_DATA, "size map at 0x%" PRIx64 " says %u size classes (2.10 has 86)",
				       c->r->sizemap, n);
	c->ncl = n;
	uint64_t prev = 0;
	for (unsigned cl = 0; cl < n; cl++) {
		int32_t sz = (int32_t)u32_at(sm, TC_SM_CLASS_TO_SIZE + 4 * cl);
		int32_t mv = (int32_t)u32_at(sm, TC_SM_NUM_TO_MOVE + 4 * cl);
		uint64_t pg = u64_at(sm, TC_SM_CLASS_TO_PAGES + 8 * cl);
		if (cl == 0) {
			if (sz != 0)
				return md_error_create(MD_ERR_BAD_DATA, "size class 0 has size %d, not 0", sz);
			continue;
		}
		if (sz <= 0 || (uint64_t)sz <= prev || sz % 8 || sz > (256 << 10) || pg < 1 || pg > TC_MAX_PAGES || mv < 1 ||
		    mv > 32768 || pg * TC_PAGE < (uint64_t)sz)
			return md_error_create(MD_ERR_BAD_DATA,
					       "size class %u is broken (size %d, %" PRIu64 " pages, %d to move)", cl, sz,
					       pg, mv);
		c->size[cl] = (uint64_t)sz;
		c->pages[cl] = pg;
		c->move[cl] = (uint64_t)mv;
		prev = (uint64_t)sz;
	}
	return NULL;
}

static int cmp_pair(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* ---- page map ----------------------------------------------------------------------------- */

static void accept_span(struct ctx *c, uint64_t p, uint64_t ptr, const uint8_t *sb, uint64_t *next_p)
{
	uint64_t len = u64_at(sb, TC_SPAN_LENGTH);
	uint32_t bits = u32_at(sb, TC_SPAN_BITS);
	unsigned loc = (bits >> 24) & 3, cl = (bits >> 16) & 0xff;
	uint64_t addr = p << TC_PAGE_SHIFT;
	if (len == 0 || len > ((uint64_t)1 << 35) - p) {
		finding(c, MD_FINDING_CORRUPT, ptr, "span 0x%" PRIx64 " for page 0x%" PRIx64 " has length %" PRIu64, ptr, addr,
			len);
		return;
	}
	if (loc == 3) {
		finding(c, MD_FINDING_CORRUPT, ptr, "span 0x%" PRIx64 " (0x%" PRIx64 ") has location 3", ptr, addr);
		*next_p = p + len;
		return;
	}
	if (loc == TC_IN_USE && cl >= c->ncl) {
		finding(c, MD_FINDING_CORRUPT, ptr, "span 0x%" PRIx64 " (0x%" PRIx64 ") has size class %u of %u", ptr, addr, cl,
			c->ncl);
		*next_p = p + len;
		return;
	}
	if (loc == TC_IN_USE && cl && len != c->pages[cl]) {
		finding(c, MD_FINDING_CORRUPT, ptr,
			"span 0x%" PRIx64 " (0x%" PRIx64 ") of size class %u is %" PRIu64 " pages, the class has %" PRIu64, ptr,
			addr, cl, len, c->pages[cl]);
		*next_p = p + len;
		return;
	}
	if (loc != TC_IN_USE && cl) {
		finding(c, MD_FINDING_WARNING, ptr, "free span 0x%" PRIx64 " (0x%" PRIx64 ") keeps size class %u", ptr, addr, cl);
		cl = 0;
	}
	if (c->nspans >= MAX_SPANS) {
		c->w->truncated = true;
		*next_p = UINT64_MAX;
		return;
	}
	if (!grow((void **)&c->spans, &c->capspans, c->nspans, sizeof(*c->spans)))
		return;
	c->spans[c->nspans++] = (struct span_rec){
		.addr = addr,
		.ptr = ptr,
		.objects = u64_at(sb, TC_SPAN_OBJECTS),
		.next = u64_at(sb, TC_SPAN_NEXT),
		.pages = (uint32_t)(len > UINT32_MAX ? UINT32_MAX : len),
		.refcount = bits & 0xffff,
		.cl = (uint8_t)cl,
		.loc = (uint8_t)loc,
	};
	add_meta(c, ptr, TC_SPAN_SIZE);
	if (loc == TC_IN_USE && cl)
		c->obj_budget += len * TC_PAGE / c->size[cl];
	if (loc == TC_IN_USE)
		c->w->in_use_pages += len;
	else if (loc == TC_ON_NORMAL)
		c->w->normal_pages += len;
	else
		c->w->returned_pages += len;
	*next_p = p + len;
}

static bool range_has_mapping(struct md_target *t, uint64_t lo, uint64_t hi)
{
	size_t n = 0;
	const struct md_mapping *m = md_target_mappings(t, &n);
	size_t a = 0, b = n;
	while (a < b) { /* the first mapping ending above lo */
		size_t mid = a + (b - a) / 2;
		if (m[mid].end <= lo)
			a = mid + 1;
		else
			b = mid;
	}
	return a < n && m[a].start < hi;
}

static void scan_leaf(struct ctx *c, uint64_t i1, uint64_t leaf, uint64_t *window, uint64_t *next_p)
{
	const struct md_mapping *m = md_target_find_mapping(c->t, leaf);
	const struct md_mapping *me = md_target_find_mapping(c->t, leaf + TC_LEAF_LEN * 8 - 1);
	if ((leaf & 7) || !m || !me) {
		finding(c, MD_FINDING_CORRUPT, leaf, "page-map leaf %" PRIu64 " at 0x%" PRIx64 " is not in mapped memory", i1, leaf);
		return;
	}
	/* A leaf covers 2 GiB of address space: some mapping must lie there (this also bounds the
	 * work a root full of garbage can cause to the mappings the process has). */
	uint64_t lo = i1 << (TC_LEAF_BITS + TC_PAGE_SHIFT), hi = lo + (TC_LEAF_LEN << TC_PAGE_SHIFT);
	if (!range_has_mapping(c->t, lo, hi)) {
		finding(c, MD_FINDING_CORRUPT, leaf,
			"page-map leaf %" PRIu64 " at 0x%" PRIx64 " covers 0x%" PRIx64 "-0x%" PRIx64 ", where nothing is mapped", i1,
			leaf, lo, hi);
		return;
	}
	c->w->leaves++;
	add_meta(c, leaf, TC_LEAF_LEN * 8);
	const uint64_t per = WINDOW / 8;
	for (uint64_t w0 = 0; w0 < TC_LEAF_LEN; w0 += per) {
		uint64_t first = (i1 << TC_LEAF_BITS) + w0;
		if (*next_p >= first + per)
			continue;
		if (!rd(c, leaf + w0 * 8, window, WINDOW, "page-map leaf"))
			return;
		for (uint64_t j = 0; j < per; j++) {
			uint64_t p = first + j;
			if (p < *next_p || !window[j])
				continue;
			uint64_t ptr = window[j];
			uint8_t sb[TC_SPAN_SIZE];
			if ((ptr & 7) || !md_target_find_mapping(c->t, ptr) || !rd_quiet(c, ptr, sb, sizeof(sb))) {
				finding(c, MD_FINDING_CORRUPT, p << TC_PAGE_SHIFT,
					"page-map entry for 0x%" PRIx64 " points to 0x%" PRIx64 ", not to readable memory",
					p << TC_PAGE_SHIFT, ptr);
				continue;
			}
			/* Interior pages of small-object spans and stale entries of merged spans. */
			if (u64_at(sb, TC_SPAN_START) != p)
				continue;
			accept_span(c, p, ptr, sb, next_p);
			if (*next_p == UINT64_MAX)
				return;
		}
	}
}

/* Every object check asks which span holds an address: a direct table when the spans' address
 * range is compact enough (at most 4M pages of 8 KiB: 16 MiB), else a binary search. */
#define MAX_PAGE_TABLE ((uint64_t)1 << 22)
static void build_page_table(struct ctx *c)
{
	if (!c->nspans)
		return;
	const struct span_rec *last = &c->spans[c->nspans - 1];
	uint64_t lo = c->spans[0].addr, hi = last->addr + (uint64_t)last->pages * TC_PAGE;
	uint64_t n = (hi - lo) >> TC_PAGE_SHIFT;
	if (n > MAX_PAGE_TABLE || c->nspans >= UINT32_MAX)
		return;
	uint32_t *tab = calloc(n ? n : 1, sizeof(*tab));
	if (!tab)
		return;
	for (size_t i = 0; i < c->nspans; i++) {
		uint64_t k = (c->spans[i].addr - lo) >> TC_PAGE_SHIFT;
		for (uint64_t j = 0; j < c->spans[i].pages && k + j < n; j++)
			tab[k + j] = (uint32_t)(i + 1);
	}
	c->page_span = tab;
	c->page_lo = lo;
	c->page_n = n;
}

static struct md_error *scan_pagemap(struct ctx *c)
{
	uint64_t *window = malloc(WINDOW);
	if (!window)
		return &md_error_nomem;
	uint64_t next_p = 0;
	const uint64_t per = WINDOW / 8;
	uint64_t *roots = malloc(WINDOW);
	if (!roots) {
		free(window);
		return &md_error_nomem;
	}
	for (uint64_t r0 = 0; r0 < TC_ROOT_LEN && next_p != UINT64_MAX; r0 += per) {
		struct md_error *err = md_target_read(c->t, c->r->pageheap + TC_PH_PAGEMAP + r0 * 8, roots, WINDOW);
		if (err) {
			free(window);
			free(roots);
			return err;
		}
		for (uint64_t k = 0; k < per && next_p != UINT64_MAX; k++)
			if (roots[k])
				scan_leaf(c, r0 + k, roots[k], window, &next_p);
	}
	free(window);
	free(roots);
	/* An index by Span pointer, to check the lists' members. */
	c->byptr = malloc((c->nspans ? c->nspans : 1) * sizeof(*c->byptr));
	c->byptr_idx = malloc((c->nspans ? c->nspans : 1) * sizeof(*c->byptr_idx));
	if (!c->byptr || !c->byptr_idx)
		return &md_error_nomem;
	uint64_t *pairs = malloc((c->nspans ? c->nspans : 1) * 2 * sizeof(uint64_t));
	if (!pairs)
		return &md_error_nomem;
	for (size_t i = 0; i < c->nspans; i++) {
		pairs[2 * i] = c->spans[i].ptr;
		pairs[2 * i + 1] = i;
	}
	qsort(pairs, c->nspans, 2 * sizeof(uint64_t), cmp_pair);
	for (size_t i = 0; i < c->nspans; i++) {
		c->byptr[i] = pairs[2 * i];
		c->byptr_idx[i] = (uint32_t)pairs[2 * i + 1];
		if (i && c->byptr[i] == c->byptr[i - 1])
			finding(c, MD_FINDING_CORRUPT, c->byptr[i], "Span 0x%" PRIx64 " is the start of two spans", c->byptr[i]);
	}
	free(pairs);
	build_page_table(c);
	return NULL;
}

/* ---- page-heap free lists and large sets -------------------------------------------------- */

static void walk_free_lists(struct ctx *c)
{
	for (unsigned i = 0; i < TC_MAX_PAGES; i++) {
		for (unsigned ret = 0; ret < 2; ret++) {
			uint64_t head = c->r->pageheap + TC_PH_FREE + (uint64_t)i * 96 + ret * 48;
			uint64_t x = u64_at(c->tail, head - c->r->pageheap - TC_PH_TAIL + TC_SPAN_NEXT);
			unsigned want = ret ? TC_ON_RETURNED : TC_ON_NORMAL;
			for (size_t steps = 0; x != head; steps++) {
				const struct span_rec *s = span_by_ptr(c, x);
				if (steps > c->nspans) {
					finding(c, MD_FINDING_CORRUPT, x,
						"page heap free_[%u].%s loops (more than %zu spans, at 0x%" PRIx64 ")", i,
						ret ? "returned" : "normal", c->nspans, x);
					break;
				}
				if (!s) {
					finding(c, MD_FINDING_CORRUPT, x,
						"page heap free_[%u].%s: 0x%" PRIx64 " is not a span of the page map", i,
						ret ? "returned" : "normal", x);
					break;
				}
				if (s->loc != want || s->pages != i + 1)
					finding(c, MD_FINDING_CORRUPT, x,
						"page heap free_[%u].%s holds span 0x%" PRIx64 " of %u pages at location %u", i,
						ret ? "returned" : "normal", x, s->pages, s->loc);
				else if (ret)
					c->w->list_returned_pages += s->pages;
				else
					c->w->list_normal_pages += s->pages;
				x = s->next;
			}
		}
	}
}

static void walk_large_set(struct ctx *c, uint64_t set, bool returned)
{
	size_t off = (size_t)(set - c->r->pageheap - TC_PH_TAIL);
	uint64_t root = u64_at(c->tail, off + 16), count = u64_at(c->tail, off + 40);
	const char *name = returned ? "large_returned_" : "large_normal_";
	if (count > c->nspans) {
		finding(c, MD_FINDING_CORRUPT, set, "page heap %s says %" PRIu64 " nodes, the page map has %zu spans", name, count,
			c->nspans);
		count = c->nspans;
	}
	uint64_t stack[128];
	size_t depth = 0, seen = 0;
	if (root)
		stack[depth++] = root;
	while (depth) {
		uint64_t n = stack[--depth];
		if (++seen > count + 1) {
			finding(c, MD_FINDING_CORRUPT, n, "page heap %s has more nodes than its count %" PRIu64 " (a loop?)", name,
				count);
			return;
		}
		uint8_t nb[48];
		if ((n & 7) || !rd(c, n, nb, sizeof(nb), "large-set node"))
			return;
		add_meta(c, n, 48);
		c->w->large_set_nodes++;
		uint64_t sp = u64_at(nb, 32), len = u64_at(nb, 40);
		const struct span_rec *s = span_by_ptr(c, sp);
		unsigned want = returned ? TC_ON_RETURNED : TC_ON_NORMAL;
		if (!s || s->loc != want || s->pages != len || len <= TC_MAX_PAGES)
			finding(c, MD_FINDING_CORRUPT, n,
				"page heap %s node 0x%" PRIx64 " names span 0x%" PRIx64 " of %" PRIu64 " pages, not a large %s span",
				name, n, sp, len, returned ? "returned" : "normal");
		else if (returned)
			c->w->list_returned_pages += len;
		else
			c->w->list_normal_pages += len;
		for (size_t k = 16; k <= 24; k += 8) {
			uint64_t child = u64_at(nb, k);
			if (!child)
				continue;
			if (depth == sizeof(stack) / sizeof(stack[0])) {
				finding(c, MD_FINDING_CORRUPT, n, "page heap %s is deeper than a red-black tree can be", name);
				return;
			}
			stack[depth++] = child;
		}
	}
	if (seen != count)
		finding(c, MD_FINDING_WARNING, set, "page heap %s: %zu nodes reached, count says %" PRIu64, name, seen, count);
}

/* ---- central free lists and transfer caches ------------------------------------------------ */

#define MAX_LINKS (1u << 22) /* 64 MiB of links at most: beyond, free-list links are read */
#define STREAM_WINDOW RA_WINDOW_MAX

/* The first word of object o: from the link index (the entries of o's span), else read. */
static bool next_of(struct ctx *c, uint64_t o, uint64_t *next_ret)
{
	const struct span_rec *s = span_at(c, o);
	size_t lo = s ? s->link_first : 0, hi = s ? (size_t)s->link_first + s->nlinks : 0;
	size_t end = hi;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->links[mid].addr < o)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < end && c->links[lo].addr == o) {
		*next_ret = c->links[lo].next;
		return true;
	}
	/* Mostly the NULL that ends a list: a probe, not a 256 KiB cache block for 8 bytes. */
	struct md_error *err = md_target_read_probe(c->t, o, next_ret, 8);
	if (!err)
		return true;
	finding(c, MD_FINDING_CORRUPT, o, "free object at 0x%" PRIx64 " cannot be read: %s", o, err->message);
	md_error_destroy(err);
	return false;
}

static void walk_span_chain(struct ctx *c, struct span_rec *s, const uint8_t *data);

static void index_span(struct ctx *c, struct span_rec *s, const uint8_t *data, uint64_t lo, uint64_t hi)
{
	uint64_t sz = c->size[s->cl], n = (uint64_t)s->pages * TC_PAGE / sz;
	if (s->objects)
		walk_span_chain(c, s, data);
	s->link_first = (uint32_t)c->nlinks;
	for (uint64_t k = 0; k < n && c->nlinks < MAX_LINKS; k++) {
		uint64_t w = u64_at(data, (size_t)(k * sz));
		if (!w || (w & 7) || w < lo || w >= hi || !object_ok(c, w, s->cl, NULL))
			continue;
		if (!grow((void **)&c->links, &c->caplinks, c->nlinks, sizeof(*c->links)))
			return;
		c->links[c->nlinks++] = (struct link){s->addr + k * sz, w};
		s->nlinks++;
	}
}

/* The windows that hold every small in-use span once, in address order: about STREAM_WINDOW
 * each, ending at the end of the last span that fits (a span that starts a window is read
 * whole), never past the span's mapping. NULL when there is none or no memory. */
static struct ra_window *plan_windows(struct ctx *c, size_t *n_ret)
{
	struct ra_window *win = NULL;
	size_t n = 0, cap = 0;
	uint64_t limit = 0;
	for (size_t i = 0; i < c->nspans; i++) {
		const struct span_rec *s = &c->spans[i];
		uint64_t end = s->addr + (uint64_t)s->pages * TC_PAGE;
		if (s->loc != TC_IN_USE || !s->cl)
			continue;
		if (n && s->addr >= win[n - 1].hi && end <= limit) {
			win[n - 1].hi = end;
			win[n - 1].end = i + 1;
			continue;
		}
		const struct md_mapping *m = md_target_find_mapping(c->t, s->addr);
		if (!m || end > m->end || end - s->addr > RA_WINDOW_MAX)
			continue; /* not indexed: its free list is followed by reads (next_of) */
		if (!grow((void **)&win, &cap, n, sizeof(*win))) {
			free(win);
			return NULL;
		}
		limit = s->addr + STREAM_WINDOW < m->end ? s->addr + STREAM_WINDOW : m->end;
		if (limit < end)
			limit = end;
		win[n++] = (struct ra_window){ .lo = s->addr, .hi = end, .first = i, .end = i + 1 };
	}
	*n_ret = n;
	return win;
}

/* Stream every small in-use span once (plugins/common/read_ahead.c reads the windows ahead on
 * its own thread): following a free list is then a lookup in the link index, not a read of a
 * random block. */
static void index_links(struct ctx *c)
{
	if (!c->nspans)
		return;
	uint64_t lo = c->spans[0].addr;
	uint64_t hi = c->spans[c->nspans - 1].addr + (uint64_t)c->spans[c->nspans - 1].pages * TC_PAGE;
	size_t nwin = 0;
	struct ra_window *win = plan_windows(c, &nwin);
	struct ra_stream *st = win ? ra_start(c->t, win, nwin) : NULL;
	for (size_t k = 0; st && k < nwin && c->nlinks < MAX_LINKS; k++) {
		const uint64_t *bad;
		const uint8_t *data = ra_get(st, k, &bad);
		for (size_t i = win[k].first; i < win[k].end && c->nlinks < MAX_LINKS; i++) {
			struct span_rec *s = &c->spans[i];
			uint64_t off = s->addr - win[k].lo, len = (uint64_t)s->pages * TC_PAGE;
			if (s->loc != TC_IN_USE || !s->cl || ra_pages_bad(bad, off, off + len))
				continue;
			index_span(c, s, data + off, lo, hi);
		}
	}
	ra_finish(st);
	free(win);
}

static void add_cursor(struct ctx *c, uint64_t head, uint32_t count, unsigned cl, enum obj_kind kind, uint64_t owner,
		       uint32_t cache)
{
	if (!head && !count)
		return;
	if (!grow((void **)&c->cur, &c->capcur, c->ncur, sizeof(*c->cur)))
		return;
	c->cur[c->ncur++] = (struct cursor){.o = head, .owner = owner, .left = count, .cache = cache, .power = 1,
					    .cl = (uint16_t)cl, .kind = (uint8_t)kind};
}

/* One step of a list: the object at k->o, then its link. */
static void cursor_step(struct ctx *c, struct cursor *k, uint64_t *cache_bytes)
{
	bool thread = k->kind == OBJ_THREAD;
	if (!k->o) {
		if (k->left && thread)
			finding(c, MD_FINDING_WARNING, k->owner, "thread cache 0x%" PRIx64 " list %u: length_ %u, %u objects on it",
				k->owner, k->cl, k->seen + k->left, k->seen);
		else if (k->left)
			finding(c, MD_FINDING_CORRUPT, c->r->central + (uint64_t)k->cl * TC_CFL_STRIDE,
				"transfer cache %u slot %" PRIu64 ": the chain ends after %u of %u objects", k->cl, k->owner, k->seen,
				k->seen + k->left);
		k->done = true;
		return;
	}
	if (!k->left) {
		/* A thread-cache list ends in NULL right after length_ objects (linked_list.h). */
		if (!object_ok(c, k->o, k->cl, NULL)) {
			finding(c, MD_FINDING_CORRUPT, k->o,
				"thread cache 0x%" PRIx64 " list %u: 0x%" PRIx64 " is not an object of the class", k->owner, k->cl,
				k->o);
			c->w->bad_objects++;
		} else {
			finding(c, MD_FINDING_WARNING, k->owner, "thread cache 0x%" PRIx64 " list %u is longer than its length_ %u",
				k->owner, k->cl, k->seen);
		}
		k->done = true;
		return;
	}
	if (!object_ok(c, k->o, k->cl, NULL)) {
		if (thread)
			finding(c, MD_FINDING_CORRUPT, k->o,
				"thread cache 0x%" PRIx64 " list %u: 0x%" PRIx64 " is not an object of the class", k->owner, k->cl,
				k->o);
		else
			finding(c, MD_FINDING_CORRUPT, k->o,
				"transfer cache %u slot %" PRIu64 ": 0x%" PRIx64 " is not an object of size class %u", k->cl, k->owner,
				k->o, k->cl);
		c->w->bad_objects++;
		k->done = true;
		return;
	}
	add_obj(c, k->o, (enum obj_kind)k->kind);
	if (thread && cache_bytes)
		cache_bytes[k->cache] += c->size[k->cl];
	k->seen++;
	k->left--;
	if (!thread && !k->left) { /* a transfer chain's tail link is not part of it */
		k->done = true;
		return;
	}
	if (!next_of(c, k->o, &k->o) || c->over_budget) {
		k->done = true;
		return;
	}
	if (k->o && k->o == k->tortoise) {
		if (thread)
			finding(c, MD_FINDING_CORRUPT, k->o, "thread cache 0x%" PRIx64 " list %u loops at 0x%" PRIx64, k->owner,
				k->cl, k->o);
		else
			finding(c, MD_FINDING_CORRUPT, k->o, "transfer cache %u slot %" PRIu64 " loops at 0x%" PRIx64, k->cl,
				k->owner, k->o);
		k->done = true;
		return;
	}
	if (++k->lam == k->power) {
		k->tortoise = k->o;
		k->power = k->power < (1u << 31) ? k->power * 2 : k->power;
		k->lam = 0;
	}
}

/* Each list to its end (bounded: every step consumes one of the objects its container claims,
 * and one more step checks the end). */
static void run_cursors(struct ctx *c, uint64_t *cache_bytes)
{
	for (size_t i = 0; i < c->ncur && !md_target_interrupted(c->t); i++)
		while (!c->cur[i].done)
			cursor_step(c, &c->cur[i], cache_bytes);
}

/* A span's own free list (the central cache's objects), inside the span: from the streamed
 * bytes (data) when given, else through next_of. */
static uint64_t follow_span_list(struct ctx *c, const struct span_rec *s, const uint8_t *data)
{
	uint64_t sz = c->size[s->cl], len = (uint64_t)s->pages * TC_PAGE, cap = len / sz, count = 0;
	uint64_t o = s->objects;
	for (uint64_t k = 0; o && k <= cap; k++) {
		if (k == cap || o < s->addr || (o - s->addr) % sz || (o - s->addr) / sz >= cap) {
			finding(c, MD_FINDING_CORRUPT, o,
				"size class %u: span 0x%" PRIx64 "'s free list reaches 0x%" PRIx64 ", not an object of the span",
				s->cl, s->ptr, o);
			c->w->bad_objects++;
			break;
		}
		add_obj(c, o, OBJ_CENTRAL);
		count++;
		if (data)
			o = u64_at(data, (size_t)(o - s->addr));
		else if (!next_of(c, o, &o))
			break;
	}
	return count;
}

static void walk_span_chain(struct ctx *c, struct span_rec *s, const uint8_t *data)
{
	s->chain = (uint32_t)follow_span_list(c, s, data);
	s->chained = true;
}

/* In the pause: every central free list's bytes (kept for walk_central_lists), tcmalloc's
 * central and transfer figures, the transfer slots as cursors, and the free lists of the small
 * spans the link index did not stream (read, in address order). */
static void walk_central(struct ctx *c)
{
	for (unsigned cl = 1; cl < c->ncl; cl++) {
		uint64_t base = c->r->central + (uint64_t)cl * TC_CFL_STRIDE;
		uint8_t *b = c->cfl + (size_t)cl * TC_CFL_SIZE;
		if (!rd(c, base, b, TC_CFL_SIZE, "central free list"))
			continue;
		uint64_t num_spans = u64_at(b, TC_CFL_NUM_SPANS), counter = u64_at(b, TC_CFL_COUNTER);
		int32_t used = (int32_t)u32_at(b, TC_CFL_USED_SLOTS);
		uint64_t sz = c->size[cl];
		/* MallocExtension's figures, from the counters (tcmalloc.cc ExtractStats). */
		c->w->st.central_bytes += sz * counter + num_spans * ((c->pages[cl] * TC_PAGE) % sz);
		c->w->st.transfer_bytes += sz * (uint64_t)(used > 0 ? used : 0) * c->move[cl];
		if (u64_at(b, TC_CFL_SIZE_CLASS) != cl) {
			finding(c, MD_FINDING_CORRUPT, base, "central free list %u says size class %" PRIu64, cl,
				u64_at(b, TC_CFL_SIZE_CLASS));
			continue;
		}
		c->cfl_ok[cl] = true;
		if (used < 0 || used > TC_CFL_NSLOTS) {
			finding(c, MD_FINDING_CORRUPT, base, "transfer cache %u has %d used slots of %d", cl, used, TC_CFL_NSLOTS);
			continue;
		}
		for (int32_t slot = 0; slot < used; slot++)
			add_cursor(c, u64_at(b, TC_CFL_SLOTS + 16 * (size_t)slot), (uint32_t)c->move[cl], cl, OBJ_TRANSFER,
				   (uint64_t)slot, 0);
	}
	/* A span's own free list holds the central cache's objects (the stream followed them). */
	for (size_t i = 0; i < c->nspans; i++) {
		struct span_rec *s = &c->spans[i];
		if (s->loc == TC_IN_USE && s->cl && s->objects && !s->chained)
			walk_span_chain(c, s, NULL);
	}
}

/* After the pause, from the bytes kept: each class's non-empty span list against the spans of
 * the page map, and its free objects against counter_. */
static void walk_central_lists(struct ctx *c)
{
	for (unsigned cl = 1; cl < c->ncl; cl++) {
		if (!c->cfl_ok[cl])
			continue;
		uint64_t base = c->r->central + (uint64_t)cl * TC_CFL_STRIDE;
		const uint8_t *b = c->cfl + (size_t)cl * TC_CFL_SIZE;
		uint64_t num_spans = u64_at(b, TC_CFL_NUM_SPANS), counter = u64_at(b, TC_CFL_COUNTER), objects = 0;
		uint64_t head = base + TC_CFL_NONEMPTY, x = u64_at(b, TC_CFL_NONEMPTY + TC_SPAN_NEXT);
		for (uint64_t steps = 0; x != head; steps++) {
			const struct span_rec *s = span_by_ptr(c, x);
			if (!s || steps > num_spans || steps > c->nspans || s->loc != TC_IN_USE || s->cl != cl) {
				finding(c, MD_FINDING_CORRUPT, x,
					"central free list %u: non-empty list reaches 0x%" PRIx64 ", not a span of the class", cl, x);
				break;
			}
			objects += s->chain;
			x = s->next;
		}
		if (objects != counter)
			finding(c, MD_FINDING_WARNING, base,
				"central free list %u: %" PRIu64 " free objects in its spans, counter_ says %" PRIu64, cl, objects,
				counter);
	}
}

/* ---- thread caches -------------------------------------------------------------------------- */

/* The caches on thread_heaps_ (their lists become cursors); their addresses and size_ returned. */
static void walk_thread_caches(struct ctx *c, uint64_t **caches_ret, int32_t **sizes_ret, size_t *ncaches_ret)
{
	uint64_t h = 0, prev = 0;
	uint64_t *caches = NULL;
	int32_t *sizes = NULL;
	size_t ncaches = 0, cap = 0, capsz = 0;
	*caches_ret = NULL;
	*sizes_ret = NULL;
	*ncaches_ret = 0;
	if (!rd(c, c->r->thread_heaps, &h, 8, "ThreadCache::thread_heaps_"))
		return;
	uint8_t *b = malloc(TC_TC_SIZE);
	if (!b)
		return;
	while (h) {
		if (ncaches >= MAX_THREAD_CACHES) {
			finding(c, MD_FINDING_CORRUPT, h, "more than %u thread caches: a loop in thread_heaps_?", MAX_THREAD_CACHES);
			break;
		}
		if ((h & 7) || !rd(c, h, b, TC_TC_SIZE, "thread cache"))
			break;
		bool loop = false;
		for (size_t k = 0; k < ncaches && !loop; k += 1 + ncaches / 64) /* cheap; the bound stops the rest */
			loop = caches[k] == h;
		if (loop) {
			finding(c, MD_FINDING_CORRUPT, h, "thread_heaps_ loops back to 0x%" PRIx64, h);
			break;
		}
		if (u64_at(b, TC_TC_PREV) != prev)
			finding(c, MD_FINDING_CORRUPT, h, "thread cache 0x%" PRIx64 ": prev_ is 0x%" PRIx64 ", not 0x%" PRIx64, h,
				u64_at(b, TC_TC_PREV), prev);
		if (!grow((void **)&caches, &cap, ncaches, sizeof(*caches)) ||
		    !grow((void **)&sizes, &capsz, ncaches, sizeof(*sizes)))
			break;
		int32_t size = (int32_t)u32_at(b, TC_TC_BYTES);
		caches[ncaches] = h;
		sizes[ncaches] = size;
		add_meta(c, h, TC_TC_SIZE);
		c->w->st.thread_bytes += (uint64_t)(int64_t)size;
		for (unsigned cl = 1; cl < c->ncl; cl++) {
			size_t lo = (size_t)cl * TC_TC_LIST_STRIDE;
			add_cursor(c, u64_at(b, lo), u32_at(b, lo + 8), cl, OBJ_THREAD, h, (uint32_t)ncaches);
		}
		ncaches++;
		c->w->thread_caches++;
		prev = h;
		h = u64_at(b, TC_TC_NEXT);
	}
	free(b);
	*caches_ret = caches;
	*sizes_ret = sizes;
	*ncaches_ret = ncaches;
}

/* Which thread owns which cache: ThreadLocalData.heap (+8) in each thread's static TLS. */
static void map_threads(struct ctx *c, const uint64_t *caches, size_t ncaches)
{
	if (!c->r->has_tls)
		return;
	size_t n = 0;
	const struct md_thread *th = md_target_threads(c->t, &n);
	for (size_t i = 0; i < n; i++) {
		uint64_t a = 0, heap = 0;
		struct md_error *err = md_target_tls_address(c->t, c->r->module, &th[i], c->r->tls_offset + 8, &a);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		if (!rd_quiet(c, a, &heap, 8) || !heap)
			continue;
		bool found = false;
		for (size_t k = 0; k < ncaches && !found; k++)
			found = caches[k] == heap;
		if (found)
			c->w->thread_caches_mapped++;
		else
			finding(c, MD_FINDING_WARNING, heap, "thread %d's TLS names thread cache 0x%" PRIx64 ", not on thread_heaps_",
				(int)th[i].tid, heap);
	}
}

/* ---- emission ---------------------------------------------------------------------------- */

static void note_region(struct ctx *c, uint64_t start, uint64_t end)
{
	/* Spans come in address order: mostly inside the region noted last. */
	struct region_acc *last = c->nregions ? &c->regions[c->last_region] : NULL;
	if (last && start >= last->m->start && end <= last->m->end) {
		if (start < last->lo)
			last->lo = start;
		if (end > last->hi)
			last->hi = end;
		return;
	}
	const struct md_mapping *m = md_target_find_mapping(c->t, start);
	if (!m)
		return;
	for (size_t i = 0; i < c->nregions; i++)
		if (c->regions[i].m == m) {
			if (start < c->regions[i].lo)
				c->regions[i].lo = start;
			if (end > c->regions[i].hi)
				c->regions[i].hi = end < m->end ? end : m->end;
			c->last_region = i;
			return;
		}
	if (c->nregions < sizeof(c->regions) / sizeof(c->regions[0])) {
		c->last_region = c->nregions;
		c->regions[c->nregions++] = (struct region_acc){m, start, end < m->end ? end : m->end};
	}
}

static void flush(struct ctx *c)
{
	if (!c->pending)
		return;
	md_sink_span(c->sink, c->pk, c->ps, c->pe, -1);
	note_region(c, c->ps, c->pe);
	c->pending = false;
}

static void emit(struct ctx *c, enum md_span_kind kind, uint64_t start, uint64_t end)
{
	if (end <= start)
		return;
	if (c->pending && c->pk == kind && c->pe == start) {
		c->pe = end;
		return;
	}
	flush(c);
	c->pending = true;
	c->pk = kind;
	c->ps = start;
	c->pe = end;
}

static void emit_releasable(struct ctx *c, uint64_t start, uint64_t end)
{
	if (c->rle == start) {
		c->rle = end;
		return;
	}
	if (c->rle > c->rls)
		md_sink_span(c->sink, MD_SPAN_RELEASABLE, c->rls, c->rle, -1);
	c->rls = start;
	c->rle = end;
}

static enum md_span_kind kind_of(uint64_t tagged)
{
	return (tagged & 7) == OBJ_THREAD ? MD_SPAN_CACHED : MD_SPAN_FREE;
}

static void emit_small(struct ctx *c, const struct span_rec *s, size_t *cursor)
{
	uint64_t sz = c->size[s->cl], n = (uint64_t)s->pages * TC_PAGE / sz;
	uint64_t end = s->addr + n * sz, at = s->addr;
	while (*cursor < c->nobjs && (c->objs[*cursor] & ~(uint64_t)7) < s->addr)
		(*cursor)++;
	for (; *cursor < c->nobjs && (c->objs[*cursor] & ~(uint64_t)7) < end; (*cursor)++) {
		uint64_t o = c->objs[*cursor] & ~(uint64_t)7;
		emit(c, MD_SPAN_LIVE, at, o);
		c->w->live_bytes += o - at;
		emit(c, kind_of(c->objs[*cursor]), o, o + sz);
		switch (c->objs[*cursor] & 7) {
		case OBJ_CENTRAL:
			c->w->central_objs_bytes += sz;
			break;
		case OBJ_TRANSFER:
			c->w->transfer_objs_bytes += sz;
			break;
		default:
			c->w->thread_objs_bytes += sz;
		}
		at = o + sz;
	}
	emit(c, MD_SPAN_LIVE, at, end);
	c->w->live_bytes += end - at;
	/* The span's tail that holds no object: tcmalloc counts it in central_cache_free_bytes. */
	emit(c, MD_SPAN_FREE, end, s->addr + (uint64_t)s->pages * TC_PAGE);
	c->w->tail_bytes += s->addr + (uint64_t)s->pages * TC_PAGE - end;
}

static uint64_t resident_bytes(struct ctx *c, uint64_t start, uint64_t end)
{
	uint64_t n = 0;
	for (uint64_t p = start; p < end; p += MD_PAGE_SIZE)
		if (MD_PAGE_COUNTED(md_target_page_bits(c->t, p)))
			n += MD_PAGE_SIZE;
	return n;
}

/* Sort tagged object addresses by address (the tag in the low 3 bits is not a key): an LSD radix
 * sort, 11 bits a pass over the bits above the tag up to the highest one set (4 passes for
 * user-space addresses); qsort when the scratch array cannot be had. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void sort_objects(uint64_t *v, size_t n)
{
	enum { BITS = 11, BUCKETS = 1 << BITS };
	uint64_t *tmp = n > 4096 ? malloc(n * sizeof(*tmp)) : NULL;
	if (!tmp) {
		if (n)
			qsort(v, n, sizeof(*v), cmp_u64);
		return;
	}
	uint64_t any = 0;
	for (size_t i = 0; i < n; i++)
		any |= v[i];
	size_t count[BUCKETS];
	uint64_t *src = v, *dst = tmp;
	for (unsigned shift = 3; shift < 64 && (any >> shift); shift += BITS) {
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[(src[i] >> shift) & (BUCKETS - 1)]++;
		size_t sum = 0;
		for (size_t b = 0; b < BUCKETS; b++) {
			size_t k = count[b];
			count[b] = sum;
			sum += k;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & (BUCKETS - 1)]++] = src[i];
		uint64_t *x = src;
		src = dst;
		dst = x;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
	free(tmp);
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static void emit_all(struct ctx *c)
{
	/* Free objects in address order; one object on two lists is a broken heap. */
	sort_objects(c->objs, c->nobjs);
	size_t kept = 0;
	for (size_t i = 0; i < c->nobjs; i++) {
		if (kept && (c->objs[kept - 1] & ~(uint64_t)7) == (c->objs[i] & ~(uint64_t)7)) {
			finding(c, MD_FINDING_CORRUPT, c->objs[i] & ~(uint64_t)7, "object 0x%" PRIx64 " is on two free lists",
				c->objs[i] & ~(uint64_t)7);
			continue;
		}
		c->objs[kept++] = c->objs[i];
	}
	c->nobjs = kept;
	c->w->free_objects = kept;
	size_t cursor = 0;
	for (size_t i = 0; i < c->nspans; i++) {
		const struct span_rec *s = &c->spans[i];
		uint64_t end = s->addr + (uint64_t)s->pages * TC_PAGE;
		if (s->loc == TC_IN_USE && s->cl) {
			c->w->small_spans++;
			emit_small(c, s, &cursor);
		} else if (s->loc == TC_IN_USE) {
			c->w->large_spans++;
			emit(c, MD_SPAN_LIVE, s->addr, end);
			c->w->live_bytes += end - s->addr;
		} else if (s->loc == TC_ON_NORMAL) {
			emit(c, MD_SPAN_FREE, s->addr, end);
			emit_releasable(c, s->addr, end);
			c->w->normal_bytes += end - s->addr;
		} else {
			emit(c, MD_SPAN_FREE, s->addr, end);
			c->w->returned_bytes += end - s->addr;
			uint64_t res = resident_bytes(c, s->addr, end);
			c->w->returned_resident_bytes += res;
		}
	}
	flush(c);
	emit_releasable(c, 0, 0);
	if (c->w->returned_resident_bytes)
		finding(c, MD_FINDING_INFO, 0,
			"%" PRIu64 " bytes of returned (released) spans are resident again: written after the release?",
			c->w->returned_resident_bytes);
	/* Structures: static_vars.o's .bss (page heap with the page-map root, central free lists,
	 * size map, up to the page-heap lock), spans, leaves, large-set nodes, thread caches. */
	add_meta(c, c->r->pageheap, c->r->pageheap_lock + 4 - c->r->pageheap);
	if (c->nmeta)
		qsort(c->meta, c->nmeta, sizeof(*c->meta), cmp_range);
	for (size_t i = 0; i < c->nmeta;) {
		uint64_t s = c->meta[i].start, e = c->meta[i].end;
		size_t j = i + 1;
		while (j < c->nmeta && c->meta[j].start <= e) {
			if (c->meta[j].end > e)
				e = c->meta[j].end;
			j++;
		}
		emit(c, MD_SPAN_METADATA, s, e);
		i = j;
	}
	flush(c);
	/* One region per mapping, from the first to the last byte tcmalloc was seen to use there. */
	for (size_t i = 0; i < c->nregions; i++)
		md_sink_region(c->sink, c->regions[i].lo, c->regions[i].hi, -1,
			       c->regions[i].m->kind == MD_MAP_HEAP ? "tcmalloc sbrk heap" : "tcmalloc heap");
}

/* ---- the walk ---------------------------------------------------------------------------- */

static void free_ctx(struct ctx *c);

static struct md_error *stop_if_interrupted(const struct md_target *t)
{
	return md_target_interrupted(t) ? md_error_create(MD_ERR_INTERRUPTED, "interrupted") : NULL;
}

struct md_error *tc_walk_run(struct md_target *t, const struct tc_roots *r, struct md_sink *sink, bool inconsistent,
			     struct tc_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->inconsistent = inconsistent;
	struct ctx *c = calloc(1, sizeof(*c));
	if (!c)
		return &md_error_nomem;
	c->t = t;
	c->sink = sink;
	c->r = r;
	c->w = w;
	struct md_error *err = NULL;
	uint8_t inited = 0;
	if ((err = md_target_read(t, r->inited, &inited, 1)))
		goto out;
	if (!inited) {
		md_sink_finding(sink, MD_FINDING_INFO, 0, -1, "tcmalloc is loaded but not initialised: no heap yet");
		w->done = true;
		w->counters_match = true;
		goto out;
	}
	if ((err = read_sizemap(c)))
		goto out;
	c->tail = malloc(TC_PH_SIZE - TC_PH_TAIL);
	c->cfl = malloc((size_t)TC_MAX_CLASSES * TC_CFL_SIZE);
	if (!c->tail || !c->cfl) {
		err = &md_error_nomem;
		goto out;
	}
	if ((err = md_target_read(t, r->pageheap + TC_PH_TAIL, c->tail, TC_PH_SIZE - TC_PH_TAIL)))
		goto out;
	const uint8_t *stats = c->tail + (TC_PH_STATS - TC_PH_TAIL);
	w->st.system_bytes = u64_at(stats, 0);
	w->st.free_bytes = u64_at(stats, 8);
	w->st.unmapped_bytes = u64_at(stats, 16);
	w->st.committed_bytes = u64_at(stats, 24);
	/* Interrupted (memdissect must let the target go): the reads fail from then on, and the walk
	 * stops at the next phase rather than turn each failed read into a finding. */
	if ((err = scan_pagemap(c)) || (err = stop_if_interrupted(t)))
		goto out;
	index_links(c);
	if ((err = stop_if_interrupted(t)))
		goto out;
	walk_free_lists(c);
	walk_large_set(c, r->pageheap + TC_PH_LARGE_NORMAL, false);
	walk_large_set(c, r->pageheap + TC_PH_LARGE_RETURNED, true);
	walk_central(c);
	if ((err = stop_if_interrupted(t)))
		goto out;
	uint64_t *caches = NULL;
	int32_t *sizes = NULL;
	size_t ncaches = 0;
	walk_thread_caches(c, &caches, &sizes, &ncaches);
	uint64_t *cache_bytes = calloc(ncaches ? ncaches : 1, sizeof(*cache_bytes));
	run_cursors(c, cache_bytes);
	if ((err = stop_if_interrupted(t))) {
		free(cache_bytes);
		free(caches);
		free(sizes);
		goto out;
	}
	for (size_t i = 0; cache_bytes && i < ncaches; i++)
		if (cache_bytes[i] != (uint64_t)(int64_t)sizes[i])
			finding(c, MD_FINDING_WARNING, caches[i], "thread cache 0x%" PRIx64 ": size_ %d, its lists hold %" PRIu64 " bytes",
				caches[i], sizes[i], cache_bytes[i]);
	map_threads(c, caches, ncaches);
	free(cache_bytes);
	free(caches);
	free(sizes);
	const struct tc_stats *st = &w->st;
	w->st.current_allocated = st->system_bytes - st->thread_bytes - st->central_bytes - st->transfer_bytes -
				  st->free_bytes - st->unmapped_bytes;
	/* Everything is read: the rest (ordering the free objects, the spans, the counter checks)
	 * needs no stopped target and is done by tc_walk_finish, after the pause. */
	w->deferred = c;
	return NULL;
out:
	free_ctx(c);
	return err;
}

void tc_walk_finish(struct md_sink *sink, struct tc_walk *w)
{
	struct ctx *c = w->deferred;
	if (!c)
		return;
	w->deferred = NULL;
	c->sink = sink;
	const struct tc_roots *r = c->r;
	const struct tc_stats *st = &w->st;
	walk_central_lists(c);
	emit_all(c);
	/* The walk against tcmalloc's own counters. */
	w->counters_match = true;
	uint64_t pm_bytes = (w->in_use_pages + w->normal_pages + w->returned_pages) * TC_PAGE;
	if (!w->truncated && pm_bytes != st->system_bytes) {
		finding(c, MD_FINDING_WARNING, r->pageheap,
			"the page map's spans hold %" PRIu64 " bytes, the page heap's system_bytes says %" PRIu64, pm_bytes,
			st->system_bytes);
		w->counters_match = false;
	}
	if (w->normal_pages * TC_PAGE != st->free_bytes || w->returned_pages * TC_PAGE != st->unmapped_bytes ||
	    w->list_normal_pages != w->normal_pages || w->list_returned_pages != w->returned_pages) {
		finding(c, MD_FINDING_WARNING, r->pageheap,
			"free spans: page map %" PRIu64 " normal + %" PRIu64 " returned pages, lists %" PRIu64 " + %" PRIu64
			", stats %" PRIu64 " + %" PRIu64 " bytes",
			w->normal_pages, w->returned_pages, w->list_normal_pages, w->list_returned_pages, st->free_bytes,
			st->unmapped_bytes);
		w->counters_match = false;
	}
	if (w->live_bytes != st->current_allocated)
		w->counters_match = false;
	w->done = true;
	free_ctx(c);
}

void tc_walk_deinit(struct tc_walk *w)
{
	free_ctx(w->deferred);
	w->deferred = NULL;
}

static void free_ctx(struct ctx *c)
{
	if (!c)
		return;
	free(c->spans);
	free(c->byptr);
	free(c->page_span);
	free(c->byptr_idx);
	free(c->objs);
	free(c->meta);
	free(c->tail);
	free(c->cfl);
	free(c->cur);
	free(c->links);
	free(c);
}
