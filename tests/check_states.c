/* The live target in every process state (issue 12): threads that cannot stop (vfork parent,
 * frozen cgroup), a main thread gone with pthread_exit, thread ids, kernel threads, 32-bit
 * programs, exec during the attach, processes sharing the address space, and SIGINT during a
 * long walk. Real processes only (tests/targets/states.c, ia32.S); each test prints its figures
 * as "figure:" lines. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "memdissect/node.h"
#include "tests.h"

static long long clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int scaled(int ms)
{
	return md_test_sanitized() ? ms * 4 : ms;
}

static void start(struct md_test_proc *p, const char *name, const char *const *args)
{
	ck_assert_msg(md_test_proc_start(p, name, args), "cannot start target %s", name);
}

/* Threads of pid that are traced (TracerPid != 0) or in a ptrace stop, after waiting up to
 * timeout_ms for them to be let go. */
static int still_held(pid_t pid, int timeout_ms)
{
	long long deadline = clock_ms() + timeout_ms;
	for (;;) {
		int held = 0;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
		DIR *d = opendir(path);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			char spath[300];
			snprintf(spath, sizeof(spath), "/proc/%d/task/%s/status", (int)pid, de->d_name);
			FILE *f = fopen(spath, "r");
			if (!f)
				continue;
			char line[256];
			while (fgets(line, sizeof(line), f)) {
				if (strncmp(line, "TracerPid:", 10) == 0 && atoi(line + 10) != 0)
					held++;
				if (strncmp(line, "State:", 6) == 0 && line[6 + strspn(line + 6, " \t")] == 't')
					held++;
			}
			fclose(f);
		}
		if (d)
			closedir(d);
		if (!held || clock_ms() > deadline)
			return held;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void assert_answers(struct md_test_proc *p, const char *when)
{
	ck_assert_msg(dprintf(p->in_fd, "ping\n") > 0, "%s: cannot write to target %d", when, (int)p->pid);
	char *pong = md_test_proc_wait_line(p, "pong", 5000);
	ck_assert_msg(pong != NULL, "%s: target %d does not answer \"ping\"", when, (int)p->pid);
	free(pong);
}

/* Notes of a JSON report containing needle. */
static int notes_with(struct md_node *report, const char *needle)
{
	struct md_node *notes = md_node_get(report, "notes");
	int n = 0;
	for (size_t i = 0; notes && md_node_at(notes, i); i++) {
		const char *s = md_node_get_string(md_node_at(notes, i));
		if (s && strstr(s, needle))
			n++;
	}
	return n;
}

static int corrupt_findings(struct md_node *report)
{
	struct md_node *f = md_node_get(report, "findings");
	int n = 0;
	for (size_t i = 0; f && md_node_at(f, i); i++) {
		const char *sev = md_node_get_string(md_node_get(md_node_at(f, i), "severity"));
		if (sev && strcmp(sev, "corrupt") == 0)
			n++;
	}
	return n;
}

static double pause_ms(struct md_node *report)
{
	return md_node_get_double(md_node_path(report, "target.pause_ms"));
}

static const char *pid_arg(pid_t pid, char *buf, size_t len)
{
	snprintf(buf, len, "%d", (int)pid);
	return buf;
}

/* ---- threads that cannot stop ---- */

START_TEST(test_vfork_parent)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "vfork", NULL };
	start(&p, "states", args);
	unsigned long long vtid = md_test_truth(&p, "vfork_tid");
	long long t0 = clock_ms();
	int status = -1;
	struct md_node *r = md_test_attach_json(p.pid, NULL, &status);
	long long took = clock_ms() - t0;
	ck_assert_msg(r && status == 0, "attach of a process with a vfork parent thread: exit %d", status);
	char needle[64];
	snprintf(needle, sizeof(needle), "thread %llu (states) could not be stopped", vtid);
	ck_assert_msg(notes_with(r, needle) == 1 && notes_with(r, "in vfork() waiting for its child") == 1,
		      "no note naming vfork parent %llu", vtid);
	/* Before: the other threads stayed stopped 5 s waiting for it, then exit 1. */
	ck_assert_msg(pause_ms(r) < 2000, "paused %.1f ms for a thread that cannot stop", pause_ms(r));
	md_test_check_classes_sum(r);
	fprintf(stderr, "figure: vfork parent: exit 0 in %lld ms, pause %.1f ms, note names thread %llu\n", took,
		pause_ms(r), vtid);
	md_node_destroy(r);
	ck_assert_msg(still_held(p.pid, 2000) == 0, "threads still traced after the attach");
	/* A snapshot says the same in its summary. */
	char buf[24], core[128];
	snprintf(core, sizeof(core), "/tmp/md-states-vfork-%d.core", (int)getpid());
	const char *snap[] = { "snapshot", "-o", core, pid_arg(p.pid, buf, sizeof(buf)), NULL };
	char *out = NULL, *err = NULL;
	status = md_test_run(snap, &out, &err, scaled(60000));
	unlink(core);
	ck_assert_msg(status == 0 && strstr(out, "note: ") && strstr(out, needle), "snapshot: exit %d, no note naming %llu: %s%s",
		      status, vtid, out, err);
	free(out);
	free(err);
	ck_assert_msg(still_held(p.pid, 2000) == 0, "threads still traced after the snapshot");
	assert_answers(&p, "after the attach");
	md_test_proc_stop(&p);
}
END_TEST

