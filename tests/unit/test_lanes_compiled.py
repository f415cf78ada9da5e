"""The compiled lanes (rules/_hotpath.c Lanes, `Engine.front()`: a UDP datagram of a
direction with a scan offer, a pure TCP ACK of an established flow) answer exactly what
`Engine.inspect` answers, with exactly its effects.

Two engines built from the same rules and settings inspect the same frames in lockstep: one
through `front()` (what the worker and replay call), one through `inspect` (whose Python
lane, `_lean_udp`, is the reference).  After every frame the Result, `stats()`, the flow
table (order, and each flow's counters and last-seen time) and the checksum sample's state
must be the same, and so must the events of every tick and of the end.  The front's own
`inspect` is wrapped to count the frames the compiled lane answered itself: a lane that
never answers fails here instead of passing vacuously.
"""
from __future__ import annotations

import pickle
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, Ether, IPv6

from bridge.hook import build_engine
from bridge.pcap import read_file
from bridge.replay import CHECKSUM_HINTS, _load_config
from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE, FrameMeta
from rules.decode import CHECKSUM_SAMPLE_COUNT
from rules.engine import Engine
from rules.settings import DecodeOptions, EngineSettings, StreamSettings
from tests.unit.test_engine_lean_lane import (
    TLS_RULES,
    APP_RULES,
    DIFF,
    EXPECTED,
    FLAG_SPECS,
    FLAGS_STEPS,
    GAVE_UP_STEPS,
    NO_PLAIN_RULES,
    RULES,
    SCENARIOS,
    UDP_PLAIN_RULE,
    UDP_RULES,
    drive,
    flags_rules,
    http_ops,
    ops,
    parse,
    session,
    udp_flow,
)

C6, S6 = "2001:db8::1", "2001:db8::2"


def test_built():
    """The install builds the lane; without it front() is plain inspect and nothing here
    would test the compiled code."""
    from rules._hotpath import Lanes
    eng = Engine(parse(UDP_RULES), EngineSettings())
    assert type(eng.front()) is Lanes


class Front:
    """`engine.front()`, with the `inspect` it falls back to counted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fallbacks = self.calls = 0
        inspect = engine.inspect

        def counted(frame, meta):
            self.fallbacks += 1
            return inspect(frame, meta)

        engine.inspect = counted           # front() hands its frames over to this
        self.call = engine.front()
        del engine.inspect                 # (the engine's own method again, for anything else)

    def __call__(self, frame, meta):
        self.calls += 1
        return self.call(frame, meta)

    @property
    def answered(self) -> int:
        return self.calls - self.fallbacks


def _stream(ssn) -> tuple | None:
    if ssn is None:
        return None
    return tuple((d.last_ack, d.window, d.next_seq, d.end, d.done, d.fin_seq, bytes(d.data), d.data_off,
                  d.raw_progress, tuple(d.seen.items()), d.app_off, d.app_eof) for d in (ssn.client, ssn.server)) \
        + (ssn.state, ssn.simple)


def _app(st) -> tuple | None:
    """A flow's app-layer state: its protocol, what is pending, and each transaction's
    progress and what detection decided on it."""
    if st is None:
        return None
    p = st.parser
    txs = () if p is None else tuple((tx.id, tuple(tx.progress), tuple(sorted(d) for d in tx.inspected),
                                      tuple(tx.final), tuple(tx.body_grew)) for tx in p.txs)
    return (st.proto, st.fed, st.error_seen, tuple(st.held), p is not None and p.failed, txs,
            tuple(sorted(st.marks.items())), _parser(p))


def _parser(p) -> tuple | None:
    """What the body lane changes of a parser (HTTP's: each direction's body as it stands,
    the generation detection keys on, its idle marks)."""
    if p is None:
        return None
    sides = tuple((side.state, bytes(side.buf), side.gone, None if side.body is None else _body(side.body))
                  for side in getattr(p, "sides", ()))
    return (p.gen, tuple(p.tx_idle), tuple(p.events), sides)


def _body(b) -> tuple:
    return (bytes(b.data), b.raw_len, b._left, b._msg, b._entity, b._state, b.done, b.failed, b.truncated)


def flow_table(engine: Engine) -> list:
    """The table in its order, each flow's counters and state, and its TCP session's."""
    return [(key, f.flow_id, f.state, f.pkts_toserver, f.pkts_toclient, f.bytes_toserver, f.bytes_toclient,
             f.last_ts, f.decided, f.dropped, f.action_pass, _stream(f.tcp), _app(f.app))
            for key, f in engine.flows.table().items()] + [engine.streams.mem]


def sample(engine: Engine) -> dict:
    return {k: (s.frames, s.invalid, s.off) for k, s in engine.checksums.sources.items()}


def lockstep(compiled: Engine, plain: Engine, frames, *, between=None) -> Front:
    """Feed (ts, frame, FrameMeta args after ts) to both; everything must agree after every
    frame.  `between(n)`, if given, runs before frame n on both engines' behalf."""
    front = Front(compiled)
    drive(compiled, plain, frames, front, plain.inspect, between=between, observe=(Engine.stats, flow_table, sample))
    return front


def pair(text: str, mode: str = "ips", **decoder) -> tuple[Engine, Engine]:
    rules = parse(text)
    cfg = EngineSettings(mode=mode, decoder=DecodeOptions(**decoder)) if decoder else EngineSettings(mode=mode)
    return Engine(rules, cfg), Engine(rules, cfg)


def udp6_flow(steps, sport: int, dport: int) -> list[bytes]:
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    return [bytes(e / (IPv6(src=C6, dst=S6) / UDP(sport=sport, dport=dport) if side == "c"
                       else IPv6(src=S6, dst=C6) / UDP(sport=dport, dport=sport)) / d)
            for side, d in steps if not isinstance(d, str)]


# ---------------------------------------------------------------------- what the lane answers
def test_clean_datagrams_are_answered_by_the_compiled_lane():
    """After each direction's first datagram, datagrams without a pattern are the lane's;
    those with one, and the first of each direction, are inspect's."""
    compiled, plain = pair(UDP_RULES)
    steps = [("c", b"data")] * 10 + [("c", b"evil"), ("c", b"data"), ("s", b"reply"), ("s", b"reply2")]
    frames = udp_flow(steps, 40000, 7000)
    times = [1.7e9 + i * 0.001 for i in range(len(frames))]
    times[5] = times[2]                   # a record earlier than the flow's last (replay): last_ts stays
    front = lockstep(compiled, plain, list(zip(times, frames, [("eth0",)] * len(frames))))
    # c: 9 after the first, 1 after the pattern; s: 1 after the first
    assert front.answered == 11, (front.calls, front.fallbacks)


def test_a_flow_decided_by_the_bypass_keyword_leaves_the_lane():
    """A flow with scan offers that a `bypass` rule then decides (neither dropped nor passed):
    its later datagrams are inspect's, which skips detection for a decided flow."""
    compiled, plain = pair(UDP_RULES + 'alert udp any any -> any any (msg:"enough"; content:"bypassme"; bypass; sid:30;)')
    steps = [("c", b"data")] * 4 + [("c", b"bypassme")] + [("c", b"data")] * 4
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(udp_flow(steps, 40000, 7000))]
    front = lockstep(compiled, plain, frames)
    assert front.answered == 3, (front.calls, front.fallbacks)


