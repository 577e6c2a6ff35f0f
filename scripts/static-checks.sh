#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# static-checks.sh: the static checks of lib/ and programs/: cppcheck and
# clang-tidy with a chosen set of checks. Exits non-zero on any finding.
#
#   bash scripts/static-checks.sh            # both
#   bash scripts/static-checks.sh cppcheck   # one of them
#   bash scripts/static-checks.sh clang-tidy [FILE...]
#   bash scripts/static-checks.sh layers     # the include check alone
#
# clang-tidy reads the compile commands of a build configured here (clang,
# CMAKE_EXPORT_COMPILE_COMMANDS) in $DDP_STATIC_BUILD (default
# build-static/), so it sees the same flags and defines as the real build.
# Needs cppcheck, clang-tidy and clang (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[[ $# -gt 0 ]] && shift
jobs=$(nproc 2>/dev/null || echo 2)
build=${DDP_STATIC_BUILD:-build-static}
status=0

# ---- clang-tidy: the checks ----------------------------------------------------------
# On: the clang static analyzer (paths through the code: null dereferences,
# leaks, use after free, uninitialized reads, dead stores), bugprone-*,
# cert-*, misc-*, performance-*, portability-*. Off, and why:
#   clang-analyzer-security.insecureAPI.*  flags every memcpy/memset (C11 Annex K advice)
#   bugprone-easily-swappable-parameters    style: any two adjacent parameters of one type
#   bugprone-narrowing-conversions          every explicit-width integer assignment
#   bugprone-implicit-widening-of-multiplication-result  int products used as sizes (harmless here)
#   bugprone-branch-clone                   branches that do the same on purpose, commented
#   bugprone-sizeof-expression              "sizeof(A*)" on arrays of pointers (false positives)
#   bugprone-suspicious-string-compare      the project writes !strcmp(a, b)
#   bugprone-reserved-identifier, cert-dcl37-c, cert-dcl51-cpp
#                                           _GUID and friends keep the Windows SDK's spelling
#   cert-err33-c                            unchecked snprintf/fprintf/fclose of messages
#   misc-no-recursion                       directory walks recurse by design
#   performance-no-int-to-ptr               FUSE file handles carried as integers
TIDY_CHECKS='-*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.*,bugprone-*,-bugprone-easily-swappable-parameters,-bugprone-narrowing-conversions,-bugprone-implicit-widening-of-multiplication-result,-bugprone-branch-clone,-bugprone-sizeof-expression,-bugprone-suspicious-string-compare,-bugprone-reserved-identifier,cert-*,-cert-dcl37-c,-cert-dcl51-cpp,-cert-err33-c,misc-*,-misc-no-recursion,performance-*,-performance-no-int-to-ptr,portability-*'

# ---- cppcheck: the suppressions --------------------------------------------------------
# Each is a false positive, named by check and file (lines move):
#   uninitvar lib/backup/backup.c  a stats struct cleared through the pointer that may point at it
#   uninitvar lib/store/storewalk.c  a header read only after its decode succeeded
CPPCHECK_SUPPRESS=(
  --suppress=missingIncludeSystem
  --suppress=uninitvar:lib/backup/backup.c
  --suppress=uninitvar:lib/store/storewalk.c
)


