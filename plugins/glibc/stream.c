/* Reading a heap ahead of its chunk walk, on helper threads.
 *
 * Streaming a heap costs a process_vm_readv pass plus the parse; done in turn, the pause is
 * their sum. Here reader threads fill a ring of windows while the walk parses the earlier ones.
 * One reader moves about 5.6 GB/s on this machine and two about 9.8 GB/s: on a live target,
 * where reads may run side by side (md_target_concurrent_reads), there are as many readers as
 * CPUs (at least 2, at most GL_STREAM_MAX_READERS), each taking the next window nobody reads yet,
 * and the walk reads a window itself rather than wait for it.
 *
 * Thread discipline: while a stream runs, the readers call only md_target_read_pages, which uses
 * no cache; the walking thread calls only the sink and its own code (chunks.c reads target memory
 * through gl_heap_get alone), and, where reads may run side by side, md_target_read_pages for a
 * window no reader has taken and md_target_read_probe or md_target_read_pages for a sparse
 * header. The hand-over is a mutex and two condition variables.
 *
 * The walk's reads are monotonic (each header lies after the previous one), so windows behind
 * the current one are given back to the readers. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "walker.h"

/* Sparse reading: after GL_SPARSE_ENTER headers in a row each after a chunk of GL_SPARSE_JUMP
 * bytes or more, the walk reads each header itself (a probe of its bytes) and the readers wait;
 * after GL_SPARSE_LEAVE probes in a row each less than a page after the previous one, the
 * readers go on from there. A heap starts sparse. */
#define GL_SPARSE_JUMP (32u * 1024u)
#define GL_SPARSE_ENTER 4
#define GL_SPARSE_LEAVE 8

struct gl_stream;

struct gl_reader {
	pthread_t thread;
	struct gl_stream *st;
	bool started;
	double read_ms;
	uint64_t read_bytes;
};

struct gl_stream {
	pthread_mutex_t mu;
	pthread_cond_t cv_filled, cv_released;
	struct md_target *t;
	uint64_t base, end; /* page aligned; window i is [base + i*W, min(end, base + (i+1)*W)) */
	size_t n_windows;
	size_t n_bufs, n_readers;
	uint8_t *buf[GL_STREAM_MAX_BUFS];
	uint64_t bad[GL_STREAM_MAX_BUFS]; /* bit k: page k of the window could not be read */
	size_t holds[GL_STREAM_MAX_BUFS]; /* the window read into each buffer, SIZE_MAX: none yet */
	size_t released;                  /* windows [0, released) may be overwritten */
	size_t next_claim;                /* the first window nobody reads yet */
	bool stop;
	bool walker_reads; /* the walk may read a window itself rather than wait for a reader */
	bool sparse;       /* the walk reads the headers' pages itself; the readers wait */
	bool readers_started;
	unsigned jumps;       /* requests in a row after a chunk of GL_SPARSE_JUMP bytes or more */
	unsigned adjacent;    /* probes in a row, each less than a page after the previous one */
	uint64_t sparse_end;  /* end of the previous probe */
	struct gl_reader readers[GL_STREAM_MAX_READERS];
	struct gl_reader walker; /* what the walk read itself */
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

/* One window; pages that cannot be read (swapped out, unmapped) are marked: the walk then
 * reports that header, as with the sequential window. */
static uint64_t read_window(struct gl_reader *r, size_t i)
{
	struct gl_stream *st = r->st;
	uint64_t start = window_start(st, i), end = window_end(st, i);
	uint64_t bad = 0;
	double t0 = gl_now_ms();
	/* Interrupted (memdissect must let the target go): read nothing, all unknown. */
	struct md_error *err = md_target_read_pages(st->t, start, st->buf[i % st->n_bufs],
						    (size_t)((end - start) / MD_PAGE_SIZE), &bad);
	if (err) {
		md_error_destroy(err);
		bad = ~0ULL;
	}
	r->read_ms += gl_now_ms() - t0;
	r->read_bytes += end - start;
	return bad;
}

/* The next window to read, mu held: windows the walk has left behind are never read. */
static size_t claim(struct gl_stream *st)
{
	if (st->next_claim < st->released)
		st->next_claim = st->released;
	return st->next_claim++;
}

/* Read window i (claimed, mu not held) and hand it over. */
static void fill(struct gl_reader *r, size_t i)
{
	struct gl_stream *st = r->st;
	uint64_t bad = read_window(r, i);
	pthread_mutex_lock(&st->mu);
	st->bad[i % st->n_bufs] = bad;
	st->holds[i % st->n_bufs] = i;
	pthread_cond_signal(&st->cv_filled);
	pthread_mutex_unlock(&st->mu);
}

/* Readers take the windows in turn, as far ahead of the walk as the ring allows. */
static void *reader_main(void *arg)
{
	struct gl_reader *r = arg;
	struct gl_stream *st = r->st;
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->stop && st->next_claim < st->n_windows &&
		       (st->sparse || st->next_claim >= st->released + st->n_bufs))
			pthread_cond_wait(&st->cv_released, &st->mu);
		bool done = st->stop || st->next_claim >= st->n_windows;
		size_t i = done ? 0 : claim(st);
		pthread_mutex_unlock(&st->mu);
		if (done)
			break;
		fill(r, i);
	}
	return NULL;
}

