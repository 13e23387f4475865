/* The plugin ABI: plugins found on $MEMDISSECT_PLUGIN_PATH are loaded, one built for another ABI
 * version or without an entry point is refused with a clear message, and a minimal real plugin
 * (tests/plugins/toy.c) works end to end through the sink. */
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "procfs.h"
#include "tests.h"

/* The source tree: $MD_TESTDATA is <tree>/tests/data. */
static const char *source_tree(void)
{
	static char dir[4096];
	const char *data = getenv("MD_TESTDATA");
	snprintf(dir, sizeof(dir), "%s/../..", data ? data : "tests/data");
	return dir;
}

/* A shell command, with make's jobserver variables cleared (a nested make must not use them). */
static int shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shell(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[8400];
	snprintf(full, sizeof(full), "unset MAKEFLAGS MFLAGS MAKELEVEL; %s", cmd);
	int st = system(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *testplugins(void)
{
	static char dir[4096];
	snprintf(dir, sizeof(dir), "%s/../testplugins", getenv("MD_TARGETS") ? getenv("MD_TARGETS") : "build/targets");
	return dir;
}

START_TEST(test_refused_plugins)
{
	setenv("MEMDISSECT_PLUGIN_PATH", testplugins(), 1);
	const char *args[] = { "plugins", NULL };
	char *out = NULL, *err = NULL;
	int st = md_test_run(args, &out, &err, 10000);
	ck_assert_int_eq(st, 0);
	ck_assert_msg(strstr(out, "badabi.so") && strstr(out, "refused") && strstr(out, "plugin ABI 99"),
		      "wrong-ABI plugin not refused clearly:\n%s", out);
	ck_assert_msg(strstr(out, "noentry.so") && strstr(out, "not a memdissect plugin"),
		      "plugin without entry not refused clearly:\n%s", out);
	ck_assert_msg(strstr(out, "toy") && strstr(out, " ok "), "toy plugin not loaded:\n%s", out);
	/* The bundled plugins next to the executable are still found. */
	ck_assert_msg(strstr(out, "glibc") != NULL, "glibc plugin missing:\n%s", out);
	free(out);
	free(err);
}
END_TEST

START_TEST(test_toy_plugin_attach)
{
	setenv("MEMDISSECT_PLUGIN_PATH", testplugins(), 1);
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "demo", NULL));
	const char *extra[] = { "--plugin", "toy", NULL };
	int st = -1;
	struct md_node *r = md_test_attach_json(p.pid, extra, &st);
	ck_assert_msg(r != NULL && st == 0, "attach with the toy plugin failed: exit %d", st);
	struct md_node *a = md_node_path(r, "allocators.0");
	ck_assert_str_eq(md_node_get_string(md_node_get(a, "name")), "toy");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(a, "metadata_pages")), 1);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(r, "classes.metadata")), 4096);
	ck_assert_uint_eq(md_node_count(md_node_get(r, "findings")), 1);
	uint64_t sum = 0;
	struct md_node *cls = md_node_get(r, "classes");
	for (size_t i = 0; i < md_node_count(cls); i++)
		sum += md_node_get_u64(md_node_at(cls, i));
	ck_assert_uint_eq(sum, md_node_get_u64(md_node_path(r, "memory.rss_bytes")));
	md_node_destroy(r);
	md_test_proc_stop(&p);
}
END_TEST

/* The executable exports the plugin ABI and nothing else of the core: every md_* symbol in its
 * dynamic symbol table is declared in one of the ABI headers, and every ABI function is there. */
