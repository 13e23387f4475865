/* The working set (attach --wss SECONDS, watch --wss SECONDS): after the attach has let the
 * target run again, clear its pages' referenced bits, wait, and read which mappings were
 * referenced (smaps Referenced); joined with the page classes of the report. */
#ifndef MEMDISSECT_WSS_H
#define MEMDISSECT_WSS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "memdissect/report.h"

/* Measure over window_s seconds (the target runs meanwhile) and fill r->wss and each region's
 * wss_bytes. INTERRUPTED on SIGINT/SIGTERM/SIGHUP, EXITED when the target went away. */
struct md_error *md_wss_measure(pid_t pid, double window_s, struct md_report *r);
/* The "wss" object of the JSON report, set on root (report.c calls it when r->wss.valid). */
struct md_error *md_wss_add_node(struct md_node *root, const struct md_report *r);
/* The working-set section of the text report (nothing when r->wss is not valid). */
void md_wss_render_text(const struct md_report *r, bool color, FILE *out);

#endif
