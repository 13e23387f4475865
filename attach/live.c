/* Live processes: seize and stop every thread, capture /proc and pagemap while stopped,
 * read memory with process_vm_readv, and always detach (after libdwfl's linux-pid-attach.c
 * and strace's careful ptrace use). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "live.h"
#include "procfs.h"
#include "target_impl.h"
#include "unwind.h"

#define MAX_TASK_SCANS 200
#define STOP_TIMEOUT_MS 5000 /* a thread that is not in uninterruptible sleep but does not stop */
#define MAX_SHARERS 64

/* TASK_STUCK: seized and asked to stop, but in uninterruptible sleep (see "threads that cannot
 * stop" below). */
enum task_state { TASK_NEW, TASK_STOPPED, TASK_RUNNING, TASK_STUCK, TASK_GONE };

struct task {
	pid_t tid;
	pid_t tgid; /* the target, or a process sharing its address space */
	enum task_state state;
	int pending_sig; /* a signal that arrived while we held the thread: re-injected */
};

/* A process sharing the target's address space; refused: why it could not be stopped. */
struct sharer {
	pid_t tgid;
	char refused[200];
};

struct live {
	pid_t pid;
	/* A task whose /proc entries show the address space: the process itself, or one of its
	 * live threads when the leader has ended with pthread_exit (a zombie leader has no mm). */
	pid_t mm_tid;
	struct sharer sharers[MAX_SHARERS];
	size_t n_sharers;
	char *auxv; /* /proc/PID/auxv when opened: an exec replaces it */
	size_t auxv_len;
	bool execed; /* a PTRACE_EVENT_EXEC stop was seen */
	int mem_fd; /* /proc/PID/mem fallback, -1 until needed */
	bool use_mem_fd;
	struct task *tasks;
	size_t n_tasks, cap_tasks;
	struct timespec stop_started;
	double paused_seconds;
	bool stopped;
	bool zero_pfn_probed;
	uint64_t zero_pfn; /* PFN of the shared zero page, 0 when unknown */
	pid_t *held; /* what publish_held shows the fatal-signal handler */
	size_t cap_held;
	struct md_live_tracer *tracer; /* the session's, or own_tracer */
	struct md_live_tracer *own_tracer;
};

static bool auxv_changed(struct live *lv);
static bool thread_exiting(pid_t tgid, pid_t tid);
static void release_lingering(struct md_live_tracer *tr);
static void unpublish_held(struct live *lv);

/* The one piece of process-wide state here besides md_live_interrupted, and for the same reason:
 * a signal handler can reach nothing else. For the fatal-signal handler, the threads the target
 * being attached holds stopped (its struct live owns the array), readable without locks. */
static pid_t *volatile held_tids;
static volatile size_t held_n;

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct live *live_of(const struct md_target *t)
{
	return t->impl;
}

/* ---- memory ---- */

/* Reads may come from several threads at once (md_target_read_pages): the descriptor is opened
 * once under this lock, and use_mem_fd is only ever set. */
static pthread_mutex_t mem_fd_lock = PTHREAD_MUTEX_INITIALIZER;

static struct md_error *read_via_mem(struct live *lv, uint64_t addr, void *buf, size_t len)
{
	int fd = __atomic_load_n(&lv->mem_fd, __ATOMIC_ACQUIRE);
	if (fd < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)lv->mm_tid);
		pthread_mutex_lock(&mem_fd_lock);
		if (lv->mem_fd < 0)
			__atomic_store_n(&lv->mem_fd, open(path, O_RDONLY | O_CLOEXEC), __ATOMIC_RELEASE);
		fd = lv->mem_fd;
		int open_errno = errno;
		pthread_mutex_unlock(&mem_fd_lock);
		if (fd < 0)
			return md_error_os(open_errno, "opening %s", path);
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + done, len - done, (off_t)(addr + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return md_error_fault(MD_ERR_FAULT, addr + done,
					      "cannot read target memory at 0x%" PRIx64, addr + done);
		done += (size_t)n;
	}
	return NULL;
}

static struct md_error *read_via_vm(struct live *lv, uint64_t addr, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len && !__atomic_load_n(&lv->use_mem_fd, __ATOMIC_RELAXED)) {
		struct iovec local = { (uint8_t *)buf + done, len - done };
		struct iovec remote = { (void *)(uintptr_t)(addr + done), len - done };
		ssize_t n = process_vm_readv(lv->mm_tid, &local, 1, &remote, 1, 0);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
			__atomic_store_n(&lv->use_mem_fd, true, __ATOMIC_RELAXED);
			break;
		}
		if (n < 0 && errno == ESRCH)
			return md_error_create(MD_ERR_EXITED, "process %d exited while being read", (int)lv->pid);
		return md_error_fault(MD_ERR_FAULT, addr + done, "cannot read target memory at 0x%" PRIx64,
				      addr + done);
	}
	if (done == len)
		return NULL;
	return read_via_mem(lv, addr + done, (uint8_t *)buf + done, len - done);
}

/* A present anonymous page mapped more than once (copy-on-write after fork). process_vm_readv
 * pins the pages it reads, and since Linux 5.19 a read-only pin of such a page makes the kernel
 * give the target a private copy ("unshare"): the read would change the target's memory. Reads
 * through /proc/PID/mem take a plain reference and leave the sharing as it is. */
static bool pin_would_unshare(const struct md_mapping *m, uint64_t page)
{
	if (!m || !m->pages)
		return false;
	uint8_t bits = m->pages[(page - m->start) >> MD_PAGE_SHIFT];
	return (bits & MD_PAGE_PRESENT) && !(bits & (MD_PAGE_EXCLUSIVE | MD_PAGE_FILE | MD_PAGE_ZERO));
}

static struct md_error *live_read_present(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	struct live *lv = live_of(t);
	uint64_t end = addr + len;
	uint64_t a = addr;
	const struct md_mapping *m = NULL;
	while (a < end) {
		uint64_t page = MD_PAGE_DOWN(a);
		if (!m || page < m->start || page >= m->end)
			m = md_target_find_mapping(t, page);
		bool nopin = pin_would_unshare(m, page);
		uint64_t run_end = page + MD_PAGE_SIZE;
		while (run_end < end) {
			if (m && run_end >= m->end)
				break;
			if (pin_would_unshare(m, run_end) != nopin)
				break;
			run_end += MD_PAGE_SIZE;
		}
		if (run_end > end)
			run_end = end;
		uint8_t *dst = (uint8_t *)buf + (a - addr);
		struct md_error *err = nopin ? read_via_mem(lv, a, dst, (size_t)(run_end - a))
					     : read_via_vm(lv, a, dst, (size_t)(run_end - a));
		if (err)
			return err;
		a = run_end;
	}
	return NULL;
}

static struct md_error *live_backtrace(struct md_target *t, const struct md_thread *thread,
				       uint64_t *pcs, size_t max, size_t *n_ret)
{
	struct live *lv = live_of(t);
	if (!lv->stopped)
		return md_error_create(MD_ERR_UNSUPPORTED, "backtrace needs the target stopped");
	return md_unwind_ptrace(t, thread->tid, pcs, max, n_ret);
}

static void live_destroy_impl(struct md_target *t)
{
	struct live *lv = live_of(t);
	if (!lv)
		return;
	md_live_detach(t);
	if (lv->mem_fd >= 0)
		close(lv->mem_fd);
	unpublish_held(lv);
	md_live_tracer_destroy(lv->own_tracer);
	free(lv->held);
	free(lv->tasks);
	free(lv->auxv);
	free(lv);
	t->impl = NULL;
}

static const struct md_target_ops live_ops = {
	.read_present = live_read_present,
	.backtrace = live_backtrace,
	.destroy_impl = live_destroy_impl,
	.stop = md_live_stop,
	.capture = md_live_capture,
	.resume = md_live_detach,
	.pause_seconds = md_live_pause_seconds,
};

/* ---- why we may not trace ---- */

static long read_long_file(const char *path, long dflt)
{
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return dflt;
	}
	long v = strtol(buf, NULL, 10);
	free(buf);
	return v;
}

static void comm_of(pid_t pid, char *out, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	char *buf;
	size_t n;
	struct md_error *err = md_read_file(path, &buf, &n);
	if (err) {
		md_error_destroy(err);
		snprintf(out, len, "?");
		return;
	}
	/* only the kernel's final newline: a comm may hold newlines of its own */
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	snprintf(out, len, "%s", buf);
	free(buf);
}

