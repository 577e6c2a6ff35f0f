#!/usr/bin/env bash
# bench_optimize.sh [RUNS]: ddp optimize against restic, borg and casync on the
# same data (the typescript nightlies of ../shared/bench/dataset-ts.sh, 20
# releases, ~516 MB), each on a fresh copy, RUNS times (default 3). Prints a
# table of medians: wall seconds, MB/s, store size, peak RSS; and the chunker's
# GB/s per core. Set DDP_BENCH_DATA to reuse a data set already built.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bash scripts/install-deps.sh --bench >/dev/null
bash scripts/build.sh release >/dev/null
ddp=$PWD/build/ddp
work=${DDP_BENCH_WORK:-$(mktemp -d /tmp/ddp-bench.XXXXXX)}
data=${DDP_BENCH_DATA:-$work/data}
shared=$(cd .. && pwd)/shared
if [[ ! -d "$data" ]]; then
  [[ -x "$shared/bench/dataset-ts.sh" ]] || { echo "bench: no $shared/bench/dataset-ts.sh; set DDP_BENCH_DATA" >&2; exit 2; }
  bash "$shared/bench/dataset-ts.sh" "$data" 20 >/dev/null
fi
bytes=$(du -sb --apparent-size "$data" | cut -f1)
files=$(find "$data" -type f | wc -l)
echo "data: $data, $files files, $((bytes/1000000)) MB; $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

# measure NAME STOREDIR CMD...: runs CMD under /usr/bin/time, records wall s, RSS KiB, store bytes.
declare -A wall rss size
measure() {
  local name=$1 store=$2; shift 2
  local log=$work/time.$name
  /usr/bin/time -f '%e %M' -o "$log" "$@" >/dev/null 2>"$work/err.$name" || { echo "bench: $name failed:"; cat "$work/err.$name"; exit 1; }
  read -r w r < "$log"
  wall[$name]+="$w "; rss[$name]+="$r "
  size[$name]+="$(du -sb "$store" | cut -f1) "
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

export RESTIC_PASSWORD=bench BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
for ((i = 1; i <= runs; i++)); do
  rm -rf "$work/vol" "$work/restic" "$work/borg" "$work/casync"
  cp -a "$data" "$work/vol"; sync
  "$ddp" enable "$work/vol" --usage Backup >/dev/null
  measure ddp "$work/vol/.ddp" "$ddp" optimize "$work/vol" --quiet
  restic init -q -r "$work/restic" >/dev/null
  measure restic "$work/restic" restic -q -r "$work/restic" backup "$data"
  borg init -e none "$work/borg" >/dev/null 2>&1
  measure borg "$work/borg" borg create --chunker-params buzhash,15,17,16,4095 -C zstd,3 "$work/borg::a" "$data"
  mkdir -p "$work/casync"
  measure casync "$work/casync" casync make --store="$work/casync/store" "$work/casync/a.caidx" "$data"
  echo "run $i done" >&2
done

printf '\n%-8s %9s %9s %12s %10s\n' tool wall_s MB/s store_MB peak_RSS_MB
for t in ddp restic borg casync; do
  w=$(echo "${wall[$t]}" | median); r=$(echo "${rss[$t]}" | median); s=$(echo "${size[$t]}" | median)
  awk -v t=$t -v w=$w -v r=$r -v s=$s -v b=$bytes 'BEGIN {printf "%-8s %9.2f %9.1f %12.1f %10.1f\n", t, w, b/1e6/w, s/1e6, r/1024}'
done
echo
"$PWD/build/bench_chunker"
rm -rf "$work/vol" "$work/restic" "$work/borg" "$work/casync"
