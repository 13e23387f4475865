/* The report: plain data built once after the pause. Renderers read only this. */
#ifndef MEMDISSECT_REPORT_H
#define MEMDISSECT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "memdissect/error.h"
#include "memdissect/node.h"
#include "memdissect/target.h"

/* Every resident page of the target is in exactly one class. */
enum md_class {
	MD_CLASS_LIVE,
	MD_CLASS_FREE,
	MD_CLASS_METADATA,
	MD_CLASS_STACK,
	MD_CLASS_FILE,
	MD_CLASS_SHARED,
	MD_CLASS_ANON_OTHER,
	MD_CLASS_COUNT,
};
const char *md_class_name(enum md_class c); /* "live", "free", ..., "anon_other" */

struct md_report_region {
	uint64_t start, end, offset;
	char perms[5];          /* "rw-p" */
	char *path;             /* NULL when anonymous; a real " (deleted)" at the end is the file's name */
	bool deleted;           /* the backing file was deleted (maps said " (deleted)", and it is) */
	enum md_map_kind kind;
	const char *kind_name;  /* "heap", "anon", "stack", "file", "shared", "special" */
	const char *allocator;  /* allocator claiming pages here, or NULL */
	/* An unanalysed allocator or runtime the mapping belongs to, where the evidence is clear
	 * ("go heap arena"); its pages stay anon_other until a plugin walks them. */
	const char *owner;
	uint64_t rss_bytes, pss_bytes, swap_bytes;
	uint64_t classes[MD_CLASS_COUNT]; /* bytes; sum == rss_bytes */
	uint64_t wss_bytes;     /* working set (attach --wss): referenced bytes in the window */
};

/* One allocator region (arena heap, sbrk heap, mmapped chunks, extent span) as the classifier
 * saw it, with a downsampled page map for the drainability map. */
enum md_cell_part {
	MD_CELL_LIVE,        /* resident pages holding live bytes */
	MD_CELL_FREE,        /* resident pages holding only free memory (drainable) */
	MD_CELL_METADATA,    /* resident pages holding only allocator bookkeeping */
	MD_CELL_NONRESIDENT, /* allocator pages not resident (released or never touched) */
	MD_CELL_OTHER,       /* resident pages the allocator did not describe */
	MD_CELL_PART_COUNT,
};
struct md_map_cell {
	uint32_t pages[MD_CELL_PART_COUNT];
	uint32_t releasable_pages;  /* resident pages malloc_trim / purge would release */
	uint64_t pinned_free_bytes; /* free bytes on live pages (fragmentation) */
};
struct md_alloc_region {
	uint64_t start, end;
	const char *allocator; /* plugin name */
	char *label;           /* "arena 1 heap 0", "sbrk heap", ... */
	int group;             /* the plugin's arena index, -1 none */
	uint64_t pages[MD_CELL_PART_COUNT];
	uint64_t releasable_bytes;
	uint64_t pinned_free_bytes;
	uint32_t pages_per_cell; /* cells cover [start, end) in order, each this many pages */
	size_t n_cells;          /* at most MD_MAX_CELLS */
	struct md_map_cell *cells;
};
#define MD_MAX_CELLS 512

struct md_report_finding {
	const char *allocator;  /* NULL for the core */
	const char *severity;   /* "info", "warning", "corrupt" */
	uint64_t address;
	int group;
	char *message;
};

/* An allocator or runtime found in the target (by its modules and symbols) that no plugin walks:
 * its memory is in anon_other, and the report says so instead of "nothing to do". */
struct md_unanalysed_allocator {
	char *name;     /* "tcmalloc", "mimalloc", "musl", "pymalloc", "go", "hotspot", "v8", "unknown" */
	char *module;   /* the module that holds it (path as mapped) */
	char *evidence; /* "module libtcmalloc_minimal.so.4 exports tc_malloc" */
};

