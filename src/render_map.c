/* The drainability map: each allocator region as a row of cells, each cell a fixed number of
 * pages, its glyph (and colour) telling what most of those pages are: live data, free bytes
 * pinned on live pages, free memory the release call would give back now, free memory kept out of
 * its reach, metadata, pages not resident. The classifier gives up to 512 cells per region; the
 * screen wants another scale, so cells are re-binned here, proportionally, in page units.
 * The summary (default) gives each region one row scaled to the width; the full map (--map)
 * uses one scale for every region, wrapping long regions over several lines. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define SUMMARY_ROWS 12
#define FULL_MAX_LINES 256
#define LABEL_MAX 28

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"

static const struct {
	char ch;
	const char *color;
	const char *name;
} glyphs[MD_GLYPH_COUNT] = {
	[MD_GLYPH_EMPTY] = { ' ', "", "" },
	[MD_GLYPH_LIVE] = { '#', "\033[32m", "live" },
	[MD_GLYPH_PINNED] = { '%', "\033[35m", "free, pinned on live pages" },
	[MD_GLYPH_RELEASABLE] = { 'o', "\033[33m", "free, releasable now" },
	[MD_GLYPH_KEPT] = { '*', "\033[93m", "free, kept" },
	[MD_GLYPH_METADATA] = { 'M', "\033[31m", "metadata" },
	[MD_GLYPH_OTHER] = { '?', "\033[90m", "other" },
	[MD_GLYPH_NONRESIDENT] = { '.', "\033[2m", "not resident" },
};

char md_glyph_char(enum md_glyph g)
{
	return (unsigned)g < MD_GLYPH_COUNT ? glyphs[g].ch : ' ';
}

const char *md_glyph_color(enum md_glyph g)
{
	return (unsigned)g < MD_GLYPH_COUNT ? glyphs[g].color : "";
}

const char *md_glyph_name(enum md_glyph g)
{
	return (unsigned)g < MD_GLYPH_COUNT ? glyphs[g].name : "";
}

enum md_glyph md_map_glyph(const struct md_map_bin *bin)
{
	double live = bin->pages[MD_CELL_LIVE];
	double pinned = bin->pinned_free_bytes / (double)MD_PAGE_SIZE;
	if (pinned > live)
		pinned = live;
	double fr = bin->pages[MD_CELL_FREE];
	double rel = bin->releasable_pages < fr ? bin->releasable_pages : fr;
	double w[MD_GLYPH_COUNT] = { 0 };
	w[MD_GLYPH_LIVE] = live - pinned;
	w[MD_GLYPH_PINNED] = pinned;
	w[MD_GLYPH_RELEASABLE] = rel;
	w[MD_GLYPH_KEPT] = fr - rel;
	w[MD_GLYPH_METADATA] = bin->pages[MD_CELL_METADATA];
	w[MD_GLYPH_OTHER] = bin->pages[MD_CELL_OTHER];
	w[MD_GLYPH_NONRESIDENT] = bin->pages[MD_CELL_NONRESIDENT];
	/* Ties go to the earlier glyph: live before free before not resident. A tiny epsilon keeps
	 * rounding noise of the re-binning from deciding. */
	enum md_glyph best = MD_GLYPH_EMPTY;
	double best_w = 1e-9;
	for (int g = MD_GLYPH_LIVE; g < MD_GLYPH_COUNT; g++) {
		if (w[g] > best_w + 1e-9) {
			best = (enum md_glyph)g;
			best_w = w[g];
		}
	}
	return best;
}

static uint64_t cell_len(const struct md_map_cell *c)
{
	uint64_t n = 0;
	for (int p = 0; p < MD_CELL_PART_COUNT; p++)
		n += c->pages[p];
	return n;
}

static uint64_t region_len(const struct md_alloc_region *ar)
{
	uint64_t n = 0;
	for (int p = 0; p < MD_CELL_PART_COUNT; p++)
		n += ar->pages[p];
	return n;
}

