/* Cores and snapshots against real processes that print their allocator's own figures:
 *  - a kernel core (the test sets coredump_filter and RLIMIT_CORE in the child, never the
 *    machine's core_pattern) and a gdb gcore of glibc_truth and jemalloc_truth: `memdissect core`
 *    gives the printed figures exactly;
 *  - `memdissect snapshot` of an idle target: the report from the file equals a live attach's
 *    (classes, regions, allocator figures), gdb and eu-stack open the file;
 *  - bad input: one line and exit 7, never a crash, for every prefix of a core too;
 *  - a core that shrinks while it is read: a clear refusal, never a crash (SIGBUS);
 *  - goldens: stored snapshot cores with their sysroots (tests/data/sysroot-*) rendered in every
 *    format equal tests/data/golden/core-*, here and with the host's libraries swapped out. */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyze.h"
#include "core.h"
#include "render_fixture.h"
#include "target_impl.h"
#include "tests.h"

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

/* The core tests chdir into temporary directories: make the paths the helpers use absolute. */
static void absolute_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	char buf[PATH_MAX];
	if (!v || !*v)
		v = dflt;
	if (v[0] != '/' && realpath(v, buf))
		setenv(name, buf, 1);
}

static void setup(void)
{
	absolute_env("MD_TARGETS", "build/targets");
	absolute_env("MEMDISSECT", "./memdissect");
	absolute_env("MEMDISSECT_PLUGIN_PATH", "build/plugins");
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/md-core-test-XXXXXX";
	char *d = mkdtemp(tmpl);
	ck_assert_msg(d != NULL, "mkdtemp: %s", strerror(errno));
	return strdup(d);
}

static void remove_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

/* Start a target with its working directory in dir (the kernel writes "core" there). */
static void start_in(struct md_test_proc *p, const char *dir, const char *name, const char *const *args)
{
	char cwd[PATH_MAX];
	ck_assert(getcwd(cwd, sizeof(cwd)) != NULL);
	ck_assert_int_eq(chdir(dir), 0);
	bool ok = md_test_proc_start(p, name, args);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_msg(ok, "cannot start %s", name);
}

static struct md_node *run_json(const char *const *args, int *status_ret, char **err_ret)
{
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 240000 : 120000);
	struct md_node *root = NULL;
	if (out && *out) {
		struct md_error *perr = md_node_parse_json(out, strlen(out), &root);
		if (perr) {
			fprintf(stderr, "%s %s: output is not JSON: %s\n", args[0], args[1], perr->message);
			md_error_destroy(perr);
			root = NULL;
		}
	}
	if (!root || (status != 0 && status != 10))
		fprintf(stderr, "memdissect %s %s: status %d, stderr: %s\n", args[0], args[2] ? args[2] : "", status,
			err ? err : "");
	*status_ret = status;
	if (err_ret)
		*err_ret = err;
	else
		free(err);
	free(out);
	return root;
}

static struct md_node *core_json(const char *core, const char *extra1, const char *extra2)
{
	const char *args[] = { "core", "--json", core, extra1, extra2, NULL };
	int status;
	struct md_node *r = run_json(args, &status, NULL);
	ck_assert_msg(r != NULL, "no report from memdissect core %s (status %d)", core, status);
	ck_assert_msg(status == 0, "memdissect core %s exited with %d", core, status);
	return r;
}

static bool has_note(struct md_node *report, const char *needle)
{
	struct md_node *notes = md_node_get(report, "notes");
	for (size_t i = 0; i < md_node_count(notes); i++) {
		const char *s = md_node_get_string(md_node_at(notes, i));
		if (s && strstr(s, needle))
			return true;
	}
	return false;
}

static void check_glibc_truth(struct md_node *report, const struct md_test_proc *p, const char *what)
{
	struct md_node *g = md_test_allocator(report, "glibc");
	ck_assert_msg(g != NULL, "%s: no glibc allocator in the report", what);
	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char key[64], path[64];
		snprintf(key, sizeof(key), "mallinfo.%s", mallinfo_fields[i]);
		snprintf(path, sizeof(path), "mallinfo.%s", mallinfo_fields[i]);
		uint64_t got = md_test_json_u64(g, path);
		ck_assert_msg(got == md_test_truth(p, key), "%s: mallinfo.%s is %llu, glibc says %llu", what, mallinfo_fields[i],
			      (unsigned long long)got, md_test_truth(p, key));
	}
	ck_assert_msg(md_test_json_u64(g, "findings") == 0, "%s: findings on a healthy heap", what);
	ck_assert_msg(md_node_get_bool(md_node_get(g, "consistent")), "%s: not consistent", what);
	md_test_check_classes_sum(report);
}

static void check_jemalloc_truth(struct md_node *report, const struct md_test_proc *p, const char *what)
{
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_msg(je != NULL, "%s: no jemalloc allocator in the report", what);
	static const char *const keys[] = { "allocated", "active", "metadata", "resident", "mapped", "retained" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char key[64];
		snprintf(key, sizeof(key), "stats.%s", keys[i]);
		uint64_t got = md_test_json_u64(je, key);
		ck_assert_msg(got == md_test_truth(p, key), "%s: %s is %llu, mallctl says %llu", what, key,
			      (unsigned long long)got, md_test_truth(p, key));
	}
	static const char *const pages[] = { "pactive", "pdirty", "pmuzzy", "tcache_bytes" };
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		ck_assert_msg(md_test_json_u64(je, pages[i]) == md_test_truth(p, pages[i]), "%s: %s is %llu, mallctl says %llu", what,
			      pages[i], (unsigned long long)md_test_json_u64(je, pages[i]), md_test_truth(p, pages[i]));
	ck_assert_msg(md_node_get_bool(md_node_get(je, "consistent")), "%s: jemalloc not consistent", what);
	md_test_check_classes_sum(report);
}

static void expect_bad(const char *file, const char *needle);
static int run_quiet(const char *cmd);

/* ---- kernel cores ---- */

/* Why the kernel cannot put a core in the process's cwd under a plain name, or NULL. */
static const char *core_pattern_unusable(void)
{
	static char why[400];
	char buf[256] = "";
	FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
	if (!f)
		return "/proc/sys/kernel/core_pattern is not readable";
	bool ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return "/proc/sys/kernel/core_pattern is empty";
	buf[strcspn(buf, "\n")] = 0;
	if (buf[0] == '|' || strchr(buf, '/')) {
		snprintf(why, sizeof(why), "core_pattern %.200s (%s): the kernel writes no core here", buf,
			 buf[0] == '|' ? "a pipe" : "another directory");
		return why;
	}
	return NULL;
}

/* Make the target dump core into dir: coredump_filter 0x33 (the default) and RLIMIT_CORE
 * unlimited in the child only, then SIGABRT. Returns the core's path. */
