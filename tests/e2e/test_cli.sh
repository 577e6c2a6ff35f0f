#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cli.sh: the front door (issue 15). The conventions every command
# keeps (--help, -h, `ddp help COMMAND`, exit 2 and the HRESULT for a bad
# command line), the messages a new administrator meets (a non-root user on a
# 0700 .ddp, enable twice, unknown settings, usage_type's side effects),
# status on sparse files, a second mount on one mount point, progress under
# a pseudo-terminal, --json that parses, `ddp ls`, the man pages and the
# systemd units.
source "$(dirname "$0")/lib.sh"
chmod 755 "$T" # an unprivileged user must reach the volume below

json_ok() { python3 -m json.tool >/dev/null 2>&1; }
# rc CMD...: the exit status of CMD (output discarded).
rc() { "$@" >/dev/null 2>&1; echo $?; }

# ------------------------------------------------------------------ every command
mapfile -t CMDS < <("$DDP" help | awk '/^commands:/ {on=1; next} on && /^  [a-z]/ {print $1}')
check "ddp help lists the commands" test "${#CMDS[@]}" -ge 15
for c in "${CMDS[@]}"; do
  out=$("$DDP" "$c" --help 2>&1); r=$?
  check "$c --help: exit 0 and its usage" bash -c '[[ $1 -eq 0 && "$2" == *"usage: ddp $3"* ]]' _ "$r" "$out" "$c"
  check "$c -h: exit 0" test "$(rc "$DDP" "$c" -h)" -eq 0
  check "ddp help $c: the same help" bash -c '[[ "$("$1" help "$2")" == "$("$1" "$2" --help)" ]]' _ "$DDP" "$c"
  out=$("$DDP" "$c" --no-such-option x y 2>&1); r=$?
  check "$c --no-such-option: exit 2 with the HRESULT ($r)" bash -c '[[ $1 -eq 2 && "$2" == *0x80070057* ]]' _ "$r" "$out"
done
check "ddp help NOSUCH: exit 2" test "$(rc "$DDP" help nosuch)" -eq 2
check "an unknown command: exit 2" test "$(rc "$DDP" nosuch)" -eq 2
check "cat --help does not look for a file named --help" bash -c '"$1" cat --help | grep -q "usage: ddp cat"' _ "$DDP"

# ------------------------------------------------------------------ a volume
V=$T/vol
mkdir -p "$V/d"
head -c 300000 /dev/urandom >"$V/a.bin"; cp "$V/a.bin" "$V/d/b.bin"
head -c 200000 /dev/urandom >"$V/c.bin"
echo "plain text" >"$V/small.txt"
chmod -R a+rX "$V"
"$DDP" enable "$V" >/dev/null
"$DDP" set "$V" min_file_age_days 0 >/dev/null

# ------------------------------------------------------------------ bad values: exit 2
for args in "optimize --threads abc $V" "optimize --threads 100000 $V" "optimize --threads= $V" \
            "enable $T/other --usage Foo" "mount --threads 1000 $V $T/m" "set $V compression_level 99"; do
  # shellcheck disable=SC2086
  check "ddp $args: exit 2" test "$(rc "$DDP" $args)" -eq 2
done
check "no volume was made by the refused enable" test ! -e "$T/other/.ddp"

# ------------------------------------------------------------------ every failure has its HRESULT
expect_code "unoptimize of a missing path" 0x80070002 "$DDP" unoptimize "$T/missing"
expect_code "cat of a missing file" 0x80070002 "$DDP" cat "$T/missing"
expect_code "status of a directory that is not a volume" 0x80565323 "$DDP" status "$T"
expect_code "ls of a missing path" 0x80070002 "$DDP" ls "$T/missing"

