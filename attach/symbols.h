/* Symbol resolution over libdwfl, for a live process or a core. Internal to attach/: the rest
 * of memdissect sees it only through md_target_symbol / _member / _tls_address / _symbolize. */
#ifndef MEMDISSECT_SYMBOLS_H
#define MEMDISSECT_SYMBOLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

struct md_symbols;

/* What the symbols of a session cost: how often a module's tables were really read (a watch
 * reads them at its first sample only) and how many modules a refresh kept or had to read anew. */
struct md_symbols_counters {
	uint64_t symbol_tables; /* a module's symbol table read (dwfl_module_getsymtab) and hashed */
	uint64_t dwarf;         /* dwfl_module_getdwarf: a module's DWARF opened */
	uint64_t modules_read;  /* modules set up from their files */
	uint64_t modules_kept;  /* modules a refresh kept with all that was learnt of them */
	uint64_t cached;        /* lookups answered by the cache by build-id, without the module's tables */
};

/* What the symbols of every process of a session share: the answers of symbol and DWARF struct
 * lookups, keyed by the module's build-id (without one: its file's path, device, inode, size and
 * mtime). A second process of the same program, or a library loaded again at another address,
 * gets them without reading the module's tables. Bounded (65536 answers); it must outlive every
 * md_symbols made with it. */
struct md_symbols_cache;
struct md_error *md_symbols_cache_create(struct md_symbols_cache **cache_ret);
void md_symbols_cache_destroy(struct md_symbols_cache *cache);

struct md_symbols_options {
	bool debuginfo_disabled; /* use only the module's own .symtab/.dynsym; no debug files, no DWARF */
	struct md_symbols_counters *counters; /* the session's, or NULL: counted in the object itself */
	struct md_symbols_cache *cache;       /* the session's, or NULL: none */
	const char *sysroot;     /* cores: prefix for file names (NULL = none) */
	const char *exe;         /* cores: the executable, when NT_FILE's path is wrong */
};

/* Report the modules of a live process (dwfl_linux_proc_report). Does not stop the process. */
struct md_error *md_symbols_create_pid(pid_t pid, const struct md_symbols_options *opts,
				       struct md_symbols **symbols_ret);
/* Report the modules of a core file (dwfl_core_file_report); elf is an Elf * of the core. */
struct md_error *md_symbols_create_core(void *core_elf, const struct md_symbols_options *opts,
					struct md_symbols **symbols_ret);
/* The same live process again (a later watch sample): re-read its module list. A module still
 * mapped from the same file (same name and range, same file identity: device, inode, size and
 * mtime, hence the same build-id) keeps its symbol table, DWARF and struct layouts; modules gone
 * are dropped, new ones (a dlopen) are set up. MD_ERR_BAD_DATA when the process exec'd or a kept
 * module's file changed on disk: symbols is then unusable, destroy it and create it anew. */
struct md_error *md_symbols_refresh_pid(struct md_symbols *symbols, pid_t pid);
void md_symbols_destroy(struct md_symbols *symbols);

const struct md_module *md_symbols_modules(const struct md_symbols *symbols, size_t *n_ret);
const struct md_module *md_symbols_find_module(const struct md_symbols *symbols, const char *module_name);
const struct md_module *md_symbols_module_at(const struct md_symbols *symbols, uint64_t addr);
const char *md_symbols_module_file(const struct md_symbols *symbols, const struct md_module *mod);
/* The separate debug file libdwfl found for mod (a /usr/lib/debug path, or the debuginfod
 * client's cache), or NULL when none was looked for or found. */
const char *md_symbols_module_debug_file(const struct md_symbols *symbols, const struct md_module *mod,
					 bool *from_debuginfod_ret);
/* While blocked (the target is stopped), debug files come from disk only. */
void md_symbols_block_network(struct md_symbols *symbols, bool blocked);

struct md_error *md_symbols_lookup(struct md_symbols *symbols, const struct md_module *mod,
				   const char *name, struct md_symbol *sym_ret);
const char *md_symbols_symbolize(struct md_symbols *symbols, uint64_t pc, uint64_t *offset_ret);
struct md_error *md_symbols_member(struct md_symbols *symbols, const struct md_module *mod,
				   const char *struct_name, const char *member,
				   uint64_t *offset_ret, uint64_t *size_ret);
/* The same member's position in bits (md_target_member_bits). */
struct md_error *md_symbols_member_bits(struct md_symbols *symbols, const struct md_module *mod,
					const char *struct_name, const char *member,
					uint64_t *bit_offset_ret, uint64_t *bit_size_ret);
struct md_error *md_symbols_struct_size(struct md_symbols *symbols, const struct md_module *mod,
					const char *struct_name, uint64_t *size_ret);
/* The module's static TLS offset (l_tls_offset): fs_base - tls_offset + st_value is the address
 * of a TLS variable. read_u64 reads target memory (used for the TPOFF64 GOT slot). */
struct md_error *md_symbols_tls_offset(struct md_symbols *symbols, const struct md_module *mod,
				       struct md_target *t, int64_t *tls_offset_ret);
/* Address of the TLS variable at offset in mod's block for the thread with that thread pointer
 * (fs_base): static TLS through md_symbols_tls_offset, else (a module with dynamic TLS) through
 * the thread's DTV (MD_ERR_NOT_FOUND when the thread has no block of mod yet). */
struct md_error *md_symbols_tls_address(struct md_symbols *symbols, const struct md_module *mod,
					struct md_target *t, int32_t tid, uint64_t thread_pointer,
					uint64_t offset, uint64_t *address_ret);

#endif
