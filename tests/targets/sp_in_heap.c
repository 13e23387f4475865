/* What a Go program looks like to a stack finder: a thread runs on a stack carved out of a big
 * anonymous "heap arena" (no guard mapping below it), as goroutines and Go's g0 stacks do, next
 * to an ordinary pthread (glibc stack with its guard). Prints the arena's range, how much of it
 * is touched, then "ready" and waits. */
#include <pthread.h>
#include <sys/mman.h>

#include "target_common.h"

#define ARENA (64UL << 20)
#define TOUCHED (8UL << 20)

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	/* a hole below the arena: nothing can be a guard mapping there */
	char *base = mmap(NULL, ARENA + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return 3;
	munmap(base, 4096);
	char *arena = base + 4096;
	memset(arena, 0x11, TOUCHED); /* "heap objects" and the carved stack, resident */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	/* the thread's stack: the top 1 MiB of the touched part */
	if (pthread_attr_setstack(&attr, arena + TOUCHED - (1UL << 20), 1UL << 20) != 0)
		return 4;
	pthread_t in_arena, plain;
	if (pthread_create(&in_arena, &attr, idle, NULL) != 0 || pthread_create(&plain, NULL, idle, NULL) != 0)
		return 5;
	md_say("arena_start %llu\n", (unsigned long long)(uintptr_t)arena);
	md_say("arena_end %llu\n", (unsigned long long)(uintptr_t)(arena + ARENA));
	md_say("touched_bytes %lu\n", TOUCHED);
	md_say("threads 3\n");
	md_ready_until_quit();
	return 0;
}
