#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_compact_restore.sh: backups and restores across container compaction
# (docs/FORMAT.md "Compacted containers"; docs/BACKUP.md "Compacted
# containers"). A volume is optimized and backed up (directory and tar), then
# every container is compacted into its next generation behind a
# redirection table (tests/tools/ddp_compact_all, as gc does it; every record
# kept, so every reference goes through a table):
#   - the backups taken before restore after it (ddp restore of some and of
#     all files, and RestoreFiles through tests/tools/rsfiles), byte for byte;
#   - a full backup of the compacted volume (directory, tar) restores the
#     same way;
#   - an incremental backup whose previous backup was taken before the
#     compaction copies the new generations whole (their paths are new) and
#     lists no old one; the chain restores; so does one more incremental
#     after new files were optimized;
#   - hostile backups of a compacted store: a damaged table, a header that
#     claims a huge table, a stub whose stream map was garbage-collected: the
#     files that need them fail with 0x80565355, the others are restored;
#   - R1-R10 hold over compacted stores (directory, tar, incremental set)
#     through the recording wrapper of tests/tools/s3rules;
#   - and the same with real garbage collection: files deleted, `ddp gc
#     --full`, backups before and after, an incremental across it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/winlib.sh"
set -euo pipefail
need_tools ddp_compact_all rsfiles s3rules
CA=$TOOLS/ddp_compact_all RS=$TOOLS/rsfiles RULES=$TOOLS/s3rules

V=$T/vol
mkdir -p "$V/d" "$V/e"
head -c 1500000 /dev/urandom > "$T/base"
cp "$T/base" "$V/a.bin"
{ cat "$T/base"; head -c 300000 /dev/urandom; } > "$V/d/b.bin"
{ head -c 500000 /dev/urandom; cat "$T/base"; } > "$V/d/c.bin"
head -c 900000 /dev/urandom > "$V/e/u.bin"
head -c 70000 /dev/urandom > "$V/e/small.bin"
echo "plain" > "$V/plain.txt"
mapfile -t ALL < <(cd "$V" && find . -path ./.ddp -prune -o -type f -printf '%P\n' | sort)
tree_sums "$V" > "$T/sums0"

