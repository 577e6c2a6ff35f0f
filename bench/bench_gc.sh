#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_gc.sh [RUNS]: how compact the store is after churn, and how fast
# garbage collection goes (issue #16), on the 10 typescript nightlies of
# ../shared/bench/dataset-ts.sh.
#
# Each run (RUNS, default 3): a fresh copy of the data set is optimized
# (usage type Backup), every release but the last is deleted, and
# `ddp gc --full` is timed. Printed per run and as medians:
#   - the store on disk after gc (du, allocated bytes of the ChunkStore
#     directory) against a fresh store of the same remaining files (a new
#     volume holding only the last release, optimized): the ratio, target
#     <= 1.1;
#   - gc throughput: container bytes gc scanned / wall seconds of the gc
#     command (MB of store per second, target > 100), and the job's own
#     figure (--json: store_bytes / seconds).
# The page cache is warm. `uptime` is printed (the load matters on a shared
# machine).
#
# Environment:
#   DDP               a ddp binary (default: a Release build in $DDP_BENCH_BUILD)
#   DDP_BENCH_BUILD   build directory for that (default: <source>/build-bench-gc)
#   DDP_BENCH_DATA    an existing data set directory (default: built with dataset-ts.sh)
#   DDP_BENCH_DIR     work directory (default: a new temporary directory, removed at the end)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
source "$SRC/bench/benchlib.sh"
bench_setup gc 10
KEEP=${VERSIONS[-1]}

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
alloc_bytes() { du -sB1 "$1"/.ddp/ChunkStore | cut -f1; }
apparent_bytes() { find "$1"/.ddp/ChunkStore -name '*.ccc' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

# ---- the fresh store of the remaining files
F=$W/fresh
rm -rf "$F" && mkdir -p "$F" && cp -a "$DATA/$KEEP" "$F/"
"$DDP" enable "$F" --usage Backup > /dev/null
"$DDP" optimize "$F" --quiet
fresh=$(alloc_bytes "$F")
rm -rf "$F"
data_bytes=$(du -sb --apparent-size "$DATA" | cut -f1)
printf 'data: %s, %d versions (%.1f MB); kept after churn: %s; fresh store of it: %d bytes on disk; %d cores\n' \
  "$DATA" "${#VERSIONS[@]}" "$(echo "$data_bytes / 1000000" | bc -l)" "$KEEP" "$fresh" "$(nproc)"

ratios=(); mbs=(); job_mbs=()
for ((run = 1; run <= RUNS; run++)); do
  V=$W/vol
  rm -rf "$V" && cp -a "$DATA" "$V"
  "$DDP" enable "$V" --usage Backup > /dev/null
  "$DDP" optimize "$V" --quiet
  before=$(alloc_bytes "$V")
  for ver in "${VERSIONS[@]}"; do [[ $ver == "$KEEP" ]] || rm -rf "${V:?}/$ver"; done
  sync
  t0=$(now); out=$("$DDP" gc "$V" --full --json); t1=$(now)
  after=$(alloc_bytes "$V")
  scanned=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['store_bytes'])" "$out")
  jmb=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['store_bytes'] / 1e6 / max(d['seconds'], 1e-9))" "$out")
  secs=$(echo "$t1 - $t0" | bc -l)
  mb=$(echo "$scanned / 1000000 / $secs" | bc -l)
  ratio=$(echo "$after / $fresh" | bc -l)
  # every remaining file reads back
  (cd "$V/$KEEP" && find . -type f -print0 | sort -z | xargs -0 "$DDP" cat | sha256sum) > "$W/got"
  (cd "$DATA/$KEEP" && find . -type f -print0 | sort -z | xargs -0 cat | sha256sum) > "$W/want"
  cmp -s "$W/got" "$W/want" || { echo "bench_gc: the kept release does not read back after gc" >&2; exit 1; }
  printf 'run %d: store %d -> %d bytes on disk (apparent %d) vs fresh %d: %.3fx; gc %.2f s, %.1f MB of store/s (job: %.1f MB/s)\n' \
    "$run" "$before" "$after" "$(apparent_bytes "$V")" "$fresh" "$ratio" "$secs" "$mb" "$jmb"
  ratios+=("$ratio"); mbs+=("$mb"); job_mbs+=("$jmb")
done
printf 'median: store after gc / fresh store = %.3fx (target <= 1.1); gc %.1f MB of store/s (job %.1f; target > 100)\n' \
  "$(printf '%s\n' "${ratios[@]}" | median)" "$(printf '%s\n' "${mbs[@]}" | median)" \
  "$(printf '%s\n' "${job_mbs[@]}" | median)"
echo "load: $(uptime)"
