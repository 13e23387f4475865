/* One analysis, from attach to a finished report: the wiring of target, plugins, classifier. */
#ifndef MEMDISSECT_ANALYZE_H
#define MEMDISSECT_ANALYZE_H

#include <stdbool.h>
#include <sys/types.h>

#include "classify.h"
#include "memdissect/report.h"
#include "plugins.h"
#include "snapshot.h"

struct md_analyze_options {
	bool debuginfo_disabled;
	unsigned hold_pause_ms;   /* tests: keep the target stopped this long before detaching */
	unsigned max_retries;     /* consistency re-stops (default 5) */
	unsigned retry_usec;      /* how long the target runs between them (default 2000) */
	const char *only_plugin;  /* analyse with this plugin only (NULL: all) */
	const char *exe;          /* cores: --exe PATH */
	const char *sysroot;      /* cores: --sysroot DIR */
	enum md_snapshot_copy snapshot_copy; /* snapshots: where resident pages go in the pause */
	double max_pause_s;       /* snapshots: refuse a longer estimated pause (0: default, <0: none) */
};

struct md_analysis {
	struct md_report report;
	struct md_classifier *classifier; /* kept: the report points into it */
	struct md_plugin_set plugins;
};

struct md_error *md_analyze_live(pid_t pid, const struct md_analyze_options *opts, struct md_analysis *a);
/* The same report from an ELF core (kernel, gdb gcore or memdissect snapshot). */
struct md_error *md_analyze_core(const char *path, const struct md_analyze_options *opts, struct md_analysis *a);
/* Its second half, on a core md_core_open opened (tests: a core that shrinks after the open).
 * Takes t and *info over; a was cleared and its report initialised; t0 is when it all began
 * (ms, monotonic; 0: now). */
struct md_core_info;
struct md_error *md_analyze_core_target(const char *path, struct md_target *t, struct md_core_info *info,
					double t0, const struct md_analyze_options *opts, struct md_analysis *a);
/* memdissect snapshot: stop briefly (at a moment no thread is inside an allocator, as for an
 * attach), write a core with memdissect's notes to path. */
struct md_error *md_analyze_snapshot(pid_t pid, const char *path, const struct md_analyze_options *opts,
				     struct md_snapshot_result *result_ret);
void md_analysis_deinit(struct md_analysis *a);

#endif
