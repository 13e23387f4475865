/* Ground truth for the glibc plugin: builds a known heap, prints glibc's own mallinfo2() and
 * waits for commands on stdin.
 *   glibc_truth MODE [ARG]
 *     sizes      many request sizes (16 B .. 300 KiB, some mmapped), a quarter freed
 *     kth [K]    20000 chunks of 16..1040 bytes, every K-th freed (default 3)
 *     random     random sizes and random frees, fixed seed
 *     threads    8 threads in 8 arenas (they stay alive, blocked); thread 0's arena spans
 *                several heaps (> 64 MiB); the main arena is used too
 *     mmap       mmapped chunks (several sizes, some adjacent) plus a small heap
 *     tcache     tcache- and fastbin-heavy (every small size freed many times)
 *     trimmed    like kth with large holes, then malloc_trim(0) before the snapshot
 *     empty      nothing allocated on purpose
 *     fill       20000 x malloc(2000) filled with 1s, every third freed (a reported false
 *                positive); then tcache and fastbin chunks written up to the end of their usable
 *                size (the next chunk's prev_size) right before binned chunks, and an 8 MiB
 *                mmapped chunk
 *     churn      2 threads malloc/free without pause (the heap is never quiescent for long)
 *     churn1     the main thread alone mallocs/frees without pause (glibc takes no lock then);
 *                it polls stdin between rounds, so only "quit" is understood
 *   The heaps real systems make (each prints "heap_vmas N", the [heap] lines of its maps):
 *     forkgrow   a kth heap, then fork; the child grows its heap (the kernel does not merge the
 *                growth into the VMA inherited from the parent), prints "pid N" and the rest;
 *                the parent only waits for it
 *     split      a kth heap split into several VMAs: MADV_HUGEPAGE on two pages, mlock of one,
 *                mprotect(PROT_READ) of a page inside a live chunk
 *     holes      60000 kth chunks with two runs of 10000 freed (megabytes for malloc_trim)
 *   (forkgrow, split and holes free such runs too, across the VMA boundaries.)
 *     noncontig  a small heap, then a page mapped right at the brk: glibc grows the main arena
 *                in mmapped segments (non-contiguous), with fenceposts between them
 *     mmapmix    mmapped chunks between foreign anonymous mappings (odd page counts, 1 MiB) that
 *                the kernel merges into the same VMAs: chunks at odd offsets inside a VMA
 *     hugezero   a kth heap and a 30 MiB chunk, the [heap] under MADV_HUGEPAGE, the chunk read but
 *                never written (the huge zero page maps it: pagemap shows it present, smaps
 *                does not count it); hugezerofork: the same in a forked child (its
 *                pages are shared with the parent: pagemap says "not exclusive" for all of them)
 *     swap       a kth heap, 8 MB of live 2000-byte chunks of which 6 MB are paged out, and the
 *                heap's first page (tcache struct, first chunk)
 *                (MADV_PAGEOUT: to swap, when there is swap): the bins and fastbins stay resident,
 *                so mallinfo2 and malloc_trim need no swapped page; prints "pageout_bytes N"
 *                and "swapped_bytes N" (VmSwap)
 *     large      400 chunks of 64-256 KiB in the main arena (the mmap threshold raised to 1 MiB so
 *                that they stay in the heap), every byte written, every third freed: a heap the
 *                walk reads sparsely (a probe per chunk header)
 *     smash      like kth with fastbins, then one live chunk's size word overwritten
 *                (prints "smashed ADDR"); mallinfo2 reads only the bins, so it stays exact
 * Output: "mallinfo.<field> N" lines; except in threads/churn modes, "hist.<k>.live_count N" and
 * "hist.<k>.live_bytes N" for the chunks the program holds, by chunk-size class k (sizes
 * [2^(k+4), 2^(k+5)), the last class >= 1 MiB; mmapped chunks included); "threads N"; "ready".
 * Commands:
 *   trim   -> "trim_drop_pages N" (smaps_rollup Rss before - after malloc_trim(0), in pages),
 *             "trim_drop_anon_pages N" (RssAnon), then "after.mallinfo.<field> N", then "trimmed"
 *   info   -> the mallinfo lines again, then "info done"
 *   quit   -> exit
 * Nothing here calls stdio: printing must not allocate (it would change the heap). */
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "target_common.h"

