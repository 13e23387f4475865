/* The report fixture shared by the renderer tests (render_fixture.h). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/report.h"
#include "render_fixture.h"
#include "../plugins/glibc/glibc_figures.h"
#include "tests.h"


static void add_region(struct md_report *r, uint64_t start, uint64_t end, const char *perms,
		       uint64_t offset, const char *path, enum md_map_kind kind, const char *kind_name,
		       const char *allocator, const uint64_t classes[MD_CLASS_COUNT])
{
	r->regions = realloc(r->regions, (r->n_regions + 1) * sizeof(*r->regions));
	ck_assert_ptr_nonnull(r->regions);
	struct md_report_region *reg = &r->regions[r->n_regions++];
	memset(reg, 0, sizeof(*reg));
	reg->start = start;
	reg->end = end;
	reg->offset = offset;
	snprintf(reg->perms, sizeof(reg->perms), "%s", perms);
	reg->path = path ? strdup(path) : NULL;
	reg->kind = kind;
	reg->kind_name = kind_name;
	reg->allocator = allocator;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		reg->classes[c] = classes[c];
		reg->rss_bytes += classes[c];
		r->classes[c] += classes[c];
	}
	/* shared pages are split with the two other processes mapping them */
	reg->pss_bytes = reg->rss_bytes - classes[MD_CLASS_SHARED] * 2 / 3 - classes[MD_CLASS_FILE] / 2;
	r->memory.rss_bytes += reg->rss_bytes;
	r->memory.pss_bytes += reg->pss_bytes;
	r->memory.vm_size_bytes += end - start;
}

/* Classes in the order live, free, metadata, stack, file, shared, anon_other. */
#define CL(live, fr, meta, stack, file, shared, other) \
	((const uint64_t[MD_CLASS_COUNT]){ live, fr, meta, stack, file, shared, other })

void md_fx_add_finding(struct md_report *r, const char *severity, uint64_t address, int group,
			const char *message)
{
	r->findings = realloc(r->findings, (r->n_findings + 1) * sizeof(*r->findings));
	ck_assert_ptr_nonnull(r->findings);
	r->findings[r->n_findings++] = (struct md_report_finding){
		.allocator = "glibc", .severity = severity, .address = address, .group = group,
		.message = strdup(message),
	};
}

static void set_mallinfo(struct md_node *parent, uint64_t arena, uint64_t ordblks, uint64_t smblks,
			 uint64_t hblks, uint64_t hblkhd, uint64_t fsmblks, uint64_t uordblks,
			 uint64_t fordblks, uint64_t keepcost)
{
	struct md_node *mi = md_node_object();
	ck_assert_ptr_null(md_node_set(parent, "mallinfo", mi));
	ck_assert_ptr_null(md_node_set_u64(mi, "arena", arena));
	ck_assert_ptr_null(md_node_set_u64(mi, "ordblks", ordblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "smblks", smblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "hblks", hblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "hblkhd", hblkhd));
	ck_assert_ptr_null(md_node_set_u64(mi, "usmblks", 0));
	ck_assert_ptr_null(md_node_set_u64(mi, "fsmblks", fsmblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "uordblks", uordblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "fordblks", fordblks));
	ck_assert_ptr_null(md_node_set_u64(mi, "keepcost", keepcost));
}

