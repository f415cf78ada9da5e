"""Decoding frames of every link type replay reads: Linux cooked SLL/SLL2, raw IP,
NULL/LOOP, next to Ethernet.

Each link type must land in the same IPv4/IPv6 decoding as Ethernet (same
fields, same checksum verdicts), carry VLAN tags in SLL's payload, turn a
short link header into Suricata's decoder event and never raise.  Headers are
built byte by byte here (struct), so the layouts are checked against the
specification rather than against scapy's idea of them."""
from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Ether

from rules.api import FrameMeta
from rules.decode import LINKTYPES, DecodeOptions, decode, link_pkttype, network_header
from rules.packet import TH_ACK, TH_PSH, TH_SYN

C4, S4 = "198.51.100.1", "198.51.100.2"
C6, S6 = "2001:db8::1", "2001:db8::2"
MAC = bytes.fromhex("020000000001")
CSUM = DecodeOptions(checksum_validation=True)

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q = 0x0800, 0x86DD, 0x0806, 0x8100
PACKET_HOST, PACKET_OUTGOING = 0, 4


def sll(payload: bytes, proto: int, pkttype: int = PACKET_HOST) -> bytes:
    # packet type, ARPHRD_ETHER, address length, address (8 bytes, zero padded), protocol
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC, proto) + payload


def sll2(payload: bytes, proto: int, pkttype: int = PACKET_HOST, ifindex: int = 3) -> bytes:
    # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length, address
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, MAC) + payload


def null(payload: bytes, family: int, order: str = "<") -> bytes:
    return struct.pack(order + "I", family) + payload


def ethertype(ip: bytes) -> int:
    return ETH_P_IPV6 if ip[0] >> 4 == 6 else ETH_P_IP


# link type -> (frame from an IP datagram, where the IP header starts)
WRAP = {
    1: (lambda ip: bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=ethertype(ip))) + ip, 14),
    113: (lambda ip: sll(ip, ethertype(ip)), 16),
    276: (lambda ip: sll2(ip, ethertype(ip)), 20),
    101: (lambda ip: ip, 0),
    228: (lambda ip: ip, 0),
    229: (lambda ip: ip, 0),
    0: (lambda ip: null(ip, 2 if ip[0] >> 4 == 4 else 10, "<"), 4),
    108: (lambda ip: null(ip, 2 if ip[0] >> 4 == 4 else 24, ">"), 4),
}
NAMES = {1: "ethernet", 113: "sll", 276: "sll2", 101: "raw", 228: "ipv4", 229: "ipv6", 0: "null", 108: "loop"}
# the link types whose frames can carry this IP version
V4_TYPES = [lt for lt in WRAP if lt != 229]
V6_TYPES = [lt for lt in WRAP if lt != 228]


def meta(lt: int) -> FrameMeta:
    return FrameMeta(ts=1700000000.5, iface="any", pcap_cnt=3, linktype=lt)


def one(frame: bytes, lt: int):
    pkts = decode(frame, meta(lt), CSUM)
    assert len(pkts) == 1, [p.events for p in pkts]
    return pkts[0]


def test_every_link_type_here_is_one_decode_reads():
    assert set(WRAP) == set(LINKTYPES)


@pytest.mark.parametrize("lt", V4_TYPES, ids=[NAMES[lt] for lt in V4_TYPES])
def test_tcp4_decodes_as_on_ethernet(lt):
    ip = bytes(IP(src=C4, dst=S4, ttl=61, id=4242) /
               TCP(sport=40000, dport=80, seq=1000, ack=2000, flags="PA", window=5000) / b"GET / HTTP/1.0\r\n")
    wrap, l3 = WRAP[lt]
    frame = wrap(ip)
    p = one(frame, lt)
    assert (p.ts, p.iface, p.pcap_cnt, p.vlan) == (1700000000.5, "any", 3, ())
    assert p.length == len(frame) and p.l3_off == l3 and p.eth_type == ETH_P_IP and p.l4_off == l3 + 20
    assert (p.ipver, p.src, p.dst, p.proto, p.ttl, p.ip_id, p.ip_len) == (
        4, int(ipaddress.IPv4Address(C4)), int(ipaddress.IPv4Address(S4)), 6, 61, 4242, len(ip))
    assert (p.sport, p.dport, p.seq, p.ack, p.win, p.tcp_flags) == (40000, 80, 1000, 2000, 5000, TH_PSH | TH_ACK)
    assert bytes(p.payload) == b"GET / HTTP/1.0\r\n" and isinstance(p.payload, memoryview)
    assert p.csum_ok is True and p.events == () and p.outer is None


