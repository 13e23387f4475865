/* A target whose names attack the terminal of whoever inspects it: its comm and a thread's name
 * hold ESC, an OSC title sequence, BEL and a newline; it maps a private file whose name holds
 * control bytes, an OSC sequence and ends in " (deleted)" (the file is not deleted), and a second
 * file that really is deleted. Prints "ready" and waits; "touch" dirties the second half of the
 * hostile file mapping (so that a diff has a changed mapping to name), answering "touched".
 * Argument: a directory to create the files in. */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "target_common.h"

#define HOSTILE_COMM "\033]0;pwn\007\n\033[2J"
#define HOSTILE_FILE "md\033[31mred\nline\007\x9b (deleted)"

static void *idle(void *arg)
{
	(void)arg;
	pause();
	return NULL;
}

static char *map_file(const char *path, int unlink_after)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 65536) != 0)
		return NULL;
	char *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0x5a, 32768); /* private dirty pages: resident, in the mapping list */
	if (unlink_after)
		unlink(path);
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	static char path[4096];
	snprintf(path, sizeof(path), "%s/%s", argv[1], HOSTILE_FILE);
	char *hostile = map_file(path, 0);
	if (!hostile)
		return 3;
	snprintf(path, sizeof(path), "%s/gone\033[5mfile", argv[1]);
	if (!map_file(path, 1))
		return 3;
	pthread_t th;
	if (pthread_create(&th, NULL, idle, NULL) != 0)
		return 4;
	pthread_setname_np(th, "\033]2;thr\007\n");
	prctl(PR_SET_NAME, HOSTILE_COMM, 0, 0, 0);
	md_say("pid %d\n", (int)getpid());
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "touch") == 0) {
			memset(hostile + 32768, 0xa5, 32768);
			md_say("touched\n");
		}
	}
	return 0;
}
