"""The compiled ring walk (bridge/_ringpass.c, used by bridge.worker.Worker.drain) does what
the Python walk does.

Every scenario runs twice on identical rings, once through the compiled walk and once
through the Python one (`_c_ring_pass` None; tests/unit/test_ring_release.py shows that
walk hands each slot back once, after its frame went out): the frames that went out (TX
ring or plain send, in order), what the inspector was handed, every counter, the EVE
events, and the RX ring's bytes (status words: each consumed slot handed back, the rest
untouched) must be the same.  The scenarios cover each way the compiled walk stops and
hands a frame to Python (a checksum to fill, a VLAN tag, a frame cut by the ring, a drop,
a reject with an inject, a fast-path verdict, a TX ring full, a flush at half the TX
ring), outgoing frames, an inspector that raises, ForwardAll, IDS, tap, and random mixes
of them (hypothesis).  The last tests check the compiled walk is the one running, and
that it leaves the rings consistent when an exception it must not swallow goes through.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ring_release import PS, Judge, KernelTx, PlainSock, frame, guarded_ring

import bridge.worker
from bridge import afpacket as afp
from bridge.ring import TxRing, V2Ring
from bridge.worker import Worker, _Port
from conf.model import Config
from rules.api import FORWARD, Bypass, ForwardAll, Result, Verdict


class Ring:
    """A V2 ring of 256-byte slots the test fills as the kernel would (a Guard's `deliver`,
    without the guard: the compiled walk writes the memory itself)."""

    def __init__(self, nslots: int = 32):
        g = guarded_ring(nslots)
        self.ring = g.ring
        self.ring.words = g.words         # the plain status words again: no guard
        self.g = g

    def deliver(self, frames, **kw):
        self.g.deliver(frames, **kw)


def build(inspector, *, tx: bool, mode: str | None = "ips", nslots: int = 32, tx_slots: int = 256, config=None):
    ring = Ring(nslots)
    if tx:
        kernel = KernelTx()
        g = afp.RingGeometry(afp.TPACKET_V2, tx_slots * 2048, 1, 2048, tx_slots)
        txr = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth1")
        kernel.tx = txr
        port = _Port("eth0", PS("eth0", object()), ring.ring, mode, kernel, tx=txr)
        out = kernel
    else:
        out = PlainSock()
        port = _Port("eth0", PS("eth0", object()), ring.ring, mode, out)
    other_ring = V2Ring(memoryview(bytearray(4 * 256)), afp.RingGeometry(afp.TPACKET_V2, 1024, 1, 256, 4))
    other = _Port("eth1", PS("eth1", out), other_ring, mode, object())
    w = Worker([port, other], inspector, config or Config())
    return w, port, out, ring


class Recorder(Judge):
    """A Judge that also keeps what it was handed with each frame: the FrameMeta fields."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.metas: list[tuple] = []

    def inspect(self, data, meta):
        self.metas.append((meta.ts, meta.checksum, meta.vlan, meta.tpid, meta.iface))
        return super().inspect(data, meta)


def run(compiled: bool, steps, make_inspector, monkeypatch, **kw):
    """Deliver each step's frames (frames, deliver-kwargs) and drain; what it all left."""
    if not compiled:
        monkeypatch.setattr(bridge.worker, "_c_ring_pass", None)
    else:
        monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL)
    insp = make_inspector()
    w, port, out, ring = build(insp, **kw)
    events: list = []
    w.write_events = events.extend
    consumed = []
    for frames, dkw in steps:
        ring.deliver(frames, **dkw)
        consumed.append(w.drain(port))
    if port.tx is not None:
        port.tx.flush(port.counters)
    seen = getattr(insp, "seen", None)
    metas = getattr(insp, "metas", None)
    return {"sent": out.sent, "consumed": consumed, "counters": port.counters.as_dict(), "seen": seen,
            "metas": metas, "events": events, "rx": bytes(ring.ring.view), "head": ring.ring.head,
            "last_ts": w.last_ts, "forward_all_seen": getattr(insp, "seen_count", None)}


REAL = bridge.worker._c_ring_pass


def both(steps, make_inspector, monkeypatch, **kw):
    a = run(True, steps, make_inspector, monkeypatch, **kw)
    b = run(False, steps, make_inspector, monkeypatch, **kw)
    assert a == b
    return a


def stops_of(monkeypatch) -> list[int]:
    """The `stop` of each return of the compiled walk from now on (0 end, 1 a frame for
    Python, 2 flush), as they come."""
    stops: list[int] = []

    def spy(*a):
        out = REAL(*a)
        stops.append(out[0])
        return out
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", spy)
    return stops


def plain(frames):
    return [(frames, {})]


# ------------------------------------------------------------------ each way the walk stops
def test_the_compiled_walk_is_built_and_taken(monkeypatch):
    assert REAL is not None, "bridge._ringpass was not built (pip install -e . builds it)"
    calls = []

    def spy(*a):
        calls.append(a[-1])
        return REAL(*a)
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", spy)
    w, port, out, ring = build(Judge(), tx=True)
    ring.deliver([frame(k) for k in range(5)])
    assert w.drain(port) == 5
    port.tx.flush(port.counters)
    assert calls and out.sent == [frame(k) for k in range(5)]


@pytest.mark.parametrize("tx", [True, False], ids=["tx-ring", "plain-send"])
def test_clean_frames(tx, monkeypatch):
    r = both(plain([frame(k) for k in range(20)]), Recorder, monkeypatch, tx=tx)
    assert len(r["sent"]) == 20 and r["counters"]["forwarded"] == 20