#define MAX_PTRS 200000
static void *ptrs[MAX_PTRS];
static size_t n_ptrs;

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Allocate and touch every byte, as a real program would: the pages become resident. */
static void *take(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		md_say("malloc failed\n");
		_exit(3);
	}
	memset(p, 0xa5, n);
	if (n_ptrs < MAX_PTRS)
		ptrs[n_ptrs++] = p;
	return p;
}

static void drop(size_t i)
{
	if (i < n_ptrs && ptrs[i]) {
		free(ptrs[i]);
		ptrs[i] = NULL;
	}
}

static void print_mallinfo(const char *prefix)
{
	struct mallinfo2 mi = mallinfo2();
	md_say("%smallinfo.arena %zu\n", prefix, mi.arena);
	md_say("%smallinfo.ordblks %zu\n", prefix, mi.ordblks);
	md_say("%smallinfo.smblks %zu\n", prefix, mi.smblks);
	md_say("%smallinfo.hblks %zu\n", prefix, mi.hblks);
	md_say("%smallinfo.hblkhd %zu\n", prefix, mi.hblkhd);
	md_say("%smallinfo.usmblks %zu\n", prefix, mi.usmblks);
	md_say("%smallinfo.fsmblks %zu\n", prefix, mi.fsmblks);
	md_say("%smallinfo.uordblks %zu\n", prefix, mi.uordblks);
	md_say("%smallinfo.fordblks %zu\n", prefix, mi.fordblks);
	md_say("%smallinfo.keepcost %zu\n", prefix, mi.keepcost);
}

/* What the program holds, by chunk-size class, as the plugin's histogram counts live chunks:
 * chunk size = usable size + the header glibc does not lend to the payload (8, or 16 when
 * mmapped). Nothing else allocates in this program, so these are all the live chunks. */
#define HIST_CLASSES 17
static void print_histogram(void)
{
	unsigned long long count[HIST_CLASSES] = { 0 }, bytes[HIST_CLASSES] = { 0 };
	for (size_t i = 0; i < n_ptrs; i++) {
		if (!ptrs[i])
			continue;
		size_t word = ((size_t *)ptrs[i])[-1];
		size_t size = malloc_usable_size(ptrs[i]) + ((word & 2) ? 16 : 8);
		unsigned k = 0;
		while (k + 1 < HIST_CLASSES && size >= (32ULL << k))
			k++;
		count[k]++;
		bytes[k] += size;
	}
	for (unsigned k = 0; k < HIST_CLASSES; k++) {
		md_say("hist.%u.live_count %llu\n", k, count[k]);
		md_say("hist.%u.live_bytes %llu\n", k, bytes[k]);
	}
}

static void build_sizes(void)
{
	static const size_t sizes[] = { 1,    8,    16,    24,    25,    40,    56,     100,    120,
					200,  500,  1000,  1024,  1500,  4000,  4096,   5000,   10000,
					32000, 65000, 100000, 131072, 140000, 300000 };
	const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
	for (size_t round = 0; round < 200; round++)
		for (size_t i = 0; i < ns; i++)
			take(sizes[(i + round) % ns] > 100000 && round % 20 ? 64 : sizes[(i + round) % ns]);
	for (size_t i = 0; i < n_ptrs; i += 4)
		drop(i);
}

static void build_kth(size_t k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		take(16 + (i * 104) % 1025);
	for (size_t i = 0; i < n; i += k)
		drop(i);
}

static void build_random(void)
{
	for (size_t i = 0; i < 50000; i++) {
		size_t r = rng();
		size_t n = (r & 0xff) < 240 ? 8 + (r >> 8) % 600 : 600 + (r >> 8) % 40000;
		take(n);
		if ((rng() & 3) == 0)
			drop((size_t)(rng() % n_ptrs));
	}
	for (size_t i = 0; i < n_ptrs; i++)
		if (rng() & 1)
			drop(i);
	/* Some reallocs, which split and merge chunks in place. */
	for (size_t i = 0; i < n_ptrs; i += 7) {
		if (!ptrs[i])
			continue;
		void *q = realloc(ptrs[i], 50 + rng() % 3000);
		if (q) {
			memset(q, 0x5a, 50);
			ptrs[i] = q;
		}
	}
}

