# SPDX-License-Identifier: MIT
# benchlib.sh: what the maintenance benchmarks share, sourced with SRC set.
# `bench_setup NAME VERSIONS`: DDP (a Release build in $DDP_BENCH_BUILD, default
# SRC/build-bench-NAME, unless DDP is given), the work directory W
# ($DDP_BENCH_DIR or a new temporary one, removed at exit), the data set DATA
# ($DDP_BENCH_DATA, else VERSIONS typescript nightlies built by
# ../shared/bench/dataset-ts.sh) and its releases VERSIONS (sorted).
bench_setup() {
  local name=$1 nversions=$2
  local dataset_script=${DDP_DATASET_SCRIPT:-$SRC/../shared/bench/dataset-ts.sh}
  [[ -f $dataset_script ]] || dataset_script=/work/shared/bench/dataset-ts.sh
  if [[ -z "${DDP:-}" ]]; then
    local build=${DDP_BENCH_BUILD:-$SRC/build-bench-$name}
    cmake -S "$SRC" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDDP_TESTS=OFF > /dev/null
    cmake --build "$build" --target ddp -j"$(nproc)" > /dev/null
    DDP=$build/ddp
  fi
  W=${DDP_BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ddp-bench-$name.XXXXXX")}
  mkdir -p "$W"
  trap '[[ -n "${DDP_BENCH_DIR:-}" ]] || rm -rf "$W"' EXIT
  if [[ -n "${DDP_BENCH_DATA:-}" && -d "${DDP_BENCH_DATA}" ]]; then
    DATA=$(cd "$DDP_BENCH_DATA" && pwd)
  else
    DATA=$W/data
    echo "building the data set in $DATA ..." >&2
    bash "$dataset_script" "$DATA" "$nversions" >&2
  fi
  mapfile -t VERSIONS < <(cd "$DATA" && find . -mindepth 1 -maxdepth 1 -type d -printf '%P\n' | sort)
  [[ ${#VERSIONS[@]} -ge 2 ]] || { echo "bench_$name: $DATA has fewer than 2 versions" >&2; exit 1; }
}
