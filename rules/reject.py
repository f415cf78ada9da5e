"""The reject stage: the frames a reject action sends.

`reject_frames(pkt, action)` builds, for the packet a reject rule decided:
a TCP RST (with ACK) for TCP, an ICMP / ICMPv6 destination unreachable
(port unreachable for UDP, administratively prohibited otherwise) quoting the
packet for anything else.  `reject` and `rejectsrc` answer the sender
(out of the interface the packet came in on), `rejectdst` the receiver,
`rejectboth` both, as Suricata's reject actions do.  The Ethernet header is
the packet's own with the addresses swapped for the answer going back (VLAN
tags kept).  An RST or an ICMP error is never answered, nor is a fragment, nor
a packet read from a capture of another link type (Linux cooked, raw IP,
NULL/LOOP: replay only): it has no Ethernet header to answer with, so the
reject stays a plain drop (the engine turns a REJECT without frames into DROP).
"""
from __future__ import annotations

import struct

from rules.api import Inject
from rules.checksum import fill_l4_checksum, inet_checksum
from rules.decode import behind_ethernet
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_RST, TH_SYN, Packet


def _l2(pkt: Packet, back: bool) -> bytes:
    f = pkt.frame
    dst, src = bytes(f[0:6]), bytes(f[6:12])
    tags = bytes(f[12:pkt.l3_off - 2]) if pkt.l3_off > 14 else b""
    eth_type = 0x0800 if pkt.ipver == 4 else 0x86DD
    if back:
        dst, src = src, dst
    return dst + src + tags + struct.pack("!H", eth_type)


def _ip(pkt: Packet, src: int, dst: int, proto: int, l4: bytes) -> bytes:
    if pkt.ipver == 4:
        hdr = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst))
        struct.pack_into("!H", hdr, 10, inet_checksum(hdr))
        return bytes(hdr) + l4
    return struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + src.to_bytes(16, "big") + dst.to_bytes(16, "big") + l4


def _finish(l2: bytes, ip: bytes) -> bytes:
    out = bytearray(l2 + ip)
    fill_l4_checksum(out, len(l2))
    return bytes(out)


def _tcp_rst(pkt: Packet, back: bool) -> bytes:
    seglen = len(pkt.payload) + (1 if pkt.tcp_flags & TH_SYN else 0) + (1 if pkt.tcp_flags & TH_FIN else 0)
    if back:              # to the sender, as if from the receiver
        src, dst, sp, dp = pkt.dst, pkt.src, pkt.dport, pkt.sport
        seq = pkt.ack if pkt.tcp_flags & TH_ACK else 0
        ack = (pkt.seq + seglen) & 0xFFFFFFFF
    else:                 # to the receiver, as if from the sender
        src, dst, sp, dp = pkt.src, pkt.dst, pkt.sport, pkt.dport
        seq = (pkt.seq + seglen) & 0xFFFFFFFF
        ack = pkt.ack
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, TH_RST | TH_ACK, 0, 0, 0)
    return _finish(_l2(pkt, back), _ip(pkt, src, dst, IPPROTO_TCP, tcp))


def _icmp_unreach(pkt: Packet, back: bool) -> bytes:
    f = pkt.frame
    if back:
        src, dst = pkt.dst, pkt.src
    else:
        src, dst = pkt.src, pkt.dst
    port = pkt.proto == IPPROTO_UDP
    if pkt.ipver == 4:
        quote = bytes(f[pkt.l3_off:min(len(f), pkt.l4_off + 8)])
        body = struct.pack("!BBHI", 3, 3 if port else 13, 0, 0) + quote
        proto = IPPROTO_ICMP
    else:
        quote = bytes(f[pkt.l3_off:min(len(f), pkt.l3_off + 1232)])
        body = struct.pack("!BBHI", 1, 4 if port else 1, 0, 0) + quote
        proto = IPPROTO_ICMPV6
    return _finish(_l2(pkt, back), _ip(pkt, src, dst, proto, body))


def reject_frames(pkt: Packet, action: str) -> list[Inject]:
    """Inject frames for a reject: TCP RST, or ICMP unreachable for anything else.
    Never answers an RST or an ICMP error, nor a packet without an Ethernet header."""
    if pkt.ipver not in (4, 6) or pkt.frag or not behind_ethernet(pkt):
        return []
    if pkt.proto == IPPROTO_TCP:
        if pkt.tcp_flags & TH_RST:
            return []
        make = _tcp_rst
    else:
        if pkt.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and not (pkt.icmp_type in (0, 8, 128, 129) or pkt.icmp_type < 0):
            return []
        make = _icmp_unreach
    out = []
    if action in ("reject", "rejectsrc", "rejectboth"):
        out.append(Inject(make(pkt, True), back=True))
    if action in ("rejectdst", "rejectboth"):
        out.append(Inject(make(pkt, False), back=False))
    return out
