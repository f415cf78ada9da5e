"""Decoder speed: ns per frame for a few frame types (a measurement, not a test).

    python3 tests/bench/bench_decode.py [--number N]

Frames are built once with scapy; the timed loop calls only rules.decode.decode.
Checksum validation is measured on and off (it reads every payload byte).
"""
from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop  # noqa: E402
from scapy.layers.l2 import GRE, Dot1Q, Ether  # noqa: E402
from scapy.layers.vxlan import VXLAN  # noqa: E402

from rules.api import FrameMeta  # noqa: E402
from rules.decode import DecodeOptions, decode  # noqa: E402
from rules.flow import FlowTable  # noqa: E402

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
C4, S4 = "198.51.100.1", "198.51.100.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
TS_OPT = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]

FRAMES = {
    "tcp4-ack-64B": ETH / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="A", options=TS_OPT) / (b"x" * 64),
    "tcp4-ack-1448B": ETH / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="PA", options=TS_OPT) / (b"x" * 1448),
    "tcp4-syn-opts": ETH / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="S",
                                                   options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)),
                                                            ("NOP", None), ("WScale", 7)]),
    "udp4-dns": ETH / IP(src=C4, dst=S4) / UDP(sport=5353, dport=53) / (b"q" * 40),
    "icmp4-echo": ETH / IP(src=C4, dst=S4) / ICMP(id=7, seq=1) / (b"p" * 56),
    "vlan-tcp4": ETH / Dot1Q(vlan=100) / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="A") / (b"x" * 64),
    "tcp6-ack-64B": ETH / IPv6(src=C6, dst=S6) / TCP(sport=40000, dport=80, flags="A") / (b"x" * 64),
    "tcp6-hbh-frag0": ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(m=1)
                      / TCP(sport=1, dport=2) / (b"x" * 64),
    "gre-tcp4": ETH / IP(src=C4, dst=S4) / GRE() / IP(src="203.0.113.1", dst="203.0.113.2")
                / TCP(sport=1, dport=2, flags="A") / (b"x" * 64),
    "vxlan-tcp4": ETH / IP(src=C4, dst=S4) / UDP(sport=5000, dport=4789) / VXLAN(vni=42) / ETH
                  / IP(src="203.0.113.1", dst="203.0.113.2") / TCP(sport=1, dport=2, flags="A") / (b"x" * 64),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=50000)
    args = ap.parse_args()
    meta = FrameMeta(ts=1.0, iface="eth0")
    print(f"{'frame':18} {'bytes':>5} {'csum off ns':>12} {'csum on ns':>11} {'+flow ns':>9}")
    for name, pkt in FRAMES.items():
        raw = bytes(pkt)
        row = [f"{name:18} {len(raw):5}"]
        for csum in (False, True):
            opts = DecodeOptions(checksum_validation=csum)
            t = min(timeit.repeat(lambda: decode(raw, meta, opts), number=args.number, repeat=3))
            row.append(f"{t / args.number * 1e9:12.0f}" if not csum else f"{t / args.number * 1e9:11.0f}")
        table = FlowTable()
        opts = DecodeOptions(checksum_validation=False)

        def both():
            for p in decode(raw, meta, opts):
                table.lookup(p)
        t = min(timeit.repeat(both, number=args.number, repeat=3))
        row.append(f"{t / args.number * 1e9:9.0f}")
        print(" ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
