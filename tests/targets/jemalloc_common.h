/* What the jemalloc ground-truth targets print of jemalloc's own figures (mallctl), after an
 * "epoch" refresh: the stats.* totals and the merged arena's tcache, dirty, muzzy and active. */
#ifndef MD_TARGETS_JEMALLOC_COMMON_H
#define MD_TARGETS_JEMALLOC_COMMON_H

#include <jemalloc/jemalloc.h>

#include "target_common.h"

static void die(const char *what)
{
	md_say("error %s\n", what);
	_exit(1);
}

static size_t ctl_size(const char *name)
{
	size_t v = 0, sz = sizeof(v);
	if (mallctl(name, &v, &sz, NULL, 0) != 0)
		die(name);
	return v;
}

static void say_jemalloc_stats(void)
{
	md_say("stats.allocated %zu\n", ctl_size("stats.allocated"));
	md_say("stats.active %zu\n", ctl_size("stats.active"));
	md_say("stats.metadata %zu\n", ctl_size("stats.metadata"));
	md_say("stats.resident %zu\n", ctl_size("stats.resident"));
	md_say("stats.mapped %zu\n", ctl_size("stats.mapped"));
	md_say("stats.retained %zu\n", ctl_size("stats.retained"));
	md_say("tcache_bytes %zu\n", ctl_size("stats.arenas.4096.tcache_bytes"));
	md_say("pdirty %zu\n", ctl_size("stats.arenas.4096.pdirty"));
	md_say("pmuzzy %zu\n", ctl_size("stats.arenas.4096.pmuzzy"));
	md_say("pactive %zu\n", ctl_size("stats.arenas.4096.pactive"));
}

#endif
