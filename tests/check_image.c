/* The synthetic target (attach/image.c) and the walker fuzzers' regression inputs: the image
 * reads exactly like a live target (residency, faults, swapped pages), a mutation script is undone
 * byte for byte, and every input in tests/data/fuzz-regressions/<plugin>-* replays against the
 * plugin's seed image in bounded time, through the plugin's md_plugin_entry table. */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "core.h"
#include "image.h"
#include "memdissect/plugin.h"
#include "memdissect/report.h"
#include "target_impl.h"
#include "tests.h"

static struct md_target *small_image(uint8_t *bytes)
{
	static uint8_t pages0[4] = { MD_PAGE_PRESENT, 0, MD_PAGE_SWAPPED, MD_PAGE_PRESENT };
	for (size_t i = 0; i < 4 * 4096; i++)
		bytes[i] = (uint8_t)(i * 7 + 1);
	struct md_image_mapping maps[2] = {
		{ .map = { .start = 0x20000, .end = 0x21000, .perms = 0, .kind = MD_MAP_ANON } },
		{ .map = { .start = 0x10000, .end = 0x14000, .perms = MD_PERM_READ | MD_PERM_WRITE,
			   .kind = MD_MAP_ANON, .pages = pages0 },
		  .bytes = bytes },
	};
	struct md_thread th = { .tid = 42, .regs_valid = true };
	struct md_target *t = NULL;
	struct md_error *err = md_image_create(maps, 2, &th, 1, &t);
	ck_assert_ptr_null(err);
	return t;
}

START_TEST(test_image_reads)
{
	static uint8_t bytes[4 * 4096];
	struct md_target *t = small_image(bytes);
	size_t n;
	ck_assert_ptr_nonnull(md_target_mappings(t, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(md_target_threads(t, &n)[0].tid, 42);
	uint8_t buf[8192];
	ck_assert_ptr_null(md_target_read(t, 0x10010, buf, 16));
	ck_assert_mem_eq(buf, bytes + 0x10, 16);
	/* A page that is not present reads as zeros, whatever the image holds. */
	ck_assert_ptr_null(md_target_read(t, 0x10ff8, buf, 16));
	ck_assert_mem_eq(buf, bytes + 0xff8, 8);
	for (int i = 8; i < 16; i++)
		ck_assert_uint_eq(buf[i], 0);
	struct md_error *err = md_target_read(t, 0x12000, buf, 8);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_RESIDENT);
	ck_assert_uint_eq(err->address, 0x12000);
	md_error_destroy(err);
	err = md_target_read(t, 0x13ff0, buf, 32);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_FAULT);
	ck_assert_uint_eq(err->address, 0x14000);
	md_error_destroy(err);
	err = md_target_read(t, 0x20000, buf, 8); /* PROT_NONE */
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_FAULT);
	md_error_destroy(err);
	md_target_destroy(t);
}
END_TEST

/* ABI 4's growable figures: md_sink_group_stats_sized fills what both sides know and zeros the
 * rest, md_sink_span_bytes reads one kind, md_sink_group_stats stays the ABI 1-3 struct. */
START_TEST(test_group_stats_sized)
{
	static uint8_t bytes[4 * 4096];
	struct md_target *t = small_image(bytes);
	struct md_classifier *c = NULL;
	ck_assert_ptr_null(md_classifier_create(t, &c));
	struct md_sink *sink = md_classifier_sink(c, "sized");
	ck_assert_ptr_nonnull(sink);
	ck_assert_int_ge(md_sink_region(sink, 0x10000, 0x12000, 0, "r"), 0);
	md_sink_span(sink, MD_SPAN_LIVE, 0x10000, 0x10100, 0);
	md_sink_span(sink, MD_SPAN_FREE, 0x10100, 0x11000, 0);
	struct md_report r;
	md_report_init(&r);
	ck_assert_ptr_null(md_classifier_finish(c, &r));
	struct md_group_stats st;
	md_sink_group_stats(sink, 0, &st);
	ck_assert_uint_eq(st.span_bytes[MD_SPAN_LIVE], 0x100);
	ck_assert_uint_eq(st.span_bytes[MD_SPAN_FREE], 0xf00);
	ck_assert_uint_eq(md_sink_span_bytes(sink, 0, MD_SPAN_LIVE), 0x100);
	ck_assert_uint_eq(md_sink_span_bytes(sink, -1, MD_SPAN_FREE), 0xf00);
	ck_assert_uint_eq(md_sink_span_bytes(sink, 0, (enum md_span_kind)200), 0);
	ck_assert_uint_eq(md_sink_span_bytes(sink, 7, MD_SPAN_LIVE), 0); /* no such group */
	/* A plugin built against a later header: its struct is longer; the tail comes back zero. */
	struct {
		struct md_group_stats v4;
		uint64_t later_field;
	} bigger;
	memset(&bigger, 0xa5, sizeof(bigger));
	md_sink_group_stats_sized(sink, 0, &bigger, sizeof(bigger));
	ck_assert_mem_eq(&bigger.v4, &st, sizeof(st));
	ck_assert_uint_eq(bigger.later_field, 0);
	/* ... and one built against an earlier, shorter struct gets only its own part. */
	uint64_t shorter[3];
	uint64_t guard = 0x5a5a5a5a5a5a5a5aULL;
	shorter[2] = guard;
	md_sink_group_stats_sized(sink, 0, shorter, 2 * sizeof(uint64_t));
	ck_assert_uint_eq(shorter[0], 0x100);
	ck_assert_uint_eq(shorter[1], 0xf00);
	ck_assert_uint_eq(shorter[2], guard);
	md_report_deinit(&r);
	md_classifier_destroy(c);
	md_target_destroy(t);
}
END_TEST

