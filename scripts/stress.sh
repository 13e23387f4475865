#!/bin/sh
# make stress: the hardening suite (tests/check_hardening.c) with the full counts of
# docs/reliability.md: 200 SIGKILLs of memdissect at random moments, 100 targets killed during an
# attach, 200 attaches to a busy target, 2,000 threads, 45 attaches to a thread storm, 40 attaches
# under cgroup memory pressure, 1,000 consecutive attaches, 15 runs under valgrind.
# Usage: scripts/stress.sh [BUILD]   (BUILD: the build directory, default "build")
# Figures go to stderr and to $BUILD/stress-figures.txt; the exit status is the suite's.
# About 2 minutes on 2 cores. MD_SEED=n replays the random moments of a run;
# CK_RUN_CASE=name runs one test.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

for f in "$BUILD/memdissect" "$BUILD/tests/check_all"; do
	if [ ! -x "$f" ]; then
		echo "stress: $f is missing: run 'make stress' (or make all $f)" >&2
		exit 2
	fi
done
for tool in strace valgrind; do
	command -v "$tool" >/dev/null 2>&1 ||
		echo "stress: $tool is not installed: its test will be skipped (apt-get install $tool)" >&2
done

FIGURES="$ROOT/$BUILD/stress-figures.txt"
{
	echo "# make stress, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) CPUs, $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
} >"$FIGURES"

start=$(date +%s)
MD_STRESS=1 MD_FIGURES="$FIGURES" CK_RUN_SUITE=hardening \
	MEMDISSECT="$ROOT/$BUILD/memdissect" MD_TARGETS="$ROOT/$BUILD/targets" \
	MD_TESTDATA="$ROOT/tests/data" MEMDISSECT_PLUGIN_PATH="$ROOT/$BUILD/plugins" MD_SRCDIR="$ROOT" \
	"$BUILD/tests/check_all"
status=$?
end=$(date +%s)

echo "# suite exit status $status after $((end - start)) s" >>"$FIGURES"
echo
echo "stress: figures ($FIGURES):"
cat "$FIGURES"
exit $status