START_TEST(test_exports_only_abi)
{
	char cmd[4096], headers[4200];
	snprintf(headers, sizeof(headers), "%s/include/memdissect", source_tree());
	char *text = NULL;
	for (const char *h = "error.h node.h target.h plugin.h", *e; *h; h = *e ? e + 1 : e) {
		e = strchr(h, ' ');
		if (!e)
			e = h + strlen(h);
		char path[4400];
		snprintf(path, sizeof(path), "%s/%.*s", headers, (int)(e - h), h);
		char *one = NULL;
		size_t one_len = 0;
		struct md_error *rerr = md_read_file(path, &one, &one_len);
		ck_assert_msg(!rerr, "cannot read %s", path);
		size_t old = text ? strlen(text) : 0;
		text = realloc(text, old + strlen(one) + 1);
		strcpy(text + old, one);
		free(one);
	}
	snprintf(cmd, sizeof(cmd), "nm -D --defined-only '%s'", md_test_memdissect());
	FILE *f = popen(cmd, "r");
	ck_assert(f);
	char line[512];
	int exported = 0, abi = 0;
	while (fgets(line, sizeof(line), f)) {
		char addr[64], type[8], name[400];
		if (sscanf(line, "%63s %7s %399s", addr, type, name) != 3)
			continue;
		if (name[0] == '_' || strcmp(name, "data_start") == 0)
			continue; /* the linker's own (_start, _end, __bss_start, _IO_stdin_used) */
		exported++;
		char call[420], data[420];
		snprintf(call, sizeof(call), "%s(", name);
		snprintf(data, sizeof(data), "%s;", name);
		bool declared = strncmp(name, "md_", 3) == 0 && (strstr(text, call) || strstr(text, data));
		ck_assert_msg(declared, "memdissect exports %s, which is not in the plugin ABI headers", name);
		abi++;
	}
	pclose(f);
	/* And the other way: the sink, target and node calls a plugin makes are there. */
	ck_assert_msg(abi == exported && exported >= 40, "%d symbols exported", exported);
	free(text);
}
END_TEST

/* The SDK: `make install DESTDIR=...` gives headers and memdissect-plugin.pc; the example plugin
 * builds out of the tree with only pkg-config's flags, and the installed memdissect loads it (and
 * its bundled plugins from the install's own plugin directory, wherever PREFIX put it). */
START_TEST(test_sdk_example_out_of_tree)
{
	char dir[] = "/tmp/md-sdk-XXXXXX";
	ck_assert(mkdtemp(dir));
	const char *tree = source_tree();
	ck_assert_msg(shell("make -s -C '%s' SANITIZE=%d install DESTDIR='%s/root' PREFIX=/opt/md >'%s/install.log' 2>&1",
			    tree, md_test_sanitized() ? 1 : 0, dir, dir) == 0,
		      "make install failed (see %s/install.log)", dir);
	ck_assert_msg(shell("mkdir '%s/src' && cp '%s/examples/plugin/bumppool.c' '%s/examples/plugin/Makefile' '%s/src/' && "
			    "PKG_CONFIG_PATH='%s/root/opt/md/lib/pkgconfig' PKG_CONFIG_SYSROOT_DIR='%s/root' "
			    "make -s -C '%s/src' >'%s/build.log' 2>&1",
			    dir, tree, tree, dir, dir, dir, dir, dir) == 0,
		      "the example plugin did not build against the installed SDK (see %s/build.log)", dir);
	/* Only the SDK's headers were on the include path: no -Iattach, no -Isrc. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/src/bumppool.so", dir);
	ck_assert_msg(access(path, R_OK) == 0, "no %s", path);

	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "bumppool", NULL));
	char exe[4200], pid[32], plugdir[4200];
	snprintf(exe, sizeof(exe), "%s/root/opt/md/bin/memdissect", dir);
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	snprintf(plugdir, sizeof(plugdir), "MEMDISSECT_PLUGIN_PATH=%s/src", dir);
	const char *env[] = { plugdir, NULL };
	const struct md_test_bg_options o = { .exe = exe, .env = env };
	struct md_test_bg r;
	const char *list[] = { "plugins", NULL };
	md_test_bg_start(&r, list, &o);
	int st = md_test_bg_finish(&r, 60000);
	ck_assert_msg(st == 0, "installed memdissect plugins: exit %d\n%s", st, r.err);
	ck_assert_msg(strstr(r.out, "bumppool") && strstr(r.out, "/opt/md/lib/memdissect/1/plugins/glibc.so"),
		      "the installed memdissect did not find the example and its own plugins:\n%s", r.out);
	md_test_bg_free(&r);

	const char *attach[] = { "attach", "--json", "--plugin", "bumppool", pid, NULL };
	md_test_bg_start(&r, attach, &o);
	st = md_test_bg_finish(&r, 60000);
	ck_assert_msg(st == 0, "attach with the example plugin: exit %d\n%s", st, r.err);
	struct md_node *report = NULL;
	ck_assert(md_node_parse_json(r.out, strlen(r.out), &report) == NULL);
	struct md_node *a = md_test_allocator(report, "bumppool");
	ck_assert_msg(a, "no bumppool allocator in the report");
	ck_assert_uint_eq(md_test_json_u64(a, "used_bytes"), md_test_truth(&p, "used"));
	ck_assert_uint_eq(md_test_json_u64(a, "capacity_bytes"), md_test_truth(&p, "capacity"));
	/* 3 MiB + 123 bytes written: 769 pages hold live bytes. */
	ck_assert_uint_eq(md_test_json_u64(a, "live_pages"), (md_test_truth(&p, "used") + 4095) / 4096);
	/* the standard figures, built with the installed figures.h */
	ck_assert_uint_eq(md_test_json_u64(a, "groups.0.live_bytes"), md_test_truth(&p, "used"));
	ck_assert_uint_eq(md_test_json_u64(a, "groups.0.free_bytes"), md_test_truth(&p, "capacity") - md_test_truth(&p, "used"));
	ck_assert_str_eq(md_node_get_string(md_node_path(a, "release.action")) ?: "", "none");
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_bg_free(&r);
	md_test_proc_stop(&p);
	shell("rm -rf '%s'", dir);
}
END_TEST

