#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_restore_windows.sh: IDedupBackupSupport::RestoreFiles over Windows
# Server dedup data, end to end: a Windows volume written by
# tests/tools/mkwinstore, copied as a directory backup; its reparse files
# restored onto Linux in a target directory (as a backup application does
# before RestoreFiles), then tests/tools/rsfiles calls RestoreFiles on them
# with ddp's directory store (which lists folders: IDdpListBackupFolder),
# and again with that interface hidden (the bounded generation probe). Every
# file must come back byte for byte; a missing data container and a broken
# reparse file give their codes and leave the reparse file as it was.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/winlib.sh"
need_tools mkwinstore rsfiles
MK=$TOOLS/mkwinstore RS=$TOOLS/rsfiles

S=$T/src V=$T/vol
win_sources "$S" 29 800000 500000 300000 100000 small "backup restore reparse stream chunk container generation table"
"$MK" "$V" --decoy-gen --stream-gen 2 --data-gen 0x10000 --maps-per-stream 3 \
  --format 0103 "$S/text.txt:t0103.txt" --raw "$S/rand.bin:r0103.bin" --compress \
  --format 0102 "$S/shared1.txt:s1.txt" "$S/shared2.txt:s2.txt" --parts 3 "$S/text.txt:p0102.txt" --parts 1 \
  --format 0201 --stale "$S/text.txt:stale0201.txt" "$S/small.txt:small0201.txt" --no-stale \
  > "$T/mk.log" || { cat "$T/mk.log"; exit 1; }
declare -A SRC=([t0103.txt]=text.txt [r0103.bin]=rand.bin [s1.txt]=shared1.txt [s2.txt]=shared2.txt
  [p0102.txt]=text.txt [stale0201.txt]=text.txt [small0201.txt]=small.txt)

# The backup: a plain copy of the volume. The target: the reparse files only.
cp -a "$V" "$T/backup"
for mode in list probe; do
  D=$T/to-$mode
  mkdir -p "$D"
  args=()
  for f in "${!SRC[@]}"; do cp "$V/$f" "$D/$f"; args+=("$D/$f"); done
  opt=(); [[ $mode == probe ]] && opt=(--no-list)
  out=$("$RS" "${opt[@]}" "$T/backup" "${args[@]}" 2>&1); rc=$?
  check "RestoreFiles ($mode): S_OK" test "$rc" -eq 0
  [[ $rc -eq 0 ]] || echo "$out"
  for f in "${!SRC[@]}"; do
    check "$mode: $f restored byte for byte" cmp -s "$D/$f" "$S/${SRC[$f]}"
  done
  check "$mode: no temporary files left" test -z "$(find "$D" -name '*.ddp-tmp.*')"
done

# Failures: a reparse file that does not parse, a data container the backup lacks.
D=$T/to-bad
mkdir -p "$D"
cp "$V/t0103.txt" "$D/t0103.txt"
cp "$V/small0201.txt" "$D/small0201.txt"
printf '\x01' | dd of="$D/small0201.txt" bs=1 seek=20 conv=notrunc status=none
cp -a "$T/backup" "$T/backup2"
rm -f "$T/backup2/System Volume Information/Dedup/ChunkStore/"*/Data/*
cp "$D/small0201.txt" "$T/small.before"
cp "$D/t0103.txt" "$T/t.before"
out=$("$RS" "$T/backup2" "$D/t0103.txt" "$D/small0201.txt" 2>&1)
check "missing data container: DDP_E_PATH_NOT_FOUND" grep -q "^0x80565304 $D/t0103.txt" <<< "$out"
check "broken reparse file: DDP_E_INVALID_DATA" grep -q "^0x8056531D $D/small0201.txt" <<< "$out"
check "failed files are left as they were" bash -c "cmp -s '$D/t0103.txt' '$T/t.before' && cmp -s '$D/small0201.txt' '$T/small.before'"

echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 ]]
