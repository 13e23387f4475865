/* memdissect cgroup, memdissect system and attach --wss (issue 18).
 * Parsers on saved text (tests/data/cgroup, README there says where each file comes from); the
 * v2 directory reader and report on a directory made of the saved v2 files; a real v1 memory
 * cgroup made here with a process in it that makes a heap, clean page cache and a tmpfs file;
 * a real v2 group when the host has the v2 memory controller (optional skip otherwise); the
 * system report against sysinfo(2); the working set of a target that touches a known set of
 * pages during the window. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup_report.h"
#include "cgroupfs.h"
#include "procfs.h"
#include "tests.h"

#define MIB (1024ULL * 1024)

static char *data_file(const char *name, size_t *len)
{
	const char *dir = getenv("MD_TESTDATA");
	ck_assert_msg(dir, "MD_TESTDATA is not set (run through make test)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup/%s", dir, name);
	char *buf;
	struct md_error *err = md_read_file(path, &buf, len);
	ck_assert_msg(!err, "%s: %s", path, err ? err->message : "");
	return buf;
}

/* ---- parsers on saved text ---- */

START_TEST(test_parse_v1_stat_saved)
{
	size_t len;
	char *text = data_file("v1-memory.stat", &len);
	struct md_kv_list l;
	struct md_error *err = md_parse_keyed(text, len, false, &l);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	ck_assert_uint_ge(l.n, 30);
	bool found;
	/* The first line and the last line as saved. */
	ck_assert_str_eq(l.items[0].key, "cache");
	ck_assert_uint_eq(md_kv_get(&l, "cache", 0, &found), 9584640);
	ck_assert(found);
	ck_assert_uint_eq(md_kv_get(&l, "total_unevictable", 7, &found), 0);
	ck_assert(found);
	ck_assert_uint_eq(md_kv_get(&l, "hierarchical_memory_limit", 0, NULL), 9223372036854771712ULL);
	ck_assert_uint_eq(md_kv_get(&l, "no_such_key", 42, &found), 42);
	ck_assert(!found);
	md_kv_list_deinit(&l);
	free(text);

	text = data_file("v1-memory.oom_control", &len);
	err = md_parse_keyed(text, len, false, &l);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	ck_assert_uint_eq(l.n, 3);
	ck_assert_str_eq(l.items[2].key, "oom_kill");
	md_kv_list_deinit(&l);
	free(text);
}
END_TEST

START_TEST(test_parse_meminfo_saved)
{
	size_t len;
	char *text = data_file("meminfo", &len);
	struct md_kv_list l;
	struct md_error *err = md_parse_keyed(text, len, true, &l);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	/* Every line parsed (HugePages_Total and friends carry no unit). */
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	ck_assert_uint_eq(l.n, lines);
	/* Cross-check with the older parser in procfs.c. */
	struct md_meminfo mi;
	ck_assert(!md_parse_meminfo(text, len, &mi));
	ck_assert_uint_eq(md_kv_get(&l, "MemTotal", 0, NULL), mi.mem_total);
	ck_assert_uint_eq(md_kv_get(&l, "MemAvailable", 0, NULL), mi.mem_available);
	ck_assert_uint_eq(md_kv_get(&l, "Shmem", 0, NULL), mi.shmem);
	md_kv_list_deinit(&l);

	struct md_node *sys;
	err = md_system_meminfo_node(text, len, &sys);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	uint64_t total = md_test_json_u64(sys, "total_bytes"), avail = md_test_json_u64(sys, "available_bytes");
	ck_assert_uint_eq(total, mi.mem_total);
	ck_assert_uint_eq(md_test_json_u64(sys, "used_bytes"), total - avail);
	ck_assert_uint_eq(md_test_json_u64(sys, "buff_cache_bytes"),
			  mi.buffers + mi.cached + md_test_json_u64(sys, "meminfo.SReclaimable"));
	md_node_destroy(sys);
	free(text);
}
END_TEST

START_TEST(test_parse_pressure_saved)
{
	size_t len;
	char *text = data_file("v2-root-memory.pressure", &len);
	struct md_psi psi;
	struct md_error *err = md_parse_pressure(text, len, &psi);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	ck_assert(psi.some.valid && psi.full.valid);
	ck_assert(psi.full.total_us <= psi.some.total_us); /* "full" stalls are a subset of "some" */
	free(text);

	text = data_file("v2-memory.pressure", &len);
	ck_assert(!md_parse_pressure(text, len, &psi));
	ck_assert(psi.some.avg10 > 1.2499 && psi.some.avg10 < 1.2501);
	ck_assert(psi.full.avg300 > 0.0499 && psi.full.avg300 < 0.0501);
	ck_assert_uint_eq(psi.some.total_us, 123456);
	ck_assert_uint_eq(psi.full.total_us, 65432);
	free(text);
}
END_TEST

