/* A test plugin whose one claim straddles a glibc chunk boundary (tests/targets/layered.c says
 * where): the classifier must reject it as a finding, never count its bytes twice. */
#include <stdlib.h>

#include "memdissect/plugin.h"

#define STRADDLE_MAGIC 0x6c64646172747373ULL

struct straddle {
	uint64_t descriptor;
};

static struct md_error *straddle_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	(void)opts;
	*state_ret = NULL;
	const struct md_module *exe = md_target_find_module(t, NULL);
	struct md_symbol sym;
	struct md_error *err = exe ? md_target_symbol(t, exe, "straddle_claim", &sym) : NULL;
	if (!exe || err) {
		md_error_destroy(err);
		return NULL;
	}
	struct straddle *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	s->descriptor = sym.address;
	*state_ret = s;
	return NULL;
}

static struct md_error *straddle_walk(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	(void)inconsistent;
	struct straddle *s = state;
	uint64_t d[3];
	struct md_error *err = md_target_read(t, s->descriptor, d, sizeof(d));
	if (err)
		return md_error_wrap(err, "reading straddle_claim");
	if (d[0] != STRADDLE_MAGIC || d[2] <= d[1] || d[2] - d[1] > (1u << 30)) {
		md_sink_finding(sink, MD_FINDING_CORRUPT, s->descriptor, -1, "straddle_claim does not hold a claim");
		return NULL;
	}
	md_sink_region(sink, d[1], d[2], 0, "straddling claim");
	md_sink_span(sink, MD_SPAN_LIVE, d[1], d[2], 0);
	return NULL;
}

static struct md_error *straddle_report(void *state, const struct md_sink *sink, struct md_node *allocator)
{
	(void)state;
	struct md_group_stats st;
	md_sink_group_stats(sink, -1, &st);
	struct md_error *err = md_node_set_u64(allocator, "live_pages", st.live_pages);
	if (!err)
		err = md_node_set_u64(allocator, "free_pages", st.free_pages);
	return err;
}

static void straddle_close(void *state)
{
	free(state);
}

static const struct md_plugin plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "straddle",
	.description = "test: a claim that straddles a glibc chunk boundary",
	.open = straddle_open,
	.walk = straddle_walk,
	.report = straddle_report,
	.close = straddle_close,
};

__attribute__((visibility("default"))) const struct md_plugin *md_plugin_entry(void)
{
	return &plugin;
}