def test_ipv6_and_vlan_and_equal_addresses():
    """IPv6 keys (128-bit addresses), a kernel-stripped VLAN in the key, and a flow whose two
    endpoints have the same address (the ports order the key)."""
    compiled, plain = pair(UDP_RULES)
    steps = [("c", b"data")] * 4 + [("s", b"back")] * 3 + [("c", b"evil"), ("c", b"more")]
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    same = [bytes(e / IP(src="198.51.100.7", dst="198.51.100.7") / UDP(sport=p, dport=q) / b"loop")
            for p, q in [(9000, 8000), (8000, 9000)] * 4]
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(udp6_flow(steps, 40000, 7000))]
    frames += [(1.8e9 + i * 0.001, f, ("eth0", (12,), 0, (0x8100,))) for i, f in enumerate(udp_flow(steps, 40000, 7000))]
    frames += [(1.9e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(same)]
    front = lockstep(compiled, plain, frames)
    assert front.answered >= 6 + 6 + 6, (front.calls, front.fallbacks)


@pytest.mark.parametrize("hint", [CSUM_VALIDATE, CSUM_SKIP, CSUM_AUTO])
@pytest.mark.parametrize("validation", [True, False])
def test_checksum_hints_and_the_auto_sample(hint, validation):
    """Each checksum hint, with stream.checksum-validation on and off; under auto the sample
    of the source (1000 frames) is counted by inspect until it has decided, then by the lane.
    A wrong checksum where validation applies is never the lane's."""
    compiled, plain = pair(UDP_RULES, checksum_validation=validation)
    n = CHECKSUM_SAMPLE_COUNT + 40
    steps = [("c", b"data")] * n
    good = udp_flow(steps, 40000, 7000)
    bad = udp_flow([("c", b"data")] * 6, 40000, 7000, bad_csum_at=3)
    frames = [(1.7e9 + i * 0.0001, f, ("eth0", (), 0, (), 1, hint)) for i, f in enumerate(good + bad)]
    front = lockstep(compiled, plain, frames)
    validated = validation and hint != CSUM_SKIP
    if hint == CSUM_AUTO and validation:
        # (its first frame, the 999 after it while sampling; every later clean one but the bad one)
        assert front.answered == n + 6 - CHECKSUM_SAMPLE_COUNT - 1, (front.calls, front.fallbacks)
    else:
        assert front.answered == n + 6 - 1 - (1 if validated else 0), (front.calls, front.fallbacks)


def test_replay_sample_and_vxlan_port():
    """In replay (pcap_cnt set) the auto sample is the whole input's; a datagram to a VXLAN
    port is the general decoder's, never the lane's."""
    compiled, plain = pair(UDP_RULES)
    frames = [(1.7e9 + i * 0.001, f, ("", (), i + 1, (), 1, CSUM_AUTO))
              for i, f in enumerate(udp_flow([("c", b"data")] * (CHECKSUM_SAMPLE_COUNT + 20), 40000, 7000))]
    vx = udp_flow([("c", b"data")] * 10, 40001, 4789)
    frames += [(1.8e9 + i * 0.001, f, ("",)) for i, f in enumerate(vx)]
    front = lockstep(compiled, plain, frames)
    assert front.answered == 20, (front.calls, front.fallbacks)


def test_a_rule_reload_is_seen_by_a_lane_made_before_it():
    """The lane reads the engine's detector and app layer per frame: after adopt_rules (a rule
    reload) the same lane answers with the new rules' offers."""
    compiled, plain = pair(UDP_RULES)
    newer = parse(UDP_RULES.replace('content:"evil"', 'content:"data"'))
    steps = [("c", b"data"), ("c", b"evil")] * 8
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(udp_flow(steps, 40000, 7000))]

    def reload(n):
        if n == 8:
            for eng in (compiled, plain):
                eng.adopt_rules(Engine(newer, EngineSettings()))

    front = lockstep(compiled, plain, frames, between=reload)
    assert front.answered >= 3, (front.calls, front.fallbacks)


def test_the_lane_is_not_pickled():
    """A lane belongs to one engine in one process: pickling it (a rule reload ships engines,
    never lanes) says so instead of copying a stale view."""
    eng = Engine(parse(UDP_RULES), EngineSettings())
    with pytest.raises(TypeError, match="Engine.front"):
        pickle.dumps(eng.front())


# ---------------------------------------------------------------------- pure TCP ACKs
def test_the_acks_and_data_of_an_http_session_are_answered_by_the_compiled_lane():
    """The handshake (SYN, SYN-ACK, and its last ACK, the direction's first packet after the
    SYN) is inspect's.  The client's four later pure ACKs are the lane's, and so are the four
    data segments: taken into their stream there, then handed to Engine._lane_app (the
    parser and the transaction rules, which fire as on inspect's path)."""
    compiled, plain = Engine(parse(APP_RULES), EngineSettings()), Engine(parse(APP_RULES), EngineSettings())
    steps = [("c", [b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 2896\r\n\r\n", b"y" * 1448]),
             ("ack", [b""]), ("s", [b"y" * 1448]), ("ack", [b""]), ("ack", [b""])]
    frames = session(steps, 40000)
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert (front.calls, front.answered) == (11, 8)
    assert (compiled.hits[(1, 21)], compiled.hits[(1, 22)]) == (1, 1)


@pytest.mark.parametrize("flags,answered", [(None, 8), ("FPU", 8), ("*SR", 8), ("A", 5), ("PA", 5), ("A+", 2)])
def test_a_flags_rule_keeps_only_the_packets_it_could_match_from_the_compiled_lane(flags, answered):
    """The compiled lane reads the same flags prefilter as Engine._lean_tcp: of the session's
    8 later packets it answers those whose flags the pattern-less rule refuses (all of
    them for FPU), and leaves the others to inspect, where the rule matches them."""
    compiled, plain = pair(NO_PLAIN_RULES if flags is None else flags_rules(flags))
    frames = session(FLAGS_STEPS, 40000)
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.answered == answered
    if flags is not None:
        assert compiled.hits.get((1, 9), 0) == {"FPU": 0, "*SR": 1, "A": 4, "PA": 3, "A+": 7}[flags]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, mode=st.sampled_from(["ips", "tap", "ids"]), flags=st.sampled_from(FLAG_SPECS))
def test_random_tcp_sessions_with_a_flags_rule_same_through_the_compiled_lane(steps, mode, flags):
    rules = parse(flags_rules(flags))
    cfg = EngineSettings(mode=mode, stream=StreamSettings(depth=6000))
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(compiled, plain, frames)


def test_in_order_data_is_answered_and_a_pattern_in_the_window_detected():
    """Without an app layer, in-order data segments are the lane's: taken into the stream
    and prefiltered; one whose window holds a fast pattern goes on to detection
    (Engine._lane_detect), a pattern split across two segments included; a retransmission
    and segments out of order are inspect's.  (Without the 2-byte pattern rule: a direction
    with one looks for it in every segment's bytes, on the general path.)"""
    compiled, plain = pair(NO_PLAIN_RULES)
    steps = [("c", [b"hello", b"there"]), ("s", [b"x" * 1000, b"y" * 1000]), ("c", [b"ev", b"il now"]),
             ("retx", [b""]), ("swap", [b"one", b"two"]), ("c", [b"DROPME"]), ("c", [b"after"])]
    frames = session(steps, 40000)
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert compiled.hits.get((1, 1), 0) >= 1 and compiled.c["drops"] >= 1
    # hello, there, x, y, ev, il now (detected), DROPME (detected: dropped); the
    # retransmission, the swapped pair and what follows the drop are inspect's
    assert front.answered == 7, (front.calls, front.fallbacks)


def _scaled_session(server_data: list[bytes], client_window: int = 65535, ack_ahead: int = 0,
                    ack_each: bool = True) -> list[bytes]:
    """A handshake, then the server's segments in order, each acknowledged by the client
    (`ack_ahead` bytes beyond it, the first time) with `client_window` -- or, without
    `ack_each`, all of them at the end."""
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c, s_ = IP(src="198.51.100.1", dst="203.0.113.2"), IP(src="203.0.113.2", dst="198.51.100.1")
    out = [bytes(e / c / TCP(sport=40000, dport=80, flags="S", seq=1000, window=client_window)),
           bytes(e / s_ / TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001)),
           bytes(e / c / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001, window=client_window))]
    seq = 5001
    for i, d in enumerate(server_data):
        out.append(bytes(e / s_ / TCP(sport=80, dport=40000, flags="PA", seq=seq, ack=1001) / d))
        seq += len(d)
        if ack_each or i == len(server_data) - 1:
            out.append(bytes(e / c / TCP(sport=40000, dport=80, flags="A", seq=1001,
                                         ack=seq + (ack_ahead if i == 0 else 0), window=client_window)))
    return out


