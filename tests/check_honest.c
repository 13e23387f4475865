/* Issue 12, parts 3 and 4: what memdissect cannot see, it names; output a root operator can trust.
 * - Allocators and runtimes without a plugin (tcmalloc, mimalloc, musl, CPython, node, the JVM, Go)
 *   in real programs: named with module and evidence, partial, exit 10, no "nothing to do".
 * - A target whose comm, thread name and file names hold ESC, OSC, BEL, newlines: no human format
 *   prints a control byte; the JSON keeps the truth.
 * - The command line: strict pids, conflicting options, unknown plugins, bounded hidden options,
 *   output paths checked before the pause, diff validating what it reads, a closed stdout. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memdissect/node.h"
#include "render.h"
#include "tests.h"

/* ---- helpers ---- */

/* No byte a terminal would act on: C0 controls but the newline, DEL, C1 controls in UTF-8, and
 * bytes that are not UTF-8 (a lone 0x9b is CSI to an 8-bit terminal). */
static void assert_printable(const char *what, const char *text)
{
	const unsigned char *p = (const unsigned char *)(text ? text : "");
	for (size_t i = 0; p[i]; i++) {
		unsigned char c = p[i];
		ck_assert_msg(c == '\n' || (c >= 0x20 && c != 0x7f), "%s: control byte 0x%02x at offset %zu: ...%.40s", what,
			      c, i, (const char *)p + (i > 20 ? i - 20 : 0));
		if (c >= 0x80) {
			size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
			ck_assert_msg(n, "%s: byte 0x%02x at offset %zu is not UTF-8", what, c, i);
			for (size_t k = 1; k < n; k++)
				ck_assert_msg((p[i + k] & 0xc0) == 0x80, "%s: broken UTF-8 at offset %zu", what, i);
			ck_assert_msg(!(c == 0xc2 && p[i + 1] < 0xa0), "%s: C1 control at offset %zu", what, i);
			i += n - 1;
		}
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			char *more = realloc(buf, cap * 2 + 1);
			if (!more) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = more;
			cap *= 2;
		}
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static int run(const char *const *args, char **out, char **err)
{
	return md_test_run(args, out, err, 60000);
}

/* The text report of pid (no colour; only one plugin when only_plugin is not NULL), asserting
 * the exit code; malloc'd. */
static char *text_report_with(pid_t pid, int want_status, const char *only_plugin)
{
	char pid_text[32];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	char *out = NULL, *err = NULL;
	const char *plain[] = { "attach", "--no-color", pid_text, NULL };
	const char *one[] = { "attach", "--no-color", "--plugin", only_plugin, pid_text, NULL };
	const char *const *args = only_plugin ? one : plain;
	int status = run(args, &out, &err);
	ck_assert_msg(status == want_status, "attach %d: exit %d, want %d; stderr: %s", (int)pid, status, want_status,
		      err ? err : "");
	free(err);
	return out;
}

static char *text_report(pid_t pid, int want_status)
{
	return text_report_with(pid, want_status, NULL);
}

/* ---- escaping, unit ---- */

START_TEST(test_escape_text)
{
	char buf[64];
	ck_assert_str_eq(md_esc("plain /usr/lib/libc.so.6"), "plain /usr/lib/libc.so.6");
	ck_assert_str_eq(md_esc("caf\xc3\xa9 \xe2\x82\xac"), "caf\xc3\xa9 \xe2\x82\xac"); /* UTF-8 stays */
	ck_assert_str_eq(md_esc("\033]0;pwn\007\n"), "\\x1b]0;pwn\\x07\\n");
	ck_assert_str_eq(md_esc("a\\b\tc\r"), "a\\\\b\\tc\\r");
	ck_assert_str_eq(md_esc("\xc2\x9b" "31m \x9b \xff \x7f"), "\\xc2\\x9b31m \\x9b \\xff \\x7f");
	ck_assert_str_eq(md_esc("\xed\xa0\x80 \xc0\xaf"), "\\xed\\xa0\\x80 \\xc0\\xaf"); /* surrogate, overlong */
	ck_assert_str_eq(md_esc(NULL), "");
	/* truncation never leaves half an escape */
	size_t need = md_escape_text("ab\033cd", buf, 5);
	ck_assert_uint_eq(need, 8);
	ck_assert_str_eq(buf, "ab");
	ck_assert_uint_eq(md_escape_text_keep_backslash("a\\\033", buf, sizeof(buf)), 6);
	ck_assert_str_eq(buf, "a\\\\x1b");
	/* eight at once in one printf */
	snprintf(buf, sizeof(buf), "%s%s%s%s%s%s%s%s", md_esc("\001"), md_esc("\002"), md_esc("\003"), md_esc("\004"),
		 md_esc("\005"), md_esc("\006"), md_esc("\007"), md_esc("\010"));
	ck_assert_str_eq(buf, "\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08");
}
END_TEST

/* ---- escaping, against a real hostile target ---- */

START_TEST(test_hostile_names_every_format)
{
	SKIP_WITHOUT_PTRACE();
	char dir[] = "/tmp/md-hostile-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	struct md_test_proc p;
	const char *targs[] = { dir, NULL };
	ck_assert(md_test_proc_start(&p, "hostile_names", targs));
	char pid[32], html[PATH_MAX], ja[PATH_MAX], jb[PATH_MAX];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(html, sizeof(html), "%s/r.html", dir);
	snprintf(ja, sizeof(ja), "%s/a.json", dir);
	snprintf(jb, sizeof(jb), "%s/b.json", dir);
	char *out = NULL, *err = NULL;

	/* text, with and without the map, and colour on: only our own SGR sequences */
	const char *text[] = { "attach", "--no-color", "--top", "100", pid, NULL };
	setenv("COLUMNS", "400", 1); /* the whole file names in the mapping list */
	ck_assert_int_eq(run(text, &out, &err), 0);
	unsetenv("COLUMNS");
	assert_printable("text report", out);
	assert_printable("text stderr", err);
	ck_assert_ptr_nonnull(strstr(out, "(\\x1b]0;pwn\\x07\\n\\x1b[2J)")); /* the whole comm, escaped */
	ck_assert_ptr_nonnull(strstr(out, "gone\\x1b[5mfile [deleted]"));
	/* the file really named "... (deleted)" is not deleted: its full name, no marker */
	ck_assert_ptr_nonnull(strstr(out, "md\\x1b[31mred\\nline\\x07\\x9b (deleted)\n"));
	free(out);
	free(err);
	const char *map[] = { "attach", "--no-color", "--map", pid, NULL };
	ck_assert_int_eq(run(map, &out, &err), 0);
	assert_printable("text --map", out);
	free(out);
	free(err);
	const char *color[] = { "attach", "--color", "--top", "100", pid, NULL };
	ck_assert_int_eq(run(color, &out, &err), 0);
	for (const char *e = out; (e = strchr(e, '\033')); e++)
		ck_assert_msg(e[1] == '[' && strspn(e + 2, "0123456789;") > 0 && e[2 + strspn(e + 2, "0123456789;")] == 'm',
			      "an escape that is not our colour: %.12s", e);
	free(out);
	free(err);

	/* HTML, openmetrics */
	const char *h[] = { "attach", "--html", html, pid, NULL };
	ck_assert_int_eq(run(h, &out, &err), 0);
	free(out);
	free(err);
	char *page = slurp(html);
	ck_assert_ptr_nonnull(page);
	assert_printable("html", page);
	ck_assert_ptr_nonnull(strstr(page, "\\x1b]0;pwn\\x07"));
	free(page);
	const char *om[] = { "attach", "--format", "openmetrics", pid, NULL };
	ck_assert_int_eq(run(om, &out, &err), 0);
	assert_printable("openmetrics", out);
	ck_assert_ptr_nonnull(strstr(out, "comm=\"\\\\x1b]0;pwn\\\\x07\\\\n\\\\x1b[2J\""));
	free(out);
	free(err);

	/* watch, text */
	const char *w[] = { "watch", pid, "--interval", "0.1", "--count", "2", NULL };
	ck_assert_int_eq(run(w, &out, &err), 0);
	assert_printable("watch", out);
	assert_printable("watch stderr", err);
	ck_assert_ptr_nonnull(strstr(out, "pid "));
	ck_assert_ptr_nonnull(strstr(out, "(\\x1b]0;pwn\\x07"));
	free(out);
	free(err);

	/* the JSON keeps the true bytes (JSON-escaped); diff of two of them names the hostile
	 * mapping, escaped */
	const char *j[] = { "attach", "--json", pid, NULL };
	ck_assert_int_eq(run(j, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"comm\": \"\\u001b]0;pwn\\u0007"));
	struct md_node *doc = NULL;
	ck_assert_ptr_null(md_node_parse_json(out, strlen(out), &doc));
	int seen = 0;
	const struct md_node *regions = md_node_get(doc, "regions");
	for (size_t i = 0; i < md_node_count(regions); i++) {
		const struct md_node *reg = md_node_at(regions, i);
		const char *path = md_node_get_string(md_node_get(reg, "path"));
		bool deleted = md_node_get_bool(md_node_get(reg, "deleted"));
		if (path && strstr(path, "/gone\033[5mfile")) {
			ck_assert(deleted);
			seen |= 1;
		}
		if (path && strstr(path, "/md\033[31mred\nline\007") && strstr(path, " (deleted)")) {
			ck_assert(!deleted);
			seen |= 2;
		}
	}
	ck_assert_int_eq(seen, 3);
	md_node_destroy(doc);
	write_text(ja, out);
	free(out);
	free(err);
	ck_assert_int_eq(write(p.in_fd, "touch\n", 6), 6);
	free(md_test_proc_wait_line(&p, "touched", 5000));
	ck_assert_int_eq(run(j, &out, &err), 0);
	write_text(jb, out);
	free(out);
	free(err);
	const char *d[] = { "diff", "--no-color", ja, jb, NULL };
	ck_assert_int_eq(run(d, &out, &err), 0);
	assert_printable("diff", out);
	ck_assert_ptr_nonnull(strstr(out, "md\\x1b[31mred\\n"));
	ck_assert_ptr_nonnull(strstr(out, "(\\x1b]0;pwn\\x07"));
	free(out);
	free(err);

	md_test_proc_stop(&p);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- the command line ---- */

START_TEST(test_cli_strict)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	char pid[32], spaced[40], plus[40], zero[40];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(spaced, sizeof(spaced), " %d", (int)p.pid);
	snprintf(plus, sizeof(plus), "+%d", (int)p.pid);
	snprintf(zero, sizeof(zero), "0%d", (int)p.pid);
	char *out = NULL, *err = NULL;
	const char *bad_pids[] = { spaced, plus, zero, "0", "-1", "2147483648", "12a" };
	for (size_t i = 0; i < sizeof(bad_pids) / sizeof(bad_pids[0]); i++) {
		const char *a[] = { "attach", bad_pids[i], NULL };
		ck_assert_int_eq(run(a, &out, &err), 2);
		/* "-1" reads as an option: refused as one */
		ck_assert_msg(strstr(err, "is not a process id") || strstr(err, "unknown option -1"), "%s", err);
		free(out);
		free(err);
		const char *wa[] = { "watch", bad_pids[i], "--interval", "1", NULL };
		ck_assert_int_eq(run(wa, &out, &err), 2);
		free(out);
		free(err);
	}
	/* conflicting formats, --map beside JSON */
	const char *conflicts[][6] = {
		{ "attach", "--json", "--format", "text", pid, NULL },
		{ "attach", "--format", "openmetrics", "--json", pid, NULL },
		{ "attach", "--format", "json", "--format", "text", pid },
		{ "attach", "--json", "--map", pid, NULL, NULL },
	};
	for (size_t i = 0; i < 4; i++) {
		const char *a[7] = { 0 };
		memcpy(a, conflicts[i], sizeof(conflicts[i]));
		if (i == 2)
			a[6] = NULL;
		ck_assert_int_eq(run(a, &out, &err), 2);
		ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
		free(out);
		free(err);
	}
	/* agreeing spellings are fine */
	const char *agree[] = { "attach", "--json", "--format", "json", pid, NULL };
	ck_assert_int_eq(run(agree, &out, &err), 0);
	free(out);
	free(err);
	/* an unknown plugin lists the plugins and exits 2, for every command */
	const char *plug[] = { "attach", "--plugin", "glibcc", pid, NULL };
	ck_assert_int_eq(run(plug, &out, &err), 2);
	ck_assert_ptr_nonnull(strstr(err, "no plugin named 'glibcc'"));
	ck_assert_ptr_nonnull(strstr(err, "glibc"));
	ck_assert_ptr_nonnull(strstr(err, "jemalloc"));
	free(out);
	free(err);
	const char *wplug[] = { "watch", pid, "--interval", "1", "--plugin", "x", NULL };
	ck_assert_int_eq(run(wplug, &out, &err), 2);
	free(out);
	free(err);
	/* hidden options are bounded */
	const char *hold[] = { "attach", "--hold-pause", "3600000", pid, NULL };
	ck_assert_int_eq(run(hold, &out, &err), 2);
	free(out);
	free(err);
	/* the usage names snapshot --copy, and the exit codes */
	const char *help[] = { "--help", NULL };
	ck_assert_int_eq(run(help, &out, &err), 0);
	ck_assert_ptr_nonnull(strstr(out, "snapshot [--debuginfo=MODE] [--copy MODE]"));
	ck_assert_ptr_nonnull(strstr(out, "memory, stream"));
	ck_assert_ptr_nonnull(strstr(out, "9 output file cannot be written"));
	free(out);
	free(err);
	/* COLUMNS beyond reason: the mapping rows are still there */
	setenv("COLUMNS", "2147483647", 1);
	const char *wide[] = { "attach", "--no-color", pid, NULL };
	ck_assert_int_eq(run(wide, &out, &err), 0);
	unsetenv("COLUMNS");
	ck_assert_ptr_nonnull(strstr(out, "sleeper"));
	ck_assert_ptr_nonnull(strstr(out, "libc.so.6"));
	ck_assert_ptr_nonnull(strstr(out, "1 thread,"));
	free(out);
	free(err);
	md_test_proc_stop(&p);
}
END_TEST

/* Output paths are checked before the target is stopped; bad input files of diff are 7. */
START_TEST(test_exit_codes_of_paths)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	char dir[] = "/tmp/md-paths-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char missing_dir[PATH_MAX], sub[PATH_MAX];
	snprintf(missing_dir, sizeof(missing_dir), "%s/no/such/x.html", dir);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	char *out = NULL, *err = NULL;
	const char *cases[][6] = {
		{ "attach", "--html", dir, pid, NULL },
		{ "attach", "--html", missing_dir, pid, NULL },
		{ "snapshot", pid, "-o", sub, NULL },
		{ "snapshot", pid, "-o", missing_dir, NULL },
	};
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(run(cases[i], &out, &err), 9);
		ck_assert_ptr_nonnull(strstr(err, "memdissect: "));
		ck_assert_ptr_null(strstr(err, "paused"));
		free(out);
		free(err);
	}
	/* nothing was left behind in the directory given as -o */
	char leftover[PATH_MAX + 64];
	snprintf(leftover, sizeof(leftover), "test -z \"$(ls -A '%s')\"", sub);
	ck_assert_int_eq(system(leftover), 0);
	/* the target was never stopped: it answers at once, untraced */
	ck_assert_int_eq(write(p.in_fd, "ping\n", 5), 5);
	char *pong = md_test_proc_wait_line(&p, "pong", 5000);
	ck_assert_ptr_nonnull(pong);
	free(pong);

	/* diff: a missing file, a directory */
	char nofile[PATH_MAX];
	snprintf(nofile, sizeof(nofile), "%s/none.json", dir);
	const char *d1[] = { "diff", nofile, nofile, NULL };
	ck_assert_int_eq(run(d1, &out, &err), 7);
	ck_assert_ptr_nonnull(strstr(err, "none.json"));
	free(out);
	free(err);
	const char *d2[] = { "diff", dir, dir, NULL };
	ck_assert_int_eq(run(d2, &out, &err), 7);
	ck_assert_ptr_nonnull(strstr(err, "is a directory"));
	free(out);
	free(err);
	md_test_proc_stop(&p);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* A full disk is the environment's error (9), for the snapshot and for --html: a 4 KiB tmpfs. */
