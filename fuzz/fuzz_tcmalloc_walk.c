/* libFuzzer harness for the tcmalloc walker (plugins/tcmalloc): a snapshot of a real tcmalloc
 * 2.10 process (tests/targets/tcmalloc_truth "small", libtcmalloc_minimal) is mirrored into a
 * synthetic image (attach/image.c); the fuzz input is a mutation script (attach/image.h) aimed at
 * tcmalloc's own structures (page-heap free lists and large sets, stats, the page-map root and
 * the first leaf, a Span, central free lists, the thread-cache list, the size map); each run
 * drives the plugin's walk and report and the classifier, then restores the image.
 * scripts/fuzz.sh builds it with every attach/ and src/ file and the plugin's sources;
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

#include "tc_anchors.h"

#define HARNESS "fuzz_tcmalloc_walk"
#define DEFAULT_SEED "tests/data/fuzz-regressions/seed-tcmalloc.core"

#include "walk_harness.h"

/* The plugin's state starts with its roots (struct tc_state in tc_plugin.c). */
static void find_anchors(void)
{
	n_anchors = tc_fuzz_anchors(image, plugin_state, anchors);
}
