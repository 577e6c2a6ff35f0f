#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_engine.sh: the core engine end to end through the real CLI: enable,
# settings, optimize a real tree, read every file back (ddp cat), stubs keep
# owner/mode/times, unoptimize one file and the whole volume, resume after
# an interrupted job, status.
source "$(dirname "$0")/lib.sh"

V=$T/vol
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$V" 3
# Files the policy must leave alone: small, symlink, hard-linked, excluded.
head -c 1000 /dev/urandom > "$V/small.bin"
ln -s release-2026.11.01/dist/bundle.js "$V/link.js"
head -c 100000 /dev/urandom > "$V/hard1.bin"; ln "$V/hard1.bin" "$V/hard2.bin"
mkdir -p "$V/scratch"; head -c 200000 /dev/urandom > "$V/scratch/tmp.dat"
head -c 100000 /dev/urandom > "$V/skip.iso.part"
chmod 640 "$V/release-2026.11.01/src/module01.txt"
touch -d '2020-01-02 03:04:05' "$V/release-2026.11.01/src/module02.txt"
chown 1234:2345 "$V/release-2026.11.02/src/module03.txt" 2>/dev/null || true
stat -c '%U %G %a %Y %s' "$V/release-2026.11.01/src/module01.txt" "$V/release-2026.11.01/src/module02.txt" \
  "$V/release-2026.11.02/src/module03.txt" > "$T/meta.before"
tree_sums "$V" > "$T/before"

check "enable creates the layout" "$DDP" enable "$V" --usage Default
check ".ddp/Settings/identity exists" test -s "$V/.ddp/Settings/identity"
check ".ddp is private (0700)" test "$(stat -c %a "$V/.ddp")" = 700
check "enabling twice succeeds and says so (Enable-DedupVolume)" bash -c '"$1" enable "$2" | grep -q "already enabled"' _ "$DDP" "$V"
expect_code "a directory that is not a volume" 0x80565323 "$DDP" optimize "$T"
expect_code "min_file_size below 32 KiB is refused" 0x80070057 "$DDP" set "$V" min_file_size 1000
expect_code "an unknown setting is refused" 0x80070057 "$DDP" set "$V" no_such_key 1
check "usage type Default has min age 3 days" test "$("$DDP" get "$V" min_file_age_days)" = 3

# Default policy: files are brand new, so only the one dated 2020 is old enough.
"$DDP" optimize "$V" --quiet > "$T/out1" 2>&1
check "under Default only the file older than 3 days became a stub" test "$(count_stubs "$V")" -eq 1
check "and it is that file" is_stub "$V/release-2026.11.01/src/module02.txt"

check "set usage_type Backup" "$DDP" set "$V" usage_type Backup
check "Backup has min age 0" test "$("$DDP" get "$V" min_file_age_days)" = 0
check "set excluded_folders" "$DDP" set "$V" excluded_folders scratch
check "set excluded_types" "$DDP" set "$V" excluded_types part
"$DDP" optimize "$V" > "$T/out2" 2>&1; rc=$?
cat "$T/out2"
check "optimize succeeds" test $rc -eq 0
n=$(count_stubs "$V")
check "files in policy became stubs ($n)" test "$n" -ge 100
check "small file untouched" test "$(stat -c %s "$V/small.bin")" -eq 1000
check "symlink untouched" test -L "$V/link.js"
check "hard-linked file untouched" test "$(stat -c %s "$V/hard1.bin")" -eq 100000
check "excluded folder untouched" test "$(stat -c %s "$V/scratch/tmp.dat")" -eq 200000
check "excluded type untouched" test "$(stat -c %s "$V/skip.iso.part")" -eq 100000
stat -c '%U %G %a %Y %s' "$V/release-2026.11.01/src/module01.txt" "$V/release-2026.11.01/src/module02.txt" \
  "$V/release-2026.11.02/src/module03.txt" | awk '{print $1, $2, $3, $4}' > "$T/meta.after"
awk '{print $1, $2, $3, $4}' "$T/meta.before" > "$T/meta.before4"
check "stubs keep owner, group, mode and mtime" diff "$T/meta.before4" "$T/meta.after"
check "a stub says what it is" grep -q "optimized by ddp" "$V/release-2026.11.01/dist/bundle.js"

cat_sums "$V" > "$T/cat"
check "every file reads back exactly through ddp cat" diff "$T/before" "$T/cat"

"$DDP" status "$V" > "$T/status"; cat "$T/status"
"$DDP" status "$V" --json > "$T/status.json"
check "status --json is valid JSON" python3 -c "import json,sys; d=json.load(open('$T/status.json')); assert d['files_optimized'] >= 100 and d['saved_bytes'] > 0"
check "status shows savings above 50%" python3 -c "import json; d=json.load(open('$T/status.json')); assert d['savings_rate'] > 0.5, d"

out=$("$DDP" optimize "$V" 2>&1)
check "a second run finds everything already optimized" grep -q "Optimized 0 files" <<<"$out"

