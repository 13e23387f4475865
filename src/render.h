/* What the renderers share beyond report.h: the heap-vs-RSS gap explained from the report alone
 * (gap.c), the advice tied to its figures (advice.c), the drainability map's cells and glyphs
 * (render_map.c), and the renderers and commands that main wires up (render_html.c,
 * openmetrics.c, watch.c, diff.c). Everything here reads the report (or a JSON document of it),
 * never target memory. */
#ifndef MEMDISSECT_RENDER_H
#define MEMDISSECT_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memdissect/report.h"

/* ---- target-controlled text (escape.c) ---- */

/* Strings the target controls (comm, thread and file names, symbols, plugin strings read from its
 * memory) go through these before any human format prints them: control bytes, C1 controls and
 * bytes that are not UTF-8 as "\xNN" ("\n", "\t", "\r"), the backslash doubled. */
bool md_needs_escape(const char *s);
/* Writes at most len - 1 bytes and a NUL (never half an escape); returns the full length. */
size_t md_escape_text(const char *s, char *buf, size_t len);
/* The same with the backslash left alone, for formats that escape it themselves (OpenMetrics). */
size_t md_escape_text_keep_backslash(const char *s, char *buf, size_t len);
char *md_escape_dup(const char *s); /* malloc'd; NULL when out of memory */
/* s itself when it needs nothing, else an escaped copy in one of 8 rotating buffers (so up to
 * 8 fit in one printf); "" for NULL. */
const char *md_esc(const char *s);

/* ---- the gap (gap.c) ---- */

/* One row of the gap ranking and of the map: an allocator region, or every region of one
 * allocator that carries the same label (a plugin's mmapped chunks, the spans of one group). */
struct md_gap_row {
	char label[96];         /* the plugin's region label; "... (12)" for 12 regions of one label */
	const char *allocator;  /* plugin name, never NULL ("?" when the region had none) */
	int group;              /* the plugin's group number, -1 none */
	uint64_t start, end;    /* first member's start, last member's end */
	size_t *members;        /* indices into report->alloc_regions, in address order */
	size_t n_members;
	uint64_t pages[MD_CELL_PART_COUNT];
	uint64_t total_pages;   /* pages covered by the members (the map's length) */
	uint64_t resident_bytes;   /* live + free + metadata + other pages */
	uint64_t releasable_bytes; /* what the allocator's release call would give back now */
	uint64_t kept_free_bytes;  /* free pages out of that call's reach */
	uint64_t pinned_free_bytes;/* free bytes on pages that also hold live data */
	uint64_t metadata_bytes;
	uint64_t gap_bytes;        /* free pages + pinned free bytes + metadata pages */
};

struct md_gap {
	uint64_t rss_bytes;
	/* What the program holds: the allocators' own live byte counts when they give them
	 * ("live_bytes"), else the live pages. */
	uint64_t live_heap_bytes;
	bool live_from_allocators;
	uint64_t gap_bytes;          /* rss - live heap (0 if the heap is larger) */
	/* The gap, term by term; the terms add up to gap_bytes. */
	uint64_t releasable_bytes;   /* free pages the release calls would give back now */
	uint64_t kept_free_bytes;    /* free pages they would not give back */
	uint64_t pinned_free_bytes;  /* free bytes on live pages (fragmentation) */
	uint64_t metadata_bytes;     /* allocator metadata pages */
	int64_t live_slack_bytes;    /* live pages - pinned - live heap: headers, padding, rounding;
				      * negative when live bytes sit on pages never touched */
	/* live_slack_bytes apart, so that no line of the ledger is negative:
	 * live_slack_bytes == headers_bytes - untouched_live_bytes. */
	uint64_t headers_bytes;        /* chunk headers, padding, unused ends of live pages */
	uint64_t untouched_live_bytes; /* live bytes on pages never touched: in the heap, not in RSS */
	uint64_t outside_bytes;      /* stack + file + shared + other anonymous */
	uint64_t allocator_resident_bytes; /* live + free + metadata pages */
	bool have_regions;           /* per-region figures exist (report->alloc_regions) */
	struct md_gap_row *rows;     /* in address order */
	size_t n_rows;
	size_t *rank;                /* row indices by gap_bytes, largest first */
};

