#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jem_walk.h"

/* Bounds against hostile or corrupt memory: beyond these the walk stops and says so. */
#define MAX_FINDINGS 1000          /* findings of this plugin */
#define MAX_RING_STEPS (1u << 16)  /* tcache / descriptor rings per arena */
#define MAX_BASE_BLOCKS (1u << 20) /* base blocks per arena */
#define MAX_LRU_STEPS (1u << 20)   /* extents on one ecache lru ring */
#define MAX_EXTENTS (1u << 26)     /* distinct edata found through the rtree */
#define MAX_CACHED_PER_BIN 32768   /* cache_bin ncached is a u16 count of pointers */
#define MAX_BIN_SHARDS 64          /* BIN_SHARDS_MAX */
#define MAX_BINS_BYTES (1u << 20)  /* all bins of an arena */

/* ---- Small open-addressing map of u64 -> u64 (key 0 is "empty"). -------------------------- */

struct u64map {
	uint64_t *keys, *vals;
	size_t cap, n;
};

static void map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	*m = (struct u64map){0};
}

static size_t map_hash(uint64_t k, size_t cap)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return (size_t)k & (cap - 1);
}

static bool map_grow(struct u64map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	uint64_t *keys = calloc(cap, sizeof(*keys)), *vals = calloc(cap, sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return false;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t h = map_hash(m->keys[i], cap);
		while (keys[h])
			h = (h + 1) & (cap - 1);
		keys[h] = m->keys[i];
		vals[h] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return true;
}

static uint64_t *map_get(const struct u64map *m, uint64_t k)
{
	if (!m->cap || !k)
		return NULL;
	size_t h = map_hash(k, m->cap);
	while (m->keys[h]) {
		if (m->keys[h] == k)
			return &m->vals[h];
		h = (h + 1) & (m->cap - 1);
	}
	return NULL;
}

/* Insert k (nonzero) unless present. *existed tells which. False when out of memory. */
static bool map_put(struct u64map *m, uint64_t k, uint64_t v, bool *existed)
{
	uint64_t *p = map_get(m, k);
	if (p) {
		*existed = true;
		return true;
	}
	*existed = false;
	if ((m->n + 1) * 2 > m->cap && !map_grow(m))
		return false;
	size_t h = map_hash(k, m->cap);
	while (m->keys[h])
		h = (h + 1) & (m->cap - 1);
	m->keys[h] = k;
	m->vals[h] = v;
	m->n++;
	return true;
}

/* ---- Walk state -------------------------------------------------------------------------- */

struct extent {
	uint64_t edata;
	uint64_t bits;
	uint64_t addr;          /* e_addr */
	uint64_t base, size;    /* page range */
	uint64_t bitmap[8];
	unsigned arena;         /* index into w->arenas */
	bool is_base_block;     /* a base block (metadata), not an extent */
	bool dropped;           /* overlaps an earlier item: not emitted */
};

struct walker {
	struct md_target *t;
	const struct jem_roots *roots;
	const struct jem_layout *l;
	struct md_sink *sink;
	struct jem_walk *w;
	uint64_t index2size[JEM_NSIZES];
	uint32_t bin_offsets[JEM_NBINS];
	uint32_t n_shards[JEM_NBINS];
	uint32_t nregs[JEM_NBINS];    /* 0 when bin_infos unknown */
	int arena_of_index[JEM_MAX_ARENAS]; /* arena index -> w->arenas slot, -1 */
	struct u64map cached;         /* cached pointer -> (bin + 1) | RESOLVED */
	struct u64map dyn_allocs;     /* tcache dyn_alloc pointers (metadata extents) */
	struct u64map slabcurs;       /* slabcur edata of every bin */
	struct extent *items;
	size_t n_items, cap_items;
	unsigned own_findings;
};

#define CACHED_RESOLVED (1ULL << 32)

static unsigned bits_state(uint64_t b) { return (unsigned)((b >> 17) & 7); }
static unsigned bits_szind(uint64_t b) { return (unsigned)((b >> 20) & 0xff); }
static unsigned bits_nfree(uint64_t b) { return (unsigned)((b >> 28) & 0x3ff); }
static unsigned bits_arena(uint64_t b) { return (unsigned)(b & 0xfff); }
static bool bits_slab(uint64_t b) { return (b >> 12) & 1; }

static const char *state_name(unsigned s)
{
	static const char *const names[] = {"active", "dirty", "muzzy", "retained", "transition", "merging"};
	return s < 6 ? names[s] : "invalid";
}

__attribute__((format(printf, 5, 6))) static void finding(struct walker *wk, enum md_finding_severity sev,
							  uint64_t addr, int group, const char *fmt, ...)
{
	if (group >= 0 && (size_t)group < JEM_MAX_ARENAS && wk->arena_of_index[group] >= 0)
		wk->w->arenas[wk->arena_of_index[group]].findings++;
	if (wk->own_findings >= MAX_FINDINGS) {
		wk->w->truncated = true;
		return;
	}
	wk->own_findings++;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	md_sink_finding(wk->sink, sev, addr, group, "%s", msg);
}

static bool mapped_rw(struct md_target *t, uint64_t addr, uint64_t len)
{
	while (len) {
		const struct md_mapping *m = md_target_find_mapping(t, addr);
		if (!m || !(m->perms & MD_PERM_READ))
			return false;
		uint64_t n = m->end - addr < len ? m->end - addr : len;
		addr += n;
		len -= n;
	}
	return true;
}

/* Any mapping at all (retained extents may be PROT_NONE when decommitted). */
static bool mapped_any(struct md_target *t, uint64_t addr, uint64_t len)
{
	if (addr + len < addr)
		return false;
	while (len) {
		const struct md_mapping *m = md_target_find_mapping(t, addr);
		if (!m)
			return false;
		uint64_t n = m->end - addr < len ? m->end - addr : len;
		addr += n;
		len -= n;
	}
	return true;
}

static bool read_ok(struct walker *wk, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(wk->t, addr, buf, len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

static uint64_t get_u64(const uint8_t *buf, uint64_t off)
{
	uint64_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static uint32_t get_u32(const uint8_t *buf, uint64_t off)
{
	uint32_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static uint16_t get_u16(const uint8_t *buf, uint64_t off)
{
	uint16_t v;
	memcpy(&v, buf + off, sizeof(v));
	return v;
}

static struct extent *add_item(struct walker *wk)
{
	if (wk->n_items == wk->cap_items) {
		size_t cap = wk->cap_items ? wk->cap_items * 2 : 4096;
		struct extent *n = realloc(wk->items, cap * sizeof(*n));
		if (!n)
			return NULL;
		wk->items = n;
		wk->cap_items = cap;
	}
	struct extent *e = &wk->items[wk->n_items++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* Count pages of [start, end) that are in RSS: one mapping lookup per mapping, not per page
 * (retained extents can span gigabytes of untouched address space). */
static uint64_t resident_pages(struct md_target *t, uint64_t start, uint64_t end)
{
	uint64_t n = 0, p = start;
	while (p < end) {
		const struct md_mapping *m = md_target_find_mapping(t, p);
		if (!m)
			break;
		uint64_t stop = m->end < end ? m->end : end;
		if (m->pages) {
			for (uint64_t q = p; q < stop; q += JEM_PAGE)
				if (MD_PAGE_COUNTED(m->pages[(q - m->start) / JEM_PAGE]))
					n++;
		}
		p = stop;
	}
	return n;
}

/* ---- Tables: size classes, bins ---------------------------------------------------------- */

static void read_tables(struct walker *wk)
{
	const struct jem_roots *r = wk->roots;
	for (unsigned i = 0; i < JEM_NSIZES; i++)
		wk->index2size[i] = jem_index2size_default(i);
	if (r->index2size) {
		uint64_t tab[JEM_NSIZES];
		if (read_ok(wk, r->index2size, tab, sizeof(tab))) {
			bool sane = tab[0] == 8;
			for (unsigned i = 1; i < JEM_NSIZES && sane; i++)
				sane = tab[i] > tab[i - 1];
			if (sane)
				memcpy(wk->index2size, tab, sizeof(tab));
			else
				finding(wk, MD_FINDING_WARNING, r->index2size, -1,
					"sz_index2size_tab is not increasing: using the standard size classes");
		}
	}
	for (unsigned i = 0; i < JEM_NBINS; i++) {
		wk->bin_offsets[i] = (uint32_t)(wk->l->arena_bins + i * wk->l->bin_size);
		wk->n_shards[i] = 1;
	}
	if (r->bin_offsets) {
		uint32_t offs[JEM_NBINS];
		if (read_ok(wk, r->bin_offsets, offs, sizeof(offs))) {
			bool sane = true;
			for (unsigned i = 0; i < JEM_NBINS && sane; i++)
				sane = offs[i] >= wk->l->arena_bins && offs[i] < wk->l->arena_bins + MAX_BINS_BYTES;
			if (sane)
				memcpy(wk->bin_offsets, offs, sizeof(offs));
		}
	}
	if (r->bin_infos) {
		uint8_t infos[JEM_NBINS * 64];
		uint64_t sz = wk->l->bin_info_size;
		if (sz <= 64 && read_ok(wk, r->bin_infos, infos, JEM_NBINS * sz)) {
			for (unsigned i = 0; i < JEM_NBINS; i++) {
				uint32_t shards = get_u32(infos, i * sz + wk->l->bin_info_n_shards);
				uint32_t nregs = get_u32(infos, i * sz + wk->l->bin_info_nregs);
				if (shards >= 1 && shards <= MAX_BIN_SHARDS)
					wk->n_shards[i] = shards;
				if (nregs >= 1 && nregs <= JEM_SLAB_MAXREGS)
					wk->nregs[i] = nregs;
			}
		}
	}
}

/* ---- Arenas and their counters ----------------------------------------------------------- */

static bool read_arena(struct walker *wk, struct jem_arena *a)
{
	const struct jem_layout *l = wk->l;
	uint8_t *buf = malloc(l->arena_read_size);
	if (!buf)
		return false;
	if (!read_ok(wk, a->address, buf, l->arena_read_size)) {
		free(buf);
		a->corrupt = true;
		finding(wk, MD_FINDING_CORRUPT, a->address, (int)a->index, "arena %u at 0x%" PRIx64 " is not readable",
			a->index, a->address);
		return true;
	}
	a->nthreads = get_u32(buf, 0);
	a->nactive = get_u64(buf, l->arena_nactive);
	a->ndirty = get_u64(buf, l->arena_ecache[0] + l->ecache_npages) +
		    get_u64(buf, l->arena_ecache[0] + l->ecache_guarded_npages);
	a->nmuzzy = get_u64(buf, l->arena_ecache[1] + l->ecache_npages) +
		    get_u64(buf, l->arena_ecache[1] + l->ecache_guarded_npages);
	a->nretained = get_u64(buf, l->arena_ecache[2] + l->ecache_npages) +
		       get_u64(buf, l->arena_ecache[2] + l->ecache_guarded_npages);
	a->internal = get_u64(buf, l->arena_stats_internal);
	a->pac_mapped = get_u64(buf, l->arena_stats_pac_mapped);
	a->base = get_u64(buf, l->arena_base);
	/* Large: (nmalloc - ndalloc) of each large class times its size (arena_stats_merge). */
	for (unsigned k = 0; k < JEM_NLARGE; k++) {
		uint64_t off = l->arena_stats_lstats + k * l->lstats_size;
		uint64_t nmalloc = get_u64(buf, off + l->lstats_nmalloc);
		uint64_t ndalloc = get_u64(buf, off + l->lstats_ndalloc);
		a->allocated_large += (nmalloc - ndalloc) * wk->index2size[JEM_NBINS + k];
	}
	free(buf);

	/* Bins: curregs of every shard (ctl_arena_stats_amerge: allocated_small). */
	uint64_t lo = UINT64_MAX, hi = 0;
	for (unsigned i = 0; i < JEM_NBINS; i++) {
		uint64_t s = wk->bin_offsets[i], e = s + wk->n_shards[i] * l->bin_size;
		if (s < lo)
			lo = s;
		if (e > hi)
			hi = e;
	}
	if (hi <= lo || hi - lo > MAX_BINS_BYTES)
		return true;
	uint8_t *bins = malloc(hi - lo);
	if (!bins)
		return false;
	if (!read_ok(wk, a->address + lo, bins, hi - lo)) {
		free(bins);
		a->corrupt = true;
		finding(wk, MD_FINDING_CORRUPT, a->address + lo, (int)a->index, "arena %u: bins not readable", a->index);
		return true;
	}
	for (unsigned i = 0; i < JEM_NBINS; i++) {
		for (unsigned j = 0; j < wk->n_shards[i]; j++) {
			uint64_t off = wk->bin_offsets[i] + j * l->bin_size - lo;
			uint64_t curregs = get_u64(bins, off + l->bin_curregs);
			a->curregs[i] += curregs;
			a->allocated_small += curregs * wk->index2size[i];
			a->curslabs += get_u64(bins, off + l->bin_curslabs);
			a->nonfull_slabs += get_u64(bins, off + l->bin_nonfull_slabs);
			uint64_t slabcur = get_u64(bins, off + l->bin_slabcur);
			bool existed;
			if (slabcur && !map_put(&wk->slabcurs, slabcur, a->index, &existed)) {
				free(bins);
				return false;
			}
		}
	}
	free(bins);

	/* base_stats_get: allocated / resident / mapped of the arena's base. */
	uint8_t base[8 * 3];
	if (a->base && read_ok(wk, a->base + l->base_allocated, base, sizeof(base))) {
		a->base_allocated = get_u64(base, 0);
		a->base_resident = get_u64(base, l->base_resident - l->base_allocated);
		a->base_mapped = get_u64(base, l->base_mapped - l->base_allocated);
	} else {
		a->corrupt = true;
		finding(wk, MD_FINDING_CORRUPT, a->base, (int)a->index, "arena %u: base 0x%" PRIx64 " not readable",
			a->index, a->base);
	}
	return true;
}

static struct md_error *read_arenas(struct walker *wk)
{
	const struct jem_roots *r = wk->roots;
	struct jem_walk *w = wk->w;
	uint32_t slots = r->arena_slots ? r->arena_slots : JEM_MAX_ARENAS;
	if (slots > JEM_MAX_ARENAS)
		slots = JEM_MAX_ARENAS;
	if (r->narenas_total) {
		uint32_t nt;
		if (read_ok(wk, r->narenas_total, &nt, sizeof(nt)) && nt >= 1 && nt <= JEM_MAX_ARENAS) {
			w->narenas_total = nt;
		}
	}
	uint32_t manual_base = UINT32_MAX;
	if (r->manual_arena_base) {
		uint32_t mb;
		if (read_ok(wk, r->manual_arena_base, &mb, sizeof(mb)) && mb <= JEM_MAX_ARENAS)
			manual_base = mb;
	}
	uint32_t narenas_auto = UINT32_MAX;
	if (r->narenas_auto) {
		uint32_t na;
		if (read_ok(wk, r->narenas_auto, &na, sizeof(na)) && na <= JEM_MAX_ARENAS)
			narenas_auto = na;
	}
	uint64_t *ptrs = calloc(slots, sizeof(*ptrs));
	if (!ptrs)
		return &md_error_nomem;
	struct md_error *err = md_target_read(wk->t, r->arenas, ptrs, slots * sizeof(*ptrs));
	if (err) {
		free(ptrs);
		return md_error_wrap(err, "reading je_arenas");
	}
	size_t n = 0;
	for (uint32_t i = 0; i < slots; i++)
		if (ptrs[i])
			n++;
	w->arenas = calloc(n ? n : 1, sizeof(*w->arenas));
	if (!w->arenas) {
		free(ptrs);
		return &md_error_nomem;
	}
	for (uint32_t i = 0; i < slots; i++) {
		if (!ptrs[i])
			continue;
		const struct jem_layout *l = wk->l;
		uint64_t a = ptrs[i];
		uint8_t tail[32];
		bool ok = (a & 63) == 0 && mapped_rw(wk->t, a, l->arena_read_size) &&
			  read_ok(wk, a + l->arena_emap, tail, sizeof(tail));
		if (ok) {
			uint64_t emap = get_u64(tail, 0), pa_base = get_u64(tail, 8);
			uint32_t ind = get_u32(tail, 16);
			uint64_t base = get_u64(tail, l->arena_base - l->arena_emap);
			ok = emap == r->emap && ind == i && base && base == pa_base;
		}
		if (!ok) {
			finding(wk, MD_FINDING_CORRUPT, r->arenas + 8 * i, (int)i,
				"je_arenas[%u] = 0x%" PRIx64 " is not an arena (index/emap/base check failed)", i, a);
			continue;
		}
		struct jem_arena *ar = &w->arenas[w->n_arenas];
		memset(ar, 0, sizeof(*ar));
		ar->index = i;
		ar->address = a;
		ar->manual = i >= manual_base;
		ar->huge = i == narenas_auto && manual_base != UINT32_MAX && manual_base > narenas_auto;
		wk->arena_of_index[i] = (int)w->n_arenas;
		w->n_arenas++;
		if (!read_arena(wk, ar)) {
			free(ptrs);
			return &md_error_nomem;
		}
	}
	free(ptrs);
	if (!w->n_arenas)
		return md_error_create(MD_ERR_BAD_DATA, "no valid arena in je_arenas");
	return NULL;
}

/* ---- Thread caches ----------------------------------------------------------------------- */

/* Walk one ring (ql) starting at head, calling fn for each element; bounded, cycle-checked. */
static bool walk_ring(struct walker *wk, struct jem_arena *a, uint64_t head_addr, const char *what,
		      bool (*fn)(struct walker *wk, struct jem_arena *a, uint64_t elm))
{
	uint64_t head;
	if (!read_ok(wk, head_addr, &head, sizeof(head)))
		return true;
	struct u64map seen = {0};
	uint64_t e = head;
	unsigned steps = 0;
	bool ok = true;
	while (e) {
		bool existed;
		if (!mapped_rw(wk->t, e, 64)) {
			finding(wk, MD_FINDING_CORRUPT, e, (int)a->index, "arena %u: %s ring points to unmapped 0x%" PRIx64,
				a->index, what, e);
			break;
		}
		if (!map_put(&seen, e, 1, &existed)) {
			ok = false;
			break;
		}
		if (existed) {
			finding(wk, MD_FINDING_CORRUPT, e, (int)a->index,
				"arena %u: %s ring loops back to 0x%" PRIx64 " without reaching its head", a->index, what, e);
			break;
		}
		if (++steps > MAX_RING_STEPS) {
			finding(wk, MD_FINDING_WARNING, e, (int)a->index, "arena %u: %s ring longer than %u: stopped",
				a->index, what, MAX_RING_STEPS);
			wk->w->truncated = true;
			break;
		}
		if (!fn(wk, a, e)) {
			ok = false;
			break;
		}
		uint64_t next;
		if (!read_ok(wk, e, &next, sizeof(next)))
			break;
		if (next == head)
			break;
		e = next;
	}
	map_free(&seen);
	return ok;
}

static bool on_tcache_slow(struct walker *wk, struct jem_arena *a, uint64_t slow)
{
	const struct jem_layout *l = wk->l;
	uint64_t dyn = 0, tcache = 0;
	if (!read_ok(wk, slow + l->tcache_slow_dyn_alloc, &dyn, sizeof(dyn)) ||
	    !read_ok(wk, slow + l->tcache_slow_tcache, &tcache, sizeof(tcache)))
		return true;
	/* A thread's tcache is embedded in its tsd right after tcache_slow's neighbours; an
	 * explicit one (tcache.create) lives inside its own dyn_alloc block. */
	if (tcache > dyn && tcache < dyn + (1u << 20) && slow > dyn && slow < dyn + (1u << 20))
		wk->w->n_explicit_tcaches++;
	else
		wk->w->n_thread_tcaches++;
	a->n_tcaches++;
	bool existed;
	if (dyn && !map_put(&wk->dyn_allocs, dyn, a->index, &existed))
		return false;
	return true;
}

static bool on_descriptor(struct walker *wk, struct jem_arena *a, uint64_t desc)
{
	const struct jem_layout *l = wk->l;
	uint64_t bins_addr;
	if (!read_ok(wk, desc + l->descriptor_bins, &bins_addr, sizeof(bins_addr)))
		return true;
	size_t bins_len = JEM_TCACHE_NBINS_MAX * l->cache_bin_size;
	uint8_t bins[JEM_TCACHE_NBINS_MAX * 32];
	if (l->cache_bin_size > 32 || !mapped_rw(wk->t, bins_addr, bins_len) ||
	    !read_ok(wk, bins_addr, bins, bins_len)) {
		finding(wk, MD_FINDING_CORRUPT, desc, (int)a->index,
			"arena %u: cache bin descriptor 0x%" PRIx64 " points to unreadable bins 0x%" PRIx64,
			a->index, desc, bins_addr);
		return true;
	}
	for (unsigned i = 0; i < JEM_TCACHE_NBINS_MAX; i++) {
		const uint8_t *b = bins + i * l->cache_bin_size;
		uint64_t head = get_u64(b, l->cache_bin_stack_head);
		if (!head)
			continue;
		uint16_t full = get_u16(b, l->cache_bin_low_bits_full);
		uint16_t empty = get_u16(b, l->cache_bin_low_bits_empty);
		uint16_t ncached_bytes = (uint16_t)(empty - (uint16_t)head);
		uint16_t cap_bytes = (uint16_t)(empty - full);
		unsigned ncached = ncached_bytes / 8, cap = cap_bytes / 8;
		if (ncached == 0)
			continue;
		if ((ncached_bytes % 8) || ncached > cap || ncached > MAX_CACHED_PER_BIN || i >= JEM_NSIZES) {
			finding(wk, MD_FINDING_CORRUPT, bins_addr + i * l->cache_bin_size, (int)a->index,
				"arena %u: cache bin %u claims %u cached of %u slots", a->index, i, ncached, cap);
			continue;
		}
		/* cache_bin_init lays the enabled bins' stacks end to end in one block: bin i's empty
		 * position is bin i+1's full position. A bin whose stack runs past it claims slots
		 * (and "cached" pointers) that belong to its neighbour. */
		if (i + 1 < JEM_TCACHE_NBINS_MAX) {
			const uint8_t *nb = b + l->cache_bin_size;
			uint16_t nfull = get_u16(nb, l->cache_bin_low_bits_full);
			uint16_t nempty = get_u16(nb, l->cache_bin_low_bits_empty);
			if (get_u64(nb, l->cache_bin_stack_head) && nempty != nfull && nfull != empty) {
				finding(wk, MD_FINDING_CORRUPT, bins_addr + i * l->cache_bin_size, (int)a->index,
					"arena %u: cache bin %u claims %u cached of %u slots, its stack overlaps bin %u's "
					"(empty 0x%04x, next full 0x%04x)",
					a->index, i, ncached, cap, i + 1, empty, nfull);
				continue;
			}
		}
		uint64_t *items = malloc(ncached * sizeof(*items));
		if (!items)
			return false;
		if (!mapped_rw(wk->t, head, ncached * 8ULL) || !read_ok(wk, head, items, ncached * 8ULL)) {
			free(items);
			finding(wk, MD_FINDING_CORRUPT, head, (int)a->index,
				"arena %u: cache bin %u stack 0x%" PRIx64 " not readable", a->index, i, head);
			continue;
		}
		for (unsigned k = 0; k < ncached; k++) {
			bool existed;
			if (!items[k]) {
				finding(wk, MD_FINDING_CORRUPT, head + 8 * k, (int)a->index,
					"arena %u: NULL pointer in cache bin %u", a->index, i);
				continue;
			}
			if (!map_put(&wk->cached, items[k], i + 1, &existed)) {
				free(items);
				return false;
			}
			if (existed) {
				finding(wk, MD_FINDING_CORRUPT, items[k], (int)a->index,
					"region 0x%" PRIx64 " is cached twice (double free?)", items[k]);
				continue;
			}
			a->tcache_bytes += wk->index2size[i];
			wk->w->cached_regions++;
		}
		free(items);
	}
	return true;
}

static bool read_tcaches(struct walker *wk)
{
	for (size_t i = 0; i < wk->w->n_arenas; i++) {
		struct jem_arena *a = &wk->w->arenas[i];
		if (a->corrupt)
			continue;
		if (!walk_ring(wk, a, a->address + wk->l->arena_tcache_ql, "tcache", on_tcache_slow) ||
		    !walk_ring(wk, a, a->address + wk->l->arena_descriptor_ql, "cache bin descriptor", on_descriptor))
			return false;
	}
	return true;
}

/* ---- Base blocks ------------------------------------------------------------------------- */

static bool read_base_blocks(struct walker *wk, struct jem_arena *a)
{
	const struct jem_layout *l = wk->l;
	uint64_t block;
	if (!a->base || !read_ok(wk, a->base + l->base_blocks, &block, sizeof(block)))
		return true;
	struct u64map seen = {0};
	unsigned n = 0;
	bool ok = true;
	uint64_t holder = a->base + l->base_blocks; /* where the current link was read */
	while (block) {
		bool existed;
		uint8_t hdr[24];
		if ((block & (JEM_PAGE - 1)) || !read_ok(wk, block, hdr, sizeof(hdr))) {
			finding(wk, MD_FINDING_CORRUPT, block, (int)a->index,
				"arena %u: base block 0x%" PRIx64 " is not a readable page", a->index, block);
			break;
		}
		uint64_t size = get_u64(hdr, l->base_block_size), next = get_u64(hdr, l->base_block_next);
		if (!size || (size & (JEM_PAGE - 1)) || size > (1ULL << 40) || !mapped_any(wk->t, block, size)) {
			finding(wk, MD_FINDING_CORRUPT, block, (int)a->index,
				"arena %u: base block 0x%" PRIx64 " has bad size 0x%" PRIx64, a->index, block, size);
			break;
		}
		if (!map_put(&seen, block, 1, &existed)) {
			ok = false;
			break;
		}
		if (existed) {
			/* Name the block whose next link closes the loop: that is the damaged word. */
			finding(wk, MD_FINDING_CORRUPT, holder, (int)a->index,
				"arena %u: base block list loops at 0x%" PRIx64 " (next of block 0x%" PRIx64
				" points back to an earlier block)",
				a->index, block, holder);
			break;
		}
		if (++n > MAX_BASE_BLOCKS) {
			wk->w->truncated = true;
			break;
		}
		struct extent *e = add_item(wk);
		if (!e) {
			ok = false;
			break;
		}
		e->base = block;
		e->size = size;
		e->addr = block;
		e->arena = (unsigned)wk->arena_of_index[a->index];
		e->is_base_block = true;
		a->w_base_blocks++;
		a->w_base_bytes += size;
		holder = block;
		block = next;
	}
	map_free(&seen);
	return ok;
}

/* ---- Ecache lru rings -------------------------------------------------------------------- */

/* Each ecache's eset keeps its extents on a ring through edata ql_link_inactive. jemalloc walks
 * it to decay and to evict, so a ring that never returns to its head hangs the target's next
 * purge: follow it, bounded, and name the edata whose next link is bad. */
static bool walk_lru(struct walker *wk, struct jem_arena *a, unsigned which)
{
	static const char *const names[] = {"dirty", "muzzy", "retained"};
	const struct jem_layout *l = wk->l;
	uint64_t head;
	if (!read_ok(wk, a->address + l->arena_ecache[which] + l->ecache_lru, &head, sizeof(head)) || !head)
		return true;
	if (!mapped_rw(wk->t, head, JEM_EDATA_SIZE)) {
		finding(wk, MD_FINDING_CORRUPT, a->address + l->arena_ecache[which] + l->ecache_lru, (int)a->index,
			"arena %u: %s ecache lru head points to unmapped edata 0x%" PRIx64, a->index, names[which], head);
		return true;
	}
	struct u64map seen = {0};
	uint64_t e = head;
	unsigned steps = 0;
	bool ok = true;
	for (;;) {
		bool existed;
		if (!map_put(&seen, e, 1, &existed)) {
			ok = false;
			break;
		}
		if (++steps > MAX_LRU_STEPS) {
			finding(wk, MD_FINDING_WARNING, e, (int)a->index, "arena %u: %s ecache lru longer than %u: stopped",
				a->index, names[which], MAX_LRU_STEPS);
			wk->w->truncated = true;
			break;
		}
		uint64_t next;
		if (!read_ok(wk, e + l->edata_lru_link, &next, sizeof(next)))
			break;
		if (next == head)
			break;
		if (!next || (next & (JEM_EDATA_SIZE - 1)) || !mapped_rw(wk->t, next, JEM_EDATA_SIZE)) {
			finding(wk, MD_FINDING_CORRUPT, e, (int)a->index,
				"arena %u: %s ecache lru: edata 0x%" PRIx64 " links to 0x%" PRIx64 ", not an edata",
				a->index, names[which], e, next);
			break;
		}
		if (map_get(&seen, next)) {
			finding(wk, MD_FINDING_CORRUPT, e, (int)a->index,
				"arena %u: %s ecache lru loops: edata 0x%" PRIx64 " links back to 0x%" PRIx64
				" without reaching the head 0x%" PRIx64,
				a->index, names[which], e, next, head);
			break;
		}
		e = next;
	}
	map_free(&seen);
	return ok;
}

/* ---- The emap radix tree ----------------------------------------------------------------- */

/* Collect every distinct edata registered in the rtree, with one page it is registered for. */
static bool walk_rtree(struct walker *wk, struct u64map *edatas)
{
	const struct jem_layout *l = wk->l;
	uint64_t root = wk->roots->emap + l->rtree_root;
	uint64_t nroot = 1ULL << JEM_RTREE_ROOT_BITS;
	uint64_t leaf_bytes = 8ULL << JEM_RTREE_LEAF_BITS;
	uint64_t page[JEM_PAGE / 8], leafpage[JEM_PAGE / 8];
	for (uint64_t p = root & ~(JEM_PAGE - 1); p < root + nroot * 8 && !md_target_interrupted(wk->t); p += JEM_PAGE) {
		if (!MD_PAGE_COUNTED(md_target_page_bits(wk->t, p)))
			continue; /* never written: no leaf pointers there */
		if (!read_ok(wk, p, page, sizeof(page)))
			continue;
		for (unsigned k = 0; k < JEM_PAGE / 8; k++) {
			uint64_t slot = p + 8 * k;
			if (slot < root || slot >= root + nroot * 8 || !page[k])
				continue;
			uint64_t i = (slot - root) / 8, leaf = page[k];
			if ((leaf & 7) || !mapped_rw(wk->t, leaf, leaf_bytes)) {
				finding(wk, MD_FINDING_CORRUPT, slot, -1,
					"rtree root[%" PRIu64 "] = 0x%" PRIx64 " is not a mapped leaf", i, leaf);
				continue;
			}
			wk->w->rtree_leaves++;
			for (uint64_t lp = leaf & ~(JEM_PAGE - 1); lp < leaf + leaf_bytes; lp += JEM_PAGE) {
				/* The 2 MiB leaf is touched lazily: read only its resident pages. */
				if (!MD_PAGE_COUNTED(md_target_page_bits(wk->t, lp)))
					continue;
				if (!read_ok(wk, lp, leafpage, sizeof(leafpage)))
					continue;
				for (unsigned m = 0; m < JEM_PAGE / 8; m++) {
					uint64_t ea = lp + 8 * m;
					if (ea < leaf || ea >= leaf + leaf_bytes)
						continue;
					uint64_t word = leafpage[m];
					uint64_t edata = (uint64_t)(((int64_t)(word << 16)) >> 16) & ~0x7fULL;
					if (!edata)
						continue; /* cleared entry (edata NULL, szind SC_NSIZES) */
					uint64_t j = (ea - leaf) / 8;
					uint64_t pageaddr = (i << (JEM_LG_PAGE + JEM_RTREE_LEAF_BITS)) | (j << JEM_LG_PAGE);
					wk->w->rtree_entries++;
					bool existed;
					if (edatas->n >= MAX_EXTENTS) {
						wk->w->truncated = true;
						return true;
					}
					if (!map_put(edatas, edata, pageaddr, &existed))
						return false;
				}
			}
		}
	}
	return true;
}

static int cmp_u64_first(const void *pa, const void *pb)
{
	uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
	return a < b ? -1 : a > b ? 1 : 0;
}

static bool collect_extents(struct walker *wk)
{
	struct u64map edatas = {0};
	if (!walk_rtree(wk, &edatas)) {
		map_free(&edatas);
		return false;
	}
	const struct jem_layout *l = wk->l;
	/* Read the edata in address order: they are packed in base blocks, and the target reader
	 * caches blocks of memory, so hash order would re-read the same blocks over and over. */
	struct pair {
		uint64_t edata, page;
	} *order = malloc((edatas.n ? edatas.n : 1) * sizeof(*order));
	if (!order) {
		map_free(&edatas);
		return false;
	}
	size_t n_order = 0;
	for (size_t h = 0; h < edatas.cap; h++)
		if (edatas.keys[h])
			order[n_order++] = (struct pair){edatas.keys[h], edatas.vals[h]};
	map_free(&edatas);
	if (n_order > 0)
		qsort(order, n_order, sizeof(*order), cmp_u64_first);
	for (size_t h = 0; h < n_order; h++) {
		if ((h & 4095) == 0 && md_target_interrupted(wk->t))
			break; /* SIGINT: the target is let go at once, the report is not made */
		uint64_t ed = order[h].edata, page = order[h].page;
		uint8_t buf[JEM_EDATA_SIZE];
		if (!mapped_rw(wk->t, ed, JEM_EDATA_SIZE) || !read_ok(wk, ed, buf, sizeof(buf))) {
			finding(wk, MD_FINDING_CORRUPT, page, -1,
				"rtree entry for page 0x%" PRIx64 " points to unreadable edata 0x%" PRIx64, page, ed);
			continue;
		}
		uint64_t bits = get_u64(buf, l->edata_bits), addr = get_u64(buf, l->edata_addr);
		uint64_t size = get_u64(buf, l->edata_size) & ~(JEM_PAGE - 1), base = addr & ~(JEM_PAGE - 1);
		unsigned ai = bits_arena(bits), st = bits_state(bits);
		int slot = ai < JEM_MAX_ARENAS ? wk->arena_of_index[ai] : -1;
		if (slot < 0) {
			finding(wk, MD_FINDING_CORRUPT, ed, -1, "edata 0x%" PRIx64 " (page 0x%" PRIx64 ") names unknown arena %u",
				ed, page, ai);
			continue;
		}
		if (st > JEM_EXTENT_MERGING || !size || base + size < base || page < base || page >= base + size) {
			finding(wk, MD_FINDING_CORRUPT, ed, (int)ai,
				"edata 0x%" PRIx64 " for page 0x%" PRIx64 ": extent [0x%" PRIx64 ", +0x%" PRIx64 ") state %u does not cover it",
				ed, page, base, size, st);
			continue;
		}
		if (!mapped_any(wk->t, base, size)) {
			finding(wk, MD_FINDING_CORRUPT, ed, (int)ai, "extent [0x%" PRIx64 ", +0x%" PRIx64 ") is not mapped",
				base, size);
			continue;
		}
		struct extent *e = add_item(wk);
		if (!e) {
			free(order);
			return false;
		}
		e->edata = ed;
		e->bits = bits;
		e->addr = addr;
		e->base = base;
		e->size = size;
		e->arena = (unsigned)slot;
		memcpy(e->bitmap, buf + l->edata_bitmap, sizeof(e->bitmap));
		wk->w->extents++;
	}
	free(order);
	return true;
}

/* ---- Classification and emission --------------------------------------------------------- */

static int cmp_items(const void *pa, const void *pb)
{
	const struct extent *a = pa, *b = pb;
	return a->base < b->base ? -1 : a->base > b->base ? 1 : 0;
}

/* Span emitter that merges touching spans of the same kind. */
struct emitter {
	struct md_sink *sink;
	int group;
	enum md_span_kind kind;
	uint64_t start, end;
};

static void emit_flush(struct emitter *em)
{
	if (em->end > em->start)
		md_sink_span(em->sink, em->kind, em->start, em->end, em->group);
	em->start = em->end = 0;
}

static void emit(struct emitter *em, enum md_span_kind kind, uint64_t start, uint64_t end, int group)
{
	if (end <= start)
		return;
	if (em->end == start && em->kind == kind && em->group == group && em->end > em->start) {
		em->end = end;
		return;
	}
	emit_flush(em);
	em->kind = kind;
	em->group = group;
	em->start = start;
	em->end = end;
}

static void classify_slab(struct walker *wk, struct emitter *em, struct extent *e, struct jem_arena *a)
{
	int g = (int)a->index;
	unsigned szind = bits_szind(e->bits);
	if (szind >= JEM_NBINS) {
		finding(wk, MD_FINDING_CORRUPT, e->edata, g, "slab 0x%" PRIx64 " has non-small size class %u", e->base, szind);
		emit(em, MD_SPAN_LIVE, e->base, e->base + e->size, g);
		return;
	}
	uint64_t reg = wk->index2size[szind];
	uint64_t nregs = e->size / reg;
	if (nregs == 0 || nregs > JEM_SLAB_MAXREGS || (wk->nregs[szind] && nregs != wk->nregs[szind])) {
		finding(wk, MD_FINDING_CORRUPT, e->edata, g, "slab 0x%" PRIx64 " of 0x%" PRIx64 " bytes cannot hold class %u",
			e->base, e->size, szind);
		emit(em, MD_SPAN_LIVE, e->base, e->base + e->size, g);
		return;
	}
	/* The bitmap is flat: bit r set = region r free; only the first nregs bits are valid. */
	unsigned nfree = 0;
	for (uint64_t r = 0; r < nregs; r++)
		nfree += (e->bitmap[r / 64] >> (r % 64)) & 1;
	if (nfree != bits_nfree(e->bits))
		finding(wk, wk->w->inconsistent ? MD_FINDING_WARNING : MD_FINDING_CORRUPT, e->edata, g,
			"slab 0x%" PRIx64 " (class %u): bitmap has %u free regions, nfree says %u", e->base, szind, nfree,
			bits_nfree(e->bits));
	uint64_t used = nregs - nfree;
	a->w_slabs++;
	a->w_bin_slabs[szind]++;
	a->w_bin_free_regs[szind] += nfree;
	a->w_curregs[szind] += used;
	a->w_allocated += used * reg;
	if (nfree && !map_get(&wk->slabcurs, e->edata)) {
		a->w_nonfull_slabs++;
		a->w_bin_nonfull[szind]++;
	}
	for (uint64_t r = 0; r < nregs; r++) {
		uint64_t ra = e->base + r * reg;
		bool is_free = (e->bitmap[r / 64] >> (r % 64)) & 1;
		uint64_t *c = map_get(&wk->cached, ra);
		enum md_span_kind kind;
		if (c) {
			*c |= CACHED_RESOLVED;
			if (is_free)
				finding(wk, MD_FINDING_CORRUPT, ra, g, "region 0x%" PRIx64 " is in a tcache and free in its slab", ra);
			if ((*c & 0xffffffff) - 1 != szind)
				finding(wk, MD_FINDING_CORRUPT, ra, g, "region 0x%" PRIx64 " (class %u) cached in tcache bin %" PRIu64,
					ra, szind, (*c & 0xffffffff) - 1);
			kind = MD_SPAN_CACHED;
			a->w_cached += reg;
			a->w_bin_cached_regs[szind]++;
		} else if (is_free) {
			kind = MD_SPAN_FREE;
			a->w_free_regions += reg;
		} else {
			kind = MD_SPAN_LIVE;
			a->w_live += reg;
		}
		emit(em, kind, ra, ra + reg, g);
	}
	emit(em, MD_SPAN_OVERHEAD, e->base + nregs * reg, e->base + e->size, g); /* slab tail, if any */
}

static void classify_large(struct walker *wk, struct emitter *em, struct extent *e, struct jem_arena *a)
{
	int g = (int)a->index;
	unsigned szind = bits_szind(e->bits);
	uint64_t end = e->base + e->size;
	a->w_large++;
	if (map_get(&wk->dyn_allocs, e->addr)) {
		/* A tcache's pointer stacks (an internal a0 allocation): jemalloc's metadata. */
		uint64_t usize = szind < JEM_NSIZES ? wk->index2size[szind] : 0;
		a->w_allocated += usize;
		a->w_metadata_extents += usize;
		emit(em, MD_SPAN_METADATA, e->base, end, g);
		return;
	}
	uint64_t usize = szind >= JEM_NBINS && szind < JEM_NSIZES ? wk->index2size[szind] : 0;
	if (!usize || e->addr < e->base || e->addr >= end || usize > end - e->addr) {
		finding(wk, MD_FINDING_CORRUPT, e->edata, g,
			"large extent [0x%" PRIx64 ", 0x%" PRIx64 "): address 0x%" PRIx64 " and class %u do not fit", e->base,
			end, e->addr, szind);
		a->w_live += e->size;
		emit(em, MD_SPAN_LIVE, e->base, end, g);
		return;
	}
	a->w_allocated += usize;
	uint64_t *c = map_get(&wk->cached, e->addr);
	enum md_span_kind kind = MD_SPAN_LIVE;
	if (c) {
		*c |= CACHED_RESOLVED;
		kind = MD_SPAN_CACHED;
		a->w_cached += usize;
	} else {
		a->w_live += usize;
	}
	a->w_pad += e->size - usize;
	emit(em, MD_SPAN_OVERHEAD, e->base, e->addr, g);
	emit(em, kind, e->addr, e->addr + usize, g);
	emit(em, MD_SPAN_OVERHEAD, e->addr + usize, end, g);
}

static void classify(struct walker *wk, struct emitter *em, struct extent *e)
{
	struct jem_arena *a = &wk->w->arenas[e->arena];
	int g = (int)a->index;
	uint64_t end = e->base + e->size;
	if (e->is_base_block) {
		emit(em, MD_SPAN_METADATA, e->base, end, g);
		return;
	}
	unsigned st = bits_state(e->bits);
	switch (st) {
	case JEM_EXTENT_ACTIVE:
		a->w_active += e->size;
		if (bits_slab(e->bits))
			classify_slab(wk, em, e, a);
		else
			classify_large(wk, em, e, a);
		break;
	case JEM_EXTENT_DIRTY:
	case JEM_EXTENT_MUZZY:
		if (st == JEM_EXTENT_DIRTY)
			a->w_dirty += e->size;
		else
			a->w_muzzy += e->size;
		emit(em, MD_SPAN_FREE, e->base, end, g);
		emit_flush(em);
		/* What arena.<i>.purge would give back: every resident page of these extents. */
		md_sink_span(wk->sink, MD_SPAN_RELEASABLE, e->base, end, g);
		a->releasable_pages += resident_pages(wk->t, e->base, end);
		break;
	case JEM_EXTENT_RETAINED: {
		a->w_retained += e->size;
		emit(em, MD_SPAN_FREE, e->base, end, g);
		uint64_t res = resident_pages(wk->t, e->base, end);
		if (res) {
			a->retained_resident_pages += res;
			finding(wk, MD_FINDING_INFO, e->base, g,
				"retained extent [0x%" PRIx64 ", 0x%" PRIx64 ") of arena %u has %" PRIu64 " resident pages",
				e->base, end, a->index, res);
		}
		break;
	}
	default:
		finding(wk, MD_FINDING_WARNING, e->edata, g, "extent [0x%" PRIx64 ", 0x%" PRIx64 ") is in state %s (mid-operation)",
			e->base, end, state_name(st));
		emit(em, MD_SPAN_FREE, e->base, end, g);
		break;
	}
}

static bool emit_all(struct walker *wk)
{
	if (wk->n_items > 0)
		qsort(wk->items, wk->n_items, sizeof(*wk->items), cmp_items);
	/* Items must not overlap: a later one that does is reported and left out. */
	uint64_t reach = 0;
	const struct extent *prev = NULL;
	for (size_t i = 0; i < wk->n_items; i++) {
		struct extent *e = &wk->items[i];
		if (prev && e->base < reach) {
			e->dropped = true;
			finding(wk, MD_FINDING_CORRUPT, e->base, (int)wk->w->arenas[e->arena].index,
				"%s [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps %s [0x%" PRIx64 ", 0x%" PRIx64 ")",
				e->is_base_block ? "base block" : "extent", e->base, e->base + e->size,
				prev->is_base_block ? "base block" : "extent", prev->base, prev->base + prev->size);
			continue;
		}
		prev = e;
		reach = e->base + e->size;
	}
	/* Regions: runs of touching items of one arena (and of one kind: base or extents). */
	struct emitter em = {.sink = wk->sink};
	size_t i = 0;
	while (i < wk->n_items) {
		if (wk->items[i].dropped) {
			i++;
			continue;
		}
		size_t j = i + 1;
		uint64_t end = wk->items[i].base + wk->items[i].size;
		while (j < wk->n_items) {
			const struct extent *n = &wk->items[j];
			if (n->dropped) {
				j++;
				continue;
			}
			if (n->base != end || n->arena != wk->items[i].arena ||
			    n->is_base_block != wk->items[i].is_base_block)
				break;
			end = n->base + n->size;
			j++;
		}
		const struct jem_arena *a = &wk->w->arenas[wk->items[i].arena];
		char label[64];
		snprintf(label, sizeof(label), wk->items[i].is_base_block ? "jemalloc base %u" : "jemalloc arena %u",
			 a->index);
		if (md_sink_region(wk->sink, wk->items[i].base, end, (int)a->index, label) < 0)
			return false;
		for (size_t k = i; k < j; k++)
			if (!wk->items[k].dropped)
				classify(wk, &em, &wk->items[k]);
		emit_flush(&em);
		i = j;
	}
	return true;
}

/* ---- Cross-checks ------------------------------------------------------------------------ */

static void cross_check(struct walker *wk)
{
	struct jem_walk *w = wk->w;
	enum md_finding_severity sev = w->inconsistent ? MD_FINDING_INFO : MD_FINDING_WARNING;
	for (size_t i = 0; i < w->n_arenas; i++) {
		struct jem_arena *a = &w->arenas[i];
		if (a->corrupt)
			continue;
		const struct {
			const char *what;
			uint64_t counter, walked;
		} checks[] = {
			{"active bytes", a->nactive * JEM_PAGE, a->w_active},
			{"dirty bytes", a->ndirty * JEM_PAGE, a->w_dirty},
			{"muzzy bytes", a->nmuzzy * JEM_PAGE, a->w_muzzy},
			{"retained bytes", a->nretained * JEM_PAGE, a->w_retained},
			{"allocated bytes", a->allocated_small + a->allocated_large, a->w_allocated},
		};
		for (size_t k = 0; k < sizeof(checks) / sizeof(checks[0]); k++) {
			if (checks[k].counter == checks[k].walked || w->truncated)
				continue;
			w->counters_mismatch = true;
			a->mismatch = true;
			finding(wk, sev, a->address, (int)a->index,
				"arena %u: %s: counters say %" PRIu64 ", extents say %" PRIu64, a->index, checks[k].what,
				checks[k].counter, checks[k].walked);
		}
		for (unsigned b = 0; b < JEM_NBINS && !w->truncated; b++) {
			if (a->curregs[b] == a->w_curregs[b])
				continue;
			w->counters_mismatch = true;
			a->mismatch = true;
			finding(wk, sev, a->address, (int)a->index,
				"arena %u bin %u: curregs %" PRIu64 ", slab bitmaps say %" PRIu64, a->index, b, a->curregs[b],
				a->w_curregs[b]);
		}
	}
	/* Every cached pointer must be an allocated region or a large extent's address. */
	for (size_t h = 0; h < wk->cached.cap; h++) {
		if (!wk->cached.keys[h] || (wk->cached.vals[h] & CACHED_RESOLVED))
			continue;
		w->cached_unresolved++;
		finding(wk, w->inconsistent ? MD_FINDING_WARNING : MD_FINDING_CORRUPT, wk->cached.keys[h], -1,
			"tcache bin %" PRIu64 " holds 0x%" PRIx64 ", which is no allocated region", (wk->cached.vals[h] & 0xffffffff) - 1,
			wk->cached.keys[h]);
	}
}

/* ---- Entry points ------------------------------------------------------------------------ */

struct md_error *jem_walk_run(struct md_target *t, const struct jem_roots *roots, struct md_sink *sink,
			      bool inconsistent, struct jem_walk *w)
{
	memset(w, 0, sizeof(*w));
	w->inconsistent = inconsistent;
	struct walker *wk = calloc(1, sizeof(*wk));
	if (!wk)
		return &md_error_nomem;
	wk->t = t;
	wk->roots = roots;
	wk->l = &roots->layout;
	wk->sink = sink;
	wk->w = w;
	for (size_t i = 0; i < JEM_MAX_ARENAS; i++)
		wk->arena_of_index[i] = -1;
	struct md_error *err = jem_roots_validate(t, roots);
	if (!err) {
		read_tables(wk);
		err = read_arenas(wk);
	}
	bool ok = !err;
	if (ok)
		ok = read_tcaches(wk);
	for (size_t i = 0; ok && i < w->n_arenas; i++)
		if (!w->arenas[i].corrupt)
			ok = read_base_blocks(wk, &w->arenas[i]);
	for (size_t i = 0; ok && i < w->n_arenas; i++)
		for (unsigned k = 0; ok && k < 3 && !w->arenas[i].corrupt; k++)
			ok = walk_lru(wk, &w->arenas[i], k);
	if (ok)
		ok = collect_extents(wk) && emit_all(wk);
	if (ok)
		cross_check(wk);
	memcpy(w->sizes, wk->index2size, sizeof(w->sizes));
	w->n_sizes = JEM_NBINS;
	if (!err && !ok)
		err = &md_error_nomem;
	map_free(&wk->cached);
	map_free(&wk->dyn_allocs);
	map_free(&wk->slabcurs);
	free(wk->items);
	free(wk);
	return err;
}

void jem_walk_deinit(struct jem_walk *w)
{
	free(w->arenas);
	memset(w, 0, sizeof(*w));
}
