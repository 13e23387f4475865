/* Finding mimalloc in the target: Debian 12's libmimalloc.so.2 (2.0.9, stripped, no data
 * symbols) by its build-id, whose load-relative roots are those of the byte-identical rebuild
 * (shared/docs/tcmalloc-mimalloc.md, B.1); or mimalloc 2.0.9 linked into the executable
 * (libmimalloc.a, release or MI_SECURE), whose roots are in its .symtab. Other builds are
 * refused by name. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mimalloc.h"

static const struct mi_build known_builds[] = {
	{
		.build_id = "d07f4e7dc9a039fcbe7747f416476bd65cb48e8b",
		.version = "2.0.9",
		.build = "release",
		.tls_got = 0x1bfc0,
		.heap_main = 0x1c4c0,
		.tld_main = 0x1d0c0,
		.heap_empty = 0x1ae40,
		.options = 0x1c160,
		.segment_map = 0x1da00,
		.map_words = 0x2801,
		.cache_inuse = 0x31a40,
		.cache = 0x31ac0,
		.abandoned = 0x59b80,
		.abandoned_visited = 0x59bc0,
		.stats_main = 0x61c40,
		.td_cache = 0x61ea0,
	},
};

/* The code of an exported function, read from the target (its text is mapped readable). */
static bool read_function(struct md_target *t, const struct md_module *mod, const char *name, uint8_t *buf, size_t len,
			  uint64_t *addr_ret, size_t *len_ret)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, name, &sym);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	size_t n = sym.size && sym.size < len ? (size_t)sym.size : len;
	err = md_target_read(t, sym.address, buf, n);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	*addr_ret = sym.address;
	*len_ret = n;
	return true;
}

/* mi_version() is "mov $MI_MALLOC_VERSION, %eax; ret": 209 is 2.0.9. 0 when unreadable. */
static unsigned code_version(struct md_target *t, const struct md_module *mod)
{
	uint8_t c[16];
	uint64_t a;
	size_t n;
	if (!read_function(t, mod, "mi_version", c, sizeof(c), &a, &n) || n < 6 || c[0] != 0xb8 || c[5] != 0xc3)
		return 0;
	return (unsigned)c[1] | (unsigned)c[2] << 8 | (unsigned)c[3] << 16 | (unsigned)c[4] << 24;
}

/* The size of mi_page_t from mi_usable_size's slice indexing: lea (%rax,%rax,4) + shl $4 is
 * ×80 (release); lea (%rax,%rax,2) + shl $5 is ×96 (MI_ENCODE_FREELIST: secure or debug). */
static unsigned code_page_size(struct md_target *t, const struct md_module *mod)
{
	static const uint8_t x80[] = { 0x48, 0x8d, 0x04, 0x80, 0x48, 0xc1, 0xe0, 0x04 };
	static const uint8_t x96[] = { 0x48, 0x8d, 0x04, 0x40, 0x48, 0xc1, 0xe0, 0x05 };
	uint8_t c[256];
	uint64_t a;
	size_t n;
	if (!read_function(t, mod, "mi_usable_size", c, sizeof(c), &a, &n))
		return 0;
	for (size_t i = 0; i + sizeof(x80) <= n; i++) {
		if (memcmp(c + i, x80, sizeof(x80)) == 0)
			return 80;
		if (memcmp(c + i, x96, sizeof(x96)) == 0)
			return 96;
	}
	return 0;
}

/* The segment map: the first rip-relative lea in mi_is_in_heap_region (fact sheet B.2.3). */
static uint64_t code_segment_map(struct md_target *t, const struct md_module *mod)
{
	uint8_t c[256];
	uint64_t a;
	size_t n;
	if (!read_function(t, mod, "mi_is_in_heap_region", c, sizeof(c), &a, &n))
		return 0;
	for (size_t i = 0; i + 7 <= n; i++)
		if ((c[i] & 0xf8) == 0x48 && c[i + 1] == 0x8d && (c[i + 2] & 0xc7) == 0x05) {
			int32_t disp;
			memcpy(&disp, c + i + 3, 4);
			return a + i + 7 + (uint64_t)(int64_t)disp;
		}
	return 0;
}

/* One root of a static link from the .symtab (or DWARF): a data object of the expected size
 * (a local of another library with the same name has another size), else 0. */
static uint64_t symtab_root(struct md_target *t, const struct md_module *mod, const char *name, uint64_t size, const char **missing)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, name, &sym);
	if (err) {
		md_error_destroy(err);
		sym.size = 0;
	}
	/* (.bss lies past the module's file mappings: no range check beyond the bias) */
	if (!err && sym.source >= MD_SYMSRC_SYMTAB && sym.size == size && (sym.type == MD_SYM_OBJECT || sym.type == MD_SYM_TLS) &&
	    (sym.type == MD_SYM_TLS || sym.address >= mod->start))
		return sym.type == MD_SYM_TLS ? sym.address + 1 : sym.address - mod->bias; /* + 1: 0 is a valid TLS offset */
	if (!*missing)
		*missing = name;
	return 0;
}

/* mimalloc 2.0.9 linked into the executable: the roots from its .symtab, checked against the
 * code (mi_version, mi_usable_size's page stride, mi_is_in_heap_region's segment map). */
