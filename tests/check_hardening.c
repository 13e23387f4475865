/* Hardening of `memdissect attach` (issue 8): faults injected at random moments, long series
 * of attaches, read-only proofs, and runs without privileges. Real processes throughout: the
 * targets are tests/targets/hard_*.c (and threads, thread_storm, sleeper), memdissect is
 * $MEMDISSECT, or md_analyze_live itself where the test must watch memdissect's own file
 * descriptors and heap over hundreds of attaches.
 *
 * Counts are reduced here to keep `make check` fast; `make stress` (scripts/stress.sh) runs the
 * same tests with MD_STRESS=1 and the full counts of docs/reliability.md. Every test prints its
 * figures as "figure: ..." lines on stderr (and appends them to $MD_FIGURES when set). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <grp.h>
#include <libelf.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "analyze.h"
#include "memdissect/report.h"
#include "procfs.h"
#include "tests.h"

#define NOBODY_ID 65534
#define TMPFS_MAGIC_NUMBER 0x01021994

/* ---- time, counts, figures ----------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static double now_ms_f(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The ASan+UBSan memdissect is several times slower: scale the deadlines that wait for it. */
static int slow(int ms)
{
	return md_test_sanitized() ? ms * 4 : ms;
}

static bool stress_mode(void)
{
	const char *s = getenv("MD_STRESS");
	return s && *s && strcmp(s, "0") != 0;
}

/* How many times to do something: in `make check`, in its sanitized run, in `make stress`. */
static int count_for(int check, int sanitized, int stress)
{
	if (stress_mode())
		return stress;
	return md_test_sanitized() ? sanitized : check;
}

/* A measured figure: on stderr, and appended to $MD_FIGURES for scripts/stress.sh. */
__attribute__((format(printf, 1, 2))) static void figure(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "figure: %s%s\n", md_test_sanitized() ? "[asan] " : "", line);
	const char *path = getenv("MD_FIGURES");
	if (path && *path) {
		FILE *f = fopen(path, "a");
		if (f) {
			fprintf(f, "%s%s\n", md_test_sanitized() ? "[asan] " : "", line);
			fclose(f);
		}
	}
}

/* A small random generator with a printed seed, so that a failing series can be replayed
 * (MD_SEED=n). */
static uint64_t rng_state;

static void rng_seed(const char *what)
{
	const char *s = getenv("MD_SEED");
	rng_state = s && *s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	if (!rng_state)
		rng_state = 1;
	fprintf(stderr, "%s: random seed %llu (MD_SEED to replay)\n", what, (unsigned long long)rng_state);
}

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static long rng_below(long n)
{
	return n > 0 ? (long)(rng_next() % (uint64_t)n) : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- ptrace availability ------------------------------------------------------------------- */



/* ---- small files --------------------------------------------------------------------------- */

/* A whole file (a /proc file too) as a string, NULL when unreadable: attach/procfs.c's reader. */
static char *slurp(const char *path)
{
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return NULL;
	}
	return buf;
}

static bool write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = write(fd, text, strlen(text));
	int saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(text);
}

/* "Field:   N" of a /proc-style file (N with a "kB" suffix is multiplied); UINT64_MAX if absent. */
static uint64_t file_field(const char *path, const char *field)
{
	char *text = slurp(path);
	uint64_t v = UINT64_MAX;
	size_t fl = strlen(field);
	for (char *line = text; line && *line;) {
		if (strncmp(line, field, fl) == 0 && (line[fl] == ':' || line[fl] == ' ')) {
			char *end;
			v = strtoull(line + fl + 1, &end, 10);
			while (*end == ' ')
				end++;
			if (strncmp(end, "kB", 2) == 0)
				v *= 1024;
			break;
		}
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return v;
}

static uint64_t file_number(const char *path)
{
	char *text = slurp(path);
	uint64_t v = text ? strtoull(text, NULL, 10) : UINT64_MAX;
	free(text);
	return v;
}

static bool copy_file(const char *from, const char *to, mode_t mode)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return false;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	bool ok = out >= 0;
	char buf[65536];
	ssize_t n;
	while (ok && (n = read(in, buf, sizeof(buf))) > 0)
		ok = write(out, buf, (size_t)n) == n;
	close(in);
	if (out >= 0)
		close(out);
	return ok && chmod(to, mode) == 0;
}

static int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream itself */
}

/* ---- memdissect in the background ---------------------------------------------------------- */


/* memdissect attach [extra...] PID, run to the end. */
static int attach_run(pid_t pid, const char *const *extra, const struct md_test_bg_options *o, struct md_test_bg *r, int timeout_ms)
{
	const char *args[32];
	size_t n = 0;
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	args[n++] = "attach";
	for (size_t i = 0; extra && extra[i] && n < 30; i++)
		args[n++] = extra[i];
	args[n++] = pid_text;
	args[n] = NULL;
	md_test_bg_start(r, args, o);
	return md_test_bg_finish(r, timeout_ms);
}

/* At most the last 1500 bytes of text: Check refuses failure messages over 4 KiB (the test then
 * dies with "Early exit" and the message is lost). */
static const char *tail_of(const char *text)
{
	if (!text)
		return "";
	size_t len = strlen(text);
	return len > 1500 ? text + len - 1500 : text;
}

/* Lines of stderr other than "paused" and the timing lines of MEMDISSECT_DEBUG_TIMING. */
static size_t error_lines(const char *err, const char **last_ret)
{
	size_t n = 0;
	*last_ret = NULL;
	for (const char *line = err; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		bool ignored = (len == 6 && strncmp(line, "paused", 6) == 0) || strncmp(line, "timing: ", 8) == 0;
		if (!ignored && len > 0) {
			n++;
			*last_ret = line;
		}
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

static void assert_one_error_line(const char *err, const char *what)
{
	const char *line;
	size_t n = error_lines(err, &line);
	ck_assert_msg(n == 1, "%s: want one line on stderr, got %zu:\n%s", what, n, tail_of(err));
	ck_assert_msg(strncmp(line, "memdissect: ", 12) == 0, "%s: stderr does not start with \"memdissect: \": %s",
		      what, line);
}

/* The phase an attach had reached, from the MEMDISSECT_DEBUG_TIMING lines printed so far: the
 * last line names the phase just finished. */
static const char *const phase_names[] = {
	"exec, libraries",       /* no timing line yet */
	"opening the target",    /* after "start" */
	"opening plugins",       /* after "open target" */
	"stopping threads",      /* after "open plugins": the pause begins */
	"capturing (paused)",    /* after "stop threads" */
	"re-stops (paused)",     /* after "capture /proc, pagemap" */
	"walking (paused)",      /* after "quiescence" */
	"detaching",             /* after "walk" */
	"classifying, report",   /* after "detach" */
	"rendering, exit",       /* after "classify, report" */
};
#define N_PHASES (sizeof(phase_names) / sizeof(phase_names[0]))

static size_t phase_reached(const char *err)
{
	static const char *const done[] = {"start", "open target", "open plugins", "stop threads",
					   "capture /proc, pagemap", "quiescence", "walk", "detach",
					   "classify, report"};
	size_t phase = 0;
	for (const char *line = err; line && *line;) {
		const char *nl = strchr(line, '\n');
		if (!nl)
			break;
		if (strncmp(line, "timing: ", 8) == 0) {
			for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
				size_t l = strlen(done[i]);
				if (strncmp(line + 8, done[i], l) == 0 && line[8 + l] == ' ')
					phase = i + 1;
			}
		}
		line = nl + 1;
	}
	return phase;
}

/* Milliseconds a phase took, from its timing line; -1 when absent. */
static double phase_ms(const char *err, const char *name)
{
	size_t l = strlen(name);
	for (const char *line = err; line && *line;) {
		if (strncmp(line, "timing: ", 8) == 0 && strncmp(line + 8, name, l) == 0 && line[8 + l] == ' ')
			return strtod(line + 8 + l, NULL);
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	return -1;
}

static const char *const timing_env[] = {"MEMDISSECT_DEBUG_TIMING=1", NULL};
static const struct md_test_bg_options timing_opts = {.env = timing_env};

/* ---- the target's side --------------------------------------------------------------------- */

struct census {
	int tasks;
	int stopped; /* 't' (ptrace stop) or 'T' (job-control stop) */
};

static struct census census(pid_t pid)
{
	struct census c = {0, 0};
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return c;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char stat_path[300], buf[512];
		snprintf(stat_path, sizeof(stat_path), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		int fd = open(stat_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		char *paren = strrchr(buf, ')');
		if (!paren || paren[1] != ' ')
			continue;
		c.tasks++;
		if (paren[2] == 't' || paren[2] == 'T')
			c.stopped++;
	}
	closedir(d);
	return c;
}

/* Polls until no thread of pid is stopped; *waited_ms how long that took. */
static struct census wait_running(pid_t pid, int timeout_ms, long long *waited_ms)
{
	long long start = now_ms(), deadline = start + timeout_ms;
	struct census c = census(pid);
	while (c.stopped > 0 && now_ms() < deadline) {
		sleep_us(500);
		c = census(pid);
	}
	if (waited_ms)
		*waited_ms = now_ms() - start;
	return c;
}

static struct census wait_all_stopped(pid_t pid, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct census c = census(pid);
	while ((c.tasks == 0 || c.stopped < c.tasks) && now_ms() < deadline) {
		sleep_ms(5);
		c = census(pid);
	}
	return c;
}

static pid_t tracer_of(pid_t pid, pid_t tid)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	uint64_t v = file_field(path, "TracerPid");
	return v == UINT64_MAX ? -1 : (pid_t)v;
}

static void ping(struct md_test_proc *p, const char *when)
{
	ck_assert_msg(dprintf(p->in_fd, "ping\n") > 0, "%s: cannot write to target %d", when, (int)p->pid);
	char *pong = md_test_proc_wait_line(p, "pong", 5000);
	ck_assert_msg(pong != NULL, "%s: target %d does not answer \"ping\"", when, (int)p->pid);
	free(pong);
}

/* The target runs after an attach: no thread stopped, no tracer left, and it answers. */
static void assert_target_runs(struct md_test_proc *p, const char *when)
{
	long long waited;
	struct census c = wait_running(p->pid, 2000, &waited);
	ck_assert_msg(c.tasks > 0, "%s: target %d is gone", when, (int)p->pid);
	ck_assert_msg(c.stopped == 0, "%s: %d of %d threads of target %d still stopped after 2 s", when, c.stopped,
		      c.tasks, (int)p->pid);
	ck_assert_msg(tracer_of(p->pid, p->pid) == 0, "%s: target %d still has tracer %d", when, (int)p->pid,
		      (int)tracer_of(p->pid, p->pid));
	ping(p, when);
}

/* Starts a target and waits for one answer to "ping": from then on it is idle. */
static void start_target(struct md_test_proc *p, const char *name, const char *const *args)
{
	ck_assert_msg(md_test_proc_start(p, name, args), "cannot start test target %s (is $MD_TARGETS set?)", name);
	ping(p, name);
}

/* Asks a target one command and returns its answer line (malloc'd) starting with prefix. */
static char *ask(struct md_test_proc *p, const char *cmd, const char *prefix)
{
	ck_assert_msg(dprintf(p->in_fd, "%s\n", cmd) > 0, "cannot write \"%s\" to target %d", cmd, (int)p->pid);
	char *line = md_test_proc_wait_line(p, prefix, 10000);
	ck_assert_msg(line != NULL, "target %d does not answer \"%s\"", (int)p->pid, cmd);
	return line;
}

/* ---- reading reports ----------------------------------------------------------------------- */

static struct md_node *parse_report(const char *out, const char *what)
{
	struct md_node *root = NULL;
	ck_assert_msg(out && *out, "%s: no JSON on stdout", what);
	struct md_error *err = md_node_parse_json(out, strlen(out), &root);
	ck_assert_msg(err == NULL, "%s: stdout is not JSON: %s", what, err && err->message ? err->message : "?");
	return root;
}

static uint64_t jnum(const struct md_node *root, const char *path)
{
	struct md_node *n = md_node_path(root, path);
	ck_assert_msg(n != NULL, "JSON report has no \"%s\"", path);
	ck_assert_msg(md_node_type(n) == MD_NODE_U64 || md_node_type(n) == MD_NODE_I64 || md_node_type(n) == MD_NODE_DOUBLE,
		      "JSON \"%s\" is not a number", path);
	return md_node_get_u64(n);
}

static double jdouble(const struct md_node *root, const char *path)
{
	struct md_node *n = md_node_path(root, path);
	ck_assert_msg(n != NULL, "JSON report has no \"%s\"", path);
	return md_node_get_double(n);
}

static const char *const class_names[] = {"live", "free", "metadata", "stack", "file", "shared", "anon_other"};
#define N_CLASSES (sizeof(class_names) / sizeof(class_names[0]))

static uint64_t class_sum(const struct md_node *classes, const char *where)
{
	ck_assert_msg(classes && md_node_type(classes) == MD_NODE_OBJECT, "%s: no \"classes\" object", where);
	uint64_t sum = 0;
	for (size_t i = 0; i < N_CLASSES; i++) {
		struct md_node *v = md_node_get(classes, class_names[i]);
		ck_assert_msg(v != NULL, "%s: class \"%s\" missing", where, class_names[i]);
		sum += md_node_get_u64(v);
	}
	return sum;
}

/* The invariant of every complete report: the classes sum to RSS, globally and per region, and
 * the regions sum to RSS. False with why filled when it does not hold. */
static bool sums_hold(const struct md_node *root, const char *what, char *why, size_t why_len)
{
	uint64_t rss = jnum(root, "memory.rss_bytes");
	uint64_t classes = class_sum(md_node_get(root, "classes"), what);
	struct md_node *regions = md_node_get(root, "regions");
	ck_assert_msg(regions && md_node_count(regions) > 0, "%s: no regions", what);
	uint64_t region_sum = 0;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		struct md_node *r = md_node_at(regions, i);
		uint64_t r_rss = jnum(r, "rss_bytes");
		char where[96];
		snprintf(where, sizeof(where), "%s: regions.%zu", what, i);
		if (class_sum(md_node_get(r, "classes"), where) != r_rss) {
			snprintf(why, why_len, "%s: classes do not sum to rss_bytes %llu", where, (unsigned long long)r_rss);
			return false;
		}
		region_sum += r_rss;
	}
	if (classes != rss || region_sum != rss) {
		snprintf(why, why_len,
			 "%s: the classes sum to %llu and the regions to %llu, memory.rss_bytes is %llu (reconciled_pages %llu)",
			 what, (unsigned long long)classes, (unsigned long long)region_sum, (unsigned long long)rss,
			 (unsigned long long)jnum(root, "reconciled_pages"));
		return false;
	}
	return true;
}

/* The same, asserted. Returns memory.rss_bytes. */
static uint64_t check_sums(const struct md_node *root, const char *what)
{
	char why[512];
	ck_assert_msg(sums_hold(root, what, why, sizeof(why)), "%s", why);
	return jnum(root, "memory.rss_bytes");
}

/* The first line of stderr that is not "paused" or a timing line, without its newline. */
static const char *first_error(const char *err)
{
	static char line[320];
	const char *last;
	line[0] = 0;
	for (const char *l = err; l && *l;) {
		const char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		if (error_lines(l, &last) > 0 && !(len == 6 && strncmp(l, "paused", 6) == 0) && strncmp(l, "timing: ", 8) != 0) {
			snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) - 1 ? len : sizeof(line) - 1), l);
			break;
		}
		l = nl ? nl + 1 : NULL;
	}
	return line;
}

