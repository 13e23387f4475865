/* Reading a heap ahead of its chunk walk, on a helper thread.
 *
 * Streaming a heap costs one process_vm_readv pass plus the parse; done in turn, the pause is
 * their sum. Here a reader thread fills a ring of GL_STREAM_BUFS windows while the walk parses
 * the previous ones, so the walk takes about as long as the read alone.
 *
 * Thread discipline: while a stream runs, the reader thread is the only one that calls the
 * target API (md_target_read), and the walking thread calls only the sink and its own code
 * (chunks.c reads target memory through gl_heap_get alone). The two never use the same object
 * at the same time, so nothing in the host needs to be thread-safe: target.h promises no
 * thread safety and none is assumed. The hand-over is a mutex and two condition variables.
 *
 * The walk's reads are monotonic (each header lies after the previous one), so windows behind
 * the current one are given back to the reader. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "walker.h"

#define GL_STREAM_BUFS 4

struct gl_stream {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv_filled, cv_released;
	struct md_target *t;
	uint64_t base, end; /* page aligned; window i is [base + i*W, min(end, base + (i+1)*W)) */
	size_t n_windows;
	uint8_t *buf[GL_STREAM_BUFS];
	uint64_t bad[GL_STREAM_BUFS]; /* bit k: page k of the window could not be read */
	size_t filled;                /* windows [0, filled) are read */
	size_t released;              /* windows [0, released) may be overwritten */
	bool stop;
	double read_ms;
	uint64_t read_bytes;
};

static uint64_t window_start(const struct gl_stream *st, size_t i)
{
	return st->base + (uint64_t)i * GL_WIN_SIZE;
}

static uint64_t window_end(const struct gl_stream *st, size_t i)
{
	uint64_t e = window_start(st, i) + GL_WIN_SIZE;
	return e < st->end ? e : st->end;
}

/* One window; page by page when the block read fails, marking what cannot be read (swapped
 * out, unmapped): the walk then reports that header, as with the sequential window. */
static void read_window(struct gl_stream *st, size_t i)
{
	uint64_t start = window_start(st, i), end = window_end(st, i);
	uint8_t *out = st->buf[i % GL_STREAM_BUFS];
	uint64_t bad = 0;
	double t0 = gl_now_ms();
	if (md_target_interrupted(st->t)) { /* memdissect must let the target go: read nothing */
		st->bad[i % GL_STREAM_BUFS] = ~0ULL;
		return;
	}
	struct md_error *err = md_target_read(st->t, start, out, (size_t)(end - start));
	if (err) {
		md_error_destroy(err);
		for (uint64_t p = start; p < end; p += MD_PAGE_SIZE) {
			err = md_target_read(st->t, p, out + (p - start), MD_PAGE_SIZE);
			if (err) {
				md_error_destroy(err);
				memset(out + (p - start), 0, MD_PAGE_SIZE);
				bad |= 1ULL << ((p - start) / MD_PAGE_SIZE);
			}
		}
	}
	st->read_ms += gl_now_ms() - t0;
	st->read_bytes += end - start;
	st->bad[i % GL_STREAM_BUFS] = bad;
}

static void *reader_main(void *arg)
{
	struct gl_stream *st = arg;
	for (size_t i = 0; i < st->n_windows; i++) {
		pthread_mutex_lock(&st->mu);
		while (!st->stop && i >= st->released + GL_STREAM_BUFS)
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

bool gl_stream_start(struct walker *w, uint64_t from, uint64_t to)
{
	struct gl_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return false;
	st->t = w->t;
	st->base = MD_PAGE_DOWN(from);
	st->end = MD_PAGE_UP(to);
	st->n_windows = (size_t)((st->end - st->base + GL_WIN_SIZE - 1) / GL_WIN_SIZE);
	bool ok = true;
	for (int k = 0; k < GL_STREAM_BUFS && ok; k++) {
		st->buf[k] = aligned_alloc(MD_PAGE_SIZE, GL_WIN_SIZE);
		ok = st->buf[k] != NULL;
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
	int rc = ok ? pthread_create(&st->thread, NULL, reader_main, st) : -1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&st->cv_filled);
		pthread_cond_destroy(&st->cv_released);
		pthread_mutex_destroy(&st->mu);
		for (int k = 0; k < GL_STREAM_BUFS; k++)
			free(st->buf[k]);
		free(st);
		return false; /* the walk reads the heap itself then */
	}
	w->stream = st;
	w->win_start = w->win_end = 0;
	return true;
}

void gl_stream_finish(struct walker *w)
{
	struct gl_stream *st = w->stream;
	if (!st)
		return;
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_signal(&st->cv_released);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	w->s->read_ms += st->read_ms;
	w->s->read_bytes += st->read_bytes;
	pthread_cond_destroy(&st->cv_filled);
	pthread_cond_destroy(&st->cv_released);
	pthread_mutex_destroy(&st->mu);
	for (int k = 0; k < GL_STREAM_BUFS; k++)
		free(st->buf[k]);
	free(st);
	w->stream = NULL;
	w->win_start = w->win_end = 0;
	w->buf = w->own_buf;
}

/* Wait for window i; windows before first_needed go back to the reader. */
static void wait_window(struct gl_stream *st, size_t first_needed, size_t i)
{
	pthread_mutex_lock(&st->mu);
	if (first_needed > st->released) {
		st->released = first_needed;
		pthread_cond_signal(&st->cv_released);
	}
	while (st->filled <= i)
		pthread_cond_wait(&st->cv_filled, &st->mu);
	pthread_mutex_unlock(&st->mu);
}

static bool pages_bad(const struct gl_stream *st, size_t i, uint64_t from, uint64_t to)
{
	uint64_t bad = st->bad[i % GL_STREAM_BUFS];
	if (!bad)
		return false;
	uint64_t ws = window_start(st, i);
	uint64_t lo = from > ws ? from : ws, hi = to < window_end(st, i) ? to : window_end(st, i);
	for (uint64_t p = MD_PAGE_DOWN(lo); p < hi; p += MD_PAGE_SIZE)
		if (bad & (1ULL << ((p - ws) / MD_PAGE_SIZE)))
			return true;
	return false;
}

const uint8_t *gl_stream_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit)
{
	struct gl_stream *st = w->stream;
	if (addr + n < addr || addr + n > limit || addr < st->base || addr + n > st->end)
		return NULL;
	size_t i = (size_t)((addr - st->base) / GL_WIN_SIZE), j = (size_t)((addr + n - 1 - st->base) / GL_WIN_SIZE);
	if (i < st->released) /* behind the walk: never asked for, and no longer there */
		return NULL;
	wait_window(st, i, j);
	if (pages_bad(st, i, addr, addr + n) || (j != i && pages_bad(st, j, addr, addr + n)))
		return NULL;
	/* The fast path of the walk continues in the window of the last byte. */
	w->win_start = window_start(st, j);
	w->win_end = window_end(st, j);
	w->buf = st->buf[j % GL_STREAM_BUFS];
	w->win_any_bad = st->bad[j % GL_STREAM_BUFS] != 0;
	if (i == j)
		return w->buf + (addr - w->win_start);
	/* A header across two windows: both are held (i is not released before the next call). */
	size_t first = (size_t)(window_end(st, i) - addr);
	memcpy(w->view, st->buf[i % GL_STREAM_BUFS] + (addr - window_start(st, i)), first);
	memcpy(w->view + first, w->buf, n - first);
	return w->view;
}