START_TEST(test_image_mutate_undo)
{
	static uint8_t bytes[4 * 4096];
	struct md_target *t = small_image(bytes);
	uint8_t before[4096], after[4096];
	ck_assert_ptr_null(md_target_read(t, 0x10000, before, sizeof(before)));
	uint64_t anchor = 0x10000;
	/* write u64 at +8; xor at +16; a self pointer at +24 (depth 0); page 3 marked swapped */
	uint8_t script[4 * 14] = { 0 };
	uint64_t v = 0x1122334455667788ULL;
	script[0] = 0, script[2] = 8, memcpy(script + 6, &v, 8);
	script[14] = 4, script[16] = 16, memcpy(script + 20, &v, 8);
	script[28] = 7, script[30] = 24, script[34] = 3;
	script[42] = 9, script[44] = 0x00, script[45] = 0x30, script[48] = 2;
	struct md_image_undo *u = NULL;
	ck_assert_ptr_null(md_image_mutate(t, &anchor, 1, script, sizeof(script), &u));
	uint64_t w;
	ck_assert_ptr_null(md_target_read_u64(t, 0x10008, &w));
	ck_assert_uint_eq(w, v);
	ck_assert_ptr_null(md_target_read_u64(t, 0x10018, &w));
	ck_assert_uint_eq(w, 0x10018);
	ck_assert_uint_eq(md_target_page_bits(t, 0x13000), MD_PAGE_SWAPPED);
	md_image_undo(t, u);
	ck_assert_ptr_null(md_target_read(t, 0x10000, after, sizeof(after)));
	ck_assert_mem_eq(before, after, sizeof(before));
	ck_assert_uint_eq(md_target_page_bits(t, 0x13000), MD_PAGE_PRESENT);
	md_target_destroy(t);
}
END_TEST

/* Anchors as the harnesses compute them (fuzz/fuzz_*_walk.c): the same script must land on the
 * same bytes. Kept in step with those files. */
static size_t anchors_of(const char *plugin, struct md_target *t, void *state, uint64_t *a);

#include "../plugins/glibc/glibc_internal.h"
#include "../plugins/jemalloc/jem_locate.h"
#include "../plugins/musl/musl.h"
#include "../plugins/pymalloc/pym.h"
#include "../plugins/tcmalloc/tc_anchors.h"
#include "../plugins/mimalloc/mimalloc.h"