"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" set "$V" container_size_limit 1M > /dev/null 2>&1 || true
"$DDP" optimize "$V" > /dev/null
check "optimized: 5 stubs" test "$(count_stubs "$V")" -eq 5
STORE=$(echo "$V"/.ddp/ChunkStore/*.ddp)

sums_of() { local d=$1; shift; (cd "$d" && printf '%s\0' "${@/#/./}" | sort -z | xargs -0 -r sha256sum); }
expected_of() { local f; for f in "$@"; do awk -v f="./$f" 'substr($0, 67) == f' "$T/sums0"; done | sort -k2; }
restore_ok() { # restore_ok WHAT BACKUP DIR FILE...
  local what=$1 from=$2 dir=$3; shift 3
  local rc=0
  "$DDP" restore --from "$from" --to "$dir" "$@" > "$T/restore.out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then bad "$what: exit $rc: $(cat "$T/restore.out")"; return; fi
  if diff <(expected_of "$@") <(sums_of "$dir" "$@" | sort -k2) > "$T/diff.out"; then ok "$what"
  else bad "$what: content differs: $(cat "$T/diff.out")"; fi
}
# rsfiles_ok WHAT BACKUP: the stubs (the volume's: they never change) copied out, RestoreFiles on them.
rsfiles_ok() {
  local what=$1 from=$2 dir=$T/rs.$RANDOM
  mkdir -p "$dir"
  local f; local -a stubs=()
  for f in a.bin d/b.bin d/c.bin e/u.bin e/small.bin; do
    mkdir -p "$dir/$(dirname "$f")"; cp -a "$V/$f" "$dir/$f"; stubs+=("$dir/$f")
  done
  local rc=0
  "$RS" "$from" "${stubs[@]}" > "$T/rs.out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then bad "$what: rsfiles exit $rc: $(cat "$T/rs.out")"; return; fi
  if diff <(expected_of a.bin d/b.bin d/c.bin e/u.bin e/small.bin) \
          <(sums_of "$dir" a.bin d/b.bin d/c.bin e/u.bin e/small.bin | sort -k2) > "$T/diff.out"; then ok "$what"
  else bad "$what: content differs: $(cat "$T/diff.out")"; fi
}

# ------------------------------------------------------ backups before
"$DDP" backup "$V" "$T/B0" > /dev/null
"$DDP" backup "$V" "$T/T0.tar" --tar > /dev/null
"$CA" "$V" > "$T/compact.out"
check "compaction: every container has generation 2" \
  bash -c "! ls '$STORE'/Data '$STORE'/Stream | grep -q '\.00000001\.ccc$'"
check "compaction: some containers were compacted" grep -q -- "-> 2 kept" "$T/compact.out"

for src in B0 T0.tar; do
  restore_ok "$src (before compaction): restore one file" "$T/$src" "$T/r1-$src" d/c.bin
  restore_ok "$src (before compaction): restore every file" "$T/$src" "$T/rall-$src" "${ALL[@]}"
done
rsfiles_ok "B0 (before compaction): RestoreFiles" "$T/B0"

# ------------------------------------------------------ backups after
"$DDP" backup "$V" "$T/B1" > /dev/null
"$DDP" backup "$V" "$T/T1.tar" --tar > /dev/null
check "full backup after: it holds generation 2" bash -c "ls '$T/B1/.ddp/ChunkStore/'*/Data | grep -q '\.00000002\.ccc$'"
for src in B1 T1.tar; do
  restore_ok "$src (of the compacted store): restore one file" "$T/$src" "$T/r1-$src" e/u.bin
  restore_ok "$src (of the compacted store): restore some files" "$T/$src" "$T/r2-$src" a.bin d/b.bin plain.txt
  restore_ok "$src (of the compacted store): restore every file" "$T/$src" "$T/rall-$src" "${ALL[@]}"
done
check "T1.tar: headers, tables and records are read in one pass of the archive" grep -q " 1 archive passes" "$T/restore.out"
rsfiles_ok "B1 (of the compacted store): RestoreFiles" "$T/B1"
"$DDP" restore --from "$T/B1" --to "$T/rl" --list-containers "${ALL[@]}" > "$T/list.out"
check "--list-containers lists the header and table reads (offset 0)" grep -qE 'Data/[0-9A-F.]+ccc 0 [0-9]+$' "$T/list.out"

# ------------------------------------------------------ incremental across the compaction
out=$("$DDP" backup "$V" "$T/I1" --incremental "$T/B0")
mf=$T/I1/.ddp-backup/manifest
check "incremental: the new generations are copied whole" \
  bash -c "ls '$T/I1/.ddp/ChunkStore/'*/Data | grep -q '\.00000002\.ccc$'"
check "incremental: no piece of a new generation (.@offset)" bash -c "! find '$T/I1' -name '*.@*' | grep -q ."
check "incremental: the manifest lists no generation 1" bash -c "! grep -q '\.00000001\.ccc' '$mf'"
restore_ok "incremental across the compaction: restore every file" "$T/I1" "$T/rall-I1" "${ALL[@]}"
rsfiles_ok "incremental across the compaction: RestoreFiles" "$T/I1"
# New data after the compaction: a new container of generation 1 next to the compacted ones.
head -c 400000 /dev/urandom > "$V/new.bin"
{ cat "$T/sums0"; (cd "$V" && sha256sum ./new.bin); } | sort -k2 > "$T/sums1" && mv "$T/sums1" "$T/sums0"
"$DDP" optimize "$V" > /dev/null
check "new.bin was optimized" is_stub "$V/new.bin"
"$DDP" backup "$V" "$T/I2" --incremental "$T/I1" > /dev/null
restore_ok "second incremental: restore every file" "$T/I2" "$T/rall-I2" "${ALL[@]}" new.bin

# ------------------------------------------------------ R1-R10 through the recording wrapper
# (tests/tools/s3rules over ddp's own stores: a directory, a tar archive, an
# incremental set whose newest pieces are compacted generations)
rules_ok() { # WHAT BACKUP FILE...
  local what=$1 from=$2 r; shift 2
  rm -rf "$T/rules"
  "$RULES" rules "$from" "$T/rules" "$@" > "$T/rules.out" 2>&1 || true
  for r in R1 R2 R3 R4 R5 R6 R7 R8 R10; do check "$what: $r through the recording wrapper" grep -q "^RULE $r ok" "$T/rules.out"; done
  check "$what: the wrapper's restores are byte-identical" diff <(expected_of "$@") <(sums_of "$T/rules" "$@" | sort -k2)
}
rules_ok "B1 (compacted, directory)" "$T/B1" a.bin d/b.bin d/c.bin e/u.bin e/small.bin
rules_ok "T1.tar (compacted, tar)" "$T/T1.tar" d/c.bin e/u.bin
rules_ok "I2 (incremental across the compaction)" "$T/I2" a.bin d/b.bin e/small.bin new.bin

# ------------------------------------------------------ hostile backups of a compacted store
hostile() { rm -rf "$T/H"; cp -a "$T/B1" "$T/H"; }
# A data container that some files need and others do not: the files a
# restore fails when it is missing.
USERS=() OTHERS=() DATA1=
for c in $(cd "$T/B1" && ls .ddp/ChunkStore/*/Data/*.00000002.ccc); do
  hostile; rm "$T/H/$c"
  "$DDP" restore --from "$T/H" --to "$T/rh0.$RANDOM" "${ALL[@]}" > "$T/h0.out" 2>&1 || true
  mapfile -t USERS < <(grep ': 0x80565304' "$T/h0.out" | cut -d: -f1)
  mapfile -t OTHERS < <(grep ': 0x00000000' "$T/h0.out" | cut -d: -f1)
  if [[ ${#USERS[@]} -ge 1 && ${#OTHERS[@]} -ge 1 ]]; then DATA1=$c; break; fi
done
check "hostile: a data container some files need, not all (${#USERS[@]} / ${#OTHERS[@]})" test -n "$DATA1"
hostile_case() { # WHAT: H prepared; USERS fail with 0x80565355, OTHERS restored
  local what=$1 rc=0 f good=1
  rm -rf "$T/rh"
  "$DDP" restore --from "$T/H" --to "$T/rh" "${ALL[@]}" > "$T/h.out" 2>&1 || rc=$?
  for f in "${USERS[@]}"; do grep -q "^$f: 0x80565355" "$T/h.out" || good=0; [[ -e $T/rh/$f ]] && good=0; done
  if [[ $good -eq 1 && ${#OTHERS[@]} -gt 0 ]] && diff <(expected_of "${OTHERS[@]}") <(sums_of "$T/rh" "${OTHERS[@]}" | sort -k2) > /dev/null \
     && [[ $rc -ne 0 ]]; then ok "hostile: $what"
  else bad "hostile: $what: rc=$rc $(cat "$T/h.out")"; fi
}
hostile; printf '\xff' | dd of="$T/H/$DATA1" bs=1 seek=140 conv=notrunc status=none
hostile_case "a damaged redirection table"
# A header claiming a 256 MiB table (the format's limit), its checksum good.
hostile; "$CA" --set-redirect-len "$T/H/$DATA1" $((1 << 28))
hostile_case "a header claiming a huge table"
# A stub whose stream map was garbage-collected: a copy of the volume is
# compacted once more without that record, and backed up.
cp -a "$V" "$T/Vc"
SID=$(od -An -tu4 -j112 -N4 "$V/e/u.bin" | tr -d ' ')
SOFF=$(od -An -tu8 -j120 -N8 "$V/e/u.bin" | tr -d ' ')
"$CA" "$T/Vc" --drop "stream:$SID:$SOFF" > /dev/null
"$DDP" backup "$T/Vc" "$T/Bc" > /dev/null
rc=0; "$DDP" restore --from "$T/Bc" --to "$T/rc" "${ALL[@]}" new.bin > "$T/c.out" 2>&1 || rc=$?
check "hostile: a stub naming a collected stream map fails (0x80565355)" grep -q "^e/u.bin: 0x80565355" "$T/c.out"
check "hostile: ... the message says the record was garbage-collected" grep -q "garbage collection removed it" "$T/c.out"
check "hostile: ... nothing is left at its path" test ! -e "$T/rc/e/u.bin"
check "hostile: ... the other files are restored" \
  diff <(expected_of a.bin d/b.bin d/c.bin e/small.bin new.bin) <(sums_of "$T/rc" a.bin d/b.bin d/c.bin e/small.bin new.bin | sort -k2)
check "hostile: ... exit status 1" test $rc -eq 1

# ------------------------------------------------------ real gc: ddp gc --full after deleting files
W=$T/wvol
mkdir -p "$W"
head -c 1000000 /dev/urandom > "$T/wbase"
for i in 1 2 3; do
  { head -c $((300000 * i)) "$T/wbase"; head -c 700000 /dev/urandom; } > "$W/keep$i.bin"
  head -c 700000 /dev/urandom > "$W/gone$i.bin"
done
(cd "$W" && sha256sum keep1.bin keep2.bin keep3.bin gone1.bin gone2.bin gone3.bin) | sort -k2 > "$T/wsums"
"$DDP" enable "$W" --usage Backup > /dev/null
"$DDP" set "$W" container_size_limit 1M > /dev/null
"$DDP" optimize "$W" > /dev/null
"$DDP" backup "$W" "$T/W0" > /dev/null
rm "$W/gone1.bin" "$W/gone2.bin" "$W/gone3.bin"
"$DDP" gc "$W" --full > "$T/wgc.out"
WSTORE=$(echo "$W"/.ddp/ChunkStore/*.ddp)
check "gc --full compacted containers (generation 2)" bash -c "ls '$WSTORE/Data' | grep -q '\.00000002\.ccc$'"
"$DDP" backup "$W" "$T/W1" > /dev/null
"$DDP" backup "$W" "$T/W2" --incremental "$T/W0" > /dev/null
"$DDP" backup "$W" "$T/W3.tar" --tar > /dev/null
wrestore_ok() { # WHAT BACKUP DIR FILE...
  local what=$1 from=$2 dir=$3; shift 3
  local rc=0 f
  "$DDP" restore --from "$from" --to "$dir" "$@" > "$T/wrestore.out" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then bad "$what: exit $rc: $(cat "$T/wrestore.out")"; return; fi
  if diff <(for f in "$@"; do grep " $f\$" "$T/wsums"; done | sort -k2) <(cd "$dir" && sha256sum "$@" | sort -k2) > /dev/null
  then ok "$what"; else bad "$what: content differs"; fi
}
wrestore_ok "gc: the backup before gc restores every file, deleted ones too" "$T/W0" "$T/w0" keep1.bin keep2.bin keep3.bin gone1.bin gone2.bin gone3.bin
wrestore_ok "gc: a full backup after gc restores every file" "$T/W1" "$T/w1" keep1.bin keep2.bin keep3.bin
wrestore_ok "gc: a tar backup after gc restores every file" "$T/W3.tar" "$T/w3" keep1.bin keep2.bin keep3.bin
wrestore_ok "gc: an incremental across gc restores every file" "$T/W2" "$T/w2" keep1.bin keep2.bin keep3.bin
wrestore_ok "gc: an incremental across gc restores one file" "$T/W2" "$T/w2b" keep2.bin
no_old_gen() { # the incremental lists no generation 1 of a container gc compacted
  local id
  for id in $(cd "$T/W1" && ls .ddp/ChunkStore/*/Data | grep -E '\.00000002\.ccc$' | cut -d. -f1); do
    grep -q "Data/$id\.00000001\.ccc" "$T/W2/.ddp-backup/manifest" && return 1
  done
  return 0
}
check "gc: the incremental lists no removed generation" no_old_gen
mkdir -p "$T/wrs"; cp -a "$W"/keep*.bin "$T/wrs/"
check "gc: RestoreFiles from the incremental across gc" "$RS" "$T/W2" "$T/wrs/keep1.bin" "$T/wrs/keep2.bin" "$T/wrs/keep3.bin"
check "gc: ... byte for byte" diff <(grep keep "$T/wsums") <(cd "$T/wrs" && sha256sum keep1.bin keep2.bin keep3.bin | sort -k2)

finish