void md_map_rebin(const struct md_report *r, const struct md_gap_row *row, uint64_t from,
		  uint64_t pages_per_bin, size_t n, struct md_map_bin *out)
{
	memset(out, 0, n * sizeof(*out));
	if (!pages_per_bin || !n)
		return;
	uint64_t to = from + pages_per_bin * (uint64_t)n;
	uint64_t base = 0;
	for (size_t mi = 0; mi < row->n_members && base < to; mi++) {
		if (row->members[mi] >= r->n_alloc_regions)
			continue;
		const struct md_alloc_region *ar = &r->alloc_regions[row->members[mi]];
		uint64_t len = region_len(ar);
		if (base + len <= from || !ar->cells) {
			base += len;
			continue;
		}
		uint64_t c0 = base;
		for (size_t ci = 0; ci < ar->n_cells && c0 < to; ci++) {
			const struct md_map_cell *cell = &ar->cells[ci];
			uint64_t cl = cell_len(cell);
			uint64_t c1 = c0 + cl;
			if (!cl || c1 <= from) {
				c0 = c1;
				continue;
			}
			uint64_t lo = c0 > from ? c0 : from;
			while (lo < c1 && lo < to) {
				size_t k = (size_t)((lo - from) / pages_per_bin);
				uint64_t bin_end = from + (k + 1) * pages_per_bin;
				uint64_t hi = c1 < bin_end ? c1 : bin_end;
				double f = (double)(hi - lo) / (double)cl;
				struct md_map_bin *b = &out[k];
				for (int p = 0; p < MD_CELL_PART_COUNT; p++)
					b->pages[p] += f * cell->pages[p];
				b->releasable_pages += f * cell->releasable_pages;
				b->pinned_free_bytes += f * (double)cell->pinned_free_bytes;
				lo = hi;
			}
			c0 = c1;
		}
		base += len;
	}
}

/* ---- terminal ---- */

struct out {
	FILE *f;
	bool color;
	int width;
};

/* "7.88M": human units without the space and the "iB", at most 5 characters. */
static const char *compact(uint64_t bytes, char *buf, size_t len)
{
	char tmp[32];
	md_format_bytes(bytes, tmp, sizeof(tmp));
	char *sp = strchr(tmp, ' ');
	if (sp) {
		sp[0] = sp[1];
		sp[1] = '\0';
	}
	size_t l = strlen(tmp);
	if (l >= len)
		l = len - 1;
	memcpy(buf, tmp, l);
	buf[l] = 0;
	return buf;
}

/* Cells of bins, colour changes only where the glyph changes. */
static void print_cells(const struct out *o, const struct md_map_bin *bins, size_t n)
{
	enum md_glyph cur = MD_GLYPH_EMPTY;
	bool open = false;
	size_t last = n;
	while (last > 0 && md_map_glyph(&bins[last - 1]) == MD_GLYPH_EMPTY)
		last--;
	for (size_t i = 0; i < last; i++) {
		enum md_glyph g = md_map_glyph(&bins[i]);
		if (o->color && (g != cur || !open)) {
			if (open)
				fputs(ANSI_RESET, o->f);
			fputs(md_glyph_color(g), o->f);
			open = md_glyph_color(g)[0] != 0;
			cur = g;
		}
		fputc(md_glyph_char(g), o->f);
	}
	if (open)
		fputs(ANSI_RESET, o->f);
}

