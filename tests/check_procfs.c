/* Tests of the /proc parsers: saved text from a real process (tests/data/procfs/real_*),
 * hand-made edge cases (edge.*), malformed input, and the live /proc of the test itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
#include "tests.h"

#define KB 1024ULL

static char *data_path(const char *name)
{
	const char *dir = getenv("MD_TESTDATA");
	if (!dir || !*dir)
		dir = "tests/data";
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/procfs/%s", dir, name), 0);
	return path;
}

static char *load(const char *name, size_t *len)
{
	char *path = data_path(name);
	char *buf = NULL;
	struct md_error *err = md_read_file(path, &buf, len);
	ck_assert_msg(!err, "%s: %s", path, err ? err->message : "");
	free(path);
	return buf;
}

static void assert_ok(struct md_error *err)
{
	ck_assert_msg(!err, "unexpected error: %s", err ? err->message : "");
}

/* The error is BAD_DATA and names the given line (0: no line number expected). */
static void assert_bad_data(struct md_error *err, size_t line, const char *what)
{
	ck_assert_msg(err, "%s: accepted", what);
	ck_assert_msg(err->code == MD_ERR_BAD_DATA, "%s: code %d (%s)", what, err->code, err->message);
	if (line) {
		char needle[32];
		snprintf(needle, sizeof(needle), "line %zu:", line);
		ck_assert_msg(strstr(err->message, needle), "%s: \"%s\" lacks \"%s\"", what,
			      err->message, needle);
	}
	md_error_destroy(err);
}

static const struct md_mapping *find_path(const struct md_mapping *maps, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (maps[i].path && strcmp(maps[i].path, path) == 0)
			return &maps[i];
	ck_abort_msg("no mapping of %s", path);
	return NULL;
}

static const struct md_mapping *find_start(const struct md_mapping *maps, size_t n, uint64_t start)
{
	for (size_t i = 0; i < n; i++)
		if (maps[i].start == start)
			return &maps[i];
	ck_abort_msg("no mapping at %#llx", (unsigned long long)start);
	return NULL;
}

static void assert_sorted(const struct md_mapping *maps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(maps[i].start, maps[i].end);
		if (i)
			ck_assert_uint_le(maps[i - 1].end, maps[i].start);
	}
}

/* ---- md_read_file ---- */

START_TEST(test_read_file_proc)
{
	char *buf;
	size_t len;
	assert_ok(md_read_file("/proc/self/maps", &buf, &len));
	ck_assert_uint_gt(len, 100);
	ck_assert_int_eq(buf[len], '\0');
	ck_assert_uint_eq(strlen(buf), len);
	ck_assert_ptr_nonnull(strstr(buf, "[stack]"));
	ck_assert_int_eq(buf[len - 1], '\n');
	free(buf);

	struct md_error *err = md_read_file("/nonexistent/file", &buf, &len);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_OS);
	ck_assert_int_eq(err->errnum, ENOENT);
	md_error_destroy(err);
}
END_TEST

/* A FIFO has st_size 0 like /proc files and hands out data in pieces: the whole stream, larger
 * than the first buffer, must come back intact. */
START_TEST(test_read_file_fifo_grows)
{
	char dir[] = "/tmp/md-procfs-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char fifo[64];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	const size_t total = 300 * 1000 + 7;
	pid_t child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		int fd = open(fifo, O_WRONLY);
		char chunk[1000];
		for (size_t off = 0; off < total;) {
			size_t n = total - off < sizeof(chunk) ? total - off : sizeof(chunk);
			for (size_t i = 0; i < n; i++)
				chunk[i] = (char)('a' + (off + i) % 26);
			if (write(fd, chunk, n) != (ssize_t)n)
				_exit(1);
			off += n;
		}
		_exit(0);
	}
	char *buf;
	size_t len;
	assert_ok(md_read_file(fifo, &buf, &len));
	int status;
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert_uint_eq(len, total);
	ck_assert_int_eq(buf[len], '\0');
	for (size_t i = 0; i < len; i++)
		if (buf[i] != (char)('a' + i % 26))
			ck_abort_msg("byte %zu differs", i);
	free(buf);
	unlink(fifo);
	rmdir(dir);
}
END_TEST

/* ---- maps / smaps on a real process (tests/data/procfs/real_edge.*, captured from a program
 * with a file named "with space\nand newline", a deleted shared file, memfd shared and private,
 * SysV shm, shared anonymous memory, MAP_HUGETLB memory and a second thread) ---- */

