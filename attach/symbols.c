/* Symbol resolution over libdwfl, for a live process or a core.
 *
 * Modules are reported once (dwfl_linux_proc_report / dwfl_core_file_report) and their main ELF
 * files opened eagerly, which is cheap; everything costly is lazy and cached per module: the
 * name->symbol hash (built once from dwfl_module_getsymtab, which merges the separate debug
 * file's .symtab), the DWARF (opened on the first struct query) and the static-TLS offset.
 * Debug files are only searched when a lookup needs them, so a DEBUGINFOD_URLS download happens
 * for the one module a plugin asks about, not for every library of the process. */
#include <dirent.h>
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "symbols.h"

/* Bounds on what we read from the target or from files, so that hostile data cannot make a
 * loop run away. */
#define MAX_MODULES 65536
#define MAX_LINK_MAP_STEPS 4096
#define MAX_TYPE_CHAIN 16
#define MAX_ANON_DEPTH 8
#define MAX_SCOPE_DEPTH 16 /* namespaces and classes around a type */
#define MAX_NAME_PARTS 16  /* "a::b::c" */
#define MAX_TLS_OFFSET (1ULL << 30)
#define MAX_TLS_MODID (1ULL << 20)
#define MAX_DYNAMIC_ENTRIES 4096

struct sym_entry {
	const char *name; /* NULL marks an empty slot; points into libelf's string table */
	uint32_t hash;
	bool global;
	struct md_symbol sym;
};

struct sym_table {
	struct sym_entry *slots;
	size_t mask; /* capacity - 1; capacity is a power of two at least twice the count */
	size_t count;
};

struct dw_member {
	const char *name; /* in .debug_str, valid while the Dwarf lives */
	uint64_t offset, size;
	/* From the struct's start, bit 0 the lowest of byte 0 (x86-64 is little-endian); for a
	 * member that is no bit-field offset * 8 and size * 8. */
	uint64_t bit_offset, bit_size;
};

struct dw_struct {
	char *name;
	bool found;
	uint64_t size;
	struct dw_member *members;
	size_t n_members;
};

/* Which Elf of the module a symbol came from, and whether that Elf has a real .symtab
 * (libdwfl takes .symtab when there is one, else .dynsym). */
struct elf_symsrc {
	Elf *elf;
	enum md_symbol_source source;
};

struct module_state {
	Dwfl_Module *dwmod;
	char *name;
	char *build_id;
	char *file;
	char *soname; /* DT_SONAME, or NULL */
	Elf *elf; /* main ELF (owned by libdwfl), NULL when it could not be found */
	uint64_t bias;
	bool is_libc;

	int syms_state; /* 0 not loaded, 1 loaded, -1 failed */
	struct sym_table syms;
	struct elf_symsrc symsrc[4];

	bool dwarf_tried;
	Dwarf *dwarf;
	struct dw_struct *structs;
	size_t n_structs, cap_structs;

	bool tls_known;
	int64_t tls_offset;
	bool tls_dynamic;    /* no static TLS block: its variables are reached through the DTV */
	uint64_t tls_modid;  /* l_tls_modid, 0 until looked up */
	uint64_t link_map;   /* its struct link_map in the target, with tls_modid */
	bool debug_from_debuginfod; /* the separate debug file came from a debuginfod server */

	/* The file the module was read from, as it was then: a refresh keeps the module only while
	 * the file is still the same (a copy over it in place changes size or mtime). */
	char *cache_key; /* the module in the session's cache: build-id, or file and identity; NULL: not cached */
	const char *cached_debug_file; /* the debug file a lookup served by the cache stands for */
	bool cached_from_debuginfod;
	bool file_id_valid;
	dev_t file_dev;
	ino_t file_ino;
	off_t file_size;
	struct timespec file_mtime;
};

/* Symbolization is asked for the same return addresses over and over (every thread of a
 * process blocks in the same few places); dwfl_module_addrinfo is a slow scan. */
#define PC_CACHE_SIZE 4096
struct pc_cache_entry {
	uint64_t pc;
	uint64_t offset;
	const char *name; /* NULL with valid: no symbol */
	bool valid;
};

struct md_symbols {
	struct pc_cache_entry *pc_cache;
	struct md_symbols_counters own_counters;
	struct md_symbols_counters *counters; /* the session's, or &own_counters */
	struct md_symbols_cache *cache;       /* the session's, or NULL */
	uint64_t auxv[512]; /* live: /proc/PID/auxv as read; an exec replaces it */
	ssize_t auxv_len;
	bool network_blocked; /* in the pause: debug files from disk only, never from debuginfod */
	Dwfl *dwfl;
	Dwfl_Callbacks callbacks; /* libdwfl keeps a pointer to it */
	char *debuginfo_path;
	bool debuginfo_disabled;
	pid_t pid;          /* 0 for a core */
	char *root_prefix;  /* "/proc/PID/root" when the target lives in another mount namespace */
	char *sysroot;      /* cores */

	Dwfl_Module **dwmods; /* as collected, before sorting */
	size_t n_dwmods, cap_dwmods;

	struct md_module *modules; /* sorted by start */
	struct module_state *states; /* parallel to modules */
	size_t n_modules;
	ssize_t main_index; /* -1 when unknown */
};

/* ---- small helpers ---- */

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);
	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static struct md_error *dwfl_error(enum md_error_code code, const char *what)
{
	return md_error_create(code, "%s: %s", what, dwfl_errmsg(-1));
}

static ssize_t module_index(const struct md_symbols *s, const struct md_module *mod)
{
	if (!s || !mod || mod < s->modules || mod >= s->modules + s->n_modules)
		return -1;
	return mod - s->modules;
}

/* ---- libdwfl callbacks ---- */

/* Debug info forbidden: find nothing, so libdwfl falls back to the module's own tables. */
static int find_no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			     const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			     char **debuginfo_file_name)
{
	(void)mod, (void)userdata, (void)modname, (void)base, (void)file_name;
	(void)debuglink_file, (void)debuglink_crc, (void)debuginfo_file_name;
	return -1;
}

/* Debug files: the standard search (build-id and debuglink paths, then debuginfod servers named in
 * $DEBUGINFOD_URLS, whose client keeps its own on-disk cache). While the target is stopped no
 * download may start: the pause would wait for the network. libdebuginfod reads the variable at
 * each query, so it is cleared around the call then. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			  const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			  char **debuginfo_file_name)
{
	struct md_symbols *s = userdata ? *userdata : NULL;
	char *urls = NULL;
	if (s && s->network_blocked && getenv("DEBUGINFOD_URLS")) {
		urls = strdup(getenv("DEBUGINFOD_URLS"));
		unsetenv("DEBUGINFOD_URLS");
	}
	int fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file, debuglink_crc,
					      debuginfo_file_name);
	if (urls) {
		setenv("DEBUGINFOD_URLS", urls, 1);
		free(urls);
	}
	/* libdwfl leaves the name unset for a file from debuginfod: name it after the client's
	 * cache file (libdwfl owns and frees the name), and remember where it came from. */
	if (fd >= 0 && !*debuginfo_file_name) {
		char link[64], path[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(link, path, sizeof(path) - 1);
		if (n > 0) {
			path[n] = 0;
			*debuginfo_file_name = strdup(path);
		}
		for (size_t i = 0; s && s->states && i < s->n_modules; i++)
			if (s->states[i].dwmod == mod)
				s->states[i].debug_from_debuginfod = true;
	}
	return fd;
}

void md_symbols_block_network(struct md_symbols *symbols, bool blocked)
{
	if (symbols)
		symbols->network_blocked = blocked;
}

const char *md_symbols_module_debug_file(const struct md_symbols *symbols, const struct md_module *mod,
					 bool *from_debuginfod_ret)
{
	ssize_t i = module_index(symbols, mod);
	if (i < 0)
		return NULL;
	const char *debugfile = NULL;
	dwfl_module_info(symbols->states[i].dwmod, NULL, NULL, NULL, NULL, NULL, NULL, &debugfile);
	bool from_debuginfod = debugfile && symbols->states[i].debug_from_debuginfod;
	if (!debugfile && symbols->states[i].cached_debug_file) {
		/* answered by the cache: the debug file that the module's first reading found */
		debugfile = symbols->states[i].cached_debug_file;
		from_debuginfod = symbols->states[i].cached_from_debuginfod;
	}
	if (from_debuginfod_ret)
		*from_debuginfod_ret = from_debuginfod;
	return debugfile;
}

/* The file of a deleted mapping is still reachable through /proc/PID/map_files/START-END;
 * libdwfl would otherwise rebuild it from target memory (which could fault pages in). */
static int open_map_file(pid_t pid, Dwarf_Addr base, char **file_name)
{
	char dir_path[64];
	snprintf(dir_path, sizeof(dir_path), "/proc/%d/map_files", (int)pid);
	DIR *dir = opendir(dir_path);
	if (!dir)
		return -1;
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%" PRIx64 "-", (uint64_t)base);
	int fd = -1;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char *path = NULL;
		if (asprintf(&path, "%s/%s", dir_path, de->d_name) < 0)
			break;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			*file_name = path;
		else
			free(path);
		break;
	}
	closedir(dir);
	return fd;
}

/* Open prefix + path when it is a regular file (a special device could block on open). */
static int open_prefixed(const char *prefix, const char *path, char **file_name)
{
	char *full = NULL;
	if (asprintf(&full, "%s%s", prefix, path) < 0)
		return -1;
	struct stat st;
	if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
		free(full);
		return -1;
	}
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(full);
		return -1;
	}
	*file_name = full;
	return fd;
}

static int proc_find_elf(Dwfl_Module *mod, void **userdata, const char *module_name, Dwarf_Addr base,
			 char **file_name, Elf **elfp)
{
	struct md_symbols *s = userdata ? *userdata : NULL;
	/* libdwfl would read the vDSO image out of the target through /proc/PID/mem, faulting
	 * in vDSO pages the target never touched: go without it. */
	if (strncmp(module_name, "[vdso", 5) == 0) {
		*elfp = NULL;
		return -1;
	}
	if (s && module_name[0] == '/') {
		int fd = -1;
		if (ends_with(module_name, " (deleted)"))
			fd = open_map_file(s->pid, base, file_name);
		else
			fd = open_prefixed(s->root_prefix ? s->root_prefix : "", module_name, file_name);
		if (fd >= 0) {
			/* Read, never mmap, the target's own files: a page we map too would count
			 * as shared in the target's smaps during the pause. */
			*elfp = elf_begin(fd, ELF_C_READ, NULL);
			return fd;
		}
	}
	return dwfl_linux_proc_find_elf(mod, userdata, module_name, base, file_name, elfp);
}

static int core_find_elf(Dwfl_Module *mod, void **userdata, const char *module_name, Dwarf_Addr base,
			 char **file_name, Elf **elfp)
{
	struct md_symbols *s = userdata ? *userdata : NULL;
	/* The sysroot copy first: dwfl_build_id_find_elf marks a module it cannot find as having
	 * no ELF at all. libdwfl checks the build-id of whatever we return. */
	if (s && s->sysroot && module_name[0] == '/') {
		int fd = open_prefixed(s->sysroot, module_name, file_name);
		if (fd >= 0)
			return fd;
	}
	return dwfl_build_id_find_elf(mod, userdata, module_name, base, file_name, elfp);
}

