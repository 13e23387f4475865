#!/bin/bash
# bench/run.sh's row() runs "$prog N 4": Debian's python3.11 with N objects (bench/pyheap.py),
# stdin kept open so that it waits.
exec /usr/bin/python3.11 "$(dirname "$0")/pyheap.py" "$1" < <(sleep 3600)