# A random range read: dd through cat vs the original bytes.
f=release-2026.11.03/dist/bundle.js
want=$(grep "  ./$f\$" "$T/before" | cut -d' ' -f1)
check "ddp cat of one file" test "$("$DDP" cat "$V/$f" | sha256sum | cut -d' ' -f1)" = "$want"

# unoptimize one file
check "unoptimize one file" "$DDP" unoptimize "$V/$f"
check "it is a plain file again" test "$(stat -c %s "$V/$f")" -gt 232
check "its bytes are the original" test "$(sha256sum < "$V/$f" | cut -d' ' -f1)" = "$want"
g=release-2026.11.01/src/module02.txt
check "unoptimize a file with an old mtime" "$DDP" unoptimize "$V/$g"
check "mode and mtime kept through unoptimize" test "$(stat -c '%a %Y' "$V/$g")" = "$(sed -n 2p "$T/meta.before" | awk '{print $3, $4}')"
out=$("$DDP" unoptimize "$V/$f" 2>&1)
check "unoptimize of a plain file says so" grep -q "not optimized" <<<"$out"

# Interrupted job: kill optimize midway on fresh data, run again, check all.
W=$T/vol2
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$W" 4
tree_sums "$W" > "$T/before2"
"$DDP" enable "$W" --usage Backup >/dev/null
"$DDP" optimize "$W" --quiet --threads 2 & pid=$!
sleep 0.3; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "after SIGKILL every file still reads back" diff "$T/before2" <(cat_sums "$W" | grep -v '\.ddp-tmp\.')
check "no temporary files left visible as data" test -z "$(find "$W" -name '*.ddp-tmp.*' -size +1k)"
check "the next run completes" "$DDP" optimize "$W" --quiet
check "and every file reads back" diff "$T/before2" <(cat_sums "$W")
check "leftover temporary stubs were removed" test -z "$(find "$W" -name '*.ddp-tmp.*')"

# index rebuild keeps dedup working
check "index rebuild" "$DDP" index rebuild "$W"
cp "$W/release-2026.11.01/dist/bundle.js" "$T/x" 2>/dev/null
"$DDP" cat "$W/release-2026.11.01/dist/bundle.js" > "$W/copy-of-bundle.js"
before=$(du -sb "$W/.ddp/ChunkStore" | cut -f1)
"$DDP" optimize "$W" --quiet
after=$(du -sb "$W/.ddp/ChunkStore" | cut -f1)
check "a copy of known data adds almost nothing after rebuild ($((after-before)) bytes)" test $((after-before)) -lt 65536

# A file someone holds a lock on (as ddp mount does on every file it has
# open for writing) is left as it is, and reported; once free, it is optimized.
if command -v flock >/dev/null; then
  L=$T/locked; mkdir -p "$L"; "$DDP" enable "$L" --usage Backup >/dev/null
  head -c 300000 /dev/urandom > "$L/held.bin"; head -c 300000 /dev/urandom > "$L/free.bin"
  touch -d '-1 day' "$L"/*.bin
  out=$(flock -s "$L/held.bin" "$DDP" optimize "$L" 2>&1)
  check "a locked file is not replaced by a stub" test "$(stat -c %s "$L/held.bin")" -eq 300000
  check "the free one is" is_stub "$L/free.bin"
  check "the job says why it left the locked one" grep -q "held.bin is open for writing" <<<"$out"
  check "once free, the next optimize takes it" "$DDP" optimize "$L" --quiet
  check "and it is a stub now" is_stub "$L/held.bin"
fi

# Temporaries of a writer that died (NAME.tmp.PID in .ddp/) go at the next
# job's open; one whose PID now names another, newer process goes too (the
# PID was reused); one its live writer holds (flock) is kept.
S=$T/sweep; mkdir -p "$S"; "$DDP" enable "$S" --usage Backup >/dev/null
st=$S/.ddp/State
sleep 30 & sleeper=$!
echo dead > "$st/dead.tmp.4194303"
echo reused > "$st/reused.tmp.$sleeper"; touch -d '-1 hour' "$st/reused.tmp.$sleeper"
flock "$st/live.tmp.$sleeper" sleep 30 & holder=$!
for _ in $(seq 50); do [[ -e $st/live.tmp.$sleeper ]] && break; sleep 0.1; done
sleep 0.2
"$DDP" index rebuild "$S" >/dev/null
check "a dead writer's temporary is removed" test ! -e "$st/dead.tmp.4194303"
check "a temporary older than the process that now has its PID is removed" test ! -e "$st/reused.tmp.$sleeper"
check "a temporary its live writer holds is kept" test -e "$st/live.tmp.$sleeper"
kill "$sleeper" "$holder" 2>/dev/null; wait "$sleeper" "$holder" 2>/dev/null

# unoptimize the whole volume
check "unoptimize the volume" "$DDP" unoptimize "$V"
check "no stubs remain" test "$(count_stubs "$V")" -eq 0
check "every file has its original bytes" diff "$T/before" <(tree_sums "$V")
check "the chunk store and settings are gone" test ! -e "$V/.ddp"

finish
