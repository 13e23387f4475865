#include <capstone/capstone.h>
#include <ctype.h>
#include <fcntl.h>
#include <errno.h>
#include <gelf.h>
#include <inttypes.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jem_locate.h"

/* Debian 12 libjemalloc2 5.3.0-1, /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 (stripped).
 * Link-time addresses from docs/jemalloc.md §1.1, checked against mallctl oracles. */
#define DEBIAN_BUILD_ID "1d5163c246dc9cd2b4d339f2ac42efd95c6e0ae1"
static const struct {
	uint64_t arenas, narenas_total, emap, index2size, bin_infos, bin_offsets, malloc_init_state,
		manual_arena_base, narenas_auto;
	uint64_t mutexes[6]; /* ctl_mtx, init_lock, arenas_lock, background_thread_lock, tcaches_mtx,
			      * tsd_nominal_tsds_lock */
} debian_5_3_0 = {
	.arenas = 0xcd6c0,
	.narenas_total = 0xd5808,
	.emap = 0xd5aa0,
	.index2size = 0x2ebac0,
	.bin_infos = 0x2d5c00,
	.bin_offsets = 0xd5820,
	.malloc_init_state = 0xcd2a4,
	.manual_arena_base = 0xcd680,
	.narenas_auto = 0xcd684,
	.mutexes = {0x2d6220, 0xd5780, 0xd56c0, 0x2d5b60, 0x2ec8c0, 0x2ec980},
};

/* The exported entry points of jemalloc (no prefix on Debian). Used to bound jemalloc's code
 * inside an executable that links it statically. */
static const char *const public_functions[] = {
	"malloc", "free", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
	"valloc", "pvalloc", "mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "sdallocx",
	"nallocx", "mallctl", "mallctlnametomib", "mallctlbymib", "malloc_stats_print",
	"malloc_usable_size", "sdallocx_noflags", "smallocx",
};

uint64_t jem_index2size_default(unsigned szind)
{
	static const uint64_t first[9] = {8, 16, 32, 48, 64, 80, 96, 112, 128};
	if (szind < 9)
		return first[szind];
	if (szind >= JEM_NSIZES)
		return 0;
	/* Groups of four classes per power of two, spaced by a quarter of it. */
	unsigned j = szind - 9;
	unsigned lg_base = 7 + j / 4, k = j % 4 + 1;
	return (1ULL << lg_base) + (uint64_t)k * (1ULL << (lg_base - 2));
}

/* ---- The module's ELF file ------------------------------------------------------------- */

struct elf_file {
	int fd;
	Elf *elf;
	bool has_symtab;
	uint64_t bss_start, bss_end;     /* link-time */
	uint64_t rodata_off, rodata_size; /* file offset of .rodata */
};

static void elf_file_close(struct elf_file *f)
{
	if (f->elf)
		elf_end(f->elf);
	if (f->fd >= 0)
		close(f->fd);
	f->elf = NULL;
	f->fd = -1;
}

