#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_mount.sh: `ddp mount`, mounted for real (needs /dev/fuse and
# fusermount3; skipped with a message where they are absent).
#
# An optimized volume is mounted and every file read through the mount must
# equal the original (whole files, sizes, random ranges, 4 concurrent readers,
# readers while `ddp optimize` runs, and while `ddp gc --full` compacts the
# store). Writes through the mount rehydrate
# (owner, mode and mtime kept until the write), appends, truncates, O_TRUNC;
# a job that optimizes a file while it is open for writing loses no write.
# The tree passes through (rename, mkdir, unlink, symlink, hard link, xattrs,
# statfs, umask, owners of what others create); .ddp is hidden; a user reads
# only what the mode lets them read. Bad input: a corrupt chunk fails the read
# with EIO and the log names the file (never wrong bytes), a forged stub reads
# as its 232 bytes, mounting a non-volume is a clear error; a chunk whose
# primary record is damaged reads from its hotspot copy (ddp cat and the
# mount), and with the copy damaged too fails with EIO. Every mount runs in
# the foreground in the background of this script and must exit 0 when
# unmounted (the sanitizers' findings would make it fail); a trap unmounts
# whatever a failing test left mounted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mountlib.sh"

if [[ ! -e /dev/fuse ]] || ! command -v fusermount3 > /dev/null; then
  echo "skip - ddp mount: /dev/fuse or fusermount3 is absent on this machine (Debian package fuse3)"
  finish
  exit 0
fi

stat_sig() { stat -c '%a %u %g %Y' "$1"; }   # mode owner group mtime
not_stub() { ! is_stub "$1"; }

chmod 711 "$T"
V=$T/vol
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$V" 3 > /dev/null
# Files for the write tests and a big file (partly repeated, partly random).
python3 - "$V" << 'EOF'
import os, random, sys
v = sys.argv[1]
rng = random.Random(7)
os.makedirs(os.path.join(v, "t"), exist_ok=True)
for i in range(1, 9):
    with open(os.path.join(v, "t", f"w{i}.bin"), "wb") as f:
        f.write(rng.randbytes(200_000 + i * 1000))
block = rng.randbytes(1 << 20)
with open(os.path.join(v, "t", "big.bin"), "wb") as f:
    for i in range(24):
        f.write(block if i % 3 else rng.randbytes(1 << 20))
EOF
cp -a "$V" "$T/orig"
O=$T/orig
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" --quiet
check "the volume is optimized ($(count_stubs "$V") stubs)" test "$(count_stubs "$V")" -gt 100
# A copy for the corrupt-chunk case, taken now: every chunk in its store belongs to some file.
V2=$T/vol2
cp -a "$V" "$V2"

# ---- a directory that is not a volume ----
mkdir -p "$T/m0"
expect_code "ddp mount on a directory that is not a volume" 0x80565323 "$DDP" mount "$O" "$T/m0"
check "... and nothing was mounted" bash -c "! mountpoint -q '$T/m0'"
check "ddp mount with the mount point inside the volume is refused" bash -c "! '$DDP' mount '$V' '$V/t' 2>/dev/null"
check "ddp umount on a directory that is not mounted fails" bash -c "! '$DDP' umount '$T/m0' 2>/dev/null"

# ---- mount ----
M=$T/m
LOG=$T/mount.log
OPTS=()
[[ $(id -u) -eq 0 ]] && OPTS=(-o allow_other)
if ! mount_vol "$V" "$M" "$LOG" "${OPTS[@]}"; then
  bad "ddp mount $V $M"
  finish
  exit 1
fi
MPID=$MOUNT_PID
ok "ddp mount $V $M"
check "the mount is a fuse.ddp file system" bash -c "grep -q ' $M fuse.ddp ' /proc/self/mounts"

