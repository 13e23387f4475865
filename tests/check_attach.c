/* Integration tests of `memdissect attach`: real targets from $MD_TARGETS, the real memdissect
 * from $MEMDISSECT, its --json parsed back with md_node_parse_json. Every test checks that the
 * target is running again afterwards (no thread left in ptrace stop, it answers "ping"). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "procfs.h"
#include "target_impl.h"
#include "tests.h"

#define NOBODY_ID 65534

/* ---- time ---------------------------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* The ASan+UBSan memdissect is several times slower: scale the deadlines that wait for it. */
static int slow(int ms)
{
	return md_test_sanitized() ? ms * 4 : ms;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- ptrace availability ------------------------------------------------------------------- */



/* ---- memdissect as a background process ---------------------------------------------------- */


/* ---- the target's side --------------------------------------------------------------------- */

struct task_census {
	int tasks;
	int traced;  /* 't' (ptrace stop) or 'T' (job-control stop) */
	int running; /* 'R', 'S' or 'D': neither stopped nor exiting */
};

static struct task_census census(pid_t pid)
{
	struct task_census c = {0, 0, 0};
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
			continue; /* the thread ended meanwhile */
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		char *paren = strrchr(buf, ')');
		if (!paren || paren[1] != ' ')
			continue;
		char state = paren[2];
		c.tasks++;
		if (state == 't' || state == 'T')
			c.traced++;
		if (state == 'R' || state == 'S' || state == 'D')
			c.running++;
	}
	closedir(d);
	return c;
}

/* Polls until no thread of pid is stopped; returns the census it ended with. */
static struct task_census wait_all_running(pid_t pid, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct task_census c = census(pid);
	while (c.traced > 0 && now_ms() < deadline) {
		sleep_ms(5);
		c = census(pid);
	}
	return c;
}

/* Polls until every thread of pid is in ptrace stop. */
static struct task_census wait_all_stopped(pid_t pid, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct task_census c = census(pid);
	while ((c.tasks == 0 || c.traced < c.tasks) && now_ms() < deadline) {
		sleep_ms(5);
		c = census(pid);
	}
	return c;
}

/* The target must run after an attach: no thread stopped, and it answers a command. */
static void assert_target_runs(struct md_test_proc *p, const char *when)
{
	struct task_census c = wait_all_running(p->pid, 2000);
	ck_assert_msg(c.tasks > 0, "%s: target %d is gone", when, (int)p->pid);
	ck_assert_msg(c.traced == 0, "%s: %d of %d threads of target %d still stopped", when, c.traced, c.tasks,
		      (int)p->pid);
	ck_assert_msg(dprintf(p->in_fd, "ping\n") > 0, "%s: cannot write to target %d", when, (int)p->pid);
	char *pong = md_test_proc_wait_line(p, "pong", 5000);
	ck_assert_msg(pong != NULL, "%s: target %d does not answer \"ping\"", when, (int)p->pid);
	free(pong);
}

/* Starts a target that answers "ping", and waits for one answer: after "ready" the target still
 * runs code it never ran before (lazy binding of read(), a deeper stack) that can touch a page;
 * once it has answered a command it is back in a read() it has been through already: idle. */
static void start_target(struct md_test_proc *p, const char *name, const char *const *args)
{
	ck_assert_msg(md_test_proc_start(p, name, args), "cannot start test target %s (is $MD_TARGETS set?)",
		      name);
	ck_assert(dprintf(p->in_fd, "ping\n") > 0);
	char *pong = md_test_proc_wait_line(p, "pong", 5000);
	ck_assert_msg(pong != NULL, "test target %s does not answer \"ping\"", name);
	free(pong);
}

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

/* "Field:   N kB" of a /proc file, in bytes; UINT64_MAX when absent. */
static uint64_t proc_kb_field(const char *path, const char *field)
{
	char *text = slurp(path);
	uint64_t v = UINT64_MAX;
	size_t fl = strlen(field);
	for (char *line = text; line && *line;) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtoull(line + fl + 1, NULL, 10) * 1024;
			break;
		}
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return v;
}

static uint64_t rollup_rss(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	return proc_kb_field(path, "Rss");
}

struct maps_range {
	uint64_t start, end;
	char name[80]; /* the path column, possibly cut short */
};

/* The ranges of /proc/PID/maps; returns how many (at most max). */
static size_t read_maps(pid_t pid, struct maps_range *ranges, size_t max, bool skip_vsyscall)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	char *text = slurp(path);
	ck_assert_msg(text != NULL, "cannot read %s", path);
	size_t n = 0;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long long s, e;
		int name_at = 0;
		if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %n", &s, &e, &name_at) >= 2) {
			const char *name = name_at > 0 ? line + name_at : "";
			if (!(skip_vsyscall && strcmp(name, "[vsyscall]") == 0)) {
				ck_assert_msg(n < max, "too many mappings in %s", path);
				ranges[n].start = s;
				ranges[n].end = e;
				snprintf(ranges[n].name, sizeof(ranges[n].name), "%s", name);
				n++;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	free(text);
	return n;
}

#define MAX_MAPS 4096

/* Present pages per mapping from /proc/PID/pagemap ([vsyscall] is outside the user address
 * space pagemap covers). A page the attach faulted in shows up here even when it is the zero
 * page, which RSS does not count. */
struct pagemap_census {
	size_t n;
	struct maps_range maps[MAX_MAPS];
	uint64_t present[MAX_MAPS];
	uint64_t total;
};

static void pagemap_census(pid_t pid, struct pagemap_census *pc)
{
	pc->n = read_maps(pid, pc->maps, MAX_MAPS, true);
	pc->total = 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "cannot open %s: %s", path, strerror(errno));
	static uint64_t entries[8192];
	for (size_t i = 0; i < pc->n; i++) {
		pc->present[i] = 0;
		for (uint64_t page = pc->maps[i].start / 4096; page < pc->maps[i].end / 4096;) {
			uint64_t want = pc->maps[i].end / 4096 - page;
			if (want > 8192)
				want = 8192;
			ssize_t got = pread(fd, entries, want * 8, (off_t)(page * 8));
			ck_assert_msg(got > 0 && got % 8 == 0, "reading %s at page 0x%llx: %s", path,
				      (unsigned long long)page, got < 0 ? strerror(errno) : "short read");
			for (ssize_t k = 0; k < got / 8; k++)
				pc->present[i] += entries[k] >> 63;
			page += (uint64_t)got / 8;
		}
		pc->total += pc->present[i];
	}
	close(fd);
}