/* As root, a plugin from $MEMDISSECT_PLUGIN_PATH runs with root's powers: one that others can
 * write, or that root does not own, is refused with the reason. */
START_TEST(test_root_refuses_untrusted_plugins)
{
	if (geteuid() != 0)
		MD_SKIP("not root: the ownership rule applies to root only");
	char dir[] = "/tmp/md-untrusted-XXXXXX";
	ck_assert(mkdtemp(dir));
	ck_assert(shell("cp '%s/toy.so' '%s/writable.so' && chmod 666 '%s/writable.so' && "
			"cp '%s/toy.so' '%s/foreign.so' && chown 65534 '%s/foreign.so'",
			testplugins(), dir, dir, testplugins(), dir, dir) == 0);
	setenv("MEMDISSECT_PLUGIN_PATH", dir, 1);
	const char *args[] = { "plugins", NULL };
	char *out = NULL, *err = NULL;
	ck_assert_int_eq(md_test_run(args, &out, &err, 10000), 0);
	ck_assert_msg(md_test_has_line_with(out, "writable.so") && strstr(out, "writable by group or others"),
		      "a world-writable plugin was not refused:\n%s", out);
	ck_assert_msg(md_test_has_line_with(out, "foreign.so") && strstr(out, "owned by uid 65534"),
		      "a plugin owned by another user was not refused:\n%s", out);
	free(out);
	free(err);
	shell("rm -rf '%s'", dir);
}
END_TEST

/* A plugin directory holding only the named test plugins (toy.so would claim a [heap] page too),
 * searched after first (if not NULL): the plugins walk in that order. */
static void plugin_dir(char *dir, const char *names, const char *first)
{
	strcpy(dir, "/tmp/md-layers-XXXXXX");
	ck_assert(mkdtemp(dir));
	ck_assert(shell("for n in %s; do ln -s '%s'/$n.so '%s'/; done", names, testplugins(), dir) == 0);
	char path[4200];
	snprintf(path, sizeof(path), "%s%s%s", first ? first : "", first ? ":" : "", dir);
	setenv("MEMDISSECT_PLUGIN_PATH", path, 1);
}

/* The pool's pages are the pool's (exact live and free bytes, its live pages), glibc keeps its
 * live bytes (still mallinfo2's uordblks) and says it holds the pool, each page counted once. */
static void check_layered_pool(struct md_node *r, const struct md_test_proc *p)
{
	unsigned long long used = md_test_truth(p, "used"), cap = md_test_truth(p, "capacity");
	unsigned long long base = md_test_truth(p, "pool_base");
	struct md_node *pool = md_test_allocator(r, "bumppool"), *gl = md_test_allocator(r, "glibc");
	ck_assert_msg(pool && gl, "bumppool or glibc missing from the report");
	ck_assert_uint_eq(md_test_json_u64(pool, "groups.0.live_bytes"), used);
	ck_assert_uint_eq(md_test_json_u64(pool, "groups.0.free_bytes"), cap - used);
	/* every page the pool's written bytes touch is the pool's and live, also the first one,
	 * which holds glibc's chunk header and the chunk before */
	uint64_t live_pages = ((base + used - 1) >> 12) - (base >> 12) + 1;
	uint64_t pool_pages = ((base + cap + 4095) >> 12) - (base >> 12);
	ck_assert_uint_eq(md_test_json_u64(pool, "live_pages"), live_pages);
	/* the whole pool is written: its other pages are resident and free (the pool's class, not
	 * the live one of the glibc chunk around it), and the pool counts them, not glibc */
	ck_assert_uint_eq(md_test_json_u64(pool, "groups.0.resident_bytes"), pool_pages * 4096);
	ck_assert_uint_ge(md_test_json_u64(r, "classes.free"), (pool_pages - live_pages) * 4096);
	ck_assert_uint_eq(md_test_json_u64(gl, "holds.0.resident_pages"), pool_pages);
	ck_assert_uint_eq(md_test_json_u64(gl, "mallinfo.uordblks"), md_test_truth(p, "uordblks"));
	ck_assert_str_eq(md_node_get_string(md_node_path(gl, "holds.0.allocator")) ?: "", "bumppool");
	ck_assert_uint_eq(md_test_json_u64(gl, "holds.0.bytes"), cap);
	ck_assert_uint_eq(md_test_json_u64(gl, "holds.0.regions"), 1);
	ck_assert_uint_eq(md_node_count(md_node_get(gl, "holds")), 1);
	ck_assert_uint_eq(md_node_count(md_node_get(pool, "holds")), 0);
	md_test_check_classes_sum(r);
}

