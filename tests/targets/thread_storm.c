/* A target that never stops creating and ending threads: S spawner threads (argv[1], default 4)
 * each create workers in a loop; half of the workers are joined, half are detached and create
 * one more short-lived thread themselves, so threads appear from several parents at once while
 * an attach scans /proc/PID/task. At most MAX_LIVE workers exist at a time.
 * Commands: "ping" -> "pong", "count" -> "created <n>", "quit" or EOF -> exit. */
#include <pthread.h>
#include <sched.h>

#include "target_common.h"

#define MAX_LIVE 32

static unsigned long created;
static int live;
static pthread_attr_t detached; /* set up in main before any spawner runs */

static void *leaf_worker(void *arg)
{
	(void)arg;
	__atomic_sub_fetch(&live, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void spawn_detached(void *(*fn)(void *))
{
	pthread_t t;
	__atomic_add_fetch(&live, 1, __ATOMIC_SEQ_CST);
	if (pthread_create(&t, &detached, fn, NULL) != 0) {
		__atomic_sub_fetch(&live, 1, __ATOMIC_SEQ_CST);
		return;
	}
	__atomic_add_fetch(&created, 1, __ATOMIC_SEQ_CST);
}

static void *parent_worker(void *arg)
{
	(void)arg;
	spawn_detached(leaf_worker);
	__atomic_sub_fetch(&live, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *joined_worker(void *arg)
{
	volatile unsigned sink = 0;
	for (unsigned i = 0; i < 1000; i++)
		sink += i;
	(void)arg;
	return NULL;
}

static void *spawner(void *arg)
{
	pthread_attr_t joinable;
	pthread_attr_init(&joinable);
	pthread_attr_setstacksize(&joinable, 64 * 1024);
	(void)arg;
	for (unsigned long i = 0;; i++) {
		if (__atomic_load_n(&live, __ATOMIC_SEQ_CST) >= MAX_LIVE) {
			sched_yield();
			continue;
		}
		if (i % 2 == 0) {
			pthread_t t;
			if (pthread_create(&t, &joinable, joined_worker, NULL) == 0) {
				__atomic_add_fetch(&created, 1, __ATOMIC_SEQ_CST);
				pthread_join(t, NULL);
			}
		} else {
			spawn_detached(parent_worker);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int spawners = argc > 1 ? atoi(argv[1]) : 4;
	if (spawners < 1 || spawners > 64) {
		fprintf(stderr, "usage: thread_storm [SPAWNERS]\n");
		return 2;
	}
	pthread_attr_init(&detached);
	pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&detached, 64 * 1024);
	for (int i = 0; i < spawners; i++) {
		pthread_t t;
		int err = pthread_create(&t, NULL, spawner, NULL);
		if (err) {
			fprintf(stderr, "thread_storm: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	/* Make sure the storm is on before saying ready. */
	while (__atomic_load_n(&created, __ATOMIC_SEQ_CST) < 100)
		sched_yield();
	md_say("pid %d\n", (int)getpid());
	md_say("spawners %d\n", spawners);
	md_say("max_live %d\n", MAX_LIVE);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "count") == 0)
			md_say("created %lu\n", __atomic_load_n(&created, __ATOMIC_SEQ_CST));
	}
	/* _exit: the storm is still running; skip atexit work racing with it. */
	_exit(0);
}
