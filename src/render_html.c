/* The HTML report: one self-contained file (inline CSS, SVG and a little JavaScript; no network,
 * no external asset, not even an XML namespace URL: the HTML parser puts <svg> in its namespace).
 * It holds what the text report holds, in the same order: the answer, the gap by region, the
 * drainability map (one zoomable SVG grid per region, details on hover), what to do, then the
 * evidence (classes, mappings, allocators with their size-class histograms, findings, notes).
 * Everything is written by the server side: the page reads without JavaScript; the script only
 * adds hover details and zoom. Opening the file with "#selftest" makes the script hover the
 * first cell and zoom the first map once, so a headless browser's DOM dump shows both work. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"
#include "render.h"

#define HTML_MAX_BINS 512
#define HTML_COLS 64
#define TOP_MAPPINGS 20
#define MAX_FINDINGS 50

struct html {
	FILE *out;
	const struct md_report *r;
	const struct md_gap *g;
};

/* ---- escaping ---- */

/* Length of a valid UTF-8 sequence at p (1..4), 0 when invalid. */
static size_t utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	size_t n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
	if (!n || (n == 2 && p[0] < 0xc2))
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* Text or attribute value: target-controlled bytes escaped as in every human format (control
 * bytes and bytes that are not UTF-8 as "\xNN"), then markup characters as entities. */
static void esc(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)md_esc(s);
	while (*p) {
		switch (*p) {
		case '&': fputs("&amp;", out); p++; continue;
		case '<': fputs("&lt;", out); p++; continue;
		case '>': fputs("&gt;", out); p++; continue;
		case '"': fputs("&quot;", out); p++; continue;
		case '\'': fputs("&#39;", out); p++; continue;
		default: break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			p++;
			continue;
		}
		size_t n = utf8_len(p);
		if (!n) {
			fputs("\xef\xbf\xbd", out);
			p++;
			continue;
		}
		fwrite(p, 1, n, out);
		p += n;
	}
}

static void escf(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void escf(FILE *out, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n >= 0)
		esc(out, s);
	free(s);
}

static const char *hb(uint64_t v, char *buf, size_t len)
{
	return md_format_bytes(v, buf, len);
}

static const char *pct(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	if (!whole) {
		snprintf(buf, len, "-");
		return buf;
	}
	unsigned __int128 tenths = ((unsigned __int128)part * 1000 + whole / 2) / whole;
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%%", (uint64_t)(tenths / 10), (uint64_t)(tenths % 10));
	return buf;
}

/* ---- the page ---- */

static const char *const class_label[MD_CLASS_COUNT] = {
	"live heap", "retained free", "allocator metadata", "stacks", "code and file", "shared", "other anonymous",
};
static const char *const class_css[MD_CLASS_COUNT] = {
	"c-live", "c-free", "c-meta", "c-stack", "c-file", "c-shared", "c-other",
};
/* glyph -> css class of a map cell (the same order as enum md_glyph) */
static const char *const glyph_css[MD_GLYPH_COUNT] = {
	"g-empty", "g-live", "g-pinned", "g-rel", "g-kept", "g-meta", "g-other", "g-nonres",
};

static const char style[] =
	":root{--live:#3a9d4a;--pinned:#b04fc0;--rel:#e3b21c;--kept:#f07f1a;--meta:#d0413c;--other:#8f8f8f;"
	"--nonres:#e6e6e6;--stack:#2aa3b8;--file:#3d6fd0;--shared:#9a59c9;--ink:#1d1f24;--muted:#666}\n"
	"body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:var(--ink);margin:0;"
	"background:#fafafa}\n"
	"main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}\n"
	"h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;"
	"padding-bottom:4px}h3{font-size:14px;margin:14px 0 4px}\n"
	".sub,.muted{color:var(--muted)}.answer{font-size:16px}\n"
	"table{border-collapse:collapse;margin:6px 0}td,th{padding:2px 10px 2px 0;text-align:left;"
	"vertical-align:top}th{font-weight:600;border-bottom:1px solid #ccc}td.n,th.n{text-align:right;"
	"font-variant-numeric:tabular-nums}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;"
	"font-size:12px}\n"
	".bar{display:inline-block;height:10px;vertical-align:middle}\n"
	".c-live{fill:var(--live);background:var(--live)}.c-free{fill:var(--rel);background:var(--rel)}"
	".c-meta{fill:var(--meta);background:var(--meta)}.c-stack{fill:var(--stack);background:var(--stack)}"
	".c-file{fill:var(--file);background:var(--file)}.c-shared{fill:var(--shared);background:var(--shared)}"
	".c-other{fill:var(--other);background:var(--other)}\n"
	".g-live{fill:var(--live);background:var(--live)}.g-pinned{fill:var(--pinned);background:var(--pinned)}"
	".g-rel{fill:var(--rel);background:var(--rel)}.g-kept{fill:var(--kept);background:var(--kept)}"
	".g-meta{fill:var(--meta);background:var(--meta)}.g-other{fill:var(--other);background:var(--other)}"
	".g-nonres{fill:var(--nonres);background:var(--nonres)}.g-empty{fill:none}\n"
	".legend span.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px;"
	"border:1px solid #0002}\n"
	".region{margin:10px 0 18px}.maphost{overflow:auto;max-width:100%;border:1px solid #ddd;"
	"background:#fff;padding:4px}\n"
	"svg.map rect{stroke:#fff;stroke-width:0.06}svg.map rect:hover,svg.map rect.hot{stroke:#000;"
	"stroke-width:0.18}\n"
	".zoom button{font:inherit;padding:0 8px;margin-right:4px}\n"
	"#tip{position:fixed;display:none;pointer-events:none;background:#222;color:#fff;padding:6px 8px;"
	"border-radius:4px;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre;z-index:9}\n"
	"ol.advice li{margin:6px 0}.warn{color:#a34a00}.corrupt{color:#b00020}\n";

