/* A reader thread that reads a list of target windows, in order, ahead of their parse
 * (tc_stream.c). */
#ifndef MD_TC_STREAM_H
#define MD_TC_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/plugin.h"

/* The largest window (a small span is at most 128 pages of 8 KiB: one fits). Windows are
 * page-aligned. */
#define TC_STREAM_MAX ((size_t)1 << 20)
#define TC_STREAM_BAD_WORDS (TC_STREAM_MAX / MD_PAGE_SIZE / 64)

struct tc_window {
	uint64_t lo, hi;
	size_t first_span, end_span; /* the spans [first_span, end_span) of the walk lie in it */
};

struct tc_stream;

/* Start reading win[0..n) (kept by the caller until tc_stream_finish). NULL: out of memory.
 * From here until tc_stream_finish the caller must not call the target API. */
struct tc_stream *tc_stream_start(struct md_target *t, const struct tc_window *win, size_t n);
/* Window i, when it is read; windows are asked for in increasing order and each call gives the
 * older ones back. *bad_ret: bit k set when page k (MD_PAGE_SIZE) of it could not be read. */
const uint8_t *tc_stream_get(struct tc_stream *st, size_t i, const uint64_t **bad_ret);
/* Stop the reader; the bytes it read. NULL: no-op. */
uint64_t tc_stream_finish(struct tc_stream *st);

#endif
