/* The human report. It answers "where did the memory go" first: the RSS split into classes and
 * the gap between the live heap and RSS in one sentence, then the gap term by term and by
 * allocator region (gap.c), the drainability map (render_map.c); then the evidence (totals, the
 * class table, the mappings that hold the most, the system and container context, each
 * allocator's own figures with its size-class histograms, findings and notes); and it ends with
 * what to do (advice.c), where the terminal leaves the eye.
 * It reads only the report; allocator objects are read key by key and absent keys are skipped,
 * since each plugin fills its object its own way. Output depends on nothing but the report and
 * the options (no clock, no locale: numbers are formatted by hand or with plain %d/%f in C). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"
#include "memdissect/report.h"
#include "render.h"

#define DEFAULT_WIDTH 100
#define DEFAULT_TOP 15
#define MAX_FINDINGS 20
#define MAX_GROUPS 64
#define GAP_ROWS 10

#define ANSI_RESET "\033[0m"
#define ANSI_BOLD "\033[1m"
#define ANSI_DIM "\033[2m"
#define ANSI_WARN "\033[1;33m"
#define ANSI_ALERT "\033[1;31m"

/* One colour per class, the same in every section. */
static const char *const class_color[MD_CLASS_COUNT] = {
	[MD_CLASS_LIVE] = "\033[32m",
	[MD_CLASS_FREE] = "\033[33m",
	[MD_CLASS_METADATA] = "\033[31m",
	[MD_CLASS_STACK] = "\033[36m",
	[MD_CLASS_FILE] = "\033[34m",
	[MD_CLASS_SHARED] = "\033[35m",
	[MD_CLASS_ANON_OTHER] = "\033[90m",
};

/* The words of the "where did the memory go" sentence and of the class table. */
static const char *const class_label[MD_CLASS_COUNT] = {
	[MD_CLASS_LIVE] = "live heap",
	[MD_CLASS_FREE] = "retained free",
	[MD_CLASS_METADATA] = "allocator metadata",
	[MD_CLASS_STACK] = "stacks",
	[MD_CLASS_FILE] = "code and file",
	[MD_CLASS_SHARED] = "shared",
	[MD_CLASS_ANON_OTHER] = "other anonymous",
};

/* Column heads of the mapping table: at most 5 characters, to fit 6-wide columns. */
static const char *const class_short[MD_CLASS_COUNT] = {
	[MD_CLASS_LIVE] = "live",
	[MD_CLASS_FREE] = "free",
	[MD_CLASS_METADATA] = "meta",
	[MD_CLASS_STACK] = "stack",
	[MD_CLASS_FILE] = "file",
	[MD_CLASS_SHARED] = "shr",
	[MD_CLASS_ANON_OTHER] = "other",
};

struct text {
	FILE *out;
	bool color;
	int width;
};

static const char *col(const struct text *t, const char *code)
{
	return t->color ? code : "";
}

static const char *reset(const struct text *t)
{
	return t->color ? ANSI_RESET : "";
}

static void heading(const struct text *t, const char *title)
{
	fprintf(t->out, "\n%s%s%s\n", col(t, ANSI_BOLD), title, reset(t));
}

static const char *human(uint64_t bytes, char *buf, size_t len)
{
	return md_format_bytes(bytes, buf, len);
}

/* "560M", "78.0M", "1.20M": md_format_bytes without the space and the "iB", for narrow columns
 * (at most 5 characters). */
static const char *compact(uint64_t bytes, char *buf, size_t len)
{
	char tmp[32];
	md_format_bytes(bytes, tmp, sizeof(tmp));
	char *sp = strchr(tmp, ' ');
	if (!sp) {
		snprintf(buf, len, "%s", tmp);
		return buf;
	}
	/* "1.50 GiB" -> "1.50G" */
	sp[0] = sp[1];
	sp[1] = '\0';
	snprintf(buf, len, "%s", tmp);
	return buf;
}

/* Percent with one decimal, computed in integers so no rounding depends on the FPU or libc. */
static const char *percent(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	if (whole == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	unsigned __int128 tenths = ((unsigned __int128)part * 1000 + whole / 2) / whole;
	if (tenths == 0 && part) {
		snprintf(buf, len, "<0.1%%"); /* not nothing: "0.0%" would say it is */
		return buf;
	}
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%%", (uint64_t)(tenths / 10), (uint64_t)(tenths % 10));
	return buf;
}

static void spaces(FILE *out, int n)
{
	for (int i = 0; i < n; i++)
		fputc(' ', out);
}

/* A unit after a number ("3.04 MiB") stays on the number's line. */
static bool is_unit(const char *p)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t l = strlen(units[i]);
		if (strncmp(p, units[i], l) == 0 && (p[l] == 0 || strchr(" ,;:.)/", p[l])))
			return true;
	}
	return false;
}

/* The end of the word at p: up to the next space, a number's unit included. */
static const char *word_end(const char *p)
{
	const char *end = p;
	while (*end && *end != ' ')
		end++;
	if (end > p && end[-1] >= '0' && end[-1] <= '9' && end[0] == ' ' && is_unit(end + 1)) {
		end++;
		while (*end && *end != ' ')
			end++;
	}
	return end;
}

/* Print text wrapped at the width: the first line after `first` columns already used, the
 * following lines indented by `indent`. Words are split on spaces only. */
static void wrap(const struct text *t, const char *raw, int first, int indent)
{
	/* the sentences embed target-controlled names: escaped here once for every caller */
	const char *text = md_esc(raw);
	int pos = first;
	const char *p = text;
	bool line_start = true;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *end = word_end(p);
		int wlen = (int)(end - p);
		/* a word longer than a whole line (a path, a build-id) is cut where the line ends */
		if (wlen > t->width - indent) {
			if (!line_start && pos + 2 > t->width) {
				fputc('\n', t->out);
				spaces(t->out, indent);
				pos = indent;
				line_start = true;
			}
			if (!line_start) {
				fputc(' ', t->out);
				pos++;
			}
			int room = t->width - pos;
			fwrite(p, 1, (size_t)room, t->out);
			fputc('\n', t->out);
			spaces(t->out, indent);
			pos = indent;
			line_start = true;
			p += room;
			continue;
		}
		if (!line_start && pos + 1 + wlen > t->width) {
			fputc('\n', t->out);
			spaces(t->out, indent);
			pos = indent;
			line_start = true;
		}
		if (!line_start) {
			fputc(' ', t->out);
			pos++;
		}
		fwrite(p, 1, (size_t)wlen, t->out);
		pos += wlen;
		line_start = false;
		p = end;
	}
	fputc('\n', t->out);
}

