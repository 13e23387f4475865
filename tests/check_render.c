/* Renderers: a hand-built report of a plausible service (glibc heap with two arenas, a big
 * mmapped chunk, thread stacks, libc, a shared ring buffer, a cgroup close to its limit) rendered
 * as text against a golden file and as JSON read back with the parser.
 * MD_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memdissect/report.h"
#include "tests.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define GiB (1024ULL * 1024 * 1024)

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

static void add_finding(struct md_report *r, const char *severity, uint64_t address, int group,
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
	ck_assert_ptr_null(md_node_set_u64(g, "live_bytes", 583 * MiB + 256 * MiB));
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
	ck_assert_ptr_null(md_node_append(arenas, arena_node(0, 0x7f1c5a1d9c80ULL, "main", "ok",
							     NULL, 0, 520 * MiB, 104 * MiB,
							     14 * MiB, 900 * KiB, 96 * MiB, 1)));
	ck_assert_ptr_null(md_node_append(arenas, arena_node(1, 0x7f1c04000020ULL, "thread",
							     "corrupt", heaps1, 2, 63 * MiB,
							     47 * MiB, 3 * MiB, 228 * KiB,
							     5 * MiB, 1)));
	ck_assert_ptr_null(md_node_set_u64(g, "findings", 3));
	return g;
}

/* The fixed fake report every test here renders. */
static void build_report(struct md_report *r)
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

	add_finding(r, "info", 0x7f1c2a000000, -1,
		    "mmapped chunk of 256 MiB (over the 128 KiB mmap threshold): returned to the "
		    "kernel as soon as it is freed");
	add_finding(r, "corrupt", 0x7f1c080a3f10, 1,
		    "chunk at 0x7f1c080a3f10 has size 0x3fffe0 past the heap end 0x7f1c0b600000; the "
		    "walk resumed at the top chunk");
	add_finding(r, "warning", 0x55d4c5b2a0f0, 0,
		    "fastbin 3 list cut after 100000 steps (cycle or corruption)");
	ck_assert_ptr_null(md_report_add_note(r, "glibc: tcache of thread %d not read: its TLS page "
					      "is swapped out", 48217));
	ck_assert_ptr_null(md_report_add_note(r, "3 pages moved to the class smaps implies"));
}

static char *render_text(const struct md_report *r, bool color, int width)
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

static char *render_json(const struct md_report *r, size_t *len_ret)
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

static char *read_file(const char *path)
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
static void check_golden(const char *name, const char *actual)
{
	const char *data = getenv("MD_TESTDATA");
	char path[4096];
	snprintf(path, sizeof(path), "%s/golden/%s", data && *data ? data : "tests/data", name);
	const char *update = getenv("MD_UPDATE_GOLDEN");
	if (update && strcmp(update, "1") == 0) {
		FILE *f = fopen(path, "w");
		ck_assert_msg(f != NULL, "cannot write %s", path);
		fputs(actual, f);
		ck_assert_int_eq(fclose(f), 0);
		return;
	}
	char *expected = read_file(path);
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
}

