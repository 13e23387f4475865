/* memdissect watch: short attaches at intervals, a line per sample (live heap, retained free,
 * pinned free, RSS, the gap between them), and a verdict by the stable-vs-growing-gap rule of
 * shared/seeds/memory-metrics.md: the slopes of the live heap and of the gap, fitted by least
 * squares over the samples, decide between a stable gap (overhead), a growing live heap (the
 * program holds more), a gap growing while the heap stays flat (structural leak suspected), both
 * growing, and a shrinking gap (retained memory reused or returned).
 * A trend counts only when its fitted change over the watch exceeds a threshold (1 MiB or 2% of
 * the mean RSS, whichever is larger) and the line fits (R^2 >= 0.5): noise and one-off steps do
 * not make a verdict. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "live.h"
#include "render.h"
#include "session.h"
#include "wss.h"

#define MiB (1024.0 * 1024.0)
#define MIN_SAMPLES 3
#define MIN_R2 0.5
#define ABS_THRESHOLD (1024ULL * 1024)
#define REL_THRESHOLD 0.02

static const char *const verdict_names[MD_VERDICT_COUNT] = {
	[MD_VERDICT_INSUFFICIENT] = "insufficient-data",
	[MD_VERDICT_STABLE] = "stable",
	[MD_VERDICT_HEAP_GROWTH] = "heap-growth",
	[MD_VERDICT_STRUCTURAL] = "structural-leak",
	[MD_VERDICT_BOTH_GROWING] = "growing",
	[MD_VERDICT_DRAINING] = "draining",
};

void md_watch_sample_from_report(const struct md_report *r, double t_s, struct md_watch_sample *s)
{
	memset(s, 0, sizeof(*s));
	s->t_s = t_s;
	s->rss_bytes = r->memory.rss_bytes;
	s->free_bytes = r->classes[MD_CLASS_FREE];
	s->metadata_bytes = r->classes[MD_CLASS_METADATA];
	memcpy(s->classes, r->classes, sizeof(s->classes));
	s->pause_ms = r->target.pause_ms;
	s->partial = r->partial;
	for (size_t i = 0; i < r->n_unanalysed; i++) {
		size_t l = strlen(s->unanalysed);
		snprintf(s->unanalysed + l, sizeof(s->unanalysed) - l, "%s%s", i ? ", " : "", r->unanalysed[i].name);
	}
	struct md_gap g;
	struct md_error *err = md_gap_compute(r, &g);
	if (err) {
		/* out of memory: the page figures still make a sample */
		md_error_destroy(err);
		s->live_heap_bytes = r->classes[MD_CLASS_LIVE];
		s->gap_bytes = s->rss_bytes > s->live_heap_bytes ? s->rss_bytes - s->live_heap_bytes : 0;
		return;
	}
	s->live_heap_bytes = g.live_heap_bytes;
	s->pinned_free_bytes = g.pinned_free_bytes;
	s->releasable_bytes = g.releasable_bytes;
	s->gap_bytes = g.gap_bytes;
	md_gap_deinit(&g);
}

void md_trend_fit(const double *t, const double *y, size_t n, uint64_t threshold, struct md_trend *tr)
{
	memset(tr, 0, sizeof(*tr));
	tr->r2 = 1;
	if (!n)
		return;
	double mt = 0, my = 0;
	for (size_t i = 0; i < n; i++) {
		mt += t[i];
		my += y[i];
	}
	mt /= (double)n;
	my /= (double)n;
	tr->mean = my;
	double sxx = 0, sxy = 0, syy = 0;
	for (size_t i = 0; i < n; i++) {
		double dt = t[i] - mt, dy = y[i] - my;
		sxx += dt * dt;
		sxy += dt * dy;
		syy += dy * dy;
	}
	if (!(sxx > 0))
		return;
	tr->slope = sxy / sxx;
	tr->r2 = syy > 0 ? (sxy * sxy) / (sxx * syy) : 1;
	tr->change = tr->slope * (t[n - 1] - t[0]);
	if (tr->r2 >= MIN_R2 && tr->change > (double)threshold)
		tr->direction = 1;
	else if (tr->r2 >= MIN_R2 && tr->change < -(double)threshold)
		tr->direction = -1;
}

