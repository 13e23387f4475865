/* Finding and loading allocator plugins (shared objects exporting md_plugin_entry). */
#ifndef MEMDISSECT_PLUGINS_H
#define MEMDISSECT_PLUGINS_H

#include <stddef.h>

#include "memdissect/plugin.h"

struct md_loaded_plugin {
	const struct md_plugin *plugin; /* NULL when refused */
	char *path;
	char *problem; /* why it was refused, or NULL */
	void *handle;
};

struct md_plugin_set {
	struct md_loaded_plugin *items;
	size_t n;
};

/* Search, in order: $MEMDISSECT_PLUGIN_PATH (colon-separated), <dir of the executable>/plugins,
 * the installed plugin directory. The first plugin of a name wins; later ones are listed as
 * shadowed. Refused plugins (wrong ABI, no entry point, dlopen failure) are kept with a problem. */
void md_plugins_load(struct md_plugin_set *set);
void md_plugins_unload(struct md_plugin_set *set);

#endif