# kernel_ra MOUNTPOINT KIB LOG: the kernel's read-ahead of the mount becomes
# KIB (half of --readahead-mb) when we are root; otherwise it stays at the
# kernel's default and the log says why. Set by the daemon once mounted.
kernel_ra() {
  local mnt=$1 want=$2 log=$3 knob i got
  knob=/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb
  if [[ $(id -u) -eq 0 && -w $knob ]]; then
    for ((i = 0; i < 100; i++)); do
      got=$(cat "$knob")
      [[ $got == "$want" ]] && break
      sleep 0.05
    done
    check "kernel read-ahead of $mnt is $want KiB ($knob: $got)" test "$got" = "$want"
    for ((i = 0; i < 100; i++)); do grep -q "kernel read-ahead of $mnt: $want KiB" "$log" && break; sleep 0.05; done
    check "... and the log says so" grep -q "kernel read-ahead of $mnt: $want KiB" "$log"
  else
    for ((i = 0; i < 100; i++)); do grep -q "kernel read-ahead of $mnt stays" "$log" && break; sleep 0.05; done
    check "not root: the kernel read-ahead of $mnt stays, and the log says why" grep -q "only root may set it" "$log"
  fi
}
kernel_ra "$M" 4096 "$LOG"

# ---- every file reads as itself ----
ORIG_SUMS=$T/orig.sums
tree_sums "$O" > "$ORIG_SUMS"
check "every file read through the mount equals the original" diff "$ORIG_SUMS" <(tree_sums "$M")
sizes() { (cd "$1" && find . -path ./.ddp -prune -o -type f -printf '%s %p\n' | sort -k2); }
check "every size through the mount is the original size" diff <(sizes "$O") <(sizes "$M")
check "modes, owners and mtimes pass through" diff <(cd "$O" && find . -type f -printf '%m %U %G %T@ %p\n' | sort -k5) \
  <(cd "$M" && find . -type f -printf '%m %U %G %T@ %p\n' | sort -k5)
check "the files are stubs on the volume" is_stub "$V/t/big.bin"
check ".ddp is not listed" bash -c "! ls -a '$M' | grep -qx .ddp"
check ".ddp cannot be looked up" bash -c "! stat '$M/.ddp' >/dev/null 2>&1 && ! ls '$M/.ddp/Settings' >/dev/null 2>&1"
check ".ddp cannot be created" bash -c "! mkdir '$M/.ddp' 2>/dev/null"

ranges_ok=1
for ((i = 0; i < 40; i++)); do
  f=t/big.bin
  ((i % 2)) && f=release-2026.11.02/dist/bundle.js
  size=$(stat -c %s "$O/$f")
  off=$(( (RANDOM * 32768 + RANDOM) % size ))
  len=$(( (RANDOM % 300000) + 1 ))
  a=$(dd if="$O/$f" iflag=skip_bytes,count_bytes skip=$off count=$len bs=64K status=none | sha256sum)
  b=$(dd if="$M/$f" iflag=skip_bytes,count_bytes skip=$off count=$len bs=64K status=none | sha256sum)
  [[ "$a" == "$b" ]] || { ranges_ok=0; echo "range $f $off+$len differs"; }
done
check "40 random ranges read through the mount equal the originals" test $ranges_ok -eq 1
check "4 KiB reads at odd offsets" cmp <(dd if="$M/t/big.bin" bs=4096 skip=1001 count=7 status=none) \
  <(dd if="$O/t/big.bin" bs=4096 skip=1001 count=7 status=none)

want=$(sha256sum < "$O/t/big.bin")
rp=()
for i in 1 2 3 4; do (sha256sum < "$M/t/big.bin" > "$T/reader$i") & rp+=($!); done
wait "${rp[@]}"
readers_ok=1
for i in 1 2 3 4; do [[ "$(cat "$T/reader$i")" == "$want" ]] || readers_ok=0; done
check "4 concurrent readers of one big optimized file all read it right" test $readers_ok -eq 1

# ---- writes rehydrate ----
f=t/w1.bin
before=$(stat_sig "$V/$f")
exec 3<> "$M/$f"
check "opening an optimized file for writing rehydrates it (a plain file on the volume)" not_stub "$V/$f"
check "... with its content" cmp "$V/$f" "$O/$f"
check "... and its mode, owner and mtime, before the write ($before)" test "$(stat_sig "$V/$f")" == "$before"
printf 'HEAD' >&3
exec 3>&-
check "a write at the start lands in the file" cmp "$V/$f" <(printf 'HEAD'; tail -c +5 "$O/$f")
check "... and reads back through the mount" cmp "$M/$f" "$V/$f"

