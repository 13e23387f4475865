/* The allocator plugin ABI. A plugin is a shared object in plugins/<name>/ that exports
 *     const struct md_plugin *md_plugin_entry(void);
 * The host refuses a plugin whose abi_version differs from MD_PLUGIN_ABI_VERSION.
 * Plugins call the exported md_target_*, md_sink_*, md_node_* and md_error_* functions of the
 * host (the executable is linked with -rdynamic) and nothing else of it. */
#ifndef MEMDISSECT_PLUGIN_H
#define MEMDISSECT_PLUGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/node.h"
#include "memdissect/target.h"

/* ABI 2 added must_run, ABI 3 finish, ABI 4 host functions only (md_target_read_pages,
 * md_target_concurrent_reads, md_target_view, md_target_member_bits, md_sink_group_stats_sized,
 * md_sink_span_bytes): a plugin that calls them says abi_version 4, so that an older host refuses
 * it by its version rather than by a missing symbol. A plugin built for an older ABI (the table
 * without the later members) is still accepted. */
#define MD_PLUGIN_ABI_VERSION 4
#define MD_PLUGIN_ABI_OLDEST 1
#define MD_PLUGIN_ENTRY "md_plugin_entry"

/* What a span of allocator memory holds. */
enum md_span_kind {
	MD_SPAN_LIVE,     /* bytes of an allocation in use (usable size) */
	MD_SPAN_FREE,     /* free memory the allocator keeps (binned chunk, top, free region, dirty extent) */
	MD_SPAN_CACHED,   /* free but parked in a thread cache or fastbin: counts as free memory */
	MD_SPAN_METADATA, /* allocator bookkeeping: arena, heap header, tcache struct, base blocks */
	MD_SPAN_OVERHEAD, /* per-allocation header/padding bytes next to live data */
	/* Not a class: pages in [start, end) that the allocator would hand back to the OS now
	 * (malloc_trim / purge). The classifier counts the resident pages among them. */
	MD_SPAN_RELEASABLE,
	MD_SPAN_KIND_COUNT,
};

enum md_finding_severity { MD_FINDING_INFO, MD_FINDING_WARNING, MD_FINDING_CORRUPT };

struct md_sink;

/* Declare an allocator region (an arena heap, the sbrk heap, a group of mmapped chunks, an extent
 * span). group is the plugin's index of the arena it belongs to (-1: none). label is copied.
 * Regions of one plugin must not overlap. A region inside another plugin's LIVE span is a layered
 * claim (its spans class its pages; docs/plugins.md); one overlapping another plugin's region any
 * other way is rejected as a finding. Returns the region's id, or -1 when out of memory. */
int md_sink_region(struct md_sink *sink, uint64_t start, uint64_t end, int group, const char *label);
/* Attribute [start, end) to kind, in arena group. Spans of one plugin must not overlap, except
 * MD_SPAN_RELEASABLE which overlays the others. Spans may cover pages that are not resident. */
