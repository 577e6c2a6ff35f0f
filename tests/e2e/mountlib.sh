# SPDX-License-Identifier: MIT
# mountlib.sh: helpers of the end-to-end tests that mount a volume with
# `ddp mount` (sourced after lib.sh, not run): mount in the background and
# wait for it, unmount and require the daemon to exit 0 without sanitizer
# findings, and unmount whatever a failing test left mounted.

MOUNTED=()
PIDS=()
unmount_all() {
  local m
  for m in "${MOUNTED[@]}"; do
    mountpoint -q "$m" 2> /dev/null && { fusermount3 -u "$m" 2> /dev/null || fusermount3 -uz "$m" 2> /dev/null; }
  done
  return 0
}
trap 'unmount_all; cleanup' EXIT

# mount_vol VOLUME MOUNTPOINT LOG [ddp mount options...]: mount in the
# background (-f) and wait until it is mounted. MOUNT_PID is the daemon.
mount_vol() {
  local vol=$1 mnt=$2 log=$3 i
  shift 3
  mkdir -p "$mnt"
  "$DDP" mount "$vol" "$mnt" -f "$@" > "$log" 2>&1 &
  MOUNT_PID=$!
  for ((i = 0; i < 200; i++)); do
    if mountpoint -q "$mnt"; then
      MOUNTED+=("$mnt")
      PIDS+=("$MOUNT_PID")
      return 0
    fi
    kill -0 "$MOUNT_PID" 2> /dev/null || break
    sleep 0.05
  done
  echo "mount of $vol on $mnt failed:"; cat "$log"
  return 1
}

# umount_vol MOUNTPOINT PID LOG: ddp umount, then the daemon must exit 0.
umount_vol() {
  local mnt=$1 pid=$2 log=$3 rc=0
  "$DDP" umount "$mnt" || { bad "ddp umount $mnt"; return; }
  wait "$pid" || rc=$?
  if [[ $rc -eq 0 ]] && ! mountpoint -q "$mnt"; then ok "ddp umount $mnt; the daemon exited 0"
  else bad "ddp umount $mnt: daemon exit $rc: $(tail -20 "$log")"; fi
  if grep -q "Sanitizer\|runtime error" "$log"; then bad "sanitizer findings in $log: $(grep -m3 "Sanitizer\|runtime error" "$log")"; fi
}

