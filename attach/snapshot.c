/* memdissect snapshot: stop, capture, copy the resident pages, detach, then write an ELF core.
 *
 * The pause holds only what must be consistent: the /proc capture (smaps, pagemap, registers)
 * and a copy of the resident pages (process_vm_readv, pages the pagemap shows present only, so
 * nothing is faulted in). The ELF file itself is written after the target runs again, unless
 * the copy would not fit in memory; then the pages go straight to the file during the pause.
 *
 * Layout (docs/cores.md): the ELF header, then page-aligned segment data from offset 4096, then
 * the notes, then the program headers (and one section header when there are more than 65534
 * segments). A mapping becomes several PT_LOADs: runs that are in the file (resident pages, and
 * short holes of never-touched anonymous memory, which read as zeros) and runs that are not
 * (p_filesz 0: file pages not resident, swapped pages, long untouched stretches), so gdb reads
 * file text from the file and never mistakes a missing page for zeros. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "live.h"
#include "procfs.h"
#include "memdissect/report.h"
#include "safepoint.h"
#include "snapshot.h"
#include "target_impl.h"

#define DATA_START 4096
#define MAX_HOLE_PAGES 256             /* untouched anonymous runs longer than this stay out */
#define STREAM_CHUNK (4u << 20)
#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Where a page's bytes go. */
enum page_class {
	PC_DATA, /* resident: copied */
	PC_ZERO, /* reads as zeros: the zero page, or anonymous memory never touched */
	PC_OUT,  /* not in the file: file page not resident, swapped, unreadable */
};

struct write_extent {
	uint64_t file_off, buf_off, len;
};

struct writer {
	struct md_target *t;
	int fd;
	bool stream;
	uint8_t *buf; /* memory mode: resident pages, packed */
	size_t buf_len, buf_used;
	uint8_t *bounce; /* stream mode */
	struct write_extent *ext;
	size_t n_ext, cap_ext;
	Elf64_Phdr *ph;
	size_t n_ph, cap_ph;
	uint64_t cursor; /* next free data offset */
	uint64_t resident_bytes, unreadable_pages;
};

static struct md_error *push_ph(struct writer *w, const Elf64_Phdr *ph)
{
	if (w->n_ph == w->cap_ph) {
		size_t cap = w->cap_ph ? w->cap_ph * 2 : 256;
		Elf64_Phdr *n = realloc(w->ph, cap * sizeof(*n));
		if (!n)
			return &md_error_nomem;
		w->ph = n;
		w->cap_ph = cap;
	}
	w->ph[w->n_ph++] = *ph;
	return NULL;
}

static struct md_error *push_ext(struct writer *w, uint64_t file_off, uint64_t buf_off, uint64_t len)
{
	if (w->n_ext && w->ext[w->n_ext - 1].file_off + w->ext[w->n_ext - 1].len == file_off &&
	    w->ext[w->n_ext - 1].buf_off + w->ext[w->n_ext - 1].len == buf_off) {
		w->ext[w->n_ext - 1].len += len;
		return NULL;
	}
	if (w->n_ext == w->cap_ext) {
		size_t cap = w->cap_ext ? w->cap_ext * 2 : 256;
		struct write_extent *n = realloc(w->ext, cap * sizeof(*n));
		if (!n)
			return &md_error_nomem;
		w->ext = n;
		w->cap_ext = cap;
	}
	w->ext[w->n_ext++] = (struct write_extent){ file_off, buf_off, len };
	return NULL;
}

static struct md_error *pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return md_error_os(n < 0 ? errno : EIO, "writing the snapshot");
		done += (size_t)n;
	}
	return NULL;
}

static uint32_t pflags(uint32_t perms)
{
	return (perms & MD_PERM_READ ? PF_R : 0) | (perms & MD_PERM_WRITE ? PF_W : 0) | (perms & MD_PERM_EXEC ? PF_X : 0);
}

static bool file_backed(const struct md_mapping *m)
{
	return (m->path && m->path[0] == '/') || m->kind == MD_MAP_SHARED || (m->perms & MD_PERM_SHARED);
}

