#!/bin/sh
# Build and run the libFuzzer harnesses (fuzz/fuzz_*.c) with clang, ASan and UBSan.
#   scripts/fuzz.sh                 every harness, FUZZ_SECONDS each (default 300)
#   FUZZ_TARGETS="core" FUZZ_SECONDS=60 scripts/fuzz.sh
#   FUZZ_TARGETS="glibc_walk jemalloc_walk musl_walk pymalloc_walk tcmalloc_walk" scripts/fuzz.sh   the allocator walkers
# Work files go to $FUZZ_DIR (default build-fuzz/): binaries, corpora (kept between runs, so a
# later run starts where the last stopped) and crash-* files. The core harness is seeded with
# cores made here and shrunk (headers and notes kept, data cut down): a kernel core and a
# memdissect snapshot of the glibc test target, and a gdb gcore when gdb is installed.
# Exit status: 0 when no harness found a crash.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
FUZZ_DIR=${FUZZ_DIR:-$ROOT/build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
FUZZ_TARGETS=${FUZZ_TARGETS:-"core procfs cgroup json glibc_walk jemalloc_walk musl_walk pymalloc_walk tcmalloc_walk mimalloc_walk"}
CLANG=${CLANG:-clang}
# clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev), installed when missing.
have_fuzzer() {
	command -v "$CLANG" >/dev/null &&
		echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
			"$CLANG" -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1
}
if ! have_fuzzer; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "fuzz: installing clang and libclang-rt-dev"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
	fi
	have_fuzzer || { echo "fuzz: clang with -fsanitize=fuzzer is needed (apt-get install clang libclang-rt-dev)" >&2; exit 1; }
fi
mkdir -p "$FUZZ_DIR"
FLAGS="-std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -Iinclude -Iattach -Isrc $(pkg-config --cflags libdw libelf)"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

build() { # name, sources..., then -- libs
	name=$1; shift
	echo "fuzz: building fuzz_$name"
	"$CLANG" $FLAGS $SAN -o "$FUZZ_DIR/fuzz_$name" "$@"
}

seed_core() {
	corpus=$1
	seeds=$FUZZ_DIR/core-seeds
	mkdir -p "$corpus" "$seeds"
	[ -n "$(ls -A "$corpus" 2>/dev/null)" ] && return 0
	echo "fuzz: making seed cores"
	"$CLANG" $FLAGS -DFUZZ_CORE_SEED_MAIN -o "$FUZZ_DIR/mkseed_core" fuzz/fuzz_core.c
	make -s all build/targets/glibc_truth >/dev/null
	tmp=$(mktemp -d)
	# The targets read commands on stdin: a FIFO we hold open keeps them waiting.
	mkfifo "$tmp/in"
	exec 3<>"$tmp/in"
	# A kernel core: our limit and filter, in a directory of ours (core_pattern untouched).
	pattern=$(cat /proc/sys/kernel/core_pattern)
	case "$pattern" in
	*/*|\|*) echo "fuzz: core_pattern is '$pattern': no kernel core seed" ;;
	*)
		(cd "$tmp" && ulimit -c unlimited && exec "$ROOT/build/targets/glibc_truth" kth <"$tmp/in" >/dev/null) &
		pid=$!
		sleep 1
		echo 0x33 >/proc/$pid/coredump_filter
		kill -ABRT $pid
		wait $pid 2>/dev/null || true
		for c in "$tmp"/core*; do [ -f "$c" ] && mv "$c" "$tmp/kernel.core"; done
		;;
	esac
	"$ROOT/build/targets/glibc_truth" threads <"$tmp/in" >/dev/null &
	pid=$!
	sleep 1.5
	./memdissect snapshot "$pid" -o "$tmp/snapshot.core" >/dev/null || true
	if command -v gdb >/dev/null; then
		gdb --batch -nx -iex 'set debuginfod enabled off' -p "$pid" -ex "gcore $tmp/gdb.core" >/dev/null 2>&1 || true
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	exec 3>&-
	n=0
	for c in "$tmp"/kernel.core "$tmp"/snapshot.core "$tmp"/gdb.core; do
		[ -f "$c" ] || continue
		b=$(basename "$c" .core)
		"$FUZZ_DIR/mkseed_core" "$c" "$seeds/$b" && cp "$seeds/$b" "$corpus/$b" && n=$((n + 1))
		# Truncated at a few points too: the parser's refusals are part of what is fuzzed.
		size=$(stat -c %s "$seeds/$b")
		for cut in 64 200 1000 $((size / 2)); do
			[ "$cut" -lt "$size" ] && head -c "$cut" "$seeds/$b" >"$corpus/$b.cut$cut"
		done
	done
	rm -rf "$tmp"
	echo "fuzz: $n seed cores in $corpus"
}

status=0
for t in $FUZZ_TARGETS; do
	corpus=$FUZZ_DIR/corpus-$t
	mkdir -p "$corpus"
	case $t in
	core)
		build core fuzz/fuzz_core.c attach/core.c attach/coremap.c attach/target.c attach/procfs.c attach/symbols.c \
			attach/unwind.c src/error.c $(pkg-config --libs libdw libelf) -lunwind-ptrace -lunwind-generic -lunwind
		seed_core "$corpus"
		extra=""
		maxlen=1048576 ;;
	procfs)
		build procfs fuzz/fuzz_procfs.c attach/procfs.c src/error.c
		extra=tests/data/procfs
		maxlen=65536 ;;
	cgroup)
		build cgroup fuzz/fuzz_cgroup.c attach/cgroupfs.c attach/procfs.c src/error.c
		extra=tests/data/cgroup
		maxlen=65536 ;;
	json)
		build json fuzz/fuzz_json.c src/node.c src/error.c -lm
		extra=tests/data/golden
		maxlen=65536 ;;
	glibc_walk|jemalloc_walk|musl_walk|pymalloc_walk|tcmalloc_walk|mimalloc_walk)
		# The walkers over a synthetic image of a real heap (attach/image.c); the input is a
		# mutation script, the seed core is in tests/data/fuzz-regressions/ (see its README).
		plugin=${t%_walk}
		build "$t" fuzz/fuzz_$t.c $(ls attach/*.c) $(ls src/*.c | grep -v src/main.c) plugins/$plugin/*.c plugins/common/*.c \
			-Iplugins/$plugin -Iplugins/common $(pkg-config --cflags --libs libdw libelf capstone libunwind-ptrace) -ldl -lpthread -lm
		export MD_FUZZ_SEED=$ROOT/tests/data/fuzz-regressions/seed-$plugin.core
		# Regression inputs double as seeds; an empty script is the unmutated heap.
		[ -n "$(ls -A "$corpus" 2>/dev/null)" ] || printf '' >"$corpus/empty"
		extra=""
		ls "$ROOT"/tests/data/fuzz-regressions/$plugin-* >/dev/null 2>&1 && cp "$ROOT"/tests/data/fuzz-regressions/$plugin-* "$corpus/"
		maxlen=$((14 * 64))
		# libelf loses 269 bytes once per process while libdwfl reads the seed's modules
		# (setup, not per input): not ours to fix, and it would end every run as a "leak".
		echo "leak:libelf.so" >"$FUZZ_DIR/lsan-walk.supp"
		export LSAN_OPTIONS=suppressions=$FUZZ_DIR/lsan-walk.supp ;;
	*) echo "fuzz: unknown harness $t" >&2; exit 2 ;;
	esac
	echo "fuzz: running fuzz_$t for ${FUZZ_SECONDS}s"
	log=$FUZZ_DIR/fuzz_$t.log
	# -fork would use both cores; one process keeps the machine usable.
	if ! (cd "$FUZZ_DIR" && ASAN_OPTIONS=detect_leaks=1 "./fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
		-max_len=$maxlen -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 "$corpus" $( [ -n "$extra" ] && echo "$ROOT/$extra") \
		>"$log" 2>&1); then
		echo "fuzz: fuzz_$t FAILED, see $log and $FUZZ_DIR/crash-*" >&2
		status=1
	fi
	grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|cov: .*ft:" "$log" | tail -4 || true
done
exit $status