/* The notes of a report as one string (for messages and searches). */
static const char *notes_text(const struct md_node *root)
{
	static char text[4096];
	size_t len = 0;
	text[0] = 0;
	struct md_node *notes = md_node_get(root, "notes");
	for (size_t i = 0; notes && i < md_node_count(notes) && len + 2 < sizeof(text); i++) {
		const char *s = md_node_get_string(md_node_at(notes, i));
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s", i ? " | " : "", s ? s : "?");
	}
	return text;
}

/* The first region whose "kind" is kind. */
static struct md_node *region_of_kind(const struct md_node *root, const char *kind)
{
	struct md_node *regions = md_node_get(root, "regions");
	for (size_t i = 0; regions && i < md_node_count(regions); i++) {
		struct md_node *r = md_node_at(regions, i);
		const char *k = md_node_get_string(md_node_get(r, "kind"));
		if (k && strcmp(k, kind) == 0)
			return r;
	}
	return NULL;
}

static uint64_t region_class(const struct md_node *region, const char *cls)
{
	return md_node_get_u64(md_node_get(md_node_get(region, "classes"), cls));
}

/* Scratch directories in /tmp are named after the runner process (where unchecked fixtures
 * run), so that the fixture's teardown removes what a failed test left behind. */
static pid_t scratch_owner;

static void scratch_setup(void)
{
	scratch_owner = getpid();
}

static void scratch_teardown(void)
{
	char prefix[48];
	snprintf(prefix, sizeof(prefix), "md-hard-%d-", (int)scratch_owner);
	DIR *d = opendir("/tmp");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || strchr(de->d_name, '\''))
			continue;
		char cmd[PATH_MAX];
		snprintf(cmd, sizeof(cmd), "rm -rf '/tmp/%s'", de->d_name);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove /tmp/%s\n", de->d_name);
	}
	if (d)
		closedir(d);
}

/* ==== faults ================================================================================ */

/* When things happen in an attach, measured from the fork of memdissect over a few runs: its
 * whole duration and the window in which the target is stopped, for spreading faults over all
 * of it while making sure enough of them land inside the pause. */
struct attach_timing {
	long long total_ms;      /* longest run */
	long long pause_from_ms; /* earliest end of "open plugins": the stop begins */
	long long pause_to_ms;   /* latest end of "detach" */
};

static struct attach_timing calibrate_attach(pid_t pid, int rounds)
{
	struct attach_timing at = {0, LLONG_MAX, 0};
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)pid);
	const char *args[] = {"attach", "--json", pid_text, NULL};
	for (int i = 0; i < rounds; i++) {
		struct md_test_bg r;
		md_test_bg_start(&r, args, &timing_opts);
		size_t seen = 0;
		long long deadline = now_ms() + slow(60000);
		while (r.err_fd >= 0 && now_ms() < deadline) {
			md_test_bg_pump(&r, 1);
			size_t phase = phase_reached(r.err);
			if (phase == seen)
				continue;
			long long at_ms = now_ms() - r.started_ms;
			if (phase >= 3 && seen < 3 && at_ms < at.pause_from_ms)
				at.pause_from_ms = at_ms;
			if (phase >= 8 && seen < 8 && at_ms > at.pause_to_ms)
				at.pause_to_ms = at_ms;
			seen = phase;
		}
		int status = md_test_bg_finish(&r, slow(60000));
		long long took = now_ms() - r.started_ms;
		ck_assert_msg(status == 0 || status == 10, "calibration attach to %d: exit %d, stderr: %s", (int)pid, status,
			      tail_of(r.err));
		struct md_node *root = parse_report(r.out, "calibration");
		check_sums(root, "calibration");
		md_node_destroy(root);
		if (took > at.total_ms)
			at.total_ms = took;
		md_test_bg_free(&r);
	}
	if (at.pause_from_ms == LLONG_MAX || at.pause_to_ms <= at.pause_from_ms) {
		at.pause_from_ms = 0;
		at.pause_to_ms = at.total_ms;
	}
	return at;
}

/* Waits for a fault's moment. Even rounds: a random time over the whole attach. Odd rounds: the
 * end of a random phase (from the timing lines), then up to 20 ms more, so that every phase of the
 * pause gets its share however short it is. Returns the delay from the fork. */
static long wait_fault_moment(struct md_test_bg *r, const struct attach_timing *at, int i)
{
	if (i % 2 == 0) {
		long long wake = r->started_ms + rng_below(at->total_ms * 11 / 10 + 1);
		while (now_ms() < wake)
			md_test_bg_pump(r, (int)(wake - now_ms()));
	} else {
		size_t aimed = 1 + (size_t)rng_below(8);
		long long deadline = now_ms() + slow(60000);
		while (phase_reached(r->err) < aimed && r->err_fd >= 0 && now_ms() < deadline)
			md_test_bg_pump(r, 1);
		/* Short phases (stopping, capturing, detaching) last a few ms: half the time aim
		 * within 3 ms of the line, at microsecond resolution. */
		sleep_us(rng_below(2) ? rng_below(3000) : rng_below(20000));
	}
	return (long)(now_ms() - r->started_ms);
}