f=t/w2.bin
echo "appended line" >> "$M/$f"
check "an append to an optimized file" cmp "$V/$f" <(cat "$O/$f"; echo "appended line")
check "... reads back through the mount" cmp "$M/$f" "$V/$f"

f=t/w3.bin
truncate -s 5000 "$M/$f"
check "truncate (to 5000) of an optimized file" cmp "$V/$f" <(head -c 5000 "$O/$f")
check "... size through the mount" test "$(stat -c %s "$M/$f")" -eq 5000

f=t/w4.bin
mode4=$(stat -c %a "$V/$f")
: > "$M/$f"
check "O_TRUNC of an optimized file empties it" test "$(stat -c %s "$V/$f")" -eq 0
check "... keeping its mode" test "$(stat -c %a "$V/$f")" == "$mode4"

f=release-2026.11.01/dist/bundle.js
dd if=/dev/zero of="$M/$f" bs=1 count=10 seek=100000 conv=notrunc status=none
check "an overwrite in the middle (dd conv=notrunc)" cmp "$M/$f" <(head -c 100000 "$O/$f"; head -c 10 /dev/zero; tail -c +100011 "$O/$f")
check "... is in the volume's plain file" cmp "$V/$f" "$M/$f"

f=t/w6.bin
chmod 640 "$M/$f"
check "chmod of an optimized file keeps it a stub" is_stub "$V/$f"
check "... with the new mode" test "$(stat -c %a "$V/$f")" == 640
touch -c -d '2020-01-02 03:04:05' "$M/$f"   # -c: utimensat on the name (plain touch opens for writing)
check "utimens of an optimized file keeps it a stub" is_stub "$V/$f"
check "... with the new mtime" test "$(stat -c %Y "$M/$f")" -eq "$(date -d '2020-01-02 03:04:05' +%s)"
python3 -c "import os,sys; os.setxattr(sys.argv[1], 'user.ddptest', b'v1')" "$M/$f" 2> /dev/null && {
  check "an xattr set through the mount reads back" test "$(python3 -c "import os,sys; print(os.getxattr(sys.argv[1], 'user.ddptest').decode())" "$M/$f")" == v1
  check "... it is on the volume's file" test "$(python3 -c "import os,sys; print(os.getxattr(sys.argv[1], 'user.ddptest').decode())" "$V/$f")" == v1
  check "... which is still a stub" is_stub "$V/$f"
  check "... and listxattr shows it" bash -c "python3 -c \"import os,sys; print(os.listxattr(sys.argv[1]))\" '$M/$f' | grep -q ddptest"
} || echo "skip - xattrs: the file system under $T does not take user xattrs"

# ---- the tree passes through ----
mv "$M/release-2026.11.03/src/module01.txt" "$M/release-2026.11.03/renamed.txt"
check "rename of an optimized file" cmp "$M/release-2026.11.03/renamed.txt" "$O/release-2026.11.03/src/module01.txt"
check "... still a stub on the volume" is_stub "$V/release-2026.11.03/renamed.txt"
check "... the old name is gone" test ! -e "$M/release-2026.11.03/src/module01.txt"
mv "$M/release-2026.11.03/assets" "$M/release-2026.11.03/assets2"
check "rename of a directory" diff <(tree_sums "$O/release-2026.11.03/assets") <(tree_sums "$M/release-2026.11.03/assets2")
mkdir "$M/newdir"
check "mkdir" test -d "$V/newdir"
(umask 002 && echo hello > "$M/newdir/created.txt" && mkdir "$M/newdir/sub")
check "a new file has its content" test "$(cat "$V/newdir/created.txt")" == hello
check "the caller's umask 002 is applied once (664, 775)" test "$(stat -c %a "$V/newdir/created.txt") $(stat -c %a "$V/newdir/sub")" == "664 775"
ln -s ../t/w5.bin "$M/newdir/link"
check "symlink" test "$(readlink "$M/newdir/link")" == ../t/w5.bin
check "... reads through" cmp "$M/newdir/link" "$O/t/w5.bin"
check "... is a symlink on the volume" test -L "$V/newdir/link"
ln "$M/t/w5.bin" "$M/newdir/hard"
check "a hard link to an optimized file" cmp "$M/newdir/hard" "$O/t/w5.bin"
check "... is one inode on the volume (rehydrated first)" test "$(stat -c %i "$V/newdir/hard")" == "$(stat -c %i "$V/t/w5.bin")"
check "... with 2 links" test "$(stat -c %h "$V/t/w5.bin")" -eq 2
rm "$M/newdir/hard"
check "unlink" test ! -e "$V/newdir/hard"
rm "$M/newdir/sub" -r
check "rmdir" test ! -e "$V/newdir/sub"
check "statfs passes through" test "$(stat -f -c '%b %S' "$M")" == "$(stat -f -c '%b %S' "$V")"

