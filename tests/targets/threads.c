/* A target with N extra threads (argv[1], default 64) blocked on a condition variable, of which
 * the last B (argv[2], default 0) spin instead, so that an attach meets both sleeping and running
 * threads. Prints "threads <N+1>" (every task, main included), "ready", then waits on stdin.
 * Commands: "ping" -> "pong", "quit" or EOF -> exit. */
#include <pthread.h>

#include "target_common.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int started;
static volatile int quitting;

static void *blocked_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	started++;
	pthread_cond_broadcast(&wake);
	while (!quitting)
		pthread_cond_wait(&wake, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

static void *spinning_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	started++;
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&lock);
	/* Spins on a volatile: a thread that is running when the attach interrupts it. */
	while (!quitting)
		;
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 64;
	int busy = argc > 2 ? atoi(argv[2]) : 0;
	if (n < 0 || n > 4096 || busy < 0 || busy > n) {
		fprintf(stderr, "usage: threads [N [BUSY]]\n");
		return 2;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, i >= n - busy ? spinning_thread : blocked_thread, NULL);
		if (err) {
			fprintf(stderr, "threads: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	pthread_mutex_lock(&lock);
	while (started < n)
		pthread_cond_wait(&wake, &lock);
	pthread_mutex_unlock(&lock);

	md_say("pid %d\n", (int)getpid());
	md_say("threads %d\n", n + 1);
	md_say("busy %d\n", busy);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
	/* exit() ends every thread; no need to wake them. */
	return 0;
}