static struct md_error *permission_error(pid_t pid, const struct md_proc_status *st, const char *what)
{
	if (st && st->tracer_pid > 0 && st->tracer_pid != getpid()) {
		char comm[64];
		comm_of(st->tracer_pid, comm, sizeof(comm));
		return md_error_create(MD_ERR_PERMISSION,
				       "permission denied: process %d is already traced by PID %d (%s)",
				       (int)pid, (int)st->tracer_pid, comm);
	}
	char self_path[64];
	snprintf(self_path, sizeof(self_path), "/proc/%d/status", (int)getpid());
	char *buf;
	size_t len;
	struct md_proc_status self = { 0 };
	struct md_error *err = md_read_file(self_path, &buf, &len);
	if (!err) {
		md_error_destroy(md_parse_status(buf, len, &self));
		free(buf);
	} else {
		md_error_destroy(err);
	}
	bool cap_ptrace = (self.cap_eff >> 19) & 1; /* CAP_SYS_PTRACE */
	long yama = read_long_file("/proc/sys/kernel/yama/ptrace_scope", -1);
	if (yama == 3)
		return md_error_create(MD_ERR_PERMISSION,
				       "permission denied: %s process %d: Yama ptrace_scope is 3 (no process may be traced until reboot)",
				       what, (int)pid);
	if (!cap_ptrace) {
		if (st && st->uid[1] != (uint32_t)geteuid())
			return md_error_create(MD_ERR_PERMISSION,
					       "permission denied: %s process %d: it runs as uid %u and memdissect is not root and has no CAP_SYS_PTRACE",
					       what, (int)pid, st->uid[1]);
		if (yama == 2)
			return md_error_create(MD_ERR_PERMISSION,
					       "permission denied: %s process %d: Yama ptrace_scope is 2 (only CAP_SYS_PTRACE may trace)",
					       what, (int)pid);
		if (yama == 1)
			return md_error_create(MD_ERR_PERMISSION,
					       "permission denied: %s process %d: Yama ptrace_scope is 1 (only a parent may trace; run as root or with CAP_SYS_PTRACE)",
					       what, (int)pid);
		return md_error_create(MD_ERR_PERMISSION,
				       "permission denied: %s process %d: not root and no CAP_SYS_PTRACE (the target may be setuid or not dumpable)",
				       what, (int)pid);
	}
	return md_error_create(MD_ERR_PERMISSION, "permission denied: %s process %d: it is not dumpable, lives in another user namespace, or a security module refused it",
			       what, (int)pid);
}

/* /proc/<what>/status, what being "PID" or "PID/task/TID". */
static struct md_error *read_status_path(const char *what, struct md_proc_status *st)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/%s/status", what);
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err)
		return err;
	memset(st, 0, sizeof(*st));
	err = md_parse_status(buf, len, st);
	free(buf);
	return err;
}

static struct md_error *read_status(pid_t pid, struct md_proc_status *st)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		int e = err->errnum;
		md_error_destroy(err);
		if (e == ENOENT || e == ESRCH)
			return md_error_create(MD_ERR_NO_PROCESS, "no such process: %d", (int)pid);
		return md_error_os(e, "reading %s", path);
	}
	memset(st, 0, sizeof(*st));
	err = md_parse_status(buf, len, st);
	free(buf);
	if (err)
		return md_error_wrap(err, "parsing /proc/%d/status", (int)pid);
	return NULL;
}

/* ---- capture of maps, smaps, pagemap ---- */

/* The PFN of the shared zero page (0 when unknown: no CAP_SYS_ADMIN), probed once per target. */
static void probe_zero_pfn(struct live *lv)
{
	if (lv->zero_pfn_probed)
		return;
	lv->zero_pfn_probed = true;
	void *p = mmap(NULL, MD_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	volatile char c = *(volatile char *)p; /* maps the zero page into *our* address space */
	(void)c;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		uint64_t e;
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / MD_PAGE_SIZE * 8)) == sizeof(e) &&
		    (e >> 63) & 1)
			lv->zero_pfn = e & ((1ULL << 55) - 1);
		close(fd);
	}
	munmap(p, MD_PAGE_SIZE);
}

/* PAGEMAP_SCAN (Linux 6.7+, uapi/linux/fs.h; Debian 12's headers predate it): it tells which PTEs
 * map the shared zero page without needing page frame numbers, so an unprivileged attach need
 * not guess. */
#define MD_PAGE_IS_PFNZERO (1ULL << 5)
struct md_page_region {
	uint64_t start, end, categories;
};
struct md_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define MD_PAGEMAP_SCAN _IOWR('f', 16, struct md_pm_scan_arg)

/* Mark the zero-page PTEs of m; false when the kernel cannot tell (no PAGEMAP_SCAN). */
static bool scan_zero_pages(int fd, const struct md_mapping *m, uint8_t *pages)
{
	struct md_page_region vec[256];
	uint64_t start = m->start;
	for (unsigned rounds = 0; start < m->end && rounds < 1000000; rounds++) {
		struct md_pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = start,
			.end = m->end,
			.vec = (uint64_t)(uintptr_t)vec,
			.vec_len = sizeof(vec) / sizeof(vec[0]),
			.category_mask = MD_PAGE_IS_PFNZERO,
			.return_mask = MD_PAGE_IS_PFNZERO,
		};
		int n = ioctl(fd, MD_PAGEMAP_SCAN, &arg);
		if (n < 0)
			return false;
		for (int i = 0; i < n && i < (int)(sizeof(vec) / sizeof(vec[0])); i++) {
			for (uint64_t a = vec[i].start; a < vec[i].end && a < m->end; a += MD_PAGE_SIZE)
				if (a >= m->start)
					pages[(a - m->start) >> MD_PAGE_SHIFT] |= MD_PAGE_ZERO;
		}
		if (arg.walk_end <= start)
			break;
		start = arg.walk_end;
	}
	return true;
}

