/* Allocators and runtimes the target holds that no plugin walks (unanalysed.c). */
#ifndef MEMDISSECT_UNANALYSED_H
#define MEMDISSECT_UNANALYSED_H

#include "memdissect/report.h"
#include "memdissect/target.h"

/* An allocator or runtime recognised by a module name prefix or by an exported symbol (either
 * is enough); known_allocators.c. */
struct md_known_allocator {
	const char *name;
	const char *what;            /* for the note: "the Go runtime's heap" */
	const char *tool;            /* what the runtime offers to see into its own heap */
	bool replaces_malloc;        /* it interposes the C library's malloc */
	const char *module_prefixes[3];
	const char *symbols[4];
};
const struct md_known_allocator *md_known_allocators(size_t *n_ret);
/* By name, NULL when unknown. */
const struct md_known_allocator *md_known_allocator(const char *name);
const char *md_known_allocator_tool(const char *name);
/* Module name prefixes of the dynamic loaders, NULL-terminated. */
const char *const *md_known_loaders(void);

/* Owners of mappings of unanalysed runtimes that the evidence makes clear (reg->owner). */
void md_known_attribute_regions(struct md_report *r);

/* After the plugins reported: fill r->unanalysed, add a note per allocator found, set partial. */
struct md_error *md_find_unanalysed(struct md_target *t, struct md_report *r);

#endif
