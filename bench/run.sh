#!/usr/bin/env bash
# make bench: heaps of 10k, 1M and 5M chunks; pause, total time and peak RSS of memdissect next to
# one raw process_vm_readv pass over the same resident bytes, measured in the same run.
# Writes docs/performance.md.
set -euo pipefail
BUILD=${1:-build}
export BUILD
cd "$(dirname "$0")/.."
mkdir -p "$BUILD/bench"
for p in heapgen rawread runone; do
	cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$BUILD/bench/$p" "bench/$p.c"
done
out=docs/performance.md
tmp=$(mktemp)
trap 'rm -f "$tmp"; [ -n "${tpid:-}" ] && kill "$tpid" 2>/dev/null || true' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
runs=${BENCH_RUNS:-5}
{
	echo "# Performance"
	echo
	echo "Measured by \`make bench\` (bench/run.sh) on $(date -u +%Y-%m-%d): $cpu, $(nproc) cores,"
	echo "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(ldd --version | head -1);"
	echo "load average $(cut -d' ' -f1-3 /proc/loadavg) when the heap rows began."
	echo "Target: bench/heapgen (16-400 byte requests, every third freed, 4 threads each in its own arena; the"
	echo "large-chunk rows: \`heapgen N 4 large\`, 64-256 KiB requests, every byte written)."
	echo "\`1 reader\` is one process_vm_readv pass (pagemap-guided, 1 MiB batches) over the resident bytes of"
	echo "the target's private anonymous writable mappings, \`2 readers\` the same batches split between two"
	echo "threads (bench/rawread.c), both measured in each run just before the attach."
	echo "Pause and total come from memdissect's own JSON (\`target.pause_ms\`, \`target.total_ms\`); wall time"
	echo "and peak RSS (ru_maxrss) of the memdissect process from wait4. Medians of $runs runs; each ratio is the"
	echo "median of the ratios taken within one run, against that run's single-reader pass."
	echo
	echo "| chunks | heap resident | 1 reader | 2 readers | 2 readers / 1 | pause | pause / 1 reader | total (memdissect) | total / 1 reader | wall | memdissect peak RSS | goal |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
} > "$tmp"
median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# One row: heap of $1 chunks built by program $2 (run as "$2 $1 4 $4"), labelled $3; goal $5.
row() {
	local n=$1 prog=$2 label=$3 mode=${4:-} goal=${5:--}
	"$prog" "$n" 4 $mode > "$BUILD/bench/heapgen.out" &
	tpid=$!
	for _ in $(seq 1200); do grep -q ready "$BUILD/bench/heapgen.out" 2>/dev/null && break; sleep 0.1; done
	local runs_out=$BUILD/bench/runs.txt run b s s2 wall rss pause p t
	: > "$runs_out"
	for run in $(seq "$runs"); do
		read -r _ b _ s < <("$BUILD/bench/rawread" "$tpid")
		read -r _ _ _ s2 < <("$BUILD/bench/rawread" "$tpid" 2)
		"$BUILD/bench/runone" "$BUILD/memdissect" attach --json "$tpid" > "$BUILD/bench/report.json" 2> "$BUILD/bench/runone.err"
		wall=$(awk '/^wall/ {print $2}' "$BUILD/bench/runone.err")
		rss=$(awk '/^wall/ {print $4}' "$BUILD/bench/runone.err")
		pause=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["target"]["pause_ms"], d["target"]["total_ms"])' "$BUILD/bench/report.json")
		p=${pause% *}; t=${pause#* }
		echo "$b $s $s2 $p $t $wall $rss" >> "$runs_out"
	done
	kill "$tpid"; wait "$tpid" 2>/dev/null || true; tpid=
	col() { awk "{print $1}" "$runs_out" | median; }
	awk -v n="$n$label" -v b="$(col '$1')" -v raw="$(col '$2*1000')" -v raw2="$(col '$3*1000')" \
		-v r2="$(col '$3/$2')" -v p="$(col '$4')" -v pr="$(col '$4/($2*1000)')" -v t="$(col '$5')" \
		-v tr="$(col '$5/($2*1000)')" -v w="$(col '$6*1000')" -v r="$(col '$7/1024')" -v g="$goal" 'BEGIN {
		printf "| %s | %.1f MiB | %.1f ms | %.1f ms | %.2f× | %.1f ms | %.2f× | %.1f ms | %.2f× | %.1f ms | %.1f MiB | %s |\n",
			n, b/1048576, raw, raw2, r2, p, pr, t, tr, w, r, g }' >> "$tmp"
}
small_goal="pause ≤ 0.75×, total ≤ 1.0×, RSS ≤ 64 MiB + 1 % of the heap"
row 10000 "$BUILD/bench/heapgen" ""
row 1000000 "$BUILD/bench/heapgen" "" "" "$small_goal"
row 5000000 "$BUILD/bench/heapgen" "" "" "$small_goal"
row 8000 "$BUILD/bench/heapgen" " (64-256 KiB)" large "pause ≤ 0.25×"
# About 8 GiB of small chunks (37M): minutes to build and 8 GiB of RAM, so only on request.
[ "${BENCH_BIG:-0}" = 1 ] && row 37000000 "$BUILD/bench/heapgen" " (8 GiB)" "" "$small_goal"
# The other allocators' rows: the goal of each plugin's issue (pause ≤ 1.5× the single-reader pass)
# and issue 20's (≤ 0.75×).
other_goal="pause ≤ 1.5× (its issue), ≤ 0.75× (issue 20)"
# The same heap on Debian's jemalloc 5.3 (libjemalloc.so.2 linked; plugins/jemalloc).
if [ -e /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 ]; then
	cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$BUILD/bench/heapgen_jemalloc" bench/heapgen.c -l:libjemalloc.so.2
	row 1000000 bench/heapgen_jemalloc.sh " (jemalloc)" "" "pause ≤ 0.75× (issue 20)"
