#!/usr/bin/env python3
"""Engine benchmark: per-packet cost of `Engine.inspect` against rule-set size.

    python3 tests/bench/bench_engine.py                 # 10, 1000, 10000 rules
    python3 tests/bench/bench_engine.py --sizes 1000 --profile
    python3 tests/bench/bench_engine.py --replay --rules-check   # also the CLI timings
    python3 tests/bench/bench_engine.py --traffic stream --sizes 10,1000,et   # long transfers + short flows

Prints numbers, asserts nothing (see tests/bench/README.md for the targets).

Traffic (`--traffic`): `mixed`, one fixed pcap (HTTP-like TCP sessions,
DNS-like UDP, ICMP echo, IPv6 TCP/UDP; about 20k packets), or `stream`, long
TCP transfers (past and within the 1 MiB reassembly depth, MSS-sized
segments, an ACK every second segment) plus many short HTTP-like flows; each
crafted once with scapy from a fixed seed and cached in the temp dir.  Size
`et` is every ET Open rule the loader accepts.  Rules: the first N ET Open rules that our
loader accepts (file order of the sorted et-open/*.rules), topped up with
seeded synthetic rules (tests/bench/gen_rules.py) when fewer load.  Each rule
set is written to a file and loaded through `rules.loader.load`, so the load
time includes parsing.  The timed loop calls `Engine.inspect` directly on
pre-read frames (time.perf_counter around the loop, never inside the engine);
each measurement uses a fresh Engine so flow state starts empty.  Rates are
computed from the process CPU time of the loop (time.process_time), which a
busy machine disturbs much less than wall time; wall rates are printed too.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import glob
import io
import os
import pstats
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

ET_DIR = "/work/shared/corpus/rules/et-open"
PCAP_VERSION = 1
STREAM_PCAP_VERSION = 1
BENCH_YAML = """\
vars:
  address-groups:
    HOME_NET: "[198.51.100.0/24,2001:db8:1::/48]"
    EXTERNAL_NET: "!$HOME_NET"
stream:
  midstream: true
