#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# valgrind-e2e.sh [ctest args...]: the end-to-end tests with every ddp
# command under valgrind (memcheck: --leak-check=full,
# --errors-for-leak-kinds=definite,indirect). Fails on any definite or
# indirect leak, invalid read or write, use of uninitialised memory or bad
# free in any ddp run. See docs/ROBUSTNESS.md ("Valgrind").
#
# Builds ddp without sanitizers (-O2 -g, asserts on) in $DDP_VALGRIND_BUILD
# (default build-ci-valgrind/), then runs the chosen e2e tests through ctest
# with DDP_VALGRIND=1: tests/e2e/lib.sh then puts tests/valgrind/valgrind-ddp
# in $DDP, which runs the real binary under valgrind and keeps one report
# per process in $VALGRIND_LOG_DIR/TEST.PID/ (default BUILD/valgrind-logs).
#
#   DDP_VALGRIND_TESTS   ctest -R regex of the tests to run (default: below)
#   DDP_VALGRIND_CAT_EVERY
#                        in cat_sums (whole-tree read-backs) run every Nth
#                        `ddp cat` under valgrind (default 16; 1 = all)
#   bash scripts/valgrind-e2e.sh                       # what CI runs
#   DDP_VALGRIND_TESTS='e2e/test_engine$' DDP_VALGRIND_CAT_EVERY=1 bash scripts/valgrind-e2e.sh
#
# The tests CI runs, and why not the others:
#   test_engine, test_badinput, test_backup_restore, test_maintenance:
#     every command the CLI has but mount, on good and on bad input (tampered
#     and forged stubs, a corrupt container, a full disk, an unreadable file).
#     Shortened in one place: cat_sums, which reads a whole tree back with
#     one `ddp cat` per file, runs 1 file in 16 under valgrind (the first of
#     each tree always) and the rest on the real binary. Those reads all take
#     the same path, and under valgrind each costs 1-3 s: all of them made
#     test_engine alone take over 15 minutes. Every other ddp command, the
#     direct `ddp cat`s of bad input included, always runs under valgrind.
#     About 4 minutes on 2 idle cores (-j2).
#   test_compact_restore: restores through the redirection tables of
#     compacted containers, hostile tables and headers included (about 2
#     minutes on its own).
#   not test_fault: it preloads the fault shim into ddp and walks hundreds of
#     fault points (an hour under valgrind); its error paths run under the
#     ASan build, whose leak checker covers them.
#   not test_crash: it kills ddp with SIGKILL at random; a killed process
#     never reaches valgrind's leak check, and its time depends on the
#     process' speed.
#   not test_mount: the FUSE daemon forks itself into the background and is
#     timed by the test (mount within seconds); valgrind slows it past that.
#   not test_pkgconfig: it installs and links an outside program and runs
#     ddp only once; nothing there that the others do not run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${DDP_VALGRIND_BUILD:-$root/build-ci-valgrind}
tests=${DDP_VALGRIND_TESTS:-'^e2e/test_(engine|badinput|backup_restore|maintenance|compact_restore)$'}
jobs=$(nproc 2>/dev/null || echo 2)
command -v valgrind >/dev/null || { echo "valgrind-e2e: valgrind is not installed (scripts/install-deps.sh)" >&2; exit 2; }

# -O2 -g: valgrind runs optimized code faster, and the reports still have
# file:line; without -DNDEBUG so the library's asserts stay on.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
  -DDDP_SANITIZE=OFF >/dev/null
# ddp and the helper programs the e2e tests drive (tests/tools: rsfiles,
# ddp_compact_all, ...).
mapfile -t tools < <(find tests/tools -maxdepth 1 -name '*.c' -printf '%f\n' | sed 's/\.c$//' | sort)
cmake --build "$build" -j"$jobs" --target ddp "${tools[@]}" >/dev/null

logs=${VALGRIND_LOG_DIR:-$build/valgrind-logs}
rm -rf "$logs"
mkdir -p "$logs"
chmod 1777 "$logs"
export DDP_VALGRIND=1 VALGRIND_LOG_DIR=$logs DDP_VALGRIND_CAT_EVERY=${DDP_VALGRIND_CAT_EVERY:-16}
echo "== valgrind e2e: $tests (ddp cat in cat_sums: 1 in $DDP_VALGRIND_CAT_EVERY; reports in $logs)"
rc=0
ctest --test-dir "$build" --output-on-failure -j"$jobs" -R "$tests" "$@" || rc=1

# Each test's finish() already fails on a report; look again here in case a
# test stopped before its finish().
runs=$(find "$logs" -name '*.log' | wc -l)
# A report is a log with anything in it but the openat2 warning of
# valgrind 3.19 (tests/valgrind/vg-report says why).
reports=$(find "$logs" -name '*.log' -size +0 | sort | while IFS= read -r r; do
  [[ -z $(tests/valgrind/vg-report "$r") ]] || echo "$r"; done)
if [[ -n $reports ]]; then
  echo "valgrind-e2e: $(wc -l <<<"$reports") of $runs ddp runs have a valgrind report:"
  while IFS= read -r r; do echo "--- $r"; tests/valgrind/vg-report "$r"; done <<<"$reports"
  rc=1
fi
((runs > 0)) || { echo "valgrind-e2e: no ddp run went through valgrind" >&2; rc=1; }
# Real findings, suppressed until their owners fix them: name them every run.
known=$(grep -o 'owner-fixing:[^ ]*' tests/valgrind/ddp.supp | grep -v '^owner-fixing:FILE' || true)
[[ -z $known ]] || echo "valgrind-e2e: known findings, suppressed while their owner fixes them (tests/valgrind/ddp.supp):" $known
((rc == 0)) && echo "valgrind-e2e: clean ($runs ddp runs under valgrind)"
exit $rc
