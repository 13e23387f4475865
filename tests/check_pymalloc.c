/* The pymalloc plugin against CPython processes that print the interpreter's own figures
 * (tests/targets/pymalloc_truth.py): sys._debugmallocstats() and sys.getallocatedblocks(), on
 * Debian's stripped python3.11 and on every pyenv build of 3.8-3.13 the machine has. */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

#define DEBIAN_PY "/usr/bin/python3.11"
#define PYENV "/root/.pyenv/versions"

/* ---- Starting a Python target and reading its figures -------------------------------------- */

static const char *script_path(char *buf, size_t len)
{
	const char *data = getenv("MD_TESTDATA");
	ck_assert_msg(data, "MD_TESTDATA is not set (run through make test)");
	snprintf(buf, len, "%s/../targets/pymalloc_truth.py", data);
	return buf;
}

/* Starts `python pymalloc_truth.py mode [a b]` with env (NULL or "VAR=value"). */
static bool py_start3(struct md_test_proc *p, const char *python, const char *env, const char *mode, const char *a,
		      const char *b, const char *c)
{
	char script[PATH_MAX];
	const char *args[9];
	size_t n = 0;
	if (env)
		args[n++] = env;
	args[n++] = python;
	args[n++] = script_path(script, sizeof(script));
	args[n++] = mode;
	if (a)
		args[n++] = a;
	if (b)
		args[n++] = b;
	if (c)
		args[n++] = c;
	args[n] = NULL;
	return md_test_proc_start(p, "pyexec", args);
}

static bool py_start(struct md_test_proc *p, const char *python, const char *env, const char *mode, const char *a,
		     const char *b)
{
	return py_start3(p, python, env, mode, a, b, NULL);
}

/* A "label = 1,234" line of _debugmallocstats. */
static bool dms_value(const char *text, const char *label, uint64_t *v)
{
	const char *s = strstr(text, label);
	if (!s)
		return false;
	s = strchr(s, '=');
	if (!s)
		return false;
	uint64_t x = 0;
	bool any = false;
	for (s++; *s == ' '; s++)
		;
	for (; (*s >= '0' && *s <= '9') || *s == ','; s++)
		if (*s != ',') {
			x = x * 10 + (uint64_t)(*s - '0');
			any = true;
		}
	*v = x;
	return any;
}

struct dms_class {
	unsigned size;
	uint64_t pools, in_use, avail;
};

/* The class table: "    3     64         997          122804        131431". */
static size_t dms_classes(const char *text, struct dms_class *out, size_t max)
{
	const char *s = strstr(text, "-----   ----");
	size_t n = 0;
	if (!s)
		return 0;
	s = strchr(s, '\n');
	while (s && n < max) {
		s++;
		unsigned idx, size;
		unsigned long long pools, in_use, avail;
		if (sscanf(s, " %u %u %llu %llu %llu", &idx, &size, &pools, &in_use, &avail) != 5)
			break;
		out[n++] = (struct dms_class){size, pools, in_use, avail};
		s = strchr(s, '\n');
	}
	return n;
}

static struct md_node *interp_by_id(struct md_node *py, int64_t id)
{
	struct md_node *arr = md_node_get(py, "interpreters");
	for (size_t i = 0; i < md_node_count(arr); i++)
		if (md_node_get_i64(md_node_get(md_node_at(arr, i), "id")) == id)
			return md_node_at(arr, i);
	return NULL;
}