/* Which mappings gained or lost present pages between two censuses, as text for a message. */
static const char *pagemap_changes(const struct pagemap_census *a, const struct pagemap_census *b)
{
	static char text[2048];
	size_t len = 0;
	text[0] = 0;
	for (size_t i = 0; i < b->n && len < sizeof(text) - 200; i++) {
		uint64_t before = 0;
		bool found = false;
		for (size_t j = 0; j < a->n && !found; j++) {
			if (a->maps[j].start == b->maps[i].start && a->maps[j].end == b->maps[i].end) {
				before = a->present[j];
				found = true;
			}
		}
		if (found && before == b->present[i])
			continue;
		len += (size_t)snprintf(text + len, sizeof(text) - len, "\n  %llx-%llx %s: %s%llu -> %llu pages",
					(unsigned long long)b->maps[i].start, (unsigned long long)b->maps[i].end,
					b->maps[i].name[0] ? b->maps[i].name : "[anon]", found ? "" : "new mapping, ",
					(unsigned long long)before, (unsigned long long)b->present[i]);
	}
	return text;
}

/* ---- reading the report -------------------------------------------------------------------- */

static struct md_node *parse_report(const char *out, const char *what)
{
	struct md_node *root = NULL;
	ck_assert_msg(out && *out, "%s: no JSON on stdout", what);
	struct md_error *err = md_node_parse_json(out, strlen(out), &root);
	ck_assert_msg(err == NULL, "%s: stdout is not JSON: %s", what, err && err->message ? err->message : "?");
	ck_assert(root != NULL);
	return root;
}

static bool is_number(const struct md_node *n)
{
	enum md_node_type t = n ? md_node_type(n) : MD_NODE_NULL;
	return n && (t == MD_NODE_U64 || t == MD_NODE_I64 || t == MD_NODE_DOUBLE);
}

static uint64_t jnum(const struct md_node *root, const char *path)
{
	struct md_node *n = md_node_path(root, path);
	ck_assert_msg(n != NULL, "JSON report has no \"%s\"", path);
	ck_assert_msg(md_node_type(n) == MD_NODE_U64 || md_node_type(n) == MD_NODE_I64,
		      "JSON \"%s\" is not an integer (type %d)", path, (int)md_node_type(n));
	ck_assert_msg(md_node_type(n) != MD_NODE_I64 || md_node_get_i64(n) >= 0, "JSON \"%s\" is negative", path);
	return md_node_get_u64(n);
}

static const char *jstr(const struct md_node *root, const char *path)
{
	struct md_node *n = md_node_path(root, path);
	ck_assert_msg(n != NULL && md_node_type(n) == MD_NODE_STRING, "JSON \"%s\" is missing or not a string", path);
	return md_node_get_string(n);
}

static uint64_t jhex(const struct md_node *n, const char *what, size_t i)
{
	ck_assert_msg(n && md_node_type(n) == MD_NODE_STRING, "regions.%zu.%s is not a string", i, what);
	const char *s = md_node_get_string(n);
	ck_assert_msg(strncmp(s, "0x", 2) == 0, "regions.%zu.%s \"%s\" is not a 0x hex string", i, what, s);
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s + 2, &end, 16);
	ck_assert_msg(!errno && end != s + 2 && !*end, "regions.%zu.%s \"%s\" is not a hex number", i, what, s);
	return v;
}

static const char *const class_names[] = {"live", "free", "metadata", "stack", "file", "shared", "anon_other"};
#define N_CLASSES (sizeof(class_names) / sizeof(class_names[0]))

/* Sum of a "classes" object, every one of the seven classes present. */
static uint64_t class_sum(const struct md_node *classes, const char *where)
{
	ck_assert_msg(classes && md_node_type(classes) == MD_NODE_OBJECT, "%s: no \"classes\" object", where);
	uint64_t sum = 0;
	for (size_t i = 0; i < N_CLASSES; i++) {
		struct md_node *v = md_node_get(classes, class_names[i]);
		ck_assert_msg(v && (md_node_type(v) == MD_NODE_U64 || md_node_type(v) == MD_NODE_I64),
			      "%s: class \"%s\" missing or not an integer", where, class_names[i]);
		ck_assert_msg(md_node_get_u64(v) % 4096 == 0, "%s: class \"%s\" = %llu is not whole pages", where,
			      class_names[i], (unsigned long long)md_node_get_u64(v));
		sum += md_node_get_u64(v);
	}
	return sum;
}

/* The checks every complete report of a live target passes: the documented keys with sane
 * values, and the class-sum invariant at every level. threads: expected count, 0 = any. */