# ------------------------------------------------------------------ enable, set, get
out=$("$DDP" enable "$V" 2>&1); r=$?
check "enable of an enabled volume succeeds" test "$r" -eq 0
check "and says so" grep -q "already enabled" <<<"$out"
out=$("$DDP" set "$V" no_such_key 1 2>&1); r=$?
check "set of an unknown key: exit 2" test "$r" -eq 2
check "it lists the valid keys" bash -c '[[ "$1" == *min_file_age_days* && "$1" == *compression_level* && "$1" == *gc_threshold* ]]' _ "$out"
check "get of an unknown key: exit 2 and the keys" bash -c 'o=$("$1" get "$2" nope 2>&1); [[ $? -eq 2 && "$o" == *usage_type* ]]' _ "$DDP" "$V"
W=$T/vol2; mkdir -p "$W"; "$DDP" enable "$W" >/dev/null
out=$("$DDP" set "$W" usage_type Backup 2>&1)
check "set usage_type Backup says min_file_age_days changed with it" grep -q "min_file_age_days = 0 (was 3" <<<"$out"

# ------------------------------------------------------------------ optimize, status
"$DDP" optimize "$V" >/dev/null
check "the volume is optimized" is_stub "$V/a.bin"
out=$("$DDP" status "$V")
check "status prints each job once" test "$(grep -c ' optimize 0x' <<<"$out")" -eq 1
check "status --json is valid JSON" bash -c '"$1" status --json "$2" | python3 -m json.tool >/dev/null' _ "$DDP" "$V"
check "status --json: the last optimization is an object, not a log line" python3 -c "
import json, sys; d = json.loads(sys.argv[1]); o = d['last_optimize']
assert o['job'] == 'optimize' and o['result'] == '0x00000000' and o['files_optimized'] == 3, o
assert isinstance(o['seconds'], (int, float)) and d['last_gc'] is None" "$("$DDP" status --json "$V")"

# ------------------------------------------------------------------ ddp ls
out=$("$DDP" ls -l "$V/a.bin")
check "ls -l: an optimized file's logical size" grep -qE " 300000 +[0-9]+ optimized " <<<"$out"
out=$("$DDP" ls --json "$V/a.bin" "$V/small.txt" /etc/hostname)
check "ls --json: one valid object per file" bash -c 'while read -r l; do python3 -m json.tool <<<"$l" >/dev/null || exit 1; done <<<"$1"; [[ $(wc -l <<<"$1") -eq 3 ]]' _ "$out"
check "ls --json: sizes and state" python3 -c "
import json, sys; rows = [json.loads(l) for l in sys.argv[1].splitlines()]
assert rows[0]['size'] == 300000 and rows[0]['optimized'] and rows[0]['size_on_disk'] <= 8192, rows[0]
assert rows[1]['size'] == 11 and not rows[1]['optimized']
assert not rows[2]['optimized']" "$out"
check "ls of a directory lists its entries, not .ddp" bash -c 'o=$("$1" ls "$2"); [[ "$o" == *a.bin* && "$o" == *small.txt* && "$o" != *.ddp* ]]' _ "$DDP" "$V"

# ------------------------------------------------------------------ a non-root user
if [[ $(id -u) -eq 0 ]] && command -v useradd >/dev/null && command -v runuser >/dev/null; then
  U=ddpcli$$
  useradd -M -s /bin/sh "$U" 2>/dev/null
  trap 'userdel "$U" 2>/dev/null; cleanup' EXIT
  as_user() { runuser -u "$U" -- "$@"; }
  for c in status get optimize; do
    out=$(as_user "$DDP" "$c" "$V" 2>&1); r=$?
    check "non-root $c: exit 1" test "$r" -eq 1
    check "non-root $c: permission denied with its HRESULT" bash -c '[[ "$1" == *"permission denied"* && "$1" == *0x80070005* && "$1" == *"owner or root"* ]]' _ "$out"
    check "non-root $c: no advice to unoptimize" bash -c '[[ "$1" != *unoptimi* ]]' _ "$out"
  done
  out=$(as_user "$DDP" cat "$V/small.txt" 2>&1)
  check "non-root cat of a readable plain file in the volume" test "$out" = "plain text"
  out=$(as_user "$DDP" cat "$V/a.bin" 2>&1); r=$?
  check "non-root cat of an optimized file: permission denied, not 'outside its volume'" bash -c '[[ $1 -eq 1 && "$2" == *"permission denied"* && "$2" == *0x80070005* && "$2" != *"outside its volume"* ]]' _ "$r" "$out"
  userdel "$U" 2>/dev/null
  trap cleanup EXIT
