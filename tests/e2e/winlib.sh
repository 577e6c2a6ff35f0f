# SPDX-License-Identifier: MIT
# winlib.sh: helpers of the end-to-end tests on Windows dedup volumes
# (sourced after lib.sh, not run): the test tools CMake built, and the
# source files the volumes are written from.

# TOOLS: where CMake put the test tools (tests/tools: mkwinstore, rsfiles).
TOOLS=${DDP_BUILD_DIR:-$(dirname "$DDP")}

# need_tools TOOL...: exit when a test tool is not built.
need_tools() {
  local t
  for t in "$@"; do
    [[ -x $TOOLS/$t ]] || { echo "$(basename "$0" .sh): $TOOLS/$t not built"; exit 1; }
  done
}

# win_sources DIR SEED TEXT RAND SHARED EXTRA SMALL WORDS: the source files
# of a test volume, from random.Random(SEED): text.txt (TEXT bytes of WORDS,
# a space-separated list), rand.bin (RAND random bytes), shared1.txt (SHARED
# bytes of text), shared2.txt (the same followed by EXTRA random bytes) and
# small.txt (the text SMALL and a newline).
win_sources() {
  mkdir -p "$1"
  python3 - "$@" <<'PY'
import random, sys
s, seed, n_text, n_rand, n_shared, n_extra, small, words = sys.argv[1:9]
r = random.Random(int(seed))
words = words.encode().split()
def text(n):
    out = bytearray()
    while len(out) < n: out += r.choice(words) + b" "
    return bytes(out[:n])
open(f"{s}/text.txt", "wb").write(text(int(n_text)))
open(f"{s}/rand.bin", "wb").write(r.randbytes(int(n_rand)))
a = text(int(n_shared))
open(f"{s}/shared1.txt", "wb").write(a)
open(f"{s}/shared2.txt", "wb").write(a + r.randbytes(int(n_extra)))
open(f"{s}/small.txt", "wb").write(small.encode() + b"\n")
PY
}
