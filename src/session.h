/* An analysis session: what a series of analyses (watch's samples) loads once and keeps. The
 * plugins are dlopened once for the session; each watched process keeps its modules' symbol
 * tables, DWARF and struct layouts between samples (attach/symbols.c refreshes the module list
 * at every attach and keeps a module while it is mapped from the same file: same name, range,
 * device, inode, size and mtime, so the same build-id); and the answers of symbol and struct
 * lookups are shared by build-id between processes (another process of the same program, a
 * library loaded again elsewhere). */
#ifndef MEMDISSECT_SESSION_H
#define MEMDISSECT_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "analyze.h"

struct md_session;

/* Cumulative figures of a session, for watch's JSON ("session") and MEMDISSECT_DEBUG_SESSION. */
struct md_session_counters {
	uint64_t analyses;
	uint64_t plugin_dlopens; /* plugins dlopened (each once per session) */
	uint64_t symbol_tables;  /* modules' symbol tables read */
	uint64_t dwarf;          /* modules' DWARF opened */
	uint64_t modules_read;   /* modules set up from their files */
	uint64_t modules_kept;   /* modules an attach found already known */
	uint64_t cached_lookups; /* lookups answered by build-id from what another process read */
	uint64_t modules;        /* modules of the process of the last analysis */
};

/* opts is copied (its strings must outlive the session). */
struct md_error *md_session_create(const struct md_analyze_options *opts, struct md_session **session_ret);
void md_session_destroy(struct md_session *session);
/* md_analyze_live with the session's plugins and the process's kept symbols. The report does not
 * point into the session's symbols; it may point into its plugins: deinit it before destroying
 * the session. */
struct md_error *md_session_analyze_live(struct md_session *session, pid_t pid, struct md_analysis *a);
/* Between analyses (watch's waits): let go of the threads an attach could not detach (they were
 * in uninterruptible sleep) that have stopped since. */
void md_session_idle(struct md_session *session);
/* A process no longer watched: its symbols are freed. */
void md_session_forget(struct md_session *session, pid_t pid);
void md_session_get_counters(const struct md_session *session, struct md_session_counters *ret);

#endif
