/* One analysis, from attach to a finished report: the wiring of target, plugins, classifier. */
#ifndef MEMDISSECT_ANALYZE_H
#define MEMDISSECT_ANALYZE_H

#include <stdbool.h>
#include <sys/types.h>

#include "classify.h"
#include "memdissect/report.h"
#include "plugins.h"
#include "snapshot.h"
#include "symbols.h"

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

/* Where the time of one live analysis went, in ms (watch's sample_ms, pause_ms, walk_ms). */
struct md_analysis_timing {
	double open_ms;  /* before the pause: target, symbols, plugins finding their allocator */
	double pause_ms; /* the target stopped (stops, safe point, capture, walk) */
	double walk_ms;  /* the plugins' walks, inside the pause */
	double total_ms; /* the whole analysis */
};

struct md_analysis {
	struct md_report report;
	struct md_classifier *classifier; /* kept: the report points into it */
	struct md_plugin_set plugins;     /* loaded for this analysis (none when lent) */
	const struct md_plugin_set *lent_plugins; /* a session's, used instead */
	struct md_analysis_timing timing;
};

/* What a session lends to a live analysis (src/session.c): its plugins, and the kept symbols of
 * the process with the counters of what they cost. */
struct md_analysis_resources {
	const struct md_plugin_set *plugins;
	struct md_symbols **symbols;
	struct md_symbols_counters *counters;
	struct md_symbols_cache *cache;
	struct md_live_tracer *tracer;
};

struct md_error *md_analyze_live(pid_t pid, const struct md_analyze_options *opts, struct md_analysis *a);
/* The same with a session's resources (res NULL: as md_analyze_live). */
struct md_error *md_analyze_live_with(pid_t pid, const struct md_analyze_options *opts,
				      const struct md_analysis_resources *res, struct md_analysis *a);
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
