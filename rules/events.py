"""Events the engine reports: small immutable records (NamedTuple: an alerting or dropped
frame builds two of them, and a frozen dataclass of PacketInfo's twenty fields took 2.5 us
to build against 0.9), rendered by `bridge.eve`.

They carry everything EVE needs (times, addresses as ints plus the IP version,
the rule's identity, for a drop copies of the packet's IP and L4 headers), so an
event can be logged long after its packet's buffer was reused.  No packet
objects inside.

`pkt_src` names where the packet came from, with Suricata 7's values (checked
with suricata -r on tests/replay/differential tunnels and fragments): the wire,
a packet decoded out of a tunnel (by the carrier), a datagram rebuilt from IP
fragments, or a flow's end.
"""
from __future__ import annotations

from typing import NamedTuple

IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_GRE = 1, 6, 17, 47

PKT_SRC_WIRE = "wire/pcap"
PKT_SRC_DEFRAG = "defrag"
PKT_SRC_FLOW_END = "stream (flow timeout)"


def pkt_src_of(pkt, rebuilt: bool = False) -> str:
    """EVE pkt_src of a packet: `rebuilt` for a datagram reassembled from fragments (only
    the engine knows), else by its carrier for a packet decoded out of a tunnel (GRE,
    VXLAN, IP in IPv4 / IPv6), else the wire."""
    if rebuilt:
        return PKT_SRC_DEFRAG
    o = pkt.outer
    if o is None:
        return PKT_SRC_WIRE
    if o.proto == IPPROTO_GRE:
        return "gre tunnel"
    if o.proto == IPPROTO_UDP:
        return "vxlan encapsulation"
    return "ipv6 tunnel" if o.ipver == 6 else "ipv4 tunnel"


class PacketInfo(NamedTuple):
    """The packet an event is about (what EVE's common fields need)."""

    ts: float
    iface: str = ""
    pcap_cnt: int = 0
    vlan: tuple[int, ...] = ()
    flow_id: int = 0
    ipver: int = 0
    src: int = 0
    dst: int = 0
    sport: int = 0
    dport: int = 0
    proto: int = 0
    to_server: bool | None = None     # None: no flow
    length: int = 0
    ttl: int = 0
    ip_id: int = 0
    tcp_flags: int = 0
    icmp_type: int = -1
    icmp_code: int = -1
    pkt_src: str = PKT_SRC_WIRE       # EVE pkt_src (pkt_src_of; PKT_SRC_FLOW_END for a flow's end)
    app_proto: str = ""               # the flow's app-layer protocol (rules.applayer), "failed", or ""


class Alert(NamedTuple):
    pkt: PacketInfo
    action: str            # what happened to the packet: "allowed" | "blocked" (EVE alert.action)
    rule_action: str       # the rule's own action: alert | drop | reject* | pass
    gid: int
    sid: int
    rev: int
    msg: str
    category: str
    severity: int          # the rule's priority
    metadata: tuple[str, ...] = ()   # the rule's `metadata` entries as written ("key value"), EVE alert.metadata

    event_type = "alert"


class Drop(NamedTuple):
    pkt: PacketInfo
    reason: str            # the engine's: DROP_REASONS' keys (bridge.eve writes Suricata's value)
    sid: int = 0           # the deciding rule, when a rule decided
    alert: Alert | None = None     # the alert of the rule that caused the drop (EVE embeds it)
    ip_hdr: bytes = b""    # the packet's IP header, its first 20 bytes (IPv6: 8), for EVE's drop fields
    l4_hdr: bytes = b""    # its TCP/UDP/ICMP header, up to 20 bytes (none for a fragment)

    event_type = "drop"


# The engine's drop reasons (Result.reason, the drops.<reason> counters) and the
# drop.reason Suricata 7 writes for them (decode.c PacketDropReasonToString, checked
# with suricata -r --simulate-ips): a packet of a dropped flow is "flow drop", the
# frame that carried a dropped tunnelled or rebuilt packet "tunnel packet drop".
DROP_REASONS = {
    "rule": "rules",
    "rate_filter": "threshold detection_filter",
    "flow": "flow drop",
    "tunnel": "tunnel packet drop",
    "stream-invalid": "stream error",
    "policy:midstream": "stream midstream",
    "policy:stream_memcap": "stream memcap",
    "policy:stream_reassembly_memcap": "stream reassembly",
}

_L4_HEADER = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMP: 8}


def headers(pkt) -> tuple[bytes, bytes]:
    """Copies of what EVE's drop record reads from the packet: the fixed part of its IP
    header and, unless it is a fragment, its TCP/UDP/ICMP header."""
    frame, l3 = pkt.frame, pkt.l3_off
    ip = bytes(frame[l3:l3 + (20 if pkt.ipver == 4 else 8)]) if pkt.ipver else b""
    n = _L4_HEADER.get(pkt.proto, 0)
    l4 = bytes(frame[pkt.l4_off:pkt.l4_off + n]) if n and not pkt.frag and pkt.l4_off else b""
    return ip, l4


class DecoderEvent(NamedTuple):
    pkt: PacketInfo
    name: str              # Suricata's event name, e.g. "decoder.ipv4.trunc_pkt"

    event_type = "anomaly"


class Stats(NamedTuple):
    ts: float
    counters: tuple[tuple[str, int], ...]

    event_type = "stats"
