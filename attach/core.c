/* ELF core files as targets.
 *
 * The core is hostile input: every offset, size and count is checked against the file before it
 * is used, so a damaged core is refused with one line (MD_ERR_BAD_FILE) and never crashes us.
 * The file is mapped (attach/coremap.c), and the heap walks read it in place through
 * md_target_view: no copy of the core is made. A core that shrinks under us is caught there
 * (SIGBUS becomes zeros and a mark), every later read fails, and the report is refused.
 * Where mapping is not possible the bytes are read with pread.
 *
 * Residency comes from one of three places (docs/cores.md):
 *  - memdissect snapshots carry the pagemap bits and smaps figures taken during the pause
 *    (notes named "MEMDISSECT"), so the report is the live one;
 *  - a kernel core written straight to a file has holes where pages were not present
 *    (SEEK_DATA/SEEK_HOLE): data = resident, hole = not resident;
 *  - a core without holes (gdb gcore, a piped/compressed/copied core) says nothing about
 *    residency: its dumped pages are marked MD_PAGE_UNKNOWN, never guessed.
 * Pages of file mappings that the core left out (text, rodata) are read from the files on disk
 * (--sysroot, --exe) and marked unknown: they are neither counted nor called absent. */
#include <elf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"
#include "coremap.h"
#include "target_impl.h"

/* Bounds that keep a hostile core from making us allocate or loop without end. */
#define MAX_PHDRS (1u << 22)
#define MAX_NOTES_BYTES (512u << 20)
#define MAX_THREADS (1u << 20)
#define MAX_FILE_ENTRIES (1u << 22)
#define MAX_MAPPINGS (1u << 22)
#define MAX_MAPPING_PAGES (1ULL << 28)   /* 1 TiB of address space in one mapping with page bits */
#define MAX_TOTAL_PAGE_BITS (1ULL << 28) /* bytes of page bits over all mappings */
#define MAX_EXTENTS (1u << 26)
#define MAX_STRING 65536
#define VSYSCALL_ADDR 0xffffffffff600000ULL
#define BRK_RANDOM_RANGE 0x2000000ULL /* x86-64 randomises the brk start within 32 MiB */

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

struct core_seg {
	uint64_t vaddr, memsz, offset, filesz;
	uint32_t flags;
};

struct file_entry {
	uint64_t start, end, pgoff;
	const char *name; /* in the notes buffer, NUL-terminated there */
};

/* Where the core's bytes come from: a file descriptor, with buf its mapping when it could be
 * mapped, or (fuzzing) a buffer alone. */
struct core_src {
	int fd;
	const uint8_t *buf;
	uint64_t size;
	struct md_coremap map;
};

struct note_ref {
	const uint8_t *desc;
	size_t len;
};

struct thread_frames;

struct core {
	struct core_src src;
	char *path;
	Elf *elf;        /* for md_symbols (libdwfl module report) */
	Elf *unwind_elf; /* for the unwinder's own Dwfl */
	Dwfl *unwind_dwfl;
	Dwfl_Callbacks unwind_callbacks;
	char *unwind_debuginfo_path;
	bool unwind_tried;
	char unwind_error[256];
	struct thread_frames *frames; /* parallel to the target's threads, once unwound */

	struct md_coremap_touched view_touched; /* what md_target_view handed out */
	struct md_coremap_ahead *ahead;         /* reads ahead of the views, once one was asked */
	bool ahead_tried;

	struct core_seg *segs; /* sorted by vaddr */
	size_t n_segs;
	uint8_t *notes; /* every PT_NOTE segment, concatenated */
	size_t notes_len;

	bool snapshot;
	bool gdb;
	bool debuginfo_disabled;
	char *sysroot;
	char *exe_override;
	char *exe_in_core; /* NT_FILE name of the main executable */

	struct {
		char *path;
		int fd;
	} files[8];
	size_t files_next;
};

/* Everything the parse collected before the target exists. */
struct parsed {
	GElf_Ehdr eh;
	size_t phnum;
	const uint8_t *prpsinfo;
	size_t prpsinfo_len;
	const uint8_t *auxv;
	size_t auxv_len;
	struct note_ref *prstatus;
	size_t n_prstatus, cap_prstatus;
	struct file_entry *files;
	size_t n_files;
	struct note_ref md[8]; /* indexed by type & 0xf */
	bool has_gdb_note;
};

static struct md_error *bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct md_error *bad(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return md_error_create(MD_ERR_BAD_FILE, "%s", msg);
}

