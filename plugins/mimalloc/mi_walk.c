/* The mimalloc 2.0.9 walk: heaps from every thread's TLS, segments from the segment map, the
 * heaps' page queues and the abandoned lists (their union: the map misses segments above
 * 20 TiB), every span of every segment, every block of every page; the segment cache; and the
 * prediction of what mi_collect(true) on the main thread gives back. Target memory is hostile:
 * every list is bounded by the page's capacity or a fixed count, every pointer is checked
 * against its page before it is followed, a broken structure is a finding. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mi_walk_internal.h"
#include "read_ahead.h"

#define MAX_FINDINGS 200
#define MAX_SEGMENTS 65536
#define MAX_ABANDONED 100000
#define MAX_DELAYED 10000000

struct ctx {
	struct md_target *t;
	const struct mi_roots *r;
	struct md_sink *sink;
	struct mi_walk *w;
	uint64_t *segs;
	size_t n_segs, cap_segs;
	uint64_t *delayed;
	size_t n_delayed, cap_delayed;
	uint64_t main_heap;
	uint64_t *main_pages; /* the main heap's pages in queue order */
	size_t n_main_pages, cap_main_pages;
	struct mi_seg *seginfo;
	size_t n_seginfo;
	uint8_t *bits;
	size_t bits_cap;
	unsigned stride, shift; /* sizeof(mi_page_t), and how far its fields from +40 moved */
	/* The block areas of a run of adjacent pages with free lists, read at once: the lists are
	 * followed in it. 1 MiB: it stays in the CPU cache while the lists are chased (4 MiB cost a
	 * third more parsing time). Read ahead by plugins/common/read_ahead.c (every segment header
	 * and these windows, in address order, while the segments before are walked); in own_win
	 * when the stream could not start. */
	const uint8_t *win;
	const uint64_t *win_bad; /* the stream's bad pages of win, NULL: all read */
	uint64_t win_start, win_end;
	uint8_t *own_win;
	struct ra_stream *st; /* while it runs, target memory is read only through it (c_read) */
	const struct ra_window *plan;
	size_t n_plan, next_plan;
};

#define MI_WINDOW ((uint64_t)1 << 20)

/* A page's field at a release-build offset (those from +40 on move by the keys). */
#define PGOFF(c, off) ((off) < MI_PG_KEYS ? (size_t)(off) : (size_t)(off) + (c)->shift)


#define FINDING(c, sev, addr, group, ...)                                                   \
	do {                                                                                \
		(c)->w->findings++;                                                         \
		if ((c)->sink && md_sink_finding_count((c)->sink) < MAX_FINDINGS)           \
			md_sink_finding((c)->sink, (sev), (addr), (group), __VA_ARGS__);    \
	} while (0)

/* A count that disagrees with the lists is damage at a safe point, maybe a race without one. */
#define RACY(c) ((c)->w->unsafe_point ? MD_FINDING_WARNING : MD_FINDING_CORRUPT)

