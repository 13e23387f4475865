/* Renderers: the fixture report (render_fixture.h) rendered as text against golden files (the
 * summary map, the full map, narrow and coloured terminals), as JSON read back with the parser,
 * as OpenMetrics checked line by line; the gap's arithmetic and the advice tied to its figures.
 * MD_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memdissect/plugin.h"
#include "memdissect/report.h"
#include "render.h"
#include "render_fixture.h"
#include "tests.h"

START_TEST(test_text_golden)
{
	struct md_report r;
	md_fx_build_report(&r);
	/* the default report: summary map, 100 columns, no colour */
	char *text = md_fx_render_text(&r, false, 100);
	md_fx_check_golden("report.txt", text);
	md_fx_check_width(text, 100);
	free(text);
	/* --map: the full map at one scale */
	struct md_render_options opts = { .width = 100, .top = 15, .map = true };
	text = md_fx_render_text_opts(&r, &opts);
	md_fx_check_golden("report_map.txt", text);
	md_fx_check_width(text, 100);
	free(text);
	/* the narrowest terminal the layout holds */
	text = md_fx_render_text(&r, false, 60);
	md_fx_check_golden("report_narrow.txt", text);
	md_fx_check_width(text, 60);
	free(text);
	/* colour on a wide terminal: the ESC sequences are part of the golden file */
	text = md_fx_render_text(&r, true, 132);
	md_fx_check_golden("report_color.txt", text);
	md_fx_check_width(text, 132);
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_mask)
{
	char *m = md_fx_mask("memdissect: pid 48213 (x) at 0x7f1c080a3f10, 55d4c5b1e000-55d4f1b1e000 "
			     "stopped for 3.412 ms, analysis took 1.20 s; 12345678 deadbeef 0x10");
	ck_assert_str_eq(m, "memdissect: pid PID (x) at 0xXXXXXXXXXXXX, XXXXXXXXXXXX-XXXXXXXXXXXX stopped for TIME, "
			    "analysis took TIME; 12345678 deadbeef 0x10");
	free(m);
}
END_TEST