static size_t anchors_of(const char *plugin, struct md_target *t, void *state, uint64_t *anchors)
{
	size_t n_anchors = 0;
	if (strcmp(plugin, "musl") == 0 || strcmp(plugin, "mimalloc") == 0) {
		/* fuzz_musl_walk.c, fuzz_mimalloc_walk.c: one walk of the unmutated image, then
		 * mu_fuzz_anchors / mi_fuzz_anchors. */
		return 0;
	}
	if (strcmp(plugin, "tcmalloc") == 0)
		return tc_fuzz_anchors(t, state, anchors);
	if (strcmp(plugin, "jemalloc") == 0) {
		const struct jem_roots *r = state;
		const struct jem_layout *l = &r->layout;
		uint64_t a0 = 0, a1 = 0, base = 0;
		md_error_destroy(md_target_read_u64(t, r->arenas, &a0));
		md_error_destroy(md_target_read_u64(t, r->arenas + 8, &a1));
		anchors[n_anchors++] = r->arenas;
		anchors[n_anchors++] = r->emap;
		if (a0) {
			md_error_destroy(md_target_read_u64(t, a0 + l->arena_base, &base));
			anchors[n_anchors++] = a0;
			anchors[n_anchors++] = a0 + l->arena_tcache_ql;
			anchors[n_anchors++] = a0 + l->arena_ecache[0];
			anchors[n_anchors++] = a0 + l->arena_ecache[0] + 112 + 9632;
			anchors[n_anchors++] = a0 + l->arena_bins;
			anchors[n_anchors++] = a0 + l->arena_pa_base;
		}
		if (base)
			anchors[n_anchors++] = base + l->base_blocks;
		if (a1)
			anchors[n_anchors++] = a1;
		if (r->narenas_total)
			anchors[n_anchors++] = r->narenas_total;
		if (r->bin_infos)
			anchors[n_anchors++] = r->bin_infos;
		anchors[n_anchors++] = r->emap + 120 + 8 * ((a0 >> 30) & 0x3ffff);
		return n_anchors;
	}
	if (strcmp(plugin, "pymalloc") == 0) {
		const struct pym_roots *r = state;
		uint64_t arenas = 0, main_interp = 0;
		anchors[n_anchors++] = r->global.arenas_addr;
		anchors[n_anchors++] = r->global.maxarenas_addr;
		if (r->global.raw_addr)
			anchors[n_anchors++] = r->global.raw_addr;
		if (r->obj_allocator)
			anchors[n_anchors++] = r->obj_allocator;
		md_error_destroy(md_target_read_u64(t, r->global.arenas_addr, &arenas));
		for (unsigned i = 0; arenas && i < 4; i++) {
			uint64_t addr = 0;
			md_error_destroy(md_target_read_u64(t, arenas + i * PYM_ARENA_OBJECT, &addr));
			anchors[n_anchors++] = arenas + i * PYM_ARENA_OBJECT;
			if (addr) {
				uint64_t base = (addr + r->pool_size - 1) & ~(r->pool_size - 1);
				anchors[n_anchors++] = base;
				anchors[n_anchors++] = base + r->pool_size;
			}
		}
		if (r->off_interp_main)
			md_error_destroy(md_target_read_u64(t, r->runtime + r->off_interp_main, &main_interp));
		if (main_interp && r->off_gc_generations && n_anchors < 16)
			anchors[n_anchors++] = main_interp + r->off_gc_generations;
		return n_anchors;
	}
	const struct glibc_state *s = state;
	uint64_t ma = s->roots.main_arena;
	anchors[n_anchors++] = ma;
	anchors[n_anchors++] = ma + 0x60;
	anchors[n_anchors++] = ma + 0x860;
	anchors[n_anchors++] = s->roots.mp;
	size_t n;
	const struct md_mapping *maps = md_target_mappings(t, &n);
	for (size_t i = 0; i < n && n_anchors < 16; i++) {
		if (maps[i].kind != MD_MAP_HEAP && !(maps[i].kind == MD_MAP_ANON && maps[i].start % (64ULL << 20) == 0))
			continue;
		anchors[n_anchors++] = maps[i].start;
		if (n_anchors < 16)
			anchors[n_anchors++] = maps[i].start + 0x10;
	}
	return n_anchors;
}

static uint8_t *slurp(const char *path, size_t *len_ret)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	uint8_t *buf = malloc(1 << 16);
	size_t n = fread(buf, 1, 1 << 16, f);
	fclose(f);
	*len_ret = n;
	return buf;
}

