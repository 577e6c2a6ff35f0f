#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_fault.sh: fault injection through whole jobs. The LD_PRELOAD shim
# tests/fault/faultshim.c makes the N-th call of one family of file-system
# calls (write, fsync, rename, open with O_CREAT, close, ftruncate) fail
# with a chosen errno, or write short. For each family and a range of N
# (taken from the call counts of a clean run) this runs `ddp optimize`,
# `ddp unoptimize` and `ddp gc` on a small volume under the shim and checks:
#
#   - a job whose call failed exits non-zero with a message that names the
#     cause (the errno's text, which only the library's detail line carries,
#     and the HRESULT); a short write or a failed close of a read-only
#     descriptor may be absorbed (the job then succeeds);
#   - every file still reads back its original sha256 through `ddp cat`
#     (stub or plain), and the failed job left no temporary files;
#   - the same job without faults then completes, with the expected result
#     (every file in policy a stub, or none), and `ddp scrub` finds no damage.
#
# A sanitizer report (ASan build) in any run is a failure too. Under an ASan
# build the walk is shortened. DDP_FAULT_FULL=1 walks every N.
source "$(dirname "$0")/lib.sh"

# Problems that are known and reported, shown as XFAIL rather than FAIL.
# Each is an extended regexp over "OP FAMILY ERR KIND FAULT :: PROBLEM"
# (KIND: exit, message, data, temp, rerun, sanitizer, halfdisabled; FAULT: the shim's log
# line, PROBLEM: what the check saw). Never list a "data" problem here. The
# end of the run says which entries no longer match anything (fixed: remove).
KNOWN=(
  # (none at present; each entry: a regular expression over
  #  "OP FAMILY ERRNO KIND FIRED :: PROBLEM", with a comment naming the file at fault)
)

# ---- the shim ---------------------------------------------------------------
SHIM=$(fault_shim)
if [[ -z $SHIM ]]; then
  # Not built by CMake (yet): build it here.
  SHIM=$T/libddp_faultshim.so
  if ! ${CC:-cc} -std=c17 -O2 -shared -fPIC -o "$SHIM" "$DDP_SOURCE_DIR/tests/fault/faultshim.c" -ldl 2>"$T/cc.err"; then
    cat "$T/cc.err"; echo "SKIP: cannot build the fault shim"; echo "0 passed, 0 failed"; exit 0
  fi
fi
PRELOAD=$SHIM
ASAN=0
asanlib=$(ldd "$DDP" 2>/dev/null | awk '/libasan/ {print $3}')
if [[ -n $asanlib ]]; then
  # An ASan program wants its runtime first in the list.
  PRELOAD="$asanlib $SHIM"
  ASAN=1
fi

# python3 may be a slow pyenv shim: resolve it once.
PY=$(python3 -c 'import sys; print(sys.executable)')
# stubs DIR: how many stubs DIR holds (as count_stubs, in a few processes).
stubs() {
  find "$1" -path "$1/.ddp" -prune -o -type f -size 232c -print0 | xargs -0 -r grep -l '^ddp stub:' | wc -l
}

# ---- the volume ---------------------------------------------------------------
P=$T/pristine
mkdir -p "$P/docs" "$P/bin/sub"
"$PY" - "$P" <<'PY'
import random, sys
p = sys.argv[1]
r = random.Random(42)
words = b"fault injection write fsync rename open close truncate volume chunk store".split()
def text(n): return b" ".join(r.choice(words) for _ in range(n)) + b"\n"
base = text(9000)
for i in range(6):
    open(f"{p}/docs/t{i}.txt", "wb").write(base[: 20000 + 7000 * i] + text(500 * i) + base[40000:])
for i in range(5):
    open(f"{p}/bin/r{i}.bin", "wb").write(r.randbytes(60000 + 45000 * i))
open(f"{p}/bin/sub/dup.bin", "wb").write(open(f"{p}/bin/r3.bin", "rb").read())
open(f"{p}/small.txt", "wb").write(b"below the minimum size\n")
PY
"$DDP" enable "$P" --usage Backup >/dev/null
"$DDP" set "$P" container_size_limit 1M >/dev/null
tree_sums "$P" > "$T/before"
# The files in order, with their sizes, for reads_back.
(cd "$P" && find . -path ./.ddp -prune -o -type f -print0 | sort -z | xargs -0 stat -c '%s %n') > "$T/sizes"

