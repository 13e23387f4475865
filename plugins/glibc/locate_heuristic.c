/* Locating glibc's malloc state without debug info (x86-64, glibc 2.26-2.41).
 *
 * Production machines rarely carry libc6-dbg, so everything here comes from the ELF file itself
 * (libc.so.6, or a statically linked executable) plus target memory. Facts and the patterns
 * used: shared/docs/glibc-malloc.md section 2.2.
 *   version   __nptl_version (2.34+), the "release version 2.NN" banner, the newest GLIBC_2.NN
 *             version definition; static executables carry none of these, so strings that
 *             first appeared in a known release give a lower bound.
 *   main_arena  the first .data lea of malloc_trim/mallinfo2/malloc_stats/malloc_info (and of
 *             free), and the static image in .data (.next == itself, attached_threads 1, the
 *             rest zero; the pointer in place, or a RELATIVE relocation's addend).
 *   mp_       free's dynamic-threshold update (cmp r,0x2000000; two stores 0x10 apart), and the
 *             initializer image in .data.
 *   tcache    the first 8-byte fs: access of free/malloc/_int_free: through a TPOFF64 GOT slot
 *             (initial-exec, libc.so.6) or a constant offset (local-exec, static executables).
 *   tcache_key, global_max_fast  compares in _int_free, a direct callee of free.
 * Static executables work with and without .symtab: when stripped, free() is the function
 * (bounded by its .eh_frame FDE) around a `lea r,[rip+main_arena]` that also has the threshold
 * update; main_arena then comes from the image scan alone.
 * Every candidate is validated in target memory (arena ring, top in its heap, heap_info of each
 * arena, mp_ fields, tcache chunks of every thread). Only a candidate that both disassembly and
 * the image scan agree on may be returned without passing (the target is then damaged, and the
 * walker reports it); `how` says so. The file is read through one read-only mapping and only a
 * few functions are disassembled, in bounded windows: a few milliseconds for libc.so.6. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <capstone/capstone.h>
#include <gelf.h>
#include <libelf.h>

#include "glibc_locate.h"

#define HEUR_MIN_MINOR 26
#define HEUR_MAX_MINOR 41

#define HEUR_MAX_CANDS 8   /* candidates kept per object */
#define HEUR_MAX_CALLS 8   /* direct call targets kept per function */
#define HEUR_FN_WINDOW 0x400 /* bytes disassembled at most per function */
#define HEUR_CALLEE_WINDOW 0x300
#define HEUR_ARENA_RING_MAX 1024
#define HEUR_MAX_TLS_CANDS 512 /* the brute-force set: TPOFF64 slots, 4 KiB of static TLS */

#define DEFAULT_MMAP_THRESHOLD_MAX 0x2000000ULL /* 32 MiB on 64-bit */
#define HEAP_MAX_SIZE_DEFAULT 0x4000000ULL     /* 64 MiB */

/* ---- ELF file ------------------------------------------------------------------------- */

struct hsec {
	uint64_t addr, size;
	const uint8_t *data; /* NULL for NOBITS or when absent */
	uint32_t link;       /* sh_link (string table of a symbol or verdef section) */
	bool present;
};

struct hrel {
	uint64_t offset, addend;
	uint32_t type;
};

struct hfile {
	int fd;
	Elf *elf;
	const uint8_t *raw;
	size_t raw_size;
	uint16_t type; /* ET_EXEC / ET_DYN */

	GElf_Phdr load[16];
	size_t n_load;
	bool has_tls;
	uint64_t tls_vaddr, tls_memsz, tls_align;

	struct hsec rodata, relro, data, bss, text, eh_frame, dynsym, symtab, verdef;

	struct hrel *rels; /* R_X86_64_RELATIVE and R_X86_64_TPOFF64 (symbol 0), sorted by offset */
	size_t n_rels;
};