def test_drops_and_rejects(monkeypatch):
    r = both(plain([frame(k) for k in range(12)]), lambda: Recorder(drop={0, 5, 11}, reject={3}), monkeypatch,
             tx=True)
    assert r["counters"]["dropped"] == {"rule": 4} and r["counters"]["injected"] == 1


def test_an_inspector_that_raises(monkeypatch):
    r = both(plain([frame(k) for k in range(6)]), lambda: Recorder(raises={2, 3}), monkeypatch, tx=True)
    assert r["counters"]["inspector_errors"] == 2 and len(r["sent"]) == 6


def test_rare_frames_cut_frames_and_outgoing_frames(monkeypatch):
    steps = [([frame(0), frame(1)], {}),
             ([frame(2)], {"status": afp.TP_STATUS_USER | afp.TP_STATUS_CSUMNOTREADY}),
             ([frame(3, 300)], {"snap": 100}),
             ([frame(4)], {"pkttype": afp.PACKET_OUTGOING}),
             ([frame(5)], {"status": afp.TP_STATUS_USER | afp.TP_STATUS_CSUM_VALID}),
             ([frame(6), frame(7)], {})]
    r = both(steps, Recorder, monkeypatch, tx=True)
    c = r["counters"]
    assert c["dropped"] == {"truncated": 1} and c["ignored_outgoing"] == 1 and c["csum_filled"] == 1
    assert [m[1] for m in r["metas"]][-3:] != [None] * 3      # checksum hints reached the inspector


def test_vlan_tagged_frames(monkeypatch):
    """A stripped tag: the Python path sets the FrameMeta's vlan for that frame only, and
    puts the tag back before forwarding."""
    steps = [([frame(0)], {}), ([frame(1)], {"status": afp.TP_STATUS_USER | afp.TP_STATUS_VLAN_VALID}),
             ([frame(2)], {})]
    r = both(steps, Recorder, monkeypatch, tx=True)
    assert r["counters"]["vlan_reinserted"] == 1
    assert [m[2] for m in r["metas"]] == [(), (0,), ()]


def test_a_full_tx_ring_and_flushes_at_half_of_it(monkeypatch):
    """A TX ring of 8 slots: the walk stops to flush every 4 frames; 40 frames in one drain."""
    r = both(plain([frame(k) for k in range(40)]), Recorder, monkeypatch, tx=True, nslots=64, tx_slots=8)
    assert len(r["sent"]) == 40


@pytest.mark.parametrize("action", ["drop", "pass"])
def test_fast_path_verdicts(action, monkeypatch):
    r = both([([frame(k) for k in range(5)], {}), ([frame(k) for k in range(5, 12)], {})],
             lambda: Recorder(bypass=action), monkeypatch, tx=True)
    assert r["counters"]["bypassed"] == 11 and r["seen"] == [0]


@pytest.mark.parametrize("mode", ["tap", None], ids=["tap", "ids"])
def test_tap_and_ids(mode, monkeypatch):
    r = both(plain([frame(k) for k in range(10)]), lambda: Recorder(drop={1, 4}), monkeypatch, tx=mode == "tap",
             mode=mode)
    assert r["counters"]["inspected"] == 10


def test_forward_all(monkeypatch):
    """No rules: no FrameMeta, no inspect call; ForwardAll's `seen` counts the frames."""
    made = []

    def make():
        made.append(ForwardAll())
        return made[-1]
    r = both(plain([frame(k) for k in range(9)]), make, monkeypatch, tx=True)
    assert len(r["sent"]) == 9 and [f.seen for f in made] == [9, 9]


def test_a_wrapping_ring_over_several_drains(monkeypatch):
    steps = [([frame(k + 7 * i) for k in range(7)], {}) for i in range(10)]   # 70 frames, 16 slots
    r = both(steps, lambda: Recorder(drop={13, 44}), monkeypatch, tx=True, nslots=16)
    assert r["consumed"] == [7] * 10 and len(r["sent"]) == 68


# ------------------------------------------------------------------ random mixes
KINDS = ["clean", "csum", "cut", "outgoing", "vlan", "drop", "reject", "raise"]


@settings(max_examples=60, deadline=None)
@given(plan=st.lists(st.lists(st.sampled_from(KINDS), min_size=1, max_size=9), min_size=1, max_size=8),
       tx=st.booleans(), tx_slots=st.sampled_from([4, 8, 256]))
def test_random_mixes(plan, tx, tx_slots):
    with pytest.MonkeyPatch.context() as mp:
        steps, drop, reject, raises = [], set(), set(), set()
        k = 0
        for group in plan:
            for kind in group:
                k += 1
                f = frame(k)
                dkw = {}
                if kind == "csum":
                    dkw = {"status": afp.TP_STATUS_USER | afp.TP_STATUS_CSUMNOTREADY}
                elif kind == "cut":
                    f, dkw = frame(k, 300), {"snap": 120}
                elif kind == "outgoing":
                    dkw = {"pkttype": afp.PACKET_OUTGOING}
                elif kind == "vlan":
                    dkw = {"status": afp.TP_STATUS_USER | afp.TP_STATUS_VLAN_VALID}
                elif kind in ("drop", "reject", "raise"):
                    {"drop": drop, "reject": reject, "raise": raises}[kind].add(k % 256)
                steps.append(([f], dkw))
            steps.append(([], {}))                 # a drain after each group
        both(steps, lambda: Recorder(drop=drop, reject=reject, raises=raises), mp, tx=tx, nslots=128,
             tx_slots=tx_slots if tx else 256)


