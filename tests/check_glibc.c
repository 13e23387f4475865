/* The glibc plugin against processes that print glibc's own mallinfo2() (tests/targets/
 * glibc_truth.c): the JSON "mallinfo" must equal it byte for byte, the classes must still sum
 * to the RSS, and the predicted malloc_trim(0) release must match the RSS drop the target
 * measures when told to trim. glibc_corrupt.c damages its own heap: the report must name the
 * damaged chunks, memdissect must finish in bounded time and leave the process unharmed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests.h"

/* The layout table is plain code of the plugin: compiled in here to check it directly. */
#include "../plugins/glibc/layout.c"

#include "live.h"
#include "target_impl.h"

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

/* No finding, every arena "ok" (the main arena "unused" when the program never allocated). */
static void check_healthy(struct md_node *glibc, const char *mode, bool main_unused)
{
	ck_assert_msg(md_test_json_u64(glibc, "findings") == 0, "%s: %llu findings on a healthy heap", mode,
		      (unsigned long long)md_test_json_u64(glibc, "findings"));
	struct md_node *arenas = md_node_get(glibc, "arenas");
	ck_assert_msg(md_node_count(arenas) >= 1, "%s: no arenas", mode);
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		const char *st = md_node_get_string(md_node_get(md_node_at(arenas, i), "state"));
		const char *want = i == 0 && main_unused ? "unused" : "ok";
		ck_assert_msg(st && strcmp(st, want) == 0, "%s: arena %zu is %s, expected %s", mode, i, st ? st : "?",
			      want);
	}
	ck_assert(md_node_get_bool(md_node_get(glibc, "consistent")));
}

/* Sums of a "histogram" array's column. */
static uint64_t hist_sum(struct md_node *hist, const char *col)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < md_node_count(hist); i++)
		sum += md_node_get_u64(md_node_get(md_node_at(hist, i), col));
	return sum;
}

/* Row shape: power-of-two classes from 16 B, size_to inclusive, the last one open-ended. */
static void check_hist_rows(struct md_node *hist, const char *mode)
{
	ck_assert_msg(md_node_type(hist) == MD_NODE_ARRAY, "%s: no histogram array", mode);
	uint64_t prev_from = 0;
	for (size_t i = 0; i < md_node_count(hist); i++) {
		struct md_node *r = md_node_at(hist, i);
		uint64_t from = md_node_get_u64(md_node_get(r, "size_from")), to = md_node_get_u64(md_node_get(r, "size_to"));
		ck_assert_msg(from >= 16 && (from & (from - 1)) == 0 && from > prev_from, "%s: class from %llu", mode,
			      (unsigned long long)from);
		if (from < (1ULL << 20))
			ck_assert_msg(to == 2 * from - 1, "%s: class %llu..%llu", mode, (unsigned long long)from,
				      (unsigned long long)to);
		else
			ck_assert_msg(to >= from, "%s: last class %llu..%llu", mode, (unsigned long long)from,
				      (unsigned long long)to);
		ck_assert_msg(md_node_get_u64(md_node_get(r, "live_count")) + md_node_get_u64(md_node_get(r, "free_count")) +
				      md_node_get_u64(md_node_get(r, "cached_count")) > 0,
			      "%s: empty class %llu listed", mode, (unsigned long long)from);
		prev_from = from;
	}
}

/* Each arena's histogram adds up to its own chunk counters, and the allocator's live column
 * equals what the target says it holds ("hist.<k>.live_count/bytes", when it printed them). */
