# SPDX-License-Identifier: MIT
# cephlib.sh: a real one-node Ceph cluster with its S3 gateway for an e2e
# test (scripts/ceph/), sourced after lib.sh. `ceph_up NAME PORTBASE` checks
# the Ceph binaries, root and the S3 test tools, starts the cluster in $T/ceph
# on its own ports (two tests may run at once), stops it at exit, and points
# the AWS variables at it; without Ceph, root or a cluster that starts it says
# so loudly and exits 77 (ctest: skipped). Sets S3TOOL, RULES, CEPH, CEPH_DIR.
ceph_skip() {
  echo "##########################################################################"
  echo "## SKIPPED $CEPH_TEST: $*"
  echo "##########################################################################"
  exit 77
}
stop_cluster() { [[ -f $CEPH_DIR/pids ]] && bash "$CEPH/stop-cluster.sh" > "$T/ceph-stop.log" 2>&1; }
ceph_up() {
  CEPH_TEST=$1
  local b
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$b" > /dev/null || ceph_skip "$b is missing (scripts/install-deps.sh installs the Ceph packages)"
  done
  [[ $(id -u) -eq 0 ]] || ceph_skip "the Ceph cluster is started as root"
  local build=${DDP_BUILD_DIR:-$(dirname "$DDP")}
  S3TOOL=$build/s3tool
  RULES=$build/s3rules
  [[ -x $S3TOOL && -x $RULES ]] || ceph_skip "tests/tools s3tool and s3rules are not built"
  export CEPH_DIR=$T/ceph
  local base=$(($2 + ($$ % 4000) * 3))
  export MON_PORT=$base MON_V1_PORT=$((base + 1)) RGW_PORT=$((base + 2)) NO_MGR=1 BLUESTORE_SIZE=4G
  CEPH=$DDP_SOURCE_DIR/scripts/ceph
  trap 'stop_cluster; cleanup' EXIT
  local t0
  t0=$(date +%s)
  if ! timeout 180 bash "$CEPH/start-cluster.sh" bluestore > "$T/ceph-start.log" 2>&1; then
    tail -20 "$T/ceph-start.log"
    stop_cluster
    ceph_skip "the Ceph cluster did not start (log above)"
  fi
  echo "# cluster up in $(($(date +%s) - t0)) s"
  # shellcheck disable=SC1091
  source "$CEPH_DIR/env"
  export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_REGION=default
  unset AWS_PROFILE
  export HOME=$T # no ~/.aws of the machine's user
}
