/* Finding tcmalloc 2.10's state: the .so (linked or LD_PRELOADed) through its exported
 * Static::pageheap_lock_, or a static link of libtcmalloc*.a through the executable's .symtab.
 * The hidden statics (pageheap_, sizemap_, central_cache_) sit at fixed distances from the lock in
 * static_vars.o's .bss (docs/tcmalloc.md). Other versions are refused with one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc.h"

#define SYM_LOCK "_ZN8tcmalloc6Static14pageheap_lock_E"
#define SYM_INITED "_ZN8tcmalloc6Static7inited_E"
#define SYM_PAGEHEAP "_ZN8tcmalloc6Static9pageheap_E"
#define SYM_SIZEMAP "_ZN8tcmalloc6Static8sizemap_E"
#define SYM_CENTRAL "_ZN8tcmalloc6Static14central_cache_E"
#define SYM_HEAPS "_ZN8tcmalloc11ThreadCache13thread_heaps_E"
#define SYM_TLS "_ZN8tcmalloc11ThreadCache17threadlocal_data_E"

/* Debian 12's gperftools 2.10 libraries (build-ids, docs/tcmalloc.md). */
static const struct {
	const char *build_id, *variant;
} known_builds[] = {
	{"39dfd4a5855703fa6c2469749282f75b18a1aa66", "minimal"},
	{"560cd227169ae8f93cb59e3215f4ea11c299fa69", "full"},
	{"81e43ab26e797857550721760204b2ff5d4b1672", "and_profiler"},
};