static bool push(uint64_t **arr, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		uint64_t *na = realloc(*arr, nc * sizeof(*na));
		if (!na)
			return false;
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool rd(struct ctx *c, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(c->t, addr, buf, len);
	if (!err)
		return true;
	md_error_destroy(err);
	return false;
}

/* Target memory while the stream may run: through it, else as usual. */
static bool c_read(struct ctx *c, uint64_t addr, void *buf, size_t len)
{
	return c->st ? ra_read(c->st, addr, buf, len) : rd(c, addr, buf, len);
}

static uint64_t u64at(const uint8_t *p, size_t off)
{
	uint64_t v;
	memcpy(&v, p + off, 8);
	return v;
}

static uint32_t u32at(const uint8_t *p, size_t off)
{
	uint32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

static uint16_t u16at(const uint8_t *p, size_t off)
{
	uint16_t v;
	memcpy(&v, p + off, 2);
	return v;
}

/* A free-list link of an MI_ENCODE_FREELIST build (mimalloc-internal.h mi_ptr_decode):
 * rotr(x - k0, k0) ^ k1, where the list's own "null" (the page, or the heap for its delayed
 * list) ends it. */
static uint64_t ptr_decode(uint64_t x, uint64_t null, const uint64_t *keys)
{
	if (!keys)
		return x;
	unsigned sh = (unsigned)(keys[0] % 64);
	uint64_t v = x - keys[0];
	uint64_t p = (sh ? v >> sh | v << (64 - sh) : v) ^ keys[1];
	return p == null ? 0 : p;
}

static int heap_index(const struct mi_walk *w, uint64_t heap)
{
	for (unsigned i = 0; i < w->n_heaps; i++)
		if (w->heaps[i].addr == heap)
			return (int)i;
	return -1;
}

/* Groups: heap i is group i; abandoned pages and the segment cache follow. */
static int group_abandoned(const struct mi_walk *w) { return (int)w->n_heaps; }
static int group_cache(const struct mi_walk *w) { return (int)w->n_heaps + 1; }


/* [start, end) is covered by mappings (at most 64 of them, one after the other). */
static bool range_mapped(struct md_target *t, uint64_t start, uint64_t end)
{
	uint64_t a = start;
	for (int k = 0; k < 64 && a < end; k++) {
		const struct md_mapping *m = md_target_find_mapping(t, a);
		if (!m || m->end <= a)
			return false;
		a = m->end;
	}
	return a >= end;
}

/* Brent's cycle check for a list walk: call once per node; true when node was seen before. */
struct cycle {
	uint64_t tortoise, power, steps;
};

static bool cycle_seen(struct cycle *cy, uint64_t node)
{
	if (cy->power && node == cy->tortoise)
		return true;
	if (++cy->steps >= cy->power) {
		cy->tortoise = node;
		cy->power = cy->power ? cy->power * 2 : 1;
		cy->steps = 0;
	}
	return false;
}

static void add_heap(struct ctx *c, uint64_t heap, int32_t tid, uint64_t fs_base, bool backing)
{
	struct mi_walk *w = c->w;
	if (heap_index(w, heap) >= 0)
		return;
	if (w->n_heaps >= MI_MAX_HEAPS) {
		w->truncated = true;
		return;
	}
	struct mi_heap *h = &w->heaps[w->n_heaps++];
	memset(h, 0, sizeof(*h));
	h->addr = heap;
	h->tid = tid;
	h->thread_id = fs_base;
	h->backing = backing;
	h->main = heap == c->r->bias + c->r->b->heap_main;
}

/* Every thread's default heap and the heaps of its tld. */
static void find_heaps(struct ctx *c)
{
	const struct mi_build *b = c->r->b;
	uint64_t tpoff = 0;
	if (!c->r->tls_symtab && !rd(c, c->r->bias + b->tls_got, &tpoff, 8)) {
		FINDING(c, MD_FINDING_CORRUPT, c->r->bias + b->tls_got, -1, "mimalloc: the TLS offset of _mi_heap_default is unreadable");
		return;
	}
	size_t nt = 0;
	const struct md_thread *th = md_target_threads(c->t, &nt);
	for (size_t i = 0; i < nt; i++) {
		if (!th[i].regs_valid)
			continue;
		uint64_t fs = th[i].regs[MD_REG_FS_BASE], heap = 0, slot = fs + tpoff;
		if (c->r->tls_symtab) {
			struct md_error *err = md_target_tls_address(c->t, c->r->module, &th[i], c->r->tls_offset, &slot);
			if (err) {
				md_error_destroy(err);
				continue;
			}
		}
		if (!fs || !rd(c, slot, &heap, 8) || !heap || heap == c->r->bias + b->heap_empty)
			continue;
		uint8_t hb[MI_HEAP_SIZE];
		if (!rd(c, heap, hb, sizeof(hb))) {
			FINDING(c, MD_FINDING_CORRUPT, heap, -1, "mimalloc: thread %d's heap 0x%" PRIx64 " is unreadable", (int)th[i].tid, heap);
			continue;
		}
		if (u64at(hb, MI_HEAP_THREAD_ID) != fs) {
			FINDING(c, MD_FINDING_CORRUPT, heap, -1, "mimalloc: thread %d's heap 0x%" PRIx64 " names thread 0x%" PRIx64 ", not 0x%" PRIx64,
				(int)th[i].tid, heap, u64at(hb, MI_HEAP_THREAD_ID), fs);
			continue;
		}
		uint64_t tld = u64at(hb, MI_HEAP_TLD), backing = 0, first = 0;
		if (!rd(c, tld + MI_TLD_HEAP_BACKING, &backing, 8) || !rd(c, tld + MI_TLD_HEAPS, &first, 8)) {
			FINDING(c, MD_FINDING_CORRUPT, tld, -1, "mimalloc: heap 0x%" PRIx64 "'s tld 0x%" PRIx64 " is unreadable", heap, tld);
			add_heap(c, heap, th[i].tid, fs, false);
			continue;
		}
		add_heap(c, heap, th[i].tid, fs, backing == heap);
		uint64_t hp = first;
		for (unsigned k = 0; hp && k < 64; k++) {
			uint64_t tid_of = 0, next = 0;
			if (!rd(c, hp + MI_HEAP_THREAD_ID, &tid_of, 8) || !rd(c, hp + MI_HEAP_NEXT, &next, 8) || tid_of != fs) {
				FINDING(c, MD_FINDING_CORRUPT, hp, -1, "mimalloc: the heap list of thread %d reaches 0x%" PRIx64 ", not one of its heaps",
					(int)th[i].tid, hp);
				break;
			}
			add_heap(c, hp, th[i].tid, fs, hp == backing);
			hp = next;
		}
	}
}

/* Pages of every heap's 75 queues (their segments), and the heaps' delayed-free blocks. */
static bool scan_queues(struct ctx *c)
{
	struct mi_walk *w = c->w;
	uint64_t total = 0;
	for (unsigned hi = 0; hi < w->n_heaps; hi++) {
		uint64_t heap = w->heaps[hi].addr;
		uint8_t q[MI_BIN_COUNT * 24];
		if (!rd(c, heap + MI_HEAP_PAGES, q, sizeof(q)))
			continue;
		for (unsigned bin = 0; bin < MI_BIN_COUNT; bin++) {
			uint64_t pg = u64at(q, bin * 24);
			struct cycle cy = { 0 };
			for (uint64_t k = 0; pg; k++) {
				if (k >= MI_MAX_PAGES_PER_QUEUE || ++total > 4 * MI_MAX_PAGES_PER_QUEUE || cycle_seen(&cy, pg)) {
					FINDING(c, MD_FINDING_CORRUPT, pg, (int)hi, "mimalloc: page queue %u of heap 0x%" PRIx64 " does not end (a loop?)", bin, heap);
					w->truncated = true;
					break;
				}
				uint64_t seg = pg & ~MI_SEGMENT_MASK, xheap = 0, next = 0;
				if (!rd(c, pg + PGOFF(c, MI_PG_XHEAP), &xheap, 8) || !rd(c, pg + PGOFF(c, MI_PG_NEXT), &next, 8)) {
					FINDING(c, MD_FINDING_CORRUPT, pg, (int)hi, "mimalloc: page 0x%" PRIx64 " in queue %u of heap 0x%" PRIx64 " is unreadable", pg, bin, heap);
					break;
				}
				if (xheap != heap) {
					FINDING(c, MD_FINDING_CORRUPT, pg, (int)hi, "mimalloc: page 0x%" PRIx64 " in queue %u of heap 0x%" PRIx64 " belongs to heap 0x%" PRIx64,
						pg, bin, heap, xheap);
					break;
				}
				if (next == pg) {
					FINDING(c, MD_FINDING_CORRUPT, pg, (int)hi, "mimalloc: page 0x%" PRIx64 " in queue %u of heap 0x%" PRIx64 " links to itself", pg, bin, heap);
					next = 0;
				}
				if (!push(&c->segs, &c->n_segs, &c->cap_segs, seg))
					return false;
				if (w->heaps[hi].main && !push(&c->main_pages, &c->n_main_pages, &c->cap_main_pages, pg))
					return false;
				pg = next;
			}
		}
		uint64_t blk = 0, hkeys[2] = { 0, 0 };
		if (!rd(c, heap + MI_HEAP_DELAYED, &blk, 8) || (c->shift && !rd(c, heap + MI_HEAP_KEYS, hkeys, 16)))
			continue;
		struct cycle cy = { 0 };
		for (uint64_t k = 0; blk; k++) {
			if (k >= MAX_DELAYED || cycle_seen(&cy, blk)) {
				FINDING(c, MD_FINDING_CORRUPT, blk, (int)hi, "mimalloc: the delayed-free list of heap 0x%" PRIx64 " does not end", heap);
				break;
			}
			uint64_t next = 0;
			if (!rd(c, blk, &next, 8)) {
				FINDING(c, MD_FINDING_CORRUPT, blk, (int)hi, "mimalloc: delayed-free block 0x%" PRIx64 " of heap 0x%" PRIx64 " is unreadable", blk, heap);
				break;
			}
			if (!push(&c->delayed, &c->n_delayed, &c->cap_delayed, blk))
				return false;
			w->heaps[hi].delayed_blocks++;
			blk = ptr_decode(next, heap, c->shift ? hkeys : NULL); /* heap->keys, null = the heap */
		}
	}
	return true;
}

static bool scan_map_and_abandoned(struct ctx *c)
{
	const struct mi_build *b = c->r->b;
	size_t words = b->map_words;
	uint64_t *map = calloc(words, 8);
	if (!map)
		return false;
	if (rd(c, c->r->bias + b->segment_map, map, words * 8)) {
		for (size_t i = 0; i < words; i++)
			for (unsigned bit = 0; map[i] && bit < 64; bit++)
				if (map[i] & ((uint64_t)1 << bit))
					if (!push(&c->segs, &c->n_segs, &c->cap_segs, ((uint64_t)i * 64 + bit) << 25)) {
						free(map);
						return false;
					}
	} else {
		FINDING(c, MD_FINDING_CORRUPT, c->r->bias + b->segment_map, -1, "mimalloc: the segment map is unreadable");
	}
	free(map);
	uint64_t heads[2] = { b->abandoned, b->abandoned_visited };
	for (int l = 0; l < 2; l++) {
		uint64_t seg = 0;
		if (!rd(c, c->r->bias + heads[l], &seg, 8))
			continue;
		seg &= ~MI_SEGMENT_MASK; /* the low bits of the head are an ABA tag */
		struct cycle cy = { 0 };
		for (uint64_t k = 0; seg; k++) {
			if (k >= MAX_ABANDONED || cycle_seen(&cy, seg)) {
				FINDING(c, MD_FINDING_CORRUPT, seg, -1, "mimalloc: the abandoned segment list does not end");
				break;
			}
			if (!push(&c->segs, &c->n_segs, &c->cap_segs, seg))
				return false;
			uint64_t next = 0;
			if (!rd(c, seg + MI_SEG_ABANDONED_NEXT, &next, 8)) {
				FINDING(c, MD_FINDING_CORRUPT, seg, -1, "mimalloc: abandoned segment 0x%" PRIx64 " is unreadable", seg);
				break;
			}
			if (next & MI_SEGMENT_MASK) {
				FINDING(c, MD_FINDING_CORRUPT, seg, -1, "mimalloc: abandoned segment 0x%" PRIx64 " links to an unaligned 0x%" PRIx64, seg, next);
				break;
			}
			seg = next;
		}
	}
	return true;
}

static uint64_t good_alloc_size(uint64_t size)
{
	uint64_t a = size < (512 << 10) ? 4096 : size < (2 << 20) ? (64 << 10) : size < (8 << 20) ? (256 << 10) : size < (32 << 20) ? (1 << 20) : (4 << 20);
	return (size + a - 1) & ~(a - 1);
}

static int popcount8(const uint64_t *m)
{
	int n = 0;
	for (int i = 0; i < 8; i++)
		n += __builtin_popcountll(m[i]);
	return n;
}


/* Follow one free list of a page: every block must be a block of the initialised area that
 * no list named before. Returns the count; marks state (1 free, 2 remote) in bits. The links
 * are decoded with keys (NULL: plain pointers). */
static uint64_t follow_list(struct ctx *c, uint64_t head, const uint64_t *keys, uint64_t start, uint64_t bsize, uint32_t capacity,
			    uint8_t mark, uint8_t *bits, uint64_t page, int group, const char *what, bool *bad)
{
	uint64_t n = 0, blk = head;
	while (blk) {
		if (blk < start || blk >= start + (uint64_t)capacity * bsize || (blk - start) % bsize) {
			FINDING(c, MD_FINDING_CORRUPT, page, group, "mimalloc: the %s list of page 0x%" PRIx64 " reaches 0x%" PRIx64 ", not a block of the page", what, page, blk);
			*bad = true;
			break;
		}
		uint64_t idx = (blk - start) / bsize;
		if (bits[idx]) {
			FINDING(c, MD_FINDING_CORRUPT, page, group, "mimalloc: block 0x%" PRIx64 " is twice on the free lists of page 0x%" PRIx64 " (%s list)", blk, page, what);
			*bad = true;
			break;
		}
		bits[idx] = mark;
		n++;
		uint64_t next = 0;
		if (blk >= c->win_start && blk + 8 <= c->win_end &&
		    (!c->win_bad || !ra_pages_bad(c->win_bad, blk - c->win_start, blk + 8 - c->win_start)))
			memcpy(&next, c->win + (blk - c->win_start), 8);
		else if (!c_read(c, blk, &next, 8)) {
			FINDING(c, MD_FINDING_CORRUPT, page, group, "mimalloc: free block 0x%" PRIx64 " of page 0x%" PRIx64 " is unreadable", blk, page);
			*bad = true;
			break;
		}
		blk = ptr_decode(next, page, keys);
	}
	return n;
}

static void emit(struct ctx *c, enum md_span_kind kind, uint64_t s, uint64_t e, int group)
{
	if (c->sink && e > s)
		md_sink_span(c->sink, kind, s, e, group);
}

/* One page: its blocks by state, the identity used + free + local_free == capacity. */
static void walk_page(struct ctx *c, struct mi_seg *sg, const uint8_t *pg, unsigned idx, unsigned count, uint64_t seg_end)
{
	struct mi_walk *w = c->w;
	uint64_t page = sg->addr + MI_SEG_HEADER + (uint64_t)idx * c->stride;
	uint64_t xb = u32at(pg, MI_PG_XBLOCK_SIZE);
	uint64_t off = (xb >= 8 && xb <= 1024) ? 384 : 0;
	uint64_t area = sg->addr + (uint64_t)idx * MI_SLICE_SIZE, area_end = area + (uint64_t)count * MI_SLICE_SIZE;
	if (area_end > seg_end)
		area_end = seg_end;
	uint64_t start = area + off;
	uint64_t bsize = xb >= MI_HUGE_BLOCK_SIZE ? area_end - start : xb;
	uint32_t capacity = u16at(pg, MI_PG_CAPACITY), reserved = u16at(pg, MI_PG_RESERVED), used = u32at(pg, MI_PG_USED);
	uint64_t xheap = u64at(pg, PGOFF(c, MI_PG_XHEAP));
	int hi = heap_index(w, xheap);
	int group = sg->abandoned || !xheap ? group_abandoned(w) : hi;
	sg->span_kind[idx] = 3;
	sg->span_count[idx] = (uint16_t)(count > 0xffff ? 0xffff : count);
	if (bsize == 0 || capacity > reserved || used > capacity || start + (uint64_t)reserved * bsize > area_end) {
		FINDING(c, MD_FINDING_CORRUPT, page, group, "mimalloc: page 0x%" PRIx64 " has block size %" PRIu64 ", capacity %u, reserved %u, used %u: beyond its %u slices",
			page, bsize, capacity, reserved, used, count);
		w->bad_pages++;
		sg->eff_used[idx] = UINT32_MAX;
		return;
	}
	if (!sg->abandoned && xheap && hi < 0) {
		FINDING(c, MD_FINDING_WARNING, page, -1, "mimalloc: page 0x%" PRIx64 " belongs to heap 0x%" PRIx64 ", which no thread has", page, xheap);
	}
	if (c->bits_cap < capacity + 1u) {
		uint8_t *nb = realloc(c->bits, capacity + 1u);
		if (!nb) {
			w->truncated = true;
			return;
		}
		c->bits = nb;
		c->bits_cap = capacity + 1u;
	}
	uint8_t *bits = c->bits;
	memset(bits, 0, capacity);
	bool bad = false;
	uint64_t keys[2] = { 0, 0 };
	if (c->shift) {
		keys[0] = u64at(pg, MI_PG_KEYS);
		keys[1] = u64at(pg, MI_PG_KEYS + 8);
	}
	const uint64_t *kp = c->shift ? keys : NULL;
	/* the heads are plain pointers in every build; only the links in the blocks are encoded */
	uint64_t nfree = follow_list(c, u64at(pg, MI_PG_FREE), kp, start, bsize, capacity, 1, bits, page, group, "free", &bad);
	uint64_t nlocal = follow_list(c, u64at(pg, MI_PG_LOCAL_FREE), kp, start, bsize, capacity, 1, bits, page, group, "local_free", &bad);
	uint64_t nremote = follow_list(c, u64at(pg, PGOFF(c, MI_PG_XTHREAD_FREE)) & ~(uint64_t)3, kp, start, bsize, capacity, 2, bits, page, group,
				       "thread_free", &bad);
	/* Blocks on the owning heap's delayed-free list: freed by another thread, still used. */
	uint64_t lo_key = start, *lo = c->delayed;
	size_t n = c->n_delayed, lo_i = 0, hi_i = n;
	while (lo_i < hi_i) {
		size_t m = (lo_i + hi_i) / 2;
		if (lo[m] < lo_key)
			lo_i = m + 1;
		else
			hi_i = m;
	}
	for (size_t k = lo_i; k < n && lo[k] < start + (uint64_t)capacity * bsize; k++) {
		uint64_t bi = (lo[k] - start) / bsize;
		if ((lo[k] - start) % bsize || bits[bi]) {
			FINDING(c, MD_FINDING_CORRUPT, page, group, "mimalloc: delayed-free block 0x%" PRIx64 " is not a used block of page 0x%" PRIx64, lo[k], page);
			continue;
		}
		bits[bi] = 2;
		nremote++;
	}
	if (used + nfree + nlocal != capacity || nremote > used) {
		if (!bad)
			FINDING(c, RACY(c), page, group, "mimalloc: page 0x%" PRIx64 " counts %u used blocks, but %u of its %u blocks are on free lists (%" PRIu64 " freed by other threads)",
				page, used, (unsigned)(nfree + nlocal), capacity, nremote);
		w->inconsistent = true;
		if (nremote > used)
			nremote = used;
	}
	sg->eff_used[idx] = (uint32_t)(used - nremote);
	if (w->n_seen_pages < 6 && (w->pages % 97) == 0)
		w->seen_pages[w->n_seen_pages++] = page;
	w->pages++;
	w->used_blocks += used;
	w->used_bytes += (uint64_t)used * bsize;
	w->remote_blocks += nremote;
	w->remote_bytes += nremote * bsize;
	w->free_blocks += nfree + nlocal;
	w->free_bytes += (nfree + nlocal) * bsize;
	if (used == 0)
		w->empty_pages++;
	if (group == group_abandoned(w)) {
		w->abandoned_pages++;
		w->abandoned_used_blocks += used;
		w->abandoned_used_bytes += (uint64_t)used * bsize;
	} else if (hi >= 0) {
		struct mi_heap *h = &w->heaps[hi];
		h->pages++;
		h->used_blocks += used;
		h->used_bytes += (uint64_t)used * bsize;
		h->remote_blocks += nremote;
		h->remote_bytes += nremote * bsize;
	}
	/* Spans: page padding is metadata; runs of blocks by state; the rest free. */
	emit(c, MD_SPAN_METADATA, area, start, group);
	static const enum md_span_kind kinds[3] = { MD_SPAN_LIVE, MD_SPAN_FREE, MD_SPAN_CACHED };
	uint32_t i = 0;
	while (i < capacity) {
		uint32_t j = i + 1;
		while (j < capacity && bits[j] == bits[i])
			j++;
		emit(c, kinds[bits[i]], start + i * bsize, start + j * bsize, group);
		i = j;
	}
	emit(c, MD_SPAN_FREE, start + (uint64_t)capacity * bsize, area_end, group);
	if (used == 0)
		w->empty_page_bytes += resident_bytes(c->t, area, area_end);
}

/* The end of the window for the page at slice i: the spans of it and of the pages after it that
 * have a free list to follow, up to MI_WINDOW bytes. Its start (slice i) when there is none: a
 * page without lists needs no read, and the lists of a page larger than the window are read
 * block by block. */
static uint64_t window_end(const struct ctx *c, const uint8_t *hdr, uint64_t seg, unsigned i, uint64_t entries, uint64_t seg_end)
{
	uint64_t s = seg + (uint64_t)i * MI_SLICE_SIZE, e = s;
	for (unsigned j = i; j < entries && j < MI_SLICES_PER_SEGMENT;) {
		const uint8_t *q = hdr + MI_SEG_HEADER + (size_t)j * c->stride;
		uint32_t cnt = u32at(q, MI_PG_SLICE_COUNT);
		if (!cnt || u32at(q, MI_PG_SLICE_OFFSET) || !u32at(q, MI_PG_XBLOCK_SIZE))
			break;
		if (!u64at(q, MI_PG_FREE) && !u64at(q, MI_PG_LOCAL_FREE) && !(u64at(q, PGOFF(c, MI_PG_XTHREAD_FREE)) & ~(uint64_t)3))
			break;
		uint64_t pe = seg + ((uint64_t)j + cnt) * MI_SLICE_SIZE;
		if (pe > seg_end)
			pe = seg_end;
		if (pe <= e || pe - s > MI_WINDOW)
			break;
		e = pe;
		j += cnt;
	}
	return e;
}

/* The window for the page at slice i of segment k: the stream's next one when it is planned for
 * that page, else (no stream) read here (pagemap-guided: pages not present read as zeros). None,
 * or a read that fails: the lists are read block by block. */
static void load_window(struct ctx *c, const uint8_t *hdr, size_t k, uint64_t seg, unsigned i, uint64_t entries, uint64_t seg_end)
{
	c->win_start = c->win_end = 0;
	c->win_bad = NULL;
	if (c->st) {
		while (c->next_plan < c->n_plan && (c->plan[c->next_plan].first < k ||
						    (c->plan[c->next_plan].first == k && c->plan[c->next_plan].end < i)))
			c->next_plan++;
		const struct ra_window *pw = c->next_plan < c->n_plan ? &c->plan[c->next_plan] : NULL;
		if (!pw || pw->first != k || pw->end != i)
			return;
		const uint8_t *data = ra_get(c->st, c->next_plan++, &c->win_bad);
		if (data) {
			c->win = data;
			c->win_start = pw->lo;
			c->win_end = pw->hi;
		}
		return;
	}
	uint64_t s = seg + (uint64_t)i * MI_SLICE_SIZE, e = window_end(c, hdr, seg, i, entries, seg_end);
	if (e == s)
		return;
	if (!c->own_win && !(c->own_win = malloc(MI_WINDOW)))
		return;
	if (rd(c, s, c->own_win, e - s)) {
		c->win = c->own_win;
		c->win_start = s;
		c->win_end = e;
	}
}

/* A header's slice counts hold together. */
static bool layout_ok(const uint8_t *hdr)
{
	uint64_t slices = u64at(hdr, MI_SEG_SLICES), info = u64at(hdr, MI_SEG_INFO_SLICES), entries = u64at(hdr, MI_SEG_SLICE_ENTRIES);
	uint64_t kind = u64at(hdr, MI_SEG_KIND);
	return !(kind > 1 || entries == 0 || entries > 513 || info == 0 || info >= entries || (kind == 0 && slices != MI_SLICES_PER_SEGMENT) ||
		 slices < entries - 1 || slices > ((uint64_t)1 << 32) / MI_SLICE_SIZE * 1024);
}

static uint64_t segment_size(const uint8_t *hdr)
{
	return u64at(hdr, MI_SEG_KIND) == 1 ? good_alloc_size(u64at(hdr, MI_SEG_SLICES) * MI_SLICE_SIZE) : MI_SEGMENT_SIZE;
}

/* One segment: header checks, then its spans. seg_index: its place in the walk's list. */
static void walk_segment(struct ctx *c, struct mi_seg *sg, uint8_t *hdr, size_t seg_index)
{
	struct mi_walk *w = c->w;
	uint64_t seg = sg->addr;
	uint64_t slices = u64at(hdr, MI_SEG_SLICES), info = u64at(hdr, MI_SEG_INFO_SLICES), entries = u64at(hdr, MI_SEG_SLICE_ENTRIES);
	uint64_t kind = u64at(hdr, MI_SEG_KIND);
	sg->thread_id = u64at(hdr, MI_SEG_THREAD_ID);
	sg->abandoned = sg->thread_id == 0;
	sg->huge = kind == 1;
	c->win_start = c->win_end = 0; /* a window lies in its own segment */
	if (!layout_ok(hdr)) {
		FINDING(c, MD_FINDING_CORRUPT, seg, -1, "mimalloc: segment 0x%" PRIx64 " has kind %" PRIu64 ", %" PRIu64 " slices, %" PRIu64 " info slices, %" PRIu64 " slice entries",
			seg, kind, slices, info, entries);
		w->bad_segments++;
		return;
	}
	sg->size = segment_size(hdr);
	if (!range_mapped(c->t, seg, seg + sg->size)) {
		FINDING(c, MD_FINDING_CORRUPT, seg, -1, "mimalloc: segment 0x%" PRIx64 " of %" PRIu64 " slices reaches past its mapping", seg, slices);
		w->bad_segments++;
		return;
	}
	uint64_t seg_end = seg + slices * MI_SLICE_SIZE;
	if (c->shift) {
		/* MI_SECURE: a PROT_NONE page ends the info slices and the segment (segment.c). */
		uint64_t guards[2] = { seg + info * MI_SLICE_SIZE - MD_PAGE_SIZE, seg_end - MD_PAGE_SIZE };
		for (int k = 0; k < 2; k++) {
			const struct md_mapping *m = md_target_find_mapping(c->t, guards[k]);
			if (m && !(m->perms & (MD_PERM_READ | MD_PERM_WRITE)))
				w->guard_pages++;
			else
				w->missing_guards++;
		}
	}
	memcpy(sg->commit, hdr + MI_SEG_COMMIT_MASK, 64);
	memcpy(sg->decommit, hdr + MI_SEG_DECOMMIT_MASK, 64);
	sg->expire = (int64_t)u64at(hdr, MI_SEG_DECOMMIT_EXPIRE);
	sg->allow_decommit = hdr[MI_SEG_ALLOW_DECOMMIT] != 0;
	sg->used_pages = u64at(hdr, MI_SEG_USED);
	sg->valid = true;
	int hi = -1;
	for (unsigned k = 0; k < w->n_heaps; k++)
		if (w->heaps[k].thread_id == sg->thread_id && w->heaps[k].backing)
			hi = (int)k;
	int sgroup = sg->abandoned ? group_abandoned(w) : hi;
	if (c->sink)
		md_sink_region(c->sink, seg, seg + sg->size, sgroup, sg->huge ? "mimalloc huge segment" : sg->abandoned ? "mimalloc abandoned segment" : "mimalloc segment");
	if (w->n_seen_segments < 4)
		w->seen_segments[w->n_seen_segments++] = seg;
	w->segments++;
	if (sg->huge)
		w->huge_segments++;
	if (sg->abandoned)
		w->abandoned_segments++;
	w->committed_bytes += sg->huge ? sg->size : (uint64_t)popcount8(sg->commit) * MI_SLICE_SIZE;
	w->reserved_bytes += sg->size;
	for (unsigned s = 0; s < MI_SLICES_PER_SEGMENT && !sg->huge; s++)
		sg->resident[s] = (uint32_t)resident_bytes(c->t, seg + s * MI_SLICE_SIZE, seg + (s + 1) * MI_SLICE_SIZE);
	uint64_t pages = 0;
	unsigned i = 0;
	while (i < entries && i < MI_SLICES_PER_SEGMENT) {
		const uint8_t *pg = hdr + MI_SEG_HEADER + (size_t)i * c->stride;
		uint32_t count = u32at(pg, MI_PG_SLICE_COUNT), off = u32at(pg, MI_PG_SLICE_OFFSET);
		uint64_t limit = sg->huge ? slices : MI_SLICES_PER_SEGMENT;
		if (count == 0 || off != 0 || i + (uint64_t)count > limit) {
			FINDING(c, MD_FINDING_CORRUPT, seg + MI_SEG_HEADER + (uint64_t)i * c->stride, sgroup,
				"mimalloc: slice %u of segment 0x%" PRIx64 " starts a span of %u slices at offset %u", i, seg, count, off);
			w->bad_segments++;
			emit(c, MD_SPAN_METADATA, seg, seg + info * MI_SLICE_SIZE, sgroup);
			sg->valid = false;
			return;
		}
		uint64_t s = seg + (uint64_t)i * MI_SLICE_SIZE, e = s + (uint64_t)count * MI_SLICE_SIZE;
		if (e > seg_end)
			e = seg_end;
		if (i == 0) {
			sg->span_kind[0] = 1;
			sg->span_count[0] = (uint16_t)count;
			emit(c, MD_SPAN_METADATA, s, e, sgroup);
		} else if (u32at(pg, MI_PG_XBLOCK_SIZE) == 0) {
			sg->span_kind[i] = 2;
			sg->span_count[i] = (uint16_t)count;
			emit(c, MD_SPAN_FREE, s, e, sgroup);
			for (unsigned k = i; k < i + count && k < MI_SLICES_PER_SEGMENT; k++) {
				if (!mask_bit(sg->commit, k))
					w->decommitted_resident += sg->resident[k]; /* MI_SECURE: mprotect(PROT_NONE) keeps the pages */
				else if (mask_bit(sg->decommit, k))
					w->pending_decommit += sg->resident[k];
				else if (sg->abandoned)
					w->abandoned_free += sg->resident[k];
				else
					w->unmarked_free += sg->resident[k];
			}
		} else {
			if (s < c->win_start || e > c->win_end)
				load_window(c, hdr, seg_index, seg, i, entries, seg_end);
			walk_page(c, sg, pg, i, count, seg_end);
			pages++;
		}
		i += count;
		if (md_target_interrupted(c->t))
			return;
	}
	if (pages != sg->used_pages)
		/* A page half freed or half set up (segment.c mi_segment_page_clear: xblock_size 1 until
		 * the span is queued free) by a thread stopped inside mimalloc; the quiescence check
		 * misses none it can unwind (docs/mimalloc.md). A warning: the pages are checked. */
		FINDING(c, MD_FINDING_WARNING, seg, sgroup, "mimalloc: segment 0x%" PRIx64 " counts %" PRIu64 " pages, its slices hold %" PRIu64 " (a page being set up or torn down?)",
			seg, sg->used_pages, pages);
}

static bool push_window(struct ra_window **win, size_t *n, size_t *cap, struct ra_window w)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		struct ra_window *nw = realloc(*win, nc * sizeof(*nw));
		if (!nw)
			return false;
		*win = nw;
		*cap = nc;
	}
	(*win)[(*n)++] = w;
	return true;
}

