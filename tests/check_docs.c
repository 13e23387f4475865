/* The man page and the bash completion: memdissect(1) renders with man(1) without a warning;
 * every option the usage text names is in the page and every option of the page is in the usage
 * text; every option the command line accepts (src/main.c's option tables) is in the usage text;
 * the completion script completes commands, options, plugin names and process ids; the core
 * (src/, attach/) names no allocator. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procfs.h"
#include "tests.h"

static const char *tree(void)
{
	static char dir[4096];
	const char *data = getenv("MD_TESTDATA");
	snprintf(dir, sizeof(dir), "%s/../..", data ? data : "tests/data");
	return dir;
}

/* The distinct "--name" and "-o"-style options of text, as " --a --b ... " (sorted). */
static char *options_of(const char *text)
{
	char *names[512];
	int n = 0;
	for (const char *p = text; *p && n < 512; p++) {
		bool dash2 = p[0] == '-' && p[1] == '-' && p[2] >= 'a' && p[2] <= 'z';
		bool dash1 = p[0] == '-' && p[1] >= 'a' && p[1] <= 'z' && (p[2] == ',' || p[2] == ' ');
		bool start = p == text || !((p[-1] >= 'a' && p[-1] <= 'z') || p[-1] == '-');
		if (!start || !(dash2 || dash1))
			continue;
		size_t len = dash2 ? 2 : 1;
		while ((p[len] >= 'a' && p[len] <= 'z') || (p[len] == '-' && p[len + 1] >= 'a' && p[len + 1] <= 'z'))
			len++;
		char *name = strndup(p, len);
		bool dup = false;
		for (int i = 0; i < n && !dup; i++)
			dup = strcmp(names[i], name) == 0;
		if (dup)
			free(name);
		else
			names[n++] = name;
		p += len - 1;
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];
			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	size_t total = 2;
	for (int i = 0; i < n; i++)
		total += strlen(names[i]) + 1;
	char *out = calloc(1, total);
	strcpy(out, " ");
	for (int i = 0; i < n; i++) {
		strcat(out, names[i]);
		strcat(out, " ");
		free(names[i]);
	}
	return out;
}

START_TEST(test_man_page)
{
	char cmd[8400];
	snprintf(cmd, sizeof(cmd), "LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '%s/docs/memdissect.1' 2>&1 >/dev/null", tree());
	char *warnings = md_test_capture(cmd);
	ck_assert_msg(warnings && !*warnings, "man --warnings says:\n%s", warnings);
	free(warnings);
	snprintf(cmd, sizeof(cmd), "LC_ALL=C MANWIDTH=200 man -l '%s/docs/memdissect.1' 2>/dev/null | col -b", tree());
	char *page = md_test_capture(cmd);
	ck_assert_msg(page && strstr(page, "EXIT STATUS") && strstr(page, "ENVIRONMENT"), "the page did not render");
	const char *help_args[] = { "--help", NULL };
	char *help = NULL, *err = NULL;
	ck_assert_int_eq(md_test_run(help_args, &help, &err, 10000), 0);
	char *in_help = options_of(help), *in_page = options_of(page);
	ck_assert_msg(strcmp(in_help, in_page) == 0, "options differ:\n  --help:%s\n  page:  %s", in_help, in_page);
	/* What the parser accepts is all in the usage text. */
	char path[4200];
	snprintf(path, sizeof(path), "%s/src/main.c", tree());
	char *src = NULL;
	size_t len = 0;
	ck_assert(md_read_file(path, &src, &len) == NULL);
	unsigned accepted = 0;
	for (const char *p = strstr(src, "{ \""); p; p = strstr(p + 1, "{ \"")) {
		const char *q = strchr(p + 3, '"');
		if (!q || !strstr(q, "_argument"))
			continue;
		char opt[64];
		snprintf(opt, sizeof(opt), " --%.*s ", (int)(q - p - 3), p + 3);
		ck_assert_msg(strstr(in_help, opt), "the command line accepts%sbut --help does not name it", opt);
		accepted++;
	}
	ck_assert_msg(accepted > 20, "only %u options found in src/main.c", accepted);
	fprintf(stderr, "docs: %u accepted options, all in --help; --help and the man page name the same:%s\n", accepted,
		in_help);
	free(src);
	free(in_help);
	free(in_page);
	free(help);
	free(err);
	free(page);
}
END_TEST

/* What the completion offers for the words typed (the last is being completed). */
static char *complete(const char *words)
{
	char cmd[9000], exe_dir[4096];
	snprintf(exe_dir, sizeof(exe_dir), "%s", md_test_memdissect());
	char *slash = strrchr(exe_dir, '/');
	if (slash)
		*slash = 0;
	snprintf(cmd, sizeof(cmd),
		 "PATH='%s':$PATH bash -c 'source \"%s/scripts/completion/memdissect.bash\"; COMP_WORDS=(%s); "
		 "COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _memdissect; echo \" ${COMPREPLY[*]} \"' 2>&1",
		 exe_dir, tree(), words);
	return md_test_capture(cmd);
}

