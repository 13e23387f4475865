/* A small jemalloc heap that corrupts its own metadata in one way, chosen by argv[1], then prints
 * "bad_addr 0x..." (the address a finding must name) and "ready" and waits. Offsets are those of
 * Debian 12's jemalloc 5.3.0 on x86-64 (shared/docs/jemalloc.md). After the corruption the process
 * must not allocate: only reading stdin and exiting are safe.
 *   seed             no corruption (the walker fuzzer's seed image is a snapshot of this)
 *   rtree_unmapped   the rtree entry of a live slab page points to an unmapped "edata"
 *   rtree_protnone   ... to a PROT_NONE page
 *   rtree_anywhere   ... into the middle of a live allocation (garbage bits)
 *   lru_cycle        the dirty ecache's lru ring loops without coming back to its head
 *   bin_lying        a cache bin's stack_head/low_bits claim thousands of cached pointers
 *   bitmap_overfull  a slab bitmap has every bit free, more than nregs, nfree says so too
 *   edata_size       a large extent's edata claims 2^46 bytes
 *   arena_slot       the manual arena's arenas[] slot points to garbage (a page of 0x41)
 *   base_cycle       arena 0's base block list loops back onto an older block */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "target_common.h"

#define ARENA_EMAP 78912
#define ARENA_BASE 78936
#define ARENA_DIRTY_LRU (10728 + 112 + 9632)
#define BASE_BLOCKS 160
#define RTREE_ROOT 120
#define TSD_THREAD_ALLOCATED 824
#define TSD_TCACHE 856

/* The Makefile links only jemalloc_truth with -ljemalloc: this program preloads it instead
 * (re-exec with LD_PRELOAD), so malloc/free are jemalloc's and the rest is looked up. */
static int (*mallctl)(const char *, void *, size_t *, void *, size_t);
static void *(*mallocx)(size_t, int);
#define MALLOCX_ARENA(a) ((int)(((unsigned)(a) + 1) << 20))
#define MALLOCX_TCACHE_NONE ((int)(1u << 8))

static void *small[2000];
static void *large[16];
static char garbage[8192] __attribute__((aligned(4096)));

static __attribute__((noreturn)) void die(const char *what)
{
	md_say("error %s\n", what);
	exit(1);
}

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

static uintptr_t *rtree_entry(uintptr_t a0, uintptr_t p)
{
	uintptr_t emap = *(uintptr_t *)(a0 + ARENA_EMAP);
	uintptr_t leaf = *(uintptr_t *)(emap + RTREE_ROOT + 8 * ((p >> 30) & 0x3ffff));
	if (!leaf)
		die("no rtree leaf");
	return (uintptr_t *)(leaf + 8 * ((p >> 12) & 0x3ffff));
}

static uintptr_t edata_of(uintptr_t a0, uintptr_t p)
{
	uintptr_t w = *rtree_entry(a0, p);
	return (uintptr_t)(((intptr_t)(w << 16)) >> 16) & ~(uintptr_t)127;
}

/* je_arenas lives in libjemalloc's writable data: the word holding arena 0's address with the
 * manual arena's at slot ind (both known through mallctl; auto arenas past 0 are created lazily,
 * so their slots may still be NULL). */
