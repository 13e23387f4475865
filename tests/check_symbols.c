/* Symbols (attach/symbols.c) and unwinding (attach/unwind.c) against a real child process.
 *
 * The child is forked from the test process, so it has exactly our libraries at our addresses
 * and its own view of TLS; it prints the truth only it knows (&errno, the static TLS offsets
 * libc's dlinfo gives it) and blocks in pause(). */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <link.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"
#include "symbols.h"
#include "live.h"
#include "target_impl.h"
#include "tests.h"
#include "unwind.h"

/* This machine's libc (Debian 12, glibc 2.36-9+deb12u14): the addresses in
 * /work/shared/docs/glibc-malloc.md hold only for this exact build. */
#define KNOWN_LIBC_BUILD_ID "93ac61ec5a8eb1396f9fbd350e3169a558528a40"
#define KNOWN_MAIN_ARENA 0x1d3c60
#define KNOWN_MP 0x1d3340

/* Gives the test executable a PT_TLS of its own, reached with local-exec (no relocation): the
 * executable's static TLS offset then comes from its PT_TLS alone. */
static __thread uint64_t exe_tls_var = 0x5eed;

struct child {
	pid_t pid;
	uint64_t exe_tls_addr; /* &exe_tls_var in the child */
	uint64_t errno_addr;   /* &errno in the child */
	uint64_t libc_tls;     /* thread pointer - libc's TLS block, from dlinfo */
	uint64_t libdw_tls;    /* same for libdw (0 when it has no static block) */
	uint64_t trim_addr;    /* &malloc_trim as the child's dynamic linker resolved it */
};

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static uint64_t tls_block_offset(const char *soname, uintptr_t tp)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
	void *block = NULL;
	if (h && dlinfo(h, RTLD_DI_TLS_DATA, &block) == 0 && block)
		return tp - (uintptr_t)block;
	return 0;
}

static __attribute__((noreturn, noinline)) void child_main(int fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	void *volatile heap = malloc(1000);
	(void)heap;
	uintptr_t tp;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	char line[256];
	exe_tls_var++;
	int n = snprintf(line, sizeof(line), "%p %" PRIx64 " %" PRIx64 " %p %p\n", (void *)&errno,
			 tls_block_offset("libc.so.6", tp), tls_block_offset("libdw.so.1", tp),
			 (void *)(uintptr_t)malloc_trim, (void *)&exe_tls_var);
	if (write(fd, line, (size_t)n) != n)
		_exit(1);
	close(fd);
	for (;;)
		pause();
}

static bool child_start(struct child *c)
{
	memset(c, 0, sizeof(*c));
	int fds[2];
	if (pipe(fds) != 0)
		return false;
	pid_t pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		close(fds[0]);
		child_main(fds[1]);
	}
	close(fds[1]);
	c->pid = pid;
	char line[256];
	size_t len = 0;
	struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
	while (len + 1 < sizeof(line) && (len == 0 || line[len - 1] != '\n')) {
		if (poll(&pfd, 1, 20000) <= 0)
			break;
		ssize_t r = read(fds[0], line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fds[0]);
	line[len] = 0;
	unsigned long long e, lt, dt, tr, xt;
	if (sscanf(line, "%llx %llx %llx %llx %llx", &e, &lt, &dt, &tr, &xt) != 5)
		return false;
	c->exe_tls_addr = xt;
	c->errno_addr = e;
	c->libc_tls = lt;
	c->libdw_tls = dt;
	c->trim_addr = tr;
	/* Let it reach pause(). */
	for (int i = 0; i < 2000 && md_test_proc_state(pid) != 'S'; i++)
		usleep(1000);
	return true;
}

static void child_stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, __WALL);
	}
	c->pid = 0;
}

static struct md_symbols *symbols_for(pid_t pid, bool debuginfo_disabled)
{
	struct md_symbols_options opts = {.debuginfo_disabled = debuginfo_disabled};
	struct md_symbols *s = NULL;
	struct md_error *err = md_symbols_create_pid(pid, &opts, &s);
	ck_assert_msg(!err, "md_symbols_create_pid: %s", err ? err->message : "");
	return s;
}

static const struct md_module *libc_of(struct md_symbols *s)
{
	const struct md_module *libc = md_symbols_find_module(s, "libc.so");
	ck_assert_msg(libc, "libc.so not among the modules");
	return libc;
}

static bool libc_is_known_build(const struct md_module *libc)
{
	return libc->build_id && strcmp(libc->build_id, KNOWN_LIBC_BUILD_ID) == 0;
}

static bool libc_debug_file_present(const struct md_module *libc)
{
	char path[256];
	snprintf(path, sizeof(path), "/usr/lib/debug/.build-id/%.2s/%s.debug", libc->build_id, libc->build_id + 2);
	return access(path, R_OK) == 0;
}

/* Is [addr, addr+size) inside a writable private mapping of the file of libc? */
static bool in_libc_rw(pid_t pid, const struct md_module *libc, uint64_t addr, uint64_t size)
{
	char path[64], *text = NULL;
	size_t len = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	struct md_error *err = md_read_file(path, &text, &len);
	ck_assert_msg(!err, "reading maps: %s", err ? err->message : "");
	struct md_mapping *maps;
	size_t n;
	err = md_parse_maps(text, len, &maps, &n);
	free(text);
	ck_assert_msg(!err, "parsing maps: %s", err ? err->message : "");
	bool ok = false;
	for (size_t i = 0; i < n; i++) {
		/* libc's .bss continues in an anonymous mapping right after its file mappings */
		if ((maps[i].perms & MD_PERM_WRITE) && addr >= maps[i].start && addr + size <= maps[i].end &&
		    addr >= libc->start && addr < libc->end + 0x100000)
			ok = true;
	}
	md_mappings_free(maps, n);
	return ok;
}