static void build_mmap(void)
{
	take(100);
	take(200 * 1024);
	take(200 * 1024);
	take(1 << 20);
	take(3 << 20);
	take(140 * 1024);
	take(5000);
	take(512 * 1024);
	take(64);
}

static void build_tcache(void)
{
	for (size_t i = 0; i < 6000; i++)
		take(8 + (i % 16) * 8); /* 8..128: tcache and fastbin sizes */
	for (size_t i = 0; i < 300; i++)
		take(200 + (i % 9) * 100); /* tcache-only sizes */
	take(100); /* guard against top */
	/* Free every other chunk so fastbin chunks do not sit next to each other only. */
	for (size_t i = 0; i + 1 < n_ptrs; i += 2)
		drop(i);
	for (size_t i = 1; i + 1 < n_ptrs; i += 6)
		drop(i);
}

/* A reported false positive: "free chunk ... has footer 0x101010101010101". The footer of a
 * binned chunk is the next chunk's prev_size; after an in-use, tcache or fastbin chunk that word
 * is payload, and programs may fill it. */
static void *take_filled(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		md_say("malloc failed\n");
		_exit(3);
	}
	memset(p, 1, malloc_usable_size(p));
	if (n_ptrs < MAX_PTRS)
		ptrs[n_ptrs++] = p;
	return p;
}

static void build_fill(void)
{
	for (size_t i = 0; i < 20000; i++) {
		void *p = take(2000);
		memset(p, 1, 2000);
	}
	/* Pairs from top: a small chunk filled to its last usable byte, then a chunk for the bins. */
	size_t first = n_ptrs;
	for (size_t i = 0; i < 700; i++) {
		take_filled(24 + (i % 7) * 16);
		take_filled(0x4f0);
	}
	take(100); /* guard against top */
	for (size_t i = 0; i < 20000; i += 3)
		drop(i);
	for (size_t i = first + 1; i < first + 1400; i += 2)
		drop(i);
	/* Large requests sort the unsorted chunks into their (large) bins and consolidate
	 * fastbins: both happen before the small chunks go to tcache (7 a size) and fastbins. */
	take(3000);
	memset(take(8 << 20), 2, 8 << 20);
	for (size_t i = first; i < first + 1400; i += 2)
		drop(i);
}

static void build_trimmed(void)
{
	for (size_t i = 0; i < 3000; i++)
		take(i % 10 == 0 ? 20000 : 200);
	for (size_t i = 0; i < n_ptrs; i += 10)
		drop(i); /* 20000-byte holes */
	for (size_t i = n_ptrs / 2; i < n_ptrs; i++)
		drop(i); /* the upper half goes back to top */
	malloc_trim(0);
}

/* Threads: each owns an arena; they build their heaps, then block on a pipe forever. */
#define N_THREADS 8
static int block_pipe[2];
static pthread_barrier_t built;

static void *thread_main(void *arg)
{
	size_t id = (size_t)arg;
	void *mine[4000];
	size_t n = 0;
	if (id == 0) {
		/* > 64 MiB in 48 KiB chunks (below the mmap threshold): several heaps. */
		static void *big[1700];
		for (size_t i = 0; i < 1700; i++) {
			big[i] = malloc(48 * 1024);
			if (big[i])
				memset(big[i], 0x33, 48 * 1024);
		}
		for (size_t i = 0; i < 1700; i += 3) {
			if (i > 1650)
				break;
			free(big[i]);
			big[i] = NULL;
		}
	}
	for (size_t i = 0; i < 4000; i++) {
		mine[n] = malloc(16 + ((i * 37 + id * 11) % 700));
		if (mine[n])
			memset(mine[n], 0x11, 16);
		n++;
	}
	for (size_t i = id % 3; i < n; i += 3 + id % 2) {
		free(mine[i]);
		mine[i] = NULL;
	}
	pthread_barrier_wait(&built);
	char c;
	for (;;) {
		ssize_t r = read(block_pipe[0], &c, 1);
		if (r <= 0 && errno != EINTR)
			pause();
	}
	return NULL;
}

