#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_security_jobs.sh: root's jobs in a tree that untrusted users write
# (issue 12, docs/SECURITY.md). Runs as root with two real unprivileged users
# made here (removed at the end): alice keeps a 0600 secret in a 0700
# directory of the volume, root keeps 0600 files outside it, and bob races
# path swaps (file <-> symlink, directory <-> symlink to a directory
# elsewhere, file <-> FIFO, by RENAME_EXCHANGE in tests/tools/ddp_racer.c)
# against optimize, unoptimize FILE and VOLUME, scrub --repair and gc.
# Every race asserts that no byte of another file reached bob (the secrets'
# markers appear in none of bob's files), that nothing outside the target
# was created, replaced or changed owner, that no user file was removed and
# that no job hung. Then one test per smaller finding: sparse files, a
# user's file named like an old ddp temporary, a killed unoptimize FILE,
# FIFOs, a forged stub copy, a read-only mount, `ddp cat DIR`, and leases.
#
# DDP_SECURITY_SECONDS (default 20): how long each race runs.
source "$(dirname "$0")/lib.sh"

if [[ $(id -u) -ne 0 ]]; then echo "skipped: needs root (creates users)"; echo "0 passed, 0 failed"; exit 0; fi
RACER=""
for c in "${DDP_BUILD_DIR:-}/ddp_racer" "$(dirname "$DDP")/ddp_racer"; do [[ -x $c ]] && { RACER=$c; break; }; done
[[ -n $RACER ]] || { echo "ddp_racer not built"; exit 1; }
SECS=${DDP_SECURITY_SECONDS:-20}
JOB_TIMEOUT=${DDP_SECURITY_JOB_TIMEOUT:-120}

A=ddpsa$$; B=ddpsb$$
useradd -M -N -s /usr/sbin/nologin "$A" && useradd -M -N -s /usr/sbin/nologin "$B" || { echo "useradd failed"; exit 1; }
RACERS=()
cleanup_users() {
  local p; for p in "${RACERS[@]}"; do kill "$p" 2>/dev/null; done
  userdel "$A" 2>/dev/null; userdel "$B" 2>/dev/null
  cleanup
}
trap cleanup_users EXIT
AU=$(id -u "$A"); AG=$(id -g "$A"); BU=$(id -u "$B"); BG=$(id -g "$B")
chmod 755 "$T"
asbob() { setpriv --reuid="$BU" --regid="$BG" --clear-groups -- "$@"; }

MARK_A="ALICE-SECRET-$$-$RANDOM$RANDOM"
MARK_R="ROOT-SECRET-$$-$RANDOM$RANDOM"
OUT=$T/outside
mkdir -p "$OUT/etc"; chmod 755 "$OUT" "$OUT/etc"
printf '%s\n' "$MARK_R" > "$OUT/secret"; chmod 600 "$OUT/secret"

# bytes N SEED: N bytes of pseudo-random data (deterministic).
bytes() { head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2 2>/dev/null | head -c "$2"; }

# new_volume DIR: an enabled volume (root 0755) with alice's 0700 home and secret.
new_volume() {
  local v=$1
  rm -rf "$v"; mkdir -p "$v"; chmod 755 "$v"
  "$DDP" enable "$v" --usage Backup >/dev/null || return 1
  mkdir -p "$v/alice"; printf '%s\n' "$MARK_A" > "$v/alice/secret"
  bytes alice 70000 > "$v/alice/big"
  chown -R "$AU:$AG" "$v/alice"; chmod 700 "$v/alice"; chmod 600 "$v/alice/secret" "$v/alice/big"
}

