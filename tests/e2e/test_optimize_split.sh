#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_optimize_split.sh: the optimizer reads a file in 1 MiB blocks, cuts
# each block into chunks in its owning worker and has the chunks hashed and
# stored by every idle worker (lib/volume/optimize.c). Its chunks must be
# exactly those of one pass over the whole file: for files of random,
# repetitive and mixed data with sizes around the block boundaries (1 MiB,
# 1 MiB + 128 KiB, and multiples; also 4 MiB), each stub's whole-file hash (a hash of the
# chunk hashes and lengths in order) equals tests/tools/chunkref's, with one
# worker and with four, and every file reads back byte for byte.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/winlib.sh" # TOOLS, need_tools
need_tools chunkref

D=$T/data
mkdir -p "$D"
M=$((1 << 20)) K=$((128 << 10))
# gen NAME SIZE KIND: random, zero, pattern (a 1000-byte period) or mixed.
gen() {
  python3 - "$D/$1" "$2" "$3" <<'PY'
import random, sys
path, size, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(size * 7 + len(kind))
if kind == "random":
    b = rng.randbytes(size)
elif kind == "zero":
    b = bytes(size)
elif kind == "pattern":
    b = (rng.randbytes(1000) * (size // 1000 + 1))[:size]
else:
    parts, n = [], 0
    while n < size:
        ext = rng.randint(1, 3 << 20)
        k = rng.random()
        parts.append(bytes(ext) if k < 0.3 else rng.randbytes(ext) if k < 0.6 else (rng.randbytes(700) * (ext // 700 + 1))[:ext])
        n += ext
    b = b"".join(parts)[:size]
open(path, "wb").write(b)
PY
}
i=0
for size in $((M - 1)) $M $((M + 1)) $((M + K - 1)) $((M + K)) $((M + K + 1)) $((2 * M + 2 * K)) $((2 * M + 2 * K + 7)) $((3 * M + 12345)) $((4 * M + K)) $((4 * M + K + 1)); do
  for kind in random zero pattern mixed; do
    i=$((i + 1)); gen "f$i.$kind" "$size" "$kind"
  done
done
gen big.mixed $((20 * M + 999)) mixed
gen big.random $((9 * M + 3 * K)) random

for threads in 1 4; do
  V=$T/vol$threads
  cp -a "$D" "$V"
  "$DDP" enable "$V" --usage Backup >/dev/null
  check "optimize --threads $threads" "$DDP" optimize "$V" --quiet --threads "$threads"
  bad=0 n=0
  for f in "$D"/*; do
    name=${f##*/}; n=$((n + 1))
    want=$("$TOOLS/chunkref" "$f" | cut -d' ' -f2)
    got=$(od -An -tx1 -j136 -N32 "$V/$name" | tr -d ' \n')
    is_stub "$V/$name" && [[ "$got" == "$want" ]] || { bad=$((bad + 1)); echo "  $name: stub hash $got, one pass $want"; }
    cmp -s <("$DDP" cat "$V/$name") "$f" || { bad=$((bad + 1)); echo "  $name: content differs"; }
  done
  check "threads=$threads: $n files, each cut as one pass cuts it and read back whole" test "$bad" -eq 0
done
# A single large file alone (the other workers can only help with its blocks).
V=$T/vol1big
mkdir -p "$V"; cp "$D/big.mixed" "$V/"
"$DDP" enable "$V" --usage Backup >/dev/null
check "one large file, --threads 2" "$DDP" optimize "$V" --quiet --threads 2
check "its stub carries the one-pass hash" test "$(od -An -tx1 -j136 -N32 "$V/big.mixed" | tr -d ' \n')" = "$("$TOOLS/chunkref" "$D/big.mixed" | cut -d' ' -f2)"
check "and reads back" cmp -s <("$DDP" cat "$V/big.mixed") "$D/big.mixed"
check "scrub finds it whole" "$DDP" scrub "$V" --quiet
finish
