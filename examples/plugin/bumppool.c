/* An example allocator plugin, built out of the memdissect tree against the installed SDK:
 *
 *     cc -shared -fPIC $(pkg-config --cflags memdissect-plugin) -o bumppool.so bumppool.c
 *
 * It teaches memdissect a bump-pointer pool an application keeps in a global
 *     struct bump_pool { uint64_t magic; char *base; size_t used, capacity; } bump_pool;
 * (tests/targets/bumppool.c is such a program): [base, base+used) is live, the rest of the
 * pool free, and the pool descriptor itself is bookkeeping. Everything read from the target is
 * checked before it is trusted: a descriptor that does not fit its mapping is a finding. */
#include <stdlib.h>

#include "memdissect/plugin.h"

#define BUMP_POOL_MAGIC 0x6c6f6f70706d7562ULL /* "bumppool" */

struct bump {
	uint64_t descriptor; /* &bump_pool in the target */
	uint64_t base, used, capacity;
	bool walked;
};

static struct md_error *bump_open(struct md_target *t, const struct md_plugin_options *opts, void **state_ret)
{
	(void)opts;
	*state_ret = NULL;
	const struct md_module *exe = md_target_find_module(t, NULL);
	struct md_symbol sym;
	struct md_error *err = exe ? md_target_symbol(t, exe, "bump_pool", &sym) : NULL;
	if (!exe || err) {
		md_error_destroy(err);
		return NULL; /* no pool: not this allocator's process */
	}
	struct bump *s = calloc(1, sizeof(*s));
	if (!s)
		return &md_error_nomem;
	s->descriptor = sym.address;
	*state_ret = s;
	return NULL;
}

static struct md_error *bump_walk(void *state, struct md_target *t, struct md_sink *sink, bool inconsistent)
{
	(void)inconsistent;
	struct bump *s = state;
	uint64_t d[4];
	s->walked = false;
	struct md_error *err = md_target_read(t, s->descriptor, d, sizeof(d));
	if (err)
		return md_error_wrap(err, "reading bump_pool");
	if (d[0] != BUMP_POOL_MAGIC) {
		md_sink_finding(sink, MD_FINDING_CORRUPT, s->descriptor, -1, "bump_pool has magic 0x%llx",
				(unsigned long long)d[0]);
		return NULL;
	}
	const struct md_mapping *m = md_target_find_mapping(t, d[1]);
	if (!m || d[2] > d[3] || d[3] > m->end - d[1]) {
		md_sink_finding(sink, MD_FINDING_CORRUPT, s->descriptor, -1,
				"bump_pool: base 0x%llx, used 0x%llx, capacity 0x%llx do not fit a mapping",
				(unsigned long long)d[1], (unsigned long long)d[2], (unsigned long long)d[3]);
		return NULL;
	}
	s->base = d[1];
	s->used = d[2];
	s->capacity = d[3];
	md_sink_region(sink, s->base, s->base + s->capacity, 0, "bump pool");
	md_sink_span(sink, MD_SPAN_LIVE, s->base, s->base + s->used, 0);
	md_sink_span(sink, MD_SPAN_FREE, s->base + s->used, s->base + s->capacity, 0);
	s->walked = true;
	return NULL;
}

static struct md_error *bump_report(void *state, const struct md_sink *sink, struct md_node *allocator)
{
	struct bump *s = state;
	struct md_group_stats st;
	md_sink_group_stats(sink, -1, &st);
	struct md_error *err = md_node_set_bool(allocator, "walked", s->walked);
	if (!err)
		err = md_node_set_u64(allocator, "used_bytes", s->used);
	if (!err)
		err = md_node_set_u64(allocator, "capacity_bytes", s->capacity);
	if (!err)
		err = md_node_set_u64(allocator, "live_pages", st.live_pages);
	/* The standard figures the core reads (memdissect/figures.h): the live bytes, the release
	 * call (a bump pool has none), and one group row for the pool. */
	if (!err)
		err = md_node_set_u64(allocator, MD_FIG_LIVE_BYTES, s->used);
	if (!err)
		err = md_node_set(allocator, MD_FIG_RELEASE, md_fig_release_node("none", 0));
	if (!err)
		err = md_node_set_string(allocator, MD_FIG_GROUP_NOUN, "pool");
	struct md_fig_group pool = {
		.group = 0, .name = "pool 0", .threads = -1, .regions = 1,
		.live_bytes = s->used, .free_bytes = s->capacity - s->used,
	};
	struct md_node *groups = md_node_array();
	if (!err)
		err = md_node_append(groups, md_fig_group_node(&pool, &st));
	if (!err)
		err = md_node_set(allocator, MD_FIG_GROUPS, groups);
	else
		md_node_destroy(groups);
	return err;
}

static void bump_close(void *state)
{
	free(state);
}

static const struct md_plugin plugin = {
	.abi_version = MD_PLUGIN_ABI_VERSION,
	.name = "bumppool",
	.description = "example: an application's bump-pointer pool (examples/plugin)",
	.open = bump_open,
	.walk = bump_walk,
	.report = bump_report,
	.close = bump_close,
};

__attribute__((visibility("default"))) const struct md_plugin *md_plugin_entry(void)
{
	return &plugin;
}
