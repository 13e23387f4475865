/* The walk of every obmalloc state: arenas (the arena_object array), the carved pools of each
 * arena (one read per arena), the blocks of each pool (free list + never-used tail), and the
 * census of live objects by type over pymalloc blocks. Target memory is hostile: every pointer is
 * checked against the pool or arena it must lie in, every list is bounded by what its container
 * holds, and a broken rule is a finding that skips the pool or arena, never the walk. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pym.h"

#define PYM_FINDINGS_MAX 64
#define TPFLAGS_MANAGED_WEAKREF (1ul << 3)
#define TPFLAGS_MANAGED_DICT (1ul << 4)
#define TPFLAGS_READY (1ul << 12)
#define TPFLAGS_HAVE_GC (1ul << 14)
#define TPFLAGS_TYPE_SUBCLASS (1ul << 31)
#define TYPE_OFF_FLAGS 168
#define TYPE_READ 176
#define NEG_SLOTS 4096
#define TYPE_CACHE 256
#define GC_EXITS_MAX (1u << 20) /* 8 MiB of exits at most: memory must not grow with the heap */

#define OUT_SPANS 1024
#define OUT_NOTES 16
#define N_WORKERS 2

/* What one thread keeps while it parses arenas (pym_stream.c: worker 0 is the walking thread,
 * 1 the helper): the census counts, merged into the walk at its end. */
struct worker {
	_Alignas(128) struct walker *k; /* the two workers' counters on cache lines of their own */
	uint64_t arena_lo, arena_hi; /* the arena being parsed */
	/* The census asks for the same few types a million times: a small direct-mapped cache in
	 * front of the shared type table (1 MiB, behind the lock: a miss there costs more than the
	 * parse of a block). */
	struct {
		uint64_t addr;
		struct pym_type *ty; /* NULL: not a type */
	} recent[TYPE_CACHE];
	struct {
		uint64_t count, bytes;
	} *tally; /* per slot of the type table */
	uint64_t census_objects, census_bytes, unidentified_blocks, unidentified_bytes;
	/* _gc_next pointers of GC objects in pymalloc blocks that leave their arena: where the GC
	 * rings enter memory outside pymalloc (census_gc follows only those stretches). */
	uint64_t *exits;
	size_t n_exits, cap_exits;
	bool exits_broken;
	char pad[128]; /* nothing of the next worker on the last line of this one */
};

/* One arena parsed: what the walking thread hands to the sink and adds to the figures. */
struct arena_out {
	struct pym_stats stats;
	/* Counted here, not in the pym_arena: neighbouring arenas are parsed by the two threads at
	 * once, and their entries share cache lines. */
	uint64_t live_blocks, live_bytes, used_pools, free_pools;
	uint64_t corrupt_pools, notes_dropped;
	size_t n_spans, n_notes;
	struct {
		uint64_t start, end;
		enum md_span_kind kind;
	} spans[OUT_SPANS];
	struct {
		enum md_finding_severity sev;
		uint64_t addr;
		char msg[200];
	} notes[OUT_NOTES];
};

struct walker {
	struct md_target *t;
	const struct pym_roots *r;
	struct md_sink *sink;
	struct pym_walk *w;
	/* pending span, merged while contiguous and of one kind */
	enum md_span_kind pk;
	uint64_t ps, pe;
	int pg;
	uint64_t neg[NEG_SLOTS];   /* addresses known not to be type objects */
	size_t n_neg;
	uint64_t *exits;           /* the workers' exits, merged for census_gc */
	size_t n_exits, cap_exits;
	/* While the helper thread runs: the lock around the type table and every target read. */
	pthread_mutex_t mu;
	bool threaded;
	struct worker workers[N_WORKERS];
	size_t first_arena;        /* w->arenas index of job 0 of the state being walked */
	struct arena_out *outs;    /* PYM_STREAM_SLOTS of them */
	struct pym_scratch *sc;
};

static void lock(struct walker *k)
{
	if (k->threaded)
		pthread_mutex_lock(&k->mu);
}

static void unlock(struct walker *k)
{
	if (k->threaded)
		pthread_mutex_unlock(&k->mu);
}