const char *md_format_rate(double bytes_per_s, char *buf, size_t len)
{
	double per_h = bytes_per_s * 3600.0;
	char b[32];
	if (!isfinite(per_h))
		per_h = 0;
	double mag = fabs(per_h);
	md_format_bytes(mag >= 1.8e19 ? UINT64_MAX : (uint64_t)(mag + 0.5), b, sizeof(b));
	snprintf(buf, len, "%s%s/h", per_h < 0 && mag >= 0.5 ? "-" : "", b);
	return buf;
}

static void fit_series(const struct md_watch_sample *s, size_t n, size_t offset, uint64_t threshold,
		       struct md_trend *tr)
{
	double *t = malloc(n * sizeof(*t)), *y = malloc(n * sizeof(*y));
	if (!t || !y) {
		free(t);
		free(y);
		memset(tr, 0, sizeof(*tr));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t v;
		memcpy(&v, (const char *)&s[i] + offset, sizeof(v));
		t[i] = s[i].t_s;
		y[i] = (double)v;
	}
	md_trend_fit(t, y, n, threshold, tr);
	free(t);
	free(y);
}

/* Which part of the gap grew the most: retained free, pinned free, metadata or memory outside
 * the allocators (a growing "outside" is not the allocator's doing). */
static const char *main_growth(const struct md_watch_sample *s, size_t n, uint64_t threshold, char *buf,
			       size_t len)
{
	struct {
		const char *name;
		double slope;
	} parts[4] = { { "retained free memory", 0 }, { "free memory pinned on live pages", 0 },
		       { "allocator metadata", 0 }, { "memory outside the allocators", 0 } };
	double *t = malloc(n * sizeof(*t)), *y = malloc(n * sizeof(*y));
	buf[0] = 0;
	if (!t || !y) {
		free(t);
		free(y);
		return buf;
	}
	for (int p = 0; p < 4; p++) {
		for (size_t i = 0; i < n; i++) {
			t[i] = s[i].t_s;
			const uint64_t *c = s[i].classes;
			y[i] = p == 0   ? (double)c[MD_CLASS_FREE]
			       : p == 1 ? (double)s[i].pinned_free_bytes
			       : p == 2 ? (double)c[MD_CLASS_METADATA]
					: (double)(c[MD_CLASS_STACK] + c[MD_CLASS_FILE] + c[MD_CLASS_SHARED] +
						   c[MD_CLASS_ANON_OTHER]);
		}
		struct md_trend tr;
		md_trend_fit(t, y, n, threshold, &tr);
		parts[p].slope = tr.slope;
	}
	free(t);
	free(y);
	int best = 0;
	for (int p = 1; p < 4; p++)
		if (parts[p].slope > parts[best].slope)
			best = p;
	char r[32];
	if (parts[best].slope > 0)
		snprintf(buf, len, "; most of it is %s (%s)", parts[best].name,
			 md_format_rate(parts[best].slope, r, sizeof(r)));
	return buf;
}

