/* A plugin built for another ABI version: memdissect must refuse it with a clear message. */
#include "memdissect/plugin.h"

static struct md_error *open_(struct md_target *t, const struct md_plugin_options *o, void **s)
{
	(void)t, (void)o;
	*s = NULL;
	return NULL;
}
static struct md_error *walk_(void *s, struct md_target *t, struct md_sink *k, bool i)
{
	(void)s, (void)t, (void)k, (void)i;
	return NULL;
}
static struct md_error *report_(void *s, const struct md_sink *k, struct md_node *a)
{
	(void)s, (void)k, (void)a;
	return NULL;
}
static void close_(void *s)
{
	(void)s;
}

static const struct md_plugin plugin = {
	.abi_version = 99, /* no memdissect has had it */
	.name = "badabi",
	.open = open_,
	.walk = walk_,
	.report = report_,
	.close = close_,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &plugin;
}