START_TEST(test_text_golden)
{
	struct md_report r;
	build_report(&r);
	char *text = render_text(&r, false, 100);
	check_golden("report.txt", text);
	/* the layout holds the width: no line is wider than asked */
	int line = 1;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		ck_assert_msg(l <= 100, "line %d is %zu columns wide: %.*s", line, l, (int)l, p);
		p += l + (nl ? 1 : 0);
		line++;
	}
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_text_content)
{
	struct md_report r;
	build_report(&r);
	char *text = render_text(&r, false, 100);
	/* the first section answers the question, with the exact figures of the table */
	ck_assert_ptr_nonnull(strstr(text, "Where did the memory go?\n  RSS 1.02 GiB = live heap 839 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "retained free 168 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "container limit is the constraint, not the RSS"));
	ck_assert_ptr_nonnull(strstr(text, "malloc_trim(0) would release 101 MiB now"));
	ck_assert_ptr_nonnull(strstr(text, "[heap] (glibc)"));
	ck_assert_ptr_nonnull(strstr(text, "corrupt"));
	ck_assert_ptr_nonnull(strstr(text, "tcache of thread 48217"));
	/* corrupt findings come first whatever the report's order */
	const char *corrupt = strstr(text, "corrupt glibc"), *warn = strstr(text, "warning glibc");
	const char *info = strstr(text, "info    glibc");
	ck_assert(corrupt && warn && info);
	ck_assert(corrupt < warn && warn < info);
	/* the zero-RSS guard pages are not among the top mappings */
	ck_assert_ptr_null(strstr(text, "---p"));
	free(text);

	/* no color unless asked; with color, ESC sequences */
	ck_assert_ptr_null(strchr((text = render_text(&r, false, 100)), '\033'));
	free(text);
	text = render_text(&r, true, 100);
	ck_assert_ptr_nonnull(strstr(text, "\033[32m"));
	ck_assert_ptr_nonnull(strstr(text, "\033[0m"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_text_widths_and_limits)
{
	struct md_report r;
	build_report(&r);
	/* more findings than shown */
	for (int i = 0; i < 25; i++)
		add_finding(&r, "info", 0x1000 * (uint64_t)i, -1, "filler");
	char *text = render_text(&r, false, 100);
	ck_assert_ptr_nonnull(strstr(text, "... and 8 more"));
	free(text);
	/* narrow and wide terminals still render everything */
	text = render_text(&r, false, 60);
	ck_assert_ptr_nonnull(strstr(text, "Notes"));
	free(text);
	text = render_text(&r, true, 240);
	ck_assert_ptr_nonnull(strstr(text, "/usr/lib/x86_64-linux-gnu/libc.so.6"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_text_empty_report)
{
	struct md_report r;
	md_report_init(&r);
	/* plugins append to the allocator array without creating it */
	ck_assert_int_eq(md_node_type(r.allocators), MD_NODE_ARRAY);
	ck_assert_uint_eq(md_node_count(r.allocators), 0);
	char *text = render_text(&r, false, 0);
	ck_assert_ptr_nonnull(strstr(text, "RSS 0 B = nothing resident"));
	free(text);
	md_report_deinit(&r);
	md_report_deinit(&r); /* twice is harmless */
}
END_TEST

START_TEST(test_text_allocator_defensive)
{
	/* odd allocator objects: missing keys, wrong types, jemalloc-style stats */
	struct md_report r;
	md_report_init(&r);
	struct md_node *a = md_node_object();
	ck_assert_ptr_null(md_node_append(r.allocators, a));
	ck_assert_ptr_null(md_node_set_u64(a, "version", 5));
	ck_assert_ptr_null(md_node_set(a, "arenas", md_node_string("not an array")));
	ck_assert_ptr_null(md_node_set(a, "mallinfo", md_node_u64(7)));
	struct md_node *j = md_node_object();
	ck_assert_ptr_null(md_node_append(r.allocators, j));
	ck_assert_ptr_null(md_node_set_string(j, "name", "jemalloc"));
	struct md_node *st = md_node_object();
	ck_assert_ptr_null(md_node_set(j, "stats", st));
	ck_assert_ptr_null(md_node_set_u64(st, "allocated", 3 * MiB));
	ck_assert_ptr_null(md_node_set_u64(st, "resident", 12 * MiB));
	ck_assert_ptr_null(md_node_set_u64(j, "purge_release_bytes", 4 * MiB));
	struct md_node *arenas = md_node_array();
	ck_assert_ptr_null(md_node_set(j, "arenas", arenas));
	ck_assert_ptr_null(md_node_append(arenas, md_node_null()));
	struct md_node *a0 = md_node_object();
	ck_assert_ptr_null(md_node_append(arenas, a0));
	ck_assert_ptr_null(md_node_set_u64(a0, "index", 0));
	ck_assert_ptr_null(md_node_append(r.allocators, md_node_u64(1)));
	char *text = render_text(&r, false, 100);
	ck_assert_ptr_nonnull(strstr(text, "Allocator ? 5"));
	ck_assert_ptr_nonnull(strstr(text, "Allocator jemalloc"));
	ck_assert_ptr_nonnull(strstr(text, "allocated 3.00 MiB"));
	ck_assert_ptr_nonnull(strstr(text, "would release 4.00 MiB now"));
	free(text);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_json_document)
{
	struct md_report r;
	build_report(&r);
	size_t len;
	char *json = render_json(&r, &len);
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(json[len - 1], '\n');
	check_golden("report.json", json);

	struct md_node *doc = NULL;
	struct md_error *err = md_node_parse_json(json, len, &doc);
	ck_assert_msg(err == NULL, "parse: %s", err ? err->message : "");
	ck_assert_uint_eq(md_node_get_u64(md_node_get(doc, "schema_version")), 1);
	ck_assert(!md_node_get_bool(md_node_get(doc, "partial")));
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "target.pid")), 48213);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "target.comm")), "order-svc");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "target.source")), "live");
	ck_assert_int_eq(md_node_type(md_node_path(doc, "target.pause_ms")), MD_NODE_DOUBLE);
	ck_assert_double_eq_tol(md_node_get_double(md_node_path(doc, "target.pause_ms")), 3.412, 1e-9);

	/* the invariant: classes add up to the RSS, overall and per region */
	uint64_t rss = md_node_get_u64(md_node_path(doc, "memory.rss_bytes"));
	ck_assert_uint_eq(rss, r.memory.rss_bytes);
	const struct md_node *classes = md_node_get(doc, "classes");
	ck_assert_uint_eq(md_node_count(classes), MD_CLASS_COUNT);
	uint64_t sum = 0;
	for (int c = 0; c < MD_CLASS_COUNT; c++) {
		const struct md_node *v = md_node_get(classes, md_class_name((enum md_class)c));
		ck_assert_ptr_nonnull(v);
		ck_assert_int_eq(md_node_type(v), MD_NODE_U64);
		sum += md_node_get_u64(v);
	}
	ck_assert_uint_eq(sum, rss);

	const struct md_node *regions = md_node_get(doc, "regions");
	ck_assert_uint_eq(md_node_count(regions), r.n_regions);
	uint64_t region_rss = 0;
	for (size_t i = 0; i < md_node_count(regions); i++) {
		const struct md_node *reg = md_node_at(regions, i);
		uint64_t s = 0;
		for (int c = 0; c < MD_CLASS_COUNT; c++)
			s += md_node_get_u64(md_node_path(reg, "classes") ?
					     md_node_get(md_node_get(reg, "classes"), md_class_name((enum md_class)c)) : NULL);
		ck_assert_uint_eq(s, md_node_get_u64(md_node_get(reg, "rss_bytes")));
		region_rss += s;
		const char *start = md_node_get_string(md_node_get(reg, "start"));
		ck_assert_ptr_nonnull(start);
		ck_assert(strncmp(start, "0x", 2) == 0);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(reg, "start")), r.regions[i].start);
		ck_assert_uint_eq(md_node_get_u64(md_node_get(reg, "end")), r.regions[i].end);
	}
	ck_assert_uint_eq(region_rss, rss);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.path")), "[heap]");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.kind")), "heap");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.allocator")), "glibc");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "regions.4.perms")), "rw-p");
	ck_assert_int_eq(md_node_type(md_node_path(doc, "regions.5.path")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_path(doc, "regions.0.allocator")), MD_NODE_NULL);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "regions.1.offset")), 0x2c000);

	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "system.mem_total_bytes")),
			  16003548 * KiB);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "cgroup.limit_bytes")), 2 * GiB);
	ck_assert(!md_node_get_bool(md_node_path(doc, "cgroup.unlimited")));
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "cgroup.version")), 2);
	ck_assert_uint_eq(md_node_get_u64(md_node_path(doc, "allocators.0.mallinfo.uordblks")),
			  591 * MiB);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "allocators.0.arenas.1.state")),
			 "corrupt");
	ck_assert_uint_eq(md_node_count(md_node_path(doc, "allocators.0.arenas.1.heaps")), 2);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "findings")), 3);
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "findings.1.address")), "0x7f1c080a3f10");
	ck_assert_str_eq(md_node_get_string(md_node_path(doc, "findings.1.severity")), "corrupt");
	ck_assert_int_eq(md_node_get_i64(md_node_path(doc, "findings.0.group")), -1);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "notes")), 2);
	md_node_destroy(doc);
	free(json);

	/* the document owns a copy: the report's allocator tree outlives it untouched */
	ck_assert_ptr_null(md_report_to_node(&r, &doc));
	md_node_destroy(doc);
	ck_assert_str_eq(md_node_get_string(md_node_path(r.allocators, "0.name")), "glibc");
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_json_nulls)
{
	struct md_report r;
	md_report_init(&r);
	r.target.pid = 1;
	md_node_destroy(r.allocators); /* as after an out-of-memory init */
	r.allocators = NULL;
	size_t len;
	char *json = render_json(&r, &len);
	struct md_node *doc = NULL;
	ck_assert_ptr_null(md_node_parse_json(json, len, &doc));
	ck_assert_int_eq(md_node_type(md_node_get(doc, "system")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_get(doc, "cgroup")), MD_NODE_NULL);
	ck_assert_int_eq(md_node_type(md_node_get(doc, "allocators")), MD_NODE_ARRAY);
	ck_assert_int_eq(md_node_type(md_node_path(doc, "target.exe")), MD_NODE_NULL);
	ck_assert_uint_eq(md_node_count(md_node_get(doc, "regions")), 0);
	md_node_destroy(doc);
	free(json);

	/* an unlimited cgroup: no number pretending to be a limit */
	r.cgroup.valid = true;
	r.cgroup.version = 1;
	r.cgroup.limit_bytes = UINT64_MAX;
	r.cgroup.usage_bytes = 5 * MiB;
	json = render_json(&r, &len);
	ck_assert_ptr_null(md_node_parse_json(json, len, &doc));
	ck_assert_int_eq(md_node_type(md_node_path(doc, "cgroup.limit_bytes")), MD_NODE_NULL);
	ck_assert(md_node_get_bool(md_node_path(doc, "cgroup.unlimited")));
	ck_assert_int_eq(md_node_type(md_node_path(doc, "cgroup.path")), MD_NODE_NULL);
	md_node_destroy(doc);
	free(json);
	md_report_deinit(&r);
}
END_TEST

