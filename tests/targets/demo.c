/* The demo target of `make demo`: a fragmented glibc heap of several MiB that waits to be
 * inspected. The main arena holds chunks of many sizes with every third one freed, a few large
 * freed runs (coalesced free chunks between live guards) and a couple of mmapped chunks; each of
 * a few threads fills its own arena the same way and then blocks. It prints what glibc itself
 * says (mallinfo2) and what it asked for, then "ready".
 * Commands: "ping" -> "pong", "quit" or EOF -> exit. */
#include <malloc.h>
#include <pthread.h>

#include "target_common.h"

#define MAIN_CHUNKS 3000
#define THREAD_CHUNKS 800
#define DEMO_THREADS 3
#define RUNS 4
#define RUN_CHUNKS 24

/* Mostly small chunks (tcache and fastbin sizes), some medium, a few large (still below the
 * mmap threshold): 14 small, 4 medium, 2 large sizes out of 20. */
static const size_t sizes[] = {16, 24, 24, 40, 56, 72, 72, 100, 128, 200, 256, 420, 512, 600,
			       1000, 1500, 2048, 4000, 9000, 30000};

struct fill_stats {
	unsigned long live_chunks, live_bytes, freed_chunks, freed_bytes;
};

/* Deterministic sizes: a small LCG so that every run builds the same heap. */
static size_t pick_size(unsigned *state)
{
	*state = *state * 1103515245u + 12345u;
	return sizes[(*state >> 16) % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* Allocates n chunks of mixed sizes, writes every byte (so they are resident) and then frees
 * every third one, so that free chunks sit between live ones; the survivors stay in keep[]. */
static void fill(void **keep, unsigned n, unsigned seed, struct fill_stats *st)
{
	for (unsigned i = 0; i < n; i++) {
		size_t sz = pick_size(&seed);
		keep[i] = malloc(sz);
		if (!keep[i])
			exit(1);
		memset(keep[i], (int)(i & 0xff), sz);
		if (i % 3 == 2) {
			st->freed_chunks++;
			st->freed_bytes += sz;
		} else {
			st->live_chunks++;
			st->live_bytes += sz;
		}
	}
	for (unsigned i = 2; i < n; i += 3) {
		free(keep[i]);
		keep[i] = NULL;
	}
}

static void *keep_main[MAIN_CHUNKS];
static void *keep_thread[DEMO_THREADS][THREAD_CHUNKS];
static struct fill_stats thread_stats[DEMO_THREADS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int threads_ready;

static void *arena_thread(void *arg)
{
	long idx = (long)arg;
	/* A thread's first malloc gets it an arena of its own (up to 8 per core). */
	fill(keep_thread[idx], THREAD_CHUNKS, 1000u + (unsigned)idx, &thread_stats[idx]);
	pthread_mutex_lock(&lock);
	threads_ready++;
	pthread_cond_broadcast(&wake);
	for (;;)
		pthread_cond_wait(&wake, &lock);
	return NULL;
}

int main(void)
{
	struct fill_stats st = {0};
	fill(keep_main, MAIN_CHUNKS, 42u, &st);

	/* Large freed runs: RUN_CHUNKS 32 KiB chunks in a row, the middle ones freed so that they
	 * coalesce into one big free chunk, fenced by live chunks on both sides. */
	static void *runs[RUNS][RUN_CHUNKS];
	unsigned long run_free_bytes = 0;
	for (int r = 0; r < RUNS; r++) {
		for (int i = 0; i < RUN_CHUNKS; i++) {
			runs[r][i] = malloc(32 << 10);
			memset(runs[r][i], 0x5a, 32 << 10);
		}
		for (int i = 2; i < RUN_CHUNKS - 2; i++) {
			free(runs[r][i]);
			runs[r][i] = NULL;
			run_free_bytes += 32 << 10;
		}
	}

	/* Above the mmap threshold: chunks with a mapping each. */
	static const size_t mmapped_sizes[] = {1 << 20, 3 << 20};
	for (size_t i = 0; i < sizeof(mmapped_sizes) / sizeof(mmapped_sizes[0]); i++) {
		char *p = malloc(mmapped_sizes[i]);
		if (!p)
			return 1;
		memset(p, 0x6b, mmapped_sizes[i]);
	}

	for (long i = 0; i < DEMO_THREADS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, arena_thread, (void *)i) != 0)
			return 1;
	}
	pthread_mutex_lock(&lock);
	while (threads_ready < DEMO_THREADS)
		pthread_cond_wait(&wake, &lock);
	pthread_mutex_unlock(&lock);

	struct mallinfo2 mi = mallinfo2();
	struct fill_stats all = st;
	for (int i = 0; i < DEMO_THREADS; i++) {
		all.live_chunks += thread_stats[i].live_chunks;
		all.live_bytes += thread_stats[i].live_bytes;
		all.freed_chunks += thread_stats[i].freed_chunks;
		all.freed_bytes += thread_stats[i].freed_bytes;
	}
	md_say("pid %d\n", (int)getpid());
	md_say("threads %d\n", DEMO_THREADS + 1);
	md_say("arenas %d\n", DEMO_THREADS + 1);
	md_say("live_chunks %lu\n", all.live_chunks);
	md_say("live_requested_bytes %lu\n", all.live_bytes);
	md_say("freed_chunks %lu\n", all.freed_chunks);
	md_say("freed_requested_bytes %lu\n", all.freed_bytes);
	md_say("freed_run_bytes %lu\n", run_free_bytes);
	md_say("mmapped_chunks %zu\n", mi.hblks);
	md_say("mmapped_bytes %zu\n", mi.hblkhd);
	md_say("arena_bytes %zu\n", mi.arena);
	md_say("in_use_bytes %zu\n", mi.uordblks);
	md_say("free_bytes %zu\n", mi.fordblks);
	md_say("free_chunks %zu\n", mi.ordblks);
	md_say("fastbin_bytes %zu\n", mi.fsmblks);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
	return 0;
}
