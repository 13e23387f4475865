/* Memory cgroups (v1 and v2) and /proc/meminfo read in full. The parsers take buffers (not
 * NUL-terminated), so tests feed them saved text and the fuzzer feeds them anything. */
#ifndef MEMDISSECT_CGROUPFS_H
#define MEMDISSECT_CGROUPFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/error.h"

/* A flat keyed file: "key value" lines (memory.stat, memory.events, v1 memory.oom_control), or
 * with unit_kb "Key:   value kB" lines (/proc/meminfo, value turned into bytes). Keys keep file
 * order; at most MD_KV_MAX entries (more is BAD_DATA); keys longer than the buffer are BAD_DATA. */
#define MD_KV_MAX 1024
struct md_kv {
	char key[48];
	uint64_t value;
};
struct md_kv_list {
	struct md_kv *items;
	size_t n;
};
struct md_error *md_parse_keyed(const char *text, size_t len, bool meminfo_style, struct md_kv_list *list_ret);
void md_kv_list_deinit(struct md_kv_list *l);
/* The value of key, or fallback when absent (found_ret, when given, says which). */
uint64_t md_kv_get(const struct md_kv_list *l, const char *key, uint64_t fallback, bool *found_ret);

/* Pressure stall information (memory.pressure, /proc/pressure/memory):
 * "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" and the same for "full". */
struct md_psi_line {
	bool valid;
	double avg10, avg60, avg300; /* percent of wall time */
	uint64_t total_us;
};
struct md_psi {
	struct md_psi_line some, full;
};
struct md_error *md_parse_pressure(const char *text, size_t len, struct md_psi *psi_ret);

/* cgroup.procs: one pid a line. At most MD_PIDS_MAX. */
#define MD_PIDS_MAX 65536
struct md_error *md_parse_pid_list(const char *text, size_t len, pid_t **pids_ret, size_t *n_ret);

/* One memory cgroup directory, read at one moment. */
struct md_cgroup {
	int version;          /* 1 or 2 */
	char *dir;            /* the directory, e.g. /sys/fs/cgroup/memory/docker/abc */
	char *path;           /* the cgroup's own path below its hierarchy's mount, "/" for the root */
	uint64_t usage_bytes; /* v2 memory.current, v1 memory.usage_in_bytes */
	uint64_t limit_bytes; /* v2 memory.max, v1 memory.limit_in_bytes; UINT64_MAX unlimited */
	uint64_t high_bytes;  /* v2 memory.high; UINT64_MAX none (and always for v1) */
	uint64_t swap_bytes;  /* v2 memory.swap.current, v1 memsw.usage - usage; 0 when unknown */
	bool has_kmem;
	uint64_t kmem_bytes;  /* v1 memory.kmem.usage_in_bytes (part of usage); v2 has memory.stat "kernel" */
	struct md_kv_list stat;   /* memory.stat */
	struct md_kv_list events; /* v2 memory.events; v1: oom_control's oom_kill, under_oom and failcnt */
	bool has_pressure;        /* v2 memory.pressure read */
	struct md_psi pressure;
	pid_t *pids;              /* cgroup.procs (this group only, not its children) */
	size_t n_pids;
};
/* Read the memory cgroup in dir; the version is told by its files (memory.current: v2,
 * memory.usage_in_bytes: v1). path is stored as given (NULL: dir). NOT_FOUND when dir is not a
 * memory cgroup, OS errors as they come. */
struct md_error *md_cgroup_read(const char *dir, const char *path, struct md_cgroup *cg_ret);
void md_cgroup_deinit(struct md_cgroup *cg);

/* The memory cgroup directory of a process under cgroup_root (normally /sys/fs/cgroup): the v2
 * group when it has memory files (also under <root>/unified), else the v1 memory group.
 * dir_ret and path_ret are malloc'd. */
struct md_error *md_cgroup_dir_of_pid(pid_t pid, const char *cgroup_root, char **dir_ret, char **path_ret);

/* A cgroup named on the command line: a memory cgroup directory, or a cgroup path ("/docker/x")
 * looked up under cgroup_root, <root>/unified and <root>/memory. path_ret: the name below the
 * mount. NOT_FOUND when neither leads to memory files. */
struct md_error *md_cgroup_resolve(const char *arg, const char *cgroup_root, char **dir_ret, char **path_ret);

/* Every memory cgroup below cgroup_root (v2 root with memory files, or <root>/memory), depth
 * first, at most max_groups and max_depth levels. dirs_ret holds malloc'd directory paths. */
struct md_error *md_cgroup_list(const char *cgroup_root, size_t max_groups, int max_depth, char ***dirs_ret,
				size_t *n_ret, bool *truncated_ret);
/* The same from one directory down (dir itself first when it is a memory cgroup). */
struct md_error *md_cgroup_list_under(const char *dir, size_t max_groups, int max_depth, char ***dirs_ret,
				      size_t *n_ret, bool *truncated_ret);
void md_cgroup_list_free(char **dirs, size_t n);

/* One process's memory from /proc/PID/status and smaps_rollup (no ptrace). USS is the private
 * clean + private dirty pages. EXITED when the process went away meanwhile. */
struct md_proc_memory {
	pid_t pid;
	char comm[64];   /* as the process set it: escape before printing */
	uint64_t rss_bytes, pss_bytes, uss_bytes, anon_bytes, swap_bytes;
	bool has_mm;     /* false for kernel threads (no address space, empty smaps_rollup) */
};
struct md_error *md_proc_memory_read(pid_t pid, struct md_proc_memory *pm_ret);

#endif
