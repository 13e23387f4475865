/* The gperftools tcmalloc 2.10 plugin (issue 15): shared declarations. Facts and offsets are in
 * docs/tcmalloc.md (from ../shared/docs/tcmalloc-mimalloc.md Part A, verified on Debian 12). */
#ifndef MD_TCMALLOC_H
#define MD_TCMALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/plugin.h"

/* gperftools 2.10 as Debian builds it (x86-64): 8 KiB pages, PageMap2<35>. */
#define TC_PAGE_SHIFT 13
#define TC_PAGE ((uint64_t)1 << TC_PAGE_SHIFT)
#define TC_MAX_CLASSES 128
#define TC_MAX_PAGES 128
#define TC_LEAF_BITS 18
#define TC_ROOT_LEN ((uint64_t)1 << 17)
#define TC_LEAF_LEN ((uint64_t)1 << TC_LEAF_BITS)

/* Offsets inside static_vars.o's .bss, the same in every Debian .so and in the .a. */
#define TC_LOCK_TO_PAGEHEAP 0x1aa1e8
#define TC_PAGEHEAP_TO_SIZEMAP 0x1a9160
#define TC_PAGEHEAP_TO_CENTRAL 0x183160

/* PageHeap (0x1830d0 bytes). */
#define TC_PH_PAGEMAP 0x80000
#define TC_PH_TAIL 0x180000 /* from here: pagemap allocator, large sets, free lists, stats */
#define TC_PH_LARGE_NORMAL 0x180008
#define TC_PH_LARGE_RETURNED 0x180038
#define TC_PH_FREE 0x180068
#define TC_PH_STATS 0x183068
#define TC_PH_SIZE 0x1830d0

/* Span (48 bytes). */
#define TC_SPAN_SIZE 48
#define TC_SPAN_START 0
#define TC_SPAN_LENGTH 8
#define TC_SPAN_NEXT 16
#define TC_SPAN_PREV 24
#define TC_SPAN_OBJECTS 32
#define TC_SPAN_BITS 40
enum { TC_IN_USE = 0, TC_ON_NORMAL = 1, TC_ON_RETURNED = 2 };

/* CentralFreeList (padded stride 1216). */
#define TC_CFL_STRIDE 1216
#define TC_CFL_SIZE 1168
#define TC_CFL_SIZE_CLASS 8
#define TC_CFL_EMPTY 16
#define TC_CFL_NONEMPTY 64
#define TC_CFL_NUM_SPANS 112
#define TC_CFL_COUNTER 120
#define TC_CFL_SLOTS 128
#define TC_CFL_NSLOTS 64
#define TC_CFL_USED_SLOTS 1152

/* SizeMap (4232 bytes). */
#define TC_SM_SIZE 4232
#define TC_SM_NUM_TO_MOVE 2172
#define TC_SM_CLASS_TO_SIZE 2684
#define TC_SM_CLASS_TO_PAGES 3200
#define TC_SM_NUM_CLASSES 4224

/* ThreadCache (4160 bytes). */
#define TC_TC_SIZE 4160
#define TC_TC_LIST_STRIDE 32
#define TC_TC_BYTES 4096
#define TC_TC_TID 4128
#define TC_TC_NEXT 4144
#define TC_TC_PREV 4152

struct tc_roots {
	const struct md_module *module; /* the .so, or the executable for a static link */
	bool is_static;
	enum md_symbol_source source;
	char version[32];
	char variant[16]; /* "minimal", "full", "and_profiler", "static" */
	char module_path[512];
	uint64_t pageheap, sizemap, central, pageheap_lock, inited, thread_heaps;
	uint64_t tls_offset; /* ThreadCache::threadlocal_data_ in the module's TLS block */
	bool has_tls;
};

/* The tcmalloc figures, named after MallocExtension's numeric properties. */
struct tc_stats {
	uint64_t system_bytes, free_bytes, unmapped_bytes, committed_bytes;
	uint64_t central_bytes, transfer_bytes, thread_bytes, current_allocated;
};

struct tc_walk {
	bool done, inconsistent, truncated;
	struct tc_stats st;
	/* What the walk itself counted. */
	uint64_t spans, in_use_pages, normal_pages, returned_pages, small_spans, large_spans;
	uint64_t leaves, list_normal_pages, list_returned_pages, large_set_nodes;
	uint64_t live_bytes, central_objs_bytes, transfer_objs_bytes, thread_objs_bytes, tail_bytes;
	uint64_t normal_bytes, returned_bytes, metadata_bytes, returned_resident_bytes;
	uint64_t thread_caches, thread_caches_mapped, free_objects, bad_objects;
	unsigned findings;
	bool counters_match;
	struct ctx *deferred; /* what tc_walk_run read, until tc_walk_finish emits it */
};

struct md_error *tc_locate(struct md_target *t, struct tc_roots *r);
bool tc_quiescent(struct md_target *t, const struct tc_roots *r, char *why, size_t why_len);
/* In the pause: read and check every structure (findings go to sink at once). What needs no
 * stopped target is left in w->deferred. */
struct md_error *tc_walk_run(struct md_target *t, const struct tc_roots *r, struct md_sink *sink,
			     bool inconsistent, struct tc_walk *w);
/* After the pause (or right after tc_walk_run): spans, regions and the counter checks into sink;
 * reads no target memory. Nothing to do when tc_walk_run failed. */
void tc_walk_finish(struct md_sink *sink, struct tc_walk *w);
/* Frees what a walk that was not finished left. */
void tc_walk_deinit(struct tc_walk *w);

#endif
