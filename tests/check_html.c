/* The HTML report: self-contained (no network, no external asset), escaped, and working in a
 * real browser: headless Chromium opens it with "#selftest" (the page's script then hovers the
 * first map cell and zooms the first map), the dumped DOM must hold the regions, the figures,
 * the tooltip and the zoom, and a screenshot is saved ($MD_ARTIFACTS, else /tmp).
 * The browser tests skip, saying so, only when no Chromium is installed (scripts/deps.sh
 * installs the Debian package "chromium"). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "render.h"
#include "render_fixture.h"
#include "tests.h"

static char *render_html(const struct md_report *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	struct md_error *err = md_render_html(r, f);
	ck_assert_msg(err == NULL, "md_render_html: %s", err ? err->message : "");
	fclose(f);
	return buf;
}

START_TEST(test_html_self_contained)
{
	struct md_report r;
	md_fx_build_report(&r);
	/* hostile text from the target: markup in a path, a label, a note, bytes that are not UTF-8 */
	free(r.regions[4].path);
	r.regions[4].path = strdup("[heap]<script>alert(1)</script>");
	free(r.alloc_regions[1].label);
	r.alloc_regions[1].label = strdup("arena \"1\" </script><b>x");
	ck_assert_ptr_null(md_report_add_note(&r, "note with \xff\xfe bytes & <tags>"));
	char *html = render_html(&r);
	ck_assert(strncmp(html, "<!DOCTYPE html>\n", 16) == 0);
	/* nothing is fetched: no URL, no external script, style, font or image */
	ck_assert_ptr_null(strstr(html, "http:"));
	ck_assert_ptr_null(strstr(html, "https:"));
	ck_assert_ptr_null(strstr(html, "//"));
	ck_assert_ptr_null(strstr(html, "<link"));
	ck_assert_ptr_null(strstr(html, "src="));
	ck_assert_ptr_null(strstr(html, "@import"));
	ck_assert_ptr_null(strstr(html, "url("));
	/* the hostile strings are inert */
	ck_assert_ptr_null(strstr(html, "<script>alert"));
	ck_assert_ptr_nonnull(strstr(html, "[heap]&lt;script&gt;alert(1)&lt;/script&gt;"));
	ck_assert_ptr_null(strstr(html, "</script><b>x"));
	ck_assert_ptr_nonnull(strstr(html, "arena \\\"1\\\" \\u003c/script\\u003e\\u003cb\\u003ex"));
	/* bytes that are not UTF-8 named as in every human format, markup as entities */
	ck_assert_ptr_nonnull(strstr(html, "note with \\xff\\xfe bytes &amp; &lt;tags&gt;"));
	/* exactly two script elements: the data and the code */
	size_t scripts = 0;
	for (const char *p = html; (p = strstr(p, "<script")); p++)
		scripts++;
	ck_assert_uint_eq(scripts, 2);
	/* the sections, the regions, a map per region, the figures */
	ck_assert_ptr_nonnull(strstr(html, "<section id=\"answer\">"));
	ck_assert_ptr_nonnull(strstr(html, "<section id=\"gap\">"));
	ck_assert_ptr_nonnull(strstr(html, "<section id=\"map\">"));
	ck_assert_ptr_nonnull(strstr(html, "<section id=\"advice\">"));
	ck_assert_ptr_nonnull(strstr(html, "id=\"region-r0\" data-label=\"glibc main arena\""));
	ck_assert_ptr_nonnull(strstr(html, "<svg class=\"map\" id=\"map-r3\""));
	ck_assert_ptr_nonnull(strstr(html, "RSS <b>1.02 GiB</b> = live heap <b>839 MiB</b>"));
	/* the fixture's arena 1 is corrupt: no trim advice, a warning instead */
	ck_assert_ptr_nonnull(strstr(html, "<li data-topic=\"trim-unsafe\">Do not call malloc_trim(0) on this evidence"));
	ck_assert_ptr_nonnull(strstr(html, "class=\"chart histogram\""));
	free(html);
	md_report_deinit(&r);
}
END_TEST

