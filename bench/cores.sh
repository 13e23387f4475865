#!/usr/bin/env bash
# The core rows of make bench (issue 21), run by bench/run.sh (or alone: bench/cores.sh [BUILD]), on
# stdout as a section of docs/performance.md. Needs $BUILD/memdissect and $BUILD/bench/{heapgen,runone}.
set -euo pipefail
BUILD=${BUILD:-${1:-build}}
cd "$(dirname "$0")/.."
trap 'rm -rf "$BUILD/bench/cores" "${core_rows:-}"; [ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null || true' EXIT
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# Cores: the same heapgen heap as a gdb gcore core, a kernel core (SIGABRT with RLIMIT_CORE
# unlimited in a temporary directory, when core_pattern writes a plain file there) and a memdissect
# snapshot; each beside one sequential read of the same file from the page cache (cat, after warming
# it), measured in the same run, pair by pair.
cores="$BUILD/bench/cores"
core_pattern=$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo "?")
core_rows=$(mktemp)
core_skips=
core_runs=${CORE_RUNS:-5}
core_row() { # $1 chunks, $2 label, $3 file
	local n=$1 label=$2 file=$3 run c m r p ratios= pratios= cats= mds= preads= rss=0 prss=0 size
	size=$(stat -c %s "$file")
	cat "$file" > /dev/null; cat "$file" > /dev/null
	for run in $(seq "$core_runs"); do
		"$BUILD/bench/runone" cat "$file" > /dev/null 2> "$BUILD/bench/runone.err"
		c=$(awk '/^wall/ {print $2}' "$BUILD/bench/runone.err")
		"$BUILD/bench/runone" "$BUILD/memdissect" core --json "$file" > "$BUILD/bench/core.json" 2> "$BUILD/bench/runone.err"
		m=$(awk '/^wall/ {print $2}' "$BUILD/bench/runone.err")
		r=$(awk '/^wall/ {print $4}' "$BUILD/bench/runone.err")
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); g=[a for a in d["allocators"] if a["name"]=="glibc"][0]; assert g["live_bytes"] > 0' "$BUILD/bench/core.json"
		cats="$cats $c"; mds="$mds $m"; ratios="$ratios $(awk -v a="$m" -v b="$c" 'BEGIN {print a/b}')"
		[ "$r" -gt "$rss" ] && rss=$r
		MEMDISSECT_CORE_MMAP=1 "$BUILD/bench/runone" "$BUILD/memdissect" core --json "$file" > /dev/null 2> "$BUILD/bench/runone.err"
		p=$(awk '/^wall/ {print $2}' "$BUILD/bench/runone.err")
		r=$(awk '/^wall/ {print $4}' "$BUILD/bench/runone.err")
		preads="$preads $p"; pratios="$pratios $(awk -v a="$p" -v b="$c" 'BEGIN {print a/b}')"
		[ "$r" -gt "$prss" ] && prss=$r
	done
	local goal="-"
	[ "$n" = 5000000 ] && goal="≤ 1.2×"
	awk -v n="$n" -v l="$label" -v s="$size" -v c="$(echo $cats | tr ' ' '\n' | median)" -v m="$(echo $mds | tr ' ' '\n' | median)" \
		-v q="$(echo $ratios | tr ' ' '\n' | median)" -v r="$rss" -v g="$goal" \
		-v p="$(echo $preads | tr ' ' '\n' | median)" -v pq="$(echo $pratios | tr ' ' '\n' | median)" -v pr="$prss" 'BEGIN {
		printf "| %s | %s | %.0f MiB | %.0f ms | %.0f ms | %.2f× | %.1f MiB | %.0f ms | %.2f× | %.1f MiB | %s |\n",
			n, l, s/1048576, c*1000, m*1000, q, r/1024, p*1000, pq, pr/1024, g }' >> "$core_rows"
}
wait_ready() { for _ in $(seq 600); do grep -q ready "$1" 2>/dev/null && break; sleep 0.1; done; }
for n in 1000000 5000000; do
	rm -rf "$cores"; mkdir -p "$cores/kernel"
	"$BUILD/bench/heapgen" "$n" 4 > "$cores/heapgen.out" &
	tpid=$!
	wait_ready "$cores/heapgen.out"
	gcore -o "$cores/gcore" "$tpid" > /dev/null 2>&1 || true
	"$BUILD/memdissect" snapshot -o "$cores/snapshot" "$tpid" > /dev/null
	kill "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=
	gfile=$(ls "$cores"/gcore.* 2>/dev/null | head -1)
	if [ -n "$gfile" ]; then
		core_row "$n" "gdb gcore" "$gfile"
	else
		core_skips="$core_skips gcore: gdb's gcore is not installed or failed."
	fi
	case "$core_pattern" in
	\|* | */*)
		core_skips="$core_skips kernel core: core_pattern is '$core_pattern' (a pipe or another directory), the kernel writes no core here." ;;
	*)
		(cd "$cores/kernel" && ulimit -c unlimited && exec "../../heapgen" "$n" 4 > heapgen.out) &
		tpid=$!
		wait_ready "$cores/kernel/heapgen.out"
		kill -ABRT "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=
		kcore=$(ls "$cores"/kernel/core* 2>/dev/null | head -1)
		if [ -n "$kcore" ]; then core_row "$n" "kernel" "$kcore"
		else core_skips="$core_skips kernel core: none was written (RLIMIT_CORE or core_pattern '$core_pattern')."; fi ;;
	esac
	core_row "$n" "memdissect snapshot" "$cores/snapshot"
	rm -rf "$cores"
done
{
	echo
	echo "Cores (issue 21): bench/heapgen's heap (4 arenas) as a gdb \`gcore\` core, a kernel core (SIGABRT, RLIMIT_CORE"
	echo "unlimited, in a temporary directory) and a memdissect snapshot. \`cat\` is one sequential read of the file from"
	echo "the page cache (warmed first); \`memdissect core --json\` wall time and peak RSS (ru_maxrss) from wait4; each pair"
	echo "run back to back $core_runs times, medians and the median of the pairs' ratios. memdissect reads a core with pread"
	echo "(the glibc walk streams each heap through a reader thread); \`mapped\` is the same binary mapping the core and"
	echo "walking the heaps in place (MEMDISSECT_CORE_MMAP=1, attach/coremap.c), in the same rounds: its ru_maxrss counts the"
	echo "mapped pages of the core it has touched, which are page cache, not memory of its own."
	[ -n "$core_skips" ] && echo "Not measured here:$core_skips"
	echo
	echo "| chunks | core | file | cat (page cache) | memdissect core --json | / cat | peak RSS | mapped | / cat | peak RSS | goal |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	cat "$core_rows"
}
rm -f "$core_rows"