#define FREEZER "/sys/fs/cgroup/freezer"

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return false;
	bool ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok;
}

START_TEST(test_frozen_threads)
{
	SKIP_WITHOUT_PTRACE();
	struct stat sb;
	if (stat(FREEZER "/tasks", &sb) != 0)
		MD_SKIP("no cgroup v1 freezer at " FREEZER);
	char dir[128];
	snprintf(dir, sizeof(dir), FREEZER "/md-states-%d", (int)getpid());
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		MD_SKIP("cannot create %s: %s", dir, strerror(errno));
	struct md_test_proc p;
	const char *args[] = { "threads", "10", NULL };
	start(&p, "states", args);
	char path[192], tasks[192], state[192];
	snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
	snprintf(state, sizeof(state), "%s/freezer.state", dir);
	bool ok = true;
	for (int i = 0; i < 10 && ok; i++) {
		char key[16], tid[24];
		snprintf(key, sizeof(key), "tid_%d", i);
		snprintf(tid, sizeof(tid), "%llu", md_test_truth(&p, key));
		ok = write_file(tasks, tid);
	}
	ok = ok && write_file(state, "FROZEN");
	int status = -1;
	struct md_node *r = NULL;
	long long took = 0;
	if (ok) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		long long t0 = clock_ms();
		r = md_test_attach_json(p.pid, NULL, &status);
		took = clock_ms() - t0;
	}
	/* Thaw and clean up before asserting: a failure must not leave a frozen process. */
	write_file(state, "THAWED");
	snprintf(path, sizeof(path), FREEZER "/tasks");
	for (int i = 0; i < 10; i++) {
		char key[16], tid[24];
		snprintf(key, sizeof(key), "tid_%d", i);
		snprintf(tid, sizeof(tid), "%llu", md_test_truth(&p, key));
		write_file(path, tid);
	}
	rmdir(dir);
	ck_assert_msg(ok, "could not freeze the threads through %s", dir);
	ck_assert_msg(r && status == 0, "attach with 10 frozen threads: exit %d", status);
	int notes = notes_with(r, "is frozen by the cgroup freezer");
	/* Before: 5 s plus 5 s per frozen thread (55 s), then exit 1 without a report. */
	ck_assert_msg(notes == 10, "%d notes on frozen threads, want 10", notes);
	ck_assert_msg(pause_ms(r) < 2000, "paused %.1f ms for 10 frozen threads", pause_ms(r));
	ck_assert_msg(md_test_json_u64(r, "target.threads") == 11, "threads %llu, want 11",
		      (unsigned long long)md_test_json_u64(r, "target.threads"));
	md_test_check_classes_sum(r);
	fprintf(stderr, "figure: 10 frozen threads of 11: exit 0 in %lld ms, pause %.1f ms, %d notes\n", took,
		pause_ms(r), notes);
	md_node_destroy(r);
	/* memdissect has exited: the kernel let go of the threads that never stopped. */
	ck_assert_msg(still_held(p.pid, 2000) == 0, "threads still traced after the attach");
	assert_answers(&p, "after thawing");
	md_test_proc_stop(&p);
}
END_TEST

/* ---- process states ---- */