/* The Chromium binary, or NULL. */
static const char *chromium(void)
{
	static const char *const paths[] = { "/usr/bin/chromium", "/usr/bin/chromium-browser",
					     "/usr/lib/chromium/chromium", NULL };
	const char *env = getenv("MD_CHROMIUM");
	if (env && access(env, X_OK) == 0)
		return env;
	for (size_t i = 0; paths[i]; i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* Run chromium headless on file#selftest; mode "--dump-dom" returns the DOM, else writes the
 * screenshot to shot. */
static char *run_chromium(const char *browser, const char *file, const char *shot)
{
	char profile[] = "/tmp/md-chromium-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(profile));
	char url[4200], udd[128], out_path[128], shot_arg[4200];
	snprintf(url, sizeof(url), "file://%s#selftest", file);
	snprintf(udd, sizeof(udd), "--user-data-dir=%s", profile);
	snprintf(out_path, sizeof(out_path), "%s/out.txt", profile);
	snprintf(shot_arg, sizeof(shot_arg), "--screenshot=%s", shot ? shot : "");
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		FILE *o = freopen(out_path, "w", stdout);
		FILE *e = freopen("/dev/null", "w", stderr);
		(void)o;
		(void)e;
		execl(browser, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", udd,
		      "--window-size=1280,2400", "--virtual-time-budget=3000", shot ? shot_arg : "--dump-dom", url,
		      (char *)NULL);
		_exit(127);
	}
	int status = 0;
	/* a browser that hangs must not hang the suite: 90 s, then killed */
	for (int i = 0; i < 900; i++) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (i == 899) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("chromium did not finish in 90 s");
		}
		usleep(100 * 1000);
	}
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "chromium failed (status %d)", status);
	char *dom = md_fx_read_file(out_path);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", profile);
	ck_assert_int_eq(system(cmd), 0);
	return dom;
}

static void check_in_browser(const char *html_path, const char *must[], const char *shot_name)
{
	const char *browser = chromium();
	if (!browser) {
		md_test_skip(true, "html browser check", "chromium is not installed (scripts/deps.sh installs the Debian "
								 "package chromium)");
		return;
	}
	char *dom = run_chromium(browser, html_path, NULL);
	ck_assert_ptr_nonnull(dom);
	/* the script ran: it marks the body, hovered the first cell (the tooltip shows the cell's
	 * address range) and zoomed the first map (its width doubled) */
	ck_assert_msg(strstr(dom, "data-ready=\"1\""), "the page's script did not run");
	const char *hover = strstr(dom, "data-hover=\"[0x");
	ck_assert_msg(hover, "no tooltip after the hover");
	ck_assert_ptr_nonnull(strstr(dom, "id=\"tip\" style=\"display: block;"));
	const char *zoom = strstr(dom, "data-zoom=\"");
	ck_assert_ptr_nonnull(zoom);
	unsigned long before = 0, after = 0;
	/* the DOM dump escapes the '>' of "a->b" */
	ck_assert_int_eq(sscanf(zoom, "data-zoom=\"%lu-&gt;%lu\"", &before, &after), 2);
	ck_assert_uint_eq(after, before * 2);
	for (size_t i = 0; must[i]; i++)
		ck_assert_msg(strstr(dom, must[i]), "the DOM lacks %s", must[i]);
	free(dom);

	/* a screenshot, kept for a person to look at */
	const char *dir = getenv("MD_ARTIFACTS");
	char shot[4200];
	snprintf(shot, sizeof(shot), "%s/%s", dir && *dir ? dir : "/tmp", shot_name);
	unlink(shot);
	free(run_chromium(browser, html_path, shot));
	struct stat st;
	ck_assert_msg(stat(shot, &st) == 0, "no screenshot at %s", shot);
	ck_assert_int_gt(st.st_size, 20000); /* a blank page compresses to a few KiB */
	fprintf(stderr, "html: screenshot in %s\n", shot);
}