static bool have_symbol(struct md_target *t, const struct md_module *mod, const char *name, struct md_symbol *sym)
{
	struct md_symbol tmp;
	struct md_error *err = md_target_symbol(t, mod, name, sym ? sym : &tmp);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

/* The "gperftools X.Y" string of tc_version(), searched in the module's read-only mappings. */
static void find_version(struct md_target *t, const struct md_module *mod, char *out, size_t len)
{
	static const char needle[] = "gperftools 2.";
	size_t n = 0;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	uint64_t budget = 32ull << 20;
	static char buf[(256 << 10) + 64];
	for (size_t i = 0; i < n && budget; i++) {
		const struct md_mapping *m = &maps[i];
		if (!m->path || strcmp(m->path, mod->name) != 0 || (m->perms & (MD_PERM_WRITE | MD_PERM_EXEC)) ||
		    !(m->perms & MD_PERM_READ))
			continue;
		for (uint64_t a = m->start; a < m->end && budget;) {
			size_t chunk = (size_t)(m->end - a < (256 << 10) ? m->end - a : (256 << 10));
			size_t want = chunk + 32 <= m->end - a ? chunk + 32 : chunk; /* overlap the window edge */
			struct md_error *err = md_target_read(t, a, buf, want);
			if (err) {
				md_error_destroy(err);
				break;
			}
			budget = budget > chunk ? budget - chunk : 0;
			char *hit = memmem(buf, want, needle, sizeof(needle) - 1);
			if (hit) {
				size_t k = sizeof("gperftools ") - 1, o = 0;
				while (o + 1 < len && hit + k + o < buf + want &&
				       ((hit[k + o] >= '0' && hit[k + o] <= '9') || hit[k + o] == '.'))
					o++;
				snprintf(out, len, "%.*s", (int)o, hit + k);
				return;
			}
			a += chunk;
		}
	}
}

static const struct md_module *find_library(struct md_target *t)
{
	static const char *const names[] = {"libtcmalloc_minimal.so", "libtcmalloc.so", "libtcmalloc_and_profiler.so",
					    "libtcmalloc_minimal_debug.so", "libtcmalloc_debug.so"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct md_module *m = md_target_find_module(t, names[i]);
		if (m)
			return m;
	}
	return NULL;
}

struct md_error *tc_locate(struct md_target *t, struct tc_roots *r)
{
	memset(r, 0, sizeof(*r));
	const struct md_module *mod = find_library(t);
	struct md_symbol lock;
	bool is_static = false;
	if (!mod) {
		/* A static link: tcmalloc's own functions in the executable. */
		const struct md_module *exe = md_target_find_module(t, NULL);
		if (!exe || !have_symbol(t, exe, "tc_malloc", NULL))
			return NULL;
		mod = exe;
		is_static = true;
	}
	const char *base = strrchr(mod->name, '/') ? strrchr(mod->name, '/') + 1 : mod->name;
	if (strstr(base, "_debug"))
		return md_error_create(MD_ERR_UNSUPPORTED,
				       "%s is a debug variant (blocks wrapped, frees quarantined): not supported",
				       base);
	find_version(t, mod, r->version, sizeof(r->version));
	if (r->version[0] && strcmp(r->version, "2.10") != 0)
		return md_error_create(MD_ERR_UNSUPPORTED,
				       "gperftools %s in %s is not supported (only 2.10: later versions moved the page-heap lock and shifted offsets)",
				       r->version, base);
	if (!have_symbol(t, mod, SYM_LOCK, &lock))
		return md_error_create(MD_ERR_UNSUPPORTED,
				       "%s has no tcmalloc::Static::pageheap_lock_ symbol (gperftools %s): only 2.10 is supported",
				       base, r->version[0] ? r->version : "of unknown version");
	r->module = mod;
	r->is_static = is_static;
	r->source = lock.source;
	r->pageheap_lock = lock.address;
	r->pageheap = lock.address - TC_LOCK_TO_PAGEHEAP;
	r->sizemap = r->pageheap + TC_PAGEHEAP_TO_SIZEMAP;
	r->central = r->pageheap + TC_PAGEHEAP_TO_CENTRAL;
	snprintf(r->variant, sizeof(r->variant), "%s", is_static ? "static" : "unknown");
	if (!is_static) {
		for (size_t i = 0; i < sizeof(known_builds) / sizeof(known_builds[0]); i++)
			if (mod->build_id && strcmp(mod->build_id, known_builds[i].build_id) == 0)
				snprintf(r->variant, sizeof(r->variant), "%s", known_builds[i].variant);
		if (strcmp(r->variant, "unknown") == 0 && !r->version[0])
			return md_error_create(MD_ERR_UNSUPPORTED,
					       "%s (build-id %s) is neither a known Debian 2.10 build nor says its version",
					       base, mod->build_id ? mod->build_id : "none");
	} else {
		/* The .symtab names the hidden statics: they must sit where the invariant says. */
		struct md_symbol s;
		if (have_symbol(t, mod, SYM_PAGEHEAP, &s) && s.address != r->pageheap)
			return md_error_create(MD_ERR_UNSUPPORTED,
					       "Static::pageheap_ at 0x%llx, not pageheap_lock_ - 0x%x: not the 2.10 layout",
					       (unsigned long long)s.address, TC_LOCK_TO_PAGEHEAP);
		if (have_symbol(t, mod, SYM_SIZEMAP, &s) && s.address != r->sizemap)
			return md_error_create(MD_ERR_UNSUPPORTED, "Static::sizemap_ is not where 2.10 has it");
		if (have_symbol(t, mod, SYM_CENTRAL, &s) && s.address != r->central)
			return md_error_create(MD_ERR_UNSUPPORTED, "Static::central_cache_ is not where 2.10 has it");
	}
	struct md_symbol s;
	if (!have_symbol(t, mod, SYM_INITED, &s) || !have_symbol(t, mod, SYM_HEAPS, &s))
		return md_error_create(MD_ERR_UNSUPPORTED, "%s lacks Static::inited_ or ThreadCache::thread_heaps_",
				       base);
	have_symbol(t, mod, SYM_INITED, &s);
	r->inited = s.address;
	have_symbol(t, mod, SYM_HEAPS, &s);
	r->thread_heaps = s.address;
	if (have_symbol(t, mod, SYM_TLS, &s) && s.type == MD_SYM_TLS) {
		r->tls_offset = s.address;
		r->has_tls = true;
	}
	const char *path = md_target_module_file(t, mod);
	snprintf(r->module_path, sizeof(r->module_path), "%s", path ? path : mod->name);
	return NULL;
}
