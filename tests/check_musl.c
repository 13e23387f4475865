/* The musl mallocng plugin against programs built with musl-gcc (Debian's musl-tools 1.2.3):
 * static with .symtab, the same stripped, and dynamic on ld-musl-x86_64.so.1. musl has no
 * statistics API, so the target is its own oracle: it prints the count and total of the request
 * sizes it still holds (tests/targets/musl/musl_truth.c). Damaged metadata must give findings. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

static bool musl_targets_built(void)
{
	char path[4096];
	return md_test_target_path("musl_truth_static", path, sizeof(path)) && access(path, X_OK) == 0;
}

#define NEED_MUSL()                                                                                       \
	do {                                                                                              \
		if (!musl_targets_built()) {                                                              \
			MD_SKIP("musl-gcc (Debian package musl-tools) is not installed: no musl targets"); \
		}                                                                                         \
	} while (0)

/* "key 0x..." in the truth text. */
static uint64_t truth_hex(const struct md_test_proc *p, const char *key)
{
	const char *s = strstr(p->truth, key);
	ck_assert_msg(s != NULL, "no %s in the target's output", key);
	return strtoull(s + strlen(key), NULL, 0);
}

static unsigned musl_findings(struct md_node *report, const char *severity)
{
	unsigned n = 0;
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		if (a && strcmp(a, "musl") == 0 && sev && strcmp(sev, severity) == 0) {
			if (n < 3)
				fprintf(stderr, "musl finding: %s\n", md_node_get_string(md_node_get(x, "message")));
			n++;
		}
	}
	return n;
}

/* Per class: used + free slots == the allocator's own usage_by_class (donated groups aside). */
static void check_classes(struct md_node *mu)
{
	struct md_node *cls = md_node_get(mu, "size_classes");
	ck_assert_uint_gt(md_node_count(cls), 0);
	uint64_t in_use = 0;
	for (size_t i = 0; i < md_node_count(cls); i++) {
		struct md_node *c = md_node_at(cls, i);
		in_use += md_test_json_u64(c, "slots_in_use");
	}
	/* Used slots are the live allocations plus the slots that hold nested groups. */
	ck_assert_uint_eq(in_use, md_test_json_u64(mu, "stats.live_allocations") + md_test_json_u64(mu, "stats.nested_groups"));
}

