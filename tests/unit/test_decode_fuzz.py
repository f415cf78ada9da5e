"""The decoder never raises: random bytes and mutations of valid frames.

Besides "no exception", every result must be well formed: at least one packet,
offsets inside the frame, payload a view of the frame, and no "decoder.internal"
event (that one means the safety net caught a bug)."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from rules.api import FrameMeta
from rules.decode import DecodeOptions, decode
from rules.defrag import Defragmenter
from rules.settings import DefragSettings
from rules.flow import FlowTable

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
C4, S4, C6, S6 = "198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2"
SEEDS = [bytes(f) for f in (
    ETH / IP(src=C4, dst=S4, options=[IPOption_RR()]) / TCP(options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 3)]) / b"GET /",
    ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IP(src=C4, dst=S4) / UDP(dport=53) / b"q",
    ETH / IP(src=C4, dst=S4, flags="MF") / ICMP() / b"ping",
    ETH / ARP(),
    ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting(type=2, addresses=["2001:db8::9"])
    / IPv6ExtHdrFragment(m=1) / TCP() / b"x",
    ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(data=b"abc"),
    ETH / IP(src=C4, dst=S4) / GRE(key_present=1, chksum_present=1) / IP(src=C4, dst=S4) / TCP(),
    ETH / IP(src=C4, dst=S4) / GRE(proto=0x6558) / ETH / IPv6(src=C6, dst=S6) / UDP(),
    ETH / IP(src=C4, dst=S4) / UDP(dport=4789) / VXLAN() / ETH / Dot1Q(vlan=9) / IP(src=C4, dst=S4) / TCP(),
    ETH / IP(src=C4, dst=S4, id=1, flags="MF", proto=17) / (b"a" * 16),
    ETH / IP(src=C4, dst=S4, id=1, frag=2, proto=17) / (b"b" * 16),
    ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=1, m=1, nh=17) / (b"c" * 16),
    ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=1, offset=2, nh=17) / (b"d" * 16),
)]
META = FrameMeta(ts=1.0, iface="eth0", vlan=(7,))
OPTS = [DecodeOptions(), DecodeOptions(checksum_validation=False, max_tunnel_depth=1)]


DEFRAG = Defragmenter(DefragSettings(trackers=64))       # shared across examples: state carries over, as live


def check(frame: bytes) -> None:
    for opts in OPTS:
        pkts = decode(frame, META, opts)
        assert len(pkts) >= 1
        table = FlowTable()
        for p in pkts:
            assert "decoder.internal" not in p.events, p.events
            assert all(isinstance(e, str) and e.startswith("decoder.") for e in p.events)
            assert 0 <= p.l3_off <= len(frame) and 0 <= p.l4_off <= len(frame)
            assert isinstance(p.payload, memoryview) and len(p.payload) <= len(frame)
            assert p.vlan[:1] == (7,)
            if p.ipver:
                assert p.ipver in (4, 6) and 0 <= p.sport < 65536 and 0 <= p.dport < 65536
            table.lookup(p)         # whatever the decoder made, the flow table takes it
            whole = DEFRAG.add(p)   # and the defragmenter
            if whole is not None:
                for q in DEFRAG.reassembled(whole, p, opts):
                    assert "decoder.internal" not in q.events
                    table.lookup(q)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes(data):
    check(data)


@settings(max_examples=3000, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=60), st.sampled_from([0x0800, 0x86DD, 0x8100, 0x88A8, 0x0806]))
def test_random_bytes_behind_a_known_ethertype(body, etype):
    check(b"\x02" * 12 + etype.to_bytes(2, "big") + body)


@settings(max_examples=4000, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 400))
def test_mutated_valid_frames(seed, edits, cut):
    raw = bytearray(seed)
    for pos, val in edits:
        raw[pos % len(raw)] = val
    check(bytes(raw[:max(cut, len(raw) - cut)]))
