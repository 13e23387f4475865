/* Byte offsets of the jemalloc 5.3 structures the walker reads (x86-64, LG_PAGE 12, LG_VADDR 48,
 * config_stats on). The defaults are those of Debian 12's 5.3.0 build (shared/docs/jemalloc.md §1),
 * which match any 5.3.0 build with the same configuration; when the module carries DWARF the
 * offsets are taken from it instead (jem_layout_from_dwarf). */
#ifndef MD_JEM_LAYOUT_H
#define MD_JEM_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

#define JEM_LG_PAGE 12
#define JEM_PAGE 4096ULL
#define JEM_NBINS 36          /* SC_NBINS: small size classes */
#define JEM_NSIZES 232        /* SC_NSIZES */
#define JEM_NLARGE (JEM_NSIZES - JEM_NBINS)
#define JEM_MAX_ARENAS 4095   /* 1 << MALLOCX_ARENA_BITS, minus one */
#define JEM_ARENA_IND_NONE 0xfff
#define JEM_TCACHE_NBINS_MAX 73
#define JEM_SLAB_MAXREGS 512  /* 1 << SC_LG_SLAB_MAXREGS */
#define JEM_EDATA_SIZE 128
#define JEM_BASE_BLOCK_HEADER 144
#define JEM_RTREE_ROOT_BITS 18
#define JEM_RTREE_LEAF_BITS 18

/* Extent states (edata e_bits bits 17..19). */
enum jem_extent_state {
	JEM_EXTENT_ACTIVE = 0,
	JEM_EXTENT_DIRTY = 1,
	JEM_EXTENT_MUZZY = 2,
	JEM_EXTENT_RETAINED = 3,
	JEM_EXTENT_TRANSITION = 4,
	JEM_EXTENT_MERGING = 5,
};

struct jem_layout {
	/* arena_t */
	uint64_t arena_stats_internal;   /* arena.stats.internal (atomic size_t) */
	uint64_t arena_stats_pac_mapped; /* arena.stats.pa_shard_stats.pac_stats.pac_mapped */
	uint64_t arena_stats_lstats;     /* arena.stats.lstats[SC_NSIZES - SC_NBINS] */
	uint64_t lstats_size, lstats_nmalloc, lstats_ndalloc;
	uint64_t arena_tcache_ql;        /* ring of tcache_slow_t */
	uint64_t arena_descriptor_ql;    /* ring of cache_bin_array_descriptor_t */
	uint64_t arena_tcache_ql_mtx;
	uint64_t arena_large_mtx;
	uint64_t arena_nactive;          /* pa_shard.nactive (pages) */
	uint64_t arena_ecache[3];        /* pac.ecache_dirty / _muzzy / _retained (mutex first) */
	uint64_t ecache_npages;          /* ecache.eset.npages */
	uint64_t ecache_guarded_npages;  /* ecache.guarded_eset.npages */
	uint64_t ecache_lru;             /* ecache.eset.lru: head of a ring of edata_t */
	uint64_t arena_grow_mtx;
	uint64_t arena_decay_mtx[2];     /* pac.decay_dirty.mtx, pac.decay_muzzy.mtx */
	uint64_t arena_edata_cache_mtx;
	uint64_t arena_emap;             /* pa_shard.emap: points to the global emap */
	uint64_t arena_pa_base;          /* pa_shard.base */
	uint64_t arena_ind;              /* u32 */
	uint64_t arena_base;             /* base_t * */
	uint64_t arena_bins;             /* first bin when je_arena_bin_offsets is unknown */
	uint64_t arena_read_size;        /* bytes of arena_t read in one go (bins excluded) */
	/* bin_t */
	uint64_t bin_size, bin_lock, bin_curregs, bin_curslabs, bin_nonfull_slabs, bin_slabcur;
	/* bin_info_t */
	uint64_t bin_info_size, bin_info_reg_size, bin_info_slab_size, bin_info_nregs, bin_info_n_shards;
	/* base_t and base_block_t */
	uint64_t base_mtx, base_blocks, base_allocated, base_resident, base_mapped;
	uint64_t base_block_size, base_block_next, base_block_edata;
	/* edata_t */
	uint64_t edata_bits, edata_addr, edata_size, edata_bitmap;
	uint64_t edata_lru_link;         /* ql_link_inactive: next at +0 (shares the union with the bitmap) */
	/* rtree_t */
	uint64_t rtree_init_lock, rtree_root;
	/* tcache_slow_t / tcache_t / cache_bin_t */
	uint64_t tcache_slow_link, tcache_slow_descriptor, tcache_slow_arena, tcache_slow_dyn_alloc,
		tcache_slow_tcache, tcache_slow_size;
	uint64_t descriptor_link, descriptor_bins;
	uint64_t cache_bin_size, cache_bin_stack_head, cache_bin_low_bits_full, cache_bin_low_bits_empty;
	/* malloc_mutex_t: glibc pthread_mutex_t __lock and __owner inside it */
	uint64_t mutex_lock, mutex_owner, mutex_size;
};

/* Debian 12 5.3.0 (and any 5.3.0 x86-64 build with config_stats, without prof-less changes). */
void jem_layout_default(struct jem_layout *l);
/* Overwrite the offsets DWARF of mod knows about. Returns MD_ERR_NOT_FOUND when the module has
 * no DWARF for jemalloc's types (then l is unchanged); *n_ret counts the offsets read. */
struct md_error *jem_layout_from_dwarf(struct md_target *t, const struct md_module *mod,
				       struct jem_layout *l, unsigned *n_ret);

#endif