START_TEST(test_disk_full)
{
	SKIP_WITHOUT_PTRACE();
	if (geteuid() != 0)
		MD_SKIP_OPTIONAL("mounting a small tmpfs needs root");
	char dir[] = "/tmp/md-full-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=4k tmpfs '%s' 2>/dev/null", dir);
	if (system(cmd) != 0) {
		rmdir(dir);
		MD_SKIP_OPTIONAL("cannot mount a tmpfs here");
	}
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	char pid[32], core[PATH_MAX], html[PATH_MAX];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(core, sizeof(core), "%s/s.core", dir);
	snprintf(html, sizeof(html), "%s/r.html", dir);
	char *out = NULL, *err = NULL;
	const char *snap[] = { "snapshot", pid, "-o", core, NULL };
	int snap_rc = run(snap, &out, &err);
	char *snap_err = err;
	free(out);
	const char *h[] = { "attach", "--html", html, pid, NULL };
	int html_rc = run(h, &out, &err);
	char *html_err = err;
	free(out);
	md_test_proc_stop(&p);
	snprintf(cmd, sizeof(cmd), "umount '%s' && rmdir '%s'", dir, dir);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(snap_rc == 9 && strstr(snap_err, "No space left on device"), "snapshot: exit %d, %s", snap_rc, snap_err);
	ck_assert_msg(html_rc == 9 && strstr(html_err, "No space left on device"), "--html: exit %d, %s", html_rc, html_err);
	free(snap_err);
	free(html_err);
}
END_TEST

