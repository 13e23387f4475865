/* The jemalloc ground-truth program linked statically against Debian's libjemalloc.a (the
 * Makefile's TARGET_LDLIBS_jemalloc_static): jemalloc then lives in the executable, found through
 * its .symtab (or, once stripped, through the structural scan of the executable's .bss). */
#include "jemalloc_truth.c"
