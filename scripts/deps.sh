#!/bin/sh
# Install the Debian packages memdissect needs, only when one is missing (apt-get update once).
set -e
pkgs="gcc make pkg-config libdw-dev libelf-dev libunwind-dev libcapstone-dev check libc6-dbg libjemalloc-dev util-linux redis-server chromium gdb elfutils strace valgrind dpkg-dev debhelper lintian fakeroot debuginfod curl iproute2 prometheus-node-exporter man-db bsdextrautils bash-completion postgresql python3 mount libtcmalloc-minimal4 libmimalloc2.0 musl-tools python3.11 libpython3.11-dev libgoogle-perftools-dev libgoogle-perftools4 libmimalloc-dev"
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