static void wrapf(const struct text *t, int first, int indent, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void wrapf(const struct text *t, int first, int indent, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	wrap(t, s, first, indent);
	free(s);
}

/* A warning line: "! " then wrapped text. */
static void warning(const struct text *t, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void warning(const struct text *t, const char *code, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	fprintf(t->out, "  %s!%s ", col(t, code), reset(t));
	wrap(t, s, 4, 4);
	free(s);
}

/* ---- label/value grids ---- */

struct cell {
	char label[48];
	char value[48];
};

/* Cells in rows, as many per row as the width allows, labels and values aligned in columns. */
static void grid(const struct text *t, const struct cell *cells, size_t n, int indent,
		 int max_per_row)
{
	if (n == 0)
		return;
	int lw = 0, vw = 0;
	for (size_t i = 0; i < n; i++) {
		int l = (int)strlen(cells[i].label), v = (int)strlen(cells[i].value);
		lw = l > lw ? l : lw;
		vw = v > vw ? v : vw;
	}
	int cw = lw + 1 + vw;
	int per_row = (t->width - indent + 3) / (cw + 3);
	if (max_per_row > 0 && per_row > max_per_row)
		per_row = max_per_row;
	if (per_row < 1)
		per_row = 1;
	for (size_t i = 0; i < n; i++) {
		int c = (int)(i % (size_t)per_row);
		if (c == 0)
			spaces(t->out, indent);
		else
			spaces(t->out, 3);
		fprintf(t->out, "%-*s %*s", lw, cells[i].label, vw, cells[i].value);
		if (c == per_row - 1 || i + 1 == n)
			fputc('\n', t->out);
	}
}

static void cell_bytes(struct cell *c, const char *label, uint64_t bytes)
{
	snprintf(c->label, sizeof(c->label), "%s", label);
	md_format_bytes(bytes, c->value, sizeof(c->value));
}

/* ---- header and summary ---- */

static uint64_t class_sum(const uint64_t classes[MD_CLASS_COUNT])
{
	uint64_t s = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		s += classes[c];
	return s;
}

static void print_ms(char *buf, size_t len, double ms)
{
	if (!(ms >= 0))
		ms = 0;
	if (ms < 10)
		snprintf(buf, len, "%.3f ms", ms);
	else if (ms < 1000)
		snprintf(buf, len, "%.1f ms", ms);
	else
		snprintf(buf, len, "%.2f s", ms / 1000);
}

static void render_header(const struct text *t, const struct md_report *r)
{
	char pause[32], total[32];
	char comm[sizeof(r->target.comm) + 1];
	snprintf(comm, sizeof(comm), "%.*s", (int)sizeof(r->target.comm), r->target.comm);
	int used = fprintf(t->out, "%smemdissect: pid %" PRId32 " (%s)%s", col(t, ANSI_BOLD), r->target.pid,
			   comm[0] ? md_esc(comm) : "?", reset(t));
	if (t->color)
		used -= (int)(strlen(ANSI_BOLD) + strlen(ANSI_RESET));
	/* the executable on the same line when it fits, else on its own */
	const char *exe = r->target.exe ? md_esc(r->target.exe) : NULL;
	if (exe && used + 2 + (int)strlen(exe) <= t->width)
		fprintf(t->out, "  %s", exe);
	else if (exe)
		fprintf(t->out, "\n  %s", exe);
	fputc('\n', t->out);

	bool core = r->target.source && strcmp(r->target.source, "core") == 0;
	print_ms(pause, sizeof(pause), r->target.pause_ms);
	print_ms(total, sizeof(total), r->target.total_ms);
	char line[256], stop[96] = "", retries[48] = "";
	if (!core)
		snprintf(stop, sizeof(stop), ", stopped for %s", pause);
	if (r->target.attach_retries)
		snprintf(retries, sizeof(retries), " (%u re-stop%s)", r->target.attach_retries,
			 r->target.attach_retries == 1 ? "" : "s");
	snprintf(line, sizeof(line), "%s, %zu thread%s%s%s, analysis took %s", core ? "core file" : "live process",
		 r->target.threads, r->target.threads == 1 ? "" : "s", stop, retries, total);
	wrap(t, line, 0, 2);
	if (r->n_unanalysed) {
		char names[256] = "";
		for (size_t i = 0; i < r->n_unanalysed; i++) {
			size_t l = strlen(names);
			snprintf(names + l, sizeof(names) - l, "%s%s", i ? ", " : "", r->unanalysed[i].name);
		}
		warning(t, ANSI_ALERT,
			"partial report: %s present but not analysed (no plugin walks it); that memory "
			"shows as other anonymous (see the notes)", names);
	} else if (r->partial) {
		warning(t, ANSI_ALERT,
			"partial report: an allocator is present but could not be analysed; its memory "
			"shows as other anonymous (see the notes)");
	}
}

/* One term of a sentence: "3.04 MiB could be returned ...", skipped when zero. */
static void term(char *line, size_t len, bool *first, uint64_t bytes, const char *what)
{
	if (!bytes)
		return;
	char b[32];
	size_t l = strlen(line);
	snprintf(line + l, len - l, "%s%s %s", *first ? "" : ", ", human(bytes, b, sizeof(b)), what);
	*first = false;
}

static void render_summary(const struct text *t, const struct md_report *r, const struct md_gap *g)
{
	char b[32], b2[32];
	heading(t, "Where did the memory go?");

	/* "RSS X = a + b + ...", breaking only between terms, continuation lines under the '='. */
	human(r->memory.rss_bytes, b, sizeof(b));
	int lead = fprintf(t->out, "  RSS %s =", b);
	int cont = lead - 1; /* the '+' of a continuation line sits under the '=' */
	int pos = lead;
	bool first = true;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		if (!r->classes[c])
			continue;
		human(r->classes[c], b, sizeof(b));
		int len = (int)(strlen(class_label[c]) + 1 + strlen(b));
		int need = first ? 1 + len : 3 + len;
		if (!first && pos + need > t->width) {
			fputc('\n', t->out);
			spaces(t->out, cont);
			fputc('+', t->out);
			pos = cont + 1;
			need = 1 + len;
		} else if (!first) {
			fputs(" +", t->out);
			pos += 2;
			need -= 2;
		}
		fprintf(t->out, " %s%s%s %s", col(t, class_color[c]), class_label[c], reset(t), b);
		pos += need;
		first = false;
	}
	if (first)
		fputs(" nothing resident", t->out);
	fputc('\n', t->out);

	uint64_t sum = class_sum(r->classes);
	if (sum != r->memory.rss_bytes) {
		char s2[32];
		warning(t, ANSI_ALERT, "the classes add up to %s, not the RSS %s: the page accounting is off",
			human(sum, s2, sizeof(s2)), human(r->memory.rss_bytes, b, sizeof(b)));
	}

	/* The gap in one sentence, largest terms as the ledger below lists them. */
	if (!g->allocator_resident_bytes)
		return;
	char line[1024], terms[768] = "";
	bool none = true;
	char what[128];
	snprintf(what, sizeof(what), "could be returned to the kernel now (%s)", md_release_verb(r));
	term(terms, sizeof(terms), &none, g->releasable_bytes, what);
	term(terms, sizeof(terms), &none, g->pinned_free_bytes,
	     "is free memory pinned by fragmentation (on pages that also hold live data)");
	term(terms, sizeof(terms), &none, g->kept_free_bytes, "is free memory kept out of the release call's reach");
	term(terms, sizeof(terms), &none, g->metadata_bytes, "is allocator metadata");
	term(terms, sizeof(terms), &none, g->headers_bytes, "is chunk headers and rounding on live pages");
	term(terms, sizeof(terms), &none, g->outside_bytes, "is outside the allocators");
	snprintf(line, sizeof(line), "The program's live heap is %s%s; the other %s of RSS is the gap%s%s.",
		 human(g->live_heap_bytes, b, sizeof(b)),
		 g->live_from_allocators ? " (the allocators' own count of bytes in use)" : "",
		 human(g->gap_bytes, b2, sizeof(b2)), none ? "" : ": ", terms);
	fputs("  ", t->out);
	wrap(t, line, 2, 2);
}

/* ---- the gap, term by term and by region ---- */

static void ledger_line(const struct text *t, const char *label, uint64_t bytes, bool negative,
			const char *color, const char *what)
{
	char b[40];
	b[0] = '-';
	human(bytes, b + 1, sizeof(b) - 1);
	const char *shown = negative ? b : b + 1;
	int lead = fprintf(t->out, "    %s%-20s%s %9s  ", col(t, color), label, reset(t), shown);
	if (t->color && color[0])
		lead -= (int)(strlen(color) + strlen(ANSI_RESET));
	wrap(t, what, lead, 36);
}

static void render_gap(const struct text *t, const struct md_report *r, const struct md_gap *g, int top)
{
	if (!g->allocator_resident_bytes && !g->n_rows)
		return;
	char b1[32], b2[32], b3[32];
	heading(t, "The gap between the heap and RSS");
	fprintf(t->out, "  live heap %s + gap %s = RSS %s\n", human(g->live_heap_bytes, b1, sizeof(b1)),
		human(g->gap_bytes, b2, sizeof(b2)), human(g->rss_bytes, b3, sizeof(b3)));
	char what[160];
	snprintf(what, sizeof(what), "free pages %s would return to the kernel now", md_release_verb(r));
	ledger_line(t, "releasable now", g->releasable_bytes, false, class_color[MD_CLASS_FREE], what);
	ledger_line(t, "pinned free", g->pinned_free_bytes, false, "\033[35m",
		    "free bytes on pages that also hold live data: fragmentation, no release call "
		    "gives them back");
	if (g->kept_free_bytes)
		ledger_line(t, "kept free", g->kept_free_bytes, false, class_color[MD_CLASS_FREE],
			    "free pages the release call would not give back (thread caches, free lists, "
			    "retained memory)");
	ledger_line(t, "metadata", g->metadata_bytes, false, class_color[MD_CLASS_METADATA],
		    "allocator bookkeeping pages");
	if (g->headers_bytes)
		ledger_line(t, "headers, rounding", g->headers_bytes, false, "",
			    "chunk headers, padding and the unused ends of live pages");
	ledger_line(t, "outside allocators", g->outside_bytes, false, "",
		    "stacks, code and file, shared and other anonymous memory");
	if (r->memory.allocator_lazy_free_bytes) {
		char u[32];
		wrapf(t, 2, 4, "%s of the allocators' pages are MADV_FREE'd (LazyFree): counted in RSS, "
		      "but the kernel takes them back under memory pressure without any call.",
		      human(r->memory.allocator_lazy_free_bytes, u, sizeof(u)));
	}
	if (g->untouched_live_bytes) {
		/* in the live heap but not in RSS: said apart, never netted against the headers */
		char u[32];
		wrapf(t, 2, 4, "The live heap also counts %s allocated on pages never touched (not resident, so "
		      "not in RSS): the lines above add up to the gap plus that.",
		      human(g->untouched_live_bytes, u, sizeof(u)));
	}

	if (!g->have_regions) {
		fputs("  ", t->out);
		wrap(t, "Per-region figures are not in this report (the classifier gave no allocator "
		     "regions).", 2, 2);
		return;
	}
	size_t with_gap = 0;
	for (size_t i = 0; i < g->n_rows; i++)
		with_gap += g->rows[g->rank[i]].gap_bytes > 0;
	if (!with_gap) {
		fputs("  no allocator region holds free memory or metadata\n", t->out);
		return;
	}
	size_t shown = with_gap < (size_t)top ? with_gap : (size_t)top;
	int label_w = 6;
	for (size_t i = 0; i < shown; i++) {
		int l = (int)strlen(g->rows[g->rank[i]].label);
		label_w = l > label_w ? l : label_w;
	}
	if (label_w > 30)
		label_w = 30;
	if (label_w > t->width - 4 - 8 - 16)
		label_w = t->width - 4 - 8 - 16;
	int range_w = 0;
	char range[64];
	for (size_t i = 0; i < shown; i++) {
		const struct md_gap_row *row = &g->rows[g->rank[i]];
		int l = snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, row->start, row->end);
		range_w = l > range_w ? l : range_w;
	}
	/* numbers right-aligned; trailing columns that do not fit the width are left out */
	static const char *const heads[] = { "gap", "releasable", "pinned", "kept", "meta" };
	static const int widths[] = { 6, 10, 6, 6, 6 };
	int ncols = 5, nums_w = 0;
	for (int c = 0; c < 5; c++)
		nums_w += 2 + widths[c];
	bool range_inline = 4 + label_w + 2 + range_w + nums_w <= t->width;
	while (ncols > 1 && 4 + label_w + (range_inline ? 2 + range_w : 0) + nums_w > t->width)
		nums_w -= 2 + widths[--ncols];
	fprintf(t->out, "  by region, largest gap first:\n");
	fprintf(t->out, "    %-*s", label_w, "region");
	if (range_inline)
		fprintf(t->out, "  %-*s", range_w, "range");
	for (int c = 0; c < ncols; c++)
		fprintf(t->out, "  %*s", widths[c], heads[c]);
	fputc('\n', t->out);
	for (size_t i = 0; i < shown; i++) {
		const struct md_gap_row *row = &g->rows[g->rank[i]];
		snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, row->start, row->end);
		fprintf(t->out, "    %-*.*s", label_w, label_w, row->label);
		if (range_inline)
			fprintf(t->out, "  %-*s", range_w, range);
		const uint64_t v[] = { row->gap_bytes, row->releasable_bytes, row->pinned_free_bytes,
				       row->kept_free_bytes, row->metadata_bytes };
		for (int c = 0; c < ncols; c++) {
			char cb[16];
			fprintf(t->out, "  %*s", widths[c], c == 0 || v[c] ? compact(v[c], cb, sizeof(cb)) : "-");
		}
		fputc('\n', t->out);
		if (!range_inline)
			fprintf(t->out, "      %s\n", range);
	}
	if (with_gap > shown) {
		uint64_t rest = 0;
		for (size_t i = shown; i < with_gap; i++)
			rest += g->rows[g->rank[i]].gap_bytes;
		fprintf(t->out, "    ... %zu more region%s hold %s of gap\n", with_gap - shown,
			with_gap - shown == 1 ? "" : "s", human(rest, b1, sizeof(b1)));
	}
}

