/* The smallest real plugin (the example of docs/plugins.md): it claims the first page of the
 * target's [heap] as allocator metadata and reports how it found it. */
#include <stdlib.h>
#include <string.h>

#include "memdissect/plugin.h"

struct toy {
	uint64_t page;
};

static struct md_error *toy_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	(void)opts;
	size_t n;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	*state_ret = NULL;
	for (size_t i = 0; i < n; i++) {
		if (maps[i].path && strcmp(maps[i].path, "[heap]") == 0) {
			struct toy *s = calloc(1, sizeof(*s));
			if (!s)
				return &md_error_nomem;
			s->page = maps[i].start;
			*state_ret = s;
			break;
		}
	}
	return NULL; /* no [heap]: not present */
}

static struct md_error *toy_walk(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	(void)inconsistent;
	struct toy *s = state;
	uint64_t word;
	struct md_error *err = md_target_read_u64(t, s->page, &word);
	if (err)
		return err;
	md_sink_region(sink, s->page, s->page + MD_PAGE_SIZE, 0, "first heap page");
	md_sink_span(sink, MD_SPAN_METADATA, s->page, s->page + MD_PAGE_SIZE, 0);
	md_sink_finding(sink, MD_FINDING_INFO, s->page, 0, "toy: first word of [heap] is 0x%llx",
			(unsigned long long)word);
	return NULL;
}

static struct md_error *toy_report(void *state, const struct md_sink *sink, struct md_node *allocator)
{
	struct toy *s = state;
	struct md_group_stats st;
	md_sink_group_stats(sink, -1, &st);
	struct md_error *err = md_node_set_hex(allocator, "page", s->page);
	if (!err)
		err = md_node_set_u64(allocator, "metadata_pages", st.metadata_pages);
	return err;
}

static void toy_close(void *state)
{
	free(state);
}

static const struct md_plugin plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "toy",
	.description = "example plugin: the first page of [heap]",
	.open = toy_open,
	.walk = toy_walk,
	.report = toy_report,
	.close = toy_close,
};

const struct md_plugin *md_plugin_entry(void)
{
	return &plugin;
}
