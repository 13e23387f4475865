/* Safe points on busy targets (issue 11, case 9): tests/targets/busy_threads.c keeps 8 threads in a
 * malloc/free/realloc loop without pause, so that a stop of the whole process almost always
 * catches some inside malloc. memdissect lets only those run on, the others stopped, until they
 * are out. The threads never stop allocating, so no printed figure can be compared: each report
 * must say consistent (most of them; the strict 19 of 20 is measured by make bench, where timing
 * belongs), hold no corruption finding and have classes summing to the RSS, and the target must
 * go on allocating afterwards. The same program at rest (its workers parked outside malloc)
 * prints glibc's mallinfo2(), which the report must equal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

/* No arena of the report is called corrupt, and a consistent walk has no finding at all. */
static void check_not_corrupt(struct md_node *glibc, const char *what)
{
	bool consistent = md_node_get_bool(md_node_get(glibc, "consistent"));
	struct md_node *arenas = md_node_get(glibc, "arenas");
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		const char *st = md_node_get_string(md_node_get(md_node_at(arenas, i), "state"));
		ck_assert_msg(st && strcmp(st, "corrupt") != 0, "%s: arena %zu called corrupt", what, i);
		if (consistent)
			ck_assert_msg(strcmp(st, "ok") == 0, "%s: consistent, but arena %zu is %s", what, i, st);
	}
	if (consistent)
		ck_assert_msg(md_test_json_u64(glibc, "findings") == 0, "%s: consistent, but %llu findings", what,
			      (unsigned long long)md_test_json_u64(glibc, "findings"));
}

START_TEST(test_parked_exact)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	static const char *const args[] = { "8", "parked", NULL };
	ck_assert(md_test_proc_start(&p, "busy_threads", args));
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL && status == 0, "status %d", status);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	ck_assert(md_node_get_bool(md_node_get(glibc, "consistent")));
	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char key[64];
		snprintf(key, sizeof(key), "mallinfo.%s", mallinfo_fields[i]);
		unsigned long long want = md_test_truth(&p, key);
		uint64_t got = md_test_json_u64(glibc, key);
		ck_assert_msg(got == want, "parked: %s is %llu, glibc says %llu", key, (unsigned long long)got, want);
	}
	check_not_corrupt(glibc, "parked");
	md_test_check_classes_sum(report);
	/* Nobody was inside malloc: the first look was the safe point. */
	ck_assert_uint_eq(md_test_json_u64(report, "target.attach_polls"), 0);
	ck_assert_uint_eq(md_test_json_u64(report, "target.attach_retries"), 0);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_busy_consistent)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	static const char *const args[] = { "8", NULL };
	ck_assert(md_test_proc_start(&p, "busy_threads", args));
	const int attaches = 20;
	int consistent = 0, polled = 0;
	unsigned long long polls = 0, retries = 0;
	double pause_sum = 0;
	for (int i = 0; i < attaches; i++) {
		char what[32];
		snprintf(what, sizeof(what), "attach %d", i);
		int status = -1;
		struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
		ck_assert_msg(report != NULL && status == 0, "%s: status %d", what, status);
		struct md_node *glibc = md_test_allocator(report, "glibc");
		ck_assert(glibc != NULL);
		check_not_corrupt(glibc, what);
		md_test_check_classes_sum(report);
		consistent += md_node_get_bool(md_node_get(glibc, "consistent"));
		uint64_t n = md_test_json_u64(report, "target.attach_polls");
		polls += n;
		polled += n > 0;
		retries += md_test_json_u64(report, "target.attach_retries");
		pause_sum += md_node_get_double(md_node_get(md_node_get(report, "target"), "pause_ms"));
		md_node_destroy(report);
	}
	fprintf(stderr, "safepoint: %d of %d attaches to 8 busy threads consistent; %d needed threads to run on "
			"(%llu looks, %llu whole-process re-stops in all); mean pause %.1f ms\n",
		consistent, attaches, polled, polls, retries, pause_sum / attaches);
	/* Threads were let run on alone: a whole-process stop does not find this target at rest. */
	ck_assert_msg(polled > 0, "no attach let a thread run on alone");
	/* Whole-process re-stops alone made 0 of 20 consistent. How many get there within the
	 * 60 ms budget depends on how soon the machine schedules the threads let run on: with 2
	 * shared cores under the load of parallel test suites (load average 7 to 17) 14 to 20 of 20
	 * were seen, 11 to 18 under ASan (slower looks); the goal of 19 of 20 is measured by make
	 * bench, where timing belongs. The bound leaves room for a busier machine. */
	int want = md_test_sanitized() ? 6 : 10;
	ck_assert_msg(consistent >= want, "only %d of %d attaches to a busy target were consistent (want %d)", consistent,
		      attaches, want);

	/* Unharmed: running (not left stopped or traced) and still allocating. */
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st == 'S' || st == 'R', "target state %c after the attaches", st ? st : '?');
	unsigned long long before = md_test_proc_ask_u64(&p, "count", "ops ");
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	ck_assert_msg(md_test_proc_ask_u64(&p, "count", "ops ") > before, "the workers stopped allocating after the attaches");
	md_test_proc_stop(&p);
}
END_TEST

/* Signals that arrive while threads run on alone, stop and go again reach the target: a stream
 * of SIGRTMIN (queued, so every one must be delivered) during each attach. */
START_TEST(test_busy_signals)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	static const char *const args[] = { "8", NULL };
	ck_assert(md_test_proc_start(&p, "busy_threads", args));
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *attach_args[] = { "attach", "--json", pid_text, NULL };
	unsigned long long sent = 0;
	int polled = 0;
	for (int i = 0; i < 5; i++) {
		struct md_test_bg r;
		md_test_bg_start(&r, attach_args, NULL);
		for (int k = 0; k < 4000 && (r.out_fd >= 0 || r.err_fd >= 0); k++) {
			ck_assert(kill(p.pid, SIGRTMIN) == 0);
			sent++;
			md_test_bg_pump(&r, 0);
			usleep(200);
		}
		int status = md_test_bg_finish(&r, 30000);
		ck_assert_msg(status == 0, "attach %d: exit %d: %s", i, status, r.err ? r.err : "");
		struct md_node *report = NULL;
		struct md_error *err = md_node_parse_json(r.out, r.out_len, &report);
		ck_assert_msg(!err && report, "attach %d: no JSON report", i);
		md_test_check_classes_sum(report);
		polled += md_test_json_u64(report, "target.attach_polls") > 0;
		md_node_destroy(report);
		md_test_bg_free(&r);
	}
	ck_assert_msg(polled > 0, "no attach let a thread run on alone: the signals did not meet that path");
	/* Delivery may lag a little behind the last kill. */
	unsigned long long got = 0;
	for (int k = 0; k < 50 && got < sent; k++) {
		got = md_test_proc_ask_u64(&p, "signals", "signals ");
		if (got < sent)
			usleep(20000);
	}
	ck_assert_msg(got == sent, "sent %llu SIGRTMIN during 5 attaches, the target counted %llu", sent, got);
	md_test_proc_stop(&p);
}
END_TEST

Suite *safepoint_suite(void)
{
	Suite *s = suite_create("safepoint");
	TCase *tc = tcase_create("busy");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_parked_exact);
	tcase_add_test(tc, test_busy_consistent);
	tcase_add_test(tc, test_busy_signals);
	suite_add_tcase(s, tc);
	return s;
}
