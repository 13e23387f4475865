/* The prediction of what mi_collect(true) on the main thread gives back (mimalloc 2.0.9,
 * heap.c mi_heap_collect_ex with MI_FORCE), simulated on the walked segments: abandoned
 * segments reclaimed, the main heap's all-free pages freed span by span with segment.c's
 * coalescing and delayed-decommit rules, whole segments freed, the segment cache unmapped.
 * docs/mimalloc.md describes the model and what it was checked against. */
#include <string.h>
#include <time.h>

#include "mi_walk_internal.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct sim {
	struct md_target *t;
	const struct mi_walk *w;
	uint64_t now, released;
};

/* Decommit the slices of mask. The release build decommits with MADV_DONTNEED (the pages go);
 * MI_SECURE decommits with mprotect(PROT_NONE) (os.c mi_os_commitx): the pages stay resident
 * until the segment is unmapped. */
static uint64_t release_slices(struct sim *sm, struct mi_seg *sg, const uint64_t *mask)
{
	uint64_t n = 0;
	for (unsigned k = 0; k < MI_SLICES_PER_SEGMENT; k++)
		if (mask_bit(mask, k) && mask_bit(sg->commit, k)) {
			if (!sm->w->decommit_keeps_pages) {
				n += sg->resident[k];
				sg->resident[k] = 0;
			}
			sg->commit[k / 64] &= ~((uint64_t)1 << (k % 64));
		}
	sm->released += n;
	return n;
}

/* segment.c mi_segment_perhaps_decommit on the span [i, i+count). */
static void perhaps_decommit(struct sim *sm, struct mi_seg *sg, unsigned i, unsigned count)
{
	const struct mi_walk *w = sm->w;
	if (!sg->allow_decommit)
		return;
	uint64_t mask[8] = { 0 };
	for (unsigned k = i; k < i + count && k < MI_SLICES_PER_SEGMENT; k++)
		if (mask_bit(sg->commit, k))
			mask[k / 64] |= (uint64_t)1 << (k % 64);
	if (w->decommit_delay == 0) {
		release_slices(sm, sg, mask);
		return;
	}
	for (int k = 0; k < 8; k++)
		sg->decommit[k] |= mask[k];
	int64_t now = (int64_t)sm->now;
	if (sg->expire == 0) {
		sg->expire = now + w->decommit_delay;
	} else if (sg->expire <= now) {
		if (sg->expire + w->extend_delay <= now) {
			release_slices(sm, sg, sg->decommit);
			memset(sg->decommit, 0, sizeof(sg->decommit));
			sg->expire = 0;
		} else {
			sg->expire = now + w->extend_delay;
		}
	} else {
		sg->expire += w->extend_delay;
	}
}

/* A span becomes free: coalesce with the free spans around it, then perhaps decommit. */
static void free_span(struct sim *sm, struct mi_seg *sg, unsigned i)
{
	unsigned count = sg->span_count[i];
	sg->span_kind[i] = 2;
	unsigned next = i + count;
	if (next < MI_SLICES_PER_SEGMENT && sg->span_kind[next] == 2) {
		count += sg->span_count[next];
		sg->span_kind[next] = 0;
		sg->span_count[next] = 0;
	}
	for (unsigned p = i; p-- > 0;) {
		if (sg->span_kind[p] == 0)
			continue;
		if (sg->span_kind[p] == 2 && p + sg->span_count[p] == i) {
			count += sg->span_count[p];
			sg->span_kind[i] = 0;
			sg->span_count[i] = 0;
			i = p;
		}
		break;
	}
	sg->span_count[i] = (uint16_t)count;
	perhaps_decommit(sm, sg, i, count);
}

static void page_freed(struct sim *sm, struct mi_seg *sg, unsigned i)
{
	free_span(sm, sg, i);
	if (sg->used_pages && --sg->used_pages == 0) {
		/* the segment is freed (cached, then unmapped by the cache collect) */
		uint64_t n = 0;
		for (unsigned k = 0; k < MI_SLICES_PER_SEGMENT; k++) {
			n += sg->resident[k];
			sg->resident[k] = 0;
		}
		sm->released += n;
		sg->valid = false;
	}
}

static struct mi_seg *seg_of(struct mi_seg *segs, size_t n_segs, uint64_t addr)
{
	size_t lo = 0, hi = n_segs;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (segs[m].addr < addr)
			lo = m + 1;
		else
			hi = m;
	}
	return lo < n_segs && segs[lo].addr == addr ? &segs[lo] : NULL;
}

uint64_t mi_predict_collect(struct md_target *t, const struct mi_walk *w, struct mi_seg *segs, size_t n_segs,
			    const uint64_t *main_pages, size_t n_main_pages)
{
	struct sim sm = { .t = t, .w = w, .now = now_ms() };
	/* 1. the main thread reclaims every abandoned segment: free spans and empty pages are freed */
	for (size_t k = 0; k < n_segs; k++) {
		struct mi_seg *sg = &segs[k];
		if (!sg->valid || !sg->abandoned || sg->huge)
			continue;
		for (unsigned i = 1; i < MI_SLICES_PER_SEGMENT && sg->valid;) {
			unsigned cnt = sg->span_count[i];
			if (!cnt)
				break;
			if (sg->span_kind[i] == 2)
				free_span(&sm, sg, i);
			else if (sg->span_kind[i] == 3 && sg->eff_used[i] == 0)
				page_freed(&sm, sg, i);
			i += cnt;
		}
	}
	/* 2. the main heap's pages in queue order: those whose blocks are all free are freed */
	for (size_t k = 0; k < n_main_pages; k++) {
		uint64_t pg = main_pages[k];
		struct mi_seg *sg = seg_of(segs, n_segs, pg & ~MI_SEGMENT_MASK);
		if (!sg || !sg->valid)
			continue;
		uint64_t rel = pg - sg->addr - MI_SEG_HEADER;
		if (rel % w->page_stride)
			continue;
		unsigned i = (unsigned)(rel / w->page_stride);
		if (sg->huge) {
			if (i < MI_SLICES_PER_SEGMENT && sg->span_kind[i] == 3 && sg->eff_used[i] == 0) {
				sm.released += resident_bytes(t, sg->addr, sg->addr + sg->size);
				sg->valid = false;
			}
			continue;
		}
		if (i < MI_SLICES_PER_SEGMENT && sg->span_kind[i] == 3 && sg->eff_used[i] == 0)
			page_freed(&sm, sg, i);
	}
	/* 4. every cached segment is unmapped: the caller adds them */
	return sm.released;
}

