#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugins.h"

#define MD_STR_(x) #x
#define MD_STR(x) MD_STR_(x)
#ifndef MD_PLUGIN_SUBDIR
#define MD_PLUGIN_SUBDIR "lib/memdissect/" MD_STR(MD_PLUGIN_ABI_OLDEST) "/plugins"
#endif
#ifndef MD_PLUGIN_DIR
#define MD_PLUGIN_DIR "/usr/local/" MD_PLUGIN_SUBDIR
#endif

/* As root, code from a directory named in the environment runs with root's powers: load it only
 * when root owns the file and its directory and neither is writable by group or others. */
static const char *untrusted(const char *path, char *buf, size_t len)
{
	if (geteuid() != 0)
		return NULL;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	const char *what[2] = { path, slash ? dir : "." };
	for (int i = 0; i < 2; i++) {
		struct stat st;
		if (stat(what[i], &st) != 0) {
			snprintf(buf, len, "refused as root: cannot stat %s", what[i]);
			return buf;
		}
		const char *name = i ? "its directory" : "the file";
		if (st.st_uid != 0) {
			snprintf(buf, len, "refused as root: %s is owned by uid %u, not root ($MEMDISSECT_PLUGIN_PATH)", name,
				 (unsigned)st.st_uid);
			return buf;
		}
		if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			snprintf(buf, len, "refused as root: %s is writable by group or others ($MEMDISSECT_PLUGIN_PATH)",
				 name);
			return buf;
		}
	}
	return NULL;
}

static void add_item(struct md_plugin_set *set, struct md_loaded_plugin item)
{
	struct md_loaded_plugin *n = realloc(set->items, (set->n + 1) * sizeof(*n));
	if (!n) {
		free(item.path);
		free(item.problem);
		if (item.handle)
			dlclose(item.handle);
		return;
	}
	set->items = n;
	set->items[set->n++] = item;
}

static bool have_name(const struct md_plugin_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->items[i].plugin && strcmp(set->items[i].plugin->name, name) == 0)
			return true;
	return false;
}

static void load_one(struct md_plugin_set *set, const char *path, bool from_env)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->items[i].path, path) == 0)
			return;
	struct md_loaded_plugin item = { .path = strdup(path) };
	if (!item.path)
		return;
	char why[PATH_MAX + 160];
	if (from_env && untrusted(path, why, sizeof(why))) {
		item.problem = strdup(why);
		add_item(set, item);
		return;
	}
	item.handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!item.handle) {
		const char *e = dlerror();
		item.problem = strdup(e ? e : "dlopen failed");
		add_item(set, item);
		return;
	}
	md_plugin_entry_fn entry = (md_plugin_entry_fn)dlsym(item.handle, MD_PLUGIN_ENTRY);
	const struct md_plugin *p = entry ? entry() : NULL;
	char buf[256];
	if (!entry) {
		snprintf(buf, sizeof(buf), "no %s symbol: not a memdissect plugin", MD_PLUGIN_ENTRY);
	} else if (!p) {
		snprintf(buf, sizeof(buf), "%s returned NULL", MD_PLUGIN_ENTRY);
	} else if (p->abi_version < MD_PLUGIN_ABI_OLDEST || p->abi_version > MD_PLUGIN_ABI_VERSION) {
		snprintf(buf, sizeof(buf), "built for plugin ABI %u, this memdissect has ABI %u: rebuild it",
			 p->abi_version, MD_PLUGIN_ABI_VERSION);
		p = NULL;
	} else if (!p->name || !p->open || !p->walk || !p->report || !p->close) {
		snprintf(buf, sizeof(buf), "incomplete plugin table");
		p = NULL;
	} else if (have_name(set, p->name)) {
		snprintf(buf, sizeof(buf), "shadowed by an earlier plugin named %s", p->name);
		p = NULL;
	}
	if (!p) {
		item.problem = strdup(buf);
		dlclose(item.handle);
		item.handle = NULL;
	}
	item.plugin = p;
	add_item(set, item);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_dir(struct md_plugin_set *set, const char *dir, bool from_env)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0)
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*nn));
		if (!nn)
			break;
		names = nn;
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		load_one(set, path, from_env);
		free(names[i]);
	}
	free(names);
}

void md_plugins_load(struct md_plugin_set *set)
{
	set->items = NULL;
	set->n = 0;
	const char *env = getenv("MEMDISSECT_PLUGIN_PATH");
	if (env && *env) {
		char *copy = strdup(env);
		for (char *save = NULL, *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok;
		     tok = strtok_r(NULL, ":", &save))
			load_dir(set, tok, true);
		free(copy);
	}
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			char dir[PATH_MAX + 64];
			/* The build tree (build/plugins), then an install under any PREFIX. */
			snprintf(dir, sizeof(dir), "%s/plugins", exe);
			load_dir(set, dir, false);
			snprintf(dir, sizeof(dir), "%s/../%s", exe, MD_PLUGIN_SUBDIR);
			char canon[PATH_MAX];
			if (realpath(dir, canon))
				load_dir(set, canon, false);
		}
	}
	load_dir(set, MD_PLUGIN_DIR, false);
}

void md_plugins_unload(struct md_plugin_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->items[i].path);
		free(set->items[i].problem);
		if (set->items[i].handle)
			dlclose(set->items[i].handle);
	}
	free(set->items);
	set->items = NULL;
	set->n = 0;
}