static size_t build_threads(void)
{
	if (pipe(block_pipe) != 0)
		_exit(3);
	pthread_barrier_init(&built, NULL, N_THREADS + 1);
	build_kth(5, 3000);
	pthread_t th[N_THREADS];
	for (size_t i = 0; i < N_THREADS; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)i) != 0)
			_exit(3);
	pthread_barrier_wait(&built);
	return N_THREADS;
}

/* Allocation churn: a ring of live blocks, one replaced per step. */
static void churn_step(void **ring, size_t n, uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	size_t i = (size_t)(*x % n);
	free(ring[i]);
	ring[i] = malloc(16 + (size_t)(*x >> 20) % 2000);
	if (ring[i])
		*(volatile char *)ring[i] = 1;
}

static void *churn_main(void *arg)
{
	void *ring[512] = { 0 };
	uint64_t x = 88172645463325252ULL + (uintptr_t)arg;
	for (;;)
		churn_step(ring, 512, &x);
	return NULL;
}

static void build_churn(void)
{
	pthread_t th;
	for (size_t i = 0; i < 2; i++)
		if (pthread_create(&th, NULL, churn_main, (void *)i) != 0)
			_exit(3);
}

/* Single-threaded churn; stdin is polled between rounds (a blocking read would stop it). */
static void run_churn1(void)
{
	void *ring[512] = { 0 };
	uint64_t x = 88172645463325252ULL;
	int fl = fcntl(0, F_GETFL);
	fcntl(0, F_SETFL, fl | O_NONBLOCK);
	md_say("ready\n");
	char buf[64];
	size_t have = 0;
	for (;;) {
		for (int k = 0; k < 20000; k++)
			churn_step(ring, 512, &x);
		ssize_t r = read(0, buf + have, sizeof(buf) - 1 - have);
		if (r == 0)
			_exit(0);
		if (r > 0) {
			have += (size_t)r;
			buf[have] = 0;
			if (strstr(buf, "quit"))
				_exit(0);
			if (have > 32)
				have = 0;
		}
	}
}

/* ---------- the heaps real systems make ---------- */

/* Lines of /proc/self/maps naming [heap], read without stdio. */
static unsigned heap_vmas(void)
{
	static char buf[1 << 16];
	if (!md_slurp("/proc/self/maps", buf, sizeof(buf)))
		return 0;
	unsigned count = 0;
	for (char *p = buf; (p = strstr(p, "[heap]")) != NULL; p += 6)
		count++;
	return count;
}

/* Free ptrs[from, to): a run of free pages inside the heap, for malloc_trim to release. */
static void drop_run(size_t from, size_t to)
{
	for (size_t i = from; i < to && i < n_ptrs; i++)
		drop(i);
}

static void build_holes(void)
{
	build_kth(3, 60000);
	drop_run(10000, 20000);
	drop_run(30000, 40000);
}

