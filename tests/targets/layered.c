/* Layered claims (issue 13): an application's bump pool inside a glibc chunk, and a descriptor
 * of a claim that straddles a glibc chunk boundary (live chunk into a free one), for the test
 * plugin tests/plugins/straddle.c. Prints the pool's and glibc's own figures and waits. */
#include <malloc.h>

#include "target_common.h"

struct bump_pool {
	uint64_t magic;
	char *base;
	size_t used, capacity;
};

struct bump_pool bump_pool = { .magic = 0x6c6f6f70706d7562ULL };

/* Read by tests/plugins/straddle.c: [start, end) claimed as live. */
struct straddle_claim {
	uint64_t magic;
	uint64_t start, end;
} straddle_claim = { .magic = 0x6c64646172747373ULL };

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
	/* every chunk from the sbrk heap, none mmapped */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	char *before = malloc(3000);
	memset(before, 1, 3000);
	bump_pool.capacity = 640u << 10;
	bump_pool.base = malloc(bump_pool.capacity);
	char *after = malloc(5000);
	memset(after, 2, 5000);
	if (!before || !bump_pool.base || !after)
		return 1;
	memset(bump_pool.base, 0, bump_pool.capacity); /* the pool's free part resident too */
	for (int i = 0; i < 4; i++)
		memset(bump_alloc(50u << 10), 0x5a, 50u << 10);
	memset(bump_alloc(77), 0x5a, 77);

	char *a = malloc(40 << 10), *f = malloc(40 << 10), *guard = malloc(40 << 10);
	if (!a || !f || !guard)
		return 1;
	memset(a, 3, 40 << 10);
	memset(f, 4, 40 << 10);
	memset(guard, 5, 40 << 10);
	straddle_claim.start = (uint64_t)(uintptr_t)(a + (20 << 10));
	straddle_claim.end = (uint64_t)(uintptr_t)(f + (20 << 10));
	free(f); /* too big for the tcache: a free chunk in the unsorted bin, between two live ones */

	struct mallinfo2 mi = mallinfo2();
	md_say("used %zu\ncapacity %zu\npool_base %llu\nstraddle_start %llu\nstraddle_end %llu\nuordblks %zu\n",
	       bump_pool.used, bump_pool.capacity, (unsigned long long)(uintptr_t)bump_pool.base,
	       (unsigned long long)straddle_claim.start, (unsigned long long)straddle_claim.end, mi.uordblks);
	md_ready_until_quit();
	return 0;
}