START_TEST(test_text_content)
{
	struct md_report r;
	md_fx_build_report(&r);
	char *text = md_fx_render_text(&r, false, 100);
	/* the first section answers the question, with the exact figures of the table */
	ck_assert_ptr_nonnull(strstr(text, "Where did the memory go?\n  RSS 1.02 GiB = live heap 839 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "retained free 168 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "The program's live heap is 795 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "container limit is the constraint, not the RSS"));
	ck_assert_ptr_nonnull(strstr(text, "malloc_trim(0) would release 101 MiB now"));
	ck_assert_ptr_nonnull(strstr(text, "[heap] (glibc)"));
	ck_assert_ptr_nonnull(strstr(text, "corrupt"));
	ck_assert_ptr_nonnull(strstr(text, "tcache of thread 48217"));
	/* corrupt findings come first whatever the report's order */
	const char *corrupt = strstr(text, "corrupt glibc"), *warn = strstr(text, "warning glibc");
	const char *info = strstr(text, "info    glibc");
	ck_assert(corrupt && warn && info);
	ck_assert(corrupt < warn && warn < info);
	/* the zero-RSS guard pages are not among the top mappings */
	ck_assert_ptr_null(strstr(text, "---p"));

	/* the order: answer, gap by region, map, evidence, what to do last */
	const char *answer = strstr(text, "Where did the memory go?");
	const char *gap = strstr(text, "The gap between the heap and RSS");
	const char *map = strstr(text, "Drainability map");
	const char *memory = strstr(text, "\nMemory\n");
	const char *todo = strstr(text, "What to do");
	ck_assert(answer && gap && map && memory && todo);
	ck_assert(answer < gap && gap < map && map < memory && memory < todo);
	/* the ranking: the main arena holds the largest gap, each line names its range */
	const char *by_region = strstr(text, "by region, largest gap first");
	ck_assert_ptr_nonnull(by_region);
	const char *main_row = strstr(by_region, "glibc main arena      55d4c5b1e000-55d4f171e000");
	const char *heap1_row = strstr(by_region, "glibc arena 1 heap 1");
	const char *heap0_row = strstr(by_region, "glibc arena 1 heap 0");
	ck_assert(main_row && heap1_row && heap0_row);
	ck_assert(main_row < heap1_row && heap1_row < heap0_row); /* 148 MiB, 34 MiB, 23 MiB */
	ck_assert_ptr_nonnull(strstr(text, "releasable now         101 MiB"));
	/* advice tied to figures: arena 1 is corrupt, so no trim (it walks every arena), and the
	 * container */
	ck_assert_ptr_nonnull(strstr(todo, "1. Do not call malloc_trim(0) on this evidence: arena 1 is corrupt"));
	ck_assert_ptr_null(strstr(todo, "Trim: malloc_trim(0) would return"));
	ck_assert_ptr_nonnull(strstr(todo, "Raise the container limit"));
	ck_assert_ptr_null(strstr(todo, "Cap the arenas")); /* two arenas: nothing to cap */
	/* histograms of live and free chunks per arena */
	ck_assert_ptr_nonnull(strstr(text, "size classes of arena 0: 4209120 live chunks"));
	ck_assert_ptr_nonnull(strstr(text, "size classes of arena 1"));
	ck_assert_ptr_nonnull(strstr(text, "1040-65536"));
	free(text);

	/* no color unless asked; with color, ESC sequences */
	ck_assert_ptr_null(strchr((text = md_fx_render_text(&r, false, 100)), '\033'));
	free(text);
	text = md_fx_render_text(&r, true, 100);
	ck_assert_ptr_nonnull(strstr(text, "\033[32m"));
	ck_assert_ptr_nonnull(strstr(text, "\033[0m"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_text_widths_and_limits)
{
	struct md_report r;
	md_fx_build_report(&r);
	/* more findings than shown */
	for (int i = 0; i < 25; i++)
		md_fx_add_finding(&r, "info", 0x1000 * (uint64_t)i, -1, "filler");
	char *text = md_fx_render_text(&r, false, 100);
	ck_assert_ptr_nonnull(strstr(text, "... and 8 more"));
	free(text);
	/* narrow and wide terminals still render everything */
	text = md_fx_render_text(&r, false, 60);
	ck_assert_ptr_nonnull(strstr(text, "Notes"));
	free(text);
	text = md_fx_render_text(&r, true, 240);
	ck_assert_ptr_nonnull(strstr(text, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_text_empty_report)
{
	struct md_report r;
	md_report_init(&r);
	/* plugins append to the allocator array without creating it */
	ck_assert_int_eq(md_node_type(r.allocators), MD_NODE_ARRAY);
	ck_assert_uint_eq(md_node_count(r.allocators), 0);
	char *text = md_fx_render_text(&r, false, 0);
	ck_assert_ptr_nonnull(strstr(text, "RSS 0 B = nothing resident"));
	free(text);
	md_report_deinit(&r);
	md_report_deinit(&r); /* twice is harmless */
}
END_TEST

START_TEST(test_text_allocator_defensive)
{
	/* odd allocator objects: missing keys, wrong types, standard keys of the wrong shape */
	struct md_report r;
	md_report_init(&r);
	struct md_node *a = md_node_object();
	ck_assert_ptr_null(md_node_append(r.allocators, a));
	ck_assert_ptr_null(md_node_set_u64(a, "version", 5));
	ck_assert_ptr_null(md_node_set(a, "groups", md_node_string("not an array")));
	ck_assert_ptr_null(md_node_set(a, "grids", md_node_u64(7)));
	ck_assert_ptr_null(md_node_set(a, "advice", md_node_string("not an array")));
	ck_assert_ptr_null(md_node_set(a, "release", md_node_u64(3)));
	struct md_node *j = md_node_object();
	ck_assert_ptr_null(md_node_append(r.allocators, j));
	ck_assert_ptr_null(md_node_set_string(j, "name", "jemalloc"));
	struct md_node *st = md_node_object();
	ck_assert_ptr_null(md_node_set(j, "stats", st));
	ck_assert_ptr_null(md_node_set_u64(st, "allocated", 3 * MiB));
	ck_assert_ptr_null(md_node_set_u64(st, "resident", 12 * MiB));
	ck_assert_ptr_null(md_node_set(j, "release", md_fig_release_node("arena.<all>.purge", 4 * MiB)));
	struct md_node *groups = md_node_array();
	ck_assert_ptr_null(md_node_set(j, "groups", groups));
	ck_assert_ptr_null(md_node_append(groups, md_node_null()));
	struct md_node *a0 = md_node_object();
	ck_assert_ptr_null(md_node_append(groups, a0));
	ck_assert_ptr_null(md_node_set_u64(a0, "group", 0));
	ck_assert_ptr_null(md_node_set(a0, "histogram", md_node_string("junk")));
	struct md_node *grids = md_node_array(), *gd = md_node_object();
	ck_assert_ptr_null(md_node_set(j, "grids", grids));
	ck_assert_ptr_null(md_node_append(grids, md_node_u64(1)));
	ck_assert_ptr_null(md_node_append(grids, gd));
	ck_assert_ptr_null(md_node_set_string(gd, "key", "no such key"));
	ck_assert_ptr_null(md_node_append(r.allocators, md_node_u64(1)));
	char *text = md_fx_render_text(&r, false, 100);
	ck_assert_ptr_nonnull(strstr(text, "Allocator ? 5"));
	ck_assert_ptr_nonnull(strstr(text, "Allocator jemalloc"));
	ck_assert_msg(strstr(text, "allocated") && strstr(text, "3145728"), "%s", text); /* no byte_keys: a plain count */
	ck_assert_ptr_nonnull(strstr(text, "would release 4.00 MiB now"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_json_document)
{
	struct md_report r;
	md_fx_build_report(&r);
	size_t len;
	char *json = md_fx_render_json(&r, &len);
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(json[len - 1], '\n');
	md_fx_check_golden("report.json", json);

	struct md_node *doc = NULL;
	struct md_error *err = md_node_parse_json(json, len, &doc);
	ck_assert_msg(err == NULL, "parse: %s", err ? err->message : "");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(doc, "schema_version")), 1);
	ck_assert(!md_node_get_bool(md_node_get(doc, "partial")));
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "target.pid")), 48213);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "target.comm")), "order-svc");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "target.source")), "live");
	ck_assert_int_eq(md_node_type(md_node_path(doc, "target.pause_ms")), MD_NODE_DOUBLE);
	ck_assert_double_eq_tol(md_node_get_double(md_node_path(doc, "target.pause_ms")), 3.412, 1e-9);

	/* the invariant: classes add up to the RSS, overall and per region */
	uint64_t rss = md_node_get_u64(md_node_path(doc, "memory.rss_bytes"));
	ck_assert_uint_eq(rss, r.memory.rss_bytes);
	const struct md_node *classes = md_node_get(doc, "classes");
	ck_assert_uint_eq(md_node_count(classes), MD_CLASS_COUNT);
	uint64_t sum = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		const struct md_node *v = md_node_get(classes, md_class_name((enum md_class)c));
		ck_assert_ptr_nonnull(v);
		ck_assert_int_eq(md_node_type(v), MD_NODE_U64);
		sum += md_node_get_u64(v);
	}
	ck_assert_uint_eq(sum, rss);

	const struct md_node *regions = md_node_get(doc, "regions");
	ck_assert_uint_eq(md_node_count(regions), r.n_regions);
	uint64_t region_rss = 0;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		const struct md_node *reg = md_node_at(regions, i);
		uint64_t s = 0;
		for (int c = 0; c < MD_CLASS_COUNT; c++)
			s += md_node_get_u64(md_node_path(reg, "classes") ?
					     md_node_get(md_node_get(reg, "classes"), md_class_name((enum md_class)c)) : NULL);
		ck_assert_uint_eq(s, md_node_get_u64(md_node_get(reg, "rss_bytes")));
		region_rss += s;
		const char *start = md_node_get_string(md_node_get(reg, "start"));
		ck_assert_ptr_nonnull(start);
		ck_assert(strncmp(start, "0x", 2) == 0);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(reg, "start")), r.regions[i].start);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(reg, "end")), r.regions[i].end);
	}
	ck_assert_uint_eq(region_rss, rss);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.path")), "[heap]");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.kind")), "heap");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.allocator")), "glibc");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.perms")), "rw-p");
	ck_assert_int_eq(md_node_type(md_node_path(doc, "regions.5.path")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_path(doc, "regions.0.allocator")), MD_NODE_NULL);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "regions.1.offset")), 0x2c000);

	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "system.mem_total_bytes")),
			  16003548 * KiB);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "cgroup.limit_bytes")), 2 * GiB);
	ck_assert(!md_node_get_bool(md_node_path(doc, "cgroup.unlimited")));
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "cgroup.version")), 2);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "allocators.0.mallinfo.uordblks")),
			  591 * MiB);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "allocators.0.arenas.1.state")),
			 "corrupt");
	ck_assert_uint_eq(md_node_count(md_node_path(doc, "allocators.0.arenas.1.heaps")), 2);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "findings")), 3);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "findings.1.address")), "0x7f1c080a3f10");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "findings.1.severity")), "corrupt");
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "findings.0.group")), -1);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "notes")), 2);
	md_node_destroy(doc);
	free(json);

	/* the document owns a copy: the report's allocator tree outlives it untouched */
	ck_assert_ptr_null(md_report_to_node(&r, &doc));
	md_node_destroy(doc);
	ck_assert_str_eq(md_node_get_string(md_node_path(r.allocators, "0.name")), "glibc");
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_json_nulls)
{
	struct md_report r;
	md_report_init(&r);
	r.target.pid = 1;
	md_node_destroy(r.allocators); /* as after an out-of-memory init */
	r.allocators = NULL;
	size_t len;
	char *json = md_fx_render_json(&r, &len);
	struct md_node *doc = NULL;
	ck_assert_ptr_null(md_node_parse_json(json, len, &doc));
	ck_assert_int_eq(md_node_type(md_node_get(doc, "system")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_get(doc, "cgroup")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_get(doc, "allocators")), MD_NODE_ARRAY);
	ck_assert_int_eq(md_node_type(md_node_path(doc, "target.exe")), MD_NODE_NULL);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "regions")), 0);
	md_node_destroy(doc);
	free(json);

	/* an unlimited cgroup: no number pretending to be a limit */
	r.cgroup.valid = true;
	r.cgroup.version = 1;
	r.cgroup.limit_bytes = UINT64_MAX;
	r.cgroup.usage_bytes = 5 * MiB;
	json = md_fx_render_json(&r, &len);
	ck_assert_ptr_null(md_node_parse_json(json, len, &doc));
	ck_assert_int_eq(md_node_type(md_node_path(doc, "cgroup.limit_bytes")), MD_NODE_NULL);
	ck_assert(md_node_get_bool(md_node_path(doc, "cgroup.unlimited")));
	ck_assert_int_eq(md_node_type(md_node_path(doc, "cgroup.path")), MD_NODE_NULL);
	md_node_destroy(doc);
	free(json);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_format_bytes)
{
	static const struct {
		uint64_t bytes;
		const char *text;
	} cases[] = {
		{ 0, "0 B" },
		{ 512, "512 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.00 KiB" },
		{ 12 * KiB, "12.0 KiB" },
		{ 210 * MiB, "210 MiB" },
		{ 3 * GiB / 2, "1.50 GiB" },
		{ 10 * KiB - 1, "10.0 KiB" },  /* 9.999 rounds to 10.0, not "10.00" */
		{ 100 * KiB - 1, "100 KiB" },
		{ 1024 * KiB - 1, "1.00 MiB" }, /* not "1024 KiB" */
		{ 1023 * KiB, "1023 KiB" },
		{ UINT64_MAX, "16.0 EiB" },
	};
	char buf[16];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(md_format_bytes(cases[i].bytes, buf, sizeof(buf)), cases[i].text);
}
END_TEST

