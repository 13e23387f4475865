/* glibc malloc layouts: a built-in table per version and the same read from DWARF.
 * The table follows docs/glibc.md §1 (compiled from each release tag's struct text with the
 * distro configuration, checked against DWARF on 2.36). 2.35 was the last release to change
 * these structures' layout: 2.41's struct text is 2.38-2.40's (docs/glibc.md, Versions), and the
 * fixture glibcs of tests/check_glibc_versions.c hold every version to the table. */
#include <stdio.h>
#include <string.h>

#include "glibc_layout.h"

/* One offset of struct glibc_layout and where DWARF keeps it. member NULL means the struct's
 * size. Fields that only exist from some version are optional in DWARF. */
struct layout_field {
	const char *name;
	size_t where; /* offsetof(struct glibc_layout, ...) */
	const char *dwarf_struct;
	const char *dwarf_member;
	bool optional;
};

#define F(field, st, mem, opt) { #field, offsetof(struct glibc_layout, field), st, mem, opt }
static const struct layout_field fields[] = {
	F(ms_mutex, "malloc_state", "mutex", false),
	F(ms_flags, "malloc_state", "flags", false),
	F(ms_have_fastchunks, "malloc_state", "have_fastchunks", true),
	F(ms_fastbins, "malloc_state", "fastbinsY", false),
	F(ms_top, "malloc_state", "top", false),
	F(ms_last_remainder, "malloc_state", "last_remainder", false),
	F(ms_bins, "malloc_state", "bins", false),
	F(ms_binmap, "malloc_state", "binmap", false),
	F(ms_next, "malloc_state", "next", false),
	F(ms_next_free, "malloc_state", "next_free", false),
	F(ms_attached_threads, "malloc_state", "attached_threads", false),
	F(ms_system_mem, "malloc_state", "system_mem", false),
	F(ms_max_system_mem, "malloc_state", "max_system_mem", false),
	F(ms_size, "malloc_state", NULL, false),
	F(hi_ar_ptr, "_heap_info", "ar_ptr", false),
	F(hi_prev, "_heap_info", "prev", false),
	F(hi_size, "_heap_info", "size", false),
	F(hi_mprotect_size, "_heap_info", "mprotect_size", false),
	F(hi_pagesize, "_heap_info", "pagesize", true),
	F(hi_size_of, "_heap_info", NULL, false),
	F(mp_trim_threshold, "malloc_par", "trim_threshold", false),
	F(mp_top_pad, "malloc_par", "top_pad", false),
	F(mp_mmap_threshold, "malloc_par", "mmap_threshold", false),
	F(mp_arena_test, "malloc_par", "arena_test", false),
	F(mp_arena_max, "malloc_par", "arena_max", false),
	F(mp_thp_pagesize, "malloc_par", "thp_pagesize", true),
	F(mp_hp_pagesize, "malloc_par", "hp_pagesize", true),
	F(mp_hp_flags, "malloc_par", "hp_flags", true),
	F(mp_n_mmaps, "malloc_par", "n_mmaps", false),
	F(mp_n_mmaps_max, "malloc_par", "n_mmaps_max", false),
	F(mp_max_n_mmaps, "malloc_par", "max_n_mmaps", false),
	F(mp_no_dyn_threshold, "malloc_par", "no_dyn_threshold", false),
	F(mp_mmapped_mem, "malloc_par", "mmapped_mem", false),
	F(mp_max_mmapped_mem, "malloc_par", "max_mmapped_mem", false),
	F(mp_sbrk_base, "malloc_par", "sbrk_base", false),
	F(mp_tcache_bins, "malloc_par", "tcache_bins", false),
	F(mp_tcache_max_bytes, "malloc_par", "tcache_max_bytes", false),
	F(mp_tcache_count, "malloc_par", "tcache_count", false),
	F(mp_tcache_unsorted_limit, "malloc_par", "tcache_unsorted_limit", false),
	F(mp_size, "malloc_par", NULL, false),
	F(tc_counts, "tcache_perthread_struct", "counts", false),
	F(tc_entries, "tcache_perthread_struct", "entries", false),
	F(tc_size, "tcache_perthread_struct", NULL, false),
	F(te_next, "tcache_entry", "next", false),
	F(te_key, "tcache_entry", "key", true),
};
#undef F

