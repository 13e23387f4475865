/* Reaching a safe point on a busy target. Stopping every thread of a process that allocates all
 * the time almost always catches some of them inside malloc; letting the whole process run again
 * and re-stopping it just rolls the dice again (8 busy threads on 2 cores: 20 of 20 attaches
 * stayed inconsistent after 5 re-stops). Instead only the threads inside the allocator run on,
 * with every other thread stopped, and each is stopped again as soon as a look finds it outside:
 * the others cannot enter the allocator meanwhile, so the set only shrinks. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "safepoint.h"
#include "target_impl.h"

/* Looks at threads let run on, in all: a bound besides the time budget (about 130 looks per
 * attach were seen with 8 busy threads). */
#define MAX_POLLS 4000
/* Looks in a row at which a thread waits on a lock before it counts as blocked by a stopped
 * holder (a holder that runs too releases it within a few looks). */
#define LOCK_WAIT_LOOKS 4

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

/* Stopped while waiting in a futex: the stop interrupted the wait (the kernel will restart it),
 * so the thread was blocked, not on its way through. */
static bool waiting_on_lock(const struct md_thread *th)
{
	if (!th->regs_valid)
		return false;
	int64_t nr = (int64_t)th->regs[MD_REG_ORIG_RAX], ret = (int64_t)th->regs[MD_REG_RAX];
#ifdef SYS_futex_waitv
	bool futex = nr == SYS_futex || nr == SYS_futex_waitv;
#else
	bool futex = nr == SYS_futex;
#endif
	/* -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK, -EINTR, -EAGAIN
	 * is not among them (a value that changed under the waiter: it is moving). */
	return futex && (ret == -512 || ret == -513 || ret == -514 || ret == -516 || ret == -4);
}

static const struct md_thread *thread_of(struct md_target *t, int32_t tid)
{
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	for (size_t i = 0; i < n; i++)
		if (th[i].tid == tid)
			return &th[i];
	return NULL;
}

/* MEMDISSECT_DEBUG_SAFEPOINT=1: one line per step on stderr. */
static bool debug_enabled(void)
{
	static int enabled = -1;
	if (enabled < 0) {
		const char *e = getenv("MEMDISSECT_DEBUG_SAFEPOINT");
		enabled = e && *e == '1';
	}
	return enabled;
}
#define DEBUG(...)                                      \
	do {                                            \
		if (debug_enabled())                    \
			fprintf(stderr, "safepoint: " __VA_ARGS__); \
	} while (0)

/* Time thread tid has spent on a CPU, from /proc/PID/task/TID/schedstat (0 when unknown). */
static uint64_t cpu_ns(pid_t pid, int32_t tid)
{
	char path[96], buf[128];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/schedstat", (int)pid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtoull(buf, NULL, 10);
}

