/* jemalloc ground truth: builds a known heap in several threads and arenas (auto arenas 0..3,
 * a manual arena whose frees turn muzzy, the huge arena, an explicit tcache), refreshes "epoch"
 * and prints what jemalloc itself says (stats.*, per-arena pages, address oracles), then "ready".
 * Commands on stdin:
 *   purge  -> RssAnon before, mallctl("arena.4096.purge"), RssAnon after:
 *             "purge_drop_pages N" (pages the purge gave back to the kernel)
 *   corrupt -> scribble on jemalloc's own metadata (Debian 5.3.0 x86-64 offsets, docs/jemalloc.md):
 *             a bogus pointer in a cache bin, an rtree entry to an unmapped edata, a base block
 *             list that loops, a tcache descriptor ring into unmapped memory; prints "corrupted".
 *             The process must not allocate afterwards (it would crash): only "quit" is valid.
 *   block  -> a new thread creates an arena with extent hooks whose alloc hook parks forever:
 *             that thread stays inside jemalloc (ctl and arenas mutexes held); prints "blocked"
 *   quit   -> exit
 * Nothing allocates after the truth is measured: workers block in read(), output goes through
 * md_say (write(2) from a static buffer), never stdio (a FILE is a 472-byte allocation).
 * With the argument "mixed", glibc's own malloc (__libc_malloc) is used first, so that the process
 * has both a glibc heap and jemalloc arenas.
 * Built against Debian's shared libjemalloc (-ljemalloc) and, as jemalloc_static, against
 * libjemalloc.a. */
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "jemalloc_common.h"

#define N_WORKERS 3
#define N_SMALL 12000
#define N_LARGE 160
#define N_MAIN_SMALL 6000
#define N_MANUAL 3000

static void *worker_small[N_WORKERS][N_SMALL];
static void *worker_large[N_WORKERS][N_LARGE];
static void *main_small[N_MAIN_SMALL];
static void *main_large[N_LARGE];
static void *manual_ptrs[N_MANUAL];
static void *tcache_ptrs[400];
static void *huge_ptrs[3];

static void *glibc_ptrs[2000];
static pthread_barrier_t built;

