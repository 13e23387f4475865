/* memdissect snapshot: a short pause, then a sparse ELF core of the target that gdb and eu-stack
 * open, plus memdissect's own notes (smaps figures, pagemap bits) so that `memdissect core` on it
 * gives the report a live attach would have given at that moment. */
#ifndef MEMDISSECT_SNAPSHOT_H
#define MEMDISSECT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

enum md_snapshot_copy {
	MD_SNAPSHOT_COPY_AUTO,   /* copy to memory when it fits comfortably, else stream */
	MD_SNAPSHOT_COPY_MEMORY, /* copy resident pages to memory in the pause, write after detaching */
	MD_SNAPSHOT_COPY_STREAM, /* write resident pages to the file during the pause */
};

struct md_snapshot_options {
	/* Called in the pause: false (with a reason in why) when a thread is inside the allocator;
	 * the target then runs briefly and is stopped again, as for an attach. NULL: no check. */
	bool (*quiescent)(void *arg, struct md_target *t, char *why, size_t why_len);
	/* Must this thread run on, alone, for the allocator to reach a safe point (attach/safepoint.h)?
	 * NULL: only whole-process re-stops. Gets quiescent_arg too. */
	bool (*must_run)(void *arg, struct md_target *t, const struct md_thread *thread);
	void *quiescent_arg;
	unsigned max_retries; /* default 5 */
	unsigned retry_usec;  /* default 2000 */
	unsigned hold_pause_ms; /* tests: stay stopped this long ("paused" on stderr) */
	enum md_snapshot_copy copy;
	/* Refuse before stopping when the pause is estimated longer than this (seconds); 0 means
	 * MD_SNAPSHOT_DEFAULT_MAX_PAUSE, a negative value no limit. */
	double max_pause_s;
};

#define MD_SNAPSHOT_DEFAULT_MAX_PAUSE 2.0

struct md_snapshot_result {
	double pause_ms;   /* the target was stopped this long in total */
	double capture_ms; /* of which: stop, /proc and pagemap capture, quiescence retries */
	double copy_ms;    /* of which: copying resident memory */
	double write_ms;   /* writing the file after detaching */
	double total_ms;
	double estimated_pause_ms; /* before the pause: resident bytes / measured read bandwidth */
	bool streamed;     /* memory went to the file during the pause */
	uint64_t resident_bytes; /* memory written to the file */
	uint64_t unreadable_pages; /* resident pages that could not be read (left out) */
	uint64_t file_bytes;     /* apparent size of the file (sparse) */
	size_t mappings, segments, threads;
	unsigned retries; /* whole-process re-stops */
	unsigned polls;   /* rounds of letting threads inside the allocator run on alone */
	bool consistent;
	char why[256]; /* when not consistent */
	char notes[8][512]; /* threads that could not be stopped, processes sharing the memory */
	size_t n_notes, notes_left_out;
};

/* t comes from md_live_open and is not stopped. The file is written to path atomically
 * (a temporary file renamed at the end), mode 0600: it holds the target's memory. */
struct md_error *md_snapshot_write(struct md_target *t, const char *path, const struct md_snapshot_options *opts,
				   struct md_snapshot_result *result_ret);

#endif
