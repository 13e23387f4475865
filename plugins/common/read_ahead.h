/* Reader threads that read a list of target windows, in order, ahead of their parse
 * (read_ahead.c). Shared by the plugins that stream their heap (tcmalloc, musl, mimalloc): every
 * plugin is built with plugins/common/. */
#ifndef MD_READ_AHEAD_H
#define MD_READ_AHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/plugin.h"

/* The largest window. Windows are page-aligned. */
#define RA_WINDOW_MAX ((size_t)1 << 20)
#define RA_BAD_WORDS (RA_WINDOW_MAX / MD_PAGE_SIZE / 64)
/* At most this many reader threads (MEMDISSECT_READERS, else one per CPU, at least two). */
#define RA_MAX_READERS 4

struct ra_window {
	uint64_t lo, hi;
	size_t first, end; /* the caller's items [first, end) (spans, groups) lie in it */
};

struct ra_stream;

/* Hidden: each plugin has its own copy, none interposes another's. */
/* Start reading win[0..n) (kept by the caller until ra_finish). NULL: out of memory.
 * From here until ra_finish the caller reads target memory only through ra_get and ra_read; the
 * lookups md_target_find_mapping, md_target_page_bits and md_target_interrupted stay allowed. */
__attribute__((visibility("hidden"))) struct ra_stream *ra_start(struct md_target *t, const struct ra_window *win, size_t n);
/* Window i, when it is read; windows are asked for in increasing order (some may be skipped) and
 * each call gives the older ones back. *bad_ret: bit k set when page k (MD_PAGE_SIZE) of it could
 * not be read (its bytes are zeros). NULL when i is past the list or behind the last one asked. */
__attribute__((visibility("hidden"))) const uint8_t *ra_get(struct ra_stream *st, size_t i, const uint64_t **bad_ret);
/* True when a page of [from, to) (offsets into a window) could not be read. */
__attribute__((visibility("hidden"))) bool ra_pages_bad(const uint64_t *bad, uint64_t from, uint64_t to);
/* [addr, addr + len) outside the windows, read while the stream runs (page by page, never
 * through the read cache: the readers may be reading). False when a page of it cannot be read. */
__attribute__((visibility("hidden"))) bool ra_read(struct ra_stream *st, uint64_t addr, void *buf, size_t len);
/* Stop the readers; the bytes read. NULL: no-op. */
__attribute__((visibility("hidden"))) uint64_t ra_finish(struct ra_stream *st);

#endif
