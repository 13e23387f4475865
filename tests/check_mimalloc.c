/* The mimalloc plugin against processes that print mimalloc's own figures: every thread's
 * mi_heap_visit_blocks on its own heap (pages, used blocks, used bytes), mi_process_info's
 * committed figure, the abandoned segment's blocks, the blocks freed by another thread, and
 * the RssAnon drop of mi_collect(true) (default decommit delay and MIMALLOC_DECOMMIT_DELAY=0).
 * Then damaged heaps: findings, never a crash or hang, the target unharmed. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

#define LIBMIMALLOC "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"

static void need_mimalloc(void)
{
	const char *why = md_test_ptrace_impossible();
	if (why)
		MD_SKIP("%s", why);
	if (access(LIBMIMALLOC, R_OK) != 0)
		MD_SKIP("%s is not installed (scripts/deps.sh installs libmimalloc2.0)", LIBMIMALLOC);
}

/* The truth target linked to libmimalloc.a (release or MI_SECURE), built from Debian's source
 * package by scripts/mimalloc-build.sh. */
static void need_static(const char *name)
{
	const char *why = md_test_ptrace_impossible();
	if (why)
		MD_SKIP("%s", why);
	char prog[4096];
	if (!md_test_target_path(name, prog, sizeof(prog)) || access(prog, X_OK) != 0)
		MD_SKIP("%s was not built: scripts/mimalloc-build.sh could not build mimalloc 2.0.9 from Debian's source package "
			"(apt-get source mimalloc needs a deb-src line: scripts/deps.sh adds it)",
			name);
}

static unsigned corrupt_findings(struct md_node *report)
{
	unsigned n = 0;
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		if (a && strcmp(a, "mimalloc") == 0 && sev && strcmp(sev, "corrupt") == 0) {
			fprintf(stderr, "finding: %s\n", md_node_get_string(md_node_get(x, "message")));
			n++;
		}
	}
	return n;
}

/* A report's heaps against the truth each thread printed. */
static void check_heaps(const struct md_test_proc *p, struct md_node *mi)
{
	struct md_node *heaps = md_node_get(mi, "heaps");
	ck_assert_uint_eq(md_node_count(heaps), 4);
	for (size_t i = 0; i < md_node_count(heaps); i++) {
		struct md_node *h = md_node_at(heaps, i);
		uint64_t tid = md_test_json_u64(h, "thread");
		static const char *const keys[] = { "pages", "used_blocks", "used_bytes" };
		for (size_t k = 0; k < 3; k++) {
			char key[64];
			snprintf(key, sizeof(key), "heap.%" PRIu64 ".%s", tid, keys[k]);
			ck_assert_msg(md_test_json_u64(h, keys[k]) == md_test_truth(p, key), "%s: memdissect %" PRIu64 ", mimalloc %llu", key,
				      md_test_json_u64(h, keys[k]), md_test_truth(p, key));
		}
		if (md_node_get_bool(md_node_get(h, "main")))
			ck_assert_uint_eq(md_test_json_u64(h, "remote_freed_blocks"), md_test_truth(p, "main.remote_freed"));
	}
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.committed_bytes"), md_test_truth(p, "process.committed"));
	/* the walk's sums equal mimalloc's own OS-level counters (_mi_stats_main, exact with MI_STAT=0) */
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.committed_bytes"), md_test_json_u64(mi, "stats.allocator_committed_bytes"));
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.reserved_bytes"), md_test_json_u64(mi, "stats.allocator_reserved_bytes"));
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.abandoned_segments"), 1);
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.abandoned_used_blocks"), md_test_truth(p, "abandoned.used_blocks"));
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.abandoned_used_bytes"), md_test_truth(p, "abandoned.used_bytes"));
	ck_assert_uint_ge(md_test_json_u64(mi, "stats.remote_freed_blocks"), md_test_truth(p, "main.remote_freed"));
	ck_assert_uint_eq(md_test_json_u64(mi, "stats.huge_segments"), 1);
}

