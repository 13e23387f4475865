/* A target whose module set changes on command (watch's sessions, issue 13): a small malloc heap,
 * "ready", then commands on stdin: "dlopen" loads libz.so.1 (a library it does not link) and
 * answers "loaded N" with the number of objects dlopen has loaded (1), "quit" or EOF ends it. */
#include <dlfcn.h>

#include "target_common.h"

int main(void)
{
	static void *keep[4096];
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		keep[i] = malloc(32 + i % 200);
	md_say("pid %d\n", (int)getpid());
	md_say("ready\n");
	char cmd[64];
	int loaded = 0;
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "dlopen") == 0) {
			void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
			loaded += h != NULL;
			md_say("loaded %d\n", loaded);
		}
	}
	return keep[0] == NULL;
}
