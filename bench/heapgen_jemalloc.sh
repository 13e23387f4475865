#!/bin/sh
# bench/run.sh's row() runs "$prog N 4": heapgen linked to Debian's jemalloc 5.3 ($BUILD/bench/heapgen_jemalloc).
exec "$BUILD/bench/heapgen_jemalloc" "$@"
