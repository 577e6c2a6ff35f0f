#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# crash_stress.sh [TRIALS] [SEED]: crash consistency under SIGKILL.
#
# One volume lives through TRIALS trials. Each trial changes some files (new
# files, appends, deletions), then runs one job and kills it with SIGKILL:
# `ddp optimize`, `ddp unoptimize` of the volume or of some files, `ddp gc`
# (plain or --full, after deleting a stub), or `ddp restore` from a fresh
# backup. The kill comes either after a random
# delay (up to about the job's length) or at an exact file-system call: the
# fault shim (tests/fault/faultshim.c) raises SIGKILL before or after the
# N-th write, fsync, rename, create, close or ftruncate. After each kill:
#
#   - every file of the volume reads back its expected SHA-256 through
#     `ddp cat` (the read path), stub or plain;
#   - the same job run again completes (exit 0); for a restore, into a new
#     directory, and every restored file has its content; a killed restore
#     left each target absent, its stub, or its whole content;
#   - `ddp scrub` finds no damage, `ddp index rebuild` succeeds and a second
#     optimize completes, and the files still read back;
#   - no temporary file is left in the volume after those jobs.
#
# The trials are chosen by a generator seeded with SEED (default: the time),
# so the same TRIALS and SEED replay the same sequence; kills at a call are
# exact, kills after a delay land where the machine's speed puts them.
# The first failure stops the run, keeps the work directory and prints the
# command that replays it. Prints "N trials, seed S: ... passed, ... failed".
#
# Environment: DDP (the ddp binary; default build/ddp), DDP_BUILD_DIR (to
# find the fault shim), TMPDIR, CRASH_NO_RESTORE=1 (skip restore trials).
set -uo pipefail

# Temporary files a killed job leaves (.NAME.ddp-tmp.XXXXXX beside a file,
# NAME.tmp.PID in .ddp/) must be gone after the jobs that follow: the next
# optimize or unoptimize removes the first kind when no live writer holds
# its lock, opening a volume for a job the second when its PID is dead.
# A killed `ddp unoptimize VOLUME` may leave .ddp without its identity (and
# without a chunk store): the next `ddp unoptimize VOLUME` finishes it.

TRIALS=${1:-200}
SEED=${2:-$(date +%s)}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DDP=${DDP:-$root/build/ddp}
[[ -x $DDP ]] || { echo "crash_stress: no ddp binary at $DDP (set DDP)" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/tmp}/ddp-crash.XXXXXX")
KEEP=0
trap '[[ $KEEP == 1 ]] || rm -rf "$W"' EXIT
PY=$(python3 -c 'import sys; print(sys.executable)')

# ---- a generator that does not depend on bash's RANDOM ----------------------
STATE=$(( (SEED & 0x7FFFFFFF) ^ 0x5DEECE6 ))
rnd() { STATE=$(( (STATE * 1103515245 + 12345) % 2147483648 )); R=$(( (STATE >> 8) % $1 )); }

# ---- the fault shim, for kills at an exact call --------------------------------
SHIM=""
for c in "${DDP_BUILD_DIR:-}/tests/fault/libddp_faultshim.so" "$(dirname "$DDP")/tests/fault/libddp_faultshim.so"; do
  [[ -f $c ]] && { SHIM=$c; break; }
done
if [[ -z $SHIM ]]; then
  SHIM=$W/libddp_faultshim.so
  ${CC:-cc} -std=c17 -O2 -shared -fPIC -o "$SHIM" "$root/tests/fault/faultshim.c" -ldl 2>/dev/null || SHIM=""
fi
PRELOAD=$SHIM
asanlib=$(ldd "$DDP" 2>/dev/null | awk '/libasan/ {print $3}')
# An ASan program wants its runtime first in the list.
[[ -n $SHIM && -n $asanlib ]] && PRELOAD="$asanlib $SHIM"
# A killed ASan program reports nothing; a leak report would fail the next job.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

# ---- the volume and what it must hold ----------------------------------------
V=$W/vol
mkdir -p "$V"
EXPECT=$W/expected   # "size sha256 ./path", sorted by path

