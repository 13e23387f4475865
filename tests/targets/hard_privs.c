/* A target for "without privileges nothing is guessed": a glibc heap in which the same mapping
 * holds pages of three kinds that only page frame numbers tell apart for sure:
 *   - a live chunk of ZERO_PAGES pages the program has only read: present in pagemap, mapped
 *     to the shared zero page, not counted in RSS;
 *   - a free chunk of FREE_PAGES pages it wrote before freeing: resident, class "free";
 *   - the rest of the heap, written.
 * Then it forks a child that keeps a copy-on-write share of every written page (a pre-forking
 * server does this), so that written pages are not exclusive either. Without frame numbers a
 * zero page and a shared page look alike in pagemap.
 * Prints "zero_pages", "free_pages", "zero_chunk <addr>", "free_chunk <addr>", "child <pid>".
 * Commands: "ping" -> "pong", "quit" or EOF -> exit (the child dies with it). */
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "target_common.h"

#define PAGE 4096
#define ZERO_PAGES 64
#define FREE_PAGES 64

/* True once /proc/PID/syscall says pid sleeps in pause() (x86-64 number 34); when that file
 * cannot be read, once its state is S. Gives up after 5 s. */
static void wait_until_paused(pid_t pid)
{
	char path[64], buf[256];
	for (int i = 0; i < 5000; i++) {
		snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
		int fd = open(path, O_RDONLY);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (strncmp(buf, "34 ", 3) == 0)
				return;
		} else {
			snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
			fd = open(path, O_RDONLY);
			n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
			if (fd >= 0)
				close(fd);
			buf[n > 0 ? n : 0] = 0;
			char *paren = strrchr(buf, ')');
			if (paren && paren[1] == ' ' && paren[2] == 'S')
				return;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

int main(void)
{
	/* Keep big chunks in the sbrk heap: the mapping that mixes the three kinds. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	void *warm = malloc(64);
	memset(warm, 1, 64);
	/* Fresh from the top: calloc does not clear memory the heap just got from the kernel. */
	unsigned char *zero = calloc(1, ZERO_PAGES * PAGE);
	unsigned char *freed = malloc(FREE_PAGES * PAGE);
	unsigned char *guard = malloc(64); /* keeps the freed chunk out of the top */
	volatile uintptr_t freed_at = (uintptr_t)freed; /* printed after the free */
	if (!warm || !zero || !freed || !guard)
		return 1;
	/* Through a volatile pointer: a memset right before free() is a dead store to the compiler. */
	for (size_t off = 0; off < FREE_PAGES * PAGE; off += 64)
		((volatile unsigned char *)freed)[off] = 0x77;
	memset(guard, 0x42, 64);
	volatile unsigned sum = 0;
	for (size_t off = 0; off < ZERO_PAGES * PAGE; off += PAGE / 4)
		sum += zero[off];
	free(freed);
	if (sum != 0)
		return 1;

	pid_t parent = getpid();
	pid_t child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (getppid() != parent)
			_exit(0);
		for (;;)
			pause();
	}
	/* The child's first steps (glibc's fork handlers, prctl, its stack) write to pages it shares
	 * with us, taking private copies and leaving ours mapped once: until it sleeps in pause()
	 * the sharing changes by itself (seen: exclusive pages 4 -> 8 within 0.3 s in 8 of 20
	 * starts, no attach). Ready only once it sleeps there. */
	wait_until_paused(child);
	md_say("pid %d\n", (int)getpid());
	md_say("threads 1\n");
	md_say("child %d\n", (int)child);
	md_say("zero_chunk 0x%lx\n", (unsigned long)(uintptr_t)zero);
	md_say("zero_pages %d\n", ZERO_PAGES);
	md_say("free_chunk 0x%lx\n", (unsigned long)freed_at);
	md_say("free_pages %d\n", FREE_PAGES);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	return 0;
}
