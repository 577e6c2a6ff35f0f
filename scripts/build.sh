#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# build.sh [release|asan]: configure and build ddp into build/ (release) or
# build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc 2>/dev/null || echo 2)
case "$kind" in
  release) cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
           cmake --build build -j"$jobs" ;;
  asan)    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDDP_SANITIZE=ON >/dev/null
           cmake --build build-asan -j"$jobs" ;;
  *) echo "usage: build.sh [release|asan]" >&2; exit 2 ;;
esac