/* The legend, wrapped at the width: "# live  % free, pinned on live pages  ..." */
static void legend(const struct out *o)
{
	int pos = 2;
	fputs("  ", o->f);
	for (int g = MD_GLYPH_LIVE; g < MD_GLYPH_COUNT; g++) {
		int len = 1 + 1 + (int)strlen(md_glyph_name((enum md_glyph)g));
		if (pos > 2 && pos + 2 + len > o->width) {
			fputs("\n  ", o->f);
			pos = 2;
		} else if (pos > 2) {
			fputs("  ", o->f);
			pos += 2;
		}
		if (o->color)
			fprintf(o->f, "%s%c%s %s", md_glyph_color((enum md_glyph)g),
				md_glyph_char((enum md_glyph)g), ANSI_RESET, md_glyph_name((enum md_glyph)g));
		else
			fprintf(o->f, "%c %s", md_glyph_char((enum md_glyph)g), md_glyph_name((enum md_glyph)g));
		pos += len;
	}
	fputc('\n', o->f);
}

static int addr_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

static void render_summary(const struct out *o, const struct md_report *r, const struct md_gap *g)
{
	size_t n = g->n_rows < SUMMARY_ROWS ? g->n_rows : SUMMARY_ROWS;
	size_t *pick = malloc((n ? n : 1) * sizeof(*pick));
	if (!pick)
		return;
	/* the regions with the largest gap, shown in address order (rows are in address order) */
	for (size_t i = 0; i < n; i++)
		pick[i] = g->rank[i];
	qsort(pick, n, sizeof(*pick), addr_cmp);

	int label_w = 6;
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(g->rows[pick[i]].label);
		label_w = l > label_w ? l : label_w;
	}
	if (label_w > LABEL_MAX)
		label_w = LABEL_MAX;
	int bar_w = o->width - (2 + label_w + 2 + 6 + 2 + 6 + 2);
	if (bar_w < 8)
		bar_w = 8;
	fprintf(o->f, "  %-*s  %6s  %6s  %s\n", label_w, "region", "span", "cell", "map");
	struct md_map_bin *bins = calloc((size_t)bar_w, sizeof(*bins));
	char b1[16], b2[16];
	for (size_t i = 0; bins && i < n; i++) {
		const struct md_gap_row *row = &g->rows[pick[i]];
		uint64_t total = row->total_pages ? row->total_pages : 1;
		uint64_t ppb = (total + (uint64_t)bar_w - 1) / (uint64_t)bar_w;
		size_t cells = (size_t)((total + ppb - 1) / ppb);
		md_map_rebin(r, row, 0, ppb, cells, bins);
		fprintf(o->f, "  %-*.*s  %6s  %6s  ", label_w, label_w, row->label,
			compact(row->total_pages * MD_PAGE_SIZE, b1, sizeof(b1)),
			compact(ppb * MD_PAGE_SIZE, b2, sizeof(b2)));
		print_cells(o, bins, cells);
		fputc('\n', o->f);
	}
	free(bins);
	if (g->n_rows > n) {
		uint64_t rest = 0;
		for (size_t i = n; i < g->n_rows; i++)
			rest += g->rows[g->rank[i]].gap_bytes;
		fprintf(o->f, "  ... %zu more region%s with %s of gap (--map shows every region)\n",
			g->n_rows - n, g->n_rows - n == 1 ? "" : "s", md_format_bytes(rest, b1, sizeof(b1)));
	}
	free(pick);
}

/* The address of page `page` of a row (its members end to end). */
static uint64_t row_page_address(const struct md_report *r, const struct md_gap_row *row, uint64_t page)
{
	uint64_t base = 0;
	for (size_t mi = 0; mi < row->n_members; mi++) {
		if (row->members[mi] >= r->n_alloc_regions)
			continue;
		const struct md_alloc_region *ar = &r->alloc_regions[row->members[mi]];
		uint64_t len = region_len(ar);
		if (page < base + len)
			return MD_PAGE_DOWN(ar->start) + (page - base) * MD_PAGE_SIZE;
		base += len;
	}
	return row->end;
}

static uint64_t full_lines(const struct md_gap *g, uint64_t scale, uint64_t per_line)
{
	uint64_t lines = 0;
	for (size_t i = 0; i < g->n_rows; i++) {
		uint64_t cells = (g->rows[i].total_pages + scale - 1) / scale;
		lines += 1 + (cells + per_line - 1) / per_line;
	}
	return lines;
}

