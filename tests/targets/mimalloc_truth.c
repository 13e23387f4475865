/* mimalloc ground truth (Debian 12's libmimalloc.so.2, linked; also run with LD_PRELOAD as the
 * "mimalloc_truth" program built against it). Threads build known heaps:
 * - main allocates small and medium blocks and one huge block; worker 0 frees half of main's
 *   "remote" blocks (blocks freed by another thread: still counted used by mimalloc);
 * - workers 0..2 allocate and free their own mix and stay alive;
 * - worker 3 allocates ABANDONED_N blocks, keeps them and exits: its segment is abandoned;
 * - main frees a large batch (freed spans wait in the decommit masks).
 * Each live thread runs mi_heap_visit_blocks(mi_heap_get_default(), false, ...) on its own heap
 * and prints "heap.<tid>.pages|used_blocks|used_bytes N"; main prints mi_process_info's
 * committed figure as "process.committed N", then "ready". Commands on stdin:
 *   collect -> RssAnon before, mi_collect(true) on the main thread, RssAnon after:
 *              "collect_drop_bytes N"
 *   corrupt_cookie | corrupt_page | corrupt_list | corrupt_loop | corrupt_link -> damage
 *              mimalloc's own state after the truth (a segment cookie, a page's capacity, a free
 *              list into nowhere, a page queue that loops, a freed block's link overwritten);
 *              prints "corrupted". Only "quit" is valid afterwards.
 *   quit    -> exit
 * Arguments: "seed" builds a small heap of the same shape (the fuzz seed); "churn" starts a
 * thread that mallocs and frees without pause after "ready".
 * Nothing allocates after the truth: output goes through md_say (write(2), static buffer). */
#include <mimalloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>

#include "target_common.h"

#define N_WORKERS 3
#define N_SMALL 20000
#define N_REMOTE 6000
#define N_BATCH 30000
#define ABANDONED_N 3000
#define ABANDONED_SIZE 200

static void *worker_ptrs[N_WORKERS][N_SMALL];
static void *main_ptrs[N_SMALL];
static void *remote_ptrs[N_REMOTE];
static void *batch[N_BATCH];
static void *abandoned_ptrs[ABANDONED_N];
static void *huge;
/* "seed": a small heap of the same shape (the fuzz seed snapshot, fuzz/fuzz_mimalloc_walk.c). */
static int n_small = N_SMALL, n_batch = N_BATCH;
static pthread_barrier_t remote_done, built, printed;
/* Main mallocs while it creates threads, and a malloc on its heap may collect the blocks other
 * threads freed into it, which the truth counts: worker 0 frees them (remote_go) and the exiter
 * allocates (exiter_go) only after main created every thread. */
static sem_t exiter_go, remote_go;
static pthread_mutex_t say_lock = PTHREAD_MUTEX_INITIALIZER;
static int block_pipe[2];

struct visit {
	unsigned long long pages, used, used_bytes;
};

static bool visit_cb(const mi_heap_t *heap, const mi_heap_area_t *area, void *block, size_t block_size, void *arg)
{
	(void)heap;
	(void)block;
	(void)block_size;
	struct visit *v = arg;
	v->pages++;
	v->used += area->used;
	v->used_bytes += (unsigned long long)area->used * area->block_size;
	return true;
}

static void print_own_heap(void)
{
	struct visit v = { 0 };
	mi_heap_visit_blocks(mi_heap_get_default(), false, visit_cb, &v);
	long tid = syscall(SYS_gettid);
	pthread_mutex_lock(&say_lock);
	md_say("heap.%ld.pages %llu\nheap.%ld.used_blocks %llu\nheap.%ld.used_bytes %llu\n", tid, v.pages, tid, v.used, tid, v.used_bytes);
	pthread_mutex_unlock(&say_lock);
}