static void check_report(const struct md_node *root, pid_t pid, uint64_t threads)
{
	ck_assert_uint_eq(jnum(root, "schema_version"), 1);
	ck_assert_int_eq((pid_t)jnum(root, "target.pid"), pid);
	ck_assert_str_eq(jstr(root, "target.source"), "live");
	jstr(root, "target.comm");
	jstr(root, "target.exe");
	ck_assert_msg(is_number(md_node_path(root, "target.pause_ms")), "target.pause_ms is not a number");
	double pause_ms = md_node_get_double(md_node_path(root, "target.pause_ms"));
	ck_assert_msg(pause_ms >= 0 && pause_ms < 120000, "target.pause_ms = %g", pause_ms);
	uint64_t n_threads = jnum(root, "target.threads");
	ck_assert_msg(n_threads >= 1, "target.threads = %llu", (unsigned long long)n_threads);
	if (threads)
		ck_assert_uint_eq(n_threads, threads);

	uint64_t rss = jnum(root, "memory.rss_bytes");
	uint64_t pss = jnum(root, "memory.pss_bytes");
	uint64_t uss = jnum(root, "memory.uss_bytes");
	jnum(root, "memory.swap_bytes");
	uint64_t vm_size = jnum(root, "memory.vm_size_bytes");
	jnum(root, "memory.anon_bytes");
	jnum(root, "memory.file_bytes");
	jnum(root, "memory.shmem_bytes");
	ck_assert_msg(rss > 0 && rss % 4096 == 0, "memory.rss_bytes = %llu", (unsigned long long)rss);
	ck_assert_msg(uss <= pss && pss <= rss, "want uss <= pss <= rss, got %llu, %llu, %llu",
		      (unsigned long long)uss, (unsigned long long)pss, (unsigned long long)rss);
	ck_assert_msg(rss <= vm_size, "rss %llu > vm_size %llu", (unsigned long long)rss, (unsigned long long)vm_size);

	uint64_t classes = class_sum(md_node_get(root, "classes"), "classes");
	ck_assert_msg(classes == rss, "sum of classes %llu != memory.rss_bytes %llu", (unsigned long long)classes,
		      (unsigned long long)rss);

	struct md_node *regions = md_node_get(root, "regions");
	ck_assert_msg(regions && md_node_type(regions) == MD_NODE_ARRAY && md_node_count(regions) > 0,
		      "no \"regions\" array");
	uint64_t region_rss_sum = 0, prev_end = 0;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		struct md_node *r = md_node_at(regions, i);
		char where[48];
		snprintf(where, sizeof(where), "regions.%zu", i);
		uint64_t start = jhex(md_node_get(r, "start"), "start", i);
		uint64_t end = jhex(md_node_get(r, "end"), "end", i);
		ck_assert_msg(start < end && start % 4096 == 0 && end % 4096 == 0, "%s: bad range 0x%llx-0x%llx",
			      where, (unsigned long long)start, (unsigned long long)end);
		ck_assert_msg(start >= prev_end, "%s: 0x%llx overlaps or precedes the previous region", where,
			      (unsigned long long)start);
		prev_end = end;
		struct md_node *perms = md_node_get(r, "perms");
		ck_assert_msg(perms && md_node_type(perms) == MD_NODE_STRING && strlen(md_node_get_string(perms)) == 4,
			      "%s: bad \"perms\"", where);
		struct md_node *path = md_node_get(r, "path");
		ck_assert_msg(path && (md_node_type(path) == MD_NODE_STRING || md_node_type(path) == MD_NODE_NULL),
			      "%s: \"path\" is neither a string nor null", where);
		struct md_node *kind = md_node_get(r, "kind");
		ck_assert_msg(kind && md_node_type(kind) == MD_NODE_STRING, "%s: no \"kind\"", where);
		ck_assert_msg(md_node_get(r, "offset") != NULL, "%s: no \"offset\"", where);
		uint64_t r_rss = jnum(r, "rss_bytes");
		uint64_t r_pss = jnum(r, "pss_bytes");
		jnum(r, "swap_bytes");
		ck_assert_msg(r_rss <= end - start, "%s: rss %llu larger than the mapping", where,
			      (unsigned long long)r_rss);
		ck_assert_msg(r_pss <= r_rss, "%s: pss %llu > rss %llu", where, (unsigned long long)r_pss,
			      (unsigned long long)r_rss);
		uint64_t r_classes = class_sum(md_node_get(r, "classes"), where);
		ck_assert_msg(r_classes == r_rss, "%s (0x%llx-0x%llx %s): sum of classes %llu != rss_bytes %llu", where,
			      (unsigned long long)start, (unsigned long long)end,
			      md_node_type(path) == MD_NODE_STRING ? md_node_get_string(path) : "anon",
			      (unsigned long long)r_classes, (unsigned long long)r_rss);
		region_rss_sum += r_rss;
	}
	ck_assert_msg(region_rss_sum == rss, "sum of region rss_bytes %llu != memory.rss_bytes %llu",
		      (unsigned long long)region_rss_sum, (unsigned long long)rss);

	uint64_t total = jnum(root, "system.mem_total_bytes");
	uint64_t avail = jnum(root, "system.mem_available_bytes");
	ck_assert_uint_eq(total, proc_kb_field("/proc/meminfo", "MemTotal"));
	ck_assert_msg(avail <= total, "mem_available %llu > mem_total %llu", (unsigned long long)avail,
		      (unsigned long long)total);
	struct md_node *cg = md_node_get(root, "cgroup");
	ck_assert_msg(cg != NULL, "no \"cgroup\" key (object or null)");
	if (md_node_type(cg) != MD_NODE_NULL) {
		ck_assert_msg(md_node_type(cg) == MD_NODE_OBJECT, "\"cgroup\" is neither an object nor null");
		jstr(cg, "path");
		jnum(cg, "usage_bytes");
		ck_assert_msg(md_node_get(cg, "limit_bytes") != NULL, "cgroup has no \"limit_bytes\"");
	}
}