static void finding(struct walker *k, enum md_finding_severity sev, uint64_t addr, int group, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void finding(struct walker *k, enum md_finding_severity sev, uint64_t addr, int group, const char *fmt, ...)
{
	k->w->findings++;
	if (k->w->findings > PYM_FINDINGS_MAX)
		return;
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	md_sink_finding(k->sink, sev, addr, group, "%s", msg);
}

static void flush(struct walker *k)
{
	if (k->pe > k->ps)
		md_sink_span(k->sink, k->pk, k->ps, k->pe, k->pg);
	k->ps = k->pe = 0;
}

static void span(struct walker *k, enum md_span_kind kind, uint64_t s, uint64_t e, int group)
{
	if (e <= s)
		return;
	if (k->pe == s && k->pk == kind && k->pg == group) {
		k->pe = e;
		return;
	}
	flush(k);
	k->pk = kind;
	k->ps = s;
	k->pe = e;
	k->pg = group;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool rd(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(t, addr, buf, len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

/* A few bytes scattered over memory the walk does not otherwise read (type objects, names, GC
 * objects in glibc chunks): read without filling a 256 KiB read-cache block around each. */
static bool rdp(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read_probe(t, addr, buf, len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

static bool rd64(struct md_target *t, uint64_t addr, uint64_t *v)
{
	return rd(t, addr, v, 8);
}

/* ---- The type census ----------------------------------------------------------------------- */

static bool readable(struct md_target *t, uint64_t addr, uint64_t len)
{
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	return m && (m->perms & MD_PERM_READ) && addr + len > addr && addr + len <= m->end;
}

static uint64_t hash(uint64_t a)
{
	a ^= a >> 33;
	a *= 0xff51afd7ed558ccdull;
	a ^= a >> 33;
	return a;
}

static bool neg_has(struct walker *k, uint64_t a)
{
	for (size_t i = hash(a) % NEG_SLOTS, n = 0; n < NEG_SLOTS; i = (i + 1) % NEG_SLOTS, n++) {
		if (k->neg[i] == a)
			return true;
		if (!k->neg[i])
			return false;
	}
	return false;
}

static void neg_add(struct walker *k, uint64_t a)
{
	if (k->n_neg >= NEG_SLOTS * 3 / 4) {
		memset(k->neg, 0, sizeof(k->neg));
		k->n_neg = 0;
	}
	for (size_t i = hash(a) % NEG_SLOTS;; i = (i + 1) % NEG_SLOTS)
		if (!k->neg[i]) {
			k->neg[i] = a;
			k->n_neg++;
			return;
		}
}

/* tp_flags of a readable, ready type-like object, or 0. */
static uint64_t type_flags(struct md_target *t, uint64_t a, uint64_t *ob_type_ret, uint64_t *name_ret)
{
	uint8_t tb[TYPE_READ];
	if (a % 8 || !readable(t, a, sizeof(tb)) || !rdp(t, a, tb, sizeof(tb)))
		return 0;
	uint64_t flags;
	memcpy(&flags, tb + TYPE_OFF_FLAGS, 8);
	memcpy(ob_type_ret, tb + 8, 8);
	if (name_ret)
		memcpy(name_ret, tb + 24, 8);
	return (flags & TPFLAGS_READY) ? flags : 0;
}

/* A type object: ready, and its type is `type` or a metaclass whose chain reaches `type`. */
static struct pym_type *type_lookup(struct walker *k, uint64_t a)
{
	struct pym_walk *w = k->w;
	size_t slots = PYM_MAX_TYPES * 2, i = hash(a) % slots;
	for (size_t n = 0; n < slots; n++, i = (i + 1) % slots) {
		if (w->types[i].addr == a)
			return &w->types[i];
		if (!w->types[i].addr)
			break;
	}
	if (!a || neg_has(k, a) || w->n_types >= PYM_MAX_TYPES)
		return NULL;
	uint64_t meta, name_ptr;
	uint64_t flags = type_flags(k->t, a, &meta, &name_ptr);
	bool ok = flags != 0;
	for (unsigned step = 0; ok && step < 8; step++) {
		if (meta == k->r->pytype_type)
			break;
		uint64_t next;
		uint64_t mf = type_flags(k->t, meta, &next, NULL);
		if (!(mf & TPFLAGS_TYPE_SUBCLASS) || next == meta) {
			ok = false;
			break;
		}
		meta = next;
		if (step == 7)
			ok = false;
	}
	char name[sizeof(w->types[0].name)];
	if (ok) {
		ok = false;
		size_t want = sizeof(name) - 1;
		while (want >= 8 && !ok) {
			if (readable(k->t, name_ptr, want) && rdp(k->t, name_ptr, name, want))
				ok = true;
			else
				want /= 2;
		}
		if (ok) {
			name[want] = 0;
			ok = name[0] != 0;
			/* Target bytes: control characters never reach a report. */
			for (char *c = name; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
		}
	}
	if (!ok) {
		neg_add(k, a);
		return NULL;
	}
	struct pym_type *ty = &w->types[i];
	ty->addr = a;
	ty->valid = 1;
	ty->flags = flags;
	memcpy(ty->name, name, sizeof(name));
	w->n_types++;
	return ty;
}

/* Bytes in front of the object inside its block: the GC head and the managed dict/weakref
 * pre-header (3.11: dict only; 3.12+: either). */
static unsigned pre_size(const struct pym_roots *r, uint64_t flags)
{
	unsigned n = (flags & TPFLAGS_HAVE_GC) ? 16 : 0;
	if (r->minor == 11 && (flags & TPFLAGS_MANAGED_DICT))
		n += 16;
	else if (r->minor >= 12 && (flags & (TPFLAGS_MANAGED_DICT | TPFLAGS_MANAGED_WEAKREF)))
		n += 16;
	return n;
}

static struct pym_type *type_cached(struct worker *wk, uint64_t a)
{
	size_t i = (size_t)((a >> 4) ^ (a >> 12)) % TYPE_CACHE;
	if (wk->recent[i].addr == a)
		return wk->recent[i].ty;
	lock(wk->k);
	struct pym_type *ty = type_lookup(wk->k, a);
	unlock(wk->k);
	wk->recent[i].addr = a;
	wk->recent[i].ty = ty;
	return ty;
}

static void census_block(struct worker *wk, const uint8_t *b, uint64_t size)
{
	struct walker *k = wk->k;
	static const unsigned offs[] = {0, 16, 32};
	/* The debug hooks put 16 bytes (size, API id, guard) in front of every payload. */
	unsigned hook = k->w->mode == PYM_MODE_DEBUG ? 16 : 0;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]) && hook + offs[i] + 16 <= size; i++) {
		int64_t refcnt;
		uint64_t tp;
		memcpy(&refcnt, b + hook + offs[i], 8);
		memcpy(&tp, b + hook + offs[i] + 8, 8);
		/* Type objects are static data or heap types (> 512 bytes, glibc chunks): never inside a
		 * pymalloc arena. This rejects a GC head's _gc_prev (read as ob_type at offset 0) without
		 * a read of the target. */
		if (refcnt <= 0 || !tp || tp % 8 || (tp >= wk->arena_lo && tp < wk->arena_hi))
			continue;
		struct pym_type *ty = type_cached(wk, tp);
		if (!ty || pre_size(k->r, ty->flags) != offs[i])
			continue;
		size_t slot = (size_t)(ty - k->w->types);
		wk->tally[slot].count++;
		wk->tally[slot].bytes += size;
		wk->census_objects++;
		wk->census_bytes += size;
		if ((ty->flags & TPFLAGS_HAVE_GC) && k->r->off_gc_generations && offs[i] >= 16) {
			uint64_t next;
			memcpy(&next, b + hook + offs[i] - 16, 8);
			if ((next < wk->arena_lo || next >= wk->arena_hi) && next && !wk->exits_broken) {
				if (wk->n_exits == wk->cap_exits) {
					size_t cap = wk->cap_exits ? wk->cap_exits * 2 : 1024;
					uint64_t *bigger = cap <= GC_EXITS_MAX / N_WORKERS ? realloc(wk->exits, cap * sizeof(*bigger)) : NULL;
					if (!bigger) {
						wk->exits_broken = true;
						return;
					}
					wk->exits = bigger;
					wk->cap_exits = cap;
				}
				wk->exits[wk->n_exits++] = next;
			}
		}
		return;
	}
	wk->unidentified_blocks++;
	wk->unidentified_bytes += size;
}

/* ---- Pools and arenas ---------------------------------------------------------------------- */

struct pool_header {
	uint32_t count, pad;
	uint64_t freeblock, nextpool, prevpool;
	uint32_t arenaindex, szidx, nextoffset, maxnextoffset;
};

/* A finding of a worker, handed to the sink with its arena. */
static void note(struct arena_out *o, enum md_finding_severity sev, uint64_t addr, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void note(struct arena_out *o, enum md_finding_severity sev, uint64_t addr, const char *fmt, ...)
{
	if (o->n_notes == OUT_NOTES) {
		o->notes_dropped++;
		return;
	}
	o->notes[o->n_notes].sev = sev;
	o->notes[o->n_notes].addr = addr;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->notes[o->n_notes].msg, sizeof(o->notes[0].msg), fmt, ap);
	va_end(ap);
	o->n_notes++;
}

/* A span of the arena, merged with the previous one while contiguous and of one kind. */
static void ospan(struct arena_out *o, enum md_span_kind kind, uint64_t s, uint64_t e)
{
	if (e <= s)
		return;
	if (o->n_spans && o->spans[o->n_spans - 1].end == s && o->spans[o->n_spans - 1].kind == kind) {
		o->spans[o->n_spans - 1].end = e;
		return;
	}
	if (o->n_spans == OUT_SPANS)
		return; /* cannot happen: at most 9 spans per pool, 64 pools per arena */
	o->spans[o->n_spans].start = s;
	o->spans[o->n_spans].end = e;
	o->spans[o->n_spans].kind = kind;
	o->n_spans++;
}

static void walk_pool(struct worker *wk, struct arena_out *o, struct pym_arena *ar, uint64_t pool, const uint8_t *pb)
{
	const struct pym_roots *r = wk->k->r;
	uint64_t psize = r->pool_size;
	struct pool_header h;
	memcpy(&h, pb, sizeof(h));
	if (h.count == 0) {
		o->free_pools++;
		ospan(o, MD_SPAN_FREE, pool, pool + psize);
		return;
	}
	uint64_t size = ((uint64_t)h.szidx + 1) * 16;
	uint64_t nblocks = h.szidx < PYM_NCLASSES ? (psize - PYM_POOL_OVERHEAD) / size : 0;
	if (h.szidx >= PYM_NCLASSES || h.count > nblocks || h.arenaindex != ar->index ||
	    h.maxnextoffset != psize - size || h.nextoffset < PYM_POOL_OVERHEAD || h.nextoffset > psize ||
	    (h.nextoffset - PYM_POOL_OVERHEAD) % size) {
		note(o, MD_FINDING_CORRUPT, pool,
			"pymalloc: pool at 0x%llx has a broken header (size class index %llu)",
			(unsigned long long)pool, (unsigned long long)h.szidx);
		if (h.szidx < PYM_NCLASSES && h.count <= nblocks)
			note(o, MD_FINDING_INFO, pool, "pymalloc: pool at 0x%llx: count %llu kept in the figures",
				(unsigned long long)pool, (unsigned long long)h.count);
		o->corrupt_pools++;
		ospan(o, MD_SPAN_METADATA, pool, pool + PYM_POOL_OVERHEAD);
		return;
	}
	/* The allocator's own figures, from the header as _PyObject_DebugMallocStats takes them. */
	struct pym_class *c = &o->stats.classes[h.szidx];
	c->pools++;
	c->blocks_in_use += h.count;
	c->blocks_available += nblocks - h.count;
	o->stats.bytes_allocated_blocks += h.count * size;
	o->stats.bytes_available_blocks += (nblocks - h.count) * size;
	o->stats.bytes_pool_headers += PYM_POOL_OVERHEAD;
	o->stats.bytes_quantization += (psize - PYM_POOL_OVERHEAD) % size;
	o->used_pools++;
	/* Free blocks: the intrusive list, then the never-used tail from nextoffset. */
	uint64_t freemap[(16384 / 16 + 63) / 64] = {0};
	uint64_t virgin_from = (h.nextoffset - PYM_POOL_OVERHEAD) / size, nfree = 0;
	for (uint64_t i = virgin_from; i < nblocks; i++)
		freemap[i / 64] |= 1ull << (i % 64);
	nfree = nblocks > virgin_from ? nblocks - virgin_from : 0;
	/* The pool into L1 at once (many loads in flight), before the chain of dependent loads of
	 * the free list and the block scan walk it. */
	for (uint64_t off = 0; off < psize; off += 64)
		__builtin_prefetch(pb + off);
	uint64_t p = h.freeblock;
	bool broken = false;
	/* The free list is a chain of dependent loads: no division per step. Offsets are below
	 * 2^14 and sizes below 2^10, so floor(d * ceil(2^32 / size) / 2^32) is d / size exactly. */
	uint64_t magic = ((1ull << 32) + size - 1) / size;
	for (uint64_t steps = 0; p && steps <= nblocks; steps++) {
		uint64_t off = p - pool, d = off - PYM_POOL_OVERHEAD, i = (d * magic) >> 32;
		if (p < pool + PYM_POOL_OVERHEAD || off >= h.nextoffset || i * size != d) {
			note(o, MD_FINDING_CORRUPT, pool, "pymalloc: pool at 0x%llx: free list points at 0x%llx, not a block of the pool",
				(unsigned long long)pool, (unsigned long long)p);
			broken = true;
			break;
		}
		if (freemap[i / 64] & (1ull << (i % 64))) {
			note(o, MD_FINDING_CORRUPT, pool, "pymalloc: pool at 0x%llx: free list loops back to block 0x%llx",
				(unsigned long long)pool, (unsigned long long)p);
			broken = true;
			break;
		}
		freemap[i / 64] |= 1ull << (i % 64);
		nfree++;
		memcpy(&p, pb + off, 8);
	}
	if (!broken && nfree + h.count != nblocks) {
		note(o, MD_FINDING_CORRUPT, pool,
			"pymalloc: pool at 0x%llx: count %llu does not match the free blocks walked",
			(unsigned long long)pool, (unsigned long long)h.count);
		broken = true;
	}
	if (broken)
		o->corrupt_pools++;
	/* Spans per page of the pool: its live bytes, then its free bytes. The classifier keeps
	 * page-level figures only (which kinds touch a page, its free bytes, bytes per kind), and
	 * those are the same as with one span per block; one call per page instead of one per
	 * block run keeps the pause short (docs/pymalloc.md). */
	uint32_t page_live[PYM_POOL_MAX / MD_PAGE_SIZE] = { 0 };
	uint64_t npages = psize / MD_PAGE_SIZE;
	/* Only the live blocks are visited (the clear bits of the map, a word at a time). */
	for (uint64_t wi = 0; wi * 64 < nblocks; wi++) {
		uint64_t live = ~freemap[wi];
		if ((wi + 1) * 64 > nblocks)
			live &= (1ull << (nblocks % 64)) - 1;
		while (live) {
			uint64_t i = wi * 64 + (uint64_t)__builtin_ctzll(live);
			live &= live - 1;
			uint64_t off = PYM_POOL_OVERHEAD + i * size, p0 = off / MD_PAGE_SIZE, p1 = (off + size - 1) / MD_PAGE_SIZE;
			if (p0 == p1) {
				page_live[p0] += (uint32_t)size;
			} else {
				page_live[p0] += (uint32_t)(p1 * MD_PAGE_SIZE - off);
				page_live[p1] += (uint32_t)(off + size - p1 * MD_PAGE_SIZE);
			}
			o->live_blocks++;
			o->live_bytes += size;
			census_block(wk, pb + off, size);
		}
	}
	ospan(o, MD_SPAN_METADATA, pool, pool + PYM_POOL_OVERHEAD);
	for (uint64_t j = 0; j < npages; j++) {
		uint64_t from = pool + j * MD_PAGE_SIZE + (j ? 0 : PYM_POOL_OVERHEAD), to = pool + (j + 1) * MD_PAGE_SIZE;
		ospan(o, MD_SPAN_LIVE, from, from + page_live[j]);
		ospan(o, MD_SPAN_FREE, from + page_live[j], to);
	}
}

struct arena_object {
	uint64_t address, pool_address;
	uint32_t nfreepools, ntotalpools;
	uint64_t freepools, nextarena, prevarena;
};

static struct pym_arena *new_arena(struct pym_walk *w)
{
	if (w->n_arenas == w->cap_arenas) {
		size_t cap = w->cap_arenas ? w->cap_arenas * 2 : 64;
		struct pym_arena *bigger = realloc(w->arenas, cap * sizeof(*bigger));
		if (!bigger)
			return NULL;
		w->arenas = bigger;
		w->cap_arenas = cap;
	}
	struct pym_arena *a = &w->arenas[w->n_arenas++];
	memset(a, 0, sizeof(*a));
	return a;
}

/* pym_parse_fn: the pools of arena `job` of the state being walked, in data, into out. */
static void parse_arena(void *ctx, unsigned worker, size_t job, const uint8_t *data, void *out)
{
	struct walker *k = ctx;
	struct worker *wk = &k->workers[worker];
	struct arena_out *o = out;
	struct pym_arena *ar = &k->w->arenas[k->first_arena + job];
	uint64_t psize = k->r->pool_size, base = (ar->address + psize - 1) & ~(psize - 1);
	memset(&o->stats, 0, sizeof(o->stats));
	o->corrupt_pools = o->notes_dropped = 0;
	o->live_blocks = o->live_bytes = o->used_pools = o->free_pools = 0;
	o->n_spans = o->n_notes = 0;
	wk->arena_lo = ar->address;
	wk->arena_hi = ar->address + k->r->arena_size;
	for (uint64_t off = 0; base + off < ar->pool_address; off += psize)
		walk_pool(wk, o, ar, base + off, data + off);
}

/* The walking thread: a parsed arena to the sink and the figures, in the order of the table. */
static void emit_arena(struct walker *k, struct pym_walked_state *st, struct pym_arena *ar, uint64_t base,
		       const struct arena_out *o)
{
	span(k, MD_SPAN_FREE, ar->address, base, ar->group);
	for (size_t i = 0; i < o->n_spans; i++)
		span(k, o->spans[i].kind, o->spans[i].start, o->spans[i].end, ar->group);
	span(k, MD_SPAN_FREE, ar->pool_address, ar->address + k->r->arena_size, ar->group);
	for (size_t i = 0; i < o->n_notes; i++)
		finding(k, o->notes[i].sev, o->notes[i].addr, ar->group, "%s", o->notes[i].msg);
	k->w->findings += o->notes_dropped;
	ar->live_blocks += o->live_blocks;
	ar->live_bytes += o->live_bytes;
	ar->used_pools += o->used_pools;
	ar->free_pools += o->free_pools;
	k->w->corrupt_pools += o->corrupt_pools;
	struct pym_stats *d = &st->stats;
	const struct pym_stats *s = &o->stats;
	d->bytes_allocated_blocks += s->bytes_allocated_blocks;
	d->bytes_available_blocks += s->bytes_available_blocks;
	d->bytes_pool_headers += s->bytes_pool_headers;
	d->bytes_quantization += s->bytes_quantization;
	for (unsigned c = 0; c < PYM_NCLASSES; c++) {
		d->classes[c].pools += s->classes[c].pools;
		d->classes[c].blocks_in_use += s->classes[c].blocks_in_use;
		d->classes[c].blocks_available += s->classes[c].blocks_available;
	}
}

static struct md_error *walk_state(struct walker *k, size_t si)
{
	struct pym_walked_state *st = &k->w->states[si];
	const struct pym_roots *r = k->r;
	uint64_t arenas = 0, asize = r->arena_size, psize = r->pool_size;
	uint32_t maxarenas = 0;
	if (!rd64(k->t, st->loc.arenas_addr, &arenas) || !rd(k->t, st->loc.maxarenas_addr, &maxarenas, 4))
		return md_error_create(MD_ERR_FAULT, "pymalloc: the arenas/maxarenas of interpreter %lld are unreadable",
				       (long long)st->loc.interp_id);
	uint64_t raw = 0;
	if (st->loc.raw_addr)
		rd64(k->t, st->loc.raw_addr, &raw);
	else if (r->allocated_blocks_3_8)
		rd64(k->t, r->allocated_blocks_3_8, &raw);
	st->stats.raw_allocated_blocks = raw;
	st->maxarenas = maxarenas;
	if (st->loc.current_addr && rd64(k->t, st->loc.current_addr, &st->narenas_current) &&
	    rd64(k->t, st->loc.ntimes_addr, &st->ntimes_allocated) && rd64(k->t, st->loc.highwater_addr, &st->highwater))
		st->counters_known = true;
	if (maxarenas > PYM_MAX_ARENAS || (maxarenas && (maxarenas % 16 || !arenas))) {
		finding(k, MD_FINDING_CORRUPT, st->loc.maxarenas_addr, -1,
			"pymalloc: maxarenas %llu with arenas 0x%llx is not a valid arena table",
			(unsigned long long)maxarenas, (unsigned long long)arenas);
		k->w->corrupt_arenas++;
		return NULL;
	}
	if (!maxarenas)
		return NULL;
	size_t tlen = (size_t)maxarenas * PYM_ARENA_OBJECT;
	uint8_t *table = malloc(tlen);
	if (!table)
		return &md_error_nomem;
	if (!rd(k->t, arenas, table, tlen)) {
		free(table);
		finding(k, MD_FINDING_CORRUPT, arenas, -1, "pymalloc: the arena table at 0x%llx (%llu entries) is unreadable",
			(unsigned long long)arenas, (unsigned long long)maxarenas);
		k->w->corrupt_arenas++;
		return NULL;
	}
	/* First pass: every arena_object checked, the arenas' regions declared and the reads they
	 * need listed; second pass: the carved pools of each arena read (ahead, by the readers of
	 * pym_stream.c, on a live target) and walked in address order of the table. */
	size_t first = k->w->n_arenas;
	struct pym_job *jobs = malloc((size_t)maxarenas * sizeof(*jobs));
	if (!jobs) {
		free(table);
		return &md_error_nomem;
	}
	size_t n_jobs = 0;
	for (uint32_t i = 0; i < maxarenas; i++) {
		struct arena_object ao;
		memcpy(&ao, table + (size_t)i * PYM_ARENA_OBJECT, sizeof(ao));
		if (!ao.address)
			continue;
		struct pym_arena *ar = new_arena(k->w);
		if (!ar) {
			free(jobs);
			free(table);
			return &md_error_nomem;
		}
		ar->state = (int)si;
		ar->index = i;
		ar->address = ao.address;
		ar->group = (int)(k->w->n_arenas - 1);
		uint64_t base = (ao.address + psize - 1) & ~(psize - 1);
		bool misaligned = base != ao.address;
		uint32_t want_total = (uint32_t)(asize / psize) - (misaligned ? 1 : 0);
		if (ao.address % MD_PAGE_SIZE || ao.address + asize < ao.address || ao.pool_address < base ||
		    ao.pool_address > ao.address + asize || (ao.pool_address - base) % psize ||
		    ao.ntotalpools != want_total || ao.nfreepools > ao.ntotalpools ||
		    !readable(k->t, ao.address, asize)) {
			finding(k, MD_FINDING_CORRUPT, arenas + (uint64_t)i * PYM_ARENA_OBJECT, -1,
				"pymalloc: arena %llu at 0x%llx has a broken arena_object (pool_address, pool counts or mapping)",
				(unsigned long long)i, (unsigned long long)ao.address);
			k->w->corrupt_arenas++;
			k->w->n_arenas--;
			continue;
		}
		st->stats.arenas_current++;
		st->stats.unused_pools += ao.nfreepools;
		if (misaligned)
			st->stats.bytes_arena_alignment += psize;
		md_sink_region(k->sink, ao.address, ao.address + asize, ar->group, "pymalloc arena");
		ar->pool_address = ao.pool_address;
		jobs[n_jobs++] = (struct pym_job){ base, ao.pool_address - base };
	}
	k->first_arena = first;
	k->threaded = true; /* before the helper starts: it reads the flag */
	struct pym_stream *stream = pym_stream_start(k->t, jobs, n_jobs, asize, k->sc->arena, parse_arena, k, k->outs,
							     sizeof(*k->outs));
	if (!stream)
		k->threaded = false;
	for (size_t j = 0; j < n_jobs; j++) {
		struct pym_arena *ar = &k->w->arenas[first + j];
		uint64_t base = jobs[j].addr, carved = jobs[j].len;
		void *out = &k->outs[0];
		if (!stream || !pym_stream_get(stream, j, &out)) {
			/* Not read by a worker: read here, into the buffer of the job's own slot (no
			 * worker uses it until this job is handed over). */
			uint8_t *buf = k->sc->arena[stream ? j % PYM_STREAM_SLOTS : 0];
			if (stream)
				k->w->arenas_read_again++;
			lock(k);
			bool ok = !carved || rd(k->t, base, buf, carved);
			unlock(k);
			if (!ok) {
				span(k, MD_SPAN_FREE, ar->address, base, ar->group);
				finding(k, MD_FINDING_WARNING, base, ar->group, "pymalloc: arena at 0x%llx: %llu bytes of pools unreadable",
					(unsigned long long)ar->address, (unsigned long long)carved);
				k->w->corrupt_arenas++;
				continue;
			}
			parse_arena(k, 0, j, buf, out);
		}
		emit_arena(k, st, ar, base, out);
		if (md_target_interrupted(k->t))
			break;
	}
	k->w->arenas_by_helper += pym_stream_finish(stream);
	k->threaded = false;
	free(jobs);
	free(table);
	flush(k);
	uint64_t in_pools = 0;
	for (unsigned c = 0; c < PYM_NCLASSES; c++)
		in_pools += st->stats.classes[c].blocks_in_use;
	if (!st->loc.raw_addr && r->allocated_blocks_3_8) {
		/* 3.8: _Py_AllocatedBlocks counts every object-domain block itself. */
		st->stats.allocated_blocks = raw;
		st->stats.raw_allocated_blocks = raw >= in_pools ? raw - in_pools : 0;
	} else {
		st->stats.allocated_blocks = raw + in_pools;
	}
	return NULL;
}

/* ---- Census over the GC lists: GC-tracked objects outside pymalloc (glibc chunks) ----------- */

#define GC_STEP_BUDGET (1u << 24)

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool in_arena(const uint64_t *starts, size_t n, uint64_t size, uint64_t addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (starts[mid] <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && addr - starts[lo - 1] < size;
}

/* Each generation is a ring of PyGC_Head {_gc_next, _gc_prev} through every tracked object.
 * Objects in pymalloc blocks were censused by the block scan, which also kept the _gc_next
 * pointers leaving an arena; the ring is followed from those (and from each generation head)
 * only while it stays outside pymalloc, so each glibc-allocated GC object is read once and no
 * pymalloc block is chased. Their bytes are the glibc chunk size in front of the allocation. */
static bool is_head(const uint64_t *heads, size_t n, uint64_t a)
{
	for (size_t i = 0; i < n; i++)
		if (heads[i] == a)
			return true;
	return false;
}

static void census_gc(struct walker *k)
{
	const struct pym_roots *r = k->r;
	struct pym_walk *w = k->w;
	if (!r->off_gc_generations || !w->n_interps)
		return;
	uint64_t *starts = malloc((w->n_arenas ? w->n_arenas : 1) * sizeof(*starts));
	uint64_t heads[PYM_MAX_STATES * 4];
	size_t n_heads = 0;
	if (!starts)
		return;
	for (size_t i = 0; i < w->n_arenas; i++)
		starts[i] = w->arenas[i].address;
	qsort(starts, w->n_arenas, sizeof(*starts), cmp_u64);
	/* generations[0..2] (24 bytes each), then permanent_generation. */
	for (size_t ii = 0; ii < w->n_interps; ii++)
		for (unsigned g = 0; g < 4; g++) {
			uint64_t head = w->interps[ii] + r->off_gc_generations + (uint64_t)g * 24 + (g == 3 ? 8 : 0), next;
			heads[n_heads++] = head;
			if (rd64(k->t, head, &next) && next != head && k->n_exits < GC_EXITS_MAX) {
				if (k->n_exits == k->cap_exits) {
					uint64_t *bigger = realloc(k->exits, (k->cap_exits + 8) * sizeof(*bigger));
					if (!bigger)
						continue;
					k->exits = bigger;
					k->cap_exits += 8;
				}
				k->exits[k->n_exits++] = next;
			} else if (!rd64(k->t, head, &next)) {
				w->gc_broken = true;
			}
		}
	uint64_t budget = GC_STEP_BUDGET;
	w->gc_walked = true;
	for (size_t e = 0; e < k->n_exits; e++) {
		uint64_t node = k->exits[e], tortoise = 0, power = 1, lam = 0;
		/* A _gc_next that does not lead to a readable object of a known type is not trusted as
		 * an exit (an untracked object's stale head): ignored, counted. */
		uint64_t first[4];
		if (node % 8 || !readable(k->t, node, sizeof(first)) || !rdp(k->t, node, first, sizeof(first)) ||
		    (int64_t)first[2] <= 0 || !type_lookup(k, first[3])) {
			w->gc_exits_ignored++;
			continue;
		}
		while (!is_head(heads, n_heads, node) && !in_arena(starts, w->n_arenas, r->arena_size, node)) {
			/* Static objects (3.12+ keeps GC heads of singletons inside _PyRuntime, in the
			 * module's data): not heap, not censused, and where a stretch ends. */
			const struct md_mapping *m = md_target_find_mapping(k->t, node);
			if (m && m->kind == MD_MAP_FILE)
				break;
			if (!budget-- || !node || node % 8) {
				finding(k, MD_FINDING_WARNING, node, -1,
					"pymalloc: GC list reaches 0x%llx, not an object (%llu steps left; from 0x%llx)",
					(unsigned long long)node, (unsigned long long)budget, (unsigned long long)k->exits[e]);
				w->gc_broken = true;
				break;
			}
			if (node == tortoise) {
				finding(k, MD_FINDING_CORRUPT, node, -1, "pymalloc: GC list loops at 0x%llx outside pymalloc",
					(unsigned long long)node);
				w->gc_broken = true;
				break;
			}
			if (power == lam) {
				tortoise = node;
				power *= 2;
				lam = 0;
			}
			lam++;
			w->gc_nodes++;
			uint64_t gh[4]; /* _gc_next, _gc_prev, ob_refcnt, ob_type */
			if (!rdp(k->t, node, gh, sizeof(gh))) {
				finding(k, MD_FINDING_WARNING, node, -1, "pymalloc: GC list reaches unreadable 0x%llx",
					(unsigned long long)node);
				w->gc_broken = true;
				break;
			}
			struct pym_type *ty = (int64_t)gh[2] > 0 ? type_lookup(k, gh[3]) : NULL;
			uint64_t pre = ty ? pre_size(r, ty->flags) : 0, chunk = 0;
			if (ty && pre >= 16 && rdp(k->t, node + 16 - pre - 8, &chunk, sizeof(chunk))) {
				chunk &= ~(uint64_t)7;
				if (chunk > (1ull << 40))
					chunk = 0;
				ty->count++;
				ty->bytes += chunk;
				w->gc_outside_objects++;
				w->gc_outside_bytes += chunk;
				w->census_objects++;
				w->census_bytes += chunk;
			}
			node = gh[0];
		}
	}
	free(starts);
}

/* ---- Mode and interpreters ----------------------------------------------------------------- */

static void detect_mode(struct walker *k)
{
	const struct pym_roots *r = k->r;
	struct pym_walk *w = k->w;
	w->mode = PYM_MODE_PYMALLOC;
	if (r->free_threaded) {
		w->mode = PYM_MODE_FREE_THREADED;
		snprintf(w->mode_detail, sizeof(w->mode_detail),
			 "free-threaded build (3.13t): objects live in mimalloc heaps, pymalloc is off");
		return;
	}
	uint64_t fn[2];
	if (!r->obj_allocator || !rd(k->t, r->obj_allocator, fn, sizeof(fn))) {
		snprintf(w->mode_detail, sizeof(w->mode_detail), "object allocator not located: assumed pymalloc");
		return;
	}
	if (r->fn_pymalloc && fn[1] == r->fn_pymalloc && !fn[0]) {
		snprintf(w->mode_detail, sizeof(w->mode_detail), "PyObject_Malloc is _PyObject_Malloc");
	} else if (r->fn_debug && fn[1] == r->fn_debug) {
		w->mode = PYM_MODE_DEBUG;
	} else if (r->fn_mimalloc && fn[1] == r->fn_mimalloc) {
		w->mode = PYM_MODE_MIMALLOC;
	} else if (r->fn_pymalloc) {
		w->mode = PYM_MODE_MALLOC;
	} else if (fn[0]) {
		/* No symbols: only the debug hooks pass a context (&_PyMem_Debug.obj). */
		w->mode = PYM_MODE_DEBUG;
	}
	if (w->mode == PYM_MODE_DEBUG)
		snprintf(w->mode_detail, sizeof(w->mode_detail),
			 "debug hooks in front of the allocator (PYTHONMALLOC=*_debug, -X dev): blocks carry 24 bytes of guards");
	else if (w->mode == PYM_MODE_MIMALLOC)
		snprintf(w->mode_detail, sizeof(w->mode_detail), "PYTHONMALLOC=mimalloc: objects are in CPython's mimalloc, pymalloc is off");
	else if (w->mode == PYM_MODE_MALLOC)
		snprintf(w->mode_detail, sizeof(w->mode_detail),
			 "pymalloc is off: PyObject_Malloc goes to another allocator (PYTHONMALLOC=malloc?)");
	else if (!r->fn_pymalloc)
		snprintf(w->mode_detail, sizeof(w->mode_detail), "no debug hooks (allocator functions unnamed: stripped)");
}

static void add_state(struct pym_walk *w, int64_t id, uint64_t state)
{
	for (size_t i = 0; i < w->n_states; i++)
		if (w->states[i].loc.arenas_addr == state + 0x200)
			return;
	if (w->n_states >= PYM_MAX_STATES) {
		w->truncated = true;
		return;
	}
	struct pym_state_loc *l = &w->states[w->n_states++].loc;
	l->interp_id = id;
	/* struct _obmalloc_mgmt at +0x200 (pools.used[64] first): identical in 3.12 and 3.13. */
	l->arenas_addr = state + 0x200;
	l->maxarenas_addr = state + 0x208;
	l->current_addr = state + 0x200 + 552;
	l->ntimes_addr = state + 0x200 + 560;
	l->highwater_addr = state + 0x200 + 568;
	l->raw_addr = state + 0x200 + 576;
}

static struct md_error *list_states(struct walker *k)
{
	const struct pym_roots *r = k->r;
	struct pym_walk *w = k->w;
	if (r->minor < 12) {
		w->n_states = 1;
		w->states[0].loc = r->global;
		uint64_t main_interp = 0;
		if (r->off_interp_main && rd64(k->t, r->runtime + r->off_interp_main, &main_interp) && main_interp)
			w->interps[w->n_interps++] = main_interp;
		return NULL;
	}
	uint64_t main_interp = 0, it = 0;
	if (!rd64(k->t, r->runtime + r->off_interp_main, &main_interp) || !rd64(k->t, r->runtime + r->off_interp_head, &it))
		return md_error_create(MD_ERR_FAULT, "pymalloc: _PyRuntime.interpreters is unreadable");
	uint64_t seen[PYM_MAX_STATES];
	size_t n_seen = 0;
	for (unsigned steps = 0; it && steps < PYM_MAX_STATES; steps++) {
		for (size_t i = 0; i < n_seen; i++)
			if (seen[i] == it) {
				finding(k, MD_FINDING_CORRUPT, it, -1, "pymalloc: the interpreter list loops at 0x%llx",
					(unsigned long long)it);
				return NULL;
			}
		seen[n_seen++] = it;
		w->interps[w->n_interps++] = it;
		int64_t id = -1;
		uint64_t flags = 0, state = 0, next = 0;
		rd(k->t, it + r->off_id, &id, 8);
		if (r->have_flags)
			rd64(k->t, it + r->off_flags, &flags);
		if (r->obmalloc_is_pointer) {
			if (!rd64(k->t, it + r->off_obmalloc, &state))
				state = 0;
		} else if (it == main_interp || !r->have_flags || !(flags & (1u << 5))) {
			state = it + r->off_obmalloc;
		}
		if (state)
			add_state(w, id, state);
		if (!rd64(k->t, it + r->off_next, &next))
			break;
		it = next;
	}
	return NULL;
}

struct md_error *pym_scratch_init(struct pym_scratch *sc, uint64_t arena_size)
{
	memset(sc, 0, sizeof(*sc));
	sc->arena_size = arena_size;
	for (unsigned i = 0; i < PYM_STREAM_SLOTS; i++) {
		sc->arena[i] = aligned_alloc(MD_PAGE_SIZE, arena_size);
		if (!sc->arena[i]) {
			pym_scratch_deinit(sc);
			return &md_error_nomem;
		}
		memset(sc->arena[i], 0, arena_size); /* its page faults now, not in the pause */
	}
	sc->outs = calloc(PYM_STREAM_SLOTS, sizeof(struct arena_out));
	if (!sc->outs) {
		pym_scratch_deinit(sc);
		return &md_error_nomem;
	}
	memset(sc->outs, 0, PYM_STREAM_SLOTS * sizeof(struct arena_out));
	return NULL;
}

void pym_scratch_deinit(struct pym_scratch *sc)
{
	for (unsigned i = 0; i < PYM_STREAM_SLOTS; i++)
		free(sc->arena[i]);
	free(sc->outs);
	memset(sc, 0, sizeof(*sc));
}

struct md_error *pym_walk_run(struct md_target *t, const struct pym_roots *r, struct md_sink *sink,
			      bool inconsistent, struct pym_scratch *sc, struct pym_walk *w)
{
	(void)inconsistent;
	memset(w, 0, sizeof(*w));
	struct walker *k = calloc(1, sizeof(*k));
	if (!k)
		return &md_error_nomem;
	k->t = t;
	k->r = r;
	k->sink = sink;
	k->w = w;
	k->sc = sc;

	k->outs = sc->outs;
	w->types = calloc(PYM_MAX_TYPES * 2, sizeof(*w->types));
	pthread_mutex_init(&k->mu, NULL);
	bool tallies = true;
	for (unsigned i = 0; i < N_WORKERS; i++) {
		k->workers[i].k = k;
		k->workers[i].tally = calloc(PYM_MAX_TYPES * 2, sizeof(*k->workers[i].tally));
		tallies = tallies && k->workers[i].tally;
	}
	struct md_error *err = NULL;
	if (sc->arena_size != r->arena_size || !k->outs || !w->types || !tallies) {
		err = &md_error_nomem;
		goto out;
	}
	if (r->pool_size > PYM_POOL_MAX || !r->pool_size || r->pool_size % MD_PAGE_SIZE || r->arena_size % r->pool_size) {
		err = md_error_create(MD_ERR_UNSUPPORTED, "pymalloc: pools of %llu bytes in arenas of %llu are not supported",
				      (unsigned long long)r->pool_size, (unsigned long long)r->arena_size);
		goto out;
	}
	detect_mode(k);
	if (w->mode == PYM_MODE_FREE_THREADED || w->mode == PYM_MODE_MIMALLOC)
		goto out;
	err = list_states(k);
	double t0 = now_ms();
	for (size_t i = 0; !err && i < w->n_states; i++)
		err = walk_state(k, i);
	w->arenas_ms = now_ms() - t0;
	if (err)
		goto out;
	for (size_t i = 0; i < w->n_states; i++) {
		const struct pym_stats *s = &w->states[i].stats;
		struct pym_stats *tot = &w->total;
		tot->arenas_current += s->arenas_current;
		tot->bytes_allocated_blocks += s->bytes_allocated_blocks;
		tot->bytes_available_blocks += s->bytes_available_blocks;
		tot->unused_pools += s->unused_pools;
		tot->bytes_pool_headers += s->bytes_pool_headers;
		tot->bytes_quantization += s->bytes_quantization;
		tot->bytes_arena_alignment += s->bytes_arena_alignment;
		tot->allocated_blocks += s->allocated_blocks;
		tot->raw_allocated_blocks += s->raw_allocated_blocks;
		for (unsigned c = 0; c < PYM_NCLASSES; c++) {
			tot->classes[c].pools += s->classes[c].pools;
			tot->classes[c].blocks_in_use += s->classes[c].blocks_in_use;
			tot->classes[c].blocks_available += s->classes[c].blocks_available;
		}
	}
	/* The workers' census, merged. */
	for (unsigned i = 0; i < N_WORKERS; i++) {
		struct worker *wk = &k->workers[i];
		for (size_t j = 0; j < PYM_MAX_TYPES * 2; j++) {
			w->types[j].count += wk->tally[j].count;
			w->types[j].bytes += wk->tally[j].bytes;
		}
		w->census_objects += wk->census_objects;
		w->census_bytes += wk->census_bytes;
		w->unidentified_blocks += wk->unidentified_blocks;
		w->unidentified_bytes += wk->unidentified_bytes;
		if (wk->exits_broken)
			w->gc_broken = true;
		if (wk->n_exits) {
			uint64_t *all = realloc(k->exits, (k->n_exits + wk->n_exits) * sizeof(*all));
			if (!all) {
				w->gc_broken = true;
				continue;
			}
			memcpy(all + k->n_exits, wk->exits, wk->n_exits * sizeof(*all));
			k->exits = all;
			k->n_exits += wk->n_exits;
			k->cap_exits = k->n_exits;
		}
	}
	t0 = now_ms();
	census_gc(k);
	w->gc_ms = now_ms() - t0;
	if (w->mode == PYM_MODE_PYMALLOC && w->n_states == 1 && !w->states[0].maxarenas && !r->fn_pymalloc) {
		w->mode = PYM_MODE_MALLOC;
		snprintf(w->mode_detail, sizeof(w->mode_detail),
			 "pymalloc is off: no arena was ever allocated (PYTHONMALLOC=malloc)");
	}
	if (w->findings > PYM_FINDINGS_MAX)
		md_sink_finding(sink, MD_FINDING_INFO, 0, -1, "pymalloc: %llu more findings not shown",
				(unsigned long long)(w->findings - PYM_FINDINGS_MAX));
out:
	for (unsigned i = 0; i < N_WORKERS; i++) {
		free(k->workers[i].tally);
		free(k->workers[i].exits);
	}
	pthread_mutex_destroy(&k->mu);
	free(k->exits);
	free(k);
	return err;
}

void pym_walk_deinit(struct pym_walk *w)
{
	free(w->arenas);
	free(w->types);
	memset(w, 0, sizeof(*w));
}