/* An arena object shaped like the glibc plugin's (plugins/glibc/report.c). */
static struct md_node *arena_node(int index, uint64_t address, const char *kind, const char *state,
				  const uint64_t *heaps, size_t n_heaps, uint64_t live, uint64_t fr,
				  uint64_t cached, uint64_t meta, uint64_t releasable, uint64_t findings)
{
	struct md_node *a = md_node_object();
	ck_assert_ptr_null(md_node_set_u64(a, "index", (uint64_t)index));
	ck_assert_ptr_null(md_node_set_hex(a, "address", address));
	ck_assert_ptr_null(md_node_set_string(a, "kind", kind));
	ck_assert_ptr_null(md_node_set_string(a, "state", state));
	ck_assert_ptr_null(md_node_set_u64(a, "attached_threads", index == 0 ? 1 : 2));
	ck_assert_ptr_null(md_node_set_u64(a, "system_mem", live + fr + cached + meta));
	struct md_node *hs = md_node_array();
	ck_assert_ptr_null(md_node_set(a, "heaps", hs));
	for (size_t i = 0; i < n_heaps; i++) {
		struct md_node *h = md_node_object();
		ck_assert_ptr_null(md_node_append(hs, h));
		ck_assert_ptr_null(md_node_set_hex(h, "address", heaps[i]));
		ck_assert_ptr_null(md_node_set_u64(h, "size", 64 * MiB));
	}
	ck_assert_ptr_null(md_node_set_u64(a, "trim_release_bytes", releasable));
	ck_assert_ptr_null(md_node_set_u64(a, "live_bytes", live));
	ck_assert_ptr_null(md_node_set_u64(a, "free_bytes", fr));
	ck_assert_ptr_null(md_node_set_u64(a, "cached_bytes", cached));
	ck_assert_ptr_null(md_node_set_u64(a, "metadata_bytes", meta));
	ck_assert_ptr_null(md_node_set_u64(a, "findings", findings));
	return a;
}

/* The standard group row of an arena (include/memdissect/figures.h), as the plugin makes it. */
static struct md_node *group_row(int index, const char *kind, const char *state, size_t n_heaps, uint64_t live,
				 uint64_t fr, uint64_t cached, uint64_t meta, uint64_t releasable, uint64_t findings)
{
	struct md_node *g = md_node_object();
	char name[32];
	snprintf(name, sizeof(name), "arena %d", index);
	ck_assert_ptr_null(md_node_set_i64(g, "group", index));
	ck_assert_ptr_null(md_node_set_string(g, "name", name));
	ck_assert_ptr_null(md_node_set_string(g, "kind", kind));
	ck_assert_ptr_null(md_node_set_string(g, "state", state));
	ck_assert_ptr_null(md_node_set_u64(g, "threads", index == 0 ? 1 : 2));
	ck_assert_ptr_null(md_node_set_u64(g, "regions", n_heaps));
	ck_assert_ptr_null(md_node_set_u64(g, "live_bytes", live));
	ck_assert_ptr_null(md_node_set_u64(g, "free_bytes", fr));
	ck_assert_ptr_null(md_node_set_u64(g, "cached_bytes", cached));
	ck_assert_ptr_null(md_node_set_u64(g, "metadata_bytes", meta));
	ck_assert_ptr_null(md_node_set_u64(g, "releasable_bytes", releasable));
	ck_assert_ptr_null(md_node_set_u64(g, "findings", findings));
	return g;
}

/* A size-class histogram in the shape asked of the glibc plugin (docs/report.md). */
struct hist {
	uint64_t from, to, live_count, live_bytes, free_count, free_bytes;
};

static void set_histogram(struct md_node *arena, const struct hist *h, size_t n)
{
	struct md_node *arr = md_node_array();
	ck_assert_ptr_null(md_node_set(arena, "histogram", arr));
	for (size_t i = 0; i < n; i++) {
		struct md_node *o = md_node_object();
		ck_assert_ptr_null(md_node_append(arr, o));
		ck_assert_ptr_null(md_node_set_u64(o, "size_from", h[i].from));
		ck_assert_ptr_null(md_node_set_u64(o, "size_to", h[i].to));
		ck_assert_ptr_null(md_node_set_u64(o, "live_count", h[i].live_count));
		ck_assert_ptr_null(md_node_set_u64(o, "live_bytes", h[i].live_bytes));
		ck_assert_ptr_null(md_node_set_u64(o, "free_count", h[i].free_count));
		ck_assert_ptr_null(md_node_set_u64(o, "free_bytes", h[i].free_bytes));
	}
}

