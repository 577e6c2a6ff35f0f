#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_s3.sh: backups to S3, ddp against restic (its S3 backend), on the
# same single-node Ceph RADOS Gateway (scripts/ceph/start-cluster.sh,
# bluestore) and the same data (20 typescript nightlies,
# /work/shared/bench/dataset-ts.sh), in one run.
#
# ddp: the data is copied into a volume, optimized (usage type Backup; timed
# apart), then `ddp backup VOL s3://ddpb/full`. restic: `restic backup DATA`
# into s3:ENDPOINT/resticb. Then restores of one file (the largest of the last
# nightly), of 1% of the files (every 100th) and of every file, each checked
# byte for byte against the data. ddp makes every restored file durable
# before it is in place (fsync/syncfs); restic does not sync, so each restic
# restore has a second row, "+ sync": its restore followed by `sync -f` of the
# target file system, timed together (the same durability as ddp's).
#
# Columns: wall seconds; bytes stored in the bucket after the backup; for
# restores, bytes the gateway sent (its usage log: every GET body and
# listing, what each tool really fetched) per byte restored; requests the
# gateway served for the tool's bucket (its usage log's ops); the tool's own
# CPU seconds (user + system). The load average is printed at the start and
# the end: the machine may be shared.
#
# Needs: root, the Ceph packages and restic (scripts/install-deps.sh, with
# --bench for restic), npm for the data set.
# Environment: DDP_BENCH_BUILD (a build dir with ddp and tests/tools s3tool;
# default <source>/build-bench), DDP_BENCH_DATA (a data set to reuse),
# DDP_BENCH_DIR (work dir), DDP_BENCH_KEEP=1, RGW_TCP_NODELAY=1 (the gateway without
# Nagle's delay: scripts/ceph/start-cluster.sh).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATASET_SCRIPT=${DDP_DATASET_SCRIPT:-/work/shared/bench/dataset-ts.sh}
command -v restic > /dev/null || { echo "bench_s3: restic is not installed (scripts/install-deps.sh --bench)" >&2; exit 2; }
command -v radosgw > /dev/null || { echo "bench_s3: the Ceph packages are not installed (scripts/install-deps.sh)" >&2; exit 2; }
BUILD=${DDP_BENCH_BUILD:-$SRC/build-bench}
if [[ ! -x $BUILD/ddp || ! -x $BUILD/s3tool ]]; then
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build "$BUILD" --target ddp s3tool -j"$(nproc)" > /dev/null
fi
DDP=$BUILD/ddp
S3T=$BUILD/s3tool
W=${DDP_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ddp-bench-s3.XXXXXX")}
mkdir -p "$W"
export CEPH_DIR=$W/ceph MON_PORT=${MON_PORT:-23300} MON_V1_PORT=${MON_V1_PORT:-23301} RGW_PORT=${RGW_PORT:-23302}
export NO_MGR=1 RGW_USAGE_LOG=1 BLUESTORE_SIZE=${BLUESTORE_SIZE:-20G}
cleanup() {
  [[ -f $CEPH_DIR/pids ]] && bash "$SRC/scripts/ceph/stop-cluster.sh" > /dev/null 2>&1
  [[ "${DDP_BENCH_KEEP:-0}" == 1 ]] || rm -rf "$W"
}
trap cleanup EXIT

if [[ -n "${DDP_BENCH_DATA:-}" && -d "${DDP_BENCH_DATA}" ]]; then DATA=$(cd "$DDP_BENCH_DATA" && pwd)
else DATA=$W/data; bash "$DATASET_SCRIPT" "$DATA" 20 >&2; fi
mapfile -t FILES < <(cd "$DATA" && find . -type f -printf '%P\n' | sort)
NF=${#FILES[@]}
DATA_BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
LAST=$(cd "$DATA" && ls | sort | tail -1)
ONE=$(cd "$DATA" && find "$LAST" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
PCT=(); for ((i = 0; i < NF; i += 100)); do PCT+=("${FILES[$i]}"); done

echo "starting Ceph (bluestore) ..." >&2
bash "$SRC/scripts/ceph/start-cluster.sh" bluestore > "$W/ceph-start.log" 2>&1 || { tail "$W/ceph-start.log" >&2; exit 1; }
unset CEPH_CONF CEPH_KEYRING
source "$CEPH_DIR/env"
export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_REGION=default
export RESTIC_PASSWORD=bench RESTIC_REPOSITORY=s3:$S3_ENDPOINT/resticb
"$S3T" mb ddpb; "$S3T" mb resticb

now() { date +%s.%N; }
# "<bytes the gateway sent> <requests>" for bucket $1 so far (GET bodies, listings; every op)
usage() {
  sleep 2  # the usage log flushes every second
  radosgw-admin -c "$CEPH_CONF" usage show --uid=ddp 2>/dev/null | python3 -c "
import json,sys
d=json.load(sys.stdin); t=0; o=0
for e in d.get('entries',[]):
  for b in e.get('buckets',[]):
    if b.get('bucket')=='$1':
      t+=sum(c.get('bytes_sent',0) for c in b.get('categories',[]))
      o+=sum(c.get('ops',0) for c in b.get('categories',[]))
print(t, o)"
}
# run a command; its CPU seconds (user + system) in $W/cpu
cpu() {
  local TIMEFORMAT='%U %S'
  { time "$@" 2> "$W/cmd.err"; } 2> "$W/time.out" || { cat "$W/cmd.err" >&2; return 1; }
  tail -1 "$W/time.out" | awk '{printf "%.2f", $1 + $2}' > "$W/cpu"
}
stored() { "$S3T" du "$1" | awk '{print $3}'; }
check_same() { # DIR FILE...: byte-identical to the data
  local d=$1; shift
  (cd "$DATA" && printf '%s\0' "$@" | xargs -0 sha256sum) > "$W/want"
  (cd "$d" && printf '%s\0' "$@" | xargs -0 sha256sum) > "$W/got" 2>/dev/null || true
  cmp -s "$W/want" "$W/got" || { echo "bench_s3: restored bytes differ in $d" >&2; exit 1; }
}
echo "# load at the start: $(uptime)"
printf '%-8s %-24s %9s %14s %14s %10s %9s %7s\n' tool case seconds bytes restored "fetched/B" requests "cpu s"
row() { printf '%-8s %-24s %9.2f %14s %14s %10s %9s %7s\n' "$@"; }

# ---- backups
V=$W/vol
cp -a "$DATA" "$V"
t=$(now); "$DDP" enable "$V" --usage Backup > /dev/null; "$DDP" optimize "$V" > "$W/opt.out"; opt=$(echo "$(now) - $t" | bc)
row ddp "optimize (local)" "$opt" "$(du -sb "$V" | cut -f1)" - - - -
read -r _ o0 < <(usage ddpb)
t=$(now); cpu "$DDP" backup "$V" s3://ddpb/full > "$W/ddp-backup.out"; tb=$(echo "$(now) - $t" | bc)
read -r _ o1 < <(usage ddpb)
row ddp "backup to S3" "$tb" "$(stored ddpb)" - - $((o1 - o0)) "$(cat "$W/cpu")"
restic init > /dev/null 2>&1
read -r _ o0 < <(usage resticb)
t=$(now); cpu restic backup -q "$DATA" > /dev/null; tr=$(echo "$(now) - $t" | bc)
read -r _ o1 < <(usage resticb)
row restic "backup to S3" "$tr" "$(stored resticb)" - - $((o1 - o0)) "$(cat "$W/cpu")"
echo "# data: $NF files, $DATA_BYTES bytes; ddp backup $(echo "scale=2; $tr / $tb" | bc)x faster than restic (optimize excluded)"

# ---- restores
bytes_of() { (cd "$DATA" && printf '%s\0' "$@" | xargs -0 stat -c %s | awk '{s+=$1} END {print s}'); }
case_run() { # NAME FILE...
  local name=$1; shift
  local n=$# b; b=$(bytes_of "$@")
  local out=$W/out-ddp; rm -rf "$out"
  local s0 o0 s1 o1; read -r s0 o0 < <(usage ddpb)
  local t; t=$(now)
  cpu "$DDP" restore --from s3://ddpb/full --to "$out" "$@" > "$W/ddp-restore.out"
  local td; td=$(echo "$(now) - $t" | bc)
  read -r s1 o1 < <(usage ddpb)
  local f=$((s1 - s0))
  check_same "$out" "$@"
  row ddp "$name ($n)" "$td" "$f" "$b" "$(echo "scale=3; $f / $b" | bc)" $((o1 - o0)) "$(cat "$W/cpu")"
  out=$W/out-restic; rm -rf "$out"
  read -r s0 o0 < <(usage resticb)
  local inc=(); local x; for x in "$@"; do inc+=(--include "$DATA/$x"); done
  t=$(now)
  if [[ $name == all* ]]; then cpu restic restore -q latest --target "$out" > /dev/null
  else cpu restic restore -q latest --target "$out" "${inc[@]}" > /dev/null; fi
  local tr2; tr2=$(echo "$(now) - $t" | bc)
  sync -f "$out"  # restic does not sync what it restored: the same durability as ddp's costs this much more
  local ts2; ts2=$(echo "$(now) - $t" | bc)
  read -r s1 o1 < <(usage resticb)
  f=$((s1 - s0))
  check_same "$out$DATA" "$@"
  row restic "$name ($n)" "$tr2" "$f" "$b" "$(echo "scale=3; $f / $b" | bc)" $((o1 - o0)) "$(cat "$W/cpu")"
  row restic "  + sync" "$ts2" - - - - -
  echo "# $name: ddp $(echo "scale=2; $tr2 / $td" | bc)x faster than restic, $(echo "scale=2; $ts2 / $td" | bc)x than restic + sync"
}
case_run "one file" "$ONE"
case_run "1% of the files" "${PCT[@]}"
case_run "all files" "${FILES[@]}"
echo "# load at the end: $(uptime)"