START_TEST(test_kill_memdissect_anywhere)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(30, 12, 200);
	struct md_test_proc p;
	static const char *const churn_args[] = {"2", NULL};
	start_target(&p, "hard_churn", churn_args);
	rng_seed("kill_memdissect_anywhere");
	struct attach_timing at = calibrate_attach(p.pid, 3);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *args[] = {"attach", "--json", pid_text, NULL};
	int in_phase[N_PHASES] = {0};
	int finished_before = 0, while_stopped = 0, failed = 0;
	static char failures[2048];
	size_t failures_len = 0;
	failures[0] = 0;
	long long worst_release = 0, total_release = 0;
	for (int i = 0; i < n; i++) {
		struct md_test_bg r;
		md_test_bg_start(&r, args, &timing_opts);
		long delay = wait_fault_moment(&r, &at, i);
		struct census before = census(p.pid);
		int status;
		bool exited = waitpid(r.pid, &status, WNOHANG) == r.pid;
		if (!exited) {
			kill(r.pid, SIGKILL);
			while (waitpid(r.pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		long long killed_at = now_ms();
		r.pid = -1;
		long long drain_end = now_ms() + 1000;
		while ((r.out_fd >= 0 || r.err_fd >= 0) && now_ms() < drain_end)
			md_test_bg_pump(&r, 20);
		if (exited) {
			finished_before++;
			/* Not what this test is about, but not to be lost: reported at the end. */
			if (!WIFEXITED(status) || (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 10)) {
				failures_len += (size_t)snprintf(failures + failures_len, sizeof(failures) - failures_len,
								 "\n  attach %d: status 0x%x: %s", i, status,
								 first_error(r.err));
				if (failures_len >= sizeof(failures))
					failures_len = sizeof(failures) - 1;
				failed++;
			}
		} else {
			in_phase[phase_reached(r.err)]++;
			if (before.stopped > 0)
				while_stopped++;
		}
		long long waited;
		struct census c = wait_running(p.pid, 2000, &waited);
		long long release = now_ms() - killed_at;
		ck_assert_msg(c.stopped == 0, "kill %d (after %ld ms, in \"%s\"): %d of %d threads of the target still stopped 2 s later",
			      i, delay, phase_names[phase_reached(r.err)], c.stopped, c.tasks);
		if (release > worst_release)
			worst_release = release;
		total_release += release;
		char when[96];
		snprintf(when, sizeof(when), "after SIGKILL %d of memdissect (%ld ms in)", i, delay);
		assert_target_runs(&p, when);
		md_test_bg_free(&r);
	}
	char hist[1024];
	size_t len = 0;
	for (size_t k = 0; k < N_PHASES; k++)
		if (in_phase[k])
			len += (size_t)snprintf(hist + len, sizeof(hist) - len, "%s%s %d", len ? ", " : "", phase_names[k],
						 in_phase[k]);
	figure("kill_memdissect: %d SIGKILLs over a %lld ms attach of hard_churn (3 threads, paused from %lld to %lld ms): "
	       "%d while threads were stopped, %d after it finished; never left stopped; all threads running %lld ms (worst) / "
	       "%.1f ms (mean) after the kill",
	       n, at.total_ms, at.pause_from_ms, at.pause_to_ms, while_stopped, finished_before, worst_release, (double)total_release / n);
	figure("kill_memdissect: phases the kills landed in: %s", hist);
	md_test_proc_stop(&p);
	ck_assert_msg(failed == 0, "%d of the %d attaches that finished before their SIGKILL failed:%s", failed,
		      finished_before, failures);
}
END_TEST

START_TEST(test_target_killed_anywhere)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(20, 8, 100);
	rng_seed("target_killed_anywhere");
	struct md_test_proc p;
	static const char *const churn_args[] = {"2", NULL};
	start_target(&p, "hard_churn", churn_args);
	struct attach_timing at = calibrate_attach(p.pid, 3);
	md_test_proc_stop(&p);
	int answers[3] = {0}; /* report, zombie (5), exited (6) */
	int failed = 0;
	static char failures[2048];
	size_t failures_len = 0;
	failures[0] = 0;
	int in_phase[N_PHASES] = {0};
	long long worst_exit = 0;
	for (int i = 0; i < n; i++) {
		ck_assert(md_test_proc_start(&p, "hard_churn", churn_args));
		char pid_text[24];
		snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
		const char *args[] = {"attach", "--json", pid_text, NULL};
		struct md_test_bg r;
		md_test_bg_start(&r, args, &timing_opts);
		long delay = wait_fault_moment(&r, &at, i);
		size_t phase = phase_reached(r.err);
		kill(p.pid, SIGKILL); /* not reaped yet: memdissect may meet the zombie */
		long long killed_at = now_ms();
		int status = md_test_bg_finish(&r, slow(30000));
		long long took = now_ms() - killed_at;
		if (took > worst_exit)
			worst_exit = took;
		char what[128];
		snprintf(what, sizeof(what), "target killed %ld ms into the attach (in \"%s\")", delay, phase_names[phase]);
		ck_assert_msg(status >= 0, "%s: memdissect hangs", what);
		if (status != 0 && status != 5 && status != 6) {
			/* Wrong, but the rest of the series still tells something: listed at the end. */
			failures_len += (size_t)snprintf(failures + failures_len, sizeof(failures) - failures_len,
							 "\n  %s: exit %d: %s", what, status, first_error(r.err));
			if (failures_len >= sizeof(failures))
				failures_len = sizeof(failures) - 1;
			failed++;
			in_phase[phase]++;
			md_test_bg_free(&r);
			md_test_proc_stop(&p);
			continue;
		}
		if (status == 0) {
			struct md_node *root = parse_report(r.out, what);
			check_sums(root, what);
			md_node_destroy(root);
		} else {
			assert_one_error_line(r.err, what);
		}
		answers[status == 0 ? 0 : status == 5 ? 1 : 2]++;
		in_phase[phase]++;
		md_test_bg_free(&r);
		md_test_proc_stop(&p);
	}
	char hist[1024];
	size_t len = 0;
	for (size_t k = 0; k < N_PHASES; k++)
		if (in_phase[k])
			len += (size_t)snprintf(hist + len, sizeof(hist) - len, "%s%s %d", len ? ", " : "", phase_names[k],
						 in_phase[k]);
	figure("target_killed: %d targets SIGKILLed during a %lld ms attach (paused from %lld to %lld ms): %d complete "
	       "reports, %d exit 5 (zombie), %d exit 6, %d other; memdissect ended at most %lld ms after the kill; no hang",
	       n, at.total_ms, at.pause_from_ms, at.pause_to_ms, answers[0], answers[1], answers[2], failed, worst_exit);
	figure("target_killed: phases the kills landed in: %s", hist);
	ck_assert_msg(failed == 0, "%d of %d attaches to a target killed meanwhile ended with neither a report nor exit 5/6:%s",
		      failed, n, failures);
}
END_TEST

/* The names of the plugins memdissect loads ("memdissect plugins", status ok), space-separated
 * with a space at both ends. */
static const char *plugin_names(void)
{
	static char names[512];
	if (names[0])
		return names;
	const char *args[] = {"plugins", NULL};
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, slow(30000));
	ck_assert_msg(status == 0 && out, "memdissect plugins: exit %d: %s", status, err ? err : "");
	size_t used = (size_t)snprintf(names, sizeof(names), " ");
	for (const char *line = out; *line;) {
		char name[64], state[16];
		if (sscanf(line, "%63s %15s", name, state) == 2 && strcmp(state, "ok") == 0 && used + strlen(name) + 2 < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s ", name);
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : line + strlen(line);
	}
	free(out);
	free(err);
	ck_assert_msg(used > 1, "memdissect plugins lists no plugin");
	return names;
}

/* What a partial report says it could not see: its notes that start with a plugin's name
 * ("glibc: walk failed: ...", "glibc: <why its open failed>") and its unanalysed_allocators,
 * joined into buf. False when it names nothing: a partial report that does not say what is
 * missing is a wrong report. */
static bool partial_reasons(const struct md_node *root, char *buf, size_t len)
{
	const char *plugins = plugin_names();
	size_t used = 0;
	buf[0] = 0;
	struct md_node *notes = md_node_get(root, "notes");
	for (size_t i = 0; notes && i < md_node_count(notes) && used + 2 < len; i++) {
		const char *note = md_node_get_string(md_node_at(notes, i));
		const char *colon = note ? strchr(note, ':') : NULL;
		char word[66];
		if (!colon || colon == note || colon - note > 63)
			continue;
		snprintf(word, sizeof(word), " %.*s ", (int)(colon - note), note);
		if (strstr(plugins, word))
			used += (size_t)snprintf(buf + used, len - used, "%s%.120s", used ? " | " : "", note);
	}
	struct md_node *un = md_node_get(root, "unanalysed_allocators");
	for (size_t i = 0; un && i < md_node_count(un) && used + 2 < len; i++) {
		const char *name = md_node_get_string(md_node_get(md_node_at(un, i), "name"));
		used += (size_t)snprintf(buf + used, len - used, "%sunanalysed %s", used ? " | " : "", name ? name : "?");
	}
	if (used >= len)
		buf[len - 1] = 0;
	return used > 0;
}

/* A target that maps, grows and unmaps memory all the time, attached right after it started
 * (its arenas grow fastest then): /proc/PID/smaps read while it runs is not a snapshot.
 * A partial report (exit 10) is allowed here only in a small share, and only one that says what
 * it could not see. Why a bound and why this one: hard_churn has one allocator (glibc) and no
 * damage; the target is stopped for the walk, and a thread caught inside malloc is let out first
 * (safe points) or the walk runs marked inconsistent, which is still a complete report. What can
 * legitimately go partial is a plugin's open, which reads the running target before the pause
 * (a freshly started process whose libc state is being written as it is read). That is a race,
 * not the rule: 0 partial in 20 attaches and in 200 (MD_STRESS=1, both builds) when this was
 * written. The bound, 1 in 20 (5 %, at least 1), is the largest share that is still "rare": a
 * true rate of 1 % fails the normal count of 20 with probability 1.7 %; a plugin that fails
 * whenever the target is busy (the bug this guards against) fails it at once. */
#define BUSY_PARTIAL_PER 20
START_TEST(test_busy_target)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(20, 8, 200);
	int outcomes[3] = {0}; /* complete, partial, other */
	static char failures[2048], partials[2048];
	size_t failures_len = 0, partials_len = 0;
	failures[0] = partials[0] = 0;
	int inconsistent = 0;
	static const char *const churn_args[] = {"3", NULL};
	static const char *const json[] = {"--json", NULL};
	for (int i = 0; i < n; i++) {
		struct md_test_proc p;
		ck_assert(md_test_proc_start(&p, "hard_churn", churn_args));
		struct md_test_bg r;
		int status = attach_run(p.pid, json, NULL, &r, slow(30000));
		ck_assert_msg(status >= 0, "attach %d to a busy target hangs (stderr: %s)", i, tail_of(r.err));
		if (status == 0 || status == 10) {
			struct md_node *root = parse_report(r.out, "busy target");
			check_sums(root, "busy target");
			bool partial = md_node_get_bool(md_node_get(root, "partial"));
			ck_assert_msg(partial == (status == 10), "attach %d: exit %d but \"partial\": %s", i, status,
				      partial ? "true" : "false");
			struct md_node *g = md_test_allocator(root, "glibc");
			if (g && !md_node_get_bool(md_node_get(g, "consistent")))
				inconsistent++;
			if (status == 10) {
				char why[512];
				ck_assert_msg(partial_reasons(root, why, sizeof(why)),
					      "attach %d: a partial report that does not say what it could not see: notes: %s", i,
					      notes_text(root));
				partials_len += (size_t)snprintf(partials + partials_len, sizeof(partials) - partials_len,
								 "\n  attach %d: %s", i, why);
				if (partials_len >= sizeof(partials))
					partials_len = sizeof(partials) - 1;
			} else {
				ck_assert_msg(g != NULL, "attach %d: a complete report without glibc", i);
			}
			md_node_destroy(root);
			outcomes[status == 0 ? 0 : 1]++;
			assert_target_runs(&p, "busy target");
		} else {
			failures_len += (size_t)snprintf(failures + failures_len, sizeof(failures) - failures_len,
							 "\n  attach %d: exit %d: %s", i, status, first_error(r.err));
			if (failures_len >= sizeof(failures))
				failures_len = sizeof(failures) - 1;
			outcomes[2]++;
		}
		md_test_bg_free(&r);
		md_test_proc_stop(&p);
	}
	int allowed = n / BUSY_PARTIAL_PER > 1 ? n / BUSY_PARTIAL_PER : 1;
	figure("busy_target: %d attaches to freshly started hard_churn (4 threads allocating): %d complete (%d of "
	       "them with glibc marked inconsistent), %d partial (at most %d allowed), %d failed",
	       n, outcomes[0], inconsistent, outcomes[1], allowed, outcomes[2]);
	if (outcomes[1])
		figure("busy_target: what the partial reports could not see:%s", partials);
	ck_assert_msg(outcomes[2] == 0, "%d of %d attaches to a running, allocating target failed:%s", outcomes[2], n,
		      failures);
	ck_assert_msg(outcomes[1] <= allowed, "%d of %d attaches to a busy target gave partial reports (at most %d):%s",
		      outcomes[1], n, allowed, partials);
}
END_TEST

START_TEST(test_many_threads)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(500, 200, 2000);
	char n_text[16];
	snprintf(n_text, sizeof(n_text), "%d", n);
	const char *args[] = {n_text, "1", NULL}; /* one of them spinning */
	struct md_test_proc p;
	long long t0 = now_ms();
	start_target(&p, "threads", args);
	long long started_ms = now_ms() - t0;
	ck_assert_int_eq(census(p.pid).tasks, n + 1);

	/* Held: every thread is in ptrace stop while memdissect says it is paused. */
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *held[] = {"attach", "--json", "--hold-pause=1000", pid_text, NULL};
	struct md_test_bg r;
	md_test_bg_start(&r, held, NULL);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(60000)), "no \"paused\" on stderr: %s", r.err);
	struct census c = wait_all_stopped(p.pid, 1000);
	ck_assert_msg(c.tasks == n + 1 && c.stopped == n + 1, "while paused: %d of %d threads stopped", c.stopped,
		      c.tasks);
	int status = md_test_bg_finish(&r, slow(60000));
	ck_assert_msg(status == 0, "held attach to %d threads: exit %d, stderr: %s", n + 1, status, tail_of(r.err));
	struct md_node *root = parse_report(r.out, "many threads, held");
	ck_assert_uint_eq(jnum(root, "target.threads"), (uint64_t)(n + 1));
	check_sums(root, "many threads, held");
	md_node_destroy(root);
	md_test_bg_free(&r);
	assert_target_runs(&p, "after the held attach");

	/* Plain attaches: how long does the pause last, and where does it go? */
	static const char *const json[] = {"--json", NULL};
	enum { ROUNDS = 3 };
	double pause[ROUNDS], stop[ROUNDS], detach[ROUNDS], total[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		status = attach_run(p.pid, json, &timing_opts, &r, slow(60000));
		ck_assert_msg(status == 0, "attach to %d threads: exit %d, stderr: %s", n + 1, status, tail_of(r.err));
		root = parse_report(r.out, "many threads");
		ck_assert_uint_eq(jnum(root, "target.threads"), (uint64_t)(n + 1));
		check_sums(root, "many threads");
		pause[i] = jdouble(root, "target.pause_ms");
		total[i] = jdouble(root, "target.total_ms");
		stop[i] = phase_ms(r.err, "stop threads");
		detach[i] = phase_ms(r.err, "detach");
		md_node_destroy(root);
		md_test_bg_free(&r);
		c = census(p.pid);
		ck_assert_msg(c.tasks == n + 1, "the target has %d threads after the attach, not %d", c.tasks, n + 1);
		assert_target_runs(&p, "after a plain attach");
	}
	qsort(pause, ROUNDS, sizeof(double), cmp_double);
	qsort(stop, ROUNDS, sizeof(double), cmp_double);
	qsort(detach, ROUNDS, sizeof(double), cmp_double);
	qsort(total, ROUNDS, sizeof(double), cmp_double);
	figure("threads: %d threads (started in %lld ms): pause %.1f / %.1f / %.1f ms (min/median/max of %d), of which "
	       "stopping %.1f ms and detaching %.1f ms (median); whole attach %.0f ms (median)",
	       n + 1, started_ms, pause[0], pause[ROUNDS / 2], pause[ROUNDS - 1], ROUNDS, stop[ROUNDS / 2],
	       detach[ROUNDS / 2], total[ROUNDS / 2]);
	/* A generous bound: this is about not degrading quadratically, not about speed. */
	ck_assert_msg(pause[ROUNDS / 2] < slow(n * 5), "the pause for %d threads is %.1f ms (median)", n + 1,
		      pause[ROUNDS / 2]);
	md_test_proc_stop(&p);
}
END_TEST

static unsigned long long storm_created(struct md_test_proc *p)
{
	char *line = ask(p, "count", "created ");
	unsigned long long v = strtoull(line + 8, NULL, 10);
	free(line);
	return v;
}

