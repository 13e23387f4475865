/* The chunk walk of one heap, streamed through the walker's window, and what depends on it:
 * fastbin membership (resolved afterwards through the candidates), the runs malloc_trim(0)
 * would release, and the size-class histogram.
 *
 * Each chunk is classified from its own size word and its neighbour's PREV_INUSE bit:
 *   tcache struct  -> METADATA     tcache entry -> CACHED      (from the sorted membership array)
 *   next's PREV_INUSE clear -> binned free chunk -> FREE (footer and link sums checked)
 *   otherwise in use -> LIVE, unless it could be a fastbin chunk (a candidate, settled later).
 * The span of chunk p of size S is [p+8, p+S+8): its size word, its payload and the next
 * chunk's prev_size, which an in-use chunk may use. This tiles the heap without overlaps.
 *
 * The loop has one fast path: size sane, next header inside the window, no membership entry
 * due. Everything unusual (window refill, heap end, fenceposts, corruption) is out of line. */
#include <stdio.h>
#include <stdlib.h>

#include "walker.h"

#define FB_MEMBER 1ULL

/* Adjacent binned and fastbin chunks: one chunk after malloc_consolidate. While fastbin
 * membership is not known yet, a run holding a candidate is kept as a segment and split into
 * runs after the fastbin lists are resolved. */
struct run {
	uint64_t start, end;
	bool has_cand;
};

/* What malloc_trim(0) would madvise for a run that does not reach top (malloc.c mtrim):
 * the whole pages after the run's first 0x30 bytes, when the run exceeds a page + 0x30. */
static void release_run(struct walker *w, struct gl_arena *a, uint64_t start, uint64_t end)
{
	if (end <= start || end - start <= 4095 + 0x30)
		return;
	uint64_t from = MD_PAGE_UP(start + 0x30);
	uint64_t to = MD_PAGE_DOWN(end);
	if (to > from) {
		md_sink_span(w->sink, MD_SPAN_RELEASABLE, from, to, a->index);
		a->releasable_range_bytes += to - from;
	}
}

static bool push_seg(struct walker *w, uint64_t start, uint64_t end, bool to_top)
{
	if (w->n_segs == w->cap_segs) {
		size_t n = w->cap_segs ? w->cap_segs * 2 : 256;
		struct fb_seg *ns = realloc(w->segs, n * sizeof(*ns));
		if (!ns)
			return false;
		w->segs = ns;
		w->cap_segs = n;
	}
	w->segs[w->n_segs++] = (struct fb_seg){ start, end, to_top };
	return true;
}

static void close_run(struct walker *w, struct gl_arena *a, struct run *run)
{
	if (run->end > run->start) {
		/* Splitting at candidates only shortens a run: one too short to release a page
		 * whole need not wait for them. */
		if (!run->has_cand)
			release_run(w, a, run->start, run->end);
		else if (run->end - run->start > 4095 + 0x30)
			push_seg(w, run->start, run->end, false);
	}
	run->start = run->end = 0;
	run->has_cand = false;
}

static inline void run_add(struct run *run, uint64_t p, uint64_t next, bool cand)
{
	if (run->end != p || !run->start)
		run->start = p;
	run->end = next;
	run->has_cand |= cand;
}

/* Bytes the walk cannot classify after a corruption: counted as live (we cannot prove them free). */
static void skip_unknown(struct walker *w, struct gl_arena *a, uint64_t from, uint64_t to, struct run *run)
{
	close_run(w, a, run);
	if (to > from) {
		gl_emit(w, MD_SPAN_LIVE, from + 8, to + 8, a->index);
		a->unknown_bytes += to - from;
		if (w->n_unknown < GL_MAX_UNKNOWN_RANGES) {
			w->unknown[w->n_unknown][0] = from;
			w->unknown[w->n_unknown][1] = to;
			w->n_unknown++;
		} else {
			w->unknown_overflow = true;
		}
	}
	while (w->cursor < w->s->n_cached && (w->s->cached[w->cursor] & ~GL_IN_FLAGS) < to)
		w->cursor++;
}

static void walk_top(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t top_word,
		     struct run *run)
{
	uint64_t T = a->top;
	uint64_t size = top_word & ~GLIBC_SIZE_BITS;
	int g = a->index;
	if (!(top_word & GLIBC_PREV_INUSE))
		gl_finding(w, a, MD_FINDING_CORRUPT, T, "top chunk 0x%llx has PREV_INUSE clear", (unsigned long long)T);
	if (T + size != h->end) {
		gl_finding(w, a, MD_FINDING_CORRUPT, T,
			   "top chunk 0x%llx size 0x%llx does not end at the heap end 0x%llx", (unsigned long long)T,
			   (unsigned long long)size, (unsigned long long)h->end);
		if (T + size > h->end || T + size < T)
			size = h->end - T;
	}
	gl_emit(w, MD_SPAN_FREE, T + 8, T + size, g);
	w->have_top = true;
	w->top_size = size;
	w->top_merge = 0;
	/* malloc_consolidate merges a run of free chunks that reaches top into top. */
	if (run->end == T && run->end > run->start) {
		if (run->has_cand)
			push_seg(w, run->start, run->end, true);
		else
			w->top_merge = run->end - run->start;
	}
	run->start = run->end = 0;
	run->has_cand = false;
}

