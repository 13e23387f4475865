/* A target for long series of attaches: a glibc heap (main arena and one arena per thread), T
 * threads (argv[1], default 3) blocked in pause(), and handlers that count every SIGUSR1 and
 * SIGRTMIN the process receives, whichever thread takes it. Handlers only bump counters.
 * Commands: "count" -> "count usr1 <n> rtmin <m>", "ping" -> "pong", "quit" or EOF -> exit. */
#include <pthread.h>

#include "target_common.h"

static volatile sig_atomic_t usr1_count;
static volatile sig_atomic_t rtmin_count;
static int started;

static void on_signal(int sig)
{
	/* Both signals are blocked while either handler runs (sa_mask): no lost increment. */
	if (sig == SIGUSR1)
		usr1_count++;
	else
		rtmin_count++;
}

/* Touch the 64 KiB of stack below the caller, where the kernel puts the frames of the signals
 * this target is sent (with the xsave area, several KiB each, and deeper when one lands inside
 * stdio): otherwise the first signal a thread takes after the warm-up can fault in a stack page,
 * which the hardening suite would read as RSS that memdissect made the target grow. */
static void __attribute__((noinline)) prefault_stack(void)
{
	volatile char buf[64 * 1024];
	for (size_t i = 0; i < sizeof(buf); i += 4096)
		buf[i] = 0;
	buf[sizeof(buf) - 1] = 0;
}

static void *blocked_thread(void *arg)
{
	/* Chunks in this thread's own arena, some freed (tcache, bins), then wait forever. */
	void *keep[64];
	for (int i = 0; i < 64; i++) {
		keep[i] = malloc((size_t)(32 + i * 48));
		memset(keep[i], (int)(uintptr_t)arg, 32);
	}
	for (int i = 0; i < 64; i += 2)
		free(keep[i]);
	prefault_stack();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 3;
	if (threads < 0 || threads > 256) {
		fprintf(stderr, "usage: hard_sigload [THREADS]\n");
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaddset(&sa.sa_mask, SIGRTMIN);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_signal;
	if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGRTMIN, &sa, NULL) != 0)
		return 1;
	static void *chunks[1000];
	for (int i = 0; i < 1000; i++) {
		chunks[i] = malloc((size_t)(16 + (i * 53) % 4000));
		memset(chunks[i], 0x33, 16);
	}
	for (int i = 0; i < 1000; i += 4)
		free(chunks[i]);
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		int err = pthread_create(&t, NULL, blocked_thread, (void *)(uintptr_t)i);
		if (err) {
			fprintf(stderr, "hard_sigload: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < threads)
		usleep(1000);
	prefault_stack();
	md_say("pid %d\n", (int)getpid());
	md_say("threads %d\n", threads + 1);
	md_say("sigrtmin %d\n", SIGRTMIN);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "count") == 0)
			md_say("count usr1 %d rtmin %d\n", (int)usr1_count, (int)rtmin_count);
	}
	return 0;
}