static struct md_error *elf_file_open(const char *path, struct elf_file *f)
{
	*f = (struct elf_file){.fd = -1};
	if (elf_version(EV_CURRENT) == EV_NONE)
		return md_error_create(MD_ERR_UNSUPPORTED, "libelf: %s", elf_errmsg(-1));
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return md_error_os(errno, "opening %s", path);
	f->elf = elf_begin(f->fd, ELF_C_READ_MMAP, NULL);
	if (!f->elf || elf_kind(f->elf) != ELF_K_ELF) {
		elf_file_close(f);
		return md_error_create(MD_ERR_BAD_FILE, "%s: not an ELF file", path);
	}
	size_t shstrndx;
	if (elf_getshdrstrndx(f->elf, &shstrndx) != 0) {
		elf_file_close(f);
		return md_error_create(MD_ERR_BAD_FILE, "%s: no section names", path);
	}
	for (Elf_Scn *scn = elf_nextscn(f->elf, NULL); scn; scn = elf_nextscn(f->elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		const char *name = elf_strptr(f->elf, shstrndx, sh.sh_name);
		if (!name)
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			f->has_symtab = true;
		else if (strcmp(name, ".bss") == 0 && sh.sh_type == SHT_NOBITS) {
			f->bss_start = sh.sh_addr;
			f->bss_end = sh.sh_addr + sh.sh_size;
		} else if (strcmp(name, ".rodata") == 0 && sh.sh_type == SHT_PROGBITS) {
			f->rodata_off = sh.sh_offset;
			f->rodata_size = sh.sh_size;
		}
	}
	return NULL;
}

/* True when a defined symbol's name is `suffix` or ends with it (a private namespace prefix). */
static bool name_matches(const char *name, const char *suffix, bool exact)
{
	size_t n = strlen(name), s = strlen(suffix);
	if (exact)
		return n == s && memcmp(name, suffix, n) == 0;
	return n >= s && memcmp(name + n - s, suffix, s) == 0;
}

/* Find a defined symbol in .symtab (or .dynsym when dynsym is set). Link-time value. */
static bool elf_find_symbol(struct elf_file *f, const char *suffix, bool exact, bool dynsym,
			    GElf_Sym *sym_ret)
{
	for (Elf_Scn *scn = elf_nextscn(f->elf, NULL); scn; scn = elf_nextscn(f->elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != (dynsym ? SHT_DYNSYM : SHT_SYMTAB) ||
		    sh.sh_entsize == 0)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		size_t n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
				continue;
			const char *name = elf_strptr(f->elf, sh.sh_link, sym.st_name);
			if (name && name_matches(name, suffix, exact)) {
				*sym_ret = sym;
				return true;
			}
		}
	}
	return false;
}

static bool is_jemalloc_name(const char *name)
{
	if (strstr(name, "je_"))
		return true;
	for (size_t k = 0; k < sizeof(public_functions) / sizeof(public_functions[0]); k++)
		if (strcmp(name, public_functions[k]) == 0)
			return true;
	return false;
}

static int cmp_ranges(const void *pa, const void *pb)
{
	const struct jem_text_range *a = pa, *b = pb;
	return a->start < b->start ? -1 : a->start > b->start ? 1 : 0;
}

/* jemalloc's functions in an executable that links it statically. Compilers scatter an object's
 * code (.text.unlikely, .text.hot), so no single range covers it: collect every function of the
 * source files that define je_* symbols (local symbols are grouped by STT_FILE), plus the global
 * je_* and public entry points, and merge them into sorted ranges. */
static struct md_error *elf_jemalloc_text(struct elf_file *f, uint64_t bias, struct jem_roots *r)
{
	for (Elf_Scn *scn = elf_nextscn(f->elf, NULL); scn; scn = elf_nextscn(f->elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB || sh.sh_entsize == 0)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		size_t n = sh.sh_size / sh.sh_entsize, cap = 0, count = 0;
		struct jem_text_range *ranges = NULL;
		/* Pass 1 marks FILE groups holding je_ names; pass 2 takes their functions. */
		bool *ours = calloc(n + 1, sizeof(*ours));
		if (!ours)
			return &md_error_nomem;
		size_t group_start = 0;
		bool group_ours = false;
		for (size_t i = 0; i <= n; i++) {
			GElf_Sym sym;
			bool valid = i < n && gelf_getsym(data, (int)i, &sym);
			bool is_file = valid && GELF_ST_TYPE(sym.st_info) == STT_FILE;
			bool end_of_locals = valid && GELF_ST_BIND(sym.st_info) != STB_LOCAL;
			if (i == n || is_file || end_of_locals) {
				for (size_t k = group_start; k < i; k++)
					ours[k] = group_ours;
				group_start = i;
				group_ours = false;
				if (i == n || end_of_locals)
					break;
			}
			const char *name = valid ? elf_strptr(f->elf, sh.sh_link, sym.st_name) : NULL;
			if (name && !is_file && strstr(name, "je_"))
				group_ours = true;
		}
		for (size_t i = 0; i < n; i++) {
			GElf_Sym sym;
			if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF ||
			    GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_size == 0)
				continue;
			const char *name = elf_strptr(f->elf, sh.sh_link, sym.st_name);
			if (!ours[i] && !(name && is_jemalloc_name(name)))
				continue;
			if (count == cap) {
				cap = cap ? cap * 2 : 1024;
				struct jem_text_range *nr = realloc(ranges, cap * sizeof(*nr));
				if (!nr) {
					free(ranges);
					free(ours);
					return &md_error_nomem;
				}
				ranges = nr;
			}
			ranges[count].start = bias + sym.st_value;
			ranges[count].end = bias + sym.st_value + sym.st_size;
			count++;
		}
		free(ours);
		if (!count) {
			free(ranges);
			continue;
		}
		qsort(ranges, count, sizeof(*ranges), cmp_ranges);
		size_t m = 0;
		for (size_t i = 1; i < count; i++) {
			/* Merge touching or overlapping functions (padding between them is < 64 bytes). */
			if (ranges[i].start <= ranges[m].end + 64) {
				if (ranges[i].end > ranges[m].end)
					ranges[m].end = ranges[i].end;
			} else {
				ranges[++m] = ranges[i];
			}
		}
		free(r->text);
		r->text = ranges;
		r->n_text = m + 1;
		return NULL;
	}
	return NULL;
}