/* A minimal valid report with one field replaced: diff names the field, exit 7. */
#define DIFF_DOC                                                                                   \
	"{\"schema_version\": 1, \"target\": {\"pid\": 42, \"comm\": \"x\", \"source\": \"live\"},"         \
	" \"memory\": {\"rss_bytes\": %s},"                                                            \
	" \"classes\": {\"live\": 4096, \"free\": 0, \"metadata\": 0, \"stack\": 0, \"file\": 0,"           \
	" \"shared\": 0, \"anon_other\": %s},"                                                          \
	" \"allocators\": [], \"regions\": [%s]}"
START_TEST(test_diff_validates)
{
	char dir[] = "/tmp/md-diffv-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char good[PATH_MAX], bad[PATH_MAX];
	snprintf(good, sizeof(good), "%s/good.json", dir);
	snprintf(bad, sizeof(bad), "%s/bad.json", dir);
	char text[2048];
	snprintf(text, sizeof(text), DIFF_DOC, "8192", "4096", "{\"start\": \"0x1000\", \"rss_bytes\": 8192}");
	write_text(good, text);
	char *out = NULL, *err = NULL;
	const char *ok[] = { "diff", good, good, NULL };
	ck_assert_int_eq(run(ok, &out, &err), 0);
	free(out);
	free(err);
	struct {
		const char *rss, *anon, *regions, *field;
	} cases[] = {
		{ "\"20000000\"", "4096", "", "memory.rss_bytes is a string" },
		{ "18446744073709551621", "4096", "", "memory.rss_bytes is a fraction or an integer too large" },
		{ "-5", "4096", "", "memory.rss_bytes is a negative integer" },
		{ "8192", "1e3", "", "classes.anon_other is a fraction" },
		{ "8192", "16384", "", "classes.anon_other is 16384, out of range" },
		{ "8192", "4096", "{\"start\": \"0xzz\", \"rss_bytes\": 8192}", "regions[0].start is a string, not an address" },
		{ "8192", "4096", "{\"start\": 4096, \"rss_bytes\": true}", "regions[0].rss_bytes is a boolean" },
		{ "8192", "4096", "7", "regions[0] is an integer, not an object" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), DIFF_DOC, cases[i].rss, cases[i].anon, cases[i].regions);
		write_text(bad, text);
		const char *a[] = { "diff", good, bad, NULL };
		ck_assert_int_eq(run(a, &out, &err), 7);
		ck_assert_msg(strstr(err, cases[i].field) && strstr(err, "bad.json"), "case %zu: %s", i, err);
		ck_assert_msg(!out || !out[0], "case %zu printed a diff: %s", i, out);
		free(out);
		free(err);
	}
	/* a missing required key */
	write_text(bad, "{\"schema_version\": 1, \"target\": {\"pid\": 1}, \"memory\": {}, \"classes\": {}}");
	const char *m[] = { "diff", bad, good, NULL };
	ck_assert_int_eq(run(m, &out, &err), 7);
	ck_assert_ptr_nonnull(strstr(err, "memory.rss_bytes is missing"));
	free(out);
	free(err);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* memdissect with stdout a pipe nobody reads any more: silent, 141, and watch stops attaching. */