/* ---- what to do ---- */

static void render_advice(const struct text *t, const struct md_advice *advice, size_t n)
{
	if (!n)
		return;
	heading(t, "What to do");
	for (size_t i = 0; i < n; i++) {
		int lead = fprintf(t->out, "  %zu. ", i + 1);
		wrap(t, advice[i].text, lead, lead);
	}
}

static void render_memory(const struct text *t, const struct md_report *r)
{
	heading(t, "Memory");
	struct cell cells[8];
	cell_bytes(&cells[0], "RSS", r->memory.rss_bytes);
	cell_bytes(&cells[1], "PSS", r->memory.pss_bytes);
	cell_bytes(&cells[2], "USS", r->memory.uss_bytes);
	cell_bytes(&cells[3], "Swap", r->memory.swap_bytes);
	cell_bytes(&cells[4], "VmSize", r->memory.vm_size_bytes);
	cell_bytes(&cells[5], "RssAnon", r->memory.anon_bytes);
	cell_bytes(&cells[6], "RssFile", r->memory.file_bytes);
	cell_bytes(&cells[7], "RssShmem", r->memory.shmem_bytes);
	grid(t, cells, 8, 2, 4); /* two rows: RSS PSS USS Swap / VmSize RssAnon RssFile RssShmem */
	if (r->memory.lazy_free_bytes) {
		char b[32];
		fputs("  ", t->out);
		wrapf(t, 2, 4, "LazyFree %s: pages freed with MADV_FREE, still resident and in RSS until the "
		      "kernel needs the memory (it then takes them without writing them anywhere).",
		      human(r->memory.lazy_free_bytes, b, sizeof(b)));
	}
	uint64_t vmrss = r->memory.status_vm_rss_bytes, rss = r->memory.rss_bytes;
	if (vmrss && vmrss != rss) {
		char b[32];
		fputs("  ", t->out);
		wrapf(t, 2, 4, "VmRSS of /proc/PID/status is %s %s (its per-CPU counters lag); RSS "
		      "here is smaps_rollup, exact to the page.",
		      human(vmrss > rss ? vmrss - rss : rss - vmrss, b, sizeof(b)),
		      vmrss > rss ? "higher" : "lower");
	}
	if (r->memory.hugetlb_bytes) {
		char b[32];
		fputs("  ", t->out);
		wrapf(t, 2, 4, "Also %s of hugetlbfs pages (MAP_HUGETLB): resident, but "
		      "outside RSS and its classes.",
		      human(r->memory.hugetlb_bytes, b, sizeof(b)));
	}
}