/* ---- module list ---- */

static int collect_module(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start, void *arg)
{
	(void)name, (void)start;
	struct md_symbols *s = arg;
	/* find_elf callbacks reach the md_symbols through the module's userdata. */
	*userdata = s;
	if (s->n_dwmods >= MAX_MODULES)
		return DWARF_CB_ABORT;
	if (s->n_dwmods == s->cap_dwmods) {
		size_t cap = s->cap_dwmods ? s->cap_dwmods * 2 : 64;
		Dwfl_Module **n = realloc(s->dwmods, cap * sizeof(*n));
		if (!n)
			return DWARF_CB_ABORT;
		s->dwmods = n;
		s->cap_dwmods = cap;
	}
	s->dwmods[s->n_dwmods++] = mod;
	return DWARF_CB_OK;
}

static struct md_error *collect_modules(struct md_symbols *s)
{
	if (dwfl_getmodules(s->dwfl, collect_module, s, 0) == 0)
		return NULL;
	if (s->n_dwmods >= MAX_MODULES)
		return md_error_create(MD_ERR_BAD_DATA, "more than %d modules", MAX_MODULES);
	return &md_error_nomem;
}

static int compare_modules(const void *a, const void *b)
{
	Dwarf_Addr sa, sb;
	dwfl_module_info(*(Dwfl_Module *const *)a, NULL, &sa, NULL, NULL, NULL, NULL, NULL);
	dwfl_module_info(*(Dwfl_Module *const *)b, NULL, &sb, NULL, NULL, NULL, NULL, NULL);
	return sa < sb ? -1 : sa > sb;
}

/* A mapped file that is not ELF at all (locale-archive, fonts) is not a module. A file we
 * could not open is kept: it is still a module, only without symbols. */
static bool file_is_not_elf(const char *path)
{
	if (path[0] != '/' || ends_with(path, " (deleted)"))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct stat st;
	unsigned char magic[SELFMAG];
	bool not_elf = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		       (read(fd, magic, SELFMAG) != SELFMAG || memcmp(magic, ELFMAG, SELFMAG) != 0);
	close(fd);
	return not_elf;
}

static bool elf_has_section(Elf *elf, Elf64_Word type, const char *name)
{
	size_t shstrndx;
	if (elf_getshdrstrndx(elf, &shstrndx) != 0)
		return false;
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != type)
			continue;
		if (!name)
			return true;
		const char *sname = elf_strptr(elf, shstrndx, shdr.sh_name);
		if (sname && strcmp(sname, name) == 0)
			return true;
	}
	return false;
}

/* Cheap guess made at setup, refined when symbols or DWARF are actually loaded: the module
 * carries DWARF itself, or a debug file sits at its build-id path. */
static bool guess_has_debuginfo(const struct md_symbols *s, const struct module_state *st)
{
	if (s->debuginfo_disabled)
		return false;
	if (st->elf && elf_has_section(st->elf, SHT_PROGBITS, ".debug_info"))
		return true;
	if (!st->build_id || strlen(st->build_id) < 3)
		return false;
	const char *roots[] = {s->sysroot ? s->sysroot : "", ""};
	for (size_t i = 0; i < (s->sysroot ? 2u : 1u); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/usr/lib/debug/.build-id/%.2s/%s.debug", roots[i], st->build_id,
			 st->build_id + 2);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

/* DT_SONAME, so that "libdw.so" finds /usr/lib/.../libdw-0.188.so. */
static char *elf_soname(Elf *elf)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC || shdr.sh_entsize == 0)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data)
			return NULL;
		size_t n = shdr.sh_size / shdr.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Dyn dyn;
			if (!gelf_getdyn(data, (int)i, &dyn) || dyn.d_tag == DT_NULL)
				break;
			if (dyn.d_tag == DT_SONAME) {
				const char *name = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
				return name ? strdup(name) : NULL;
			}
		}
		return NULL;
	}
	return NULL;
}

static struct md_error *build_module(struct md_symbols *s, Dwfl_Module *dwmod, bool *keep_ret)
{
	struct module_state *st = &s->states[s->n_modules];
	struct md_module *mod = &s->modules[s->n_modules];
	memset(st, 0, sizeof(*st));
	memset(mod, 0, sizeof(*mod));
	st->dwmod = dwmod;

	GElf_Addr bias = 0;
	Elf *elf = dwfl_module_getelf(dwmod, &bias);
	Dwarf_Addr start, end;
	const char *mainfile = NULL;
	const char *name = dwfl_module_info(dwmod, NULL, &start, &end, NULL, NULL, &mainfile, NULL);
	if (!name)
		name = "?";
	if (!elf && file_is_not_elf(name)) {
		*keep_ret = false;
		return NULL;
	}
	/* Cores: the name is the file actually opened (after --sysroot). */
	const char *shown = (!s->pid && mainfile) ? mainfile : name;
	st->name = strdup(shown);
	if (!st->name)
		return &md_error_nomem;
	/* As in md_mapping.path, so that a module and its mappings carry the same name. */
	if (ends_with(st->name, " (deleted)"))
		st->name[strlen(st->name) - strlen(" (deleted)")] = 0;
	if (mainfile && !(st->file = strdup(mainfile)))
		return &md_error_nomem;
	struct stat fst;
	if (st->file && stat(st->file, &fst) == 0) {
		st->file_id_valid = true;
		st->file_dev = fst.st_dev;
		st->file_ino = fst.st_ino;
		st->file_size = fst.st_size;
		st->file_mtime = fst.st_mtim;
	}
	st->elf = elf;
	if (elf)
		st->soname = elf_soname(elf);
	/* Without the ELF the bias is unknown; the start is the right answer for the usual
	 * shared object whose first PT_LOAD has vaddr 0. */
	st->bias = elf ? bias : start;
	const char *bn = base_name(st->name);
	st->is_libc = strncmp(bn, "libc.so", 7) == 0 || strncmp(bn, "libc-2.", 7) == 0;

	const unsigned char *bits;
	GElf_Addr id_vaddr;
	int id_len = dwfl_module_build_id(dwmod, &bits, &id_vaddr);
	if (id_len > 0) {
		st->build_id = malloc((size_t)id_len * 2 + 1);
		if (!st->build_id)
			return &md_error_nomem;
		for (int i = 0; i < id_len; i++)
			snprintf(st->build_id + 2 * i, 3, "%02x", bits[i]);
	}

	if (elf && st->build_id)
		st->cache_key = strdup(st->build_id);
	else if (elf && st->file_id_valid && asprintf(&st->cache_key, "%s\n%llu:%llu:%lld:%lld.%09ld", st->file,
						      (unsigned long long)st->file_dev, (unsigned long long)st->file_ino,
						      (long long)st->file_size, (long long)st->file_mtime.tv_sec,
						      st->file_mtime.tv_nsec) < 0)
		st->cache_key = NULL;
	mod->name = st->name;
	mod->start = start;
	mod->end = end;
	mod->bias = st->bias;
	mod->build_id = st->build_id;
	mod->has_debuginfo = guess_has_debuginfo(s, st);
	*keep_ret = true;
	return NULL;
}

/* AT_ENTRY from an auxv image: the main executable is the module holding it. */
static uint64_t auxv_entry(const void *buf, size_t len)
{
	/* A core note's descriptor is only 4-byte aligned: copy, do not cast. */
	const unsigned char *p = buf;
	for (size_t off = 0; off + 16 <= len; off += 16) {
		uint64_t pair[2];
		memcpy(pair, p + off, sizeof(pair));
		if (pair[0] == AT_NULL)
			break;
		if (pair[0] == AT_ENTRY)
			return pair[1];
	}
	return 0;
}

static ssize_t index_at(const struct md_symbols *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n_modules;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (addr < s->modules[mid].start)
			hi = mid;
		else if (addr >= s->modules[mid].end)
			lo = mid + 1;
		else
			return (ssize_t)mid;
	}
	return -1;
}

/* /proc/PID/auxv into buf; its length, or -1. */
static ssize_t read_auxv(pid_t pid, uint64_t *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size);
	close(fd);
	return n;
}

static void find_main_live(struct md_symbols *s)
{
	char path[64];
	s->auxv_len = read_auxv(s->pid, s->auxv, sizeof(s->auxv));
	if (s->auxv_len > 0) {
		uint64_t entry = auxv_entry(s->auxv, (size_t)s->auxv_len);
		if (entry && (s->main_index = index_at(s, entry)) >= 0)
			return;
	}
	/* No auxv: match /proc/PID/exe against the module names. */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)s->pid);
	char exe[4096];
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = 0;
	for (size_t i = 0; i < s->n_modules; i++) {
		if (strcmp(s->modules[i].name, exe) == 0) {
			s->main_index = (ssize_t)i;
			return;
		}
	}
}

static void find_main_core(struct md_symbols *s, Elf *core)
{
	size_t phnum;
	if (elf_getphdrnum(core, &phnum) != 0)
		return;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(core, (int)i, &ph) || ph.p_type != PT_NOTE)
			continue;
		Elf_Data *data = elf_getdata_rawchunk(core, ph.p_offset, ph.p_filesz, ELF_T_NHDR);
		if (!data)
			continue;
		size_t off = 0, name_off, desc_off;
		GElf_Nhdr nh;
		while (off < data->d_size && (off = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			if (nh.n_type != NT_AUXV)
				continue;
			uint64_t entry = auxv_entry((const char *)data->d_buf + desc_off, nh.n_descsz);
			if (entry)
				s->main_index = index_at(s, entry);
			return;
		}
	}
}

static void refresh_has_debuginfo(struct md_symbols *s, size_t index);
static void module_state_deinit(struct module_state *st);

/* The file a kept module was read from is still the one on disk. */
static bool same_file(const struct module_state *st)
{
	if (!st->file)
		return true; /* nothing was read from a file */
	struct stat fst;
	if (stat(st->file, &fst) != 0 || !st->file_id_valid)
		return false;
	return fst.st_dev == st->file_dev && fst.st_ino == st->file_ino && fst.st_size == st->file_size &&
	       fst.st_mtim.tv_sec == st->file_mtime.tv_sec && fst.st_mtim.tv_nsec == st->file_mtime.tv_nsec;
}

/* old[n_old]: the states of the previous module list (a refresh), whose entries are moved over
 * when libdwfl kept their module (it keeps one reported again with the same name and range). */
