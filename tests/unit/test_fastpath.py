"""bridge.fastpath: keys sliced from byte-literal frames, install/hit, flow ends, sync, kernel calls.

The kernel backend is a fake that records its calls (`FakeKernel`), written against the
KernelOffload API of the issue 8 plan (add/read/remove/totals); the inspector is a fake
that records `bypassed` calls and says which flows ended.
"""
from __future__ import annotations

import struct

import pytest

from bridge.fastpath import (
    DROP,
    FORWARD,
    MISS,
    SCAN_BACKOFF,
    SCAN_STREAK,
    FastPath,
    FastPort,
    _parse,
)
from rules.api import Bypass

MAC = bytes.fromhex("020000000002" "020000000001")        # dst, src
A4, B4 = bytes([198, 51, 100, 1]), bytes([203, 0, 113, 2])
A6 = bytes.fromhex("20010db8000000000000000000000001")
B6 = bytes.fromhex("20010db8000000000000000000000002")
ACK, SYN, FIN, RST, PSH = 0x10, 0x02, 0x01, 0x04, 0x08


# ---------------------------------------------------------------------- frames
def tcp(sport=40000, dport=80, flags=ACK | PSH, payload=b"", doff=5) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, doff << 4, flags, 65535, 0, 0) + payload


def udp(sport=40000, dport=53, payload=b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(l4: bytes, proto=6, src=A4, dst=B4, frag=0x4000, options=b"", total=None) -> bytes:
    ihl = 5 + len(options) // 4
    n = ihl * 4 + len(l4) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, n, 7, frag, 64, proto, 0, src, dst) + options + l4


def ipv6(l4: bytes, nh=6, src=A6, dst=B6, plen=None) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(l4) if plen is None else plen, nh, 64, src, dst) + l4


def eth(l3: bytes, et=0x0800, tags=()) -> bytes:
    out = MAC
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid)
    return out + struct.pack("!H", et) + l3


def tcp4(sport=40000, dport=80, flags=ACK | PSH, payload=b"x" * 20, src=A4, dst=B4, tags=()) -> bytes:
    return eth(ipv4(tcp(sport, dport, flags, payload), 6, src, dst), tags=tags)


def udp4(sport=40000, dport=53, payload=b"q" * 20, src=A4, dst=B4, tags=()) -> bytes:
    return eth(ipv4(udp(sport, dport, payload), 17, src, dst), tags=tags)


def tcp6(sport=40000, dport=443, flags=ACK, payload=b"y" * 10, src=A6, dst=B6) -> bytes:
    return eth(ipv6(tcp(sport, dport, flags, payload), 6, src, dst), et=0x86DD)


def icmp4(itype, ident=0x1234, src=A4, dst=B4, tags=()) -> bytes:
    return eth(ipv4(struct.pack("!BBHHH", itype, 0, 0, ident, 1) + b"p" * 56, 1, src, dst, frag=0x4000), tags=tags)


def icmp6(itype, ident=0x1234, src=A6, dst=B6) -> bytes:
    return eth(ipv6(struct.pack("!BBHHH", itype, 0, 0, ident, 1) + b"p" * 56, 58, src, dst), et=0x86DD)


# One frame written out byte by byte, so the offsets the fast path slices are visible:
# 198.51.100.1:40000 -> 203.0.113.2:80 TCP ACK|PSH with 4 bytes of payload (58 bytes).
TCP4_LITERAL = bytes.fromhex(
    "020000000002" "020000000001" "0800"                       # Ethernet, IPv4
    "4500" "002c" "0007" "4000" "40" "06" "0000"                 # IHL 5, total 44, DF, TTL 64, TCP
    "c6336401" "cb007102"                                       # src, dst  (L3+12 .. L3+20)
    "9c40" "0050"                                               # sport 40000, dport 80 (.. L3+24)
    "000003e8" "000007d0" "50" "18" "ffff" "0000" "0000"        # seq, ack, doff 5, ACK|PSH
    "74657374")                                                 # "test"


# ---------------------------------------------------------------------- fakes
class Handle:
    """The inspector's flow handle (the engine's is its Flow)."""

    def __init__(self, flow_id=1):
        self.flow_id = flow_id


class FakeInspector:
    def __init__(self):
        self.calls: list[tuple] = []
        self.ended: set[int] = set()

    def bypassed(self, flow, ts, ps, bs, pc, bc) -> bool:
        self.calls.append((flow, ts, ps, bs, pc, bc))
        return id(flow) not in self.ended


class NoBypassed:
    """An inspector without `bypassed` (ForwardAll-like)."""


class FakeKernel:
    """Records KernelOffload calls; `counts[(ifindex, src, sport)] = (pkts, bytes, last_ns)` is
    what read() returns."""

    def __init__(self, accept=True):
        self.calls: list[tuple] = []
        self.counts: dict[tuple, tuple[int, int, int]] = {}
        self.accept = accept

    def add(self, ifindex, ipver, proto, vlan, src, dst, sport, dport, action, redirect):
        self.calls.append(("add", ifindex, ipver, proto, vlan, src, dst, sport, dport, action, redirect))
        return self.accept

    def read(self, ifindex, ipver, proto, vlan, src, dst, sport, dport):
        self.calls.append(("read", ifindex, src, sport))
        return self.counts.get((ifindex, src, sport))

    def remove(self, ifindex, ipver, proto, vlan, src, dst, sport, dport):
        self.calls.append(("remove", ifindex, ipver, proto, vlan, src, dst, sport, dport))

    def totals(self):
        return {"bypass.kernel.pass_frames": 7, "bypass.kernel.pass_bytes": 700,
                "bypass.kernel.drop_frames": 0, "bypass.kernel.drop_bytes": 0}


