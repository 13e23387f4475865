#!/bin/sh
# Regenerate tests/data/sysroot-glibc/ and tests/data/sysroot-jemalloc/ (issue 13, deliverable 5):
# a real `memdissect snapshot` core of a small heap and every file that process maps, so that
# `memdissect core --sysroot` gives the same report on any machine:
#   glibc     tests/targets/glibc_truth tcache (a 660 KiB main arena, tcache and fastbin chunks of
#             every small size)
#   jemalloc  tests/targets/jemalloc_small (arena 0: 3000 small regions, 12 large, a third freed)
# The golden files made from them (tests/data/golden/core-<name>.*) are rewritten by
#   MD_UPDATE_GOLDEN=1 CK_RUN_SUITE=core CK_RUN_CASE=golden make test
# after review of the difference.
# The target runs from a fixed path (/tmp/memdissect-golden/<program>): the path is recorded in
# the core and printed in every report, so it must not be this checkout's path.
# Usage: scripts/golden-cores.sh [BUILD [NAME...]]   (BUILD: the build directory, default build;
#        NAME: glibc, jemalloc; default both)
set -e
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
stage=/tmp/memdissect-golden
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- glibc jemalloc
[ -x "$build/memdissect" ] || { echo "golden-cores: build first (make)" >&2; exit 2; }
build=$(cd "$build" && pwd)

# make_sysroot NAME TRUTH_FILTER PROGRAM [ARG...]: TRUTH_FILTER (a sed -n script) keeps the
# target's "key value" lines whose key is a path in the allocator's JSON object.
make_sysroot() {
	name=$1 filter=$2 prog=$3
	shift 3
	out=$top/tests/data/sysroot-$name
	[ -x "$build/targets/$prog" ] || { echo "golden-cores: make $build/targets/$prog first" >&2; exit 2; }
	rm -rf "$stage"
	mkdir -p "$stage/root"
	cp "$build/targets/$prog" "$stage/$prog"
	mkfifo "$stage/in"
	# The target reads commands from the fifo; its ground truth goes to truth.txt.
	(cd "$stage" && exec "./$prog" "$@" <in >truth.txt) &
	pid=$!
	exec 3>"$stage/in"
	i=0
	until grep -qx ready "$stage/truth.txt" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "golden-cores: $prog never said ready" >&2; kill $pid; exit 1; }
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
	mkdir -p "$out"
	rm -f "$out/sysroot.tar.xz" "$out/truth.txt" "$out/manifest.txt"
	# One archive: the core is sparse, and its resident library pages are the libraries' bytes,
	# which xz finds again in the same stream.
	tar -C "$stage/root" --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf - . | xz -9 >"$out/sysroot.tar.xz"
	sed -n "$filter" "$stage/truth.txt" >"$out/truth.txt"
	{
		echo "$prog${*:+ $*}: pid $pid"
		echo "files:"
		while read -r f; do
			printf '  %s %s\n' "$(sha256sum <"$f" | cut -c1-16)" "$f"
		done <"$stage/files"
		echo "built: $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(getconf GNU_LIBC_VERSION | cut -d' ' -f2)"
	} >"$out/manifest.txt"
	rm -rf "$stage"
	echo "golden-cores: $out: $(du -k "$out/sysroot.tar.xz" | cut -f1) KiB archive"
}

for name in "$@"; do
	case $name in
	glibc) make_sysroot glibc '/^mallinfo\./p' glibc_truth tcache ;;
	jemalloc) make_sysroot jemalloc '/^\(stats\.[a-z]*\|tcache_bytes\|pdirty\|pmuzzy\|pactive\) /p' jemalloc_small ;;
	*) echo "golden-cores: no sysroot named $name" >&2; exit 2 ;;
	esac
done
