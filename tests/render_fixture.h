/* The hand-built report the renderer tests share (tests/check_render_fixture.c): a plausible
 * service with a glibc heap of two arenas, a big mmapped chunk, thread stacks, libc, a shared
 * ring buffer, a cgroup close to its limit, allocator regions with their page maps and
 * size-class histograms. Fixed data: every renderer's output of it is reproducible. */
#ifndef MEMDISSECT_RENDER_FIXTURE_H
#define MEMDISSECT_RENDER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/report.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)

/* A run of pages of one part for md_fx_add_alloc_region: `pages` pages, of which the first
 * `releasable` are releasable, each live page carrying `pinned` free bytes. */
struct md_fx_run {
	enum md_cell_part part;
	uint64_t pages;
	uint64_t releasable;
	uint32_t pinned;
};

void md_fx_build_report(struct md_report *r);
void md_fx_add_finding(struct md_report *r, const char *severity, uint64_t address, int group,
		       const char *message);
/* Appends an allocator region built from runs (cells as the classifier makes them: at most
 * MD_MAX_CELLS, each ceil(pages / MD_MAX_CELLS) pages). Keeps alloc_regions in address order
 * only if called in address order. */
void md_fx_add_alloc_region(struct md_report *r, uint64_t start, const char *allocator,
			    const char *label, int group, const struct md_fx_run *runs, size_t n_runs);

char *md_fx_render_text(const struct md_report *r, bool color, int width);
char *md_fx_render_text_opts(const struct md_report *r, const struct md_render_options *opts);
char *md_fx_render_json(const struct md_report *r, size_t *len_ret);
char *md_fx_read_file(const char *path);
/* Addresses (9+ hex digits, with or without 0x) as as many X's, pids as PID, times as TIME, so
 * a golden file holds only what a renderer decides and its tables stay aligned. Returns a malloc'd string. */
char *md_fx_mask(const char *text);
/* Compare the masked text with tests/data/golden/<name> (MD_UPDATE_GOLDEN=1 rewrites it). */
void md_fx_check_golden(const char *name, const char *actual);
/* Every line at most width columns (ANSI escapes not counted). */
void md_fx_check_width(const char *text, int width);

#endif
