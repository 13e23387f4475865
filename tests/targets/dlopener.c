/* A target whose module set changes on command (watch's sessions, issue 13): a small malloc heap,
 * "ready", then commands on stdin: "dlopen" loads libz.so.1 (a library it does not link),
 * "dlopen PATH" the shared object at PATH; each answers "loaded N", N the objects loaded so far
 * (0 when none could be). "quit" or EOF ends it. */
#include <dlfcn.h>

#include "target_common.h"

int main(void)
{
	static void *keep[4096];
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		keep[i] = malloc(32 + i % 200);
	md_say("pid %d\n", (int)getpid());
	md_say("ready\n");
	char cmd[512];
	int loaded = 0;
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strncmp(cmd, "dlopen", 6) == 0 && (cmd[6] == 0 || cmd[6] == ' ')) {
			void *h = dlopen(cmd[6] ? cmd + 7 : "libz.so.1", RTLD_NOW | RTLD_LOCAL);
			loaded += h != NULL;
			md_say("loaded %d\n", loaded);
		}
	}
	return keep[0] == NULL;
}
