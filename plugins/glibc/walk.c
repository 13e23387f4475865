/* The glibc heap walker. Runs in the pause; reads target memory only through target.h.
 *
 * Order: mp_ and the arena ring; each arena's heaps; every thread's tcache (its chunks look in
 * use, so they are collected first into a sorted membership array); then each heap is streamed
 * in large windows and every chunk classified from its header and its neighbour's PREV_INUSE
 * bit (chunks.c). Fastbin chunks look in use too, but chasing the fastbin lists would read the
 * heap once more per list: instead the walk keeps every in-use-looking chunk of a fastbin size
 * whose (safe-linked) fd could be a link as a candidate, and the lists are followed through the
 * candidates afterwards without reading. Bin lists are proven by edge sums, chased only when
 * needed (bins.c). Last, mmapped chunks are found by scanning anonymous mappings. Memory use
 * does not grow with the heap, except for tcache entries and candidates.
 *
 * Target memory is hostile: every pointer is checked against the heaps it must lie in, every
 * list walk is bounded and checked for cycles (Brent), and a violation becomes a finding. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walker.h"

/* Monotonic milliseconds. */
double gl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Time spent per phase of the walk, for the report (docs/performance.md uses it). */
#define PHASE(name)                                                                                \
	do {                                                                                       \
		double now_ = gl_now_ms();                                                            \
		s->phase_ms[GL_PHASE_##name] += now_ - phase_t0;                                   \
		phase_t0 = now_;                                                                   \
	} while (0)

/* ---------- findings ---------- */

void gl_finding(struct walker *w, struct gl_arena *a, enum md_finding_severity sev, uint64_t addr,
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

void gl_unreadable(struct walker *w, struct gl_arena *a, uint64_t addr, struct md_error *err, const char *what)
{
	bool swapped = err && err->code == MD_ERR_NOT_RESIDENT;
	if (swapped) {
		if (a)
			a->nonresident_stops++;
		gl_finding(w, a, MD_FINDING_INFO, addr, "%s is swapped out: not read, the rest of it is unknown", what);
	} else {
		gl_finding(w, a, MD_FINDING_CORRUPT, addr, "%s is unreadable (%s)", what, err ? err->message : "?");
	}
	md_error_destroy(err);
}

/* ---------- spans ---------- */

void gl_flush_span(struct walker *w)
{
	if (w->pend_kind >= 0 && w->pend_end > w->pend_start)
		md_sink_span(w->sink, (enum md_span_kind)w->pend_kind, w->pend_start, w->pend_end, w->pend_group);
	w->pend_kind = -1;
}

/* ---------- reading ---------- */

void gl_win_reset(struct walker *w)
{
	w->win_start = w->win_end = 0;
	w->buf = w->own_buf;
	w->win_in_place = false;
}

/* Fill the window with [start, end), page by page when a block read fails, marking pages that
 * cannot be read (swapped out: MD_ERR_NOT_RESIDENT is a finding for the caller, not fatal). */
static void win_fill(struct walker *w, uint64_t start, uint64_t end)
{
	/* Bytes read once: a window that starts inside the previous one (a header across its
	 * end) counts only what is new, as the stream's disjoint windows do. */
	uint64_t new_from = start >= w->win_start && start < w->win_end && end > w->win_end ? w->win_end : start;
	w->buf = w->own_buf;
	w->win_start = start;
	w->win_end = end;
	w->win_any_bad = false;
	memset(w->win_bad, 0, sizeof(w->win_bad));
	/* A mapped core is read in place: no copy at all. */
	const uint8_t *in_place = md_target_view(w->t, start, (size_t)(end - start));
	w->win_in_place = in_place != NULL;
	if (in_place) {
		w->buf = (uint8_t *)(uintptr_t)in_place;
		w->s->read_bytes += end - new_from;
		return;
	}
	double t0 = gl_now_ms();
	struct md_error *err = md_target_read(w->t, start, w->buf, (size_t)(end - start));
	w->s->read_ms += gl_now_ms() - t0;
	w->s->read_bytes += end - start;
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

const uint8_t *gl_win_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit)
{
	if (addr + n < addr || addr + n > limit)
		return NULL;
	if ((w->buf != w->own_buf && !w->win_in_place) || addr < w->win_start || addr + n > w->win_end) {
		uint64_t start = MD_PAGE_DOWN(addr);
		uint64_t end = MD_PAGE_UP(limit);
		if (end - start > GL_WIN_SIZE)
			end = start + GL_WIN_SIZE;
		win_fill(w, start, end);
	}
	if (w->win_any_bad) {
		for (uint64_t p = MD_PAGE_DOWN(addr); p < addr + n; p += MD_PAGE_SIZE)
			if (w->win_bad[(p - w->win_start) / MD_PAGE_SIZE])
				return NULL;
	}
	return w->buf + (addr - w->win_start);
}

static uint64_t field64(const uint8_t *base, uint32_t off)
{
	return off == GLIBC_OFF_NONE ? 0 : gl_rd64(base + off);
}

static uint32_t field32(const uint8_t *base, uint32_t off)
{
	return off == GLIBC_OFF_NONE ? 0 : gl_rd32(base + off);
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
	/* qsort, memcpy and friends get no NULL pointer, even with a count of 0 (UBSan). */
	if (w->n_ranges > 1)
		qsort(w->ranges, w->n_ranges, sizeof(*w->ranges), range_cmp);
	return NULL;
}

/* The heap range holding [addr, addr+len), or NULL. */
const struct heap_range *gl_range_of(const struct walker *w, uint64_t addr, uint64_t len)
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
	if (s->n_cached > 1 && !radix_sort48(s->cached, s->n_cached))
		qsort(s->cached, s->n_cached, sizeof(uint64_t), u64_cmp);
	size_t out = 0;
	for (size_t i = 0; i < s->n_cached; i++) {
		uint64_t v = s->cached[i];
		if (out > 0 && (s->cached[out - 1] & ~GL_IN_FLAGS) == (v & ~GL_IN_FLAGS)) {
			uint64_t addr = v & ~GL_IN_FLAGS;
			const struct heap_range *r = gl_range_of(w, addr, GLIBC_CHUNK_HDR);
			struct gl_arena *a = r ? &s->arenas[r->arena] : NULL;
			gl_finding(w, a, MD_FINDING_CORRUPT, addr,
				"chunk 0x%llx is in more than one tcache list (double free)",
				(unsigned long long)addr);
			s->cached[out - 1] |= v & GL_IN_FLAGS;
			continue;
		}
		s->cached[out++] = v;
	}
	s->n_cached = out;
}

size_t gl_cached_lower_bound(const struct glibc_state *s, uint64_t addr)
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
		/* A size_t until 2.36; from 2.37 a uint8_t (the largest M_MXFAST, 0xa0, fits),
		 * followed by an unrelated byte (__always_fail_morecore). */
		bool one_byte = s->roots.version_major == 2 && s->roots.version_minor >= 37;
		uint64_t v = 0;
		err = one_byte ? md_target_read(t, s->roots.global_max_fast, &v, 1)
			       : md_target_read_u64(t, s->roots.global_max_fast, &v);
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
	a->mutex = gl_rd32(b + l->ms_mutex);
	a->flags = gl_rd32(b + l->ms_flags);
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		a->fastbins[i] = gl_rd64(b + l->ms_fastbins + 8 * i);
	a->top = gl_rd64(b + l->ms_top);
	a->last_remainder = gl_rd64(b + l->ms_last_remainder);
	for (int i = 0; i < 2 * GLIBC_NBINS - 2; i++)
		a->bins[i] = gl_rd64(b + l->ms_bins + 8 * i);
	a->next = gl_rd64(b + l->ms_next);
	a->next_free = gl_rd64(b + l->ms_next_free);
	a->attached_threads = (uint32_t)gl_rd64(b + l->ms_attached_threads);
	a->system_mem = gl_rd64(b + l->ms_system_mem);
	a->max_system_mem = gl_rd64(b + l->ms_max_system_mem);
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
	memset(s->mmapped_hist, 0, sizeof(s->mmapped_hist));
	s->findings_total = 0;
	free(s->walk_note);
	s->walk_note = NULL;
	s->walked = false;
}