START_TEST(test_modules)
{
	struct child c;
	ck_assert(child_start(&c));
	long long t0 = now_us();
	struct md_symbols *s = symbols_for(c.pid, false);
	long long t1 = now_us();
	/* Setup reports modules only: the child was not stopped or traced. */
	unsigned long long tracer = md_test_status_bytes(c.pid, "TracerPid");
	ck_assert_msg(tracer == 0, "TracerPid is %llu after md_symbols_create_pid", tracer / 1024);
	char state = md_test_proc_state(c.pid);
	ck_assert_msg(state == 'S', "child state %c after md_symbols_create_pid", state);

	size_t n = 0;
	const struct md_module *mods = md_symbols_modules(s, &n);
	ck_assert_uint_ge(n, 3);
	for (size_t i = 1; i < n; i++)
		ck_assert_msg(mods[i - 1].start <= mods[i].start, "modules not sorted by start");

	const struct md_module *libc = libc_of(s);
	ck_assert_ptr_eq(md_symbols_module_at(s, libc->start), libc);
	ck_assert_ptr_eq(md_symbols_module_at(s, libc->end - 1), libc);
	ck_assert_ptr_eq(md_symbols_module_at(s, c.trim_addr), libc);
	ck_assert_ptr_null(md_symbols_module_at(s, 0x1000));
	ck_assert_msg(libc->build_id && strlen(libc->build_id) == 40, "libc build-id %s",
		      libc->build_id ? libc->build_id : "(null)");
	ck_assert_uint_le(libc->start, libc->bias + 0x1000);
	const char *file = md_symbols_module_file(s, libc);
	ck_assert_msg(file && access(file, R_OK) == 0, "libc file %s", file ? file : "(null)");
	ck_assert_int_eq(libc->has_debuginfo, libc_debug_file_present(libc));

	/* NULL is the main executable: the file of /proc/PID/exe. */
	const struct md_module *main_mod = md_symbols_find_module(s, NULL);
	ck_assert_ptr_nonnull(main_mod);
	char exe[4096], link[64];
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)c.pid);
	ssize_t len = readlink(link, exe, sizeof(exe) - 1);
	ck_assert_int_gt(len, 0);
	exe[len] = 0;
	ck_assert_str_eq(main_mod->name, exe);
	ck_assert_ptr_eq(md_symbols_find_module(s, "ld-linux"), md_symbols_module_at(s, (uint64_t)(uintptr_t)&_r_debug));
	ck_assert_ptr_null(md_symbols_find_module(s, "no-such-module.so"));

	/* A process that is gone. */
	pid_t gone = fork();
	ck_assert_int_ge(gone, 0);
	if (gone == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(gone, NULL, 0), gone);
	struct md_symbols *none = NULL;
	struct md_error *err = md_symbols_create_pid(gone, NULL, &none);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NO_PROCESS);
	ck_assert_ptr_null(none);
	md_error_destroy(err);

	/* Setup must stay cheap: it runs before every attach. */
	ck_assert_msg(t1 - t0 < (md_test_sanitized() ? 2000000 : 500000), "setup took %lld us", t1 - t0);
	md_symbols_destroy(s);
	child_stop(&c);
}
END_TEST

START_TEST(test_libc_symbols)
{
	struct child c;
	ck_assert(child_start(&c));
	struct md_symbols *s = symbols_for(c.pid, false);
	const struct md_module *libc = libc_of(s);
	ck_assert_msg(libc_debug_file_present(libc), "libc6-dbg is not installed for libc %s", libc->build_id);

	long long t0 = now_us();
	struct md_symbol arena, mp, tcache, trim;
	struct md_error *err = md_symbols_lookup(s, libc, "main_arena", &arena);
	long long t1 = now_us();
	ck_assert_msg(!err, "main_arena: %s", err ? err->message : "");
	ck_assert_int_eq(arena.source, MD_SYMSRC_SYMTAB);
	ck_assert_int_eq(arena.type, MD_SYM_OBJECT);
	ck_assert_uint_eq(arena.size, 0x898);
	err = md_symbols_lookup(s, libc, "mp_", &mp);
	ck_assert_msg(!err, "mp_: %s", err ? err->message : "");
	ck_assert_int_eq(mp.source, MD_SYMSRC_SYMTAB);
	ck_assert_uint_eq(mp.size, 0x88);
	if (libc_is_known_build(libc)) {
		ck_assert_uint_eq(arena.address, libc->bias + KNOWN_MAIN_ARENA);
		ck_assert_uint_eq(mp.address, libc->bias + KNOWN_MP);
	}
	ck_assert(in_libc_rw(c.pid, libc, arena.address, arena.size));
	ck_assert(in_libc_rw(c.pid, libc, mp.address, mp.size));

	err = md_symbols_lookup(s, libc, "tcache", &tcache);
	ck_assert_msg(!err, "tcache: %s", err ? err->message : "");
	ck_assert_int_eq(tcache.type, MD_SYM_TLS);
	ck_assert_uint_eq(tcache.address, 0x48);

	/* A global symbol: relocated exactly where the child's dynamic linker put it. */
	err = md_symbols_lookup(s, libc, "malloc_trim", &trim);
	ck_assert_msg(!err, "malloc_trim: %s", err ? err->message : "");
	ck_assert_int_eq(trim.type, MD_SYM_FUNC);
	ck_assert_uint_eq(trim.address, c.trim_addr);

	err = md_symbols_lookup(s, libc, "no_such_symbol_anywhere", &trim);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);
	/* mod NULL searches every module. */
	err = md_symbols_lookup(s, NULL, "main_arena", &tcache);
	ck_assert_msg(!err, "main_arena in any module: %s", err ? err->message : "");
	ck_assert_uint_eq(tcache.address, arena.address);

	/* The hash is built once: a hundred more lookups cost far less than the first. */
	long long t2 = now_us();
	for (int i = 0; i < 100; i++)
		ck_assert_ptr_null(md_symbols_lookup(s, libc, i % 2 ? "mp_" : "main_arena", &trim));
	long long t3 = now_us();
	ck_assert_msg(t3 - t2 < 20000 + (t1 - t0), "100 lookups took %lld us (first %lld us)", t3 - t2, t1 - t0);
	md_symbols_destroy(s);
	child_stop(&c);
}
END_TEST

