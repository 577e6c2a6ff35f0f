#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_restore.sh: selective restore from optimized backups, ddp against
# restic and borg, on a real versioned data set (20 typescript nightlies,
# /work/shared/bench/dataset-ts.sh).
#
# ddp: the data set is optimized (usage type Backup, so no minimum age), then
# backed up twice: `ddp backup` (directory) and `ddp backup --tar`. restic
# and borg back up the same data unoptimized (borg with chunker parameters
# close to ddp's: buzhash 32..128 KiB, 64 KiB average; zstd level 3).
# Each case is restored 3 times and the median printed: one large file, 1%
# of the files (every 100th), every file.
#
# Columns: wall seconds; MB/s of restored bytes; bytes read from the backup
# per byte restored ("cb": ddp's callback ReadBackupFile bytes, from the
# restore summary; "rchar": every byte the process got from read(), the
# repository, its index and caches included, from /proc/PID/io: the only
# comparable figure for the peers, which do not report what they read);
# ddp's ReadBackupFile calls and archive passes.
# The page cache is warm (each case runs once before it is timed).
#
# Needs: restic, borgbackup (Debian packages restic, borgbackup; see
# scripts/install-deps.sh), npm (for the data set), cmake and a C compiler.
#
# Environment:
#   DDP               a ddp binary (default: a Release build in $DDP_BENCH_BUILD)
#   DDP_BENCH_BUILD   build directory for that (default: <source>/build-bench)
#   DDP_BENCH_DATA    an existing data set directory to reuse (default: built in the work dir)
#   DDP_BENCH_DIR     work directory (default: a new temporary directory, removed at the end)
#   DDP_BENCH_KEEP=1  keep the work directory
#   DDP_BENCH_RUNS    runs per case (default 3)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${DDP_BENCH_RUNS:-3}
DATASET_SCRIPT=${DDP_DATASET_SCRIPT:-/work/shared/bench/dataset-ts.sh}

for tool in restic borg; do
  command -v "$tool" > /dev/null || { echo "bench_restore: $tool is not installed (Debian package: ${tool/borg/borgbackup}; scripts/install-deps.sh)" >&2; exit 2; }
done

if [[ -z "${DDP:-}" ]]; then
  BUILD=${DDP_BENCH_BUILD:-$SRC/build-bench}
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDDP_TESTS=OFF > /dev/null
  cmake --build "$BUILD" --target ddp -j"$(nproc)" > /dev/null
  DDP=$BUILD/ddp
fi