void md_verdict_compute(const struct md_watch_sample *s, size_t n, struct md_verdict_result *v)
{
	memset(v, 0, sizeof(*v));
	double mean_rss = 0;
	for (size_t i = 0; i < n; i++)
		mean_rss += (double)s[i].rss_bytes;
	mean_rss = n ? mean_rss / (double)n : 0;
	uint64_t rel = (uint64_t)(mean_rss * REL_THRESHOLD);
	v->threshold_bytes = rel > ABS_THRESHOLD ? rel : ABS_THRESHOLD;
	v->span_s = n ? s[n - 1].t_s - s[0].t_s : 0;
	if (n) {
		fit_series(s, n, offsetof(struct md_watch_sample, rss_bytes), v->threshold_bytes, &v->rss);
		fit_series(s, n, offsetof(struct md_watch_sample, live_heap_bytes), v->threshold_bytes, &v->heap);
		fit_series(s, n, offsetof(struct md_watch_sample, gap_bytes), v->threshold_bytes, &v->gap);
		fit_series(s, n, offsetof(struct md_watch_sample, free_bytes), v->threshold_bytes, &v->free);
	}
	/* rates as magnitudes where the sentence says growing/shrinking, signed where it does not */
	char rh[32], rg[32], sh[40], sg[40], span[32], why[160];
	md_format_rate(fabs(v->heap.slope), rh, sizeof(rh));
	md_format_rate(fabs(v->gap.slope), rg, sizeof(rg));
	snprintf(sh, sizeof(sh), "%s%s", v->heap.slope > 0 && rh[0] != '0' ? "+" : v->heap.slope < 0 && rh[0] != '0' ? "-" : "", rh);
	snprintf(sg, sizeof(sg), "%s%s", v->gap.slope > 0 && rg[0] != '0' ? "+" : v->gap.slope < 0 && rg[0] != '0' ? "-" : "", rg);
	snprintf(span, sizeof(span), "%.1f s", v->span_s);
	if (n < MIN_SAMPLES || !(v->span_s > 0)) {
		v->verdict = MD_VERDICT_INSUFFICIENT;
		snprintf(v->text, sizeof(v->text),
			 "too few samples for a trend: %zu over %s (at least %d are needed)", n, span, MIN_SAMPLES);
	} else if (v->gap.direction < 0) {
		v->verdict = MD_VERDICT_DRAINING;
		snprintf(v->text, sizeof(v->text),
			 "gap shrinking %s while the live heap changes %s: retained memory is being reused "
			 "or returned to the kernel",
			 rg, sh);
	} else if (v->gap.direction > 0 && v->heap.direction > 0) {
		v->verdict = MD_VERDICT_BOTH_GROWING;
		snprintf(v->text, sizeof(v->text),
			 "live heap growing %s and gap growing %s: the program holds more and the allocators "
			 "keep more%s",
			 rh, rg, main_growth(s, n, v->threshold_bytes, why, sizeof(why)));
	} else if (v->gap.direction > 0) {
		v->verdict = MD_VERDICT_STRUCTURAL;
		snprintf(v->text, sizeof(v->text),
			 "gap growing %s while the live heap is flat (%s): structural leak suspected%s",
			 rg, sh, main_growth(s, n, v->threshold_bytes, why, sizeof(why)));
	} else if (v->heap.direction > 0) {
		v->verdict = MD_VERDICT_HEAP_GROWTH;
		snprintf(v->text, sizeof(v->text),
			 "live heap growing %s with a stable gap (%s): the program holds more objects (an "
			 "object leak or more load); a heap profiler finds who holds them",
			 rh, sg);
	} else {
		v->verdict = MD_VERDICT_STABLE;
		if (n && s[n - 1].unanalysed[0])
			snprintf(v->text, sizeof(v->text),
				 "live heap %s and gap %s over %s; stable, but not known to be overhead: the gap "
				 "holds the memory of %s, which no plugin walks",
				 sh, sg, span, s[n - 1].unanalysed);
		else
			snprintf(v->text, sizeof(v->text),
				 "live heap %s and gap %s over %s; a stable gap is the allocators' normal "
				 "overhead",
				 sh, sg, span);
	}
	/* what memdissect cannot see is named, whatever the trend */
	if (n && s[n - 1].unanalysed[0] && v->verdict != MD_VERDICT_STABLE) {
		size_t l = strlen(v->text);
		snprintf(v->text + l, sizeof(v->text) - l, " (%s present but not analysed: their memory is in the gap)",
			 s[n - 1].unanalysed);
	}
	v->name = verdict_names[v->verdict];
}

/* ---- the command ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep until the deadline in short slices, so that Ctrl-C ends the watch at once. */
static void sleep_until(struct md_session *session, double deadline)
{
	while (!md_live_interrupted) {
		md_session_idle(session); /* a thread that could not stop and has stopped since */
		double left = deadline - now_s();
		if (left <= 0)
			return;
		if (left > 0.05)
			left = 0.05;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(left * 1e9) };
		nanosleep(&ts, NULL);
	}
}

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

static void time_text(double t, char *buf, size_t len)
{
	if (t < 100)
		snprintf(buf, len, "%.2fs", t);
	else if (t < 3600)
		snprintf(buf, len, "%dm%02ds", (int)(t / 60), (int)fmod(t, 60));
	else
		snprintf(buf, len, "%dh%02dm", (int)(t / 3600), (int)fmod(t / 60, 60));
}

