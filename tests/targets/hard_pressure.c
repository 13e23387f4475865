/* A target that presses against its memory cgroup's limit, for "an attach under memory
 * pressure". It starts idle (the test moves it into a cgroup first), then on "press ANON_MB FILE":
 *   - allocates ANON_MB MiB with malloc (an mmapped chunk) and writes every page: anonymous
 *     memory that cannot go anywhere (no swap) and eats most of the limit;
 *   - maps FILE privately and keeps reading every page of it from a thread: file pages the
 *     kernel must reclaim and fault back in all the time;
 *   - starts a helper process (itself, re-executed with "--stream FILE") that reads FILE with
 *     read() in a loop: it goes on charging page cache to the cgroup while the target is
 *     stopped, so reclaim hits the target's pages during the pause too.
 * The helper dies with the target (parent-death signal).
 * Commands: "press ANON_MB FILE" -> "pressing <helper pid>", "ping" -> "pong",
 *           "count" -> "passes <n>" (full passes over the mapped file), "quit" or EOF -> exit. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "target_common.h"

static const unsigned char *file_map;
static size_t file_len;
static unsigned long passes;

static int stream_file(const char *path)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	static char buf[1 << 16];
	for (;;) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return 1;
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
	}
}

static void *touch_file(void *arg)
{
	(void)arg;
	for (;;) {
		volatile unsigned sum = 0;
		for (size_t off = 0; off < file_len; off += 4096)
			sum += file_map[off];
		__atomic_add_fetch(&passes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int press(unsigned long anon_mb, const char *path)
{
	size_t anon_len = anon_mb << 20;
	unsigned char *anon = malloc(anon_len);
	if (!anon)
		return -1;
	for (size_t off = 0; off < anon_len; off += 4096)
		anon[off] = (unsigned char)off | 1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0)
		return -1;
	file_len = (size_t)st.st_size;
	file_map = mmap(NULL, file_len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (file_map == MAP_FAILED)
		return -1;
	pthread_t t;
	if (pthread_create(&t, NULL, touch_file, NULL) != 0)
		return -1;
	pid_t helper = fork();
	if (helper == 0) {
		execl("/proc/self/exe", "hard_pressure", "--stream", path, (char *)NULL);
		_exit(127);
	}
	return helper;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--stream") == 0)
		return stream_file(argv[2]);
	/* Some heap for the glibc walk to find. */
	static void *chunks[200];
	for (int i = 0; i < 200; i++) {
		chunks[i] = malloc((size_t)(24 + i * 40));
		memset(chunks[i], 0x44, 24);
	}
	for (int i = 0; i < 200; i += 2)
		free(chunks[i]);
	md_say("pid %d\n", (int)getpid());
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[512];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "count") == 0)
			md_say("passes %lu\n", __atomic_load_n(&passes, __ATOMIC_RELAXED));
		if (strncmp(cmd, "press ", 6) == 0) {
			char *end;
			unsigned long mb = strtoul(cmd + 6, &end, 10);
			int helper = *end == ' ' ? press(mb, end + 1) : -1;
			if (helper > 0)
				md_say("pressing %d\n", helper);
			else
				md_say("press failed: %s\n", strerror(errno));
		}
	}
	_exit(0);
}
