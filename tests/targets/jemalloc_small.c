/* A small jemalloc heap for the stored golden core (scripts/golden-cores.sh,
 * tests/data/sysroot-jemalloc): the main thread only, arena 0, 3000 small regions of 14 sizes and
 * 12 large ones (16 KiB..256 KiB), every third freed (the tcache keeps some, the rest go back to
 * slabs and dirty pages). Refreshes "epoch", prints what jemalloc says (stats.*, the merged
 * arena's pages and tcache bytes) and "ready", then waits: "quit" or EOF exits. Nothing allocates
 * after the figures are read (md_say writes from a static buffer). */
#include <jemalloc/jemalloc.h>
#include <stdint.h>

#include "jemalloc_common.h"

#define N_SMALL 3000
#define N_LARGE 12

static void *small[N_SMALL], *large[N_LARGE];

int main(void)
{
	static const size_t small_sizes[] = {8, 16, 24, 40, 64, 96, 128, 200, 256, 500, 1000, 2048, 4096, 10000};
	static const size_t large_sizes[] = {16384, 20480, 32768, 65536, 100000, 262144};
	for (size_t i = 0; i < N_SMALL; i++) {
		size_t sz = small_sizes[(i * 7) % (sizeof(small_sizes) / sizeof(small_sizes[0]))];
		if (!(small[i] = malloc(sz)))
			die("malloc");
		memset(small[i], 0x41, sz);
	}
	for (size_t i = 0; i < N_LARGE; i++) {
		size_t sz = large_sizes[i % (sizeof(large_sizes) / sizeof(large_sizes[0]))];
		if (!(large[i] = malloc(sz)))
			die("malloc");
		memset(large[i], 0x51, sz);
	}
	for (size_t i = 0; i < N_SMALL; i += 3)
		free(small[i]);
	for (size_t i = 0; i < N_LARGE; i += 3)
		free(large[i]);

	uint64_t epoch = 1;
	size_t esz = sizeof(epoch);
	if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0)
		die("epoch");
	say_jemalloc_stats();
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
	return 0;
}