/* Per-page bits of one mapping from pagemap, then reconciled with the mapping's smaps Rss. */
static struct md_error *read_pagemap(int fd, struct md_mapping *m, uint64_t zero_pfn, uint64_t *reconciled,
				     uint64_t *guessed)
{
	size_t npages = (size_t)((m->end - m->start) / MD_PAGE_SIZE);
	/* Nothing resident or swapped: no page to look at. hugetlbfs pages are resident but never
	 * in Rss, so a hugetlb mapping is always looked at. */
	if (m->smaps.valid && m->smaps.rss == 0 && m->smaps.swap == 0 && !m->smaps.hugetlb)
		return NULL;
	/* A PROT_NONE mapping with resident pages is looked at too: an allocator may decommit by
	 * mprotect(PROT_NONE), which keeps the pages resident (issue 16). */
	uint8_t *pages = calloc(npages, 1);
	if (!pages)
		return &md_error_nomem;
	enum { BATCH = 8192 };
	uint64_t entries[BATCH];
	size_t counted = 0, nonexcl_anon = 0;
	for (size_t i = 0; i < npages;) {
		if (md_live_interrupted) {
			free(pages);
			return md_error_create(MD_ERR_INTERRUPTED, "interrupted");
		}
		size_t n = npages - i < BATCH ? npages - i : BATCH;
		off_t off = (off_t)((m->start / MD_PAGE_SIZE + i) * 8);
		ssize_t r = pread(fd, entries, n * 8, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(pages);
			return md_error_os(r < 0 ? errno : EIO, "reading pagemap at 0x%" PRIx64,
					   m->start + i * MD_PAGE_SIZE);
		}
		n = (size_t)r / 8;
		for (size_t k = 0; k < n; k++) {
			uint64_t e = entries[k];
			uint8_t bits = 0;
			if ((e >> 63) & 1)
				bits |= MD_PAGE_PRESENT;
			if ((e >> 62) & 1)
				bits |= MD_PAGE_SWAPPED;
			if ((e >> 61) & 1)
				bits |= MD_PAGE_FILE;
			if ((e >> 56) & 1)
				bits |= MD_PAGE_EXCLUSIVE;
			if ((bits & MD_PAGE_PRESENT) && !(bits & (MD_PAGE_FILE | MD_PAGE_EXCLUSIVE))) {
				uint64_t pfn = e & ((1ULL << 55) - 1);
				/* No struct page behind the PTE: the zero page (or a PFN map). */
				if (zero_pfn && pfn == zero_pfn)
					bits |= MD_PAGE_ZERO;
				else
					nonexcl_anon++;
			}
			if (MD_PAGE_COUNTED(bits))
				counted++;
			pages[i + k] = bits;
		}
		i += n;
	}
	/* hugetlbfs pages: readable, but outside Rss and so in no class (memory.hugetlb_bytes
	 * counts them): their residency is "unknown", which reads them and counts them nowhere. */
	if (m->smaps.hugetlb) {
		for (size_t i = 0; i < npages; i++)
			if (pages[i] & MD_PAGE_PRESENT)
				pages[i] = MD_PAGE_UNKNOWN;
		m->pages = pages;
		return NULL;
	}
	/* Zero-page PTEs: without PFNs (not root) they look like shared anonymous pages. With PFNs,
	 * the huge zero page (THP, a read-only fault of an untouched MADV_HUGEPAGE range) is not the
	 * small zero page's PFN and pagemap shows it as a present file page: more pages counted
	 * than smaps' Rss says. In both cases the kernel tells which PTEs are zero-page ones. */
	bool over_rss = m->smaps.valid && counted > m->smaps.rss / MD_PAGE_SIZE;
	if (((!zero_pfn && nonexcl_anon) || over_rss) && scan_zero_pages(fd, m, pages)) {
		counted = 0;
		for (size_t i = 0; i < npages; i++)
			counted += MD_PAGE_COUNTED(pages[i]);
	}
	if (m->smaps.valid) {
		size_t rss_pages = (size_t)(m->smaps.rss / MD_PAGE_SIZE);
		/* smaps does not count pages without a struct page (zero page, PFN maps). Without
		 * PFNs (not root) those look like shared anonymous pages: drop them first. */
		if (counted > rss_pages) {
			size_t excess = counted - rss_pages;
			for (size_t i = npages; i-- > 0 && excess > 0;) {
				if (MD_PAGE_COUNTED(pages[i]) && !(pages[i] & (MD_PAGE_FILE | MD_PAGE_EXCLUSIVE))) {
					pages[i] |= MD_PAGE_ZERO;
					excess--;
					if (!zero_pfn)
						(*guessed)++; /* no frame numbers: which ones is a guess */
				}
			}
			for (size_t i = npages; i-- > 0 && excess > 0;) {
				if (MD_PAGE_COUNTED(pages[i])) {
					pages[i] |= MD_PAGE_ZERO;
					excess--;
					(*reconciled)++;
				}
			}
		} else if (counted < rss_pages) {
			m->extra_rss_pages = rss_pages - counted;
			*reconciled += rss_pages - counted;
		}
	}
	m->pages = pages;
	return NULL;
}

/* Mappings holding a thread's stack pointer (the guard rule of md_target_mark_stack_at); a thread
 * left running has its from /proc. */
static void mark_stacks(struct md_target *t, const struct md_live_capture *cap)
{
	md_target_mark_thread_stacks(t);
	for (size_t i = 0; i < cap->n_unstopped; i++)
		if (cap->unstopped[i].sp)
			md_target_mark_stack_at(t, cap->unstopped[i].sp);
}

/* Read smaps (mappings + figures), smaps_rollup and status; retry while the sum of the
 * mappings' Rss and the rollup disagree (the target is stopped, but the kernel may reclaim). */
static struct md_error *gather(struct md_target *t, struct md_live_capture *cap)
{
	pid_t pid = live_of(t)->mm_tid;
	char path[64];
	struct md_error *err = NULL;
	for (int attempt = 0; attempt < 3; attempt++) {
		md_mappings_free(t->mappings, t->n_mappings);
		t->mappings = NULL;
		t->n_mappings = 0;
		char *buf;
		size_t len;
		snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
		err = md_read_file(path, &buf, &len);
		if (err)
			return err;
		if (len == 0) {
			free(buf);
			return md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)pid);
		}
		err = md_parse_maps(buf, len, &t->mappings, &t->n_mappings);
		free(buf);
		if (err)
			return md_error_wrap(err, "parsing %s", path);
		if (!cap)
			return NULL;
		snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
		err = md_read_file(path, &buf, &len);
		if (err)
			return err;
		memset(&cap->rollup, 0, sizeof(cap->rollup));
		err = md_parse_smaps_rollup(buf, len, &cap->rollup);
		free(buf);
		if (err)
			return md_error_wrap(err, "parsing %s", path);
		uint64_t sum = 0;
		for (size_t i = 0; i < t->n_mappings; i++)
			sum += t->mappings[i].smaps.rss;
		cap->rollup_rss_as_read = cap->rollup.rss;
		if (sum == cap->rollup.rss)
			break;
		/* The kernel reclaimed or faulted pages between the two reads (memory pressure,
		 * a file page dropped): the per-mapping figures are what the classes are made of,
		 * so they define the total; the report notes the difference. */
		cap->rollup.rss = sum;
	}
	return NULL;
}

/* 1 when the system has no swap (SwapTotal 0), 0 when it has, -1 when unknown. */
static int system_without_swap(void)
{
	char *buf;
	size_t len;
	struct md_error *err = md_read_file("/proc/meminfo", &buf, &len);
	if (err) {
		md_error_destroy(err);
		return -1;
	}
	struct md_meminfo mi = { 0 };
	err = md_parse_meminfo(buf, len, &mi);
	free(buf);
	int r = err ? -1 : mi.swap_total == 0;
	md_error_destroy(err);
	return r;
}

static struct md_error *read_all_pagemaps(struct md_target *t, uint64_t *reconciled, uint64_t *guessed)
{
	probe_zero_pfn(live_of(t));
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)live_of(t)->mm_tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ESRCH)
			return md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)t->pid);
		return md_error_os(e, "opening %s", path);
	}
	struct md_error *err = NULL;
	int no_swap = -1; /* unknown until a swapped page is seen */
	for (size_t i = 0; i < t->n_mappings && !err; i++) {
		struct md_mapping *m = &t->mappings[i];
		/* Without swap a "swapped" PTE is a migration entry (compaction moving the page,
		 * even while the target is stopped): it is gone within milliseconds. Look again
		 * rather than refuse to read the page (seen: "reading mp_: page ... is swapped
		 * out" under cgroup memory pressure on a machine without swap). */
		for (int attempt = 0;; attempt++) {
			uint64_t rec = 0, gue = 0;
			err = read_pagemap(fd, m, live_of(t)->zero_pfn, &rec, &gue);
			bool swapped = false;
			for (uint64_t k = 0; !err && m->pages && k < (m->end - m->start) / MD_PAGE_SIZE && !swapped; k++)
				swapped = m->pages[k] & MD_PAGE_SWAPPED;
			if (swapped && no_swap < 0)
				no_swap = system_without_swap();
			if (err || !swapped || no_swap != 1 || attempt == 20) {
				*reconciled += rec;
				*guessed += gue;
				break;
			}
			free(m->pages);
			m->pages = NULL;
			m->extra_rss_pages = 0;
			struct timespec ts = { 0, 500000 };
			nanosleep(&ts, NULL);
		}
	}
	close(fd);
	return err;
}

/* ---- open ---- */

#define MD_PF_KTHREAD 0x00200000UL /* include/linux/sched.h */

/* Field 9 of /proc/PID/stat (the task's PF_* flags), 0 when unreadable. */
static unsigned long stat_flags(pid_t pid)
{
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return 0;
	}
	unsigned long flags = 0;
	const char *paren = strrchr(buf, ')');
	/* ") S ppid pgrp session tty_nr tpgid flags" */
	if (paren && sscanf(paren + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1)
		flags = 0;
	free(buf);
	return flags;
}

/* The ELF class and machine of the program a process runs (/proc/PID/exe). */
static bool exe_is_64bit_x86(pid_t pid, char *what, size_t what_len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* unknown: the capture decides */
	unsigned char h[20];
	ssize_t n = pread(fd, h, sizeof(h), 0);
	close(fd);
	if (n != (ssize_t)sizeof(h) || memcmp(h, "\177ELF", 4) != 0)
		return true;
	unsigned machine = h[18] | (unsigned)h[19] << 8;
	if (h[4] == 2 && machine == 62)
		return true;
	snprintf(what, what_len, "%s", h[4] == 1 && machine == 3 ? "a 32-bit (ia32) program"
				      : h[4] == 1 && machine == 62 ? "an x32 program"
								   : "not an x86-64 program");
	return false;
}