# ------------------------------------------------------------------ what goes through
def test_a_base_exception_leaves_the_rings_consistent(monkeypatch):
    """KeyboardInterrupt out of the inspector on the third frame: the two before it went out
    and their slots back; that frame stays at the head and is read again by the next drain."""
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL)

    class Stop(Recorder):
        armed = True

        def inspect(self, data, meta):
            if bytes(data)[-1] == 2 and self.armed:
                self.armed = False
                raise KeyboardInterrupt
            return super().inspect(data, meta)

    insp = Stop()
    w, port, out, ring = build(insp, tx=True)
    ring.deliver([frame(k) for k in range(5)])
    with pytest.raises(KeyboardInterrupt):
        w.drain(port)
    assert ring.ring.head == 2 and port.tx.queued == 0 and out.sent == [frame(0), frame(1)]
    assert w.drain(port) == 3
    port.tx.flush(port.counters)
    assert out.sent == [frame(k) for k in range(5)] and insp.seen == [0, 1, 2, 3, 4]


class Offers:
    """An engine with no fast path behind it (no `bypassed`): every clean frame comes with a
    bypass offer (as the engine's UDP "scan" offer), frame 3 with an event too."""

    def __init__(self):
        self.seen: list[int] = []

    def inspect(self, data, meta):
        k = bytes(data)[-1]
        self.seen.append(k)
        return Result(Verdict.FORWARD, events=(("event", k),) if k == 3 else (),
                      bypass=Bypass(object(), "scan", True, "prefilter"))

    def tick(self, now):
        return ()

    def stats(self):
        return {}


def test_a_bypass_offer_without_a_fast_path_is_a_clean_frame(monkeypatch):
    """Nothing can take the offer: the compiled walk forwards such a frame as a clean one
    instead of stopping at it, a frame with an event too (the event goes with the drain's)."""
    r = both(plain([frame(k) for k in range(10)]), Offers, monkeypatch, tx=True)
    assert len(r["sent"]) == 10
    stops = stops_of(monkeypatch)
    w, port, out, ring = build(Offers(), tx=True)
    assert w.fast is None
    ring.deliver([frame(k) for k in range(10)])
    w.drain(port)
    assert stops == [0]                                # no stop, not even frame 3 with its event


class Alerts(Judge):
    """An engine whose every third frame alerts (a Result that forwards, with events); with
    `offer`, every frame also offers its flow to the fast path."""

    def __init__(self, offer: bool = False):
        super().__init__()
        self.offer = offer

    def inspect(self, data, meta):
        k = bytes(data)[-1]
        self.seen.append(k)
        if k % 3:
            return FORWARD if not self.offer else Result(Verdict.FORWARD, bypass=Bypass(object(), "pass", True, "x"))
        return Result(Verdict.FORWARD, events=(("alert", k), ("alert-2", k)),
                      bypass=Bypass(object(), "pass", True, "x") if self.offer else None)


EVE = Config(eve_log="/nonexistent/eve.json")          # (never opened: the tests collect write_events)


@pytest.mark.parametrize("mode,tx", [("ips", True), ("ips", False), ("tap", True), (None, False)],
                         ids=["ips-tx-ring", "ips-send", "tap", "ids"])
@pytest.mark.parametrize("eve", [True, False], ids=["eve", "no-eve"])
def test_alerts_of_forwarded_frames_go_with_the_walk(mode, tx, eve, monkeypatch):
    """A Result that forwards with alerts does not stop the compiled walk: its events join
    the drain's, in frame order, as the Python path adds them (none when EVE is off)."""
    cfg = EVE if eve else Config()
    r = both(plain([frame(k) for k in range(12)]), Alerts, monkeypatch, tx=tx, mode=mode, config=cfg)
    want = [e for k in range(0, 12, 3) for e in (("alert", k), ("alert-2", k))] if eve else []
    assert r["events"] == want and r["counters"]["inspector_errors"] == 0
    assert len(r["sent"]) == (12 if mode is not None else 0)
    stops = stops_of(monkeypatch)
    w, port, out, ring = build(Alerts(), tx=tx, mode=mode, config=cfg)
    events: list = []
    w.write_events = events.extend
    ring.deliver([frame(k) for k in range(12)])
    assert w.drain(port) == 12
    # (forwarding by plain send() is the Python walk's alone)
    assert stops == ([0] if tx or mode is None else []) and events == want


def test_an_alert_with_a_bypass_for_the_fast_path_still_stops(monkeypatch):
    """With a fast path to take the flow, a Result with a bypass stops the walk (the Python
    path installs it), alerts or not; its events come out the same."""
    kw = dict(tx=True, config=EVE)
    stops = stops_of(monkeypatch)
    w, port, out, ring = build(Alerts(offer=True), **kw)
    assert w.fast is not None
    events: list = []
    w.write_events = events.extend
    ring.deliver([frame(k) for k in range(4)])
    w.drain(port)
    assert stops[0] == 1 and events[:2] == [("alert", 0), ("alert-2", 0)]


