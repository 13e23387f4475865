/* Is the heap consistent right now? No arena mutex or list lock held, and no thread stopped
 * inside malloc code. glibc skips the arena lock while the process is single-threaded, and
 * tcache and the fastbin push are lock-free, so the stacks are always checked too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glibc_internal.h"

#define GL_MAX_FRAMES 48

/* Functions of malloc.c/arena.c; a return address inside any of them means the thread is in
 * the middle of an allocator operation. Names as .symtab has them (".cold"/".part"/".constprop"
 * suffixes are matched by prefix). */
static const char *const malloc_functions[] = {
	"malloc", "free", "calloc", "realloc", "reallocarray", "cfree", "memalign", "aligned_alloc",
	"posix_memalign", "valloc", "pvalloc", "malloc_trim", "mallopt", "mallinfo", "mallinfo2",
	"malloc_stats", "malloc_info", "malloc_usable_size",
	"__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
	"__libc_valloc", "__libc_pvalloc", "__libc_mallinfo", "__libc_mallinfo2", "__libc_mallopt",
	"__libc_reallocarray", "__malloc", "__free", "__calloc", "__realloc", "__memalign",
	"__posix_memalign", "__valloc", "__pvalloc", "__malloc_trim", "__malloc_info", "__malloc_stats",
	"__mallinfo", "__mallinfo2", "__malloc_usable_size",
	"_int_malloc", "_int_free", "_int_realloc", "_int_memalign", "_int_free_merge_chunk",
	"_int_free_create_chunk", "_int_free_maybe_consolidate", "_int_free_chunk", "_int_new_arena",
	"_mid_memalign", "malloc_consolidate", "sysmalloc", "sysmalloc_mmap", "sysmalloc_mmap_fallback",
	"systrim", "mtrim", "heap_trim", "shrink_heap", "grow_heap", "new_heap", "alloc_new_heap",
	"arena_get2", "arena_get_retry", "reused_arena", "get_free_list", "detach_arena",
	"tcache_init", "tcache_thread_shutdown", "__malloc_arena_thread_freeres", "ptmalloc_init",
	"int_mallinfo", "unlink_chunk", "munmap_chunk", "mremap_chunk", "__malloc_fork_lock_parent",
	"__malloc_fork_unlock_parent", "__malloc_fork_unlock_child", "malloc_printerr",
	"__malloc_hugepages", "tcache_get", "tcache_put", "__libc_free_aligned",
};

static bool is_malloc_function(const char *name)
{
	if (!name)
		return false;
	for (size_t i = 0; i < sizeof(malloc_functions) / sizeof(malloc_functions[0]); i++) {
		size_t n = strlen(malloc_functions[i]);
		if (strncmp(name, malloc_functions[i], n) == 0 && (name[n] == 0 || name[n] == '.'))
			return true;
	}
	return false;
}

static void remember_range(struct glibc_state *s, uint64_t start, uint64_t end, bool in_malloc)
{
	if (s->n_fn_ranges == s->cap_fn_ranges && s->cap_fn_ranges < GL_MAX_FN_RANGES) {
		size_t cap = s->cap_fn_ranges ? s->cap_fn_ranges * 2 : 64;
		struct gl_fn_range *r = realloc(s->fn_ranges, cap * sizeof(*r));
		if (!r)
			return;
		s->fn_ranges = r;
		s->cap_fn_ranges = cap;
	}
	if (s->n_fn_ranges < s->cap_fn_ranges)
		s->fn_ranges[s->n_fn_ranges++] = (struct gl_fn_range){ start, end, in_malloc };
}