static char *dump_core(struct md_test_proc *p, const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/coredump_filter", (int)p->pid);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs("0x33", f);
	ck_assert_int_eq(fclose(f), 0);
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
	ck_assert_msg(prlimit(p->pid, RLIMIT_CORE, &rl, NULL) == 0, "prlimit: %s", strerror(errno));
	ck_assert_int_eq(kill(p->pid, SIGABRT), 0);
	int status = 0;
	pid_t w;
	while ((w = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR)
		;
	ck_assert_int_eq(w, p->pid);
	p->pid = -1;
	ck_assert_msg(WIFSIGNALED(status) && WCOREDUMP(status), "the target did not dump core (status 0x%x)", status);
	DIR *d = opendir(dir);
	ck_assert(d != NULL);
	char *found = NULL;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "core", 4) == 0 && asprintf(&found, "%s/%s", dir, de->d_name) < 0)
			found = NULL;
	closedir(d);
	ck_assert_msg(found != NULL, "no core file in %s", dir);
	return found;
}

static const char *const glibc_modes[] = { "kth", "mmap", "threads", "tcache" };

static bool node_equal(struct md_node *a, struct md_node *b, const char *where, bool file_pages, char *diff, size_t len);

/* The core read with pread (the default) and the same core mapped and walked in place
 * (MEMDISSECT_CORE_MMAP=1) give the same report, timings and read counters aside. */
static void check_pread_equal(const char *core, struct md_node *pread_report, const char *what)
{
	setenv("MEMDISSECT_CORE_MMAP", "1", 1);
	struct md_node *mapped = core_json(core, NULL, NULL);
	unsetenv("MEMDISSECT_CORE_MMAP");
	char diff[1024] = "";
	bool same = node_equal(mapped, pread_report, "report", false, diff, sizeof(diff));
	ck_assert_msg(same, "%s: the mapped core and pread differ: %s", what, diff);
	md_node_destroy(mapped);
}

START_TEST(test_kernel_core_glibc)
{
	setup();
	const char *unusable = core_pattern_unusable();
	if (unusable)
		MD_SKIP("%s", unusable);
	const char *mode = glibc_modes[_i];
	char *dir = make_dir();
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	start_in(&p, dir, "glibc_truth", args);
	/* A live attach first: the core's inferred residency must give the same heap pages. */
	int status;
	struct md_node *live = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(live && status == 0, "attach failed (%d)", status);
	char *core = dump_core(&p, dir);
	struct md_node *report = core_json(core, NULL, NULL);
	check_glibc_truth(report, &p, mode);
	if (_i == 0)
		check_pread_equal(core, report, "kernel core");
	ck_assert_str_eq(md_node_get_string(md_node_path(report, "target.source")), "core");
	ck_assert_msg(has_note(report, "residency from the core's holes"), "%s: no residency note", mode);
	ck_assert_str_eq(md_node_get_string(md_node_path(report, "target.residency")), "holes");
	ck_assert_str_eq(md_node_get_string(md_node_path(live, "target.residency")), "pagemap");
	/* Holes are pages that were not present: the allocator's resident pages match the live
	 * pagemap (docs/cores.md: the kernel skips exactly the non-present and zero pages). */
	static const char *const heap[] = { "classes.live", "classes.free", "classes.metadata" };
	for (size_t i = 0; i < 3; i++) {
		uint64_t a = md_test_json_u64(live, heap[i]), b = md_test_json_u64(report, heap[i]);
		uint64_t diff = a > b ? a - b : b - a;
		fprintf(stderr, "kernel core %s: %s live %llu core %llu\n", mode, heap[i], (unsigned long long)a,
			(unsigned long long)b);
		ck_assert_msg(diff <= a / 100 + 4096, "%s: %s is %llu in the core, %llu live", mode, heap[i],
			      (unsigned long long)b, (unsigned long long)a);
	}
	md_node_destroy(live);
	md_node_destroy(report);
	if (_i == 0) {
		/* The same core without its holes, as a pipe to systemd-coredump or a copy leaves it:
		 * residency is unknown, and said so; the allocator's figures are still exact. */
		char flat[PATH_MAX + 16], cmd[3 * PATH_MAX];
		snprintf(flat, sizeof(flat), "%s.flat", core);
		snprintf(cmd, sizeof(cmd), "cp --sparse=never %s %s", core, flat);
		ck_assert_int_eq(run_quiet(cmd), 0);
		report = core_json(flat, NULL, NULL);
		check_glibc_truth(report, &p, "core without holes");
		check_pread_equal(flat, report, "core without holes");
		ck_assert_msg(has_note(report, "residency unknown"), "a core without holes is not called residency unknown");
	ck_assert_str_eq(md_node_get_string(md_node_path(report, "target.residency")), "unknown");
		md_node_destroy(report);
		unlink(flat);
		/* What RLIMIT_CORE or a full disk leave: whole headers and notes, data cut short. */
		struct stat st;
		ck_assert_int_eq(stat(core, &st), 0);
		ck_assert_int_eq(truncate(core, st.st_size / 2), 0);
		expect_bad(core, "truncated");
	}
	free(core);
	md_test_proc_stop(&p);
	remove_dir(dir);
}
END_TEST

START_TEST(test_kernel_core_jemalloc)
{
	setup();
	const char *unusable = core_pattern_unusable();
	if (unusable)
		MD_SKIP("%s", unusable);
	char *dir = make_dir();
	struct md_test_proc p;
	start_in(&p, dir, "jemalloc_truth", NULL);
	char *core = dump_core(&p, dir);
	struct md_node *report = core_json(core, NULL, NULL);
	check_jemalloc_truth(report, &p, "jemalloc kernel core");
	md_node_destroy(report);
	free(core);
	md_test_proc_stop(&p);
	remove_dir(dir);
}
END_TEST

/* ---- gdb gcore ---- */

static bool have_program(const char *name)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

static int run_quiet(const char *cmd)
{
	int r = system(cmd);
	return r == -1 ? -1 : WIFEXITED(r) ? WEXITSTATUS(r) : 128 + WTERMSIG(r);
}

static char *gcore(pid_t pid, const char *dir)
{
	char *path = NULL, cmd[PATH_MAX + 256];
	ck_assert(asprintf(&path, "%s/gcore.core", dir) > 0);
	snprintf(cmd, sizeof(cmd),
		 "gdb --batch -nx -iex 'set debuginfod enabled off' -p %d -ex 'gcore %s' >/dev/null 2>&1", (int)pid, path);
	ck_assert_msg(run_quiet(cmd) == 0, "gdb gcore failed");
	return path;
}

static const char *const gcore_targets[] = { "glibc_truth", "jemalloc_truth" };