W=${DDP_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ddp-bench-restore.XXXXXX")}
mkdir -p "$W"
cleanup() { [[ "${DDP_BENCH_KEEP:-0}" == 1 ]] || rm -rf "$W"; }
trap cleanup EXIT

# ---- the data set ----
if [[ -n "${DDP_BENCH_DATA:-}" && -d "${DDP_BENCH_DATA}" ]]; then
  DATA=$(cd "$DDP_BENCH_DATA" && pwd)
else
  DATA=$W/data
  echo "building the data set in $DATA ..." >&2
  bash "$DATASET_SCRIPT" "$DATA" 20 >&2
fi
mapfile -t FILES < <(cd "$DATA" && find . -type f -printf '%P\n' | sort)
[[ ${#FILES[@]} -gt 0 ]] || { echo "bench_restore: the data set $DATA is empty" >&2; exit 1; }
# one large file (the largest of a middle release), 1% (every 100th), all
ONE=$(cd "$DATA" && for f in "${FILES[@]}"; do printf '%s %s\n' "$(stat -c %s "$f")" "$f"; done | sort -n | tail -1 | cut -d' ' -f2-)
PCT=()
for ((i = 0; i < ${#FILES[@]}; i += 100)); do PCT+=("${FILES[i]}"); done
bytes_of() { (cd "$DATA" && printf '%s\0' "$@" | xargs -0 stat -c %s | awk '{s += $1} END {print s + 0}'); }
BYTES_ONE=$(bytes_of "$ONE")
BYTES_PCT=$(bytes_of "${PCT[@]}")
BYTES_ALL=$(bytes_of "${FILES[@]}")

# ---- the backups ----
V=$W/vol
rm -rf "$V" && cp -a "$DATA" "$V"
"$DDP" enable "$V" --usage Backup > /dev/null
echo "ddp optimize: $("$DDP" optimize "$V" | head -1)" >&2
"$DDP" backup "$V" "$W/ddp-dir" > /dev/null
"$DDP" backup "$V" "$W/ddp.tar" --tar > /dev/null

export RESTIC_PASSWORD=ddp-bench RESTIC_REPOSITORY=$W/restic RESTIC_CACHE_DIR=$W/restic-cache
restic init -q > /dev/null
(cd "$DATA" && restic backup -q . > /dev/null)

export BORG_REPO=$W/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_CACHE_DIR=$W/borg-cache BORG_CONFIG_DIR=$W/borg-config BORG_BASE_DIR=$W/borg-base
borg init -e none > /dev/null
(cd "$DATA" && borg create --chunker-params buzhash,15,17,16,4095 -C zstd,3 ::archive . > /dev/null)

size_of() { du -sb "$1" | cut -f1; }
printf '\ndata set: %s files, %s bytes (%s); one file: %s (%s bytes); 1%%: %s files, %s bytes\n' \
  "${#FILES[@]}" "$BYTES_ALL" "$DATA" "$ONE" "$BYTES_ONE" "${#PCT[@]}" "$BYTES_PCT"
printf 'backup sizes: ddp dir %s, ddp tar %s, restic %s, borg %s bytes\n\n' \
  "$(size_of "$W/ddp-dir")" "$(size_of "$W/ddp.tar")" "$(size_of "$W/restic")" "$(size_of "$W/borg")"

# ---- measuring ----
# run_measured OUT CMD...: run CMD (stdout+stderr to OUT) as a child of a
# shell, then print "<seconds> <rchar>": a reaped child's I/O counters are
# added to its parent's, so the shell's /proc/self/io includes CMD's reads.
run_measured() {
  local out=$1; shift
  bash -c 's=$(date +%s.%N); "$@" > "$0" 2>&1 || { echo "FAILED: $*" >&2; cat "$0" >&2; exit 1; }
           e=$(date +%s.%N); r=$(awk "/^rchar/ {print \$2}" /proc/$$/io); echo "$s $e $r"' "$out" "$@" |
    awk '{printf "%.4f %d\n", $2 - $1, $3}'
}
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

ddp_restore() { # ddp_restore BACKUP TARGET FILE...
  local b=$1 t=$2; shift 2
  "$DDP" restore --from "$b" --to "$t" "$@"
}
restic_restore() { # restic_restore TARGET FILE... (no files: all)
  local t=$1; shift
  local inc=() f
  for f in "$@"; do inc+=(--include "/$f"); done
  restic restore latest --target "$t" "${inc[@]}"
}
borg_restore() { # borg_restore TARGET FILE... (no files: all)
  local t=$1; shift
  mkdir -p "$t" && cd "$t" && borg extract ::archive "$@"
}
export DDP
export -f ddp_restore restic_restore borg_restore

printf '%-10s %-6s %9s %9s %12s %12s %10s %7s\n' tool case "wall s" "MB/s" "cb/byte" "rchar/byte" "reads" "passes"
bench_case() { # bench_case TOOL CASE BYTES CMD...: CMD gets the target directory as $T via a placeholder
  local tool=$1 name=$2 bytes=$3; shift 3
  local secs=() rchars=() out=$W/out.txt
  local run
  for ((run = 0; run <= RUNS; run++)); do
    rm -rf "$W/target"; mkdir -p "$W/target"
    local m
    m=$(run_measured "$out" "$@")
    [[ $run -eq 0 ]] && continue # warm-up
    secs+=("${m%% *}"); rchars+=("${m##* }")
  done
  local s r
  s=$(printf '%s\n' "${secs[@]}" | median)
  r=$(printf '%s\n' "${rchars[@]}" | median)
  local cb=n/a reads=n/a passes=n/a
  if [[ $tool == ddp* ]]; then
    local sum
    sum=$(grep '^summary:' "$out" || true)
    cb=$(sed -nE 's/.*\(([0-9.]+) per byte restored\).*/\1/p' <<<"$sum")
    reads=$(sed -nE 's/.*; ([0-9]+) read calls.*/\1/p' <<<"$sum")
    passes=$(sed -nE 's/.* ([0-9]+) archive passes.*/\1/p' <<<"$sum")
  fi
  awk -v t="$tool" -v c="$name" -v s="$s" -v b="$bytes" -v r="$r" -v cb="$cb" -v rd="$reads" -v p="$passes" \
    'BEGIN {printf "%-10s %-6s %9.3f %9.1f %12s %12.3f %10s %7s\n", t, c, s, (s > 0 ? b / 1e6 / s : 0), cb, (b > 0 ? r / b : 0), rd, p}'
}

T=$W/target
for c in one pct all; do
  case $c in
    one) sel=("$ONE"); bytes=$BYTES_ONE ;;
    pct) sel=("${PCT[@]}"); bytes=$BYTES_PCT ;;
    all) sel=("${FILES[@]}"); bytes=$BYTES_ALL ;;
  esac
  peer_sel=("${sel[@]}"); [[ $c == all ]] && peer_sel=()
  bench_case ddp-dir "$c" "$bytes" ddp_restore "$W/ddp-dir" "$T" "${sel[@]}"
  bench_case ddp-tar "$c" "$bytes" ddp_restore "$W/ddp.tar" "$T" "${sel[@]}"
  bench_case restic "$c" "$bytes" restic_restore "$T" "${peer_sel[@]}"
  bench_case borg "$c" "$bytes" borg_restore "$T" "${peer_sel[@]}"
done
