#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_badinput.sh: bad input to the core engine, through the real CLI. Each
# case must give a clear error with the HRESULT the spec names, and leave
# nothing lost on disk: not a volume, a tampered / truncated / forged stub, a
# flipped byte in a container, a full disk during a job, a second job while
# one runs, unreadable files.
source "$(dirname "$0")/lib.sh"

mk() { # mk DIR: a small volume of shared-content files, optimized
  mkdir -p "$1"
  head -c 3000000 /dev/urandom > "$T/base.bin"
  for i in 1 2 3 4 5 6; do
    { cat "$T/base.bin"; head -c $((i * 70000)) /dev/urandom; } > "$1/f$i.bin"
  done
  "$DDP" enable "$1" --usage Backup >/dev/null
}

V=$T/v; mk "$V"; tree_sums "$V" > "$T/sums"
check "optimize" "$DDP" optimize "$V" --quiet

check "cat of a plain file outside any volume prints it" test "$("$DDP" cat /etc/hostname)" = "$(cat /etc/hostname)"
cp "$V/f2.bin" "$T/outside.stub"
expect_code "cat of a stub outside its volume" 0x80565323 "$DDP" cat "$T/outside.stub"
expect_code "status of a directory that is not a volume" 0x80565323 "$DDP" status "$T"
expect_code "a missing file" 0x80070002 "$DDP" cat "$V/nope"

# Tampered stub: flip one byte of the size field; the MAC must catch it.
cp -p "$V/f1.bin" "$T/f1.stub"
printf '\x99' | dd of="$V/f1.bin" bs=1 seek=130 conv=notrunc status=none
expect_code "a tampered stub is refused" 0x8056531D "$DDP" cat "$V/f1.bin"
out=$("$DDP" cat "$V/f1.bin" 2>&1 >/dev/null || true)
check "the message names the file and the MAC" grep -q "f1.bin.*MAC" <<<"$out"
cp -p "$T/f1.stub" "$V/f1.bin"

# Truncated stub.
head -c 150 "$T/f1.stub" > "$V/f2.bin.trunc"
expect_code "a truncated stub is refused" 0x8056531D "$DDP" cat "$V/f2.bin.trunc"
rm "$V/f2.bin.trunc"

# Forged stub: a stub of another volume copied in (different key).
W=$T/w; mk "$W"; "$DDP" optimize "$W" --quiet
cp "$W/f3.bin" "$V/forged.bin"
expect_code "a stub from another volume is never trusted" 0x8056531D "$DDP" cat "$V/forged.bin"
rm "$V/forged.bin"