/* The allocator object, shaped like the glibc plugin's. */
static struct md_node *glibc_node(void)
{
	struct md_node *g = md_node_object();
	ck_assert_ptr_null(md_node_set_string(g, "name", "glibc"));
	ck_assert_ptr_null(md_node_set_string(g, "version", "2.36"));
	ck_assert_ptr_null(md_node_set_string(g, "symbols", "dwarf"));
	ck_assert_ptr_null(md_node_set_string(g, "symbols_detail", "DWARF of /usr/lib/debug/.build-id/8a/"
					      "f5e1b2c3d4e5f60718293a4b5c6d7e8f901234.debug"));
	struct md_node *layout = md_node_object();
	ck_assert_ptr_null(md_node_set(g, "layout", layout));
	ck_assert_ptr_null(md_node_set_string(layout, "source", "dwarf"));
	ck_assert_ptr_null(md_node_set_bool(g, "consistent", true));
	set_mallinfo(g, 787 * MiB, 18211, 944, 1, 256 * MiB + 4 * KiB, 61 * KiB, 591 * MiB,
		     196 * MiB, 96 * MiB + 132 * KiB);
	ck_assert_ptr_null(md_node_set_u64(g, "trim_release_bytes", 101 * MiB));
	ck_assert_ptr_null(md_node_set_u64(g, "trim_release_pages", 101 * 256));
	struct md_node *release = md_node_object();
	ck_assert_ptr_null(md_node_set(g, "release", release));
	ck_assert_ptr_null(md_node_set_string(release, "action", "malloc_trim(0)"));
	ck_assert_ptr_null(md_node_set_u64(release, "bytes", 101 * MiB));
	ck_assert_ptr_null(md_node_set_u64(release, "pages", 101 * 256));
	/* the standard figures, as plugins/glibc/report.c makes them */
	char hint[400];
	snprintf(hint, sizeof(hint), GL_RELEASE_HINT_FMT, 128ULL * KiB);
	ck_assert_ptr_null(md_node_set_string(release, "topic", GL_RELEASE_TOPIC));
	ck_assert_ptr_null(md_node_set_string(release, "hint", hint));
	ck_assert_ptr_null(md_node_set_string(release, "caution", GL_RELEASE_CAUTION));
	ck_assert_ptr_null(md_node_set_string(g, "module", "/usr/lib/x86_64-linux-gnu/libc.so.6"));
	ck_assert_ptr_null(gl_describe_figures(g));
	ck_assert_ptr_null(md_node_set_u64(g, "live_bytes", 539 * MiB + 256 * MiB));
	ck_assert_ptr_null(md_node_set_u64(g, "free_bytes", 151 * MiB));
	ck_assert_ptr_null(md_node_set_u64(g, "cached_bytes", 17 * MiB));
	ck_assert_ptr_null(md_node_set_u64(g, "metadata_bytes", 1128 * KiB));
	ck_assert_ptr_null(md_node_set_u64(g, "pinned_free_bytes", 37 * MiB));
	struct md_node *pages = md_node_object();
	ck_assert_ptr_null(md_node_set(g, "pages", pages));
	ck_assert_ptr_null(md_node_set_u64(pages, "metadata", 284)); /* pages, not bytes */
	struct md_node *arenas = md_node_array();
	ck_assert_ptr_null(md_node_set(g, "arenas", arenas));
	const uint64_t heaps1[] = { 0x7f1c04000000ULL, 0x7f1c08000000ULL };
	struct md_node *a0 = arena_node(0, 0x7f1c5a1d9c80ULL, "main", "ok", NULL, 0, 488 * MiB,
					104 * MiB, 14 * MiB, 900 * KiB, 96 * MiB, 1);
	struct md_node *a1 = arena_node(1, 0x7f1c04000020ULL, "thread", "corrupt", heaps1, 2, 51 * MiB,
					47 * MiB, 3 * MiB, 228 * KiB, 5 * MiB, 1);
	static const struct hist h0[] = {
		{ 32, 32, 1200000, 1200000 * 24, 4100, 4100 * 24 },
		{ 48, 128, 2600000, 2600000 * 88, 61000, 61000 * 88 },
		{ 144, 1024, 400000, 400000 * 560, 52000, 52000 * 560 },
		{ 1040, 65536, 9000, 140 * MiB, 1300, 55 * MiB },
		{ 65552, 131072, 120, 12 * MiB, 30, 3 * MiB },
	};
	static const struct hist h1[] = {
		{ 32, 32, 90000, 90000 * 24, 1200, 1200 * 24 },
		{ 48, 1024, 61000, 61000 * 400, 52000, 52000 * 400 },
		{ 1040, 131072, 1100, 24 * MiB, 600, 26 * MiB },
	};
	set_histogram(a0, h0, sizeof(h0) / sizeof(h0[0]));
	set_histogram(a1, h1, sizeof(h1) / sizeof(h1[0]));
	ck_assert_ptr_null(md_node_append(arenas, a0));
	ck_assert_ptr_null(md_node_append(arenas, a1));
	struct md_node *groups = md_node_array();
	ck_assert_ptr_null(md_node_set(g, "groups", groups));
	struct md_node *g0 = group_row(0, "main", "ok", 0, 488 * MiB, 104 * MiB, 14 * MiB, 900 * KiB, 96 * MiB, 1);
	struct md_node *g1 = group_row(1, "thread", "corrupt", 2, 51 * MiB, 47 * MiB, 3 * MiB, 228 * KiB, 5 * MiB, 1);
	set_histogram(g0, h0, sizeof(h0) / sizeof(h0[0]));
	set_histogram(g1, h1, sizeof(h1) / sizeof(h1[0]));
	ck_assert_ptr_null(md_node_append(groups, g0));
	ck_assert_ptr_null(md_node_append(groups, g1));
	ck_assert_ptr_null(md_node_set_bool(g, "allocated_from", true));
	ck_assert_ptr_null(md_node_set_u64(g, "findings", 3));
	return g;
}

