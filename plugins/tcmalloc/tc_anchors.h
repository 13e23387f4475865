/* The roots the walker fuzzer's mutation scripts start from (fuzz/fuzz_tcmalloc_walk.c) and the
 * image suite's replay of its regression inputs (tests/check_image.c): page-heap free lists, large
 * sets and stats, two central free lists, the thread-cache list, the size map, the page-map root
 * slot of the first leaf in use, that leaf's first entry and the Span it names. */
#ifndef MD_TC_ANCHORS_H
#define MD_TC_ANCHORS_H

#include <stdlib.h>

#include "tc.h"

static inline size_t tc_fuzz_anchors(struct md_target *t, const struct tc_roots *r, uint64_t *anchors)
{
	size_t n = 0;
	anchors[n++] = r->pageheap + TC_PH_FREE;
	anchors[n++] = r->pageheap + TC_PH_LARGE_NORMAL;
	anchors[n++] = r->pageheap + TC_PH_STATS;
	anchors[n++] = r->central + TC_CFL_STRIDE;
	anchors[n++] = r->central + 40 * TC_CFL_STRIDE;
	anchors[n++] = r->thread_heaps;
	anchors[n++] = r->sizemap + TC_SM_NUM_TO_MOVE;
	uint64_t *root = malloc(TC_ROOT_LEN * 8), *leaf = malloc(TC_LEAF_LEN * 8);
	struct md_error *err = root && leaf ? md_target_read(t, r->pageheap + TC_PH_PAGEMAP, root, TC_ROOT_LEN * 8) : NULL;
	for (uint64_t i = 0; root && leaf && !err && i < TC_ROOT_LEN; i++) {
		if (!root[i])
			continue;
		anchors[n++] = r->pageheap + TC_PH_PAGEMAP + 8 * i;
		err = md_target_read(t, root[i], leaf, TC_LEAF_LEN * 8);
		for (uint64_t j = 0; !err && j < TC_LEAF_LEN; j++)
			if (leaf[j]) {
				anchors[n++] = root[i] + 8 * j;
				anchors[n++] = leaf[j];
				break;
			}
		break;
	}
	md_error_destroy(err);
	free(root);
	free(leaf);
	return n;
}

#endif
