#!/usr/bin/env python3
"""Where the engine's time goes on a real load, by kind of frame.

    python3 tests/bench/capture_profile.py capture            # root: the bench's HTTP loads into pcaps
    python3 tests/bench/capture_profile.py replay /tmp/capture-profile/http16k.pcap
    python3 tests/bench/capture_profile.py replay PCAP --profile request   # cProfile of one class only

`capture` builds the lab (netns-lab/netnslab.py), bridges its ports with the kernel
bridge, serves the benchmark's 16 KiB and 256 KiB objects with nginx and loads them
with wrk (`-c16`, `Connection: close`, a new flow per request, as `lab.py bench`),
while tcpdump on the bridge's client port writes the frames (`--frames` of each
load).  It also writes the rule file the bench would load (`--rules`, default
`etopen`: every ET Open rule ipsbridge loads, HOME_NET as in the bench).

`replay` feeds a capture to one engine (the bench's vars, classification and stream
settings; IPS mode) through `Engine.front()`, as a worker calls it, `--reps` times
(the flows end between passes), and prints the best pass per frame and per request,
split by the kind of frame of an HTTP/1.1 flow on port 80: syn, ack3 (the
handshake's last ACK), request, resp_hdr, bodyNN (the Nth data segment of the
response; 12-35, 36-71 and 72 on together: a 100 KiB
response-body-limit ends at about segment 71), ack (a pure ACK), fin, finack (an ACK after a FIN).
Wall time of each call (time.perf_counter_ns), never inside the engine; a busy or
shared machine moves it by tens of percent, so compare builds by interleaved runs,
or with valgrind's instruction counts.  Prints numbers, asserts nothing."""
from __future__ import annotations

import argparse
import collections
import gc
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "netns-lab"))

import bench  # noqa: E402  (netns-lab/bench.py: the benchmark's lab set-up and settings)