def test_fast_path_pass_verdicts_are_forwarded_by_the_walk(monkeypatch):
    """A decided pass flow: the walk forwards its frames itself (counted as bypassed, never
    inspected); only the first frame (a Result with the bypass to install) stops it."""
    stops = []

    def spy(*a):
        out = REAL(*a)
        stops.append((out[0], out[-2]))
        return out
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", spy)
    judge = Recorder(bypass="pass")
    w, port, out, ring = build(judge, tx=True)
    ring.deliver([frame(k) for k in range(8)])
    w.drain(port)
    port.tx.flush(port.counters)
    assert out.sent == [frame(k) for k in range(8)] and judge.seen == [0]
    assert port.counters.bypassed == 7
    assert stops == [(1, 2), (0, 0)]                   # the first frame's Result, then to the end


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_fast_path_that_raises_drops_that_frame_as_internal(compiled, monkeypatch):
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    w, port, out, ring = build(Recorder(), tx=True)
    # the frames' own key in the UDP table, with no entry the walk can answer for: hit is asked
    w.fast.port_tables(port.index)[1][frame(0)[26:38]] = None
    real_hit = w.fast.hit

    def hit(pidx, view, start, end, vid, ts):
        if bytes(view[start:end])[-1] == 2:
            raise RuntimeError("fast path bug")
        return real_hit(pidx, view, start, end, vid, ts)
    w.fast.hit = hit
    ring.deliver([frame(k) for k in range(5)])
    assert w.drain(port) == 5
    port.tx.flush(port.counters)
    assert out.sent == [frame(k) for k in (0, 1, 3, 4)]
    assert port.counters.dropped == {"internal": 1} and port.counters.received == 5


def spy_hit(w) -> list[int]:
    """The numbers of the frames the worker's fast path is asked about, as they are asked."""
    asked: list[int] = []
    real_hit = w.fast.hit

    def hit(*a):
        asked.append(bytes(a[1][a[2]:a[3]])[-1])
        return real_hit(*a)
    w.fast.hit = hit
    return asked


def test_the_walk_asks_the_fast_path_only_when_the_frames_protocol_has_entries(monkeypatch):
    """An empty table for the frame's protocol on that port: the fast path would answer MISS,
    and is not asked (the compiled walk looks at the IPv4 protocol byte).  For an IPv4 UDP
    frame the walk looks its key up itself: no entry under it, no question either."""
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL)
    w, port, out, ring = build(Recorder(), tx=True)
    asked = spy_hit(w)
    ring.deliver([frame(k) for k in range(3)])
    w.drain(port)
    assert asked == []                                 # every table empty
    w.fast.port_tables(port.index)[0]["a TCP flow"] = None
    ring.deliver([frame(k) for k in range(3, 6)])
    w.drain(port)
    assert asked == []                                 # UDP frames, only the TCP table has an entry
    w.fast.port_tables(port.index)[1]["a UDP flow"] = None
    ring.deliver([frame(k) for k in range(6, 9)])
    w.drain(port)
    assert asked == []                                 # a UDP entry, not under these frames' key
    w.fast.port_tables(port.index)[1][frame(0)[26:38]] = None
    ring.deliver([frame(k) for k in range(9, 12)])
    w.drain(port)
    port.tx.flush(port.counters)
    assert asked == [9, 10, 11] and len(out.sent) == 12


def segment(k: int, flags: str = "PA", n: int = 80) -> bytes:
    """An n-byte IPv4 TCP segment of one flow, its payload bytes all its number `k`."""
    from scapy.all import IP, TCP, Ether

    head = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.51.100.1", dst="203.0.113.2") / TCP(sport=40000, dport=80, flags=flags, seq=k)
                 / (b"\0" * (n - 54)))
    return head[:54] + bytes([k % 256]) * (n - 54)


@pytest.mark.parametrize("action", ["pass", "drop"])
def test_tcp_entries_are_answered_by_the_walk_as_by_the_fast_path(action, monkeypatch):
    """A decided TCP flow: the compiled walk looks its key up in the port's TCP table
    itself.  A pass flow's segments are forwarded and counted there, without asking hit();
    a drop flow's, and a FIN of either (which takes the flow out of the fast path), go to
    hit(); a segment with no entry (the flow gone) goes to the engine without asking.
    Frames out, counters, what the engine saw, the fast path's counts: as the Python walk."""
    frames = [segment(k) for k in range(6)] + [segment(6, "FA")]
    runs = []
    for compiled in (True, False):
        monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
        judge = Recorder(bypass=action)
        judge.flows["f"] = object()
        w, port, out, ring = build(judge, tx=True)
        asked = spy_hit(w)
        ring.deliver(frames)
        w.drain(port)
        port.tx.flush(port.counters)
        judge.bypass = None                            # (the flow ended with the FIN: not offered again)
        ring.deliver([segment(k) for k in range(7, 11)])
        w.drain(port)
        port.tx.flush(port.counters)
        runs.append(({"sent": out.sent, "counters": port.counters.as_dict(), "seen": judge.seen,
                      "fast": w.fast.stats()}, asked))
    (a, asked), (b, _) = runs
    assert a == b
    assert a["seen"] == [0, 6, 7, 8, 9, 10]             # the first, the FIN, and every one after it
    if action == "pass":
        assert asked == [6] and a["fast"]["bypass.pass_frames"] == 5
        assert len(a["sent"]) == 11
    else:
        assert asked == [1, 2, 3, 4, 5, 6] and a["counters"]["dropped"]["flow"] == 5


# ------------------------------------------------------------------ UDP entries the walk answers itself
class App:
    parser = None


class ScanJudge(Recorder):
    """As the engine with a UDP scan offer: every frame it is handed is clean and comes with
    Bypass "scan" for the flow's direction, whose scan is `scan`.  It keeps the counts the
    fast path pushes to it."""

    def __init__(self, scan):
        super().__init__()
        self.scan = scan
        self.flow = object()
        self.pushed: list[tuple] = []

    def inspect(self, data, meta):
        super().inspect(data, meta)
        return Result(Verdict.FORWARD, bypass=Bypass(self.flow, "scan", True, "prefilter", self.scan))

    def bypassed(self, flow, ts, ps, bs, pc, bc):
        self.pushed.append((round(ts, 6), ps, bs, pc, bc))
        return True


