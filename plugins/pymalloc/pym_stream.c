/* Arenas read and parsed on two cores (live targets only).
 *
 * Reading an arena and parsing its pools in turn makes the pause their sum. Here a helper thread
 * and the walking thread both take arenas from one queue: each reads its arena into a buffer of
 * its own slot and parses it there, while the data is still in that core's cache, into the slot's
 * output; the walking thread hands the outputs to the sink in queue order. A ring of
 * PYM_STREAM_SLOTS slots (one arena buffer and one output each, the caller's) bounds memory
 * whatever the heap.
 *
 * Thread discipline: a worker calls nothing of the target API but md_target_page_bits (a load
 * from the residency captured for the pause, which nothing changes before the detach) and the
 * process_vm_readv system call; the parse callback takes the caller's lock for anything else
 * (type lookups). The sink is used by the walking thread only. A worker reads only pages the
 * pagemap shows present and mapped once (MD_PAGE_EXCLUSIVE): pages not present, or the shared
 * zero page, read as zeros without a read; anything else (swapped, file-backed, copy-on-write
 * shared: a pin could unshare it) fails the job, and the walking thread reads that arena with
 * md_target_read, which knows how to read such pages or says why not. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "pym.h"


#define PYM_STREAM_IOV 256

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE, SLOT_FAILED };

struct pym_stream {
	struct md_target *t;
	const struct pym_job *jobs;
	size_t n_jobs, buf_size;
	pym_parse_fn parse;
	void *ctx;
	void *outs;
	size_t out_size;
	pthread_t thread;
	bool have_thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *buf[PYM_STREAM_SLOTS];
	enum slot_state state[PYM_STREAM_SLOTS];
	size_t next;    /* the next job to take */
	size_t emitted; /* jobs below this one are handed over: their slots may be reused */
	bool stop;
	uint64_t by_helper;
};

/* Whether a page may be read by process_vm_readv (1), reads as zeros without a read (0), or must
 * be left to md_target_read (-1). */
static int page_plan(uint8_t bits)
{
	if (bits & MD_PAGE_UNKNOWN)
		return -1;
	if (!(bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED)))
		return 0; /* never touched: zeros, as md_target_read gives */
	if ((bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED | MD_PAGE_ZERO)) == (MD_PAGE_PRESENT | MD_PAGE_ZERO))
		return 0;
	if ((bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED | MD_PAGE_EXCLUSIVE | MD_PAGE_FILE)) ==
	    (MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE))
		return 1;
	return -1;
}

static bool vm_read(pid_t pid, struct iovec *loc, struct iovec *rem, size_t n, size_t want)
{
	if (!n)
		return true;
	ssize_t got = process_vm_readv(pid, loc, n, rem, n, 0);
	return got >= 0 && (size_t)got == want;
}

/* One job into out: runs of readable pages, PYM_STREAM_IOV runs per process_vm_readv call.
 * False when a page needs md_target_read or a read came up short. */
static bool read_job(struct md_target *t, const struct pym_job *j, uint8_t *out)
{
	struct iovec loc[PYM_STREAM_IOV], rem[PYM_STREAM_IOV];
	size_t n_iov = 0, want = 0;
	pid_t pid = (pid_t)md_target_pid(t);
	for (uint64_t off = 0; off < j->len;) {
		if (md_target_interrupted(t))
			return false;
		int plan = page_plan(md_target_page_bits(t, j->addr + off));
		if (plan < 0)
			return false;
		if (plan == 0) {
			memset(out + off, 0, MD_PAGE_SIZE);
			off += MD_PAGE_SIZE;
			continue;
		}
		uint64_t run = MD_PAGE_SIZE;
		while (off + run < j->len && page_plan(md_target_page_bits(t, j->addr + off + run)) == 1)
			run += MD_PAGE_SIZE;
		loc[n_iov] = (struct iovec){ out + off, (size_t)run };
		rem[n_iov] = (struct iovec){ (void *)(uintptr_t)(j->addr + off), (size_t)run };
		n_iov++;
		want += (size_t)run;
		off += run;
		if (n_iov == PYM_STREAM_IOV) {
			if (!vm_read(pid, loc, rem, n_iov, want))
				return false;
			n_iov = 0;
			want = 0;
		}
	}
	return vm_read(pid, loc, rem, n_iov, want);
}