static int run_into_closed_pipe(const char *const *args, char **err_ret, long long *ms_ret)
{
	int pfd[2], efd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	ck_assert_int_eq(pipe(efd), 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]); /* the reader is gone before the first write */
		dup2(pfd[1], 1);
		dup2(efd[1], 2);
		close(efd[0]);
		signal(SIGPIPE, SIG_DFL);
		const char *argv[16];
		size_t n = 0;
		argv[n++] = md_test_memdissect();
		for (size_t i = 0; args[i] && n < 15; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(pfd[0]);
	close(pfd[1]);
	close(efd[1]);
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	while ((r = read(efd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = 0;
	close(efd[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*ms_ret = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	*err_ret = strdup(buf);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(test_closed_stdout)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	char *err;
	long long ms;
	const char *a[] = { "attach", pid, NULL };
	ck_assert_int_eq(run_into_closed_pipe(a, &err, &ms), 141);
	ck_assert_msg(err[0] == 0, "stderr: %s", err);
	free(err);
	const char *j[] = { "attach", "--json", pid, NULL };
	ck_assert_int_eq(run_into_closed_pipe(j, &err, &ms), 141);
	ck_assert_msg(err[0] == 0, "stderr: %s", err);
	free(err);
	/* 1000 samples asked, 10 a second: it must stop after the first write fails */
	const char *w[] = { "watch", pid, "--interval", "0.1", "--count", "1000", "--json", NULL };
	ck_assert_int_eq(run_into_closed_pipe(w, &err, &ms), 141);
	ck_assert_msg(err[0] == 0, "stderr: %s", err);
	ck_assert_int_lt(ms, 20000);
	free(err);
	const char *wt[] = { "watch", pid, "--interval", "0.1", "--count", "1000", NULL };
	ck_assert_int_eq(run_into_closed_pipe(wt, &err, &ms), 141);
	ck_assert_msg(err[0] == 0, "stderr: %s", err);
	ck_assert_int_lt(ms, 20000);
	free(err);
	md_test_proc_stop(&p);
}
END_TEST

/* ---- allocators and runtimes without a plugin ---- */

/* attach --json and the text report of a program started through "launch": the named
 * allocator is in unanalysed_allocators with a module and evidence, partial, exit 10, and the
 * advice does not say there is nothing to do. */
static void check_unanalysed_with(const char *const *launch_args, const char *name, const char *module_part,
				  const char *only_plugin);
static void check_walked_by(const char *const *launch_args, const char *plugin);
static void check_unanalysed(const char *const *launch_args, const char *name, const char *module_part)
{
	check_unanalysed_with(launch_args, name, module_part, NULL);
}

/* The same with --plugin only_plugin (the allocator's own plugin left out) when not NULL. */
static void check_unanalysed_with(const char *const *launch_args, const char *name, const char *module_part,
				  const char *only_plugin)
{
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, "launch", launch_args), "%s: the program did not start", name);
	int status = -1;
	const char *extra[] = { "--plugin", only_plugin, NULL };
	struct md_node *doc = md_test_attach_json(p.pid, only_plugin ? extra : NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_msg(status == 10, "%s: exit %d, want 10 (partial)", name, status);
	ck_assert(md_node_get_bool(md_node_get(doc, "partial")));
	md_test_check_classes_sum(doc);
	const struct md_node *un = md_node_get(doc, "unanalysed_allocators");
	const struct md_node *found = NULL;
	for (size_t i = 0; i < md_node_count(un); i++) {
		const char *n = md_node_get_string(md_node_get(md_node_at(un, i), "name"));
		if (n && strcmp(n, name) == 0)
			found = md_node_at(un, i);
	}
	ck_assert_msg(found, "%s not named in unanalysed_allocators", name);
	const char *module = md_node_get_string(md_node_get(found, "module"));
	const char *evidence = md_node_get_string(md_node_get(found, "evidence"));
	ck_assert_msg(module && strstr(module, module_part), "%s: module %s", name, module ? module : "(none)");
	ck_assert_msg(evidence && strlen(evidence) > 8, "%s: evidence %s", name, evidence ? evidence : "(none)");
	bool noted = false;
	const struct md_node *notes = md_node_get(doc, "notes");
	for (size_t i = 0; i < md_node_count(notes); i++)
		noted |= strstr(md_node_get_string(md_node_at(notes, i)) ?: "", "no plugin walks it") != NULL;
	ck_assert_msg(noted, "%s: no note", name);
	md_node_destroy(doc);

	char *out = text_report_with(p.pid, 10, only_plugin);
	ck_assert_msg(!strstr(out, "Nothing to do"), "%s: %s", name, strstr(out, "Nothing to do"));
	ck_assert_msg(strstr(out, "Unknown: "), "%s: the advice does not say what is unknown", name);
	ck_assert_ptr_nonnull(strstr(out, "partial report: "));
	free(out);
	md_test_proc_stop(&p);
}

static const char *const python_code =
	"import os, sys\n"
	"x = [str(i) * 10 for i in range(100000)]\n"
	"print('objects', len(x))\n"
	"print('ready', flush=True)\n"
	"sys.stdin.read()\n";

START_TEST(test_unanalysed_python)
{
	SKIP_WITHOUT_PTRACE();
	if (access("/usr/bin/python3", X_OK) != 0)
		MD_SKIP("no /usr/bin/python3");
	const char *args[] = { "/usr/bin/python3", "-c", python_code, NULL };
	/* Without the pymalloc plugin (--plugin glibc) pymalloc is named; with it, walked. */
	check_unanalysed_with(args, "pymalloc", "python3", "glibc");
	check_walked_by(args, "pymalloc");

	/* watch: partial (10), and a stable gap is not called overhead: it holds pymalloc's arenas */
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "launch", args));
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	char *out = NULL, *err = NULL;
	const char *w[] = { "watch", "--plugin", "glibc", pid, "--interval", "0.1", "--count", "3", "--no-color", NULL };
	ck_assert_int_eq(run(w, &out, &err), 10);
	ck_assert_ptr_null(strstr(out, "normal overhead"));
	ck_assert_ptr_nonnull(strstr(out, "pymalloc"));
	free(out);
	free(err);
	md_test_proc_stop(&p);
}
END_TEST

/* A program with lib preloaded: without the allocator's plugin (--plugin glibc) it is named
 * unanalysed; with its plugin (when has_plugin) it is walked; glibc says it is not the allocator. */
static void preload_sleeper(const char *lib, const char *name, const char *module_part, bool has_plugin)
{
	if (access(lib, R_OK) != 0)
		MD_SKIP("%s is not installed (scripts/deps.sh installs it)", lib);
	char env[PATH_MAX + 16], sleeper[PATH_MAX];
	snprintf(env, sizeof(env), "LD_PRELOAD=%s", lib);
	ck_assert_ptr_nonnull(md_test_target_path("sleeper", sleeper, sizeof(sleeper)));
	const char *args[] = { env, sleeper, NULL };
	check_unanalysed_with(args, name, module_part, "glibc");
	if (has_plugin)
		check_walked_by(args, name);

	/* and glibc, whose arena was never allocated from, is said not to be the allocator */
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "launch", args));
	int status;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, has_plugin ? 0 : 10);
	struct md_node *g = md_test_allocator(doc, "glibc");
	ck_assert_ptr_nonnull(g);
	ck_assert_int_eq(md_node_type(md_node_get(g, "in_use")), MD_NODE_BOOL);
	ck_assert(!md_node_get_bool(md_node_get(g, "in_use")));
	ck_assert_ptr_nonnull(strstr(md_node_get_string(md_node_get(g, "in_use_note")), "not this process's allocator"));
	md_node_destroy(doc);
	/* the other formats name it too; the text report does not show glibc's zero figures */
	char pid[32], metric[128];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(metric, sizeof(metric), "memdissect_unanalysed_allocator{pid=\"%s\"", pid);
	char *out = NULL, *err = NULL;
	const char *om[] = { "attach", "--plugin", "glibc", "--format", "openmetrics", pid, NULL };
	ck_assert_int_eq(run(om, &out, &err), 10);
	ck_assert_ptr_nonnull(strstr(out, metric));
	snprintf(metric, sizeof(metric), "name=\"%s\",module=\"", name);
	ck_assert_ptr_nonnull(strstr(out, metric));
	free(out);
	free(err);
	const char *text[] = { "attach", "--no-color", pid, NULL };
	ck_assert_int_eq(run(text, &out, &err), has_plugin ? 0 : 10);
	ck_assert_ptr_nonnull(strstr(out, "glibc malloc is not this process's allocator"));
	ck_assert_ptr_null(strstr(out, "malloc_trim(0) would release"));
	ck_assert_ptr_null(strstr(out, "mallinfo2"));
	free(out);
	free(err);
	md_test_proc_stop(&p);
}

