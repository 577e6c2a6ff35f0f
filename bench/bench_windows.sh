#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_windows.sh [BUILD_DIR]: reading Windows-optimized files with ddp.
#
#   1. the Xpress (MS-XCA Plain LZ77) decoder alone, GB/s of output per core
#      (bench_xpress: synthetic text, binary and runs, and a tar of this
#      source tree cut in 64 KiB chunks);
#   2. `ddp cat` and reads through `ddp mount` of a large Windows-optimized
#      file (SIZE, default 1 GiB),
#      compressed (copies of this source tree's tar, Xpress chunks) and raw
#      (random data),
#      written by tests/tools/mkwinstore, against plain `cat` of the same
#      bytes; page cache warm for both (each is read once before timing).
#
# SIZE=256M bash bench/bench_windows.sh for a quicker run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
size=${SIZE:-1G}
for t in ddp mkwinstore bench_xpress; do
  [[ -x $build/$t ]] || { echo "bench_windows: build $build/$t first (cmake --build build)"; exit 2; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/ddp-bench-win.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== decoder"
tar cf "$work/src.tar" -C "$root" lib programs docs tests
"$build/bench_xpress" 512 "$work/src.tar"

echo "== ddp cat of a $size Windows-optimized file"
bytes=$(numfmt --from=iec "$size")
# Compressible data: this source tree (tar), each copy rotated differently so
# that no two chunks are equal (no dedup, only compression).
python3 - "$work/text" "$bytes" "$work/src.tar" <<'PY'
import sys
path, n, src = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "rb").read()
with open(path, "wb") as f:
    i = 0
    while n > 0:
        s = (i * 7919) % len(src)
        blk = src[s:] + src[:s]
        f.write(blk[:n]); n -= min(n, len(blk)); i += 1
PY
head -c "$bytes" /dev/urandom > "$work/rand"
t0=$(date +%s.%N)
"$build/mkwinstore" "$work/vol" --compress "$work/text:big.txt" --raw "$work/rand:big.bin" > /dev/null
t1=$(date +%s.%N)
store=$(du -sb "$work/vol/System Volume Information" | cut -f1)
echo "store written in $(echo "$t1 - $t0" | bc) s; $(numfmt --to=iec "$store") for 2 x $size"
rate() { # rate LABEL CMD...: MB/s of CMD writing $bytes to /dev/null (second run, warm),
         # by the wall clock and per CPU second (user + sys: what a shared machine's load does not skew)
  local label=$1; shift
  "$@" > /dev/null
  local t r u s
  t=$( { TIMEFORMAT='%R %U %S'; time "$@" > /dev/null; } 2>&1 )
  read -r r u s <<< "$t"
  printf '%-36s %7.0f MB/s wall, %7.0f MB/s per CPU second\n' "$label" "$(echo "$bytes / $r / 1000000" | bc -l)" \
    "$(echo "$bytes / ($u + $s + 0.0005) / 1000000" | bc -l)"
}
rate "cat (plain text file)" cat "$work/text"
rate "ddp cat (Xpress-compressed chunks)" "$build/ddp" cat "$work/vol/big.txt"
rate "cat (plain random file)" cat "$work/rand"
rate "ddp cat (raw chunks)" "$build/ddp" cat "$work/vol/big.bin"
# Through `ddp mount` (read-only FUSE view): one read of each file on a fresh
# mount (a second would come from the kernel's page cache).
if [[ -e /dev/fuse ]] && command -v fusermount3 > /dev/null; then
  mkdir -p "$work/mnt"
  for f in big.txt big.bin; do
    "$build/ddp" mount "$work/vol" "$work/mnt" || break
    a=$(date +%s.%N); cat "$work/mnt/$f" > /dev/null; b=$(date +%s.%N)
    printf '%-36s %7.0f MB/s wall (cold mount)\n' "read $f through ddp mount" "$(echo "$bytes / ($b - $a) / 1000000" | bc -l)"
    "$build/ddp" umount "$work/mnt"
  done
fi
cmp <("$build/ddp" cat "$work/vol/big.txt") "$work/text" && echo "compressed file: identical"
cmp <("$build/ddp" cat "$work/vol/big.bin") "$work/rand" && echo "raw file: identical"