else
  echo "skip - the non-root checks (not root, or no useradd/runuser)"
fi

# ------------------------------------------------------------------ sparse files
S=$T/sparse; mkdir -p "$S"
truncate -s 64M "$S/holes.img"
head -c 200000 /dev/urandom | dd of="$S/holes.img" bs=4096 seek=100 conv=notrunc status=none
"$DDP" enable "$S" --usage Backup >/dev/null
"$DDP" optimize "$S" >/dev/null
check "the sparse file is optimized" is_stub "$S/holes.img"
saved=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['saved_bytes'])" "$("$DDP" status --json "$S")")
check "status does not count a sparse file's holes as savings (saved $saved)" test "$saved" -lt $((1 << 20))
check "status reports the holes apart" bash -c '"$1" status "$2" | grep -q "^Holes:"' _ "$DDP" "$S"

# ------------------------------------------------------------------ progress on a terminal
if command -v script >/dev/null; then
  P=$T/prog; mkdir -p "$P"
  for i in 1 2 3 4 5 6; do head -c 400000 /dev/urandom >"$P/f$i"; done
  "$DDP" enable "$P" --usage Backup >/dev/null
  tty_run() { script -qec "$*" /dev/null; }
  out=$(tty_run "$DDP" optimize "$P")
  check "optimize on a terminal: total, percent, rate and time left" grep -qE "optimize: .* of [0-9.]+ [KMG]iB \([0-9]+%\), [0-9.]+ MB/s, ([0-9:]+|--:--) left" <<<"$out"
  out=$(tty_run "$DDP" optimize --quiet "$P")
  check "--quiet draws no progress" bash -c '[[ "$1" != *"optimize:"* ]]' _ "$out"
  out=$("$DDP" optimize "$P" 2>&1 | cat)
  check "no progress when stderr is not a terminal" bash -c '[[ "$1" != *$'"'"'\r'"'"'* ]]' _ "$out"
  out=$(tty_run "$DDP" gc "$P")
  check "gc on a terminal: progress" grep -qE "gc \((stubs|containers)\): [0-9]+" <<<"$out"
  out=$(tty_run "$DDP" scrub "$P")
  check "scrub on a terminal: containers done of total" grep -qE "scrub \(containers\): [0-9]+ containers of [0-9]+ \([0-9]+%\)" <<<"$out"
  out=$(tty_run "$DDP" backup "$P" "$T/pbak")
  check "backup on a terminal: bytes of the total" grep -qE "backup: .* of .*\([0-9]+%\)" <<<"$out"
  out=$(tty_run "$DDP" restore --from "$T/pbak" --to "$T/prest" f1)
  check "restore on a terminal: bytes read and rate" grep -qE "restore: read from the backup: [0-9.]+ [KMG]?i?B, [0-9.]+ MB/s" <<<"$out"
  out=$(tty_run "$DDP" unoptimize "$P")
  check "unoptimize on a terminal: total, percent, time left" grep -qE "unoptimize: .* of .*\([0-9]+%\), .* left" <<<"$out"
else
  echo "skip - progress (no script(1))"
fi