static void expect_bad(const char *text, bool meminfo, const char *needle)
{
	struct md_kv_list l;
	struct md_error *err = md_parse_keyed(text, strlen(text), meminfo, &l);
	ck_assert_msg(err, "accepted: %s", text);
	ck_assert_int_eq(err->code, MD_ERR_BAD_DATA);
	ck_assert_msg(strstr(err->message, needle), "'%s' lacks '%s'", err->message, needle);
	md_error_destroy(err);
}

START_TEST(test_parse_hostile)
{
	expect_bad("anon 12x\n", false, "text after the number");
	expect_bad("anon\n", false, "not a number");
	expect_bad("anon 99999999999999999999\n", false, "not a number");
	expect_bad("a_key_that_is_longer_than_forty_seven_bytes_for_sure 1\n", false, "key too long");
	expect_bad("MemTotal 12 kB\n", true, "no ':'");
	expect_bad("MemTotal: 18446744073709551615 kB\n", true, "too large");
	/* More lines than any real file: refused, not grown without bound. */
	size_t n = (MD_KV_MAX + 1) * 8;
	char *big = malloc(n + 1), *p = big;
	for (int i = 0; i <= MD_KV_MAX; i++)
		p += sprintf(p, "k%04d 1\n", i % 10000);
	expect_bad(big, false, "too many lines");
	free(big);
	/* Unterminated input: the parser stops at len. */
	struct md_kv_list l;
	ck_assert(!md_parse_keyed("anon 5\nfile 789", 13, false, &l));
	ck_assert_uint_eq(l.n, 2);
	ck_assert_uint_eq(l.items[1].value, 7);
	md_kv_list_deinit(&l);

	struct md_psi psi;
	const char *bad_psi[] = {
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",         /* no some */
		"some avg10=0.00 avg60=0.00 total=0\n",                     /* a field missing */
		"some avg10=101.00 avg60=0.00 avg300=0.00 total=0\n",       /* above 100 % */
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"some avg10=. avg60=0.00 avg300=0.00 total=0\n",
	};
	for (size_t i = 0; i < sizeof(bad_psi) / sizeof(bad_psi[0]); i++) {
		struct md_error *err = md_parse_pressure(bad_psi[i], strlen(bad_psi[i]), &psi);
		ck_assert_msg(err && err->code == MD_ERR_BAD_DATA, "accepted: %s", bad_psi[i]);
		md_error_destroy(err);
	}
	pid_t *pids;
	size_t np;
	ck_assert(!md_parse_pid_list("1\n23\n\n456\n", 10, &pids, &np));
	ck_assert_uint_eq(np, 3);
	ck_assert_int_eq(pids[2], 456);
	free(pids);
	const char *bad_pids[] = { "0\n", "-1\n", "12 13\n", "99999999999\n" };
	for (size_t i = 0; i < 4; i++) {
		struct md_error *err = md_parse_pid_list(bad_pids[i], strlen(bad_pids[i]), &pids, &np);
		ck_assert_msg(err, "accepted: %s", bad_pids[i]);
		md_error_destroy(err);
	}
	char buf[64];
	ck_assert_str_eq(md_text_safe("a\033[31mb\n\\", buf, sizeof(buf)), "a\\x1b[31mb\\x0a\\\\");
	ck_assert_str_eq(md_text_safe("\xc3\xa9", buf, sizeof(buf)), "\\xc3\\xa9");
	ck_assert_str_eq(md_text_safe("abcdef", buf, 4), "abc");
}
END_TEST

/* ---- the v2 reader and report on a directory of saved v2 files ---- */

static void copy_data(const char *name, const char *dir, const char *as)
{
	size_t len;
	char *text = data_file(name, &len);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, as);
	FILE *f = fopen(path, "w");
	ck_assert(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	free(text);
}

static void make_v2_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/md-cgv2-XXXXXX");
	ck_assert(mkdtemp(dir));
	const char *const files[] = { "memory.current", "memory.max", "memory.high", "memory.stat", "memory.events",
				      "memory.pressure" };
	for (size_t i = 0; i < 6; i++) {
		char name[64];
		snprintf(name, sizeof(name), "v2-%s", files[i]);
		copy_data(name, dir, files[i]);
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "w");
	ck_assert(f);
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
}

