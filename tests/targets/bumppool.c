/* A program with its own bump-pointer pool (the example plugin's allocator, examples/plugin):
 * 8 MiB mapped, 3 MiB + 123 bytes handed out and written. Prints the pool's figures and waits. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct bump_pool {
	uint64_t magic;
	char *base;
	size_t used, capacity;
};

struct bump_pool bump_pool = { .magic = 0x6c6f6f70706d7562ULL };

static void *bump_alloc(size_t n)
{
	if (bump_pool.capacity - bump_pool.used < n)
		return NULL;
	void *p = bump_pool.base + bump_pool.used;
	bump_pool.used += n;
	return p;
}

int main(void)
{
	bump_pool.capacity = 8u << 20;
	bump_pool.base = mmap(NULL, bump_pool.capacity, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (bump_pool.base == MAP_FAILED)
		return 1;
	for (int i = 0; i < 3; i++)
		memset(bump_alloc(1u << 20), 0x5a, 1u << 20);
	memset(bump_alloc(123), 0x5a, 123);
	printf("used %zu\ncapacity %zu\nready\n", bump_pool.used, bump_pool.capacity);
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