START_TEST(test_class_names)
{
	const char *names[] = { "live", "free", "metadata", "stack", "file", "shared", "anon_other" };
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		ck_assert_str_eq(md_class_name((enum md_class)c), names[c]);
	ck_assert_str_eq(md_class_name(MD_CLASS_COUNT), "unknown");
}
END_TEST


/* ---- the gap and the advice ---- */

START_TEST(test_gap_arithmetic)
{
	struct md_report r;
	md_fx_build_report(&r);
	struct md_gap g;
	ck_assert_ptr_null(md_gap_compute(&r, &g));
	ck_assert(g.live_from_allocators);
	ck_assert_uint_eq(g.live_heap_bytes, 795 * MiB);
	ck_assert_uint_eq(g.gap_bytes, r.memory.rss_bytes - 795 * MiB);
	/* the terms add up to the gap */
	int64_t sum = (int64_t)(g.releasable_bytes + g.kept_free_bytes + g.pinned_free_bytes + g.metadata_bytes +
				g.outside_bytes) + g.live_slack_bytes;
	ck_assert_int_eq(sum, (int64_t)g.gap_bytes);
	ck_assert_uint_eq(g.releasable_bytes, 101 * MiB);
	ck_assert_uint_eq(g.releasable_bytes + g.kept_free_bytes, r.classes[MD_CLASS_FREE]);
	ck_assert_uint_eq(g.pinned_free_bytes, 15360000 + 16080000 + 6000 * 400 + 4496 * 399 + 5632 * 558);
	/* rows: one per region, ranked by gap */
	ck_assert_uint_eq(g.n_rows, 4);
	ck_assert_str_eq(g.rows[g.rank[0]].label, "glibc main arena");
	ck_assert_str_eq(g.rows[g.rank[1]].label, "glibc arena 1 heap 1");
	ck_assert_str_eq(g.rows[g.rank[3]].label, "glibc mmapped chunk");
	ck_assert_uint_eq(g.rows[g.rank[3]].gap_bytes, 0);
	const struct md_gap_row *main_row = &g.rows[0];
	ck_assert_uint_eq(main_row->total_pages, 179200);
	ck_assert_uint_eq(main_row->releasable_bytes, 96 * MiB);
	ck_assert_uint_eq(main_row->kept_free_bytes, (30208 - 24576) * MD_PAGE_SIZE);
	ck_assert_uint_eq(main_row->gap_bytes, main_row->releasable_bytes + main_row->kept_free_bytes +
						       main_row->pinned_free_bytes + main_row->metadata_bytes);
	md_gap_deinit(&g);

	/* regions of one label are one row: two more mmapped chunks */
	const struct md_fx_run runs[] = { { MD_CELL_LIVE, 300, 0, 0 }, { MD_CELL_NONRESIDENT, 12, 0, 0 } };
	md_fx_add_alloc_region(&r, 0x7f1c3a001000, "glibc", "glibc mmapped chunk", 2, runs, 2);
	md_fx_add_alloc_region(&r, 0x7f1c3b000000, "glibc", "glibc mmapped chunk", 2, runs, 1);
	ck_assert_ptr_null(md_gap_compute(&r, &g));
	ck_assert_uint_eq(g.n_rows, 4);
	const struct md_gap_row *mm = &g.rows[3];
	ck_assert_str_eq(mm->label, "glibc mmapped chunks (3)");
	ck_assert_uint_eq(mm->n_members, 3);
	ck_assert_uint_eq(mm->total_pages, 65537 + 312 + 300);
	ck_assert_uint_eq(mm->start, 0x7f1c2a000000);
	ck_assert_uint_eq(mm->end, 0x7f1c3b000000 + 300 * MD_PAGE_SIZE);
	md_gap_deinit(&g);
	md_report_deinit(&r);
}
END_TEST