@pytest.mark.parametrize("case", ["depth", "window", "memcap", "acked"])
def test_data_that_does_not_fit_is_inspects(case):
    """An in-order segment past the reassembly depth (no stream.bypass), beyond the window
    the receiver advertised, over the reassembly memcap, or whose bytes the receiver has
    acknowledged already, goes to inspect: the general path says what happens to it."""
    stream = {"depth": StreamSettings(depth=2500), "memcap": StreamSettings(reassembly_memcap=2500)}.get(
        case, StreamSettings())
    rules = parse(NO_PLAIN_RULES)
    cfg = EngineSettings(stream=stream)
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    data = [bytes([65 + i]) * 1000 for i in range(5)]
    frames = _scaled_session(data, client_window=1500 if case == "window" else 65535,
                             ack_ahead=1500 if case == "acked" else 0, ack_each=case != "window")
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.fallbacks > 3 + (1 if case != "acked" else 0), (front.calls, front.fallbacks)


def test_with_an_app_layer_data_goes_to_the_app_layer_from_the_lane():
    """With app-layer rules (and no 1-2 byte pattern in the way) a data segment's bytes go to
    the app layer: the compiled lane takes them into the stream and hands the segment to
    Engine._lane_app, which feeds the parser and runs the transaction rules as inspect's
    lane does (the lockstep compares each flow's stream bytes, parser state and
    transactions after every frame)."""
    text = NO_PLAIN_RULES + '\nalert http any any -> any any (msg:"admin uri"; http.uri; content:"/admin"; sid:21;)\n'
    compiled, plain = pair(text)
    steps = [("c", [b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", b"y" * 1000, b"z" * 1000]),
             ("ack", [b""])]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))])
    assert compiled.hits.get((1, 21)) == 1
    assert (front.calls, front.answered) == (9, 6)          # all but the handshake


def _tls_run(handling: str):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replay"))
    from app_tls import CCS, FORMATS, GROUPS, client_hello, hs, record, server_hello, sni

    from rules.applayer.tls import Settings as TlsSettings

    rules = parse(TLS_RULES)
    cfg = EngineSettings(mode="ips", app={"tls": TlsSettings(encryption_handling=handling)})
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    steps = [("c", [record(22, client_hello([sni(b"www.example.com"), GROUPS, FORMATS]))]),
             ("s", [record(22, server_hello() + hs(14, b""))]),
             ("c", [record(22, hs(16, b"\x41" + bytes(65))) + CCS + record(22, bytes(40))]),
             ("s", [CCS + record(22, bytes(40))]), ("ack", [b""]),
             ("c", [record(23, b"y" * 40)]), ("c", [record(23, b"x" * 40 + b"qqq" + b"x" * 40)])]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",))
                                       for i, f in enumerate(session(steps, 40000, 443))])
    return compiled, front


def test_an_encrypted_flows_data_is_inspects():
    """Once a TLS flow is encrypted (encryption-handling default) its payload is not
    inspected: the application-data record after the one that made it so leaves the lane
    (as _lean_tcp leaves it) and the rule whose payload part is in it does not fire; with
    "full" the lane takes it to Engine._lane_app and the rule fires."""
    default, off = _tls_run("default")
    full, on = _tls_run("full")
    assert default.hits.get((1, 31), 0) == 0 and full.hits.get((1, 31), 0) == 1
    assert off.calls == on.calls and off.fallbacks - on.fallbacks == 1, (off.fallbacks, on.fallbacks)


def test_a_midstream_flow_s_first_packet_each_way_is_inspects():
    """stream.midstream: a session picked up on data, without its handshake.  Each
    direction's first packet (IP-only rules, decisions) goes to inspect, whatever it is;
    later ones may take the lane."""
    rules = parse(NO_PLAIN_RULES)
    cfg = EngineSettings(stream=StreamSettings(midstream=True))
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c, s_ = IP(src="198.51.100.1", dst="203.0.113.2"), IP(src="203.0.113.2", dst="198.51.100.1")
    frames = [bytes(e / c / TCP(sport=40000, dport=80, flags="PA", seq=1000, ack=5000) / b"hello"),
              bytes(e / s_ / TCP(sport=80, dport=40000, flags="A", seq=5000, ack=1005)),
              bytes(e / s_ / TCP(sport=80, dport=40000, flags="PA", seq=5000, ack=1005) / b"world"),
              bytes(e / c / TCP(sport=40000, dport=80, flags="A", seq=1005, ack=5005)),
              bytes(e / c / TCP(sport=40000, dport=80, flags="PA", seq=1005, ack=5005) / b"again")]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.fallbacks >= 2, (front.calls, front.fallbacks)


