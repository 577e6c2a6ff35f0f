#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh: the one command that installs what is missing, builds ddp twice
# (release, and ASan+UBSan) and runs every test on both builds with ctest,
# then the robustness checks of docs/ROBUSTNESS.md: cppcheck and clang-tidy
# (scripts/static-checks.sh), the e2e tests under valgrind
# (scripts/valgrind-e2e.sh) and every libFuzzer target for a few seconds
# (fuzz/run.sh), and the Debian packages built, installed and checked
# (scripts/check-deb.sh). Every step runs even when an earlier one failed; the end
# prints each step's time and result, and the exit status is 1 if any failed.
#
#   DDP_TEST_STEPS="static valgrind"   only these steps (default: all, in order:
#                                      release asan static valgrind fuzz deb)
#   DDP_FUZZ_SECONDS=10                how long each fuzz target runs
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)
steps=" ${DDP_TEST_STEPS:-release asan static valgrind fuzz deb} "
want() { [[ $steps == *" $1 "* ]]; }

report=()
failed=0
# step NAME CMD...: run, time, and remember the result.
step() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== $name"
  "$@" || rc=$?
  local took=$((SECONDS - t0))
  if ((rc == 0)); then report+=("$(printf '%-32s %4d s  ok' "$name" "$took")")
  else report+=("$(printf '%-32s %4d s  FAILED (exit %d)' "$name" "$took" "$rc")"); failed=1; fi
  return 0
}

start=$SECONDS
bash scripts/install-deps.sh || exit 1

release_tests() {
  bash scripts/build.sh release && ctest --test-dir build --output-on-failure -j"$jobs"
}
# Not under ASan: test_fault preloads a fault-injection shim (an LD_PRELOAD
# library cannot come before the ASan runtime), test_crash kills ddp at random
# (the sanitizer adds nothing there and triples its time), and test_pkgconfig
# links an outside, uninstrumented program against the installed library.
# The security races run for half their time there (they ran whole in the
# release build; under ASan they look for memory errors on the same paths).
asan_tests() {
  bash scripts/build.sh asan &&
    DDP_RACE_SECONDS=${DDP_ASAN_RACE_SECONDS:-10} DDP_SECURITY_SECONDS=${DDP_ASAN_RACE_SECONDS:-10} \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan --output-on-failure -j"$jobs" -E 'e2e/test_(fault|crash|pkgconfig)'
}
want release && step "tests: release build" release_tests
want asan && step "tests: ASan+UBSan build" asan_tests
# cppcheck and clang-tidy over lib/ and programs/; clang-tidy's compile
# commands come from a clang configuration in build-ci-static/.
want static && step "static checks (cppcheck, clang-tidy)" \
  env DDP_STATIC_BUILD=build-ci-static bash scripts/static-checks.sh
# The e2e tests with every ddp command under valgrind (a plain -O2 -g build
# in build-ci-valgrind/); which tests, and why, in scripts/valgrind-e2e.sh.
want valgrind && step "e2e tests under valgrind" \
  env DDP_VALGRIND_BUILD="$root/build-ci-valgrind" bash scripts/valgrind-e2e.sh
# Every libFuzzer target for a few seconds from the seed corpora (clang,
# build-ci-fuzz/; the seeds are made with build/ddp, else build-asan/ddp):
# any crash, sanitizer report, leak, timeout or broken invariant fails.
# Reproducers: build-ci-fuzz/fuzz-artifacts/, logs: build-ci-fuzz/fuzz-logs/.
fuzz_briefly() {
  [[ -x build/ddp ]] || bash scripts/build.sh release || return
  DDP_FUZZ_BUILD="$root/build-ci-fuzz" bash fuzz/run.sh "${DDP_FUZZ_SECONDS:-10}"
}
want fuzz && step "fuzz: each target ${DDP_FUZZ_SECONDS:-10} s" fuzz_briefly
# The Debian packages: built with dpkg-buildpackage, installed, and the demo,
# pkg-config, a program linked against the installed library, the man pages
# and the systemd units checked against the installed files.
want deb && step "Debian packages (build, install, check)" bash scripts/check-deb.sh

echo "== summary"
printf '  %s\n' "${report[@]}"
echo "  total $((SECONDS - start)) s"
exit $failed
