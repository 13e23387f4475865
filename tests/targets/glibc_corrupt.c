/* A process that corrupts its own glibc heap on purpose, then waits to be inspected.
 *   glibc_corrupt MODE
 * It builds a heap for MODE (every allocation happens now), plus a bystander thread with an
 * arena of its own, prints glibc's own "mallinfo.<field> N" (of the still healthy heap),
 * "arena.bystander 0x..." (and "arena.big 0x..." in heap-prev-cycle), then "ready" and waits.
 * Command "corrupt" damages the heap for MODE and prints "bad 0x..." for each address a
 * correct report may name, "touched main|bystander|big|none" for the arenas whose own figures
 * the damage changes, then "corrupted". Command "quit" exits (with _exit: no allocator call
 * ever runs after the damage, glibc would abort or loop). Assumes glibc 2.35+ on x86-64
 * (safe-linking, tcache counts as uint16_t, the 2.35 heap_info and malloc_par layouts).
 * Modes:
 *   cyclic-bin        three chunks in the unsorted bin, one bk link turned into a cycle
 *   cyclic-smallbin   the same in a small bin
 *   cyclic-largebin   the same in a large bin
 *   nextsize-broken   a large bin's fd_nextsize ring: a link to a chunk outside any bin
 *   pointer-outside   a binned chunk's fd/bk point outside every heap
 *   cyclic-tcache     a tcache list whose last entry points back into the list
 *   tcache-count-high a tcache count above the number of entries
 *   tcache-count-low  a tcache count below it
 *   tcache-count-huge a tcache count of 65535
 *   tcache-unmapped   a tcache entry's next points into unmapped memory
 *   tcache-protnone   a tcache entry's next points into a PROT_NONE mapping
 *   bad-fastbin-fd    a fastbin chunk's (safe-linked) fd reveals to a misaligned pointer
 *   fastbin-outside   a fastbin chunk's fd points outside the heap
 *   size-past-end     an in-use chunk's size reaches past the top chunk
 *   top-past-heap     the top chunk's size runs past the end of the heap
 *   ring-self         the bystander arena's next is a fake arena whose next is itself
 *   ring-garbage      the bystander arena's next points to readable memory that is no arena
 *   ring-unmapped     the bystander arena's next points to unmapped memory
 *   heap-prev-cycle   a thread arena of two heaps: the newest heap_info's prev is itself
 *   nmmaps-lying      mp_.n_mmaps says 1000 mmapped chunks where there are 2
 *   mmapped-huge      an mmapped chunk's size word is far larger than its mapping */
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "target_common.h"

/* Addresses are kept as integers: the whole point is to write into freed chunks. */
typedef uintptr_t addr_t;

#define HEAP_MAX (64UL << 20)
#define ARENA_NEXT 0x870 /* offsetof(struct malloc_state, next), 2.27+ */
#define HEAP_INFO_SIZE 0x30

static addr_t take(size_t n)
{
	void *p = malloc(n);
	if (!p)
		_exit(3);
	memset(p, 0x66, n);
	return (addr_t)p;
}

static void release(addr_t mem)
{
	free((void *)mem);
}

static addr_t chunk_of(addr_t mem)
{
	return mem - 0x10;
}

static volatile addr_t *words(addr_t mem)
{
	__asm__("" : "+r"(mem)); /* hide the provenance from the use-after-free warning */
	return (volatile addr_t *)mem;
}

/* PROTECT_PTR of glibc 2.32+: the field's address >> 12, xored into the pointer. */
static addr_t protect(addr_t field, addr_t ptr)
{
	return (field >> 12) ^ ptr;
}

static void bad(addr_t a)
{
	md_say("bad 0x%lx\n", (unsigned long)a);
}

static void die(const char *why)
{
	md_say("setup failed: %s\n", why);
	_exit(4);
}

/* ---- threads that own an arena and then block ---- */

static int block_pipe[2];
static pthread_barrier_t built;
static addr_t bystander_arena, big_arena, big_newest_heap;

static addr_t arena_of_chunk(addr_t mem)
{
	return *(volatile addr_t *)(mem & ~(HEAP_MAX - 1)); /* heap_info.ar_ptr */
}

static void block_forever(void)
{
	char c;
	for (;;) {
		ssize_t r = read(block_pipe[0], &c, 1);
		if (r <= 0 && errno != EINTR)
			pause();
	}
}

static void *bystander_main(void *arg)
{
	(void)arg;
	static addr_t mine[600];
	for (size_t i = 0; i < 600; i++)
		mine[i] = take(16 + (i * 37) % 900);
	for (size_t i = 0; i < 600; i += 3)
		release(mine[i]);
	bystander_arena = arena_of_chunk(mine[1]);
	pthread_barrier_wait(&built);
	block_forever();
	return NULL;
}

