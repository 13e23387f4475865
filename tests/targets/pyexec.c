/* Runs an interpreter under the test helpers' pipes: pyexec [VAR=value...] PROGRAM ARGS...
 * Leading VAR=value arguments are set in the environment, then PROGRAM replaces this process
 * (same pid), so a Python script can be a ground-truth target like the C ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strchr(argv[i], '=') && argv[i][0] != '/'; i++)
		putenv(argv[i]);
	if (i >= argc) {
		fprintf(stderr, "usage: pyexec [VAR=value...] PROGRAM ARGS...\n");
		return 2;
	}
	execv(argv[i], argv + i);
	perror(argv[i]);
	return 127;
}
