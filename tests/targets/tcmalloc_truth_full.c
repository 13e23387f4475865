/* tcmalloc_truth.c built as tcmalloc_truth_full (Makefile TARGET_LDLIBS_tcmalloc_truth_full). */
#include "tcmalloc_truth.c"
