#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_security_restore.sh: restore never writes outside --to and never
# follows a link (issue 12, findings 3 and 4; docs/SECURITY.md, restore side).
#
#  1. Hostile backups, for both store kinds (directory and tar): a link entry
#     whose target is an absolute path outside --to with a file entry below
#     it, the same with the file asked for alone, a path listed twice, a tar
#     member named "../x" or "/x"; each refused with its code, for restore
#     and for --list-containers, and nothing is created or changed outside
#     --to (a before/after listing of everything around the target).
#  2. A link restored a moment before (or planted by a user) is never
#     followed by a later restore: ERROR_ACCESS_DENIED.
#  3. The race: root restores a user's directory into the live tree while
#     that user (created here, removed at the end) keeps replacing their
#     directory, and the restore's staging directory, by symbolic links to a
#     root-only directory. DDP_RACE_SECONDS (default 30) bound it; every
#     attempt is counted. No file outside the target is created, replaced or
#     changes owner, and no root-only byte becomes readable by the user.
#  4. Holes stay holes: a file of DDP_SPARSE_SIZE (default 2 GiB) with one
#     4 KiB block allocated is restored (optimized, from a directory and a
#     tar backup; and as a plain file of a plain copy) with its allocation.
source "$(dirname "$0")/lib.sh"
set -euo pipefail