# ---- a job running meanwhile ----
# Readers while `ddp optimize` runs (it optimizes the files rehydrated above).
EXP=$T/expected.sums
tree_sums "$M" > "$EXP"
(for i in 1 2 3; do tree_sums "$M" > "$T/during.$i"; done) &
RPID=$!
"$DDP" optimize "$V" --quiet > "$T/job.out" 2>&1
jobrc=$?
wait "$RPID"
check "ddp optimize while readers read through the mount" test $jobrc -eq 0
during_ok=1
for i in 1 2 3; do diff -q "$EXP" "$T/during.$i" > /dev/null || during_ok=0; done
check "... every reader read the right content" test $during_ok -eq 1
check "... the files written above are stubs again" is_stub "$V/t/w2.bin"
check "... and still read right" cmp "$M/t/w2.bin" <(cat "$O/t/w2.bin"; echo "appended line")

# gc compacts the store while the mount reads: files deleted through the
# mount, then `ddp gc --full` (new generations of the containers, the old
# files removed) with readers running; the mount keeps reading every file
# right, through the descriptors it holds or the catalog it reloads.
rm -rf "$M/release-2026.11.02"
EXP2=$T/expected2.sums
tree_sums "$M" > "$EXP2"
(for i in 1 2 3; do tree_sums "$M" > "$T/gcduring.$i"; done) &
RPID=$!
"$DDP" gc "$V" --full > "$T/gc.out" 2>&1
gcrc=$?
wait "$RPID"
check "ddp gc --full while readers read through the mount" test $gcrc -eq 0
check "... it compacted containers (a later generation exists)" \
  bash -c "ls '$V'/.ddp/ChunkStore/*/Data '$V'/.ddp/ChunkStore/*/Stream | grep -q '\.0000000[2-9]\.ccc'"
during_ok=1
for i in 1 2 3; do diff -q "$EXP2" "$T/gcduring.$i" > /dev/null || during_ok=0; done
check "... every reader read the right content" test $during_ok -eq 1
check "... and every file reads right through the mount after gc" diff "$EXP2" <(tree_sums "$M")

# A job meets a file open for writing through the mount: the mount's writer
# holds a shared flock, the job leaves the file as it is and says why; every
# write stays, and once the file is closed the next job optimizes it.
f=t/w8.bin
exec 4<> "$M/$f"
printf 'first' >&4
"$DDP" optimize "$V" > "$T/job2.out" 2>&1
check "a job leaves a file open for writing through the mount" not_stub "$V/$f"
check "... and says why" grep -q "w8.bin is open for writing" "$T/job2.out"
printf 'second' >&4
exec 4>&-
expect8() { printf 'firstsecond'; tail -c +12 "$O/$f"; }
check "... no write is lost (volume)" cmp "$V/$f" <(expect8)
check "... nor through the mount" cmp "$M/$f" <(expect8)
"$DDP" optimize "$V" --quiet
check "once closed, the next job optimizes it" is_stub "$V/$f"
check "... and it reads right" cmp "$M/$f" <(expect8)

