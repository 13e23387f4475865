/* The jemalloc plugin against processes that print jemalloc's own figures (mallctl after an
 * "epoch" refresh): Debian's shared libjemalloc, the static libjemalloc.a (with and without
 * symbols), a process using glibc's malloc and jemalloc together, and Debian's redis-server. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

#define REDIS_SERVER "/usr/bin/redis-server"

/* ---- Helpers ----------------------------------------------------------------------------- */

/* "arena.<i>.address 0x..." lines are hex: parsed here. */
static bool truth_hex(const struct md_test_proc *p, const char *key, unsigned long long *v)
{
	char pat[96];
	snprintf(pat, sizeof(pat), "%s ", key);
	for (const char *s = p->truth; s && *s;) {
		if (strncmp(s, pat, strlen(pat)) == 0) {
			*v = strtoull(s + strlen(pat), NULL, 0);
			return true;
		}
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return false;
}

static struct md_node *arena_by_index(struct md_node *je, unsigned idx)
{
	struct md_node *arr = md_node_get(je, "arenas");
	for (size_t i = 0; i < md_node_count(arr); i++) {
		struct md_node *a = md_node_at(arr, i);
		if (md_node_get_u64(md_node_get(a, "index")) == idx)
			return a;
	}
	return NULL;
}

static unsigned corrupt_findings(struct md_node *report, const char *alloc)
{
	unsigned n = 0;
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		if (a && strcmp(a, alloc) == 0 && sev && strcmp(sev, "corrupt") == 0) {
			fprintf(stderr, "finding: %s\n", md_node_get_string(md_node_get(x, "message")));
			n++;
		}
	}
	return n;
}

/* The stats object must equal what mallctl said, byte for byte; and the per-arena pages. */
static void check_against_truth(const struct md_test_proc *p, struct md_node *je)
{
	static const char *const keys[] = {"allocated", "active", "metadata", "resident", "mapped", "retained"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char tk[64], jk[64];
		snprintf(tk, sizeof(tk), "stats.%s", keys[i]);
		snprintf(jk, sizeof(jk), "stats.%s", keys[i]);
		ck_assert_msg(md_test_json_u64(je, jk) == md_test_truth(p, tk), "%s: memdissect %" PRIu64 ", mallctl %llu", keys[i],
			      md_test_json_u64(je, jk), md_test_truth(p, tk));
	}
	ck_assert_uint_eq(md_test_json_u64(je, "tcache_bytes"), md_test_truth(p, "tcache_bytes"));
	ck_assert_uint_eq(md_test_json_u64(je, "pdirty"), md_test_truth(p, "pdirty"));
	ck_assert_uint_eq(md_test_json_u64(je, "pmuzzy"), md_test_truth(p, "pmuzzy"));
	ck_assert_uint_eq(md_test_json_u64(je, "pactive"), md_test_truth(p, "pactive"));
	ck_assert_uint_eq(md_test_json_u64(je, "live_bytes"), md_test_truth(p, "stats.allocated") - md_test_truth(p, "tcache_bytes"));
	unsigned narenas = (unsigned)md_test_truth(p, "narenas"), seen = 0;
	for (unsigned i = 0; i < narenas; i++) {
		char key[64];
		unsigned long long addr;
		snprintf(key, sizeof(key), "arena.%u.address", i);
		if (!truth_hex(p, key, &addr))
			continue;
		seen++;
		struct md_node *a = arena_by_index(je, i);
		ck_assert_msg(a != NULL, "arena %u missing from the report", i);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(a, "address")), addr);
		static const char *const ak[] = {"pactive", "pdirty", "pmuzzy", "tcache_bytes", "allocated"};
		for (size_t k = 0; k < sizeof(ak) / sizeof(ak[0]); k++) {
			snprintf(key, sizeof(key), "arena.%u.%s", i, ak[k]);
			ck_assert_msg(md_test_json_u64(a, ak[k]) == md_test_truth(p, key), "arena %u %s: %" PRIu64 " vs %llu", i, ak[k],
				      md_test_json_u64(a, ak[k]), md_test_truth(p, key));
		}
		ck_assert_str_eq(md_node_get_string(md_node_get(a, "state")), "consistent");
	}
	ck_assert_uint_eq(seen, md_test_truth(p, "arenas.initialized"));
	ck_assert_uint_eq(md_node_count(md_node_get(je, "arenas")), seen);
	/* The walk agrees with the counters (no mismatch finding) and every cached pointer resolved. */
	ck_assert(md_node_get_bool(md_node_get(je, "consistent")));
	ck_assert_uint_eq(md_test_json_u64(je, "tcaches.unresolved"), 0);
	ck_assert_uint_gt(md_test_json_u64(je, "tcaches.cached_regions"), 0);
	ck_assert_uint_eq(md_test_json_u64(je, "walk.cached_bytes"), md_test_json_u64(je, "tcache_bytes"));
	/* Every allocated byte is live, cached or a tcache stack (metadata). */
	ck_assert_uint_eq(md_test_json_u64(je, "walk.live_bytes") + md_test_json_u64(je, "walk.cached_bytes") +
				  md_test_json_u64(je, "walk.tcache_stack_bytes"),
			  md_test_json_u64(je, "stats.allocated"));
}