static enum page_class classify(const struct md_mapping *m, uint64_t i)
{
	uint8_t bits = m->pages ? m->pages[i] : 0;
	if ((bits & MD_PAGE_PRESENT) && !(bits & MD_PAGE_ZERO))
		return PC_DATA;
	if (bits & MD_PAGE_SWAPPED)
		return PC_OUT;
	if (bits & MD_PAGE_PRESENT)
		return PC_ZERO;
	return file_backed(m) ? PC_OUT : PC_ZERO;
}

/* Copy n resident pages at addr to the file offset off (directly or through the buffer). Pages
 * that cannot be read are reported in *bad (one bit per page, n <= 64 at a time). */
static struct md_error *copy_pages(struct writer *w, uint64_t addr, uint64_t off, size_t n, bool *ok)
{
	size_t len = n * MD_PAGE_SIZE;
	uint8_t *dst = w->stream ? w->bounce : w->buf + w->buf_used;
	if (!w->stream && w->buf_used + len > w->buf_len)
		return md_error_create(MD_ERR_EXITED, "the target's memory grew during the snapshot");
	/* The pagemap said present (classify): read straight from the target, past the read
	 * cache, which would pull whole blocks (file pages from disk) around each small run. */
	struct md_error *err = w->t->ops->read_present(w->t, addr, dst, len);
	if (err) {
		if (err->code == MD_ERR_EXITED || err->code == MD_ERR_NOMEM)
			return err;
		md_error_destroy(err);
		*ok = false;
		return NULL;
	}
	*ok = true;
	w->resident_bytes += len;
	if (w->stream)
		return pwrite_all(w->fd, dst, len, off);
	err = push_ext(w, off, w->buf_used, len);
	w->buf_used += len;
	return err;
}

/* A run of pages in the file: copy the data pages, leave the zero pages as holes. A page that
 * cannot be read ends the segment: it becomes a p_filesz 0 segment of its own. */
static struct md_error *emit_in_file(struct writer *w, const struct md_mapping *m, uint64_t first, uint64_t end)
{
	uint64_t seg_start = first;
	struct md_error *err;
	for (uint64_t i = first; i < end;) {
		if (classify(m, i) != PC_DATA) {
			i++;
			continue;
		}
		uint64_t j = i + 1;
		uint64_t limit = w->stream ? STREAM_CHUNK / MD_PAGE_SIZE : 4096;
		while (j < end && j - i < limit && classify(m, j) == PC_DATA)
			j++;
		uint64_t addr = m->start + i * MD_PAGE_SIZE;
		uint64_t off = w->cursor + (i - seg_start) * MD_PAGE_SIZE;
		bool ok;
		if ((err = copy_pages(w, addr, off, (size_t)(j - i), &ok)))
			return err;
		if (ok) {
			i = j;
			continue;
		}
		/* Page by page to find the unreadable ones. */
		for (uint64_t k = i; k < j; k++) {
			addr = m->start + k * MD_PAGE_SIZE;
			off = w->cursor + (k - seg_start) * MD_PAGE_SIZE;
			if ((err = copy_pages(w, addr, off, 1, &ok)))
				return err;
			if (ok)
				continue;
			w->unreadable_pages++;
			/* Close the segment before k, put k out of the file, start again after it. */
			if (k > seg_start) {
				Elf64_Phdr ph = { .p_type = PT_LOAD, .p_flags = pflags(m->perms),
						  .p_offset = w->cursor, .p_vaddr = m->start + seg_start * MD_PAGE_SIZE,
						  .p_filesz = (k - seg_start) * MD_PAGE_SIZE,
						  .p_memsz = (k - seg_start) * MD_PAGE_SIZE, .p_align = MD_PAGE_SIZE };
				if ((err = push_ph(w, &ph)))
					return err;
				w->cursor += ph.p_filesz;
			}
			Elf64_Phdr out = { .p_type = PT_LOAD, .p_flags = pflags(m->perms), .p_offset = w->cursor,
					   .p_vaddr = addr, .p_memsz = MD_PAGE_SIZE, .p_align = MD_PAGE_SIZE };
			if ((err = push_ph(w, &out)))
				return err;
			seg_start = k + 1;
		}
		i = j;
	}
	if (end > seg_start) {
		Elf64_Phdr ph = { .p_type = PT_LOAD, .p_flags = pflags(m->perms), .p_offset = w->cursor,
				  .p_vaddr = m->start + seg_start * MD_PAGE_SIZE,
				  .p_filesz = (end - seg_start) * MD_PAGE_SIZE, .p_memsz = (end - seg_start) * MD_PAGE_SIZE,
				  .p_align = MD_PAGE_SIZE };
		if ((err = push_ph(w, &ph)))
			return err;
		w->cursor += ph.p_filesz;
	}
	return NULL;
}

