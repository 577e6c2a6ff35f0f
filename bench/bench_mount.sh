#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_mount.sh: reading through `ddp mount`, against the same files
# unoptimized through the same mount, and against `borg mount` and
# `restic mount` serving the same files from their repositories.
#
# The volume holds the data set twice: opt/ (optimized) and plain/ (the N
# largest files, excluded from optimization with excluded_folders), so both
# are read through one mount, one daemon, one kernel path. For each reader:
#   seq MB/s   the N largest files read whole with dd bs=1M, median of RUNS;
#   CPU s      the CPU time (user + system) the mount's daemon spent on those
#              reads, median of RUNS: unlike MB/s it barely moves when other
#              jobs share the machine's cores, so it shows what a change costs;
#   4 KiB      random 4 KiB preads (POSIX_FADV_RANDOM, so the kernel reads
#              just that page) at 4 KiB-aligned offsets of the largest file:
#              median and 99th percentile latency in microseconds.
# Every timed run goes through a fresh mount, so neither the kernel's cache of
# the mounted files nor a daemon's cache carries over from the run before.
# ddp is measured twice: with the default chunk cache (256 MiB; versions of
# one file share chunks, so a chunk decoded for one is a hit for the next) and
# with a 16 MiB cache (about every chunk decoded and verified on every read).
# Then the "second read" rows: the same files read twice through one mount,
# the second read timed. The kernel drops a FUSE file's cached pages when it
# is opened again, so the second read goes to the daemon again: for plain
# files as before, for optimized ones with every chunk already decoded and
# verified in the daemon's cache (a cache of 1 GiB, so that all of them fit):
# what serving optimized data costs once decoding is out of the way.
# What the mounts read from (the volume, the repositories) is in the page
# cache (an untimed run first) unless DDP_BENCH_COLD=1 and
# /proc/sys/vm/drop_caches is writable, in which case caches are dropped
# before every timed run; the output says which.
#
# Data: DDP_BENCH_DATA (any directory), else the built-in sample
# (scripts/make-sample.py, 12 releases) plus 4 versions of a disk image of
# DDP_BENCH_IMAGE_MB MiB (default 256; half compressible text, half random,
# each version a few MiB different from the one before): large files, as a
# file server's backup or VM share holds them.
#
# Needs: fuse3 (/dev/fuse, fusermount3), python3, cmake and a C compiler; for
# the peers borgbackup (with python3-llfuse or python3-pyfuse3 for borg
# mount) and restic: Debian packages. A peer that cannot mount is reported n/a.
#
# Environment:
#   DDP                a ddp binary (default: a Release build in $DDP_BENCH_BUILD)
#   DDP_BENCH_BUILD    build directory for that (default: <source>/build-bench)
#   DDP_BENCH_DATA     an existing data set directory
#   DDP_BENCH_DIR      work directory (default: a new temporary directory, removed at the end)
#   DDP_BENCH_KEEP=1   keep the work directory
#   DDP_BENCH_RUNS     timed runs per case (default 3)
#   DDP_BENCH_FILES    how many of the largest files the sequential case reads (default 4)
#   DDP_BENCH_RANDOM   random reads per latency case (default 2000)
#   DDP_BENCH_COLD=1   drop the page cache before each timed run (needs root)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${DDP_BENCH_RUNS:-3}
NFILES=${DDP_BENCH_FILES:-4}
NRAND=${DDP_BENCH_RANDOM:-2000}
IMAGE_MB=${DDP_BENCH_IMAGE_MB:-256}

if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 > /dev/null; then
  echo "bench_mount: needs /dev/fuse and fusermount3 (Debian package fuse3)" >&2
  exit 2
fi

if [[ -z "${DDP:-}" ]]; then
  BUILD=${DDP_BENCH_BUILD:-$SRC/build-bench}
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDDP_TESTS=OFF > /dev/null
  cmake --build "$BUILD" --target ddp -j"$(nproc)" > /dev/null
  DDP=$BUILD/ddp
fi