/* Attach, compare, then ask the target to purge and compare the RssAnon drop. */
static void run_truth_case(const char *target, const char *const *args, const char *symbols)
{
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, target, args), "cannot start %s", target);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	ck_assert_int_eq(status, 0);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_msg(je != NULL, "no jemalloc allocator in the report");
	ck_assert_str_eq(md_node_get_string(md_node_get(je, "symbols")), symbols);
	ck_assert(strncmp(md_node_get_string(md_node_get(je, "version")), "5.3.0-", 6) == 0);
	check_against_truth(&p, je);
	md_test_check_classes_sum(report);
	ck_assert_uint_eq(corrupt_findings(report, "jemalloc"), 0);

	/* arena.<all>.purge gives back exactly the resident pages of dirty and muzzy extents. */
	uint64_t predicted = md_test_json_u64(je, "purge_release_bytes") / 4096;
	ck_assert_uint_gt(predicted, 0);
	ck_assert_int_eq(write(p.in_fd, "purge\n", 6), 6);
	char *line = md_test_proc_wait_line(&p, "purge_drop_pages", 20000);
	ck_assert_msg(line != NULL, "target did not report its purge");
	long long dropped = strtoll(line + strlen("purge_drop_pages"), NULL, 10);
	free(line);
	long long diff = (long long)predicted - dropped;
	if (diff < 0)
		diff = -diff;
	ck_assert_msg(diff * 100 <= dropped, "purge: predicted %" PRIu64 " pages, RssAnon dropped %lld", predicted,
		      dropped);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}

START_TEST(test_shared_library)
{
	run_truth_case("jemalloc_truth", NULL, "heuristic");
}
END_TEST

START_TEST(test_shared_library_no_debuginfo)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "jemalloc_truth", NULL));
	const char *extra[] = {"--debuginfo=off", NULL};
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, extra, &status);
	ck_assert_ptr_nonnull(report);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_ptr_nonnull(je);
	check_against_truth(&p, je);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_static_symtab)
{
	run_truth_case("jemalloc_static", NULL, "symtab");
}
END_TEST

/* A stripped copy of the static program: only the structural scan of its .bss can find jemalloc. */
START_TEST(test_static_stripped)
{
	char src[4096], dir[] = "/tmp/md-jemalloc-XXXXXX", dst[4200];
	ck_assert_ptr_nonnull(md_test_target_path("jemalloc_static", src, sizeof(src)));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dst, sizeof(dst), "%s/jemalloc_static", dir);
	pid_t pid = fork();
	if (pid == 0) {
		execlp("strip", "strip", "-s", "-o", dst, src, (char *)NULL);
		_exit(127);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		rmdir(dir);
		ck_abort_msg("strip failed (binutils missing?)");
	}
	/* md_test_proc_start runs $MD_TARGETS/name: point it at the stripped copy. */
	const char *old = getenv("MD_TARGETS");
	char *saved = old ? strdup(old) : NULL;
	setenv("MD_TARGETS", dir, 1);
	struct md_test_proc p;
	bool started = md_test_proc_start(&p, "jemalloc_static", NULL);
	if (saved) {
		setenv("MD_TARGETS", saved, 1);
		free(saved);
	}
	ck_assert(started);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(report);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_msg(je != NULL, "jemalloc not found in a stripped static executable");
	ck_assert_str_eq(md_node_get_string(md_node_get(je, "symbols")), "heuristic");
	check_against_truth(&p, je);
	md_node_destroy(report);
	md_test_proc_stop(&p);
	unlink(dst);
	rmdir(dir);
}
END_TEST

/* glibc's malloc used directly (__libc_malloc) and jemalloc in one process: both allocators are
 * reported, their regions never overlap, and jemalloc's figures are unchanged by glibc's heap. */
