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
 * from the residency captured for the pause), md_target_interrupted and md_target_read_pages (whole
 * pages around the read cache: safe on several threads beside one thread using the rest of the API,
 * where md_target_concurrent_reads says so); the parse callback takes the caller's lock for
 * anything else (type lookups). The sink is used by the walking thread only. A page that cannot
 * be read fails the job, and the walking thread reads that arena with md_target_read, which
 * knows how to read such pages or says why not.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pym.h"


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

/* One job into out, 64 pages per md_target_read_pages call (whole pages, around the read cache,
 * safe beside the walking thread's reads on a live target). False when a page could not be read
 * (swapped, unmapped, a failed copy): the walking thread then reads the arena with
 * md_target_read, which says why. */
static bool read_job(struct md_target *t, const struct pym_job *j, uint8_t *out)
{
	if ((j->addr | j->len) & (MD_PAGE_SIZE - 1))
		return false;
	for (uint64_t off = 0; off < j->len;) {
		if (md_target_interrupted(t))
			return false;
		size_t np = (size_t)((j->len - off) / MD_PAGE_SIZE);
		if (np > 64)
			np = 64;
		uint64_t bad = 0;
		struct md_error *err = md_target_read_pages(t, j->addr + off, out + off, np, &bad);
		if (err) {
			md_error_destroy(err);
			return false;
		}
		if (bad)
			return false;
		off += (uint64_t)np * MD_PAGE_SIZE;
	}
	return true;
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
	if (!md_target_concurrent_reads(t) || n_jobs < 2)
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
