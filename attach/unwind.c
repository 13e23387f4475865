/* Backtraces of ptrace-stopped threads with libunwind-ptrace: CFI from .eh_frame, read through
 * PTRACE_PEEKDATA, so the target is never written to. */
#include <libunwind-ptrace.h>
#include <stdbool.h>

#include "unwind.h"

/* The target being unwound, for access_mem (libunwind passes only the UPT handle). */
static struct md_target *unwinding_target;
static unw_addr_space_t cached_as;
static unw_accessors_t acc;

void md_unwind_reset(void)
{
	if (cached_as)
		unw_destroy_addr_space(cached_as);
	cached_as = NULL;
	unwinding_target = NULL;
}

static int access_mem_via_target(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	(void)as;
	(void)arg;
	if (write)
		return -UNW_EINVAL; /* the target is read-only for us */
	struct md_error *err = md_target_read(unwinding_target, addr, val, sizeof(*val));
	if (err) {
		md_error_destroy(err);
		return -UNW_EINVAL;
	}
	return 0;
}

/* A corrupt stack can make the unwinder go round in circles: stop when the frame does not move. */
struct md_error *md_unwind_ptrace(struct md_target *t, pid_t tid, uint64_t *pcs, size_t max, size_t *n_ret)
{
	if (max == 0) {
		*n_ret = 0;
		return NULL;
	}
	/* One address space per target, with libunwind's global cache: the unwind tables of libc
	 * are looked up once, not once per thread (thousands of threads). */
	if (!cached_as || unwinding_target != t) {
		if (cached_as)
			unw_destroy_addr_space(cached_as);
		acc = _UPT_accessors;
		if (t)
			acc.access_mem = access_mem_via_target;
		unwinding_target = t;
		cached_as = unw_create_addr_space(&acc, 0);
		if (!cached_as)
			return &md_error_nomem;
		unw_set_caching_policy(cached_as, UNW_CACHE_GLOBAL);
	}
	unw_addr_space_t as = cached_as;
	void *upt = _UPT_create(tid);
	if (!upt)
		return &md_error_nomem;
	struct md_error *err = NULL;
	unw_cursor_t cursor;
	int r = unw_init_remote(&cursor, as, upt);
	if (r < 0) {
		err = md_error_create(MD_ERR_BAD_DATA, "thread %d: cannot start unwinding: %s", (int)tid,
				      unw_strerror(r));
		goto out;
	}
	size_t n = 0;
	unw_word_t prev_sp = 0, prev_ip = 0;
	for (;;) {
		unw_word_t ip = 0, sp = 0;
		if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
			break;
		unw_get_reg(&cursor, UNW_REG_SP, &sp);
		if (n > 0 && ip == prev_ip && sp == prev_sp)
			break;
		pcs[n++] = ip;
		prev_ip = ip;
		prev_sp = sp;
		if (n >= max || unw_step(&cursor) <= 0)
			break;
	}
	if (n == 0) {
		err = md_error_create(MD_ERR_BAD_DATA, "thread %d: no frame could be unwound", (int)tid);
		goto out;
	}
	*n_ret = n;
out:
	_UPT_destroy(upt);
	return err;
}