# ---- layers: no include from a lower layer to a higher one -----------------------------
# lib/ is layered (docs/DESIGN.md, "The tree"); a file may include headers of
# its own layer and of the layers this table lets it use, nothing else:
#   base     error, util, hash, codec, file attributes, safe paths
#   store    ddp's chunk store: chunker, containers, catalog, index, stream maps, stubs
#   windows  Windows' on-disk dedup format: reparse points, containers, decoder
#   restore  the RestoreFiles engine over any on-disk format
#   volume   a ddp volume and its jobs
#   backup   backups and the backup stores
# programs/ may use every layer. A finding names the file, the line and the layer.
declare -A LAYER_USES=(
  [base]="base"
  [store]="base store"
  [windows]="base windows"
  [restore]="base store windows restore"
  [volume]="base store volume"
  [backup]="base store volume restore backup"
)
run_layers() {
  echo "== layers (lib/ includes)"
  local f layer inc used n=0 line lno
  for f in lib/*/*.c lib/*/*.h; do
    layer=${f#lib/}; layer=${layer%%/*}
    if [[ -z ${LAYER_USES[$layer]+x} ]]; then
      echo "$f: lib/$layer/ is not a known layer (add it to LAYER_USES in this script)"; n=$((n + 1)); continue
    fi
    while IFS=: read -r lno line; do
      [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
      inc=${BASH_REMATCH[1]}
      if [[ $inc != */* ]]; then
        echo "$f:$lno: includes \"$inc\" without its layer (write \"LAYER/$inc\")"; n=$((n + 1)); continue
      fi
      used=${inc%%/*}
      if [[ " ${LAYER_USES[$layer]} " != *" $used "* ]]; then
        echo "$f:$lno: the $layer layer includes \"$inc\" from the $used layer (allowed: ${LAYER_USES[$layer]})"
        n=$((n + 1))
      fi
    done < <(grep -n '#[[:space:]]*include[[:space:]]*"' "$f")
  done
  if ((n > 0)); then echo "layers: $n findings"; return 1; fi
  echo "layers: clean ($(ls lib/*/*.c lib/*/*.h | wc -l) files)"
}

find_tool() { for t in "$@"; do command -v "$t" >/dev/null 2>&1 && { echo "$t"; return 0; }; done; return 1; }

run_cppcheck() {
  local cc
  cc=$(find_tool cppcheck) || { echo "static-checks: cppcheck is not installed" >&2; return 2; }
  echo "== cppcheck ($("$cc" --version))"
  "$cc" --quiet --enable=warning,performance,portability --std=c11 --inline-suppr --error-exitcode=1 \
    -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -DDDP_BUILDING_LIBRARY -DDDP_HAVE_FUSE=1 -I include -I lib -I programs -I programs/mount \
    "${CPPCHECK_SUPPRESS[@]}" --template='{file}:{line}: {severity}: {message} [{id}]' -j"$jobs" lib programs
}

# Known findings, each named by file, check and a piece of the source line
# it points at (so it survives edits elsewhere in the file):
# "FILE|CHECK|TEXT". Keep this list short; say why for each. All are
# analyzer false positives. An entry that no longer matches anything is
# named at the end of a whole run, so that it can go.
TIDY_KNOWN=(
  # the checkpoint merge: ix->entries is never NULL while base_count > 0
  'lib/store/index.c|clang-analyzer-core.NullDereference|entry_encode(e, ds->hash'
  # same_file() returns 0 for a NULL p; the analyzer did not look inside
  'lib/backup/backup.c|clang-analyzer-core.NullDereference|e->level = p->level'
  # a manifest of level > 0 always names its previous backup (manifest.c checks)
  'lib/backup/backupchain.c|clang-analyzer-core.NullDereference|if (previous[0] =='
  # d->wanted is only set for a damage whose header is known (wanted(d) != NULL)
  'lib/volume/scrub_repair.c|clang-analyzer-core.NonNullParamChecker|memcmp(w->hash, h->hash'
  # the memcpy into s->store_id makes the analyzer forget the memset of *s,
  # after which it invents duplicate entries and double frees
  'lib/store/storewalk.c|clang-analyzer-unix.Malloc|free(s->c[w - 1].path)'
)

# tidy_one FILE: clang-tidy on one file (run by xargs in parallel).
tidy_one() {
  local f=$1 checks=$TIDY_CHECKS hints=(--extra-arg=-include --extra-arg="$PWD/$build/analyzer-hints.h")
  # error.c defines ddp_fail itself: no hints there.
  [[ $f == lib/base/error.c ]] && hints=()
  "$tidy" -p "$build" --quiet --checks="$checks" "${hints[@]}" \
    --header-filter='.*/(lib/[a-z]+|programs|programs/mount|include/ddp)/[^/]*\.h$' "$f"
}

run_clang_tidy() {
  local clang
  tidy=$(find_tool clang-tidy clang-tidy-14) || { echo "static-checks: clang-tidy is not installed" >&2; return 2; }
  clang=$(find_tool clang clang-14) || { echo "static-checks: clang is not installed" >&2; return 2; }
  echo "== clang-tidy ($("$tidy" --version | grep -m1 -o 'version [0-9.]*'))"
  CC=$clang cmake -S . -B "$build" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  # The analyzer does not see across files: it cannot know that ddp_fail()
  # and ddp_fail_errno() (lib/base/util.c) return a failure, and so walks
  # "success" paths that do not exist. A header forced into each file, for
  # the analysis only, says so (a failed system call always sets errno, so
  # ddp_fail_errno is always a failure). Nothing in the tree changes.
  cat > "$build/analyzer-hints.h" <<'HINTS'
/* analyzer-hints.h: written by scripts/static-checks.sh for clang-tidy only. */
#include "base/util.h"
static inline HRESULT ddp_hint_errno(int err) { return (HRESULT)(-2147024896 + (err & 0xFFFF)); /* 0x8007xxxx */ }
#define ddp_fail(hr, ...) (ddp_fail((hr), __VA_ARGS__), (HRESULT)(hr))
#define ddp_fail_errno(err, ...) (ddp_fail_errno((err), __VA_ARGS__), ddp_hint_errno(err))
#define ddp_hresult_from_errno(err) ((err) == 0 ? S_OK : ddp_hint_errno(err))
HINTS
  export -f tidy_one
  export tidy build TIDY_CHECKS
  local files=("$@")
  ((${#files[@]})) || files=(lib/*/*.c programs/*.c programs/mount/*.c)
  local out
  out=$(printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "$jobs" bash -c 'tidy_one "$0"' 2>/dev/null || true)
  # clang-tidy exits 0 on warnings; any warning or error line is a finding,
  # unless it is a known false positive.
  local line file lno check src fp ffile fcheck ftext n=0 skipped=0 known
  local -A used=()
  while IFS= read -r line; do
    [[ $line =~ ^([^:]+):([0-9]+):[0-9]+:\ (warning|error):\ .*\[([^]]+)\]$ ]] || continue
    file=${BASH_REMATCH[1]#"$PWD/"}; lno=${BASH_REMATCH[2]}; check=${BASH_REMATCH[4]}
    src=$(sed -n "${lno}p" "$file" 2>/dev/null)
    known=0
    for fp in "${TIDY_KNOWN[@]}"; do
      IFS='|' read -r ffile fcheck ftext <<<"$fp"
      [[ $file == "$ffile" && $check == "$fcheck" && $src == *"$ftext"* ]] && { known=1; used[$fp]=1; break; }
    done
    if ((known)); then skipped=$((skipped + 1)); continue; fi
    n=$((n + 1))
    echo "$line"
    echo "    $src"
  done <<<"$out"
  if (($# == 0)); then
    for fp in "${TIDY_KNOWN[@]}"; do
      [[ -n ${used[$fp]:-} ]] || echo "clang-tidy: the known finding '$fp' no longer occurs: remove it from this script"
    done
  fi
  if ((n > 0)); then
    echo "clang-tidy: $n findings ($skipped known ones not shown)"
    return 1
  fi
  echo "clang-tidy: clean (${#files[@]} files; $skipped known findings, listed in this script)"
}

case $what in
  all) run_layers || status=1; run_cppcheck || status=1; run_clang_tidy || status=1 ;;
  layers) run_layers || status=1 ;;
  cppcheck) run_cppcheck || status=1 ;;
  clang-tidy) run_clang_tidy "$@" || status=1 ;;
  *) echo "usage: static-checks.sh [all|layers|cppcheck|clang-tidy [FILE...]]" >&2; exit 2 ;;
esac
exit $status