static uint64_t member_offset(struct md_symbols *s, const struct md_module *mod, const char *st, const char *m,
			      uint64_t *size_ret)
{
	uint64_t off = 0, size = 0;
	struct md_error *err = md_symbols_member(s, mod, st, m, &off, &size);
	ck_assert_msg(!err, "%s.%s: %s", st, m, err ? err->message : "");
	if (size_ret)
		*size_ret = size;
	return off;
}

static uint64_t struct_size(struct md_symbols *s, const struct md_module *mod, const char *st)
{
	uint64_t size = 0;
	struct md_error *err = md_symbols_struct_size(s, mod, st, &size);
	ck_assert_msg(!err, "sizeof %s: %s", st, err ? err->message : "");
	return size;
}

START_TEST(test_dwarf_layouts)
{
	struct child c;
	ck_assert(child_start(&c));
	struct md_symbols *s = symbols_for(c.pid, false);
	const struct md_module *libc = libc_of(s);
	ck_assert_msg(libc_debug_file_present(libc), "libc6-dbg is not installed for libc %s", libc->build_id);
	uint64_t size;
	/* glibc-malloc.md §1.3–1.6, 2.27–2.40 columns (this is 2.36). */
	ck_assert_uint_eq(member_offset(s, libc, "malloc_state", "top", &size), 0x60);
	ck_assert_uint_eq(size, 8);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_state", "bins", &size), 0x70);
	ck_assert_uint_eq(size, 254 * 8);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_state", "next", NULL), 0x870);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_state", "system_mem", NULL), 0x888);
	ck_assert_uint_eq(struct_size(s, libc, "malloc_state"), 0x898);
	ck_assert_uint_eq(struct_size(s, libc, "_heap_info"), 0x30);
	ck_assert_uint_eq(struct_size(s, libc, "heap_info"), 0x30); /* the typedef */
	ck_assert_uint_eq(member_offset(s, libc, "_heap_info", "mprotect_size", NULL), 0x18);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_par", "tcache_count", NULL), 0x78);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_par", "sbrk_base", NULL), 0x60);
	ck_assert_uint_eq(struct_size(s, libc, "malloc_par"), 0x88);
	ck_assert_uint_eq(struct_size(s, libc, "malloc_chunk"), 0x30);
	ck_assert_uint_eq(member_offset(s, libc, "malloc_chunk", "fd", NULL), 0x10);

	struct md_error *err = md_symbols_member(s, libc, "malloc_state", "no_such_member", &size, &size);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);
	for (int i = 0; i < 2; i++) { /* the second time from the negative cache */
		err = md_symbols_struct_size(s, libc, "no_such_struct_xyz", &size);
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
		md_error_destroy(err);
	}
	/* A struct outside malloc.c: found by the scan of every unit (ld.so's link_map as libc's
	 * DWARF knows it: l_tls_offset is where _thread_db_link_map_l_tls_offset says). */
	uint64_t l_tls = member_offset(s, libc, "link_map", "l_tls_offset", NULL);
	struct md_symbol desc;
	ck_assert_ptr_null(md_symbols_lookup(s, libc, "_thread_db_link_map_l_tls_offset", &desc));
	uint32_t triple[3];
	struct iovec local = {triple, sizeof(triple)}, remote = {(void *)(uintptr_t)desc.address, sizeof(triple)};
	ck_assert_int_eq(process_vm_readv(c.pid, &local, 1, &remote, 1, 0), (ssize_t)sizeof(triple));
	ck_assert_uint_eq(triple[2], l_tls);
	md_symbols_destroy(s);
	child_stop(&c);
}
END_TEST

START_TEST(test_debuginfo_disabled)
{
	struct child c;
	ck_assert(child_start(&c));
	struct md_symbols *s = symbols_for(c.pid, true);
	const struct md_module *libc = libc_of(s);
	size_t n;
	const struct md_module *mods = md_symbols_modules(s, &n);
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(!mods[i].has_debuginfo, "%s has debug info although disabled", mods[i].name);

	struct md_symbol sym;
	struct md_error *err = md_symbols_lookup(s, libc, "main_arena", &sym);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);
	err = md_symbols_lookup(s, libc, "malloc_trim", &sym);
	ck_assert_msg(!err, "malloc_trim: %s", err ? err->message : "");
	ck_assert_int_eq(sym.source, MD_SYMSRC_DYNSYM);
	ck_assert_uint_eq(sym.address, c.trim_addr);
	/* errno is exported (GLIBC_PRIVATE) as a TLS symbol. */
	err = md_symbols_lookup(s, libc, "errno", &sym);
	ck_assert_msg(!err, "errno: %s", err ? err->message : "");
	ck_assert_int_eq(sym.type, MD_SYM_TLS);
	ck_assert_uint_eq(sym.address, 0x10);

	uint64_t off, size;
	err = md_symbols_member(s, libc, "malloc_state", "top", &off, &size);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);
	err = md_symbols_struct_size(s, libc, "malloc_state", &size);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);
	md_symbols_destroy(s);
	child_stop(&c);
}
END_TEST

START_TEST(test_symbolize)
{
	struct child c;
	ck_assert(child_start(&c));
	for (int disabled = 0; disabled < 2; disabled++) {
		struct md_symbols *s = symbols_for(c.pid, disabled);
		uint64_t off = 99;
		const char *name = md_symbols_symbolize(s, c.trim_addr + 5, &off);
		ck_assert_msg(name && strcmp(name, "malloc_trim") == 0, "got %s", name ? name : "(null)");
		ck_assert_uint_eq(off, 5);
		ck_assert_ptr_null(md_symbols_symbolize(s, 0x1000, &off));
		md_symbols_destroy(s);
	}
	child_stop(&c);
}
END_TEST

