/* gperftools tcmalloc ground truth (issue 15): builds a known heap in several threads, prints
 * tcmalloc's own figures (MallocExtension_GetNumericProperty) and "ready", then waits.
 * Built linked against libtcmalloc_minimal (tcmalloc_truth), libtcmalloc (tcmalloc_truth_full),
 * against nothing (tcmalloc_truth_plain, to be run with LD_PRELOAD) and statically against
 * libtcmalloc_minimal.a (tcmalloc_truth_static): the MallocExtension functions are weak
 * references, resolved at load time from whichever tcmalloc is there (dlsym as the fallback).
 * Arguments: none (the threaded heap), "small" (1/40 of it: the fuzz seed), "million" (1M
 * objects, 3/4 freed: the panel program), or a
 * damage mode (see corrupt()) applied after the truth is printed: "bad_addr 0x..." names the
 * address the finding must carry.
 * SIGUSR1 -> Rss before, MallocExtension_ReleaseFreeMemory(), Rss after (smaps_rollup):
 *            "release_drop_bytes N" (the release "on a signal" of issue 15; see wait_loop()).
 * Commands on stdin:
 *   quit    -> _exit(0)
 * Nothing allocates after the truth is measured: workers block in read(), output goes through
 * md_say (write(2) from a static buffer). */
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "target_common.h"

extern int MallocExtension_GetNumericProperty(const char *property, size_t *value) __attribute__((weak));
extern void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));
extern void *tc_malloc(size_t size) __attribute__((weak));

#define N_WORKERS 3
#define N_SMALL 20000
#define N_LARGE 60
#define N_MILLION 1000000

static void *worker_small[N_WORKERS + 1][N_SMALL];
static void *worker_large[N_WORKERS + 1][N_LARGE];
static void **million;
static unsigned n_small = N_SMALL, n_large = N_LARGE; /* "small": 1/40 of it, for the fuzz seed */
static pthread_barrier_t built;
static int block_pipe[2]; /* never written: workers park in read() keeping their thread caches */

static volatile sig_atomic_t release_requested;
static sigset_t wait_mask; /* the main thread's mask while it waits: SIGUSR1 let in */

static int (*get_property)(const char *, size_t *);
static void (*release_free)(void);

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void die(const char *what)
{
	md_say("error %s\n", what);
	_exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die("malloc");
	memset(p, 0x5a, n < 4096 ? n : 4096); /* touch it: resident */
	return p;
}

/* One thread's share: small objects of many classes, a few large spans; 3/4 of the small and
 * half of the large freed again, in an order that leaves partly used spans. */
static void build(unsigned k)
{
	static const size_t sizes[] = {8, 16, 24, 40, 64, 100, 128, 200, 256, 500, 1000, 1024, 2000, 4096, 7000, 12000, 30000};
	uint64_t s = 0x9e3779b97f4a7c15ULL * (k + 1);
	for (unsigned i = 0; i < n_small; i++)
		worker_small[k][i] = xmalloc(sizes[rng_next(&s) % (sizeof(sizes) / sizeof(sizes[0]))]);
	for (unsigned i = 0; i < n_large; i++)
		worker_large[k][i] = xmalloc(300000 + (rng_next(&s) % 16) * 65536);
	for (unsigned i = 0; i < n_small; i++)
		if (i % 4 != 0) {
			free(worker_small[k][i]);
			worker_small[k][i] = NULL;
		}
	for (unsigned i = 0; i < n_large; i += 2) {
		free(worker_large[k][i]);
		worker_large[k][i] = NULL;
	}
}

static void *worker(void *arg)
{
	unsigned k = (unsigned)(uintptr_t)arg;
	build(k);
	pthread_barrier_wait(&built);
	char c;
	while (read(block_pipe[0], &c, 1) < 0)
		;
	return NULL;
}

static unsigned long long prop(const char *name)
{
	size_t v = 0;
	if (!get_property || !get_property(name, &v))
		die(name);
	return v;
}

static void print_truth(void)
{
	static const struct {
		const char *key, *property;
	} props[] = {
		{"current_allocated_bytes", "generic.current_allocated_bytes"},
		{"heap_size", "generic.heap_size"},
		{"pageheap_free_bytes", "tcmalloc.pageheap_free_bytes"},
		{"pageheap_unmapped_bytes", "tcmalloc.pageheap_unmapped_bytes"},
		{"central_cache_free_bytes", "tcmalloc.central_cache_free_bytes"},
		{"transfer_cache_free_bytes", "tcmalloc.transfer_cache_free_bytes"},
		{"thread_cache_free_bytes", "tcmalloc.thread_cache_free_bytes"},
	};
	unsigned long long v[sizeof(props) / sizeof(props[0])];
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
		v[i] = prop(props[i].property);
	for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++)
		md_say("%s %llu\n", props[i].key, v[i]);
}