def bridge_fp(insp=None, mode="ips", kernel=None) -> FastPath:
    return FastPath([FastPort(0, 11, 1), FastPort(1, 12, 0)], insp if insp is not None else FakeInspector(),
                    kernel=kernel, mode=mode)


def ids_fp(insp=None, kernel=None) -> FastPath:
    return FastPath([FastPort(0, 21, None)], insp if insp is not None else FakeInspector(), kernel=kernel,
                    mode="ids")


def hit(fp, port, frame, vlan=0, ts=1.0):
    return fp.hit(port, frame, 0, len(frame), vlan, ts)


def install(fp, port, frame, action="pass", to_server=True, flow=None, vlan=0, ts=1.0):
    flow = flow if flow is not None else Handle()
    return fp.install(port, frame, 0, len(frame), vlan, Bypass(flow, action, to_server, action), ts), flow


# ---------------------------------------------------------------------- keys
def test_literal_frame_key_is_the_sliced_bytes():
    proto, key, vlan, ipver, ip_len, flags, l4 = _parse(TCP4_LITERAL, 0, len(TCP4_LITERAL), 0)
    assert (proto, vlan, ipver, ip_len, flags, l4) == (6, 0, 4, 44, ACK | PSH, 34)
    assert key == TCP4_LITERAL[26:38] == A4 + B4 + struct.pack("!HH", 40000, 80)


KEYABLE = {
    "ipv4-tcp": (tcp4(), 0, (6, A4 + B4 + struct.pack("!HH", 40000, 80), 0, 4, 60)),
    "ipv4-udp": (udp4(), 0, (17, A4 + B4 + struct.pack("!HH", 40000, 53), 0, 4, 48)),
    "ipv4-udp-short": (eth(ipv4(udp(1, 2), 17)), 0, (17, A4 + B4 + struct.pack("!HH", 1, 2), 0, 4, 28)),
    "ipv4-df-clear": (eth(ipv4(tcp(), frag=0)), 0, (6, A4 + B4 + struct.pack("!HH", 40000, 80), 0, 4, 40)),
    "ipv4-padded": (eth(ipv4(udp(5, 6), 17)) + bytes(18), 0, (17, A4 + B4 + struct.pack("!HH", 5, 6), 0, 4, 28)),
    "ipv6-tcp": (tcp6(), 0, (6, A6 + B6 + struct.pack("!HH", 40000, 443), 0, 6, 70)),
    "ipv6-udp": (eth(ipv6(udp(7, 8, b"z"), 17), et=0x86DD), 0, (17, A6 + B6 + struct.pack("!HH", 7, 8), 0, 6, 49)),
    "stripped-vlan": (tcp4(), 100, (6, A4 + B4 + struct.pack("!HH", 40000, 80), 100, 4, 60)),
    "inband-8021q": (tcp4(tags=((0x8100, 0x2064),)), 0, (6, A4 + B4 + struct.pack("!HH", 40000, 80), 100, 4, 60)),
    "inband-8021ad": (udp4(tags=((0x88A8, 7),)), 0, (17, A4 + B4 + struct.pack("!HH", 40000, 53), 7, 4, 48)),
    # ICMP echo: the engine keys the flow on the type and its counterpart, so do the "ports"
    "icmp-echo-request": (icmp4(8), 0, (1, A4 + B4 + bytes((0, 8, 0, 0)), 0, 4, 84)),
    "icmp-echo-reply": (icmp4(0), 0, (1, A4 + B4 + bytes((0, 0, 0, 8)), 0, 4, 84)),
    "icmp-echo-header-only": (eth(ipv4(b"\x08\x00\x00\x00\x00\x01\x00\x01", proto=1)), 0,
                              (1, A4 + B4 + bytes((0, 8, 0, 0)), 0, 4, 28)),
    "icmp-echo-stripped-vlan": (icmp4(8), 9, (1, A4 + B4 + bytes((0, 8, 0, 0)), 9, 4, 84)),
    "icmp-echo-inband-8021q": (icmp4(8, tags=((0x8100, 9),)), 0, (1, A4 + B4 + bytes((0, 8, 0, 0)), 9, 4, 84)),
    "icmpv6-echo-request": (icmp6(128), 0, (58, A6 + B6 + bytes((0, 128, 0, 129)), 0, 6, 104)),
    "icmpv6-echo-reply": (icmp6(129), 0, (58, A6 + B6 + bytes((0, 129, 0, 128)), 0, 6, 104)),
}


