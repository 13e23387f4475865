/* A target that counts the signals it receives, for "no signal is lost across attaches":
 * SIGUSR1 (standard: pending instances merge, so a sender paces them) and SIGRTMIN (real-time:
 * queued, every instance is delivered). Handlers only bump sig_atomic_t counters.
 * Commands: "count" -> "count usr1 <n> rtmin <m>", "ping" -> "pong", "quit" or EOF -> exit. */
#include "target_common.h"

static volatile sig_atomic_t usr1_count;
static volatile sig_atomic_t rtmin_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

static void on_rtmin(int sig)
{
	(void)sig;
	rtmin_count++;
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* Block each signal inside the other's handler: the counters are never bumped reentrantly. */
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaddset(&sa.sa_mask, SIGRTMIN);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 1;
	sa.sa_handler = on_rtmin;
	if (sigaction(SIGRTMIN, &sa, NULL) != 0)
		return 1;
	md_say("pid %d\n", (int)getpid());
	md_say("sigrtmin %d\n", SIGRTMIN);
	md_say("vm_rss %llu\n", md_proc_field("/proc/self/status", "VmRSS"));
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "ping") == 0)
			md_say("pong\n");
		if (strcmp(cmd, "count") == 0)
			md_say("count usr1 %d rtmin %d\n", (int)usr1_count, (int)rtmin_count);
	}
	return 0;
}