/* glibc's allocator under its own name: jemalloc interposes malloc, not these. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
static int block_pipe[2]; /* never written: workers park in read() keeping their tcaches */

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: a fixed sequence so that every run builds the same heap shape. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static size_t small_size(uint64_t *s)
{
	static const size_t sizes[] = {8, 16, 24, 40, 48, 64, 96, 100, 128, 200, 256, 320, 500, 640,
				       1000, 1024, 1800, 2048, 3000, 4096, 5000, 8192, 10000, 14336};
	return sizes[rng_next(s) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static size_t large_size(uint64_t *s)
{
	/* 16 KiB..32 KiB go through the tcache; the rest straight to the arena. */
	static const size_t sizes[] = {16384, 20480, 28672, 32768, 40000, 65536, 100000, 262144, 700000};
	return sizes[rng_next(s) % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void *worker(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;
	/* Pin each worker to its own auto arena (1..N_WORKERS); main stays on arena 0. */
	unsigned ind = k + 1;
	if (mallctl("thread.arena", NULL, NULL, &ind, sizeof(ind)) != 0)
		die("thread.arena");
	uint64_t s = 0x9e3779b97f4a7c15ULL * (k + 1);
	for (size_t i = 0; i < N_SMALL; i++) {
		size_t sz = small_size(&s);
		worker_small[k][i] = malloc(sz);
		if (!worker_small[k][i])
			die("malloc");
		memset(worker_small[k][i], 0x40 + (int)k, sz);
	}
	for (size_t i = 0; i < N_LARGE; i++) {
		size_t sz = large_size(&s);
		worker_large[k][i] = malloc(sz);
		if (!worker_large[k][i])
			die("malloc");
		memset(worker_large[k][i], 0x50, sz);
	}
	/* Free a pseudo-random third of the small regions (tcache fills, flushes to slabs with
	 * free regions) and half the large ones (tcache large bins, dirty extents). */
	for (size_t i = 0; i < N_SMALL; i++) {
		if (rng_next(&s) % 3 == 0) {
			free(worker_small[k][i]);
			worker_small[k][i] = NULL;
		}
	}
	for (size_t i = 0; i < N_LARGE; i += 2) {
		free(worker_large[k][i]);
		worker_large[k][i] = NULL;
	}
	/* Take a few back so that the cache bins are partly drained. */
	for (size_t i = 0; i < N_SMALL && i < 600; i += 3) {
		if (!worker_small[k][i]) {
			worker_small[k][i] = malloc(small_size(&s));
			if (!worker_small[k][i])
				die("malloc");
		}
	}
	pthread_barrier_wait(&built);
	char c;
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static void build_main_heap(void)
{
	uint64_t s = 0x243f6a8885a308d3ULL;
	for (size_t i = 0; i < N_MAIN_SMALL; i++) {
		size_t sz = small_size(&s);
		main_small[i] = malloc(sz);
		if (!main_small[i])
			die("malloc");
		memset(main_small[i], 0x11, sz);
	}
	for (size_t i = 0; i < N_LARGE; i++) {
		size_t sz = large_size(&s);
		main_large[i] = malloc(sz);
		if (!main_large[i])
			die("malloc");
		memset(main_large[i], 0x22, sz);
	}
	for (size_t i = 0; i < N_MAIN_SMALL; i += 2) {
		free(main_small[i]);
		main_small[i] = NULL;
	}
	for (size_t i = 1; i < N_LARGE; i += 3) {
		free(main_large[i]);
		main_large[i] = NULL;
	}

	/* A manual arena, no tcache, dirty_decay_ms 1 and muzzy_decay_ms 60 s: after a few decay
	 * passes its freed extents are muzzy (MADV_FREE), so the heap has muzzy extents too.
	 * (dirty_decay_ms 0 would skip the muzzy stage altogether on this build.) */
	unsigned manual;
	size_t usz = sizeof(manual);
	if (mallctl("arenas.create", &manual, &usz, NULL, 0) != 0)
		die("arenas.create");
	char name[64];
	ssize_t muzzy_ms = 60000, dirty_ms = 1;
	snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", manual);
	if (mallctl(name, NULL, NULL, &muzzy_ms, sizeof(muzzy_ms)) != 0)
		die("muzzy_decay_ms");
	snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", manual);
	if (mallctl(name, NULL, NULL, &dirty_ms, sizeof(dirty_ms)) != 0)
		die("dirty_decay_ms");
	int flags = MALLOCX_ARENA(manual) | MALLOCX_TCACHE_NONE;
	for (size_t i = 0; i < N_MANUAL; i++) {
		size_t sz = (i % 10 == 0) ? large_size(&s) : small_size(&s);
		manual_ptrs[i] = mallocx(sz, flags);
		if (!manual_ptrs[i])
			die("mallocx");
		memset(manual_ptrs[i], 0x33, sz);
	}
	for (size_t i = 0; i < N_MANUAL; i += 4) {
		dallocx(manual_ptrs[i], MALLOCX_TCACHE_NONE);
		manual_ptrs[i] = NULL;
	}
	for (size_t i = 10; i < N_MANUAL; i += 20) {
		if (manual_ptrs[i]) {
			dallocx(manual_ptrs[i], MALLOCX_TCACHE_NONE);
			manual_ptrs[i] = NULL;
		}
	}

	snprintf(name, sizeof(name), "arena.%u.decay", manual);
	for (int i = 0; i < 5; i++) {
		usleep(20000);
		if (mallctl(name, NULL, NULL, NULL, 0) != 0)
			die("decay");
	}

	/* The huge arena (>= oversize_threshold, 8 MiB): one kept, one freed (purged at once). */
	huge_ptrs[0] = malloc(9u << 20);
	huge_ptrs[1] = malloc(12u << 20);
	if (!huge_ptrs[0] || !huge_ptrs[1])
		die("malloc huge");
	memset(huge_ptrs[0], 0x44, 9u << 20);
	memset(huge_ptrs[1], 0x44, 12u << 20);
	free(huge_ptrs[1]);
	huge_ptrs[1] = NULL;

	/* An explicit tcache holding a few regions. */
	unsigned tc;
	usz = sizeof(tc);
	if (mallctl("tcache.create", &tc, &usz, NULL, 0) != 0)
		die("tcache.create");
	for (size_t i = 0; i < 400; i++) {
		tcache_ptrs[i] = mallocx(16 + (i % 7) * 48, MALLOCX_TCACHE(tc));
		if (!tcache_ptrs[i])
			die("mallocx tcache");
	}
	for (size_t i = 0; i < 400; i += 2) {
		dallocx(tcache_ptrs[i], MALLOCX_TCACHE(tc));
		tcache_ptrs[i] = NULL;
	}
}

/* Offsets of jemalloc 5.3.0 (Debian 12, x86-64) used only by the corrupt command. */
#define ARENA_EMAP 78912
#define ARENA_BASE 78936
#define ARENA_DESCRIPTOR_QL 10400
#define BASE_BLOCKS 160
#define TSD_THREAD_ALLOCATED 824
#define TSD_TCACHE 856

static uintptr_t arena_address(unsigned ind)
{
	char name[64];
	size_t *pactivep = NULL;
	size_t psz = sizeof(pactivep);
	snprintf(name, sizeof(name), "experimental.arenas.%u.pactivep", ind);
	if (mallctl(name, &pactivep, &psz, NULL, 0) != 0)
		die(name);
	return (uintptr_t)pactivep - 10656;
}

static void corrupt_jemalloc(void)
{
	/* Look everything up first: mallctl may allocate, nothing may afterwards. The thread's
	 * cache may have been drained by tcache GC: put a few regions in it. */
	static void *few[8];
	for (size_t i = 0; i < 8; i++)
		few[i] = malloc(48);
	for (size_t i = 0; i < 8; i++)
		free(few[i]);
	uint64_t *allocatedp = NULL;
	size_t psz = sizeof(allocatedp);
	if (mallctl("thread.allocatedp", &allocatedp, &psz, NULL, 0) != 0)
		die("thread.allocatedp");
	uintptr_t a0 = arena_address(0), a1 = arena_address(1);
	uintptr_t tsd = (uintptr_t)allocatedp - TSD_THREAD_ALLOCATED;

	/* 1. A cache bin of this thread hands out a pointer into nowhere. */
	for (unsigned i = 0; i < 73; i++) {
		uintptr_t bin = tsd + TSD_TCACHE + 8 + 24 * i;
		void **head = *(void ***)bin;
		uint16_t empty = *(uint16_t *)(bin + 20);
		if (head && (uint16_t)(empty - (uint16_t)(uintptr_t)head) >= 8) {
			head[0] = (void *)0x10;
			break;
		}
	}
	/* 2. The rtree entry of a live region points to an unmapped "edata". */
	uintptr_t p = (uintptr_t)main_small[1];
	uintptr_t emap = *(uintptr_t *)(a0 + ARENA_EMAP);
	uintptr_t leaf = *(uintptr_t *)(emap + 120 + 8 * ((p >> 30) & 0x3ffff));
	if (leaf)
		*(uint64_t *)(leaf + 8 * ((p >> 12) & 0x3ffff)) = 0x00e0100000000080ULL;
	/* 3. Arena 0's base block list loops on its first block. */
	uintptr_t base = *(uintptr_t *)(a0 + ARENA_BASE);
	uintptr_t block = *(uintptr_t *)(base + BASE_BLOCKS);
	if (block)
		*(uintptr_t *)(block + 8) = block;
	/* 4. Arena 1's cache-bin descriptor ring leads into unmapped memory. */
	uintptr_t desc = *(uintptr_t *)(a1 + ARENA_DESCRIPTOR_QL);
	if (desc)
		*(uintptr_t *)desc = 0x1000;
	md_say("corrupted\n");
}

static void *parking_alloc(extent_hooks_t *hooks, void *new_addr, size_t size, size_t alignment,
			   bool *zero, bool *commit, unsigned arena_ind)
{
	(void)hooks, (void)new_addr, (void)size, (void)alignment, (void)zero, (void)commit, (void)arena_ind;
	md_say("blocked\n");
	char c;
	while (read(block_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static extent_hooks_t parking_hooks = {.alloc = parking_alloc};

static void *blocker(void *arg)
{
	(void)arg;
	extent_hooks_t *hooks = &parking_hooks;
	unsigned ind;
	size_t sz = sizeof(ind);
	mallctl("arenas.create", &ind, &sz, &hooks, sizeof(hooks));
	return NULL;
}

static void build_glibc_heap(void)
{
	for (size_t i = 0; i < 2000; i++) {
		size_t sz = 24 + (i % 50) * 40;
		glibc_ptrs[i] = __libc_malloc(sz);
		if (!glibc_ptrs[i])
			die("__libc_malloc");
		memset(glibc_ptrs[i], 0x66, sz);
	}
	for (size_t i = 0; i < 2000; i += 3) {
		__libc_free(glibc_ptrs[i]);
		glibc_ptrs[i] = NULL;
	}
}

int main(int argc, char **argv)
{
	bool mixed = argc > 1 && strcmp(argv[1], "mixed") == 0;
	if (mixed)
		build_glibc_heap();
	if (pipe(block_pipe) != 0)
		die("pipe");
	pthread_barrier_init(&built, NULL, N_WORKERS + 1);
	pthread_t th[N_WORKERS];
	for (unsigned k = 0; k < N_WORKERS; k++) {
		if (pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)k) != 0)
			die("pthread_create");
	}
	build_main_heap();
	pthread_barrier_wait(&built);

	/* Everything below reads only: no allocation until the process is inspected. */
	uint64_t epoch = 1;
	size_t esz = sizeof(epoch);
	if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0)
		die("epoch");
	md_say("pid %d\n", (int)getpid());
	md_say("mixed %d\n", mixed ? 1 : 0);
	say_jemalloc_stats();

	unsigned narenas = 0;
	size_t usz = sizeof(narenas);
	if (mallctl("arenas.narenas", &narenas, &usz, NULL, 0) != 0)
		die("arenas.narenas");
	md_say("narenas %u\n", narenas);
	unsigned initialized = 0;
	char name[96];
	for (unsigned i = 0; i < narenas; i++) {
		bool init = false;
		size_t bsz = sizeof(init);
		snprintf(name, sizeof(name), "arena.%u.initialized", i);
		if (mallctl(name, &init, &bsz, NULL, 0) != 0 || !init)
			continue;
		initialized++;
		size_t *pactivep = NULL;
		size_t psz = sizeof(pactivep);
		snprintf(name, sizeof(name), "experimental.arenas.%u.pactivep", i);
		if (mallctl(name, &pactivep, &psz, NULL, 0) == 0)
			md_say("arena.%u.address 0x%lx\n", i, (unsigned long)((uintptr_t)pactivep - 10656));
		snprintf(name, sizeof(name), "stats.arenas.%u.pactive", i);
		md_say("arena.%u.pactive %zu\n", i, ctl_size(name));
		snprintf(name, sizeof(name), "stats.arenas.%u.pdirty", i);
		md_say("arena.%u.pdirty %zu\n", i, ctl_size(name));
		snprintf(name, sizeof(name), "stats.arenas.%u.pmuzzy", i);
		md_say("arena.%u.pmuzzy %zu\n", i, ctl_size(name));
		snprintf(name, sizeof(name), "stats.arenas.%u.tcache_bytes", i);
		md_say("arena.%u.tcache_bytes %zu\n", i, ctl_size(name));
		snprintf(name, sizeof(name), "stats.arenas.%u.small.allocated", i);
		size_t small = ctl_size(name);
		snprintf(name, sizeof(name), "stats.arenas.%u.large.allocated", i);
		md_say("arena.%u.allocated %zu\n", i, small + ctl_size(name));
	}
	md_say("arenas.initialized %u\n", initialized);
	uint64_t *allocatedp = NULL;
	size_t psz = sizeof(allocatedp);
	if (mallctl("thread.allocatedp", &allocatedp, &psz, NULL, 0) == 0)
		md_say("main.tsd 0x%lx\n", (unsigned long)((uintptr_t)allocatedp - 824));
	md_say("rss_anon %llu\n", md_proc_field("/proc/self/status", "RssAnon"));
	md_say("ready\n");

	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "purge") == 0) {
			unsigned long long before = md_proc_field("/proc/self/status", "RssAnon");
			if (mallctl("arena.4096.purge", NULL, NULL, NULL, 0) != 0)
				die("purge");
			unsigned long long after = md_proc_field("/proc/self/status", "RssAnon");
			md_say("purge_drop_pages %lld\n", ((long long)before - (long long)after) / 4096);
		} else if (strcmp(cmd, "block") == 0) {
			static pthread_t blocker_thread;
			if (pthread_create(&blocker_thread, NULL, blocker, NULL) != 0)
				die("pthread_create");
		} else if (strcmp(cmd, "corrupt") == 0) {
			corrupt_jemalloc();
		} else if (strcmp(cmd, "quit") == 0) {
			break;
		}
	}
	return 0;
}