void jem_roots_deinit(struct jem_roots *r)
{
	free(r->text);
	r->text = NULL;
	r->n_text = 0;
}

bool jem_in_text(const struct jem_roots *r, uint64_t pc)
{
	size_t lo = 0, hi = r->n_text;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (pc < r->text[mid].start)
			hi = mid;
		else if (pc >= r->text[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* Executable segments of the file (the whole module is jemalloc when it is libjemalloc). */
static bool elf_exec_range(struct elf_file *f, uint64_t *lo_ret, uint64_t *hi_ret)
{
	size_t n;
	if (elf_getphdrnum(f->elf, &n) != 0)
		return false;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < n; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD || !(ph.p_flags & PF_X))
			continue;
		if (ph.p_vaddr < lo)
			lo = ph.p_vaddr;
		if (ph.p_vaddr + ph.p_memsz > hi)
			hi = ph.p_vaddr + ph.p_memsz;
	}
	if (lo >= hi)
		return false;
	*lo_ret = lo;
	*hi_ret = hi;
	return true;
}

/* JEMALLOC_VERSION ("5.3.0-0-g<40 hex>") in .rodata. */
static void elf_find_version(struct elf_file *f, char *buf, size_t len)
{
	buf[0] = 0;
	if (!f->rodata_size || f->rodata_size > (64u << 20))
		return;
	size_t flen = 0;
	const char *img = elf_rawfile(f->elf, &flen);
	if (!img || f->rodata_off + f->rodata_size > flen)
		return;
	const char *p = img + f->rodata_off, *end = p + f->rodata_size;
	for (const char *q = p; q + 42 < end; q++) {
		if (q[0] != '-' || q[1] != 'g')
			continue;
		size_t h = 0;
		while (h < 40 && isxdigit((unsigned char)q[2 + h]))
			h++;
		if (h != 40 || q[42] != 0)
			continue;
		const char *s = q;
		while (s > p && s[-1] != 0 && q - s < 32)
			s--;
		if (!isdigit((unsigned char)*s) || !strchr(s, '.'))
			continue;
		snprintf(buf, len, "%s", s);
		return;
	}
}

/* §4.2 step 3: in the exported malloc_usable_size, the rtree argument of the slow lookup is a
 * `lea reg, [rip + X]` with X in .bss. Collect those targets (link-time) so that the emap found
 * otherwise can be confirmed by the code that uses it. Returns how many were found. */
static size_t disasm_emap_candidates(struct elf_file *f, uint64_t *out, size_t max)
{
	GElf_Sym sym;
	if (!elf_find_symbol(f, "malloc_usable_size", true, true, &sym) || sym.st_size == 0 || sym.st_size > 4096)
		return 0;
	size_t nph, flen = 0;
	const uint8_t *img = (const uint8_t *)elf_rawfile(f->elf, &flen);
	if (!img || elf_getphdrnum(f->elf, &nph) != 0)
		return 0;
	const uint8_t *code = NULL;
	for (size_t i = 0; i < nph && !code; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(f->elf, (int)i, &ph) || ph.p_type != PT_LOAD || sym.st_value < ph.p_vaddr ||
		    sym.st_value + sym.st_size > ph.p_vaddr + ph.p_filesz)
			continue;
		uint64_t off = sym.st_value - ph.p_vaddr + ph.p_offset;
		if (off + sym.st_size <= flen)
			code = img + off;
	}
	if (!code)
		return 0;
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 0;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	cs_insn *insn = NULL;
	size_t n = cs_disasm(cs, code, sym.st_size, sym.st_value, 0, &insn), found = 0;
	for (size_t i = 0; i < n && found < max; i++) {
		if (insn[i].id != X86_INS_LEA || !insn[i].detail)
			continue;
		const cs_x86 *x = &insn[i].detail->x86;
		if (x->op_count != 2 || x->operands[1].type != X86_OP_MEM || x->operands[1].mem.base != X86_REG_RIP)
			continue;
		uint64_t target = insn[i].address + insn[i].size + (uint64_t)x->operands[1].mem.disp;
		if (target >= f->bss_start && target < f->bss_end)
			out[found++] = target;
	}
	if (n)
		cs_free(insn, n);
	cs_close(&cs);
	return found;
}

