#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-deb.sh: build the Debian packages (ddp, libddp0, libddp-dev) from this
# tree with dpkg-buildpackage, install them on this machine (apt-get install
# ./*.deb), then check what was installed: the demo (scripts/demo.sh) against
# /usr/bin/ddp, pkg-config --libs libddp, a program built against the
# installed library, the man pages and `systemd-analyze verify` on the
# installed units. Needs root (or sudo) for the install; the packages stay
# installed (apt-get remove ddp libddp0 libddp-dev takes them away).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
bash "$src/scripts/install-deps.sh"
sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
work=$(mktemp -d /tmp/ddp-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)

echo "== copying the tree to $work/ddp"
mkdir -p "$work/ddp"
tar -C "$src" --exclude=./.git --exclude='./build*' --exclude=./debian/.debhelper -cf - . | tar -C "$work/ddp" -xf -
echo "== dpkg-buildpackage -us -uc -b"
(cd "$work/ddp" && dpkg-buildpackage -us -uc -b -j2 >"$work/build.log" 2>&1) || { tail -40 "$work/build.log"; exit 1; }
ls "$work"/*.deb
for p in ddp libddp0 libddp-dev; do ls "$work"/${p}_*.deb >/dev/null; done

echo "== apt-get install ./*.deb"
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$work"/*.deb >/dev/null
test -x /usr/bin/ddp
/usr/bin/ddp --version

echo "== pkg-config --libs libddp (installed)"
libs=$(pkg-config --libs libddp)
echo "$libs"
[[ "$libs" == *-lddp* ]]
cat >"$work/t.c" <<'C'
#include <ddp/ddp.h>
#include <stdio.h>
int main(void) { printf("%s\n", ddp_strerror(DDP_E_VOLUME_DEDUP_DISABLED)); return 0; }
C
cc "$work/t.c" $(pkg-config --cflags libddp) $libs -o "$work/t"
"$work/t"

echo "== man pages"
MANWIDTH=80 man ddp-optimize | grep -q "^NAME"

echo "== systemd units"
if command -v systemd-analyze >/dev/null; then
  for u in /usr/lib/systemd/system/ddp-*@.service /usr/lib/systemd/system/ddp-*@.timer; do
    systemd-analyze verify "$u"
  done
fi

echo "== the demo against /usr/bin/ddp"
DDP=/usr/bin/ddp DDP_DEMO_DIR="$work/demo" bash "$src/scripts/demo.sh"
echo "check-deb: OK in $(( $(date +%s) - t0 )) s"