# outside_sums: owner, mode and content of every file outside the volume.
outside_sums() { (cd "$OUT" && find . -printf '%p %u %m %s\n' | sort; find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
# leaked DIR...: does any file bob owns hold a marker of a secret?
leaked() { find "$@" -user "$B" -type f -print0 2>/dev/null | xargs -0 -r grep -l -a -e "$MARK_A" -e "$MARK_R" 2>/dev/null | head -3; }

start_racer() { # start_racer PAIRS...: bob swaps each pair until $T/stop appears
  rm -f "$T/stop"
  "$RACER" --uid "$BU" --gid "$BG" --seconds $((SECS + 60)) --stop "$T/stop" "$@" > "$T/racer.out" 2>&1 &
  RACERS+=($!)
}
stop_racer() { touch "$T/stop"; wait "${RACERS[-1]}"; SWAPS=$(sed -n 's/^swaps=\([0-9]*\).*/\1/p' "$T/racer.out"); SWAPS=${SWAPS:-0}; }

# run_job WHAT CMD...: run a job bounded by JOB_TIMEOUT; a hang is a failure.
HUNG=0
run_job() { timeout -k 5 "$JOB_TIMEOUT" "$@" >>"$T/jobs.log" 2>&1; [[ $? -eq 124 || $? -eq 137 ]] && HUNG=$((HUNG+1)); return 0; }

NF=${DDP_SECURITY_FILES:-24}

# ---------------------------------------------------------------------------
# 1. unoptimize FILE (and optimize) while bob swaps his stubs for symbolic
#    links to alice's secret and to a root-only file outside the volume, and
#    the directories that hold his stubs (named "secret") for links to
#    alice's directory and to the root-only directory.
V=$T/vol1; new_volume "$V"
mkdir -p "$V/bob"
PAIRS=(); FILES=(); EXPECT=()
for i in $(seq 1 "$NF"); do
  bytes "bob$i" 40000 > "$V/bob/f$i"
  if ((i % 2)); then ln -s "$V/alice/secret" "$V/bob/l$i"; else ln -s "$OUT/secret" "$V/bob/l$i"; fi
  mkdir "$V/bob/d$i"; bytes "bobd$i" 40000 > "$V/bob/d$i/secret"
  if ((i % 2)); then ln -s "$V/alice" "$V/bob/dl$i"; else ln -s "$OUT" "$V/bob/dl$i"; fi
  PAIRS+=("$V/bob/f$i" "$V/bob/l$i" "$V/bob/d$i" "$V/bob/dl$i"); FILES+=("$V/bob/f$i" "$V/bob/d$i/secret")
done
chown -hR "$BU:$BG" "$V/bob"
alice_state() { (cd "$V/alice" && find . -printf '%p %u %m\n' && sha256sum secret && "$DDP" cat big | sha256sum); }
before_out=$(outside_sums); before_alice=$(alice_state)
start_racer "${PAIRS[@]}"
end=$((SECONDS + SECS)); runs=0
while ((SECONDS < end)); do
  run_job "$DDP" optimize "$V" -q
  run_job "$DDP" unoptimize "${FILES[@]}"
  runs=$((runs + 1))
done
stop_racer
echo "# unoptimize FILE / optimize vs file<->symlink and dir<->symlink: $runs rounds of $((2 * NF)) files ($((runs * NF * 4)) file attempts), $SWAPS swaps"
check "unoptimize FILE: no secret reached bob's files ($((runs * NF * 2)) attempts)" test -z "$(leaked "$V" "$OUT")"
check "unoptimize FILE: nothing outside the volume changed" test "$before_out" == "$(outside_sums)"
check "unoptimize FILE: alice's files unchanged" test "$before_alice" == "$(alice_state)"
check "unoptimize FILE: no job hung" test "$HUNG" -eq 0
lost=0
for i in $(seq 1 "$NF"); do
  # one of each pair is bob's (file or directory), the other the link
  got=""
  for n in f$i l$i; do [[ -f $V/bob/$n && ! -L $V/bob/$n ]] && got=$("$DDP" cat "$V/bob/$n" | sha256sum); done
  [[ $got == "$(bytes "bob$i" 40000 | sha256sum)" ]] || lost=$((lost+1))
  got=""
  for n in d$i dl$i; do [[ -d $V/bob/$n && ! -L $V/bob/$n ]] && got=$("$DDP" cat "$V/bob/$n/secret" | sha256sum); done
  [[ $got == "$(bytes "bobd$i" 40000 | sha256sum)" ]] || lost=$((lost+1))
done
check "unoptimize FILE: all of bob's files are intact ($lost lost)" test "$lost" -eq 0
check "unoptimize FILE: no temporary left in the tree" test -z "$(find "$V" -path "$V/.ddp" -prune -o -name '*ddp-tmp*' -print)"

# ---------------------------------------------------------------------------
# 2. optimize and unoptimize VOLUME while bob swaps his directory for a
#    symbolic link to a root-only directory holding files of the same names.
V=$T/vol2; new_volume "$V"
mkdir -p "$V/bob/d"
for i in $(seq 1 "$NF"); do
  bytes "bobd$i" 40000 > "$V/bob/d/g$i"
  printf '%s %s\n' "$MARK_R" "$i" > "$OUT/etc/g$i"; bytes "root$i" 40000 >> "$OUT/etc/g$i"; chmod 600 "$OUT/etc/g$i"
done
ln -s "$OUT/etc" "$V/bob/dl"
mkfifo "$V/bob/fifo"; bytes bobq 40000 > "$V/bob/q"
chown -hR "$BU:$BG" "$V/bob"
before_out=$(outside_sums)
start_racer "$V/bob/d" "$V/bob/dl" "$V/bob/q" "$V/bob/fifo"
end=$((SECONDS + SECS)); runs=0
while ((SECONDS < end)); do
  [[ -d $V/.ddp/Settings ]] || "$DDP" enable "$V" --usage Backup >/dev/null 2>&1
  run_job "$DDP" optimize "$V" -q
  run_job "$DDP" gc "$V"
  run_job "$DDP" unoptimize "$V"
  runs=$((runs + 1))
done
stop_racer
echo "# optimize / gc / unoptimize VOLUME vs dir<->symlink and file<->FIFO: $runs rounds of $((NF + 1)) files ($((runs * (NF + 1) * 2)) file attempts), $SWAPS swaps"
check "optimize/unoptimize VOLUME: nothing outside the volume changed (owner, mode, content)" test "$before_out" == "$(outside_sums)"
check "optimize/unoptimize VOLUME: no secret reached bob's files" test -z "$(leaked "$V" "$OUT")"
check "optimize/unoptimize VOLUME: no job hung on the FIFO" test "$HUNG" -eq 0
[[ -d $V/.ddp/Settings ]] && "$DDP" unoptimize "$V" >/dev/null 2>&1
dd=$V/bob/d; [[ -L $dd ]] && dd=$V/bob/dl
lost=0
for i in $(seq 1 "$NF"); do [[ $(sha256sum < "$dd/g$i") == "$(bytes "bobd$i" 40000 | sha256sum)" ]] || lost=$((lost+1)); done
qq=$V/bob/q; [[ -p $qq ]] && qq=$V/bob/fifo
[[ $(sha256sum < "$qq") == "$(bytes bobq 40000 | sha256sum)" ]] || lost=$((lost+1))
check "optimize/unoptimize VOLUME: all of bob's files are intact ($lost lost)" test "$lost" -eq 0
[[ $lost -eq 0 ]] || { ls -la "$V/bob" "$dd" | head -20; tail -20 "$T/jobs.log"; }

# ---------------------------------------------------------------------------
# 3. scrub --repair of stubs bob damaged on purpose, while bob swaps their
#    directory for a link to a root-only directory with files of those names.
V=$T/vol3; new_volume "$V"
mkdir -p "$V/bob/d"
rm -f "$OUT"/etc/*
for i in $(seq 1 "$NF"); do bytes "bobs$i" 40000 > "$V/bob/d/s$i"; done
chown -hR "$BU:$BG" "$V/bob"
"$DDP" optimize "$V" -q >/dev/null
for i in $(seq 1 "$NF"); do
  cp -p "$V/bob/d/s$i" "$T/good.s$i"
  printf '%s\n' "$MARK_R" > "$OUT/etc/s$i"; head -c 200 /dev/zero >> "$OUT/etc/s$i"; chmod 600 "$OUT/etc/s$i"
done
ln -s "$OUT/etc" "$V/bob/dl"; chown -h "$BU:$BG" "$V/bob/dl"
before_out=$(outside_sums)
start_racer "$V/bob/d" "$V/bob/dl"
end=$((SECONDS + SECS)); runs=0
while ((SECONDS < end)); do
  # bob flips one byte of each of his stubs (wherever the directory is now)
  for i in $(seq 1 "$NF"); do
    for dd in "$V/bob/d" "$V/bob/dl"; do
      [[ -L $dd ]] && continue
      asbob sh -c "printf X | dd of='$dd/s$i' bs=1 seek=100 conv=notrunc status=none" 2>/dev/null
    done
  done
  run_job "$DDP" scrub "$V" --repair
  runs=$((runs + 1))
done
stop_racer
echo "# scrub --repair vs dir<->symlink: $runs rounds of $NF damaged stubs ($((runs * NF)) file attempts), $SWAPS swaps"
check "scrub --repair: nothing outside the volume changed (owner, mode, content)" test "$before_out" == "$(outside_sums)"
check "scrub --repair: no job hung" test "$HUNG" -eq 0

# ---------------------------------------------------------------------------
# 4. gc (read-only on the tree) while bob swaps a stub with a FIFO and with a
#    symbolic link to a root-only file: gc never hangs, never follows the
#    link, nothing outside changes, and the stubs bob keeps renaming are
#    not missed (their chunks are kept: the walk reads changed directories
#    again, and stops before changing anything while they keep changing).
V=$T/vol4; new_volume "$V"
mkdir -p "$V/bob"
for i in $(seq 1 "$NF"); do bytes "bobk$i" 40000 > "$V/bob/k$i"; done
bytes bobr 40000 > "$V/bob/r"; bytes bobr2 40000 > "$V/bob/r2"
chown -hR "$BU:$BG" "$V/bob"
"$DDP" optimize "$V" -q >/dev/null
mkfifo "$V/bob/fifo"; ln -s "$OUT/secret" "$V/bob/ls"; chown -h "$BU:$BG" "$V/bob/fifo" "$V/bob/ls"
before_out=$(outside_sums)
start_racer "$V/bob/r" "$V/bob/fifo" "$V/bob/r2" "$V/bob/ls"
end=$((SECONDS + SECS)); runs=0
while ((SECONDS < end)); do run_job "$DDP" gc "$V"; runs=$((runs + 1)); done
stop_racer
echo "# gc vs file<->FIFO and file<->symlink: $runs runs, $SWAPS swaps"
check "gc: no run hung on the FIFO" test "$HUNG" -eq 0
check "gc: nothing outside the volume changed" test "$before_out" == "$(outside_sums)"
lost=0
for i in $(seq 1 "$NF"); do [[ $("$DDP" cat "$V/bob/k$i" | sha256sum) == "$(bytes "bobk$i" 40000 | sha256sum)" ]] || lost=$((lost+1)); done
for n in r r2 fifo ls; do
  [[ -f $V/bob/$n && ! -L $V/bob/$n ]] || continue
  h=$("$DDP" cat "$V/bob/$n" | sha256sum)
  [[ $h == "$(bytes bobr 40000 | sha256sum)" || $h == "$(bytes bobr2 40000 | sha256sum)" ]] || lost=$((lost+1))
done
check "gc: bob's stubs, the raced ones too, still read back ($lost lost)" test "$lost" -eq 0
check "gc: alice's files still read back" test "$("$DDP" cat "$V/alice/big" | sha256sum)" == "$(bytes alice 70000 | sha256sum)"

# ---------------------------------------------------------------------------
# Smaller findings, one test each.

# Holes stay holes: a 2 GiB file with 4 KiB allocated, optimized then
# unoptimized (FILE and VOLUME), keeps a small allocation.
SPARSE_MB=${DDP_SECURITY_SPARSE_MB:-2048}
V=$T/sparse; new_volume "$V"
truncate -s "${SPARSE_MB}M" "$V/holes"; printf 'middle' | dd of="$V/holes" bs=4096 seek=1000 conv=notrunc status=none
cp --sparse=always "$V/holes" "$V/holes2"
sum_h=$(sha256sum < "$V/holes")
"$DDP" optimize "$V" -q >/dev/null
check "sparse: optimized" is_stub "$V/holes"
"$DDP" unoptimize "$V/holes" >/dev/null
blocks=$(stat -c %b "$V/holes")
check "sparse: unoptimize FILE keeps the holes ($blocks blocks of 512 for ${SPARSE_MB} MiB)" test "$blocks" -le 256
check "sparse: ... and the content" test "$(sha256sum < "$V/holes")" == "$sum_h"
"$DDP" unoptimize "$V" >/dev/null
blocks=$(stat -c %b "$V/holes2")
check "sparse: unoptimize VOLUME keeps the holes ($blocks blocks)" test "$blocks" -le 256
check "sparse: ... and the content" test "$(sha256sum < "$V/holes2")" == "$sum_h"
rm -rf "$V"

# A user's file named like a ddp temporary survives optimize and unoptimize,
# and is seen through the mount.
V=$T/names; new_volume "$V"
mkdir -p "$V/bob"; bytes tmpname 50000 > "$V/bob/.report.ddp-tmp.ABC123"; bytes other 50000 > "$V/bob/other"
chown -R "$BU:$BG" "$V/bob"
"$DDP" optimize "$V" -q >/dev/null
check "temporary-like name: the user's file survives optimize" test "$("$DDP" cat "$V/bob/.report.ddp-tmp.ABC123" | sha256sum)" == "$(bytes tmpname 50000 | sha256sum)"
if [[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null 2>&1 || [[ -e /dev/fuse ]]; then
  mkdir -p "$T/mnt"
  "$DDP" mount "$V" "$T/mnt" >/dev/null 2>&1 && MOUNTS+=("$T/mnt")
  for _ in $(seq 50); do mountpoint -q "$T/mnt" && break; sleep 0.1; done
  if mountpoint -q "$T/mnt"; then
    check "temporary-like name: seen through the mount" grep -qx '.report.ddp-tmp.ABC123' <(ls -a "$T/mnt/bob")
    check "temporary-like name: read through the mount" test "$(sha256sum < "$T/mnt/bob/.report.ddp-tmp.ABC123")" == "$(bytes tmpname 50000 | sha256sum)"
    umount "$T/mnt"
  else
    echo "skip - mount: could not mount"
  fi
fi
"$DDP" unoptimize "$V" >/dev/null
check "temporary-like name: ... and unoptimize" test "$(sha256sum < "$V/bob/.report.ddp-tmp.ABC123")" == "$(bytes tmpname 50000 | sha256sum)"

# A killed `ddp unoptimize FILE` leaves nothing behind, not even until the
# next job (its temporary is an O_TMPFILE in .ddp/Temp).
V=$T/killed; new_volume "$V"
head -c 400M /dev/urandom > "$V/big"
"$DDP" optimize "$V" -q >/dev/null
"$DDP" unoptimize "$V/big" >/dev/null 2>&1 & pid=$!
for _ in $(seq 400); do ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'ddp-tmp\|/\.ddp/Temp' && break; sleep 0.02; done
caught=0; ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'ddp-tmp\|/\.ddp/Temp' && caught=1
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if ((caught)); then
  check "killed unoptimize FILE: nothing left in the tree" test -z "$(find "$V" -maxdepth 1 -type f ! -name big)"
  check "killed unoptimize FILE: nothing left in .ddp/Temp" test -z "$(find "$V/.ddp" -name 'tmp.*' -o -name '*ddp-tmp*')"
  check "killed unoptimize FILE: the stub is as it was" is_stub "$V/big"
else
  echo "skip - killed unoptimize FILE: it finished before it could be killed"
fi
rm -rf "$V"

# A FIFO does not hang `ddp cat`, and `ddp cat DIR` says it is a directory.
V=$T/fifo; new_volume "$V"; mkfifo "$V/pipe"
out=$(timeout 10 "$DDP" cat "$V/pipe" 2>&1); rc=$?
check "cat FIFO: fails at once, not hanging (rc $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
out=$("$DDP" cat "$V/alice" 2>&1)
check "cat DIR: says it is a directory" grep -q "is a directory" <<<"$out"
check "cat DIR: does not say 'not a directory'" test -z "$(grep "not a directory" <<<"$out")"

# A damaged copy of a stub that bob made does not keep `ddp unoptimize
# VOLUME` from finishing: a copy one byte off is rehydrated, one beyond
# mending is reported and left, and the rest is finished.
V=$T/forged; new_volume "$V"
mkdir -p "$V/bob"; bytes forged 60000 > "$V/bob/orig"; chown -R "$BU:$BG" "$V/bob"
"$DDP" optimize "$V" -q >/dev/null
asbob cp "$V/bob/orig" "$V/bob/copy1"; asbob cp "$V/bob/orig" "$V/bob/copy3"
asbob sh -c "printf X | dd of='$V/bob/copy1' bs=1 seek=120 conv=notrunc status=none"
asbob sh -c "printf XYZ | dd of='$V/bob/copy3' bs=1 seek=120 conv=notrunc status=none"
out=$("$DDP" unoptimize "$V" 2>&1); rc=$?
check "forged copy: unoptimize VOLUME finishes (.ddp removed; rc $rc)" test ! -e "$V/.ddp"
check "forged copy: it names the copy it could not read" grep -q "copy3" <<<"$out"
check "forged copy: the original is rehydrated" test "$(sha256sum < "$V/bob/orig")" == "$(bytes forged 60000 | sha256sum)"
check "forged copy: the copy one byte off is rehydrated" test "$(sha256sum < "$V/bob/copy1")" == "$(bytes forged 60000 | sha256sum)"
check "forged copy: the other is left as it was" test "$(stat -c %s "$V/bob/copy3")" -eq 232

# A read-only mount of a volume (a snapshot): scrub and backup read it;
# gc and optimize say that they need to write.
V=$T/rovol; new_volume "$V"; bytes ro 100000 > "$V/f"; "$DDP" optimize "$V" -q >/dev/null
mkdir -p "$T/ro"
if mount --bind "$V" "$T/ro" 2>/dev/null && MOUNTS+=("$T/ro") && mount -o remount,bind,ro "$T/ro" 2>/dev/null; then
  out=$("$DDP" scrub "$T/ro" 2>&1); rc=$?
  check "read-only: scrub reads it (rc $rc)" test "$rc" -eq 0
  out=$("$DDP" backup "$T/ro" "$T/robackup" 2>&1); rc=$?
  check "read-only: backup reads it (rc $rc: $(tail -1 <<<"$out"))" test "$rc" -eq 0
  expect_code "read-only: gc says it must write" 0x80070013 "$DDP" gc "$T/ro"
  expect_code "read-only: optimize says it must write" 0x80070013 "$DDP" optimize "$T/ro"
  check "read-only: cat reads it" test "$("$DDP" cat "$T/ro/f" | sha256sum)" == "$(bytes ro 100000 | sha256sum)"
  umount "$T/ro"
else
  echo "skip - read-only: cannot bind-mount here"
fi

# Leases: a file someone has open is not replaced; what they write later
# is not lost.
V=$T/lease; new_volume "$V"; bytes lease 80000 > "$V/held"; chown "$BU:$BG" "$V/held"
asbob sh -c "exec 3>>'$V/held'; sleep 3; printf LATE-WRITE >&3" & holder=$!
sleep 0.5
out=$("$DDP" optimize "$V" 2>&1)
wait $holder
check "lease: a file open elsewhere is left as it is, and the job says why" grep -q "held.*open in another process" <<<"$out"
check "lease: the write made later through the open descriptor is kept" grep -q "LATE-WRITE" <("$DDP" cat "$V/held")

echo "# job log tail:"; tail -5 "$T/jobs.log" | sed 's/^/#   /'
finish
