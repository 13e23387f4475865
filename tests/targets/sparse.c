/* A target whose mappings are full of holes, for "an attach faults in no page": anonymous
 * mappings touched one page in four, never touched, touched and then MADV_DONTNEED'd, read-only
 * touched (which maps the shared zero page: present in pagemap, not in RSS), a malloc'd
 * mmapped chunk and brk chunks touched only at their ends, a private file mapping read at its
 * first page, a shared anonymous mapping half touched, and a thread blocked on its own stack.
 * Transparent huge pages are disabled so that khugepaged cannot change RSS while the test looks.
 * Commands: "ping" -> "pong", "quit" or EOF -> exit. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "target_common.h"

#define PAGE 4096UL

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int started;

static void *blocked_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	started = 1;
	pthread_cond_broadcast(&wake);
	for (;;)
		pthread_cond_wait(&wake, &lock);
	return NULL;
}

static char *map_anon(size_t len, int flags)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "sparse: mmap: %s\n", strerror(errno));
		exit(1);
	}
	return p;
}

int main(void)
{
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
	unsigned long touched = 0;

	char *quarter = map_anon(16 << 20, MAP_PRIVATE);
	for (size_t off = 0; off < (16 << 20); off += 4 * PAGE, touched++)
		quarter[off] = 1;

	char *untouched = map_anon(4 << 20, MAP_PRIVATE);
	(void)untouched;

	char *dropped = map_anon(2 << 20, MAP_PRIVATE);
	memset(dropped, 2, 2 << 20);
	madvise(dropped + (1 << 20), 1 << 20, MADV_DONTNEED);
	touched += (1 << 20) / PAGE;

	volatile char *zero = map_anon(1 << 20, MAP_PRIVATE);
	unsigned long zero_pages = 0;
	for (size_t off = 0; off < (1 << 20); off += 8 * PAGE, zero_pages++)
		(void)zero[off];

	char *big = malloc(3 << 20); /* above the mmap threshold: its own mapping */
	big[0] = 1;
	big[(3 << 20) - 1] = 1;
	char *small[10];
	for (int i = 0; i < 10; i++) { /* brk chunks below the threshold, ends only */
		small[i] = malloc(120 << 10);
		small[i][0] = 1;
		small[i][(120 << 10) - 1] = 1;
	}

	int fd = open("/proc/self/exe", O_RDONLY);
	volatile char *file = fd >= 0 ? mmap(NULL, 1 << 20, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
	if (file != MAP_FAILED)
		(void)file[0];
	if (fd >= 0)
		close(fd);

	char *shared = map_anon(1 << 20, MAP_SHARED);
	memset(shared, 3, 512 << 10);

	pthread_t t;
	if (pthread_create(&t, NULL, blocked_thread, NULL) != 0)
		return 1;
	pthread_mutex_lock(&lock);
	while (!started)
		pthread_cond_wait(&wake, &lock);
	pthread_mutex_unlock(&lock);

	md_say("pid %d\n", (int)getpid());
	md_say("threads 2\n");
	md_say("touched_private_pages %lu\n", touched);
	md_say("zero_pages %lu\n", zero_pages);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
	return 0;
}