/* Lines of stderr other than the "paused" notice of --hold-pause. */
static size_t error_lines(const char *err, const char **last_ret)
{
	size_t n = 0;
	*last_ret = NULL;
	for (const char *line = err; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (!(len == 6 && strncmp(line, "paused", 6) == 0) && len > 0) {
			n++;
			*last_ret = line;
		}
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

/* A refusal: exactly one line "memdissect: <message>" on stderr. */
static void assert_one_error_line(const char *err, const char *what)
{
	const char *line;
	size_t n = error_lines(err, &line);
	ck_assert_msg(n == 1, "%s: want one line on stderr, got %zu:\n%s", what, n, err ? err : "");
	ck_assert_msg(strncmp(line, "memdissect: ", 12) == 0, "%s: stderr does not start with \"memdissect: \": %s",
		      what, line);
}

static int run_attach(pid_t pid, const char *const *extra, char **out, char **err)
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
	return md_test_run(args, out, err, slow(30000));
}

static const char *const json_opt[] = {"--json", NULL};

/* attach --json, want exit 0 and a report passing check_report. Returns the parsed report. */
static struct md_node *attach_ok(pid_t pid, uint64_t threads, const char *what)
{
	char *out = NULL, *err = NULL;
	int status = run_attach(pid, json_opt, &out, &err);
	ck_assert_msg(status == 0, "%s: memdissect attach --json %d: exit %d, stderr: %s", what, (int)pid, status,
		      err ? err : "");
	struct md_node *root = parse_report(out, what);
	check_report(root, pid, threads);
	free(out);
	free(err);
	return root;
}

/* ---- the tests ----------------------------------------------------------------------------- */

START_TEST(test_single_threaded)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "sleeper", NULL);
	struct md_node *root = attach_ok(p.pid, 1, "sleeper");
	ck_assert_str_eq(jstr(root, "target.comm"), "sleeper");
	const char *exe = jstr(root, "target.exe");
	ck_assert_msg(strlen(exe) >= 8 && strcmp(exe + strlen(exe) - 8, "/sleeper") == 0, "target.exe = %s", exe);
	/* The target is idle: what the pause saw is what smaps_rollup says now (that the attach
	 * itself changes nothing is test_rss_unchanged's business). */
	ck_assert_uint_eq(jnum(root, "memory.rss_bytes"), rollup_rss(p.pid));
	ck_assert_msg(jnum(root, "classes.stack") > 0, "no stack page in a running process");
	ck_assert_msg(jnum(root, "classes.file") > 0, "no file page in a dynamically linked process");
	md_node_destroy(root);
	assert_target_runs(&p, "after attach --json");

	/* The text report. */
	char *out = NULL, *err = NULL;
	int status = run_attach(p.pid, NULL, &out, &err);
	ck_assert_msg(status == 0, "memdissect attach %d: exit %d, stderr: %s", (int)p.pid, status, err);
	ck_assert_msg(out && strlen(out) > 100, "text report is (almost) empty: %s", out ? out : "");
	ck_assert_msg(strstr(out, "sleeper") != NULL, "text report does not name the target:\n%s", out);
	ck_assert_msg(strchr(out, '\033') == NULL, "colour escape in the text report written to a pipe");
	free(out);
	free(err);
	assert_target_runs(&p, "after attach (text)");
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_sleep_binary)
{
	SKIP_WITHOUT_PTRACE();
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(devnull, 1);
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(127);
	}
	/* Wait for the exec: attaching to the forked test process would test nothing. */
	char comm_path[64];
	snprintf(comm_path, sizeof(comm_path), "/proc/%d/comm", (int)pid);
	long long deadline = now_ms() + 5000;
	bool exec_done = false;
	while (!exec_done && now_ms() < deadline) {
		char *comm = slurp(comm_path);
		exec_done = comm && strcmp(comm, "sleep\n") == 0 && md_test_proc_state(pid) == 'S';
		free(comm);
		if (!exec_done)
			sleep_ms(5);
	}
	ck_assert_msg(exec_done, "/bin/sleep did not start");
	struct md_node *root = attach_ok(pid, 1, "sleep 1000");
	ck_assert_str_eq(jstr(root, "target.comm"), "sleep");
	ck_assert_uint_eq(jnum(root, "memory.rss_bytes"), rollup_rss(pid));
	md_node_destroy(root);
	ck_assert_msg(md_test_proc_state(pid) == 'S', "sleep is in state '%c' after the attach", md_test_proc_state(pid));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(test_64_threads)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = {"64", "2", NULL}; /* 62 blocked, 2 spinning */
	start_target(&p, "threads", args);
	unsigned long long tasks;
	ck_assert(md_test_truth_u64(&p, "threads", &tasks) && tasks == 65);
	ck_assert_int_eq(census(p.pid).tasks, 65);

	/* Held pause: every one of the 65 threads is in ptrace stop while memdissect holds it. */
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *md_args[] = {"attach", "--json", "--hold-pause=1000", pid_text, NULL};
	struct md_test_bg r;
	md_test_bg_start(&r, md_args, NULL);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(20000)), "no \"paused\" on stderr: %s", r.err);
	struct task_census c = wait_all_stopped(p.pid, 500);
	ck_assert_msg(c.tasks == 65 && c.traced == 65, "while paused: %d of %d threads stopped", c.traced, c.tasks);
	int status = md_test_bg_finish(&r, slow(30000));
	ck_assert_msg(status == 0, "exit %d, stderr: %s", status, r.err);
	struct md_node *root = parse_report(r.out, "64 threads, held");
	check_report(root, p.pid, 65);
	double pause_ms = md_node_get_double(md_node_path(root, "target.pause_ms"));
	ck_assert_msg(pause_ms >= 900, "pause_ms %g does not include the 1000 ms hold", pause_ms);
	md_node_destroy(root);
	md_test_bg_free(&r);
	c = census(p.pid);
	ck_assert_msg(c.tasks == 65 && c.traced == 0, "after the attach: %d of %d threads still stopped", c.traced,
		      c.tasks);
	assert_target_runs(&p, "after the held attach");

	/* And a plain one. */
	root = attach_ok(p.pid, 65, "64 threads");
	md_node_destroy(root);
	c = census(p.pid);
	ck_assert_msg(c.tasks == 65 && c.traced == 0, "after the attach: %d of %d threads still stopped", c.traced,
		      c.tasks);
	assert_target_runs(&p, "after the attach");
	md_test_proc_stop(&p);
}
END_TEST

static unsigned long long storm_count(struct md_test_proc *p)
{
	ck_assert(dprintf(p->in_fd, "count\n") > 0);
	char *line = md_test_proc_wait_line(p, "created ", 5000);
	ck_assert_msg(line != NULL, "thread_storm does not answer \"count\"");
	unsigned long long n = strtoull(line + 8, NULL, 10);
	free(line);
	return n;
}

START_TEST(test_thread_storm)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = {"3", NULL};
	start_target(&p, "thread_storm", args);
	unsigned long long max_live = 0;
	ck_assert(md_test_truth_u64(&p, "max_live", &max_live));
	unsigned long long created_before = storm_count(&p);
	for (int i = 0; i < 4; i++) {
		char *out = NULL, *err = NULL;
		int status = run_attach(p.pid, json_opt, &out, &err);
		/* 10 (partial) is allowed: an allocator caught mid-operation by the stop. */
		ck_assert_msg(status == 0 || status == 10, "attach %d to thread_storm: exit %d, stderr: %s", i, status,
			      err);
		struct md_node *root = parse_report(out, "thread_storm");
		check_report(root, p.pid, 0);
		uint64_t threads = jnum(root, "target.threads");
		ck_assert_msg(threads >= 4 && threads <= 4 + 2 * max_live,
			      "thread_storm has main + 3 spawners + at most %llu workers, report says %llu threads",
			      max_live, (unsigned long long)threads);
		md_node_destroy(root);
		free(out);
		free(err);
		assert_target_runs(&p, "thread_storm after attach");
	}

	/* Held: nothing of the storm runs while memdissect says it is paused. */
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *md_args[] = {"attach", "--json", "--hold-pause=300", pid_text, NULL};
	struct md_test_bg r;
	md_test_bg_start(&r, md_args, NULL);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(20000)), "no \"paused\" on stderr: %s", r.err);
	struct task_census c = census(p.pid);
	ck_assert_msg(c.running == 0, "while paused: %d of %d threads of the storm are running (%d stopped)", c.running,
		      c.tasks, c.traced);
	int status = md_test_bg_finish(&r, slow(30000));
	ck_assert_msg(status == 0 || status == 10, "held attach to thread_storm: exit %d, stderr: %s", status, r.err);
	md_test_bg_free(&r);

	assert_target_runs(&p, "thread_storm after the held attach");
	unsigned long long created_after = storm_count(&p);
	ck_assert_msg(created_after > created_before, "the storm stopped: %llu threads created before, %llu after",
		      created_before, created_after);
	sleep_ms(100);
	ck_assert_msg(storm_count(&p) > created_after, "the storm does not go on after the attaches");
	md_test_proc_stop(&p);
}
END_TEST