START_TEST(test_pthread_exit_leader)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "pthread_exit", NULL };
	start(&p, "states", args);
	unsigned long long wtid = md_test_truth(&p, "worker_tid");
	ck_assert_msg(md_test_proc_state(p.pid) == 'Z', "the leader should show Z after pthread_exit, not %c",
		      md_test_proc_state(p.pid));
	char buf[24];
	for (int by_tid = 0; by_tid < 2; by_tid++) {
		int status = -1;
		pid_t who = by_tid ? (pid_t)wtid : p.pid;
		struct md_node *r = md_test_attach_json(who, NULL, &status);
		ck_assert_msg(r && status == 0, "attach %s %d: exit %d (the process is alive)", by_tid ? "by thread id" : "by pid",
			      (int)who, status);
		ck_assert_msg(md_test_json_u64(r, "target.pid") == (uint64_t)p.pid, "report of pid %llu, want %d",
			      (unsigned long long)md_test_json_u64(r, "target.pid"), (int)p.pid);
		struct md_node *g = md_test_allocator(r, "glibc");
		ck_assert_msg(g != NULL, "no glibc allocator found through the live thread");
		md_test_check_classes_sum(r);
		fprintf(stderr, "figure: pthread_exit leader, attach by %s %s: exit 0, RSS %llu\n", by_tid ? "tid" : "pid",
			pid_arg(who, buf, sizeof(buf)), (unsigned long long)md_test_json_u64(r, "memory.rss_bytes"));
		md_node_destroy(r);
	}
	assert_answers(&p, "after the attaches");
	md_test_proc_stop(&p);
}
END_TEST

/* The first child of kthreadd, or 2 itself. */
static pid_t a_kernel_thread(void)
{
	FILE *f = fopen("/proc/2/task/2/children", "r");
	int child = 0;
	if (f) {
		if (fscanf(f, "%d", &child) != 1)
			child = 0;
		fclose(f);
	}
	return child > 0 ? (pid_t)child : 2;
}

START_TEST(test_kernel_thread)
{
	SKIP_WITHOUT_PTRACE();
	pid_t pids[2] = { 2, a_kernel_thread() };
	for (int i = 0; i < 2; i++) {
		char buf[24];
		const char *args[] = { "attach", pid_arg(pids[i], buf, sizeof(buf)), NULL };
		char *out = NULL, *err = NULL;
		int status = md_test_run(args, &out, &err, 30000);
		ck_assert_msg(status == 8, "attach of kernel thread %d: exit %d, want 8 (unsupported): %s", (int)pids[i],
			      status, err);
		ck_assert_msg(strstr(err, "is a kernel thread") && !strchr(strchr(err, '\n') + 1, '\n'),
			      "want one line saying it is a kernel thread: %s", err);
		fprintf(stderr, "figure: kernel thread %d: exit 8, %s", (int)pids[i], err);
		free(out);
		free(err);
	}
}
END_TEST

START_TEST(test_ia32_refused)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start(&p, "ia32", NULL);
	char buf[24], core[128];
	snprintf(core, sizeof(core), "/tmp/md-states-ia32-%d.core", (int)getpid());
	unlink(core);
	const char *attach[] = { "attach", pid_arg(p.pid, buf, sizeof(buf)), NULL };
	const char *snap[] = { "snapshot", buf, "-o", core, NULL };
	const char *const *runs[] = { attach, snap };
	for (int i = 0; i < 2; i++) {
		char *out = NULL, *err = NULL;
		int status = md_test_run(runs[i], &out, &err, 30000);
		ck_assert_msg(status == 8, "%s of a 32-bit process: exit %d, want 8: %s", runs[i][0], status, err);
		ck_assert_msg(strstr(err, "32-bit (ia32)") != NULL, "%s: the message should say 32-bit: %s", runs[i][0], err);
		fprintf(stderr, "figure: ia32 %s: exit 8, %s", runs[i][0], err);
		free(out);
		free(err);
	}
	ck_assert_msg(access(core, F_OK) != 0, "snapshot wrote %s for a 32-bit process", core);
	ck_assert_msg(still_held(p.pid, 1000) == 0, "the 32-bit process was left traced");
	md_test_proc_stop(&p);
}
END_TEST

/* A process that execs itself all the time: every attach gives a report or says it exec'd,
 * never "walk failed", "not dumpable" or "zombie". */
