/* libFuzzer harness for the jemalloc walker (plugins/jemalloc): a snapshot of a real jemalloc
 * process (tests/targets/jemalloc_corrupt "seed") is mirrored into a synthetic image
 * (attach/image.c), the fuzz input is a mutation script (attach/image.h) aimed at jemalloc's own
 * structures (arenas[], arena 0, its bins, base, ecache lru, rtree root, tcache rings), and each
 * run drives the plugin's walk and report through its md_plugin_entry table and the classifier,
 * then restores the image. scripts/fuzz.sh builds it with every attach/ and src/ file and the
 * plugin's sources; MD_FUZZ_SEED names another seed core. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "core.h"
#include "image.h"
#include "memdissect/node.h"
#include "memdissect/plugin.h"
#include "memdissect/report.h"

#include "jem_locate.h"

#define HARNESS "fuzz_jemalloc_walk"
#define DEFAULT_SEED "tests/data/fuzz-regressions/seed-jemalloc.core"

#include "walk_harness.h"

/* The plugin's state starts with its roots (struct jem_state in jem_plugin.c). */
static void find_anchors(void)
{
	const struct jem_roots *r = plugin_state;
	const struct jem_layout *l = &r->layout;
	uint64_t a0 = 0, a1 = 0, base = 0;
	md_error_destroy(md_target_read_u64(image, r->arenas, &a0));
	md_error_destroy(md_target_read_u64(image, r->arenas + 8, &a1));
	anchors[n_anchors++] = r->arenas;
	anchors[n_anchors++] = r->emap;
	if (a0) {
		md_error_destroy(md_target_read_u64(image, a0 + l->arena_base, &base));
		anchors[n_anchors++] = a0;
		anchors[n_anchors++] = a0 + l->arena_tcache_ql;
		anchors[n_anchors++] = a0 + l->arena_ecache[0];
		anchors[n_anchors++] = a0 + l->arena_ecache[0] + 112 + 9632; /* dirty lru head */
		anchors[n_anchors++] = a0 + l->arena_bins;
		anchors[n_anchors++] = a0 + l->arena_pa_base;
	}
	if (base)
		anchors[n_anchors++] = base + l->base_blocks;
	if (a1)
		anchors[n_anchors++] = a1;
	if (r->narenas_total)
		anchors[n_anchors++] = r->narenas_total;
	if (r->bin_infos)
		anchors[n_anchors++] = r->bin_infos;
	anchors[n_anchors++] = r->emap + 120 + 8 * ((a0 >> 30) & 0x3ffff); /* rtree root slot */
}
