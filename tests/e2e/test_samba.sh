#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_samba.sh: a deduplicated file server for real: Samba (smbd, on the
# loopback interface) shares a `ddp mount` of an optimized volume, and a
# client (smbclient) uses it over SMB.
#
# Every file downloaded over SMB must equal the original; the share lists an
# optimized file with its logical size; a client's overwrite, writes inside
# an optimized file (append, overwrite in the middle: it rehydrates first),
# new file, rename, mkdir, delete and DOS attribute change (Samba keeps those
# in the user.DOSATTRIB xattr, which leaves a stub a stub) all land in the
# volume;
# two clients download the same large optimized file at once. After the
# unmount, `ddp scrub` finds nothing wrong and every file of the volume reads
# (through `ddp cat`) as the expected tree. Needs root (smbd), /dev/fuse,
# fusermount3, smbd, smbpasswd, smbclient and Debian's python3 with its smbc
# module (Debian: fuse3, samba, smbclient, python3-smbc;
# scripts/install-deps.sh installs them); skipped with a message where any
# of them is missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/mountlib.sh"

missing=""
[[ -e /dev/fuse ]] || missing+=" /dev/fuse"
for c in fusermount3 smbd smbpasswd smbclient; do command -v "$c" > /dev/null || missing+=" $c"; done
/usr/bin/python3 -c 'import smbc' 2> /dev/null || missing+=" python3-smbc"
[[ $(id -u) -eq 0 ]] || missing+=" root"
if [[ -n $missing ]]; then
  echo "skip - Samba over ddp mount: needs$missing (Debian packages fuse3, samba, smbclient, python3-smbc)"
  finish
  exit 0
fi

SMBD_PID=
# smbd -F leads its own process group: on shutdown it signals that group,
# which must not be this script's.
stop_smbd() { [[ -n $SMBD_PID ]] && kill "$SMBD_PID" 2> /dev/null && wait "$SMBD_PID" 2> /dev/null; SMBD_PID=; return 0; }
trap 'stop_smbd; unmount_all; cleanup' EXIT

chmod 711 "$T"
V=$T/vol
python3 "$DDP_SOURCE_DIR/scripts/make-sample.py" "$V" 3 > /dev/null
python3 - "$V" << 'EOF'
import os, random, sys
v = sys.argv[1]
rng = random.Random(11)
os.makedirs(os.path.join(v, "share docs"), exist_ok=True)
block = rng.randbytes(1 << 20)
with open(os.path.join(v, "share docs", "image v1.bin"), "wb") as f:      # 12 MiB, a third repeated
    for i in range(12):
        f.write(block if i % 3 == 0 else rng.randbytes(1 << 20))
for i in range(3):
    with open(os.path.join(v, "share docs", f"report{i}.txt"), "wb") as f:
        f.write((f"quarterly figures {i} " * 20000).encode())
EOF
O=$T/orig
cp -a "$V" "$O"
"$DDP" enable "$V" --usage Backup > /dev/null
"$DDP" optimize "$V" --quiet
check "the volume is optimized ($(count_stubs "$V") stubs)" test "$(count_stubs "$V")" -gt 50
check "the large file is a stub on the volume" is_stub "$V/share docs/image v1.bin"

M=$T/m
LOG=$T/mount.log
if ! mount_vol "$V" "$M" "$LOG" -o allow_other; then
  bad "ddp mount $V $M"
  finish
  exit 1
fi
MPID=$MOUNT_PID
ok "ddp mount $V $M"

# ---- smbd on the loopback interface, a port nobody uses, its state in $T ----
S=$T/smb
mkdir -p "$S"/{run,lock,state,cache,private,log}
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CONF=$S/smb.conf
cat > "$CONF" << EOF
[global]
  server role = standalone server
  smb ports = $PORT
  interfaces = lo
  bind interfaces only = yes
  disable netbios = yes
  pid directory = $S/run
  lock directory = $S/lock
  state directory = $S/state
  cache directory = $S/cache
  private dir = $S/private
  passdb backend = tdbsam:$S/private/passdb.tdb
  log file = $S/log/log.%m
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
[dedup]
  path = $M
  read only = no
EOF
printf 'ddp-test\nddp-test\n' | smbpasswd -c "$CONF" -s -a root > /dev/null 2>&1
smbd -F -s "$CONF" > "$S/smbd.out" 2>&1 &
SMBD_PID=$!
smb() { smbclient "//127.0.0.1/dedup" -p "$PORT" -U root%ddp-test -s "$CONF" -c "$1" 2>&1; }
up=0
for ((i = 0; i < 100; i++)); do
  smb 'ls' > /dev/null && { up=1; break; }
  kill -0 "$SMBD_PID" 2> /dev/null || break
  sleep 0.1
done
if ((!up)); then
  bad "smbd serving $M on port $PORT: $(tail -5 "$S/smbd.out")"
  finish
  exit 1
fi
ok "smbd shares the mount on 127.0.0.1:$PORT"

# ---- every file over SMB equals the original ----
G=$T/got
mkdir -p "$G"
smb "prompt off; recurse on; lcd $G; mget *" > "$T/mget.out"
check "smbclient downloaded every file ($(find "$G" -type f | wc -l) of $(find "$O" -type f | wc -l))" \
  test "$(find "$G" -type f | wc -l)" -eq "$(find "$O" -type f | wc -l)"
