#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analyze.h"
#include "core.h"
#include "live.h"
#include "procfs.h"
#include "safepoint.h"
#include "target_impl.h"
#include "unanalysed.h"

struct active_plugin {
	const struct md_plugin *plugin;
	void *state;
	struct md_sink *sink;
	bool inconsistent;
	char why[256];
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fill_system(struct md_report *r, pid_t pid)
{
	char *buf;
	size_t len;
	struct md_error *err = md_read_file("/proc/meminfo", &buf, &len);
	if (!err) {
		struct md_meminfo mi = { 0 };
		err = md_parse_meminfo(buf, len, &mi);
		free(buf);
		if (!err) {
			r->system.valid = true;
			r->system.mem_total_bytes = mi.mem_total;
			r->system.mem_available_bytes = mi.mem_available;
			r->system.mem_free_bytes = mi.mem_free;
			r->system.cached_bytes = mi.cached;
			r->system.swap_total_bytes = mi.swap_total;
			r->system.swap_free_bytes = mi.swap_free;
		}
	}
	md_error_destroy(err);
	struct md_cgroup_memory cg = { 0 };
	err = md_cgroup_memory_read(pid, "/sys/fs/cgroup", &cg);
	if (!err) {
		r->cgroup.valid = true;
		r->cgroup.path = cg.path;
		cg.path = NULL;
		r->cgroup.version = cg.version;
		r->cgroup.usage_bytes = cg.usage_bytes;
		r->cgroup.limit_bytes = cg.limit_bytes;
	}
	md_cgroup_memory_deinit(&cg);
	md_error_destroy(err);
}

static void fill_memory(struct md_report *r, const struct md_live_capture *cap, size_t threads)
{
	r->memory.rss_bytes = cap->rollup.rss;
	r->memory.pss_bytes = cap->rollup.pss;
	r->memory.uss_bytes = cap->rollup.private_clean + cap->rollup.private_dirty;
	r->memory.swap_bytes = cap->rollup.swap;
	r->memory.hugetlb_bytes = cap->rollup.private_hugetlb + cap->rollup.shared_hugetlb;
	r->memory.vm_size_bytes = cap->status.vm_size;
	r->memory.anon_bytes = cap->status.rss_anon;
	r->memory.file_bytes = cap->status.rss_file;
	r->memory.shmem_bytes = cap->status.rss_shmem;
	r->memory.status_vm_rss_bytes = cap->status.vm_rss;
	snprintf(r->target.comm, sizeof(r->target.comm), "%s", cap->comm);
	r->target.exe = cap->exe ? strdup(cap->exe) : NULL;
	r->target.threads = threads;
	r->reconciled_pages = cap->reconciled_pages;
	if (cap->rollup_rss_as_read && cap->rollup_rss_as_read != cap->rollup.rss)
		md_report_add_note(r,
				   "smaps_rollup said RSS %llu bytes but the mappings of smaps add up to %llu: the kernel reclaimed or mapped pages "
				   "during the capture (memory pressure?); the mappings' sum is used",
				   (unsigned long long)cap->rollup_rss_as_read, (unsigned long long)cap->rollup.rss);
	for (size_t i = 0; i < cap->n_notes; i++)
		md_report_add_note(r, "%s", cap->notes[i]);
	if (cap->guessed_zero_pages)
		md_report_add_note(r,
				   "pagemap gave no page frame numbers (needs CAP_SYS_ADMIN): %llu resident-looking pages are the shared zero page "
				   "or copy-on-write copies, and which ones could not be told apart; their classes are a guess",
				   (unsigned long long)cap->guessed_zero_pages);
}

/* Ask every plugin whether the target is between allocator operations. */
static bool all_quiescent(struct active_plugin *ap, size_t n, struct md_target *t)
{
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		ap[i].inconsistent = false;
		if (!ap[i].plugin->quiescent)
			continue;
		ap[i].why[0] = 0;
		if (!ap[i].plugin->quiescent(ap[i].state, t, ap[i].why, sizeof(ap[i].why))) {
			ap[i].inconsistent = true;
			ok = false;
		}
	}
	return ok;
}

/* Before the pause (or on a core): every plugin looks for its allocator. A plugin that finds
 * its allocator but cannot analyse it leaves a note and makes the report partial. */