/* ---- damage modes: tcmalloc 2.10's own structures (docs/tcmalloc.md offsets) ---- */

static uint64_t pageheap_base(void)
{
	void *lock = dlsym(RTLD_DEFAULT, "_ZN8tcmalloc6Static14pageheap_lock_E");
	if (!lock)
		die("no pageheap_lock_ symbol");
	return (uint64_t)(uintptr_t)lock - 0x1aa1e8;
}

static uint64_t *pagemap_slot(uint64_t ph, uint64_t addr)
{
	uint64_t p = addr >> 13;
	uint64_t *root = (uint64_t *)(uintptr_t)(ph + 0x80000);
	uint64_t *leaf = (uint64_t *)(uintptr_t)root[p >> 18];
	if (!leaf)
		die("no page-map leaf");
	return &leaf[p & 0x3ffff];
}

static void corrupt(const char *mode)
{
	uint64_t ph = pageheap_base(), bad = 0;
	void *big = worker_large[N_WORKERS][1]; /* a live large span of the main thread */
	if (strcmp(mode, "thread_list") == 0) {
		/* The head of the main thread's 64-byte list links to unmapped memory. */
		void *(*volatile do_malloc)(size_t) = malloc; /* not elided as a malloc/free pair */
		void (*volatile do_free)(void *) = free;
		void *p = do_malloc(64);
		do_free(p);
		bad = 0x10000000000ULL - 0x40;
		*(uint64_t *)p = bad;
	} else if (strcmp(mode, "pagemap_unmapped") == 0) {
		*pagemap_slot(ph, (uint64_t)(uintptr_t)big) = 0xdead0000ULL;
		bad = (uint64_t)(uintptr_t)big;
	} else if (strcmp(mode, "span_length") == 0) {
		uint64_t span = *pagemap_slot(ph, (uint64_t)(uintptr_t)big);
		*(uint64_t *)(uintptr_t)(span + 8) = 1ULL << 40;
		bad = span;
	} else if (strcmp(mode, "freelist_cycle") == 0) {
		for (unsigned i = 0; i < 128 && !bad; i++) {
			uint64_t head = ph + 0x180068 + i * 96, first = *(uint64_t *)(uintptr_t)(head + 16);
			if (first != head) {
				*(uint64_t *)(uintptr_t)(first + 16) = first;
				bad = first;
			}
		}
	} else if (strcmp(mode, "central_objects") == 0) {
		for (unsigned cl = 1; cl < 86 && !bad; cl++) {
			uint64_t cfl = ph + 0x183160 + cl * 1216, head = cfl + 64, first = *(uint64_t *)(uintptr_t)(head + 16);
			if (first != head && *(uint64_t *)(uintptr_t)(first + 32)) {
				bad = 0x10000000000ULL - 0x80;
				*(uint64_t *)(uintptr_t)(first + 32) = bad;
			}
		}
	} else if (strcmp(mode, "thread_heaps_cycle") == 0) {
		uint64_t *heaps = dlsym(RTLD_DEFAULT, "_ZN8tcmalloc11ThreadCache13thread_heaps_E");
		if (!heaps || !*heaps)
			die("no thread_heaps_");
		bad = *heaps;
		*(uint64_t *)(uintptr_t)(bad + 4144) = bad;
	} else if (strcmp(mode, "thread_list_cycle") == 0) {
		/* Two 64-byte objects freed by the main thread; the newer links to itself. */
		void *(*volatile do_malloc)(size_t) = malloc;
		void (*volatile do_free)(void *) = free;
		void *p = do_malloc(64), *q = do_malloc(64);
		do_free(q);
		do_free(p);
		*(uint64_t *)p = (uint64_t)(uintptr_t)p;
		bad = (uint64_t)(uintptr_t)p;
	} else if (strcmp(mode, "pagemap_root_garbage") == 0) {
		/* Root slot 0 (addresses below 2 GiB, where a PIE process maps nothing) names a leaf. */
		uint64_t *root = (uint64_t *)(uintptr_t)(ph + 0x80000);
		uint64_t leaf = 0;
		for (unsigned i = 0; i < (1u << 17) && !leaf; i++)
			leaf = root[i];
		if (root[0] || !leaf)
			die("root slot 0 in use");
		root[0] = leaf;
		bad = leaf;
	} else if (strcmp(mode, "lock_held") == 0) {
		/* The page-heap SpinLock looks held forever (nothing allocates any more). */
		bad = ph + 0x1aa1e8;
		*(volatile uint32_t *)(uintptr_t)bad = 1;
	} else {
		die("unknown mode");
	}
	if (!bad)
		die("nothing to damage");
	md_say("bad_addr 0x%llx\n", (unsigned long long)bad);
}