static void render_classes(const struct text *t, const struct md_report *r)
{
	uint64_t sum = class_sum(r->classes);
	uint64_t base = r->memory.rss_bytes ? r->memory.rss_bytes : sum;
	int label_w = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		int l = (int)strlen(class_label[c]);
		label_w = l > label_w ? l : label_w;
	}
	int bar_w = t->width - (2 + label_w + 2 + 9 + 2 + 6 + 2);
	if (bar_w > 40)
		bar_w = 40;
	if (bar_w < 0)
		bar_w = 0;

	fprintf(t->out, "\n%s%-*s  %9s  %6s%s\n", col(t, ANSI_BOLD), label_w + 2, "Classes",
		"bytes", "of RSS", reset(t));
	char b[32], p[16];
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		fprintf(t->out, "  %s%-*s%s  %9s  %6s", col(t, class_color[c]), label_w,
			class_label[c], reset(t), human(r->classes[c], b, sizeof(b)),
			percent(r->classes[c], base, p, sizeof(p)));
		unsigned __int128 scaled = (unsigned __int128)r->classes[c] * (unsigned)bar_w + base / 2;
		int bar = base ? (int)(scaled / base) : 0;
		if (bar > 0) {
			fprintf(t->out, "  %s", col(t, class_color[c]));
			for (int i = 0; i < bar; i++)
				fputc('#', t->out);
			fputs(reset(t), t->out);
		}
		fputc('\n', t->out);
	}
	fprintf(t->out, "  %-*s  %9s  %6s\n", label_w, "total", human(sum, b, sizeof(b)),
		percent(sum, base, p, sizeof(p)));
	if (r->reconciled_pages) {
		fputs("  ", t->out);
		wrapf(t, 2, 4, "%" PRIu64 " page%s (%s) disagreed with smaps and were moved to the "
		      "class smaps implies.", r->reconciled_pages, r->reconciled_pages == 1 ? "" : "s",
		      human(r->reconciled_pages * MD_PAGE_SIZE, b, sizeof(b)));
	}
}

/* ---- mappings ---- */

static int region_cmp(const void *a, const void *b)
{
	const struct md_report_region *x = *(const struct md_report_region *const *)a;
	const struct md_report_region *y = *(const struct md_report_region *const *)b;
	if (x->rss_bytes != y->rss_bytes)
		return x->rss_bytes > y->rss_bytes ? -1 : 1;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/* "libc.so.6", "[heap] (name)", "anon (name)": the path, else the kind, then the allocator;
 * cut to avail columns, keeping the file name, which matters more than its directory. */
static void print_region_name(FILE *out, const struct md_report_region *reg, int avail)
{
	char full[1024], shorter[1024];
	const char *kind = reg->kind_name ? reg->kind_name : "anon";
	const char *alloc_open = reg->allocator ? " (" : "";
	const char *alloc = reg->allocator ? reg->allocator : "";
	const char *alloc_close = reg->allocator ? ")" : "";
	const char *path = reg->path ? md_esc(reg->path) : NULL;
	/* a deleted file is marked apart from its name (which may itself end in " (deleted)") */
	if (reg->deleted)
		alloc_open = reg->allocator ? " [deleted] (" : " [deleted]";
	/* an unanalysed runtime's mapping: named by its owner (its pages stay other anonymous) */
	if (!reg->allocator && reg->owner && !reg->path)
		kind = reg->owner;
	snprintf(full, sizeof(full), "%s%s%s%s", path ? path : kind, alloc_open, alloc, alloc_close);
	if (avail < 8)
		avail = 8;
	if ((int)strlen(full) <= avail) {
		fputs(full, out);
		return;
	}
	const char *base = path ? strrchr(path, '/') : NULL;
	if (base && base[1]) {
		snprintf(shorter, sizeof(shorter), "%s%s%s%s", base + 1, alloc_open, alloc, alloc_close);
		if ((int)strlen(shorter) <= avail) {
			fputs(shorter, out);
			return;
		}
		/* a library is recognised by the start of its name: "ld-linux-x86-..." */
		fprintf(out, "%.*s...", avail - 3, shorter);
		return;
	}
	size_t fl = strlen(full);
	fprintf(out, "...%s", full + fl - (size_t)(avail - 3));
}

static void render_mappings(const struct text *t, const struct md_report *r, int top)
{
	if (!r->n_regions)
		return;
	const struct md_report_region **order = malloc(r->n_regions * sizeof(*order));
	if (!order)
		return;
	size_t resident = 0;
	for (size_t i = 0; i < r->n_regions; i++) {
		if (r->regions[i].rss_bytes)
			order[resident++] = &r->regions[i];
	}
	qsort(order, resident, sizeof(*order), region_cmp);
	size_t shown = resident < (size_t)top ? resident : (size_t)top;

	char title[128];
	snprintf(title, sizeof(title), "Top %zu of %zu mappings by RSS (%zu resident)", shown,
		 r->n_regions, resident);
	heading(t, title);
	if (!shown) {
		fputs("  no mapping has resident pages\n", t->out);
		free(order);
		return;
	}

	int range_w = 5;
	char range[64];
	for (size_t i = 0; i < shown; i++) {
		int l = snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, order[i]->start, order[i]->end);
		range_w = l > range_w ? l : range_w;
	}
	/* a narrow terminal gets the range and permissions on a line of their own */
	bool narrow = 2 + range_w + 1 + 4 + 1 + 6 + MD_CLASS_COUNT * 6 + 2 + 12 > t->width;
	if (!narrow)
		fprintf(t->out, "  %-*s %-4s %6s", range_w, "range", "perm", "RSS");
	else
		fprintf(t->out, "  %6s", "RSS");
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		fprintf(t->out, " %s%5s%s", col(t, class_color[c]), class_short[c], reset(t));
	fputs("  mapping\n", t->out);
	int used = narrow ? 2 + 6 + MD_CLASS_COUNT * 6 + 2 : 2 + range_w + 1 + 4 + 1 + 6 + MD_CLASS_COUNT * 6 + 2;

	char b[32];
	for (size_t i = 0; i < shown; i++) {
		const struct md_report_region *reg = order[i];
		snprintf(range, sizeof(range), "%" PRIx64 "-%" PRIx64, reg->start, reg->end);
		if (!narrow)
			fprintf(t->out, "  %-*s %-4.4s %6s", range_w, range, reg->perms,
				compact(reg->rss_bytes, b, sizeof(b)));
		else
			fprintf(t->out, "  %6s", compact(reg->rss_bytes, b, sizeof(b)));
		for (int c = 0; c < MD_CLASS_COUNT; c++) {
			if (reg->classes[c])
				fprintf(t->out, " %s%5s%s", col(t, class_color[c]),
					compact(reg->classes[c], b, sizeof(b)), reset(t));
			else
				fprintf(t->out, " %5s", "-");
		}
		fputs("  ", t->out);
		print_region_name(t->out, reg, t->width - used);
		fputc('\n', t->out);
		if (narrow)
			fprintf(t->out, "      %s %.4s\n", range, reg->perms);
	}
	if (resident > shown) {
		uint64_t rest = 0;
		for (size_t i = shown; i < resident; i++)
			rest += order[i]->rss_bytes;
		fprintf(t->out, "  ... %zu more resident mapping%s hold %s\n", resident - shown,
			resident - shown == 1 ? "" : "s", human(rest, b, sizeof(b)));
	}
	free(order);
}

/* ---- system and container ---- */