/* memdissect facing a target that died: exit 6 with one line, or a complete report (0). */
static void assert_exit_answer(int status, const char *out, const char *err, pid_t pid, bool zombie_ok,
			       const char *what)
{
	ck_assert_msg(status == 0 || status == 6 || (zombie_ok && status == 5),
		      "%s: want exit 6 (or a complete report), got %d; stderr: %s", what, status, err ? err : "");
	if (status == 0) {
		struct md_node *root = parse_report(out, what);
		check_report(root, pid, 0);
		md_node_destroy(root);
	} else {
		assert_one_error_line(err, what);
	}
}

START_TEST(test_target_exits_during_attach)
{
	SKIP_WITHOUT_PTRACE();
	/* Killed while memdissect holds it stopped. */
	struct md_test_proc p;
	const char *args[] = {"4", NULL};
	start_target(&p, "threads", args);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *md_args[] = {"attach", "--json", "--hold-pause=1500", pid_text, NULL};
	struct md_test_bg r;
	md_test_bg_start(&r, md_args, NULL);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(20000)), "no \"paused\" on stderr: %s", r.err);
	kill(p.pid, SIGKILL);
	int status = md_test_bg_finish(&r, slow(30000));
	assert_exit_answer(status, r.out, r.err, p.pid, false, "target killed during the held pause");
	md_test_bg_free(&r);
	md_test_proc_stop(&p);

	/* Exiting by itself at staggered moments around the attach, with threads. How long an
	 * attach takes (from the exec of memdissect) is measured first, so that the exits are spread
	 * over the whole of it in the plain and in the sanitized build alike. A target gone before
	 * memdissect looks is our unreaped zombie: exit 5 is then right too. */
	const char *long_args[] = {"60000", "3", NULL};
	ck_assert(md_test_proc_start(&p, "exiter", long_args)); /* it reads no commands */
	long long t0 = now_ms();
	char *out = NULL, *err = NULL;
	status = run_attach(p.pid, json_opt, &out, &err);
	long long attach_ms = now_ms() - t0;
	ck_assert_msg(status == 0, "attach to exiter: exit %d, stderr: %s", status, err);
	free(out);
	free(err);
	md_test_proc_stop(&p);
	int answers[3] = {0};
	for (int i = 0; i <= 20; i++) {
		long delay = (long)(attach_ms * 3 / 2 * i / 20);
		char delay_text[24];
		snprintf(delay_text, sizeof(delay_text), "%ld", delay);
		const char *exiter_args[] = {delay_text, "3", NULL};
		ck_assert(md_test_proc_start(&p, "exiter", exiter_args));
		status = run_attach(p.pid, json_opt, &out, &err);
		char what[64];
		snprintf(what, sizeof(what), "exiter with a %ld ms delay", delay);
		assert_exit_answer(status, out, err, p.pid, true, what);
		answers[status == 0 ? 0 : status == 5 ? 1 : 2]++;
		free(out);
		free(err);
		md_test_proc_stop(&p);
	}
	fprintf(stderr, "exits during a %lld ms attach: %d complete reports, %d zombie, %d exited (6)\n", attach_ms,
		answers[0], answers[1], answers[2]);
}
END_TEST

START_TEST(test_no_such_pid)
{
	/* A pid that just ended and was reaped is free. */
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0)
		_exit(0);
	ck_assert(waitpid(pid, NULL, 0) == pid);
	ck_assert(kill(pid, 0) != 0 && errno == ESRCH);
	for (int json = 0; json < 2; json++) {
		char *out = NULL, *err = NULL;
		int status = run_attach(pid, json ? json_opt : NULL, &out, &err);
		ck_assert_msg(status == 3, "attach %s%d (no such process): exit %d, stderr: %s", json ? "--json " : "",
			      (int)pid, status, err);
		assert_one_error_line(err, "no such process");
		ck_assert_msg(!*out, "stdout not empty: %s", out);
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_usage_errors)
{
	static const char *const cases[][4] = {
		{"attach", NULL},
		{"attach", "notapid", NULL},
		{"attach", "12x", NULL},
		{"attach", "--no-such-option", "1", NULL},
		{"no-such-command", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;
		int status = md_test_run(cases[i], &out, &err, slow(10000));
		ck_assert_msg(status == 2, "memdissect %s %s: want exit 2 (usage), got %d; stderr: %s", cases[i][0],
			      cases[i][1] ? cases[i][1] : "", status, err);
		/* The error line comes first; a usage summary may follow it. */
		ck_assert_msg(err && strncmp(err, "memdissect: ", 12) == 0,
			      "memdissect %s %s: stderr does not start with \"memdissect: <message>\":\n%s", cases[i][0],
			      cases[i][1] ? cases[i][1] : "", err);
		free(out);
		free(err);
	}
}
END_TEST

/* Copies the memdissect binary into a fresh world-readable directory, so that nobody can run it
 * wherever the build tree lives. Returns the copy's path (static); dir receives the directory. */
static const char *copy_for_nobody(char *dir, size_t dir_len)
{
	static char copy[PATH_MAX];
	snprintf(dir, dir_len, "/tmp/md-perm-XXXXXX");
	ck_assert(mkdtemp(dir) != NULL);
	ck_assert(chmod(dir, 0755) == 0);
	snprintf(copy, sizeof(copy), "%s/memdissect", dir);
	int in = open(md_test_memdissect(), O_RDONLY | O_CLOEXEC);
	ck_assert_msg(in >= 0, "cannot read %s", md_test_memdissect());
	int out = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ck_assert(out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert(write(out, buf, (size_t)n) == n);
	close(in);
	close(out);
	return copy;
}

START_TEST(test_permission_denied)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p = {.pid = -1, .in_fd = -1, .out_fd = -1};
	pid_t target;
	bool as_nobody = geteuid() == 0;
	char dir[64] = "";
	const char *exe = NULL;
	if (as_nobody) {
		start_target(&p, "sleeper", NULL); /* ours: owned by root */
		target = p.pid;
		exe = copy_for_nobody(dir, sizeof(dir));
	} else {
		/* Not root: any root-owned process is out of reach; init is one. */
		target = 1;
		char *status_text = slurp("/proc/1/status");
		bool root_owned = status_text && strstr(status_text, "\nUid:\t0\t");
		free(status_text);
		if (!root_owned) {
			MD_SKIP("not root and pid 1 is not root-owned");
		}
	}
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)target);
	for (int json = 0; json < 2; json++) {
		const char *md_args[] = {"attach", json ? "--json" : pid_text, json ? pid_text : NULL, NULL};
		struct md_test_bg r;
		md_test_bg_start(&r, md_args, &(const struct md_test_bg_options){ .exe = exe, .as_nobody = as_nobody });
		int status = md_test_bg_finish(&r, slow(30000));
		ck_assert_msg(status == 4, "memdissect attach %s as uid %d against a root process: want exit 4, got %d; "
			      "stderr: %s", pid_text, as_nobody ? NOBODY_ID : (int)getuid(), status, r.err);
		assert_one_error_line(r.err, "permission denied");
		/* "Says why": not root / no CAP_SYS_PTRACE (no Yama restriction applies between
		 * different users; the target is not traced). */
		ck_assert_msg(strstr(r.err, "CAP_SYS_PTRACE") || strstr(r.err, "root"),
			      "the refusal does not say why (not root / no CAP_SYS_PTRACE): %s", r.err);
		md_test_bg_free(&r);
	}
	if (as_nobody) {
		char copy[PATH_MAX];
		snprintf(copy, sizeof(copy), "%s/memdissect", dir);
		unlink(copy);
		rmdir(dir);
		assert_target_runs(&p, "after the refused attach");
		md_test_proc_stop(&p);
	}
}
END_TEST

