/* A C program laid out like a Go program on linux/amd64, for the machines without a Go
 * toolchain: it defines runtime.mallocgc (the Go allocator's entry, by an asm label) and keeps its
 * "heap arena" at Go's first arena hint, 0xc000000000, 64 MiB reserved, with a thread running on a
 * stack inside it (as goroutines do). Prints the arena's range and touched bytes, "ready", waits. */
#include <pthread.h>
#include <sys/mman.h>

#include "target_common.h"

#define ARENA_HINT 0xc000000000UL
#define ARENA (64UL << 20)
#define TOUCHED (4UL << 20)

void *go_mallocgc(size_t size) __asm__("runtime.mallocgc");
__attribute__((noinline, used)) void *go_mallocgc(size_t size)
{
	static char bump[64];
	return size <= sizeof(bump) ? bump : NULL;
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	char *arena = mmap((void *)ARENA_HINT, ARENA, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (arena == MAP_FAILED || arena != (char *)ARENA_HINT)
		return 3;
	memset(arena, 0x22, TOUCHED);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (pthread_attr_setstack(&attr, arena + TOUCHED - (256UL << 10), 256UL << 10) != 0)
		return 4;
	pthread_t th;
	if (pthread_create(&th, &attr, idle, NULL) != 0)
		return 5;
	md_say("arena_start %llu\n", (unsigned long long)(uintptr_t)arena);
	md_say("arena_end %llu\n", (unsigned long long)(uintptr_t)(arena + ARENA));
	md_say("touched_bytes %lu\n", TOUCHED);
	md_say("mallocgc %p\n", (void *)go_mallocgc(8));
	md_ready_until_quit();
	return 0;
}
