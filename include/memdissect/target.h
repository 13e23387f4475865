/* The target: what a live process or a core file looks like to everything after attach/.
 * Plugins and the classifier use only this API: no ptrace, /proc or libdw types leak out. */
#ifndef MEMDISSECT_TARGET_H
#define MEMDISSECT_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"

#define MD_PAGE_SIZE ((uint64_t)4096)
#define MD_PAGE_SHIFT 12
#define MD_PAGE_DOWN(a) ((uint64_t)(a) & ~(MD_PAGE_SIZE - 1))
#define MD_PAGE_UP(a) (((uint64_t)(a) + MD_PAGE_SIZE - 1) & ~(MD_PAGE_SIZE - 1))

/* Per-page residency bits, from pagemap (live) or the core's holes (offline). */
enum md_page_bits {
	MD_PAGE_PRESENT = 0x01,   /* a PTE maps a page */
	MD_PAGE_SWAPPED = 0x02,   /* the page is in swap */
	MD_PAGE_EXCLUSIVE = 0x04, /* mapped once only (pagemap bit 56) */
	MD_PAGE_FILE = 0x08,      /* page cache or shared-anon page (pagemap bit 61) */
	MD_PAGE_ZERO = 0x10,      /* present but the shared zero page: not in RSS */
	MD_PAGE_UNKNOWN = 0x80,   /* residency unknown (core without holes) */
};
/* A page counted in RSS: present and not the zero page. */
#define MD_PAGE_COUNTED(bits) (((bits) & (MD_PAGE_PRESENT | MD_PAGE_ZERO)) == MD_PAGE_PRESENT)

enum md_perm {
	MD_PERM_READ = 1,
	MD_PERM_WRITE = 2,
	MD_PERM_EXEC = 4,
	MD_PERM_SHARED = 8, /* MAP_SHARED ('s' in maps) */
};

enum md_map_kind {
	MD_MAP_ANON,    /* private anonymous */
	MD_MAP_HEAP,    /* [heap] (brk) */
	MD_MAP_STACK,   /* [stack] or a mapping holding a thread's stack pointer */
	MD_MAP_FILE,    /* private file-backed */
	MD_MAP_SHARED,  /* MAP_SHARED of a file, shmem, SysV shm, memfd, shared anon */
	MD_MAP_SPECIAL, /* [vdso] [vvar] [vsyscall] and other kernel-provided mappings */
};

/* Figures of one mapping from smaps, all in bytes. */
struct md_smaps {
	bool valid;
	uint64_t size, kernel_page_size, rss, pss, pss_dirty;
	uint64_t shared_clean, shared_dirty, private_clean, private_dirty;
	uint64_t referenced, anonymous, lazy_free, anon_huge_pages, shmem_pmd_mapped, file_pmd_mapped;
	uint64_t shared_hugetlb, private_hugetlb, swap, swap_pss, locked;
	bool hugetlb; /* VmFlags contains "ht" */
	char vmflags[96];
};

struct md_mapping {
	uint64_t start, end, offset;
	uint32_t perms; /* enum md_perm */
	uint32_t dev_major, dev_minor;
	uint64_t inode;
	char *path;   /* NULL when anonymous; "[heap]" etc. kept; " (deleted)" stripped */
	bool deleted; /* the backing file was deleted */
	enum md_map_kind kind;
	struct md_smaps smaps;
	/* One byte of enum md_page_bits per page, (end - start) / MD_PAGE_SIZE of them;
	 * NULL when no page of the mapping is present or swapped. */
	uint8_t *pages;
	/* RSS pages that smaps counts but the per-page evidence did not show (rare: huge or
	 * special pages); the classifier gives them the mapping's own class. */
	uint64_t extra_rss_pages;
};

/* x86-64 registers, in the order of struct user_regs_struct. */
enum md_reg {
	MD_REG_R15, MD_REG_R14, MD_REG_R13, MD_REG_R12, MD_REG_RBP, MD_REG_RBX, MD_REG_R11,
	MD_REG_R10, MD_REG_R9, MD_REG_R8, MD_REG_RAX, MD_REG_RCX, MD_REG_RDX, MD_REG_RSI,
	MD_REG_RDI, MD_REG_ORIG_RAX, MD_REG_RIP, MD_REG_CS, MD_REG_EFLAGS, MD_REG_RSP, MD_REG_SS,
	MD_REG_FS_BASE, MD_REG_GS_BASE, MD_REG_DS, MD_REG_ES, MD_REG_FS, MD_REG_GS,
	MD_REG_COUNT,
};

