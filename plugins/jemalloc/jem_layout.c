#include <stddef.h>

#include "jem_layout.h"

void jem_layout_default(struct jem_layout *l)
{
	*l = (struct jem_layout){
		.arena_stats_internal = 56,
		.arena_stats_pac_mapped = 176,
		.arena_stats_lstats = 976,
		.lstats_size = 48,
		.lstats_nmalloc = 0,
		.lstats_ndalloc = 8,
		.arena_tcache_ql = 10392,
		.arena_descriptor_ql = 10400,
		.arena_tcache_ql_mtx = 10408,
		.arena_large_mtx = 10536,
		.arena_nactive = 10656,
		.arena_ecache = {10728, 30168, 49608},
		.ecache_npages = 112 + 9640,
		.ecache_guarded_npages = 9768 + 9640,
		.ecache_lru = 112 + 9632,
		.arena_grow_mtx = 69080,
		.arena_decay_mtx = {69320, 71104},
		.arena_edata_cache_mtx = 78768,
		.arena_emap = 78912,
		.arena_pa_base = 78920,
		.arena_ind = 78928,
		.arena_base = 78936,
		.arena_bins = 78952,
		.arena_read_size = 78952,
		.bin_size = 224,
		.bin_lock = 0,
		.bin_curregs = 112 + 24,
		.bin_curslabs = 112 + 64,
		.bin_nonfull_slabs = 112 + 72,
		.bin_slabcur = 192,
		.bin_info_size = 40,
		.bin_info_reg_size = 0,
		.bin_info_slab_size = 8,
		.bin_info_nregs = 16,
		.bin_info_n_shards = 20,
		.base_mtx = 32,
		.base_blocks = 160,
		.base_allocated = 3880,
		.base_resident = 3888,
		.base_mapped = 3896,
		.base_block_size = 0,
		.base_block_next = 8,
		.base_block_edata = 16,
		.edata_bits = 0,
		.edata_addr = 8,
		.edata_size = 16,
		.edata_bitmap = 64,
		.edata_lru_link = 64,
		.rtree_init_lock = 8,
		.rtree_root = 120,
		.tcache_slow_link = 0,
		.tcache_slow_descriptor = 16,
		.tcache_slow_arena = 40,
		.tcache_slow_dyn_alloc = 160,
		.tcache_slow_tcache = 168,
		.tcache_slow_size = 176,
		.descriptor_link = 0,
		.descriptor_bins = 16,
		.cache_bin_size = 24,
		.cache_bin_stack_head = 0,
		.cache_bin_low_bits_full = 18,
		.cache_bin_low_bits_empty = 20,
		.mutex_lock = 64,
		.mutex_owner = 72,
		.mutex_size = 112,
	};
}

/* One step of a member path: the member of a struct type (by its tag name). */
struct member_step {
	const char *struct_name, *member;
};

/* Sum the offsets of a chain of members; false when any step is unknown to DWARF. */
static bool dwarf_path(struct md_target *t, const struct md_module *mod,
		       const struct member_step *steps, size_t n, uint64_t *offset_ret)
{
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t o = 0, sz = 0;
		struct md_error *err = md_target_member(t, mod, steps[i].struct_name, steps[i].member, &o, &sz);
		if (err) {
			md_error_destroy(err);
			return false;
		}
		off += o;
	}
	*offset_ret = off;
	return true;
}

#define PATH(...) ((const struct member_step[]){__VA_ARGS__}), \
	(sizeof((const struct member_step[]){__VA_ARGS__}) / sizeof(struct member_step))