START_TEST(test_gcore)
{
	setup();
	if (!have_program("gdb")) {
		MD_SKIP("gdb is not installed (scripts/deps.sh installs it)");
	}
	const char *name = gcore_targets[_i];
	bool glibc = _i == 0;
	char *dir = make_dir();
	struct md_test_proc p;
	const char *args[] = { "kth", NULL };
	start_in(&p, dir, name, glibc ? args : NULL);
	char *core = gcore(p.pid, dir);
	struct md_node *report = core_json(core, NULL, NULL);
	if (glibc)
		check_glibc_truth(report, &p, "gcore");
	else
		check_jemalloc_truth(report, &p, "jemalloc gcore");
	/* gdb writes every byte: no holes, so residency is unknown and said so. */
	ck_assert_msg(has_note(report, "residency unknown"), "%s gcore: no 'residency unknown' note", name);
	md_node_destroy(report);
	free(core);
	md_test_proc_stop(&p);
	remove_dir(dir);
}
END_TEST

/* ---- snapshots ---- */

/* Deep equality of two report parts, with what legitimately differs between two captures of an
 * idle process left out: timings ("*_ms") and read counters ("*_read_bytes"), PSS and USS (they
 * move whenever another process maps or unmaps the same library), and, for file pages, which of
 * "file" and "shared" they are in (a page cache page is exclusive only while no other process
 * maps it). Paths compare after realpath (ld.so says /lib/..., /proc/PID/maps /usr/lib/...). */
static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool same_path(const char *a, size_t la, const char *b, size_t lb)
{
	char pa[PATH_MAX], pb[PATH_MAX], ra[PATH_MAX], rb[PATH_MAX];
	if (la >= sizeof(pa) || lb >= sizeof(pb))
		return false;
	memcpy(pa, a, la);
	pa[la] = 0;
	memcpy(pb, b, lb);
	pb[lb] = 0;
	return realpath(pa, ra) && realpath(pb, rb) && strcmp(ra, rb) == 0;
}

/* Word by word; words that are paths compare by realpath. */
static bool same_string(const char *a, const char *b)
{
	while (*a || *b) {
		size_t la = strcspn(a, " ,()"), lb = strcspn(b, " ,()");
		bool eq = la == lb && memcmp(a, b, la) == 0;
		if (!eq && !(la && lb && a[0] == '/' && b[0] == '/' && same_path(a, la, b, lb)))
			return false;
		a += la;
		b += lb;
		if (*a != *b)
			return false;
		if (*a) {
			a++;
			b++;
		}
	}
	return true;
}

static bool node_equal(struct md_node *a, struct md_node *b, const char *where, bool file_pages, char *diff, size_t len);

static bool classes_equal(struct md_node *a, struct md_node *b, const char *where, char *diff, size_t len)
{
	static const char *const fixed[] = { "live", "free", "metadata", "stack", "anon_other" };
	for (size_t i = 0; i < 5; i++)
		if (md_node_get_u64(md_node_get(a, fixed[i])) != md_node_get_u64(md_node_get(b, fixed[i]))) {
			snprintf(diff, len, "%s.%s: %llu vs %llu", where, fixed[i],
				 (unsigned long long)md_node_get_u64(md_node_get(a, fixed[i])),
				 (unsigned long long)md_node_get_u64(md_node_get(b, fixed[i])));
			return false;
		}
	uint64_t fa = md_node_get_u64(md_node_get(a, "file")) + md_node_get_u64(md_node_get(a, "shared"));
	uint64_t fb = md_node_get_u64(md_node_get(b, "file")) + md_node_get_u64(md_node_get(b, "shared"));
	if (fa != fb) {
		snprintf(diff, len, "%s: file+shared %llu vs %llu", where, (unsigned long long)fa, (unsigned long long)fb);
		return false;
	}
	return true;
}

static bool node_equal(struct md_node *a, struct md_node *b, const char *where, bool file_pages, char *diff, size_t len)
{
	if (!a || !b || md_node_type(a) != md_node_type(b)) {
		snprintf(diff, len, "%s: present or typed differently", where);
		return false;
	}
	char sub[512];
	switch (md_node_type(a)) {
	case MD_NODE_OBJECT:
		if (md_node_count(a) != md_node_count(b)) {
			snprintf(diff, len, "%s: %zu vs %zu keys", where, md_node_count(a), md_node_count(b));
			return false;
		}
		for (size_t i = 0; i < md_node_count(a); i++) {
			const char *k = md_node_key_at(a, i);
			/* Timings, and how much a walk read: they describe the run, not the target. LazyFree
			 * moves by itself: the kernel drains MADV_FREE'd pages to its lazy-free list in
			 * per-CPU batches, an idle process or not. */
			if (ends_with(k, "_ms") || ends_with(k, "_read_bytes") || strcmp(k, "pss_bytes") == 0 ||
			    strcmp(k, "uss_bytes") == 0 || ends_with(k, "lazy_free_bytes"))
				continue;
			snprintf(sub, sizeof(sub), "%s.%s", where, k);
			if (file_pages && strcmp(k, "classes") == 0) {
				if (!classes_equal(md_node_at(a, i), md_node_get(b, k), sub, diff, len))
					return false;
				continue;
			}
			if (!node_equal(md_node_at(a, i), md_node_get(b, k), sub, false, diff, len))
				return false;
		}
		return true;
	case MD_NODE_ARRAY:
		if (md_node_count(a) != md_node_count(b)) {
			snprintf(diff, len, "%s: %zu vs %zu elements", where, md_node_count(a), md_node_count(b));
			return false;
		}
		for (size_t i = 0; i < md_node_count(a); i++) {
			struct md_node *x = md_node_at(a, i);
			const char *path = md_node_get_string(md_node_get(x, "path"));
			snprintf(sub, sizeof(sub), "%s[%zu]", where, i);
			if (!node_equal(x, md_node_at(b, i), sub, path && path[0] == '/', diff, len))
				return false;
		}
		return true;
	case MD_NODE_STRING:
		if (!same_string(md_node_get_string(a), md_node_get_string(b))) {
			snprintf(diff, len, "%s: '%s' vs '%s'", where, md_node_get_string(a), md_node_get_string(b));
			return false;
		}
		return true;
	case MD_NODE_DOUBLE:
		return true; /* rates and timings */
	case MD_NODE_BOOL:
	case MD_NODE_U64:
	case MD_NODE_I64:
		if (md_node_get_i64(a) != md_node_get_i64(b) || md_node_get_bool(a) != md_node_get_bool(b)) {
			snprintf(diff, len, "%s: %lld vs %lld", where, (long long)md_node_get_i64(a), (long long)md_node_get_i64(b));
			return false;
		}
		return true;
	case MD_NODE_NULL:
		return true;
	}
	return true;
}

static double snapshot_pause_ms(const char *out)
{
	const char *p = out ? strstr(out, "pause ") : NULL;
	return p ? strtod(p + 6, NULL) : -1;
}

struct snap_case {
	const char *target, *mode;
};
static const struct snap_case snap_cases[] = {
	{ "glibc_truth", "kth" },
	{ "glibc_truth", "threads" },
	{ "glibc_truth", "mmap" },
	{ "jemalloc_truth", NULL },
};