void md_sink_span(struct md_sink *sink, enum md_span_kind kind, uint64_t start, uint64_t end, int group);
/* Record a finding ("chunk at 0x... has size 0x... past the heap end"). */
void md_sink_finding(struct md_sink *sink, enum md_finding_severity severity, uint64_t address,
		     int group, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Count of findings so far: a walker bounds its own noise with it. */
unsigned md_sink_finding_count(const struct md_sink *sink);

/* span_bytes[] of struct md_group_stats holds the first MD_GROUP_SPAN_KINDS span kinds, fixed
 * for ever: a kind added to enum md_span_kind later does not change the struct, and its bytes
 * are read with md_sink_span_bytes. */
#define MD_GROUP_SPAN_KINDS 6

/* What the classifier made of one arena group (or of the whole plugin with group -1),
 * available to the plugin's report() after the walk. Page figures count resident pages only.
 * Fields may be added at the end in a later ABI: md_sink_group_stats_sized fills as much of the
 * caller's struct as both know (zeros beyond), md_sink_group_stats the ABI 1-3 struct below. */
struct md_group_stats {
	uint64_t span_bytes[MD_GROUP_SPAN_KINDS]; /* bytes per span kind, resident or not */
	uint64_t live_pages, free_pages, metadata_pages; /* resident pages by class */
	uint64_t nonresident_pages;   /* allocator pages not resident (released or never touched) */
	uint64_t pinned_free_bytes;   /* free bytes on resident pages that also hold live bytes */
	uint64_t releasable_bytes;    /* resident bytes inside MD_SPAN_RELEASABLE spans */
};
void md_sink_group_stats(const struct md_sink *sink, int group, struct md_group_stats *stats_ret);
/* ABI 4: the same into a struct of size bytes (sizeof the caller's struct md_group_stats). */
void md_sink_group_stats_sized(const struct md_sink *sink, int group, void *stats_ret, size_t size);
/* ABI 4: bytes of one span kind in group (-1: the whole plugin), any kind the host knows; 0 for a
 * kind it does not know. */
uint64_t md_sink_span_bytes(const struct md_sink *sink, int group, enum md_span_kind kind);

struct md_plugin_options {
	bool debuginfo_disabled; /* --debuginfo=off */
	unsigned verbosity;
};

struct md_plugin {
	uint32_t abi_version; /* MD_PLUGIN_ABI_VERSION */
	const char *name;     /* "glibc", "jemalloc" */
	const char *description;

	/* Before the pause. Find the allocator's state: modules, symbols, layouts.
	 * *state_ret = NULL with a NULL error means "this allocator is not in the target".
	 * An error means it is there but cannot be analysed (the message says what was tried). */
	struct md_error *(*open)(struct md_target *t, const struct md_plugin_options *opts,
				 void **state_ret);
	/* In the pause, before walk: is every thread outside the allocator and every lock free?
	 * Return false with a one-line reason in why (size why_len) to ask for a retry. */
	bool (*quiescent)(void *state, struct md_target *t, char *why, size_t why_len);
	/* In the pause: walk the allocator's structures, emitting regions, spans and findings.
	 * inconsistent is true when the last quiescence check failed after all retries. */
	struct md_error *(*walk)(void *state, struct md_target *t, struct md_sink *sink,
				 bool inconsistent);
	/* After the target runs again: fill this allocator's report object (pre-filled with
	 * "name"). Must not read target memory. */
	struct md_error *(*report)(void *state, const struct md_sink *sink, struct md_node *allocator);
	void (*close)(void *state);

	/* ABI 2, optional (NULL: the host does not ask). In the pause, after quiescent() returned
	 * false: must this thread run on for the allocator to reach a safe point (it is inside
	 * allocator code, or it owns an allocator lock)? The host lets the threads that must run on
	 * go, with every other thread stopped, re-stops them every fraction of a millisecond and asks
	 * again for each of them, until none must; then it calls quiescent() again. It must be cheap
	 * (registers and a backtrace of this one thread) and it must not depend on threads that have
	 * not run since quiescent(). When quiescent() says no and no thread must run on (a lock is
	 * held and nobody in sight holds it), every thread runs for a moment and is stopped again. */
	bool (*must_run)(void *state, struct md_target *t, const struct md_thread *thread);

	/* ABI 3, optional (NULL: walk emits everything). After the pause, once the target runs
	 * again, before the classifier sums up: emit into sink what walk() gathered and left for
	 * later (ordering free objects and turning them into spans needs no stopped target). Must
	 * not read target memory; the mappings and page residency are still those of the pause.
	 * Called once after each walk() that ran, also when walk() returned an error. */
	struct md_error *(*finish)(void *state, struct md_target *t, struct md_sink *sink);
};

typedef const struct md_plugin *(*md_plugin_entry_fn)(void);

/* The standard figures of the allocator object (report()): keys and helpers. */
#include "memdissect/figures.h"

#endif
