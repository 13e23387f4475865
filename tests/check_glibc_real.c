/* The glibc walker on the heaps real systems make (issue 11): forked children whose heap grew
 * after the fork, a [heap] split into several VMAs, a non-contiguous main arena, one smashed
 * chunk, and real programs (a python3 multiprocessing worker, a PostgreSQL backend). Each
 * ground-truth case must give glibc's own mallinfo2() exactly, predict the RSS drop of
 * malloc_trim(0), sum its classes to the RSS and report no corruption that is not there. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
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

/* What the last check_truth_mode saw, for the tests that must prove they reproduced their case. */
static uint64_t last_hugetlb_bytes;
static unsigned long long last_hugezero_rss_anon;

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
	unsigned long long vmas = 0, pid = 0;
	/* Where the kernel happens to keep the [heap] in fewer VMAs (seen once in many runs, under
	 * load), the case was not reproduced: a fresh target, up to three times, before the skip. */
	for (int attempt = 0;; attempt++) {
		bool started = md_test_proc_start(&p, "glibc_truth", args);
		ck_assert_msg(started, "cannot start glibc_truth %s", what);
		vmas = md_test_truth(&p, "heap_vmas");
		pid = (unsigned long long)p.pid;
		md_test_truth_u64(&p, "pid", &pid); /* forkgrow: the child */
		fprintf(stderr, "glibc_real %s: [heap] in %llu VMAs\n", what, vmas);
		if (vmas >= min_heap_vmas)
			break;
		md_test_proc_stop(&p);
		if (attempt == 2) {
			unsetenv("GLIBC_TUNABLES");
			MD_SKIP("%s: the kernel kept [heap] in %llu VMA(s) three times, the case needs %u", what, vmas,
				min_heap_vmas);
		}
	}
	unsetenv("GLIBC_TUNABLES");
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
	last_hugetlb_bytes = md_test_json_u64(report, "memory.hugetlb_bytes");
	last_hugezero_rss_anon = 0;
	md_test_truth_u64(&p, "hugezero_rss_anon", &last_hugezero_rss_anon);
	md_test_check_mallinfo(glibc, &p, "", what);
	md_test_check_classes_sum(report);
	check_walked_healthy(report, glibc, what);
	ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.count"), md_test_truth(&p, "mallinfo.hblks"));
	ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.bytes"), md_test_truth(&p, "mallinfo.hblkhd"));
	uint64_t predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
	md_node_destroy(report);
	/* hugezerofork: malloc_trim's own writes copy pages its child shares with the parent (a
	 * few dozen pages, seen -16), which no prediction of what trim releases can include. */
	md_test_trim_and_compare_slack(&p, predicted, what, strcmp(mode, "hugezerofork") == 0 ? 64 : 0);
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

/* Case 5: the huge zero page. The [heap] is under MADV_HUGEPAGE and a 30 MiB chunk is read but
 * never written: the kernel maps the huge zero page there, which pagemap shows as present file
 * pages and smaps does not count. As root (frame numbers known) the report must be as right as
 * an unprivileged one: the zero-page PTEs are asked of the kernel, never guessed by position.
 * hugezerofork: the same heap in a forked child, where every page is shared with the parent. */
static const char *const hugezero_modes[] = { "hugezero", "hugezerofork" };
START_TEST(test_huge_zero_page)
{
	SKIP_WITHOUT_PTRACE();
	check_truth_mode(hugezero_modes[_i], NULL, 1);
	/* Reproduced only when the 30 MiB read left RssAnon below it (zero pages, not copies). */
	ck_assert_msg(last_hugezero_rss_anon > 0 && last_hugezero_rss_anon < (30ULL << 20),
		      "%s: RssAnon %llu after reading 30 MiB: no zero page was mapped", hugezero_modes[_i],
		      last_hugezero_rss_anon);
}
END_TEST