START_TEST(test_zombie)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "sleeper", NULL);
	ck_assert(dprintf(p.in_fd, "quit\n") > 0);
	long long deadline = now_ms() + 5000;
	while (md_test_proc_state(p.pid) != 'Z' && now_ms() < deadline)
		sleep_ms(5);
	ck_assert_msg(md_test_proc_state(p.pid) == 'Z', "target did not become a zombie");
	for (int json = 0; json < 2; json++) {
		char *out = NULL, *err = NULL;
		int status = run_attach(p.pid, json ? json_opt : NULL, &out, &err);
		ck_assert_msg(status == 5, "attach to zombie %d: want exit 5, got %d; stderr: %s", (int)p.pid, status, err);
		assert_one_error_line(err, "zombie");
		free(out);
		free(err);
	}
	md_test_proc_stop(&p);
}
END_TEST

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

START_TEST(test_already_traced)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "sleeper", NULL);
	/* Seize: we become its tracer without stopping it. */
	ck_assert_msg(ptrace(PTRACE_SEIZE, p.pid, 0, 0) == 0, "PTRACE_SEIZE: %s", strerror(errno));
	char *out = NULL, *err = NULL;
	int status = run_attach(p.pid, json_opt, &out, &err);
	ck_assert_msg(status == 4, "attach to a process traced by %d: want exit 4, got %d; stderr: %s", (int)getpid(),
		      status, err);
	assert_one_error_line(err, "already traced");
	ck_assert_msg(mentions_number(err, getpid()), "the refusal does not name the tracer pid %d: %s", (int)getpid(),
		      err);
	free(out);
	free(err);

	/* Let go of it (a tracee must be stopped to be detached), then memdissect may attach. */
	ck_assert(ptrace(PTRACE_INTERRUPT, p.pid, 0, 0) == 0);
	int ws;
	ck_assert(waitpid(p.pid, &ws, __WALL) == p.pid && WIFSTOPPED(ws));
	ck_assert(ptrace(PTRACE_DETACH, p.pid, 0, 0) == 0);
	assert_target_runs(&p, "after our detach");
	struct md_node *root = attach_ok(p.pid, 1, "sleeper after the tracer left");
	md_node_destroy(root);
	assert_target_runs(&p, "after the attach");
	md_test_proc_stop(&p);
}
END_TEST

/* VmRSS and the pagemap census, once two reads in a row agree (the target is idle). */
static uint64_t idle_footprint(pid_t pid, struct pagemap_census *pc)
{
	uint64_t rss = md_test_status_bytes(pid, "VmRSS");
	pagemap_census(pid, pc);
	for (int i = 0; i < 50; i++) {
		sleep_ms(20);
		uint64_t total = pc->total;
		uint64_t rss2 = md_test_status_bytes(pid, "VmRSS");
		pagemap_census(pid, pc);
		if (rss2 == rss && pc->total == total)
			break;
		rss = rss2;
	}
	return rss;
}

START_TEST(test_rss_unchanged)
{
	SKIP_WITHOUT_PTRACE();
	static const char *const targets[] = {"sparse", "demo"};
	static struct pagemap_census before, after;
	for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
		struct md_test_proc p;
		start_target(&p, targets[t], NULL);
		uint64_t rss_before = idle_footprint(p.pid, &before);
		uint64_t rollup_before = rollup_rss(p.pid);
		uint64_t report_rss[3];
		for (int i = 0; i < 3; i++) {
			if (i < 2) {
				struct md_node *root = attach_ok(p.pid, 0, targets[t]);
				report_rss[i] = jnum(root, "memory.rss_bytes");
				md_node_destroy(root);
			} else {
				char *out = NULL, *err = NULL;
				int status = run_attach(p.pid, NULL, &out, &err);
				ck_assert_msg(status == 0, "text attach to %s: exit %d, stderr: %s", targets[t], status, err);
				free(out);
				free(err);
			}
		}
		/* Let it run: nothing it does while idle changes its pages. */
		assert_target_runs(&p, targets[t]);
		uint64_t rss_after = md_test_status_bytes(p.pid, "VmRSS");
		pagemap_census(p.pid, &after);
		fprintf(stderr, "%s: VmRSS %llu -> %llu, pagemap present %llu -> %llu\n", targets[t],
			(unsigned long long)rss_before, (unsigned long long)rss_after, (unsigned long long)before.total,
			(unsigned long long)after.total);
		ck_assert_msg(after.total == before.total && after.n == before.n,
			      "%s: the attaches changed the present pages: %llu before, %llu after:%s", targets[t],
			      (unsigned long long)before.total, (unsigned long long)after.total,
			      pagemap_changes(&before, &after));
		ck_assert_msg(rss_after == rss_before, "%s: the attaches changed VmRSS: %llu before, %llu after", targets[t],
			      (unsigned long long)rss_before, (unsigned long long)rss_after);
		ck_assert_uint_eq(rollup_rss(p.pid), rollup_before);
		/* And the pause saw the target as it is. */
		ck_assert_uint_eq(report_rss[0], rollup_before);
		ck_assert_uint_eq(report_rss[1], rollup_before);
		md_test_proc_stop(&p);
	}
}
END_TEST

