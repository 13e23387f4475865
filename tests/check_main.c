/* The one Check runner: every suite that is linked in runs; CK_RUN_SUITE / CK_RUN_CASE select. */
#include <stdlib.h>

#include "tests.h"

int main(void)
{
	Suite *(*suites[])(void) = {
		node_suite, procfs_suite, symbols_suite, classify_suite, render_suite, plugin_suite,
		attach_suite, glibc_suite, glibc_heuristic_suite, glibc_nodebug_suite, jemalloc_suite, core_suite, hardening_suite,
		map_suite, watch_suite, html_suite, image_suite,
	};
	SRunner *sr = NULL;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		if (!suites[i])
			continue;
		if (!sr)
			sr = srunner_create(suites[i]());
		else
			srunner_add_suite(sr, suites[i]());
	}
	if (!sr)
		return EXIT_FAILURE;
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