static void render_context(const struct text *t, const struct md_report *r)
{
	if (!r->system.valid && !r->cgroup.valid)
		return;
	char b1[32], b2[32], p[16], p2[16], line[256];
	heading(t, "System and container");
	uint64_t rss = r->memory.rss_bytes;
	/* aligned columns when they fit (80 columns), else the same words wrapped */
	bool wide = t->width >= 80;
	if (r->system.valid) {
		human(r->system.mem_total_bytes, b1, sizeof(b1));
		human(r->system.mem_available_bytes, b2, sizeof(b2));
		percent(r->system.mem_available_bytes, r->system.mem_total_bytes, p, sizeof(p));
		if (wide) {
			fprintf(t->out, "  %-8s %-13s %9s   %-13s %9s  (%s available)\n", "system", "MemTotal", b1,
				"MemAvailable", b2, p);
		} else {
			snprintf(line, sizeof(line), "system: MemTotal %s, MemAvailable %s (%s available)", b1, b2, p);
			fputs("  ", t->out);
			wrap(t, line, 2, 4);
		}
	}
	bool limited = r->cgroup.valid && r->cgroup.limit_bytes != UINT64_MAX && r->cgroup.limit_bytes;
	if (r->cgroup.valid) {
		human(r->cgroup.usage_bytes, b2, sizeof(b2));
		if (limited)
			human(r->cgroup.limit_bytes, b1, sizeof(b1));
		else
			snprintf(b1, sizeof(b1), "none");
		char used[48] = "";
		if (limited)
			snprintf(used, sizeof(used), "  (%s used)",
				 percent(r->cgroup.usage_bytes, r->cgroup.limit_bytes, p, sizeof(p)));
		if (wide) {
			fprintf(t->out, "  %-8s %-13s %9s   %-13s %9s%s\n", "cgroup", "limit", b1, "usage", b2, used);
		} else {
			snprintf(line, sizeof(line), "cgroup: limit %s, usage %s%s", b1, b2, used);
			fputs("  ", t->out);
			wrap(t, line, 2, 4);
		}
	}
	char shares[128] = "";
	if (limited)
		snprintf(shares, sizeof(shares), "%s of the cgroup limit",
			 percent(rss, r->cgroup.limit_bytes, p, sizeof(p)));
	if (r->system.valid && r->system.mem_total_bytes) {
		size_t l = strlen(shares);
		snprintf(shares + l, sizeof(shares) - l, "%s%s of MemTotal", limited ? ", " : "",
			 percent(rss, r->system.mem_total_bytes, p2, sizeof(p2)));
	}
	human(rss, b1, sizeof(b1));
	if (wide) {
		fprintf(t->out, "  %-8s %-13s %9s%s%s\n", "process", "RSS", b1, shares[0] ? "   " : "", shares);
	} else {
		snprintf(line, sizeof(line), "process: RSS %s%s%s", b1, shares[0] ? ", " : "", shares);
		fputs("  ", t->out);
		wrap(t, line, 2, 4);
	}
	if (r->cgroup.valid) {
		snprintf(line, sizeof(line), "(cgroup v%d %s)", r->cgroup.version, r->cgroup.path ? r->cgroup.path : "?");
		fputs("  ", t->out);
		wrap(t, line, 2, 4);
	}

	/* Scenario "container OOM with a small RSS": the limit counts page cache and every process
	 * of the cgroup, so the constraint is the limit, not this process. */
	unsigned __int128 usage = r->cgroup.usage_bytes, limit = r->cgroup.limit_bytes;
	if (limited && usage * 10 >= limit * 9) {
		if ((unsigned __int128)rss * 4 < limit * 3)
			warning(t, ANSI_ALERT,
				"container limit is the constraint, not the RSS: the cgroup uses %s of its "
				"limit while this process's RSS is %s of it; page cache and other processes "
				"of the cgroup make up the difference",
				percent(r->cgroup.usage_bytes, r->cgroup.limit_bytes, p, sizeof(p)),
				percent(rss, r->cgroup.limit_bytes, p2, sizeof(p2)));
		else
			warning(t, ANSI_ALERT,
				"the cgroup uses %s of its limit and this process is most of it: the next "
				"growth of RSS meets the OOM killer",
				percent(r->cgroup.usage_bytes, r->cgroup.limit_bytes, p, sizeof(p)));
	}
	/* Scenario "free shows memory but the process OOM'd": MemAvailable is what counts. */
	if (r->system.valid && r->system.mem_total_bytes &&
	    r->system.mem_available_bytes * 10 < r->system.mem_total_bytes)
		warning(t, ANSI_ALERT, "the system is short of memory: MemAvailable is %s, %s of MemTotal",
			human(r->system.mem_available_bytes, b1, sizeof(b1)),
			percent(r->system.mem_available_bytes, r->system.mem_total_bytes, p, sizeof(p)));
}

/* ---- allocators ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool in_list(const char *key, const char *const *list)
{
	for (size_t i = 0; list && list[i]; i++) {
		if (strcmp(key, list[i]) == 0)
			return true;
	}
	return false;
}

/* Which keys count bytes: those ending in "bytes", and those a plugin lists in its "byte_keys"
 * (anywhere in its object) or in a grid's "byte_keys" (in that grid only). */
struct byte_keys {
	const struct md_node *everywhere, *here;
};

static bool node_list_has(const struct md_node *list, const char *key)
{
	for (size_t i = 0; i < md_node_count(list); i++) {
		const char *s = md_node_get_string(md_node_at(list, i));
		if (s && strcmp(s, key) == 0)
			return true;
	}
	return false;
}

static bool is_bytes_key(const char *key, const struct byte_keys *bk)
{
	return ends_with(key, "bytes") || (bk && (node_list_has(bk->everywhere, key) || node_list_has(bk->here, key)));
}

static bool is_scalar(const struct md_node *n)
{
	enum md_node_type ty = md_node_type(n);
	return ty != MD_NODE_ARRAY && ty != MD_NODE_OBJECT;
}

/* A value as text: bytes in human units when the key counts bytes, an array as its length. */
static void value_text(const char *key, const struct md_node *n, const struct byte_keys *context,
		       char *buf, size_t len)
{
	switch (md_node_type(n)) {
	case MD_NODE_NULL:
		snprintf(buf, len, "-");
		break;
	case MD_NODE_BOOL:
		snprintf(buf, len, "%s", md_node_get_bool(n) ? "yes" : "no");
		break;
	case MD_NODE_U64:
		if (key && is_bytes_key(key, context))
			md_format_bytes(md_node_get_u64(n), buf, len);
		else
			snprintf(buf, len, "%" PRIu64, md_node_get_u64(n));
		break;
	case MD_NODE_I64:
		snprintf(buf, len, "%" PRId64, md_node_get_i64(n));
		break;
	case MD_NODE_DOUBLE:
		snprintf(buf, len, "%.4g", md_node_get_double(n));
		break;
	case MD_NODE_STRING:
		snprintf(buf, len, "%s", md_esc(md_node_get_string(n)));
		break;
	case MD_NODE_ARRAY:
		snprintf(buf, len, "%zu", md_node_count(n));
		break;
	case MD_NODE_OBJECT:
		snprintf(buf, len, "{...}");
		break;
	}
}

/* "pinned_free_bytes" -> "pinned_free": the value already says it is bytes. */
static void key_label(const char *key, bool bytes, char *buf, size_t len)
{
	size_t kl = strlen(key);
	if (bytes && ends_with(key, "_bytes") && kl > 6)
		kl -= 6;
	snprintf(buf, len, "%.*s", (int)(kl < len - 1 ? kl : len - 1), key);
}

/* A grid of the scalar members of obj: the keys of labels ({key: label}) first in that order,
 * then the other scalars in their own order, except those in skip and skip_obj's keys and strings
 * longer than long_text (those get a line of their own after the grid; 0 = no limit). */
