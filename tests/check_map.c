/* The drainability map: re-binning keeps every page, the glyph says what most of a cell is, the
 * summary and the full map hold the terminal's width, and on a live glibc target (the demo's
 * fragmented multi-arena heap) the map shows every arena and the JSON regions add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "render_fixture.h"
#include "tests.h"

static void sum_bins(const struct md_map_bin *b, size_t n, double parts[MD_CELL_PART_COUNT], double *rel,
		     double *pinned)
{
	memset(parts, 0, MD_CELL_PART_COUNT * sizeof(double));
	*rel = *pinned = 0;
	for (size_t i = 0; i < n; i++) {
		for (int p = 0; p < MD_CELL_PART_COUNT; p++)
			parts[p] += b[i].pages[p];
		*rel += b[i].releasable_pages;
		*pinned += b[i].pinned_free_bytes;
	}
}

START_TEST(test_rebin_keeps_pages)
{
	struct md_report r;
	md_fx_build_report(&r);
	struct md_gap g;
	ck_assert_ptr_null(md_gap_compute(&r, &g));
	/* scales finer and coarser than the classifier's cells, and windows that cut cells */
	const uint64_t scales[] = { 1, 7, 64, 350, 351, 1000, 179200 };
	for (size_t ri = 0; ri < g.n_rows; ri++) {
		const struct md_gap_row *row = &g.rows[ri];
		for (size_t si = 0; si < sizeof(scales) / sizeof(scales[0]); si++) {
			uint64_t ppb = scales[si];
			size_t n = (size_t)((row->total_pages + ppb - 1) / ppb);
			struct md_map_bin *bins = calloc(n, sizeof(*bins));
			md_map_rebin(&r, row, 0, ppb, n, bins);
			double parts[MD_CELL_PART_COUNT], rel, pinned;
			sum_bins(bins, n, parts, &rel, &pinned);
			for (int p = 0; p < MD_CELL_PART_COUNT; p++)
				ck_assert_double_eq_tol(parts[p], (double)row->pages[p], 1e-6 * (double)row->total_pages + 1e-6);
			ck_assert_double_eq_tol(rel * MD_PAGE_SIZE, (double)row->releasable_bytes, 1.0);
			ck_assert_double_eq_tol(pinned, (double)row->pinned_free_bytes, 1.0);
			/* every bin but the last is full */
			for (size_t k = 0; k + 1 < n; k++) {
				double pages = 0;
				for (int p = 0; p < MD_CELL_PART_COUNT; p++)
					pages += bins[k].pages[p];
				ck_assert_double_eq_tol(pages, (double)ppb, 1e-6);
			}
			free(bins);
		}
		/* a window in the middle: the two halves add up to the whole */
		uint64_t half = row->total_pages / 2;
		struct md_map_bin a, b;
		md_map_rebin(&r, row, 0, half, 1, &a);
		md_map_rebin(&r, row, half, row->total_pages - half, 1, &b);
		ck_assert_double_eq_tol(a.pages[MD_CELL_LIVE] + b.pages[MD_CELL_LIVE], (double)row->pages[MD_CELL_LIVE], 1e-6);
	}
	/* past the end: empty */
	struct md_map_bin past;
	md_map_rebin(&r, &g.rows[0], g.rows[0].total_pages + 10, 4, 1, &past);
	ck_assert_int_eq(md_map_glyph(&past), MD_GLYPH_EMPTY);
	md_gap_deinit(&g);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_glyphs)
{
	struct md_map_bin b = { 0 };
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_EMPTY);
	b.pages[MD_CELL_LIVE] = 4;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_LIVE);
	b.pinned_free_bytes = 3 * MD_PAGE_SIZE; /* mostly free bytes on live pages */
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_PINNED);
	memset(&b, 0, sizeof(b));
	b.pages[MD_CELL_FREE] = 4;
	b.releasable_pages = 3;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_RELEASABLE);
	b.releasable_pages = 1;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_KEPT);
	memset(&b, 0, sizeof(b));
	b.pages[MD_CELL_METADATA] = 1;
	b.pages[MD_CELL_NONRESIDENT] = 1;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_METADATA); /* a tie: the earlier glyph */
	b.pages[MD_CELL_NONRESIDENT] = 3;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_NONRESIDENT);
	b.pages[MD_CELL_OTHER] = 5;
	ck_assert_int_eq(md_map_glyph(&b), MD_GLYPH_OTHER);
	/* the characters are distinct and printable */
	for (int g1 = MD_GLYPH_LIVE; g1 < MD_GLYPH_COUNT; g1++) {
		ck_assert(md_glyph_char((enum md_glyph)g1) > ' ');
		ck_assert(md_glyph_name((enum md_glyph)g1)[0]);
		for (int g2 = g1 + 1; g2 < MD_GLYPH_COUNT; g2++)
			ck_assert_int_ne(md_glyph_char((enum md_glyph)g1), md_glyph_char((enum md_glyph)g2));
	}
}
END_TEST