/* A live thread of a process whose leader has exited (pthread_exit), or 0. */
static pid_t live_thread_of(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	pid_t found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end || tid <= 0 || tid == pid)
			continue;
		if (!thread_exiting(pid, (pid_t)tid))
			found = (pid_t)tid;
	}
	closedir(d);
	return found;
}

struct md_error *md_live_open(pid_t pid, const struct md_live_options *opts, struct md_target **target_ret)
{
	if (opts && opts->tracer)
		release_lingering(opts->tracer);
	if (pid <= 0)
		return md_error_create(MD_ERR_NO_PROCESS, "no such process: %d", (int)pid);
	if (pid == getpid())
		return md_error_create(MD_ERR_USAGE, "memdissect cannot inspect itself");
	struct md_proc_status st;
	struct md_error *err = read_status(pid, &st);
	if (err)
		return err;
	if (st.tgid != pid && st.tgid > 0) {
		/* A thread id: the process it belongs to is the target. */
		pid = st.tgid;
		if (pid == getpid())
			return md_error_create(MD_ERR_USAGE, "memdissect cannot inspect itself");
		err = read_status(pid, &st);
		if (err)
			return err;
	}
	if (stat_flags(pid) & MD_PF_KTHREAD)
		return md_error_create(MD_ERR_UNSUPPORTED, "process %d (%s) is a kernel thread: it has no user memory to inspect",
				       (int)pid, st.name);
	pid_t mm_tid = pid;
	if (st.state == 'Z' || st.state == 'X') {
		/* A leader that called pthread_exit is a zombie while its other threads run. */
		mm_tid = st.threads > 1 ? live_thread_of(pid) : 0;
		if (!mm_tid)
			return md_error_create(MD_ERR_ZOMBIE, "process %d (%s) is a zombie: it has exited and has no memory left to inspect",
					       (int)pid, st.name);
	}
	char what[64];
	if (!exe_is_64bit_x86(pid, what, sizeof(what)))
		return md_error_create(MD_ERR_UNSUPPORTED, "process %d (%s) is %s: memdissect inspects 64-bit x86-64 processes only",
				       (int)pid, st.name, what);
	if (st.tracer_pid > 0 && st.tracer_pid != getpid())
		return permission_error(pid, &st, "tracing");

	struct md_target *t = calloc(1, sizeof(*t));
	struct live *lv = calloc(1, sizeof(*lv));
	if (!t || !lv) {
		free(t);
		free(lv);
		return &md_error_nomem;
	}
	t->source = MD_SOURCE_LIVE;
	t->pid = pid;
	t->ops = &live_ops;
	t->impl = lv;
	t->debuginfo_disabled = opts && opts->debuginfo_disabled;
	md_target_cache_drop(t);
	lv->pid = pid;
	lv->mm_tid = mm_tid;
	lv->mem_fd = -1;
	lv->tracer = opts ? opts->tracer : NULL;
	if (!lv->tracer) {
		err = md_live_tracer_create(&lv->own_tracer);
		if (err) {
			md_target_destroy(t);
			return err;
		}
		lv->tracer = lv->own_tracer;
	}
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/auxv", (int)mm_tid);
		md_error_destroy(md_read_file(path, &lv->auxv, &lv->auxv_len)); /* missing: no exec check */
	}

	/* Before the pause the target runs: its maps can change while we read them. */
	for (int attempt = 0; attempt < 5; attempt++) {
		md_error_destroy(err);
		err = gather(t, NULL);
		if (!err || err->code != MD_ERR_BAD_DATA)
			break;
	}
	if (!err) {
		uint64_t reconciled = 0, guessed = 0;
		err = read_all_pagemaps(t, &reconciled, &guessed);
	}
	if (err) {
		if (err->code == MD_ERR_OS && (err->errnum == EACCES || err->errnum == EPERM)) {
			md_error_destroy(err);
			err = permission_error(pid, &st, "reading the memory map of");
		} else if (err->code == MD_ERR_OS && (err->errnum == ENOENT || err->errnum == ESRCH)) {
			md_error_destroy(err);
			err = md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)pid);
		}
		if (auxv_changed(lv)) {
			md_error_destroy(err);
			err = md_error_create(MD_ERR_EXECED, "process %d exec'd during the attach", (int)pid);
		}
		md_target_destroy(t);
		return err;
	}
	struct md_symbols_options sopts = { .debuginfo_disabled = t->debuginfo_disabled,
					    .counters = opts ? opts->counters : NULL,
					    .cache = opts ? opts->cache : NULL };
	if (opts && opts->symbols) {
		/* A session's symbols of this process: refreshed, lent to the target. */
		err = *opts->symbols ? md_symbols_refresh_pid(*opts->symbols, mm_tid) : NULL;
		if (err || !*opts->symbols) {
			md_error_destroy(err);
			md_symbols_destroy(*opts->symbols);
			*opts->symbols = NULL;
			err = md_symbols_create_pid(mm_tid, &sopts, opts->symbols);
		}
		t->symbols = *opts->symbols;
		t->symbols_lent = true;
	} else {
		err = md_symbols_create_pid(mm_tid, &sopts, &t->symbols);
	}
	if (err) {
		/* Symbols are an aid, not a requirement: the page accounting works without them. */
		md_error_destroy(err);
		t->symbols = NULL;
		t->symbols_lent = false;
	}
	*target_ret = t;
	return NULL;
}

/* ---- stopping ---- */

static struct task *find_task(struct live *lv, pid_t tid)
{
	for (size_t i = 0; i < lv->n_tasks; i++)
		if (lv->tasks[i].tid == tid)
			return &lv->tasks[i];
	return NULL;
}

static void publish_held(struct live *lv)
{
	/* The fatal-signal handler reads this; publish count after the array is valid. */
	held_n = 0;
	held_tids = NULL;
	if (lv->n_tasks > lv->cap_held) {
		pid_t *nb = realloc(lv->held, lv->n_tasks * sizeof(*nb));
		if (!nb)
			return;
		lv->held = nb;
		lv->cap_held = lv->n_tasks;
	}
	size_t n = 0;
	for (size_t i = 0; i < lv->n_tasks; i++)
		if (lv->tasks[i].state == TASK_STOPPED || lv->tasks[i].state == TASK_NEW)
			lv->held[n++] = lv->tasks[i].tid;
	held_tids = lv->held;
	held_n = n;
}

static void unpublish_held(struct live *lv)
{
	if (held_tids == lv->held) {
		held_n = 0;
		held_tids = NULL;
	}
}

static struct md_error *add_task(struct live *lv, pid_t tgid, pid_t tid)
{
	if (lv->n_tasks == lv->cap_tasks) {
		size_t ncap = lv->cap_tasks ? lv->cap_tasks * 2 : 64;
		struct task *nt = realloc(lv->tasks, ncap * sizeof(*nt));
		if (!nt)
			return &md_error_nomem;
		lv->tasks = nt;
		lv->cap_tasks = ncap;
	}
	lv->tasks[lv->n_tasks++] = (struct task){ .tid = tid, .tgid = tgid, .state = TASK_NEW };
	return NULL;
}

/* State letter of /proc/TGID/task/TID/stat, 0 when the thread is gone. */
static char thread_state(pid_t tgid, pid_t tid)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)tgid, (int)tid);
	char *buf;
	size_t len;
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return 0;
	}
	const char *paren = strrchr(buf, ')');
	char state = paren && paren[1] == ' ' ? paren[2] : '?';
	free(buf);
	return state;
}

/* A thread that is already gone or a zombie (its process may be exiting). */
static bool thread_exiting(pid_t tgid, pid_t tid)
{
	char state = thread_state(tgid, tid);
	return state == 0 || state == 'Z' || state == 'X' || state == 'x';
}

/* ---- threads that cannot stop ----
 * A thread in uninterruptible sleep (a vfork parent waiting for its child, a task frozen by the
 * cgroup freezer, hung I/O) takes no ptrace stop until it wakes. The other threads are not
 * held for it: after STUCK_AFTER_MS it is left running (still seized, its stop request
 * pending) and the report says so. A ptrace detach needs a stopped tracee, so such a thread
 * stays traced after the attach until it stops (it is then let go at the next chance) or
 * memdissect exits (the kernel detaches it and cancels the stop request). */
