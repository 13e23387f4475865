/* Pages given back with MADV_FREE stay resident (LazyFree in smaps) until the kernel needs them.
 * Maps 8 MiB, dirties it, MADV_FREEs 6 MiB of it, prints its own smaps_rollup LazyFree as
 * "lazy_free", "ready", and waits. */
#include <sys/mman.h>

#include "target_common.h"

int main(void)
{
	size_t len = 8UL << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 3;
	memset(p, 0x33, len);
	if (madvise(p, 6UL << 20, MADV_FREE) != 0)
		return 4;
	md_say("lazy_free %llu\n", md_proc_field("/proc/self/smaps_rollup", "LazyFree"));
	md_ready_until_quit();
	return 0;
}