/* ---- Checks on target memory ---------------------------------------------------------- */

static bool mapped_rw(struct md_target *t, uint64_t addr, uint64_t len)
{
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	return m && (m->perms & MD_PERM_READ) && (m->perms & MD_PERM_WRITE) && addr + len >= addr &&
	       addr + len <= m->end;
}

/* The triangle of docs/jemalloc.md §4.2 step 5 for an arena candidate A: its pa_shard.base equals
 * its base, its emap lies in [emap_lo, emap_hi), and the emap's rtree base is that base. Sets
 * *ind_ret to the arena's index. Never fails loudly: a bad candidate is simply false. */
static bool arena_triangle(struct md_target *t, const struct jem_layout *l, uint64_t a,
			   uint64_t emap_lo, uint64_t emap_hi, uint64_t *emap_ret, uint32_t *ind_ret)
{
	if (!a || (a & 63) || !mapped_rw(t, a, l->arena_read_size))
		return false;
	uint64_t emap, pa_base, base;
	uint32_t ind;
	struct md_error *err = md_target_read_u64(t, a + l->arena_emap, &emap);
	if (!err)
		err = md_target_read_u64(t, a + l->arena_pa_base, &pa_base);
	if (!err)
		err = md_target_read_u64(t, a + l->arena_base, &base);
	if (!err)
		err = md_target_read(t, a + l->arena_ind, &ind, sizeof(ind));
	if (err) {
		md_error_destroy(err);
		return false;
	}
	if (!base || base != pa_base || emap < emap_lo || emap + 8 > emap_hi || ind >= JEM_MAX_ARENAS)
		return false;
	if (!mapped_rw(t, base, 8))
		return false;
	uint64_t rtree_base;
	err = md_target_read_u64(t, emap, &rtree_base);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	if (rtree_base != base && ind == 0)
		return false;
	*emap_ret = emap;
	*ind_ret = ind;
	return true;
}

