/* The page classifier: turns mappings + the plugins' spans into one class per resident page,
 * blind to which allocator made the spans. It implements the md_sink_* API of plugin.h. */
#ifndef MEMDISSECT_CLASSIFY_H
#define MEMDISSECT_CLASSIFY_H

#include "memdissect/plugin.h"
#include "memdissect/report.h"
#include "memdissect/target.h"

struct md_classifier;

/* The target's mappings must not change while the classifier lives (create it in the pause,
 * after the last capture). */
struct md_error *md_classifier_create(const struct md_target *t, struct md_classifier **c_ret);
void md_classifier_destroy(struct md_classifier *c);
/* One sink per plugin (owned by the classifier). */
struct md_sink *md_classifier_sink(struct md_classifier *c, const char *plugin_name);
/* Classify every resident page; fill r->classes, r->regions, r->findings. After this the sinks'
 * md_sink_group_stats are final. Does not read target memory (may run after detach). */
struct md_error *md_classifier_finish(struct md_classifier *c, struct md_report *r);

/* Results per allocator region, for maps and reports. */
struct md_region_result {
	uint64_t start, end;
	int group;
	const char *plugin;
	const char *label;
	uint64_t pages[MD_CLASS_COUNT]; /* resident pages by class */
	uint64_t nonresident_pages;
	uint64_t pinned_free_bytes;
	uint64_t releasable_bytes; /* resident pages inside RELEASABLE spans */
};
const struct md_region_result *md_classifier_regions(const struct md_classifier *c, size_t *n_ret);

/* Regions of another allocator that lie inside this sink's live spans (layered claims), one entry
 * per inner allocator; final after md_classifier_finish. The held pages are classed and counted
 * by the inner allocator only; the host's live bytes still include them. */
struct md_classifier_hold {
	const char *allocator;   /* the inner plugin */
	uint64_t bytes, regions; /* extent and number of its regions held */
	uint64_t resident_pages; /* resident pages of those regions */
};
const struct md_classifier_hold *md_classifier_holds(const struct md_sink *s, size_t *n_ret);

#endif
