"""rules.decode behaviour the mutation run (tests/bench/mutation.py) found unchecked by the
decoder suites: the common-frame fast path on IPv6 protocols it does not handle, a cut
Ethernet header inside a tunnel, IPv6 extension header anomalies (a reserved field,
duplicated AH and routing headers with another header between, the final destination of
a type 0 routing header in the L4 checksum), GRE version 1 flag events, GRE source
routes, GRE carrying IPv6 or an unknown protocol, IPv4 options that end the header
exactly, TCP option lengths, big-endian NULL link headers, behind_ethernet per link
type."""
from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrRouting
from scapy.layers.ipsec import AH
from scapy.layers.l2 import GRE, Ether

from rules.api import FrameMeta
from rules.decode import (
    LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW,
    DecodeOptions,
    behind_ethernet, decode,
)

C4, S4 = "198.51.100.1", "203.0.113.2"
C6, S6, R6 = "2001:db8::1", "2001:db8::2", "2001:db8::99"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
META = FrameMeta(ts=1.0, iface="eth0")
CSUM = DecodeOptions(checksum_validation=True)


def pkts(frame, opts=CSUM, linktype=LINKTYPE_ETHERNET):
    return decode(bytes(frame), FrameMeta(ts=1.0, iface="eth0", linktype=linktype), opts)


def one(frame, **kw):
    out = pkts(frame, **kw)
    assert len(out) == 1
    return out[0]


def test_an_ipv6_protocol_the_fast_path_does_not_know_is_left_to_the_decoder():
    body = b"\x80\x00" + b"\x01" * 38                  # looks like an ICMPv6 echo request: it is not one
    p = one(ETH / IPv6(src=C6, dst=S6, nh=89) / body)
    assert (p.ipver, p.proto, p.icmp_type, p.sport, p.dport) == (6, 89, -1, 0, 0)
    assert bytes(p.payload) == body


def test_a_cut_ethernet_header_inside_a_tunnel_is_pkt_too_small():
    frame = ETH / IP(src=C4, dst=S4) / GRE(proto=0x6558) / (b"\x02" * 10)
    outer, inner = pkts(frame)
    assert "decoder.ethernet.pkt_too_small" in inner.events and inner.ipver == 0
    assert "decoder.ethernet.pkt_too_small" not in outer.events


def test_ipv6_fragment_header_reserved_field():
    p = one(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(res1=1, offset=0, m=0) / UDP(sport=1, dport=2))
    assert "decoder.ipv6.fh_non_zero_reserved_field" in p.events


def test_ipv6_duplicated_ah():
    p = one(ETH / IPv6(src=C6, dst=S6) / AH(nh=51, payloadlen=4, icv=b"\0" * 12)
            / AH(nh=17, payloadlen=4, icv=b"\0" * 12) / UDP(sport=1, dport=2))
    assert "decoder.ipv6.exthdr_dupl_ah" in p.events and p.proto == 17


def test_a_routing_header_twice_with_another_between_is_duplicated():
    p = one(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrRouting(type=2, addresses=[R6], segleft=0)
            / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(type=2, addresses=[R6], segleft=0) / UDP(sport=1, dport=2))
    assert "decoder.ipv6.exthdr_dupl_rh" in p.events and p.proto == 17
    once = one(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrRouting(type=2, addresses=[R6], segleft=0)
               / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2))
    assert "decoder.ipv6.exthdr_dupl_rh" not in once.events


@pytest.mark.parametrize("rtype", [0, 2])
def test_the_l4_checksum_uses_the_routing_headers_final_destination(rtype):
    """scapy computes the UDP checksum with the last address of the list as the
    destination (RFC 8200 8.1): the decoder must find the same one."""
    frame = ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrRouting(type=rtype, addresses=[R6], segleft=1) / UDP(sport=1, dport=2)
    p = one(frame)
    assert p.csum_ok is True


def gre_v1(flags: int, body: bytes = b"") -> bytes:
    return bytes(ETH / IP(src=C4, dst=S4, proto=47)) + struct.pack("!HH", flags | 0x2001, 0x880B) + b"\0" * 4 + body


@pytest.mark.parametrize("flag,event", [
    (0x0800, "decoder.gre.version1_ssr"),
    (0x0100, "decoder.gre.version1_recur"),
    (0x0008, "decoder.gre.version1_flags"),
], ids=["ssr", "recur", "flags"])
def test_gre_version1_flag_events(flag, event):
    frame = bytearray(gre_v1(flag, b"\x00" * 8))
    struct.pack_into("!H", frame, 16, len(frame) - 14)          # IP total length
    p = pkts(bytes(frame), opts=DecodeOptions(checksum_validation=False))[0]
    assert event in p.events


def test_gre_version0_key_without_room_is_hdr_too_big():
    frame = bytes(ETH / IP(src=C4, dst=S4, proto=47)) + struct.pack("!HH", 0x2000, 0x0800) + b"\0\0"
    frame = bytearray(frame)
    struct.pack_into("!H", frame, 16, len(frame) - 14)
    p = pkts(bytes(frame), opts=DecodeOptions(checksum_validation=False))[0]
    assert "decoder.gre.version0_hdr_too_big" in p.events
    assert bytes(p.payload) == struct.pack("!HH", 0x2000, 0x0800) + b"\0\0"