W=${DDP_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ddp-bench-mount.XXXXXX")}
mkdir -p "$W"
MOUNTED=()
cleanup() {
  local m
  for m in "${MOUNTED[@]}"; do mountpoint -q "$m" 2> /dev/null && { fusermount3 -u "$m" 2> /dev/null || fusermount3 -uz "$m" 2> /dev/null || true; }; done
  [[ "${DDP_BENCH_KEEP:-0}" == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

# wait_mounted DIR PID: until DIR is a mount point (or the daemon died).
wait_mounted() {
  local i
  for ((i = 0; i < 600; i++)); do
    mountpoint -q "$1" && { MOUNTED+=("$1"); return 0; }
    kill -0 "$2" 2> /dev/null || return 1
    sleep 0.1
  done
  return 1
}
unmount() { fusermount3 -u "$1" 2> /dev/null || fusermount3 -uz "$1" 2> /dev/null || true; sleep 0.3; }

COLD=0
if [[ "${DDP_BENCH_COLD:-0}" == 1 && -w /proc/sys/vm/drop_caches ]]; then COLD=1; fi
drop_caches() { if ((COLD)); then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }

# ---- the data set ----
if [[ -n "${DDP_BENCH_DATA:-}" && -d "${DDP_BENCH_DATA}" ]]; then
  DATA=$(cd "$DDP_BENCH_DATA" && pwd)
else
  DATA=$W/data
  echo "building the data set in $DATA ..." >&2
  python3 "$SRC/scripts/make-sample.py" "$DATA/sample" 12 > /dev/null
  python3 - "$DATA/images" "$IMAGE_MB" << 'EOF'
import os, random, sys
dest, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(dest, exist_ok=True)
rng = random.Random(20261124)
words = "data block chunk store stream map volume file server backup restore index hash".split()
def text_block():
    out, n = [], 0
    while n < (1 << 20):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[: 1 << 20]
blocks = [text_block() if i % 2 else rng.randbytes(1 << 20) for i in range(mb)]
for v in range(1, 5):
    with open(os.path.join(dest, f"disk-v{v}.img"), "wb") as f:
        for b in blocks:
            f.write(b)
    for _ in range(max(1, mb // 64)):   # the next version: a few MiB rewritten
        i = rng.randrange(mb)
        blocks[i] = text_block() if i % 2 else rng.randbytes(1 << 20)
EOF
fi
mapfile -t BIG < <(cd "$DATA" && find . -type f -printf '%s %P\n' | sort -rn | head -n "$NFILES" | cut -d' ' -f2-)
[[ ${#BIG[@]} -gt 0 ]] || { echo "bench_mount: the data set $DATA is empty" >&2; exit 1; }
BYTES=$(cd "$DATA" && printf '%s\0' "${BIG[@]}" | xargs -0 stat -c %s | awk '{s += $1} END {print s + 0}')
LARGEST=${BIG[0]}

# ---- the volume: opt/ optimized, plain/ the same large files, excluded ----
V=$W/vol
mkdir -p "$V/plain"
cp -a "$DATA" "$V/opt"
for f in "${BIG[@]}"; do mkdir -p "$V/plain/$(dirname "$f")" && cp -a "$DATA/$f" "$V/plain/$f"; done
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" set "$V" excluded_folders plain > /dev/null
echo "ddp optimize: $("$DDP" optimize "$V" | head -1)" >&2

# ---- the peers' repositories (the same large files) ----
PEER=$W/peer
mkdir -p "$PEER"
for f in "${BIG[@]}"; do mkdir -p "$PEER/$(dirname "$f")" && cp -a "$DATA/$f" "$PEER/$f"; done
HAVE_BORG=0 HAVE_RESTIC=0
if command -v borg > /dev/null; then
  export BORG_REPO=$W/borg BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
  export BORG_CACHE_DIR=$W/borg-cache BORG_CONFIG_DIR=$W/borg-config BORG_BASE_DIR=$W/borg-base
  if borg init -e none > /dev/null 2>&1 &&
     (cd "$PEER" && borg create --chunker-params buzhash,15,17,16,4095 -C zstd,3 ::archive . > /dev/null 2>&1); then
    HAVE_BORG=1
  fi
fi
if command -v restic > /dev/null; then
  export RESTIC_PASSWORD=ddp-bench RESTIC_REPOSITORY=$W/restic RESTIC_CACHE_DIR=$W/restic-cache
  if restic init -q > /dev/null 2>&1 && (cd "$PEER" && restic backup -q . > /dev/null 2>&1); then HAVE_RESTIC=1; fi
fi

# ---- measuring ----
# Every timed run reads through a fresh mount: nothing is left in the
# kernel's cache of the FUSE files or in the daemon, while what the mount
# reads from (the volume, the repositories) is in the page cache after an
# untimed warm-up run, unless DDP_BENCH_COLD=1.
MNT=$W/mnt
mkdir -p "$MNT"
MPID=
# do_mount KIND [ddp mount options]: mount, wait; FILES is where the files are.
do_mount() {
  local kind=$1 i hit
  shift
  case $kind in
    ddp) "$DDP" mount "$V" "$MNT" -f "$@" > "$W/mount.log" 2>&1 & ;;
    borg) borg mount -f ::archive "$MNT" > "$W/mount.log" 2>&1 & ;;
    restic) restic mount "$MNT" > "$W/mount.log" 2>&1 & ;;
  esac
  MPID=$!
  wait_mounted "$MNT" "$MPID" || { echo "$kind mount failed: $(tail -2 "$W/mount.log")" >&2; return 1; }
  FILES=$MNT
  if [[ $kind == restic ]]; then
    FILES=
    for ((i = 0; i < 100; i++)); do
      hit=$(find "$MNT/snapshots/latest/" -path "*/$LARGEST" -type f 2> /dev/null | head -1)
      [[ -n "$hit" ]] && { FILES=${hit%/"$LARGEST"}; break; }
      sleep 0.1
    done
    [[ -n "$FILES" ]] || { do_umount; return 1; }
  fi
  return 0
}
do_umount() { unmount "$MNT"; wait "$MPID" 2> /dev/null || true; }

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# cpu_ticks PID: user + system clock ticks of process PID (all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2> /dev/null || echo 0; }
# seq_mbs KIND SUBDIR [options]: "MB/s CPU-seconds" reading the large files,
# each the median of RUNS.
# With SECOND=1, the files are read once through each mount before the timed
# read (no page cache dropping then).
seq_mbs() {
  local kind=$1 sub=$2 r f t0 t1 c0 c1 hz
  shift 2
  hz=$(getconf CLK_TCK)
  if ! ((COLD)); then
    do_mount "$kind" "$@" || { echo n/a n/a; return; }
    for f in "${BIG[@]}"; do cat "$FILES$sub/$f" > /dev/null; done
    do_umount
  fi
  for ((r = 0; r < RUNS; r++)); do
    do_mount "$kind" "$@" || { echo "n/a n/a"; break; }
    if ((${SECOND:-0})); then
      for f in "${BIG[@]}"; do cat "$FILES$sub/$f" > /dev/null; done
    else
      drop_caches
    fi
    c0=$(cpu_ticks "$MPID")
    t0=$(date +%s.%N)
    for f in "${BIG[@]}"; do dd if="$FILES$sub/$f" of=/dev/null bs=1M status=none; done
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$MPID")
    do_umount
    echo "$t0 $t1 $c0 $c1" | awk -v b="$BYTES" -v hz="$hz" '{printf "%.1f %.2f\n", b / 1e6 / ($2 - $1), ($4 - $3) / hz}'
  done > "$W/seq.runs"
  if grep -q n/a "$W/seq.runs"; then echo "n/a n/a"; return; fi
  echo "$(cut -d' ' -f1 "$W/seq.runs" | median) $(cut -d' ' -f2 "$W/seq.runs" | median)"
}
# rand_lat KIND SUBDIR [options]: "median p99" microseconds of NRAND random
# 4 KiB preads of the largest file, through a fresh mount.
rand_lat() {
  local kind=$1 sub=$2
  shift 2
  do_mount "$kind" "$@" || { echo "n/a n/a"; return; }
  drop_caches
  python3 - "$FILES$sub/$LARGEST" "$NRAND" << 'EOF'
import os, random, sys, time
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
pages = max(1, os.fstat(fd).st_size // 4096)
rng = random.Random(42)
lat = []
for _ in range(n):
    off = rng.randrange(pages) * 4096
    t = time.perf_counter()
    os.pread(fd, 4096, off)
    lat.append(time.perf_counter() - t)
os.close(fd)
lat.sort()
print(f"{lat[len(lat) // 2] * 1e6:.0f} {lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6:.0f}")
EOF
  do_umount
}

declare -A SEQ CPU LAT
# case_of NAME KIND SUBDIR [options]: the sequential and random cases; with
# SECOND=1 the second read through one mount instead, and no random case.
case_of() {
  local name=$1 got
  shift
  echo "  $name ..." >&2
  got=$(seq_mbs "$@")
  SEQ[$name]=${got% *}
  CPU[$name]=${got#* }
  if ((${SECOND:-0})); then LAT[$name]="- -"; else LAT[$name]=$(rand_lat "$@"); fi
}
echo "measuring ..." >&2
case_of "ddp mount, unoptimized files" ddp /plain
case_of "ddp mount, optimized files" ddp /opt
case_of "ddp mount, optimized, 16 MiB cache" ddp /opt --cache-mb 16
SECOND=1 case_of "second read, unoptimized files" ddp /plain
SECOND=1 case_of "second read, optimized (chunks cached)" ddp /opt --cache-mb 1024
if ((HAVE_BORG)); then case_of "borg mount" borg ""; else SEQ["borg mount"]=n/a CPU["borg mount"]=n/a LAT["borg mount"]="n/a n/a"; fi
if ((HAVE_RESTIC)); then case_of "restic mount" restic ""; else SEQ["restic mount"]=n/a CPU["restic mount"]=n/a LAT["restic mount"]="n/a n/a"; fi

# ---- report ----
echo
echo "ddp mount read benchmark: $(nproc) cores, $(uname -r), ddp $("$DDP" --version | cut -d' ' -f2)"
echo "data: $DATA; sequential case: the $NFILES largest files ($((BYTES / 1048576)) MiB), random case: $LARGEST"
if ((COLD)); then echo "page cache: dropped before every timed run (echo 3 > /proc/sys/vm/drop_caches)"
else echo "page cache: warm (the files are read once before they are timed; DDP_BENCH_COLD=1 as root drops it instead)"; fi
echo "every timed run reads through a fresh mount (no FUSE page cache, no daemon cache carried over)"
echo
printf '%-38s %14s %8s %16s %14s\n' "reader" "seq MB/s" "CPU s" "4 KiB median us" "4 KiB p99 us"
base=${SEQ["ddp mount, unoptimized files"]}
base2=${SEQ["second read, unoptimized files"]}
for name in "ddp mount, unoptimized files" "ddp mount, optimized files" "ddp mount, optimized, 16 MiB cache" \
            "borg mount" "restic mount" "second read, unoptimized files" "second read, optimized (chunks cached)"; do
  read -r med p99 <<< "${LAT[$name]}"
  rel="" b=$base
  [[ "$name" == "second read"* ]] && b=$base2
  if [[ "${SEQ[$name]}" != n/a && "$b" != n/a && "$name" == *optimized[,\ ]* && "$name" != *unoptimized* ]]; then
    rel=$(awk -v a="${SEQ[$name]}" -v b="$b" 'BEGIN {printf " (%3.0f%%)", 100 * a / b}')
  fi
  printf '%-38s %14s %8s %16s %14s\n' "$name" "${SEQ[$name]}$rel" "${CPU[$name]}" "$med" "$p99"
done
