#!/usr/bin/env python3
"""What one flow and one TCP session cost in the engine's memory (tracemalloc).

    python3 tests/bench/bench_flow_memory.py [--flows 20000]

`flow.memcap` (bytes, Suricata's unit) becomes a number of flows by dividing by
rules.settings.FLOW_BYTES, and `stream.memcap` a number of TCP sessions by
rules.stream.SESSION_BYTES: this measures both so the constants stay honest.
UDP flows: one packet each.  TCP: handshake plus one small segment each way, so
the session, its two streams and the held data exist (the held bytes
themselves are bounded by stream.reassembly.memcap, not counted here).
"""
from __future__ import annotations

import argparse
import struct
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def frames(kind: str, n: int):
    from scapy.all import IP, TCP, UDP, Ether

    from rules.checksum import fill_l4_checksum

    c, s = "198.51.100.1", "203.0.113.1"
    if kind == "udp":
        t = bytes(Ether() / IP(src=c, dst=s) / UDP(sport=1, dport=53) / b"query")
        for i in range(n):
            f = bytearray(t)
            struct.pack_into("!HH", f, 34, 1024 + i % 60000, 53 + i // 60000)
            fill_l4_checksum(f, 14)
            yield bytes(f)
        return
    tmpl = [bytes(Ether() / IP(src=a, dst=b) / TCP(sport=sp, dport=dp, flags=fl, seq=sq, ack=ak) / d)
            for a, b, sp, dp, fl, sq, ak, d in (
                (c, s, 1, 80, "S", 100, 0, b""), (s, c, 80, 1, "SA", 500, 101, b""),
                (c, s, 1, 80, "A", 101, 501, b""), (c, s, 1, 80, "PA", 101, 501, b"GET / HTTP/1.1\r\n\r\n"),
                (s, c, 80, 1, "PA", 501, 119, b"HTTP/1.1 200 OK\r\n\r\n"))]
    for i in range(n):
        port = 1024 + i % 60000
        hi = 80 + i // 60000
        for j, t in enumerate(tmpl):
            f = bytearray(t)
            if j in (1, 4):
                struct.pack_into("!HH", f, 34, hi, port)
            else:
                struct.pack_into("!HH", f, 34, port, hi)
            fill_l4_checksum(f, 14)
            yield bytes(f)


def measure(kind: str, n: int) -> float:
    from rules.api import FrameMeta
    from rules.engine import Engine
    from rules.parser import parse_rule
    from rules.settings import EngineSettings

    e = Engine([parse_rule('alert tcp any any -> any any (msg:"x"; content:"zzzz"; sid:1;)'),
                parse_rule('alert udp any any -> any any (msg:"y"; content:"zzzz"; sid:2;)')],
               EngineSettings.for_mode("ips"))
    fs = list(frames(kind, n))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, f in enumerate(fs):
        e.inspect(f, FrameMeta(ts=1.0 + i * 1e-5, iface=""))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    st = e.stats()
    assert st["flow.active"] == n and st["drops"] == 0 and (kind != "tcp" or st["stream.sessions"] == n)
    return (after - before) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=20000)
    n = ap.parse_args().flows
    from rules.settings import FLOW_BYTES
    from rules.stream import SESSION_BYTES

    udp, tcp = measure("udp", n), measure("tcp", n)
    print(f"{n} flows: UDP {udp:,.0f} bytes/flow, TCP {tcp:,.0f} bytes/flow with its session "
          f"(session part about {tcp - udp:,.0f})")
    print(f"constants: FLOW_BYTES {FLOW_BYTES}, SESSION_BYTES {SESSION_BYTES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