static void *slot_out(struct pym_stream *st, size_t slot)
{
	return (uint8_t *)st->outs + slot * st->out_size;
}

/* Take the next job if its slot is free; with mu held. SIZE_MAX: none to take. */
static size_t take(struct pym_stream *st)
{
	if (st->stop || st->next >= st->n_jobs || st->next >= st->emitted + PYM_STREAM_SLOTS)
		return SIZE_MAX;
	size_t i = st->next++;
	st->state[i % PYM_STREAM_SLOTS] = SLOT_BUSY;
	return i;
}

/* Read and parse job i in its slot; without mu. */
static void work(struct pym_stream *st, unsigned worker, size_t i)
{
	size_t slot = i % PYM_STREAM_SLOTS;
	bool ok = st->jobs[i].len <= st->buf_size && read_job(st->t, &st->jobs[i], st->buf[slot]);
	if (ok)
		st->parse(st->ctx, worker, i, st->buf[slot], slot_out(st, slot));
	pthread_mutex_lock(&st->mu);
	st->state[slot] = ok ? SLOT_DONE : SLOT_FAILED;
	if (worker)
		st->by_helper++;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

static void *helper_main(void *arg)
{
	struct pym_stream *st = arg;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		size_t i = take(st);
		if (i == SIZE_MAX) {
			if (st->stop || st->next >= st->n_jobs)
				break;
			pthread_cond_wait(&st->cv, &st->mu);
			continue;
		}
		pthread_mutex_unlock(&st->mu);
		work(st, 1, i);
		pthread_mutex_lock(&st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

struct pym_stream *pym_stream_start(struct md_target *t, const struct pym_job *jobs, size_t n_jobs, size_t buf_size,
				    uint8_t *const bufs[PYM_STREAM_SLOTS], pym_parse_fn parse, void *ctx, void *outs,
				    size_t out_size)
{
	if (md_target_source(t) != MD_SOURCE_LIVE || n_jobs < 2)
		return NULL; /* cores, and one arena: nothing to share */
	struct pym_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	*st = (struct pym_stream){ .t = t, .jobs = jobs, .n_jobs = n_jobs, .buf_size = buf_size, .parse = parse,
				   .ctx = ctx, .outs = outs, .out_size = out_size };
	bool ok = true;
	for (int k = 0; k < PYM_STREAM_SLOTS; k++)
		ok = ok && (st->buf[k] = bufs[k]) != NULL;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	/* The helper takes no signal: SIGINT/SIGTERM/SIGHUP and the fatal-signal detach stay with
	 * the thread that traces the target. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	st->have_thread = ok && pthread_create(&st->thread, NULL, helper_main, st) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!st->have_thread) {
		pym_stream_finish(st);
		return NULL; /* the walk reads the arenas itself */
	}
	return st;
}

/* Job i, parsed into its slot's output (true), or not read (false: the caller reads it and
 * parses it into *out_ret itself). The walking thread works on other jobs while it waits. */
bool pym_stream_get(struct pym_stream *st, size_t i, void **out_ret)
{
	size_t slot = i % PYM_STREAM_SLOTS;
	pthread_mutex_lock(&st->mu);
	if (i > st->emitted) {
		st->emitted = i; /* the jobs before i are handed over */
		pthread_cond_broadcast(&st->cv);
	}
	while (st->next <= i || st->state[slot] == SLOT_BUSY) {
		size_t j = take(st);
		if (j == SIZE_MAX) {
			pthread_cond_wait(&st->cv, &st->mu);
			continue;
		}
		pthread_mutex_unlock(&st->mu);
		work(st, 0, j);
		pthread_mutex_lock(&st->mu);
	}
	bool ok = st->state[slot] == SLOT_DONE;
	pthread_mutex_unlock(&st->mu);
	*out_ret = slot_out(st, slot);
	return ok;
}

uint64_t pym_stream_finish(struct pym_stream *st)
{
	if (!st)
		return 0;
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	if (st->have_thread)
		pthread_join(st->thread, NULL);
	uint64_t by_helper = st->by_helper;
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
	return by_helper;
}