/* stats and size_classes of obj (the allocator or one interpreter) equal _debugmallocstats. */
static void check_dms(const char *what, const struct md_test_proc *p, struct md_node *obj)
{
	static const struct {
		const char *key, *label;
	} figs[] = {
		{"arenas_current", "# arenas allocated current"},
		{"bytes_allocated_blocks", "# bytes in allocated blocks"},
		{"bytes_available_blocks", "# bytes in available blocks"},
		{"bytes_pool_headers", "# bytes lost to pool headers"},
		{"bytes_quantization", "# bytes lost to quantization"},
		{"bytes_arena_alignment", "# bytes lost to arena alignment"},
	};
	for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
		uint64_t truth;
		ck_assert_msg(dms_value(p->truth, figs[i].label, &truth), "%s: no \"%s\" in the target's stats", what,
			      figs[i].label);
		char path[64];
		snprintf(path, sizeof(path), "stats.%s", figs[i].key);
		uint64_t got = md_test_json_u64(obj, path);
		ck_assert_msg(got == truth, "%s: %s memdissect %" PRIu64 ", _debugmallocstats %" PRIu64, what, figs[i].key, got,
			      truth);
	}
	const char *u = strstr(p->truth, " unused pools * ");
	ck_assert_msg(u, "%s: no unused pools line", what);
	const char *ls = u;
	while (ls > p->truth && ls[-1] != '\n')
		ls--;
	ck_assert_uint_eq(md_test_json_u64(obj, "stats.unused_pools"), strtoull(ls, NULL, 10));
	struct dms_class cls[64];
	size_t n = dms_classes(p->truth, cls, 64);
	ck_assert_msg(n > 0, "%s: no class table", what);
	struct md_node *sc = md_node_get(obj, "size_classes");
	ck_assert_msg(md_node_count(sc) == n, "%s: %zu size classes, _debugmallocstats %zu", what, md_node_count(sc), n);
	for (size_t i = 0; i < n; i++) {
		struct md_node *c = md_node_at(sc, i);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(c, "size")), cls[i].size);
		ck_assert_msg(md_node_get_u64(md_node_get(c, "pools")) == cls[i].pools &&
				      md_node_get_u64(md_node_get(c, "blocks_in_use")) == cls[i].in_use &&
				      md_node_get_u64(md_node_get(c, "blocks_available")) == cls[i].avail,
			      "%s: class %u differs", what, cls[i].size);
	}
}