static struct md_error *open_plugins(struct md_target *t, const struct md_analyze_options *opts,
				     struct md_analysis *a, struct active_plugin **ap_ret, size_t *n_ret)
{
	struct md_report *r = &a->report;
	const struct md_plugin_set *set = a->lent_plugins;
	if (!set) {
		md_plugins_load(&a->plugins);
		set = &a->plugins;
	}
	struct active_plugin *ap = calloc(set->n + 1, sizeof(*ap));
	size_t n_ap = 0;
	if (!ap)
		return &md_error_nomem;
	struct md_plugin_options popts = { .debuginfo_disabled = opts->debuginfo_disabled };
	for (size_t i = 0; i < set->n; i++) {
		const struct md_plugin *p = set->items[i].plugin;
		if (!p || (opts->only_plugin && strcmp(opts->only_plugin, p->name) != 0))
			continue;
		void *state = NULL;
		struct md_error *perr = p->open(t, &popts, &state);
		if (perr) {
			md_report_add_note(r, "%s: %s", p->name, perr->message);
			r->partial = true;
			md_error_destroy(perr);
			continue;
		}
		if (state)
			ap[n_ap++] = (struct active_plugin){ .plugin = p, .state = state };
	}
	*ap_ret = ap;
	*n_ret = n_ap;
	return NULL;
}

/* The classifier, then every plugin's walk into its own sink. when says how hard we tried to
 * catch the target outside its allocator ("after 5 re-stops"). */
static struct md_error *walk_plugins(struct md_analysis *a, struct active_plugin *ap, size_t n_ap,
				     struct md_target *t, const char *when)
{
	struct md_report *r = &a->report;
	struct md_error *err = md_classifier_create(t, &a->classifier);
	for (size_t i = 0; i < n_ap && !err; i++) {
		ap[i].sink = md_classifier_sink(a->classifier, ap[i].plugin->name);
		if (!ap[i].sink) {
			err = &md_error_nomem;
			break;
		}
		if (ap[i].inconsistent)
			md_report_add_note(r, "%s: target stayed inside the allocator %s (%s): figures may be inconsistent",
					   ap[i].plugin->name, when, ap[i].why);
		struct md_error *werr = ap[i].plugin->walk(ap[i].state, t, ap[i].sink, ap[i].inconsistent);
		if (werr) {
			if (werr->code == MD_ERR_EXITED || werr->code == MD_ERR_INTERRUPTED) {
				err = werr;
				break;
			}
			md_report_add_note(r, "%s: walk failed: %s", ap[i].plugin->name, werr->message);
			r->partial = true;
			md_error_destroy(werr);
		}
		if (md_live_interrupted)
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
	}
	return err;
}

/* After the pause: what each walk gathered and left to emit (ABI 3 finish). */
static void finish_plugins(struct active_plugin *ap, size_t n_ap, struct md_target *t, struct md_report *r)
{
	for (size_t i = 0; i < n_ap; i++) {
		const struct md_plugin *p = ap[i].plugin;
		if (p->abi_version < 3 || !p->finish || !ap[i].sink)
			continue;
		struct md_error *ferr = p->finish(ap[i].state, t, ap[i].sink);
		if (ferr) {
			md_report_add_note(r, "%s: walk failed after the pause: %s", p->name, ferr->message);
			r->partial = true;
			md_error_destroy(ferr);
		}
	}
}

/* After the walk, without target memory: each plugin's object in "allocators". */
/* "holds": the regions of other allocators inside this one's live spans (docs/json.md). */
static struct md_error *set_holds(struct md_node *obj, const struct md_sink *sink)
{
	size_t n;
	const struct md_classifier_hold *h = md_classifier_holds(sink, &n);
	struct md_node *arr = md_node_array();
	struct md_error *err = arr ? NULL : &md_error_nomem;
	for (size_t i = 0; i < n && !err; i++) {
		struct md_node *o = md_node_object();
		err = o ? md_node_set_string(o, "allocator", h[i].allocator) : &md_error_nomem;
		if (!err)
			err = md_node_set_u64(o, "bytes", h[i].bytes);
		if (!err)
			err = md_node_set_u64(o, "regions", h[i].regions);
		if (!err)
			err = md_node_set_u64(o, "resident_pages", h[i].resident_pages);
		if (!err)
			err = md_node_append(arr, o);
		else
			md_node_destroy(o);
	}
	if (err) {
		md_node_destroy(arr);
		return err;
	}
	return md_node_set(obj, "holds", arr);
}