static struct md_error *emit_out(struct writer *w, const struct md_mapping *m, uint64_t first, uint64_t end)
{
	Elf64_Phdr ph = { .p_type = PT_LOAD, .p_flags = pflags(m->perms), .p_offset = w->cursor,
			  .p_vaddr = m->start + first * MD_PAGE_SIZE, .p_memsz = (end - first) * MD_PAGE_SIZE,
			  .p_align = MD_PAGE_SIZE };
	return push_ph(w, &ph);
}

/* The vDSO is the same image in every process of this kernel: its pages that the target never
 * touched are copied from ours (reading the target's would fault them in), so that gdb finds
 * a whole ELF image there. */
static struct md_error *emit_vdso(struct writer *w, const struct md_mapping *m)
{
	uint64_t len = m->end - m->start;
	const uint8_t *ours = (const uint8_t *)(uintptr_t)getauxval(AT_SYSINFO_EHDR);
	if (!ours || w->stream || w->buf_used + len > w->buf_len || !m->pages)
		return NULL;
	char *maps;
	size_t mlen;
	struct md_error *err = md_read_file("/proc/self/maps", &maps, &mlen);
	if (err) {
		md_error_destroy(err);
		return NULL;
	}
	uint64_t our_len = 0;
	for (char *line = maps; line && *line;) {
		unsigned long long a, b;
		if (strstr(line, "[vdso]") && sscanf(line, "%llx-%llx", &a, &b) == 2 && a == (uintptr_t)ours)
			our_len = b - a;
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	free(maps);
	if (our_len != len)
		return NULL;
	uint8_t *dst = w->buf + w->buf_used;
	for (uint64_t p = 0; p < len; p += MD_PAGE_SIZE) {
		bool ok = false;
		if (classify(m, p / MD_PAGE_SIZE) == PC_DATA) {
			err = w->t->ops->read_present(w->t, m->start + p, dst + p, MD_PAGE_SIZE);
			ok = !err;
			md_error_destroy(err);
		}
		if (!ok)
			memcpy(dst + p, ours + p, MD_PAGE_SIZE);
	}
	Elf64_Phdr ph = { .p_type = PT_LOAD, .p_flags = pflags(m->perms), .p_offset = w->cursor, .p_vaddr = m->start,
			  .p_filesz = len, .p_memsz = len, .p_align = MD_PAGE_SIZE };
	if ((err = push_ext(w, w->cursor, w->buf_used, len)) || (err = push_ph(w, &ph)))
		return err;
	w->buf_used += len;
	w->cursor += len;
	w->resident_bytes += len;
	return NULL;
}

/* One mapping: alternate runs in the file and out of it. A run of zero pages stays in the file
 * (as a hole) only when it is short and data follows: that is what makes gdb read .bss zeros,
 * while a huge untouched reservation does not inflate the file. */
static struct md_error *emit_mapping(struct writer *w, const struct md_mapping *m)
{
	uint64_t npages = (m->end - m->start) / MD_PAGE_SIZE;
	if (!(m->perms & MD_PERM_READ) || !m->pages)
		return emit_out(w, m, 0, npages);
	struct md_error *err;
	if (m->path && strcmp(m->path, "[vdso]") == 0) {
		size_t before = w->n_ph;
		if ((err = emit_vdso(w, m)))
			return err;
		if (w->n_ph > before)
			return NULL;
	}
	uint64_t i = 0;
	while (i < npages) {
		/* The in-file run starting at i. */
		uint64_t j = i;
		for (;;) {
			while (j < npages && classify(m, j) == PC_DATA)
				j++;
			uint64_t z = j;
			while (z < npages && classify(m, z) == PC_ZERO)
				z++;
			if (z > j && z < npages && z - j <= MAX_HOLE_PAGES && classify(m, z) == PC_DATA && j > i) {
				j = z;
				continue;
			}
			break;
		}
		if (j > i) {
			if ((err = emit_in_file(w, m, i, j)))
				return err;
			i = j;
			continue;
		}
		/* Out of the file: zero and out pages up to the next data page. */
		while (j < npages && classify(m, j) != PC_DATA)
			j++;
		if ((err = emit_out(w, m, i, j)))
			return err;
		i = j;
	}
	return NULL;
}

/* ---- notes ---- */

static void note_add(struct md_wire *w, const char *name, uint32_t type, const void *desc, size_t len)
{
	static const uint8_t pad[4];
	uint32_t namesz = (uint32_t)strlen(name) + 1;
	uint32_t hdr[3] = { namesz, (uint32_t)len, type };
	struct md_wire *o = w;
	size_t need = 12 + ((namesz + 3) & ~3u) + ((len + 3) & ~(size_t)3);
	if (o->failed)
		return;
	if (o->len + need > o->cap) {
		size_t cap = o->cap ? o->cap : 65536;
		while (cap < o->len + need)
			cap *= 2;
		uint8_t *nd = realloc(o->data, cap);
		if (!nd) {
			o->failed = true;
			return;
		}
		o->data = nd;
		o->cap = cap;
	}
	memcpy(o->data + o->len, hdr, 12);
	o->len += 12;
	memcpy(o->data + o->len, name, namesz);
	o->len += namesz;
	memcpy(o->data + o->len, pad, ((namesz + 3) & ~3u) - namesz);
	o->len += ((namesz + 3) & ~3u) - namesz;
	if (len)
		memcpy(o->data + o->len, desc, len);
	o->len += len;
	memcpy(o->data + o->len, pad, ((len + 3) & ~(size_t)3) - len);
	o->len += ((len + 3) & ~(size_t)3) - len;
}

struct proc_extra {
	uint8_t *auxv;
	size_t auxv_len;
	char psargs[ELF_PRARGSZ];
	int32_t pgrp, sid;
	uint8_t (*fpregs)[sizeof(struct user_fpregs_struct)];
	bool *fp_valid;
};

static void read_extra_before(pid_t pid, struct proc_extra *x)
{
	char path[64], *buf;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%d/auxv", (int)pid);
	struct md_error *err = md_read_file(path, &buf, &len);
	if (!err) {
		x->auxv = (uint8_t *)buf;
		x->auxv_len = len;
	}
	md_error_destroy(err);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	err = md_read_file(path, &buf, &len);
	if (!err) {
		size_t n = len < sizeof(x->psargs) - 1 ? len : sizeof(x->psargs) - 1;
		for (size_t i = 0; i < n; i++)
			x->psargs[i] = buf[i] ? buf[i] : ' ';
		while (n > 0 && x->psargs[n - 1] == ' ')
			n--;
		x->psargs[n] = 0;
		free(buf);
	}
	md_error_destroy(err);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	err = md_read_file(path, &buf, &len);
	if (!err) {
		const char *p = strrchr(buf, ')');
		int ppid, pgrp, sid;
		char state;
		if (p && sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) == 4) {
			x->pgrp = pgrp;
			x->sid = sid;
		}
		free(buf);
	}
	md_error_destroy(err);
}

