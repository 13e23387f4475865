/* Where jemalloc's global state lives in a target, however it was found:
 *   symbols  .symtab of the module (static link, unstripped .so; names matched by suffix so that a
 *            private namespace prefix is accepted), with DWARF offsets when the module has them;
 *   table    Debian 12's stripped libjemalloc.so.2 (build-id 1d5163c2...), offsets known;
 *   scan     the structural scan of .bss (docs/jemalloc.md §4.2 step 6): the arena 0 pointer
 *            whose arena points back at an emap in .bss whose base is the arena's base.
 * The table is always cross-checked by the scan; a disagreement is an error, not a guess. */
#ifndef MD_JEM_LOCATE_H
#define MD_JEM_LOCATE_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

#include "jem_layout.h"

#define JEM_MAX_GLOBAL_MUTEXES 8

struct jem_roots {
	const struct md_module *module; /* libjemalloc.so.2, or the executable that links it */
	uint64_t arenas;            /* &je_arenas[0] */
	uint32_t arena_slots;       /* slots of je_arenas to read (4095, or narenas_total) */
	uint64_t narenas_total;     /* &narenas_total (u32); 0 when unknown */
	uint64_t emap;              /* &je_arena_emap_global */
	uint64_t index2size;        /* &je_sz_index2size_tab; 0: computed */
	uint64_t bin_infos;         /* &je_bin_infos; 0: one shard per bin */
	uint64_t bin_offsets;       /* &je_arena_bin_offsets; 0: layout.arena_bins + i * bin_size */
	uint64_t malloc_init_state; /* &je_malloc_init_state; 0 when unknown */
	uint64_t manual_arena_base; /* &je_manual_arena_base (u32); 0 when unknown */
	uint64_t narenas_auto;      /* &je_narenas_auto (u32); 0 when unknown */
	uint64_t global_mutexes[JEM_MAX_GLOBAL_MUTEXES];
	unsigned n_global_mutexes;
	/* Code of jemalloc, for the quiescence check (thread PCs / return addresses): the module's
	 * executable segments for libjemalloc, jemalloc's functions for a static link; sorted. */
	struct jem_text_range {
		uint64_t start, end;
	} *text;
	size_t n_text;
	enum md_symbol_source source; /* SYMTAB, DWARF or HEURISTIC */
	struct jem_layout layout;
	char version[80];           /* "5.3.0-0-g54eaed1d..." or "" */
	char how[320];              /* one line: what was used and checked */
};

/* Find jemalloc in the target. NULL with roots_ret->module == NULL: jemalloc is not there.
 * An error: it is there but its state cannot be found or trusted (message says what was tried).
 * Reads target memory (the scan); may run before the pause: jem_roots_validate repeats the
 * checks once the target is stopped. */
struct md_error *jem_locate(struct md_target *t, bool debuginfo_disabled, struct jem_roots *roots_ret);

/* Free what jem_locate allocated in roots (the text ranges). */
void jem_roots_deinit(struct jem_roots *roots);
/* Is pc in jemalloc's code? */
bool jem_in_text(const struct jem_roots *roots, uint64_t pc);

/* Check arenas[0] against the emap/base triangle (and malloc_init_state). */
struct md_error *jem_roots_validate(struct md_target *t, const struct jem_roots *roots);

/* The size-class table of LG_QUANTUM 4 / LG_PAGE 12 builds: usable size of each szind. */
uint64_t jem_index2size_default(unsigned szind);

#endif