START_TEST(test_class_sum_invariant)
{
	SKIP_WITHOUT_PTRACE();
	static const char *const targets[] = {"demo", "sparse", "threads"};
	static const char *const threads_args[] = {"8", NULL};
	for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
		struct md_test_proc p;
		start_target(&p, targets[t], strcmp(targets[t], "threads") == 0 ? threads_args : NULL);
		unsigned long long threads = 0;
		ck_assert(md_test_truth_u64(&p, "threads", &threads));
		struct md_node *root = attach_ok(p.pid, threads, targets[t]); /* checks the sums */
		/* Idle target: the pause's Rss is smaps_rollup's now. */
		ck_assert_uint_eq(jnum(root, "memory.rss_bytes"), rollup_rss(p.pid));
		/* Every thread's stack is resident and found from its stack pointer. */
		ck_assert_msg(jnum(root, "classes.stack") >= threads * 4096,
			      "%s: %llu threads but %llu bytes of stack", targets[t], threads,
			      (unsigned long long)jnum(root, "classes.stack"));
		ck_assert_msg(jnum(root, "classes.file") > 0, "%s: no file page", targets[t]);
		if (strcmp(targets[t], "sparse") == 0)
			ck_assert_msg(jnum(root, "classes.shared") >= (512 << 10),
				      "sparse has 512 KiB of shared anonymous memory, classes.shared = %llu",
				      (unsigned long long)jnum(root, "classes.shared"));

		/* One region per mapping, the same ranges as /proc/PID/maps. */
		static struct maps_range maps[MAX_MAPS];
		size_t n_maps = read_maps(p.pid, maps, MAX_MAPS, false);
		struct md_node *regions = md_node_get(root, "regions");
		ck_assert_msg(md_node_count(regions) == n_maps, "%s: %zu regions for %zu mappings", targets[t],
			      md_node_count(regions), n_maps);
		for (size_t i = 0; i < n_maps; i++) {
			struct md_node *r = md_node_at(regions, i);
			ck_assert_msg(jhex(md_node_get(r, "start"), "start", i) == maps[i].start &&
					      jhex(md_node_get(r, "end"), "end", i) == maps[i].end,
				      "%s: region %zu is not mapping 0x%llx-0x%llx", targets[t], i,
				      (unsigned long long)maps[i].start, (unsigned long long)maps[i].end);
		}
		md_node_destroy(root);
		assert_target_runs(&p, targets[t]);
		md_test_proc_stop(&p);
	}
}
END_TEST

START_TEST(test_sigkill_during_hold)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = {"8", "1", NULL};
	start_target(&p, "threads", args);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *md_args[] = {"attach", "--json", "--hold-pause=20000", pid_text, NULL};
	struct md_test_bg r;
	md_test_bg_start(&r, md_args, NULL);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(20000)), "no \"paused\" on stderr: %s", r.err);
	struct task_census c = wait_all_stopped(p.pid, 1000);
	ck_assert_msg(c.tasks == 9 && c.traced == 9, "while paused: %d of %d threads stopped", c.traced, c.tasks);
	kill(r.pid, SIGKILL);
	while (waitpid(r.pid, NULL, 0) < 0 && errno == EINTR)
		;
	r.pid = -1;
	long long killed_at = now_ms();
	c = wait_all_running(p.pid, 2000);
	ck_assert_msg(c.traced == 0, "2 s after memdissect was killed, %d of %d threads are still stopped", c.traced,
		      c.tasks);
	fprintf(stderr, "threads running again %lld ms after SIGKILL of memdissect\n", now_ms() - killed_at);
	md_test_bg_free(&r);
	assert_target_runs(&p, "after SIGKILL of memdissect");
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_interrupt_during_hold)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = {"4", NULL};
	start_target(&p, "threads", args);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		const char *md_args[] = {"attach", i == 1 ? "--json" : "--no-color", "--hold-pause=20000", pid_text, NULL};
		struct md_test_bg r;
		md_test_bg_start(&r, md_args, NULL);
		ck_assert_msg(md_test_bg_wait_stderr(&r, "paused", slow(20000)), "no \"paused\" on stderr: %s", r.err);
		struct task_census c = wait_all_stopped(p.pid, 1000);
		ck_assert_msg(c.tasks == 5 && c.traced == 5, "while paused: %d of %d threads stopped", c.traced, c.tasks);
		kill(r.pid, sigs[i]);
		long long sent = now_ms();
		/* Well before the 20 s hold ends: the signal must cut it short. */
		int status = md_test_bg_finish(&r, slow(5000));
		ck_assert_msg(status == 130 && !r.signaled, "%s during the held pause: want exit 130, got %s %d; stderr: %s",
			      strsignal(sigs[i]), r.signaled ? "death by signal" : "exit", r.signaled ? status - 128 : status,
			      r.err);
		assert_one_error_line(r.err, strsignal(sigs[i]));
		fprintf(stderr, "%s: memdissect exited 130 after %lld ms\n", strsignal(sigs[i]), now_ms() - sent);
		md_test_bg_free(&r);
		assert_target_runs(&p, strsignal(sigs[i]));
	}
	md_test_proc_stop(&p);
}
END_TEST

static void sigcount_read(struct md_test_proc *p, int *usr1, int *rtmin)
{
	ck_assert(dprintf(p->in_fd, "count\n") > 0);
	char *line = md_test_proc_wait_line(p, "count ", 5000);
	ck_assert_msg(line != NULL, "sigcount does not answer \"count\"");
	ck_assert_msg(sscanf(line, "count usr1 %d rtmin %d", usr1, rtmin) == 2, "bad count line: %s", line);
	free(line);
}

/* Waits until sigcount counted what was sent; the counts it ended with. */
static void sigcount_expect(struct md_test_proc *p, int usr1, int rtmin, const char *when)
{
	int got_usr1 = -1, got_rtmin = -1;
	long long deadline = now_ms() + 3000;
	for (;;) {
		sigcount_read(p, &got_usr1, &got_rtmin);
		if ((got_usr1 == usr1 && got_rtmin == rtmin) || now_ms() >= deadline)
			break;
		sleep_ms(10);
	}
	ck_assert_msg(got_usr1 == usr1 && got_rtmin == rtmin, "%s: sent %d SIGUSR1 and %d SIGRTMIN, counted %d and %d",
		      when, usr1, rtmin, got_usr1, got_rtmin);
}

