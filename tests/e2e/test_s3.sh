#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_s3.sh: backups to S3 on a real Ceph cluster. A single-node cluster
# (monitor, one OSD with bluestore on a sparse file, radosgw on 127.0.0.1)
# is started with scripts/ceph/start-cluster.sh and stopped by PID at the
# end. On it: a full and an incremental `ddp backup` to RGW of a generated
# volume (small files in pack objects, manifest version 2), selective and
# full restores compared byte for byte, an old-layout backup (DDP_S3_PACKS=0:
# one object per file, manifest version 1) and an incremental with packs on
# top of it, RestoreFiles'
# rules R1-R10 through a recording wrapper around the S3 store
# (tests/tools/s3rules.c), and the faults: radosgw killed in the middle of a
# backup (not complete; the same command again completes it; a rerun
# sends no pack again that is already there) and of a restore (per-file
# errors, the stubs RestoreFiles failed on untouched, a retry succeeds; ddp
# restore leaves nothing at a failed path), a wrong secret key, a missing
# bucket, a missing object, a truncated object, a missing pack, a truncated
# pack.
# Without the Ceph packages or root, or when the cluster does not start,
# it says so loudly and exits 77 (ctest: skipped).
source "$(dirname "$0")/lib.sh"
set -uo pipefail

source "$(dirname "$0")/cephlib.sh"
t0=$(date +%s)
ceph_up test_s3 20000
rgw_pid() { awk '$1 == "rgw.a" {print $2}' "$CEPH_DIR/pids"; }
restart_rgw() { bash "$CEPH/start-cluster.sh" rgw > "$T/rgw-restart.log" 2>&1; }
check "bucket created" "$S3TOOL" mb ddpbk

# ---------------------------------------------------------------- the volume
V=$T/vol
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$V" 8 > /dev/null
head -c 20000000 /dev/urandom > "$V/big random.bin"         # a data container > 8 MiB: multipart
mkdir -p "$V/odd" "$V/emptydir"
echo "100% odd name" > "$V/odd/per%cent é.txt"
head -c 300000 /dev/urandom > "$V/odd/per%cent é.bin"
echo "small, not optimized" > "$V/small.txt"
ln -s small.txt "$V/link"
ORIG=$T/orig
cp -a "$V" "$ORIG"
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" > "$T/opt.out" 2>&1
check "the volume was optimized" test "$(count_stubs "$V")" -gt 100
mapfile -t ALL < <(cd "$ORIG" && find . -type f -printf '%P\n' | sort)

sums_of() { local d=$1; shift; (cd "$d" && printf '%s\0' "$@" | sort -z | xargs -0 -r sha256sum); }
restore_ok() { # restore_ok WHAT FROM ORIGDIR FILE...
  local what=$1 from=$2 orig=$3; shift 3
  local dir=$T/r.$RANDOM rc=0
  "$DDP" restore --from "$from" --to "$dir" "$@" > "$T/restore.out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then bad "$what: exit $rc: $(tail -5 "$T/restore.out")"; return; fi
  if diff <(sums_of "$orig" "$@") <(sums_of "$dir" "$@") > "$T/diff.out"; then ok "$what"
  else bad "$what: content differs: $(head -5 "$T/diff.out")"; fi
  rm -rf "$dir"
}

