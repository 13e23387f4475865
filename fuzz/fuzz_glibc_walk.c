/* libFuzzer harness for the glibc walker (plugins/glibc): a snapshot of a real process
 * (tests/targets/glibc_truth "tcache") is mirrored into a synthetic image (attach/image.c), the
 * fuzz input is a mutation script (attach/image.h) aimed at ptmalloc's structures (main_arena,
 * its bins and arena ring, mp_, the sbrk heap and its tcache), and each run drives the plugin's
 * walk and report through its md_plugin_entry table and the classifier, then restores the
 * image. scripts/fuzz.sh builds it with every attach/ and src/ file and the plugin's sources;
 * MD_FUZZ_SEED names another seed core. */
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

#include "glibc_internal.h"

#define HARNESS "fuzz_glibc_walk"
#define DEFAULT_SEED "tests/data/fuzz-regressions/seed-glibc.core"

#include "walk_harness.h"

/* The plugin's state starts with its roots (struct glibc_state, glibc_internal.h). */
static void find_anchors(void)
{
	const struct glibc_state *s = plugin_state;
	uint64_t ma = s->roots.main_arena;
	anchors[n_anchors++] = ma;          /* mutex, flags, fastbins */
	anchors[n_anchors++] = ma + 0x60;   /* top, last_remainder, bins */
	anchors[n_anchors++] = ma + 0x860;  /* binmap, next, next_free, system_mem */
	anchors[n_anchors++] = s->roots.mp;
	size_t n;
	const struct md_mapping *maps = md_target_mappings(image, &n);
	for (size_t i = 0; i < n && n_anchors < 16; i++) {
		if (maps[i].kind != MD_MAP_HEAP && !(maps[i].kind == MD_MAP_ANON && maps[i].start % (64ULL << 20) == 0))
			continue;
		anchors[n_anchors++] = maps[i].start;          /* heap_info or first chunk */
		if (n_anchors < 16)
			anchors[n_anchors++] = maps[i].start + 0x10; /* tcache_perthread_struct */
	}
}