/* > 64 MiB in 48 KiB chunks: a second heap; the last chunk was carved from the newest heap. */
static void *big_main(void *arg)
{
	(void)arg;
	static addr_t chunks[1500];
	for (size_t i = 0; i < 1500; i++)
		chunks[i] = take(48 * 1024);
	for (size_t i = 0; i < 1499; i += 5)
		release(chunks[i]);
	big_arena = arena_of_chunk(chunks[1499]);
	big_newest_heap = chunks[1499] & ~(HEAP_MAX - 1);
	if (big_arena == big_newest_heap + HEAP_INFO_SIZE)
		die("the big arena has a single heap");
	pthread_barrier_wait(&built);
	block_forever();
	return NULL;
}

/* ---- mp_, found by its values in libc's writable segment ---- */

static addr_t heap_start; /* sbrk(0) before the first malloc: mp_.sbrk_base */

struct seg_search {
	addr_t lo, hi;
};

static int find_libc_rw(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	struct seg_search *s = data;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "libc.so.6"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
			s->lo = info->dlpi_addr + ph->p_vaddr;
			s->hi = s->lo + ph->p_memsz;
		}
	}
	return 1;
}

/* 2.35+ malloc_par: n_mmaps at 0x3c, sbrk_base 0x60, tcache_bins 0x68, tcache_max_bytes 0x70,
 * tcache_count 0x78. */
static addr_t find_mp(void)
{
	struct seg_search s = { 0, 0 };
	dl_iterate_phdr(find_libc_rw, &s);
	if (!s.lo)
		die("libc's writable segment not found");
	for (addr_t a = (s.lo + 7) & ~7UL; a + 0x88 <= s.hi; a += 8) {
		volatile addr_t *w = (volatile addr_t *)a;
		if (w[0x60 / 8] == heap_start && w[0x68 / 8] == 64 && w[0x70 / 8] == 1032 && w[0x78 / 8] == 7)
			return a;
	}
	die("mp_ not found");
	return 0;
}

/* ---- the main thread's tcache_perthread_struct: the first chunk of the sbrk heap ---- */

static addr_t tcache_struct(addr_t entry_head, unsigned bin)
{
	addr_t tc = ((heap_start + 0x10 + 15) & ~15UL);
	if (*(volatile addr_t *)(tc + 0x80 + 8 * bin) != entry_head)
		die("tcache struct not at the heap start");
	return tc;
}

/* ---- per-mode state, prepared before "ready" ---- */

static addr_t keep[64], bulk[2000];
static addr_t m_a, m_b, m_c, m_e[4], m_f[10], m_top_guard, m_mmapped[2], m_protnone, m_fake, m_mp;

