/* A core file mapped read-only, read in place.
 *
 * Why a mapping: a heap walk over a core read with pread copies every byte from the page cache
 * into our buffers, and that copy was most of the time of `memdissect core` (issue 21). Mapped,
 * the walk reads the page cache itself (md_target_view) and only the bytes it looks at.
 *
 * Why that is safe: a mapped file that shrinks under us raises SIGBUS on the first access past
 * its new end, wherever that access is (our copies, a plugin's walk over a view, libelf). pread
 * would have returned a short read instead. So one process-wide SIGBUS handler knows every core
 * mapping: a fault inside one replaces the mapping from the faulting page to its end with
 * anonymous zero pages (mmap MAP_FIXED, a plain system call, async-signal-safe on Linux) and
 * marks it shrunk; the faulting access then reads zeros and the code goes on. The reads of
 * attach/core.c check the mark and fail, and md_analyze_core refuses the report with a clear
 * error: nothing read from a core that changed under us is trusted. A SIGBUS anywhere else goes
 * to the handler that was there before (attach/live.c's detach-and-die, or the default). A
 * page the kernel cannot read in (an I/O error) raises SIGBUS too, and is treated alike.
 * Checking the size with fstat before each access would not do: the file can shrink between
 * the check and the access, and a view is read long after it was handed out. sigsetjmp around
 * each copy would not cover the views.
 *
 * Mapped pages of the file are page cache, not memory of ours, but the kernel counts those we
 * have mapped in our RSS (ru_maxrss): md_coremap_touch gives the page-table entries of what was
 * read back every MD_COREMAP_RESIDENT_BUDGET bytes, so our RSS stays bounded by that, not by
 * the size of the core. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coremap.h"
#include "memdissect/target.h"

#define SLOTS 16

struct slot {
	_Atomic(uintptr_t) base;
	_Atomic(size_t) len;
	volatile sig_atomic_t shrunk;
};

static struct slot slots[SLOTS];
static struct sigaction previous_bus;
static bool installed;

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (previous_bus.sa_flags & SA_SIGINFO) {
		if (previous_bus.sa_sigaction) {
			previous_bus.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (previous_bus.sa_handler != SIG_DFL && previous_bus.sa_handler != SIG_IGN) {
		previous_bus.sa_handler(sig);
		return;
	}
	/* Default action: returning re-executes the access, which now kills us as before. */
	signal(SIGBUS, SIG_DFL);
}

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	for (size_t i = 0; i < SLOTS; i++) {
		uintptr_t base = atomic_load(&slots[i].base);
		size_t len = atomic_load(&slots[i].len);
		if (!base || a < base || a - base >= len)
			continue;
		uintptr_t page = a & ~(uintptr_t)(MD_PAGE_SIZE - 1);
		int saved = errno;
		void *p = mmap((void *)page, base + len - page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		errno = saved;
		if (p == MAP_FAILED)
			break;
		slots[i].shrunk = 1;
		return;
	}
	chain(sig, si, uc);
}

static bool install(void)
{
	if (installed)
		return true;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous_bus) != 0)
		return false;
	installed = true;
	return true;
}

struct md_error *md_coremap_init(struct md_coremap *m, int fd, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->slot = -1;
	if (size == 0 || size > SIZE_MAX)
		return md_error_create(MD_ERR_NOT_FOUND, "core: empty or too large to map");
	int slot = -1;
	for (int i = 0; i < SLOTS && slot < 0; i++)
		if (!atomic_load(&slots[i].base))
			slot = i;
	if (slot < 0 || !install())
		return md_error_create(MD_ERR_NOT_FOUND, "core: no room to map another core");
	void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return md_error_create(MD_ERR_NOT_FOUND, "core: mmap: %s", strerror(errno));
	slots[slot].shrunk = 0;
	atomic_store(&slots[slot].len, (size_t)size);
	atomic_store(&slots[slot].base, (uintptr_t)p);
	m->base = p;
	m->size = size;
	m->slot = slot;
	return NULL;
}

void md_coremap_deinit(struct md_coremap *m)
{
	if (!m->base)
		return;
	atomic_store(&slots[m->slot].base, 0);
	atomic_store(&slots[m->slot].len, 0);
	munmap((void *)(uintptr_t)m->base, (size_t)m->size);
	memset(m, 0, sizeof(*m));
	m->slot = -1;
}

bool md_coremap_shrunk(const struct md_coremap *m)
{
	return m->base && slots[m->slot].shrunk;
}