/* Floating-point registers, while the threads are stopped (gdb shows them; unwinding does not
 * need them). */
static void read_fpregs(const struct md_target *t, struct proc_extra *x)
{
	x->fpregs = calloc(t->n_threads ? t->n_threads : 1, sizeof(*x->fpregs));
	x->fp_valid = calloc(t->n_threads ? t->n_threads : 1, sizeof(*x->fp_valid));
	if (!x->fpregs || !x->fp_valid)
		return;
	for (size_t i = 0; i < t->n_threads; i++)
		x->fp_valid[i] = ptrace(PTRACE_GETFPREGS, t->threads[i].tid, 0, x->fpregs[i]) == 0;
}

static void prstatus_note(struct md_wire *w, const struct md_target *t, size_t i, const struct md_live_capture *cap,
			  const struct proc_extra *x)
{
	struct elf_prstatus pr;
	memset(&pr, 0, sizeof(pr));
	pr.pr_pid = t->threads[i].tid;
	pr.pr_ppid = cap->status.ppid;
	pr.pr_pgrp = x->pgrp;
	pr.pr_sid = x->sid;
	memcpy(&pr.pr_reg, t->threads[i].regs, sizeof(pr.pr_reg));
	pr.pr_fpvalid = x->fp_valid && x->fp_valid[i];
	note_add(w, "CORE", NT_PRSTATUS, &pr, sizeof(pr));
	if (x->fp_valid && x->fp_valid[i])
		note_add(w, "CORE", NT_FPREGSET, x->fpregs[i], sizeof(x->fpregs[i]));
}