static void check_real_edge_maps(const struct md_mapping *maps, size_t n)
{
	ck_assert_uint_eq(n, 35);
	assert_sorted(maps, n);

	const struct md_mapping *m = find_path(maps, n, "/tmp/procfs/edgedir/with space\nand newline");
	ck_assert_int_eq(m->kind, MD_MAP_FILE);
	ck_assert(!m->deleted);
	ck_assert_uint_eq(m->start, 0x7f8c5930b000ULL);
	ck_assert_uint_eq(m->end, 0x7f8c5930d000ULL);
	ck_assert_uint_eq(m->perms, MD_PERM_READ);
	ck_assert_uint_eq(m->dev_major, 0xfe);
	ck_assert_uint_eq(m->dev_minor, 0);
	ck_assert_uint_eq(m->inode, 10953173);

	m = find_path(maps, n, "/tmp/procfs/edgedir/deleted file");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	ck_assert_uint_eq(m->perms, MD_PERM_READ | MD_PERM_WRITE | MD_PERM_SHARED);

	m = find_start(maps, n, 0x7f8c59308000ULL);
	ck_assert_str_eq(m->path, "/memfd:mfd test");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	m = find_start(maps, n, 0x7f8c59306000ULL); /* the same memfd, MAP_PRIVATE */
	ck_assert_str_eq(m->path, "/memfd:mfd test");
	ck_assert_int_eq(m->kind, MD_MAP_FILE);
	ck_assert_uint_eq(m->offset, 0x2000);

	m = find_path(maps, n, "/SYSV00000000");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	ck_assert_uint_eq(m->inode, 0);

	m = find_start(maps, n, 0x7f8c59113000ULL);
	ck_assert_str_eq(m->path, "/dev/zero");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);

	m = find_path(maps, n, "/anon_hugepage");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_ANON);

	ck_assert_int_eq(find_path(maps, n, "[heap]")->kind, MD_MAP_HEAP);
	ck_assert_int_eq(find_path(maps, n, "[stack]")->kind, MD_MAP_STACK);
	ck_assert_int_eq(find_path(maps, n, "[vdso]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[vvar]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[vvar_vclock]")->kind, MD_MAP_SPECIAL);
	m = find_path(maps, n, "[vsyscall]");
	ck_assert_int_eq(m->kind, MD_MAP_SPECIAL);
	ck_assert_uint_eq(m->start, 0xffffffffff600000ULL);
	ck_assert_uint_eq(m->perms, MD_PERM_EXEC);
	ck_assert_ptr_eq(m, &maps[n - 1]);

	m = find_start(maps, n, 0x7f8c585ff000ULL); /* thread stack guard: "0 " then newline */
	ck_assert_ptr_null(m->path);
	ck_assert_int_eq(m->kind, MD_MAP_ANON);
	ck_assert_uint_eq(m->perms, 0);
	ck_assert_int_eq(find_start(maps, n, 0x7f8c58600000ULL)->kind, MD_MAP_ANON);

	m = find_start(maps, n, 0x7f8c59146000ULL);
	ck_assert_str_eq(m->path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
	ck_assert_int_eq(m->kind, MD_MAP_FILE);
	ck_assert_uint_eq(m->perms, MD_PERM_READ | MD_PERM_EXEC);
	ck_assert_uint_eq(m->offset, 0x26000);
	for (size_t i = 0; i < n; i++)
		ck_assert_ptr_null(maps[i].pages);
}

START_TEST(test_maps_real)
{
	size_t len, n;
	char *text = load("real_edge.maps", &len);
	struct md_mapping *maps;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	check_real_edge_maps(maps, n);
	for (size_t i = 0; i < n; i++)
		ck_assert(!maps[i].smaps.valid);
	md_mappings_free(maps, n);
	free(text);
}
END_TEST

START_TEST(test_smaps_real)
{
	size_t len, n;
	char *text = load("real_edge.smaps", &len);
	struct md_mapping *maps;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	check_real_edge_maps(maps, n);

	uint64_t rss = 0, pss = 0, anon = 0, swap = 0;
	for (size_t i = 0; i < n; i++) {
		const struct md_smaps *s = &maps[i].smaps;
		ck_assert(s->valid);
		ck_assert_uint_eq(s->size, maps[i].end - maps[i].start);
		rss += s->rss;
		pss += s->pss;
		anon += s->anonymous;
		swap += s->swap;
	}

	const struct md_mapping *m = find_path(maps, n, "/anon_hugepage");
	ck_assert_uint_eq(m->smaps.kernel_page_size, 2048 * KB);
	ck_assert_uint_eq(m->smaps.private_hugetlb, 2048 * KB);
	ck_assert_uint_eq(m->smaps.shared_hugetlb, 0);
	ck_assert_uint_eq(m->smaps.rss, 0); /* hugetlb pages are not in Rss */
	ck_assert(m->smaps.hugetlb);
	ck_assert_str_eq(m->smaps.vmflags, "rd wr mr mw me de ht");

	m = find_path(maps, n, "/usr/lib/x86_64-linux-gnu/libc.so.6");
	ck_assert_uint_eq(m->smaps.kernel_page_size, 4 * KB);
	ck_assert(!m->smaps.hugetlb);
	ck_assert_str_eq(m->smaps.vmflags, "rd mr mw me");

	m = find_path(maps, n, "[heap]");
	ck_assert_str_eq(m->smaps.vmflags, "rd wr mr mw me ac");
	ck_assert_uint_eq(m->smaps.rss, 8 * KB);
	ck_assert_uint_eq(m->smaps.private_dirty, 8 * KB);
	ck_assert_uint_eq(m->smaps.anonymous, 8 * KB);
	ck_assert_uint_eq(m->smaps.referenced, 8 * KB);

	/* The rollup of the same moment holds the sums. */
	free(text);
	text = load("real_edge.smaps_rollup", &len);
	struct md_smaps roll;
	assert_ok(md_parse_smaps_rollup(text, len, &roll));
	ck_assert(roll.valid);
	ck_assert_uint_eq(roll.rss, 1380 * KB);
	ck_assert_uint_eq(rss, roll.rss);
	/* Pss is truncated to whole kB per mapping but summed exactly in the rollup. */
	ck_assert_uint_le(pss, roll.pss);
	ck_assert_uint_lt(roll.pss - pss, n * KB);
	ck_assert_uint_eq(anon, roll.anonymous);
	ck_assert_uint_eq(swap, roll.swap);
	ck_assert_uint_eq(roll.private_hugetlb, 2048 * KB);
	ck_assert_uint_eq(roll.shared_clean, 1220 * KB);
	ck_assert_uint_eq(roll.pss_dirty, 148 * KB);
	free(text);
	md_mappings_free(maps, n);
}
END_TEST

/* ---- hand-made edge cases ---- */