START_TEST(test_snapshot_equals_live)
{
	setup();
	const struct snap_case *sc = &snap_cases[_i];
	char *dir = make_dir();
	struct md_test_proc p;
	const char *args[] = { sc->mode, NULL };
	start_in(&p, dir, sc->target, sc->mode ? args : NULL);
	int status;
	struct md_node *live = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(live && status == 0, "%s: attach failed (%d)", sc->target, status);

	char snap[PATH_MAX], pid_text[32];
	snprintf(snap, sizeof(snap), "%s/snap.core", dir);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *sargs[] = { "snapshot", pid_text, "-o", snap, NULL };
	char *out = NULL, *err = NULL;
	status = md_test_run(sargs, &out, &err, md_test_sanitized() ? 240000 : 120000);
	ck_assert_msg(status == 0, "snapshot exited with %d: %s", status, err ? err : "");
	double pause = snapshot_pause_ms(out);
	fprintf(stderr, "snapshot %s %s: %s", sc->target, sc->mode ? sc->mode : "", out ? out : "");
	ck_assert_msg(pause > 0, "no pause in the snapshot summary: %s", out ? out : "");
	free(out);
	free(err);
	/* The target is untouched: it still runs and answers. */
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st == 'S' || st == 'R', "target state %c after the snapshot", st ? st : '?');

	struct md_node *core = core_json(snap, NULL, NULL);
	if (strcmp(sc->target, "glibc_truth") == 0)
		check_glibc_truth(core, &p, "snapshot");
	else
		check_jemalloc_truth(core, &p, "jemalloc snapshot");
	ck_assert_msg(has_note(core, "memdissect snapshot"), "no snapshot note");
	static const char *const parts[] = { "classes", "regions", "allocators", "memory", "findings" };
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		char diff[1024] = "";
		bool eq = i == 0 ? classes_equal(md_node_get(live, "classes"), md_node_get(core, "classes"), "classes", diff,
						 sizeof(diff))
				 : node_equal(md_node_get(live, parts[i]), md_node_get(core, parts[i]), parts[i], false, diff,
					      sizeof(diff));
		ck_assert_msg(eq, "%s: snapshot and live differ: %s", sc->target, diff);
	}
	ck_assert_uint_eq(md_test_json_u64(core, "target.pid"), (uint64_t)p.pid);
	ck_assert_uint_eq(md_test_json_u64(core, "target.threads"), md_test_json_u64(live, "target.threads"));

	/* Other tools open it: gdb shows a backtrace, eu-stack unwinds every thread. */
	char exe[PATH_MAX], cmd[3 * PATH_MAX];
	ck_assert(md_test_target_path(sc->target, exe, sizeof(exe)));
	if (have_program("gdb")) {
		snprintf(cmd, sizeof(cmd),
			 "gdb --batch -nx -iex 'set debuginfod enabled off' -ex bt %s %s 2>&1 | grep -q '^#0 '", exe, snap);
		ck_assert_msg(run_quiet(cmd) == 0, "gdb shows no backtrace from the snapshot");
	}
	if (have_program("eu-stack")) {
		snprintf(cmd, sizeof(cmd), "eu-stack --core=%s -e %s 2>&1 | grep -q '^TID %d:'", snap, exe, (int)p.pid);
		ck_assert_msg(run_quiet(cmd) == 0, "eu-stack cannot unwind the snapshot");
	} else {
		fprintf(stderr, "check_core: eu-stack not installed (Debian elfutils): not checked\n");
	}
	md_node_destroy(live);
	md_node_destroy(core);
	md_test_proc_stop(&p);
	remove_dir(dir);
}
END_TEST

/* The executable gone: the core still gives what it can, and says which file is missing;
 * --exe brings it back. */
