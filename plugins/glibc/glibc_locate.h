/* Where glibc's malloc state lives in a target, however it was found. Two producers:
 * glibc_locate_symbols() (DWARF / .symtab, locate_symbols.c) and glibc_locate_heuristic()
 * (no debug info: version from the file, disassembly, static image scan; locate_heuristic.c). */
#ifndef MD_GLIBC_LOCATE_H
#define MD_GLIBC_LOCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

struct glibc_layout; /* glibc_layout.h: offsets per version */

struct glibc_roots {
	const struct md_module *module; /* libc.so.6, or the executable when linked statically */
	int version_major, version_minor; /* 2, 36; 0 when unknown */
	uint64_t main_arena;      /* run-time address */
	uint64_t mp;              /* &mp_ */
	uint64_t global_max_fast; /* &global_max_fast, 0 when unknown (then 0x80 is assumed) */
	uint64_t tcache_key;      /* &tcache_key (2.34+), 0 when unknown */
	/* The thread's tcache pointer lives at a TLS address, found one of two ways: */
	bool have_tcache_tls_offset; /* offset in the module's TLS block (symbol st_value) */
	uint64_t tcache_tls_offset;  /*   -> md_target_tls_address(t, module, thread, offset) */
	uint64_t tcache_got_slot;    /* or: address of a GOT slot holding tpoff (TPOFF64): */
				     /*   &tcache = fs_base + (int64_t)*slot; 0 when unknown */
	enum md_symbol_source source; /* how main_arena was found: DWARF, SYMTAB or HEURISTIC */
	char how[256];               /* one line: what was used ("symtab of build-id ...") */
};

/* DWARF and .symtab (including a separate debug file), unless debug info is disabled.
 * MD_ERR_NOT_FOUND when the symbols are not there. */
struct md_error *glibc_locate_symbols(struct md_target *t, const struct md_module *mod,
				      struct glibc_roots *roots_ret);
/* Without debug info: glibc version from the file, main_arena via malloc_trim/mallinfo2
 * disassembly or the static image in .data (RELA or RELR), mp_ via __libc_free or its
 * initializer, the tcache TLS GOT slot via TPOFF64 relocations and disassembly, tcache_key.
 * Every guess is validated against target memory before it is returned. On failure the
 * message says what was tried and what is missing. */
struct md_error *glibc_locate_heuristic(struct md_target *t, const struct md_module *mod,
					struct glibc_roots *roots_ret);
/* glibc version of the module's file: __nptl_version, the banner "release version 2.NN",
 * GLIBC_2.NN version definitions. */
struct md_error *glibc_detect_version(struct md_target *t, const struct md_module *mod,
				      int *major_ret, int *minor_ret);

#endif
