#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""make-sample.py DEST [RELEASES]: build ddp's built-in sample data set.

A project's nightly releases side by side, as a file server holds them:
each release has the same ~40 files (source-like text, a few binary
blobs, one already-compressed archive), and each nightly edits a few
lines, inserts and deletes some, and adds a file. Deterministic: the same
bytes on every machine (seeded PRNG), so figures are comparable.
"""
import os, random, sys, zlib

dest = sys.argv[1]
releases = int(sys.argv[2]) if len(sys.argv) > 2 else 12
rng = random.Random(20261124)
words = ("data block chunk store stream map volume file server backup restore index hash "
         "container policy stub optimize scrub garbage collect tape read write sync rename "
         "directory owner mode time kernel fuse range offset length checksum").split()

def text_file(nlines):
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "\n" for _ in range(nlines)]

files = {}
for i in range(34):
    files[f"src/module{i:02d}.txt"] = text_file(rng.randint(900, 9000))
for i in range(5):
    files[f"assets/blob{i}.bin"] = [rng.randbytes(rng.randint(40_000, 400_000))]
files["dist/bundle.js"] = text_file(30000)

def render(name, parts):
    if name.endswith(".bin"):
        return parts[0]
    return "".join(parts).encode()

for r in range(releases):
    rel = os.path.join(dest, f"release-2026.11.{r + 1:02d}")
    for name, parts in files.items():
        path = os.path.join(rel, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(render(name, parts))
    # a compressed archive of part of the release (does not dedup across releases)
    with open(os.path.join(rel, "docs.txt.z"), "wb") as f:
        f.write(zlib.compress(render("src/module00.txt", files["src/module00.txt"]), 6))
    # tonight's edits for the next release
    for name in rng.sample(sorted(files), 6):
        parts = files[name]
        if name.endswith(".bin"):
            b = bytearray(parts[0])
            pos = rng.randrange(len(b))
            b[pos:pos] = rng.randbytes(rng.randint(1, 3000))
            files[name] = [bytes(b)]
            continue
        for _ in range(rng.randint(1, 20)):
            k = rng.randrange(len(parts))
            op = rng.random()
            if op < 0.5:
                parts[k] = " ".join(rng.choice(words) for _ in range(8)) + "\n"
            elif op < 0.8:
                parts[k:k] = text_file(rng.randint(1, 30))
            else:
                del parts[k:k + rng.randint(1, 10)]
    files[f"src/new{r:02d}.txt"] = text_file(rng.randint(2000, 6000))