/* The fixed fake report every test here renders. */
void md_fx_build_report(struct md_report *r)
{
	md_report_init(r);
	r->target.pid = 48213;
	snprintf(r->target.comm, sizeof(r->target.comm), "order-svc");
	r->target.exe = strdup("/srv/order-svc/bin/order-svc");
	r->target.source = "live";
	r->target.pause_ms = 3.412;
	r->target.total_ms = 41.87;
	r->target.threads = 4;
	r->target.attach_retries = 1;

	const char *exe = "/srv/order-svc/bin/order-svc";
	const char *libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
	const char *ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
	add_region(r, 0x55d4c3a00000, 0x55d4c3a2c000, "r--p", 0, exe, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 120 * KiB, 0, 0));
	add_region(r, 0x55d4c3a2c000, 0x55d4c3c91000, "r-xp", 0x2c000, exe, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 1844 * KiB, 0, 0));
	add_region(r, 0x55d4c3c91000, 0x55d4c3d40000, "r--p", 0x291000, exe, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 400 * KiB, 0, 0));
	add_region(r, 0x55d4c3d40000, 0x55d4c3d52000, "rw-p", 0x340000, exe, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 24 * KiB, 0, 48 * KiB));
	add_region(r, 0x55d4c5b1e000, 0x55d4f1b1e000, "rw-p", 0, "[heap]", MD_MAP_HEAP, "heap", "glibc",
		   CL(520 * MiB, 118 * MiB, 900 * KiB, 0, 0, 0, 0));
	add_region(r, 0x7f1c04000000, 0x7f1c08000000, "rw-p", 0, NULL, MD_MAP_ANON, "anon", "glibc",
		   CL(41 * MiB, 19 * MiB, 132 * KiB, 0, 0, 0, 0));
	add_region(r, 0x7f1c08000000, 0x7f1c0b600000, "rw-p", 0, NULL, MD_MAP_ANON, "anon", "glibc",
		   CL(22 * MiB, 31 * MiB, 96 * KiB, 0, 0, 0, 0));
	add_region(r, 0x7f1c0b600000, 0x7f1c0c000000, "---p", 0, NULL, MD_MAP_ANON, "anon", NULL,
		   CL(0, 0, 0, 0, 0, 0, 0));
	add_region(r, 0x7f1c2a000000, 0x7f1c3a001000, "rw-p", 0, NULL, MD_MAP_ANON, "anon", "glibc",
		   CL(256 * MiB + 4 * KiB, 0, 0, 0, 0, 0, 0));
	add_region(r, 0x7f1c3c000000, 0x7f1c3e000000, "rw-p", 0, NULL, MD_MAP_ANON, "anon", NULL,
		   CL(0, 0, 0, 0, 0, 0, 18 * MiB + 512 * KiB));
	for (int i = 0; i < 3; i++) {
		uint64_t base = 0x7f1c40000000ULL + (uint64_t)i * 0x801000;
		add_region(r, base, base + 0x1000, "---p", 0, NULL, MD_MAP_ANON, "anon", NULL,
			   CL(0, 0, 0, 0, 0, 0, 0));
		add_region(r, base + 0x1000, base + 0x801000, "rw-p", 0, NULL, MD_MAP_STACK, "stack",
			   NULL, CL(0, 0, 0, (uint64_t)(148 - 40 * i) * KiB, 0, 0, 0));
	}
	add_region(r, 0x7f1c5a000000, 0x7f1c5a028000, "r--p", 0, libc, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 160 * KiB, 0, 0));
	add_region(r, 0x7f1c5a028000, 0x7f1c5a17d000, "r-xp", 0x28000, libc, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 1388 * KiB, 0, 0));
	add_region(r, 0x7f1c5a17d000, 0x7f1c5a1d5000, "r--p", 0x17d000, libc, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 288 * KiB, 0, 0));
	add_region(r, 0x7f1c5a1d5000, 0x7f1c5a1d9000, "r--p", 0x1d4000, libc, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 0, 0, 16 * KiB));
	add_region(r, 0x7f1c5a1d9000, 0x7f1c5a1db000, "rw-p", 0x1d8000, libc, MD_MAP_FILE, "file", "glibc",
		   CL(0, 0, 8 * KiB, 0, 0, 0, 0));
	add_region(r, 0x7f1c60000000, 0x7f1c61000000, "rw-s", 0, "/dev/shm/order-svc.ring",
		   MD_MAP_SHARED, "shared", NULL, CL(0, 0, 0, 0, 0, 12 * MiB, 0));
	add_region(r, 0x7f1c61200000, 0x7f1c61228000, "r-xp", 0x1000, ld, MD_MAP_FILE, "file", NULL,
		   CL(0, 0, 0, 0, 160 * KiB, 0, 0));
	add_region(r, 0x7ffd3c8e5000, 0x7ffd3c906000, "rw-p", 0, "[stack]", MD_MAP_STACK, "stack", NULL,
		   CL(0, 0, 0, 132 * KiB, 0, 0, 0));
	add_region(r, 0x7ffd3c9f0000, 0x7ffd3c9f4000, "r--p", 0, "[vvar]", MD_MAP_SPECIAL, "special",
		   NULL, CL(0, 0, 0, 0, 0, 0, 0));
	add_region(r, 0x7ffd3c9f4000, 0x7ffd3c9f6000, "r-xp", 0, "[vdso]", MD_MAP_SPECIAL, "special",
		   NULL, CL(0, 0, 0, 0, 0, 0, 8 * KiB));

	r->memory.uss_bytes = r->memory.rss_bytes - r->classes[MD_CLASS_SHARED] -
			      r->classes[MD_CLASS_FILE] * 3 / 4;
	r->memory.swap_bytes = 0;
	r->memory.vm_size_bytes += 1 * GiB; /* reserved, never mapped in this sketch */
	r->memory.file_bytes = r->classes[MD_CLASS_FILE];
	r->memory.shmem_bytes = r->classes[MD_CLASS_SHARED];
	r->memory.anon_bytes = r->memory.rss_bytes - r->memory.file_bytes - r->memory.shmem_bytes;
	r->memory.status_vm_rss_bytes = r->memory.rss_bytes - 64 * KiB;
	r->memory.hugetlb_bytes = 20 * MiB;
	r->reconciled_pages = 3;

	r->system.valid = true;
	r->system.mem_total_bytes = 16003548 * KiB;
	r->system.mem_available_bytes = 6082316 * KiB;
	r->system.mem_free_bytes = 1204228 * KiB;
	r->system.cached_bytes = 4718592 * KiB;
	r->system.swap_total_bytes = 2 * GiB;
	r->system.swap_free_bytes = 2 * GiB - 12 * MiB;

	r->cgroup.valid = true;
	r->cgroup.path = strdup("/system.slice/order-svc.service");
	r->cgroup.version = 2;
	r->cgroup.limit_bytes = 2 * GiB;
	r->cgroup.usage_bytes = 1948 * MiB;

	ck_assert_ptr_null(md_node_append(r->allocators, glibc_node()));

	/* The allocator regions of the classifier, consistent with the mappings above: the sbrk
	 * heap (700 MiB reserved, 520 MiB live, 118 MiB free of which 96 MiB releasable, 30 MiB
	 * pinned), thread arena 1's two heaps, and the 256 MiB mmapped chunk. */
	const struct md_fx_run main_runs[] = {
		{ MD_CELL_METADATA, 225, 0, 0 },
		{ MD_CELL_LIVE, 60000, 0, 256 },
		{ MD_CELL_FREE, 18000, 18000, 0 },
		{ MD_CELL_LIVE, 33120, 0, 0 },
		{ MD_CELL_FREE, 6208, 576, 0 },
		{ MD_CELL_LIVE, 36000, 0, 100 },
		{ MD_CELL_LIVE, 4000, 0, 3120 },
		{ MD_CELL_FREE, 6000, 6000, 0 },
		{ MD_CELL_NONRESIDENT, 15647, 0, 0 },
	};
	md_fx_add_alloc_region(r, 0x55d4c5b1e000, "glibc", "glibc main arena", 0, main_runs,
			       sizeof(main_runs) / sizeof(main_runs[0]));
	const struct md_fx_run heap0_runs[] = {
		{ MD_CELL_METADATA, 33, 0, 0 },
		{ MD_CELL_LIVE, 6000, 0, 400 },
		{ MD_CELL_FREE, 4864, 768, 0 },
		{ MD_CELL_LIVE, 4496, 0, 399 },
		{ MD_CELL_NONRESIDENT, 991, 0, 0 },
	};
	md_fx_add_alloc_region(r, 0x7f1c04000000, "glibc", "glibc arena 1 heap 0", 1, heap0_runs,
			       sizeof(heap0_runs) / sizeof(heap0_runs[0]));
	const struct md_fx_run heap1_runs[] = {
		{ MD_CELL_METADATA, 24, 0, 0 },
		{ MD_CELL_LIVE, 5632, 0, 558 },
		{ MD_CELL_FREE, 7936, 512, 0 },
		{ MD_CELL_NONRESIDENT, 232, 0, 0 },
	};
	md_fx_add_alloc_region(r, 0x7f1c08000000, "glibc", "glibc arena 1 heap 1", 1, heap1_runs,
			       sizeof(heap1_runs) / sizeof(heap1_runs[0]));
	const struct md_fx_run mmap_runs[] = { { MD_CELL_LIVE, 65537, 0, 0 } };
	md_fx_add_alloc_region(r, 0x7f1c2a000000, "glibc", "glibc mmapped chunk", 2, mmap_runs, 1);

	md_fx_add_finding(r, "info", 0x7f1c2a000000, -1,
		    "mmapped chunk of 256 MiB (over the 128 KiB mmap threshold): returned to the "
		    "kernel as soon as it is freed");
	md_fx_add_finding(r, "corrupt", 0x7f1c080a3f10, 1,
		    "chunk at 0x7f1c080a3f10 has size 0x3fffe0 past the heap end 0x7f1c0b600000; the "
		    "walk resumed at the top chunk");
	md_fx_add_finding(r, "warning", 0x55d4c5b2a0f0, 0,
		    "fastbin 3 list cut after 100000 steps (cycle or corruption)");
	ck_assert_ptr_null(md_report_add_note(r, "glibc: tcache of thread %d not read: its TLS page "
					      "is swapped out", 48217));
	ck_assert_ptr_null(md_report_add_note(r, "3 pages moved to the class smaps implies"));
}

