#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_backup_frontdoor.sh: what an administrator meets when backing up and
# restoring (issues 12 and 15, the smaller ones): tar backups of non-ASCII
# names under LANG=C.UTF-8 and LANG=C; the incremental summary counts the
# files it wrote; a killed tar backup's DEST.tmp.PID is removed by the next
# backup to DEST; a backup that failed for lack of space leaves nothing and
# a rerun into the same DEST works, as does one over a killed run's
# leftover; a restore into a read-only target says so (and nothing else);
# restoring a directory restores what is inside it; a restore that would
# overwrite a file refuses by default and --existing chooses.
source "$(dirname "$0")/lib.sh"
set -euo pipefail

V=$T/vol
mkdir -p "$V/docs/sub" "$V/dír"
head -c 300000 /dev/urandom > "$V/docs/a.bin"
head -c 200000 /dev/urandom > "$V/docs/sub/b.bin"
echo "small" > "$V/docs/small.txt"
head -c 100000 /dev/urandom > "$V/dír/fïchier.bin"
printf 'latin-1 name' > "$V/$(printf 'caf\xe9')"
tree_sums "$V" > "$T/sums0"
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" > /dev/null
check "the volume has stubs" is_stub "$V/docs/a.bin"

# ------------------------------------------------- non-ASCII names in a tar backup
for L in C.UTF-8 C; do
  rc=0; out=$(LANG=$L LC_ALL=$L "$DDP" backup "$V" "$T/T-$L.tar" --tar 2>&1) || rc=$?
  check "tar backup of non-ASCII names under LANG=$L (rc=$rc)" test $rc -eq 0
  rc=0; out=$(LANG=$L LC_ALL=$L "$DDP" restore --from "$T/T-$L.tar" --to "$T/rt-$L" "dír" "$(printf 'caf\xe9')" docs 2>&1) || rc=$?
  check "and its restore under LANG=$L (rc=$rc)" test $rc -eq 0
  check "every file back, byte for byte (LANG=$L)" diff "$T/sums0" <(tree_sums "$T/rt-$L")
done

# ------------------------------------------------- the incremental summary
"$DDP" backup "$V" "$T/B" > /dev/null
head -c 50000 /dev/urandom > "$V/docs/new1.bin"
head -c 60000 /dev/urandom > "$V/docs/new2.bin"
"$DDP" optimize "$V" > /dev/null   # the store's catalog changes too: a metadata file, not one of the 2
out=$("$DDP" backup "$V" "$T/B2" --incremental "$T/B")
check "incremental: 2 new files are '2 written'" grep -q "; 2 written," <<<"$out"
rm "$V/docs/new1.bin" "$V/docs/new2.bin"

# ------------------------------------------------- a killed tar backup
# What a killed backup leaves: DEST.tmp.PID, held by nobody.
head -c 1000 /dev/urandom > "$T/K.tar.tmp.999999"
"$DDP" backup "$V" "$T/K.tar" --tar > /dev/null &
bpid=$!; sleep 0.05; kill -9 $bpid 2>/dev/null || true; wait $bpid 2>/dev/null || true
rm -f "$T/K.tar"   # in case it finished before the kill
"$DDP" backup "$V" "$T/K.tar" --tar > /dev/null
check "the next tar backup to DEST removed what killed ones left" test -z "$(ls "$T" | grep '^K\.tar\.tmp\.' || true)"
check "and wrote DEST" test -s "$T/K.tar"
# A live one's temporary is left alone (it is locked).
: > "$T/L.tar.tmp.123"
flock "$T/L.tar.tmp.123" bash -c "'$DDP' backup '$V' '$T/L.tar' --tar > /dev/null; test -e '$T/L.tar.tmp.123'" &&
  ok "a temporary held by a live backup is not removed" || bad "a temporary held by a live backup was removed"

# ------------------------------------------------- a dir backup's leftovers
mkdir -p "$T/Dk/.ddp-backup" "$T/Dk/docs"; : > "$T/Dk/.ddp-backup/unfinished"; echo junk > "$T/Dk/docs/a.bin"
rc=0; "$DDP" backup "$V" "$T/Dk" > /dev/null 2>&1 || rc=$?
check "a backup into a killed run's unfinished DEST takes it over (rc=$rc)" test $rc -eq 0
check "and it is a complete backup" test -s "$T/Dk/.ddp-backup/manifest" -a ! -e "$T/Dk/.ddp-backup/unfinished"
restore_sums() { "$DDP" restore --from "$1" --to "$2" docs "dír" "$(printf 'caf\xe9')" > /dev/null && diff "$T/sums0" <(tree_sums "$2"); }
check "and restores right" restore_sums "$T/Dk" "$T/rDk"
mkdir -p "$T/Dn"; echo mine > "$T/Dn/notes.txt"
expect_code "a non-empty DEST that is no unfinished backup is still refused" 0x80070091 "$DDP" backup "$V" "$T/Dn"
check "and left as it was" test "$(cat "$T/Dn/notes.txt")" = mine