static struct md_error *build_modules(struct md_symbols *s, struct module_state *old, size_t n_old)
{
	if (s->n_dwmods > 0)
		qsort(s->dwmods, s->n_dwmods, sizeof(*s->dwmods), compare_modules);
	s->modules = calloc(s->n_dwmods ? s->n_dwmods : 1, sizeof(*s->modules));
	s->states = calloc(s->n_dwmods ? s->n_dwmods : 1, sizeof(*s->states));
	if (!s->modules || !s->states)
		return &md_error_nomem;
	for (size_t i = 0; i < s->n_dwmods; i++) {
		struct module_state *prev = NULL;
		for (size_t k = 0; k < n_old && !prev; k++)
			if (old[k].dwmod == s->dwmods[i])
				prev = &old[k];
		if (prev) {
			/* libdwfl kept the module with its ELF: a changed file would leave it stale */
			if (!same_file(prev))
				return md_error_create(MD_ERR_BAD_DATA, "%s changed on disk", prev->name);
			struct module_state *st = &s->states[s->n_modules];
			struct md_module *mod = &s->modules[s->n_modules];
			*st = *prev;
			memset(prev, 0, sizeof(*prev));
			/* l_tls_offset is the process's: looked up again (cheap), never assumed */
			st->tls_known = false;
			st->tls_dynamic = false;
			st->tls_modid = 0;
			st->link_map = 0;
			Dwarf_Addr start, end;
			dwfl_module_info(st->dwmod, NULL, &start, &end, NULL, NULL, NULL, NULL);
			*mod = (struct md_module){ .name = st->name, .start = start, .end = end, .bias = st->bias,
						   .build_id = st->build_id };
			mod->has_debuginfo = guess_has_debuginfo(s, st);
			refresh_has_debuginfo(s, s->n_modules);
			s->n_modules++;
			s->counters->modules_kept++;
			continue;
		}
		bool keep = false;
		struct md_error *err = build_module(s, s->dwmods[i], &keep);
		if (err)
			return err;
		if (keep) {
			s->n_modules++;
			s->counters->modules_read++;
		}
	}
	return NULL;
}

static struct md_symbols *symbols_alloc(const struct md_symbols_options *opts)
{
	struct md_symbols *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->debuginfo_disabled = opts && opts->debuginfo_disabled;
	s->counters = opts && opts->counters ? opts->counters : &s->own_counters;
	s->cache = opts ? opts->cache : NULL;
	s->main_index = -1;
	return s;
}

static bool same_mount_namespace(pid_t pid)
{
	char path[64];
	struct stat self, other;
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
	if (stat("/proc/self/ns/mnt", &self) != 0 || stat(path, &other) != 0)
		return true; /* cannot tell: use the paths as they are */
	return self.st_dev == other.st_dev && self.st_ino == other.st_ino;
}

struct md_error *md_symbols_create_pid(pid_t pid, const struct md_symbols_options *opts,
				       struct md_symbols **symbols_ret)
{
	struct md_symbols *s = symbols_alloc(opts);
	if (!s)
		return &md_error_nomem;
	struct md_error *err = NULL;
	s->pid = pid;
	if (!same_mount_namespace(pid) && asprintf(&s->root_prefix, "/proc/%d/root", (int)pid) < 0) {
		s->root_prefix = NULL;
		err = &md_error_nomem;
		goto fail;
	}
	s->callbacks.find_elf = proc_find_elf;
	s->callbacks.find_debuginfo = s->debuginfo_disabled ? find_no_debuginfo : find_debuginfo;
	s->dwfl = dwfl_begin(&s->callbacks);
	if (!s->dwfl) {
		err = dwfl_error(MD_ERR_NOMEM, "dwfl_begin");
		goto fail;
	}
	dwfl_report_begin(s->dwfl);
	int r = dwfl_linux_proc_report(s->dwfl, pid);
	if (r > 0) {
		enum md_error_code code = r == ENOENT || r == ESRCH ? MD_ERR_NO_PROCESS
				      : r == EACCES || r == EPERM   ? MD_ERR_PERMISSION
								     : MD_ERR_OS;
		err = code == MD_ERR_OS ? md_error_os(r, "reading modules of process %d", (int)pid)
					: md_error_create(code, "reading modules of process %d: %s", (int)pid,
							  strerror(r));
		goto fail;
	}
	if (r < 0 || dwfl_report_end(s->dwfl, NULL, NULL) != 0) {
		err = dwfl_error(MD_ERR_BAD_DATA, "reporting modules");
		goto fail;
	}
	if ((err = collect_modules(s)))
		goto fail;
	if ((err = build_modules(s, NULL, 0)))
		goto fail;
	find_main_live(s);
	*symbols_ret = s;
	return NULL;
fail:
	md_symbols_destroy(s);
	return err;
}

struct md_error *md_symbols_refresh_pid(struct md_symbols *s, pid_t pid)
{
	if (!s || !s->dwfl || s->pid != pid)
		return md_error_create(MD_ERR_BAD_DATA, "symbols of another process");
	uint64_t auxv[512];
	ssize_t auxv_len = read_auxv(pid, auxv, sizeof(auxv));
	if (auxv_len != s->auxv_len || (auxv_len > 0 && memcmp(auxv, s->auxv, (size_t)auxv_len) != 0))
		return md_error_create(MD_ERR_BAD_DATA, "process %d exec'd: its modules are new", (int)pid);
	struct module_state *old = s->states;
	size_t n_old = s->n_modules;
	free(s->modules);
	free(s->dwmods);
	s->modules = NULL;
	s->states = NULL;
	s->dwmods = NULL;
	s->n_modules = s->n_dwmods = s->cap_dwmods = 0;
	s->main_index = -1;
	/* addresses may now belong to other modules */
	free(s->pc_cache);
	s->pc_cache = NULL;
	struct md_error *err = NULL;
	dwfl_report_begin(s->dwfl);
	int r = dwfl_linux_proc_report(s->dwfl, pid);
	if (r > 0)
		err = r == ENOENT || r == ESRCH ? md_error_create(MD_ERR_NO_PROCESS, "no such process: %d", (int)pid)
						: md_error_os(r, "reading modules of process %d", (int)pid);
	else if (r < 0 || dwfl_report_end(s->dwfl, NULL, NULL) != 0)
		err = dwfl_error(MD_ERR_BAD_DATA, "reporting modules");
	if (!err)
		err = collect_modules(s);
	/* the modules libdwfl kept are still those of old[] until they are moved over */
	if (!err)
		err = build_modules(s, old, n_old);
	for (size_t i = 0; i < n_old; i++)
		module_state_deinit(&old[i]);
	free(old);
	if (!err)
		find_main_live(s);
	return err;
}

struct md_error *md_symbols_create_core(void *core_elf, const struct md_symbols_options *opts,
					struct md_symbols **symbols_ret)
{
	Elf *core = core_elf;
	GElf_Ehdr eh;
	if (!core || elf_kind(core) != ELF_K_ELF || !gelf_getehdr(core, &eh) || eh.e_type != ET_CORE)
		return md_error_create(MD_ERR_BAD_FILE, "not an ELF core file");
	if (eh.e_machine != EM_X86_64 || eh.e_ident[EI_CLASS] != ELFCLASS64)
		return md_error_create(MD_ERR_UNSUPPORTED, "core of a foreign architecture (e_machine %u)",
				       (unsigned)eh.e_machine);
	struct md_symbols *s = symbols_alloc(opts);
	if (!s)
		return &md_error_nomem;
	struct md_error *err = NULL;
	if (opts && opts->sysroot && opts->sysroot[0]) {
		s->sysroot = strdup(opts->sysroot);
		/* Debug files inside the sysroot first, then the host's. */
		if (!s->sysroot || asprintf(&s->debuginfo_path, ":.debug:%s/usr/lib/debug:/usr/lib/debug",
					    opts->sysroot) < 0) {
			s->debuginfo_path = NULL;
			err = &md_error_nomem;
			goto fail;
		}
		s->callbacks.debuginfo_path = &s->debuginfo_path;
	}
	s->callbacks.find_elf = core_find_elf;
	s->callbacks.find_debuginfo = s->debuginfo_disabled ? find_no_debuginfo : find_debuginfo;
	s->callbacks.section_address = dwfl_offline_section_address;
	s->dwfl = dwfl_begin(&s->callbacks);
	if (!s->dwfl) {
		err = dwfl_error(MD_ERR_NOMEM, "dwfl_begin");
		goto fail;
	}
	dwfl_report_begin(s->dwfl);
	if (dwfl_core_file_report(s->dwfl, core, opts ? opts->exe : NULL) < 0) {
		err = dwfl_error(MD_ERR_BAD_FILE, "reading the modules of the core");
		goto fail;
	}
	if (dwfl_report_end(s->dwfl, NULL, NULL) != 0) {
		err = dwfl_error(MD_ERR_BAD_FILE, "reporting modules");
		goto fail;
	}
	if ((err = collect_modules(s)))
		goto fail;
	if ((err = build_modules(s, NULL, 0)))
		goto fail;
	find_main_core(s, core);
	*symbols_ret = s;
	return NULL;
fail:
	md_symbols_destroy(s);
	return err;
}

static void module_state_deinit(struct module_state *st)
{
	free(st->cache_key);
	free(st->name);
	free(st->build_id);
	free(st->file);
	free(st->soname);
	free(st->syms.slots);
	for (size_t i = 0; i < st->n_structs; i++) {
		free(st->structs[i].name);
		free(st->structs[i].members);
	}
	free(st->structs);
}

void md_symbols_destroy(struct md_symbols *symbols)
{
	if (!symbols)
		return;
	free(symbols->pc_cache);
	for (size_t i = 0; i < symbols->n_modules; i++)
		module_state_deinit(&symbols->states[i]);
	/* A module dropped while building may still own strings in the next slot. */
	if (symbols->states && symbols->n_modules < symbols->n_dwmods)
		module_state_deinit(&symbols->states[symbols->n_modules]);
	if (symbols->dwfl)
		dwfl_end(symbols->dwfl);
	free(symbols->modules);
	free(symbols->states);
	free(symbols->dwmods);
	free(symbols->root_prefix);
	free(symbols->sysroot);
	free(symbols->debuginfo_path);
	free(symbols);
}

const struct md_module *md_symbols_modules(const struct md_symbols *symbols, size_t *n_ret)
{
	if (n_ret)
		*n_ret = symbols ? symbols->n_modules : 0;
	return symbols ? symbols->modules : NULL;
}

const struct md_module *md_symbols_find_module(const struct md_symbols *symbols, const char *module_name)
{
	if (!symbols)
		return NULL;
	if (!module_name)
		return symbols->main_index >= 0 ? &symbols->modules[symbols->main_index] : NULL;
	size_t len = strlen(module_name);
	for (size_t i = 0; i < symbols->n_modules; i++) {
		if (strncmp(base_name(symbols->modules[i].name), module_name, len) == 0)
			return &symbols->modules[i];
	}
	for (size_t i = 0; i < symbols->n_modules; i++) {
		const char *soname = symbols->states[i].soname;
		if (soname && strncmp(soname, module_name, len) == 0)
			return &symbols->modules[i];
	}
	return NULL;
}

const struct md_module *md_symbols_module_at(const struct md_symbols *symbols, uint64_t addr)
{
	if (!symbols)
		return NULL;
	ssize_t i = index_at(symbols, addr);
	return i < 0 ? NULL : &symbols->modules[i];
}

const char *md_symbols_module_file(const struct md_symbols *symbols, const struct md_module *mod)
{
	ssize_t i = module_index(symbols, mod);
	return i < 0 ? NULL : symbols->states[i].file;
}

/* ---- the session's cache, by build-id ---- */

#define CACHE_BUCKETS 1024
#define CACHE_MAX_ENTRIES 65536

enum cache_kind { CACHE_MODULE = 'M', CACHE_SYMBOL = 'S', CACHE_STRUCT = 'T' };

struct cache_entry {
	struct cache_entry *next;
	uint32_t hash;
	char *key; /* kind, module key and name, '\n' between them */
	bool found;
	struct md_symbol sym;    /* CACHE_SYMBOL: address link-time (TLS: the offset in the block) */
	struct dw_struct layout; /* CACHE_STRUCT: member names owned here */
	/* CACHE_MODULE: what the module's reading found out */
	bool has_debuginfo, dwarf_absent, from_debuginfod;
	char *debug_file;
};

