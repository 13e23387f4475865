/* A core file mapped read-only, which survives the file shrinking under us (attach/coremap.c). */
#ifndef MEMDISSECT_COREMAP_H
#define MEMDISSECT_COREMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"

struct md_coremap {
	const uint8_t *base; /* size bytes of the file, NULL when not mapped */
	uint64_t size;
	int slot; /* in the SIGBUS handler's table */
};

/* The stretch of the file one reader touched since it last gave the pages back; one per
 * thread that reads the mapping. */
struct md_coremap_touched {
	uint64_t lo, hi;
};

/* Map fd's first size bytes. NOT_FOUND (nothing mapped, the caller reads with pread) when the
 * file cannot be mapped or the handler's table is full. */
struct md_error *md_coremap_init(struct md_coremap *m, int fd, uint64_t size);
void md_coremap_deinit(struct md_coremap *m);
/* True once some access past the file's end was caught (the file shrank under us): the
 * mapping reads as zeros from the first page found gone, and nothing read from it is to be
 * trusted. */
bool md_coremap_shrunk(const struct md_coremap *m);
/* Copy [off, off+len) out; false when the file shrank before or during the copy. */
bool md_coremap_copy(const struct md_coremap *m, uint64_t off, void *out, size_t len);
/* Note [off, off+len) as touched; once more than MD_COREMAP_RESIDENT_BUDGET bytes were,
 * give their page-table entries back (MADV_DONTNEED: the pages stay in the page cache and
 * pointers into the mapping stay valid, a later access maps them again). */
void md_coremap_touch(const struct md_coremap *m, struct md_coremap_touched *touched, uint64_t off, uint64_t len);
#define MD_COREMAP_RESIDENT_BUDGET (16ULL << 20)

/* A helper thread that reads the file a little ahead of one reader going forward (a heap walk
 * over md_target_view), so that its pages are mapped and its bytes in the shared cache by the
 * time the walk gets there: the walk then parses at cache speed, not at the speed of memory
 * and page faults, and both CPUs work. NULL when no thread could be started. */
struct md_coremap_ahead;
struct md_coremap_ahead *md_coremap_ahead_create(const struct md_coremap *m);
/* The reader is at off, going forward; the helper reads up to min(off + MD_COREMAP_AHEAD, end). */
void md_coremap_ahead_at(struct md_coremap_ahead *a, uint64_t off, uint64_t end);
void md_coremap_ahead_destroy(struct md_coremap_ahead *a);
#define MD_COREMAP_AHEAD (8ULL << 20)

#endif
