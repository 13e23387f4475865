/* Allocators and runtimes present in the target that no plugin walks, found by their modules and
 * symbols: gperftools tcmalloc, mimalloc, musl's malloc, CPython's obmalloc, the Go runtime,
 * HotSpot (libjvm), V8/node, and any other module that exports malloc. Their memory is real and
 * resident but shows as anon_other; naming them (and making the report partial) is what lets the
 * report say "unknown" where it would otherwise say "nothing to do".
 * Runs after the pause: symbol tables are read from the ELF files, never from target memory. */
#include <stdlib.h>
#include <string.h>

#include "unanalysed.h"

/* One kind of allocator or runtime, recognised by a module name prefix or by an exported
 * symbol (either is enough). */
struct known {
	const char *name;
	const char *what;            /* for the note: "gperftools tcmalloc" */
	const char *module_prefixes[3];
	const char *symbols[4];
};

static const struct known known[] = {
	{ "tcmalloc", "gperftools tcmalloc", { "libtcmalloc" }, { "tc_malloc", "MallocExtension_GetStats" } },
	{ "mimalloc", "mimalloc", { "libmimalloc" }, { "mi_malloc", "mi_heap_malloc" } },
	{ "musl", "musl's malloc", { "ld-musl-", "libc.musl-" }, { "__libc_malloc_impl", "__malloc_donate", "__simple_malloc" } },
	{ "pymalloc", "CPython's obmalloc (pymalloc arenas)", { "libpython" }, { "PyObject_Malloc", "_PyObject_Malloc" } },
	{ "go", "the Go runtime's heap", { NULL }, { "runtime.mallocgc", "runtime.buildVersion" } },
	{ "hotspot", "the HotSpot JVM (Java heap, metaspace, code cache)", { "libjvm.so" }, { "JNI_CreateJavaVM" } },
	{ "v8", "V8 (node's JavaScript heap)", { "libnode.so", "libv8.so" },
	  { "node_module_register", "_ZN2v86Isolate3NewERKNS0_12CreateParamsE" } },
};

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

/* Modules some plugin walked: the allocator objects name them ("module"), glibc's is libc (or
 * the static executable). */
static bool claimed(const struct md_report *r, const struct md_module *mod, bool is_exe, bool have_libc)
{
	const char *base = base_name(mod->name);
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		const struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		const char *module = md_node_get_string(md_node_get(a, "module"));
		if (module && mod->name && strcmp(module, mod->name) == 0)
			return true;
		if (name && strcmp(name, "glibc") == 0 && (starts_with(base, "libc.so") || (is_exe && !have_libc)))
			return true;
		if (name && strcmp(name, "jemalloc") == 0 && starts_with(base, "libjemalloc"))
			return true;
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
static const struct known *recognise(struct md_target *t, const struct md_module *mod, char *buf, size_t len)
{
	const char *base = base_name(mod->name);
	for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
		const struct known *kn = &known[k];
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

/* Allocators that replace malloc itself (the others, CPython's obmalloc, Go, the JVM and V8, sit on
 * top of the C library's malloc, which stays in use). */
static bool interposes_malloc(const char *name)
{
	return strcmp(name, "tcmalloc") == 0 || strcmp(name, "mimalloc") == 0 || strcmp(name, "unknown") == 0;
}

/* glibc's object when another allocator took malloc over: an arena that was never allocated
 * from is not "unused glibc memory" but the sign that glibc malloc is not the process's
 * allocator. Said on the object ("in_use": false, "in_use_note") and in a note. */
static struct md_error *glibc_not_in_use(struct md_report *r)
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
		if (name && strcmp(name, "unknown") != 0 && interposes_malloc(name)) {
			other_name = name;
			other_module = md_node_get_string(md_node_get(a, "module"));
		}
	}
	if (!other_name)
		return NULL;
	for (size_t i = 0; i < md_node_count(r->allocators); i++) {
		struct md_node *a = md_node_at(r->allocators, i);
		const char *name = md_node_get_string(md_node_get(a, "name"));
		if (!name || strcmp(name, "glibc") != 0)
			continue;
		const struct md_node *arenas = md_node_get(a, "arenas");
		bool all_unused = md_node_count(arenas) > 0;
		for (size_t k = 0; k < md_node_count(arenas); k++) {
			const char *st = md_node_get_string(md_node_get(md_node_at(arenas, k), "state"));
			all_unused &= st && strcmp(st, "unused") == 0;
		}
		if (!all_unused)
			continue;
		char why[512];
		snprintf(why, sizeof(why), "glibc malloc is not this process's allocator: malloc is %s's (%s); "
			 "glibc's arena was never allocated from",
			 other_name, other_module ? base_name(other_module) : "its library");
		struct md_error *err = md_node_set_bool(a, "in_use", false);
		if (!err)
			err = md_node_set_string(a, "in_use_note", why);
		if (!err)
			err = md_report_add_note(r, "%s", why);
		return err;
	}
	return NULL;
}