#define STUCK_AFTER_MS 50
#define MAX_LINGERING 256

/* The threads still seized after their attach ended, kept by whoever attaches again and again
 * (a session) so that a later attach takes them back and the waits between attaches let go of
 * those that have stopped. */
struct md_live_tracer {
	pid_t lingering[MAX_LINGERING];
	size_t n_lingering;
};

struct md_error *md_live_tracer_create(struct md_live_tracer **tracer_ret)
{
	struct md_live_tracer *tr = calloc(1, sizeof(*tr));
	if (!tr)
		return &md_error_nomem;
	*tracer_ret = tr;
	return NULL;
}

void md_live_tracer_destroy(struct md_live_tracer *tr)
{
	if (!tr)
		return;
	/* The rest are let go by the kernel when memdissect exits (their stop request cancelled). */
	release_lingering(tr);
	free(tr);
}

static void linger(struct live *lv, pid_t tid)
{
	struct md_live_tracer *tr = lv->tracer;
	if (tr && tr->n_lingering < MAX_LINGERING)
		tr->lingering[tr->n_lingering++] = tid;
}

static bool take_lingering(struct live *lv, pid_t tid)
{
	struct md_live_tracer *tr = lv->tracer;
	for (size_t i = 0; tr && i < tr->n_lingering; i++)
		if (tr->lingering[i] == tid) {
			tr->lingering[i] = tr->lingering[--tr->n_lingering];
			return true;
		}
	return false;
}

/* Detach the lingering threads that have stopped or gone meanwhile. */
static void release_lingering(struct md_live_tracer *tr)
{
	pid_t *lingering = tr ? tr->lingering : NULL;
	for (size_t i = 0; tr && i < tr->n_lingering;) {
		int status;
		pid_t r = waitpid(lingering[i], &status, __WALL | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		bool done = r < 0; /* ECHILD: gone */
		if (r == lingering[i]) {
			if (WIFSTOPPED(status)) {
				int sig = WSTOPSIG(status);
				bool delivery = (status >> 16) == 0 && sig != SIGTRAP;
				ptrace(PTRACE_DETACH, r, 0, (void *)(long)(delivery ? sig : 0));
			}
			done = true;
		}
		if (done)
			lingering[i] = lingering[--tr->n_lingering];
		else
			i++;
	}
}

void md_live_release_lingering(struct md_live_tracer *tr)
{
	release_lingering(tr);
}

/* One look at a task we asked to stop: its state is updated when it reported. */
static void poll_stop(struct live *lv, struct task *tk)
{
	for (;;) {
		int status;
		pid_t r = waitpid(tk->tid, &status, __WALL | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			tk->state = TASK_GONE; /* ECHILD: the thread is gone */
			return;
		}
		if (r == 0)
			return;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			tk->state = TASK_GONE;
			return;
		}
		if (WIFSTOPPED(status)) {
			int event = status >> 16;
			int sig = WSTOPSIG(status);
			if (event == PTRACE_EVENT_EXEC)
				lv->execed = true;
			if (event == 0 && sig != SIGTRAP && sig != 0) {
				/* Signal-delivery-stop: the thread is stopped; keep the signal for later. */
				if (!tk->pending_sig)
					tk->pending_sig = sig;
			}
			tk->state = TASK_STOPPED;
		}
		return;
	}
}

static bool listed(pid_t tid, const int32_t *tids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tids[i] == tid)
			return true;
	return false;
}

/* Wait until every task asked to stop (only those of tids[n] when tids is not NULL) is stopped,
 * gone, or found unable to stop (stuck); one deadline for all of them. Stuck tasks that
 * stopped meanwhile are taken as stopped. */
static struct md_error *wait_some_stopped(struct live *lv, bool interruptible, const int32_t *tids, size_t n_tids)
{
	double start = now_seconds();
	unsigned polls = 0;
	for (;;) {
		size_t pending = 0;
		struct task *first = NULL;
		for (size_t i = 0; i < lv->n_tasks; i++) {
			struct task *tk = &lv->tasks[i];
			if (tk->state != TASK_NEW && tk->state != TASK_RUNNING && tk->state != TASK_STUCK)
				continue;
			if (tids && !listed(tk->tid, tids, n_tids))
				continue;
			poll_stop(lv, tk);
			if (tk->state == TASK_NEW || tk->state == TASK_RUNNING) {
				pending++;
				if (!first)
					first = tk;
			}
		}
		if (!pending)
			return NULL;
		if (interruptible && md_live_interrupted)
			return md_error_create(MD_ERR_INTERRUPTED, "interrupted");
		double waited_ms = (now_seconds() - start) * 1e3;
		bool decide = waited_ms >= STUCK_AFTER_MS;
		if (decide || ++polls % 64 == 0) {
			for (size_t i = 0; i < lv->n_tasks; i++) {
				struct task *tk = &lv->tasks[i];
				if (tk->state != TASK_NEW && tk->state != TASK_RUNNING)
					continue;
				if (tids && !listed(tk->tid, tids, n_tids))
					continue;
				char state = thread_state(tk->tgid, tk->tid);
				/* An exiting thread never reports the stop (a zombie leader waits for
				 * its siblings): it is gone for our purposes. */
				if (state == 0 || state == 'Z' || state == 'X' || state == 'x')
					tk->state = TASK_GONE;
				else if (decide && state == 'D')
					tk->state = TASK_STUCK;
			}
		}
		if (waited_ms > STOP_TIMEOUT_MS)
			return md_error_create(MD_ERR_OS,
					       "thread %d of process %d did not stop within %d ms (state %c)",
					       (int)first->tid, (int)first->tgid, STOP_TIMEOUT_MS,
					       thread_state(first->tgid, first->tid) ?: '?');
		struct timespec ts = { 0, 50000 };
		nanosleep(&ts, NULL);
	}
}

static struct md_error *wait_all_stopped(struct live *lv, bool interruptible)
{
	return wait_some_stopped(lv, interruptible, NULL, 0);
}

/* Why seizing a task failed with EPERM, as an error (exited, or who refused). */
static struct md_error *seize_refused(struct live *lv, pid_t tgid, pid_t tid)
{
	struct md_proc_status st, tst;
	struct md_error *serr = read_status(tgid, &st);
	char tpath[96];
	snprintf(tpath, sizeof(tpath), "%d/task/%d", (int)tgid, (int)tid);
	struct md_error *terr = read_status_path(tpath, &tst);
	if (!terr && !serr && tst.tracer_pid > 0 && tst.tracer_pid != getpid())
		st.tracer_pid = tst.tracer_pid; /* only this thread is traced */
	md_error_destroy(terr);
	if (serr || ((st.state == 'Z' || st.state == 'X') && st.threads <= 1)) {
		md_error_destroy(serr);
		return md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)lv->pid);
	}
	return permission_error(tgid, &st, "tracing");
}

/* Seize and interrupt every task of tgid not yet held (tgid is the target or a process sharing
 * its address space). */
static struct md_error *seize_new_tasks(struct live *lv, pid_t tgid, bool *found_new_ret)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)tgid);
	DIR *d = opendir(path);
	if (!d) {
		if (errno == ENOENT || errno == ESRCH)
			return tgid == lv->pid ? md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)lv->pid)
					       : NULL;
		return md_error_os(errno, "opening %s", path);
	}
	bool found = false;
	struct dirent *de;
	struct md_error *err = NULL;
	while ((de = readdir(d)) && !err) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);
		if (*end || tid <= 0)
			continue;
		if (find_task(lv, (pid_t)tid))
			continue;
		bool ours = take_lingering(lv, (pid_t)tid); /* still seized by an earlier attach */
		if (!ours && ptrace(PTRACE_SEIZE, (pid_t)tid, 0, (void *)(long)PTRACE_O_TRACEEXEC) != 0) {
			int e = errno;
			if (e == ESRCH)
				continue; /* exited meanwhile */
			if (e == EPERM && thread_exiting(tgid, (pid_t)tid))
				continue; /* the kernel refuses to trace a thread that is exiting */
			if (e == EPERM)
				err = seize_refused(lv, tgid, (pid_t)tid);
			else
				err = md_error_os(e, "PTRACE_SEIZE of thread %ld", tid);
			break;
		}
		err = add_task(lv, tgid, (pid_t)tid);
		if (err) {
			ptrace(PTRACE_DETACH, (pid_t)tid, 0, 0);
			break;
		}
		found = true;
		publish_held(lv);
		if (ptrace(PTRACE_INTERRUPT, (pid_t)tid, 0, 0) != 0 && errno == ESRCH)
			lv->tasks[lv->n_tasks - 1].state = TASK_GONE;
	}
	closedir(d);
	*found_new_ret = found;
	return err;
}