/* Fork; the parent waits for the child (and dies with the test), the child goes on. */
static void fork_and_wait(void)
{
	pid_t child = fork();
	if (child < 0)
		_exit(3);
	if (child > 0) {
		int status;
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* The child grows its heap after the fork. */
static void build_forkgrow(void)
{
	build_kth(3, 20000);
	fork_and_wait();
	for (size_t i = 0; i < 30000; i++)
		take(40 + (i * 136) % 3000);
	for (size_t i = 20000; i < n_ptrs; i += 4)
		drop(i);
	drop_run(15000, 30000); /* parent's VMA into the child's own */
	md_say("pid %d\n", (int)getpid());
}

/* The page after the one holding ptrs[i]. */
static uintptr_t page_after(size_t i)
{
	return ((uintptr_t)ptrs[i] + 4096) & ~(uintptr_t)4095;
}

static void build_split(void)
{
	build_kth(3, 20000);
	/* A live chunk holding whole pages, never written again: its middle page goes read-only. */
	uintptr_t ro = ((uintptr_t)take(60000) + 8192) & ~(uintptr_t)4095;
	/* 6 MiB from top (bigger than any kth hole): a run of it freed across a split. */
	size_t first = n_ptrs;
	for (size_t i = 0; i < 3000; i++)
		take(2000);
	if (madvise((void *)page_after(first + 1500), 2 * 4096, MADV_HUGEPAGE) != 0)
		md_say("madvise failed %d\n", errno);
	if (mlock((void *)page_after(first + 2500), 4096) != 0)
		md_say("mlock failed %d\n", errno);
	if (mprotect((void *)ro, 4096, PROT_READ) != 0)
		md_say("mprotect failed %d\n", errno);
	drop_run(first + 500, first + 2000);
}

/* brk cannot grow into a mapping (nor the page below one): glibc falls back to mmapped
 * segments of at least 1 MiB, marks the main arena non-contiguous and fences each old top. */
static void build_noncontig(void)
{
	build_kth(3, 2000);
	uintptr_t brk_end = ((uintptr_t)sbrk(0) + 4095) & ~(uintptr_t)4095;
	void *block = mmap((void *)brk_end, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	md_say("brk_blocked %d\n", block == (void *)brk_end);
	for (size_t i = 0; i < 30000; i++)
		take(16 + (i * 104) % 1025);
	for (size_t i = 2000; i < n_ptrs; i += 3)
		drop(i);
	drop_run(10000, 16000); /* over several segments */
	take(1500);             /* consolidates the fastbin chunks of the run */
}

static void build_mmapmix(void)
{
	build_kth(3, 2000);
	for (size_t i = 0; i < 8; i++) {
		size_t foreign = i % 3 == 2 ? (1u << 20) : (i * 5 + 3) * 4096;
		char *f = mmap(NULL, foreign, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (f == MAP_FAILED)
			_exit(3);
		memset(f, 0x5a, foreign);
		take(200000 + i * 4096);
	}
}

static void build_hugezero(void)
{
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	build_kth(3, 20000);
	size_t n = 30u << 20;
	char *p = malloc(n);
	if (!p)
		_exit(3);
	if (n_ptrs < MAX_PTRS)
		ptrs[n_ptrs++] = p;
	take(100); /* guard against top */
	/* The whole [heap] VMA (one VMA still, as under THP "always"): reading the untouched
	 * aligned 2 MiB ranges of the big chunk maps the huge zero page there. */
	size_t i0 = 0;
	while (i0 < n_ptrs && !ptrs[i0])
		i0++;
	uintptr_t lo = ((uintptr_t)ptrs[i0] - 16) & ~(uintptr_t)4095;
	uintptr_t hi = ((uintptr_t)sbrk(0) + 4095) & ~(uintptr_t)4095;
	if (madvise((void *)lo, hi - lo, MADV_HUGEPAGE) != 0)
		md_say("madvise failed %d\n", errno);
	volatile char sum = 0;
	for (size_t i = 0; i < n; i += 4096)
		sum += p[i];
	md_say("hugezero_rss_anon %llu\n", md_proc_field("/proc/self/status", "RssAnon"));
}

static void build_hugezerofork(void)
{
	build_hugezero();
	fork_and_wait();
	md_say("pid %d\n", (int)getpid());
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static void build_swap(void)
{
	build_kth(3, 20000);
	size_t first = n_ptrs;
	for (size_t i = 0; i < 4000; i++)
		take(2000); /* bigger than any kth hole: contiguous, from top */
	for (size_t i = 0; i < 20000; i++)
		take(16 + (i * 104) % 1025);
	drop_run(first + 9000, first + 19000);
	take(1500); /* a large-bin request consolidates the fastbin chunks of the run */
	uintptr_t lo = page_after(first + 500), hi = page_after(first + 3500) - 4096;
	/* And the heap's first page: the tcache struct, the first chunk. */
	uintptr_t heap0 = ((uintptr_t)sbrk(0) - mallinfo2().arena) & ~(uintptr_t)4095;
	if (madvise((void *)lo, hi - lo, MADV_PAGEOUT) != 0 || madvise((void *)heap0, 4096, MADV_PAGEOUT) != 0)
		md_say("madvise failed %d\n", errno);
	md_say("pageout_bytes %llu\n", (unsigned long long)(hi - lo + 4096));
	md_say("swapped_bytes %llu\n", md_proc_field("/proc/self/status", "VmSwap"));
}

/* Fastbins in several sizes (the tcache bins full first), then one live chunk before them
 * gets a wild size word. */
static void build_smash(void)
{
	build_kth(3, 20000);
	size_t first = n_ptrs;
	for (size_t i = 0; i < 2000; i++)
		take(16 + (i % 7) * 16);
	take(100); /* guard against top */
	for (size_t i = first; i < first + 2000; i += 2)
		drop(i);
	/* The victim: a live chunk in the middle of the kth part. */
	size_t v = 10001;
	while (v < first && !ptrs[v])
		v++;
	size_t *word = (size_t *)ptrs[v] - 1;
	md_say("smashed 0x%lx\n", (unsigned long)(word - 1));
	*word = 0x4141414141414141ULL;
	ptrs[v] = NULL; /* no longer a chunk the program can describe or free */
}

static void build_large(void)
{
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	for (int i = 0; i < 400; i++)
		take((64u << 10) + rng() % (192u << 10));
	for (size_t i = 0; i < n_ptrs; i += 3)
		drop(i);
}

static uint64_t rss_bytes(void)
{
	return md_proc_field("/proc/self/smaps_rollup", "Rss");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "kth";
	size_t threads = 0;
	if (strcmp(mode, "sizes") == 0)
		build_sizes();
	else if (strcmp(mode, "kth") == 0)
		build_kth(argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 3, 20000);
	else if (strcmp(mode, "random") == 0)
		build_random();
	else if (strcmp(mode, "threads") == 0)
		threads = build_threads();
	else if (strcmp(mode, "mmap") == 0)
		build_mmap();
	else if (strcmp(mode, "tcache") == 0)
		build_tcache();
	else if (strcmp(mode, "trimmed") == 0)
		build_trimmed();
	else if (strcmp(mode, "fill") == 0)
		build_fill();
	else if (strcmp(mode, "churn") == 0)
		build_churn();
	else if (strcmp(mode, "forkgrow") == 0)
		build_forkgrow();
	else if (strcmp(mode, "split") == 0)
		build_split();
	else if (strcmp(mode, "holes") == 0)
		build_holes();
	else if (strcmp(mode, "noncontig") == 0)
		build_noncontig();
	else if (strcmp(mode, "mmapmix") == 0)
		build_mmapmix();
	else if (strcmp(mode, "hugezero") == 0)
		build_hugezero();
	else if (strcmp(mode, "hugezerofork") == 0)
		build_hugezerofork();
	else if (strcmp(mode, "swap") == 0)
		build_swap();
	else if (strcmp(mode, "smash") == 0)
		build_smash();
	else if (strcmp(mode, "large") == 0)
		build_large();
	else if (strcmp(mode, "churn1") == 0) {
		print_mallinfo("");
		md_say("threads 0\n");
		run_churn1();
	} else if (strcmp(mode, "empty") != 0) {
		md_say("unknown mode %s\n", mode);
		return 2;
	}
	print_mallinfo("");
	/* The histogram reads every chunk header the program holds: not for a smashed heap, nor
	 * for one partly swapped out (it would swap it back in). */
	if (!threads && strcmp(mode, "churn") != 0 && strcmp(mode, "smash") != 0 && strcmp(mode, "swap") != 0)
		print_histogram();
	md_say("heap_vmas %u\n", heap_vmas());
	md_say("threads %zu\n", threads);
	md_say("ready\n");

	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "trim") == 0) {
			(void)rss_bytes(); /* fault in the code paths before measuring */
			uint64_t anon0 = md_proc_field("/proc/self/status", "RssAnon");
			uint64_t rss0 = rss_bytes();
			malloc_trim(0);
			uint64_t rss1 = rss_bytes();
			uint64_t anon1 = md_proc_field("/proc/self/status", "RssAnon");
			md_say("trim_drop_pages %lld\n", (long long)(rss0 - rss1) / 4096);
			md_say("trim_drop_anon_pages %lld\n", (long long)(anon0 - anon1) / 4096);
			print_mallinfo("after.");
			md_say("trimmed\n");
		} else if (strcmp(cmd, "info") == 0) {
			print_mallinfo("");
			md_say("info done\n");
		} else if (strcmp(cmd, "quit") == 0) {
			break;
		}
	}
	_exit(0);
}