char *md_fx_render_text(const struct md_report *r, bool color, int width)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	struct md_render_options opts = { .color = color, .width = width, .top = 15 };
	struct md_error *err = md_render_text(r, &opts, f);
	ck_assert_msg(err == NULL, "md_render_text: %s", err ? err->message : "");
	fclose(f);
	return buf;
}

char *md_fx_render_text_opts(const struct md_report *r, const struct md_render_options *opts)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	struct md_error *err = md_render_text(r, opts, f);
	ck_assert_msg(err == NULL, "md_render_text: %s", err ? err->message : "");
	fclose(f);
	return buf;
}

void md_fx_add_alloc_region(struct md_report *r, uint64_t start, const char *allocator,
			    const char *label, int group, const struct md_fx_run *runs, size_t n_runs)
{
	uint64_t npages = 0;
	for (size_t i = 0; i < n_runs; i++)
		npages += runs[i].pages;
	r->alloc_regions = realloc(r->alloc_regions, (r->n_alloc_regions + 1) * sizeof(*r->alloc_regions));
	ck_assert_ptr_nonnull(r->alloc_regions);
	struct md_alloc_region *ar = &r->alloc_regions[r->n_alloc_regions++];
	memset(ar, 0, sizeof(*ar));
	ar->start = start;
	ar->end = start + npages * MD_PAGE_SIZE;
	ar->allocator = allocator;
	ar->label = strdup(label);
	ar->group = group;
	uint64_t ppc = (npages + MD_MAX_CELLS - 1) / MD_MAX_CELLS;
	ar->pages_per_cell = (uint32_t)(ppc ? ppc : 1);
	ar->n_cells = (size_t)((npages + ar->pages_per_cell - 1) / ar->pages_per_cell);
	ar->cells = calloc(ar->n_cells ? ar->n_cells : 1, sizeof(*ar->cells));
	ck_assert_ptr_nonnull(ar->cells);
	uint64_t page = 0;
	for (size_t i = 0; i < n_runs; i++) {
		for (uint64_t k = 0; k < runs[i].pages; k++, page++) {
			struct md_map_cell *c = &ar->cells[page / ar->pages_per_cell];
			c->pages[runs[i].part]++;
			ar->pages[runs[i].part]++;
			if (k < runs[i].releasable) {
				c->releasable_pages++;
				ar->releasable_bytes += MD_PAGE_SIZE;
			}
			if (runs[i].part == MD_CELL_LIVE) {
				c->pinned_free_bytes += runs[i].pinned;
				ar->pinned_free_bytes += runs[i].pinned;
			}
		}
	}
}