# ------------------------------------------------- no space left for a backup
enospc_test='D=$1; V=$2; M=$3
  "$D" backup "$V" "$M/B" > /dev/null 2>&1; echo "rc1=$?"
  [[ -e "$M/B" ]] && echo "LEFT: $(find "$M/B" | head -3 | tr "\n" " ")"
  mount -o remount,size=64m "$M" || echo REMOUNT_FAILED
  "$D" backup "$V" "$M/B" > /dev/null 2>&1; echo "rc2=$?"
  [[ -s "$M/B/.ddp-backup/manifest" ]] && echo COMPLETE; true'
on_small_fs eout "$T/full" 200k "$enospc_test" "$DDP" "$V" "$T/full"
if [[ $eout == skip ]]; then echo "skip - backup on a full disk: cannot mount a small file system here"
else
  check "a backup on a full disk fails" grep -q "^rc1=1" <<<"$eout"
  check "and leaves nothing partial" bash -c '! grep -q "^LEFT" <<<"$1"' _ "$eout"
  check "a rerun into the same DEST with room works" grep -q "^rc2=0" <<<"$eout"
  check "and makes a complete backup" grep -q COMPLETE <<<"$eout"
fi

# ------------------------------------------------- restore into a read-only target
ro_test='D=$1; B=$2; M=$3
  mount -o remount,ro "$M" || { echo REMOUNT_FAILED; exit 0; }
  "$D" restore --from "$B" --to "$M" docs/a.bin 2>&1; echo "rc=$?"'
on_small_fs rout "$T/ro" 4m "$ro_test" "$DDP" "$T/B" "$T/ro"
if [[ $rout == skip || $rout == *REMOUNT_FAILED* ]]; then echo "skip - restore into a read-only target: cannot mount here"
else
  check "a read-only target fails (rc=1)" grep -q "^rc=1" <<<"$rout"
  check "and says the file system is read-only" grep -qi "read-only" <<<"$rout"
  check "and nothing about the file not being in the backup" bash -c '! grep -q "not in the backup" <<<"$1"' _ "$rout"
fi

# ------------------------------------------------- a directory restores what is inside it
rc=0; out=$("$DDP" restore --from "$T/B" --to "$T/rdir" docs 2>&1) || rc=$?
check "restoring a directory exits 0" test $rc -eq 0
check "and brings every file below it, byte for byte" diff <(grep '\./docs/' "$T/sums0") <(tree_sums "$T/rdir")
check "the stubs below it are restored, not copied as stubs" test "$(stat -c %s "$T/rdir/docs/sub/b.bin" 2>/dev/null)" = 200000

# ------------------------------------------------- existing files
mkdir -p "$T/rex/docs"; echo "mine, newer" > "$T/rex/docs/a.bin"
rc=0; out=$("$DDP" restore --from "$T/B" --to "$T/rex" docs/a.bin docs/small.txt 2>&1) || rc=$?
check "an existing file is refused by default (rc=$rc)" test $rc -eq 1
check "with ERROR_FILE_EXISTS and the way to choose" grep -q "^docs/a.bin: 0x80070050 .*--existing" <<<"$out"
check "the existing file is untouched" test "$(cat "$T/rex/docs/a.bin")" = "mine, newer"
check "the other file is restored" test "$(cat "$T/rex/docs/small.txt")" = small
rm "$T/rex/docs/small.txt"
"$DDP" restore --from "$T/B" --to "$T/rex" --existing keep docs/a.bin > "$T/keep.out"
check "--existing keep leaves it and says so" grep -q "^docs/a.bin: 0x00000001 exists; kept" "$T/keep.out"
check "kept as it was" test "$(cat "$T/rex/docs/a.bin")" = "mine, newer"
"$DDP" restore --from "$T/B" --to "$T/rex" --existing rename docs/a.bin > /dev/null
check "--existing rename keeps the old one as NAME.~1~" test "$(cat "$T/rex/docs/a.bin.~1~")" = "mine, newer"
check "and restores NAME" diff <(grep ' \./docs/a.bin$' "$T/sums0" | cut -c1-64) <(sha256sum < "$T/rex/docs/a.bin" | cut -c1-64)
echo "changed again" > "$T/rex/docs/a.bin"
"$DDP" restore --from "$T/B" --to "$T/rex" --existing overwrite docs/a.bin > /dev/null
check "--existing overwrite replaces it" diff <(grep ' \./docs/a.bin$' "$T/sums0" | cut -c1-64) <(sha256sum < "$T/rex/docs/a.bin" | cut -c1-64)
rc=0; "$DDP" restore --from "$T/B" --to "$T/rex" --existing sometimes docs/a.bin > /dev/null 2>&1 || rc=$?
check "--existing with another value is a usage error" test $rc -eq 2

finish
