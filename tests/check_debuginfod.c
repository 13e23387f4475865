/* Debug info from a debuginfod server (DEBUGINFOD_URLS): Debian's real debuginfod serves libc's
 * debug file on 127.0.0.1 inside a private network namespace (nothing leaves the machine), while
 * a private mount namespace hides /usr/lib/debug. The glibc plugin must find main_arena through
 * the downloaded file, say so in symbols_detail, and give glibc's exact mallinfo; with --offline
 * it must ask the server nothing (heuristics, still exact). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procfs.h"
#include "tests.h"

static const char *const fields[] = { "arena", "ordblks", "smblks", "hblks", "hblkhd", "fsmblks", "uordblks",
				      "fordblks", "keepcost" };

static char *slurp(const char *dir, const char *name)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *buf = NULL;
	size_t len = 0;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return NULL;
	}
	return buf;
}

static unsigned long long truth_value(const char *truth, const char *key)
{
	size_t kl = strlen(key);
	for (const char *l = truth; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
			return strtoull(l + kl + 1, NULL, 10);
	ck_abort_msg("no '%s' in the target's output", key);
	return 0;
}

static struct md_node *glibc_of(const char *dir, const char *name, const char *truth)
{
	char *json = slurp(dir, name);
	ck_assert_msg(json && *json, "no report %s/%s", dir, name);
	struct md_node *report = NULL;
	ck_assert_msg(md_node_parse_json(json, strlen(json), &report) == NULL, "%s: not JSON", name);
	free(json);
	struct md_node *g = md_test_allocator(report, "glibc");
	ck_assert_msg(g, "%s: no glibc allocator", name);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char key[64], path[64];
		snprintf(key, sizeof(key), "mallinfo.%s", fields[i]);
		snprintf(path, sizeof(path), "mallinfo.%s", fields[i]);
		ck_assert_msg(md_test_json_u64(g, path) == truth_value(truth, key), "%s: mallinfo.%s %llu, glibc says %llu",
			      name, fields[i], (unsigned long long)md_test_json_u64(g, path), truth_value(truth, key));
	}
	md_test_check_classes_sum(report);
	return report;
}

START_TEST(test_debuginfod_server)
{
	if (geteuid() != 0)
		MD_SKIP("needs root for private network and mount namespaces");
	if (system("{ command -v debuginfod && command -v curl && command -v ip && command -v unshare; } >/dev/null") != 0)
		MD_SKIP("debuginfod, curl, iproute2 or util-linux missing (scripts/deps.sh installs them)");
	char target[4096];
	md_test_target_path("glibc_truth", target, sizeof(target));
	/* libc's build-id and its debug file, as the host has them. */
	FILE *f = popen("eu-readelf -n /lib/x86_64-linux-gnu/libc.so.6 | sed -n 's/.*Build ID: *//p'", "r");
	char id[128] = "";
	ck_assert(f && fgets(id, sizeof(id), f));
	pclose(f);
	id[strcspn(id, "\n")] = 0;
	char debug[256];
	snprintf(debug, sizeof(debug), "/usr/lib/debug/.build-id/%.2s/%s.debug", id, id + 2);
	if (access(debug, R_OK) != 0)
		MD_SKIP("libc's debug file %s is missing (libc6-dbg)", debug);

	char dir[] = "/tmp/md-debuginfod-XXXXXX";
	ck_assert(mkdtemp(dir));
	char script[4300];
	snprintf(script, sizeof(script), "%s/run.sh", dir);
	f = fopen(script, "w");
	ck_assert(f);
	fprintf(f,
		"set -e\n"
		"D='%s'\n"
		"mkdir \"$D/served\" && cp '%s' \"$D/served/libc.debug\"\n"
		"ip link set lo up\n"
		"debuginfod -F -p 18002 -d \"$D/db.sqlite\" -t 0 -g 0 \"$D/served\" >\"$D/server.log\" 2>&1 &\n"
		"SERVER=$!\n"
		"trap 'kill $SERVER $TARGET 2>/dev/null || true' EXIT\n"
		"for i in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:18002/buildid/%s/debuginfo && break; sleep 0.1; done\n"
		"'%s' sizes </dev/zero >\"$D/truth.txt\" &\n"
		"TARGET=$!\n"
		"for i in $(seq 1 300); do grep -q '^ready' \"$D/truth.txt\" && break; sleep 0.05; done\n"
		"'%s' attach --json $TARGET >\"$D/local.json\"\n"
		"mount -t tmpfs tmpfs /usr/lib/debug\n"
		"requests=$(grep -c 'GET /buildid' \"$D/server.log\")\n"
		"DEBUGINFOD_URLS=http://127.0.0.1:18002 DEBUGINFOD_CACHE_PATH=\"$D/cache\" '%s' attach --json $TARGET >\"$D/remote.json\"\n"
		"after_remote=$(grep -c 'GET /buildid' \"$D/server.log\")\n"
		"DEBUGINFOD_URLS=http://127.0.0.1:18002 DEBUGINFOD_CACHE_PATH=\"$D/cache2\" '%s' attach --offline --json $TARGET >\"$D/offline.json\"\n"
		"after_offline=$(grep -c 'GET /buildid' \"$D/server.log\")\n"
		"echo \"requests $requests $after_remote $after_offline\" >\"$D/counts.txt\"\n",
		dir, debug, id, target, md_test_memdissect(), md_test_memdissect(), md_test_memdissect());
	fclose(f);
	char cmd[4500];
	snprintf(cmd, sizeof(cmd), "unshare --net --mount --propagation private bash '%s' >'%s/script.log' 2>&1", script, dir);
	int st = system(cmd);
	char *log = slurp(dir, "script.log");
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the namespace script failed (%d):\n%s", st, log ? log : "");
	free(log);

	char *truth = slurp(dir, "truth.txt");
	ck_assert(truth);
	struct md_node *local = glibc_of(dir, "local.json", truth);
	struct md_node *remote = glibc_of(dir, "remote.json", truth);
	struct md_node *offline = glibc_of(dir, "offline.json", truth);
	const char *lsym = md_node_get_string(md_node_get(md_test_allocator(local, "glibc"), "symbols"));
	const char *rsym = md_node_get_string(md_node_get(md_test_allocator(remote, "glibc"), "symbols"));
	const char *rhow = md_node_get_string(md_node_get(md_test_allocator(remote, "glibc"), "symbols_detail"));
	const char *osym = md_node_get_string(md_node_get(md_test_allocator(offline, "glibc"), "symbols"));
	/* The server's file gives what the local debug file gives. */
	ck_assert_msg(lsym && rsym && strcmp(lsym, rsym) == 0 && strcmp(rsym, "heuristic") != 0,
		      "symbols: local %s, through debuginfod %s", lsym, rsym);
	ck_assert_msg(rhow && strstr(rhow, "(from debuginfod)") && strstr(rhow, "/cache/"),
		      "symbols_detail does not say the debug file came from debuginfod: %s", rhow);
	ck_assert_msg(osym && strcmp(osym, "heuristic") == 0, "--offline: symbols %s", osym);
	char *counts = slurp(dir, "counts.txt");
	unsigned before = 0, after_remote = 0, after_offline = 0;
	ck_assert(counts && sscanf(counts, "requests %u %u %u", &before, &after_remote, &after_offline) == 3);
	ck_assert_msg(after_remote > before, "memdissect did not ask the server (%u -> %u requests)", before, after_remote);
	ck_assert_msg(after_offline == after_remote, "--offline asked the server (%u -> %u requests)", after_remote,
		      after_offline);
	free(counts);
	free(truth);
	md_node_destroy(local);
	md_node_destroy(remote);
	md_node_destroy(offline);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}
END_TEST

Suite *debuginfod_suite(void)
{
	Suite *s = suite_create("debuginfod");
	TCase *tc = tcase_create("server");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_debuginfod_server);
	suite_add_tcase(s, tc);
	return s;
}
