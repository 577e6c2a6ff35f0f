#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_maintenance.sh: the maintenance jobs through the CLI (docs/MAINTENANCE.md).
# Garbage collection after deleting half the files: the bytes reclaimed are
# reported, du of the store shrinks, the store is compact (no holes), every
# remaining file reads back through `ddp cat`, a backup taken before gc still
# restores a deleted file, and gc stopped after each of its steps
# (DDP_GC_CRASH_AFTER) loses nothing and is finished by the next job. Scrubbing: clean on a good volume (exit
# 0, --json valid), a flipped byte in a chunk is found (exit non-zero; the
# message names the container and the file), --repair mends a hotspot chunk
# from its copy. `ddp status` shows the last gc and scrub. Unoptimization
# keeps every file's bytes.
source "$(dirname "$0")/lib.sh"

V=$T/vol
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$V" 4
for i in 1 2 3 4 5 6; do head -c $((300000 + i * 1000)) /dev/urandom > "$V/rand$i.bin"; done
tree_sums "$V" > "$T/sums0"
cp -a "$V" "$T/orig"
# reads_back DIR LIST: every file of LIST (paths relative to DIR) read through
# one `ddp cat` has the original bytes (compared as one stream).
reads_back() {
  [[ "$(cd "$1" && xargs -d '\n' "$DDP" cat < "$2" | sha256sum)" == "$(cd "$T/orig" && xargs -d '\n' cat < "$2" | sha256sum)" ]]
}
"$DDP" enable "$V" --usage Backup > /dev/null
check "hotspot_threshold can be set to 2" "$DDP" set "$V" hotspot_threshold 2
check "optimize" "$DDP" optimize "$V" --quiet
STORE=$(echo "$V"/.ddp/ChunkStore/*.ddp)
check "chunks referenced twice or more got hotspot copies" test -n "$(ls "$STORE/Hotspot/")"
check "gc_threshold is a setting (default 5)" test "$("$DDP" get "$V" gc_threshold)" = 5

# ------------------------------------------------------------------ scrub, clean
out=$("$DDP" scrub "$V" 2>&1); rc=$?
check "scrub of a good volume exits 0" test $rc -eq 0
check "and says so" grep -q "No damage found" <<<"$out"
check "scrub --json is valid JSON with no damage" python3 -c "
import json, sys; d = json.loads(sys.argv[1]); assert d['damaged'] == 0 and d['stubs'] > 100 and d['items'] == []" \
  "$("$DDP" scrub "$V" --json)"

# ------------------------------------------------------------------ gc
"$DDP" backup "$V" "$T/B" > /dev/null # taken before gc
mapfile -t ALL < <(cd "$V" && find . -path ./.ddp -prune -o -type f -printf '%P\n' | sort)
DELETED=()
for ((i = 0; i < ${#ALL[@]}; i += 2)); do DELETED+=("${ALL[i]}"); rm -f "$V/${ALL[i]}"; done
grep -v -F -f <(printf './%s\n' "${DELETED[@]}") "$T/sums0" | sort -k2 > "$T/sums1"
(cd "$V" && find . -path ./.ddp -prune -o -type f -printf '%P\n' | sort) > "$T/live"
cp -a "$V" "$T/pristine" # for the crash runs below
du_before=$(du -sB1 "$STORE" | cut -f1)
out=$("$DDP" gc "$V" 2>&1); rc=$?
echo "$out"
check "gc exits 0" test $rc -eq 0
reclaimed=$(sed -nE 's/.*reclaimed .* \(([0-9]+) bytes\) on disk.*/\1/p' <<<"$out")
check "gc reports the bytes reclaimed" test "${reclaimed:-0}" -gt 0
du_after=$(du -sB1 "$STORE" | cut -f1)
check "du of the store shrinks ($du_before -> $du_after)" test "$du_after" -lt "$du_before"
check "no gc plan is left" test ! -e "$V/.ddp/State/gc.plan"
check "every remaining file reads back through ddp cat" reads_back "$V" "$T/live"
check "gc --full takes what the regular run left under gc_threshold" eval '"$DDP" gc "$V" --full > /dev/null'
out=$("$DDP" gc "$V" --full 2>&1)
check "then a gc finds nothing more" grep -q "Collected 0 dead records" <<<"$out"
victim=rand1.bin
[[ " ${DELETED[*]} " == *" $victim "* ]] || victim=${DELETED[0]}
"$DDP" restore --from "$T/B" --to "$T/r" "$victim" > /dev/null 2>&1
check "a backup taken before gc still restores a deleted file" \
  test "$(sha256sum < "$T/r/$victim" | cut -d' ' -f1)" = "$(grep -F " ./$victim" "$T/sums0" | head -1 | cut -d' ' -f1)"
# gc compacts (containers rewritten with only their live records): the store
# after gc holds no holes, and a backup taken after gc is no larger than it.
store_du=$(du -sk "$STORE" | cut -f1)
"$DDP" backup "$V" "$T/B2" > /dev/null
"$DDP" backup "$V" "$T/B2.tar" --tar > /dev/null
b2_du=$(du -sk "$T/B2/.ddp/ChunkStore" | cut -f1)
tar_kb=$(( $(stat -c %s "$T/B2.tar") / 1024 ))
apparent_kb=$(du -sk --apparent-size "$STORE" | cut -f1)
check "the store after gc is compact, not sparse (du $store_du KiB <= apparent $apparent_kb KiB + 5%)" \
  test "$store_du" -le $((apparent_kb * 105 / 100 + 64))
check "a directory backup after gc is no larger than the store ($b2_du KiB <= $store_du KiB + 64)" test "$b2_du" -le $((store_du + 64))
check "a tar backup after gc is no larger than the store ($tar_kb KiB <= apparent $apparent_kb KiB + 3%)" \
  test "$tar_kb" -le $((apparent_kb * 103 / 100 + 64))
for bk in "$T/B2" "$T/B2.tar"; do
  rm -rf "$T/r2"; mkdir "$T/r2"
  keep=$(grep -v '^\.' "$T/live" | head -3)
  "$DDP" restore --from "$bk" --to "$T/r2" $keep > /dev/null 2>&1
  okr=1
  for f in $keep; do
    [[ $(sha256sum < "$T/r2/$f" 2>/dev/null | cut -d' ' -f1) == "$(grep -F " ./$f" "$T/sums0" | head -1 | cut -d' ' -f1)" ]] || okr=0
  done
  check "files restore from the backup taken after gc ${bk##*/}" test $okr = 1
done
check "re-optimizing after gc works" "$DDP" optimize "$V" --quiet

# gc --full stopped after its n-th step, then finished by the next job: every
# step of a run (plan, index; new generations, catalog, old files removed,
# the hotspot container's too; plan removed, index rebuilt), until a run
# finishes (bounded).
last=0
for ((n = 1; n <= 40; n++)); do
  W=$T/crash
  rm -rf "$W" && cp -a "$T/pristine" "$W"
  rc=0; DDP_GC_CRASH_AFTER=$n "$DDP" gc "$W" --full > /dev/null 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then last=$n; rm -rf "$W"; break; fi
  check "gc stopped after step $n (exit 99)" test $rc -eq 99
  check "after the stop at step $n every live file reads back" reads_back "$W" "$T/live"
  check "the next gc completes" eval '"$DDP" gc "$W" --full > /dev/null'
  check "and leaves no plan" test ! -e "$W/.ddp/State/gc.plan"
  check "and no file of another generation" test -z "$(cd "$W"/.ddp/ChunkStore/*.ddp && for d in Data Stream Hotspot; do ls "$d" | cut -d. -f1 | sort | uniq -d; done)"
  check "and every live file still reads back" reads_back "$W" "$T/live"
  rm -rf "$W"
done
check "a gc run has a bounded number of steps, each tested (finished at $last)" test "$last" -gt 8

# ------------------------------------------------------------------ scrub finds damage
# where FILE CHUNK: "container-path offset stored_len hot" of chunk CHUNK of FILE
# (hot: 1 if a hotspot copy of it exists), read from the stub and stream map.
where() {
  python3 - "$STORE" "$1" "$2" <<'EOF'
import glob, os, struct, sys
store, path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
def locate(kind, cid, lid):
    # the container's current generation, and where local id lid lies in it
    p = sorted(glob.glob(f'{store}/{kind}/{cid:08X}.*.ccc'))[-1]
    b = open(p, 'rb').read()
    rlen, = struct.unpack_from('<Q', b, 48)
    for i in range(rlen // 16):
        i_id, i_off = struct.unpack_from('<QQ', b, 128 + 16 * i)
        if i_id == lid: return p, i_off, b
    return p, lid, b
stub = open(path, 'rb').read()
sc, = struct.unpack_from('<I', stub, 112); soff, = struct.unpack_from('<Q', stub, 120)
_, soff, s = locate('Stream', sc, soff)
m = s[soff + 64:]
h = m[56 + 56 * k: 56 + 56 * k + 32]
dc, = struct.unpack_from('<I', m, 56 + 56 * k + 32)
off, = struct.unpack_from('<Q', m, 56 + 56 * k + 40)
stored, = struct.unpack_from('<I', m, 56 + 56 * k + 48)
dpath, off, _ = locate('Data', dc, off)
hot = 0
for hp in glob.glob(f'{store}/Hotspot/*.ccc'):
    b = open(hp, 'rb').read(); o = 64
    while o + 64 <= len(b):
        t, = struct.unpack_from('<H', b, o + 4); n, = struct.unpack_from('<I', b, o + 8)
        if t == 1 and b[o + 16:o + 48] == h: hot = 1
        o += 64 + n
        if t == 3: break
print(dpath, off, stored, hot)
EOF
}
flip() { python3 -c "
import sys; p, o = sys.argv[1], int(sys.argv[2]); f = open(p, 'r+b'); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x5A]))" "$1" "$2"; }