# reads_back DIR: do all files of DIR read back (through one `ddp cat` of
# them all, split by the original sizes) as they were?
# A volume whose every file was unoptimized has no .ddp any more: then every
# file must be plain, and is read directly.
reads_back() {
  if [[ ! -e $1/.ddp ]]; then
    diff -q "$EXP_BEFORE" <(tree_sums "$1") >/dev/null
    return
  fi
  (cd "$1" && "$DDP" cat $(awk '{print $2}' "$EXP_SIZES") 2>/dev/null) | "$PY" -c '
import hashlib, sys
data = sys.stdin.buffer.read()
pos, out = 0, []
for line in open(sys.argv[1]):
    size, name = line.split(None, 1)
    out.append("%s  %s" % (hashlib.sha256(data[pos:pos + int(size)]).hexdigest(), name.strip()))
    pos += int(size)
sys.exit(0 if pos == len(data) and "\n".join(out) + "\n" == open(sys.argv[2]).read() else 1)
' "$EXP_SIZES" "$EXP_BEFORE"
}

O=$T/optimized
cp -a "$P" "$O"
check "a clean optimize of the test volume" "$DDP" optimize "$O" --quiet
NSTUBS=$(stubs "$O")
check "it made stubs ($NSTUBS)" test "$NSTUBS" -ge 10

# A volume with garbage for gc: optimized, then three files deleted.
G=$T/garbage
cp -a "$O" "$G"
rm -f "$G/docs/t1.txt" "$G/bin/r2.bin" "$G/bin/sub/dup.bin"
NSTUBS_G=$(stubs "$G")
tree_sums "$P" | grep -v -e ' ./docs/t1.txt$' -e ' ./bin/r2.bin$' -e ' ./bin/sub/dup.bin$' > "$T/before.gc"
grep -v -e ' ./docs/t1.txt$' -e ' ./bin/r2.bin$' -e ' ./bin/sub/dup.bin$' "$T/sizes" > "$T/sizes.gc"

# Call counts of clean runs, to choose N.
declare -A COUNT_optimize COUNT_unoptimize COUNT_gc
count_calls() {
  local op=$1 src=$2 f c
  rm -rf "$T/v"; cp -a "$src" "$T/v"
  DDP_FAULT_COUNT=$T/counts LD_PRELOAD=$PRELOAD "$DDP" "$op" "$T/v" >/dev/null 2>&1
  while read -r f c; do eval "COUNT_$op[$f]=$c"; done < "$T/counts"
}
count_calls optimize "$P"
count_calls unoptimize "$O"
count_calls gc "$G"
if [[ -z ${COUNT_optimize[write]:-} || -z ${COUNT_unoptimize[write]:-} ]]; then
  bad "the shim did not count the calls of a clean run (LD_PRELOAD=$PRELOAD)"; finish; exit 1
fi
echo "# calls in a clean optimize:   $(for f in write fsync rename open close ftruncate; do printf '%s=%s ' $f "${COUNT_optimize[$f]}"; done)"
echo "# calls in a clean unoptimize: $(for f in write fsync rename open close ftruncate; do printf '%s=%s ' $f "${COUNT_unoptimize[$f]}"; done)"
echo "# calls in a clean gc:         $(for f in write fsync rename open close ftruncate; do printf '%s=%s ' $f "${COUNT_gc[$f]:-0}"; done)"

# N values to walk for a family with C calls (FEW=1: three of them).
FEW=0
points() {
  local c=$1
  if [[ ${DDP_FAULT_FULL:-0} == 1 || $c -le 10 ]]; then seq 1 "$c"; echo $((c + 1)); return; fi
  if ((ASAN || FEW)); then printf '%s\n' 1 $((c / 2)) "$c" | awk '$1 >= 1' | sort -nu; return; fi
  # Densest at the start, where the job creates its containers and catalog.
  printf '%s\n' 1 2 3 5 7 9 $((c / 2)) $((3 * c / 4)) $((c - 1)) "$c" $((c + 1)) | awk -v c="$c" '$1 >= 1 && $1 <= c + 1' | sort -nu
}