static bool src_read(const struct core_src *s, uint64_t off, void *out, size_t len)
{
	if (off > s->size || len > s->size - off)
		return false;
	if (s->map.base)
		return md_coremap_copy(&s->map, off, out, len);
	if (s->buf) {
		memcpy(out, s->buf + off, len);
		return true;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(s->fd, (uint8_t *)out + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* ---- wire format of the MEMDISSECT notes ---- */

static void wire_put(struct md_wire *w, const void *p, size_t n)
{
	if (w->failed)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *nd = realloc(w->data, cap);
		if (!nd) {
			w->failed = true;
			return;
		}
		w->data = nd;
		w->cap = cap;
	}
	memcpy(w->data + w->len, p, n);
	w->len += n;
}

static void wire_u8(struct md_wire *w, uint8_t v)
{
	wire_put(w, &v, 1);
}

static void wire_u32(struct md_wire *w, uint32_t v)
{
	wire_put(w, &v, 4);
}

static void wire_u64(struct md_wire *w, uint64_t v)
{
	wire_put(w, &v, 8);
}

/* NULL is written as length 0xffffffff. */
static void wire_str(struct md_wire *w, const char *s)
{
	if (!s) {
		wire_u32(w, UINT32_MAX);
		return;
	}
	size_t n = strlen(s);
	if (n > MAX_STRING)
		n = MAX_STRING;
	wire_u32(w, (uint32_t)n);
	wire_put(w, s, n);
}

void md_wire_deinit(struct md_wire *w)
{
	free(w->data);
	memset(w, 0, sizeof(*w));
}

struct wire_reader {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static bool rd_take(struct wire_reader *r, void *out, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		memset(out, 0, n);
		return false;
	}
	memcpy(out, r->p + r->off, n);
	r->off += n;
	return true;
}

static uint8_t rd_u8(struct wire_reader *r)
{
	uint8_t v;
	rd_take(r, &v, 1);
	return v;
}

static uint32_t rd_u32(struct wire_reader *r)
{
	uint32_t v;
	rd_take(r, &v, 4);
	return v;
}

static uint64_t rd_u64(struct wire_reader *r)
{
	uint64_t v;
	rd_take(r, &v, 8);
	return v;
}

/* Into a fixed buffer (truncated to fit, always terminated). */
static void rd_str_buf(struct wire_reader *r, char *out, size_t cap)
{
	out[0] = 0;
	uint32_t n = rd_u32(r);
	if (r->bad || n == UINT32_MAX)
		return;
	if (n > MAX_STRING || n > r->len - r->off) {
		r->bad = true;
		return;
	}
	size_t take = n < cap - 1 ? n : cap - 1;
	memcpy(out, r->p + r->off, take);
	out[take] = 0;
	out[strnlen(out, take)] = 0;
	r->off += n;
}

/* A malloc'd string, NULL for the NULL marker. *oom set when allocation failed. */
static char *rd_str_dup(struct wire_reader *r, bool *oom)
{
	uint32_t n = rd_u32(r);
	if (r->bad || n == UINT32_MAX)
		return NULL;
	if (n > MAX_STRING || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	char *s = strndup((const char *)r->p + r->off, n);
	if (!s)
		*oom = true;
	r->off += n;
	return s;
}

static void wire_smaps(struct md_wire *w, const struct md_smaps *s)
{
	wire_u8(w, s->valid);
	wire_u8(w, s->hugetlb);
	const uint64_t v[] = {
		s->size, s->kernel_page_size, s->rss, s->pss, s->pss_dirty, s->shared_clean, s->shared_dirty,
		s->private_clean, s->private_dirty, s->referenced, s->anonymous, s->lazy_free, s->anon_huge_pages,
		s->shmem_pmd_mapped, s->file_pmd_mapped, s->shared_hugetlb, s->private_hugetlb, s->swap,
		s->swap_pss, s->locked,
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		wire_u64(w, v[i]);
	wire_str(w, s->vmflags);
}

static void rd_smaps(struct wire_reader *r, struct md_smaps *s)
{
	memset(s, 0, sizeof(*s));
	s->valid = rd_u8(r) != 0;
	s->hugetlb = rd_u8(r) != 0;
	uint64_t *v[] = {
		&s->size, &s->kernel_page_size, &s->rss, &s->pss, &s->pss_dirty, &s->shared_clean, &s->shared_dirty,
		&s->private_clean, &s->private_dirty, &s->referenced, &s->anonymous, &s->lazy_free,
		&s->anon_huge_pages, &s->shmem_pmd_mapped, &s->file_pmd_mapped, &s->shared_hugetlb,
		&s->private_hugetlb, &s->swap, &s->swap_pss, &s->locked,
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		*v[i] = rd_u64(r);
	rd_str_buf(r, s->vmflags, sizeof(s->vmflags));
}

static void wire_status(struct md_wire *w, const struct md_proc_status *st)
{
	wire_str(w, st->name);
	wire_u8(w, (uint8_t)st->state);
	wire_u32(w, (uint32_t)st->tgid);
	wire_u32(w, (uint32_t)st->pid);
	wire_u32(w, (uint32_t)st->ppid);
	wire_u32(w, (uint32_t)st->tracer_pid);
	for (int i = 0; i < 4; i++)
		wire_u32(w, st->uid[i]);
	for (int i = 0; i < 4; i++)
		wire_u32(w, st->gid[i]);
	wire_u32(w, st->threads);
	wire_u64(w, st->cap_eff);
	const uint64_t v[] = {
		st->vm_peak, st->vm_size, st->vm_lck, st->vm_pin, st->vm_hwm, st->vm_rss, st->rss_anon, st->rss_file,
		st->rss_shmem, st->vm_data, st->vm_stk, st->vm_exe, st->vm_lib, st->vm_pte, st->vm_swap,
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		wire_u64(w, v[i]);
	wire_u8(w, st->has_rss_split);
}

static void rd_status(struct wire_reader *r, struct md_proc_status *st)
{
	memset(st, 0, sizeof(*st));
	rd_str_buf(r, st->name, sizeof(st->name));
	st->state = (char)rd_u8(r);
	st->tgid = (int32_t)rd_u32(r);
	st->pid = (int32_t)rd_u32(r);
	st->ppid = (int32_t)rd_u32(r);
	st->tracer_pid = (int32_t)rd_u32(r);
	for (int i = 0; i < 4; i++)
		st->uid[i] = rd_u32(r);
	for (int i = 0; i < 4; i++)
		st->gid[i] = rd_u32(r);
	st->threads = rd_u32(r);
	st->cap_eff = rd_u64(r);
	uint64_t *v[] = {
		&st->vm_peak, &st->vm_size, &st->vm_lck, &st->vm_pin, &st->vm_hwm, &st->vm_rss, &st->rss_anon,
		&st->rss_file, &st->rss_shmem, &st->vm_data, &st->vm_stk, &st->vm_exe, &st->vm_lib, &st->vm_pte,
		&st->vm_swap,
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		*v[i] = rd_u64(r);
	st->has_rss_split = rd_u8(r) != 0;
}

struct md_error *md_core_encode_note(enum md_core_note_type type, const struct md_target *t,
				     const struct md_snapshot_meta *meta, struct md_wire *w)
{
	memset(w, 0, sizeof(*w));
	switch (type) {
	case MD_NT_INFO:
		wire_u32(w, MD_CORE_NOTES_VERSION);
		wire_u32(w, meta->consistent ? 1 : 0);
		wire_u64(w, (uint64_t)(int64_t)meta->pid);
		wire_u64(w, (uint64_t)(meta->pause_ms * 1e6));
		wire_u64(w, meta->retries);
		wire_u64(w, meta->reconciled_pages);
		wire_str(w, meta->comm);
		wire_str(w, meta->exe);
		break;
	case MD_NT_ROLLUP:
		wire_smaps(w, meta->rollup);
		break;
	case MD_NT_STATUS:
		wire_status(w, meta->status);
		break;
	case MD_NT_MAPS:
		wire_u64(w, t->n_mappings);
		for (size_t i = 0; i < t->n_mappings; i++) {
			const struct md_mapping *m = &t->mappings[i];
			wire_u64(w, m->start);
			wire_u64(w, m->end);
			wire_u64(w, m->offset);
			wire_u32(w, m->perms);
			wire_u32(w, m->dev_major);
			wire_u32(w, m->dev_minor);
			wire_u64(w, m->inode);
			wire_u8(w, m->deleted);
			wire_u8(w, (uint8_t)m->kind);
			wire_u64(w, m->extra_rss_pages);
			wire_smaps(w, &m->smaps);
			wire_str(w, m->path);
		}
		break;
	case MD_NT_PAGES:
		/* Runs of equal bits: most of a large mapping is one long run of zeros. */
		wire_u64(w, t->n_mappings);
		for (size_t i = 0; i < t->n_mappings; i++) {
			const struct md_mapping *m = &t->mappings[i];
			uint64_t npages = (m->end - m->start) / MD_PAGE_SIZE;
			if (!m->pages) {
				wire_u64(w, 0);
				continue;
			}
			wire_u64(w, npages);
			for (uint64_t p = 0; p < npages;) {
				uint64_t q = p + 1;
				while (q < npages && m->pages[q] == m->pages[p] && q - p < UINT32_MAX)
					q++;
				wire_u32(w, (uint32_t)(q - p));
				wire_u8(w, m->pages[p]);
				p = q;
			}
		}
		break;
	case MD_NT_THREADS:
		wire_u64(w, t->n_threads);
		for (size_t i = 0; i < t->n_threads; i++) {
			wire_u32(w, (uint32_t)t->threads[i].tid);
			wire_str(w, t->threads[i].comm);
			wire_u8(w, t->threads[i].regs_valid);
		}
		break;
	case MD_NT_SYSTEM:
		wire_u8(w, meta->meminfo != NULL);
		if (meta->meminfo) {
			const struct md_meminfo *mi = meta->meminfo;
			const uint64_t v[] = { mi->mem_total, mi->mem_free, mi->mem_available, mi->buffers,
					       mi->cached, mi->swap_total, mi->swap_free, mi->shmem };
			for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
				wire_u64(w, v[i]);
		}
		wire_u8(w, meta->cgroup != NULL);
		if (meta->cgroup) {
			wire_u32(w, (uint32_t)meta->cgroup->version);
			wire_u64(w, meta->cgroup->usage_bytes);
			wire_u64(w, meta->cgroup->limit_bytes);
			wire_str(w, meta->cgroup->path);
		}
		break;
	default:
		return md_error_create(MD_ERR_UNSUPPORTED, "unknown memdissect note type 0x%x", (unsigned)type);
	}
	if (w->failed) {
		md_wire_deinit(w);
		return &md_error_nomem;
	}
	return NULL;
}

/* ---- header, program headers, notes ---- */

static const char *machine_name(unsigned m)
{
	switch (m) {
	case EM_386:
		return "i386";
	case EM_ARM:
		return "arm";
	case EM_AARCH64:
		return "aarch64";
	case EM_PPC:
		return "ppc";
	case EM_PPC64:
		return "ppc64";
	case EM_S390:
		return "s390";
	case EM_RISCV:
		return "riscv";
	case EM_MIPS:
		return "mips";
	case EM_SPARCV9:
		return "sparc64";
	case EM_LOONGARCH:
		return "loongarch";
	default:
		return NULL;
	}
}

/* A first look at the bytes: compressed or not ELF at all. */
static struct md_error *check_magic(const uint8_t *head, size_t n)
{
	static const struct {
		const char *name, *hint;
		uint8_t magic[6];
		size_t len;
	} compressed[] = {
		{ "zstd", "zstd -d", { 0x28, 0xb5, 0x2f, 0xfd }, 4 },
		{ "gzip", "gunzip", { 0x1f, 0x8b }, 2 },
		{ "xz", "unxz", { 0xfd, '7', 'z', 'X', 'Z', 0 }, 6 },
		{ "lz4", "lz4 -d", { 0x04, 0x22, 0x4d, 0x18 }, 4 },
		{ "bzip2", "bunzip2", { 'B', 'Z', 'h' }, 3 },
	};
	for (size_t i = 0; i < sizeof(compressed) / sizeof(compressed[0]); i++)
		if (n >= compressed[i].len && memcmp(head, compressed[i].magic, compressed[i].len) == 0)
			return bad("%s-compressed, not a core: decompress it first (%s, or coredumpctl dump)",
				   compressed[i].name, compressed[i].hint);
	if (n < SELFMAG || memcmp(head, ELFMAG, SELFMAG) != 0) {
		if (n < SELFMAG && memcmp(head, ELFMAG, n) == 0)
			return bad("truncated: %zu bytes, an ELF header needs 64", n);
		return bad("not an ELF file (it starts with %02x %02x %02x %02x)", n > 0 ? head[0] : 0,
			   n > 1 ? head[1] : 0, n > 2 ? head[2] : 0, n > 3 ? head[3] : 0);
	}
	return NULL;
}

static struct md_error *read_header(const struct core_src *src, struct parsed *ps)
{
	uint8_t head[sizeof(Elf64_Ehdr)];
	size_t n = src->size < sizeof(head) ? (size_t)src->size : sizeof(head);
	if (n == 0)
		return bad("the file is empty");
	if (!src_read(src, 0, head, n))
		return bad("cannot read the ELF header");
	struct md_error *err = check_magic(head, n);
	if (err)
		return err;
	if (n >= EI_NIDENT && head[EI_CLASS] == ELFCLASS32)
		return bad("a 32-bit ELF file: memdissect reads x86-64 cores");
	if (n >= EI_NIDENT && head[EI_CLASS] != ELFCLASS64)
		return bad("ELF class %u is not valid", head[EI_CLASS]);
	if (n >= EI_NIDENT && head[EI_DATA] != ELFDATA2LSB)
		return bad("a big-endian ELF file: memdissect reads x86-64 cores");
	if (n < sizeof(Elf64_Ehdr))
		return bad("truncated: %zu bytes, an ELF header needs %zu", n, sizeof(Elf64_Ehdr));
	Elf64_Ehdr eh;
	memcpy(&eh, head, sizeof(eh));
	if (eh.e_type != ET_CORE) {
		const char *what = eh.e_type == ET_EXEC  ? "an executable"
				   : eh.e_type == ET_DYN ? "a shared object or PIE executable"
				   : eh.e_type == ET_REL ? "a relocatable object"
							 : "an ELF file of unknown type";
		return bad("%s (e_type %u), not a core file", what, eh.e_type);
	}
	if (eh.e_machine != EM_X86_64) {
		const char *name = machine_name(eh.e_machine);
		if (name)
			return bad("a core of %s (e_machine %u): memdissect reads x86-64 cores", name, eh.e_machine);
		return bad("a core of a foreign architecture (e_machine %u): memdissect reads x86-64 cores",
			   eh.e_machine);
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr))
		return bad("program header entries of %u bytes, not %zu", eh.e_phentsize, sizeof(Elf64_Phdr));
	size_t phnum = eh.e_phnum;
	if (phnum == PN_XNUM) {
		/* More than 65534 segments: the real count is in section header 0's sh_info. */
		Elf64_Shdr sh0;
		if (eh.e_shoff == 0 || !src_read(src, eh.e_shoff, &sh0, sizeof(sh0)))
			return bad("truncated: the extended segment count (section header 0) is missing");
		phnum = sh0.sh_info;
	}
	if (phnum == 0)
		return bad("a core without program headers");
	if (phnum > MAX_PHDRS)
		return bad("%zu program headers: implausible", phnum);
	if (eh.e_phoff > src->size || phnum * sizeof(Elf64_Phdr) > src->size - eh.e_phoff)
		return bad("truncated: the program headers end at %" PRIu64 ", the file has %" PRIu64 " bytes",
			   (uint64_t)eh.e_phoff + phnum * sizeof(Elf64_Phdr), src->size);
	ps->eh.e_type = eh.e_type;
	ps->eh.e_machine = eh.e_machine;
	ps->eh.e_phoff = eh.e_phoff;
	ps->eh.e_shnum = eh.e_shnum;
	ps->eh.e_shoff = eh.e_shoff;
	ps->phnum = phnum;
	return NULL;
}

static int compare_segs(const void *a, const void *b)
{
	const struct core_seg *x = a, *y = b;
	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

static struct md_error *read_phdrs(struct core *c, struct parsed *ps)
{
	const struct core_src *src = &c->src;
	size_t n_loads = 0;
	c->segs = calloc(ps->phnum, sizeof(*c->segs));
	if (!c->segs)
		return &md_error_nomem;
	uint64_t notes_total = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < ps->phnum; i++) {
			Elf64_Phdr ph;
			if (!src_read(src, ps->eh.e_phoff + i * sizeof(ph), &ph, sizeof(ph)))
				return bad("cannot read program header %zu", i);
			if (ph.p_type == PT_NOTE) {
				if (ph.p_offset > src->size || ph.p_filesz > src->size - ph.p_offset)
					return bad("truncated: the notes end at %" PRIu64 ", the file has %" PRIu64 " bytes",
						   (uint64_t)(ph.p_offset + ph.p_filesz), src->size);
				if (pass == 0) {
					notes_total += ph.p_filesz;
					if (notes_total > MAX_NOTES_BYTES)
						return bad("%" PRIu64 " bytes of notes: implausible", notes_total);
				} else if (ph.p_filesz) {
					if (!src_read(src, ph.p_offset, c->notes + c->notes_len, ph.p_filesz))
						return bad("cannot read the notes at %" PRIu64, (uint64_t)ph.p_offset);
					/* Each segment is a whole list of notes: keep them 4-aligned. */
					c->notes_len += (ph.p_filesz + 3) & ~(uint64_t)3;
				}
				continue;
			}
			if (ph.p_type != PT_LOAD || pass == 1)
				continue;
			if (ph.p_memsz == 0)
				continue;
			if (ph.p_vaddr % MD_PAGE_SIZE || ph.p_memsz % MD_PAGE_SIZE)
				return bad("segment at 0x%" PRIx64 " is not page aligned", (uint64_t)ph.p_vaddr);
			if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr)
				return bad("segment at 0x%" PRIx64 " wraps around the address space", (uint64_t)ph.p_vaddr);
			if (ph.p_filesz > ph.p_memsz)
				return bad("segment at 0x%" PRIx64 " has more file bytes than memory", (uint64_t)ph.p_vaddr);
			if (ph.p_filesz && (ph.p_offset > src->size || ph.p_filesz > src->size - ph.p_offset))
				return bad("truncated: the segment at 0x%" PRIx64 " needs the file up to byte %" PRIu64
					   ", it has %" PRIu64 " (core size limit or full disk?)",
					   (uint64_t)ph.p_vaddr, (uint64_t)ph.p_offset + ph.p_filesz, src->size);
			c->segs[n_loads++] = (struct core_seg){ ph.p_vaddr, ph.p_memsz, ph.p_offset, ph.p_filesz,
								ph.p_flags };
		}
		if (pass == 0) {
			c->notes = calloc(notes_total + 8 * ps->phnum + 1, 1);
			if (!c->notes)
				return &md_error_nomem;
		}
	}
	c->n_segs = n_loads;
	if (c->n_segs > 0)
		qsort(c->segs, c->n_segs, sizeof(*c->segs), compare_segs);
	for (size_t i = 1; i < c->n_segs; i++)
		if (c->segs[i].vaddr < c->segs[i - 1].vaddr + c->segs[i - 1].memsz)
			return bad("segments at 0x%" PRIx64 " and 0x%" PRIx64 " overlap", c->segs[i - 1].vaddr,
				   c->segs[i].vaddr);
	return NULL;
}

static int compare_files(const void *a, const void *b)
{
	const struct file_entry *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

static struct md_error *parse_nt_file(struct parsed *ps, const uint8_t *desc, size_t len)
{
	if (len < 16)
		return bad("NT_FILE note of %zu bytes is too short", len);
	uint64_t count = get_u64(desc), page = get_u64(desc + 8);
	if (count > MAX_FILE_ENTRIES || count > (len - 16) / 24)
		return bad("NT_FILE note claims %" PRIu64 " files in %zu bytes", count, len);
	if (page == 0 || (page & (page - 1)) || page > (1u << 30))
		return bad("NT_FILE note has page size %" PRIu64, page);
	ps->files = calloc(count ? count : 1, sizeof(*ps->files));
	if (!ps->files)
		return &md_error_nomem;
	const char *names = (const char *)desc + 16 + count * 24;
	const char *end = (const char *)desc + len;
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *e = desc + 16 + i * 24;
		const char *nul = memchr(names, 0, (size_t)(end - names));
		if (!nul)
			return bad("NT_FILE note: file name %" PRIu64 " is not terminated", i);
		uint64_t start = get_u64(e), stop = get_u64(e + 8), pgoff = get_u64(e + 16);
		if (start < stop && pgoff <= UINT64_MAX / page)
			ps->files[ps->n_files++] = (struct file_entry){ start, stop, pgoff * page, names };
		names = nul + 1;
	}
	if (ps->n_files)
		qsort(ps->files, ps->n_files, sizeof(*ps->files), compare_files);
	return NULL;
}

/* Walk the notes: "CORE" (kernel and gdb), "LINUX", "GDB", "MEMDISSECT". */
static struct md_error *parse_notes(struct core *c, struct parsed *ps)
{
	size_t off = 0;
	while (off + 12 <= c->notes_len) {
		uint32_t namesz = get_u32(c->notes + off), descsz = get_u32(c->notes + off + 4);
		uint32_t type = get_u32(c->notes + off + 8);
		size_t name_off = off + 12;
		uint64_t desc_off = name_off + (((uint64_t)namesz + 3) & ~3ULL);
		uint64_t next = desc_off + (((uint64_t)descsz + 3) & ~3ULL);
		if (namesz == 0 && descsz == 0 && type == 0) {
			off += 12; /* padding between note segments */
			continue;
		}
		if (desc_off > c->notes_len || next > c->notes_len)
			return bad("a note at byte %zu of the notes runs past their end", off);
		const char *name = (const char *)c->notes + name_off;
		size_t nlen = strnlen(name, namesz);
		const uint8_t *desc = c->notes + desc_off;
		if (nlen == 4 && memcmp(name, "CORE", 4) == 0) {
			if (type == NT_PRSTATUS) {
				if (descsz < sizeof(struct elf_prstatus))
					return bad("NT_PRSTATUS note of %u bytes, expected %zu", descsz,
						   sizeof(struct elf_prstatus));
				if (ps->n_prstatus >= MAX_THREADS)
					return bad("more than %u threads", MAX_THREADS);
				if (ps->n_prstatus == ps->cap_prstatus) {
					size_t cap = ps->cap_prstatus ? ps->cap_prstatus * 2 : 16;
					struct note_ref *nr = realloc(ps->prstatus, cap * sizeof(*nr));
					if (!nr)
						return &md_error_nomem;
					ps->prstatus = nr;
					ps->cap_prstatus = cap;
				}
				ps->prstatus[ps->n_prstatus++] = (struct note_ref){ desc, descsz };
			} else if (type == NT_PRPSINFO && descsz >= sizeof(struct elf_prpsinfo)) {
				ps->prpsinfo = desc;
				ps->prpsinfo_len = descsz;
			} else if (type == NT_AUXV) {
				ps->auxv = desc;
				ps->auxv_len = descsz;
			} else if (type == NT_FILE && !ps->files) {
				struct md_error *err = parse_nt_file(ps, desc, descsz);
				if (err)
					return err;
			}
		} else if (nlen == 3 && memcmp(name, "GDB", 3) == 0) {
			ps->has_gdb_note = true;
		} else if (nlen == strlen(MD_CORE_NOTE_NAME) && memcmp(name, MD_CORE_NOTE_NAME, nlen) == 0) {
			if ((type & 0xffff0000u) == 0x4d440000u && (type & 0xffff) < 8)
				ps->md[type & 0xf] = (struct note_ref){ desc, descsz };
		}
		off = (size_t)next;
	}
	return NULL;
}

static uint64_t auxv_get(const struct parsed *ps, uint64_t key)
{
	for (size_t off = 0; ps->auxv && off + 16 <= ps->auxv_len; off += 16) {
		uint64_t k = get_u64(ps->auxv + off);
		if (k == AT_NULL)
			break;
		if (k == key)
			return get_u64(ps->auxv + off + 8);
	}
	return 0;
}

/* ---- segments and data extents ---- */

/* The segment containing addr, or NULL. */
static const struct core_seg *seg_at(const struct core *c, uint64_t addr)
{
	size_t lo = 0, hi = c->n_segs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct core_seg *s = &c->segs[mid];
		if (addr < s->vaddr)
			hi = mid;
		else if (addr - s->vaddr >= s->memsz)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

struct extents {
	uint64_t *v; /* start, end pairs of data, sorted */
	size_t n, cap;
	bool all_data; /* no hole information at all */
};

/* The file's data extents (SEEK_DATA/SEEK_HOLE). A file system that cannot tell reports the
 * whole file as data, which is what it is to us: no holes, residency unknown. */
static struct md_error *read_extents(const struct core_src *src, struct extents *ex)
{
	memset(ex, 0, sizeof(*ex));
	if (src->fd < 0) {
		ex->all_data = true;
		return NULL;
	}
	off_t pos = 0;
	for (;;) {
		off_t data = lseek(src->fd, pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* no data after pos */
			ex->all_data = true;
			ex->n = 0;
			return NULL;
		}
		off_t hole = lseek(src->fd, data, SEEK_HOLE);
		if (hole < 0) {
			ex->all_data = true;
			ex->n = 0;
			return NULL;
		}
		if (ex->n / 2 >= MAX_EXTENTS)
			return bad("more than %u data extents", MAX_EXTENTS);
		if (ex->n + 2 > ex->cap) {
			size_t cap = ex->cap ? ex->cap * 2 : 256;
			uint64_t *nv = realloc(ex->v, cap * sizeof(*nv));
			if (!nv)
				return &md_error_nomem;
			ex->v = nv;
			ex->cap = cap;
		}
		ex->v[ex->n++] = (uint64_t)data;
		ex->v[ex->n++] = (uint64_t)hole;
		if ((uint64_t)hole >= src->size)
			break;
		pos = hole;
	}
	return NULL;
}

/* Is any byte of [off, off+len) data? */
static bool extents_data(const struct extents *ex, uint64_t off, uint64_t len)
{
	if (ex->all_data)
		return true;
	size_t lo = 0, hi = ex->n / 2;
	while (lo < hi) { /* first extent whose end > off */
		size_t mid = lo + (hi - lo) / 2;
		if (ex->v[2 * mid + 1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ex->n / 2 && ex->v[2 * lo] < off + len;
}

/* Any hole inside the file part of a segment? */
static bool core_has_holes(const struct core *c, const struct extents *ex)
{
	if (ex->all_data)
		return false;
	for (size_t i = 0; i < c->n_segs; i++) {
		const struct core_seg *s = &c->segs[i];
		for (uint64_t p = 0; p + MD_PAGE_SIZE <= s->filesz; p += MD_PAGE_SIZE) {
			if (!extents_data(ex, s->offset + p, MD_PAGE_SIZE))
				return true;
		}
	}
	return false;
}

/* ---- mappings ---- */

static void info_note(struct md_core_info *info, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info_note(struct md_core_info *info, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	char **nn = realloc(info->notes, (info->n_notes + 1) * sizeof(*nn));
	if (!nn) {
		free(s);
		return;
	}
	info->notes = nn;
	info->notes[info->n_notes++] = s;
}

static uint32_t perms_of(uint32_t flags)
{
	return (flags & PF_R ? MD_PERM_READ : 0) | (flags & PF_W ? MD_PERM_WRITE : 0) | (flags & PF_X ? MD_PERM_EXEC : 0);
}

/* ps->files is sorted by start (parse_nt_file): binary searches keep a core with a million
 * mappings from taking quadratic time. */
static size_t files_upto(const struct parsed *ps, uint64_t addr) /* entries with start <= addr */
{
	size_t lo = 0, hi = ps->n_files;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ps->files[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct file_entry *file_at(const struct parsed *ps, uint64_t addr)
{
	size_t i = files_upto(ps, addr);
	if (i > 0 && addr < ps->files[i - 1].end)
		return &ps->files[i - 1];
	return NULL;
}

/* The first entry starting above addr, or UINT64_MAX. */
static uint64_t next_file_start(const struct parsed *ps, uint64_t addr)
{
	size_t i = files_upto(ps, addr);
	return i < ps->n_files ? ps->files[i].start : UINT64_MAX;
}

/* The first segment starting above addr, or UINT64_MAX. */
static uint64_t next_seg_start(const struct core *c, uint64_t addr)
{
	size_t lo = 0, hi = c->n_segs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->segs[mid].vaddr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->n_segs ? c->segs[lo].vaddr : UINT64_MAX;
}

struct map_list {
	struct md_mapping *v;
	size_t n, cap;
};

static struct md_error *map_add(struct map_list *l, uint64_t start, uint64_t end, uint32_t perms,
				const struct file_entry *fe)
{
	if (l->n >= MAX_MAPPINGS)
		return bad("more than %u mappings", MAX_MAPPINGS);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct md_mapping *nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return &md_error_nomem;
		l->v = nv;
		l->cap = cap;
	}
	struct md_mapping *m = &l->v[l->n];
	memset(m, 0, sizeof(*m));
	m->start = start;
	m->end = end;
	m->perms = perms;
	m->kind = MD_MAP_ANON;
	if (fe) {
		const char *name = fe->name;
		size_t len = strlen(name);
		static const char deleted[] = " (deleted)";
		if (len >= sizeof(deleted) - 1 && strcmp(name + len - (sizeof(deleted) - 1), deleted) == 0) {
			m->deleted = true;
			len -= sizeof(deleted) - 1;
		}
		m->path = strndup(name, len);
		if (!m->path)
			return &md_error_nomem;
		m->offset = fe->pgoff + (start - fe->start);
		m->kind = MD_MAP_FILE;
	}
	l->n++;
	return NULL;
}

static int compare_maps(const void *a, const void *b)
{
	const struct md_mapping *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Mappings of a kernel or gdb core: one per PT_LOAD, named from NT_FILE; file mappings that the
 * core has no segment for at all (gdb leaves out read-only file mappings) come from NT_FILE. */
static struct md_error *maps_from_segments(struct core *c, const struct parsed *ps, struct map_list *l)
{
	struct md_error *err;
	for (size_t i = 0; i < c->n_segs; i++) {
		const struct core_seg *s = &c->segs[i];
		/* A segment may span several NT_FILE entries (never seen, but cheap to honour). */
		uint64_t a = s->vaddr, end = s->vaddr + s->memsz;
		while (a < end) {
			const struct file_entry *fe = file_at(ps, a);
			uint64_t b = end;
			if (fe && fe->end < b)
				b = MD_PAGE_UP(fe->end);
			if (!fe) {
				uint64_t nf = next_file_start(ps, a);
				if (nf < b)
					b = MD_PAGE_DOWN(nf);
			}
			if (b <= a)
				b = a + MD_PAGE_SIZE;
			if ((err = map_add(l, a, b, perms_of(s->flags), fe)))
				return err;
			a = b;
		}
	}
	size_t from_segments = l->n; /* sorted, as the segments are */
	for (size_t k = 0; k < ps->n_files; k++) {
		const struct file_entry *fe = &ps->files[k];
		uint64_t a = MD_PAGE_DOWN(fe->start), end = MD_PAGE_UP(fe->end);
		if (end <= a)
			continue;
		/* The parts of the entry no segment covers. */
		while (a < end) {
			const struct core_seg *s = seg_at(c, a);
			if (s) {
				a = s->vaddr + s->memsz;
				continue;
			}
			uint64_t b = end, ns = next_seg_start(c, a);
			if (ns < b)
				b = ns;
			/* Overlap with a segment's mapping: only a hostile core gets here. */
			size_t lo = 0, hi = from_segments;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				if (l->v[mid].end <= a)
					lo = mid + 1;
				else
					hi = mid;
			}
			bool dup = lo < from_segments && l->v[lo].start < b;
			if (!dup && (err = map_add(l, a, b, MD_PERM_READ, fe)))
				return err;
			a = b;
		}
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), compare_maps);
	for (size_t i = 1; i < l->n; i++)
		if (l->v[i].start < l->v[i - 1].end)
			return bad("NT_FILE entries overlap at 0x%" PRIx64, l->v[i].start);
	return NULL;
}

static bool is_path(const struct md_mapping *m)
{
	return m->path && m->path[0] == '/';
}

static struct md_mapping *map_containing(struct map_list *l, uint64_t addr)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (addr < l->v[mid].start)
			hi = mid;
		else if (addr >= l->v[mid].end)
			lo = mid + 1;
		else
			return &l->v[mid];
	}
	return NULL;
}

static struct md_error *set_name(struct md_mapping *m, const char *name, enum md_map_kind kind)
{
	if (m->path)
		return NULL;
	m->path = strdup(name);
	if (!m->path)
		return &md_error_nomem;
	m->kind = kind;
	return NULL;
}

/* What /proc/PID/maps would have called [stack], [heap], [vdso], [vvar], [vsyscall]: the core
 * does not say, so it is inferred (docs/cores.md). */
static struct md_error *name_special(struct map_list *l, const struct parsed *ps, const char *exe)
{
	struct md_error *err;
	uint64_t vdso = auxv_get(ps, AT_SYSINFO_EHDR);
	struct md_mapping *m = vdso ? map_containing(l, vdso) : NULL;
	if (m && m->start == vdso) {
		if ((err = set_name(m, "[vdso]", MD_MAP_SPECIAL)))
			return err;
		/* [vvar] sits right below the vDSO, read-only and anonymous. */
		for (size_t i = (size_t)(m - l->v); i-- > 0;) {
			struct md_mapping *v = &l->v[i];
			if (v->end != l->v[i + 1].start || v->path || (v->perms & (MD_PERM_WRITE | MD_PERM_EXEC)))
				break;
			if ((err = set_name(v, "[vvar]", MD_MAP_SPECIAL)))
				return err;
		}
	}
	m = map_containing(l, VSYSCALL_ADDR);
	if (m && (err = set_name(m, "[vsyscall]", MD_MAP_SPECIAL)))
		return err;
	/* AT_RANDOM and AT_EXECFN point into the initial stack. */
	uint64_t on_stack = auxv_get(ps, AT_RANDOM);
	if (!on_stack)
		on_stack = auxv_get(ps, AT_EXECFN);
	m = on_stack ? map_containing(l, on_stack) : NULL;
	if (m && !m->path && (err = set_name(m, "[stack]", MD_MAP_STACK)))
		return err;
	/* The brk heap: the first anonymous writable mapping within 32 MiB above the executable,
	 * not directly after it (that one is its .bss). */
	uint64_t exe_end = 0;
	for (size_t i = 0; exe && i < l->n; i++)
		if (l->v[i].path && strcmp(l->v[i].path, exe) == 0 && l->v[i].end > exe_end)
			exe_end = l->v[i].end;
	for (size_t i = 0; exe_end && i < l->n; i++) {
		struct md_mapping *h = &l->v[i];
		if (h->start < exe_end || h->start > exe_end + BRK_RANDOM_RANGE)
			continue;
		if (h->path || (h->perms & (MD_PERM_READ | MD_PERM_WRITE)) != (MD_PERM_READ | MD_PERM_WRITE))
			continue;
		if (h->start == exe_end || (i > 0 && l->v[i - 1].end == h->start && l->v[i - 1].path))
			continue;
		if ((err = set_name(h, "[heap]", MD_MAP_HEAP)))
			return err;
		break;
	}
	return NULL;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[MD_PAGE_SIZE];
	return memcmp(p, zero, MD_PAGE_SIZE) == 0;
}

/* In place when the core is mapped: this looks at every dumped page of a core without holes. */
static bool dumped_page_is_zero(const struct core_src *src, struct md_coremap_touched *touched, uint64_t off)
{
	if (src->map.base) {
		if (off > src->size || MD_PAGE_SIZE > src->size - off)
			return false;
		md_coremap_touch(&src->map, touched, off, MD_PAGE_SIZE);
		return page_is_zero(src->map.base + off) && !md_coremap_shrunk(&src->map);
	}
	uint8_t page[MD_PAGE_SIZE];
	return src_read(src, off, page, MD_PAGE_SIZE) && page_is_zero(page);
}

/* Looking at every dumped page of a core without holes (gdb gcore) is a pass over the whole
 * file: it is cut into chunks, taken in turn by one thread per CPU (issue 21). */
#define ZERO_CHECK 0xffu /* page bits until zero_scan has looked: a whole dumped page */
#define SCAN_CHUNK_PAGES 2048u
#define SCAN_MAX_THREADS 4

struct scan_chunk {
	struct md_mapping *m;
	uint64_t p0, p1; /* pages of m */
};

struct zero_scan {
	const struct core *c;
	struct scan_chunk *chunks;
	size_t n, cap;
	_Atomic(size_t) next;
	_Atomic(uint64_t) zero_pages;
};

static bool scan_add(struct zero_scan *z, struct md_mapping *m, uint64_t p0, uint64_t p1)
{
	for (uint64_t p = p0; p < p1; p += SCAN_CHUNK_PAGES) {
		if (z->n == z->cap) {
			size_t cap = z->cap ? z->cap * 2 : 64;
			struct scan_chunk *v = realloc(z->chunks, cap * sizeof(*v));
			if (!v)
				return false;
			z->chunks = v;
			z->cap = cap;
		}
		z->chunks[z->n++] = (struct scan_chunk){ m, p, p1 - p > SCAN_CHUNK_PAGES ? p + SCAN_CHUNK_PAGES : p1 };
	}
	return true;
}

static void *zero_scan_run(void *arg)
{
	struct zero_scan *z = arg;
	struct md_coremap_touched touched = { 0, 0 };
	uint64_t zero = 0;
	const struct core_seg *s = NULL;
	size_t i;
	while ((i = atomic_fetch_add(&z->next, 1)) < z->n && !md_live_interrupted) {
		const struct scan_chunk *k = &z->chunks[i];
		for (uint64_t p = k->p0; p < k->p1; p++) {
			if (k->m->pages[p] != ZERO_CHECK)
				continue;
			uint64_t addr = k->m->start + p * MD_PAGE_SIZE;
			if (!s || addr < s->vaddr || addr - s->vaddr >= s->filesz)
				s = seg_at(z->c, addr); /* one that holds the page: residency_from_core saw it */
			if (!s) {
				k->m->pages[p] = MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE | MD_PAGE_UNKNOWN;
				continue;
			}
			bool is_zero = dumped_page_is_zero(&z->c->src, &touched, s->offset + (addr - s->vaddr));
			k->m->pages[p] = is_zero ? MD_PAGE_UNKNOWN : MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE | MD_PAGE_UNKNOWN;
			zero += is_zero;
		}
	}
	atomic_fetch_add(&z->zero_pages, zero);
	return NULL;
}

/* The chunks on this thread and up to SCAN_MAX_THREADS - 1 helpers, one per online CPU. The
 * helpers take no asynchronous signal (they stay with the main thread); a fault is theirs. */
static uint64_t zero_scan(struct zero_scan *z)
{
	pthread_t th[SCAN_MAX_THREADS - 1];
	size_t n_th = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cpus > 1 ? (size_t)cpus - 1 : 0;
	if (want > SCAN_MAX_THREADS - 1)
		want = SCAN_MAX_THREADS - 1;
	if (want > z->n / 4)
		want = z->n / 4; /* a small core is not worth a thread */
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (n_th < want && pthread_create(&th[n_th], NULL, zero_scan_run, z) == 0)
		n_th++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	zero_scan_run(z);
	for (size_t i = 0; i < n_th; i++)
		pthread_join(th[i], NULL);
	return atomic_load(&z->zero_pages);
}

/* Per-page bits of a kernel or gdb core, and the smaps figures that follow from them. */
static struct md_error *residency_from_core(struct core *c, struct map_list *l, const struct extents *ex,
					    enum md_core_residency residency, struct md_core_info *info)
{
	uint64_t total_bits = 0;
	struct zero_scan z = { .c = c };
	struct md_error *err = NULL;
	for (size_t i = 0; i < l->n && !err; i++) {
		struct md_mapping *m = &l->v[i];
		uint64_t npages = (m->end - m->start) / MD_PAGE_SIZE;
		bool file = is_path(m);
		/* Without a page in the core or a file behind it, a mapping needs no bits. */
		bool any = file;
		for (uint64_t a = m->start; a < m->end && !any;) {
			const struct core_seg *s = seg_at(c, a);
			if (!s)
				break;
			any = s->filesz > 0 && s->vaddr + s->filesz > m->start;
			a = s->vaddr + s->memsz;
		}
		m->smaps.valid = true;
		m->smaps.size = m->end - m->start;
		m->smaps.kernel_page_size = MD_PAGE_SIZE;
		if (!any || m->start == VSYSCALL_ADDR)
			continue; /* the kernel's page, never counted */
		if (npages > MAX_MAPPING_PAGES || (total_bits += npages) > MAX_TOTAL_PAGE_BITS) {
			err = bad("mapping at 0x%" PRIx64 " of %" PRIu64 " pages: implausible", m->start, npages);
			break;
		}
		m->pages = calloc(npages, 1);
		if (!m->pages) {
			err = &md_error_nomem;
			break;
		}
		uint64_t first_check = npages, last_check = 0;
		for (uint64_t p = 0; p < npages;) {
			uint64_t addr = m->start + p * MD_PAGE_SIZE;
			const struct core_seg *s = seg_at(c, addr);
			if (!s || addr - s->vaddr >= s->filesz) {
				/* Not dumped, up to the next page that is: one stretch at a time. */
				uint64_t stop = s ? s->vaddr + s->memsz : next_seg_start(c, addr);
				uint64_t q = stop >= m->end ? npages : (stop - m->start) / MD_PAGE_SIZE;
				if (q <= p)
					q = p + 1;
				if (file) {
					/* Left out of the core: read from the file, not counted. */
					memset(m->pages + p, MD_PAGE_UNKNOWN, q - p);
					info->not_dumped_file_pages += q - p;
				}
				p = q;
				continue;
			}
			uint64_t off = s->offset + (addr - s->vaddr);
			uint64_t len = s->vaddr + s->filesz - addr;
			if (len > MD_PAGE_SIZE)
				len = MD_PAGE_SIZE;
			uint8_t bits = 0;
			if (residency == MD_CORE_RESIDENCY_HOLES) {
				if (extents_data(ex, off, len))
					bits = MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE;
			} else if (m->perms & MD_PERM_READ) {
				/* Without holes a page of zeros may as well never have been touched: it
				 * stays unknown and uncounted; a page holding data was resident
				 * (zero_scan decides). */
				bits = MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE | MD_PAGE_UNKNOWN;
				if (len == MD_PAGE_SIZE) {
					bits = ZERO_CHECK;
					if (first_check == npages)
						first_check = p;
					last_check = p;
				}
			}
			m->pages[p] = (uint8_t)bits;
			p++;
		}
		if (first_check < npages && !scan_add(&z, m, first_check, last_check + 1))
			err = &md_error_nomem;
	}
	if (!err && z.n) {
		info->zero_dumped_pages += zero_scan(&z);
		if (md_live_interrupted)
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
		else if (md_coremap_shrunk(&c->src.map))
			err = bad("the core file shrank while it was read (or a page of it could not be read)");
	}
	free(z.chunks);
	if (err)
		return err;
	for (size_t i = 0; i < l->n; i++) {
		struct md_mapping *m = &l->v[i];
		if (!m->pages)
			continue;
		uint64_t npages = (m->end - m->start) / MD_PAGE_SIZE, counted = 0;
		for (uint64_t p = 0; p < npages; p++)
			counted += MD_PAGE_COUNTED(m->pages[p]);
		m->smaps.rss = counted * MD_PAGE_SIZE;
		m->smaps.pss = m->smaps.rss;
		m->smaps.private_dirty = m->smaps.rss;
		if (!is_path(m))
			m->smaps.anonymous = m->smaps.rss;
	}
	return NULL;
}

/* Kinds the live target gets from the threads' stack pointers. */
static void mark_stacks(struct md_target *t)
{
	md_target_mark_thread_stacks(t);
}

/* The figures smaps_rollup and status would have shown, summed from the inferred pages. */
static void infer_totals(const struct md_target *t, struct md_core_info *info)
{
	struct md_smaps *r = &info->rollup;
	struct md_proc_status *st = &info->status;
	r->valid = true;
	for (size_t i = 0; i < t->n_mappings; i++) {
		const struct md_mapping *m = &t->mappings[i];
		if (m->start == VSYSCALL_ADDR)
			continue; /* in no process's VmSize or Rss */
		r->size += m->end - m->start;
		r->rss += m->smaps.rss;
		r->pss += m->smaps.pss;
		r->private_dirty += m->smaps.private_dirty;
		r->anonymous += m->smaps.anonymous;
		st->vm_size += m->end - m->start;
		if (m->smaps.anonymous)
			st->rss_anon += m->smaps.rss;
		else
			st->rss_file += m->smaps.rss;
	}
	st->vm_rss = r->rss;
	st->has_rss_split = true;
	st->threads = (uint32_t)t->n_threads;
	st->pid = st->tgid = info->pid;
	snprintf(st->name, sizeof(st->name), "%s", info->comm);
}

/* ---- snapshots: mappings, bits and figures from the MEMDISSECT notes ---- */

static struct md_error *decode_snapshot(struct core *c, const struct parsed *ps, struct md_target *t,
					struct md_core_info *info)
{
	struct wire_reader r = { ps->md[MD_NT_INFO & 0xf].desc, ps->md[MD_NT_INFO & 0xf].len, 0, false };
	uint32_t version = rd_u32(&r);
	if (!r.bad && version != MD_CORE_NOTES_VERSION)
		return bad("memdissect notes of version %u: this memdissect reads version %u", version,
			   MD_CORE_NOTES_VERSION);
	uint32_t flags = rd_u32(&r);
	info->snapshot_consistent = flags & 1;
	info->pid = (int32_t)rd_u64(&r);
	info->snapshot_pause_ms = (double)rd_u64(&r) / 1e6;
	info->snapshot_retries = (unsigned)rd_u64(&r);
	info->reconciled_pages = rd_u64(&r);
	rd_str_buf(&r, info->comm, sizeof(info->comm));
	bool oom = false;
	info->exe = rd_str_dup(&r, &oom);
	if (oom)
		return &md_error_nomem;
	if (r.bad)
		return bad("memdissect INFO note is damaged");

	r = (struct wire_reader){ ps->md[MD_NT_ROLLUP & 0xf].desc, ps->md[MD_NT_ROLLUP & 0xf].len, 0, false };
	rd_smaps(&r, &info->rollup);
	if (r.bad)
		return bad("memdissect ROLLUP note is damaged");
	r = (struct wire_reader){ ps->md[MD_NT_STATUS & 0xf].desc, ps->md[MD_NT_STATUS & 0xf].len, 0, false };
	rd_status(&r, &info->status);
	if (r.bad)
		return bad("memdissect STATUS note is damaged");

	r = (struct wire_reader){ ps->md[MD_NT_MAPS & 0xf].desc, ps->md[MD_NT_MAPS & 0xf].len, 0, false };
	uint64_t n = rd_u64(&r);
	if (n > MAX_MAPPINGS || n > r.len / 60)
		return bad("memdissect MAPS note claims %" PRIu64 " mappings", n);
	t->mappings = calloc(n ? n : 1, sizeof(*t->mappings));
	if (!t->mappings)
		return &md_error_nomem;
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		struct md_mapping *m = &t->mappings[i];
		t->n_mappings = i + 1;
		m->start = rd_u64(&r);
		m->end = rd_u64(&r);
		m->offset = rd_u64(&r);
		m->perms = rd_u32(&r) & (MD_PERM_READ | MD_PERM_WRITE | MD_PERM_EXEC | MD_PERM_SHARED);
		m->dev_major = rd_u32(&r);
		m->dev_minor = rd_u32(&r);
		m->inode = rd_u64(&r);
		m->deleted = rd_u8(&r) != 0;
		uint8_t kind = rd_u8(&r);
		m->kind = kind <= MD_MAP_SPECIAL ? (enum md_map_kind)kind : MD_MAP_ANON;
		m->extra_rss_pages = rd_u64(&r);
		rd_smaps(&r, &m->smaps);
		m->path = rd_str_dup(&r, &oom);
		if (oom)
			return &md_error_nomem;
		if (r.bad)
			break;
		if (m->start >= m->end || (m->start | m->end) % MD_PAGE_SIZE ||
		    (i > 0 && m->start < t->mappings[i - 1].end))
			return bad("memdissect MAPS note: mapping %" PRIu64 " (0x%" PRIx64 "-0x%" PRIx64
				   ") is not ordered and page aligned",
				   i, m->start, m->end);
		if (m->extra_rss_pages > (m->end - m->start) / MD_PAGE_SIZE)
			return bad("memdissect MAPS note: mapping 0x%" PRIx64 " has more RSS than pages", m->start);
	}
	if (r.bad)
		return bad("memdissect MAPS note is damaged");

	r = (struct wire_reader){ ps->md[MD_NT_PAGES & 0xf].desc, ps->md[MD_NT_PAGES & 0xf].len, 0, false };
	if (rd_u64(&r) != n || r.bad)
		return bad("memdissect PAGES note does not match the MAPS note");
	uint64_t total_bits = 0;
	for (uint64_t i = 0; i < n && !r.bad; i++) {
		struct md_mapping *m = &t->mappings[i];
		uint64_t npages = rd_u64(&r);
		if (npages == 0)
			continue;
		if (npages != (m->end - m->start) / MD_PAGE_SIZE || npages > MAX_MAPPING_PAGES ||
		    (total_bits += npages) > MAX_TOTAL_PAGE_BITS)
			return bad("memdissect PAGES note: %" PRIu64 " pages for mapping 0x%" PRIx64, npages, m->start);
		m->pages = malloc(npages);
		if (!m->pages)
			return &md_error_nomem;
		for (uint64_t p = 0; p < npages && !r.bad;) {
			uint32_t run = rd_u32(&r);
			uint8_t bits = rd_u8(&r);
			if (run == 0 || run > npages - p) {
				r.bad = true;
				break;
			}
			memset(m->pages + p, bits & ~MD_PAGE_UNKNOWN, run);
			p += run;
		}
	}
	if (r.bad)
		return bad("memdissect PAGES note is damaged");

	if (ps->md[MD_NT_SYSTEM & 0xf].desc) {
		r = (struct wire_reader){ ps->md[MD_NT_SYSTEM & 0xf].desc, ps->md[MD_NT_SYSTEM & 0xf].len, 0, false };
		if (rd_u8(&r)) {
			struct md_meminfo *mi = &info->meminfo;
			uint64_t *v[] = { &mi->mem_total, &mi->mem_free,   &mi->mem_available, &mi->buffers,
					  &mi->cached,    &mi->swap_total, &mi->swap_free,     &mi->shmem };
			for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
				*v[k] = rd_u64(&r);
			info->meminfo_valid = !r.bad;
		}
		if (!r.bad && rd_u8(&r)) {
			info->cgroup.version = (int)rd_u32(&r);
			info->cgroup.usage_bytes = rd_u64(&r);
			info->cgroup.limit_bytes = rd_u64(&r);
			info->cgroup.path = rd_str_dup(&r, &oom);
			if (oom)
				return &md_error_nomem;
			info->cgroup_valid = !r.bad;
		}
	}
	(void)c;
	return NULL;
}

static void decode_thread_names(const struct parsed *ps, struct md_target *t)
{
	struct note_ref nr = ps->md[MD_NT_THREADS & 0xf];
	if (!nr.desc)
		return;
	struct wire_reader r = { nr.desc, nr.len, 0, false };
	uint64_t n = rd_u64(&r);
	for (uint64_t i = 0; i < n && !r.bad && i < MAX_THREADS; i++) {
		int32_t tid = (int32_t)rd_u32(&r);
		char comm[16];
		rd_str_buf(&r, comm, sizeof(comm));
		bool regs_valid = rd_u8(&r) != 0;
		for (size_t k = 0; k < t->n_threads && !r.bad; k++) {
			if (t->threads[k].tid != tid)
				continue;
			memcpy(t->threads[k].comm, comm, sizeof(comm));
			t->threads[k].regs_valid = regs_valid;
		}
	}
}

/* ---- threads ---- */

static struct md_error *read_threads(const struct parsed *ps, struct md_target *t, const struct md_core_info *info)
{
	t->threads = calloc(ps->n_prstatus ? ps->n_prstatus : 1, sizeof(*t->threads));
	if (!t->threads)
		return &md_error_nomem;
	_Static_assert(sizeof(((struct elf_prstatus *)0)->pr_reg) == MD_REG_COUNT * sizeof(uint64_t),
		       "pr_reg is user_regs_struct");
	for (size_t i = 0; i < ps->n_prstatus; i++) {
		struct elf_prstatus pr;
		memcpy(&pr, ps->prstatus[i].desc, sizeof(pr));
		struct md_thread *th = &t->threads[t->n_threads++];
		th->tid = pr.pr_pid;
		memcpy(th->regs, &pr.pr_reg, sizeof(th->regs));
		th->regs_valid = true;
		if (th->tid == info->pid)
			snprintf(th->comm, sizeof(th->comm), "%.15s", info->comm);
	}
	return NULL;
}

/* ---- reading memory ---- */

static struct core *core_of(const struct md_target *t)
{
	return t->impl;
}

static int core_file_fd(struct core *c, const char *path)
{
	size_t n = sizeof(c->files) / sizeof(c->files[0]);
	for (size_t i = 0; i < n; i++)
		if (c->files[i].path && strcmp(c->files[i].path, path) == 0)
			return c->files[i].fd;
	size_t slot = c->files_next++ % n;
	if (c->files[slot].path) {
		free(c->files[slot].path);
		if (c->files[slot].fd >= 0)
			close(c->files[slot].fd);
	}
	c->files[slot].path = strdup(path);
	c->files[slot].fd = -1;
	if (c->files[slot].path) {
		struct stat st;
		/* Regular files only: a FIFO or device named by a hostile core could block us. */
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			c->files[slot].fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	return c->files[slot].fd;
}

/* The file on disk behind a file mapping: the one libdwfl matched by build-id when the mapping
 * belongs to a module, else --exe for the executable, else sysroot + path. */
static const char *mapping_file(struct md_target *t, const struct md_mapping *m, char *buf, size_t len)
{
	struct core *c = core_of(t);
	const struct md_module *mod = md_target_module_at(t, m->start);
	const char *file = mod ? md_target_module_file(t, mod) : NULL;
	if (file && file[0] == '/')
		return file;
	if (c->exe_override && c->exe_in_core && strcmp(m->path, c->exe_in_core) == 0)
		return c->exe_override;
	snprintf(buf, len, "%s%s", c->sysroot ? c->sysroot : "", m->path);
	return buf;
}

static struct md_error *core_read_present(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct core *c = core_of(t);
	uint8_t *out = buf;
	while (len > 0) {
		const struct core_seg *s = seg_at(c, addr);
		size_t take = len;
		if (s && addr - s->vaddr < s->filesz) {
			uint64_t avail = s->filesz - (addr - s->vaddr);
			if (take > avail)
				take = (size_t)avail;
			if (!src_read(&c->src, s->offset + (addr - s->vaddr), out, take))
				return md_error_fault(MD_ERR_FAULT, addr, "core: cannot read 0x%" PRIx64 " from the file%s",
						      addr, md_coremap_shrunk(&c->src.map) ? " (it shrank while it was read)" : "");
		} else {
			/* Not in the core: the rest of the page run comes from the mapped file. */
			const struct md_mapping *m = md_target_find_mapping(t, addr);
			if (s) {
				uint64_t seg_left = s->memsz - (addr - s->vaddr);
				if (take > seg_left)
					take = (size_t)seg_left;
			} else {
				const struct core_seg *next = NULL;
				for (size_t i = 0; i < c->n_segs; i++)
					if (c->segs[i].vaddr > addr) {
						next = &c->segs[i];
						break;
					}
				if (next && take > next->vaddr - addr)
					take = (size_t)(next->vaddr - addr);
			}
			if (m && take > m->end - addr)
				take = (size_t)(m->end - addr);
			if (c->snapshot || !m || !is_path(m))
				return md_error_fault(MD_ERR_FAULT, addr,
						      "core: 0x%" PRIx64 " was resident but is not in the core", addr);
			char pbuf[4096];
			const char *file = mapping_file(t, m, pbuf, sizeof(pbuf));
			int fd = core_file_fd(c, file);
			if (fd < 0)
				return md_error_fault(MD_ERR_FAULT, addr,
						      "core: 0x%" PRIx64 " is not in the core and %s is not available", addr,
						      file);
			off_t off = (off_t)(m->offset + (addr - m->start));
			size_t done = 0;
			while (done < take) {
				ssize_t n = pread(fd, out + done, take - done, off + (off_t)done);
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0)
					break;
				done += (size_t)n;
			}
			memset(out + done, 0, take - done); /* past the end of the file: zeros, as mapped */
		}
		addr += take;
		out += take;
		len -= take;
	}
	return NULL;
}

/* The dumped bytes of one segment, in the mapped file. */
static const uint8_t *core_view(struct md_target *t, uint64_t addr, size_t len)
{
	struct core *c = core_of(t);
	struct md_coremap *map = &c->src.map;
	if (!map->base || md_coremap_shrunk(map))
		return NULL;
	const struct core_seg *s = seg_at(c, addr);
	if (!s || addr - s->vaddr >= s->filesz || len > s->filesz - (addr - s->vaddr))
		return NULL;
	uint64_t off = s->offset + (addr - s->vaddr);
	if (off > map->size || len > map->size - off)
		return NULL;
	md_coremap_touch(map, &c->view_touched, off, len);
	if (!c->ahead_tried) {
		c->ahead_tried = true;
		c->ahead = md_coremap_ahead_create(map);
	}
	md_coremap_ahead_at(c->ahead, off + len, s->offset + s->filesz);
	return map->base + off;
}

/* ---- unwinding (libdwfl over the core, for the plugins' quiescence checks) ---- */

static int unwind_find_elf(Dwfl_Module *mod, void **userdata, const char *module_name, Dwarf_Addr base,
			   char **file_name, Elf **elfp)
{
	struct core *c = *userdata;
	if (c && module_name[0] == '/') {
		const char *path = NULL;
		char buf[4096];
		if (c->exe_override && c->exe_in_core && strcmp(module_name, c->exe_in_core) == 0)
			path = c->exe_override;
		else if (c->sysroot && snprintf(buf, sizeof(buf), "%s%s", c->sysroot, module_name) < (int)sizeof(buf))
			path = buf;
		struct stat st;
		if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd >= 0) {
				*file_name = strdup(path);
				return fd;
			}
		}
	}
	return dwfl_build_id_find_elf(mod, userdata, module_name, base, file_name, elfp);
}

static int unwind_no_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
			       const char *file_name, const char *debuglink_file, GElf_Word debuglink_crc,
			       char **debuginfo_file_name)
{
	(void)mod, (void)userdata, (void)modname, (void)base, (void)file_name;
	(void)debuglink_file, (void)debuglink_crc, (void)debuginfo_file_name;
	return -1;
}

static int set_userdata(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start, void *arg)
{
	(void)mod, (void)name, (void)start;
	*userdata = arg;
	return DWARF_CB_OK;
}

static void unwind_setup(struct core *c)
{
	c->unwind_tried = true;
	if (c->src.fd < 0) {
		snprintf(c->unwind_error, sizeof(c->unwind_error), "no unwinder for an in-memory core");
		return;
	}
	c->unwind_elf = c->src.map.base ? elf_memory((char *)(uintptr_t)c->src.map.base, (size_t)c->src.size)
					: elf_begin(c->src.fd, ELF_C_READ, NULL);
	if (!c->unwind_elf) {
		snprintf(c->unwind_error, sizeof(c->unwind_error), "%s", elf_errmsg(-1));
		return;
	}
	c->unwind_callbacks.find_elf = unwind_find_elf;
	c->unwind_callbacks.find_debuginfo = c->debuginfo_disabled ? unwind_no_debuginfo : dwfl_standard_find_debuginfo;
	c->unwind_callbacks.section_address = dwfl_offline_section_address;
	if (c->sysroot && asprintf(&c->unwind_debuginfo_path, ":.debug:%s/usr/lib/debug:/usr/lib/debug", c->sysroot) > 0)
		c->unwind_callbacks.debuginfo_path = &c->unwind_debuginfo_path;
	Dwfl *dwfl = dwfl_begin(&c->unwind_callbacks);
	if (!dwfl) {
		snprintf(c->unwind_error, sizeof(c->unwind_error), "%s", dwfl_errmsg(-1));
		return;
	}
	dwfl_report_begin(dwfl);
	if (dwfl_core_file_report(dwfl, c->unwind_elf, c->exe_override) < 0 || dwfl_report_end(dwfl, NULL, NULL) != 0) {
		snprintf(c->unwind_error, sizeof(c->unwind_error), "%s", dwfl_errmsg(-1));
		dwfl_end(dwfl);
		return;
	}
	dwfl_getmodules(dwfl, set_userdata, c, 0);
	if (dwfl_core_file_attach(dwfl, c->unwind_elf) < 0) {
		snprintf(c->unwind_error, sizeof(c->unwind_error), "%s", dwfl_errmsg(-1));
		dwfl_end(dwfl);
		return;
	}
	c->unwind_dwfl = dwfl;
}

/* The threads' stacks do not change in a core: every thread is unwound once, on the first
 * request. dwfl_getthreads runs to the end of the thread list on purpose: libdwfl (0.188)
 * frees its per-thread iterator only there, so dwfl_getthread_frames would leak it. */
#define CORE_MAX_FRAMES 128

struct thread_frames {
	int32_t tid;
	size_t n;
	uint64_t pcs[CORE_MAX_FRAMES];
	char error[128];
};

static int collect_frame(Dwfl_Frame *frame, void *arg)
{
	struct thread_frames *tf = arg;
	Dwarf_Addr pc;
	bool activation;
	if (!dwfl_frame_pc(frame, &pc, &activation) || pc == 0) {
		/* said here: libdwfl would only report "Callback returned failure" */
		if (tf->n == 0)
			snprintf(tf->error, sizeof(tf->error), "the thread's first frame has no program counter%s",
				 pc == 0 ? " (pc 0)" : "");
		return DWARF_CB_ABORT;
	}
	tf->pcs[tf->n++] = pc;
	return tf->n >= CORE_MAX_FRAMES ? DWARF_CB_ABORT : DWARF_CB_OK;
}

static int unwind_thread(Dwfl_Thread *thread, void *arg)
{
	struct md_target *t = arg;
	struct core *c = core_of(t);
	pid_t tid = dwfl_thread_tid(thread);
	for (size_t i = 0; i < t->n_threads; i++) {
		struct thread_frames *tf = &c->frames[i];
		if (tf->tid != tid || tf->n)
			continue;
		tf->error[0] = 0;
		int rc = dwfl_thread_getframes(thread, collect_frame, tf);
		if (tf->n == 0 && !tf->error[0])
			snprintf(tf->error, sizeof(tf->error), "%s", rc != 0 ? dwfl_errmsg(-1) : "the unwinder found no frame");
		break;
	}
	return DWARF_CB_OK;
}

static struct md_error *core_backtrace(struct md_target *t, const struct md_thread *thread, uint64_t *pcs,
				       size_t max, size_t *n_ret)
{
	struct core *c = core_of(t);
	if (max == 0) {
		*n_ret = 0;
		return NULL;
	}
	if (!c->unwind_tried) {
		unwind_setup(c);
		if (c->unwind_dwfl) {
			c->frames = calloc(t->n_threads ? t->n_threads : 1, sizeof(*c->frames));
			if (!c->frames)
				return &md_error_nomem;
			for (size_t i = 0; i < t->n_threads; i++) {
				c->frames[i].tid = t->threads[i].tid;
				snprintf(c->frames[i].error, sizeof(c->frames[i].error), "not in the core's thread list");
			}
			dwfl_getthreads(c->unwind_dwfl, unwind_thread, t);
		}
	}
	if (!c->unwind_dwfl)
		return md_error_create(MD_ERR_UNSUPPORTED, "core: no unwinder: %s", c->unwind_error);
	for (size_t i = 0; i < t->n_threads; i++) {
		const struct thread_frames *tf = &c->frames[i];
		if (tf->tid != thread->tid)
			continue;
		if (tf->n == 0)
			return md_error_create(MD_ERR_BAD_DATA, "thread %d: no frame could be unwound: %s", (int)thread->tid,
					       tf->error);
		size_t n = tf->n < max ? tf->n : max;
		memcpy(pcs, tf->pcs, n * sizeof(*pcs));
		*n_ret = n;
		return NULL;
	}
	return md_error_create(MD_ERR_NOT_FOUND, "thread %d is not in the core", (int)thread->tid);
}

static void core_destroy_impl(struct md_target *t)
{
	struct core *c = core_of(t);
	if (!c)
		return;
	/* libdwfl's modules refer to the core's Elf: end them first. */
	md_symbols_destroy(t->symbols);
	t->symbols = NULL;
	if (c->unwind_dwfl)
		dwfl_end(c->unwind_dwfl);
	if (c->unwind_elf)
		elf_end(c->unwind_elf);
	if (c->elf)
		elf_end(c->elf);
	md_coremap_ahead_destroy(c->ahead);
	md_coremap_deinit(&c->src.map);
	if (c->src.fd >= 0)
		close(c->src.fd);
	for (size_t i = 0; i < sizeof(c->files) / sizeof(c->files[0]); i++) {
		free(c->files[i].path);
		if (c->files[i].path && c->files[i].fd >= 0)
			close(c->files[i].fd);
	}
	free(c->unwind_debuginfo_path);
	free(c->frames);
	free(c->segs);
	free(c->notes);
	free(c->path);
	free(c->sysroot);
	free(c->exe_override);
	free(c->exe_in_core);
	free(c);
	t->impl = NULL;
}

static const struct md_target_ops core_ops = {
	.read_present = core_read_present,
	.backtrace = core_backtrace,
	.destroy_impl = core_destroy_impl,
	.view = core_view,
};

bool md_core_shrunk(const struct md_target *t)
{
	if (t->ops != &core_ops)
		return false;
	const struct core_src *src = &core_of(t)->src;
	if (src->map.base)
		return md_coremap_shrunk(&src->map);
	/* Read with pread: reads past a new end came up short (unreadable pages to the walk); the
	 * file's size says whether it changed under us. */
	struct stat st;
	return src->fd >= 0 && fstat(src->fd, &st) == 0 && (uint64_t)st.st_size < src->size;
}

/* ---- symbols and missing files ---- */

static int compare_file_names(const void *a, const void *b)
{
	return strcmp((*(const struct file_entry *const *)a)->name, (*(const struct file_entry *const *)b)->name);
}

static void check_files(struct md_target *t, const struct parsed *ps, struct md_core_info *info)
{
	struct core *c = core_of(t);
	/* One note per file, however many mappings it has: names sorted, duplicates skipped. */
	const struct file_entry **order = calloc(ps->n_files ? ps->n_files : 1, sizeof(*order));
	if (!order)
		return;
	for (size_t i = 0; i < ps->n_files; i++)
		order[i] = &ps->files[i];
	if (ps->n_files)
		qsort(order, ps->n_files, sizeof(*order), compare_file_names);
	size_t missing = 0;
	for (size_t i = 0; i < ps->n_files; i++) {
		const char *name = order[i]->name;
		if ((i > 0 && strcmp(order[i - 1]->name, name) == 0) || name[0] != '/')
			continue;
		const struct md_mapping *m = md_target_find_mapping(t, MD_PAGE_DOWN(order[i]->start));
		if (!m || !m->path)
			continue;
		char buf[4096];
		const char *file = mapping_file(t, m, buf, sizeof(buf));
		struct stat st;
		if (stat(file, &st) == 0 && S_ISREG(st.st_mode))
			continue;
		bool is_exe = c->exe_in_core && strcmp(name, c->exe_in_core) == 0;
		if (++missing > 20 && !is_exe)
			continue; /* a hostile core must not make a million notes */
		info_note(info, "core: %s %s not found%s%s: its symbols and the pages the core left out are unavailable (%s)",
			  is_exe ? "executable" : "file", name, c->sysroot ? " under " : "", c->sysroot ? c->sysroot : "",
			  is_exe ? "give --exe PATH" : "give --sysroot DIR");
	}
	if (missing > 20)
		info_note(info, "core: %zu more files not found", missing - 20);
	free(order);
}

/* ---- open ---- */

void md_core_info_deinit(struct md_core_info *info)
{
	if (!info)
		return;
	free(info->exe);
	md_cgroup_memory_deinit(&info->cgroup);
	for (size_t i = 0; i < info->n_notes; i++)
		free(info->notes[i]);
	free(info->notes);
	memset(info, 0, sizeof(*info));
}

static void parsed_deinit(struct parsed *ps)
{
	free(ps->prstatus);
	free(ps->files);
}

/* The exe's NT_FILE name: the file mapped at AT_PHDR or AT_ENTRY. */
static const char *exe_name(const struct parsed *ps)
{
	uint64_t keys[2] = { AT_PHDR, AT_ENTRY };
	for (int i = 0; i < 2; i++) {
		uint64_t a = auxv_get(ps, keys[i]);
		const struct file_entry *fe = a ? file_at(ps, a) : NULL;
		if (fe)
			return fe->name;
	}
	return NULL;
}

/* ---- --exe PATH: the same build as the core's executable ---- */

/* Bytes of the core's own data at addr (never the files on disk). */
static bool core_bytes(const struct core *c, uint64_t addr, void *out, size_t len)
{
	const struct core_seg *s = seg_at(c, addr);
	return s && addr - s->vaddr < s->filesz && len <= s->filesz - (addr - s->vaddr) &&
	       src_read(&c->src, s->offset + (addr - s->vaddr), out, len);
}

static void hex_of(const uint8_t *id, size_t n, char *out, size_t out_len)
{
	size_t k = 0;
	for (size_t i = 0; i < n && k + 3 <= out_len; i++, k += 2)
		snprintf(out + k, out_len - k, "%02x", id[i]);
	out[k < out_len ? k : out_len - 1] = 0;
}

/* The GNU build-id in a buffer of ELF notes, as hex; false when there is none. */
static bool build_id_in_notes(const uint8_t *p, size_t len, char *hex, size_t hex_len)
{
	size_t off = 0;
	for (int steps = 0; off + 12 <= len && steps < 256; steps++) {
		uint32_t namesz, descsz, type;
		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		size_t name_off = off + 12, desc_off = name_off + ((namesz + 3ULL) & ~3ULL);
		if (namesz > len || descsz > len || desc_off + descsz > len)
			return false;
		if (type == NT_GNU_BUILD_ID && namesz == 4 && memcmp(p + name_off, "GNU", 4) == 0 && descsz > 0 &&
		    descsz <= 64) {
			hex_of(p + desc_off, descsz, hex, hex_len);
			return true;
		}
		off = desc_off + ((descsz + 3ULL) & ~3ULL);
	}
	return false;
}

/* The build-id of the executable as the core holds it: the ELF header page the kernel (and gdb)
 * dump for each mapped ELF file, its PT_NOTE segment read from the core's data only. */
static bool core_exe_build_id(const struct core *c, const struct md_target *t, char *hex, size_t hex_len)
{
	const struct md_mapping *first = NULL;
	for (size_t i = 0; i < t->n_mappings && c->exe_in_core; i++) {
		const struct md_mapping *m = &t->mappings[i];
		if (m->path && strcmp(m->path, c->exe_in_core) == 0 && m->offset == 0) {
			first = m;
			break;
		}
	}
	Elf64_Ehdr eh;
	if (!first || !core_bytes(c, first->start, &eh, sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > 128 || eh.e_phoff > MD_PAGE_SIZE)
		return false;
	Elf64_Phdr ph[128];
	if (!core_bytes(c, first->start + eh.e_phoff, ph, eh.e_phnum * sizeof(Elf64_Phdr)))
		return false;
	uint64_t bias = 0;
	if (eh.e_type == ET_DYN) {
		for (unsigned i = 0; i < eh.e_phnum; i++)
			if (ph[i].p_type == PT_LOAD) {
				bias = first->start - MD_PAGE_DOWN(ph[i].p_vaddr);
				break;
			}
	}
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type != PT_NOTE || ph[i].p_filesz == 0 || ph[i].p_filesz > 4096)
			continue;
		uint8_t notes[4096];
		if (core_bytes(c, bias + ph[i].p_vaddr, notes, (size_t)ph[i].p_filesz) &&
		    build_id_in_notes(notes, (size_t)ph[i].p_filesz, hex, hex_len))
			return true;
	}
	return false;
}

/* The build-id of an ELF file on disk, read without mapping it. */
static bool file_build_id(const char *path, char *hex, size_t hex_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool found = false;
	Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
	size_t n = 0;
	if (elf && elf_getphdrnum(elf, &n) == 0) {
		for (size_t i = 0; i < n && i < 128 && !found; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_NOTE || ph.p_filesz > 4096)
				continue;
			Elf_Data *d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, (size_t)ph.p_filesz, ELF_T_NHDR);
			found = d && d->d_buf && build_id_in_notes(d->d_buf, d->d_size, hex, hex_len);
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return found;
}

/* --exe must name an existing file of the same build as the core's executable. */
static struct md_error *check_exe_override(struct core *c, const struct md_target *t, struct md_core_info *info)
{
	const char *exe = c->exe_override;
	struct stat st;
	if (stat(exe, &st) != 0)
		return md_error_create(MD_ERR_USAGE, "--exe %s: %s", exe, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return md_error_create(MD_ERR_USAGE, "--exe %s: not a regular file", exe);
	char want[160], have[160];
	bool in_core = core_exe_build_id(c, t, want, sizeof(want));
	bool in_file = file_build_id(exe, have, sizeof(have));
	if (in_core && in_file && strcmp(want, have) != 0)
		return md_error_create(MD_ERR_USAGE,
				       "--exe %s is a different build: its build-id is %s, the core's executable (%s) has %s",
				       exe, have, c->exe_in_core ? c->exe_in_core : "?", want);
	if (in_core && !in_file)
		return md_error_create(MD_ERR_USAGE, "--exe %s has no build-id, the core's executable has %s: not the same build",
				       exe, want);
	if (!in_core)
		info_note(info, "core: --exe %s could not be checked against the core (no build-id of the executable in the core)",
			  exe);
	return NULL;
}

static struct md_error *build(struct core *c, const struct md_core_options *opts, struct md_target *t,
			      struct md_core_info *info)
{
	struct parsed ps;
	memset(&ps, 0, sizeof(ps));
	struct map_list l = { 0 };
	struct extents ex = { 0 };
	struct md_error *err = read_header(&c->src, &ps);
	if (!err)
		err = read_phdrs(c, &ps);
	if (!err)
		err = parse_notes(c, &ps);
	if (err)
		goto out;

	c->snapshot = ps.md[MD_NT_INFO & 0xf].desc && ps.md[MD_NT_MAPS & 0xf].desc && ps.md[MD_NT_PAGES & 0xf].desc &&
		      ps.md[MD_NT_ROLLUP & 0xf].desc && ps.md[MD_NT_STATUS & 0xf].desc;
	c->gdb = ps.has_gdb_note || (!c->snapshot && ps.eh.e_shnum > 1);
	const char *exe = exe_name(&ps);
	if (exe && !(c->exe_in_core = strdup(exe))) {
		err = &md_error_nomem;
		goto out;
	}
	if (ps.prpsinfo) {
		struct elf_prpsinfo pi;
		memcpy(&pi, ps.prpsinfo, sizeof(pi));
		info->pid = pi.pr_pid;
		snprintf(info->comm, sizeof(info->comm), "%.*s", (int)sizeof(pi.pr_fname), pi.pr_fname);
	} else if (ps.n_prstatus) {
		struct elf_prstatus pr;
		memcpy(&pr, ps.prstatus[0].desc, sizeof(pr));
		info->pid = pr.pr_pid;
	}

	if (c->snapshot) {
		info->residency = MD_CORE_RESIDENCY_PAGEMAP;
		info->producer = "memdissect snapshot";
		if ((err = decode_snapshot(c, &ps, t, info)))
			goto out;
	} else {
		if ((err = read_extents(&c->src, &ex)))
			goto out;
		bool holes = core_has_holes(c, &ex);
		info->producer = c->gdb ? "gdb gcore" : ps.prpsinfo ? "kernel" : "unknown";
		info->residency = holes && !c->gdb ? MD_CORE_RESIDENCY_HOLES : MD_CORE_RESIDENCY_UNKNOWN;
		if ((err = maps_from_segments(c, &ps, &l)))
			goto out;
		if ((err = name_special(&l, &ps, exe)))
			goto out;
		if ((err = residency_from_core(c, &l, &ex, info->residency, info)))
			goto out;
		t->mappings = l.v;
		t->n_mappings = l.n;
		l.v = NULL;
		l.n = 0;
		const char *shown = opts && opts->exe ? opts->exe : exe;
		if (shown && !(info->exe = strdup(shown))) {
			err = &md_error_nomem;
			goto out;
		}
	}
	t->pid = info->pid;
	if ((err = read_threads(&ps, t, info)))
		goto out;
	decode_thread_names(&ps, t);
	if (!c->snapshot) {
		mark_stacks(t);
		infer_totals(t, info);
	}

	if (c->exe_override && (err = check_exe_override(c, t, info)))
		goto out;
	if (!(opts && opts->no_symbols)) {
		/* Over our own mapping when there is one: libelf's would not survive a shrinking core. */
		c->elf = c->src.buf ? elf_memory((char *)(uintptr_t)c->src.buf, (size_t)c->src.size)
				    : elf_begin(c->src.fd, ELF_C_READ, NULL);
		struct md_symbols_options sopts = {
			.debuginfo_disabled = c->debuginfo_disabled,
			.sysroot = c->sysroot,
			.exe = c->exe_override,
		};
		struct md_error *serr = c->elf ? md_symbols_create_core(c->elf, &sopts, &t->symbols)
					       : md_error_create(MD_ERR_BAD_FILE, "libelf: %s", elf_errmsg(-1));
		if (serr) {
			info_note(info, "core: no symbols: %s", serr->message);
			md_error_destroy(serr);
			t->symbols = NULL;
		}
		check_files(t, &ps, info);
	}
out:
	md_mappings_free(l.v, l.n);
	free(ex.v);
	parsed_deinit(&ps);
	return err;
}

static struct md_error *open_src(struct core_src src, const char *path, const struct md_core_options *opts,
				 struct md_target **target_ret, struct md_core_info *info_ret)
{
	struct md_target *t = calloc(1, sizeof(*t));
	struct core *c = calloc(1, sizeof(*c));
	if (!t || !c) {
		free(t);
		free(c);
		md_coremap_deinit(&src.map);
		if (src.fd >= 0)
			close(src.fd);
		return &md_error_nomem;
	}
	c->src = src;
	t->source = MD_SOURCE_CORE;
	t->ops = &core_ops;
	t->impl = c;
	t->debuginfo_disabled = opts && opts->debuginfo_disabled;
	c->debuginfo_disabled = t->debuginfo_disabled;
	md_target_cache_drop(t);
	struct md_core_info info;
	memset(&info, 0, sizeof(info));
	struct md_error *err = NULL;
	if ((path && !(c->path = strdup(path))) ||
	    (opts && opts->sysroot && opts->sysroot[0] && !(c->sysroot = strdup(opts->sysroot))) ||
	    (opts && opts->exe && !(c->exe_override = strdup(opts->exe))))
		err = &md_error_nomem;
	if (!err)
		err = build(c, opts, t, &info);
	if (err) {
		md_target_destroy(t);
		md_core_info_deinit(&info);
		return err;
	}
	*target_ret = t;
	*info_ret = info;
	return NULL;
}

struct md_error *md_core_open(const char *path, const struct md_core_options *opts, struct md_target **target_ret,
			      struct md_core_info *info_ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return md_error_create(MD_ERR_BAD_FILE, "%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return md_error_create(MD_ERR_BAD_FILE, "%s: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return md_error_create(MD_ERR_BAD_FILE, "%s: is a directory, not a core file", path);
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return md_error_create(MD_ERR_BAD_FILE, "%s: not a regular file (a core must be saved to a file first)",
				       path);
	}
	struct core_src src = { .fd = fd, .size = (uint64_t)st.st_size };
	/* pread by default; MEMDISSECT_CORE_MMAP=1 maps the core and walks it in place. Both give
	 * the same report (tests/check_core.c). Measured on the merged tree (docs/performance.md,
	 * bench/cores.sh): since the heap walk streams a core through a reader thread, pread
	 * is as fast or faster (5M-chunk snapshot 0.23 s against 0.39-0.46 s mapped: the walk's page
	 * faults on the mapping cost more than the kernel's copy from the page cache). */
	const char *mmap_env = getenv("MEMDISSECT_CORE_MMAP");
	struct md_error *merr = !(mmap_env && strcmp(mmap_env, "1") == 0) ? NULL : md_coremap_init(&src.map, fd, src.size);
	if (merr)
		md_error_destroy(merr); /* read with pread */
	else if (src.map.base)
		src.buf = src.map.base;
	(void)elf_version(EV_CURRENT);
	struct md_error *err = open_src(src, path, opts, target_ret, info_ret);
	if (err && err->code == MD_ERR_BAD_FILE)
		return md_error_wrap(err, "%s", path);
	return err;
}

struct md_error *md_core_open_buffer(const void *buf, size_t len, const struct md_core_options *opts,
				     struct md_target **target_ret, struct md_core_info *info_ret)
{
	struct core_src src = { .fd = -1, .buf = buf, .size = len };
	(void)elf_version(EV_CURRENT);
	return open_src(src, NULL, opts, target_ret, info_ret);
}
