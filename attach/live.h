/* A live process as a target: attach (seize and stop every thread), capture, detach. */
#ifndef MEMDISSECT_LIVE_H
#define MEMDISSECT_LIVE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/error.h"
#include "memdissect/target.h"
#include "procfs.h"
#include "symbols.h"

struct md_live_options {
	bool debuginfo_disabled;
	/* A session attaching to the same process again and again (watch): *symbols holds what was
	 * learnt of its modules, NULL the first time. md_live_open refreshes it (or makes it anew
	 * after an exec) and lends it to the target; the caller destroys it. NULL: the target reads
	 * its own symbols and frees them. */
	struct md_symbols **symbols;
	struct md_symbols_counters *counters; /* where symbol loads are counted, or NULL */
	struct md_symbols_cache *cache;       /* the session's answers by build-id, or NULL */
	/* Who keeps the threads an attach could not let go (see md_live_release_lingering): a
	 * session's tracer, or NULL for one of the target's own. */
	struct md_live_tracer *tracer;
};

struct md_live_tracer;
struct md_error *md_live_tracer_create(struct md_live_tracer **tracer_ret);
/* Lets go of the lingering threads that have stopped; the kernel lets go of the rest when
 * memdissect exits. */
void md_live_tracer_destroy(struct md_live_tracer *tracer);

/* A thread (of the target, or of a process sharing its address space) that could not be
 * stopped: it was in uninterruptible sleep and was left as it was. */
struct md_live_unstopped {
	int32_t tid, tgid;
	char comm[16];
	char state;     /* of /proc/.../stat: 'D' */
	char wchan[64];
	long syscall;   /* the system call it sleeps in (/proc/.../syscall), -1 when unknown */
	uint64_t sp;    /* its stack pointer, 0 when unknown */
	bool vfork;     /* in vfork() (or clone with CLONE_VFORK): waits for its child */
	bool frozen;    /* in the cgroup freezer */
};

/* What the pause captured besides the target's own mappings and threads. */
struct md_live_capture {
	struct md_smaps rollup;
	struct md_proc_status status;
	char comm[64];
	char *exe;
	uint64_t reconciled_pages; /* per-page evidence corrected to match smaps */
	/* Without page frame numbers (not CAP_SYS_ADMIN) the zero-page PTEs that smaps leaves out
	 * cannot be told from copy-on-write shared pages: how many were chosen by position. */
	uint64_t guessed_zero_pages;
	/* smaps_rollup's Rss as read; differs from rollup.rss (= the sum over smaps) when pages
	 * were reclaimed between the reads even though the target was stopped. */
	uint64_t rollup_rss_as_read;
	struct md_live_unstopped *unstopped; /* threads left running, n_unstopped of them */
	size_t n_unstopped;
	char **notes; /* for the report: threads left running, processes sharing the mm */
	size_t n_notes;
};

/* Before the pause: check the process (exists, not a zombie, not a kernel thread, a 64-bit
 * program, not traced), read its maps and pagemap and report its modules to libdwfl. Nothing is
 * stopped. A thread id stands for its process (md_target_pid gives the process id). */
struct md_error *md_live_open(pid_t pid, const struct md_live_options *opts, struct md_target **target_ret);

/* Stop every thread (seize + interrupt, re-scan the task list until stable), and every process
 * sharing the address space. A thread in uninterruptible sleep is not waited for (more than 50 ms):
 * the capture's notes name it. MD_ERR_EXECED from the capture when the target exec'd. */
struct md_error *md_live_stop(struct md_target *t);
/* While stopped: re-read maps, smaps, smaps_rollup, status, pagemap and registers. */
struct md_error *md_live_capture(struct md_target *t, struct md_live_capture *cap);
/* Let the target run for about usec microseconds, then stop it again (consistency retries). */
struct md_error *md_live_resume_briefly(struct md_target *t, unsigned usec);
/* Safe points: let a chosen few threads run on while every other thread stays stopped (the
 * pause goes on), then stop them again. run_threads resumes the listed threads that are stopped
 * (a signal that arrived for one meanwhile is delivered). stop_threads interrupts the listed
 * threads that run, waits for their stops and re-reads their registers in the thread list
 * (regs_valid false for one that is gone); threads they started are not seen until the next
 * md_live_stop (which, on a stopped target, seizes new threads and waits for them). Cached reads
 * are dropped. On error the target is detached. read_threads re-reads the thread list and every
 * stopped thread's registers without the rest of a capture. */
struct md_error *md_live_run_threads(struct md_target *t, const int32_t *tids, size_t n);
struct md_error *md_live_stop_threads(struct md_target *t, const int32_t *tids, size_t n);
struct md_error *md_live_read_threads(struct md_target *t);
/* Without waiting: ask a running thread to stop (once: a second request while it is stopped
 * would stop it again right after the next resume), and whether it has stopped (or is gone);
 * md_live_stop_threads then collects the stop without interrupting again. */
struct md_error *md_live_interrupt_thread(struct md_target *t, int32_t tid);
bool md_live_thread_stop_pending(struct md_target *t, int32_t tid);
/* Detach every thread, re-injecting signals that arrived meanwhile. Safe to call twice. */
void md_live_detach(struct md_target *t);
/* Threads that could not stop are still seized after the detach (a detach needs a stopped
 * tracee): let go of those of tracer that have stopped since. Called by every open and detach; a
 * caller that attaches again and again in one process (watch) calls it while it waits. */
void md_live_release_lingering(struct md_live_tracer *tracer);
/* The process no longer exists or is a zombie. */
bool md_live_process_gone(pid_t pid);
/* Seconds the target has been stopped in total so far. */
double md_live_pause_seconds(const struct md_target *t);
void md_live_capture_deinit(struct md_live_capture *cap);

/* Set by the SIGINT/SIGTERM/SIGHUP handler; long loops check it. */
extern volatile sig_atomic_t md_live_interrupted;
/* Install handlers: SIGINT/SIGTERM/SIGHUP set md_live_interrupted; fatal signals detach every
 * seized thread before dying. */
void md_live_install_signal_handlers(void);

#endif