# make_file PATH SIZE KIND SEED: deterministic content (KIND 0 text, 1 random, 2 copy of another file).
make_file() {
  "$PY" - "$@" <<'PY'
import os, random, sys
path, size, kind, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
r = random.Random(seed)
os.makedirs(os.path.dirname(path), exist_ok=True)
if kind == 2:
    d = os.path.dirname(os.path.dirname(path))
    cands = sorted(os.path.join(a, f) for a, _, fs in os.walk(d) if "/.ddp" not in a for f in fs)
    src = [c for c in cands if os.path.getsize(c) > 232 and c != path]
    data = open(r.choice(src), "rb").read() if src else r.randbytes(size)
    data = data[: size] + r.randbytes(max(0, size - len(data)) // 8)
elif kind == 1:
    data = r.randbytes(size)
else:
    words = b"crash stress kill optimize unoptimize restore stub chunk container catalog index".split()
    out, n = [], 0
    while n < size:
        w = r.choice(words); out.append(w); n += len(w) + 1
    data = b" ".join(out)[:size]
mode = "ab" if os.environ.get("APPEND") else "wb"
with open(path, mode) as f: f.write(data)
PY
}

record() { # record every file of the volume as it is now (all plain or known good)
  (cd "$V" && find . -path ./.ddp -prune -o -type f -print0 | sort -z | while IFS= read -r -d '' f; do
     printf '%s %s %s\n' "$(stat -c %s "$f")" "$(sha256sum < "$f" | cut -d' ' -f1)" "$f"; done) > "$EXPECT"
}

set_expect() { # set_expect ./path: the file is plain now; take its size and hash
  local f=$1 line
  line="$(stat -c %s "$V/$f") $(sha256sum < "$V/$f" | cut -d' ' -f1) $f"
  { grep -v " $f\$" "$EXPECT"; echo "$line"; } | LC_ALL=C sort -k3 > "$EXPECT.new"; mv "$EXPECT.new" "$EXPECT"
}
drop_expect() { grep -v " $1\$" "$EXPECT" > "$EXPECT.new"; mv "$EXPECT.new" "$EXPECT"; }

is_stub() { [[ $(stat -c %s "$1" 2>/dev/null) == 232 ]] && head -c 9 "$1" | grep -q '^ddp stub:'; }

# reads_back DIR EXPECTFILE: one `ddp cat` of every expected file, split by size.
CHECK_PY='
import hashlib, sys
data = sys.stdin.buffer.read()
pos, bad = 0, []
for line in open(sys.argv[1]):
    size, sha, name = line.split(None, 2)
    if hashlib.sha256(data[pos:pos + int(size)]).hexdigest() != sha: bad.append(name.strip())
    pos += int(size)
if pos != len(data): bad.append("(%d bytes read, %d expected)" % (len(data), pos))
print(" ".join(bad[:5]))
sys.exit(1 if bad else 0)
'

# A volume whose every file was unoptimized has no .ddp any more (ddp
# unoptimize of a volume disables it): then every file is read directly.
reads_back() {
  local dir=$1 exp=$2
  if [[ ! -e $dir/.ddp ]]; then
    (cd "$dir" && awk '{print $3}' "$exp" | while IFS= read -r f; do cat "$f"; done 2>"$W/cat.err") | "$PY" -c "$CHECK_PY" "$exp" > "$W/bad.txt"
    return
  fi
  (cd "$dir" && awk '{print $3}' "$exp" | tr '\n' '\0' | xargs -0 -r "$DDP" cat 2>"$W/cat.err") | "$PY" -c "$CHECK_PY" "$exp" > "$W/bad.txt"
}

temps_in() { find "$1" \( -name '*.ddp-tmp.*' -o -name '*.tmp.*' -o -name '*.tmp' \) -printf '%P ' | head -c 400; }

# ---- running a job, and killing it ----------------------------------------------
declare -A EST=([optimize]=150 [unoptimize]=80 [restore]=60 [gc]=80)
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# killed_run CMD...: run CMD and kill it per KILL (time:MS or call:FAULTSPEC).
# Sets RC, KILLED, OUT, LAST_MS.
killed_run() {
  rm -f "$W/fault.log"
  local t0; t0=$(ms)
  if [[ $KILL == time:* ]]; then
    { timeout -s KILL "$(printf '0.%03d' "${KILL#time:}")" "$@" > "$W/out" 2>&1; } 2>/dev/null; RC=$?
  else
    { DDP_FAULT=${KILL#call:} DDP_FAULT_LOG=$W/fault.log LD_PRELOAD=$PRELOAD "$@" > "$W/out" 2>&1; } 2>/dev/null; RC=$?
  fi
  LAST_MS=$(( $(ms) - t0 ))
  KILLED=0; [[ $RC -eq 137 ]] && KILLED=1
  OUT=$(head -c 600 "$W/out")
  # Keep the delays near the job's length: shrink towards a job that
  # finished first, grow after a kill.
  if [[ $KILL == time:* ]]; then
    if ((KILLED)); then EST[$op]=$(( EST[$op] * 11 / 10 + 1 )); else EST[$op]=$(( (EST[$op] + LAST_MS) / 2 + 5 )); fi
    ((EST[$op] > 800)) && EST[$op]=800
  fi
}

choose_kill() { # choose_kill OP CMD...: sets KILL
  local op=$1; shift
  rnd 2
  if [[ $R -eq 0 || -z $SHIM ]]; then
    rnd $(( EST[$op] * 12 / 10 + 1 )); KILL=time:$(( R > 999 ? 999 : R ))
    return
  fi
  # Count the calls of a clean run on a copy, then pick one.
  rm -rf "$W/cal"; cp -a "$V" "$W/cal"
  local args=("${@//$V/$W/cal}")
  args=("${args[@]//$W\/rs/$W/cal-rs}")
  rm -rf "$W/cal-rs"
  DDP_FAULT_COUNT=$W/counts LD_PRELOAD=$PRELOAD "${args[@]}" >/dev/null 2>&1
  local fams=() f c
  while read -r f c; do [[ $c -gt 0 ]] && fams+=("$f:$c"); done < "$W/counts"
  if ((${#fams[@]} == 0)); then KILL=time:50; return; fi
  rnd ${#fams[@]}; f=${fams[$R]%%:*}; c=${fams[$R]##*:}
  rnd "$c"; local n=$((R + 1))
  rnd 2; if ((R)); then KILL=call:$f:$n:kill; else KILL=call:$f:$n:killafter; fi
  rm -rf "$W/cal" "$W/cal-rs"
}

PASS=0
fail() {
  echo "FAIL trial $TRIAL/$TRIALS (seed $SEED): $OPDESC, kill $KILL (rc $RC): $*"
  echo "  job output: $(tr '\n' ' ' <<<"$OUT" | cut -c1-400)"
  [[ -s $W/fault.log ]] && echo "  $(cat "$W/fault.log")"
  echo "  work directory kept: $W"
  echo "  replay: DDP=$DDP bash $0 $TRIAL $SEED"
  KEEP=1
  echo "$TRIALS trials, seed $SEED: $PASS passed, 1 failed"
  exit 1
}

# ---- the trials ---------------------------------------------------------------
rnd 1000000; base=$R
for i in $(seq 1 14); do
  rnd 3; kind=$((R == 2 ? 1 : R)); rnd 260000
  make_file "$V/d$((i % 3))/f$i" $((40000 + R)) "$kind" $((base + i))
done
"$DDP" enable "$V" --usage Backup >/dev/null || { echo "crash_stress: enable failed" >&2; exit 1; }
"$DDP" set "$V" container_size_limit 1M >/dev/null
record
NEXT=100
RESTORE_OK=1
[[ ${CRASH_NO_RESTORE:-0} == 1 ]] && RESTORE_OK=0
kills=0

for TRIAL in $(seq 1 "$TRIALS"); do
  # Change some files.
  rnd 10
  if ((R < 4)); then
    rnd 3; kind=$R; rnd 300000; NEXT=$((NEXT + 1))
    make_file "$V/d$((NEXT % 4))/n$NEXT" $((33000 + R)) "$kind" $((base + NEXT))
    set_expect "./d$((NEXT % 4))/n$NEXT"
  elif ((R < 6)); then
    mapfile -t plain < <(cd "$V" && find . -path ./.ddp -prune -o -type f -size +232c -print | LC_ALL=C sort)
    if ((${#plain[@]})); then
      rnd ${#plain[@]}; f=${plain[$R]}; rnd 80000
      APPEND=1 make_file "$V/$f" $((1 + R)) 1 $((base + TRIAL)); set_expect "$f"
    fi
  elif ((R < 7)); then
    mapfile -t all < <(awk '{print $3}' "$EXPECT")
    if ((${#all[@]} > 8)); then rnd ${#all[@]}; rm -f "$V/${all[$R]}"; drop_expect "${all[$R]}"; fi
  fi
  mapfile -t stubs < <(cd "$V" && find . -path ./.ddp -prune -o -type f -size 232c -print | LC_ALL=C sort)

  rnd 100; pick=$R
  if ((pick >= 85 && RESTORE_OK == 0)); then pick=$((pick - 45)); fi
  if ((pick >= 70 && pick < 85)); then
    op=gc
    # Garbage to collect: a stub deleted (its chunks are then referenced by
    # nothing, unless another file shares them).
    if ((${#stubs[@]} > 0)) && (($(wc -l < "$EXPECT") > 8)); then
      rnd ${#stubs[@]}; rm -f "$V/${stubs[$R]}"; drop_expect "${stubs[$R]}"
    fi
    ((${#stubs[@]})) || "$DDP" optimize "$V" --quiet >/dev/null 2>&1
    rnd 2; if ((R)); then cmd=("$DDP" gc "$V" --full); else cmd=("$DDP" gc "$V"); fi
    again=("${cmd[@]}")
  elif ((pick < 40)); then
    op=optimize
    # Something to do: rehydrate a few stubs first.
    if ((${#stubs[@]} >= $(wc -l < "$EXPECT") - 1)) && ((${#stubs[@]} > 0)); then
      rnd ${#stubs[@]}; "$DDP" unoptimize "$V/${stubs[$R]}" >/dev/null 2>&1
    fi
    cmd=("$DDP" optimize "$V" --quiet); again=("${cmd[@]}")
  elif ((pick < 55)); then
    op=unoptimize
    ((${#stubs[@]})) || "$DDP" optimize "$V" --quiet >/dev/null 2>&1
    cmd=("$DDP" unoptimize "$V"); again=("${cmd[@]}")
  elif ((pick < 70)); then
    op=unoptimize
    if ((${#stubs[@]} == 0)); then "$DDP" optimize "$V" --quiet >/dev/null 2>&1
      mapfile -t stubs < <(cd "$V" && find . -path ./.ddp -prune -o -type f -size 232c -print | LC_ALL=C sort); fi
    files=(); for j in 1 2 3; do ((${#stubs[@]})) && { rnd ${#stubs[@]}; files+=("$V/${stubs[$R]#./}"); }; done
    mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
    ((${#files[@]})) || files=("$V")
    cmd=("$DDP" unoptimize "${files[@]}"); again=("${cmd[@]}")
  else
    op=restore
    rm -rf "$W/bk" "$W/rs" "$W/rs2"
    "$DDP" optimize "$V" --quiet >/dev/null 2>&1
    if ! "$DDP" backup "$V" "$W/bk" >/dev/null 2>&1; then
      echo "# ddp backup does not work here; restore trials skipped"; RESTORE_OK=0; continue
    fi
    cp "$EXPECT" "$W/bk.expect"
    mapfile -t all < <(awk '{print $3}' "$EXPECT")
    targets=(); for j in 1 2 3 4; do rnd ${#all[@]}; targets+=("${all[$R]#./}"); done
    mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
    cmd=("$DDP" restore --from "$W/bk" --to "$W/rs" "${targets[@]}")
    again=("$DDP" restore --from "$W/bk" --to "$W/rs2" "${targets[@]}")
  fi
  OPDESC="ddp ${cmd[*]:1}"; OPDESC=${OPDESC//$W\//}
  choose_kill "$op" "${cmd[@]}"
  killed_run "${cmd[@]}"
  kills=$((kills + KILLED))

  # A whole-volume unoptimize killed after it removed the identity: every
  # file is plain and the chunk store is gone.
  if [[ -e $V/.ddp && ! -e $V/.ddp/Settings/identity && -e $V/.ddp/ChunkStore ]]; then
    fail "the killed unoptimize left .ddp without its identity but with its chunk store"
  fi
  # 1. Everything reads back.
  reads_back "$V" "$EXPECT" || fail "DATA: after the kill, files do not read back: $(cat "$W/bad.txt") $(head -c 300 "$W/cat.err")"
  if [[ $op == restore ]]; then
    for t in "${targets[@]}"; do
      [[ -e $W/rs/$t ]] || continue
      want=$(awk -v p="./$t" '$3 == p {print $2}' "$W/bk.expect")
      got=$(sha256sum < "$W/rs/$t" | cut -d' ' -f1)
      if [[ $got != "$want" ]] && ! cmp -s "$W/rs/$t" "$W/bk/$t"; then
        fail "a killed restore left $t neither its stub nor its content"
      fi
    done
  fi
  # 2. The same job completes (an unoptimize of the volume that got to its
  # end before the kill has disabled the volume: nothing is left to do).
  if [[ ${again[1]} == unoptimize && ${again[2]} == "$V" && ! -e $V/.ddp ]]; then
    out2="(the volume was already unoptimized and disabled)"
  else
    out2=$("${again[@]}" 2>&1) || fail "the next $op failed: $(tr '\n' ' ' <<<"$out2" | cut -c1-400)"
  fi
  reads_back "$V" "$EXPECT" || fail "DATA: after the next $op, files do not read back: $(cat "$W/bad.txt")"
  if [[ $op == restore ]]; then
    for t in "${targets[@]}"; do
      want=$(awk -v p="./$t" '$3 == p {print $2}' "$W/bk.expect")
      got=$(sha256sum < "$W/rs2/$t" 2>/dev/null | cut -d' ' -f1)
      [[ $got == "$want" ]] || fail "the next restore did not restore $t"
    done
  fi
  # A volume unoptimized as a whole is disabled (no .ddp): enable it again.
  if [[ ! -e $V/.ddp ]]; then
    "$DDP" enable "$V" --usage Backup >/dev/null && "$DDP" set "$V" container_size_limit 1M >/dev/null ||
      fail "enabling the unoptimized volume again failed"
  fi
  # 3. Scrub finds no damage, the index rebuilds from the containers, and
  # optimize still completes.
  out3=$("$DDP" scrub "$V" 2>&1) || fail "scrub found a problem: $(tr '\n' ' ' <<<"$out3" | cut -c1-400)"
  out3=$("$DDP" index rebuild "$V" 2>&1) || fail "index rebuild failed: $(tr '\n' ' ' <<<"$out3" | cut -c1-400)"
  out3=$("$DDP" optimize "$V" --quiet 2>&1) || fail "the optimize after the index rebuild failed: $(tr '\n' ' ' <<<"$out3" | cut -c1-400)"
  reads_back "$V" "$EXPECT" || fail "DATA: after index rebuild and optimize, files do not read back: $(cat "$W/bad.txt")"
  left=$(temps_in "$V")
  [[ -z $left ]] || fail "temporary files left in the volume after the jobs that followed: $left"
  PASS=$((PASS + 1))
  echo "ok   trial $TRIAL: $OPDESC; kill $KILL ($( ((KILLED)) && echo killed || echo "finished first, rc $RC"))"
done
echo "# $kills of $TRIALS jobs were killed mid-way"
echo "$TRIALS trials, seed $SEED: $PASS passed, 0 failed"
