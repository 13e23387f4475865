/* Reading a heap ahead of its parse, on reader threads (the pattern of plugins/glibc/stream.c,
 * for a list of windows instead of one contiguous heap).
 *
 * tcmalloc's link index reads every small in-use span once, musl's walk every group, mimalloc's
 * every segment header and the block areas of its pages with free lists, in address order, in
 * windows of up to 1 MiB. Done in turn, the pause pays the read plus the parse. One reader moves
 * about 5.6 GB/s on this machine and two about 9.8 GB/s: on a live target, where reads may run
 * side by side (md_target_concurrent_reads), as many readers as CPUs (at least 2, at most
 * RA_MAX_READERS; MEMDISSECT_READERS sets the number) fill a ring of 2 * readers + 2 buffers,
 * each taking the next window nobody reads yet, while the walk parses the windows before them;
 * the walk reads a window itself rather than wait for one nobody has taken.
 *
 * Elsewhere (a core file: no concurrent reads) there is no thread: a window the target holds in
 * place (md_target_view, a mapped core) is parsed there, without a copy; another is read when
 * it is asked for, by the walking thread.
 *
 * Thread discipline: while a stream runs, the readers call only md_target_read_pages, which uses
 * no cache and may run on several threads at once; the walking thread parses buffers and calls
 * the sink, its own code and md_target_read_pages (a window nobody has taken, ra_read). The
 * hand-over is a mutex and two condition variables. The readers block every signal. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "read_ahead.h"

#define RA_MAX_BUFS (2 * RA_MAX_READERS + 2)

struct ra_reader {
	pthread_t thread;
	struct ra_stream *st;
	bool started;
	uint64_t read_bytes;
};

struct ra_stream {
	struct md_target *t;
	const struct ra_window *win;
	size_t n;
	size_t n_bufs, n_readers;
	bool concurrent; /* md_target_concurrent_reads: the readers and ra_read use md_target_read_pages */
	uint8_t *buf[RA_MAX_BUFS];
	uint64_t bad[RA_MAX_BUFS][RA_BAD_WORDS];
	size_t holds[RA_MAX_BUFS]; /* the window read into each buffer, SIZE_MAX: none yet */
	bool busy[RA_MAX_BUFS];    /* a window is being read into it */
	pthread_mutex_t mu;
	pthread_cond_t cv_filled, cv_released;
	size_t released;   /* windows [0, released) may be overwritten */
	size_t next_claim; /* the first window nobody reads yet */
	bool stop;
	struct ra_reader readers[RA_MAX_READERS];
	struct ra_reader walker; /* what the walking thread read itself */
	uint8_t page[MD_PAGE_SIZE]; /* ra_read's page */
};

/* One window into buffer slot b, md_target_read_pages at most 64 pages at a time; pages that
 * cannot be read (swapped out, unmapped) are marked. Interrupted (memdissect must let the target
 * go): nothing more is read, all is unknown. */
static void read_window(struct ra_stream *st, struct ra_reader *r, size_t i, size_t b)
{
	const struct ra_window *w = &st->win[i];
	size_t pages = (size_t)((w->hi - w->lo) / MD_PAGE_SIZE);
	uint64_t *bad = st->bad[b];
	memset(bad, 0, sizeof(st->bad[0]));
	for (size_t p = 0; p < pages; p += 64) {
		size_t np = pages - p < 64 ? pages - p : 64;
		uint64_t mask = 0;
		struct md_error *err = md_target_read_pages(st->t, w->lo + p * MD_PAGE_SIZE, st->buf[b] + p * MD_PAGE_SIZE, np, &mask);
		if (err) {
			md_error_destroy(err);
			mask = ~0ULL;
		}
		bad[p / 64] = np < 64 ? mask & ((1ULL << np) - 1) : mask;
	}
	r->read_bytes += w->hi - w->lo;
}

/* Whether the next window may be read now, mu held: windows the walk has left behind are never
 * read; the next one must lie in the ring, and its buffer must not still be written (a window the
 * walk skipped over, read late). */
static bool claimable(struct ra_stream *st)
{
	if (st->next_claim < st->released)
		st->next_claim = st->released;
	return st->next_claim < st->n && st->next_claim < st->released + st->n_bufs && !st->busy[st->next_claim % st->n_bufs];
}

/* Claim the next window (claimable, mu held), read it (mu not held) and hand it over. */
static void fill(struct ra_stream *st, struct ra_reader *r)
{
	size_t i = st->next_claim++, b = i % st->n_bufs;
	st->busy[b] = true;
	pthread_mutex_unlock(&st->mu);
	read_window(st, r, i, b);
	pthread_mutex_lock(&st->mu);
	st->busy[b] = false;
	st->holds[b] = i;
	pthread_cond_broadcast(&st->cv_filled);
	pthread_cond_broadcast(&st->cv_released);
}