# ---- a forged stub ----
V3=$T/other
mkdir -p "$V3"
head -c 100000 /dev/urandom > "$V3/secret.bin"
"$DDP" enable "$V3" --usage Backup > /dev/null
"$DDP" optimize "$V3" --quiet
cp "$V3/secret.bin" "$V/forged.bin"
check "a stub copied from another volume reads as the 232 bytes it is" cmp "$M/forged.bin" "$V3/secret.bin"
check "... its size is 232" test "$(stat -c %s "$M/forged.bin")" -eq 232
check "... and the log names it" grep -q "/forged.bin: not a valid stub" "$LOG"

# ---- permissions are the kernel's ----
if [[ $(id -u) -eq 0 ]] && command -v setpriv > /dev/null; then
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
  chmod 600 "$M/t/w7.bin"
  if as_nobody cat "$M/t/w5.bin" > "$T/nobody.out" 2> /dev/null && cmp -s "$T/nobody.out" "$O/t/w5.bin"; then
    ok "another user reads a 0644 optimized file through the mount (allow_other)"
    check "another user cannot read a 0600 file through the mount" bash -c "! setpriv --reuid=65534 --regid=65534 --clear-groups -- cat '$M/t/w7.bin' >/dev/null 2>&1"
    mkdir "$M/pub" && chmod 1777 "$M/pub"
    as_nobody touch "$M/pub/mine"
    check "a file another user creates is theirs on the volume" test "$(stat -c %u "$V/pub/mine")" -eq 65534
  else
    echo "skip - permissions: another user cannot use the mount here (allow_other did not take effect)"
  fi
fi

# ---- unmount ----
umount_vol "$M" "$MPID" "$LOG"

# ---- read-only ----
if mount_vol "$V" "$M" "$T/ro.log" -o ro --readahead-mb 2; then
  kernel_ra "$M" 1024 "$T/ro.log"
  check "-o ro: files read" cmp "$M/t/big.bin" "$O/t/big.bin"
  check "-o ro: writes fail" bash -c "exec 2>/dev/null; ! echo x >> '$M/t/w5.bin'"
  check "-o ro: the stub is untouched" is_stub "$V/t/big.bin"
  umount_vol "$M" "$MOUNT_PID" "$T/ro.log"
fi

# ---- a small cache under many readers ----
# Replies hand the kernel the cache's own pages (vmsplice), which it copies
# from after the read handler has returned; the chunks stay pinned until
# then. With a cache far smaller than the data and six readers at once,
# pages are reused all the time: a chunk let go too early would send another
# chunk's bytes.
V3=$T/vol3
mkdir -p "$V3/r"
python3 - "$V3/r" << 'EOF2'
import os, random, sys
rng = random.Random(11)
for i in range(6):
    with open(os.path.join(sys.argv[1], f"r{i}.bin"), "wb") as f:
        f.write(rng.randbytes(12 << 20))
EOF2
(cd "$V3/r" && sha256sum r*.bin) > "$T/r.sums"
"$DDP" enable "$V3" --usage Backup > /dev/null
"$DDP" optimize "$V3" --quiet
# six_readers_right TAG: the six files read through the mount at once; every
# reader succeeded and every sum is the original's.
six_readers_right() {
  local readers=() i j ok=1
  for i in 0 1 2 3 4 5; do
    (cd "$M/r" && sha256sum "r$i.bin") > "$T/$1.got.$i" &
    readers+=($!)
  done
  for j in "${readers[@]}"; do wait "$j" || ok=0; done
  ((ok)) && cat "$T/$1".got.? | diff -q "$T/r.sums" - > /dev/null
}
if mount_vol "$V3" "$M" "$T/small.log" --cache-mb 17 --readahead-mb 32 --threads 4; then
  for pass in 1 2; do
    check "17 MiB cache, 6 readers of 72 MiB at once (pass $pass): every byte right" six_readers_right "small$pass"
  done
  check "... and nothing was logged as failing" bash -c "! grep -q 'fails with EIO' '$T/small.log'"
  umount_vol "$M" "$MOUNT_PID" "$T/small.log"
