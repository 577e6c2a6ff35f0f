#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_s3.sh: backups to S3 on a real Ceph cluster. A single-node cluster
# (monitor, one OSD with bluestore on a sparse file, radosgw on 127.0.0.1)
# is started with scripts/ceph/start-cluster.sh and stopped by PID at the
# end. On it: a full and an incremental `ddp backup` to RGW of a generated
# volume, selective and full restores compared byte for byte, RestoreFiles'
# rules R1-R10 through a recording wrapper around the S3 store
# (tests/tools/s3rules.c), and the faults: radosgw killed in the middle of a
# backup (not complete; the same command again completes it) and of a
# restore (per-file errors, the stubs RestoreFiles failed on untouched, a
# retry succeeds; ddp restore leaves nothing at a failed path), a wrong
# secret key, a missing bucket, a missing object, a truncated object.
# Without the Ceph packages or root, or when the cluster does not start,
# it says so loudly and exits 77 (ctest: skipped).
source "$(dirname "$0")/lib.sh"
set -uo pipefail

skip() {
  echo "##########################################################################"
  echo "## SKIPPED test_s3: $*"
  echo "##########################################################################"
  exit 77
}
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
  command -v "$b" >/dev/null || skip "$b is missing (scripts/install-deps.sh installs the Ceph packages)"
done
[[ $(id -u) -eq 0 ]] || skip "the Ceph cluster is started as root"
BUILD=${DDP_BUILD_DIR:-$(dirname "$DDP")}
S3TOOL=$BUILD/s3tool
RULES=$BUILD/s3rules
[[ -x $S3TOOL && -x $RULES ]] || skip "tests/tools s3tool and s3rules are not built"

# The cluster: its own directory and ports (two builds may test at once).
export CEPH_DIR=$T/ceph
base=$((20000 + ($$ % 4000) * 3))
export MON_PORT=$base MON_V1_PORT=$((base + 1)) RGW_PORT=$((base + 2)) NO_MGR=1 BLUESTORE_SIZE=4G
CEPH=$DDP_SOURCE_DIR/scripts/ceph
stop_cluster() { [[ -f $CEPH_DIR/pids ]] && bash "$CEPH/stop-cluster.sh" > "$T/ceph-stop.log" 2>&1; }
trap 'stop_cluster; cleanup' EXIT
t0=$(date +%s)
if ! timeout 180 bash "$CEPH/start-cluster.sh" bluestore > "$T/ceph-start.log" 2>&1; then
  tail -20 "$T/ceph-start.log"
  stop_cluster
  skip "the Ceph cluster did not start (log above)"
fi
echo "# cluster up in $(($(date +%s) - t0)) s"
source "$CEPH_DIR/env"
export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_REGION=default
unset AWS_PROFILE
export HOME=$T  # no ~/.aws of the machine's user
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
check "stubs are objects of 232 bytes" grep -q '^release-[^ ]*/src/module01.txt 232 ' "$T/ls1"
check "containers are objects" grep -q '^\.ddp/ChunkStore/.*/Data/[0-9a-f.]*\.ccc ' "$T/ls1"
check "odd names are escaped in keys" grep -q '^odd/per%25cent%20é.txt ' "$T/ls1"
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
check "the incremental's manifest names its previous backup" grep -q '^previous 1$' <("$S3TOOL" get ddpbk nightly/2/.ddp-backup/manifest)
restore_ok "incremental: restore the changed file" s3://ddpbk/nightly/2 "$ORIG" release-2026.11.08/src/module03.txt new.bin
restore_ok "incremental: restore every file (${#ALL2[@]})" s3://ddpbk/nightly/2 "$ORIG" "${ALL2[@]}"
expect_code "incremental: a deleted file is not in the backup" 0x80565301 \
  "$DDP" restore --from s3://ddpbk/nightly/2 --to "$T/rd" release-2026.11.01/src/module07.txt
out=$("$DDP" restore --from s3://ddpbk/nightly/2 --list-containers new.bin 2>&1)
check "--list-containers on S3" grep -q '^total: ' <<<"$out"

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

# radosgw killed in the middle of a backup
"$DDP" backup "$V" s3://ddpbk/killed > "$T/kb.out" 2>&1 &
bpid=$!
for ((i = 0; i < 400; i++)); do
  n=$("$S3TOOL" ls ddpbk killed 2>/dev/null | wc -l)
  [[ $n -ge 20 ]] && break
  sleep 0.02
done
kill -KILL "$(rgw_pid)"
rc=0; wait $bpid || rc=$?
echo "#   backup with radosgw killed after $n objects: exit $rc: $(grep -o '0x[0-9A-F]*.*' "$T/kb.out" | head -1)"
check "the interrupted backup failed" test $rc -ne 0
check "... with a network error" grep -q '0x800704C9\|0x80070040\|0x800705B4' "$T/kb.out"
check "radosgw restarted" restart_rgw
check "the interrupted backup has no manifest" bash -c "! '$S3TOOL' ls ddpbk killed | grep -q '^\.ddp-backup/manifest'"
expect_code "the interrupted backup is not a backup" 0x80565301 "$DDP" restore --from s3://ddpbk/killed --to "$T/rk" "${ALL[0]}"
out=$("$DDP" backup "$V" s3://ddpbk/killed 2>&1); rc=$?
echo "$out" | sed 's/^/#   /'
check "the same command again completes it" test $rc -eq 0
restore_ok "the completed backup restores every file" s3://ddpbk/killed "$ORIG" "${ALL2[@]}"

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