static char *map_text(const struct md_report *r, int width, bool full, bool color)
{
	struct md_gap g;
	ck_assert_ptr_null(md_gap_compute(r, &g));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct md_map_text_options o = { .color = color, .width = width, .full = full };
	md_render_map_text(r, &g, &o, f);
	fclose(f);
	md_gap_deinit(&g);
	return buf;
}

START_TEST(test_map_width_and_scale)
{
	struct md_report r;
	md_fx_build_report(&r);
	const int widths[] = { 60, 80, 132, 250 };
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		for (int full = 0; full < 2; full++) {
			char *t = map_text(&r, widths[i], full, full);
			md_fx_check_width(t, widths[i]);
			/* the legend (coloured in the full map here) */
			ck_assert_ptr_nonnull(strstr(t, full ? "\033[32m#\033[0m live" : "# live"));
			ck_assert_ptr_nonnull(strstr(t, "not resident"));
			ck_assert_ptr_nonnull(strstr(t, "glibc arena 1 heap 1"));
			if (full) {
				/* one scale, a power of two pages, and a bounded number of lines */
				const char *sc = strstr(t, "1 cell = ");
				ck_assert_ptr_nonnull(sc);
				unsigned long pages = strtoul(sc + 9, NULL, 10);
				ck_assert(pages && (pages & (pages - 1)) == 0);
				size_t lines = 0;
				for (const char *p = t; *p; p++)
					lines += *p == '\n';
				ck_assert_uint_le(lines, 256 + 8);
			} else {
				ck_assert_ptr_nonnull(strstr(t, "summary"));
			}
			free(t);
		}
	}
	/* the full map scales to the terminal: a wider one needs fewer pages per cell or lines */
	char *narrow = map_text(&r, 60, true, false), *wide = map_text(&r, 250, true, false);
	unsigned long pn = strtoul(strstr(narrow, "1 cell = ") + 9, NULL, 10);
	unsigned long pw = strtoul(strstr(wide, "1 cell = ") + 9, NULL, 10);
	ck_assert_uint_le(pw, pn);
	free(narrow);
	free(wide);
	/* more regions than the summary shows: the rest is counted */
	for (int i = 0; i < 20; i++) {
		const struct md_fx_run runs[] = { { MD_CELL_LIVE, 10, 0, 0 }, { MD_CELL_FREE, 1 + (uint64_t)i, 1, 0 } };
		char label[32];
		snprintf(label, sizeof(label), "test span %d", i);
		md_fx_add_alloc_region(&r, 0x7f2000000000ULL + 0x100000ULL * (uint64_t)i, "test", label, i, runs, 2);
	}
	char *t = map_text(&r, 100, false, false);
	ck_assert_ptr_nonnull(strstr(t, "... 12 more regions with"));
	free(t);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_map_empty)
{
	struct md_report r;
	md_report_init(&r);
	char *t = map_text(&r, 100, false, false);
	ck_assert_ptr_nonnull(strstr(t, "no allocator region was described"));
	free(t);
	md_report_deinit(&r);
}
END_TEST

