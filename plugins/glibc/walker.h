/* The walker's working state, shared by walk.c (order of the walk: parameters, arena ring,
 * heaps, tcaches, mmapped chunks, mallinfo), chunks.c (the streaming chunk walk of one heap,
 * fastbin resolution, malloc_trim runs) and bins.c (bin lists and their link checks).
 * Lives only for one walk() call. */
#ifndef MD_GLIBC_WALKER_H
#define MD_GLIBC_WALKER_H

#include <string.h>

#include "glibc_internal.h"

/* Heaps are streamed through one window of this size. 256 KiB is the smallest read that
 * bypasses the target's block cache, and it stays in L2 while the chunks are parsed. */
#define GL_WIN_SIZE (256u * 1024u)
#define GL_WIN_PAGES (GL_WIN_SIZE / 4096u)
/* Heaps are read ahead by up to this many threads, into a ring of up to this many windows. */
#define GL_STREAM_MAX_READERS 4
#define GL_STREAM_MAX_BUFS (2 * GL_STREAM_MAX_READERS + 2)
/* Bytes of a chunk header the walk looks at: prev_size, size, fd, bk, fd_nextsize, bk_nextsize. */
#define GL_HDR_VIEW 0x30u
#define GL_CHASE_BUDGET (8ULL << 20) /* pointer-chasing steps per walk, all lists together */
#define GL_MAX_UNKNOWN_RANGES 256
#define GL_MIN_LARGE_SIZE 0x400ULL   /* MIN_LARGE_SIZE: chunks this big go to large bins */
#define GLIBC_NONCONTIGUOUS_BIT 2u   /* malloc_state.flags: the main arena left its sbrk heap */

struct heap_range {
	uint64_t start, end;  /* [heap start, walk end) */
	uint64_t reserve_end; /* end of the rw mapping part (mprotect_size) */
	int arena;            /* index in s->arenas */
};

/* A chunk that looks in use, has a fastbin size and an fd that could be a fastbin link. */
struct fb_cand {
	uint64_t p_sz; /* chunk address | size >> 4 */
	uint64_t nfd;  /* revealed fd | FB_MEMBER once found on a list */
};

struct fb_seg {
	uint64_t start, end;
	bool to_top;
};

struct walker {
	struct glibc_state *s;
	struct md_target *t;
	struct md_sink *sink;

	/* Pending span, merged with contiguous spans of the same kind and group. */
	int pend_kind;
	int pend_group;
	uint64_t pend_start, pend_end;

	/* The window the walk reads: [win_start, win_end) of target memory at buf, either the
	 * walker's own buffer or, while a heap is streamed (stream.c), the reader's current one.
	 * Page aligned: a destination 8-24 bytes into a page (a large malloc gives 16) makes the
	 * kernel's copy in process_vm_readv 2.5x slower on this machine. */
	uint8_t *buf;
	uint64_t win_start, win_end;
	bool win_any_bad;
	bool win_in_place; /* buf points into the target itself (md_target_view: a mapped core) */
	uint8_t *own_buf;
	uint8_t win_bad[GL_WIN_PAGES + 1]; /* own window: page not readable (swapped out, unmapped) */
	struct gl_stream *stream;          /* read-ahead of the heap being walked, or NULL */
	uint8_t *ring[GL_STREAM_MAX_BUFS]; /* the streams' windows, kept from heap to heap */
	bool no_stream;                    /* MEMDISSECT_GLIBC_STREAM=0: read heaps in turn */
	uint8_t view[GL_HDR_VIEW];         /* a header across two stream windows */
	uint64_t hdr_step;                 /* size of the chunk before the header asked for */

	struct heap_range *ranges;
	size_t n_ranges;

	size_t cursor; /* into s->cached during a heap walk */