/* prog: the truth target; build, linkage: what the report must say. */
static void run_truth(const char *target, const char *build, const char *linkage, const char *const *launch_env)
{
	char prog[4096];
	ck_assert_ptr_nonnull(md_test_target_path(target, prog, sizeof(prog)));
	const char *args[4] = { NULL };
	size_t na = 0;
	for (; launch_env && launch_env[na]; na++)
		args[na] = launch_env[na];
	args[na] = prog;
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "launch", args));
	int status = -1;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 0);
	struct md_node *mi = md_test_allocator(doc, "mimalloc");
	ck_assert_ptr_nonnull(mi);
	ck_assert_str_eq(md_node_get_string(md_node_get(mi, "version")), "2.0.9");
	ck_assert_str_eq(md_node_get_string(md_node_get(mi, "build")), build);
	ck_assert_str_eq(md_node_get_string(md_node_get(mi, "linkage")), linkage);
	if (strcmp(build, "secure") == 0) {
		/* MI_SECURE: the free lists were decoded with the page keys, every segment has its guards */
		ck_assert(md_node_get_bool(md_node_get(mi, "encoded_free_lists")));
		ck_assert_uint_eq(md_test_json_u64(mi, "page_struct_bytes"), 96);
		/* two guard pages per segment looked for; every segment keeps at least its end guard (a few
		 * lose the info guard: docs/mimalloc.md) */
		ck_assert_uint_eq(md_test_json_u64(mi, "stats.guard_pages") + md_test_json_u64(mi, "stats.missing_guard_pages"),
				  2 * md_test_json_u64(mi, "stats.segments"));
		ck_assert_uint_ge(md_test_json_u64(mi, "stats.guard_pages"), md_test_json_u64(mi, "stats.segments"));
	}
	ck_assert_ptr_nonnull(strstr(md_node_get_string(md_node_get(mi, "located_by")), "checked against"));
	ck_assert(md_node_get_bool(md_node_get(mi, "consistent")));
	ck_assert_uint_eq(corrupt_findings(doc), 0);
	/* every thread's heap: the figures its own mi_heap_visit_blocks printed */
	check_heaps(&p, mi);
	md_test_check_classes_sum(doc);
	/* mimalloc's memory is explained: live + free + metadata cover its resident pages */
	ck_assert_uint_gt(md_test_json_u64(doc, "classes.live"), 100u << 20);
	/* the release prediction is the RssAnon drop of mi_collect(true) on the main thread */
	uint64_t predicted = md_test_json_u64(mi, "release.bytes");
	ck_assert_int_eq(write(p.in_fd, "collect\n", 8), 8);
	char *line = md_test_proc_wait_line(&p, "collect_drop_bytes", 20000);
	ck_assert_ptr_nonnull(line);
	long long dropped = strtoll(line + strlen("collect_drop_bytes"), NULL, 10);
	free(line);
	ck_assert_msg((long long)predicted == dropped, "mi_collect(true): predicted %" PRIu64 " bytes, RssAnon dropped %lld", predicted, dropped);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}

static const char *const delay0[] = { "MIMALLOC_DECOMMIT_DELAY=0", NULL };

START_TEST(test_truth_default_delay)
{
	need_mimalloc();
	run_truth("mimalloc_truth", "release", "dynamic", NULL);
}
END_TEST

START_TEST(test_truth_decommit_delay_0)
{
	need_mimalloc();
	run_truth("mimalloc_truth", "release", "dynamic", delay0);
}
END_TEST

/* The same truth read by one reader thread and by four (MEMDISSECT_READERS, plugins/common/
 * read_ahead.c): every figure still exact. */
static const char *const reader_counts[] = { "1", "4" };

START_TEST(test_readers)
{
	need_mimalloc();
	setenv("MEMDISSECT_READERS", reader_counts[_i], 1);
	run_truth("mimalloc_truth", "release", "dynamic", NULL);
}
END_TEST

/* The same truth linked to libmimalloc.a: located through the executable's .symtab. */
START_TEST(test_static)
{
	need_static("mimalloc_truth_static");
	run_truth("mimalloc_truth_static", "release", "static", _i ? delay0 : NULL);
}
END_TEST

/* MI_SECURE=ON (level 4): encoded free lists decoded with the page and heap keys, guard pages. */
START_TEST(test_secure)
{
	need_static("mimalloc_truth_secure");
	run_truth("mimalloc_truth_secure", "secure", "static", _i ? delay0 : NULL);
}
END_TEST

/* The truth targets: Debian's shared library, libmimalloc.a, libmimalloc-secure.a. */
static const char *const truth_targets[] = { "mimalloc_truth", "mimalloc_truth_static", "mimalloc_truth_secure" };

static void need_target(int i)
{
	if (i == 0)
		need_mimalloc();
	else
		need_static(truth_targets[i]);
}

/* The static link stripped: no .symtab, so no roots: not guessed. Exit 10, no mimalloc entry, the
 * executable named among the unanalysed allocators (it defines malloc). */
