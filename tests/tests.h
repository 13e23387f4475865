/* Shared declarations of the Check suite. Each tests/check_<area>.c defines one Suite. */
#ifndef MEMDISSECT_TESTS_H
#define MEMDISSECT_TESTS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/node.h"

/* Suites (weak: an area that is not built yet is simply absent). */
Suite *node_suite(void) __attribute__((weak));
Suite *procfs_suite(void) __attribute__((weak));
Suite *symbols_suite(void) __attribute__((weak));
Suite *classify_suite(void) __attribute__((weak));
Suite *attach_suite(void) __attribute__((weak));
Suite *render_suite(void) __attribute__((weak));
Suite *plugin_suite(void) __attribute__((weak));
Suite *glibc_suite(void) __attribute__((weak));
Suite *glibc_real_suite(void) __attribute__((weak));
Suite *glibc_heuristic_suite(void) __attribute__((weak));
Suite *glibc_nodebug_suite(void) __attribute__((weak));
Suite *glibc_versions_suite(void) __attribute__((weak));
Suite *jemalloc_suite(void) __attribute__((weak));
Suite *core_suite(void) __attribute__((weak));
Suite *hardening_suite(void) __attribute__((weak));
Suite *map_suite(void) __attribute__((weak));
Suite *watch_suite(void) __attribute__((weak));
Suite *html_suite(void) __attribute__((weak));
Suite *image_suite(void) __attribute__((weak));
Suite *package_suite(void) __attribute__((weak));
Suite *debuginfod_suite(void) __attribute__((weak));
Suite *cgroup_suite(void) __attribute__((weak));
Suite *metrics_suite(void) __attribute__((weak));
Suite *docs_suite(void) __attribute__((weak));
Suite *honest_suite(void) __attribute__((weak));
Suite *states_suite(void) __attribute__((weak));
Suite *safepoint_suite(void) __attribute__((weak));
Suite *musl_suite(void) __attribute__((weak));
Suite *pymalloc_suite(void) __attribute__((weak));
Suite *tcmalloc_suite(void) __attribute__((weak));
Suite *mimalloc_suite(void) __attribute__((weak));

/* Helpers in tests/check_helpers.c. */
/* Path of a built test program ($MD_TARGETS/name, or name itself when absolute) and of memdissect
 * ($MEMDISSECT). */
const char *md_test_target_path(const char *name, char *buf, size_t len);
const char *md_test_memdissect(void);
bool md_test_sanitized(void); /* running the ASan+UBSan build */

/* A test target started with a pipe on stdout: the target prints lines of "key value" ground
 * truth and then "ready" and waits (pause()/read on stdin). */
struct md_test_proc {
	pid_t pid;
	int out_fd;   /* target's stdout */
	int in_fd;    /* target's stdin (write to wake/command it) */
	char *truth;  /* all the text printed up to "ready" */
};
/* Start $MD_TARGETS/name with argv (NULL-terminated, argv[0] excluded); wait for "ready". */
bool md_test_proc_start(struct md_test_proc *p, const char *name, const char *const *args);
/* "key value" lookup in the truth text; returns false when absent. */
bool md_test_truth_u64(const struct md_test_proc *p, const char *key, unsigned long long *v);
/* Read more lines until one starts with prefix (e.g. "trimmed"); returns a malloc'd line. */
char *md_test_proc_wait_line(struct md_test_proc *p, const char *prefix, int timeout_ms);
void md_test_proc_stop(struct md_test_proc *p); /* SIGKILL + reap, frees */
/* Write cmd and a newline to the target, wait for the line starting with prefix and return the
 * number after it (asserts that it came within 5 s). */
unsigned long long md_test_proc_ask_u64(struct md_test_proc *p, const char *cmd, const char *prefix);

/* Run memdissect with args (NULL-terminated); capture stdout/stderr; return exit status
 * (or -1). out/err are malloc'd (may be NULL if not wanted). */
int md_test_run(const char *const *args, char **out, char **err, int timeout_ms);
/* Run "memdissect attach --json PID [extra...]" and parse the JSON; NULL on failure. */
struct md_node *md_test_attach_json(pid_t pid, const char *const *extra, int *status_ret);
/* The same, asserting a report and exit status 0. */
struct md_node *md_test_attach_ok(pid_t pid, const char *what);
/* In process: open pid as a live target, stop it and capture /proc and pagemap into *cap
 * (asserting each step); md_test_live_release lets it go and frees both. */
struct md_target;
struct md_live_capture;
struct md_target *md_test_live_stopped(pid_t pid, bool debuginfo_disabled, struct md_live_capture *cap);
void md_test_live_release(struct md_target *t, struct md_live_capture *cap);