START_TEST(test_mixed_glibc)
{
	struct md_test_proc p;
	const char *args[] = {"mixed", NULL};
	ck_assert(md_test_proc_start(&p, "jemalloc_truth", args));
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_ptr_nonnull(report);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_ptr_nonnull(je);
	check_against_truth(&p, je);
	md_test_check_classes_sum(report);
	char glibc_so[4096];
	const char *dir = getenv("MEMDISSECT_PLUGIN_PATH");
	snprintf(glibc_so, sizeof(glibc_so), "%s/glibc.so", dir ? dir : ".");
	if (access(glibc_so, R_OK) == 0)
		ck_assert_msg(md_test_allocator(report, "glibc") != NULL, "glibc heap not reported next to jemalloc");
	/* No mapping is claimed by two allocators' regions at once: each region names one. */
	struct md_node *regions = md_node_get(report, "regions");
	ck_assert_uint_gt(md_node_count(regions), 0);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

static bool has_finding(struct md_node *report, const char *severity, const char *text)
{
	struct md_node *f = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(f); i++) {
		struct md_node *x = md_node_at(f, i);
		const char *a = md_node_get_string(md_node_get(x, "allocator"));
		const char *sev = md_node_get_string(md_node_get(x, "severity"));
		const char *msg = md_node_get_string(md_node_get(x, "message"));
		if (a && strcmp(a, "jemalloc") == 0 && sev && strcmp(sev, severity) == 0 && msg && strstr(msg, text))
			return true;
	}
	return false;
}

/* Hostile memory: the target scribbles on its own jemalloc metadata (a bogus cached pointer, an
 * rtree entry to an unmapped edata, a looping base block list, a descriptor ring into unmapped
 * memory). The walk must finish, report each as a finding and still give the counters. */
START_TEST(test_corrupt_metadata)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "jemalloc_truth", NULL));
	ck_assert_int_eq(write(p.in_fd, "corrupt\n", 8), 8);
	char *line = md_test_proc_wait_line(&p, "corrupted", 10000);
	ck_assert_msg(line != NULL, "target did not corrupt itself");
	free(line);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed on corrupt metadata (status %d)", status);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_ptr_nonnull(je);
	ck_assert_uint_gt(md_test_json_u64(je, "stats.allocated"), 0);
	ck_assert(!md_node_get_bool(md_node_get(je, "consistent")));
	ck_assert(has_finding(report, "corrupt", "which is no allocated region"));
	ck_assert(has_finding(report, "corrupt", "points to unreadable edata"));
	ck_assert(has_finding(report, "corrupt", "base block list loops"));
	ck_assert(has_finding(report, "corrupt", "descriptor ring points to unmapped"));
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* Hostile heaps (issue 8): jemalloc_corrupt damages one structure per mode and prints the address
 * the finding must name. Each mode: a corrupt jemalloc finding at exactly that address stating
 * the broken rule, within 5 s, the rest of the report intact, and the target still alive and
 * answering on stdin (it exits 0 on "quit"). */
static const struct {
	const char *mode, *rule;
} hostile_modes[] = {
	{"rtree_unmapped", "points to unreadable edata"},
	{"rtree_protnone", "points to unreadable edata"},
	{"rtree_anywhere", "does not cover it"},
	{"lru_cycle", "dirty ecache lru loops"},
	{"bin_lying", "its stack overlaps bin"},
	{"bitmap_overfull", "free regions, nfree says 1023"},
	{"edata_size", "+0x400000000000) is not mapped"},
	{"arena_slot", "is not an arena"},
	{"base_cycle", "base block list loops"},
};