def _scans(kind: str, app: App):
    from rules.prefilter import AnyPattern, PatternDB

    db = PatternDB([(b"\x07", False), (b"\x09", False)])
    return {"dbs": AnyPattern((db,)),
            "two-dbs": AnyPattern((PatternDB([(b"\x07", False)]), PatternDB([(b"\x09\x09", False)]))),
            "watch": AnyPattern((db,), app),
            "none": None,
            "python": lambda data: b"\x07" in data or b"\x09" in data}[kind]


def _scan_run(compiled: bool, kind: str, monkeypatch):
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    app = App()
    judge = ScanJudge(_scans(kind, app))
    w, port, out, ring = build(judge, tx=True, nslots=64)
    asked = spy_hit(w)
    ring.deliver([frame(k) for k in range(12)])        # 7 and 9 hold a pattern
    w.drain(port)
    app.parser = object()                              # a parser from now on: "watch" hands everything over
    ring.deliver([frame(k) for k in range(12, 16)])
    w.drain(port)
    port.tx.flush(port.counters)
    w.fast.sync()
    return {"sent": out.sent, "counters": port.counters.as_dict(), "seen": judge.seen, "pushed": judge.pushed,
            "fast": w.fast.stats()}, asked


@pytest.mark.parametrize("kind", ["dbs", "two-dbs", "watch", "none", "python"])
def test_scan_entries_are_answered_by_the_walk_as_by_the_fast_path(kind, monkeypatch):
    """A prefiltered UDP direction (Bypass "scan"): the compiled walk runs the scan's
    databases itself (rules.prefilter.AnyPattern.spec) and forwards a datagram they find
    nothing in with the counts FastPath.hit keeps; a datagram they find something in, or
    any datagram once the watched app state has a parser, goes to hit() and the engine.
    Everything matches the Python walk: frames out, counters, what the engine saw, the
    counts pushed to it, the fast path's statistics.  A scan without a compiled form (a
    plain function) is left to hit() for every datagram."""
    a, asked = _scan_run(True, kind, monkeypatch)
    b, _ = _scan_run(False, kind, monkeypatch)
    assert a == b
    assert len(a["sent"]) == 16
    hits = {"dbs": [7, 9], "two-dbs": [7, 9], "watch": [7, 9], "none": [], "python": [7, 9]}[kind]
    later = list(range(12, 16)) if kind == "watch" else []
    assert a["seen"] == [0] + hits + later
    if kind == "python":
        assert asked == list(range(1, 16))            # no compiled scan: hit() every time
    else:
        assert asked == hits + later                  # only what the walk cannot answer
    assert a["counters"]["bypassed"] == 15 - len(hits) - len(later)



@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
def test_a_datagram_the_scan_finds_nothing_in_ends_a_streak_of_hits(compiled, monkeypatch):
    """Hits and misses alternating: each miss resets the streak, so the direction never backs
    off (SCAN_STREAK hits in a row would send the next SCAN_BACKOFF datagrams to the engine
    unscanned); the compiled walk keeps the streak as FastPath.hit does."""
    from bridge.fastpath import SCAN_STREAK
    from rules.prefilter import AnyPattern, PatternDB

    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    n = 4 * SCAN_STREAK
    judge = ScanJudge(AnyPattern((PatternDB([(bytes([k]), False) for k in range(2, n, 2)]),)))
    w, port, out, ring = build(judge, tx=True, nslots=64)
    ring.deliver([frame(k) for k in range(n)])
    w.drain(port)
    port.tx.flush(port.counters)
    assert len(out.sent) == n
    assert judge.seen == [0] + list(range(2, n, 2))   # every hit inspected, no miss
    assert w.fast.stats()["bypass.scan_backoff"] == 0


def echo(k: int, n: int = 64, code: int = 0) -> bytes:
    """An n-byte IPv4 ICMP echo request (one flow), its payload bytes all its number `k`."""
    from scapy.all import ICMP, IP, Ether

    head = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.51.100.1", dst="203.0.113.2") / ICMP(type=8, code=code, id=7, seq=1)
                 / (b"\0" * (n - 42)))
    return head[:42] + bytes([k % 256]) * (n - 42)


def _echo_run(compiled: bool, monkeypatch):
    from rules.prefilter import AnyPattern, PatternDB

    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    judge = ScanJudge(AnyPattern((PatternDB([(b"\x07", False), (b"\x09", False)]),)))
    w, port, out, ring = build(judge, tx=True, nslots=64)
    asked = spy_hit(w)
    ring.deliver([echo(k, code=3 if k == 5 else 0) for k in range(12)])
    w.drain(port)
    port.tx.flush(port.counters)
    w.fast.sync()
    return {"sent": out.sent, "counters": port.counters.as_dict(), "seen": judge.seen, "pushed": judge.pushed,
            "fast": w.fast.stats()}, asked


def test_icmp_echo_scan_entries_are_answered_by_the_walk_as_by_the_fast_path(monkeypatch):
    """A prefiltered ICMP echo direction (the engine's scan offer for an echo flow): the
    compiled walk keys the echo by its addresses and types, scans its payload and forwards
    what holds no pattern; an echo with a pattern (7, 9) or with a code other than 0 (5)
    goes to hit() and the engine.  The same as the Python walk in everything."""
    a, asked = _echo_run(True, monkeypatch)
    b, _ = _echo_run(False, monkeypatch)
    assert a == b
    assert len(a["sent"]) == 12
    assert a["seen"] == [0, 5, 7, 9]
    assert asked == [5, 7, 9]
    assert a["counters"]["bypassed"] == 8