/* The top chunk after the walk stopped early: its size word read on its own. */
static void walk_top_reread(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t read_limit,
			    struct run *run)
{
	const uint8_t *tp = gl_heap_get(w, a->top, 16, read_limit);
	uint64_t tw = tp ? gl_rd64(tp + 8) : 0;
	walk_top(w, a, h, tw ? tw : (a->top_size | GLIBC_PREV_INUSE), run);
}

/* systrim(0) of the main arena, with top's size after malloc_consolidate. */
static void main_systrim(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	if (!a->is_main || !w->have_top)
		return;
	uint64_t top_after = w->top_size + w->top_merge;
	uint64_t end = a->top + w->top_size;
	uint64_t ps = s->thp_pagesize ? s->thp_pagesize : MD_PAGE_SIZE;
	if (top_after <= GLIBC_MINSIZE + 1 || (ps & (ps - 1)))
		return;
	uint64_t extra = (top_after - GLIBC_MINSIZE - 1) & ~(ps - 1);
	const struct md_mapping *m = md_target_find_mapping(w->t, end - 1);
	/* Only when the brk is at top's end (no foreign sbrk); [heap] ends at the brk. */
	bool brk_at_end = m && m->kind == MD_MAP_HEAP && m->end == MD_PAGE_UP(end);
	if (extra && brk_at_end && extra <= w->top_size) {
		md_sink_span(w->sink, MD_SPAN_RELEASABLE, MD_PAGE_UP(end - extra), MD_PAGE_UP(end), a->index);
		a->releasable_range_bytes += MD_PAGE_UP(end) - MD_PAGE_UP(end - extra);
	}
}

static bool push_cand(struct walker *w, uint64_t p, uint64_t size, uint64_t nfd)
{
	if (w->n_cands == w->cap_cands) {
		if (w->n_cands >= GL_MAX_CACHED)
			return false;
		size_t n = w->cap_cands ? w->cap_cands * 2 : 1024;
		struct fb_cand *nc = realloc(w->cands, n * sizeof(*nc));
		if (!nc)
			return false;
		w->cands = nc;
		w->cap_cands = n;
	}
	w->cands[w->n_cands++] = (struct fb_cand){ p | (size >> 4), nfd };
	return true;
}

/* Spans and counters of an in-use chunk. The header is folded into the live span unless it is
 * alone on its page (then the page holds no allocation byte). */
static inline void emit_in_use(struct walker *w, struct gl_arena *a, uint64_t p, uint64_t next)
{
	a->inuse_count++;
	a->live_bytes += next - p - 8;
	a->overhead_bytes += 8;
	gl_hist_add(a->hist, GL_HIST_LIVE, next - p);
	if (((p + 0x10) & (MD_PAGE_SIZE - 1)) == 0) {
		gl_emit(w, MD_SPAN_OVERHEAD, p + 8, p + 0x10, a->index);
		gl_emit(w, MD_SPAN_LIVE, p + 0x10, next + 8, a->index);
	} else {
		gl_emit(w, MD_SPAN_LIVE, p + 8, next + 8, a->index);
	}
}

/* Where the fast path may read a full header view: inside the window, the heap and the
 * readable part of its mapping, and only when no page of the window was unreadable. */
static inline uint64_t fast_end(const struct walker *w, uint64_t heap_end, uint64_t read_limit)
{
	if (w->win_any_bad)
		return 0;
	uint64_t e = w->win_end;
	if (e > heap_end)
		e = heap_end;
	if (e > read_limit)
		e = read_limit;
	return e;
}

/* Membership entries at or before p: the flags of p itself; entries that fall inside the chunk
 * before p are not at a chunk boundary. */
static uint64_t member_flags(struct walker *w, struct gl_arena *a, uint64_t p, uint64_t *next_member)
{
	struct glibc_state *s = w->s;
	uint64_t flags = 0;
	while (w->cursor < s->n_cached) {
		uint64_t v = s->cached[w->cursor];
		uint64_t addr = v & ~GL_IN_FLAGS;
		if (addr > p)
			break;
		if (addr == p)
			flags = v & GL_IN_FLAGS;
		else
			gl_finding(w, a, MD_FINDING_CORRUPT, addr,
				   "tcache entry 0x%llx is not at a chunk boundary (inside the chunk before 0x%llx)",
				   (unsigned long long)addr, (unsigned long long)p);
		w->cursor++;
	}
	*next_member = w->cursor < s->n_cached ? s->cached[w->cursor] & ~GL_IN_FLAGS : UINT64_MAX;
	return flags;
}

