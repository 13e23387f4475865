/* A target that checksums its own memory on command, for "an attach never writes to the target".
 * It builds a glibc heap (main arena + one thread arena) and keeps two threads blocked in
 * pause(), then answers:
 *   "hash" -> "hash rw <hex> code <hex> bytes <n> maps <m>": FNV-1a of every writable private
 *             mapping (rw) and of every other readable private mapping (code: text and rodata,
 *             which PTRACE_POKETEXT could change), in address order;
 *   "poke" -> "poked": changes one byte of a heap chunk (a write the hash must notice);
 *   "ping" -> "pong", "quit" or EOF -> exit.
 * Hashing must not change what it hashes: it never allocates, reads /proc/self/maps into a
 * scratch mapping made at start-up that it skips, skips md_say's output buffer, and on its own
 * stack hashes only what lies above its frame (main's frame and up, identical for every "hash"
 * command). [vvar] changes with the clock and is skipped, and so is each thread's rseq area:
 * the kernel itself rewrites its cpu_id whenever the thread comes back to user space on another
 * CPU, which is bound to happen after being stopped. */
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/rseq.h>

#include "target_common.h"

#define SCRATCH_SIZE (1 << 20)
#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static char *scratch; /* /proc/self/maps text: outside the hash */
static unsigned char *poke_target;

/* Ranges the hash leaves out: md_say's buffer, the caller's result, the rseq areas. */
#define MAX_SKIP 8
static uintptr_t skip[MAX_SKIP][2];
static int n_skip;

static void add_skip(uintptr_t start, size_t len)
{
	if (n_skip == MAX_SKIP || len == 0)
		return;
	int i = n_skip++;
	for (; i > 0 && skip[i - 1][0] > start; i--) {
		skip[i][0] = skip[i - 1][0];
		skip[i][1] = skip[i - 1][1];
	}
	skip[i][0] = start;
	skip[i][1] = start + len;
}

/* __rseq_size is the feature size glibc uses (20 in 2.36), but the area registered with the
 * kernel is a whole struct rseq, and a newer kernel writes its later fields (mm_cid) too. */
static void skip_own_rseq(void)
{
	if (__rseq_size > 0)
		add_skip((uintptr_t)__builtin_thread_pointer() + (uintptr_t)__rseq_offset,
			 __rseq_size > sizeof(struct rseq) ? __rseq_size : sizeof(struct rseq));
}

static void *blocked_thread(void *arg)
{
	/* A chunk from this thread's own arena, so that the glibc walk meets a second arena. */
	void *p = malloc(3000);
	memset(p, 0x5a, 3000);
	skip_own_rseq(); /* before it says it is started: main reads skip[] only after that */
	__atomic_store_n((void **)arg, p, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return NULL;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, const unsigned char *end)
{
	for (; p + 8 <= end; p += 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * FNV_PRIME;
	}
	for (; p < end; p++)
		h = (h ^ *p) * FNV_PRIME;
	return h;
}

/* Hash [start, end) leaving out the ranges of skip[]. */
static uint64_t fnv_skip(uint64_t h, uintptr_t start, uintptr_t end)
{
	for (int i = 0; i < n_skip && start < end; i++) {
		if (skip[i][1] <= start || skip[i][0] >= end)
			continue;
		if (skip[i][0] > start)
			h = fnv(h, (const unsigned char *)start, (const unsigned char *)skip[i][0]);
		start = skip[i][1];
	}
	if (start < end)
		h = fnv(h, (const unsigned char *)start, (const unsigned char *)end);
	return h;
}

struct sums {
	uint64_t rw, code, bytes, maps;
};

static __attribute__((noinline)) void hash_memory(struct sums *out, bool detail)
{
	/* Everything from here down the stack is this call's own; the caller's frame is above. */
	uintptr_t frame = (uintptr_t)__builtin_frame_address(0) + 16;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, scratch + len, SCRATCH_SIZE - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	scratch[len] = 0;
	uint64_t rw = FNV_OFFSET, code = FNV_OFFSET, bytes = 0, maps = 0;
	for (char *line = scratch; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		char *end;
		uintptr_t s = strtoul(line, &end, 16);
		uintptr_t e = *end == '-' ? strtoul(end + 1, &end, 16) : 0;
		const char *perms = end + 1;
		/* The path is the sixth field. */
		const char *name = perms;
		for (int field = 0; field < 4 && name; field++) {
			name = strchr(name, ' ');
			while (name && *name == ' ')
				name++;
		}
		if (!name)
			name = "";
		bool readable = perms[0] == 'r', writable = perms[1] == 'w', private_map = perms[3] == 'p';
		bool ignored = !readable || !private_map || s == (uintptr_t)scratch || strncmp(name, "[vvar", 5) == 0 ||
			    strcmp(name, "[vsyscall]") == 0;
		if (!ignored) {
			if (strcmp(name, "[stack]") == 0 && frame > s && frame < e)
				s = frame;
			uint64_t h = writable ? fnv_skip(FNV_OFFSET, s, e)
					      : fnv(FNV_OFFSET, (const unsigned char *)s, (const unsigned char *)e);
			if (writable)
				rw = (rw ^ h) * FNV_PRIME;
			else
				code = (code ^ h) * FNV_PRIME;
			if (detail)
				md_say("map %lx-%lx %.4s %016llx %s\n", (unsigned long)s, (unsigned long)e, perms,
				       (unsigned long long)h, name);
			bytes += e - s;
			maps++;
		}
		line = nl ? nl + 1 : line + strlen(line);
	}
	out->rw = rw;
	out->code = code;
	out->bytes = bytes;
	out->maps = maps;
}

int main(void)
{
	scratch = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch == MAP_FAILED)
		return 1;
	/* A heap with live and free chunks of several sizes, tcache and bins included. */
	static void *chunks[400];
	for (int i = 0; i < 400; i++) {
		chunks[i] = malloc((size_t)(16 + (i * 37) % 2000));
		memset(chunks[i], i & 0xff, 16);
	}
	for (int i = 0; i < 400; i += 3) {
		free(chunks[i]);
		chunks[i] = NULL;
	}
	poke_target = malloc(100);
	memset(poke_target, 0x11, 100);
	static void *thread_chunks[2];
	for (int i = 0; i < 2; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, blocked_thread, &thread_chunks[i]) != 0)
			return 1;
		/* One at a time: each adds to skip[] unlocked. */
		while (!__atomic_load_n(&thread_chunks[i], __ATOMIC_SEQ_CST))
			usleep(1000);
	}
	usleep(20000); /* let both threads reach pause() */
	struct sums sums;
	/* md_say's buffer holds the previous answer, sums the previous figures: both change
	 * between two "hash" commands without anyone else touching the process. */
	add_skip((uintptr_t)md_out_buf, sizeof(md_out_buf));
	add_skip((uintptr_t)&sums, sizeof(sums));
	skip_own_rseq();
	hash_memory(&sums, false); /* binds every function it calls before anyone compares */
	md_say("pid %d\n", (int)getpid());
	md_say("threads 3\n");
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "poke") == 0) {
			poke_target[50]++;
			md_say("poked\n");
		}
		if (strcmp(cmd, "hash") == 0 || strcmp(cmd, "detail") == 0) {
			errno = 0;
			hash_memory(&sums, cmd[0] == 'd');
			md_say("hash rw %016llx code %016llx bytes %llu maps %llu\n", (unsigned long long)sums.rw,
			       (unsigned long long)sums.code, (unsigned long long)sums.bytes,
			       (unsigned long long)sums.maps);
		}
	}
	return 0;
}
