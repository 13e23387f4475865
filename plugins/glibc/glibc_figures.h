/* How the glibc object describes its own figures to the core (include/memdissect/figures.h):
 * which of glibc's names count bytes, the mallinfo2 grid and its labels, the aliases of the
 * standard release figure. A header so that the renderer tests' fixture describes its
 * glibc-shaped object exactly as the plugin does. */
#ifndef MEMDISSECT_GLIBC_FIGURES_H
#define MEMDISSECT_GLIBC_FIGURES_H

#include "memdissect/plugin.h"

/* Names that count bytes without a "_bytes" suffix: glibc's own, wherever they appear. */
static const char *const gl_byte_keys[] = {
	"system_mem", "max_system_mem", "top_size", "mapped_size", "trim_threshold", "top_pad",
	"mmap_threshold", "heap_max", "thp_pagesize", NULL,
};
/* mallinfo2's names mean bytes only inside a mallinfo object ("arena" elsewhere is an index). */
static const char *const gl_mallinfo_byte_keys[] = {
	"arena", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost", NULL,
};
/* mallinfo2 names are terse; the order puts what explains RSS first. */
static const char *const gl_mallinfo_labels[] = {
	"uordblks", "in use (uordblks)", "fordblks", "free (fordblks)", "keepcost", "top (keepcost)",
	"arena", "arena (sbrk+heaps)", "hblkhd", "mmapped (hblkhd)", "hblks", "mmapped chunks",
	"ordblks", "free chunks", "smblks", "fastbin chunks", "fsmblks", "fastbin free", "usmblks", "usmblks",
	NULL, NULL,
};

/* The keys that need no walk: group noun, byte keys, the mallinfo grid, aliases. */
static inline struct md_error *gl_describe_figures(struct md_node *node)
{
	struct md_error *err = md_node_set_string(node, MD_FIG_GROUP_NOUN, "arena");
	if (!err)
		err = md_node_set(node, MD_FIG_BYTE_KEYS, md_fig_strings(gl_byte_keys));
	struct md_node *grids = md_node_array(), *mi = md_node_object();
	if (!err && (!grids || !mi))
		err = &md_error_nomem;
	if (!err)
		err = md_node_set_string(mi, "key", "mallinfo");
	if (!err)
		err = md_node_set_string(mi, "title", "mallinfo2, as the allocator counts it:");
	if (!err)
		err = md_node_set(mi, "labels", md_fig_labels(gl_mallinfo_labels));
	if (!err)
		err = md_node_set(mi, "byte_keys", md_fig_strings(gl_mallinfo_byte_keys));
	if (!err) {
		err = md_node_append(grids, mi);
		mi = NULL;
	}
	if (!err) {
		err = md_node_set(node, MD_FIG_GRIDS, grids);
		grids = NULL;
	}
	md_node_destroy(mi);
	md_node_destroy(grids);
	struct md_node *aliases = md_node_object();
	if (!err)
		err = aliases ? md_node_set_string(aliases, "trim_release_bytes", "release.bytes") : &md_error_nomem;
	if (!err)
		err = md_node_set_string(aliases, "trim_release_pages", "release.pages");
	if (!err)
		err = md_node_set(node, MD_FIG_ALIASES, aliases);
	else
		md_node_destroy(aliases);
	return err;
}

/* The release object's advice words. */
#define GL_RELEASE_TOPIC "trim"
#define GL_RELEASE_CAUTION "trim visits every arena and glibc aborts the process on a corrupt one"
#define GL_RELEASE_HINT_FMT                                                                          \
	"Call it after a burst of frees (or from a maintenance hook); glibc by itself only trims the " \
	"top of the main heap, and only when the free top exceeds M_TRIM_THRESHOLD (now {bytes:%llu})."

#endif