/* A size word the fast path refused: the fenceposts that end an older heap (true: the walk
 * of this heap ends here), or a corruption (a finding; the caller resynchronises). */
static bool chunk_stop(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t p, uint64_t word,
		       struct run *run)
{
	const int g = a->index;
	uint64_t S = word & ~GLIBC_SIZE_BITS;
	/* The fencepost pair that closes an older heap: 0x11 then 0x1 in its last 0x20 bytes (0x11
	 * then 0x11, or 0x11 three times, for an old segment of a non-contiguous main arena). */
	if (!h->has_top && ((S == 0x10 && (p + 0x20 == h->end || (a->is_main && p + 0x30 == h->end))) ||
			    (S == 0 && p + 0x10 == h->end))) {
		close_run(w, a, run);
		gl_emit(w, MD_SPAN_METADATA, p + 8, h->end, g);
		a->metadata_bytes += h->end - (p + 8);
		if (S)
			h->chunks++;
		return true;
	}
	const char *bad = S < GLIBC_MINSIZE ? "below the minimum"
			  : (S & 15)         ? "not a multiple of 16"
			  : h->has_top       ? "past the top chunk"
					     : "past the heap end";
	gl_finding(w, a, MD_FINDING_CORRUPT, p, "chunk at 0x%llx has size 0x%llx %s (heap 0x%llx-0x%llx)",
		   (unsigned long long)p, (unsigned long long)word, bad, (unsigned long long)h->start,
		   (unsigned long long)h->end);
	return false;
}

/* ---------- resynchronisation after damage or unreadable pages ---------- */

#define GL_RESYNC_MAX 64                  /* resumptions per heap; then the rest is unknown */
#define GL_RESYNC_STEPS (4ULL << 20)      /* header reads per resumption */
#define GL_RESYNC_READ (256ULL << 20)     /* bytes read per resumption (window refills) */
#define GL_RESYNC_ANCHORS 4096            /* anchors tried per resumption (each costs a scan of them all) */

static void anchor_min(uint64_t *best, uint64_t v, uint64_t from, const struct gl_heap *h, uint64_t limit)
{
	if (!(v & 15) && v > from && v >= h->first && v <= limit && v < *best)
		*best = v;
}

/* The nearest address after from that the allocator's own lists prove to be a chunk of this
 * heap (a tcache entry, a fastbin or bin head, a fastbin link of a chunk walked already, the
 * last remainder), or where the heap's chain must end (top, the fenceposts of an older heap). */
static uint64_t next_anchor(const struct walker *w, const struct gl_arena *a, const struct gl_heap *h,
			    uint64_t from, uint64_t limit)
{
	const struct glibc_state *s = w->s;
	uint64_t best = h->has_top ? limit : (h->end >= h->first + 0x20 ? h->end - 0x20 : h->end);
	size_t k = gl_cached_lower_bound(s, from + 1);
	if (k < s->n_cached)
		anchor_min(&best, s->cached[k] & ~GL_IN_FLAGS, from, h, limit);
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		anchor_min(&best, a->fastbins[i], from, h, limit);
	for (unsigned i = 0; i < 2 * GLIBC_NBINS - 2; i++)
		anchor_min(&best, a->bins[i], from, h, limit);
	anchor_min(&best, a->last_remainder, from, h, limit);
	for (size_t i = 0; i < w->n_cands; i++)
		anchor_min(&best, w->cands[i].nfd & ~15ULL, from, h, limit);
	return best;
}

/* Does the chain of headers from c land exactly on q? */
static bool chain_reaches(struct walker *w, const struct gl_heap *h, uint64_t c, uint64_t q, uint64_t read_limit,
			  uint64_t *budget)
{
	while (c < q) {
		if (!*budget)
			return false;
		--*budget;
		const uint8_t *hp = gl_win_get(w, c, 16, read_limit);
		if (!hp)
			return false;
		uint64_t S = gl_rd64(hp + 8) & ~GLIBC_SIZE_BITS;
		bool fencepost = S == 0x10 && !h->has_top && c + 0x30 >= h->end;
		if ((S < GLIBC_MINSIZE && !fencepost) || (S & 15) || S > q - c)
			return false;
		c += S;
	}
	return c == q;
}

/* Where the walk can go on after it lost the chain at bad (a damaged size word, or a header it
 * cannot read): the first address after bad whose header chain lands exactly on the next
 * anchor, else the anchor itself; 0 when nothing after bad can be proven. Reads through the
 * walker's own window (the stream, if any, is stopped first: this goes back and forth). */