class LateJudge(ScanJudge):
    """ScanJudge for an echo direction whose offer lets the data plane forward some frames
    before they are inspected (Bypass.late), with an alert per frame it inspects.  The
    timeline has each frame it inspects, with whether the frame was already in the TX ring
    then (queued to go), and each frame the fast path was asked about."""

    def __init__(self, scan, late, timeline: list):
        super().__init__(scan)
        self.late = late
        self.timeline = timeline
        self.tx = None

    def inspect(self, data, meta):
        super().inspect(data, meta)
        body = bytes(data)
        self.timeline.append(("inspect", body[-1], body in bytes(self.tx.view)))
        return Result(Verdict.FORWARD, events=(("alert", body[-1]),),
                      bypass=Bypass(self.flow, "scan", True, "prefilter", self.scan, self.late))


def _late_run(compiled: bool, late_kind: str, monkeypatch):
    from rules.prefilter import AnyPattern, PatternDB

    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    timeline: list = []
    late = None if late_kind == "any" else AnyPattern((PatternDB([(b"\x09", False)]),))
    every = AnyPattern((PatternDB([(bytes([k]), False) for k in range(1, 13)]),))    # each frame after the first
    judge = LateJudge(every, late, timeline)
    w, port, out, ring = build(judge, tx=True, nslots=64, config=Config(eve_log="eve.json"))
    judge.tx = port.tx
    real_hit = w.fast.hit

    def hit(*a):
        timeline.append(("hit", bytes(a[1][a[2]:a[3]])[-1]))
        return real_hit(*a)
    w.fast.hit = hit
    ring.deliver([echo(k) for k in range(13)])
    events: list = []
    monkeypatch.setattr(PS, "fileno", lambda self: -1, raising=False)
    w._pass(set(), events)               # (drains both ports, then inspects what is still queued)
    w.fast.sync()
    fast = w.fast.stats()
    return {"sent": out.sent, "counters": port.counters.as_dict(), "events": events, "pushed": judge.pushed,
            "hits": fast["bypass.scan_hits"], "backoff": fast["bypass.scan_backoff"]}, timeline, fast["bypass.scan_late"]


@pytest.mark.parametrize("late_kind", ["scan", "any"])
def test_echoes_the_offer_lets_go_first_leave_before_they_are_inspected_and_in_order(late_kind, monkeypatch):
    """An echo direction whose every frame holds a pattern, and whose offer says which may
    go before they are inspected (Bypass.late: a scan of the patterns of rules that could
    drop them, or None: any).  The compiled walk queues such a frame in the TX ring and
    for inspection, without asking hit() (it keeps the streak and the counts itself, so
    the direction backs off after SCAN_STREAK hits as with hit()); queued frames are
    inspected before the walk hands any later frame to the engine (the engine sees
    frames in order), or at the end of the pass.  A frame the late scan finds something
    in (9) is inspected before it goes, as the Python walk inspects every frame.  Frames
    out, counters, events, fast path counts: the same as the Python walk."""
    a, when, late = _late_run(True, late_kind, monkeypatch)
    b, python_when, python_late = _late_run(False, late_kind, monkeypatch)
    assert a == b
    assert len(a["sent"]) == 13 and a["events"] == [("alert", k) for k in range(13)]
    assert a["hits"] == 8 and a["backoff"] == 4
    # the Python walk asks the fast path about every frame and inspects each before it goes
    assert [e for e in python_when if e[0] == "inspect"] == [("inspect", k, False) for k in range(13)]
    assert python_late == 0
    held = {0, 9} if late_kind == "scan" else {0}
    assert when == [("inspect", k, k not in held) for k in range(13)]      # no hit() asked at all
    assert late == 13 - len(held)


def test_the_walk_knows_the_fast_paths_streak_limits():
    """bridge/_ringpass.c counts a streak of hits as FastPath._scan does."""
    from bridge import _ringpass, fastpath

    assert (_ringpass.SCAN_STREAK, _ringpass.SCAN_BACKOFF) == (fastpath.SCAN_STREAK, fastpath.SCAN_BACKOFF)


# ------------------------------------------------------------------ the drain's loop in C (drain_walk)
def _walked(compiled: bool, monkeypatch):
    """Alerts (EVE on) and drops through three drains given the run's events list, as
    Worker.run calls drain; with `compiled`, drain_walk's answers are recorded: an int (the
    drain done in C) or a tuple (a frame handed to Python)."""
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
    answers: list = []
    real = bridge.worker._c_drain_walk

    def spy(*a):
        r = real(*a)
        answers.append("int" if type(r) is int else "frame")
        return r
    monkeypatch.setattr(bridge.worker, "_c_drain_walk", spy)

    class AlertsAndDrops(Alerts):
        def inspect(self, data, meta):
            r = super().inspect(data, meta)
            return Result(Verdict.DROP, reason="rule") if bytes(data)[-1] in (7, 20) else r

    w, port, out, ring = build(AlertsAndDrops(), tx=True, nslots=16, tx_slots=8, config=EVE)
    events: list = []
    consumed = []
    for batch in (range(0, 5), range(5, 14), range(14, 26)):
        ring.deliver([frame(k) for k in batch])
        consumed.append(w.drain(port, events))
    return {"sent": out.sent, "consumed": consumed, "counters": port.counters.as_dict(), "events": events,
            "head": ring.ring.head, "last_ts": w.last_ts, "tx": (port.tx.head, port.tx.first, port.tx.queued)}, answers


