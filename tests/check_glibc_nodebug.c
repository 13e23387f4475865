/* Issue 4: the glibc answers must not depend on debug info. Every ground-truth mode of
 * tests/targets/glibc_truth is attached twice: once as usual (DWARF from libc6-dbg), once with
 * the debug files made invisible (a private mount namespace with an empty /usr/lib/debug) and
 * --debuginfo=off. mallinfo, trim_release_bytes and the allocator page classes must be identical,
 * with "symbols": "heuristic". The same for a statically linked copy of the program, with its
 * .symtab and stripped. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>

#include "../plugins/glibc/glibc_layout.h" /* GLIBC_MIN_MINOR, GLIBC_MAX_MINOR: the claim */
#include "tests.h"

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

/* Run argv with stdout captured (stderr passed through); the exit status or -1. */
static int run_capture(char *const argv[], char **out_ret)
{
	int fds[2];
	ck_assert(pipe(fds) == 0);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	ck_assert(buf != NULL);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert(buf != NULL);
		}
		ssize_t n = read(fds[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	close(fds[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*out_ret = buf;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static struct md_node *parse(const char *out, const char *what)
{
	struct md_node *root = NULL;
	struct md_error *err = md_node_parse_json(out, strlen(out), &root);
	ck_assert_msg(!err, "%s: report is not JSON: %s", what, err ? err->message : "");
	return root;
}

/* Whether a private mount namespace can hide /usr/lib/debug here (root, unshare present). */
static bool can_hide_debug(void)
{
	static int answer = -1;
	if (answer < 0) {
		char *out = NULL;
		char *const argv[] = { "unshare", "--mount", "sh", "-c",
				       "mount -t tmpfs none /usr/lib/debug && ls /usr/lib/debug | wc -l", NULL };
		int st = run_capture(argv, &out);
		answer = st == 0 && out && atoi(out) == 0;
		free(out);
	}
	return answer;
}

/* attach --json, with debug info visible or hidden. */
static struct md_node *attach(pid_t pid, bool hidden, const char *what)
{
	char pidtext[24], cmd[4096];
	snprintf(pidtext, sizeof(pidtext), "%d", (int)pid);
	char *out = NULL;
	int st;
	if (!hidden) {
		char *const argv[] = { (char *)md_test_memdissect(), "attach", "--json", pidtext, NULL };
		st = run_capture(argv, &out);
	} else if (can_hide_debug()) {
		snprintf(cmd, sizeof(cmd),
			 "mount -t tmpfs none /usr/lib/debug && unset DEBUGINFOD_URLS && exec '%s' attach --json --debuginfo=off %s",
			 md_test_memdissect(), pidtext);
		char *const argv[] = { "unshare", "--mount", "sh", "-c", cmd, NULL };
		st = run_capture(argv, &out);
	} else {
		fprintf(stderr, "%s: cannot make a private mount namespace: hiding debug info with --debuginfo=off only\n", what);
		char *const argv[] = { (char *)md_test_memdissect(), "attach", "--json", "--debuginfo=off", pidtext, NULL };
		st = run_capture(argv, &out);
	}
	ck_assert_msg(st == 0, "%s: memdissect attach (%s debug info) exited %d", what, hidden ? "without" : "with", st);
	struct md_node *root = parse(out, what);
	free(out);
	return root;
}

static void compare_reports(struct md_test_proc *p, struct md_node *with, struct md_node *without, const char *what,
			    const char *symbols_with)
{
	struct md_node *gw = md_test_allocator(with, "glibc"), *gn = md_test_allocator(without, "glibc");
	ck_assert_msg(gw && gn, "%s: glibc allocator missing (with debug info: %s, without: %s)", what, gw ? "yes" : "no",
		      gn ? "yes" : "no");
	const char *sw = md_node_get_string(md_node_get(gw, "symbols"));
	const char *sn = md_node_get_string(md_node_get(gn, "symbols"));
	ck_assert_msg(sw && (strcmp(sw, symbols_with) == 0 || (strcmp(symbols_with, "dwarf") == 0 && strcmp(sw, "symtab") == 0)),
		      "%s: symbols with debug info: %s, expected %s", what, sw ? sw : "?", symbols_with);
	ck_assert_msg(sn && strcmp(sn, "heuristic") == 0, "%s: symbols without debug info: %s", what, sn ? sn : "?");
	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char key[64], path[64];
		snprintf(key, sizeof(key), "mallinfo.%s", mallinfo_fields[i]);
		snprintf(path, sizeof(path), "mallinfo.%s", mallinfo_fields[i]);
		unsigned long long truth = 0;
		ck_assert_msg(md_test_truth_u64(p, key, &truth), "%s: target printed no %s", what, key);
		ck_assert_msg(md_test_json_u64(gw, path) == truth, "%s: with debug info %s = %llu, glibc says %llu", what, path,
			      (unsigned long long)md_test_json_u64(gw, path), truth);
		ck_assert_msg(md_test_json_u64(gn, path) == truth, "%s: without debug info %s = %llu, glibc says %llu", what, path,
			      (unsigned long long)md_test_json_u64(gn, path), truth);
	}
	ck_assert_msg(md_test_json_u64(gw, "trim_release_bytes") == md_test_json_u64(gn, "trim_release_bytes"),
		      "%s: trim_release_bytes %llu with debug info, %llu without", what,
		      (unsigned long long)md_test_json_u64(gw, "trim_release_bytes"), (unsigned long long)md_test_json_u64(gn, "trim_release_bytes"));
	static const char *const classes[] = { "classes.live", "classes.free", "classes.metadata" };
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(md_test_json_u64(with, classes[i]) == md_test_json_u64(without, classes[i]), "%s: %s %llu with debug info, %llu without",
			      what, classes[i], (unsigned long long)md_test_json_u64(with, classes[i]),
			      (unsigned long long)md_test_json_u64(without, classes[i]));
	ck_assert_uint_eq(md_node_count(md_node_get(gw, "arenas")), md_node_count(md_node_get(gn, "arenas")));
}

static void run_mode(const char *program, const char *mode, const char *symbols_with)
{
	char what[128];
	snprintf(what, sizeof(what), "%s %s", program, mode);
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert_msg(md_test_proc_start(&p, program, args), "cannot start %s", what);
	struct md_node *with = attach(p.pid, false, what);
	struct md_node *without = attach(p.pid, true, what);
	compare_reports(&p, with, without, what, symbols_with);
	md_node_destroy(with);
	md_node_destroy(without);
	md_test_proc_stop(&p);
}

static const char *const modes[] = { "sizes", "kth", "random", "threads", "mmap", "tcache", "trimmed", "fill" };

START_TEST(test_dynamic_without_debuginfo)
{
	run_mode("glibc_truth", modes[_i], "dwarf");
}
END_TEST

/* Statically linked: the allocator lives in the executable; its .symtab serves as long as it is
 * there (debug info or not), the heuristics when it is stripped. */
START_TEST(test_static_without_debuginfo)
{
	run_mode("glibc_truth_static", modes[_i], "symtab");
}
END_TEST

START_TEST(test_static_stripped)
{
	const char *mode = modes[_i];
	char what[64];
	snprintf(what, sizeof(what), "glibc_truth_static_stripped %s", mode);
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert_msg(md_test_proc_start(&p, "glibc_truth_static_stripped", args), "cannot start %s", what);
	struct md_node *report = attach(p.pid, false, what);
	struct md_node *without = attach(p.pid, true, what);
	struct md_node *g = md_test_allocator(report, "glibc");
	ck_assert_msg(g != NULL, "%s: no glibc allocator found in a stripped static executable", what);
	const char *s = md_node_get_string(md_node_get(g, "symbols"));
	ck_assert_msg(s && strcmp(s, "heuristic") == 0, "%s: symbols %s", what, s ? s : "?");
	compare_reports(&p, report, without, what, "heuristic");
	md_node_destroy(report);
	md_node_destroy(without);
	md_test_proc_stop(&p);
}
END_TEST

/* A copy of this machine's libc whose __nptl_version says the first version past the claim
 * (2.42 while 2.26-2.41 are supported): an unknown version must be refused with one clear line
 * naming it and the supported range, the rest of the report printed, and exit 10 (partial). */
static void future_version(char *buf, size_t len)
{
	snprintf(buf, len, "2.%02d", GLIBC_MAX_MINOR + 1);
}

static bool make_future_libc(const char *dir, char *path, size_t len)
{
	snprintf(path, len, "%s/libc.so.6", dir);
	int in = open("/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY);
	if (in < 0)
		return false;
	struct stat st;
	fstat(in, &st);
	char *buf = malloc((size_t)st.st_size);
	ck_assert(buf && read(in, buf, (size_t)st.st_size) == st.st_size);
	elf_version(EV_CURRENT);
	Elf *elf = elf_begin(in, ELF_C_READ, NULL);
	uint64_t value = 0, off = 0;
	Elf_Scn *scn = NULL;
	while (elf && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		gelf_getshdr(scn, &sh);
		if (sh.sh_type != SHT_DYNSYM)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			gelf_getsym(d, (int)i, &sym);
			const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (name && strcmp(name, "__nptl_version") == 0)
				value = sym.st_value;
		}
	}
	for (scn = NULL; elf && value && (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		gelf_getshdr(scn, &sh);
		if (sh.sh_type == SHT_PROGBITS && value >= sh.sh_addr && value + 4 <= sh.sh_addr + sh.sh_size)
			off = sh.sh_offset + (value - sh.sh_addr);
	}
	if (elf)
		elf_end(elf);
	close(in);
	bool ok = off && memcmp(buf + off, "2.", 2) == 0;
	if (ok) {
		char future[8];
		future_version(future, sizeof(future));
		memcpy(buf + off, future, 4);
		int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
		ok = out >= 0 && write(out, buf, (size_t)st.st_size) == st.st_size;
		if (out >= 0)
			close(out);
	}
	free(buf);
	return ok;
}

START_TEST(test_unknown_version_is_partial)
{
	char dir[] = "/tmp/md-future-libc-XXXXXX", path[256];
	ck_assert(mkdtemp(dir) != NULL);
	if (!make_future_libc(dir, path, sizeof(path))) {
		MD_SKIP("this libc has no __nptl_version");
	}
	setenv("LD_LIBRARY_PATH", dir, 1);
	struct md_test_proc p;
	const char *args[] = { "kth", NULL };
	bool started = md_test_proc_start(&p, "glibc_truth", args);
	unsetenv("LD_LIBRARY_PATH");
	ck_assert_msg(started, "cannot start glibc_truth with the patched libc");
	char pidtext[24];
	snprintf(pidtext, sizeof(pidtext), "%d", (int)p.pid);
	const char *margs[] = { "attach", "--debuginfo=off", pidtext, NULL };
	char *out = NULL, *err = NULL;
	int st = md_test_run(margs, &out, &err, 30000);
	ck_assert_msg(st == 10, "unknown glibc version: exit %d, expected 10 (partial); stderr: %s", st, err ? err : "");
	char future[8], range[16];
	future_version(future, sizeof(future));
	snprintf(range, sizeof(range), "2.%d-2.%d", GLIBC_MIN_MINOR, GLIBC_MAX_MINOR);
	ck_assert_msg(out && strstr(out, future) && strstr(out, "not supported") && strstr(out, range),
		      "the report does not say which version is unsupported and what is (%s):\n%s", range, out ? out : "");
	ck_assert_msg(strstr(out, "Classes") || strstr(out, "RSS"), "the rest of the report is missing:\n%s", out);
	free(out);
	free(err);
	md_test_proc_stop(&p);
	unlink(path);
	rmdir(dir);
}
END_TEST

Suite *glibc_nodebug_suite(void)
{
	Suite *s = suite_create("glibc_nodebug");
	TCase *tc = tcase_create("dynamic");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_dynamic_without_debuginfo, 0, (int)(sizeof(modes) / sizeof(modes[0])));
	suite_add_tcase(s, tc);
	tc = tcase_create("static");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_static_without_debuginfo, 0, 3);
	tcase_add_loop_test(tc, test_static_stripped, 0, 3);
	suite_add_tcase(s, tc);
	tc = tcase_create("unknown");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_unknown_version_is_partial);
	suite_add_tcase(s, tc);
	return s;
}
