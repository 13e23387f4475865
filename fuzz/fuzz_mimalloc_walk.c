/* libFuzzer harness for the mimalloc walker (plugins/mimalloc): a snapshot of a real mimalloc
 * process (tests/targets/mimalloc_truth.c in "seed" mode: 4 live heaps, an abandoned segment,
 * remote frees, a huge segment, Debian's libmimalloc.so.2) is mirrored into a synthetic image
 * (attach/image.c); the fuzz input is a mutation script (attach/image.h) aimed at the main heap,
 * its page queues, the abandoned list, the segment cache bits, segment headers and pages; each
 * run drives the plugin's walk and report and the classifier, then restores the image.
 * scripts/fuzz.sh builds it; MD_FUZZ_SEED names another seed core. */
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

#include "mimalloc.h"

#define HARNESS "fuzz_mimalloc_walk"
#define DEFAULT_SEED "tests/data/fuzz-regressions/seed-mimalloc.core"

#include "walk_harness.h"

/* One walk of the unmutated image tells where the structures are. */
static void find_anchors(void)
{
	struct md_classifier *c = NULL;
	if (md_classifier_create(image, &c))
		return;
	struct md_sink *sink = md_classifier_sink(c, plugin->name);
	md_error_destroy(plugin->walk(plugin_state, image, sink, false));
	md_classifier_destroy(c);
	n_anchors = mi_fuzz_anchors(plugin_state, anchors);
}