# a chunk of a unique file: no copy anywhere
u=$(cd "$V" && ls rand*.bin | head -1)
read -r cpath coff cstored chot <<<"$(where "$V/$u" 1)"
check "the unique file's chunk has no hotspot copy" test "$chot" = 0
flip "$cpath" $((coff + 64 + cstored / 2))
out=$("$DDP" scrub "$V" 2>&1); rc=$?
echo "$out" | head -5
check "scrub finding a flipped byte exits non-zero" test $rc -ne 0
check "the message names the container and the offset" grep -qF "$cpath at offset $coff" <<<"$out"
check "the message names the file" grep -qF "$V/$u" <<<"$out"
expect_code "ddp cat of the damaged file fails cleanly" 0x80565355 "$DDP" cat "$V/$u"
out=$("$DDP" scrub "$V" --repair 2>&1); rc=$?
check "--repair cannot mend a chunk with no copy, and says so" grep -q "could not mend" <<<"$out"
check "and exits non-zero" test $rc -ne 0

# a chunk with a hotspot copy
h=""
for f in $(cd "$V" && find release-* -name 'module*.txt' | sort); do
  read -r hpath hoff hstored hhot <<<"$(where "$V/$f" 0)"
  if [[ $hhot == 1 ]]; then h=$f; break; fi