START_TEST(test_thread_storm_series)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(9, 4, 45);
	rng_seed("thread_storm_series");
	struct md_test_proc p;
	static const char *const storm_args[] = {"6", NULL};
	start_target(&p, "thread_storm", storm_args);
	unsigned long long max_live = 0;
	ck_assert(md_test_truth_u64(&p, "max_live", &max_live));
	unsigned long long created_before = storm_created(&p);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *args[] = {"attach", "--json", pid_text, NULL};
	int complete = 0, partial = 0, killed = 0;
	uint64_t min_threads = UINT64_MAX, max_threads = 0;
	double worst_pause = 0;
	for (int i = 0; i < n; i++) {
		struct md_test_bg r;
		md_test_bg_start(&r, args, NULL);
		int status;
		if (i % 3 == 2) {
			/* Every third one dies at a random moment. */
			sleep_ms((int)rng_below(400));
			kill(r.pid, SIGKILL);
			status = md_test_bg_finish(&r, slow(30000));
			killed++;
			if (status == 0 || status == 10) /* it was faster than the kill */
				killed--;
		} else {
			status = md_test_bg_finish(&r, slow(30000));
			ck_assert_msg(status == 0 || status == 10, "attach %d to the storm: exit %d, stderr: %s", i, status,
				      tail_of(r.err));
		}
		if (status == 0 || status == 10) {
			struct md_node *root = parse_report(r.out, "thread storm");
			check_sums(root, "thread storm");
			uint64_t threads = jnum(root, "target.threads");
			ck_assert_msg(threads >= 7 && threads <= 7 + 2 * max_live,
				      "the storm has main + 6 spawners + at most %llu workers; the report says %llu threads",
				      max_live, (unsigned long long)threads);
			if (threads < min_threads)
				min_threads = threads;
			if (threads > max_threads)
				max_threads = threads;
			double pause = jdouble(root, "target.pause_ms");
			if (pause > worst_pause)
				worst_pause = pause;
			status == 0 ? complete++ : partial++;
			md_node_destroy(root);
		}
		md_test_bg_free(&r);
		assert_target_runs(&p, "thread storm after an attach");
	}
	unsigned long long created_after = storm_created(&p);
	ck_assert_msg(created_after > created_before, "the storm stopped");
	sleep_ms(100);
	ck_assert_msg(storm_created(&p) > created_after, "the storm does not go on after the attaches");
	figure("thread_storm: %d attaches to a storm of 6 spawners (%llu threads created meanwhile): %d complete, %d partial "
	       "(caught inside malloc), %d SIGKILLed mid-attach; %llu to %llu threads seen; worst pause %.1f ms; "
	       "never left stopped",
	       n, created_after - created_before, complete, partial, killed, (unsigned long long)min_threads,
	       (unsigned long long)max_threads, worst_pause);
	md_test_proc_stop(&p);
}
END_TEST

/* The path of an executable found in $PATH, or NULL. */
static const char *find_in_path(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");
		snprintf(buf, len, "%.*s/%s", (int)l, path, name);
		if (access(buf, X_OK) == 0)
			return buf;
		path += l;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* Whether text holds the decimal number n not as part of a longer number. */
static bool mentions_number(const char *text, long n)
{
	char num[24];
	int len = snprintf(num, sizeof(num), "%ld", n);
	for (const char *hit = text; (hit = strstr(hit, num)); hit++) {
		bool left = hit == text || hit[-1] < '0' || hit[-1] > '9';
		bool right = hit[len] < '0' || hit[len] > '9';
		if (left && right)
			return true;
	}
	return false;
}

/* strace -p tid, once it really traces tid. */
static pid_t start_strace(const char *strace, pid_t pid, pid_t tid)
{
	char tid_text[24];
	snprintf(tid_text, sizeof(tid_text), "%d", (int)tid);
	pid_t s = fork();
	ck_assert(s >= 0);
	if (s == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(strace, "strace", "-q", "-o", "/dev/null", "-p", tid_text, (char *)NULL);
		_exit(127);
	}
	long long deadline = now_ms() + 10000;
	while (tracer_of(pid, tid) != s && now_ms() < deadline)
		sleep_ms(10);
	ck_assert_msg(tracer_of(pid, tid) == s, "strace (pid %d) did not start tracing %d", (int)s, (int)tid);
	return s;
}

static void stop_strace(pid_t s, pid_t pid, pid_t tid)
{
	kill(s, SIGTERM); /* strace detaches cleanly on SIGTERM */
	while (waitpid(s, NULL, 0) < 0 && errno == EINTR)
		;
	long long deadline = now_ms() + 5000;
	while (tracer_of(pid, tid) != 0 && now_ms() < deadline)
		sleep_ms(10);
}

/* The highest thread id of pid: a thread that is not the leader. */
static pid_t last_thread(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	ck_assert(d != NULL);
	pid_t last = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t t = (pid_t)atoi(de->d_name);
		if (t > last)
			last = t;
	}
	closedir(d);
	return last;
}

/* strace traces tid (the process leader or one thread of a 5-thread target): memdissect must
 * refuse with exit 4, naming strace and its pid, leave every thread running, and work once
 * strace has gone. */
static void traced_by_strace(bool one_thread)
{
	char buf[PATH_MAX];
	const char *strace = find_in_path("strace", buf, sizeof(buf));
	if (!strace) {
		MD_SKIP("strace is not installed (scripts/deps.sh installs it)");
	}
	struct md_test_proc p;
	static const char *const threads_args[] = {"4", NULL};
	start_target(&p, "threads", threads_args);
	pid_t tid = one_thread ? last_thread(p.pid) : p.pid;
	pid_t s = start_strace(strace, p.pid, tid);
	for (int json = 0; json < 2; json++) {
		static const char *const json_opt[] = {"--json", NULL};
		struct md_test_bg r;
		int status = attach_run(p.pid, json ? json_opt : NULL, NULL, &r, slow(30000));
		char what[128];
		snprintf(what, sizeof(what), "attach to %d while strace (pid %d) traces %s %d", (int)p.pid, (int)s,
			 one_thread ? "only its thread" : "the process", (int)tid);
		ck_assert_msg(status == 4, "%s: want exit 4, got %d; stderr: %s", what, status, tail_of(r.err));
		assert_one_error_line(r.err, what);
		/* Threads memdissect seized before meeting strace's must run again. */
		long long waited;
		struct census c = wait_running(p.pid, 2000, &waited);
		ck_assert_msg(c.stopped == 0, "%s: %d of %d threads left stopped", what, c.stopped, c.tasks);
		ck_assert_msg(mentions_number(r.err, s) && strstr(r.err, "strace"),
			      "%s: the refusal does not name strace and its pid %d: %s", what, (int)s, tail_of(r.err));
		md_test_bg_free(&r);
	}
	stop_strace(s, p.pid, tid);
	ck_assert_msg(tracer_of(p.pid, tid) == 0, "strace did not let go of %d", (int)tid);
	static const char *const json_opt[] = {"--json", NULL};
	struct md_test_bg r;
	int status = attach_run(p.pid, json_opt, NULL, &r, slow(30000));
	ck_assert_msg(status == 0, "attach after strace left: exit %d, stderr: %s", status, tail_of(r.err));
	struct md_node *root = parse_report(r.out, "after strace");
	check_sums(root, "after strace");
	md_node_destroy(root);
	md_test_bg_free(&r);
	assert_target_runs(&p, "after strace and memdissect");
	md_test_proc_stop(&p);
	figure("strace: %s: memdissect refuses with exit 4 naming strace and its pid; no thread left stopped; attaches "
	       "once strace has gone",
	       one_thread ? "strace -p TID on one thread of five" : "strace -p PID");
}

START_TEST(test_traced_by_strace)
{
	SKIP_WITHOUT_PTRACE();
	traced_by_strace(false);
}
END_TEST

START_TEST(test_thread_traced_by_strace)
{
	SKIP_WITHOUT_PTRACE();
	traced_by_strace(true);
}
END_TEST

/* ---- memory pressure in a cgroup ----------------------------------------------------------- */

/* The cgroup of this test run: created by the test, removed by it or by the fixture. */
static pid_t cgroup_owner;
static char cgroup_dir[PATH_MAX];
static bool cgroup_v2;

static void cgroup_setup(void)
{
	cgroup_owner = getpid();
	cgroup_dir[0] = 0;
}

/* Kills whatever is left in the test cgroup and removes it. Safe when it does not exist. */
static void cgroup_remove(const char *dir)
{
	if (!dir[0])
		return;
	char path[PATH_MAX + 32];
	long long deadline = now_ms() + 5000;
	while (now_ms() < deadline) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
		char *procs = slurp(path);
		for (char *line = procs; line && *line;) {
			pid_t pid = (pid_t)atoi(line);
			if (pid > 0)
				kill(pid, SIGKILL);
			char *nl = strchr(line, '\n');
			line = nl ? nl + 1 : NULL;
		}
		free(procs);
		sleep_ms(20);
	}
	fprintf(stderr, "could not remove the test cgroup %s: %s\n", dir, strerror(errno));
}

/* The file the pressure target maps and its helper streams: on a disk, whose page cache can be
 * reclaimed (on tmpfs, without swap, it could not); named after the runner like the cgroup. */
static void pressure_data_path(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct statfs sfs;
	if (statfs(tmp, &sfs) == 0 && (unsigned long)sfs.f_type == TMPFS_MAGIC_NUMBER)
		tmp = ".";
	snprintf(buf, len, "%s/md-pressure-%d.dat", tmp, (int)cgroup_owner);
}

