/* Finding mimalloc in the target: Debian 12's libmimalloc.so.2 (2.0.9, stripped, no data
 * symbols) by its build-id, whose load-relative roots are those of the byte-identical rebuild
 * (shared/docs/tcmalloc-mimalloc.md, B.1). Other builds are refused by name. */
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

struct md_error *mi_locate(struct md_target *t, struct mi_roots *r)
{
	memset(r, 0, sizeof(*r));
	const struct md_module *mod = md_target_find_module(t, "libmimalloc.so");
	if (!mod) {
		/* A static link has mi_malloc in the executable: present, but not analysable yet. */
		const struct md_module *exe = md_target_find_module(t, NULL);
		struct md_symbol sym;
		struct md_error *err = exe ? md_target_symbol(t, exe, "mi_malloc", &sym) : NULL;
		if (exe && !err)
			return md_error_create(MD_ERR_UNSUPPORTED, "mimalloc is linked statically into %s: only Debian 12's "
								"libmimalloc.so.2 (2.0.9) is supported", exe->name);
		md_error_destroy(err);
		return NULL;
	}
	const struct mi_build *b = NULL;
	for (size_t i = 0; i < sizeof(known_builds) / sizeof(known_builds[0]); i++)
		if (mod->build_id && strcmp(mod->build_id, known_builds[i].build_id) == 0)
			b = &known_builds[i];
	if (!b)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s (build-id %s) is not a mimalloc build this plugin knows: only Debian 12's "
							"libmimalloc.so.2 2.0.9 (build-id %s) is supported",
				    mod->name, mod->build_id ? mod->build_id : "none", known_builds[0].build_id);
	r->module = mod;
	r->b = b;
	r->bias = mod->bias;
	snprintf(r->module_path, sizeof(r->module_path), "%s", mod->name);
	return NULL;
}