/* The script: hover details from the embedded data, zoom by buttons or ctrl+wheel. */
static const char script[] =
	"(function(){\n"
	"var data=JSON.parse(document.getElementById('md-data').textContent);\n"
	"var tip=document.getElementById('tip');var PAGE=4096;\n"
	"function hx(v){return '0x'+v.toString(16);}\n"
	"function human(b){var u=['B','KiB','MiB','GiB','TiB'],i=0;while(b>=1024&&i<u.length-1){b/=1024;i++;}"
	"return (i?b.toFixed(b<10?2:b<100?1:0):Math.round(b))+' '+u[i];}\n"
	"function cellText(reg,i){var b=reg.bins[i];var a=reg.addr?BigInt(reg.addr[i]):BigInt(reg.start)+"
	"BigInt(i*reg.ppb*PAGE);var pages=b[0]+b[1]+b[2]+b[3]+b[4];"
	"var e=a+BigInt(Math.round(pages)*PAGE);var f=function(x){return (Math.round(x*100)/100).toString();};"
	"var t=reg.label+'\\n['+hx(a)+'-'+hx(e)+')  '+f(pages)+' pages\\n'+"
	"'live '+f(b[0])+'  free '+f(b[1])+' (releasable '+f(b[5])+')\\n'+"
	"'pinned free '+human(b[6])+'  metadata '+f(b[2])+'\\n'+'not resident '+f(b[3])+'  other '+f(b[4]);"
	"if(reg.chunks)t+='\\n'+reg.chunks;return t;}\n"
	"function show(ev,reg,i,rect){tip.textContent=cellText(reg,i);tip.style.display='block';"
	"var x=(ev&&ev.clientX)||rect.getBoundingClientRect().left,y=(ev&&ev.clientY)||rect.getBoundingClientRect().top;"
	"tip.style.left=(x+14)+'px';tip.style.top=(y+14)+'px';}\n"
	"function hide(){tip.style.display='none';}\n"
	"var byId={};data.regions.forEach(function(r){byId[r.id]=r;});\n"
	"document.querySelectorAll('svg.map').forEach(function(svg){var reg=byId[svg.dataset.region];"
	"if(!reg)return;svg.addEventListener('mouseover',function(ev){var t=ev.target;if(t.tagName!=='rect')return;"
	"show(ev,reg,+t.dataset.i,t);});svg.addEventListener('mousemove',function(ev){if(tip.style.display==='block'){"
	"tip.style.left=(ev.clientX+14)+'px';tip.style.top=(ev.clientY+14)+'px';}});"
	"svg.addEventListener('mouseleave',hide);"
	"svg.addEventListener('wheel',function(ev){if(!ev.ctrlKey)return;ev.preventDefault();zoom(svg,ev.deltaY<0?1.25:0.8);},{passive:false});});\n"
	"function zoom(svg,f){var w=+svg.dataset.cell*f;w=Math.max(2,Math.min(48,w));svg.dataset.cell=w;"
	"svg.setAttribute('width',Math.round(w*svg.viewBox.baseVal.width));"
	"svg.setAttribute('height',Math.round(w*svg.viewBox.baseVal.height));}\n"
	"document.querySelectorAll('.zoom button').forEach(function(b){b.addEventListener('click',function(){"
	"var svg=document.getElementById(b.dataset.for);if(!svg)return;"
	"if(b.dataset.z==='fit'){svg.dataset.cell=svg.dataset.cell0;zoom(svg,1);}else zoom(svg,+b.dataset.z);});});\n"
	"document.body.dataset.ready='1';\n"
	"if(location.hash==='#selftest'){var s=document.querySelector('svg.map');if(s){var r=s.querySelector('rect');"
	"if(r){r.classList.add('hot');r.dispatchEvent(new MouseEvent('mouseover',{bubbles:true,clientX:40,clientY:40}));"
	"document.body.dataset.hover=tip.textContent.split('\\n')[1]||'';}"
	"var before=s.getAttribute('width');zoom(s,2);document.body.dataset.zoom=before+'->'+s.getAttribute('width');}}\n"
	"})();\n";

static void header(const struct html *h)
{
	const struct md_report *r = h->r;
	char comm[sizeof(r->target.comm) + 1], b[32];
	snprintf(comm, sizeof(comm), "%.*s", (int)sizeof(r->target.comm), r->target.comm);
	FILE *out = h->out;
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", out);
	escf(out, "memdissect: pid %" PRId32 " (%s)", r->target.pid, comm);
	fputs("</title>\n<style>\n", out);
	fputs(style, out);
	fputs("</style>\n</head>\n<body>\n<main>\n<h1 id=\"title\">", out);
	escf(out, "memdissect: pid %" PRId32 " (%s)", r->target.pid, comm[0] ? comm : "?");
	fputs("</h1>\n<p class=\"sub\">", out);
	if (r->target.exe) {
		fputs("<span class=\"mono\">", out);
		esc(out, r->target.exe);
		fputs("</span> &middot; ", out);
	}
	bool core = r->target.source && strcmp(r->target.source, "core") == 0;
	fprintf(out, "%s, %zu thread%s", core ? "core file" : "live process", r->target.threads,
		r->target.threads == 1 ? "" : "s");
	if (!core)
		fprintf(out, ", stopped for %.1f ms", r->target.pause_ms);
	fprintf(out, ", RSS %s</p>\n", hb(r->memory.rss_bytes, b, sizeof(b)));
	if (r->n_unanalysed) {
		fputs("<p class=\"warn\">Partial report: ", out);
		for (size_t i = 0; i < r->n_unanalysed; i++) {
			fputs(i ? ", " : "", out);
			esc(out, r->unanalysed[i].name);
		}
		fputs(" present but not analysed (no plugin walks it); that memory shows as other anonymous "
		      "(see the notes).</p>\n", out);
	} else if (r->partial) {
		fputs("<p class=\"warn\">Partial report: an allocator is present but could not be analysed; its "
		      "memory shows as other anonymous (see the notes).</p>\n", out);
	}
}

