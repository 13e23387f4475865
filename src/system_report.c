/* memdissect system: the whole machine as the memory-metrics guide explains it. /proc/meminfo
 * with "used" and "buff/cache" computed as free(1) does and "available" shown as the figure that
 * answers "can I start this?"; the top processes by PSS and by USS; every memory cgroup with its
 * usage. A node tree (docs/json.md "system"), rendered as text from that tree. Also the HTML page
 * shared with memdissect cgroup. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup_report.h"
#include "procfs.h"

#define MAX_PROCESSES 1000000
#define MAX_GROUPS 4096
#define MAX_DEPTH 32

static uint64_t sub_clamp(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

struct md_error *md_system_meminfo_node(const char *text, size_t len, struct md_node **obj_ret)
{
	struct md_kv_list mi;
	struct md_error *err = md_parse_keyed(text, len, true, &mi);
	if (err)
		return md_error_wrap(err, "/proc/meminfo");
	bool have_total, have_avail;
	uint64_t total = md_kv_get(&mi, "MemTotal", 0, &have_total);
	uint64_t avail = md_kv_get(&mi, "MemAvailable", 0, &have_avail);
	uint64_t mfree = md_kv_get(&mi, "MemFree", 0, NULL);
	uint64_t buffers = md_kv_get(&mi, "Buffers", 0, NULL), cached = md_kv_get(&mi, "Cached", 0, NULL);
	uint64_t srec = md_kv_get(&mi, "SReclaimable", 0, NULL), sun = md_kv_get(&mi, "SUnreclaim", 0, NULL);
	/* free(1) (procps 4): buff/cache = Buffers + Cached + SReclaimable; used = total - available. */
	uint64_t buff_cache = buffers + cached + srec;
	struct md_node *o = md_node_object(), *all = NULL;
	if (!o) {
		err = &md_error_nomem;
		goto out;
	}
	if (!have_total) {
		err = md_error_create(MD_ERR_BAD_DATA, "/proc/meminfo: no MemTotal");
		goto out;
	}
	MD_TRY(md_node_set_u64(o, "total_bytes", total));
	MD_TRY(md_node_set_u64(o, "free_bytes", mfree));
	MD_TRY(md_node_set(o, "available_bytes", have_avail ? md_node_u64(avail) : md_node_null()));
	MD_TRY(md_node_set_u64(o, "used_bytes", have_avail ? sub_clamp(total, avail)
							   : sub_clamp(total, mfree + buff_cache)));
	MD_TRY(md_node_set_u64(o, "buff_cache_bytes", buff_cache));
	MD_TRY(md_node_set_u64(o, "shmem_bytes", md_kv_get(&mi, "Shmem", 0, NULL)));
	MD_TRY(md_node_set_u64(o, "slab_bytes", srec + sun));
	MD_TRY(md_node_set_u64(o, "slab_reclaimable_bytes", srec));
	MD_TRY(md_node_set_u64(o, "anon_bytes", md_kv_get(&mi, "AnonPages", 0, NULL)));
	MD_TRY(md_node_set_u64(o, "dirty_bytes", md_kv_get(&mi, "Dirty", 0, NULL)));
	MD_TRY(md_node_set_u64(o, "swap_total_bytes", md_kv_get(&mi, "SwapTotal", 0, NULL)));
	MD_TRY(md_node_set_u64(o, "swap_free_bytes", md_kv_get(&mi, "SwapFree", 0, NULL)));
	/* What "available" leaves out of "free + cache": page cache the kernel could not drop
	 * (shmem/tmpfs is in Cached but cannot be reclaimed without swap). */
	MD_TRY(md_node_set_u64(o, "cache_not_available_bytes",
			      have_avail ? sub_clamp(mfree + buff_cache, avail) : 0));
	all = md_node_object();
	MD_TRY(md_node_set(o, "meminfo", all));
	for (size_t i = 0; i < mi.n; i++)
		MD_TRY(md_node_set_u64(all, mi.items[i].key, mi.items[i].value));
	*obj_ret = o;
	o = NULL;
out:
	md_node_destroy(o);
	md_kv_list_deinit(&mi);
	return err;
}

