/* The walk of mallocng while the target is stopped: the meta area chain from ctx, every meta
 * handed out, every group (validated the way musl's get_meta() validates before trusting it),
 * every slot with its in-band header. Nested groups (a group living in a slot of a larger class)
 * are resolved through their container slot, so each byte gets exactly one span: the innermost
 * structure's. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "musl.h"
#include "read_ahead.h"

#define MAX_AREAS (1u << 20)
#define MAX_GROUPS ((size_t)1 << 22) /* 4M groups of up to 32 slots: ~100 bytes each kept */
#define MAX_FINDINGS 64
#define MAX_NESTING 16

struct emitter {
	struct md_sink *sink;
	enum md_span_kind kind;
	uint64_t start, end;
	int group;
	bool pending;
};

static void emit_flush(struct emitter *e)
{
	if (e->pending && e->end > e->start && e->sink)
		md_sink_span(e->sink, e->kind, e->start, e->end, e->group);
	e->pending = false;
}

static void emit(struct emitter *e, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (end <= start)
		return;
	if (e->pending && e->kind == kind && e->group == group && e->end == start) {
		e->end = end;
		return;
	}
	emit_flush(e);
	*e = (struct emitter){ .sink = e->sink, .kind = kind, .start = start, .end = end, .group = group, .pending = true };
}

/* sink may be NULL: the check walk of mu_quiescent emits nothing and only counts problems. */
static void span(struct md_sink *sink, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (sink)
		md_sink_span(sink, kind, start, end, group);
}

static void region(struct md_sink *sink, uint64_t start, uint64_t end, int group, const char *label)
{
	if (sink)
		md_sink_region(sink, start, end, group, label);
}

/* Every problem is hashed into w->problem_hash (persistent damage repeats it exactly, a race
 * does not); the first MAX_FINDINGS become findings. A snapshot taken while the target may have
 * been inside malloc gives warnings, not corruption. */