/* A small report for the advice: one allocator heap with the figures given, its standard
 * release object (a trim) and one group row per arena. */
static void advice_report(struct md_report *r, uint64_t live_pages, uint64_t free_pages, uint64_t releasable_pages,
			  uint32_t pinned_per_live_page, uint64_t live_bytes, int thread_arenas)
{
	md_report_init(r);
	r->target.pid = 7;
	struct md_node *g = md_node_object();
	ck_assert_ptr_null(md_node_append(r->allocators, g));
	ck_assert_ptr_null(md_node_set_string(g, "name", "glibc"));
	ck_assert_ptr_null(md_node_set_u64(g, "live_bytes", live_bytes));
	struct md_node *rel = md_fig_release_node("malloc_trim(0)", releasable_pages * MD_PAGE_SIZE * (uint64_t)(thread_arenas + 1));
	ck_assert_ptr_null(md_node_set(g, "release", rel));
	ck_assert_ptr_null(md_node_set_string(rel, "topic", "trim"));
	ck_assert_ptr_null(md_node_set_string(rel, "hint", "The threshold is {bytes:131072}."));
	ck_assert_ptr_null(md_node_set_string(rel, "caution", "it visits every group"));
	struct md_node *groups = md_node_array();
	ck_assert_ptr_null(md_node_set(g, "groups", groups));
	for (int i = 0; i <= thread_arenas; i++) {
		struct md_node *a = md_node_object();
		ck_assert_ptr_null(md_node_append(groups, a));
		ck_assert_ptr_null(md_node_set_u64(a, "group", (uint64_t)i));
		ck_assert_ptr_null(md_node_set(a, "name", md_node_stringf("arena %d", i)));
		ck_assert_ptr_null(md_node_set_string(a, "state", "ok"));
	}
	/* the main arena gets the given figures, each thread arena a copy of them */
	for (int i = 0; i <= thread_arenas; i++) {
		const struct md_fx_run runs[] = {
			{ MD_CELL_LIVE, live_pages, 0, pinned_per_live_page },
			{ MD_CELL_FREE, free_pages, releasable_pages, 0 },
			{ MD_CELL_METADATA, 1, 0, 0 },
		};
		char label[64];
		snprintf(label, sizeof(label), i ? "glibc arena %d heap 0" : "glibc main arena", i);
		md_fx_add_alloc_region(r, 0x10000000ULL * (uint64_t)(i + 1), "glibc", label, i, runs, 3);
		r->classes[MD_CLASS_LIVE] += live_pages * MD_PAGE_SIZE;
		r->classes[MD_CLASS_FREE] += free_pages * MD_PAGE_SIZE;
		r->classes[MD_CLASS_METADATA] += MD_PAGE_SIZE;
	}
	r->classes[MD_CLASS_FILE] = 2 * MiB;
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		r->memory.rss_bytes += r->classes[c];
}