# ------------------------------------------------------------------ --json of every job
J=$T/json; mkdir -p "$J"; head -c 300000 /dev/urandom >"$J/x"; cp "$J/x" "$J/y"
"$DDP" enable "$J" --usage Backup >/dev/null
check "optimize --json" bash -c '"$1" optimize --json "$2" | python3 -m json.tool >/dev/null' _ "$DDP" "$J"
check "gc --json" bash -c '"$1" gc --json "$2" | python3 -m json.tool >/dev/null' _ "$DDP" "$J"
check "scrub --json" bash -c '"$1" scrub --json "$2" | python3 -m json.tool >/dev/null' _ "$DDP" "$J"
check "backup --json" bash -c '"$1" backup --json "$2" "$3" | python3 -m json.tool >/dev/null' _ "$DDP" "$J" "$T/jbak"
check "restore --json" bash -c '"$1" restore --json --from "$2" --to "$3" x | python3 -c "
import json,sys; d=json.load(sys.stdin); assert d[\"restored\"]==1 and d[\"paths\"][0][\"outcome\"]==\"restored\""' _ "$DDP" "$T/jbak" "$T/jrest"
check "unoptimize --json" bash -c '"$1" unoptimize --json "$2" | python3 -m json.tool >/dev/null' _ "$DDP" "$J"

# ------------------------------------------------------------------ mount twice
if [[ -e /dev/fuse ]] && command -v fusermount3 >/dev/null && "$DDP" mount --help >/dev/null 2>&1; then
  M=$T/mnt; mkdir -p "$M"
  if "$DDP" mount "$V" "$M" 2>/dev/null; then
    MOUNTS+=("$M")
    out=$("$DDP" mount "$V" "$M" 2>&1); r=$?
    check "a second mount on the same mount point: exit 1" test "$r" -eq 1
    check "it says the mount point is already mounted" grep -q "already mounted" <<<"$out"
    check "only one mount is there" test "$(grep -c " $M fuse.ddp " /proc/self/mounts)" -eq 1
    "$DDP" umount "$M" >/dev/null 2>&1
  else
    echo "skip - mount (not permitted here)"
  fi
fi

# ------------------------------------------------------------------ the man pages
MAN=${DDP_BUILD_DIR:-$(dirname "$DDP")}/man
if [[ -d "$MAN" ]] && command -v man >/dev/null; then
  for c in "${CMDS[@]}"; do
    [[ $c == help ]] && continue
    check "man page of ddp $c renders" bash -c 'MANWIDTH=80 man -l "$1" 2>/dev/null | grep -q "^NAME"' _ "$MAN/ddp-$c.1"
  done
  check "man page of ddp renders" bash -c 'MANWIDTH=80 man -l "$1" 2>/dev/null | grep -q "^NAME"' _ "$MAN/ddp.1"
else
  echo "skip - man pages (not built: no scdoc, or no man)"
fi

# ------------------------------------------------------------------ the systemd units
if command -v systemd-analyze >/dev/null && command -v cmake >/dev/null; then
  # Configure (no build) with a prefix of our own: the units name $PREFIX/bin/ddp.
  PREFIX=$T/prefix
  cmake -S "$DDP_SOURCE_DIR" -B "$T/cfg" -DCMAKE_INSTALL_PREFIX="$PREFIX" -DDDP_TESTS=OFF >/dev/null 2>&1
  mkdir -p "$PREFIX/bin" "$PREFIX/units"
  cp "${DDP_REAL:-$DDP}" "$PREFIX/bin/ddp"
  cp "$T"/cfg/systemd/*.service "$DDP_SOURCE_DIR"/systemd/*.timer "$PREFIX/units/"
  check "the units' ExecStart is the installed absolute path" grep -q "^ExecStart=$PREFIX/bin/ddp " "$PREFIX/units/ddp-gc@.service"
  for u in "$PREFIX"/units/*; do
    check "systemd-analyze verify $(basename "$u")" systemd-analyze verify "$u"
  done
else
  echo "skip - systemd units (no systemd-analyze)"
fi
check "install-deps waits for apt's lock" grep -q "DPkg::Lock::Timeout=600" "$DDP_SOURCE_DIR/scripts/install-deps.sh"

finish