static uintptr_t *find_arenas_array(uintptr_t a0, unsigned ind, uintptr_t a1)
{
	static char maps[65536];
	int fd = open("/proc/self/maps", O_RDONLY);
	if (fd < 0)
		die("maps");
	ssize_t n = 0, r;
	while ((r = read(fd, maps + n, sizeof(maps) - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	maps[n < 0 ? 0 : n] = 0;
	for (char *l = maps; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long lo, hi;
		char perm[5];
		if (sscanf(l, "%lx-%lx %4s", &lo, &hi, perm) != 3 || perm[0] != 'r' || perm[1] != 'w')
			continue;
		for (uintptr_t *w = (uintptr_t *)lo; (uintptr_t)(w + ind) < hi; w++)
			if (w[0] == a0 && w[ind] == a1 && (uintptr_t)w != (uintptr_t)&small[0])
				return w;
	}
	die("je_arenas not found");
}

static void build_heap(unsigned *manual_ret)
{
	for (size_t i = 0; i < 2000; i++) {
		small[i] = malloc(16 + (i % 12) * 32);
		if (!small[i])
			die("malloc");
		memset(small[i], 0x5a, 16);
	}
	for (size_t i = 0; i < 2000; i += 3) {
		free(small[i]);
		small[i] = NULL;
	}
	for (size_t i = 0; i < 16; i++) {
		large[i] = malloc(20000 + i * 9000);
		if (!large[i])
			die("malloc large");
		memset(large[i], 0x6b, 64);
	}
	for (size_t i = 0; i < 16; i += 2) {
		free(large[i]);
		large[i] = NULL;
	}
	/* A manual arena, so that arenas[1] exists and a second base is there. */
	unsigned manual;
	size_t sz = sizeof(manual);
	if (mallctl("arenas.create", &manual, &sz, NULL, 0) != 0)
		die("arenas.create");
	void *m = mallocx(4000, MALLOCX_ARENA(manual) | MALLOCX_TCACHE_NONE);
	if (!m)
		die("mallocx");
	*manual_ret = manual;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "seed";
	mallctl = (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
	mallocx = (void *(*)(size_t, int))dlsym(RTLD_DEFAULT, "mallocx");
	if (!mallctl || !mallocx) {
		if (getenv("MD_JEM_PRELOADED"))
			die("libjemalloc.so.2 not loaded");
		setenv("MD_JEM_PRELOADED", "1", 1);
		setenv("LD_PRELOAD", "libjemalloc.so.2", 1);
		execv("/proc/self/exe", argv);
		die("execv");
	}
	unsetenv("LD_PRELOAD");
	unsigned manual;
	build_heap(&manual);
	memset(garbage, 0x41, sizeof(garbage));
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (none == MAP_FAILED)
		die("mmap");
	/* Everything looked up before the corruption: nothing may allocate afterwards. */
	uint64_t *allocatedp = NULL;
	size_t psz = sizeof(allocatedp);
	if (mallctl("thread.allocatedp", &allocatedp, &psz, NULL, 0) != 0)
		die("thread.allocatedp");
	uintptr_t tsd = (uintptr_t)allocatedp - TSD_THREAD_ALLOCATED;
	uintptr_t a0 = arena_address(0);
	uintptr_t live = (uintptr_t)small[1];
	uintptr_t bad = 0;

	if (strcmp(mode, "seed") == 0) {
		bad = 0;
	} else if (strncmp(mode, "rtree_", 6) == 0) {
		uintptr_t *e = rtree_entry(a0, live);
		uintptr_t to = strcmp(mode, "rtree_unmapped") == 0 ? (uintptr_t)0x7e5500000000ULL
			     : strcmp(mode, "rtree_protnone") == 0 ? (uintptr_t)none
								  : (uintptr_t)small[4] + 128;
		to &= ~(uintptr_t)127;
		*e = (*e & ~((1ULL << 48) - 1)) | to | (*e & 1); /* keep slab bit and szind */
		/* Unreadable edata: the finding names the page whose entry is bad; readable garbage:
		 * it names the "edata" that does not cover the page. */
		bad = strcmp(mode, "rtree_anywhere") == 0 ? to : live & ~(uintptr_t)4095;
	} else if (strcmp(mode, "lru_cycle") == 0) {
		/* The freed large extents are dirty: their lru ring runs through edata+64. Make the
		 * second element point to itself, so a walk from the head never returns. */
		uintptr_t head = *(uintptr_t *)(a0 + ARENA_DIRTY_LRU);
		if (!head)
			die("dirty lru empty");
		uintptr_t second = *(uintptr_t *)(head + 64);
		if (second == head)
			die("dirty lru has one extent");
		*(uintptr_t *)(second + 64) = second;
		bad = second;
	} else if (strcmp(mode, "bin_lying") == 0) {
		for (unsigned i = 0; i < 36 && !bad; i++) {
			uintptr_t bin = tsd + TSD_TCACHE + 8 + 24 * i;
			uintptr_t head = *(uintptr_t *)bin;
			uint16_t empty = *(uint16_t *)(bin + 20);
			if (head && (uint16_t)(empty - (uint16_t)head) >= 8) {
				/* low_bits_empty far above the stack: 4000 "cached" pointers of garbage */
				*(uint16_t *)(bin + 20) = (uint16_t)((uint16_t)head + 32000);
				*(uint16_t *)(bin + 18) = (uint16_t)head;
				bad = bin;
			}
		}
		if (!bad)
			die("no cached region");
	} else if (strcmp(mode, "bitmap_overfull") == 0) {
		uintptr_t ed = edata_of(a0, live);
		memset((void *)(ed + 64), 0xff, 64);
		uint64_t *bits = (uint64_t *)ed;
		*bits |= (uint64_t)0x3ff << 28; /* nfree = 1023 > nregs */
		bad = ed;
	} else if (strcmp(mode, "edata_size") == 0) {
		uintptr_t ed = edata_of(a0, (uintptr_t)large[1]);
		*(uint64_t *)(ed + 16) = 1ULL << 46;
		bad = ed;
	} else if (strcmp(mode, "arena_slot") == 0) {
		/* ctl knows the manual arena only after an epoch refresh. */
		uint64_t epoch = 1;
		size_t esz = sizeof(epoch);
		if (mallctl("epoch", &epoch, &esz, &epoch, esz) != 0)
			die("epoch");
		uintptr_t *slots = find_arenas_array(a0, manual, arena_address(manual));
		slots[manual] = (uintptr_t)garbage;
		bad = (uintptr_t)&slots[manual];
	} else if (strcmp(mode, "base_cycle") == 0) {
		uintptr_t base = *(uintptr_t *)(a0 + ARENA_BASE);
		uintptr_t block = *(uintptr_t *)(base + BASE_BLOCKS);
		if (!block)
			die("no base block");
		uintptr_t next = *(uintptr_t *)(block + 8);
		/* Newest block's next -> itself when alone; else the older block's next -> newest. */
		if (next)
			*(uintptr_t *)(next + 8) = block;
		else
			*(uintptr_t *)(block + 8) = block;
		bad = next ? next : block;
	} else {
		die("unknown mode");
	}
	md_say("manual_arena %u\nbad_addr 0x%lx\nready\n", manual, (unsigned long)bad);
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
	return 0;
}