void gl_quiesce_setup(struct glibc_state *s, struct md_target *t)
{
	const struct md_module *mod = s->roots.module;
	struct md_symbol sym;
	struct md_error *err;
	s->list_lock = s->free_list_lock = 0;
	s->have_thread_arena_tls = false;
	if (!md_target_debuginfo_disabled(t)) {
		err = md_target_symbol(t, mod, "list_lock", &sym);
		if (!err && sym.type != MD_SYM_TLS && sym.type != MD_SYM_FUNC)
			s->list_lock = sym.address;
		md_error_destroy(err);
		err = md_target_symbol(t, mod, "free_list_lock", &sym);
		if (!err && sym.type != MD_SYM_TLS && sym.type != MD_SYM_FUNC)
			s->free_list_lock = sym.address;
		md_error_destroy(err);
		err = md_target_symbol(t, mod, "thread_arena", &sym);
		if (!err && sym.type == MD_SYM_TLS) {
			s->have_thread_arena_tls = true;
			s->thread_arena_tls_offset = sym.address;
		}
		md_error_destroy(err);
	}
	/* The exported malloc functions span most of malloc.c's code; a frame anywhere between
	 * them is inside the allocator even when only .dynsym is there to name it. */
	static const char *const exported[] = {
		"malloc", "free", "calloc", "realloc", "memalign", "valloc", "pvalloc",
		"malloc_trim", "malloc_usable_size", "mallinfo2", "mallinfo", "malloc_stats",
		"mallopt", "malloc_info", "posix_memalign",
	};
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t i = 0; i < sizeof(exported) / sizeof(exported[0]); i++) {
		err = md_target_symbol(t, mod, exported[i], &sym);
		if (!err && sym.type == MD_SYM_FUNC && sym.address) {
			if (sym.address < lo)
				lo = sym.address;
			if (sym.address + (sym.size ? sym.size : 1) > hi)
				hi = sym.address + (sym.size ? sym.size : 1);
		}
		md_error_destroy(err);
	}
	/* The malloc functions' own ranges, known before the pause (the names gcc gives split and
	 * specialised copies are tried too; any other is found by symbolizing in the pause). */
	static const char *const variants[] = { "", ".cold", ".part.0", ".constprop.0", ".isra.0" };
	for (size_t i = 0; i < sizeof(malloc_functions) / sizeof(malloc_functions[0]); i++) {
		for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
			char name[64];
			snprintf(name, sizeof(name), "%s%s", malloc_functions[i], variants[v]);
			err = md_target_symbol(t, mod, name, &sym);
			if (!err && sym.type == MD_SYM_FUNC && sym.address && sym.size)
				remember_range(s, sym.address, sym.address + sym.size, true);
			md_error_destroy(err);
		}
	}
	/* Symbolizing loads the module's symbol table (the debug file's, ~10k symbols) on first
	 * use: do it now, before the pause, not in the first quiescence check. */
	if (lo != UINT64_MAX)
		(void)md_target_symbolize(t, lo, NULL);
	/* A range that is not compact would swallow unrelated code. */
	if (lo < hi && hi - lo <= 0x20000) {
		s->malloc_lo = lo;
		s->malloc_hi = hi;
	} else {
		s->malloc_lo = s->malloc_hi = 0;
	}
}

static void clear_in_malloc(struct glibc_state *s)
{
	for (size_t i = 0; i < s->n_in_malloc; i++)
		free(s->in_malloc[i].where);
	s->n_in_malloc = 0;
}

/* "f1 <- f2 <- f3" for the report (copied: symbolized names die with the target). */
static char *describe_stack(struct md_target *t, const uint64_t *pcs, size_t n)
{
	char buf[512];
	size_t used = 0;
	buf[0] = 0;
	for (size_t i = 0; i < n && i < 12 && used + 1 < sizeof(buf); i++) {
		uint64_t off = 0;
		uint64_t pc = i ? pcs[i] - 1 : pcs[i];
		const char *name = md_target_symbolize(t, pc, &off);
		int w = name ? snprintf(buf + used, sizeof(buf) - used, "%s%s+0x%llx", i ? " <- " : "", name,
					(unsigned long long)(off + (i ? 1 : 0)))
			     : snprintf(buf + used, sizeof(buf) - used, "%s0x%llx", i ? " <- " : "",
					(unsigned long long)pcs[i]);
		if (w < 0)
			break;
		used += (size_t)w < sizeof(buf) - used ? (size_t)w : sizeof(buf) - used - 1;
	}
	return strdup(buf);
}

/* Is pc in malloc code? Symbolizing costs a search of the symbol table (~0.4 ms in libc's debug
 * file) and threads let run on to a safe point are asked about often: each function seen is
 * remembered by its address range. */
static bool pc_in_malloc(struct glibc_state *s, struct md_target *t, uint64_t pc)
{
	if (s->malloc_lo && pc >= s->malloc_lo && pc < s->malloc_hi)
		return true;
	for (size_t i = 0; i < s->n_fn_ranges; i++)
		if (pc >= s->fn_ranges[i].start && pc < s->fn_ranges[i].end)
			return s->fn_ranges[i].in_malloc;
	/* malloc.c is compiled into the module the allocator was found in, nowhere else. */
	const struct md_module *mod = md_target_module_at(t, pc);
	if (!mod || (s->roots.module && mod != s->roots.module))
		return false;
	uint64_t off = 0;
	const char *name = md_target_symbolize(t, pc, &off);
	bool in = is_malloc_function(name);
	struct md_symbol sym;
	struct md_error *err = name ? md_target_symbol(t, mod, name, &sym) : NULL;
	/* Only when the name leads back to this very function (local names repeat). */
	if (name && !err && sym.type == MD_SYM_FUNC && sym.address == pc - off && sym.size > off)
		remember_range(s, sym.address, sym.address + sym.size, in);
	md_error_destroy(err);
	return in;
}

/* Is the thread inside malloc code: its pc or a return address in a malloc.c function?
 * pcs (GL_MAX_FRAMES of them) gets its stack, innermost first, for the report. */