static struct md_error *report_plugins(struct active_plugin *ap, size_t n_ap, struct md_report *r)
{
	struct md_error *err = NULL;
	for (size_t i = 0; i < n_ap && !err; i++) {
		struct md_node *obj = md_node_object();
		struct md_error *rerr = obj ? md_node_set_string(obj, "name", ap[i].plugin->name) : &md_error_nomem;
		if (!rerr)
			rerr = ap[i].plugin->report(ap[i].state, ap[i].sink, obj);
		if (!rerr && ap[i].inconsistent)
			rerr = md_node_set_string(obj, "consistency", ap[i].why);
		if (!rerr)
			rerr = set_holds(obj, ap[i].sink);
		if (rerr) {
			md_report_add_note(r, "%s: report failed: %s", ap[i].plugin->name, rerr->message);
			md_error_destroy(rerr);
			md_node_destroy(obj);
			continue;
		}
		err = md_node_append(r->allocators, obj);
	}
	return err;
}

/* A plugin counts every finding ("findings" in its object) but records a bounded number of them:
 * the rest are said to be missing, with the counts, as docs/json.md promises. */
static void note_dropped_findings(struct md_report *r)
{
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		const struct md_node *total = md_node_get(a, "findings");
		if (!name || md_node_type(total) != MD_NODE_U64)
			continue;
		uint64_t seen = md_node_get_u64(total), kept = 0;
		for (size_t k = 0; k < r->n_findings; k++)
			kept += r->findings[k].allocator && strcmp(r->findings[k].allocator, name) == 0;
		if (seen > kept)
			md_report_add_note(r, "%s: %llu findings were not recorded: the walk saw %llu and the report "
					   "keeps %llu (a bounded number per group)",
					   name, (unsigned long long)(seen - kept), (unsigned long long)seen,
					   (unsigned long long)kept);
	}
}

static void close_plugins(struct active_plugin *ap, size_t n_ap)
{
	for (size_t i = 0; i < n_ap; i++)
		ap[i].plugin->close(ap[i].state);
	free(ap);
}

/* MEMDISSECT_DEBUG_TIMING=1 prints the time of each phase on stderr. */
static void phase(const char *name)
{
	static int enabled = -1;
	static double last;
	if (enabled < 0) {
		const char *e = getenv("MEMDISSECT_DEBUG_TIMING");
		enabled = e && *e == '1';
		last = now_ms();
	}
	if (!enabled)
		return;
	double t = now_ms();
	fprintf(stderr, "timing: %-24s %8.3f ms\n", name, t - last);
	last = t;
}

static void hold_pause(unsigned ms)
{
	if (!ms)
		return;
	fprintf(stderr, "paused\n");
	fflush(stderr);
	double end = now_ms() + ms;
	while (!md_live_interrupted && now_ms() < end) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* maps writes " (deleted)" after the name of an unlinked file, and attach/procfs.c strips it; a file
 * really named "x (deleted)" reads the same. The link count behind /proc/PID/map_files tells
 * them apart: a file still linked gets its full name back. */
static void resolve_deleted(struct md_target *t)
{
	static const char suffix[] = " (deleted)";
	for (size_t i = 0; i < t->n_mappings; i++) {
		struct md_mapping *m = &t->mappings[i];
		if (!m->deleted || !m->path || m->path[0] != '/')
			continue;
		char link[96];
		snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)t->pid, m->start, m->end);
		struct stat st;
		if (stat(link, &st) != 0 || st.st_nlink == 0)
			continue;
		size_t l = strlen(m->path);
		char *full = realloc(m->path, l + sizeof(suffix));
		if (!full)
			continue;
		memcpy(full + l, suffix, sizeof(suffix));
		m->path = full;
		m->deleted = false;
	}
}

/* All plugins as one safe-point check (attach and snapshot). */
struct quiescence {
	struct active_plugin *ap;
	size_t n_ap;
};

static bool safe_point_quiescent(void *arg, struct md_target *t, char *why, size_t why_len)
{
	struct quiescence *q = arg;
	if (all_quiescent(q->ap, q->n_ap, t))
		return true;
	for (size_t i = 0; i < q->n_ap; i++)
		if (q->ap[i].inconsistent) {
			snprintf(why, why_len, "%s: %s", q->ap[i].plugin->name, q->ap[i].why);
			break;
		}
	return false;
}