/* A horizontal stacked bar of the classes, as SVG, with a legend. */
static void classes_chart(const struct html *h)
{
	const struct md_report *r = h->r;
	FILE *out = h->out;
	uint64_t total = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		total += r->classes[c];
	fputs("<svg id=\"classes-chart\" class=\"chart\" width=\"100%\" height=\"28\" viewBox=\"0 0 1000 28\" "
	      "preserveAspectRatio=\"none\" role=\"img\" aria-label=\"RSS by class\">", out);
	double x = 0;
	char b[32], p[16];
	for (int c = 0; c < MD_CLASS_COUNT && total; c++) {
		double w = 1000.0 * (double)r->classes[c] / (double)total;
		if (w <= 0)
			continue;
		fprintf(out, "<rect class=\"%s\" x=\"%.2f\" y=\"0\" width=\"%.2f\" height=\"28\"><title>", class_css[c], x, w);
		escf(out, "%s %s (%s of RSS)", class_label[c], hb(r->classes[c], b, sizeof(b)),
		     pct(r->classes[c], total, p, sizeof(p)));
		fputs("</title></rect>", out);
		x += w;
	}
	fputs("</svg>\n<p class=\"legend\">", out);
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		if (!r->classes[c])
			continue;
		fprintf(out, "<span class=\"sw %s\"></span>%s %s", class_css[c], class_label[c],
			hb(r->classes[c], b, sizeof(b)));
	}
	fputs("</p>\n", out);
}

static void answer(const struct html *h)
{
	const struct md_report *r = h->r;
	const struct md_gap *g = h->g;
	FILE *out = h->out;
	char b[32], b2[32];
	fputs("<section id=\"answer\">\n<h2>Where did the memory go?</h2>\n<p class=\"answer\" id=\"sentence\">", out);
	fprintf(out, "RSS <b>%s</b> =", hb(r->memory.rss_bytes, b, sizeof(b)));
	bool first = true;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		if (!r->classes[c])
			continue;
		fprintf(out, "%s %s <b>%s</b>", first ? "" : " +", class_label[c], hb(r->classes[c], b, sizeof(b)));
		first = false;
	}
	if (first)
		fputs(" nothing resident", out);
	fputs("</p>\n", out);
	if (g->allocator_resident_bytes) {
		fprintf(out, "<p id=\"gap-sentence\">The program's live heap is <b>%s</b>%s; the other <b>%s</b> of RSS is "
			"the gap: ", hb(g->live_heap_bytes, b, sizeof(b)),
			g->live_from_allocators ? " (the allocators' own count of bytes in use)" : "",
			hb(g->gap_bytes, b2, sizeof(b2)));
		struct {
			uint64_t v;
			const char *what;
		} terms[] = {
			{ g->releasable_bytes, "could be returned to the kernel now (the allocators' release calls)" },
			{ g->pinned_free_bytes, "is free memory pinned by fragmentation" },
			{ g->kept_free_bytes, "is free memory kept out of the release call's reach" },
			{ g->metadata_bytes, "is allocator metadata" },
			{ g->headers_bytes, "is chunk headers and rounding" },
			{ g->outside_bytes, "is outside the allocators" },
		};
		bool f = true;
		for (size_t i = 0; i < sizeof(terms) / sizeof(terms[0]); i++) {
			if (!terms[i].v)
				continue;
			fprintf(out, "%s<b>%s</b> %s", f ? "" : ", ", hb(terms[i].v, b, sizeof(b)), terms[i].what);
			f = false;
		}
		fputs(".</p>\n", out);
	}
	classes_chart(h);
	fputs("</section>\n", out);
}

static void ledger_row(FILE *out, const char *id, const char *label, const char *css, uint64_t v,
		       uint64_t whole, const char *what)
{
	char b[32];
	double w = whole ? 300.0 * (double)v / (double)whole : 0;
	fprintf(out, "<tr id=\"%s\"><td>%s</td><td class=\"n\">%s</td><td><span class=\"bar %s\" style=\"width:%.1fpx\">"
		"</span></td><td class=\"muted\">%s</td></tr>\n",
		id, label, hb(v, b, sizeof(b)), css, w, what);
}

static void gap_section(const struct html *h)
{
	const struct md_gap *g = h->g;
	FILE *out = h->out;
	char b[32], b2[32], b3[32];
	if (!g->allocator_resident_bytes && !g->n_rows)
		return;
	fputs("<section id=\"gap\">\n<h2>The gap between the heap and RSS</h2>\n", out);
	fprintf(out, "<p>live heap <b>%s</b> + gap <b>%s</b> = RSS <b>%s</b></p>\n", hb(g->live_heap_bytes, b, sizeof(b)),
		hb(g->gap_bytes, b2, sizeof(b2)), hb(g->rss_bytes, b3, sizeof(b3)));
	fputs("<table class=\"ledger\">\n", out);
	uint64_t whole = g->gap_bytes ? g->gap_bytes : 1;
	char what[128];
	snprintf(what, sizeof(what), "free pages %s would return to the kernel now", md_release_verb(h->r));
	ledger_row(out, "gap-releasable", "releasable now", "g-rel", g->releasable_bytes, whole, what);
	ledger_row(out, "gap-pinned", "pinned free", "g-pinned", g->pinned_free_bytes, whole,
		   "free bytes on pages that also hold live data: fragmentation");
	ledger_row(out, "gap-kept", "kept free", "g-kept", g->kept_free_bytes, whole,
		   "free pages the release call would not give back (thread caches, free lists)");
	ledger_row(out, "gap-metadata", "metadata", "g-meta", g->metadata_bytes, whole, "allocator bookkeeping");
	if (g->headers_bytes)
		ledger_row(out, "gap-slack", "headers, rounding", "c-other", g->headers_bytes, whole,
			   "chunk headers, padding and the unused ends of live pages");
	ledger_row(out, "gap-outside", "outside allocators", "c-file", g->outside_bytes, whole,
		   "stacks, code and file, shared and other anonymous memory");
	fputs("</table>\n", out);
	if (g->untouched_live_bytes)
		fprintf(out, "<p class=\"muted\" id=\"gap-untouched\">The live heap also counts <b>%s</b> allocated on pages "
			"never touched (not resident, so not in RSS): the rows above add up to the gap plus that.</p>\n",
			hb(g->untouched_live_bytes, b, sizeof(b)));
	if (!g->n_rows) {
		fputs("<p class=\"muted\">Per-region figures are not in this report.</p>\n</section>\n", out);
		return;
	}
	uint64_t max = 1;
	for (size_t i = 0; i < g->n_rows; i++)
		max = g->rows[i].gap_bytes > max ? g->rows[i].gap_bytes : max;
	fputs("<h3>By region, largest gap first</h3>\n<table id=\"gap-regions\">\n<tr><th>region</th><th>range</th>"
	      "<th class=\"n\">gap</th><th class=\"n\">releasable</th><th class=\"n\">pinned</th>"
	      "<th class=\"n\">kept</th><th class=\"n\">metadata</th><th></th></tr>\n", out);
	for (size_t k = 0; k < g->n_rows; k++) {
		const struct md_gap_row *row = &g->rows[g->rank[k]];
		char c1[32], c2[32], c3[32], c4[32], c5[32];
		fprintf(out, "<tr data-region=\"r%zu\"><td><a href=\"#region-r%zu\">", g->rank[k], g->rank[k]);
		esc(out, row->label);
		fprintf(out, "</a></td><td class=\"mono\">%" PRIx64 "-%" PRIx64 "</td><td class=\"n\">%s</td>"
			"<td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td>",
			row->start, row->end, hb(row->gap_bytes, c1, sizeof(c1)), hb(row->releasable_bytes, c2, sizeof(c2)),
			hb(row->pinned_free_bytes, c3, sizeof(c3)), hb(row->kept_free_bytes, c4, sizeof(c4)),
			hb(row->metadata_bytes, c5, sizeof(c5)));
		/* the row's gap as a stacked bar, 200 px for the largest */
		struct {
			uint64_t v;
			const char *css;
		} parts[] = { { row->releasable_bytes, "g-rel" }, { row->pinned_free_bytes, "g-pinned" },
			      { row->kept_free_bytes, "g-kept" }, { row->metadata_bytes, "g-meta" } };
		for (size_t p = 0; p < 4; p++)
			if (parts[p].v)
				fprintf(out, "<span class=\"bar %s\" style=\"width:%.1fpx\"></span>", parts[p].css,
					200.0 * (double)parts[p].v / (double)max);
		fputs("</td></tr>\n", out);
	}
	fputs("</table>\n</section>\n", out);
}

