/* Ground truth for the glibc version tests (tests/check_glibc_versions.c): one heap with every
 * kind of glibc malloc state, built the same way on every glibc from 2.26 on. The Makefile links
 * it against each fixture glibc (../shared/fixtures/glibc/<version>), so it may only use what
 * 2.26 already had: mallinfo2() (2.33+) is a weak reference, mallinfo()'s int fields are used
 * before (the heap stays far below 2 GiB).
 *   glibc_versions_truth        (no arguments)
 * The heap: the main arena and VT_THREADS thread arenas (one thread each, blocked afterwards),
 * each with chunks in use, tcache entries, fastbin chunks (more frees of one small size than the
 * tcache takes), binned free chunks (small and large, apart from top) and 40 KiB holes whose
 * inner pages malloc_trim(0) gives back; VT_MMAPPED mmapped chunks stay in use.
 * Output: "libc_version 2.NN" (gnu_get_libc_version: the libc it really runs on),
 * "mallinfo.<field> N", "arenas N", "mmapped_chunks N", "ready".
 * Commands on stdin:
 *   trim -> malloc_trim(0); "trim_drop_pages N" and "trim_drop_anon_pages N" (resident and
 *           resident minus file/shmem pages of /proc/self/statm, before minus after), "trimmed"
 *   quit -> exit
 * Nothing here calls stdio or allocates after the heap is built, except through the calls
 * above: printing must not change the heap. */
#include <gnu/libc-version.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>

#include "target_common.h"

#define VT_THREADS 3
#define VT_MMAPPED 3

/* Absent before 2.33; the program is linked against every glibc from 2.26. */
extern __typeof__(mallinfo2) mallinfo2 __attribute__((weak));

static void *must_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		md_say("malloc failed\n");
		_exit(3);
	}
	memset(p, 0xa5, n); /* resident, as in a real program */
	return p;
}

/* One arena's heap. seed varies the sizes a little between arenas. All allocations come first
 * (n_mmapped mmapped chunks among them) and the frees last, the large ones before the small ones:
 * a free that coalesces to 64 KiB or a large request would consolidate the fastbins away. */
#define VT_SMALL 600
#define VT_HOLES 24
#define VT_FAST 30
static void build_heap(unsigned seed, size_t n_mmapped)
{
	void *small[VT_SMALL], *holes[VT_HOLES], *fast[VT_FAST];
	for (size_t i = 0; i < VT_SMALL; i++)
		small[i] = must_malloc(16 + (i * 104 + seed * 40) % 1100);
	for (size_t i = 0; i < VT_HOLES; i++) {
		holes[i] = must_malloc(40 * 1024 + seed * 512);
		must_malloc(200); /* guard */
	}
	/* Fastbin-sized chunks apart from each other, so the frees do not coalesce anything. */
	for (size_t i = 0; i < VT_FAST; i++) {
		fast[i] = must_malloc(40);
		must_malloc(300); /* guard */
	}
	must_malloc(100); /* keeps the last free chunks off top */
	for (size_t i = 0; i < n_mmapped; i++)
		must_malloc((256u << i) * 1024); /* 256 KiB, 512 KiB, 1 MiB: above the mmap threshold */

	for (size_t i = 0; i < VT_HOLES; i += 2)
		free(holes[i]); /* binned large chunks with whole free pages inside */
	for (size_t i = seed % 3; i < VT_SMALL; i += 3)
		free(small[i]); /* tcache (7 per size) first, then fastbins or bins */
	for (size_t i = 0; i < VT_FAST; i++)
		free(fast[i]); /* 7 to the tcache, the rest to a fastbin */
}

static pthread_barrier_t built;
static int block_pipe[2];

static void *thread_main(void *arg)
{
	build_heap((unsigned)(uintptr_t)arg, 0);
	pthread_barrier_wait(&built);
	/* Stay alive: the tcache of a thread that exits goes back to its arena. */
	for (;;) {
		char c;
		ssize_t r = read(block_pipe[0], &c, 1);
		if (r <= 0 && errno != EINTR)
			pause();
	}
	return NULL;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void print_mallinfo(void)
{
	unsigned long long f[10];
	if (mallinfo2) {
		struct mallinfo2 mi = mallinfo2();
		size_t v[10] = { mi.arena, mi.ordblks, mi.smblks,   mi.hblks,    mi.hblkhd,
				 mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost };
		for (int i = 0; i < 10; i++)
			f[i] = v[i];
	} else {
		struct mallinfo mi = mallinfo();
		int v[10] = { mi.arena, mi.ordblks, mi.smblks,   mi.hblks,    mi.hblkhd,
			      mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost };
		for (int i = 0; i < 10; i++)
			f[i] = (unsigned)v[i];
	}
	static const char *const names[10] = { "arena",   "ordblks", "smblks",   "hblks",    "hblkhd",
					       "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost" };
	for (int i = 0; i < 10; i++)
		md_say("mallinfo.%s %llu\n", names[i], f[i]);
}
#pragma GCC diagnostic pop

/* /proc/self/statm: "size resident shared text lib data dt", in pages; read(2), no stdio. */
static bool statm(unsigned long long *resident, unsigned long long *shared)
{
	static char buf[256];
	int fd = open("/proc/self/statm", O_RDONLY);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	char *p = buf, *end;
	strtoull(p, &end, 10);
	*resident = strtoull(end, &p, 10);
	*shared = strtoull(p, &end, 10);
	return end != p;
}

int main(void)
{
	if (pipe(block_pipe) != 0)
		_exit(3);
	build_heap(0, VT_MMAPPED);

	pthread_barrier_init(&built, NULL, VT_THREADS + 1);
	for (size_t i = 0; i < VT_THREADS; i++) {
		pthread_t th;
		if (pthread_create(&th, NULL, thread_main, (void *)(i + 1)) != 0)
			_exit(3);
	}
	pthread_barrier_wait(&built);

	md_say("libc_version %s\n", gnu_get_libc_version());
	print_mallinfo();
	md_say("arenas %d\n", VT_THREADS + 1);
	md_say("mmapped_chunks %d\n", VT_MMAPPED);
	md_say("ready\n");

	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "trim") == 0) {
			unsigned long long res0 = 0, sh0 = 0, res1 = 0, sh1 = 0;
			statm(&res0, &sh0); /* once for the code paths, then for real */
			if (!statm(&res0, &sh0))
				_exit(4);
			malloc_trim(0);
			if (!statm(&res1, &sh1))
				_exit(4);
			md_say("trim_drop_pages %lld\n", (long long)(res0 - res1));
			md_say("trim_drop_anon_pages %lld\n", (long long)((res0 - sh0) - (res1 - sh1)));
			md_say("trimmed\n");
		} else if (strcmp(cmd, "quit") == 0) {
			break;
		}
	}
	_exit(0);
}
