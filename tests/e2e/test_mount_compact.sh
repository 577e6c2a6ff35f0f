#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_mount_compact.sh: a mounted volume keeps reading right while and after
# `ddp gc --full` compacts its containers under it (docs/MOUNT.md, "Garbage
# collection under a mount"): the container files the mount knows vanish,
# the catalog names new generations whose records sit behind redirection
# tables, and no live file may read wrong bytes or fail.
#
# Small containers (1 MiB) and a tiny chunk cache (1 MiB, no read-ahead) make
# the mount go to the store for nearly every read. Files to keep and files to
# delete are optimized together, so most containers hold both; readers read
# every kept file through the mount in a loop while the deleted files' stubs
# go and gc --full runs, twice (generation 2, then 3 for a container both
# runs compact); a file opened and
# half read before the first gc is read to its end after it; a file in
# containers the mount never opened before gc (their generation-1 files are
# gone: the mount must reload the catalog) reads right after it. Every read must
# give the original bytes; the mount's log must name no failed read; the
# mount must let go of the removed generations' files; the daemon must exit 0
# when unmounted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mountlib.sh"
set -euo pipefail

if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 > /dev/null; then
  echo "skip - ddp mount: /dev/fuse or fusermount3 is absent on this machine (Debian package fuse3)"
  finish
  exit 0
fi

V=$T/vol M=$T/mnt
mkdir -p "$V"
head -c 1200000 /dev/urandom > "$T/base"
for i in 1 2 3 4; do
  { head -c $((300000 * i)) "$T/base"; head -c 900000 /dev/urandom; } > "$V/keep$i.bin"
  head -c 800000 /dev/urandom > "$V/del$i.bin"
done
KEEP=(keep1.bin keep2.bin keep3.bin keep4.bin)
(cd "$V" && sha256sum "${KEEP[@]}") > "$T/sums"
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" set "$V" container_size_limit 1M > /dev/null
"$DDP" optimize "$V" > /dev/null
check "optimized: 8 stubs" test "$(count_stubs "$V")" -eq 8
# A file the mount reads only after gc, in containers of its own (a second
# run): the mount has never opened them when their files are replaced.
head -c 1500000 /dev/urandom > "$V/cold.bin"
head -c 1500000 /dev/urandom > "$V/delcold.bin"
(cd "$V" && sha256sum cold.bin) > "$T/cold.sum"
"$DDP" optimize "$V" > /dev/null
check "optimized: 10 stubs" test "$(count_stubs "$V")" -eq 10
STORE=$(echo "$V"/.ddp/ChunkStore/*.ddp)

mount_vol "$V" "$M" "$T/mount.log" --cache-mb 1 --readahead-mb 0 || { bad "mount"; finish; exit 1; }
check "through the mount: every kept file reads right" bash -c "cd '$M' && sha256sum -c --quiet '$T/sums'"

# A file opened and half read before gc.
exec 3< "$M/keep4.bin"
head -c 1000000 <&3 > "$T/open.part1"

# Readers: every kept file, again and again, until told to stop.
reader() {
  local n=0
  while [[ ! -e $T/stop ]]; do
    if ! (cd "$M" && sha256sum -c --quiet "$T/sums") > "$T/reader.$1.err" 2>&1; then
      echo "round $n: $(cat "$T/reader.$1.err")" >> "$T/reader.fail"
    fi
    n=$((n + 1))
  done
  echo "$n" > "$T/reader.$1.rounds"
}
reader 1 & R1=$!
reader 2 & R2=$!

gc_round() { # gc_round WHAT FILE...: delete the files' stubs, gc --full
  local what=$1; shift
  local f; for f in "$@"; do rm "$V/$f"; done
  sleep 0.3
  local rc=0
  "$DDP" gc "$V" --full > "$T/gc.out" 2>&1 || rc=$?
  check "$what: gc --full under the mount succeeds" test $rc -eq 0
  sleep 0.3
}
gc_round "gc 1" del1.bin del2.bin delcold.bin
check "gc 1: containers were compacted (generation 2)" bash -c "ls '$STORE/Data' | grep -q '\.00000002\.ccc$'"
one_gen() { local d; for d in Data Stream; do [[ -z $(ls "$STORE/$d" | grep ccc | cut -d. -f1 | sort | uniq -d) ]] || return 1; done; }
check "gc 1: one generation of each container is left" one_gen
gc_round "gc 2" del3.bin del4.bin
check "gc 2: dead records collected again" grep -qE '^Collected [1-9][0-9]* dead records' "$T/gc.out"
echo "note - after gc 2: $(ls "$STORE/Data" | grep -c '\.00000003\.ccc$' || true) data containers at generation 3"
touch "$T/stop"
wait "$R1" "$R2"
check "readers read every kept file again and again during both gc runs ($(cat "$T/reader.1.rounds") + $(cat "$T/reader.2.rounds") rounds)" \
  test "$(cat "$T/reader.1.rounds")" -ge 2 -a "$(cat "$T/reader.2.rounds")" -ge 2
check "no reader saw a failed read or a wrong byte during gc" test ! -s "$T/reader.fail"
[[ -s $T/reader.fail ]] && head -5 "$T/reader.fail"

cat <&3 > "$T/open.part2"
exec 3<&-
check "the file opened before gc reads to its end, right" \
  cmp <(cat "$T/open.part1" "$T/open.part2") <(cd "$V" && "$DDP" cat keep4.bin)
check "after gc: a file in containers the mount never opened reads right" bash -c "cd '$M' && sha256sum -c --quiet '$T/cold.sum'"
check "after gc: every kept file reads right through the mount" bash -c "cd '$M' && sha256sum -c --quiet '$T/sums'"
check "after gc: and through ddp cat" bash -c "cd '$V' && for f in ${KEEP[*]}; do \"$DDP\" cat \$f | sha256sum | sed \"s|-|\$f|\"; done | diff - '$T/sums'"
check "the mount's log names no failed read" bash -c "! grep -qiE 'EIO|fail|corrupt' '$T/mount.log'"
grep -iE 'EIO|fail|corrupt' "$T/mount.log" | head -5 || true
# The mount lets go of replaced generations (their space is freed): it looks
# at the catalog at most once a second, on a read.
sleep 1.2
(cd "$M" && cat "${KEEP[@]}" > /dev/null)
held=$(ls -l /proc/"$MOUNT_PID"/fd 2> /dev/null | grep -c 'ccc (deleted)' || true)
check "the mount holds no removed container generation open ($held)" test "$held" -eq 0
umount_vol "$M" "$MOUNT_PID" "$T/mount.log"

finish