/* Object counts of the group a row belongs to, from the "counts" of the plugin's group row. */
static void chunk_text(const struct md_report *r, const struct md_gap_row *row, char *buf, size_t len)
{
	buf[0] = 0;
	const struct md_node *alloc = NULL;
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const char *n = md_node_get_string(md_node_get(md_node_at(r->allocators, i), "name"));
		if (n && strcmp(n, row->allocator) == 0)
			alloc = md_node_at(r->allocators, i);
	}
	const struct md_node *groups = md_node_get(alloc, MD_FIG_GROUPS);
	const char *noun = md_node_get_string(md_node_get(alloc, MD_FIG_GROUP_NOUN));
	for (size_t i = 0; i < md_node_count(groups) && row->group >= 0; i++) {
		const struct md_node *a = md_node_at(groups, i);
		const struct md_node *idx = md_node_get(a, "group");
		if (!idx || md_node_get_i64(idx) != row->group)
			continue;
		const struct md_node *counts = md_node_get(a, "counts");
		size_t l = 0;
		for (size_t k = 0; k < md_node_count(counts); k++) {
			const struct md_node *v = md_node_at(counts, k);
			if (!v || (md_node_type(v) != MD_NODE_U64 && md_node_type(v) != MD_NODE_I64))
				continue;
			int n = snprintf(buf + l, len - l, "%s%s%s %" PRIu64, l ? ", " : noun ? md_esc(noun) : "group",
					 l ? "" : ": ", md_node_key_at(counts, k), md_node_get_u64(v));
			if (n < 0 || (size_t)n >= len - l)
				break;
			l += (size_t)n;
		}
		return;
	}
}

/* The embedded data the script reads: per region its bins (fractional page counts). */
static void json_number(FILE *out, double v)
{
	if (!isfinite(v))
		v = 0;
	double r = round(v * 100.0) / 100.0;
	if (r == floor(r))
		fprintf(out, "%.0f", r);
	else
		fprintf(out, "%.2f", r);
}

/* A JSON string inside <script>: quotes, backslashes and controls escaped, '<' as \u003c so
 * that no "</script>" can close the element, bytes that are not UTF-8 as U+FFFD. */
static void json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	fputc('"', out);
	while (*p) {
		if (*p == '"' || *p == '\\') {
			fputc('\\', out);
			fputc(*p++, out);
		} else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&' || *p == 0x7f) {
			fprintf(out, "\\u%04x", *p++);
		} else {
			size_t n = utf8_len(p);
			if (!n) {
				fputs("\\ufffd", out);
				p++;
				continue;
			}
			fwrite(p, 1, n, out);
			p += n;
		}
	}
	fputc('"', out);
}

struct row_bins {
	uint64_t ppb;
	size_t n;
	struct md_map_bin *bins;
};

static bool bins_of(const struct md_report *r, const struct md_gap_row *row, struct row_bins *rb)
{
	uint64_t total = row->total_pages ? row->total_pages : 1;
	rb->ppb = (total + HTML_MAX_BINS - 1) / HTML_MAX_BINS;
	rb->n = (size_t)((total + rb->ppb - 1) / rb->ppb);
	rb->bins = calloc(rb->n, sizeof(*rb->bins));
	if (!rb->bins)
		return false;
	md_map_rebin(r, row, 0, rb->ppb, rb->n, rb->bins);
	return true;
}

/* The address of page `page` of a row whose members are not contiguous. */
static uint64_t page_address(const struct md_report *r, const struct md_gap_row *row, uint64_t page)
{
	uint64_t base = 0;
	for (size_t mi = 0; mi < row->n_members; mi++) {
		const struct md_alloc_region *ar = &r->alloc_regions[row->members[mi]];
		uint64_t len = 0;
		for (int p = 0; p < MD_CELL_PART_COUNT; p++)
			len += ar->pages[p];
		if (page < base + len)
			return MD_PAGE_DOWN(ar->start) + (page - base) * MD_PAGE_SIZE;
		base += len;
	}
	return row->end;
}

