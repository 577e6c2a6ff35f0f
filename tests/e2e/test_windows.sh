#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_windows.sh: ddp on Windows Server dedup volumes, end to end.
#
# Trees written by tests/tools/mkwinstore (from docs/WINDOWS.md): all three
# reparse formats, compressed and raw chunks, chunks shared between files,
# stale offsets (Rrtl), a decoy higher generation, several containers,
# several parts, a large stream map, 0-byte files. Every file is read back
# through `ddp cat` and `ddp restore` and compared with its original;
# `ddp status` and `ddp scrub` report the volume; corruption gives the
# documented codes and names the record. Then a real NTFS image: mkntfs,
# ntfs-3g, reparse points set through system.ntfs_reparse_data, the store
# copied in, remounted, every file read back (skipped with a message when
# mkntfs, ntfs-3g, setfattr or FUSE are not available).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/winlib.sh"
need_tools mkwinstore
MK=$TOOLS/mkwinstore

S=$T/src V=$T/vol
win_sources "$S" 13 900000 700000 400000 150000 "tiny file" "volume chunk stream map reparse point data dedup windows server restore"
: > "$S/empty"
# a large map: 2100 chunks of 32 KiB (compressible, distinct)
python3 -c 'import sys; sys.stdout.buffer.write(b"".join((b"%08d" % i) * 4096 for i in range(2100)))' > "$S/big.dat"
"$MK" "$V" --decoy-gen --stream-gen 2 --data-gen 0x10000 --data-max 1000000 --maps-per-stream 5 \
  --format 0103 "$S/text.txt:docs/text.txt" "$S/rand.bin:bin/rand.bin" --raw "$S/text.txt:docs/text-raw.txt" --compress \
  --format 0102 "$S/shared1.txt:s/shared1.txt" "$S/shared2.txt:s/shared2.txt" --parts 3 "$S/text.txt:docs/parts.txt" --parts 1 \
  --format 0201 --stale "$S/text.txt:old/stale.txt" "$S/small.txt:old/small.txt" --no-stale "$S/empty:old/empty" \
  --format 0103 --chunk 32768-32768 "$S/big.dat:big/big.dat" --chunk 32768-131072 ":zero0103" \
  > "$T/mk.log" || { cat "$T/mk.log"; exit 1; }
cp "$S/small.txt" "$V/plain.txt" # a plain file next to the optimized ones
declare -A SRC=([docs/text.txt]=text.txt [bin/rand.bin]=rand.bin [docs/text-raw.txt]=text.txt
  [s/shared1.txt]=shared1.txt [s/shared2.txt]=shared2.txt [docs/parts.txt]=text.txt [old/stale.txt]=text.txt
  [old/small.txt]=small.txt [old/empty]=empty [big/big.dat]=big.dat [zero0103]=empty [plain.txt]=small.txt)

# ---- cat -----------------------------------------------------------------------------------------
for f in "${!SRC[@]}"; do
  check "cat $f" cmp -s <("$DDP" cat "$V/$f") "$S/${SRC[$f]}"
done
check "cat from inside the volume (relative path)" bash -c "cd '$V/docs' && '$DDP' cat text.txt | cmp -s - '$S/text.txt'"

# ---- status ---------------------------------------------------------------------------------------
st=$("$DDP" status "$V" --json)
check "status json: 11 optimized files" grep -q '"files_optimized":11' <<< "$st"
check "status json: by format" grep -q '"0x0201":{"files":3,' <<< "$st"
check "status json: containers" grep -qE '"data_containers":[2-9]' <<< "$st"
check "status json: one other file" grep -q '"files_other":1,' <<< "$st"
check "status text" bash -c "'$DDP' status '$V' | grep -q 'optimized files:   11'"

# ---- scrub ----------------------------------------------------------------------------------------
out=$("$DDP" scrub "$V"); rc=$?
check "scrub clean volume: exit 0" test $rc -eq 0
check "scrub: 11 files, 0 failed" grep -q "11 Windows-optimized files, 0 cannot be rebuilt" <<< "$out"
check "scrub: CRC-64 convention detected" grep -q "convention nvme" <<< "$out"
check "scrub: stale offsets through Rrtl" grep -qE "[1-9][0-9]* stream maps found through Rrtl" <<< "$out"
check "scrub --json" bash -c "'$DDP' scrub '$V' --json | grep -q '\"failed\":0'"

