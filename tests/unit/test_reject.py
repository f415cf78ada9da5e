"""The reject stage (rules.reject): the frames a reject action sends, byte by byte."""
from __future__ import annotations

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, IPv6, ICMPv6DestUnreach

from rules.api import FrameMeta
from rules.checksum import ipv4_header_ok, l4_checksum_ok
from rules.decode import decode
from rules.reject import reject_frames

C, S = "198.51.100.1", "203.0.113.2"
CM, SM = "02:00:00:00:00:01", "02:00:00:00:00:02"


def pkt(frame: bytes):
    return decode(frame, FrameMeta(ts=1.0, iface=""))[0]


def test_tcp_rst_to_the_sender_and_to_the_receiver():
    p = pkt(bytes(Ether(src=CM, dst=SM) / IP(src=C, dst=S) / TCP(sport=40000, dport=80, flags="PA", seq=1000,
                                                                  ack=5000) / b"hello"))
    back, fwd = reject_frames(p, "rejectboth")
    assert back.back and not fwd.back
    b = Ether(back.frame)
    assert (b.src, b.dst, b[IP].src, b[IP].dst) == (SM, CM, S, C)
    assert (b[TCP].sport, b[TCP].dport, b[TCP].flags, b[TCP].seq, b[TCP].ack) == (80, 40000, "RA", 5000, 1005)
    f = Ether(fwd.frame)
    assert (f.src, f.dst, f[IP].src, f[IP].dst) == (CM, SM, C, S)
    assert (f[TCP].seq, f[TCP].ack, f[TCP].flags) == (1005, 5000, "RA")
    for inj in (back, fwd):
        assert ipv4_header_ok(inj.frame, 14) and l4_checksum_ok(inj.frame, 14) is True


@pytest.mark.parametrize("action,sides", [("reject", [True]), ("rejectsrc", [True]), ("rejectdst", [False]),
                                          ("rejectboth", [True, False])])
def test_which_side_is_answered(action, sides):
    p = pkt(bytes(Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=53) / b"q"))
    assert [i.back for i in reject_frames(p, action)] == sides


def test_udp_gets_icmp_port_unreachable_quoting_the_packet():
    raw = bytes(Ether(src=CM, dst=SM) / IP(src=C, dst=S) / UDP(sport=5000, dport=53) / b"query")
    (inj,) = reject_frames(pkt(raw), "reject")
    e = Ether(inj.frame)
    assert (e[ICMP].type, e[ICMP].code, e[IP].dst) == (3, 3, C)
    assert bytes(e[ICMP].payload)[:28] == raw[14:14 + 28]       # IP header + 8 bytes of UDP
    assert l4_checksum_ok(inj.frame, 14) is True


def test_ipv6_udp_gets_icmpv6_port_unreachable():
    (inj,) = reject_frames(pkt(bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2)
                                     / b"q")), "reject")
    e = Ether(inj.frame)
    assert e.haslayer(ICMPv6DestUnreach) and e[ICMPv6DestUnreach].code == 4
    assert l4_checksum_ok(inj.frame, 14) is True


def test_vlan_tags_are_kept():
    (inj,) = reject_frames(pkt(bytes(Ether(src=CM, dst=SM) / Dot1Q(vlan=42) / IP(src=C, dst=S)
                                     / UDP(sport=1, dport=2) / b"q")), "reject")
    e = Ether(inj.frame)
    assert e[Dot1Q].vlan == 42 and e.dst == CM


@pytest.mark.parametrize("frame", [
    bytes(Ether() / IP(src=C, dst=S) / TCP(sport=1, dport=2, flags="R")),
    bytes(Ether() / IP(src=C, dst=S) / ICMP(type=3, code=1) / (b"x" * 28)),
    bytes(Ether() / IP(src=C, dst=S, flags="MF", proto=17) / (b"x" * 16)),
], ids=["rst", "icmp-error", "fragment"])
def test_never_answered(frame):
    assert reject_frames(pkt(frame), "rejectboth") == []


# ------------------------------------------------------------------ link types without an Ethernet header
import struct  # noqa: E402

from rules.api import Verdict  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.parser import parse_rule  # noqa: E402
from rules.settings import EngineSettings  # noqa: E402

UDP_IP = bytes(IP(src=C, dst=S) / UDP(sport=5000, dport=53) / b"bad")
SLL_HDR = struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("020000000001"), 0x0800)
SLL_VLAN_HDR = struct.pack("!HHH8sH", 0, 1, 6, bytes.fromhex("020000000001"), 0x8100) + struct.pack("!HH", 5, 0x0800)
SLL2_HDR = struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 0, 6, bytes.fromhex("020000000001"))

# (link type, frame holding UDP_IP, answered with an Ethernet frame)
LINKS = {
    "ethernet": (1, bytes(Ether(src=CM, dst=SM, type=0x0800) / UDP_IP), True),
    "ethernet-vlan": (1, bytes(Ether(src=CM, dst=SM) / Dot1Q(vlan=5, type=0x0800) / UDP_IP), True),
    "ethernet-qinq": (1, bytes(Ether(src=CM, dst=SM, type=0x88A8) / Dot1Q(vlan=5) / Dot1Q(vlan=6, type=0x0800)
                               / UDP_IP), True),
    "raw": (101, UDP_IP, False),
    "ipv4": (228, UDP_IP, False),
    "sll": (113, SLL_HDR + UDP_IP, False),
    "sll-vlan": (113, SLL_VLAN_HDR + UDP_IP, False),
    "sll2": (276, SLL2_HDR + UDP_IP, False),
    "null": (0, struct.pack("<I", 2) + UDP_IP, False),
    "loop": (108, struct.pack(">I", 2) + UDP_IP, False),
}


@pytest.mark.parametrize("name", list(LINKS))
def test_reject_answers_only_packets_behind_an_ethernet_header(name):
    lt, frame, answered = LINKS[name]
    p = decode(frame, FrameMeta(ts=1.0, iface="", linktype=lt))[0]
    assert (p.ipver, p.dport) == (4, 53)
    out = reject_frames(p, "rejectboth")
    assert len(out) == (2 if answered else 0)
    for inj in out:
        assert Ether(inj.frame)[IP].proto == 1          # ICMP port unreachable, MACs of the frame


@pytest.mark.parametrize("name,verdict,injects", [("raw", Verdict.DROP, 0), ("ethernet", Verdict.REJECT, 1)])
def test_reject_rule_on_a_raw_ip_frame_is_a_drop_without_inject(name, verdict, injects):
    e = Engine([parse_rule('reject udp any any -> any 53 (msg:"unreach"; content:"bad"; sid:8;)')],
               EngineSettings.for_mode("ips"))
    lt, frame, _ = LINKS[name]
    r = e.inspect(frame, FrameMeta(1.0, "", (), 1, (), lt))
    assert r.verdict == verdict and len(r.inject) == injects and r.reason == "rule"