START_TEST(test_maps_edge)
{
	size_t len, n;
	char *text = load("edge.maps", &len);
	ck_assert_int_ne(text[len - 1], '\n'); /* the last line has no newline */
	struct md_mapping *maps;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	ck_assert_uint_eq(n, 22);
	assert_sorted(maps, n);

	const struct md_mapping *m = &maps[0];
	ck_assert_str_eq(m->path, "/opt/my app/bin/prog with  two  spaces");
	ck_assert_int_eq(m->kind, MD_MAP_FILE);
	ck_assert_uint_eq(m->dev_major, 8);
	ck_assert_uint_eq(m->dev_minor, 1);
	ck_assert_int_eq(maps[1].kind, MD_MAP_FILE);
	ck_assert_uint_eq(maps[1].offset, 0x1000);
	ck_assert_int_eq(maps[2].kind, MD_MAP_HEAP);

	ck_assert_ptr_null(maps[3].path); /* "0" and end of line, no blank */
	ck_assert_int_eq(maps[3].kind, MD_MAP_ANON);
	ck_assert_ptr_null(maps[4].path); /* "0 " */
	ck_assert_int_eq(maps[4].kind, MD_MAP_ANON);
	ck_assert_uint_eq(maps[4].end - maps[4].start, 0x800000);

	m = find_path(maps, n, "[anon:my arena]");
	ck_assert_int_eq(m->kind, MD_MAP_ANON);
	ck_assert_int_eq(find_path(maps, n, "[anon_shmem:shared ring]")->kind, MD_MAP_SHARED);
	m = find_path(maps, n, "/dev/zero");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	m = find_path(maps, n, "/SYSV0000abcd");
	ck_assert(m->deleted);
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	m = find_start(maps, n, 0x7f000080d000ULL);
	ck_assert_str_eq(m->path, "/memfd:ring buf");
	ck_assert_int_eq(m->kind, MD_MAP_SHARED);
	m = find_start(maps, n, 0x7f000080f000ULL);
	ck_assert_str_eq(m->path, "/memfd:ring buf");
	ck_assert_int_eq(m->kind, MD_MAP_FILE);
	ck_assert_int_eq(find_path(maps, n, "/dev/shm/pulse-shm-1")->kind, MD_MAP_SHARED);

	/* \012 \011 \040 \134 are decoded; other backslashes are left alone. */
	m = find_start(maps, n, 0x7f0000812000ULL);
	ck_assert_str_eq(m->path, "/tmp/a\nb\tc d\\e");
	ck_assert(!m->deleted);
	m = find_start(maps, n, 0x7f0000813000ULL);
	ck_assert_str_eq(m->path, "/tmp/odd\\name\\777\\");
	ck_assert(m->deleted);
	m = find_start(maps, n, 0x7f0000814000ULL);
	ck_assert_str_eq(m->path, "/tmp/gone"); /* " (deleted)" written with an escaped space */
	ck_assert(m->deleted);

	m = find_path(maps, n, "/anon_hugepage");
	ck_assert_int_eq(m->kind, MD_MAP_ANON);
	ck_assert_uint_eq(m->dev_minor, 0xf);
	ck_assert_int_eq(find_path(maps, n, "[uprobes]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[vvar]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[vvar_vclock]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[vdso]")->kind, MD_MAP_SPECIAL);
	ck_assert_int_eq(find_path(maps, n, "[stack]")->kind, MD_MAP_STACK);
	ck_assert_str_eq(maps[n - 1].path, "[vsyscall]");
	ck_assert_int_eq(maps[n - 1].kind, MD_MAP_SPECIAL);
	md_mappings_free(maps, n);
	free(text);
}
END_TEST

START_TEST(test_smaps_edge)
{
	size_t len, n;
	char *text = load("edge.smaps", &len);
	struct md_mapping *maps;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	ck_assert_uint_eq(n, 3);

	const struct md_smaps *s = &maps[0].smaps;
	ck_assert_str_eq(maps[0].path, "/dev/hugepages/my huge file");
	ck_assert_int_eq(maps[0].kind, MD_MAP_SHARED);
	ck_assert(s->valid);
	ck_assert(s->hugetlb);
	ck_assert_uint_eq(s->size, 4096 * KB);
	ck_assert_uint_eq(s->kernel_page_size, 2048 * KB);
	ck_assert_uint_eq(s->shared_hugetlb, 2048 * KB);
	ck_assert_uint_eq(s->private_hugetlb, 2048 * KB);
	ck_assert_uint_eq(s->rss, 0);
	ck_assert_uint_eq(s->pss_dirty, 0); /* absent key stays 0 */
	ck_assert_str_eq(s->vmflags, "rd wr sh mr mw me ms de ht");

	s = &maps[1].smaps;
	ck_assert_ptr_null(maps[1].path);
	ck_assert_int_eq(maps[1].kind, MD_MAP_ANON);
	ck_assert(!s->hugetlb); /* "hg" is THP advice, not hugetlb */
	ck_assert_uint_eq(s->kernel_page_size, 4 * KB);
	ck_assert_uint_eq(s->rss, 2048 * KB);
	ck_assert_uint_eq(s->pss, 2048 * KB);
	ck_assert_uint_eq(s->pss_dirty, 2048 * KB);
	ck_assert_uint_eq(s->private_dirty, 2048 * KB);
	ck_assert_uint_eq(s->anonymous, 2048 * KB);
	ck_assert_uint_eq(s->lazy_free, 8 * KB);
	ck_assert_uint_eq(s->anon_huge_pages, 2048 * KB);
	ck_assert_uint_eq(s->swap, 12 * KB);
	ck_assert_uint_eq(s->swap_pss, 6 * KB);
	ck_assert_uint_eq(s->locked, 2048 * KB);
	ck_assert_str_eq(s->vmflags, "rd wr mr mw me ac lo hg");

	/* Only VmFlags follows the last header, and the text ends without a newline. */
	s = &maps[2].smaps;
	ck_assert(s->valid);
	ck_assert(!s->hugetlb); /* "htx" is not "ht" */
	ck_assert_str_eq(s->vmflags, "rd mr mw me htx");
	ck_assert_uint_eq(s->rss, 0);
	ck_assert_int_eq(maps[2].kind, MD_MAP_FILE);
	md_mappings_free(maps, n);
	free(text);
}
END_TEST

