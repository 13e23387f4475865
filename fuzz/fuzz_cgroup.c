/* libFuzzer harness for the cgroup and meminfo parsers (attach/cgroupfs.c): the same bytes,
 * unterminated, to each. Build (scripts/fuzz.sh does this):
 *   clang -fsanitize=fuzzer,address -Iinclude -Iattach fuzz/fuzz_cgroup.c attach/cgroupfs.c attach/procfs.c src/error.c
 * Seeds: tests/data/cgroup/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgroupfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	for (int meminfo = 0; meminfo < 2; meminfo++) {
		struct md_kv_list l;
		struct md_error *err = md_parse_keyed(text, size, meminfo, &l);
		if (!err) {
			/* Accepted keys are terminated, non-empty and bounded in number. */
			if (l.n > MD_KV_MAX)
				abort();
			for (size_t i = 0; i < l.n; i++)
				if (!memchr(l.items[i].key, '\0', sizeof(l.items[i].key)) || !l.items[i].key[0])
					abort();
			md_kv_list_deinit(&l);
		}
		md_error_destroy(err);
	}
	struct md_psi psi;
	struct md_error *err = md_parse_pressure(text, size, &psi);
	if (!err && (!psi.some.valid || psi.some.avg10 > 100 || psi.some.avg300 > 100))
		abort();
	md_error_destroy(err);
	pid_t *pids;
	size_t n;
	err = md_parse_pid_list(text, size, &pids, &n);
	if (!err) {
		for (size_t i = 0; i < n; i++)
			if (pids[i] <= 0)
				abort();
		free(pids);
	}
	md_error_destroy(err);
	return 0;
}
