/* Issue 11: the claim "glibc 2.26-2.41, with or without debug info" held by a test. For every
 * fixture glibc built from an upstream tag ($MD_GLIBC_FIXTURES/<version>, by default
 * ../shared/fixtures/glibc beside the checkout), tests/targets/glibc_versions_truth.c, linked
 * against it by the Makefile, builds a heap with several arenas, tcache entries, fastbin and
 * binned chunks and mmapped chunks, and prints its own mallinfo. memdissect attaches once with
 * the symbol table (libc.so.6: "symbols" "symtab") and once with the stripped copy and
 * --debuginfo=off ("heuristic"): every mallinfo field must be exact, no finding, every arena
 * "ok", and the predicted malloc_trim(0) release must equal the drop the target measures.
 * Without a process ("files"): the heuristic locator's analysis of each stripped libc against the
 * .symtab of the same build, the version it reads and the release markers it dates static
 * executables by.
 *
 * The locator is compiled in with its public names renamed, as in check_glibc_heuristic.c. */
#define glibc_locate_heuristic versions_locate_heuristic
#define glibc_detect_version versions_detect_version
#define glibc_locate_symbols versions_locate_symbols
#include "../plugins/glibc/locate_heuristic.c"
#undef glibc_locate_heuristic
#undef glibc_detect_version
#undef glibc_locate_symbols

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests.h"

/* The fixture versions (the distributions that ship them: ../shared/fixtures/glibc/README.md). */
static const char *const versions[] = {
	"2.26", "2.27", "2.28", "2.29", "2.30", "2.31", "2.32", "2.33", "2.34", "2.35", "2.39", "2.40", "2.41",
};
#define N_VERSIONS ((int)(sizeof(versions) / sizeof(versions[0])))

static const char *const mallinfo_fields[] = {
	"arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
};

static const char *fixtures_dir(void)
{
	const char *dir = getenv("MD_GLIBC_FIXTURES");
	return dir && *dir ? dir : "../shared/fixtures/glibc";
}

/* The word after "key " on a line of the target's truth text, copied into buf. */
static const char *truth_word(const struct md_test_proc *p, const char *key, char *buf, size_t len)
{
	size_t kl = strlen(key);
	for (const char *l = p->truth; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) != 0 || l[kl] != ' ')
			continue;
		size_t n = strcspn(l + kl + 1, "\n");
		snprintf(buf, len, "%.*s", (int)n, l + kl + 1);
		return buf;
	}
	return NULL;
}

/* The file behind the target's libc.so.6 mapping (realpath), from /proc/PID/maps. */
static bool mapped_libc(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[PATH_MAX + 128];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *name = strchr(line, '/');
		if (!name)
			continue;
		name[strcspn(name, "\n")] = 0;
		size_t n = strlen(name);
		if (n >= 10 && strcmp(name + n - 10, "/libc.so.6") == 0)
			found = realpath(name, buf) != NULL && strlen(buf) < len;
	}
	fclose(f);
	return found;
}

static long long line_number(const char *line, const char *key)
{
	size_t kl = strlen(key);
	ck_assert_msg(line && strncmp(line, key, kl) == 0 && line[kl] == ' ', "expected \"%s N\", got \"%s\"", key,
		      line ? line : "(nothing)");
	return strtoll(line + kl + 1, NULL, 10);
}