static void text_header(FILE *out, int pid, const char *comm, const struct md_watch_options *o, bool wide)
{
	fprintf(out, "memdissect watch: pid %d (%s), every %.3g s", pid, md_esc(comm), o->interval_s);
	if (o->count)
		fprintf(out, ", %lu sample%s", o->count, o->count == 1 ? "" : "s");
	else
		fputs(", until Ctrl-C", out);
	fputc('\n', out);
	fprintf(out, "  %8s %7s %9s %7s %7s %7s %10s", "time", "RSS", "live heap", "free", "pinned", "gap",
		"releasable");
	if (o->wss_s > 0)
		fprintf(out, " %7s", "wss");
	if (wide)
		fprintf(out, " %8s", "pause");
	fputc('\n', out);
}

static void text_row(FILE *out, const struct md_watch_sample *s, bool wide, bool wss)
{
	char t[32], a[16], b[16], c[16], d[16], e[16], f[16];
	time_text(s->t_s, t, sizeof(t));
	fprintf(out, "  %8s %7s %9s %7s %7s %7s %10s", t, compact(s->rss_bytes, a, sizeof(a)),
		compact(s->live_heap_bytes, b, sizeof(b)), compact(s->free_bytes, c, sizeof(c)),
		compact(s->pinned_free_bytes, d, sizeof(d)), compact(s->gap_bytes, e, sizeof(e)),
		compact(s->releasable_bytes, f, sizeof(f)));
	if (wss)
		fprintf(out, " %7s", compact(s->wss_bytes, a, sizeof(a)));
	if (wide)
		fprintf(out, " %6.1fms", s->pause_ms);
	fputc('\n', out);
	fflush(out);
}

static struct md_error *json_line(FILE *out, struct md_node *o)
{
	struct md_error *err = md_node_write_json(o, out, 0);
	md_node_destroy(o);
	if (err)
		return err;
	/* JSON lines: md_node_write_json writes no newline of its own */
	fputc('\n', out);
	fflush(out);
	return NULL;
}

#define PUT(call)                     \
	do {                          \
		if (!err)             \
			err = (call); \
	} while (0)

/* What one sample cost, from memdissect's own clocks, and what the session has loaded so far. */
struct sample_cost {
	struct md_analysis_timing timing;
	struct md_session_counters session;
};