static void cgroup_teardown(void)
{
	char data[PATH_MAX];
	pressure_data_path(data, sizeof(data));
	unlink(data);
	/* After a failed test: the test process that made it is gone; the name is known. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory/md-hardening-%d", (int)cgroup_owner);
	cgroup_remove(dir);
	snprintf(dir, sizeof(dir), "/sys/fs/cgroup/md-hardening-%d", (int)cgroup_owner);
	cgroup_remove(dir);
}

/* Creates the test cgroup with a memory limit; NULL on success, or why it cannot be done. */
static const char *cgroup_create(uint64_t limit)
{
	static char why[PATH_MAX + 128];
	char limit_text[32];
	snprintf(limit_text, sizeof(limit_text), "%llu", (unsigned long long)limit);
	if (access("/sys/fs/cgroup/memory/memory.limit_in_bytes", F_OK) == 0) {
		cgroup_v2 = false;
		snprintf(cgroup_dir, sizeof(cgroup_dir), "/sys/fs/cgroup/memory/md-hardening-%d", (int)cgroup_owner);
	} else {
		char *controllers = slurp("/sys/fs/cgroup/cgroup.controllers");
		bool has_memory = controllers && strstr(controllers, "memory");
		free(controllers);
		if (!has_memory)
			return "no cgroup v1 memory controller at /sys/fs/cgroup/memory and no cgroup v2 memory controller";
		cgroup_v2 = true;
		snprintf(cgroup_dir, sizeof(cgroup_dir), "/sys/fs/cgroup/md-hardening-%d", (int)cgroup_owner);
	}
	if (mkdir(cgroup_dir, 0755) != 0 && errno != EEXIST) {
		snprintf(why, sizeof(why), "cannot create the cgroup %s: %s", cgroup_dir, strerror(errno));
		cgroup_dir[0] = 0;
		return why;
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", cgroup_dir, cgroup_v2 ? "memory.max" : "memory.limit_in_bytes");
	if (!write_file(path, limit_text)) {
		snprintf(why, sizeof(why), "cannot set the memory limit in %s: %s", path, strerror(errno));
		cgroup_remove(cgroup_dir);
		cgroup_dir[0] = 0;
		return why;
	}
	return NULL;
}

/* How many times the cgroup hit its limit so far. */
static uint64_t cgroup_limit_hits(void)
{
	char path[PATH_MAX + 32];
	if (cgroup_v2) {
		snprintf(path, sizeof(path), "%s/memory.events", cgroup_dir);
		return file_field(path, "max");
	}
	snprintf(path, sizeof(path), "%s/memory.failcnt", cgroup_dir);
	return file_number(path);
}

static uint64_t cgroup_usage(void)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", cgroup_dir, cgroup_v2 ? "memory.current" : "memory.usage_in_bytes");
	return file_number(path);
}

START_TEST(test_memory_pressure_cgroup)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(10, 4, 40);
	const uint64_t limit = 64ULL << 20;
	const char *why = cgroup_create(limit);
	if (why) {
		MD_SKIP("%s", why);
	}
	char data[PATH_MAX];
	pressure_data_path(data, sizeof(data));
	int fd = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd >= 0 && ftruncate(fd, 96 << 20) == 0, "cannot create %s: %s", data, strerror(errno));
	close(fd);

	struct md_test_proc p;
	start_target(&p, "hard_pressure", NULL);
	char path[PATH_MAX + 32], pid_text[24];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup_dir);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	ck_assert_msg(write_file(path, pid_text), "cannot move %d into %s: %s", (int)p.pid, cgroup_dir, strerror(errno));
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "press 40 %s", data);
	char *line = ask(&p, cmd, "press");
	ck_assert_msg(strncmp(line, "pressing ", 9) == 0, "the target cannot press: %s", line);
	free(line);
	long long deadline = now_ms() + 15000;
	while (cgroup_limit_hits() == 0 && now_ms() < deadline)
		sleep_ms(50);
	uint64_t hits_start = cgroup_limit_hits();
	ck_assert_msg(hits_start > 0 && hits_start != UINT64_MAX, "the target does not reach its cgroup's limit (usage %llu of %llu)",
		      (unsigned long long)cgroup_usage(), (unsigned long long)limit);
	sleep_ms(1000); /* its page cache and mapped file fill the limit: steady reclaim */

	const char *cg_name = strrchr(cgroup_dir, '/');
	static const char *const json[] = {"--json", NULL};
	double worst_pause = 0;
	uint64_t hits_during = 0;
	int complete = 0, n_broken = 0;
	static char broken[2048];
	size_t broken_len = 0;
	broken[0] = 0;
	for (int i = 0; i < n; i++) {
		uint64_t hits_before = cgroup_limit_hits();
		struct md_test_bg r;
		int status = attach_run(p.pid, json, NULL, &r, slow(60000));
		uint64_t hits_after = cgroup_limit_hits();
		hits_during += hits_after - hits_before;
		ck_assert_msg(status == 0, "attach %d under memory pressure: exit %d, stderr: %s", i, status, tail_of(r.err));
		struct md_node *root = parse_report(r.out, "under pressure");
		const char *cg_path = md_node_get_string(md_node_path(root, "cgroup.path"));
		ck_assert_msg(cg_path && strlen(cg_path) >= strlen(cg_name) &&
				      strcmp(cg_path + strlen(cg_path) - strlen(cg_name), cg_name) == 0,
			      "the report's cgroup is %s, not %s", cg_path ? cg_path : "(none)", cgroup_dir);
		ck_assert_uint_eq(jnum(root, "cgroup.limit_bytes"), limit);
		char what[64], sums_why[512];
		snprintf(what, sizeof(what), "attach %d under memory pressure", i);
		if (!sums_hold(root, what, sums_why, sizeof(sums_why))) {
			/* Collected, so that the figures of the whole series are still printed. */
			broken_len += (size_t)snprintf(broken + broken_len, sizeof(broken) - broken_len, "\n  %s", sums_why);
			if (broken_len >= sizeof(broken))
				broken_len = sizeof(broken) - 1;
			n_broken++;
		}
		double pause = jdouble(root, "target.pause_ms");
		if (pause > worst_pause)
			worst_pause = pause;
		complete++;
		md_node_destroy(root);
		md_test_bg_free(&r);
		assert_target_runs(&p, what);
	}
	line = ask(&p, "count", "passes ");
	unsigned long passes_before = strtoul(line + 7, NULL, 10);
	free(line);
	/* One pass through 96 MiB against the limit can take seconds on a loaded machine. */
	unsigned long passes_now = passes_before;
	for (long long until = now_ms() + 10000; passes_now <= passes_before && now_ms() < until;) {
		sleep_ms(200);
		line = ask(&p, "count", "passes ");
		passes_now = strtoul(line + 7, NULL, 10);
		free(line);
	}
	ck_assert_msg(passes_now > passes_before, "the target stopped pressing after the attaches (%lu passes, 10 s)",
		      passes_now);
	figure("cgroup: %d attaches to a target pressing against a %llu MiB cgroup v%d limit (limit hit %llu times during the "
	       "attaches, %llu in all): %d complete, %d of them with classes that do not sum to RSS, worst pause %.1f ms",
	       n, (unsigned long long)(limit >> 20), cgroup_v2 ? 2 : 1, (unsigned long long)hits_during,
	       (unsigned long long)cgroup_limit_hits(), complete, n_broken, worst_pause);
	md_test_proc_stop(&p);
	cgroup_remove(cgroup_dir);
	unlink(data);
	ck_assert_msg(n_broken == 0, "%d of %d reports under memory pressure break the class-sum invariant:%s", n_broken, n,
		      broken);
}
END_TEST

/* ==== load ================================================================================== */

/* Sends signals to the target from another thread at a chosen moment of each attach. */
struct sender {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pid_t target;
	long delay_us;   /* the job: wait this long, then send; -1 none */
	bool done, quit;
	int sent_usr1, sent_rtmin;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->delay_us < 0 && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		long delay = s->delay_us;
		pthread_mutex_unlock(&s->mu);
		sleep_us(delay);
		int usr1 = kill(s->target, SIGUSR1) == 0;
		int rtmin = (kill(s->target, SIGRTMIN) == 0) + (kill(s->target, SIGRTMIN) == 0);
		pthread_mutex_lock(&s->mu);
		s->sent_usr1 += usr1;
		s->sent_rtmin += rtmin;
		s->delay_us = -1;
		s->done = true;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void sigload_counts(struct md_test_proc *p, int *usr1, int *rtmin)
{
	char *line = ask(p, "count", "count ");
	ck_assert_msg(sscanf(line, "count usr1 %d rtmin %d", usr1, rtmin) == 2, "bad count line: %s", line);
	free(line);
}

/* Heap bytes in use by this process (malloc's own figure; chunks cached in a thread's tcache
 * count as in use, hence the attaches run in threads of their own: see attach_in_thread). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* One in-process attach, run in a thread that ends with it: its tcache goes back to the arena
 * when it exits, so what stays in use afterwards is what the attach really kept. */
struct one_attach {
	pid_t pid;
	FILE *sink;
	char error[512];
	bool partial, no_allocator;
	double pause_ms;
};

static void *attach_thread(void *arg)
{
	struct one_attach *oa = arg;
	struct md_analyze_options opts = {0};
	struct md_analysis a;
	struct md_error *err = md_analyze_live(oa->pid, &opts, &a);
	if (!err)
		err = md_render_json(&a.report, oa->sink);
	if (err) {
		snprintf(oa->error, sizeof(oa->error), "%s", err->message ? err->message : "?");
		md_error_destroy(err);
	} else {
		oa->partial = a.report.partial;
		oa->no_allocator = !a.report.allocators || md_node_count(a.report.allocators) == 0;
		oa->pause_ms = a.report.target.pause_ms;
	}
	md_analysis_deinit(&a);
	return NULL;
}

START_TEST(test_consecutive_attaches)
{
	SKIP_WITHOUT_PTRACE();
	int n = count_for(100, 25, 1000);
	int warmup = n >= 100 ? 10 : 3;
	rng_seed("consecutive_attaches");
	struct md_test_proc p;
	static const char *const sigload_args[] = {"3", NULL};
	start_target(&p, "hard_sigload", sigload_args);
	FILE *sink = fopen("/dev/null", "w");
	ck_assert(sink != NULL);

	struct sender s = {.target = p.pid, .delay_us = -1};
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	ck_assert(pthread_create(&s.thread, NULL, sender_main, &s) == 0);

	int fds_base = 0, fds_max = 0, fds_end = 0;
	uint64_t rss_base = 0, rss_end = 0, target_rss_base = 0, target_rss_end = 0, target_rss_max = 0;
	size_t heap_base = 0, heap_end = 0;
	double attach_ms_sum = 0, attach_ms_max = 0, pause_max = 0;
	double attach_estimate_ms = 300;
	int partial = 0;
	for (int i = 0; i < n; i++) {
		/* A SIGUSR1 and two SIGRTMIN at a random moment of the attach (or just after it). */
		pthread_mutex_lock(&s.mu);
		s.done = false;
		s.delay_us = rng_below((long)(attach_estimate_ms * 1100));
		pthread_cond_broadcast(&s.cv);
		pthread_mutex_unlock(&s.mu);

		struct one_attach oa = {.pid = p.pid, .sink = sink};
		pthread_t worker;
		double t0 = now_ms_f();
		ck_assert(pthread_create(&worker, NULL, attach_thread, &oa) == 0);
		pthread_join(worker, NULL);
		double took = now_ms_f() - t0;
		ck_assert_msg(!oa.error[0], "attach %d: %s", i, oa.error);
		ck_assert_msg(!oa.no_allocator,
			      "attach %d: no allocator analysed (are the plugins found? set $MEMDISSECT_PLUGIN_PATH)", i);
		partial += oa.partial;
		if (oa.pause_ms > pause_max)
			pause_max = oa.pause_ms;
		attach_ms_sum += took;
		if (took > attach_ms_max)
			attach_ms_max = took;
		attach_estimate_ms = attach_ms_sum / (i + 1);

		pthread_mutex_lock(&s.mu);
		while (!s.done)
			pthread_cond_wait(&s.cv, &s.mu);
		int want_usr1 = s.sent_usr1, want_rtmin = s.sent_rtmin;
		pthread_mutex_unlock(&s.mu);
		/* Every signal is counted before the next SIGUSR1 (two pending ones would merge). */
		int usr1 = -1, rtmin = -1;
		long long deadline = now_ms() + 3000;
		for (;;) {
			sigload_counts(&p, &usr1, &rtmin);
			if ((usr1 == want_usr1 && rtmin == want_rtmin) || now_ms() >= deadline)
				break;
			sleep_ms(2);
		}
		ck_assert_msg(usr1 == want_usr1 && rtmin == want_rtmin,
			      "after attach %d: sent %d SIGUSR1 and %d SIGRTMIN, the target counted %d and %d", i, want_usr1,
			      want_rtmin, usr1, rtmin);
		struct census c = census(p.pid);
		ck_assert_msg(c.stopped == 0 || wait_running(p.pid, 2000, NULL).stopped == 0,
			      "after attach %d: threads left stopped", i);

		int fds = count_fds(getpid());
		uint64_t target_rss = md_test_status_bytes(p.pid, "VmRSS");
		if (i == warmup - 1) {
			fds_base = fds;
			rss_base = md_test_status_bytes(getpid(), "VmRSS");
			heap_base = heap_in_use();
			target_rss_base = target_rss;
		}
		if (i >= warmup && fds > fds_max)
			fds_max = fds;
		if (i >= warmup && target_rss > target_rss_max)
			target_rss_max = target_rss;
	}
	fds_end = count_fds(getpid());
	rss_end = md_test_status_bytes(getpid(), "VmRSS");
	heap_end = heap_in_use();
	target_rss_end = md_test_status_bytes(p.pid, "VmRSS");
	pthread_mutex_lock(&s.mu);
	s.quit = true;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	pthread_join(s.thread, NULL);
	fclose(sink);

	figure("consecutive: %d attaches (in-process md_analyze_live + JSON rendering) to hard_sigload (4 threads): "
	       "%d SIGUSR1 and %d SIGRTMIN sent during them, all counted; %d partial; attach %.0f ms mean, %.0f ms max; "
	       "pause %.1f ms max",
	       n, s.sent_usr1, s.sent_rtmin, partial, attach_ms_sum / n, attach_ms_max, pause_max);
	char heap_text[96];
	if (md_test_sanitized()) /* ASan's allocator: mallinfo says nothing, quarantine grows RSS */
		snprintf(heap_text, sizeof(heap_text), "heap and VmRSS not measured under ASan");
	else
		snprintf(heap_text, sizeof(heap_text), "heap in use %zu -> %zu bytes, VmRSS %llu -> %llu KiB", heap_base,
			 heap_end, (unsigned long long)rss_base >> 10, (unsigned long long)rss_end >> 10);
	figure("consecutive: memdissect after %d warm-up attaches -> after %d: fds %d -> %d (max %d), %s; target VmRSS "
	       "%llu -> %llu KiB (max %llu)",
	       warmup, n, fds_base, fds_end, fds_max, heap_text, (unsigned long long)target_rss_base >> 10,
	       (unsigned long long)target_rss_end >> 10, (unsigned long long)target_rss_max >> 10);
	ck_assert_msg(fds_end == fds_base && fds_max == fds_base, "memdissect's descriptors grew: %d after warm-up, %d max, %d at the end",
		      fds_base, fds_max, fds_end);
	ck_assert_msg(target_rss_end <= target_rss_base + 8192,
		      "the target's VmRSS grew from %llu to %llu over %d attaches", (unsigned long long)target_rss_base,
		      (unsigned long long)target_rss_end, n - warmup);
	if (!md_test_sanitized()) {
		/* ASan keeps freed memory in quarantine and has its own allocator: its leak checker
		 * covers that build instead. */
		ck_assert_msg(heap_end <= heap_base + 1024, "memdissect's heap grew by %zd bytes over %d attaches",
			      (ssize_t)(heap_end - heap_base), n - warmup);
		ck_assert_msg(rss_end <= rss_base + (2 << 20), "memdissect's VmRSS grew by %llu KiB over %d attaches",
			      (unsigned long long)(rss_end - rss_base) >> 10, n - warmup);
	}
	assert_target_runs(&p, "after the series");
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_valgrind_clean)
{
	SKIP_WITHOUT_PTRACE();
	if (md_test_sanitized()) {
		MD_SKIP_OPTIONAL("the ASan build (LeakSanitizer checks every run of it instead)");
	}
	char buf[PATH_MAX];
	const char *valgrind = find_in_path("valgrind", buf, sizeof(buf));
	if (!valgrind) {
		MD_SKIP("valgrind is not installed (scripts/deps.sh installs it)");
	}
	int rounds = count_for(1, 1, 5);
	struct md_test_proc idle, churn;
	static const char *const sigload_args[] = {"3", NULL};
	static const char *const churn_args[] = {"2", NULL};
	start_target(&idle, "hard_sigload", sigload_args);
	start_target(&churn, "hard_churn", churn_args);
	const struct md_test_bg_options vg = {.exe = valgrind};
	int runs = 0;
	for (int i = 0; i < rounds; i++) {
		/* An idle target, one inside malloc (re-stops), and a refusal (exit 4). */
		for (int kind = 0; kind < 3; kind++) {
			pid_t target = kind == 1 ? churn.pid : idle.pid;
			if (kind == 2)
				ck_assert(ptrace(PTRACE_SEIZE, idle.pid, 0, 0) == 0);
			char pid_text[24];
			snprintf(pid_text, sizeof(pid_text), "%d", (int)target);
			const char *args[] = {"--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
					      "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99",
					      "--track-fds=no", "-q", md_test_memdissect(), "attach", "--json", pid_text, NULL};
			struct md_test_bg r;
			md_test_bg_start(&r, args, &vg);
			int status = md_test_bg_finish(&r, 120000);
			int want = kind == 2 ? 4 : 0;
			ck_assert_msg(status == want || (kind == 1 && status == 10),
				      "valgrind memdissect attach %d: want exit %d, got %d (99: valgrind found errors); stderr:\n%s",
				      (int)target, want, status, tail_of(r.err));
			ck_assert_msg(!strstr(r.err, "definitely lost") && !strstr(r.err, "Invalid read") &&
					      !strstr(r.err, "uninitialised"),
				      "valgrind reports on memdissect attach %d:\n%s", (int)target, tail_of(r.err));
			md_test_bg_free(&r);
			runs++;
			if (kind == 2) {
				ck_assert(ptrace(PTRACE_INTERRUPT, idle.pid, 0, 0) == 0);
				int ws;
				ck_assert(waitpid(idle.pid, &ws, __WALL) == idle.pid);
				ck_assert(ptrace(PTRACE_DETACH, idle.pid, 0, 0) == 0);
			}
		}
	}
	figure("valgrind: %d runs of memdissect attach under valgrind --leak-check=full (idle target, target inside malloc, "
	       "refused attach): no error, no leak",
	       runs);
	assert_target_runs(&idle, "after valgrind");
	assert_target_runs(&churn, "after valgrind");
	md_test_proc_stop(&idle);
	md_test_proc_stop(&churn);
}
END_TEST

/* ==== read-only ============================================================================= */

struct memsum {
	char rw[17], code[17];
	unsigned long long bytes, maps;
};

static struct memsum memsum(struct md_test_proc *p)
{
	char *line = ask(p, "hash", "hash ");
	struct memsum m;
	ck_assert_msg(sscanf(line, "hash rw %16s code %16s bytes %llu maps %llu", m.rw, m.code, &m.bytes, &m.maps) == 4,
		      "bad hash line: %s", line);
	free(line);
	return m;
}

START_TEST(test_memory_unchanged)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "hard_memsum", NULL);
	struct memsum first = memsum(&p), again = memsum(&p);
	ck_assert_msg(strcmp(first.rw, again.rw) == 0 && strcmp(first.code, again.code) == 0,
		      "the target's checksum is not stable without any attach: %s/%s then %s/%s", first.rw, first.code,
		      again.rw, again.code);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	static const char *const variants[][4] = {
		{"--json", NULL}, {"--no-color", NULL}, {"--json", "--hold-pause=200", NULL}, {"--map", NULL}};
	int attaches = 0;
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		struct md_test_bg r;
		int status = attach_run(p.pid, variants[v], NULL, &r, slow(30000));
		ck_assert_msg(status == 0, "attach %s to hard_memsum: exit %d, stderr: %s", variants[v][0], status, tail_of(r.err));
		md_test_bg_free(&r);
		attaches++;
		struct memsum after = memsum(&p);
		ck_assert_msg(strcmp(after.rw, first.rw) == 0,
			      "attach %s changed the target's writable memory: checksum %s before, %s after", variants[v][0],
			      first.rw, after.rw);
		ck_assert_msg(strcmp(after.code, first.code) == 0,
			      "attach %s changed the target's read-only mappings: checksum %s before, %s after",
			      variants[v][0], first.code, after.code);
	}
	/* The checksum does see a one-byte write. */
	free(ask(&p, "poke", "poked"));
	struct memsum poked = memsum(&p);
	ck_assert_msg(strcmp(poked.rw, first.rw) != 0, "a one-byte write to the heap went unnoticed by the checksum");
	figure("read_only: %d attaches (json, text, held 200 ms, map) to hard_memsum: checksums of %llu bytes in %llu "
	       "readable private mappings identical before and after; a one-byte write changes it",
	       attaches, first.bytes, first.maps);
	md_test_proc_stop(&p);
}
END_TEST