START_TEST(test_unanalysed_tcmalloc)
{
	SKIP_WITHOUT_PTRACE();
	preload_sleeper("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "tcmalloc", "libtcmalloc_minimal.so.4", true);
}
END_TEST

START_TEST(test_unanalysed_mimalloc)
{
	SKIP_WITHOUT_PTRACE();
	preload_sleeper("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", "mimalloc", "libmimalloc.so.2", true);
}
END_TEST

/* The program's allocator walked by its plugin: exit 0, not partial, nothing unanalysed. */
static void check_walked_by(const char *const *launch_args, const char *plugin)
{
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, "launch", launch_args), "%s: the program did not start", plugin);
	int status = -1;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_msg(status == 0, "%s: exit %d with its plugin", plugin, status);
	ck_assert_msg(md_test_allocator(doc, plugin) != NULL, "no %s allocator in the report", plugin);
	ck_assert_msg(md_node_count(md_node_get(doc, "unanalysed_allocators")) == 0, "%s: unanalysed allocators named",
		      plugin);
	md_test_check_classes_sum(doc);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}

START_TEST(test_unanalysed_static_musl)
{
	SKIP_WITHOUT_PTRACE();
	if (system("command -v musl-gcc >/dev/null 2>&1") != 0)
		MD_SKIP("musl-gcc not found (scripts/deps.sh installs musl-tools)");
	char dir[] = "/tmp/md-musl-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char src[PATH_MAX], exe[PATH_MAX], cmd[3 * PATH_MAX];
	snprintf(src, sizeof(src), "%s/m.c", dir);
	snprintf(exe, sizeof(exe), "%s/musl_static", dir);
	/* malloc and free both linked: musl's mallocng, not its bump allocator */
	write_text(src, "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
			"int main(void) { static char *p[4000]; for (int i = 0; i < 4000; i++) { p[i] = malloc(100 + i); memset(p[i], 1, 100); }\n"
			"for (int i = 0; i < 4000; i += 2) free(p[i]);\n"
			"printf(\"ready\\n\"); fflush(stdout); getchar(); return 0; }\n");
	snprintf(cmd, sizeof(cmd), "musl-gcc -static -O1 -o '%s' '%s'", exe, src);
	ck_assert_int_eq(system(cmd), 0);
	const char *args[] = { exe, NULL };
	/* Without the musl plugin (--plugin glibc): musl's malloc is named, the report partial. */
	check_unanalysed_with(args, "musl", "musl_static", "glibc");
	/* With it, the allocator is walked: a whole report, nothing unanalysed. */
	check_walked_by(args, "musl");
	/* stripped: no symbol left, still named (a static executable without glibc's malloc) */
	snprintf(cmd, sizeof(cmd), "strip '%s'", exe);
	ck_assert_int_eq(system(cmd), 0);
	check_unanalysed_with(args, "unknown", "musl_static", "glibc");
	check_walked_by(args, "musl");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_unanalysed_node)
{
	SKIP_WITHOUT_PTRACE();
	if (access("/usr/bin/node", X_OK) != 0)
		MD_SKIP_OPTIONAL("node is not installed");
	const char *args[] = { "/usr/bin/node", "-e",
			       "const x=[];for(let i=0;i<100000;i++)x.push('a'+i);console.log('objects '+x.length);"
			       "console.log('ready');process.stdin.resume()",
			       NULL };
	check_unanalysed(args, "v8", "node");
}
END_TEST