@pytest.mark.parametrize("name", sorted(KEYABLE))
def test_keyable(name):
    frame, vlan, (proto, key, kvlan, ipver, ip_len) = KEYABLE[name]
    got = _parse(frame, 0, len(frame), vlan)
    assert got is not None and got[:5] == (proto, key, kvlan, ipver, ip_len)


NOT_KEYABLE = {
    "qinq-inband": (tcp4(tags=((0x88A8, 10), (0x8100, 20))), 0),
    "qinq-stripped-outer": (tcp4(tags=((0x8100, 20),)), 10),
    "priority-tag": (tcp4(tags=((0x8100, 0x6000),)), 0),
    "tpid-9100": (tcp4(tags=((0x9100, 20),)), 0),
    "ip-options": (eth(ipv4(tcp(), options=b"\x01\x01\x01\x00")), 0),
    "first-fragment": (eth(ipv4(tcp(), frag=0x2000)), 0),
    "later-fragment": (eth(ipv4(tcp(), frag=0x0003)), 0),
    "icmp-unreachable": (eth(ipv4(b"\x03\x03\x00\x00" + bytes(4) + ipv4(udp()), proto=1)), 0),
    "icmp-timestamp": (eth(ipv4(b"\x0d\x00\x00\x00\x00\x01\x00\x01" + bytes(12), proto=1)), 0),
    "icmp-header-cut": (eth(ipv4(b"\x08\x00\x00\x00\x00\x01", proto=1)), 0),
    "icmpv6-neighbor-solicitation": (eth(ipv6(b"\x87\x00\x00\x00" + bytes(4) + B6, nh=58), et=0x86DD), 0),
    "icmpv4-number-in-ipv6": (eth(ipv6(b"\x08\x00\x00\x00\x00\x01\x00\x01", nh=1), et=0x86DD), 0),
    "icmpv6-number-in-ipv4": (eth(ipv4(b"\x80\x00\x00\x00\x00\x01\x00\x01", proto=58)), 0),
    "ipv6-hop-by-hop": (eth(ipv6(b"\x06\x00" + bytes(6) + tcp(), nh=0), et=0x86DD), 0),
    "ipv6-fragment-header": (eth(ipv6(b"\x06\x00\x00\x01" + bytes(4) + tcp(), nh=44), et=0x86DD), 0),
    "sctp": (eth(ipv4(bytes(12), proto=132)), 0),
    "gre": (eth(ipv4(bytes(8), proto=47)), 0),
    "arp": (eth(bytes(28), et=0x0806), 0),
    "ipv4-truncated": (eth(ipv4(tcp(), total=400)), 0),
    "ipv6-truncated": (eth(ipv6(tcp(), plen=400), et=0x86DD), 0),
    "tcp-header-cut": (eth(ipv4(tcp()[:12])), 0),
    "udp-header-cut": (eth(ipv4(udp()[:6], proto=17)), 0),
    "too-short": (MAC + b"\x08\x00", 0),
    "not-ipv4-version": (eth(b"\x65" + ipv4(tcp())[1:]), 0),
}


@pytest.mark.parametrize("name", sorted(NOT_KEYABLE))
def test_not_keyable(name):
    frame, vlan = NOT_KEYABLE[name]
    assert _parse(frame, 0, len(frame), vlan) is None
    fp = bridge_fp()
    ok, _ = install(fp, 0, frame, vlan=vlan)
    assert not ok and fp.active == 0


# ---------------------------------------------------------------------- install / hit
@pytest.mark.parametrize("name", sorted(KEYABLE))
@pytest.mark.parametrize("buf_kind", ["bytes", "ring-memoryview"])
def test_install_then_hit_each_keyable_kind(name, buf_kind):
    """The inline IPv4 case of hit() and _parse() agree on every kind of frame, in bytes and
    inside a larger writable buffer (a ring slot: bytes after `end` must not matter)."""
    frame, vlan, _ = KEYABLE[name]
    fp = bridge_fp()
    ok, _ = install(fp, 0, frame, vlan=vlan)
    assert ok
    if buf_kind == "bytes":
        buf, start = frame, 0
    else:
        ring = bytearray(b"\xff" * 64) + bytearray(frame) + bytearray(b"\xff" * 64)
        buf, start = memoryview(ring), 64
    assert fp.hit(0, buf, start, start + len(frame), vlan, 2.0) == FORWARD
    assert fp.hit(1, buf, start, start + len(frame), vlan, 2.0) == MISS     # the peer holds the other direction
    assert fp.hit(0, buf, start, start + len(frame), vlan + 1, 2.0) == MISS  # another VLAN, another flow


def test_reverse_direction_on_the_peer_port():
    fp = bridge_fp()
    install(fp, 0, tcp4())
    back = tcp4(sport=80, dport=40000, src=B4, dst=A4)
    assert hit(fp, 1, back) == FORWARD
    assert hit(fp, 0, back) == MISS
    back6 = tcp6(sport=443, dport=40000, src=B6, dst=A6)
    install(fp, 1, tcp6(), flow=Handle(2))
    assert hit(fp, 0, back6) == FORWARD