START_TEST(test_maps_empty_and_unsorted)
{
	struct md_mapping *maps = (void *)1;
	size_t n = 99;
	assert_ok(md_parse_maps("", 0, &maps, &n));
	ck_assert_uint_eq(n, 0);
	md_mappings_free(maps, n);

	/* Not what the kernel writes, but harmless: sorted on the way out. */
	const char *t = "3000-4000 rw-p 0 00:00 0\n1000-2000 r--p 0 00:00 0 [heap]\n";
	assert_ok(md_parse_maps(t, strlen(t), &maps, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(maps[0].start, 0x1000);
	ck_assert_str_eq(maps[0].path, "[heap]");
	ck_assert_uint_eq(maps[1].start, 0x3000);
	md_mappings_free(maps, n);

	/* The length bounds the text: what follows is not parsed. */
	t = "1000-2000 r--p 0 00:00 0 /a\nGARBAGE";
	assert_ok(md_parse_maps(t, strlen(t) - 7, &maps, &n));
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(maps[0].path, "/a");
	md_mappings_free(maps, n);
}
END_TEST

static const struct {
	const char *text;
	size_t line;
} bad_maps[] = {
	{ "zzz-2000 r--p 00000000 00:00 0\n", 1 },
	{ "1000-2000 r--p 0 00:00 0\n2000-3000 r--x 0 00:00 0\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\n2000-3000 rw 0 00:00 0\n", 2 },
	{ "2000-1000 r--p 0 00:00 0\n", 1 },
	{ "1000-1000 r--p 0 00:00 0\n", 1 },
	{ "1001-2000 r--p 0 00:00 0\n", 1 },
	{ "1000-2000 r--p 0 00:00 0\n3000-10000000000000000000 r--p 0 00:00 0\n", 2 },
	{ "1000-3000 r--p 0 00:00 0\n2000-4000 r--p 0 00:00 0\n", 2 },
	{ "Rss:     4 kB\n", 1 },
	{ "1000-2000 r--p 0 00:00 0\nRss: 4 MB\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\nRss: 4\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\nSize: x kB\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\nRss: 99999999999999999999 kB\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\nSwap: 18014398509481984 kB\n", 2 }, /* 2^54 kB overflows bytes */
	{ "1000-2000 r-", 1 },
	{ "1000-2000", 1 },
	{ "1000-2000 r--p", 1 },
	{ "1000-2000 r--p 0", 1 },
	{ "1000-2000 r--p 0 00:00", 1 },
	{ "1000-2000 r--p 0 00:00 ", 1 },
	{ "1000-2000 r--p 0 00:00 x /a", 1 },
	{ "1000-2000 r--p 0 0000 0 /a", 1 },
	{ "1000-2000 r--p 0 100000000:0 0 /a", 1 },
	{ "1000-2000 r--p 0 00:00 12ab /a", 1 },
	{ "1000-2000 r--p 0 00:00 0\n\n3000-4000 r--p 0 00:00 0\n", 2 },
	{ "1000-2000 r--p 0 00:00 0\n 3000-4000 r--p 0 00:00 0\n", 2 },
};

START_TEST(test_maps_malformed)
{
	for (size_t i = 0; i < sizeof(bad_maps) / sizeof(bad_maps[0]); i++) {
		struct md_mapping *maps = NULL;
		size_t n = 0;
		struct md_error *err = md_parse_maps(bad_maps[i].text, strlen(bad_maps[i].text), &maps, &n);
		char what[64];
		snprintf(what, sizeof(what), "bad_maps[%zu]", i);
		ck_assert_ptr_null(maps); /* out-params untouched on failure */
		assert_bad_data(err, bad_maps[i].line, what);
	}

	/* A NUL byte inside a line. */
	static const char with_nul[] = "1000-2000 r--p 0 00:00 0 /a\n2000-3000 r--p 0 00:00 0 /b\0c\n";
	struct md_mapping *maps = NULL;
	size_t n = 0;
	assert_bad_data(md_parse_maps(with_nul, sizeof(with_nul) - 1, &maps, &n), 2, "NUL");

	/* Unsorted and overlapping: found after sorting. */
	const char *t = "5000-6000 r--p 0 00:00 0\n1000-5800 r--p 0 00:00 0\n";
	assert_bad_data(md_parse_maps(t, strlen(t), &maps, &n), 0, "overlap after sort");
}
END_TEST

/* Tens of thousands of mappings (a big process): must stay linear. */
START_TEST(test_maps_many)
{
	const size_t count = 100000;
	size_t cap = count * 200, len = 0;
	char *text = malloc(cap);
	ck_assert_ptr_nonnull(text);
	for (size_t i = 0; i < count; i++) {
		uint64_t start = 0x7f0000000000ULL + i * 0x3000;
		len += (size_t)snprintf(text + len, cap - len,
					"%llx-%llx rw-p 00000000 00:00 0 \nSize: 8 kB\nRss: 4 kB\nVmFlags: rd wr\n",
					(unsigned long long)start, (unsigned long long)start + 0x2000);
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct md_mapping *maps;
	size_t n;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_uint_eq(n, count);
	ck_assert_uint_eq(maps[count - 1].start, 0x7f0000000000ULL + (count - 1) * 0x3000);
	ck_assert_uint_eq(maps[count / 2].smaps.rss, 4 * KB);
	/* ~0.05 s here; quadratic work would take minutes. Generous for ASan and a busy box. */
	ck_assert_msg(secs < 10.0, "parsing %zu mappings took %.2f s", count, secs);
	md_mappings_free(maps, n);
	free(text);
}
END_TEST

/* ---- smaps_rollup ---- */

START_TEST(test_rollup_malformed)
{
	struct md_smaps s;
	assert_bad_data(md_parse_smaps_rollup("", 0, &s), 0, "empty rollup");
	const char *t = "1000-2000 ---p 00000000 00:00 0 [rollup]\n";
	assert_bad_data(md_parse_smaps_rollup(t, strlen(t), &s), 0, "header only");
	t = "1000-2000 ---p 00000000 00:00 0 [rollup]\nRss: 4 kB\n1000-2000 ---p 0 00:00 0\n";
	assert_bad_data(md_parse_smaps_rollup(t, strlen(t), &s), 3, "second header");
	t = "garbage\nRss: 4 kB\n";
	assert_bad_data(md_parse_smaps_rollup(t, strlen(t), &s), 1, "bad header");
	t = "1000-2000 ---p 00000000 00:00 0 [rollup]\nPss: 4 kB\nRss: -4 kB\n";
	assert_bad_data(md_parse_smaps_rollup(t, strlen(t), &s), 3, "negative");

	t = "Rss: 8 kB\nPss_Anon: 4 kB\nPss: 6 kB"; /* no header, no final newline: fine */
	assert_ok(md_parse_smaps_rollup(t, strlen(t), &s));
	ck_assert(s.valid);
	ck_assert_uint_eq(s.rss, 8 * KB);
	ck_assert_uint_eq(s.pss, 6 * KB);
}
END_TEST

/* Read a whole file into buf (already faulted in) without allocating: reading must not change
 * the very figures being read. Raw system calls, so that a sanitizer's interceptors stay out,
 * and no ck_assert: in fork mode each passing assertion sends a message through malloc.
 * Returns the length, or -1 (errno set, or EFBIG when cap is too small). */
static ssize_t read_prefaulted(const char *path, char *buf, size_t cap)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		if (len == cap) {
			errno = EFBIG;
			len = (size_t)-1;
			break;
		}
		ssize_t n = syscall(SYS_read, fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				len = (size_t)-1;
			break;
		}
		len += (size_t)n;
	}
	syscall(SYS_close, fd);
	return (ssize_t)len;
}

/* Σ Rss of /proc/self/smaps == smaps_rollup Rss when both are read at the same moment. Both are
 * read into buffers faulted in beforehand and parsed only afterwards; a retry covers whatever
 * else may still fault a page in between (a sanitizer's bookkeeping): a parser that drops or
 * misreads a mapping fails every attempt. */
START_TEST(test_self_smaps_sum_matches_rollup)
{
	const size_t smaps_cap = 16 << 20, rollup_cap = 64 << 10;
	char *smaps_text = malloc(smaps_cap), *rollup_text = malloc(rollup_cap);
	ck_assert(smaps_text && rollup_text);
	memset(smaps_text, 1, smaps_cap);
	memset(rollup_text, 1, rollup_cap);
	uint64_t sum = 0, rollup_rss = 0;
	size_t n_maps = 0;
	int attempt;
	for (attempt = 0; attempt < 10; attempt++) {
		ssize_t smaps_len = read_prefaulted("/proc/self/smaps", smaps_text, smaps_cap);
		ssize_t rollup_len = read_prefaulted("/proc/self/smaps_rollup", rollup_text, rollup_cap);
		ck_assert_msg(smaps_len > 0 && rollup_len > 0, "reading smaps: %s", strerror(errno));
		struct md_mapping *maps;
		assert_ok(md_parse_maps(smaps_text, (size_t)smaps_len, &maps, &n_maps));
		struct md_smaps roll;
		assert_ok(md_parse_smaps_rollup(rollup_text, (size_t)rollup_len, &roll));
		sum = 0;
		for (size_t i = 0; i < n_maps; i++) {
			ck_assert(maps[i].smaps.valid);
			sum += maps[i].smaps.rss;
		}
		rollup_rss = roll.rss;
		assert_sorted(maps, n_maps);
		md_mappings_free(maps, n_maps);
		if (sum == rollup_rss)
			break;
	}
	free(smaps_text);
	free(rollup_text);
	ck_assert_uint_gt(n_maps, 10);
	ck_assert_uint_gt(sum, 0);
	ck_assert_msg(sum == rollup_rss, "sum of Rss %llu != rollup %llu after %d attempts",
		      (unsigned long long)sum, (unsigned long long)rollup_rss, attempt);
}
END_TEST

/* /proc/self/maps agrees with where our own things are. */
START_TEST(test_self_maps_kinds)
{
	char *text;
	size_t len, n;
	assert_ok(md_read_file("/proc/self/maps", &text, &len));
	struct md_mapping *maps;
	assert_ok(md_parse_maps(text, len, &maps, &n));
	int local;
	uint64_t stack_addr = (uint64_t)(uintptr_t)&local;
	uint64_t code_addr = (uint64_t)(uintptr_t)&md_parse_maps;
	bool stack_found = false, code_found = false;
	for (size_t i = 0; i < n; i++) {
		if (stack_addr >= maps[i].start && stack_addr < maps[i].end) {
			ck_assert_int_eq(maps[i].kind, MD_MAP_STACK);
			stack_found = true;
		}
		if (code_addr >= maps[i].start && code_addr < maps[i].end) {
			ck_assert_int_eq(maps[i].kind, MD_MAP_FILE);
			ck_assert(maps[i].perms & MD_PERM_EXEC);
			code_found = true;
		}
	}
	ck_assert(stack_found && code_found);
	md_mappings_free(maps, n);
	free(text);
}
END_TEST

/* ---- status ---- */

START_TEST(test_status_real)
{
	size_t len;
	char *text = load("real_edge.status", &len);
	struct md_proc_status st;
	assert_ok(md_parse_status(text, len, &st));
	free(text);
	ck_assert_str_eq(st.name, "edge");
	ck_assert_int_eq(st.state, 'S');
	ck_assert_int_eq(st.tgid, 6051);
	ck_assert_int_eq(st.pid, 6051);
	ck_assert_int_gt(st.ppid, 0);
	ck_assert_int_eq(st.tracer_pid, 0);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(st.uid[i], 0);
		ck_assert_uint_eq(st.gid[i], 0);
	}
	ck_assert_uint_eq(st.threads, 2);
	ck_assert_uint_eq(st.cap_eff, 0x000001fffeffffffULL);
	ck_assert_uint_eq(st.vm_rss, 1380 * KB);
	ck_assert(st.has_rss_split);
	ck_assert_uint_eq(st.rss_anon, 116 * KB);
	ck_assert_uint_eq(st.rss_file, 1248 * KB);
	ck_assert_uint_eq(st.rss_shmem, 16 * KB);
	ck_assert_uint_eq(st.rss_anon + st.rss_file + st.rss_shmem, st.vm_rss);
	ck_assert_uint_ge(st.vm_peak, st.vm_size);
	ck_assert_uint_gt(st.vm_size, st.vm_rss);
	ck_assert_uint_gt(st.vm_hwm, 0);
	ck_assert_uint_gt(st.vm_data, 0);
	ck_assert_uint_gt(st.vm_stk, 0);
	ck_assert_uint_gt(st.vm_exe, 0);
	ck_assert_uint_gt(st.vm_lib, 0);
	ck_assert_uint_gt(st.vm_pte, 0);
	ck_assert_uint_eq(st.vm_swap, 0);
	ck_assert_uint_eq(st.vm_lck, 0);
	ck_assert_uint_eq(st.vm_pin, 0);

	/* A kernel thread has no Vm lines at all. */
	text = load("real_kthread.status", &len);
	assert_ok(md_parse_status(text, len, &st));
	free(text);
	ck_assert_str_eq(st.name, "kthreadd");
	ck_assert_int_eq(st.pid, 2);
	ck_assert_int_eq(st.ppid, 0);
	ck_assert(!st.has_rss_split);
	ck_assert_uint_eq(st.vm_rss, 0);
	ck_assert_uint_eq(st.vm_size, 0);
}
END_TEST