static void check_histogram(struct md_node *glibc, const struct md_test_proc *p, const char *mode)
{
	struct md_node *arenas = md_node_get(glibc, "arenas");
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		struct md_node *a = md_node_at(arenas, i);
		struct md_node *hist = md_node_get(a, "histogram");
		check_hist_rows(hist, mode);
		ck_assert_uint_eq(hist_sum(hist, "live_count"), md_test_json_u64(a, "in_use_chunks"));
		ck_assert_uint_eq(hist_sum(hist, "live_bytes"), md_test_json_u64(a, "live_bytes") + md_test_json_u64(a, "overhead_bytes"));
		ck_assert_uint_eq(hist_sum(hist, "free_count"), md_test_json_u64(a, "binned_chunks"));
		ck_assert_uint_eq(hist_sum(hist, "free_bytes"), md_test_json_u64(a, "binned_bytes"));
		ck_assert_uint_eq(hist_sum(hist, "cached_count"), md_test_json_u64(a, "tcache_chunks") + md_test_json_u64(a, "fastbin_chunks"));
		ck_assert_uint_eq(hist_sum(hist, "cached_bytes"), md_test_json_u64(a, "tcache_bytes") + md_test_json_u64(a, "fastbin_bytes"));
	}
	struct md_node *all = md_node_get(glibc, "histogram");
	check_hist_rows(all, mode);
	unsigned long long dummy;
	if (!md_test_truth_u64(p, "hist.0.live_count", &dummy))
		return;
	for (unsigned k = 0; k < 17; k++) {
		char key[64];
		snprintf(key, sizeof(key), "hist.%u.live_count", k);
		unsigned long long want_n = md_test_truth(p, key);
		snprintf(key, sizeof(key), "hist.%u.live_bytes", k);
		unsigned long long want_b = md_test_truth(p, key);
		uint64_t got_n = 0, got_b = 0;
		for (size_t i = 0; i < md_node_count(all); i++) {
			struct md_node *r = md_node_at(all, i);
			if (md_node_get_u64(md_node_get(r, "size_from")) == (16ULL << k)) {
				got_n = md_node_get_u64(md_node_get(r, "live_count"));
				got_b = md_node_get_u64(md_node_get(r, "live_bytes"));
			}
		}
		ck_assert_msg(got_n == want_n && got_b == want_b,
			      "%s: class %llu: %llu live chunks (%llu bytes), the target holds %llu (%llu bytes)", mode,
			      16ULL << k, (unsigned long long)got_n, (unsigned long long)got_b, want_n, want_b);
	}
}

static const char *const truth_modes[] = { "empty", "sizes", "kth", "random", "threads", "mmap", "tcache", "trimmed", "fill" };

START_TEST(test_mallinfo_and_trim)
{
	const char *mode = truth_modes[_i];
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert_msg(md_test_proc_start(&p, "glibc_truth", args), "cannot start glibc_truth %s", mode);
	struct md_node *report = md_test_attach_ok(p.pid, mode);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert_msg(glibc != NULL, "%s: no glibc allocator in the report", mode);
	md_test_check_mallinfo(glibc, &p, "", mode);
	md_test_check_classes_sum(report);
	check_healthy(glibc, mode, strcmp(mode, "empty") == 0);
	check_histogram(glibc, &p, mode);

	if (strcmp(mode, "threads") == 0) {
		/* glibc creates arenas up to 8 per CPU (arena_get2's narenas_limit): 8 threads get
		 * one each on 2+ CPUs. */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		size_t want = cpus >= 2 ? 9 : 8;
		struct md_node *arenas = md_node_get(glibc, "arenas");
		ck_assert_uint_eq(md_node_count(arenas), want);
		size_t multi = 0;
		for (size_t i = 0; i < md_node_count(arenas); i++)
			if (md_node_count(md_node_get(md_node_at(arenas, i), "heaps")) >= 2)
				multi++;
		ck_assert_msg(multi >= 1, "no arena spans several heaps");
		struct md_node *tc = md_node_get(glibc, "tcaches");
		size_t valid = 0;
		for (size_t i = 0; i < md_node_count(tc); i++)
			valid += md_node_get_bool(md_node_get(md_node_at(tc, i), "valid"));
		ck_assert_msg(valid == 9, "%zu valid tcaches, expected 9", valid);
	}
	if (strcmp(mode, "mmap") == 0 || strcmp(mode, "sizes") == 0) {
		ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.count"), md_test_truth(&p, "mallinfo.hblks"));
		ck_assert_uint_eq(md_test_json_u64(glibc, "mmapped_chunks.bytes"), md_test_truth(&p, "mallinfo.hblkhd"));
	}
	if (strcmp(mode, "tcache") == 0) {
		ck_assert_uint_gt(md_test_json_u64(glibc, "arenas.0.tcache_chunks"), 50);
		ck_assert_uint_gt(md_test_json_u64(glibc, "arenas.0.fastbin_chunks"), 500);
	}
	uint64_t predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
	md_node_destroy(report);

	md_test_trim_and_compare(&p, predicted, mode);
	md_test_proc_stop(&p);
}
END_TEST

