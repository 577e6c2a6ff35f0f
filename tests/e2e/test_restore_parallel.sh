#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_restore_parallel.sh: the file step of `ddp restore` on several worker
# threads (lib/backup/extract_pool.c) and the stubs rewritten in place in the
# staging directory (ddp_restore_files_staged). A tree of many small files
# (empty ones, sparse ones, read-only ones, modes, owners, times, symbolic
# links, an empty directory) and optimized files is restored from a
# directory backup and a tar archive with 4 threads and with 1, and must come
# back byte for byte with the same type, mode, size, time and link target,
# with no staging directory left. A file that one worker fails on (its copy
# in the backup is shorter than its manifest says) is reported with
# 0x80565355 and leaves nothing at its path, the others are restored; an
# existing file is refused (0x80070050) and left as it was. One sync, not one
# per batch of 64 files: at most 2 syncfs calls for the whole restore.
source "$(dirname "$0")/lib.sh"
set -euo pipefail

V=$T/vol
mkdir -p "$V/emptydir"
head -c 300000 /dev/urandom > "$T/base"
for d in $(seq 1 30); do
  mkdir -p "$V/d$d/sub"
  for f in $(seq 1 20); do
    head -c $(( (d * 131 + f * 977) % 9000 )) /dev/urandom > "$V/d$d/f$f.txt"
  done
  : > "$V/d$d/sub/empty"
  ln -s "../f1.txt" "$V/d$d/sub/link"
  chmod 600 "$V/d$d/f2.txt"
  chmod 444 "$V/d$d/f3.txt"
  touch -d "2021-0$(( d % 9 + 1 ))-03 04:05:06" "$V/d$d/f4.txt"
  chown 1234:2345 "$V/d$d/f5.txt" 2>/dev/null || true
done
truncate -s 1M "$V/d1/sparse.bin"                       # all holes
printf 'x' | dd of="$V/d1/sparse.bin" bs=1 seek=500000 conv=notrunc status=none
for k in 1 2 3 4 5 6; do                                 # optimized: stubs in the backup
  mkdir -p "$V/big$k"
  { cat "$T/base"; head -c 50000 /dev/urandom; } > "$V/big$k/data.bin"
done
chmod 440 "$V/big2/data.bin"
touch -d '2019-05-06 07:08:09' "$V/big3/data.bin"

# listing DIR: type, mode, size, mtime, link target of everything below DIR
listing() { (cd "$1" && find . -path ./.ddp -prune -o -mindepth 1 -printf '%P %y %m %s %T@ %U:%G %l\n' | sort); }
listing "$V" > "$T/list0"
tree_sums "$V" > "$T/sums0"
NFILES=$(grep -c . "$T/sums0")

"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" > /dev/null 2>&1
check "seven files optimized (the sparse one too)" test "$(count_stubs "$V")" -eq 7
"$DDP" backup "$V" "$T/B" > /dev/null
"$DDP" backup "$V" "$T/T.tar" --tar > /dev/null
mapfile -t TOP < <(cd "$V" && ls)

for from in B T.tar; do
  for threads in 4 1; do
    out=$T/out-$from-$threads
    rc=0
    DDP_RESTORE_THREADS=$threads "$DDP" restore --from "$T/$from" --to "$out" "${TOP[@]}" > "$T/r.out" 2>&1 || rc=$?
    check "$from, $threads threads: exit 0" test $rc -eq 0
    check "$from, $threads threads: 7 restored" grep -q "summary: .* 7 restored" "$T/r.out"
    check "$from, $threads threads: same bytes ($NFILES files)" diff "$T/sums0" <(tree_sums "$out")
    check "$from, $threads threads: same types, modes, sizes, times, owners, links" diff "$T/list0" <(listing "$out")
    check "$from, $threads threads: no staging directory left" test -z "$(find "$out" -maxdepth 1 -name '.ddp-restore.*')"
  done
done
check "holes stay holes" test "$(du -k "$T/out-B-4/d1/sparse.bin" | cut -f1)" -lt 100

# One sync before the files are moved into place and one at the end (not
# one per batch of 64 restored files).
if command -v strace > /dev/null && strace -f -qq -e trace=none true 2>/dev/null; then
  # (an ASan build may fail at exit under ptrace: only the count matters)
  ASAN_OPTIONS=detect_leaks=0 strace -f -qq -e trace=syncfs -o "$T/strace.out" "$DDP" restore --from "$T/B" \
    --to "$T/out-sync" "${TOP[@]}" > /dev/null 2>&1 || true
  nsync=$(grep -c 'syncfs(' "$T/strace.out" || true)
  check "at most 2 syncfs for the whole restore ($nsync)" test "$nsync" -ge 1 -a "$nsync" -le 2
