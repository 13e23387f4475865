/* memdissect watch: the fitted trends and the verdict rule on made-up series, then one test per
 * verdict against tests/targets/grower, whose heap changes in a known way while it is watched
 * (sub-second intervals: each live test takes about two seconds). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "tests.h"

#define MiB (1024.0 * 1024.0)

START_TEST(test_trend_fit)
{
	double t[] = { 0, 1, 2, 3, 4 }, y[] = { 10, 12, 14, 16, 18 };
	struct md_trend tr;
	md_trend_fit(t, y, 5, 1, &tr);
	ck_assert_double_eq_tol(tr.slope, 2.0, 1e-9);
	ck_assert_double_eq_tol(tr.change, 8.0, 1e-9);
	ck_assert_double_eq_tol(tr.r2, 1.0, 1e-9);
	ck_assert_int_eq(tr.direction, 1);
	/* below the threshold: flat */
	md_trend_fit(t, y, 5, 100, &tr);
	ck_assert_int_eq(tr.direction, 0);
	/* noise around a constant: no trend even with a large swing */
	double noisy[] = { 5e6, 9e6, 5e6, 9e6, 5e6 };
	md_trend_fit(t, noisy, 5, 1, &tr);
	ck_assert_double_lt(tr.r2, 0.5);
	ck_assert_int_eq(tr.direction, 0);
	/* a constant series fits perfectly, slope 0 */
	double flat[] = { 7, 7, 7, 7, 7 };
	md_trend_fit(t, flat, 5, 0, &tr);
	ck_assert_double_eq(tr.slope, 0);
	ck_assert_int_eq(tr.direction, 0);
	/* all samples at one instant: no slope */
	double same_t[] = { 3, 3, 3 };
	md_trend_fit(same_t, y, 3, 1, &tr);
	ck_assert_double_eq(tr.slope, 0);

	char buf[32];
	ck_assert_str_eq(md_format_rate(400.0 * MiB / 3600.0, buf, sizeof(buf)), "400 MiB/h");
	ck_assert_str_eq(md_format_rate(-1.5 * 1024 * MiB / 3600.0, buf, sizeof(buf)), "-1.50 GiB/h");
	ck_assert_str_eq(md_format_rate(0, buf, sizeof(buf)), "0 B/h");
}
END_TEST

/* n samples, one a second: heap and gap grow by the given bytes per second from a base. */
static void series(struct md_watch_sample *s, size_t n, double heap_rate, double gap_rate)
{
	for (size_t i = 0; i < n; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].t_s = (double)i;
		s[i].live_heap_bytes = (uint64_t)(200 * MiB + heap_rate * (double)i);
		s[i].gap_bytes = (uint64_t)(100 * MiB + gap_rate * (double)i);
		s[i].rss_bytes = s[i].live_heap_bytes + s[i].gap_bytes;
		s[i].classes[MD_CLASS_LIVE] = s[i].live_heap_bytes;
		s[i].classes[MD_CLASS_FREE] = s[i].gap_bytes;
		s[i].free_bytes = s[i].gap_bytes;
	}
}

START_TEST(test_verdict_rule)
{
	struct md_watch_sample s[10];
	struct md_verdict_result v;
	series(s, 10, 0, 0);
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "stable");
	ck_assert_uint_eq(v.threshold_bytes, (uint64_t)(300 * MiB * 0.02));

	series(s, 10, 0, 4 * MiB);
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "structural-leak");
	ck_assert_ptr_nonnull(strstr(v.text, "gap growing 14.1 GiB/h while the live heap is flat"));
	ck_assert_ptr_nonnull(strstr(v.text, "most of it is retained free memory"));

	series(s, 10, 4 * MiB, 0);
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "heap-growth");

	series(s, 10, 4 * MiB, 4 * MiB);
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "growing");

	series(s, 10, 4 * MiB, -4 * MiB);
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "draining");
	ck_assert_ptr_nonnull(strstr(v.text, "gap shrinking 14.1 GiB/h"));

	/* a slow leak over an hour: 400 MiB/h of gap, the example of the issue */
	for (size_t i = 0; i < 10; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].t_s = 400.0 * (double)i;
		s[i].live_heap_bytes = (uint64_t)(1800 * MiB);
		s[i].gap_bytes = (uint64_t)(300 * MiB + 400 * MiB * s[i].t_s / 3600.0);
		s[i].rss_bytes = s[i].live_heap_bytes + s[i].gap_bytes;
	}
	md_verdict_compute(s, 10, &v);
	ck_assert_str_eq(v.name, "structural-leak");
	ck_assert_ptr_nonnull(strstr(v.text, "gap growing 400 MiB/h while the live heap is flat (0 B/h)"));

	series(s, 2, 0, 4 * MiB);
	md_verdict_compute(s, 2, &v);
	ck_assert_str_eq(v.name, "insufficient-data");
	md_verdict_compute(s, 0, &v);
	ck_assert_str_eq(v.name, "insufficient-data");
}
END_TEST

