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

#include "target_common.h"

#define PAGE 4096
#define ZERO_PAGES 64
#define FREE_PAGES 64

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
