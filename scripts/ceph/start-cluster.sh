#!/bin/bash
# SPDX-License-Identifier: MIT
# Throwaway single-node Ceph (Debian 12: ceph 16.2.15 "pacific") + RADOS Gateway (S3),
# started as root WITHOUT systemd. Everything lives under $CEPH_DIR, binds 127.0.0.1 only.
# (Taken into ddp from the shared notes; tests/e2e/test_s3.sh and bench/bench_s3.sh use it.)
#
# usage: start-cluster.sh [memstore|bluestore]      (default: memstore)
#        start-cluster.sh rgw      (re)start only the gateway of the running cluster in $CEPH_DIR
#                                  (after a test killed it)
# env:   CEPH_DIR (default ${TMPDIR:-/tmp}/ceph-cluster), MON_PORT (3300), MON_V1_PORT (MON_PORT+3489),
#        RGW_PORT (7480), S3_ACCESS_KEY / S3_SECRET_KEY, BLUESTORE_SIZE (10G, sparse file),
#        NO_MGR=1 (skip ceph-mgr), PAXOS_PROPOSE_INTERVAL (0.1; Ceph default 1 => ~2x slower start),
#        RGW_USAGE_LOG=1 (the gateway logs bytes sent and received per bucket at once:
#        `radosgw-admin usage show`, for bench/bench_s3.sh),
#        RGW_TCP_NODELAY=1 (the gateway's beast frontend sends without Nagle's delay, tcp_nodelay=1:
#        without it a small answer can wait ~40 ms for the client's delayed ACK)
# needs: apt-get install --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common
# after: source $CEPH_DIR/env ; stop with stop-cluster.sh (kills the PIDs in $CEPH_DIR/pids)
set -euo pipefail

# a cluster's settings left in the environment (a sourced env file) would point the
# ceph commands below at another cluster's keyring
unset CEPH_CONF CEPH_KEYRING CEPH_ARGS
STORE=${1:-memstore}
D=${CEPH_DIR:-${TMPDIR:-/tmp}/ceph-cluster}
MON_PORT=${MON_PORT:-3300}
MON_V1_PORT=${MON_V1_PORT:-$((MON_PORT + 3489))}
RGW_PORT=${RGW_PORT:-7480}
AK=${S3_ACCESS_KEY:-0555b35654ad1656d804}
SK=${S3_SECRET_KEY:-h7GhxuBLTrlhVUyxSPUKUV8r2EI4ngqJxD7iBdBYLhwl}
CONF=$D/ceph.conf
KEYRING=$D/keyring
T0=$(date +%s%N)
el() { local ms=$((($(date +%s%N) - T0) / 1000000)); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }
ts() { echo "[$(el)s] $*"; }