/* Seize and interrupt the child; true when it is in a ptrace-stop. */
static bool ptrace_stop(pid_t pid)
{
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0)
		return false;
	if (ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0)
		return false;
	int status;
	return waitpid(pid, &status, __WALL) == pid && WIFSTOPPED(status);
}

START_TEST(test_unwind)
{
	struct child c;
	ck_assert(child_start(&c));
	struct md_symbols *s = symbols_for(c.pid, false);
	const struct md_module *libc = libc_of(s);
	const struct md_module *main_mod = md_symbols_find_module(s, NULL);
	ck_assert_msg(ptrace_stop(c.pid), "cannot ptrace-stop the child: %s", strerror(errno));
	uint64_t pcs[64];
	size_t n = 0;
	struct md_error *err = md_unwind_ptrace(NULL, c.pid, pcs, 64, &n);
	ck_assert_msg(!err, "unwind: %s", err ? err->message : "");
	ck_assert_uint_ge(n, 2);
	ck_assert_uint_le(n, 64);
	ck_assert_msg(md_symbols_module_at(s, pcs[0]) == libc, "pc 0x%" PRIx64 " is not in libc", pcs[0]);
	/* Somewhere up the stack is child_main, in the test executable. */
	bool found_main = false;
	for (size_t i = 1; i < n; i++)
		found_main |= md_symbols_module_at(s, pcs[i]) == main_mod;
	ck_assert_msg(found_main, "no frame of the executable among %zu", n);
	/* The bound is honoured. */
	size_t one = 0;
	err = md_unwind_ptrace(NULL, c.pid, pcs, 1, &one);
	ck_assert_msg(!err, "unwind: %s", err ? err->message : "");
	ck_assert_uint_eq(one, 1);
	ptrace(PTRACE_DETACH, c.pid, 0, 0);
	md_symbols_destroy(s);
	child_stop(&c);
}
END_TEST

/* A minimal live target: every page is read straight from the process. */
static struct md_error *test_read_present(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {buf, len}, remote = {(void *)(uintptr_t)addr, len};
	ssize_t r = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (r != (ssize_t)len)
		return md_error_fault(MD_ERR_FAULT, addr, "process_vm_readv at 0x%" PRIx64 " failed", addr);
	return NULL;
}

static const struct md_target_ops test_ops = {.read_present = test_read_present};

static struct md_target *test_target(pid_t pid, struct md_symbols *s)
{
	struct md_target *t = calloc(1, sizeof(*t));
	ck_assert_ptr_nonnull(t);
	t->source = MD_SOURCE_LIVE;
	t->pid = pid;
	t->ops = &test_ops;
	t->symbols = s;
	char path[64], *text = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	struct md_error *err = md_read_file(path, &text, &len);
	ck_assert_msg(!err, "maps: %s", err ? err->message : "");
	err = md_parse_maps(text, len, &t->mappings, &t->n_mappings);
	free(text);
	ck_assert_msg(!err, "maps: %s", err ? err->message : "");
	for (size_t i = 0; i < t->n_mappings; i++) {
		size_t pages = (size_t)((t->mappings[i].end - t->mappings[i].start) / MD_PAGE_SIZE);
		/* Residency unknown: read everything through read_present. Only the pages the test
		 * asks for are touched, and they are resident (relocated GOT, link maps). */
		t->mappings[i].pages = malloc(pages);
		ck_assert_ptr_nonnull(t->mappings[i].pages);
		memset(t->mappings[i].pages, MD_PAGE_UNKNOWN, pages);
	}
	md_target_cache_drop(t);
	return t;
}

START_TEST(test_tls_offset)
{
	struct child c;
	ck_assert(child_start(&c));
	struct md_symbols *s = symbols_for(c.pid, false);
	const struct md_module *libc = libc_of(s);
	struct md_target *t = test_target(c.pid, s);
	ck_assert_msg(ptrace_stop(c.pid), "cannot ptrace-stop the child: %s", strerror(errno));
	struct user_regs_struct regs;
	ck_assert_int_eq(ptrace(PTRACE_GETREGS, c.pid, 0, &regs), 0);

	/* libc: through its TPOFF64 GOT slot. */
	int64_t off = 0;
	struct md_error *err = md_symbols_tls_offset(s, libc, t, &off);
	ck_assert_msg(!err, "libc TLS offset: %s", err ? err->message : "");
	ck_assert_uint_eq((uint64_t)off, c.libc_tls);
	ck_assert_uint_eq(regs.fs_base - (uint64_t)off + 0x10, c.errno_addr);
	/* Cached, same answer. */
	int64_t again = 0;
	ck_assert_ptr_null(md_symbols_tls_offset(s, libc, t, &again));
	ck_assert_int_eq(again, off);

	/* libdw has static TLS but no TPOFF64 relocation (general-dynamic model): through the
	 * link_map and _thread_db_link_map_l_tls_offset. */
	const struct md_module *libdw = md_symbols_find_module(s, "libdw.so");
	ck_assert_ptr_nonnull(libdw);
	ck_assert_uint_ne(c.libdw_tls, 0);
	err = md_symbols_tls_offset(s, libdw, t, &off);
	ck_assert_msg(!err, "libdw TLS offset: %s", err ? err->message : "");
	ck_assert_uint_eq((uint64_t)off, c.libdw_tls);

	/* The executable: its own PT_TLS, first in the static TLS area. */
	const struct md_module *main_mod = md_symbols_find_module(s, NULL);
	ck_assert_ptr_nonnull(main_mod);
	struct md_symbol var;
	err = md_symbols_lookup(s, main_mod, "exe_tls_var", &var);
	ck_assert_msg(!err, "exe_tls_var: %s", err ? err->message : "");
	ck_assert_int_eq(var.type, MD_SYM_TLS);
	err = md_symbols_tls_offset(s, main_mod, t, &off);
	ck_assert_msg(!err, "executable TLS offset: %s", err ? err->message : "");
	ck_assert_uint_eq(regs.fs_base - (uint64_t)off + var.address, c.exe_tls_addr);

	/* A module without TLS. */
	const struct md_module *ld = md_symbols_find_module(s, "ld-linux");
	ck_assert_ptr_nonnull(ld);
	err = md_symbols_tls_offset(s, ld, t, &off);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
	md_error_destroy(err);

	ptrace(PTRACE_DETACH, c.pid, 0, 0);
	md_target_destroy(t); /* destroys s too */
	child_stop(&c);
}
END_TEST

