#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make-corpus.sh [OUTDIR]: seed corpora for the fuzz targets, taken from a
# real volume that the ddp CLI enables, optimizes and backs up.
#
# The seeds are the real bytes each parser meets: stubs, the identity,
# settings.conf, the catalog, the containers (with the mode byte that
# fuzz_container.c reads first), the stream maps inside the stream
# container, whole restores in the tag-length-value form of fuzz_restore.c,
# the tar backup and its manifest. OUTDIR gets one directory per target
# (OUTDIR/stub, OUTDIR/container, ...). Deterministic apart from the random
# store id and key a new volume gets.
#
# DDP: the ddp binary (default: build/ddp, then build-fault/ddp).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-$root/build-fuzz/corpus}
if [[ -z "${DDP:-}" ]]; then
  for c in "$root/build/ddp" "$root/build-fault/ddp" "$root/build-asan/ddp"; do
    [[ -x $c ]] && { DDP=$c; break; }
  done
fi
[[ -x "${DDP:-}" ]] || { echo "make-corpus: set DDP to the ddp binary (build it first)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ddp-corpus.XXXXXX")
trap 'rm -rf "$work"' EXIT
V=$work/vol

# A small volume: compressible text, an edited copy (shared chunks), random
# data (stored raw), a file that repeats another (dedup), a file too small
# for the policy, and settings with list values.
mkdir -p "$V/docs" "$V/bin"
python3 - "$V" <<'PY'
import random, sys
v = sys.argv[1]
r = random.Random(20261124)
words = b"alpha beta gamma delta chunk store stream map volume restore backup stub".split()
def text(n): return b" ".join(r.choice(words) for _ in range(n)) + b"\n"
a = text(7000)
open(f"{v}/docs/a.txt", "wb").write(a)
open(f"{v}/docs/b.txt", "wb").write(a[:30000] + b"an edit in the middle\n" + a[30000:])
c = r.randbytes(34000)
open(f"{v}/bin/c.bin", "wb").write(c)
open(f"{v}/bin/d.bin", "wb").write(c + c[:5000])
open(f"{v}/small.txt", "wb").write(b"too small to optimize\n")
PY
# A second, tiny volume (two files of repeated text that compress to a few
# hundred bytes): small containers and restores, which the fuzzers mutate
# and run much faster.
S=$work/small
mkdir -p "$S"
python3 - "$S" <<'PY'
import sys
s = sys.argv[1]
open(f"{s}/one.txt", "wb").write(b"the same line of text, over and over\n" * 1100)
open(f"{s}/two.txt", "wb").write(b"the same line of text, over and over\n" * 900 + b"and a different end\n" * 200)
PY
"$DDP" enable "$S" --usage Backup >/dev/null
"$DDP" optimize "$S" --quiet >/dev/null

"$DDP" enable "$V" --usage Backup >/dev/null
"$DDP" set "$V" excluded_folders scratch,tmp/old >/dev/null
"$DDP" set "$V" excluded_types part,bak >/dev/null
"$DDP" optimize "$V" --quiet >/dev/null
"$DDP" backup "$V" "$work/bk" >/dev/null
"$DDP" backup "$V" "$work/bk.tar" --tar >/dev/null || true
# The same volume compacted (tests/tools/ddp_compact_all, built next to ddp):
# every container behind a redirection table, as gc leaves it.
VC=$work/vc
CA=$(dirname "$DDP")/ddp_compact_all
if [[ -x $CA ]] && cp -a "$V" "$VC" && "$CA" "$VC" >/dev/null; then :; else rm -rf "$VC"; fi

rm -rf "$out"
mkdir -p "$out"
python3 - "$V" "$work" "$out" "$S" "$VC" <<'PY'
import glob, os, struct, sys
v, work, out, small, compacted = sys.argv[1:6]
def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)
def rd(p): return open(p, "rb").read()