/* "churn": after "ready" a thread mallocs and frees without pause (the quiescence test). */
static void *churner(void *arg)
{
	(void)arg;
	static void *keep[64];
	for (unsigned long n = 0;; n++) {
		unsigned k = (unsigned)(n % 64);
		mi_free(keep[k]);
		keep[k] = mi_malloc(16 + (n * 40503u) % 3000);
	}
	return NULL;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static size_t some_size(uint64_t *s)
{
	static const size_t sizes[] = { 8, 16, 24, 40, 64, 100, 128, 200, 320, 500, 1024, 2000, 5000, 9000, 20000, 70000 };
	return sizes[rng_next(s) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void *worker(void *arg)
{
	long id = (long)arg;
	uint64_t s = 0x9e3779b97f4a7c15ULL + (uint64_t)id;
	for (int i = 0; i < n_small; i++)
		worker_ptrs[id][i] = mi_malloc(some_size(&s));
	for (int i = 0; i < n_small; i += 3)
		mi_free(worker_ptrs[id][i]);
	if (id == 0) {
		/* only once main has created every thread (pthread_create mallocs on its heap) */
		while (sem_wait(&remote_go) != 0)
			;
		for (int i = 0; i < N_REMOTE; i += 2)
			mi_free(remote_ptrs[i]);
	}
	pthread_barrier_wait(&remote_done);
	pthread_barrier_wait(&built);
	print_own_heap();
	pthread_barrier_wait(&printed);
	char c;
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

/* Started before worker 0's remote frees; allocates once told to (exiter_go). */
static void *exiter(void *arg)
{
	(void)arg;
	while (sem_wait(&exiter_go) != 0)
		;
	for (int i = 0; i < ABANDONED_N; i++)
		abandoned_ptrs[i] = mi_malloc(ABANDONED_SIZE);
	return NULL;
}

static unsigned long long rss_anon(void)
{
	return md_proc_field("/proc/self/status", "RssAnon");
}

/* mi_page_t of a block (release layout, docs/mimalloc.md; the MI_SECURE build is compiled with
 * TRUTH_PAGE_SHIFT=16: keys[2] at +40 move the fields after them). */
#ifndef TRUTH_PAGE_SHIFT
#define TRUTH_PAGE_SHIFT 0
#endif
static uint8_t *page_of(void *p)
{
	uintptr_t seg = (uintptr_t)p & ~(uintptr_t)((32 << 20) - 1);
	uintptr_t idx = ((uintptr_t)p - seg) >> 16;
	uint8_t *slice = (uint8_t *)seg + 264 + idx * (80 + TRUTH_PAGE_SHIFT);
	uint32_t off;
	memcpy(&off, slice + 4, 4);
	return slice - off;
}

int main(int argc, char **argv)
{
	bool seed = argc > 1 && strcmp(argv[1], "seed") == 0, churn = argc > 1 && strcmp(argv[1], "churn") == 0;
	if (seed) {
		n_small = 300;
		n_batch = 300;
	}
	if (pipe(block_pipe) != 0)
		return 1;
	pthread_barrier_init(&remote_done, NULL, N_WORKERS + 1);
	pthread_barrier_init(&built, NULL, N_WORKERS + 1);
	pthread_barrier_init(&printed, NULL, N_WORKERS + 1);
	uint64_t s = 42;
	for (int i = 0; i < n_small; i++)
		main_ptrs[i] = mi_malloc(some_size(&s));
	for (int i = 0; i < N_REMOTE; i++)
		remote_ptrs[i] = mi_malloc(48);
	for (int i = 0; i < n_batch; i++)
		batch[i] = mi_malloc(some_size(&s));
	size_t huge_size = seed ? (17 << 20) : (40 << 20);
	huge = mi_malloc(huge_size);
	memset(huge, 1, seed ? 4096 : huge_size);
	pthread_t th[N_WORKERS], ex;
	sem_init(&exiter_go, 0, 0);
	sem_init(&remote_go, 0, 0);
	pthread_create(&ex, NULL, exiter, NULL);
	for (long i = 0; i < N_WORKERS; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	sem_post(&remote_go);
	pthread_barrier_wait(&remote_done);
	/* after the workers' last allocation: nobody reclaims its abandoned segment */
	sem_post(&exiter_go);
	pthread_join(ex, NULL);
	for (int i = 0; i < n_batch; i++)
		mi_free(batch[i]);
	for (int i = 1; i < n_small; i += 2)
		mi_free(main_ptrs[i]);
	pthread_barrier_wait(&built);
	print_own_heap();
	pthread_barrier_wait(&printed);
	size_t cur_commit = 0, peak_commit = 0, elapsed = 0, user = 0, sys = 0, rss = 0, peak_rss = 0, faults = 0;
	mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &cur_commit, &peak_commit, &faults);
	md_say("process.committed %zu\nabandoned.used_blocks %d\nabandoned.used_bytes %zu\nmain.remote_freed %d\nready\n", cur_commit,
	       ABANDONED_N, (size_t)ABANDONED_N * mi_usable_size(abandoned_ptrs[0]), N_REMOTE / 2);
	pthread_t ch;
	if (churn)
		pthread_create(&ch, NULL, churner, NULL);
	char cmd[64];
	for (;;) {
		ssize_t n = read(0, cmd, sizeof(cmd) - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		cmd[n] = 0;
		if (strncmp(cmd, "collect", 7) == 0) {
			unsigned long long before = rss_anon();
			mi_collect(true);
			unsigned long long after = rss_anon();
			md_say("collect_drop_bytes %lld\n", (long long)before - (long long)after);
		} else if (strncmp(cmd, "corrupt_cookie", 14) == 0) {
			uint8_t *seg = (uint8_t *)((uintptr_t)main_ptrs[0] & ~(uintptr_t)((32 << 20) - 1));
			seg[216] ^= 0x5a;
			md_say("corrupted\n");
		} else if (strncmp(cmd, "corrupt_page", 12) == 0) {
			uint8_t *pg = page_of(main_ptrs[0]);
			uint16_t cap = 0xffff;
			memcpy(pg + 10, &cap, 2);
			memcpy(pg + 12, &cap, 2);
			md_say("corrupted\n");
		} else if (strncmp(cmd, "corrupt_list", 12) == 0) {
			uint8_t *pg = page_of(worker_ptrs[1][0]);
			uint64_t bogus = 0x100000000000ULL;
			memcpy(pg + 16, &bogus, 8); /* page->free into unmapped memory */
			md_say("corrupted\n");
		} else if (strncmp(cmd, "corrupt_loop", 12) == 0) {
			uint8_t *pg = page_of(main_ptrs[0]);
			uint64_t self = (uint64_t)(uintptr_t)pg;
			memcpy(pg + 56 + TRUTH_PAGE_SHIFT, &self, 8); /* page->next = page: the queue loops */
			md_say("corrupted\n");
		} else if (strncmp(cmd, "corrupt_link", 12) == 0) {
			/* a write after free: a freed block's link (encoded in the secure build) overwritten */
			uint64_t bogus = 0x4141414141414141ULL;
			memcpy(main_ptrs[1], &bogus, 8);
			md_say("corrupted\n");
		} else if (strncmp(cmd, "quit", 4) == 0) {
			return 0;
		}
	}
}
