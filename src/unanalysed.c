/* Allocators and runtimes present in the target that no plugin walks, found by their modules and
 * symbols (the table of known_allocators.c), and any other module that exports malloc. Their memory is real and
 * resident but shows as anon_other; naming them (and making the report partial) is what lets the
 * report say "unknown" where it would otherwise say "nothing to do".
 * Runs after the pause: symbol tables are read from the ELF files, never from target memory. */
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"
#include "render.h"
#include "unanalysed.h"

static const char *base_name(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;
	return slash ? slash + 1 : path ? path : "";
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A function the module defines itself (not an undefined import). */
static bool defines(struct md_target *t, const struct md_module *mod, const char *symbol)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, symbol, &sym);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return sym.address != 0 && sym.type != MD_SYM_TLS;
}

/* Modules some plugin walked: the allocator objects name them ("module", "modules"). */
static bool claimed(const struct md_report *r, const struct md_module *mod)
{
	for (size_t i = 0; mod->name && i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *module = md_node_get_string(md_node_get(a, MD_FIG_MODULE));
		/* the plugin may name the file it opened (a core's sysroot copy): same base name */
		if (module && (strcmp(module, mod->name) == 0 || strcmp(base_name(module), base_name(mod->name)) == 0))
			return true;
		const struct md_node *mods = md_node_get(a, MD_FIG_MODULES);
		for (size_t k = 0; k < md_node_count(mods); k++) {
			const char *m = md_node_get_string(md_node_at(mods, k));
			if (m && (strcmp(m, mod->name) == 0 || strcmp(base_name(m), base_name(mod->name)) == 0))
				return true;
		}
	}
	return false;
}

static struct md_error *add(struct md_report *r, const char *name, const char *module, const char *evidence)
{
	for (size_t i = 0; i < r->n_unanalysed; i++)
		if (strcmp(r->unanalysed[i].name, name) == 0 && strcmp(r->unanalysed[i].module, module) == 0)
			return NULL;
	struct md_unanalysed_allocator *u = realloc(r->unanalysed, (r->n_unanalysed + 1) * sizeof(*u));
	if (!u)
		return &md_error_nomem;
	r->unanalysed = u;
	struct md_unanalysed_allocator e = { strdup(name), strdup(module), strdup(evidence) };
	if (!e.name || !e.module || !e.evidence) {
		free(e.name);
		free(e.module);
		free(e.evidence);
		return &md_error_nomem;
	}
	r->unanalysed[r->n_unanalysed++] = e;
	return NULL;
}

/* The known kind the module is, or NULL; evidence written to buf. */
static const struct md_known_allocator *recognise(struct md_target *t, const struct md_module *mod, char *buf,
						   size_t len)
{
	const char *base = base_name(mod->name);
	size_t n_known;
	const struct md_known_allocator *known = md_known_allocators(&n_known);
	for (size_t k = 0; k < n_known; k++) {
		const struct md_known_allocator *kn = &known[k];
		for (size_t p = 0; p < 3 && kn->module_prefixes[p]; p++)
			if (starts_with(base, kn->module_prefixes[p])) {
				snprintf(buf, len, "module %s", base);
				return kn;
			}
		for (size_t s = 0; s < 4 && kn->symbols[s]; s++)
			if (defines(t, mod, kn->symbols[s])) {
				snprintf(buf, len, "%s defines %s", base, kn->symbols[s]);
				return kn;
			}
	}
	return NULL;
}

static bool plugin_named(const struct md_report *r, const char *plugin)
{
	for (size_t i = 0; i < md_node_count(r->allocators); i++)
		if (strcmp(md_node_get_string(md_node_get(md_node_at(r->allocators, i), "name")) ?: "", plugin) == 0)
			return true;
	return false;
}

/* Allocators that replace malloc itself (known_allocators.c says which; the others sit on top of
 * the C library's malloc, which stays in use); an unknown module that defines malloc does. */
static bool interposes_malloc(const char *name)
{
	const struct md_known_allocator *k = md_known_allocator(name);
	return strcmp(name, "unknown") == 0 || (k && k->replaces_malloc);
}

static bool node_true(const struct md_node *a, const char *key)
{
	const struct md_node *v = md_node_get(a, key);
	return md_node_type(v) == MD_NODE_BOOL && md_node_get_bool(v);
}