START_TEST(test_unanalysed_java)
{
	SKIP_WITHOUT_PTRACE();
	if (access("/usr/bin/java", X_OK) != 0)
		MD_SKIP_OPTIONAL("java is not installed");
	char dir[] = "/tmp/md-java-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char src[PATH_MAX], java[PATH_MAX];
	snprintf(src, sizeof(src), "%s/Hold.java", dir);
	write_text(src, "public class Hold { public static void main(String[] a) throws Exception {\n"
			"  Object[] x = new Object[100000]; for (int i = 0; i < x.length; i++) x[i] = new byte[64];\n"
			"  System.out.println(\"objects \" + x.length); System.out.println(\"ready\"); System.out.flush();\n"
			"  System.in.read(); } }\n");
	/* the real binary, not the alternatives link: launch execs it in place */
	ck_assert_ptr_nonnull(realpath("/usr/bin/java", java));
	const char *args[] = { java, "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", src, NULL };
	check_unanalysed(args, "hotspot", "libjvm.so");
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(test_unanalysed_go)
{
	SKIP_WITHOUT_PTRACE();
	/* golang-go is not in scripts/deps.sh (a large toolchain); the rule is tested when Go is there */
	if (system("command -v go >/dev/null 2>&1") != 0)
		MD_SKIP_OPTIONAL("go is not installed: the Go runtime's detection (runtime.mallocgc) is untested here");
	char dir[] = "/tmp/md-go-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char src[PATH_MAX], exe[PATH_MAX], cmd[3 * PATH_MAX];
	snprintf(src, sizeof(src), "%s/main.go", dir);
	snprintf(exe, sizeof(exe), "%s/hold", dir);
	write_text(src, "package main\nimport (\"fmt\"; \"os\")\nvar keep [][]byte\n"
			"func main() { for i := 0; i < 100000; i++ { keep = append(keep, make([]byte, 64)) }\n"
			"fmt.Println(\"ready\"); b := make([]byte, 1); os.Stdin.Read(b) }\n");
	snprintf(cmd, sizeof(cmd), "cd '%s' && GOCACHE='%s/cache' GO111MODULE=off go build -o '%s' main.go", dir, dir, exe);
	ck_assert_int_eq(system(cmd), 0);
	const char *args[] = { exe, NULL };
	check_unanalysed(args, "go", "hold");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Go's layout without a Go toolchain (tests/targets/go_like.c): runtime.mallocgc defined, the heap
 * arena at Go's first hint with a thread stack inside. Go is named, the arena is a named region
 * ("go heap arena") of class anon_other, not stacks. */
START_TEST(test_go_layout)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "go_like", NULL));
	uint64_t start = md_test_truth(&p, "arena_start"), touched = md_test_truth(&p, "touched_bytes");
	int status;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 10);
	const struct md_node *un = md_node_get(doc, "unanalysed_allocators");
	bool go = false;
	for (size_t i = 0; i < md_node_count(un); i++) {
		const struct md_node *u = md_node_at(un, i);
		if (strcmp(md_node_get_string(md_node_get(u, "name")) ?: "", "go") == 0) {
			go = true;
			ck_assert_ptr_nonnull(strstr(md_node_get_string(md_node_get(u, "evidence")), "runtime.mallocgc"));
		}
	}
	ck_assert(go);
	const struct md_node *regions = md_node_get(doc, "regions");
	bool found = false;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		struct md_node *reg = md_node_at(regions, i);
		if (md_node_get_u64(md_node_get(reg, "start")) != start)
			continue;
		found = true;
		ck_assert_str_eq(md_node_get_string(md_node_get(reg, "owner")), "go heap arena");
		ck_assert_uint_eq(md_test_json_u64(reg, "classes.stack"), 0);
		ck_assert_uint_ge(md_test_json_u64(reg, "classes.anon_other"), touched);
	}
	ck_assert(found);
	md_node_destroy(doc);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	char *out = NULL, *err = NULL;
	const char *text[] = { "attach", "--no-color", pid, NULL };
	ck_assert_int_eq(run(text, &out, &err), 10);
	ck_assert_ptr_nonnull(strstr(out, "c000000000-c004000000     rw-p"));
	ck_assert_ptr_nonnull(strstr(out, " go heap arena\n"));
	/* nothing outside Go's first arena hint range is claimed */
	const char *g1 = strstr(out, " go heap arena\n");
	ck_assert_ptr_null(strstr(g1 + 1, " go heap arena\n"));
	free(out);
	free(err);
	md_test_proc_stop(&p);
}
END_TEST