__attribute__((format(printf, 5, 6))) static void finding(struct mu_walk *w, struct md_sink *sink,
							  enum md_finding_severity sev, uint64_t addr,
							  const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->problems++;
	for (const char *c = msg; *c; c++)
		w->problem_hash = (w->problem_hash ^ (uint8_t)*c) * 0x100000001b3ull;
	if (w->findings >= MAX_FINDINGS) {
		w->findings_dropped++;
		return;
	}
	w->findings++;
	if (w->inconsistent && sev == MD_FINDING_CORRUPT)
		sev = MD_FINDING_WARNING;
	if (sink)
		md_sink_finding(sink, sev, addr, -1, "%s", msg);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static bool read_ok(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(t, addr, buf, len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

/* The bytes of the group being walked, read once: slot headers are then decoded from memory
 * instead of one target read per slot. */
#define WINDOW_MAX ((uint64_t)256 << 10)
struct window {
	uint64_t base, len;
	const uint8_t *buf;
	bool streamed; /* a read-ahead window: the target may not be read meanwhile */
};

static bool wread(struct md_target *t, const struct window *win, uint64_t addr, void *out, size_t n)
{
	if (win && win->len && addr >= win->base && addr - win->base <= win->len && n <= win->len - (addr - win->base)) {
		memcpy(out, win->buf + (addr - win->base), n);
		return true;
	}
	return !(win && win->streamed) && read_ok(t, addr, out, n);
}

static int cmp_group_mem(const void *a, const void *b)
{
	const struct mu_group *x = a, *y = b;
	return x->mem < y->mem ? -1 : x->mem > y->mem;
}

static struct mu_group *group_at(struct mu_walk *w, uint64_t mem)
{
	size_t lo = 0, hi = w->n_groups;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (w->groups[mid].mem < mem)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < w->n_groups && w->groups[lo].mem == mem ? &w->groups[lo] : NULL;
}

static uint64_t group_extent(const struct mu_group *g)
{
	return MU_UNIT + g->stride * ((uint64_t)g->last_idx + 1);
}

static uint64_t resident_bytes(struct md_target *t, uint64_t start, uint64_t end)
{
	uint64_t n = 0;
	for (uint64_t p = MD_PAGE_DOWN(start); p < end; p += MD_PAGE_SIZE)
		if (MD_PAGE_COUNTED(md_target_page_bits(t, p)))
			n += MD_PAGE_SIZE;
	return n;
}

/* Read the meta areas and collect every handed-out meta with a group. */
static void walk_areas(struct md_target *t, struct md_sink *sink, struct mu_walk *w)
{
	uint64_t head = rd64(w->ctx_bytes + MU_CTX_META_AREA_HEAD);
	uint64_t tail = rd64(w->ctx_bytes + MU_CTX_META_AREA_TAIL);
	uint64_t avail_meta = rd64(w->ctx_bytes + MU_CTX_AVAIL_META);
	static uint8_t page[MU_AREA_SIZE];
	/* Brent's cycle check on the singly linked area chain. */
	uint64_t power = 1, lam = 0, tortoise = 0;
	uint64_t run_start = 0, run_end = 0;
	for (uint64_t area = head; area; ) {
		if (area & (MU_AREA_SIZE - 1)) {
			finding(w, sink, MD_FINDING_CORRUPT, area, "meta area at 0x%" PRIx64 " is not page-aligned: chain cut", area);
			break;
		}
		if (w->meta_areas >= MAX_AREAS) {
			w->truncated = true;
			finding(w, sink, MD_FINDING_WARNING, area, "more than %u meta areas: walk truncated", MAX_AREAS);
			break;
		}
		if (area == tortoise) {
			finding(w, sink, MD_FINDING_CORRUPT, area, "meta area chain loops back to 0x%" PRIx64 ": cut there", area);
			break;
		}
		if (++lam == power) {
			tortoise = area;
			power *= 2;
			lam = 0;
		}
		if (!read_ok(t, area, page, sizeof(page))) {
			finding(w, sink, MD_FINDING_CORRUPT, area, "meta area at 0x%" PRIx64 " is not readable: chain cut", area);
			break;
		}
		if (rd64(page) != w->secret) {
			finding(w, sink, MD_FINDING_CORRUPT, area,
				"meta area at 0x%" PRIx64 " has check 0x%" PRIx64 ", not the allocator secret: chain cut", area,
				rd64(page));
			break;
		}
		w->meta_areas++;
		if (run_end == area) {
			run_end += MU_AREA_SIZE;
		} else {
			if (run_end > run_start)
				region(sink, run_start, run_end, MU_GROUP_META, "musl meta areas");
			run_start = area;
			run_end = area + MU_AREA_SIZE;
		}
		span(sink, MD_SPAN_METADATA, area, area + MU_AREA_SIZE, MU_GROUP_META);
		w->meta_area_bytes += MU_AREA_SIZE;
		int32_t nslots = (int32_t)rd32(page + 16);
		uint64_t used = nslots < 0 ? 0 : (uint64_t)nslots;
		if (used > MU_AREA_MAX_SLOTS) {
			finding(w, sink, MD_FINDING_CORRUPT, area, "meta area at 0x%" PRIx64 " claims %d slots (at most %u fit)",
				area, nslots, (unsigned)MU_AREA_MAX_SLOTS);
			used = MU_AREA_MAX_SLOTS;
		}
		if (area == tail) {
			uint64_t first = area + MU_AREA_SLOTS_OFF;
			if (avail_meta >= first && avail_meta <= first + used * MU_META_SIZE)
				used = (avail_meta - first) / MU_META_SIZE;
		}
		for (uint64_t i = 0; i < used; i++) {
			const uint8_t *m = page + MU_AREA_SLOTS_OFF + i * MU_META_SIZE;
			uint64_t maddr = area + MU_AREA_SLOTS_OFF + i * MU_META_SIZE;
			w->metas++;
			uint64_t mem = rd64(m + 16);
			if (!mem) {
				w->free_metas++;
				continue;
			}
			if (w->n_groups >= MAX_GROUPS) {
				w->truncated = true;
				continue;
			}
			if (w->n_groups == w->cap_groups) {
				size_t nc = w->cap_groups ? w->cap_groups * 2 : 256;
				struct mu_group *ng = realloc(w->groups, nc * sizeof(*ng));
				if (!ng) {
					w->truncated = true;
					continue;
				}
				w->groups = ng;
				w->cap_groups = nc;
			}
			uint64_t bits = rd64(m + 32);
			struct mu_group *g = &w->groups[w->n_groups++];
			*g = (struct mu_group){
				.meta = maddr,
				.mem = mem,
				.avail_mask = rd32(m + 24),
				.freed_mask = rd32(m + 28),
				.last_idx = (uint8_t)(bits & 31),
				.freeable = (bits >> 5) & 1,
				.sizeclass = (uint8_t)((bits >> 6) & 63),
				.maplen = bits >> 12,
				.parent = -1,
			};
		}
		if (area == tail)
			break;
		area = rd64(page + 8);
	}
	if (run_end > run_start)
		region(sink, run_start, run_end, MU_GROUP_META, "musl meta areas");
}

/* get_meta()'s checks, from the reader's side. */
static bool check_group(struct md_target *t, struct md_sink *sink, struct mu_walk *w, struct mu_group *g)
{
	if (g->mem & (MU_UNIT - 1)) {
		finding(w, sink, MD_FINDING_CORRUPT, g->meta, "meta at 0x%" PRIx64 ": group 0x%" PRIx64 " is misaligned", g->meta, g->mem);
		return false;
	}
	if (g->sizeclass >= MU_NCLASSES && g->sizeclass != MU_CLASS_MMAP) {
		finding(w, sink, MD_FINDING_CORRUPT, g->meta, "meta at 0x%" PRIx64 ": size class %u does not exist", g->meta,
			g->sizeclass);
		return false;
	}
	if (g->sizeclass == MU_CLASS_MMAP && (g->last_idx || !g->maplen)) {
		finding(w, sink, MD_FINDING_CORRUPT, g->meta, "meta at 0x%" PRIx64 ": a single mmapped slot with last_idx %u, maplen %" PRIu64,
			g->meta, g->last_idx, g->maplen);
		return false;
	}
	g->stride = (!g->last_idx && g->maplen) ? g->maplen * MD_PAGE_SIZE - MU_UNIT
						: (uint64_t)MU_UNIT * mu_size_classes[g->sizeclass < MU_NCLASSES ? g->sizeclass : 0];
	const struct md_mapping *map = md_target_find_mapping(t, g->mem);
	uint64_t extent = g->maplen ? g->maplen * MD_PAGE_SIZE : group_extent(g);
	if (g->maplen > ((uint64_t)1 << 35) || !map || extent > map->end - g->mem || group_extent(g) > extent) {
		finding(w, sink, MD_FINDING_CORRUPT, g->meta,
			"meta at 0x%" PRIx64 ": group 0x%" PRIx64 " of %" PRIu64 " bytes (class %u, last_idx %u, maplen %" PRIu64
			") does not fit its mapping",
			g->meta, g->mem, extent, g->sizeclass, g->last_idx, g->maplen);
		return false;
	}
	return true;
}

/* get_meta()'s last check: the group's first word points back to its meta. back: that word (0
 * when unreadable). Checked where the group's bytes are at hand (walk_all_slots): a read of 8
 * bytes per group here would pull every page of the heap through the read cache once more. */
static void check_back_pointer(struct md_sink *sink, struct mu_walk *w, struct mu_group *g, uint64_t back)
{
	g->back_checked = true;
	if (back == g->meta)
		return;
	finding(w, sink, MD_FINDING_CORRUPT, g->mem,
		"group at 0x%" PRIx64 " points back to meta 0x%" PRIx64 ", not to its meta 0x%" PRIx64, g->mem, back, g->meta);
	g->valid = false;
}

static void read_back_pointer(struct md_target *t, struct md_sink *sink, struct mu_walk *w, struct mu_group *g)
{
	uint64_t back = 0;
	if (!read_ok(t, g->mem, &back, 8))
		back = 0;
	check_back_pointer(sink, w, g, back);
}

/* SLOT_TRANSIENT: the masks say used, but the header is the one free() writes before it
 * updates the masks (p[-3] = 255, offset 0; free() may then spend a while in madvise without the
 * lock), or still blank because malloc() frames the slot after dropping the lock: a malloc or
 * free is in progress. Counted as free, not a problem, but the snapshot is retried. */
enum slot_state { SLOT_FREE, SLOT_LIVE, SLOT_CONTAINER, SLOT_BAD, SLOT_TRANSIENT };

static bool transient_header(const uint8_t *h, unsigned idx)
{
	return (h[1] == 255 && h[2] == 0 && h[3] == 0) || (idx > 0 && !h[0] && !h[1] && !h[2] && !h[3]);
}

struct slot {
	enum slot_state state;
	uint64_t start, p, size; /* user pointer and request size (live); p = inner group (container) */
};

/* Decode slot idx of g from its in-band header (p[-4..-1]), validating offsets as musl does. */
static void decode_slot(struct md_target *t, const struct window *win, const struct mu_group *g, unsigned idx, struct slot *s,
			char *why, size_t why_len)
{
	uint64_t storage = g->mem + MU_UNIT;
	uint64_t start = storage + g->stride * idx;
	uint64_t end = start + g->stride - 4;
	s->start = start;
	s->state = SLOT_BAD;
	why[0] = 0;
	if ((g->avail_mask | g->freed_mask) & (1u << idx)) {
		s->state = SLOT_FREE;
		return;
	}
	uint8_t h[4];
	if (!wread(t, win, start - 4, h, 4)) {
		snprintf(why, why_len, "header unreadable");
		return;
	}
	uint64_t p = start;
	if (transient_header(h, idx)) {
		s->state = SLOT_TRANSIENT;
		return;
	}
	if ((h[1] >> 5) == 7) {
		uint16_t off;
		memcpy(&off, h + 2, 2);
		p = start + (uint64_t)MU_UNIT * off;
		if (p >= end || !wread(t, win, p - 4, h, 4)) {
			snprintf(why, why_len, "aligned offset %u leaves the slot", off);
			return;
		}
		if (h[1] == 255 && h[2] == 0 && h[3] == 0) {
			s->state = SLOT_TRANSIENT;
			return;
		}
	}
	if ((h[1] & 31) != idx) {
		snprintf(why, why_len, "header index %u, slot %u", h[1] & 31, idx);
		return;
	}
	uint64_t units = (p - storage) / MU_UNIT;
	if (h[0]) {
		uint32_t off32;
		if (h[0] != 1 || !wread(t, win, p - 8, &off32, 4) || off32 != units) {
			snprintf(why, why_len, "32-bit offset does not match");
			return;
		}
	} else {
		uint16_t off;
		memcpy(&off, h + 2, 2);
		if (off != units) {
			snprintf(why, why_len, "offset %u units, slot is at %" PRIu64, off, units);
			return;
		}
	}
	unsigned reserved = h[1] >> 5;
	if (reserved == 6) {
		s->state = SLOT_CONTAINER;
		s->p = p;
		return;
	}
	uint64_t slack = reserved;
	if (reserved == 5) {
		uint8_t tail[5];
		if (!wread(t, win, end - 5, tail, 5)) {
			snprintf(why, why_len, "slack word unreadable");
			return;
		}
		slack = rd32(tail + 1);
		if (tail[0] != 0 || slack < 5) {
			snprintf(why, why_len, "slack word %" PRIu64 " invalid", slack);
			return;
		}
	}
	if (reserved == 7 || slack > end - p) {
		snprintf(why, why_len, "slack %" PRIu64 " exceeds the slot", slack);
		return;
	}
	s->state = SLOT_LIVE;
	s->p = p;
	s->size = end - slack - p;
}

/* The file whose image holds addr: a module, the mapping's file, or, for the anonymous .bss
 * right after a file's last mapping, that file. */
static const char *module_label(struct md_target *t, uint64_t addr)
{
	const struct md_module *mod = md_target_module_at(t, addr);
	const char *name = mod ? md_target_module_file(t, mod) : NULL;
	if (!name && mod)
		name = mod->name;
	const struct md_mapping *m = name && *name ? NULL : md_target_find_mapping(t, addr);
	if (m && m->path) {
		name = m->path;
	} else if (m && m->start > 0) {
		const struct md_mapping *prev = md_target_find_mapping(t, m->start - 1);
		if (prev && prev->end == m->start && prev->path)
			name = prev->path;
	}
	const char *b = name ? strrchr(name, '/') : NULL;
	return b ? b + 1 : name && *name ? name : "?";
}

/* Slots of one group; container slots get spans only around their nested group. given: the
 * read-ahead window holding the group, or NULL (the group is read here). */
static void walk_slots(struct md_target *t, struct md_sink *sink, struct mu_walk *w, size_t gi, struct emitter *e,
		       const struct window *given)
{
	struct mu_group *g = &w->groups[gi];
	int grp = MU_GROUP_OF_CLASS(g->sizeclass);
	struct mu_class_stats *cs = &w->classes[g->sizeclass < MU_NCLASSES ? g->sizeclass : MU_NCLASSES];
	cs->groups++;
	emit(e, MD_SPAN_METADATA, g->mem, g->mem + MU_UNIT, grp);
	w->overhead_bytes += MU_UNIT;
	char why[128];
	struct window win = { 0 };
	uint64_t extent = group_extent(g);
	if (given) {
		win = *given;
	} else if (extent <= WINDOW_MAX) {
		if (w->win_cap < extent) {
			uint8_t *nb = realloc(w->win_buf, (size_t)WINDOW_MAX);
			if (nb) {
				w->win_buf = nb;
				w->win_cap = (size_t)WINDOW_MAX;
			}
		}
		if (w->win_cap >= extent && read_ok(t, g->mem, w->win_buf, (size_t)extent))
			win = (struct window){ .base = g->mem, .len = extent, .buf = w->win_buf };
	}
	for (unsigned idx = 0; idx <= g->last_idx; idx++) {
		struct slot s;
		decode_slot(t, &win, g, idx, &s, why, sizeof(why));
		uint64_t send = s.start + g->stride;
		switch (s.state) {
		case SLOT_TRANSIENT:
			w->transient_slots++;
			/* about to be free, or not yet handed to the program */
			__attribute__((fallthrough));
		case SLOT_FREE:
			g->free_slots++;
			cs->slots_free++;
			w->free_slots++;
			emit(e, MD_SPAN_FREE, s.start, send, grp);
			if (g->last_idx && MD_PAGE_DOWN(send - 4) > MD_PAGE_UP(s.start))
				g->lazy_candidate_bytes += MD_PAGE_DOWN(send - 4) - MD_PAGE_UP(s.start);
			break;
		case SLOT_LIVE:
			g->live_slots++;
			g->live_bytes += s.size;
			cs->slots_in_use++;
			cs->live_bytes += s.size;
			w->live_allocations++;
			w->live_bytes += s.size;
			emit(e, MD_SPAN_OVERHEAD, s.start, s.p, grp);
			emit(e, MD_SPAN_LIVE, s.p, s.p + s.size, grp);
			emit(e, MD_SPAN_OVERHEAD, s.p + s.size, send, grp);
			w->overhead_bytes += g->stride - s.size;
			break;
		case SLOT_CONTAINER: {
			g->container_slots++;
			cs->slots_in_use++;
			struct mu_group *inner = group_at(w, s.p);
			uint64_t inner_end = s.p;
			if (inner && inner != g && inner->valid && inner->parent < 0 && s.p + group_extent(inner) <= send) {
				inner->parent = (int32_t)gi;
				inner_end = s.p + group_extent(inner);
			} else {
				finding(w, sink, MD_FINDING_CORRUPT, s.p,
					"slot %u of group 0x%" PRIx64 " says it holds a group at 0x%" PRIx64 ", but no valid group fits there",
					idx, g->mem, s.p);
			}
			/* The inner group's own spans cover [p, inner_end): only the rest is ours. */
			emit(e, MD_SPAN_OVERHEAD, s.start, s.p, grp);
			emit(e, MD_SPAN_OVERHEAD, inner_end, send, grp);
			w->overhead_bytes += g->stride - (inner_end - s.p);
			break;
		}
		case SLOT_BAD:
			g->bad_slots++;
			w->bad_slots++;
			cs->slots_in_use++;
			finding(w, sink, MD_FINDING_CORRUPT, s.start, "slot %u of group 0x%" PRIx64 " (class %u): %s", idx, g->mem,
				g->sizeclass, why);
			emit(e, MD_SPAN_OVERHEAD, s.start, send, grp);
			w->overhead_bytes += g->stride;
			break;
		}
	}
	if (g->maplen) {
		uint64_t tail = g->mem + group_extent(g), mend = g->mem + g->maplen * MD_PAGE_SIZE;
		emit(e, MD_SPAN_OVERHEAD, tail, mend, grp);
		if (mend > tail)
			w->overhead_bytes += mend - tail;
	}
}

/* Windows of up to RA_WINDOW_MAX over the valid groups that fit one, in address order (a nested
 * group lies inside its container's window); a window ends with the last group that fits, and at
 * a group too large for one, so nothing past the groups is read. Marks those groups MU_READ_AHEAD. */
static struct ra_window *plan_windows(struct md_target *t, struct mu_walk *w, size_t *n_ret)
{
	struct ra_window *win = NULL;
	size_t n = 0, cap = 0;
	uint64_t limit = 0;
	for (size_t i = 0; i < w->n_groups; i++) {
		struct mu_group *g = &w->groups[i];
		if (!g->valid)
			continue;
		uint64_t end = MD_PAGE_UP(g->mem + group_extent(g));
		if (group_extent(g) > WINDOW_MAX) {
			limit = 0; /* its own bytes are not needed: no window runs over them */
			continue;
		}
		if (n && g->mem >= win[n - 1].lo && end <= limit) {
			if (end > win[n - 1].hi)
				win[n - 1].hi = end;
			win[n - 1].end = i + 1;
			g->read_how = MU_READ_AHEAD;
			continue;
		}
		const struct md_mapping *m = md_target_find_mapping(t, g->mem);
		uint64_t lo = MD_PAGE_DOWN(g->mem);
		if (!m || end > m->end)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct ra_window *nw = realloc(win, nc * sizeof(*nw));
			if (!nw)
				break; /* the rest is read group by group */
			win = nw;
			cap = nc;
		}
		limit = m->end - lo < RA_WINDOW_MAX ? m->end : lo + RA_WINDOW_MAX;
		win[n++] = (struct ra_window){ .lo = lo, .hi = end, .first = i, .end = i + 1 };
		g->read_how = MU_READ_AHEAD;
	}
	*n_ret = n;
	return win;
}

/* Every valid group's slots. The groups that fit a window are read ahead by a reader thread
 * (plugins/common/read_ahead.c) while the slots of the windows before are decoded. The others
 * are read here: before the stream starts, or after it ends when a page of their window could
 * not be read (while it runs, the reader thread is the only caller of the target API). */
static void walk_all_slots(struct md_target *t, struct md_sink *sink, struct mu_walk *w)
{
	struct emitter e = { .sink = sink };
	size_t nwin = 0;
	struct ra_window *win = plan_windows(t, w, &nwin);
	/* Back pointers that cannot wait for a window: groups read alone, and the groups inside
	 * them (a container's slots are walked before its nested groups' windows come). */
	uint64_t alone_end = 0;
	for (size_t i = 0; i < w->n_groups; i++) {
		struct mu_group *g = &w->groups[i];
		if (!g->valid)
			continue;
		if (g->read_how == MU_READ_ALONE || g->mem < alone_end)
			read_back_pointer(t, sink, w, g);
		if (g->valid && g->read_how == MU_READ_ALONE && g->mem + group_extent(g) > alone_end)
			alone_end = g->mem + group_extent(g);
	}
	for (size_t i = 0; i < w->n_groups; i++)
		if (w->groups[i].valid && w->groups[i].read_how == MU_READ_ALONE)
			walk_slots(t, sink, w, i, &e, NULL);
	struct ra_stream *st = win ? ra_start(t, win, nwin) : NULL;
	for (size_t k = 0; k < nwin; k++) {
		const uint64_t *bad = NULL;
		const uint8_t *data = st ? ra_get(st, k, &bad) : NULL;
		struct window view = { .base = win[k].lo, .len = win[k].hi - win[k].lo, .buf = data, .streamed = true };
		/* The window's back pointers first: a container's slots look at its nested groups,
		 * which lie in the same window. */
		for (size_t i = win[k].first; i < win[k].end; i++) {
			struct mu_group *g = &w->groups[i];
			if (!g->valid || g->read_how != MU_READ_AHEAD || g->back_checked)
				continue;
			if (!data || ra_pages_bad(bad, g->mem - win[k].lo, g->mem + group_extent(g) - win[k].lo))
				g->read_how = MU_READ_AFTER;
			else
				check_back_pointer(sink, w, g, rd64(data + (g->mem - win[k].lo)));
		}
		for (size_t i = win[k].first; i < win[k].end; i++) {
			struct mu_group *g = &w->groups[i];
			if (!g->valid || g->read_how != MU_READ_AHEAD)
				continue;
			if (!data || ra_pages_bad(bad, g->mem - win[k].lo, g->mem + group_extent(g) - win[k].lo))
				g->read_how = MU_READ_AFTER;
			else
				walk_slots(t, sink, w, i, &e, &view);
		}
	}
	ra_finish(st);
	for (size_t i = 0; i < w->n_groups; i++)
		if (w->groups[i].valid && w->groups[i].read_how == MU_READ_AFTER && !w->groups[i].back_checked)
			read_back_pointer(t, sink, w, &w->groups[i]);
	for (size_t i = 0; i < w->n_groups; i++)
		if (w->groups[i].valid && w->groups[i].read_how == MU_READ_AFTER)
			walk_slots(t, sink, w, i, &e, NULL);
	free(win);
	emit_flush(&e);
}

struct md_error *mu_walk_run(struct md_target *t, const struct mu_roots *r, struct md_sink *sink, bool inconsistent,
			     struct mu_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->inconsistent = inconsistent;
	w->problem_hash = 0xcbf29ce484222325ull;
	struct md_error *err = mu_find_ctx(t, r, &w->ctx, &w->ctx_hits, &w->scanned_bytes, &w->found_ctx);
	if (err)
		return err;
	if (!w->found_ctx)
		return NULL;
	if (w->ctx_hits > 1)
		finding(w, sink, MD_FINDING_WARNING, w->ctx, "%u places in the image look like malloc_context: the first is used",
			w->ctx_hits);
	err = md_target_read(t, w->ctx, w->ctx_bytes, MU_CTX_SIZE);
	if (err)
		return md_error_wrap(err, "reading malloc_context at 0x%" PRIx64, w->ctx);
	w->secret = rd64(w->ctx_bytes + MU_CTX_SECRET);
	span(sink, MD_SPAN_METADATA, w->ctx, w->ctx + MU_CTX_SIZE, MU_GROUP_META);
	walk_areas(t, sink, w);
	if (w->n_groups)
		qsort(w->groups, w->n_groups, sizeof(*w->groups), cmp_group_mem);
	for (size_t i = 0; i < w->n_groups; i++)
		w->groups[i].valid = check_group(t, sink, w, &w->groups[i]);
	/* Two metas for one group: the back pointer says which one is the group's, now. */
	for (size_t i = 0; i < w->n_groups; i++) {
		struct mu_group *g = &w->groups[i];
		bool shared = (i > 0 && g[-1].mem == g->mem) || (i + 1 < w->n_groups && g[1].mem == g->mem);
		if (shared && g->valid)
			read_back_pointer(t, sink, w, g);
	}
	for (size_t i = 0; i + 1 < w->n_groups; i++)
		if (w->groups[i].mem == w->groups[i + 1].mem && w->groups[i].meta == w->groups[i + 1].meta) {
			/* The same meta read twice: a looping area chain (already a finding). */
			w->groups[i + 1].valid = false;
			w->groups[i + 1].duplicate = true;
		} else if (w->groups[i].mem == w->groups[i + 1].mem && w->groups[i].valid) {
			finding(w, sink, MD_FINDING_CORRUPT, w->groups[i].mem, "two metas claim the group at 0x%" PRIx64,
				w->groups[i].mem);
			w->groups[i + 1].valid = false;
		}
	/* Slots first (this links nested groups to their containers). */
	walk_all_slots(t, sink, w);
	for (size_t i = 0; i < w->n_groups; i++)
		w->invalid_groups += !w->groups[i].valid && !w->groups[i].duplicate;
	/* Top-level groups: regions, residency, what pins them. Adjacent mmapped groups share one
	 * region whatever their classes (a heap of small groups is tens of thousands of one-page
	 * mmaps side by side: a region each made the report grow with the heap), so their per-class
	 * residency is counted here, not by the classifier. */
	uint64_t last_end = 0, run_start = 0, run_end = 0;
	for (size_t i = 0; i < w->n_groups; i++) {
		struct mu_group *g = &w->groups[i];
		if (!g->valid)
			continue;
		uint64_t live = g->live_slots;
		/* Credit this group's live slots to its top-level ancestor (bounded nesting). */
		struct mu_group *top = g;
		for (unsigned d = 0; d < MAX_NESTING && top->parent >= 0; d++)
			top = &w->groups[top->parent];
		top->pinning_live += live;
		if (g->parent >= 0) {
			w->nested_groups++;
			continue;
		}
		uint64_t end = g->mem + (g->maplen ? g->maplen * MD_PAGE_SIZE : group_extent(g));
		if (g->mem < last_end) {
			/* Regions must not overlap: only hostile metadata gets here. */
			finding(w, sink, MD_FINDING_CORRUPT, g->mem, "group at 0x%" PRIx64 " overlaps the group before it (up to 0x%" PRIx64 ")",
				g->mem, last_end);
			continue;
		}
		last_end = end;
		g->resident_bytes = resident_bytes(t, MD_PAGE_UP(g->mem), MD_PAGE_DOWN(end));
		if (g->maplen) {
			w->mmapped_groups++;
			w->classes[g->sizeclass < MU_NCLASSES ? g->sizeclass : MU_NCLASSES].mmapped_resident_bytes +=
				resident_bytes(t, g->mem, end);
			if (g->mem != run_end) {
				if (run_end > run_start)
					region(sink, run_start, run_end, -1, "musl mmapped groups");
				run_start = g->mem;
			}
			run_end = end;
		} else {
			g->donated = true;
			w->donated_groups++;
			char label[160];
			snprintf(label, sizeof(label), "musl group donated by %s", module_label(t, g->mem));
			region(sink, g->mem, end, MU_GROUP_OF_CLASS(g->sizeclass), label);
		}
		if (g->maplen && g->freeable) {
			w->release_bytes += resident_bytes(t, g->mem, end);
		} else {
			w->kept_bytes += g->resident_bytes;
		}
	}
	if (run_end > run_start)
		region(sink, run_start, run_end, -1, "musl mmapped groups");
	for (size_t i = 0; i < w->n_groups; i++)
		if (w->groups[i].valid)
			w->lazy_candidate_bytes += w->groups[i].lazy_candidate_bytes;
	w->release_pages = w->release_bytes / MD_PAGE_SIZE;
	/* smaps LazyFree of the anonymous mappings that hold top-level groups. */
	size_t nm = 0;
	const struct md_mapping *maps = md_target_mappings(t, &nm);
	size_t gi = 0;
	for (size_t mi = 0; mi < nm && gi < w->n_groups; mi++) {
		while (gi < w->n_groups && w->groups[gi].mem < maps[mi].start)
			gi++;
		if (gi < w->n_groups && w->groups[gi].mem < maps[mi].end && maps[mi].smaps.valid)
			w->lazy_free_bytes += maps[mi].smaps.lazy_free;
	}
	/* The allocator's own count of slots per class must match the walk. __malloc_donate does
	 * not count the slots of donated groups there. */
	uint64_t donated_slots[MU_NCLASSES] = {0};
	for (size_t i = 0; i < w->n_groups; i++)
		if (w->groups[i].valid && w->groups[i].donated && w->groups[i].sizeclass < MU_NCLASSES)
			donated_slots[w->groups[i].sizeclass] += (uint64_t)w->groups[i].last_idx + 1;
	for (unsigned sc = 0; sc < MU_NCLASSES; sc++) {
		struct mu_class_stats *cs = &w->classes[sc];
		cs->usage_by_class = rd64(w->ctx_bytes + MU_CTX_USAGE_BY_CLASS + 8 * sc);
		if (!w->truncated && cs->slots_in_use + cs->slots_free != cs->usage_by_class + donated_slots[sc]) {
			w->usage_mismatch = true;
			finding(w, sink, inconsistent ? MD_FINDING_WARNING : MD_FINDING_CORRUPT, w->ctx,
				"class %u: the walk found %" PRIu64 " slots, ctx.usage_by_class says %" PRIu64, sc,
				cs->slots_in_use + cs->slots_free, cs->usage_by_class);
		}
	}
	if (w->transient_slots && sink)
		md_sink_finding(sink, MD_FINDING_INFO, 0, -1,
				"%" PRIu64 " slots were mid-malloc or mid-free (used in the masks, header not framed yet "
				"or already marked freed): counted as free",
				w->transient_slots);
	if (w->findings_dropped && sink)
		md_sink_finding(sink, MD_FINDING_WARNING, 0, -1, "%u more musl findings were not listed", w->findings_dropped);
	return NULL;
}

void mu_walk_deinit(struct mu_walk *w)
{
	free(w->win_buf);
	w->win_buf = NULL;
	w->win_cap = 0;
	free(w->groups);
	w->groups = NULL;
	w->n_groups = w->cap_groups = 0;
}
