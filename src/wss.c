/* The working set. The attach has already stopped the target, walked it and let it go; only
 * then are the referenced bits cleared (our own reads during the walk would otherwise count as
 * references), the window waited out with the target running, and smaps read again. smaps
 * gives Referenced per mapping, not per page, so the join with the page classes is per mapping:
 * a mapping's referenced bytes are split over its classes in proportion (exact for a mapping of
 * one class — stacks, code, most anonymous maps — an estimate for a heap that mixes live and
 * free pages). Per-page attribution would need /sys/kernel/mm/page_idle/bitmap, which kernels
 * without CONFIG_IDLE_PAGE_TRACKING (like the development host's) do not have. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cgroup_report.h"
#include "live.h"
#include "procfs.h"
#include "refs.h"
#include "wss.h"

static struct md_error *wait_window(double window_s)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (md_live_interrupted)
			return md_error_create(MD_ERR_INTERRUPTED, "interrupted during the working-set window");
		clock_gettime(CLOCK_MONOTONIC, &now);
		double left = window_s - ((double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9);
		if (left <= 0)
			return NULL;
		double slice = left < 0.05 ? left : 0.05;
		struct timespec ts = { 0, (long)(slice * 1e9) };
		nanosleep(&ts, NULL);
	}
}

/* Split ref bytes of a region over its classes; the rounding goes to its largest class. */
static void join_classes(const struct md_report_region *reg, uint64_t ref, uint64_t *classes)
{
	if (reg->rss_bytes == 0 || ref == 0)
		return;
	uint64_t given = 0;
	int largest = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		uint64_t share = (uint64_t)((unsigned __int128)reg->classes[c] * ref / reg->rss_bytes);
		classes[c] += share;
		given += share;
		if (reg->classes[c] > reg->classes[largest])
			largest = c;
	}
	classes[largest] += ref - given;
}

static int cmp_start(const void *a, const void *b)
{
	const struct md_mapping *x = a, *y = b;
	return (x->start > y->start) - (x->start < y->start);
}

struct md_error *md_wss_measure(pid_t pid, double window_s, struct md_report *r)
{
	struct md_error *err = md_refs_clear(pid);
	if (!err)
		err = wait_window(window_s);
	struct md_mapping *maps = NULL;
	size_t n = 0;
	if (!err)
		err = md_refs_read(pid, &maps, &n);
	if (err)
		return err;
	uint64_t total = 0, classes[MD_CLASS_COUNT] = { 0 };
	for (size_t i = 0; i < n; i++)
		total += maps[i].smaps.referenced;
	/* maps come sorted from the kernel; bsearch by start, the same range counts as the same mapping
	 * (one split or merged during the window is left out of the per-class join). */
	for (size_t i = 0; i < r->n_regions; i++) {
		struct md_report_region *reg = &r->regions[i];
		struct md_mapping key = { .start = reg->start };
		const struct md_mapping *m = bsearch(&key, maps, n, sizeof(*maps), cmp_start);
		reg->wss_bytes = 0;
		if (!m || m->end != reg->end)
			continue;
		/* Pages that became resident during the window can be referenced, not in the RSS of
		 * the attach: the join counts at most that RSS. */
		reg->wss_bytes = m->smaps.referenced;
		join_classes(reg, m->smaps.referenced < reg->rss_bytes ? m->smaps.referenced : reg->rss_bytes, classes);
	}
	md_mappings_free(maps, n);
	r->wss.valid = true;
	r->wss.method = "smaps_referenced";
	r->wss.attribution = "per_mapping";
	r->wss.window_s = window_s;
	r->wss.bytes = total;
	memcpy(r->wss.classes, classes, sizeof(classes));
	return NULL;
}

struct md_error *md_wss_add_node(struct md_node *root, const struct md_report *r)
{
	struct md_node *o = md_node_object(), *cl = md_node_object();
	struct md_error *err = md_node_set(root, "wss", o);
	if (err) {
		md_node_destroy(cl);
		return err;
	}
	if ((err = md_node_set_string(o, "method", r->wss.method)) ||
	    (err = md_node_set_string(o, "attribution", r->wss.attribution)) ||
	    (err = md_node_set_double(o, "window_s", r->wss.window_s)) ||
	    (err = md_node_set_u64(o, "bytes", r->wss.bytes)) || (err = md_node_set(o, "classes", cl)))
		return err;
	uint64_t joined = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		if ((err = md_node_set_u64(cl, md_class_name((enum md_class)c), r->wss.classes[c])))
			return err;
		joined += r->wss.classes[c];
	}
	/* Referenced bytes in mappings made, grown or split since the attach: in bytes, not in classes. */
	return md_node_set_u64(o, "unattributed_bytes", r->wss.bytes > joined ? r->wss.bytes - joined : 0);
}

static const char *pct(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	snprintf(buf, len, "%.0f %%", whole ? 100.0 * (double)part / (double)whole : 0.0);
	return buf;
}

void md_wss_render_text(const struct md_report *r, bool color, FILE *out)
{
	if (!r->wss.valid)
		return;
	const char *bold = color ? "\033[1m" : "", *rst = color ? "\033[0m" : "";
	char b1[16], b2[16], p[16], path[256];
	uint64_t rss = r->memory.rss_bytes;
	fprintf(out, "\n%sWorking set over %.1f s%s: %s referenced of %s RSS (%s); smaps Referenced per mapping,\n"
		     "joined with the classes per mapping (a heap mapping's share is split by its live/free pages);\n"
		     "the target's referenced bits were cleared for it (its page-aging state: docs/cgroup.md)\n",
		bold, r->wss.window_s, rst, md_format_bytes(r->wss.bytes, b1, 16), md_format_bytes(rss, b2, 16),
		pct(r->wss.bytes, rss, p, sizeof(p)));
	static const char *const label[MD_CLASS_COUNT] = { "live heap", "retained free", "allocator metadata", "stacks",
							   "code and file", "shared", "other anonymous" };
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		if (!r->classes[c])
			continue;
		fprintf(out, "  %-20s %10s touched of %10s (%s)%s\n", label[c], md_format_bytes(r->wss.classes[c], b1, 16),
			md_format_bytes(r->classes[c], b2, 16), pct(r->wss.classes[c], r->classes[c], p, sizeof(p)),
			c == MD_CLASS_FREE && r->wss.classes[c] ? "  <- free memory touched: allocator churn" : "");
	}
	/* The mappings with the largest working set. */
	size_t shown = 0;
	bool *used = calloc(r->n_regions ? r->n_regions : 1, sizeof(*used));
	if (!used)
		return;
	fprintf(out, "  %-18s %10s %10s  %s\n", "mapping", "wss", "rss", "path");
	while (shown < 10) {
		size_t best = r->n_regions;
		for (size_t i = 0; i < r->n_regions; i++)
			if (!used[i] && r->regions[i].wss_bytes &&
			    (best == r->n_regions || r->regions[i].wss_bytes > r->regions[best].wss_bytes))
				best = i;
		if (best == r->n_regions)
			break;
		used[best] = true;
		const struct md_report_region *reg = &r->regions[best];
		fprintf(out, "  0x%016" PRIx64 " %10s %10s  %s\n", reg->start, md_format_bytes(reg->wss_bytes, b1, 16),
			md_format_bytes(reg->rss_bytes, b2, 16),
			reg->path ? md_text_safe(reg->path, path, sizeof(path)) : "[anon]");
		shown++;
	}
	free(used);
}