/* The windows of segment k (header hdr), in the order walk_segment asks for them: the header,
 * then the block areas of its pages with free lists (window_end). .first is k, .end the slice
 * (0: the header). False: no memory. */
static bool plan_segment(struct ctx *c, const uint8_t *hdr, size_t k, uint64_t seg, struct ra_window **win, size_t *n, size_t *cap)
{
	if (!push_window(win, n, cap, (struct ra_window){ .lo = seg, .hi = seg + MD_PAGE_UP(MI_SEG_READ(c->stride)), .first = k, .end = 0 }))
		return false;
	if (!layout_ok(hdr) || !range_mapped(c->t, seg, seg + segment_size(hdr)))
		return true; /* walk_segment stops at the header */
	uint64_t slices = u64at(hdr, MI_SEG_SLICES), entries = u64at(hdr, MI_SEG_SLICE_ENTRIES);
	uint64_t limit = u64at(hdr, MI_SEG_KIND) == 1 ? slices : MI_SLICES_PER_SEGMENT, seg_end = seg + slices * MI_SLICE_SIZE;
	uint64_t ws = 0, we = 0;
	for (unsigned i = 0; i < entries && i < MI_SLICES_PER_SEGMENT;) {
		const uint8_t *pg = hdr + MI_SEG_HEADER + (size_t)i * c->stride;
		uint32_t count = u32at(pg, MI_PG_SLICE_COUNT);
		if (count == 0 || u32at(pg, MI_PG_SLICE_OFFSET) || i + (uint64_t)count > limit)
			break;
		uint64_t s = seg + (uint64_t)i * MI_SLICE_SIZE, e = s + (uint64_t)count * MI_SLICE_SIZE;
		if (e > seg_end)
			e = seg_end;
		if (i && u32at(pg, MI_PG_XBLOCK_SIZE) && (s < ws || e > we)) {
			ws = s;
			we = window_end(c, hdr, seg, i, entries, seg_end);
			if (we == ws)
				ws = we = 0;
			else if (!push_window(win, n, cap, (struct ra_window){ .lo = ws, .hi = we, .first = k, .end = i }))
				return false;
		}
		i += count;
	}
	return true;
}

