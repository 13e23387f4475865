/* Offsets of glibc malloc's structures (x86-64), per version 2.26–2.41, either from the
 * built-in table or from DWARF. Only target.h is used, so tests can compile layout.c alone. */
#ifndef MD_GLIBC_LAYOUT_H
#define MD_GLIBC_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

/* A field that does not exist in this version. */
#define GLIBC_OFF_NONE UINT32_MAX

#define GLIBC_MIN_MINOR 26
#define GLIBC_MAX_MINOR 41

#define GLIBC_SIZE_SZ 8ULL
#define GLIBC_MINSIZE 0x20ULL
#define GLIBC_CHUNK_HDR 0x10ULL
#define GLIBC_PREV_INUSE 0x1ULL
#define GLIBC_IS_MMAPPED 0x2ULL
#define GLIBC_NON_MAIN_ARENA 0x4ULL
#define GLIBC_SIZE_BITS 0x7ULL
#define GLIBC_NFASTBINS 10
#define GLIBC_NBINS 128
#define GLIBC_TCACHE_MAX_BINS 64
#define GLIBC_HEAP_MAX_DEFAULT (64ULL << 20)

enum glibc_tcache_key_kind {
	GLIBC_TCACHE_KEY_NONE,    /* 2.26–2.28: tcache_entry has only next */
	GLIBC_TCACHE_KEY_POINTER, /* 2.29–2.33: key = the owning tcache_perthread_struct */
	GLIBC_TCACHE_KEY_RANDOM,  /* 2.34+: key = the static random tcache_key */
};

struct glibc_layout {
	int major, minor;
	bool from_dwarf;

	/* struct malloc_state */
	uint32_t ms_mutex, ms_flags, ms_have_fastchunks, ms_fastbins, ms_top, ms_last_remainder;
	uint32_t ms_bins, ms_binmap, ms_next, ms_next_free, ms_attached_threads;
	uint32_t ms_system_mem, ms_max_system_mem, ms_size;

	/* heap_info */
	uint32_t hi_ar_ptr, hi_prev, hi_size, hi_mprotect_size, hi_pagesize, hi_size_of;

	/* struct malloc_par mp_ */
	uint32_t mp_trim_threshold, mp_top_pad, mp_mmap_threshold, mp_arena_test, mp_arena_max;
	uint32_t mp_thp_pagesize, mp_hp_pagesize, mp_hp_flags;
	uint32_t mp_n_mmaps, mp_n_mmaps_max, mp_max_n_mmaps, mp_no_dyn_threshold;
	uint32_t mp_mmapped_mem, mp_max_mmapped_mem, mp_sbrk_base;
	uint32_t mp_tcache_bins, mp_tcache_max_bytes, mp_tcache_count, mp_tcache_unsorted_limit;
	uint32_t mp_size;

	/* tcache_perthread_struct and tcache_entry */
	uint32_t tc_counts, tc_count_size, tc_entries, tc_size;
	uint32_t te_next, te_key;
	enum glibc_tcache_key_kind key_kind;

	bool safe_linking; /* 2.32+: PROTECT_PTR on tcache next and fastbin fd */
	bool fastchunks_flag_in_flags; /* 2.26: "no fast chunks" is bit 0 of flags */
};

/* Offset of bin i's fake chunk header from the arena (bin_at(av, i)). */
static inline uint64_t glibc_bin_header_offset(const struct glibc_layout *l, unsigned i)
{
	return (uint64_t)l->ms_bins + 16ULL * (i - 1) - 0x10;
}

/* First chunk of an arena's first heap: right after heap_info and the embedded malloc_state,
 * moved up so that the user pointer (chunk + 0x10) is 16-aligned. */
static inline uint64_t glibc_first_heap_chunk_offset(const struct glibc_layout *l)
{
	uint64_t p = (uint64_t)l->hi_size_of + l->ms_size;
	uint64_t misalign = (p + GLIBC_CHUNK_HDR) & 15;
	return misalign ? p + 16 - misalign : p;
}

/* The tcache_perthread_struct chunk's size word, in the main arena (| 4 elsewhere). */
static inline uint64_t glibc_tcache_struct_chunk_size(const struct glibc_layout *l)
{
	uint64_t n = (uint64_t)l->tc_size + GLIBC_SIZE_SZ;
	n = n < GLIBC_MINSIZE ? GLIBC_MINSIZE : (n + 15) & ~15ULL;
	return n;
}

/* The built-in table for 2.minor (x86-64, distro configuration: tcache and tunables on).
 * false when the version is outside 2.26–2.41. */
bool glibc_layout_builtin(int major, int minor, struct glibc_layout *layout_ret);

/* True when the DWARF of the libc with this build-id is known to match the built-in table for
 * 2.minor (checked by the test suite): the table may then be used without reading DWARF. */
bool glibc_layout_dwarf_verified(const char *build_id, int major, int minor);

/* The same offsets from the module's DWARF (md_target_member). Version-only facts (safe-linking,
 * key kind) come from the version. MD_ERR_NOT_FOUND without DWARF or when a needed member is
 * missing (the message names it). */
struct md_error *glibc_layout_from_dwarf(struct md_target *t, const struct md_module *mod, int major,
					 int minor, struct glibc_layout *layout_ret);

/* Compare two layouts field by field; writes "ms_top 0x60/0x68, ..." into diff (may be NULL).
 * Returns the number of differing fields. */
unsigned glibc_layout_compare(const struct glibc_layout *a, const struct glibc_layout *b, char *diff,
			      size_t diff_len);

#endif
