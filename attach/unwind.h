/* Stack unwinding of a stopped thread (libunwind-ptrace). Internal to attach/. */
#ifndef MEMDISSECT_UNWIND_H
#define MEMDISSECT_UNWIND_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

/* Return addresses of thread tid, innermost first (pcs[0] is the pc), at most max of them.
 * The caller has ptrace-stopped tid. Registers come from ptrace; memory (stack, .eh_frame) is
 * read through t with md_target_read, which never faults in a page the target does not have
 * (libunwind-ptrace's own PTRACE_PEEKDATA would). t may be NULL (then PEEKDATA is used). */
struct md_error *md_unwind_ptrace(struct md_target *t, pid_t tid, uint64_t *pcs, size_t max, size_t *n_ret);

/* Free the unwinder state kept in t (md_target_destroy calls it). */
void md_unwind_release(struct md_target *t);

#endif