static uint64_t resync(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t bad, uint64_t limit,
		       uint64_t read_limit)
{
	gl_stream_finish(w);
	uint64_t budget = GL_RESYNC_STEPS;
	const uint64_t read_start = w->s->read_bytes; /* candidates going back and forth refill the window */
	unsigned anchors = 0;
	for (uint64_t from = bad; from < limit && anchors++ < GL_RESYNC_ANCHORS;) {
		uint64_t q = next_anchor(w, a, h, from, limit);
		if (q > limit || q <= from)
			return 0;
		for (uint64_t c = (from + 16) & ~15ULL; c < q && budget; c += 16) {
			if (w->s->read_bytes - read_start > GL_RESYNC_READ)
				budget = 0;
			if (!gl_win_get(w, c, 16, read_limit)) {
				c = MD_PAGE_UP(c + 1) - 16; /* an unreadable page: its headers are unknown */
				continue;
			}
			if (chain_reaches(w, h, c, q, read_limit, &budget))
				return c;
		}
		/* The anchor itself, when its header can be read (or it is the end of the heap). */
		if (q == limit && h->has_top)
			return gl_win_get(w, q, 16, read_limit) ? q : 0;
		if (gl_win_get(w, q, 16, read_limit))
			return q;
		from = q;
	}
	return 0;
}

/* Bytes [from, q) are unknown; the walk goes on at q with its header in view. */
static bool resume(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t from, uint64_t q,
		   uint64_t limit, uint64_t read_limit, struct run *run, uint8_t *view)
{
	size_t n = q + GL_HDR_VIEW <= h->end ? GL_HDR_VIEW : 16;
	const uint8_t *hp = gl_heap_get(w, q, n, read_limit);
	if (!hp || q > limit)
		return false;
	memset(view, 0, GL_HDR_VIEW);
	memcpy(view, hp, n);
	skip_unknown(w, a, from, q, run);
	return true;
}

/* The chain was lost at bad (from: the first byte not classified): where the walk goes on with
 * the header there in view, or 0 when it cannot (then the caller gives up on the rest). */
static uint64_t lost_chain(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t from, uint64_t bad,
			   uint64_t limit, uint64_t read_limit, struct run *run, uint8_t *view, unsigned *resyncs)
{
	uint64_t q = (*resyncs)++ < GL_RESYNC_MAX ? resync(w, a, h, bad, limit, read_limit) : 0;
	return q && resume(w, a, h, from, q, limit, read_limit, run, view) ? q : 0;
}

/* The rest of the heap from p is unknown; the top chunk is still read on its own. */
static void give_up(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t p, uint64_t limit,
		    uint64_t read_limit, struct run *run)
{
	skip_unknown(w, a, p, limit, run);
	if (h->has_top)
		walk_top_reread(w, a, h, read_limit, run);
}

/* The walk proper. While a stream runs it must not call md_target_*: all target memory comes
 * through gl_heap_get, at increasing addresses. */
static void walk_chunks(struct walker *w, struct gl_arena *a, struct gl_heap *h, uint64_t read_limit)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	const int g = a->index;
	const uint64_t limit = h->has_top ? a->top : h->end; /* ordinary chunks end by here */
	const uint64_t stop_at = h->has_top ? a->top : UINT64_MAX;
	const uint64_t want_nonmain = a->is_main ? 0 : GLIBC_NON_MAIN_ARENA;
	struct run run = { 0, 0, false };
	/* Fastbin sizes that have a list at all: only those chunks can be candidates. */
	unsigned fast_mask = 0;
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		if (a->fastbins[i])
			fast_mask |= 1u << i;
	/* Candidates' fd must reveal to a chunk of this arena: first a bounding-box test. */
	uint64_t arena_lo = UINT64_MAX, arena_hi = 0;
	for (size_t k = 0; k < a->n_heaps; k++) {
		arena_lo = a->heaps[k].start < arena_lo ? a->heaps[k].start : arena_lo;
		arena_hi = a->heaps[k].end > arena_hi ? a->heaps[k].end : arena_hi;
	}

	if (!w->stream)
		gl_win_reset(w);
	gl_emit(w, MD_SPAN_METADATA, h->start, h->first + 8, g);
	a->metadata_bytes += h->first + 8 - h->start;
	w->cursor = gl_cached_lower_bound(s, h->first);
	uint64_t next_member = w->cursor < s->n_cached ? s->cached[w->cursor] & ~GL_IN_FLAGS : UINT64_MAX;

	uint64_t p = h->first;
	uint8_t view[GL_HDR_VIEW];
	unsigned resyncs = 0;
	{
		size_t n = p + GL_HDR_VIEW <= h->end ? GL_HDR_VIEW : 16;
		const uint8_t *hp = gl_heap_get(w, p, n, read_limit);
		if (!hp) {
			a->nonresident_stops++;
			gl_finding(w, a, MD_FINDING_INFO, p,
				   "first chunk 0x%llx is not resident (swapped out): the walk resumes after it",
				   (unsigned long long)p);
			uint64_t r = lost_chain(w, a, h, p, p, limit, read_limit, &run, view, &resyncs);
			if (!r) {
				give_up(w, a, h, p, limit, read_limit, &run);
				return;
			}
			p = r;
		} else {
			memset(view, 0, sizeof(view));
			memcpy(view, hp, n);
		}
	}
	/* The current chunk's size word and, when they are inside the heap, fd/bk/nextsize. */
	uint64_t word, fd, bk, fdn, bkn;
