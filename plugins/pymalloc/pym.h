/* CPython's small-object allocator (obmalloc, "pymalloc"), 3.8-3.13: where its state is
 * (pym_locate.c), the walk of arenas, pools and blocks with the type census (pym_walk.c), the
 * entry point and report (pym_plugin.c). Layouts and figures: docs/pymalloc.md. */
#ifndef MD_PYM_H
#define MD_PYM_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/plugin.h"

#define PYM_NCLASSES 32        /* 16..512 bytes, ALIGNMENT 16 */
#define PYM_POOL_OVERHEAD 48   /* sizeof(struct pool_header) */
#define PYM_POOL_MAX 16384     /* the largest POOL_SIZE (3.10+) */
#define PYM_ARENA_OBJECT 48    /* sizeof(struct arena_object) */
#define PYM_MAX_STATES 64      /* interpreters with their own obmalloc state walked */
#define PYM_MAX_TYPES 4096     /* distinct types kept by the census */
#define PYM_MAX_ARENAS (1u << 20)

/* Which allocator the interpreter's object domain uses. */
enum pym_mode {
	PYM_MODE_PYMALLOC,  /* obmalloc: walked */
	PYM_MODE_DEBUG,     /* PYTHONMALLOC=*_debug / -X dev: debug hooks in front */
	PYM_MODE_MALLOC,    /* PYTHONMALLOC=malloc: pymalloc is off */
	PYM_MODE_MIMALLOC,  /* PYTHONMALLOC=mimalloc (3.13) */
	PYM_MODE_FREE_THREADED, /* 3.13t: CPython's mimalloc, never obmalloc */
	PYM_MODE_UNKNOWN,
};
const char *pym_mode_name(enum pym_mode m);

/* One obmalloc state found in the pause: its arenas pointer, maxarenas, counters. */
struct pym_state_loc {
	int64_t interp_id;          /* -1 when unknown (3.8-3.11: one global state) */
	uint64_t arenas_addr;       /* &arenas (a pointer to the arena_object array) */
	uint64_t maxarenas_addr;    /* &maxarenas (u32) */
	uint64_t raw_addr;          /* &raw_allocated_blocks; 0 when unknown */
	uint64_t current_addr, ntimes_addr, highwater_addr; /* arena counters (size_t); 0 unknown */
};

struct pym_roots {
	const struct md_module *module; /* the module exporting _PyRuntime (python3.11 or libpython) */
	unsigned major, minor, micro;
	uint64_t runtime;           /* &_PyRuntime */
	uint64_t pytype_type;       /* &PyType_Type */
	uint64_t arena_size, pool_size;
	enum md_symbol_source source;
	/* 3.8-3.11: the one global state (statics). */
	struct pym_state_loc global;
	uint64_t allocated_blocks_3_8; /* &_Py_AllocatedBlocks (3.8), else 0 */
	/* Object allocator: &_PyObject (3.8-3.11) or &_PyRuntime.allocators.standard.obj. */
	uint64_t obj_allocator;
	uint64_t fn_pymalloc, fn_debug, fn_mimalloc; /* function addresses when known, else 0 */
	/* 3.12/3.13 interpreter list. */
	uint64_t off_interp_head, off_interp_main, off_next, off_id, off_flags, off_obmalloc;
	bool obmalloc_is_pointer;   /* 3.13 */
	uint64_t off_gc_generations; /* PyInterpreterState.gc.generations; 0: no GC-list census */
	bool have_flags;
	bool free_threaded;
	bool builtin_matches_dwarf; /* when DWARF was there to compare */
	bool dwarf_compared;
	char how[320];
	char mismatch[256];         /* the offsets where DWARF and the table differ */
	bool micro_known;
};

struct md_error *pym_locate(struct md_target *t, bool no_debug, struct pym_roots *roots_ret);

struct pym_class {
	uint64_t pools, blocks_in_use, blocks_available;
};

struct pym_stats {
	uint64_t arenas_current, bytes_allocated_blocks, bytes_available_blocks, unused_pools;
	uint64_t bytes_pool_headers, bytes_quantization, bytes_arena_alignment, allocated_blocks;
	uint64_t raw_allocated_blocks;
	struct pym_class classes[PYM_NCLASSES];
};