def test_reverse_in_band_vlan():
    fp = ids_fp()
    install(fp, 0, udp4(tags=((0x8100, 5),)))
    assert hit(fp, 0, udp4(sport=53, dport=40000, src=B4, dst=A4, tags=((0x8100, 5),))) == FORWARD
    assert hit(fp, 0, udp4(sport=53, dport=40000, src=B4, dst=A4, tags=((0x8100, 6),))) == MISS
    assert hit(fp, 0, udp4(sport=53, dport=40000, src=B4, dst=A4)) == MISS


def test_other_flows_miss():
    fp = bridge_fp()
    install(fp, 0, tcp4())
    assert hit(fp, 0, tcp4(sport=40001)) == MISS
    assert hit(fp, 0, udp4(sport=40000, dport=80)) == MISS      # same ports, other protocol
    assert hit(fp, 0, tcp4(src=bytes([198, 51, 100, 9]))) == MISS


@pytest.mark.parametrize("v6", [False, True], ids=["icmpv4", "icmpv6"])
def test_icmp_echo_reply_takes_the_requests_flow_on_the_peer_and_other_messages_miss(v6):
    """The engine's ICMP echo flow: the request installs it, the reply (the counterpart type,
    addresses swapped) hits it on the peer port whatever its id, another message between the
    same hosts and a request the other way are other flows."""
    fp = bridge_fp()
    req, rep = (icmp6(128), icmp6(129, src=B6, dst=A6)) if v6 else (icmp4(8), icmp4(0, src=B4, dst=A4))
    ok, _ = install(fp, 0, req, action="drop")
    assert ok
    assert hit(fp, 0, req) == DROP
    assert hit(fp, 1, rep) == DROP
    assert hit(fp, 0, icmp6(128, ident=9) if v6 else icmp4(8, ident=9)) == DROP    # the id is not in the key
    assert hit(fp, 1, icmp6(128, src=B6, dst=A6) if v6 else icmp4(8, src=B4, dst=A4)) == MISS
    assert hit(fp, 0, icmp6(129) if v6 else icmp4(0)) == MISS
    assert hit(fp, 0, udp4()) == MISS and hit(fp, 0, tcp4()) == MISS


def test_icmp_echo_kernel_entries_carry_the_types_as_ports():
    k = FakeKernel()
    fp = bridge_fp(kernel=k)
    install(fp, 0, icmp4(8))
    adds = [c[1:] for c in k.calls if c[0] == "add"]
    assert adds == [(11, 4, 1, 0, A4, B4, 8, 0, "pass", 12), (12, 4, 1, 0, B4, A4, 0, 8, "pass", 11)]


def test_drop_flow_hits_drop():
    fp = bridge_fp()
    install(fp, 0, udp4(), action="drop")
    assert hit(fp, 0, udp4()) == DROP
    assert hit(fp, 1, udp4(sport=53, dport=40000, src=B4, dst=A4)) == DROP


def test_empty_table_is_a_miss_for_anything():
    fp = bridge_fp()
    assert hit(fp, 0, tcp4()) == MISS
    assert hit(fp, 1, b"") == MISS


def test_ids_installs_both_directions_on_the_one_port():
    fp = ids_fp()
    install(fp, 0, tcp4(), action="drop")
    assert hit(fp, 0, tcp4()) == DROP
    assert hit(fp, 0, tcp4(sport=80, dport=40000, src=B4, dst=A4)) == DROP


def test_tap_installs_pass_flows_only():
    fp = bridge_fp(mode="tap")
    ok, _ = install(fp, 0, tcp4(), action="drop")
    assert not ok and hit(fp, 0, tcp4()) == MISS
    ok, _ = install(fp, 0, tcp4(), action="pass")
    assert ok and hit(fp, 0, tcp4()) == FORWARD


def test_inspector_without_bypassed_gets_nothing_installed():
    fp = bridge_fp(NoBypassed())
    ok, _ = install(fp, 0, tcp4())
    assert not ok and hit(fp, 0, tcp4()) == MISS


def test_unknown_action_or_mode_refused():
    fp = bridge_fp()
    ok, _ = install(fp, 0, tcp4(), action="reject")
    assert not ok
    with pytest.raises(ValueError):
        FastPath([FastPort(0, 0, None)], FakeInspector(), mode="inline")


def test_a_frame_of_an_installed_flow_installs_nothing_new():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    ok, h = install(fp, 0, tcp4())
    ok2, _ = install(fp, 1, tcp4(sport=80, dport=40000, src=B4, dst=A4), to_server=False, flow=h)
    assert ok and ok2 and fp.stats()["bypass.installed"] == 1 and not insp.calls


def test_a_newer_flow_on_the_same_key_replaces_the_old():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    _, old = install(fp, 0, udp4(), action="pass")
    hit(fp, 0, udp4(), ts=2.0)
    install(fp, 0, udp4(), action="drop", flow=Handle(2), ts=3.0)
    assert insp.calls == [(old, 2.0, 1, 62, 0, 0)]          # the old one's counts pushed first
    assert hit(fp, 0, udp4()) == DROP
    s = fp.stats()
    assert (s["bypass.installed"], s["bypass.removed"], s["bypass.active"]) == (2, 1, 1)


