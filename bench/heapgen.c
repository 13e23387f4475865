/* Benchmark target: N chunks of 16-400 byte requests spread over T threads (each thread allocates
 * its share, so it gets its own arena), every third freed, then waits. Prints "ready". */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static size_t per_thread;
static pthread_barrier_t built;

static void *build(void *arg)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
	void **keep = malloc(per_thread * sizeof(void *));
	for (size_t i = 0; i < per_thread; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		keep[i] = malloc(16 + seed % 385);
		*(volatile char *)keep[i] = 1;
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
	if (threads < 1)
		threads = 1;
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
