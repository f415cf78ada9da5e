"""bridge.worker.Watchdog: a frame that holds `inspect` past the limit is stopped there,
answered by the engine's exception policy and counted; frames outside `inspect`, and
batches that keep moving, are never interrupted."""
from __future__ import annotations

import pytest
from scapy.all import IP, UDP, Ether

from bridge.worker import Watchdog
from rules.api import FrameMeta, InspectTimeout, Verdict
from rules.engine import Engine
from rules.parser import parse_rule
from rules.settings import EngineSettings

FRAME = bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=1, dport=2) / b"STALL")


class Stuck(Engine):
    """An engine whose detection loops in Python for ever on a payload with STALL."""

    def _packet(self, pkt, inner, d):
        if b"STALL" in bytes(pkt.payload):
            while True:
                pass
        return super()._packet(pkt, inner, d)


def run_with_watchdog(engine, policy_frames):
    wd = Watchdog(0.1, Engine.inspect.__code__)
    wd.start()
    try:
        return [engine.inspect(f, FrameMeta(1.0 + i, "eth0")) for i, f in enumerate(policy_frames)], wd
    finally:
        wd.stop()


def test_a_stuck_frame_is_stopped_answered_by_the_exception_policy_and_counted():
    e = Stuck([parse_rule('alert udp any any -> any any (content:"x"; sid:1;)')],
              EngineSettings(mode="ips", exception_policy="drop-packet"))
    (r,), wd = run_with_watchdog(e, [FRAME])
    assert r.verdict == Verdict.DROP and r.reason == "policy:drop-packet"
    assert e.stats()["engine.timeouts"] == 1 and e.stats()["engine.errors"] == 0
    assert wd.fired == 1
    clean = bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=1, dport=2) / b"fine")
    assert e.inspect(clean, FrameMeta(9.0, "eth0")).verdict == Verdict.FORWARD   # the engine goes on


def test_with_pass_packet_the_stuck_frame_is_forwarded():
    e = Stuck([], EngineSettings(mode="ips", exception_policy="pass-packet"))
    (r,), _ = run_with_watchdog(e, [FRAME])
    assert r.verdict == Verdict.FORWARD and e.stats()["engine.timeouts"] == 1


def test_outside_inspect_nothing_is_raised():
    """A slow stretch of the worker's own code (or idle time) is not the inspector's."""
    import time

    wd = Watchdog(0.05, Engine.inspect.__code__)
    wd.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:     # four ticks in plain code: no exception
            pass
    finally:
        wd.stop()
    assert wd.fired == 0


def test_a_moving_batch_is_not_a_stuck_one():
    """Ticks inside inspect but in a new batch each time: never a strike."""
    wd = Watchdog(0.1, Watchdog.tick.__code__)      # any code object: the handler's own frame is on the stack

    class F:                                        # a stand-in frame: f_code/f_back
        f_code = Watchdog.tick.__code__
        f_back = None

    for n in range(10):
        wd.batch = n
        wd.tick(None, F())
    assert wd.fired == 0 and wd.strikes == 0
    wd.tick(None, F())                              # the same batch a tick later: one strike
    assert wd.fired == 0 and wd.strikes == 1
    with pytest.raises(InspectTimeout):             # and again: it has lasted the limit
        wd.tick(None, F())
    assert wd.fired == 1 and wd.strikes == 0


class StuckInTheLane(Engine):
    """An engine whose detection loops for ever on a TCP segment with STALL, reached through
    the compiled lane's call to _lane_detect (no `inspect` frame on the stack)."""

    def _detect_stage(self, pkt, flow, view, tunnelled, d):
        if b"STALL" in bytes(pkt.payload):
            while True:
                pass
        return super()._detect_stage(pkt, flow, view, tunnelled, d)


def stalled_on_the_lane(engine: Engine, first: bytes, *codes):
    """A session's handshake and a `first` segment through the compiled lane (Engine.front),
    then a STALL segment under a Watchdog bounding `codes` (after inspect's): the watchdog
    and the STALL frame's Result."""
    from scapy.all import TCP

    front = engine.front()
    c, s = IP(src="198.51.100.1", dst="203.0.113.2"), IP(src="203.0.113.2", dst="198.51.100.1")
    frames = [Ether() / c / TCP(sport=4000, dport=80, flags="S", seq=100),
              Ether() / s / TCP(sport=80, dport=4000, flags="SA", seq=500, ack=101),
              Ether() / c / TCP(sport=4000, dport=80, flags="A", seq=101, ack=501),
              Ether() / c / TCP(sport=4000, dport=80, flags="PA", seq=101, ack=501) / first,
              Ether() / c / TCP(sport=4000, dport=80, flags="PA", seq=101 + len(first), ack=501) / b"STALL"]
    for i, f in enumerate(frames[:-1]):
        assert front(bytes(f), FrameMeta(1.0 + i, "eth0")).verdict == Verdict.FORWARD
    wd = Watchdog(0.1, Engine.inspect.__code__, *codes)
    wd.start()
    try:
        r = front(bytes(frames[-1]), FrameMeta(9.0, "eth0"))
    finally:
        wd.stop()
    return wd, r


def test_detection_the_compiled_lane_runs_is_bounded_too():
    """An in-order data segment the compiled lane (Engine.front) took, whose window holds a
    fast pattern, goes to detection through Engine._lane_detect, outside `inspect`: the
    worker's watchdog watches that code too, and the engine answers by its policy."""
    rules = [parse_rule('alert tcp any any -> any any (content:"STALL"; sid:1;)')]
    e = StuckInTheLane(rules, EngineSettings(mode="ips", exception_policy="drop-packet"))
    wd, r = stalled_on_the_lane(e, b"hello", Engine._lane_detect.__code__)
    assert wd.fired == 1 and e.stats()["engine.timeouts"] == 1
    assert r.verdict == Verdict.DROP and r.reason == "policy:drop-packet"


class StuckInTheParser(Engine):
    """An engine whose app layer loops for ever on a segment with STALL, reached through the
    compiled lane's call to _lane_app (no `inspect` frame on the stack)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        feed = self.app.feed_tcp

        def stuck(flow, to_server, data):
            if b"STALL" in data:
                while True:
                    pass
            return feed(flow, to_server, data)

        self.app.feed_tcp = stuck


def test_the_app_layer_the_compiled_lane_runs_is_bounded_too():
    """With app-layer rules, an in-order data segment the compiled lane took goes to the
    parser and the transaction rules through Engine._lane_app, outside `inspect`: the
    worker's watchdog watches that code too (Engine.LANE_ENTRIES), and the engine answers
    by its policy."""
    rules = [parse_rule('alert http any any -> any any (http.uri; content:"/admin"; sid:1;)')]
    e = StuckInTheParser(rules, EngineSettings(mode="ips", exception_policy="drop-packet"))
    wd, r = stalled_on_the_lane(e, b"GET / HTTP/1.1\r\n", *(getattr(Engine, n).__code__ for n in Engine.LANE_ENTRIES))
    assert wd.fired == 1 and e.stats()["engine.timeouts"] == 1
    assert r.verdict == Verdict.DROP and r.reason == "policy:drop-packet"