# ---------------------------------------------------------------------- flow ends
@pytest.mark.parametrize("flags", [SYN, FIN | ACK, RST, RST | ACK, SYN | ACK], ids=["syn", "fin", "rst", "rst-ack",
                                                                                    "syn-ack"])
@pytest.mark.parametrize("ipver", [4, 6])
def test_syn_fin_rst_push_counts_remove_and_miss(flags, ipver):
    insp = FakeInspector()
    kern = FakeKernel()
    fp = bridge_fp(insp, kernel=kern)
    data = tcp4() if ipver == 4 else tcp6()
    closing = tcp4(flags=flags) if ipver == 4 else tcp6(flags=flags)
    _, h = install(fp, 0, data, to_server=True)
    assert hit(fp, 0, data, ts=5.0) == FORWARD
    assert hit(fp, 0, closing, ts=6.0) == MISS
    frame_len = 74 if ipver == 4 else 84                          # bytes are frame lengths
    assert insp.calls == [(h, 5.0, 1, frame_len, 0, 0)]
    assert hit(fp, 0, data, ts=7.0) == MISS                      # gone: the engine sees the rest
    assert fp.active == 0
    assert [c[0] for c in kern.calls].count("remove") == 2
    s = fp.stats()
    assert (s["bypass.removed"], s["bypass.pass_frames"], s["bypass.pass_bytes"]) == (1, 1, frame_len)


def test_syn_of_an_unknown_flow_is_a_plain_miss():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    install(fp, 0, tcp4())
    assert hit(fp, 0, tcp4(sport=1, flags=SYN)) == MISS
    assert fp.active == 1 and not insp.calls


def test_a_closing_frame_installs_nothing():
    fp = bridge_fp()
    ok, _ = install(fp, 0, tcp4(flags=FIN | ACK))
    assert not ok


# ---------------------------------------------------------------------- sync
def test_counts_pushed_per_direction_with_frame_lengths():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    _, h = install(fp, 0, tcp4(), to_server=False)      # the installing frame went server -> client
    for ts in (2.0, 3.0, 4.0):
        assert hit(fp, 0, tcp4(payload=b"a" * 100), ts=ts) == FORWARD          # frame 154 bytes
    assert hit(fp, 1, tcp4(sport=80, dport=40000, src=B4, dst=A4, payload=b""), ts=3.5) == FORWARD   # 54
    fp.sync()
    assert insp.calls == [(h, 4.0, 1, 54, 3, 462)]
    fp.sync()                                                    # nothing new: zero counts, same time
    assert insp.calls[-1] == (h, 4.0, 0, 0, 0, 0)
    s = fp.stats()
    assert (s["bypass.pass_frames"], s["bypass.pass_bytes"], s["bypass.drop_frames"]) == (4, 516, 0)


def test_idle_flow_reports_its_install_time():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    _, h = install(fp, 0, udp4(), ts=9.5)
    fp.sync()
    assert insp.calls == [(h, 9.5, 0, 0, 0, 0)]


def test_ended_flows_are_forgotten():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    install(fp, 0, udp4())
    _, h2 = install(fp, 0, udp4(sport=2), flow=Handle(2), action="drop")
    hit(fp, 0, udp4(sport=2), ts=3.0)
    insp.ended.add(id(h2))
    fp.sync()
    assert hit(fp, 0, udp4(sport=2)) == MISS
    assert hit(fp, 1, udp4(sport=53, dport=2, src=B4, dst=A4)) == MISS
    assert hit(fp, 0, udp4()) == FORWARD
    s = fp.stats()
    assert (s["bypass.active"], s["bypass.removed"], s["bypass.drop_frames"], s["bypass.drop_bytes"]) == (1, 1, 1, 62)
    assert (h2, 3.0, 1, 62, 0, 0) in insp.calls


def test_stats_include_counts_not_pushed_yet():
    fp = bridge_fp()
    install(fp, 0, udp4(), action="drop")
    hit(fp, 0, udp4())
    hit(fp, 0, udp4())
    s = fp.stats()
    assert s == {"bypass.installed": 1, "bypass.removed": 0, "bypass.active": 1, "bypass.pass_frames": 0,
                 "bypass.pass_bytes": 0, "bypass.drop_frames": 2, "bypass.drop_bytes": 124,
                 "bypass.scan_installed": 0, "bypass.scan_removed": 0, "bypass.scan_active": 0,
                 "bypass.scan_frames": 0, "bypass.scan_bytes": 0, "bypass.scan_hits": 0,
                 "bypass.scan_backoff": 0, "bypass.scan_late": 0}


def test_clear_removes_everything():
    kern = FakeKernel()
    fp = bridge_fp(kernel=kern)
    install(fp, 0, tcp4())
    install(fp, 0, udp4(), flow=Handle(2))
    hit(fp, 0, udp4())
    fp.clear()
    assert fp.active == 0 and hit(fp, 0, tcp4()) == MISS and hit(fp, 0, udp4()) == MISS
    assert [c[0] for c in kern.calls].count("remove") == 4
    assert fp.stats()["bypass.pass_frames"] == 1


