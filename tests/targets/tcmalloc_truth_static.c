/* tcmalloc_truth.c built as tcmalloc_truth_static (Makefile TARGET_LDLIBS_tcmalloc_truth_static). */
#include "tcmalloc_truth.c"