START_TEST(test_status_edge)
{
	struct md_proc_status st;
	/* Names keep their blanks; seq_escape's \n and \\ are decoded; an unknown key is ignored. */
	const char *t = "Name:\t my \\\\ prog\\n\nState:\tt (tracing stop)\nPid:\t42\nTracerPid:\t7\n"
			"Uid:\t1000\t1001\t1002\t1003\nNewField:\twhatever\nCapEff:\t0000000000000000\n"
			"VmRSS:\t  1 kB";
	assert_ok(md_parse_status(t, strlen(t), &st));
	ck_assert_str_eq(st.name, " my \\ prog\n");
	ck_assert_int_eq(st.state, 't');
	ck_assert_int_eq(st.pid, 42);
	ck_assert_int_eq(st.tracer_pid, 7);
	ck_assert_uint_eq(st.uid[0], 1000);
	ck_assert_uint_eq(st.uid[3], 1003);
	ck_assert_uint_eq(st.vm_rss, KB);
	ck_assert(!st.has_rss_split);

	/* A long name is cut, not overflowed. */
	char longname[300] = "Name:\t";
	memset(longname + 6, 'x', 250);
	strcpy(longname + 256, "\nPid:\t1\n");
	assert_ok(md_parse_status(longname, strlen(longname), &st));
	ck_assert_uint_eq(strlen(st.name), sizeof(st.name) - 1);

	static const struct {
		const char *text;
		size_t line;
	} bad[] = {
		{ "Name:\tx\nPid:\t1\nUid:\t0\t0\t0\n", 3 },
		{ "Name:\tx\nPid:\t1\nUid:\t0\t0\t0\t0\t0\n", 3 },
		{ "Name:\tx\nPid:\tabc\n", 2 },
		{ "Name:\tx\nPid:\t99999999999\n", 2 },
		{ "Name:\tx\nPid:\t1\nVmRSS:\t12\n", 3 },
		{ "Name:\tx\nPid:\t1\nCapEff:\tzz\n", 3 },
		{ "Name:\tx\nPid:\t1\nThreads:\t-1\n", 3 },
		{ "Name:\tx\nPid:\t1\nState:\t\n", 3 },
		{ "Name:\tx\nno colon here\n", 2 },
		{ "Name:\tx\n", 0 },
		{ "Pid:\t1\n", 0 },
		{ "", 0 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[32];
		snprintf(what, sizeof(what), "bad status %zu", i);
		assert_bad_data(md_parse_status(bad[i].text, strlen(bad[i].text), &st), bad[i].line, what);
	}
}
END_TEST

START_TEST(test_status_self)
{
	char *text;
	size_t len;
	assert_ok(md_read_file("/proc/self/status", &text, &len));
	struct md_proc_status st;
	assert_ok(md_parse_status(text, len, &st));
	free(text);
	ck_assert_int_eq(st.pid, getpid());
	ck_assert_int_eq(st.tgid, getpid());
	ck_assert_int_eq(st.ppid, getppid());
	ck_assert_int_eq(st.state, 'R');
	ck_assert_uint_eq(st.uid[0], getuid());
	ck_assert_uint_eq(st.uid[1], geteuid());
	ck_assert_uint_eq(st.gid[0], getgid());
	ck_assert_uint_ge(st.threads, 1);
	ck_assert_uint_gt(st.vm_rss, 0);
	ck_assert(st.has_rss_split);
	ck_assert_uint_ge(st.vm_size, st.vm_rss);
}
END_TEST

/* ---- meminfo ---- */

START_TEST(test_meminfo)
{
	size_t len;
	char *text = load("real.meminfo", &len);
	struct md_meminfo mi;
	assert_ok(md_parse_meminfo(text, len, &mi));
	free(text);
	ck_assert_uint_eq(mi.mem_total, 24683656 * KB);
	ck_assert_uint_eq(mi.mem_free, 24279588 * KB);
	ck_assert_uint_eq(mi.mem_available, 24371356 * KB);
	ck_assert_uint_eq(mi.buffers, 2836 * KB);
	ck_assert_uint_eq(mi.cached, 280088 * KB);
	ck_assert_uint_eq(mi.swap_total, 0);
	ck_assert_uint_eq(mi.swap_free, 0);
	ck_assert_uint_eq(mi.shmem, 8972 * KB);

	/* Live: MemTotal is the same totalram figure sysinfo gives. */
	assert_ok(md_read_file("/proc/meminfo", &text, &len));
	assert_ok(md_parse_meminfo(text, len, &mi));
	free(text);
	ck_assert_uint_eq(mi.mem_total, (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE));
	ck_assert_uint_le(mi.mem_available, mi.mem_total);
	ck_assert_uint_le(mi.mem_free, mi.mem_total);

	const char *t = "MemFree: 1 kB\n";
	assert_bad_data(md_parse_meminfo(t, strlen(t), &mi), 0, "no MemTotal");
	t = "MemTotal: 10 kB\nCached: lots\n";
	assert_bad_data(md_parse_meminfo(t, strlen(t), &mi), 2, "bad Cached");
	t = "MemTotal: 10 kB\nHugePages_Total:       0\nbroken line\n";
	assert_bad_data(md_parse_meminfo(t, strlen(t), &mi), 3, "no colon");
}
END_TEST

/* ---- cgroups ---- */

START_TEST(test_proc_cgroup)
{
	static const struct {
		const char *file, *v2, *v1;
	} cases[] = {
		{ "real_hybrid.cgroup", "/", "/process_api/98bd375f2714b481fbd8a8db6a4538e3" },
		{ "v1_memory_cpu.cgroup", "/user.slice/user-1000.slice/session-2.scope", "/work/../job" },
		{ "v2_only.cgroup", "/system.slice/my:service.service", NULL },
		{ "v1_without_memory.cgroup", "/", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len;
		char *text = load(cases[i].file, &len);
		char *v2 = (char *)1, *v1 = (char *)1;
		assert_ok(md_parse_proc_cgroup(text, len, &v2, &v1));
		free(text);
		if (cases[i].v2)
			ck_assert_str_eq(v2, cases[i].v2);
		else
			ck_assert_ptr_null(v2);
		if (cases[i].v1)
			ck_assert_str_eq(v1, cases[i].v1);
		else
			ck_assert_ptr_null(v1);
		free(v1);
		free(v2);
	}
	char *v2 = NULL, *v1 = NULL;
	assert_ok(md_parse_proc_cgroup("", 0, &v2, &v1));
	ck_assert_ptr_null(v2);
	ck_assert_ptr_null(v1);
	const char *t = "0::/\nmemory:/x\n";
	assert_bad_data(md_parse_proc_cgroup(t, strlen(t), &v2, &v1), 2, "no id");
	t = "4:memory\n";
	assert_bad_data(md_parse_proc_cgroup(t, strlen(t), &v2, &v1), 1, "no path");
}
END_TEST

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void mkdir_p(const char *path)
{
	char *p = strdup(path);
	ck_assert_ptr_nonnull(p);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	ck_assert_msg(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
	free(p);
}

static void put_file(const char *dir, const char *name, const char *content)
{
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f, "%s: %s", path, strerror(errno));
	fputs(content, f);
	fclose(f);
	free(path);
}

static void del_file(const char *dir, const char *name)
{
	char *path = NULL;
	ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
	unlink(path);
	free(path);
}

/* md_cgroup_memory_read on a fake tree laid out for our own /proc/self/cgroup. */
START_TEST(test_cgroup_fake_tree)
{
	char root[] = "/tmp/md-cgroup-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(root));
	char *text;
	size_t len;
	assert_ok(md_read_file("/proc/self/cgroup", &text, &len));
	char *v2, *v1;
	assert_ok(md_parse_proc_cgroup(text, len, &v2, &v1));
	free(text);
	/* Under a cgroup namespace a group outside our view reads "/../x": not under any mount,
	 * so md_cgroup_memory_read ignores it and so does this test. */
	if (v1 && strstr(v1, "/..")) {
		free(v1);
		v1 = NULL;
	}
	if (v2 && strstr(v2, "/..")) {
		free(v2);
		v2 = NULL;
	}

	struct md_cgroup_memory cg;
	struct md_error *err = md_cgroup_memory_read(getpid(), root, &cg);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);

	char *v1_dir = NULL, *v2_dir = NULL, *unified_dir = NULL;
	if (v1) {
		ck_assert_int_ge(asprintf(&v1_dir, "%s/memory%s", root, v1), 0);
		mkdir_p(v1_dir);
		/* Garbage is not a figure. */
		put_file(v1_dir, "memory.usage_in_bytes", "lots\n");
		put_file(v1_dir, "memory.limit_in_bytes", "9223372036854771712\n");
		err = md_cgroup_memory_read(getpid(), root, &cg);
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
		md_error_destroy(err);

		put_file(v1_dir, "memory.usage_in_bytes", "12345678\n");
		assert_ok(md_cgroup_memory_read(getpid(), root, &cg));
		ck_assert_int_eq(cg.version, 1);
		ck_assert_str_eq(cg.path, v1);
		ck_assert_uint_eq(cg.usage_bytes, 12345678);
		ck_assert_uint_eq(cg.limit_bytes, UINT64_MAX); /* PAGE_COUNTER_MAX means none */
		md_cgroup_memory_deinit(&cg);
		ck_assert_ptr_null(cg.path);

		put_file(v1_dir, "memory.limit_in_bytes", "536870912\n");
		assert_ok(md_cgroup_memory_read(getpid(), root, &cg));
		ck_assert_uint_eq(cg.limit_bytes, 536870912);
		md_cgroup_memory_deinit(&cg);
	}
	if (v2) {
		/* A v2 group without memory files (this host's "0::/") does not hide v1. */
		ck_assert_int_ge(asprintf(&v2_dir, "%s%s", root, v2), 0);
		mkdir_p(v2_dir);
		put_file(v2_dir, "cgroup.procs", "1\n");
		err = md_cgroup_memory_read(getpid(), root, &cg);
		if (v1) {
			assert_ok(err);
			ck_assert_int_eq(cg.version, 1);
			md_cgroup_memory_deinit(&cg);
		} else {
			ck_assert_ptr_nonnull(err);
			ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
			md_error_destroy(err);
		}

		/* With figures, v2 is preferred. */
		put_file(v2_dir, "memory.current", "4096\n");
		put_file(v2_dir, "memory.max", "max\n");
		assert_ok(md_cgroup_memory_read(getpid(), root, &cg));
		ck_assert_int_eq(cg.version, 2);
		ck_assert_str_eq(cg.path, v2);
		ck_assert_uint_eq(cg.usage_bytes, 4096);
		ck_assert_uint_eq(cg.limit_bytes, UINT64_MAX);
		md_cgroup_memory_deinit(&cg);

		put_file(v2_dir, "memory.max", "1048576\n");
		assert_ok(md_cgroup_memory_read(getpid(), root, &cg));
		ck_assert_int_eq(cg.version, 2);
		ck_assert_uint_eq(cg.limit_bytes, 1048576);
		md_cgroup_memory_deinit(&cg);

		/* Hybrid layout: v2 mounted at <root>/unified. */
		del_file(v2_dir, "memory.current");
		del_file(v2_dir, "memory.max");
		ck_assert_int_ge(asprintf(&unified_dir, "%s/unified%s", root, v2), 0);
		mkdir_p(unified_dir);
		put_file(unified_dir, "memory.current", "8192\n");
		put_file(unified_dir, "memory.max", "65536\n");
		assert_ok(md_cgroup_memory_read(getpid(), root, &cg));
		ck_assert_int_eq(cg.version, 2);
		ck_assert_uint_eq(cg.usage_bytes, 8192);
		ck_assert_uint_eq(cg.limit_bytes, 65536);
		md_cgroup_memory_deinit(&cg);
	}
	free(v1_dir);
	free(v2_dir);
	free(unified_dir);
	free(v1);
	free(v2);
	ck_assert_int_eq(nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);

	err = md_cgroup_memory_read(INT32_MAX, "/sys/fs/cgroup", &cg);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NO_PROCESS);
	md_error_destroy(err);
}
END_TEST