START_TEST(test_missing_exe)
{
	setup();
	char *dir = make_dir();
	char src[PATH_MAX], copy[PATH_MAX], cmd[3 * PATH_MAX];
	ck_assert(md_test_target_path("glibc_truth", src, sizeof(src)));
	snprintf(copy, sizeof(copy), "%s/gone_truth", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", src, copy);
	ck_assert_int_eq(run_quiet(cmd), 0);
	char *old = strdup(getenv("MD_TARGETS"));
	setenv("MD_TARGETS", dir, 1);
	struct md_test_proc p;
	const char *args[] = { "kth", NULL };
	start_in(&p, dir, "gone_truth", args);
	setenv("MD_TARGETS", old, 1);
	free(old);
	char snap[PATH_MAX], pid_text[32];
	snprintf(snap, sizeof(snap), "%s/snap.core", dir);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *sargs[] = { "snapshot", pid_text, "-o", snap, NULL };
	ck_assert_int_eq(md_test_run(sargs, NULL, NULL, 120000), 0);
	ck_assert_int_eq(unlink(copy), 0);

	struct md_node *report = core_json(snap, NULL, NULL);
	ck_assert_msg(has_note(report, "gone_truth not found"), "the missing executable is not named");
	check_glibc_truth(report, &p, "core without its executable"); /* libc is still there */
	md_node_destroy(report);
	report = core_json(snap, "--exe", src);
	ck_assert_msg(!has_note(report, "not found"), "--exe did not bring the executable back");
	check_glibc_truth(report, &p, "core with --exe");
	md_node_destroy(report);
	/* Another build as --exe, or a path that does not exist: refused in one line (before, a
	 * different build was used unchecked: garbage mallinfo, exit 0). */
	char other[PATH_MAX], missing[PATH_MAX];
	ck_assert(md_test_target_path("sleeper", other, sizeof(other)));
	snprintf(missing, sizeof(missing), "%s/no-such-exe", dir);
	const char *bad_exe[] = { other, missing };
	const char *want[] = { "is a different build: its build-id is", "No such file or directory" };
	for (int i = 0; i < 2; i++) {
		const char *cargs[] = { "core", snap, "--exe", bad_exe[i], NULL };
		char *out = NULL, *err = NULL;
		int status = md_test_run(cargs, &out, &err, 60000);
		ck_assert_msg(status == 2 && strstr(err, want[i]) && strchr(err, '\n') == err + strlen(err) - 1,
			      "core --exe %s: exit %d, want 2 and one line with \"%s\": %s", bad_exe[i], status, want[i], err);
		fprintf(stderr, "figure: core --exe %s: exit 2: %s", bad_exe[i], err);
		free(out);
		free(err);
	}
	md_test_proc_stop(&p);
	remove_dir(dir);
}
END_TEST

/* ---- bad input ---- */

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void *read_whole(const char *path, size_t *len_ret)
{
	int fd = open(path, O_RDONLY);
	ck_assert(fd >= 0);
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	ck_assert(buf != NULL);
	size_t done = 0;
	while (done < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
		ck_assert(n > 0);
		done += (size_t)n;
	}
	close(fd);
	*len_ret = done;
	return buf;
}

/* A snapshot of an idle glibc_truth in mode (its heap), written to dir/name. */
static char *snapshot_of(const char *dir, const char *mode, const char *name)
{
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	start_in(&p, dir, "glibc_truth", args);
	char *path = NULL, pid_text[32];
	ck_assert(asprintf(&path, "%s/%s", dir, name) > 0);
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *sargs[] = { "snapshot", pid_text, "-o", path, NULL };
	ck_assert_int_eq(md_test_run(sargs, NULL, NULL, 120000), 0);
	md_test_proc_stop(&p);
	return path;
}

/* A small snapshot of an idle target, the material of the bad-input cases. */
static char *small_core(const char *dir)
{
	return snapshot_of(dir, "empty", "small.core");
}

static void expect_bad(const char *file, const char *needle)
{
	const char *args[] = { "core", file, NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(args, &out, &err, md_test_sanitized() ? 120000 : 60000);
	ck_assert_msg(status == 7, "core %s: exit %d, expected 7 (stderr: %s)", file, status, err ? err : "");
	ck_assert_msg(out && out[0] == 0, "core %s: printed a report for bad input", file);
	ck_assert_msg(err && strncmp(err, "memdissect: ", 12) == 0, "core %s: stderr is '%s'", file, err ? err : "");
	char *nl = strchr(err, '\n');
	ck_assert_msg(nl && nl[1] == 0, "core %s: more than one line: %s", file, err);
	ck_assert_msg(strstr(err, needle), "core %s: '%s' does not say '%s'", file, err, needle);
	fprintf(stderr, "bad input: %s", err);
	free(out);
	free(err);
}

START_TEST(test_bad_input)
{
	setup();
	char *dir = make_dir();
	char path[PATH_MAX];
	char *core = small_core(dir);
	size_t len;
	uint8_t *bytes = read_whole(core, &len);

	snprintf(path, sizeof(path), "%s/empty", dir);
	write_file(path, "", 0);
	expect_bad(path, "empty");

	snprintf(path, sizeof(path), "%s/random", dir);
	uint8_t noise[8192];
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < sizeof(noise); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		noise[i] = (uint8_t)x;
	}
	write_file(path, noise, sizeof(noise));
	expect_bad(path, "not an ELF file");

	snprintf(path, sizeof(path), "%s/head", dir);
	write_file(path, bytes, 40);
	expect_bad(path, "truncated");

	/* Cut inside the notes and program headers, which a snapshot keeps at the end. */
	snprintf(path, sizeof(path), "%s/cut", dir);
	write_file(path, bytes, len - 100);
	expect_bad(path, "truncated");

	/* A kernel-style cut: the headers are whole but a segment's data is missing. */
	Elf64_Ehdr eh;
	memcpy(&eh, bytes, sizeof(eh));
	snprintf(path, sizeof(path), "%s/foreign", dir);
	Elf64_Ehdr fe = eh;
	fe.e_machine = EM_AARCH64;
	memcpy(bytes, &fe, sizeof(fe));
	write_file(path, bytes, len);
	memcpy(bytes, &eh, sizeof(eh));
	expect_bad(path, "aarch64");

	snprintf(path, sizeof(path), "%s/gz", dir);
	write_file(path, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
	expect_bad(path, "gzip-compressed");

	char exe[PATH_MAX];
	ck_assert(md_test_target_path("glibc_truth", exe, sizeof(exe)));
	expect_bad(exe, "not a core");
	expect_bad(dir, "directory");
	snprintf(path, sizeof(path), "%s/does-not-exist", dir);
	expect_bad(path, "No such file");
	free(bytes);
	free(core);
	remove_dir(dir);
}
END_TEST

/* Every prefix of a core (at 509-byte steps, plus every byte of the header) is refused cleanly
 * by the parser, or, past the last byte it needs, opened. Run in-process, so ASan sees it. */
START_TEST(test_prefixes)
{
	setup();
	char *dir = make_dir();
	char *core = small_core(dir);
	size_t len;
	uint8_t *bytes = read_whole(core, &len);
	size_t refused = 0, opened = 0;
	for (size_t n = 0; n <= len; n = n == len ? len + 1 : n < 256 ? n + 1 : n + 509 < len ? n + 509 : len) {
		uint8_t *copy = malloc(n ? n : 1);
		ck_assert(copy != NULL);
		memcpy(copy, bytes, n);
		struct md_core_options opts = { .no_symbols = true };
		struct md_target *t = NULL;
		struct md_core_info info;
		struct md_error *err = md_core_open_buffer(copy, n, &opts, &t, &info);
		if (err) {
			ck_assert_msg(err->code == MD_ERR_BAD_FILE, "prefix %zu: code %d: %s", n, err->code, err->message);
			refused++;
			md_error_destroy(err);
		} else {
			opened++;
			md_target_destroy(t);
			md_core_info_deinit(&info);
		}
		free(copy);
	}
	fprintf(stderr, "core prefixes: %zu refused, %zu opened\n", refused, opened);
	ck_assert_uint_gt(refused, 0);
	ck_assert_msg(opened >= 1, "the whole core was refused");
	free(bytes);
	free(core);
	remove_dir(dir);
}
END_TEST

/* The unwinder the plugins' quiescence checks use on a core: the main thread's stack from the
 * pc down to main. */
START_TEST(test_backtrace)
{
	setup();
	char *dir = make_dir();
	char *core = small_core(dir);
	struct md_core_options opts = { 0 };
	struct md_target *t = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(core, &opts, &t, &info);
	ck_assert_msg(!err, "open: %s", err ? err->message : "");
	ck_assert_int_eq(info.residency, MD_CORE_RESIDENCY_PAGEMAP);
	size_t n_threads;
	const struct md_thread *th = md_target_threads(t, &n_threads);
	ck_assert_uint_eq(n_threads, 1);
	uint64_t pcs[64];
	size_t n = 0;
	err = md_target_backtrace(t, &th[0], pcs, 64, &n);
	ck_assert_msg(!err, "backtrace: %s", err ? err->message : "");
	ck_assert_uint_eq(pcs[0], th[0].regs[MD_REG_RIP]);
	bool saw_main = false;
	for (size_t i = 0; i < n; i++) {
		const char *fn = md_target_symbolize(t, i ? pcs[i] - 1 : pcs[i], NULL);
		saw_main |= fn && strcmp(fn, "main") == 0;
	}
	ck_assert_msg(saw_main, "main not in the %zu frames unwound from the core", n);
	md_target_destroy(t);
	md_core_info_deinit(&info);
	free(core);
	remove_dir(dir);
}
END_TEST

/* ---- a core that shrinks under us (issue 21) ---- */

/* The PT_LOAD segment with the most bytes in the file: the heap of a "threads" target. */
static Elf64_Phdr biggest_load(const char *core)
{
	size_t len;
	uint8_t *bytes = read_whole(core, &len);
	Elf64_Ehdr eh;
	ck_assert(len >= sizeof(eh));
	memcpy(&eh, bytes, sizeof(eh));
	Elf64_Phdr best = { 0 };
	for (size_t i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		ck_assert(eh.e_phoff + (i + 1) * sizeof(ph) <= len);
		memcpy(&ph, bytes + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_LOAD && ph.p_filesz > best.p_filesz)
			best = ph;
	}
	free(bytes);
	ck_assert_msg(best.p_filesz >= 16 * 4096, "%s: no segment of 16 pages or more", core);
	return best;
}

/* Cut the file in the middle of that segment, after the core was opened (and mapped). */
static uint64_t cut_in_the_middle(const char *core, const Elf64_Phdr *seg)
{
	uint64_t cut = (seg->p_offset + seg->p_filesz / 2) & ~4095ULL;
	ck_assert_msg(truncate(core, (off_t)cut) == 0, "truncate %s: %s", core, strerror(errno));
	return cut;
}

/* The target API: a view handed out before the cut reads as zeros past it (its SIGBUS caught),
 * the core says it shrank, and every later read past the cut fails saying so. */
START_TEST(test_shrinking_core_reads)
{
	setup();
	setenv("MEMDISSECT_CORE_MMAP", "1", 1); /* the mapped way: a SIGBUS to catch */
	char *dir = make_dir();
	char *core = snapshot_of(dir, "threads", "shrink.core");
	Elf64_Phdr seg = biggest_load(core);
	struct md_target *t = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(core, NULL, &t, &info);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	ck_assert(!md_core_shrunk(t));
	/* A present page in the second half of the segment, viewed in place. */
	const uint8_t *view = NULL;
	uint64_t addr = seg.p_vaddr + ((seg.p_filesz * 3 / 4) & ~4095ULL);
	for (; addr < seg.p_vaddr + seg.p_filesz && !view; addr += 4096)
		view = md_target_view(t, addr, 4096);
	ck_assert_msg(view != NULL, "no page of the second half of the segment at 0x%llx can be viewed",
		      (unsigned long long)seg.p_vaddr);
	addr -= 4096;
	uint64_t cut = cut_in_the_middle(core, &seg);
	uint64_t sum = 0;
	for (size_t i = 0; i < 4096; i++)
		sum += view[i];
	ck_assert_msg(sum == 0, "a page past the cut (0x%llx) read as data", (unsigned long long)addr);
	ck_assert_msg(md_core_shrunk(t), "the cut at %llu went unnoticed", (unsigned long long)cut);
	ck_assert(md_target_view(t, addr, 4096) == NULL);
	uint8_t buf[64];
	err = md_target_read(t, addr, buf, sizeof(buf));
	ck_assert_msg(err && strstr(err->message, "shrank"), "read past the cut: %s", err ? err->message : "no error");
	fprintf(stderr, "shrinking core, read: %s\n", err->message);
	md_error_destroy(err);
	md_target_destroy(t);
	md_core_info_deinit(&info);
	free(core);
	remove_dir(dir);
}
END_TEST

/* The whole analysis, glibc's heap walk over views included: the core is cut after the open,
 * the walk runs into the cut, and the report is refused with an error that says why; mapped
 * (MEMDISSECT_CORE_MMAP=1: a SIGBUS to catch) or read with pread, the default (reads past the cut
 * come up short, and the file's size tells). */
static void shrinking_core_analysis(bool mapped)
{
	setup();
	if (mapped)
		setenv("MEMDISSECT_CORE_MMAP", "1", 1);
	else
		unsetenv("MEMDISSECT_CORE_MMAP");
	char *dir = make_dir();
	char *core = snapshot_of(dir, "threads", "shrink.core");
	Elf64_Phdr seg = biggest_load(core);
	struct md_target *t = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(core, NULL, &t, &info);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	cut_in_the_middle(core, &seg);
	struct md_analyze_options opts;
	memset(&opts, 0, sizeof(opts));
	struct md_analysis a;
	memset(&a, 0, sizeof(a));
	md_report_init(&a.report);
	err = md_analyze_core_target(core, t, &info, 0, &opts, &a);
	ck_assert_msg(err != NULL, "a report from a core cut while it was read");
	ck_assert_int_eq(err->code, MD_ERR_BAD_FILE);
	ck_assert_msg(strstr(err->message, "shrank while it was read"), "error: %s", err->message);
	fprintf(stderr, "shrinking core, analysis (%s): %s\n", mapped ? "mapped" : "pread", err->message);
	md_error_destroy(err);
	md_analysis_deinit(&a);
	md_core_info_deinit(&info);
	free(core);
	remove_dir(dir);
}

START_TEST(test_shrinking_core_analysis)
{
	shrinking_core_analysis(true);
}
END_TEST

START_TEST(test_shrinking_core_analysis_pread)
{
	shrinking_core_analysis(false);
}
END_TEST

/* ---- goldens from a stored snapshot (issue 13, deliverable 5) ---- */

/* What in a core's report depends on the run or the machine, masked deliberately:
 *  - timings: every number under a key ending in "_ms" (and inside such an object) in JSON,
 *    "took N ms" in text;
 *  - the file that served a module ("module" in JSON and text): libdwfl takes the host's file
 *    under the core's name when its build-id matches (on the machine that made the core), else
 *    the sysroot's copy, so the path names this machine. The library, its build-id and every
 *    figure read through it do not change; the test checks the name's last component.
 * Returns a malloc'd copy; counts what was masked, so that a mask that matches nothing fails. */
struct masked_counts {
	int timings, modules;
};

static char *mask_run_and_host(const char *in, const char *const *module_bases, const char *module_prefix,
				struct masked_counts *counts)
{
	size_t len = strlen(in);
	char *out = malloc(len + 64 * (len / 8 + 1));
	ck_assert(out != NULL);
	char *o = out;
	int ms_depth = 0;
	for (const char *line = in; *line;) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line + 1) : strlen(line);
		const char *lend = line + n;
		const char *q = line;
		while (q < lend && (*q == ' ' || *q == '\t'))
			q++;
		const char *value = NULL, *value_end = NULL, *word = NULL;
		bool module = false;
		const char *kend = *q == '"' ? memchr(q + 1, '"', (size_t)(lend - q - 1)) : NULL;
		if (kend && kend + 3 < lend && kend[1] == ':' && kend[2] == ' ') {
			size_t klen = (size_t)(kend - q - 1);
			const char *v = kend + 3;
			bool ms_key = klen > 3 && memcmp(kend - 3, "_ms", 3) == 0;
			if (ms_key && *v == '{')
				ms_depth = 1;
			else if ((ms_key || ms_depth) && (*v == '-' || (*v >= '0' && *v <= '9'))) {
				value = v;
				value_end = v + strspn(v, "0123456789.-+e");
				word = "\"masked\"";
				counts->timings++;
			} else if (klen == 6 && memcmp(q + 1, "module", 6) == 0 && *v == '"') {
				value = v;
				value_end = memchr(v + 1, '"', (size_t)(lend - v - 1));
				ck_assert(value_end != NULL);
				value_end++;
				word = "\"masked\"";
				module = true;
			}
		} else if (ms_depth && *q == '}') {
			ms_depth = 0;
		} else if ((size_t)(lend - q) > 8 && memcmp(q, "module: ", 8) == 0) {
			value = q + 8;
			value_end = memchr(value, '\n', (size_t)(lend - value));
			if (!value_end)
				value_end = lend;
			word = "masked";
			module = true;
		} else {
			const char *took = memmem(line, n, "took ", 5);
			if (took && took[5] >= '0' && took[5] <= '9') {
				value = took + 5;
				value_end = value + strspn(value, "0123456789.");
				word = "TIME";
				counts->timings++;
			}
		}
		if (module) {
			/* a module: the file must be the library the core names */
			size_t vlen = (size_t)(value_end - value) - (*value == '"' ? 2 : 0);
			const char *v = value + (*value == '"');
			bool known = false;
			for (size_t k = 0; module_bases[k] && !known; k++) {
				size_t blen = strlen(module_bases[k]);
				known = vlen > blen && v[vlen - blen - 1] == '/' && memcmp(v + vlen - blen, module_bases[k], blen) == 0;
			}
			ck_assert_msg(known, "the module is %.*s, not one of the core's libraries", (int)vlen, v);
			ck_assert_msg(!module_prefix || (vlen > strlen(module_prefix) &&
							 memcmp(v, module_prefix, strlen(module_prefix)) == 0),
				      "the module is %.*s, not the sysroot's copy under %s", (int)vlen, v, module_prefix);
			counts->modules++;
		}
		if (value) {
			memcpy(o, line, (size_t)(value - line));
			o += value - line;
			memcpy(o, word, strlen(word));
			o += strlen(word);
			memcpy(o, value_end, (size_t)(lend - value_end));
			o += lend - value_end;
		} else {
			memcpy(o, line, n);
			o += n;
		}
		line += n;
	}
	*o = 0;
	return out;
}