static void remove_dir(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const struct md_node *part_named(const struct md_node *doc, const char *name)
{
	const struct md_node *parts = md_node_get(doc, "parts");
	for (size_t i = 0; i < md_node_count(parts); i++)
		if (strcmp(md_node_get_string(md_node_get(md_node_at(parts, i), "name")), name) == 0)
			return md_node_at(parts, i);
	return NULL;
}

static int64_t part_bytes(const struct md_node *doc, const char *name)
{
	const struct md_node *p = part_named(doc, name);
	return p ? md_node_get_i64(md_node_get(p, "bytes")) : 0;
}

/* The parts add up to usage exactly (the remainder included). */
static void check_parts_sum(const struct md_node *doc)
{
	const struct md_node *parts = md_node_get(doc, "parts");
	int64_t sum = 0;
	for (size_t i = 0; i < md_node_count(parts); i++)
		sum += md_node_get_i64(md_node_get(md_node_at(parts, i), "bytes"));
	ck_assert_int_eq(sum, (int64_t)md_node_get_u64(md_node_path(doc, "cgroup.usage_bytes")));
	ck_assert_str_eq(md_node_get_string(md_node_get(md_node_at(parts, md_node_count(parts) - 1), "name")),
			 "remainder");
}

START_TEST(test_v2_dir_saved)
{
	char dir[64];
	make_v2_dir(dir, sizeof(dir));
	struct md_cgroup cg;
	struct md_error *err = md_cgroup_read(dir, "/test.slice/app", &cg);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	ck_assert_int_eq(cg.version, 2);
	ck_assert_uint_eq(cg.usage_bytes, 168 * MIB + 256 * 1024);
	ck_assert_uint_eq(cg.limit_bytes, 256 * MIB);
	ck_assert_uint_eq(cg.high_bytes, UINT64_MAX); /* "max" */
	ck_assert_uint_eq(md_kv_get(&cg.events, "oom_kill", 0, NULL), 1);
	ck_assert_uint_eq(md_kv_get(&cg.events, "high", 0, NULL), 12);
	ck_assert(cg.has_pressure);
	ck_assert_uint_eq(cg.n_pids, 1);

	struct md_cgroup_part parts[MD_CGROUP_MAX_PARTS];
	size_t n;
	md_cgroup_parts(&cg, 60 * MIB, parts, &n);
	/* Figures chosen in the sample (tests/data/cgroup/README.md). */
	struct { const char *name; int64_t bytes; bool reclaimable; } want[] = {
		{ "anon (member processes)", 60 * MIB, false },
		{ "anon (no member process)", 40 * MIB, false },
		{ "page cache (clean)", 47 * MIB, true },
		{ "page cache (dirty)", 2 * MIB, false },
		{ "page cache (writeback)", 1 * MIB, false },
		{ "shmem and tmpfs", 10 * MIB, false },
		{ "slab (reclaimable)", 4 * MIB, true },
		{ "slab (unreclaimable)", 2 * MIB, false },
		{ "kernel stacks", 294912, false },
		{ "page tables", 1 * MIB, false },
		{ "percpu", 65536, false },
		{ "vmalloc", 16384, false },
		{ "other kernel", 671744, false },
		{ "remainder", 256 * 1024, false },
	};
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(parts[i].name, want[i].name);
		ck_assert_int_eq(parts[i].bytes, want[i].bytes);
		ck_assert_int_eq(parts[i].reclaimable, want[i].reclaimable);
	}
	/* Members holding more anon than the group (shared COW pages counted per process). */
	md_cgroup_parts(&cg, 500 * MIB, parts, &n);
	ck_assert_int_eq(parts[0].bytes, 100 * MIB);
	ck_assert_str_eq(parts[1].name, "page cache (clean)");
	md_cgroup_deinit(&cg);

	struct md_node *doc;
	err = md_cgroup_report_build(dir, "/test.slice/app", NULL, &doc);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	check_parts_sum(doc);
	ck_assert_uint_eq(md_test_json_u64(doc, "cgroup.version"), 2);
	ck_assert_uint_eq(md_test_json_u64(doc, "cgroup.stat.file_dirty"), 2 * MIB);
	ck_assert_uint_eq(md_test_json_u64(doc, "cgroup.events.max"), 3);
	ck_assert_uint_eq(md_test_json_u64(doc, "cgroup.pressure.full.total_us"), 65432);
	ck_assert_uint_eq(md_test_json_u64(doc, "summary.reclaimable_bytes"), 51 * MIB);
	ck_assert_uint_eq(md_test_json_u64(doc, "summary.headroom_bytes"), 88 * MIB - 256 * 1024);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "processes")), 1);
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "processes.0.pid")), getpid());
	const char *verdict = md_node_get_string(md_node_path(doc, "summary.verdict"));
	ck_assert_msg(strstr(verdict, "34 % from the limit") && strstr(verdict, "51.0 MiB of the usage is reclaimable"),
		      "%s", verdict);
	char *text = NULL;
	size_t tlen = 0;
	FILE *f = open_memstream(&text, &tlen);
	ck_assert(!md_cgroup_render_text(doc, false, f));
	fclose(f);
	ck_assert_msg(strstr(text, verdict) && strstr(text, "page cache (dirty)") && strstr(text, "oom_kill 1") &&
			      strstr(text, "some 1.25 %"),
		      "%s", text);
	free(text);
	md_node_destroy(doc);

	/* A container's name is theirs: escaped in text, and in HTML also as markup. */
	err = md_cgroup_report_build(dir, "/evil\033[2J<script>\n", NULL, &doc);
	ck_assert_msg(!err, "%s", err ? err->message : "");
	f = open_memstream(&text, &tlen);
	ck_assert(!md_cgroup_render_text(doc, false, f));
	fclose(f);
	ck_assert_msg(!strchr(text, '\033') && strstr(text, "/evil\\x1b[2J<script>\\x0a"), "%s", text);
	free(text);
	f = open_memstream(&text, &tlen);
	ck_assert(!md_above_render_html(doc, false, f));
	fclose(f);
	ck_assert_msg(!strchr(text, '\033') && !strstr(text, "<script>") && strstr(text, "&lt;script&gt;") &&
			      strstr(text, "</html>"),
		      "%s", text);
	free(text);
	md_node_destroy(doc);
	remove_dir(dir);
}
END_TEST