START_TEST(test_signals_not_lost)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, "sigcount", NULL);
	char pid_text[24];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	int usr1 = 0, rtmin = 0;
	for (int i = 0; i < 20; i++) {
		bool held = i % 2 == 1;
		const char *plain_args[] = {"attach", "--json", pid_text, NULL};
		const char *held_args[] = {"attach", "--json", "--hold-pause=30", pid_text, NULL};
		struct md_test_bg r;
		md_test_bg_start(&r, held ? held_args : plain_args, NULL);
		/* A stream of SIGRTMIN (queued: every one must arrive) for as long as memdissect runs,
		 * so that signals land before the seize, between seize and stop, at stopped threads,
		 * during the detach and after. One SIGUSR1 per round at a varying moment: standard
		 * signals merge while pending, so only one may be in flight. */
		int round_sent = 0, usr1_at = 1 + (i * 7) % 23, burst_left = held ? 5 : 0;
		bool usr1_sent = false;
		long long deadline = now_ms() + slow(30000);
		while ((r.out_fd >= 0 || r.err_fd >= 0) && now_ms() < deadline && round_sent < 5000) {
			ck_assert(kill(p.pid, SIGRTMIN) == 0);
			rtmin++;
			round_sent++;
			if (!usr1_sent && round_sent >= usr1_at) {
				ck_assert(kill(p.pid, SIGUSR1) == 0);
				usr1++;
				usr1_sent = true;
			}
			/* Held rounds: a burst while memdissect says every thread is stopped. */
			if (burst_left && md_test_has_line_with(r.err, "paused")) {
				for (; burst_left > 0; burst_left--, rtmin++)
					ck_assert(kill(p.pid, SIGRTMIN) == 0);
			}
			md_test_bg_pump(&r, 0);
			usleep(250);
		}
		if (!usr1_sent) {
			ck_assert(kill(p.pid, SIGUSR1) == 0);
			usr1++;
		}
		int status = md_test_bg_finish(&r, slow(30000));
		ck_assert_msg(status == 0, "attach %d to sigcount: exit %d, stderr: %s", i, status, r.err);
		ck_assert_msg(!held || burst_left == 0, "attach %d: no \"paused\" on stderr: %s", i, r.err);
		md_test_bg_free(&r);
		char when[64];
		snprintf(when, sizeof(when), "after attach %d (%s)", i, held ? "held" : "plain");
		/* Before the next SIGUSR1 this one must have been delivered: they would merge. */
		sigcount_expect(&p, usr1, rtmin, when);
	}
	fprintf(stderr, "signals: %d SIGUSR1 and %d SIGRTMIN sent over 20 attaches, all counted\n", usr1, rtmin);
	assert_target_runs(&p, "after the signal stream");
	md_test_proc_stop(&p);
}
END_TEST

/* A private file mapping (tests/targets/filemap.c), read while stopped: pages still backed by
 * the file come from the file (the target's memory is not read for them), the written page from
 * the target, the untouched ones from the file too; every byte as the target sees it, through
 * md_target_read and md_target_read_pages alike. */
START_TEST(test_file_pages_exact)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "filemap", NULL));
	uint64_t map = md_test_truth(&p, "map");
	const char *path_line = strstr(p.truth, "path ");
	ck_assert(path_line != NULL);
	char path[64];
	ck_assert_int_eq(sscanf(path_line, "path %63s", path), 1);
	struct md_live_capture cap;
	struct md_target *t = md_test_live_stopped(p.pid, true, &cap);
	const struct md_mapping *m = md_target_find_mapping(t, map);
	ck_assert(m && m->kind == MD_MAP_FILE && m->start == map && m->pages);
	/* The states the test is about: 0, 1, 3-5 clean file pages, 2 a private copy. */
	ck_assert_msg((m->pages[0] & (MD_PAGE_PRESENT | MD_PAGE_FILE)) == (MD_PAGE_PRESENT | MD_PAGE_FILE),
		      "page 0 bits 0x%x", m->pages[0]);
	ck_assert_msg((m->pages[2] & (MD_PAGE_PRESENT | MD_PAGE_FILE)) == MD_PAGE_PRESENT, "page 2 bits 0x%x",
		      m->pages[2]);
	static uint8_t buf[8 * 4096], win[8 * 4096];
	struct md_error *err = md_target_read(t, map, buf, sizeof(buf));
	ck_assert_msg(!err, "md_target_read: %s", err ? err->message : "");
	uint64_t bad = ~0ULL;
	err = md_target_read_pages(t, map, win, 8, &bad);
	ck_assert_msg(!err, "md_target_read_pages: %s", err ? err->message : "");
	ck_assert_uint_eq(bad, 0);
	for (int k = 0; k < 8; k++) {
		uint8_t want = k == 2 ? 0xee : (uint8_t)(k + 1);
		for (int i = 0; i < 4096; i++) {
			ck_assert_msg(buf[k * 4096 + i] == want, "page %d byte %d: 0x%x, the target has 0x%x", k, i,
				      buf[k * 4096 + i], want);
			ck_assert_msg(win[k * 4096 + i] == want, "read_pages: page %d byte %d: 0x%x, the target has 0x%x", k,
				      i, win[k * 4096 + i], want);
		}
	}
	md_test_live_release(t, &cap);
	unlink(path);
	md_test_proc_stop(&p);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test, int timeout)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

Suite *attach_suite(void)
{
	Suite *s = suite_create("attach");
	add_case(s, "single_threaded", test_single_threaded, 60);
	add_case(s, "sleep_binary", test_sleep_binary, 60);
	add_case(s, "threads_64", test_64_threads, 120);
	add_case(s, "thread_storm", test_thread_storm, 120);
	add_case(s, "exits_during_attach", test_target_exits_during_attach, 120);
	add_case(s, "no_such_pid", test_no_such_pid, 60);
	add_case(s, "usage_errors", test_usage_errors, 60);
	add_case(s, "permission_denied", test_permission_denied, 60);
	add_case(s, "zombie", test_zombie, 60);
	add_case(s, "already_traced", test_already_traced, 60);
	add_case(s, "rss_unchanged", test_rss_unchanged, 120);
	add_case(s, "class_sum_invariant", test_class_sum_invariant, 120);
	add_case(s, "sigkill_during_hold", test_sigkill_during_hold, 60);
	add_case(s, "interrupt_during_hold", test_interrupt_during_hold, 60);
	add_case(s, "signals_not_lost", test_signals_not_lost, 120);
	add_case(s, "file_pages_exact", test_file_pages_exact, 60);
	return s;
}