/* A plain glibc program names nothing: no false alarm. */
START_TEST(test_no_false_unanalysed)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	int status;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "unanalysed_allocators")), 0);
	ck_assert(!md_node_get_bool(md_node_get(doc, "partial")));
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}
END_TEST

/* ---- MADV_FREE ---- */

/* LazyFree pages are said as such, with the figure the target's own smaps_rollup gives. */
START_TEST(test_lazy_free_shown)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "lazy_free", NULL));
	unsigned long long truth = md_test_truth(&p, "lazy_free");
	/* no swap and no memory pressure here: the kernel keeps the pages (a reclaim would only
	 * lower the figure) */
	ck_assert_msg(truth >= (5ULL << 20) && truth <= (6ULL << 20), "the target's LazyFree is %llu", truth);
	int status;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	uint64_t seen = md_test_json_u64(doc, "memory.lazy_free_bytes");
	/* the kernel moves MADV_FREE'd pages to its lazy-free list in per-CPU batches: the figure
	 * may still grow to the 6 MiB given back, or shrink if reclaimed */
	ck_assert_msg(seen <= (6ULL << 20) && seen + (1ULL << 20) >= truth, "lazy_free_bytes %" PRIu64 ", the target said %llu",
		      seen, truth);
	md_node_destroy(doc);
	char *out = text_report(p.pid, 0);
	const char *lf = strstr(out, "\n  LazyFree ");
	ck_assert_msg(lf && strstr(lf, " MiB: pages freed with MADV_FREE"), "no LazyFree line in the report");
	free(out);
	md_test_proc_stop(&p);
}
END_TEST

