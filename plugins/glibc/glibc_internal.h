/* The glibc plugin's own state, shared by glibc.c (entry points), walk.c (the walker),
 * quiesce.c (consistency check) and report.c (the JSON object). */
#ifndef MD_GLIBC_INTERNAL_H
#define MD_GLIBC_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glibc_layout.h"
#include "glibc_locate.h"
#include "memdissect/plugin.h"

/* Bounds against hostile memory. */
#define GL_MAX_ARENAS 4096
#define GL_MAX_HEAPS 65536           /* per arena: 4 TiB of 64 MiB heaps */
#define GL_MAX_FINDINGS_PER_ARENA 64 /* emitted; the rest are only counted */
#define GL_MAX_CACHED (4ULL << 20)   /* tcache entries, and fastbin candidates per arena */
#define GL_DEEP_BIN_CHECK_MAX 20000 /* chase bin lists when this few chunks are binned */
#define GL_DEEP_BIN_CHECK_BYTES (8ULL << 20) /* ... and the arena fits the target read cache */
#define GL_CHASE_MS 1500.0         /* time budget for chasing bin lists in one walk */
#define GL_MAX_THREAD_REPORTS 16

/* An arena never used for an allocation (main_arena of a process whose malloc was never called,
 * or whose allocations all went to jemalloc or mmap) is "unused": nothing to walk, not corrupt. */
enum gl_arena_state { GL_ARENA_OK, GL_ARENA_INCONSISTENT, GL_ARENA_CORRUPT, GL_ARENA_UNUSED };

/* Size-class histogram: chunk sizes [2^(k+4), 2^(k+5)) for k = 0..15, and >= 1 MiB for k = 16. */
#define GL_HIST_CLASSES 17
enum gl_hist_kind { GL_HIST_LIVE, GL_HIST_FREE, GL_HIST_CACHED, GL_HIST_KINDS };
struct gl_hist {
	uint64_t count[GL_HIST_KINDS], bytes[GL_HIST_KINDS];
	uint64_t max_size; /* last class only: its largest chunk, reported as its upper bound */
};

static inline unsigned gl_hist_class(uint64_t chunk_size)
{
	if (chunk_size < 32)
		return 0;
	unsigned k = 63u - (unsigned)__builtin_clzll(chunk_size) - 4u;
	return k < GL_HIST_CLASSES ? k : GL_HIST_CLASSES - 1;
}

static inline void gl_hist_add(struct gl_hist *h, enum gl_hist_kind kind, uint64_t chunk_size)
{
	unsigned k = gl_hist_class(chunk_size);
	struct gl_hist *c = &h[k];
	c->count[kind]++;
	c->bytes[kind] += chunk_size;
	if (k == GL_HIST_CLASSES - 1 && chunk_size > c->max_size)
		c->max_size = chunk_size;
}

struct gl_mallinfo {
	uint64_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
};

/* One walkable piece of an arena: the sbrk heap, or one heap_info heap. */
struct gl_heap {
	uint64_t start;        /* heap_info (non-main) or mp_.sbrk_base */
	uint64_t first;        /* first chunk */
	uint64_t end;          /* h + h->size, or the top chunk's end (main) */
	uint64_t mprotect_end; /* h + h->mprotect_size (non-main); == end for main */
	uint64_t chunks;       /* chunks walked */
	bool has_top;
};

struct gl_arena {
	int index;
	uint64_t address;
	bool is_main;
	enum gl_arena_state state;
	char *inconsistent_why; /* malloc'd: which thread, where */

	/* From the malloc_state. */
	uint32_t mutex, flags, attached_threads;
	uint64_t top, top_size, last_remainder, system_mem, max_system_mem, next, next_free;
	uint64_t top_span; /* bytes of top inside its heap (top_size unless corrupt) */
	uint64_t fastbins[GLIBC_NFASTBINS];
	uint64_t bins[2 * GLIBC_NBINS - 2];

	struct gl_heap *heaps; /* oldest first */
	size_t n_heaps;

	/* From the fastbin lists (as int_mallinfo counts them). */
	uint64_t fast_count, fast_bytes;
	/* From the heap walk. */
	uint64_t bin_count, bin_bytes;        /* free chunks (next's PREV_INUSE clear) */
	uint64_t inuse_count, live_bytes;     /* usable bytes of in-use chunks */
	uint64_t overhead_bytes;              /* headers of in-use chunks */
	uint64_t tcache_count, tcache_bytes;  /* tcache chunks found here */
	uint64_t fastwalk_count, fastwalk_bytes; /* fastbin chunks found here by the walk */
	struct gl_hist hist[GL_HIST_CLASSES];    /* chunks by size class (top and metadata excluded) */
	uint64_t metadata_bytes;              /* heap headers, arena struct, tcache structs, fenceposts */
	uint64_t unknown_bytes;               /* skipped after corruption or over pages not resident */
	uint64_t nonresident_stops;           /* reads refused because the page is swapped out */
	uint64_t releasable_range_bytes;      /* what malloc_trim(0) would madvise/sbrk, resident or not */
	/* From the bin lists, when they were chased. */
	bool bins_chased;
	uint64_t list_bin_count, list_bin_bytes;
	/* fd/bk edge sums: equal when every fd link has its bk twin; the same for the
	 * fd_nextsize/bk_nextsize ring of large-bin chunks. */
	uint64_t edge_fd, edge_bk;
	uint64_t nedge_fd, nedge_bk;
	uint64_t nextsize_links; /* free large chunks with nextsize pointers (large-bin size leaders) */
	bool nextsize_chased;

