#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_maintenance.sh [RUNS]: throughput of garbage collection and
# integrity scrubbing, in MB of chunk store per second, on a real versioned
# data set (the 20 typescript nightlies of ../shared/bench/dataset-ts.sh).
#
# The data set is optimized once (usage type Backup). Each run (RUNS, default
# 3) takes a fresh copy of the optimized volume, deletes every second version
# (10 of 20 releases), then times `ddp gc --full` (MB/s = container bytes
# scanned / wall seconds; --full so that every container with a dead record
# goes through the whole path: plan, compaction into new generations, catalog, index rebuild;
# the nightlies share so much that the regular run, with its 5% threshold,
# would leave the data container alone) and `ddp scrub` on what is left (MB/s = container bytes read
# and checked / wall seconds). Medians are printed, with the space gc gave
# back (du of the store before and after) and the cost of the hotspot
# reference count at the end of an optimization run (one forced recount,
# measured as the difference between two `ddp optimize` runs with nothing to
# optimize, the second after a threshold change). The page cache is warm.
#
# Environment:
#   DDP               a ddp binary (default: a Release build in $DDP_BENCH_BUILD)
#   DDP_BENCH_BUILD   build directory for that (default: <source>/build-bench-maint)
#   DDP_BENCH_DATA    an existing data set directory (default: built with dataset-ts.sh)
#   DDP_BENCH_DIR     work directory (default: a new temporary directory, removed at the end)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-3}
source "$SRC/bench/benchlib.sh"
bench_setup maint 20

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
store_bytes() { find "$1"/.ddp/ChunkStore -name '*.ccc' -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
alloc_bytes() { du -sB1 "$1"/.ddp/ChunkStore | cut -f1; }

# ---- optimize once
O=$W/optimized
rm -rf "$O" && cp -a "$DATA" "$O"
"$DDP" enable "$O" --usage Backup > /dev/null
t0=$(now); "$DDP" optimize "$O" --quiet; t1=$(now)
data_bytes=$(du -sb --apparent-size "$DATA" | cut -f1)
files=$(find "$DATA" -type f | wc -l)
printf 'data: %s, %d versions, %d files, %.1f MB; optimized in %.2f s; store %.1f MB; %d cores\n' "$DATA" \
  "${#VERSIONS[@]}" "$files" "$(echo "$data_bytes / 1000000" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" \
  "$(echo "$(store_bytes "$O") / 1000000" | bc -l)" "$(nproc)"

# ---- hotspot recount cost: optimize with nothing to do, without and with a recount
t0=$(now); "$DDP" optimize "$O" --quiet; t1=$(now)
"$DDP" set "$O" hotspot_threshold 101 > /dev/null
t2=$(now); "$DDP" optimize "$O" --quiet; t3=$(now)
"$DDP" set "$O" hotspot_threshold 100 > /dev/null
"$DDP" optimize "$O" --quiet
hot=$(echo "($t3 - $t2) - ($t1 - $t0)" | bc -l)

# ---- the runs
gc_s=(); gc_mbs=(); sc_s=(); sc_mbs=(); recl=()
for ((run = 1; run <= RUNS; run++)); do
  V=$W/vol
  rm -rf "$V" && cp -a "$O" "$V"
  for ((i = 0; i < ${#VERSIONS[@]}; i += 2)); do rm -rf "${V:?}/${VERSIONS[i]}"; done
  sync
  before=$(store_bytes "$V"); abefore=$(alloc_bytes "$V")
  t0=$(now); "$DDP" gc "$V" --full > "$W/gc.out"; t1=$(now)
  aafter=$(alloc_bytes "$V")
  s=$(echo "$t1 - $t0" | bc -l)
  gc_s+=("$s"); gc_mbs+=("$(echo "$before / 1000000 / $s" | bc -l)"); recl+=("$((abefore - aafter))")
  checked=$(store_bytes "$V")
  t0=$(now); "$DDP" scrub "$V" > "$W/scrub.out"; t1=$(now)
  s=$(echo "$t1 - $t0" | bc -l)
  sc_s+=("$s"); sc_mbs+=("$(echo "$checked / 1000000 / $s" | bc -l)")
  echo "run $run: gc $(sed -n 2p "$W/gc.out")" >&2
done
printf '\nafter deleting %d of %d versions (medians of %d runs on fresh copies):\n' \
  $(((${#VERSIONS[@]} + 1) / 2)) "${#VERSIONS[@]}" "$RUNS"
printf '%-6s %10s %14s %16s\n' job "wall s" "MB store/s" "reclaimed MB"
printf '%-6s %10.3f %14.1f %16.1f\n' "gc" "$(printf '%s\n' "${gc_s[@]}" | median)" \
  "$(printf '%s\n' "${gc_mbs[@]}" | median)" "$(echo "$(printf '%s\n' "${recl[@]}" | median) / 1000000" | bc -l)"
printf '%-6s %10.3f %14.1f %16s\n' scrub "$(printf '%s\n' "${sc_s[@]}" | median)" \
  "$(printf '%s\n' "${sc_mbs[@]}" | median)" -
printf 'hotspot reference recount at the end of optimize: %.3f s (0 when nothing changed)\n' "$hot"
