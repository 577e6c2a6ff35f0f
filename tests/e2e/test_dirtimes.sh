#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_dirtimes.sh: optimize and unoptimize leave the directories' times as
# they were (issue 15). Replacing a file by its stub, or a stub by its file,
# is an exchange of names in the file's directory, which sets the
# directory's mtime like any rename; ddp sets it back (lib/volume/replace.c),
# since the directory holds the same names and every file the same content.
# Every directory's mtime (with nanoseconds) is compared before and after
# `ddp optimize VOLUME`, `ddp unoptimize FILE` and `ddp unoptimize VOLUME`
# (the root excepted for the last: removing .ddp is a change of it).
source "$(dirname "$0")/lib.sh"

V=$T/vol
mkdir -p "$V/a/b/c" "$V/d" "$V/e/f"
for d in "$V" "$V/a" "$V/a/b" "$V/a/b/c" "$V/d" "$V/e/f"; do
  for i in 1 2; do head -c $((40000 + i * 3000)) /dev/urandom > "$d/file$i.bin"; done
done
head -c 50000 /dev/zero > "$V/d/zeros.bin"
tree_sums "$V" > "$T/sums0"
"$DDP" enable "$V" > /dev/null
"$DDP" set "$V" min_file_age_days 0 > /dev/null
# Times well in the past, with nanoseconds: any change shows.
set_times() { find "$V" -path "$V/.ddp" -prune -o -type d -exec touch -d '2021-03-04 05:06:07.123456789' {} +; }
set_times
# dir_times [--no-root]: "mtime path" of every directory but .ddp's, sorted.
dir_times() {
  find "$V" -path "$V/.ddp" -prune -o -type d -printf '%T@ %p\n' | sort -k2 |
    { if [[ ${1:-} == --no-root ]]; then grep -v " $V\$"; else cat; fi; }
}
dir_times > "$T/t0"
check "every directory has the time set (the check can fail)" test "$(grep -c '^1614834367.1234567890' "$T/t0")" -eq 7

check "optimize VOLUME" "$DDP" optimize "$V" --quiet
check "it made stubs" test "$(count_stubs "$V")" -eq 13
dir_times > "$T/t1"
if diff "$T/t0" "$T/t1" > "$T/d1"; then ok "optimize left every directory's mtime as it was"
else bad "optimize changed directory mtimes: $(cat "$T/d1")"; fi

set_times
dir_times > "$T/t0"
check "unoptimize FILE" "$DDP" unoptimize "$V/a/b/c/file1.bin"
check "the file is itself again" test "$(stat -c %s "$V/a/b/c/file1.bin")" -eq 43000
dir_times > "$T/t2"
if diff "$T/t0" "$T/t2" > "$T/d2"; then ok "unoptimize FILE left its directory's mtime as it was"
else bad "unoptimize FILE changed directory mtimes: $(cat "$T/d2")"; fi

# A change by someone else stays visible: a file added to a directory after
# optimize moves its mtime, and the next job does not roll it back.
touch "$V/e/f/new-file"
stat -c %Y.%y "$V/e/f" > "$T/ef"
check "optimize again" "$DDP" optimize "$V" --quiet
check "a user's change of a directory is kept" test "$(stat -c %Y.%y "$V/e/f")" = "$(cat "$T/ef")"
rm "$V/e/f/new-file"
set_times

dir_times --no-root > "$T/t3"
check "unoptimize VOLUME" "$DDP" unoptimize "$V" --quiet
check "no stub is left" test "$(count_stubs "$V")" -eq 0
check "and .ddp is gone" test ! -e "$V/.ddp"
dir_times --no-root > "$T/t4"
if diff "$T/t3" "$T/t4" > "$T/d4"; then ok "unoptimize VOLUME left every directory's mtime as it was"
else bad "unoptimize VOLUME changed directory mtimes: $(cat "$T/d4")"; fi
check "every file has its bytes" diff <(tree_sums "$V") "$T/sums0"

finish