static uint32_t *field_ptr(struct glibc_layout *l, const struct layout_field *f)
{
	return (uint32_t *)((char *)l + f->where);
}

static const uint32_t *field_cptr(const struct glibc_layout *l, const struct layout_field *f)
{
	return (const uint32_t *)((const char *)l + f->where);
}

/* Facts that depend on the version only, not on struct text. */
static void set_version_facts(struct glibc_layout *l, int major, int minor)
{
	l->major = major;
	l->minor = minor;
	l->safe_linking = minor >= 32;
	l->key_kind = minor >= 34 ? GLIBC_TCACHE_KEY_RANDOM
		      : minor >= 29 ? GLIBC_TCACHE_KEY_POINTER
				    : GLIBC_TCACHE_KEY_NONE;
	l->fastchunks_flag_in_flags = minor < 27;
}

bool glibc_layout_builtin(int major, int minor, struct glibc_layout *layout_ret)
{
	if (major != 2 || minor < GLIBC_MIN_MINOR || minor > GLIBC_MAX_MINOR)
		return false;
	struct glibc_layout l;
	memset(&l, 0, sizeof(l));
	set_version_facts(&l, major, minor);

	/* malloc_state: 2.27 inserted have_fastchunks (int + 4 bytes of padding) after flags. */
	uint32_t d = minor >= 27 ? 8 : 0;
	l.ms_mutex = 0;
	l.ms_flags = 4;
	l.ms_have_fastchunks = minor >= 27 ? 8 : GLIBC_OFF_NONE;
	l.ms_fastbins = 0x08 + d;
	l.ms_top = 0x58 + d;
	l.ms_last_remainder = 0x60 + d;
	l.ms_bins = 0x68 + d;
	l.ms_binmap = 0x858 + d;
	l.ms_next = 0x868 + d;
	l.ms_next_free = 0x870 + d;
	l.ms_attached_threads = 0x878 + d;
	l.ms_system_mem = 0x880 + d;
	l.ms_max_system_mem = 0x888 + d;
	l.ms_size = 0x890 + d;

	/* heap_info: 2.35 added pagesize (and pad grew to 8 bytes). */
	l.hi_ar_ptr = 0;
	l.hi_prev = 8;
	l.hi_size = 0x10;
	l.hi_mprotect_size = 0x18;
	l.hi_pagesize = minor >= 35 ? 0x20 : GLIBC_OFF_NONE;
	l.hi_size_of = minor >= 35 ? 0x30 : 0x20;

	/* malloc_par: 2.35 added thp_pagesize, hp_pagesize, hp_flags after arena_max. */
	uint32_t m = minor >= 35 ? 0x14 : 0;
	l.mp_trim_threshold = 0;
	l.mp_top_pad = 8;
	l.mp_mmap_threshold = 0x10;
	l.mp_arena_test = 0x18;
	l.mp_arena_max = 0x20;
	l.mp_thp_pagesize = minor >= 35 ? 0x28 : GLIBC_OFF_NONE;
	l.mp_hp_pagesize = minor >= 35 ? 0x30 : GLIBC_OFF_NONE;
	l.mp_hp_flags = minor >= 35 ? 0x38 : GLIBC_OFF_NONE;
	l.mp_n_mmaps = 0x28 + m;
	l.mp_n_mmaps_max = 0x2c + m;
	l.mp_max_n_mmaps = 0x30 + m;
	l.mp_no_dyn_threshold = 0x34 + m;
	/* After the ints the size_t fields realign: +0x18 in total from 2.35. */
	uint32_t s = minor >= 35 ? 0x18 : 0;
	l.mp_mmapped_mem = 0x38 + s;
	l.mp_max_mmapped_mem = 0x40 + s;
	l.mp_sbrk_base = 0x48 + s;
	l.mp_tcache_bins = 0x50 + s;
	l.mp_tcache_max_bytes = 0x58 + s;
	l.mp_tcache_count = 0x60 + s;
	l.mp_tcache_unsorted_limit = 0x68 + s;
	l.mp_size = 0x70 + s;

	/* tcache: counts are char until 2.29, uint16_t from 2.30. */
	l.tc_counts = 0;
	l.tc_count_size = minor >= 30 ? 2 : 1;
	l.tc_entries = minor >= 30 ? 0x80 : 0x40;
	l.tc_size = minor >= 30 ? 0x280 : 0x240;
	l.te_next = 0;
	l.te_key = minor >= 29 ? 8 : GLIBC_OFF_NONE;
	*layout_ret = l;
	return true;
}