static bool any_alive(const struct live *lv)
{
	for (size_t i = 0; i < lv->n_tasks; i++)
		if (lv->tasks[i].state != TASK_GONE && lv->tasks[i].tgid == lv->pid)
			return true;
	return false;
}

/* ---- other processes on the same address space (clone(CLONE_VM) without CLONE_THREAD) ----
 * They run and allocate in the target's heap while its threads are held, so they are found
 * with kcmp(KCMP_VM) over /proc and stopped too; those that cannot be are named in a note. */
#define KCMP_VM_TYPE 1 /* KCMP_VM of linux/kcmp.h */

static bool same_mm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM_TYPE, 0, 0) == 0;
}

static bool is_sharer(const struct live *lv, pid_t tgid)
{
	for (size_t i = 0; i < lv->n_sharers; i++)
		if (lv->sharers[i].tgid == tgid)
			return true;
	return false;
}

static void find_sharers(struct live *lv)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *de;
	pid_t self = getpid();
	while ((de = readdir(d))) {
		char *end;
		long tgid = strtol(de->d_name, &end, 10);
		if (*end || tgid <= 0 || tgid == lv->pid || tgid == self || is_sharer(lv, (pid_t)tgid))
			continue;
		if (!same_mm(lv->mm_tid, (pid_t)tgid))
			continue;
		if (lv->n_sharers == MAX_SHARERS)
			break;
		lv->sharers[lv->n_sharers++] = (struct sharer){ .tgid = (pid_t)tgid };
	}
	closedir(d);
}

/* Seize and stop the sharers' tasks; a sharer that refuses is noted, not fatal. */
static struct md_error *seize_sharers(struct live *lv, bool *found_new)
{
	for (size_t i = 0; i < lv->n_sharers; i++) {
		struct sharer *sh = &lv->sharers[i];
		if (sh->refused[0])
			continue;
		bool found = false;
		struct md_error *err = seize_new_tasks(lv, sh->tgid, &found);
		if (err && err->code != MD_ERR_PERMISSION && err->code != MD_ERR_EXITED)
			return err;
		if (err && err->code == MD_ERR_PERMISSION)
			snprintf(sh->refused, sizeof(sh->refused), "%s", err->message);
		md_error_destroy(err);
		*found_new |= found;
	}
	return NULL;
}

/* Seize and stop every thread not yet held; re-scan until two scans find nothing new. */
static struct md_error *stop_all(struct md_target *t)
{
	struct live *lv = live_of(t);
	if (!lv->stopped) {
		clock_gettime(CLOCK_MONOTONIC, &lv->stop_started);
		lv->stopped = true;
	}
	int quiet_rounds = 0;
	for (int scan = 0; scan < MAX_TASK_SCANS; scan++) {
		bool found_new = false;
		struct md_error *err = seize_new_tasks(lv, lv->pid, &found_new);
		if (!err) {
			find_sharers(lv);
			err = seize_sharers(lv, &found_new);
		}
		if (!err)
			err = wait_all_stopped(lv, true);
		if (err)
			return err;
		if (md_live_interrupted)
			return md_error_create(MD_ERR_INTERRUPTED, "interrupted");
		if (!found_new && ++quiet_rounds >= 2)
			break;
		if (found_new)
			quiet_rounds = 0;
	}
	if (!any_alive(lv))
		return md_error_create(MD_ERR_EXITED, "process %d exited during the attach", (int)lv->pid);
	publish_held(lv);
	return NULL;
}

/* A failure of a target that exec'd meanwhile ("not dumpable" while the new program's
 * credentials are set up, a thread gone in de_thread) is the exec. */
static struct md_error *exec_instead(struct live *lv, struct md_error *err)
{
	if (!err || err->code == MD_ERR_INTERRUPTED || err->code == MD_ERR_EXECED || !(lv->execed || auxv_changed(lv)))
		return err;
	md_error_destroy(err);
	return md_error_create(MD_ERR_EXECED, "process %d exec'd during the attach", (int)lv->pid);
}

struct md_error *md_live_stop(struct md_target *t)
{
	struct md_error *err = exec_instead(live_of(t), stop_all(t));
	if (err)
		md_live_detach(t);
	md_target_cache_drop(t);
	return err;
}

static struct md_error *read_threads(struct md_target *t)
{
	struct live *lv = live_of(t);
	free(t->threads);
	t->threads = calloc(lv->n_tasks ? lv->n_tasks : 1, sizeof(*t->threads));
	t->n_threads = 0;
	if (!t->threads)
		return &md_error_nomem;
	/* The thread group leader first, then the rest in tid order of discovery (threads of
	 * processes sharing the address space last: their stacks and allocator calls count). */
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < lv->n_tasks; i++) {
			struct task *tk = &lv->tasks[i];
			int want = tk->tid == lv->pid ? 0 : tk->tgid == lv->pid ? 1 : 2;
			if (tk->state != TASK_STOPPED || want != pass)
				continue;
			struct md_thread *th = &t->threads[t->n_threads++];
			th->tid = tk->tid;
			struct user_regs_struct regs;
			if (ptrace(PTRACE_GETREGS, tk->tid, 0, &regs) == 0) {
				_Static_assert(sizeof(regs) == MD_REG_COUNT * sizeof(uint64_t), "user_regs_struct layout");
				memcpy(th->regs, &regs, sizeof(regs));
				th->regs_valid = true;
			}
			char path[96], *buf;
			size_t len;
			snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)tk->tgid, (int)tk->tid);
			struct md_error *err = md_read_file(path, &buf, &len);
			if (!err) {
				if (len && buf[len - 1] == '\n')
					buf[len - 1] = 0;
				snprintf(th->comm, sizeof(th->comm), "%s", buf);
				free(buf);
			} else {
				md_error_destroy(err);
			}
		}
	}
	return NULL;
}

/* ---- what the pause could not hold ---- */

static bool read_small(const char *path, char *out, size_t len)
{
	char *buf;
	size_t n;
	struct md_error *err = md_read_file(path, &buf, &n);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	snprintf(out, len, "%.*s", (int)n, buf);
	out[strcspn(out, "\n")] = 0;
	free(buf);
	return true;
}

#define MD_CLONE_VFORK 0x4000ULL

/* The thread's cgroup is frozen: cgroup v1 freezer.state FROZEN/FREEZING, v2 cgroup.freeze 1. (Since
 * Linux 6.1 a frozen task keeps its wait channel, so wchan does not tell.) */