	/* Per arena: fastbin candidates and runs waiting for them; the top chunk. */
	struct fb_cand *cands;
	size_t n_cands, cap_cands;
	struct fb_seg *segs;
	size_t n_segs, cap_segs;
	bool cand_overflow;
	bool have_top;
	uint64_t top_size, top_merge;
	/* Ranges the chunk walk skipped (unknown bytes), to explain lists that lead into them. */
	uint64_t unknown[GL_MAX_UNKNOWN_RANGES][2];
	size_t n_unknown;
	bool unknown_overflow;
	uint64_t chase_steps;
	double chase_deadline; /* ms, monotonic; 0 until the first chase */
	bool inconsistent;
};

/* walk.c */
double gl_now_ms(void);
void gl_finding(struct walker *w, struct gl_arena *a, enum md_finding_severity sev, uint64_t addr,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void gl_flush_span(struct walker *w);
/* A read of the allocator's structure failed: a swapped-out page is unknown, never damage (an
 * info finding, counted in a->nonresident_stops); anything else is a corrupt finding. what is
 * the finding's text ("bin 3: chunk 0x..."); err is consumed. */
void gl_unreadable(struct walker *w, struct gl_arena *a, uint64_t addr, struct md_error *err, const char *what);
void gl_win_reset(struct walker *w);
/* [addr, addr+n) of target memory through the window, n <= GL_HDR_VIEW; limit is where reading
 * must stop (end of the heap or mapping). NULL when unreadable. Valid until the next call. */
const uint8_t *gl_win_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit);
/* stream.c: read [from, to) ahead on a helper thread (false: not possible, read it yourself);
 * until gl_stream_finish the walking thread must not call md_target_* (see stream.c). */
bool gl_stream_start(struct walker *w, uint64_t from, uint64_t to);
void gl_stream_finish(struct walker *w);
/* Free the windows the streams kept (after the walk). */
void gl_stream_free_ring(struct walker *w);
const uint8_t *gl_stream_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit);

/* Target memory for the chunk walk: the stream when one runs, else the walker's window.
 * Addresses must not decrease from one call to the next while a stream runs. */
static inline const uint8_t *gl_heap_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit)
{
	return w->stream ? gl_stream_get(w, addr, n, limit) : gl_win_get(w, addr, n, limit);
}

/* End of the run of adjacent readable mappings of one kind holding addr, 0 when unmapped. */
uint64_t gl_mapped_run_end(struct md_target *t, uint64_t addr);
/* The heap range holding [addr, addr+len), or NULL. */
const struct heap_range *gl_range_of(const struct walker *w, uint64_t addr, uint64_t len);
size_t gl_cached_lower_bound(const struct glibc_state *s, uint64_t addr);

/* chunks.c */
void gl_walk_heap(struct walker *w, struct gl_arena *a, struct gl_heap *h);
void gl_resolve_fastbins(struct walker *w, struct gl_arena *a);

/* bins.c */
unsigned gl_bin_index(uint64_t size);
/* Every bin list, in the bk direction as int_mallinfo walks it, and the large bins'
 * fd_nextsize rings: each link checked, counts compared with the walk. */
void gl_chase_bins(struct walker *w, struct gl_arena *a);
/* Only the fd_nextsize rings (their edge sums differed). */
void gl_chase_nextsize(struct walker *w, struct gl_arena *a);

static inline uint64_t gl_rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t gl_rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t gl_reveal(const struct glibc_layout *l, uint64_t field_addr, uint64_t stored)
{
	return l->safe_linking ? (field_addr >> 12) ^ stored : stored;
}

static inline void gl_emit(struct walker *w, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (end <= start)
		return;
	if (w->pend_kind == (int)kind && w->pend_group == group && w->pend_end == start) {
		w->pend_end = end;
		return;
	}
	gl_flush_span(w);
	w->pend_kind = (int)kind;
	w->pend_group = group;
	w->pend_start = start;
	w->pend_end = end;
}

/* A commutative sum of these over every fd link equals the sum over every bk link exactly when
 * each fd link has its bk twin (up to 2^-64 collisions). */
static inline uint64_t gl_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static inline uint64_t gl_edge_hash(uint64_t from, uint64_t to)
{
	return gl_mix64(from * 0x9e3779b97f4a7c15ULL ^ (to << 32 | to >> 32) ^ 0x632be59bd9b4e019ULL);
}

#endif