/* Watch grower MODE with --json; returns the verdict line, parsed. */
static struct md_node *watch_grower(const char *mode, const char *count, char **text_ret)
{
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert_msg(md_test_proc_start(&p, "grower", args), "grower %s did not start", mode);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	/* sub-second samples; under the sanitizers an attach takes longer, the slopes are per
	 * second all the same */
	const char *wargs[] = { "watch", pid, "--interval", "0.25", "--count", count, "--json", NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(wargs, &out, &err, md_test_sanitized() ? 120000 : 60000);
	md_test_proc_stop(&p);
	ck_assert_msg(status == 0, "watch %s: status %d, stderr: %s", mode, status, err ? err : "");
	/* one JSON object per line: the samples, then the verdict */
	struct md_node *verdict = NULL;
	size_t samples = 0;
	for (char *line = out; line && *line;) {
		char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		struct md_node *o = NULL;
		struct md_error *perr = md_node_parse_json(line, (size_t)(nl - line), &o);
		ck_assert_msg(perr == NULL, "not a JSON line: %.*s", (int)(nl - line), line);
		const char *type = md_node_get_string(md_node_get(o, "type"));
		ck_assert_ptr_nonnull(type);
		if (strcmp(type, "sample") == 0) {
			ck_assert_uint_eq(md_node_get_u64(md_node_get(o, "index")), samples);
			uint64_t rss = md_node_get_u64(md_node_get(o, "rss_bytes"));
			uint64_t heap = md_node_get_u64(md_node_get(o, "live_heap_bytes"));
			ck_assert_uint_gt(rss, 0);
			ck_assert_uint_eq(md_node_get_u64(md_node_get(o, "gap_bytes")), rss > heap ? rss - heap : 0);
			samples++;
			md_node_destroy(o);
		} else {
			ck_assert_str_eq(type, "verdict");
			ck_assert_ptr_null(verdict);
			verdict = o;
		}
		line = nl + 1;
	}
	ck_assert_ptr_nonnull(verdict);
	ck_assert_uint_eq(md_node_get_u64(md_node_get(verdict, "samples")), samples);
	ck_assert_uint_eq(samples, strtoul(count, NULL, 10));
	if (text_ret)
		*text_ret = strdup(md_node_get_string(md_node_get(verdict, "text")));
	free(out);
	free(err);
	return verdict;
}

static void expect_verdict(const char *mode, const char *verdict)
{
	char *text = NULL;
	struct md_node *v = watch_grower(mode, "8", &text);
	ck_assert_msg(strcmp(md_node_get_string(md_node_get(v, "verdict")), verdict) == 0,
		      "grower %s: verdict %s, expected %s: %s", mode, md_node_get_string(md_node_get(v, "verdict")),
		      verdict, text);
	free(text);
	md_node_destroy(v);
}

START_TEST(test_watch_stable)
{
	expect_verdict("stable", "stable");
}
END_TEST

START_TEST(test_watch_heap_growth)
{
	expect_verdict("heap", "heap-growth");
}
END_TEST

START_TEST(test_watch_structural)
{
	char *text;
	struct md_node *v = watch_grower("gap", "8", &text);
	ck_assert_str_eq(md_node_get_string(md_node_get(v, "verdict")), "structural-leak");
	/* the gap's growth is the pinned free memory between the pins */
	ck_assert_msg(strstr(text, "structural leak suspected; most of it is free memory pinned on live pages"),
		      "%s", text);
	ck_assert_int_eq(md_node_get_i64(md_node_path(v, "gap.direction")), 1);
	ck_assert_int_eq(md_node_get_i64(md_node_path(v, "live_heap.direction")), 0);
	free(text);
	md_node_destroy(v);
}
END_TEST

START_TEST(test_watch_both)
{
	expect_verdict("both", "growing");
}
END_TEST

START_TEST(test_watch_draining)
{
	expect_verdict("drain", "draining");
}
END_TEST

START_TEST(test_watch_insufficient_and_text)
{
	struct md_node *v = watch_grower("stable", "2", NULL);
	ck_assert_str_eq(md_node_get_string(md_node_get(v, "verdict")), "insufficient-data");
	md_node_destroy(v);

	/* the table and the verdict line of the text output */
	struct md_test_proc p;
	const char *args[] = { "stable", NULL };
	ck_assert(md_test_proc_start(&p, "grower", args));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	const char *wargs[] = { "watch", "--no-color", pid, "--interval", "0.1", "--count", "3", NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(wargs, &out, &err, md_test_sanitized() ? 120000 : 60000);
	md_test_proc_stop(&p);
	ck_assert_msg(status == 0, "status %d: %s", status, err);
	ck_assert_ptr_nonnull(strstr(out, "memdissect watch: pid "));
	ck_assert_ptr_nonnull(strstr(out, "live heap"));
	ck_assert_ptr_nonnull(strstr(out, "\nverdict: stable: live heap 0 B/h and gap 0 B/h over"));
	ck_assert_ptr_null(strchr(out, '\033'));
	free(out);
	free(err);

	/* usage errors */
	const char *bad[] = { "watch", pid, NULL };
	ck_assert_int_eq(md_test_run(bad, &out, &err, 30000), 2);
	ck_assert_ptr_nonnull(strstr(err, "--interval"));
	free(out);
	free(err);
	const char *bad2[] = { "watch", pid, "--interval", "-1", NULL };
	ck_assert_int_eq(md_test_run(bad2, &out, &err, 30000), 2);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_watch_target_gone)
{
	/* no such process before the first sample: the attach's own error and exit code */
	const char *args[] = { "watch", "2147483646", "--interval", "0.1", "--count", "3", NULL };
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(md_test_run(args, &out, &err, 30000), 3);
	free(out);
	free(err);
}
END_TEST

/* ---- sessions (issue 13): plugins and symbols loaded once per watch ---- */

/* The sample lines of watch --json output, parsed, in order; returns how many. */
static size_t sample_lines(const char *out, struct md_node **samples, size_t max)
{
	size_t n = 0;
	for (const char *line = out; line && *line && n < max;) {
		const char *nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		struct md_node *o = NULL;
		ck_assert(md_node_parse_json(line, (size_t)(nl - line), &o) == NULL);
		const char *type = md_node_get_string(md_node_get(o, "type"));
		if (type && strcmp(type, "sample") == 0)
			samples[n++] = o;
		else
			md_node_destroy(o);
		line = nl + 1;
	}
	return n;
}

static uint64_t session_u64(struct md_node *sample, const char *key)
{
	const struct md_node *v = md_node_get(md_node_get(sample, "session"), key);
	ck_assert_msg(md_node_type(v) == MD_NODE_U64, "sample has no session.%s", key);
	return md_node_get_u64(v);
}

static double sample_ms(struct md_node *sample, const char *key)
{
	const struct md_node *v = md_node_get(sample, key);
	ck_assert_msg(v != NULL, "sample has no %s", key);
	return md_node_get_double(v);
}

/* The MEMDISSECT_DEBUG_SESSION lines on stderr: dlopens and symbol tables after each sample. */
static size_t trace_lines(const char *err, unsigned long long *dlopens, unsigned long long *tables, size_t max)
{
	size_t n = 0;
	for (const char *l = strstr(err, "session: sample "); l && n < max; l = strstr(l + 1, "session: sample ")) {
		const char *d = strstr(l, "plugins dlopened "), *t = strstr(l, "symbol tables read ");
		ck_assert(d && t);
		dlopens[n] = strtoull(d + strlen("plugins dlopened "), NULL, 10);
		tables[n] = strtoull(t + strlen("symbol tables read "), NULL, 10);
		n++;
	}
	return n;
}

/* Two samples load each plugin once and read each module's symbols once; a library the target
 * dlopens between samples is picked up (a new module, read once, the others kept). */
START_TEST(test_watch_session)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "dlopener", NULL));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	int slow = md_test_sanitized() ? 120000 : 60000;
	const char *args[] = { "watch", pid, "--interval", "1.5", "--count", "4", "--json", NULL };
	const char *env[] = { "MEMDISSECT_DEBUG_SESSION=1", NULL };
	struct md_test_bg_options bo = { .env = env };
	struct md_test_bg r;
	md_test_bg_start(&r, args, &bo);
	/* after the second sample, before the third: the target loads libz */
	ck_assert_msg(md_test_bg_wait_stderr(&r, "session: sample 1 of process", slow), "no second sample: %s", r.err);
	ck_assert_uint_eq(md_test_proc_ask_u64(&p, "dlopen", "loaded "), 1);
	int status = md_test_bg_finish(&r, slow);
	md_test_proc_stop(&p);
	ck_assert_msg(status == 0, "watch: status %d: %s", status, r.err);
	struct md_node *s[4] = { 0 };
	ck_assert_uint_eq(sample_lines(r.out, s, 4), 4);

	uint64_t dlopens = session_u64(s[0], "plugin_dlopens"), modules = session_u64(s[0], "modules");
	ck_assert_uint_gt(dlopens, 0);
	ck_assert_uint_gt(session_u64(s[0], "symbol_tables"), 0); /* glibc's plugin looked up libc */
	ck_assert_uint_gt(modules, 1);
	ck_assert_uint_eq(session_u64(s[0], "modules_read"), modules);
	ck_assert_uint_eq(session_u64(s[0], "modules_kept"), 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(session_u64(s[i], "plugin_dlopens"), dlopens);
		double total = sample_ms(s[i], "sample_ms"), pause = sample_ms(s[i], "pause_ms"),
		       walk = sample_ms(s[i], "walk_ms");
		ck_assert_msg(total >= pause && pause >= walk && walk > 0, "sample %d: sample_ms %.3f pause_ms %.3f walk_ms %.3f",
			      i, total, pause, walk);
	}
	/* the second sample read nothing anew: every module kept with its tables and DWARF */
	ck_assert_uint_eq(session_u64(s[1], "symbol_tables"), session_u64(s[0], "symbol_tables"));
	ck_assert_uint_eq(session_u64(s[1], "dwarf"), session_u64(s[0], "dwarf"));
	ck_assert_uint_eq(session_u64(s[1], "modules_read"), modules);
	ck_assert_uint_eq(session_u64(s[1], "modules"), modules);
	ck_assert_uint_eq(session_u64(s[1], "modules_kept"), modules);
	/* libz: one module more (libz needs nothing the target has not loaded), set up from its file
	 * once, and every module of before kept */
	ck_assert_uint_eq(session_u64(s[2], "modules"), modules + 1);
	ck_assert_uint_eq(session_u64(s[2], "modules_read"), modules + 1);
	ck_assert_uint_eq(session_u64(s[2], "modules_kept"), 2 * modules);
	ck_assert_uint_eq(session_u64(s[3], "modules"), modules + 1);
	ck_assert_uint_eq(session_u64(s[3], "modules_read"), modules + 1);
	ck_assert_uint_eq(session_u64(s[3], "modules_kept"), 3 * modules + 1);
	ck_assert_uint_eq(session_u64(s[3], "symbol_tables"), session_u64(s[2], "symbol_tables"));
	/* the trace says the same, one line per sample */
	unsigned long long td[8], tt[8];
	ck_assert_uint_eq(trace_lines(r.err, td, tt, 8), 4);
	ck_assert_uint_eq(td[3], dlopens);
	ck_assert_uint_eq(tt[1], tt[0]);
	for (int i = 0; i < 4; i++)
		md_node_destroy(s[i]);
	md_test_bg_free(&r);
}
END_TEST

