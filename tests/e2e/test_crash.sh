#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_crash.sh: the short CI run of bench/crash_stress.sh: 15 seeded
# trials of ddp jobs killed with SIGKILL (after a delay or at an exact
# file-system call), each followed by the checks that nothing was lost and
# that the next jobs complete. DDP_CRASH_TRIALS and DDP_CRASH_SEED change
# the run; a failure prints the command that replays it.
source "$(dirname "$0")/lib.sh"
trials=${DDP_CRASH_TRIALS:-15}
seed=${DDP_CRASH_SEED:-20261124}
out=$(TMPDIR=$T bash "$DDP_SOURCE_DIR/bench/crash_stress.sh" "$trials" "$seed" 2>&1); rc=$?
echo "$out" | tail -n 40
summary=$(tail -n 1 <<<"$out")
check "crash stress: $summary" test "$rc" -eq 0
finish