/* Present pages and exclusively mapped ones in pid's anonymous private mappings (pagemap). */
static void exclusive_census(pid_t pid, uint64_t *present_ret, uint64_t *exclusive_ret)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	char *maps = slurp(path);
	ck_assert(maps != NULL);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert(fd >= 0);
	uint64_t present = 0, exclusive = 0;
	static uint64_t entries[4096];
	for (char *line = maps; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long long s, e;
		char perms[8];
		if (sscanf(line, "%llx-%llx %7s", &s, &e, perms) == 3 && perms[3] == 'p' && !strstr(line, "[vsyscall]")) {
			for (uint64_t page = s / 4096; page < e / 4096;) {
				uint64_t want = e / 4096 - page > 4096 ? 4096 : e / 4096 - page;
				ssize_t got = pread(fd, entries, want * 8, (off_t)(page * 8));
				if (got <= 0)
					break;
				for (ssize_t k = 0; k < got / 8; k++) {
					uint64_t v = entries[k];
					if (!(v >> 63) || ((v >> 61) & 1)) /* not present, or a file page */
						continue;
					present++;
					exclusive += (v >> 56) & 1;
				}
				page += (uint64_t)got / 8;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	close(fd);
	free(maps);
	*present_ret = present;
	*exclusive_ret = exclusive;
}

/* An attach must not change who shares what: reading the target may not break copy-on-write
 * sharing with its parent or children (a forked server's workers share most of their heap). */
START_TEST(test_cow_sharing_unchanged)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "hard_privs", NULL); /* forks a child that shares every page */
	uint64_t present0, excl0;
	exclusive_census(p.pid, &present0, &excl0);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)p.pid);
	uint64_t private0 = file_field(path, "Private_Dirty") + file_field(path, "Private_Clean");
	static const char *const json[] = {"--json", NULL};
	struct md_test_bg r;
	int status = attach_run(p.pid, json, NULL, &r, slow(30000));
	ck_assert_msg(status == 0, "attach to hard_privs: exit %d, stderr: %s", status, tail_of(r.err));
	md_test_bg_free(&r);
	assert_target_runs(&p, "after the attach");
	uint64_t present1, excl1;
	exclusive_census(p.pid, &present1, &excl1);
	uint64_t private1 = file_field(path, "Private_Dirty") + file_field(path, "Private_Clean");
	figure("cow: hard_privs and its forked child share its anonymous pages: before an attach %llu present, %llu exclusive, "
	       "USS (Private_Clean + Private_Dirty) %llu KiB; after: %llu present, %llu exclusive, USS %llu KiB",
	       (unsigned long long)present0, (unsigned long long)excl0, (unsigned long long)private0 >> 10,
	       (unsigned long long)present1, (unsigned long long)excl1, (unsigned long long)private1 >> 10);
	ck_assert_msg(excl1 == excl0 && private1 == private0,
		      "the attach un-shared %lld copy-on-write pages of the target (exclusive anonymous pages %llu -> %llu, "
		      "USS %llu -> %llu KiB): reading them gave the target private copies",
		      (long long)(excl1 - excl0), (unsigned long long)excl0, (unsigned long long)excl1,
		      (unsigned long long)private0 >> 10, (unsigned long long)private1 >> 10);
	md_test_proc_stop(&p);
}
END_TEST

/* What memdissect measures must not be changed by memdissect itself. A file page mapped by the
 * target alone is exclusive in its pagemap and belongs to class "file"; if memdissect maps the
 * same file (libelf reading the target's executable), the page is mapped twice during the
 * capture and would come out as "shared". The target runs from a fresh copy of its executable,
 * which no other process maps. */