static void check_version(const char *version, bool stripped)
{
	SKIP_WITHOUT_PTRACE();
	const char *dir = fixtures_dir();
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		MD_SKIP("no glibc fixtures at %s (set MD_GLIBC_FIXTURES)", dir);
	char libc[PATH_MAX], want_libc[PATH_MAX], got_libc[PATH_MAX];
	snprintf(libc, sizeof(libc), "%s/%s/libc.so.6", dir, version);
	if (access(libc, R_OK) != 0)
		MD_SKIP("no fixture glibc %s at %s", version, libc);

	char what[64], program[64], path[PATH_MAX];
	snprintf(what, sizeof(what), "glibc %s %s", version, stripped ? "stripped" : "symtab");
	snprintf(program, sizeof(program), "glibcver/%s/%s", version, stripped ? "truth_stripped" : "truth");
	ck_assert(md_test_target_path(program, path, sizeof(path)));
	ck_assert_msg(access(path, X_OK) == 0, "%s: %s was not built (the Makefile builds it for each fixture in %s)",
		      what, path, dir);
	if (stripped) {
		char copy[PATH_MAX];
		snprintf(copy, sizeof(copy), "glibcver/%s/stripped/libc.so.6", version);
		ck_assert(md_test_target_path(copy, path, sizeof(path)));
		snprintf(libc, sizeof(libc), "%s", path);
	}
	ck_assert_msg(realpath(libc, want_libc), "%s: %s: %s", what, libc, strerror(errno));

	/* These builds have no debug files anywhere: a debuginfod server would only cost time. */
	unsetenv("DEBUGINFOD_URLS");
	struct md_test_proc p;
	ck_assert_msg(md_test_proc_start(&p, program, NULL), "%s: cannot start %s", what, program);
	char word[64];
	ck_assert_msg(truth_word(&p, "libc_version", word, sizeof(word)) && strcmp(word, version) == 0,
		      "%s: the program runs on glibc %s", what, truth_word(&p, "libc_version", word, sizeof(word)) ? word : "?");
	ck_assert_msg(mapped_libc(p.pid, got_libc, sizeof(got_libc)) && strcmp(got_libc, want_libc) == 0,
		      "%s: the program mapped %s, not %s", what, got_libc, want_libc);

	const char *symtab_args[] = { NULL }, *stripped_args[] = { "--debuginfo=off", NULL };
	int status = -1;
	struct md_node *report = md_test_attach_json(p.pid, stripped ? stripped_args : symtab_args, &status);
	ck_assert_msg(report && status == 0, "%s: memdissect attach exited %d", what, status);
	struct md_node *g = md_test_allocator(report, "glibc");
	ck_assert_msg(g != NULL, "%s: no glibc allocator in the report", what);
	const char *v = md_node_get_string(md_node_get(g, "version"));
	ck_assert_msg(v && strcmp(v, version) == 0, "%s: report says version %s", what, v ? v : "?");
	const char *symbols = md_node_get_string(md_node_get(g, "symbols"));
	const char *detail = md_node_get_string(md_node_get(g, "symbols_detail"));
	ck_assert_msg(symbols && strcmp(symbols, stripped ? "heuristic" : "symtab") == 0, "%s: symbols %s (%s)", what,
		      symbols ? symbols : "?", detail ? detail : "");
	if (stripped) {
		/* 2.34+ keys tcache entries with a random tcache_key, which the walker checks. */
		const char *key = strcmp(version, "2.34") >= 0 ? "tcache_key found" : "tcache_key n/a";
		ck_assert_msg(detail && strstr(detail, key), "%s: expected \"%s\" in %s", what, key, detail ? detail : "");
	}

	for (size_t i = 0; i < sizeof(mallinfo_fields) / sizeof(mallinfo_fields[0]); i++) {
		char key[64];
		snprintf(key, sizeof(key), "mallinfo.%s", mallinfo_fields[i]);
		unsigned long long truth = md_test_truth(&p, key);
		uint64_t got = md_test_json_u64(g, key);
		ck_assert_msg(got == truth, "%s: %s = %llu, glibc says %llu", what, key, (unsigned long long)got, truth);
	}
	ck_assert_msg(md_test_json_u64(g, "findings") == 0, "%s: %llu findings", what,
		      (unsigned long long)md_test_json_u64(g, "findings"));

	/* The heap has what the program built, in every arena: otherwise the exact figures above
	 * would prove less than they seem. */
	struct md_node *arenas = md_node_get(g, "arenas");
	ck_assert_uint_eq(md_node_count(arenas), md_test_truth(&p, "arenas"));
	for (size_t i = 0; i < md_node_count(arenas); i++) {
		struct md_node *a = md_node_at(arenas, i);
		const char *state = md_node_get_string(md_node_get(a, "state"));
		ck_assert_msg(state && strcmp(state, "ok") == 0, "%s: arena %zu is %s", what, i, state ? state : "?");
		static const char *const kinds[] = { "in_use_chunks", "binned_chunks", "fastbin_chunks", "tcache_chunks",
						     "trim_release_bytes" };
		for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			ck_assert_msg(md_test_json_u64(a, kinds[k]) > 0, "%s: arena %zu has no %s", what, i, kinds[k]);
	}
	ck_assert_uint_eq(md_test_json_u64(g, "mmapped_chunks.count"), md_test_truth(&p, "mmapped_chunks"));
	md_test_check_classes_sum(report);

	/* malloc_trim(0) in the target: the pages it gives back are anonymous; file pages the
	 * call itself may fault in do not blur the comparison. */
	uint64_t predicted = md_test_json_u64(g, "trim_release_pages");
	ck_assert_int_eq(write(p.in_fd, "trim\n", 5), 5);
	char *line = md_test_proc_wait_line(&p, "trim_drop_pages", 30000);
	long long dropped = line_number(line, "trim_drop_pages");
	free(line);
	line = md_test_proc_wait_line(&p, "trim_drop_anon_pages", 30000);
	long long dropped_anon = line_number(line, "trim_drop_anon_pages");
	free(line);
	fprintf(stderr, "%s: trim predicted %llu pages, the target's RSS dropped by %lld (anonymous %lld)\n", what,
		(unsigned long long)predicted, dropped, dropped_anon);
	ck_assert_msg(predicted > 0 && (long long)predicted == dropped_anon,
		      "%s: malloc_trim(0) predicted %llu pages, the anonymous RSS dropped by %lld (all RSS %lld)", what,
		      (unsigned long long)predicted, dropped_anon, dropped);
	md_node_destroy(report);
	md_test_proc_stop(&p);
}

