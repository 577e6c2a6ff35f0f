#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_s3_compact.sh: S3 backups across garbage-collection compaction, on a
# real Ceph cluster of its own (scripts/ceph/start-cluster.sh, ports of its
# own, stopped by PID at the end). A volume with 1 MiB containers is
# optimized and backed up to S3; files are deleted and `ddp gc --full`
# compacts the containers into new generations behind redirection tables;
# then an incremental backup on top of the first (it must write the new
# generations whole and resolve the chain) and a full one. Restores from all
# three are compared byte for byte (the backup before gc also restores the
# deleted files), and RestoreFiles' rules R1-R10 are checked through the
# recording wrapper around the S3 store (tests/tools/s3rules) on the
# incremental. Without the Ceph packages or root, or when the cluster does
# not start, it says so loudly and exits 77 (ctest: skipped).
source "$(dirname "$0")/lib.sh"
set -uo pipefail

skip() {
  echo "##########################################################################"
  echo "## SKIPPED test_s3_compact: $*"
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

export CEPH_DIR=$T/ceph
base=$((32000 + ($$ % 4000) * 3))
export MON_PORT=$base MON_V1_PORT=$((base + 1)) RGW_PORT=$((base + 2)) NO_MGR=1 BLUESTORE_SIZE=4G
CEPH=$DDP_SOURCE_DIR/scripts/ceph
stop_cluster() { [[ -f $CEPH_DIR/pids ]] && bash "$CEPH/stop-cluster.sh" > "$T/ceph-stop.log" 2>&1; }
trap 'stop_cluster; cleanup' EXIT
if ! timeout 180 bash "$CEPH/start-cluster.sh" bluestore > "$T/ceph-start.log" 2>&1; then
  tail -20 "$T/ceph-start.log"
  stop_cluster
  skip "the Ceph cluster did not start (log above)"
fi
source "$CEPH_DIR/env"
export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_REGION=default
unset AWS_PROFILE
export HOME=$T
check "bucket created" "$S3TOOL" mb gcbk

W=$T/vol
mkdir -p "$W"
head -c 1000000 /dev/urandom > "$T/base"
for i in 1 2 3; do
  { head -c $((300000 * i)) "$T/base"; head -c 700000 /dev/urandom; } > "$W/keep$i.bin"
  head -c 700000 /dev/urandom > "$W/gone$i.bin"
done
KEEP=(keep1.bin keep2.bin keep3.bin)
(cd "$W" && sha256sum "${KEEP[@]}" gone1.bin gone2.bin gone3.bin) > "$T/sums"
"$DDP" enable "$W" --usage Backup > /dev/null
"$DDP" set "$W" container_size_limit 1M > /dev/null
"$DDP" optimize "$W" > /dev/null
check "full backup to S3 before gc" "$DDP" backup "$W" s3://gcbk/full0
rm "$W"/gone*.bin
"$DDP" gc "$W" --full > "$T/gc.out"
check "gc --full compacted containers" grep -qE '[1-9][0-9]* containers compacted' "$T/gc.out"
check "incremental backup to S3 across gc" "$DDP" backup "$W" s3://gcbk/inc1 --incremental s3://gcbk/full0
"$S3TOOL" get gcbk inc1/.ddp-backup/manifest > "$T/mf.inc1" 2>&1 || true
check "the incremental's manifest lists the new generations" grep -qE 'Data/[0-9A-F]+\.00000002\.ccc' "$T/mf.inc1"
check "full backup to S3 after gc" "$DDP" backup "$W" s3://gcbk/full1

restore_ok() { # WHAT BACKUP FILE...
  local what=$1 from=$2 dir=$T/r.$RANDOM rc=0; shift 2
  "$DDP" restore --from "$from" --to "$dir" "$@" > "$T/restore.out" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]] && (cd "$dir" && sha256sum -c --quiet <(grep -F -f <(printf ' %s\n' "$@") "$T/sums"))
  then ok "$what"; else bad "$what: exit $rc: $(tail -5 "$T/restore.out")"; fi
}
restore_ok "the S3 backup before gc restores every file, deleted ones too" s3://gcbk/full0 "${KEEP[@]}" gone1.bin gone2.bin gone3.bin
restore_ok "the S3 incremental across gc restores every file" s3://gcbk/inc1 "${KEEP[@]}"
restore_ok "the S3 incremental across gc restores one file" s3://gcbk/inc1 keep2.bin
restore_ok "the S3 full backup after gc restores every file" s3://gcbk/full1 "${KEEP[@]}"

"$RULES" rules s3://gcbk/inc1 "$T/rules" "${KEEP[@]}" > "$T/rules.out" 2>&1
sed 's/^/#   /' "$T/rules.out"
for r in R1 R2 R3 R4 R5 R6 R7 R8 R10; do check "incremental across gc: $r through the recording wrapper" grep -q "^RULE $r ok" "$T/rules.out"; done
check "the wrapper's restores are byte-identical" bash -c "cd '$T/rules' && sha256sum -c --quiet <(grep keep '$T/sums')"

finish