classification-file: /work/shared/corpus/rules/et-open/classification.config
"""

# ------------------------------------------------------------------ traffic
WORDS = ("index login admin api v1 v2 search images static css js account update news cart "
         "product user profile download upload config status health metrics video").split()
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "python-requests/2.31", "Wget/1.21"]
DOMAINS = ["example", "test", "invalid", "local", "corp", "shop", "mail", "cdn", "static", "api"]


def craft_pcap(path: Path, target: int = 20_000, seed: int = 7) -> int:
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter

    rng = random.Random(seed)
    w = PcapWriter(str(path), linktype=1, sync=False)
    t = [1_700_000_000.0]
    n = [0]
    eth_c = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    eth_s = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")

    def put(p):
        t[0] += rng.uniform(0.00001, 0.002)
        p.time = round(t[0], 6)
        w.write(p)
        n[0] += 1

    def tcp_session(cip, sip, v6, dport, request, response, segs=1):
        sport = rng.randint(32768, 60999)
        mk = (lambda a, b: IPv6(src=a, dst=b)) if v6 else (lambda a, b: IP(src=a, dst=b, id=rng.randrange(65536)))
        cs, ss = rng.randrange(2**32), rng.randrange(2**32)

        def c(flags, data=b""):
            nonlocal cs
            put(eth_c / mk(cip, sip) / TCP(sport=sport, dport=dport, flags=flags, seq=cs, ack=ss if "A" in flags else 0) / data)
            cs = (cs + len(data) + (1 if ("S" in flags or "F" in flags) else 0)) % 2**32

        def s(flags, data=b""):
            nonlocal ss
            put(eth_s / mk(sip, cip) / TCP(sport=dport, dport=sport, flags=flags, seq=ss, ack=cs if "A" in flags else 0) / data)
            ss = (ss + len(data) + (1 if ("S" in flags or "F" in flags) else 0)) % 2**32

        c("S"); s("SA"); c("A")
        c("PA", request); s("A")
        chunk = max(1, len(response) // segs)
        for i in range(0, len(response), chunk):
            s("PA", response[i:i + chunk])
        c("A")
        c("FA"); s("FA"); c("A")

    while n[0] < target:
        r = rng.random()
        cip = f"198.51.100.{rng.randint(1, 250)}"
        sip = f"203.0.113.{rng.randint(1, 250)}"
        if r < 0.45:       # HTTP-like
            path = "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.3:
                path += "?id=%d&q=%s" % (rng.randrange(10**6), rng.choice(WORDS))
            host = f"www.{rng.choice(DOMAINS)}.example"
            req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {rng.choice(AGENTS)}\r\n"
                   f"Accept: */*\r\nConnection: close\r\n\r\n").encode()
            body = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz <>/=\n") for _ in range(rng.randint(200, 2800)))
            resp = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n"
                    f"Server: nginx\r\n\r\n").encode() + body
            tcp_session(cip, sip, False, rng.choice([80, 80, 80, 8080]), req, resp, segs=max(1, len(resp) // 1400 + 1))
        elif r < 0.75:     # DNS-like
            qname = f"{rng.choice(WORDS)}.{rng.choice(DOMAINS)}.example."
            qid = rng.randrange(65536)
            sport = rng.randint(32768, 60999)
            put(eth_c / IP(src=cip, dst="203.0.113.53", id=rng.randrange(65536)) / UDP(sport=sport, dport=53)
                / DNS(id=qid, rd=1, qd=DNSQR(qname=qname)))
            put(eth_s / IP(src="203.0.113.53", dst=cip, id=rng.randrange(65536)) / UDP(sport=53, dport=sport)
                / DNS(id=qid, qr=1, ra=1, qd=DNSQR(qname=qname), an=DNSRR(rrname=qname, rdata=f"203.0.113.{rng.randint(1, 250)}")))
        elif r < 0.85:     # ICMP echo
            ident = rng.randrange(65536)
            for seq in range(1, 4):
                put(eth_c / IP(src=cip, dst=sip, id=rng.randrange(65536)) / ICMP(type=8, id=ident, seq=seq) / (b"\x00" * 48))
                put(eth_s / IP(src=sip, dst=cip, id=rng.randrange(65536)) / ICMP(type=0, id=ident, seq=seq) / (b"\x00" * 48))
        else:              # IPv6: TLS-like TCP and UDP
            c6 = f"2001:db8:1::{rng.randint(1, 0xffff):x}"
            s6 = f"2001:db8:2::{rng.randint(1, 0xffff):x}"
            if rng.random() < 0.7:
                hello = b"\x16\x03\x01" + bytes(rng.randrange(256) for _ in range(rng.randint(200, 500)))
                resp = b"\x16\x03\x03" + bytes(rng.randrange(256) for _ in range(rng.randint(1000, 3000)))
                tcp_session(c6, s6, True, 443, hello, resp, segs=3)
            else:
                sport = rng.randint(32768, 60999)
                for _ in range(rng.randint(2, 6)):
                    put(eth_c / IPv6(src=c6, dst=s6) / UDP(sport=sport, dport=rng.choice([123, 443, 5353]))
                        / bytes(rng.randrange(256) for _ in range(rng.randint(40, 300))))
    w.close()
    return n[0]


def craft_stream_pcap(path: Path, seed: int = 11) -> int:
    """Long transfers (4 x 2 MiB, past the depth; 4 x 512 KiB) interleaved with 1,500 short
    HTTP-like sessions: what an inline IPS forwards most of, bulk data."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapWriter

    rng = random.Random(seed)
    w = PcapWriter(str(path), linktype=1, sync=False)
    t = [1_700_000_000.0]
    n = [0]
    eth_c = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    eth_s = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    text = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789 <>/=\n") for _ in range(1 << 16))

    def put(p):
        t[0] += rng.uniform(0.00001, 0.0005)
        p.time = round(t[0], 6)
        w.write(p)
        n[0] += 1

    class Conn:
        def __init__(self, cip, sip, dport):
            self.cip, self.sip, self.dport = cip, sip, dport
            self.sport = rng.randint(32768, 60999)
            self.cs, self.ss = rng.randrange(2**32), rng.randrange(2**32)

        def c(self, flags, data=b""):
            put(eth_c / IP(src=self.cip, dst=self.sip) / TCP(sport=self.sport, dport=self.dport, flags=flags,
                                                            seq=self.cs, ack=self.ss if "A" in flags else 0,
                                                            window=65535) / data)
            self.cs = (self.cs + len(data) + (1 if ("S" in flags or "F" in flags) else 0)) % 2**32

        def s(self, flags, data=b""):
            put(eth_s / IP(src=self.sip, dst=self.cip) / TCP(sport=self.dport, dport=self.sport, flags=flags,
                                                            seq=self.ss, ack=self.cs if "A" in flags else 0,
                                                            window=65535) / data)
            self.ss = (self.ss + len(data) + (1 if ("S" in flags or "F" in flags) else 0)) % 2**32

        def open(self, request):
            self.c("S"); self.s("SA"); self.c("A")
            self.c("PA", request)

        def close(self):
            self.c("FA"); self.s("FA"); self.c("A")

    bulks = []
    for size in [2 << 20] * 4 + [512 << 10] * 4:
        k = Conn(f"198.51.100.{rng.randint(1, 250)}", f"203.0.113.{rng.randint(1, 250)}", 80)
        k.open(b"GET /big.iso HTTP/1.1\r\nHost: files.example\r\n\r\n")
        bulks.append([k, size, 0])
    short_left = 1500
    while bulks or short_left:
        if bulks and (not short_left or rng.random() < 0.8):
            b = rng.choice(bulks)
            k, size, sent = b
            for _ in range(2):
                off = sent % len(text)
                seg = (text[off:] + text)[:min(1448, size - sent)]
                k.s("A" if sent + len(seg) < size else "PA", seg)
                sent += len(seg)
                if sent >= size:
                    break
            k.c("A")
            b[2] = sent
            if sent >= size:
                k.close()
                bulks.remove(b)
        else:
            short_left -= 1
            k = Conn(f"198.51.100.{rng.randint(1, 250)}", f"203.0.113.{rng.randint(1, 250)}", 80)
            path = "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
            k.open(f"GET {path} HTTP/1.1\r\nHost: www.{rng.choice(DOMAINS)}.example\r\n"
                   f"User-Agent: {rng.choice(AGENTS)}\r\n\r\n".encode())
            k.s("A")
            off = rng.randrange(len(text) - 3000)
            k.s("PA", b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n" + text[off:off + rng.randint(100, 1400)])
            k.c("A")
            k.close()
    w.close()
    return n[0]


def read_pcap(path: Path) -> list[tuple[float, bytes]]:
    data = path.read_bytes()
    magic = struct.unpack_from("<I", data, 0)[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[off:off + incl]))
        off += incl
    return out