/* A thread must run on when a plugin that is not at its safe point says so (ABI 2 plugins). */
static bool safe_point_must_run(void *arg, struct md_target *t, const struct md_thread *thread)
{
	struct quiescence *q = arg;
	for (size_t i = 0; i < q->n_ap; i++) {
		const struct md_plugin *p = q->ap[i].plugin;
		if (q->ap[i].inconsistent && p->abi_version >= 2 && p->must_run && p->must_run(q->ap[i].state, t, thread))
			return true;
	}
	return false;
}

static struct md_error *analyze_live(pid_t pid, const struct md_analyze_options *opts,
				     const struct md_analysis_resources *res, struct md_analysis *a)
{
	double t0 = now_ms();
	memset(a, 0, sizeof(*a));
	md_report_init(&a->report);
	a->lent_plugins = res ? res->plugins : NULL;
	struct md_report *r = &a->report;
	r->target.pid = pid;
	r->target.source = "live";
	r->target.residency = "pagemap";

	struct md_live_options lopts = {
		.debuginfo_disabled = opts->debuginfo_disabled,
		.symbols = res ? res->symbols : NULL,
		.counters = res ? res->counters : NULL,
		.cache = res ? res->cache : NULL,
		.tracer = res ? res->tracer : NULL,
	};
	struct md_target *t = NULL;
	phase("start");
	struct md_error *err = md_live_open(pid, &lopts, &t);
	if (err)
		return err;
	r->target.pid = md_target_pid(t); /* a thread id stands for its process */
	phase("open target");

	/* Before the pause: plugins find their allocator (symbols, layouts). */
	struct active_plugin *ap = NULL;
	size_t n_ap = 0;
	err = open_plugins(t, opts, a, &ap, &n_ap);
	if (err) {
		md_target_destroy(t);
		return err;
	}

	phase("open plugins");
	a->timing.open_ms = now_ms() - t0;
	/* The pause: from here until the detach no debug file is downloaded. */
	md_symbols_block_network(t->symbols, true);
	struct md_live_capture cap = { 0 };
	err = md_target_stop(t);
	phase("stop threads");
	struct md_safe_point_result sp = { 0 };
	if (!err) {
		struct quiescence q = { ap, n_ap };
		struct md_safe_point_ops ops = { .quiescent = safe_point_quiescent, .must_run = safe_point_must_run, .arg = &q };
		struct md_safe_point_options sopts = { .max_restops = opts->max_retries, .restop_usec = opts->retry_usec };
		if (!n_ap)
			ops.quiescent = NULL;
		err = md_live_reach_safe_point(t, &cap, &ops, &sopts, &sp);
	}
	phase("capture /proc, pagemap"); /* the safe point ends with the capture */
	unsigned retries = sp.restops;
	r->target.attach_retries = retries;
	r->target.attach_polls = sp.polls;
	phase("quiescence");
	if (!err) {
		char when[64];
		snprintf(when, sizeof(when), "after %u re-stops", retries);
		double w0 = now_ms();
		err = walk_plugins(a, ap, n_ap, t, when);
		a->timing.walk_ms = now_ms() - w0;
	}
	phase("walk");
	if (!err)
		hold_pause(opts->hold_pause_ms);
	r->target.pause_ms = md_target_pause_seconds(t) * 1e3;
	md_target_resume(t);
	md_symbols_block_network(t->symbols, false);
	r->target.pause_ms = md_target_pause_seconds(t) * 1e3;
	if (!err && md_live_interrupted)
		err = md_error_create(MD_ERR_INTERRUPTED, "interrupted: target detached");

	phase("detach");
	/* After the pause: classify, report. */
	if (!err) {
		resolve_deleted(t);
		finish_plugins(ap, n_ap, t, r);
	}
	if (!err) {
		fill_memory(r, &cap, t->n_threads + cap.n_unstopped);
		fill_system(r, r->target.pid);
		err = md_classifier_finish(a->classifier, r);
	}
	if (!err)
		err = report_plugins(ap, n_ap, r);
	if (!err)
		note_dropped_findings(r);
	if (!err)
		err = md_find_unanalysed(t, r);
	phase("classify, report");
	close_plugins(ap, n_ap);
	md_live_capture_deinit(&cap);
	md_target_destroy(t);
	r->target.total_ms = now_ms() - t0;
	a->timing.pause_ms = r->target.pause_ms;
	a->timing.total_ms = r->target.total_ms;
	return err;
}

