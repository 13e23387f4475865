/* Benchmark target: N chunks spread over T threads (each thread allocates its share, so it gets
 * its own arena), every third freed, then waits. Prints "ready".
 * "heapgen N T": requests of 16-400 bytes, the first byte of each written.
 * "heapgen N T large": requests of 64-256 KiB, every byte written (the heap is resident), the
 * mmap threshold raised so that they stay in the arenas' heaps. */
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t per_thread;
static bool large;
static pthread_barrier_t built;

static void *build(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
	void **keep = malloc(per_thread * sizeof(void *));
	for (size_t i = 0; i < per_thread; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		if (large) {
			size_t n = (64u << 10) + seed % (192u << 10);
			keep[i] = malloc(n);
			memset(keep[i], 1, n);
		} else {
			keep[i] = malloc(16 + seed % 385);
			*(volatile char *)keep[i] = 1;
		}
	}
	for (size_t i = 0; i < per_thread; i += 3)
		free(keep[i]);
	pthread_barrier_wait(&built);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	int threads = argc > 2 ? atoi(argv[2]) : 4;
	large = argc > 3 && strcmp(argv[3], "large") == 0;
	if (threads < 1)
		threads = 1;
#ifdef M_MMAP_THRESHOLD /* glibc; musl has no mallopt */
	if (large)
		mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
	per_thread = n / (size_t)threads;
	pthread_barrier_init(&built, NULL, (unsigned)threads + 1);
	for (int i = 1; i < threads; i++) {
		pthread_t th;
		pthread_create(&th, NULL, build, (void *)(uintptr_t)i);
	}
	/* The main thread builds its share too (in the main arena). */
	pthread_t self_builder;
	pthread_create(&self_builder, NULL, build, (void *)(uintptr_t)0);
	pthread_barrier_wait(&built);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
