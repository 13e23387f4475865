/* Processes in the states an attach must get right (tests/check_states.c). Each mode prints its
 * ground truth as "key value" lines, then "ready", then serves stdin ("ping" -> "pong"; EOF or
 * "quit" -> exit).
 *   vfork          a thread is a vfork parent (state D) whose child sleeps until the parent dies
 *   threads N      N threads blocked on a condition variable; prints "tid_i T" for each (the test
 *                  freezes them with the cgroup freezer)
 *   pthread_exit   the main thread ends with pthread_exit; a worker thread serves stdin
 *   clonevm        a clone(CLONE_VM) process without CLONE_THREAD mallocs and frees all the time
 *                  in the target's heap (with its own tcache disabled: it shares the TLS)
 *   exec MS        re-executes itself every MS milliseconds, forever (prints "ready" once)
 *   bigheap MIB    MIB MiB of small live chunks in the main arena, then ready */
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "target_common.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int started;

static void serve(void)
{
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	syscall(SYS_nanosleep, &ts, NULL);
}

/* ---- vfork ---- */
static pid_t parent;
static volatile pid_t vfork_tid;

static void *vfork_thread(void *arg)
{
	(void)arg;
	vfork_tid = (pid_t)syscall(SYS_gettid);
	/* The child borrows this thread's stack and memory: it may only make system calls. */
	if (vfork() == 0) {
		while (syscall(SYS_getppid) == parent)
			sleep_ms(20);
		syscall(SYS_exit, 0);
	}
	return NULL;
}

static int mode_vfork(void)
{
	parent = getpid();
	pthread_t t;
	if (pthread_create(&t, NULL, vfork_thread, NULL))
		return 1;
	/* Wait until the vfork parent sleeps in the kernel (state D). */
	for (int i = 0; i < 500; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)vfork_tid);
		int fd = vfork_tid ? open(path, O_RDONLY) : -1;
		char buf[512] = "";
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = 0;
			close(fd);
		}
		char *paren = strrchr(buf, ')');
		if (paren && paren[1] == ' ' && paren[2] == 'D')
			break;
		sleep_ms(2);
	}
	md_say("vfork_tid %d\n", (int)vfork_tid);
	md_say("ready\n");
	serve();
	_exit(0); /* the vfork parent thread cannot be joined: its child holds it */
}

/* ---- threads to freeze ---- */
static void *blocked_thread(void *arg)
{
	*(pid_t *)arg = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&lock);
	started++;
	pthread_cond_broadcast(&wake);
	for (;;)
		pthread_cond_wait(&wake, &lock);
	return NULL;
}

static int mode_threads(int n)
{
	static pid_t tids[256];
	if (n < 1 || n > 256)
		return 2;
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, blocked_thread, &tids[i]))
			return 1;
	}
	pthread_mutex_lock(&lock);
	while (started < n)
		pthread_cond_wait(&wake, &lock);
	pthread_mutex_unlock(&lock);
	md_say("threads %d\n", n + 1);
	for (int i = 0; i < n; i++)
		md_say("tid_%d %d\n", i, (int)tids[i]);
	md_say("ready\n");
	serve();
	_exit(0);
}

/* ---- pthread_exit ---- */
static void *worker_thread(void *arg)
{
	(void)arg;
	/* Wait until the main thread has ended (the leader shows Z). */
	for (int i = 0; i < 500; i++) {
		char buf[512] = "";
		int fd = open("/proc/self/stat", O_RDONLY);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = 0;
			close(fd);
		}
		char *paren = strrchr(buf, ')');
		if (paren && paren[1] == ' ' && paren[2] == 'Z')
			break;
		sleep_ms(2);
	}
	md_say("worker_tid %d\n", (int)syscall(SYS_gettid));
	md_say("ready\n");
	serve();
	exit(0);
}

static void *volatile keep[64];

static int mode_pthread_exit(void)
{
	for (int i = 0; i < 64; i++)
		keep[i] = malloc(1000 + 16 * (size_t)i);
	pthread_t t;
	if (pthread_create(&t, NULL, worker_thread, NULL))
		return 1;
	pthread_exit(NULL);
}

/* ---- clone(CLONE_VM) ---- */
static volatile unsigned long churned;

static int churn_main(void *arg)
{
	(void)arg;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	void *slots[256] = { 0 };
	for (unsigned long i = 0;; i++) {
		unsigned k = (unsigned)(i * 2654435761u) % 256;
		free(slots[k]);
		slots[k] = malloc(16 + (i * 40503u) % 3000);
		churned = i;
	}
	return 0;
}

static int mode_clonevm(void)
{
	static char stack[256 * 1024] __attribute__((aligned(16)));
	/* The child shares the TLS too (no CLONE_SETTLS): both use one tcache, so the parent
	 * allocates nothing from here on (md_say does not allocate). */
	pid_t child = clone(churn_main, stack + sizeof(stack), CLONE_VM | SIGCHLD, NULL);
	if (child < 0)
		return 1;
	while (churned < 10000)
		sleep_ms(1);
	md_say("sharer_pid %d\n", (int)child);
	md_say("ready\n");
	serve();
	kill(child, SIGKILL);
	_exit(0);
}

/* ---- exec ---- */
static int mode_exec(const char *self, const char *ms_arg, int generation)
{
	long ms = atol(ms_arg);
	if (generation == 0) {
		md_say("ready\n");
	}
	void *p = malloc(4096 + (size_t)generation % 4096);
	(void)p;
	sleep_ms(ms);
	char gen[32];
	snprintf(gen, sizeof(gen), "%d", generation + 1);
	execl(self, "states", "exec", ms_arg, gen, (char *)NULL);
	return 1;
}

/* ---- a large heap ---- */
static int mode_bigheap(long mib)
{
	if (mib < 1 || mib > 16384)
		return 2;
	unsigned long long want = (unsigned long long)mib << 20, have = 0, n = 0;
	while (have < want) {
		char *p = malloc(48);
		if (!p)
			return 1;
		p[0] = 1;
		have += 64;
		n++;
	}
	md_say("chunks %llu\n", n);
	md_say("ready\n");
	serve();
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (argc <= 3 || strcmp(mode, "exec") != 0) /* exec: the first image only */
		md_say("pid %d\n", (int)getpid());
	if (strcmp(mode, "vfork") == 0)
		return mode_vfork();
	if (strcmp(mode, "threads") == 0)
		return mode_threads(argc > 2 ? atoi(argv[2]) : 4);
	if (strcmp(mode, "pthread_exit") == 0)
		return mode_pthread_exit();
	if (strcmp(mode, "clonevm") == 0)
		return mode_clonevm();
	if (strcmp(mode, "exec") == 0 && argc > 2)
		return mode_exec("/proc/self/exe", argv[2], argc > 3 ? atoi(argv[3]) : 0);
	if (strcmp(mode, "bigheap") == 0 && argc > 2)
		return mode_bigheap(atol(argv[2]));
	fprintf(stderr, "usage: states vfork|threads N|pthread_exit|clonevm|exec MS|bigheap MIB\n");
	return 2;
}
