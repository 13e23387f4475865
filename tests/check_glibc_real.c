/* The glibc walker on the heaps real systems make (issue 11): forked children whose heap grew
 * after the fork, a [heap] split into several VMAs, a non-contiguous main arena, one smashed
 * chunk, and real programs (a python3 multiprocessing worker, a PostgreSQL backend). Each
 * ground-truth case must give glibc's own mallinfo2() exactly, predict the RSS drop of
 * malloc_trim(0), sum its classes to the RSS and report no corruption that is not there. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

/* Findings of the report with this severity ("corrupt", "warning"); the first message of them. */
static size_t count_findings(struct md_node *report, const char *severity, const char **first_ret)
{
	struct md_node *f = md_node_get(report, "findings");
	size_t n = 0;
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *o = md_node_at(f, i);
		const char *sev = md_node_get_string(md_node_get(o, "severity"));
		if (sev && strcmp(sev, severity) == 0) {
			if (!n && first_ret)
				*first_ret = md_node_get_string(md_node_get(o, "message"));
			n++;
		}
	}
	return n;
}

/* No corruption finding, no warning, every arena walked and "ok". */
static void check_walked_healthy(struct md_node *report, struct md_node *glibc, const char *what)
{
	const char *msg = NULL;
	size_t corrupt = count_findings(report, "corrupt", &msg);
	ck_assert_msg(corrupt == 0, "%s: %zu corrupt findings, first: %s", what, corrupt, msg ? msg : "?");
	size_t warn = count_findings(report, "warning", &msg);
	ck_assert_msg(warn == 0, "%s: %zu warnings, first: %s", what, warn, msg ? msg : "?");
	struct md_node *arenas = md_node_get(glibc, "arenas");
	ck_assert_msg(md_node_count(arenas) >= 1, "%s: no arenas", what);
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		const char *st = md_node_get_string(md_node_get(md_node_at(arenas, i), "state"));
		ck_assert_msg(st && strcmp(st, "ok") == 0, "%s: arena %zu is %s", what, i, st ? st : "?");
		ck_assert_msg(md_test_json_u64(md_node_at(arenas, i), "unknown_bytes") == 0, "%s: arena %zu has unknown bytes",
			      what, i);
	}
}

/* A glibc_truth mode (with GLIBC_TUNABLES when tunables is set): mallinfo exact, healthy, classes
 * sum to RSS, the trim prediction right; the [heap] must have at least min_heap_vmas VMAs, or
 * the case was not reproduced. */
static void check_truth_mode(const char *mode, const char *tunables, unsigned min_heap_vmas)
{
	char what[96];
	snprintf(what, sizeof(what), "%s%s%s", mode, tunables ? " " : "", tunables ? tunables : "");
	if (tunables)
		setenv("GLIBC_TUNABLES", tunables, 1);
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	bool started = md_test_proc_start(&p, "glibc_truth", args);
	unsetenv("GLIBC_TUNABLES");
	ck_assert_msg(started, "cannot start glibc_truth %s", what);
	unsigned long long vmas = md_test_truth(&p, "heap_vmas"), pid = (unsigned long long)p.pid;
	md_test_truth_u64(&p, "pid", &pid); /* forkgrow: the child */
	fprintf(stderr, "glibc_real %s: [heap] in %llu VMAs\n", what, vmas);
	if (vmas < min_heap_vmas) {
		md_test_proc_stop(&p);
		MD_SKIP("%s: the kernel kept [heap] in %llu VMA(s), the case needs %u", what, vmas, min_heap_vmas);
	}
	unsigned long long blocked = 0;
	if (md_test_truth_u64(&p, "brk_blocked", &blocked))
		ck_assert_msg(blocked == 1, "%s: the target could not map a page at its brk", what);
	struct md_node *report = md_test_attach_ok((pid_t)pid, what);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert_msg(glibc != NULL, "%s: no glibc allocator in the report", what);
	if (blocked) {
		size_t segs = md_node_count(md_node_get(md_node_at(md_node_get(glibc, "arenas"), 0), "heaps"));
		fprintf(stderr, "glibc_real %s: main arena in %zu segments\n", what, segs);
		ck_assert_msg(segs >= 2, "%s: the main arena did not go non-contiguous", what);
	}
	md_test_check_mallinfo(glibc, &p, "", what);
	md_test_check_classes_sum(report);
	check_walked_healthy(report, glibc, what);
	ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.count"), md_test_truth(&p, "mallinfo.hblks"));
	ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.bytes"), md_test_truth(&p, "mallinfo.hblkhd"));
	uint64_t predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
	md_node_destroy(report);
	md_test_trim_and_compare(&p, predicted, what);
	md_test_proc_stop(&p);
}

/* Case 3: brk blocked by a mapping at the heap end; glibc goes on in mmapped segments. */
START_TEST(test_noncontiguous)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode("noncontig", NULL, 1);
}
END_TEST

/* Case 7: one smashed size word gives one finding, and the walk resynchronises after it: the
 * rest of the heap is classified (mallinfo stays exact, a few hundred bytes unknown). */
START_TEST(test_one_damage_one_finding)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "smash", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	unsigned long long smashed = md_test_truth(&p, "smashed");
	struct md_node *report = md_test_attach_ok(p.pid, "smash");
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	md_test_check_mallinfo(glibc, &p, "", "smash");
	md_test_check_classes_sum(report);
	struct md_node *f = md_node_get(report, "findings");
	ck_assert_msg(md_node_count(f) == 1, "smash: %zu findings, expected one", md_node_count(f));
	struct md_node *only = md_node_at(f, 0);
	ck_assert_str_eq(md_node_get_string(md_node_get(only, "severity")), "corrupt");
	ck_assert_uint_eq(md_test_json_u64(only, "address"), smashed);
	uint64_t unknown = md_test_json_u64(glibc, "arenas.0.unknown_bytes");
	fprintf(stderr, "glibc_real smash: %llu bytes unknown\n", (unsigned long long)unknown);
	ck_assert_msg(unknown > 0 && unknown < 4096, "smash: %llu bytes unknown", (unsigned long long)unknown);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* The search for mmapped chunks probes page starts instead of reading whole mappings: chunks
 * behind foreign memory in a merged VMA must still all be found. */
START_TEST(test_mmapped_behind_foreign)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode("mmapmix", NULL, 1);
}
END_TEST

/* Case 1: PostgreSQL backends, Python multiprocessing workers, prefork servers. */
START_TEST(test_forked_child)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode("forkgrow", NULL, 2);
}
END_TEST

/* Case 2: mlock, mprotect and MADV_HUGEPAGE of part of the heap. */
START_TEST(test_split_heap)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode("split", NULL, 3);
}
END_TEST

/* Case 2: glibc itself madvises its heap with hugetlb=1 (THP "madvise"). */
START_TEST(test_hugetlb1)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode("holes", "glibc.malloc.hugetlb=1", 2);
}
END_TEST

Suite *glibc_real_suite(void)
{
	Suite *s = suite_create("glibc_real");
	TCase *tc = tcase_create("heaps");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_forked_child);
	tcase_add_test(tc, test_split_heap);
	tcase_add_test(tc, test_hugetlb1);
	tcase_add_test(tc, test_noncontiguous);
	tcase_add_test(tc, test_one_damage_one_finding);
	tcase_add_test(tc, test_mmapped_behind_foreign);
	suite_add_tcase(s, tc);
	return s;
}