struct md_error *jem_roots_validate(struct md_target *t, const struct jem_roots *r)
{
	const struct jem_layout *l = &r->layout;
	if (r->malloc_init_state) {
		uint32_t state;
		struct md_error *err = md_target_read(t, r->malloc_init_state, &state, sizeof(state));
		if (err)
			return md_error_wrap(err, "reading je_malloc_init_state");
		if (state != 0)
			return md_error_create(MD_ERR_NOT_FOUND, "jemalloc not initialized (malloc_init_state %u)", state);
	}
	uint64_t a0;
	struct md_error *err = md_target_read_u64(t, r->arenas, &a0);
	if (err)
		return md_error_wrap(err, "reading je_arenas[0]");
	if (!a0)
		return md_error_create(MD_ERR_NOT_FOUND, "jemalloc not initialized (arenas[0] is NULL)");
	uint64_t emap;
	uint32_t ind;
	if (!arena_triangle(t, l, a0, r->emap, r->emap + 8, &emap, &ind) || ind != 0)
		return md_error_create(MD_ERR_BAD_DATA,
				       "arenas[0] = 0x%" PRIx64 " fails the arena/emap/base check (emap 0x%" PRIx64 ")",
				       a0, r->emap);
	return NULL;
}

/* How many of the words after a candidate slot are not what the rest of je_arenas holds (NULL or
 * arena i)? -1 when they cannot be read. */
static int arenas_array_misfits(struct md_target *t, const struct jem_layout *l, uint64_t slot, uint64_t bss_end,
				uint64_t emap)
{
	int misfits = 0;
	/* Check a handful of following slots: each is NULL or an arena of that index. */
	for (uint32_t i = 1; i < 16 && slot + 8 * i + 8 <= bss_end; i++) {
		uint64_t v;
		struct md_error *err = md_target_read_u64(t, slot + 8 * i, &v);
		if (err) {
			md_error_destroy(err);
			return -1;
		}
		if (!v)
			continue;
		uint64_t e;
		uint32_t ind;
		if (!arena_triangle(t, l, v, emap, emap + 8, &e, &ind) || ind != i)
			misfits++;
	}
	return misfits;
}

/* §4.2 step 6: every word of .bss that points to a valid arena 0 whose emap lies in .bss. */
static struct md_error *structural_scan(struct md_target *t, const struct jem_layout *l,
					uint64_t bss_lo, uint64_t bss_hi, uint64_t *arenas_ret,
					uint64_t *emap_ret, unsigned *n_candidates_ret)
{
	uint64_t found_slot = 0, found_emap = 0, damaged_slot = 0, damaged_emap = 0;
	unsigned candidates = 0, chosen = 0, damaged = 0;
	uint64_t page[JEM_PAGE / 8];
	for (uint64_t p = bss_lo & ~(JEM_PAGE - 1); p < bss_hi; p += JEM_PAGE) {
		uint8_t bits = md_target_page_bits(t, p);
		if (!MD_PAGE_COUNTED(bits))
			continue; /* never touched: all zeros, nothing to find */
		struct md_error *err = md_target_read(t, p, page, sizeof(page));
		if (err) {
			md_error_destroy(err);
			continue;
		}
		for (size_t i = 0; i < JEM_PAGE / 8; i++) {
			uint64_t slot = p + 8 * i, v = page[i];
			if (slot < bss_lo || slot + 8 > bss_hi || !v || (v & 63))
				continue;
			uint64_t emap;
			uint32_t ind;
			if (!arena_triangle(t, l, v, bss_lo, bss_hi, &emap, &ind) || ind != 0)
				continue;
			candidates++;
			int misfits = arenas_array_misfits(t, l, slot, bss_hi, emap);
			if (misfits == 0) {
				chosen++;
				if (!found_slot) {
					found_slot = slot;
					found_emap = emap;
				}
			} else if (misfits == 1) {
				/* One damaged slot in the real array must not hide jemalloc: the walker
				 * reports that slot. Used only when no clean candidate exists, and only
				 * when it is the only such candidate. */
				damaged++;
				if (!damaged_slot) {
					damaged_slot = slot;
					damaged_emap = emap;
				}
			}
		}
	}
	*n_candidates_ret = candidates;
	if (chosen == 0 && damaged == 1) {
		chosen = 1;
		found_slot = damaged_slot;
		found_emap = damaged_emap;
	}
	if (chosen == 0)
		return md_error_create(MD_ERR_NOT_FOUND,
				       "structural scan of .bss [0x%" PRIx64 ", 0x%" PRIx64 "): %u arena-0 pointers, none followed by an arena array",
				       bss_lo, bss_hi, candidates);
	if (chosen > 1)
		return md_error_create(MD_ERR_BAD_DATA,
				       "structural scan of .bss: %u candidate je_arenas arrays, refusing to guess",
				       chosen);
	*arenas_ret = found_slot;
	*emap_ret = found_emap;
	return NULL;
}