static bool hex_run(const char *p, size_t *len_ret)
{
	size_t n = 0;
	bool digit = false;
	while (isxdigit((unsigned char)p[n]) && !isupper((unsigned char)p[n])) {
		digit |= isdigit((unsigned char)p[n]) != 0;
		n++;
	}
	*len_ret = n;
	return n >= 9 && digit && !isalnum((unsigned char)p[n]);
}

/* "3.412 ms", "41.9 ms", "1.20 s": a time after one of the words that introduce one. */
static bool time_after(const char *text, const char *p, size_t *len_ret)
{
	static const char *const lead[] = { "stopped for ", "analysis took ", NULL };
	for (size_t i = 0; lead[i]; i++) {
		size_t l = strlen(lead[i]);
		if ((size_t)(p - text) >= l && strncmp(p - l, lead[i], l) == 0) {
			size_t n = 0;
			while (isdigit((unsigned char)p[n]) || p[n] == '.')
				n++;
			if (!n)
				return false;
			if (strncmp(p + n, " ms", 3) == 0)
				n += 3;
			else if (strncmp(p + n, " s", 2) == 0)
				n += 2;
			*len_ret = n;
			return true;
		}
	}
	return false;
}

char *md_fx_mask(const char *text)
{
	size_t cap = strlen(text) * 2 + 64, k = 0;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	for (const char *p = text; *p;) {
		size_t n;
		bool boundary = p == text || !isalnum((unsigned char)p[-1]);
		/* an address keeps its width, so masked tables stay aligned */
		if (boundary && p[0] == '0' && p[1] == 'x' && hex_run(p + 2, &n)) {
			out[k++] = '0';
			out[k++] = 'x';
			memset(out + k, 'X', n);
			k += n;
			p += 2 + n;
		} else if (boundary && hex_run(p, &n)) {
			memset(out + k, 'X', n);
			k += n;
			p += n;
		} else if (boundary && time_after(text, p, &n)) {
			k += (size_t)snprintf(out + k, cap - k, "TIME");
			p += n;
		} else if (boundary && strncmp(p, "pid ", 4) == 0 && isdigit((unsigned char)p[4])) {
			k += (size_t)snprintf(out + k, cap - k, "pid PID");
			p += 4;
			while (isdigit((unsigned char)*p))
				p++;
		} else {
			out[k++] = *p++;
		}
		ck_assert(k < cap);
	}
	out[k] = 0;
	return out;
}