/* ---- stacks ---- */

/* A thread whose stack lies inside a big anonymous arena (Go's goroutine stacks): the arena is
 * not a stack; ordinary pthread stacks and the main stack still are. */
START_TEST(test_sp_in_arena_is_not_a_stack)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sp_in_heap", NULL));
	uint64_t start = md_test_truth(&p, "arena_start"), end = md_test_truth(&p, "arena_end");
	uint64_t touched = md_test_truth(&p, "touched_bytes");
	int status;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 0);
	md_test_check_classes_sum(doc);
	const struct md_node *regions = md_node_get(doc, "regions");
	bool found = false;
	uint64_t plain_stacks = 0;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		struct md_node *reg = md_node_at(regions, i);
		uint64_t rs = md_node_get_u64(md_node_get(reg, "start")), re = md_node_get_u64(md_node_get(reg, "end"));
		if (rs <= start && re >= end) {
			found = true;
			ck_assert_str_ne(md_node_get_string(md_node_get(reg, "kind")), "stack");
			ck_assert_uint_eq(md_test_json_u64(reg, "classes.stack"), 0);
			ck_assert_uint_ge(md_test_json_u64(reg, "classes.anon_other"), touched);
		} else {
			plain_stacks += md_test_json_u64(reg, "classes.stack");
		}
	}
	ck_assert_msg(found, "no region holds the arena [%" PRIx64 ", %" PRIx64 ")", start, end);
	/* the main stack and the plain thread's stack, a page each at least */
	ck_assert_uint_ge(plain_stacks, 2 * 4096);
	ck_assert_uint_lt(md_test_json_u64(doc, "classes.stack"), touched);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}
END_TEST

Suite *honest_suite(void)
{
	Suite *s = suite_create("honest");
	TCase *tc = tcase_create("escape");
	tcase_add_test(tc, test_escape_text);
	tcase_add_test(tc, test_hostile_names_every_format);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("cli");
	tcase_add_test(tc, test_cli_strict);
	tcase_add_test(tc, test_exit_codes_of_paths);
	tcase_add_test(tc, test_diff_validates);
	tcase_add_test(tc, test_disk_full);
	tcase_add_test(tc, test_closed_stdout);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("stacks");
	tcase_add_test(tc, test_sp_in_arena_is_not_a_stack);
	tcase_add_test(tc, test_lazy_free_shown);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("unanalysed");
	tcase_add_test(tc, test_no_false_unanalysed);
	tcase_add_test(tc, test_unanalysed_python);
	tcase_add_test(tc, test_unanalysed_tcmalloc);
	tcase_add_test(tc, test_unanalysed_mimalloc);
	tcase_add_test(tc, test_unanalysed_static_musl);
	tcase_add_test(tc, test_unanalysed_node);
	tcase_add_test(tc, test_unanalysed_java);
	tcase_add_test(tc, test_unanalysed_go);
	tcase_add_test(tc, test_go_layout);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
