/* A target that exits by itself DELAY ms after printing "ready" (argv[1], default 0), with T extra
 * blocked threads (argv[2], default 0), for "the target exits during the attach". The main
 * thread spins on the monotonic clock rather than sleeping, so the exit_group also lands right
 * after a resume when the deadline passed while the process was stopped.
 * It reads no commands: it exits with status 0 once the delay is over. */
#include <pthread.h>
#include <time.h>

#include "target_common.h"

static void *blocked_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long delay_ms = argc > 1 ? atol(argv[1]) : 0;
	int threads = argc > 2 ? atoi(argv[2]) : 0;
	if (delay_ms < 0 || threads < 0 || threads > 1024) {
		fprintf(stderr, "usage: exiter [DELAY_MS [THREADS]]\n");
		return 2;
	}
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		int err = pthread_create(&t, NULL, blocked_thread, NULL);
		if (err) {
			fprintf(stderr, "exiter: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	md_say("pid %d\n", (int)getpid());
	md_say("threads %d\n", threads + 1);
	md_say("delay_ms %ld\n", delay_ms);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	long long deadline = now_ns() + delay_ms * 1000000LL;
	if (delay_ms > 50) {
		/* Long delays: sleep most of it, answering nothing; spin the last stretch. */
		struct timespec ts = {(delay_ms - 50) / 1000, ((delay_ms - 50) % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	while (now_ns() < deadline)
		;
	(void)md_read_command; /* commands are not read: the exit is timed */
	_exit(0);
}
