/* The tcmalloc plugin (issue 15) against processes that print gperftools 2.10's own figures
 * (MallocExtension_GetNumericProperty): libtcmalloc_minimal and libtcmalloc, linked and
 * LD_PRELOADed, and a static link of libtcmalloc_minimal.a. Every figure must be equal byte for
 * byte, the release prediction must equal the RSS drop of MallocExtension_ReleaseFreeMemory(),
 * damaged heaps give findings, and the 1M-object program is at least 95 % explained. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

#define LIB_MINIMAL "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
#define LIB_FULL "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"

static const char *const stat_keys[] = {
	"current_allocated_bytes", "heap_size", "pageheap_free_bytes", "pageheap_unmapped_bytes",
	"central_cache_free_bytes", "transfer_cache_free_bytes", "thread_cache_free_bytes",
};

/* Start a target, with LD_PRELOAD=preload when given (the variable is set only around the fork). */
static bool start(struct md_test_proc *p, const char *target, const char *preload, const char *const *args)
{
	if (preload)
		setenv("LD_PRELOAD", preload, 1);
	bool ok = md_test_proc_start(p, target, args);
	if (preload)
		unsetenv("LD_PRELOAD");
	return ok;
}

static bool hex_truth(const struct md_test_proc *p, const char *key, unsigned long long *v)
{
	size_t kl = strlen(key);
	for (const char *s = p->truth; s && *s;) {
		if (strncmp(s, key, kl) == 0 && s[kl] == ' ') {
			*v = strtoull(s + kl + 1, NULL, 0);
			return true;
		}
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return false;
}

static unsigned findings_of(struct md_node *report, const char *severity, bool print)
{
	unsigned n = 0;
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		if (a && strcmp(a, "tcmalloc") == 0 && sev && strcmp(sev, severity) == 0) {
			if (print)
				fprintf(stderr, "finding: %s\n", md_node_get_string(md_node_get(x, "message")));
			n++;
		}
	}
	return n;
}

static void check_stats(const struct md_test_proc *p, struct md_node *tc)
{
	for (size_t i = 0; i < sizeof(stat_keys) / sizeof(stat_keys[0]); i++) {
		char path[96];
		snprintf(path, sizeof(path), "stats.%s", stat_keys[i]);
		ck_assert_msg(md_test_json_u64(tc, path) == md_test_truth(p, stat_keys[i]), "%s: memdissect %" PRIu64 ", tcmalloc %llu",
			      stat_keys[i], md_test_json_u64(tc, path), md_test_truth(p, stat_keys[i]));
	}
}

/* The walk itself agrees with the counters: objects in use = current_allocated_bytes, free spans
 * = the page heap's free and unmapped bytes, cached objects = the thread caches' size_. */
static void check_walk(struct md_node *tc)
{
	ck_assert(md_node_get_bool(md_node_get(tc, "consistent")));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.live_bytes"), md_test_json_u64(tc, "stats.current_allocated_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.normal_free_bytes"), md_test_json_u64(tc, "stats.pageheap_free_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.returned_bytes"), md_test_json_u64(tc, "stats.pageheap_unmapped_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.thread_cache_bytes"), md_test_json_u64(tc, "stats.thread_cache_free_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.transfer_free_bytes"), md_test_json_u64(tc, "stats.transfer_cache_free_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.central_free_bytes") + md_test_json_u64(tc, "walk.span_tail_bytes"),
			  md_test_json_u64(tc, "stats.central_cache_free_bytes"));
	ck_assert_uint_eq(md_test_json_u64(tc, "walk.returned_resident_bytes"), 0);
	ck_assert_uint_eq(md_test_json_u64(tc, "findings"), 0);
}

/* glibc's plugin sees only an unused main arena: no page is claimed by both allocators. */
static void check_glibc_claims_nothing(struct md_node *report)
{
	struct md_node *g = md_test_allocator(report, "glibc");
	if (!g)
		return;
	ck_assert_uint_eq(md_test_json_u64(g, "live_bytes") + md_test_json_u64(g, "free_bytes") +
				  md_test_json_u64(g, "metadata_bytes"),
			  0);
}

