#!/bin/sh
# Regenerate tests/data/sysroot-glibc/ (issue 13, deliverable 5): a real `memdissect snapshot`
# core of tests/targets/glibc_truth in its "tcache" mode (a 660 KiB main arena, tcache and fastbin
# chunks of every small size) and every file that process maps, so that `memdissect core
# --sysroot` gives the same report on any machine. The golden files made from it
# (tests/data/golden/core-glibc.*) are rewritten by
#   MD_UPDATE_GOLDEN=1 CK_RUN_SUITE=core CK_RUN_CASE=golden make test
# after review of the difference.
# The target runs from a fixed path (/tmp/memdissect-golden/glibc_truth): the path is recorded in
# the core and printed in every report, so it must not be this checkout's path.
# Usage: scripts/golden-cores.sh [BUILD]   (BUILD: the build directory, default build)
set -e
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/tests/data/sysroot-glibc
stage=/tmp/memdissect-golden
[ -x "$build/memdissect" ] && [ -x "$build/targets/glibc_truth" ] || {
	echo "golden-cores: build first (make and make $build/targets/glibc_truth)" >&2
	exit 2
}
build=$(cd "$build" && pwd)
rm -rf "$stage"
mkdir -p "$stage/root"
cp "$build/targets/glibc_truth" "$stage/glibc_truth"
mkfifo "$stage/in"
# The target reads commands from the fifo; its ground truth (mallinfo2) goes to truth.txt.
(cd "$stage" && exec ./glibc_truth tcache <in >truth.txt) &
pid=$!
exec 3>"$stage/in"
i=0
until grep -qx ready "$stage/truth.txt" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "golden-cores: glibc_truth never said ready" >&2; kill $pid; exit 1; }
	sleep 0.1
done
# Every file the process maps, copied to the same path under the sysroot.
awk '$6 ~ /^\// { print $6 }' /proc/$pid/maps | sort -u >"$stage/files"
while read -r f; do
	mkdir -p "$stage/root$(dirname "$f")"
	cp "$f" "$stage/root$f"
done <"$stage/files"
env -u DEBUGINFOD_URLS MEMDISSECT_PLUGIN_PATH=$build/plugins "$build/memdissect" snapshot -o "$stage/root/snapshot.core" $pid \
	>"$stage/snapshot.txt"
echo quit >&3
exec 3>&-
wait $pid
rm -rf "$out"
mkdir -p "$out"
# One archive (the core is sparse, mostly zeros; the libraries compress to a third).
tar -C "$stage/root" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf - . | xz -9 >"$out/sysroot.tar.xz"
sed -n '/^mallinfo\./p' "$stage/truth.txt" >"$out/truth.txt"
{
	echo "pid $pid"
	echo "files:"
	while read -r f; do
		printf '  %s %s\n' "$(sha256sum <"$f" | cut -c1-16)" "$f"
	done <"$stage/files"
	echo "built: $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2)"
} >"$out/manifest.txt"
rm -rf "$stage"
echo "golden-cores: $out: $(du -k "$out/sysroot.tar.xz" | cut -f1) KiB archive"