static bool in_frozen_cgroup(pid_t tgid, pid_t tid)
{
	char path[PATH_MAX], *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/cgroup", (int)tgid, (int)tid);
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	bool frozen = false;
	for (char *line = buf; line && *line && !frozen;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2) {
			char state[32] = "";
			bool v1 = strncmp(c1 + 1, "freezer", 7) == 0 && (c1[8] == ':' || c1[8] == ',');
			bool v2 = c1 == line + 1 && line[0] == '0' && c2 == c1 + 1;
			if (v1 && snprintf(path, sizeof(path), "/sys/fs/cgroup/freezer%s/freezer.state", c2 + 1) < (int)sizeof(path))
				frozen = read_small(path, state, sizeof(state)) && strcmp(state, "THAWED") != 0;
			else if (v2 && snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cgroup.freeze", c2 + 1) < (int)sizeof(path))
				frozen = read_small(path, state, sizeof(state)) && strcmp(state, "1") == 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(buf);
	return frozen;
}

/* State, wchan and system call of a thread left running, and what they mean. */
static void describe_unstopped(struct live *lv, const struct task *tk, struct md_live_unstopped *u)
{
	memset(u, 0, sizeof(*u));
	u->tid = tk->tid;
	u->tgid = tk->tgid;
	u->syscall = -1;
	char path[96], text[256];
	u->state = thread_state(tk->tgid, tk->tid);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)tk->tgid, (int)tk->tid);
	if (!read_small(path, u->comm, sizeof(u->comm)))
		snprintf(u->comm, sizeof(u->comm), "?");
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", (int)tk->tgid, (int)tk->tid);
	if (!read_small(path, u->wchan, sizeof(u->wchan)) || !u->wchan[0] || strcmp(u->wchan, "0") == 0)
		snprintf(u->wchan, sizeof(u->wchan), "?");
	/* "nr arg1 .. arg6 sp pc" while blocked in a system call, "-1 sp pc" outside one. */
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)tk->tgid, (int)tk->tid);
	if (read_small(path, text, sizeof(text))) {
		unsigned long long v[9];
		long nr = strtol(text, NULL, 10);
		int n = sscanf(text, "%*d %llx %llx %llx %llx %llx %llx %llx %llx", &v[0], &v[1], &v[2], &v[3], &v[4],
			       &v[5], &v[6], &v[7]);
		if (n == 8) {
			u->syscall = nr;
			u->sp = v[6];
			uint64_t flags = 0;
			if (nr == SYS_clone)
				flags = v[0];
			if (nr == SYS_clone3) {
				struct md_error *rerr = read_via_mem(lv, v[0], &flags, sizeof(flags));
				if (rerr)
					flags = 0;
				md_error_destroy(rerr);
			}
			u->vfork = nr == SYS_vfork || (flags & MD_CLONE_VFORK);
		} else if (sscanf(text, "%*d %llx", &v[0]) == 1) {
			u->sp = v[0];
		}
	}
	u->frozen = strstr(u->wchan, "refrigerator") != NULL || in_frozen_cgroup(tk->tgid, tk->tid);
}

static bool allocator_syscall(long nr)
{
	return nr == SYS_brk || nr == SYS_mmap || nr == SYS_munmap || nr == SYS_mprotect || nr == SYS_madvise ||
	       nr == SYS_mremap || nr == SYS_futex;
}

static void add_note(struct md_live_capture *cap, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_note(struct md_live_capture *cap, const char *fmt, ...)
{
	char **nn = realloc(cap->notes, (cap->n_notes + 1) * sizeof(*nn));
	if (!nn)
		return;
	cap->notes = nn;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&cap->notes[cap->n_notes], fmt, ap) >= 0)
		cap->n_notes++;
	va_end(ap);
}

/* A thread or process name for a note: the target chose it, so control bytes become '?' (the
 * notes go to terminals as they are). */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void note_unstopped(struct md_live_capture *cap, struct md_live_unstopped *u, pid_t pid)
{
	printable(u->comm);
	printable(u->wchan);
	char who[64];
	if (u->tgid == pid)
		snprintf(who, sizeof(who), "thread %d", (int)u->tid);
	else
		snprintf(who, sizeof(who), "thread %d of process %d (sharing the address space)", (int)u->tid, (int)u->tgid);
	if (u->vfork)
		add_note(cap, "%s (%s) could not be stopped: state %c, wchan %s, in vfork() waiting for its child to exec or exit; "
			 "a vfork parent cannot be inside malloc, so the figures are consistent",
			 who, u->comm, u->state ?: '?', u->wchan);
	else if (u->frozen)
		add_note(cap, "%s (%s) could not be stopped: it is frozen by the cgroup freezer (state %c, wchan %s); it was left frozen "
			 "and its registers could not be read: if it was frozen inside the allocator (system call %ld), the figures may be inconsistent",
			 who, u->comm, u->state ?: '?', u->wchan, u->syscall);
	else if (u->syscall < 0)
		add_note(cap, "%s (%s) could not be stopped within %d ms: state %c (uninterruptible sleep outside a system call: a page fault "
			 "waiting for memory or I/O), wchan %s; it was left running: a fault can come from inside the allocator, the figures "
			 "may be inconsistent",
			 who, u->comm, STUCK_AFTER_MS, u->state ?: '?', u->wchan);
	else
		add_note(cap, "%s (%s) could not be stopped within %d ms: state %c (uninterruptible sleep: waiting on I/O or a lock in the kernel), "
			 "wchan %s, system call %ld; it was left running%s",
			 who, u->comm, STUCK_AFTER_MS, u->state ?: '?', u->wchan, u->syscall,
			 allocator_syscall(u->syscall) ? ": that call may come from inside the allocator, the figures may be inconsistent"
						       : ": it is not inside the allocator while it sleeps there");
}

/* The notes on what the pause could not hold: stuck threads, sharers of the address space. */
static void capture_unstopped(struct live *lv, struct md_live_capture *cap)
{
	for (size_t i = 0; i < lv->n_tasks; i++) {
		if (lv->tasks[i].state != TASK_STUCK)
			continue;
		struct md_live_unstopped *nu = realloc(cap->unstopped, (cap->n_unstopped + 1) * sizeof(*nu));
		if (!nu)
			break;
		cap->unstopped = nu;
		describe_unstopped(lv, &lv->tasks[i], &nu[cap->n_unstopped]);
		note_unstopped(cap, &nu[cap->n_unstopped], lv->pid);
		cap->n_unstopped++;
	}
	for (size_t i = 0; i < lv->n_sharers; i++) {
		const struct sharer *sh = &lv->sharers[i];
		char comm[64];
		comm_of(sh->tgid, comm, sizeof(comm));
		printable(comm);
		if (sh->refused[0])
			add_note(cap, "process %d (%s) shares the target's address space (clone with CLONE_VM) and could not be stopped (%s): "
				 "it ran during the pause, the figures may be inconsistent",
				 (int)sh->tgid, comm, sh->refused);
		else
			add_note(cap, "process %d (%s) shares the target's address space (clone with CLONE_VM): it was stopped too, and its "
				 "threads count as the target's",
				 (int)sh->tgid, comm);
	}
}

static bool auxv_changed(struct live *lv)
{
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)lv->mm_tid);
	struct md_error *err = md_read_file(path, &buf, &len);
	if (err) {
		md_error_destroy(err);
		return false;
	}
	bool changed = lv->auxv && (len != lv->auxv_len || memcmp(buf, lv->auxv, len) != 0);
	free(buf);
	return changed;
}

/* Point mm_tid at a stopped task when the leader has gone (pthread_exit). */
static void choose_mm_tid(struct live *lv)
{
	for (size_t i = 0; i < lv->n_tasks; i++)
		if (lv->tasks[i].tid == lv->pid && lv->tasks[i].state == TASK_STOPPED) {
			lv->mm_tid = lv->pid;
			return;
		}
	for (size_t i = 0; i < lv->n_tasks; i++)
		if (lv->tasks[i].tgid == lv->pid && lv->tasks[i].state == TASK_STOPPED) {
			lv->mm_tid = lv->tasks[i].tid;
			return;
		}
}

struct md_error *md_live_capture(struct md_target *t, struct md_live_capture *cap)
{
	struct live *lv = live_of(t);
	memset(cap, 0, sizeof(*cap));
	md_target_cache_drop(t);
	if (lv->execed || auxv_changed(lv))
		return md_error_create(MD_ERR_EXECED, "process %d exec'd during the attach", (int)lv->pid);
	choose_mm_tid(lv);
	struct md_error *err = read_threads(t);
	if (!err)
		err = gather(t, cap);
	if (!err)
		err = read_all_pagemaps(t, &cap->reconciled_pages, &cap->guessed_zero_pages);
	if (!err)
		err = read_status(lv->mm_tid, &cap->status);
	if (err)
		return exec_instead(lv, err);
	capture_unstopped(lv, cap);
	mark_stacks(t, cap);
	comm_of(lv->pid, cap->comm, sizeof(cap->comm));
	char path[64], exe[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)lv->mm_tid);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		cap->exe = strdup(exe);
	}
	return NULL;
}

void md_live_capture_deinit(struct md_live_capture *cap)
{
	free(cap->exe);
	cap->exe = NULL;
	for (size_t i = 0; i < cap->n_notes; i++)
		free(cap->notes[i]);
	free(cap->notes);
	cap->notes = NULL;
	cap->n_notes = 0;
	free(cap->unstopped);
	cap->unstopped = NULL;
	cap->n_unstopped = 0;
}

static void account_pause(struct live *lv)
{
	if (!lv->stopped)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	lv->paused_seconds += (double)(now.tv_sec - lv->stop_started.tv_sec) +
			      (double)(now.tv_nsec - lv->stop_started.tv_nsec) / 1e9;
	lv->stopped = false;
}