/* An allocator whose state was never allocated from ("allocated_from": false) while another
 * one took malloc over is not "unused memory" but the sign that it is not the process's
 * allocator. Said on the object ("in_use": false, "in_use_note") and in a note. */
static struct md_error *allocator_not_in_use(struct md_report *r)
{
	const char *other_name = NULL, *other_module = NULL;
	for (size_t i = 0; i < r->n_unanalysed && !other_name; i++)
		if (interposes_malloc(r->unanalysed[i].name)) {
			other_name = r->unanalysed[i].name;
			other_module = r->unanalysed[i].module;
		}
	/* or a plugin walked the allocator that took malloc over */
	for (size_t i = 0; i < md_node_count(r->allocators) && !other_name; i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		if (name && node_true(a, MD_FIG_REPLACES_MALLOC)) {
			other_name = name;
			other_module = md_node_get_string(md_node_get(a, MD_FIG_MODULE));
		}
	}
	if (!other_name)
		return NULL;
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		const struct md_node *used = md_node_get(a, MD_FIG_ALLOCATED_FROM);
		if (!name || strcmp(name, other_name) == 0 || md_node_type(used) != MD_NODE_BOOL || md_node_get_bool(used))
			continue;
		char why[512];
		snprintf(why, sizeof(why), "%s malloc is not this process's allocator: malloc is %s's (%s); "
			 "%s's heap was never allocated from",
			 md_esc(name), other_name, other_module ? base_name(other_module) : "its library", md_esc(name));
		struct md_error *err = md_node_set_bool(a, "in_use", false);
		if (!err)
			err = md_node_set_string(a, "in_use_note", why);
		if (!err)
			err = md_report_add_note(r, "%s", why);
		return err;
	}
	return NULL;
}

struct md_error *md_find_unanalysed(struct md_target *t, struct md_report *r)
{
	size_t n = 0;
	const struct md_module *mods = md_target_modules(t, &n);
	const struct md_module *exe = md_target_find_module(t, NULL);
	bool have_libc = md_target_find_module(t, "libc.so") != NULL;
	const char *const *loaders = md_known_loaders();
	char evidence[256];
	struct md_error *err = NULL;
	for (size_t i = 0; i < n && !err; i++) {
		const struct md_module *mod = &mods[i];
		const char *base = base_name(mod->name);
		if (!mod->name || !base[0] || base[0] == '[' || starts_with(base, "ld-linux") || starts_with(base, "linux-vdso"))
			continue;
		const struct md_known_allocator *kn = recognise(t, mod, evidence, sizeof(evidence));
		/* A plugin of that name reported on it (walked, or said why it could not): known. */
		if (kn && plugin_named(r, kn->name))
			continue;
		if (kn) {
			err = add(r, kn->name, mod->name, evidence);
			continue;
		}
		if (claimed(r, mod) || starts_with(base, "libc.so"))
			continue;
		/* An allocator nobody knows: another module that defines malloc interposes it. */
		if (defines(t, mod, "malloc")) {
			snprintf(evidence, sizeof(evidence), "%s defines malloc (interposes the C library's)", base);
			err = add(r, "unknown", mod->name, evidence);
		}
	}
	/* A static executable whose malloc no plugin found (a stripped static program of another C library). */
	/* (Not a dynamic program caught while its loader runs, before libc is mapped: an exec
	 * during the attach.) */
	bool dynamic = false;
	for (size_t k = 0; loaders[k]; k++)
		dynamic |= md_target_find_module(t, loaders[k]) != NULL;
	if (!err && exe && !have_libc && !dynamic && !r->n_unanalysed && md_node_count(r->allocators) == 0)
		err = add(r, "unknown", exe->name ? exe->name : "?",
			  "a static executable without the C library's malloc state (no plugin found it)");
	if (!err)
		err = allocator_not_in_use(r);
	if (!err)
		md_known_attribute_regions(r);
	if (err)
		return err;
	for (size_t i = 0; i < r->n_unanalysed; i++) {
		const struct md_unanalysed_allocator *u = &r->unanalysed[i];
		const struct md_known_allocator *k = md_known_allocator(u->name);
		const char *what = k ? k->what : u->name;
		md_report_add_note(r, "%s: %s is present (%s) but no plugin walks it: its memory is counted as "
				   "other anonymous, and how much of it is live, free or overhead is unknown",
				   u->name, strcmp(what, "unknown") == 0 ? "an allocator memdissect does not know" : what,
				   u->evidence);
		r->partial = true;
	}
	return NULL;
}