def test_drain_walk_does_the_drain_in_c_and_hands_a_frame_back_as_the_python_loop_would(monkeypatch):
    """The whole loop over ring_pass in C (drain_walk): a drain of clean and alerting frames
    returns from it done (TX flushed, counters, last_ts); a drain with a drop (frames 7, 20)
    comes back at that frame, after the counts of those before it, and the Python loop goes
    on from there; a TX ring of 8 slots is flushed on the way (the walk's FLUSH stop).
    Frames out, counts, events in order, ring heads: the same as the Python walk's."""
    a, answers = _walked(True, monkeypatch)
    b, none = _walked(False, monkeypatch)
    assert a == b and none == []
    assert answers == ["int", "frame", "frame"]
    assert a["consumed"] == [5, 9, 12] and len(a["sent"]) == 24
    assert a["counters"]["dropped"] == {"rule": 2} and a["counters"]["forwarded"] == 24
    assert [k for _, k in a["events"][::2]] == list(range(0, 26, 3))


@pytest.mark.parametrize("how", ["error", "short"])
def test_drain_walk_sends_on_the_ring_s_descriptor_and_hands_the_rest_to_sent(how, monkeypatch):
    """With a kernel socket under the TX ring, drain_walk makes the flush's send() itself
    (TxRing.fd) and counts a whole batch out; any other answer goes to TxRing.sent, as the
    Python flush's own send() does: a failing send (an unconnected UDP socket:
    EDESTADDRREQ) and a short one (a connected UDP socket on loopback takes the empty send
    as a 0-byte datagram: none of the queued bytes) leave the frames counted as send errors,
    never as forwarded."""
    import socket

    results = []
    for compiled in (True, False):
        monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
        w, port, out, ring = build(Judge(), tx=True)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if how == "short":
            s.connect(sink.getsockname())
        port.tx.sock, port.tx.fd = s, s.fileno()
        try:
            ring.deliver([frame(k) for k in range(3)])
            assert w.drain(port) == 3
        finally:
            s.close()
            sink.close()
        results.append((port.counters.as_dict(), port.tx.head, port.tx.first, port.tx.queued))
    assert results[0] == results[1]
    c = results[0][0]
    assert c["forwarded"] == 0 and sum(c["send_errors"].values()) == 3
    assert list(c["send_errors"]) == (["EDESTADDRREQ"] if how == "error" else ["EIO"])


@pytest.mark.parametrize("kind", ["udp", "echo"])
def test_a_direction_backing_off_is_handed_to_the_engine_by_the_walk(kind, monkeypatch):
    """Datagrams (or echoes) that all hold a pattern: after SCAN_STREAK hits in a row the
    direction backs off (SCAN_BACKOFF frames to the engine unscanned).  The compiled walk
    hands those over itself, without asking hit(), counting the streak and scan_backoff as
    hit() does; everything matches the Python walk."""
    from bridge.fastpath import SCAN_STREAK
    from rules.prefilter import AnyPattern, PatternDB

    make = frame if kind == "udp" else echo
    n = SCAN_STREAK + 20
    runs = []
    for compiled in (True, False):
        monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL if compiled else None)
        judge = ScanJudge(AnyPattern((PatternDB([(bytes([k]), False) for k in range(n)]),)))
        w, port, out, ring = build(judge, tx=True, nslots=64)
        asked = spy_hit(w)
        ring.deliver([make(k) for k in range(n)])
        w.drain(port)
        port.tx.flush(port.counters)
        w.fast.sync()
        runs.append(({"sent": out.sent, "counters": port.counters.as_dict(), "seen": judge.seen,
                      "fast": w.fast.stats()}, asked))
    (a, asked), (b, _) = runs
    assert a == b
    assert a["seen"] == list(range(n)) and a["fast"]["bypass.scan_backoff"] == n - 1 - SCAN_STREAK
    assert asked == list(range(1, SCAN_STREAK + 1))      # the hits; none of the frames backing off


# ------------------------------------------------------------------ the wait and the pass in C (wait_pass)
class _PipePS(PS):
    """A port socket whose descriptor is a pipe's read end: poll() sees it readable once the
    test writes a byte (never read: level-triggered, readable from then on)."""

    def __init__(self, iface, sock, fd):
        super().__init__(iface, sock)
        self.fd = fd

    def fileno(self):
        return self.fd


class _Conn:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def _both_tx(w) -> None:
    """The second port forwards through a TX ring of its own too, as a bridged pair's ports
    do (wait_pass runs only when every port's walk is compiled)."""
    kernel = KernelTx()
    g = afp.RingGeometry(afp.TPACKET_V2, 8 * 2048, 1, 2048, 8)
    kernel.tx = w.ports[1].tx = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth0")