START_TEST(test_static_stripped)
{
	need_static("mimalloc_truth_static_stripped");
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "mimalloc_truth_static_stripped", NULL));
	int status = -1;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 10);
	ck_assert_ptr_null(md_test_allocator(doc, "mimalloc"));
	bool named = false;
	struct md_node *un = md_node_get(doc, "unanalysed_allocators");
	for (size_t i = 0; i < md_node_count(un); i++) {
		const char *mod = md_node_get_string(md_node_get(md_node_at(un, i), "module"));
		if (mod && strstr(mod, "mimalloc_truth_static_stripped"))
			named = true;
	}
	ck_assert_msg(named, "the stripped static executable is not named unanalysed");
	md_test_check_classes_sum(doc);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}
END_TEST

/* A memdissect snapshot of the truth target, read back with "memdissect core": the same figures. */
START_TEST(test_core)
{
	need_target(_i);
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, truth_targets[_i], NULL));
	char pid[32], file[] = "/tmp/md-mimalloc-core-XXXXXX";
	int fd = mkstemp(file);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(pid, sizeof(pid), "%d", (int)p.pid);
	const char *snap[] = { "snapshot", "-o", file, pid, NULL };
	ck_assert_int_eq(md_test_run(snap, NULL, NULL, 60000), 0);
	char *out = NULL;
	const char *core[] = { "core", "--json", file, NULL };
	int status = md_test_run(core, &out, NULL, 60000);
	unlink(file);
	ck_assert_int_eq(status, 0);
	struct md_node *doc = NULL;
	ck_assert_ptr_null(md_node_parse_json(out, strlen(out), &doc));
	free(out);
	struct md_node *mi = md_test_allocator(doc, "mimalloc");
	ck_assert_ptr_nonnull(mi);
	ck_assert(md_node_get_bool(md_node_get(mi, "consistent")));
	check_heaps(&p, mi);
	md_test_check_classes_sum(doc);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
}
END_TEST

/* A thread mallocs and frees without pause while memdissect attaches: never a corrupt finding
 * (a race is not damage), and the classes still sum. */
START_TEST(test_churn)
{
	need_target(_i);
	struct md_test_proc p;
	const char *args[] = { "churn", NULL };
	ck_assert(md_test_proc_start(&p, truth_targets[_i], args));
	for (int run = 0; run < 3; run++) {
		int status = -1;
		struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
		ck_assert_msg(doc != NULL && status == 0, "churn: status %d", status);
		ck_assert_ptr_nonnull(md_test_allocator(doc, "mimalloc"));
		ck_assert_uint_eq(corrupt_findings(doc), 0);
		md_test_check_classes_sum(doc);
		md_node_destroy(doc);
	}
	md_test_proc_stop(&p);
}
END_TEST

static const char *const damage_modes[] = { "corrupt_cookie", "corrupt_page", "corrupt_list", "corrupt_loop", "corrupt_link" };
#define N_DAMAGE (sizeof(damage_modes) / sizeof(damage_modes[0]))

/* Each damage mode on Debian's library and on the MI_SECURE link (its encoded lists). */
START_TEST(test_hostile)
{
	int ti = _i < (int)N_DAMAGE ? 0 : 2;
	need_target(ti);
	const char *mode = damage_modes[_i % N_DAMAGE];
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, truth_targets[ti], NULL));
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "%s\n", mode);
	ck_assert_int_eq(write(p.in_fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	char *line = md_test_proc_wait_line(&p, "corrupted", 5000);
	ck_assert_ptr_nonnull(line);
	free(line);
	int status = -1;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(doc != NULL, "%s: no report (status %d)", mode, status);
	struct md_node *mi = md_test_allocator(doc, "mimalloc");
	ck_assert_ptr_nonnull(mi);
	ck_assert_msg(corrupt_findings(doc) >= 1, "%s: no finding", mode);
	ck_assert(!md_node_get_bool(md_node_get(mi, "consistent")));
	md_test_check_classes_sum(doc);
	md_node_destroy(doc);
	/* the target is unharmed: alive, not stopped */
	ck_assert_int_eq(kill(p.pid, 0), 0);
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st == 'S' || st == 'R', "%s: target state %c", mode, st);
	md_test_proc_stop(&p);
}
END_TEST

/* Other builds are refused by name: copies of Debian's library with mi_version() returning 210,
 * with mi_usable_size indexing 96-byte pages (an MI_ENCODE_FREELIST build), or with another
 * build-id, each preloaded into a sleeper: exit 10, the note says why, mimalloc is named
 * unanalysed. */
struct patch {
	const char *what;
	long offset; /* -1: the first occurrence of from */
	uint8_t from[20], to[20];
	size_t len;
	const char *message;
};

