/* The glibc ptmalloc plugin: entry points of the plugin ABI (include/memdissect/plugin.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glibc_internal.h"

static void gl_close(void *state);

/* Version, roots and layout: everything that does not change while the target runs. */
static struct md_error *gl_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	*state_ret = NULL;
	const struct md_module *mod = md_target_find_module(t, "libc.so.6");
	if (!mod)
		mod = md_target_find_module(t, "libc.so");
	bool static_exe = false;
	if (!mod) {
		/* A statically linked program carries malloc in the executable. */
		mod = md_target_find_module(t, NULL);
		if (!mod)
			return NULL;
		static_exe = true;
	}
	struct glibc_state *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	bool nodebug = (opts && opts->debuginfo_disabled) || md_target_debuginfo_disabled(t);

	struct md_error *err = nodebug ? md_error_create(MD_ERR_NOT_FOUND, "debug info disabled")
				       : glibc_locate_symbols(t, mod, &s->roots);
	if (err && err->code == MD_ERR_NOT_FOUND) {
		struct md_error *herr = glibc_locate_heuristic(t, mod, &s->roots);
		if (herr) {
			bool absent = herr->code == MD_ERR_NOT_FOUND &&
				      (static_exe || !mod->name || !strstr(mod->name, "libc.so.6"));
			if (absent) {
				md_error_destroy(err);
				md_error_destroy(herr);
				free(s);
				return NULL;
			}
			struct md_error *e = md_error_create(herr->code, "glibc malloc state not found: symbols: %s; heuristics: %s",
							     err->message, herr->message);
			md_error_destroy(err);
			md_error_destroy(herr);
			free(s);
			return e;
		}
		md_error_destroy(err);
		err = NULL;
		s->roots.source = MD_SYMSRC_HEURISTIC;
	}
	if (err) {
		free(s);
		return md_error_wrap(err, "glibc");
	}
	if (!s->roots.module)
		s->roots.module = mod;
	if (!s->roots.version_major) {
		err = glibc_detect_version(t, mod, &s->roots.version_major, &s->roots.version_minor);
		if (err) {
			struct md_error *e = md_error_wrap(err, "glibc: cannot tell the version");
			free(s);
			return e;
		}
	}
	int major = s->roots.version_major, minor = s->roots.version_minor;
	snprintf(s->version, sizeof(s->version), "%d.%d", major, minor);

	struct glibc_layout builtin;
	bool have_builtin = glibc_layout_builtin(major, minor, &builtin);
	bool have_dwarf = false;
	s->layout_known = have_builtin && !nodebug && glibc_layout_dwarf_verified(mod->build_id, major, minor);
	if (!nodebug && !s->layout_known) {
		err = glibc_layout_from_dwarf(t, mod, major, minor, &s->layout);
		have_dwarf = !err;
		md_error_destroy(err);
	}
	if (have_dwarf && have_builtin) {
		s->layout_checked = true;
		s->layout_mismatches = glibc_layout_compare(&builtin, &s->layout, s->layout_diff, sizeof(s->layout_diff));
	}
	if (!have_dwarf) {
		if (!have_builtin) {
			free(s);
			return md_error_create(MD_ERR_UNSUPPORTED,
					       "glibc %d.%d: no built-in layout (2.%d-2.%d supported) and no DWARF", major,
					       minor, GLIBC_MIN_MINOR, GLIBC_MAX_MINOR);
		}
		s->layout = builtin;
	}
	s->symbols = s->roots.source == MD_SYMSRC_HEURISTIC ? "heuristic" : have_dwarf ? "dwarf" : "symtab";
	gl_quiesce_setup(s, t);
	*state_ret = s;
	return NULL;
}

static bool gl_quiescent_entry(void *state, struct md_target *t, char *why, size_t why_len)
{
	return gl_quiescent(state, t, why, why_len);
}

static bool gl_must_run_entry(void *state, struct md_target *t, const struct md_thread *thread)
{
	return gl_must_run(state, t, thread);
}

static struct md_error *gl_walk_entry(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	struct glibc_state *s = state;
	s->inconsistent_walk = inconsistent;
	if (inconsistent)
		gl_describe_in_malloc(s, t);
	return gl_walk(s, t, sink, inconsistent);
}

static struct md_error *gl_report_entry(void *state, const struct md_sink *sink, struct md_node *allocator)
{
	return gl_report(state, sink, allocator);
}

static void gl_close(void *state)
{
	struct glibc_state *s = state;
	if (!s)
		return;
	gl_state_reset(s);
	for (size_t i = 0; i < s->n_in_malloc; i++)
		free(s->in_malloc[i].where);
	free(s->fn_ranges);
	free(s);
}

static const struct md_plugin glibc_plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "glibc",
	.description = "glibc ptmalloc2 (2.26-2.41): arenas, heaps, bins, fastbins, tcache, mmapped chunks",
	.open = gl_open,
	.quiescent = gl_quiescent_entry,
	.walk = gl_walk_entry,
	.report = gl_report_entry,
	.close = gl_close,
	.must_run = gl_must_run_entry,
};

__attribute__((visibility("default"))) const struct md_plugin *md_plugin_entry(void)
{
	return &glibc_plugin;
}