static void map_section(const struct html *h)
{
	const struct md_report *r = h->r;
	const struct md_gap *g = h->g;
	FILE *out = h->out;
	if (!g->n_rows)
		return;
	fputs("<section id=\"map\">\n<h2>Drainability map</h2>\n<p class=\"legend\">", out);
	for (int gl = MD_GLYPH_LIVE; gl < MD_GLYPH_COUNT; gl++)
		fprintf(out, "<span class=\"sw %s\"></span>%s", glyph_css[gl], md_glyph_name((enum md_glyph)gl));
	fputs("</p>\n<p class=\"muted\">Each square is a fixed number of pages of one region (the scale is given per "
	      "region); its colour says what most of them are. Hover a square for its address range and page counts; "
	      "zoom with the buttons or ctrl+wheel.</p>\n", out);
	char b1[32], b2[32], b3[32], b4[32], chunks[256];
	for (size_t i = 0; i < g->n_rows; i++) {
		const struct md_gap_row *row = &g->rows[i];
		struct row_bins rb;
		if (!bins_of(r, row, &rb))
			continue;
		size_t cols = rb.n < HTML_COLS ? rb.n : HTML_COLS;
		size_t lines = (rb.n + cols - 1) / cols;
		int cell = cols < 16 ? 20 : 12;
		fprintf(out, "<div class=\"region\" id=\"region-r%zu\" data-label=\"", i);
		esc(out, row->label);
		fprintf(out, "\" data-start=\"0x%" PRIx64 "\">\n<h3>", row->start);
		esc(out, row->label);
		fprintf(out, " <span class=\"mono muted\">[%" PRIx64 "-%" PRIx64 ")</span></h3>\n", row->start, row->end);
		fprintf(out, "<p class=\"muted\">%s span, %s resident, gap %s; 1 square = %" PRIu64 " page%s (%s)",
			hb(row->total_pages * MD_PAGE_SIZE, b1, sizeof(b1)), hb(row->resident_bytes, b2, sizeof(b2)),
			hb(row->gap_bytes, b3, sizeof(b3)), rb.ppb, rb.ppb == 1 ? "" : "s",
			hb(rb.ppb * MD_PAGE_SIZE, b4, sizeof(b4)));
		chunk_text(r, row, chunks, sizeof(chunks));
		if (chunks[0]) {
			fputs("; ", out);
			esc(out, chunks);
		}
		fputs("</p>\n", out);
		fprintf(out, "<p class=\"zoom\"><button data-for=\"map-r%zu\" data-z=\"1.5\">+</button>"
			"<button data-for=\"map-r%zu\" data-z=\"0.667\">&minus;</button>"
			"<button data-for=\"map-r%zu\" data-z=\"fit\">fit</button></p>\n",
			i, i, i);
		fprintf(out, "<div class=\"maphost\"><svg class=\"map\" id=\"map-r%zu\" data-region=\"r%zu\" data-cell=\"%d\" "
			"data-cell0=\"%d\" width=\"%zu\" height=\"%zu\" viewBox=\"0 0 %zu %zu\" role=\"img\">",
			i, i, cell, cell, cols * (size_t)cell, lines * (size_t)cell, cols, lines);
		for (size_t k = 0; k < rb.n; k++) {
			enum md_glyph gl = md_map_glyph(&rb.bins[k]);
			fprintf(out, "<rect x=\"%zu\" y=\"%zu\" width=\"1\" height=\"1\" class=\"%s\" data-i=\"%zu\"/>",
				k % cols, k / cols, glyph_css[gl], k);
		}
		fputs("</svg></div>\n</div>\n", out);
		free(rb.bins);
	}
	fputs("</section>\n", out);
}

static void data_script(const struct html *h)
{
	const struct md_report *r = h->r;
	const struct md_gap *g = h->g;
	FILE *out = h->out;
	char chunks[256];
	fputs("<script type=\"application/json\" id=\"md-data\">{\"regions\":[", out);
	for (size_t i = 0; i < g->n_rows; i++) {
		const struct md_gap_row *row = &g->rows[i];
		struct row_bins rb;
		if (!bins_of(r, row, &rb))
			continue;
		fprintf(out, "%s{\"id\":\"r%zu\",\"label\":", i ? "," : "", i);
		json_string(out, row->label);
		fprintf(out, ",\"start\":\"0x%" PRIx64 "\",\"ppb\":%" PRIu64 ",", row->start, rb.ppb);
		chunk_text(r, row, chunks, sizeof(chunks));
		if (chunks[0]) {
			fputs("\"chunks\":", out);
			json_string(out, chunks);
			fputc(',', out);
		}
		if (row->n_members > 1) {
			fputs("\"addr\":[", out);
			for (size_t k = 0; k < rb.n; k++)
				fprintf(out, "%s\"0x%" PRIx64 "\"", k ? "," : "", page_address(r, row, k * rb.ppb));
			fputs("],", out);
		}
		fputs("\"bins\":[", out);
		for (size_t k = 0; k < rb.n; k++) {
			const struct md_map_bin *b = &rb.bins[k];
			fputs(k ? ",[" : "[", out);
			for (int p = 0; p < MD_CELL_PART_COUNT; p++) {
				json_number(out, b->pages[p]);
				fputc(',', out);
			}
			json_number(out, b->releasable_pages);
			fputc(',', out);
			json_number(out, b->pinned_free_bytes);
			fputc(']', out);
		}
		fputs("]}", out);
		free(rb.bins);
	}
	fputs("]}</script>\n", out);
}

static void advice_section(const struct html *h, const struct md_advice *advice, size_t n)
{
	FILE *out = h->out;
	fputs("<section id=\"advice\">\n<h2>What to do</h2>\n<ol class=\"advice\">\n", out);
	for (size_t i = 0; i < n; i++) {
		fputs("<li data-topic=\"", out);
		esc(out, advice[i].topic);
		fputs("\">", out);
		esc(out, advice[i].text);
		fputs("</li>\n", out);
	}
	fputs("</ol>\n</section>\n", out);
}