/* The segment cache: freed segments kept mapped (free memory; mi_collect(true) unmaps them). */
static void walk_cache(struct ctx *c)
{
	struct mi_walk *w = c->w;
	const struct mi_build *b = c->r->b;
	uint64_t inuse[16];
	if (!rd(c, c->r->bias + b->cache_inuse, inuse, sizeof(inuse)))
		return;
	for (unsigned i = 0; i < MI_CACHE_SLOTS; i++) {
		if (!((inuse[i / 64] >> (i % 64)) & 1))
			continue;
		uint8_t slot[160];
		if (!rd(c, c->r->bias + b->cache + (uint64_t)i * 160, slot, sizeof(slot)))
			continue;
		uint64_t p = u64at(slot, 0);
		if (!p)
			continue;
		if (p & MI_SEGMENT_MASK || !md_target_find_mapping(c->t, p)) {
			FINDING(c, MD_FINDING_CORRUPT, c->r->bias + b->cache + (uint64_t)i * 160, group_cache(w),
				"mimalloc: segment cache slot %u holds 0x%" PRIx64 ", not a mapped segment", i, p);
			continue;
		}
		bool clash = false;
		for (size_t k = 0; k < c->n_seginfo; k++)
			if (c->seginfo[k].addr < p + MI_SEGMENT_SIZE && p < c->seginfo[k].addr + (c->seginfo[k].size ? c->seginfo[k].size : MI_SEGMENT_SIZE))
				clash = true;
		if (clash) {
			FINDING(c, MD_FINDING_CORRUPT, p, group_cache(w), "mimalloc: cached segment 0x%" PRIx64 " is also a live segment", p);
			continue;
		}
		uint64_t cm[8];
		memcpy(cm, slot + 24, 64);
		w->cached_segments++;
		w->committed_bytes += (uint64_t)popcount8(cm) * MI_SLICE_SIZE;
		w->reserved_bytes += MI_SEGMENT_SIZE;
		uint64_t res = resident_bytes(c->t, p, p + MI_SEGMENT_SIZE);
		w->cached_resident += res;
		if (c->sink) {
			md_sink_region(c->sink, p, p + MI_SEGMENT_SIZE, group_cache(w), "mimalloc cached segment");
			md_sink_span(c->sink, MD_SPAN_FREE, p, p + MI_SEGMENT_SIZE, group_cache(w));
			md_sink_span(c->sink, MD_SPAN_RELEASABLE, p, p + MI_SEGMENT_SIZE, group_cache(w));
		}
	}
}

