/* A synthetic target: mappings whose bytes live in memory, with their residency bits, and threads
 * with registers. Reads go through the generic md_target_read path (residency checks, zero pages,
 * file pages, the block cache), so an allocator walker sees an image exactly as it sees a live
 * process. Used by the walker fuzzers (fuzz/fuzz_*_walk.c) and their regression tests: an image
 * is made from a real capture (a core or snapshot), then mutated in place and restored.
 * Internal to attach/, the fuzzers and the tests. */
#ifndef MEMDISSECT_IMAGE_H
#define MEMDISSECT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

/* One mapping of an image. map.path and map.pages are copied (pages may be NULL: nothing
 * resident); bytes holds (map.end - map.start) bytes, or is NULL for all zeros. */
struct md_image_mapping {
	struct md_mapping map;
	const uint8_t *bytes;
};

/* Build an image from mappings (sorted or not; they must not overlap) and threads. The target has
 * no symbols and no unwinder. */
struct md_error *md_image_create(const struct md_image_mapping *maps, size_t n_maps,
				 const struct md_thread *threads, size_t n_threads,
				 struct md_target **target_ret);

/* Copy every readable mapping of src (present pages; pages that cannot be read become zeros and
 * lose their present bit) into a new image. The image takes src's symbols and src itself: src
 * must not be used afterwards and is destroyed with the image. Mappings larger than max_map_bytes
 * keep their residency but read as zeros (0: no limit). */
struct md_error *md_image_from_target(struct md_target *src, uint64_t max_map_bytes,
				      struct md_target **image_ret);

/* Writable view of the image's bytes at [addr, addr+len), or NULL when the range is not inside
 * one mapping of the image. Writers must call md_target_cache_drop afterwards. */
uint8_t *md_image_bytes(struct md_target *image, uint64_t addr, size_t len);

/* ---- Mutation scripts: the walker fuzzers' input format, replayed by the regression tests ----
 *
 * A script is a sequence of 14-byte records  op:u8 a:u8 o1:u16 o2:u16 val:u64  (little endian).
 * The written address starts from anchor[a & 15 mod n] (the allocator's roots, given by the
 * harness) and follows (op >> 4) & 3 pointers stored in the image:
 *     depth 0: anchor + o1
 *     depth 1: *(anchor + (o1 & ~7))                       + (a >> 4) * 8
 *     depth 2: *(*(anchor + (o1 & ~7)) + (o2 >> 8) * 8)     + (a >> 4) * 8
 *     depth 3: one more hop through (o2 & 0xff) * 8
 * then op & 15 says what is written there: u64/u32/u16/u8 val, xor, add, a pointer to another
 * anchor, a hostile pointer (unmapped, PROT_NONE, non-canonical, itself, a little before itself),
 * a copy of a nearby word (to make lists loop), or the residency bits of the page.
 * Every change is logged so that md_image_undo restores the image exactly. */
struct md_image_undo;

struct md_error *md_image_mutate(struct md_target *image, const uint64_t *anchors, size_t n_anchors,
				 const uint8_t *script, size_t len, struct md_image_undo **undo_ret);
/* Restore what md_image_mutate changed and free the log (NULL: no-op). */
void md_image_undo(struct md_target *image, struct md_image_undo *undo);

#endif