static int by_pss(const void *a, const void *b)
{
	const struct md_proc_memory *x = a, *y = b;
	if (x->pss_bytes != y->pss_bytes)
		return x->pss_bytes < y->pss_bytes ? 1 : -1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int by_uss(const void *a, const void *b)
{
	const struct md_proc_memory *x = a, *y = b;
	if (x->uss_bytes != y->uss_bytes)
		return x->uss_bytes < y->uss_bytes ? 1 : -1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Every process with resident memory (kernel threads have none). Processes that exit meanwhile
 * are skipped. */
static struct md_error *all_processes(struct md_proc_memory **list_ret, size_t *n_ret)
{
	DIR *d = opendir("/proc");
	if (!d)
		return md_error_os(errno, "cannot list /proc");
	struct md_proc_memory *list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	struct md_error *err = NULL;
	while (!err && n < MAX_PROCESSES && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		struct md_proc_memory pm;
		struct md_error *e = md_proc_memory_read((pid_t)pid, &pm);
		if (e) { /* gone, or not ours to read */
			md_error_destroy(e);
			continue;
		}
		if (!pm.has_mm || pm.rss_bytes == 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct md_proc_memory *nl = realloc(list, ncap * sizeof(*nl));
			if (!nl) {
				err = &md_error_nomem;
				break;
			}
			list = nl;
			cap = ncap;
		}
		list[n++] = pm;
	}
	closedir(d);
	if (err) {
		free(list);
		return err;
	}
	*list_ret = list;
	*n_ret = n;
	return NULL;
}

static struct md_error *process_node(const struct md_proc_memory *pm, struct md_node *arr)
{
	struct md_node *p = md_node_object();
	struct md_error *err = md_node_append(arr, p);
	if (!err)
		err = md_node_set_i64(p, "pid", pm->pid);
	if (!err)
		err = md_node_set_string(p, "comm", pm->comm);
	if (!err)
		err = md_node_set_u64(p, "rss_bytes", pm->rss_bytes);
	if (!err)
		err = md_node_set_u64(p, "pss_bytes", pm->pss_bytes);
	if (!err)
		err = md_node_set_u64(p, "uss_bytes", pm->uss_bytes);
	if (!err)
		err = md_node_set_u64(p, "anon_bytes", pm->anon_bytes);
	if (!err)
		err = md_node_set_u64(p, "swap_bytes", pm->swap_bytes);
	return err;
}

static struct md_error *cgroups_node(const char *root, struct md_node *arr, bool *truncated_ret)
{
	char **dirs;
	size_t n;
	struct md_error *err = md_cgroup_list(root, MAX_GROUPS, MAX_DEPTH, &dirs, &n, truncated_ret);
	if (err)
		return err;
	for (size_t i = 0; i < n && !err; i++) {
		char *dir, *path;
		struct md_cgroup cg;
		if (md_cgroup_resolve(dirs[i], root, &dir, &path) != NULL)
			continue; /* resolve only fails when the group vanished or memory ran out */
		struct md_error *e = md_cgroup_read(dir, path, &cg);
		free(dir);
		free(path);
		if (e) {
			md_error_destroy(e);
			continue;
		}
		struct md_node *o = md_node_object();
		err = md_node_append(arr, o);
		if (!err)
			err = md_node_set_string(o, "path", cg.path);
		if (!err)
			err = md_node_set_u64(o, "version", (uint64_t)cg.version);
		if (!err)
			err = md_node_set_u64(o, "usage_bytes", cg.usage_bytes);
		if (!err)
			err = md_node_set(o, "limit_bytes", cg.limit_bytes == UINT64_MAX ? md_node_null()
										 : md_node_u64(cg.limit_bytes));
		if (!err)
			err = md_node_set_u64(o, "processes", cg.n_pids);
		md_cgroup_deinit(&cg);
	}
	md_cgroup_list_free(dirs, n);
	return err;
}

struct md_error *md_system_report_build(const struct md_system_report_options *o, struct md_node **doc_ret)
{
	char *text;
	size_t len;
	struct md_error *err = md_read_file("/proc/meminfo", &text, &len);
	if (err)
		return err;
	struct md_node *doc = md_node_object(), *sys = NULL;
	struct md_proc_memory *procs = NULL;
	size_t n = 0;
	err = md_system_meminfo_node(text, len, &sys);
	free(text);
	if (err) {
		md_node_destroy(doc);
		return err;
	}
	MD_TRY(md_node_set(doc, "system", sys));
	MD_TRY(all_processes(&procs, &n));
	uint64_t total_pss = 0, total_uss = 0;
	for (size_t i = 0; i < n; i++) {
		total_pss += procs[i].pss_bytes;
		total_uss += procs[i].uss_bytes;
	}
	MD_TRY(md_node_set_u64(sys, "process_count", n));
	MD_TRY(md_node_set_u64(sys, "processes_pss_bytes", total_pss));
	MD_TRY(md_node_set_u64(sys, "processes_uss_bytes", total_uss));
	/* The processes listed: the top by USS, then those of the top by PSS not yet in, in PSS
	 * order; each says where it ranks. */
	size_t top = o->top ? o->top : 10;
	struct md_node *arr = md_node_array();
	MD_TRY(md_node_set(doc, "processes", arr));
	if (n > 1)
		qsort(procs, n, sizeof(*procs), by_pss);
	for (size_t i = 0; i < n && i < top; i++) {
		MD_TRY(process_node(&procs[i], arr));
		MD_TRY(md_node_set_u64(md_node_at(arr, md_node_count(arr) - 1), "pss_rank", i + 1));
	}
	if (n > 1)
		qsort(procs, n, sizeof(*procs), by_uss);
	for (size_t i = 0; i < n && i < top; i++) {
		struct md_node *found = NULL;
		for (size_t j = 0; j < md_node_count(arr) && !found; j++)
			if (md_node_get_i64(md_node_get(md_node_at(arr, j), "pid")) == procs[i].pid)
				found = md_node_at(arr, j);
		if (!found) {
			MD_TRY(process_node(&procs[i], arr));
			found = md_node_at(arr, md_node_count(arr) - 1);
			MD_TRY(md_node_set(found, "pss_rank", md_node_null()));
		}
		MD_TRY(md_node_set_u64(found, "uss_rank", i + 1));
	}
	for (size_t j = 0; j < md_node_count(arr); j++)
		if (!md_node_get(md_node_at(arr, j), "uss_rank"))
			MD_TRY(md_node_set(md_node_at(arr, j), "uss_rank", md_node_null()));
	struct md_node *cgs = md_node_array();
	MD_TRY(md_node_set(doc, "cgroups", cgs));
	bool truncated = false;
	MD_TRY(cgroups_node(o->cgroup_root, cgs, &truncated));
	MD_TRY(md_node_set_bool(sys, "cgroups_truncated", truncated));
	*doc_ret = doc;
	doc = NULL;
out:
	free(procs);
	md_node_destroy(doc);
	return err;
}

/* ---- text ---- */

static uint64_t u64_at(const struct md_node *n, const char *key)
{
	return md_node_get_u64(md_node_get(n, key));
}

static void process_table(const struct md_node *procs, const char *rank_key, size_t top, FILE *out)
{
	char b1[16], b2[16], b3[16], b4[16], comm[64];
	fprintf(out, "  %8s %-16s %10s %10s %10s %10s\n", "pid", "comm", "pss", "uss", "rss", "swap");
	for (size_t r = 1; r <= top; r++) {
		for (size_t i = 0; i < md_node_count(procs); i++) {
			const struct md_node *p = md_node_at(procs, i), *rk = md_node_get(p, rank_key);
			if (!rk || md_node_type(rk) == MD_NODE_NULL || md_node_get_u64(rk) != r)
				continue;
			fprintf(out, "  %8" PRId64 " %-16s %10s %10s %10s %10s\n", md_node_get_i64(md_node_get(p, "pid")),
				md_text_safe(md_node_get_string(md_node_get(p, "comm")), comm, sizeof(comm)),
				md_format_bytes(u64_at(p, "pss_bytes"), b1, 16), md_format_bytes(u64_at(p, "uss_bytes"), b2, 16),
				md_format_bytes(u64_at(p, "rss_bytes"), b3, 16), md_format_bytes(u64_at(p, "swap_bytes"), b4, 16));
		}
	}
}

struct md_error *md_system_render_text(const struct md_node *doc, bool color, FILE *out)
{
	const char *bold = color ? "\033[1m" : "", *rst = color ? "\033[0m" : "";
	const struct md_node *s = md_node_get(doc, "system");
	char b1[16], b2[16], b3[16], b4[16], b5[16];
	uint64_t total = u64_at(s, "total_bytes");
	bool have_avail = md_node_type(md_node_get(s, "available_bytes")) != MD_NODE_NULL;
	uint64_t avail = u64_at(s, "available_bytes"), mfree = u64_at(s, "free_bytes");
	double pct = total ? 100.0 * (double)avail / (double)total : 0;
	if (have_avail)
		fprintf(out, "%s%s available of %s (%.0f %%): that, not \"free\" (%s), is what a new program can "
			     "get%s\n\n", bold, md_format_bytes(avail, b1, 16), md_format_bytes(total, b2, 16), pct,
			md_format_bytes(mfree, b3, 16), rst);
	fprintf(out, "%sMemory (/proc/meminfo)%s\n", bold, rst);
	fprintf(out, "  %-12s %10s\n", "total", md_format_bytes(total, b1, 16));
	fprintf(out, "  %-12s %10s   total - available: what the kernel could not hand out now\n", "used",
		md_format_bytes(u64_at(s, "used_bytes"), b1, 16));
	fprintf(out, "  %-12s %10s   never used at all; low on any busy machine, and that is fine\n", "free",
		md_format_bytes(mfree, b1, 16));
	fprintf(out, "  %-12s %10s   Buffers + Cached + SReclaimable\n", "buff/cache",
		md_format_bytes(u64_at(s, "buff_cache_bytes"), b1, 16));
	if (have_avail)
		fprintf(out, "  %-12s %10s   free + the cache and slab the kernel can drop, less its reserves\n",
			"available", md_format_bytes(avail, b1, 16));
	fprintf(out, "  %-12s %10s   tmpfs and shared memory: counted in Cached, yet not reclaimable without swap\n",
		"shmem", md_format_bytes(u64_at(s, "shmem_bytes"), b1, 16));
	fprintf(out, "  %-12s %10s   of which reclaimable %s\n", "slab", md_format_bytes(u64_at(s, "slab_bytes"), b1, 16),
		md_format_bytes(u64_at(s, "slab_reclaimable_bytes"), b2, 16));
	fprintf(out, "  %-12s %10s   (free %s)\n\n", "swap", md_format_bytes(u64_at(s, "swap_total_bytes"), b1, 16),
		md_format_bytes(u64_at(s, "swap_free_bytes"), b2, 16));
	if (have_avail)
		fprintf(out, "\"free\" misleads: the kernel fills idle memory with page cache and gives it back on demand,\n"
			     "so free + buff/cache (%s) overstates what can be had by %s (shmem, dirty pages, the\n"
			     "kernel's reserves); \"available\" already takes that off.\n\n",
			md_format_bytes(mfree + u64_at(s, "buff_cache_bytes"), b1, 16),
			md_format_bytes(u64_at(s, "cache_not_available_bytes"), b2, 16));
	const struct md_node *procs = md_node_get(doc, "processes");
	size_t top = 0;
	for (size_t i = 0; i < md_node_count(procs); i++) {
		const struct md_node *rk = md_node_get(md_node_at(procs, i), "pss_rank");
		if (rk && md_node_type(rk) != MD_NODE_NULL && md_node_get_u64(rk) > top)
			top = md_node_get_u64(rk);
	}
	fprintf(out, "%sTop processes by PSS%s (%" PRIu64 " processes, PSS sum %s, USS sum %s)\n", bold, rst,
		u64_at(s, "process_count"), md_format_bytes(u64_at(s, "processes_pss_bytes"), b1, 16),
		md_format_bytes(u64_at(s, "processes_uss_bytes"), b2, 16));
	process_table(procs, "pss_rank", top, out);
	fprintf(out, "\n%sTop processes by USS%s (what killing the process would free)\n", bold, rst);
	process_table(procs, "uss_rank", top, out);
	const struct md_node *cgs = md_node_get(doc, "cgroups");
	fprintf(out, "\n%sMemory cgroups (%zu)%s\n", bold, md_node_count(cgs), rst);
	fprintf(out, "  %10s %10s %6s %5s  %s\n", "usage", "limit", "procs", "v", "path");
	for (size_t i = 0; i < md_node_count(cgs); i++) {
		const struct md_node *c = md_node_at(cgs, i), *lim = md_node_get(c, "limit_bytes");
		char path[512];
		fprintf(out, "  %10s %10s %6" PRIu64 " %5" PRIu64 "  %s\n", md_format_bytes(u64_at(c, "usage_bytes"), b4, 16),
			lim && md_node_type(lim) != MD_NODE_NULL ? md_format_bytes(md_node_get_u64(lim), b5, 16) : "none",
			u64_at(c, "processes"), u64_at(c, "version"),
			md_text_safe(md_node_get_string(md_node_get(c, "path")), path, sizeof(path)));
	}
	if (md_node_get_bool(md_node_get(s, "cgroups_truncated")))
		fprintf(out, "  (the list stops at %d groups or %d levels)\n", MAX_GROUPS, MAX_DEPTH);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the system report");
	return NULL;
}

/* ---- HTML ---- */

/* The text report (no colour) inside a page, with &, <, > and quotes escaped. */
struct md_error *md_above_render_html(const struct md_node *doc, bool system, FILE *out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return md_error_os(errno, "open_memstream");
	struct md_error *err = system ? md_system_render_text(doc, false, mem) : md_cgroup_render_text(doc, false, mem);
	fclose(mem);
	if (err) {
		free(text);
		return err;
	}
	fprintf(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>memdissect %s</title>\n"
		     "<style>body{font-family:sans-serif;margin:2em}pre{font-size:13px;line-height:1.35}</style>\n"
		     "</head><body><h1>memdissect %s</h1>\n<pre>", system ? "system" : "cgroup",
		system ? "system" : "cgroup");
	for (size_t i = 0; i < len; i++) {
		switch (text[i]) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		default: fputc(text[i], out);
		}
	}
	fputs("</pre>\n</body></html>\n", out);
	free(text);
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the HTML report");
	return NULL;
}
