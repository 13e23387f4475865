/* tcmalloc_truth.c built as tcmalloc_truth_plain (Makefile TARGET_LDLIBS_tcmalloc_truth_plain). */
#include "tcmalloc_truth.c"