/* The other modes share the session too: text with --html, and --textfile, where a second
 * process of the same program gets its symbols from the first one's by build-id. */
START_TEST(test_watch_session_modes)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p, q;
	ck_assert(md_test_proc_start(&p, "dlopener", NULL));
	ck_assert(md_test_proc_start(&q, "dlopener", NULL));
	char pid[32], pid2[32], dir[] = "/tmp/md-session-XXXXXX", html[64];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(pid2, sizeof(pid2), "%d", (int)q.pid);
	ck_assert(mkdtemp(dir));
	snprintf(html, sizeof(html), "%s/trend.html", dir);
	int slow = md_test_sanitized() ? 120000 : 60000;
	const char *env[] = { "MEMDISSECT_DEBUG_SESSION=1", NULL };
	struct md_test_bg_options bo = { .env = env };
	const char *text_args[] = { "watch", pid, "--interval", "0.2", "--count", "3", "--html", html, NULL };
	const char *textfile_args[] = { "watch", "--textfile", dir, "--interval", "0.2", "--count", "3", pid, pid2, NULL };
	const char *const *modes[] = { text_args, textfile_args };
	unsigned long long one_process_tables = 0;
	for (int m = 0; m < 2; m++) {
		struct md_test_bg r;
		md_test_bg_start(&r, modes[m], &bo);
		int status = md_test_bg_finish(&r, slow);
		ck_assert_msg(status == 0, "watch mode %d: status %d: %s", m, status, r.err);
		unsigned long long td[8], tt[8];
		size_t lines = m == 0 ? 3 : 6; /* one per sample of each process */
		ck_assert_uint_eq(trace_lines(r.err, td, tt, 8), lines);
		ck_assert_uint_gt(td[0], 0);
		ck_assert_uint_gt(tt[0], 0);
		if (m == 0)
			one_process_tables = tt[0];
		/* the second process's first sample reads no table the first one read */
		for (size_t i = 1; i < lines; i++) {
			ck_assert_uint_eq(td[i], td[0]);
			ck_assert_msg(tt[i] == one_process_tables, "mode %d, line %zu: %llu symbol tables read, one process reads %llu:\n%s",
				      m, i, tt[i], one_process_tables, r.err);
		}
		if (m == 1) {
			ck_assert_msg(md_test_has_line_with(r.out, "memdissect.prom: 2 processes (sample_ms "), "%s", r.out);
			/* the second process's lookups were answered by build-id */
			const char *c = strstr(r.err, "answered by build-id ");
			const char *last = NULL;
			for (; c; c = strstr(c + 1, "answered by build-id "))
				last = c;
			ck_assert_ptr_nonnull(last);
			ck_assert_msg(strtoull(last + strlen("answered by build-id "), NULL, 10) > 0, "%s", r.err);
		}
		md_test_bg_free(&r);
	}
	md_test_proc_stop(&p);
	md_test_proc_stop(&q);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *unit = tcase_create("rule");
	tcase_add_test(unit, test_trend_fit);
	tcase_add_test(unit, test_verdict_rule);
	suite_add_tcase(s, unit);
	TCase *live = tcase_create("grower");
	tcase_set_timeout(live, 120);
	tcase_add_test(live, test_watch_stable);
	tcase_add_test(live, test_watch_heap_growth);
	tcase_add_test(live, test_watch_structural);
	tcase_add_test(live, test_watch_both);
	tcase_add_test(live, test_watch_draining);
	tcase_add_test(live, test_watch_insufficient_and_text);
	tcase_add_test(live, test_watch_target_gone);
	tcase_add_test(live, test_watch_session);
	tcase_add_test(live, test_watch_session_modes);
	suite_add_tcase(s, live);
	return s;
}