/* ---- a real v1 memory cgroup ---- */

static void write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_msg(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "%s: %s", path, strerror(errno));
	close(fd);
}

static void command(struct md_test_proc *p, const char *cmd, const char *reply)
{
	ck_assert(write(p->in_fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd));
	char *line = md_test_proc_wait_line(p, reply, 60000);
	ck_assert_msg(line, "no '%s' after '%s'", reply, cmd);
	free(line);
}

/* A child group of our own memory cgroup (so the test stays inside whatever limit the run has). */
static bool make_child_group(int want_version, char *dir, size_t len, const char **why)
{
	char *own, *path;
	struct md_error *err = md_cgroup_dir_of_pid(getpid(), "/sys/fs/cgroup", &own, &path);
	if (err) {
		*why = "this process has no memory cgroup";
		md_error_destroy(err);
		return false;
	}
	struct md_cgroup cg;
	err = md_cgroup_read(own, path, &cg);
	int version = err ? 0 : cg.version;
	md_error_destroy(err);
	if (!err)
		md_cgroup_deinit(&cg);
	snprintf(dir, len, "%s/md-test-%d", own, (int)getpid());
	free(own);
	free(path);
	if (version != want_version) {
		*why = want_version == 2 ? "no cgroup v2 memory controller on this host (v1 only)"
					 : "the memory controller is not cgroup v1 here";
		return false;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		*why = "cannot make a memory cgroup (not root?)";
		return false;
	}
	return true;
}

static void remove_group(const char *dir)
{
	/* The members are gone; the group empties once the kernel has reaped them. */
	for (int i = 0; i < 200 && rmdir(dir) != 0 && errno == EBUSY; i++)
		usleep(10000);
}