struct md_symbols_cache {
	struct cache_entry *buckets[CACHE_BUCKETS];
	size_t n;
};

struct md_error *md_symbols_cache_create(struct md_symbols_cache **cache_ret)
{
	struct md_symbols_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return &md_error_nomem;
	*cache_ret = c;
	return NULL;
}

static void cache_entry_free(struct cache_entry *e)
{
	free(e->key);
	free(e->debug_file);
	for (size_t i = 0; i < e->layout.n_members; i++)
		free((char *)e->layout.members[i].name);
	free(e->layout.members);
	free(e->layout.name);
	free(e);
}

void md_symbols_cache_destroy(struct md_symbols_cache *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < CACHE_BUCKETS; b++)
		for (struct cache_entry *e = c->buckets[b], *next; e; e = next) {
			next = e->next;
			cache_entry_free(e);
		}
	free(c);
}

static uint32_t str_hash(const char *str);

static char *cache_key(enum cache_kind kind, const char *module_key, const char *name)
{
	char *key = NULL;
	return asprintf(&key, "%c\n%s\n%s", (char)kind, module_key, name) < 0 ? NULL : key;
}

static struct cache_entry *cache_find(struct md_symbols *s, size_t index, enum cache_kind kind, const char *name)
{
	const struct module_state *st = &s->states[index];
	if (!s->cache || !st->cache_key)
		return NULL;
	char *key = cache_key(kind, st->cache_key, name);
	if (!key)
		return NULL;
	uint32_t h = str_hash(key);
	struct cache_entry *e = s->cache->buckets[h % CACHE_BUCKETS];
	while (e && (e->hash != h || strcmp(e->key, key) != 0))
		e = e->next;
	free(key);
	return e;
}

/* A new entry (NULL when full, out of memory or not cached); an existing one is returned as is. */
static struct cache_entry *cache_add(struct md_symbols *s, size_t index, enum cache_kind kind, const char *name)
{
	struct cache_entry *e = cache_find(s, index, kind, name);
	if (e || !s->cache || !s->states[index].cache_key || s->cache->n >= CACHE_MAX_ENTRIES)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e || !(e->key = cache_key(kind, s->states[index].cache_key, name))) {
		free(e);
		return NULL;
	}
	e->hash = str_hash(e->key);
	e->next = s->cache->buckets[e->hash % CACHE_BUCKETS];
	s->cache->buckets[e->hash % CACHE_BUCKETS] = e;
	s->cache->n++;
	return e;
}

/* After a lookup that read the module: what it found out about debug info, for later processes. */
static void cache_note_module(struct md_symbols *s, size_t index)
{
	struct cache_entry *e = cache_add(s, index, CACHE_MODULE, "");
	if (!e)
		return;
	const struct module_state *st = &s->states[index];
	const char *debugfile = NULL;
	dwfl_module_info(st->dwmod, NULL, NULL, NULL, NULL, NULL, NULL, &debugfile);
	e->has_debuginfo = s->modules[index].has_debuginfo;
	e->dwarf_absent = st->dwarf_tried && !st->dwarf;
	if (debugfile && (!e->debug_file || strcmp(e->debug_file, debugfile) != 0)) {
		free(e->debug_file);
		e->debug_file = strdup(debugfile);
		e->from_debuginfod = st->debug_from_debuginfod;
	}
}

/* A lookup answered by the cache: the module looks as it did to the process that read it. */
static void cache_served(struct md_symbols *s, size_t index)
{
	s->counters->cached++;
	const struct cache_entry *e = cache_find(s, index, CACHE_MODULE, "");
	if (!e)
		return;
	struct module_state *st = &s->states[index];
	if (e->has_debuginfo)
		s->modules[index].has_debuginfo = true;
	st->cached_debug_file = e->debug_file;
	st->cached_from_debuginfod = e->from_debuginfod;
}

static void cache_symbol(struct md_symbols *s, size_t index, const char *name, const struct md_symbol *sym)
{
	if (!s->cache || cache_find(s, index, CACHE_SYMBOL, name))
		return; /* known already: the same file gives the same answer */
	struct cache_entry *e = cache_add(s, index, CACHE_SYMBOL, name);
	if (!e)
		return;
	e->found = sym != NULL;
	if (sym) {
		e->sym = *sym;
		if (sym->type != MD_SYM_TLS)
			e->sym.address -= s->states[index].bias;
	}
	cache_note_module(s, index);
}

static void cache_struct(struct md_symbols *s, size_t index, const struct dw_struct *ds)
{
	struct cache_entry *e = cache_add(s, index, CACHE_STRUCT, ds->name);
	if (!e || e->layout.name)
		return;
	struct dw_struct copy = { .name = strdup(ds->name), .found = ds->found, .size = ds->size };
	if (ds->n_members)
		copy.members = calloc(ds->n_members, sizeof(*copy.members));
	bool ok = copy.name && (!ds->n_members || copy.members);
	for (size_t i = 0; ok && i < ds->n_members; i++) {
		copy.members[i] = ds->members[i];
		copy.members[i].name = strdup(ds->members[i].name);
		ok = copy.members[i].name != NULL;
		copy.n_members = i + 1;
	}
	if (!ok) {
		for (size_t i = 0; i < copy.n_members; i++)
			free((char *)copy.members[i].name);
		free(copy.members);
		free(copy.name);
		return; /* an entry without a layout is never served */
	}
	e->found = ds->found;
	e->layout = copy;
	cache_note_module(s, index);
}

/* ---- symbols ---- */

static uint32_t str_hash(const char *str)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)str; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static struct sym_entry *sym_table_slot(const struct sym_table *tab, const char *name, uint32_t h)
{
	for (size_t i = h & tab->mask;; i = (i + 1) & tab->mask) {
		struct sym_entry *e = &tab->slots[i];
		if (!e->name || (e->hash == h && strcmp(e->name, name) == 0))
			return e;
	}
}

static enum md_symbol_source elf_symbol_source(struct module_state *st, Elf *elf)
{
	size_t n = sizeof(st->symsrc) / sizeof(st->symsrc[0]);
	for (size_t i = 0; i < n; i++) {
		if (st->symsrc[i].elf == elf)
			return st->symsrc[i].source;
		if (!st->symsrc[i].elf) {
			st->symsrc[i].elf = elf;
			st->symsrc[i].source = elf && elf_has_section(elf, SHT_SYMTAB, NULL) ? MD_SYMSRC_SYMTAB
											    : MD_SYMSRC_DYNSYM;
			return st->symsrc[i].source;
		}
	}
	return elf && elf_has_section(elf, SHT_SYMTAB, NULL) ? MD_SYMSRC_SYMTAB : MD_SYMSRC_DYNSYM;
}

static enum md_symbol_type symbol_type(int stt)
{
	switch (stt) {
	case STT_OBJECT:
	case STT_COMMON:
		return MD_SYM_OBJECT;
	case STT_FUNC:
	case STT_GNU_IFUNC:
		return MD_SYM_FUNC;
	case STT_TLS:
		return MD_SYM_TLS;
	default:
		return MD_SYM_OTHER;
	}
}

static void refresh_has_debuginfo(struct md_symbols *s, size_t index)
{
	if (s->debuginfo_disabled)
		return;
	const char *debugfile = NULL;
	dwfl_module_info(s->states[index].dwmod, NULL, NULL, NULL, NULL, NULL, NULL, &debugfile);
	if (debugfile || s->states[index].dwarf)
		s->modules[index].has_debuginfo = true;
}

/* Build the module's name->symbol hash once: libc's debug file has ~10k symbols, and plugins
 * ask for dozens of names. */
static struct md_error *module_load_symbols(struct md_symbols *s, size_t index)
{
	struct module_state *st = &s->states[index];
	if (st->syms_state > 0)
		return NULL;
	if (st->syms_state < 0)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no symbol table", st->name);
	st->syms_state = -1;
	int n = dwfl_module_getsymtab(st->dwmod);
	refresh_has_debuginfo(s, index);
	if (n < 0)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no symbol table: %s", st->name, dwfl_errmsg(-1));
	s->counters->symbol_tables++; /* a table read (a module without one, the vDSO, costs nothing) */
	size_t cap = 16;
	while (cap < (size_t)n * 2)
		cap <<= 1;
	struct sym_table tab = {.slots = calloc(cap, sizeof(struct sym_entry)), .mask = cap - 1};
	if (!tab.slots)
		return &md_error_nomem;
	for (int i = 0; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		Elf *elf = NULL;
		Dwarf_Addr sym_bias;
		const char *name = dwfl_module_getsym_info(st->dwmod, i, &sym, &addr, &shndx, &elf, &sym_bias);
		if (!name || !name[0] || shndx == SHN_UNDEF)
			continue;
		int stt = GELF_ST_TYPE(sym.st_info);
		if (stt == STT_SECTION || stt == STT_FILE)
			continue;
		bool global = GELF_ST_BIND(sym.st_info) != STB_LOCAL;
		uint32_t h = str_hash(name);
		struct sym_entry *e = sym_table_slot(&tab, name, h);
		if (e->name && (e->global || !global))
			continue; /* keep the first, unless a global replaces a local */
		if (!e->name)
			tab.count++;
		e->name = name;
		e->hash = h;
		e->global = global;
		e->sym.type = symbol_type(stt);
		/* libdwfl relocates TLS symbols like data, which means nothing: their st_value is the
		 * offset in the module's TLS block. */
		e->sym.address = stt == STT_TLS ? sym.st_value : addr;
		e->sym.size = sym.st_size;
		e->sym.source = elf_symbol_source(st, elf);
	}
	st->syms = tab;
	st->syms_state = 1;
	return NULL;
}

static struct md_error *lookup_in(struct md_symbols *s, size_t index, const char *name, struct md_symbol *sym_ret)
{
	struct module_state *st = &s->states[index];
	/* Before the module's own table is read: the answer another process of the session got. */
	const struct cache_entry *c = st->syms_state == 0 ? cache_find(s, index, CACHE_SYMBOL, name) : NULL;
	if (c) {
		cache_served(s, index);
		if (!c->found)
			return md_error_create(MD_ERR_NOT_FOUND, "symbol %s not found in %s", name, st->name);
		*sym_ret = c->sym;
		if (sym_ret->type != MD_SYM_TLS)
			sym_ret->address += st->bias;
		return NULL;
	}
	struct md_error *err = module_load_symbols(s, index);
	if (err)
		return err;
	const struct sym_table *tab = &st->syms;
	struct sym_entry *e = sym_table_slot(tab, name, str_hash(name));
	cache_symbol(s, index, name, e->name ? &e->sym : NULL);
	if (!e->name)
		return md_error_create(MD_ERR_NOT_FOUND, "symbol %s not found in %s", name, st->name);
	*sym_ret = e->sym;
	return NULL;
}