void md_fx_check_width(const char *text, int width)
{
	int line = 1;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		int cols = 0;
		for (size_t i = 0; i < l; i++) {
			if (p[i] == '\033') { /* an ANSI colour: up to its final letter */
				while (i < l && p[i] != 'm')
					i++;
				continue;
			}
			cols++;
		}
		ck_assert_msg(cols <= width, "line %d is %d columns wide (max %d): %.*s", line, cols, width,
			      (int)l, p);
		p += l + (nl ? 1 : 0);
		line++;
	}
}

char *md_fx_render_json(const struct md_report *r, size_t *len_ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	struct md_error *err = md_render_json(r, f);
	ck_assert_msg(err == NULL, "md_render_json: %s", err ? err->message : "");
	fclose(f);
	*len_ret = len;
	return buf;
}

char *md_fx_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, len = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		size_t n = fread(buf + len, 1, 4096, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Compare with (or, under MD_UPDATE_GOLDEN=1, rewrite) tests/data/golden/<name>. */
void md_fx_check_golden(const char *name, const char *actual_raw)
{
	size_t nl = strlen(name);
	bool text = nl > 4 && strcmp(name + nl - 4, ".txt") == 0;
	char *masked = text ? md_fx_mask(actual_raw) : NULL;
	const char *actual = masked ? masked : actual_raw;
	const char *data = getenv("MD_TESTDATA");
	char path[4096];
	snprintf(path, sizeof(path), "%s/golden/%s", data && *data ? data : "tests/data", name);
	const char *update = getenv("MD_UPDATE_GOLDEN");
	if (update && strcmp(update, "1") == 0) {
		FILE *f = fopen(path, "w");
		ck_assert_msg(f != NULL, "cannot write %s", path);
		fputs(actual, f);
		ck_assert_int_eq(fclose(f), 0);
		free(masked);
		return;
	}
	char *expected = md_fx_read_file(path);
	ck_assert_msg(expected != NULL, "golden file %s missing (MD_UPDATE_GOLDEN=1 writes it)", path);
	if (strcmp(expected, actual) != 0) {
		/* point at the first line that differs */
		int line = 1;
		const char *e = expected, *a = actual;
		while (*e && *e == *a) {
			if (*e == '\n')
				line++;
			e++;
			a++;
		}
		const char *el = strchr(e, '\n'), *al = strchr(a, '\n');
		ck_abort_msg("%s differs at line %d:\nexpected: %.*s\nactual:   %.*s\n"
			     "(review, then MD_UPDATE_GOLDEN=1 to accept)", path, line,
			     (int)(el ? el - e : (long)strlen(e)), e, (int)(al ? al - a : (long)strlen(a)), a);
	}
	free(expected);
	free(masked);
}