static int region_cmp(const void *a, const void *b)
{
	const struct md_report_region *x = *(const struct md_report_region *const *)a;
	const struct md_report_region *y = *(const struct md_report_region *const *)b;
	if (x->rss_bytes != y->rss_bytes)
		return x->rss_bytes > y->rss_bytes ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

static void evidence(const struct html *h)
{
	const struct md_report *r = h->r;
	FILE *out = h->out;
	char b[32], p[16];
	fputs("<section id=\"classes\">\n<h2>Classes</h2>\n<table>\n<tr><th>class</th><th class=\"n\">bytes</th>"
	      "<th class=\"n\">of RSS</th><th></th></tr>\n", out);
	uint64_t total = r->memory.rss_bytes ? r->memory.rss_bytes : 1;
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		fprintf(out, "<tr id=\"class-%s\"><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
			"<td><span class=\"bar %s\" style=\"width:%.1fpx\"></span></td></tr>\n",
			md_class_name((enum md_class)c), class_label[c], hb(r->classes[c], b, sizeof(b)),
			pct(r->classes[c], total, p, sizeof(p)), class_css[c], 300.0 * (double)r->classes[c] / (double)total);
	fputs("</table>\n</section>\n", out);

	/* the mappings that hold the most */
	size_t resident = 0;
	const struct md_report_region **order = malloc((r->n_regions ? r->n_regions : 1) * sizeof(*order));
	if (order) {
		for (size_t i = 0; i < r->n_regions; i++)
			if (r->regions[i].rss_bytes)
				order[resident++] = &r->regions[i];
		qsort(order, resident, sizeof(*order), region_cmp);
		size_t shown = resident < TOP_MAPPINGS ? resident : TOP_MAPPINGS;
		fprintf(out, "<section id=\"mappings\">\n<h2>Top %zu of %zu mappings by RSS</h2>\n<table>\n<tr><th>range</th>"
			"<th>perm</th><th class=\"n\">RSS</th>", shown, r->n_regions);
		for (int c = 0; c < MD_CLASS_COUNT; c++)
			fprintf(out, "<th class=\"n\">%s</th>", md_class_name((enum md_class)c));
		fputs("<th>mapping</th></tr>\n", out);
		for (size_t i = 0; i < shown; i++) {
			const struct md_report_region *reg = order[i];
			fprintf(out, "<tr><td class=\"mono\">%" PRIx64 "-%" PRIx64 "</td><td class=\"mono\">", reg->start, reg->end);
			escf(out, "%.4s", reg->perms);
			fprintf(out, "</td><td class=\"n\">%s</td>", hb(reg->rss_bytes, b, sizeof(b)));
			for (int c = 0; c < MD_CLASS_COUNT; c++)
				fprintf(out, "<td class=\"n\">%s</td>", reg->classes[c] ? hb(reg->classes[c], b, sizeof(b)) : "-");
			fputs("<td>", out);
			esc(out, reg->path ? reg->path : reg->kind_name ? reg->kind_name : "anon");
			if (reg->deleted)
				fputs(" <span class=\"muted\">[deleted]</span>", out);
			if (reg->allocator) {
				fputs(" (", out);
				esc(out, reg->allocator);
				fputs(")", out);
			}
			fputs("</td></tr>\n", out);
		}
		fputs("</table>\n</section>\n", out);
		free(order);
	}

	/* allocators: their size-class histograms as SVG bar charts */
	fputs("<section id=\"allocators\">\n<h2>Allocators</h2>\n", out);
	if (r->n_unanalysed) {
		fputs("<p class=\"warn\">Not analysed (no plugin walks them; their memory is in other anonymous):</p>\n<ul id=\"unanalysed\">\n", out);
		for (size_t i = 0; i < r->n_unanalysed; i++) {
			fputs("<li><b>", out);
			esc(out, r->unanalysed[i].name);
			fputs("</b> in <span class=\"mono\">", out);
			esc(out, r->unanalysed[i].module);
			fputs("</span>: ", out);
			esc(out, r->unanalysed[i].evidence);
			fputs("</li>\n", out);
		}
		fputs("</ul>\n", out);
	}
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		const char *version = md_node_get_string(md_node_get(a, "version"));
		fputs("<h3>", out);
		escf(out, "%s %s", name ? name : "?", version ? version : "");
		fputs("</h3>\n", out);
		const struct md_node *in_use = md_node_get(a, "in_use");
		if (md_node_type(in_use) == MD_NODE_BOOL && !md_node_get_bool(in_use)) {
			fputs("<p class=\"warn\">", out);
			esc(out, md_node_get_string(md_node_get(a, "in_use_note")));
			fputs("</p>\n", out);
			continue;
		}
		const struct md_node *groups = md_node_get(a, MD_FIG_GROUPS);
		const char *noun = md_node_get_string(md_node_get(a, MD_FIG_GROUP_NOUN));
		const char *plural = md_node_get_string(md_node_get(a, MD_FIG_GROUP_NOUN_PLURAL));
		const struct md_node *objs[1 + 64];
		size_t n_objs = 0;
		objs[n_objs++] = a;
		for (size_t k = 0; k < md_node_count(groups) && n_objs < sizeof(objs) / sizeof(objs[0]); k++)
			objs[n_objs++] = md_node_at(groups, k);
		for (size_t k = 0; k < n_objs; k++) {
			struct md_hist_row *rows = NULL;
			size_t nr = 0;
			struct md_error *err = md_histogram_rows(objs[k], &rows, &nr);
			if (err || !nr) {
				md_error_destroy(err);
				continue;
			}
			uint64_t max = 1;
			for (size_t j = 0; j < nr; j++) {
				max = rows[j].live_bytes > max ? rows[j].live_bytes : max;
				max = rows[j].free_bytes > max ? rows[j].free_bytes : max;
			}
			const char *gname = md_node_get_string(md_node_get(objs[k], "name"));
			fputs("<p>", out);
			if (k == 0)
				escf(out, "Size classes, all %s%s", plural ? plural : noun ? noun : "group", plural ? "" : "s");
			else if (gname)
				escf(out, "Size classes of %s", gname);
			else
				escf(out, "Size classes of %s #%zu", noun ? noun : "group", k - 1);
			fputs(": live bytes (green) and free bytes (yellow)</p>\n", out);
			size_t w = nr * 24 + 40;
			fprintf(out, "<svg class=\"chart histogram\" width=\"%zu\" height=\"150\" viewBox=\"0 0 %zu 150\" role=\"img\">",
				w, w);
			for (size_t j = 0; j < nr; j++) {
				const struct md_hist_row *hr = &rows[j];
				double hl = 120.0 * (double)hr->live_bytes / (double)max;
				double hf = 120.0 * (double)hr->free_bytes / (double)max;
				char sz[64], lb[32], fb[32];
				if (hr->size_from == hr->size_to)
					snprintf(sz, sizeof(sz), "%" PRIu64, hr->size_from);
				else
					snprintf(sz, sizeof(sz), "%" PRIu64 "-%" PRIu64, hr->size_from, hr->size_to);
				fprintf(out, "<g><title>size %s: %" PRIu64 " live chunks (%s), %" PRIu64 " free (%s)</title>", sz,
					hr->live_count, hb(hr->live_bytes, lb, sizeof(lb)), hr->free_count,
					hb(hr->free_bytes, fb, sizeof(fb)));
				fprintf(out, "<rect class=\"c-live\" x=\"%zu\" y=\"%.1f\" width=\"10\" height=\"%.1f\"/>"
					"<rect class=\"c-free\" x=\"%zu\" y=\"%.1f\" width=\"10\" height=\"%.1f\"/></g>",
					20 + j * 24, 125 - hl, hl, 30 + j * 24, 125 - hf, hf);
			}
			fputs("</svg>\n", out);
			free(rows);
		}
		/* what the live heap is made of, when the plugin can tell (objects by type) */
		const struct md_node *types = md_node_get(a, "types");
		if (md_node_type(types) == MD_NODE_ARRAY && md_node_count(types)) {
			size_t nt = md_node_count(types);
			fprintf(out, "<p>Live objects by type (the %zu largest of %zu)</p>\n<table class=\"types\">"
				     "<tr><th>type</th><th>objects</th><th>bytes</th></tr>\n",
				nt < 25 ? nt : 25, nt);
			for (size_t k = 0; k < nt && k < 25; k++) {
				const struct md_node *e = md_node_at(types, k);
				char tb[32];
				fputs("<tr><td class=\"mono\">", out);
				esc(out, md_node_get_string(md_node_get(e, "name")) ? md_node_get_string(md_node_get(e, "name")) : "?");
				fprintf(out, "</td><td>%" PRIu64 "</td><td>%s</td></tr>\n", md_node_get_u64(md_node_get(e, "count")),
					hb(md_node_get_u64(md_node_get(e, "bytes")), tb, sizeof(tb)));
			}
			fputs("</table>\n", out);
		}
	}
	fputs("</section>\n", out);

	if (r->n_findings) {
		fprintf(out, "<section id=\"findings\">\n<h2>Findings (%zu)</h2>\n<ul>\n", r->n_findings);
		for (size_t i = 0; i < r->n_findings && i < MAX_FINDINGS; i++) {
			const struct md_report_finding *f = &r->findings[i];
			const char *sev = f->severity ? f->severity : "info";
			fprintf(out, "<li class=\"%s\"><b>", strcmp(sev, "corrupt") == 0 ? "corrupt" : strcmp(sev, "warning") == 0 ? "warn" : "");
			esc(out, sev);
			fputs("</b> ", out);
			esc(out, f->allocator ? f->allocator : "core");
			fprintf(out, " at <span class=\"mono\">0x%" PRIx64 "</span>: ", f->address);
			esc(out, f->message);
			fputs("</li>\n", out);
		}
		if (r->n_findings > MAX_FINDINGS)
			fprintf(out, "<li>&hellip; and %zu more (all of them are in the JSON report)</li>\n",
				r->n_findings - MAX_FINDINGS);
		fputs("</ul>\n</section>\n", out);
	}
	if (r->n_notes) {
		fputs("<section id=\"notes\">\n<h2>Notes</h2>\n<ul>\n", out);
		for (size_t i = 0; i < r->n_notes; i++) {
			fputs("<li>", out);
			esc(out, r->notes[i]);
			fputs("</li>\n", out);
		}
		fputs("</ul>\n</section>\n", out);
	}
}

