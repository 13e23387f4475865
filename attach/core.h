/* An ELF core file as a target: mappings from PT_LOAD + NT_FILE, residency from the file's holes
 * (or, in memdissect's own snapshots, from the pagemap bits recorded during the pause), threads
 * and registers from NT_PRSTATUS, memory from PT_LOAD with the file-backed parts the core left out
 * read from the files on disk. Internal to attach/ and src/analyze.c. */
#ifndef MEMDISSECT_CORE_H
#define MEMDISSECT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memdissect/error.h"
#include "memdissect/target.h"
#include "procfs.h"

struct md_core_options {
	bool debuginfo_disabled;
	const char *exe;     /* --exe: the executable, when NT_FILE's path is wrong or missing */
	const char *sysroot; /* --sysroot: prefix for every file the core names */
	bool no_symbols;     /* fuzzing: do not hand the core to libdwfl */
};

/* How the per-page residency of the target was obtained. */
enum md_core_residency {
	MD_CORE_RESIDENCY_PAGEMAP, /* memdissect snapshot: pagemap bits taken during the pause */
	MD_CORE_RESIDENCY_HOLES,   /* kernel core written to a file: holes are pages not resident */
	MD_CORE_RESIDENCY_UNKNOWN, /* gdb gcore, piped/compressed/copied core: no holes left */
};

/* What the core says about the process besides mappings and threads. For a memdissect snapshot
 * these are the figures captured during the pause; otherwise they are inferred from the pages. */
struct md_core_info {
	enum md_core_residency residency;
	const char *producer; /* "memdissect snapshot", "kernel", "gdb gcore", "unknown" */
	int32_t pid;
	char comm[64];
	char *exe;
	struct md_smaps rollup;
	struct md_proc_status status;
	uint64_t reconciled_pages;
	double snapshot_pause_ms; /* snapshots: how long the target was stopped */
	unsigned snapshot_retries;
	bool snapshot_consistent;
	/* System figures of the snapshot's machine at the time (snapshots only). */
	bool meminfo_valid;
	struct md_meminfo meminfo;
	bool cgroup_valid;
	struct md_cgroup_memory cgroup;
	/* Kernel/gdb cores: what could not be known. */
	uint64_t not_dumped_file_pages; /* file-backed pages the core left out (residency unknown) */
	uint64_t zero_dumped_pages;     /* residency unknown: dumped pages that are all zeros */
	/* Lines for the report's notes: missing files, residency caveats. */
	char **notes;
	size_t n_notes;
};

/* Open a core file (regular file, never modified). Bad input returns MD_ERR_BAD_FILE with one
 * line saying what is wrong (empty, truncated, not ELF, not a core, foreign architecture,
 * compressed). Missing executable or libraries are not errors: they become notes. */
struct md_error *md_core_open(const char *path, const struct md_core_options *opts,
			      struct md_target **target_ret, struct md_core_info *info_ret);
/* The same from a buffer (the fuzzer): no holes, so residency is "unknown" unless the buffer is a
 * memdissect snapshot. The buffer must outlive the target. */
struct md_error *md_core_open_buffer(const void *buf, size_t len, const struct md_core_options *opts,
				     struct md_target **target_ret, struct md_core_info *info_ret);
void md_core_info_deinit(struct md_core_info *info);
/* True when the core file of t shrank while it was read (attach/coremap.c): what was read from
 * it is not to be trusted. */
bool md_core_shrunk(const struct md_target *t);

/* ---- memdissect's own notes (name "MEMDISSECT"), written by snapshot.c, read here ---- */

#define MD_CORE_NOTE_NAME "MEMDISSECT"
enum md_core_note_type {
	MD_NT_INFO = 0x4d440001,    /* version, pid, pause, retries, comm, exe */
	MD_NT_ROLLUP = 0x4d440002,  /* smaps_rollup */
	MD_NT_STATUS = 0x4d440003,  /* /proc/PID/status */
	MD_NT_MAPS = 0x4d440004,    /* every mapping with its smaps figures */
	MD_NT_PAGES = 0x4d440005,   /* per-page residency bits, run-length encoded */
	MD_NT_THREADS = 0x4d440006, /* thread names */
	MD_NT_SYSTEM = 0x4d440007,  /* /proc/meminfo and the memory cgroup */
};
#define MD_CORE_NOTES_VERSION 1

/* A growable byte buffer for note descriptors. */
struct md_wire {
	uint8_t *data;
	size_t len, cap;
	bool failed; /* out of memory somewhere: the buffer is unusable */
};

struct md_snapshot_meta {
	int32_t pid;
	const char *comm;
	const char *exe;
	double pause_ms;
	unsigned retries;
	bool consistent;
	const struct md_smaps *rollup;
	const struct md_proc_status *status;
	uint64_t reconciled_pages;
	const struct md_meminfo *meminfo; /* NULL when unknown */
	const struct md_cgroup_memory *cgroup; /* NULL when unknown */
};

/* Encode the descriptor of one memdissect note type from the captured target. */
struct md_error *md_core_encode_note(enum md_core_note_type type, const struct md_target *t,
				     const struct md_snapshot_meta *meta, struct md_wire *out);
void md_wire_deinit(struct md_wire *w);

#endif
