/* libFuzzer harness for the pymalloc walker (plugins/pymalloc): a snapshot of a real CPython
 * process (Debian's stripped python3.11 running tests/targets/pymalloc_truth.py "census 300 200
 * 50") is mirrored into a synthetic image (attach/image.c); the fuzz input is a mutation script
 * (attach/image.h) aimed at obmalloc's statics (arenas, maxarenas, raw_allocated_blocks), the
 * arena table, the first pools of each arena, the object allocator and the main interpreter's GC
 * lists; each run drives the plugin's walk and report and the classifier, then restores the
 * image. scripts/fuzz.sh builds it; MD_FUZZ_SEED names another seed core. */
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

#include "pym.h"

#define HARNESS "fuzz_pymalloc_walk"
#define DEFAULT_SEED "tests/data/fuzz-regressions/seed-pymalloc.core"

#include "walk_harness.h"

/* The plugin's state starts with its roots (struct pym_plugin_state in pym_plugin.c). */
static void find_anchors(void)
{
	const struct pym_roots *r = plugin_state;
	uint64_t arenas = 0, main_interp = 0;
	anchors[n_anchors++] = r->global.arenas_addr;
	anchors[n_anchors++] = r->global.maxarenas_addr;
	if (r->global.raw_addr)
		anchors[n_anchors++] = r->global.raw_addr;
	if (r->obj_allocator)
		anchors[n_anchors++] = r->obj_allocator;
	md_error_destroy(md_target_read_u64(image, r->global.arenas_addr, &arenas));
	for (unsigned i = 0; arenas && i < 4; i++) {
		uint64_t addr = 0;
		md_error_destroy(md_target_read_u64(image, arenas + i * PYM_ARENA_OBJECT, &addr));
		anchors[n_anchors++] = arenas + i * PYM_ARENA_OBJECT;
		if (addr) {
			uint64_t base = (addr + r->pool_size - 1) & ~(r->pool_size - 1);
			anchors[n_anchors++] = base;                 /* first pool header */
			anchors[n_anchors++] = base + r->pool_size;  /* second */
		}
	}
	if (r->off_interp_main)
		md_error_destroy(md_target_read_u64(image, r->runtime + r->off_interp_main, &main_interp));
	if (main_interp && r->off_gc_generations && n_anchors < 16)
		anchors[n_anchors++] = main_interp + r->off_gc_generations;
}