START_TEST(test_exec_during_attach)
{
	SKIP_WITHOUT_PTRACE();
	static const char *const periods[] = { "40", "1" };
	for (int k = 0; k < 2; k++) {
		struct md_test_proc p;
		const char *args[] = { "exec", periods[k], NULL };
		start(&p, "states", args);
		int reports = 0, execs = 0;
		for (int i = 0; i < 8; i++) {
			char buf[24];
			const char *md_args[] = { "attach", "--json", pid_arg(p.pid, buf, sizeof(buf)), NULL };
			char *out = NULL, *err = NULL;
			int status = md_test_run(md_args, &out, &err, 60000);
			if (status == 0 && !strstr(out, "walk failed"))
				reports++;
			else if (status == 6 && strstr(err, "exec'd during the attach") && !strchr(strchr(err, '\n') + 1, '\n'))
				execs++;
			else
				ck_abort_msg("exec every %s ms, attach %d: exit %d: %s%s", periods[k], i, status, err,
					     status == 0 ? " (report with a failed walk)" : "");
			free(out);
			free(err);
		}
		fprintf(stderr, "figure: exec every %s ms: 8 attaches, %d reports, %d \"exec'd during the attach\"\n", periods[k],
			reports, execs);
		if (k == 1)
			ck_assert_msg(execs > 0, "a process exec'ing every millisecond never gave the exec message");
		md_test_proc_stop(&p);
	}
}
END_TEST

/* clone(CLONE_VM) without CLONE_THREAD: the sharer mallocs all the time in the target's heap. */
START_TEST(test_address_space_sharer)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "clonevm", NULL };
	start(&p, "states", args);
	unsigned long long sharer = md_test_truth(&p, "sharer_pid");
	char needle[64];
	snprintf(needle, sizeof(needle), "process %llu (states) shares the target's address space", sharer);
	int stayed = 0, worst = 0;
	for (int i = 0; i < 6; i++) {
		int status = -1;
		struct md_node *r = md_test_attach_json(p.pid, NULL, &status);
		ck_assert_msg(r && status == 0, "attach %d: exit %d", i, status);
		ck_assert_msg(notes_with(r, needle) == 1 && notes_with(r, "it was stopped too") == 1,
			      "attach %d: no note saying sharer %llu was stopped", i, sharer);
		int corrupt = corrupt_findings(r);
		bool inside = notes_with(r, "stayed inside the allocator") > 0;
		stayed += inside;
		worst = corrupt > worst ? corrupt : worst;
		/* Before: the sharer ran on, 27-64 corrupt findings in reports called consistent. */
		ck_assert_msg(corrupt == 0 || inside, "attach %d: %d corrupt findings in a consistent report", i, corrupt);
		md_test_check_classes_sum(r);
		md_node_destroy(r);
		ck_assert_msg(still_held((pid_t)sharer, 2000) == 0, "sharer %llu still traced", sharer);
	}
	fprintf(stderr, "figure: clone(CLONE_VM) sharer %llu: 6 attaches, sharer stopped in all, %d caught inside malloc after the retries, worst %d corrupt findings\n",
		sharer, stayed, worst);
	assert_answers(&p, "after the attaches");
	md_test_proc_stop(&p);
}
END_TEST

/* SIGINT in the middle of a long heap walk ends the pause at once. */
START_TEST(test_sigint_during_walk)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "bigheap", "768", NULL };
	start(&p, "states", args);
	char buf[24];
	const char *md_args[] = { "attach", "--json", pid_arg(p.pid, buf, sizeof(buf)), NULL };
	const char *env[] = { "MEMDISSECT_DEBUG_TIMING=1", NULL };
	struct md_test_bg_options o = { .env = env };
	/* First a whole attach: how long the walk takes here. */
	struct md_test_bg r;
	md_test_bg_start(&r, md_args, &o);
	int status = md_test_bg_finish(&r, scaled(60000));
	ck_assert_msg(status == 0, "uninterrupted attach: exit %d: %s", status, r.err);
	const char *w = strstr(r.err, "timing: walk");
	double walk_ms = w ? atof(w + strlen("timing: walk")) : 0;
	md_test_bg_free(&r);
	/* Then SIGINT as soon as the walk starts. */
	md_test_bg_start(&r, md_args, &o);
	ck_assert_msg(md_test_bg_wait_stderr(&r, "timing: quiescence", scaled(60000)), "no walk started: %s", r.err);
	kill(r.pid, SIGINT);
	long long sent = clock_ms();
	status = md_test_bg_finish(&r, scaled(30000));
	long long after = clock_ms() - sent;
	ck_assert_msg(status == 130, "SIGINT during the walk: exit %d, want 130: %s", status, r.err);
	fprintf(stderr, "figure: %llu chunks (768 MiB): walk %.0f ms uninterrupted; SIGINT at its start: exit 130 %lld ms later\n",
		md_test_truth(&p, "chunks"), walk_ms, after);
	/* Generous for a shared CPU, far below the walk itself when the walk is long enough. */
	ck_assert_msg(after < 300 || after < walk_ms / 3, "memdissect ran on %lld ms after SIGINT (walk: %.0f ms)", after,
		      walk_ms);
	md_test_bg_free(&r);
	ck_assert_msg(still_held(p.pid, 2000) == 0, "target still traced after SIGINT");
	assert_answers(&p, "after SIGINT");
	md_test_proc_stop(&p);
}
END_TEST

