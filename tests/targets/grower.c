/* A target whose glibc heap changes in a known way over time, for the verdicts of
 * `memdissect watch`. Usage: grower MODE [TICK_MS [TICK_BYTES [CAP_BYTES]]]; every TICK_MS
 * (default 100) it moves about TICK_BYTES (default 512 KiB), until CAP_BYTES (default 64 MiB):
 *   stable  a 4 MiB heap whose chunks are freed and allocated again: nothing grows
 *   heap    keeps TICK_BYTES more of 32 KiB chunks: the live heap grows, the gap stays
 *   gap     a structural leak: chunks shrunk to 24-byte pins, leaving holes between the pins;
 *           each tick's chunks are 64 bytes larger than the last, so no later request fits the
 *           holes: RSS grows, the live heap grows by the pins only
 *   both    half of each
 *   drain   starts with 32 MiB freed but kept (fenced by a live chunk), then each tick allocates
 *           TICK_BYTES into it: the live heap grows, RSS stays, the gap shrinks
 * It prints its parameters, "ready", and then works on a poll() timer in its one thread (one
 * arena). Commands on stdin: "ticks" -> "ticks N", "quit" or EOF -> exit. */
#include <malloc.h>
#include <poll.h>
#include <time.h>

#include "target_common.h"

#define KiB 1024UL
#define MiB (1024UL * 1024)
#define PIN_SIZE 24
#define SMALL 4096
#define GROW_CHUNK (32 * KiB) /* larger than any hole of the gap mode: never fills one */
#define STABLE_CHUNKS 1024
#define CHURN 128
#define DRAIN_POOL (32 * MiB)

enum mode { STABLE, HEAP, GAP, BOTH, DRAIN };

static unsigned long grown;   /* bytes moved so far */
static unsigned long ticks;
static unsigned long big_size = 4096;
static void *stable_chunks[STABLE_CHUNKS];

static void *touch(size_t n)
{
	void *p = malloc(n);
	if (!p)
		exit(1);
	memset(p, 0x5a, n);
	return p;
}

/* Live 32 KiB chunks, never freed: the live heap grows with RSS. */
static void grow_heap(unsigned long bytes)
{
	for (unsigned long done = 0; done < bytes; done += GROW_CHUNK)
		(void)touch(GROW_CHUNK);
}

/* Holes no later request fits, each fenced by a live pin: chunks are allocated end to end, then
 * each is shrunk in place to a 24-byte pin (realloc splits off the rest as a free chunk between
 * its pin and the next chunk's pin). Pins never come out of the holes, as separate small
 * mallocs would. */
static void *volatile pin_sink;

static void grow_gap(unsigned long bytes)
{
	unsigned long n = bytes / big_size;
	if (!n)
		n = 1;
	void **bigs = malloc(n * sizeof(*bigs));
	if (!bigs)
		exit(1);
	for (unsigned long i = 0; i < n; i++)
		bigs[i] = touch(big_size);
	for (unsigned long i = 0; i < n; i++)
		pin_sink = realloc(bigs[i], PIN_SIZE);
	free(bigs);
	big_size += 64;
}

static void churn(void)
{
	static unsigned next;
	for (unsigned i = 0; i < CHURN; i++) {
		unsigned k = (next + i) % STABLE_CHUNKS;
		free(stable_chunks[k]);
		stable_chunks[k] = touch(SMALL);
	}
	next = (next + CHURN) % STABLE_CHUNKS;
}

static void tick(enum mode m, unsigned long bytes)
{
	switch (m) {
	case STABLE:
		churn();
		return;
	case HEAP:
	case DRAIN:
		grow_heap(bytes);
		break;
	case GAP:
		grow_gap(bytes);
		break;
	case BOTH:
		grow_heap(bytes / 2);
		grow_gap(bytes / 2);
		break;
	}
	grown += bytes;
	ticks++;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		md_say("usage: grower stable|heap|gap|both|drain [TICK_MS [TICK_BYTES [CAP_BYTES]]]\n");
		return 2;
	}
	static const char *const names[] = { "stable", "heap", "gap", "both", "drain" };
	int m = -1;
	for (int i = 0; i < 5; i++)
		if (strcmp(argv[1], names[i]) == 0)
			m = i;
	if (m < 0) {
		md_say("grower: unknown mode %s\n", argv[1]);
		return 2;
	}
	long tick_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	unsigned long tick_bytes = argc > 3 ? strtoul(argv[3], NULL, 10) : 512 * KiB;
	unsigned long cap = argc > 4 ? strtoul(argv[4], NULL, 10) : 64 * MiB;
	if (tick_ms <= 0)
		tick_ms = 100;

	/* the same footing for every mode: a live heap of a few MiB */
	for (unsigned i = 0; i < STABLE_CHUNKS; i++)
		stable_chunks[i] = touch(SMALL);
	if (m == DRAIN) {
		void **pool = malloc((DRAIN_POOL / SMALL) * sizeof(*pool));
		if (!pool)
			return 1;
		for (unsigned long i = 0; i < DRAIN_POOL / SMALL; i++)
			pool[i] = touch(SMALL);
		(void)touch(PIN_SIZE); /* the fence: the pool is not the top, so it is never trimmed */
		for (unsigned long i = 0; i < DRAIN_POOL / SMALL; i++)
			free(pool[i]);
		free(pool);
	}
	struct mallinfo2 mi = mallinfo2();
	md_say("pid %d\n", (int)getpid());
	md_say("mode %s\n", names[m]);
	md_say("tick_ms %ld\n", tick_ms);
	md_say("tick_bytes %lu\n", tick_bytes);
	md_say("cap_bytes %lu\n", cap);
	md_say("in_use_bytes %zu\n", mi.uordblks);
	md_say("free_bytes %zu\n", mi.fordblks);
	md_say("ready\n");

	long long next = now_ms() + tick_ms;
	char cmd[64];
	size_t cl = 0;
	for (;;) {
		long long left = next - now_ms();
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		int r = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (r < 0 && errno != EINTR)
			return 1;
		if (r > 0) {
			char c;
			ssize_t n = read(0, &c, 1);
			if (n <= 0)
				return 0; /* EOF: the test is over */
			if (c != '\n' && cl + 1 < sizeof(cmd)) {
				cmd[cl++] = c;
				continue;
			}
			cmd[cl] = 0;
			cl = 0;
			if (strcmp(cmd, "quit") == 0)
				return 0;
			if (strcmp(cmd, "ticks") == 0)
				md_say("ticks %lu\n", ticks);
			continue;
		}
		if (now_ms() >= next) {
			if (grown < cap || m == STABLE)
				tick((enum mode)m, tick_bytes);
			next += tick_ms;
			if (next < now_ms())
				next = now_ms() + tick_ms; /* stopped by an attach: no burst of catch-up ticks */
		}
	}
}