static void run_truth_case(const char *target, const char *symbols, bool dynamic)
{
	NEED_MUSL();
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, target, NULL), "cannot start %s", target);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	ck_assert_int_eq(status, 0);
	struct md_node *mu = md_test_allocator(report, "musl");
	ck_assert_msg(mu != NULL, "no musl allocator in the report of %s", target);
	ck_assert_str_eq(md_node_get_string(md_node_get(mu, "symbols")), symbols);
	ck_assert_str_eq(md_node_get_string(md_node_get(mu, "linkage")), dynamic ? "dynamic" : "static");
	if (dynamic)
		ck_assert_str_eq(md_node_get_string(md_node_get(mu, "version")), "1.2.3");
	/* Debian's musl is 1.2.3: freed slots were MADV_FREEd, smaps shows LazyFree. */
	ck_assert_uint_gt(md_test_json_u64(mu, "stats.lazy_free_bytes"), 0);
	ck_assert_uint_le(md_test_json_u64(mu, "stats.lazy_free_bytes"), md_test_json_u64(report, "classes.free"));
	if (!dynamic)
		ck_assert(strncmp(md_node_get_string(md_node_get(mu, "version")), "1.2.1-1.2.3", 11) == 0);
	/* The program's own record, exactly. */
	ck_assert_uint_eq(md_test_json_u64(mu, "stats.live_allocations"), md_test_truth(&p, "live_allocations"));
	ck_assert_uint_eq(md_test_json_u64(mu, "stats.live_bytes"), md_test_truth(&p, "live_bytes"));
	ck_assert_uint_eq(md_test_truth(&p, "usable_bytes"), md_test_truth(&p, "live_bytes"));
	ck_assert_uint_ge(md_test_json_u64(mu, "stats.mmapped_groups"), md_test_truth(&p, "large_allocations"));
	ck_assert_uint_gt(md_test_json_u64(mu, "stats.nested_groups"), 0);
	ck_assert_uint_gt(md_test_json_u64(mu, "stats.free_slots"), 0);
	ck_assert(md_node_get_bool(md_node_get(mu, "consistent")));
	ck_assert_uint_eq(musl_findings(report, "corrupt"), 0);
	ck_assert_uint_eq(musl_findings(report, "warning"), 0);
	if (dynamic) {
		ck_assert_uint_gt(md_test_json_u64(mu, "stats.donated_groups"), 0);
		/* Donated groups are named after the file whose pages the loader gave. */
		struct md_node *regs = md_node_get(report, "alloc_regions");
		unsigned named = 0;
		for (size_t i = 0; i < md_node_count(regs); i++) {
			const char *label = md_node_get_string(md_node_get(md_node_at(regs, i), "label"));
			if (label && (strcmp(label, "musl group donated by libc.so") == 0 ||
				      strcmp(label, "musl group donated by musl_truth_dynamic") == 0))
				named++;
		}
		ck_assert_uint_eq(named, md_test_json_u64(mu, "stats.donated_groups"));
	}
	else
		ck_assert_uint_eq(md_test_json_u64(mu, "stats.donated_groups"), 0);
	/* Adjacent mmapped groups share a region (one each made the report grow with the heap), so
	 * the plugin counts their residency per class itself: with the meta areas, the classes must
	 * add up to what the classifier found in the plugin's regions, and there are fewer regions
	 * than groups. */
	struct md_node *classes = md_node_get(mu, "size_classes");
	uint64_t class_resident = 0;
	for (size_t i = 0; i < md_node_count(classes); i++)
		class_resident += md_test_json_u64(md_node_at(classes, i), "resident_bytes");
	ck_assert_uint_eq(class_resident + md_test_json_u64(mu, "meta_area_bytes"), md_test_json_u64(mu, "resident_bytes"));
	struct md_node *aregs = md_node_get(report, "alloc_regions");
	unsigned shared_regions = 0;
	for (size_t i = 0; i < md_node_count(aregs); i++) {
		const char *label = md_node_get_string(md_node_get(md_node_at(aregs, i), "label"));
		shared_regions += label && strcmp(label, "musl mmapped groups") == 0;
	}
	ck_assert_uint_gt(shared_regions, 0);
	ck_assert_uint_lt(shared_regions, md_test_json_u64(mu, "stats.mmapped_groups"));
	check_classes(mu);
	if (!dynamic) {
		/* The static program printed ctx.usage_by_class itself: every class the walk saw has
		 * exactly that many slots, used + free. */
		ck_assert_uint_eq(md_test_json_u64(mu, "context"), truth_hex(&p, "ctx "));
		struct md_node *cls = md_node_get(mu, "size_classes");
		unsigned matched = 0;
		for (size_t i = 0; i < md_node_count(cls); i++) {
			struct md_node *c = md_node_at(cls, i);
			unsigned sc = (unsigned)md_test_json_u64(c, "class");
			if (sc >= 48)
				continue;
			char key[32];
			unsigned long long usage = 0;
			snprintf(key, sizeof(key), "usage.%u", sc);
			md_test_truth_u64(&p, key, &usage);
			ck_assert_msg(md_test_json_u64(c, "slots_in_use") + md_test_json_u64(c, "slots_free") == usage,
				      "class %u: %" PRIu64 " + %" PRIu64 " slots, the target says %llu", sc,
				      md_test_json_u64(c, "slots_in_use"), md_test_json_u64(c, "slots_free"), usage);
			matched++;
		}
		ck_assert_uint_gt(matched, 20);
	}
	md_test_check_classes_sum(report);
	/* The panel goal: >= 95 % of RSS explained (not anon_other). */
	uint64_t rss = md_test_json_u64(report, "memory.rss_bytes");
	uint64_t other = md_test_json_u64(report, "classes.anon_other");
	ck_assert_msg(other * 100 <= rss * 5, "%s: anon_other %" PRIu64 " of rss %" PRIu64, target, other, rss);

	/* Freeing everything unmaps every freeable group: RssAnon drops by what memdissect said. */
	uint64_t predicted = md_test_json_u64(mu, "release.bytes");
	ck_assert_uint_gt(predicted, 0);
	unsigned long long before = md_test_status_bytes(p.pid, "RssAnon");
	ck_assert_int_eq(write(p.in_fd, "freeall\n", 8), 8);
	char *line = md_test_proc_wait_line(&p, "rss_after", 30000);
	ck_assert_msg(line != NULL, "target did not report rss_after");
	long long after = strtoll(line + strlen("rss_after"), NULL, 10);
	free(line);
	long long dropped = (long long)before - after, diff = (long long)predicted - dropped;
	if (diff < 0)
		diff = -diff;
	fprintf(stderr, "%s: release.bytes %" PRIu64 ", RssAnon dropped %lld\n", target, predicted, dropped);
	ck_assert_msg(diff <= 64 * 1024 + dropped / 50, "%s: predicted %" PRIu64 " bytes, RssAnon dropped %lld", target,
		      predicted, dropped);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}