static struct md_error *build_notes(const struct md_target *t, const struct md_live_capture *cap,
				    const struct proc_extra *x, const struct md_snapshot_meta *meta, struct md_wire *w)
{
	memset(w, 0, sizeof(*w));
	/* The kernel's order: first thread, process info, auxv, files, then the other threads. */
	if (t->n_threads)
		prstatus_note(w, t, 0, cap, x);
	struct elf_prpsinfo ps;
	memset(&ps, 0, sizeof(ps));
	static const char states[] = "RSDTZW";
	const char *st = strchr(states, cap->status.state);
	ps.pr_state = st && cap->status.state ? (char)(st - states) : 0;
	ps.pr_sname = cap->status.state;
	ps.pr_uid = cap->status.uid[0];
	ps.pr_gid = cap->status.gid[0];
	ps.pr_pid = t->pid;
	ps.pr_ppid = cap->status.ppid;
	ps.pr_pgrp = x->pgrp;
	ps.pr_sid = x->sid;
	memcpy(ps.pr_fname, cap->comm, strnlen(cap->comm, sizeof(ps.pr_fname)));
	memcpy(ps.pr_psargs, x->psargs, sizeof(ps.pr_psargs));
	note_add(w, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
	if (x->auxv)
		note_add(w, "CORE", NT_AUXV, x->auxv, x->auxv_len);

	uint64_t count = 0;
	for (size_t i = 0; i < t->n_mappings; i++)
		count += t->mappings[i].path && t->mappings[i].path[0] == '/';
	uint64_t hdr[2] = { count, MD_PAGE_SIZE };

	/* NT_FILE: count, page size, {start, end, page offset} per file mapping, then the names. */
	size_t cap_bytes = 16 + (size_t)count * 24;
	for (size_t i = 0; i < t->n_mappings; i++)
		if (t->mappings[i].path && t->mappings[i].path[0] == '/')
			cap_bytes += strlen(t->mappings[i].path) + (t->mappings[i].deleted ? 10 : 0) + 1;
	uint8_t *desc = calloc(cap_bytes, 1);
	if (!desc) {
		md_wire_deinit(w);
		return &md_error_nomem;
	}
	memcpy(desc, hdr, 16);
	size_t e = 16, names = 16 + (size_t)count * 24;
	for (size_t i = 0; i < t->n_mappings; i++) {
		const struct md_mapping *m = &t->mappings[i];
		if (!m->path || m->path[0] != '/')
			continue;
		uint64_t ent[3] = { m->start, m->end, m->offset / MD_PAGE_SIZE };
		memcpy(desc + e, ent, sizeof(ent));
		e += sizeof(ent);
		size_t pl = strlen(m->path);
		memcpy(desc + names, m->path, pl);
		names += pl;
		if (m->deleted) {
			memcpy(desc + names, " (deleted)", 10);
			names += 10;
		}
		desc[names++] = 0;
	}
	note_add(w, "CORE", NT_FILE, desc, names);
	free(desc);
	for (size_t i = 1; i < t->n_threads; i++)
		prstatus_note(w, t, i, cap, x);

	static const enum md_core_note_type types[] = { MD_NT_INFO,  MD_NT_ROLLUP,  MD_NT_STATUS, MD_NT_MAPS,
							MD_NT_PAGES, MD_NT_THREADS, MD_NT_SYSTEM };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct md_wire d;
		struct md_error *err = md_core_encode_note(types[i], t, meta, &d);
		if (err) {
			md_wire_deinit(w);
			return err;
		}
		note_add(w, MD_CORE_NOTE_NAME, types[i], d.data, d.len);
		md_wire_deinit(&d);
	}
	if (w->failed) {
		md_wire_deinit(w);
		return &md_error_nomem;
	}
	return NULL;
}

/* ---- the snapshot ---- */

static uint64_t mem_available(void)
{
	char *buf;
	size_t len;
	struct md_error *err = md_read_file("/proc/meminfo", &buf, &len);
	if (err) {
		md_error_destroy(err);
		return 0;
	}
	struct md_meminfo mi = { 0 };
	err = md_parse_meminfo(buf, len, &mi);
	free(buf);
	md_error_destroy(err);
	return mi.mem_available;
}

