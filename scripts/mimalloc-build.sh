#!/bin/sh
# Build Debian 12's mimalloc 2.0.9 (source package mimalloc 2.0.9+ds-2, the upstream tarball and
# Debian's rules) as static libraries for the mimalloc suite (issue 16): Debian's configuration
# with MI_BUILD_STATIC=ON (release) and the same with MI_SECURE=ON (secure). Debian ships no
# libmimalloc.a. The source comes from `apt-get source --download-only` (scripts/deps.sh adds the
# deb-src line for bookworm); the build is cached in $1 (build/mimalloc): nothing is redone when
# both archives are there.
# Usage: scripts/mimalloc-build.sh OUTDIR   -> OUTDIR/release/libmimalloc.a, OUTDIR/secure/libmimalloc-secure.a
set -e
out=$1
ver=2.0.9+ds-2
[ -n "$out" ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
[ -f "$out/release/libmimalloc.a" ] && [ -f "$out/secure/libmimalloc-secure.a" ] && exit 0
mkdir -p "$out/dl"
out=$(cd "$out" && pwd)
if [ ! -f "$out/dl/mimalloc_$ver.dsc" ]; then
	(cd "$out/dl" && apt-get source --download-only "mimalloc=$ver" >/dev/null 2>"$out/dl/apt.err") || {
		cat "$out/dl/apt.err" >&2
		echo "mimalloc-build: apt-get source mimalloc=$ver failed: is the deb-src line there (scripts/deps.sh)?" >&2
		exit 1
	}
fi
rm -rf "$out/src"
dpkg-source --no-check -x "$out/dl/mimalloc_$ver.dsc" "$out/src" >/dev/null
# Debian's flags (debian/rules: hardening=+all, -Wall -pedantic), RelWithDebInfo, no tests.
cflags="$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS) -Wall -pedantic"
for kind in release secure; do
	secure=OFF
	[ $kind = secure ] && secure=ON
	rm -rf "$out/$kind.build"
	cmake -S "$out/src" -B "$out/$kind.build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS="$cflags" \
		-DMI_BUILD_STATIC=ON -DMI_BUILD_SHARED=OFF -DMI_BUILD_OBJECT=OFF -DMI_BUILD_TESTS=OFF \
		-DMI_INSTALL_TOPLEVEL=ON -DMI_SECURE=$secure >"$out/$kind.log" 2>&1 || { cat "$out/$kind.log" >&2; exit 1; }
	cmake --build "$out/$kind.build" -j2 >>"$out/$kind.log" 2>&1 || { cat "$out/$kind.log" >&2; exit 1; }
	mkdir -p "$out/$kind"
	cp "$out/$kind.build"/libmimalloc*.a "$out/$kind/"
done