done
check "a file whose first chunk has a hotspot copy" test -n "$h"
want=$(sha256sum < <("$DDP" cat "$V/$h") | cut -d' ' -f1)
flip "$hpath" $((hoff + 64 + hstored / 3))
out=$("$DDP" scrub "$V" --repair --json 2>/dev/null)
check "scrub --repair mends the hotspot chunk from its copy" python3 -c "
import json, sys
d = json.loads(sys.argv[1]); p, o = sys.argv[2], int(sys.argv[3])
it = [i for i in d['items'] if i['file'] == p and i['offset'] == o]
assert it and it[0]['repaired'] and 'Hotspot/' in it[0]['repair'], d" "$out" "$hpath" "$hoff"
check "the mended file reads back" test "$(sha256sum < <("$DDP" cat "$V/$h") | cut -d' ' -f1)" = "$want"

# ------------------------------------------------------------------ status
out=$("$DDP" status "$V")
check "status shows the last gc" grep -qE "^Last gc: +[0-9T:-]+Z gc 0x00000000" <<<"$out"
check "status shows the last scrub (which found damage)" grep -qE "^Last scrub: +[0-9T:-]+Z scrub 0x80565355" <<<"$out"
check "status --json has last_gc and last_scrub" python3 -c "
import json, sys; d = json.loads(sys.argv[1]); assert d['last_gc']['job'] == 'gc' and d['last_scrub']['job'] == 'scrub'
assert d['last_scrub']['result'] == '0x80565355' and isinstance(d['last_gc']['seconds'], (int, float))" \
  "$("$DDP" status "$V" --json)"

# ------------------------------------------------------------------ unoptimize
rm -f "$V/$u" # the file whose chunk could not be mended
grep -v -F " ./$u" "$T/sums1" > "$T/sums2"
check "unoptimize the volume" "$DDP" unoptimize "$V"
check "no stubs remain" test "$(count_stubs "$V")" -eq 0
check "every file has its original bytes" diff "$T/sums2" <(tree_sums "$V" | sort -k2)

if grep -q ddp_unoptimize_job "$DDP_SOURCE_DIR/programs/cmd_jobs.c"; then
  check "unoptimize VOLUME removed .ddp" test ! -e "$V/.ddp"
else
  echo "skip - .ddp removal: programs/cmd_jobs.c does not call ddp_unoptimize_job yet (tested in test_scrub.c)"
fi

# ------------------------------------------------------------------ usage
expect_code "gc of a directory that is not a volume" 0x80565323 "$DDP" gc "$T/B/.."
out=$("$DDP" gc 2>&1); rc=$?
check "gc without a volume is a usage error (exit 2)" test $rc -eq 2
out=$("$DDP" scrub "$T" --bogus 2>&1); rc=$?
check "scrub with an unknown option is a usage error (exit 2)" test $rc -eq 2

finish
