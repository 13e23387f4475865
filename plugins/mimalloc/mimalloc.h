/* The mimalloc plugin (Debian 12's libmimalloc.so.2, mimalloc 2.0.9, x86-64): shared
 * declarations. Layouts and roots are those of shared/docs/tcmalloc-mimalloc.md, Part B;
 * docs/mimalloc.md says what was checked. */
#ifndef MD_MIMALLOC_H
#define MD_MIMALLOC_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/plugin.h"

#define MI_SLICE_SIZE ((uint64_t)64 << 10)
#define MI_SEGMENT_SIZE ((uint64_t)32 << 20)
#define MI_SEGMENT_MASK (MI_SEGMENT_SIZE - 1)
#define MI_SLICES_PER_SEGMENT 512
#define MI_HUGE_BLOCK_SIZE ((uint64_t)1 << 31)
#define MI_BIN_COUNT 75
#define MI_MAX_HEAPS 256
#define MI_MAX_PAGES_PER_QUEUE 1000000
#define MI_CACHE_SLOTS 1024

/* mi_page_t / mi_slice_t: 80 bytes in the release build; 96 with MI_ENCODE_FREELIST (MI_SECURE >= 3
 * or MI_DEBUG >= 1), where keys[2] sit at +40 and the fields after them move by 16. The offsets
 * below from +40 on are the release build's; add mi_roots.pg_shift. */
#define MI_PAGE_SIZE 80
#define MI_PAGE_SIZE_ENCODED 96
#define MI_PG_KEYS 40
#define MI_PG_SLICE_COUNT 0
#define MI_PG_SLICE_OFFSET 4
#define MI_PG_CAPACITY 10
#define MI_PG_RESERVED 12
#define MI_PG_FREE 16
#define MI_PG_USED 24
#define MI_PG_XBLOCK_SIZE 28
#define MI_PG_LOCAL_FREE 32
#define MI_PG_XTHREAD_FREE 40
#define MI_PG_XHEAP 48
#define MI_PG_NEXT 56

/* mi_segment_t */
#define MI_SEG_HEADER 264
#define MI_SEG_READ(stride) (MI_SEG_HEADER + 513 * (size_t)(stride))
#define MI_SEG_READ_MAX MI_SEG_READ(MI_PAGE_SIZE_ENCODED)
#define MI_SEG_ALLOW_DECOMMIT 32
#define MI_SEG_DECOMMIT_EXPIRE 40
#define MI_SEG_DECOMMIT_MASK 48
#define MI_SEG_COMMIT_MASK 112
#define MI_SEG_ABANDONED_NEXT 176
#define MI_SEG_USED 208
#define MI_SEG_COOKIE 216
#define MI_SEG_SLICES 224
#define MI_SEG_INFO_SLICES 232
#define MI_SEG_KIND 240
#define MI_SEG_SLICE_ENTRIES 248
#define MI_SEG_THREAD_ID 256

/* mi_heap_t and mi_tld_t */
#define MI_HEAP_SIZE 3064
#define MI_HEAP_TLD 0
#define MI_HEAP_PAGES 1040
#define MI_HEAP_DELAYED 2840
#define MI_HEAP_THREAD_ID 2848
#define MI_HEAP_COOKIE 2864
#define MI_HEAP_KEYS 2872
#define MI_HEAP_NEXT 3048
#define MI_TLD_HEAP_BACKING 16
#define MI_TLD_HEAPS 24

/* Options: mi_option_desc_t is 32 bytes, value first. */
#define MI_OPT_SIZE 32
#define MI_OPT_DECOMMIT_DELAY 15
#define MI_OPT_ALLOW_DECOMMIT 22
#define MI_OPT_SEGMENT_DECOMMIT_DELAY 23
#define MI_OPT_DECOMMIT_EXTEND_DELAY 24

/* Load-relative roots of one known build. */
struct mi_build {
	const char *build_id;
	const char *version;
	const char *build; /* "release" or "secure" */
	uint64_t tls_got, heap_main, tld_main, heap_empty, options, segment_map, map_words;
	uint64_t cache_inuse, cache, abandoned, abandoned_visited, stats_main, td_cache;
};

