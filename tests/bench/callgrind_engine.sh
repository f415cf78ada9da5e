#!/usr/bin/env bash
# Instruction counts of the engine loop (valgrind callgrind): deterministic, unlike CPU time on a
# shared VM.  The loop's cost is (load + build + loop) minus (load + build): two runs each.
#
#   bash tests/bench/callgrind_engine.sh RULES_FILE [mixed|stream] [--packet-only]
#
# RULES_FILE: e.g. a set written by bench_engine.py (its temp dir) or netns-lab/bench-100.rules.
set -euo pipefail
RULES=${1:?rules file}; TRAFFIC=${2:-stream}; PKT=${3:-}
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="$(python3 -c 'import sys; print(sys.executable)')"      # the real binary: valgrind does not follow a shim
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$PY" - "$RULES" "$TRAFFIC" "$1" "$PKT" <<'PYEOF' 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
import sys
from pathlib import Path
rules, traffic, loop, pkt = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "--packet-only"
import os
here = os.environ["BENCH_DIR"]
sys.path.insert(0, here); sys.path.insert(0, str(Path(here).parents[1]))
import bench_engine as b
from rules.api import FrameMeta
recs = b.read_pcap(b.bench_pcap(traffic))
frames = [f for _, f in recs]
metas = [FrameMeta(ts=ts, iface="", pcap_cnt=i) for i, (ts, _) in enumerate(recs, 1)]
eng, *_ = b.build_engine(Path(rules), b.config(), pkt)
if loop:
    b.run_loop(eng, frames, metas)
PYEOF
}
export BENCH_DIR="$HERE"
base=$(count 0); total=$(count 1)
npk=$(python3 -c "import sys; sys.path.insert(0,'$HERE'); import bench_engine as b; print(len(b.read_pcap(b.bench_pcap('$TRAFFIC'))))")
echo "$TRAFFIC ${PKT:-with reassembly}: $(( (total - base) / 1000000 )) M instructions for $npk packets, $(( (total - base) / npk )) per packet"