if [ "$STORE" = rgw ]; then   # restart the gateway alone
    [ -f "$D/pids" ] && [ -f "$CONF" ] || { echo "no cluster in $D" >&2; exit 1; }
    old=$(awk '$1 == "rgw.a" {print $2}' "$D/pids")
    for ((i = 0; i < 50; i++)); do   # a gateway just killed may take a moment to go
        [ -n "$old" ] && kill -0 "$old" 2>/dev/null || break
        sleep 0.1
    done
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then echo "rgw.a (pid $old) is running" >&2; exit 1; fi
    RGW_PORT=$(sed -n 's/.*beast endpoint=127.0.0.1:\([0-9]*\).*/\1/p' "$CONF")
    grep -v '^rgw\.a ' "$D/pids" > "$D/pids.new" || true
    mv "$D/pids.new" "$D/pids"
    setsid radosgw -c "$CONF" -n client.rgw.a -f >>"$D/log/rgw.a.stdout" 2>&1 < /dev/null &
    echo "rgw.a $!" >> "$D/pids"
    for ((i = 0; i < 240; i++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$RGW_PORT/" && { ts "rgw answering on 127.0.0.1:$RGW_PORT"; exit 0; }
        kill -0 "$!" 2>/dev/null || { echo "rgw.a died" >&2; exit 1; }
        sleep 0.25
    done
    echo "timeout waiting for radosgw" >&2; exit 1
fi
if [ -e "$D/pids" ]; then echo "$D/pids exists: stop the old cluster first" >&2; exit 1; fi
rm -rf "$D"; mkdir -p "$D"/{log,run,mon/a,mgr/x,osd,rgw}
: > "$D/pids"
# on any failure: show the tail of the logs, stop what was started (by PID)
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "start failed (rc=$rc); logs in $D/log" >&2;
      tail -n 5 "$D"/log/*.log >&2 || true; CEPH_DIR="$D" "$(dirname "$0")/stop-cluster.sh" >&2; fi' EXIT

FSID=$(uuidgen)
cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $KEYRING
run dir = $D/run
admin socket = $D/run/\$cluster-\$name.asok
log file = $D/log/\$name.log
crash dir = $D/crash
log to stderr = false
err to stderr = true
; one node, one OSD, no replication
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon data avail warn = 2
mon data avail crit = 1
; faster map updates for a tiny throwaway cluster (default 1 s)
paxos propose interval = ${PAXOS_PROPOSE_INTERVAL:-0.1}

[mon]
mon data = $D/mon/\$id
mon cluster log file = $D/log/cluster.log

[mgr]
mgr data = $D/mgr/\$id
keyring = $D/mgr/\$id/keyring

[osd]
osd data = $D/osd/\$id
keyring = $D/osd/\$id/keyring
osd objectstore = $STORE
osd crush update on start = true
osd crush initial weight = 1
memstore device bytes = 8589934592
bluestore block create = true
bluestore block size = $(numfmt --from=iec "${BLUESTORE_SIZE:-10G}")
bluestore fsck on mkfs = false
osd memory target = 1073741824

[client.rgw.a]
keyring = $D/rgw/keyring
rgw data = $D/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT$([ "${RGW_TCP_NODELAY:-0}" = 1 ] && printf ' tcp_nodelay=1')
rgw thread pool size = 64
$([ "${RGW_USAGE_LOG:-0}" = 1 ] && printf 'rgw enable usage log = true\nrgw usage log tick interval = 1\nrgw usage log flush threshold = 1\n')
EOF

ceph_() { timeout 60 ceph -c "$CONF" --connect-timeout 30 "$@"; }
start() { # name, command...  (daemon in foreground mode, backgrounded; PID recorded)
    local name=$1; shift
    setsid "$@" -f >"$D/log/$name.stdout" 2>&1 < /dev/null &
    echo "$name $!" >> "$D/pids"
}
wait_for() { # seconds, description, command...
    local n=$1 what=$2; shift 2
    for ((i = 0; i < n * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        while read -r name pid; do   # fail fast if a daemon died
            kill -0 "$pid" 2>/dev/null || { echo "$name (pid $pid) died" >&2; exit 1; }
        done < "$D/pids"
        sleep 0.25
    done
    echo "timeout waiting for $what" >&2; exit 1
}

# --- keys + monitor
ceph-authtool --create-keyring "$KEYRING" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$KEYRING" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" \
    --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]" "$D/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$KEYRING"
start mon.a ceph-mon -c "$CONF" -i a
wait_for 60 "monitor" ceph_ mon stat
ts "mon up"

# --- manager (optional: NO_MGR=1 saves ~300 MB RSS; RADOS/S3 work without it, health shows a warning)
if [ "${NO_MGR:-0}" != 1 ]; then
ceph_ auth get-or-create mgr.x mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    -o "$D/mgr/x/keyring"
start mgr.x ceph-mgr -c "$CONF" -i x
ts "mgr started"
fi

# --- one OSD
OSD_UUID=$(uuidgen)
OSD_SECRET=$(ceph-authtool --gen-print-key)
OSD_ID=$(echo "{\"cephx_secret\": \"$OSD_SECRET\"}" | ceph_ osd new "$OSD_UUID" -i -)
mkdir -p "$D/osd/$OSD_ID"
ceph-authtool --create-keyring "$D/osd/$OSD_ID/keyring" --name "osd.$OSD_ID" --add-key "$OSD_SECRET" >/dev/null
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.log" 2>&1
start "osd.$OSD_ID" ceph-osd -c "$CONF" -i "$OSD_ID"
wait_for 60 "osd up" bash -c "ceph -c '$CONF' osd dump 2>/dev/null | grep -q '^osd.$OSD_ID up'"
ts "osd.$OSD_ID up ($STORE)"

# --- S3 user (radosgw-admin creates realm/zone/pools itself) + gateway
radosgw-admin -c "$CONF" user create --uid=ddp --display-name=ddp \
    --access-key="$AK" --secret-key="$SK" > "$D/log/user-create.json"
ts "S3 user created"
ceph_ auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
    -o "$D/rgw/keyring"
start rgw.a radosgw -c "$CONF" -n client.rgw.a
wait_for 60 "radosgw" curl -sf -o /dev/null "http://127.0.0.1:$RGW_PORT/"
ts "rgw answering on 127.0.0.1:$RGW_PORT"

cat > "$D/env" <<EOF
export CEPH_CONF=$CONF
export CEPH_KEYRING=$KEYRING
export S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
export AWS_DEFAULT_REGION=default
EOF
ts "cluster ready: source $D/env"
