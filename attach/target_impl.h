/* The inside of struct md_target, shared by the live and core back ends in attach/. */
#ifndef MEMDISSECT_TARGET_IMPL_H
#define MEMDISSECT_TARGET_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/target.h"
#include "symbols.h"

struct md_live_capture;

struct md_target_ops {
	/* Copy [addr, addr+len) of present pages; the caller has checked mapping and residency. */
	struct md_error *(*read_present)(struct md_target *t, uint64_t addr, void *buf, size_t len);
	struct md_error *(*backtrace)(struct md_target *t, const struct md_thread *thread,
				      uint64_t *pcs, size_t max, size_t *n_ret);
	void (*destroy_impl)(struct md_target *t);
	/* A target that runs (live): stop every thread; while stopped, capture /proc and pagemap
	 * into a struct md_live_capture; let it run again (detach); seconds stopped in all. NULL for
	 * targets that never run (cores, images): md_target_stop and the rest do nothing. */
	struct md_error *(*stop)(struct md_target *t);
	struct md_error *(*capture)(struct md_target *t, struct md_live_capture *cap);
	void (*resume)(struct md_target *t);
	double (*pause_seconds)(const struct md_target *t);
	/* Optional: [addr, addr+len) in place, the caller has checked mapping and residency;
	 * NULL when those bytes are not held contiguously (see md_target_view). */
	const uint8_t *(*view)(struct md_target *t, uint64_t addr, size_t len);
};

struct md_error *md_target_stop(struct md_target *t);
struct md_error *md_target_capture(struct md_target *t, struct md_live_capture *cap);
void md_target_resume(struct md_target *t);
double md_target_pause_seconds(const struct md_target *t);

#define MD_READ_CACHE_BLOCK (256 * 1024)
#define MD_READ_CACHE_BLOCKS 32
#define MD_FILE_CACHE 8

struct md_read_cache_block {
	uint64_t base; /* block-aligned address; UINT64_MAX when empty */
	uint64_t last_use;
	uint64_t bad; /* bit i: page i of the block could not be read (unmapped, swapped) */
	uint8_t *data;
};

struct md_target {
	enum md_target_source source;
	int32_t pid;
	const struct md_target_ops *ops;
	void *impl;

	struct md_mapping *mappings;
	size_t n_mappings;
	struct md_thread *threads;
	size_t n_threads;

	struct md_symbols *symbols;
	bool symbols_lent; /* a session's, kept after the target: md_target_destroy leaves them */
	bool debuginfo_disabled;
	void *unwinder; /* attach/unwind.c's state for this target, freed by md_unwind_release */

	struct md_read_cache_block cache[MD_READ_CACHE_BLOCKS];
	uint64_t cache_clock;

	struct {
		char *path;
		int fd;
	} files[MD_FILE_CACHE];
	size_t files_next;
};

/* Set by the SIGINT/SIGTERM/SIGHUP handler (defined in target.c, handler in live.c). */
#include <signal.h>
extern volatile sig_atomic_t md_live_interrupted;

/* Drop every cached read (the target may have run). */
void md_target_cache_drop(struct md_target *t);
/* Drop the cached reads of memory that running threads can change, keep those wholly inside
 * read-only private mappings (code, .eh_frame: what the unwinder reads again and again while a
 * few threads run on alone to a safe point). The mappings may have changed meanwhile: only
 * for looks that a full capture and check will confirm. */
void md_target_cache_drop_writable(struct md_target *t);
/* Free mappings, threads, cache, symbols; then ops->destroy_impl. */
void md_target_destroy(struct md_target *t);
/* Mark the thread stacks among the private anonymous mappings (target.c: an SP in a mapping right
 * above a guard mapping). */
void md_target_mark_thread_stacks(struct md_target *t);
/* The anonymous mapping holding sp becomes a stack when a guard mapping ends where it starts. */
void md_target_mark_stack_at(struct md_target *t, uint64_t sp);

#endif