# ---- restore --------------------------------------------------------------------------------------
out=$("$DDP" restore --from "$V" --to "$T/out" docs bin s old big zero0103 plain.txt); rc=$?
check "restore: exit 0" test $rc -eq 0
for f in "${!SRC[@]}"; do check "restored $f" cmp -s "$T/out/$f" "$S/${SRC[$f]}"; done
check "restore: the chunk store is not restored" test ! -e "$T/out/System Volume Information"
check "restore: times kept" test "$(stat -c %Y "$T/out/docs/text.txt")" = "$(stat -c %Y "$V/docs/text.txt")"
check "restore --list-containers" bash -c "'$DDP' restore --from '$V' --to '$T/x' --list-containers docs/text.txt | grep -q 'Data/00000001.00010000.ccc'"

# ---- corruption -----------------------------------------------------------------------------------
C=$T/corrupt
reset() { rm -rf "$C"; cp -a "$V" "$C"; }
STORE="$C/System Volume Information/Dedup/ChunkStore/{77F962D7-1532-4DCD-8EC9-224C8B17741F}.ddp"
reset; rm "$STORE/Data/00000001.00010000.ccc"
expect_code "missing data container" 0x80565304 "$DDP" cat "$C/docs/text.txt"
check "missing data container: named" bash -c "'$DDP' cat '$C/docs/text.txt' 2>&1 >/dev/null | grep -q 'Data/00000001.00010000.ccc'"
out=$("$DDP" scrub "$C"); rc=$?
check "scrub of a damaged volume: exit 1" test $rc -eq 1
check "scrub names the files it cannot rebuild" grep -q '^docs/text.txt: 0x80565304' <<< "$out"
reset; for f in "$STORE"/Stream/*.ccc; do rm "$f"; done
expect_code "missing stream containers" 0x80565304 "$DDP" cat "$C/docs/text.txt"
reset; printf '\x01' | dd of="$STORE/Data/00000001.00010000.ccc" bs=1 seek=$((0x5000 + 0x30)) conv=notrunc status=none
expect_code "data chunk hash differs" 0x80565355 "$DDP" cat "$C/docs/text.txt"
reset; truncate -s 30000 "$STORE/Data/00000001.00010000.ccc"
expect_code "truncated data container" 0x80565355 "$DDP" cat "$C/docs/text.txt"
reset; printf '\xff' | dd of="$C/docs/text.txt" bs=1 seek=40 conv=notrunc status=none
expect_code "reparse CRC-32" 0x8056531D "$DDP" cat "$C/docs/text.txt"
out=$("$DDP" restore --from "$C" --to "$T/out2" docs/text.txt old/small.txt); rc=$?
check "restore with a bad file: exit 1" test $rc -eq 1
check "restore: the bad file named with its code" grep -q '^docs/text.txt: 0x8056531D' <<< "$out"
check "restore: the good file restored" cmp -s "$T/out2/old/small.txt" "$S/small.txt"
check "restore: nothing left for the failed file" test ! -e "$T/out2/docs/text.txt"
mkdir -p "$T/lonely"; cp "$V/docs/text.txt" "$T/lonely/"
expect_code "reparse file without its volume" 0x80565304 "$DDP" cat "$T/lonely/text.txt"

# ---- mount -------------------------------------------------------------------------------------
win_mount_test() { # win_mount_test VOLUME LABEL: every file of SRC/N read through a ddp mount
  local vol=$1 label=$2 mnt=$T/wm.$2
  mkdir -p "$mnt"
  "$DDP" mount "$vol" "$mnt" || { bad "$label: ddp mount"; return; }
  local f
  for f in "${!CHECK[@]}"; do check "$label: mount reads $f" cmp -s "$mnt/$f" "$S/${CHECK[$f]}"; done
  check "$label: mount: sizes are the logical sizes" test "$(stat -c %s "$mnt/docs/text.txt")" = "$(stat -c %s "$S/text.txt")"
  check "$label: mount: random access" cmp -s <(dd if="$mnt/docs/text.txt" bs=4096 skip=100 count=7 2>/dev/null) \
    <(dd if="$S/text.txt" bs=4096 skip=100 count=7 2>/dev/null)
  check "$label: mount is read-only" bash -c "! touch '$mnt/new' 2>/dev/null"
  "$DDP" umount "$mnt" || bad "$label: ddp umount"
}
if [[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null; then
  declare -A CHECK=([docs/text.txt]=text.txt [bin/rand.bin]=rand.bin [s/shared2.txt]=shared2.txt [docs/parts.txt]=text.txt
    [old/stale.txt]=text.txt [old/empty]=empty [big/big.dat]=big.dat [plain.txt]=small.txt)
  win_mount_test "$V" tree
  C2=$T/corrupt2; cp -a "$V" "$C2"
  rm "$C2/System Volume Information/Dedup/ChunkStore/{77F962D7-1532-4DCD-8EC9-224C8B17741F}.ddp/Data/00000001.00010000.ccc"
  mkdir -p "$T/wm.bad"
  if "$DDP" mount "$C2" "$T/wm.bad" 2>"$T/wm.bad.log"; then
    check "mount: a file that cannot be rebuilt gives EIO" bash -c "! cat '$T/wm.bad/docs/text.txt' > /dev/null 2>&1"
    check "mount: the others still read" cmp -s "$T/wm.bad/old/small.txt" "$S/small.txt"
    "$DDP" umount "$T/wm.bad"
  else
    bad "mount of a damaged tree"
  fi
else
  echo "skip - mount: no /dev/fuse or fusermount3"
fi

# ---- a real NTFS image -------------------------------------------------------------------------------
ntfs_test() {
  local img=$T/ntfs.img M=$T/mnt G=$T/gen
  truncate -s 200M "$img"
  mkntfs -F -f -q "$img" >/dev/null 2>&1 || { echo "skip - mkntfs failed"; return; }
  mkdir -p "$M" "$G"
  ntfs-3g "$img" "$M" 2>/dev/null || { echo "skip - ntfs-3g mount not permitted"; return; }
  MOUNTS+=("$M")
  "$MK" "$G" --no-reparse-files --hex "$T/hex.tsv" \
    --format 0103 "$S/text.txt:docs/text.txt" "$S/rand.bin:bin/rand.bin" --raw "$S/shared1.txt:raw.txt" --compress \
    --format 0102 "$S/shared2.txt:s/shared2.txt" --format 0201 --stale "$S/small.txt:old/small.txt" --no-stale \
    "$S/empty:old/empty" > /dev/null
  local rel size hex nset=0
  while IFS=$'\t' read -r rel size hex; do
    mkdir -p "$M/$(dirname "$rel")"
    truncate -s "$size" "$M/$rel"
    setfattr -h -n system.ntfs_reparse_data -v "0x$hex" "$M/$rel" && nset=$((nset + 1))
  done < "$T/hex.tsv"
  check "ntfs: reparse points set" test $nset -eq 6
  mkdir -p "$M/System Volume Information"
  cp -r "$G/System Volume Information/Dedup" "$M/System Volume Information/"
  umount "$M" && ntfs-3g -o ro "$img" "$M" || { bad "ntfs: remount"; return; }
  check "ntfs: a dedup file is a symlink" test -L "$M/docs/text.txt"
  check "ntfs: lgetxattr gives the buffer" bash -c "getfattr -h -e hex -n system.ntfs_reparse_data '$M/docs/text.txt' 2>/dev/null | grep -q '0x13000080'"
  declare -A N=([docs/text.txt]=text.txt [bin/rand.bin]=rand.bin [raw.txt]=shared1.txt [s/shared2.txt]=shared2.txt
    [old/small.txt]=small.txt [old/empty]=empty)
  for f in "${!N[@]}"; do check "ntfs: cat $f" cmp -s <("$DDP" cat "$M/$f") "$S/${N[$f]}"; done
  out=$("$DDP" restore --from "$M" --to "$T/nout" docs bin raw.txt s old); rc=$?
  check "ntfs: restore exit 0" test $rc -eq 0
  for f in "${!N[@]}"; do check "ntfs: restored $f" cmp -s "$T/nout/$f" "$S/${N[$f]}"; done
  check "ntfs: scrub" bash -c "'$DDP' scrub '$M' | grep -q '6 Windows-optimized files, 0 cannot be rebuilt'"
  check "ntfs: status" bash -c "'$DDP' status '$M' --json | grep -q '\"files_optimized\":6'"
  declare -A CHECK=([docs/text.txt]=text.txt [bin/rand.bin]=rand.bin [raw.txt]=shared1.txt [s/shared2.txt]=shared2.txt
    [old/small.txt]=small.txt [old/empty]=empty)
  win_mount_test "$M" ntfs
  umount "$M"
}
if command -v mkntfs >/dev/null && command -v ntfs-3g >/dev/null && command -v setfattr >/dev/null && [[ -e /dev/fuse ]]; then
  ntfs_test
else
  echo "skip - NTFS image: mkntfs, ntfs-3g, setfattr (packages ntfs-3g, attr) or /dev/fuse missing"
fi
finish
