#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "live.h"
#include "procfs.h"
#include "target_impl.h"

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
	r->memory.vm_size_bytes = cap->status.vm_size;
	r->memory.anon_bytes = cap->status.rss_anon;
	r->memory.file_bytes = cap->status.rss_file;
	r->memory.shmem_bytes = cap->status.rss_shmem;
	r->memory.status_vm_rss_bytes = cap->status.vm_rss;
	snprintf(r->target.comm, sizeof(r->target.comm), "%s", cap->comm);
	r->target.exe = cap->exe ? strdup(cap->exe) : NULL;
	r->target.threads = threads;
	r->reconciled_pages = cap->reconciled_pages;
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

struct md_error *md_analyze_live(pid_t pid, const struct md_analyze_options *opts, struct md_analysis *a)
{
	double t0 = now_ms();
	memset(a, 0, sizeof(*a));
	md_report_init(&a->report);
	struct md_report *r = &a->report;
	r->target.pid = pid;
	r->target.source = "live";

	struct md_live_options lopts = { .debuginfo_disabled = opts->debuginfo_disabled };
	struct md_target *t = NULL;
	phase("start");
	struct md_error *err = md_live_open(pid, &lopts, &t);
	if (err)
		return err;
	phase("open target");

	/* Before the pause: plugins find their allocator (symbols, layouts). */
	md_plugins_load(&a->plugins);
	struct active_plugin *ap = calloc(a->plugins.n + 1, sizeof(*ap));
	size_t n_ap = 0;
	if (!ap) {
		md_target_destroy(t);
		return &md_error_nomem;
	}
	struct md_plugin_options popts = { .debuginfo_disabled = opts->debuginfo_disabled };
	for (size_t i = 0; i < a->plugins.n; i++) {
		const struct md_plugin *p = a->plugins.items[i].plugin;
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

	phase("open plugins");
	/* The pause. */
	struct md_live_capture cap = { 0 };
	err = md_live_stop(t);
	phase("stop threads");
	if (!err)
		err = md_live_capture(t, &cap);
	phase("capture /proc, pagemap");
	unsigned retries = 0;
	unsigned max_retries = opts->max_retries ? opts->max_retries : 5;
	while (!err && n_ap && !all_quiescent(ap, n_ap, t) && retries < max_retries) {
		retries++;
		err = md_live_resume_briefly(t, opts->retry_usec ? opts->retry_usec : 2000);
		if (!err) {
			md_live_capture_deinit(&cap);
			err = md_live_capture(t, &cap);
		}
	}
	r->target.attach_retries = retries;
	phase("quiescence");
	if (!err)
		err = md_classifier_create(t, &a->classifier);
	for (size_t i = 0; i < n_ap && !err; i++) {
		ap[i].sink = md_classifier_sink(a->classifier, ap[i].plugin->name);
		if (!ap[i].sink) {
			err = &md_error_nomem;
			break;
		}
		if (ap[i].inconsistent)
			md_report_add_note(r, "%s: target stayed inside the allocator after %u re-stops (%s): figures may be inconsistent",
					   ap[i].plugin->name, retries, ap[i].why);
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
	phase("walk");
	if (!err)
		hold_pause(opts->hold_pause_ms);
	r->target.pause_ms = md_live_pause_seconds(t) * 1e3;
	md_live_detach(t);
	r->target.pause_ms = md_live_pause_seconds(t) * 1e3;
	if (!err && md_live_interrupted)
		err = md_error_create(MD_ERR_INTERRUPTED, "interrupted: target detached");

	phase("detach");
	/* After the pause: classify, report. */
	if (!err) {
		fill_memory(r, &cap, t->n_threads);
		fill_system(r, pid);
		err = md_classifier_finish(a->classifier, r);
	}
	for (size_t i = 0; i < n_ap && !err; i++) {
		struct md_node *obj = md_node_object();
		struct md_error *rerr = obj ? md_node_set_string(obj, "name", ap[i].plugin->name) : &md_error_nomem;
		if (!rerr)
			rerr = ap[i].plugin->report(ap[i].state, ap[i].sink, obj);
		if (!rerr && ap[i].inconsistent)
			rerr = md_node_set_string(obj, "consistency", ap[i].why);
		if (rerr) {
			md_report_add_note(r, "%s: report failed: %s", ap[i].plugin->name, rerr->message);
			md_error_destroy(rerr);
			md_node_destroy(obj);
			continue;
		}
		err = md_node_append(r->allocators, obj);
	}
	phase("classify, report");
	for (size_t i = 0; i < n_ap; i++)
		ap[i].plugin->close(ap[i].state);
	free(ap);
	md_live_capture_deinit(&cap);
	md_target_destroy(t);
	r->target.total_ms = now_ms() - t0;
	return err;
}

void md_analysis_deinit(struct md_analysis *a)
{
	md_report_deinit(&a->report);
	md_classifier_destroy(a->classifier);
	a->classifier = NULL;
	md_plugins_unload(&a->plugins);
}