/* Report a ring problem either as a finding (walk) or not at all (quiescence check). */
#define RING_FINDING(sink_, w_, a_, addr_, ...)                                                   \
	do {                                                                                       \
		if (sink_)                                                                         \
			gl_finding(w_, a_, MD_FINDING_CORRUPT, addr_, __VA_ARGS__);                   \
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
			RING_FINDING(sink, w, prev, prev->address + l->ms_next,
				     "arena 0x%llx: next arena pointer 0x%llx is not readable",
				     (unsigned long long)prev->address, (unsigned long long)addr);
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
				RING_FINDING(sink, w, prev, prev->address + l->ms_next,
					     "arena 0x%llx: next arena pointer 0x%llx is not an arena (no heap_info pointing back)",
					     (unsigned long long)prev->address, (unsigned long long)addr);
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
			RING_FINDING(sink, w, a, addr + l->ms_next, "arena ring longer than %d arenas", GL_MAX_ARENAS);
			break;
		}
		bool seen = false;
		for (size_t i = 1; i < s->n_arenas && !seen; i++)
			seen = s->arenas[i].address == a->next;
		if (seen) {
			RING_FINDING(sink, w, a, addr + l->ms_next,
				     "arena 0x%llx: arena ring does not return to main_arena (next 0x%llx was seen before)",
				     (unsigned long long)addr, (unsigned long long)a->next);
			break;
		}
		if (!a->next) {
			RING_FINDING(sink, w, a, addr + l->ms_next, "arena 0x%llx: arena ring ends in a NULL next pointer",
				     (unsigned long long)addr);
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

/* main_arena before ptmalloc_init (all zero but next and attached_threads), or initialised with
 * nothing allocated yet (top is the unsorted bin's header, every bin points to itself): glibc's
 * own mallinfo2() then says ordblks 1 and zero elsewhere. Nothing to walk, nothing corrupt. */
static bool arena_unused(const struct glibc_state *s, const struct gl_arena *a)
{
	const struct glibc_layout *l = &s->layout;
	if (!a->is_main || a->system_mem || a->max_system_mem || s->sbrk_base || a->last_remainder)
		return false;
	bool zero = a->top == 0;
	if (!zero && a->top != a->address + glibc_bin_header_offset(l, 1))
		return false;
	for (int i = 0; i < GLIBC_NFASTBINS; i++)
		if (a->fastbins[i])
			return false;
	for (unsigned b = 1; b < GLIBC_NBINS; b++) {
		uint64_t hdr = a->address + glibc_bin_header_offset(l, b);
		uint64_t fd = a->bins[2 * (b - 1)], bk = a->bins[2 * (b - 1) + 1];
		if (zero ? (fd || bk) : (fd != hdr || bk != hdr))
			return false;
	}
	return true;
}

/* End of the run of adjacent readable mappings that holds addr (0 when addr is not mapped).
 * One heap may span several VMAs: the kernel does not merge brk growth into a VMA inherited
 * across fork, and mlock, mprotect or MADV_HUGEPAGE of part of a heap split it. */
uint64_t gl_mapped_run_end(struct md_target *t, uint64_t addr)
{
	size_t n = 0;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	if (!m || !(m->perms & MD_PERM_READ))
		return 0;
	size_t i = (size_t)(m - maps);
	uint64_t end = m->end;
	while (i + 1 < n && maps[i + 1].start == end && (maps[i + 1].perms & MD_PERM_READ) &&
	       (maps[i + 1].perms & MD_PERM_SHARED) == (m->perms & MD_PERM_SHARED) && maps[i + 1].kind == m->kind)
		end = maps[++i].end;
	return end;
}

/* Where a chain of chunk headers from x ends, read through the walker's window: at the end of a
 * fencepost pair (two 0x10 chunks, what sysmalloc leaves at an old top it fences off) on a
 * page boundary, or at the end of the top chunk; 0 when a header is unreadable or implausible
 * first. *to_top_ret says which. At most max_steps headers. The fencepost run is 0x20 or 0x30
 * bytes (seen on 2.36: 0x10, 0x11, 0x11 before a page boundary). */
static uint64_t chain_end(struct walker *w, const struct gl_arena *a, uint64_t x, uint64_t limit,
			  uint64_t max_steps, bool *to_top_ret)
{
	uint64_t p = x;
	for (uint64_t steps = 0; steps < max_steps; steps++) {
		const uint8_t *hp = gl_win_get(w, p, 16, limit);
		if (!hp)
			return 0;
		uint64_t word = gl_rd64(hp + 8), size = word & ~GLIBC_SIZE_BITS;
		if (p == a->top) {
			*to_top_ret = true;
			return size >= GLIBC_MINSIZE && a->top_size == size && size <= limit - p &&
					       !((p + size) & (MD_PAGE_SIZE - 1))
				       ? p + size
				       : 0;
		}
		if (word & (GLIBC_IS_MMAPPED | GLIBC_NON_MAIN_ARENA))
			return 0;
		if (size == 0x10) {
			uint64_t e = p + 0x10;
			for (int k = 0; k < 2 && (e & (MD_PAGE_SIZE - 1)); k++, e += 0x10) {
				const uint8_t *fp = gl_win_get(w, e, 16, limit);
				if (!fp || gl_rd64(fp + 8) != (0x10 | GLIBC_PREV_INUSE))
					return 0;
			}
			*to_top_ret = false;
			return e - p >= 0x20 && !(e & (MD_PAGE_SIZE - 1)) ? e : 0;
		}
		if (size < GLIBC_MINSIZE || (size & 15) || size > limit - p)
			return 0;
		p += size;
	}
	return 0;
}

static int seg_cmp(const void *x, const void *y)
{
	const struct gl_heap *a = x, *b = y;
	return a->start < b->start ? -1 : a->start > b->start;
}

/* A non-contiguous main arena: brk failed and sysmalloc went on in mmapped segments (at least
 * MMAP_AS_MORECORE_SIZE each), fencing off each old top. The segments are linked nowhere: the
 * sbrk segment is [sbrk_base, end of [heap]); the others are found in private anonymous
 * mappings as chains of headers from a page start (a mapping start, or right after a segment
 * found, and only when those do not add up to system_mem, every resident page start) that end
 * in a fencepost pair or exactly at the top chunk. */
#define SEG_MAX 4096
static struct md_error *main_segments(struct walker *w, struct gl_arena *a, uint64_t first, uint64_t run_end)
{
	struct glibc_state *s = w->s;
	size_t cap = 0;
	uint64_t found = 0;
	bool have_top = false;
	gl_win_reset(w);
	/* The sbrk segment (or, when brk failed from the start, the first mmapped one). */
	{
		bool to_top = false;
		uint64_t e = chain_end(w, a, first, run_end, (run_end - first) / 16, &to_top);
		struct gl_heap h = { .start = s->sbrk_base, .first = first, .end = e ? e : run_end };
		h.mprotect_end = h.end;
		h.has_top = e && to_top;
		if (!heap_add(a, &h, &cap))
			return &md_error_nomem;
		found += h.end - s->sbrk_base;
		have_top = h.has_top;
		if (!e)
			gl_finding(w, a, MD_FINDING_CORRUPT, first,
				   "non-contiguous main arena: the chunks of its first segment 0x%llx-0x%llx do not end in a fencepost or at top",
				   (unsigned long long)first, (unsigned long long)run_end);
	}
	size_t n_maps = 0;
	const struct md_mapping *maps = md_target_mappings(w->t, &n_maps);
	for (int pass = 0; pass < 2 && found < a->system_mem; pass++) {
		for (size_t mi = 0; mi < n_maps && found < a->system_mem && a->n_heaps < SEG_MAX; mi++) {
			const struct md_mapping *m = &maps[mi];
			if (m->kind != MD_MAP_ANON || (m->perms & (MD_PERM_READ | MD_PERM_WRITE | MD_PERM_SHARED)) !=
							     (MD_PERM_READ | MD_PERM_WRITE))
				continue;
			uint64_t x = m->start;
			while (x < m->end && found < a->system_mem && a->n_heaps < SEG_MAX) {
				uint8_t bits = m->pages ? m->pages[(x - m->start) >> MD_PAGE_SHIFT] : MD_PAGE_PRESENT;
				bool to_top = false, plausible = false, known = false;
				uint64_t e = 0;
				if ((bits & (MD_PAGE_PRESENT | MD_PAGE_UNKNOWN)) && !(bits & MD_PAGE_ZERO)) {
					const uint8_t *hp = gl_win_get(w, x, 16, m->end);
					uint64_t word = hp ? gl_rd64(hp + 8) : 0;
					plausible = hp && gl_rd64(hp) == 0 && (word & GLIBC_PREV_INUSE) &&
						    !(word & (GLIBC_IS_MMAPPED | GLIBC_NON_MAIN_ARENA));
				}
				/* Chunks inside a segment found already look like starts too: skip it. */
				for (size_t k = 0; plausible && k < a->n_heaps && !known; k++)
					if (x >= a->heaps[k].start && x < a->heaps[k].end) {
						x = MD_PAGE_UP(a->heaps[k].end);
						known = true;
					}
				if (known)
					continue;
				if (plausible)
					e = chain_end(w, a, x, m->end, (m->end - x) / 16, &to_top);
				if (!e || (to_top && have_top)) {
					/* First pass: only mapping starts and right after a segment. */
					if (pass == 0)
						break;
					x += MD_PAGE_SIZE;
					continue;
				}
				struct gl_heap h = { .start = x, .first = x, .end = e, .mprotect_end = e, .has_top = to_top };
				if (!heap_add(a, &h, &cap))
					return &md_error_nomem;
				found += e - x;
				have_top |= to_top;
				x = e;
			}
		}
	}
	gl_win_reset(w);
	/* Oldest first is not known for segments: address order. */
	if (a->n_heaps > 1)
		qsort(a->heaps, a->n_heaps, sizeof(*a->heaps), seg_cmp);
	if (!have_top)
		gl_finding(w, a, MD_FINDING_CORRUPT, a->top,
			   "non-contiguous main arena: no segment ends at its top chunk 0x%llx (size 0x%llx)",
			   (unsigned long long)a->top, (unsigned long long)a->top_size);
	else if (found != a->system_mem)
		gl_finding(w, a, MD_FINDING_WARNING, a->address,
			   "non-contiguous main arena: %zu segments of 0x%llx bytes found, system_mem says 0x%llx",
			   a->n_heaps, (unsigned long long)found, (unsigned long long)a->system_mem);
	return NULL;
}

/* The main arena's sbrk heap: [mp_.sbrk_base, sbrk_base + system_mem) when the arena is
 * contiguous, over however many VMAs hold it; the top chunk ends it. */
static struct md_error *main_heaps(struct walker *w, struct gl_arena *a)
{
	struct glibc_state *s = w->s;
	size_t cap = 0;
	uint64_t top_word = 0;
	struct md_error *err = md_target_read_u64(w->t, a->top + 8, &top_word);
	if (err) {
		gl_finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not readable",
			   (unsigned long long)a->top);
		md_error_destroy(err);
		return NULL;
	}
	a->top_size = top_word & ~GLIBC_SIZE_BITS;
	if (!s->sbrk_base) {
		gl_finding(w, a, MD_FINDING_INFO, a->top,
			   "main arena has a top chunk 0x%llx but mp_.sbrk_base is 0: its chunks are not walked",
			   (unsigned long long)a->top);
		return NULL;
	}
	uint64_t first = ((s->sbrk_base + GLIBC_CHUNK_HDR + 15) & ~15ULL) - GLIBC_CHUNK_HDR;
	uint64_t run_end = gl_mapped_run_end(w->t, first);
	if (!run_end) {
		gl_finding(w, a, MD_FINDING_CORRUPT, s->sbrk_base, "mp_.sbrk_base 0x%llx is not mapped",
			   (unsigned long long)s->sbrk_base);
		return NULL;
	}
	if (a->flags & GLIBC_NONCONTIGUOUS_BIT)
		return main_segments(w, a, first, run_end);
	uint64_t top_end = a->top + a->top_size;
	struct gl_heap h = { .start = s->sbrk_base, .first = first };
	if (a->top >= first && a->top + GLIBC_CHUNK_HDR <= run_end) {
		/* Top lies in the sbrk heap. A top size that runs past the mapped run is the top's
		 * own corruption (walk_top names it); the heap ends with the run. */
		if (top_end > run_end || top_end <= a->top)
			top_end = run_end;
		h.end = h.mprotect_end = top_end;
		h.has_top = true;
		if (!heap_add(a, &h, &cap))
			return &md_error_nomem;
		if (a->system_mem != top_end - s->sbrk_base)
			gl_finding(w, a, MD_FINDING_WARNING, a->top,
				   "sbrk heap spans 0x%llx bytes up to the top end, system_mem says 0x%llx",
				   (unsigned long long)(top_end - s->sbrk_base), (unsigned long long)a->system_mem);
		return NULL;
	}
	/* A contiguous arena whose top is not in the sbrk heap: walk the heap as far as it is
	 * mapped, name the top. */
	h.end = h.mprotect_end = run_end;
	if (!heap_add(a, &h, &cap))
		return &md_error_nomem;
	gl_finding(w, a, MD_FINDING_CORRUPT, a->top,
		   "top chunk 0x%llx (size 0x%llx) is outside the sbrk heap 0x%llx-0x%llx of a contiguous main arena",
		   (unsigned long long)a->top, (unsigned long long)a->top_size, (unsigned long long)s->sbrk_base,
		   (unsigned long long)run_end);
	return NULL;
}

