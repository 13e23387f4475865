/* A target whose threads never stop allocating: W workers (argv[1], default 2) malloc, realloc
 * and free blocks of random sizes from a ring of slots, pausing 100 us every 256 operations so
 * that two of them leave a 2-core machine some air. An attach stops threads inside malloc and
 * free, which drives the consistency re-stops (resume briefly, stop again) and makes the attach
 * long and many-phased: a good victim for faults injected at random moments.
 * Commands: "ping" -> "pong", "count" -> "ops <n>", "quit" or EOF -> exit. */
#include <pthread.h>
#include <time.h>

#include "target_common.h"

#define SLOTS 256

static unsigned long ops;

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
	void *slots[SLOTS] = {0};
	for (unsigned long i = 0;; i++) {
		seed = seed * 1103515245u + 12345u;
		unsigned k = (seed >> 8) % SLOTS;
		size_t size = 16 + (seed >> 16) % ((seed & 0x100) ? 70000 : 1024);
		if (!slots[k]) {
			slots[k] = malloc(size);
			if (slots[k])
				memset(slots[k], (int)k, size < 64 ? size : 64);
		} else if (seed & 0x200) {
			void *p = realloc(slots[k], size);
			if (p)
				slots[k] = p;
		} else {
			free(slots[k]);
			slots[k] = NULL;
		}
		__atomic_add_fetch(&ops, 1, __ATOMIC_RELAXED);
		if (i % 256 == 255) {
			struct timespec ts = {0, 100 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 2;
	if (workers < 1 || workers > 64) {
		fprintf(stderr, "usage: hard_churn [WORKERS]\n");
		return 2;
	}
	for (int i = 0; i < workers; i++) {
		pthread_t t;
		int err = pthread_create(&t, NULL, worker, (void *)(uintptr_t)(i + 1));
		if (err) {
			fprintf(stderr, "hard_churn: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	while (__atomic_load_n(&ops, __ATOMIC_RELAXED) < 10000)
		usleep(1000);
	md_say("pid %d\n", (int)getpid());
	md_say("threads %d\n", workers + 1);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "count") == 0)
			md_say("ops %lu\n", __atomic_load_n(&ops, __ATOMIC_RELAXED));
	}
	_exit(0); /* the workers are still allocating: no atexit work racing with them */
}