def bench_pcap(traffic: str = "mixed") -> Path:
    if traffic == "stream":
        path = Path(tempfile.gettempdir()) / f"ipsbridge-bench-stream-v{STREAM_PCAP_VERSION}.pcap"
        craft = craft_stream_pcap
    else:
        path = Path(tempfile.gettempdir()) / f"ipsbridge-bench-mixed-v{PCAP_VERSION}.pcap"
        craft = craft_pcap
    if not path.exists():
        t0 = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        count = craft(tmp)
        tmp.rename(path)
        print(f"crafted {path} ({count} packets) in {time.perf_counter() - t0:.1f}s")
    return path


# ------------------------------------------------------------------ rules
def config():
    from conf.load import load_text

    return load_text(BENCH_YAML, source="<bench>")


def et_files() -> list[str]:
    return sorted(glob.glob(os.path.join(ET_DIR, "*.rules")))


def load_et(cfg):
    from conf.build import load_rules

    t0 = time.perf_counter()
    res = load_rules(cfg, et_files())
    return res, time.perf_counter() - t0


def rule_set_text(et_rules, n: int) -> tuple[str, int, int]:
    from gen_rules import generate

    chosen = [r.text for r in et_rules[:n]]
    synth = generate(n - len(chosen)) if len(chosen) < n else []
    return "\n".join(chosen + synth) + "\n", len(chosen), len(synth)


def build_engine(path: Path, cfg, packet_only: bool = False):
    from conf.build import engine_settings, load_rules
    from rules.engine import Engine

    t0 = time.perf_counter()
    res = load_rules(cfg, [str(path)])
    t1 = time.perf_counter()
    eng = Engine(res.rules, engine_settings(cfg, "ips"))
    if packet_only:           # a measurement switch, not a setting: no TCP packet gets a stream view
        eng.streams.update = lambda pkt, flow: (None, "")
    t2 = time.perf_counter()
    return eng, res, t1 - t0, t2 - t1