/* C++ layouts as the compiler made them (tests/targets/symx/libsymx.cc), in a DWARF 5 and a
 * DWARF 4 build: qualified names through namespaces, a nested class and an anonymous namespace,
 * base-class members, and bit-field positions in both encodings. */
static void check_cxx_layouts(struct md_symbols *s, const struct md_test_proc *p, const char *lib)
{
	const struct md_module *mod = md_symbols_find_module(s, lib);
	ck_assert_msg(mod, "%s not among the modules", lib);
	uint64_t size = 0;
	ck_assert_uint_eq(struct_size(s, mod, "symx::inner::Span"), md_test_truth(p, "span.size"));
	ck_assert_uint_eq(struct_size(s, mod, "::symx::inner::Span"), md_test_truth(p, "span.size"));
	ck_assert_uint_eq(member_offset(s, mod, "symx::inner::Span", "num_pages", &size), md_test_truth(p, "span.num_pages"));
	ck_assert_uint_eq(size, 4);
	ck_assert_uint_eq(member_offset(s, mod, "symx::inner::Span", "next", &size), md_test_truth(p, "span.next"));
	ck_assert_uint_eq(size, 8);
	ck_assert_uint_eq(member_offset(s, mod, "symx::inner::Span", "link", &size), md_test_truth(p, "span.link"));
	ck_assert_uint_eq(size, md_test_truth(p, "link.size"));
	ck_assert_uint_eq(struct_size(s, mod, "symx::inner::Span::Link"), md_test_truth(p, "link.size"));
	ck_assert_uint_eq(member_offset(s, mod, "symx::inner::Span::Link", "tag", &size), md_test_truth(p, "link.tag"));
	ck_assert_uint_eq(size, 2);
	ck_assert_uint_eq(member_offset(s, mod, "symx::inner::Span::Link", "weight", NULL), md_test_truth(p, "link.weight"));
	ck_assert_uint_eq(struct_size(s, mod, "symx::Derived"), md_test_truth(p, "derived.size"));
	ck_assert_uint_eq(member_offset(s, mod, "symx::Derived", "base_small", NULL), md_test_truth(p, "derived.base_small"));
	ck_assert_uint_eq(member_offset(s, mod, "symx::Derived", "own", NULL), md_test_truth(p, "derived.own"));
	ck_assert_uint_eq(member_offset(s, mod, "symx::Derived", "name", &size), md_test_truth(p, "derived.name"));
	ck_assert_uint_eq(size, 12);
	ck_assert_uint_eq(struct_size(s, mod, "(anonymous namespace)::Hidden"), md_test_truth(p, "hidden.size"));
	ck_assert_uint_eq(member_offset(s, mod, "Hidden", "h1", NULL), md_test_truth(p, "hidden.h1"));
	ck_assert_uint_eq(struct_size(s, mod, "SymxBits"), md_test_truth(p, "bits.size"));

	/* Not found: the right name in the wrong scope, a nested class without its outer one. */
	static const char *const absent[] = {"Span", "symx::Span", "inner::Span", "symx::inner::Nope", "Link",
					     "symx::inner::Span::", "symx::::Span"};
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		struct md_error *err = md_symbols_struct_size(s, mod, absent[i], &size);
		ck_assert_msg(err && err->code == MD_ERR_NOT_FOUND, "%s: %s found", lib, absent[i]);
		md_error_destroy(err);
	}

	static const struct {
		const char *type, *key, *member;
	} bit_fields[] = {
		{"SymxBits", "SymxBits", "a"}, {"SymxBits", "SymxBits", "b"}, {"SymxBits", "SymxBits", "c"},
		{"SymxBits", "SymxBits", "d"}, {"SymxBits", "SymxBits", "e"},
		{"symx::inner::Flags", "Flags", "sampled"}, {"symx::inner::Flags", "Flags", "size_class"},
		{"symx::inner::Flags", "Flags", "location"},
	};
	for (size_t i = 0; i < sizeof(bit_fields) / sizeof(bit_fields[0]); i++) {
		char key[64], *end;
		snprintf(key, sizeof(key), "bits.%s.%s ", bit_fields[i].key, bit_fields[i].member);
		const char *line = strstr(p->truth, key);
		ck_assert_msg(line, "no truth for %s", key);
		unsigned long long want_offset = strtoull(line + strlen(key), &end, 10);
		unsigned long long want_size = strtoull(end, NULL, 10);
		uint64_t bit_offset = 0, bit_size = 0;
		struct md_error *err = md_symbols_member_bits(s, mod, bit_fields[i].type, bit_fields[i].member,
							      &bit_offset, &bit_size);
		ck_assert_msg(!err, "%s %s.%s: %s", lib, bit_fields[i].type, bit_fields[i].member, err ? err->message : "");
		ck_assert_msg(bit_offset == want_offset && bit_size == want_size,
			      "%s %s.%s: bits %" PRIu64 "+%" PRIu64 ", the compiler put them at %llu+%llu", lib,
			      bit_fields[i].type, bit_fields[i].member, bit_offset, bit_size, want_offset, want_size);
	}
	/* A member that is no bit-field, in bits. */
	uint64_t bit_offset = 0, bit_size = 0;
	ck_assert_ptr_null(md_symbols_member_bits(s, mod, "SymxBits", "tail", &bit_offset, &bit_size));
	ck_assert_uint_eq(bit_offset, md_test_truth(p, "bits.tail") * 8);
	ck_assert_uint_eq(bit_size, 16);
}