def test_acks_outside_the_window_and_with_options_are_inspects():
    """An acknowledgment beyond what the peer's window allows (its event), and a pure ACK
    whose TCP options carry a decoder event, go to inspect; a clean one after them is the
    lane's again (as the server's in-order data segment before them)."""
    compiled, plain = pair(RULES)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = session([("c", [b"hello"]), ("s", [b"world"])], 40000)
    ack = dict(sport=40000, dport=80, flags="A", seq=1006)
    frames += [bytes(e / IP(src="198.51.100.1", dst="203.0.113.2") / TCP(ack=5006 + 10**6, **ack)),
               bytes(e / IP(src="198.51.100.1", dst="203.0.113.2") / TCP(ack=5006, options=[("MSS", 1460)] * 2, **ack)),
               bytes(e / IP(src="198.51.100.1", dst="203.0.113.2") / TCP(ack=5006, **ack))]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.answered == 2, (front.calls, front.fallbacks)


def test_window_scale_and_an_older_ack():
    """Both SYNs with a window scale: the lane stores the advertised window scaled; a pure
    ACK older than the peer's highest one (reordered) leaves that highest one as it is.
    The server's two data segments are the lane's too (no app layer here)."""
    compiled, plain = pair(RULES)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    c, s_ = IP(src="198.51.100.1", dst="203.0.113.2"), IP(src="203.0.113.2", dst="198.51.100.1")

    def cs(load=b"", **kw):
        return bytes(e / c / TCP(sport=40000, dport=80, **kw) / load)

    def sc(load=b"", **kw):
        return bytes(e / s_ / TCP(sport=80, dport=40000, **kw) / load)

    frames = [cs(flags="S", seq=1000, window=64240, options=[("WScale", 7)]),
              sc(flags="SA", seq=5000, ack=1001, window=65160, options=[("WScale", 6)]),
              cs(flags="A", seq=1001, ack=5001, window=502),
              sc(flags="PA", seq=5001, ack=1001, window=509, load=b"a" * 300),
              sc(flags="PA", seq=5301, ack=1001, window=509, load=b"b" * 300),
              cs(flags="A", seq=1001, ack=5601, window=501),
              cs(flags="A", seq=1001, ack=5301, window=500),      # older: reordered
              cs(flags="A", seq=1001, ack=5601, window=499)]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.answered == 5, (front.calls, front.fallbacks)


@pytest.mark.parametrize("policy", ["drop-packet", "pass-packet", "ignore"])
def test_a_pure_ack_after_a_parser_gave_up_is_inspects(policy):
    """app-layer.error-policy answered the packet the parser gave up on before its
    transactions were inspected: the next packet, a pure ACK too, inspects them."""
    rules = parse(APP_RULES)
    cfg = EngineSettings(mode="ips", app_error_policy=policy)
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = session(GAVE_UP_STEPS, 40000)
    lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert compiled.hits.get((1, 21)) == 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, mode=st.sampled_from(["ips", "tap", "ids"]), plain_rule=st.booleans(),
       stream_bypass=st.booleans())
def test_random_tcp_sessions_same_through_the_compiled_lane(steps, mode, plain_rule, stream_bypass):
    """Segments both ways, pure ACKs, retransmissions, swapped segments, FINs; a rule
    without a fast pattern (the lane must leave the ACKs to inspect); a small reassembly
    depth with stream.bypass (the direction done)."""
    rules = parse(RULES if plain_rule else NO_PLAIN_RULES)
    cfg = EngineSettings(mode=mode, stream=StreamSettings(bypass=stream_bypass, depth=6000))
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(compiled, plain, frames)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=http_ops, mode=st.sampled_from(["ips", "tap", "ids"]), stream_bypass=st.booleans(),
       chunks=st.sampled_from([(2560, 2560), (40, 4096), (4096, 40)]))
def test_random_http_sessions_same_through_the_compiled_lane(steps, mode, stream_bypass, chunks):
    """With app-layer rules: a parser on the flow, transactions left for a pure ACK, a
    chunked request the parser gives up on; each direction's own inline window size."""
    rules = parse(APP_RULES)
    cfg = EngineSettings(mode=mode, stream=StreamSettings(bypass=stream_bypass, depth=6000,
                                                          toserver_chunk_size=chunks[0], toclient_chunk_size=chunks[1]))
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(compiled, plain, frames)


# ---------------------------------------------------------------------- random and recorded traffic
udp_steps = st.lists(st.tuples(st.sampled_from(["c", "s"]),
                               st.sampled_from([b"", b"data", b"evil", b"DROPME", b"zq", b"z", b"attack",
                                                b"again", b"MARK", b"x" * 700, "q:evil.example",
                                                "q:good.example", "a:good.example", "z:good.example"])),
                     min_size=1, max_size=24)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=udp_steps, mode=st.sampled_from(["ips", "tap", "ids"]), plain_rule=st.booleans(),
       dport=st.sampled_from([53, 7000, 5300]), bad_csum_at=st.integers(-1, 6),
       hint=st.sampled_from([CSUM_VALIDATE, CSUM_SKIP]), dns_both=st.booleans())
def test_random_udp_flows_same_through_the_compiled_lane(steps, mode, plain_rule, dport, bad_csum_at, hint,
                                                        dns_both):
    """Datagrams both ways with patterns, short patterns, flowbits, an IP-only rule, DNS
    (transaction rules waiting for a parser; or only to port 53, so the answers' direction
    has an offer while its parser runs; an app event), a drop, a bad checksum, empty
    payloads, two flows interleaved on the table's order."""
    text = UDP_RULES if dns_both else UDP_RULES.replace("alert dns any any -> any any", "alert dns any any -> any 53")
    compiled, plain = pair(text + (UDP_PLAIN_RULE if plain_rule else ""), mode)
    a, b = udp_flow(steps, 40000, dport, bad_csum_at), udp_flow(steps, 40001, dport)
    frames = [f for pair_ in zip(a, b) for f in pair_]
    lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0", (), 0, (), 1, hint)) for i, f in enumerate(frames)])


_ENDPOINTS = [(v6, host, sport, vlan) for v6 in (False, True) for host in range(1, 31) for sport in (40000, 40001)
              for vlan in ((), (12,), (13,))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(0, len(_ENDPOINTS) - 1), st.booleans(),
                                st.sampled_from([b"data", b"data", b"data", b"evil", b"zq"]),
                                st.sampled_from([0.001, 0.001, 0.001, 400.0])), min_size=20, max_size=160))
def test_many_flows_share_the_lane_s_key_cache(picks):
    """The lane keeps the flow keys it made in a 64-entry cache by the frame's endpoints
    (rules/_hotpath.c key_cached): 360 endpoint sets, IPv4 and IPv6, the same two client
    ports from thirty client addresses, the same endpoints
    under two VLANs and none (one of them an equal tuple that is not the same object),
    interleaved so entries are replaced, and time gaps that expire every flow (the next
    frame makes a new flow under an equal key): the same answers and table as inspect."""
    compiled, plain = pair(UDP_RULES)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames, ts = [], 1.7e9
    # first three flows (IPv4, IPv6, a VLAN) of five clean datagrams each: 4 each are the lane's
    prefix = [(k, False, b"data", 0.001) for k in (0, 182, 2) for _ in range(5)]       # (v4; v6 + VLAN 13; v4 + VLAN 13)
    for i, (which, back, payload, gap) in enumerate(prefix + picks):
        v6, host, sport, vlan = _ENDPOINTS[which]
        c, s = (f"2001:db8::{host}", S6) if v6 else (f"198.51.100.{host}", "203.0.113.2")
        ip = (IPv6 if v6 else IP)(src=s, dst=c) if back else (IPv6 if v6 else IP)(src=c, dst=s)
        udp = UDP(sport=7000, dport=sport) if back else UDP(sport=sport, dport=7000)
        ts += gap
        if vlan and i % 2:
            vlan = tuple(list(vlan))          # equal, not the same object
        frames.append((ts, bytes(e / ip / udp / payload), ("eth0", vlan, 0, (0x8100,) * len(vlan))))
    front = lockstep(compiled, plain, frames)
    assert front.answered >= 12, (front.calls, front.fallbacks)


