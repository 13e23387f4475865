/* A member of a test cgroup, and a working-set target. It prints "ready" with nothing made yet,
 * so the test can first move it into a cgroup; then, on commands from stdin, it makes memory
 * that is charged to its cgroup and says what it made:
 *   heap MIB          malloc and write MIB MiB           -> "heap_bytes N"
 *   file PATH MIB     write MIB MiB to PATH and fsync it  -> "file_bytes N" (clean page cache)
 *   shm PATH MIB      write MIB MiB to PATH (tmpfs)       -> "shm_bytes N"
 *   region PAGES      an anonymous mapping of PAGES pages, all written, between two guard pages
 *                                                         -> "region_start 0x..." "region_pages N"
 *   touch PAGES MS    write the first PAGES pages of the region every 20 ms for MS milliseconds
 *                                                         -> "touching", then "touched N rounds"
 *   touchheap MS      the same for every page of the last heap block -> "touching", "touched N rounds"
 *   name NAME         prctl(PR_SET_NAME): the comm a report shows (hostile names)  -> "named"
 *   quit */
#include <sys/mman.h>
#include <sys/prctl.h>

#include "target_common.h"

static void fill_file(const char *path, unsigned long mib, const char *what)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		md_say("error %s: %s\n", path, strerror(errno));
		return;
	}
	static char block[65536];
	memset(block, 'x', sizeof(block));
	unsigned long long written = 0;
	for (unsigned long i = 0; i < mib * 16; i++) {
		ssize_t w = write(fd, block, sizeof(block));
		if (w != (ssize_t)sizeof(block)) {
			md_say("error writing %s\n", path);
			close(fd);
			return;
		}
		written += (unsigned long long)w;
	}
	/* Written back, so the pages are clean page cache the kernel could drop. */
	fsync(fd);
	close(fd);
	md_say("%s %llu\n", what, written);
}

int main(void)
{
	md_say("pid %d\n", (int)getpid());
	md_say("ready\n");
	char cmd[512], path[400];
	unsigned long a, b;
	char *region = NULL, *heap = NULL;
	size_t heap_size = 0;
	unsigned long region_pages = 0;
	long page = sysconf(_SC_PAGESIZE);
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (sscanf(cmd, "heap %lu", &a) == 1) {
			size_t n = (size_t)a << 20;
			char *p = malloc(n);
			if (!p) {
				md_say("error malloc\n");
				continue;
			}
			memset(p, 0x5a, n);
			heap = p;
			heap_size = n;
			md_say("heap_bytes %zu\n", n);
		} else if (sscanf(cmd, "file %399s %lu", path, &a) == 2) {
			fill_file(path, a, "file_bytes");
		} else if (sscanf(cmd, "shm %399s %lu", path, &a) == 2) {
			fill_file(path, a, "shm_bytes");
		} else if (sscanf(cmd, "region %lu", &a) == 1 && !region) {
			char *m = mmap(NULL, (a + 2) * (size_t)page, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (m == MAP_FAILED) {
				md_say("error mmap\n");
				continue;
			}
			/* Guard pages keep the kernel from merging it with a neighbour. */
			mprotect(m, (size_t)page, PROT_NONE);
			mprotect(m + (a + 1) * (size_t)page, (size_t)page, PROT_NONE);
			region = m + page;
			region_pages = a;
			for (unsigned long i = 0; i < a; i++)
				region[i * (size_t)page] = 1;
			md_say("region_start %p\nregion_pages %lu\n", (void *)region, region_pages);
		} else if (sscanf(cmd, "touch %lu %lu", &a, &b) == 2 && region && a <= region_pages) {
			md_say("touching\n");
			unsigned long rounds = 0;
			for (unsigned long t = 0; t < b; t += 20, rounds++) {
				for (unsigned long i = 0; i < a; i++)
					((volatile char *)region)[i * (size_t)page]++;
				usleep(20000);
			}
			md_say("touched %lu rounds\n", rounds);
		} else if (strncmp(cmd, "name ", 5) == 0) {
			/* "\\e" in the command stands for ESC, so a test can send a terminal escape */
			char name[16];
			size_t o = 0;
			for (const char *c = cmd + 5; *c && o < sizeof(name) - 1; c++) {
				if (c[0] == '\\' && c[1] == 'e') {
					name[o++] = '\033';
					c++;
				} else {
					name[o++] = *c;
				}
			}
			name[o] = '\0';
			prctl(PR_SET_NAME, name, 0, 0, 0);
			md_say("named\n");
		} else if (sscanf(cmd, "touchheap %lu", &b) == 1 && heap) {
			md_say("touching\n");
			unsigned long rounds = 0;
			for (unsigned long t = 0; t < b; t += 20, rounds++) {
				for (size_t off = 0; off < heap_size; off += (size_t)page)
					((volatile char *)heap)[off]++;
				usleep(20000);
			}
			md_say("touched %lu rounds\n", rounds);
		} else {
			md_say("error unknown command\n");
		}
	}
	return 0;
}
