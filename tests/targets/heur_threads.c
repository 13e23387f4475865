/* Target for the no-debug-info locator (tests/check_glibc_heuristic.c): the main thread and a
 * second thread allocate and free (so both have a tcache with cached entries, and the second
 * thread has its own arena), then both wait. Built as is by the Makefile, and statically
 * (plain and stripped) by the test itself.
 *   heur_threads [mallopt|corrupt]
 *     mallopt: change thresholds first (the locator's validation must stay loose)
 *     corrupt: break main_arena.next before "ready" (the locator must refuse, not crash)
 * Prints "main_arena 0x..." as seen from the unsorted bin (a freed large chunk's fd points at
 * main_arena's unsorted header, main_arena+0x60 on 2.27+). */
#include <malloc.h>
#include <pthread.h>

#include "target_common.h"

#define N_BLOCKS 16

static void *blocks[2][N_BLOCKS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int worker_ready, quit;

/* Allocate sizes across tcache bins, small and large bins; free every other small one so the
 * tcache holds entries (their key word is what tcache_key is checked against). */
static void churn(void **keep)
{
	for (int i = 0; i < N_BLOCKS; i++)
		keep[i] = malloc((size_t)(24 + i * 40));
	for (int i = 0; i < N_BLOCKS; i += 2) {
		free(keep[i]);
		keep[i] = NULL;
	}
	keep[1] = realloc(keep[1], 5000);
	keep[3] = malloc(200000); /* above the mmap threshold unless mallopt raised it */
}

static void *worker(void *arg)
{
	(void)arg;
	churn(blocks[1]);
	pthread_mutex_lock(&lock);
	worker_ready = 1;
	pthread_cond_broadcast(&cond);
	while (!quit)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "mallopt") == 0) {
		mallopt(M_MMAP_THRESHOLD, 1 << 20);
		mallopt(M_TRIM_THRESHOLD, 3 << 20);
		mallopt(M_TOP_PAD, 64 << 10);
	}
	churn(blocks[0]);
	/* Neither tcache (> 0x410) nor fastbin: the free chunk lands in the unsorted bin. */
	void *big = malloc(0x2000), *guard = malloc(32);
	uintptr_t big_addr = (uintptr_t)big; /* read after free on purpose: fd is the arena's */
	free(big);
	__asm__ volatile("" : "+r"(big_addr)); /* hide the provenance from -Wuse-after-free */
	uintptr_t main_arena = *(volatile uintptr_t *)big_addr - 0x60;
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) != 0) {
		md_say("error pthread_create\n");
		return 1;
	}
	pthread_mutex_lock(&lock);
	while (!worker_ready)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	md_say("threads 2\n");
	md_say("main_arena 0x%lx\n", (unsigned long)main_arena);
	md_say("guard %p\n", guard);
	if (argc > 1 && strcmp(argv[1], "corrupt") == 0)
		*(uintptr_t *)(main_arena + 0x870) = 0; /* main_arena.next (2.27+) */
	md_say("rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");

	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
	pthread_mutex_lock(&lock);
	quit = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(th, NULL);
	return 0;
}
