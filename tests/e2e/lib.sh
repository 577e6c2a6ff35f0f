# SPDX-License-Identifier: MIT
# lib.sh: shared helpers of the end-to-end tests (sourced, not run).
# Each test script drives the real ddp binary ($DDP) on real file trees,
# counts its checks, and ends with the line "N passed, N failed".
set -uo pipefail
: "${DDP:?set DDP to the ddp binary}"
: "${DDP_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
T=$(mktemp -d "${TMPDIR:-/tmp}/ddp-e2e.XXXXXX")
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
  chmod -R u+rwx "$T" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
PASS=0; FAIL=0

ok()   { PASS=$((PASS+1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL+1)); echo "FAIL - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# expect_code WHAT HEX CMD...: CMD must fail and print the HRESULT HEX (e.g. 0x80565355).
expect_code() {
  local what=$1 code=$2; shift 2
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [[ $rc -ne 0 && "$out" == *"$code"* ]]; then ok "$what ($code)"; else bad "$what: wanted failure with $code, got rc=$rc: $out"; fi
}

# tree_sums DIR: "sha256  path" for every regular file of DIR except .ddp, sorted.
tree_sums() { (cd "$1" && find . -path ./.ddp -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# cat_sums DIR: the same, but every file read through `ddp cat`.
cat_sums() {
  (cd "$1" && find . -path ./.ddp -prune -o -type f -print | sort | while IFS= read -r f; do
     s=$("$DDP" cat "$f" | sha256sum); echo "${s%% *}  $f"; done)
}

# is_stub FILE: 232 bytes beginning with the stub text.
is_stub() { [[ $(stat -c %s "$1") -eq 232 ]] && head -c 9 "$1" | grep -q '^ddp stub:'; }

count_stubs() { local n=0 f; while IFS= read -r -d '' f; do is_stub "$f" && n=$((n+1)); done < <(find "$1" -path "$1/.ddp" -prune -o -type f -print0); echo $n; }

# try_mount_tmpfs DIR SIZE: a small file system (for disk-full tests); fails if not permitted.
try_mount_tmpfs() { mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" 2>/dev/null && MOUNTS+=("$1"); }

# on_small_fs VAR DIR SIZE SCRIPT ARGS...: run the bash SCRIPT (ARGS as $1...)
# with a tmpfs of SIZE at DIR, mounted here when permitted, else inside an
# unprivileged user and mount namespace; its output goes to the variable VAR
# ("skip" when neither can mount). The mount is made outside the command
# substitution so that cleanup() unmounts it.
on_small_fs() {
  local var=$1 dir=$2 size=$3 script=$4; shift 4
  if try_mount_tmpfs "$dir" "$size"; then
    printf -v "$var" '%s' "$(bash -c "$script" _ "$@")"
  elif unshare -rm true 2>/dev/null; then
    mkdir -p "$dir"
    printf -v "$var" '%s' "$(unshare -rm bash -c "mount -t tmpfs -o size=$size tmpfs '$dir' && $script" _ "$@")"
  else
    printf -v "$var" '%s' skip
  fi
}

finish() { echo "$PASS passed, $FAIL failed"; [[ $FAIL -eq 0 ]]; }

# fault_shim: the path of the fault-injection shim CMake built
# (tests/fault/faultshim.c), or nothing.
fault_shim() {
  local c
  for c in "${DDP_BUILD_DIR:-}/tests/fault/libddp_faultshim.so" "$(dirname "$DDP")/tests/fault/libddp_faultshim.so"; do
    [[ -f $c ]] && { echo "$c"; return; }
  done
}

# ---- valgrind hook (scripts/valgrind-e2e.sh, docs/ROBUSTNESS.md) ---------------------
# With DDP_VALGRIND=1 every ddp command of the test runs under valgrind
# (tests/valgrind/valgrind-ddp; the real binary stays in $DDP_REAL), each
# report lands in $VALGRIND_LOG_DIR/TEST.PID/, and finish() counts every
# report as a failure (a test may expect a command to fail, or ignore its
# exit status, so its exit 97 alone could go unseen). DDP_VALGRIND_CAT_EVERY=N
# (default 1: all) runs only every Nth file of cat_sums under valgrind and
# reads the others with the real binary: whole-tree read-backs are hundreds
# of identical `ddp cat` runs (test_engine: over 400). Without DDP_VALGRIND
# nothing here is defined and the test runs as it always did.
if [[ ${DDP_VALGRIND:-0} == 1 ]]; then
  export DDP_REAL=$DDP
  DDP=$DDP_SOURCE_DIR/tests/valgrind/valgrind-ddp
  VALGRIND_LOG_DIR=${VALGRIND_LOG_DIR:-/tmp/ddp-valgrind}/$(basename "$0" .sh).$$
  export VALGRIND_LOG_DIR
  # World-writable: test_badinput runs ddp as nobody.
  mkdir -p "$VALGRIND_LOG_DIR" && chmod 1777 "$VALGRIND_LOG_DIR"
  cat_sums() {
    local every=${DDP_VALGRIND_CAT_EVERY:-1}
    [[ $every =~ ^[1-9][0-9]*$ ]] || every=1
    (cd "$1" && find . -path ./.ddp -prune -o -type f -print | sort | { i=0; while IFS= read -r f; do
       if ((i++ % every == 0)); then s=$("$DDP" cat "$f" | sha256sum); else s=$("$DDP_REAL" cat "$f" | sha256sum); fi
       echo "${s%% *}  $f"; done; })
  }
  finish() {
    local r n=0
    for r in "$VALGRIND_LOG_DIR"/*.log; do
      [[ -n $("$DDP_SOURCE_DIR/tests/valgrind/vg-report" "$r") ]] || continue
      n=$((n + 1)); bad "valgrind report $r:"; "$DDP_SOURCE_DIR/tests/valgrind/vg-report" "$r" | sed 's/^/    /'
    done
    echo "valgrind: $(find "$VALGRIND_LOG_DIR" -name '*.log' | wc -l) ddp runs, $n with a report ($VALGRIND_LOG_DIR)"
    echo "$PASS passed, $FAIL failed"; [[ $FAIL -eq 0 ]]
  }
fi