/* A live glibc target: the demo (main arena, three thread arenas, two mmapped chunks). */
START_TEST(test_map_live_demo)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "demo", NULL));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	const char *args[] = { "attach", "--map", "--no-color", pid, NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 120000 : 60000);
	ck_assert_msg(status == 0, "status %d: %s", status, err);
	ck_assert_ptr_nonnull(strstr(out, "Drainability map: 1 cell = "));
	ck_assert_ptr_nonnull(strstr(out, "glibc main arena  ["));
	ck_assert_ptr_nonnull(strstr(out, "glibc mmapped chunks (2)"));
	for (int a = 1; a <= 3; a++) {
		char label[64];
		snprintf(label, sizeof(label), "glibc arena %d heap 0", a);
		ck_assert_msg(strstr(out, label), "%s missing from the map", label);
	}
	/* the demo frees every third chunk: its heap has live cells and free ones */
	const char *map = strstr(out, "Drainability map");
	ck_assert_ptr_nonnull(strchr(map, '#'));
	ck_assert_ptr_nonnull(strstr(map, "o"));
	ck_assert_ptr_nonnull(strstr(out, "by region, largest gap first"));
	ck_assert_ptr_nonnull(strstr(out, "What to do"));
	free(out);
	free(err);

	/* the regions of the JSON: pages of the cells add up to the region's, releasable pages
	 * are free pages, and the mmapped chunks are all live */
	int st;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &st);
	ck_assert_int_eq(st, 0);
	const struct md_node *ars = md_node_get(doc, "alloc_regions");
	ck_assert_uint_ge(md_node_count(ars), 6);
	uint64_t prev_start = 0;
	for (size_t i = 0; i < md_node_count(ars); i++) {
		const struct md_node *ar = md_node_at(ars, i);
		uint64_t start = md_node_get_u64(md_node_get(ar, "start"));
		uint64_t end = md_node_get_u64(md_node_get(ar, "end"));
		ck_assert_uint_ge(start, prev_start);
		prev_start = start;
		const struct md_node *cells = md_node_get(ar, "cells");
		ck_assert_uint_le(md_node_count(cells), MD_MAX_CELLS);
		uint64_t total = 0, rel = 0, fr = 0;
		for (size_t k = 0; k < md_node_count(cells); k++) {
			const struct md_node *c = md_node_at(cells, k);
			for (size_t q = 0; q < MD_CELL_PART_COUNT; q++)
				total += md_node_get_u64(md_node_at(c, q));
			rel += md_node_get_u64(md_node_at(c, MD_CELL_PART_COUNT));
			fr += md_node_get_u64(md_node_at(c, MD_CELL_FREE));
		}
		ck_assert_uint_eq(total, (MD_PAGE_UP(end) - MD_PAGE_DOWN(start)) / MD_PAGE_SIZE);
		ck_assert_uint_eq(rel * MD_PAGE_SIZE, md_node_get_u64(md_node_get(ar, "releasable_bytes")));
		ck_assert_uint_le(rel, fr);
		const char *label = md_node_get_string(md_node_get(ar, "label"));
		if (label && strcmp(label, "glibc mmapped chunk") == 0)
			ck_assert_uint_eq(md_node_get_u64(md_node_path(ar, "pages.free")), 0);
	}
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}
END_TEST

Suite *map_suite(void)
{
	Suite *s = suite_create("map");
	TCase *tc = tcase_create("map");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_rebin_keeps_pages);
	tcase_add_test(tc, test_glyphs);
	tcase_add_test(tc, test_map_width_and_scale);
	tcase_add_test(tc, test_map_empty);
	tcase_add_test(tc, test_map_live_demo);
	suite_add_tcase(s, tc);
	return s;
}
