/* A musl mallocng heap of known contents, built with musl-gcc (static, stripped static, dynamic).
 * musl has no statistics API, so the program is its own oracle: 4 threads allocate known request
 * sizes (small, medium, aligned, mmapped), a known subset is freed, and the program prints the
 * count and the total of the request sizes it still holds, then "ready", and waits.
 *   argv[1] (optional) a damage mode, applied after the truth is printed (the process then
 *   never calls malloc/free again):
 *     none          no damage
 *     area_secret   the first meta area's check word is overwritten (the chain breaks there)
 *     meta_mem      a meta's group pointer is pointed at an unmapped address
 *     area_cycle    the last meta area's next pointer points back to the first area
 *     slot_header   a live slot's in-band header claims a huge offset
 *     last_idx      a meta's last_idx/maplen claim a group far beyond its mapping
 *     seed          no damage, a tenth of the allocations (the walker fuzzer's seed snapshot)
 *     churn         no damage; after the truth, a thread mallocs and frees without pause (the
 *                   truth then holds only for the allocations of the main record)
 * Commands on stdin: "freeall" frees everything (only without damage) and prints rss_after;
 * EOF exits. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../target_common.h"

#define NTHREADS 4
#define PER_THREAD 3000

/* musl's hidden allocator state: reachable from a static link only (weak: NULL when dynamic). */
extern char __malloc_context[] __attribute__((weak));
#define CTX_USAGE_BY_CLASS 464

static void *ptrs[NTHREADS][PER_THREAD];
static size_t sizes[NTHREADS][PER_THREAD];
static unsigned per_thread = PER_THREAD;

/* A deterministic mixture: mostly small, some medium, a few mmapped (>= 128 KiB). */
static size_t size_of(unsigned t, unsigned i)
{
	uint32_t x = (t + 1) * 2654435761u ^ (i * 40503u + 17u);
	x ^= x >> 13;
	x *= 0x5bd1e995u;
	x ^= x >> 15;
	unsigned r = x % 1000;
	if (r < 700)
		return 1 + x % 200;
	if (r < 950)
		return 200 + x % 4000;
	if (r < 995)
		return 4096 + x % 60000;
	return 131072 + x % 300000;
}

static void *worker(void *arg)
{
	unsigned t = (unsigned)(uintptr_t)arg;
	for (unsigned i = 0; i < per_thread; i++) {
		size_t n = size_of(t, i);
		void *p;
		if (i % 97 == 5) {
			p = aligned_alloc(256, n);
		} else {
			p = malloc(n);
		}
		if (!p)
			abort();
		memset(p, 0x5a, n);
		ptrs[t][i] = p;
		sizes[t][i] = n;
	}
	/* Free a known subset: two of every three, and every large one with an odd index. */
	for (unsigned i = 0; i < per_thread; i++) {
		if (i % 3 != 0 || (sizes[t][i] >= 131072 && (i & 1))) {
			free(ptrs[t][i]);
			ptrs[t][i] = NULL;
		}
	}
	return NULL;
}

static void *churner(void *arg)
{
	(void)arg;
	void *held[64] = { 0 };
	for (unsigned long k = 0;; k++) {
		unsigned j = (unsigned)(k * 2654435761u) % 64;
		free(held[j]);
		held[j] = malloc(1 + (k * 7919) % 3000);
	}
	return NULL;
}

static void damage(const char *mode)
{
	/* The meta of a live slot: the group pointer is 16 bytes below slot 0; the group's first
	 * word is its meta; a meta lies in a meta area page whose first word is the secret. */
	void *p = NULL;
	for (unsigned i = 0; i < PER_THREAD && !p; i++)
		if (ptrs[0][i] && sizes[0][i] < 100)
			p = ptrs[0][i];
	unsigned char *up = p;
	unsigned off = *(uint16_t *)(up - 2);
	unsigned char *group = up - 16 * (size_t)off - 16;
	uint64_t *meta = *(uint64_t **)group;
	uint64_t *area = (uint64_t *)((uintptr_t)meta & ~(uintptr_t)4095);
	md_say("bad_addr 0x%lx\n", (unsigned long)(uintptr_t)meta);
	if (strcmp(mode, "area_secret") == 0) {
		area[0] ^= 0x1234567887654321ull;
	} else if (strcmp(mode, "meta_mem") == 0) {
		meta[2] = 0x10000000000ull; /* mem */
	} else if (strcmp(mode, "area_cycle") == 0) {
		/* The tail's next is never followed: loop a non-tail area onto itself. */
		if (!area[1])
			md_say("error the chosen meta area is the tail\n");
		area[1] = (uint64_t)(uintptr_t)area;
	} else if (strcmp(mode, "slot_header") == 0) {
		up[-4] = 0;
		*(uint16_t *)(up - 2) = 0xfff0;
		md_say("bad_slot 0x%lx\n", (unsigned long)(uintptr_t)up);
	} else if (strcmp(mode, "last_idx") == 0) {
		meta[4] = (meta[4] & ~0x1full) | 31 | (1ull << 40); /* huge maplen */
	}
}

int main(int argc, char **argv)
{
	pthread_t th[NTHREADS];
	const char *mode = argc > 1 ? argv[1] : "none";
	if (strcmp(mode, "seed") == 0)
		per_thread = PER_THREAD / 10;
	for (unsigned t = 0; t < NTHREADS; t++)
		if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0)
			abort();
	for (unsigned t = 0; t < NTHREADS; t++)
		pthread_join(th[t], NULL);
	unsigned long long count = 0, bytes = 0, usable = 0, mmapped = 0;
	for (unsigned t = 0; t < NTHREADS; t++)
		for (unsigned i = 0; i < PER_THREAD; i++)
			if (ptrs[t][i]) {
				count++;
				bytes += sizes[t][i];
				usable += malloc_usable_size(ptrs[t][i]);
				mmapped += sizes[t][i] >= 131052;
			}
	md_say("live_allocations %llu\n", count);
	md_say("live_bytes %llu\n", bytes);
	md_say("usable_bytes %llu\n", usable);
	md_say("large_allocations %llu\n", mmapped);
	md_say("rss_anon %llu\n", md_proc_field("/proc/self/status", "RssAnon"));
	/* The allocator's own slot count per size class (used + free), when it can be reached. */
	if (__malloc_context) {
		md_say("ctx 0x%lx\n", (unsigned long)(uintptr_t)__malloc_context);
		for (unsigned sc = 0; sc < 48; sc++) {
			size_t n;
			memcpy(&n, __malloc_context + CTX_USAGE_BY_CLASS + 8 * sc, sizeof(n));
			if (n)
				md_say("usage.%u %zu\n", sc, n);
		}
	}
	pthread_t churn;
	if (strcmp(mode, "churn") == 0 && pthread_create(&churn, NULL, churner, NULL) != 0)
		abort();
	if (strcmp(mode, "none") != 0 && strcmp(mode, "seed") != 0 && strcmp(mode, "churn") != 0)
		damage(mode);
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "freeall") == 0 && strcmp(mode, "none") == 0) {
			for (unsigned t = 0; t < NTHREADS; t++)
				for (unsigned i = 0; i < PER_THREAD; i++) {
					free(ptrs[t][i]);
					ptrs[t][i] = NULL;
				}
			md_say("rss_after %llu\n", md_proc_field("/proc/self/status", "RssAnon"));
		}
	}
	return 0;
}
