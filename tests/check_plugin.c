/* The plugin ABI: plugins found on $MEMDISSECT_PLUGIN_PATH are loaded, one built for another ABI
 * version or without an entry point is refused with a clear message, and a minimal real plugin
 * (tests/plugins/toy.c) works end to end through the sink. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

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

Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("abi");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_refused_plugins);
	tcase_add_test(tc, test_toy_plugin_attach);
	suite_add_tcase(s, tc);
	return s;
}