/* What the core could and could not tell, in the report's notes. */
static void core_notes(struct md_report *r, const struct md_core_info *info)
{
	char b1[16];
	static const char *const names[] = {
		[MD_CORE_RESIDENCY_PAGEMAP] = "pagemap",
		[MD_CORE_RESIDENCY_HOLES] = "holes",
		[MD_CORE_RESIDENCY_UNKNOWN] = "unknown",
	};
	r->target.residency = (unsigned)info->residency < 3 ? names[info->residency] : "unknown";
	switch (info->residency) {
	case MD_CORE_RESIDENCY_PAGEMAP:
		md_report_add_note(r, "core: memdissect snapshot of process %d: residency and smaps figures as captured during its %.1f ms pause%s",
				   (int)info->pid, info->snapshot_pause_ms,
				   info->snapshot_consistent ? "" : " (the target was inside its allocator)");
		break;
	case MD_CORE_RESIDENCY_HOLES:
		md_report_add_note(r, "core: residency from the core's holes (%s core): pages the kernel did not write count as not resident",
				   info->producer);
		break;
	case MD_CORE_RESIDENCY_UNKNOWN:
		md_report_add_note(r, "core: residency unknown (%s core without holes: written by gdb, piped, compressed or copied): the dumped pages holding data are counted as resident; %s of pages of zeros are not (residency unknown)",
				   info->producer, md_format_bytes(info->zero_dumped_pages * MD_PAGE_SIZE, b1, sizeof(b1)));
		break;
	}
	if (info->not_dumped_file_pages)
		md_report_add_note(r, "core: %s of file mappings not in the core (read from the files on disk, not counted): residency unknown",
				   md_format_bytes(info->not_dumped_file_pages * MD_PAGE_SIZE, b1, sizeof(b1)));
	for (size_t i = 0; i < info->n_notes; i++)
		md_report_add_note(r, "%s", info->notes[i]);
}

struct md_error *md_analyze_core(const char *path, const struct md_analyze_options *opts, struct md_analysis *a)
{
	double t0 = now_ms();
	memset(a, 0, sizeof(*a));
	md_report_init(&a->report);
	struct md_core_options copts = {
		.debuginfo_disabled = opts->debuginfo_disabled,
		.exe = opts->exe,
		.sysroot = opts->sysroot,
	};
	struct md_target *t = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(path, &copts, &t, &info);
	if (err) {
		a->report.target.source = "core";
		return err;
	}
	return md_analyze_core_target(path, t, &info, t0, opts, a);
}

struct md_error *md_analyze_core_target(const char *path, struct md_target *t, struct md_core_info *info_in,
					double t0, const struct md_analyze_options *opts, struct md_analysis *a)
{
	if (t0 <= 0)
		t0 = now_ms();
	struct md_core_info info = *info_in;
	memset(info_in, 0, sizeof(*info_in));
	struct md_report *r = &a->report;
	r->target.source = "core";
	r->target.pid = info.pid;
	struct md_error *err;

	struct active_plugin *ap = NULL;
	size_t n_ap = 0;
	err = open_plugins(t, opts, a, &ap, &n_ap);
	if (err) {
		md_target_destroy(t);
		md_core_info_deinit(&info);
		return err;
	}
	/* No re-stop is possible: a core caught inside the allocator stays so. */
	if (n_ap)
		all_quiescent(ap, n_ap, t);
	err = walk_plugins(a, ap, n_ap, t, "when the core was written");
	if (!err)
		finish_plugins(ap, n_ap, t, r);
	if (!err) {
		struct md_live_capture cap = {
			.rollup = info.rollup,
			.status = info.status,
			.exe = info.exe,
			.reconciled_pages = info.reconciled_pages,
		};
		snprintf(cap.comm, sizeof(cap.comm), "%s", info.comm);
		fill_memory(r, &cap, t->n_threads);
		if (info.meminfo_valid) {
			r->system.valid = true;
			r->system.mem_total_bytes = info.meminfo.mem_total;
			r->system.mem_available_bytes = info.meminfo.mem_available;
			r->system.mem_free_bytes = info.meminfo.mem_free;
			r->system.cached_bytes = info.meminfo.cached;
			r->system.swap_total_bytes = info.meminfo.swap_total;
			r->system.swap_free_bytes = info.meminfo.swap_free;
		}
		if (info.cgroup_valid) {
			r->cgroup.valid = true;
			r->cgroup.path = info.cgroup.path;
			info.cgroup.path = NULL;
			r->cgroup.version = info.cgroup.version;
			r->cgroup.usage_bytes = info.cgroup.usage_bytes;
			r->cgroup.limit_bytes = info.cgroup.limit_bytes;
		}
		err = md_classifier_finish(a->classifier, r);
	}
	if (!err) {
		core_notes(r, &info);
		err = report_plugins(ap, n_ap, r);
	}
	if (!err)
		note_dropped_findings(r);
	if (!err)
		err = md_find_unanalysed(t, r);
	/* Whatever the walks made of it, a core that shrank under us gave zeros for what it lost. */
	if (md_core_shrunk(t)) {
		md_error_destroy(err);
		err = md_error_create(MD_ERR_BAD_FILE, "%s: the core file shrank while it was read (or a page of it could not be read): no report from a core that changed under us",
				      path);
	}
	close_plugins(ap, n_ap);
	md_target_destroy(t);
	md_core_info_deinit(&info);
	r->target.total_ms = now_ms() - t0;
	return err;
}