/* ---- Choosing the module ----------------------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

enum candidate { NOT_JEMALLOC, MAYBE_JEMALLOC, JEMALLOC };

/* Does this module carry jemalloc? Surely: a libjemalloc* file, or a file defining je_arenas or
 * mallctl. Maybe: a stripped file that defines malloc itself (a static link, or another
 * allocator): only the structural scan can tell, and its failure then means "not jemalloc". */
/* Whether the file holds jemalloc's message prefix "<jemalloc>" (malloc_write's errors and the
 * option parser's, in every build, whatever --with-jemalloc-prefix): a stripped module that
 * exports malloc without it is some other allocator, and the structural scan of its .bss
 * (tens of milliseconds on every attach of a tcmalloc or musl process) is not run. */
static bool file_mentions_jemalloc(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* cannot tell: let the scan decide */
	struct stat st;
	bool found = true;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p != MAP_FAILED) {
			static const char marker[] = "<jemalloc>";
			found = memmem(p, (size_t)st.st_size, marker, sizeof(marker) - 1) != NULL;
			munmap(p, (size_t)st.st_size);
		}
	}
	close(fd);
	return found;
}

static enum candidate module_has_jemalloc(struct md_target *t, const struct md_module *mod)
{
	const char *name = mod->name ? base_name(mod->name) : "";
	if (strncmp(name, "libjemalloc", 11) == 0)
		return JEMALLOC;
	if (strncmp(name, "libc.so", 7) == 0 || strncmp(name, "ld-linux", 8) == 0 ||
	    strncmp(name, "linux-vdso", 10) == 0 || name[0] == '[')
		return NOT_JEMALLOC;
	const char *path = md_target_module_file(t, mod);
	if (!path)
		return NOT_JEMALLOC;
	struct elf_file f;
	struct md_error *err = elf_file_open(path, &f);
	if (err) {
		md_error_destroy(err);
		return NOT_JEMALLOC;
	}
	GElf_Sym sym;
	enum candidate c = NOT_JEMALLOC;
	if (elf_find_symbol(&f, "je_arenas", false, false, &sym) ||
	    elf_find_symbol(&f, "mallctl", false, true, &sym) ||
	    elf_find_symbol(&f, "mallctl", false, false, &sym))
		c = JEMALLOC;
	else if (!f.has_symtab && f.bss_end && elf_find_symbol(&f, "malloc", true, true, &sym) &&
		 GELF_ST_TYPE(sym.st_info) == STT_FUNC && file_mentions_jemalloc(path))
		c = MAYBE_JEMALLOC;
	elf_file_close(&f);
	return c;
}

/* Symbols by suffix: md_target_symbol first (separate debug files), then the file's .symtab. */
static uint64_t lookup(struct md_target *t, const struct md_module *mod, struct elf_file *f,
		       const char *name, bool *from_debug)
{
	struct md_symbol sym;
	struct md_error *err = md_target_symbol(t, mod, name, &sym);
	if (!err && sym.address && sym.source >= MD_SYMSRC_SYMTAB) {
		if (from_debug)
			*from_debug = true;
		return sym.address;
	}
	md_error_destroy(err);
	GElf_Sym es;
	if (f->has_symtab && elf_find_symbol(f, name, false, false, &es))
		return mod->bias + es.st_value;
	return 0;
}

