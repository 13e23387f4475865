/* The Debian packages (issue: "where users already are"): `make deb` builds memdissect and
 * memdissect-dev with debhelper and lintian finds no error; the packages install on this machine,
 * /usr/bin/memdissect finds its plugins in the multiarch directory and attaches to a target, the
 * SDK's pkg-config file points there, and the packages are purged again (also when the test
 * fails: the tcase's teardown runs in the runner). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"

static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...)
{
	char cmd[8192], full[8400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "unset MAKEFLAGS MFLAGS MAKELEVEL; %s", cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void purge(void)
{
	if (geteuid() == 0)
		shell("dpkg --purge memdissect-dev memdissect >/dev/null 2>&1");
}

START_TEST(test_deb_install_attach_remove)
{
	if (md_test_sanitized())
		MD_SKIP_OPTIONAL("the packages are built and installed once, in the normal pass");
	if (geteuid() != 0)
		MD_SKIP("installing a package needs root");
	if (shell("{ command -v dpkg-buildpackage && command -v lintian && command -v dh; } >/dev/null") != 0)
		MD_SKIP("dpkg-dev, debhelper or lintian missing (scripts/deps.sh installs them)");
	const char *data = getenv("MD_TESTDATA");
	char tree[4096], log[] = "/tmp/md-deb-XXXXXX";
	snprintf(tree, sizeof(tree), "%s/../..", data ? data : "tests/data");
	ck_assert(mkdtemp(log));
	ck_assert_msg(shell("make -s -C '%s' BUILD=build-deb deb >'%s/deb.log' 2>&1", tree, log) == 0,
		      "make deb failed or lintian found errors: see %s/deb.log", log);
	purge();
	ck_assert_msg(shell("dpkg -i '%s'/build-deb/deb/memdissect_*.deb '%s'/build-deb/deb/memdissect-dev_*.deb "
			    ">'%s/dpkg.log' 2>&1", tree, tree, log) == 0,
		      "dpkg -i failed: see %s/dpkg.log", log);

	char *plugins = md_test_capture("/usr/bin/memdissect plugins 2>&1");
	ck_assert_msg(plugins && strstr(plugins, "/usr/lib/x86_64-linux-gnu/memdissect/1/plugins/glibc.so") &&
			      strstr(plugins, "jemalloc"),
		      "/usr/bin/memdissect does not find its plugins in the multiarch directory:\n%s", plugins);
	free(plugins);
	ck_assert_msg(access("/usr/share/man/man1/memdissect.1.gz", R_OK) == 0 || access("/usr/share/man/man1/memdissect.1", R_OK) == 0,
		      "the package has no man page");
	ck_assert_msg(access("/usr/share/bash-completion/completions/memdissect", R_OK) == 0, "the package has no completion");
	char *pc = md_test_capture("pkg-config --variable=plugindir memdissect-plugin");
	ck_assert_msg(pc && strcmp(pc, "/usr/lib/x86_64-linux-gnu/memdissect/1/plugins\n") == 0,
		      "memdissect-plugin.pc plugindir: %s", pc);
	free(pc);

	struct md_test_proc p;
	const char *targs[] = { "sizes", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", targs));
	const char *env[] = { "MEMDISSECT_PLUGIN_PATH=", NULL };
	const struct md_test_bg_options o = { .exe = "/usr/bin/memdissect", .env = env };
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	const char *args[] = { "attach", "--json", pid, NULL };
	struct md_test_bg r;
	md_test_bg_start(&r, args, &o);
	int st = md_test_bg_finish(&r, 60000);
	ck_assert_msg(st == 0, "/usr/bin/memdissect attach: exit %d\n%s", st, r.err);
	struct md_node *report = NULL;
	ck_assert(md_node_parse_json(r.out, strlen(r.out), &report) == NULL);
	struct md_node *g = md_test_allocator(report, "glibc");
	ck_assert_msg(g, "the installed memdissect found no glibc allocator");
	ck_assert_uint_eq(md_test_json_u64(g, "mallinfo.uordblks"), md_test_truth(&p, "mallinfo.uordblks"));
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_bg_free(&r);
	md_test_proc_stop(&p);

	purge();
	ck_assert_msg(access("/usr/bin/memdissect", F_OK) != 0, "/usr/bin/memdissect is still there after the purge");
	shell("rm -rf '%s' '%s/build-deb'", log, tree);
}
END_TEST

Suite *package_suite(void)
{
	Suite *s = suite_create("package");
	TCase *tc = tcase_create("deb");
	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, NULL, purge);
	tcase_add_test(tc, test_deb_install_attach_remove);
	suite_add_tcase(s, tc);
	return s;
}