static struct md_node *attach_py(const struct md_test_proc *p, const char *const *extra, struct md_node **py_ret)
{
	int status = -1;
	struct md_node *report = md_test_attach_json(p->pid, extra, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	*py_ret = md_test_allocator(report, "pymalloc");
	ck_assert_msg(*py_ret != NULL, "no pymalloc allocator in the report");
	return report;
}

static void check_exact(const char *what, const struct md_test_proc *p, struct md_node *py)
{
	ck_assert_str_eq(md_node_get_string(md_node_get(py, "mode")), "pymalloc");
	ck_assert(md_node_get_bool(md_node_get(py, "consistent")));
	struct md_node *main_interp = md_node_count(md_node_get(py, "interpreters")) > 1 ? interp_by_id(py, 0) : py;
	ck_assert_msg(main_interp != NULL, "%s: no main interpreter", what);
	check_dms(what, p, main_interp);
	ck_assert_msg(md_test_json_u64(py, "stats.allocated_blocks") == md_test_truth(p, "allocated_blocks"),
		      "%s: allocated_blocks memdissect %" PRIu64 ", sys.getallocatedblocks %llu", what,
		      md_test_json_u64(py, "stats.allocated_blocks"), md_test_truth(p, "allocated_blocks"));
}

/* ---- Tests --------------------------------------------------------------------------------- */

/* Debian 12's python3.11: stripped, LTO, libpython inside the executable. */
START_TEST(test_debian_stripped)
{
	SKIP_WITHOUT_PTRACE();
	if (access(DEBIAN_PY, X_OK) != 0)
		MD_SKIP("%s is not installed (scripts/deps.sh installs python3.11)", DEBIAN_PY);
	struct md_test_proc p;
	ck_assert(py_start(&p, DEBIAN_PY, NULL, "basic", NULL, NULL));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	ck_assert_str_eq(md_node_get_string(md_node_get(py, "symbols")), "heuristic");
	ck_assert_str_eq(md_node_get_string(md_node_get(py, "version")), "3.11.2");
	check_exact("debian 3.11", &p, py);
	/* 200k strings, half kept: the census sees at least the 100k kept. */
	struct md_node *types = md_node_get(py, "types");
	ck_assert_msg(md_node_count(types) > 10, "census has %zu types", md_node_count(types));
	ck_assert_str_eq(md_node_get_string(md_node_get(md_node_at(types, 0), "name")), "str");
	ck_assert_uint_ge(md_node_get_u64(md_node_get(md_node_at(types, 0), "count")), 100000);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* Debian's libpython3.11.so.1.0 (stripped, PIC) in an embedding program. */
START_TEST(test_debian_embedder)
{
	SKIP_WITHOUT_PTRACE();
	char script[PATH_MAX];
	const char *args[] = {script_path(script, sizeof(script)), "basic", NULL};
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "pyembed", args));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	ck_assert_str_eq(md_node_get_string(md_node_get(py, "symbols")), "heuristic");
	ck_assert_msg(strstr(md_node_get_string(md_node_get(py, "module")), "libpython3.11.so.1.0"), "module %s",
		      md_node_get_string(md_node_get(py, "module")));
	check_exact("embedded libpython3.11", &p, py);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

static const char *const pyenv_versions[] = {"3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"};

/* Every pyenv build: symbols (and DWARF for 3.12/3.13), then the built-in table alone. */
START_TEST(test_pyenv_version)
{
	SKIP_WITHOUT_PTRACE();
	char python[PATH_MAX];
	snprintf(python, sizeof(python), PYENV "/%s/bin/python3", pyenv_versions[_i]);
	if (access(python, X_OK) != 0)
		MD_SKIP("pyenv %s is not installed (%s)", pyenv_versions[_i], python);
	struct md_test_proc p;
	ck_assert(py_start(&p, python, NULL, "basic", NULL, NULL));
	for (int pass = 0; pass < 2; pass++) {
		const char *off[] = {"--debuginfo=off", NULL};
		struct md_node *py;
		struct md_node *report = attach_py(&p, pass ? off : NULL, &py);
		char what[64];
		snprintf(what, sizeof(what), "pyenv %s%s", pyenv_versions[_i], pass ? " --debuginfo=off" : "");
		check_exact(what, &p, py);
		struct md_node *m = md_node_path(py, "layout.builtin_matches_dwarf");
		if (m)
			ck_assert_msg(md_node_get_bool(m), "%s: built-in layout differs from DWARF: %s", what,
				      md_node_get_string(md_node_path(py, "layout.mismatch")));
		md_test_check_classes_sum(report);
		md_node_destroy(report);
	}
	md_test_proc_stop(&p);
}
END_TEST

/* 3.12 keeps a state per interpreter, 3.13 a pointer to one: an isolated subinterpreter's arenas
 * are walked too. */
START_TEST(test_subinterpreter)
{
	SKIP_WITHOUT_PTRACE();
	const char *python = _i ? PYENV "/3.13.0/bin/python3" : PYENV "/3.12.1/bin/python3";
	if (access(python, X_OK) != 0)
		MD_SKIP("%s is not installed", python);
	struct md_test_proc p;
	ck_assert(py_start(&p, python, NULL, "subinterp", NULL, NULL));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	ck_assert_uint_ge(md_node_count(md_node_get(py, "interpreters")), 2);
	check_exact(python, &p, py);
	struct md_node *sub = interp_by_id(py, 1);
	ck_assert_msg(sub != NULL, "no interpreter 1");
	/* 80k non-empty tuples in the subinterpreter: its own arenas hold them. */
	ck_assert_uint_ge(md_test_json_u64(sub, "stats.allocated_blocks"), 80000);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

static uint64_t type_count(struct md_node *py, const char *name)
{
	struct md_node *types = md_node_get(py, "types");
	for (size_t i = 0; i < md_node_count(types); i++) {
		const char *n = md_node_get_string(md_node_get(md_node_at(types, i), "name"));
		if (n && strcmp(n, name) == 0)
			return md_node_get_u64(md_node_get(md_node_at(types, i), "count"));
	}
	return 0;
}

/* Exactly N instances of a class with a managed dict, M of a small __slots__ class (pymalloc
 * blocks) and L of a class above 512 bytes (glibc chunks, found through the GC lists). */
START_TEST(test_census)
{
	SKIP_WITHOUT_PTRACE();
	static const char *const pys[] = {DEBIAN_PY, PYENV "/3.10.13/bin/python3", PYENV "/3.12.1/bin/python3",
					  PYENV "/3.13.0/bin/python3"};
	const char *python = pys[_i];
	if (access(python, X_OK) != 0)
		MD_SKIP("%s is not installed", python);
	struct md_test_proc p;
	ck_assert(py_start3(&p, python, NULL, "census", "3001", "1999", "777"));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	check_exact(python, &p, py);
	ck_assert_msg(type_count(py, "Small") == 3001, "%s: Small %" PRIu64, python, type_count(py, "Small"));
	ck_assert_msg(type_count(py, "Slotted") == 1999, "%s: Slotted %" PRIu64, python, type_count(py, "Slotted"));
	ck_assert_msg(type_count(py, "Big") == 777, "%s: Big %" PRIu64, python, type_count(py, "Big"));
	ck_assert(md_node_get_bool(md_node_path(py, "census.gc_lists_walked")));
	md_node_destroy(report);
	/* the text report shows the top types: "Small" among them with its exact count */
	if (_i == 0) {
		char pid[32];
		snprintf(pid, sizeof(pid), "%d", (int)p.pid);
		const char *args[] = { "attach", "--no-color", pid, NULL };
		char *out = NULL, *err = NULL;
		ck_assert_int_eq(md_test_run(args, &out, &err, 60000), 0);
		const char *table = strstr(out, "live objects by type");
		ck_assert_msg(table, "no type table in the text report");
		const char *row = strstr(table, "\n    Small ");
		ck_assert_msg(row && strtoull(row + 10, NULL, 10) == 3001, "Small's row: %.60s", row ? row : "(none)");
		free(out);
		free(err);
	}
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_threads)
{
	SKIP_WITHOUT_PTRACE();
	if (access(DEBIAN_PY, X_OK) != 0)
		MD_SKIP("%s is not installed", DEBIAN_PY);
	struct md_test_proc p;
	ck_assert(py_start(&p, DEBIAN_PY, NULL, "threads", NULL, NULL));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	check_exact("threads", &p, py);
	ck_assert_uint_ge(type_count(py, "str"), 80000);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* Private_Dirty + Private_Clean (USS) of a process (smaps_rollup), in kB. */
static unsigned long long private_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	ck_assert_msg(f != NULL, "%s", path);
	unsigned long long kb = 0, v;
	int found = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Private_Dirty: %llu kB", &v) == 1 || sscanf(line, "Private_Clean: %llu kB", &v) == 1) {
			kb += v;
			found++;
		}
	fclose(f);
	ck_assert_msg(found == 2, "no Private_Dirty/Private_Clean in %s", path);
	return kb;
}

/* A forked child: most of its arenas are pages it still shares copy-on-write with its parent.
 * The arena workers read them through md_target_read_pages, which reads such pages through
 * /proc/PID/mem (a pinning process_vm_readv could unshare them): figures exact, the arenas read
 * by the workers, and the child's private memory the same after the attach as before it. */
START_TEST(test_forked_child)
{
	SKIP_WITHOUT_PTRACE();
	if (access(DEBIAN_PY, X_OK) != 0)
		MD_SKIP("%s is not installed", DEBIAN_PY);
	struct md_test_proc p;
	ck_assert(py_start(&p, DEBIAN_PY, NULL, "fork", NULL, NULL));
	struct md_test_proc child = p;
	child.pid = (pid_t)md_test_truth(&p, "child_pid");
	unsigned long long before = private_kb(child.pid);
	struct md_node *py;
	struct md_node *report = attach_py(&child, NULL, &py);
	check_exact("forked child", &child, py);
	ck_assert_uint_eq(md_test_json_u64(py, "walk_threads.arenas_read_again"), 0);
	ck_assert_uint_eq(private_kb(child.pid), before);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	kill(child.pid, SIGKILL);
	md_test_proc_stop(&p);
}
END_TEST

/* PYTHONMALLOC=malloc: pymalloc off; pymalloc_debug: hooks in front, still walked exactly. */
START_TEST(test_other_allocators)
{
	SKIP_WITHOUT_PTRACE();
	static const struct {
		const char *python, *env, *mode;
	} cases[] = {
		{DEBIAN_PY, "PYTHONMALLOC=malloc", "malloc"},
		{DEBIAN_PY, "PYTHONMALLOC=pymalloc_debug", "debug"},
		{PYENV "/3.12.1/bin/python3", "PYTHONMALLOC=malloc", "malloc"},
		{PYENV "/3.13.0/bin/python3", "PYTHONMALLOC=mimalloc", "mimalloc"},
		{PYENV "/3.11.7/bin/python3", "PYTHONMALLOC=pymalloc_debug", "debug"},
	};
	if (access(cases[_i].python, X_OK) != 0)
		MD_SKIP("%s is not installed", cases[_i].python);
	struct md_test_proc p;
	ck_assert(py_start(&p, cases[_i].python, cases[_i].env, "basic", NULL, NULL));
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	const char *mode = md_node_get_string(md_node_get(py, "mode"));
	ck_assert_msg(mode && strcmp(mode, cases[_i].mode) == 0, "%s %s: mode %s", cases[_i].python, cases[_i].env, mode);
	bool on = strcmp(cases[_i].mode, "debug") == 0;
	ck_assert_int_eq(md_node_get_bool(md_node_get(py, "pymalloc_in_use")), on);
	if (on) {
		/* Exact: the target binds its readinto before the figures (pymalloc_truth.py). */
		ck_assert(md_node_get_bool(md_node_get(py, "consistent")));
		check_dms("debug", &p, py);
		ck_assert_msg(md_test_json_u64(py, "stats.allocated_blocks") == md_test_truth(&p, "allocated_blocks"),
			      "debug: allocated_blocks memdissect %" PRIu64 ", sys.getallocatedblocks %llu",
			      md_test_json_u64(py, "stats.allocated_blocks"), md_test_truth(&p, "allocated_blocks"));
	}
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

static const struct {
	const char *mode, *rule;
} hostile[] = {
	{"corrupt-header", "broken header"},
	{"corrupt-loop", "free list loops back"},
	{"corrupt-out", "not a block of the pool"},
};

/* The target damages one pool after its figures: a finding at that pool, the rest still walked. */
START_TEST(test_hostile_pools)
{
	SKIP_WITHOUT_PTRACE();
	if (access(DEBIAN_PY, X_OK) != 0)
		MD_SKIP("%s is not installed", DEBIAN_PY);
	struct md_test_proc p;
	ck_assert(py_start(&p, DEBIAN_PY, NULL, hostile[_i].mode, NULL, NULL));
	uint64_t pool = md_test_truth(&p, "pool_addr");
	struct md_node *py;
	struct md_node *report = attach_py(&p, NULL, &py);
	ck_assert_msg(md_test_corrupt_finding_at(report, "pymalloc", pool, hostile[_i].rule), "%s: no corrupt finding at pool 0x%" PRIx64 " saying \"%s\"",
		      hostile[_i].mode, pool, hostile[_i].rule);
	ck_assert(!md_node_get_bool(md_node_get(py, "consistent")));
	ck_assert_uint_ge(md_test_json_u64(py, "corrupt_pools"), 1);
	ck_assert_uint_ge(md_test_json_u64(py, "stats.arenas_current"), 1);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st != 't' && st != 'T' && st != 'Z' && st != 0, "%s: target state %c after attach", hostile[_i].mode, st);
	md_test_proc_stop(&p);
}
END_TEST

Suite *pymalloc_suite(void)
{
	Suite *s = suite_create("pymalloc");
	TCase *tc = tcase_create("truth");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_debian_stripped);
	tcase_add_test(tc, test_debian_embedder);
	tcase_add_loop_test(tc, test_pyenv_version, 0, (int)(sizeof(pyenv_versions) / sizeof(pyenv_versions[0])));
	tcase_add_loop_test(tc, test_subinterpreter, 0, 2);
	tcase_add_loop_test(tc, test_census, 0, 4);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_forked_child);
	tcase_add_loop_test(tc, test_other_allocators, 0, 5);
	suite_add_tcase(s, tc);
	TCase *hc = tcase_create("hostile");
	tcase_set_timeout(hc, 60);
	tcase_add_loop_test(hc, test_hostile_pools, 0, (int)(sizeof(hostile) / sizeof(hostile[0])));
	suite_add_tcase(s, hc);
	return s;
}
