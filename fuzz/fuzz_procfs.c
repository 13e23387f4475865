/* libFuzzer harness for the /proc parsers: every parser gets the same bytes, unterminated, so
 * ASan catches any read past len. Build (scripts/fuzz.sh does this):
 *   clang -fsanitize=fuzzer,address -Iinclude -Iattach fuzz/fuzz_procfs.c attach/procfs.c src/error.c
 * Seeds: tests/data/procfs/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "procfs.h"

/* Whatever the parser accepted must be self-consistent: sorted, not overlapping, page aligned. */
static void check_mappings(const struct md_mapping *maps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (maps[i].start >= maps[i].end || (maps[i].start | maps[i].end) % MD_PAGE_SIZE)
			abort();
		if (i && maps[i - 1].end > maps[i].start)
			abort();
		if (maps[i].path && maps[i].path[0] == '\0')
			abort();
		if (memchr(maps[i].smaps.vmflags, '\0', sizeof(maps[i].smaps.vmflags)) == NULL)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct md_error *err;

	struct md_mapping *maps;
	size_t n;
	err = md_parse_maps(text, size, &maps, &n);
	if (!err) {
		check_mappings(maps, n);
		md_mappings_free(maps, n);
	}
	md_error_destroy(err);

	struct md_smaps rollup;
	md_error_destroy(md_parse_smaps_rollup(text, size, &rollup));

	struct md_proc_status status;
	err = md_parse_status(text, size, &status);
	if (!err && memchr(status.name, '\0', sizeof(status.name)) == NULL)
		abort();
	md_error_destroy(err);

	struct md_meminfo meminfo;
	md_error_destroy(md_parse_meminfo(text, size, &meminfo));

	char *v2, *v1;
	err = md_parse_proc_cgroup(text, size, &v2, &v1);
	if (!err) {
		free(v2);
		free(v1);
	}
	md_error_destroy(err);
	return 0;
}