bool md_coremap_copy(const struct md_coremap *m, uint64_t off, void *out, size_t len)
{
	if (!m->base || off > m->size || len > m->size - off || slots[m->slot].shrunk)
		return false;
	memcpy(out, m->base + off, len);
	atomic_signal_fence(memory_order_seq_cst); /* the mark is read after the copy */
	return !slots[m->slot].shrunk;
}

void md_coremap_touch(const struct md_coremap *m, struct md_coremap_touched *touched, uint64_t off, uint64_t len)
{
	if (!m->base || len == 0)
		return;
	uint64_t end = off + len;
	if (touched->hi == touched->lo) {
		touched->lo = off;
		touched->hi = end;
		return;
	}
	uint64_t lo = touched->lo < off ? touched->lo : off;
	uint64_t hi = touched->hi > end ? touched->hi : end;
	if (hi - lo <= MD_COREMAP_RESIDENT_BUDGET) {
		touched->lo = lo;
		touched->hi = hi;
		return;
	}
	/* Keep the bytes just handed out mapped, give back the rest. */
	uint8_t *base = (uint8_t *)(uintptr_t)m->base;
	uint64_t a = MD_PAGE_DOWN(off), b = MD_PAGE_UP(end);
	if (b > MD_PAGE_UP(m->size))
		b = MD_PAGE_UP(m->size);
	lo = MD_PAGE_DOWN(lo);
	hi = MD_PAGE_UP(hi) < MD_PAGE_UP(m->size) ? MD_PAGE_UP(hi) : MD_PAGE_UP(m->size);
	if (a > lo)
		madvise(base + lo, (size_t)(a - lo), MADV_DONTNEED);
	if (hi > b)
		madvise(base + b, (size_t)(hi - b), MADV_DONTNEED);
	touched->lo = off;
	touched->hi = end;
}

/* ---- reading ahead ---- */

#define AHEAD_STEP (256u * 1024u) /* the helper looks for a new goal this often */

struct md_coremap_ahead {
	const struct md_coremap *m;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t pos, goal; /* read [pos, goal) next */
	uint64_t generation; /* bumped when the reader jumps: a step in flight does not move pos */
	bool stop;
};

/* One load per cache line: the page gets mapped, the line comes into the cache. */
static void read_lines(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < len; i += 64)
		sum += *(const volatile uint8_t *)(p + i);
	__asm__ volatile("" : : "r"(sum));
}

static void *ahead_main(void *arg)
{
	struct md_coremap_ahead *a = arg;
	pthread_mutex_lock(&a->mu);
	for (;;) {
		while (!a->stop && a->pos >= a->goal)
			pthread_cond_wait(&a->cv, &a->mu);
		if (a->stop)
			break;
		uint64_t from = a->pos, to = a->goal - a->pos > AHEAD_STEP ? a->pos + AHEAD_STEP : a->goal;
		uint64_t gen = a->generation;
		pthread_mutex_unlock(&a->mu);
		if (!md_coremap_shrunk(a->m))
			read_lines(a->m->base + from, (size_t)(to - from));
		pthread_mutex_lock(&a->mu);
		if (a->generation == gen && a->pos < to)
			a->pos = to;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

struct md_coremap_ahead *md_coremap_ahead_create(const struct md_coremap *m)
{
	if (!m->base || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return NULL;
	struct md_coremap_ahead *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->m = m;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	/* Asynchronous signals stay with the main thread; a fault (SIGBUS) is the helper's own. */
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&a->thread, NULL, ahead_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&a->cv);
		pthread_mutex_destroy(&a->mu);
		free(a);
		return NULL;
	}
	return a;
}

void md_coremap_ahead_at(struct md_coremap_ahead *a, uint64_t off, uint64_t end)
{
	if (!a)
		return;
	if (end > a->m->size)
		end = a->m->size;
	if (off >= end)
		return;
	uint64_t goal = end - off > MD_COREMAP_AHEAD ? off + MD_COREMAP_AHEAD : end;
	if (off >= goal)
		return;
	pthread_mutex_lock(&a->mu);
	if (a->pos < off || a->pos > goal) { /* a jump: start again from the reader */
		a->pos = off;
		a->generation++;
	}
	bool wake = a->pos >= a->goal;
	a->goal = goal;
	if (wake)
		pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

void md_coremap_ahead_destroy(struct md_coremap_ahead *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stop = true;
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