START_TEST(test_bash_completion)
{
	char *r = complete("memdissect at");
	ck_assert_msg(r && strstr(r, " attach "), "commands: %s", r);
	free(r);
	r = complete("memdissect watch --te");
	ck_assert_msg(r && strstr(r, " --textfile "), "watch options: %s", r);
	free(r);
	r = complete("memdissect attach --plugin \"\"");
	ck_assert_msg(r && strstr(r, " glibc ") && strstr(r, " jemalloc "), "plugin names: %s", r);
	free(r);
	char words[128], me[32];
	snprintf(me, sizeof(me), " %d ", (int)getpid());
	snprintf(words, sizeof(words), "memdissect attach %d", (int)getpid());
	r = complete(words);
	ck_assert_msg(r && strstr(r, me), "process ids: %s", r);
	free(r);
}
END_TEST

/* The core knows no allocator (issue 13): src/ and attach/ read only the standard figures of
 * include/memdissect/figures.h, so no allocator's name or key appears there, in code or comment.
 * What is allowed, and why:
 *   - src/known_allocators.c: the table of allocators and runtimes recognised when no plugin walks
 *     them; with no plugin there is no one else to name what is there (names only, no keys);
 *   - the OpenMetrics family names memdissect_arena_* and their label arena="N": published
 *     series names that dashboards and alerts use (src/openmetrics.c), kept for them.
 * The C library itself ("libc.so", the loader's TLS layout) is not an allocator and is allowed. */
static const char *const allocator_words[] = {
	"glibc", "jemalloc", "ptmalloc", "malloc_trim", "mallinfo", "arena", "tcmalloc", "mimalloc", "pymalloc",
	"obmalloc", "cpython", "musl", "mallocng", "gperftools", "purge", "trim", "curregs", "\"bins\"", "mallctl",
	"tcache", "fastbin", NULL,
};
static const char *const allowed_files[] = { "src/known_allocators.c", NULL };
static const char *const allowed_in_line[] = { "memdissect_arena_", "arena=\\\"", NULL };

/* Lines of one file that name an allocator, appended to report as "file:line: text". */
static unsigned allocator_lines(const char *rel, const char *text, char *report, size_t len)
{
	unsigned hits = 0;
	unsigned lineno = 1;
	for (const char *line = text; *line; lineno++) {
		const char *end = strchr(line, '\n');
		size_t ll = end ? (size_t)(end - line) : strlen(line);
		char *copy = strndup(line, ll);
		bool allowed = false;
		for (size_t k = 0; allowed_in_line[k]; k++)
			allowed |= strstr(copy, allowed_in_line[k]) != NULL;
		for (size_t w = 0; !allowed && allocator_words[w]; w++) {
			if (!strcasestr(copy, allocator_words[w]))
				continue;
			size_t used = strlen(report);
			snprintf(report + used, len - used, "  %s:%u: [%s] %.100s\n", rel, lineno, allocator_words[w], copy);
			hits++;
			break;
		}
		free(copy);
		line = end ? end + 1 : line + ll;
	}
	return hits;
}

START_TEST(test_core_names_no_allocator)
{
	static char report[16384];
	report[0] = 0;
	unsigned hits = 0, files = 0;
	const char *const dirs[] = { "src", "attach", NULL };
	for (size_t d = 0; dirs[d]; d++) {
		char dir[4200];
		snprintf(dir, sizeof(dir), "%s/%s", tree(), dirs[d]);
		DIR *dp = opendir(dir);
		ck_assert_msg(dp, "cannot open %s", dir);
		struct dirent *de;
		while ((de = readdir(dp))) {
			size_t nl = strlen(de->d_name);
			if (nl < 3 || (strcmp(de->d_name + nl - 2, ".c") != 0 && strcmp(de->d_name + nl - 2, ".h") != 0))
				continue;
			char rel[512], path[4800];
			snprintf(rel, sizeof(rel), "%s/%s", dirs[d], de->d_name);
			bool allowed = false;
			for (size_t k = 0; allowed_files[k]; k++)
				allowed |= strcmp(rel, allowed_files[k]) == 0;
			if (allowed)
				continue;
			snprintf(path, sizeof(path), "%s/%s", tree(), rel);
			char *text = NULL;
			size_t len = 0;
			ck_assert_msg(md_read_file(path, &text, &len) == NULL, "cannot read %s", path);
			hits += allocator_lines(rel, text, report, sizeof(report));
			files++;
			free(text);
		}
		closedir(dp);
	}
	ck_assert_msg(files > 40, "only %u files under src/ and attach/", files);
	ck_assert_msg(hits == 0, "%u lines of the core name an allocator (read the standard figures instead):\n%s", hits,
		      report);
	/* the test can fail: the allow-listed table does name them */
	char path[4200], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "%s/src/known_allocators.c", tree());
	ck_assert(md_read_file(path, &text, &len) == NULL);
	char probe[4096] = "";
	ck_assert_uint_gt(allocator_lines("src/known_allocators.c", text, probe, sizeof(probe)), 3);
	free(text);
	fprintf(stderr, "docs: %u files of src/ and attach/ name no allocator\n", files);
}
END_TEST

Suite *docs_suite(void)
{
	Suite *s = suite_create("docs");
	TCase *tc = tcase_create("man");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_man_page);
	tcase_add_test(tc, test_bash_completion);
	tcase_add_test(tc, test_core_names_no_allocator);
	suite_add_tcase(s, tc);
	return s;
}