static void hfile_deinit(struct hfile *h)
{
	if (h->elf)
		elf_end(h->elf);
	if (h->fd >= 0)
		close(h->fd);
	free(h->rels);
	memset(h, 0, sizeof(*h));
	h->fd = -1;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Section contents by header, bounded by the file. */
static struct hsec hfile_section(const struct hfile *h, const GElf_Shdr *sh)
{
	struct hsec s = { .addr = sh->sh_addr, .size = sh->sh_size, .link = sh->sh_link, .present = true };
	if (sh->sh_type != SHT_NOBITS && sh->sh_offset <= h->raw_size &&
	    sh->sh_size <= h->raw_size - sh->sh_offset)
		s.data = h->raw + sh->sh_offset;
	else if (sh->sh_type != SHT_NOBITS)
		s.present = false; /* truncated file: act as if absent */
	return s;
}

static int hrel_cmp(const void *a, const void *b)
{
	const struct hrel *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static struct md_error *hfile_read_relocs(struct hfile *h, const struct hsec *rela)
{
	size_t n = rela->size / sizeof(Elf64_Rela);
	struct hrel *grown = realloc(h->rels, (h->n_rels + n + 1) * sizeof(*grown));
	if (!grown)
		return &md_error_nomem;
	h->rels = grown;
	for (size_t i = 0; i < n; i++) {
		Elf64_Rela r;
		memcpy(&r, rela->data + i * sizeof(r), sizeof(r));
		uint32_t type = ELF64_R_TYPE(r.r_info);
		if (type == R_X86_64_RELATIVE ||
		    (type == R_X86_64_TPOFF64 && ELF64_R_SYM(r.r_info) == 0))
			h->rels[h->n_rels++] = (struct hrel){ r.r_offset, (uint64_t)r.r_addend, type };
	}
	return NULL;
}

static struct md_error *hfile_open(const char *path, struct hfile *h)
{
	memset(h, 0, sizeof(*h));
	h->fd = -1;
	elf_version(EV_CURRENT);
	h->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (h->fd < 0)
		return md_error_os(errno, "opening %s", path);
	h->elf = elf_begin(h->fd, ELF_C_READ /* never map the target's files: see attach/symbols.c */, NULL);
	GElf_Ehdr eh;
	if (!h->elf || elf_kind(h->elf) != ELF_K_ELF || !gelf_getehdr(h->elf, &eh) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
		hfile_deinit(h);
		return md_error_create(MD_ERR_BAD_FILE, "%s: not a 64-bit little-endian ELF file", path);
	}
	if (eh.e_machine != EM_X86_64) {
		hfile_deinit(h);
		return md_error_create(MD_ERR_UNSUPPORTED, "%s: machine %u is not x86-64", path,
				       (unsigned)eh.e_machine);
	}
	h->type = eh.e_type;
	h->raw = (const uint8_t *)elf_rawfile(h->elf, &h->raw_size);
	if (!h->raw) {
		hfile_deinit(h);
		return md_error_create(MD_ERR_BAD_FILE, "%s: cannot map the file: %s", path, elf_errmsg(-1));
	}

	size_t phnum = 0;
	if (elf_getphdrnum(h->elf, &phnum) != 0)
		phnum = 0;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		if (!gelf_getphdr(h->elf, (int)i, &ph))
			continue;
		if (ph.p_type == PT_LOAD && h->n_load < sizeof(h->load) / sizeof(h->load[0]))
			h->load[h->n_load++] = ph;
		else if (ph.p_type == PT_TLS && is_pow2(ph.p_align ? ph.p_align : 1) && ph.p_align <= 0x10000 &&
			 ph.p_memsz <= 0x1000000) {
			h->has_tls = true;
			h->tls_vaddr = ph.p_vaddr;
			h->tls_memsz = ph.p_memsz;
			h->tls_align = ph.p_align ? ph.p_align : 1;
		}
	}

	size_t shstrndx = 0;
	if (elf_getshdrstrndx(h->elf, &shstrndx) != 0)
		shstrndx = 0;
	struct md_error *err = NULL;
	for (Elf_Scn *scn = elf_nextscn(h->elf, NULL); scn && !err; scn = elf_nextscn(h->elf, scn)) {
		GElf_Shdr sh;
		if (!gelf_getshdr(scn, &sh))
			continue;
		const char *name = shstrndx ? elf_strptr(h->elf, shstrndx, sh.sh_name) : NULL;
		struct hsec s = hfile_section(h, &sh);
		if (sh.sh_type == SHT_DYNSYM)
			h->dynsym = s;
		else if (sh.sh_type == SHT_SYMTAB)
			h->symtab = s;
		else if (sh.sh_type == SHT_GNU_verdef)
			h->verdef = s;
		else if (sh.sh_type == SHT_RELA && s.data)
			err = hfile_read_relocs(h, &s);
		else if (name && strcmp(name, ".rodata") == 0)
			h->rodata = s;
		else if (name && strcmp(name, ".data.rel.ro") == 0)
			h->relro = s;
		else if (name && strcmp(name, ".data") == 0)
			h->data = s;
		else if (name && strcmp(name, ".bss") == 0)
			h->bss = s;
		else if (name && strcmp(name, ".text") == 0)
			h->text = s;
		else if (name && strcmp(name, ".eh_frame") == 0)
			h->eh_frame = s;
	}
	if (err) {
		hfile_deinit(h);
		return err;
	}
	if (h->n_rels)
		qsort(h->rels, h->n_rels, sizeof(*h->rels), hrel_cmp);
	return NULL;
}

static const struct hrel *hfile_reloc_at(const struct hfile *h, uint64_t offset)
{
	size_t lo = 0, hi = h->n_rels;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->rels[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < h->n_rels && h->rels[lo].offset == offset ? &h->rels[lo] : NULL;
}

/* File bytes backing [vaddr, vaddr+len), or NULL when not entirely in one segment's file image. */
static const uint8_t *hfile_bytes(const struct hfile *h, uint64_t vaddr, uint64_t len)
{
	for (size_t i = 0; i < h->n_load; i++) {
		const GElf_Phdr *p = &h->load[i];
		if (vaddr < p->p_vaddr || vaddr - p->p_vaddr > p->p_filesz ||
		    len > p->p_filesz - (vaddr - p->p_vaddr))
			continue;
		uint64_t off = p->p_offset + (vaddr - p->p_vaddr);
		if (off > h->raw_size || len > h->raw_size - off)
			return NULL;
		return h->raw + off;
	}
	return NULL;
}

static bool hfile_u64(const struct hfile *h, uint64_t vaddr, uint64_t *v)
{
	const uint8_t *b = hfile_bytes(h, vaddr, 8);
	if (!b)
		return false;
	memcpy(v, b, 8);
	return true;
}

/* The link-time pointer stored at vaddr: in place (non-PIE, DT_RELR, or RELA with the addend
 * also written), else the addend of an R_X86_64_RELATIVE relocation at vaddr. */
static uint64_t hfile_pointer_at(const struct hfile *h, uint64_t vaddr)
{
	uint64_t v = 0;
	if (hfile_u64(h, vaddr, &v) && v)
		return v;
	const struct hrel *r = hfile_reloc_at(h, vaddr);
	return r && r->type == R_X86_64_RELATIVE ? r->addend : 0;
}

static bool hsec_contains(const struct hsec *s, uint64_t vaddr, uint64_t len)
{
	return s->present && vaddr >= s->addr && vaddr - s->addr <= s->size && len <= s->size - (vaddr - s->addr);
}

/* Writable static data where malloc's variables live (.data initialised, .bss zeroed). */
static bool hfile_is_rw_data(const struct hfile *h, uint64_t vaddr)
{
	return hsec_contains(&h->data, vaddr, 8) || hsec_contains(&h->bss, vaddr, 8);
}

struct hsym {
	const char *name;
	bool data; /* an STT_OBJECT or STT_TLS symbol (the tests' truth); else STT_FUNC */
	uint64_t value, size;
	bool found;
};

/* One pass over .dynsym then .symtab, filling every wanted name that is still missing. */
static void hfile_lookup(const struct hfile *h, struct hsym *want, size_t n_want)
{
	const struct hsec *tabs[2] = { &h->dynsym, &h->symtab };
	for (size_t t = 0; t < 2; t++) {
		const struct hsec *s = tabs[t];
		if (!s->data)
			continue;
		Elf_Scn *strscn = elf_getscn(h->elf, s->link);
		GElf_Shdr strsh;
		if (!strscn || !gelf_getshdr(strscn, &strsh))
			continue;
		struct hsec str = hfile_section(h, &strsh);
		if (!str.data)
			continue;
		size_t n = s->size / sizeof(Elf64_Sym);
		for (size_t i = 1; i < n; i++) {
			Elf64_Sym sym;
			memcpy(&sym, s->data + i * sizeof(sym), sizeof(sym));
			unsigned type = ELF64_ST_TYPE(sym.st_info);
			if (sym.st_shndx == SHN_UNDEF || sym.st_name >= str.size ||
			    (type != STT_FUNC && type != STT_OBJECT && type != STT_TLS))
				continue;
			const char *name = (const char *)str.data + sym.st_name;
			size_t maxlen = str.size - sym.st_name;
			for (size_t w = 0; w < n_want; w++) {
				if (want[w].found || (type == STT_FUNC) == want[w].data || strnlen(name, maxlen) == maxlen ||
				    strcmp(name, want[w].name) != 0)
					continue;
				want[w].value = sym.st_value;
				want[w].size = sym.st_size;
				want[w].found = true;
			}
		}
	}
}

/* An object symbol of .dynsym (for __nptl_version). */
static bool hfile_dynobject(const struct hfile *h, const char *want, uint64_t *value)
{
	const struct hsec *s = &h->dynsym;
	if (!s->data)
		return false;
	Elf_Scn *strscn = elf_getscn(h->elf, s->link);
	GElf_Shdr strsh;
	if (!strscn || !gelf_getshdr(strscn, &strsh))
		return false;
	struct hsec str = hfile_section(h, &strsh);
	if (!str.data)
		return false;
	size_t n = s->size / sizeof(Elf64_Sym);
	size_t wl = strlen(want);
	for (size_t i = 1; i < n; i++) {
		Elf64_Sym sym;
		memcpy(&sym, s->data + i * sizeof(sym), sizeof(sym));
		if (sym.st_shndx == SHN_UNDEF || sym.st_name >= str.size || str.size - sym.st_name <= wl)
			continue;
		if (memcmp(str.data + sym.st_name, want, wl + 1) == 0) {
			*value = sym.st_value;
			return true;
		}
	}
	return false;
}

/* ---- version -------------------------------------------------------------------------- */

struct hversion {
	int major, minor;
	bool lower_bound; /* only a minimum is known (version definitions, static markers) */
	const char *how;
};

static bool parse_2nn(const char *s, size_t len, int *minor)
{
	if (len < 3 || s[0] != '2' || s[1] != '.' || s[2] < '0' || s[2] > '9')
		return false;
	int v = 0;
	for (size_t i = 2; i < len && s[i] >= '0' && s[i] <= '9' && v < 1000; i++)
		v = v * 10 + (s[i] - '0');
	*minor = v;
	return true;
}

/* Strings of static executables and the first release that contains them (tunable names
 * from dl-tunables.list, malloc's own messages, the DT_RELR ABI marker; checked on 2.36). Only a lower bound:
 * a static executable carries neither __nptl_version nor the banner. No marker separates 2.30
 * from 2.29 (tcache counts became uint16_t): the tcache chunk size seen at run time does. */
static const struct {
	const char *text;
	int minor;
} version_markers[] = {
	{ "glibc.malloc.tcache_count", 26 },
	{ "free(): double free detected in tcache 2", 29 },
	{ "glibc.malloc.mxfast", 31 },
	{ "malloc(): unaligned tcache chunk detected", 32 },
	{ "glibc.mem.tagging", 33 },
	{ "glibc.rtld.nns", 32 },
	{ "glibc.pthread.stack_cache_size", 34 },
	{ "glibc.malloc.hugetlb", 35 },
	{ "glibc.pthread.rseq", 35 },
	{ "GLIBC_ABI_DT_RELR", 36 },
	{ "glibc.pthread.stack_hugetlb", 38 },
	{ "glibc.mem.decorate_maps", 39 },
	{ "free(): chunks in smallbin corrupted", 41 },
};

/* A whole NUL-terminated string (not a substring) of .rodata or .data.rel.ro (2.33+ keeps the
 * tunable names in the relro tunable_list). */
static bool hfile_contains_string(const struct hfile *h, const char *text)
{
	size_t len = strlen(text);
	const struct hsec *secs[2] = { &h->rodata, &h->relro };
	for (size_t i = 0; i < 2; i++) {
		const struct hsec *s = secs[i];
		if (!s->data || s->size < len + 2)
			continue;
		const uint8_t *p = s->data, *end = s->data + s->size;
		while (p < end) {
			const uint8_t *hit = memmem(p, (size_t)(end - p), text, len);
			if (!hit)
				break;
			if ((hit == s->data || hit[-1] == 0) && hit + len < end && hit[len] == 0)
				return true;
			p = hit + 1;
		}
	}
	return false;
}

static bool hfile_version(const struct hfile *h, struct hversion *v)
{
	memset(v, 0, sizeof(*v));
	/* 2.34+: __nptl_version (GLIBC_PRIVATE) points at "2.NN" (libthread_db checks it). */
	uint64_t addr;
	if (hfile_dynobject(h, "__nptl_version", &addr)) {
		const uint8_t *b = hfile_bytes(h, addr, 8);
		if (b && parse_2nn((const char *)b, strnlen((const char *)b, 8), &v->minor)) {
			v->major = 2;
			v->how = "__nptl_version";
			return true;
		}
	}
	/* Any version: the banner printed when libc.so.6 is executed. */
	static const char banner[] = "release version 2.";
	if (h->rodata.data && h->rodata.size > sizeof(banner) + 4) {
		const uint8_t *hit = memmem(h->rodata.data, h->rodata.size, banner, sizeof(banner) - 1);
		if (hit) {
			size_t off = (size_t)(hit - h->rodata.data) + sizeof(banner) - 3;
			size_t left = h->rodata.size - off;
			if (parse_2nn((const char *)h->rodata.data + off, left < 8 ? left : 8, &v->minor)) {
				v->major = 2;
				v->how = "banner";
				return true;
			}
		}
	}
	/* A minimum: the newest GLIBC_2.NN version definition. */
	if (h->verdef.data) {
		Elf_Scn *strscn = elf_getscn(h->elf, h->verdef.link);
		GElf_Shdr strsh;
		struct hsec str = { 0 };
		if (strscn && gelf_getshdr(strscn, &strsh))
			str = hfile_section(h, &strsh);
		uint64_t off = 0;
		for (unsigned n = 0; str.data && n < 1024 && off + sizeof(Elf64_Verdef) <= h->verdef.size; n++) {
			Elf64_Verdef vd;
			memcpy(&vd, h->verdef.data + off, sizeof(vd));
			uint64_t aoff = off + vd.vd_aux;
			if (vd.vd_aux && aoff + sizeof(Elf64_Verdaux) <= h->verdef.size) {
				Elf64_Verdaux va;
				memcpy(&va, h->verdef.data + aoff, sizeof(va));
				if (va.vda_name < str.size) {
					const char *name = (const char *)str.data + va.vda_name;
					size_t len = strnlen(name, str.size - va.vda_name);
					int minor;
					if (len > 6 && strncmp(name, "GLIBC_", 6) == 0 &&
					    parse_2nn(name + 6, len - 6, &minor) && minor > v->minor) {
						v->major = 2;
						v->minor = minor;
					}
				}
			}
			if (!vd.vd_next)
				break;
			off += vd.vd_next;
		}
		if (v->major) {
			v->lower_bound = true;
			v->how = "version definitions";
			return true;
		}
	}
	/* Static executables: strings that first appeared in a known release. */
	for (size_t i = 0; i < sizeof(version_markers) / sizeof(version_markers[0]); i++) {
		if (version_markers[i].minor > v->minor && hfile_contains_string(h, version_markers[i].text)) {
			v->major = 2;
			v->minor = version_markers[i].minor;
		}
	}
	if (v->major) {
		v->lower_bound = true;
		v->how = "release markers";
		return true;
	}
	return false;
}

/* ---- layouts (glibc-malloc.md 1.3-1.6) ----------------------------------------------- */

struct heur_layout {
	unsigned arena_top, arena_bins, arena_next, arena_attached, arena_size;
	unsigned mp_trim, mp_top_pad, mp_mmap_threshold, mp_arena_test, mp_arena_max;
	unsigned mp_thp_pagesize, mp_hp_pagesize, mp_hp_flags; /* 0 before 2.35 */
	unsigned mp_n_mmaps, mp_n_mmaps_max, mp_max_n_mmaps, mp_no_dyn;
	unsigned mp_mmapped_mem, mp_max_mmapped_mem, mp_sbrk_base;
	unsigned mp_tcache_bins, mp_tcache_max_bytes, mp_tcache_count, mp_tcache_unsorted_limit, mp_size;
	unsigned heap_info_size;
	unsigned tcache_chunk;   /* size of the tcache_perthread_struct chunk, flags clear */
	unsigned tcache_entries; /* offset of entries[] in tcache_perthread_struct */
	bool arena_227, mp_235;
};

static void layout_for(bool arena_227, bool mp_235, bool counts16, struct heur_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->arena_227 = arena_227;
	l->mp_235 = mp_235;
	unsigned d = arena_227 ? 8 : 0;
	l->arena_top = 0x58 + d;
	l->arena_bins = 0x68 + d;
	l->arena_next = 0x868 + d;
	l->arena_attached = 0x878 + d;
	l->arena_size = 0x890 + d;
	l->mp_trim = 0;
	l->mp_top_pad = 8;
	l->mp_mmap_threshold = 0x10;
	l->mp_arena_test = 0x18;
	l->mp_arena_max = 0x20;
	unsigned m = 0;
	if (mp_235) {
		l->mp_thp_pagesize = 0x28;
		l->mp_hp_pagesize = 0x30;
		l->mp_hp_flags = 0x38;
		m = 0x14;
	}
	l->mp_n_mmaps = 0x28 + m;
	l->mp_n_mmaps_max = 0x2c + m;
	l->mp_max_n_mmaps = 0x30 + m;
	l->mp_no_dyn = 0x34 + m;
	if (mp_235) { /* the ints end at 0x4c, the size_t fields restart 8-aligned at 0x50 */
		l->mp_mmapped_mem = 0x50;
		l->mp_max_mmapped_mem = 0x58;
		l->mp_sbrk_base = 0x60;
		l->mp_tcache_bins = 0x68;
		l->mp_tcache_max_bytes = 0x70;
		l->mp_tcache_count = 0x78;
		l->mp_tcache_unsorted_limit = 0x80;
		l->mp_size = 0x88;
	} else {
		l->mp_mmapped_mem = 0x38;
		l->mp_max_mmapped_mem = 0x40;
		l->mp_sbrk_base = 0x48;
		l->mp_tcache_bins = 0x50;
		l->mp_tcache_max_bytes = 0x58;
		l->mp_tcache_count = 0x60;
		l->mp_tcache_unsorted_limit = 0x68;
		l->mp_size = 0x70;
	}
	l->heap_info_size = mp_235 ? 0x30 : 0x20;
	l->tcache_chunk = counts16 ? 0x290 : 0x250;
	l->tcache_entries = counts16 ? 0x80 : 0x40;
}

static void layout_for_version(int minor, struct heur_layout *l)
{
	layout_for(minor >= 27, minor >= 35, minor >= 30, l);
}

static uint64_t rd64(const uint8_t *b, unsigned off)
{
	uint64_t v;
	memcpy(&v, b + off, 8);
	return v;
}

static uint32_t rd32(const uint8_t *b, unsigned off)
{
	uint32_t v;
	memcpy(&v, b + off, 4);
	return v;
}

/* ---- candidates ----------------------------------------------------------------------- */

enum {
	SRC_DISASM = 1, /* a disassembly pattern */
	SRC_IMAGE = 2,  /* the static image / initializer in .data */
};

struct hcand {
	uint64_t vaddr;
	unsigned sources; /* SRC_* */
	unsigned votes;   /* functions and scans that gave it */
	unsigned seq;     /* order of discovery: the tie-break (qsort is not stable) */
};

struct hcands {
	struct hcand c[HEUR_MAX_CANDS];
	size_t n;
};

static void cands_add(struct hcands *cs, uint64_t vaddr, unsigned source)
{
	for (size_t i = 0; i < cs->n; i++) {
		if (cs->c[i].vaddr == vaddr) {
			cs->c[i].sources |= source;
			cs->c[i].votes++;
			return;
		}
	}
	if (cs->n < HEUR_MAX_CANDS) {
		cs->c[cs->n] = (struct hcand){ vaddr, source, 1, (unsigned)cs->n };
		cs->n++;
	}
}

static int hcand_cmp(const void *a, const void *b)
{
	const struct hcand *x = a, *y = b;
	/* Both methods agreeing first, then more votes, then disassembly before image. */
	int bx = (x->sources & SRC_DISASM) && (x->sources & SRC_IMAGE);
	int by = (y->sources & SRC_DISASM) && (y->sources & SRC_IMAGE);
	if (bx != by)
		return by - bx;
	if (x->votes != y->votes)
		return x->votes > y->votes ? -1 : 1;
	if ((x->sources & SRC_DISASM) != (y->sources & SRC_DISASM))
		return (int)(y->sources & SRC_DISASM) - (int)(x->sources & SRC_DISASM);
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Where a thread finds its tcache pointer. */
enum tls_kind { TLS_GOT_SLOT, TLS_TPOFF };

struct tls_cand {
	enum tls_kind kind;
	uint64_t slot;     /* TLS_GOT_SLOT: link-time address of the TPOFF64 GOT slot */
	uint64_t addend;   /*   its addend: offset in the module's TLS block */
	int64_t tpoff;     /* TLS_TPOFF: constant offset from the thread pointer (local-exec) */
	unsigned votes;
	unsigned seq;
	const char *first;
};

struct tls_cands {
	struct tls_cand c[HEUR_MAX_TLS_CANDS];
	size_t n;
};

static void tls_add(struct tls_cands *cs, const struct tls_cand *c, const char *what)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct tls_cand *o = &cs->c[i];
		if (o->kind == c->kind && (c->kind == TLS_GOT_SLOT ? o->slot == c->slot : o->tpoff == c->tpoff)) {
			o->votes++;
			return;
		}
	}
	if (cs->n < HEUR_MAX_TLS_CANDS) {
		cs->c[cs->n] = *c;
		cs->c[cs->n].votes = 1;
		cs->c[cs->n].seq = (unsigned)cs->n;
		cs->c[cs->n].first = what;
		cs->n++;
	}
}

/* ---- disassembly ---------------------------------------------------------------------- */

/* General-purpose registers folded to their 64-bit name, so that "mov eax, ..." kills rax. */
static int reg64(x86_reg r)
{
	static const x86_reg map[][5] = {
		{ X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH },
		{ X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH },
		{ X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH },
		{ X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH },
		{ X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL, X86_REG_INVALID },
		{ X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL, X86_REG_INVALID },
		{ X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL, X86_REG_INVALID },
		{ X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL, X86_REG_INVALID },
		{ X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B, X86_REG_INVALID },
		{ X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B, X86_REG_INVALID },
		{ X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B, X86_REG_INVALID },
		{ X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B, X86_REG_INVALID },
		{ X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B, X86_REG_INVALID },
		{ X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B, X86_REG_INVALID },
		{ X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B, X86_REG_INVALID },
		{ X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B, X86_REG_INVALID },
	};
	if (r == X86_REG_INVALID)
		return -1;
	for (int i = 0; i < 16; i++)
		for (int j = 0; j < 5; j++)
			if (map[i][j] == r)
				return i;
	return -1;
}

enum reg_kind { REG_NONE, REG_GOT_TPOFF, REG_IMM, REG_DATA };

struct reg_state {
	enum reg_kind kind;
	uint64_t value;   /* slot / immediate / data address */
	unsigned insn_no; /* when it was loaded */
};

/* What one bounded pass over a function found. */
struct fn_scan {
	uint64_t first_data_lea; /* first lea r64,[rip+d] into .data; 0 when none */
	bool have_tls;
	struct tls_cand tls;     /* first 8-byte fs: access with a known offset */
	uint64_t mp_threshold;   /* &mp_ via the dynamic mmap threshold update; 0 when none */
	uint64_t key;            /* &tcache_key via "mov r,[rip+K]; cmp [e+0x18|8], r" */
	uint64_t data_cmps[8];   /* 8-byte rip-relative compares against .data/.bss, in order */
	size_t n_data_cmps;
	uint64_t calls[HEUR_MAX_CALLS];
	size_t n_calls;
};

struct hctx {
	struct hfile *h;
	csh cs;
	bool cs_open;
	cs_insn *insn;
};

static uint64_t rip_target(const cs_insn *insn, const cs_x86_op *op)
{
	return insn->address + insn->size + (uint64_t)op->mem.disp;
}

static bool is_rip_mem(const cs_x86_op *op)
{
	return op->type == X86_OP_MEM && op->mem.base == X86_REG_RIP && op->mem.index == X86_REG_INVALID &&
	       op->mem.segment == X86_REG_INVALID;
}

static void scan_function(struct hctx *c, uint64_t start, uint64_t size, struct fn_scan *fs)
{
	memset(fs, 0, sizeof(*fs));
	const uint64_t fn_end = size ? start + size : 0; /* 0: the function's extent is unknown */
	if (!size || size > HEUR_FN_WINDOW)
		size = HEUR_FN_WINDOW;
	const uint8_t *code = NULL;
	/* The window may run past the end of the segment for a function at its end. */
	while (size >= 16 && !(code = hfile_bytes(c->h, start, size)))
		size /= 2;
	if (!code)
		return;
	struct reg_state regs[16];
	memset(regs, 0, sizeof(regs));
	unsigned threshold_at = 0; /* number (from 1) of the last "cmp r, 0x2000000" */
	uint64_t stores[2];
	size_t n_stores = 0;
	const uint8_t *p = code;
	size_t left = size;
	uint64_t addr = start;
	unsigned n = 0;
	while (n < 512 && cs_disasm_iter(c->cs, &p, &left, &addr, c->insn)) {
		const cs_insn *in = c->insn;
		const cs_x86 *x = &in->detail->x86;
		n++;

		/* First 8-byte access through fs: with a tracked offset: the tcache pointer. */
		for (uint8_t i = 0; i < x->op_count && !fs->have_tls; i++) {
			const cs_x86_op *op = &x->operands[i];
			if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_FS || op->size != 8 ||
			    op->mem.index != X86_REG_INVALID)
				continue;
			if (op->mem.base == X86_REG_INVALID) {
				if (op->mem.disp < 0) { /* local-exec: fs:[-N] */
					fs->tls = (struct tls_cand){ .kind = TLS_TPOFF, .tpoff = op->mem.disp };
					fs->have_tls = true;
				}
				continue;
			}
			int r = reg64(op->mem.base);
			if (r < 0 || op->mem.disp != 0)
				continue;
			if (regs[r].kind == REG_GOT_TPOFF) {
				const struct hrel *rel = hfile_reloc_at(c->h, regs[r].value);
				fs->tls = (struct tls_cand){ .kind = TLS_GOT_SLOT, .slot = regs[r].value,
							     .addend = rel ? rel->addend : 0 };
				fs->have_tls = true;
			} else if (regs[r].kind == REG_IMM && (int64_t)regs[r].value < 0) {
				fs->tls = (struct tls_cand){ .kind = TLS_TPOFF, .tpoff = (int64_t)regs[r].value };
				fs->have_tls = true;
			}
		}

		/* tcache_key: compared with e->key (chunk+0x18 or mem+8) right after the load. */
		if (!fs->key && in->id == X86_INS_CMP && x->op_count == 2) {
			for (int i = 0; i < 2; i++) {
				const cs_x86_op *m = &x->operands[i], *r = &x->operands[1 - i];
				if (m->type != X86_OP_MEM || r->type != X86_OP_REG || m->size != 8 ||
				    m->mem.base == X86_REG_RIP || (m->mem.disp != 0x18 && m->mem.disp != 8))
					continue;
				int rr = reg64(r->reg);
				if (rr >= 0 && regs[rr].kind == REG_DATA && n - regs[rr].insn_no <= 8)
					fs->key = regs[rr].value;
			}
		}

		/* Rip-relative compares against static data (global_max_fast candidates). */
		if (in->id == X86_INS_CMP && x->op_count == 2 && fs->n_data_cmps < 8) {
			for (int i = 0; i < 2; i++) {
				const cs_x86_op *op = &x->operands[i];
				if (is_rip_mem(op) && op->size == 8 && x->operands[1 - i].type == X86_OP_REG &&
				    hfile_is_rw_data(c->h, rip_target(in, op)))
					fs->data_cmps[fs->n_data_cmps++] = rip_target(in, op);
			}
		}

		/* The dynamic threshold: mp_.mmap_threshold = size; mp_.trim_threshold = 2 * size. */
		if (in->id == X86_INS_CMP && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[1].type == X86_OP_IMM &&
		    (uint64_t)x->operands[1].imm == DEFAULT_MMAP_THRESHOLD_MAX) {
			threshold_at = n;
			n_stores = 0;
		} else if (threshold_at && n - threshold_at <= 24 && !fs->mp_threshold && in->id == X86_INS_MOV &&
			   x->op_count == 2 && is_rip_mem(&x->operands[0]) && x->operands[0].size == 8 &&
			   x->operands[1].type == X86_OP_REG) {
			stores[n_stores++] = rip_target(in, &x->operands[0]);
			if (n_stores == 2) {
				if (stores[0] - stores[1] == 0x10)
					fs->mp_threshold = stores[1];
				else if (stores[1] - stores[0] == 0x10)
					fs->mp_threshold = stores[0];
				threshold_at = 0;
			}
		}

		if (in->id == X86_INS_LEA && x->op_count == 2 && is_rip_mem(&x->operands[1]) &&
		    !fs->first_data_lea && hsec_contains(&c->h->data, rip_target(in, &x->operands[1]), 8))
			fs->first_data_lea = rip_target(in, &x->operands[1]);

		/* Direct calls, and jumps out of a function of known extent: tail calls (free jumps
		 * to _int_free up to 2.32). */
		bool tail_jump = in->id == X86_INS_JMP && fn_end && x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
				 ((uint64_t)x->operands[0].imm < start || (uint64_t)x->operands[0].imm >= fn_end);
		if ((in->id == X86_INS_CALL || tail_jump) && x->op_count == 1 && x->operands[0].type == X86_OP_IMM &&
		    fs->n_calls < HEUR_MAX_CALLS) {
			uint64_t target = (uint64_t)x->operands[0].imm;
			bool seen = false;
			for (size_t i = 0; i < fs->n_calls; i++)
				seen |= fs->calls[i] == target;
			if (!seen)
				fs->calls[fs->n_calls++] = target;
		}

		/* Register tracking: forget what this instruction overwrote, then record loads. */
		cs_regs rd, wr;
		uint8_t n_rd = 0, n_wr = 0;
		if (cs_regs_access(c->cs, in, rd, &n_rd, wr, &n_wr) == CS_ERR_OK) {
			for (uint8_t i = 0; i < n_wr; i++) {
				int r = reg64((x86_reg)wr[i]);
				if (r >= 0)
					regs[r].kind = REG_NONE;
			}
		}
		if (in->id == X86_INS_MOV && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
		    x->operands[0].size == 8) {
			int r = reg64(x->operands[0].reg);
			const cs_x86_op *src = &x->operands[1];
			if (r >= 0 && is_rip_mem(src) && src->size == 8) {
				uint64_t target = rip_target(in, src);
				const struct hrel *rel = hfile_reloc_at(c->h, target);
				if (rel && rel->type == R_X86_64_TPOFF64)
					regs[r] = (struct reg_state){ REG_GOT_TPOFF, target, n };
				else if (hfile_is_rw_data(c->h, target))
					regs[r] = (struct reg_state){ REG_DATA, target, n };
			} else if (r >= 0 && src->type == X86_OP_IMM) {
				regs[r] = (struct reg_state){ REG_IMM, (uint64_t)src->imm, n };
			}
		}
		if (in->id == X86_INS_RET && n > 64)
			break; /* past the hot path; what follows is probably another function */
	}
}

