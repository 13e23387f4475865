/* Is the stopped target at a moment where jemalloc's structures agree with each other?
 * (docs/jemalloc.md §6) Two ways a snapshot goes wrong: a thread holds one of jemalloc's mutexes
 * (it is in the middle of changing what the mutex protects), or a thread is inside jemalloc's
 * lock-free fast paths (tcache push/pop, counters). The first is read from each pthread mutex's
 * __lock/__owner; the second from every thread's PC and return addresses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jem_walk.h"

#define MAX_FRAMES 64
#define STACK_SCAN_BYTES (16 * 1024)

static bool in_text(const struct jem_roots *r, uint64_t pc)
{
	return jem_in_text(r, pc);
}

/* __lock of the pthread mutex inside a malloc_mutex_t; owner TID in *owner_ret. */
static bool mutex_held(struct md_target *t, const struct jem_layout *l, uint64_t mtx, int32_t *owner_ret)
{
	int32_t v[3];
	struct md_error *err = md_target_read(t, mtx + l->mutex_lock, v, sizeof(v));
	if (err) {
		md_error_destroy(err);
		return false;
	}
	*owner_ret = v[2]; /* __owner follows __lock and __count */
	return v[0] != 0;
}

/* Did the instruction just before return address ra call something? (E8 rel32, FF 15 disp32,
 * FF D0-D7, 41 FF D0-D7: the forms compilers emit for direct and register calls.) */
static bool after_call(struct md_target *t, uint64_t ra)
{
	uint8_t b[6];
	struct md_error *err = md_target_read(t, ra - 6, b, sizeof(b));
	if (err) {
		md_error_destroy(err);
		return false;
	}
	return b[1] == 0xe8 || (b[0] == 0xff && b[1] == 0x15) || (b[4] == 0xff && (b[5] & 0xf8) == 0xd0) ||
	       (b[3] == 0x41 && b[4] == 0xff && (b[5] & 0xf8) == 0xd0);
}

/* Return addresses into jemalloc on the thread's live stack, when no unwinder is available. */
static bool stack_has_jemalloc_frame(struct md_target *t, const struct jem_roots *r, uint64_t rsp, uint64_t *pc_ret)
{
	const struct md_mapping *m = md_target_find_mapping(t, rsp);
	if (!m)
		return false;
	uint64_t end = rsp + STACK_SCAN_BYTES < m->end ? rsp + STACK_SCAN_BYTES : m->end;
	size_t len = (size_t)(end - (rsp & ~7ULL));
	uint64_t *words = malloc(len);
	if (!words)
		return false;
	bool found = false;
	struct md_error *err = md_target_read(t, rsp & ~7ULL, words, len);
	if (!err) {
		for (size_t i = 0; i < len / 8 && !found; i++) {
			if (in_text(r, words[i]) && after_call(t, words[i])) {
				found = true;
				*pc_ret = words[i];
			}
		}
	}
	md_error_destroy(err);
	free(words);
	return found;
}

/* Is the thread inside jemalloc code: its pc, or a return address on its stack? */
static bool thread_inside(struct md_target *t, const struct jem_roots *r, const struct md_thread *th, char *why,
			  size_t why_len)
{
	if (!th->regs_valid)
		return false;
	uint64_t pc = th->regs[MD_REG_RIP];
	if (in_text(r, pc)) {
		snprintf(why, why_len, "thread %d (%s) is inside jemalloc (pc 0x%" PRIx64 ")", th->tid, th->comm, pc);
		return true;
	}
	/* jemalloc's background thread sleeps in pthread_cond_timedwait under jemalloc frames:
	 * that is a safe place as long as it holds no arena mutex (checked by the caller). */
	if (strcmp(th->comm, "jemalloc_bg_thd") == 0)
		return false;
	uint64_t pcs[MAX_FRAMES];
	size_t n = 0;
	struct md_error *err = md_target_backtrace(t, th, pcs, MAX_FRAMES, &n);
	if (!err) {
		for (size_t k = 1; k < n; k++) {
			if (in_text(r, pcs[k] - 1)) {
				snprintf(why, why_len, "thread %d (%s) has jemalloc frame 0x%" PRIx64 " on its stack", th->tid,
					 th->comm, pcs[k]);
				return true;
			}
		}
		return false;
	}
	md_error_destroy(err);
	uint64_t ra = 0;
	if (stack_has_jemalloc_frame(t, r, th->regs[MD_REG_RSP], &ra)) {
		snprintf(why, why_len, "thread %d (%s) has return address 0x%" PRIx64 " into jemalloc on its stack", th->tid,
			 th->comm, ra);
		return true;
	}
	return false;
}

bool jem_must_run(struct md_target *t, const struct jem_roots *r, struct jem_held *held, const struct md_thread *th)
{
	char why[160];
	if (thread_inside(t, r, th, why, sizeof(why)))
		return true;
	/* The owner of the mutex the last check found held, while it still holds it (a thread
	 * between the prefork lock-all and the postfork unlock is outside jemalloc code). */
	if (!held->mutex || held->owner != th->tid)
		return false;
	int32_t owner = 0;
	if (mutex_held(t, &r->layout, held->mutex, &owner) && owner == th->tid)
		return true;
	held->mutex = 0;
	return false;
}