START_TEST(test_static_symtab)
{
	run_truth_case("musl_truth_static", "symtab", false);
}
END_TEST

START_TEST(test_static_stripped)
{
	run_truth_case("musl_truth_static_stripped", "heuristic", false);
}
END_TEST

START_TEST(test_dynamic)
{
	run_truth_case("musl_truth_dynamic", "heuristic", true);
}
END_TEST

/* The same truth read by one reader thread and by four (MEMDISSECT_READERS, plugins/common/
 * read_ahead.c): every figure still exact. */
static const char *const reader_counts[] = { "1", "4" };

START_TEST(test_readers)
{
	setenv("MEMDISSECT_READERS", reader_counts[_i], 1);
	run_truth_case("musl_truth_static", "symtab", false);
}
END_TEST

/* The same analysis offline: a memdissect snapshot (an ELF core) of the stripped static program
 * and of the dynamic one, read back with "memdissect core". */
static void run_core_case(const char *target)
{
	NEED_MUSL();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, target, NULL));
	char dir[] = "/tmp/md-musl-core-XXXXXX", snap[64], pid_text[32];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(snap, sizeof(snap), "%s/snap.core", dir);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *sargs[] = { "snapshot", pid_text, "-o", snap, NULL };
	int status = md_test_run(sargs, NULL, NULL, md_test_sanitized() ? 240000 : 120000);
	ck_assert_msg(status == 0, "snapshot exited with %d", status);
	char *out = NULL;
	const char *cargs[] = { "core", "--json", snap, NULL };
	status = md_test_run(cargs, &out, NULL, md_test_sanitized() ? 240000 : 120000);
	unlink(snap);
	rmdir(dir);
	ck_assert_msg(status == 0 && out, "memdissect core exited with %d", status);
	struct md_node *report = NULL;
	ck_assert_ptr_null(md_node_parse_json(out, strlen(out), &report));
	free(out);
	struct md_node *mu = md_test_allocator(report, "musl");
	ck_assert_msg(mu != NULL, "no musl allocator in the core report");
	ck_assert_uint_eq(md_test_json_u64(mu, "stats.live_allocations"), md_test_truth(&p, "live_allocations"));
	ck_assert_uint_eq(md_test_json_u64(mu, "stats.live_bytes"), md_test_truth(&p, "live_bytes"));
	ck_assert(md_node_get_bool(md_node_get(mu, "consistent")));
	ck_assert_uint_eq(musl_findings(report, "corrupt"), 0);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}

START_TEST(test_core_static_stripped)
{
	run_core_case("musl_truth_static_stripped");
}
END_TEST

START_TEST(test_core_dynamic)
{
	run_core_case("musl_truth_dynamic");
}
END_TEST

/* A glibc program is not musl: the plugin stays silent. */
START_TEST(test_not_musl)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "sleeper", NULL));
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(report);
	ck_assert_ptr_null(md_test_allocator(report, "musl"));
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* A thread mallocs and frees without pause while memdissect attaches: never a corrupt finding
 * (a race is not damage), classes still sum, and a snapshot called consistent holds the main
 * record plus at most the 64 blocks the churning thread keeps. */