def test_flows_differing_only_in_address_never_share_a_cached_key():
    """120 clients on the same port to one server, round-robin, three datagrams each: more
    flows than the key cache has entries, all of one port and protocol class, so entries
    are replaced under each other's hash; each datagram must count on its own flow."""
    compiled, plain = pair(UDP_RULES)
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [bytes(e / IP(src=f"198.51.100.{h}", dst="203.0.113.2") / UDP(sport=40000, dport=7000) / b"data")
              for _ in range(3) for h in range(1, 121)]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert front.answered == 240, (front.calls, front.fallbacks)


@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("skip_csum", [False, True])
def test_fixture_same_through_the_compiled_lane(name, skip_csum):
    """Every differential fixture (the captures checked against Suricata), with the
    fixture's checksum setting (auto: its sample never ends in so few frames) and with no
    validation.  Their UDP flows are a datagram or two, or have rules without a fast
    pattern: Python's lane takes none of them either, so this checks that the front hands
    everything else over unchanged; the tests above check what it answers."""
    sc = EXPECTED["scenarios"][name]
    config = _load_config(str(DIFF / sc.get("config", "ipsbridge.yaml")))
    mode = sc.get("mode", "ips")
    rules = [str(DIFF / sc["rules"])]
    compiled, plain = build_engine(config, mode=mode, paths=rules), build_engine(config, mode=mode, paths=rules)
    hint = CSUM_SKIP if skip_csum else CHECKSUM_HINTS[config.pcap_file_checksum_checks]
    frames = [(rec.ts, rec.data, (rec.iface, (), cnt, (), rec.linktype, hint))
              for cnt, rec in enumerate(read_file(str(DIFF / sc["pcap"])), 1)]
    lockstep(compiled, plain, frames)


# ---------------------------------------------------------------------- HTTP bodies (the body lane)
BODY_RULES = NO_PLAIN_RULES + """
alert http any any -> any any (msg:"deep in a response body"; flow:to_client; file.data; content:"NEEDLE"; sid:31;)
drop http any any -> any any (msg:"drop a body"; file.data; content:"DROPBODY"; sid:32;)
alert http any any -> any any (msg:"a request body"; flow:to_server; http.request_body; content:"PIN"; sid:33;)
alert tcp any 80 -> any any (msg:"2-byte pattern from the server"; flow:to_client; content:"|18 03|"; sid:34;)
"""


