#!/bin/sh
# The body of `make demo`: start the bundled demo target (a fragmented heap that waits), attach
# memdissect to it (text report), then end the target. Usage: scripts/demo.sh [BUILD_DIR]
# The target is ended on every path (memdissect failing, Ctrl-C, a missing binary), and the
# script exits with memdissect's status.
set -u

build=${1:-build}
demo="$build/targets/demo"
md="$build/memdissect"
for f in "$demo" "$md"; do
	if [ ! -x "$f" ]; then
		echo "demo: $f is missing: run make first" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/memdissect-demo.XXXXXX") || exit 1
pid=""
cleanup() {
	# EOF on its stdin makes the demo exit by itself; a kill makes sure of it.
	exec 3>&-
	if [ -n "$pid" ]; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 20 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The demo waits for commands on stdin: a fifo held open on fd 3 keeps it waiting.
mkfifo "$tmp/in" || exit 1
"$demo" <"$tmp/in" >"$tmp/out" &
pid=$!
exec 3>"$tmp/in"

i=0
until grep -qx ready "$tmp/out" 2>/dev/null; do
	if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 100 ]; then
		echo "demo: the demo target did not start" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done

echo "== demo target pid $pid; what it says about its own heap (glibc mallinfo2):"
grep -v -x ready "$tmp/out" | sed 's/^/   /'
echo "== memdissect attach $pid"
"$md" attach "$pid"
status=$?
if [ $status -ne 0 ]; then
	echo "demo: memdissect exited with status $status" >&2
fi
echo quit >&3
exit $status
