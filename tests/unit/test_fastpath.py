"""bridge.fastpath: keys sliced from byte-literal frames, install/hit, flow ends, sync, kernel calls.

The kernel backend is a fake that records its calls (`FakeKernel`), written against the
KernelOffload API of the issue 8 plan (add/read/remove/totals); the inspector is a fake
that records `bypassed` calls and says which flows ended.
"""
from __future__ import annotations

import struct

import pytest

from bridge.fastpath import DROP, FORWARD, MISS, FastPath, FastPort, _parse
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
    proto, key, vlan, ipver, ip_len, flags = _parse(TCP4_LITERAL, 0, len(TCP4_LITERAL), 0)
    assert (proto, vlan, ipver, ip_len, flags) == (6, 0, 4, 44, ACK | PSH)
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
    "icmp": (eth(ipv4(b"\x08\x00\x00\x00\x00\x01\x00\x01", proto=1)), 0),
    "icmpv6": (eth(ipv6(b"\x80\x00\x00\x00\x00\x01\x00\x01", nh=58), et=0x86DD), 0),
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
                 "bypass.pass_bytes": 0, "bypass.drop_frames": 2, "bypass.drop_bytes": 124}


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
