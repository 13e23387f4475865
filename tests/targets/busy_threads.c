/* A service-like target whose threads never stop allocating (issue 11, case 9): W workers
 * (argv[1], default 8) replace blocks of a private ring of slots with malloc, realloc and free in a
 * loop without any pause, touching what they get. On 2 cores most threads are inside malloc or
 * free at any moment: a stop of the whole process almost never finds every thread outside.
 *   busy_threads [WORKERS] [parked]
 * "parked": every worker does 20000 operations and then waits (outside malloc) on a condition
 * variable; the program prints glibc's mallinfo2() of that heap before "ready" (ground truth
 * for an attach of the same heap at rest). Without "parked" it prints "ready" once every worker
 * has done 20000 operations, and they go on.
 * Output: "threads N", in parked mode "mallinfo.<field> N", then "ready".
 * Commands: "park" -> the workers stop between operations, the mallinfo lines, "parked";
 * "run" -> they go on, "running"; "count" -> "ops N"; "signals" -> "signals N", the SIGRTMIN
 * received (real-time: queued, none may be lost; the handler, run by any thread, only counts);
 * "quit" or EOF -> exit.
 * Nothing here calls stdio after the start: printing must not allocate. */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>

#include "target_common.h"

#define SLOTS 512
#define WARMUP_OPS 20000

static unsigned long ops;
static unsigned long signals;

static void on_rtmin(int sig)
{
	(void)sig;
	__atomic_add_fetch(&signals, 1, __ATOMIC_RELAXED);
}
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t parked_cond = PTHREAD_COND_INITIALIZER;
static int park_requested, n_parked, n_warm;

/* Between two operations: wait while a park is requested (holding no allocator lock). */
static void maybe_park(void)
{
	if (!__atomic_load_n(&park_requested, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&park_lock);
	n_parked++;
	pthread_cond_broadcast(&parked_cond);
	while (park_requested)
		pthread_cond_wait(&park_cond, &park_lock);
	n_parked--;
	pthread_mutex_unlock(&park_lock);
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 7;
	void *slots[SLOTS] = { 0 };
	for (unsigned long i = 0;; i++) {
		maybe_park();
		seed = seed * 1103515245u + 12345u;
		unsigned k = (seed >> 8) % SLOTS;
		/* Mostly tcache and small-bin sizes, one in eight up to 40 KiB. */
		size_t size = 16 + (seed >> 16) % ((seed & 0x700) == 0 ? 40000 : 1000);
		if (!slots[k]) {
			slots[k] = malloc(size);
			if (slots[k])
				memset(slots[k], (int)k, size < 128 ? size : 128);
		} else if (seed & 0x800) {
			void *p = realloc(slots[k], size);
			if (p)
				slots[k] = p;
		} else {
			free(slots[k]);
			slots[k] = NULL;
		}
		__atomic_add_fetch(&ops, 1, __ATOMIC_RELAXED);
		if (i + 1 == WARMUP_OPS) {
			pthread_mutex_lock(&park_lock);
			n_warm++;
			pthread_cond_broadcast(&parked_cond);
			pthread_mutex_unlock(&park_lock);
		}
	}
	return NULL;
}

static void print_mallinfo(void)
{
	struct mallinfo2 mi = mallinfo2();
	md_say("mallinfo.arena %zu\n", mi.arena);
	md_say("mallinfo.ordblks %zu\n", mi.ordblks);
	md_say("mallinfo.smblks %zu\n", mi.smblks);
	md_say("mallinfo.hblks %zu\n", mi.hblks);
	md_say("mallinfo.hblkhd %zu\n", mi.hblkhd);
	md_say("mallinfo.usmblks %zu\n", mi.usmblks);
	md_say("mallinfo.fsmblks %zu\n", mi.fsmblks);
	md_say("mallinfo.uordblks %zu\n", mi.uordblks);
	md_say("mallinfo.fordblks %zu\n", mi.fordblks);
	md_say("mallinfo.keepcost %zu\n", mi.keepcost);
}

/* Ask every worker to stop between operations and wait until they all did. */
static void park_all(int workers)
{
	pthread_mutex_lock(&park_lock);
	__atomic_store_n(&park_requested, 1, __ATOMIC_RELEASE);
	while (n_parked < workers)
		pthread_cond_wait(&parked_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
}

static void run_all(void)
{
	pthread_mutex_lock(&park_lock);
	__atomic_store_n(&park_requested, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&park_cond);
	pthread_mutex_unlock(&park_lock);
}

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 8;
	bool parked = argc > 2 && strcmp(argv[2], "parked") == 0;
	if (workers < 1 || workers > 64 || (argc > 2 && !parked)) {
		fprintf(stderr, "usage: busy_threads [WORKERS] [parked]\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_rtmin;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGRTMIN, &sa, NULL);
	for (int i = 0; i < workers; i++) {
		pthread_t t;
		int err = pthread_create(&t, NULL, worker, (void *)(uintptr_t)(i + 1));
		if (err) {
			fprintf(stderr, "busy_threads: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	pthread_mutex_lock(&park_lock);
	while (n_warm < workers)
		pthread_cond_wait(&parked_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
	md_say("threads %d\n", workers + 1);
	if (parked) {
		park_all(workers);
		print_mallinfo();
	}
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "park") == 0) {
			park_all(workers);
			print_mallinfo();
			md_say("parked\n");
		} else if (strcmp(cmd, "run") == 0) {
			run_all();
			md_say("running\n");
		} else if (strcmp(cmd, "count") == 0) {
			md_say("ops %lu\n", __atomic_load_n(&ops, __ATOMIC_RELAXED));
		} else if (strcmp(cmd, "signals") == 0) {
			md_say("signals %lu\n", __atomic_load_n(&signals, __ATOMIC_RELAXED));
		}
	}
	_exit(0); /* the workers may still be allocating: no atexit work racing with them */
}