static int heap_index_cmp(const void *x, const void *y, void *heaps)
{
	const struct gl_heap *h = heaps;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	uint64_t a = h[i].start, b = h[j].start;
	return a < b ? -1 : a > b ? 1 : i < j ? -1 : i > j;
}

/* Drop later copies of a heap already in the list, keeping the order. */
static bool dedupe_heaps(struct gl_arena *a)
{
	size_t n = a->n_heaps;
	size_t *order = malloc(n * sizeof(*order));
	bool *dup = calloc(n, sizeof(*dup));
	if (!order || !dup) {
		free(order);
		free(dup);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), heap_index_cmp, a->heaps);
	for (size_t k = 1; k < n; k++)
		if (a->heaps[order[k]].start == a->heaps[order[k - 1]].start)
			dup[order[k]] = true; /* same start: the later index (ties sort by index) goes */
	size_t out = 0;
	for (size_t i = 0; i < n; i++)
		if (!dup[i])
			a->heaps[out++] = a->heaps[i];
	a->n_heaps = out;
	free(order);
	free(dup);
	return true;
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
		gl_finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not readable",
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
			gl_finding(w, a, MD_FINDING_CORRUPT, h, "heap_info at 0x%llx is not readable", (unsigned long long)h);
			break;
		}
		uint64_t ar = gl_rd64(hi + l->hi_ar_ptr), prev = gl_rd64(hi + l->hi_prev);
		uint64_t size = gl_rd64(hi + l->hi_size), mprot = gl_rd64(hi + l->hi_mprotect_size);
		if (ar != a->address || size > s->heap_max || mprot > s->heap_max || size < l->hi_size_of + 0x20) {
			gl_finding(w, a, MD_FINDING_CORRUPT, h,
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
			gl_finding(w, a, MD_FINDING_CORRUPT, h, "more than %d heaps", GL_MAX_HEAPS);
			break;
		}
		if (prev && (prev & (s->heap_max - 1))) {
			gl_finding(w, a, MD_FINDING_CORRUPT, h, "heap_info at 0x%llx: prev 0x%llx is not heap-aligned",
				(unsigned long long)h, (unsigned long long)prev);
			break;
		}
		if (h == first_heap && prev) {
			gl_finding(w, a, MD_FINDING_CORRUPT, h, "first heap 0x%llx has a prev heap 0x%llx",
				(unsigned long long)h, (unsigned long long)prev);
			break;
		}
		h = prev;
		if (h == saved) {
			gl_finding(w, a, MD_FINDING_CORRUPT, h, "heap_info prev chain is cyclic at 0x%llx",
				(unsigned long long)h);
			break;
		}
		if (++lam == power) {
			saved = h;
			power <<= 1;
			lam = 0;
		}
	}
	/* A cyclic chain is found only after some heaps came round again: keep each heap once. */
	if (a->n_heaps > 1 && !dedupe_heaps(a))
		return &md_error_nomem;
	/* Oldest first. */
	for (size_t i = 0, j = a->n_heaps ? a->n_heaps - 1 : 0; i < j; i++, j--) {
		struct gl_heap x = a->heaps[i];
		a->heaps[i] = a->heaps[j];
		a->heaps[j] = x;
	}
	if (a->n_heaps && a->heaps[0].start != first_heap)
		gl_finding(w, a, MD_FINDING_CORRUPT, a->heaps[0].start,
			"oldest heap 0x%llx is not the arena's own heap 0x%llx", (unsigned long long)a->heaps[0].start,
			(unsigned long long)first_heap);
	if (a->n_heaps && !a->heaps[a->n_heaps - 1].has_top)
		gl_finding(w, a, MD_FINDING_CORRUPT, a->top, "top chunk 0x%llx is not inside its newest heap",
			(unsigned long long)a->top);
	if (a->n_heaps && sum != a->system_mem)
		gl_finding(w, a, MD_FINDING_WARNING, a->address, "heap sizes sum to 0x%llx, system_mem says 0x%llx",
			(unsigned long long)sum, (unsigned long long)a->system_mem);
	return NULL;
}