/* The scheduler state letter of a thread ('R' running, 'S' sleeping, 'D' waiting, ...), or 0. */
static char thread_state(pid_t pid, int32_t tid)
{
	char path[96], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* The threads that must run on. */
enum member_state { MEMBER_STOPPED, MEMBER_RUNNING, MEMBER_STOPPING };
struct run_member {
	int32_t tid;
	enum member_state state;
	uint64_t cpu_at_start; /* its CPU time when it was last let go */
	double started_us;
	/* Where the last look found it, and the CPU time it gets before the next look: doubled
	 * each time a look finds it where the last one did. A thread whose kernel work (a page
	 * fault that reclaims, say) takes longer than that would otherwise be interrupted in it
	 * every time and start it over, never getting back to its own code. */
	uint64_t last_pc, last_sp;
	unsigned min_cpu_us;
};

static struct md_error *let_go(struct md_target *t, struct run_member *m)
{
	m->cpu_at_start = cpu_ns(md_target_pid(t), m->tid);
	m->started_us = now_us();
	m->state = MEMBER_RUNNING;
	return md_live_run_threads(t, &m->tid, 1);
}

/* Let the threads that must run on go alone until none must (*escalate = false), or until the
 * budget is spent or they all keep waiting on locks whose holders are stopped (*escalate =
 * true). A member is asked to stop once it has had min_cpu_us of a CPU in the running state
 * since it was let go (no look is wasted on a thread that was not scheduled; a thread sleeping
 * in the kernel, e.g. in a page fault that waits, is left alone: an interrupt would make it start
 * the fault over), or after 20 times that without (it may wait on a lock). The stops are not
 * waited for: a thread waiting for a CPU stops only once scheduled, which on a loaded machine
 * takes whole time slices, so the looks of all members overlap. A member looked at that is still
 * inside goes on; one that left stays stopped. The others cannot enter the allocator meanwhile,
 * so the set only shrinks. On return every thread is stopped. */
static struct md_error *run_on(struct md_target *t, const struct md_safe_point_ops *ops, unsigned budget_us,
			       unsigned min_cpu_us, struct md_safe_point_result *res, bool *escalate)
{
	*escalate = true;
	pid_t pid = md_target_pid(t);
	size_t n_threads = 0;
	const struct md_thread *threads = md_target_threads(t, &n_threads);
	struct run_member *set = calloc(n_threads + 1, sizeof(*set));
	size_t n = 0;
	struct md_error *err = NULL;
	bool ran = false;
	if (!set)
		return &md_error_nomem;
	for (size_t i = 0; i < n_threads; i++)
		if (ops->must_run(ops->arg, t, &threads[i]))
			set[n++] = (struct run_member){ .tid = threads[i].tid, .min_cpu_us = min_cpu_us };
	DEBUG("%zu of %zu threads must run on\n", n, n_threads);
	if (!n)
		goto out; /* nobody to run: a lock is held by no thread in sight */
	res->threads_run += (unsigned)n;
	const double stall_us = 20.0 * min_cpu_us;
	double t0 = now_us(), spent_before = res->run_ms;
	unsigned waits_in_a_row = 0;
	for (size_t i = 0; i < n && !err; i++)
		err = let_go(t, &set[i]);
	ran = true;
	while (n && !err) {
		res->run_ms = spent_before + (now_us() - t0) / 1e3;
		if (res->run_ms * 1e3 >= budget_us || res->polls >= MAX_POLLS)
			break;
		if (md_live_interrupted) {
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
			break;
		}
		/* Every member found waiting on a lock, several times over: the holders are stopped. */
		if (waits_in_a_row >= LOCK_WAIT_LOOKS * n) {
			res->lock_waits++;
			break;
		}
		sleep_us(min_cpu_us);
		for (size_t i = 0; i < n && !err; i++) {
			struct run_member *m = &set[i];
			if (m->state == MEMBER_RUNNING) {
				bool stalled = now_us() - m->started_us >= stall_us + m->min_cpu_us;
				if (stalled || (cpu_ns(pid, m->tid) >= m->cpu_at_start + (uint64_t)m->min_cpu_us * 1000 &&
						thread_state(pid, m->tid) == 'R')) {
					err = md_live_interrupt_thread(t, m->tid);
					m->state = MEMBER_STOPPING;
				}
				continue;
			}
			if (m->state != MEMBER_STOPPING || !md_live_thread_stop_pending(t, m->tid))
				continue;
			res->polls++;
			if ((err = md_live_stop_threads(t, &m->tid, 1)))
				break;
			m->state = MEMBER_STOPPED;
			const struct md_thread *th = thread_of(t, m->tid);
			if (!th || !th->regs_valid || !ops->must_run(ops->arg, t, th)) {
				set[i] = set[--n]; /* gone, or out of the allocator: it stays stopped */
				i--;
				waits_in_a_row = 0;
				continue;
			}
			bool waiting = waiting_on_lock(th);
			DEBUG("  thread %d still inside (rip 0x%llx, syscall %lld -> %lld)%s\n", th->tid,
			      (unsigned long long)th->regs[MD_REG_RIP], (long long)th->regs[MD_REG_ORIG_RAX],
			      (long long)th->regs[MD_REG_RAX], waiting ? ", waiting on a lock" : "");
			waits_in_a_row = waiting ? waits_in_a_row + 1 : 0;
			bool same = th->regs[MD_REG_RIP] == m->last_pc && th->regs[MD_REG_RSP] == m->last_sp;
			m->min_cpu_us = same && m->min_cpu_us < 8000 ? m->min_cpu_us * 2 : min_cpu_us;
			m->last_pc = th->regs[MD_REG_RIP];
			m->last_sp = th->regs[MD_REG_RSP];
			err = let_go(t, m);
		}
	}
	res->run_ms = spent_before + (now_us() - t0) / 1e3;
	DEBUG("%zu threads still inside after %u looks, %.3f ms\n", n, res->polls, res->run_ms);
	for (size_t i = 0; i < n && !err; i++)
		if (set[i].state != MEMBER_STOPPED)
			err = md_live_stop_threads(t, &set[i].tid, 1);
	if (!err && !n)
		*escalate = false;
out:
	/* Threads that the ones that ran may have started: seized and stopped, in the thread list. */
	if (!err && ran)
		err = md_live_stop(t);
	if (!err && ran)
		err = md_live_read_threads(t);
	free(set);
	return err;
}

/* While threads of the target run on alone, memdissect must get the CPU back the moment it
 * wants to look: busy target threads outnumbering the cores would otherwise delay every
 * re-stop by whole time slices (24 ms were seen for resuming 8 threads on 2 cores). A real-time
 * policy for memdissect's own thread, for the length of the loop, makes its wake-ups
 * preempt them. Without the privilege it stays as it is. */
struct saved_policy {
	bool changed;
	int policy;
	struct sched_param param;
};

static void raise_own_priority(struct saved_policy *saved)
{
	saved->changed = false;
	saved->policy = sched_getscheduler(0);
	if (saved->policy < 0 || sched_getparam(0, &saved->param) != 0)
		return;
	struct sched_param rt = { .sched_priority = 1 };
	saved->changed = sched_setscheduler(0, SCHED_FIFO, &rt) == 0;
}

static void restore_own_priority(const struct saved_policy *saved)
{
	if (saved->changed)
		sched_setscheduler(0, saved->policy, &saved->param);
}

static struct md_error *reach(struct md_target *t, struct md_live_capture *cap, const struct md_safe_point_ops *ops,
			      const struct md_safe_point_options *opts, struct md_safe_point_result *res);

struct md_error *md_live_reach_safe_point(struct md_target *t, struct md_live_capture *cap,
					  const struct md_safe_point_ops *ops,
					  const struct md_safe_point_options *opts,
					  struct md_safe_point_result *res)
{
	struct saved_policy saved;
	raise_own_priority(&saved);
	struct md_error *err = reach(t, cap, ops, opts, res);
	restore_own_priority(&saved);
	return err;
}

static struct md_error *reach(struct md_target *t, struct md_live_capture *cap, const struct md_safe_point_ops *ops,
			      const struct md_safe_point_options *opts, struct md_safe_point_result *res)
{
	unsigned max_restops = opts && opts->max_restops ? opts->max_restops : 5;
	unsigned restop_us = opts && opts->restop_usec ? opts->restop_usec : 2000;
	unsigned budget_us = opts && opts->run_budget_usec ? opts->run_budget_usec : 60000;
	unsigned min_cpu_us = opts && opts->min_cpu_usec ? opts->min_cpu_usec : 30;
	memset(res, 0, sizeof(*res));
	memset(cap, 0, sizeof(*cap));
	/* The first looks use the maps read before the pause and fresh registers: a full capture is
	 * worth it only once nothing is going to run any more. */
	bool captured = false, last = false;
	struct md_error *err = md_live_read_threads(t);
	while (!err) {
		if (md_live_interrupted) {
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
			break;
		}
		double q0 = now_us();
		bool ok = !ops->quiescent || ops->quiescent(ops->arg, t, res->why, sizeof(res->why));
		DEBUG("check (%s): %s %s (%.3f ms)\n", captured ? "captured" : "registers only", ok ? "safe" : "not safe:",
		      ok ? "" : res->why, (now_us() - q0) / 1e3);
		if (ok || last) {
			if (captured) {
				res->reached = ok;
				break;
			}
			md_live_capture_deinit(cap);
			err = md_target_capture(t, cap);
			captured = true;
			continue;
		}
		bool escalate = true;
		if (ops->must_run && res->run_ms * 1e3 < budget_us) {
			unsigned runs = res->threads_run;
			err = run_on(t, ops, budget_us, min_cpu_us, res, &escalate);
			if (err)
				break;
			if (res->threads_run != runs)
				captured = false;
			if (!escalate)
				continue;
		}
		/* The budget spent on threads that do not get out: a whole-process re-stop would not
		 * catch them outside either (they are inside most of the time), it would only make the
		 * pause longer. Re-stops are for the cases nobody could name a thread to run. */
		bool spent = ops->must_run && res->run_ms * 1e3 >= budget_us;
		if (res->restops >= max_restops || spent) {
			/* Out of tries: the walk goes on, marked inconsistent, with the figures of now. */
			last = true;
			if (captured)
				break;
			continue;
		}
		res->restops++;
		DEBUG("re-stop %u of the whole process\n", res->restops);
		captured = false;
		err = md_live_resume_briefly(t, restop_us);
		if (!err)
			err = md_live_read_threads(t);
	}
	if (res->reached)
		res->why[0] = 0;
	return err;
}