/* The walk again after malloc_trim: pages released inside free chunks read as zeros. */
START_TEST(test_after_trim)
{
	const char *mode = truth_modes[_i];
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	struct md_node *report = md_test_attach_ok(p.pid, mode);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	uint64_t predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
	md_node_destroy(report);
	md_test_trim_and_compare(&p, predicted, mode);

	report = md_test_attach_ok(p.pid, mode);
	glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	md_test_check_mallinfo(glibc, &p, "after.", mode);
	md_test_check_classes_sum(report);
	check_healthy(glibc, mode, false);
	check_histogram(glibc, &p, mode);
	/* Nothing is left for a second trim to release but what top keeps below one page. */
	ck_assert_uint_eq(md_test_json_u64(glibc, "trim_release_bytes"), 0);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* glibc_corrupt: every mode is attached twice, healthy and then damaged. The damaged report
 * must name a damaged address with its rule, in bounded time, and keep the rest intact: classes
 * still sum to the RSS, and every arena the damage did not touch has exactly the figures it had
 * in the healthy report (which matched glibc's own mallinfo2). */
static const struct {
	const char *name;
	bool arena_corrupt; /* some arena must be "corrupt" (else the finding is about mp_ or mmapped chunks) */
} corrupt_modes[] = {
	{ "cyclic-bin", true },	      { "cyclic-smallbin", true },   { "cyclic-largebin", true },
	{ "nextsize-broken", true },  { "pointer-outside", true },   { "cyclic-tcache", true },
	{ "tcache-count-high", true }, { "tcache-count-low", true }, { "tcache-count-huge", true },
	{ "tcache-unmapped", true },  { "tcache-protnone", true },   { "bad-fastbin-fd", true },
	{ "fastbin-outside", true },  { "size-past-end", true },     { "top-past-heap", true },
	{ "ring-self", true },	      { "ring-garbage", true },      { "ring-unmapped", true },
	{ "heap-prev-cycle", true },  { "nmmaps-lying", false },     { "mmapped-huge", false },
};

static const char *const arena_figures[] = {
	"system_mem", "top", "top_size", "live_bytes", "free_bytes", "cached_bytes", "metadata_bytes", "overhead_bytes",
	"unknown_bytes", "in_use_chunks", "binned_chunks", "binned_bytes", "fastbin_chunks", "fastbin_bytes",
	"tcache_chunks", "tcache_bytes", "trim_release_range_bytes", "mallinfo.arena", "mallinfo.ordblks",
	"mallinfo.smblks", "mallinfo.hblks", "mallinfo.hblkhd", "mallinfo.fsmblks", "mallinfo.uordblks",
	"mallinfo.fordblks", "mallinfo.keepcost",
};

static struct md_node *arena_at(struct md_node *glibc, uint64_t address)
{
	struct md_node *arenas = md_node_get(glibc, "arenas");
	for (size_t i = 0; i < md_node_count(arenas); i++)
		if (md_node_get_u64(md_node_get(md_node_at(arenas, i), "address")) == address)
			return md_node_at(arenas, i);
	return NULL;
}

/* The same figures, heap list and histogram for an arena in both reports. */
static void check_arena_unchanged(struct md_node *before, struct md_node *after, const char *mode, const char *role)
{
	for (size_t k = 0; k < sizeof(arena_figures) / sizeof(arena_figures[0]); k++) {
		uint64_t b = md_test_json_u64(before, arena_figures[k]), a = md_test_json_u64(after, arena_figures[k]);
		ck_assert_msg(a == b, "%s: untouched %s arena: %s was %llu, now %llu", mode, role, arena_figures[k],
			      (unsigned long long)b, (unsigned long long)a);
	}
	struct md_node *hb = md_node_get(before, "heaps"), *ha = md_node_get(after, "heaps");
	ck_assert_msg(md_node_count(hb) == md_node_count(ha), "%s: untouched %s arena lost heaps", mode, role);
	struct md_node *xb = md_node_get(before, "histogram"), *xa = md_node_get(after, "histogram");
	ck_assert_msg(md_node_count(xb) == md_node_count(xa), "%s: untouched %s arena: histogram changed", mode, role);
	static const char *const cols[] = { "live_count", "live_bytes", "free_count", "free_bytes", "cached_count",
					    "cached_bytes" };
	for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
		ck_assert_msg(hist_sum(xb, cols[c]) == hist_sum(xa, cols[c]), "%s: untouched %s arena: histogram %s changed",
			      mode, role, cols[c]);
}

static void run_corrupt(int _i)
{
	const char *mode = corrupt_modes[_i].name;
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert_msg(md_test_proc_start(&p, "glibc_corrupt", args), "cannot start glibc_corrupt %s", mode);
	unsigned long long bystander = md_test_truth(&p, "arena.bystander"), big = 0;
	md_test_truth_u64(&p, "arena.big", &big);

	/* Healthy first: exact, and no finding. */
	struct md_node *clean = md_test_attach_ok(p.pid, mode);
	struct md_node *clean_glibc = md_test_allocator(clean, "glibc");
	ck_assert_msg(clean_glibc != NULL, "%s: no glibc allocator", mode);
	md_test_check_mallinfo(clean_glibc, &p, "", mode);
	check_healthy(clean_glibc, mode, false);
	md_test_check_classes_sum(clean);

	/* The damage: "bad 0x..." addresses a finding may name, "touched <arena>" lines. */
	ck_assert_int_eq(write(p.in_fd, "corrupt\n", 8), 8);
	uint64_t bad[16];
	size_t n_bad = 0;
	bool touched_main = false, touched_bystander = false, touched_big = false;
	for (;;) {
		char *line = md_test_proc_wait_line(&p, "", 30000);
		ck_assert_msg(line != NULL, "%s: target stopped talking", mode);
		bool done = strcmp(line, "corrupted") == 0;
		if (strncmp(line, "bad ", 4) == 0 && n_bad < 16)
			bad[n_bad++] = strtoull(line + 4, NULL, 0);
		touched_main |= strcmp(line, "touched main") == 0;
		touched_bystander |= strcmp(line, "touched bystander") == 0;
		touched_big |= strcmp(line, "touched big") == 0;
		ck_assert_msg(strncmp(line, "setup failed", 12) != 0, "%s: %s", mode, line);
		free(line);
		if (done)
			break;
	}
	ck_assert_msg(n_bad > 0, "%s: target named no damaged address", mode);

	double t0 = md_test_now_s();
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
	double took = md_test_now_s() - t0;
	ck_assert_msg(report != NULL, "%s: no report (status %d)", mode, status);
	ck_assert_msg(status == 0 || status == 10, "%s: memdissect exited with %d", mode, status);
	ck_assert_msg(took < (md_test_sanitized() ? 15.0 : 5.0), "%s: took %.1f s", mode, took);
	md_test_check_classes_sum(report);

	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert_msg(glibc != NULL, "%s: no glibc allocator", mode);
	ck_assert_msg(md_test_json_u64(glibc, "findings") > 0, "%s: no findings", mode);
	bool corrupt_arena = false;
	struct md_node *arenas = md_node_get(glibc, "arenas");
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		const char *st = md_node_get_string(md_node_get(md_node_at(arenas, i), "state"));
		corrupt_arena |= st && strcmp(st, "corrupt") == 0;
	}
	if (corrupt_modes[_i].arena_corrupt)
		ck_assert_msg(corrupt_arena, "%s: no arena marked corrupt", mode);

	struct md_node *findings = md_node_get(report, "findings");
	bool named = false;
	for (size_t i = 0; i < md_node_count(findings) && !named; i++) {
		struct md_node *f = md_node_at(findings, i);
		const char *alloc = md_node_get_string(md_node_get(f, "allocator"));
		if (!alloc || strcmp(alloc, "glibc") != 0)
			continue;
		uint64_t addr = md_node_get_u64(md_node_get(f, "address"));
		for (size_t k = 0; k < n_bad; k++)
			named |= addr == bad[k];
	}
	if (!named) {
		for (size_t i = 0; i < md_node_count(findings); i++) {
			struct md_node *f = md_node_at(findings, i);
			fprintf(stderr, "%s finding at 0x%llx: %s\n", mode,
				(unsigned long long)md_node_get_u64(md_node_get(f, "address")),
				md_node_get_string(md_node_get(f, "message")));
		}
	}
	ck_assert_msg(named, "%s: no finding names a damaged address (first 0x%llx)", mode, (unsigned long long)bad[0]);

	/* Untouched arenas: the same figures as before the damage. */
	struct md_node *clean_arenas = md_node_get(clean_glibc, "arenas");
	for (size_t i = 0; i < md_node_count(clean_arenas); i++) {
		struct md_node *before = md_node_at(clean_arenas, i);
		uint64_t address = md_node_get_u64(md_node_get(before, "address"));
		const char *kind = md_node_get_string(md_node_get(before, "kind"));
		bool is_main = kind && strcmp(kind, "main") == 0;
		const char *role = is_main ? "main" : address == bystander ? "bystander" : address == big ? "big" : "other";
		if ((is_main && touched_main) || (address == bystander && touched_bystander) || (address == big && touched_big))
			continue;
		struct md_node *after = arena_at(glibc, address);
		ck_assert_msg(after != NULL, "%s: untouched %s arena 0x%llx missing after the damage", mode, role,
			      (unsigned long long)address);
		check_arena_unchanged(before, after, mode, role);
	}
	md_node_destroy(clean);
	md_node_destroy(report);

	/* The process is unharmed: it still answers and exits normally. */
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st == 'S' || st == 'R', "%s: target state %c after the attach", mode, st ? st : '?');
	ck_assert_int_eq(write(p.in_fd, "quit\n", 5), 5);
	int wstatus = 0;
	pid_t w;
	while ((w = waitpid(p.pid, &wstatus, 0)) < 0 && errno == EINTR)
		;
	ck_assert_int_eq(w, p.pid);
	ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "%s: target did not exit cleanly", mode);
	p.pid = -1;
	md_test_proc_stop(&p);
}