/* The handler only sets a flag: ReleaseFreeMemory() takes tcmalloc's page-heap lock and
 * md_proc_field() uses a static buffer, neither is async-signal-safe. */
static void on_sigusr1(int sig)
{
	(void)sig;
	release_requested = 1;
}

/* SIGUSR1 is blocked in every thread (set before the workers exist, they inherit it) except in
 * the main thread's ppoll(), which lets it in atomically: the handler runs there, ppoll()
 * returns EINTR and the flag is seen at once, with no window where a signal set it just after
 * the check and the wait then sleeps on. Nothing here allocates. */
static void wait_loop(void)
{
	char cmd[64];
	for (;;) {
		if (release_requested) {
			release_requested = 0;
			unsigned long long before = md_proc_field("/proc/self/smaps_rollup", "Rss");
			release_free();
			unsigned long long after = md_proc_field("/proc/self/smaps_rollup", "Rss");
			md_say("release_drop_bytes %lld\n", (long long)before - (long long)after);
		}
		struct pollfd in = { .fd = 0, .events = POLLIN };
		if (ppoll(&in, 1, NULL, &wait_mask) < 0) {
			if (errno == EINTR)
				continue;
			die("ppoll");
		}
		if (!md_read_command(cmd, sizeof(cmd)) || strcmp(cmd, "quit") == 0)
			_exit(0);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	sigemptyset(&sa.sa_mask);
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigprocmask(SIG_BLOCK, &usr1, &wait_mask) < 0)
		die("sigaction");
	sigdelset(&wait_mask, SIGUSR1);
	const char *mode = argc > 1 ? argv[1] : "heap";
	get_property = MallocExtension_GetNumericProperty;
	release_free = MallocExtension_ReleaseFreeMemory;
	if (!get_property)
		get_property = (int (*)(const char *, size_t *))dlsym(RTLD_DEFAULT, "MallocExtension_GetNumericProperty");
	if (!release_free)
		release_free = (void (*)(void))dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory");
	if (!get_property || !release_free)
		die("tcmalloc is not loaded");
	if (pipe(block_pipe) < 0)
		die("pipe");
	if (strcmp(mode, "small") == 0) {
		n_small = N_SMALL / 40;
		n_large = 4;
	}
	if (strcmp(mode, "million") == 0) {
		static const size_t sizes[] = {16, 32, 48, 64, 100, 128, 200, 256};
		uint64_t s = 42;
		million = xmalloc(N_MILLION * sizeof(void *));
		for (unsigned i = 0; i < N_MILLION; i++)
			million[i] = xmalloc(sizes[rng_next(&s) % 8]);
		for (unsigned i = 0; i < N_MILLION; i++)
			if (i % 4 != 0)
				free(million[i]);
	} else {
		pthread_barrier_init(&built, NULL, N_WORKERS + 1);
		pthread_t th[N_WORKERS];
		for (unsigned k = 0; k < N_WORKERS; k++)
			if (pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)k))
				die("pthread_create");
		build(N_WORKERS);
		pthread_barrier_wait(&built);
		/* Some free spans go back to the system (returned), then more frees make normal ones. */
		release_free();
		for (unsigned i = 1; i < n_large; i += 4) {
			free(worker_large[N_WORKERS][i + 2 < n_large ? i + 2 : i]);
			worker_large[N_WORKERS][i + 2 < n_large ? i + 2 : i] = NULL;
		}
		for (unsigned i = 0; i < n_small; i += 8) {
			free(worker_small[N_WORKERS][i]);
			worker_small[N_WORKERS][i] = NULL;
		}
	}
	print_truth();
	if (strcmp(mode, "heap") != 0 && strcmp(mode, "million") != 0 && strcmp(mode, "small") != 0)
		corrupt(mode);
	md_say("ready\n");
	wait_loop();
}