static struct md_error *locate_static(struct md_target *t, const struct md_module *mod, struct mi_roots *r)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, "mi_version", &sym);
	if (err) {
		md_error_destroy(err);
		return NULL; /* no mimalloc in the executable */
	}
	const char *name = mod->name;
	unsigned version = code_version(t, mod), page_size = code_page_size(t, mod);
	if (version != 209)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s links mimalloc %u.%u.%u (mi_version() returns %u): only 2.0.9 is supported", name,
				       version / 100, version / 10 % 10, version % 10, version);
	struct mi_build *b = &r->own;
	const char *missing = NULL;
	uint64_t heap_main = symtab_root(t, mod, "_mi_heap_main", MI_HEAP_SIZE, &missing);
	if (page_size == 96 && !heap_main)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s links a mimalloc 2.0.9 build with 96-byte pages and no %u-byte _mi_heap_main: "
							"a debug build (MI_DEBUG, MI_PADDING), not supported; release and MI_SECURE builds are",
				       name, (unsigned)MI_HEAP_SIZE);
	if (page_size != 80 && page_size != 96)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s links a mimalloc 2.0.9 build whose mi_usable_size indexes pages of no known size", name);
	b->build_id = mod->build_id;
	b->version = "2.0.9";
	b->build = page_size == 96 ? "secure" : "release";
	b->heap_main = heap_main;
	uint64_t tls = symtab_root(t, mod, "_mi_heap_default", 8, &missing);
	b->tld_main = symtab_root(t, mod, "tld_main", 1536, &missing);
	b->heap_empty = symtab_root(t, mod, "_mi_heap_empty", MI_HEAP_SIZE, &missing);
	b->options = symtab_root(t, mod, "options", 26 * MI_OPT_SIZE, &missing);
	b->segment_map = symtab_root(t, mod, "mi_segment_map", 0x2801 * 8, &missing);
	b->map_words = 0x2801;
	b->cache_inuse = symtab_root(t, mod, "cache_inuse", 16 * 8, &missing);
	b->cache = symtab_root(t, mod, "cache", MI_CACHE_SLOTS * 160, &missing);
	b->abandoned = symtab_root(t, mod, "abandoned", 8, &missing);
	b->abandoned_visited = symtab_root(t, mod, "abandoned_visited", 8, &missing);
	b->stats_main = symtab_root(t, mod, "_mi_stats_main", 576, &missing);
	b->td_cache = symtab_root(t, mod, "td_cache", 64, &missing);
	if (missing)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s links mimalloc 2.0.9, but its symbol table has no %s of the size 2.0.9 gives it "
							"(a stripped executable is not supported)",
				       name, missing);
	if (code_segment_map(t, mod) != mod->bias + b->segment_map)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s: mi_is_in_heap_region's code does not name mi_segment_map at 0x%" PRIx64, name,
				       mod->bias + b->segment_map);
	r->b = b;
	r->tls_symtab = true;
	r->tls_offset = tls - 1;
	r->linked_static = true;
	r->encoded = page_size == 96;
	r->page_stride = page_size;
	r->pg_shift = page_size - MI_PAGE_SIZE;
	r->code_checked = true;
	r->module = mod;
	r->bias = mod->bias;
	snprintf(r->module_path, sizeof(r->module_path), "%s", mod->name);
	return NULL;
}

struct md_error *mi_locate(struct md_target *t, struct mi_roots *r)
{
	memset(r, 0, sizeof(*r));
	const struct md_module *mod = md_target_find_module(t, "libmimalloc.so");
	if (!mod) {
		/* Not here, or linked into the executable (libmimalloc.a): its .symtab names the roots.
		 * The core's unanalysed-allocator detection names a static mimalloc we refuse. */
		const struct md_module *exe = md_target_find_module(t, NULL);
		return exe ? locate_static(t, exe, r) : NULL;
	}
	unsigned version = code_version(t, mod), page_size = code_page_size(t, mod);
	if (version != 209)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s is mimalloc %u.%u.%u (mi_version() returns %u): only 2.0.9 is supported",
				    mod->name, version / 100, version / 10 % 10, version % 10, version);
	if (page_size != 80)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s is a mimalloc 2.0.9 build with %s pages (mi_usable_size): only the release "
							"build (80-byte pages, plain free lists) is supported, not a secure or debug build",
				    mod->name, page_size ? "96-byte" : "unrecognised");
	const struct mi_build *b = NULL;
	for (size_t i = 0; i < sizeof(known_builds) / sizeof(known_builds[0]); i++)
		if (mod->build_id && strcmp(mod->build_id, known_builds[i].build_id) == 0)
			b = &known_builds[i];
	if (!b)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s (build-id %s) is not a mimalloc build this plugin knows: only Debian 12's "
							"libmimalloc.so.2 2.0.9 (build-id %s) is supported",
				    mod->name, mod->build_id ? mod->build_id : "none", known_builds[0].build_id);
	uint64_t map = code_segment_map(t, mod);
	if (map != mod->bias + b->segment_map)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s: mi_is_in_heap_region's code names the segment map at 0x%" PRIx64 ", not at 0x%" PRIx64
							" as the build-id table says",
				    mod->name, map, mod->bias + b->segment_map);
	r->code_checked = true;
	r->page_stride = MI_PAGE_SIZE;
	r->module = mod;
	r->b = b;
	r->bias = mod->bias;
	snprintf(r->module_path, sizeof(r->module_path), "%s", mod->name);
	return NULL;
}