static struct md_node *session_node(const struct md_session_counters *c)
{
	struct md_node *o = md_node_object();
	struct md_error *err = o ? NULL : &md_error_nomem;
	PUT(md_node_set_u64(o, "plugin_dlopens", c->plugin_dlopens));
	PUT(md_node_set_u64(o, "symbol_tables", c->symbol_tables));
	PUT(md_node_set_u64(o, "dwarf", c->dwarf));
	PUT(md_node_set_u64(o, "modules", c->modules));
	PUT(md_node_set_u64(o, "modules_read", c->modules_read));
	PUT(md_node_set_u64(o, "modules_kept", c->modules_kept));
	PUT(md_node_set_u64(o, "cached_lookups", c->cached_lookups));
	if (err) {
		md_error_destroy(err);
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

/* MEMDISSECT_DEBUG_SESSION=1: a line per sample on stderr with what it cost and what the session
 * has loaded so far (in every mode: text, --json, --html, --textfile). */
static void trace_sample(int pid, size_t index, const struct sample_cost *c)
{
	const char *e = getenv("MEMDISSECT_DEBUG_SESSION");
	if (!e || *e != '1')
		return;
	const struct md_session_counters *k = &c->session;
	fprintf(stderr,
		"session: sample %zu of process %d: %.1f ms (pause %.1f, walk %.1f); plugins dlopened %llu, "
		"symbol tables read %llu, DWARF opened %llu, modules %llu (read %llu, kept %llu), lookups answered by "
		"build-id %llu\n",
		index, pid, c->timing.total_ms, c->timing.pause_ms, c->timing.walk_ms,
		(unsigned long long)k->plugin_dlopens, (unsigned long long)k->symbol_tables,
		(unsigned long long)k->dwarf, (unsigned long long)k->modules, (unsigned long long)k->modules_read,
		(unsigned long long)k->modules_kept, (unsigned long long)k->cached_lookups);
	fflush(stderr);
}

static struct sample_cost cost_of(const struct md_analysis *a, const struct md_session *session)
{
	struct sample_cost c = { .timing = a->timing };
	md_session_get_counters(session, &c.session);
	return c;
}

static double ms3(double ms)
{
	return round(ms * 1000.0) / 1000.0;
}

static struct md_error *json_sample(FILE *out, int pid, size_t index, const struct md_watch_sample *s, bool wss,
				    const struct sample_cost *cost)
{
	struct md_error *err = NULL;
	struct md_node *o = md_node_object();
	if (!o)
		return &md_error_nomem;
	PUT(md_node_set_string(o, "type", "sample"));
	PUT(md_node_set_i64(o, "pid", pid));
	PUT(md_node_set_u64(o, "index", index));
	PUT(md_node_set_double(o, "time_s", round(s->t_s * 1000.0) / 1000.0));
	PUT(md_node_set_u64(o, "rss_bytes", s->rss_bytes));
	PUT(md_node_set_u64(o, "live_heap_bytes", s->live_heap_bytes));
	PUT(md_node_set_u64(o, "free_bytes", s->free_bytes));
	PUT(md_node_set_u64(o, "pinned_free_bytes", s->pinned_free_bytes));
	PUT(md_node_set_u64(o, "metadata_bytes", s->metadata_bytes));
	PUT(md_node_set_u64(o, "releasable_bytes", s->releasable_bytes));
	PUT(md_node_set_u64(o, "gap_bytes", s->gap_bytes));
	PUT(md_node_set_double(o, "pause_ms", round(s->pause_ms * 1000.0) / 1000.0));
	PUT(md_node_set_double(o, "sample_ms", ms3(cost->timing.total_ms)));
	PUT(md_node_set_double(o, "walk_ms", ms3(cost->timing.walk_ms)));
	PUT(md_node_set_double(o, "open_ms", ms3(cost->timing.open_ms)));
	PUT(md_node_set(o, "session", session_node(&cost->session)));
	if (wss)
		PUT(md_node_set_u64(o, "wss_bytes", s->wss_bytes));
	struct md_node *c = md_node_object();
	PUT(md_node_set(o, "classes", c));
	for (int k = 0; k < MD_CLASS_COUNT; k++)
		PUT(md_node_set_u64(c, md_class_name((enum md_class)k), s->classes[k]));
	if (err) {
		md_node_destroy(o);
		return err;
	}
	return json_line(out, o);
}

static struct md_node *trend_node(const struct md_trend *tr)
{
	struct md_node *o = md_node_object();
	struct md_error *err = NULL;
	PUT(md_node_set_double(o, "bytes_per_hour", round(tr->slope * 3600.0)));
	PUT(md_node_set_double(o, "change_bytes", round(tr->change)));
	PUT(md_node_set_double(o, "r2", round(tr->r2 * 1e4) / 1e4));
	PUT(md_node_set_i64(o, "direction", tr->direction));
	if (err) {
		md_error_destroy(err);
		md_node_destroy(o);
		return NULL;
	}
	return o;
}

static struct md_error *json_verdict(FILE *out, int pid, size_t n, const struct md_verdict_result *v,
				     const char *ended, const struct md_watch_sample *last)
{
	struct md_error *err = NULL;
	struct md_node *o = md_node_object();
	if (!o)
		return &md_error_nomem;
	PUT(md_node_set_string(o, "type", "verdict"));
	PUT(md_node_set_i64(o, "pid", pid));
	PUT(md_node_set_string(o, "verdict", v->name));
	PUT(md_node_set_string(o, "text", v->text));
	PUT(md_node_set_u64(o, "samples", n));
	PUT(md_node_set_double(o, "span_s", round(v->span_s * 1000.0) / 1000.0));
	PUT(md_node_set_u64(o, "threshold_bytes", v->threshold_bytes));
	PUT(md_node_set(o, "rss", trend_node(&v->rss)));
	PUT(md_node_set(o, "live_heap", trend_node(&v->heap)));
	PUT(md_node_set(o, "gap", trend_node(&v->gap)));
	PUT(md_node_set(o, "free", trend_node(&v->free)));
	if (ended)
		PUT(md_node_set_string(o, "ended", ended));
	PUT(md_node_set_bool(o, "partial", last->partial));
	if (last->unanalysed[0])
		PUT(md_node_set_string(o, "unanalysed", last->unanalysed));
	if (err) {
		md_node_destroy(o);
		return err;
	}
	return json_line(out, o);
}

static void text_verdict(FILE *out, const struct md_watch_options *o, size_t n, const struct md_verdict_result *v)
{
	const char *bold = o->color ? "\033[1m" : "", *reset = o->color ? "\033[0m" : "";
	const char *c = "";
	if (o->color)
		c = v->verdict == MD_VERDICT_STRUCTURAL || v->verdict == MD_VERDICT_BOTH_GROWING ? "\033[1;31m"
		    : v->verdict == MD_VERDICT_HEAP_GROWTH					      ? "\033[1;33m"
											      : "\033[1;32m";
	fprintf(out, "\n%sverdict%s: %s%s%s: %s\n", bold, reset, c, v->name, reset, v->text);
	if (v->verdict == MD_VERDICT_INSUFFICIENT)
		return;
	char a[32], b[32], d[32], e[32], th[32];
	fprintf(out, "  fitted over %.1f s and %zu samples: RSS %s, live heap %s (R2 %.2f), gap %s (R2 %.2f), "
		"free %s; a trend counts past %s\n",
		v->span_s, n, md_format_rate(v->rss.slope, a, sizeof(a)), md_format_rate(v->heap.slope, b, sizeof(b)),
		v->heap.r2, md_format_rate(v->gap.slope, d, sizeof(d)), v->gap.r2,
		md_format_rate(v->free.slope, e, sizeof(e)), md_format_bytes(v->threshold_bytes, th, sizeof(th)));
}

/* The target must run most of the time: an interval under the floor is refused, and after
 * every attach the target runs at least twice as long as that attach stopped it (the next
 * attach waits when the interval is shorter; the samples carry their own times). */
#define MD_WATCH_MIN_INTERVAL 0.1
#define MD_WATCH_RUN_PER_PAUSE 2.0

/* Replace path with text atomically (written aside, then renamed): a reader (a browser reloading
 * the trend page, the node exporter's collector) never sees half a file. */
static struct md_error *replace_file(const char *path, const char *text, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return md_error_os(errno, "cannot write %s", tmp);
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, text + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			return md_error_os(e, "writing %s", tmp);
		}
		done += (size_t)w;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return md_error_os(e, "replacing %s", path);
	}
	return NULL;
}

