/* Allocators and runtimes the target holds that no plugin walks (unanalysed.c). */
#ifndef MEMDISSECT_UNANALYSED_H
#define MEMDISSECT_UNANALYSED_H

#include "memdissect/report.h"
#include "memdissect/target.h"

/* After the plugins reported: fill r->unanalysed, add a note per allocator found, set partial. */
struct md_error *md_find_unanalysed(struct md_target *t, struct md_report *r);

#endif