#define LOAD_VIEW()                                                                                \
	(word = gl_rd64(view + 8), fd = gl_rd64(view + 0x10), bk = gl_rd64(view + 0x18),            \
	 fdn = gl_rd64(view + 0x20), bkn = gl_rd64(view + 0x28))
	LOAD_VIEW();
	uint64_t fast_to = fast_end(w, h->end, read_limit);
	uint64_t chunks = 0;

	for (;;) {
		if (p == stop_at) {
			walk_top(w, a, h, word, &run);
			break;
		}
		const uint64_t S = word & ~GLIBC_SIZE_BITS;
		if (__builtin_expect(S < GLIBC_MINSIZE || (S & 15) || S > limit - p, 0)) {
			if (chunk_stop(w, a, h, p, word, &run))
				break;
			uint64_t q = lost_chain(w, a, h, p, p, limit, read_limit, &run, view, &resyncs);
			if (!q) {
				give_up(w, a, h, p, limit, read_limit, &run);
				break;
			}
			p = q;
			LOAD_VIEW();
			fast_to = fast_end(w, h->end, read_limit);
			continue;
		}
		const uint64_t next = p + S;
		chunks++;
		const uint8_t *np;
		if (__builtin_expect(next >= w->win_start && next + GL_HDR_VIEW <= fast_to, 1)) {
			np = w->buf + (next - w->win_start);
			/* The chain of headers is a chain of dependent loads: fetch the window ahead. */
			__builtin_prefetch(np + 1024);
		} else {
			/* Window refill, or the last header of the heap (fd/bk beyond the heap read as 0). */
			if (next + 16 > h->end) {
				gl_finding(w, a, MD_FINDING_CORRUPT, p,
					   "chunk at 0x%llx ends at the heap end without a fencepost", (unsigned long long)p);
				np = NULL;
			} else {
				size_t n = next + GL_HDR_VIEW <= h->end ? GL_HDR_VIEW : (size_t)(h->end - next);
				w->hdr_step = S; /* the stream reads sparsely after large chunks */
				const uint8_t *q = gl_heap_get(w, next, n, read_limit);
				fast_to = fast_end(w, h->end, read_limit);
				if (!q) {
					/* Not resident: unknown, never evidence of damage. */
					a->nonresident_stops++;
					gl_finding(w, a, MD_FINDING_INFO, next,
						   "chunk header at 0x%llx is not resident (swapped out): the walk resumes after it",
						   (unsigned long long)next);
					uint64_t r = lost_chain(w, a, h, p, next, limit, read_limit, &run, view, &resyncs);
					if (r) {
						p = r;
						LOAD_VIEW();
						fast_to = fast_end(w, h->end, read_limit);
						continue;
					}
					np = NULL;
				} else if (n == GL_HDR_VIEW) {
					np = q;
				} else {
					memset(view, 0, sizeof(view));
					memcpy(view, q, n);
					np = view;
				}
			}
			if (!np) {
				give_up(w, a, h, p, limit, read_limit, &run);
				break;
			}
			/* An old top too small to be freed stays a chunk (no NON_MAIN_ARENA) before the
			 * 0x1 end marker: part of the fencepost. */
			if (!a->is_main && !h->has_top && next + 0x10 == h->end && (gl_rd64(np + 8) & ~GLIBC_SIZE_BITS) == 0) {
				close_run(w, a, &run);
				gl_emit(w, MD_SPAN_METADATA, p + 8, h->end, g);
				a->metadata_bytes += h->end - (p + 8);
				break;
			}
		}
		/* Values now: the next refill may move the window. */
		const uint64_t next_prev_size = gl_rd64(np), next_word = gl_rd64(np + 8);
		const uint64_t next_fd = gl_rd64(np + 0x10), next_bk = gl_rd64(np + 0x18);
		const uint64_t next_fdn = gl_rd64(np + 0x20), next_bkn = gl_rd64(np + 0x28);

		uint64_t flags = 0;
		if (__builtin_expect(p >= next_member, 0))
			flags = member_flags(w, a, p, &next_member);

		if (__builtin_expect(flags != 0, 0)) {
			if (flags & GL_IN_TCSTRUCT) {
				close_run(w, a, &run);
				gl_emit(w, MD_SPAN_METADATA, p + 8, next + 8, g);
				a->metadata_bytes += S;
			} else {
				if (!(next_word & GLIBC_PREV_INUSE))
					gl_finding(w, a, MD_FINDING_CORRUPT, p,
						   "chunk 0x%llx is in a tcache but its neighbour says it is free (double free)",
						   (unsigned long long)p);
				close_run(w, a, &run);
				gl_emit(w, MD_SPAN_CACHED, p + 8, next + 8, g);
				a->tcache_count++;
				a->tcache_bytes += S;
				gl_hist_add(a->hist, GL_HIST_CACHED, S);
			}
		} else if (!(next_word & GLIBC_PREV_INUSE)) {
			/* Binned: glibc's unlink_chunk demands size == the next chunk's prev_size. Only
			 * here is prev_size a footer; after an in-use, tcache or fastbin chunk it is that
			 * chunk's payload. */
			a->edge_fd += gl_edge_hash(p, fd);
			a->edge_bk += gl_edge_hash(bk, p);
			if (S >= GL_MIN_LARGE_SIZE && (fdn | bkn)) {
				a->nedge_fd += gl_edge_hash(p, fdn);
				a->nedge_bk += gl_edge_hash(bkn, p);
				a->nextsize_links++;
			}
			a->bin_count++;
			a->bin_bytes += S;
			gl_hist_add(a->hist, GL_HIST_FREE, S);
			if (__builtin_expect(next_prev_size != S, 0))
				gl_finding(w, a, MD_FINDING_CORRUPT, next,
					   "free chunk 0x%llx (size 0x%llx) has footer 0x%llx (the next chunk's prev_size)",
					   (unsigned long long)p, (unsigned long long)S, (unsigned long long)next_prev_size);
			if (__builtin_expect(!(word & GLIBC_PREV_INUSE), 0))
				gl_finding(w, a, MD_FINDING_CORRUPT, p, "free chunk 0x%llx follows another free chunk",
					   (unsigned long long)p);
			gl_emit(w, MD_SPAN_FREE, p + 8, next + 8, g);
			run_add(&run, p, next, false);
		} else {
			if (__builtin_expect((word & (GLIBC_NON_MAIN_ARENA | GLIBC_IS_MMAPPED)) != want_nonmain, 0))
				gl_finding(w, a, MD_FINDING_CORRUPT, p, "in-use chunk 0x%llx has flags 0x%llx in %s arena",
					   (unsigned long long)p, (unsigned long long)(word & GLIBC_SIZE_BITS),
					   a->is_main ? "the main" : "a thread");
			/* Could it be a fastbin chunk (they look in use)? Its fd must reveal to 0 or to
			 * an aligned chunk of this arena: live data rarely does once safe-linked. */
			bool cand = false;
			if (S <= 0x20 + 16ULL * (GLIBC_NFASTBINS - 1) && (fast_mask & (1u << ((S >> 4) - 2)))) {
				uint64_t nfd = gl_reveal(l, p + 0x10, fd);
				bool link = !nfd;
				if (!link && !(nfd & 15) && nfd >= arena_lo && nfd < arena_hi) {
					const struct heap_range *r = gl_range_of(w, nfd, GLIBC_MINSIZE);
					link = r && &s->arenas[r->arena] == a;
				}
				if (link) {
					cand = push_cand(w, p, S, nfd);
					if (!cand && !w->cand_overflow) {
						w->cand_overflow = true;
						gl_finding(w, a, MD_FINDING_WARNING, p,
							   "too many fastbin candidates; fastbins partly unresolved");
					}
				}
			}
			if (cand) {
				run_add(&run, p, next, true);
			} else {
				if (run.end > run.start)
					close_run(w, a, &run);
				emit_in_use(w, a, p, next);
			}
		}
		p = next;
		word = next_word;
		fd = next_fd;
		bk = next_bk;
		fdn = next_fdn;
		bkn = next_bkn;
	}
