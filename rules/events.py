"""Events the engine reports: small frozen dataclasses, rendered by `bridge.eve`.

They carry everything EVE needs (times, addresses as ints plus the IP version,
the rule's identity), so an event can be logged long after its packet's
buffer was reused.  No packet objects inside.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PacketInfo:
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
    pkt_src: str = "wire/pcap"        # EVE pkt_src: "wire/pcap", or "stream (flow timeout)" for a flow's end


@dataclass(frozen=True, slots=True)
class Alert:
    pkt: PacketInfo
    action: str            # what happened to the packet: "allowed" | "blocked" (EVE alert.action)
    rule_action: str       # the rule's own action: alert | drop | reject* | pass
    gid: int
    sid: int
    rev: int
    msg: str
    category: str
    severity: int          # the rule's priority

    event_type = "alert"


@dataclass(frozen=True, slots=True)
class Drop:
    pkt: PacketInfo
    reason: str            # "rule", "flow", "decoder", "policy:<name>"
    sid: int = 0           # the deciding rule, when reason == "rule"

    event_type = "drop"


@dataclass(frozen=True, slots=True)
class DecoderEvent:
    pkt: PacketInfo
    name: str              # Suricata's event name, e.g. "decoder.ipv4.trunc_pkt"

    event_type = "anomaly"


@dataclass(frozen=True, slots=True)
class Stats:
    ts: float
    counters: tuple[tuple[str, int], ...]

    event_type = "stats"