# ---------------------------------------------------------------- full backup
out=$("$DDP" backup "$V" s3://ddpbk/nightly/1 2>&1); rc=$?
echo "$out" | sed 's/^/#   /'
check "full backup to RGW" test $rc -eq 0
"$S3TOOL" ls ddpbk nightly/1 > "$T/ls1"
check "the manifest is an object" grep -q '^\.ddp-backup/manifest ' "$T/ls1"
check "the manifest is version 2 (packs)" grep -q '^ddp-backup-manifest 2$' <("$S3TOOL" get ddpbk nightly/1/.ddp-backup/manifest)
check "small files are in pack objects" grep -q '^\.ddp-backup/pack/00000001 ' "$T/ls1"
check "stubs are not objects of their own" bash -c "! grep -q '^release-[^ ]*/src/module01.txt ' '$T/ls1'"
nobj=$(wc -l < "$T/ls1")
echo "#   ${#ALL[@]} files in $nobj objects"
check "far fewer objects than files (${#ALL[@]} files, $nobj objects)" test "$nobj" -lt $(( ${#ALL[@]} / 10 ))
check "the metadata lies first in the first pack" grep -q '^F f 0 - [0-9]* [0-7]* [0-9]* [0-9]* [0-9.]* [0-9.]* 1 0 /\.ddp/' \
  <("$S3TOOL" get ddpbk nightly/1/.ddp-backup/manifest)
check "containers are objects" grep -q '^\.ddp/ChunkStore/.*/Data/[0-9a-f.]*\.ccc ' "$T/ls1"
check "a data container went up in parts (multipart ETag)" grep -q 'Data/.*\.ccc [0-9]* [0-9a-f]*-[0-9]*$' "$T/ls1"
restore_ok "restore one file" s3://ddpbk/nightly/1 "$ORIG" "${ALL[5]}"
restore_ok "restore odd names and the big file" s3://ddpbk/nightly/1 "$ORIG" "odd/per%cent é.txt" "odd/per%cent é.bin" "big random.bin"
restore_ok "restore every file (${#ALL[@]})" s3://ddpbk/nightly/1 "$ORIG" "${ALL[@]}"
grep '^s3:\|^summary' "$T/restore.out" | sed 's/^/#   /'
out=$("$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rl" link emptydir 2>&1)
check "a symlink and a directory come back as such" test "$(readlink "$T/rl/link")" = small.txt -a -d "$T/rl/emptydir"
expect_code "backup again to a complete backup" 0x80070050 "$DDP" backup "$V" s3://ddpbk/nightly/1
# step 1 from S3 goes through the same safe writing as any backup (docs/SECURITY.md)
mkdir -p "$T/rs" "$T/outside"; ln -s "$T/outside" "$T/rs/odd"
expect_code "restore from S3 through a planted symlink: refused" 0x80070005 \
  "$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rs" "odd/per%cent é.txt"
check "... nothing written through it" test -z "$(ls -A "$T/outside")"
rm "$T/rs/odd"; echo mine > "$T/rs/small.txt"
expect_code "restore from S3 onto an existing file: refused by default" 0x80070050 \
  "$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rs" small.txt "${ALL[5]}"
check "... the existing file kept" test "$(cat "$T/rs/small.txt")" = mine
ST=$(printf '%s\n' "${ALL[@]}" | grep 'src/module01.txt$' | head -1)  # a stub in the volume
out=$("$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rs" --existing rename --json small.txt "$ST" 2>&1); rc=$?
check "--existing rename from S3" test $rc -eq 0 -a "$(cat "$T/rs/small.txt.~1~")" = mine
check "... the restored plain file is the backup's" cmp -s "$T/rs/small.txt" "$ORIG/small.txt"
check "... the restored stub's file is the original" cmp -s "$T/rs/$ST" "$ORIG/$ST"
check "... --json of an S3 restore counts its requests" grep -q '"s3_requests":[1-9]' <<<"$out"
check "no staging directory left" bash -c "! ls -a '$T/rs' | grep -q '^\.ddp-restore\.'"

# ---------------------------------------------------------------- incremental
cat "$ORIG/small.txt" >> "$ORIG/release-2026.11.08/src/module03.txt"
cp "$ORIG/release-2026.11.08/src/module03.txt" "$V/release-2026.11.08/src/module03.txt"
head -c 500000 /dev/urandom > "$V/new.bin"; cp "$V/new.bin" "$ORIG/new.bin"
rm "$V/release-2026.11.01/src/module07.txt" "$ORIG/release-2026.11.01/src/module07.txt"
"$DDP" optimize "$V" > "$T/opt2.out" 2>&1
mapfile -t ALL2 < <(cd "$ORIG" && find . -type f -printf '%P\n' | sort)
out=$("$DDP" backup "$V" s3://ddpbk/nightly/2 --incremental s3://ddpbk/nightly/1 2>&1); rc=$?
echo "$out" | sed 's/^/#   /'
check "incremental backup to RGW" test $rc -eq 0
"$S3TOOL" ls ddpbk nightly/2 > "$T/ls2"
check "the incremental holds appended tails as pieces" grep -q '\.ccc\.@[0-9a-f]* ' "$T/ls2"
check "the incremental does not hold unchanged stubs" test "$(grep -c '^release-2026.11.02/' "$T/ls2")" -eq 0
check "the incremental's new small files are in its own pack" grep -q '^\.ddp-backup/pack/00000001 ' "$T/ls2"
"$S3TOOL" get ddpbk nightly/2/.ddp-backup/manifest > "$T/m2"
check "... and unchanged files still point at the full backup's pack" grep -q '^F s 0 - 232 .* 1 [0-9]* /release-2026.11.02/' "$T/m2"
check "... whose pack the incremental lists" grep -q '^K 0 1 [0-9]*$' "$T/m2"
check "the incremental's manifest names its previous backup" grep -q '^previous 1$' <("$S3TOOL" get ddpbk nightly/2/.ddp-backup/manifest)
restore_ok "incremental: restore the changed file" s3://ddpbk/nightly/2 "$ORIG" release-2026.11.08/src/module03.txt new.bin
restore_ok "incremental: restore every file (${#ALL2[@]})" s3://ddpbk/nightly/2 "$ORIG" "${ALL2[@]}"
expect_code "incremental: a deleted file is not in the backup" 0x80565301 \
  "$DDP" restore --from s3://ddpbk/nightly/2 --to "$T/rd" release-2026.11.01/src/module07.txt
out=$("$DDP" restore --from s3://ddpbk/nightly/2 --list-containers new.bin 2>&1)
check "--list-containers on S3" grep -q '^total: ' <<<"$out"

# ---------------------------------------------------------------- the old layout (version 1)
out=$(DDP_S3_PACKS=0 "$DDP" backup "$V" s3://ddpbk/old/1 2>&1); rc=$?
check "DDP_S3_PACKS=0: a version 1 backup (one object per file)" test $rc -eq 0
"$S3TOOL" ls ddpbk old/1 > "$T/lso"
check "... its manifest is version 1" grep -q '^ddp-backup-manifest 1$' <("$S3TOOL" get ddpbk old/1/.ddp-backup/manifest)
check "... stubs are objects of 232 bytes" grep -q '^release-[^ ]*/src/module01.txt 232 ' "$T/lso"
check "... odd names are escaped in keys" grep -q '^odd/per%25cent%20é.txt ' "$T/lso"
restore_ok "version 1: restore every file (${#ALL2[@]})" s3://ddpbk/old/1 "$ORIG" "${ALL2[@]}"
echo more >> "$V/small.txt"; cp "$V/small.txt" "$ORIG/small.txt"
out=$("$DDP" backup "$V" s3://ddpbk/old/2 --incremental s3://ddpbk/old/1 2>&1); rc=$?
check "an incremental with packs on a version 1 backup" test $rc -eq 0
restore_ok "... restores every file (version 1 objects and packs)" s3://ddpbk/old/2 "$ORIG" "${ALL2[@]}"
restore_ok "... the changed file from its pack" s3://ddpbk/old/2 "$ORIG" small.txt

# ---------------------------------------------------------------- R1-R10
mapfile -t RF < <(printf '%s\n' "${ALL2[@]}" | grep '^release-' | head -40)
"$RULES" rules s3://ddpbk/nightly/2 "$T/rules" "${RF[@]}" > "$T/rules.out" 2>&1; rc=$?
sed 's/^/#   /' "$T/rules.out"
for r in R1 R2 R3 R4 R5 R6 R7 R8 R10; do check "$r through the recording wrapper" grep -q "^RULE $r ok" "$T/rules.out"; done
check "the wrapper's restores are byte-identical" diff <(sums_of "$ORIG" "${RF[@]}") <(sums_of "$T/rules" "${RF[@]}")

# ---------------------------------------------------------------- faults
DATA_KEY=$(grep -o '^\.ddp/ChunkStore/[^ ]*/Data/[0-9a-f.]*\.ccc' "$T/ls1" | head -1)
expect_code "a wrong secret key: access denied" 0x80070005 \
  env AWS_SECRET_ACCESS_KEY=wrong "$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rw" "${ALL[0]}"
check "... naming SignatureDoesNotMatch" grep -q SignatureDoesNotMatch <(AWS_SECRET_ACCESS_KEY=wrong "$DDP" restore --from s3://ddpbk/nightly/1 --to "$T/rw" "${ALL[0]}" 2>&1)
expect_code "a missing bucket (restore)" 0x80070003 "$DDP" restore --from s3://nobucket/x --to "$T/rw" "${ALL[0]}"
expect_code "a missing bucket (backup)" 0x80070003 "$DDP" backup "$V" s3://nobucket/x
expect_code "not a backup (no manifest)" 0x80565301 "$DDP" restore --from s3://ddpbk/nothing --to "$T/rw" "${ALL[0]}"

# a backup of its own to damage
"$DDP" backup "$V" s3://ddpbk/victim > /dev/null 2>&1
out=$("$RULES" read s3://ddpbk/victim "/$DATA_KEY" 0 4096 2>&1)
check "ReadBackupFile of a container: S_OK" grep -q '^0x00000000 got 4096' <<<"$out"
"$S3TOOL" rm ddpbk "victim/$DATA_KEY"
out=$("$RULES" read s3://ddpbk/victim "/$DATA_KEY" 0 4096 2>&1)
check "ReadBackupFile of a missing object: 0x80070002 naming it" grep -q "^0x80070002 got 0 .*NoSuchKey" <<<"$out"
echo "#   $out"
rc=0; "$DDP" restore --from s3://ddpbk/victim --to "$T/rm" "big random.bin" "${ALL[5]}" > "$T/miss.out" 2>&1 || rc=$?
check "a missing container object: 0x80565304 per file" grep -q '0x80565304' "$T/miss.out"
check "... and nothing is left at the failed path (no stub, no partial file)" test ! -e "$T/rm/big random.bin"
check "... nor a staging directory" bash -c "! ls -a '$T/rm' | grep -q '^\.ddp-restore\.'"
"$DDP" backup "$V" s3://ddpbk/victim2 > /dev/null 2>&1
"$S3TOOL" truncate ddpbk "victim2/$DATA_KEY" 1000000
rc=0; "$DDP" restore --from s3://ddpbk/victim2 --to "$T/rt" "big random.bin" > "$T/trunc.out" 2>&1 || rc=$?
check "a truncated object: 0x80565355" grep -q '0x80565355' "$T/trunc.out"
out=$("$RULES" read s3://ddpbk/victim2 "/$DATA_KEY" 999000 4096 2>&1)
check "... ReadBackupFile says truncated, naming the object" grep -q "^0x80565355 got 0 .*truncated" <<<"$out"
echo "#   $out"

# radosgw killed in the middle of a backup (after the first part of the data container is up)
DDP_S3_TRACE=1 "$DDP" backup "$V" s3://ddpbk/killed > "$T/kb.out" 2>&1 &
bpid=$!
for ((i = 0; i < 1000; i++)); do
  grep -q '^s3trace .* PUT .*200 ' "$T/kb.out" 2>/dev/null && break
  sleep 0.01
done
kill -KILL "$(rgw_pid)"
rc=0; wait $bpid || rc=$?
n=$(grep -c '^s3trace .* PUT .*200 ' "$T/kb.out")
echo "#   backup with radosgw killed after $n PUTs: exit $rc: $(grep -o '0x[0-9A-F]*.*' "$T/kb.out" | head -1)"
check "the interrupted backup failed" test $rc -ne 0
check "... with a network error" grep -q '0x800704C9\|0x80070040\|0x800705B4' "$T/kb.out"
check "radosgw restarted" restart_rgw
check "the interrupted backup has no manifest" bash -c "! '$S3TOOL' ls ddpbk killed | grep -q '^\.ddp-backup/manifest'"
expect_code "the interrupted backup is not a backup" 0x80565301 "$DDP" restore --from s3://ddpbk/killed --to "$T/rk" "${ALL[0]}"
out=$("$DDP" backup "$V" s3://ddpbk/killed 2>&1); rc=$?
echo "$out" | sed 's/^/#   /'
check "the same command again completes it" test $rc -eq 0
restore_ok "the completed backup restores every file" s3://ddpbk/killed "$ORIG" "${ALL2[@]}"
# a backup whose manifest is lost: the same command sends the packs and containers again only if they differ
"$S3TOOL" rm ddpbk killed/.ddp-backup/manifest
out=$("$DDP" backup "$V" s3://ddpbk/killed 2>&1); rc=$?
written=$(grep -o 'written: .*(\([0-9]*\) bytes)' <<<"$out" | grep -o '([0-9]*' | tr -d '(')
echo "#   rerun after the manifest was lost: $written bytes written"
check "a rerun finishes it without sending the packs again" test $rc -eq 0 -a "${written:-99999999}" -lt 1000000

# a missing pack, a truncated pack
"$DDP" backup "$V" s3://ddpbk/victim3 > /dev/null 2>&1
"$S3TOOL" rm ddpbk victim3/.ddp-backup/pack/00000001
rc=0; "$DDP" restore --from s3://ddpbk/victim3 --to "$T/rp" small.txt "${ALL[5]}" > "$T/mp.out" 2>&1 || rc=$?
sed 's/^/#   /' "$T/mp.out" | head -3
check "a missing pack: 0x80565301 naming the pack" grep -q 'small.txt: 0x80565301 .*pack .*/pack/00000001 is missing' "$T/mp.out"
check "... nothing left at the failed path" test ! -e "$T/rp/small.txt"
"$DDP" backup "$V" s3://ddpbk/victim4 > /dev/null 2>&1
"$S3TOOL" get ddpbk victim4/.ddp-backup/manifest > "$T/m4"
psize=$(awk '$1 == "K" && $2 == 0 && $3 == 1 {print $4}' "$T/m4")
read -r lastoff lastsize lastpath < <(awk '$1 == "F" && $11 == 1 && $13 !~ /%/ {print $12, $5, $13}' "$T/m4" | sort -n | tail -1)
read -r _ _ firstpath < <(awk '$1 == "F" && $11 == 1 && $13 !~ /%|^\/\.ddp\// {print $12, $5, $13}' "$T/m4" | sort -n | head -1)
echo "#   pack of $psize bytes cut in half: $firstpath at its start, $lastpath at $lastoff"
"$S3TOOL" truncate ddpbk victim4/.ddp-backup/pack/00000001 $((psize / 2))
rc=0; "$DDP" restore --from s3://ddpbk/victim4 --to "$T/rq" "${lastpath#/}" "${firstpath#/}" > "$T/tp.out" 2>&1 || rc=$?
sed 's/^/#   /' "$T/tp.out" | head -3
check "a truncated pack: 0x80565355 naming the pack and the file" grep -q "^${lastpath#/}: 0x80565355 .*pack .*/pack/00000001 is truncated" "$T/tp.out"
check "... files before the cut still restore" cmp -s "$T/rq/${firstpath#/}" "$ORIG/${firstpath#/}"
out=$("$RULES" read s3://ddpbk/victim4 "$lastpath" 0 "$lastsize" 2>&1)
echo "#   $out"
check "... ReadBackupFile of the file past the cut: 0x80565355 naming the pack" grep -q "^0x80565355 got 0 .*pack/00000001 is truncated" <<<"$out"

# radosgw killed in the middle of a restore
KF=("big random.bin" "${ALL2[@]:0:30}")
rm -rf "$T/kr"
"$RULES" killat s3://ddpbk/nightly/2 "$T/kr" 2 "$(rgw_pid)" "${KF[@]}" > "$T/kr.out" 2>&1
sed -n '1p;/^failed/p' "$T/kr.out" | sed 's/^/#   /'
check "restore with radosgw killed: some files failed" grep -q '^failed: [1-9]' "$T/kr.out"
check "... each with a network error" grep -q ': 0x800704C9\|: 0x80070040' "$T/kr.out"
check "... and every failed file is still its stub (R9)" grep -q '^RULE R9 ok' "$T/kr.out"
check "radosgw restarted" restart_rgw
mapfile -t FAILED < <(grep -E ': 0x8[0-9A-F]{7} ' "$T/kr.out" | grep -v '^call:' | sed -E 's/: 0x8[0-9A-F]{7} .*//')
rm -rf "$T/kr"
restore_ok "the retry restores them" s3://ddpbk/nightly/2 "$ORIG" "${KF[@]}"
echo "# test_s3 took $(($(date +%s) - t0)) s"
finish
