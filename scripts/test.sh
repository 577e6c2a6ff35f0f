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
# Not under ASan: test_fault preloads a fault-injection shim (an LD_PRELOAD
# library cannot come before the ASan runtime), test_crash kills ddp at random
# (the sanitizer adds nothing there and triples its time), and test_pkgconfig
# links an outside, uninstrumented program against the installed library.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -E 'e2e/test_(fault|crash|pkgconfig)'
