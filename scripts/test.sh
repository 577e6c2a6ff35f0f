#!/usr/bin/env bash
# test.sh: the one command that installs what is missing, builds ddp twice
# (release, and ASan+UBSan) and runs every test on both builds with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh release
bash scripts/build.sh asan
jobs=$(nproc 2>/dev/null || echo 2)
echo "== tests: release build"
ctest --test-dir build --output-on-failure -j"$jobs"
echo "== tests: ASan+UBSan build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