static char *topics(const struct md_report *r)
{
	struct md_gap g;
	ck_assert_ptr_null(md_gap_compute(r, &g));
	struct md_advice *a = NULL;
	size_t n = 0;
	ck_assert_ptr_null(md_advice_build(r, &g, &a, &n));
	char *list = calloc(1, 512);
	for (size_t i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(a[i].text);
		ck_assert_uint_gt(strlen(a[i].text), 20);
		strcat(list, i ? " " : "");
		strcat(list, a[i].topic);
	}
	md_advice_free(a, n);
	md_gap_deinit(&g);
	return list;
}

START_TEST(test_advice_figures)
{
	struct md_report r;
	char *t;
	/* 40 MiB live, 1 MiB free: nothing to do */
	advice_report(&r, 10240, 256, 256, 0, 40 * MiB - 64 * KiB, 0);
	ck_assert_str_eq((t = topics(&r)), "nothing");
	free(t);
	md_report_deinit(&r);

	/* 40 MiB live, 24 MiB free and releasable: trim, with the plugin's hint expanded */
	advice_report(&r, 10240, 6144, 6144, 0, 40 * MiB - 64 * KiB, 0);
	ck_assert_str_eq((t = topics(&r)), "trim");
	free(t);
	{
		struct md_gap g;
		struct md_advice *a;
		size_t n;
		ck_assert_ptr_null(md_gap_compute(&r, &g));
		ck_assert_ptr_null(md_advice_build(&r, &g, &a, &n));
		ck_assert_msg(strstr(a[0].text, "Trim: malloc_trim(0) would return 24.0 MiB to the kernel now (36.4% of RSS); "
							"the most in glibc main arena"), "%s", a[0].text);
		ck_assert_ptr_nonnull(strstr(a[0].text, ". The threshold is 128 KiB."));
		md_advice_free(a, n);
		md_gap_deinit(&g);
	}
	/* the plugin's own items: given only when their figure passes both thresholds */
	struct md_node *g0 = md_node_at(r.allocators, 0);
	ck_assert_ptr_null(md_fig_advise(g0, "trim-threshold", 24 * MiB, 1 * MiB, 20, "Lower it: {bytes:25165824} ({share})."));
	ck_assert_ptr_null(md_fig_advise(g0, "small", 512 * KiB, 1 * MiB, 0, "Too small in bytes: {share}."));
	ck_assert_ptr_null(md_fig_advise(g0, "share", 2 * MiB, 1 * MiB, 500, "Too small a share of RSS."));
	ck_assert_str_eq((t = topics(&r)), "trim trim-threshold");
	free(t);
	{
		struct md_gap g;
		struct md_advice *a;
		size_t n;
		ck_assert_ptr_null(md_gap_compute(&r, &g));
		ck_assert_ptr_null(md_advice_build(&r, &g, &a, &n));
		ck_assert_str_eq(a[1].text, "Lower it: 24.0 MiB (36.4%).");
		md_advice_free(a, n);
		md_gap_deinit(&g);
	}
	/* a corrupt group: no release advice but the plugin's caution */
	ck_assert_ptr_null(md_node_set_string(md_node_path(r.allocators, "0.groups.0"), "state", "corrupt"));
	ck_assert_str_eq((t = topics(&r)), "trim-unsafe trim-threshold");
	free(t);
	md_report_deinit(&r);

	/* half of every live page is free bytes: fragmentation, and with it more kept than used */
	advice_report(&r, 10240, 128, 0, 2048, 20 * MiB, 0);
	ck_assert_str_eq((t = topics(&r)), "fragmentation watch");
	free(t);
	md_report_deinit(&r);

	/* four arenas, each with 6 MiB free that trim would release: trim and the plugin's item on
	 * the thread arenas' 18 MiB (at least 10% of RSS asked) */
	advice_report(&r, 5120, 1536, 1536, 0, 80 * MiB - 256 * KiB, 3);
	ck_assert_ptr_null(md_fig_advise(md_node_at(r.allocators, 0), "arenas", 18 * MiB, 2 * MiB, 100, "Cap them: {bytes:18874368} ({share} of RSS)."));
	ck_assert_str_eq((t = topics(&r)), "trim arenas");
	free(t);

	/* a cgroup at 95% of its limit with this process a small part of it */
	r.cgroup.valid = true;
	r.cgroup.limit_bytes = 1 * GiB;
	r.cgroup.usage_bytes = 1 * GiB - 40 * MiB;
	ck_assert_str_eq((t = topics(&r)), "trim arenas container");
	free(t);
	/* the machine short of memory; a partial analysis comes first */
	r.system.valid = true;
	r.system.mem_total_bytes = 16 * GiB;
	r.system.mem_available_bytes = 1 * GiB;
	r.partial = true;
	ck_assert_str_eq((t = topics(&r)), "partial trim arenas container system");
	free(t);
	md_report_deinit(&r);

	/* another allocator's release object, without regions: its own figure and hint */
	md_report_init(&r);
	struct md_node *j = md_node_object();
	ck_assert_ptr_null(md_node_append(r.allocators, j));
	ck_assert_ptr_null(md_node_set_string(j, "name", "jemalloc"));
	ck_assert_ptr_null(md_node_set_u64(j, "live_bytes", 30 * MiB));
	struct md_node *rel = md_fig_release_node("arena.<all>.purge", 12 * MiB);
	ck_assert_ptr_null(md_node_set(j, "release", rel));
	ck_assert_ptr_null(md_node_set_string(rel, "topic", "purge"));
	ck_assert_ptr_null(md_node_set_string(rel, "hint", "Of that, {bytes:12582912} is in dirty pages."));
	r.classes[MD_CLASS_LIVE] = 31 * MiB;
	r.classes[MD_CLASS_FREE] = 12 * MiB;
	r.memory.rss_bytes = 43 * MiB;
	ck_assert_str_eq((t = topics(&r)), "purge");
	free(t);
	struct md_gap g;
	struct md_advice *a;
	size_t n;
	ck_assert_ptr_null(md_gap_compute(&r, &g));
	ck_assert_ptr_null(md_advice_build(&r, &g, &a, &n));
	ck_assert_str_eq(a[0].text, "Purge: arena.<all>.purge would return 12.0 MiB to the kernel now (27.9% of RSS). "
				    "Of that, 12.0 MiB is in dirty pages.");
	md_advice_free(a, n);
	md_gap_deinit(&g);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_histogram_shapes)
{
	struct md_node *o = md_node_object();
	struct md_hist_row *rows;
	size_t n;
	ck_assert_ptr_null(md_histogram_rows(o, &rows, &n));
	ck_assert_uint_eq(n, 0);
	/* the standard rows: an exact size class, a range, a row that is not an object */
	struct md_node *h = md_node_array();
	ck_assert_ptr_null(md_node_set(o, "histogram", h));
	ck_assert_ptr_null(md_node_append(h, md_fig_hist_row(48, 48, 100, 4800, 28, 28 * 48)));
	ck_assert_ptr_null(md_node_append(h, md_fig_hist_row(49, 96, 3, 200, 0, 0)));
	ck_assert_ptr_null(md_node_append(h, md_node_string("junk")));
	ck_assert_ptr_null(md_histogram_rows(o, &rows, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(rows[0].size_from, 48);
	ck_assert_uint_eq(rows[0].live_bytes, 4800);
	ck_assert_uint_eq(rows[0].free_count, 28);
	ck_assert_uint_eq(rows[1].size_to, 96);
	free(rows);
	md_node_destroy(o);
	o = md_node_object();
	/* a range upside down is skipped */
	h = md_node_array();
	ck_assert_ptr_null(md_node_set(o, "histogram", h));
	struct md_node *e = md_node_object();
	ck_assert_ptr_null(md_node_append(h, e));
	ck_assert_ptr_null(md_node_set_u64(e, "size_from", 100));
	ck_assert_ptr_null(md_node_set_u64(e, "size_to", 50));
	ck_assert_ptr_null(md_histogram_rows(o, &rows, &n));
	ck_assert_uint_eq(n, 0);
	md_node_destroy(o);
}
END_TEST

START_TEST(test_json_alloc_regions)
{
	struct md_report r;
	md_fx_build_report(&r);
	size_t len;
	char *json = md_fx_render_json(&r, &len);
	struct md_node *doc = NULL;
	ck_assert_ptr_null(md_node_parse_json(json, len, &doc));
	const struct md_node *ars = md_node_get(doc, "alloc_regions");
	ck_assert_uint_eq(md_node_count(ars), 4);
	ck_assert_str_eq(md_node_get_string(md_node_path(ars, "0.label")), "glibc main arena");
	ck_assert_str_eq(md_node_get_string(md_node_path(ars, "0.start")), "0x55d4c5b1e000");
	ck_assert_uint_eq(md_node_get_u64(md_node_path(ars, "0.pages.live")), 133120);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(ars, "0.releasable_bytes")), 96 * MiB);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(ars, "0.pages_per_cell")), 350);
	for (size_t i = 0; i < md_node_count(ars); i++) {
		const struct md_node *ar = md_node_at(ars, i);
		const struct md_node *cells = md_node_get(ar, "cells");
		ck_assert_uint_eq(md_node_count(cells), r.alloc_regions[i].n_cells);
		uint64_t pages[MD_CELL_PART_COUNT] = { 0 }, pinned = 0;
		for (size_t k = 0; k < md_node_count(cells); k++) {
			const struct md_node *c = md_node_at(cells, k);
			ck_assert_uint_eq(md_node_count(c), MD_CELL_PART_COUNT + 2);
			for (int p = 0; p < MD_CELL_PART_COUNT; p++)
				pages[p] += md_node_get_u64(md_node_at(c, (size_t)p));
			pinned += md_node_get_u64(md_node_at(c, MD_CELL_PART_COUNT + 1));
		}
		static const char *const parts[] = { "live", "free", "metadata", "nonresident", "other" };
		for (int p = 0; p < MD_CELL_PART_COUNT; p++)
			ck_assert_uint_eq(pages[p], md_node_get_u64(md_node_get(md_node_get(ar, "pages"), parts[p])));
		ck_assert_uint_eq(pinned, md_node_get_u64(md_node_get(ar, "pinned_free_bytes")));
	}
	md_node_destroy(doc);
	free(json);
	md_report_deinit(&r);
}
END_TEST