/* NULL when done, else why it could not run. */
static const char *cgroup_live(int version)
{
	char dir[4096];
	const char *why = NULL;
	if (!make_child_group(version, dir, sizeof(dir), &why))
		return why;
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "cgroup_member", NULL));
	char buf[4200], file[256], shm[256];
	snprintf(buf, sizeof(buf), "%s/cgroup.procs", dir);
	char pid_text[32];
	snprintf(pid_text, sizeof(pid_text), "%d\n", (int)p.pid);
	write_str(buf, pid_text);
	snprintf(file, sizeof(file), "/var/tmp/md-cgroup-file-%d", (int)getpid());
	snprintf(shm, sizeof(shm), "/dev/shm/md-cgroup-shm-%d", (int)getpid());
	command(&p, "heap 32\n", "heap_bytes");
	snprintf(buf, sizeof(buf), "file %s 24\n", file);
	command(&p, buf, "file_bytes");
	snprintf(buf, sizeof(buf), "shm %s 16\n", shm);
	command(&p, buf, "shm_bytes");

	const char *args[] = { "cgroup", "--json", "--attach", dir, NULL };
	char *out = NULL, *err_text = NULL;
	int rc = md_test_run(args, &out, &err_text, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err_text);
	struct md_node *doc;
	ck_assert(!md_node_parse_json(out, strlen(out), &doc));
	check_parts_sum(doc);
	ck_assert_uint_eq(md_test_json_u64(doc, "cgroup.version"), (uint64_t)version);
	/* What the member made, each in its part (a little more: the program's own pages). */
	int64_t anon = part_bytes(doc, "anon (member processes)");
	int64_t cache = part_bytes(doc, "page cache (clean)") + part_bytes(doc, "page cache (dirty)") +
			part_bytes(doc, "page cache (writeback)");
	int64_t shmem = part_bytes(doc, "shmem and tmpfs");
	fprintf(stderr, "cgroup v%d: anon %lld cache %lld shmem %lld usage %llu remainder %lld\n", version,
		(long long)anon, (long long)cache, (long long)shmem,
		(unsigned long long)md_test_json_u64(doc, "cgroup.usage_bytes"),
		(long long)md_node_get_i64(md_node_path(doc, "summary.remainder_bytes")));
	ck_assert_int_ge(anon, (int64_t)(32 * MIB));
	ck_assert_int_le(anon, (int64_t)(36 * MIB));
	ck_assert_int_ge(cache, (int64_t)(24 * MIB));
	ck_assert_int_le(cache, (int64_t)(28 * MIB));
	ck_assert_int_ge(shmem, (int64_t)(16 * MIB));
	ck_assert_int_le(shmem, (int64_t)(17 * MIB));
	ck_assert(md_node_get_bool(md_node_get(part_named(doc, "page cache (clean)"), "reclaimable")));
	ck_assert_uint_ge(md_test_json_u64(doc, "summary.reclaimable_bytes"), 20 * MIB);
	/* The one member, with its figures and its allocator classes from the attach. */
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "processes")), 1);
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "processes.0.pid")), p.pid);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "processes.0.comm")), "cgroup_member");
	ck_assert_uint_ge(md_test_json_u64(doc, "processes.0.anon_bytes"), 32 * MIB);
	ck_assert_uint_ge(md_test_json_u64(doc, "processes.0.uss_bytes"), 32 * MIB);
	ck_assert_uint_ge(md_test_json_u64(doc, "processes.0.classes.live"), 32 * MIB);
	/* The tmpfs file is not mapped: it is in the cgroup's usage but in no process's PSS. */
	ck_assert_uint_lt(md_test_json_u64(doc, "summary.members_pss_bytes") + 16 * MIB,
			  md_test_json_u64(doc, "cgroup.usage_bytes"));
	md_node_destroy(doc);
	free(out);
	free(err_text);

	/* Text: the verdict first, the parts, the member (its comm, hostile now, escaped); --pid
	 * finds the same group. */
	command(&p, "name cg\\e[2Jx\n", "named");
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *targs[] = { "cgroup", "--pid", pid_text, NULL };
	rc = md_test_run(targs, &out, &err_text, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err_text);
	ck_assert_msg(strstr(out, "no memory limit;") || strstr(out, "from the limit"), "%s", out);
	ck_assert_msg(strstr(out, "Where the usage goes") && strstr(out, "cg\\x1b[2Jx") && !strchr(out, '\033') &&
			      strstr(out, "shmem and tmpfs") && strstr(out, dir + strlen("/sys/fs/cgroup/memory")),
		      "%s", out);
	free(out);
	free(err_text);
	/* --html writes a page, stdout stays empty. */
	char html[64];
	snprintf(html, sizeof(html), "/tmp/md-cgroup-%d.html", (int)getpid());
	const char *hargs[] = { "cgroup", "--html", html, dir, NULL };
	rc = md_test_run(hargs, &out, &err_text, 60000);
	ck_assert_msg(rc == 0 && out[0] == '\0', "exit %d: %s", rc, err_text);
	size_t hlen;
	char *page;
	ck_assert(!md_read_file(html, &page, &hlen));
	ck_assert_msg(strstr(page, "<!DOCTYPE html>") && strstr(page, "cg\\x1b[2Jx") && !strchr(page, '\033'), "%s", page);
	free(page);
	unlink(html);
	free(out);
	free(err_text);

	md_test_proc_stop(&p);
	unlink(file);
	unlink(shm);
	remove_group(dir);
	return NULL;
}