[[ $DDP == /* ]] || DDP=$PWD/$DDP
SEAL=
for c in "${DDP_BUILD_DIR:-}/ddp_manifest_seal" "$(dirname "$DDP")/ddp_manifest_seal"; do
  [[ -x $c ]] && { SEAL=$c; break; }
done
[[ -n $SEAL ]] || { echo "ddp_manifest_seal not built"; exit 1; }

V=$T/vol
OUT=$T/outside              # what hostile links point at
mkdir -p "$V/evil" "$V/docs" "$OUT"
head -c 100000 /dev/urandom > "$V/evil/x.bin"
head -c 100000 /dev/urandom > "$V/docs/y.bin"
echo plain > "$V/evil/p.txt"
echo "not to be touched" > "$OUT/x.bin"
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" > /dev/null
check "the volume has its stubs" is_stub "$V/evil/x.bin"
"$DDP" backup "$V" "$T/B" > /dev/null
"$DDP" backup "$V" "$T/T.tar" --tar > /dev/null

# listing: everything under $T (the test's whole area: the volume, the
# backups, the directory hostile links point at) except the restore targets
# ($T/r*, $T/live), with inode, size, owner, mode, mtime, and checksums.
listing() {
  { find "$T" -mindepth 1 \( -path "$T/r*" -o -path "$T/live" -o -path "$T/racer*" \) -prune -o -printf '%p %i %s %U:%G %m %T@ %y %l\n'
    find "$OUT" -type f -exec sha256sum {} +
  } | sort
}

# mf_edit SRC_MANIFEST DST_MANIFEST PYTHON: edit the manifest's lines (list
# `lines`, without the checksum line) with PYTHON, then seal it again.
mf_edit() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
src, dst, code = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(src, 'rb').read().decode('latin-1').split('\n')
lines = [l for l in lines if l and not l.startswith('checksum ')]
def entries(delta):
    for i, l in enumerate(lines):
        if l.startswith('entries '):
            lines[i] = 'entries %d' % (int(l.split()[1]) + delta)
def to_link(path, target):
    for i, l in enumerate(lines):
        t = l.split(' ')
        if t[0] == 'D' and t[-1] == path:      # D member mode uid gid mtime path
            lines[i] = ' '.join(['L', t[1], t[3], t[4], t[5], target, path])
            return
    raise SystemExit('no D ' + path)
exec(code)
open(dst, 'wb').write(('\n'.join(lines) + '\n').encode('latin-1'))
EOF
  "$SEAL" "$2"
}

# hostile_dir NAME PYTHON: a copy of the directory backup with an edited manifest.
hostile_dir() {
  cp -a "$T/B" "$T/$1"
  mf_edit "$T/B/.ddp-backup/manifest" "$T/$1/.ddp-backup/manifest" "$2"
}

# hostile_tar NAME PYTHON [MEMBER_PYTHON]: the tar backup rebuilt with an
# edited manifest; MEMBER_PYTHON may change members (TarInfo m).
hostile_tar() {
  local name=$1 code=$2 mcode=${3:-}
  tar -xOf "$T/T.tar" .ddp-backup/manifest > "$T/$name.manifest"
  mf_edit "$T/$name.manifest" "$T/$name.manifest" "$code"
  python3 - "$T/T.tar" "$T/$name" "$T/$name.manifest" "$mcode" <<'EOF'
import sys, tarfile, io
src, dst, mf, mcode = sys.argv[1:5]
data = open(mf, 'rb').read()
s = tarfile.open(src)
d = tarfile.open(dst, 'w', format=tarfile.PAX_FORMAT)
for m in s.getmembers():
    f = s.extractfile(m) if m.isfile() else None
    if m.name == '.ddp-backup/manifest':
        m.size = len(data)
        f = io.BytesIO(data)
    exec(mcode)
    d.addfile(m, f)
d.close()
EOF
}

# refused WHAT CODE BACKUP ARGS...: restore (into a fresh $T/r-*) fails with
# CODE, and nothing outside the target changed.
N=0
refused() {
  local what=$1 code=$2 from=$3; shift 3
  N=$((N+1))
  local before; before=$(listing)
  expect_code "$what" "$code" "$DDP" restore --from "$from" --to "$T/r-$N" "$@"
  local after; after=$(listing)
  if [[ "$before" == "$after" ]]; then ok "$what: nothing outside --to changed"
  else bad "$what: outside --to changed: $(diff <(echo "$before") <(echo "$after") | head -5)"; fi
  if [[ -d $T/r-$N ]] && find "$T/r-$N" -name '.ddp-restore.*' | grep -q .; then bad "$what: a staging directory was left"
  else ok "$what: no staging directory left"; fi
}
# listed WHAT CODE BACKUP ARGS...: the same for --list-containers (in $T/r-list-N as cwd).
listed() {
  local what=$1 code=$2 from=$3; shift 3
  N=$((N+1))
  mkdir -p "$T/r-list-$N"
  local before; before=$(listing)
  local rc=0 out
  out=$(cd "$T/r-list-$N" && TMPDIR=$T/r-list-$N "$DDP" restore --from "$from" --list-containers "$@" 2>&1) || rc=$?
  if [[ $rc -ne 0 && $out == *"$code"* ]]; then ok "$what ($code)"; else bad "$what: rc=$rc: $out"; fi
  local after; after=$(listing)
  if [[ "$before" == "$after" ]]; then ok "$what: nothing outside changed"
  else bad "$what: outside changed: $(diff <(echo "$before") <(echo "$after") | head -5)"; fi
  check "$what: its temporary directory is gone" test -z "$(ls -A "$T/r-list-$N")"
}

# ------------------------------------------------------------ hostile backups
LINKOUT="to_link('/evil', '$OUT')"
hostile_dir Hlink "$LINKOUT"
hostile_tar Hlink.tar "$LINKOUT" "
if m.name == 'evil':
    m.type = tarfile.SYMTYPE; m.linkname = '$OUT'; m.mode = 0o777"
for H in Hlink Hlink.tar; do
  refused "$H: link out + the file below it" 0x8056531D "$T/$H" evil evil/x.bin
  check "$H: the link entry is a symlink in --to, not followed" test "$(readlink "$T/r-$N/evil")" = "$OUT"
  check "$H: nothing was written through it" test "$(cat "$OUT/x.bin")" = "not to be touched"
  refused "$H: the file below the link alone" 0x8056531D "$T/$H" evil/x.bin
  refused "$H: the plain file below the link" 0x8056531D "$T/$H" evil/p.txt
  listed "$H: --list-containers" 0x8056531D "$T/$H" evil/x.bin
done

# A link the restore made a moment before (a genuine backup now): never followed.
N=$((N+1)); mkdir -p "$T/r-$N"; ln -s "$OUT" "$T/r-$N/evil"
before=$(listing)
expect_code "a symlink in --to on the way is refused" 0x80070005 "$DDP" restore --from "$T/B" --to "$T/r-$N" evil/x.bin
expect_code "also for a directory restore, tar" 0x80070005 "$DDP" restore --from "$T/T.tar" --to "$T/r-$N" evil
check "nothing outside changed" test "$before" = "$(listing)"
# The symlink at the restored path itself is not followed either: it is the
# existing file (refused; with --existing overwrite replaced, not written through).
N=$((N+1)); mkdir -p "$T/r-$N/docs"; ln -s "$OUT/x.bin" "$T/r-$N/docs/y.bin"
expect_code "a symlink at the path exists: refused by default" 0x80070050 "$DDP" restore --from "$T/B" --to "$T/r-$N" docs/y.bin
"$DDP" restore --from "$T/B" --to "$T/r-$N" --existing overwrite docs/y.bin > /dev/null
check "--existing overwrite replaces the symlink itself" test -f "$T/r-$N/docs/y.bin" -a ! -L "$T/r-$N/docs/y.bin"
check "and wrote nothing through it" test "$(cat "$OUT/x.bin")" = "not to be touched"

# Absolute paths, '..', duplicates in a manifest: the whole backup is refused.
hostile_dir Hdotdot "lines[:] = [l.replace(' /docs/y.bin', ' /docs/../../outside/y.bin') for l in lines]"
hostile_dir Habs "lines[:] = [l.replace(' /docs/y.bin', ' docs/y.bin') for l in lines]"
hostile_dir Hdup "
i = [k for k, l in enumerate(lines) if l.endswith(' /docs/y.bin')][0]
lines.insert(i + 1, lines[i]); entries(1)"
hostile_tar Hdup.tar "
i = [k for k, l in enumerate(lines) if l.endswith(' /docs/y.bin')][0]
lines.insert(i + 1, lines[i]); entries(1)"
for H in Hdotdot Habs Hdup Hdup.tar; do
  refused "$H: refused" 0x8056531D "$T/$H" docs/y.bin
  listed "$H: --list-containers refused" 0x8056531D "$T/$H" docs/y.bin
done
# Tar members that name something else than their manifest entry ("../x", "/x").
hostile_tar Hmdot.tar "" "
if m.name == 'docs/y.bin': m.name = '../outside/y.bin'"
hostile_tar Hmabs.tar "" "
if m.name == 'docs/y.bin': m.name = '$OUT/y.bin'"
for H in Hmdot.tar Hmabs.tar; do
  refused "$H: a member named outside" 0x8056531D "$T/$H" docs/y.bin
done
check "no y.bin appeared outside" test ! -e "$OUT/y.bin" -a ! -e "$T/y.bin"

# ------------------------------------------------------------------ the race
# A user (created here) swaps their directory, and the staging directory of a
# restore into their own directory, for symlinks to a root-only directory
# while root restores their files into the live tree.
RACE_SECONDS=${DDP_RACE_SECONDS:-30}
RUSER=ddpsec$$
PY=/usr/bin/python3
if [[ $(id -u) -ne 0 ]] || ! command -v useradd > /dev/null || [[ ! -x $PY ]]; then
  echo "skip - the race: needs root, useradd and /usr/bin/python3"
else
  useradd -M -N -s /usr/sbin/nologin "$RUSER"
  trap 'userdel "$RUSER" 2>/dev/null || true; cleanup' EXIT
  RUID=$(id -u "$RUSER")
  chmod 755 "$T"
  L=$T/live                       # the live volume: root's, users own their directories
  SECRET=$T/secret                # root-only
  mkdir -p "$L/u/docs" "$SECRET"
  chmod 700 "$SECRET"
  for i in 1 2 3 4 5 6 7 8; do
    head -c $((40000 + i * 1000)) /dev/urandom > "$L/u/docs/f$i.bin"
    printf 'ROOTONLY-SECRET-%d\n' "$i" > "$SECRET/f$i.bin"
  done
  cp "$SECRET/f1.bin" "$SECRET/sentinel"
  "$DDP" enable "$L" --usage Backup > /dev/null
  "$DDP" optimize "$L" > /dev/null
  chown -R "$RUID" "$L/u"
  "$DDP" backup "$L" "$T/LB" > /dev/null
  chmod 755 "$T/LB"
  secret_state() { (cd "$SECRET" && find . -printf '%p %i %s %U:%G %m %T@ %y\n' | sort; sha256sum ./*); }
  S0=$(secret_state)
  O0=$(listing)
  cat > "$T/racer.py" <<'EOF'
import os, sys, time
base, secret, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
d = os.path.join(base, 'docs')
real = os.path.join(base, 'docs.real')
lnk = os.path.join(base, 'docs.lnk')
try: os.symlink(secret, lnk)
except FileExistsError: pass
end = time.time() + seconds
swaps = 0
while time.time() < end:
    try:
        os.rename(d, real); os.rename(lnk, d)       # docs is now a link to the root-only directory
        os.rename(d, lnk); os.rename(real, d)       # and back
        swaps += 1
    except OSError:
        pass
    # a restore's staging directory in this directory: replace it by a link too
    try:
        for n in os.listdir(base):
            if n.startswith('.ddp-restore.'):
                p = os.path.join(base, n)
                os.rename(p, os.path.join(base, 'stolen' + str(swaps)))
                os.symlink(secret, p)
                swaps += 1
    except OSError:
        pass
print(swaps)
EOF
  half=$(( RACE_SECONDS / 2 > 0 ? RACE_SECONDS / 2 : 1 ))
  attempts=0; restores=0
  for target in "$L" "$L/u"; do   # --to the volume; --to the user's own directory
    if [[ $target == "$L" ]]; then p=u/docs; else p=docs; fi
    # The user's own restore target must be theirs for the test to mean anything.
    setpriv --reuid="$RUID" --regid=65534 --clear-groups "$PY" "$T/racer.py" "$L/u" "$SECRET" "$half" > "$T/racer.out" &
    rpid=$!
    end=$(( $(date +%s) + half ))
    while (( $(date +%s) < end )); do
      "$DDP" restore --from "$T/LB" --to "$target" --existing overwrite "$p" > /dev/null 2>&1 || true
      restores=$((restores+1)); attempts=$((attempts+9))
    done
    wait $rpid || true
    echo "race (--to $target): $restores restores so far, user swaps: $(cat "$T/racer.out")"
    # put the user's directory back if the racer stopped mid-swap
    [[ -L $L/u/docs && -d $L/u/docs.real ]] && { rm "$L/u/docs"; mv "$L/u/docs.real" "$L/u/docs"; }
  done
  echo "race: $restores restores, $attempts path placements attempted in ${RACE_SECONDS}s"
  check "race: restores ran ($restores)" test "$restores" -ge 10
  check "race: the root-only directory is unchanged (no file created, replaced or re-owned)" test "$S0" = "$(secret_state)"
  O1=$(listing)
  if [[ "$O0" == "$O1" ]]; then ok "race: nothing else outside the target changed"
  else bad "race: outside the target changed: $(diff <(echo "$O0") <(echo "$O1") | head -5)"; fi
  leaked=$(find "$T" /tmp -xdev -path "$SECRET" -prune -o -type f -user "$RUID" -print0 2>/dev/null |
           xargs -0 -r grep -l ROOTONLY-SECRET 2>/dev/null || true)
  check "race: no file the user owns holds a root-only byte" test -z "$leaked"
  readable=$(setpriv --reuid="$RUID" --regid=65534 --clear-groups bash -c \
    "grep -rls ROOTONLY-SECRET '$T' 2>/dev/null" || true)
  check "race: the user can read no root-only byte anywhere under the test area" test -z "$readable"
  userdel "$RUSER" 2>/dev/null || true
  trap cleanup EXIT
fi

# ------------------------------------------------------------- holes stay holes
SPARSE=${DDP_SPARSE_SIZE:-2G}
S=$T/svol
mkdir -p "$S"
truncate -s "$SPARSE" "$S/sparse.img"
printf 'one block of data' | dd of="$S/sparse.img" bs=1 seek=1048576 conv=notrunc status=none
cp -a --sparse=always "$S" "$T/splain"   # a plain copy, before optimizing: a plain file
"$DDP" enable "$S" --usage Backup > /dev/null
"$DDP" optimize "$S" > /dev/null
check "the sparse file is optimized" is_stub "$S/sparse.img"
"$DDP" backup "$S" "$T/SB" > /dev/null
"$DDP" backup "$S" "$T/ST.tar" --tar > /dev/null
for from in SB ST.tar splain; do
  "$DDP" restore --from "$T/$from" --to "$T/rs-$from" sparse.img > /dev/null
  blocks=$(stat -c %b "$T/rs-$from/sparse.img")
  check "$from: restored sparse file has its size" test "$(stat -c %s "$T/rs-$from/sparse.img")" -eq "$(stat -c %s "$T/splain/sparse.img")"
  check "$from: and at most 64 KiB allocated ($blocks blocks of 512)" test "$blocks" -le 128
  check "$from: and its bytes" cmp -s "$T/rs-$from/sparse.img" "$T/splain/sparse.img"
done

finish