static void run_truth_case(const char *target, const char *preload, const char *build, const char *symbols)
{
	struct md_test_proc p;
	ck_assert_msg(start(&p, target, preload, NULL), "cannot start %s", target);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	ck_assert_int_eq(status, 0);
	struct md_node *tc = md_test_allocator(report, "tcmalloc");
	ck_assert_msg(tc != NULL, "no tcmalloc allocator in the report");
	ck_assert_str_eq(md_node_get_string(md_node_get(tc, "version")), "2.10");
	ck_assert_str_eq(md_node_get_string(md_node_get(tc, "build")), build);
	ck_assert_str_eq(md_node_get_string(md_node_get(tc, "symbols")), symbols);
	const char *detail = md_node_get_string(md_node_get(tc, "symbols_detail"));
	ck_assert_ptr_nonnull(detail);
	ck_assert_msg(strncmp(detail, strcmp(build, "static") == 0 ? ".symtab" : ".dynsym", 7) == 0, "symbols_detail: %s", detail);
	check_stats(&p, tc);
	check_walk(tc);
	/* 4 threads, each with its cache found through TLS (tcmalloc may keep one more). */
	ck_assert_uint_eq(md_test_json_u64(tc, "thread_caches.of_threads"), 4);
	ck_assert_uint_ge(md_test_json_u64(tc, "thread_caches.count"), 4);
	ck_assert_uint_gt(md_test_json_u64(tc, "walk.returned_bytes"), 0);
	ck_assert_uint_gt(md_test_json_u64(tc, "walk.large_set_nodes"), 0);
	md_test_check_classes_sum(report);
	check_glibc_claims_nothing(report);
	ck_assert_uint_eq(findings_of(report, "corrupt", true), 0);

	/* ReleaseFreeMemory gives back exactly the resident pages of the normal free spans. */
	uint64_t predicted = md_test_json_u64(tc, "release.bytes");
	ck_assert_uint_gt(predicted, 0);
	ck_assert_uint_eq(md_test_json_u64(tc, "release.pages") * 4096, predicted);
	/* The target releases from its main loop when SIGUSR1 arrives (the handler sets a flag). */
	ck_assert_int_eq(kill(p.pid, SIGUSR1), 0);
	char *line = md_test_proc_wait_line(&p, "release_drop_bytes", 20000);
	ck_assert_msg(line != NULL, "target did not report its release");
	long long dropped = strtoll(line + strlen("release_drop_bytes"), NULL, 10);
	free(line);
	ck_assert_msg((long long)predicted == dropped, "release: predicted %" PRIu64 " bytes, Rss dropped %lld", predicted,
		      dropped);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}

START_TEST(test_linked_minimal)
{
	run_truth_case("tcmalloc_truth", NULL, "minimal", "symtab");
}
END_TEST

START_TEST(test_linked_full)
{
	run_truth_case("tcmalloc_truth_full", NULL, "full", "symtab");
}
END_TEST

START_TEST(test_preload_minimal)
{
	run_truth_case("tcmalloc_truth_plain", LIB_MINIMAL, "minimal", "symtab");
}
END_TEST

START_TEST(test_preload_full)
{
	run_truth_case("tcmalloc_truth_plain", LIB_FULL, "full", "symtab");
}
END_TEST

START_TEST(test_static)
{
	run_truth_case("tcmalloc_truth_static", NULL, "static", "symtab");
}
END_TEST

/* The same truth read by one reader thread and by four (MEMDISSECT_READERS, plugins/common/
 * read_ahead.c): every figure still exact. */
static const char *const reader_counts[] = { "1", "4" };

START_TEST(test_readers)
{
	setenv("MEMDISSECT_READERS", reader_counts[_i], 1);
	run_truth_case("tcmalloc_truth", NULL, "minimal", "symtab");
}
END_TEST

/* A memdissect snapshot of the process, analysed as a core: the same seven figures and walk, the
 * thread caches still mapped to the threads (fs_base from the core's NT_PRSTATUS). */
START_TEST(test_snapshot_core)
{
	struct md_test_proc p;
	const char *targs[] = {"small", NULL};
	ck_assert(start(&p, "tcmalloc_truth", NULL, targs));
	char dir[] = "/tmp/md-tcmalloc-XXXXXX", snap[128], pid_s[32];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(snap, sizeof(snap), "%s/snap.core", dir);
	snprintf(pid_s, sizeof(pid_s), "%d", (int)p.pid);
	const char *sargs[] = {"snapshot", pid_s, "-o", snap, NULL};
	int status = md_test_run(sargs, NULL, NULL, md_test_sanitized() ? 240000 : 120000);
	ck_assert_int_eq(status, 0);
	const char *cargs[] = {"core", "--json", snap, NULL};
	char *out = NULL;
	status = md_test_run(cargs, &out, NULL, md_test_sanitized() ? 240000 : 120000);
	ck_assert_int_eq(status, 0);
	struct md_node *report = NULL;
	struct md_error *err = md_node_parse_json(out, strlen(out), &report);
	ck_assert_msg(err == NULL, "core output is not JSON");
	free(out);
	struct md_node *tc = md_test_allocator(report, "tcmalloc");
	ck_assert_msg(tc != NULL, "no tcmalloc allocator in the core's report");
	check_stats(&p, tc);
	check_walk(tc);
	ck_assert_uint_eq(md_test_json_u64(tc, "thread_caches.of_threads"), 4);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_proc_stop(&p);
	unlink(snap);
	rmdir(dir);
}
END_TEST