@pytest.mark.parametrize("lt", V6_TYPES, ids=[NAMES[lt] for lt in V6_TYPES])
def test_udp6_decodes_as_on_ethernet(lt):
    ip = bytes(IPv6(src=C6, dst=S6, hlim=9) / UDP(sport=5353, dport=53) / b"query")
    wrap, l3 = WRAP[lt]
    p = one(wrap(ip), lt)
    assert p.l3_off == l3 and p.eth_type == ETH_P_IPV6 and p.ipver == 6 and p.ttl == 9
    assert (p.src, p.dst) == (int(ipaddress.IPv6Address(C6)), int(ipaddress.IPv6Address(S6)))
    assert (p.proto, p.sport, p.dport, bytes(p.payload)) == (17, 5353, 53, b"query")
    assert p.csum_ok is True and p.events == ()


@pytest.mark.parametrize("lt", V4_TYPES, ids=[NAMES[lt] for lt in V4_TYPES])
def test_bad_checksum_is_seen_through_every_link_header(lt):
    ip = bytearray(bytes(IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S")))
    ip[-3] ^= 0xFF                                  # inside the TCP checksum
    p = one(WRAP[lt][0](bytes(ip)), lt)
    assert p.tcp_flags == TH_SYN and p.csum_ok is False


def test_ethernet_is_the_default_link_type():
    frame = WRAP[1][0](bytes(IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"x"))
    a = decode(frame, FrameMeta(ts=1.0, iface="eth0"))[0]
    b = decode(frame, FrameMeta(ts=1.0, iface="eth0", linktype=1))[0]
    assert FrameMeta(ts=1.0, iface="eth0").linktype == 1
    assert (a.l3_off, a.ipver, a.sport, bytes(a.payload)) == (b.l3_off, b.ipver, b.sport, bytes(b.payload)) == (
        14, 4, 1, b"x")


# ---------------------------------------------------------------- Linux cooked

@pytest.mark.parametrize("lt,build", [(113, sll), (276, sll2)], ids=["sll", "sll2"])
def test_cooked_vlan_tag_in_the_payload_is_decoded(lt, build):
    # libpcap puts a tag the kernel stripped back in front of the payload, protocol 0x8100
    ip = bytes(IP(src=C4, dst=S4) / UDP(sport=1, dport=53) / b"q")
    frame = build(struct.pack("!HH", (3 << 13) | 42, ETH_P_IP) + ip, ETH_P_8021Q)
    p = one(frame, lt)
    hdr = 16 if lt == 113 else 20
    assert p.vlan == (42,) and p.l3_off == hdr + 4 and p.eth_type == ETH_P_IP
    assert (p.ipver, p.dport, bytes(p.payload)) == (4, 53, b"q") and p.events == ()
    assert network_header(frame, lt) == (ETH_P_IP, hdr + 4)


@pytest.mark.parametrize("lt,build", [(113, sll), (276, sll2)], ids=["sll", "sll2"])
def test_cooked_vlan_truncated_and_too_many(lt, build):
    assert one(build(b"\x00\x2a", ETH_P_8021Q), lt).events == ("decoder.vlan.header_too_small",)
    tags = b"".join(struct.pack("!HH", i, ETH_P_8021Q) for i in (1, 2, 3)) + struct.pack("!HH", 4, ETH_P_IP)
    p = one(build(tags + bytes(IP(src=C4, dst=S4) / UDP()), ETH_P_8021Q), lt)
    assert p.events == ("decoder.vlan.too_many_layers",) and p.vlan == (1, 2, 3, 4) and p.ipver == 0


@pytest.mark.parametrize("lt,build", [(113, sll), (276, sll2)], ids=["sll", "sll2"])
def test_cooked_non_ip_is_a_packet_without_ip(lt, build):
    arp = bytes(ARP(psrc=C4, pdst=S4))
    for proto, body in ((ETH_P_ARP, arp), (0x0004, b"\xaa\xaa\x03 802.2 LLC"), (0x000C, b"CAN frame")):
        p = one(build(body, proto), lt)
        assert (p.eth_type, p.ipver, p.proto, p.sport) == (proto, 0, 0, 0)
        assert bytes(p.payload) == body and p.events == ()


@pytest.mark.parametrize("pkttype", [0, 1, 2, 3, 4], ids=["host", "broadcast", "multicast", "otherhost", "outgoing"])
def test_packet_type_is_read_from_both_cooked_headers(pkttype):
    ip = bytes(IP(src=C4, dst=S4) / UDP())
    assert link_pkttype(sll(ip, ETH_P_IP, pkttype), 113) == pkttype
    assert link_pkttype(sll2(ip, ETH_P_IP, pkttype), 276) == pkttype
    # scapy agrees on where it sits
    assert link_pkttype(bytes(CookedLinux(pkttype=pkttype) / IP()), 113) == pkttype
    assert link_pkttype(bytes(CookedLinuxV2(pkttype=pkttype) / IP()), 276) == pkttype


def test_packet_type_absent_elsewhere_or_when_short():
    ip = bytes(IP(src=C4, dst=S4) / UDP())
    assert link_pkttype(WRAP[1][0](ip), 1) == -1
    assert link_pkttype(ip, 101) == -1
    assert link_pkttype(sll(ip, ETH_P_IP, 4)[:15], 113) == -1
    assert link_pkttype(sll2(ip, ETH_P_IP, 4)[:19], 276) == -1


def test_scapy_cooked_headers_decode_alike():
    ip = IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S")
    a = one(bytes(CookedLinux(pkttype=4, lladdrtype=1, lladdrlen=6, src=MAC) / ip), 113)
    b = one(bytes(CookedLinuxV2(pkttype=4, ifindex=2, lladdrtype=1, lladdrlen=6, src=MAC) / ip), 276)
    assert (a.l3_off, b.l3_off) == (16, 20)
    assert (a.sport, a.dport, a.tcp_flags, a.csum_ok) == (b.sport, b.dport, b.tcp_flags, b.csum_ok) == (1, 2, TH_SYN, True)


# ---------------------------------------------------------------- NULL / LOOP

@pytest.mark.parametrize("family", [10, 23, 24, 26, 28, 30], ids=["linux", "winsock", "bsd", "solaris", "freebsd",
                                                                  "darwin"])
@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_null_takes_every_af_inet6_in_either_byte_order(family, order):
    ip = bytes(IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2) / b"v6")
    p = one(null(ip, family, order), 0)
    assert (p.l3_off, p.eth_type, p.ipver, bytes(p.payload)) == (4, ETH_P_IPV6, 6, b"v6") and p.events == ()


@pytest.mark.parametrize("order", ["<", ">"], ids=["little-endian", "big-endian"])
def test_null_af_inet_either_byte_order(order):
    p = one(null(bytes(IP(src=C4, dst=S4) / UDP(sport=1, dport=2)), 2, order), 0)
    assert (p.ipver, p.sport, p.events) == (4, 1, ())


def test_loop_is_network_byte_order_only():
    ip = bytes(IP(src=C4, dst=S4) / UDP(sport=1, dport=2))
    assert one(null(ip, 2, ">"), 108).ipver == 4
    p = one(null(ip, 2, "<"), 108)               # 0x02000000: no such family
    assert p.ipver == 0 and p.events == ("decoder.ltnull.unsupported_type",)


@pytest.mark.parametrize("lt", [0, 108], ids=["null", "loop"])
def test_null_other_families_are_not_ip(lt):
    p = one(null(b"appletalk", 16, ">" if lt == 108 else "<"), lt)      # AF_APPLETALK on the BSDs
    assert (p.ipver, p.l3_off, bytes(p.payload)) == (0, 4, b"appletalk")
    assert p.events == ("decoder.ltnull.unsupported_type",)


# ---------------------------------------------------------------- raw IP

@pytest.mark.parametrize("lt", [101, 228, 229], ids=["raw", "ipv4", "ipv6"])
def test_raw_version_nibble_decides_as_suricata(lt):
    # Suricata's DecodeRaw serves 101, 228 and 229 alike: the version nibble decides
    v4 = bytes(IP(src=C4, dst=S4) / UDP(sport=1, dport=2))
    v6 = bytes(IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2))
    assert (one(v4, lt).ipver, one(v6, lt).ipver) == (4, 6)
    bad = bytes([0x55]) + v4[1:]
    p = one(bad, lt)
    assert p.ipver == 0 and p.events == ("decoder.ipraw.invalid_ip_version",)