/* ---------- tcache and fastbins ---------- */

static struct gl_arena *arena_of(struct walker *w, uint64_t addr, uint64_t len)
{
	const struct heap_range *r = gl_range_of(w, addr, len);
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
		/* A clone(CLONE_VM) process without CLONE_SETTLS shares another thread's TLS, and so
		 * its tcache: counted once. */
		for (size_t k = 0; k + 1 < s->n_tcaches && c->address; k++)
			if (s->tcaches[k].tls_address == tls)
				c->address = 0;
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
		if (err && err->code == MD_ERR_NOT_RESIDENT && owner) {
			char what[96];
			snprintf(what, sizeof(what), "thread %d: tcache 0x%llx", th->tid, (unsigned long long)c->address);
			gl_unreadable(w, owner, c->address, err, what);
			continue;
		}
		if (err || !owner) {
			gl_finding(w, owner, MD_FINDING_CORRUPT, c->address,
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
			uint64_t e = gl_rd64(tc + l->tc_entries + 8 * i);
			uint64_t want = 0x20 + 16ULL * i;
			uint64_t steps = 0, saved = 0, power = 1, lam = 0;
			uint64_t from = c->address + l->tc_entries + 8 * i; /* where e was read */
			bool broken = false;
			while (e) {
				struct gl_arena *ea = arena_of(w, e - GLIBC_CHUNK_HDR, want);
				if ((e & 15) || !ea) {
					gl_finding(w, owner, MD_FINDING_CORRUPT, from,
						"thread %d tcache bin %u: entry 0x%llx (in 0x%llx) is %s", th->tid, i,
						(unsigned long long)e, (unsigned long long)from,
						(e & 15) ? "misaligned" : "outside every heap");
					broken = true;
					break;
				}
				if (steps >= count) {
					gl_finding(w, ea, MD_FINDING_CORRUPT, e - GLIBC_CHUNK_HDR,
						"thread %d tcache bin %u: list longer than its count %llu (cycle or bad link in 0x%llx)",
						th->tid, i, (unsigned long long)count, (unsigned long long)from);
					broken = true;
					break;
				}
				uint8_t ent[24]; /* size word, next, key */
				err = md_target_read(w->t, e - 8, ent, sizeof(ent));
				if (err) {
					char what[96];
					snprintf(what, sizeof(what), "thread %d tcache bin %u: entry 0x%llx", th->tid, i,
						 (unsigned long long)e);
					gl_unreadable(w, ea, e, err, what);
					broken = true;
					break;
				}
				uint64_t csize = gl_rd64(ent) & ~GLIBC_SIZE_BITS;
				if (csize != want)
					gl_finding(w, ea, MD_FINDING_CORRUPT, e - GLIBC_CHUNK_HDR,
						"thread %d tcache bin %u: chunk 0x%llx has size 0x%llx, expected 0x%llx", th->tid, i,
						(unsigned long long)(e - GLIBC_CHUNK_HDR), (unsigned long long)csize,
						(unsigned long long)want);
				if (l->te_key != GLIBC_OFF_NONE) {
					uint64_t key = gl_rd64(ent + 8 + l->te_key);
					bool ok = l->key_kind == GLIBC_TCACHE_KEY_POINTER ? key == c->address
						  : s->have_tcache_key                      ? key == s->tcache_key
											    : true;
					if (!ok)
						gl_finding(w, ea, MD_FINDING_WARNING, e,
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
				uint64_t next = gl_reveal(l, e + l->te_next, gl_rd64(ent + 8 + l->te_next));
				from = e - GLIBC_CHUNK_HDR; /* the chunk holding the next link */
				e = next;
				if (e && e == saved) {
					gl_finding(w, ea, MD_FINDING_CORRUPT, from, "thread %d tcache bin %u: cyclic list at 0x%llx",
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
				gl_finding(w, owner, MD_FINDING_CORRUPT, c->address + l->tc_counts + i * l->tc_count_size,
					"thread %d tcache bin %u: count %llu but %llu entries", th->tid, i,
					(unsigned long long)count, (unsigned long long)steps);
			if (count > s->tcache_count && s->tcache_count)
				gl_finding(w, owner, MD_FINDING_WARNING, c->address,
					"thread %d tcache bin %u: count %llu above tcache_count %llu", th->tid, i,
					(unsigned long long)count, (unsigned long long)s->tcache_count);
		}
	}
	free(tc);
	return NULL;
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

/* mmapped chunks are linked nowhere: they are found in private anonymous rw mappings as a
 * header "prev_size 0, size N*4096|IS_MMAPPED" that fits its mapping, at a page start.
 *
 * Reading every such mapping whole would cost the pause a pass over all foreign anonymous
 * memory (a CPython or JVM heap is many times the glibc heap), so the search goes in rounds of
 * 16-byte probes (md_target_read_probe), each from scratch, the first that accounts for mp_'s
 * count and bytes being the answer: (0) each mapping's first page and the page right after
 * each chunk found (adjacent mmaps merge into one VMA back to back); (1) also every 64 KiB from
 * either end of the mapping (foreign allocators map in such units: a chunk behind 2 MiB of
 * them sits there); (2) every resident page start, read in bulk windows.
 *
 * A header that has the mark but a size past its mapping is remembered: if mp_'s totals are
 * then not met, it is the broken chunk (a finding names it); if they are met it was only data
 * that looked like a header. */
#define MAX_MMAP_SUSPECTS 8
#define MMAP_FOUND_MAX 65536 /* chunks a round collects */

struct mmap_scan {
	struct {
		uint64_t at, word, room;
	} suspects[MAX_MMAP_SUSPECTS];
	size_t n_suspects;
	uint64_t (*found)[2]; /* [start, size] of each chunk the round found */
	size_t n_found;
	uint64_t count, bytes;
};

static bool mmap_candidate_mapping(struct walker *w, const struct md_mapping *m)
{
	/* MAP_HUGETLB|MAP_ANONYMOUS memory (glibc.malloc.hugetlb=2) is a deleted "/anon_hugepage". */
	bool hugetlb = m->path && m->deleted && strcmp(m->path, "/anon_hugepage") == 0;
	return m->kind == MD_MAP_ANON && (!m->path || hugetlb) &&
	       (m->perms & (MD_PERM_READ | MD_PERM_WRITE | MD_PERM_SHARED)) == (MD_PERM_READ | MD_PERM_WRITE) &&
	       (hugetlb || !md_target_module_at(w->t, m->start)) && m->pages;
}

/* The chunk size at q when its header says "mmapped chunk that fits", else 0. */
static uint64_t mmapped_header(struct walker *w, const struct md_mapping *m, uint64_t q, int round,
			       struct mmap_scan *sc)
{
	uint8_t bits = m->pages[(q - m->start) >> MD_PAGE_SHIFT];
	/* A chunk's first page holds its header: it was written, so present or swapped. */
	if (!(bits & (MD_PAGE_PRESENT | MD_PAGE_UNKNOWN)) || (bits & MD_PAGE_ZERO))
		return 0;
	const uint8_t *hp;
	uint8_t hdr[16];
	if (round < 2) {
		struct md_error *err = md_target_read_probe(w->t, q, hdr, sizeof(hdr));
		if (err) {
			md_error_destroy(err);
			return 0;
		}
		hp = hdr;
	} else if (!(hp = gl_win_get(w, q, 16, m->end))) {
		return 0;
	}
	uint64_t prev_size = gl_rd64(hp), word = gl_rd64(hp + 8);
	uint64_t size = word & ~(uint64_t)0xfff;
	if (prev_size != 0 || (word & 0xfff) != GLIBC_IS_MMAPPED)
		return 0;
	if (size >= MD_PAGE_SIZE && size <= m->end - q)
		return size;
	if (sc->n_suspects < MAX_MMAP_SUSPECTS) {
		sc->suspects[sc->n_suspects].at = q;
		sc->suspects[sc->n_suspects].word = word;
		sc->suspects[sc->n_suspects].room = m->end - q;
		sc->n_suspects++;
	}
	return 0;
}

static void mmapped_emit(struct walker *w, uint64_t q, uint64_t size)
{
	struct glibc_state *s = w->s;
	md_sink_region(w->sink, q, q + size, s->mmap_group, "glibc mmapped chunk");
	gl_emit(w, MD_SPAN_LIVE, q, q + size, s->mmap_group);
	s->mmapped_count++;
	s->mmapped_bytes += size;
	s->mmapped_live_bytes += size - GLIBC_CHUNK_HDR;
	gl_hist_add(s->mmapped_hist, GL_HIST_LIVE, size);
}

#define MMAP_PROBE_GRID (64ULL << 10)

/* The next address after q that round probes in m (0 when none). */
static uint64_t next_probe(const struct md_mapping *m, uint64_t q, int round)
{
	if (round == 0)
		return 0;
	if (round == 2)
		return q + MD_PAGE_SIZE;
	uint64_t from_start = m->start + ((q - m->start) / MMAP_PROBE_GRID + 1) * MMAP_PROBE_GRID;
	uint64_t from_end = m->end - ((m->end - q - 1) / MMAP_PROBE_GRID) * MMAP_PROBE_GRID;
	if (from_end <= q)
		from_end = q + MMAP_PROBE_GRID;
	return from_start < from_end ? from_start : from_end;
}

/* One mapping, probed as round says; chunks found are collected in sc. */
static void scan_mapping(struct walker *w, const struct md_mapping *m, int round, struct mmap_scan *sc)
{
	struct glibc_state *s = w->s;
	uint64_t q = m->start;
	if (round == 2)
		gl_win_reset(w);
	while (q && q < m->end && sc->n_found < MMAP_FOUND_MAX) {
		if (sc->count == s->n_mmaps && sc->bytes == s->mmapped_mem)
			return;
		const struct heap_range *r = range_covering(w, q);
		if (r) {
			uint64_t e = r->reserve_end > r->end ? r->reserve_end : r->end;
			q = MD_PAGE_UP(e);
			continue;
		}
		uint64_t size = mmapped_header(w, m, q, round, sc);
		if (size) {
			sc->found[sc->n_found][0] = q;
			sc->found[sc->n_found][1] = size;
			sc->n_found++;
			sc->count++;
			sc->bytes += size;
			q += size;
			continue;
		}
		q = next_probe(m, q, round);
	}
}

static void scan_mmapped(struct walker *w)
{
	struct glibc_state *s = w->s;
	if (s->n_mmaps == 0 && s->mmapped_mem == 0)
		return;
	size_t n_maps = 0;
	const struct md_mapping *maps = md_target_mappings(w->t, &n_maps);
	struct mmap_scan sc;
	memset(&sc, 0, sizeof(sc));
	uint64_t (*found)[2] = malloc(MMAP_FOUND_MAX * sizeof(*found));
	if (!found)
		return;
	for (int round = 0; round < 3; round++) {
		memset(&sc, 0, sizeof(sc));
		sc.found = found;
		for (size_t mi = 0; mi < n_maps; mi++)
			if (mmap_candidate_mapping(w, &maps[mi]))
				scan_mapping(w, &maps[mi], round, &sc);
		if (sc.count == s->n_mmaps && sc.bytes == s->mmapped_mem)
			break;
	}
	for (size_t i = 0; i < sc.n_found; i++)
		mmapped_emit(w, sc.found[i][0], sc.found[i][1]);
	gl_flush_span(w);
	free(found);
	if (s->mmapped_count == s->n_mmaps && s->mmapped_bytes == s->mmapped_mem)
		return;
	for (size_t i = 0; i < sc.n_suspects; i++)
		gl_finding(w, NULL, MD_FINDING_CORRUPT, sc.suspects[i].at,
			   "mmapped chunk 0x%llx has size word 0x%llx: %s (its mapping has 0x%llx bytes from there)",
			   (unsigned long long)sc.suspects[i].at, (unsigned long long)sc.suspects[i].word,
			   (sc.suspects[i].word & ~0xfffULL) < MD_PAGE_SIZE ? "below a page" : "past the end of its mapping",
			   (unsigned long long)sc.suspects[i].room);
	gl_finding(w, NULL, MD_FINDING_WARNING, s->roots.mp,
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
	w.own_buf = aligned_alloc(MD_PAGE_SIZE, GL_WIN_SIZE);
	if (!w.own_buf)
		return &md_error_nomem;
	w.buf = w.own_buf;
	/* A knob for tests and measurements: both ways must give the same report. */
	const char *stream_env = getenv("MEMDISSECT_GLIBC_STREAM");
	w.no_stream = stream_env && strcmp(stream_env, "0") == 0;
	memset(s->phase_ms, 0, sizeof(s->phase_ms));
	s->read_ms = 0;
	s->read_bytes = 0;
	double phase_t0 = gl_now_ms();
	struct md_error *err = gl_read_params(s, t);
	if (!err)
		err = read_ring(s, t, &w);
	if (err)
		goto out;
	s->mmap_group = (int)s->n_arenas;
	if (inconsistent)
		mark_inconsistent(s);
	for (size_t i = 0; i < s->n_arenas; i++)
		if (arena_unused(s, &s->arenas[i]))
			s->arenas[i].state = GL_ARENA_UNUSED;

	for (size_t i = 0; i < s->n_arenas && !err; i++) {
		struct gl_arena *a = &s->arenas[i];
		if (a->state != GL_ARENA_UNUSED)
			err = a->is_main ? main_heaps(&w, a) : thread_heaps(&w, a);
	}
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
		if (a->state == GL_ARENA_UNUSED) {
			arena_mallinfo(s, a);
			continue;
		}
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
		if (a->n_heaps > 1)
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
			gl_walk_heap(&w, a, h);
		}
		free(order);
		gl_flush_span(&w);
		a->top_span = w.have_top ? w.top_size : 0;
		PHASE(HEAPS);
		gl_resolve_fastbins(&w, a);
		PHASE(FASTBINS);
		if (a->n_heaps == 0) {
			/* Its heaps could not be found (a finding said why): nothing to check bins
			 * against, and a fake or wiped arena would give one finding per bin. */
			arena_mallinfo(s, a);
			PHASE(BINS);
			continue;
		}
		/* Bin headers take part in the fd/bk edge sums too. */
		for (unsigned b = 1; b < GLIBC_NBINS; b++) {
			uint64_t hdr = a->address + glibc_bin_header_offset(&s->layout, b);
			a->edge_fd += gl_edge_hash(hdr, a->bins[2 * (b - 1)]);
			a->edge_bk += gl_edge_hash(a->bins[2 * (b - 1) + 1], hdr);
		}
		/* Chasing a list costs a random read per chunk: done routinely only when the arena
		 * fits in the target read cache, otherwise only to locate a broken link. */
		bool links_ok = a->edge_fd == a->edge_bk;
		if (!links_ok || (a->system_mem <= GL_DEEP_BIN_CHECK_BYTES && a->bin_count <= GL_DEEP_BIN_CHECK_MAX))
			gl_chase_bins(&w, a);
		/* Over pages that are not resident the walk cannot see every free chunk: sums that
		 * differ then prove nothing. */
		bool partial = a->nonresident_stops > 0;
		if (!links_ok && a->findings_emitted == 0 && !partial)
			gl_finding(&w, a, MD_FINDING_CORRUPT, a->address,
				   "bin lists do not match the free chunks of the heap (a fd/bk link is broken)");
		if (a->nedge_fd != a->nedge_bk && !a->nextsize_chased)
			gl_chase_nextsize(&w, a);
		if (a->bins_chased && (a->list_bin_count != a->bin_count || a->list_bin_bytes != a->bin_bytes))
			gl_finding(&w, a, partial ? MD_FINDING_INFO : MD_FINDING_CORRUPT, a->address,
				   "bins hold %llu chunks (0x%llx bytes), the heap has %llu free chunks (0x%llx bytes)",
				   (unsigned long long)a->list_bin_count, (unsigned long long)a->list_bin_bytes,
				   (unsigned long long)a->bin_count, (unsigned long long)a->bin_bytes);
		if (a->is_main && a->mutex && !inconsistent)
			gl_finding(&w, a, MD_FINDING_WARNING, a->address, "arena mutex is held (%u)", a->mutex);
		arena_mallinfo(s, a);
		PHASE(BINS);
	}
	scan_mmapped(&w);
	PHASE(MMAPPED);
	gl_flush_span(&w);
	s->walked = true;
out:
	gl_stream_free_ring(&w);
	free(w.own_buf);
	free(w.ranges);
	free(w.cands);
	free(w.segs);
	return err;
}