static const struct patch patches[] = {
	{ "version", -1, { 0xb8, 0xd1, 0, 0, 0, 0xc3 }, { 0xb8, 0xd2, 0, 0, 0, 0xc3 }, 6, "is mimalloc 2.1.0 (mi_version() returns 210): only 2.0.9" },
	{ "secure", 0x11071, { 0x48, 0x8d, 0x04, 0x80, 0x48, 0xc1, 0xe0, 0x04 }, { 0x48, 0x8d, 0x04, 0x40, 0x48, 0xc1, 0xe0, 0x05 }, 8,
	  "96-byte pages (mi_usable_size): only the release build" },
	{ "build-id", -1, { 0xd0, 0x7f, 0x4e, 0x7d, 0xc9, 0xa0, 0x39, 0xfc, 0xbe, 0x77, 0x47, 0xf4, 0x16, 0x47, 0x6b, 0xd6, 0x5c, 0xb4, 0x8e, 0x8b },
	  { 0xd0, 0x7f, 0x4e, 0x7d, 0xc9, 0xa0, 0x39, 0xfc, 0xbe, 0x77, 0x47, 0xf4, 0x16, 0x47, 0x6b, 0xd6, 0x5c, 0xb4, 0x8e, 0x00 }, 20,
	  "is not a mimalloc build this plugin knows" },
};

START_TEST(test_refused_builds)
{
	need_mimalloc();
	const struct patch *pt = &patches[_i];
	FILE *f = fopen("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0", "rb");
	ck_assert_ptr_nonnull(f);
	static uint8_t lib[1 << 20];
	size_t n = fread(lib, 1, sizeof(lib), f);
	fclose(f);
	ck_assert_uint_gt(n, 0x12000);
	long at = pt->offset;
	for (size_t i = 0; at < 0 && i + pt->len <= n; i++)
		if (memcmp(lib + i, pt->from, pt->len) == 0)
			at = (long)i;
	ck_assert_msg(at >= 0 && (size_t)at + pt->len <= n && memcmp(lib + at, pt->from, pt->len) == 0, "%s: not Debian's library", pt->what);
	memcpy(lib + at, pt->to, pt->len);
	char dir[] = "/tmp/md-mimalloc-XXXXXX", path[64], env[96], sleeper[4096];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/libmimalloc.so.2", dir);
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(lib, 1, n, f), n);
	fclose(f);
	snprintf(env, sizeof(env), "LD_PRELOAD=%s", path);
	ck_assert_ptr_nonnull(md_test_target_path("sleeper", sleeper, sizeof(sleeper)));
	const char *args[] = { env, sleeper, NULL };
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "launch", args));
	int status = -1;
	struct md_node *doc = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(status, 10);
	ck_assert_ptr_null(md_test_allocator(doc, "mimalloc"));
	bool noted = false, named = false;
	struct md_node *notes = md_node_get(doc, "notes");
	for (size_t i = 0; i < md_node_count(notes); i++)
		if (strstr(md_node_get_string(md_node_at(notes, i)), pt->message))
			noted = true;
	struct md_node *un = md_node_get(doc, "unanalysed_allocators");
	for (size_t i = 0; i < md_node_count(un); i++)
		if (strcmp(md_node_get_string(md_node_get(md_node_at(un, i), "name")), "mimalloc") == 0)
			named = true;
	ck_assert_msg(noted, "%s: no note saying \"%s\"", pt->what, pt->message);
	ck_assert(named);
	md_node_destroy(doc);
	md_test_proc_stop(&p);
	unlink(path);
	rmdir(dir);
}
END_TEST

Suite *mimalloc_suite(void)
{
	Suite *s = suite_create("mimalloc");
	TCase *tc = tcase_create("mimalloc");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_truth_default_delay);
	tcase_add_test(tc, test_truth_decommit_delay_0);
	tcase_add_loop_test(tc, test_readers, 0, 2);
	tcase_add_loop_test(tc, test_static, 0, 2);
	tcase_add_loop_test(tc, test_secure, 0, 2);
	tcase_add_test(tc, test_static_stripped);
	tcase_add_loop_test(tc, test_core, 0, 3);
	tcase_add_loop_test(tc, test_churn, 0, 3);
	tcase_add_loop_test(tc, test_refused_builds, 0, (int)(sizeof(patches) / sizeof(patches[0])));
	tcase_add_loop_test(tc, test_hostile, 0, 2 * (int)N_DAMAGE);
	suite_add_tcase(s, tc);
	return s;
}