/* Build the gap of r. The rows point into r (labels are copied); r must outlive nothing here. */
struct md_error *md_gap_compute(const struct md_report *r, struct md_gap *gap_ret);
void md_gap_deinit(struct md_gap *gap);

/* How the allocators in use give memory back: their "release": {"action"} calls joined by "or",
 * or "no call memdissect knows of" (only allocators without a plugin). */
const char *md_release_verb(const struct md_report *r);

/* Sum of a numeric key (a dotted path: "release.bytes") over the allocator objects of the report
 * (found: any had it). */
uint64_t md_allocators_sum(const struct md_report *r, const char *key, bool *found_ret);

/* ---- advice (advice.c) ---- */

/* One thing to do, tied to a figure of the report. topic is a fixed word: the release topic of
 * an allocator (its "release": {"topic"}, or "release"), "<that>-unsafe", the topic of an
 * allocator's own advice item, or the core's "fragmentation", "watch", "metadata", "container",
 * "system", "unknown", "partial", "nothing". */
struct md_advice {
	char topic[48];
	char *text;
};
struct md_error *md_advice_build(const struct md_report *r, const struct md_gap *gap,
				 struct md_advice **list_ret, size_t *n_ret);
void md_advice_free(struct md_advice *list, size_t n);

/* ---- the drainability map (render_map.c) ---- */

/* A cell of a rendered map: page counts (fractional after re-binning to the screen's scale). */
struct md_map_bin {
	double pages[MD_CELL_PART_COUNT];
	double releasable_pages;
	double pinned_free_bytes;
};

enum md_glyph {
	MD_GLYPH_EMPTY,        /* nothing (past the end of a row) */
	MD_GLYPH_LIVE,         /* live data */
	MD_GLYPH_PINNED,       /* live pages that are mostly free bytes: fragmentation */
	MD_GLYPH_RELEASABLE,   /* free, resident, the release call would give it back now */
	MD_GLYPH_KEPT,         /* free, resident, out of that call's reach (caches, bins) */
	MD_GLYPH_METADATA,
	MD_GLYPH_OTHER,        /* resident, not described by the allocator */
	MD_GLYPH_NONRESIDENT,  /* released or never touched */
	MD_GLYPH_COUNT,
};

/* The character, the ANSI colour and the legend word of each glyph. */
char md_glyph_char(enum md_glyph g);
const char *md_glyph_color(enum md_glyph g);
const char *md_glyph_name(enum md_glyph g);
/* What most of the bin is. */
enum md_glyph md_map_glyph(const struct md_map_bin *bin);
/* Re-bin a row: n bins of pages_per_bin pages starting at page `from` of the row (its members'
 * pages end to end). Bins past the row's end stay empty. */
void md_map_rebin(const struct md_report *r, const struct md_gap_row *row, uint64_t from,
		  uint64_t pages_per_bin, size_t n, struct md_map_bin *out);
/* The map in the terminal: summary (a row per region, scaled to fit) or full (fixed scale). */
struct md_map_text_options {
	bool color;
	int width;
	bool full;
};
void md_render_map_text(const struct md_report *r, const struct md_gap *gap,
			const struct md_map_text_options *opts, FILE *out);

/* ---- other renderers ---- */

/* One self-contained HTML document (no network, no external asset). */
struct md_error *md_render_html(const struct md_report *r, FILE *out);
/* Prometheus / OpenMetrics text for the node-exporter textfile collector. */
struct md_error *md_render_openmetrics(const struct md_report *r, FILE *out);

/* Size-class histograms: the standard "histogram" rows of an allocator object or of one of its
 * "groups" (include/memdissect/figures.h), read key by key so text and HTML show the same thing. */
struct md_hist_row {
	uint64_t size_from, size_to; /* chunk sizes [from, to] in bytes */
	uint64_t live_count, live_bytes, free_count, free_bytes;
};
/* Rows of one group object (or of an allocator object); *n_ret = 0 when it has none. */
struct md_error *md_histogram_rows(const struct md_node *obj, struct md_hist_row **rows_ret,
				   size_t *n_ret);

/* ---- watch and diff (watch.c, diff.c) ---- */