# ---------------------------------------------------------------- truncation

# Suricata 7's names (src/decode-events.c; sll2 from Suricata 8), for a record shorter
# than the link header; a raw record shorter than an IPv4 header is ipv4.pkt_too_small
# whatever its version, as DecodeRaw reports it
SHORT = {113: (16, "decoder.sll.pkt_too_small"), 276: (20, "decoder.sll2.pkt_too_small"),
         0: (4, "decoder.ltnull.pkt_too_small"), 108: (4, "decoder.ltnull.pkt_too_small"),
         101: (20, "decoder.ipv4.pkt_too_small"), 228: (20, "decoder.ipv4.pkt_too_small"),
         229: (20, "decoder.ipv4.pkt_too_small"), 1: (14, "decoder.ethernet.pkt_too_small")}


@pytest.mark.parametrize("lt", sorted(WRAP), ids=[NAMES[lt] for lt in sorted(WRAP)])
def test_every_truncation_decodes_without_raising(lt):
    ip = bytes(IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S", options=[("MSS", 1460)]) / b"data")
    if lt == 229:
        ip = bytes(IPv6(src=C6, dst=S6) / TCP(sport=1, dport=2, flags="S") / b"data")
    frame = WRAP[lt][0](ip)
    need, event = SHORT[lt]
    for n in range(len(frame) + 1):
        pkts = decode(frame[:n], meta(lt), CSUM)
        p = pkts[0]
        assert p.length == n and "decoder.internal" not in p.events
        if n < need:
            assert p.events == (event,) and p.ipver == 0, (n, p.events)
        elif n < len(frame):
            assert p.events, n                       # something says the record is short
    assert one(frame, lt).events == ()


def test_unknown_link_type_is_never_an_exception():
    (p,) = decode(b"\x00\x01radiotap", meta(127))
    assert (p.ipver, bytes(p.payload), p.events) == (0, b"\x00\x01radiotap", ())
    assert network_header(b"\x00" * 40, 127) == (0, 0)


# ---------------------------------------------------------------- network_header (replay's flow hash)

@pytest.mark.parametrize("lt", sorted(WRAP), ids=[NAMES[lt] for lt in sorted(WRAP)])
def test_network_header_finds_the_ip_header(lt):
    ip = bytes(IPv6(src=C6, dst=S6) / UDP()) if lt == 229 else bytes(IP(src=C4, dst=S4) / UDP())
    wrap, l3 = WRAP[lt]
    assert network_header(wrap(ip), lt) == (ethertype(ip), l3)
    assert network_header(wrap(ip)[:l3 - 1] if l3 else b"", lt)[0] == 0


@settings(max_examples=300, deadline=None)
@given(lt=st.sampled_from(sorted(WRAP) + [127]), data=st.binary(max_size=80))
def test_random_bytes_under_any_link_type(lt, data):
    for p in decode(data, meta(lt), CSUM):
        assert "decoder.internal" not in p.events
        assert 0 <= p.l3_off <= len(data) and 0 <= p.l4_off <= len(data)
    network_header(data, lt)
    link_pkttype(data, lt)
