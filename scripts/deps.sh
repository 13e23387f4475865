#!/bin/sh
# Install the Debian packages memdissect needs, only when one is missing (apt-get update once).
set -e
pkgs="gcc g++ make cmake pkg-config libdw-dev libelf-dev libunwind-dev libcapstone-dev check libc6-dbg libjemalloc-dev util-linux redis-server chromium gdb elfutils strace valgrind dpkg-dev debhelper lintian fakeroot debuginfod curl iproute2 prometheus-node-exporter man-db bsdextrautils bash-completion postgresql python3 mount libtcmalloc-minimal4 libmimalloc2.0 musl-tools python3.11 libpython3.11-dev libgoogle-perftools-dev libgoogle-perftools4 libmimalloc-dev"
# Debian's source packages (deb-src) for bookworm: scripts/mimalloc-build.sh builds mimalloc 2.0.9
# from them (apt-get source), as Debian ships no static libmimalloc.a.
src_list=/etc/apt/sources.list.d/memdissect-src.sources
if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	if [ "$(id -u)" = 0 ]; then
		printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$src_list"
		apt-get update -qq
	else
		echo "memdissect: no deb-src line for bookworm: as root, add one (see $src_list in scripts/deps.sh)" >&2
	fi
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "memdissect: installing missing Debian packages:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "memdissect: not root: run as root or install them by hand: apt-get install$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