struct md_error *md_live_resume_briefly(struct md_target *t, unsigned usec)
{
	struct live *lv = live_of(t);
	for (size_t i = 0; i < lv->n_tasks; i++) {
		struct task *tk = &lv->tasks[i];
		if (tk->state != TASK_STOPPED)
			continue;
		if (ptrace(PTRACE_CONT, tk->tid, 0, (void *)(long)tk->pending_sig) == 0) {
			tk->state = TASK_RUNNING;
			tk->pending_sig = 0;
		} else if (errno == ESRCH) {
			tk->state = TASK_GONE;
		}
	}
	account_pause(lv);
	struct timespec ts = { usec / 1000000, (long)(usec % 1000000) * 1000 };
	nanosleep(&ts, NULL);
	clock_gettime(CLOCK_MONOTONIC, &lv->stop_started);
	lv->stopped = true;
	publish_held(lv);
	for (size_t i = 0; i < lv->n_tasks; i++) {
		struct task *tk = &lv->tasks[i];
		if (tk->state == TASK_RUNNING && ptrace(PTRACE_INTERRUPT, tk->tid, 0, 0) != 0 && errno == ESRCH)
			tk->state = TASK_GONE;
	}
	struct md_error *err = wait_all_stopped(lv, true);
	if (!err)
		err = stop_all(t); /* threads may have been born while it ran */
	err = exec_instead(lv, err);
	md_target_cache_drop(t);
	if (err)
		md_live_detach(t);
	return err;
}

void md_live_detach(struct md_target *t)
{
	struct live *lv = live_of(t);
	if (!lv)
		return;
	/* Detach needs a stopped tracee: finish the stops we asked for first (not interruptible:
	 * this is how the target gets going again). Threads that cannot stop are not waited for. */
	md_error_destroy(wait_all_stopped(lv, false));
	for (size_t i = 0; i < lv->n_tasks; i++) {
		struct task *tk = &lv->tasks[i];
		if (tk->state == TASK_GONE)
			continue;
		if (tk->state != TASK_STOPPED) {
			linger(lv, tk->tid); /* stuck, or did not stop in time: let go once it stops */
			tk->state = TASK_GONE;
			continue;
		}
		if (ptrace(PTRACE_DETACH, tk->tid, 0, (void *)(long)tk->pending_sig) != 0 && errno != ESRCH) {
			/* Not in a ptrace stop (should not happen): interrupt, then detach later. */
			ptrace(PTRACE_INTERRUPT, tk->tid, 0, 0);
			linger(lv, tk->tid);
		}
		tk->state = TASK_GONE;
		tk->pending_sig = 0;
	}
	lv->n_tasks = 0;
	unpublish_held(lv);
	account_pause(lv);
	release_lingering(lv->tracer);
}

bool md_live_process_gone(pid_t pid)
{
	struct md_proc_status st;
	struct md_error *err = read_status(pid, &st);
	if (err) {
		md_error_destroy(err);
		return true;
	}
	return st.state == 'Z' || st.state == 'X';
}

double md_live_pause_seconds(const struct md_target *t)
{
	const struct live *lv = live_of(t);
	double s = lv->paused_seconds;
	if (lv->stopped) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		s += (double)(now.tv_sec - lv->stop_started.tv_sec) +
		     (double)(now.tv_nsec - lv->stop_started.tv_nsec) / 1e9;
	}
	return s;
}

/* ---- signals ---- */

static void on_interrupt(int sig)
{
	(void)sig;
	md_live_interrupted = 1;
}

/* Our own crash: let every held thread go before dying (the kernel would also do it when we
 * are gone, but a core dump of memdissect can take long). Only async-signal-safe calls. */
static void on_fatal(int sig)
{
	pid_t *tids = held_tids;
	size_t n = held_n;
	for (size_t i = 0; tids && i < n; i++)
		ptrace(PTRACE_DETACH, tids[i], 0, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

void md_live_install_signal_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
#ifndef __SANITIZE_ADDRESS__
	sa.sa_handler = on_fatal;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
#else
	(void)on_fatal;
#endif
}

/* ---- letting some threads run on (safe points) ---- */

struct md_error *md_live_read_threads(struct md_target *t)
{
	md_target_cache_drop(t);
	return read_threads(t);
}

struct md_error *md_live_run_threads(struct md_target *t, const int32_t *tids, size_t n)
{
	struct live *lv = live_of(t);
	for (size_t i = 0; i < n; i++) {
		struct task *tk = find_task(lv, tids[i]);
		if (!tk || tk->state != TASK_STOPPED)
			continue;
		if (ptrace(PTRACE_CONT, tk->tid, 0, (void *)(long)tk->pending_sig) == 0) {
			tk->state = TASK_RUNNING;
			tk->pending_sig = 0;
		} else if (errno == ESRCH) {
			tk->state = TASK_GONE;
		}
	}
	/* The others stay stopped: the pause goes on. Running threads are not ours to detach in
	 * a crash handler (they are not in a ptrace stop). */
	publish_held(lv);
	md_target_cache_drop_writable(t);
	return NULL;
}

/* Has the thread a stop or exit to report (left for wait_stopped to collect)? */
static bool stop_pending(pid_t tid)
{
	siginfo_t info;
	info.si_pid = 0;
	return waitid(P_PID, (id_t)tid, &info, WSTOPPED | WEXITED | WNOHANG | WNOWAIT | __WALL) != 0 || info.si_pid;
}

/* A thread that is on a CPU when interrupted stops within microseconds: wait for that by
 * spinning a little rather than sleeping 50 us. */
static void spin_until_stopped(pid_t tid, unsigned spins)
{
	for (unsigned i = 0; i < spins && !stop_pending(tid); i++)
		;
}

struct md_error *md_live_stop_threads(struct md_target *t, const int32_t *tids, size_t n)
{
	struct live *lv = live_of(t);
	for (size_t i = 0; i < n; i++) {
		struct task *tk = find_task(lv, tids[i]);
		/* A thread that stopped by itself meanwhile (a signal, the trap of an interrupt that
		 * came while it was stopped) must not be interrupted again: the kernel would keep
		 * that interrupt for after the next resume, and the thread would stop at once, every
		 * time, without running an instruction. */
		if (!tk || tk->state != TASK_RUNNING || stop_pending(tk->tid))
			continue;
		if (ptrace(PTRACE_INTERRUPT, tk->tid, 0, 0) != 0 && errno == ESRCH)
			tk->state = TASK_GONE;
	}
	for (size_t i = 0; i < n; i++) {
		struct task *tk = find_task(lv, tids[i]);
		if (tk && tk->state == TASK_RUNNING)
			spin_until_stopped(tk->tid, 64);
	}
	/* One deadline for all of them; one that cannot stop is left as stuck, as in md_live_stop. */
	struct md_error *err = wait_some_stopped(lv, true, tids, n);
	publish_held(lv);
	/* Their registers; a thread that is gone stays in the list with regs_valid false. */
	for (size_t i = 0; i < t->n_threads && !err; i++) {
		struct md_thread *th = &t->threads[i];
		bool listed = false;
		for (size_t k = 0; k < n && !listed; k++)
			listed = tids[k] == th->tid;
		if (!listed)
			continue;
		struct task *tk = find_task(lv, th->tid);
		struct user_regs_struct regs;
		th->regs_valid = tk && tk->state == TASK_STOPPED && ptrace(PTRACE_GETREGS, tk->tid, 0, &regs) == 0;
		if (th->regs_valid)
			memcpy(th->regs, &regs, sizeof(regs));
	}
	md_target_cache_drop_writable(t);
	if (err)
		md_live_detach(t);
	return err;
}

struct md_error *md_live_interrupt_thread(struct md_target *t, int32_t tid)
{
	struct live *lv = live_of(t);
	struct task *tk = find_task(lv, tid);
	if (tk && tk->state == TASK_RUNNING && !stop_pending(tk->tid) && ptrace(PTRACE_INTERRUPT, tk->tid, 0, 0) != 0 &&
	    errno == ESRCH)
		tk->state = TASK_GONE;
	return NULL;
}

bool md_live_thread_stop_pending(struct md_target *t, int32_t tid)
{
	struct task *tk = find_task(live_of(t), tid);
	return !tk || tk->state != TASK_RUNNING || stop_pending(tk->tid);
}