START_TEST(test_hostile_heaps)
{
	const char *mode = hostile_modes[_i].mode;
	struct md_test_proc p;
	const char *args[] = {mode, NULL};
	ck_assert_msg(md_test_proc_start(&p, "jemalloc_corrupt", args), "%s: target did not get ready", mode);
	unsigned long long bad = 0;
	ck_assert_msg(truth_hex(&p, "bad_addr", &bad) && bad != 0, "%s: no bad_addr", mode);
	int status = -1;
	double t0 = md_test_now_s();
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	double took = md_test_now_s() - t0;
	ck_assert_msg(report != NULL, "%s: attach failed (status %d)", mode, status);
	ck_assert_msg(took < 5.0, "%s: attach took %.2f s", mode, took);
	ck_assert_msg(md_test_allocator(report, "jemalloc") != NULL, "%s: jemalloc not reported", mode);
	if (!md_test_corrupt_finding_at(report, "jemalloc", bad, hostile_modes[_i].rule)) {
		corrupt_findings(report, "jemalloc"); /* shows what was found */
		ck_abort_msg("%s: no corrupt finding at 0x%llx saying \"%s\"", mode, bad, hostile_modes[_i].rule);
	}
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	/* Unharmed: not left stopped, and it still reads its stdin. */
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st != 't' && st != 'T' && st != 'Z' && st != 0, "%s: target state %c after attach", mode, st);
	ck_assert_int_eq(write(p.in_fd, "quit\n", 5), 5);
	int wst = -1;
	pid_t w = 0;
	for (int i = 0; i < 500 && w == 0; i++) {
		w = waitpid(p.pid, &wst, WNOHANG);
		if (w == 0)
			usleep(10000);
	}
	ck_assert_msg(w == p.pid, "%s: target did not answer \"quit\"", mode);
	p.pid = -1; /* reaped */
	ck_assert_msg(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "%s: target ended with status 0x%x", mode, wst);
	md_test_proc_stop(&p);
}
END_TEST

/* A thread parked inside jemalloc (an extent hook that never returns, with ctl and arena mutexes
 * held): let run on alone it never gets out, so the walk is marked inconsistent rather than
 * trusted. */
START_TEST(test_thread_inside_jemalloc)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "jemalloc_truth", NULL));
	ck_assert_int_eq(write(p.in_fd, "block\n", 6), 6);
	char *line = md_test_proc_wait_line(&p, "blocked", 10000);
	ck_assert_msg(line != NULL, "target did not park a thread in jemalloc");
	free(line);
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	ck_assert_msg(report != NULL, "attach failed (status %d)", status);
	struct md_node *je = md_test_allocator(report, "jemalloc");
	ck_assert_ptr_nonnull(je);
	ck_assert(!md_node_get_bool(md_node_get(je, "consistent")));
	struct md_node *arenas = md_node_get(je, "arenas");
	ck_assert_uint_gt(md_node_count(arenas), 0);
	for (size_t i = 0; i < md_node_count(arenas); i++)
		ck_assert_str_eq(md_node_get_string(md_node_get(md_node_at(arenas, i), "state")), "inconsistent");
	/* It was let run on (looked at again and again) or the whole process was re-stopped. */
	ck_assert_uint_gt(md_test_json_u64(report, "target.attach_polls") + md_test_json_u64(report, "target.attach_retries"), 0);
	md_test_check_classes_sum(report);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* ---- Redis ------------------------------------------------------------------------------- */

static int redis_connect(const char *sock_path, int timeout_ms)
{
	for (int waited = 0; waited < timeout_ms; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		if (strlen(sock_path) >= sizeof(sa.sun_path)) {
			close(fd);
			return -1;
		}
		memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(20000);
	}
	return -1;
}

/* Send one command (RESP array of bulk strings) and read one whole reply into a malloc'd buffer. */
static char *redis_cmd(int fd, int argc, const char *const *argv)
{
	char *req = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&req, &len);
	fprintf(m, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++)
		fprintf(m, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
	fclose(m);
	ssize_t w = write(fd, req, len);
	free(req);
	if (w != (ssize_t)len)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r <= 0) {
			free(buf);
			return NULL;
		}
		n += (size_t)r;
		buf[n] = 0;
		/* Complete when: simple reply line ends, or a bulk string has all its bytes. */
		char *crlf = strstr(buf, "\r\n");
		if (!crlf)
			continue;
		if (buf[0] != '$')
			return buf;
		long blen = strtol(buf + 1, NULL, 10);
		if (blen < 0 || (size_t)(crlf + 2 - buf) + (size_t)blen + 2 <= n)
			return buf;
		if (n + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
}

static unsigned long long info_field(const char *info, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\n%s:", key);
	const char *s = strstr(info, pat);
	ck_assert_msg(s != NULL, "INFO memory has no %s", key);
	return strtoull(s + strlen(pat), NULL, 10);
}