/* ---- OpenMetrics ---- */

static bool metric_name_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
		      (i && c >= '0' && c <= '9')))
			return false;
	}
	return n > 0;
}

START_TEST(test_openmetrics)
{
	struct md_report r;
	md_fx_build_report(&r);
	r.target.comm[0] = 0;
	snprintf(r.target.comm, sizeof(r.target.comm), "we\"ird\\svc");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_null(md_render_openmetrics(&r, f));
	fclose(f);
	ck_assert(len > 7 && strcmp(buf + len - 6, "# EOF\n") == 0);
	ck_assert_ptr_null(strstr(buf, "# EOF\n#")); /* nothing after EOF */
	/* every family has TYPE before its samples and appears once; samples are name{labels} value */
	char families[64][80];
	size_t n_fam = 0;
	uint64_t class_sum = 0, rss = 0, gap = 0;
	int64_t parts = 0;
	for (char *line = buf; *line;) {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = 0;
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char *name = line + 7, *sp = strchr(name, ' ');
			ck_assert_ptr_nonnull(sp);
			ck_assert_str_eq(sp + 1, "gauge");
			ck_assert(metric_name_ok(name, (size_t)(sp - name)));
			for (size_t i = 0; i < n_fam; i++)
				ck_assert_msg(strncmp(families[i], name, (size_t)(sp - name)) != 0 ||
						      families[i][sp - name] != 0, "family %s twice", name);
			ck_assert_uint_lt(n_fam, 64);
			snprintf(families[n_fam++], sizeof(families[0]), "%.*s", (int)(sp - name), name);
		} else if (line[0] == '#') {
			ck_assert(strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# UNIT ", 7) == 0 ||
				  strcmp(line, "# EOF") == 0);
		} else {
			char *brace = strchr(line, '{');
			ck_assert_ptr_nonnull(brace);
			ck_assert(n_fam > 0);
			ck_assert_msg(strncmp(line, families[n_fam - 1], strlen(families[n_fam - 1])) == 0,
				      "sample %s outside its family %s", line, families[n_fam - 1]);
			ck_assert(metric_name_ok(line, (size_t)(brace - line)));
			/* labels: key="value" pairs with escapes, then '} ' and a number */
			char *p = brace + 1;
			for (;;) {
				char *eq = strchr(p, '=');
				ck_assert_ptr_nonnull(eq);
				ck_assert(metric_name_ok(p, (size_t)(eq - p)));
				ck_assert_int_eq(eq[1], '"');
				p = eq + 2;
				while (*p && *p != '"')
					p += *p == '\\' ? 2 : 1;
				ck_assert_int_eq(*p, '"');
				p++;
				if (*p == ',') {
					p++;
					continue;
				}
				ck_assert_int_eq(*p, '}');
				break;
			}
			ck_assert_int_eq(p[1], ' ');
			char *end;
			double v = strtod(p + 2, &end);
			ck_assert_msg(*end == 0 && end != p + 2, "bad value in %s", line);
			if (strncmp(line, "memdissect_class_bytes{", 23) == 0)
				class_sum += (uint64_t)v;
			if (strncmp(line, "memdissect_rss_bytes{", 21) == 0)
				rss = (uint64_t)v;
			if (strncmp(line, "memdissect_gap_bytes{", 21) == 0)
				gap = (uint64_t)v;
			if (strncmp(line, "memdissect_gap_part_bytes{", 26) == 0)
				parts += (int64_t)strtoll(p + 2, NULL, 10);
		}
		line = nl + 1;
	}
	ck_assert_uint_eq(rss, r.memory.rss_bytes);
	ck_assert_uint_eq(class_sum, rss);
	ck_assert_int_eq(parts, (int64_t)gap);
	*buf = 0;
	free(buf);
	/* the label escaping, seen from the raw text */
	buf = NULL;
	f = open_memstream(&buf, &len);
	ck_assert_ptr_null(md_render_openmetrics(&r, f));
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "comm=\"we\\\"ird\\\\svc\""));
	ck_assert_ptr_nonnull(strstr(buf, "memdissect_arena_releasable_bytes{pid=\"48213\",comm=\"we\\\"ird\\\\svc\","
					  "allocator=\"glibc\",arena=\"0\"} 100663296\n"));
	free(buf);
	md_report_deinit(&r);
}
END_TEST