fi
# The same heap on musl's mallocng (static musl-gcc build, plugins/musl), when musl-tools is there.
if command -v musl-gcc >/dev/null; then
	musl-gcc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -static -o "$BUILD/bench/heapgen_musl" bench/heapgen.c
	row 1000000 "$BUILD/bench/heapgen_musl" " (musl static)" "" "pause ≤ 0.75× (issue 20)"
fi
# The CPython row (issue 14): Debian's python3.11 holding 1M small objects in pymalloc.
[ -x /usr/bin/python3.11 ] && row 1000000 bench/pyheap.sh " (CPython objects)" "" "$other_goal"
# gperftools tcmalloc 2.10 (issue 15): the same program with libtcmalloc_minimal preloaded.
TCMALLOC_LIB=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
[ -e "$TCMALLOC_LIB" ] && TCMALLOC_LIB=$TCMALLOC_LIB row 1000000 bench/heapgen_tcmalloc.sh " (tcmalloc preloaded)" "" "$other_goal"
# The same heap on Debian's mimalloc 2.0.9 (libmimalloc.so.2 linked: it replaces malloc; plugins/mimalloc).
if [ -e /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 ]; then
	cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$BUILD/bench/heapgen_mimalloc" bench/heapgen.c -l:libmimalloc.so.2
	row 1000000 "$BUILD/bench/heapgen_mimalloc" " (mimalloc)" "" "$other_goal"
fi
{
	echo
	echo "Goals (issue 20, glibc rows): heaps of small chunks paused ≤ 0.75× the single-reader pass and analysed"
	echo "end to end in ≤ 1.0× of it, memdissect's peak RSS ≤ 64 MiB + 1 % of the heap; heaps of large chunks"
	echo "paused ≤ 0.25× (only the pages holding chunk headers and bin links read). The 8 GiB row: BENCH_BIG=1."
	echo "Earlier goals (issue 3): the 1M-chunk heap end to end in ≤ 0.25 s, the 5M-chunk heap in ≤ 1.4 s."
	echo "CPython row (issue 14): python3.11 with 1M small objects (bench/pyheap.py), pymalloc walked with"
	echo "its type census; goal: pause ≤ 1.5× the raw read of the resident heap."
	echo "mimalloc (issue 16) and tcmalloc (issue 15): pause ≤ 1.5× a raw read of the resident heap; issue 20 asks"
	echo "≤ 0.75× of every allocator's row (jemalloc, musl, CPython, tcmalloc, mimalloc)."
} >> "$tmp"

