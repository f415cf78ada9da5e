"""A recording verdict hook for the multi-worker pinning test (and the demo's fallback policy).

`tests.lab.flowhooks:record_flows` forwards everything and remembers, per
worker process, which flows (protocol + the two endpoints, sorted so both
directions share one key) it saw on which interface.  Each time the worker
asks for its stats (periodically and once more at shutdown) the table is
written to `$IPSB_FLOWLOG_DIR/flows-<pid>.json`, so the test reads one file
per worker after the bridge stopped:

    {"pid": 1234, "flows": {"17 198.51.100.1:40000 198.51.100.2:7100": {"eth0": 3, "eth1": 3}}}

`tests.lab.flowhooks:demo_policy` is the demo's policy written as a hook, used
by `netns-lab/lab.py demo` only while the rule engine (-S) is not available:
drop UDP to port 9999, drop TCP whose payload contains EVIL-PAYLOAD, forward
the rest.
"""
from __future__ import annotations

import ipaddress
import json
import os
import struct

from rules.api import DROP_BY_HOOK, FORWARD

MARKER = b"EVIL-PAYLOAD"


def _five_tuple(frame):
    """(proto, src, sport, dst, dport, l4 payload offset) of a TCP/UDP frame, else None."""
    try:
        off = 12
        etype, = struct.unpack_from("!H", frame, off)
        while etype in (0x8100, 0x88A8):
            off += 4
            etype, = struct.unpack_from("!H", frame, off)
        l3 = off + 2
        if etype == 0x0800:
            ihl = (frame[l3] & 0x0F) * 4
            proto = frame[l3 + 9]
            frag, = struct.unpack_from("!H", frame, l3 + 6)
            if frag & 0x1FFF:
                return None
            src, dst = bytes(frame[l3 + 12:l3 + 16]), bytes(frame[l3 + 16:l3 + 20])
            l4 = l3 + ihl
        elif etype == 0x86DD:
            proto = frame[l3 + 6]
            src, dst = bytes(frame[l3 + 8:l3 + 24]), bytes(frame[l3 + 24:l3 + 40])
            l4 = l3 + 40
        else:
            return None
        if proto not in (6, 17):
            return None
        sport, dport = struct.unpack_from("!HH", frame, l4)
        if proto == 6:
            payload = l4 + (frame[l4 + 12] >> 4) * 4
        else:
            payload = l4 + 8
        return proto, src, sport, dst, dport, payload
    except (IndexError, struct.error):
        return None


def flow_key(proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> str:
    a = f"{ipaddress.ip_address(src)}:{sport}"
    b = f"{ipaddress.ip_address(dst)}:{dport}"
    lo, hi = sorted((a, b))
    return f"{proto} {lo} {hi}"


class FlowRecorder:
    def __init__(self, directory: str):
        self.directory = directory
        self.flows: dict[str, dict[str, int]] = {}
        self.inspected = 0

    def inspect(self, frame, meta):
        self.inspected += 1
        t = _five_tuple(frame)
        if t is not None:
            per_iface = self.flows.setdefault(flow_key(*t[:5]), {})
            per_iface[meta.iface] = per_iface.get(meta.iface, 0) + 1
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        self.dump()
        return {"inspected": self.inspected, "flows": len(self.flows)}

    def dump(self) -> None:
        pid = os.getpid()
        path = os.path.join(self.directory, f"flows-{pid}.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"pid": pid, "flows": self.flows}, fh)
        os.replace(tmp, path)


def record_flows(config):
    directory = os.environ.get("IPSB_FLOWLOG_DIR")
    if not directory:
        raise RuntimeError("record_flows: set IPSB_FLOWLOG_DIR to a directory for flows-<pid>.json")
    return FlowRecorder(directory)


class DemoPolicy:
    """Drop UDP to 9999 and TCP payloads containing EVIL-PAYLOAD; count ICMP echo requests."""

    def __init__(self):
        self.counters = {"inspected": 0, "dropped_udp_9999": 0, "dropped_marker": 0}

    def inspect(self, frame, meta):
        self.counters["inspected"] += 1
        t = _five_tuple(frame)
        if t is None:
            return FORWARD
        proto, _src, _sport, _dst, dport, payload = t
        if proto == 17 and dport == 9999:
            self.counters["dropped_udp_9999"] += 1
            return DROP_BY_HOOK
        if proto == 6 and MARKER in bytes(frame[payload:]):
            self.counters["dropped_marker"] += 1
            return DROP_BY_HOOK
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return dict(self.counters)


def demo_policy(config):
    return DemoPolicy()
