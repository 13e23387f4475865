/* The musl mallocng plugin (musl 1.2.1-1.2.5, x86-64): shared declarations. Layouts and the
 * locating strategy are those of shared/docs/pymalloc-musl.md, Part B; docs/musl.md says what
 * was checked. */
#ifndef MD_MUSL_H
#define MD_MUSL_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/plugin.h"

/* struct malloc_context on x86-64 (PAGESIZE is a constant there: no pagesize field). */
#define MU_CTX_SIZE 928
#define MU_CTX_SECRET 0
#define MU_CTX_INIT_DONE 8
#define MU_CTX_AVAIL_META 24
#define MU_CTX_META_AREA_HEAD 56
#define MU_CTX_META_AREA_TAIL 64
#define MU_CTX_USAGE_BY_CLASS 464
#define MU_CTX_BRK 920
/* struct meta_area: one page; struct meta: 40 bytes; struct group header: 16 bytes. */
#define MU_AREA_SIZE 4096
#define MU_AREA_SLOTS_OFF 24
#define MU_AREA_MAX_SLOTS ((MU_AREA_SIZE - MU_AREA_SLOTS_OFF) / 40)
#define MU_META_SIZE 40
#define MU_UNIT 16
#define MU_NCLASSES 48
#define MU_CLASS_MMAP 63
/* Report groups: one per size class (63 is group 48), the meta areas are group 49. */
#define MU_GROUP_OF_CLASS(sc) ((sc) == MU_CLASS_MMAP ? MU_NCLASSES : (int)(sc))
#define MU_GROUP_META (MU_NCLASSES + 1)
#define MU_NGROUPS (MU_NCLASSES + 2)

extern const uint16_t mu_size_classes[MU_NCLASSES];

enum mu_located_by { MU_LOC_SYMTAB, MU_LOC_SCAN };

/* What open() found: where the state can be, before the pause. */
struct mu_roots {
	const struct md_module *module; /* the executable (static) or musl's libc.so (dynamic) */
	bool dynamic;
	char version[32];               /* "1.2.3", or "" when the image has no version string */
	bool has_ctx_symbol;
	uint64_t ctx_symbol;            /* __malloc_context */
	bool has_lock_symbol;
	uint64_t lock_symbol;           /* __malloc_lock */
	char module_path[512];
};

/* Find mallocng in the target. module NULL and no error: not a mallocng process. */
struct md_error *mu_locate(struct md_target *t, bool no_debug, struct mu_roots *roots_ret);
/* In the pause: find ctx (the symbol, or the scan of the writable image). found false with no
 * error: no ctx was initialised yet (nothing was ever allocated). */
struct md_error *mu_find_ctx(struct md_target *t, const struct mu_roots *r, uint64_t *ctx_ret,
			     unsigned *hits_ret, uint64_t *scanned_ret, bool *found_ret);

/* Alone: read by the walk before the stream; ahead: from a read-ahead window; after: its window
 * had an unreadable page, read by the walk after the stream. */
enum mu_read_how { MU_READ_ALONE, MU_READ_AHEAD, MU_READ_AFTER };

/* One group as the walk saw it. */
struct mu_group {
	uint64_t meta, mem;
	uint32_t avail_mask, freed_mask;
	uint8_t last_idx, sizeclass;
	bool freeable;
	uint64_t maplen;       /* pages; 0: nested or donated */
	uint64_t stride;
	int32_t parent;        /* index of the group whose slot holds this one, -1: top level */
	bool valid;            /* passed every check: its slots were walked */
	bool donated;
	bool duplicate;        /* the same meta seen again (a looping area chain) */
	uint8_t read_how;      /* enum mu_read_how: where walk_all_slots (musl_walk.c) gets its bytes */
	bool back_checked;     /* its first word was compared with its meta */
	uint32_t live_slots, container_slots, free_slots, bad_slots;
	uint64_t live_bytes;
	uint64_t pinning_live;  /* live user slots in this group and every group nested in it */
	uint64_t resident_bytes; /* top level: resident bytes of its pages */
	uint64_t lazy_candidate_bytes; /* whole pages inside free slots (1.2.1-1.2.3 MADV_FREE them) */
};

struct mu_class_stats {
	uint64_t groups, slots_in_use, slots_free, live_bytes;
	uint64_t usage_by_class; /* the allocator's own count of slots (ctx.usage_by_class) */
	uint64_t mmapped_resident_bytes; /* resident pages of its top-level mmapped groups */
};

struct mu_walk {
	bool found_ctx;
	uint64_t ctx;
	unsigned ctx_hits;
	uint64_t scanned_bytes;
	uint8_t ctx_bytes[MU_CTX_SIZE];
	uint64_t secret;
	uint64_t meta_areas, metas, free_metas;
	struct mu_group *groups;
	size_t n_groups, cap_groups;
	struct mu_class_stats classes[MU_NCLASSES + 1]; /* [48] is sizeclass 63 */
	uint64_t live_allocations, live_bytes, free_slots, overhead_bytes;
	uint64_t nested_groups, donated_groups, mmapped_groups, invalid_groups, bad_slots;
	uint64_t release_bytes, release_pages;  /* resident, would go when every live slot is freed */
	uint64_t kept_bytes;                     /* resident in groups that are never freed (donated) */
	uint64_t lazy_free_bytes;                /* smaps LazyFree of the mappings holding groups */
	uint64_t lazy_candidate_bytes;
	uint64_t meta_area_bytes;
	bool usage_mismatch;
	bool inconsistent;
	bool truncated;
	unsigned findings, findings_dropped;
	uint64_t problems, problem_hash;
	uint64_t transient_slots; /* mid-malloc or mid-free: counted as free */
	uint8_t *win_buf;         /* scratch: the bytes of the group being walked */
	size_t win_cap;
};

struct md_error *mu_walk_run(struct md_target *t, const struct mu_roots *r, struct md_sink *sink,
			     bool inconsistent, struct mu_walk *w);
void mu_walk_deinit(struct mu_walk *w);


/* The plugin's state (what open() returns). */
struct mu_state {
	struct mu_roots roots;
	struct mu_walk walk;
	bool walked;
	uint64_t last_problem_hash; /* of the last failed quiescence check walk */
};

/* Where the walker fuzzer (fuzz/fuzz_musl_walk.c) aims its mutations, after one walk of the
 * unmutated image: ctx, the first and last meta areas, the first meta, and up to 12 groups spread
 * over the address-sorted list (a group's first word leads to its meta). tests/check_image.c
 * replays regression scripts with the same anchors. */
static inline size_t mu_fuzz_anchors(const struct mu_state *s, uint64_t *anchors)
{
	const struct mu_walk *w = &s->walk;
	size_t n = 0;
	if (!w->found_ctx)
		return 0;
	uint64_t head, tail;
	__builtin_memcpy(&head, w->ctx_bytes + MU_CTX_META_AREA_HEAD, 8);
	__builtin_memcpy(&tail, w->ctx_bytes + MU_CTX_META_AREA_TAIL, 8);
	anchors[n++] = w->ctx;
	anchors[n++] = head;
	anchors[n++] = tail;
	anchors[n++] = head + MU_AREA_SLOTS_OFF;
	for (size_t i = 0; i < 12 && w->n_groups; i++)
		anchors[n++] = w->groups[i * w->n_groups / 12].mem;
	return n;
}

#endif