static bool thread_in_malloc(struct glibc_state *s, struct md_target *t, const struct md_thread *th,
			     uint64_t *pcs, size_t *n_ret)
{
	size_t n = 0;
	struct md_error *err = md_target_backtrace(t, th, pcs, GL_MAX_FRAMES, &n);
	if (err) {
		md_error_destroy(err);
		n = 0;
		if (th->regs_valid)
			pcs[n++] = th->regs[MD_REG_RIP];
	}
	*n_ret = n;
	for (size_t i = 0; i < n; i++) {
		uint64_t pc = i ? pcs[i] - 1 : pcs[i]; /* return addresses point after the call */
		if (pc_in_malloc(s, t, pc))
			return true;
	}
	return false;
}

void gl_describe_in_malloc(struct glibc_state *s, struct md_target *t)
{
	for (size_t i = 0; i < s->n_in_malloc; i++)
		if (!s->in_malloc[i].where)
			s->in_malloc[i].where = describe_stack(t, s->in_malloc[i].pcs, s->in_malloc[i].n_pcs);
}

bool gl_must_run(struct glibc_state *s, struct md_target *t, const struct md_thread *th)
{
	/* Asked again and again while threads run on: the pc alone answers most looks. */
	if (th->regs_valid && pc_in_malloc(s, t, th->regs[MD_REG_RIP]))
		return true;
	uint64_t pcs[GL_MAX_FRAMES];
	size_t n = 0;
	return thread_in_malloc(s, t, th, pcs, &n);
}

bool gl_quiescent(struct glibc_state *s, struct md_target *t, char *why, size_t why_len)
{
	bool ok = true;
	clear_in_malloc(s);
	s->why[0] = 0;
	if (why && why_len)
		why[0] = 0;
	struct md_error *err = gl_read_params(s, t);
	if (!err)
		err = gl_read_arenas(s, t);
	if (err) {
		/* Unreadable state is for walk() to report; nothing to wait for. */
		md_error_destroy(err);
		return true;
	}
	for (size_t i = 0; i < s->n_arenas && ok; i++) {
		if (s->arenas[i].mutex) {
			snprintf(s->why, sizeof(s->why), "glibc arena %zu (0x%llx) mutex is held", i,
				 (unsigned long long)s->arenas[i].address);
			ok = false;
		}
	}
	uint64_t locks[2] = { s->list_lock, s->free_list_lock };
	static const char *const lock_names[2] = { "list_lock", "free_list_lock" };
	for (int i = 0; i < 2 && ok; i++) {
		uint32_t v = 0;
		if (!locks[i])
			continue;
		err = md_target_read(t, locks[i], &v, sizeof(v));
		if (!err && v) {
			snprintf(s->why, sizeof(s->why), "glibc %s is held", lock_names[i]);
			ok = false;
		}
		md_error_destroy(err);
	}

	size_t n_threads = 0;
	const struct md_thread *threads = md_target_threads(t, &n_threads);
	for (size_t ti = 0; ti < n_threads; ti++) {
		const struct md_thread *th = &threads[ti];
		uint64_t pcs[GL_MAX_FRAMES];
		size_t n = 0;
		bool inside = thread_in_malloc(s, t, th, pcs, &n);
		if (!inside)
			continue;
		if (s->n_in_malloc < GL_MAX_THREAD_REPORTS) {
			struct gl_thread_in_malloc *tm = &s->in_malloc[s->n_in_malloc++];
			tm->tid = th->tid;
			tm->n_pcs = n < GL_REPORT_FRAMES ? n : GL_REPORT_FRAMES;
			memcpy(tm->pcs, pcs, tm->n_pcs * sizeof(*pcs));
			tm->where = NULL;
			tm->arena = 0;
			/* A single-threaded process frees into any arena without locking: only trust
			 * thread_arena when other threads exist (then the lock shows the rest). */
			if (s->have_thread_arena_tls && n_threads > 1) {
				uint64_t tls = 0, ar = 0;
				err = md_target_tls_address(t, s->roots.module, th, s->thread_arena_tls_offset, &tls);
				if (!err)
					err = md_target_read_u64(t, tls, &ar);
				if (!err)
					tm->arena = ar;
				md_error_destroy(err);
			}
		}
		if (ok) {
			/* One stack named for the reason: the first thread's, which is the one given. */
			char *where = describe_stack(t, pcs, n < GL_REPORT_FRAMES ? n : GL_REPORT_FRAMES);
			snprintf(s->why, sizeof(s->why), "thread %d is inside glibc malloc (%s)", th->tid, where ? where : "?");
			free(where);
			ok = false;
		}
	}
	s->quiescent_checked = true;
	s->last_quiescent = ok;
	if (!ok && why && why_len)
		snprintf(why, why_len, "%s", s->why);
	return ok;
}