# Busy threads (issue 11, case 9): tests/targets/busy_threads.c, 8 workers in a malloc/free/realloc
# loop without pause. The same heap at rest (workers parked outside malloc) gives the idle pause.
cc -std=gnu11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -pthread -o "$BUILD/bench/busy_threads" tests/targets/busy_threads.c
busy_attaches=20
rm -f "$BUILD/bench/busy.in"
mkfifo "$BUILD/bench/busy.in"
exec 3<>"$BUILD/bench/busy.in"
"$BUILD/bench/busy_threads" 8 parked < "$BUILD/bench/busy.in" > "$BUILD/bench/busy.out" &
tpid=$!
for _ in $(seq 600); do grep -q ready "$BUILD/bench/busy.out" 2>/dev/null && break; sleep 0.1; done
attach_figures() { # pause_ms consistent polls retries, one line per attach
	for _ in $(seq "$1"); do
		"$BUILD/memdissect" attach --json "$tpid" > "$BUILD/bench/report.json" 2>/dev/null || true
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); t=d["target"]
g=[a for a in d["allocators"] if a["name"]=="glibc"][0]
print(t["pause_ms"], int(bool(g.get("consistent"))), t.get("attach_polls", 0), t["attach_retries"])' "$BUILD/bench/report.json"
	done
}
idle=$(attach_figures 5)
echo run >&3
sleep 0.5
busy=$(attach_figures "$busy_attaches")
echo quit >&3
exec 3>&-
wait "$tpid" 2>/dev/null || true
tpid=
rm -f "$BUILD/bench/busy.in"
idle_med=$(echo "$idle" | awk '{print $1}' | median)
busy_med=$(echo "$busy" | awk '{print $1}' | median)
busy_max=$(echo "$busy" | awk '{print $1}' | sort -n | tail -1)
busy_ok=$(echo "$busy" | awk '{s+=$2} END {print s}')
busy_polls=$(echo "$busy" | awk '{s+=$3} END {print s/NR}')
busy_restops=$(echo "$busy" | awk '{s+=$4} END {print s}')
{
	echo
	echo "Busy threads (issue 11, case 9): bench/run.sh attaches $busy_attaches times to tests/targets/busy_threads.c, 8 workers in a"
	echo "malloc/free/realloc loop without pause (about 9 of 10 looks find a worker inside malloc), after 5 attaches to"
	echo "the same heap at rest (the workers parked outside malloc). Pauses from \`target.pause_ms\`; looks = times a thread"
	echo "let run on alone was stopped and looked at (\`target.attach_polls\`); re-stops = whole-process re-stops."
	echo
	echo "| workers | consistent | idle pause (median) | busy pause (median) | busy pause (max) | busy / idle | looks per attach | re-stops | goal |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	awk -v ok="$busy_ok" -v n="$busy_attaches" -v i="$idle_med" -v b="$busy_med" -v m="$busy_max" -v l="$busy_polls" -v r="$busy_restops" 'BEGIN {
		printf "| 8 | %d of %d | %.1f ms | %.1f ms | %.1f ms | %.2f× | %.0f | %d | ≥ 19 of 20 consistent, pause ≤ 2× idle |\n",
			ok, n, i, b, m, (i > 0 ? b / i : 0), l, r }'
} >> "$tmp"
# Watch sessions (issue 13 part 4, issue 20): each sample after the first against one attach.
./bench/watch.sh "$BUILD" >> "$tmp"

# Cores (issue 21): bench/cores.sh prints its section.
bench/cores.sh >> "$tmp"
mv "$tmp" "$out"
cat "$out"