else
  echo "skip - strace not usable here (scripts/install-deps.sh installs it): sync count not checked"
fi

# A worker fails on one file: the backup's copy is shorter than its manifest.
cp -a "$T/B" "$T/B2"
truncate -s 10 "$T/B2/d7/f9.txt"
rc=0
DDP_RESTORE_THREADS=4 "$DDP" restore --from "$T/B2" --to "$T/out-bad" "${TOP[@]}" > "$T/bad.out" 2> "$T/bad.err" || rc=$?
check "a failed file fails the restore" test $rc -ne 0
check "the failed file is named with 0x80565355" grep -q "^d7/f9.txt: 0x80565355" "$T/bad.out"
check "exactly one path failed" grep -q "summary: .* 7 restored, .* 0 kept, 1 failed" "$T/bad.out"
check "nothing is left at the failed path" test ! -e "$T/out-bad/d7/f9.txt"
check "every other file is restored" diff <(grep -v '\./d7/f9.txt$' "$T/sums0") <(tree_sums "$T/out-bad")
check "no staging directory left after a failure" test -z "$(find "$T/out-bad" -maxdepth 1 -name '.ddp-restore.*')"

# An existing file is refused (default) and left alone; the rest is restored.
mkdir -p "$T/out-ex/d3"
echo "mine" > "$T/out-ex/d3/f8.txt"
rc=0
DDP_RESTORE_THREADS=4 "$DDP" restore --from "$T/B" --to "$T/out-ex" "${TOP[@]}" > "$T/ex.out" 2> "$T/ex.err" || rc=$?
check "an existing file fails its path" grep -q "^d3/f8.txt: 0x80070050" "$T/ex.out"
check "the existing file is unchanged" test "$(cat "$T/out-ex/d3/f8.txt")" = mine
check "the others are restored" diff <(grep -v '\./d3/f8.txt$' "$T/sums0") <(tree_sums "$T/out-ex" | grep -v '\./d3/f8.txt$')
rc=0
DDP_RESTORE_THREADS=4 "$DDP" restore --from "$T/B" --to "$T/out-ex" --existing overwrite "${TOP[@]}" > "$T/ex2.out" 2>&1 || rc=$?
check "--existing overwrite: exit 0" test $rc -eq 0
check "--existing overwrite: everything as backed up" diff "$T/sums0" <(tree_sums "$T/out-ex")

# Not root: a read-only stub is rewritten in place all the same (made
# writable in the private staging directory, its mode back at the end).
DDPABS=$(readlink -f "$DDP")
as_nobody() { (cd / && setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups "$@"); }
if [[ $(id -u) -eq 0 ]] && command -v setpriv > /dev/null && id nobody > /dev/null 2>&1 &&
   as_nobody test -x "$DDPABS"; then
  U=$T/user; mkdir -p "$U/vol/d" "$U/out"
  head -c 300000 /dev/urandom > "$U/vol/d/ro.bin"
  head -c 300000 /dev/urandom > "$U/vol/d/rw.bin"
  chmod 444 "$U/vol/d/ro.bin"
  tree_sums "$U/vol" > "$T/usums"
  chown -R nobody "$U/vol/d" "$U/out"
  "$DDP" enable "$U/vol" --usage Backup > /dev/null
  "$DDP" optimize "$U/vol" > /dev/null 2>&1
  "$DDP" backup "$U/vol" "$U/bk" > /dev/null
  chmod 755 "$T" "$U"; chmod -R a+rX "$U/bk"
  rc=0
  as_nobody "$DDPABS" restore --from "$U/bk" --to "$U/out" d > "$T/user.out" 2>&1 || rc=$?
  check "not root: exit 0" test $rc -eq 0
  check "not root: 2 restored" grep -q "summary: .* 2 restored, .* 0 failed" "$T/user.out"
  check "not root: same bytes" diff "$T/usums" <(tree_sums "$U/out")
  check "not root: the read-only file is read-only again" test "$(stat -c %a "$U/out/d/ro.bin")" = 444
else
  ok "not root here (or no setpriv, or ddp out of nobody's reach): the non-root restore is not checked"
fi

finish