/* Readers take the windows in turn, as far ahead of the walk as the ring allows. */
static void *reader_main(void *arg)
{
	struct ra_reader *r = arg;
	struct ra_stream *st = r->st;
	pthread_mutex_lock(&st->mu);
	for (;;) {
		while (!st->stop && st->next_claim < st->n && !claimable(st))
			pthread_cond_wait(&st->cv_released, &st->mu);
		if (st->stop || st->next_claim >= st->n)
			break;
		fill(st, r);
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

/* MEMDISSECT_READERS (a knob for tests and measurements: 1 to RA_MAX_READERS), else one per CPU,
 * at least two. */
static size_t reader_count(void)
{
	const char *env = getenv("MEMDISSECT_READERS");
	bool knob = env && *env;
	long n = knob ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	long least = knob ? 1 : 2;
	if (n < least)
		n = least;
	return n > RA_MAX_READERS ? RA_MAX_READERS : (size_t)n;
}

/* Stops and joins the readers. */
static void stop_readers(struct ra_stream *st)
{
	if (st->concurrent) {
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_cond_broadcast(&st->cv_released);
		pthread_mutex_unlock(&st->mu);
		for (size_t k = 0; k < st->n_readers; k++)
			if (st->readers[k].started)
				pthread_join(st->readers[k].thread, NULL);
	}
}

static void stream_destroy(struct ra_stream *st)
{
	stop_readers(st);
	pthread_cond_destroy(&st->cv_filled);
	pthread_cond_destroy(&st->cv_released);
	pthread_mutex_destroy(&st->mu);
	for (size_t k = 0; k < st->n_bufs; k++)
		free(st->buf[k]);
	free(st);
}

struct ra_stream *ra_start(struct md_target *t, const struct ra_window *win, size_t n)
{
	struct ra_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->t = t;
	st->win = win;
	st->n = n;
	st->concurrent = md_target_concurrent_reads(t);
	st->n_readers = st->concurrent ? reader_count() : 0;
	if (st->n_readers > n)
		st->n_readers = n;
	st->n_bufs = st->concurrent ? 2 * st->n_readers + 2 : 1;
	/* With default attributes these cannot fail on Linux. */
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv_filled, NULL);
	pthread_cond_init(&st->cv_released, NULL);
	for (size_t k = 0; k < st->n_bufs; k++) {
		st->holds[k] = SIZE_MAX;
		st->buf[k] = aligned_alloc(MD_PAGE_SIZE, RA_WINDOW_MAX);
		if (!st->buf[k]) {
			st->n_readers = 0;
			stream_destroy(st);
			return NULL;
		}
	}
	/* The readers take no signal: SIGINT/SIGTERM/SIGHUP and the fatal-signal detach of
	 * attach/live.c stay with the thread that traces the target. A reader that cannot start
	 * leaves its windows to the others, or to the walk. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t k = 0; k < st->n_readers; k++) {
		struct ra_reader *r = &st->readers[k];
		r->st = st;
		r->started = pthread_create(&r->thread, NULL, reader_main, r) == 0;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return st;
}

/* Without concurrent reads: window i in place when the target holds it so, else read here. */
static const uint8_t *get_inline(struct ra_stream *st, size_t i, const uint64_t **bad_ret)
{
	static const uint64_t none[RA_BAD_WORDS];
	const struct ra_window *w = &st->win[i];
	const uint8_t *view = md_target_view(st->t, w->lo, (size_t)(w->hi - w->lo));
	if (view) {
		st->walker.read_bytes += w->hi - w->lo;
		*bad_ret = none;
		return view;
	}
	read_window(st, &st->walker, i, 0);
	*bad_ret = st->bad[0];
	return st->buf[0];
}

const uint8_t *ra_get(struct ra_stream *st, size_t i, const uint64_t **bad_ret)
{
	if (i >= st->n || i < st->released)
		return NULL;
	if (!st->concurrent) {
		st->released = i;
		return get_inline(st, i, bad_ret);
	}
	size_t b = i % st->n_bufs;
	pthread_mutex_lock(&st->mu);
	/* The caller holds one window at a time: every older one may be overwritten. */
	if (i > st->released) {
		st->released = i;
		pthread_cond_broadcast(&st->cv_released);
	}
	while (st->holds[b] != i) {
		if (claimable(st) && st->next_claim == i) /* nobody reads it yet: waiting would idle a CPU */
			fill(st, &st->walker);
		else
			pthread_cond_wait(&st->cv_filled, &st->mu);
	}
	pthread_mutex_unlock(&st->mu);
	*bad_ret = st->bad[b];
	return st->buf[b];
}

bool ra_pages_bad(const uint64_t *bad, uint64_t from, uint64_t to)
{
	for (uint64_t p = from / MD_PAGE_SIZE; p < (to + MD_PAGE_SIZE - 1) / MD_PAGE_SIZE && p < RA_BAD_WORDS * 64; p++)
		if (bad[p / 64] & (1ULL << (p % 64)))
			return true;
	return false;
}

bool ra_read(struct ra_stream *st, uint64_t addr, void *buf, size_t len)
{
	if (addr + len < addr)
		return false;
	if (!st->concurrent) { /* no reader runs */
		struct md_error *err = md_target_read(st->t, addr, buf, len);
		md_error_destroy(err);
		return !err;
	}
	uint8_t *out = buf;
	while (len) {
		uint64_t page = MD_PAGE_DOWN(addr), bad = 0;
		size_t n = (size_t)(page + MD_PAGE_SIZE - addr);
		if (n > len)
			n = len;
		struct md_error *err = md_target_read_pages(st->t, page, st->page, 1, &bad);
		st->walker.read_bytes += MD_PAGE_SIZE;
		if (err || bad) {
			md_error_destroy(err);
			return false;
		}
		memcpy(out, st->page + (addr - page), n);
		out += n;
		addr += n;
		len -= n;
	}
	return true;
}

uint64_t ra_finish(struct ra_stream *st)
{
	if (!st)
		return 0;
	stop_readers(st);
	uint64_t bytes = st->walker.read_bytes;
	for (size_t k = 0; k < st->n_readers; k++)
		bytes += st->readers[k].read_bytes;
	stream_destroy(st);
	return bytes;
}