def test_an_inspector_failing_in_bypassed_forgets_the_flow():
    class Failing(FakeInspector):
        def bypassed(self, *a):
            raise RuntimeError("bug")

    fp = bridge_fp(Failing())
    install(fp, 0, tcp4())
    fp.sync()
    assert fp.active == 0 and hit(fp, 0, tcp4()) == MISS


# ---------------------------------------------------------------------- kernel backend
def test_kernel_entries_added_for_both_directions():
    kern = FakeKernel()
    fp = bridge_fp(kernel=kern)
    install(fp, 0, tcp4(), action="pass")
    assert kern.calls == [
        ("add", 11, 4, 6, 0, A4, B4, 40000, 80, "pass", 12),      # ingress eth A, redirect to B
        ("add", 12, 4, 6, 0, B4, A4, 80, 40000, "pass", 11),      # the reverse on B, redirect to A
    ]


def test_kernel_entries_ipv6_vlan_drop():
    kern = FakeKernel()
    fp = bridge_fp(kernel=kern)
    frame = tcp6()
    fp.install(1, frame, 0, len(frame), 30, Bypass(Handle(), "drop", True, "drop"), 1.0)
    assert kern.calls == [("add", 12, 6, 6, 30, A6, B6, 40000, 443, "drop", 11),
                          ("add", 11, 6, 6, 30, B6, A6, 443, 40000, "drop", 12)]


def test_kernel_entries_ids_one_port_no_redirect():
    kern = FakeKernel()
    fp = ids_fp(kernel=kern)
    install(fp, 0, udp4(), action="pass")
    assert kern.calls == [("add", 21, 4, 17, 0, A4, B4, 40000, 53, "pass", 0),
                          ("add", 21, 4, 17, 0, B4, A4, 53, 40000, "pass", 0)]


def test_kernel_counts_read_back_and_pushed_as_deltas():
    insp = FakeInspector()
    kern = FakeKernel()
    fp = bridge_fp(insp, kernel=kern)
    _, h = install(fp, 0, tcp4(), to_server=True, ts=100.0)
    hit(fp, 0, tcp4(), ts=100.5)                          # one frame in user space (74 bytes)
    kern.counts[(11, A4, 40000)] = (10, 1000, 5_000_000_000)   # to_server, in the kernel
    kern.counts[(12, B4, 80)] = (2, 80, 4_000_000_000)         # to_client
    fp.sync(lambda ns: 100.0 + ns * 1e-9)
    assert insp.calls[-1] == (h, 105.0, 11, 1074, 2, 80)
    kern.counts[(11, A4, 40000)] = (15, 1500, 7_000_000_000)
    fp.sync(lambda ns: 100.0 + ns * 1e-9)
    assert insp.calls[-1] == (h, 107.0, 5, 500, 0, 0)
    s = fp.stats()
    assert s["bypass.pass_frames"] == 1 and s["bypass.kernel.pass_frames"] == 7   # user space / kernel's own


def test_deferred_kernel_entries_wait_for_commit_and_skip_flows_gone_meanwhile():
    k = FakeKernel()
    fp = bridge_fp(kernel=k)
    fp.defer_kernel = True
    install(fp, 0, tcp4(), flow=Handle(1))
    install(fp, 0, udp4(), flow=Handle(2))
    assert k.calls == [] and fp.pending
    assert hit(fp, 0, tcp4()) == FORWARD                      # the user-space entry works at once
    assert hit(fp, 0, tcp4(flags=ACK | FIN)) == MISS           # the TCP flow ends before the commit
    assert fp.commit() == 1 and not fp.pending
    assert [(c[3], c[7], c[8]) for c in k.calls if c[0] == "add"] == [(17, 40000, 53), (17, 53, 40000)]
    assert fp.commit() == 0
    install(fp, 0, tcp4(sport=40001), flow=Handle(3))
    fp.clear()
    assert not fp.pending and fp.commit() == 0


def test_kernel_entries_removed_when_the_flow_ends():
    insp = FakeInspector()
    kern = FakeKernel()
    fp = bridge_fp(insp, kernel=kern)
    _, h = install(fp, 0, udp4())
    insp.ended.add(id(h))
    fp.sync()
    removes = [c for c in kern.calls if c[0] == "remove"]
    assert removes == [("remove", 11, 4, 17, 0, A4, B4, 40000, 53), ("remove", 12, 4, 17, 0, B4, A4, 53, 40000)]


def test_kernel_refusing_an_entry_leaves_the_user_space_one():
    kern = FakeKernel(accept=False)
    fp = bridge_fp(kernel=kern)
    ok, _ = install(fp, 0, udp4())
    assert ok and hit(fp, 0, udp4()) == FORWARD
    fp.clear()
    assert not [c for c in kern.calls if c[0] == "remove"]       # nothing of ours in the kernel


# ---------------------------------------------------------------------- prefiltered directions ("scan")
class RecordingScan:
    """A prefilter scan: finds b"EVIL" and records every payload it was given."""

    def __init__(self):
        self.seen: list[bytes] = []

    def __call__(self, data):
        self.seen.append(bytes(data))
        return {0} if b"EVIL" in data else set()


