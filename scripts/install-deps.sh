#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# install-deps.sh: install what ddp needs to build and test, from Debian
# packages (apt-get; sudo when not root). With --bench, also the peers the
# benchmarks measure against (restic, borgbackup with python3-llfuse for
# `borg mount`, casync) and npm for the data set.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libssl-dev libzstd-dev libxxhash-dev libarchive-dev
      libfuse3-dev fuse3 libcmocka-dev python3 xxd libcurl4-openssl-dev)
# tests/e2e/test_windows.sh builds NTFS images (mkntfs, in ntfs-3g), mounts them with
# ntfs-3g and sets reparse points with setfattr (attr).
pkgs+=(ntfs-3g attr)
# The robustness checks of scripts/test.sh (docs/ROBUSTNESS.md): valgrind on
# the e2e tests, cppcheck and clang-tidy (scripts/static-checks.sh), clang
# and libFuzzer for fuzz/ (libFuzzer's runtime is in libclang-rt-dev, only
# recommended by clang, and recommends are not installed here).
pkgs+=(valgrind cppcheck clang clang-tidy libclang-rt-dev)
# tests/e2e/test_samba.sh serves a ddp mount with Samba and uses it over SMB
# (smbclient, and libsmbclient through Debian's python3 for writes at an offset).
pkgs+=(samba smbclient python3-smbc)
# tests/e2e/test_s3.sh backs up to and restores from a real single-node Ceph
# cluster (monitor, OSD, RADOS Gateway) started by scripts/ceph/start-cluster.sh.
pkgs+=(ceph-mon ceph-osd ceph-mgr radosgw ceph-common)
# The man pages (docs/man/*.scd) and their check (man -l); the Debian packages
# (debian/, scripts/check-deb.sh); script(1) for the progress test under a
# pseudo-terminal (bsdutils); systemd-analyze for the units' check.
pkgs+=(scdoc man-db debhelper dpkg-dev fakeroot bsdutils systemd)
# tests/e2e/test_security_restore.sh races an unprivileged user it creates
# (useradd/userdel: passwd; setpriv: util-linux) with Debian's /usr/bin/python3.
pkgs+=(passwd util-linux)
# test_restore_parallel counts a restore's syncfs calls with strace.
pkgs+=(strace)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(restic borgbackup python3-llfuse casync hyperfine time)
  # npm (for the data set) comes with the machine's Node.js; Debian's npm
  # package would conflict with it, so it is installed only when missing.
  command -v npm >/dev/null || pkgs+=(npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  # python3 may come from elsewhere than Debian (pyenv); any python3 on PATH
  # will do for the scripts (python3-smbc brings Debian's own with it).
  [[ $p == python3 ]] && command -v python3 >/dev/null && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: everything is installed"
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt (unattended-upgrades, a second install) may hold dpkg's lock: wait
# for it up to 10 minutes rather than fail at once.
lock=(-o DPkg::Lock::Timeout=600)
$sudo apt-get "${lock[@]}" update -qq
$sudo apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
