/* Finding glibc's malloc state through symbols: .symtab of libc's separate debug file (the
 * symbols we need are STB_LOCAL there), DWARF, or the executable's own .symtab when it is linked
 * statically. */
#include <stdio.h>
#include <string.h>

#include "glibc_internal.h"
#include "glibc_locate.h"

/* Parse "2.36" (possibly followed by more text) into major/minor. */
bool glibc_parse_version(const char *s, size_t len, int *major_ret, int *minor_ret)
{
	int major = 0, minor = 0;
	size_t i = 0;
	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	while (i < len && s[i] >= '0' && s[i] <= '9' && major < 100)
		major = major * 10 + (s[i++] - '0');
	if (i >= len || s[i] != '.')
		return false;
	i++;
	if (i >= len || s[i] < '0' || s[i] > '9')
		return false;
	while (i < len && s[i] >= '0' && s[i] <= '9' && minor < 1000)
		minor = minor * 10 + (s[i++] - '0');
	if (major != 2 || minor < 1 || minor > 200)
		return false;
	*major_ret = major;
	*minor_ret = minor;
	return true;
}

struct md_error *glibc_version_from_symbols(struct md_target *t, const struct md_module *mod,
					    int *major_ret, int *minor_ret)
{
	/* __nptl_version is exported (GLIBC_PRIVATE) from 2.34; __libc_version is a local of
	 * version.c, present in .symtab (debug file, or a static binary). */
	static const char *const names[] = { "__nptl_version", "__libc_version" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct md_symbol sym;
		struct md_error *err = md_target_symbol(t, mod, names[i], &sym);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		char buf[16];
		memset(buf, 0, sizeof(buf));
		err = md_target_read(t, sym.address, buf, 8);
		if (err) {
			md_error_destroy(err);
			continue;
		}
		if (glibc_parse_version(buf, 8, major_ret, minor_ret))
			return NULL;
	}
	return md_error_create(MD_ERR_NOT_FOUND, "no __nptl_version or __libc_version symbol");
}

/* An object symbol's run-time address. */
static struct md_error *object_symbol(struct md_target *t, const struct md_module *mod, const char *name,
				      struct md_symbol *sym_ret)
{
	struct md_error *err = md_target_symbol(t, mod, name, sym_ret);
	if (err)
		return err;
	if (sym_ret->type == MD_SYM_TLS || sym_ret->type == MD_SYM_FUNC || sym_ret->address == 0)
		return md_error_create(MD_ERR_NOT_FOUND, "symbol %s is not a data object", name);
	return NULL;
}

struct md_error *glibc_locate_symbols(struct md_target *t, const struct md_module *mod,
				      struct glibc_roots *roots_ret)
{
	if (md_target_debuginfo_disabled(t))
		return md_error_create(MD_ERR_NOT_FOUND, "debug info disabled");
	struct glibc_roots r;
	memset(&r, 0, sizeof(r));
	r.module = mod;

	struct md_symbol arena, mp;
	struct md_error *err = object_symbol(t, mod, "main_arena", &arena);
	if (err)
		return md_error_wrap(err, "main_arena");
	err = object_symbol(t, mod, "mp_", &mp);
	if (err)
		return md_error_wrap(err, "mp_");
	r.main_arena = arena.address;
	r.mp = mp.address;
	r.source = arena.source == MD_SYMSRC_DWARF ? MD_SYMSRC_DWARF : MD_SYMSRC_SYMTAB;

	struct md_symbol sym;
	err = object_symbol(t, mod, "global_max_fast", &sym);
	if (!err)
		r.global_max_fast = sym.address;
	md_error_destroy(err);
	err = object_symbol(t, mod, "tcache_key", &sym);
	if (!err)
		r.tcache_key = sym.address;
	md_error_destroy(err);
	err = md_target_symbol(t, mod, "tcache", &sym);
	if (!err && sym.type == MD_SYM_TLS) {
		r.have_tcache_tls_offset = true;
		r.tcache_tls_offset = sym.address;
	}
	md_error_destroy(err);

	err = glibc_version_from_symbols(t, mod, &r.version_major, &r.version_minor);
	if (err) {
		md_error_destroy(err);
		err = glibc_detect_version(t, mod, &r.version_major, &r.version_minor);
		if (err) {
			md_error_destroy(err);
			r.version_major = r.version_minor = 0;
		}
	}
	bool from_debuginfod = false;
	const char *debug_file =
		arena.source >= MD_SYMSRC_SYMTAB ? md_target_module_debug_file(t, mod, &from_debuginfod) : NULL;
	snprintf(r.how, sizeof(r.how), "%s of %s%s%s%s%s%s (main_arena 0x%llx, mp_ 0x%llx%s)",
		 md_symbol_source_name(arena.source), mod->name ? mod->name : "the executable",
		 mod->build_id ? ", build-id " : "", mod->build_id ? mod->build_id : "",
		 debug_file ? ", debug file " : "", debug_file ? debug_file : "",
		 from_debuginfod ? " (from debuginfod)" : "",
		 (unsigned long long)r.main_arena, (unsigned long long)r.mp,
		 r.have_tcache_tls_offset ? ", tcache TLS" : ", no tcache TLS symbol");
	*roots_ret = r;
	return NULL;
}