/* Mappings whose owner the evidence makes clear. Go (linux/amd64) reserves its heap arenas from
 * the first hint 0x00c0<<32 upwards (the next hints, 1<<40 | 0x00c0<<32 and on, only when that
 * fails; the last ones would overlap the shared-library area), so a private anonymous mapping in
 * [0x00c0<<32, 0x0100<<32) of a Go program is its heap; goroutine stacks live there too. Nothing else is claimed: pymalloc's 1 MiB arenas, the Java heap and V8's pages merge with
 * their anonymous neighbours and cannot be told apart from the mappings alone. */
static void attribute_regions(struct md_report *r)
{
	bool go = false;
	for (size_t i = 0; i < r->n_unanalysed; i++)
		go |= strcmp(r->unanalysed[i].name, "go") == 0;
	for (size_t i = 0; go && i < r->n_regions; i++) {
		struct md_report_region *reg = &r->regions[i];
		if (!reg->path && reg->kind == MD_MAP_ANON && !reg->allocator && reg->start >= (0x00c0ULL << 32) &&
		    reg->end <= (0x0100ULL << 32) && reg->perms[0] == 'r' && reg->perms[1] == 'w' && reg->perms[3] == 'p')
			reg->owner = "go heap arena";
	}
}

struct md_error *md_find_unanalysed(struct md_target *t, struct md_report *r)
{
	size_t n = 0;
	const struct md_module *mods = md_target_modules(t, &n);
	const struct md_module *exe = md_target_find_module(t, NULL);
	bool have_libc = md_target_find_module(t, "libc.so") != NULL;
	char evidence[256];
	struct md_error *err = NULL;
	for (size_t i = 0; i < n && !err; i++) {
		const struct md_module *mod = &mods[i];
		const char *base = base_name(mod->name);
		bool is_exe = mod == exe;
		if (!mod->name || !base[0] || base[0] == '[' || starts_with(base, "ld-linux") || starts_with(base, "linux-vdso"))
			continue;
		const struct known *kn = recognise(t, mod, evidence, sizeof(evidence));
		/* A plugin of that name reported on it (walked, or said why it could not): known. */
		if (kn && plugin_named(r, kn->name))
			continue;
		if (kn) {
			err = add(r, kn->name, mod->name, evidence);
			continue;
		}
		if (claimed(r, mod, is_exe, have_libc) || starts_with(base, "libc.so"))
			continue;
		/* An allocator nobody knows: another module that defines malloc interposes it. */
		if (defines(t, mod, "malloc")) {
			snprintf(evidence, sizeof(evidence), "%s defines malloc (interposes the C library's)", base);
			err = add(r, "unknown", mod->name, evidence);
		}
	}
	/* A static executable whose malloc no plugin found (a stripped static musl program). */
	/* (Not a dynamic program caught while its loader runs, before libc is mapped: an exec
	 * during the attach.) */
	bool dynamic = md_target_find_module(t, "ld-linux") != NULL || md_target_find_module(t, "ld-musl") != NULL;
	if (!err && exe && !have_libc && !dynamic && !r->n_unanalysed && md_node_count(r->allocators) == 0)
		err = add(r, "unknown", exe->name ? exe->name : "?",
			  "a static executable without the C library's malloc state (glibc's not found)");
	if (!err)
		err = glibc_not_in_use(r);
	if (!err)
		attribute_regions(r);
	if (err)
		return err;
	for (size_t i = 0; i < r->n_unanalysed; i++) {
		const struct md_unanalysed_allocator *u = &r->unanalysed[i];
		const char *what = u->name;
		for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
			if (strcmp(known[k].name, u->name) == 0)
				what = known[k].what;
		md_report_add_note(r, "%s: %s is present (%s) but no plugin walks it: its memory is counted as "
				   "other anonymous, and how much of it is live, free or overhead is unknown",
				   u->name, strcmp(what, "unknown") == 0 ? "an allocator memdissect does not know" : what,
				   u->evidence);
		r->partial = true;
	}
	return NULL;
}