/* mod NULL: every module, the main executable first. */
struct md_error *md_symbols_lookup(struct md_symbols *symbols, const struct md_module *mod, const char *name,
				   struct md_symbol *sym_ret)
{
	if (!symbols || !name)
		return md_error_create(MD_ERR_NOT_FOUND, "no symbols");
	if (mod) {
		ssize_t i = module_index(symbols, mod);
		if (i < 0)
			return md_error_create(MD_ERR_NOT_FOUND, "symbol %s: unknown module", name);
		return lookup_in(symbols, (size_t)i, name, sym_ret);
	}
	if (symbols->main_index >= 0) {
		struct md_error *err = lookup_in(symbols, (size_t)symbols->main_index, name, sym_ret);
		if (!err)
			return NULL;
		md_error_destroy(err);
	}
	for (size_t i = 0; i < symbols->n_modules; i++) {
		if ((ssize_t)i == symbols->main_index)
			continue;
		struct md_error *err = lookup_in(symbols, i, name, sym_ret);
		if (!err)
			return NULL;
		md_error_destroy(err);
	}
	return md_error_create(MD_ERR_NOT_FOUND, "symbol %s not found in any module", name);
}

const char *md_symbols_symbolize(struct md_symbols *symbols, uint64_t pc, uint64_t *offset_ret)
{
	if (!symbols)
		return NULL;
	if (!symbols->pc_cache)
		symbols->pc_cache = calloc(PC_CACHE_SIZE, sizeof(*symbols->pc_cache));
	struct pc_cache_entry *ce = NULL;
	if (symbols->pc_cache) {
		ce = &symbols->pc_cache[(pc ^ (pc >> 12)) % PC_CACHE_SIZE];
		if (ce->valid && ce->pc == pc) {
			if (ce->name && offset_ret)
				*offset_ret = ce->offset;
			return ce->name;
		}
	}
	Dwfl_Module *mod = dwfl_addrmodule(symbols->dwfl, pc);
	const char *name = NULL;
	GElf_Off offset = 0;
	if (mod) {
		GElf_Sym sym;
		name = dwfl_module_addrinfo(mod, pc, &offset, &sym, NULL, NULL, NULL);
	}
	if (ce)
		*ce = (struct pc_cache_entry){ .pc = pc, .offset = offset, .name = name, .valid = true };
	if (name && offset_ret)
		*offset_ret = offset;
	return name;
}

/* ---- DWARF struct layouts ---- */

static struct md_error *module_dwarf(struct md_symbols *s, size_t index, Dwarf **dw_ret)
{
	struct module_state *st = &s->states[index];
	if (s->debuginfo_disabled)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: debug info disabled", st->name);
	if (!st->dwarf_tried) {
		st->dwarf_tried = true;
		s->counters->dwarf++;
		Dwarf_Addr dwbias;
		st->dwarf = dwfl_module_getdwarf(st->dwmod, &dwbias);
		refresh_has_debuginfo(s, index);
	}
	if (!st->dwarf)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no DWARF debug info", st->name);
	*dw_ret = st->dwarf;
	return NULL;
}

static bool is_aggregate_tag(int tag)
{
	return tag == DW_TAG_structure_type || tag == DW_TAG_union_type || tag == DW_TAG_class_type;
}

static bool die_is_complete_aggregate(Dwarf_Die *die)
{
	if (!is_aggregate_tag(dwarf_tag(die)))
		return false;
	bool declaration = false;
	Dwarf_Attribute attr;
	if (dwarf_attr(die, DW_AT_declaration, &attr))
		dwarf_formflag(&attr, &declaration);
	return !declaration && dwarf_hasattr(die, DW_AT_byte_size);
}

/* Follow typedefs and qualifiers from die; true when they end at a complete struct/union. */
static bool peel_to_aggregate(Dwarf_Die *die, Dwarf_Die *ret)
{
	Dwarf_Die cur = *die;
	for (int i = 0; i < MAX_TYPE_CHAIN; i++) {
		if (die_is_complete_aggregate(&cur)) {
			*ret = cur;
			return true;
		}
		int tag = dwarf_tag(&cur);
		if (tag != DW_TAG_typedef && tag != DW_TAG_const_type && tag != DW_TAG_volatile_type &&
		    tag != DW_TAG_atomic_type)
			return false;
		Dwarf_Attribute attr;
		if (!dwarf_attr_integrate(&cur, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &cur))
			return false;
	}
	return false;
}

/* A qualified name cut at its "::" (not those inside template arguments: "ns::Box<ns::T>"). */
struct qualified_name {
	const char *part[MAX_NAME_PARTS];
	size_t len[MAX_NAME_PARTS];
	size_t n;
};

static bool qualified_name_split(const char *name, struct qualified_name *q)
{
	q->n = 0;
	if (name[0] == ':' && name[1] == ':')
		name += 2;
	const char *start = name;
	int angle = 0;
	for (const char *p = name;; p++) {
		if (*p == '<')
			angle++;
		else if (*p == '>' && angle > 0)
			angle--;
		bool end = *p == 0;
		if (!end && !(angle == 0 && p[0] == ':' && p[1] == ':'))
			continue;
		if (p == start || q->n == MAX_NAME_PARTS)
			return false;
		q->part[q->n] = start;
		q->len[q->n++] = (size_t)(p - start);
		if (end)
			return true;
		start = p + 2;
		p++;
	}
}

static bool name_is(const char *die_name, const struct qualified_name *q, size_t i)
{
	if (!die_name)
		return q->len[i] == 21 && strncmp(q->part[i], "(anonymous namespace)", 21) == 0;
	return strlen(die_name) == q->len[i] && strncmp(die_name, q->part[i], q->len[i]) == 0;
}

/* Part i of q among the children of scope: a namespace or class of that name leads to part i+1, the
 * last part names the type; an anonymous namespace is looked through (its types are visible from
 * the enclosing scope), and so is a C unit's list of top-level DIEs, which is all a C module has. A
 * scan of libc's ~1700 units stays cheap: only namespace and aggregate DIEs are descended into. */