/* The panel program: 1M small objects, 3/4 freed. At least 95 % of its RSS explained (not
 * anon_other), and the figures still exact. */
START_TEST(test_million_explained)
{
	struct md_test_proc p;
	const char *args[] = {"million", NULL};
	ck_assert(start(&p, "tcmalloc_truth", NULL, args));
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	struct md_node *tc = md_test_allocator(report, "tcmalloc");
	ck_assert_ptr_nonnull(tc);
	check_stats(&p, tc);
	check_walk(tc);
	md_test_check_classes_sum(report);
	uint64_t rss = md_test_json_u64(report, "memory.rss_bytes"), other = md_test_json_u64(report, "classes.anon_other");
	fprintf(stderr, "million: rss %" PRIu64 ", anon_other %" PRIu64 " (%.2f %%), live %" PRIu64 ", free %" PRIu64
			", metadata %" PRIu64 "\n",
		rss, other, 100.0 * (double)other / (double)rss, md_test_json_u64(report, "classes.live"),
		md_test_json_u64(report, "classes.free"), md_test_json_u64(report, "classes.metadata"));
	ck_assert_msg(other * 20 <= rss, "anon_other %" PRIu64 " of rss %" PRIu64 ": less than 95 %% explained", other, rss);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* Hostile heaps: the target damages one structure of its own tcmalloc per mode and prints the
 * address the finding must name. A corrupt finding there, within 5 s, the report still whole,
 * and the target alive and answering (it exits 0 on "quit"). */
static const struct {
	const char *mode, *rule;
} hostile_modes[] = {
	{"thread_list", "is not an object of the class"},
	{"pagemap_unmapped", "not to readable memory"},
	{"span_length", "has length"},
	{"freelist_cycle", "loops"},
	{"central_objects", "not an object of the span"},
	{"thread_heaps_cycle", "thread_heaps_ loops"},
	{"thread_list_cycle", "loops at"},
	{"pagemap_root_garbage", "where nothing is mapped"},
};

START_TEST(test_hostile_heaps)
{
	const char *mode = hostile_modes[_i].mode;
	struct md_test_proc p;
	const char *args[] = {mode, NULL};
	ck_assert_msg(start(&p, "tcmalloc_truth", NULL, args), "%s: target did not get ready", mode);
	unsigned long long bad = 0;
	ck_assert_msg(hex_truth(&p, "bad_addr", &bad) && bad != 0, "%s: no bad_addr", mode);
	int status = -1;
	double t0 = md_test_now_s();
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	double took = md_test_now_s() - t0;
	ck_assert_msg(report != NULL, "%s: attach failed (status %d)", mode, status);
	ck_assert_msg(took < 5.0, "%s: attach took %.2f s", mode, took);
	struct md_node *tc = md_test_allocator(report, "tcmalloc");
	ck_assert_msg(tc != NULL, "%s: tcmalloc not reported", mode);
	ck_assert(!md_node_get_bool(md_node_get(tc, "consistent")));
	/* The counters are read, not walked: still tcmalloc's own figures (but for the thread caches'
	 * sum when their list loops: tcmalloc itself would not get out of that loop). */
	if (strcmp(mode, "thread_heaps_cycle") != 0)
		check_stats(&p, tc);
	if (!md_test_corrupt_finding_at(report, "tcmalloc", bad, hostile_modes[_i].rule)) {
		findings_of(report, "corrupt", true);
		ck_abort_msg("%s: no corrupt finding at 0x%llx saying \"%s\"", mode, bad, hostile_modes[_i].rule);
	}
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st != 't' && st != 'T' && st != 'Z' && st != 0, "%s: target state %c after attach", mode, st);
	ck_assert_int_eq(write(p.in_fd, "quit\n", 5), 5);
	int wst = -1;
	pid_t w = 0;
	for (int i = 0; i < 500 && w == 0; i++) {
		w = waitpid(p.pid, &wst, WNOHANG);
		if (w == 0)
			usleep(10000);
	}
	ck_assert_msg(w == p.pid, "%s: target did not answer \"quit\"", mode);
	p.pid = -1;
	ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "%s: target ended with status 0x%x", mode, wst);
	md_test_proc_stop(&p);
}
END_TEST