static void object_grid(const struct text *t, const char *title, const struct md_node *obj,
			const struct md_node *labels, const struct byte_keys *context,
			const char *const *skip, const struct md_node *skip_obj, size_t long_text, int indent)
{
	size_t n = md_node_count(obj);
	if (!n)
		return;
	struct cell *cells = calloc(n, sizeof(*cells));
	bool *done = calloc(n, sizeof(*done));
	if (!cells || !done)
		goto out;
	for (size_t i = 0; i < n; i++)
		done[i] = in_list(md_node_key_at(obj, i), skip) || (skip_obj && md_node_get(skip_obj, md_node_key_at(obj, i)));
	size_t nc = 0;
	for (size_t k = 0; k < md_node_count(labels); k++) {
		const char *lkey = md_node_key_at(labels, k), *label = md_node_get_string(md_node_at(labels, k));
		for (size_t i = 0; label && i < n; i++) {
			const char *key = md_node_key_at(obj, i);
			if (done[i] || strcmp(key, lkey) != 0 || !is_scalar(md_node_at(obj, i)))
				continue;
			snprintf(cells[nc].label, sizeof(cells[nc].label), "%s", md_esc(label));
			value_text(key, md_node_at(obj, i), context, cells[nc].value, sizeof(cells[nc].value));
			nc++;
			done[i] = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *key = md_node_key_at(obj, i);
		const struct md_node *v = md_node_at(obj, i);
		const char *str = md_node_get_string(v);
		if (done[i] || !is_scalar(v))
			continue;
		if (long_text && str && strlen(str) > long_text)
			continue;
		key_label(key, is_bytes_key(key, context), cells[nc].label, sizeof(cells[nc].label));
		value_text(key, v, context, cells[nc].value, sizeof(cells[nc].value));
		nc++;
		done[i] = true;
	}
	size_t n_long = 0;
	for (size_t i = 0; long_text && i < n; i++) {
		const char *str = md_node_get_string(md_node_at(obj, i));
		n_long += !done[i] && str && strlen(str) > long_text;
	}
	if (title && (nc || n_long))
		fprintf(t->out, "%*s%s\n", indent - 2, "", title);
	grid(t, cells, nc, indent, 0);
	for (size_t i = 0; long_text && i < n; i++) {
		const char *key = md_node_key_at(obj, i);
		const char *str = md_node_get_string(md_node_at(obj, i));
		if (done[i] || !str || strlen(str) <= long_text)
			continue;
		spaces(t->out, indent);
		fprintf(t->out, "%s: ", key);
		wrap(t, md_esc(str), indent + (int)strlen(key) + 2, indent + 2);
	}
out:
	free(cells);
	free(done);
}

/* Columns of the group table (the standard group figures), each shown when some group has it. */
struct group_col {
	const char *key;
	const char *head;
	bool right; /* numbers right-aligned */
	int width;
};

static const struct group_col group_known[] = {
	{ "group", "group", false, 0 },
	{ "kind", "kind", false, 0 },
	{ "state", "state", false, 0 },
	{ "threads", "threads", false, 0 },
	{ "regions", "regions", false, 0 },
	{ "live_bytes", "live", false, 0 },
	{ "free_bytes", "free", false, 0 },
	{ "cached_bytes", "cached", false, 0 },
	{ "metadata_bytes", "metadata", false, 0 },
	{ "releasable_bytes", "releasable", false, 0 },
	{ "resident_bytes", "resident", false, 0 },
	{ "findings", "findings", false, 0 },
};
#define GROUP_MAX_COLS (sizeof(group_known) / sizeof(group_known[0]))

static void render_groups(const struct text *t, const struct md_node *groups, const char *noun, const char *plural)
{
	size_t n = md_node_count(groups);
	if (md_node_type(groups) != MD_NODE_ARRAY || n == 0)
		return;
	size_t rows = n < MAX_GROUPS ? n : MAX_GROUPS;
	struct group_col cols[GROUP_MAX_COLS];
	size_t ncols = 0;
	for (size_t k = 0; k < GROUP_MAX_COLS; k++) {
		for (size_t i = 0; i < rows; i++) {
			if (md_node_get(md_node_at(groups, i), group_known[k].key)) {
				cols[ncols++] = group_known[k];
				break;
			}
		}
	}
	if (!ncols)
		return;
	char buf[64];
	for (size_t c = 0; c < ncols; c++) {
		if (c == 0)
			cols[c].head = noun;
		cols[c].width = (int)strlen(cols[c].head);
		cols[c].right = true;
		for (size_t i = 0; i < rows; i++) {
			const struct md_node *v = md_node_get(md_node_at(groups, i), cols[c].key);
			if (!v)
				continue;
			if (md_node_type(v) == MD_NODE_STRING)
				cols[c].right = false;
			value_text(cols[c].key, v, NULL, buf, sizeof(buf));
			int l = (int)strlen(buf);
			cols[c].width = l > cols[c].width ? l : cols[c].width;
		}
	}
	/* leave out trailing columns that do not fit the width */
	int total = 4;
	size_t fit = 0;
	for (; fit < ncols; fit++) {
		if (fit > 3 && total + cols[fit].width + 2 > t->width)
			break;
		total += cols[fit].width + 2;
	}
	ncols = fit;

	fputs("    ", t->out);
	for (size_t c = 0; c < ncols; c++) {
		if (c + 1 == ncols && !cols[c].right)
			fprintf(t->out, "%s%s", c ? "  " : "", cols[c].head);
		else
			fprintf(t->out, "%s%*s", c ? "  " : "",
				cols[c].right ? cols[c].width : -cols[c].width, cols[c].head);
	}
	fputc('\n', t->out);
	for (size_t i = 0; i < rows; i++) {
		const struct md_node *a = md_node_at(groups, i);
		if (md_node_type(a) != MD_NODE_OBJECT)
			continue;
		fputs("    ", t->out);
		for (size_t c = 0; c < ncols; c++) {
			const struct md_node *v = md_node_get(a, cols[c].key);
			if (v)
				value_text(cols[c].key, v, NULL, buf, sizeof(buf));
			else
				snprintf(buf, sizeof(buf), "-");
			if (c + 1 == ncols && !cols[c].right)
				fprintf(t->out, "%s%s", c ? "  " : "", buf);
			else
				fprintf(t->out, "%s%*s", c ? "  " : "",
					cols[c].right ? cols[c].width : -cols[c].width, buf);
		}
		fputc('\n', t->out);
	}
	if (n > rows)
		fprintf(t->out, "    ... and %zu more %s\n", n - rows, plural);
}

/* Size classes of live and free chunks of one group (or of the allocator): a row per class with counts, bytes and
 * a bar of live (#) and free (o) bytes against the largest class. */
static void render_histogram(const struct text *t, const char *title, const struct md_node *obj)
{
	struct md_hist_row *rows = NULL;
	size_t n = 0;
	struct md_error *err = md_histogram_rows(obj, &rows, &n);
	if (err || !n) {
		md_error_destroy(err);
		return;
	}
	uint64_t max = 0, live_n = 0, free_n = 0, live_b = 0, free_b = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t tot = rows[i].live_bytes + rows[i].free_bytes;
		max = tot > max ? tot : max;
		live_n += rows[i].live_count;
		free_n += rows[i].free_count;
		live_b += rows[i].live_bytes;
		free_b += rows[i].free_bytes;
	}
	char b1[32], b2[32];
	fputs("  ", t->out);
	wrapf(t, 2, 4, "%s: %" PRIu64 " live chunks (%s), %" PRIu64 " free (%s)", title, live_n,
	      human(live_b, b1, sizeof(b1)), free_n, human(free_b, b2, sizeof(b2)));
	int bar_w = t->width - (4 + 13 + 2 + 8 + 2 + 6 + 2 + 8 + 2 + 6 + 2);
	if (bar_w > 40)
		bar_w = 40;
	fprintf(t->out, "    %-13s  %8s  %6s  %8s  %6s\n", "size", "live", "bytes", "free", "bytes");
	for (size_t i = 0; i < n; i++) {
		const struct md_hist_row *h = &rows[i];
		char size[40], c1[16], c2[16];
		if (h->size_from == h->size_to)
			snprintf(size, sizeof(size), "%" PRIu64, h->size_from);
		else
			snprintf(size, sizeof(size), "%" PRIu64 "-%" PRIu64, h->size_from, h->size_to);
		fprintf(t->out, "    %-13s  %8" PRIu64 "  %6s  %8" PRIu64 "  %6s", size, h->live_count,
			compact(h->live_bytes, c1, sizeof(c1)), h->free_count, compact(h->free_bytes, c2, sizeof(c2)));
		if (bar_w > 0 && max) {
			int lb = (int)(((unsigned __int128)h->live_bytes * (unsigned)bar_w + max / 2) / max);
			int fb = (int)(((unsigned __int128)h->free_bytes * (unsigned)bar_w + max / 2) / max);
			if (lb || fb)
				fputs("  ", t->out);
			if (lb) {
				fputs(col(t, class_color[MD_CLASS_LIVE]), t->out);
				for (int k = 0; k < lb; k++)
					fputc('#', t->out);
				fputs(reset(t), t->out);
			}
			if (fb) {
				fputs(col(t, class_color[MD_CLASS_FREE]), t->out);
				for (int k = 0; k < fb; k++)
					fputc('o', t->out);
				fputs(reset(t), t->out);
			}
		}
		fputc('\n', t->out);
	}
	free(rows);
}

