"""Per-worker, per-interface counters and how they add up.

Accounting (per interface, for the frames *received* on it):

    ips:  received == forwarded + sum(dropped) + sum(send_errors)
    tap:  received == forwarded + sum(dropped) + sum(send_errors)   (dropped only "truncated")
    ids:  received == inspected + bypassed
    all:  received == inspected + bypassed

`forwarded` counts frames sent out of the *peer* interface, reported under the
interface they were received on.  `bypassed` counts frames the fast path
(bridge.fastpath: flows the inspector decided) answered without the inspector;
they are in the first equation like any other frame: a fast-path forward is
`forwarded` (or a send error), a fast-path drop is `dropped["flow"]` -- the
reason the engine gives the frames of a dropped flow, so a flow's drops add up
under one name whichever path took them.  Frames the kernel offload
(bridge.ebpf) forwards or drops never reach the ring and are in no per-interface
counter: they are the `bypass.kernel.*` totals.  Frames the kernel flags
PACKET_OUTGOING (host-originated, only seen when PACKET_IGNORE_OUTGOING is
missing) are counted in `ignored_outgoing` and are not part of `received`.
Injected frames (reject) are counted in `injected` / `inject_errors`, outside
the equation.  `normalized` counts frames forwarded with their TCP payload
replaced by the bytes the stream already held (an overlapping retransmission
with different data, inline: `Result.frame`).  `ring_holes` counts ring slots
skipped because the kernel left one of them unfilled while later ones were
ready (see bridge.ring.V2Ring.skip_hole).  `kernel_packets` / `kernel_drops`
are PACKET_STATISTICS, accumulated (the kernel resets them on each read;
tp_packets includes tp_drops).
"""
from __future__ import annotations

from typing import Any

SCALARS = (
    "received", "forwarded", "inspected", "ignored_outgoing", "oversize", "csum_filled",
    "csum_unfixable", "vlan_reinserted", "kernel_packets", "kernel_drops", "inspector_errors",
    "injected", "inject_errors", "link_errors", "ring_holes", "normalized", "bypassed",
)
MAPS = ("dropped", "would_drop", "send_errors")


class Counters:
    """Counters of one interface in one worker.  Plain attributes: cheap to bump per frame."""

    __slots__ = SCALARS + MAPS

    def __init__(self) -> None:
        for name in SCALARS:
            setattr(self, name, 0)
        for name in MAPS:
            setattr(self, name, {})

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in SCALARS}
        for name in MAPS:
            d[name] = dict(getattr(self, name))
        return d


def bump(d: dict[str, int], key: str, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


def empty() -> dict[str, Any]:
    return Counters().as_dict()


def merge(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Add `other` to `into` (numbers add, nested dicts add key by key); returns `into`."""
    for key, value in other.items():
        if isinstance(value, dict):
            merge(into.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
        else:
            into.setdefault(key, value)
    return into


def unaccounted(c: dict[str, Any]) -> int:
    """received minus everything that explains it (0 when every frame is accounted for).
    For IDS-only interfaces use `uninspected` instead."""
    return (c["received"] - c["forwarded"] - sum(c["dropped"].values())
            - sum(c["send_errors"].values()))


def uninspected(c: dict[str, Any]) -> int:
    """received minus the frames the inspector or the fast path took (0 on every interface)."""
    return c["received"] - c["inspected"] - c.get("bypassed", 0)


def rates(now: dict[str, dict], before: dict[str, dict], elapsed: float) -> dict[str, dict[str, float]]:
    """Per-interface per-second rates of the main counters between two totals."""
    out: dict[str, dict[str, float]] = {}
    if elapsed <= 0:
        return out
    for iface, c in now.items():
        b = before.get(iface, {})
        out[iface] = {
            f"{k}_per_s": round((c.get(k, 0) - b.get(k, 0)) / elapsed, 1)
            for k in ("received", "forwarded", "kernel_drops")
        }
        out[iface]["dropped_per_s"] = round(
            (sum(c.get("dropped", {}).values()) - sum(b.get("dropped", {}).values())) / elapsed, 1)
    return out


def _sum(d: dict[str, Any]) -> int:
    return sum(d.values()) if isinstance(d, dict) else int(d or 0)


def eve_stats(totals: dict[str, Any], uptime: float) -> dict[str, Any]:
    """The `stats` object of an EVE stats record, in the shape Suricata 7 writes (its
    dump-counters tree): uptime, capture (PACKET_STATISTICS), decoder, ips (accepted,
    blocked, drop reasons), detect, flow, tcp, defrag; counters Suricata has no name for
    go under `ipsbridge`, with their own names."""
    ifaces = totals.get("interfaces", {})
    insp = dict(totals.get("inspector", {}))
    reasons: dict[str, int] = {}
    for c in ifaces.values():
        for reason, n in c.get("dropped", {}).items():
            reasons[reason] = reasons.get(reason, 0) + n

    def take(prefix: str, names: dict[str, str]) -> dict[str, int]:
        out = {}
        for ours, theirs in names.items():
            key = prefix + ours
            if key in insp:
                out[theirs] = insp.pop(key)
        return out

    decoder = {"pkts": insp.pop("packets", 0)}
    flow = take("flow.", {"created": "total", "active": "active", "memcap_hits": "memcap",
                          "emergency_entered": "emerg_mode_entered", "tcp_reuse": "tcp_reuse",
                          "midstream_pickups": "midstream_pickups", "expired": "timeout", "evicted": "evicted"})
    tcp = take("stream.", {"sessions": "sessions", "memuse": "memuse", "memcap_drop": "ssn_memcap_drop",
                           "reassembly_memcap": "reassembly_memcap", "ooo_limit": "segment_memcap_drop"})
    defrag = {k[len("defrag."):]: insp.pop(k) for k in [k for k in insp if k.startswith("defrag.")]}
    detect = {"alert": insp.pop("alerts", 0)}
    return {
        "uptime": int(uptime),
        "capture": {
            "kernel_packets": sum(c.get("kernel_packets", 0) for c in ifaces.values()),
            "kernel_drops": sum(c.get("kernel_drops", 0) for c in ifaces.values()),
            "errors": sum(_sum(c.get("send_errors", {})) for c in ifaces.values()),
        },
        "decoder": decoder,
        "ips": {
            "accepted": sum(c.get("forwarded", 0) for c in ifaces.values()),
            "blocked": sum(reasons.values()),
            "rejected": sum(c.get("injected", 0) for c in ifaces.values()),
            "drop_reason": reasons,
        },
        "detect": detect,
        "flow": flow,
        "tcp": tcp,
        "defrag": defrag,
        "ipsbridge": {"interfaces": ifaces, "inspector": insp},
    }