def _looped(wait: bool, monkeypatch):
    """Worker.run over a port whose ring holds 26 frames (every third alerts, 7 and 20 are
    dropped, the last one stops the loop), its socket a readable pipe; `wait`: the wait and
    pass in C (wait_pass, its answers recorded), else Python's poll and pass."""
    import os

    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL)
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (0, 0))
    answers: list = []
    if wait:
        real = bridge.worker._c_wait_pass

        def spy(*a):
            r = real(*a)
            answers.append(type(r).__name__)
            return r
        monkeypatch.setattr(bridge.worker, "_c_wait_pass", spy)
    else:
        monkeypatch.setattr(bridge.worker, "_c_wait_pass", None)
    ref: list = []

    class Stops(Alerts):
        def inspect(self, data, meta):
            r = super().inspect(data, meta)
            k = bytes(data)[-1]
            if k == 25:
                ref[0].stop = True
            return Result(Verdict.DROP, reason="rule") if k in (7, 20) else r

    w, port, out, ring = build(Stops(), tx=True, nslots=32, tx_slots=8,
                               config=Config(eve_log="/nonexistent/eve.json", inspect_time_limit=0))
    ref.append(w)
    _both_tx(w)
    r0, w0 = os.pipe()
    r1, w1 = os.pipe()
    try:
        port.ps = _PipePS("eth0", port.ps.sock, r0)
        w.ports[1].ps = _PipePS("eth1", w.ports[1].ps.sock, r1)
        w.conn = _Conn()
        written: list = []
        w.write_events = written.extend
        ring.deliver([frame(k) for k in range(26)])
        os.write(w0, b"x")
        w.run()
    finally:
        for fd in (r0, w0, r1, w1):
            os.close(fd)
    final = [m for m in w.conn.sent if m[0] == "final"]
    return {"sent": out.sent, "counters": port.counters.as_dict(), "events": written, "head": ring.ring.head,
            "final": final[0][3]["eth0"] if final else None}, answers


def test_the_wait_and_the_pass_in_c_do_what_python_s_loop_does(monkeypatch):
    """Worker.run with wait_pass: the frames before the first drop are walked in C, the drop
    comes back to Python with the port it stopped on (a tuple), drain goes on from it, and
    the next waits drain in C again; frames out, counters, EVE events and the ring's head
    are those of Python's poll and pass."""
    a, answers = _looped(True, monkeypatch)
    b, none = _looped(False, monkeypatch)
    assert a == b and none == []
    assert answers and answers[0] == "tuple"
    assert len(a["sent"]) == 24 and a["counters"]["dropped"] == {"rule": 2} and a["counters"]["forwarded"] == 24
    assert [k for _, k in a["events"][::2]] == list(range(0, 26, 3))
    assert a["final"]["received"] == 26


def test_wait_pass_answers():
    """wait_pass's answers on its own: None when nothing came within the timeout; a list of
    (fd, revents) when the supervisor's pipe has something (nothing drained); an int when
    every port drained in C; a tuple (port, consumed before it, None, revents) when a port
    was readable and its ring had no frame at its head (a hole, for Python's pass)."""
    import os
    import select

    from bridge._ringpass import wait_pass

    w, port, out, ring = build(Judge(), tx=True, nslots=8)
    _both_tx(w)
    w.conn = _Conn()
    r0, w0 = os.pipe()
    r1, w1 = os.pipe()
    rc, wc = os.pipe()
    try:
        port.ps = _PipePS("eth0", port.ps.sock, r0)
        w.ports[1].ps = _PipePS("eth1", w.ports[1].ps.sock, r1)
        spec = w._wait_spec(rc)
        args = (spec[5], 0, spec[6], None, None, w)
        assert spec[5] == (r0, r1, rc) and len(spec[6]) == 2
        assert wait_pass(*args) is None                       # nothing readable, 0 ms
        os.write(wc, b"c")
        assert wait_pass(*args) == [(rc, select.POLLIN)]
        os.read(rc, 1)
        ring.deliver([frame(k) for k in range(3)])
        os.write(w0, b"x")
        assert wait_pass(*args) == 3 and len(out.sent) == 3 and port.counters.forwarded == 3
        assert wait_pass(*args) == (0, 0, None, [(r0, select.POLLIN)])   # readable, no frame
        os.write(w1, b"x")
        ring.deliver([frame(9)])
        idx, before, walked, rev = wait_pass(*args)
        assert (idx, before, walked) == (1, 1, None) and sorted(rev) == [(r0, select.POLLIN), (r1, select.POLLIN)]
        with pytest.raises(ValueError):                       # a socket per port
            wait_pass((), 0, spec[6], None, None, w)
        with pytest.raises(TypeError):
            wait_pass(list(spec[5]), 0, spec[6], None, None, w)
    finally:
        for fd in (r0, w0, r1, w1, rc, wc):
            os.close(fd)


def test_the_walk_reads_a_ring_s_fixed_facts_in_one_tuple(monkeypatch):
    """ring_pass reads a ring's view, slot offsets and sizes from one `facts` tuple (one
    lookup instead of one per fact: after a sleep each is a few cache misses on the path of
    the frame that woke the worker): they are the ring's own objects, and a malformed one is
    refused rather than walked."""
    monkeypatch.setattr(bridge.worker, "_c_ring_pass", REAL)
    w, port, out, ring = build(Judge(), tx=True)
    r, t = port.ring, port.tx
    assert r.facts[0] is r.view and r.facts[1] is r.offsets and r.facts[2] == r.PKTTYPE
    assert t.facts[0] is t.view and t.facts[1] is t.offsets and t.facts[2:] == (t.batch, t.capacity, t.DATA)
    ring.deliver([frame(1)])
    assert w.drain(port) == 1 and out.sent == [frame(1)]
    r.facts = (r.view, [], r.PKTTYPE)
    ring.deliver([frame(2)])
    with pytest.raises(TypeError, match="facts"):
        w.drain(port)
    r.facts = (r.view, r.offsets, -1)
    with pytest.raises(ValueError, match="negative"):
        w.drain(port)