check "every file downloaded over SMB equals the original" diff <(tree_sums "$G") <(tree_sums "$O")
size=$(stat -c %s "$O/share docs/image v1.bin")
check "the share lists the optimized file with its logical size ($size bytes)" \
  grep -q "stream: \[::\$DATA\], $size bytes" <(smb 'allinfo "share docs/image v1.bin"')

# ---- two clients download the same large optimized file at once ----
smb "lcd $T; get \"share docs/image v1.bin\" par1.bin" > /dev/null &
p1=$!
smb "lcd $T; get \"share docs/image v1.bin\" par2.bin" > /dev/null &
p2=$!
wait $p1 $p2
check "two concurrent SMB downloads of one optimized file both equal the original" \
  bash -c "cmp -s '$T/par1.bin' '$O/share docs/image v1.bin' && cmp -s '$T/par2.bin' '$O/share docs/image v1.bin'"

# ---- changes made by the client; E is what the volume must hold after them ----
E=$T/expect
cp -a "$O" "$E"
rel=$(cd "$O" && find . -name 'blob1.bin' | sort | head -1)
rel=${rel#./}
rel2=$(cd "$O" && find . -name 'blob2.bin' | sort | head -1)
rel2=${rel2#./}
rel3=$(cd "$O" && find . -name 'blob3.bin' | sort | head -1)
rel3=${rel3#./}
not_stub() { ! is_stub "$1"; }
check "the files the client changes are stubs before ($rel, $rel2, $rel3)" \
  bash -c "for f in '$rel' '$rel2' '$rel3' 'share docs/report1.txt'; do [[ \$(stat -c %s \"$V/\$f\") -eq 232 ]] || exit 1; done"

head -c 150000 /dev/urandom > "$T/over.bin"
smb "lcd $T; put over.bin $rel" > /dev/null
cp "$T/over.bin" "$E/$rel"
check "an overwrite over SMB replaced the optimized file's content" cmp -s "$V/$rel" "$T/over.bin"

# A client that writes inside an optimized file, as editors do: the file is
# rehydrated when it is opened for writing, so the bytes the client does not
# write stay. The client is libsmbclient through Debian's Python binding
# (smbclient has no command that writes at an offset, and its `reput`
# writes at offset 0 whatever the remote size, on any share).
/usr/bin/python3 - "$PORT" "$rel2" > "$T/smbc.out" 2>&1 << 'PY'
import os, sys, smbc
port, rel = sys.argv[1:3]
ctx = smbc.Context(auth_fn=lambda server, share, workgroup, user, password: ("WORKGROUP", "root", "ddp-test"))
uri = f"smb://127.0.0.1:{port}/dedup/{rel}"
size = ctx.stat(uri)[6]
f = ctx.open(uri, os.O_RDWR)
f.seek(size)
f.write(b"appended over SMB " * 200)
f.seek(1000)
f.write(b"MIDDLE" * 5)
f.close()
PY
python3 - "$E/$rel2" << 'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read() + b"appended over SMB " * 200)
b[1000:1030] = b"MIDDLE" * 5
open(p, "wb").write(b)
PY
check "writes inside an optimized file over SMB (append, overwrite in the middle): the rest of it stays" \
  cmp -s "$V/$rel2" "$E/$rel2"
check "... and it is a plain file on the volume now" not_stub "$V/$rel2"

head -c 90000 /dev/urandom > "$T/new.bin"
smb "lcd $T; mkdir fresh; put new.bin fresh/new.bin; rename fresh/new.bin fresh/renamed.bin" > /dev/null
mkdir -p "$E/fresh"
cp "$T/new.bin" "$E/fresh/renamed.bin"
check "a new file uploaded and renamed over SMB is in the volume" cmp -s "$V/fresh/renamed.bin" "$T/new.bin"
check "... under its new name only" test ! -e "$V/fresh/new.bin"

smb "del \"share docs/report0.txt\"" > /dev/null
rm "$E/share docs/report0.txt"
check "an optimized file deleted over SMB is gone from the volume" test ! -e "$V/share docs/report0.txt"

smb "setmode \"share docs/report1.txt\" +r; setmode $rel3 +h" > /dev/null
check "read-only set over SMB on an optimized file: it is still a stub" is_stub "$V/share docs/report1.txt"
check "... with Samba's DOS attributes in its xattr" \
  python3 -c "import os, sys; sys.exit(0 if 'user.DOSATTRIB' in os.listxattr(sys.argv[1]) else 1)" "$V/share docs/report1.txt"
check "... and reads as the original over SMB" \
  bash -c "cd '$T' && smbclient //127.0.0.1/dedup -p $PORT -U root%ddp-test -s '$CONF' -c 'get \"share docs/report1.txt\" r1.txt' > /dev/null 2>&1 && cmp -s r1.txt '$O/share docs/report1.txt'"
check "hidden set over SMB on another: still a stub" is_stub "$V/$rel3"

# ---- everything the share shows now equals the expected tree ----
rm -rf "$G" && mkdir -p "$G"
smb "prompt off; recurse on; lcd $G; mget *" > /dev/null
check "after the changes, every file over SMB equals the expected tree" diff <(tree_sums "$G") <(tree_sums "$E")

stop_smbd
umount_vol "$M" "$MPID" "$LOG"
check "the mount logged no error" bash -c "! grep -v 'serving\|kernel read-ahead\|unmounted' '$LOG' | grep -q ."
check "ddp scrub finds nothing wrong after the SMB session" bash -c "\"$DDP\" scrub \"$V\" > \"$T/scrub.out\" 2>&1"
check "every file of the volume reads (ddp cat) as the expected tree" diff <(cat_sums "$V") <(tree_sums "$E")

finish