errtext() {
  case $1 in
    EIO) echo "Input/output error" ;; ENOSPC) echo "No space left on device" ;;
    EACCES) echo "Permission denied" ;; EDQUOT) echo "Disk quota exceeded" ;; *) echo "" ;;
  esac
}
errcode() {
  case $1 in
    EIO) echo 0x8007045D ;; ENOSPC) echo 0x80070070 ;; EACCES) echo 0x80070005 ;; EDQUOT) echo 0x8007050F ;; *) echo "" ;;
  esac
}

declare -A SEEN
known() {
  local key="$1" k
  for k in "${KNOWN[@]}"; do
    [[ $key =~ $k ]] && { SEEN[$k]=1; return 0; }
  done
  return 1
}
XFAIL=0

# fault_case OP SPEC: one run of OP under DDP_FAULT=SPEC on a fresh copy.
# Returns 1 when the fault did not fire (N is past the last call).
fault_case() {
  local op=$1 spec=$2 fam err src out rc fired problems=() kinds=()
  fam=${spec%%:*}; err=${spec##*:}
  EXP_BEFORE=$T/before EXP_SIZES=$T/sizes
  local want=$NSTUBS
  case $op in
    optimize) src=$P ;;
    unoptimize) src=$O; want=0 ;;
    gc) src=$G; EXP_BEFORE=$T/before.gc EXP_SIZES=$T/sizes.gc; want=$NSTUBS_G ;;
  esac
  rm -rf "$T/v"; cp -a "$src" "$T/v"; rm -f "$T/fault.log"
  out=$(DDP_FAULT=$spec DDP_FAULT_LOG=$T/fault.log LD_PRELOAD=$PRELOAD "$DDP" "$op" "$T/v" 2>&1); rc=$?
  if [[ ! -s $T/fault.log ]]; then
    if [[ $rc -ne 0 ]]; then bad "$op $spec: no fault was injected, yet the job failed (rc=$rc): $out"; fi
    return 1
  fi
  fired=$(head -n 1 "$T/fault.log" | sed "s|$T/v|VOL|g")
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' <<<"$out"; then
    problems+=("sanitizer report"); kinds+=(sanitizer)
  fi
  local absorbable=0
  [[ $err == short ]] && absorbable=1
  # Every file ddp writes is fsynced before it is closed, so a failing close
  # loses nothing; nor does a failure on a file of .ddp/State (the job lock,
  # the job log, the index and other caches: nothing there is data). The
  # checks of the data below still apply.
  [[ $fam == close ]] && absorbable=1
  [[ $fired == *"VOL/.ddp/State/"* ]] && absorbable=1
  if ((absorbable)); then
    [[ $err == short && $rc -ne 0 ]] && { problems+=("a short write was not retried (rc=$rc)"); kinds+=(exit); }
  elif [[ $rc -eq 0 ]]; then
    problems+=("the job exited 0 after the fault"); kinds+=(exit)
  fi
  if [[ $rc -ne 0 && $absorbable -eq 0 ]]; then
    local text code
    text=$(errtext "$err"); code=$(errcode "$err")
    if [[ -n $text && $out != *"$text"* ]] || [[ -n $code && $out != *"$code"* ]]; then
      problems+=("unclear message (wanted '$text' and $code): $(tr '\n' ' ' <<<"$out" | sed "s|$T/v|VOL|g" | cut -c1-300)")
      kinds+=(message)
    fi
  fi
  # A volume whose disabling (the end of a whole-volume unoptimize) failed
  # half-way: .ddp is left without its identity. Its files are all plain
  # (the identity goes only after the chunk store), ddp cat reads them as
  # themselves, and the next `ddp unoptimize` removes the rest of .ddp.
  local half=0
  if [[ -e $T/v/.ddp && ! -e $T/v/.ddp/Settings/identity ]]; then
    half=1
    [[ -e $T/v/.ddp/ChunkStore ]] && { problems+=("half-disabled: .ddp lost its identity but kept its chunk store"); kinds+=(halfdisabled); }
    if ! diff -q "$EXP_BEFORE" <(tree_sums "$T/v") >/dev/null; then
      problems+=("DATA: the files of the half-disabled volume are not their original bytes"); kinds+=(data)
    fi
  fi
  if ! reads_back "$T/v"; then
    cat_sums "$T/v" > "$T/after" 2>"$T/cat.err"
    problems+=("DATA: files no longer read back: $(diff "$EXP_BEFORE" "$T/after" | grep '^>' | head -3 | tr '\n' ' ') $(head -c 300 "$T/cat.err")")
    kinds+=(data)
  fi
  local temps
  temps=$(find "$T/v" \( -name '*.ddp-tmp.*' -o -name '*.tmp.*' -o -name '*.tmp' \) -printf '%P ' | head -c 300)
  if [[ -n $temps ]]; then problems+=("temporary files left behind: $temps"); kinds+=(temp); fi
  # The same job, without faults, completes (an unoptimize that got to its
  # end has disabled the volume: then there is nothing left to do).
  local out2 rc2=0
  if ((half)); then
    out2=$("$DDP" unoptimize "$T/v" 2>&1); rc2=$?
    [[ -e $T/v/.ddp ]] && { problems+=("the next unoptimize left the half-disabled .ddp: $(tr '\n' ' ' <<<"$out2" | cut -c1-300)"); kinds+=(halfdisabled); }
  elif [[ $op == unoptimize && ! -e $T/v/.ddp ]]; then
    out2=""
  else
    out2=$("$DDP" "$op" "$T/v" 2>&1); rc2=$?
  fi
  if [[ $rc2 -ne 0 ]]; then
    problems+=("the next $op failed (rc=$rc2): $(tr '\n' ' ' <<<"$out2" | cut -c1-300)"); kinds+=(rerun)
  else
    local got; got=$(stubs "$T/v")
    [[ $got -ne $want ]] && { problems+=("after the next $op: $got stubs, not $want"); kinds+=(rerun); }
    reads_back "$T/v" || { problems+=("DATA: after the next $op files read back wrong"); kinds+=(data); }
    # Scrub finds nothing wrong with what the failed job and the next one left.
    if [[ -e $T/v/.ddp ]]; then
      local sc
      sc=$("$DDP" scrub "$T/v" 2>&1) || { problems+=("scrub after the next $op: $(tr '\n' ' ' <<<"$sc" | cut -c1-300)"); kinds+=(scrub); }
    fi
    if [[ $op == unoptimize ]]; then
      tree_sums "$T/v" > "$T/raw"
      diff -q "$EXP_BEFORE" "$T/raw" >/dev/null || { problems+=("DATA: unoptimized files differ on disk"); kinds+=(data); }
    fi
  fi
  if ((${#problems[@]} == 0)); then
    ok "$op $spec (rc=$rc; $fired)"
    return 0
  fi
  local i all_known=1
  for i in "${!kinds[@]}"; do known "$op $fam $err ${kinds[$i]} $fired :: ${problems[$i]}" || all_known=0; done
  if ((all_known)); then
    XFAIL=$((XFAIL + 1)); echo "XFAIL - $op $spec ($fired): ${problems[*]}"
  else
    bad "$op $spec ($fired): ${problems[*]}"
  fi
  return 0
}

# walk OP FAMILY ERR [+]: N through the family's range; with "+", the N-th
# call and every later one fail (a disk that stays full or broken).
walk() {
  local op=$1 fam=$2 err=$3 plus=${4:-} n c
  eval "c=\${COUNT_$op[$fam]:-0}"
  for n in $(points "$c"); do
    fault_case "$op" "$fam:$n$plus:$err" || break
  done
}

t0=$SECONDS
for op in optimize unoptimize; do
  walk $op write EIO
  walk $op write short
  walk $op fsync EIO
  walk $op rename EIO
  walk $op open ENOSPC
  FEW=1 walk $op open EACCES
  FEW=1 walk $op close EIO
  walk $op ftruncate EIO
  # A disk that stays full, or broken, from some point of the job on.
  walk $op write ENOSPC +
  walk $op fsync EIO +
done
# Garbage collection rewrites containers: each family at a few points.
for fam in write fsync rename open close ftruncate; do
  err=EIO; [[ $fam == open ]] && err=ENOSPC
  FEW=1 walk gc $fam $err
done
FEW=1 walk gc write ENOSPC +
echo "# $((SECONDS - t0)) s of fault cases; $XFAIL known problems"
for k in "${KNOWN[@]}"; do [[ -n ${SEEN[$k]:-} ]] || echo "# known problem not seen any more (fixed? remove it from KNOWN): $k"; done
finish