static bool scope_find_struct(Dwarf_Die *scope, const struct qualified_name *q, size_t i, int depth, Dwarf_Die *ret)
{
	Dwarf_Die child;
	if (depth > MAX_SCOPE_DEPTH || dwarf_child(scope, &child) != 0)
		return false;
	bool last = i + 1 == q->n;
	do {
		int tag = dwarf_tag(&child);
		const char *n = dwarf_diename(&child);
		if (tag == DW_TAG_namespace) {
			if (!n && !name_is(NULL, q, i) && scope_find_struct(&child, q, i, depth + 1, ret))
				return true;
			if (!last && name_is(n, q, i) && scope_find_struct(&child, q, i + 1, depth + 1, ret))
				return true;
			continue;
		}
		if (!is_aggregate_tag(tag) && tag != DW_TAG_typedef)
			continue;
		if (!n || !name_is(n, q, i))
			continue;
		if (last) {
			if (peel_to_aggregate(&child, ret))
				return true;
		} else if (is_aggregate_tag(tag) && scope_find_struct(&child, q, i + 1, depth + 1, ret)) {
			return true; /* a nested class */
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return false;
}

static bool unit_find_struct(Dwarf_Die *cudie, const char *name, Dwarf_Die *ret)
{
	struct qualified_name q;
	return qualified_name_split(name, &q) && scope_find_struct(cudie, &q, 0, 0, ret);
}

static bool dwarf_find_struct(Dwarf *dw, const char *name, Dwarf_Die *hint_cu, const char *preferred_cu,
			      Dwarf_Die *ret)
{
	if (hint_cu && unit_find_struct(hint_cu, name, ret))
		return true;
	for (int pass = preferred_cu ? 0 : 1; pass < 2; pass++) {
		Dwarf_CU *cu = NULL;
		Dwarf_Half version;
		uint8_t unit_type;
		Dwarf_Die cudie, subdie;
		while (dwarf_get_units(dw, cu, &cu, &version, &unit_type, &cudie, &subdie) == 0) {
			if (unit_type != DW_UT_compile && unit_type != DW_UT_partial && unit_type != DW_UT_type)
				continue;
			if (pass == 0) {
				const char *cu_name = dwarf_diename(&cudie);
				if (!cu_name || strcmp(base_name(cu_name), preferred_cu) != 0)
					continue;
			}
			if (unit_find_struct(&cudie, name, ret))
				return true;
		}
	}
	return false;
}

static bool member_location(Dwarf_Die *member, uint64_t *offset_ret)
{
	Dwarf_Attribute attr;
	Dwarf_Word value;
	if (!dwarf_attr_integrate(member, DW_AT_data_member_location, &attr)) {
		if (dwarf_attr_integrate(member, DW_AT_data_bit_offset, &attr)) {
			if (dwarf_formudata(&attr, &value) != 0)
				return false;
			*offset_ret = value / 8;
			return true;
		}
		*offset_ret = 0; /* union members */
		return true;
	}
	switch (dwarf_whatform(&attr)) {
	case DW_FORM_data1:
	case DW_FORM_data2:
	case DW_FORM_data4:
	case DW_FORM_data8:
	case DW_FORM_udata:
	case DW_FORM_sdata:
	case DW_FORM_implicit_const:
		if (dwarf_formudata(&attr, &value) != 0)
			return false;
		*offset_ret = value;
		return true;
	default: {
		/* DWARF 2 style: a location expression, DW_OP_plus_uconst N in practice. */
		Dwarf_Op *ops;
		size_t n_ops;
		if (dwarf_getlocation(&attr, &ops, &n_ops) != 0 || n_ops != 1 ||
		    ops[0].atom != DW_OP_plus_uconst)
			return false;
		*offset_ret = ops[0].number;
		return true;
	}
	}
}

/* Where a bit-field's bits are, from the struct's start: DWARF 4+ says it in DW_AT_data_bit_offset;
 * DWARF 2/3 (and GCC's DWARF 4) count DW_AT_bit_offset from the most significant bit of a storage
 * unit of DW_AT_byte_size bytes at DW_AT_data_member_location, which on a little-endian machine is
 * byte_size * 8 - bit_offset - bit_size bits above that unit's lowest bit. False when the member is
 * no bit-field or its attributes contradict each other. */
static bool member_bit_field(Dwarf_Die *member, uint64_t byte_offset, uint64_t type_bytes,
			     uint64_t *bit_offset_ret, uint64_t *bit_size_ret)
{
	Dwarf_Attribute attr;
	Dwarf_Word bit_size, value;
	if (!dwarf_attr_integrate(member, DW_AT_bit_size, &attr) || dwarf_formudata(&attr, &bit_size) != 0 ||
	    bit_size == 0 || bit_size > 64 * 8)
		return false;
	if (dwarf_attr_integrate(member, DW_AT_data_bit_offset, &attr)) {
		if (dwarf_formudata(&attr, &value) != 0)
			return false;
		*bit_offset_ret = value;
	} else if (dwarf_attr_integrate(member, DW_AT_bit_offset, &attr)) {
		Dwarf_Word unit = type_bytes;
		Dwarf_Attribute size_attr;
		if (dwarf_attr_integrate(member, DW_AT_byte_size, &size_attr) &&
		    dwarf_formudata(&size_attr, &unit) != 0)
			return false;
		if (dwarf_formudata(&attr, &value) != 0 || unit == 0 || unit > 64 || value + bit_size > unit * 8)
			return false;
		*bit_offset_ret = byte_offset * 8 + unit * 8 - value - bit_size;
	} else {
		*bit_offset_ret = byte_offset * 8;
	}
	*bit_size_ret = bit_size;
	return true;
}

static uint64_t type_size(Dwarf_Die *type)
{
	Dwarf_Word size;
	if (dwarf_aggregate_size(type, &size) == 0)
		return size;
	Dwarf_Die cur = *type;
	for (int i = 0; i < MAX_TYPE_CHAIN; i++) {
		int tag = dwarf_tag(&cur);
		if (tag == DW_TAG_pointer_type || tag == DW_TAG_reference_type ||
		    tag == DW_TAG_rvalue_reference_type)
			return 8;
		Dwarf_Attribute attr;
		if (!dwarf_attr_integrate(&cur, DW_AT_type, &attr) || !dwarf_formref_die(&attr, &cur))
			break;
	}
	return 0; /* flexible array member or unknown */
}

static bool add_member(struct dw_struct *ds, size_t *cap, const struct dw_member *member)
{
	if (ds->n_members == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct dw_member *m = realloc(ds->members, ncap * sizeof(*m));
		if (!m)
			return false;
		ds->members = m;
		*cap = ncap;
	}
	ds->members[ds->n_members++] = *member;
	return true;
}

/* Members of an anonymous struct/union member are reachable by name from the outer struct, and
 * so are those of a C++ base class (DW_TAG_inheritance at its offset). */
static bool collect_members(Dwarf_Die *aggregate, uint64_t base, struct dw_struct *ds, size_t *cap, int depth)
{
	Dwarf_Die child;
	if (dwarf_child(aggregate, &child) != 0)
		return true;
	do {
		int tag = dwarf_tag(&child);
		if (tag != DW_TAG_member && tag != DW_TAG_inheritance)
			continue;
		uint64_t offset;
		if (!member_location(&child, &offset))
			continue;
		Dwarf_Attribute attr;
		Dwarf_Die type;
		bool has_type = dwarf_attr_integrate(&child, DW_AT_type, &attr) && dwarf_formref_die(&attr, &type);
		const char *name = dwarf_diename(&child);
		if (!name || tag == DW_TAG_inheritance) {
			Dwarf_Die inner;
			if (has_type && depth < MAX_ANON_DEPTH && peel_to_aggregate(&type, &inner) &&
			    !collect_members(&inner, base + offset, ds, cap, depth + 1))
				return false;
			continue;
		}
		struct dw_member m = {.name = name, .offset = base + offset, .size = has_type ? type_size(&type) : 0};
		if (member_bit_field(&child, offset, m.size, &m.bit_offset, &m.bit_size)) {
			m.bit_offset += base * 8;
		} else {
			m.bit_offset = m.offset * 8;
			m.bit_size = m.size * 8;
		}
		if (!add_member(ds, cap, &m))
			return false;
	} while (dwarf_siblingof(&child, &child) == 0);
	return true;
}

static struct md_error *module_struct(struct md_symbols *s, const struct md_module *mod, const char *struct_name,
				      const struct dw_struct **ds_ret)
{
	ssize_t index = module_index(s, mod);
	if (index < 0 || !struct_name)
		return md_error_create(MD_ERR_NOT_FOUND, "struct %s: unknown module",
				       struct_name ? struct_name : "(null)");
	struct module_state *st = &s->states[index];
	if (!s->debuginfo_disabled && !st->dwarf_tried) {
		/* Before this process opens the module's DWARF: the answer another process got. */
		const struct cache_entry *c = cache_find(s, (size_t)index, CACHE_STRUCT, struct_name);
		const struct cache_entry *m = c ? NULL : cache_find(s, (size_t)index, CACHE_MODULE, "");
		if (c || (m && m->dwarf_absent)) {
			cache_served(s, (size_t)index);
			if (!c)
				return md_error_create(MD_ERR_NOT_FOUND, "%s: no DWARF debug info", st->name);
			if (!c->found)
				return md_error_create(MD_ERR_NOT_FOUND, "%s: no struct %s in DWARF", st->name, struct_name);
			*ds_ret = &c->layout;
			return NULL;
		}
	}
	Dwarf *dw = NULL;
	struct md_error *err = module_dwarf(s, (size_t)index, &dw);
	if (err) {
		if (err->code == MD_ERR_NOT_FOUND && st->dwarf_tried)
			cache_note_module(s, (size_t)index); /* no DWARF: later processes need not look */
		return err;
	}
	/* Misses are cached too: a plugin probing for a struct must not rescan every unit. */
	for (size_t i = 0; i < st->n_structs; i++) {
		if (strcmp(st->structs[i].name, struct_name) != 0)
			continue;
		if (!st->structs[i].found)
			return md_error_create(MD_ERR_NOT_FOUND, "%s: no struct %s in DWARF", st->name, struct_name);
		*ds_ret = &st->structs[i];
		return NULL;
	}
	if (st->n_structs == st->cap_structs) {
		size_t ncap = st->cap_structs ? st->cap_structs * 2 : 8;
		struct dw_struct *n = realloc(st->structs, ncap * sizeof(*n));
		if (!n)
			return &md_error_nomem;
		st->structs = n;
		st->cap_structs = ncap;
	}
	struct dw_struct ds = {.name = strdup(struct_name)};
	if (!ds.name)
		return &md_error_nomem;
	/* the C library's malloc structures live in the unit of malloc.c; the unit holding malloc is
	 * found through .debug_aranges in about a millisecond, where walking 2000 unit headers for
	 * the name costs ten. */
	Dwarf_Die hint_storage, *hint = NULL, die;
	struct md_symbol anchor;
	if (st->is_libc) {
		struct md_error *lerr = lookup_in(s, (size_t)index, "malloc", &anchor);
		Dwarf_Addr cu_bias;
		if (!lerr)
			hint = dwfl_module_addrdie(st->dwmod, anchor.address, &cu_bias);
		md_error_destroy(lerr);
		if (hint) {
			hint_storage = *hint;
			hint = &hint_storage;
		}
	}
	if (dwarf_find_struct(dw, struct_name, hint, st->is_libc ? "malloc.c" : NULL, &die)) {
		Dwarf_Word size = 0;
		Dwarf_Attribute attr;
		size_t cap = 0;
		if (dwarf_attr_integrate(&die, DW_AT_byte_size, &attr))
			dwarf_formudata(&attr, &size);
		ds.size = size;
		ds.found = true;
		if (!collect_members(&die, 0, &ds, &cap, 0)) {
			free(ds.name);
			free(ds.members);
			return &md_error_nomem;
		}
	}
	st->structs[st->n_structs++] = ds;
	cache_struct(s, (size_t)index, &ds);
	if (!ds.found)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no struct %s in DWARF", st->name, struct_name);
	*ds_ret = &st->structs[st->n_structs - 1];
	return NULL;
}

static struct md_error *find_member(struct md_symbols *symbols, const struct md_module *mod, const char *struct_name,
				    const char *member, const struct dw_member **member_ret)
{
	if (!symbols || !member)
		return md_error_create(MD_ERR_NOT_FOUND, "no symbols");
	const struct dw_struct *ds;
	struct md_error *err = module_struct(symbols, mod, struct_name, &ds);
	if (err)
		return err;
	for (size_t i = 0; i < ds->n_members; i++) {
		if (strcmp(ds->members[i].name, member) == 0) {
			*member_ret = &ds->members[i];
			return NULL;
		}
	}
	return md_error_create(MD_ERR_NOT_FOUND, "struct %s has no member %s", struct_name, member);
}

struct md_error *md_symbols_member(struct md_symbols *symbols, const struct md_module *mod, const char *struct_name,
				   const char *member, uint64_t *offset_ret, uint64_t *size_ret)
{
	const struct dw_member *m;
	struct md_error *err = find_member(symbols, mod, struct_name, member, &m);
	if (err)
		return err;
	if (offset_ret)
		*offset_ret = m->offset;
	if (size_ret)
		*size_ret = m->size;
	return NULL;
}

struct md_error *md_symbols_member_bits(struct md_symbols *symbols, const struct md_module *mod,
					const char *struct_name, const char *member,
					uint64_t *bit_offset_ret, uint64_t *bit_size_ret)
{
	const struct dw_member *m;
	struct md_error *err = find_member(symbols, mod, struct_name, member, &m);
	if (err)
		return err;
	if (bit_offset_ret)
		*bit_offset_ret = m->bit_offset;
	if (bit_size_ret)
		*bit_size_ret = m->bit_size;
	return NULL;
}

struct md_error *md_symbols_struct_size(struct md_symbols *symbols, const struct md_module *mod,
					const char *struct_name, uint64_t *size_ret)
{
	if (!symbols)
		return md_error_create(MD_ERR_NOT_FOUND, "no symbols");
	const struct dw_struct *ds;
	struct md_error *err = module_struct(symbols, mod, struct_name, &ds);
	if (err)
		return err;
	*size_ret = ds->size;
	return NULL;
}

/* ---- static TLS ---- */

static bool elf_find_phdr(Elf *elf, Elf64_Word type, GElf_Phdr *ret)
{
	size_t phnum;
	if (elf_getphdrnum(elf, &phnum) != 0)
		return false;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == type) {
			*ret = ph;
			return true;
		}
	}
	return false;
}

/* Read link-time vaddr of the module's file (what the file says, whatever the target did). */
static bool elf_read_vaddr(Elf *elf, uint64_t vaddr, void *buf, size_t len)
{
	size_t phnum;
	if (elf_getphdrnum(elf, &phnum) != 0)
		return false;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr < ph.p_vaddr || vaddr - ph.p_vaddr > ph.p_filesz || len > ph.p_filesz - (vaddr - ph.p_vaddr))
			continue;
		Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)(ph.p_offset + (vaddr - ph.p_vaddr)), len, ELF_T_BYTE);
		if (!d || d->d_size < len)
			return false;
		memcpy(buf, d->d_buf, len);
		return true;
	}
	return false;
}

static bool tls_offset_plausible(int64_t tls_offset, const GElf_Phdr *tls)
{
	return tls_offset > 0 && (uint64_t)tls_offset >= tls->p_memsz && (uint64_t)tls_offset < MAX_TLS_OFFSET;
}

/* An initial-exec GOT slot: R_X86_64_TPOFF64 in the dynamic relocations, the slot holds
 * var_offset - l_tls_offset once ld.so has relocated it. */