/* A long pause is refused before anyone is stopped: snapshot over --max-pause, watch with an
 * interval its attaches would fill. */
START_TEST(test_pause_limits)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "bigheap", "256", NULL };
	start(&p, "states", args);
	char buf[24], core[128];
	pid_arg(p.pid, buf, sizeof(buf));
	snprintf(core, sizeof(core), "/tmp/md-states-snap-%d.core", (int)getpid());
	unlink(core);
	const char *refused[] = { "snapshot", "--max-pause", "0.001", "-o", core, buf, NULL };
	char *out = NULL, *err = NULL;
	int status = md_test_run(refused, &out, &err, scaled(60000));
	ck_assert_msg(status == 2 && strstr(err, "snapshot would stop process") && strstr(err, "--max-pause"),
		      "snapshot of 256 MiB with --max-pause 0.001: exit %d, want 2 with the estimate: %s", status, err);
	ck_assert_msg(access(core, F_OK) != 0, "a refused snapshot wrote %s", core);
	fprintf(stderr, "figure: snapshot refused: %s", err);
	free(out);
	free(err);
	const char *bad_value[] = { "snapshot", "--max-pause", "soon", "-o", core, buf, NULL };
	status = md_test_run(bad_value, &out, &err, scaled(30000));
	ck_assert_msg(status == 2 && strstr(err, "--max-pause takes seconds"), "--max-pause soon: exit %d: %s", status, err);
	free(out);
	free(err);
	const char *accepted[] = { "snapshot", "--max-pause", "none", "-o", core, buf, NULL };
	status = md_test_run(accepted, &out, &err, scaled(120000));
	ck_assert_msg(status == 0 && strstr(out, "pause estimated before stopping:"), "default snapshot: exit %d: %s%s", status,
		      out, err);
	const char *pause = strstr(out, "pause ");
	const char *est = strstr(out, "pause estimated before stopping:");
	fprintf(stderr, "figure: snapshot of 256 MiB: %.*s; %.*s\n", (int)strcspn(pause, "\n"), pause,
		(int)strcspn(est, "\n"), est);
	unlink(core);
	free(out);
	free(err);
	ck_assert_msg(still_held(p.pid, 2000) == 0, "target still traced after the snapshots");

	const char *floor_args[] = { "watch", buf, "--interval", "0.05", "--count", "2", NULL };
	status = md_test_run(floor_args, &out, &err, scaled(60000));
	ck_assert_msg(status == 2 && strstr(err, "below the floor"), "watch --interval 0.05: exit %d: %s", status, err);
	free(out);
	free(err);
	/* A 256 MiB attach stops the target longer than 0.1 s / 3: watch waits longer instead. */
	const char *share_args[] = { "watch", buf, "--interval", "0.1", "--count", "3", "--json", NULL };
	status = md_test_run(share_args, &out, &err, scaled(60000));
	ck_assert_msg(status == 0 && strstr(err, "so that it runs at least 2 times as long as it is stopped"),
		      "watch --interval 0.1 of 256 MiB: exit %d: %s", status, err);
	fprintf(stderr, "figure: watch stretched: %s", err);
	free(out);
	free(err);
	assert_answers(&p, "after the refusals");
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

Suite *states_suite(void)
{
	Suite *s = suite_create("states");
	add_case(s, "vfork_parent", test_vfork_parent, 60);
	add_case(s, "frozen_threads", test_frozen_threads, 60);
	add_case(s, "pthread_exit_leader", test_pthread_exit_leader, 60);
	add_case(s, "kernel_thread", test_kernel_thread, 60);
	add_case(s, "ia32_refused", test_ia32_refused, 60);
	add_case(s, "exec_during_attach", test_exec_during_attach, 120);
	add_case(s, "address_space_sharer", test_address_space_sharer, 120);
	add_case(s, "sigint_during_walk", test_sigint_during_walk, 240);
	add_case(s, "pause_limits", test_pause_limits, 240);
	return s;
}