static bool check_mutex(struct md_target *t, const struct jem_layout *l, uint64_t mtx, const char *what,
			unsigned arena, struct jem_held *held, char *why, size_t why_len)
{
	int32_t owner = 0;
	if (!mtx || !mutex_held(t, l, mtx, &owner))
		return true;
	held->mutex = mtx;
	held->owner = owner;
	if (arena == UINT32_MAX)
		snprintf(why, why_len, "jemalloc %s mutex held by thread %d", what, owner);
	else
		snprintf(why, why_len, "jemalloc arena %u %s mutex held by thread %d", arena, what, owner);
	return false;
}

bool jem_quiescent(struct md_target *t, const struct jem_roots *r, struct jem_held *held, char *why, size_t why_len)
{
	const struct jem_layout *l = &r->layout;
	held->mutex = 0;
	held->owner = 0;
	if (why_len)
		why[0] = 0;

	/* Threads first: a thread inside jemalloc is the common case, and it is cheap to see. */
	size_t n_threads = 0;
	const struct md_thread *threads = md_target_threads(t, &n_threads);
	for (size_t i = 0; i < n_threads; i++)
		if (thread_inside(t, r, &threads[i], why, why_len))
			return false;

	/* Global mutexes, the emap's init lock. */
	for (unsigned i = 0; i < r->n_global_mutexes; i++)
		if (!check_mutex(t, l, r->global_mutexes[i], "global", UINT32_MAX, held, why, why_len))
			return false;
	if (!check_mutex(t, l, r->emap + l->rtree_init_lock, "emap init", UINT32_MAX, held, why, why_len))
		return false;

	/* Every arena's mutexes, its bins' and its base's. */
	uint64_t *arenas = calloc(JEM_MAX_ARENAS, sizeof(*arenas));
	if (!arenas)
		return true; /* cannot check: let the walk's cross-checks speak */
	uint32_t slots = r->arena_slots && r->arena_slots <= JEM_MAX_ARENAS ? r->arena_slots : JEM_MAX_ARENAS;
	struct md_error *err = md_target_read(t, r->arenas, arenas, slots * sizeof(*arenas));
	if (err) {
		md_error_destroy(err);
		free(arenas);
		return true;
	}
	/* Where the bins are: the target's own table when known, else one shard per bin. */
	uint32_t bin_off[JEM_NBINS], shards[JEM_NBINS];
	for (unsigned b = 0; b < JEM_NBINS; b++) {
		bin_off[b] = (uint32_t)(l->arena_bins + b * l->bin_size);
		shards[b] = 1;
	}
	if (r->bin_offsets) {
		uint32_t offs[JEM_NBINS];
		err = md_target_read(t, r->bin_offsets, offs, sizeof(offs));
		bool sane = !err;
		for (unsigned b = 0; b < JEM_NBINS && sane; b++)
			sane = offs[b] >= l->arena_bins && offs[b] < l->arena_bins + (1u << 20);
		if (sane)
			memcpy(bin_off, offs, sizeof(offs));
		md_error_destroy(err);
	}
	if (r->bin_infos && l->bin_info_size <= 64) {
		uint8_t infos[JEM_NBINS * 64];
		err = md_target_read(t, r->bin_infos, infos, JEM_NBINS * l->bin_info_size);
		for (unsigned b = 0; b < JEM_NBINS && !err; b++) {
			uint32_t n;
			memcpy(&n, infos + b * l->bin_info_size + l->bin_info_n_shards, sizeof(n));
			if (n >= 1 && n <= 64)
				shards[b] = n;
		}
		md_error_destroy(err);
	}
	bool ok = true;
	for (uint32_t i = 0; i < slots && ok; i++) {
		uint64_t a = arenas[i];
		if (!a)
			continue;
		const struct {
			const char *what;
			uint64_t off;
		} mtx[] = {
			{"tcache_ql", l->arena_tcache_ql_mtx}, {"large", l->arena_large_mtx},
			{"extents_dirty", l->arena_ecache[0]}, {"extents_muzzy", l->arena_ecache[1]},
			{"extents_retained", l->arena_ecache[2]}, {"grow", l->arena_grow_mtx},
			{"decay_dirty", l->arena_decay_mtx[0]}, {"decay_muzzy", l->arena_decay_mtx[1]},
			{"edata_cache", l->arena_edata_cache_mtx},
		};
		for (size_t k = 0; k < sizeof(mtx) / sizeof(mtx[0]) && ok; k++)
			ok = check_mutex(t, l, a + mtx[k].off, mtx[k].what, i, held, why, why_len);
		for (unsigned b = 0; b < JEM_NBINS && ok; b++) {
			for (unsigned sh = 0; sh < shards[b] && ok; sh++) {
				char what[32];
				snprintf(what, sizeof(what), "bin %u shard %u", b, sh);
				ok = check_mutex(t, l, a + bin_off[b] + sh * l->bin_size + l->bin_lock, what, i, held,
						 why, why_len);
			}
		}
		uint64_t base = 0;
		err = md_target_read_u64(t, a + l->arena_base, &base);
		md_error_destroy(err);
		if (ok && base)
			ok = check_mutex(t, l, base + l->base_mtx, "base", i, held, why, why_len);
	}
	free(arenas);
	return ok;
}