#undef LOAD_VIEW
	h->chunks += chunks;
	close_run(w, a, &run);
	/* Entries left inside this heap were not at any chunk start. */
	while (w->cursor < s->n_cached && (s->cached[w->cursor] & ~GL_IN_FLAGS) < h->end) {
		uint64_t addr = s->cached[w->cursor] & ~GL_IN_FLAGS;
		if (addr >= h->first && a->unknown_bytes == 0)
			gl_finding(w, a, MD_FINDING_CORRUPT, addr, "tcache entry 0x%llx is not at a chunk boundary",
				   (unsigned long long)addr);
		w->cursor++;
	}
	/* The rw tail a shrunk heap keeps mapped: allocator memory, normally not resident. */
	if (h->mprotect_end > h->end)
		gl_emit(w, MD_SPAN_FREE, h->end, h->mprotect_end, g);
}

/* Heaps of at least this many windows are read ahead on a helper thread (stream.c). */
#define STREAM_MIN_WINDOWS 2

void gl_walk_heap(struct walker *w, struct gl_arena *a, struct gl_heap *h)
{
	const uint64_t run_end = gl_mapped_run_end(w->t, h->first);
	const uint64_t read_limit = run_end && run_end < h->end ? run_end : h->end;
	/* A stream that cannot start (no memory, no thread) leaves the walk to read in turn; a heap
	 * the target holds in place (a mapped core) needs no read ahead. */
	if (read_limit > h->first && !w->no_stream && !md_target_view(w->t, MD_PAGE_DOWN(h->first), MD_PAGE_SIZE) &&
	    MD_PAGE_UP(read_limit) - MD_PAGE_DOWN(h->first) >= STREAM_MIN_WINDOWS * (uint64_t)GL_WIN_SIZE)
		gl_stream_start(w, h->first, read_limit);
	walk_chunks(w, a, h, read_limit);
	gl_stream_finish(w);
}