/* Replay the seed itself (empty script) and every regression input of plugin. */
static void replay(const char *plugin_name)
{
	const char *data = getenv("MD_TESTDATA");
	const char *pdir = getenv("MEMDISSECT_PLUGIN_PATH");
	ck_assert_msg(data && pdir, "MD_TESTDATA and MEMDISSECT_PLUGIN_PATH must be set (make test)");
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.so", pdir, plugin_name);
	void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(so != NULL, "dlopen %s: %s", path, dlerror());
	md_plugin_entry_fn entry = (md_plugin_entry_fn)dlsym(so, MD_PLUGIN_ENTRY);
	ck_assert_ptr_nonnull(entry);
	const struct md_plugin *p = entry();

	snprintf(path, sizeof(path), "%s/fuzz-regressions/seed-%s.core", data, plugin_name);
	struct md_core_options copts = { 0 };
	struct md_target *core = NULL, *image = NULL;
	struct md_core_info info;
	struct md_error *err = md_core_open(path, &copts, &core, &info);
	ck_assert_msg(err == NULL, "%s: %s", path, err ? err->message : "");
	md_core_info_deinit(&info);
	ck_assert_ptr_null(md_image_from_target(core, 512ULL << 20, &image));
	struct md_plugin_options popts = { 0 };
	void *state = NULL;
	err = p->open(image, &popts, &state);
	ck_assert_msg(err == NULL && state, "%s open: %s", plugin_name, err ? err->message : "not found");
	uint64_t anchors[16];
	size_t n_anchors = anchors_of(plugin_name, image, state, anchors);
	if (strcmp(plugin_name, "musl") == 0) {
		struct md_classifier *c0 = NULL;
		ck_assert_ptr_null(md_classifier_create(image, &c0));
		md_error_destroy(p->walk(state, image, md_classifier_sink(c0, p->name), false));
		md_classifier_destroy(c0);
		n_anchors = mu_fuzz_anchors(state, anchors);
		ck_assert_uint_gt(n_anchors, 4);
	}
	if (strcmp(plugin_name, "mimalloc") == 0) {
		struct md_classifier *c0 = NULL;
		ck_assert_ptr_null(md_classifier_create(image, &c0));
		md_error_destroy(p->walk(state, image, md_classifier_sink(c0, p->name), false));
		md_classifier_destroy(c0);
		n_anchors = mi_fuzz_anchors(state, anchors);
		ck_assert_uint_gt(n_anchors, 8);
	}

	snprintf(path, sizeof(path), "%s/fuzz-regressions", data);
	DIR *d = opendir(path);
	ck_assert_ptr_nonnull(d);
	struct dirent *de;
	size_t prefix = strlen(plugin_name);
	unsigned replayed = 0;
	bool first = true;
	while (first || (de = readdir(d))) {
		uint8_t *script = NULL;
		size_t len = 0;
		const char *name = "(unmutated seed)";
		if (!first) {
			if (strncmp(de->d_name, plugin_name, prefix) != 0 || de->d_name[prefix] != '-')
				continue;
			name = de->d_name;
			char file[4352];
			snprintf(file, sizeof(file), "%s/%s", path, de->d_name);
			script = slurp(file, &len);
		}
		first = false;
		double t0 = md_test_now_s();
		struct md_image_undo *u = NULL;
		ck_assert_ptr_null(md_image_mutate(image, anchors, n_anchors, script, len, &u));
		struct md_classifier *c = NULL;
		ck_assert_ptr_null(md_classifier_create(image, &c));
		struct md_sink *sink = md_classifier_sink(c, p->name);
		ck_assert_ptr_nonnull(sink);
		err = p->walk(state, image, sink, false);
		md_error_destroy(err);
		if (p->abi_version >= 3 && p->finish)
			md_error_destroy(p->finish(state, image, sink));
		struct md_report r;
		md_report_init(&r);
		ck_assert_ptr_null(md_classifier_finish(c, &r));
		struct md_node *obj = md_node_object();
		ck_assert_ptr_null(md_node_set_string(obj, "name", p->name));
		md_error_destroy(p->report(state, sink, obj));
		md_node_destroy(obj);
		unsigned findings = md_sink_finding_count(sink);
		md_report_deinit(&r);
		md_classifier_destroy(c);
		md_image_undo(image, u);
		double dt = md_test_now_s() - t0;
		fprintf(stderr, "image: %s %s: %u findings, %.3f s\n", plugin_name, name, findings, dt);
		ck_assert_msg(dt < 5.0, "%s %s: walk took %.1f s", plugin_name, name, dt);
		if (!script && strcmp(plugin_name, "glibc") != 0)
			ck_assert_msg(findings == 0, "the unmutated %s seed gave %u findings", plugin_name, findings);
		free(script);
		replayed++;
	}
	closedir(d);
	ck_assert_uint_ge(replayed, 1);
	p->close(state);
	md_target_destroy(image);
	dlclose(so);
}

START_TEST(test_regressions_pymalloc)
{
	replay("pymalloc");
}
END_TEST

START_TEST(test_regressions_jemalloc)
{
	replay("jemalloc");
}
END_TEST

START_TEST(test_regressions_musl)
{
	replay("musl");
}
END_TEST

START_TEST(test_regressions_mimalloc)
{
	replay("mimalloc");
}
END_TEST

START_TEST(test_regressions_glibc)
{
	replay("glibc");
}
END_TEST

START_TEST(test_regressions_tcmalloc)
{
	replay("tcmalloc");
}
END_TEST

Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("image");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_image_reads);
	tcase_add_test(tc, test_image_mutate_undo);
	tcase_add_test(tc, test_group_stats_sized);
	tcase_add_test(tc, test_regressions_jemalloc);
	tcase_add_test(tc, test_regressions_glibc);
	tcase_add_test(tc, test_regressions_musl);
	tcase_add_test(tc, test_regressions_pymalloc);
	tcase_add_test(tc, test_regressions_tcmalloc);
	tcase_add_test(tc, test_regressions_mimalloc);
	suite_add_tcase(s, tc);
	return s;
}