struct md_thread {
	int32_t tid;
	char comm[16];
	uint64_t regs[MD_REG_COUNT];
	bool regs_valid;
};

enum md_symbol_source {
	MD_SYMSRC_NONE,
	MD_SYMSRC_HEURISTIC, /* found by disassembly or structure scan */
	MD_SYMSRC_DYNSYM,    /* .dynsym of the module itself */
	MD_SYMSRC_SYMTAB,    /* .symtab of the module or of its separate debug file */
	MD_SYMSRC_DWARF,     /* DWARF debug info */
};
const char *md_symbol_source_name(enum md_symbol_source src); /* "dwarf", "symtab", ... */

enum md_symbol_type { MD_SYM_OBJECT, MD_SYM_FUNC, MD_SYM_TLS, MD_SYM_OTHER };

struct md_symbol {
	uint64_t address;  /* run-time address; for MD_SYM_TLS the offset in the module's TLS block */
	uint64_t size;
	enum md_symbol_type type;
	enum md_symbol_source source;
};

/* A loaded ELF module (executable, shared library, vdso). */
struct md_module {
	const char *name;      /* path as mapped (after --sysroot for cores: the file opened) */
	uint64_t start, end;   /* address range of its mappings */
	uint64_t bias;         /* load bias: run-time address = bias + link-time vaddr */
	const char *build_id;  /* lower-case hex, or NULL */
	bool has_debuginfo;    /* a separate debug file or DWARF was found (and allowed) */
};

enum md_target_source { MD_SOURCE_LIVE, MD_SOURCE_CORE };

struct md_target;

enum md_target_source md_target_source(const struct md_target *t);
int32_t md_target_pid(const struct md_target *t);

const struct md_mapping *md_target_mappings(const struct md_target *t, size_t *n_ret);
/* The mapping containing addr, or NULL (binary search). */
const struct md_mapping *md_target_find_mapping(const struct md_target *t, uint64_t addr);
/* Residency bits of the page holding addr; 0 when unmapped or not present. */
uint8_t md_target_page_bits(const struct md_target *t, uint64_t addr);

const struct md_thread *md_target_threads(const struct md_target *t, size_t *n_ret);

/* True once SIGINT/SIGTERM/SIGHUP asked memdissect to stop: the target must be let go at once.
 * Cheap (one load); long loops over target memory call it, and md_target_read fails with
 * MD_ERR_INTERRUPTED from then on. */
bool md_target_interrupted(const struct md_target *t);

/* Read target memory. The whole range must lie in readable mappings (else MD_ERR_FAULT with the
 * first bad address). Pages that are not present read as zeros without touching the target;
 * a swapped page is never read (MD_ERR_NOT_RESIDENT). Reads are cached while the target is
 * stopped; the cache is dropped whenever the target may have run. */
struct md_error *md_target_read(struct md_target *t, uint64_t addr, void *buf, size_t len);
/* The same for a few bytes inside one page, without filling a read-cache block: for probes
 * scattered over memory that is otherwise not read (a header at many page starts), where a
 * cached read would copy 256 KiB around each one. */
struct md_error *md_target_read_probe(struct md_target *t, uint64_t addr, void *buf, size_t len);
/* Target memory in place, without a copy: a pointer to [addr, addr+len) when the target holds
 * those bytes where memdissect can point at them (a mapped core file), all within one mapping
 * and every page present; NULL otherwise, and the caller uses md_target_read. The bytes stay
 * valid until the target is destroyed. A core file that shrinks under us reads as zeros from
 * there on, its reads fail and its report is refused (attach/coremap.c). */
const uint8_t *md_target_view(struct md_target *t, uint64_t addr, size_t len);
/* Whole pages [addr, addr + npages * 4096), addr page aligned, npages <= 64, as one window:
 * pages that cannot be read (unmapped, swapped out, a copy that failed) are zero-filled and
 * flagged in *bad_ret (bit i: page i) instead of failing the read; pages not present read as
 * zeros. Fails only for what is not one page's fault (interrupted, exited, no memory). Goes
 * around the read cache: when md_target_concurrent_reads(t), several threads may call it at
 * once, beside one thread that uses the rest of this header (md_target_read and the others are
 * not thread-safe among themselves). */
struct md_error *md_target_read_pages(struct md_target *t, uint64_t addr, void *buf, size_t npages,
				      uint64_t *bad_ret);