static const char *testdata(void)
{
	const char *data = getenv("MD_TESTDATA");
	return data && *data ? data : "tests/data";
}

/* tests/data/sysroot-NAME/sysroot.tar.xz unpacked into a new temporary directory. */
static char *unpack_sysroot(const char *name)
{
	char archive[PATH_MAX];
	snprintf(archive, sizeof(archive), "%s/sysroot-%s/sysroot.tar.xz", testdata(), name);
	if (access(archive, R_OK) != 0)
		ck_abort_msg("%s: %s (scripts/golden-cores.sh makes it)", archive, strerror(errno));
	char *dir = make_dir();
	char cmd[3 * PATH_MAX];
	snprintf(cmd, sizeof(cmd), "tar -C '%s' -xJf '%s'", dir, archive);
	ck_assert_msg(run_quiet(cmd) == 0, "cannot unpack %s (tar and xz)", archive);
	return dir;
}

static void remove_tree(char *dir)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert(run_quiet(cmd) == 0);
	free(dir);
}

/* The stored snapshots (scripts/golden-cores.sh): which allocator's figures the target printed
 * (truth.txt: "path value", a path in that allocator's JSON object) and the libraries that serve
 * the allocators' modules. */
struct golden_core {
	const char *name;      /* tests/data/sysroot-NAME, tests/data/golden/core-NAME.* */
	const char *allocator; /* whose figures truth.txt holds */
	const char *modules[3];
	int n_modules; /* "module" lines in text and JSON: one per allocator present */
};