struct md_error *md_render_html(const struct md_report *r, FILE *out)
{
	struct md_gap g;
	struct md_error *err = md_gap_compute(r, &g);
	if (err)
		return err;
	struct md_advice *advice = NULL;
	size_t n_advice = 0;
	err = md_advice_build(r, &g, &advice, &n_advice);
	if (err) {
		md_gap_deinit(&g);
		return err;
	}
	struct html h = { .out = out, .r = r, .g = &g };
	header(&h);
	answer(&h);
	gap_section(&h);
	map_section(&h);
	advice_section(&h, advice, n_advice);
	evidence(&h);
	fputs("</main>\n<div id=\"tip\"></div>\n", out);
	data_script(&h);
	fputs("<script>\n", out);
	fputs(script, out);
	fputs("</script>\n</body>\n</html>\n", out);
	md_advice_free(advice, n_advice);
	md_gap_deinit(&g);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the HTML report");
	return NULL;
}

/* ---- watch --html: the trends over time ---- */

/* One self-contained page: the live heap, free, metadata, RSS and the gap of every sample as
 * lines on one SVG chart (a circle per sample carries its figures), the fitted slopes and the
 * verdict. Hovering a circle shows its sample; "#selftest" makes the script hover the last one,
 * so a headless browser's DOM dump shows it works. */
struct trend_series {
	const char *name, *color;
	size_t offset; /* of the uint64_t in md_watch_sample */
};

static const struct trend_series trend_series[] = {
	{ "RSS", "#444", offsetof(struct md_watch_sample, rss_bytes) },
	{ "live heap", "#2a7fd4", offsetof(struct md_watch_sample, live_heap_bytes) },
	{ "gap", "#d4572a", offsetof(struct md_watch_sample, gap_bytes) },
	{ "free", "#3aa35b", offsetof(struct md_watch_sample, free_bytes) },
	{ "metadata", "#9a5fc9", offsetof(struct md_watch_sample, metadata_bytes) },
};
#define N_TREND_SERIES (sizeof(trend_series) / sizeof(trend_series[0]))

static uint64_t trend_value(const struct md_watch_sample *s, size_t k)
{
	uint64_t v;
	memcpy(&v, (const char *)s + trend_series[k].offset, sizeof(v));
	return v;
}

