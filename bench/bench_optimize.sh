#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_optimize.sh [RUNS]: ddp optimize against restic, borg and casync on the
# same data (the typescript nightlies of ../shared/bench/dataset-ts.sh, 20
# releases, ~516 MB), each on a fresh copy, RUNS times (default 3). Prints a
# table of medians: wall seconds, MB/s, CPU seconds (user+sys) and utilisation,
# store size, peak RSS; ddp's per-stage timings (the job log's optimize-timing
# line: seconds summed over threads, medians); and the chunker's GB/s per core.
# Set DDP_BENCH_DATA to reuse a data set already built; DDP_BENCH_SET=images
# builds the 1 GiB set of large files of bench/dataset-images.sh instead;
# DDP_BENCH_BASE=PATH/ddp also measures another ddp build (as ddp-base) in
# the same runs; DDP_BENCH_PEERS=0 leaves the peers out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bash scripts/install-deps.sh --bench >/dev/null
bash scripts/build.sh release >/dev/null
ddp=$PWD/build/ddp
work=${DDP_BENCH_WORK:-$(mktemp -d /tmp/ddp-bench.XXXXXX)}
data=${DDP_BENCH_DATA:-$work/data}
shared=$(cd .. && pwd)/shared
if [[ ! -d "$data" && "${DDP_BENCH_SET:-}" == images ]]; then
  bash bench/dataset-images.sh "$data" >/dev/null
elif [[ ! -d "$data" ]]; then
  [[ -x "$shared/bench/dataset-ts.sh" ]] || { echo "bench: no $shared/bench/dataset-ts.sh; set DDP_BENCH_DATA" >&2; exit 2; }
  bash "$shared/bench/dataset-ts.sh" "$data" 20 >/dev/null
fi
bytes=$(du -sb --apparent-size "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
echo "data: $data, $files files, $((bytes/1000000)) MB; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# measure NAME STOREDIR CMD...: runs CMD under /usr/bin/time, records wall s, RSS KiB, store bytes.
declare -A wall rss size cpu
measure() {
  local name=$1 store=$2; shift 2
  local log=$work/time.$name
  /usr/bin/time -f '%e %M %U %S' -o "$log" "$@" >/dev/null 2>"$work/err.$name" || { echo "bench: $name failed:"; cat "$work/err.$name"; exit 1; }
  read -r w r u s < "$log"
  wall[$name]+="$w "; rss[$name]+="$r "; cpu[$name]+="$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}') "
  size[$name]+="$(du -sb "$store" | cut -f1) "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
tools="ddp"
[[ -n "${DDP_BENCH_BASE:-}" ]] && tools+=" ddp-base"
peers=${DDP_BENCH_PEERS:-1}
[[ "$peers" == 1 ]] && tools+=" restic borg casync"
mkdir -p "$work"; timings=$work/timings
: > "$timings"
# ddp_run NAME BINARY: optimize a fresh copy; keeps the job's timing line.
ddp_run() {
  rm -rf "$work/vol"
  cp -a "$data" "$work/vol"; sync
  "$2" enable "$work/vol" --usage Backup >/dev/null
  measure "$1" "$work/vol/.ddp" "$2" optimize "$work/vol" --quiet
  grep optimize-timing "$work/vol/.ddp/State/jobs.log" | tail -1 | sed "s/^[^ ]* optimize-timing/$1/" >> "$timings" || true
  rm -rf "$work/vol"
}
for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/restic" "$work/borg" "$work/casync"
  ddp_run ddp "$ddp"
  [[ -n "${DDP_BENCH_BASE:-}" ]] && ddp_run ddp-base "$DDP_BENCH_BASE"
  [[ "$peers" == 1 ]] || { echo "run $i done" >&2; continue; }
  restic init -q -r "$work/restic" >/dev/null
  measure restic "$work/restic" restic -q -r "$work/restic" backup "$data"
  borg init -e none "$work/borg" >/dev/null 2>&1
  measure borg "$work/borg" borg create --chunker-params buzhash,15,17,16,4095 -C zstd,3 "$work/borg::a" "$data"
  mkdir -p "$work/casync"
  measure casync "$work/casync" casync make --store="$work/casync/store" "$work/casync/a.caidx" "$data"
  echo "run $i done" >&2
done

printf '\n%-8s %9s %9s %7s %6s %12s %10s\n' tool wall_s MB/s cpu_s cpu% store_MB peak_RSS_MB
for t in $tools; do
  w=$(echo "${wall[$t]}" | median); r=$(echo "${rss[$t]}" | median); s=$(echo "${size[$t]}" | median)
  c=$(echo "${cpu[$t]}" | median)
  awk -v t=$t -v w=$w -v r=$r -v s=$s -v c=$c -v b=$bytes 'BEGIN {printf "%-8s %9.2f %9.1f %7.2f %5.0f%% %12.1f %10.1f\n", t, w, b/1e6/w, c, 100*c/w, s/1e6, r/1024}'
done
echo "(every figure a median of $runs runs; the machine may be shared: compare the rows of one run, and CPU seconds)"
# The per-stage timings: each field's median over the runs (seconds summed
# over the threads; *_wait and commit_wait are idle time).
for t in ddp ddp-base; do
  grep -q "^$t " "$timings" || continue
  echo; echo "$t stages (median s):"
  grep "^$t " "$timings" | tr ' ' '\n' | grep = | awk -F= '{v[$1] = v[$1] " " $2; if (!($1 in seen)) {seen[$1] = 1; order[++n] = $1}}
    END {for (i = 1; i <= n; i++) {k = order[i]; m = split(substr(v[k], 2), a, " ")
      for (x = 2; x <= m; x++) for (y = x; y > 1 && a[y - 1] + 0 > a[y] + 0; y--) {tmp = a[y]; a[y] = a[y - 1]; a[y - 1] = tmp} printf "  %-14s %7.3f\n", k, a[int((m + 1) / 2)]}}' | paste - - - -
done
echo
"$PWD/build/bench_chunker"
rm -rf "$work/vol" "$work/restic" "$work/borg" "$work/casync" "$timings"