fi

# The same with every reply held up for 3 ms after the read handler returned
# (the fault shim delays each splice(2) of libfuse), in the smallest cache
# (4 MiB) with read-ahead threads loading meanwhile: pages of a chunk that
# was let go before its reply left would be reused by then. Not under ASan
# (its runtime must be the first preloaded library).
SHIM=$(fault_shim)
if [[ -z $SHIM ]]; then
  echo "skip - held-up replies: tests/fault/libddp_faultshim.so is not built"
elif ldd "$DDP" 2> /dev/null | grep -q libasan; then
  echo "skip - held-up replies: not under ASan (the shim cannot be preloaded before its runtime)"
elif LD_PRELOAD=$SHIM DDP_FAULT_SPLICE_DELAY_US=3000 mount_vol "$V3" "$M" "$T/held.log" --cache-mb 4 --readahead-mb 32 --threads 4; then
  check "replies held up 3 ms, 4 MiB cache, 6 readers of 72 MiB at once: every byte right" six_readers_right held
  umount_vol "$M" "$MOUNT_PID" "$T/held.log"
fi

# ---- a corrupt chunk ----
C=$(find "$V2/.ddp/ChunkStore" -path '*/Data/*.ccc' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
python3 - "$C" << 'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    n = f.seek(0, 2)
    f.seek(n // 2)
    b = f.read(1)
    f.seek(n // 2)
    f.write(bytes([b[0] ^ 0xFF]))
EOF
M2=$T/m2
LOG2=$T/mount2.log
if mount_vol "$V2" "$M2" "$LOG2"; then
  failed=0 wrong=0 named=1 eio=1
  while IFS= read -r -d '' p; do
    rel=${p#"$M2"}
    if got=$(sha256sum < "$p" 2> "$T/err"); then
      want=$(awk -v p=".$rel" '$2 == p { print $1 }' "$ORIG_SUMS")
      [[ "${got%% *}" == "$want" ]] || { wrong=$((wrong + 1)); echo "wrong bytes: $rel"; }
    else
      failed=$((failed + 1))
      grep -q "Input/output error" "$T/err" || eio=0
      grep -qF "$rel: chunk" "$LOG2" || { named=0; echo "the log does not name $rel"; }
    fi
  done < <(find "$M2" -type f -print0)
  check "a corrupt chunk: reading the affected files fails ($failed files)" test "$failed" -gt 0
  check "... with EIO" test $eio -eq 1
  check "... never with wrong bytes" test "$wrong" -eq 0
  check "... and the log names each file and its chunk" test $named -eq 1
  umount_vol "$M2" "$MOUNT_PID" "$LOG2"
fi

# ---- the read fallback: a damaged chunk with a hotspot copy ----
# Four files share a 1 MiB base, so with hotspot_threshold 2 its chunks get
# copies in Hotspot/. The primary record of one of them is damaged: ddp cat
# and the mount still read every file exactly (the mount's log says the copy
# served). Then the copy is damaged too: both fail (0x80565355, EIO), never
# with wrong bytes.
V4=$T/hot
mkdir -p "$V4"
python3 - "$V4" << 'PY'
import os, random, sys
rng = random.Random(11)
base = rng.randbytes(1 << 20)
for i in range(4):
    with open(os.path.join(sys.argv[1], f"h{i}.bin"), "wb") as f:
        f.write(base + rng.randbytes(100_000 + i))
PY
cp -a "$V4" "$T/hot.orig"
"$DDP" enable "$V4" --usage Backup > /dev/null
"$DDP" set "$V4" hotspot_threshold 2 > /dev/null
"$DDP" optimize "$V4" --quiet
STORE4=$(echo "$V4"/.ddp/ChunkStore/*.ddp)
# hot_chunk FILE: "data-container offset stored hotspot-container offset stored"
# of the first chunk of FILE that has a hotspot copy (from the stub, its
# stream map and the hotspot containers' record headers).
hot_chunk() {
  python3 - "$STORE4" "$1" << 'PY'
import glob, struct, sys
store, path = sys.argv[1], sys.argv[2]
stub = open(path, 'rb').read()
sc, = struct.unpack_from('<I', stub, 112); soff, = struct.unpack_from('<Q', stub, 120)
m = open(f'{store}/Stream/{sc:08X}.00000001.ccc', 'rb').read()[soff + 64:]
n, = struct.unpack_from('<I', m, 16)
copies = {}
for hp in sorted(glob.glob(f'{store}/Hotspot/*.ccc')):
    b = open(hp, 'rb').read(); o = 64
    while o + 64 <= len(b):
        t, = struct.unpack_from('<H', b, o + 4); ln, = struct.unpack_from('<I', b, o + 8)
        if t == 1: copies.setdefault(b[o + 16:o + 48], (hp, o, ln))
        if t == 3: break
        o += 64 + ln
for k in range(n):
    e = 56 + 56 * k
    h = m[e:e + 32]
    if h in copies:
        dc, = struct.unpack_from('<I', m, e + 32); off, = struct.unpack_from('<Q', m, e + 40)
        stored, = struct.unpack_from('<I', m, e + 48)
        hp, ho, hl = copies[h]
        print(f'{store}/Data/{dc:08X}.00000001.ccc', off, stored, hp, ho, hl)
        break
PY
}
flip_byte() { python3 -c "
import sys; p, o = sys.argv[1], int(sys.argv[2]); f = open(p, 'r+b'); f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x5A]))" "$1" "$2"; }
read -r dpath doff dstored hpath hoff hstored <<< "$(hot_chunk "$V4/h0.bin")"
if [[ -n "${hpath:-}" ]]; then
  ok "a chunk of the shared base has a hotspot copy"
  flip_byte "$dpath" $((doff + 64 + dstored / 2))
  cat_ok=1
  for i in 0 1 2 3; do cmp -s <("$DDP" cat "$V4/h$i.bin") "$T/hot.orig/h$i.bin" || cat_ok=0; done
  check "its primary damaged: ddp cat reads every file that uses it exactly (from the copy)" test $cat_ok -eq 1
  check "... and ddp cat says a copy served it, and what to run" \
    bash -c '"$1" cat "$2" 2>&1 >/dev/null | grep -q "read from their hotspot copies.*scrub --repair"' _ "$DDP" "$V4/h0.bin"
  M4=$T/m4
  LOG4=$T/mount4.log
  if mount_vol "$V4" "$M4" "$LOG4"; then
    m_ok=1
    for i in 0 1 2 3; do cmp -s "$M4/h$i.bin" "$T/hot.orig/h$i.bin" || m_ok=0; done
    check "... and so does the mount" test $m_ok -eq 1
    check "... whose log names the file and says the hotspot copy served the chunk" \
      grep -q "h[0-3].bin: chunk .*served from its hotspot copy" "$LOG4"
    umount_vol "$M4" "$MOUNT_PID" "$LOG4"
  fi
  flip_byte "$hpath" $((hoff + 64 + hstored / 3))
  expect_code "the copy damaged too: ddp cat fails with the damage error" 0x80565355 "$DDP" cat "$V4/h0.bin"
  LOG5=$T/mount5.log
  if mount_vol "$V4" "$M4" "$LOG5"; then
    eio=1 wrong=0
    for i in 0 1 2 3; do
      if dd if="$M4/h$i.bin" of="$T/got$i" bs=64K status=none 2> "$T/err$i"; then wrong=1; fi
      grep -q "Input/output error" "$T/err$i" || eio=0
      cmp -s "$T/got$i" <(head -c "$(stat -c %s "$T/got$i")" "$T/hot.orig/h$i.bin") || wrong=1
    done
    check "... and reads through the mount fail with EIO" test $eio -eq 1
    check "... never with wrong bytes" test $wrong -eq 0
    check "... and the log says the copy failed too" grep -q "hotspot copy failed too" "$LOG5"
    umount_vol "$M4" "$MOUNT_PID" "$LOG5"
  fi
else
  bad "no chunk of the shared base has a hotspot copy"
fi

finish
