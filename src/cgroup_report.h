/* Reports above one process: a memory cgroup explained part by part (cgroup_report.c), the whole
 * machine (system_report.c). Each is built as a node tree (the JSON of docs/json.md) and the text
 * and HTML renderers read only that tree. */
#ifndef MEMDISSECT_CGROUP_REPORT_H
#define MEMDISSECT_CGROUP_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "analyze.h"
#include "cgroupfs.h"
#include "memdissect/node.h"

/* In the builders: on error keep it in err and jump to out. */
#define MD_TRY(expr)                                                                               \
	do {                                                                                       \
		struct md_error *e_ = (expr);                                                      \
		if (e_) {                                                                          \
			err = e_;                                                                  \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

/* One part of a cgroup's usage. bytes is signed only for the remainder (usage minus the parts),
 * which batched charging can make negative. */
struct md_cgroup_part {
	const char *name;   /* "anon", "page cache (clean)", ... fixed words */
	int64_t bytes;
	bool reclaimable;   /* the kernel can drop it without writing anything (clean cache, reclaimable slab) */
};
#define MD_CGROUP_MAX_PARTS 24

/* Split cg->usage_bytes into parts from memory.stat. members_anon is the sum of the member
 * processes' RssAnon (split out of "anon" as "anon (member processes)"). The last part is
 * always "remainder". */
void md_cgroup_parts(const struct md_cgroup *cg, uint64_t members_anon, struct md_cgroup_part *parts,
		     size_t *n_ret);

struct md_cgroup_report_options {
	bool attach;                     /* attach to each member in turn for allocator classes */
	struct md_analyze_options aopts; /* for those attaches */
};
/* The report of the memory cgroup in dir (path: its name below the hierarchy). */
struct md_error *md_cgroup_report_build(const char *dir, const char *path, const struct md_cgroup_report_options *o,
					struct md_node **doc_ret);
struct md_error *md_cgroup_render_text(const struct md_node *doc, bool color, FILE *out);

/* memdissect system: /proc/meminfo explained, top processes, every memory cgroup. */
struct md_system_report_options {
	const char *cgroup_root; /* "/sys/fs/cgroup" */
	size_t top;              /* processes listed by PSS and by USS (default 10) */
};
struct md_error *md_system_report_build(const struct md_system_report_options *o, struct md_node **doc_ret);
/* meminfo text alone into the "system" object (exposed for tests on saved files). */
struct md_error *md_system_meminfo_node(const char *text, size_t len, struct md_node **obj_ret);
struct md_error *md_system_render_text(const struct md_node *doc, bool color, FILE *out);

/* Both documents as a self-contained HTML page (their text report, escaped, in a page). */
struct md_error *md_above_render_html(const struct md_node *doc, bool system, FILE *out);

/* A string from a target or a container (comm, path) made safe for a terminal: every byte outside
 * printable ASCII becomes \xNN and '\\' becomes \\ (no escape sequence, no C1 control, no fake
 * line survives). Truncates to fit len. */
const char *md_text_safe(const char *s, char *buf, size_t len);

#endif