static struct md_error *tls_from_got(struct module_state *st, struct md_target *t, const GElf_Phdr *tls,
				     int64_t *ret)
{
	Elf_Scn *scn = NULL;
	bool seen = false;
	struct md_error *last = NULL;
	int tried = 0;
	for (int want_anonymous = 1; want_anonymous >= 0; want_anonymous--) {
		scn = NULL;
		while ((scn = elf_nextscn(st->elf, scn))) {
			GElf_Shdr shdr;
			if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_RELA || !(shdr.sh_flags & SHF_ALLOC) ||
			    shdr.sh_entsize == 0)
				continue;
			Elf_Data *data = elf_getdata(scn, NULL);
			Elf_Scn *symscn = elf_getscn(st->elf, shdr.sh_link);
			Elf_Data *symdata = symscn ? elf_getdata(symscn, NULL) : NULL;
			if (!data)
				continue;
			size_t n = shdr.sh_size / shdr.sh_entsize;
			for (size_t i = 0; i < n; i++) {
				GElf_Rela rela;
				if (!gelf_getrela(data, (int)i, &rela) ||
				    GELF_R_TYPE(rela.r_info) != R_X86_64_TPOFF64)
					continue;
				size_t symndx = GELF_R_SYM(rela.r_info);
				int64_t addend = rela.r_addend;
				if (want_anonymous != (symndx == 0))
					continue;
				if (symndx) {
					/* A slot naming a symbol of another module says nothing about ours. */
					GElf_Sym sym;
					if (!symdata || !gelf_getsym(symdata, (int)symndx, &sym) ||
					    sym.st_shndx == SHN_UNDEF || GELF_ST_TYPE(sym.st_info) != STT_TLS)
						continue;
					addend += (int64_t)sym.st_value;
				}
				seen = true;
				uint64_t slot;
				md_error_destroy(last);
				last = md_target_read(t, st->bias + rela.r_offset, &slot, sizeof(slot));
				if (!last) {
					int64_t off = addend - (int64_t)slot;
					if (tls_offset_plausible(off, tls)) {
						*ret = off;
						return NULL;
					}
					last = md_error_create(MD_ERR_BAD_DATA,
							       "%s: TPOFF64 slot at 0x%" PRIx64 " holds 0x%" PRIx64
							       ", not a TLS offset",
							       st->name, st->bias + rela.r_offset, slot);
				}
				/* A few slots are enough to tell a broken GOT from a bad read. */
				if (++tried >= 4)
					return last;
			}
		}
	}
	if (!seen)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no TPOFF64 relocation", st->name);
	return last;
}

/* The executable's block comes first in static TLS (the GNU loader's _dl_determine_tlsoffset with
 * offset 0), so its l_tls_offset follows from PT_TLS alone. */
static int64_t exe_tls_offset(const GElf_Phdr *tls)
{
	uint64_t align = tls->p_align ? tls->p_align : 1;
	uint64_t firstbyte = (-(tls->p_vaddr & (align - 1))) & (align - 1);
	uint64_t size = tls->p_memsz - firstbyte;
	return (int64_t)(((size + align - 1) / align) * align + firstbyte);
}

static struct md_error *read_u64(struct md_target *t, uint64_t addr, uint64_t *ret)
{
	return md_target_read(t, addr, ret, sizeof(*ret));
}

static struct md_error *lookup_preferring(struct md_symbols *s, const char *const *prefixes, const char *name,
					  struct md_symbol *sym_ret, size_t *index_ret)
{
	/* The named modules first (cheap), then any module. */
	for (const char *const *p = prefixes; *p; p++) {
		const struct md_module *mod = md_symbols_find_module(s, *p);
		if (!mod)
			continue;
		struct md_error *err = lookup_in(s, (size_t)module_index(s, mod), name, sym_ret);
		if (!err) {
			*index_ret = (size_t)module_index(s, mod);
			return NULL;
		}
		md_error_destroy(err);
	}
	for (size_t i = 0; i < s->n_modules; i++) {
		struct md_error *err = lookup_in(s, i, name, sym_ret);
		if (!err) {
			*index_ret = i;
			return NULL;
		}
		md_error_destroy(err);
	}
	return md_error_create(MD_ERR_NOT_FOUND, "symbol %s not found", name);
}

/* A field as libc describes it to libthread_db: _thread_db_<struct>_<field> is {bits, count,
 * offset}, read from libc's file. MD_ERR_NOT_FOUND when libc has no such description. */
static struct md_error *thread_db_field(struct md_symbols *s, const char *name, uint32_t desc_ret[3])
{
	static const char *const libc_names[] = {"libc.so", "libc-", "libpthread", NULL};
	struct md_symbol sym;
	size_t index;
	struct md_error *err = lookup_preferring(s, libc_names, name, &sym, &index);
	if (err)
		return err;
	struct module_state *dst = &s->states[index];
	if (!dst->elf || sym.address < dst->bias ||
	    !elf_read_vaddr(dst->elf, sym.address - dst->bias, desc_ret, 3 * sizeof(uint32_t)))
		return md_error_create(MD_ERR_BAD_DATA, "cannot read %s in %s", name, dst->name);
	return NULL;
}

/* The offset of a 64-bit field from its libthread_db description. */
static struct md_error *thread_db_u64_field(struct md_symbols *s, const char *name, uint64_t *offset_ret)
{
	uint32_t desc[3];
	struct md_error *err = thread_db_field(s, name, desc);
	if (err)
		return err;
	if (desc[0] != 64 || desc[1] != 1 || desc[2] > 65536 || desc[2] % 8)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s is {%u, %u, %u}, not a 64-bit field", name, desc[0],
				       desc[1], desc[2]);
	*offset_ret = desc[2];
	return NULL;
}

/* Where the loader's struct r_debug is: ld.so's _r_debug, else what the executable's DT_DEBUG
 * entry points at (the loader fills it in at start-up; debuggers have found it there since SVR4,
 * and it is all that is left when ld.so's symbols are stripped). */
static struct md_error *r_debug_address(struct md_symbols *s, struct md_target *t, uint64_t *ret)
{
	static const char *const ld_names[] = {"ld-linux", "ld-", NULL};
	struct md_symbol r_debug;
	size_t r_debug_mod;
	struct md_error *err = lookup_preferring(s, ld_names, "_r_debug", &r_debug, &r_debug_mod);
	if (!err) {
		*ret = r_debug.address;
		return NULL;
	}
	GElf_Phdr dyn;
	struct module_state *main_st = s->main_index >= 0 ? &s->states[s->main_index] : NULL;
	if (!main_st || !main_st->elf || !elf_find_phdr(main_st->elf, PT_DYNAMIC, &dyn))
		return md_error_wrap(err, "and the executable has no dynamic section");
	uint64_t at = main_st->bias + dyn.p_vaddr;
	for (uint64_t i = 0; i < dyn.p_memsz / 16 && i < MAX_DYNAMIC_ENTRIES; i++) {
		uint64_t entry[2];
		struct md_error *rerr = md_target_read(t, at + i * 16, entry, sizeof(entry));
		if (rerr) {
			md_error_destroy(err);
			return md_error_wrap(rerr, "reading the executable's dynamic section");
		}
		if (entry[0] == DT_NULL)
			break;
		if (entry[0] == DT_DEBUG && entry[1]) {
			md_error_destroy(err);
			*ret = entry[1];
			return NULL;
		}
	}
	return md_error_wrap(err, "and no DT_DEBUG entry");
}

/* The module's struct link_map in the target: r_debug.r_map's chain (the base namespace; modules
 * of dlmopen namespaces are not on it), matched by load bias and the address of its dynamic
 * section (l_addr, l_ld), which the file gives without trusting the target. */
static struct md_error *module_link_map(struct md_symbols *s, size_t index, struct md_target *t, uint64_t *lm_ret)
{
	struct module_state *st = &s->states[index];
	uint64_t r_debug = 0;
	struct md_error *err = r_debug_address(s, t, &r_debug);
	if (err)
		return err;
	uint64_t want_ld = 0;
	GElf_Phdr dyn;
	if (st->elf && elf_find_phdr(st->elf, PT_DYNAMIC, &dyn))
		want_ld = st->bias + dyn.p_vaddr;
	uint64_t lm;
	if ((err = read_u64(t, r_debug + 8, &lm)))
		return md_error_wrap(err, "reading r_debug.r_map");
	for (size_t steps = 0; lm && steps < MAX_LINK_MAP_STEPS; steps++) {
		uint64_t l_addr, l_ld, l_next;
		if ((err = read_u64(t, lm, &l_addr)) || (err = read_u64(t, lm + 0x10, &l_ld)) ||
		    (err = read_u64(t, lm + 0x18, &l_next)))
			return md_error_wrap(err, "reading link_map at 0x%" PRIx64, lm);
		if (l_addr == st->bias && (!want_ld || l_ld == want_ld)) {
			*lm_ret = lm;
			return NULL;
		}
		lm = l_next;
	}
	return md_error_create(MD_ERR_NOT_FOUND, "%s not found in the link_map chain", st->name);
}

/* ld.so's own record: the module's link_map -> l_tls_offset, at the offset libc publishes for
 * libthread_db in _thread_db_link_map_l_tls_offset. */
static struct md_error *tls_from_link_map(struct md_symbols *s, size_t index, struct md_target *t,
					  int64_t *ret)
{
	struct module_state *st = &s->states[index];
	uint64_t field = 0, lm = 0;
	struct md_error *err = thread_db_u64_field(s, "_thread_db_link_map_l_tls_offset", &field);
	if (err)
		return err;
	if ((err = module_link_map(s, index, t, &lm)))
		return err;
	uint64_t value;
	if ((err = read_u64(t, lm + field, &value)))
		return md_error_wrap(err, "reading l_tls_offset");
	/* 0 is NO_TLS_OFFSET, -1 FORCED_DYNAMIC_TLS_OFFSET (dlopen'ed, dynamic TLS). */
	if (value == 0 || value == UINT64_MAX)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s has no static TLS block", st->name);
	*ret = (int64_t)value;
	return NULL;
}

struct md_error *md_symbols_tls_offset(struct md_symbols *symbols, const struct md_module *mod,
				       struct md_target *t, int64_t *tls_offset_ret)
{
	ssize_t index = module_index(symbols, mod);
	if (index < 0)
		return md_error_create(MD_ERR_NOT_FOUND, "TLS offset: unknown module");
	struct module_state *st = &symbols->states[index];
	if (st->tls_known) {
		*tls_offset_ret = st->tls_offset;
		return NULL;
	}
	GElf_Phdr tls;
	if (!st->elf)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: ELF file not found", st->name);
	if (!elf_find_phdr(st->elf, PT_TLS, &tls) || tls.p_memsz == 0)
		return md_error_create(MD_ERR_NOT_FOUND, "%s has no TLS segment", st->name);
	int64_t off = 0;
	struct md_error *err = tls_from_got(st, t, &tls, &off);
	if (err && index == symbols->main_index) {
		md_error_destroy(err);
		err = NULL;
		off = exe_tls_offset(&tls);
	}
	if (err) {
		struct md_error *err2 = tls_from_link_map(symbols, (size_t)index, t, &off);
		if (err2) {
			err2 = md_error_wrap(err2, "%s: static TLS offset unknown (%s)", st->name, err->message);
			md_error_destroy(err);
			return err2;
		}
		md_error_destroy(err);
		if (!tls_offset_plausible(off, &tls))
			return md_error_create(MD_ERR_BAD_DATA, "%s: l_tls_offset 0x%" PRIx64 " is implausible",
					       st->name, (uint64_t)off);
	}
	st->tls_known = true;
	st->tls_offset = off;
	*tls_offset_ret = off;
	return NULL;
}

/* ---- dynamic TLS ---- */

/* The module's TLS module id (l_tls_modid, its index in every thread's DTV), from its link_map at
 * the offset libc describes to libthread_db, else at the offset libc's or ld.so's DWARF gives. */
