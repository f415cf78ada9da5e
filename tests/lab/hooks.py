"""Verdict-hook factories for the lab tests (`verdict-hook: tests.lab.hooks:NAME`).

Each factory takes the Config and returns an Inspector, built inside every
worker process.  Parameters come from environment variables, because the
hook string is all the config carries:

    IPSB_DROP_UDP_PORT   UDP destination port dropped by drop_udp_port (default 9999)
    IPSB_DROP_TCP_PORT   TCP destination port dropped by drop_tcp_port (default 9998)

The predicates parse the Ethernet/IPv4/IPv6 headers with struct on the
memoryview the bridge passes (no copies; in-band VLAN tags are skipped).
"""
from __future__ import annotations

import os
import struct

from rules.api import FORWARD, ForwardAll, PredicateInspector

_IPPROTO_TCP = 6
_IPPROTO_UDP = 17


def _l4_dport(frame, proto_wanted: int) -> int | None:
    """Destination port of a TCP/UDP packet in an Ethernet frame, else None."""
    try:
        off = 12
        etype, = struct.unpack_from("!H", frame, off)
        while etype in (0x8100, 0x88A8):
            off += 4
            etype, = struct.unpack_from("!H", frame, off)
        l3 = off + 2
        if etype == 0x0800:
            ihl = (frame[l3] & 0x0F) * 4
            if frame[l3 + 9] != proto_wanted:
                return None
            frag, = struct.unpack_from("!H", frame, l3 + 6)
            if frag & 0x1FFF:
                return None
            l4 = l3 + ihl
        elif etype == 0x86DD:
            if frame[l3 + 6] != proto_wanted:
                return None
            l4 = l3 + 40
        else:
            return None
        return struct.unpack_from("!H", frame, l4 + 2)[0]
    except (IndexError, struct.error):
        return None


def drop_udp_port(config):
    port = int(os.environ.get("IPSB_DROP_UDP_PORT", "9999"))
    return PredicateInspector(lambda frame, meta: _l4_dport(frame, _IPPROTO_UDP) == port)


def drop_tcp_port(config):
    port = int(os.environ.get("IPSB_DROP_TCP_PORT", "9998"))
    return PredicateInspector(lambda frame, meta: _l4_dport(frame, _IPPROTO_TCP) == port)


def forward_all(config):
    return ForwardAll()


class _Raising:
    """Raises on every frame: the worker must count inspector_errors and keep forwarding."""

    def inspect(self, frame, meta):
        raise RuntimeError("hook failure (test)")

    def tick(self, now):
        return ()

    def stats(self):
        return {}


def raising(config):
    return _Raising()


MARKER_ETHERTYPE = 0x88B5


class _MarkerCounter:
    """Forwards everything; counts frames of the lab's marker EtherType (stats()["marker"])."""

    def __init__(self):
        self.counters = {"inspected": 0, "marker": 0}

    def inspect(self, frame, meta):
        self.counters["inspected"] += 1
        if frame[12] == MARKER_ETHERTYPE >> 8 and frame[13] == MARKER_ETHERTYPE & 0xFF:
            self.counters["marker"] += 1
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return dict(self.counters)


def count_marker(config):
    return _MarkerCounter()


class _FlowRecorder:
    """Forwards everything; stats() names every IPv4/IPv6 TCP/UDP flow seen, direction-free
    ("flow:<lo addr:port>-<hi addr:port>/<proto>" -> frames) plus per-direction counts, so a
    test can check that both directions of each flow met in one worker."""

    def __init__(self):
        self.counters = {"inspected": 0}

    def inspect(self, frame, meta):
        self.counters["inspected"] += 1
        try:
            off = 12
            etype, = struct.unpack_from("!H", frame, off)
            while etype in (0x8100, 0x88A8):
                off += 4
                etype, = struct.unpack_from("!H", frame, off)
            l3 = off + 2
            if etype == 0x0800:
                proto = frame[l3 + 9]
                src, dst = bytes(frame[l3 + 12:l3 + 16]).hex(), bytes(frame[l3 + 16:l3 + 20]).hex()
                l4 = l3 + (frame[l3] & 0x0F) * 4
            elif etype == 0x86DD:
                proto = frame[l3 + 6]
                src, dst = bytes(frame[l3 + 8:l3 + 24]).hex(), bytes(frame[l3 + 24:l3 + 40]).hex()
                l4 = l3 + 40
            else:
                return FORWARD
            if proto not in (_IPPROTO_TCP, _IPPROTO_UDP):
                return FORWARD
            sport, dport = struct.unpack_from("!HH", frame, l4)
        except (IndexError, struct.error):
            return FORWARD
        a, b = f"{src}:{sport}", f"{dst}:{dport}"
        key = f"flow:{min(a, b)}-{max(a, b)}/{proto}"
        self.counters[key] = self.counters.get(key, 0) + 1
        side = f"dir:{meta.iface}:{key}"
        self.counters[side] = self.counters.get(side, 0) + 1
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return dict(self.counters)


def record_flows(config):
    return _FlowRecorder()


class _RejectMarker:
    """REJECT marker frames: each is dropped, a copy with EtherType+1 is injected back out of
    the ingress port, and a rules.events.Stats event is returned (so EVE output is exercised)."""

    def __init__(self):
        self.counters = {"inspected": 0, "rejected": 0}

    def inspect(self, frame, meta):
        from rules.api import Inject, Result, Verdict
        from rules.events import Stats

        self.counters["inspected"] += 1
        if frame[12] == MARKER_ETHERTYPE >> 8 and frame[13] == MARKER_ETHERTYPE & 0xFF:
            self.counters["rejected"] += 1
            reply = bytearray(frame)
            reply[0:6], reply[6:12] = frame[6:12], frame[0:6]
            struct.pack_into("!H", reply, 12, MARKER_ETHERTYPE + 1)
            return Result(Verdict.REJECT, events=(Stats(meta.ts, (("rejected", 1),)),), reason="hook",
                          inject=(Inject(bytes(reply), back=True),))
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return dict(self.counters)


def reject_marker(config):
    return _RejectMarker()


class _Staller:
    """Forwards everything, but loops in Python for ever on a frame that carries STALL:
    only the worker's watchdog (ipsbridge.inspect-time-limit) gets the worker out."""

    def __init__(self):
        self.counters = {"inspected": 0}

    def inspect(self, frame, meta):
        self.counters["inspected"] += 1
        if b"STALL" in bytes(frame):
            while True:
                pass
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return dict(self.counters)


def staller(config):
    return _Staller()