/* Reading reports (each asserts what it needs): the allocator object named name, or NULL; a
 * number at a dotted path (must exist); a "key value" truth line (must exist); and the report's
 * promise that all seven classes add up to memory.rss_bytes. */
struct md_node *md_test_allocator(struct md_node *report, const char *name);
uint64_t md_test_json_u64(struct md_node *n, const char *path);
unsigned long long md_test_truth(const struct md_test_proc *p, const char *key);
void md_test_check_classes_sum(struct md_node *report);
/* A "corrupt" finding of allocator at addr whose message contains rule (any message when NULL). */
bool md_test_corrupt_finding_at(struct md_node *report, const char *allocator, uint64_t addr, const char *rule);
double md_test_now_s(void); /* monotonic seconds */
/* The standard output of a shell command (malloc'd), or NULL. */
char *md_test_capture(const char *cmd);

/* glibc ground truth: the report's "mallinfo" equals the target's "<prefix>mallinfo.<field> N"
 * lines; md_test_trim_and_compare sends "trim", compares the RSS drop the target measures with
 * the predicted pages (within 1%), and makes the "after." mallinfo lines the new truth. */
void md_test_check_mallinfo(struct md_node *glibc, const struct md_test_proc *p, const char *prefix,
			    const char *mode);
void md_test_trim_and_compare(struct md_test_proc *p, uint64_t predicted, const char *mode);
/* The same, allowing slack_pages either way: the trim's own copy-on-write faults in a forked child
 * whose heap is shared with its parent through the huge zero page (hugezerofork). */
void md_test_trim_and_compare_slack(struct md_test_proc *p, uint64_t predicted, const char *mode, unsigned slack_pages);

/* /proc/PID/status field in kB*1024, or UINT64_MAX. */
unsigned long long md_test_status_bytes(pid_t pid, const char *field);
/* Process state letter from /proc/PID/stat ('S', 't', 'T', ...), or 0. */
char md_test_proc_state(pid_t pid);

/* memdissect (or opts->exe) running in the background with stdout/stderr collected. */
struct md_test_bg {
	pid_t pid;
	int out_fd, err_fd; /* -1 once at EOF */
	char *out, *err;
	size_t out_len, err_len;
	long long started_ms;
	bool signaled;
};

struct md_test_bg_options {
	const char *exe;           /* NULL: $MEMDISSECT */
	const char *const *env;    /* "NAME=value" to set, NULL-terminated, or NULL */
	bool as_nobody;            /* drop every group and become uid/gid 65534 first */
};
void md_test_bg_start(struct md_test_bg *r, const char *const *args, const struct md_test_bg_options *o);
/* One round of reading what is available, waiting at most timeout_ms. */
void md_test_bg_pump(struct md_test_bg *r, int timeout_ms);
/* Wait for a stderr line containing needle; false on EOF or timeout. */
bool md_test_bg_wait_stderr(struct md_test_bg *r, const char *needle, int timeout_ms);
/* Read until the pipes end and it exits: the exit code, 128+signal, or -1 when killed at the deadline. */
int md_test_bg_finish(struct md_test_bg *r, int timeout_ms);
void md_test_bg_free(struct md_test_bg *r); /* kills it if still running */
bool md_test_has_line_with(const char *text, const char *needle); /* a complete line containing needle */
bool md_test_become_nobody(void); /* drop groups, become uid/gid 65534 (in a child) */

/* Why ptrace is impossible in this environment (a container without CAP_SYS_PTRACE, Yama 3), or
 * NULL. */
const char *md_test_ptrace_impossible(void);

/* A skip is not a pass. md_test_skip records it (the runner prints the count beside Check's
 * summary) and prints "TEST: skipped: WHY". With CI=true a required test that skips fails
 * instead; an optional one (a tool the run does not need) is only counted. Use it as
 * "if (cond) { md_test_skip(...); return; }" or through the macros below. */
void md_test_skip(bool required, const char *test, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define MD_SKIP(...)                                                                               \
	do {                                                                                       \
		md_test_skip(true, __func__, __VA_ARGS__);                                         \
		return;                                                                            \
	} while (0)
#define MD_SKIP_OPTIONAL(...)                                                                      \
	do {                                                                                       \
		md_test_skip(false, __func__, __VA_ARGS__);                                        \
		return;                                                                            \
	} while (0)
#define SKIP_WITHOUT_PTRACE()                                                                      \
	do {                                                                                       \
		const char *why_ = md_test_ptrace_impossible();                                    \
		if (why_)                                                                          \
			MD_SKIP("ptrace is impossible here (%s)", why_);                           \
	} while (0)

#endif