START_TEST(test_corrupt)
{
	run_corrupt(_i);
}
END_TEST

/* The same damage met by four reader threads (MEMDISSECT_GLIBC_READERS) while the walk parses:
 * the finding, no hang, no harm. */
static const int readers_corrupt_modes[] = { 0, 4, 11, 13, 18 }; /* cyclic-bin, pointer-outside, bad-fastbin-fd,
								   size-past-end, heap-prev-cycle */

START_TEST(test_corrupt_readers)
{
	setenv("MEMDISSECT_GLIBC_READERS", "4", 1);
	run_corrupt(readers_corrupt_modes[_i]);
}
END_TEST

/* Large chunks: the walk reads a probe per chunk header, not the heap. The figures stay exact
 * (mallinfo2, the histogram, malloc_trim's release), the bytes read are a small part of the heap,
 * and every way of reading gives the same report: the readers alone (sequential), the default,
 * four readers. */
START_TEST(test_sparse_large)
{
	struct md_test_proc p;
	const char *args[] = { "large", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	uint64_t arena = md_test_truth(&p, "mallinfo.arena");
	ck_assert_uint_gt(arena, 40u << 20);
	static const char *const ways[] = { "sparse default", "sparse 4 readers", "sequential" };
	uint64_t live[3] = { 0 }, free_b[3] = { 0 }, predicted = 0;
	for (int k = 0; k < 3; k++) {
		if (k == 1)
			setenv("MEMDISSECT_GLIBC_READERS", "4", 1);
		if (k == 2)
			setenv("MEMDISSECT_GLIBC_STREAM", "0", 1);
		struct md_node *report = md_test_attach_ok(p.pid, ways[k]);
		struct md_node *glibc = md_test_allocator(report, "glibc");
		ck_assert(glibc != NULL);
		md_test_check_mallinfo(glibc, &p, "", ways[k]);
		md_test_check_classes_sum(report);
		check_healthy(glibc, ways[k], false);
		check_histogram(glibc, &p, ways[k]);
		uint64_t read = md_test_json_u64(glibc, "heap_read_bytes");
		if (k < 2)
			ck_assert_msg(read < arena / 64, "%s: %llu bytes read of a %llu-byte heap", ways[k],
				      (unsigned long long)read, (unsigned long long)arena);
		live[k] = md_test_json_u64(glibc, "arenas.0.live_bytes");
		free_b[k] = md_test_json_u64(glibc, "arenas.0.free_bytes");
		if (k == 0)
			predicted = md_test_json_u64(glibc, "trim_release_bytes") / 4096;
		else
			ck_assert_uint_eq(md_test_json_u64(glibc, "trim_release_bytes") / 4096, predicted);
		md_node_destroy(report);
	}
	ck_assert(live[0] == live[1] && live[1] == live[2] && free_b[0] == free_b[1] && free_b[1] == free_b[2]);
	md_test_trim_and_compare(&p, predicted, "large");
	md_test_proc_stop(&p);
}
END_TEST

/* The built-in table against this machine's DWARF (libc6-dbg is installed here), read through
 * the target API exactly as the plugin would. A libc whose build-id is in the plugin's
 * "verified" list skips DWARF at run time: it must match here, and the report must say so. */
START_TEST(test_layout_matches_dwarf)
{
	struct md_test_proc p;
	const char *args[] = { "kth", NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	struct md_live_options opts = { .debuginfo_disabled = false };
	struct md_target *t = NULL;
	struct md_error *err = md_live_open(p.pid, &opts, &t);
	ck_assert_msg(!err, "md_live_open: %s", err ? err->message : "");
	const struct md_module *mod = md_target_find_module(t, "libc.so.6");
	ck_assert(mod != NULL);
	struct glibc_layout dwarf, builtin;
	err = glibc_layout_from_dwarf(t, mod, 2, 36, &dwarf);
	ck_assert_msg(!err, "no DWARF layout (is libc6-dbg installed?): %s", err ? err->message : "");
	ck_assert(dwarf.from_dwarf);
	ck_assert(glibc_layout_builtin(2, 36, &builtin));
	char diff[512];
	unsigned mismatches = glibc_layout_compare(&builtin, &dwarf, diff, sizeof(diff));
	ck_assert_msg(mismatches == 0, "built-in layout differs from DWARF: %s", diff);
	ck_assert_uint_eq(builtin.tc_count_size, dwarf.tc_count_size);
	bool verified = glibc_layout_dwarf_verified(mod->build_id, 2, 36);
	char build_id[128];
	snprintf(build_id, sizeof(build_id), "%s", mod->build_id ? mod->build_id : "");
	md_target_destroy(t);

	struct md_node *report = md_test_attach_ok(p.pid, "kth");
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert(glibc != NULL);
	const char *src = md_node_get_string(md_node_path(glibc, "layout.source"));
	struct md_node *match = md_node_path(glibc, "layout.builtin_matches_dwarf");
	ck_assert_msg(match && md_node_get_bool(match), "report: built-in layout differs from DWARF");
	if (verified) {
		ck_assert_str_eq(src, "builtin");
		ck_assert_str_eq(md_node_get_string(md_node_path(glibc, "layout.dwarf_verified_build_id")), build_id);
		ck_assert_str_eq(md_node_get_string(md_node_get(glibc, "symbols")), "symtab");
	} else {
		ck_assert_str_eq(src, "dwarf");
		ck_assert_str_eq(md_node_get_string(md_node_get(glibc, "symbols")), "dwarf");
	}
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* glibc's malloc never used: a program that never allocates (sleeper) and one whose
 * allocations all go to jemalloc. Their main_arena is all zero or freshly initialised: that is
 * "unused", with glibc's own mallinfo2() answer for it (ordblks 1, zero elsewhere: the "empty"
 * truth mode checks this against glibc), not 64 findings of a corrupt arena. */
static const char *const unused_targets[] = { "sleeper", "jemalloc_truth" };

START_TEST(test_unused_main_arena)
{
	const char *name = unused_targets[_i];
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, name, NULL), "cannot start %s", name);
	struct md_node *report = md_test_attach_ok(p.pid, name);
	struct md_node *glibc = md_test_allocator(report, "glibc");
	ck_assert_msg(glibc != NULL, "%s: no glibc allocator in the report", name);
	check_healthy(glibc, name, true);
	md_test_check_classes_sum(report);
	ck_assert_uint_eq(md_node_count(md_node_get(glibc, "arenas")), 1);
	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "mallinfo.%s", mallinfo_fields[i]);
		ck_assert_msg(md_test_json_u64(glibc, path) == (strcmp(mallinfo_fields[i], "ordblks") == 0 ? 1 : 0), "%s: %s is %llu",
			      name, path, (unsigned long long)md_test_json_u64(glibc, path));
	}
	ck_assert_uint_eq(md_node_count(md_node_path(glibc, "arenas.0.heaps")), 0);
	struct md_node *findings = md_node_get(report, "findings");
	for (size_t i = 0; i < md_node_count(findings); i++) {
		const char *alloc = md_node_get_string(md_node_get(md_node_at(findings, i), "allocator"));
		ck_assert_msg(!alloc || strcmp(alloc, "glibc") != 0, "%s: glibc finding %s", name,
			      md_node_get_string(md_node_get(md_node_at(findings, i), "message")));
	}
	md_node_destroy(report);
	md_test_proc_stop(&p);
}
END_TEST

