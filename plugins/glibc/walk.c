/* The glibc heap walker. Runs in the pause; reads target memory only through target.h.
 *
 * Order: mp_ and the arena ring; each arena's heaps; every thread's tcache (its chunks look in
 * use, so they are collected first into a sorted membership array); then each heap is streamed
 * in large windows and every chunk classified from its header and its neighbour's PREV_INUSE
 * bit. Fastbin chunks look in use too, but chasing the fastbin lists would read the heap once
 * more per list: instead the walk keeps every in-use-looking chunk of a fastbin size whose
 * (safe-linked) fd could be a link as a candidate, and the lists are followed through the
 * candidates afterwards without reading. Last, mmapped chunks are found by scanning anonymous
 * mappings. Memory use does not grow with the heap, except for tcache entries and candidates.
 *
 * Target memory is hostile: every pointer is checked against the heaps it must lie in, every
 * list walk is bounded and checked for cycles (Brent), and a violation becomes a finding. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glibc_internal.h"

/* Monotonic milliseconds. */
static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Time spent per phase of the walk, for the report (docs/performance.md uses it). */
#define PHASE(name)                                                                                \
	do {                                                                                       \
		double now_ = now_ms();                                                            \
		s->phase_ms[GL_PHASE_##name] += now_ - phase_t0;                                   \
		phase_t0 = now_;                                                                   \
	} while (0)

#define WIN_SIZE (256u * 1024u)
#define WIN_PAGES (WIN_SIZE / 4096u)
#define CHASE_BUDGET (8ULL << 20) /* pointer-chasing steps per walk, all lists together */

struct heap_range {
	uint64_t start, end; /* [first chunk's heap start, walk end) */
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

	/* Streaming window over target memory. */
	uint8_t *buf;
	uint64_t win_start, win_end;
	uint8_t win_bad[WIN_PAGES + 1]; /* page not readable (swapped out, unmapped) */
	bool win_any_bad;

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
	uint64_t chase_steps;
	double chase_deadline; /* ms, monotonic; 0 until the first chase */
	bool inconsistent;
};

/* ---------- findings ---------- */

static void finding(struct walker *w, struct gl_arena *a, enum md_finding_severity sev, uint64_t addr,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void finding(struct walker *w, struct gl_arena *a, enum md_finding_severity sev, uint64_t addr,
		    const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->s->findings_total++;
	int group = -1;
	if (a) {
		group = a->index;
		a->findings++;
		if (a->state == GL_ARENA_INCONSISTENT) {
			/* Expected while a thread is mid-update: not evidence of corruption. */
			if (sev == MD_FINDING_CORRUPT)
				sev = MD_FINDING_WARNING;
		} else if (sev == MD_FINDING_CORRUPT) {
			a->state = GL_ARENA_CORRUPT;
		}
		if (a->findings_emitted >= GL_MAX_FINDINGS_PER_ARENA)
			return;
		a->findings_emitted++;
		md_sink_finding(w->sink, sev, addr, group, "arena %d%s: %s", a->index,
				a->state == GL_ARENA_INCONSISTENT ? " (mid-update)" : "", msg);
		return;
	}
	if (w->s->mmapped_findings++ >= GL_MAX_FINDINGS_PER_ARENA)
		return;
	md_sink_finding(w->sink, sev, addr, group, "%s", msg);
}

/* ---------- spans ---------- */

static void flush_span(struct walker *w)
{
	if (w->pend_kind >= 0 && w->pend_end > w->pend_start)
		md_sink_span(w->sink, (enum md_span_kind)w->pend_kind, w->pend_start, w->pend_end, w->pend_group);
	w->pend_kind = -1;
}

static inline void emit(struct walker *w, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (end <= start)
		return;
	if (w->pend_kind == (int)kind && w->pend_group == group && w->pend_end == start) {
		w->pend_end = end;
		return;
	}
	flush_span(w);
	w->pend_kind = (int)kind;
	w->pend_group = group;
	w->pend_start = start;
	w->pend_end = end;
}

/* ---------- reading ---------- */

static void win_reset(struct walker *w)
{
	w->win_start = w->win_end = 0;
}

/* Fill the window with [start, end), page by page when a block read fails, marking pages that
 * cannot be read (swapped out: MD_ERR_NOT_RESIDENT is a finding for the caller, not fatal). */
static void win_fill(struct walker *w, uint64_t start, uint64_t end)
{
	w->win_start = start;
	w->win_end = end;
	w->win_any_bad = false;
	memset(w->win_bad, 0, sizeof(w->win_bad));
	struct md_error *err = md_target_read(w->t, start, w->buf, (size_t)(end - start));
	if (!err)
		return;
	md_error_destroy(err);
	for (uint64_t p = start; p < end; p += MD_PAGE_SIZE) {
		size_t i = (size_t)((p - start) / MD_PAGE_SIZE);
		err = md_target_read(w->t, p, w->buf + (p - start), MD_PAGE_SIZE);
		if (err) {
			md_error_destroy(err);
			memset(w->buf + (p - start), 0, MD_PAGE_SIZE);
			w->win_bad[i] = 1;
			w->win_any_bad = true;
		}
	}
}

/* [addr, addr+n) of target memory, n small; limit is where reading must stop (end of the heap
 * or mapping). NULL when unreadable. */
static const uint8_t *win_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit)
{
	if (addr + n < addr || addr + n > limit)
		return NULL;
	if (addr < w->win_start || addr + n > w->win_end) {
		uint64_t start = MD_PAGE_DOWN(addr);
		uint64_t end = MD_PAGE_UP(limit);
		if (end - start > WIN_SIZE)
			end = start + WIN_SIZE;
		win_fill(w, start, end);
	}
	if (w->win_any_bad) {
		for (uint64_t p = MD_PAGE_DOWN(addr); p < addr + n; p += MD_PAGE_SIZE)
			if (w->win_bad[(p - w->win_start) / MD_PAGE_SIZE])
				return NULL;
	}
	return w->buf + (addr - w->win_start);
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t field64(const uint8_t *base, uint32_t off)
{
	return off == GLIBC_OFF_NONE ? 0 : rd64(base + off);
}

static uint32_t field32(const uint8_t *base, uint32_t off)
{
	return off == GLIBC_OFF_NONE ? 0 : rd32(base + off);
}

/* ---------- heap ranges ---------- */

static int range_cmp(const void *a, const void *b)
{
	const struct heap_range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static struct md_error *build_ranges(struct walker *w)
{
	struct glibc_state *s = w->s;
	size_t n = 0;
	for (size_t i = 0; i < s->n_arenas; i++)
		n += s->arenas[i].n_heaps;
	w->ranges = calloc(n ? n : 1, sizeof(*w->ranges));
	if (!w->ranges)
		return &md_error_nomem;
	for (size_t i = 0; i < s->n_arenas; i++)
		for (size_t k = 0; k < s->arenas[i].n_heaps; k++) {
			const struct gl_heap *h = &s->arenas[i].heaps[k];
			w->ranges[w->n_ranges++] = (struct heap_range){
				.start = h->start, .end = h->end, .reserve_end = h->mprotect_end, .arena = (int)i,
			};
		}
	qsort(w->ranges, w->n_ranges, sizeof(*w->ranges), range_cmp);
	return NULL;
}

/* The heap range holding [addr, addr+len), or NULL. */
static const struct heap_range *range_of(const struct walker *w, uint64_t addr, uint64_t len)
{
	size_t lo = 0, hi = w->n_ranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->ranges[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct heap_range *r = &w->ranges[lo - 1];
	if (addr >= r->start && addr + len <= r->end && addr + len >= addr)
		return r;
	return NULL;
}

/* ---------- the membership set ---------- */

static bool cached_add(struct glibc_state *s, uint64_t v)
{
	if (s->n_cached == s->cap_cached) {
		if (s->n_cached >= GL_MAX_CACHED)
			return false;
		size_t n = s->cap_cached ? s->cap_cached * 2 : 4096;
		uint64_t *nc = realloc(s->cached, n * sizeof(*nc));
		if (!nc)
			return false;
		s->cached = nc;
		s->cap_cached = n;
	}
	s->cached[s->n_cached++] = v;
	return true;
}

/* LSD radix sort on the low 48 bits (user-space addresses with flags in bits 0..3). */
static bool radix_sort48(uint64_t *v, size_t n)
{
	if (n < 64) {
		for (size_t i = 1; i < n; i++) {
			uint64_t x = v[i];
			size_t j = i;
			while (j > 0 && v[j - 1] > x) {
				v[j] = v[j - 1];
				j--;
			}
			v[j] = x;
		}
		return true;
	}
	uint64_t *tmp = malloc(n * sizeof(*tmp));
	size_t *count = malloc(65536 * sizeof(*count));
	if (!tmp || !count) {
		free(tmp);
		free(count);
		return false;
	}
	uint64_t *src = v, *dst = tmp;
	for (unsigned shift = 0; shift < 48; shift += 16) {
		memset(count, 0, 65536 * sizeof(*count));
		for (size_t i = 0; i < n; i++)
			count[(src[i] >> shift) & 0xffff]++;
		size_t sum = 0;
		for (size_t b = 0; b < 65536; b++) {
			size_t c = count[b];
			count[b] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
		uint64_t *x = src;
		src = dst;
		dst = x;
	}
	/* Three passes: the result is in tmp. */
	memcpy(v, src, n * sizeof(*v));
	free(tmp);
	free(count);
	return true;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sort, then merge entries of one chunk; a chunk in two lists is a finding (double free). */
static void cached_finish(struct walker *w)
{
	struct glibc_state *s = w->s;
	for (size_t i = 0; i < s->n_cached; i++)
		if (s->cached[i] >> 48)
			s->cached[i] &= (1ULL << 48) - 1; /* cannot happen: addresses were range-checked */
	if (!radix_sort48(s->cached, s->n_cached))
		qsort(s->cached, s->n_cached, sizeof(uint64_t), u64_cmp);
	size_t out = 0;
	for (size_t i = 0; i < s->n_cached; i++) {
		uint64_t v = s->cached[i];
		if (out > 0 && (s->cached[out - 1] & ~GL_IN_FLAGS) == (v & ~GL_IN_FLAGS)) {
			uint64_t addr = v & ~GL_IN_FLAGS;
			const struct heap_range *r = range_of(w, addr, GLIBC_CHUNK_HDR);
			struct gl_arena *a = r ? &s->arenas[r->arena] : NULL;
			finding(w, a, MD_FINDING_CORRUPT, addr,
				"chunk 0x%llx is in more than one tcache list (double free)",
				(unsigned long long)addr);
			s->cached[out - 1] |= v & GL_IN_FLAGS;
			continue;
		}
		s->cached[out++] = v;
	}
	s->n_cached = out;
}

static size_t cached_lower_bound(const struct glibc_state *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n_cached;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if ((s->cached[mid] & ~GL_IN_FLAGS) < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* ---------- parameters and arenas ---------- */

struct md_error *gl_read_params(struct glibc_state *s, struct md_target *t)
{
	const struct glibc_layout *l = &s->layout;
	uint8_t mp[256];
	if (l->mp_size > sizeof(mp))
		return md_error_create(MD_ERR_BAD_DATA, "mp_ layout too large (0x%x)", l->mp_size);
	struct md_error *err = md_target_read(t, s->roots.mp, mp, l->mp_size);
	if (err)
		return md_error_wrap(err, "reading mp_");
	s->trim_threshold = field64(mp, l->mp_trim_threshold);
	s->top_pad = field64(mp, l->mp_top_pad);
	s->mmap_threshold = field64(mp, l->mp_mmap_threshold);
	s->arena_test = field64(mp, l->mp_arena_test);
	s->arena_max = field64(mp, l->mp_arena_max);
	s->thp_pagesize = field64(mp, l->mp_thp_pagesize);
	s->hp_pagesize = field64(mp, l->mp_hp_pagesize);
	s->n_mmaps = field32(mp, l->mp_n_mmaps);
	s->n_mmaps_max = field32(mp, l->mp_n_mmaps_max);
	s->no_dyn_threshold = field32(mp, l->mp_no_dyn_threshold);
	s->mmapped_mem = field64(mp, l->mp_mmapped_mem);
	s->max_mmapped_mem = field64(mp, l->mp_max_mmapped_mem);
	s->sbrk_base = field64(mp, l->mp_sbrk_base);
	s->tcache_bins = field64(mp, l->mp_tcache_bins);
	s->tcache_max_bytes = field64(mp, l->mp_tcache_max_bytes);
	s->tcache_count = field64(mp, l->mp_tcache_count);

	s->global_max_fast = 0x80;
	if (s->roots.global_max_fast) {
		uint64_t v;
		err = md_target_read_u64(t, s->roots.global_max_fast, &v);
		if (!err)
			s->global_max_fast = v;
		md_error_destroy(err);
	}
	s->have_tcache_key = false;
	if (s->roots.tcache_key && s->layout.key_kind == GLIBC_TCACHE_KEY_RANDOM) {
		err = md_target_read_u64(t, s->roots.tcache_key, &s->tcache_key);
		s->have_tcache_key = !err;
		md_error_destroy(err);
	}
	/* heap_max_size(): 4 huge pages with glibc.malloc.hugetlb >= 2 (2.35+), else 64 MiB. */
	s->heap_max = GLIBC_HEAP_MAX_DEFAULT;
	if (s->hp_pagesize && (s->hp_pagesize & (s->hp_pagesize - 1)) == 0 && s->hp_pagesize <= (1ULL << 30))
		s->heap_max = s->hp_pagesize * 4;
	return NULL;
}

static void arena_from_bytes(const struct glibc_layout *l, const uint8_t *b, struct gl_arena *a)
{
	a->mutex = rd32(b + l->ms_mutex);
	a->flags = rd32(b + l->ms_flags);
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		a->fastbins[i] = rd64(b + l->ms_fastbins + 8 * i);
	a->top = rd64(b + l->ms_top);
	a->last_remainder = rd64(b + l->ms_last_remainder);
	for (int i = 0; i < 2 * GLIBC_NBINS - 2; i++)
		a->bins[i] = rd64(b + l->ms_bins + 8 * i);
	a->next = rd64(b + l->ms_next);
	a->next_free = rd64(b + l->ms_next_free);
	a->attached_threads = (uint32_t)rd64(b + l->ms_attached_threads);
	a->system_mem = rd64(b + l->ms_system_mem);
	a->max_system_mem = rd64(b + l->ms_max_system_mem);
}

static void arenas_free(struct glibc_state *s)
{
	for (size_t i = 0; i < s->n_arenas; i++) {
		free(s->arenas[i].heaps);
		free(s->arenas[i].inconsistent_why);
	}
	free(s->arenas);
	s->arenas = NULL;
	s->n_arenas = 0;
}

void gl_state_reset(struct glibc_state *s)
{
	arenas_free(s);
	free(s->tcaches);
	s->tcaches = NULL;
	s->n_tcaches = 0;
	free(s->cached);
	s->cached = NULL;
	s->n_cached = s->cap_cached = 0;
	s->mmapped_count = s->mmapped_bytes = s->mmapped_live_bytes = 0;
	s->mmapped_findings = 0;
	s->findings_total = 0;
	free(s->walk_note);
	s->walk_note = NULL;
	s->walked = false;
}

/* Report a ring problem either as a finding (walk) or not at all (quiescence check). */
#define RING_FINDING(sink_, w_, a_, addr_, ...)                                                   \
	do {                                                                                       \
		if (sink_)                                                                         \
			finding(w_, a_, MD_FINDING_CORRUPT, addr_, __VA_ARGS__);                   \
	} while (0)

static struct md_error *read_ring(struct glibc_state *s, struct md_target *t, struct walker *w)
{
	const struct glibc_layout *l = &s->layout;
	struct md_sink *sink = w ? w->sink : NULL;
	arenas_free(s);
	size_t cap = 16;
	s->arenas = calloc(cap, sizeof(*s->arenas));
	if (!s->arenas)
		return &md_error_nomem;
	uint8_t *buf = malloc(l->ms_size);
	if (!buf)
		return &md_error_nomem;
	uint64_t addr = s->roots.main_arena;
	struct md_error *err = NULL;
	for (;;) {
		struct gl_arena *prev = s->n_arenas ? &s->arenas[s->n_arenas - 1] : NULL;
		err = md_target_read(t, addr, buf, l->ms_size);
		if (err) {
			if (!prev) {
				err = md_error_wrap(err, "reading main_arena");
				break;
			}
			RING_FINDING(sink, w, prev, addr, "next arena pointer 0x%llx is not readable",
				     (unsigned long long)addr);
			md_error_destroy(err);
			err = NULL;
			break;
		}
		if (prev) {
			/* A thread arena sits right after the heap_info of its first heap. */
			uint64_t h = addr - l->hi_size_of;
			uint64_t ar_ptr = 0;
			struct md_error *e2 = (h & (s->heap_max - 1)) ? NULL : md_target_read_u64(t, h + l->hi_ar_ptr, &ar_ptr);
			md_error_destroy(e2);
			if ((h & (s->heap_max - 1)) || ar_ptr != addr) {
				RING_FINDING(sink, w, prev, addr,
					     "next arena pointer 0x%llx is not an arena (its heap_info does not point back)",
					     (unsigned long long)addr);
				break;
			}
		}
		if (s->n_arenas == cap) {
			struct gl_arena *na = realloc(s->arenas, cap * 2 * sizeof(*na));
			if (!na) {
				err = &md_error_nomem;
				break;
			}
			memset(na + cap, 0, cap * sizeof(*na));
			s->arenas = na;
			cap *= 2;
		}
		struct gl_arena *a = &s->arenas[s->n_arenas];
		memset(a, 0, sizeof(*a));
		a->index = (int)s->n_arenas;
		a->address = addr;
		a->is_main = s->n_arenas == 0;
		arena_from_bytes(l, buf, a);
		s->n_arenas++;
		if (a->next == s->roots.main_arena)
			break;
		if (s->n_arenas >= GL_MAX_ARENAS) {
			RING_FINDING(sink, w, a, addr, "arena ring longer than %d arenas", GL_MAX_ARENAS);
			break;
		}
		bool seen = false;
		for (size_t i = 1; i < s->n_arenas && !seen; i++)
			seen = s->arenas[i].address == a->next;
		if (seen) {
			RING_FINDING(sink, w, a, addr, "arena ring does not return to main_arena (cycle at 0x%llx)",
				     (unsigned long long)a->next);
			break;
		}
		if (!a->next) {
			RING_FINDING(sink, w, a, addr, "arena ring ends in a NULL next pointer");
			break;
		}
		addr = a->next;
	}
	free(buf);
	return err;
}

struct md_error *gl_read_arenas(struct glibc_state *s, struct md_target *t)
{
	return read_ring(s, t, NULL);
}

static bool heap_add(struct gl_arena *a, const struct gl_heap *h, size_t *cap)
{
	if (a->n_heaps == *cap) {
		size_t n = *cap ? *cap * 2 : 4;
		struct gl_heap *nh = realloc(a->heaps, n * sizeof(*nh));
		if (!nh)
			return false;
		a->heaps = nh;
		*cap = n;
	}
	a->heaps[a->n_heaps++] = *h;
	return true;
}

/* The main arena's sbrk heap: from mp_.sbrk_base to the end of the top chunk. */
static struct md_error *main_heaps(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	size_t cap = 0;
	uint64_t top_word = 0;
	struct md_error *err = md_target_read_u64(w->t, a->top + 8, &top_word);
	if (err) {
		finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not readable",
			(unsigned long long)a->top);
		md_error_destroy(err);
		return NULL;
	}
	a->top_size = top_word & ~GLIBC_SIZE_BITS;
	if (!s->sbrk_base) {
		/* Never allocated: top is the unsorted bin header (initial_top). */
		return NULL;
	}
	uint64_t first = ((s->sbrk_base + GLIBC_CHUNK_HDR + 15) & ~15ULL) - GLIBC_CHUNK_HDR;
	const struct md_mapping *m = md_target_find_mapping(w->t, first);
	if (!m) {
		finding(w, a, MD_FINDING_CORRUPT, s->sbrk_base, "mp_.sbrk_base 0x%llx is not mapped",
			(unsigned long long)s->sbrk_base);
		return NULL;
	}
	uint64_t top_end = a->top + a->top_size;
	struct gl_heap h = { .start = s->sbrk_base, .first = first };
	if (a->top >= first && top_end > a->top && top_end <= m->end) {
		h.end = h.mprotect_end = top_end;
		h.has_top = true;
		if (!heap_add(a, &h, &cap))
			return &md_error_nomem;
		if (!(a->flags & 2) && a->system_mem != top_end - s->sbrk_base)
			finding(w, a, MD_FINDING_WARNING, a->top,
				"sbrk heap spans 0x%llx bytes up to the top end, system_mem says 0x%llx",
				(unsigned long long)(top_end - s->sbrk_base), (unsigned long long)a->system_mem);
		return NULL;
	}
	/* Non-contiguous main arena (sbrk failed and mmap took over, or a foreign sbrk): walk the
	 * sbrk segment up to its fencepost, and the top chunk on its own. */
	h.end = h.mprotect_end = m->end;
	if (!heap_add(a, &h, &cap))
		return &md_error_nomem;
	const struct md_mapping *tm = md_target_find_mapping(w->t, a->top);
	if (tm && top_end > a->top && top_end <= tm->end && a->top >= m->end) {
		struct gl_heap th = { .start = a->top, .first = a->top, .end = top_end, .mprotect_end = top_end,
				      .has_top = true };
		if (!heap_add(a, &th, &cap))
			return &md_error_nomem;
		finding(w, a, MD_FINDING_INFO, a->top,
			"main arena is non-contiguous: chunks between the sbrk segment and top (0x%llx) are not walked",
			(unsigned long long)a->top);
	} else {
		finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx size 0x%llx is outside every mapping",
			(unsigned long long)a->top, (unsigned long long)a->top_size);
	}
	return NULL;
}

/* A thread arena's heaps: from the heap holding top back along heap_info.prev. */
static struct md_error *thread_heaps(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	size_t cap = 0;
	uint64_t top_word = 0;
	struct md_error *err = md_target_read_u64(w->t, a->top + 8, &top_word);
	if (err) {
		md_error_destroy(err);
		finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not readable",
			(unsigned long long)a->top);
		return NULL;
	}
	a->top_size = top_word & ~GLIBC_SIZE_BITS;
	uint64_t first_heap = a->address - l->hi_size_of;
	uint64_t h = a->top & ~(s->heap_max - 1);
	/* Newest first; Brent's cycle check on the prev chain. */
	uint64_t saved = h, power = 1, lam = 0;
	size_t n = 0;
	uint64_t sum = 0;
	while (h) {
		uint8_t hi[64];
		if (l->hi_size_of > sizeof(hi))
			break;
		err = md_target_read(w->t, h, hi, l->hi_size_of);
		if (err) {
			md_error_destroy(err);
			finding(w, a, MD_FINDING_CORRUPT, h, "heap_info at 0x%llx is not readable", (unsigned long long)h);
			break;
		}
		uint64_t ar = rd64(hi + l->hi_ar_ptr), prev = rd64(hi + l->hi_prev);
		uint64_t size = rd64(hi + l->hi_size), mprot = rd64(hi + l->hi_mprotect_size);
		if (ar != a->address || size > s->heap_max || mprot > s->heap_max || size < l->hi_size_of + 0x20) {
			finding(w, a, MD_FINDING_CORRUPT, h,
				"heap_info at 0x%llx is invalid (ar_ptr 0x%llx, size 0x%llx, mprotect_size 0x%llx)",
				(unsigned long long)h, (unsigned long long)ar, (unsigned long long)size,
				(unsigned long long)mprot);
			break;
		}
		struct gl_heap gh = {
			.start = h,
			.first = h == first_heap ? h + glibc_first_heap_chunk_offset(l) : h + l->hi_size_of,
			.end = h + size,
			.mprotect_end = h + (mprot > size ? mprot : size),
			.has_top = a->top >= h && a->top < h + size,
		};
		if (!heap_add(a, &gh, &cap))
			return &md_error_nomem;
		sum += size;
		if (++n >= GL_MAX_HEAPS) {
			finding(w, a, MD_FINDING_CORRUPT, h, "more than %d heaps", GL_MAX_HEAPS);
			break;
		}
		if (prev && (prev & (s->heap_max - 1))) {
			finding(w, a, MD_FINDING_CORRUPT, h, "heap_info at 0x%llx: prev 0x%llx is not heap-aligned",
				(unsigned long long)h, (unsigned long long)prev);
			break;
		}
		if (h == first_heap && prev) {
			finding(w, a, MD_FINDING_CORRUPT, h, "first heap 0x%llx has a prev heap 0x%llx",
				(unsigned long long)h, (unsigned long long)prev);
			break;
		}
		h = prev;
		if (h == saved) {
			finding(w, a, MD_FINDING_CORRUPT, h, "heap_info prev chain is cyclic at 0x%llx",
				(unsigned long long)h);
			break;
		}
		if (++lam == power) {
			saved = h;
			power <<= 1;
			lam = 0;
		}
	}
	/* Oldest first. */
	for (size_t i = 0, j = a->n_heaps ? a->n_heaps - 1 : 0; i < j; i++, j--) {
		struct gl_heap x = a->heaps[i];
		a->heaps[i] = a->heaps[j];
		a->heaps[j] = x;
	}
	if (a->n_heaps && a->heaps[0].start != first_heap)
		finding(w, a, MD_FINDING_CORRUPT, a->heaps[0].start,
			"oldest heap 0x%llx is not the arena's own heap 0x%llx", (unsigned long long)a->heaps[0].start,
			(unsigned long long)first_heap);
	if (a->n_heaps && !a->heaps[a->n_heaps - 1].has_top)
		finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not inside its newest heap",
			(unsigned long long)a->top);
	if (a->n_heaps && sum != a->system_mem)
		finding(w, a, MD_FINDING_WARNING, a->address, "heap sizes sum to 0x%llx, system_mem says 0x%llx",
			(unsigned long long)sum, (unsigned long long)a->system_mem);
	return NULL;
}

/* ---------- tcache and fastbins ---------- */

static uint64_t reveal(const struct glibc_layout *l, uint64_t field_addr, uint64_t stored)
{
	return l->safe_linking ? (field_addr >> 12) ^ stored : stored;
}

static struct gl_arena *arena_of(struct walker *w, uint64_t addr, uint64_t len)
{
	const struct heap_range *r = range_of(w, addr, len);
	return r ? &w->s->arenas[r->arena] : NULL;
}

static struct md_error *collect_tcaches(struct walker *w)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	size_t n_threads = 0;
	const struct md_thread *threads = md_target_threads(w->t, &n_threads);
	s->tcaches = calloc(n_threads ? n_threads : 1, sizeof(*s->tcaches));
	if (!s->tcaches)
		return &md_error_nomem;
	if (!s->roots.have_tcache_tls_offset && !s->roots.tcache_got_slot)
		return NULL;
	uint64_t want_size = glibc_tcache_struct_chunk_size(l);
	uint8_t *tc = malloc(l->tc_size);
	if (!tc)
		return &md_error_nomem;
	unsigned bins = s->tcache_bins < GLIBC_TCACHE_MAX_BINS ? (unsigned)s->tcache_bins : GLIBC_TCACHE_MAX_BINS;
	for (size_t ti = 0; ti < n_threads; ti++) {
		const struct md_thread *th = &threads[ti];
		struct gl_tcache *c = &s->tcaches[s->n_tcaches++];
		c->tid = th->tid;
		if (!th->regs_valid)
			continue;
		uint64_t tls = 0;
		struct md_error *err = NULL;
		if (s->roots.have_tcache_tls_offset) {
			err = md_target_tls_address(w->t, s->roots.module, th, s->roots.tcache_tls_offset, &tls);
		} else {
			uint64_t slot;
			err = md_target_read_u64(w->t, s->roots.tcache_got_slot, &slot);
			if (!err)
				tls = th->regs[MD_REG_FS_BASE] + slot;
		}
		if (!err)
			err = md_target_read_u64(w->t, tls, &c->address);
		if (err) {
			md_error_destroy(err);
			c->address = 0;
			continue;
		}
		c->tls_address = tls;
		if (!c->address)
			continue;
		struct gl_arena *owner = arena_of(w, c->address - GLIBC_CHUNK_HDR, l->tc_size + GLIBC_CHUNK_HDR);
		uint64_t size_word = 0;
		err = (c->address & 15) ? md_error_create(MD_ERR_BAD_DATA, "misaligned")
					: md_target_read_u64(w->t, c->address - 8, &size_word);
		if (!err && (size_word & ~GLIBC_SIZE_BITS) != want_size)
			err = md_error_create(MD_ERR_BAD_DATA, "size 0x%llx", (unsigned long long)size_word);
		if (!err)
			err = md_target_read(w->t, c->address, tc, l->tc_size);
		if (err || !owner) {
			finding(w, owner, MD_FINDING_CORRUPT, c->address,
				"thread %d: tcache 0x%llx is not a tcache_perthread_struct chunk (%s)", th->tid,
				(unsigned long long)c->address, err ? err->message : "outside every heap");
			md_error_destroy(err);
			continue;
		}
		c->valid = true;
		cached_add(s, (c->address - GLIBC_CHUNK_HDR) | GL_IN_TCSTRUCT);
		for (unsigned i = 0; i < bins; i++) {
			uint64_t count = l->tc_count_size == 2 ? (uint64_t)(tc[l->tc_counts + 2 * i] | (tc[l->tc_counts + 2 * i + 1] << 8))
							       : tc[l->tc_counts + i];
			uint64_t e = rd64(tc + l->tc_entries + 8 * i);
			uint64_t want = 0x20 + 16ULL * i;
			uint64_t steps = 0, saved = 0, power = 1, lam = 0;
			uint64_t from = c->address + l->tc_entries + 8 * i; /* where e was read */
			bool broken = false;
			while (e) {
				struct gl_arena *ea = arena_of(w, e - GLIBC_CHUNK_HDR, want);
				if ((e & 15) || !ea) {
					finding(w, owner, MD_FINDING_CORRUPT, from,
						"thread %d tcache bin %u: entry 0x%llx (in 0x%llx) is %s", th->tid, i,
						(unsigned long long)e, (unsigned long long)from,
						(e & 15) ? "misaligned" : "outside every heap");
					broken = true;
					break;
				}
				if (steps >= count) {
					finding(w, ea, MD_FINDING_CORRUPT, e - GLIBC_CHUNK_HDR,
						"thread %d tcache bin %u: list longer than its count %llu (cycle or bad link in 0x%llx)",
						th->tid, i, (unsigned long long)count, (unsigned long long)from);
					broken = true;
					break;
				}
				uint8_t ent[24]; /* size word, next, key */
				err = md_target_read(w->t, e - 8, ent, sizeof(ent));
				if (err) {
					md_error_destroy(err);
					finding(w, ea, MD_FINDING_CORRUPT, e, "thread %d tcache bin %u: entry 0x%llx unreadable",
						th->tid, i, (unsigned long long)e);
					broken = true;
					break;
				}
				uint64_t csize = rd64(ent) & ~GLIBC_SIZE_BITS;
				if (csize != want)
					finding(w, ea, MD_FINDING_CORRUPT, e - GLIBC_CHUNK_HDR,
						"thread %d tcache bin %u: chunk 0x%llx has size 0x%llx, expected 0x%llx", th->tid, i,
						(unsigned long long)(e - GLIBC_CHUNK_HDR), (unsigned long long)csize,
						(unsigned long long)want);
				if (l->te_key != GLIBC_OFF_NONE) {
					uint64_t key = rd64(ent + 8 + l->te_key);
					bool ok = l->key_kind == GLIBC_TCACHE_KEY_POINTER ? key == c->address
						  : s->have_tcache_key                      ? key == s->tcache_key
											    : true;
					if (!ok)
						finding(w, ea, MD_FINDING_WARNING, e,
							"thread %d tcache bin %u: entry 0x%llx has a wrong key", th->tid, i,
							(unsigned long long)e);
				}
				if (!cached_add(s, (e - GLIBC_CHUNK_HDR) | GL_IN_TCACHE)) {
					broken = true;
					break;
				}
				c->count++;
				c->bytes += csize;
				steps++;
				uint64_t next = reveal(l, e + l->te_next, rd64(ent + 8 + l->te_next));
				from = e - GLIBC_CHUNK_HDR; /* the chunk holding the next link */
				e = next;
				if (e && e == saved) {
					finding(w, ea, MD_FINDING_CORRUPT, from, "thread %d tcache bin %u: cyclic list at 0x%llx",
						th->tid, i, (unsigned long long)e);
					broken = true;
					break;
				}
				if (++lam == power) {
					saved = e;
					power <<= 1;
					lam = 0;
				}
			}
			if (!broken && steps != count)
				finding(w, owner, MD_FINDING_CORRUPT, c->address + l->tc_counts + i * l->tc_count_size,
					"thread %d tcache bin %u: count %llu but %llu entries", th->tid, i,
					(unsigned long long)count, (unsigned long long)steps);
			if (count > s->tcache_count && s->tcache_count)
				finding(w, owner, MD_FINDING_WARNING, c->address,
					"thread %d tcache bin %u: count %llu above tcache_count %llu", th->tid, i,
					(unsigned long long)count, (unsigned long long)s->tcache_count);
		}
	}
	free(tc);
	return NULL;
}

/* ---------- bins ---------- */

static unsigned bin_index(uint64_t sz)
{
	if (sz < 0x400)
		return (unsigned)(sz >> 4);
	if ((sz >> 6) <= 48)
		return 48 + (unsigned)(sz >> 6);
	if ((sz >> 9) <= 20)
		return 91 + (unsigned)(sz >> 9);
	if ((sz >> 12) <= 10)
		return 110 + (unsigned)(sz >> 12);
	if ((sz >> 15) <= 4)
		return 119 + (unsigned)(sz >> 15);
	if ((sz >> 18) <= 2)
		return 124 + (unsigned)(sz >> 18);
	return 126;
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static inline uint64_t edge_hash(uint64_t from, uint64_t to)
{
	return mix64(from * 0x9e3779b97f4a7c15ULL ^ mix64(to + 0x632be59bd9b4e019ULL));
}

/* Chase every bin list (bk direction, as int_mallinfo does) and check each link. */
static void chase_bins(struct walker *w, struct gl_arena *a)
{
	const struct glibc_layout *l = &w->s->layout;
	a->bins_chased = true;
	a->list_bin_count = a->list_bin_bytes = 0;
	if (!w->chase_deadline)
		w->chase_deadline = now_ms() + GL_CHASE_MS;
	unsigned before = a->findings;
	for (unsigned i = 1; i < GLIBC_NBINS; i++) {
		uint64_t hdr = a->address + glibc_bin_header_offset(l, i);
		uint64_t prev = hdr, p = a->bins[2 * (i - 1) + 1];
		uint64_t saved = hdr, power = 1, lam = 0;
		while (p != hdr) {
			if (w->chase_steps++ > CHASE_BUDGET ||
			    ((w->chase_steps & 1023) == 0 && now_ms() > w->chase_deadline)) {
				finding(w, a, MD_FINDING_WARNING, hdr, "bin %u: list check stopped (time budget)", i);
				a->bins_chased = false;
				return;
			}
			const struct heap_range *r = (p & 15) ? NULL : range_of(w, p, GLIBC_MINSIZE);
			if (!r || &w->s->arenas[r->arena] != a) {
				finding(w, a, MD_FINDING_CORRUPT, prev, "bin %u: chunk 0x%llx has bk 0x%llx %s", i,
					(unsigned long long)prev, (unsigned long long)p,
					(p & 15) ? "misaligned" : "outside the arena's heaps");
				break;
			}
			uint8_t c[24]; /* size, fd, bk */
			struct md_error *err = md_target_read(w->t, p + 8, c, sizeof(c));
			if (err) {
				md_error_destroy(err);
				finding(w, a, MD_FINDING_CORRUPT, p, "bin %u: chunk 0x%llx unreadable", i, (unsigned long long)p);
				break;
			}
			uint64_t size = rd64(c) & ~GLIBC_SIZE_BITS, fd = rd64(c + 8), bk = rd64(c + 16);
			if (fd != prev)
				finding(w, a, MD_FINDING_CORRUPT, p,
					"bin %u: chunk 0x%llx has fd 0x%llx, expected 0x%llx (fd->bk != p)", i,
					(unsigned long long)p, (unsigned long long)fd, (unsigned long long)prev);
			bool size_ok = i == 1 ? size >= GLIBC_MINSIZE && !(size & 15) : bin_index(size) == i;
			if (!size_ok)
				finding(w, a, MD_FINDING_CORRUPT, p, "bin %u: chunk 0x%llx has size 0x%llx of bin %u", i,
					(unsigned long long)p, (unsigned long long)size, bin_index(size));
			a->list_bin_count++;
			a->list_bin_bytes += size;
			prev = p;
			p = bk;
			if (p != hdr && p == saved) {
				finding(w, a, MD_FINDING_CORRUPT, prev, "bin %u: cyclic list at 0x%llx", i,
					(unsigned long long)p);
				break;
			}
			if (++lam == power) {
				saved = p;
				power <<= 1;
				lam = 0;
			}
		}
	}
	if (a->findings != before)
		a->bins_chased = false;
}

/* ---------- the heap walk ---------- */

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
		if (run->has_cand)
			push_seg(w, run->start, run->end, false);
		else
			release_run(w, a, run->start, run->end);
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
		emit(w, MD_SPAN_LIVE, from + 8, to + 8, a->index);
		a->unknown_bytes += to - from;
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
		finding(w, a, MD_FINDING_CORRUPT, T, "top chunk 0x%llx has PREV_INUSE clear", (unsigned long long)T);
	if (T + size != h->end) {
		finding(w, a, MD_FINDING_CORRUPT, T, "top chunk 0x%llx size 0x%llx does not end at the heap end 0x%llx",
			(unsigned long long)T, (unsigned long long)size, (unsigned long long)h->end);
		if (T + size > h->end || T + size < T)
			size = h->end - T;
	}
	emit(w, MD_SPAN_FREE, T + 8, T + size, g);
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
	if (((p + 0x10) & (MD_PAGE_SIZE - 1)) == 0) {
		emit(w, MD_SPAN_OVERHEAD, p + 8, p + 0x10, a->index);
		emit(w, MD_SPAN_LIVE, p + 0x10, next + 8, a->index);
	} else {
		emit(w, MD_SPAN_LIVE, p + 8, next + 8, a->index);
	}
}

static void walk_heap(struct walker *w, struct gl_arena *a, struct gl_heap *h)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	const int g = a->index;
	const uint64_t limit = h->has_top ? a->top : h->end; /* ordinary chunks end by here */
	const struct md_mapping *m = md_target_find_mapping(w->t, h->first);
	uint64_t read_limit = m ? (m->end < h->end ? m->end : h->end) : h->end;
	struct run run = { 0, 0, false };
	uint64_t p = h->first;
	const uint64_t want_nonmain = a->is_main ? 0 : GLIBC_NON_MAIN_ARENA;
	/* Fastbin sizes that have a list at all: only those chunks can be candidates. */
	unsigned fast_mask = 0;
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		if (a->fastbins[i])
			fast_mask |= 1u << i;

	win_reset(w);
	emit(w, MD_SPAN_METADATA, h->start, h->first + 8, g);
	a->metadata_bytes += h->first + 8 - h->start;
	w->cursor = cached_lower_bound(s, h->first);

	bool fb_valid = p + 0x20 <= h->end;
	const uint8_t *hp = win_get(w, p, fb_valid ? 0x20 : 16, read_limit);
	if (!hp) {
		finding(w, a, MD_FINDING_WARNING, p, "first chunk 0x%llx is not readable (swapped out?)",
			(unsigned long long)p);
		skip_unknown(w, a, p, limit, &run);
		if (h->has_top) {
			uint64_t tw = 0;
			struct md_error *err = md_target_read_u64(w->t, a->top + 8, &tw);
			md_error_destroy(err);
			walk_top(w, a, h, tw ? tw : (a->top_size | 1), &run);
		}
		return;
	}
	/* The current chunk's size word and, when they are inside the heap, its fd/bk. */
	uint64_t word = rd64(hp + 8);
	uint64_t fd = fb_valid ? rd64(hp + 0x10) : 0, bk = fb_valid ? rd64(hp + 0x18) : 0;
	for (;;) {
		if (h->has_top && p == a->top) {
			walk_top(w, a, h, word, &run);
			break;
		}
		uint64_t S = word & ~GLIBC_SIZE_BITS;
		/* The fencepost pair that closes an older heap: 0x11 then 0x1 in its last 0x20 bytes. */
		if (!a->is_main && S == 0x10 && p + 0x20 == h->end && !h->has_top) {
			close_run(w, a, &run);
			emit(w, MD_SPAN_METADATA, p + 8, h->end, g);
			a->metadata_bytes += h->end - (p + 8);
			h->chunks++;
			break;
		}
		/* An old top too small to free becomes one chunk, then the 0x1 end marker. */
		if (!a->is_main && S == 0 && p + 0x10 == h->end && !h->has_top) {
			close_run(w, a, &run);
			emit(w, MD_SPAN_METADATA, p + 8, h->end, g);
			a->metadata_bytes += h->end - (p + 8);
			break;
		}
		const char *bad = NULL;
		if (S < GLIBC_MINSIZE)
			bad = "below the minimum";
		else if (S & 15)
			bad = "not a multiple of 16";
		else if (S > limit - p)
			bad = h->has_top ? "past the top chunk" : "past the heap end";
		if (bad) {
			finding(w, a, MD_FINDING_CORRUPT, p, "chunk at 0x%llx has size 0x%llx %s (heap 0x%llx-0x%llx)",
				(unsigned long long)p, (unsigned long long)word, bad, (unsigned long long)h->start,
				(unsigned long long)h->end);
			skip_unknown(w, a, p, limit, &run);
			if (h->has_top) {
				const uint8_t *tp = win_get(w, a->top, 16, read_limit);
				walk_top(w, a, h, tp ? rd64(tp + 8) : (a->top_size | 1), &run);
			}
			break;
		}
		uint64_t next = p + S;
		h->chunks++;
		const bool next_fb = next + 0x20 <= h->end;
		const uint8_t *np = next + 16 <= h->end ? win_get(w, next, next_fb ? 0x20 : 16, read_limit) : NULL;
		if (!np) {
			if (next + 16 > h->end)
				finding(w, a, MD_FINDING_CORRUPT, p, "chunk at 0x%llx ends at the heap end without a fencepost",
					(unsigned long long)p);
			else
				finding(w, a, MD_FINDING_WARNING, next, "chunk header at 0x%llx is not readable (swapped out?)",
					(unsigned long long)next);
			skip_unknown(w, a, p, limit, &run);
			if (h->has_top) {
				uint64_t tw = 0;
				struct md_error *err = md_target_read_u64(w->t, a->top + 8, &tw);
				md_error_destroy(err);
				walk_top(w, a, h, tw ? tw : (a->top_size | 1), &run);
			}
			break;
		}
		/* Values now: the next win_get may move the window and invalidate np. */
		const uint64_t next_word = rd64(np + 8), next_prev_size = rd64(np);
		const uint64_t next_fd = next_fb ? rd64(np + 0x10) : 0, next_bk = next_fb ? rd64(np + 0x18) : 0;
		const bool next_says_free = !(next_word & GLIBC_PREV_INUSE);

		/* An old top too small to be freed stays a chunk (size word 0x21, no NON_MAIN_ARENA)
		 * before the 0x1 end marker: part of the fencepost. */
		if (!a->is_main && !h->has_top && next + 0x10 == h->end && (next_word & ~GLIBC_SIZE_BITS) == 0) {
			close_run(w, a, &run);
			emit(w, MD_SPAN_METADATA, p + 8, h->end, g);
			a->metadata_bytes += h->end - (p + 8);
			break;
		}

		/* Membership: tcache, tcache struct. */
		uint64_t flags = 0;
		while (w->cursor < s->n_cached) {
			uint64_t v = s->cached[w->cursor];
			uint64_t addr = v & ~GL_IN_FLAGS;
			if (addr > p)
				break;
			if (addr == p)
				flags = v & GL_IN_FLAGS;
			else
				finding(w, a, MD_FINDING_CORRUPT, addr,
					"tcache entry 0x%llx is not at a chunk boundary (inside the chunk before 0x%llx)",
					(unsigned long long)addr, (unsigned long long)p);
			w->cursor++;
		}

		if (flags & GL_IN_TCSTRUCT) {
			close_run(w, a, &run);
			emit(w, MD_SPAN_METADATA, p + 8, next + 8, g);
			a->metadata_bytes += S;
		} else if (flags & GL_IN_TCACHE) {
			if (next_says_free)
				finding(w, a, MD_FINDING_CORRUPT, p,
					"chunk 0x%llx is in a tcache but its neighbour says it is free (double free)",
					(unsigned long long)p);
			close_run(w, a, &run);
			emit(w, MD_SPAN_CACHED, p + 8, next + 8, g);
			a->tcache_count++;
			a->tcache_bytes += S;
		} else if (next_says_free) {
			a->edge_fd += edge_hash(p, fd);
			a->edge_bk += edge_hash(bk, p);
			a->bin_count++;
			a->bin_bytes += S;
			if (next_prev_size != S)
				finding(w, a, MD_FINDING_CORRUPT, next,
					"free chunk 0x%llx (size 0x%llx) has footer 0x%llx", (unsigned long long)p,
					(unsigned long long)S, (unsigned long long)next_prev_size);
			if (!(word & GLIBC_PREV_INUSE))
				finding(w, a, MD_FINDING_CORRUPT, p, "free chunk 0x%llx follows another free chunk",
					(unsigned long long)p);
			emit(w, MD_SPAN_FREE, p + 8, next + 8, g);
			run_add(&run, p, next, false);
		} else {
			if ((word & (GLIBC_NON_MAIN_ARENA | GLIBC_IS_MMAPPED)) != want_nonmain)
				finding(w, a, MD_FINDING_CORRUPT, p, "in-use chunk 0x%llx has flags 0x%llx in %s arena",
					(unsigned long long)p, (unsigned long long)(word & GLIBC_SIZE_BITS),
					a->is_main ? "the main" : "a thread");
			/* Could it be a fastbin chunk (they look in use)? Its fd must reveal to 0 or to
			 * an aligned chunk of this arena: live data rarely does once safe-linked. */
			bool cand = false;
			if (S <= 0x20 + 16ULL * (GLIBC_NFASTBINS - 1) && (fast_mask & (1u << ((S >> 4) - 2)))) {
				uint64_t nfd = reveal(l, p + 0x10, fd);
				const struct heap_range *r = nfd && !(nfd & 15) ? range_of(w, nfd, GLIBC_MINSIZE) : NULL;
				if (!nfd || (r && &s->arenas[r->arena] == a)) {
					cand = push_cand(w, p, S, nfd);
					if (!cand && !w->cand_overflow) {
						w->cand_overflow = true;
						finding(w, a, MD_FINDING_WARNING, p, "too many fastbin candidates; fastbins partly unresolved");
					}
				}
			}
			if (cand) {
				run_add(&run, p, next, true);
			} else {
				close_run(w, a, &run);
				emit_in_use(w, a, p, next);
			}
		}
		p = next;
		word = next_word;
		fd = next_fd;
		bk = next_bk;
	}
	close_run(w, a, &run);
	/* Entries left inside this heap were not at any chunk start. */
	while (w->cursor < s->n_cached && (s->cached[w->cursor] & ~GL_IN_FLAGS) < h->end) {
		uint64_t addr = s->cached[w->cursor] & ~GL_IN_FLAGS;
		if (addr >= h->first && a->unknown_bytes == 0)
			finding(w, a, MD_FINDING_CORRUPT, addr, "tcache entry 0x%llx is not at a chunk boundary",
				(unsigned long long)addr);
		w->cursor++;
	}
	/* The rw tail a shrunk heap keeps mapped: allocator memory, normally not resident. */
	if (h->mprotect_end > h->end)
		emit(w, MD_SPAN_FREE, h->end, h->mprotect_end, g);
}

/* ---------- fastbins, resolved against the walk's candidates ---------- */

static int cand_cmp(const void *x, const void *y)
{
	uint64_t a = ((const struct fb_cand *)x)->p_sz & ~15ULL, b = ((const struct fb_cand *)y)->p_sz & ~15ULL;
	return a < b ? -1 : a > b;
}

static struct fb_cand *cand_find(struct walker *w, uint64_t p)
{
	size_t lo = 0, hi = w->n_cands;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t v = w->cands[mid].p_sz & ~15ULL;
		if (v == p)
			return &w->cands[mid];
		if (v < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Why a chunk a fastbin links to is not one of the walk's candidates, for the finding. */
static void explain_fastbin_break(struct walker *w, struct gl_arena *a, int i, uint64_t p, uint64_t from)
{
	const struct glibc_layout *l = &w->s->layout;
	const struct heap_range *r = (p & 15) ? NULL : range_of(w, p, GLIBC_MINSIZE);
	if (!r || &w->s->arenas[r->arena] != a) {
		finding(w, a, MD_FINDING_CORRUPT, from, "fastbin %d: chunk 0x%llx links to 0x%llx, %s", i,
			(unsigned long long)from, (unsigned long long)p,
			(p & 15) ? "a misaligned pointer (bad fd)" : "outside the arena's heaps");
		return;
	}
	uint8_t hdr[16]; /* size word, fd */
	struct md_error *err = md_target_read(w->t, p + 8, hdr, sizeof(hdr));
	if (err) {
		md_error_destroy(err);
		finding(w, a, MD_FINDING_CORRUPT, p, "fastbin %d: chunk 0x%llx unreadable", i, (unsigned long long)p);
		return;
	}
	uint64_t size = rd64(hdr) & ~GLIBC_SIZE_BITS, nfd = reveal(l, p + 0x10, rd64(hdr + 8));
	const char *why = size != 0x20 + 16ULL * i ? "has the wrong size"
			  : nfd & 15                   ? "has a misaligned fd (bad fd)"
			  : nfd                        ? "has an fd outside the arena's heaps"
						       : "is not a chunk start, is in a tcache, or is marked free";
	finding(w, a, MD_FINDING_CORRUPT, p, "fastbin %d: chunk 0x%llx (size 0x%llx, fd 0x%llx) %s", i,
		(unsigned long long)p, (unsigned long long)size, (unsigned long long)nfd, why);
}

#define FB_MEMBER 1ULL

/* Follow each fastbin list through the candidates (no reads), then give every candidate its
 * final state and split the deferred runs at the candidates that are not free. */
static void resolve_fastbins(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	const struct glibc_layout *l = &s->layout;
	bool sorted = true;
	for (size_t k = 1; k < w->n_cands && sorted; k++)
		sorted = (w->cands[k - 1].p_sz & ~15ULL) < (w->cands[k].p_sz & ~15ULL);
	if (!sorted)
		qsort(w->cands, w->n_cands, sizeof(*w->cands), cand_cmp);
	for (int i = 0; i < GLIBC_NFASTBINS; i++) {
		uint64_t p = a->fastbins[i];
		uint64_t from = a->address + l->ms_fastbins + 8 * i;
		uint64_t want = 0x20 + 16ULL * i;
		size_t steps = 0;
		while (p) {
			struct fb_cand *c = (p & 15) ? NULL : cand_find(w, p);
			if (!c) {
				explain_fastbin_break(w, a, i, p, from);
				break;
			}
			if (c->nfd & FB_MEMBER) {
				finding(w, a, MD_FINDING_CORRUPT, from, "fastbin %d: chunk 0x%llx links back to 0x%llx (cycle)", i,
					(unsigned long long)from, (unsigned long long)p);
				break;
			}
			if (++steps > w->n_cands)
				break;
			uint64_t size = (c->p_sz & 15) << 4;
			if (size != want)
				finding(w, a, MD_FINDING_CORRUPT, p, "fastbin %d: chunk 0x%llx has size 0x%llx, expected 0x%llx", i,
					(unsigned long long)p, (unsigned long long)size, (unsigned long long)want);
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
		uint64_t p = c->p_sz & ~15ULL, next = p + ((c->p_sz & 15) << 4);
		if (c->nfd & FB_MEMBER) {
			emit(w, MD_SPAN_CACHED, p + 8, next + 8, a->index);
			a->fastwalk_count++;
			a->fastwalk_bytes += next - p;
		} else {
			emit_in_use(w, a, p, next);
		}
	}
	flush_span(w);
	/* Deferred runs: split at candidates that stayed in use. */
	for (size_t k = 0; k < w->n_segs; k++) {
		const struct fb_seg *sg = &w->segs[k];
		uint64_t start = sg->start;
		size_t ci = 0, lo = 0, hi = w->n_cands;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if ((w->cands[mid].p_sz & ~15ULL) < sg->start)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (ci = lo; ci < w->n_cands && (w->cands[ci].p_sz & ~15ULL) < sg->end; ci++) {
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

/* ---------- mmapped chunks ---------- */

static const struct heap_range *range_covering(const struct walker *w, uint64_t addr)
{
	for (size_t lo = 0, hi = w->n_ranges; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		const struct heap_range *r = &w->ranges[mid];
		if (addr < r->start)
			hi = mid;
		else if (addr >= (r->reserve_end > r->end ? r->reserve_end : r->end))
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static void scan_mmapped(struct walker *w)
{
	struct glibc_state *s = w->s;
	if (s->n_mmaps == 0)
		return;
	size_t n_maps = 0;
	const struct md_mapping *maps = md_target_mappings(w->t, &n_maps);
	const int g = s->mmap_group;
	for (size_t mi = 0; mi < n_maps; mi++) {
		const struct md_mapping *m = &maps[mi];
		if (s->mmapped_count == s->n_mmaps && s->mmapped_bytes == s->mmapped_mem)
			break;
		if (m->kind != MD_MAP_ANON || m->path || (m->perms & (MD_PERM_READ | MD_PERM_WRITE | MD_PERM_SHARED)) !=
								    (MD_PERM_READ | MD_PERM_WRITE))
			continue;
		if (md_target_module_at(w->t, m->start) || !m->pages)
			continue;
		win_reset(w);
		uint64_t q = m->start;
		while (q < m->end) {
			const struct heap_range *r = range_covering(w, q);
			if (r) {
				uint64_t e = r->reserve_end > r->end ? r->reserve_end : r->end;
				q = MD_PAGE_UP(e);
				continue;
			}
			uint8_t bits = m->pages[(q - m->start) >> MD_PAGE_SHIFT];
			/* A chunk's first page holds its header: it was written, so present or swapped. */
			if (!(bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED)) || (bits & MD_PAGE_ZERO)) {
				q += MD_PAGE_SIZE;
				continue;
			}
			const uint8_t *hp = win_get(w, q, 16, m->end);
			if (hp) {
				uint64_t prev_size = rd64(hp), word = rd64(hp + 8);
				uint64_t size = word & ~(uint64_t)0xfff;
				if (prev_size == 0 && (word & 0xfff) == GLIBC_IS_MMAPPED && size >= MD_PAGE_SIZE &&
				    size <= m->end - q) {
					md_sink_region(w->sink, q, q + size, g, "glibc mmapped chunk");
					emit(w, MD_SPAN_LIVE, q, q + size, g);
					s->mmapped_count++;
					s->mmapped_bytes += size;
					s->mmapped_live_bytes += size - GLIBC_CHUNK_HDR;
					q += size;
					continue;
				}
			}
			q += MD_PAGE_SIZE;
		}
	}
	flush_span(w);
	if (s->mmapped_count != s->n_mmaps || s->mmapped_bytes != s->mmapped_mem)
		finding(w, NULL, MD_FINDING_WARNING, s->roots.mp,
			"mmapped chunks: found %llu (0x%llx bytes), mp_ counts %llu (0x%llx bytes)",
			(unsigned long long)s->mmapped_count, (unsigned long long)s->mmapped_bytes,
			(unsigned long long)s->n_mmaps, (unsigned long long)s->mmapped_mem);
}

/* ---------- mallinfo ---------- */

static void arena_mallinfo(struct glibc_state *s, struct gl_arena *a)
{
	/* int_mallinfo(): free chunks counted from the bin lists (equal to the walk's when the
	 * fd/bk links agree), fastbins from their lists, tcache chunks count as in use. */
	uint64_t nbins = a->bin_count, binbytes = a->bin_bytes;
	if (a->bins_chased) {
		nbins = a->list_bin_count;
		binbytes = a->list_bin_bytes;
	}
	struct gl_mallinfo *mi = &a->mi;
	memset(mi, 0, sizeof(*mi));
	uint64_t avail = a->top_size + binbytes + a->fast_bytes;
	mi->arena = a->system_mem;
	mi->ordblks = 1 + nbins;
	mi->smblks = a->fast_count;
	mi->fsmblks = a->fast_bytes;
	mi->fordblks = avail;
	mi->uordblks = a->system_mem - avail;
	if (a->is_main) {
		mi->hblks = s->n_mmaps;
		mi->hblkhd = s->mmapped_mem;
		mi->usmblks = 0;
		mi->keepcost = a->top_size;
	}
}

/* ---------- entry ---------- */

static void mark_inconsistent(struct glibc_state *s)
{
	bool all = false;
	for (size_t k = 0; k < s->n_in_malloc; k++)
		if (!s->in_malloc[k].arena)
			all = true;
	for (size_t i = 0; i < s->n_arenas; i++) {
		struct gl_arena *a = &s->arenas[i];
		char why[512];
		size_t used = 0;
		why[0] = 0;
		if (a->mutex)
			used += (size_t)snprintf(why + used, sizeof(why) - used, "mutex held (%u)", a->mutex);
		for (size_t k = 0; k < s->n_in_malloc && used < sizeof(why); k++) {
			const struct gl_thread_in_malloc *tm = &s->in_malloc[k];
			if (!all && tm->arena != a->address)
				continue;
			used += (size_t)snprintf(why + used, sizeof(why) - used, "%sthread %d in %s", used ? "; " : "",
						 tm->tid, tm->where ? tm->where : "malloc");
		}
		if (used) {
			a->state = GL_ARENA_INCONSISTENT;
			free(a->inconsistent_why);
			a->inconsistent_why = strdup(why);
		}
	}
}

static int heap_order_cmp(const void *x, const void *y, void *heaps)
{
	const struct gl_heap *h = heaps;
	uint64_t a = h[*(const size_t *)x].start, b = h[*(const size_t *)y].start;
	return a < b ? -1 : a > b;
}

struct md_error *gl_walk(struct glibc_state *s, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	gl_state_reset(s);
	struct walker w;
	memset(&w, 0, sizeof(w));
	w.s = s;
	w.t = t;
	w.sink = sink;
	w.pend_kind = -1;
	w.inconsistent = inconsistent;
	w.buf = malloc(WIN_SIZE);
	if (!w.buf)
		return &md_error_nomem;
	memset(s->phase_ms, 0, sizeof(s->phase_ms));
	double phase_t0 = now_ms();
	struct md_error *err = gl_read_params(s, t);
	if (!err)
		err = read_ring(s, t, &w);
	if (err)
		goto out;
	s->mmap_group = (int)s->n_arenas;
	if (inconsistent)
		mark_inconsistent(s);

	for (size_t i = 0; i < s->n_arenas && !err; i++)
		err = s->arenas[i].is_main ? main_heaps(&w, &s->arenas[i]) : thread_heaps(&w, &s->arenas[i]);
	if (err)
		goto out;
	err = build_ranges(&w);
	if (err)
		goto out;

	PHASE(RING);
	err = collect_tcaches(&w);
	if (err)
		goto out;
	PHASE(TCACHE);
	cached_finish(&w);
	PHASE(SORT);

	for (size_t i = 0; i < s->n_arenas; i++) {
		struct gl_arena *a = &s->arenas[i];
		w.have_top = false;
		w.top_size = w.top_merge = 0;
		w.cand_overflow = false;
		/* Heaps in address order (the array stays oldest first for the report): the
		 * fastbin candidates then come out sorted. */
		size_t *order = malloc((a->n_heaps ? a->n_heaps : 1) * sizeof(*order));
		if (!order) {
			err = &md_error_nomem;
			goto out;
		}
		for (size_t k = 0; k < a->n_heaps; k++)
			order[k] = k;
		qsort_r(order, a->n_heaps, sizeof(*order), heap_order_cmp, a->heaps);
		for (size_t oi = 0; oi < a->n_heaps; oi++) {
			size_t k = order[oi];
			struct gl_heap *h = &a->heaps[k];
			char label[64];
			if (a->is_main)
				snprintf(label, sizeof(label), "glibc main arena%s", k ? " (top)" : "");
			else
				snprintf(label, sizeof(label), "glibc arena %d heap %zu", a->index, k);
			md_sink_region(sink, h->start, h->mprotect_end, a->index, label);
			walk_heap(&w, a, h);
		}
		free(order);
		flush_span(&w);
		PHASE(HEAPS);
		resolve_fastbins(&w, a);
		PHASE(FASTBINS);
		/* Bin headers take part in the fd/bk edge sums too. */
		for (unsigned b = 1; b < GLIBC_NBINS; b++) {
			uint64_t hdr = a->address + glibc_bin_header_offset(&s->layout, b);
			a->edge_fd += edge_hash(hdr, a->bins[2 * (b - 1)]);
			a->edge_bk += edge_hash(a->bins[2 * (b - 1) + 1], hdr);
		}
		/* Chasing a list costs a random read per chunk: done routinely only when the arena
		 * fits in the target read cache, otherwise only to locate a broken link. */
		bool links_ok = a->edge_fd == a->edge_bk;
		if (!links_ok || (a->system_mem <= GL_DEEP_BIN_CHECK_BYTES && a->bin_count <= GL_DEEP_BIN_CHECK_MAX))
			chase_bins(&w, a);
		if (!links_ok && a->findings_emitted == 0)
			finding(&w, a, MD_FINDING_CORRUPT, a->address,
				"bin lists do not match the free chunks of the heap (a fd/bk link is broken)");
		if (a->bins_chased && (a->list_bin_count != a->bin_count || a->list_bin_bytes != a->bin_bytes))
			finding(&w, a, MD_FINDING_CORRUPT, a->address,
				"bins hold %llu chunks (0x%llx bytes), the heap has %llu free chunks (0x%llx bytes)",
				(unsigned long long)a->list_bin_count, (unsigned long long)a->list_bin_bytes,
				(unsigned long long)a->bin_count, (unsigned long long)a->bin_bytes);
		if (a->is_main && a->mutex && !inconsistent)
			finding(&w, a, MD_FINDING_WARNING, a->address, "arena mutex is held (%u)", a->mutex);
		arena_mallinfo(s, a);
		PHASE(BINS);
	}
	scan_mmapped(&w);
	PHASE(MMAPPED);
	flush_span(&w);
	s->walked = true;
out:
	free(w.buf);
	free(w.ranges);
	free(w.cands);
	free(w.segs);
	return err;
}