START_TEST(test_html_in_browser)
{
	struct md_report r;
	md_fx_build_report(&r);
	char path[] = "/tmp/md-html-XXXXXX.html";
	int fd = mkstemps(path, 5);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	ck_assert_ptr_null(md_render_html(&r, f));
	ck_assert_int_eq(fclose(f), 0);
	const char *must[] = {
		"glibc main arena", "glibc arena 1 heap 1", "glibc mmapped chunk", "id=\"map-r0\"",
		"live heap <b>839 MiB</b>", "id=\"gap-regions\"", "Raise the container limit", NULL,
	};
	check_in_browser(path, must, "memdissect-html-fixture.png");
	unlink(path);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_html_live_demo)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "demo", NULL));
	char pid[32], path[] = "/tmp/md-html-live-XXXXXX.html";
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	int fd = mkstemps(path, 5);
	ck_assert_int_ge(fd, 0);
	close(fd);
	const char *args[] = { "attach", "--html", path, pid, NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 120000 : 60000);
	md_test_proc_stop(&p);
	ck_assert_msg(status == 0, "status %d: %s", status, err);
	ck_assert_str_eq(out, ""); /* --html alone keeps stdout quiet */
	ck_assert_ptr_nonnull(strstr(err, "HTML report written to"));
	free(out);
	free(err);
	const char *must[] = { "glibc main arena", "glibc arena 1 heap 0", "glibc arena 3 heap 0",
			       "glibc mmapped chunks (2)", "memdissect: pid ", NULL };
	check_in_browser(path, must, "memdissect-html-demo.png");
	unlink(path);
}
END_TEST

/* watch --html: the trend page of a real watch, in Chromium: the five series drawn, hovering a
 * sample shows its figures (the script hovers the last one under #selftest), the verdict and the
 * fitted slopes are on the page, and nothing is fetched from anywhere. */
START_TEST(test_watch_trend_page)
{
	const char *browser = chromium();
	if (!browser)
		MD_SKIP("chromium is not installed (scripts/deps.sh installs the Debian package chromium)");
	struct md_test_proc p;
	const char *targs[] = { "sizes", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", targs));
	char pid[32], path[] = "/tmp/md-watch-XXXXXX.html";
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	int fd = mkstemps(path, 5);
	ck_assert_int_ge(fd, 0);
	close(fd);
	const char *args[] = { "watch", "--html", path, "--interval", "0.15", "--count", "4", "--no-color", pid, NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 120000 : 60000);
	md_test_proc_stop(&p);
	ck_assert_msg(status == 0, "watch --html: status %d: %s", status, err);
	free(out);
	free(err);
	char *page = md_fx_read_file(path);
	ck_assert_ptr_nonnull(page);
	ck_assert_msg(!strstr(page, "http://") && !strstr(page, "https://") && !strstr(page, "src="), "the page refers outside");
	ck_assert_ptr_nonnull(strstr(page, "id=\"verdict\""));
	ck_assert_ptr_nonnull(strstr(page, "Fitted slopes"));
	free(page);
	char *dom = run_chromium(browser, path, NULL);
	ck_assert_ptr_nonnull(dom);
	ck_assert_msg(strstr(dom, "data-ready=\"1\""), "the page's script did not run");
	ck_assert_msg(strstr(dom, "data-series=\"5\""), "not five series drawn");
	const char *hover = strstr(dom, "data-hover=\"sample 4 at ");
	ck_assert_msg(hover && strstr(hover, "RSS ") && strstr(hover, "live heap "), "hovering the last sample shows nothing");
	free(dom);
	char shot[] = "/tmp/memdissect-watch-page.png";
	free(run_chromium(browser, path, shot));
	fprintf(stderr, "html: watch page screenshot in %s\n", shot);
	unlink(path);
}
END_TEST

Suite *html_suite(void)
{
	Suite *s = suite_create("html");
	TCase *tc = tcase_create("html");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_html_self_contained);
	tcase_add_test(tc, test_html_in_browser);
	tcase_add_test(tc, test_html_live_demo);
	tcase_add_test(tc, test_watch_trend_page);
	suite_add_tcase(s, tc);
	return s;
}