/* The table's derived constants against the facts of docs/glibc.md §1. */
START_TEST(test_layout_table)
{
	struct glibc_layout l;
	ck_assert(!glibc_layout_builtin(2, 25, &l));
	ck_assert(!glibc_layout_builtin(2, GLIBC_MAX_MINOR + 1, &l));
	ck_assert(glibc_layout_builtin(2, 26, &l));
	ck_assert_uint_eq(glibc_first_heap_chunk_offset(&l), 0x8b0);
	ck_assert_uint_eq(glibc_tcache_struct_chunk_size(&l), 0x250);
	ck_assert_uint_eq(glibc_bin_header_offset(&l, 1), 0x58);
	ck_assert_uint_eq(l.mp_size, 0x70);
	ck_assert(glibc_layout_builtin(2, 27, &l));
	ck_assert_uint_eq(glibc_first_heap_chunk_offset(&l), 0x8c0);
	ck_assert_uint_eq(glibc_bin_header_offset(&l, 1), 0x60);
	ck_assert(glibc_layout_builtin(2, 30, &l));
	ck_assert_uint_eq(glibc_tcache_struct_chunk_size(&l), 0x290);
	ck_assert(glibc_layout_builtin(2, 35, &l));
	ck_assert_uint_eq(glibc_first_heap_chunk_offset(&l), 0x8d0);
	ck_assert_uint_eq(l.hi_size_of, 0x30);
	ck_assert_uint_eq(l.mp_size, 0x88);
	ck_assert_uint_eq(l.mp_sbrk_base, 0x60);
	ck_assert_uint_eq(l.mp_n_mmaps, 0x3c);
	ck_assert(l.safe_linking && l.key_kind == GLIBC_TCACHE_KEY_RANDOM);
	struct glibc_layout a, b;
	ck_assert(glibc_layout_builtin(2, 34, &a) && glibc_layout_builtin(2, 36, &b));
	char diff[512];
	ck_assert_uint_gt(glibc_layout_compare(&a, &b, diff, sizeof(diff)), 0);
	ck_assert_msg(strstr(diff, "hi_size_of 0x20/0x30") != NULL, "%s", diff);
	/* 2.41 changed no malloc structure (struct text of the glibc-2.40 and glibc-2.41 tags). */
	ck_assert(glibc_layout_builtin(2, 40, &a) && glibc_layout_builtin(2, 41, &b));
	ck_assert_uint_eq(glibc_layout_compare(&a, &b, diff, sizeof(diff)), 0);
}
END_TEST