static struct md_error *module_tls_modid(struct md_symbols *s, size_t index, struct md_target *t, uint64_t *ret)
{
	struct module_state *st = &s->states[index];
	if (st->tls_modid) {
		*ret = st->tls_modid;
		return NULL;
	}
	uint64_t field = 0, lm = 0, modid;
	struct md_error *err = thread_db_u64_field(s, "_thread_db_link_map_l_tls_modid", &field);
	if (err) {
		static const char *const layout_names[] = {"libc.so", "ld-linux", NULL};
		for (const char *const *name = layout_names; err && *name; name++) {
			const struct md_module *m = md_symbols_find_module(s, *name);
			uint64_t size = 0;
			struct md_error *derr = m ? md_symbols_member(s, m, "link_map", "l_tls_modid", &field, &size) : NULL;
			if (m && !derr && size == 8) {
				md_error_destroy(err);
				err = NULL;
			}
			md_error_destroy(derr);
		}
		if (err)
			return md_error_wrap(err, "%s: where link_map.l_tls_modid is", st->name);
	}
	if ((err = module_link_map(s, index, t, &lm)))
		return err;
	if ((err = read_u64(t, lm + field, &modid)))
		return md_error_wrap(err, "reading l_tls_modid");
	if (modid == 0 || modid > MAX_TLS_MODID)
		return md_error_create(MD_ERR_BAD_DATA, "%s: l_tls_modid %" PRIu64 " is implausible", st->name, modid);
	st->tls_modid = modid;
	st->link_map = lm;
	*ret = modid;
	return NULL;
}

/* x86-64 and the GNU C library: the thread pointer is the TCB, whose second word points at dtv[0] of the
 * thread's dtv_t array (16 bytes an entry: { void *val; void *to_free; }); dtv[-1] holds the
 * number of entries after dtv[0], dtv[0] the generation, dtv[modid].val the module's block or
 * TLS_DTV_UNALLOCATED (-1) until the thread's first __tls_get_addr for it. libc's descriptions for
 * libthread_db confirm the offsets when it has them. */
#define TCB_DTV_OFFSET 8
#define DTV_ENTRY_SIZE 16

static struct md_error *check_dtv_layout(struct md_symbols *s)
{
	uint64_t off;
	struct md_error *err = thread_db_u64_field(s, "_thread_db_pthread_dtvp", &off);
	if (!err && off != TCB_DTV_OFFSET)
		return md_error_create(MD_ERR_UNSUPPORTED, "this libc keeps the DTV pointer at +%" PRIu64, off);
	md_error_destroy(err);
	err = thread_db_u64_field(s, "_thread_db_dtv_t_pointer_val", &off);
	if (!err && off != 0)
		return md_error_create(MD_ERR_UNSUPPORTED, "this libc's dtv_t has its pointer at +%" PRIu64, off);
	md_error_destroy(err);
	uint32_t desc[3];
	err = thread_db_field(s, "_thread_db_dtv_dtv", desc);
	if (!err && desc[0] != DTV_ENTRY_SIZE * 8)
		return md_error_create(MD_ERR_UNSUPPORTED, "this libc's dtv_t has %u bits", desc[0]);
	md_error_destroy(err);
	return NULL;
}

/* The generation at which module id modid was last given to a module, and that module's
 * link_map: ld.so's slotinfo list (_rtld_global._dl_tls_dtv_slotinfo_list, chunks of { len, next,
 * slotinfo[len] }, each slot { gen, map }), at the offsets libc describes to libthread_db.
 * MD_ERR_NOT_FOUND when this libc describes none of it (GNU C library before 2.34). */
static struct md_error *slotinfo_of(struct md_symbols *s, struct md_target *t, uint64_t modid, uint64_t *gen_ret,
				    uint64_t *map_ret)
{
	static const char *const ld_names[] = {"ld-linux", "ld-", NULL};
	uint64_t list_field, len_off, next_off, gen_off, map_off;
	uint32_t slots[3];
	struct md_error *err;
	if ((err = thread_db_u64_field(s, "_thread_db_rtld_global__dl_tls_dtv_slotinfo_list", &list_field)) ||
	    (err = thread_db_u64_field(s, "_thread_db_dtv_slotinfo_list_len", &len_off)) ||
	    (err = thread_db_u64_field(s, "_thread_db_dtv_slotinfo_list_next", &next_off)) ||
	    (err = thread_db_u64_field(s, "_thread_db_dtv_slotinfo_gen", &gen_off)) ||
	    (err = thread_db_u64_field(s, "_thread_db_dtv_slotinfo_map", &map_off)) ||
	    (err = thread_db_field(s, "_thread_db_dtv_slotinfo_list_slotinfo", slots)))
		return err;
	uint64_t slot_size = slots[0] / 8;
	if (slot_size < 16 || slot_size > 256 || slots[2] > 4096 || gen_off + 8 > slot_size || map_off + 8 > slot_size)
		return md_error_create(MD_ERR_UNSUPPORTED, "this libc's dtv_slotinfo is {%u, %u, %u}", slots[0], slots[1],
				       slots[2]);
	struct md_symbol rtld_global;
	size_t rtld_mod;
	if ((err = lookup_preferring(s, ld_names, "_rtld_global", &rtld_global, &rtld_mod)))
		return err;
	uint64_t list, index = modid;
	if ((err = read_u64(t, rtld_global.address + list_field, &list)))
		return md_error_wrap(err, "reading _rtld_global._dl_tls_dtv_slotinfo_list");
	for (int steps = 0; list && steps < 64; steps++) {
		uint64_t len, next;
		if ((err = read_u64(t, list + len_off, &len)) || (err = read_u64(t, list + next_off, &next)))
			return md_error_wrap(err, "reading the TLS slotinfo list at 0x%" PRIx64, list);
		if (len > MAX_TLS_MODID)
			return md_error_create(MD_ERR_BAD_DATA, "TLS slotinfo list at 0x%" PRIx64 " claims %" PRIu64 " slots",
					       list, len);
		if (index < len) {
			uint64_t slot = list + slots[2] + index * slot_size;
			if ((err = read_u64(t, slot + gen_off, gen_ret)) || (err = read_u64(t, slot + map_off, map_ret)))
				return md_error_wrap(err, "reading TLS slot %" PRIu64, modid);
			return NULL;
		}
		index -= len;
		list = next;
	}
	return md_error_create(MD_ERR_BAD_DATA, "module id %" PRIu64 " is not in the TLS slotinfo list", modid);
}

static struct md_error *dtv_block(struct md_symbols *s, size_t index, struct md_target *t, int32_t tid,
				  uint64_t thread_pointer, uint64_t block_size, uint64_t *block_ret)
{
	struct module_state *st = &s->states[index];
	uint64_t modid = 0, dtv, len, val;
	struct md_error *err = check_dtv_layout(s);
	if (err || (err = module_tls_modid(s, index, t, &modid)))
		return err;
	if ((err = read_u64(t, thread_pointer + TCB_DTV_OFFSET, &dtv)))
		return md_error_wrap(err, "thread %d: reading its DTV pointer", (int)tid);
	if ((err = read_u64(t, dtv - DTV_ENTRY_SIZE, &len)))
		return md_error_wrap(err, "thread %d: reading its DTV at 0x%" PRIx64, (int)tid, dtv);
	if (len > MAX_TLS_MODID)
		return md_error_create(MD_ERR_BAD_DATA, "thread %d: DTV at 0x%" PRIx64 " claims %" PRIu64 " entries",
				       (int)tid, dtv, len);
	if (modid > len)
		return md_error_create(MD_ERR_NOT_FOUND,
				       "thread %d has no TLS block of %s yet (its DTV of %" PRIu64
				       " entries predates module id %" PRIu64 ")",
				       (int)tid, st->name, len, modid);
	/* An entry older than the module that now has the id is stale (a dlclose'd predecessor's, or
	 * not set yet): the thread brings its DTV up to date at its next __tls_get_addr only. */
	uint64_t dtv_gen, slot_gen, slot_map;
	err = slotinfo_of(s, t, modid, &slot_gen, &slot_map);
	if (!err) {
		uint64_t lm = st->link_map;
		if ((err = read_u64(t, dtv, &dtv_gen)))
			return md_error_wrap(err, "thread %d: reading its DTV generation", (int)tid);
		if (slot_map != lm)
			return md_error_create(MD_ERR_BAD_DATA,
					       "TLS slot %" PRIu64 " belongs to link_map 0x%" PRIx64 ", not to %s (0x%" PRIx64 ")",
					       modid, slot_map, st->name, lm);
		if (slot_gen > dtv_gen)
			return md_error_create(MD_ERR_NOT_FOUND,
					       "thread %d has no TLS block of %s yet (its DTV is of generation %" PRIu64
					       ", the module of %" PRIu64 ")",
					       (int)tid, st->name, dtv_gen, slot_gen);
	} else if (err->code != MD_ERR_NOT_FOUND) {
		return err;
	}
	md_error_destroy(err);
	if ((err = read_u64(t, dtv + modid * DTV_ENTRY_SIZE, &val)))
		return md_error_wrap(err, "thread %d: reading DTV entry %" PRIu64, (int)tid, modid);
	if (val == 0 || val == UINT64_MAX)
		return md_error_create(MD_ERR_NOT_FOUND, "thread %d has not allocated its TLS block of %s yet",
				       (int)tid, st->name);
	const struct md_mapping *m = md_target_find_mapping(t, val);
	if (!m || !(m->perms & MD_PERM_WRITE) || block_size > m->end - val)
		return md_error_create(MD_ERR_BAD_DATA,
				       "thread %d: DTV entry %" PRIu64 " of %s points at 0x%" PRIx64
				       ", not at %" PRIu64 " writable bytes",
				       (int)tid, modid, st->name, val, block_size);
	*block_ret = val;
	return NULL;
}

struct md_error *md_symbols_tls_address(struct md_symbols *symbols, const struct md_module *mod,
					struct md_target *t, int32_t tid, uint64_t thread_pointer,
					uint64_t offset, uint64_t *address_ret)
{
	ssize_t index = module_index(symbols, mod);
	if (index < 0)
		return md_error_create(MD_ERR_NOT_FOUND, "TLS address: unknown module");
	struct module_state *st = &symbols->states[index];
	GElf_Phdr tls;
	if (!st->elf || !elf_find_phdr(st->elf, PT_TLS, &tls) || tls.p_memsz == 0)
		return md_error_create(MD_ERR_NOT_FOUND, "%s has no TLS segment", st->name);
	struct md_error *static_err = NULL;
	if (!st->tls_dynamic) {
		int64_t tls_offset;
		static_err = md_symbols_tls_offset(symbols, mod, t, &tls_offset);
		if (!static_err) {
			*address_ret = thread_pointer - (uint64_t)tls_offset + offset;
			return NULL;
		}
		if (static_err->code == MD_ERR_UNSUPPORTED) {
			md_error_destroy(static_err); /* no static block: that is for good */
			static_err = NULL;
			st->tls_dynamic = true;
		}
	}
	/* Static TLS unknown (no GOT slot, libc without its descriptions): the DTV points at static
	 * blocks too, for every thread that has an up-to-date one. */
	if (offset >= tls.p_memsz) {
		md_error_destroy(static_err);
		return md_error_create(MD_ERR_NOT_FOUND, "%s: offset 0x%" PRIx64 " lies outside its TLS block of %" PRIu64
				       " bytes", st->name, offset, (uint64_t)tls.p_memsz);
	}
	uint64_t block = 0;
	struct md_error *err = dtv_block(symbols, (size_t)index, t, tid, thread_pointer, tls.p_memsz, &block);
	if (err) {
		if (static_err && err->code != MD_ERR_NOT_FOUND)
			err = md_error_wrap(err, "%s", static_err->message);
		md_error_destroy(static_err);
		return err;
	}
	md_error_destroy(static_err);
	*address_ret = block + offset;
	return NULL;
}