START_TEST(test_cgroup_v1_live)
{
	SKIP_WITHOUT_PTRACE();
	const char *why = cgroup_live(1);
	if (why)
		MD_SKIP("%s", why);
}
END_TEST

/* Optional: CI's host (like this one) has the memory controller in v1 only; the v2 code is
 * tested there on the saved v2 files (test_v2_dir_saved). */
START_TEST(test_cgroup_v2_live)
{
	SKIP_WITHOUT_PTRACE();
	const char *why = cgroup_live(2);
	if (why)
		MD_SKIP_OPTIONAL("%s", why);
}
END_TEST

START_TEST(test_cgroup_usage_errors)
{
	struct {
		const char *args[5];
		int code;
		const char *needle;
	} cases[] = {
		{ { "cgroup", NULL }, 2, "cgroup takes a cgroup PATH or --pid PID" },
		{ { "cgroup", "/tmp", NULL }, 7, "no memory cgroup /tmp" },
		{ { "cgroup", "tmp", NULL }, 7, "not a memory cgroup directory" },
		{ { "cgroup", "/no/such/group", NULL }, 7, "no memory cgroup /no/such/group" },
		{ { "cgroup", "--pid", "x", NULL }, 2, "not a process id" },
		{ { "cgroup", "--pid", "2147483647", NULL }, 3, "no process" },
		{ { "cgroup", "/a", "/b", NULL }, 2, "one PATH" },
		{ { "system", "extra", NULL }, 2, "no operand" },
		{ { "system", "--attach", NULL }, 2, "is for memdissect cgroup" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;
		int rc = md_test_run(cases[i].args, &out, &err, 20000);
		ck_assert_msg(rc == cases[i].code, "%s %s: exit %d, %s", cases[i].args[0], cases[i].args[1], rc, err);
		ck_assert_msg(strstr(err, cases[i].needle) && strchr(err, '\n') == err + strlen(err) - 1,
			      "one line with '%s': %s", cases[i].needle, err);
		free(out);
		free(err);
	}
}
END_TEST

/* ---- memdissect system ---- */

START_TEST(test_system_report)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "cgroup_member", NULL));
	command(&p, "heap 40\n", "heap_bytes");
	const char *args[] = { "system", "--json", "--top", "100000", NULL };
	char *out = NULL, *err = NULL;
	int rc = md_test_run(args, &out, &err, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
	struct md_node *doc;
	ck_assert(!md_node_parse_json(out, strlen(out), &doc));
	struct sysinfo si;
	ck_assert(sysinfo(&si) == 0);
	/* MemTotal is sysinfo's totalram (both from totalram_pages). */
	ck_assert_uint_eq(md_test_json_u64(doc, "system.total_bytes"), (uint64_t)si.totalram * si.mem_unit);
	uint64_t total = md_test_json_u64(doc, "system.total_bytes");
	ck_assert_uint_le(md_test_json_u64(doc, "system.available_bytes"), total);
	ck_assert_uint_eq(md_test_json_u64(doc, "system.used_bytes"), total - md_test_json_u64(doc, "system.available_bytes"));
	/* The target is listed with its heap in its USS and PSS. */
	const struct md_node *procs = md_node_get(doc, "processes"), *mine = NULL;
	for (size_t i = 0; i < md_node_count(procs); i++)
		if (md_node_get_i64(md_node_get(md_node_at(procs, i), "pid")) == p.pid)
			mine = md_node_at(procs, i);
	ck_assert_msg(mine, "target %d not listed", (int)p.pid);
	ck_assert_uint_ge(md_test_json_u64((struct md_node *)mine, "uss_bytes"), 40 * MIB);
	ck_assert_uint_ge(md_test_json_u64((struct md_node *)mine, "pss_bytes"), 40 * MIB);
	/* PSS ranks are in order. */
	uint64_t last = UINT64_MAX;
	for (uint64_t r = 1; r <= md_node_count(procs); r++)
		for (size_t i = 0; i < md_node_count(procs); i++) {
			const struct md_node *rk = md_node_get(md_node_at(procs, i), "pss_rank");
			if (md_node_type(rk) != MD_NODE_NULL && md_node_get_u64(rk) == r) {
				uint64_t pss = md_test_json_u64(md_node_at(procs, i), "pss_bytes");
				ck_assert_uint_le(pss, last);
				last = pss;
			}
		}
	/* Our own memory cgroup is among the cgroups. */
	char *own_dir, *own_path;
	if (!md_cgroup_dir_of_pid(getpid(), "/sys/fs/cgroup", &own_dir, &own_path)) {
		const struct md_node *cgs = md_node_get(doc, "cgroups");
		bool found = false;
		for (size_t i = 0; i < md_node_count(cgs); i++)
			found |= strcmp(md_node_get_string(md_node_get(md_node_at(cgs, i), "path")), own_path) == 0;
		ck_assert_msg(found, "own cgroup %s not listed", own_path);
		free(own_dir);
		free(own_path);
	}
	md_node_destroy(doc);
	free(out);
	free(err);
	const char *targs[] = { "system", NULL };
	rc = md_test_run(targs, &out, &err, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
	ck_assert_msg(strstr(out, "available of") && strstr(out, "\"free\" misleads") && strstr(out, "Top processes by USS"),
		      "%s", out);
	free(out);
	free(err);
	md_test_proc_stop(&p);
}
END_TEST

/* ---- the working set ---- */

static const struct md_node *region_at(const struct md_node *doc, uint64_t start)
{
	const struct md_node *regions = md_node_get(doc, "regions");
	for (size_t i = 0; i < md_node_count(regions); i++)
		if (md_node_get_u64(md_node_get(md_node_at(regions, i), "start")) == start)
			return md_node_at(regions, i);
	return NULL;
}

static struct md_node *attach_wss(pid_t pid, const char *window)
{
	const char *extra[] = { "--wss", window, NULL };
	int status;
	struct md_node *doc = md_test_attach_json(pid, extra, &status);
	ck_assert_msg(doc && status == 0, "attach --wss: exit %d", status);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "wss.method")), "smaps_referenced");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "wss.attribution")), "per_mapping");
	/* The joined classes never exceed the classes themselves. */
	const struct md_node *cl = md_node_path(doc, "wss.classes");
	for (size_t i = 0; i < md_node_count(cl); i++) {
		char key[64];
		snprintf(key, sizeof(key), "classes.%s", md_node_key_at(cl, i));
		ck_assert_uint_le(md_node_get_u64(md_node_at(cl, i)), md_test_json_u64(doc, key));
	}
	return doc;
}