struct mi_roots {
	const struct md_module *module;
	const struct mi_build *b; /* the build-id table's entry, or &own */
	struct mi_build own;      /* a static link: the roots from the executable's .symtab */
	uint64_t bias;
	bool code_checked; /* mi_version, mi_usable_size and mi_is_in_heap_region agree with the table */
	bool linked_static; /* mimalloc is part of the executable (libmimalloc.a), found by its .symtab */
	bool encoded;       /* MI_ENCODE_FREELIST: 96-byte pages, free lists encoded with the page keys */
	bool tls_symtab;    /* _mi_heap_default's offset in the module's TLS block is tls_offset */
	uint64_t tls_offset;
	unsigned page_stride, pg_shift; /* sizeof(mi_page_t); 16 when encoded, else 0 */
	char module_path[512];
};

/* One heap found through a thread's TLS or a tld's heap list. */
struct mi_heap {
	uint64_t addr, thread_id;
	int32_t tid;
	bool backing, main;
	uint64_t pages, used_blocks, used_bytes, remote_blocks, remote_bytes;
	uint64_t delayed_blocks;
};

struct mi_walk {
	bool initialised;
	unsigned page_stride;
	bool decommit_keeps_pages; /* MI_SECURE: decommit is mprotect(PROT_NONE), RSS stays */
	uint64_t guard_pages, missing_guards; /* secure build: segments' guard pages PROT_NONE or not */
	uint64_t cookie;
	int64_t decommit_delay, extend_delay, segment_decommit_delay, allow_decommit;
	struct mi_heap heaps[MI_MAX_HEAPS];
	unsigned n_heaps;
	uint64_t segments, huge_segments, abandoned_segments, cached_segments, bad_segments;
	uint64_t pages, abandoned_pages, empty_pages, bad_pages;
	uint64_t used_blocks, used_bytes, remote_blocks, remote_bytes, free_blocks, free_bytes;
	uint64_t committed_bytes, reserved_bytes, thread_data;
	uint64_t allocator_committed, allocator_reserved; /* _mi_stats_main */
	uint64_t abandoned_used_blocks, abandoned_used_bytes;
	/* Resident free memory by what would release it (bytes). */
	uint64_t pending_decommit, unmarked_free, empty_page_bytes, cached_resident, abandoned_free;
	uint64_t decommitted_resident; /* free slices already decommitted yet resident (MI_SECURE) */
	uint64_t release_bytes;
	uint64_t findings;
	bool truncated, inconsistent;
	bool unsafe_point; /* the pause found no safe point: count mismatches may be races */
	/* for the walker fuzzer: the first segments and pages seen */
	uint64_t seen_segments[4], seen_pages[6];
	unsigned n_seen_segments, n_seen_pages;
};

struct mi_state {
	struct mi_roots roots;
	struct mi_walk walk;
	bool walked;
};

/* Where the walker fuzzer (fuzz/fuzz_mimalloc_walk.c) aims its mutations, after one walk of
 * the unmutated image: the main heap (its tld, its page queues), the abandoned list head, the
 * segment cache's in-use bits, the first segments (headers, slices) and pages (mi_page_t). */
static inline size_t mi_fuzz_anchors(const struct mi_state *s, uint64_t *anchors)
{
	const struct mi_roots *r = &s->roots;
	const struct mi_walk *w = &s->walk;
	size_t n = 0;
	anchors[n++] = r->bias + r->b->heap_main;
	anchors[n++] = r->bias + r->b->heap_main + MI_HEAP_PAGES;
	anchors[n++] = r->bias + r->b->tld_main;
	anchors[n++] = r->bias + r->b->abandoned;
	anchors[n++] = r->bias + r->b->cache_inuse;
	for (unsigned i = 0; i < w->n_seen_segments && n < 16; i++)
		anchors[n++] = w->seen_segments[i];
	for (unsigned i = 0; i < w->n_seen_pages && n < 16; i++)
		anchors[n++] = w->seen_pages[i];
	return n;
}

struct md_error *mi_locate(struct md_target *t, struct mi_roots *roots_ret);
struct md_error *mi_walk_run(struct md_target *t, const struct mi_roots *r, struct md_sink *sink, bool inconsistent,
			     struct mi_walk *w);

#endif