static struct md_error *locate_in(struct md_target *t, const struct md_module *mod,
				  bool debuginfo_disabled, struct jem_roots *r)
{
	const char *path = md_target_module_file(t, mod);
	if (!path)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: file not available", mod->name);
	struct elf_file f;
	struct md_error *err = elf_file_open(path, &f);
	if (err)
		return err;
	memset(r, 0, sizeof(*r));
	r->module = mod;
	r->arena_slots = JEM_MAX_ARENAS;
	jem_layout_default(&r->layout);
	elf_find_version(&f, r->version, sizeof(r->version));

	uint64_t lo, hi;
	bool is_lib = strncmp(base_name(mod->name), "libjemalloc", 11) == 0;
	if (is_lib && elf_exec_range(&f, &lo, &hi)) {
		r->text = malloc(sizeof(*r->text));
		if (!r->text) {
			elf_file_close(&f);
			return &md_error_nomem;
		}
		r->text[0].start = mod->bias + lo;
		r->text[0].end = mod->bias + hi;
		r->n_text = 1;
	} else if (f.has_symtab) {
		err = elf_jemalloc_text(&f, mod->bias, r);
		if (err) {
			elf_file_close(&f);
			return err;
		}
	}

	/* 1. Symbols. */
	bool from_debug = false;
	uint64_t arenas = lookup(t, mod, &f, "je_arenas", &from_debug);
	uint64_t emap = lookup(t, mod, &f, "je_arena_emap_global", &from_debug);
	uint64_t bss_lo = mod->bias + f.bss_start, bss_hi = mod->bias + f.bss_end;
	int n = 0;
	if (arenas && emap) {
		r->arenas = arenas;
		r->emap = emap;
		r->index2size = lookup(t, mod, &f, "je_sz_index2size_tab", NULL);
		r->bin_infos = lookup(t, mod, &f, "je_bin_infos", NULL);
		r->bin_offsets = lookup(t, mod, &f, "je_arena_bin_offsets", NULL);
		r->malloc_init_state = lookup(t, mod, &f, "je_malloc_init_state", NULL);
		r->manual_arena_base = lookup(t, mod, &f, "je_manual_arena_base", NULL);
		r->narenas_auto = lookup(t, mod, &f, "je_narenas_auto", NULL);
		static const char *const mutex_names[] = {"je_arenas_lock", "je_background_thread_lock",
							  "je_tcaches_mtx" };
		for (size_t i = 0; i < sizeof(mutex_names) / sizeof(mutex_names[0]); i++) {
			uint64_t a = lookup(t, mod, &f, mutex_names[i], NULL);
			if (a)
				r->global_mutexes[r->n_global_mutexes++] = a;
		}
		r->source = MD_SYMSRC_SYMTAB;
		unsigned nd = 0;
		if (!debuginfo_disabled) {
			struct md_error *derr = jem_layout_from_dwarf(t, mod, &r->layout, &nd);
			if (!derr)
				r->source = MD_SYMSRC_DWARF;
			md_error_destroy(derr);
		}
		n = snprintf(r->how, sizeof(r->how), "%s of %s%s", from_debug ? "symbols" : ".symtab (by suffix)",
			     base_name(mod->name), r->source == MD_SYMSRC_DWARF ? ", DWARF offsets" : "");
	} else if (mod->build_id && strcmp(mod->build_id, DEBIAN_BUILD_ID) == 0) {
		/* 2. Debian's build, cross-checked by the scan below. */
		r->arenas = mod->bias + debian_5_3_0.arenas;
		r->narenas_total = mod->bias + debian_5_3_0.narenas_total;
		r->emap = mod->bias + debian_5_3_0.emap;
		r->index2size = mod->bias + debian_5_3_0.index2size;
		r->bin_infos = mod->bias + debian_5_3_0.bin_infos;
		r->bin_offsets = mod->bias + debian_5_3_0.bin_offsets;
		r->malloc_init_state = mod->bias + debian_5_3_0.malloc_init_state;
		r->manual_arena_base = mod->bias + debian_5_3_0.manual_arena_base;
		r->narenas_auto = mod->bias + debian_5_3_0.narenas_auto;
		for (size_t i = 0; i < 6; i++)
			r->global_mutexes[r->n_global_mutexes++] = mod->bias + debian_5_3_0.mutexes[i];
		r->source = MD_SYMSRC_HEURISTIC;
		n = snprintf(r->how, sizeof(r->how), "build-id table (Debian 5.3.0-1)");
	} else {
		r->source = MD_SYMSRC_HEURISTIC;
	}

	/* 3. The structural scan: the method when nothing else knows this build, and the
	 * cross-check of the table. */
	if (r->source == MD_SYMSRC_HEURISTIC) {
		if (!f.bss_end) {
			elf_file_close(&f);
			return md_error_create(MD_ERR_NOT_FOUND, "%s: no .bss section to scan", mod->name);
		}
		uint64_t s_arenas = 0, s_emap = 0;
		unsigned cands = 0;
		err = structural_scan(t, &r->layout, bss_lo, bss_hi, &s_arenas, &s_emap, &cands);
		if (err) {
			elf_file_close(&f);
			return md_error_wrap(err, "%s", base_name(mod->name));
		}
		if (r->arenas && (r->arenas != s_arenas || r->emap != s_emap)) {
			elf_file_close(&f);
			return md_error_create(MD_ERR_BAD_DATA,
					       "%s: build-id table (arenas 0x%" PRIx64 ", emap 0x%" PRIx64 ") and structural scan (arenas 0x%" PRIx64 ", emap 0x%" PRIx64 ") disagree",
					       base_name(mod->name), r->arenas, r->emap, s_arenas, s_emap);
		}
		if (r->arenas) {
			snprintf(r->how + n, sizeof(r->how) - (size_t)n,
				 ", confirmed by the structural scan of .bss (%u arena-0 pointers)", cands);
		} else {
			r->arenas = s_arenas;
			r->emap = s_emap;
			snprintf(r->how, sizeof(r->how),
				 "structural scan of %s .bss (%u arena-0 pointers); offsets of 5.3.0",
				 base_name(mod->name), cands);
		}
	}
	/* 4. The code's view: malloc_usable_size's rtree argument must be this emap. */
	uint64_t cand[16];
	size_t nc = disasm_emap_candidates(&f, cand, 16);
	bool confirmed = false;
	for (size_t i = 0; i < nc; i++)
		confirmed |= mod->bias + cand[i] == r->emap;
	size_t len = strlen(r->how);
	if (nc && !confirmed && r->source == MD_SYMSRC_HEURISTIC) {
		elf_file_close(&f);
		return md_error_create(MD_ERR_BAD_DATA,
				       "%s: emap 0x%" PRIx64 " found by %s is not the rtree malloc_usable_size uses",
				       base_name(mod->name), r->emap, r->how);
	}
	snprintf(r->how + len, sizeof(r->how) - len, "%s", confirmed ? "; emap confirmed by malloc_usable_size's code" :
				    nc ? "" : "; malloc_usable_size not disassembled");
	elf_file_close(&f);
	return jem_roots_validate(t, r);
}

struct md_error *jem_locate(struct md_target *t, bool debuginfo_disabled, struct jem_roots *roots_ret)
{
	size_t n = 0;
	const struct md_module *mods = md_target_modules(t, &n);
	roots_ret->module = NULL;
	/* libjemalloc itself first; then any other module that carries jemalloc. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			const struct md_module *mod = &mods[i];
			if (!mod->name)
				continue;
			bool lib = strncmp(base_name(mod->name), "libjemalloc", 11) == 0;
			if ((pass == 0) != lib)
				continue;
			enum candidate c = module_has_jemalloc(t, mod);
			if (c == NOT_JEMALLOC)
				continue;
			struct jem_roots r;
			memset(&r, 0, sizeof(r));
			struct md_error *err = locate_in(t, mod, debuginfo_disabled, &r);
			if (err)
				jem_roots_deinit(&r);
			if (err && c == MAYBE_JEMALLOC && err->code == MD_ERR_NOT_FOUND) {
				md_error_destroy(err); /* some other allocator */
				continue;
			}
			if (err)
				return err;
			*roots_ret = r;
			return NULL;
		}
	}
	return NULL;
}