START_TEST(test_own_file_pages_not_shared)
{
	SKIP_WITHOUT_PTRACE();
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/md-hard-%d-XXXXXX", (int)scratch_owner);
	ck_assert(mkdtemp(dir) != NULL);
	char from[PATH_MAX], exe[PATH_MAX];
	ck_assert(md_test_target_path("hard_sigload", from, sizeof(from)));
	snprintf(exe, sizeof(exe), "%s/hard_sigload", dir);
	ck_assert_msg(copy_file(from, exe, 0755), "cannot copy %s", from);
	/* md_test_proc_start runs $MD_TARGETS/name: point it at the copy for this one start. */
	char *saved = getenv("MD_TARGETS") ? strdup(getenv("MD_TARGETS")) : NULL;
	setenv("MD_TARGETS", dir, 1);
	struct md_test_proc p;
	static const char *const args[] = {"1", NULL};
	start_target(&p, "hard_sigload", args);
	if (saved) {
		setenv("MD_TARGETS", saved, 1);
		free(saved);
	} else {
		unsetenv("MD_TARGETS");
	}
	/* The premise: its executable's resident file pages are exclusively its own. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)p.pid);
	char *maps = slurp(path);
	ck_assert(maps != NULL);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)p.pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert(fd >= 0);
	uint64_t file_pages = 0, exclusive = 0;
	for (char *line = maps; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long long s, e;
		if (strstr(line, exe) && sscanf(line, "%llx-%llx", &s, &e) == 2) {
			for (uint64_t page = s / 4096; page < e / 4096; page++) {
				uint64_t v;
				ck_assert(pread(fd, &v, 8, (off_t)(page * 8)) == 8);
				if ((v >> 63) && ((v >> 61) & 1)) {
					file_pages++;
					exclusive += (v >> 56) & 1;
				}
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	close(fd);
	free(maps);
	ck_assert_msg(file_pages > 0 && exclusive == file_pages,
		      "premise: %llu resident file pages of %s, %llu of them exclusive", (unsigned long long)file_pages, exe,
		      (unsigned long long)exclusive);

	static const char *const json[] = {"--json", NULL};
	struct md_test_bg r;
	int status = attach_run(p.pid, json, NULL, &r, slow(30000));
	ck_assert_msg(status == 0, "attach: exit %d, stderr: %s", status, tail_of(r.err));
	struct md_node *root = parse_report(r.out, "own file pages");
	check_sums(root, "own file pages");
	uint64_t as_file = 0, as_shared = 0;
	struct md_node *regions = md_node_get(root, "regions");
	for (size_t i = 0; i < md_node_count(regions); i++) {
		struct md_node *reg = md_node_at(regions, i);
		const char *rp = md_node_get_string(md_node_get(reg, "path"));
		if (!rp || strcmp(rp, exe) != 0)
			continue;
		as_file += region_class(reg, "file");
		as_shared += region_class(reg, "shared");
	}
	md_node_destroy(root);
	md_test_bg_free(&r);
	figure("observer: %llu resident file pages of an executable only the target maps (all exclusive in its pagemap): "
	       "the report classes %llu bytes as file, %llu bytes as shared",
	       (unsigned long long)file_pages, (unsigned long long)as_file, (unsigned long long)as_shared);
	ck_assert_msg(as_shared == 0,
		      "%llu bytes of %s are reported shared though only the target maps them (memdissect's own mapping of "
		      "the file during the capture?)",
		      (unsigned long long)as_shared, exe);
	assert_target_runs(&p, "after the attach");
	md_test_proc_stop(&p);
	unlink(exe);
	rmdir(dir);
}
END_TEST

/* ---- no write primitive in the source or the binaries -------------------------------------- */

/* The source root: $MD_SRCDIR, else the parent of $MD_TESTDATA's parent (tests/data), else ".". */
static const char *source_root(char *buf, size_t len)
{
	const char *s = getenv("MD_SRCDIR");
	if (s && *s)
		return s;
	const char *data = getenv("MD_TESTDATA");
	if (data && *data) {
		snprintf(buf, len, "%s/../..", data);
		return buf;
	}
	return ".";
}

/* The ptrace requests that only read or stop: anything else in our code would be a write. */
static const char *const allowed_requests[] = {
	"PTRACE_SEIZE", "PTRACE_INTERRUPT", "PTRACE_DETACH", "PTRACE_CONT", "PTRACE_LISTEN",
	"PTRACE_GETREGS", "PTRACE_GETFPREGS", "PTRACE_GETREGSET", "PTRACE_GETSIGINFO", "PTRACE_GETEVENTMSG",
	"PTRACE_PEEKDATA", "PTRACE_PEEKTEXT", "PTRACE_PEEKUSER", "PTRACE_ATTACH",
};
static const char *const forbidden_tokens[] = {
	"PTRACE_POKE", "PTRACE_SETREGS", "PTRACE_SETFPREGS", "PTRACE_SETREGSET", "PTRACE_SETSIGINFO",
	"process_vm_writev", "SYS_ptrace", "__NR_ptrace", "SYS_process_vm", "__NR_process_vm",
};

struct scan {
	int files, ptrace_calls, mem_opens;
	char problems[2048];
	size_t problems_len;
};

static void scan_problem(struct scan *sc, const char *file, int line, const char *what)
{
	sc->problems_len += (size_t)snprintf(sc->problems + sc->problems_len, sizeof(sc->problems) - sc->problems_len,
					     "\n  %s:%d: %s", file, line, what);
	if (sc->problems_len >= sizeof(sc->problems))
		sc->problems_len = sizeof(sc->problems) - 1;
}

/* Scans one source file, comments blanked out (prose may mention POKE): forbidden tokens,
 * every ptrace( call's request, and how /proc/PID/mem is opened. */
static void scan_file(struct scan *sc, const char *path, const char *shown)
{
	char *text = slurp(path);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	sc->files++;
	bool in_comment = false;
	int lineno = 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		lineno++;
		/* Blank out comments so that prose about POKE does not count. */
		for (char *c = line; *c; c++) {
			if (in_comment) {
				if (c[0] == '*' && c[1] == '/') {
					c[0] = c[1] = ' ';
					in_comment = false;
				} else {
					*c = ' ';
				}
			} else if (c[0] == '/' && c[1] == '*') {
				c[0] = c[1] = ' ';
				in_comment = true;
			} else if (c[0] == '/' && c[1] == '/') {
				*c = 0;
				break;
			}
		}
		for (size_t i = 0; i < sizeof(forbidden_tokens) / sizeof(forbidden_tokens[0]); i++) {
			if (strstr(line, forbidden_tokens[i])) {
				char what[128];
				snprintf(what, sizeof(what), "uses %s", forbidden_tokens[i]);
				scan_problem(sc, shown, lineno, what);
			}
		}
		for (char *call = line; (call = strstr(call, "ptrace(")); call += 7) {
			if (call > line && (call[-1] == '_' || (call[-1] >= 'a' && call[-1] <= 'z')))
				continue; /* md_unwind_ptrace( and the like */
			sc->ptrace_calls++;
			char *arg = call + 7;
			while (*arg == ' ')
				arg++;
			bool ok = false;
			for (size_t i = 0; i < sizeof(allowed_requests) / sizeof(allowed_requests[0]); i++) {
				size_t l = strlen(allowed_requests[i]);
				if (strncmp(arg, allowed_requests[i], l) == 0 && (arg[l] == ',' || arg[l] == ' '))
					ok = true;
			}
			if (!ok) {
				char what[160];
				snprintf(what, sizeof(what), "ptrace request not known to be read-only: %.40s", arg);
				scan_problem(sc, shown, lineno, what);
			}
		}
		/* /proc/PID/mem may only be opened for reading. */
		if (strstr(line, "/mem\"")) {
			sc->mem_opens++;
			char *scan_at = line; /* this line first, then the next ones */
			bool found_open = false;
			if (nl)
				*nl = '\n';
			for (int k = 0; k < 7 && scan_at && *scan_at && !found_open; k++) {
				char *next = strchr(scan_at, '\n');
				size_t l = next ? (size_t)(next - scan_at) : strlen(scan_at);
				char one[512];
				snprintf(one, sizeof(one), "%.*s", (int)(l < sizeof(one) - 1 ? l : sizeof(one) - 1), scan_at);
				if (strstr(one, "open(")) {
					found_open = true;
					if (!strstr(one, "O_RDONLY") || strstr(one, "O_RDWR") || strstr(one, "O_WRONLY"))
						scan_problem(sc, shown, lineno, "/proc/PID/mem opened other than O_RDONLY");
				}
				scan_at = next ? next + 1 : NULL;
			}
			if (nl)
				*nl = 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
}

static void scan_dir(struct scan *sc, const char *root, const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	DIR *d = opendir(path);
	ck_assert_msg(d != NULL, "cannot open %s (set $MD_SRCDIR to the source tree)", path);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char sub[PATH_MAX], full[PATH_MAX * 2];
		snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		struct stat st;
		if (stat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			scan_dir(sc, root, sub);
			continue;
		}
		size_t l = strlen(de->d_name);
		if (l > 2 && de->d_name[l - 2] == '.' && (de->d_name[l - 1] == 'c' || de->d_name[l - 1] == 'h'))
			scan_file(sc, full, sub);
	}
	closedir(d);
}

/* The undefined dynamic symbols of an ELF file that write into another process. (pwrite is
 * fine: snapshots write core files with it; /proc/PID/mem is only ever opened read-only, which
 * the source scan checks.) */
static int forbidden_imports(const char *path, char *names, size_t len)
{
	static const char *const bad[] = {"process_vm_writev"};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "cannot open %s", path);
	elf_version(EV_CURRENT);
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	ck_assert_msg(elf != NULL, "%s is not ELF", path);
	int found = 0, dynsyms = 0;
	size_t used = 0;
	for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		size_t count = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		for (size_t i = 0; data && i < count; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(data, (int)i, &sym))
				continue;
			dynsyms++;
			const char *name = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (!name || sym.st_shndx != SHN_UNDEF)
				continue;
			for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
				if (strcmp(name, bad[k]) == 0) {
					found++;
					used += (size_t)snprintf(names + used, used < len ? len - used : 0, " %s", name);
				}
			}
		}
	}
	elf_end(elf);
	close(fd);
	ck_assert_msg(dynsyms > 0, "%s has no dynamic symbols to check", path);
	return found;
}

START_TEST(test_no_write_primitive)
{
	char buf[PATH_MAX];
	const char *root = source_root(buf, sizeof(buf));
	static struct scan sc;
	memset(&sc, 0, sizeof(sc));
	scan_dir(&sc, root, "attach");
	scan_dir(&sc, root, "src");
	scan_dir(&sc, root, "plugins");
	/* The scan must have seen what we know is there, or it proves nothing. */
	ck_assert_msg(sc.files >= 10, "only %d source files found under %s", sc.files, root);
	ck_assert_msg(sc.ptrace_calls >= 5, "only %d ptrace calls found under %s/attach: is the scan broken?",
		      sc.ptrace_calls, root);
	ck_assert_msg(sc.problems_len == 0, "write primitives in memdissect's source:%s", sc.problems);

	/* And in what was built: memdissect and every plugin. */
	char names[512] = "";
	int bad = forbidden_imports(md_test_memdissect(), names, sizeof(names));
	ck_assert_msg(bad == 0, "%s imports%s", md_test_memdissect(), names);
	int plugins = 0;
	const char *dir = getenv("MEMDISSECT_PLUGIN_PATH");
	DIR *d = dir && *dir ? opendir(dir) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 4 || strcmp(de->d_name + l - 3, ".so") != 0)
			continue;
		char so[PATH_MAX * 2];
		snprintf(so, sizeof(so), "%s/%s", dir, de->d_name);
		names[0] = 0;
		bad = forbidden_imports(so, names, sizeof(names));
		ck_assert_msg(bad == 0, "%s imports%s", so, names);
		plugins++;
	}
	if (d)
		closedir(d);
	figure("no_write: %d source files under attach/ src/ plugins/: %d ptrace calls, all read-only requests; "
	       "%d opens of /proc/PID/mem, all O_RDONLY; no POKE/SETREGS/process_vm_writev; memdissect and %d "
	       "plugins do not import process_vm_writev",
	       sc.files, sc.ptrace_calls, sc.mem_opens, plugins);
}
END_TEST

/* ==== privileges ============================================================================ */

/* A directory nobody can use, holding copies of memdissect, its plugins and the named targets. */
struct nobody_dir {
	char dir[64];
	char memdissect[128];
	char plugin_env[160];
};

static void nobody_dir_create(struct nobody_dir *nd, const char *const *targets)
{
	snprintf(nd->dir, sizeof(nd->dir), "/tmp/md-hard-%d-XXXXXX", (int)scratch_owner);
	ck_assert(mkdtemp(nd->dir) != NULL);
	ck_assert(chmod(nd->dir, 0755) == 0);
	snprintf(nd->memdissect, sizeof(nd->memdissect), "%s/memdissect", nd->dir);
	ck_assert_msg(copy_file(md_test_memdissect(), nd->memdissect, 0755), "cannot copy %s", md_test_memdissect());
	char plugins[128];
	snprintf(plugins, sizeof(plugins), "%s/plugins", nd->dir);
	ck_assert(mkdir(plugins, 0755) == 0);
	const char *from = getenv("MEMDISSECT_PLUGIN_PATH");
	ck_assert_msg(from && *from, "$MEMDISSECT_PLUGIN_PATH is not set");
	DIR *d = opendir(from);
	ck_assert_msg(d != NULL, "cannot open %s", from);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char a[PATH_MAX * 2], b[PATH_MAX];
		snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", plugins, de->d_name);
		ck_assert(copy_file(a, b, 0644));
	}
	closedir(d);
	snprintf(nd->plugin_env, sizeof(nd->plugin_env), "MEMDISSECT_PLUGIN_PATH=%s", plugins);
	for (size_t i = 0; targets[i]; i++) {
		char a[PATH_MAX], b[PATH_MAX];
		ck_assert(md_test_target_path(targets[i], a, sizeof(a)));
		snprintf(b, sizeof(b), "%s/%s", nd->dir, targets[i]);
		ck_assert_msg(copy_file(a, b, 0755), "cannot copy %s", a);
	}
}

static void nobody_dir_remove(struct nobody_dir *nd)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", nd->dir);
	ck_assert(system(cmd) == 0);
}

/* Starts a target as uid 65534 (same as md_test_proc_start otherwise); env: "NAME=value" or NULL. */
static void start_target_as_nobody(struct md_test_proc *p, const char *path, const char *env)
{
	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->in_fd = p->out_fd = -1;
	int out[2], in[2];
	ck_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(in, O_CLOEXEC) == 0);
	signal(SIGPIPE, SIG_IGN);
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		if (!md_test_become_nobody())
			_exit(126);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		signal(SIGPIPE, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (env)
			putenv((char *)env);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->pid = pid;
	p->out_fd = out[0];
	p->in_fd = in[1];
	p->truth = calloc(1, 1);
	ck_assert(p->truth != NULL);
	char *ready = md_test_proc_wait_line(p, "ready", 20000);
	ck_assert_msg(ready != NULL, "%s as nobody did not print \"ready\"", path);
	free(ready);
	char status_path[64];
	snprintf(status_path, sizeof(status_path), "/proc/%d/status", (int)pid);
	char *status = slurp(status_path);
	ck_assert_msg(status && strstr(status, "\nUid:\t65534\t65534\t65534\t65534"), "target %d does not run as nobody",
		      (int)pid);
	free(status);
	ping(p, path);
}

/* As nobody: present pages and how many of them show a frame number, in pid's pagemap. */
static void pagemap_as_nobody(pid_t pid, uint64_t *present_ret, uint64_t *with_pfn_ret)
{
	int pfd[2];
	ck_assert(pipe(pfd) == 0);
	pid_t child = fork();
	ck_assert(child >= 0);
	if (child == 0) {
		uint64_t counts[2] = {0, 0};
		if (md_test_become_nobody()) {
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
			char *maps = slurp(path);
			snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			for (char *line = maps; fd >= 0 && line && *line;) {
				char *nl = strchr(line, '\n');
				if (nl)
					*nl = 0;
				unsigned long long s, e;
				if (sscanf(line, "%llx-%llx", &s, &e) == 2 && !strstr(line, "[vsyscall]")) {
					for (uint64_t page = s / 4096; page < e / 4096; page++) {
						uint64_t v;
						if (pread(fd, &v, 8, (off_t)(page * 8)) != 8)
							break;
						counts[0] += v >> 63;
						counts[1] += (v >> 63) && (v & ((1ULL << 55) - 1));
					}
				}
				line = nl ? nl + 1 : NULL;
			}
		}
		ssize_t w = write(pfd[1], counts, sizeof(counts));
		_exit(w == sizeof(counts) ? 0 : 1);
	}
	close(pfd[1]);
	uint64_t counts[2] = {0, 0};
	ssize_t r = read(pfd[0], counts, sizeof(counts));
	close(pfd[0]);
	waitpid(child, NULL, 0);
	ck_assert(r == sizeof(counts));
	*present_ret = counts[0];
	*with_pfn_ret = counts[1];
}

