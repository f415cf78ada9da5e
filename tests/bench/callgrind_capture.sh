#!/usr/bin/env bash
# Instruction count of the engine on a captured load (capture_profile.py replay, one pass):
# callgrind's instrumentation is switched on once the engine is built (the build itself runs
# uninstrumented), and only what runs inside the engine's front() (rules._hotpath's Lanes,
# `lane_vectorcall`, and all it calls) is counted: deterministic, where CPU time on a shared VM
# moves by 10-20% between two runs of the same build.  Compare two builds (two checkouts, each
# with its C modules built) on the same capture and limit.
#
#   python3 tests/bench/capture_profile.py capture               # root: the pcaps and bench.rules
#   bash tests/bench/callgrind_capture.sh /tmp/capture-profile/http16k.pcap 20000
#
# Prints capture_profile's pass line (times under valgrind, about 50x) and the instructions
# counted inside front().  (The pcap is read after the build, under valgrind for a second or
# more, so the switch comes before the first frame.)
set -euo pipefail
PCAP=${1:?pcap (capture_profile.py capture writes them)}; LIMIT=${2:-20000}
RULES=${RULES:-$(dirname "$PCAP")/bench.rules}
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
PY="$(python3 -c 'import sys; print(sys.executable)')"      # the real binary: valgrind does not follow a shim
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cd "$REPO"
export PYTHONHASHSEED=${PYTHONHASHSEED:-0}     # (set and dict order: the same count run after run)
valgrind --tool=callgrind --instr-atstart=no --toggle-collect=lane_vectorcall --callgrind-out-file="$OUT/cg.out" \
    "$PY" tests/bench/capture_profile.py replay "$PCAP" --limit "$LIMIT" --reps 1 --rules "$RULES" \
    --workdir "$OUT" >"$OUT/log" 2>&1 &
VG=$!
until grep -q "engine built" "$OUT/log"; do
    kill -0 "$VG" 2>/dev/null || { cat "$OUT/log"; exit 1; }
    sleep 0.1
done
callgrind_control -i on "$VG" >/dev/null
wait "$VG"
grep -h "^pass" "$OUT/log"
callgrind_annotate "$OUT/cg.out" | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/instructions: \1/p'
