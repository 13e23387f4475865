/* Page reference bits of a live process, for the working set (src/wss.c). Writing clear_refs
 * changes the target's page-aging state (the accessed bits the kernel's reclaim reads), never its
 * memory; it needs the same rights as ptrace. */
#ifndef MEMDISSECT_REFS_H
#define MEMDISSECT_REFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

/* Clear the referenced bits of every page of pid (/proc/PID/clear_refs "1"). */
struct md_error *md_refs_clear(pid_t pid);
/* /proc/PID/smaps now: each mapping's Referenced is what was referenced since the clear. */
struct md_error *md_refs_read(pid_t pid, struct md_mapping **maps_ret, size_t *n_ret);
/* Whether the kernel has idle page tracking (/sys/kernel/mm/page_idle/bitmap). */
bool md_refs_have_idle_bitmap(void);

#endif
