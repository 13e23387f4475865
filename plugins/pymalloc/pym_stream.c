/* Reading arenas ahead of their walk, on reader threads (live targets only).
 *
 * Reading the arenas and parsing their pools in turn makes the pause their sum; here reader
 * threads fill a ring of PYM_STREAM_BUFS arena buffers while the walk parses the previous ones,
 * so the walk costs about the read alone (with two readers, less than one reader's pass).
 *
 * Thread discipline: the readers call nothing of the target API but md_target_page_bits (a load
 * from the residency captured for the pause, which nothing changes before the detach) and the
 * process_vm_readv system call; everything else (md_target_read, symbols, the sink) stays with
 * the walking thread. A reader reads only pages the pagemap shows present and mapped once
 * (MD_PAGE_EXCLUSIVE): pages not present or the shared zero page read as zeros without a read,
 * and anything else (swapped, file-backed or copy-on-write shared pages, which a pin could
 * unshare) makes the job fail, so that the walk reads that arena with md_target_read, which knows
 * how to read them or says why not. Memory: PYM_STREAM_BUFS buffers of one arena each, whatever
 * the heap's size. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/uio.h>
#include <time.h>

#include "pym.h"

#define PYM_STREAM_BUFS 6
#define PYM_STREAM_READERS 2
#define PYM_STREAM_IOV 256

enum slot_state { SLOT_EMPTY, SLOT_READING, SLOT_READ, SLOT_FAILED };

struct pym_stream {
	struct md_target *t;
	const struct pym_job *jobs;
	size_t n_jobs, buf_size;
	pthread_t thread[PYM_STREAM_READERS];
	unsigned n_threads;
	pthread_mutex_t mu;
	pthread_cond_t cv_read, cv_free;
	uint8_t *buf[PYM_STREAM_BUFS];
	size_t slot_job[PYM_STREAM_BUFS]; /* the job a slot holds or is being read for */
	enum slot_state slot_state[PYM_STREAM_BUFS];
	size_t next;     /* the next job a reader takes */
	size_t released; /* jobs below this one are parsed: their slots may be reused */
	bool stop;
	uint64_t read_ns, wait_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Whether a page may be read by process_vm_readv (1), reads as zeros without a read (0), or must
 * be left to md_target_read (-1). */
static int page_plan(uint8_t bits)
{
	if (bits & MD_PAGE_UNKNOWN)
		return -1;
	if (!(bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED)))
		return 0; /* never touched: zeros, as md_target_read gives */
	if (bits & MD_PAGE_ZERO)
		return 0;
	if ((bits & (MD_PAGE_PRESENT | MD_PAGE_SWAPPED | MD_PAGE_EXCLUSIVE | MD_PAGE_FILE)) ==
	    (MD_PAGE_PRESENT | MD_PAGE_EXCLUSIVE))
		return 1;
	return -1;
}

/* One job into out: runs of readable pages in one process_vm_readv call per PYM_STREAM_IOV runs.
 * False when a page needs md_target_read or the read came up short. */
static bool read_job(struct pym_stream *st, const struct pym_job *j, uint8_t *out)
{
	struct iovec loc[PYM_STREAM_IOV], rem[PYM_STREAM_IOV];
	size_t n_iov = 0, want = 0;
	pid_t pid = (pid_t)md_target_pid(st->t);
	for (uint64_t off = 0; off < j->len;) {
		if (md_target_interrupted(st->t))
			return false;
		int plan = page_plan(md_target_page_bits(st->t, j->addr + off));
		if (plan < 0)
			return false;
		if (plan == 0) {
			memset(out + off, 0, MD_PAGE_SIZE);
			off += MD_PAGE_SIZE;
			continue;
		}
		uint64_t run = MD_PAGE_SIZE;
		while (off + run < j->len && page_plan(md_target_page_bits(st->t, j->addr + off + run)) == 1)
			run += MD_PAGE_SIZE;
		loc[n_iov] = (struct iovec){ out + off, (size_t)run };
		rem[n_iov] = (struct iovec){ (void *)(uintptr_t)(j->addr + off), (size_t)run };
		n_iov++;
		want += (size_t)run;
		off += run;
		if (n_iov == PYM_STREAM_IOV || off >= j->len) {
			ssize_t got = process_vm_readv(pid, loc, n_iov, rem, n_iov, 0);
			if (got < 0 || (size_t)got != want)
				return false;
			n_iov = 0;
			want = 0;
		}
	}
	if (n_iov) {
		ssize_t got = process_vm_readv(pid, loc, n_iov, rem, n_iov, 0);
		if (got < 0 || (size_t)got != want)
			return false;
	}
	return true;
}