/* Whether md_target_read_pages may run on several threads at once (live targets). */
bool md_target_concurrent_reads(const struct md_target *t);
/* Convenience: read one 64-bit little-endian word. */
struct md_error *md_target_read_u64(struct md_target *t, uint64_t addr, uint64_t *value_ret);

/* Modules and symbols. module_name matches a module whose file name (basename) starts with it
 * ("libc.so", "libjemalloc.so"); NULL means the main executable. */
const struct md_module *md_target_modules(const struct md_target *t, size_t *n_ret);
const struct md_module *md_target_find_module(const struct md_target *t, const char *module_name);
const struct md_module *md_target_module_at(const struct md_target *t, uint64_t addr);
/* Look up a symbol, local symbols of the separate debug file included (unless debug info is
 * disabled). Returns MD_ERR_NOT_FOUND when absent. */
struct md_error *md_target_symbol(struct md_target *t, const struct md_module *mod, const char *name,
				  struct md_symbol *sym_ret);
/* Name of the function containing pc ("malloc_consolidate"), or NULL. Valid until the target
 * is destroyed. */
const char *md_target_symbolize(struct md_target *t, uint64_t pc, uint64_t *offset_ret);
/* DWARF layout of struct_name (a struct, union or class with a size) in the module's debug info:
 * the byte offset and size of member. struct_name may be qualified, "tcmalloc::Span" or
 * "ns::Outer::Inner" (namespaces and enclosing classes; "(anonymous namespace)::T", and a plain
 * "T" is also found inside an anonymous namespace). Members of anonymous struct/union members and
 * of C++ base classes count as the struct's own. For a bit-field, the offset is that of its
 * storage unit (DWARF 2-4) or of the byte holding its first bit (DWARF 5): use
 * md_target_member_bits. MD_ERR_NOT_FOUND when there is no DWARF or no member. */
struct md_error *md_target_member(struct md_target *t, const struct md_module *mod,
				  const char *struct_name, const char *member,
				  uint64_t *offset_ret, uint64_t *size_ret);
struct md_error *md_target_struct_size(struct md_target *t, const struct md_module *mod,
				       const char *struct_name, uint64_t *size_ret);
/* The same member in bits: bit_offset from the start of the struct, bit 0 the lowest bit of its
 * first byte (x86-64 order: a value's bits are (word >> (bit_offset % 64)) of the little-endian
 * word at byte bit_offset / 64 * 8, when they do not cross it), and bit_size. For a member that is
 * no bit-field: offset * 8 and size * 8. DW_AT_data_bit_offset (DWARF 4+) and the older
 * DW_AT_bit_offset (counted from the storage unit's most significant bit) both read this way. */
struct md_error *md_target_member_bits(struct md_target *t, const struct md_module *mod,
				       const char *struct_name, const char *member,
				       uint64_t *bit_offset_ret, uint64_t *bit_size_ret);
/* Address of a TLS variable of mod in thread, offset its place in the module's TLS block (what
 * md_target_symbol gives for MD_SYM_TLS). A module in static TLS: fs_base - tls_offset(mod) +
 * offset. A module in dynamic TLS (dlopen'ed, glibc): the block the thread's DTV holds for the
 * module's l_tls_modid, + offset; MD_ERR_NOT_FOUND when the thread has not allocated that block
 * yet (it never touched a variable of the module). x86-64 glibc only (docs/plugins.md). */
struct md_error *md_target_tls_address(struct md_target *t, const struct md_module *mod,
				       const struct md_thread *thread, uint64_t offset,
				       uint64_t *address_ret);
/* Return addresses of a thread's stack, innermost first (pc first). */
struct md_error *md_target_backtrace(struct md_target *t, const struct md_thread *thread,
				     uint64_t *pcs, size_t max, size_t *n_ret);
/* The module's ELF file on disk, to be opened by the caller (libelf, capstone). */
const char *md_target_module_file(const struct md_target *t, const struct md_module *mod);
/* The separate debug file found for mod (under /usr/lib/debug, or a debuginfod client's cache
 * when $DEBUGINFOD_URLS named a server: then *from_debuginfod_ret is true), or NULL. Ask after
 * a lookup that needed it. from_debuginfod_ret may be NULL. */
const char *md_target_module_debug_file(const struct md_target *t, const struct md_module *mod,
					bool *from_debuginfod_ret);
/* True when the user forbade debug info (--debuginfo=off): plugins must then use heuristics. */
bool md_target_debuginfo_disabled(const struct md_target *t);

#endif