def _http_body_session(body: bytes, seg: int, framing: str, *, request: bool = False) -> list[bytes]:
    """A request and its response (or, `request`, a POST whose body is `body`), the body sent
    in `seg`-byte segments (each acknowledged): Content-Length, chunked (one chunk per
    segment) or, for a response, delimited by the close."""
    pieces = [body[i:i + seg] for i in range(0, len(body), seg)] or [b""]
    if framing == "chunked":
        pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
        head = b"Transfer-Encoding: chunked\r\n"
    elif framing == "length":
        head = b"Content-Length: %d\r\n" % len(body)
    else:
        head = b""
    if request:
        steps = [("c", [b"POST /up HTTP/1.1\r\nHost: a\r\n" + head + b"\r\n"])]
        steps += [x for p in pieces for x in (("c", [p]), ("ack", [b""]))]
        steps += [("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]), ("ack", [b""])]
    else:
        steps = [("c", [b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
                 ("s", [b"HTTP/1.1 200 OK\r\n" + head + b"\r\n"])]
        steps += [x for p in pieces for x in (("s", [p]), ("ack", [b""]))]
    if framing == "close":
        steps.append(("fin", [b""]))
    return session(steps, 40000)


def _body_engines(*, min_inspect: int | None = None, limit: int | None = None, chunk: int = 2560, extra: str = "",
                  rules_text: str = BODY_RULES):
    from rules.applayer import http

    kw = {}
    if min_inspect is not None:
        kw.update(response_body_minimal_inspect_size=min_inspect, request_body_minimal_inspect_size=min_inspect)
    if limit is not None:
        kw.update(response_body_limit=limit, request_body_limit=limit)
    cfg = EngineSettings(stream=StreamSettings(toserver_chunk_size=chunk, toclient_chunk_size=chunk),
                         app={"http": http.Settings(**kw)})
    rules = parse(rules_text + extra)
    return Engine(rules, cfg), Engine(rules, cfg)


class _Entries:
    """How often the compiled lane handed a frame to each of the engine's Python entries."""

    def __init__(self, engine: Engine) -> None:
        self.n = {"_lane_app": 0, "_lane_tx": 0}
        for name in self.n:
            method = getattr(engine, name)

            def counted(*args, _m=method, _name=name):
                self.n[_name] += 1
                return _m(*args)

            setattr(engine, name, counted)


def _run_body(frames, compiled, plain):
    entries = _Entries(compiled)
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    return front, entries.n


def test_a_long_body_s_segments_are_the_body_lane_s():
    """A 20-segment response body below its minimal inspect size: the segment with the
    headers and the last one (which completes the body) go to Engine._lane_app; the 19
    between are taken whole by the compiled lane -- stream, parser, body -- and the pattern
    in the last bytes fires on the complete body, as on inspect's path."""
    compiled, plain = _body_engines()
    body = b"a" * 1400 * 19 + b"tail NEEDLE end"
    front, n = _run_body(_http_body_session(body, 1400, "length"), compiled, plain)
    assert compiled.hits.get((1, 31)) == 1
    assert n["_lane_app"] == 3 and n["_lane_tx"] == 0, n            # the request, the headers, the last segment
    assert front.fallbacks == 3, (front.calls, front.fallbacks)     # the handshake


ANCHORED_BODY_RULES = BODY_RULES.replace('content:"|18 03|"; sid:34;', 'content:"|18 03|"; depth:2; sid:34;')


@pytest.mark.parametrize("where", ["inside", "first"])
def test_an_anchored_2_byte_pattern_leaves_the_body_lane_only_where_its_content_can_match(where):
    """`content:"|18 03|"; depth:2;` (ET's heartbleed rules): the bytes in the middle of body
    segments are no reason to leave the compiled lane (its content can only match the first
    two bytes of the window or of the segment's payload), and nothing fires; a segment that
    starts with them goes to detection, and the rule fires on its payload, as on inspect's
    path."""
    assert ANCHORED_BODY_RULES != BODY_RULES
    compiled, plain = _body_engines(rules_text=ANCHORED_BODY_RULES)
    piece = b"a" * 700 + b"\x18\x03" + b"b" * 698 if where == "inside" else b"\x18\x03" + b"c" * 1398
    body = b"z" * 1400 + piece * 18 + b"tail NEEDLE end"
    front, n = _run_body(_http_body_session(body, 1400, "length"), compiled, plain)
    assert compiled.hits.get((1, 31)) == 1
    if where == "inside":
        assert compiled.hits.get((1, 34)) is None
        assert n["_lane_app"] == 3 and n["_lane_tx"] == 0, n        # the request, the headers, the last segment
    else:
        assert compiled.hits.get((1, 34)) == 18
        assert n["_lane_app"] == 3 + 18, n


def test_the_body_lane_sees_the_flowbits_a_waiting_rule_waits_on_change():
    """A response rule waits on a flowbit (the direction's run is idle with the flowbits it
    found); a client ACK in the middle of the body sets it, without moving the parser.  The
    next body segment is not idle any more: the lane hands it to the transaction rules,
    which fire there, as on inspect's path (the lockstep compares the parser's idle marks)."""
    from rules.applayer import http

    rules = parse(NO_PLAIN_RULES + """
alert tcp any 80 -> any any (msg:"armed"; flow:to_client,established; content:"200 OK"; flowbits:set,armed; flowbits:noalert; sid:41;)
alert tcp any any -> any 80 (msg:"late"; flow:to_server,established; dsize:0; flowbits:isset,armed; flowbits:set,late; flowbits:noalert; sid:42;)
alert http any 80 -> any any (msg:"late response"; flow:to_client; flowbits:isset,late; http.stat_code; content:"200"; sid:43;)
""")
    cfg = EngineSettings(stream=StreamSettings(toserver_chunk_size=2560, toclient_chunk_size=2560),
                         app={"http": http.Settings()})
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    steps = [("c", [b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1400 * 9)])]
    for i in range(9):
        steps.append(("s", [b"b" * 1400]))
        if i in (0, 5):
            steps.append(("ack", [b""]))
    front, n = _run_body(session(steps, 40000), compiled, plain)
    assert compiled.hits.get((1, 43)) == 1, compiled.hits
    assert n["_lane_tx"] >= 1, n                 # the segment after the flowbit, from the lane


def test_the_body_lane_calls_the_stream_prune_only_when_it_cuts():
    """The body lane works out _prune's own test (keep - data_off > PRUNE_STEP) before calling
    it: over a 60-segment body every call it makes cuts the stream, it does make some (the
    stream is pruned as on inspect's path: the lockstep compares data, data_off and the
    memory counted), and most segments make none.  (Calls from the Python path, which
    always calls, are not counted.)"""
    compiled, plain = _body_engines()
    calls, cuts = [], []
    prune = compiled.streams._prune

    def watched(me, c):
        before = me.data_off
        prune(me, c)
        if sys._getframe(1).f_code.co_filename.endswith("stream.py"):
            return                                  # the Python path's call (inline_window's)
        calls.append(me.end)
        if me.data_off != before:
            cuts.append(me.end)

    compiled.streams._prune = watched
    # the client acknowledges every fourth segment, as a receiver does with delayed ACKs:
    # the acknowledged offset, not the chunk behind the data, is what limits the cut then
    pieces = [b"p" * 1400] * 60
    steps = [("c", [b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1400 * 60)])]
    for i, p in enumerate(pieces):
        steps.append(("s", [p]))
        if i % 4 == 3:
            steps.append(("ack", [b""]))
    front, n = _run_body(session(steps, 40000), compiled, plain)
    assert n["_lane_app"] == 3, n                                   # the other 58 segments: the lane's
    assert cuts and calls == cuts, (calls, cuts)
    assert len(calls) < 58 // 2, calls


def test_a_body_past_its_minimal_inspect_size_runs_the_transaction_rules_from_the_lane():
    """Once a growing body holds the minimal inspect size, each segment moves what detection
    sees: the lane takes the segment in and hands the transaction rules to Engine._lane_tx,
    which drops the segment that brings the marker -- before the body is complete."""
    compiled, plain = _body_engines(min_inspect=3000)
    body = b"b" * 1400 * 4 + b"DROPBODY" + b"c" * 1400 * 6
    frames = _http_body_session(body, 1400, "length")
    front, n = _run_body(frames, compiled, plain)
    assert compiled.hits.get((1, 32)) == 1 and compiled.c["drops"] >= 1
    # (the run that crossed the size matched nothing: the next is quiet, the lane's own)
    assert n["_lane_tx"] >= 1 and n["_lane_tx"] + front.call.quiet_answers >= 2, (n, front.call.quiet_answers)


@pytest.mark.parametrize("framing", ["length", "close"])
def test_quiet_transaction_runs_are_answered_by_the_lane(framing):
    """Past its minimal inspect size a body runs the transaction rules on every segment.  A
    run that matched nothing is kept (TxDetector.run's quiet record); the next segment with
    the same candidates, progress and flowbits is answered by the lane itself (tx_quiet),
    without Engine._lane_tx: the lockstep holds every count, idle mark and transaction
    field to inspect's path.  The segment whose bytes bring a new candidate is run, and
    drops.  (A chunked body whose segments each hold a whole chunk is the parser's.)"""
    compiled, plain = _body_engines(min_inspect=3000)
    body = b"q" * 1400 * 30 + b"DROPBODY" + b"r" * 1400 * 2
    front, n = _run_body(_http_body_session(body, 1400, framing), compiled, plain)
    assert compiled.hits.get((1, 32)) == 1 and compiled.c["drops"] >= 1
    assert front.call.quiet_answers >= 25, (front.call.quiet_answers, n)
    assert n["_lane_tx"] <= 3, n
    # (the candidates of all but the first quiet runs: the lane's own scan of the new bytes)
    assert front.call.quiet_scans >= front.call.quiet_answers - 2, (front.call.quiet_scans, front.call.quiet_answers)


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_a_pattern_split_across_two_quiet_segments_is_found_by_the_lanes_scan(cut):
    """The lane works out a quiet run's candidates by scanning the body's new bytes from the
    slot's overlap before them (quiet_cands): a file.data pattern whose first `cut` bytes
    end one quiet segment and whose rest starts the next is a new candidate there, the rules
    run on that segment, and it drops -- as on inspect's path (the lockstep)."""
    compiled, plain = _body_engines(min_inspect=3000)
    body = b"q" * (1400 * 20 - cut) + b"DROPBODY" + b"r" * (1400 * 3 - 8 + cut)
    front, n = _run_body(_http_body_session(body, 1400, "length"), compiled, plain)
    assert compiled.hits.get((1, 32)) == 1 and compiled.c["drops"] >= 1, compiled.hits
    assert front.call.quiet_scans >= 10, (front.call.quiet_scans, n)


def test_a_quiet_run_waiting_on_a_flowbit_runs_again_once_the_bit_is_set():
    """A file.data rule waits on a flowbit while the body grows past its minimal inspect
    size: its runs are quiet (the wait is kept with the flowbits it failed on), and the lane
    answers them.  A marker in the body arms a packet rule; the client's next ACK sets the
    bit the file.data rule waits on, without a response segment: the next segment's quiet
    record no longer holds (other flowbits), the rules run, and the rule fires there, as on
    inspect's path (the lockstep compares every frame's result)."""
    from rules.applayer import http

    rules = parse(NO_PLAIN_RULES + """
alert tcp any 80 -> any any (msg:"armed"; flow:to_client,established; content:"ARMX"; flowbits:set,armed; flowbits:noalert; sid:41;)
alert tcp any any -> any 80 (msg:"late"; flow:to_server,established; dsize:0; flowbits:isset,armed; flowbits:set,late; flowbits:noalert; sid:42;)
alert http any 80 -> any any (msg:"body once late"; flow:to_client; flowbits:isset,late; file.data; content:"qqqq"; sid:44;)
""")
    cfg = EngineSettings(stream=StreamSettings(toserver_chunk_size=2560, toclient_chunk_size=2560),
                         app={"http": http.Settings(response_body_minimal_inspect_size=3000)})
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    steps = [("c", [b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1400 * 20)])]
    for i in range(20):
        steps.append(("s", [b"q" * 700 + b"ARMX" + b"q" * 696 if i == 12 else b"q" * 1400]))
        if i % 2:
            steps.append(("ack", [b""]))
    front, n = _run_body(session(steps, 40000), compiled, plain)
    assert compiled.hits.get((1, 44)) == 1, compiled.hits
    assert front.call.quiet_answers >= 5, (front.call.quiet_answers, n)


@pytest.mark.parametrize("off", ["quiet_runs", "candidates", "run"])
def test_the_lane_leaves_quiet_runs_to_python_when_they_are_off_or_replaced(off):
    """The lane answers a quiet run only for a TxDetector running its class's own `run` and
    `_candidates` with `quiet_runs` on: turned off (as the lockstep references do), or a
    method replaced on the instance (as tests do), every run is Python's."""
    compiled, plain = _body_engines(min_inspect=3000)
    txd = compiled.detector.tx
    calls = []
    if off == "quiet_runs":
        txd.quiet_runs = plain.detector.tx.quiet_runs = False
    else:
        name = "_candidates" if off == "candidates" else "run"
        own = getattr(txd, name)

        def spy(*args, _own=own):
            calls.append(1)
            return _own(*args)

        setattr(txd, name, spy)
    body = b"q" * 1400 * 30 + b"DROPBODY" + b"r" * 1400 * 2
    front, n = _run_body(_http_body_session(body, 1400, "length"), compiled, plain)
    assert compiled.hits.get((1, 32)) == 1
    assert front.call.quiet_answers == 0, front.call.quiet_answers
    assert n["_lane_tx"] >= 25, n
    assert off == "quiet_runs" or len(calls) >= 25, len(calls)


@pytest.mark.parametrize("framing,to_server", [("length", False), ("chunked", False), ("close", False),
                                               ("length", True), ("chunked", True)])
def test_body_framings_and_directions(framing, to_server):
    """Content-Length bodies, chunked ones (the lane takes a chunk's data while more of it is
    to come; chunk-size lines are the parser's) and close-delimited responses; request
    bodies too (a request cannot be delimited by the close)."""
    compiled, plain = _body_engines()
    body = (b"PIN " if to_server else b"NEEDLE ") + bytes(range(32, 127)) * 60
    front, n = _run_body(_http_body_session(body, 900, framing, request=to_server), compiled, plain)
    assert compiled.hits.get((1, 33 if to_server else 31)) == 1, compiled.hits
    assert front.answered > 8, (front.calls, front.fallbacks)


@pytest.mark.parametrize("framing", ["length", "close"])
@pytest.mark.parametrize("min_inspect", [None, 3000])
def test_the_lane_keeps_the_body_limit(framing, min_inspect):
    """A body past response-body-limit: the bytes beyond it are parsed, not kept; detection
    sees the limit's bytes once they are all there, as on inspect's path.  With a minimal
    inspect size below the limit, detection reads the full body before it ends (Body.data
    is then bytes, no longer a bytearray), and the lane still takes the segments after."""
    compiled, plain = _body_engines(limit=5000, min_inspect=min_inspect)
    body = b"NEEDLE" + b"d" * 20000
    front, n = _run_body(_http_body_session(body, 1000, framing), compiled, plain)
    assert compiled.hits.get((1, 31)) == 1
    # the request, the headers, and with the smaller minimal inspect size the segments
    # that grow the body from 3,000 to 5,000 bytes (3: idle again once full) -- and for
    # a Content-Length body the last one
    assert n["_lane_app"] + n["_lane_tx"] <= 2 + (3 if min_inspect else 0) + (framing == "length"), n


def test_patterns_in_the_window_send_the_segment_to_detection():
    """A 2-byte pattern in a body segment, a fast pattern split across two, one remembered
    from the headers: those segments leave the body lane (the general path detects), the
    others stay in it."""
    compiled, plain = _body_engines()
    body = b"e" * 1000 + b"\x18\x03" + b"f" * 1996 + b"ev" + b"il" + b"h" * 5000     # "ev|il" at 3000
    front, n = _run_body(_http_body_session(body, 1000, "length"), compiled, plain)
    # (a pattern stays in the inline windows of the segments after it, as on inspect's path)
    assert compiled.hits.get((1, 34), 0) >= 1 and compiled.hits.get((1, 1), 0) >= 1, compiled.hits
    assert n["_lane_app"] >= 4, n


FTP_RULE = 'alert ftp any any -> any any (msg:"an FTP command"; flow:to_server; content:"MKD"; nocase; sid:35;)'


def _server_seen(engine: Engine) -> list:
    return [dict(f.tcp.server.seen) for f in engine.flows.table().values() if f.tcp is not None]


def test_patterns_only_other_rules_want_leave_the_segments_in_the_body_lane():
    """In a response body, "DROPME" (sid 2's, a rule for the client's bytes) and "mkd" (an
    FTP rule's, to the server) make no candidate (Detector.window_candidates): the segments
    holding them, and those whose window they are in, stay in the body lane, which asks
    the detector once per pattern and header class, and remembers the sightings as
    take_in_order does (TcpStream.seen, compared after every frame, its order included)."""
    compiled, plain = _body_engines(extra=FTP_RULE)
    body = b"a" * 500 + b"DROPME" + b"b" * 494 + b"mkd" + b"c" * 497 + b"DROPME" + b"d" * 494 + b"e" * 5000
    frames = _http_body_session(body, 500, "length")          # ("DROPME" again: its sighting moves last)
    sightings: list = []
    asked: list = []
    ask = compiled.detector.window_candidates

    def counted(*a):
        asked.append(sorted(a[3]))
        return ask(*a)

    compiled.detector.window_candidates = counted
    entries = _Entries(compiled)
    lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)],
             between=lambda n: sightings.extend(_server_seen(compiled)))
    pids = compiled.detector.index.pattern_db.patterns
    drop, mkd = pids.index((b"DROPME", False)), pids.index((b"mkd", True))
    assert entries.n == {"_lane_app": 3, "_lane_tx": 0}, entries.n   # the request, the headers, the last segment
    assert [mkd, drop] in [list(s) for s in sightings], sightings
    assert [drop] in asked and [drop, mkd] in asked, asked
    assert set(compiled.hits) == {(1, 5)}, compiled.hits        # (the IP-only rule, on the first packets)


