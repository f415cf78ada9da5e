"""The defrag stage: IPv4/IPv6 fragments in, the rebuilt datagram out (rules.defrag)."""
from __future__ import annotations

import ipaddress

import pytest
from scapy.all import IP, UDP, Ether, IPv6, Raw
from scapy.layers.inet import TCP, fragment
from scapy.layers.inet6 import IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, RouterAlert, fragment6

from rules.api import FrameMeta
from rules.decode import decode
from rules.defrag import Defragmenter
from rules.settings import DecodeOptions, DefragSettings
from rules.packet import Packet

C4, S4 = "198.51.100.1", "198.51.100.2"
I4, J4 = "203.0.113.1", "203.0.113.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
META = FrameMeta(ts=1700000000.25, iface="eth0", pcap_cnt=7)
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
CSUM = DecodeOptions(checksum_validation=True)
NOCSUM = DecodeOptions(checksum_validation=False)


def a4(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def a6(s: str) -> int:
    return int(ipaddress.IPv6Address(s))


def one(frame, opts=CSUM, meta=META) -> Packet:
    pkts = decode(bytes(frame), meta, opts)
    assert len(pkts) == 1, [p.events for p in pkts]
    return pkts[0]








def _frags(frames, meta=META):
    return [decode(bytes(f), meta, CSUM)[0] for f in frames]


@pytest.mark.parametrize("order", ["in-order", "reversed", "last-first"])
def test_defrag_ipv4(order):
    body = bytes(range(256)) * 8
    dgram = IP(src=C4, dst=S4, id=321) / TCP(sport=1234, dport=80, flags="PA") / body
    pieces = [ETH / f for f in fragment(dgram, fragsize=512)]
    assert len(pieces) == 5
    if order == "reversed":
        pieces.reverse()
    elif order == "last-first":
        pieces = pieces[-1:] + pieces[:-1]
    d = Defragmenter()
    results = [d.add(p) for p in _frags(pieces)]
    assert results[:-1] == [None] * 4 and results[-1] is not None and len(d) == 0
    (p,) = d.reassembled(results[-1], _frags(pieces[-1:])[0], CSUM)
    assert (p.src, p.dst, p.ip_id, p.frag, p.ip_off) == (a4(C4), a4(S4), 321, False, 0)
    assert (p.sport, p.dport, bytes(p.payload)) == (1234, 80, body)
    assert p.csum_ok is True and p.events == () and p.vlan == () and p.ts == META.ts
    assert d.stats()["defrag.reassembled"] == 1


def test_defrag_ipv6_behind_hop_by_hop():
    body = b"v6-" * 500
    dgram = IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrFragment(id=77) / UDP(sport=5, dport=6) / body
    pieces = [ETH / f for f in fragment6(dgram, 600)]
    assert len(pieces) >= 3
    d = Defragmenter()
    out = [d.add(p) for p in _frags(reversed(pieces))]
    assert out[-1] is not None and all(o is None for o in out[:-1])
    (p,) = d.reassembled(out[-1], _frags(pieces[:1])[0], CSUM)
    assert (p.ipver, p.proto, p.sport, p.dport, bytes(p.payload), p.frag) == (6, 17, 5, 6, body, False)
    assert p.csum_ok is True and p.events == ()


def _udp_frag(ident, off8, data, mf):
    return ETH / IP(src=C4, dst=S4, id=ident, proto=17, frag=off8, flags="MF" if mf else 0) / Raw(data)


_UDP_HDR = bytes(UDP(sport=1, dport=2, len=40, chksum=0))[:8]


# Overlap cases run through Suricata 7.0.10 (default policy) with one content
# rule per candidate layout; the expected payload is the one that alerted.
@pytest.mark.parametrize("frags,expected", [
    ([(1, b"B" * 24, True), (0, _UDP_HDR + b"A" * 16, True), (4, b"C" * 8, False)], b"B" * 24 + b"C" * 8),
    ([(2, b"B" * 8, True), (1, b"A" * 24, True), (0, _UDP_HDR, True), (4, b"C" * 8, False)], b"A" * 24 + b"C" * 8),
], ids=["later-lower-offset-partial", "later-covering"])
def test_defrag_overlaps_as_suricata(frags, expected):
    d = Defragmenter()
    pkts = _frags([_udp_frag(80, *f) for f in frags])
    out = [d.add(p) for p in pkts]
    assert out[-1] is not None
    (p,) = d.reassembled(out[-1], pkts[-1], NOCSUM)
    assert bytes(p.payload) == expected
    assert any("decoder.ipv4.frag_overlap" in q.events for q in pkts)


def test_defrag_overlap_trimmed_and_reported():
    def frag(off8, data, mf):
        return ETH / IP(src=C4, dst=S4, id=9, proto=17, frag=off8, flags="MF" if mf else 0) / Raw(data)
    udp = bytes(UDP(sport=1, dport=2, len=8 + 24))[:8]
    d = Defragmenter()
    a, b, c = _frags([frag(0, udp + b"A" * 16, True), frag(2, b"B" * 16, True), frag(3, b"C" * 8, False)])
    assert d.add(a) is None and d.add(b) is None
    assert "decoder.ipv4.frag_overlap" in b.events
    whole = d.add(c)
    assert "decoder.ipv4.frag_overlap" in c.events
    (p,) = d.reassembled(whole, c, NOCSUM)
    assert bytes(p.payload) == b"A" * 16 + b"B" * 8      # b trimmed behind a, c contained in b
    assert d.stats()["defrag.overlaps"] == 2


def test_defrag_missing_piece_times_out():
    pieces = fragment(IP(src=C4, dst=S4, id=5) / UDP() / (b"x" * 1000), fragsize=256)
    d = Defragmenter(DefragSettings(timeout=60))
    for p in _frags([ETH / f for f in pieces[:-2] + pieces[-1:]]):
        assert d.add(p) is None
    assert len(d) == 1 and d.expire(META.ts + 60) == 0 and d.expire(META.ts + 61) == 1
    assert len(d) == 0 and d.stats()["defrag.timeouts"] == 1


def test_defrag_too_large():
    last = ETH / IP(src=C4, dst=S4, id=8, proto=17, frag=8190) / Raw(b"z" * 64)
    (p,) = _frags([last])
    d = Defragmenter()
    assert d.add(p) is None and "decoder.ipv4.frag_pkt_too_large" in p.events and len(d) == 0


def test_defrag_ignores_non_fragments_and_tracker_limit():
    d = Defragmenter(DefragSettings(trackers=2))
    assert d.add(one(ETH / IP(src=C4, dst=S4) / UDP())) is None
    for i in range(3):
        d.add(one(ETH / IP(src=C4, dst=S4, id=i, flags="MF", proto=17) / Raw(b"x" * 16), NOCSUM))
    assert len(d) == 2 and d.stats()["defrag.evicted"] == 1