struct md_error *jem_layout_from_dwarf(struct md_target *t, const struct md_module *mod,
				       struct jem_layout *l, unsigned *n_ret)
{
	uint64_t v;
	/* The anchor: without arena_s.pa_shard there is no usable DWARF for jemalloc. */
	if (!dwarf_path(t, mod, PATH({"arena_s", "pa_shard"}), &v))
		return md_error_create(MD_ERR_NOT_FOUND, "no DWARF for jemalloc's arena_s");
	struct jem_layout d = *l;
	unsigned n = 0;
#define TAKE(field, ...)                                  \
	do {                                              \
		if (dwarf_path(t, mod, PATH(__VA_ARGS__), &v)) { \
			d.field = v;                      \
			n++;                              \
		}                                         \
	} while (0)
	TAKE(arena_stats_internal, {"arena_s", "stats"}, {"arena_stats_s", "internal"});
	TAKE(arena_stats_pac_mapped, {"arena_s", "stats"}, {"arena_stats_s", "pa_shard_stats"},
	     {"pa_shard_stats_s", "pac_stats"}, {"pac_stats_s", "pac_mapped"});
	TAKE(arena_stats_lstats, {"arena_s", "stats"}, {"arena_stats_s", "lstats"});
	TAKE(lstats_nmalloc, {"arena_stats_large_s", "nmalloc"});
	TAKE(lstats_ndalloc, {"arena_stats_large_s", "ndalloc"});
	TAKE(arena_tcache_ql, {"arena_s", "tcache_ql"});
	TAKE(arena_descriptor_ql, {"arena_s", "cache_bin_array_descriptor_ql"});
	TAKE(arena_tcache_ql_mtx, {"arena_s", "tcache_ql_mtx"});
	TAKE(arena_large_mtx, {"arena_s", "large_mtx"});
	TAKE(arena_nactive, {"arena_s", "pa_shard"}, {"pa_shard_s", "nactive"});
	TAKE(arena_ecache[0], {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "ecache_dirty"});
	TAKE(arena_ecache[1], {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "ecache_muzzy"});
	TAKE(arena_ecache[2], {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "ecache_retained"});
	TAKE(ecache_npages, {"ecache_s", "eset"}, {"eset_s", "npages"});
	TAKE(ecache_guarded_npages, {"ecache_s", "guarded_eset"}, {"eset_s", "npages"});
	TAKE(ecache_lru, {"ecache_s", "eset"}, {"eset_s", "lru"});
	TAKE(arena_grow_mtx, {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "grow_mtx"});
	TAKE(arena_decay_mtx[0], {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "decay_dirty"});
	TAKE(arena_decay_mtx[1], {"arena_s", "pa_shard"}, {"pa_shard_s", "pac"}, {"pac_s", "decay_muzzy"});
	TAKE(arena_edata_cache_mtx, {"arena_s", "pa_shard"}, {"pa_shard_s", "edata_cache"}, {"edata_cache_s", "mtx"});
	TAKE(arena_emap, {"arena_s", "pa_shard"}, {"pa_shard_s", "emap"});
	TAKE(arena_pa_base, {"arena_s", "pa_shard"}, {"pa_shard_s", "base"});
	TAKE(arena_ind, {"arena_s", "ind"});
	TAKE(arena_base, {"arena_s", "base"});
	TAKE(arena_bins, {"arena_s", "all_bins"});
	TAKE(bin_curregs, {"bin_s", "stats"}, {"bin_stats_s", "curregs"});
	TAKE(bin_curslabs, {"bin_s", "stats"}, {"bin_stats_s", "curslabs"});
	TAKE(bin_nonfull_slabs, {"bin_s", "stats"}, {"bin_stats_s", "nonfull_slabs"});
	TAKE(bin_slabcur, {"bin_s", "slabcur"});
	TAKE(bin_info_slab_size, {"bin_info_s", "slab_size"});
	TAKE(bin_info_nregs, {"bin_info_s", "nregs"});
	TAKE(bin_info_n_shards, {"bin_info_s", "n_shards"});
	TAKE(base_mtx, {"base_s", "mtx"});
	TAKE(base_blocks, {"base_s", "blocks"});
	TAKE(base_allocated, {"base_s", "allocated"});
	TAKE(base_resident, {"base_s", "resident"});
	TAKE(base_mapped, {"base_s", "mapped"});
	TAKE(base_block_next, {"base_block_s", "next"});
	TAKE(base_block_edata, {"base_block_s", "edata"});
	TAKE(edata_addr, {"edata_s", "e_addr"});
	TAKE(rtree_root, {"rtree_s", "root"});
	TAKE(tcache_slow_descriptor, {"tcache_slow_s", "cache_bin_array_descriptor"});
	TAKE(tcache_slow_arena, {"tcache_slow_s", "arena"});
	TAKE(tcache_slow_dyn_alloc, {"tcache_slow_s", "dyn_alloc"});
	TAKE(tcache_slow_tcache, {"tcache_slow_s", "tcache"});
	TAKE(descriptor_bins, {"cache_bin_array_descriptor_s", "bins"});
	TAKE(cache_bin_low_bits_full, {"cache_bin_s", "low_bits_full"});
	TAKE(cache_bin_low_bits_empty, {"cache_bin_s", "low_bits_empty"});
#undef TAKE
	uint64_t sz;
	struct md_error *err = md_target_struct_size(t, mod, "arena_s", &sz);
	if (!err) {
		d.arena_read_size = sz;
		n++;
	}
	md_error_destroy(err);
	err = md_target_struct_size(t, mod, "bin_s", &sz);
	if (!err) {
		d.bin_size = sz;
		n++;
	}
	md_error_destroy(err);
	err = md_target_struct_size(t, mod, "tcache_slow_s", &sz);
	if (!err) {
		d.tcache_slow_size = sz;
		n++;
	}
	md_error_destroy(err);
	*l = d;
	*n_ret = n;
	return NULL;
}