static uint64_t resident_data_bytes(const struct md_target *t)
{
	uint64_t n = 0;
	for (size_t i = 0; i < t->n_mappings; i++) {
		const struct md_mapping *m = &t->mappings[i];
		if (!(m->perms & MD_PERM_READ) || !m->pages)
			continue;
		uint64_t np = (m->end - m->start) / MD_PAGE_SIZE;
		if (m->path && strcmp(m->path, "[vdso]") == 0) {
			n += np;
			continue;
		}
		for (uint64_t p = 0; p < np; p++)
			n += classify(m, p) == PC_DATA;
	}
	return n * MD_PAGE_SIZE;
}

/* How long copying the resident pages will stop the target: the read bandwidth is measured on
 * up to SAMPLE_BYTES of its resident data (read while it runs, as the pause will read it:
 * process_vm_readv, /proc/PID/mem for shared copy-on-write pages). Streaming to the file
 * costs about 5 times the copy to memory (docs/cores.md: 1.9 vs 0.35 ms per MiB). A process
 * smaller than the sample is its own measurement. */
#define SAMPLE_BYTES (16u << 20)

static double estimate_pause_ms(struct md_target *t, uint64_t resident, bool stream)
{
	uint8_t *buf = mmap(NULL, SAMPLE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED)
		return 0;
	uint64_t sampled = 0;
	double t0 = now_ms();
	for (size_t i = 0; i < t->n_mappings && sampled < SAMPLE_BYTES; i++) {
		const struct md_mapping *m = &t->mappings[i];
		if (!(m->perms & MD_PERM_READ) || !m->pages)
			continue;
		uint64_t np = (m->end - m->start) / MD_PAGE_SIZE;
		for (uint64_t p = 0; p < np && sampled < SAMPLE_BYTES;) {
			uint64_t q = p;
			while (q < np && q - p < 256 && sampled + (q - p) * MD_PAGE_SIZE < SAMPLE_BYTES &&
			       classify(m, q) == PC_DATA)
				q++;
			if (q == p) {
				p++;
				continue;
			}
			size_t len = (size_t)((q - p) * MD_PAGE_SIZE);
			struct md_error *err = md_target_read(t, m->start + p * MD_PAGE_SIZE, buf, len);
			md_error_destroy(err);
			sampled += len;
			p = q;
		}
	}
	double took = now_ms() - t0;
	munmap(buf, SAMPLE_BYTES);
	md_target_cache_drop(t);
	if (!sampled)
		return 0;
	double ms = took * ((double)resident / (double)sampled);
	return stream ? 5 * ms : ms;
}

static void hold(unsigned ms)
{
	if (!ms)
		return;
	fprintf(stderr, "paused\n");
	fflush(stderr);
	double end = now_ms() + ms;
	while (!md_live_interrupted && now_ms() < end) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static struct md_error *write_tail(struct writer *w, const struct md_wire *notes, uint64_t *size_ret)
{
	uint64_t notes_off = (w->cursor + 7) & ~7ULL;
	struct md_error *err = pwrite_all(w->fd, notes->data, notes->len, notes_off);
	if (err)
		return err;
	w->ph[0] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes->len, .p_align = 4 };
	uint64_t ph_off = (notes_off + notes->len + 7) & ~7ULL;
	if ((err = pwrite_all(w->fd, w->ph, w->n_ph * sizeof(Elf64_Phdr), ph_off)))
		return err;
	uint64_t end = ph_off + w->n_ph * sizeof(Elf64_Phdr);
	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = ph_off;
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	if (w->n_ph >= PN_XNUM) {
		/* Extended numbering: the count lives in section header 0. */
		Elf64_Shdr sh0;
		memset(&sh0, 0, sizeof(sh0));
		sh0.sh_info = (uint32_t)w->n_ph;
		uint64_t sh_off = (end + 7) & ~7ULL;
		if ((err = pwrite_all(w->fd, &sh0, sizeof(sh0), sh_off)))
			return err;
		eh.e_phnum = PN_XNUM;
		eh.e_shoff = sh_off;
		eh.e_shentsize = sizeof(Elf64_Shdr);
		eh.e_shnum = 1;
		end = sh_off + sizeof(sh0);
	} else {
		eh.e_phnum = (uint16_t)w->n_ph;
	}
	if ((err = pwrite_all(w->fd, &eh, sizeof(eh), 0)))
		return err;
	*size_ret = end;
	return NULL;
}