/* libc builds whose DWARF was compared field by field with the built-in table and matched
 * (tests/check_glibc.c test_layout_matches_dwarf does it again on every run). For them the
 * table is used without reading DWARF: libdw spends ~60 ms inflating libc6-dbg's compressed
 * debug sections on first use. */
static const struct {
	const char *build_id;
	int minor;
	const char *what;
} dwarf_verified[] = {
	{ "93ac61ec5a8eb1396f9fbd350e3169a558528a40", 36, "Debian 12 libc6 2.36-9+deb12u14 amd64" },
};

bool glibc_layout_dwarf_verified(const char *build_id, int major, int minor)
{
	if (!build_id || major != 2)
		return false;
	for (size_t i = 0; i < sizeof(dwarf_verified) / sizeof(dwarf_verified[0]); i++)
		if (dwarf_verified[i].minor == minor && strcmp(dwarf_verified[i].build_id, build_id) == 0)
			return true;
	return false;
}

struct md_error *glibc_layout_from_dwarf(struct md_target *t, const struct md_module *mod, int major,
					 int minor, struct glibc_layout *layout_ret)
{
	struct glibc_layout l;
	memset(&l, 0, sizeof(l));
	set_version_facts(&l, major, minor);
	l.from_dwarf = true;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const struct layout_field *f = &fields[i];
		uint64_t off = 0, size = 0;
		struct md_error *err = f->dwarf_member
					       ? md_target_member(t, mod, f->dwarf_struct, f->dwarf_member, &off, &size)
					       : md_target_struct_size(t, mod, f->dwarf_struct, &off);
		if (err) {
			if (f->optional && err->code == MD_ERR_NOT_FOUND) {
				md_error_destroy(err);
				*field_ptr(&l, f) = GLIBC_OFF_NONE;
				continue;
			}
			return md_error_wrap(err, "glibc layout from DWARF: %s.%s", f->dwarf_struct,
					     f->dwarf_member ? f->dwarf_member : "(size)");
		}
		if (off > UINT32_MAX - 1)
			return md_error_create(MD_ERR_BAD_DATA, "glibc layout from DWARF: %s.%s at 0x%llx",
					       f->dwarf_struct, f->dwarf_member ? f->dwarf_member : "(size)",
					       (unsigned long long)off);
		*field_ptr(&l, f) = (uint32_t)off;
		if (f->where == offsetof(struct glibc_layout, tc_counts)) {
			/* counts[64]: 64 bytes of char or 128 of uint16_t. */
			l.tc_count_size = size >= 128 ? 2 : 1;
		}
	}
	/* DWARF is the truth for the struct text; let it correct version guesses it can see. */
	if (l.te_key == GLIBC_OFF_NONE)
		l.key_kind = GLIBC_TCACHE_KEY_NONE;
	else if (l.key_kind == GLIBC_TCACHE_KEY_NONE)
		l.key_kind = GLIBC_TCACHE_KEY_POINTER;
	l.fastchunks_flag_in_flags = l.ms_have_fastchunks == GLIBC_OFF_NONE;
	*layout_ret = l;
	return NULL;
}

unsigned glibc_layout_compare(const struct glibc_layout *a, const struct glibc_layout *b, char *diff,
			      size_t diff_len)
{
	unsigned n = 0;
	size_t used = 0;
	if (diff && diff_len)
		diff[0] = 0;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		uint32_t va = *field_cptr(a, &fields[i]), vb = *field_cptr(b, &fields[i]);
		if (va == vb)
			continue;
		n++;
		if (diff && used + 1 < diff_len) {
			int w = snprintf(diff + used, diff_len - used, "%s%s 0x%x/0x%x", used ? ", " : "",
					 fields[i].name, va, vb);
			if (w > 0)
				used += (size_t)w < diff_len - used ? (size_t)w : diff_len - used - 1;
		}
	}
	if (a->tc_count_size != b->tc_count_size) {
		n++;
		if (diff && used + 1 < diff_len)
			snprintf(diff + used, diff_len - used, "%stc_count_size %u/%u", used ? ", " : "",
				 a->tc_count_size, b->tc_count_size);
	}
	return n;
}
