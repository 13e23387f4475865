/* A private file mapping in three states: a file of 8 pages (page k filled with byte k + 1)
 * mapped MAP_PRIVATE read-write; pages 0-5 read (present, still the file's page-cache pages),
 * page 2 then written (an anonymous copy holding 0xee), pages 6-7 never touched (not present).
 * Prints "map 0x<start>", "path NAME" (the file, removed at exit), "ready", and waits; "quit" or
 * EOF -> exit. */
#include <sys/mman.h>

#include "target_common.h"

int main(void)
{
	char path[] = "/tmp/md-filemap-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return 1;
	char page[4096];
	for (int k = 0; k < 8; k++) {
		memset(page, k + 1, sizeof(page));
		if (write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
			return 1;
	}
	volatile unsigned char *m = mmap(NULL, 8 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 1;
	unsigned sum = 0;
	for (int k = 0; k < 6; k++)
		sum += m[k * 4096];
	memset((void *)(m + 2 * 4096), 0xee, 4096);
	md_say("sum %u\n", sum);
	md_say("map 0x%lx\n", (unsigned long)(uintptr_t)m);
	md_say("path %s\n", path);
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd)))
		if (strcmp(cmd, "quit") == 0)
			break;
	unlink(path);
	return 0;
}
