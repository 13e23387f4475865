/* Runs another program in its own place (same pid), for tests that inspect programs that are not
 * ours (python3, node, java, a musl-linked program): launch [NAME=VALUE ...] PROGRAM [ARGS...].
 * The program must print its own "ready" line. */
#include "target_common.h"

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strchr(argv[i], '=') && argv[i][0] != '/'; i++)
		putenv(argv[i]);
	if (i >= argc)
		return 2;
	execv(argv[i], argv + i);
	md_say("exec %s failed: %s\n", argv[i], strerror(errno));
	return 127;
}