/* Readers for this target: MEMDISSECT_GLIBC_READERS (a knob for tests and measurements), else
 * one per CPU, at least two, when reads may run side by side. */
static size_t reader_count(const struct md_target *t)
{
	if (!md_target_concurrent_reads(t))
		return 1;
	const char *env = getenv("MEMDISSECT_GLIBC_READERS");
	long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < (env && *env ? 1 : 2))
		n = env && *env ? 1 : 2;
	return n > GL_STREAM_MAX_READERS ? GL_STREAM_MAX_READERS : (size_t)n;
}

static void stream_destroy(struct gl_stream *st)
{
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_broadcast(&st->cv_released);
	pthread_mutex_unlock(&st->mu);
	for (size_t k = 0; k < st->n_readers; k++)
		if (st->readers[k].started)
			pthread_join(st->readers[k].thread, NULL);
	pthread_cond_destroy(&st->cv_filled);
	pthread_cond_destroy(&st->cv_released);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

void gl_stream_free_ring(struct walker *w)
{
	for (size_t k = 0; k < GL_STREAM_MAX_BUFS; k++) {
		free(w->ring[k]);
		w->ring[k] = NULL;
	}
}

/* The reader threads, when they are first needed. They take no signal: SIGINT/SIGTERM/SIGHUP
 * and the fatal-signal detach of attach/live.c stay with the thread that traces the target.
 * False when none could start (only then: with the walk reading, fewer readers do). */
static bool start_readers(struct gl_stream *st)
{
	if (st->readers_started)
		return true;
	st->readers_started = true;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	size_t started = 0;
	for (size_t k = 0; k < st->n_readers; k++) {
		struct gl_reader *r = &st->readers[k];
		r->st = st;
		r->started = pthread_create(&r->thread, NULL, reader_main, r) == 0;
		started += r->started;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started > 0 || st->walker_reads;
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
	st->n_readers = reader_count(w->t);
	if (st->n_readers > st->n_windows)
		st->n_readers = st->n_windows;
	st->n_bufs = 2 * st->n_readers + 2;
	/* With default attributes these cannot fail on Linux. */
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv_filled, NULL);
	pthread_cond_init(&st->cv_released, NULL);
	/* Kept from heap to heap: fresh pages would cost a fault each on every heap. */
	bool ok = true;
	for (size_t k = 0; k < st->n_bufs && ok; k++) {
		if (!w->ring[k])
			w->ring[k] = aligned_alloc(MD_PAGE_SIZE, GL_WIN_SIZE);
		st->buf[k] = w->ring[k];
		st->holds[k] = SIZE_MAX;
		ok = st->buf[k] != NULL;
	}
	st->walker.st = st;
	st->walker_reads = md_target_concurrent_reads(w->t);
	/* A heap starts sparse: a few probes tell small chunks (the readers go on) from large,
	 * and a heap of large chunks never starts a reader. */
	st->sparse = st->walker_reads;
	if (!ok || (!st->sparse && !start_readers(st))) {
		stream_destroy(st);
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
	for (size_t k = 0; k < st->n_readers; k++) {
		w->s->read_ms += st->readers[k].read_ms;
		w->s->read_bytes += st->readers[k].read_bytes;
	}
	w->s->read_ms += st->walker.read_ms;
	w->s->read_bytes += st->walker.read_bytes;
	stream_destroy(st);
	w->stream = NULL;
	w->win_start = w->win_end = 0;
	w->buf = w->own_buf;
}

/* Wait for windows i and j (i or i + 1); windows before i go back to the readers. A needed
 * window no reader has taken yet (the readers are busy, or the walk jumped ahead over a large
 * chunk) the walk reads itself, when reads may run side by side: waiting would idle a CPU. */
static void wait_window(struct gl_stream *st, size_t i, size_t j)
{
	pthread_mutex_lock(&st->mu);
	if (i > st->released) {
		st->released = i;
		pthread_cond_broadcast(&st->cv_released);
	}
	while (st->holds[i % st->n_bufs] != i || st->holds[j % st->n_bufs] != j) {
		if (st->walker_reads && st->next_claim <= j) {
			size_t k = claim(st); /* i or j: next_claim is at least released == i */
			pthread_mutex_unlock(&st->mu);
			fill(&st->walker, k);
			pthread_mutex_lock(&st->mu);
			continue;
		}
		pthread_cond_wait(&st->cv_filled, &st->mu);
	}
	pthread_mutex_unlock(&st->mu);
}

static bool pages_bad(const struct gl_stream *st, size_t i, uint64_t from, uint64_t to)
{
	uint64_t bad = st->bad[i % st->n_bufs];
	if (!bad)
		return false;
	uint64_t ws = window_start(st, i);
	uint64_t lo = from > ws ? from : ws, hi = to < window_end(st, i) ? to : window_end(st, i);
	for (uint64_t p = MD_PAGE_DOWN(lo); p < hi; p += MD_PAGE_SIZE)
		if (bad & (1ULL << ((p - ws) / MD_PAGE_SIZE)))
			return true;
	return false;
}

/* [addr, addr + n) read by the walk itself: a probe of those bytes when they lie in one present
 * page, else the page or two holding them (a header across pages, a page not present or
 * swapped), never a block of the read cache around them. Neither shares anything with the
 * readers (md_target_read_pages uses no cache). */
static const uint8_t *sparse_get(struct walker *w, struct gl_stream *st, uint64_t addr, size_t n)
{
	if (md_target_interrupted(st->t))
		return NULL; /* memdissect must let the target go: read nothing more */
	uint64_t from = MD_PAGE_DOWN(addr), to = MD_PAGE_UP(addr + n);
	uint8_t bits = md_target_page_bits(st->t, addr);
	bool probe = to - from == MD_PAGE_SIZE && (bits & MD_PAGE_PRESENT) && !(bits & (MD_PAGE_ZERO | MD_PAGE_SWAPPED));
	double t0 = gl_now_ms();
	uint64_t bad = 0;
	struct md_error *err = probe ? md_target_read_probe(st->t, addr, w->own_buf, n)
				     : md_target_read_pages(st->t, from, w->own_buf, (size_t)((to - from) / MD_PAGE_SIZE), &bad);
	st->walker.read_ms += gl_now_ms() - t0;
	st->walker.read_bytes += probe ? n : to - from;
	st->adjacent = addr - st->sparse_end < MD_PAGE_SIZE ? st->adjacent + 1 : 0;
	st->sparse_end = addr + n;
	if (err) {
		md_error_destroy(err);
		bad = ~0ULL;
	}
	w->buf = w->own_buf;
	w->win_start = probe ? addr : from;
	w->win_end = probe ? addr + n : to;
	w->win_any_bad = bad != 0;
	return bad ? NULL : w->buf + (addr - w->win_start);
}

/* Reading ahead is wasted on a walk that jumps over large chunks: from the GL_SPARSE_ENTERth
 * jump in a row the walk reads only the pages of the headers; once those pages follow each other
 * again, the readers take over at the window of addr. */
static void choose_mode(struct gl_stream *st, uint64_t addr, uint64_t step)
{
	st->jumps = step >= GL_SPARSE_JUMP ? st->jumps + 1 : 0;
	if (!st->walker_reads)
		return; /* the walk may not read while a reader might */
	if (!st->sparse && st->jumps >= GL_SPARSE_ENTER) {
		pthread_mutex_lock(&st->mu);
		st->sparse = true;
		pthread_mutex_unlock(&st->mu);
		st->adjacent = 0;
		st->sparse_end = 0;
	} else if (st->sparse && st->adjacent >= GL_SPARSE_LEAVE) {
		start_readers(st); /* none started: the walk reads every window itself */
		pthread_mutex_lock(&st->mu);
		st->sparse = false;
		st->released = (size_t)((addr - st->base) / GL_WIN_SIZE);
		pthread_cond_broadcast(&st->cv_released);
		pthread_mutex_unlock(&st->mu);
		st->jumps = 0;
	}
}

const uint8_t *gl_stream_get(struct walker *w, uint64_t addr, size_t n, uint64_t limit)
{
	struct gl_stream *st = w->stream;
	if (addr + n < addr || addr + n > limit || addr < st->base || addr + n > st->end)
		return NULL;
	size_t i = (size_t)((addr - st->base) / GL_WIN_SIZE), j = (size_t)((addr + n - 1 - st->base) / GL_WIN_SIZE);
	if (i < st->released) /* behind the walk: never asked for, and no longer there */
		return NULL;
	choose_mode(st, addr, w->hdr_step);
	w->hdr_step = 0;
	if (st->sparse)
		return sparse_get(w, st, addr, n);
	wait_window(st, i, j);
	if (pages_bad(st, i, addr, addr + n) || (j != i && pages_bad(st, j, addr, addr + n)))
		return NULL;
	/* The fast path of the walk continues in the window of the last byte. */
	w->win_start = window_start(st, j);
	w->win_end = window_end(st, j);
	w->buf = st->buf[j % st->n_bufs];
	w->win_any_bad = st->bad[j % st->n_bufs] != 0;
	if (i == j)
		return w->buf + (addr - w->win_start);
	/* A header across two windows: both are held (i is not released before the next call). */
	size_t first = (size_t)(window_end(st, i) - addr);
	memcpy(w->view, st->buf[i % st->n_bufs] + (addr - window_start(st, i)), first);
	memcpy(w->view + first, w->buf, n - first);
	return w->view;
}