static void render_full(const struct out *o, const struct md_report *r, const struct md_gap *g,
			uint64_t scale, int per_line)
{
	struct md_map_bin *bins = calloc((size_t)per_line, sizeof(*bins));
	if (!bins)
		return;
	char b1[32], b2[32], b3[32], b4[32];
	for (size_t i = 0; i < g->n_rows; i++) {
		const struct md_gap_row *row = &g->rows[i];
		/* "label  [range)" then the figures, on the same line when they fit */
		char head[256], figs[256];
		int hl = snprintf(head, sizeof(head), "%s  [%" PRIx64 "-%" PRIx64 ")", row->label, row->start, row->end);
		int fl = snprintf(figs, sizeof(figs), "%s, resident %s, gap %s",
				  md_format_bytes(row->total_pages * MD_PAGE_SIZE, b1, sizeof(b1)),
				  md_format_bytes(row->resident_bytes, b2, sizeof(b2)),
				  md_format_bytes(row->gap_bytes, b3, sizeof(b3)));
		char rel[64] = "";
		if (row->releasable_bytes)
			snprintf(rel, sizeof(rel), ", releasable %s", md_format_bytes(row->releasable_bytes, b4, sizeof(b4)));
		if (4 + fl + (int)strlen(rel) <= o->width && fl > 0 && (size_t)fl < sizeof(figs))
			fl += snprintf(figs + fl, sizeof(figs) - (size_t)fl, "%s", rel);
		fprintf(o->f, "  %s%s%s", o->color ? ANSI_BOLD : "", head, o->color ? ANSI_RESET : "");
		if (2 + hl + 2 + fl <= o->width)
			fprintf(o->f, "  %s\n", figs);
		else
			fprintf(o->f, "\n    %s\n", figs);
		uint64_t cells = (row->total_pages + scale - 1) / scale;
		for (uint64_t c = 0; c < cells; c += (uint64_t)per_line) {
			size_t k = (size_t)(cells - c < (uint64_t)per_line ? cells - c : (uint64_t)per_line);
			md_map_rebin(r, row, c * scale, scale, k, bins);
			fprintf(o->f, "    %12" PRIx64 " ", row_page_address(r, row, c * scale));
			print_cells(o, bins, k);
			fputc('\n', o->f);
		}
	}
	free(bins);
}

void md_render_map_text(const struct md_report *r, const struct md_gap *g,
			const struct md_map_text_options *opts, FILE *f)
{
	struct out o = { .f = f, .color = opts->color, .width = opts->width > 0 ? opts->width : 100 };
	if (o.width < 60)
		o.width = 60;
	const char *bold = o.color ? ANSI_BOLD : "", *reset = o.color ? ANSI_RESET : "";
	if (!g->n_rows) {
		fprintf(f, "\n%sDrainability map%s\n  no allocator region was described (no allocator "
			"walked, or the classifier gave no regions)\n", bold, reset);
		return;
	}
	if (!opts->full) {
		fprintf(f, "\n%sDrainability map%s%s\n", bold, reset,
			o.width >= 82 ? " (summary: each region scaled to one row; --map for the full map)"
				      : " (summary; --map: full map)");
		legend(&o);
		render_summary(&o, r, g);
		return;
	}
	int per_line = o.width - 17;
	uint64_t scale = 1;
	while (full_lines(g, scale, (uint64_t)per_line) > FULL_MAX_LINES && scale < (1ULL << 40))
		scale *= 2;
	char b1[32];
	fprintf(f, "\n%sDrainability map%s: 1 cell = %" PRIu64 " page%s (%s)%s\n", bold, reset, scale,
		scale == 1 ? "" : "s", md_format_bytes(scale * MD_PAGE_SIZE, b1, sizeof(b1)),
		o.width >= 90 ? ", every region in address order" : "");
	legend(&o);
	render_full(&o, r, g, scale, per_line);
}
