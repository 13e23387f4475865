/* A safe point of a stopped live target: a moment when no thread is inside an allocator and no
 * allocator lock is held, so that the allocator's structures agree with each other. */
#ifndef MEMDISSECT_SAFEPOINT_H
#define MEMDISSECT_SAFEPOINT_H

#include <stdbool.h>

#include "live.h"
#include "memdissect/error.h"
#include "memdissect/target.h"

struct md_safe_point_ops {
	/* Is the stopped target at a safe point? If not, a one-line reason in why. */
	bool (*quiescent)(void *arg, struct md_target *t, char *why, size_t why_len);
	/* Must this thread run on for the target to reach one (inside allocator code, owner of an
	 * allocator lock)? NULL when nobody can tell. */
	bool (*must_run)(void *arg, struct md_target *t, const struct md_thread *thread);
	void *arg;
};

struct md_safe_point_options {
	unsigned max_restops;     /* whole-process re-stops, the last resort (default 5) */
	unsigned restop_usec;     /* how long the whole process runs for one (default 2000) */
	unsigned run_budget_usec; /* how long threads may run on alone, in all (default 60000) */
	unsigned min_cpu_usec;    /* CPU time a thread gets between two looks at it (default 30) */
};

struct md_safe_point_result {
	bool reached;
	unsigned restops;     /* whole-process re-stops */
	unsigned polls;       /* rounds of letting threads inside an allocator run on alone */
	unsigned threads_run; /* threads that were let run on alone (counted once per round of must_run) */
	unsigned lock_waits;  /* times a thread let run alone waited on a lock whose holder was stopped */
	double run_ms;        /* time those threads ran with the others stopped */
	char why[256];        /* when not reached: why the last check failed */
};

/* t is stopped (md_live_stop). Reach a safe point: let the threads that must run on go with the
 * others stopped, stop them again once they have left the allocator; when nobody can tell which
 * thread to run, when one waits on a lock held by a stopped thread or when the budget is spent,
 * let the whole process run for a moment and stop it again (at most max_restops times). Then cap
 * is captured (md_live_capture) with nothing run since and checked once more; res->reached says
 * whether that check passed. The target stays stopped; on error it is detached. */
struct md_error *md_live_reach_safe_point(struct md_target *t, struct md_live_capture *cap,
					  const struct md_safe_point_ops *ops,
					  const struct md_safe_point_options *opts,
					  struct md_safe_point_result *res);

#endif
