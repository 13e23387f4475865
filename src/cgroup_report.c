/* memdissect cgroup: a memory cgroup's usage split into parts that add up to it (memory.stat),
 * the member processes with RSS/PSS/USS (and with --attach their allocator classes), and the
 * OOM picture: distance to the limit, what the kernel can reclaim and what it cannot, events,
 * pressure. The report is a node tree (docs/json.md "cgroup"); the text renderer reads only it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup_report.h"
#include "live.h"
#include "session.h"

#define MAX_GROUPS 4096
#define MAX_DEPTH 32

const char *md_text_safe(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (len == 0)
		return "";
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		char tmp[4];
		size_t n = 0;
		if (*p == '\\') {
			tmp[n++] = '\\';
			tmp[n++] = '\\';
		} else if (*p < 0x20 || *p >= 0x7f) {
			tmp[n++] = '\\';
			tmp[n++] = 'x';
			tmp[n++] = hex[*p >> 4];
			tmp[n++] = hex[*p & 15];
		} else {
			tmp[n++] = (char)*p;
		}
		if (o + n >= len)
			break;
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

/* ---- the parts ---- */

static uint64_t stat_of(const struct md_cgroup *cg, const char *key)
{
	/* v1 reports this group alone and, as total_*, with its children; usage counts both. */
	if (cg->version == 1) {
		char total[64];
		snprintf(total, sizeof(total), "total_%s", key);
		bool found;
		uint64_t v = md_kv_get(&cg->stat, total, 0, &found);
		if (found)
			return v;
	}
	return md_kv_get(&cg->stat, key, 0, NULL);
}

