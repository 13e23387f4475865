#!/usr/bin/env bash
# The watch row of make bench (issue 13 part 4, issue 20): on the 1M-chunk heapgen target, the cost
# of one attach (memdissect attach --json, 5 times: pause from target.pause_ms, the walk from
# MEMDISSECT_DEBUG_TIMING) against the samples of one watch session (watch --json, 8 samples: its
# sample_ms, pause_ms, walk_ms, open_ms). Medians. Prints a Markdown section on stdout; bench/run.sh
# appends it to docs/performance.md. Usage: bench/watch.sh BUILD (after bench/run.sh built heapgen).
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
[ -x "$BUILD/bench/heapgen" ] || cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$BUILD/bench/heapgen" bench/heapgen.c
[ -x "$BUILD/bench/rawread" ] || cc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -pthread -o "$BUILD/bench/rawread" bench/rawread.c
n=1000000
attaches=5
samples=8
"$BUILD/bench/heapgen" "$n" 4 > "$BUILD/bench/watch_heapgen.out" &
wpid=$!
trap 'kill "$wpid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q ready "$BUILD/bench/watch_heapgen.out" 2>/dev/null && break; sleep 0.1; done
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
raw=$(for _ in 1 2 3; do "$BUILD/bench/rawread" "$wpid" | awk '{print $4 * 1000}'; done | median)
# One attach, as `memdissect attach` does it: pause, walk (inside the pause), total.
# Each after the same second of idleness as a watch sample follows (--interval 1): on this kind of
# machine an attach right after another is a third faster than one after a second idle, for
# attach and watch alike, and that is not the session's doing.
one=$(for _ in $(seq "$attaches"); do
	sleep 1
	MEMDISSECT_DEBUG_TIMING=1 "$BUILD/memdissect" attach --json "$wpid" > "$BUILD/bench/watch_attach.json" 2> "$BUILD/bench/watch_attach.err"
	walk=$(awk '$1 == "timing:" && $2 == "walk" {print $3}' "$BUILD/bench/watch_attach.err")
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["target"]; print(t["pause_ms"], sys.argv[2], t["total_ms"])' \
		"$BUILD/bench/watch_attach.json" "$walk"
done)
one_pause=$(echo "$one" | awk '{print $1}' | median)
one_walk=$(echo "$one" | awk '{print $2}' | median)
one_total=$(echo "$one" | awk '{print $3}' | median)
# One watch session; the interval leaves the target running most of the time.
"$BUILD/memdissect" watch "$wpid" --json --interval 1 --count "$samples" > "$BUILD/bench/watch.jsonl" 2>/dev/null
figures=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["type"] == "sample":
        s = d["session"]
        print(d["index"], d["sample_ms"], d["pause_ms"], d["walk_ms"], d["open_ms"], s["plugin_dlopens"], s["symbol_tables"])' \
	"$BUILD/bench/watch.jsonl")
first=$(echo "$figures" | awk '$1 == 0')
later=$(echo "$figures" | awk '$1 > 0')
first_total=$(echo "$first" | awk '{print $2}')
later_total=$(echo "$later" | awk '{print $2}' | median)
later_pause=$(echo "$later" | awk '{print $3}' | median)
later_walk=$(echo "$later" | awk '{print $4}' | median)
later_open=$(echo "$later" | awk '{print $5}' | median)
later_max=$(echo "$later" | awk '{print $2}' | sort -n | tail -1)
later_own=$(echo "$later" | awk '$3 > 0 {print $2 / $3}' | median)
dlopens=$(echo "$figures" | awk '{print $6}' | sort -nu | paste -sd, -)
tables=$(echo "$figures" | awk '{print $7}' | sort -nu | paste -sd, -)
case $tables in
*,*) once="it grew during the session" ;;
*) once="the same figure at every sample: read once" ;;
esac
kill "$wpid"
wait "$wpid" 2>/dev/null || true
echo
echo "Watch (issue 13 part 4, issue 20): bench/watch.sh on the $n-chunk heapgen target. One attach = \`memdissect attach --json\`,"
echo "median of $attaches, each after 1 s idle like a watch sample (pause from \`target.pause_ms\`, the walk, which runs inside the pause, from MEMDISSECT_DEBUG_TIMING). Watch ="
echo "one \`memdissect watch --json --interval 1 --count $samples\` session: sample 0 is its first attach, the later samples reuse the"
echo "plugins and the symbols (each sample's \`sample_ms\`, \`pause_ms\`, \`walk_ms\`, \`open_ms\` from watch's JSON; medians of samples 1-$((samples - 1)))."
echo "Plugins dlopened over the session: $dlopens; symbol tables read: $tables ($once)."
echo "Goal: a later sample's total ≤ 1.1× one attach's pause (the walk runs inside it); \"own pause\" is each later sample's"
echo "total over its own pause, the cost of everything outside the pause, free of the noise between runs."
echo
echo "| chunks | raw read | one attach: pause | walk | total | watch sample 0 | later samples: total (median) | max | pause | walk | before the pause | later / one attach's pause | later / own pause | goal |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
awk -v n="$n" -v raw="$raw" -v op="$one_pause" -v ow="$one_walk" -v ot="$one_total" -v ft="$first_total" -v lt="$later_total" \
	-v lm="$later_max" -v lp="$later_pause" -v lw="$later_walk" -v lo="$later_open" -v lr="$later_own" 'BEGIN {
	printf "| %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f× | %.2f× | ≤ 1.10× |\n",
		n, raw, op, ow, ot, ft, lt, lm, lp, lw, lo, (op > 0 ? lt / op : 0), lr }'