START_TEST(test_cxx_layouts)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "symx_truth", NULL));
	struct md_symbols *s = symbols_for(p.pid, false);
	check_cxx_layouts(s, &p, "libsymx5.so");
	check_cxx_layouts(s, &p, "libsymx4.so");
	md_symbols_destroy(s);
	md_test_proc_stop(&p);
}
END_TEST

/* Dynamic TLS (issue 13): libsymx5.so is dlopen'ed, so its __thread variable lives in blocks
 * that __tls_get_addr allocates per thread and the DTV points at. Each thread that used it has
 * the value it printed at the address it printed; threads that never did (started before or
 * after the dlopen, and the main thread) have no block: NOT_FOUND. */
START_TEST(test_dynamic_tls)
{
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "symx_truth", NULL));
	struct md_live_capture cap;
	struct md_target *t = md_test_live_stopped(p.pid, false, &cap);
	const struct md_module *mod = md_target_find_module(t, "libsymx5.so");
	ck_assert_ptr_nonnull(mod);
	struct md_symbol var;
	struct md_error *err = md_target_symbol(t, mod, "symx_tls_value", &var);
	ck_assert_msg(!err, "symx_tls_value: %s", err ? err->message : "");
	ck_assert_int_eq(var.type, MD_SYM_TLS);
	const struct md_module *mod4 = md_target_find_module(t, "libsymx4.so");
	ck_assert_ptr_nonnull(mod4);
	struct md_symbol var4;
	ck_assert_ptr_null(md_target_symbol(t, mod4, "symx_tls_value", &var4));
	/* The public entry point of the bit positions. */
	uint64_t bit_offset = 0, bit_size = 0;
	ck_assert_ptr_null(md_target_member_bits(t, mod, "symx::inner::Flags", "size_class", &bit_offset, &bit_size));
	ck_assert_uint_eq(bit_offset, 33);
	ck_assert_uint_eq(bit_size, 12);

	size_t n_threads = 0;
	const struct md_thread *threads = md_target_threads(t, &n_threads);
	ck_assert_uint_eq(n_threads, 5);
	static const char *const names[] = {"early_used", "late_used", "early_unused", "late_unused", NULL};
	size_t used = 0, unused = 0;
	for (size_t i = 0; i < n_threads; i++) {
		const char *name = threads[i].tid == p.pid ? "main" : NULL;
		for (size_t k = 0; !name && names[k]; k++) {
			char key[32];
			snprintf(key, sizeof(key), "%s.tid", names[k]);
			if (md_test_truth(&p, key) == (unsigned long long)threads[i].tid)
				name = names[k];
		}
		ck_assert_msg(name, "thread %d is none of the target's", (int)threads[i].tid);
		uint64_t addr = 0;
		err = md_target_tls_address(t, mod, &threads[i], var.address, &addr);
		if (strstr(name, "_used")) {
			char key[32];
			ck_assert_msg(!err, "%s: %s", name, err ? err->message : "");
			snprintf(key, sizeof(key), "%s.addr", name);
			ck_assert_uint_eq(addr, md_test_truth(&p, key));
			uint64_t value = 0;
			ck_assert_ptr_null(md_target_read_u64(t, addr, &value));
			snprintf(key, sizeof(key), "%s.value", name);
			ck_assert_uint_eq(value, md_test_truth(&p, key));
			/* the same variable of the DWARF 4 copy, another module id */
			uint64_t addr4 = 0;
			err = md_target_tls_address(t, mod4, &threads[i], var4.address, &addr4);
			ck_assert_msg(!err, "%s, libsymx4: %s", name, err ? err->message : "");
			snprintf(key, sizeof(key), "%s.addr4", name);
			ck_assert_uint_eq(addr4, md_test_truth(&p, key));
			ck_assert_ptr_null(md_target_read_u64(t, addr4, &value));
			snprintf(key, sizeof(key), "%s.value4", name);
			ck_assert_uint_eq(value, md_test_truth(&p, key));
			used++;
		} else {
			ck_assert_msg(err && err->code == MD_ERR_NOT_FOUND, "%s: %s", name,
				      err ? err->message : "an address for a thread that never used the variable");
			md_error_destroy(err);
			unused++;
		}
	}
	ck_assert_uint_eq(used, 2);
	ck_assert_uint_eq(unused, 3);
	md_test_live_release(t, &cap);

	/* libsymx4.so closed and opened again: the same module id, a newer generation. The threads'
	 * DTV entries for it still point at their blocks of the closed copy (glibc frees them at the
	 * thread's next __tls_get_addr only): stale, so NOT_FOUND, not the old address. */
	ck_assert_uint_eq(md_test_proc_ask_u64(&p, "reload", "reloaded "), md_test_truth(&p, "lib4.modid"));
	t = md_test_live_stopped(p.pid, false, &cap);
	mod = md_target_find_module(t, "libsymx4.so");
	ck_assert_ptr_nonnull(mod);
	ck_assert_ptr_null(md_target_symbol(t, mod, "symx_tls_value", &var));
	threads = md_target_threads(t, &n_threads);
	ck_assert_uint_eq(n_threads, 5);
	for (size_t i = 0; i < n_threads; i++) {
		uint64_t addr = 0;
		err = md_target_tls_address(t, mod, &threads[i], var.address, &addr);
		ck_assert_msg(err && err->code == MD_ERR_NOT_FOUND, "thread %d: %s", (int)threads[i].tid,
			      err ? err->message : "an address in a block of the closed copy");
		md_error_destroy(err);
	}
	md_test_live_release(t, &cap);
	md_test_proc_stop(&p);
}
END_TEST