static uint64_t sub_clamp(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static void add_part(struct md_cgroup_part *parts, size_t *n, const char *name, uint64_t bytes, bool reclaimable)
{
	if (*n >= MD_CGROUP_MAX_PARTS - 1 || bytes == 0)
		return;
	parts[(*n)++] = (struct md_cgroup_part){ name, (int64_t)(bytes > INT64_MAX ? INT64_MAX : bytes), reclaimable };
}

void md_cgroup_parts(const struct md_cgroup *cg, uint64_t members_anon, struct md_cgroup_part *parts, size_t *n_ret)
{
	size_t n = 0;
	uint64_t anon, cache, dirty, writeback, shmem;
	if (cg->version == 2) {
		anon = stat_of(cg, "anon");
		shmem = stat_of(cg, "shmem");
		/* v2 "file" counts tmpfs and shared memory too. */
		cache = sub_clamp(stat_of(cg, "file"), shmem);
		dirty = stat_of(cg, "file_dirty");
		writeback = stat_of(cg, "file_writeback");
	} else {
		/* v1 "rss" is anonymous memory and swap cache; "cache" is page cache including shmem. */
		anon = stat_of(cg, "rss");
		shmem = stat_of(cg, "shmem");
		cache = sub_clamp(stat_of(cg, "cache"), shmem);
		dirty = stat_of(cg, "dirty");
		writeback = stat_of(cg, "writeback");
	}
	uint64_t in_members = members_anon < anon ? members_anon : anon;
	add_part(parts, &n, "anon (member processes)", in_members, false);
	add_part(parts, &n, "anon (no member process)", anon - in_members, false);
	uint64_t unclean = dirty + writeback < cache ? dirty + writeback : cache;
	add_part(parts, &n, "page cache (clean)", cache - unclean, true);
	add_part(parts, &n, "page cache (dirty)", dirty < cache ? dirty : cache, false);
	add_part(parts, &n, "page cache (writeback)", unclean - (dirty < cache ? dirty : cache), false);
	add_part(parts, &n, "shmem and tmpfs", shmem, false);
	if (cg->version == 2) {
		uint64_t srec = stat_of(cg, "slab_reclaimable"), sun = stat_of(cg, "slab_unreclaimable");
		uint64_t stacks = stat_of(cg, "kernel_stack");
		uint64_t pt = stat_of(cg, "pagetables") + stat_of(cg, "sec_pagetables");
		uint64_t percpu = stat_of(cg, "percpu"), vmalloc = stat_of(cg, "vmalloc");
		add_part(parts, &n, "slab (reclaimable)", srec, true);
		add_part(parts, &n, "slab (unreclaimable)", sun, false);
		add_part(parts, &n, "kernel stacks", stacks, false);
		add_part(parts, &n, "page tables", pt, false);
		add_part(parts, &n, "percpu", percpu, false);
		add_part(parts, &n, "vmalloc", vmalloc, false);
		/* "kernel" (5.18 and later) holds the kernel parts above and other kernel uses. */
		bool found;
		uint64_t kernel = md_kv_get(&cg->stat, "kernel", 0, &found);
		if (found)
			add_part(parts, &n, "other kernel", sub_clamp(kernel, srec + sun + stacks + pt + percpu + vmalloc),
				 false);
		add_part(parts, &n, "sockets", stat_of(cg, "sock"), false);
		add_part(parts, &n, "zswap", stat_of(cg, "zswap"), false);
	} else if (cg->has_kmem && strcmp(cg->path, "/") != 0) {
		/* The v1 root's usage_in_bytes is its anon + cache + swap figures without kmem
		 * (mem_cgroup_usage() of the v1 memory controller); every other group's counter has it. */
		add_part(parts, &n, "kernel (kmem)", cg->kmem_bytes, false);
	}
	int64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += parts[i].bytes;
	int64_t usage = cg->usage_bytes > INT64_MAX ? INT64_MAX : (int64_t)cg->usage_bytes;
	parts[n++] = (struct md_cgroup_part){ "remainder", usage - sum, false };
	*n_ret = n;
}

/* ---- building ---- */

static struct md_node *limit_node(uint64_t v)
{
	return v == UINT64_MAX ? md_node_null() : md_node_u64(v);
}

static struct md_error *kv_object(const struct md_kv_list *l, struct md_node **obj_ret)
{
	struct md_node *o = md_node_object();
	struct md_error *err = o ? NULL : &md_error_nomem;
	for (size_t i = 0; !err && i < l->n; i++)
		err = md_node_set_u64(o, l->items[i].key, l->items[i].value);
	if (err) {
		md_node_destroy(o);
		return err;
	}
	*obj_ret = o;
	return NULL;
}

static struct md_node *psi_line_node(const struct md_psi_line *l)
{
	if (!l->valid)
		return md_node_null();
	struct md_node *o = md_node_object();
	if (!o)
		return NULL;
	if (md_node_set_double(o, "avg10", l->avg10) || md_node_set_double(o, "avg60", l->avg60) ||
	    md_node_set_double(o, "avg300", l->avg300) || md_node_set_u64(o, "total_us", l->total_us)) {
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

static struct md_error *cgroup_object(const struct md_cgroup *cg, struct md_node **obj_ret)
{
	struct md_error *err = NULL;
	struct md_node *o = md_node_object(), *sub = NULL;
	if (!o)
		return &md_error_nomem;
	MD_TRY(md_node_set_string(o, "path", cg->path));
	MD_TRY(md_node_set_string(o, "dir", cg->dir));
	MD_TRY(md_node_set_u64(o, "version", (uint64_t)cg->version));
	MD_TRY(md_node_set_u64(o, "usage_bytes", cg->usage_bytes));
	MD_TRY(md_node_set(o, "limit_bytes", limit_node(cg->limit_bytes)));
	MD_TRY(md_node_set(o, "high_bytes", limit_node(cg->high_bytes)));
	MD_TRY(md_node_set_u64(o, "swap_bytes", cg->swap_bytes));
	MD_TRY(kv_object(&cg->stat, &sub));
	MD_TRY(md_node_set(o, "stat", sub));
	MD_TRY(kv_object(&cg->events, &sub));
	MD_TRY(md_node_set(o, "events", sub));
	if (cg->has_pressure) {
		sub = md_node_object();
		MD_TRY(md_node_set(o, "pressure", sub));
		MD_TRY(md_node_set(sub, "some", psi_line_node(&cg->pressure.some)));
		MD_TRY(md_node_set(sub, "full", psi_line_node(&cg->pressure.full)));
	} else {
		MD_TRY(md_node_set(o, "pressure", md_node_null()));
	}
	*obj_ret = o;
	return NULL;
out:
	md_node_destroy(o);
	return err;
}

/* The member processes of dir and of every group below it. */
static struct md_error *collect_members(const char *dir, pid_t **pids_ret, size_t *n_ret, bool *truncated_ret)
{
	char **dirs;
	size_t n_dirs;
	struct md_error *err = md_cgroup_list_under(dir, MAX_GROUPS, MAX_DEPTH, &dirs, &n_dirs, truncated_ret);
	if (err)
		return err;
	pid_t *pids = NULL;
	size_t n = 0;
	for (size_t i = 0; i < n_dirs && !err; i++) {
		struct md_cgroup cg;
		struct md_error *e = md_cgroup_read(dirs[i], NULL, &cg);
		if (e) { /* a child that vanished meanwhile */
			md_error_destroy(e);
			continue;
		}
		if (n + cg.n_pids > MD_PIDS_MAX) {
			*truncated_ret = true;
		} else if (cg.n_pids) {
			pid_t *np = realloc(pids, (n + cg.n_pids) * sizeof(*np));
			if (!np)
				err = &md_error_nomem;
			else {
				pids = np;
				memcpy(pids + n, cg.pids, cg.n_pids * sizeof(*pids));
				n += cg.n_pids;
			}
		}
		md_cgroup_deinit(&cg);
	}
	md_cgroup_list_free(dirs, n_dirs);
	if (err) {
		free(pids);
		return err;
	}
	*pids_ret = pids;
	*n_ret = n;
	return NULL;
}

/* One session for all the members: plugins loaded once, a thread that could not stop in one
 * attach let go at the next; each process's symbols are dropped after its attach. */
static struct md_error *attach_classes(struct md_session *session, pid_t pid, struct md_node *proc)
{
	struct md_analysis a;
	struct md_error *err = md_session_analyze_live(session, pid, &a);
	md_session_forget(session, pid);
	if (err) {
		md_analysis_deinit(&a);
		if (err->code == MD_ERR_INTERRUPTED)
			return err;
		struct md_error *e2 = md_node_set(proc, "classes", md_node_null());
		if (!e2)
			e2 = md_node_set_string(proc, "attach_error", err->message);
		md_error_destroy(err);
		return e2;
	}
	struct md_node *cl = md_node_object();
	err = md_node_set(proc, "classes", cl);
	for (int c = 0; !err && c < MD_CLASS_COUNT; c++)
		err = md_node_set_u64(cl, md_class_name((enum md_class)c), a.report.classes[c]);
	if (!err)
		err = md_node_set_double(proc, "pause_ms", a.report.target.pause_ms);
	md_analysis_deinit(&a);
	return err;
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return (x > y) - (x < y);
}

static const char *pct_text(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	double p = whole ? 100.0 * (double)part / (double)whole : 0;
	snprintf(buf, len, p < 10 && p > 0 ? "%.1f %%" : "%.0f %%", p);
	return buf;
}

static struct md_error *verdict(const struct md_cgroup *cg, uint64_t reclaimable_cache, uint64_t reclaimable,
				struct md_node *summary)
{
	char line[512], b1[16], b2[16], b3[16], p[16];
	md_format_bytes(reclaimable, b2, sizeof(b2));
	md_format_bytes(reclaimable_cache, b3, sizeof(b3));
	struct md_error *err = NULL;
	if (cg->limit_bytes != UINT64_MAX && cg->limit_bytes > 0) {
		uint64_t headroom = sub_clamp(cg->limit_bytes, cg->usage_bytes);
		if ((err = md_node_set_u64(summary, "headroom_bytes", headroom)) ||
		    (err = md_node_set_double(summary, "headroom_percent",
					      100.0 * (double)headroom / (double)cg->limit_bytes)))
			return err;
		if (headroom == 0)
			snprintf(line, sizeof(line), "at the limit (%s); %s of the usage is reclaimable (%s page cache)",
				 md_format_bytes(cg->limit_bytes, b1, sizeof(b1)), b2, b3);
		else
			snprintf(line, sizeof(line), "%s from the limit (%s left of %s); %s of the usage is reclaimable "
				 "(%s page cache)", pct_text(headroom, cg->limit_bytes, p, sizeof(p)),
				 md_format_bytes(headroom, b1, sizeof(b1)),
				 md_format_bytes(cg->limit_bytes, (char[16]){ 0 }, 16), b2, b3);
	} else {
		if ((err = md_node_set(summary, "headroom_bytes", md_node_null())) ||
		    (err = md_node_set(summary, "headroom_percent", md_node_null())))
			return err;
		snprintf(line, sizeof(line), "no memory limit; usage %s, of which %s is reclaimable (%s page cache)",
			 md_format_bytes(cg->usage_bytes, b1, sizeof(b1)), b2, b3);
	}
	if (cg->high_bytes != UINT64_MAX && cg->usage_bytes > cg->high_bytes) {
		size_t l = strlen(line);
		snprintf(line + l, sizeof(line) - l, "; above memory.high (%s): the kernel throttles and reclaims",
			 md_format_bytes(cg->high_bytes, b1, sizeof(b1)));
	}
	return md_node_set_string(summary, "verdict", line);
}

struct md_error *md_cgroup_report_build(const char *dir, const char *path, const struct md_cgroup_report_options *o,
					struct md_node **doc_ret)
{
	struct md_cgroup cg;
	struct md_error *err = md_cgroup_read(dir, path, &cg);
	if (err)
		return err;
	pid_t *pids = NULL;
	size_t n_pids = 0;
	bool truncated = false;
	struct md_session *session = NULL;
	struct md_node *doc = md_node_object(), *sub = NULL;
	if (!doc) {
		err = &md_error_nomem;
		goto out;
	}
	MD_TRY(cgroup_object(&cg, &sub));
	MD_TRY(md_node_set(doc, "cgroup", sub));
	/* The document owns each container from the start (key order: summary, parts, processes). */
	struct md_node *summary = md_node_object(), *parts_node = md_node_array(), *procs = md_node_array(),
		       *notes = md_node_array();
	MD_TRY(md_node_set(doc, "summary", summary));
	MD_TRY(md_node_set(doc, "parts", parts_node));
	MD_TRY(md_node_set(doc, "processes", procs));
	MD_TRY(md_node_set(doc, "notes", notes));
	MD_TRY(collect_members(dir, &pids, &n_pids, &truncated));
	if (n_pids > 1)
		qsort(pids, n_pids, sizeof(*pids), cmp_pid);
	uint64_t sum_rss = 0, sum_pss = 0, sum_uss = 0, sum_anon = 0;
	for (size_t i = 0; i < n_pids; i++) {
		struct md_proc_memory pm;
		struct md_error *e = md_proc_memory_read(pids[i], &pm);
		if (e) {
			md_node_append(notes, md_node_stringf("process %d: %s", (int)pids[i], e->message));
			md_error_destroy(e);
			continue;
		}
		if (!pm.has_mm) /* a kernel thread: no memory of its own */
			continue;
		struct md_node *p = md_node_object();
		MD_TRY(md_node_append(procs, p));
		MD_TRY(md_node_set_i64(p, "pid", pm.pid));
		MD_TRY(md_node_set_string(p, "comm", pm.comm));
		MD_TRY(md_node_set_u64(p, "rss_bytes", pm.rss_bytes));
		MD_TRY(md_node_set_u64(p, "pss_bytes", pm.pss_bytes));
		MD_TRY(md_node_set_u64(p, "uss_bytes", pm.uss_bytes));
		MD_TRY(md_node_set_u64(p, "anon_bytes", pm.anon_bytes));
		MD_TRY(md_node_set_u64(p, "swap_bytes", pm.swap_bytes));
		sum_rss += pm.rss_bytes;
		sum_pss += pm.pss_bytes;
		sum_uss += pm.uss_bytes;
		sum_anon += pm.anon_bytes;
		/* One process at a time: each is stopped only for its own attach. */
		if (o && o->attach && pm.pid == getpid()) {
			MD_TRY(md_node_set(p, "classes", md_node_null()));
			MD_TRY(md_node_set_string(p, "attach_error", "memdissect itself"));
		} else if (o && o->attach) {
			if (!session)
				MD_TRY(md_session_create(&o->aopts, &session));
			MD_TRY(attach_classes(session, pm.pid, p));
		} else {
			MD_TRY(md_node_set(p, "classes", md_node_null()));
		}
		if (md_live_interrupted) {
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
			goto out;
		}
	}
	if (truncated)
		md_node_append(notes, md_node_stringf("more than %d groups or %d levels below this one, or "
						      "more than %d processes: the list is cut there",
						      MAX_GROUPS, MAX_DEPTH, MD_PIDS_MAX));

	struct md_cgroup_part parts[MD_CGROUP_MAX_PARTS];
	size_t n_parts;
	md_cgroup_parts(&cg, sum_anon, parts, &n_parts);
	uint64_t reclaimable = 0, unreclaimable = 0, cache = 0, clean_cache = 0;
	for (size_t i = 0; i < n_parts; i++) {
		struct md_node *pn = md_node_object();
		MD_TRY(md_node_append(parts_node, pn));
		MD_TRY(md_node_set_string(pn, "name", parts[i].name));
		MD_TRY(md_node_set_i64(pn, "bytes", parts[i].bytes));
		MD_TRY(md_node_set_bool(pn, "reclaimable", parts[i].reclaimable));
		if (strcmp(parts[i].name, "remainder") == 0)
			continue;
		if (parts[i].reclaimable)
			reclaimable += (uint64_t)parts[i].bytes;
		else
			unreclaimable += (uint64_t)parts[i].bytes;
		if (strncmp(parts[i].name, "page cache", 10) == 0)
			cache += (uint64_t)parts[i].bytes;
		if (strcmp(parts[i].name, "page cache (clean)") == 0)
			clean_cache = (uint64_t)parts[i].bytes;
	}
	MD_TRY(verdict(&cg, clean_cache, reclaimable, summary));
	MD_TRY(md_node_set_u64(summary, "reclaimable_bytes", reclaimable));
	MD_TRY(md_node_set_u64(summary, "unreclaimable_bytes", unreclaimable));
	MD_TRY(md_node_set_u64(summary, "page_cache_bytes", cache));
	MD_TRY(md_node_set_i64(summary, "remainder_bytes", parts[n_parts - 1].bytes));
	MD_TRY(md_node_set_u64(summary, "members", md_node_count(procs)));
	MD_TRY(md_node_set_u64(summary, "members_rss_bytes", sum_rss));
	MD_TRY(md_node_set_u64(summary, "members_pss_bytes", sum_pss));
	MD_TRY(md_node_set_u64(summary, "members_uss_bytes", sum_uss));
	MD_TRY(md_node_set_u64(summary, "members_anon_bytes", sum_anon));
	*doc_ret = doc;
	doc = NULL;
out:
	md_session_destroy(session);
	md_node_destroy(doc);
	free(pids);
	md_cgroup_deinit(&cg);
	return err;
}

/* ---- text ---- */

static uint64_t u64_at(const struct md_node *n, const char *path)
{
	return md_node_get_u64(md_node_path(n, path));
}

static const char *bytes_or(const struct md_node *n, const char *none, char *buf, size_t len)
{
	if (!n || md_node_type(n) == MD_NODE_NULL)
		return none;
	return md_format_bytes(md_node_get_u64(n), buf, len);
}

static const char *signed_bytes(int64_t v, char *buf, size_t len)
{
	if (v >= 0)
		return md_format_bytes((uint64_t)v, buf, len);
	char tmp[16];
	snprintf(buf, len, "-%s", md_format_bytes((uint64_t)(-(v + 1)) + 1, tmp, sizeof(tmp)));
	return buf;
}

struct md_error *md_cgroup_render_text(const struct md_node *doc, bool color, FILE *out)
{
	const char *bold = color ? "\033[1m" : "", *rst = color ? "\033[0m" : "", *dim = color ? "\033[2m" : "";
	const struct md_node *cg = md_node_get(doc, "cgroup"), *sum = md_node_get(doc, "summary");
	char s1[512], s2[1024], b1[16], b2[16], b3[16], b4[16], b5[16];
	fprintf(out, "%scgroup v%" PRIu64 " %s%s\n", bold, u64_at(cg, "version"),
		md_text_safe(md_node_get_string(md_node_get(cg, "path")), s1, sizeof(s1)), rst);
	fprintf(out, "%s%s%s\n", dim, md_text_safe(md_node_get_string(md_node_get(cg, "dir")), s2, sizeof(s2)), rst);
	fprintf(out, "%s%s%s\n\n", bold, md_text_safe(md_node_get_string(md_node_get(sum, "verdict")), s1, sizeof(s1)),
		rst);
	uint64_t usage = u64_at(cg, "usage_bytes");
	fprintf(out, "usage %s, limit %s, memory.high %s, swap %s\n\n", md_format_bytes(usage, b1, sizeof(b1)),
		bytes_or(md_node_get(cg, "limit_bytes"), "none", b2, sizeof(b2)),
		bytes_or(md_node_get(cg, "high_bytes"), "none", b3, sizeof(b3)),
		md_format_bytes(u64_at(cg, "swap_bytes"), b4, sizeof(b4)));

	fprintf(out, "%sWhere the usage goes%s\n", bold, rst);
	const struct md_node *parts = md_node_get(doc, "parts");
	for (size_t i = 0; i < md_node_count(parts); i++) {
		const struct md_node *p = md_node_at(parts, i);
		int64_t v = md_node_get_i64(md_node_get(p, "bytes"));
		fprintf(out, "  %-26s %10s %5s  %s\n", md_node_get_string(md_node_get(p, "name")),
			signed_bytes(v, b1, sizeof(b1)), v > 0 ? pct_text((uint64_t)v, usage, b2, sizeof(b2)) : "",
			md_node_get_bool(md_node_get(p, "reclaimable")) ? "reclaimable" : "");
	}
	fprintf(out, "  %-26s %10s\n", "= usage", md_format_bytes(usage, b1, sizeof(b1)));
	fprintf(out, "  (the remainder is what memory.stat does not itemise: charges batched per CPU, and\n"
		     "   kernel memory the counters above leave out)\n\n");
	fprintf(out, "The kernel can reclaim %s (clean page cache, reclaimable slab) without writing anything;\n"
		     "it cannot reclaim %s (anonymous memory without swap, dirty and writeback pages, shmem,\n"
		     "unreclaimable kernel memory).\n\n",
		md_format_bytes(u64_at(sum, "reclaimable_bytes"), b1, sizeof(b1)),
		md_format_bytes(u64_at(sum, "unreclaimable_bytes"), b2, sizeof(b2)));

	const struct md_node *ev = md_node_get(cg, "events");
	if (md_node_count(ev)) {
		fprintf(out, "events:");
		for (size_t i = 0; i < md_node_count(ev); i++)
			fprintf(out, " %s %" PRIu64, md_node_key_at(ev, i), md_node_get_u64(md_node_at(ev, i)));
		fprintf(out, "\n");
	}
	const struct md_node *ps = md_node_get(cg, "pressure");
	if (ps && md_node_type(ps) == MD_NODE_OBJECT) {
		fprintf(out, "pressure:");
		const char *const kinds[] = { "some", "full" };
		for (int k = 0; k < 2; k++) {
			const struct md_node *l = md_node_get(ps, kinds[k]);
			if (l && md_node_type(l) == MD_NODE_OBJECT)
				fprintf(out, " %s %.2f %% / %.2f %% / %.2f %% (10 s / 60 s / 300 s)%s", kinds[k],
					md_node_get_double(md_node_get(l, "avg10")), md_node_get_double(md_node_get(l, "avg60")),
					md_node_get_double(md_node_get(l, "avg300")), k == 0 ? ";" : "");
		}
		fprintf(out, "\n");
	} else {
		fprintf(out, "pressure: not available (cgroup v1 has no memory.pressure)\n");
	}

	const struct md_node *procs = md_node_get(doc, "processes");
	fprintf(out, "\n%sMember processes (%zu)%s\n", bold, md_node_count(procs), rst);
	bool with_classes = false;
	for (size_t i = 0; i < md_node_count(procs); i++)
		with_classes |= md_node_type(md_node_get(md_node_at(procs, i), "classes")) == MD_NODE_OBJECT;
	fprintf(out, "  %8s %-16s %10s %10s %10s %10s", "pid", "comm", "rss", "pss", "uss", "anon");
	if (with_classes)
		fprintf(out, " %10s %10s %10s %10s", "live", "free", "metadata", "other");
	fprintf(out, "\n");
	for (size_t i = 0; i < md_node_count(procs); i++) {
		const struct md_node *p = md_node_at(procs, i);
		fprintf(out, "  %8" PRId64 " %-16s %10s %10s %10s %10s", md_node_get_i64(md_node_get(p, "pid")),
			md_text_safe(md_node_get_string(md_node_get(p, "comm")), s1, 64),
			md_format_bytes(u64_at(p, "rss_bytes"), b1, sizeof(b1)),
			md_format_bytes(u64_at(p, "pss_bytes"), b2, sizeof(b2)),
			md_format_bytes(u64_at(p, "uss_bytes"), b3, sizeof(b3)),
			md_format_bytes(u64_at(p, "anon_bytes"), b4, sizeof(b4)));
		const struct md_node *cl = md_node_get(p, "classes");
		if (cl && md_node_type(cl) == MD_NODE_OBJECT) {
			uint64_t other = u64_at(cl, "stack") + u64_at(cl, "file") + u64_at(cl, "shared") +
					 u64_at(cl, "anon_other");
			fprintf(out, " %10s %10s %10s %10s", md_format_bytes(u64_at(cl, "live"), b1, sizeof(b1)),
				md_format_bytes(u64_at(cl, "free"), b2, sizeof(b2)),
				md_format_bytes(u64_at(cl, "metadata"), b3, sizeof(b3)),
				md_format_bytes(other, b4, sizeof(b4)));
		} else if (md_node_get(p, "attach_error")) {
			fprintf(out, "  (attach: %s)", md_text_safe(md_node_get_string(md_node_get(p, "attach_error")), s2,
								    sizeof(s2)));
		}
		fprintf(out, "\n");
	}
	fprintf(out, "  %8s %-16s %10s %10s %10s %10s\n", "", "sum", md_format_bytes(u64_at(sum, "members_rss_bytes"), b1, 16),
		md_format_bytes(u64_at(sum, "members_pss_bytes"), b2, 16),
		md_format_bytes(u64_at(sum, "members_uss_bytes"), b3, 16),
		md_format_bytes(u64_at(sum, "members_anon_bytes"), b4, 16));
	uint64_t pss = u64_at(sum, "members_pss_bytes");
	fprintf(out, "\nThe members' PSS adds up to %s against a usage of %s: page cache (%s) is charged to the\n"
		     "cgroup whether or not a process maps it, kernel memory is in no process's RSS, and RSS counts\n"
		     "shared pages once per process (the RSS sum is %s), which PSS divides among them.\n",
		md_format_bytes(pss, b1, 16), md_format_bytes(usage, b2, 16),
		md_format_bytes(u64_at(sum, "page_cache_bytes"), b3, 16),
		md_format_bytes(u64_at(sum, "members_rss_bytes"), b5, 16));
	const struct md_node *notes = md_node_get(doc, "notes");
	for (size_t i = 0; i < md_node_count(notes); i++)
		fprintf(out, "note: %s\n", md_text_safe(md_node_get_string(md_node_at(notes, i)), s2, sizeof(s2)));
	if (fflush(out) == EOF || ferror(out))
		return md_error_os(errno ? errno : EIO, "writing the cgroup report");
	return NULL;
}
