#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh: the one command that installs what is missing, builds ddp, and runs
# the main job on the built-in sample: enable a volume holding 12 nightly
# releases of a generated project, optimize it, print the savings, and read
# every file back (through `ddp cat`) against its original SHA-256.
#
# DDP=/usr/bin/ddp (or --ddp PATH) runs the demo with that program instead of
# building one (scripts/check-deb.sh runs it against the installed package).
# It leaves its work directory behind for you to look at: the volume (stubs
# and .ddp/) and before.sha256, in DDP_DEMO_DIR or a new /tmp/ddp-demo.XXXXXX,
# whose path it prints first and last; remove it with rm -rf.
set -euo pipefail
cd "$(dirname "$0")/.."
ddp=${DDP:-}
if [[ "${1:-}" == "--ddp" ]]; then ddp=${2:?--ddp needs the program}; fi
if [[ -z "$ddp" ]]; then
  bash scripts/install-deps.sh
  bash scripts/build.sh release >/dev/null
  ddp=$PWD/build/ddp
fi
work=${DDP_DEMO_DIR:-$(mktemp -d /tmp/ddp-demo.XXXXXX)}
echo "== ddp: $ddp; work directory (left behind): $work"
vol=$work/volume
rm -rf "$vol"; mkdir -p "$vol"
echo "== generating the sample into $vol"
python3 scripts/make-sample.py "$vol" 12
(cd "$vol" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/before.sha256"
du -sh --apparent-size "$vol"
echo "== ddp enable"
"$ddp" enable "$vol" --usage Backup
echo "== ddp optimize"
"$ddp" optimize "$vol"
echo "== ddp status"
"$ddp" status "$vol"
echo "== reading every file back with ddp cat"
n=0; bad=0
while IFS= read -r line; do
  sum=${line%% *}; f=${line#*  }
  got=$("$ddp" cat "$vol/$f" | sha256sum); got=${got%% *}
  if [[ "$got" != "$sum" ]]; then echo "MISMATCH: $f"; bad=$((bad+1)); fi
  n=$((n+1))
done < "$work/before.sha256"
echo "$n files read back, $bad mismatches"
du -sh --apparent-size "$vol"
echo "== left behind: $work (the optimized volume and before.sha256); rm -rf it when done"
[[ $bad -eq 0 ]]
