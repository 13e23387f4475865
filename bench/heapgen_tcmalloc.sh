#!/bin/sh
# bench/run.sh's row() runs "$prog N 4": heapgen with gperftools tcmalloc preloaded ($TCMALLOC_LIB).
exec env LD_PRELOAD="$TCMALLOC_LIB" "$BUILD/bench/heapgen" "$@"