def capture(args) -> int:
    import netnslab

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with netnslab.Lab("capprof") as lab:
        rules = bench.resolve_rules(args.rules, lab.workdir)
        if rules.path is not None:
            shutil.copy(rules.path, out / "bench.rules")
        kernel = bench.KernelBridge(lab)
        kernel.start()
        nginx = bench.Nginx(lab)
        nginx.start()
        lua = lab.write("wrk-done.lua", bench.WRK_DONE_LUA)
        try:
            for name, _size in bench.HTTP_OBJECTS:
                pcap = out / f"{name}.pcap"
                dump = lab.spawn("bridge", "tcpdump", "-i", "eth0", "-w", str(pcap), "-c", str(args.frames), "-s", "0",
                                 "-U", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
                w = bench.wrk(lab, lua, f"http://{bench.SERVER4}:{bench.HTTP_PORT}/{name}.bin", args.seconds)
                try:
                    dump.wait(timeout=15)
                except subprocess.TimeoutExpired:      # fewer frames than asked for: what came is kept
                    dump.terminate()
                    dump.wait()
                print(f"{pcap}: {w['requests']} requests in {w['duration_us'] / 1e6:.1f} s")
        finally:
            nginx.stop()
            kernel.stop()
    print(f"rules: {out / 'bench.rules'}")
    return 0


def classify(frames: list[bytes]) -> list[str]:
    """Each frame's kind, for untagged IPv4 TCP frames of HTTP flows on port 80."""
    kinds = []
    flows: dict = {}
    for d in frames:
        ihl = (d[14] & 15) * 4
        t = 14 + ihl
        sport, dport = struct.unpack_from("!HH", d, t)
        flags = d[t + 13]
        doff = (d[t + 12] >> 4) * 4
        plen = struct.unpack_from("!H", d, 16)[0] - ihl - doff
        key = (d[26:34], sport, dport) if dport == 80 else (d[30:34] + d[26:30], dport, sport)
        st = flows.setdefault(key, {"body": 0, "ack3": False, "fin": False})
        if flags & 2:
            kind = "syn"
        elif flags & 5:
            kind = "fin"
            st["fin"] = True
        elif plen > 0 and dport == 80:
            kind = "request"
        elif plen > 0 and d[t + doff:t + doff + 5] == b"HTTP/":
            kind = "resp_hdr"
        elif plen > 0:
            st["body"] += 1
            n = st["body"]
            kind = f"body{n if n < 12 else 12 if n < 36 else 36 if n < 72 else 72:02d}"
        elif dport == 80 and not st["ack3"]:
            st["ack3"] = True
            kind = "ack3"
        else:
            kind = "finack" if st["fin"] else "ack"
        kinds.append(kind)
    return kinds


def replay(args) -> int:
    from bridge.pcap import iter_pcaps
    from bridge.hook import settle_heap
    from bridge.replay import _engine, _load_config
    from rules.api import CSUM_SKIP, FrameMeta, Verdict

    cfg = Path(args.workdir) / "capture-profile.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(bench.vars_yaml() + f"classification-file: {bench.classification_file()}\n"
                   + bench.stream_yaml(True))
    t0 = time.perf_counter()
    engine = _engine([args.rules], _load_config(str(cfg)), "ips")
    settle_heap()            # the rules out of the collector's view, as a worker and replay do
    print(f"engine built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    frames = []
    for ts, data, _src, _iface, _lt in iter_pcaps([args.pcap]).records():
        frames.append((ts, bytes(data)))
        if args.limit and len(frames) >= args.limit:
            break
    kinds = classify([d for _, d in frames])
    front = engine.front()
    prof = None
    if args.profile:
        import cProfile
        prof = cProfile.Profile()
    clock = time.perf_counter_ns
    best = None
    for rep in range(1 if prof else args.reps):
        gc.collect()
        spent: collections.Counter = collections.Counter()
        count: collections.Counter = collections.Counter()
        dropped = 0
        start = clock()
        for (ts, d), kind in zip(frames, kinds):
            meta = FrameMeta(ts, "eth0", (), 0, (), 1, CSUM_SKIP)
            if prof is not None and kind == args.profile:
                prof.enable()
                s = clock()
                r = front(d, meta)
                e = clock()
                prof.disable()
            else:
                s = clock()
                r = front(d, meta)
                e = clock()
            spent[kind] += e - s
            count[kind] += 1
            dropped += r.verdict != Verdict.FORWARD
        total = clock() - start
        engine.finish()
        requests = max(count["request"], 1)
        print(f"pass {rep + 1}: {total / 1e3 / len(frames):.2f} us a frame, {total / 1e3 / requests:.1f} us a request, "
              f"{dropped} dropped")
        if best is None or total < best[0]:
            best = (total, spent, count)
    if prof is not None:
        import pstats
        pstats.Stats(prof).sort_stats(args.sort).print_stats(40)
        return 0
    _, spent, count = best
    requests = max(count["request"], 1)
    print(f"best pass, by kind of frame ({requests} requests):")
    print(f"  {'kind':10s} {'us/frame':>9s} {'frames':>8s} {'us/request':>11s}")
    for kind in sorted(spent):
        print(f"  {kind:10s} {spent[kind] / 1e3 / count[kind]:9.2f} {count[kind]:8d} {spent[kind] / 1e3 / requests:11.1f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="capture the bench's HTTP loads (root; builds and removes a lab)")
    c.add_argument("--out", default="/tmp/capture-profile", help="where the pcaps and the rules go")
    c.add_argument("--rules", default="etopen", help="as lab.py bench --rules (default: etopen)")
    c.add_argument("--frames", type=int, default=50000, help="frames captured of each load (default: 50000)")
    c.add_argument("--seconds", type=int, default=2, help="length of each wrk load (default: 2)")
    r = sub.add_parser("replay", help="replay a capture through one engine, by kind of frame")
    r.add_argument("pcap")
    r.add_argument("--rules", default="/tmp/capture-profile/bench.rules", help="the rule file (default: capture's)")
    r.add_argument("--reps", type=int, default=3, help="passes; the best is reported (default: 3)")
    r.add_argument("--limit", type=int, default=0, help="only the first N frames")
    r.add_argument("--profile", metavar="KIND", help="cProfile the frames of this kind only (one pass)")
    r.add_argument("--sort", default="tottime", help="pstats sort key with --profile (default: tottime)")
    r.add_argument("--workdir", default="/tmp/capture-profile", help="where the engine's config is written")
    args = ap.parse_args()
    return capture(args) if args.cmd == "capture" else replay(args)


if __name__ == "__main__":
    sys.exit(main())