/* ---- file analysis -------------------------------------------------------------------- */

struct heur_log {
	char buf[640];
	size_t len;
};

__attribute__((format(printf, 2, 3))) static void log_add(struct heur_log *lg, const char *fmt, ...)
{
	if (lg->len + 4 >= sizeof(lg->buf))
		return;
	if (lg->len) {
		memcpy(lg->buf + lg->len, ", ", 2);
		lg->len += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(lg->buf + lg->len, sizeof(lg->buf) - lg->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		lg->len += (size_t)n < sizeof(lg->buf) - lg->len ? (size_t)n : sizeof(lg->buf) - lg->len - 1;
}

/* Everything learnt from the file alone (link-time addresses). */
struct heur_file_result {
	struct hversion version;
	bool have_version;
	struct heur_layout layout;
	struct hcands arena, mp;
	unsigned arena_image_hits, mp_image_hits;
	struct tls_cands tls;  /* voted by disassembly, most votes first after sorting */
	struct tls_cands tls_all; /* every TPOFF64 slot / TLS-block word: the brute-force set */
	uint64_t tcache_key;   /* link-time, 0 when not found */
	uint64_t global_max_fast;
	bool is_static;        /* the allocator is in an executable without libc.so */
	struct heur_log arena_log, mp_log, tls_log, key_log;
};

/* .data words equal to their own link-time address minus off_next, or RELATIVE relocations
 * saying the same: the `.next = &main_arena` of the static initializer. */
static void scan_arena_image(const struct hfile *h, const struct heur_layout *l, struct heur_file_result *r)
{
	const struct hsec *d = &h->data;
	if (!d->data || d->size < l->arena_size)
		return;
	uint64_t start = (d->addr + 7) & ~7ULL;
	for (uint64_t a = start; a + l->arena_size <= d->addr + d->size; a += 8) {
		if (hfile_pointer_at(h, a + l->arena_next) != a)
			continue;
		const uint8_t *img = d->data + (a - d->addr);
		bool ok = rd64(img, l->arena_attached) == 1;
		for (unsigned off = 0; ok && off < l->arena_size; off += 8) {
			if (off == l->arena_next || off == l->arena_attached)
				continue;
			ok = rd64(img, off) == 0;
		}
		if (ok) {
			r->arena_image_hits++;
			cands_add(&r->arena, a, SRC_IMAGE);
		}
	}
}

/* mp_'s initializer: the default thresholds, then n_mmaps_max and the tcache defaults. */
static bool mp_image_matches(const uint8_t *img, const struct heur_layout *l)
{
	uint64_t top_pad = rd64(img, l->mp_top_pad);
	if (rd64(img, l->mp_trim) != 0x20000 || (top_pad != 0 && top_pad != 0x20000) ||
	    rd64(img, l->mp_mmap_threshold) != 0x20000 || rd64(img, l->mp_arena_test) == 0 ||
	    rd64(img, l->mp_arena_test) > 64 || rd64(img, l->mp_arena_max) != 0 ||
	    rd32(img, l->mp_n_mmaps) != 0 || rd32(img, l->mp_n_mmaps_max) != 65536 ||
	    rd32(img, l->mp_max_n_mmaps) != 0 || rd32(img, l->mp_no_dyn) != 0 ||
	    rd64(img, l->mp_mmapped_mem) != 0 || rd64(img, l->mp_max_mmapped_mem) != 0 ||
	    rd64(img, l->mp_sbrk_base) != 0 || rd64(img, l->mp_tcache_bins) != 64 ||
	    rd64(img, l->mp_tcache_max_bytes) != 0x408 || rd64(img, l->mp_tcache_count) != 7 ||
	    rd64(img, l->mp_tcache_unsorted_limit) != 0)
		return false;
	if (l->mp_235 && (rd64(img, l->mp_thp_pagesize) || rd64(img, l->mp_hp_pagesize) ||
			  rd32(img, l->mp_hp_flags)))
		return false;
	return true;
}

static void scan_mp_image(const struct hfile *h, const struct heur_layout *l, struct heur_file_result *r)
{
	const struct hsec *d = &h->data;
	if (!d->data || d->size < l->mp_size)
		return;
	uint64_t start = (d->addr + 7) & ~7ULL;
	for (uint64_t a = start; a + l->mp_size <= d->addr + d->size; a += 8) {
		const uint8_t *img = d->data + (a - d->addr);
		if (rd64(img, 0) != 0x20000)
			continue;
		if (mp_image_matches(img, l)) {
			r->mp_image_hits++;
			cands_add(&r->mp, a, SRC_IMAGE);
		}
	}
}

/* The executable's l_tls_offset: its TLS block ends at the thread pointer (variant II), rounded
 * as rtld's _dl_determine_tlsoffset does for the first module; attach/symbols.c computes the
 * same, so fs_base - this + offset is exactly fs_base + tpoff. */
static uint64_t exe_tls_block(const struct hfile *h)
{
	uint64_t align = h->tls_align ? h->tls_align : 1;
	uint64_t firstbyte = (-(h->tls_vaddr & (align - 1))) & (align - 1);
	return (h->tls_memsz - firstbyte + align - 1) / align * align + firstbyte;
}

static int tls_cand_cmp(const void *a, const void *b)
{
	const struct tls_cand *x = a, *y = b;
	if (x->votes != y->votes)
		return x->votes > y->votes ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void collect_tls_all(const struct hfile *h, struct heur_file_result *r)
{
	for (size_t i = 0; i < h->n_rels; i++) {
		if (h->rels[i].type != R_X86_64_TPOFF64)
			continue;
		struct tls_cand c = { .kind = TLS_GOT_SLOT, .slot = h->rels[i].offset, .addend = h->rels[i].addend };
		tls_add(&r->tls_all, &c, "TPOFF64 slot");
	}
	/* Local-exec: every word of the executable's own TLS block (variant II: below fs). */
	uint64_t block = h->has_tls ? exe_tls_block(h) : 0;
	if (r->is_static && block <= 0x10000) {
		for (uint64_t off = 0; off + 8 <= block && r->tls_all.n < HEUR_MAX_TLS_CANDS; off += 8) {
			struct tls_cand c = { .kind = TLS_TPOFF, .tpoff = (int64_t)off - (int64_t)block };
			tls_add(&r->tls_all, &c, "TLS block word");
		}
	}
}

/* ---- functions without symbols (stripped static executables) ------------------------- */

static bool read_uleb(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* A DW_EH_PE-encoded pointer of .eh_frame (the forms GNU toolchains emit). */
static bool read_eh_pointer(const uint8_t **p, const uint8_t *end, uint8_t enc, uint64_t field_vaddr,
			    uint64_t *v)
{
	uint64_t raw = 0;
	unsigned len;
	switch (enc & 0x0f) {
	case 0x00: case 0x04: case 0x0c: len = 8; break;
	case 0x03: case 0x0b: len = 4; break;
	case 0x02: case 0x0a: len = 2; break;
	default: return false;
	}
	if ((size_t)(end - *p) < len)
		return false;
	memcpy(&raw, *p, len);
	if ((enc & 0x0f) == 0x0b)
		raw = (uint64_t)(int64_t)(int32_t)raw;
	else if ((enc & 0x0f) == 0x0a)
		raw = (uint64_t)(int64_t)(int16_t)raw;
	*p += len;
	switch (enc & 0x70) {
	case 0x00: *v = raw; return true;
	case 0x10: *v = field_vaddr + raw; return true;
	default: return false;
	}
}

/* The FDE encoding of the CIE at cie (offset into .eh_frame); 0 (absptr) when it says none. */
static bool eh_cie_encoding(const struct hsec *eh, uint64_t cie, uint8_t *enc_ret)
{
	if (cie + 9 > eh->size)
		return false;
	const uint8_t *p = eh->data + cie, *end;
	uint32_t len = rd32(p, 0);
	if (len < 8 || len == 0xffffffff || len > eh->size - cie - 4)
		return false;
	end = p + 4 + len;
	p += 8; /* length, CIE id */
	uint8_t version = *p++;
	const char *aug = (const char *)p;
	size_t aug_len = strnlen(aug, (size_t)(end - p));
	if (aug_len == (size_t)(end - p))
		return false;
	p += aug_len + 1;
	uint64_t skip;
	if (!read_uleb(&p, end, &skip) || !read_uleb(&p, end, &skip)) /* code, data alignment */
		return false;
	if (version == 1)
		p++;
	else if (!read_uleb(&p, end, &skip))
		return false;
	*enc_ret = 0;
	if (aug[0] != 'z')
		return true;
	if (!read_uleb(&p, end, &skip))
		return false;
	for (size_t i = 1; i < aug_len && p < end; i++) {
		if (aug[i] == 'R') {
			*enc_ret = *p;
			return true;
		} else if (aug[i] == 'P') {
			uint8_t penc = *p++;
			uint64_t ignored;
			if (!read_eh_pointer(&p, end, penc & 0x7f, 0, &ignored))
				return false;
		} else if (aug[i] == 'L') {
			p++;
		} else if (aug[i] != 'S' && aug[i] != 'B') {
			return false;
		}
	}
	return true;
}

/* For each address, the [start, start+size) of the .eh_frame FDE covering it (size 0: none). */
static void eh_functions_covering(const struct hfile *h, const uint64_t *addrs, size_t n, uint64_t *starts,
				  uint64_t *sizes)
{
	const struct hsec *eh = &h->eh_frame;
	memset(starts, 0, n * sizeof(*starts));
	memset(sizes, 0, n * sizeof(*sizes));
	if (!eh->data)
		return;
	uint64_t last_cie = UINT64_MAX;
	uint8_t enc = 0;
	for (uint64_t off = 0, records = 0; off + 8 <= eh->size && records < 1000000; records++) {
		uint32_t len, id;
		memcpy(&len, eh->data + off, 4);
		if (len == 0 || len == 0xffffffff || len > eh->size - off - 4)
			break;
		memcpy(&id, eh->data + off + 4, 4);
		if (id != 0 && id <= off + 4 && len >= 8) {
			uint64_t cie = off + 4 - id;
			if (cie != last_cie) {
				if (!eh_cie_encoding(eh, cie, &enc)) {
					last_cie = UINT64_MAX;
					off += 4 + (uint64_t)len;
					continue;
				}
				last_cie = cie;
			}
			const uint8_t *p = eh->data + off + 8, *end = eh->data + off + 4 + len;
			uint64_t start, range;
			if (read_eh_pointer(&p, end, enc, eh->addr + off + 8, &start) &&
			    read_eh_pointer(&p, end, enc & 0x0f, 0, &range)) {
				for (size_t i = 0; i < n; i++) {
					if (addrs[i] >= start && addrs[i] - start < range) {
						starts[i] = start;
						sizes[i] = range;
					}
				}
			}
		}
		off += 4 + (uint64_t)len;
	}
}

/* Sites of `lea r64, [rip+target]` in .text (REX.W 8d /r with a rip-relative operand). */
static size_t text_lea_sites(const struct hfile *h, uint64_t target, uint64_t *sites, size_t max)
{
	const struct hsec *t = &h->text;
	size_t n = 0;
	if (!t->data || t->size < 7)
		return 0;
	for (uint64_t i = 0; i + 7 <= t->size && n < max; i++) {
		const uint8_t *b = t->data + i;
		if (b[1] != 0x8d || (b[0] != 0x48 && b[0] != 0x4c) || (b[2] & 0xc7) != 0x05)
			continue;
		int32_t disp;
		memcpy(&disp, b + 3, 4);
		if (t->addr + i + 7 + (uint64_t)(int64_t)disp == target)
			sites[n++] = t->addr + i;
	}
	return n;
}

/* free(): mp_ through the threshold update, the tcache TLS access, and through its callees
 * _int_free: tcache_key (2.34+; in free itself from 2.41) and global_max_fast. */
static bool analyze_free(struct hctx *c, struct heur_file_result *r, uint64_t start, uint64_t size,
			 const char *name)
{
	struct fn_scan ffs;
	scan_function(c, start, size, &ffs);
	if (!ffs.mp_threshold)
		return false;
	cands_add(&r->mp, ffs.mp_threshold, SRC_DISASM);
	if (ffs.have_tls)
		tls_add(&r->tls, &ffs.tls, name);
	/* 2.41 moved the tcache put (and its tcache_key compare) from _int_free into free itself. */
	if (ffs.key && !r->tcache_key)
		r->tcache_key = ffs.key;
	/* _int_free is a direct callee, recognised by its tcache_key compare (2.34-2.40) or by a
	 * compare with a .bss static outside mp_ (get_max_fast ()). */
	for (size_t i = 0; i < ffs.n_calls; i++) {
		struct fn_scan cfs;
		scan_function(c, ffs.calls[i], HEUR_CALLEE_WINDOW, &cfs);
		uint64_t gmf = 0;
		for (size_t k = 0; k < cfs.n_data_cmps && !gmf; k++) {
			uint64_t a = cfs.data_cmps[k];
			bool in_mp = false;
			for (size_t m = 0; m < r->mp.n; m++)
				in_mp |= a >= r->mp.c[m].vaddr && a < r->mp.c[m].vaddr + r->layout.mp_size;
			if (!in_mp && a != cfs.key && hsec_contains(&c->h->bss, a, 8))
				gmf = a;
		}
		if (!cfs.key && !gmf)
			continue;
		if (cfs.key && !r->tcache_key)
			r->tcache_key = cfs.key;
		if (gmf && !r->global_max_fast)
			r->global_max_fast = gmf;
		if (cfs.have_tls)
			tls_add(&r->tls, &cfs.tls, "_int_free");
		break;
	}
	return true;
}

/* Stripped static executables: free() is the function around a `lea r, [rip+main_arena]`
 * (found through .eh_frame) that also has the threshold update. */
static bool analyze_free_by_arena(struct hctx *c, struct heur_file_result *r)
{
	for (size_t k = 0; k < r->arena.n; k++) {
		uint64_t sites[256], starts[256], sizes[256];
		size_t n = text_lea_sites(c->h, r->arena.c[k].vaddr, sites, 256);
		if (!n)
			continue;
		eh_functions_covering(c->h, sites, n, starts, sizes);
		for (size_t i = 0; i < n; i++) {
			/* Sites are in address order, so the sites of one function are adjacent. */
			bool dup = !sizes[i] || (i > 0 && starts[i - 1] == starts[i]);
			if (!dup && analyze_free(c, r, starts[i], sizes[i], "free (via .eh_frame)"))
				return true;
		}
	}
	return false;
}

static void analyze_disassembly(struct hctx *c, struct heur_file_result *r)
{
	struct hsym syms[] = {
		{ .name = "malloc_trim" }, { .name = "mallinfo2" },     { .name = "malloc_stats" },
		{ .name = "malloc_info" }, { .name = "__libc_free" },   { .name = "__libc_malloc" },
		{ .name = "free" },        { .name = "malloc" },
	};
	enum { S_TRIM, S_MALLINFO2, S_STATS, S_INFO, S_LIBC_FREE, S_LIBC_MALLOC, S_FREE, S_MALLOC, S_N };
	hfile_lookup(c->h, syms, S_N);
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &c->cs) != CS_ERR_OK) {
		log_add(&r->arena_log, "capstone unavailable");
		log_add(&r->mp_log, "capstone unavailable");
		log_add(&r->tls_log, "capstone unavailable");
		return;
	}
	c->cs_open = true;
	cs_option(c->cs, CS_OPT_DETAIL, CS_OPT_ON);
	c->insn = cs_malloc(c->cs);
	if (!c->insn)
		return;

	/* main_arena: `ar_ptr = &main_arena` is the first .data lea of these functions. */
	char tried[96] = "";
	bool any_arena = false;
	for (size_t i = S_TRIM; i <= S_INFO; i++) {
		if (!syms[i].found)
			continue;
		struct fn_scan fs;
		scan_function(c, syms[i].value, syms[i].size, &fs);
		if (fs.first_data_lea) {
			cands_add(&r->arena, fs.first_data_lea, SRC_DISASM);
			any_arena = true;
		}
		size_t used = strlen(tried);
		snprintf(tried + used, sizeof(tried) - used, "%s%s", used ? "/" : "", syms[i].name);
	}
	if (!tried[0])
		log_add(&r->arena_log, "malloc_trim, mallinfo2, malloc_stats, malloc_info not in the symbol tables");
	else if (!any_arena)
		log_add(&r->arena_log, "disassembly of %s gave no candidate", tried);

	const struct hsym *fsym = syms[S_LIBC_FREE].found ? &syms[S_LIBC_FREE] : &syms[S_FREE];
	const struct hsym *msym = syms[S_LIBC_MALLOC].found ? &syms[S_LIBC_MALLOC] : &syms[S_MALLOC];
	if (fsym->found) {
		if (!analyze_free(c, r, fsym->value, fsym->size, fsym->name))
			log_add(&r->mp_log, "disassembly of %s gave no candidate", fsym->name);
	} else if (!analyze_free_by_arena(c, r)) {
		log_add(&r->mp_log, "free not in the symbol tables nor found through main_arena and .eh_frame");
	}
	if (msym->found) {
		struct fn_scan mfs;
		scan_function(c, msym->value, msym->size, &mfs);
		if (mfs.have_tls)
			tls_add(&r->tls, &mfs.tls, msym->name);
		else
			log_add(&r->tls_log, "disassembly of %s gave no TLS access", msym->name);
	}
	if (!r->tls.n)
		log_add(&r->tls_log, "no TLS access of tcache found by disassembly");
	if (!r->tcache_key)
		log_add(&r->key_log, "no tcache_key compare in the callees of free");
}

/* Layout from the version; without one, from whichever static image matched. */
static void analyze_file(struct hfile *h, struct heur_file_result *r)
{
	memset(r, 0, sizeof(*r));
	/* The allocator inside an executable: non-PIE static, or a static-pie (which does not
	 * export malloc the way libc.so.6 does). */
	uint64_t ignored;
	r->is_static = h->type == ET_EXEC || !hfile_dynobject(h, "malloc", &ignored);
	r->have_version = hfile_version(h, &r->version);

	if (r->have_version) {
		layout_for_version(r->version.minor, &r->layout);
		scan_arena_image(h, &r->layout, r);
		scan_mp_image(h, &r->layout, r);
	} else {
		/* Unknown version: try the 2.27+ then the 2.26 arena, the 2.35+ then the old mp_. */
		struct heur_layout la, lb;
		layout_for(true, true, true, &la);
		scan_arena_image(h, &la, r);
		scan_mp_image(h, &la, r);
		bool arena_227 = r->arena_image_hits > 0, mp_235 = r->mp_image_hits > 0;
		if (!arena_227 || !mp_235) {
			layout_for(false, false, true, &lb);
			if (!arena_227)
				scan_arena_image(h, &lb, r);
			if (!mp_235)
				scan_mp_image(h, &lb, r);
		}
		layout_for(arena_227 || !r->arena_image_hits, mp_235, true, &r->layout);
	}
	if (!r->arena_image_hits)
		log_add(&r->arena_log, ".data image scan gave 0 candidates");
	else if (r->arena_image_hits > 1)
		log_add(&r->arena_log, ".data image scan gave %u candidates", r->arena_image_hits);
	if (!r->mp_image_hits)
		log_add(&r->mp_log, ".data initializer scan gave 0 candidates");

	struct hctx c = { .h = h };
	analyze_disassembly(&c, r);
	if (c.insn)
		cs_free(c.insn, 1);
	if (c.cs_open)
		cs_close(&c.cs);

	qsort(r->arena.c, r->arena.n, sizeof(r->arena.c[0]), hcand_cmp);
	qsort(r->mp.c, r->mp.n, sizeof(r->mp.c[0]), hcand_cmp);
	qsort(r->tls.c, r->tls.n, sizeof(r->tls.c[0]), tls_cand_cmp);
	collect_tls_all(h, r);
}

/* ---- run-time validation -------------------------------------------------------------- */

struct heur_rt {
	bool counts_unknown; /* version only known to be >= 2.29: 0x250 and 0x290 tcache chunks */
	struct md_target *t;
	const struct md_module *mod;
	const struct heur_layout *l;
	uint64_t bias;
};

static bool rt_read(struct heur_rt *rt, uint64_t addr, void *buf, size_t len)
{
	struct md_error *err = md_target_read(rt->t, addr, buf, len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return true;
}

static bool rt_u64(struct heur_rt *rt, uint64_t addr, uint64_t *v)
{
	return rt_read(rt, addr, v, 8);
}

/* mp_ at run time: sbrk_base is 0 or in the brk heap, counters consistent, tcache sane.
 * Thresholds are only bounded: mallopt and tunables change them. */
static bool rt_check_mp(struct heur_rt *rt, uint64_t mp, char *why, size_t why_len)
{
	const struct heur_layout *l = rt->l;
	uint8_t b[0x88] = { 0 };
	if (!rt_read(rt, mp, b, l->mp_size)) {
		snprintf(why, why_len, "mp_ 0x%" PRIx64 " unreadable", mp);
		return false;
	}
	uint64_t sbrk = rd64(b, l->mp_sbrk_base);
	if (sbrk) {
		const struct md_mapping *m = md_target_find_mapping(rt->t, sbrk);
		if (!m || !(m->perms & MD_PERM_WRITE) || (m->kind != MD_MAP_HEAP && m->kind != MD_MAP_ANON)) {
			snprintf(why, why_len, "mp_ 0x%" PRIx64 ": sbrk_base 0x%" PRIx64 " not in a heap", mp, sbrk);
			return false;
		}
	}
	uint32_t n_mmaps = rd32(b, l->mp_n_mmaps), max_n = rd32(b, l->mp_max_n_mmaps);
	uint64_t mm = rd64(b, l->mp_mmapped_mem), max_mm = rd64(b, l->mp_max_mmapped_mem);
	uint64_t bins = rd64(b, l->mp_tcache_bins), max_bytes = rd64(b, l->mp_tcache_max_bytes);
	uint64_t count = rd64(b, l->mp_tcache_count);
	bool ok = n_mmaps <= max_n && mm <= max_mm && (mm & 0xfff) == 0 && bins <= 64 && max_bytes <= 0x408 &&
		  count <= 65535 && rd64(b, l->mp_mmap_threshold) <= 0x40000000ULL &&
		  (int32_t)rd32(b, l->mp_n_mmaps_max) >= 0 && rd64(b, l->mp_arena_test) < 0x100000;
	if (ok && l->mp_235) {
		uint64_t hp = rd64(b, l->mp_hp_pagesize), thp = rd64(b, l->mp_thp_pagesize);
		ok = (hp == 0 || (is_pow2(hp) && hp >= 4096)) && (thp == 0 || (is_pow2(thp) && thp >= 4096));
	}
	if (!ok)
		snprintf(why, why_len, "mp_ 0x%" PRIx64 ": fields out of range", mp);
	return ok;
}

static uint64_t rt_heap_max(struct heur_rt *rt, uint64_t mp)
{
	uint64_t hp = 0;
	if (mp && rt->l->mp_235 && rt_u64(rt, mp + rt->l->mp_hp_pagesize, &hp) && is_pow2(hp) && hp >= 4096)
		return hp * 4;
	return HEAP_MAX_SIZE_DEFAULT;
}

/* main_arena at run time: the ring through next closes, every other arena sits behind its
 * heap_info at a heap-aligned address, top lies in its heap (or the arena is unused). */
static bool rt_check_arena(struct heur_rt *rt, uint64_t a, uint64_t mp, char *why, size_t why_len)
{
	const struct heur_layout *l = rt->l;
	uint8_t b[0x898] = { 0 };
	if (!rt_read(rt, a, b, l->arena_size)) {
		snprintf(why, why_len, "main_arena 0x%" PRIx64 " unreadable", a);
		return false;
	}
	uint64_t top = rd64(b, l->arena_top), next = rd64(b, l->arena_next);
	uint64_t sbrk = 0;
	if (mp)
		rt_u64(rt, mp + l->mp_sbrk_base, &sbrk);
	uint64_t initial_top = a + l->arena_bins - 0x10;
	if (top == 0 || top == initial_top) {
		/* Never used (top 0: malloc never initialised; initial top: nothing allocated). */
		if (sbrk) {
			snprintf(why, why_len, "main_arena 0x%" PRIx64 ": unused but sbrk_base is set", a);
			return false;
		}
		if (top == 0 && next != a) {
			snprintf(why, why_len, "main_arena 0x%" PRIx64 ": uninitialised but linked", a);
			return false;
		}
	} else {
		const struct md_mapping *m = md_target_find_mapping(rt->t, top);
		uint64_t size = 0;
		if ((top & 0xf) || !m || !(m->perms & MD_PERM_WRITE) ||
		    (m->kind != MD_MAP_HEAP && m->kind != MD_MAP_ANON) || !rt_u64(rt, top + 8, &size) ||
		    (size & ~7ULL) > m->end - top || !(size & 1) || (sbrk && top < sbrk)) {
			snprintf(why, why_len, "main_arena 0x%" PRIx64 ": top 0x%" PRIx64 " not in a heap", a, top);
			return false;
		}
	}
	uint64_t heap_max = rt_heap_max(rt, mp);
	uint64_t seen[64];
	size_t n_seen = 0;
	uint64_t cur = next;
	for (unsigned steps = 0; cur != a; steps++) {
		if (steps >= HEUR_ARENA_RING_MAX || !cur) {
			snprintf(why, why_len, "main_arena 0x%" PRIx64 ": arena ring does not close", a);
			return false;
		}
		uint64_t hi = cur - l->heap_info_size, ar_ptr = 0, nx = 0;
		if ((hi & (heap_max - 1)) || !rt_u64(rt, hi, &ar_ptr) || ar_ptr != cur ||
		    !rt_u64(rt, cur + l->arena_next, &nx)) {
			snprintf(why, why_len, "main_arena 0x%" PRIx64 ": arena 0x%" PRIx64 " has no heap_info", a, cur);
			return false;
		}
		/* Cycle check for rings that do not pass through main_arena: the first 64 arenas
		 * are remembered, and a ring longer than that is bounded by the step count. */
		for (size_t i = 0; i < n_seen; i++) {
			if (seen[i] == cur) {
				snprintf(why, why_len, "main_arena 0x%" PRIx64 ": arena ring cycles", a);
				return false;
			}
		}
		if (n_seen < 64)
			seen[n_seen++] = cur;
		cur = nx;
	}
	return true;
}

/* A thread's tcache pointer through one locator: -1 unreadable, 0 NULL, 1 valid, -2 invalid. */
static int rt_tcache_of(struct heur_rt *rt, const struct tls_cand *c, const struct md_thread *th,
			uint64_t *tcache_ret)
{
	if (!th->regs_valid || !th->regs[MD_REG_FS_BASE])
		return -1;
	int64_t tpoff = c->tpoff;
	if (c->kind == TLS_GOT_SLOT) {
		uint64_t v;
		if (!rt_u64(rt, rt->bias + c->slot, &v))
			return -1;
		tpoff = (int64_t)v;
		if (tpoff >= 0 || tpoff < -(int64_t)0x1000000)
			return -2; /* variant II: static TLS lies below the thread pointer */
	}
	uint64_t p;
	if (!rt_u64(rt, th->regs[MD_REG_FS_BASE] + (uint64_t)tpoff, &p))
		return -1;
	*tcache_ret = p;
	if (!p)
		return 0;
	uint64_t size;
	if ((p & 0xf) || !rt_u64(rt, p - 8, &size))
		return -2;
	size &= ~5ULL;
	return size == rt->l->tcache_chunk || (rt->counts_unknown && (size == 0x250 || size == 0x290)) ? 1 : -2;
}

/* Over all threads: -1 when some thread contradicts, else the number of non-NULL pointers. */
static int rt_check_tls(struct heur_rt *rt, const struct tls_cand *c)
{
	size_t n_threads = 0;
	const struct md_thread *th = md_target_threads(rt->t, &n_threads);
	int nonnull = 0;
	for (size_t i = 0; i < n_threads; i++) {
		uint64_t p = 0;
		int v = rt_tcache_of(rt, c, &th[i], &p);
		if (v == -2)
			return -1;
		if (v == 1)
			nonnull++;
	}
	return nonnull;
}

/* The key of the first cached entry of any thread's tcache (2.34+): 0 when none. */
static bool rt_sample_key(struct heur_rt *rt, const struct tls_cand *c, uint64_t *key_ret)
{
	size_t n_threads = 0;
	const struct md_thread *th = md_target_threads(rt->t, &n_threads);
	for (size_t i = 0; i < n_threads; i++) {
		uint64_t tc = 0;
		if (rt_tcache_of(rt, c, &th[i], &tc) != 1)
			continue;
		uint64_t entries[64];
		if (!rt_read(rt, tc + rt->l->tcache_entries, entries, sizeof(entries)))
			continue;
		for (size_t k = 0; k < 64; k++) {
			if (!entries[k] || (entries[k] & 0xf))
				continue;
			if (rt_u64(rt, entries[k] + 8, key_ret))
				return true;
		}
	}
	return false;
}

/* ---- public --------------------------------------------------------------------------- */

static struct md_error *version_check(const struct md_module *mod, const struct hversion *v)
{
	if (v->major != 2 || v->minor < HEUR_MIN_MINOR || v->minor > HEUR_MAX_MINOR)
		return md_error_create(MD_ERR_UNSUPPORTED, "%s: glibc %s%d.%d (from %s) is not supported (2.%d-2.%d)",
				       mod->name, v->lower_bound ? ">=" : "", v->major, v->minor, v->how,
				       HEUR_MIN_MINOR, HEUR_MAX_MINOR);
	return NULL;
}

struct md_error *glibc_detect_version(struct md_target *t, const struct md_module *mod, int *major_ret,
				      int *minor_ret)
{
	const char *path = md_target_module_file(t, mod);
	if (!path)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no file on disk to read the glibc version from",
				       mod->name);
	struct hfile h;
	struct md_error *err = hfile_open(path, &h);
	if (err)
		return err;
	struct hversion v;
	bool found = hfile_version(&h, &v);
	hfile_deinit(&h);
	if (!found)
		return md_error_create(MD_ERR_NOT_FOUND,
				       "%s: glibc version not found (no __nptl_version, no banner, no GLIBC_2.NN "
				       "version definition, no release marker)",
				       path);
	err = version_check(mod, &v);
	if (err)
		return err;
	*major_ret = v.major;
	*minor_ret = v.minor;
	return NULL;
}

static const char *sources_name(unsigned s)
{
	if ((s & SRC_DISASM) && (s & SRC_IMAGE))
		return "disasm+image";
	return (s & SRC_DISASM) ? "disasm" : "image";
}

struct md_error *glibc_locate_heuristic(struct md_target *t, const struct md_module *mod,
					struct glibc_roots *roots_ret)
{
	const char *path = md_target_module_file(t, mod);
	if (!path)
		return md_error_create(MD_ERR_NOT_FOUND, "%s: no file on disk for the heuristics", mod->name);
	struct hfile h;
	struct md_error *err = hfile_open(path, &h);
	if (err)
		return err;
	struct heur_file_result *r = calloc(1, sizeof(*r));
	if (!r) {
		hfile_deinit(&h);
		return &md_error_nomem;
	}
	analyze_file(&h, r);

	char dbg[160];
	if (md_target_debuginfo_disabled(t))
		snprintf(dbg, sizeof(dbg), "debug info disabled");
	else
		snprintf(dbg, sizeof(dbg), "%s build-id %s", mod->has_debuginfo ? "debug info without the symbols for" :
			 "no debug info for", mod->build_id ? mod->build_id : "(none)");
	char vers[48];
	if (r->have_version)
		snprintf(vers, sizeof(vers), "glibc %s%d.%d", r->version.lower_bound ? ">=" : "", r->version.major,
			 r->version.minor);
	else
		snprintf(vers, sizeof(vers), "glibc of unknown version");

	if (r->have_version && (err = version_check(mod, &r->version)))
		goto out;

	struct heur_rt rt = { .t = t, .mod = mod, .l = &r->layout, .bias = mod->bias };
	rt.counts_unknown = r->have_version && r->version.lower_bound && r->version.minor == 29;
	char why[160] = "";

	/* mp_ first: the arena check uses sbrk_base and hp_pagesize. Two independent methods
	 * agreeing (disassembly and the static image) outweigh a failed run-time check: then the
	 * target itself is damaged, and the walker reports that as findings, as it does with
	 * debug info. A guess from one method alone must validate. */
	uint64_t mp = 0;
	unsigned mp_src = 0;
	char mp_first_why[160] = "", arena_first_why[160] = "";
	for (size_t i = 0; i < r->mp.n && !mp; i++) {
		if (rt_check_mp(&rt, mod->bias + r->mp.c[i].vaddr, why, sizeof(why))) {
			mp = mod->bias + r->mp.c[i].vaddr;
			mp_src = r->mp.c[i].sources;
		} else {
			log_add(&r->mp_log, "%s candidate rejected: %s", sources_name(r->mp.c[i].sources), why);
			if (i == 0)
				snprintf(mp_first_why, sizeof(mp_first_why), "%s", why);
		}
	}
	bool mp_unvalidated = false;
	if (!mp && r->mp.n && (r->mp.c[0].sources & SRC_DISASM) && (r->mp.c[0].sources & SRC_IMAGE)) {
		mp = mod->bias + r->mp.c[0].vaddr;
		mp_src = r->mp.c[0].sources;
		mp_unvalidated = true;
	}
	uint64_t arena = 0;
	unsigned arena_src = 0;
	for (size_t i = 0; i < r->arena.n && !arena; i++) {
		if (rt_check_arena(&rt, mod->bias + r->arena.c[i].vaddr, mp, why, sizeof(why))) {
			arena = mod->bias + r->arena.c[i].vaddr;
			arena_src = r->arena.c[i].sources;
		} else {
			log_add(&r->arena_log, "%s candidate rejected: %s", sources_name(r->arena.c[i].sources), why);
			if (i == 0)
				snprintf(arena_first_why, sizeof(arena_first_why), "%s", why);
		}
	}
	bool arena_unvalidated = false;
	if (!arena && r->arena.n && (r->arena.c[0].sources & SRC_DISASM) && (r->arena.c[0].sources & SRC_IMAGE)) {
		arena = mod->bias + r->arena.c[0].vaddr;
		arena_src = r->arena.c[0].sources;
		arena_unvalidated = true;
	}
	if (!arena || !mp) {
		char arena_part[1024] = "", mp_part[1024] = "";
		if (!arena)
			snprintf(arena_part, sizeof(arena_part), "; main_arena not found: %s, %s", dbg,
				 r->arena_log.buf);
		if (!mp)
			snprintf(mp_part, sizeof(mp_part), "; mp_ not found: %s%s%s", arena ? dbg : "",
				 arena ? ", " : "", r->mp_log.buf);
		if (r->have_version)
			err = md_error_create(MD_ERR_NOT_FOUND, "%s detected in %s%s%s", vers, path, arena_part,
					      mp_part);
		else
			err = md_error_create(MD_ERR_NOT_FOUND, "%s: no glibc version found%s%s", path, arena_part,
					      mp_part);
		goto out;
	}

	/* The tcache pointer: disassembly votes first, validated; else the brute-force set,
	 * accepted only when exactly one locator shows tcache structs. Before the pause a live
	 * target has no thread registers: the disassembly's choice is then taken unchecked. */
	size_t n_threads = 0, n_regs = 0;
	const struct md_thread *threads = md_target_threads(t, &n_threads);
	for (size_t i = 0; i < n_threads; i++)
		n_regs += threads[i].regs_valid;
	const struct tls_cand *tls = NULL;
	const char *tls_how = "";
	for (size_t i = 0; i < r->tls.n && !tls; i++) {
		int v = rt_check_tls(&rt, &r->tls.c[i]);
		if (v >= 0) {
			tls = &r->tls.c[i];
			tls_how = r->tls.c[i].first;
		} else {
			log_add(&r->tls_log, "%s's TLS access fails validation", r->tls.c[i].first);
		}
	}
	if (!tls && !n_regs) {
		log_add(&r->tls_log, "TLS scan needs thread registers");
	} else if (!tls) {
		const struct tls_cand *only = NULL;
		unsigned n_ok = 0;
		for (size_t i = 0; i < r->tls_all.n; i++) {
			if (rt_check_tls(&rt, &r->tls_all.c[i]) > 0) {
				only = &r->tls_all.c[i];
				n_ok++;
			}
		}
		if (n_ok == 1) {
			tls = only;
			tls_how = "scan";
		} else {
			log_add(&r->tls_log, "TLS scan: %u of %zu locations hold tcache pointers", n_ok, r->tls_all.n);
		}
	}

	/* A static 2.29-or-2.30: the tcache chunk's size tells whether counts are uint16_t. */
	if (rt.counts_unknown && tls) {
		for (size_t i = 0; i < n_threads; i++) {
			uint64_t tc = 0, size = 0;
			if (rt_tcache_of(&rt, tls, &threads[i], &tc) == 1 && rt_u64(&rt, tc - 8, &size)) {
				if ((size & ~5ULL) == 0x290) {
					r->version.minor = 30;
					layout_for_version(30, &r->layout);
					snprintf(vers, sizeof(vers), "glibc >=2.30");
				}
				break;
			}
		}
		rt.counts_unknown = false;
	}

	/* tcache_key (2.34+): the compare in _int_free, checked against a cached entry; else
	 * the .bss word equal to a cached entry's key. */
	uint64_t key_addr = 0;
	bool key_needed = !r->have_version || r->version.minor >= 34;
	if (key_needed && r->tcache_key) {
		uint64_t sample, value;
		if (!tls || !rt_sample_key(&rt, tls, &sample) ||
		    (rt_u64(&rt, mod->bias + r->tcache_key, &value) && value == sample))
			key_addr = mod->bias + r->tcache_key;
		else
			log_add(&r->key_log, "tcache_key candidate disagrees with a cached entry");
	}
	if (key_needed && !key_addr && tls && h.bss.present && h.bss.size <= 0x100000) {
		uint64_t sample;
		if (rt_sample_key(&rt, tls, &sample) && sample) {
			uint64_t *buf = malloc(h.bss.size);
			unsigned hits = 0;
			uint64_t hit = 0;
			uint64_t base = mod->bias + ((h.bss.addr + 7) & ~7ULL);
			size_t words = (h.bss.addr + h.bss.size - ((h.bss.addr + 7) & ~7ULL)) / 8;
			if (buf && rt_read(&rt, base, buf, words * 8)) {
				for (size_t i = 0; i < words; i++) {
					if (buf[i] == sample) {
						hits++;
						hit = base + i * 8;
					}
				}
			}
			free(buf);
			if (hits == 1)
				key_addr = hit;
			else
				log_add(&r->key_log, ".bss scan for the key found %u words", hits);
		}
	}

	uint64_t gmf = 0;
	if (r->global_max_fast) {
		uint64_t v;
		if (rt_u64(&rt, mod->bias + r->global_max_fast, &v) && v <= 0xb0)
			gmf = mod->bias + r->global_max_fast;
	}

	memset(roots_ret, 0, sizeof(*roots_ret));
	roots_ret->module = mod;
	roots_ret->version_major = r->have_version ? r->version.major : 0;
	roots_ret->version_minor = r->have_version ? r->version.minor : 0;
	roots_ret->main_arena = arena;
	roots_ret->mp = mp;
	roots_ret->global_max_fast = gmf;
	roots_ret->tcache_key = key_addr;
	if (tls && tls->kind == TLS_GOT_SLOT) {
		roots_ret->tcache_got_slot = mod->bias + tls->slot;
		roots_ret->have_tcache_tls_offset = tls->addend != 0;
		roots_ret->tcache_tls_offset = tls->addend;
	} else if (tls) {
		/* Local-exec in the executable: the offset in its TLS block is tpoff + the block's
		 * size (its l_tls_offset), which md_target_tls_address subtracts again. */
		uint64_t block = exe_tls_block(&h);
		roots_ret->have_tcache_tls_offset = true;
		roots_ret->tcache_tls_offset = (uint64_t)((int64_t)block + tls->tpoff);
	}
	roots_ret->source = MD_SYMSRC_HEURISTIC;
	char tcache_desc[700];
	if (!tls)
		snprintf(tcache_desc, sizeof(tcache_desc), "tcache unknown (%s)", r->tls_log.buf);
	else if (tls->kind == TLS_GOT_SLOT)
		snprintf(tcache_desc, sizeof(tcache_desc), "tcache TPOFF64+0x%" PRIx64 " (%s%s)", tls->addend, tls_how,
			 n_regs ? "" : ", unchecked");
	else
		snprintf(tcache_desc, sizeof(tcache_desc), "tcache fs:-0x%" PRIx64 " (%s%s)", (uint64_t)-tls->tpoff,
			 tls_how, n_regs ? "" : ", unchecked");
	char key_desc[700];
	if (key_addr || !key_needed)
		snprintf(key_desc, sizeof(key_desc), "%s", key_addr ? "found" : "n/a");
	else
		snprintf(key_desc, sizeof(key_desc), "unknown (%s)", r->key_log.len ? r->key_log.buf : "no cached entry to compare with");
	char how[2048];
	snprintf(how, sizeof(how),
		 "heuristic: %s (%s); main_arena %s%s%s; mp_ %s%s%s; %s; tcache_key %s; global_max_fast %s", vers,
		 r->have_version ? r->version.how : "layout from images", sources_name(arena_src),
		 arena_unvalidated ? " NOT VALIDATED: " : "", arena_unvalidated ? arena_first_why : "",
		 sources_name(mp_src), mp_unvalidated ? " NOT VALIDATED: " : "", mp_unvalidated ? mp_first_why : "",
		 tcache_desc, key_desc, gmf ? "found" : "unknown");
	snprintf(roots_ret->how, sizeof(roots_ret->how), "%.*s", (int)sizeof(roots_ret->how) - 1, how);
out:
	free(r);
	hfile_deinit(&h);
	return err;
}