static const struct golden_core golden_cores[] = {
	{ "glibc", "glibc", { "libc.so.6", NULL }, 1 },
	{ "jemalloc", "jemalloc", { "libc.so.6", "libjemalloc.so.2", NULL }, 2 },
};

/* A stored snapshot analysed offline with the sysroot in dir and no debug info (a host's
 * libc6-dbg, found by build-id, would change "symbols"), rendered as text, JSON, OpenMetrics and
 * HTML and compared with tests/data/golden/core-NAME.*; the figures also against what the target
 * printed when it was captured. module_prefix: where the modules must have come from (NULL:
 * anywhere). */
static void check_golden_core(const struct golden_core *gc, const char *dir, const char *module_prefix)
{
	char core[PATH_MAX + 32];
	snprintf(core, sizeof(core), "%s/snapshot.core", dir);
	/* Nothing of this machine: no debuginfod, fixed width, locale and zone. */
	unsetenv("DEBUGINFOD_URLS");
	setenv("COLUMNS", "100", 1);
	setenv("LC_ALL", "C", 1);
	setenv("TZ", "UTC", 1);
	static const char *const formats[][2] = {
		{ "text", "report" },
		{ "json", "json" },
		{ "openmetrics", "prom" },
		{ "html", "html" },
	};
	char html[PATH_MAX + 32];
	snprintf(html, sizeof(html), "%s/report.html", dir);
	char *json_text = NULL;
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		bool is_html = strcmp(formats[i][0], "html") == 0;
		const char *args[] = { "core",	    "--offline", "--debuginfo=off",
				       "--sysroot", dir,	 is_html ? "--html" : "--format",
				       is_html ? html : formats[i][0], core, NULL };
		char *out = NULL, *err = NULL;
		int status = md_test_run(args, &out, &err, md_test_sanitized() ? 240000 : 120000);
		ck_assert_msg(status == 0, "memdissect core --sysroot (%s) exited with %d: %s", formats[i][0], status,
			      err ? err : "");
		if (is_html) {
			free(out);
			out = md_fx_read_file(html);
			ck_assert_msg(out != NULL, "no HTML report in %s", html);
		}
		struct masked_counts masked = { 0, 0 };
		char *stable = mask_run_and_host(out, gc->modules, module_prefix, &masked);
		ck_assert_msg(strstr(stable, dir) == NULL, "%s: the report names the temporary sysroot %s", formats[i][0], dir);
		/* text: "analysis took"; JSON: total_ms, pause_ms and the walk's phases; the others none.
		 * text and JSON name glibc's module once. */
		bool text = strcmp(formats[i][0], "text") == 0, json = strcmp(formats[i][0], "json") == 0;
		int want = text ? 1 : json ? 3 : 0;
		ck_assert_msg(want ? masked.timings >= want : masked.timings == 0, "%s: %d timings masked, expected %s%d",
			      formats[i][0], masked.timings, want ? "at least " : "", want);
		ck_assert_msg(masked.modules == (text || json ? gc->n_modules : 0), "%s: %d modules masked", formats[i][0],
			      masked.modules);
		char golden[64];
		snprintf(golden, sizeof(golden), "core-%s.%s", gc->name, formats[i][1]);
		md_fx_check_golden(golden, stable);
		free(stable);
		if (json)
			json_text = out;
		else
			free(out);
		free(err);
	}

	struct md_node *root = NULL;
	struct md_error *perr = md_node_parse_json(json_text, strlen(json_text), &root);
	ck_assert_msg(perr == NULL, "the JSON report does not parse: %s", perr ? perr->message : "");
	struct md_node *g = md_test_allocator(root, gc->allocator);
	ck_assert_msg(g != NULL, "no %s allocator in the report of core %s", gc->allocator, gc->name);
	char truth_path[PATH_MAX];
	snprintf(truth_path, sizeof(truth_path), "%s/sysroot-%s/truth.txt", testdata(), gc->name);
	FILE *f = fopen(truth_path, "r");
	ck_assert_msg(f != NULL, "%s: %s", truth_path, strerror(errno));
	char key[64];
	unsigned long long want;
	int fields = 0;
	while (fscanf(f, "%63s %llu", key, &want) == 2) {
		uint64_t got = md_test_json_u64(g, key);
		ck_assert_msg(got == want, "core %s: %s is %llu, %s said %llu", gc->name, key, (unsigned long long)got,
			      gc->allocator, want);
		fields++;
	}
	fclose(f);
	fprintf(stderr, "golden core %s: %d figures of %s equal what the target printed\n", gc->name, fields, gc->allocator);
	ck_assert_int_ge(fields, 10);
	ck_assert_msg(md_node_count(md_node_get(root, "findings")) == 0, "core %s: findings on a healthy heap", gc->name);
	ck_assert_msg(md_node_get_bool(md_node_get(g, "consistent")), "core %s: not consistent", gc->name);
	ck_assert_str_eq(md_node_get_string(md_node_get(g, "symbols")), "heuristic");
	ck_assert_msg(!md_node_get_bool(md_node_get(root, "partial")), "core %s: partial", gc->name);
	md_test_check_classes_sum(root);
	md_node_destroy(root);
	free(json_text);
}