def run_loop(eng, frames, metas):
    """One pass over the frames, timed.  The heap alive before it (the engine's rules, and
    this script's parsed ET Open, 24,770 rules) is frozen first, as a worker freezes its
    engine once built (bridge.hook.settle_heap): otherwise every full collection the pass
    triggers walks all of it, and with all of ET Open parsed that was a third of the time
    measured at 1,000 rules, none of it the engine's."""
    inspect = eng.inspect
    alerts = drops = 0
    gc.collect()
    gc.freeze()
    try:
        c0 = time.process_time()
        t0 = time.perf_counter()
        for f, m in zip(frames, metas):
            r = inspect(f, m)
            if r.verdict:
                drops += 1
            if r.events:
                alerts += len(r.events)
        return time.perf_counter() - t0, time.process_time() - c0, alerts, drops
    finally:
        gc.unfreeze()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10,1000,10000", help="rule counts, comma separated; 'et': all of ET Open")
    ap.add_argument("--traffic", choices=("mixed", "stream"), default="mixed")
    ap.add_argument("--packet-only", action="store_true",
                    help="measure packet-only matching in this same build: the stream stage is short-circuited "
                    "(every TCP payload inspected alone, as before reassembly); for the reassembly cost ratio")
    ap.add_argument("--repeat", type=int, default=3, help="fresh-engine passes per size (best is reported)")
    ap.add_argument("--synthetic-only", action="store_true",
                    help="no ET rules: only gen_rules.py rules (isolates the content-prefilter path)")
    ap.add_argument("--profile", action="store_true", help="cProfile one pass at the largest size")
    ap.add_argument("--replay", action="store_true", help="also time `python3 -m bridge replay` with 1000 rules")
    ap.add_argument("--rules-check", action="store_true", help="also time `python3 -m bridge rules check` on all of ET Open")
    args = ap.parse_args(argv)
    from rules.api import FrameMeta

    pcap = bench_pcap(args.traffic)
    recs = read_pcap(pcap)
    frames = [f for _, f in recs]
    metas = [FrameMeta(ts=ts, iface="", pcap_cnt=i) for i, (ts, _) in enumerate(recs, 1)]
    nbytes = sum(map(len, frames))
    print(f"traffic: {pcap} {len(frames)} packets, {nbytes / len(frames):.0f} bytes average")

    cfg = config()
    et, et_secs = load_et(cfg)
    print(f"ET Open via rules.loader.load: {et.counts} in {et_secs:.2f}s "
          f"({et.counts.get('total', 0) / et_secs:,.0f} rules/s)")
    sizes = [len(et.rules) if s == "et" else int(s) for s in args.sizes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="ipsbridge-bench-"))
    results = {}
    for n in sizes:
        text, n_et, n_syn = rule_set_text([] if args.synthetic_only else et.rules, n)
        path = tmp / f"rules-{n}.rules"
        path.write_text(text)
        best = None
        for _ in range(args.repeat):
            eng, res, load_s, build_s = build_engine(path, cfg, args.packet_only)
            wall, cpu, alerts, drops = run_loop(eng, frames, metas)
            if best is None or cpu < best[1]:
                best = (wall, cpu, alerts, drops, load_s, build_s, len(res.rules), len(res.errors))
        wall, cpu, alerts, drops, load_s, build_s, loaded, refused = best
        pps = len(frames) / cpu
        results[n] = pps
        print(f"{n:>6} rules ({n_et} ET + {n_syn} synthetic; {loaded} loaded, {refused} refused): "
              f"load {load_s:.2f}s + build {build_s:.2f}s; "
              f"{pps:,.0f} pkt/s, {1e6 / pps:.1f} us/pkt, {1e9 * cpu / nbytes:.0f} ns/byte CPU "
              f"({len(frames) / wall:,.0f} pkt/s wall); {alerts} events, {drops} non-forward verdicts")
    if 10 in results and 10000 in results:
        print(f"cost ratio 10000/10 rules: {results[10] / results[10000]:.2f}x (target <= 1.5x)")
    if 1000 in results:
        print(f"1000 rules, one core: {results[1000]:,.0f} pkt/s (target >= 100,000 pkt/s)")

    if args.profile:
        n = max(sizes)
        eng, *_ = build_engine(tmp / f"rules-{n}.rules", cfg)
        prof = cProfile.Profile()
        prof.enable()
        run_loop(eng, frames, metas)
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        print(f"--- cProfile, {n} rules, one pass, top 25 by own time ---")
        print(s.getvalue())

    if args.replay:
        path = tmp / "rules-1000.rules"
        if not path.exists():
            path.write_text(rule_set_text([] if args.synthetic_only else et.rules, 1000)[0])
        ycfg = tmp / "bench.yaml"
        ycfg.write_text(BENCH_YAML)
        cmd = [sys.executable, "-m", "bridge", "replay", "-c", str(ycfg), "-r", str(path), "--mode", "ips",
               "--eve", str(tmp / "eve.json"), str(pcap)]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"replay CLI, 1000 rules, {len(frames)} packets: {wall:.2f}s wall (exit {p.returncode}; "
              f"{len(frames) / wall:,.0f} pkt/s including start-up and load)")
        if p.returncode:
            print(p.stderr[-2000:])

    if args.rules_check:
        cmd = [sys.executable, "-m", "bridge", "rules", "check", *et_files()]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        total = sum(1 for f in et_files() for line in open(f, errors="replace")
                    if line.strip() and not line.lstrip().startswith("#"))
        print(f"rules check, all ET Open ({total} rule lines): {wall:.2f}s wall, "
              f"{total / wall:,.0f} rules/s (exit {p.returncode})")
        tail = (p.stdout.strip().splitlines() or [""])[-3:] + (p.stderr.strip().splitlines() or [""])[-3:]
        print("  last lines: " + " | ".join(x for x in tail if x)[:600])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