/* The kernel writes "core" (or core.PID) in the cwd when core_pattern is a plain name. */
static bool core_pattern_is_file(void)
{
	FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
	char pat[256] = "";
	if (f) {
		if (!fgets(pat, sizeof(pat), f))
			pat[0] = 0;
		fclose(f);
	}
	return pat[0] && pat[0] != '|';
}

/* A session's symbols across attaches (issue 13): a refresh keeps every module still mapped from
 * the same file with its symbol table, sets up one the target dlopened since, and refuses to keep a
 * module whose file changed on disk (then the symbols are made anew). */
START_TEST(test_refresh)
{
	char dir[] = "/tmp/md-refresh-XXXXXX", copy[128], cmd[300];
	ck_assert(mkdtemp(dir));
	snprintf(copy, sizeof(copy), "%s/libz.so.1", dir);
	snprintf(cmd, sizeof(cmd), "cp /lib/x86_64-linux-gnu/libz.so.1 '%s'", copy);
	ck_assert_int_eq(system(cmd), 0);
	struct md_test_proc p;
	ck_assert(md_test_proc_start(&p, "dlopener", NULL));
	struct md_symbols_counters k = { 0 };
	struct md_symbols_options o = { .counters = &k };
	struct md_symbols *s = NULL;
	ck_assert(md_symbols_create_pid(p.pid, &o, &s) == NULL);
	size_t n = 0;
	md_symbols_modules(s, &n);
	ck_assert_uint_gt(n, 2);
	ck_assert_uint_eq(k.modules_read, n);
	struct md_symbol sym;
	const struct md_module *libc = md_symbols_find_module(s, "libc.so");
	ck_assert_ptr_nonnull(libc);
	ck_assert(md_symbols_lookup(s, libc, "malloc", &sym) == NULL);
	uint64_t malloc_at = sym.address, tables = k.symbol_tables;
	ck_assert_uint_eq(tables, 1);

	/* nothing changed: everything kept, libc's table not read again */
	ck_assert(md_symbols_refresh_pid(s, p.pid) == NULL);
	ck_assert_uint_eq(k.modules_kept, n);
	ck_assert_uint_eq(k.modules_read, n);
	libc = md_symbols_find_module(s, "libc.so");
	ck_assert(md_symbols_lookup(s, libc, "malloc", &sym) == NULL);
	ck_assert_uint_eq(sym.address, malloc_at);
	ck_assert_uint_eq(k.symbol_tables, tables);

	/* a dlopen: one module more, read from its file; its symbols found */
	snprintf(cmd, sizeof(cmd), "dlopen %s", copy);
	ck_assert_uint_eq(md_test_proc_ask_u64(&p, cmd, "loaded "), 1);
	ck_assert(md_symbols_refresh_pid(s, p.pid) == NULL);
	size_t n2 = 0;
	md_symbols_modules(s, &n2);
	ck_assert_uint_eq(n2, n + 1);
	ck_assert_uint_eq(k.modules_read, n + 1);
	ck_assert_uint_eq(k.modules_kept, 2 * n);
	const struct md_module *z = md_symbols_find_module(s, "libz.so");
	ck_assert_ptr_nonnull(z);
	ck_assert_str_eq(z->name, copy);
	ck_assert(md_symbols_lookup(s, z, "zlibVersion", &sym) == NULL);
	ck_assert(sym.address >= z->start && sym.address < z->end);
	ck_assert_uint_eq(k.symbol_tables, tables + 1);

	/* the file changes under the mapping (same inode, new mtime): not kept */
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 1000000000 } };
	ck_assert_int_eq(utimensat(AT_FDCWD, copy, times, 0), 0);
	struct md_error *err = md_symbols_refresh_pid(s, p.pid);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_BAD_DATA);
	ck_assert_msg(strstr(err->message, "libz.so.1 changed on disk"), "%s", err->message);
	md_error_destroy(err);
	md_symbols_destroy(s);
	s = NULL;
	ck_assert(md_symbols_create_pid(p.pid, &o, &s) == NULL);
	ck_assert_uint_eq(k.modules_read, 2 * (n + 1));

	/* the symbols of another process: refused */
	err = md_symbols_refresh_pid(s, getpid());
	ck_assert_ptr_nonnull(err);
	md_error_destroy(err);
	md_symbols_destroy(s);
	md_test_proc_stop(&p);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The session's cache by build-id (issue 13): a second process of the same program gets libc's
 * symbols, and its misses, without reading libc's table, at its own addresses. */