def install_scan(fp, port, frame, scan, to_server=True, flow=None, vlan=0, ts=1.0):
    flow = flow if flow is not None else Handle()
    bp = Bypass(flow, "scan", to_server, "prefilter", scan)
    return fp.install(port, frame, 0, len(frame), vlan, bp, ts), flow


def test_scan_forwards_clean_datagrams_and_hands_over_a_hit_after_pushing_counts():
    insp, scan = FakeInspector(), RecordingScan()
    fp = bridge_fp(insp)
    ok, flow = install_scan(fp, 0, udp4(payload=b"q" * 20), scan)
    assert ok and fp.stats()["bypass.scan_active"] == 1 and fp.active == 0
    clean = udp4(payload=b"hello world")
    assert hit(fp, 0, clean, ts=2.0) == FORWARD
    assert hit(fp, 0, clean, ts=3.0) == FORWARD
    assert scan.seen == [b"hello world", b"hello world"]          # exactly the UDP payload
    assert insp.calls == []
    assert hit(fp, 0, udp4(payload=b"an EVIL one"), ts=4.0) == MISS
    assert insp.calls == [(flow, 3.0, 2, 2 * len(clean), 0, 0)]    # pushed before the engine sees it
    assert hit(fp, 0, clean, ts=5.0) == FORWARD                    # the entry stays
    st = fp.stats()
    assert (st["bypass.scan_frames"], st["bypass.scan_bytes"], st["bypass.scan_hits"]) == (3, 3 * len(clean), 1)
    assert st["bypass.pass_frames"] == 0 and st["bypass.installed"] == 0


def test_scan_is_one_direction_on_one_port_and_never_in_the_kernel():
    kern = FakeKernel()
    fp = bridge_fp(kernel=kern)
    install_scan(fp, 0, udp4(), RecordingScan())
    assert kern.calls == []
    back = udp4(sport=53, dport=40000, src=B4, dst=A4)
    assert hit(fp, 1, back) == MISS                  # the reverse direction on the peer port
    assert hit(fp, 1, udp4()) == MISS                # the same direction on the other port
    assert hit(fp, 0, udp4()) == FORWARD


def test_scan_none_forwards_without_scanning_and_empty_payloads_are_not_scanned():
    fp = bridge_fp()
    install_scan(fp, 0, udp4(), None)
    assert hit(fp, 0, udp4(payload=b"EVIL")) == FORWARD
    scan = RecordingScan()
    fp2 = bridge_fp()
    install_scan(fp2, 0, udp4(), scan)
    assert hit(fp2, 0, udp4(payload=b"")) == FORWARD and scan.seen == []


def test_scan_sends_a_datagram_with_a_bad_udp_length_to_the_engine():
    insp, scan = FakeInspector(), RecordingScan()
    fp = bridge_fp(insp)
    _, flow = install_scan(fp, 0, udp4(), scan)
    assert hit(fp, 0, udp4(payload=b"ok")) == FORWARD
    too_long = eth(ipv4(struct.pack("!HHHH", 40000, 53, 40, 0) + b"x" * 4, 17))      # UDP length 40 > 12
    too_short = eth(ipv4(struct.pack("!HHHH", 40000, 53, 6, 0) + b"x" * 4, 17))      # UDP length 6 < 8
    assert hit(fp, 0, too_long) == MISS
    assert hit(fp, 0, too_short) == MISS
    assert scan.seen == [b"ok"]
    assert insp.calls[0][0] is flow and insp.calls[0][2] == 1
    padded = eth(ipv4(udp(40000, 53, b"abc"), 17)) + bytes(20)       # Ethernet padding after the datagram
    assert hit(fp, 0, padded) == FORWARD and scan.seen[-1] == b"abc"


@pytest.mark.parametrize("frame,vlan,payload", [
    (udp4(payload=b"tagged", tags=((0x8100, 0x0064),)), 0, b"tagged"),
    (udp4(payload=b"stripped"), 100, b"stripped"),
    (eth(ipv6(udp(40000, 53, b"six"), 17), et=0x86DD), 0, b"six"),
])
def test_scan_slices_the_payload_of_tagged_and_ipv6_frames(frame, vlan, payload):
    scan = RecordingScan()
    fp = bridge_fp()
    install_scan(fp, 0, frame, scan, vlan=vlan)
    assert hit(fp, 0, frame, vlan=vlan) == FORWARD
    assert scan.seen == [payload]


def test_a_decision_replaces_the_scan_entry_on_its_key_and_pushes_its_counts():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    flow = Handle()
    install_scan(fp, 0, udp4(), RecordingScan(), flow=flow)
    assert hit(fp, 0, udp4(payload=b"a"), ts=2.0) == FORWARD
    assert hit(fp, 0, udp4(payload=b"EVIL"), ts=3.0) == MISS          # the engine decides: drop the flow
    ok, _ = install(fp, 0, udp4(payload=b"EVIL"), "drop", flow=flow, ts=3.0)
    assert ok
    st = fp.stats()
    assert st["bypass.scan_active"] == 0 and st["bypass.scan_removed"] == 1 and fp.active == 1
    assert hit(fp, 0, udp4(payload=b"a")) == DROP
    assert hit(fp, 1, udp4(sport=53, dport=40000, src=B4, dst=A4)) == DROP