def test_a_pattern_the_direction_wants_beside_one_it_does_not_goes_to_detection():
    """"mkd" (not wanted from the server) and "evil" (sid 1, either way) in one segment:
    the segment goes to detection, and sid 1 fires."""
    compiled, plain = _body_engines(extra=FTP_RULE)
    body = b"a" * 1000 + b"mkd evil" + b"b" * 992 + b"c" * 3000
    front, n = _run_body(_http_body_session(body, 1000, "length"), compiled, plain)
    assert compiled.hits.get((1, 1), 0) >= 1, compiled.hits
    assert n["_lane_app"] >= 4, n


@pytest.mark.parametrize("data, detected", [(b"DROPME", 0), (b"evil", 3)], ids=["unwanted", "wanted"])
def test_the_tcp_lane_asks_whether_the_direction_wants_a_pattern(data, detected):
    """Without an app layer: a server segment holding "DROPME" (wanted only from the
    client) and the next one, whose window holds it, are answered by the compiled lane
    without Engine._lane_detect; "evil" (wanted) goes to it from that segment on while its
    window holds it (the next two), and fires."""
    compiled, plain = pair(NO_PLAIN_RULES)
    calls = []
    lane_detect = compiled._lane_detect
    compiled._lane_detect = lambda *a: calls.append(1) or lane_detect(*a)
    steps = [("c", [b"x" * 100]), ("s", [b"y" * 500, data + b"y" * 494, b"y" * 500]), ("ack", [b""]),
             ("s", [b"y" * 1448] * 3)]
    front = lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))])
    assert len(calls) == detected, calls
    assert front.answered >= 7, (front.calls, front.fallbacks)
    assert (compiled.hits.get((1, 1), 0) >= 1) == (data == b"evil"), compiled.hits