START_TEST(test_cache_by_build_id)
{
	struct md_test_proc a, b;
	ck_assert(md_test_proc_start(&a, "dlopener", NULL));
	ck_assert(md_test_proc_start(&b, "dlopener", NULL));
	struct md_symbols_cache *cache = NULL;
	ck_assert(md_symbols_cache_create(&cache) == NULL);
	struct md_symbols_counters k = { 0 };
	struct md_symbols_options o = { .counters = &k, .cache = cache };
	struct md_symbols *sa = NULL, *sb = NULL, *plain = NULL;
	ck_assert(md_symbols_create_pid(a.pid, &o, &sa) == NULL);
	ck_assert(md_symbols_create_pid(b.pid, &o, &sb) == NULL);
	const struct md_module *la = md_symbols_find_module(sa, "libc.so"), *lb = md_symbols_find_module(sb, "libc.so");
	ck_assert(la && lb && la->build_id && strcmp(la->build_id, lb->build_id) == 0);
	const char *names[] = { "malloc", "main_arena", "__libc_malloc", "mp_", "no_such_symbol_here" };
	struct md_symbol ya[5], yb[5];
	bool found_a[5];
	for (int i = 0; i < 5; i++) {
		struct md_error *err = md_symbols_lookup(sa, la, names[i], &ya[i]);
		found_a[i] = err == NULL;
		md_error_destroy(err);
	}
	ck_assert(found_a[0] && !found_a[4]);
	ck_assert_uint_eq(k.symbol_tables, 1);
	ck_assert_uint_eq(k.cached, 0);
	/* the second process: the same answers, relocated to its own libc, from the cache */
	for (int i = 0; i < 5; i++) {
		struct md_error *err = md_symbols_lookup(sb, lb, names[i], &yb[i]);
		ck_assert_msg((err == NULL) == found_a[i], "%s: %s", names[i], err ? err->message : "found");
		if (err)
			ck_assert_int_eq(err->code, MD_ERR_NOT_FOUND);
		md_error_destroy(err);
	}
	ck_assert_uint_eq(k.symbol_tables, 1);
	ck_assert_uint_eq(k.cached, 5);
	/* ground truth: process b's own table, read without the cache */
	ck_assert(md_symbols_create_pid(b.pid, NULL, &plain) == NULL);
	const struct md_module *lp = md_symbols_find_module(plain, "libc.so");
	for (int i = 0; i < 5; i++) {
		if (!found_a[i])
			continue;
		struct md_symbol truth;
		ck_assert(md_symbols_lookup(plain, lp, names[i], &truth) == NULL);
		ck_assert_msg(truth.address == yb[i].address && truth.size == yb[i].size && truth.type == yb[i].type &&
				      truth.source == yb[i].source,
			      "%s: 0x%" PRIx64 " from the cache, 0x%" PRIx64 " from the table", names[i], yb[i].address,
			      truth.address);
		ck_assert_uint_eq(yb[i].address - lb->bias, ya[i].address - la->bias);
	}
	ck_assert_str_eq(md_symbols_module_debug_file(sb, lb, NULL) ? md_symbols_module_debug_file(sb, lb, NULL) : "",
			 md_symbols_module_debug_file(plain, lp, NULL) ? md_symbols_module_debug_file(plain, lp, NULL) : "");
	md_symbols_destroy(plain);
	md_symbols_destroy(sa);
	md_symbols_destroy(sb);
	md_symbols_cache_destroy(cache);
	md_test_proc_stop(&a);
	md_test_proc_stop(&b);
}
END_TEST

START_TEST(test_core)
{
	/* Not a core: refused. */
	elf_version(EV_CURRENT);
	int fd = open("/proc/self/exe", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	ck_assert_ptr_nonnull(elf);
	struct md_symbols *s = NULL;
	struct md_symbols_options opts = {0};
	struct md_error *err = md_symbols_create_core(elf, &opts, &s);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->code, MD_ERR_BAD_FILE);
	md_error_destroy(err);
	elf_end(elf);
	close(fd);

	if (!core_pattern_is_file()) {
		fprintf(stderr, "check_symbols: core_pattern is a pipe, real-core check not run\n");
		return;
	}
	char dir[] = "/tmp/md-symbols-core-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
		setrlimit(RLIMIT_CORE, &rl);
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
		if (chdir(dir) != 0)
			_exit(2);
		signal(SIGABRT, SIG_DFL);
		raise(SIGABRT);
		_exit(3);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status));
	char core_path[512] = "";
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "core", 4) == 0)
			snprintf(core_path, sizeof(core_path), "%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	ck_assert_msg(core_path[0] && WCOREDUMP(status), "no core was written in %s", dir);

	fd = open(core_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	ck_assert_ptr_nonnull(elf);
	err = md_symbols_create_core(elf, &opts, &s);
	ck_assert_msg(!err, "create_core: %s", err ? err->message : "");
	/* The core is a fork of us: same libc at the same place, same executable. */
	const struct md_module *libc = libc_of(s);
	Dl_info info;
	ck_assert(dladdr((void *)(uintptr_t)malloc_trim, &info));
	ck_assert_uint_eq(libc->bias, (uint64_t)(uintptr_t)info.dli_fbase);
	const struct md_module *main_mod = md_symbols_find_module(s, NULL);
	ck_assert_ptr_nonnull(main_mod);
	ck_assert_ptr_eq(main_mod, md_symbols_module_at(s, (uint64_t)(uintptr_t)child_main));
	struct md_symbol sym;
	err = md_symbols_lookup(s, libc, "malloc_trim", &sym);
	ck_assert_msg(!err, "malloc_trim in core: %s", err ? err->message : "");
	ck_assert_uint_eq(sym.address, (uint64_t)(uintptr_t)malloc_trim);
	if (libc_debug_file_present(libc)) {
		err = md_symbols_lookup(s, libc, "main_arena", &sym);
		ck_assert_msg(!err, "main_arena in core: %s", err ? err->message : "");
		ck_assert_int_eq(sym.source, MD_SYMSRC_SYMTAB);
	}
	md_symbols_destroy(s);
	elf_end(elf);
	close(fd);
	unlink(core_path);
	rmdir(dir);
}
END_TEST

Suite *symbols_suite(void)
{
	Suite *suite = suite_create("symbols");
	TCase *tc = tcase_create("live");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_modules);
	tcase_add_test(tc, test_refresh);
	tcase_add_test(tc, test_cache_by_build_id);
	tcase_add_test(tc, test_libc_symbols);
	tcase_add_test(tc, test_dwarf_layouts);
	tcase_add_test(tc, test_debuginfo_disabled);
	tcase_add_test(tc, test_symbolize);
	tcase_add_test(tc, test_unwind);
	tcase_add_test(tc, test_tls_offset);
	tcase_add_test(tc, test_cxx_layouts);
	tcase_add_test(tc, test_dynamic_tls);
	suite_add_tcase(suite, tc);
	TCase *core = tcase_create("core");
	tcase_set_timeout(core, 60);
	tcase_add_test(core, test_core);
	suite_add_tcase(suite, core);
	return suite;
}