/* Layered claims (issue 13): the example's bump pool lives inside a glibc chunk; a claim that
 * straddles a glibc chunk boundary is rejected as a finding and changes no class. The two
 * attaches walk the plugins in both orders (the pool first, then glibc first). */
START_TEST(test_layered_claims)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "layered", NULL));
	char bundled[4096];
	snprintf(bundled, sizeof(bundled), "%s", getenv("MEMDISSECT_PLUGIN_PATH") ?: "");
	char dir[64];
	plugin_dir(dir, "bumppool", NULL);
	int st = -1;
	struct md_node *r = md_test_attach_json(p.pid, NULL, &st);
	ck_assert_msg(r != NULL && st == 0, "attach: exit %d", st);
	ck_assert_str_eq(md_node_get_string(md_node_path(r, "allocators.0.name")) ?: "", "bumppool");
	check_layered_pool(r, &p);
	ck_assert_uint_eq(md_node_count(md_node_get(r, "findings")), 0);
	uint64_t live = md_test_json_u64(r, "classes.live"), free_ = md_test_json_u64(r, "classes.free");
	md_node_destroy(r);
	shell("rm -rf '%s'", dir);

	plugin_dir(dir, "bumppool straddle", bundled[0] ? bundled : NULL);
	r = md_test_attach_json(p.pid, NULL, &st);
	ck_assert_msg(r != NULL && st == 0, "attach with the straddling claim: exit %d", st);
	ck_assert_str_eq(md_node_get_string(md_node_path(r, "allocators.0.name")) ?: "", "glibc");
	check_layered_pool(r, &p);
	struct md_node *fs = md_node_get(r, "findings");
	ck_assert_uint_eq(md_node_count(fs), 1);
	char at[32];
	snprintf(at, sizeof(at), "0x%llx", md_test_truth(&p, "straddle_start"));
	const char *msg = md_node_get_string(md_node_get(md_node_at(fs, 0), "message"));
	ck_assert_str_eq(md_node_get_string(md_node_get(md_node_at(fs, 0), "allocator")) ?: "", "straddle");
	ck_assert_msg(msg && strstr(msg, at) && strstr(msg, "glibc") && strstr(msg, "rejected"), "finding: %s", msg);
	struct md_node *sa = md_test_allocator(r, "straddle");
	ck_assert_msg(sa, "no straddle allocator");
	ck_assert_uint_eq(md_test_json_u64(sa, "live_pages"), 0);
	/* the rejected claim moved no page: the classes are those of the first attach */
	ck_assert_uint_eq(md_test_json_u64(r, "classes.live"), live);
	ck_assert_uint_eq(md_test_json_u64(r, "classes.free"), free_);
	md_node_destroy(r);
	shell("rm -rf '%s'", dir);
	setenv("MEMDISSECT_PLUGIN_PATH", bundled, 1);
	md_test_proc_stop(&p);
}
END_TEST

Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("abi");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_refused_plugins);
	tcase_add_test(tc, test_toy_plugin_attach);
	tcase_add_test(tc, test_exports_only_abi);
	tcase_add_test(tc, test_root_refuses_untrusted_plugins);
	tcase_add_test(tc, test_layered_claims);
	suite_add_tcase(s, tc);
	tc = tcase_create("sdk");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_sdk_example_out_of_tree);
	suite_add_tcase(s, tc);
	return s;
}
