/* The no-debug-info locator (plugins/glibc/locate_heuristic.c) against debug-info truth.
 *
 * The locator is compiled into this file with its public names renamed, so the suite tests
 * exactly that code and needs neither the glibc plugin's .so nor its other files.
 * Truth: the separate debug file's .symtab (libc6-dbg) for libc.so.6, the executable's own
 * .symtab for static programs, and md_target_symbol / md_target_tls_address on live targets.
 * Static programs are built by this suite from tests/targets/heur_threads.c into a temporary
 * directory (gcc -static, its stripped copy, and gcc -static-pie). */
#define glibc_locate_heuristic heurtest_locate_heuristic
#define glibc_detect_version heurtest_detect_version
#define glibc_locate_symbols heurtest_locate_symbols
#include "../plugins/glibc/locate_heuristic.c"
#undef glibc_locate_heuristic
#undef glibc_detect_version
#undef glibc_locate_symbols

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "live.h"
#include "target_impl.h"
#include "tests.h"

/* ---- helpers ----------------------------------------------------------------------------- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A symbol's st_value from a file's .symtab; false when absent. */
static bool symtab_value(const char *path, const char *name, uint64_t *value)
{
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	bool found = false;
	for (Elf_Scn *scn = elf ? elf_nextscn(elf, NULL) : NULL; scn && !found; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || !sh.sh_entsize)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		for (size_t i = 0; d && i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym sym;
			const char *n = gelf_getsym(d, (int)i, &sym) ? elf_strptr(elf, sh.sh_link, sym.st_name) : NULL;
			if (n && strcmp(n, name) == 0 && sym.st_shndx != SHN_UNDEF) {
				*value = sym.st_value;
				found = true;
				break;
			}
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}

static bool tls_phdr(const char *path, GElf_Phdr *tls)
{
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	size_t n = 0;
	bool found = false;
	if (elf && elf_getphdrnum(elf, &n) == 0)
		for (size_t i = 0; i < n && !found; i++)
			found = gelf_getphdr(elf, (int)i, tls) && tls->p_type == PT_TLS;
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}

/* /usr/lib/debug/.build-id/xx/yyyy.debug of an ELF file. */
static bool debug_file_of(const char *path, char *buf, size_t len)
{
	elf_version(EV_CURRENT);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	bool found = false;
	for (Elf_Scn *scn = elf ? elf_nextscn(elf, NULL) : NULL; scn && !found; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		Elf_Data *d = elf_getdata(scn, NULL);
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;
		while (d && (off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 || nh.n_descsz < 2 ||
			    memcmp((char *)d->d_buf + name_off, "GNU", 4) != 0)
				continue;
			const uint8_t *id = (const uint8_t *)d->d_buf + desc_off;
			int n = snprintf(buf, len, "/usr/lib/debug/.build-id/%02x/", id[0]);
			for (size_t i = 1; i < nh.n_descsz && n > 0 && (size_t)n + 3 < len; i++)
				n += snprintf(buf + n, len - (size_t)n, "%02x", id[i]);
			found = n > 0 && (size_t)n + 7 < len;
			if (found)
				snprintf(buf + n, len - (size_t)n, ".debug");
			break;
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}

/* The libc.so.6 this process runs on (the test targets use the same one). */
static const char *own_libc(void)
{
	Dl_info info;
	ck_assert_msg(dladdr((void *)gnu_get_libc_version, &info) && info.dli_fname, "dladdr(libc) failed");
	return info.dli_fname;
}

static int own_libc_minor(void)
{
	int major = 0, minor = 0;
	ck_assert(sscanf(gnu_get_libc_version(), "%d.%d", &major, &minor) == 2 && major == 2);
	return minor;
}

static struct heur_file_result *analyze_path(const char *path, double *ms_ret)
{
	struct hfile h;
	double t0 = now_ms();
	struct md_error *err = hfile_open(path, &h);
	ck_assert_msg(!err, "opening %s: %s", path, err ? err->message : "");
	struct heur_file_result *r = calloc(1, sizeof(*r));
	ck_assert(r != NULL);
	analyze_file(&h, r);
	hfile_deinit(&h);
	if (ms_ret)
		*ms_ret = now_ms() - t0;
	return r;
}

static bool has_arena_candidate(const struct heur_file_result *r, uint64_t vaddr, unsigned sources)
{
	for (size_t i = 0; i < r->arena.n; i++)
		if (r->arena.c[i].vaddr == vaddr && (r->arena.c[i].sources & sources) == sources)
			return true;
	return false;
}

/* ---- static test programs (built once per test case, in the parent) ---------------------- */

enum { PROG_STATIC, PROG_STRIPPED, PROG_STATIC_PIE, PROG_N };
static const char *const prog_names[PROG_N] = { "heur_static", "heur_stripped", "heur_static_pie" };
static char prog_dir[64];
static char prog_path[PROG_N][128];
static char prog_error[512];

static void static_programs_build(void)
{
	prog_error[0] = 0;
	snprintf(prog_dir, sizeof(prog_dir), "/tmp/md-heur-XXXXXX");
	if (!mkdtemp(prog_dir)) {
		snprintf(prog_error, sizeof(prog_error), "mkdtemp: %s", strerror(errno));
		return;
	}
	char src[1024];
	const char *data = getenv("MD_TESTDATA");
	if (snprintf(src, sizeof(src), "%s/../targets/heur_threads.c", data && *data ? data : "tests/data") >=
	    (int)sizeof(src)) {
		snprintf(prog_error, sizeof(prog_error), "MD_TESTDATA is too long");
		return;
	}
	for (int i = 0; i < PROG_N; i++)
		snprintf(prog_path[i], sizeof(prog_path[i]), "%s/%s", prog_dir, prog_names[i]);
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "cc -std=gnu11 -D_GNU_SOURCE -O1 -pthread -static -o '%s' '%s' && strip -o '%s' '%s' && "
		 "cc -std=gnu11 -D_GNU_SOURCE -O1 -pthread -static-pie -o '%s' '%s'",
		 prog_path[PROG_STATIC], src, prog_path[PROG_STRIPPED], prog_path[PROG_STATIC], prog_path[PROG_STATIC_PIE],
		 src);
	int status = system(cmd);
	if (status != 0)
		snprintf(prog_error, sizeof(prog_error), "building the static programs failed (status %d): %.400s",
			 status, cmd);
}

static void static_programs_remove(void)
{
	for (int i = 0; i < PROG_N; i++)
		if (prog_path[i][0])
			unlink(prog_path[i]);
	char extra[PATH_MAX];
	snprintf(extra, sizeof(extra), "%s/zeroed_next", prog_dir);
	unlink(extra);
	if (prog_dir[0])
		rmdir(prog_dir);
}

#define REQUIRE_PROGRAMS() ck_assert_msg(prog_error[0] == 0, "%s", prog_error)

/* ---- ptrace ------------------------------------------------------------------------------ */



/* Start a program of prog_dir (static builds) or of $MD_TARGETS (dir NULL). */
static void start_target(struct md_test_proc *p, const char *dir, const char *name, const char *const *args)
{
	char *saved = NULL;
	if (dir) {
		const char *old = getenv("MD_TARGETS");
		saved = old ? strdup(old) : NULL;
		setenv("MD_TARGETS", dir, 1);
	}
	bool ok = md_test_proc_start(p, name, args);
	if (dir) {
		if (saved)
			setenv("MD_TARGETS", saved, 1);
		else
			unsetenv("MD_TARGETS");
		free(saved);
	}
	ck_assert_msg(ok, "target %s did not start", name);
}

/* Attach, stop and capture (threads with registers). */
static struct md_target *attach_stopped(pid_t pid, bool debuginfo_disabled, struct md_live_capture *cap)
{
	struct md_live_options opts = { .debuginfo_disabled = debuginfo_disabled };
	struct md_target *t = NULL;
	struct md_error *err = md_live_open(pid, &opts, &t);
	ck_assert_msg(!err, "md_live_open: %s", err ? err->message : "");
	err = md_live_stop(t);
	if (!err)
		err = md_live_capture(t, cap);
	ck_assert_msg(!err, "stop/capture: %s", err ? err->message : "");
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	ck_assert_msg(n == 2, "expected 2 threads, got %zu", n);
	for (size_t i = 0; i < n; i++)
		ck_assert(th[i].regs_valid && th[i].regs[MD_REG_FS_BASE]);
	return t;
}

static void detach_destroy(struct md_target *t, struct md_live_capture *cap)
{
	md_live_detach(t);
	md_live_capture_deinit(cap);
	md_target_destroy(t);
}

static void locate_ok(struct md_target *t, const struct md_module *mod, struct glibc_roots *roots)
{
	double t0 = now_ms();
	struct md_error *err = heurtest_locate_heuristic(t, mod, roots);
	double ms = now_ms() - t0;
	ck_assert_msg(!err, "heuristic on %s: %s", mod->name, err ? err->message : "");
	ck_assert(roots->source == MD_SYMSRC_HEURISTIC);
	ck_assert_msg(strncmp(roots->how, "heuristic: ", 11) == 0, "how: %s", roots->how);
	ck_assert(roots->module == mod);
	fprintf(stderr, "%s: %.1f ms: %s\n", mod->name, ms, roots->how);
}

static uint64_t read_u64_or_fail(struct md_target *t, uint64_t addr)
{
	uint64_t v = 0;
	struct md_error *err = md_target_read_u64(t, addr, &v);
	ck_assert_msg(!err, "reading 0x%" PRIx64 ": %s", addr, err ? err->message : "");
	return v;
}

/* The thread's tcache_perthread_struct pointer must be a 0x291/0x295 chunk (2.30+). */
static void expect_tcache_struct(struct md_target *t, uint64_t tcache, int32_t tid)
{
	ck_assert_msg(tcache && !(tcache & 0xf), "thread %d: tcache 0x%" PRIx64, (int)tid, tcache);
	uint64_t size = read_u64_or_fail(t, tcache - 8);
	ck_assert_msg((size & ~5ULL) == 0x290 || (size & ~5ULL) == 0x250, "thread %d: tcache chunk size 0x%" PRIx64,
		      (int)tid, size);
}

/* ---- pure-file tests --------------------------------------------------------------------- */

START_TEST(test_file_libc)
{
	const char *libc = own_libc();
	char dbg[PATH_MAX];
	ck_assert_msg(debug_file_of(libc, dbg, sizeof(dbg)), "%s has no build-id", libc);
	uint64_t main_arena, mp, key, gmf, tcache;
	ck_assert_msg(symtab_value(dbg, "main_arena", &main_arena) && symtab_value(dbg, "mp_", &mp) &&
			      symtab_value(dbg, "tcache", &tcache) && symtab_value(dbg, "global_max_fast", &gmf),
		      "truth missing: %s (libc6-dbg) lacks main_arena/mp_/tcache/global_max_fast", dbg);
	bool have_key = symtab_value(dbg, "tcache_key", &key);

	double ms = 0;
	struct heur_file_result *r = analyze_path(libc, &ms);
	fprintf(stderr, "file analysis of %s: %.2f ms\n", libc, ms);
	ck_assert_msg(ms < (md_test_sanitized() ? 200.0 : 20.0), "file analysis took %.1f ms", ms);

	ck_assert(r->have_version && !r->version.lower_bound);
	ck_assert_int_eq(r->version.major, 2);
	ck_assert_int_eq(r->version.minor, own_libc_minor());
	ck_assert(!r->is_static);

	/* Both methods agree on main_arena and on mp_, and they come first. */
	ck_assert_msg(r->arena.n >= 1 && r->arena.c[0].vaddr == main_arena, "main_arena 0x%" PRIx64 " vs 0x%" PRIx64,
		      r->arena.n ? r->arena.c[0].vaddr : 0, main_arena);
	ck_assert(has_arena_candidate(r, main_arena, SRC_DISASM | SRC_IMAGE));
	ck_assert_uint_eq(r->arena_image_hits, 1);
	ck_assert_msg(r->mp.n >= 1 && r->mp.c[0].vaddr == mp, "mp_ 0x%" PRIx64 " vs 0x%" PRIx64,
		      r->mp.n ? r->mp.c[0].vaddr : 0, mp);
	ck_assert_uint_eq(r->mp.c[0].sources & (SRC_DISASM | SRC_IMAGE), SRC_DISASM | SRC_IMAGE);
	ck_assert_uint_eq(r->mp_image_hits, 1);

	/* tcache: the best-voted TLS access is the TPOFF64 slot whose addend is tcache's offset. */
	ck_assert(r->tls.n >= 1);
	ck_assert_int_eq(r->tls.c[0].kind, TLS_GOT_SLOT);
	ck_assert_uint_eq(r->tls.c[0].addend, tcache);
	ck_assert_uint_ge(r->tls.c[0].votes, 2);
	ck_assert_uint_ge(r->tls_all.n, 2);

	if (own_libc_minor() >= 34) {
		ck_assert_msg(have_key, "tcache_key missing from %s", dbg);
		ck_assert_uint_eq(r->tcache_key, key);
	}
	ck_assert_uint_eq(r->global_max_fast, gmf);
	free(r);
}
END_TEST

START_TEST(test_version_from_file)
{
	const char *libc = own_libc();
	struct hfile h;
	ck_assert(!hfile_open(libc, &h));
	struct hversion v;
	ck_assert(hfile_version(&h, &v));
	ck_assert_int_eq(v.minor, own_libc_minor());
	ck_assert_str_eq(v.how, own_libc_minor() >= 34 ? "__nptl_version" : "banner");
	hfile_deinit(&h);

	/* A libc claiming the first version past the claim is refused, and the message names the
	 * version and the supported range. The first source (__nptl_version, or the banner before
	 * 2.34) is patched in a copy. */
	ck_assert(!hfile_open(libc, &h));
	uint64_t addr = 0;
	size_t patch_off;
	const char *needle = "release version 2.";
	if (hfile_dynobject(&h, "__nptl_version", &addr)) {
		const uint8_t *at = hfile_bytes(&h, addr, 5);
		ck_assert(at != NULL);
		patch_off = (size_t)(at - h.raw);
	} else {
		const uint8_t *at = memmem(h.raw, h.raw_size, needle, strlen(needle));
		ck_assert(at != NULL);
		patch_off = (size_t)(at - h.raw) + strlen(needle) - 2;
	}
	size_t size = h.raw_size;
	char *buf = malloc(size);
	ck_assert(buf != NULL);
	memcpy(buf, h.raw, size);
	hfile_deinit(&h);
	char future[8], range[16];
	snprintf(future, sizeof(future), "2.%02d", HEUR_MAX_MINOR + 1);
	snprintf(range, sizeof(range), "2.%d-2.%d", HEUR_MIN_MINOR, HEUR_MAX_MINOR);
	memcpy(buf + patch_off, future, 4);
	char copy[] = "/tmp/md-heur-libc-XXXXXX";
	int fd = mkstemp(copy);
	ck_assert(fd >= 0);
	ck_assert(write(fd, buf, size) == (ssize_t)size);
	close(fd);
	free(buf);
	struct md_error *err = hfile_open(copy, &h);
	unlink(copy); /* the open file stays readable */
	ck_assert(!err);
	ck_assert(hfile_version(&h, &v));
	hfile_deinit(&h);
	ck_assert_int_eq(v.minor, HEUR_MAX_MINOR + 1);
	struct md_module fake = { .name = copy };
	err = version_check(&fake, &v);
	ck_assert(err && err->code == MD_ERR_UNSUPPORTED);
	ck_assert_msg(strstr(err->message, future) && strstr(err->message, "not supported") && strstr(err->message, range),
		      "%s", err->message);
	md_error_destroy(err);
}
END_TEST

START_TEST(test_file_static)
{
	REQUIRE_PROGRAMS();
	const char *full = prog_path[PROG_STATIC];
	uint64_t main_arena, mp, key, gmf, tcache;
	ck_assert_msg(symtab_value(full, "main_arena", &main_arena) && symtab_value(full, "mp_", &mp) &&
			      symtab_value(full, "tcache", &tcache) && symtab_value(full, "global_max_fast", &gmf) &&
			      symtab_value(full, "tcache_key", &key),
		      "%s lacks the malloc symbols in .symtab", full);
	GElf_Phdr tls;
	ck_assert(tls_phdr(full, &tls));
	/* glibc's static TLS (csu/libc-tls.c): the executable's block ends at the thread pointer. */
	int64_t tpoff = (int64_t)tcache -
			(int64_t)((tls.p_memsz + tls.p_align - 1) / (tls.p_align ? tls.p_align : 1) * tls.p_align);

	/* Tunable names sit in .data.rel.ro since 2.33: the markers must be seen there too. */
	struct hfile h;
	ck_assert(!hfile_open(full, &h));
	ck_assert(hfile_contains_string(&h, "glibc.malloc.tcache_count"));
	if (own_libc_minor() >= 35)
		ck_assert(hfile_contains_string(&h, "glibc.malloc.hugetlb"));
	ck_assert(!hfile_contains_string(&h, "glibc.malloc.tcache_coun"));
	hfile_deinit(&h);

	for (int i = PROG_STATIC; i <= PROG_STRIPPED; i++) {
		double ms = 0;
		struct heur_file_result *r = analyze_path(prog_path[i], &ms);
		fprintf(stderr, "file analysis of %s: %.2f ms\n", prog_names[i], ms);
		ck_assert_msg(ms < (md_test_sanitized() ? 300.0 : 30.0), "file analysis took %.1f ms", ms);
		ck_assert(r->is_static);
		ck_assert(r->have_version && r->version.lower_bound);
		ck_assert_int_eq(r->version.major, 2);
		/* Release markers give a lower bound in the same layout era as the real version. */
		ck_assert_int_le(r->version.minor, own_libc_minor());
		ck_assert_int_ge(r->version.minor, own_libc_minor() >= 35 ? 35 : 30);
		ck_assert(r->arena.n >= 1 && r->arena.c[0].vaddr == main_arena);
		ck_assert(r->mp.n >= 1 && r->mp.c[0].vaddr == mp);
		/* Disassembly works with .symtab (functions by name) and stripped (free() found
		 * through main_arena's references and .eh_frame). */
		ck_assert_msg(r->mp.c[0].sources & SRC_DISASM, "%s: mp_ not confirmed by disassembly", prog_names[i]);
		ck_assert(r->tls.n >= 1);
		ck_assert_int_eq(r->tls.c[0].kind, TLS_TPOFF);
		ck_assert_int_eq(r->tls.c[0].tpoff, tpoff);
		ck_assert_uint_eq(r->tcache_key, key);
		ck_assert_uint_eq(r->global_max_fast, gmf);
		if (i == PROG_STATIC)
			ck_assert(has_arena_candidate(r, main_arena, SRC_DISASM | SRC_IMAGE));
		free(r);
	}
}
END_TEST

/* static-pie: RELA relocations; then the same file with main_arena.next zeroed in place, as
 * linkers that do not apply dynamic relocations leave it: the RELATIVE addend must be used. */
START_TEST(test_file_static_pie_rela)
{
	REQUIRE_PROGRAMS();
	const char *pie = prog_path[PROG_STATIC_PIE];
	uint64_t main_arena, mp;
	ck_assert(symtab_value(pie, "main_arena", &main_arena) && symtab_value(pie, "mp_", &mp));
	struct heur_file_result *r = analyze_path(pie, NULL);
	ck_assert(r->is_static);
	ck_assert(r->arena.n >= 1 && r->arena.c[0].vaddr == main_arena);
	ck_assert(r->mp.n >= 1 && r->mp.c[0].vaddr == mp);
	struct heur_layout l = r->layout;
	free(r);

	struct hfile h;
	ck_assert(!hfile_open(pie, &h));
	const struct hrel *rel = hfile_reloc_at(&h, main_arena + l.arena_next);
	ck_assert_msg(rel && rel->type == R_X86_64_RELATIVE && rel->addend == main_arena,
		      "no RELATIVE relocation at main_arena.next");
	const uint8_t *at = hfile_bytes(&h, main_arena + l.arena_next, 8);
	ck_assert(at != NULL);
	size_t file_off = (size_t)(at - h.raw);
	size_t size = h.raw_size;
	char *copy = malloc(size);
	ck_assert(copy != NULL);
	memcpy(copy, h.raw, size);
	hfile_deinit(&h);
	memset(copy + file_off, 0, 8);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/zeroed_next", prog_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	ck_assert(fd >= 0 && write(fd, copy, size) == (ssize_t)size);
	close(fd);
	free(copy);

	r = analyze_path(path, NULL);
	ck_assert_msg(r->arena.n >= 1 && r->arena.c[0].vaddr == main_arena && (r->arena.c[0].sources & SRC_IMAGE),
		      "main_arena not found through the RELATIVE relocation");
	free(r);
}
END_TEST

/* ---- live targets ------------------------------------------------------------------------ */

struct heur_seen {
	struct glibc_roots roots;
	int32_t tid[2];
	uint64_t tcache_addr[2]; /* &tcache in each thread, by the heuristic's locator */
};

static void run_dynamic(const char *const *args)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	start_target(&p, NULL, "heur_threads", args);

	/* 1. Debug info off: what the heuristics find, before and during the pause. */
	struct md_live_options off = { .debuginfo_disabled = true };
	struct md_target *t = NULL;
	struct md_error *err = md_live_open(p.pid, &off, &t);
	ck_assert_msg(!err, "md_live_open: %s", err ? err->message : "");
	const struct md_module *libc = md_target_find_module(t, "libc.so");
	ck_assert(libc != NULL);
	struct glibc_roots pre;
	locate_ok(t, libc, &pre); /* as the plugin's open() does it: threads not captured yet */
	md_target_destroy(t);

	struct md_live_capture cap = { 0 };
	t = attach_stopped(p.pid, true, &cap);
	libc = md_target_find_module(t, "libc.so");
	struct heur_seen seen = { 0 };
	locate_ok(t, libc, &seen.roots);
	int major = 0, minor = 0;
	err = heurtest_detect_version(t, libc, &major, &minor);
	ck_assert_msg(!err, "detect_version: %s", err ? err->message : "");
	ck_assert_int_eq(major, 2);
	ck_assert_int_eq(minor, own_libc_minor());
	ck_assert_int_eq(seen.roots.version_minor, minor);
	ck_assert_uint_eq(pre.main_arena, seen.roots.main_arena);
	ck_assert_uint_eq(pre.mp, seen.roots.mp);
	ck_assert_uint_eq(pre.tcache_got_slot, seen.roots.tcache_got_slot);
	ck_assert_uint_eq(pre.tcache_key, seen.roots.tcache_key);
	ck_assert_uint_eq(pre.global_max_fast, seen.roots.global_max_fast);
	ck_assert_msg(seen.roots.tcache_got_slot, "no tcache GOT slot: %s", seen.roots.how);
	unsigned long long own_view = 0;
	ck_assert(md_test_truth_u64(&p, "main_arena", &own_view));
	ck_assert_uint_eq(seen.roots.main_arena, own_view); /* what the target's unsorted bin says */
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	int64_t tpoff = (int64_t)read_u64_or_fail(t, seen.roots.tcache_got_slot);
	for (size_t i = 0; i < n && i < 2; i++) {
		seen.tid[i] = th[i].tid;
		seen.tcache_addr[i] = th[i].regs[MD_REG_FS_BASE] + (uint64_t)tpoff;
		expect_tcache_struct(t, read_u64_or_fail(t, seen.tcache_addr[i]), th[i].tid);
	}

	/* Validation rejects swapped roots and the neighbouring TLS slot (thread_arena). */
	struct heur_layout l;
	layout_for_version(minor, &l);
	struct heur_rt rt = { .t = t, .mod = libc, .l = &l, .bias = libc->bias };
	char why[160];
	ck_assert(rt_check_arena(&rt, seen.roots.main_arena, seen.roots.mp, why, sizeof(why)));
	ck_assert(!rt_check_arena(&rt, seen.roots.mp, seen.roots.mp, why, sizeof(why)));
	ck_assert(rt_check_mp(&rt, seen.roots.mp, why, sizeof(why)));
	ck_assert(!rt_check_mp(&rt, seen.roots.main_arena, why, sizeof(why)));
	struct hfile h;
	ck_assert(!hfile_open(md_target_module_file(t, libc), &h));
	unsigned rejected = 0, accepted = 0;
	for (size_t i = 0; i < h.n_rels; i++) {
		if (h.rels[i].type != R_X86_64_TPOFF64)
			continue;
		struct tls_cand c = { .kind = TLS_GOT_SLOT, .slot = h.rels[i].offset };
		int v = rt_check_tls(&rt, &c);
		if (v > 0)
			accepted++;
		if (v < 0)
			rejected++;
		if (h.rels[i].offset + libc->bias == seen.roots.tcache_got_slot)
			ck_assert_int_eq(v, 2);
	}
	hfile_deinit(&h);
	ck_assert_uint_eq(accepted, 1); /* only tcache's slot shows tcache structs */
	ck_assert_uint_ge(rejected, 1); /* thread_arena's slot points at arenas */

	/* The main executable is not glibc: one clear line says what was tried. */
	const struct md_module *exe = md_target_find_module(t, NULL);
	ck_assert(exe != NULL);
	struct glibc_roots bad;
	err = heurtest_locate_heuristic(t, exe, &bad);
	ck_assert(err && err->code == MD_ERR_NOT_FOUND);
	ck_assert_msg(strstr(err->message, "no glibc version found") && strstr(err->message, "main_arena not found") &&
			      strstr(err->message, "image scan gave 0") && strstr(err->message, "debug info disabled") &&
			      !strchr(err->message, '\n'),
		      "message: %s", err->message);
	fprintf(stderr, "not glibc: %s\n", err->message);
	md_error_destroy(err);
	detach_destroy(t, &cap);

	/* 2. Debug info on: the truth. */
	t = attach_stopped(p.pid, false, &cap);
	libc = md_target_find_module(t, "libc.so");
	ck_assert_msg(libc->has_debuginfo, "libc6-dbg is needed for the truth (build-id %s)",
		      libc->build_id ? libc->build_id : "?");
	struct md_symbol sym;
	const char *names[] = { "main_arena", "mp_", "global_max_fast", "tcache_key" };
	uint64_t got[] = { seen.roots.main_arena, seen.roots.mp, seen.roots.global_max_fast, seen.roots.tcache_key };
	for (size_t i = 0; i < 4; i++) {
		if (i == 3 && minor < 34)
			continue;
		err = md_target_symbol(t, libc, names[i], &sym);
		ck_assert_msg(!err, "%s: %s", names[i], err ? err->message : "");
		ck_assert_msg(sym.address == got[i], "%s: heuristic 0x%" PRIx64 ", debug info 0x%" PRIx64, names[i], got[i],
			      sym.address);
	}
	err = md_target_symbol(t, libc, "tcache", &sym);
	ck_assert_msg(!err && sym.type == MD_SYM_TLS, "tcache symbol");
	ck_assert(seen.roots.have_tcache_tls_offset);
	ck_assert_uint_eq(seen.roots.tcache_tls_offset, sym.address);
	th = md_target_threads(t, &n);
	for (size_t i = 0; i < n && i < 2; i++) {
		ck_assert_int_eq(th[i].tid, seen.tid[i]);
		uint64_t truth = 0;
		err = md_target_tls_address(t, libc, &th[i], sym.address, &truth);
		ck_assert_msg(!err, "tls address: %s", err ? err->message : "");
		ck_assert_msg(truth == seen.tcache_addr[i], "thread %d: &tcache 0x%" PRIx64 " vs 0x%" PRIx64,
			      (int)th[i].tid, seen.tcache_addr[i], truth);
	}
	detach_destroy(t, &cap);
	md_test_proc_stop(&p);
}

START_TEST(test_live_dynamic)
{
	run_dynamic(NULL);
}
END_TEST

START_TEST(test_live_dynamic_mallopt)
{
	const char *args[] = { "mallopt", NULL };
	run_dynamic(args);
}
END_TEST

/* Hostile memory: main_arena.next zeroed by the target itself. In libc.so.6 disassembly and
 * the static image agree on main_arena, so it is returned (the walker reports the damage) and
 * `how` says it did not validate. In a stripped static program only the image scan finds it:
 * refused, and the one-line message says which version was detected and what was tried. */
START_TEST(test_live_corrupt_ring)
{
	SKIP_WITHOUT_PTRACE();
	struct md_test_proc p;
	const char *args[] = { "corrupt", NULL };
	start_target(&p, NULL, "heur_threads", args);
	struct md_live_capture cap = { 0 };
	struct md_target *t = attach_stopped(p.pid, true, &cap);
	const struct md_module *libc = md_target_find_module(t, "libc.so");
	ck_assert(libc != NULL);
	struct glibc_roots roots;
	locate_ok(t, libc, &roots);
	unsigned long long own_view = 0;
	ck_assert(md_test_truth_u64(&p, "main_arena", &own_view));
	ck_assert_uint_eq(roots.main_arena, own_view);
	ck_assert_msg(strstr(roots.how, "main_arena disasm+image NOT VALIDATED") && strstr(roots.how, "ring does not close"),
		      "how: %s", roots.how);
	detach_destroy(t, &cap);
	md_test_proc_stop(&p);
}
END_TEST

START_TEST(test_live_static_stripped_corrupt)
{
	SKIP_WITHOUT_PTRACE();
	REQUIRE_PROGRAMS();
	struct md_test_proc p;
	const char *args[] = { "corrupt", NULL };
	start_target(&p, prog_dir, prog_names[PROG_STRIPPED], args);
	struct md_live_capture cap = { 0 };
	struct md_target *t = attach_stopped(p.pid, true, &cap);
	const struct md_module *exe = md_target_find_module(t, NULL);
	ck_assert(exe != NULL);
	struct glibc_roots roots;
	struct md_error *err = heurtest_locate_heuristic(t, exe, &roots);
	ck_assert(err && err->code == MD_ERR_NOT_FOUND);
	ck_assert_msg(strstr(err->message, "glibc >=2.") && strstr(err->message, " detected in ") &&
			      strstr(err->message, "main_arena not found: debug info disabled") &&
			      strstr(err->message, "image candidate rejected") &&
			      strstr(err->message, "ring does not close") && !strstr(err->message, "mp_ not found") &&
			      !strchr(err->message, '\n'),
		      "message: %s", err->message);
	fprintf(stderr, "corrupt ring, stripped static: %s\n", err->message);
	md_error_destroy(err);
	detach_destroy(t, &cap);
	md_test_proc_stop(&p);
}
END_TEST

/* Static programs: the allocator is in the executable; .symtab is the truth for both the full
 * and the stripped build (strip moves nothing). */
static void run_static(int prog)
{
	SKIP_WITHOUT_PTRACE();
	REQUIRE_PROGRAMS();
	const char *full = prog_path[prog == PROG_STATIC_PIE ? PROG_STATIC_PIE : PROG_STATIC];
	uint64_t main_arena, mp, key, gmf, tcache;
	ck_assert(symtab_value(full, "main_arena", &main_arena) && symtab_value(full, "mp_", &mp) &&
		  symtab_value(full, "tcache", &tcache) && symtab_value(full, "global_max_fast", &gmf) &&
		  symtab_value(full, "tcache_key", &key));
	GElf_Phdr tls;
	ck_assert(tls_phdr(full, &tls));
	uint64_t block = (tls.p_memsz + tls.p_align - 1) / (tls.p_align ? tls.p_align : 1) * tls.p_align;

	struct md_test_proc p;
	start_target(&p, prog_dir, prog_names[prog], NULL);
	struct md_live_capture cap = { 0 };
	struct md_target *t = attach_stopped(p.pid, true, &cap);
	const struct md_module *exe = md_target_find_module(t, NULL);
	ck_assert(exe != NULL);
	struct glibc_roots roots;
	locate_ok(t, exe, &roots);
	ck_assert_uint_eq(roots.main_arena, exe->bias + main_arena);
	unsigned long long own_view = 0;
	ck_assert(md_test_truth_u64(&p, "main_arena", &own_view));
	ck_assert_uint_eq(roots.main_arena, own_view);
	ck_assert_uint_eq(roots.mp, exe->bias + mp);
	ck_assert_uint_eq(roots.tcache_key, exe->bias + key);
	ck_assert_uint_eq(roots.global_max_fast, exe->bias + gmf);
	ck_assert_int_ge(roots.version_minor, 26);
	ck_assert(roots.have_tcache_tls_offset && !roots.tcache_got_slot);
	ck_assert_uint_eq(roots.tcache_tls_offset, tcache);
	size_t n = 0;
	const struct md_thread *th = md_target_threads(t, &n);
	for (size_t i = 0; i < n; i++) {
		uint64_t addr = 0;
		struct md_error *err = md_target_tls_address(t, exe, &th[i], roots.tcache_tls_offset, &addr);
		ck_assert_msg(!err, "tls address: %s", err ? err->message : "");
		/* glibc's own rule for the executable's static TLS, independent of attach/. */
		ck_assert_uint_eq(addr, th[i].regs[MD_REG_FS_BASE] - block + tcache);
		expect_tcache_struct(t, read_u64_or_fail(t, addr), th[i].tid);
	}
	detach_destroy(t, &cap);
	md_test_proc_stop(&p);
}

START_TEST(test_live_static)
{
	run_static(PROG_STATIC);
}
END_TEST

START_TEST(test_live_static_stripped)
{
	run_static(PROG_STRIPPED);
}
END_TEST

START_TEST(test_live_static_pie)
{
	run_static(PROG_STATIC_PIE);
}
END_TEST

Suite *glibc_heuristic_suite(void)
{
	Suite *s = suite_create("glibc_heuristic");
	TCase *tc = tcase_create("file");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_file_libc);
	tcase_add_test(tc, test_version_from_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("live");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_live_dynamic);
	tcase_add_test(tc, test_live_dynamic_mallopt);
	tcase_add_test(tc, test_live_corrupt_ring);
	suite_add_tcase(s, tc);

	/* The static programs are built once for these (in the parent, before the tests fork). */
	tc = tcase_create("static");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, static_programs_build, static_programs_remove);
	tcase_add_test(tc, test_file_static);
	tcase_add_test(tc, test_file_static_pie_rela);
	tcase_add_test(tc, test_live_static);
	tcase_add_test(tc, test_live_static_stripped);
	tcase_add_test(tc, test_live_static_pie);
	tcase_add_test(tc, test_live_static_stripped_corrupt);
	suite_add_tcase(s, tc);
	return s;
}
