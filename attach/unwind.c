/* Backtraces of ptrace-stopped threads with libunwind-ptrace: CFI from .eh_frame, read through
 * PTRACE_PEEKDATA, so the target is never written to. */
#include <libunwind-ptrace.h>
#include <stdbool.h>
#include <stdlib.h>

#include "target_impl.h"
#include "unwind.h"

/* libunwind hands access_mem only its UPT handle, no pointer of ours: the target being unwound
 * is named here for the length of one md_unwind_ptrace call (set on entry, cleared on return),
 * never kept between calls. The address space with its cached unwind tables belongs to the
 * target (t->unwinder). */
static _Thread_local struct md_target *unwinding_target;

struct unwinder {
	unw_addr_space_t as;
	unw_accessors_t acc;
};

void md_unwind_release(struct md_target *t)
{
	struct unwinder *u = t ? t->unwinder : NULL;
	if (!u)
		return;
	unw_destroy_addr_space(u->as);
	free(u);
	t->unwinder = NULL;
}

static int access_mem_via_target(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	(void)as;
	(void)arg;
	if (write || !unwinding_target)
		return -UNW_EINVAL; /* the target is read-only for us */
	struct md_error *err = md_target_read(unwinding_target, addr, val, sizeof(*val));
	if (err) {
		md_error_destroy(err);
		return -UNW_EINVAL;
	}
	return 0;
}

/* One address space per target, with libunwind's global cache: the unwind tables of libc are
 * looked up once, not once per thread (thousands of threads). Without a target (tests), a
 * temporary one reading with PTRACE_PEEKDATA. */
static unw_addr_space_t address_space(struct md_target *t, unw_addr_space_t *temporary_ret)
{
	*temporary_ret = NULL;
	if (!t) {
		*temporary_ret = unw_create_addr_space(&_UPT_accessors, 0);
		return *temporary_ret;
	}
	struct unwinder *u = t->unwinder;
	if (u)
		return u->as;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->acc = _UPT_accessors;
	u->acc.access_mem = access_mem_via_target;
	u->as = unw_create_addr_space(&u->acc, 0);
	if (!u->as) {
		free(u);
		return NULL;
	}
	unw_set_caching_policy(u->as, UNW_CACHE_GLOBAL);
	t->unwinder = u;
	return u->as;
}

/* A corrupt stack can make the unwinder go round in circles: stop when the frame does not move. */
struct md_error *md_unwind_ptrace(struct md_target *t, pid_t tid, uint64_t *pcs, size_t max, size_t *n_ret)
{
	if (max == 0) {
		*n_ret = 0;
		return NULL;
	}
	unw_addr_space_t temporary;
	unw_addr_space_t as = address_space(t, &temporary);
	if (!as)
		return &md_error_nomem;
	unwinding_target = t;
	void *upt = _UPT_create(tid);
	if (!upt) {
		unwinding_target = NULL;
		if (temporary)
			unw_destroy_addr_space(temporary);
		return &md_error_nomem;
	}
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
	unwinding_target = NULL;
	if (temporary)
		unw_destroy_addr_space(temporary);
	return err;
}