/* ---------- fastbins, resolved against the walk's candidates ---------- */

static int cand_cmp(const void *x, const void *y)
{
	uint64_t a = ((const struct fb_cand *)x)->p_sz & ~15ULL, b = ((const struct fb_cand *)y)->p_sz & ~15ULL;
	return a < b ? -1 : a > b;
}

static inline uint64_t cand_addr(const struct walker *w, size_t i)
{
	return w->cands[i].p_sz & ~15ULL;
}

/* Index of the candidate at chunk p, or SIZE_MAX. A galloping search from the previous hit:
 * lists built by frees in address order step to a near neighbour, so a lookup costs O(log d)
 * for a distance d in the sorted array instead of O(log n) cache misses. */
static size_t cand_find(const struct walker *w, uint64_t p, size_t hint)
{
	size_t n = w->n_cands;
	if (!n)
		return SIZE_MAX;
	if (hint >= n)
		hint = n - 1;
	size_t lo, hi; /* answer in [lo, hi) */
	if (cand_addr(w, hint) <= p) {
		size_t step = 1;
		lo = hint;
		hi = hint + 1;
		while (hi < n && cand_addr(w, hi) <= p) {
			lo = hi;
			hi = hi + step < n ? hi + step : n;
			step <<= 1;
		}
		if (hi < n)
			hi++;
	} else {
		size_t step = 1;
		hi = hint;
		lo = hint;
		while (lo > 0 && cand_addr(w, lo) > p) {
			hi = lo;
			lo = lo > step ? lo - step : 0;
			step <<= 1;
		}
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v = cand_addr(w, mid);
		if (v == p)
			return mid;
		if (v < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* First candidate at or after address p, searching from index from (candidates are sorted). */
static size_t cand_find_ge(const struct walker *w, uint64_t p, size_t from)
{
	size_t lo = from, hi = w->n_cands;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cand_addr(w, mid) < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Is p inside bytes the walk skipped (or might have: the list of them overflowed)? */
static bool in_unknown(const struct walker *w, uint64_t p)
{
	for (size_t i = 0; i < w->n_unknown; i++)
		if (p >= w->unknown[i][0] && p < w->unknown[i][1])
			return true;
	return w->unknown_overflow;
}

/* Why a chunk a fastbin links to is not one of the walk's candidates, for the finding. */
static void explain_fastbin_break(struct walker *w, struct gl_arena *a, int i, uint64_t p, uint64_t from)
{
	const struct glibc_layout *l = &w->s->layout;
	const struct heap_range *r = (p & 15) ? NULL : gl_range_of(w, p, GLIBC_MINSIZE);
	if (!r || &w->s->arenas[r->arena] != a) {
		gl_finding(w, a, MD_FINDING_CORRUPT, from, "fastbin %d: chunk 0x%llx links to 0x%llx, %s", i,
			   (unsigned long long)from, (unsigned long long)p,
			   (p & 15) ? "a misaligned pointer (bad fd)" : "outside the arena's heaps");
		return;
	}
	uint8_t hdr[16]; /* size word, fd */
	struct md_error *err = md_target_read(w->t, p + 8, hdr, sizeof(hdr));
	if (err) {
		char what[64];
		snprintf(what, sizeof(what), "fastbin %d: chunk 0x%llx", i, (unsigned long long)p);
		gl_unreadable(w, a, p, err, what);
		return;
	}
	if (a->nonresident_stops && in_unknown(w, p)) {
		/* Its header was read now, but the walk skipped it: behind pages it could not read. */
		gl_finding(w, a, MD_FINDING_INFO, p,
			   "fastbin %d: chunk 0x%llx lies in bytes the walk could not classify (swapped-out pages before it)",
			   i, (unsigned long long)p);
		return;
	}
	uint64_t size = gl_rd64(hdr) & ~GLIBC_SIZE_BITS, nfd = gl_reveal(l, p + 0x10, gl_rd64(hdr + 8));
	const char *why = size != 0x20 + 16ULL * i ? "has the wrong size"
			  : nfd & 15                   ? "has a misaligned fd (bad fd)"
			  : nfd                        ? "has an fd outside the arena's heaps"
						       : "is not a chunk start, is in a tcache, or is marked free";
	gl_finding(w, a, MD_FINDING_CORRUPT, p, "fastbin %d: chunk 0x%llx (size 0x%llx, fd 0x%llx) %s", i,
		   (unsigned long long)p, (unsigned long long)size, (unsigned long long)nfd, why);
}

/* Follow each fastbin list through the candidates (no reads), then give every candidate its
 * final state and split the deferred runs at the candidates that are not free. */
void gl_resolve_fastbins(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	bool sorted = true;
	for (size_t k = 1; k < w->n_cands && sorted; k++)
		sorted = cand_addr(w, k - 1) < cand_addr(w, k);
	if (!sorted && w->n_cands > 1)
		qsort(w->cands, w->n_cands, sizeof(*w->cands), cand_cmp);
	for (int i = 0; i < GLIBC_NFASTBINS; i++) {
		uint64_t p = a->fastbins[i];
		uint64_t from = a->address + l->ms_fastbins + 8 * i;
		uint64_t want = 0x20 + 16ULL * i;
		size_t steps = 0, hint = w->n_cands;
		while (p) {
			size_t ci = (p & 15) ? SIZE_MAX : cand_find(w, p, hint);
			if (ci == SIZE_MAX) {
				explain_fastbin_break(w, a, i, p, from);
				break;
			}
			struct fb_cand *c = &w->cands[ci];
			hint = ci;
			if (c->nfd & FB_MEMBER) {
				gl_finding(w, a, MD_FINDING_CORRUPT, from, "fastbin %d: chunk 0x%llx links back to 0x%llx (cycle)",
					   i, (unsigned long long)from, (unsigned long long)p);
				break;
			}
			if (++steps > w->n_cands)
				break;
			uint64_t size = (c->p_sz & 15) << 4;
			if (size != want)
				gl_finding(w, a, MD_FINDING_CORRUPT, p, "fastbin %d: chunk 0x%llx has size 0x%llx, expected 0x%llx",
					   i, (unsigned long long)p, (unsigned long long)size, (unsigned long long)want);
			c->nfd |= FB_MEMBER;
			a->fast_count++;
			a->fast_bytes += size;
			from = p;
			p = c->nfd & ~15ULL;
		}
	}
	/* Candidates: cached when on a list, otherwise ordinary chunks in use. */
	for (size_t k = 0; k < w->n_cands; k++) {
		const struct fb_cand *c = &w->cands[k];
		uint64_t p = c->p_sz & ~15ULL, size = (c->p_sz & 15) << 4, next = p + size;
		if (c->nfd & FB_MEMBER) {
			gl_emit(w, MD_SPAN_CACHED, p + 8, next + 8, a->index);
			a->fastwalk_count++;
			a->fastwalk_bytes += size;
			gl_hist_add(a->hist, GL_HIST_CACHED, size);
		} else {
			emit_in_use(w, a, p, next);
		}
	}
	gl_flush_span(w);
	/* Deferred runs: split at candidates that stayed in use. */
	size_t ci = 0;
	uint64_t prev_end = 0;
	for (size_t k = 0; k < w->n_segs; k++) {
		const struct fb_seg *sg = &w->segs[k];
		uint64_t start = sg->start;
		/* Segments come in address order like the candidates, so the cursor only moves
		 * forward; should heaps overlap (hostile heap_info), it starts over. */
		if (sg->start < prev_end)
			ci = 0;
		prev_end = sg->end;
		if (ci < w->n_cands && cand_addr(w, ci) < sg->start)
			ci = cand_find_ge(w, sg->start, ci);
		for (; ci < w->n_cands && cand_addr(w, ci) < sg->end; ci++) {
			const struct fb_cand *c = &w->cands[ci];
			if (c->nfd & FB_MEMBER)
				continue;
			uint64_t p = c->p_sz & ~15ULL;
			release_run(w, a, start, p);
			start = p + ((c->p_sz & 15) << 4);
		}
		if (sg->to_top)
			w->top_merge = sg->end - start;
		else
			release_run(w, a, start, sg->end);
	}
	main_systrim(w, a);
	w->n_cands = 0;
	w->n_segs = 0;
}
