#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# dataset-images.sh DEST [N] [MIB]: a set of large files like VM images: N
# versions (default 4) of a MIB MiB image (default 256), side by side in DEST
# (1 GiB by default). The image is a deterministic mix of zero runs (30%),
# incompressible runs (35%) and compressible text-like runs (35%) in 1-8 MiB
# extents; each later version rewrites 0.5% of the previous one's 4 KiB
# blocks and inserts a few bytes in places (shifting what follows), like a
# guest's disk between two backups.
set -euo pipefail
dest=${1:?dest}; n=${2:-4}; mib=${3:-256}
mkdir -p "$dest"
python3 - "$dest" "$n" "$mib" <<'PY'
import random, sys, os
dest, n, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(20261207)
words = b"the of and to in is for on that with as by this from root user disk block file data ".split()
table = bytes((b"abcdefghijklmnop \n"[i % 18]) for i in range(256))
size = mib << 20
parts, total = [], 0
while total < size:
    ext = min(rng.randint(1, 8) << 20, size - total)
    kind = rng.random()
    if kind < 0.30:
        parts.append(bytes(ext))
    elif kind < 0.65:
        parts.append(rng.randbytes(ext))
    else:
        parts.append(rng.randbytes(ext).translate(table))
    total += ext
img = bytearray(b"".join(parts))
for v in range(1, n + 1):
    if v > 1:
        blocks = len(img) // 4096
        for _ in range(blocks // 200):
            b = rng.randrange(blocks)
            img[b * 4096:(b + 1) * 4096] = rng.randbytes(4096)
        for _ in range(8):
            at = rng.randrange(len(img))
            img[at:at] = rng.randbytes(rng.randint(1, 512))
    with open(os.path.join(dest, "disk-v%d.img" % v), "wb") as f:
        f.write(img)
PY
du -sh "$dest"; find "$dest" -type f | wc -l