def test_gre_source_routes_are_skipped_to_the_inner_packet():
    inner = bytes(IP(src=C4, dst=S4) / UDP(sport=7, dport=9) / b"in")
    sre = struct.pack("!HBB", 0x0800, 0, 4) + b"\x0a\x0b\x0c\x0d" + struct.pack("!HBB", 0, 0, 0)
    gre = struct.pack("!HH", 0x4000, 0x0800) + b"\0\0\0\0" + sre      # routing: checksum + offset word
    outer = IP(src="198.51.100.7", dst="203.0.113.7", proto=47) / (gre + inner)
    got = pkts(ETH / outer, opts=DecodeOptions(checksum_validation=False))
    assert len(got) == 2 and (got[1].sport, got[1].dport, bytes(got[1].payload)) == (7, 9, b"in")


def test_gre_carries_ipv6_and_keeps_an_unknown_protocol_as_payload():
    v6 = pkts(ETH / IP(src=C4, dst=S4) / GRE(proto=0x86DD) / IPv6(src=C6, dst=S6) / UDP(sport=3, dport=4) / b"x")
    assert len(v6) == 2 and (v6[1].ipver, v6[1].sport, v6[1].csum_ok) == (6, 3, True)
    other = pkts(ETH / IP(src=C4, dst=S4) / GRE(proto=0x1234) / b"opaque")
    assert len(other) == 1 and bytes(other[0].payload) == b"opaque"


def test_ipv4_options_that_fill_the_header_exactly_raise_nothing():
    # four NOPs, then a UDP header whose first byte (sport 0x44xx) would read as a
    # timestamp option of a bad length if the option walk went one byte too far
    p = one(ETH / IP(src=C4, dst=S4, options=b"\x01\x01\x01\x01") / UDP(sport=0x4401, dport=2))
    assert not [e for e in p.events if "ipv4.opt" in e] and p.sport == 0x4401


def test_a_tcp_option_with_a_bad_length_is_opt_invalid_len():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, options=[("NOP", None)] * 4)))
    raw[54:58] = b"\x03\x01\x00\x00"                     # window scale with length 1
    p = one(bytes(raw), opts=DecodeOptions(checksum_validation=False))
    assert "decoder.tcp.opt_invalid_len" in p.events


def test_a_big_endian_null_header_is_read():
    ip = bytes(IP(src=C4, dst=S4) / UDP(sport=5, dport=6))
    for head in (struct.pack("<I", 2), struct.pack(">I", 2)):
        p = one(head + ip, linktype=LINKTYPE_NULL)
        assert (p.ipver, p.sport, p.dport) == (4, 5, 6)
    p = one(struct.pack(">I", 2) + ip, linktype=LINKTYPE_LOOP)      # LOOP: always big-endian
    assert (p.ipver, p.sport, p.dport) == (4, 5, 6)


def test_a_tcp_option_kind_without_its_length_byte_is_opt_invalid_len():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, options=[("NOP", None)] * 4)))
    raw[54:58] = b"\x01\x01\x01\x03"                     # a window scale kind in the last byte
    p = one(bytes(raw), opts=DecodeOptions(checksum_validation=False))
    assert "decoder.tcp.opt_invalid_len" in p.events


def ip_frame(proto: int, body: bytes) -> bytes:
    return bytes(ETH / IP(src=C4, dst=S4, proto=proto) / body)


def test_gre_version1_ppp_carries_ipv6():
    inner = bytes(IPv6(src=C6, dst=S6) / UDP(sport=3, dport=4) / b"x")
    gre = struct.pack("!HHHH", 0x2001, 0x880B, len(inner) + 4, 7) + b"\xff\x03\x00\x57" + inner
    got = pkts(ip_frame(47, gre), opts=DecodeOptions(checksum_validation=False))
    assert len(got) == 2 and (got[1].ipver, got[1].sport, got[1].dport) == (6, 3, 4)


def test_a_cut_gre_source_route_is_hdr_too_big():
    gre = struct.pack("!HH", 0x4000, 0x0800) + b"\0\0\0\0" + struct.pack("!HB", 0x0800, 0)   # SRE cut short
    p = pkts(ip_frame(47, gre), opts=DecodeOptions(checksum_validation=False))[0]
    assert "decoder.gre.version0_hdr_too_big" in p.events


@pytest.mark.parametrize("linktype,frame,behind", [
    (LINKTYPE_ETHERNET, lambda ip: bytes(ETH)[:12] + b"\x08\x00" + ip, True),
    (LINKTYPE_LINUX_SLL, lambda ip: b"\0" * 14 + b"\x08\x00" + ip, False),
    (LINKTYPE_LINUX_SLL2, lambda ip: b"\x08\x00" + b"\0" * 18 + ip, False),
    (LINKTYPE_NULL, lambda ip: struct.pack("<I", 2) + ip, False),
    (LINKTYPE_RAW, lambda ip: ip, False),
], ids=["ethernet", "sll", "sll2", "null", "raw"])
def test_behind_ethernet_per_link_type(linktype, frame, behind):
    p = one(frame(bytes(IP(src=C4, dst=S4) / UDP(sport=5, dport=6))), linktype=linktype)
    assert p.ipver == 4 and behind_ethernet(p) is behind