body_pieces = st.lists(st.sampled_from([b"x" * 1448, b"y" * 700, b"NEEDLE", b"NEED", b"LE", b"DROPBODY", b"\x18",
                                        b"\x03", b"evil", b"z" * 50, b"0\r\n\r\n", b"5\r\nabcde\r\n"]),
                       min_size=1, max_size=30)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=body_pieces, framing=st.sampled_from(["length", "chunked", "close"]),
       min_inspect=st.sampled_from([None, 500, 4000]), limit=st.sampled_from([None, 3000]),
       chunk=st.sampled_from([40, 2560, 4096]), extra=st.integers(0, 3))
def test_random_bodies_same_through_the_body_lane(pieces, framing, min_inspect, limit, chunk, extra):
    """Bodies of random pieces (patterns split across segments, chunk-size lines inside a
    "chunked" body, more or fewer bytes than the length says), each segment as sent."""
    compiled, plain = _body_engines(min_inspect=min_inspect, limit=limit, chunk=chunk)
    body = b"".join(pieces)
    if framing == "chunked":
        head = b"Transfer-Encoding: chunked\r\n"
    elif framing == "length":
        head = b"Content-Length: %d\r\n" % (len(body) + extra - 1)
    else:
        head = b""
    steps = [("c", [b"GET /f HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", [b"HTTP/1.1 200 OK\r\n" + head + b"\r\n"] + pieces),
             ("ack", [b""]), ("fin", [b""])]
    lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))])


def test_a_sighting_the_window_has_left_is_forgotten_by_the_lane():
    """A small inline window (toclient-chunk-size 40): "evil" seen in one segment is in the
    next one's window (the general path detects again), then out of the window; the lane
    takes the segments after that and drops the sighting as inspect's path does (TcpStream.
    seen, compared after every frame), long before the stream is pruned."""
    compiled, plain = _body_engines(chunk=40)
    body = b"i" * 700 + b"evil" + b"j" * 2796
    front, n = _run_body(_http_body_session(body, 500, "length"), compiled, plain)
    assert compiled.hits.get((1, 1), 0) >= 1, compiled.hits
    assert n["_lane_app"] == 5, n      # the request, the headers, "evil" and the window after it, the last


def test_a_body_segment_after_a_transaction_went_leaves_the_marks_as_python_does():
    """A response completes (8 bytes) and its transaction goes; a second response to no
    request follows, and its body's next segment comes.  AppLayer._events, on the Python
    path, rebuilds AppState.marks without the transaction that went; the body lane, which
    would keep the stale entry, leaves that segment to it (found by hypothesis in CI)."""
    steps = [("c", [b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n",
                    b"in HTTP/1.1\r\n\r\n"])]
    rules = parse(APP_RULES)
    compiled, plain = Engine(rules, EngineSettings()), Engine(rules, EngineSettings())
    lockstep(compiled, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))])


def test_a_prune_that_cuts_into_a_wide_window_keeps_the_window_for_the_transaction_rules():
    """toclient-chunk-size 40 and 1,000-byte segments: a segment's inline window starts 13
    bytes before it (n + c/3), behind what the stream's prune keeps (raw progress - c).
    A payload part beside a transaction part keeps the direction's transaction rules
    running on every segment (Engine._lane_tx); "qq|q" split across the boundary of the
    segment whose take prunes the stream matches only if the lane kept the window's first
    bytes from before the cut."""
    from rules.applayer import http

    rules = parse(NO_PLAIN_RULES + '\nalert http any any -> any any (msg:"payload beside a transaction"; '
                  'flow:to_client; content:"qqq"; http.stat_code; content:"200"; sid:35;)\n')
    cfg = EngineSettings(stream=StreamSettings(toserver_chunk_size=40, toclient_chunk_size=40),
                         app={"http": http.Settings()})
    seg = 1000

    def frames(body):
        return [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(_http_body_session(body, seg, "length"))]

    # where the stream is pruned on the way (the same frames on the Python path)
    probe = Engine(rules, cfg)
    cuts = []
    prune = probe.streams._prune

    def watched(me, c):
        before = me.data_off
        prune(me, c)
        if me.data_off != before:
            cuts.append(me.end)

    probe.streams._prune = watched
    filler = b"w" * (seg * 14)
    for ts, f, args in frames(filler):
        probe.inspect(f, FrameMeta(ts, *args))
    body_start = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(filler))
    at = next(end - seg - body_start for end in cuts if end - seg - body_start >= 2 * seg)   # that segment's start
    body = filler[:at - 2] + b"qqq" + filler[at + 1:]
    compiled, plain = Engine(rules, cfg), Engine(rules, cfg)
    _, n = _run_body(_http_body_session(body, seg, "length"), compiled, plain)
    assert compiled.hits.get((1, 35)) == 1, compiled.hits
    assert n["_lane_tx"] >= 3, n