static struct md_node *attach_json_as(pid_t pid, bool as_nobody, const struct nobody_dir *nd, int want_status,
				      const char *what)
{
	const char *env[] = {nd->plugin_env, NULL};
	struct md_test_bg_options o = {.exe = nd->memdissect, .env = env, .as_nobody = as_nobody};
	static const char *const json[] = {"--json", NULL};
	struct md_test_bg r;
	int status = attach_run(pid, json, &o, &r, slow(30000));
	ck_assert_msg(status == want_status, "%s: memdissect attach --json %d as %s: want exit %d, got %d; stderr: %s", what,
		      (int)pid, as_nobody ? "nobody" : "root", want_status, status, tail_of(r.err));
	struct md_node *root = parse_report(r.out, what);
	md_test_bg_free(&r);
	return root;
}

/* Not root already: nothing to switch to (every other test then runs unprivileged anyway). */
static bool skip_unless_root(const char *test)
{
	if (geteuid() == 0)
		return false;
	md_test_skip(true, test, "not root, cannot become uid %d (the other tests run unprivileged)", NOBODY_ID);
	return true;
}

/* A heap with threads and arenas, all nobody's: the same report as root's, from pagemap present
 * bits without frame numbers. */
START_TEST(test_unprivileged_report)
{
	SKIP_WITHOUT_PTRACE();
	if (skip_unless_root(__func__))
		return;
	static const char *const targets[] = {"hard_sigload", NULL};
	struct nobody_dir nd;
	nobody_dir_create(&nd, targets);
	char target_path[PATH_MAX];
	snprintf(target_path, sizeof(target_path), "%s/hard_sigload", nd.dir);
	struct md_test_proc p;
	start_target_as_nobody(&p, target_path, NULL);
	uint64_t present = 0, with_pfn = 0;
	pagemap_as_nobody(p.pid, &present, &with_pfn);
	ck_assert_msg(present > 0 && with_pfn == 0,
		      "as nobody the pagemap should show present pages without frame numbers: %llu present, %llu with a PFN",
		      (unsigned long long)present, (unsigned long long)with_pfn);
	struct md_node *mine = attach_json_as(p.pid, true, &nd, 0, "nobody on its own hard_sigload");
	uint64_t rss = check_sums(mine, "nobody on its own hard_sigload");
	ck_assert_uint_eq(jnum(mine, "target.threads"), 4);
	struct md_node *alloc = md_node_at(md_node_get(mine, "allocators"), 0);
	const char *name = alloc ? md_node_get_string(md_node_get(alloc, "name")) : NULL;
	ck_assert_msg(name && strcmp(name, "glibc") == 0, "nobody's report has no glibc allocator");
	struct md_node *roots = attach_json_as(p.pid, false, &nd, 0, "root on hard_sigload");
	check_sums(roots, "root on hard_sigload");
	ck_assert_uint_eq(jnum(roots, "memory.rss_bytes"), rss);
	static const char *const same_classes[] = {"live", "free", "metadata", "stack"};
	for (size_t i = 0; i < sizeof(same_classes) / sizeof(same_classes[0]); i++) {
		char key[32];
		snprintf(key, sizeof(key), "classes.%s", same_classes[i]);
		ck_assert_msg(jnum(mine, key) == jnum(roots, key), "%s: %llu as nobody, %llu as root", key,
			      (unsigned long long)jnum(mine, key), (unsigned long long)jnum(roots, key));
	}
	figure("unprivileged: uid %d on its own hard_sigload (4 threads): pagemap gives %llu present pages, none with a frame "
	       "number; exit 0, classes sum to RSS (%llu bytes), live/free/metadata/stack equal to root's report",
	       NOBODY_ID, (unsigned long long)present, (unsigned long long)rss);
	md_node_destroy(mine);
	md_node_destroy(roots);
	assert_target_runs(&p, "after nobody's and root's attaches");
	md_test_proc_stop(&p);
	nobody_dir_remove(&nd);
}
END_TEST

/* A deleted libc: root reads it through /proc/PID/map_files, nobody may not. What nobody cannot
 * see is reported (exit 10, a note naming the allocator), not guessed (no live or free bytes). */
START_TEST(test_unprivileged_deleted_libc)
{
	SKIP_WITHOUT_PTRACE();
	if (skip_unless_root(__func__))
		return;
	static const char *const targets[] = {"hard_sigload", NULL};
	struct nobody_dir nd;
	nobody_dir_create(&nd, targets);
	char target_path[PATH_MAX];
	snprintf(target_path, sizeof(target_path), "%s/hard_sigload", nd.dir);
	char libdir[PATH_MAX], libc_copy[PATH_MAX + 16], env[PATH_MAX + 32];
	snprintf(libdir, sizeof(libdir), "%s/lib", nd.dir);
	ck_assert(mkdir(libdir, 0755) == 0);
	snprintf(libc_copy, sizeof(libc_copy), "%s/libc.so.6", libdir);
	const char *libc = access("/lib/x86_64-linux-gnu/libc.so.6", R_OK) == 0 ? "/lib/x86_64-linux-gnu/libc.so.6"
										 : "/lib64/libc.so.6";
	ck_assert_msg(copy_file(libc, libc_copy, 0755), "cannot copy %s", libc);
	snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", libdir);
	struct md_test_proc p;
	start_target_as_nobody(&p, target_path, env);
	ck_assert(unlink(libc_copy) == 0);
	struct md_node *mine = attach_json_as(p.pid, true, &nd, 10, "nobody on hard_sigload with a deleted libc");
	check_sums(mine, "deleted libc, nobody");
	const char *notes = notes_text(mine);
	ck_assert_msg(strstr(notes, "glibc"), "nobody's partial report does not say what it could not analyse: notes: %s",
		      notes);
	ck_assert_msg(jnum(mine, "classes.live") == 0 && jnum(mine, "classes.free") == 0,
		      "without the allocator's state nobody's report still claims live %llu / free %llu bytes",
		      (unsigned long long)jnum(mine, "classes.live"), (unsigned long long)jnum(mine, "classes.free"));
	struct md_node *roots = attach_json_as(p.pid, false, &nd, 0, "root on hard_sigload with a deleted libc");
	check_sums(roots, "deleted libc, root");
	ck_assert_msg(jnum(roots, "classes.live") > 0, "root did not analyse the heap behind the deleted libc");
	figure("unprivileged: with a deleted libc, uid %d gets exit 10, no live/free bytes and the note \"%s\"; root gets "
	       "the heap (%llu live bytes)",
	       NOBODY_ID, notes, (unsigned long long)jnum(roots, "classes.live"));
	md_node_destroy(mine);
	md_node_destroy(roots);
	assert_target_runs(&p, "after the deleted-libc attaches");
	md_test_proc_stop(&p);
	nobody_dir_remove(&nd);
}
END_TEST

/* Zero pages among copy-on-write shared pages in one heap: only frame numbers tell them apart.
 * Two identical fresh targets, one looked at by nobody, one by root (a first attach each: see
 * test_cow_sharing_unchanged for why not the same one twice). */
START_TEST(test_unprivileged_zero_pages)
{
	SKIP_WITHOUT_PTRACE();
	if (skip_unless_root(__func__))
		return;
	static const char *const targets[] = {"hard_privs", NULL};
	struct nobody_dir nd;
	nobody_dir_create(&nd, targets);
	char target_path[PATH_MAX];
	snprintf(target_path, sizeof(target_path), "%s/hard_privs", nd.dir);
	struct md_test_proc pa, pb;
	start_target_as_nobody(&pa, target_path, NULL);
	start_target_as_nobody(&pb, target_path, NULL);
	struct md_node *mine = attach_json_as(pa.pid, true, &nd, 0, "nobody on hard_privs");
	struct md_node *roots = attach_json_as(pb.pid, false, &nd, 0, "root on hard_privs");
	check_sums(mine, "hard_privs, nobody");
	check_sums(roots, "hard_privs, root");
	struct md_node *heap_mine = region_of_kind(mine, "heap"), *heap_root = region_of_kind(roots, "heap");
	ck_assert_msg(heap_mine && heap_root, "no heap region in the reports");
	uint64_t live_n = region_class(heap_mine, "live"), free_n = region_class(heap_mine, "free");
	uint64_t live_r = region_class(heap_root, "live"), free_r = region_class(heap_root, "free");
	const char *notes = notes_text(mine);
	figure("unprivileged: heap of hard_privs (zero pages + pages shared with a child): root live %llu free %llu; "
	       "nobody live %llu free %llu; nobody's notes: %s",
	       (unsigned long long)live_r, (unsigned long long)free_r, (unsigned long long)live_n,
	       (unsigned long long)free_n, notes[0] ? notes : "(none)");
	ck_assert_msg((live_n == live_r && free_n == free_r) || strstr(notes, "frame"),
		      "without page frame numbers memdissect guessed which heap pages are zero pages: nobody says live %llu "
		      "free %llu, root (who sees frame numbers) says live %llu free %llu, and nobody's report does not say "
		      "it could not tell (no note about page frame numbers)",
		      (unsigned long long)live_n, (unsigned long long)free_n, (unsigned long long)live_r,
		      (unsigned long long)free_r);
	md_node_destroy(mine);
	md_node_destroy(roots);
	md_test_proc_stop(&pa);
	md_test_proc_stop(&pb);
	nobody_dir_remove(&nd);
}
END_TEST

/* ==== the suite ============================================================================= */

static void add_case(Suite *s, const char *name, const TTest *test, int timeout)
{
	TCase *tc = tcase_create(name);
	/* The stress counts take much longer; the sanitized build several times longer. */
	tcase_set_timeout(tc, stress_mode() ? timeout * 12 : md_test_sanitized() ? timeout * 3 : timeout);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

Suite *hardening_suite(void)
{
	Suite *s = suite_create("hardening");
	add_case(s, "kill_memdissect_anywhere", test_kill_memdissect_anywhere, 120);
	add_case(s, "target_killed_anywhere", test_target_killed_anywhere, 120);
	add_case(s, "busy_target", test_busy_target, 120);
	add_case(s, "many_threads", test_many_threads, 120);
	add_case(s, "thread_storm_series", test_thread_storm_series, 120);
	add_case(s, "traced_by_strace", test_traced_by_strace, 60);
	add_case(s, "thread_traced_by_strace", test_thread_traced_by_strace, 60);
	TCase *tc = tcase_create("memory_pressure_cgroup");
	tcase_set_timeout(tc, stress_mode() ? 600 : md_test_sanitized() ? 240 : 90);
	/* Unchecked: runs in the runner process, so the cgroup goes away even after a failure. */
	tcase_add_unchecked_fixture(tc, cgroup_setup, cgroup_teardown);
	tcase_add_test(tc, test_memory_pressure_cgroup);
	suite_add_tcase(s, tc);
	add_case(s, "consecutive_attaches", test_consecutive_attaches, 150);
	add_case(s, "valgrind_clean", test_valgrind_clean, 120);
	add_case(s, "memory_unchanged", test_memory_unchanged, 60);
	add_case(s, "cow_sharing_unchanged", test_cow_sharing_unchanged, 60);
	tc = tcase_create("own_file_pages_not_shared");
	tcase_set_timeout(tc, md_test_sanitized() ? 180 : 60);
	tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
	tcase_add_test(tc, test_own_file_pages_not_shared);
	suite_add_tcase(s, tc);
	add_case(s, "no_write_primitive", test_no_write_primitive, 60);
	const struct {
		const char *name;
		const TTest *test;
	} unprivileged[] = {
		{"unprivileged_report", test_unprivileged_report},
		{"unprivileged_deleted_libc", test_unprivileged_deleted_libc},
		{"unprivileged_zero_pages", test_unprivileged_zero_pages},
	};
	for (size_t i = 0; i < sizeof(unprivileged) / sizeof(unprivileged[0]); i++) {
		tc = tcase_create(unprivileged[i].name);
		tcase_set_timeout(tc, md_test_sanitized() ? 180 : 60);
		/* Unchecked: runs in the runner, so a failed test's copies in /tmp go away too. */
		tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
		tcase_add_test(tc, unprivileged[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}