struct md_error *md_render_watch_html(const struct md_watch_sample *s, size_t n, const struct md_verdict_result *v,
				      int pid, const char *comm, FILE *out)
{
	const double W = 960, H = 380, L = 80, R = 20, T = 20, B = 40;
	double t_max = n ? s[n - 1].t_s : 0;
	uint64_t y_max = 1;
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < N_TREND_SERIES; k++)
			if (trend_value(&s[i], k) > y_max)
				y_max = trend_value(&s[i], k);
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>memdissect watch: ", out);
	escf(out, "%s (pid %d)", comm, pid);
	fputs("</title>\n<style>\nbody{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}"
	      "h1{font-size:20px}.verdict{font-size:16px;padding:8px 12px;background:#f3f3f3;border-left:4px solid #d4572a}"
	      "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:right}th{text-align:left}"
	      "#tip{position:absolute;display:none;background:#fff;border:1px solid #888;padding:4px 8px;font-size:12px;"
	      "pointer-events:none;white-space:pre}svg text{font-size:11px;fill:#555}.key span{display:inline-block;"
	      "width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}\n</style></head>\n<body>\n",
	      out);
	fputs("<h1>memdissect watch: ", out);
	esc(out, comm);
	fprintf(out, " (pid %d), %zu sample%s over %.1f s</h1>\n", pid, n, n == 1 ? "" : "s", t_max);
	fputs("<p class=\"verdict\" id=\"verdict\"><b>", out);
	esc(out, v->name ? v->name : "");
	fputs("</b>: ", out);
	esc(out, v->text);
	fputs("</p>\n", out);
	fputs("<p class=\"key\">", out);
	for (size_t k = 0; k < N_TREND_SERIES; k++)
		fprintf(out, "<span style=\"background:%s\"></span>%s", trend_series[k].color, trend_series[k].name);
	fputs("</p>\n", out);
	fprintf(out, "<svg class=\"trend\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n", W, H, W, H);
	char a[32], b[32];
	for (int g = 0; g <= 4; g++) {
		double y = T + (H - T - B) * (1 - g / 4.0);
		fprintf(out, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", L, W - R, y, y);
		fprintf(out, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6, y + 4,
			md_format_bytes((uint64_t)((double)y_max * g / 4.0), a, sizeof(a)));
	}
	fprintf(out, "<text x=\"%.0f\" y=\"%.0f\">0 s</text><text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%.1f s</text>\n", L,
		H - 12, W - R, H - 12, t_max);
#define TX(t) (L + (t_max > 0 ? (t) / t_max : 0) * (W - L - R))
#define TY(y) (T + (H - T - B) * (1 - (double)(y) / (double)y_max))
	for (size_t k = 0; k < N_TREND_SERIES; k++) {
		fprintf(out, "<polyline class=\"series\" data-name=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
			trend_series[k].name, trend_series[k].color);
		for (size_t i = 0; i < n; i++)
			fprintf(out, "%s%.1f,%.1f", i ? " " : "", TX(s[i].t_s), TY(trend_value(&s[i], k)));
		fputs("\"/>\n", out);
	}
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "<circle class=\"pt\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#2a7fd4\" fill-opacity=\"0.25\" "
			     "data-sample=\"sample %zu at %.1f s",
			TX(s[i].t_s), TY(s[i].live_heap_bytes), i + 1, s[i].t_s);
		for (size_t k = 0; k < N_TREND_SERIES; k++)
			fprintf(out, "&#10;%s %s", trend_series[k].name, md_format_bytes(trend_value(&s[i], k), a, sizeof(a)));
		fprintf(out, "&#10;pause %.1f ms%s\"/>\n", s[i].pause_ms, s[i].partial ? "&#10;partial report" : "");
	}
#undef TX
#undef TY
	fputs("</svg>\n<div id=\"tip\"></div>\n", out);
	fputs("<h2>Fitted slopes</h2>\n<table><tr><th>series</th><th>slope</th><th>change over the watch</th><th>R&#178;</th></tr>\n",
	      out);
	const struct {
		const char *name;
		const struct md_trend *t;
	} fits[] = { { "RSS", &v->rss }, { "live heap", &v->heap }, { "gap", &v->gap }, { "free", &v->free } };
	for (size_t k = 0; k < sizeof(fits) / sizeof(fits[0]); k++) {
		const struct md_trend *t = fits[k].t;
		fprintf(out, "<tr><th>%s</th><td>%s</td><td>%s%s</td><td>%.2f</td></tr>\n", fits[k].name,
			md_format_rate(t->slope, a, sizeof(a)), t->change < 0 ? "-" : "",
			md_format_bytes((uint64_t)fabs(t->change), b, sizeof(b)), t->r2);
	}
	fputs("</table>\n<h2>Samples</h2>\n<table><tr><th>t</th>", out);
	for (size_t k = 0; k < N_TREND_SERIES; k++)
		fprintf(out, "<th>%s</th>", trend_series[k].name);
	fputs("<th>pause</th></tr>\n", out);
	for (size_t i = 0; i < n; i++) {
		fprintf(out, "<tr><td>%.1f s</td>", s[i].t_s);
		for (size_t k = 0; k < N_TREND_SERIES; k++)
			fprintf(out, "<td>%s</td>", md_format_bytes(trend_value(&s[i], k), a, sizeof(a)));
		fprintf(out, "<td>%.1f ms</td></tr>\n", s[i].pause_ms);
	}
	fputs("</table>\n<script>\n"
	      "(function(){var tip=document.getElementById('tip');"
	      "function show(c){var r=c.getBoundingClientRect();tip.textContent=c.getAttribute('data-sample');"
	      "tip.style.display='block';tip.style.left=(window.scrollX+r.right+8)+'px';tip.style.top=(window.scrollY+r.top)+'px';"
	      "document.body.setAttribute('data-hover',c.getAttribute('data-sample').split('\\n').join('; '));}"
	      "var pts=document.querySelectorAll('circle.pt');"
	      "for(var i=0;i<pts.length;i++){pts[i].addEventListener('mouseover',function(e){show(e.target);});"
	      "pts[i].addEventListener('mouseout',function(){tip.style.display='none';});}"
	      "document.body.setAttribute('data-series',document.querySelectorAll('polyline.series').length);"
	      "if(location.hash==='#selftest'&&pts.length){pts[pts.length-1].dispatchEvent(new MouseEvent('mouseover',{bubbles:true}));}"
	      "document.body.setAttribute('data-ready','1');})();\n</script>\n</body></html>\n",
	      out);
	errno = 0;
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the watch page");
	return NULL;
}
