/* A single-threaded target that does nothing: prints its pid, "ready", and waits on stdin.
 * Commands: "ping" -> "pong", "quit" or EOF -> exit. */
#include "target_common.h"

int main(void)
{
	md_say("pid %d\n", (int)getpid());
	md_say("threads 1\n");
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
	}
	return 0;
}