static void render_histograms(const struct text *t, const struct md_node *a, const char *noun, const char *plural)
{
	char title[160];
	snprintf(title, sizeof(title), "size classes (all %s)", plural);
	render_histogram(t, title, a);
	const struct md_node *groups = md_node_get(a, MD_FIG_GROUPS);
	size_t n = md_node_count(groups);
	if (md_node_type(groups) != MD_NODE_ARRAY)
		return;
	for (size_t i = 0; i < n && i < MAX_GROUPS; i++) {
		const struct md_node *gr = md_node_at(groups, i);
		if (md_node_type(gr) != MD_NODE_OBJECT)
			continue;
		const char *name = md_node_get_string(md_node_get(gr, "name"));
		if (name)
			snprintf(title, sizeof(title), "size classes of %s", md_esc(name));
		else
			snprintf(title, sizeof(title), "size classes of %s #%zu", noun, i);
		render_histogram(t, title, gr);
	}
}

/* What one group is called ("heap", "segment"), display-safe; "group" when the plugin does not say. */
static const char *group_noun(const struct md_node *a, char *buf, size_t len)
{
	const char *noun = md_node_get_string(md_node_get(a, MD_FIG_GROUP_NOUN));
	snprintf(buf, len, "%s", noun && noun[0] ? md_esc(noun) : "group");
	return buf;
}

/* Its plural: "group_noun_plural", else the noun and "s". */
static const char *group_noun_plural(const struct md_node *a, char *buf, size_t len)
{
	const char *plural = md_node_get_string(md_node_get(a, MD_FIG_GROUP_NOUN_PLURAL));
	if (plural && plural[0]) {
		snprintf(buf, len, "%s", md_esc(plural));
		return buf;
	}
	char noun[48];
	snprintf(buf, len, "%ss", group_noun(a, noun, sizeof(noun)));
	return buf;
}

/* What the live heap is made of, when the plugin can tell ("types": [{"name", "count", "bytes"}],
 * largest first: a runtime's objects by type). The names come from the target: escaped. */
#define TOP_TYPES 15
static void render_types(const struct text *t, const struct md_node *a)
{
	const struct md_node *types = md_node_get(a, "types");
	size_t n = md_node_count(types);
	if (md_node_type(types) != MD_NODE_ARRAY || !n)
		return;
	fprintf(t->out, "  live objects by type (the %zu largest of %zu):\n", n < TOP_TYPES ? n : TOP_TYPES, n);
	fprintf(t->out, "    %-40s %12s %10s\n", "type", "objects", "bytes");
	char b[32];
	for (size_t i = 0; i < n && i < TOP_TYPES; i++) {
		const struct md_node *e = md_node_at(types, i);
		const char *tn = md_node_get_string(md_node_get(e, "name"));
		fprintf(t->out, "    %-40.40s %12llu %10s\n", tn ? md_esc(tn) : "?",
			(unsigned long long)md_node_get_u64(md_node_get(e, "count")),
			human(md_node_get_u64(md_node_get(e, "bytes")), b, sizeof(b)));
	}
}

static void render_allocator(const struct text *t, const struct md_node *a)
{
	char b[32];
	const char *name = md_node_get_string(md_node_get(a, "name"));
	const struct md_node *version = md_node_get(a, "version");
	const char *symbols = md_node_get_string(md_node_get(a, "symbols"));

	char title[160];
	char vbuf[64] = "";
	if (version && is_scalar(version) && md_node_type(version) != MD_NODE_NULL)
		value_text(NULL, version, NULL, vbuf, sizeof(vbuf));
	snprintf(title, sizeof(title), "Allocator %s%s%s", name ? md_esc(name) : "?", vbuf[0] ? " " : "", vbuf);
	if (symbols) {
		size_t l = strlen(title);
		snprintf(title + l, sizeof(title) - l, " (symbols: %s)", md_esc(symbols));
	}
	heading(t, title);

	/* another allocator took malloc over: the all-zero figures would only mislead */
	const struct md_node *in_use = md_node_get(a, "in_use");
	if (md_node_type(in_use) == MD_NODE_BOOL && !md_node_get_bool(in_use)) {
		const char *why = md_node_get_string(md_node_get(a, "in_use_note"));
		warning(t, ANSI_WARN, "%s", why ? why : "this allocator is present but not in use");
		return;
	}

	/* the two states every plugin reports that change how far its figures can be trusted */
	const struct md_node *walked = md_node_get(a, "walked");
	if (md_node_type(walked) == MD_NODE_BOOL && !md_node_get_bool(walked)) {
		const char *why = md_node_get_string(md_node_get(a, "walk_note"));
		warning(t, ANSI_ALERT, "not walked%s%s: its memory shows as other anonymous",
			why ? ": " : "", why ? why : "");
	}
	const struct md_node *consistent = md_node_get(a, "consistent");
	if (md_node_type(consistent) == MD_NODE_BOOL && !md_node_get_bool(consistent)) {
		const char *why = md_node_get_string(md_node_get(a, "inconsistent_reason"));
		warning(t, ANSI_WARN, "its structures were changing during the pause%s%s%s: figures "
			"may be slightly off", why ? " (" : "", why ? why : "", why ? ")" : "");
	}

	/* set by the analysis when a thread stayed inside the allocator through every retry */
	const char *consistency = md_node_get_string(md_node_get(a, "consistency"));
	if (consistency)
		warning(t, ANSI_WARN, "a thread was inside the allocator through every re-stop (%s): "
			"figures may be slightly off", consistency);

	/* the allocator's own counters: the grids it names, else its "stats" */
	const struct md_node *everywhere = md_node_get(a, MD_FIG_BYTE_KEYS);
	const struct md_node *grids = md_node_get(a, MD_FIG_GRIDS);
	bool stats_shown = false;
	for (size_t i = 0; i < md_node_count(grids); i++) {
		const struct md_node *gd = md_node_at(grids, i);
		const char *key = md_node_get_string(md_node_get(gd, "key"));
		const char *gtitle = md_node_get_string(md_node_get(gd, "title"));
		const struct md_node *obj = key ? md_node_get(a, key) : NULL;
		if (md_node_type(obj) != MD_NODE_OBJECT)
			continue;
		stats_shown |= strcmp(key, "stats") == 0;
		struct byte_keys bk = { everywhere, md_node_get(gd, "byte_keys") };
		char line[160];
		snprintf(line, sizeof(line), "%s", gtitle ? md_esc(gtitle) : md_esc(key));
		object_grid(t, line, obj, md_node_get(gd, "labels"), &bk, NULL, NULL, 0, 4);
	}
	const struct md_node *st = md_node_get(a, "stats");
	struct byte_keys all_bk = { everywhere, NULL };
	if (!stats_shown && md_node_type(st) == MD_NODE_OBJECT)
		object_grid(t, "stats, as the allocator itself counts them:", st, NULL, &all_bk, NULL, NULL, 0, 4);

	/* the standard release object: what the call would give back now */
	const char *action = md_node_get_string(md_node_path(a, "release.action"));
	if (action && (strchr(action, '(') || strchr(action, '.')))
		fprintf(t->out, "  %s would release %s now\n", md_esc(action),
			human(md_node_get_u64(md_node_path(a, "release.bytes")), b, sizeof(b)));

	for (size_t i = 0; i < md_node_count(md_node_get(a, "holds")); i++) /* layered claims */
		fprintf(t->out, "  its live bytes hold %s of %s regions (their pages are classed by that allocator)\n",
			human(md_node_get_u64(md_node_path(md_node_at(md_node_get(a, "holds"), i), "bytes")), b, sizeof(b)),
			md_esc(md_node_get_string(md_node_path(md_node_at(md_node_get(a, "holds"), i), "allocator")) ?: "?"));

	/* whatever else the plugin says at its top level: numbers in a grid, long text after it;
	 * the standard keys shown elsewhere and the plugin's aliases of them are left out */
	static const char *const shown[] = {
		"name", "version", "symbols", "walked", "walk_note", "consistent", "inconsistent_reason",
		"consistency", "types", MD_FIG_GROUP_NOUN, MD_FIG_GROUP_NOUN_PLURAL, MD_FIG_SLABS, MD_FIG_REPLACES_MALLOC,
		MD_FIG_ALLOCATED_FROM, "holds", NULL,
	};
	object_grid(t, "what the walk found:", a, NULL, &all_bk, shown, md_node_get(a, MD_FIG_ALIASES), 24, 4);

	char noun[48], plural[64];
	group_noun(a, noun, sizeof(noun));
	group_noun_plural(a, plural, sizeof(plural));
	const struct md_node *groups = md_node_get(a, MD_FIG_GROUPS);
	if (md_node_type(groups) == MD_NODE_ARRAY && md_node_count(groups)) {
		fprintf(t->out, "  %s (%zu):\n", plural, md_node_count(groups));
		render_groups(t, groups, noun, plural);
	}
	render_histograms(t, a, noun, plural);
	render_types(t, a);
}