/* The trend page of the samples so far. */
static struct md_error *write_trend_page(const char *path, const struct md_watch_sample *s, size_t n,
					 const struct md_verdict_result *v, int pid, const char *comm)
{
	char *page = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&page, &len);
	if (!mem)
		return &md_error_nomem;
	struct md_error *err = md_render_watch_html(s, n, v, pid, comm, mem);
	if (fclose(mem) != 0 && !err)
		err = &md_error_nomem;
	if (!err)
		err = replace_file(path, page, len);
	free(page);
	return err;
}

struct md_error *md_watch_run(int pid, const struct md_watch_options *o, FILE *out)
{
	if (o->interval_s < MD_WATCH_MIN_INTERVAL)
		return md_error_create(MD_ERR_USAGE, "--interval %.3g s is below the floor of %.1f s (the target must run most of the time)",
				       o->interval_s, MD_WATCH_MIN_INTERVAL);
	size_t cap = 64, n = 0;
	struct md_watch_sample *samples = malloc(cap * sizeof(*samples));
	if (!samples)
		return &md_error_nomem;
	struct md_analyze_options aopts = {
		.debuginfo_disabled = o->debuginfo_disabled,
		.only_plugin = o->only_plugin,
	};
	struct md_session *session = NULL;
	struct md_error *serr = md_session_create(&aopts, &session);
	if (serr) {
		free(samples);
		return serr;
	}
	bool wide = o->width <= 0 || o->width >= 80;
	double t0 = now_s(), next = t0;
	bool stretched = false;
	struct md_error *err = NULL;
	const char *ended = NULL;
	bool write_failed = false;
	char comm0[64] = "";
	for (unsigned long i = 0; !o->count || i < o->count; i++) {
		if (i)
			sleep_until(session, next);
		if (md_live_interrupted) {
			ended = "interrupted";
			break;
		}
		double start = now_s();
		next = (i ? next : t0) + o->interval_s;
		if (next < start)
			next = start; /* an analysis longer than the interval: the next starts at once */
		struct md_analysis a;
		err = md_session_analyze_live(session, (pid_t)pid, &a);
		/* The window runs after the attach, inside the interval (main checks wss < interval). */
		if (!err && o->wss_s > 0)
			err = md_wss_measure((pid_t)pid, o->wss_s, &a.report);
		if (err) {
			md_analysis_deinit(&a);
			if (n && (err->code == MD_ERR_INTERRUPTED)) {
				md_error_destroy(err);
				err = NULL;
				ended = "interrupted";
			} else if (n && (err->code == MD_ERR_NO_PROCESS || err->code == MD_ERR_EXITED ||
					 err->code == MD_ERR_ZOMBIE)) {
				err = md_error_wrap(err, "target gone after %zu sample%s", n, n == 1 ? "" : "s");
				ended = "target exited";
			}
			break;
		}
		if (n == cap) {
			struct md_watch_sample *more = realloc(samples, cap * 2 * sizeof(*samples));
			if (!more) {
				md_analysis_deinit(&a);
				err = &md_error_nomem;
				break;
			}
			samples = more;
			cap *= 2;
		}
		if (!n) {
			snprintf(comm0, sizeof(comm0), "%.*s", (int)sizeof(a.report.target.comm), a.report.target.comm);
			if (!o->json)
				text_header(out, pid, comm0, o, wide);
		}
		md_watch_sample_from_report(&a.report, start - t0, &samples[n]);
		samples[n].wss_bytes = a.report.wss.bytes;
		if (samples[n].partial && o->partial_ret)
			*o->partial_ret = true;
		double pause_s = a.report.target.pause_ms / 1e3, earliest = now_s() + MD_WATCH_RUN_PER_PAUSE * pause_s;
		if (next < earliest) {
			if (!stretched)
				fprintf(stderr, "memdissect: an attach stopped process %d for %.0f ms: the next waits %.2g s so that it runs "
						"at least %.0f times as long as it is stopped (--interval %.3g s is shorter)\n",
					pid, pause_s * 1e3, MD_WATCH_RUN_PER_PAUSE * pause_s, MD_WATCH_RUN_PER_PAUSE, o->interval_s);
			stretched = true;
			next = earliest;
		}
		struct sample_cost cost = cost_of(&a, session);
		md_analysis_deinit(&a);
		trace_sample(pid, n, &cost);
		errno = 0;
		struct md_error *werr = o->json ? json_sample(out, pid, n, &samples[n], o->wss_s > 0, &cost) : NULL;
		if (!o->json)
			text_row(out, &samples[n], wide, o->wss_s > 0);
		n++;
		/* the reader went away (watch PID | head -3) or the disk is full: stop attaching,
		 * with the errno of this write, not a stale one */
		if (!werr && (fflush(out) == EOF || ferror(out)))
			werr = md_error_os(errno ? errno : EIO, "writing the watch");
		write_failed = werr != NULL;
		if (werr) {
			err = werr;
			break;
		}
		if (o->html && n >= 2) {
			struct md_verdict_result pv;
			md_verdict_compute(samples, n, &pv);
			err = write_trend_page(o->html, samples, n, &pv, pid, comm0);
			if (err)
				break;
		}
	}
	if (n && !write_failed) {
		struct md_verdict_result v;
		md_verdict_compute(samples, n, &v);
		if (o->html) {
			struct md_error *herr = write_trend_page(o->html, samples, n, &v, pid, comm0);
			if (!err)
				err = herr;
			else
				md_error_destroy(herr);
		}
		struct md_error *verr = NULL;
		if (o->json)
			verr = json_verdict(out, pid, n, &v, ended, &samples[n - 1]);
		else
			text_verdict(out, o, n, &v);
		if (!err)
			err = verr;
		else
			md_error_destroy(verr);
	}
	free(samples);
	md_session_destroy(session);
	errno = 0;
	if (!err && (fflush(out) == EOF || ferror(out)))
		err = md_error_os(errno ? errno : EIO, "writing the watch");
	return err;
}

