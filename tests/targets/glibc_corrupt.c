/* A process that corrupts its own glibc heap on purpose, then waits to be inspected. It never
 * calls malloc again after the damage (glibc would abort or loop), and it prints the chunk
 * addresses a correct report must name as "bad_chunk 0x..." lines.
 *   glibc_corrupt MODE
 *     cyclic-bin       three chunks in the unsorted bin, one bk link turned into a cycle
 *     cyclic-tcache    a tcache list whose last entry points back into the list
 *     size-past-end    an in-use chunk's size reaches past the top chunk
 *     pointer-outside  a binned chunk's fd/bk point outside every heap
 *     bad-fastbin-fd   a fastbin chunk's (safe-linked) fd reveals to a misaligned pointer
 *     fastbin-outside  a fastbin chunk's fd points outside the heap
 * Then "ready"; commands on stdin: "quit". Assumes glibc 2.32+ (safe-linking). */
#include <malloc.h>

#include "target_common.h"

/* Addresses are kept as integers: the whole point is to write into freed chunks. */
typedef uintptr_t addr_t;

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

static void *keep[64];

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "cyclic-bin";
	(void)md_proc_field;
	/* Some ordinary heap first, so that the walk has something to do around the damage. */
	for (int i = 0; i < 32; i++) {
		keep[i] = malloc(40 + 24 * i);
		memset(keep[i], 0x77, 40 + 24 * i);
	}
	if (strcmp(mode, "cyclic-bin") == 0 || strcmp(mode, "pointer-outside") == 0) {
		addr_t a = take(0x500), g1 = take(0x20), b = take(0x500), g2 = take(0x20);
		addr_t c = take(0x500), g3 = take(0x20);
		(void)g1;
		(void)g2;
		(void)g3;
		release(a);
		release(b);
		release(c); /* unsorted: header <-> c <-> b <-> a */
		if (mode[0] == 'c') {
			/* bk walk from the header: a, b, c, then back to a instead of the header. */
			words(c)[1] = chunk_of(a);
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(a));
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(b));
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(c));
		} else {
			words(b)[0] = 0x414141414140;
			words(b)[1] = 0x414141414140;
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(b));
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(a));
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(c));
		}
	} else if (strcmp(mode, "cyclic-tcache") == 0) {
		addr_t e[4];
		for (int i = 0; i < 4; i++)
			e[i] = take(0x30);
		release(e[0]);
		release(e[1]);
		release(e[2]); /* tcache: e2 -> e1 -> e0 */
		words(e[0])[0] = protect(e[0], e[1]); /* e0 -> e1: a cycle */
		for (int i = 0; i < 3; i++)
			md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(e[i]));
	} else if (strcmp(mode, "size-past-end") == 0) {
		addr_t a = take(0x100), b = take(0x100), c = take(0x100);
		(void)a;
		(void)c;
		words(b - 8)[0] = 0x10000000 | 1; /* size word of b */
		md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(b));
	} else if (strcmp(mode, "bad-fastbin-fd") == 0 || strcmp(mode, "fastbin-outside") == 0) {
		addr_t f[10];
		for (int i = 0; i < 10; i++)
			f[i] = take(0x18);
		for (int i = 0; i < 10; i++)
			release(f[i]); /* 7 to tcache, f7..f9 to fastbin 0: f9 -> f8 -> f7 */
		addr_t target = mode[0] == 'b' ? 0x123456789 : 0x414141414140;
		words(f[8])[0] = protect(f[8], target);
		md_say("bad_chunk 0x%lx\n", (unsigned long)chunk_of(f[8]));
	} else {
		md_say("unknown mode %s\n", mode);
		return 2;
	}
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
	_exit(0);
}