/* ---- findings and notes ---- */

/* The name of a plugin's group from its "groups" rows ("heap 1"), else "<noun> N". */
static const char *group_name(const struct md_report *r, const char *allocator, int group, char *buf, size_t len)
{
	for (size_t i = 0; allocator && i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		if (!name || strcmp(name, allocator) != 0)
			continue;
		const struct md_node *groups = md_node_get(a, MD_FIG_GROUPS);
		for (size_t k = 0; k < md_node_count(groups); k++) {
			const struct md_node *gr = md_node_at(groups, k);
			const char *gname = md_node_get_string(md_node_get(gr, "name"));
			if (gname && md_node_type(md_node_get(gr, "group")) != MD_NODE_NULL &&
			    md_node_get_i64(md_node_get(gr, "group")) == group) {
				snprintf(buf, len, "%s", md_esc(gname));
				return buf;
			}
		}
		char noun[48];
		snprintf(buf, len, "%s %d", group_noun(a, noun, sizeof(noun)), group);
		return buf;
	}
	snprintf(buf, len, "group %d", group);
	return buf;
}

static int severity_rank(const char *s)
{
	if (!s)
		return 2;
	if (strcmp(s, "corrupt") == 0)
		return 0;
	if (strcmp(s, "warning") == 0)
		return 1;
	return 2;
}

static int finding_cmp(const void *a, const void *b)
{
	const struct md_report_finding *x = *(const struct md_report_finding *const *)a;
	const struct md_report_finding *y = *(const struct md_report_finding *const *)b;
	int rx = severity_rank(x->severity), ry = severity_rank(y->severity);
	if (rx != ry)
		return rx - ry;
	/* the report's own order otherwise: qsort is not stable, the pointers are */
	return x < y ? -1 : x > y;
}

static void render_findings(const struct text *t, const struct md_report *r)
{
	if (!r->n_findings)
		return;
	const struct md_report_finding **order = malloc(r->n_findings * sizeof(*order));
	if (!order)
		return;
	for (size_t i = 0; i < r->n_findings; i++)
		order[i] = &r->findings[i];
	qsort(order, r->n_findings, sizeof(*order), finding_cmp);

	char title[64];
	snprintf(title, sizeof(title), "Findings (%zu)", r->n_findings);
	heading(t, title);
	size_t shown = r->n_findings < MAX_FINDINGS ? r->n_findings : MAX_FINDINGS;
	for (size_t i = 0; i < shown; i++) {
		const struct md_report_finding *f = order[i];
		int rank = severity_rank(f->severity);
		const char *c = rank == 0 ? ANSI_ALERT : rank == 1 ? ANSI_WARN : "";
		char where[160], gbuf[96];
		int wl;
		if (f->group >= 0)
			wl = snprintf(where, sizeof(where), "%s %s", f->allocator ? f->allocator : "core",
				      group_name(r, f->allocator, f->group, gbuf, sizeof(gbuf)));
		else
			wl = snprintf(where, sizeof(where), "%s", f->allocator ? f->allocator : "core");
		(void)wl;
		int lead = fprintf(t->out, "  %s%-7s%s %s at 0x%" PRIx64 ":", col(t, c),
				   f->severity ? f->severity : "info", reset(t), where, f->address);
		if (t->color && c[0])
			lead -= (int)(strlen(c) + strlen(ANSI_RESET));
		fputc(' ', t->out);
		wrap(t, f->message ? f->message : "", lead + 1, 10);
	}
	if (r->n_findings > shown)
		fprintf(t->out, "  ... and %zu more (all of them are in --json)\n", r->n_findings - shown);
	free(order);
}

static void render_notes(const struct text *t, const struct md_report *r)
{
	if (!r->n_notes)
		return;
	heading(t, "Notes");
	for (size_t i = 0; i < r->n_notes; i++) {
		fputs("  - ", t->out);
		wrap(t, r->notes[i] ? r->notes[i] : "", 4, 4);
	}
}

struct md_error *md_render_text(const struct md_report *r, const struct md_render_options *opts,
				FILE *out)
{
	struct text t = {
		.out = out,
		.color = opts && opts->color,
		.width = opts && opts->width > 0 ? opts->width : DEFAULT_WIDTH,
	};
	if (t.width < 60)
		t.width = 60; /* narrower than that, the tables would not hold a row */
	if (t.width > MD_MAX_WIDTH)
		t.width = MD_MAX_WIDTH; /* and wider, column arithmetic would overflow */
	int top = opts && opts->top > 0 ? opts->top : DEFAULT_TOP;

	struct md_gap gap;
	struct md_error *err = md_gap_compute(r, &gap);
	if (err)
		return err;
	struct md_advice *advice = NULL;
	size_t n_advice = 0;
	err = md_advice_build(r, &gap, &advice, &n_advice);
	if (err) {
		md_gap_deinit(&gap);
		return err;
	}

	/* The answer first (the sentence, the gap by region, the map), the evidence after it,
	 * and what to do last, where the terminal leaves the eye. */
	render_header(&t, r);
	render_summary(&t, r, &gap);
	render_gap(&t, r, &gap, GAP_ROWS);
	struct md_map_text_options mopts = { .color = t.color, .width = t.width, .full = opts && opts->map };
	if (gap.n_rows || gap.allocator_resident_bytes)
		md_render_map_text(r, &gap, &mopts, out);
	render_memory(&t, r);
	render_classes(&t, r);
	render_mappings(&t, r, top);
	render_context(&t, r);
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		if (md_node_type(a) == MD_NODE_OBJECT)
			render_allocator(&t, a);
	}
	render_findings(&t, r);
	render_notes(&t, r);
	render_advice(&t, advice, n_advice);
	md_advice_free(advice, n_advice);
	md_gap_deinit(&gap);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the report");
	return NULL;
}