START_TEST(test_redis)
{
	if (access(REDIS_SERVER, X_OK) != 0) {
		fprintf(stderr, "check_jemalloc: SKIP redis test: %s not installed (apt-get install redis-server)\n",
			REDIS_SERVER);
		return;
	}
	char dir[] = "/tmp/md-redis-XXXXXX", sock[64];
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	pid_t pid = fork();
	if (pid == 0) {
		/* A failed assertion ends the test process without cleanup: take redis with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		if (chdir(dir) != 0)
			_exit(127);
		execl(REDIS_SERVER, REDIS_SERVER, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		      "--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no",
		      "--enable-debug-command", "yes", "--logfile", "", (char *)NULL);
		_exit(127);
	}
	int fd = redis_connect(sock, 10000);
	ck_assert_msg(fd >= 0, "redis-server did not open %s", sock);

	/* Fill, then delete nine keys in ten: free regions scattered over many slabs. */
	const char *pop[] = {"DEBUG", "POPULATE", "200000", "key", "120"};
	char *r = redis_cmd(fd, 5, pop);
	ck_assert_msg(r && r[0] == '+', "DEBUG POPULATE: %s", r ? r : "(no reply)");
	free(r);
	const char *del[] = {"EVAL",
			     "for i=0,199999 do if i % 10 ~= 0 then redis.call('DEL','key:'..i) end end return 1",
			     "0"};
	r = redis_cmd(fd, 3, del);
	ck_assert_msg(r && r[0] == ':', "EVAL: %s", r ? r : "(no reply)");
	free(r);

	/* INFO memory is a sample of serverCron (every 100 ms): let it settle while idle, read it,
	 * attach at once. The background purge thread may move dirty pages in between (resident
	 * counts dirty pages), so the comparison is retried a few times. */
	/* A first INFO warms the thread cache with what INFO itself allocates and frees, so that the
	 * next sample (taken after it) is the state the attach will see. */
	const char *info_cmd[] = {"INFO", "memory"};
	free(redis_cmd(fd, 2, info_cmd));
	bool matched = false;
	unsigned long long allocated = 0, active = 0, resident = 0;
	uint64_t m_alloc = 0, m_active = 0, m_res = 0;
	for (int attempt = 0; attempt < 4 && !matched; attempt++) {
		usleep(300000);
		r = redis_cmd(fd, 2, info_cmd);
		ck_assert_ptr_nonnull(r);
		allocated = info_field(r, "allocator_allocated");
		active = info_field(r, "allocator_active");
		resident = info_field(r, "allocator_resident");
		free(r);
		int status = -1;
		struct md_node *report = md_test_attach_json(pid, NULL, &status);
		ck_assert_msg(report != NULL, "attach to redis failed (status %d)", status);
		struct md_node *je = md_test_allocator(report, "jemalloc");
		ck_assert_msg(je != NULL, "redis-server: jemalloc not found");
		ck_assert_str_eq(md_node_get_string(md_node_get(je, "symbols")), "heuristic");
		m_alloc = md_test_json_u64(je, "stats.allocated");
		m_active = md_test_json_u64(je, "stats.active");
		m_res = md_test_json_u64(je, "stats.resident");
		md_test_check_classes_sum(report);
		ck_assert_uint_eq(corrupt_findings(report, "jemalloc"), 0);
		/* Where the fragmentation sits: free regions inside slabs, per arena. */
		ck_assert_uint_gt(md_test_json_u64(je, "walk.free_region_bytes"), 0);
		matched = m_alloc == allocated && m_active == active && m_res == resident;
		md_node_destroy(report);
	}
	close(fd);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	unlink(sock);
	rmdir(dir);
	ck_assert_msg(matched,
		      "redis INFO allocator_allocated/active/resident %llu/%llu/%llu, memdissect %" PRIu64 "/%" PRIu64 "/%" PRIu64,
		      allocated, active, resident, m_alloc, m_active, m_res);
}
END_TEST

Suite *jemalloc_suite(void)
{
	Suite *s = suite_create("jemalloc");
	TCase *tc = tcase_create("truth");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_shared_library);
	tcase_add_test(tc, test_shared_library_no_debuginfo);
	tcase_add_test(tc, test_static_symtab);
	tcase_add_test(tc, test_static_stripped);
	tcase_add_test(tc, test_mixed_glibc);
	tcase_add_test(tc, test_corrupt_metadata);
	tcase_add_test(tc, test_thread_inside_jemalloc);
	suite_add_tcase(s, tc);
	TCase *hc = tcase_create("hostile");
	tcase_set_timeout(hc, 60);
	tcase_add_loop_test(hc, test_hostile_heaps, 0, (int)(sizeof(hostile_modes) / sizeof(hostile_modes[0])));
	suite_add_tcase(s, hc);
	TCase *rc = tcase_create("redis");
	tcase_set_timeout(rc, 180);
	tcase_add_test(rc, test_redis);
	suite_add_tcase(s, rc);
	return s;
}