/* The page-heap lock looks held at every re-stop: the walk runs anyway, says the heap may be
 * inconsistent, and still gives tcmalloc's counters. */
START_TEST(test_lock_held)
{
	struct md_test_proc p;
	const char *args[] = {"lock_held", NULL};
	ck_assert(start(&p, "tcmalloc_truth", NULL, args));
	int status = -1;
	double t0 = md_test_now_s();
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	double took = md_test_now_s() - t0;
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	ck_assert_msg(took < 30.0, "attach took %.1f s", took);
	struct md_node *tc = md_test_allocator(report, "tcmalloc");
	ck_assert_ptr_nonnull(tc);
	ck_assert(!md_node_get_bool(md_node_get(tc, "consistent")));
	check_stats(&p, tc);
	md_test_check_classes_sum(report);
	bool noted = false;
	struct md_node *notes = md_node_get(report, "notes");
	for (size_t i = 0; i < md_node_count(notes); i++) {
		const char *n = md_node_get_string(md_node_at(notes, i));
		if (n && strstr(n, "page-heap lock is held"))
			noted = true;
	}
	fprintf(stderr, "lock_held: %.2f s, status %d\n", took, status);
	ck_assert_msg(noted, "no note naming the held page-heap lock");
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* Another gperftools version is refused with one clear line: a copy of libtcmalloc_minimal
 * whose version string says 2.11 (same length, nothing else changed), preloaded. */
START_TEST(test_other_version_refused)
{
	char dir[] = "/tmp/md-tcmalloc-XXXXXX", dst[128];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dst, sizeof(dst), "%s/libtcmalloc_minimal.so.4", dir);
	FILE *in = fopen(LIB_MINIMAL, "rb");
	ck_assert_ptr_nonnull(in);
	fseek(in, 0, SEEK_END);
	long n = ftell(in);
	fseek(in, 0, SEEK_SET);
	char *buf = malloc((size_t)n);
	ck_assert(fread(buf, 1, (size_t)n, in) == (size_t)n);
	fclose(in);
	char *hit = memmem(buf, (size_t)n, "gperftools 2.10", 15);
	ck_assert_ptr_nonnull(hit);
	hit[14] = '1';
	FILE *out = fopen(dst, "wb");
	ck_assert_ptr_nonnull(out);
	ck_assert(fwrite(buf, 1, (size_t)n, out) == (size_t)n);
	fclose(out);
	free(buf);
	struct md_test_proc p;
	ck_assert(start(&p, "tcmalloc_truth_plain", dst, NULL));
	const char *pid_s;
	char pidbuf[32];
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)p.pid);
	pid_s = pidbuf;
	const char *args[] = {"attach", pid_s, NULL};
	char *o = NULL, *e = NULL;
	int status = md_test_run(args, &o, &e, 30000);
	fprintf(stderr, "refused: status %d\n%s", status, o ? o : "");
	ck_assert_msg(o && md_test_has_line_with(o, "gperftools 2.11") && md_test_has_line_with(o, "not supported"),
		      "no refusal line in the output");
	free(o);
	free(e);
	md_test_proc_stop(&p);
	unlink(dst);
	rmdir(dir);
}
END_TEST

Suite *tcmalloc_suite(void)
{
	Suite *s = suite_create("tcmalloc");
	TCase *tc = tcase_create("truth");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_linked_minimal);
	tcase_add_test(tc, test_linked_full);
	tcase_add_test(tc, test_preload_minimal);
	tcase_add_test(tc, test_preload_full);
	tcase_add_test(tc, test_static);
	tcase_add_loop_test(tc, test_readers, 0, 2);
	tcase_add_test(tc, test_million_explained);
	tcase_add_test(tc, test_snapshot_core);
	tcase_add_test(tc, test_other_version_refused);
	tcase_add_test(tc, test_lock_held);
	suite_add_tcase(s, tc);
	TCase *hc = tcase_create("hostile");
	tcase_set_timeout(hc, 60);
	tcase_add_loop_test(hc, test_hostile_heaps, 0, (int)(sizeof(hostile_modes) / sizeof(hostile_modes[0])));
	suite_add_tcase(s, hc);
	return s;
}