struct md_report {
	int schema_version; /* 1 */
	struct {
		int32_t pid;
		char comm[64];
		char *exe;
		const char *source;     /* "live" or "core" */
		/* How page residency was known: "pagemap" (live, or a memdissect snapshot), "holes"
		 * (a kernel core's sparse file), "unknown" (a core without holes). */
		const char *residency;
		double pause_ms;        /* how long the target was stopped (0 for cores) */
		double total_ms;        /* wall time of the whole analysis */
		size_t threads;
		unsigned attach_retries; /* whole-process re-stops asked by plugins for consistency */
		unsigned attach_polls;   /* rounds of letting only the threads inside an allocator run */
	} target;
	struct {
		uint64_t rss_bytes, pss_bytes, uss_bytes, swap_bytes, vm_size_bytes;
		uint64_t anon_bytes, file_bytes, shmem_bytes; /* status RssAnon/RssFile/RssShmem */
		uint64_t status_vm_rss_bytes;                  /* VmRSS as /proc/PID/status said */
		uint64_t hugetlb_bytes; /* smaps_rollup Private_Hugetlb + Shared_Hugetlb: not in Rss */
		/* smaps LazyFree: MADV_FREE'd pages still resident (the kernel reclaims them under
		 * pressure, without a write-back), in all mappings and in allocator-claimed ones. */
		uint64_t lazy_free_bytes, allocator_lazy_free_bytes;
	} memory;
	uint64_t classes[MD_CLASS_COUNT];
	/* Pages whose per-page evidence disagreed with smaps and were moved to match it. */
	uint64_t reconciled_pages;
	/* Bytes of live allocations on pages that are not resident (allocated, never touched):
	 * part of the live heap, not of RSS. */
	uint64_t untouched_live_bytes;

	struct md_report_region *regions;
	size_t n_regions;

	/* Allocator regions in address order (the drainability map). */
	struct md_alloc_region *alloc_regions;
	size_t n_alloc_regions;

	struct {
		bool valid;
		uint64_t mem_total_bytes, mem_available_bytes, mem_free_bytes, cached_bytes, swap_total_bytes, swap_free_bytes;
	} system;
	struct {
		bool valid;
		char *path;
		int version; /* 1 or 2 */
		uint64_t usage_bytes;
		uint64_t limit_bytes; /* UINT64_MAX when unlimited */
	} cgroup;

	/* The working set (attach --wss, src/wss.c): what the target referenced during a window
	 * after the attach. classes[] joins it with the page classes (attribution says how). */
	struct {
		bool valid;
		const char *method;      /* "smaps_referenced" */
		const char *attribution; /* "per_mapping": each mapping's share split by its classes */
		double window_s;
		uint64_t bytes;          /* every mapping, also those made after the attach */
		uint64_t classes[MD_CLASS_COUNT];
	} wss;

	/* JSON array of allocator objects filled by the plugins ({"name": "glibc", ...}). */
	struct md_node *allocators;
	struct md_report_finding *findings;
	size_t n_findings;
	/* Lines that say what could not be done ("glibc: main_arena not found: ..."). */
	char **notes;
	size_t n_notes;
	/* Allocators and runtimes present that no plugin walked (each also makes the report partial). */
	struct md_unanalysed_allocator *unanalysed;
	size_t n_unanalysed;
	bool partial; /* some allocator was present but could not be analysed */
};

void md_report_init(struct md_report *r);
void md_report_deinit(struct md_report *r);
struct md_error *md_report_add_note(struct md_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Renderers. */
#define MD_MAX_WIDTH 1000 /* wider terminals (COLUMNS=2147483647) are drawn 1000 columns wide */
struct md_render_options {
	bool color;     /* ANSI colour (only when the output is a tty, unless forced) */
	int width;      /* terminal width; 0 = 100 */
	bool map;       /* full drainability map instead of the summary */
	int top;        /* how many mappings to list in the text report (default 15) */
};
struct md_error *md_render_text(const struct md_report *r, const struct md_render_options *opts, FILE *out);
/* The JSON document of docs/json.md; built as a node so tests and diff can read it back. */
struct md_error *md_report_to_node(const struct md_report *r, struct md_node **node_ret);
struct md_error *md_render_json(const struct md_report *r, FILE *out);

/* Human units: "1.50 GiB", "210 MiB", "12.0 KiB", "512 B". buf of at least 16 bytes. */
const char *md_format_bytes(uint64_t bytes, char *buf, size_t len);

#endif
