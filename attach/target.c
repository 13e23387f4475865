/* The target API shared by live processes and cores: mapping lookup, residency, and reads that
 * respect the target (never touch a page that is not present; swapped pages are refused). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procfs.h"
#include "target_impl.h"
#include "unwind.h"

enum md_target_source md_target_source(const struct md_target *t)
{
	return t->source;
}

int32_t md_target_pid(const struct md_target *t)
{
	return t->pid;
}

/* Set only by the SIGINT/SIGTERM/SIGHUP handler (attach/live.c); here so that every user of the
 * target API (cores, images, fuzz harnesses) links without the live back end. */
volatile sig_atomic_t md_live_interrupted;

bool md_target_interrupted(const struct md_target *t)
{
	(void)t;
	return md_live_interrupted != 0;
}

const struct md_mapping *md_target_mappings(const struct md_target *t, size_t *n_ret)
{
	*n_ret = t->n_mappings;
	return t->mappings;
}

const struct md_mapping *md_target_find_mapping(const struct md_target *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n_mappings;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct md_mapping *m = &t->mappings[mid];
		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

/* A thread's stack pointer alone does not make a stack: Go keeps goroutine stacks (and, without
 * cgo, its threads' g0 stacks) inside its heap, and an SP there once made 500 MiB of a Go
 * heap "stacks". A private anonymous mapping holding an SP is a thread stack when it sits right
 * above its guard (a PROT_NONE mapping ending where it starts), as pthread stacks (of every C
 * library, the JVM's) do; "[stack]" is the main thread's by name (attach/procfs.c). */
void md_target_mark_stack_at(struct md_target *t, uint64_t sp)
{
	struct md_mapping *m = (struct md_mapping *)md_target_find_mapping(t, sp);
	if (!m || m->kind != MD_MAP_ANON || m == t->mappings)
		return;
	const struct md_mapping *below = m - 1;
	bool guard = below->end == m->start && !(below->perms & (MD_PERM_READ | MD_PERM_WRITE | MD_PERM_EXEC));
	if (guard)
		m->kind = MD_MAP_STACK;
}

void md_target_mark_thread_stacks(struct md_target *t)
{
	for (size_t i = 0; i < t->n_threads; i++)
		if (t->threads[i].regs_valid)
			md_target_mark_stack_at(t, t->threads[i].regs[MD_REG_RSP]);
}

uint8_t md_target_page_bits(const struct md_target *t, uint64_t addr)
{
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	if (!m || !m->pages)
		return 0;
	return m->pages[(addr - m->start) >> MD_PAGE_SHIFT];
}

const struct md_thread *md_target_threads(const struct md_target *t, size_t *n_ret)
{
	*n_ret = t->n_threads;
	return t->threads;
}

/* How one page of the target is to be read. */
enum page_source { PAGE_PRESENT, PAGE_ZERO, PAGE_FILE, PAGE_FAULT, PAGE_SWAPPED };

static enum page_source page_source(const struct md_mapping *m, uint64_t page)
{
	if (!m || !(m->perms & MD_PERM_READ))
		return PAGE_FAULT;
	uint8_t bits = m->pages ? m->pages[(page - m->start) >> MD_PAGE_SHIFT] : 0;
	if (bits & MD_PAGE_UNKNOWN)
		return PAGE_PRESENT;
	if (bits & MD_PAGE_SWAPPED)
		return PAGE_SWAPPED;
	if (bits & MD_PAGE_ZERO)
		return PAGE_ZERO;
	if (bits & MD_PAGE_PRESENT)
		return PAGE_PRESENT;
	/* Not present: a file page would be faulted in by a read, so take it from the file;
	 * an anonymous page that was never touched or was released reads as zeros. */
	if (m->path && m->path[0] == '/' && m->kind != MD_MAP_SHARED)
		return PAGE_FILE;
	if (m->kind == MD_MAP_SHARED)
		return PAGE_FILE; /* shmem not resident: treat as unreadable below when no file */
	return PAGE_ZERO;
}

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;

/* Pages that are not present in a file mapping are read from the file itself, through a small
 * cache of open descriptors (the unwinder and symbol readers touch the same few libraries). */
static int file_fd(struct md_target *t, const char *path)
{
	for (size_t i = 0; i < MD_FILE_CACHE; i++)
		if (t->files[i].path && strcmp(t->files[i].path, path) == 0)
			return t->files[i].fd;
	size_t slot = t->files_next++ % MD_FILE_CACHE;
	if (t->files[slot].path) {
		free(t->files[slot].path);
		if (t->files[slot].fd >= 0)
			close(t->files[slot].fd);
	}
	t->files[slot].path = strdup(path);
	t->files[slot].fd = t->files[slot].path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	return t->files[slot].fd;
}

static void read_file_pages(struct md_target *t, const struct md_mapping *m, uint64_t page, uint8_t *out,
			    size_t npages)
{
	size_t len = npages * MD_PAGE_SIZE;
	memset(out, 0, len);
	if (!m->path || m->path[0] != '/' || m->deleted)
		return; /* not readable: zeros, as for an unbacked page */
	/* md_target_read_pages may run on several threads: the descriptor cache is shared. */
	pthread_mutex_lock(&files_lock);
	int fd = file_fd(t, m->path);
	off_t off = (off_t)(m->offset + (page - m->start));
	size_t done = 0;
	while (fd >= 0 && done < len) {
		ssize_t n = pread(fd, out + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* past the end of the file: zeros, as the kernel would give */
		done += (size_t)n;
	}
	pthread_mutex_unlock(&files_lock);
}

/* A present page of a live target's private file mapping that is still the file's own (pagemap:
 * a page-cache page, not an anonymous copy-on-write one). */
static bool clean_file_page(const struct md_target *t, const struct md_mapping *m, uint64_t page)
{
	if (t->source != MD_SOURCE_LIVE || m->kind != MD_MAP_FILE || !m->pages || !m->path || m->path[0] != '/' ||
	    m->deleted)
		return false;
	uint8_t bits = m->pages[(page - m->start) >> MD_PAGE_SHIFT];
	return (bits & (MD_PAGE_PRESENT | MD_PAGE_FILE | MD_PAGE_UNKNOWN | MD_PAGE_ZERO)) ==
	       (MD_PAGE_PRESENT | MD_PAGE_FILE);
}

/* The pages from the file when it is the one mapped (same device and inode) and long enough;
 * false otherwise, out undefined. */
static bool read_file_pages_checked(struct md_target *t, const struct md_mapping *m, uint64_t page, uint8_t *out,
				    size_t npages)
{
	size_t len = npages * MD_PAGE_SIZE;
	pthread_mutex_lock(&files_lock);
	int fd = file_fd(t, m->path);
	struct stat st;
	bool same = fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == m->inode && major(st.st_dev) == m->dev_major &&
		    minor(st.st_dev) == m->dev_minor;
	off_t off = (off_t)(m->offset + (page - m->start));
	size_t done = 0;
	while (same && done < len) {
		ssize_t n = pread(fd, out + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	pthread_mutex_unlock(&files_lock);
	return same && done == len;
}

/* Fill out[0 .. npages*4096) from the pages at addr, batching runs of present pages.
 * With bad_ret (npages <= 64), unreadable pages are zero-filled and flagged in *bad_ret
 * instead of failing the whole read. */
static struct md_error *read_pages_mask(struct md_target *t, uint64_t addr, uint8_t *out, size_t npages,
					uint64_t *bad_ret)
{
	size_t i = 0;
	const struct md_mapping *m = NULL;
	while (i < npages) {
		uint64_t page = addr + (uint64_t)i * MD_PAGE_SIZE;
		if (!m || page < m->start || page >= m->end)
			m = md_target_find_mapping(t, page);
		enum page_source src = page_source(m, page);
		if (bad_ret && (src == PAGE_FAULT || src == PAGE_SWAPPED)) {
			*bad_ret |= 1ULL << i;
			memset(out + i * MD_PAGE_SIZE, 0, MD_PAGE_SIZE);
			i++;
			continue;
		}
		if (src == PAGE_FAULT)
			return md_error_fault(MD_ERR_FAULT, page, "address 0x%llx is not mapped readable",
					      (unsigned long long)page);
		if (src == PAGE_SWAPPED)
			return md_error_fault(MD_ERR_NOT_RESIDENT, page,
					      "page 0x%llx is swapped out (not read on purpose)",
					      (unsigned long long)page);
		if (src == PAGE_ZERO) {
			memset(out + i * MD_PAGE_SIZE, 0, MD_PAGE_SIZE);
			i++;
			continue;
		}
		if (src == PAGE_FILE) {
			size_t j = i + 1;
			while (j < npages) {
				uint64_t p2 = addr + (uint64_t)j * MD_PAGE_SIZE;
				if (p2 >= m->end || page_source(m, p2) != PAGE_FILE)
					break;
				j++;
			}
			read_file_pages(t, m, page, out + i * MD_PAGE_SIZE, j - i);
			i = j;
			continue;
		}
		/* A run of present pages within this mapping. */
		size_t j = i + 1;
		if (clean_file_page(t, m, page)) {
			/* Pages the file still backs are read from the file: the target's memory is
			 * not touched for code and read-only data (what the unwinder reads in the pause). */
			while (j < npages && addr + (uint64_t)j * MD_PAGE_SIZE < m->end &&
			       clean_file_page(t, m, addr + (uint64_t)j * MD_PAGE_SIZE))
				j++;
			if (read_file_pages_checked(t, m, page, out + i * MD_PAGE_SIZE, j - i)) {
				i = j;
				continue;
			}
			/* Not the mapped file (replaced, another mount namespace): the target's copy. */
		}
		while (j < npages) {
			uint64_t p2 = addr + (uint64_t)j * MD_PAGE_SIZE;
			if (p2 >= m->end || page_source(m, p2) != PAGE_PRESENT)
				break;
			j++;
		}
		struct md_error *err = t->ops->read_present(t, page, out + i * MD_PAGE_SIZE,
							    (j - i) * MD_PAGE_SIZE);
		if (err && bad_ret && err->code == MD_ERR_FAULT) {
			/* Which pages of the run failed: only those are flagged. */
			md_error_destroy(err);
			err = NULL;
			for (size_t k = i; k < j && !err; k++) {
				err = t->ops->read_present(t, addr + (uint64_t)k * MD_PAGE_SIZE, out + k * MD_PAGE_SIZE,
							   MD_PAGE_SIZE);
				if (err && err->code == MD_ERR_FAULT) {
					md_error_destroy(err);
					err = NULL;
					*bad_ret |= 1ULL << k;
					memset(out + k * MD_PAGE_SIZE, 0, MD_PAGE_SIZE);
				}
			}
		}
		if (err)
			return err;
		i = j;
	}
	return NULL;
}

static struct md_error *read_pages(struct md_target *t, uint64_t addr, uint8_t *out, size_t npages)
{
	return read_pages_mask(t, addr, out, npages, NULL);
}

void md_target_cache_drop(struct md_target *t)
{
	for (size_t i = 0; i < MD_READ_CACHE_BLOCKS; i++)
		t->cache[i].base = UINT64_MAX;
}

/* Is [start, end) wholly inside private mappings nobody can write to (code, read-only data)? */
static bool read_only_range(const struct md_target *t, uint64_t start, uint64_t end)
{
	while (start < end) {
		const struct md_mapping *m = md_target_find_mapping(t, start);
		if (!m || (m->perms & (MD_PERM_WRITE | MD_PERM_SHARED)))
			return false;
		start = m->end;
	}
	return true;
}

void md_target_cache_drop_writable(struct md_target *t)
{
	for (size_t i = 0; i < MD_READ_CACHE_BLOCKS; i++) {
		uint64_t base = t->cache[i].base;
		if (base != UINT64_MAX && (t->cache[i].bad || !read_only_range(t, base, base + MD_READ_CACHE_BLOCK)))
			t->cache[i].base = UINT64_MAX;
	}
}

static struct md_error *cache_block(struct md_target *t, uint64_t base, const uint8_t **data_ret,
				    uint64_t *bad_ret)
{
	struct md_read_cache_block *victim = NULL;
	for (size_t i = 0; i < MD_READ_CACHE_BLOCKS; i++) {
		struct md_read_cache_block *b = &t->cache[i];
		if (b->data && b->base == base) {
			b->last_use = ++t->cache_clock;
			*data_ret = b->data;
			*bad_ret = b->bad;
			return NULL;
		}
		if (!victim || !b->data || (victim->data && b->last_use < victim->last_use))
			victim = b;
	}
	if (!victim->data) {
		victim->data = aligned_alloc(MD_PAGE_SIZE, MD_READ_CACHE_BLOCK); /* unaligned copies are 2.5x slower */
		if (!victim->data)
			return &md_error_nomem;
	}
	victim->base = UINT64_MAX;
	victim->bad = 0;
	struct md_error *err = read_pages_mask(t, base, victim->data, MD_READ_CACHE_BLOCK / MD_PAGE_SIZE,
					       &victim->bad);
	if (err)
		return err;
	victim->base = base;
	victim->last_use = ++t->cache_clock;
	*data_ret = victim->data;
	*bad_ret = victim->bad;
	return NULL;
}

struct md_error *md_target_read(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	if (len == 0)
		return NULL;
	if (md_live_interrupted)
		return md_error_create(MD_ERR_INTERRUPTED, "interrupted");
	if (addr + len < addr)
		return md_error_fault(MD_ERR_FAULT, addr, "read of 0x%zx bytes at 0x%llx wraps around",
				      len, (unsigned long long)addr);
	uint8_t *out = buf;
	/* Large page-aligned middle parts go straight into the caller's buffer. */
	while (len > 0) {
		uint64_t base = addr & ~(uint64_t)(MD_READ_CACHE_BLOCK - 1);
		if ((addr & (MD_PAGE_SIZE - 1)) == 0 && len >= MD_READ_CACHE_BLOCK) {
			size_t whole = len & ~(size_t)(MD_PAGE_SIZE - 1);
			struct md_error *err = read_pages(t, addr, out, whole / MD_PAGE_SIZE);
			if (err) {
				/* Fall back to page granularity so the fault address is exact. */
				return err;
			}
			addr += whole;
			out += whole;
			len -= whole;
			continue;
		}
		const uint8_t *data;
		uint64_t bad = 0;
		struct md_error *err = cache_block(t, base, &data, &bad);
		if (err)
			return err;
		if (bad) {
			/* Some pages of the block are unreadable: fail only if the caller's bytes
			 * touch one, with the exact error for that page. */
			uint64_t last = addr + len < base + MD_READ_CACHE_BLOCK ? addr + len : base + MD_READ_CACHE_BLOCK;
			for (uint64_t p = MD_PAGE_DOWN(addr); p < last; p += MD_PAGE_SIZE) {
				if (bad & (1ULL << ((p - base) >> MD_PAGE_SHIFT))) {
					uint8_t tmp[MD_PAGE_SIZE];
					err = read_pages(t, p, tmp, 1);
					if (!err)
						err = md_error_fault(MD_ERR_FAULT, p, "cannot read target memory at 0x%llx",
								     (unsigned long long)p);
					return err;
				}
			}
		}
		size_t off = (size_t)(addr - base);
		size_t take = MD_READ_CACHE_BLOCK - off;
		if (take > len)
			take = len;
		memcpy(out, data + off, take);
		addr += take;
		out += take;
		len -= take;
	}
	return NULL;
}

struct md_error *md_target_read_pages(struct md_target *t, uint64_t addr, void *buf, size_t npages,
				      uint64_t *bad_ret)
{
	if (md_live_interrupted)
		return md_error_create(MD_ERR_INTERRUPTED, "interrupted");
	if ((addr & (MD_PAGE_SIZE - 1)) || npages > 64 || addr + npages * MD_PAGE_SIZE < addr)
		return md_error_create(MD_ERR_UNSUPPORTED, "md_target_read_pages: 0x%llx, %zu pages",
				       (unsigned long long)addr, npages);
	uint64_t bad = 0;
	struct md_error *err = read_pages_mask(t, addr, buf, npages, &bad);
	if (!err)
		*bad_ret = bad;
	return err;
}

bool md_target_concurrent_reads(const struct md_target *t)
{
	return t->source == MD_SOURCE_LIVE;
}

struct md_error *md_target_read_probe(struct md_target *t, uint64_t addr, void *buf, size_t len)
{
	if (len == 0 || MD_PAGE_DOWN(addr) != MD_PAGE_DOWN(addr + len - 1))
		return md_target_read(t, addr, buf, len);
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	if (page_source(m, MD_PAGE_DOWN(addr)) != PAGE_PRESENT)
		return md_target_read(t, addr, buf, len);
	return t->ops->read_present(t, addr, buf, len);
}

const uint8_t *md_target_view(struct md_target *t, uint64_t addr, size_t len)
{
	if (!t->ops->view || len == 0 || addr + len < addr || md_live_interrupted)
		return NULL;
	const struct md_mapping *m = md_target_find_mapping(t, addr);
	if (!m || addr + len > m->end)
		return NULL;
	for (uint64_t p = MD_PAGE_DOWN(addr); p < addr + len; p += MD_PAGE_SIZE)
		if (page_source(m, p) != PAGE_PRESENT)
			return NULL;
	return t->ops->view(t, addr, len);
}

struct md_error *md_target_read_u64(struct md_target *t, uint64_t addr, uint64_t *value_ret)
{
	uint64_t v;
	struct md_error *err = md_target_read(t, addr, &v, sizeof(v));
	if (err)
		return err;
	*value_ret = v;
	return NULL;
}

const struct md_module *md_target_modules(const struct md_target *t, size_t *n_ret)
{
	if (!t->symbols) {
		*n_ret = 0;
		return NULL;
	}
	return md_symbols_modules(t->symbols, n_ret);
}

const struct md_module *md_target_find_module(const struct md_target *t, const char *module_name)
{
	return t->symbols ? md_symbols_find_module(t->symbols, module_name) : NULL;
}

const struct md_module *md_target_module_at(const struct md_target *t, uint64_t addr)
{
	return t->symbols ? md_symbols_module_at(t->symbols, addr) : NULL;
}

const char *md_target_module_file(const struct md_target *t, const struct md_module *mod)
{
	return t->symbols ? md_symbols_module_file(t->symbols, mod) : NULL;
}

const char *md_target_module_debug_file(const struct md_target *t, const struct md_module *mod,
					bool *from_debuginfod_ret)
{
	if (from_debuginfod_ret)
		*from_debuginfod_ret = false;
	return t->symbols ? md_symbols_module_debug_file(t->symbols, mod, from_debuginfod_ret) : NULL;
}

bool md_target_debuginfo_disabled(const struct md_target *t)
{
	return t->debuginfo_disabled;
}

static struct md_error *no_symbols(void)
{
	return md_error_create(MD_ERR_NOT_FOUND, "no symbol information for this target");
}

struct md_error *md_target_symbol(struct md_target *t, const struct md_module *mod, const char *name,
				  struct md_symbol *sym_ret)
{
	if (!t->symbols)
		return no_symbols();
	return md_symbols_lookup(t->symbols, mod, name, sym_ret);
}

const char *md_target_symbolize(struct md_target *t, uint64_t pc, uint64_t *offset_ret)
{
	return t->symbols ? md_symbols_symbolize(t->symbols, pc, offset_ret) : NULL;
}

struct md_error *md_target_member(struct md_target *t, const struct md_module *mod,
				  const char *struct_name, const char *member,
				  uint64_t *offset_ret, uint64_t *size_ret)
{
	if (!t->symbols)
		return no_symbols();
	return md_symbols_member(t->symbols, mod, struct_name, member, offset_ret, size_ret);
}

struct md_error *md_target_struct_size(struct md_target *t, const struct md_module *mod,
				       const char *struct_name, uint64_t *size_ret)
{
	if (!t->symbols)
		return no_symbols();
	return md_symbols_struct_size(t->symbols, mod, struct_name, size_ret);
}

struct md_error *md_target_member_bits(struct md_target *t, const struct md_module *mod,
				       const char *struct_name, const char *member,
				       uint64_t *bit_offset_ret, uint64_t *bit_size_ret)
{
	if (!t->symbols)
		return no_symbols();
	return md_symbols_member_bits(t->symbols, mod, struct_name, member, bit_offset_ret, bit_size_ret);
}

struct md_error *md_target_tls_address(struct md_target *t, const struct md_module *mod,
				       const struct md_thread *thread, uint64_t offset,
				       uint64_t *address_ret)
{
	if (!t->symbols)
		return no_symbols();
	if (!thread->regs_valid)
		return md_error_create(MD_ERR_NOT_FOUND, "thread %d: registers unknown", (int)thread->tid);
	return md_symbols_tls_address(t->symbols, mod, t, thread->tid, thread->regs[MD_REG_FS_BASE], offset,
				      address_ret);
}

struct md_error *md_target_backtrace(struct md_target *t, const struct md_thread *thread,
				     uint64_t *pcs, size_t max, size_t *n_ret)
{
	if (!t->ops->backtrace)
		return md_error_create(MD_ERR_UNSUPPORTED, "no unwinder for this target");
	return t->ops->backtrace(t, thread, pcs, max, n_ret);
}

const char *md_symbol_source_name(enum md_symbol_source src)
{
	switch (src) {
	case MD_SYMSRC_DWARF:
		return "dwarf";
	case MD_SYMSRC_SYMTAB:
		return "symtab";
	case MD_SYMSRC_DYNSYM:
		return "dynsym";
	case MD_SYMSRC_HEURISTIC:
		return "heuristic";
	case MD_SYMSRC_NONE:
		break;
	}
	return "none";
}

struct md_error *md_target_stop(struct md_target *t)
{
	return t->ops && t->ops->stop ? t->ops->stop(t) : NULL;
}

struct md_error *md_target_capture(struct md_target *t, struct md_live_capture *cap)
{
	if (!t->ops || !t->ops->capture)
		return md_error_create(MD_ERR_UNSUPPORTED, "this target is not a running process: nothing to capture");
	return t->ops->capture(t, cap);
}

void md_target_resume(struct md_target *t)
{
	if (t->ops && t->ops->resume)
		t->ops->resume(t);
}

double md_target_pause_seconds(const struct md_target *t)
{
	return t->ops && t->ops->pause_seconds ? t->ops->pause_seconds(t) : 0;
}

void md_target_destroy(struct md_target *t)
{
	if (!t)
		return;
	if (t->ops && t->ops->destroy_impl)
		t->ops->destroy_impl(t);
	md_unwind_release(t);
	md_mappings_free(t->mappings, t->n_mappings);
	free(t->threads);
	for (size_t i = 0; i < MD_READ_CACHE_BLOCKS; i++)
		free(t->cache[i].data);
	for (size_t i = 0; i < MD_FILE_CACHE; i++) {
		free(t->files[i].path);
		if (t->files[i].path && t->files[i].fd >= 0)
			close(t->files[i].fd);
	}
	if (!t->symbols_lent)
		md_symbols_destroy(t->symbols);
	free(t);
}