/* ---- diff ---- */

static struct md_node *fixture_doc(uint64_t extra_live)
{
	struct md_report r;
	md_fx_build_report(&r);
	if (extra_live) {
		/* the heap mapping grows: more live pages, a new anonymous mapping */
		r.regions[4].classes[MD_CLASS_LIVE] += extra_live;
		r.regions[4].rss_bytes += extra_live;
		r.classes[MD_CLASS_LIVE] += extra_live;
		r.memory.rss_bytes += extra_live;
		r.alloc_regions[0].pages[MD_CELL_LIVE] += extra_live / MD_PAGE_SIZE;
		r.alloc_regions[0].pages[MD_CELL_NONRESIDENT] -= extra_live / MD_PAGE_SIZE;
		ck_assert_ptr_null(md_node_set_u64(md_node_at(r.allocators, 0), "live_bytes", 795 * MiB + extra_live));
	}
	struct md_node *doc;
	ck_assert_ptr_null(md_report_to_node(&r, &doc));
	md_report_deinit(&r);
	return doc;
}

START_TEST(test_diff)
{
	struct md_node *a = fixture_doc(0), *b = fixture_doc(10 * MiB);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct md_diff_options opts = { .width = 100, .top = 10 };
	ck_assert_ptr_null(md_diff_documents(a, b, &opts, f));
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "RSS +10.0 MiB, live heap +10.0 MiB, gap 0 B"));
	ck_assert_ptr_nonnull(strstr(buf, "  live heap                     839 MiB    849 MiB    +10.0 MiB\n"));
	ck_assert_ptr_nonnull(strstr(buf, "Allocator glibc"));
	ck_assert_ptr_nonnull(strstr(buf, "Allocator glibc\n  live                          795 MiB    805 MiB    +10.0 MiB\n"));
	ck_assert_ptr_nonnull(strstr(buf, "Allocator regions that changed the most (1 of 4 changed)"));
	ck_assert_ptr_nonnull(strstr(buf, "Mappings that changed the most (1 of 26 changed)"));
	ck_assert_ptr_nonnull(strstr(buf, "    +10.0 MiB        55d4c5b1e000    639 MiB -> 649 MiB    [heap] (glibc)\n"
					  "               live +10.0 MiB\n"));
	md_fx_check_width(buf, 100);
	free(buf);
	/* the same document: nothing changed */
	buf = NULL;
	f = open_memstream(&buf, &len);
	ck_assert_ptr_null(md_diff_documents(a, a, &opts, f));
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "no byte figure changed"));
	ck_assert_ptr_nonnull(strstr(buf, "(0 of 26 changed)\n  none"));
	free(buf);
	/* --json: deltas read back */
	buf = NULL;
	f = open_memstream(&buf, &len);
	opts.json = true;
	ck_assert_ptr_null(md_diff_documents(a, b, &opts, f));
	fclose(f);
	struct md_node *d;
	ck_assert_ptr_null(md_node_parse_json(buf, len, &d));
	ck_assert_int_eq(md_node_get_i64(md_node_path(d, "delta.rss_bytes")), 10 * (int64_t)MiB);
	ck_assert_int_eq(md_node_get_i64(md_node_path(d, "delta.classes.live")), 10 * (int64_t)MiB);
	ck_assert_int_eq(md_node_get_i64(md_node_path(d, "delta.gap_bytes")), 0);
	md_node_destroy(d);
	free(buf);
	md_node_destroy(a);
	md_node_destroy(b);
}
END_TEST

