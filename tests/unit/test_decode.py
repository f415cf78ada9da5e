"""Decoder round trips: frames built with scapy, decoded, every field checked.

Truncated copies of every frame, at every length, must decode without an
exception and say what was wrong through decoder events."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6DestUnreach, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, RouterAlert, HBHOptUnknown,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from rules.api import FrameMeta
from rules.checksum import ipv4_header_ok, l4_checksum_ok
from rules.decode import DecodeOptions, decode, decode_ip, ip_text, proto_name
from rules.packet import TH_ACK, TH_PSH, TH_SYN, Packet

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


# ---------------------------------------------------------------- plain layers

def test_tcp4_with_options_every_field():
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 22)), ("NOP", None), ("WScale", 7)]
    frame = bytes(ETH / IP(src=C4, dst=S4, ttl=61, id=4242) /
                  TCP(sport=40000, dport=443, seq=1000, ack=2000, flags="PA", window=5000, options=opts) / b"hello")
    p = one(frame)
    assert (p.ts, p.iface, p.pcap_cnt, p.vlan) == (META.ts, "eth0", 7, ())
    assert p.length == len(frame) and p.eth_type == 0x0800 and p.l3_off == 14
    assert (p.ipver, p.src, p.dst, p.proto, p.ttl, p.ip_id) == (4, a4(C4), a4(S4), 6, 61, 4242)
    assert p.ip_len == len(frame) - 14 and p.frag is False and p.ip_off == 0
    assert p.l4_off == 34
    assert (p.sport, p.dport, p.seq, p.ack, p.win) == (40000, 443, 1000, 2000, 5000)
    assert p.tcp_flags == TH_PSH | TH_ACK
    assert bytes(p.tcp_opts) == bytes(TCP(options=opts))[20:]
    assert isinstance(p.tcp_opts, memoryview) and isinstance(p.payload, memoryview)
    assert bytes(p.payload) == b"hello"
    assert p.csum_ok is True and p.events == () and p.outer is None
    assert (p.icmp_type, p.icmp_code, p.icmp_id, p.icmp_seq) == (-1, -1, -1, -1)


def test_payload_excludes_ethernet_padding():
    frame = bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S"))
    assert len(frame) == 54
    padded = frame + b"\x00" * 6            # 60-byte minimum frame
    p = one(padded)
    assert bytes(p.payload) == b"" and p.events == () and p.csum_ok is True
    assert p.length == 60 and p.ip_len == 40


def test_payload_is_a_view_not_a_copy():
    buf = bytearray(bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"abcd"))
    (p,) = decode(buf, META, NOCSUM)
    buf[-1] = ord("Z")
    assert bytes(p.payload) == b"abcZ"


def test_udp4():
    p = one(ETH / IP(src=C4, dst=S4) / UDP(sport=5353, dport=53) / b"query")
    assert (p.proto, p.sport, p.dport, bytes(p.payload), p.csum_ok) == (17, 5353, 53, b"query", True)
    assert p.l4_off == 34 and p.events == ()


def test_udp4_zero_checksum_is_valid():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"x"))
    raw[40:42] = b"\x00\x00"
    assert one(raw).csum_ok is True


@pytest.mark.parametrize("itype,code,has_idseq", [(8, 0, True), (0, 0, True), (13, 0, True), (3, 3, False), (11, 0, False)],
                         ids=["echo-request", "echo-reply", "timestamp", "port-unreach", "ttl-exceeded"])
def test_icmp4(itype, code, has_idseq):
    body = bytes(IP(src=S4, dst=C4) / UDP(sport=1, dport=2)) if not has_idseq else b"ping-data"
    p = one(ETH / IP(src=C4, dst=S4) / ICMP(type=itype, code=code, id=77, seq=5) / body)
    assert (p.proto, p.icmp_type, p.icmp_code) == (1, itype, code)
    assert (p.icmp_id, p.icmp_seq) == ((77, 5) if has_idseq else (-1, -1))
    assert (p.sport, p.dport) == (0, 0)
    assert bytes(p.payload).endswith(body) and p.csum_ok is True and p.events == ()
    assert p.l4_off == 34 and len(p.payload) == p.ip_len - 20 - 8


def test_icmp4_unknown_type_and_code():
    assert "decoder.icmpv4.unknown_type" in one(ETH / IP(src=C4, dst=S4) / ICMP(type=99)).events
    assert "decoder.icmpv4.unknown_code" in one(ETH / IP(src=C4, dst=S4) / ICMP(type=3, code=42)).events


def test_icmp4_error_with_truncated_inner_header():
    p = one(ETH / IP(src=C4, dst=S4) / ICMP(type=3, code=1) / b"\x45\x00")
    assert "decoder.icmpv4.ipv4_trunc_pkt" in p.events


def test_arp_has_no_ip():
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=C4, pdst=S4))
    p = one(frame)
    assert (p.eth_type, p.ipver, p.proto, p.src, p.dst) == (0x0806, 0, 0, 0, 0)
    assert bytes(p.payload) == frame[14:] and p.events == ()


def test_unknown_ethertype():
    p = one(Ether(type=0x88B5) / b"local experimental")
    assert (p.eth_type, p.ipver) == (0x88B5, 0) and bytes(p.payload) == b"local experimental"


# ---------------------------------------------------------------- VLAN

@pytest.mark.parametrize("layers,ids", [
    ([Dot1Q(vlan=100)], (100,)),
    ([Dot1AD(vlan=10), Dot1Q(vlan=20)], (10, 20)),
    ([Dot1Q(vlan=10), Dot1Q(vlan=20)], (10, 20)),
], ids=["802.1q", "802.1ad-qinq", "double-8021q"])
def test_vlan_tags(layers, ids):
    f = ETH
    for layer in layers:
        f = f / layer
    p = one(f / IP(src=C4, dst=S4) / TCP(sport=1, dport=2))
    assert p.vlan == ids and p.eth_type == 0x0800 and p.l3_off == 14 + 4 * len(ids)
    assert (p.ipver, p.sport, p.dport, p.csum_ok) == (4, 1, 2, True)


def test_ring_vlan_comes_first():
    meta = FrameMeta(ts=1.0, iface="eth1", vlan=(5,), tpid=(0x8100,))
    p = one(ETH / Dot1Q(vlan=7) / IP(src=C4, dst=S4) / UDP(), meta=meta)
    assert p.vlan == (5, 7)


def test_vlan_too_many_layers():
    f = ETH / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IP(src=C4, dst=S4) / UDP()
    p = one(f)
    assert "decoder.vlan.too_many_layers" in p.events and p.ipver == 0


# ---------------------------------------------------------------- IPv4 details

def test_ipv4_options():
    p = one(ETH / IP(src=C4, dst=S4, options=[IPOption_RR(routers=["203.0.113.9"])]) / TCP(sport=1, dport=2))
    assert p.l4_off == 14 + 28 and (p.sport, p.dport) == (1, 2) and p.events == () and p.csum_ok is True


def test_ipv4_bad_option_length():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4, options=[IPOption_RR(routers=["203.0.113.9"])]) / TCP()))
    raw[14 + 21] = 40                      # option length past the header
    p = one(raw, NOCSUM)
    assert "decoder.ipv4.opt_invalid_len" in p.events
    assert p.sport == 20 and p.dport == 80     # the rest still decodes


def test_ipv4_bad_header_checksum():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2)))
    raw[24] ^= 0xFF
    p = one(raw)
    assert p.csum_ok is False and not ipv4_header_ok(raw, 14)
    assert one(raw, NOCSUM).csum_ok is None


def test_tcp_bad_checksum():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2) / b"data"))
    raw[-1] ^= 1
    assert one(raw).csum_ok is False
    assert l4_checksum_ok(raw, 14) is False


@pytest.mark.parametrize("frag,flags,first", [(0, "MF", True), (185, "MF", False), (185, 0, False)],
                         ids=["first", "middle", "last"])
def test_ipv4_fragments_like_suricata(frag, flags, first):
    # Suricata 7.0.10 on a crafted first fragment: proto UDP, ports 0, no payload match, no flow
    f = IP(src=C4, dst=S4, id=999, frag=frag, flags=flags, proto=6) / Raw(bytes(TCP(sport=1234, dport=80)) + b"x" * 16)
    p = one(ETH / f)
    assert p.frag is True and p.ip_id == 999 and p.proto == 6 and p.l4_off == 34
    assert p.ip_off & 0x1FFF == frag and bool(p.ip_off & 0x2000) == (flags == "MF")
    assert (p.sport, p.dport, p.tcp_flags, len(p.payload)) == (0, 0, 0, 0)
    assert p.csum_ok is True and p.events == ()        # the IP header checksum only


@pytest.mark.parametrize("frag,flags,expect_l4", [(0, "MF", True), (185, "MF", False), (185, 0, False)],
                         ids=["first", "middle", "last"])
def test_ipv4_fragments_with_l4_in_first(frag, flags, expect_l4):
    f = IP(src=C4, dst=S4, id=999, frag=frag, flags=flags, proto=6) / Raw(bytes(TCP(sport=1234, dport=80)) + b"x" * 16)
    p = one(ETH / f, DecodeOptions(l4_in_first_fragment=True))
    assert p.frag is True and p.ip_id == 999
    if expect_l4:
        assert (p.sport, p.dport) == (1234, 80) and bytes(p.payload) == b"x" * 16
    else:
        assert (p.sport, p.dport, len(p.payload)) == (0, 0, 0)
    assert p.csum_ok is True and p.events == ()


def test_ipv4_df_flag_is_not_a_fragment():
    p = one(ETH / IP(src=C4, dst=S4, flags="DF") / TCP())
    assert p.frag is False and p.ip_off == 0x4000


@pytest.mark.parametrize("mutate,event", [
    (lambda b: b.__setitem__(14, 0x55), "decoder.ipv4.wrong_ip_version"),
    (lambda b: b.__setitem__(14, 0x44), "decoder.ipv4.hlen_too_small"),
    (lambda b: b.__setitem__(slice(16, 18), b"\x00\x10"), "decoder.ipv4.iplen_smaller_than_hlen"),
    (lambda b: b.__setitem__(slice(16, 18), b"\x05\xdc"), "decoder.ipv4.trunc_pkt"),
    (lambda b: b.__setitem__(46, 0x40), "decoder.tcp.invalid_optlen"),
    (lambda b: b.__setitem__(46, 0xF0), "decoder.tcp.hlen_too_small"),
], ids=["version", "ihl", "totlen<hlen", "totlen>frame", "tcp-doff<5", "tcp-doff>len"])
def test_ipv4_tcp_header_errors(mutate, event):
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2)))
    mutate(raw)
    p = one(raw)
    assert event in p.events


def test_udp_length_errors():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"abcdef"))
    raw[38:40] = b"\x00\x04"
    assert "decoder.udp.len_invalid" in one(raw).events
    raw[38:40] = b"\x00\x40"
    assert "decoder.udp.pkt_too_small" in one(raw).events
    raw[38:40] = b"\x00\x0a"            # shorter than the IP payload: no event, payload bounded by it
    p = one(raw)
    assert p.events == () and bytes(p.payload) == b"ab"
    assert p.csum_ok is False                 # the checksum covers the UDP length (Suricata agrees)


def test_icmpv6_in_ipv4_event():
    p = one(ETH / IP(src=C4, dst=S4, proto=58) / bytes(ICMPv6EchoRequest()), NOCSUM)
    assert "decoder.ipv4.icmpv6" in p.events


# ---------------------------------------------------------------- IPv6

def test_tcp6_every_field():
    frame = bytes(ETH / IPv6(src=C6, dst=S6, hlim=33) / TCP(sport=5555, dport=22, seq=7, ack=9, flags="S", window=100))
    p = one(frame)
    assert (p.eth_type, p.ipver, p.src, p.dst, p.proto, p.ttl) == (0x86DD, 6, a6(C6), a6(S6), 6, 33)
    assert p.ip_len == len(frame) - 14 and p.l3_off == 14 and p.l4_off == 54
    assert (p.sport, p.dport, p.seq, p.ack, p.win, p.tcp_flags) == (5555, 22, 7, 9, 100, TH_SYN)
    assert p.csum_ok is True and p.events == () and p.frag is False


@pytest.mark.parametrize("exts,l4_extra", [
    ([IPv6ExtHdrHopByHop(options=[RouterAlert()])], 8),
    ([IPv6ExtHdrHopByHop(options=[RouterAlert()]), IPv6ExtHdrDestOpt(options=[RouterAlert()])], 16),
    ([IPv6ExtHdrRouting(type=2, addresses=["2001:db8::9"])], 24),
    ([IPv6ExtHdrDestOpt(options=[RouterAlert()]), IPv6ExtHdrRouting(type=2, addresses=["2001:db8::9"]), IPv6ExtHdrDestOpt(options=[RouterAlert()])], 40),
], ids=["hbh", "hbh+dst", "routing", "dst+rh+dst"])
def test_ipv6_extension_headers(exts, l4_extra):
    f = IPv6(src=C6, dst=S6)
    for e in exts:
        f = f / e
    p = one(ETH / f / UDP(sport=1, dport=53) / b"dns")
    assert (p.proto, p.sport, p.dport, bytes(p.payload)) == (17, 1, 53, b"dns")
    assert p.l4_off == 54 + l4_extra and p.frag is False
    assert p.csum_ok is True and p.events == ()


def test_ipv6_ah():
    inner = bytes(UDP(sport=1, dport=2) / b"x")
    f = IPv6(src=C6, dst=S6) / AH(nh=17, payloadlen=4, spi=1, seq=1, icv=b"\x00" * 12) / Raw(inner)
    p = one(ETH / f, NOCSUM)
    assert (p.proto, p.sport, p.dport) == (17, 1, 2) and p.l4_off == 54 + 24 and p.events == ()


def test_ipv6_bad_l4_checksum_behind_ext_header():
    raw = bytearray(bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / UDP(sport=1, dport=2) / b"abc"))
    raw[-1] ^= 0x10
    assert one(raw).csum_ok is False


@pytest.mark.parametrize("offset,m,expect_l4", [(0, 1, True), (10, 1, False), (10, 0, False)],
                         ids=["first", "middle", "last"])
@pytest.mark.parametrize("l4_first", [False, True], ids=["suricata", "l4-in-first"])
def test_ipv6_fragments(offset, m, expect_l4, l4_first):
    f = IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrFragment(offset=offset, m=m, id=0xABCDEF, nh=6) / \
        Raw(bytes(TCP(sport=1, dport=2)) + b"y" * 8)
    p = one(ETH / f, DecodeOptions(l4_in_first_fragment=l4_first))
    assert p.frag is True and p.ip_id == 0xABCDEF
    assert p.ip_off & 0x1FFF == offset and bool(p.ip_off & 0x2000) == bool(m)
    assert p.l4_off == 70 and p.csum_ok is None and p.events == ()
    if not l4_first:
        # Suricata 7.0.10 reports such a packet as proto IPv6-Frag (44), no ports
        assert (p.proto, p.sport, p.dport, len(p.payload)) == (44, 0, 0, 0)
    elif expect_l4:
        assert (p.proto, p.sport, p.dport, bytes(p.payload)) == (6, 1, 2, b"y" * 8)
    else:
        assert (p.proto, p.sport, p.dport, len(p.payload)) == (6, 0, 0, 0)


def test_ipv6_rh0_and_atomic_fragment_events():
    p = one(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrRouting(type=0, addresses=["2001:db8::9"]) / UDP(), NOCSUM)
    assert "decoder.ipv6.rh_type_0" in p.events
    p = one(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(offset=0, m=0) / UDP(), NOCSUM)
    assert "decoder.ipv6.exthdr_useless_fh" in p.events and p.frag is False


@pytest.mark.parametrize("layer,itype,idseq", [
    (ICMPv6EchoRequest(id=3, seq=4, data=b"abc"), 128, (3, 4)),
    (ICMPv6EchoReply(id=3, seq=4, data=b"abc"), 129, (3, 4)),
    (ICMPv6DestUnreach(code=4) / IPv6(src=S6, dst=C6) / UDP(), 1, (-1, -1)),
], ids=["echo-request", "echo-reply", "dest-unreach"])
def test_icmpv6(layer, itype, idseq):
    p = one(ETH / IPv6(src=C6, dst=S6) / layer)
    assert (p.proto, p.icmp_type, (p.icmp_id, p.icmp_seq)) == (58, itype, idseq)
    assert p.csum_ok is True and p.events == ()


def test_ipv6_wrong_version_and_trunc():
    raw = bytearray(bytes(ETH / IPv6(src=C6, dst=S6) / UDP()))
    raw[14] = 0x40
    assert "decoder.ipv6.wrong_ip_version" in one(raw).events
    raw = bytearray(bytes(ETH / IPv6(src=C6, dst=S6) / UDP()))
    raw[18:20] = b"\x01\x00"
    assert "decoder.ipv6.trunc_pkt" in one(raw).events


# ---------------------------------------------------------------- tunnels

def _inner_tcp():
    return IP(src=I4, dst=J4, ttl=9) / TCP(sport=1111, dport=80, flags="A") / b"inner"


@pytest.mark.parametrize("gre", [GRE(), GRE(key_present=1, key=5, seqnum_present=1, sequence_number=9),
                                 GRE(chksum_present=1)],
                         ids=["plain", "key+seq", "checksum"])
def test_gre_ipv4(gre):
    frame = bytes(ETH / Dot1Q(vlan=3) / IP(src=C4, dst=S4) / gre / _inner_tcp())
    outer, inner = decode(frame, META, CSUM)
    assert (outer.proto, outer.src, outer.events) == (47, a4(C4), ())
    assert inner.outer is outer and inner.frame is outer.frame
    assert (inner.ts, inner.pcap_cnt, inner.iface, inner.vlan) == (META.ts, 7, "eth0", (3,))
    assert (inner.eth_type, inner.ipver, inner.src, inner.dst, inner.ttl) == (0x0800, 4, a4(I4), a4(J4), 9)
    assert (inner.sport, inner.dport, bytes(inner.payload)) == (1111, 80, b"inner")
    assert inner.csum_ok is True and inner.events == ()
    assert bytes(outer.payload) == bytes(_inner_tcp())


def test_gre_ipv6_inner():
    frame = bytes(ETH / IP(src=C4, dst=S4) / GRE(proto=0x86DD) / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2))
    outer, inner = decode(frame, META, CSUM)
    assert (inner.ipver, inner.src, inner.sport, inner.dport, inner.csum_ok) == (6, a6(C6), 1, 2, True)


def test_gre_transparent_ethernet():
    frame = bytes(ETH / IP(src=C4, dst=S4) / GRE(proto=0x6558) / ETH / Dot1Q(vlan=44) / _inner_tcp())
    outer, inner = decode(frame, META, CSUM)
    assert inner.vlan == (44,) and inner.l3_off == 14 + 20 + 4 + 14 + 4
    assert (inner.src, inner.sport) == (a4(I4), 1111) and inner.outer is outer


def test_gre_v1_pptp_ppp_ipv4():
    ppp = b"\xff\x03\x00\x21" + bytes(_inner_tcp())
    gre = struct.pack("!HHHH", 0x2001, 0x880B, len(ppp), 77)
    frame = bytes(ETH / IP(src=C4, dst=S4, proto=47) / Raw(gre + ppp))
    outer, inner = decode(frame, META, CSUM)
    assert outer.events == () and (inner.src, inner.sport) == (a4(I4), 1111)


def test_gre_disabled_and_bad_version():
    frame = bytes(ETH / IP(src=C4, dst=S4) / GRE() / _inner_tcp())
    assert len(decode(frame, META, DecodeOptions(gre_enabled=False))) == 1
    raw = bytearray(frame)
    raw[35] = 0x05                           # version 5
    p = one(raw, NOCSUM)
    assert "decoder.gre.wrong_version" in p.events


def test_vxlan():
    frame = bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=40000, dport=4789) / VXLAN(vni=42) / ETH / _inner_tcp())
    outer, inner = decode(frame, META, CSUM)
    assert (outer.proto, outer.dport, outer.csum_ok) == (17, 4789, True)
    assert inner.outer is outer and inner.eth_type == 0x0800
    assert (inner.src, inner.dst, inner.sport, inner.dport, bytes(inner.payload)) == (a4(I4), a4(J4), 1111, 80, b"inner")
    assert inner.l3_off == 14 + 20 + 8 + 8 + 14


def test_vxlan_ports_and_switch():
    frame = bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=8472) / VXLAN(vni=1) / ETH / _inner_tcp())
    assert len(decode(frame, META, DecodeOptions())) == 1
    assert len(decode(frame, META, DecodeOptions(vxlan_ports=(8472,)))) == 2
    assert len(decode(frame, META, DecodeOptions(vxlan_ports=(8472,), vxlan_enabled=False))) == 1


def test_tunnel_depth_limit():
    f = _inner_tcp()
    for _ in range(5):
        f = IP(src=C4, dst=S4) / GRE() / f
    pkts = decode(bytes(ETH / f), META, DecodeOptions(max_tunnel_depth=2))
    assert len(pkts) == 3
    assert "decoder.too_many_layers" in pkts[-1].events


def test_ip_in_ip():
    outer, inner = decode(bytes(ETH / IP(src=C4, dst=S4) / _inner_tcp()), META, CSUM)
    assert outer.proto == 4 and (inner.src, inner.sport, inner.outer) == (a4(I4), 1111, outer)


def test_decode_ip_without_link_layer():
    (p,) = decode_ip(bytes(IPv6(src=C6, dst=S6) / UDP(sport=3, dport=4)), META)
    assert (p.ipver, p.l3_off, p.sport, p.dport, p.csum_ok) == (6, 0, 3, 4, True)


# ---------------------------------------------------------------- helpers

def test_ip_text_and_proto_name():
    assert ip_text(4, a4(C4)) == C4 and ip_text(6, a6(C6)) == C6 and ip_text(0, 0) == ""
    assert [proto_name(n) for n in (6, 17, 1, 58, 47)] == ["TCP", "UDP", "ICMP", "IPv6-ICMP", "47"]


def test_ip_text_ipv4_is_the_ipaddress_rendering():
    import ipaddress
    import random

    rnd = random.Random(4)
    for a in [0, 1, 255, 256, 0x7F000001, 0xFFFFFFFF] + [rnd.getrandbits(32) for _ in range(2000)]:
        assert ip_text(4, a) == str(ipaddress.IPv4Address(a))


# ---------------------------------------------------------------- checksum agreement

CSUM_FRAMES = {
    "tcp4": ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2) / b"odd",
    "udp4": ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"even",
    "icmp4": ETH / IP(src=C4, dst=S4) / ICMP() / b"abc",
    "tcp6": ETH / IPv6(src=C6, dst=S6) / TCP(sport=1, dport=2) / b"odd",
    "udp6": ETH / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2) / b"xy",
    "icmp6": ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(data=b"abc"),
}


@pytest.mark.parametrize("name", list(CSUM_FRAMES))
def test_checksum_agrees_with_rules_checksum(name):
    raw = bytearray(bytes(CSUM_FRAMES[name]))
    for i in range(14 + 8, len(raw)):       # flip each byte after the IP addresses start
        mutated = bytearray(raw)
        mutated[i] ^= 0x5A
        p = decode(bytes(mutated), META, CSUM)[0]
        if p.events or p.csum_ok is None:
            continue
        if p.proto == 17 and p.ipver == 4 and struct.unpack_from("!H", mutated, 38)[0] != p.ip_len - 20:
            continue                          # short UDP length: we check that many bytes, the helper the IP length
        want = l4_checksum_ok(mutated, 14)
        hdr = ipv4_header_ok(mutated, 14) if p.ipver == 4 else True
        assert p.csum_ok == (bool(want) and hdr), (name, i)


# ---------------------------------------------------------------- truncation sweep

TRUNC_FRAMES = {
    "tcp4-opts": ETH / IP(src=C4, dst=S4, options=[IPOption_RR()]) / TCP(options=[("MSS", 1460), ("WScale", 2)]) / b"data",
    "udp4": ETH / IP(src=C4, dst=S4) / UDP() / b"data",
    "icmp4": ETH / IP(src=C4, dst=S4) / ICMP() / b"data",
    "arp": ETH / ARP(),
    "qinq": ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IP(src=C4, dst=S4) / UDP(),
    "tcp6-ext": ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrFragment(m=1) / TCP() / b"x",
    "icmp6": ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(data=b"abc"),
    "gre": ETH / IP(src=C4, dst=S4) / GRE(key_present=1) / IP(src=I4, dst=J4) / TCP(),
    "vxlan": ETH / IP(src=C4, dst=S4) / UDP(dport=4789) / VXLAN() / ETH / IP(src=I4, dst=J4) / TCP(),
}


@pytest.mark.parametrize("name", list(TRUNC_FRAMES))
def test_truncated_at_every_length_gives_events(name):
    raw = bytes(TRUNC_FRAMES[name])
    full = decode(raw, META, CSUM)
    assert all(p.events == () for p in full), [p.events for p in full]
    for n in range(len(raw)):
        pkts = decode(raw[:n], META, CSUM)
        assert pkts and isinstance(pkts[0], Packet)
        events = [e for p in pkts for e in p.events]
        if name == "arp" and n >= 14:
            continue                          # ARP body is not validated
        assert events, (name, n)
        assert all(e.startswith("decoder.") for e in events)
        assert "decoder.internal" not in events


# ---------------------------------------------------------------- agreement with Suricata
# Each frame below was written to a pcap and run through Suricata 7.0.10 with
# decoder-events.rules (`suricata -r t.pcap -S decoder-events.rules -k none`);
# the expected set is the decode-event names it alerted on.  Known differences,
# kept on purpose: a 26-byte IPv6 packet gives us ipv6.pkt_too_small where
# Suricata is silent, and checksum keywords (udpv4-csum, ...) are not events.

def _mut(frame, pos, val: bytes) -> bytes:
    b = bytearray(bytes(frame))
    b[pos:pos + len(val)] = val
    return bytes(b)


_BASE = ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2) / b"abc"
_UDP6 = ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"abcdef"
SURICATA_EVENTS = {
    "eth_small": (bytes(ETH)[:10], {"ethernet.pkt_too_small"}),
    "ip4_small": (bytes(ETH / IP(src=C4, dst=S4))[:30], {"ipv4.pkt_too_small"}),
    "ip4_ver": (_mut(_BASE, 14, b"\x55"), {"ipv4.wrong_ip_version"}),
    "ip4_hlen": (_mut(_BASE, 14, b"\x44"), {"ipv4.hlen_too_small"}),
    "ip4_iplen_lt_hlen": (_mut(_BASE, 16, b"\x00\x10"), {"ipv4.iplen_smaller_than_hlen"}),
    "ip4_trunc": (_mut(_BASE, 16, b"\x05\xdc"), {"ipv4.trunc_pkt"}),
    "ip4_optlen": (_mut(ETH / IP(src=C4, dst=S4, options=[IPOption_RR(routers=["203.0.113.9"])]) / TCP(), 35, b"\x28"),
                   {"ipv4.opt_invalid_len"}),
    "ip4_optdup": (bytes(ETH / IP(src=C4, dst=S4, options=[IPOption_RR(), IPOption_RR()]) / UDP()), {"ipv4.opt_duplicate"}),
    "ip4_icmpv6": (bytes(ETH / IP(src=C4, dst=S4, proto=58) / bytes(ICMPv6EchoRequest())), {"ipv4.icmpv6"}),
    "tcp_doff4": (_mut(_BASE, 46, b"\x40"), {"tcp.invalid_optlen"}),
    "tcp_doff15": (_mut(_BASE, 46, b"\xf0"), {"tcp.hlen_too_small"}),
    "tcp_trunc": (bytes(ETH / IP(src=C4, dst=S4, proto=6) / b"\x00\x01\x00\x02\x00"), {"tcp.pkt_too_small"}),
    "tcp_optlen": (bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, dataofs=6) / b"\x02\x09\x00\x00abc"),
                   {"tcp.opt_invalid_len"}),
    "tcp_optdup": (bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, options=[("MSS", 1), ("MSS", 2)])),
                   {"tcp.opt_duplicate"}),
    "tcp_syn_opts": (bytes(ETH / IP(src=C4, dst=S4) / TCP(flags="S", options=[
        ("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])), set()),
    "udp_small": (bytes(ETH / IP(src=C4, dst=S4, proto=17) / b"\x00\x01\x00"), {"udp.hlen_too_small"}),
    "udp_len4": (_mut(_UDP6, 38, b"\x00\x04"), {"udp.len_invalid"}),
    "udp_len_big": (_mut(_UDP6, 38, b"\x00\x40"), {"udp.pkt_too_small"}),
    "udp_len_short": (_mut(_UDP6, 38, b"\x00\x0a"), set()),
    "icmp_small": (bytes(ETH / IP(src=C4, dst=S4, proto=1) / b"\x08\x00\x00"), {"icmpv4.pkt_too_small"}),
    "icmp_type": (bytes(ETH / IP(src=C4, dst=S4) / ICMP(type=99)), {"icmpv4.unknown_type"}),
    "icmp_code": (bytes(ETH / IP(src=C4, dst=S4) / ICMP(type=3, code=42) / bytes(IP(src=S4, dst=C4) / UDP())),
                  {"icmpv4.unknown_code"}),
    "icmp_echo_code": (bytes(ETH / IP(src=C4, dst=S4) / ICMP(type=8, code=3)), {"icmpv4.unknown_code"}),
    "icmp_err_trunc": (bytes(ETH / IP(src=C4, dst=S4) / ICMP(type=3, code=1) / b"\x45\x00"), {"icmpv4.ipv4_trunc_pkt"}),
    "vlan_small": (bytes(ETH / Dot1Q(vlan=1))[:16], {"vlan.header_too_small"}),
    "vlan_many": (bytes(ETH / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / IP(src=C4, dst=S4) / UDP()),
                  {"vlan.too_many_layers"}),
    "ip6_ver": (_mut(ETH / IPv6(src=C6, dst=S6) / UDP(), 14, b"\x40"), {"ipv6.wrong_ip_version"}),
    "ip6_trunc": (_mut(ETH / IPv6(src=C6, dst=S6) / UDP(), 18, b"\x01\x00"), {"ipv6.trunc_pkt"}),
    "ip6_rh0": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrRouting(type=0, addresses=["2001:db8::9"]) / UDP()),
                {"ipv6.rh_type_0"}),
    "ip6_atomic_fh": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(offset=0, m=0) / UDP()),
                      {"ipv6.exthdr_useless_fh"}),
    "ip6_trunc_ext": (bytes(ETH / IPv6(src=C6, dst=S6, nh=0, plen=4) / b"\x11\x00\x00\x00"), {"ipv6.trunc_exthdr"}),
    "ip6_icmpv4": (bytes(ETH / IPv6(src=C6, dst=S6, nh=1) / ICMP()), {"ipv6.icmpv4"}),
    "ip6_hbh_pad_only": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / UDP()), {"ipv6.hopopts_only_padding"}),
    "ip6_dst_pad_only": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrDestOpt() / UDP()), {"ipv6.dstopts_only_padding"}),
    "ip6_hbh_router_alert": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / UDP()),
                             set()),
    "ip6_hbh_unknown_opt": (bytes(ETH / IPv6(src=C6, dst=S6)
                                  / IPv6ExtHdrHopByHop(options=[HBHOptUnknown(otype=0x3E, optdata=b"abcd")]) / UDP()),
                            {"ipv6.hopopts_unknown_opt"}),
    "ip6_dst_unknown_opt": (bytes(ETH / IPv6(src=C6, dst=S6)
                                  / IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=0x3E, optdata=b"abcd")]) / UDP()),
                            {"ipv6.dstopts_unknown_opt"}),
    "ip6_dupl_hh": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
                          / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / UDP()), {"ipv6.exthdr_dupl_hh"}),
    "ip6_two_dst": (bytes(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrDestOpt(options=[RouterAlert()])
                          / IPv6ExtHdrDestOpt(options=[RouterAlert()]) / UDP()), set()),
    "ip6_unknown_nh": (bytes(ETH / IPv6(src=C6, dst=S6, nh=99) / (b"x" * 16)), set()),
    "ip6_none_data": (bytes(ETH / IPv6(src=C6, dst=S6, nh=59) / b"junk"), {"ipv6.data_after_none_header"}),
    "icmp6_small": (bytes(ETH / IPv6(src=C6, dst=S6, nh=58) / b"\x80\x00"), {"icmpv6.pkt_too_small"}),
    "icmp6_unassigned": (bytes(ETH / IPv6(src=C6, dst=S6, nh=58) / b"\x32\x00\x00\x00abcd"), {"icmpv6.unassigned_type"}),
    "icmp6_exp": (bytes(ETH / IPv6(src=C6, dst=S6, nh=58) / b"\xc8\x00\x00\x00abcd"), {"icmpv6.experimentation_type"}),
    "icmp6_echo_code": (bytes(ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(code=3)), {"icmpv6.unknown_code"}),
    "icmp6_err_trunc": (bytes(ETH / IPv6(src=C6, dst=S6) / ICMPv6DestUnreach() / b"\x60\x00"), {"icmpv6.ipv6_trunc_pkt"}),
    "gre_small": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x00"), {"gre.pkt_too_small"}),
    "gre_empty": (bytes(ETH / IP(src=C4, dst=S4) / GRE()), set()),
    "gre_ver": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x00\x05\x08\x00"), {"gre.wrong_version"}),
    "gre_v0_flags": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x00\x40\x08\x00"), {"gre.version0_flags"}),
    "gre_v0_recur": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x01\x00\x08\x00"), {"gre.version0_recur"}),
    "gre_v0_big": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\xb0\x00\x08\x00\x00\x00"), {"gre.version0_hdr_too_big"}),
    "gre_v1_nokey": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x00\x01\x88\x0b"), {"gre.version1_no_key"}),
    "gre_v1_proto": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / b"\x20\x01\x08\x00\x00\x00\x00\x00"),
                     {"gre.version1_wrong_protocol"}),
    "gre_v1_csum": (bytes(ETH / IP(src=C4, dst=S4, proto=47) / (b"\xa0\x01\x88\x0b" + b"\x00" * 8)),
                    {"gre.version1_chksum"}),
    "clean_tcp": (bytes(_BASE), set()),
}


@pytest.mark.parametrize("name", list(SURICATA_EVENTS))
def test_events_match_suricata(name):
    frame, expected = SURICATA_EVENTS[name]
    got = {e.removeprefix("decoder.") for p in decode(frame, META, NOCSUM) for e in p.events}
    assert got == expected