/* The real hierarchy: either figures, or NOT_FOUND when this host gives us no memory cgroup. */
START_TEST(test_cgroup_live)
{
	struct md_cgroup_memory cg;
	struct md_error *err = md_cgroup_memory_read(getpid(), "/sys/fs/cgroup", &cg);
	if (err) {
		ck_assert_msg(err->code == MD_ERR_NOT_FOUND, "%s", err->message);
		md_error_destroy(err);
		return;
	}
	ck_assert(cg.version == 1 || cg.version == 2);
	ck_assert_ptr_nonnull(cg.path);
	ck_assert_int_eq(cg.path[0], '/');
	ck_assert_uint_gt(cg.usage_bytes, 0);
	ck_assert_uint_gt(cg.limit_bytes, 0);
	md_cgroup_memory_deinit(&cg);
}
END_TEST

Suite *procfs_suite(void)
{
	Suite *s = suite_create("procfs");
	TCase *tc = tcase_create("parse");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_read_file_proc);
	tcase_add_test(tc, test_read_file_fifo_grows);
	tcase_add_test(tc, test_maps_real);
	tcase_add_test(tc, test_smaps_real);
	tcase_add_test(tc, test_maps_edge);
	tcase_add_test(tc, test_smaps_edge);
	tcase_add_test(tc, test_maps_empty_and_unsorted);
	tcase_add_test(tc, test_maps_malformed);
	tcase_add_test(tc, test_maps_many);
	tcase_add_test(tc, test_rollup_malformed);
	tcase_add_test(tc, test_status_real);
	tcase_add_test(tc, test_status_edge);
	tcase_add_test(tc, test_meminfo);
	tcase_add_test(tc, test_proc_cgroup);
	suite_add_tcase(s, tc);

	TCase *live = tcase_create("live");
	tcase_set_timeout(live, 60);
	tcase_add_test(live, test_self_smaps_sum_matches_rollup);
	tcase_add_test(live, test_self_maps_kinds);
	tcase_add_test(live, test_status_self);
	tcase_add_test(live, test_cgroup_fake_tree);
	tcase_add_test(live, test_cgroup_live);
	suite_add_tcase(s, live);
	return s;
}