def seeds(v, tag):
    ddp = os.path.join(v, ".ddp")
    store = glob.glob(os.path.join(ddp, "ChunkStore", "*.ddp"))[0]
    sid = os.path.basename(store)
    stubs = {}
    for p in sorted(glob.glob(os.path.join(v, "**", "*"), recursive=True)):
        if os.path.isfile(p) and "/.ddp/" not in p:
            b = rd(p)
            rel = os.path.relpath(p, v).replace("/", "_")
            put("stub", tag + rel, b)
            if len(b) == 232: stubs[rel] = b
    put("identity", tag + "identity", rd(os.path.join(ddp, "Settings", "identity")))
    put("identity", tag + "guid", sid[:-4].encode())
    put("settings", tag + "settings.conf", rd(os.path.join(ddp, "Settings", "settings.conf")))
    put("catalog", tag + "catalog", rd(os.path.join(store, "catalog")))

    containers = {}
    for p in sorted(glob.glob(os.path.join(store, "*", "*.ccc"))):
        rel = "/.ddp/ChunkStore/" + sid + "/" + os.path.relpath(p, store)
        b = rd(p)
        containers[rel] = b
        base = tag + os.path.relpath(p, store).replace("/", "_")
        put("container", base + ".raw", b"\x00" + b)
        put("container", base + ".fix+file", b"\x03" + b)
        put("container", base + ".torn", b"\x02" + b[: max(64, len(b) - 100)])
        # the stream maps: payloads of type-2 records (stored raw)
        off = 64
        k = 0
        while off + 64 <= len(b):
            typ = struct.unpack_from("<H", b, off + 4)[0]
            stored = struct.unpack_from("<I", b, off + 8)[0]
            if typ == 2 and b[off + 6] == 0:
                put("streammap", f"{base}.{k}", b[off + 64: off + 64 + stored])
                k += 1
            off += 64 + stored
            if typ == 3: break

    def tlv_stub(b): return b"\x00" + struct.pack("<I", len(b)) + b
    def tlv_file(name, b):
        n = name.encode()
        return b"\x01" + struct.pack("<H", len(n)) + n + struct.pack("<I", len(b)) + b
    def tlv_plan(ext): return b"\x02" + struct.pack("<I", 20 * len(ext)) + b"".join(struct.pack("<Iqq", *e) for e in ext)
    def tlv_fault(call, hr): return b"\x03" + struct.pack("<I", 8) + struct.pack("<II", call, hr)
    meta = tlv_file("/.ddp/Settings/identity", rd(os.path.join(ddp, "Settings", "identity")))
    meta += tlv_file("/.ddp/ChunkStore/" + sid + "/catalog", rd(os.path.join(store, "catalog")))
    conts = b"".join(tlv_file(n, b) for n, b in containers.items())
    allstubs = b"".join(tlv_stub(b) for b in stubs.values())
    one = tlv_stub(next(iter(stubs.values()))) if stubs else b""
    INT64_MAX = (1 << 63) - 1
    put("restore", tag + "all", b"\x00" + allstubs + meta + conts)
    put("restore", tag + "all.fix", b"\x01" + allstubs + meta + conts)
    put("restore", tag + "one", b"\x00" + one + meta + conts)
    put("restore", tag + "extras", b"\x38" + allstubs + meta + conts)
    put("restore", tag + "plan", b"\x00" + allstubs + meta + conts + tlv_plan([(0, 0, INT64_MAX)]) +
        tlv_plan([(0, 64, 4096), (0, 0, INT64_MAX)]))
    put("restore", tag + "shortreads", b"\x02" + allstubs + meta + conts[: len(conts) * 3 // 4])
    put("restore", tag + "fault", b"\x00" + allstubs + meta + conts + tlv_fault(3, 0x80070005))
    put("restore", tag + "listing", b"\x40" + allstubs + meta + conts)
    put("restore", tag + "nostore", b"\x10" + allstubs)


seeds(v, "")
seeds(small, "small-")
if os.path.isdir(compacted): seeds(compacted, "compacted-")

tar = os.path.join(work, "bk.tar")
if os.path.exists(tar): put("tar", "bk.tar", rd(tar))
mf = os.path.join(work, "bk", ".ddp-backup", "manifest")
if os.path.exists(mf): put("manifest", "manifest", rd(mf))
PY
# Windows: whole restores of reparse files over a small Windows-format store
# (tests/tools/mkwinstore, built next to ddp): three formats, compressed and
# raw chunks, a stale offset, a decoy generation.
MK=$(dirname "$DDP")/mkwinstore
if [[ -x $MK ]]; then
  W=$work/winrs
  mkdir -p "$work/wsrc"
  python3 - "$work/wsrc" <<'PY'
import random, sys
r = random.Random(7)
open(sys.argv[1] + "/a.txt", "wb").write(b"windows dedup chunk " * 3000)
open(sys.argv[1] + "/b.bin", "wb").write(r.randbytes(40000))
PY
  "$MK" "$W" --decoy-gen --stream-gen 2 --chunk 16384-32768 --format 0103 "$work/wsrc/a.txt:a0103" \
    --raw "$work/wsrc/b.bin:b0103" --compress --format 0102 --parts 2 "$work/wsrc/a.txt:a0102" --parts 1 \
    --format 0201 --stale "$work/wsrc/a.txt:a0201" >/dev/null
  python3 - "$W" "$out" <<'PY'
import os, struct, sys
w, out = sys.argv[1], sys.argv[2]
def rd(p): return open(p, "rb").read()
def tlv_stub(b): return b"\x00" + struct.pack("<I", len(b)) + b
def tlv_file(name, b):
    n = name.encode()
    return b"\x01" + struct.pack("<H", len(n)) + n + struct.pack("<I", len(b)) + b
stubs, files = [], []
for dp, dn, fn in os.walk(w):
    for f in sorted(fn):
        p = os.path.join(dp, f)
        rel = "/" + os.path.relpath(p, w)
        if rel.startswith("/System Volume Information/"): files.append(tlv_file(rel, rd(p)))
        else: stubs.append(tlv_stub(rd(p)))
os.makedirs(os.path.join(out, "restore"), exist_ok=True)
body = b"".join(stubs) + b"".join(files)
for name, flags in (("win-all", b"\x00"), ("win-all.fix", b"\x01"), ("win-short", b"\x02"), ("win-extras", b"\x38")):
    open(os.path.join(out, "restore", name), "wb").write(flags + body)
open(os.path.join(out, "restore", "win-one"), "wb").write(b"\x00" + stubs[0] + b"".join(files))
PY
fi
# ---- Windows dedup: seeds for winreparse, winrecord, xpress, winstore -----------------
# A small Windows-format volume from tests/tools/mkwinstore (built next to ddp).
MK=$(dirname "$DDP")/mkwinstore
if [[ -x $MK ]]; then
  W=$work/win
  mkdir -p "$W/src"
  python3 - "$W/src" <<'PY'
import random, sys
s = sys.argv[1]
r = random.Random(7)
words = b"volume chunk stream map reparse point data".split()
t = b" ".join(r.choice(words) for _ in range(15000))
open(f"{s}/t.txt", "wb").write(t[:70000])
open(f"{s}/r.bin", "wb").write(r.randbytes(40000))
open(f"{s}/e", "wb").write(b"")
PY
  "$MK" "$W/vol" --maps-per-stream 3 --chunk 32768-40000 --format 0103 "$W/src/t.txt:a" "$W/src/r.bin:b" \
    --format 0102 --parts 2 "$W/src/t.txt:c" --parts 1 --format 0201 --stale "$W/src/t.txt:d" "$W/src/e:e" >/dev/null
  python3 - "$W/vol" "$out" <<'PY'
import glob, os, struct, sys
vol, out = sys.argv[1:3]
def put(target, name, data):
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)
store = glob.glob(os.path.join(vol, "System Volume Information", "Dedup", "ChunkStore", "*.ddp"))[0]
conts = {}
for p in sorted(glob.glob(os.path.join(store, "*", "*.ccc"))):
    rel = os.path.relpath(p, store)
    b = open(p, "rb").read(); conts[rel] = b
    tag = rel.replace("/", "_")
    put("winrecord", tag + ".cthr", b[:64])
    put("winrecord", tag + ".rec", b[0x5000:0x5000 + 0x70 + 64 * 4])
    if rel.startswith("Stream"):
        cnt = struct.unpack_from("<I", b, 0x3008)[0]
        put("winrecord", tag + ".rrtl", b[0x3000:0x3020 + 8 * cnt])
        off = 0x5000
        while off + 0x70 <= len(b) and b[off:off + 4] == b"Ckhr":
            pay = struct.unpack_from("<I", b, off + 12)[0]
            prev = None
            for i in range((pay - 8) // 64):
                e = b[off + 0x70 + 64 * i: off + 0x70 + 64 * (i + 1)]
                seq, cid, doff, gen, end = struct.unpack_from("<IIIIQ", e)
                stored = struct.unpack_from("<I", e, 0x38)[0]
                logical = end - (prev if prev is not None else 0) if i else end
                prev = end
                d = conts.get("Data/%08X.%08X.ccc" % (cid, gen)) or open(os.path.join(store, "Data", "%08X.%08X.ccc" % (cid, gen)), "rb").read()
                if stored != logical:
                    put("xpress", "%s.%x" % (tag, doff), struct.pack("<I", logical) + d[doff + 0x58: doff + 0x58 + stored])
            off = (off + 0x68 + pay + 7) & ~7
for name in "abcde":
    rb = open(os.path.join(vol, name), "rb").read()
    put("winreparse", name, b"\x00" + rb)
    put("winreparse", name + ".fix", b"\x01" + rb)
    files = b""
    for rel, b in conts.items():
        n = rel.encode()
        files += bytes([len(n)]) + n + struct.pack("<I", len(b)) + b
    for mode in (0, 1, 2, 3):
        put("winstore", "%s.%d" % (name, mode), bytes([mode]) + struct.pack("<H", len(rb)) + rb + files)
PY
fi

for d in "$out"/*/; do printf '%-10s %3d seeds\n' "$(basename "$d")" "$(ls "$d" | wc -l)"; done