/* $MD_GLIBC_FIXTURES/<version>/<name> into path (PATH_MAX bytes); false when it is not there. */
static bool fixture_file(const char *version, const char *name, char *path)
{
	snprintf(path, PATH_MAX, "%s/%s/%s", fixtures_dir(), version, name);
	return access(path, R_OK) == 0;
}

static void open_file(const char *path, struct hfile *h)
{
	struct md_error *err = hfile_open(path, h);
	ck_assert_msg(!err, "%s: %s", path, err ? err->message : "");
}

/* The file-level version sources on each fixture: __nptl_version (2.34+) or the banner give the
 * exact version; and each release marker (the strings that date a static executable, which
 * carries both libc's and the loader's strings) is in the build iff the build is at least the
 * marker's release. */
START_TEST(test_release_markers)
{
	const char *version = versions[_i];
	char libc[PATH_MAX], ld[PATH_MAX];
	if (!fixture_file(version, "libc.so.6.stripped", libc) || !fixture_file(version, "ld-linux-x86-64.so.2", ld))
		MD_SKIP("no fixture glibc %s in %s (set MD_GLIBC_FIXTURES)", version, fixtures_dir());
	int minor = atoi(version + 2);
	struct hfile hl, hd;
	open_file(libc, &hl);
	open_file(ld, &hd);
	struct hversion v;
	ck_assert_msg(hfile_version(&hl, &v), "glibc %s: no version in %s", version, libc);
	ck_assert_msg(v.major == 2 && v.minor == minor && !v.lower_bound, "glibc %s: the file says %s%d.%d (%s)", version,
		      v.lower_bound ? ">=" : "", v.major, v.minor, v.how);
	ck_assert_str_eq(v.how, minor >= 34 ? "__nptl_version" : "banner");
	for (size_t i = 0; i < sizeof(version_markers) / sizeof(version_markers[0]); i++) {
		const char *text = version_markers[i].text;
		bool present = hfile_contains_string(&hl, text) || hfile_contains_string(&hd, text);
		ck_assert_msg(present == (minor >= version_markers[i].minor), "glibc %s: marker \"%s\" (2.%d) is %s", version,
			      text, version_markers[i].minor, present ? "present" : "absent");
	}
	hfile_deinit(&hl);
	hfile_deinit(&hd);
}
END_TEST

/* What the heuristic locator reads from each stripped fixture libc, against the .symtab of the
 * same build (libc.so.6: same build-id): main_arena and mp_ from disassembly and the .data
 * images, the tcache TLS slot, tcache_key (2.34+) and global_max_fast (until 2.36: from 2.37 it
 * is a byte, which the disassembly does not look for, and 0x80 is assumed). */