struct md_watch_sample {
	double t_s;                /* seconds since the first sample started */
	uint64_t rss_bytes;
	uint64_t live_heap_bytes;  /* as md_gap's live_heap_bytes */
	uint64_t free_bytes;       /* classes.free: retained free */
	uint64_t metadata_bytes;
	uint64_t pinned_free_bytes;
	uint64_t releasable_bytes;
	uint64_t gap_bytes;        /* rss - live heap */
	uint64_t classes[MD_CLASS_COUNT];
	double pause_ms;
	uint64_t wss_bytes;        /* watch --wss: the working set of the window after the attach */
	bool partial;
	char unanalysed[96]; /* names of allocators present that no plugin walks: "go, v8" */
};
void md_watch_sample_from_report(const struct md_report *r, double t_s, struct md_watch_sample *s);

/* The verdict of the stable-vs-growing-gap rule over a series of samples. */
enum md_verdict {
	MD_VERDICT_INSUFFICIENT,   /* fewer than 3 samples or no time between them */
	MD_VERDICT_STABLE,         /* gap and heap flat */
	MD_VERDICT_HEAP_GROWTH,    /* heap grows, gap flat: the program holds more */
	MD_VERDICT_STRUCTURAL,     /* gap grows, heap flat: structural leak suspected */
	MD_VERDICT_BOTH_GROWING,   /* heap and gap grow */
	MD_VERDICT_DRAINING,       /* gap shrinks: retained memory reused or returned */
	MD_VERDICT_COUNT,
};
struct md_trend {
	double slope;     /* bytes per second, least squares */
	double change;    /* slope * observed span: the fitted change over the watch */
	double r2;        /* goodness of the linear fit, 0..1 (1 when the series is constant) */
	double mean;
	int direction;    /* -1 shrinking, 0 flat, +1 growing */
};
struct md_verdict_result {
	enum md_verdict verdict;
	const char *name;   /* "stable", "heap-growth", "structural-leak", "growing", "draining",
			     * "insufficient-data" */
	struct md_trend rss, heap, gap, free;
	double span_s;
	uint64_t threshold_bytes; /* smallest fitted change over the span that counts as a trend */
	char text[512];          /* one sentence */
};
void md_verdict_compute(const struct md_watch_sample *s, size_t n, struct md_verdict_result *v);
/* A fitted trend of y over t (exposed for tests). */
void md_trend_fit(const double *t, const double *y, size_t n, uint64_t threshold, struct md_trend *tr);
/* "400 MiB/h", "-1.20 GiB/h", "12.0 KiB/h": a rate per hour with md_format_bytes units. */
const char *md_format_rate(double bytes_per_s, char *buf, size_t len);

struct md_watch_options {
	bool *partial_ret;      /* set when a sample's report was partial (exit 10) */
	double interval_s;
	unsigned long count;    /* 0: until interrupted */
	bool json;
	bool color;
	int width;
	bool debuginfo_disabled;
	const char *only_plugin;
	double wss_s;           /* > 0: measure the working set over this window after each attach */
	const char *html;       /* watch --html FILE: the trend page, rewritten after every sample */
};
/* Runs the watch on stdout. Returns an error for the exit code (NULL: ok). */
struct md_error *md_watch_run(int pid, const struct md_watch_options *opts, FILE *out);
/* watch --textfile DIR PID...: every interval, attach to each pid in turn and replace
 * DIR/memdissect.prom (written aside, then renamed) with their OpenMetrics series, for the node
 * exporter's textfile collector; one status line per round on out. Pids that exit are dropped;
 * it ends when none is left, after opts->count rounds, or on SIGINT. */
struct md_error *md_watch_textfile(const int *pids, size_t n_pids, const char *dir,
				   const struct md_watch_options *opts, FILE *out);
/* watch --html: the samples plotted over time with the fitted slopes and the verdict. */
struct md_error *md_render_watch_html(const struct md_watch_sample *s, size_t n, const struct md_verdict_result *v,
				      int pid, const char *comm, FILE *out);
/* Several OpenMetrics texts (md_render_openmetrics) as one exposition: each family once. */
struct md_error *md_openmetrics_merge(char *const *texts, size_t n_texts, FILE *out);

/* Compare two JSON reports (attach --json) and print what changed. */
struct md_diff_options {
	bool color;
	int width;
	bool json;
	int top;
};
struct md_error *md_diff_documents(const struct md_node *a, const struct md_node *b,
				   const struct md_diff_options *opts, FILE *out);
struct md_error *md_diff_files(const char *path_a, const char *path_b,
			       const struct md_diff_options *opts, FILE *out);

#endif
