/* Reading a heap ahead of its parse, on a helper thread (the pattern of plugins/glibc/stream.c,
 * for a list of windows instead of one contiguous heap).
 *
 * tcmalloc's link index reads every small in-use span once, musl's walk every group, in address
 * order, in windows of up to 1 MiB. Done in turn, the pause pays the read plus the parse; here a
 * reader thread fills a ring of RA_BUFS buffers while the walk parses the windows before them.
 *
 * Thread discipline: while a stream runs, the reader thread is the only one that calls the
 * target API; the walking thread parses buffers and calls only the sink and its own code.
 * Nothing in the host needs to be thread-safe. The hand-over is a mutex and two condition
 * variables. Without a thread (pthread_create failed) the walking thread reads each window
 * itself when it asks for it, through the same code. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "read_ahead.h"

#define RA_BUFS 4

struct ra_stream {
	struct md_target *t;
	const struct ra_window *win;
	size_t n;
	uint8_t *buf[RA_BUFS];
	uint64_t bad[RA_BUFS][RA_BAD_WORDS];
	bool threaded;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv_filled, cv_released;
	size_t filled;   /* windows [0, filled) are read */
	size_t released; /* windows [0, released) may be overwritten */
	bool stop;
	uint64_t read_bytes;
};

/* One window; page by page when the block read fails, marking what cannot be read. */
static void read_window(struct ra_stream *st, size_t i)
{
	const struct ra_window *w = &st->win[i];
	uint8_t *out = st->buf[i % RA_BUFS];
	uint64_t *bad = st->bad[i % RA_BUFS];
	size_t len = (size_t)(w->hi - w->lo), pages = len / MD_PAGE_SIZE;
	memset(bad, 0, sizeof(st->bad[0]));
	if (md_target_interrupted(st->t)) { /* memdissect must let the target go: read nothing */
		memset(bad, 0xff, sizeof(st->bad[0]));
		return;
	}
	struct md_error *err = md_target_read(st->t, w->lo, out, len);
	if (err) {
		md_error_destroy(err);
		for (size_t p = 0; p < pages; p++) {
			err = md_target_read(st->t, w->lo + p * MD_PAGE_SIZE, out + p * MD_PAGE_SIZE, MD_PAGE_SIZE);
			if (err) {
				md_error_destroy(err);
				bad[p / 64] |= 1ULL << (p % 64);
			}
		}
	}
	st->read_bytes += len;
}

static void *reader_main(void *arg)
{
	struct ra_stream *st = arg;
	for (size_t i = 0; i < st->n; i++) {
		pthread_mutex_lock(&st->mu);
		while (!st->stop && i >= st->released + RA_BUFS)
			pthread_cond_wait(&st->cv_released, &st->mu);
		bool stop = st->stop;
		pthread_mutex_unlock(&st->mu);
		if (stop)
			break;
		read_window(st, i);
		pthread_mutex_lock(&st->mu);
		st->filled = i + 1;
		pthread_cond_signal(&st->cv_filled);
		pthread_mutex_unlock(&st->mu);
	}
	return NULL;
}

struct ra_stream *ra_start(struct md_target *t, const struct ra_window *win, size_t n)
{
	struct ra_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->t = t;
	st->win = win;
	st->n = n;
	for (int k = 0; k < RA_BUFS; k++) {
		st->buf[k] = aligned_alloc(MD_PAGE_SIZE, RA_WINDOW_MAX);
		if (!st->buf[k]) {
			for (int j = 0; j < k; j++)
				free(st->buf[j]);
			free(st);
			return NULL;
		}
	}
	/* With default attributes these cannot fail on Linux. */
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv_filled, NULL);
	pthread_cond_init(&st->cv_released, NULL);
	/* The reader takes no signal: SIGINT/SIGTERM/SIGHUP and the fatal-signal detach of
	 * attach/live.c stay with the thread that traces the target. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	st->threaded = pthread_create(&st->thread, NULL, reader_main, st) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return st;
}

const uint8_t *ra_get(struct ra_stream *st, size_t i, const uint64_t **bad_ret)
{
	if (i >= st->n)
		return NULL;
	if (!st->threaded) {
		read_window(st, i);
	} else {
		pthread_mutex_lock(&st->mu);
		/* The caller holds one window at a time: every older one may be overwritten. */
		if (i > st->released) {
			st->released = i;
			pthread_cond_signal(&st->cv_released);
		}
		while (st->filled <= i)
			pthread_cond_wait(&st->cv_filled, &st->mu);
		pthread_mutex_unlock(&st->mu);
	}
	*bad_ret = st->bad[i % RA_BUFS];
	return st->buf[i % RA_BUFS];
}

bool ra_pages_bad(const uint64_t *bad, uint64_t from, uint64_t to)
{
	for (uint64_t p = from / MD_PAGE_SIZE; p < (to + MD_PAGE_SIZE - 1) / MD_PAGE_SIZE && p < RA_BAD_WORDS * 64; p++)
		if (bad[p / 64] & (1ULL << (p % 64)))
			return true;
	return false;
}

uint64_t ra_finish(struct ra_stream *st)
{
	if (!st)
		return 0;
	if (st->threaded) {
		pthread_mutex_lock(&st->mu);
		st->stop = true;
		pthread_cond_signal(&st->cv_released);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->thread, NULL);
	}
	pthread_cond_destroy(&st->cv_filled);
	pthread_cond_destroy(&st->cv_released);
	pthread_mutex_destroy(&st->mu);
	uint64_t bytes = st->read_bytes;
	for (int k = 0; k < RA_BUFS; k++)
		free(st->buf[k]);
	free(st);
	return bytes;
}