struct md_error *md_snapshot_write(struct md_target *t, const char *path, const struct md_snapshot_options *opts,
				   struct md_snapshot_result *res)
{
	double t0 = now_ms();
	memset(res, 0, sizeof(*res));
	struct writer w = { .t = t, .fd = -1 };
	struct proc_extra x;
	memset(&x, 0, sizeof(x));
	struct md_live_capture cap;
	memset(&cap, 0, sizeof(cap));
	struct md_wire notes = { 0 };
	char *tmp = NULL;
	struct md_error *err = NULL;

	/* Before the pause: the output file (so a bad path fails without stopping anyone). */
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		return &md_error_nomem;
	}
	w.fd = mkstemp(tmp);
	if (w.fd < 0) {
		err = md_error_create(MD_ERR_BAD_FILE, "%s: cannot create: %s", path, strerror(errno));
		free(tmp);
		return err;
	}
	read_extra_before(t->pid, &x);
	uint64_t avail = mem_available();
	/* The copy buffer is made and faulted in before the pause, sized from the residency seen
	 * at open (plus slack): faulting it in during the pause would cost a page fault per page. */
	uint64_t resident = resident_data_bytes(t), guess = resident;
	guess += guess / 8 + (4u << 20);
	bool to_memory = opts->copy == MD_SNAPSHOT_COPY_MEMORY ||
			 (opts->copy == MD_SNAPSHOT_COPY_AUTO && (!avail || guess <= avail / 2));
	/* Refuse a pause longer than allowed before stopping anyone. */
	res->estimated_pause_ms = estimate_pause_ms(t, resident, !to_memory);
	double max_pause_s = opts->max_pause_s ? opts->max_pause_s : MD_SNAPSHOT_DEFAULT_MAX_PAUSE;
	if (max_pause_s > 0 && res->estimated_pause_ms > max_pause_s * 1e3) {
		char b1[16];
		err = md_error_create(MD_ERR_USAGE,
				      "snapshot would stop process %d for about %.1f s (%s resident, read at %.0f MiB/s here), more than "
				      "--max-pause %.3g s; give --max-pause %.0f to accept that pause",
				      (int)t->pid, res->estimated_pause_ms / 1e3, md_format_bytes(resident, b1, sizeof(b1)),
				      (double)resident / (1 << 20) / (res->estimated_pause_ms / 1e3), max_pause_s,
				      res->estimated_pause_ms / 1e3 * 1.5 + 1);
		goto out;
	}
	if (to_memory) {
		w.buf = mmap(NULL, guess, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (w.buf == MAP_FAILED)
			w.buf = NULL;
		else
			w.buf_len = guess;
	}
	if (!(w.ph = calloc(256, sizeof(*w.ph)))) {
		err = &md_error_nomem;
		goto out;
	}
	w.cap_ph = 256;
	w.n_ph = 1; /* PT_NOTE, filled in at the end */
	w.cursor = DATA_START;

	/* The pause. */
	err = md_live_stop(t);
	if (!err) {
		struct md_safe_point_ops ops = { .quiescent = opts->quiescent, .must_run = opts->must_run,
						 .arg = opts->quiescent_arg };
		struct md_safe_point_options spo = { .max_restops = opts->max_retries, .restop_usec = opts->retry_usec };
		struct md_safe_point_result sp;
		err = md_live_reach_safe_point(t, &cap, &ops, &spo, &sp);
		res->consistent = sp.reached;
		res->retries = sp.restops;
		res->polls = sp.polls;
		snprintf(res->why, sizeof(res->why), "%s", sp.why);
	}
	double copy_start = now_ms();
	res->capture_ms = md_live_pause_seconds(t) * 1e3;
	if (!err) {
		read_fpregs(t, &x);
		uint64_t need = resident_data_bytes(t);
		w.stream = opts->copy == MD_SNAPSHOT_COPY_STREAM ||
			   (opts->copy == MD_SNAPSHOT_COPY_AUTO && (!w.buf || (avail && need > avail / 2)));
		if (!w.stream && need > w.buf_len) {
			/* The target grew since the open: grow the buffer (the new part faults lazily). */
			void *nb = w.buf ? mremap(w.buf, w.buf_len, need, MREMAP_MAYMOVE)
					 : mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (nb == MAP_FAILED) {
				w.stream = true;
			} else {
				w.buf = nb;
				w.buf_len = need;
			}
		}
		if (w.stream) {
			w.bounce = malloc(STREAM_CHUNK);
			if (!w.bounce)
				err = &md_error_nomem;
		}
	}
	for (size_t i = 0; !err && i < t->n_mappings; i++) {
		err = emit_mapping(&w, &t->mappings[i]);
		if (!err && md_live_interrupted)
			err = md_error_create(MD_ERR_INTERRUPTED, "interrupted");
	}
	res->copy_ms = now_ms() - copy_start;
	if (!err)
		hold(opts->hold_pause_ms);
	md_live_detach(t);
	res->pause_ms = md_live_pause_seconds(t) * 1e3;
	if (err)
		goto out;
	if (md_live_interrupted) {
		err = md_error_create(MD_ERR_INTERRUPTED, "interrupted: target detached");
		goto out;
	}

	/* After the pause: write what was copied, the notes and the headers. */
	double write_start = now_ms();
	for (size_t i = 0; !err && i < w.n_ext; i++)
		err = pwrite_all(w.fd, w.buf + w.ext[i].buf_off, w.ext[i].len, w.ext[i].file_off);
	if (err)
		goto out;
	struct md_meminfo mi = { 0 };
	bool mi_valid = false;
	{
		char *buf;
		size_t len;
		struct md_error *e = md_read_file("/proc/meminfo", &buf, &len);
		if (!e) {
			e = md_parse_meminfo(buf, len, &mi);
			mi_valid = !e;
			free(buf);
		}
		md_error_destroy(e);
	}
	struct md_cgroup_memory cg = { 0 };
	struct md_error *cgerr = md_cgroup_memory_read(t->pid, "/sys/fs/cgroup", &cg);
	struct md_snapshot_meta meta = {
		.pid = t->pid,
		.comm = cap.comm,
		.exe = cap.exe,
		.pause_ms = res->pause_ms,
		.retries = res->retries,
		.consistent = res->consistent,
		.rollup = &cap.rollup,
		.status = &cap.status,
		.reconciled_pages = cap.reconciled_pages,
		.meminfo = mi_valid ? &mi : NULL,
		.cgroup = cgerr ? NULL : &cg,
	};
	err = build_notes(t, &cap, &x, &meta, &notes);
	md_error_destroy(cgerr);
	md_cgroup_memory_deinit(&cg);
	if (!err)
		err = write_tail(&w, &notes, &res->file_bytes);
	if (!err && ftruncate(w.fd, (off_t)res->file_bytes) != 0)
		err = md_error_os(errno, "%s", tmp);
	if (!err && close(w.fd) != 0)
		err = md_error_os(errno, "writing %s", path);
	w.fd = -1;
	if (!err && rename(tmp, path) != 0)
		err = md_error_create(MD_ERR_BAD_FILE, "%s: cannot create: %s", path, strerror(errno));
	res->write_ms = now_ms() - write_start;
	res->streamed = w.stream;
	res->resident_bytes = w.resident_bytes;
	res->unreadable_pages = w.unreadable_pages;
	res->mappings = t->n_mappings;
	res->segments = w.n_ph - 1;
	res->threads = t->n_threads;
	/* What the pause could not hold (threads left running, processes sharing the memory). */
	for (size_t i = 0; i < cap.n_notes; i++) {
		if (res->n_notes < sizeof(res->notes) / sizeof(res->notes[0]))
			snprintf(res->notes[res->n_notes++], sizeof(res->notes[0]), "%s", cap.notes[i]);
		else
			res->notes_left_out++;
	}
out:
	if (w.fd >= 0)
		close(w.fd);
	if (err && tmp)
		unlink(tmp);
	free(tmp);
	if (w.buf)
		munmap(w.buf, w.buf_len);
	free(w.bounce);
	free(w.ext);
	free(w.ph);
	free(x.auxv);
	free(x.fpregs);
	free(x.fp_valid);
	md_wire_deinit(&notes);
	md_live_capture_deinit(&cap);
	res->total_ms = now_ms() - t0;
	return err;
}