/* Undoes a test's system changes on every path, including a failed assertion or a timeout
 * (Check then kills the test's process group): a child in its own session that waits for the
 * test to close the pipe, then SIGQUITs and SIGKILLs the process whose pid came down the pipe
 * (if any) and runs the shell command cleanup. Returns the pipe's write end; guard_finish
 * closes it and waits for the cleanup on the ordinary path. */
static int start_guard(const char *cleanup, pid_t *guard_ret)
{
	int fds[2];
	ck_assert(pipe(fds) == 0);
	pid_t g = fork();
	ck_assert(g >= 0);
	if (g == 0) {
		setsid();
		close(fds[1]);
		pid_t victim = 0, v;
		ssize_t n;
		while ((n = read(fds[0], &v, sizeof(v))) != 0) {
			if (n == (ssize_t)sizeof(v))
				victim = v;
			else if (n < 0 && errno != EINTR)
				break;
		}
		if (victim > 0 && kill(victim, SIGQUIT) == 0)
			for (int i = 0; i < 100 && kill(victim, 0) == 0; i++)
				usleep(100000);
		if (victim > 0)
			kill(victim, SIGKILL);
		execl("/bin/sh", "sh", "-c", cleanup, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	*guard_ret = g;
	return fds[1];
}

static void guard_finish(int fd, pid_t guard)
{
	close(fd);
	while (waitpid(guard, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Case 6: 6 MB of a heap's live chunks swapped out (a swap file for the test, MADV_PAGEOUT in
 * the target). A page that is not resident is unknown, never damage: no corrupt finding, the
 * walk resumes after the swapped pages, mallinfo stays exact (every bin and fastbin chunk is
 * resident), and the trim prediction on the resident pages equals the RSS drop. */
START_TEST(test_swapped_pages)
{
	SKIP_WITHOUT_PTRACE();
	char swapfile[] = "/md-swap-XXXXXX";
	int fd = mkstemp(swapfile);
	ck_assert_msg(fd >= 0, "cannot create a swap file on /: %s", strerror(errno));
	char cleanup[128];
	snprintf(cleanup, sizeof(cleanup), "swapoff '%s' 2>/dev/null; rm -f '%s'", swapfile, swapfile);
	pid_t guard_pid;
	int guard = start_guard(cleanup, &guard_pid);
	int rc = posix_fallocate(fd, 0, 64 << 20);
	close(fd);
	ck_assert_msg(rc == 0, "fallocate of the swap file: %s", strerror(rc));
	ck_assert(chmod(swapfile, 0600) == 0);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "mkswap -q '%s' >/dev/null && swapon '%s'", swapfile, swapfile);
	if (system(cmd) != 0) {
		guard_finish(guard, guard_pid);
		MD_SKIP("swapon of a file on / failed: this kernel or container cannot swap");
	}
	struct md_test_proc p;
	const char *args[] = { "swap", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	ck_assert_int_eq(write(guard, &p.pid, sizeof(p.pid)), (ssize_t)sizeof(p.pid));
	unsigned long long swapped = md_test_truth(&p, "swapped_bytes");
	fprintf(stderr, "glibc_real swap: %llu bytes swapped out\n", swapped);
	ck_assert_msg(swapped >= (4u << 20), "swap: only %llu bytes went to swap", swapped);

	struct md_node *report = md_test_attach_ok(p.pid, "swap");
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	md_test_check_mallinfo(glibc, &p, "", "swap");
	md_test_check_classes_sum(report);
	const char *msg = NULL;
	size_t corrupt = count_findings(report, "corrupt", &msg);
	ck_assert_msg(corrupt == 0, "swap: %zu corrupt findings, first: %s", corrupt, msg ? msg : "?");
	ck_assert_msg(count_findings(report, "warning", &msg) == 0, "swap: a warning: %s", msg ? msg : "?");
	struct md_node *a0 = md_node_at(md_node_get(glibc, "arenas"), 0);
	ck_assert_str_eq(md_node_get_string(md_node_get(a0, "state")), "ok");
	uint64_t unknown = md_test_json_u64(a0, "unknown_bytes");
	fprintf(stderr, "glibc_real swap: %llu bytes unknown, %llu swapped in the report\n", (unsigned long long)unknown,
		(unsigned long long)md_test_json_u64(report, "memory.swap_bytes"));
	/* Unknown: the swapped pages and the chunks across their edges, nothing more. */
	ck_assert_msg(unknown >= swapped && unknown <= swapped + (64u << 10), "swap: %llu bytes unknown",
		      (unsigned long long)unknown);
	ck_assert_msg(md_test_json_u64(report, "classes.free") > (1u << 20), "swap: resident free pages not free");
	uint64_t predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
	md_node_destroy(report);
	md_test_trim_and_compare(&p, predicted, "swap");
	md_test_proc_stop(&p);
	guard_finish(guard, guard_pid);
}
END_TEST

/* A real program attached as a user would: no corruption finding, the glibc main arena walked
 * ("ok", chunks found), classes summing to the RSS; mallinfo equal to truth's when given. */
static void check_real_program(pid_t pid, const char *what, const struct md_test_proc *truth)
{
	/* A real program may hold an allocator no plugin walks (CPython's pymalloc): then the report
	 * is partial (exit 10) and names it; glibc's part must still be whole. */
	int status = -1;
	struct md_node *report = md_test_attach_json(pid, NULL, &status);
	ck_assert_msg(report != NULL, "%s: no JSON report (status %d)", what, status);
	size_t unanalysed = md_node_count(md_node_get(report, "unanalysed_allocators"));
	ck_assert_msg(status == 0 || (status == 10 && unanalysed > 0), "%s: memdissect exited with %d (%zu unanalysed allocators)",
		      what, status, unanalysed);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert_msg(glibc != NULL, "%s: no glibc allocator in the report", what);
	if (truth)
		md_test_check_mallinfo(glibc, truth, "", what);
	const char *msg = NULL;
	size_t corrupt = count_findings(report, "corrupt", &msg);
	ck_assert_msg(corrupt == 0, "%s: %zu corrupt findings, first: %s", what, corrupt, msg ? msg : "?");
	struct md_node *main_arena = md_node_at(md_node_get(glibc, "arenas"), 0);
	const char *st = md_node_get_string(md_node_get(main_arena, "state"));
	ck_assert_msg(st && strcmp(st, "ok") == 0, "%s: main arena is %s", what, st ? st : "?");
	uint64_t chunks = md_test_json_u64(main_arena, "in_use_chunks");
	fprintf(stderr, "glibc_real %s: main arena %llu in-use chunks, %llu live bytes, %zu warnings, rss %llu\n", what,
		(unsigned long long)chunks, (unsigned long long)md_test_json_u64(main_arena, "live_bytes"),
		count_findings(report, "warning", NULL), (unsigned long long)md_test_json_u64(report, "memory.rss_bytes"));
	ck_assert_msg(chunks > 1000, "%s: only %llu chunks walked", what, (unsigned long long)chunks);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
}

/* A python3 multiprocessing worker (forked from the parent interpreter) whose heap grew after
 * the fork; it prints glibc's mallinfo2() through ctypes (formatting and os.write allocate only
 * small objects, which pymalloc serves from its own arenas), then the parent prints its pid. */
static const char python_worker[] =
	"import multiprocessing as mp, sys, ctypes, time, os\n"
	"class MI(ctypes.Structure):\n"
	"    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd',\n"
	"                'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
	"def work(ev):\n"
	"    libc = ctypes.CDLL(None)\n"
	"    libc.prctl(1, 9)\n" /* PR_SET_PDEATHSIG, SIGKILL */
	"    libc.mallinfo2.restype = MI\n"
	"    names = [f[0] for f in MI._fields_]\n"
	"    keep = [bytes(1500 + i % 700) for i in range(30000)]\n"
	"    for i in range(0, len(keep), 3): keep[i] = None\n"
	"    mi = libc.mallinfo2()\n"
	"    vals = [getattr(mi, n) for n in names]\n"
	"    os.write(1, ''.join('mallinfo.%s %d\\n' % (n, v) for n, v in zip(names, vals)).encode())\n"
	"    ev.set()\n"
	"    time.sleep(3600)\n"
	"if __name__ == '__main__':\n"
	"    mp.set_start_method('fork')\n"
	"    ev = mp.Event(); p = mp.Process(target=work, args=(ev,)); p.start()\n"
	"    ev.wait(60)\n"
	"    print('pid', p.pid); print('ready', flush=True)\n"
	"    sys.stdin.read(); p.kill()\n";

START_TEST(test_python_worker)
{
	SKIP_WITHOUT_PTRACE();
	if (access("/usr/bin/python3", X_OK) != 0)
		MD_SKIP("no /usr/bin/python3 (Debian package python3)");
	struct md_test_proc p;
	const char *args[] = { "-c", python_worker, NULL };
	ck_assert_msg(md_test_proc_start(&p, "/usr/bin/python3", args), "python3 did not start its worker");
	check_real_program((pid_t)md_test_truth(&p, "pid"), "python3 multiprocessing worker", &p);
	md_test_proc_stop(&p);
}
END_TEST

/* ---------- PostgreSQL ---------- */

#define PG_BIN "/usr/lib/postgresql/15/bin"

/* argv run as nobody (PR_SET_PDEATHSIG after the uid change, which clears it), output to log. */
static pid_t spawn_nobody(char *const *argv, const char *log)
{
	pid_t pid = fork();
	ck_assert(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0 || !md_test_become_nobody())
			_exit(126);
		prctl(PR_SET_PDEATHSIG, SIGQUIT, 0, 0, 0);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int wait_exit(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void show_log(const char *log)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "tail -n 20 '%s' >&2", log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log at %s)\n", log);
}

/* initdb and the server as nobody in a temporary directory, listening only on a Unix socket
 * there; psql (as a coprocess) keeps one connection, whose backend runs a big GROUP BY and a
 * sort and then sits idle while memdissect attaches to it. */
START_TEST(test_postgresql_backend)
{
	SKIP_WITHOUT_PTRACE();
	if (access(PG_BIN "/initdb", X_OK) != 0 || access("/usr/bin/psql", X_OK) != 0)
		MD_SKIP("PostgreSQL 15 is not installed (Debian package postgresql)");
	char dir[] = "/tmp/md-pg-XXXXXX";
	ck_assert(mkdtemp(dir) != NULL);
	char cleanup[64];
	snprintf(cleanup, sizeof(cleanup), "rm -rf '%s'", dir);
	pid_t guard_pid;
	int guard = start_guard(cleanup, &guard_pid);
	ck_assert(chown(dir, 65534, 65534) == 0);
	char data[PATH_MAX], log[PATH_MAX], sock[PATH_MAX], sockdir_opt[PATH_MAX + 32];
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	snprintf(sock, sizeof(sock), "%s/.s.PGSQL.5432", dir);
	snprintf(sockdir_opt, sizeof(sockdir_opt), "unix_socket_directories=%s", dir);

	char *initdb[] = { PG_BIN "/initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "--locale=C",
			   "-E", "UTF8", NULL };
	int rc = wait_exit(spawn_nobody(initdb, log));
	if (rc != 0)
		show_log(log);
	ck_assert_msg(rc == 0, "initdb exited with %d", rc);
	char *server[] = { PG_BIN "/postgres", "-D", data, "-c", "listen_addresses=", "-c", sockdir_opt, "-c",
			   "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=8", NULL };
	pid_t pm = spawn_nobody(server, log);
	ck_assert_int_eq(write(guard, &pm, sizeof(pm)), (ssize_t)sizeof(pm));
	struct stat st;
	for (int i = 0; i < 300 && stat(sock, &st) != 0; i++)
		usleep(100000);
	if (stat(sock, &st) != 0)
		show_log(log);
	ck_assert_msg(stat(sock, &st) == 0, "the server did not open %s", sock);

	struct md_test_proc psql;
	const char *args[] = { "-X", "-q", "-A", "-t", "-h", dir, "-U", "postgres", "-d", "postgres", "-c",
			       "select 'pid ' || pg_backend_pid()", "-c", "\\echo ready", "-f", "-", NULL };
	ck_assert_msg(md_test_proc_start(&psql, "/usr/bin/psql", args), "psql did not connect");
	pid_t backend = (pid_t)md_test_truth(&psql, "pid");
	static const char query[] =
		"set work_mem = '64MB';\n"
		"select 'groups ' || count(*) from (select g % 200000, count(*), max(md5(g::text)) "
		"from generate_series(1, 1000000) g group by 1) s;\n"
		"select 'sorted ' || count(*) from (select md5(g::text) from generate_series(1, 300000) g order by 1) s;\n";
	ck_assert_int_eq(write(psql.in_fd, query, sizeof(query) - 1), (ssize_t)(sizeof(query) - 1));
	free(md_test_proc_wait_line(&psql, "groups", 60000));
	char *line = md_test_proc_wait_line(&psql, "sorted", 60000);
	ck_assert_msg(line && strcmp(line, "sorted 300000") == 0, "the sort query gave %s", line ? line : "nothing");
	free(line);

	check_real_program(backend, "PostgreSQL backend", NULL);

	md_test_proc_stop(&psql);
	kill(pm, SIGINT); /* fast shutdown */
	rc = wait_exit(pm);
	ck_assert_msg(rc == 0, "the server exited with %d", rc);
	guard_finish(guard, guard_pid); /* removes the directory */
}
END_TEST

/* Case 4: glibc.malloc.hugetlb=2 puts the heaps on hugetlbfs pages (reserved for the test,
 * vm.nr_hugepages restored by a guard on every path). hugetlb pages are not in Rss: the report
 * shows them as memory.hugetlb_bytes beside RSS, and the walk reads them like any other. */
START_TEST(test_hugetlb2)
{
	SKIP_WITHOUT_PTRACE();
	if (geteuid() != 0)
		MD_SKIP("reserving huge pages (vm.nr_hugepages) needs root");
	char *old = NULL;
	size_t old_len = 0;
	struct md_error *err = md_read_file("/proc/sys/vm/nr_hugepages", &old, &old_len);
	ck_assert_msg(!err, "cannot read vm.nr_hugepages");
	unsigned long before = strtoul(old, NULL, 10);
	free(old);
	char cleanup[128];
	snprintf(cleanup, sizeof(cleanup), "echo %lu > /proc/sys/vm/nr_hugepages", before);
	pid_t guard_pid;
	int guard = start_guard(cleanup, &guard_pid);
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
	ck_assert(f);
	fprintf(f, "%lu\n", before + 64);
	fclose(f);
	check_truth_mode("holes", "glibc.malloc.hugetlb=2", 0);
	fprintf(stderr, "glibc_real hugetlb=2: memory.hugetlb_bytes %llu\n", (unsigned long long)last_hugetlb_bytes);
	guard_finish(guard, guard_pid);
	ck_assert_msg(last_hugetlb_bytes >= (2ULL << 20), "hugetlb=2: no hugetlb page in the report (%llu bytes): the case "
							 "was not reproduced",
		      (unsigned long long)last_hugetlb_bytes);
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
	tcase_add_test(tc, test_swapped_pages);
	tcase_add_loop_test(tc, test_huge_zero_page, 0, 2);
	tcase_add_test(tc, test_hugetlb2);
	suite_add_tcase(s, tc);
	tc = tcase_create("programs");
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_python_worker);
	tcase_add_test(tc, test_postgresql_backend);
	suite_add_tcase(s, tc);
	return s;
}