START_TEST(test_golden_cores)
{
	const struct golden_core *gc = &golden_cores[_i];
	char *dir = unpack_sysroot(gc->name);
	check_golden_core(gc, dir, NULL);
	remove_tree(dir);
}
END_TEST

/* The same goldens as on a machine with other libraries: in a private mount namespace, the file
 * at the core's name for each allocator's library (/lib/x86_64-linux-gnu/libc.so.6, ...) is
 * another ELF (this test program) and /usr/lib/debug is empty; processes started from here load
 * copies of the real libraries through LD_LIBRARY_PATH. memdissect must take the sysroot's
 * copies and say the same. */
START_TEST(test_golden_cores_other_host)
{
	if (getenv("CK_FORK") && strcmp(getenv("CK_FORK"), "no") == 0)
		MD_SKIP_OPTIONAL("CK_FORK=no: the mount namespace would outlive the test");
	const struct golden_core *gc = &golden_cores[_i];
	char *dir = unpack_sysroot(gc->name);
	char real[3][PATH_MAX], libs[PATH_MAX + 16], cmd[5 * PATH_MAX];
	snprintf(libs, sizeof(libs), "%s/hostlibs", dir);
	ck_assert(mkdir(libs, 0755) == 0);
	for (size_t k = 0; gc->modules[k]; k++) {
		char core_name[PATH_MAX];
		snprintf(core_name, sizeof(core_name), "/lib/x86_64-linux-gnu/%s", gc->modules[k]);
		if (!realpath(core_name, real[k])) {
			int e = errno;
			remove_tree(dir);
			MD_SKIP_OPTIONAL("%s: %s: this host keeps its libraries elsewhere", core_name, strerror(e));
		}
		snprintf(cmd, sizeof(cmd), "cp '%s' '%s/%s'", real[k], libs, gc->modules[k]);
		ck_assert(run_quiet(cmd) == 0);
	}
	if (unshare(CLONE_NEWNS) != 0) {
		int e = errno;
		remove_tree(dir);
		MD_SKIP_OPTIONAL("unshare(CLONE_NEWNS): %s", strerror(e));
	}
	ck_assert_msg(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "mount private: %s", strerror(errno));
	ck_assert_msg(mount("none", "/usr/lib/debug", "tmpfs", 0, NULL) == 0 || errno == ENOENT,
		      "tmpfs on /usr/lib/debug: %s", strerror(errno));
	char self[PATH_MAX];
	ck_assert(realpath("/proc/self/exe", self) != NULL);
	for (size_t k = 0; gc->modules[k]; k++)
		ck_assert_msg(mount(self, real[k], NULL, MS_BIND, NULL) == 0, "bind %s over %s: %s", self, real[k],
			      strerror(errno));
	setenv("LD_LIBRARY_PATH", libs, 1);
	char prefix[PATH_MAX + 2];
	snprintf(prefix, sizeof(prefix), "%s/", dir);
	check_golden_core(gc, dir, prefix);
	remove_tree(dir);
}
END_TEST

Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *bad = tcase_create("bad_input");
	tcase_set_timeout(bad, 180);
	tcase_add_test(bad, test_bad_input);
	tcase_add_test(bad, test_prefixes);
	tcase_add_test(bad, test_backtrace);
	tcase_add_test(bad, test_shrinking_core_reads);
	tcase_add_test(bad, test_shrinking_core_analysis);
	tcase_add_test(bad, test_shrinking_core_analysis_pread);
	suite_add_tcase(s, bad);

	TCase *kernel = tcase_create("kernel");
	tcase_set_timeout(kernel, 180);
	tcase_add_loop_test(kernel, test_kernel_core_glibc, 0, (int)(sizeof(glibc_modes) / sizeof(glibc_modes[0])));
	tcase_add_test(kernel, test_kernel_core_jemalloc);
	suite_add_tcase(s, kernel);

	TCase *gc = tcase_create("gcore");
	tcase_set_timeout(gc, 300);
	tcase_add_loop_test(gc, test_gcore, 0, 2);
	suite_add_tcase(s, gc);

	TCase *snap = tcase_create("snapshot");
	tcase_set_timeout(snap, 240);
	tcase_add_loop_test(snap, test_snapshot_equals_live, 0, (int)(sizeof(snap_cases) / sizeof(snap_cases[0])));
	tcase_add_test(snap, test_missing_exe);
	suite_add_tcase(s, snap);

	TCase *golden = tcase_create("golden");
	tcase_set_timeout(golden, 120);
	int n_golden = (int)(sizeof(golden_cores) / sizeof(golden_cores[0]));
	tcase_add_loop_test(golden, test_golden_cores, 0, n_golden);
	tcase_add_loop_test(golden, test_golden_cores_other_host, 0, n_golden);
	suite_add_tcase(s, golden);
	return s;
}