/* Threads hammering malloc: the walk must wait for a quiet moment or say the arena was
 * mid-update, never call it corrupt. Single-threaded churn takes no lock at all. */
static const char *const churn_modes[] = { "churn", "churn1" };

START_TEST(test_churn)
{
	const char *mode = churn_modes[_i];
	struct md_test_proc p;
	const char *args[] = { mode, NULL };
	ck_assert(md_test_proc_start(&p, "glibc_truth", args));
	for (int round = 0; round < 3; round++) {
		int status = -1;
		struct md_node *report = md_test_attach_json(p.pid, NULL, &status);
		ck_assert_msg(report != NULL && (status == 0 || status == 10), "%s: status %d", mode, status);
		struct md_node *glibc = md_test_allocator(report, "glibc");
		ck_assert(glibc != NULL);
		md_test_check_classes_sum(report);
		bool consistent = md_node_get_bool(md_node_get(glibc, "consistent"));
		struct md_node *arenas = md_node_get(glibc, "arenas");
		for (size_t i = 0; i < md_node_count(arenas); i++) {
			const char *st = md_node_get_string(md_node_get(md_node_at(arenas, i), "state"));
			ck_assert_msg(st && strcmp(st, "corrupt") != 0, "%s: arena %zu called corrupt under churn", mode, i);
			if (consistent)
				ck_assert_str_eq(st, "ok");
		}
		md_node_destroy(report);
	}
	char st = md_test_proc_state(p.pid);
	ck_assert_msg(st == 'S' || st == 'R', "%s: target state %c", mode, st ? st : '?');
	md_test_proc_stop(&p);
}
END_TEST

