/* The walk of jemalloc 5.3's state while the target is stopped: arenas and their counters, every
 * extent through the emap radix tree, slab bitmaps, large extents, dirty/muzzy/retained extents,
 * base blocks, and every tcache's cached regions. Emits regions, spans and findings into the
 * sink and keeps the figures the report needs (the report is built after the target resumed). */
#ifndef MD_JEM_WALK_H
#define MD_JEM_WALK_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/plugin.h"

#include "jem_locate.h"

/* Counters of one arena, read the way ctl_refresh/arena_stats_merge read them (mallctl), and
 * what the extent walk found. */
struct jem_arena {
	unsigned index;
	uint64_t address;
	uint64_t base;           /* base_t * */
	bool manual;             /* index >= manual_arena_base */
	bool huge;               /* the huge arena (index narenas_auto) */
	bool mismatch;           /* counters and extents disagree */
	bool corrupt;            /* failed a structural check: counters not used */
	uint32_t nthreads;
	/* mallctl's view */
	uint64_t nactive, ndirty, nmuzzy, nretained; /* pages */
	uint64_t allocated_small, allocated_large;   /* bytes */
	uint64_t internal;
	uint64_t base_allocated, base_resident, base_mapped;
	uint64_t pac_mapped;
	uint64_t tcache_bytes;
	uint64_t curregs[JEM_NBINS];
	uint64_t curslabs, nonfull_slabs;
	/* the walk's view */
	uint64_t w_active, w_dirty, w_muzzy, w_retained; /* bytes of extents by state */
	uint64_t w_allocated;    /* used slab regions + usable size of active large extents */
	uint64_t w_live, w_cached, w_free_regions, w_pad;
	uint64_t w_metadata_extents; /* usable bytes of tcache stack blocks (dyn_alloc) */
	uint64_t w_slabs, w_large, w_nonfull_slabs;
	uint64_t w_curregs[JEM_NBINS];
	/* Where fragmentation sits, per small size class. */
	uint64_t w_bin_slabs[JEM_NBINS], w_bin_nonfull[JEM_NBINS];
	uint64_t w_bin_free_regs[JEM_NBINS], w_bin_cached_regs[JEM_NBINS];
	uint64_t w_base_blocks, w_base_bytes;
	uint64_t retained_resident_pages;
	uint64_t releasable_pages; /* own count of resident pages in dirty+muzzy extents */
	unsigned n_tcaches;
	unsigned findings;
};

struct jem_walk {
	struct jem_arena *arenas;
	size_t n_arenas;
	uint64_t sizes[JEM_NBINS]; /* usable size of each small class, as the target says */
	size_t n_sizes;
	uint32_t narenas_total;  /* 0 when unknown */
	unsigned n_thread_tcaches, n_explicit_tcaches;
	uint64_t cached_regions, cached_unresolved;
	uint64_t extents, rtree_leaves, rtree_entries;
	bool inconsistent;       /* the host could not get a quiescent stop */
	bool counters_mismatch;  /* counters and extents disagree (a thread was mid-operation) */
	bool truncated;          /* a bound was hit: figures are partial */
};

/* Walk everything; findings go to the sink. Fails only when nothing can be trusted. */
struct md_error *jem_walk_run(struct md_target *t, const struct jem_roots *roots, struct md_sink *sink,
			      bool inconsistent, struct jem_walk *w);
void jem_walk_deinit(struct jem_walk *w);

/* The held mutex the last quiescence check stopped at, and its owner (TID), or mutex 0. */
struct jem_held {
	uint64_t mutex;
	int32_t owner;
};

/* In the pause: a held jemalloc mutex or a thread inside jemalloc code makes the snapshot
 * unreliable. Returns false with the reason in why; held gets the mutex found held. */
bool jem_quiescent(struct md_target *t, const struct jem_roots *roots, struct jem_held *held, char *why,
		   size_t why_len);
/* The plugin's must_run: th is inside jemalloc code, or owns the mutex in held. */
bool jem_must_run(struct md_target *t, const struct jem_roots *roots, struct jem_held *held,
		  const struct md_thread *th);

#endif
