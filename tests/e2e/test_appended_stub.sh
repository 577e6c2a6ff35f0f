#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_appended_stub.sh: a stub someone appended to directly (`echo x >> stub`,
# not through ddp mount) is "a stub with bytes appended" (docs/FORMAT.md,
# docs/MAINTENANCE.md; issue 15). Its bytes are not the file's content:
# `ddp cat` fails with DDP_E_FILE_CORRUPT and says how many bytes were
# appended and what restores it; the mount refuses to open it (EIO, logged);
# scrub reports it (text and --json) and exits 1; optimize leaves it alone
# and reports it; gc --full keeps the chunks it names; unoptimize keeps the
# store while one is left; scrub --repair rebuilds it as a regular file, its
# content followed by the appended bytes, with its owner, mode and times.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mountlib.sh"

V=$T/vol
mkdir -p "$V/sub"
head -c 200000 /dev/urandom > "$V/sub/target.bin"    # its chunks are its own: gc would take them
head -c 150000 /dev/urandom > "$V/other.bin"
head -c 120000 /dev/urandom > "$V/gone.bin"
head -c 100000 /dev/urandom > "$V/grown.bin"
cp "$V/grown.bin" "$T/grown.orig"
cp "$V/sub/target.bin" "$T/target.orig"
"$DDP" enable "$V" > /dev/null
"$DDP" set "$V" min_file_age_days 0 > /dev/null
check "optimize" "$DDP" optimize "$V" --quiet
check "target.bin is a stub" is_stub "$V/sub/target.bin"

F=$V/sub/target.bin
printf 'appended by hand\n' >> "$F"
chmod 0640 "$F"
touch -d '2022-02-03 04:05:06.5' "$F"
cp "$F" "$T/appended.raw"
{ cat "$T/target.orig"; printf 'appended by hand\n'; } > "$T/want"
attrs() { stat -c '%a %u %g %y %s' "$1"; }

# ------------------------------------------------------------------ cat
out=$("$DDP" cat "$F" 2>"$T/cat.err"); rc=$?
check "ddp cat of a stub with bytes appended fails" test $rc -ne 0
check "and writes nothing to stdout (never the stub's bytes)" test -z "$out"
check "it says DDP_E_FILE_CORRUPT (0x80565355)" grep -q 0x80565355 "$T/cat.err"
check "it names the file and how many bytes were appended" grep -q "target.bin: 17 bytes were appended to a stub" "$T/cat.err"
check "and what restores it" grep -q "ddp scrub --repair" "$T/cat.err"
# Longer than a stub, beginning with a stub's text and magic, but no stub
# ddp wrote (the MAC does not verify): an ordinary file.
{ head -c 200 "$F"; head -c 100 /dev/zero; } > "$V/lookalike.txt"
check "a file that merely begins like a stub is still a plain file" cmp <("$DDP" cat "$V/lookalike.txt") "$V/lookalike.txt"
rm -f "$V/lookalike.txt"
expect_code "unoptimize FILE refuses it" 0x80565355 "$DDP" unoptimize "$F"
check "and leaves it as it was" cmp "$F" "$T/appended.raw"

# ------------------------------------------------------------------ scrub
out=$("$DDP" scrub "$V" 2>&1); rc=$?
check "scrub exits 1" test $rc -eq 1
check "scrub names the file and says bytes were appended" grep -q "target.bin.*17 bytes were appended to this stub" <<<"$out"
if grep -q 'No damage found' <<<"$out"; then bad "scrub says no damage"; else ok "scrub does not say no damage"; fi
check "scrub --json lists it" python3 -c "
import json, sys; d = json.loads(sys.argv[1])
items = [i for i in d['items'] if i['file'].endswith('sub/target.bin')]
assert d['damaged'] >= 1 and items and 'appended' in items[0]['what'], d" "$("$DDP" scrub "$V" --json)"

# ------------------------------------------------------------------ optimize
# target.bin (249 bytes now) is below min_file_size: optimize never touches
# it. grown.bin gets 40000 bytes appended: in policy, so optimize opens it,
# and must leave it alone and say why, not chunk the stub's bytes as data.
head -c 40000 /dev/urandom > "$T/grown.tail"
cat "$T/grown.tail" >> "$V/grown.bin"
cp "$V/grown.bin" "$T/grown.raw"
out=$("$DDP" optimize "$V" 2>&1); rc=$?
check "optimize reports a stub with bytes appended (exit 1)" test $rc -eq 1
check "optimize says why it left it" grep -q "grown.bin: 40000 bytes were appended to a stub.*left as it is" <<<"$out"
check "optimize left it as it was" cmp "$V/grown.bin" "$T/grown.raw"
check "and the small one too" cmp "$F" "$T/appended.raw"

