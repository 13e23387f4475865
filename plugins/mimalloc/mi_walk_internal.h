/* What the mimalloc walk (mi_walk.c) hands to the mi_collect(true) prediction (mi_release.c). */
#ifndef MD_MI_WALK_INTERNAL_H
#define MD_MI_WALK_INTERNAL_H

#include <stddef.h>

#include "mimalloc.h"

/* One segment as the walk saw it (what the release simulation needs). */
struct mi_seg {
	uint64_t addr, size, thread_id;
	bool huge, abandoned, valid, allow_decommit;
	uint64_t commit[8], decommit[8];
	int64_t expire;
	uint64_t used_pages;
	uint16_t span_count[MI_SLICES_PER_SEGMENT]; /* at span starts: slices; 0 elsewhere */
	uint8_t span_kind[MI_SLICES_PER_SEGMENT];   /* 0 none, 1 info, 2 free, 3 page */
	uint32_t eff_used[MI_SLICES_PER_SEGMENT];   /* pages: used minus remote frees */
	uint32_t resident[MI_SLICES_PER_SEGMENT];   /* resident bytes per slice */
};

static inline bool mask_bit(const uint64_t *m, unsigned i)
{
	return (m[i / 64] >> (i % 64)) & 1;
}

/* Resident bytes of [start, end): the mapping's page bits, looked up once per mapping. */
static inline uint64_t resident_bytes(struct md_target *t, uint64_t start, uint64_t end)
{
	uint64_t n = 0;
	const struct md_mapping *m = NULL;
	for (uint64_t a = MD_PAGE_DOWN(start); a < end; a += MD_PAGE_SIZE) {
		if (!m || a < m->start || a >= m->end)
			m = md_target_find_mapping(t, a);
		if (m && m->pages && MD_PAGE_COUNTED(m->pages[(a - m->start) >> MD_PAGE_SHIFT]))
			n += MD_PAGE_SIZE;
	}
	return n;
}

/* Bytes mi_collect(true) on the main thread gives back from the segments (sorted by address;
 * their masks and spans are changed), the main heap's pages in queue order given; the segment
 * cache's share is the caller's. */
uint64_t mi_predict_collect(struct md_target *t, const struct mi_walk *w, struct mi_seg *segs, size_t n_segs,
			    const uint64_t *main_pages, size_t n_main_pages);

#endif