START_TEST(test_wss_known_pages)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "cgroup_member", NULL));
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	ck_assert(write(p.in_fd, "region 4096\n", 12) == 12);
	char *line = md_test_proc_wait_line(&p, "region_start", 20000);
	ck_assert(line);
	uint64_t start = strtoull(line + strlen("region_start "), NULL, 16);
	free(line);
	command(&p, "heap 8\n", "heap_bytes");

	/* Idle: the target waits in read(2) and touches none of the region. */
	struct md_node *doc = attach_wss(p.pid, "1");
	const struct md_node *reg = region_at(doc, start);
	ck_assert_msg(reg, "region 0x%llx not in the report", (unsigned long long)start);
	ck_assert_uint_eq(md_test_json_u64((struct md_node *)reg, "rss_bytes"), 4096 * page);
	ck_assert_uint_eq(md_test_json_u64((struct md_node *)reg, "wss_bytes"), 0);
	ck_assert(md_node_get_double(md_node_path(doc, "wss.window_s")) == 1.0);
	md_node_destroy(doc);

	/* 1024 of the 4096 pages written every 20 ms through the window. */
	command(&p, "touch 1024 8000\n", "touching");
	doc = attach_wss(p.pid, "1.5");
	reg = region_at(doc, start);
	ck_assert(reg);
	uint64_t wss = md_test_json_u64((struct md_node *)reg, "wss_bytes");
	fprintf(stderr, "wss: region of 4096 pages, 1024 touched: %llu bytes referenced (%llu pages); total %llu\n",
		(unsigned long long)wss, (unsigned long long)(wss / page),
		(unsigned long long)md_test_json_u64(doc, "wss.bytes"));
	ck_assert_uint_eq(wss, 1024 * page);
	ck_assert_uint_ge(md_test_json_u64(doc, "wss.bytes"), 1024 * page);
	/* The region is all other anonymous memory: its share lands there. */
	ck_assert_uint_ge(md_test_json_u64(doc, "wss.classes.anon_other"), 1024 * page);
	md_node_destroy(doc);
	free(md_test_proc_wait_line(&p, "touched", 20000));

	/* The 8 MiB heap block (its own mmapped chunk: live pages) written through the window. */
	command(&p, "touchheap 8000\n", "touching");
	doc = attach_wss(p.pid, "1.5");
	uint64_t live_wss = md_test_json_u64(doc, "wss.classes.live");
	fprintf(stderr, "wss: 8 MiB live block touched: live heap %llu of %llu referenced\n",
		(unsigned long long)live_wss, (unsigned long long)md_test_json_u64(doc, "classes.live"));
	ck_assert_uint_ge(live_wss, 8 * MIB);
	ck_assert_uint_le(live_wss, 8 * MIB + 2 * page);
	md_node_destroy(doc);
	free(md_test_proc_wait_line(&p, "touched", 20000));

	/* The text report ends with the section. */
	char pid_text[32];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *args[] = { "attach", "--wss", "0.2", pid_text, NULL };
	char *out = NULL, *err = NULL;
	int rc = md_test_run(args, &out, &err, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
	ck_assert_msg(strstr(out, "Working set over 0.2 s"), "%s", out);
	free(out);
	free(err);
	md_test_proc_stop(&p);

	/* Usage: a core has no working set; nonsense windows are refused. */
	const char *bad[][4] = { { "core", "--wss", "1", "/nonexistent" }, { "attach", "--wss", "0", "1" },
				 { "attach", "--wss", "x", "1" }, { "attach", "--wss", "5000", "1" } };
	for (size_t i = 0; i < 4; i++) {
		const char *a[] = { bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL };
		rc = md_test_run(a, &out, &err, 20000);
		ck_assert_msg(rc == 2 && strstr(err, "--wss"), "%s %s: exit %d %s", bad[i][0], bad[i][2], rc, err);
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_watch_wss)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "cgroup_member", NULL));
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	ck_assert(write(p.in_fd, "region 2048\n", 12) == 12);
	free(md_test_proc_wait_line(&p, "region_pages", 20000));
	command(&p, "touch 512 10000\n", "touching");
	char pid_text[32];
	snprintf(pid_text, sizeof(pid_text), "%d", (int)p.pid);
	const char *args[] = { "watch", pid_text, "--interval", "1", "--count", "2", "--wss", "0.4", "--json", NULL };
	char *out = NULL, *err = NULL;
	int rc = md_test_run(args, &out, &err, 60000);
	ck_assert_msg(rc == 0, "exit %d: %s", rc, err);
	/* Each sample line has the window's working set: at least the 512 pages being written. */
	size_t samples = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		struct md_node *o;
		ck_assert(!md_node_parse_json(line, strlen(line), &o));
		if (strcmp(md_node_get_string(md_node_get(o, "type")), "sample") == 0) {
			uint64_t wss = md_test_json_u64(o, "wss_bytes");
			ck_assert_uint_ge(wss, 512 * page);
			ck_assert_uint_le(wss, md_test_json_u64(o, "rss_bytes") + 512 * page);
			samples++;
		}
		md_node_destroy(o);
	}
	ck_assert_uint_eq(samples, 2);
	free(out);
	free(err);
	md_test_proc_stop(&p);
	const char *bad[] = { "watch", pid_text, "--interval", "1", "--wss", "1", NULL };
	rc = md_test_run(bad, &out, &err, 20000);
	ck_assert_msg(rc == 2 && strstr(err, "must be shorter than --interval"), "exit %d: %s", rc, err);
	free(out);
	free(err);
}
END_TEST

Suite *cgroup_suite(void)
{
	Suite *s = suite_create("cgroup");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_v1_stat_saved);
	tcase_add_test(tc, test_parse_meminfo_saved);
	tcase_add_test(tc, test_parse_pressure_saved);
	tcase_add_test(tc, test_parse_hostile);
	tcase_add_test(tc, test_v2_dir_saved);
	suite_add_tcase(s, tc);
	tc = tcase_create("live");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_cgroup_v1_live);
	tcase_add_test(tc, test_cgroup_v2_live);
	tcase_add_test(tc, test_cgroup_usage_errors);
	tcase_add_test(tc, test_system_report);
	tcase_add_test(tc, test_wss_known_pages);
	tcase_add_test(tc, test_watch_wss);
	suite_add_tcase(s, tc);
	return s;
}