def test_scan_sync_pushes_and_forgets_ended_flows_and_tcp_is_refused():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    _, flow = install_scan(fp, 0, udp4(), RecordingScan())
    hit(fp, 0, udp4(payload=b"z"), ts=7.0)
    fp.sync()
    assert insp.calls == [(flow, 7.0, 1, len(udp4(payload=b"z")), 0, 0)]
    insp.ended.add(id(flow))
    fp.sync()
    assert fp.stats()["bypass.scan_active"] == 0 and hit(fp, 0, udp4()) == MISS
    ok, _ = install_scan(fp, 0, tcp4(), RecordingScan())
    assert not ok and hit(fp, 0, tcp4()) == MISS


def test_scan_reverse_direction_of_the_same_flow_installs_its_own_entry():
    insp = FakeInspector()
    fp = bridge_fp(insp)
    flow = Handle()
    install_scan(fp, 0, udp4(), RecordingScan(), flow=flow, to_server=True)
    back = udp4(sport=53, dport=40000, src=B4, dst=A4)
    ok, _ = install_scan(fp, 1, back, None, flow=flow, to_server=False)
    assert ok and fp.stats()["bypass.scan_active"] == 2
    assert hit(fp, 1, back, ts=4.0) == FORWARD and hit(fp, 0, udp4(), ts=5.0) == FORWARD
    fp.sync()
    got = sorted(c[2:] for c in insp.calls)
    assert got == [(0, 0, 1, len(back)), (1, len(udp4()), 0, 0)]


def test_a_flow_whose_datagrams_keep_matching_is_handed_over_unscanned_for_a_while():
    insp, scan = FakeInspector(), RecordingScan()
    fp = bridge_fp(insp)
    install_scan(fp, 0, udp4(), scan)
    evil, clean = udp4(payload=b"EVIL"), udp4(payload=b"fine")
    assert [hit(fp, 0, evil) for _ in range(SCAN_STREAK - 1)] == [MISS] * (SCAN_STREAK - 1)
    assert hit(fp, 0, clean) == FORWARD                  # a clean one resets the streak
    assert [hit(fp, 0, evil) for _ in range(SCAN_STREAK)] == [MISS] * SCAN_STREAK
    scanned = len(scan.seen)
    assert [hit(fp, 0, clean) for _ in range(SCAN_BACKOFF)] == [MISS] * SCAN_BACKOFF
    assert len(scan.seen) == scanned                     # backing off: not scanned, all to the engine
    assert hit(fp, 0, clean) == FORWARD                  # then scanned again
    st = fp.stats()
    assert (st["bypass.scan_hits"], st["bypass.scan_backoff"]) == (2 * SCAN_STREAK - 1, SCAN_BACKOFF)
    # counts were pushed before each handed-over datagram that had some pending, never with none
    assert all(c[2] + c[4] > 0 for c in insp.calls) and sum(c[2] for c in insp.calls) == 1


def echo4(itype=8, payload=b"p" * 56, code=0, src=A4, dst=B4, tags=()) -> bytes:
    return eth(ipv4(struct.pack("!BBHHH", itype, code, 0, 0x1234, 1) + payload, 1, src, dst), tags=tags)


def echo6(itype=128, payload=b"p" * 56, code=0, src=A6, dst=B6) -> bytes:
    return eth(ipv6(struct.pack("!BBHHH", itype, code, 0, 0x1234, 1) + payload, 58, src, dst), et=0x86DD)


@pytest.mark.parametrize("make,req,rep", [(echo4, 8, 0), (echo6, 128, 129)], ids=["icmp", "icmpv6"])
def test_scan_takes_an_icmp_echo_direction_its_payload_and_code_0_only(make, req, rep):
    """The engine offers an ICMP echo flow's direction a scan as it does a UDP one: clean
    echoes are forwarded (the scan given exactly the echo's payload, after its 8-byte
    header), one with a pattern goes to the engine, and so does one with a code other than
    0 (the engine's offer covers code 0 only), unscanned.  The reply direction is not
    covered by the request's entry."""
    insp, scan = FakeInspector(), RecordingScan()
    fp = bridge_fp(insp)
    ok, flow = install_scan(fp, 0, make(req), scan)
    assert ok and fp.stats()["bypass.scan_active"] == 1
    assert hit(fp, 0, make(req, b"clean one"), ts=2.0) == FORWARD
    assert scan.seen == [b"clean one"]
    assert hit(fp, 0, make(req, b"an EVIL one"), ts=3.0) == MISS
    assert insp.calls == [(flow, 2.0, 1, len(make(req, b"clean one")), 0, 0)]
    assert hit(fp, 0, make(req, b"clean", code=1), ts=4.0) == MISS
    assert scan.seen == [b"clean one", b"an EVIL one"]            # code 1: not scanned
    back = make(rep, src=B4 if make is echo4 else B6, dst=A4 if make is echo4 else A6)
    assert hit(fp, 1, back) == MISS and hit(fp, 0, make(rep)) == MISS
    assert hit(fp, 0, make(req, b"")) == FORWARD and scan.seen[-1] == b"an EVIL one"   # empty: not scanned