	struct gl_mallinfo mi;
	unsigned findings, findings_emitted;
};

struct gl_tcache {
	int32_t tid;
	uint64_t tls_address; /* &tcache in the thread */
	uint64_t address;     /* the tcache_perthread_struct (user pointer), 0 when none */
	uint64_t count, bytes;
	bool valid;
};

/* A function's code range and whether it is malloc code (quiesce.c). */
struct gl_fn_range {
	uint64_t start, end;
	bool in_malloc;
};
#define GL_MAX_FN_RANGES 1024

#define GL_REPORT_FRAMES 12
struct gl_thread_in_malloc {
	int32_t tid;
	uint64_t pcs[GL_REPORT_FRAMES]; /* its stack, innermost first */
	size_t n_pcs;
	char *where; /* "malloc_consolidate <- _int_free <- free <- main", made from pcs when needed */
	uint64_t arena; /* thread_arena of that thread, 0 when unknown */
};

enum gl_phase { GL_PHASE_RING, GL_PHASE_TCACHE, GL_PHASE_SORT, GL_PHASE_HEAPS, GL_PHASE_FASTBINS,
		GL_PHASE_BINS, GL_PHASE_MMAPPED, GL_PHASE_COUNT };

struct glibc_state {
	struct glibc_roots roots;
	struct glibc_layout layout;
	const char *symbols; /* "dwarf", "symtab", "heuristic" */
	char version[16];

	/* Layout check: DWARF against the built-in table. layout_known: DWARF was not read because
	 * the module's build-id is one whose DWARF is known to match the table (layout.c). */
	bool layout_checked;
	bool layout_known;
	unsigned layout_mismatches;
	char layout_diff[512];

	/* Optional addresses for the consistency check. */
	uint64_t list_lock, free_list_lock;
	bool have_thread_arena_tls;
	uint64_t thread_arena_tls_offset;
	uint64_t malloc_lo, malloc_hi; /* code range of the exported malloc.c functions */
	struct gl_fn_range *fn_ranges; /* functions seen in backtraces, for the consistency check */
	size_t n_fn_ranges, cap_fn_ranges;

	/* mp_ and friends, read in the pause. */
	uint64_t trim_threshold, top_pad, mmap_threshold, arena_test, arena_max;
	uint64_t thp_pagesize, hp_pagesize;
	uint64_t n_mmaps, n_mmaps_max, no_dyn_threshold, mmapped_mem, max_mmapped_mem, sbrk_base;
	uint64_t tcache_bins, tcache_max_bytes, tcache_count;
	uint64_t global_max_fast, tcache_key;
	bool have_tcache_key;
	uint64_t heap_max;

	struct gl_arena *arenas;
	size_t n_arenas;
	struct gl_tcache *tcaches;
	size_t n_tcaches;

	/* Mmapped chunks (found by scanning). */
	int mmap_group;
	uint64_t mmapped_count, mmapped_bytes, mmapped_live_bytes;
	unsigned mmapped_findings;
	struct gl_hist mmapped_hist[GL_HIST_CLASSES];

	/* Membership of tcache chunks and tcache structs: chunk address | GL_IN_* flags, sorted. */
	uint64_t *cached;
	size_t n_cached, cap_cached;

	/* Consistency. */
	bool quiescent_checked, last_quiescent;
	char why[256];
	struct gl_thread_in_malloc in_malloc[GL_MAX_THREAD_REPORTS];
	size_t n_in_malloc;
	bool inconsistent_walk;

	bool walked;
	unsigned findings_total;
	double phase_ms[GL_PHASE_COUNT];
	double read_ms;      /* of which inside md_target_read, streaming the heaps */
	uint64_t read_bytes; /* bytes streamed */
	char *walk_note; /* malloc'd: why the walk stopped early */
};

#define GL_IN_TCACHE 2ULL
#define GL_IN_TCSTRUCT 4ULL
#define GL_IN_FLAGS 0xfULL

/* locate_symbols.c */
bool glibc_parse_version(const char *s, size_t len, int *major_ret, int *minor_ret);
struct md_error *glibc_version_from_symbols(struct md_target *t, const struct md_module *mod,
					    int *major_ret, int *minor_ret);

/* walk.c */
struct md_error *gl_read_params(struct glibc_state *s, struct md_target *t);
/* Read the arena ring (s->arenas, without heaps), silently: for the quiescence check. */
struct md_error *gl_read_arenas(struct glibc_state *s, struct md_target *t);
struct md_error *gl_walk(struct glibc_state *s, struct md_target *t, struct md_sink *sink, bool inconsistent);
void gl_state_reset(struct glibc_state *s);

/* quiesce.c */
bool gl_quiescent(struct glibc_state *s, struct md_target *t, char *why, size_t why_len);
void gl_quiesce_setup(struct glibc_state *s, struct md_target *t);
/* The plugin's must_run: th is inside malloc code (a stopped thread outside it holds no arena
 * lock that glibc takes in malloc code; fork's lock-all is the exception, and quiescent() sees
 * it as a held mutex with nobody inside). */
bool gl_must_run(struct glibc_state *s, struct md_target *t, const struct md_thread *th);
/* Name the frames of the threads the last check found inside malloc (symbolizing is slow:
 * only for a walk that will say why it is inconsistent). */
void gl_describe_in_malloc(struct glibc_state *s, struct md_target *t);

/* report.c */
struct md_error *gl_report(struct glibc_state *s, const struct md_sink *sink, struct md_node *node);

#endif