/* ---- watch --textfile ---- */

struct md_error *md_watch_textfile(const int *pids_in, size_t n_pids, const char *dir,
				   const struct md_watch_options *o, FILE *out)
{
	if (o->interval_s < MD_WATCH_MIN_INTERVAL)
		return md_error_create(MD_ERR_USAGE, "--interval %.3g s is below the floor of %.1f s (the target must run most of the time)",
				       o->interval_s, MD_WATCH_MIN_INTERVAL);
	int *pids = malloc(n_pids * sizeof(*pids));
	char **texts = calloc(n_pids, sizeof(*texts));
	if (!pids || !texts) {
		free(pids);
		free(texts);
		return &md_error_nomem;
	}
	memcpy(pids, pids_in, n_pids * sizeof(*pids));
	struct md_analyze_options aopts = {
		.debuginfo_disabled = o->debuginfo_disabled,
		.only_plugin = o->only_plugin,
	};
	struct md_session *session = NULL;
	struct md_error *err = md_session_create(&aopts, &session);
	if (err) {
		free(pids);
		free(texts);
		return err;
	}
	double t0 = now_s(), next = t0;
	for (unsigned long round = 0; (!o->count || round < o->count) && n_pids && !err; round++) {
		if (round)
			sleep_until(session, next);
		if (md_live_interrupted)
			break;
		double start = now_s(), paused_s = 0, sample_ms = 0, walk_ms = 0;
		next = start + o->interval_s;
		size_t n_texts = 0;
		for (size_t i = 0; i < n_pids && !err;) {
			struct md_analysis a;
			struct md_error *aerr = md_session_analyze_live(session, (pid_t)pids[i], &a);
			if (aerr && (aerr->code == MD_ERR_NO_PROCESS || aerr->code == MD_ERR_EXITED ||
				     aerr->code == MD_ERR_ZOMBIE)) {
				fprintf(stderr, "memdissect: process %d is gone (%s): no longer watched\n", pids[i],
					md_esc(aerr->message ? aerr->message : "exited"));
				md_error_destroy(aerr);
				md_analysis_deinit(&a);
				md_session_forget(session, (pid_t)pids[i]);
				memmove(&pids[i], &pids[i + 1], (n_pids - i - 1) * sizeof(*pids));
				n_pids--;
				continue;
			}
			if (aerr) {
				md_analysis_deinit(&a);
				err = aerr->code == MD_ERR_INTERRUPTED ? (md_error_destroy(aerr), NULL) : aerr;
				break;
			}
			if (a.report.partial && o->partial_ret)
				*o->partial_ret = true;
			paused_s += a.report.target.pause_ms / 1e3;
			sample_ms += a.timing.total_ms;
			walk_ms += a.timing.walk_ms;
			struct sample_cost cost = cost_of(&a, session);
			trace_sample(pids[i], (size_t)round, &cost);
			size_t len = 0;
			FILE *mem = open_memstream(&texts[n_texts], &len);
			if (!mem) {
				md_analysis_deinit(&a);
				err = &md_error_nomem;
				break;
			}
			struct md_error *rerr = md_render_openmetrics(&a.report, mem);
			if (fclose(mem) != 0 && !rerr)
				rerr = &md_error_nomem;
			md_analysis_deinit(&a);
			if (rerr) {
				err = rerr;
				break;
			}
			n_texts++;
			i++;
		}
		if (!err && n_texts && !md_live_interrupted) {
			char *merged = NULL;
			size_t mlen = 0;
			FILE *mem = open_memstream(&merged, &mlen);
			err = mem ? md_openmetrics_merge(texts, n_texts, mem) : &md_error_nomem;
			if (mem && fclose(mem) != 0 && !err)
				err = &md_error_nomem;
			char final[4096];
			snprintf(final, sizeof(final), "%s/memdissect.prom", dir);
			if (!err)
				err = replace_file(final, merged, mlen);
			free(merged);
			if (!err) {
				fprintf(out, "%.1f s: %s/memdissect.prom: %zu process%s (sample_ms %.1f, pause_ms %.1f, walk_ms %.1f)\n",
					start - t0, md_esc(dir), n_texts, n_texts == 1 ? "" : "es", sample_ms, paused_s * 1e3,
					walk_ms);
				errno = 0;
				if (fflush(out) == EOF || ferror(out))
					err = md_error_os(errno ? errno : EIO, "writing the watch");
			}
		}
		for (size_t k = 0; k < n_texts; k++) {
			free(texts[k]);
			texts[k] = NULL;
		}
		/* The targets run at least twice as long as they were stopped, whatever the interval. */
		if (next < now_s() + MD_WATCH_RUN_PER_PAUSE * paused_s)
			next = now_s() + MD_WATCH_RUN_PER_PAUSE * paused_s;
	}
	if (!err && !n_pids)
		err = md_error_create(MD_ERR_EXITED, "every watched process is gone");
	md_session_destroy(session);
	free(pids);
	free(texts);
	return err;
}