START_TEST(test_churn)
{
	NEED_MUSL();
	const char *targets[] = { "musl_truth_static", "musl_truth_static_stripped", "musl_truth_dynamic" };
	for (size_t k = 0; k < 3; k++) {
		struct md_test_proc p;
		const char *args[] = { "churn", NULL };
		ck_assert(md_test_proc_start(&p, targets[k], args));
		for (int run = 0; run < 3; run++) {
			int status = -1;
			struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
			ck_assert_msg(report != NULL && status == 0, "%s churn: status %d", targets[k], status);
			struct md_node *mu = md_test_allocator(report, "musl");
			ck_assert_ptr_nonnull(mu);
			ck_assert_uint_eq(musl_findings(report, "corrupt"), 0);
			md_test_check_classes_sum(report);
			uint64_t live = md_test_json_u64(mu, "stats.live_allocations"), truth = md_test_truth(&p, "live_allocations");
			bool consistent = md_node_get_bool(md_node_get(mu, "consistent"));
			fprintf(stderr, "%s churn: consistent %d, live %" PRIu64 " (record %" PRIu64 ")\n", targets[k], consistent, live, truth);
			if (consistent)
				ck_assert_msg(live >= truth && live <= truth + 64, "%s: %" PRIu64 " live, record %" PRIu64, targets[k], live, truth);
			md_node_destroy(report);
		}
		md_test_proc_stop(&p);
	}
}
END_TEST

static const char *const damage_modes[] = { "area_secret", "meta_mem", "area_cycle", "slot_header", "last_idx" };

/* A corrupt musl finding at exactly addr. */

START_TEST(test_hostile)
{
	NEED_MUSL();
	const char *mode = damage_modes[_i];
	const char *targets[] = { "musl_truth_static", "musl_truth_static_stripped", "musl_truth_dynamic" };
	for (size_t k = 0; k < 3; k++) {
		struct md_test_proc p;
		const char *args[] = { mode, NULL };
		ck_assert_msg(md_test_proc_start(&p, targets[k], args), "cannot start %s %s", targets[k], mode);
		ck_assert_msg(!strstr(p.truth, "error "), "%s: %s", mode, p.truth);
		int status = -1;
		struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
		ck_assert_msg(report != NULL, "%s: attach failed (status %d)", mode, status);
		ck_assert_int_eq(status, 0);
		struct md_node *mu = md_test_allocator(report, "musl");
		ck_assert_msg(mu != NULL, "%s: musl not found", mode);
		ck_assert_msg(musl_findings(report, "corrupt") > 0, "%s: no corrupt finding", mode);
		/* The finding names the damaged structure: the meta, its area, or the slot. */
		uint64_t meta = truth_hex(&p, "bad_addr ");
		uint64_t want = strcmp(mode, "slot_header") == 0 ? truth_hex(&p, "bad_slot ")
				: strncmp(mode, "area_", 5) == 0 ? (meta & ~(uint64_t)4095) : meta;
		ck_assert_msg(md_test_corrupt_finding_at(report, "musl", want, NULL), "%s: no corrupt finding at 0x%" PRIx64, mode, want);
		ck_assert(!md_node_get_bool(md_node_get(mu, "consistent")));
		md_test_check_classes_sum(report);
		/* The target is unharmed: still there and still answering. */
		ck_assert_int_eq(kill(p.pid, 0), 0);
		char st = md_test_proc_state(p.pid);
		ck_assert_msg(st == 'S' || st == 'R', "%s: target state %c", mode, st);
		md_node_destroy(report);
		md_test_proc_stop(&p);
	}
}
END_TEST

Suite *musl_suite(void)
{
	Suite *s = suite_create("musl");
	TCase *tc = tcase_create("musl");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_static_symtab);
	tcase_add_test(tc, test_static_stripped);
	tcase_add_test(tc, test_dynamic);
	tcase_add_loop_test(tc, test_readers, 0, 2);
	tcase_add_test(tc, test_not_musl);
	tcase_add_test(tc, test_churn);
	tcase_add_test(tc, test_core_static_stripped);
	tcase_add_test(tc, test_core_dynamic);
	tcase_add_loop_test(tc, test_hostile, 0, (int)(sizeof(damage_modes) / sizeof(damage_modes[0])));
	suite_add_tcase(s, tc);
	return s;
}
