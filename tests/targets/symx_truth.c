/* Namespaced DWARF types, bit-fields and dynamic TLS (tests/check_symbols.c, issue 13). dlopens
 * libsymx5.so and libsymx4.so from its own directory (tests/targets/symx/libsymx.cc: DWARF 5 and
 * DWARF 4 builds) and prints their layouts as the compiler made them. Threads: "early.*" were
 * started before the dlopen, "late.*" after; "used" ones set their copy of libsymx5's __thread
 * variable (value and address printed) and libsymx4's ("*.value4", "*.addr4"), "unused" ones and
 * the main thread never touch them. Then "ready"; the command "reload" dlcloses libsymx4.so and
 * opens it again (it gets the same TLS module id, "reloaded ID"; the used threads' DTV entries for
 * it are stale from then on: no thread has touched the new one).*/
#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>

#include "target_common.h"

enum { EARLY_USED, EARLY_UNUSED, LATE_USED, LATE_UNUSED, N_THREADS };
static const char *const thread_names[N_THREADS] = {"early_used", "early_unused", "late_used", "late_unused"};

static uint64_t *(*tls_of)(void), *(*tls4_of)(void);
static pthread_barrier_t loaded, done;
static pid_t tids[N_THREADS];
static uint64_t values[N_THREADS], addrs[N_THREADS], values4[N_THREADS], addrs4[N_THREADS];

static void *thread_main(void *arg)
{
	int i = (int)(intptr_t)arg;
	tids[i] = gettid();
	if (i == EARLY_USED || i == EARLY_UNUSED)
		pthread_barrier_wait(&loaded);
	if (i == EARLY_USED || i == LATE_USED) {
		uint64_t *v = tls_of();
		*v = 0x5eed0000ULL + 0x111ULL * (unsigned)(i + 1);
		values[i] = *v;
		addrs[i] = (uint64_t)(uintptr_t)v;
		v = tls4_of();
		*v = 0x4eed0000ULL + 0x111ULL * (unsigned)(i + 1);
		values4[i] = *v;
		addrs4[i] = (uint64_t)(uintptr_t)v;
	}
	pthread_barrier_wait(&done);
	for (;;)
		pause();
	return NULL;
}

static void *open_lib(const char *dir, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	return h;
}

int main(void)
{
	char dir[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0)
		return 1;
	dir[n] = 0;
	*strrchr(dir, '/') = 0;
	pthread_barrier_init(&loaded, NULL, 3);
	pthread_barrier_init(&done, NULL, N_THREADS + 1);
	pthread_t th[N_THREADS];
	pthread_create(&th[EARLY_USED], NULL, thread_main, (void *)(intptr_t)EARLY_USED);
	pthread_create(&th[EARLY_UNUSED], NULL, thread_main, (void *)(intptr_t)EARLY_UNUSED);
	void *lib5 = open_lib(dir, "libsymx5.so");
	void *lib4 = open_lib(dir, "libsymx4.so");
	tls_of = (uint64_t * (*)(void)) dlsym(lib5, "symx_tls");
	tls4_of = (uint64_t * (*)(void)) dlsym(lib4, "symx_tls");
	size_t (*truth)(char *, size_t) = (size_t(*)(char *, size_t))dlsym(lib5, "symx_truth");
	size_t modid4 = 0;
	if (!tls_of || !tls4_of || !truth || dlinfo(lib4, RTLD_DI_TLS_MODID, &modid4) != 0)
		return 1;
	pthread_barrier_wait(&loaded);
	pthread_create(&th[LATE_USED], NULL, thread_main, (void *)(intptr_t)LATE_USED);
	pthread_create(&th[LATE_UNUSED], NULL, thread_main, (void *)(intptr_t)LATE_UNUSED);
	pthread_barrier_wait(&done);

	static char text[4096];
	truth(text, sizeof(text));
	md_say("pid %d\n", (int)getpid());
	md_say("%s", text);
	for (int i = 0; i < N_THREADS; i++) {
		md_say("%s.tid %d\n", thread_names[i], (int)tids[i]);
		if (addrs[i])
			md_say("%s.value %llu\n%s.addr %llu\n", thread_names[i], (unsigned long long)values[i],
			       thread_names[i], (unsigned long long)addrs[i]);
		if (addrs4[i])
			md_say("%s.value4 %llu\n%s.addr4 %llu\n", thread_names[i], (unsigned long long)values4[i],
			       thread_names[i], (unsigned long long)addrs4[i]);
	}
	md_say("lib4.modid %zu\n", modid4);
	md_say("ready\n");
	char cmd[64];
	while (md_read_command(cmd, sizeof(cmd))) {
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "reload") == 0) {
			dlclose(lib4);
			lib4 = open_lib(dir, "libsymx4.so");
			modid4 = 0;
			dlinfo(lib4, RTLD_DI_TLS_MODID, &modid4);
			md_say("reloaded %zu\n", modid4);
		}
	}
	return 0;
}