START_TEST(test_diff_files)
{
	/* through the command: two files, then bad input */
	char dir[] = "/tmp/md-diff-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char pa[256], pb[256], pc[256];
	snprintf(pa, sizeof(pa), "%s/a.json", dir);
	snprintf(pb, sizeof(pb), "%s/b.json", dir);
	snprintf(pc, sizeof(pc), "%s/c.json", dir);
	struct md_node *a = fixture_doc(0), *b = fixture_doc(4 * MiB);
	FILE *f = fopen(pa, "w");
	ck_assert_ptr_null(md_node_write_json(a, f, 2));
	fclose(f);
	f = fopen(pb, "w");
	ck_assert_ptr_null(md_node_write_json(b, f, 0));
	fclose(f);
	f = fopen(pc, "w");
	fputs("{\"hello\": 1}", f);
	fclose(f);
	char *out = NULL, *err = NULL;
	const char *args[] = { "diff", "--no-color", pa, pb, NULL };
	ck_assert_int_eq(md_test_run(args, &out, &err, 30000), 0);
	ck_assert_ptr_nonnull(strstr(out, "RSS +4.00 MiB"));
	free(out);
	free(err);
	const char *bad[] = { "diff", pa, pc, NULL };
	ck_assert_int_eq(md_test_run(bad, &out, &err, 30000), 7);
	ck_assert_ptr_nonnull(strstr(err, "not a memdissect report"));
	free(out);
	free(err);
	const char *missing[] = { "diff", pa, NULL };
	ck_assert_int_eq(md_test_run(missing, &out, &err, 30000), 2);
	free(out);
	free(err);
	unlink(pa);
	unlink(pb);
	unlink(pc);
	rmdir(dir);
	md_node_destroy(a);
	md_node_destroy(b);
}
END_TEST

Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("render");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_text_golden);
	tcase_add_test(tc, test_mask);
	tcase_add_test(tc, test_gap_arithmetic);
	tcase_add_test(tc, test_advice_figures);
	tcase_add_test(tc, test_histogram_shapes);
	tcase_add_test(tc, test_json_alloc_regions);
	tcase_add_test(tc, test_openmetrics);
	tcase_add_test(tc, test_diff);
	tcase_add_test(tc, test_diff_files);
	tcase_add_test(tc, test_text_content);
	tcase_add_test(tc, test_text_widths_and_limits);
	tcase_add_test(tc, test_text_empty_report);
	tcase_add_test(tc, test_text_allocator_defensive);
	tcase_add_test(tc, test_json_document);
	tcase_add_test(tc, test_json_nulls);
	tcase_add_test(tc, test_format_bytes);
	tcase_add_test(tc, test_class_names);
	suite_add_tcase(s, tc);
	return s;
}
