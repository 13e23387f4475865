/* Parsers for /proc text. They take buffers, so tests and fuzzers feed them saved text. */
#ifndef MEMDISSECT_PROCFS_H
#define MEMDISSECT_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "memdissect/error.h"
#include "memdissect/target.h"

/* Bounded scanners shared by the /proc and cgroup parsers: lines of [text, text + len) without
 * their '\n' (a last line without '\n' counts), and a decimal u64 (at least one digit; false on
 * overflow), advancing *pp. */
struct md_line_iter {
	const char *p, *end;
	size_t lineno;
};
void md_line_iter_init(struct md_line_iter *it, const char *text, size_t len);
bool md_line_next(struct md_line_iter *it, const char **ls, const char **le);
bool md_scan_dec(const char **pp, const char *end, uint64_t *v);

/* Read a whole file (including /proc files whose st_size is 0). The buffer is NUL-terminated
 * (not counted in len) and must be freed by the caller. */
struct md_error *md_read_file(const char *path, char **buf_ret, size_t *len_ret);

/* /proc/PID/maps or /proc/PID/smaps: both give the mapping lines; smaps adds the figures
 * (md_mapping.smaps.valid set). Paths are unescaped (the kernel writes '\n' as "\012"),
 * " (deleted)" is stripped into .deleted, kind is set from path and perms (a thread stack is
 * found later from registers). pages is left NULL. Free with md_mappings_free. */
struct md_error *md_parse_maps(const char *text, size_t len, struct md_mapping **maps_ret, size_t *n_ret);
void md_mappings_free(struct md_mapping *maps, size_t n);

/* /proc/PID/smaps_rollup: the figures only (the first line is a range header). */
struct md_error *md_parse_smaps_rollup(const char *text, size_t len, struct md_smaps *rollup_ret);

struct md_proc_status {
	char name[64];
	char state;          /* 'R', 'S', 'Z', 't', ... */
	int32_t tgid, pid, ppid, tracer_pid;
	uint32_t uid[4], gid[4]; /* real, effective, saved, fs */
	uint32_t threads;
	uint64_t cap_eff;
	uint64_t vm_peak, vm_size, vm_lck, vm_pin, vm_hwm, vm_rss; /* bytes */
	uint64_t rss_anon, rss_file, rss_shmem, vm_data, vm_stk, vm_exe, vm_lib, vm_pte, vm_swap;
	bool has_rss_split; /* RssAnon/RssFile/RssShmem present */
};
struct md_error *md_parse_status(const char *text, size_t len, struct md_proc_status *status_ret);

struct md_meminfo {
	uint64_t mem_total, mem_free, mem_available, buffers, cached, swap_total, swap_free, shmem;
};
struct md_error *md_parse_meminfo(const char *text, size_t len, struct md_meminfo *meminfo_ret);

/* /proc/PID/cgroup: the v2 path ("0::/x") and the v1 memory controller's path. Either may be
 * returned as NULL. Strings are malloc'd. */
struct md_error *md_parse_proc_cgroup(const char *text, size_t len, char **v2_path_ret,
				      char **v1_memory_path_ret);

struct md_cgroup_memory {
	int version;          /* 1 or 2 */
	char *path;           /* as in /proc/PID/cgroup, malloc'd */
	uint64_t usage_bytes; /* v2 memory.current, v1 memory.usage_in_bytes */
	uint64_t limit_bytes; /* v2 memory.max, v1 memory.limit_in_bytes; UINT64_MAX = unlimited */
};
/* Find the target's memory cgroup and read its usage and limit. cgroup_root is normally
 * "/sys/fs/cgroup" (a parameter so tests can use a fake tree). MD_ERR_NOT_FOUND when the
 * target has no memory cgroup with readable figures. */
struct md_error *md_cgroup_memory_read(pid_t pid, const char *cgroup_root, struct md_cgroup_memory *ret);
void md_cgroup_memory_deinit(struct md_cgroup_memory *cg);

#endif