START_TEST(test_heuristic_file)
{
	const char *version = versions[_i];
	char stripped[PATH_MAX], symtab[PATH_MAX];
	if (!fixture_file(version, "libc.so.6.stripped", stripped) || !fixture_file(version, "libc.so.6", symtab))
		MD_SKIP("no fixture glibc %s in %s (set MD_GLIBC_FIXTURES)", version, fixtures_dir());
	int minor = atoi(version + 2);
	enum { T_ARENA, T_MP, T_TCACHE, T_KEY, T_GMF, T_N };
	struct hsym truth[T_N] = {
		{ .name = "main_arena", .data = true },	 { .name = "mp_", .data = true },
		{ .name = "tcache", .data = true },	 { .name = "tcache_key", .data = true },
		{ .name = "global_max_fast", .data = true },
	};
	struct hfile h;
	open_file(symtab, &h);
	hfile_lookup(&h, truth, T_N);
	hfile_deinit(&h);
	ck_assert_msg(truth[T_ARENA].found && truth[T_MP].found && truth[T_TCACHE].found && truth[T_GMF].found &&
			      truth[T_KEY].found == (minor >= 34),
		      "glibc %s: %s lacks main_arena, mp_, tcache, global_max_fast or tcache_key", version, symtab);

	open_file(stripped, &h);
	ck_assert_msg(!h.symtab.present, "%s still has a .symtab", stripped);
	struct heur_file_result *r = calloc(1, sizeof(*r));
	ck_assert(r != NULL);
	analyze_file(&h, r);
	hfile_deinit(&h);
	ck_assert_msg(r->have_version && r->version.minor == minor, "glibc %s: the locator read version 2.%d", version,
		      r->version.minor);
	ck_assert_msg(r->arena.n && r->arena.c[0].vaddr == truth[T_ARENA].value &&
			      r->arena.c[0].sources == (SRC_DISASM | SRC_IMAGE),
		      "glibc %s: main_arena 0x%llx (sources %u), the .symtab says 0x%llx (%s)", version,
		      (unsigned long long)(r->arena.n ? r->arena.c[0].vaddr : 0), r->arena.n ? r->arena.c[0].sources : 0,
		      (unsigned long long)truth[T_ARENA].value, r->arena_log.buf);
	ck_assert_msg(r->mp.n && r->mp.c[0].vaddr == truth[T_MP].value && r->mp.c[0].sources == (SRC_DISASM | SRC_IMAGE),
		      "glibc %s: mp_ 0x%llx (sources %u), the .symtab says 0x%llx (%s)", version,
		      (unsigned long long)(r->mp.n ? r->mp.c[0].vaddr : 0), r->mp.n ? r->mp.c[0].sources : 0,
		      (unsigned long long)truth[T_MP].value, r->mp_log.buf);
	ck_assert_msg(r->tls.n && r->tls.c[0].kind == TLS_GOT_SLOT && r->tls.c[0].addend == truth[T_TCACHE].value,
		      "glibc %s: tcache TLS offset 0x%llx, the .symtab says 0x%llx (%s)", version,
		      (unsigned long long)(r->tls.n ? r->tls.c[0].addend : 0), (unsigned long long)truth[T_TCACHE].value,
		      r->tls_log.buf);
	uint64_t want_key = minor >= 34 ? truth[T_KEY].value : 0;
	ck_assert_msg(r->tcache_key == want_key, "glibc %s: tcache_key 0x%llx, expected 0x%llx (%s)", version,
		      (unsigned long long)r->tcache_key, (unsigned long long)want_key, r->key_log.buf);
	uint64_t want_gmf = minor < 37 ? truth[T_GMF].value : 0;
	ck_assert_msg(r->global_max_fast == want_gmf, "glibc %s: global_max_fast 0x%llx, expected 0x%llx", version,
		      (unsigned long long)r->global_max_fast, (unsigned long long)want_gmf);
	free(r);
}
END_TEST

START_TEST(test_symtab)
{
	check_version(versions[_i], false);
}
END_TEST

START_TEST(test_stripped)
{
	check_version(versions[_i], true);
}
END_TEST

Suite *glibc_versions_suite(void)
{
	Suite *s = suite_create("glibc_versions");
	TCase *tc = tcase_create("versions");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_symtab, 0, N_VERSIONS);
	tcase_add_loop_test(tc, test_stripped, 0, N_VERSIONS);
	suite_add_tcase(s, tc);
	tc = tcase_create("files");
	tcase_add_loop_test(tc, test_release_markers, 0, N_VERSIONS);
	tcase_add_loop_test(tc, test_heuristic_file, 0, N_VERSIONS);
	suite_add_tcase(s, tc);
	return s;
}
