#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh SECONDS [TARGET...]: run every fuzz target (or the ones named, e.g.
# "stub restore") for SECONDS each, from the seed corpora, and report.
#
# Builds the targets first if needed (clang, -DDDP_FUZZ=ON) in
# $DDP_FUZZ_BUILD (default build-fuzz/), makes the seed corpora with
# make-corpus.sh if they are missing, and runs JOBS targets at a time
# (default: the number of cores). Per target it keeps
#   BUILD/fuzz-work/TARGET/       the growing corpus (new inputs land here)
#   BUILD/fuzz-artifacts/TARGET-* crashes, leaks, timeouts (the reproducers)
#   BUILD/fuzz-logs/TARGET.log    libFuzzer's output
# Exit status: 0 when no target found anything. A reproducer replays with
#   BUILD/fuzz/fuzz_TARGET ARTIFACT
# and belongs, once understood, in tests/unit/test_regress_fuzz.c.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
secs=${1:-60}
[[ $# -gt 0 ]] && shift
build=${DDP_FUZZ_BUILD:-$root/build-fuzz}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
all=(stub container streammap settings catalog identity restore tar manifest winreparse winrecord xpress winstore)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

# ---- build --------------------------------------------------------------------------
have_all() { for t in "${targets[@]}"; do [[ -x $build/fuzz/fuzz_$t ]] || return 1; done; }
if ! have_all || [[ ${DDP_FUZZ_REBUILD:-1} == 1 ]]; then
  cc=$(command -v clang || command -v clang-14) || { echo "run.sh: clang is needed" >&2; exit 2; }
  if grep -q 'add_subdirectory(fuzz)' "$root/CMakeLists.txt"; then
    src=$root
  else
    # The top-level CMakeLists.txt does not include fuzz/ (yet): a wrapper does.
    src=$build/wrap
    mkdir -p "$src"
    cat > "$src/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.16)
project(ddp_fuzz_wrap C)
set(CMAKE_C_STANDARD 17)
add_compile_options(-Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla)
add_subdirectory($root/fuzz fuzz)
CM
  fi
  # A build directory configured from the other source (wrapper or not) is
  # configured again from scratch; the corpora and findings stay.
  home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null)
  if [[ -n $home && $home != "$src" ]]; then rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"; fi
  CC=$cc cmake -S "$src" -B "$build" -DDDP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 2
  cmake --build "$build" -j"$jobs" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null || {
    echo "run.sh: building the fuzz targets failed" >&2; exit 2; }
fi

# ---- seeds ----------------------------------------------------------------------------
corpus=${DDP_FUZZ_CORPUS:-$build/corpus}
if [[ ! -d $corpus/stub ]]; then
  bash "$here/make-corpus.sh" "$corpus" || { echo "run.sh: make-corpus.sh failed" >&2; exit 2; }
fi

# ---- run ------------------------------------------------------------------------------
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"
run_one() {
  local t=$1 work=$build/fuzz-work/$1 seeds=$corpus/$1
  mkdir -p "$work" "$seeds"
  "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=30 -rss_limit_mb=3072 -max_len=1048576 \
    -dict="$here/ddp.dict" -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" \
    "$work" "$seeds" > "$build/fuzz-logs/$t.log" 2>&1
  local rc=$?
  local runs cov
  runs=$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$build/fuzz-logs/$t.log" | grep -oE '[0-9]+$')
  cov=$(grep -oE 'cov: [0-9]+' "$build/fuzz-logs/$t.log" | tail -n 1)
  if [[ $rc -eq 0 ]]; then
    printf 'ok    %-10s %8s runs, %s\n' "$t" "${runs:-?}" "${cov:-?}"
  else
    printf 'FOUND %-10s exit %d; see %s\n' "$t" "$rc" "$build/fuzz-logs/$t.log"
    grep -m3 -E 'ERROR: |invariant failed|SUMMARY|Test unit written' "$build/fuzz-logs/$t.log" | sed 's/^/      /'
  fi
  return $rc
}
echo "fuzzing ${#targets[@]} targets for ${secs}s each, $jobs at a time (logs: $build/fuzz-logs)"
failed=0
running=0
pids=()
for t in "${targets[@]}"; do
  run_one "$t" & pids+=($!)
  running=$((running + 1))
  if ((running >= jobs)); then
    wait "${pids[0]}" || failed=$((failed + 1))
    pids=("${pids[@]:1}")
    running=$((running - 1))
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
if ((failed)); then echo "run.sh: $failed target(s) found something"; exit 1; fi
echo "run.sh: nothing found"