Suite *glibc_suite(void)
{
	Suite *s = suite_create("glibc");
	TCase *unit = tcase_create("layout");
	tcase_add_test(unit, test_layout_table);
	suite_add_tcase(s, unit);

	TCase *tc = tcase_create("truth");
	tcase_set_timeout(tc, 180);
	tcase_add_loop_test(tc, test_mallinfo_and_trim, 0, (int)(sizeof(truth_modes) / sizeof(truth_modes[0])));
	tcase_add_loop_test(tc, test_after_trim, 2, 5); /* kth, random, threads */
	tcase_add_test(tc, test_layout_matches_dwarf);
	tcase_add_test(tc, test_sparse_large);
	tcase_add_loop_test(tc, test_unused_main_arena, 0, (int)(sizeof(unused_targets) / sizeof(unused_targets[0])));
	suite_add_tcase(s, tc);

	TCase *cc = tcase_create("corrupt");
	tcase_set_timeout(cc, 180);
	tcase_add_loop_test(cc, test_corrupt, 0, (int)(sizeof(corrupt_modes) / sizeof(corrupt_modes[0])));
	tcase_add_loop_test(cc, test_corrupt_readers, 0,
			    (int)(sizeof(readers_corrupt_modes) / sizeof(readers_corrupt_modes[0])));
	suite_add_tcase(s, cc);

	TCase *qc = tcase_create("churn");
	tcase_set_timeout(qc, 180);
	tcase_add_loop_test(qc, test_churn, 0, 2);
	suite_add_tcase(s, qc);
	return s;
}