/* Segment k's header: its window of the stream (the next one), else read here. */
static bool read_header(struct ctx *c, size_t k, uint64_t seg, uint8_t *hdr)
{
	if (!c->st)
		return rd(c, seg, hdr, MI_SEG_READ(c->stride));
	while (c->next_plan < c->n_plan && c->plan[c->next_plan].first < k)
		c->next_plan++;
	if (c->next_plan >= c->n_plan || c->plan[c->next_plan].first != k || c->plan[c->next_plan].end != 0)
		return false; /* it could not be read when the windows were planned */
	const uint64_t *bad;
	const uint8_t *data = ra_get(c->st, c->next_plan++, &bad);
	if (!data || ra_pages_bad(bad, 0, MI_SEG_READ(c->stride)))
		return false;
	memcpy(hdr, data, MI_SEG_READ(c->stride));
	return true;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct mi_seg *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct md_error *mi_walk_run(struct md_target *t, const struct mi_roots *r, struct md_sink *sink, bool inconsistent, struct mi_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->inconsistent = inconsistent;
	w->unsafe_point = inconsistent;
	const struct mi_build *b = r->b;
	struct ctx c = { .t = t, .r = r, .sink = sink, .w = w, .stride = r->page_stride, .shift = r->pg_shift };
	w->page_stride = r->page_stride;
	w->decommit_keeps_pages = r->encoded && strcmp(r->b->build, "secure") == 0;
	struct md_error *err = NULL;
	uint64_t tld = 0, backing = 0;
	if (!rd(&c, r->bias + b->heap_main + MI_HEAP_COOKIE, &w->cookie, 8) || !rd(&c, r->bias + b->heap_main + MI_HEAP_TLD, &tld, 8) ||
	    !rd(&c, r->bias + b->tld_main + MI_TLD_HEAP_BACKING, &backing, 8))
		return md_error_create(MD_ERR_BAD_DATA, "mimalloc: _mi_heap_main at 0x%" PRIx64 " is unreadable", r->bias + b->heap_main);
	if (tld != r->bias + b->tld_main || backing != r->bias + b->heap_main) {
		FINDING(&c, MD_FINDING_CORRUPT, r->bias + b->heap_main, -1,
			"mimalloc: _mi_heap_main's tld is 0x%" PRIx64 " and its backing heap 0x%" PRIx64 ": the main heap is damaged or not initialised", tld, backing);
		if (w->cookie == 0)
			return NULL; /* never initialised: nothing to walk */
	}
	w->initialised = w->cookie != 0;
	int64_t opts[26] = { 0 };
	for (unsigned i = 0; i < 26; i++)
		rd(&c, r->bias + b->options + (uint64_t)i * MI_OPT_SIZE, &opts[i], 8);
	w->decommit_delay = opts[MI_OPT_DECOMMIT_DELAY];
	w->extend_delay = opts[MI_OPT_DECOMMIT_EXTEND_DELAY];
	w->segment_decommit_delay = opts[MI_OPT_SEGMENT_DECOMMIT_DELAY];
	w->allow_decommit = opts[MI_OPT_ALLOW_DECOMMIT];
	uint8_t st[576];
	if (rd(&c, r->bias + b->stats_main, st, sizeof(st))) {
		w->allocator_reserved = u64at(st, 2 * 32 + 24);
		w->allocator_committed = u64at(st, 3 * 32 + 24);
	}
	find_heaps(&c);
	if (!scan_queues(&c) || !scan_map_and_abandoned(&c)) {
		err = &md_error_nomem;
		goto out;
	}
	if (c.n_delayed)
		qsort(c.delayed, c.n_delayed, 8, cmp_u64);
	if (c.n_segs)
		qsort(c.segs, c.n_segs, 8, cmp_u64);
	size_t n = 0;
	for (size_t i = 0; i < c.n_segs; i++)
		if (!n || c.segs[i] != c.segs[n - 1])
			c.segs[n++] = c.segs[i];
	c.n_segs = n;
	if (n > MAX_SEGMENTS) {
		w->truncated = true;
		n = MAX_SEGMENTS;
	}
	c.seginfo = calloc(n ? n : 1, sizeof(*c.seginfo));
	uint8_t *hdr = malloc(MI_SEG_READ_MAX);
	if (!c.seginfo || !hdr) {
		free(hdr);
		err = &md_error_nomem;
		goto out;
	}
	/* Every header, for the windows the walk will ask for: the stream reads them again, ahead. */
	struct ra_window *plan = NULL;
	size_t n_plan = 0, cap_plan = 0;
	bool planned = true;
	for (size_t i = 0; i < n && planned && !md_target_interrupted(t); i++)
		if (rd(&c, c.segs[i], hdr, MI_SEG_READ(c.stride)))
			planned = u64at(hdr, MI_SEG_COOKIE) == (c.segs[i] ^ w->cookie)
					  ? plan_segment(&c, hdr, i, c.segs[i], &plan, &n_plan, &cap_plan)
					  : push_window(&plan, &n_plan, &cap_plan,
							(struct ra_window){ .lo = c.segs[i], .hi = c.segs[i] + MD_PAGE_UP(MI_SEG_READ(c.stride)), .first = i });
	c.plan = plan;
	c.n_plan = n_plan;
	c.st = planned && n_plan ? ra_start(t, plan, n_plan) : NULL; /* else every read is made here */
	uint64_t prev_end = 0;
	for (size_t i = 0; i < n; i++) {
		struct mi_seg *sg = &c.seginfo[c.n_seginfo++];
		sg->addr = c.segs[i];
		if (md_target_interrupted(t))
			break;
		if (sg->addr < prev_end) {
			FINDING(&c, MD_FINDING_CORRUPT, sg->addr, -1, "mimalloc: segment 0x%" PRIx64 " lies inside the segment before it", sg->addr);
			w->bad_segments++;
			continue;
		}
		uint64_t cookie = 0;
		if (!read_header(&c, i, sg->addr, hdr)) {
			FINDING(&c, MD_FINDING_CORRUPT, sg->addr, -1, "mimalloc: segment 0x%" PRIx64 " is unreadable", sg->addr);
			w->bad_segments++;
			continue;
		}
		cookie = u64at(hdr, MI_SEG_COOKIE);
		if (cookie != (sg->addr ^ w->cookie)) {
			FINDING(&c, MD_FINDING_CORRUPT, sg->addr, -1, "mimalloc: segment 0x%" PRIx64 " has cookie 0x%" PRIx64 ", not 0x%" PRIx64, sg->addr, cookie,
				sg->addr ^ w->cookie);
			w->bad_segments++;
			continue;
		}
		walk_segment(&c, sg, hdr, i);
		if (sg->valid)
			prev_end = sg->addr + sg->size;
	}
	ra_finish(c.st);
	c.st = NULL;
	free(plan);
	free(hdr);
	if (c.n_seginfo)
		qsort(c.seginfo, c.n_seginfo, sizeof(*c.seginfo), cmp_seg);
	walk_cache(&c);
	/* Thread data: 8 KiB per thread with its own heap, and per cached one. */
	for (unsigned i = 0; i < w->n_heaps; i++)
		if (w->heaps[i].backing && !w->heaps[i].main)
			w->thread_data++;
	uint64_t tdc[8];
	if (rd(&c, r->bias + b->td_cache, tdc, sizeof(tdc)))
		for (int i = 0; i < 8; i++)
			if (tdc[i])
				w->thread_data++;
	w->committed_bytes += w->thread_data * 8192;
	w->reserved_bytes += w->thread_data * 8192;
	w->release_bytes = mi_predict_collect(t, w, c.seginfo, c.n_seginfo, c.main_pages, c.n_main_pages) + w->cached_resident;
out:
	free(c.segs);
	free(c.delayed);
	free(c.main_pages);
	free(c.seginfo);
	free(c.bits);
	free(c.own_win);
	return err;
}