START_TEST(test_format_bytes)
{
	static const struct {
		uint64_t bytes;
		const char *text;
	} cases[] = {
		{ 0, "0 B" },
		{ 512, "512 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.00 KiB" },
		{ 12 * KiB, "12.0 KiB" },
		{ 210 * MiB, "210 MiB" },
		{ 3 * GiB / 2, "1.50 GiB" },
		{ 10 * KiB - 1, "10.0 KiB" },  /* 9.999 rounds to 10.0, not "10.00" */
		{ 100 * KiB - 1, "100 KiB" },
		{ 1024 * KiB - 1, "1.00 MiB" }, /* not "1024 KiB" */
		{ 1023 * KiB, "1023 KiB" },
		{ UINT64_MAX, "16.0 EiB" },
	};
	char buf[16];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(md_format_bytes(cases[i].bytes, buf, sizeof(buf)), cases[i].text);
}
END_TEST

START_TEST(test_class_names)
{
	const char *names[] = { "live", "free", "metadata", "stack", "file", "shared", "anon_other" };
	for (int c = 0; c < MD_CLASS_COUNT; c++)
		ck_assert_str_eq(md_class_name((enum md_class)c), names[c]);
	ck_assert_str_eq(md_class_name(MD_CLASS_COUNT), "unknown");
}
END_TEST

Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("render");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_text_golden);
	tcase_add_test(tc, test_text_content);
	tcase_add_test(tc, test_text_widths_and_limits);
	tcase_add_test(tc, test_text_empty_report);
	tcase_add_test(tc, test_text_allocator_defensive);
	tcase_add_test(tc, test_json_document);
	tcase_add_test(tc, test_json_nulls);
	tcase_add_test(tc, test_format_bytes);
	tcase_add_test(tc, test_class_names);
	suite_add_tcase(s, tc);
	return s;
}