# A flipped byte in a data container: an error naming the container, never wrong data.
c=$(ls "$V"/.ddp/ChunkStore/*/Data/*.ccc | head -1)
cp "$c" "$T/container.bak"
size=$(stat -c %s "$c")
printf '\x5a' | dd of="$c" bs=1 seek=$((size / 2)) conv=notrunc status=none
bad_any=0; wrong=0
for f in "$V"/f*.bin; do
  if out=$("$DDP" cat "$f" 2>&1 >"$T/out.bin"); then
    [[ "$(sha256sum < "$T/out.bin" | cut -d' ' -f1)" == "$(grep " ./$(basename "$f")\$" "$T/sums" | cut -d' ' -f1)" ]] || wrong=1
  else
    [[ "$out" == *0x80565355* && "$out" == *Data/* ]] && bad_any=1
  fi
done
check "a corrupt chunk fails the read with DDP_E_FILE_CORRUPT naming the container" test $bad_any -eq 1
check "no read ever returned wrong bytes" test $wrong -eq 0
cp "$c" "$T/container.bad"; cp "$T/container.bak" "$c"
check "with the container repaired every file reads back" diff "$T/sums" <(cat_sums "$V")

# A second job while one runs.
exec 9>"$V/.ddp/State/job.lock"; flock -n 9
expect_code "a second job gets 'another job is running'" 0x80565363 "$DDP" optimize "$V"
expect_code "unoptimize too" 0x80565363 "$DDP" unoptimize "$V/f1.bin"
exec 9>&-
check "the lock is free again" "$DDP" optimize "$V" --quiet

# Unreadable files: skipped and reported, the job goes on.
U=$T/u; mkdir -p "$U"; chmod 755 "$T"
for i in 1 2 3; do head -c 200000 /dev/urandom > "$U/r$i.bin"; done
"$DDP" enable "$U" --usage Backup >/dev/null
chmod 000 "$U/r2.bin"
if [[ $(id -u) -eq 0 ]]; then
  chown -R nobody:nogroup "$U"
  run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
else
  run=()
fi
out=$("${run[@]}" "$DDP" optimize "$U" 2>&1); rc=$?
check "a job with an unreadable file reports partial success (exit 1)" test $rc -eq 1
check "the unreadable file is named with access denied" grep -q "r2.bin.*0x80070005" <<<"$out"
check "the other files were optimized" test "$(count_stubs "$U")" -eq 2
chmod 644 "$U/r2.bin"
check "the unreadable file was left as it was" test "$(stat -c %s "$U/r2.bin")" -eq 200000

# Disk full during a job: it stops, nothing is lost.
D=$T/full
if try_mount_tmpfs "$D" 6m; then
  mkdir -p "$D/v"
  for i in 1 2 3 4 5 6 7 8; do head -c 700000 /dev/urandom > "$D/v/x$i.bin"; done
  tree_sums "$D/v" > "$T/full.sums"
  "$DDP" enable "$D/v" --usage Backup >/dev/null
  out=$("$DDP" optimize "$D/v" 2>&1); rc=$?
  check "optimize on a full disk fails" test $rc -ne 0
  check "it says the disk is full" grep -qi "disk is full\|0x80070070" <<<"$out"
  check "every file still reads back after the failed job" diff "$T/full.sums" <(cat_sums "$D/v")
  rm -f "$D"/v/x[3-8].bin; grep -v 'x[3-8].bin' "$T/full.sums" > "$T/full2.sums"
  check "with room again the job completes" "$DDP" optimize "$D/v" --quiet
  check "and every file reads back" diff "$T/full2.sums" <(cat_sums "$D/v")
else
  echo "skip - disk-full case: cannot mount a tmpfs here (needs root)"
fi

# A directory the job cannot read: optimize skips it and says so; unoptimize
# of the volume must keep the chunk store (the stubs in it need it), gc must
# stop before it changes anything. Run as an unprivileged user, since root
# reads every directory whatever its mode.
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  U=$T/unreadable
  mkdir -p "$U/open" "$U/shut"
  head -c 200000 /dev/urandom > "$U/open/a.bin"; head -c 200000 /dev/urandom > "$U/shut/b.bin"
  "$DDP" enable "$U" --usage Backup >/dev/null
  "$DDP" optimize "$U" --quiet >/dev/null
  chown -R 65534:65534 "$U"; chmod 755 "$T"
  sum_b=$(sha256sum < <("$DDP" cat "$U/shut/b.bin") | cut -d' ' -f1)
  chmod 000 "$U/shut"
  as_nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups -- "$@"; }
  out=$(as_nobody "$DDP" unoptimize "$U" 2>&1); rc=$?
  check "unoptimize of a volume with an unreadable directory fails" test $rc -ne 0
  check "it names the directory" grep -qF "$U/shut" <<<"$out"
  check "and keeps the chunk store" test -d "$U/.ddp/ChunkStore"
  out=$(as_nobody "$DDP" gc "$U" --full 2>&1); rc=$?
  check "gc with an unreadable directory stops" test $rc -ne 0
  check "and says why" grep -q "cannot be counted" <<<"$out"
  chmod 755 "$U/shut"
  check "the stub in it still reads back" test "$(sha256sum < <("$DDP" cat "$U/shut/b.bin") | cut -d' ' -f1)" = "$sum_b"
  check "once readable, unoptimize completes" "$DDP" unoptimize "$U"
  check "and the file has its bytes" test "$(sha256sum < "$U/shut/b.bin" | cut -d' ' -f1)" = "$sum_b"
else
  echo "skip - unreadable-directory case: needs root and setpriv to run as another user"
fi

finish