/* An exec replaces everything the attach had learnt (maps, symbols, allocator): start again once
 * on the new image; a second exec in a row ends the attach. */
static struct md_error *exec_error(struct md_error *err, pid_t pid, bool retried)
{
	if (!err || err->code != MD_ERR_EXECED)
		return err;
	md_error_destroy(err);
	return md_error_create(MD_ERR_EXITED, "process %d: the target exec'd during the attach%s", (int)pid,
			       retried ? " (twice in a row: it keeps starting new programs)" : "");
}

struct md_error *md_analyze_snapshot(pid_t pid, const char *path, const struct md_analyze_options *opts,
				     struct md_snapshot_result *result_ret)
{
	struct md_live_options lopts = { .debuginfo_disabled = opts->debuginfo_disabled };
	struct md_target *t = NULL;
	struct md_error *err = md_live_open(pid, &lopts, &t);
	if (err)
		return err;
	/* The plugins only decide when the target is between allocator operations; the report
	 * they would write is made later, from the file. */
	struct md_analysis a;
	memset(&a, 0, sizeof(a));
	md_report_init(&a.report);
	struct quiescence q = { 0 };
	err = open_plugins(t, opts, &a, &q.ap, &q.n_ap);
	if (!err) {
		struct md_snapshot_options sopts = {
			.quiescent = safe_point_quiescent,
			.must_run = safe_point_must_run,
			.quiescent_arg = &q,
			.max_retries = opts->max_retries,
			.retry_usec = opts->retry_usec,
			.hold_pause_ms = opts->hold_pause_ms,
			.copy = opts->snapshot_copy,
			.max_pause_s = opts->max_pause_s,
		};
		err = md_snapshot_write(t, path, &sopts, result_ret);
		close_plugins(q.ap, q.n_ap);
	}
	md_target_destroy(t);
	md_analysis_deinit(&a);
	return exec_error(err, pid, false);
}

void md_analysis_deinit(struct md_analysis *a)
{
	md_report_deinit(&a->report);
	md_classifier_destroy(a->classifier);
	a->classifier = NULL;
	md_plugins_unload(&a->plugins);
}

struct md_error *md_analyze_live(pid_t pid, const struct md_analyze_options *opts, struct md_analysis *a)
{
	return md_analyze_live_with(pid, opts, NULL, a);
}

struct md_error *md_analyze_live_with(pid_t pid, const struct md_analyze_options *opts,
				      const struct md_analysis_resources *res, struct md_analysis *a)
{
	struct md_error *err = analyze_live(pid, opts, res, a);
	if (err && err->code == MD_ERR_EXECED) {
		md_error_destroy(err);
		md_analysis_deinit(a);
		err = exec_error(analyze_live(pid, opts, res, a), pid, true);
	}
	/* Whatever failed, if the process is gone the answer is that it exited meanwhile. */
	bool vanished = err && err->code == MD_ERR_OS && (err->errnum == ESRCH || err->errnum == ENOENT);
	if (err && err->code != MD_ERR_EXITED && err->code != MD_ERR_ZOMBIE && err->code != MD_ERR_NO_PROCESS &&
	    err->code != MD_ERR_INTERRUPTED && err->code != MD_ERR_USAGE && (vanished || md_live_process_gone(pid))) {
		md_error_destroy(err);
		err = md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)pid);
	}
	return err;
}