static void *reader_main(void *arg)
{
	struct pym_stream *st = arg;
	uint64_t spent = 0;
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->stop && st->next < st->n_jobs && st->next >= st->released + PYM_STREAM_BUFS)
			pthread_cond_wait(&st->cv_free, &st->mu);
		if (st->stop || st->next >= st->n_jobs) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		size_t i = st->next++, slot = i % PYM_STREAM_BUFS;
		st->slot_job[slot] = i;
		st->slot_state[slot] = SLOT_READING;
		pthread_mutex_unlock(&st->mu);
		uint64_t t0 = now_ns();
		bool ok = st->jobs[i].len <= st->buf_size && read_job(st, &st->jobs[i], st->buf[slot]);
		spent += now_ns() - t0;
		pthread_mutex_lock(&st->mu);
		st->slot_state[slot] = ok ? SLOT_READ : SLOT_FAILED;
		pthread_cond_broadcast(&st->cv_read);
		pthread_mutex_unlock(&st->mu);
	}
	pthread_mutex_lock(&st->mu);
	st->read_ns += spent;
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

struct pym_stream *pym_stream_start(struct md_target *t, const struct pym_job *jobs, size_t n_jobs, size_t buf_size)
{
	if (md_target_source(t) != MD_SOURCE_LIVE || n_jobs < 2)
		return NULL; /* cores, and one arena: nothing to overlap */
	struct pym_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->t = t;
	st->jobs = jobs;
	st->n_jobs = n_jobs;
	st->buf_size = buf_size;
	bool ok = true;
	for (int k = 0; k < PYM_STREAM_BUFS && ok; k++) {
		st->buf[k] = aligned_alloc(MD_PAGE_SIZE, buf_size);
		st->slot_job[k] = SIZE_MAX;
		ok = st->buf[k] != NULL;
	}
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv_read, NULL);
	pthread_cond_init(&st->cv_free, NULL);
	/* The readers take no signal: SIGINT/SIGTERM/SIGHUP and the fatal-signal detach stay with
	 * the thread that traces the target. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	unsigned want = getenv("PYM_READERS") ? (unsigned)atoi(getenv("PYM_READERS")) : PYM_STREAM_READERS;
	if (want > PYM_STREAM_READERS) want = PYM_STREAM_READERS;
	for (unsigned r = 0; ok && r < want; r++) {
		if (pthread_create(&st->thread[r], NULL, reader_main, st) != 0)
			break;
		st->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!st->n_threads) {
		pthread_cond_destroy(&st->cv_read);
		pthread_cond_destroy(&st->cv_free);
		pthread_mutex_destroy(&st->mu);
		for (int k = 0; k < PYM_STREAM_BUFS; k++)
			free(st->buf[k]);
		free(st);
		return NULL; /* the walk reads the arenas itself */
	}
	return st;
}

const uint8_t *pym_stream_get(struct pym_stream *st, size_t i)
{
	if (!st || i >= st->n_jobs)
		return NULL;
	size_t slot = i % PYM_STREAM_BUFS;
	uint64_t t0 = now_ns();
	pthread_mutex_lock(&st->mu);
	if (i > st->released) {
		st->released = i;
		pthread_cond_broadcast(&st->cv_free);
	}
	while (!(st->slot_job[slot] == i && (st->slot_state[slot] == SLOT_READ || st->slot_state[slot] == SLOT_FAILED)))
		pthread_cond_wait(&st->cv_read, &st->mu);
	bool ok = st->slot_state[slot] == SLOT_READ;
	pthread_mutex_unlock(&st->mu);
	st->wait_ns += now_ns() - t0;
	return ok ? st->buf[slot] : NULL;
}

double pym_stream_finish(struct pym_stream *st)
{
	if (!st)
		return 0;
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_broadcast(&st->cv_free);
	pthread_mutex_unlock(&st->mu);
	for (unsigned r = 0; r < st->n_threads; r++)
		pthread_join(st->thread[r], NULL);
	double ms = (double)st->read_ns / 1e6;
	if (getenv("PYM_WAIT")) fprintf(stderr, "pym wait %.2f ms\n", (double)st->wait_ns / 1e6);
	pthread_cond_destroy(&st->cv_read);
	pthread_cond_destroy(&st->cv_free);
	pthread_mutex_destroy(&st->mu);
	for (int k = 0; k < PYM_STREAM_BUFS; k++)
		free(st->buf[k]);
	free(st);
	return ms;
}