struct pym_arena {
	int state;                  /* index into walk->states */
	uint32_t index;
	uint64_t address, pool_address;
	uint64_t live_blocks, live_bytes, used_pools, free_pools;
	int group;
};

struct pym_type {
	uint64_t addr;              /* 0: empty slot */
	int8_t valid;               /* 1 type, -1 not a type */
	uint64_t flags;
	char name[80];
	uint64_t count, bytes;
};

struct pym_walk {
	enum pym_mode mode;
	char mode_detail[160];
	size_t n_states;
	struct pym_walked_state {
		struct pym_state_loc loc;
		struct pym_stats stats;
		bool counters_known;
		uint64_t narenas_current, ntimes_allocated, highwater;
		uint64_t maxarenas;
	} states[PYM_MAX_STATES];
	struct pym_stats total;
	struct pym_arena *arenas;
	size_t n_arenas, cap_arenas;
	struct pym_type *types;     /* open addressing, PYM_MAX_TYPES * 2 slots */
	size_t n_types;
	uint64_t census_objects, census_bytes, unidentified_blocks, unidentified_bytes;
	uint64_t interps[PYM_MAX_STATES]; /* interpreters whose GC lists are walked */
	size_t n_interps;
	uint64_t gc_nodes, gc_outside_objects, gc_outside_bytes; /* GC-list census outside pymalloc */
	uint64_t gc_exits_ignored;  /* _gc_next values leaving an arena that lead to no object */
	bool gc_walked, gc_broken;
	uint64_t corrupt_pools, corrupt_arenas, findings;
	bool truncated;
	uint64_t arenas_by_helper, arenas_read_again; /* pym_stream.c: arenas done by the helper thread;
						       * arenas the workers left to md_target_read */
	double arenas_ms, gc_ms;                      /* the walk's phases */
};

/* Arenas read and parsed on two cores (pym_stream.c): jobs are taken in order by a helper thread
 * and by the caller's thread inside pym_stream_get; each is read into a slot's buffer and parsed
 * by parse(ctx, worker (0 the caller, 1 the helper), job, data, out) into that slot's output, one
 * of the caller's outs[PYM_STREAM_SLOTS] of out_size bytes, the data in the caller's bufs (one
 * arena each). pym_stream_get(i) gives job i's
 * output and frees the slots of the jobs before it; false: job i was not read (a page the workers
 * leave to md_target_read), and the caller reads and parses it into that output itself. NULL from
 * start: no stream (a core, one arena, no thread). finish returns the jobs the helper did. */
#define PYM_STREAM_SLOTS 4
struct pym_job {
	uint64_t addr, len;
};
typedef void (*pym_parse_fn)(void *ctx, unsigned worker, size_t job, const uint8_t *data, void *out);
struct pym_stream;
struct pym_stream *pym_stream_start(struct md_target *t, const struct pym_job *jobs, size_t n_jobs, size_t buf_size,
				    uint8_t *const bufs[PYM_STREAM_SLOTS], pym_parse_fn parse, void *ctx, void *outs,
				    size_t out_size);
bool pym_stream_get(struct pym_stream *st, size_t i, void **out_ret);
uint64_t pym_stream_finish(struct pym_stream *st);

/* Buffers for the walk, allocated and touched before the pause (pym_open), so that the pause
 * does not take the page faults of fresh memory: one arena per stream slot. */
struct pym_scratch {
	uint8_t *arena[PYM_STREAM_SLOTS];
	uint64_t arena_size;
	void *outs; /* the slots' parse outputs (pym_walk.c) */
};
struct md_error *pym_scratch_init(struct pym_scratch *sc, uint64_t arena_size);
void pym_scratch_deinit(struct pym_scratch *sc);

struct md_error *pym_walk_run(struct md_target *t, const struct pym_roots *r, struct md_sink *sink,
			      bool inconsistent, struct pym_scratch *sc, struct pym_walk *w);
void pym_walk_deinit(struct pym_walk *w);

#endif