static void prepare(const char *mode)
{
	if (strcmp(mode, "cyclic-bin") == 0 || strcmp(mode, "pointer-outside") == 0) {
		m_a = take(0x500);
		take(0x20);
		m_b = take(0x500);
		take(0x20);
		m_c = take(0x500);
		take(0x20);
		release(m_a);
		release(m_b);
		release(m_c); /* unsorted: header <-> c <-> b <-> a */
	} else if (strcmp(mode, "cyclic-smallbin") == 0 || strcmp(mode, "cyclic-largebin") == 0) {
		size_t n = mode[7] == 's' ? 0xf8 : 0x4f8;
		addr_t fill[7];
		for (int i = 0; i < 7; i++)
			fill[i] = take(n);
		m_a = take(n);
		take(0x20);
		m_b = take(n);
		take(0x20);
		m_c = take(n);
		take(0x20);
		for (int i = 0; i < 7; i++)
			release(fill[i]); /* fills the tcache bin of that size (none for 0x500) */
		release(m_a);
		release(m_b);
		release(m_c);
		take(0x2000); /* a large request sorts the unsorted chunks into their bin */
	} else if (strcmp(mode, "nextsize-broken") == 0) {
		/* 0x500 and 0x530 share large bin 68: two sizes, two entries in its nextsize ring. */
		m_a = take(0x4f8);
		take(0x20);
		m_b = take(0x528);
		take(0x20);
		release(m_a);
		release(m_b);
		take(0x2000);
	} else if (strncmp(mode, "cyclic-tcache", 13) == 0 || strncmp(mode, "tcache-", 7) == 0) {
		for (int i = 0; i < 4; i++)
			m_e[i] = take(0x28);
		release(m_e[0]);
		release(m_e[1]);
		release(m_e[2]); /* tcache bin 1 (0x30): e2 -> e1 -> e0 */
		if (strcmp(mode, "tcache-protnone") == 0) {
			void *p = mmap(NULL, 1 << 16, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				die("mmap");
			m_protnone = (addr_t)p + 0x1000;
		}
	} else if (strcmp(mode, "bad-fastbin-fd") == 0 || strcmp(mode, "fastbin-outside") == 0) {
		for (int i = 0; i < 10; i++)
			m_f[i] = take(0x18);
		for (int i = 0; i < 10; i++)
			release(m_f[i]); /* 7 to tcache, f7..f9 to fastbin 0: f9 -> f8 -> f7 */
	} else if (strcmp(mode, "size-past-end") == 0) {
		m_a = take(0x100);
		m_b = take(0x100);
		m_c = take(0x100);
	} else if (strcmp(mode, "top-past-heap") == 0) {
		m_top_guard = take(0x40); /* carved from top: top starts right after it */
	} else if (strcmp(mode, "ring-self") == 0) {
		/* A fake arena that passes the heap_info test: right after a heap_info at a
		 * HEAP_MAX-aligned address, whose ar_ptr points back to it. */
		void *r = mmap(NULL, 2 * HEAP_MAX, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (r == MAP_FAILED)
			die("mmap");
		addr_t h = ((addr_t)r + HEAP_MAX - 1) & ~(HEAP_MAX - 1);
		if (mprotect((void *)h, 0x4000, PROT_READ | PROT_WRITE) != 0)
			die("mprotect");
		m_fake = h + HEAP_INFO_SIZE;
		*(volatile addr_t *)h = m_fake;
	} else if (strcmp(mode, "ring-garbage") == 0) {
		m_a = take(0x1000);
	} else if (strcmp(mode, "nmmaps-lying") == 0 || strcmp(mode, "mmapped-huge") == 0) {
		m_mmapped[0] = take(300 * 1024);
		m_mmapped[1] = take(1 << 20);
		m_mp = find_mp();
	} else if (strcmp(mode, "heap-prev-cycle") != 0 && strcmp(mode, "ring-unmapped") != 0) {
		md_say("unknown mode %s\n", mode);
		_exit(2);
	}
}

static void corrupt(const char *mode)
{
	if (strcmp(mode, "cyclic-bin") == 0 || strcmp(mode, "cyclic-smallbin") == 0 ||
	    strcmp(mode, "cyclic-largebin") == 0) {
		/* The bk walk from the bin header visits the three chunks and returns to the header:
		 * the last one's bk (the header) now names the first one, a cycle. The first is
		 * the one whose fd is the header, the last the one whose bk is. */
		addr_t mem[3] = { m_a, m_b, m_c }, first = 0, last = 0;
		for (int i = 0; i < 3; i++) {
			bool fd_in = false, bk_in = false;
			for (int k = 0; k < 3; k++) {
				fd_in |= words(mem[i])[0] == chunk_of(mem[k]);
				bk_in |= words(mem[i])[1] == chunk_of(mem[k]);
			}
			if (!fd_in)
				first = mem[i];
			if (!bk_in)
				last = mem[i];
		}
		if (!first || !last || first == last)
			die("the three chunks are not one bin list");
		words(last)[1] = chunk_of(first);
		bad(chunk_of(m_a));
		bad(chunk_of(m_b));
		bad(chunk_of(m_c));
		md_say("touched main\n");
	} else if (strcmp(mode, "pointer-outside") == 0) {
		words(m_b)[0] = 0x414141414140;
		words(m_b)[1] = 0x414141414140;
		bad(chunk_of(m_b));
		bad(chunk_of(m_a));
		bad(chunk_of(m_c));
		md_say("touched main\n");
	} else if (strcmp(mode, "nextsize-broken") == 0) {
		/* Ring: b (0x530) -> a (0x500) -> b. a's fd_nextsize now names a chunk that heads
		 * no size in the bin (one of the in-use guards). */
		words(m_a)[2] = chunk_of(m_a) + 0x500;
		bad(chunk_of(m_a));
		bad(chunk_of(m_b));
		md_say("touched main\n");
	} else if (strcmp(mode, "cyclic-tcache") == 0) {
		words(m_e[0])[0] = protect(m_e[0], m_e[1]); /* e0 -> e1: a cycle */
		for (int i = 0; i < 3; i++)
			bad(chunk_of(m_e[i]));
		md_say("touched main\n");
	} else if (strncmp(mode, "tcache-count-", 13) == 0) {
		addr_t tc = tcache_struct(m_e[2], 1);
		volatile uint16_t *counts = (volatile uint16_t *)tc;
		counts[1] = mode[13] == 'h' && mode[14] == 'i' ? 5 : mode[13] == 'l' ? 1 : 65535;
		bad(tc + 2);
		for (int i = 0; i < 3; i++)
			bad(chunk_of(m_e[i]));
		md_say("touched main\n");
	} else if (strcmp(mode, "tcache-unmapped") == 0 || strcmp(mode, "tcache-protnone") == 0) {
		addr_t where = mode[7] == 'u' ? 0x414141410000 : m_protnone;
		words(m_e[1])[0] = protect(m_e[1], where); /* e2 -> e1 -> there */
		bad(chunk_of(m_e[1]));
		md_say("touched main\n");
	} else if (strcmp(mode, "bad-fastbin-fd") == 0 || strcmp(mode, "fastbin-outside") == 0) {
		addr_t target = mode[0] == 'b' ? 0x123456789 : 0x414141414140;
		words(m_f[8])[0] = protect(m_f[8], target);
		bad(chunk_of(m_f[8]));
		md_say("touched main\n");
	} else if (strcmp(mode, "size-past-end") == 0) {
		words(m_b - 8)[0] = 0x10000000 | 1; /* size word of b */
		bad(chunk_of(m_b));
		md_say("touched main\n");
	} else if (strcmp(mode, "top-past-heap") == 0) {
		addr_t top = chunk_of(m_top_guard) + 0x50;
		words(top)[1] = 0x7fff0000 | 1;
		bad(top);
		md_say("touched main\n");
	} else if (strcmp(mode, "ring-self") == 0) {
		words(m_fake)[ARENA_NEXT / 8] = m_fake;
		words(bystander_arena)[ARENA_NEXT / 8] = m_fake;
		bad(m_fake);
		bad(m_fake + ARENA_NEXT);
		bad(bystander_arena + ARENA_NEXT);
		md_say("touched none\n");
	} else if (strcmp(mode, "ring-garbage") == 0 || strcmp(mode, "ring-unmapped") == 0) {
		words(bystander_arena)[ARENA_NEXT / 8] = mode[5] == 'g' ? m_a : 0x414141410000;
		bad(bystander_arena + ARENA_NEXT);
		md_say("touched none\n");
	} else if (strcmp(mode, "heap-prev-cycle") == 0) {
		words(big_newest_heap)[1] = big_newest_heap;
		bad(big_newest_heap);
		md_say("touched big\n");
	} else if (strcmp(mode, "nmmaps-lying") == 0) {
		*(volatile int32_t *)(m_mp + 0x3c) = 1000;
		bad(m_mp);
		md_say("touched main\n"); /* its mallinfo carries hblks = mp_.n_mmaps */
	} else if (strcmp(mode, "mmapped-huge") == 0) {
		words(m_mmapped[1] - 16)[1] = (1UL << 44) | 2;
		bad(chunk_of(m_mmapped[1]));
		md_say("touched none\n");
	}
}

static void print_mallinfo(void)
{
	struct mallinfo2 mi = mallinfo2();
	md_say("mallinfo.arena %zu\n", mi.arena);
	md_say("mallinfo.ordblks %zu\n", mi.ordblks);
	md_say("mallinfo.smblks %zu\n", mi.smblks);
	md_say("mallinfo.hblks %zu\n", mi.hblks);
	md_say("mallinfo.hblkhd %zu\n", mi.hblkhd);
	md_say("mallinfo.usmblks %zu\n", mi.usmblks);
	md_say("mallinfo.fsmblks %zu\n", mi.fsmblks);
	md_say("mallinfo.uordblks %zu\n", mi.uordblks);
	md_say("mallinfo.fordblks %zu\n", mi.fordblks);
	md_say("mallinfo.keepcost %zu\n", mi.keepcost);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "cyclic-bin";
	(void)md_proc_field;
	heap_start = (addr_t)sbrk(0);
	/* Some ordinary heap first, so that the walk has something to do around the damage: over
	 * 512 KiB, so that the main heap is read ahead on the walker's helper thread (the
	 * bystander's small heap is read in turn: both ways meet the damage). */
	for (int i = 0; i < 32; i++)
		keep[i] = take(40 + 24 * i);
	for (int i = 0; i < 2000; i++)
		bulk[i] = take(300 + (i % 7) * 40);
	if (pipe(block_pipe) != 0)
		die("pipe");
	bool big = strcmp(mode, "heap-prev-cycle") == 0;
	pthread_barrier_init(&built, NULL, big ? 3 : 2);
	pthread_t th;
	if (pthread_create(&th, NULL, bystander_main, NULL) != 0)
		die("pthread_create");
	if (big && pthread_create(&th, NULL, big_main, NULL) != 0)
		die("pthread_create");
	pthread_barrier_wait(&built);
	prepare(mode);
	print_mallinfo();
	md_say("arena.bystander 0x%lx\n", (unsigned long)bystander_arena);
	if (big)
		md_say("arena.big 0x%lx\n", (unsigned long)big_arena);
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "corrupt") == 0) {
			corrupt(mode);
			md_say("corrupted\n");
		} else if (strcmp(cmd, "quit") == 0) {
			break;
		}
	}
	_exit(0);
}