# ------------------------------------------------------------------ gc
rm "$V/gone.bin"
"$DDP" gc "$V" --full > "$T/gc.out" 2>&1
check "gc --full names it (what it names is kept)" grep -q "target.bin.*17 bytes were appended to this stub" "$T/gc.out"
# The stub part, cut out, must still read back: gc kept its chunks.
head -c 232 "$F" > "$V/stubpart"
check "gc --full kept the chunks it names (its stub part reads back)" cmp <("$DDP" cat "$V/stubpart") "$T/target.orig"
rm -f "$V/stubpart"

# ------------------------------------------------------------------ mount
if [[ -e /dev/fuse ]] && command -v fusermount3 > /dev/null; then
  M=$T/mnt
  if mount_vol "$V" "$M" "$T/mount.log"; then
    check "the mount reads other files" cmp "$M/other.bin" <("$DDP" cat "$V/other.bin")
    if cat "$M/sub/target.bin" > "$T/mnt.out" 2>"$T/mnt.err"; then bad "the mount served it"
    else ok "the mount refuses to open it"; fi
    check "with EIO" grep -q "Input/output error" "$T/mnt.err"
    check "and serves none of its bytes" test ! -s "$T/mnt.out"
    check "appending through the mount is refused too" bash -c "! echo more >> '$M/sub/target.bin'"
    umount_vol "$M" "$MOUNT_PID" "$T/mount.log"
    check "the mount logged why" grep -q "target.bin: 17 bytes were appended to this stub outside the mount" "$T/mount.log"
    check "and left it as it was" cmp "$F" "$T/appended.raw"
  fi
else
  echo "skip - ddp mount: /dev/fuse or fusermount3 is absent"
fi

# ------------------------------------------------------------------ repair
before=$(attrs "$F")
out=$("$DDP" scrub "$V" --repair 2>&1); rc=$?
check "scrub --repair exits 0" test $rc -eq 0
check "scrub --repair says what it did" grep -q "restored as a regular file: its content (200000 bytes) followed by the 17 bytes appended" <<<"$out"
check "the file is its content followed by the appended bytes" cmp "$F" "$T/want"
check "it is a regular file, not a stub" test "$(stat -c %s "$F")" -eq 200017
check "owner, mode and mtime kept" test "$(stat -c '%a %u %g %y' "$F")" = "$(cut -d' ' -f1-6 <<<"$before")"
check "ddp cat reads it" cmp <("$DDP" cat "$F") "$T/want"
check "grown.bin is its content followed by the 40000 bytes" cmp "$V/grown.bin" <(cat "$T/grown.orig" "$T/grown.tail")
out=$("$DDP" scrub "$V" 2>&1); rc=$?
check "scrub is clean afterwards" test $rc -eq 0
check "and says so" grep -q "No damage found" <<<"$out"

# ------------------------------------------------------------------ unoptimize VOLUME
check "optimize again" "$DDP" optimize "$V" --quiet
check "other.bin is a stub" is_stub "$V/other.bin"
cp "$V/other.bin" "$T/other.stub"
printf 'tail' >> "$V/other.bin"
"$DDP" unoptimize "$V" > "$T/unopt.out" 2>&1; rc=$?
check "unoptimize VOLUME with a stub with bytes appended exits 1" test $rc -eq 1
check "it names the file" grep -q "other.bin.*4 bytes were appended to this stub" "$T/unopt.out"
check "and keeps the chunk store" test -d "$V/.ddp/ChunkStore"
check "the file is left as it was" cmp "$V/other.bin" <(cat "$T/other.stub"; printf tail)
check "scrub --repair" "$DDP" scrub "$V" --repair --quiet
check "unoptimize VOLUME now finishes" "$DDP" unoptimize "$V" --quiet
check ".ddp is gone" test ! -e "$V/.ddp"
check "other.bin is its content and the tail" test "$(stat -c %s "$V/other.bin")" -eq 150004
check "target.bin is as repaired" cmp "$F" "$T/want"

finish
