"""The engine's lean lane (rules.engine.Engine._lean_tcp) changes what an established TCP
segment costs, never what is decided.

Two engines built from the same rules and settings, one with the lane (the default) and
one without (`lean = False`), inspect the same frames in lockstep: every Result (verdict,
reason, events as EVE, injected frames, rewritten frame, bypass), the events of every tick
and of the end, and every counter of `stats()` must be the same.  This runs over every
differential fixture (tests/replay/differential, the captures checked against Suricata)
and over random TCP sessions (hypothesis): segment sizes, patterns across segment
boundaries, retransmissions, out-of-order segments, pure ACKs, FINs.  Each run also counts
what the lane took, so a lane that never runs (or never hands a segment to detection)
fails here instead of passing vacuously.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import IP, TCP, UDP, Ether

from bridge.eve import dumps
from bridge.hook import build_engine
from bridge.pcap import read_file
from bridge.replay import CHECKSUM_HINTS, TICK_EVERY, _load_config
from rules.api import FrameMeta
from rules.engine import Engine
from rules.parser import parse_rule
from rules.settings import EngineSettings, StreamSettings

DIFF = Path(__file__).resolve().parents[1] / "replay" / "differential"
EXPECTED = json.loads((DIFF / "expected.json").read_text())
SCENARIOS = sorted(EXPECTED["scenarios"])


class Counting:
    """Wraps an engine's `_lean_tcp`: how many packets the lane took, and how many of those
    it handed to the detect stage (a fast pattern in the window); and its `_lean_udp`: how
    many datagrams that lane took."""

    def __init__(self, engine: Engine) -> None:
        self.taken = self.detected = self.udp_taken = 0
        lane, udp_lane, stage = engine._lean_tcp, engine._lean_udp, engine._detect_stage
        self.in_lane = False

        def lean_udp(pkt):
            r = udp_lane(pkt)
            if r is not None:
                self.udp_taken += 1
            return r

        engine._lean_udp = lean_udp

        def lean(pkt):
            self.in_lane = True
            try:
                r = lane(pkt)
            finally:
                self.in_lane = False
            if r is not None:
                self.taken += 1
            return r

        def detect_stage(*a):
            if self.in_lane:
                self.detected += 1
            return stage(*a)

        engine._lean_tcp = lean
        engine._detect_stage = detect_stage


def result_key(r) -> tuple:
    b = r.bypass
    bypass = None if b is None else (b.flow.flow_id, b.action, b.to_server, b.reason, b.scan is None)
    return (int(r.verdict), r.reason, tuple(dumps(e) for e in r.events),
            tuple((i.frame, i.back) for i in r.inject), r.frame, bypass)


def drive(a: Engine, b: Engine, frames, call_a, call_b, *, between=None, observe=(Engine.stats,)) -> None:
    """Feed (ts, frame, meta-args) to engine `a` through `call_a` and to `b` through `call_b`,
    both ticked every TICK_EVERY of packet time as replay ticks them; after every frame their
    results and each `observe(engine)` must agree, and at the end what `finish` reports and
    the alert counts.  `between(n)`, if given, runs before frame n.  The lockstep tests of
    the lean lanes, the compiled lanes and the transaction detector's skip share it."""
    last_tick = None
    for n, (ts, data, meta_args) in enumerate(frames, 1):
        if between is not None:
            between(n)
        if last_tick is None:
            last_tick = ts
        elif ts - last_tick >= TICK_EVERY:
            ta, tb = a.tick(ts), b.tick(ts)
            assert [dumps(e) for e in ta] == [dumps(e) for e in tb], f"tick before frame {n}"
            last_tick = ts
        ra = call_a(data, FrameMeta(ts, *meta_args))
        rb = call_b(data, FrameMeta(ts, *meta_args))
        assert result_key(ra) == result_key(rb), f"frame {n}"
        for look in observe:
            assert look(a) == look(b), f"frame {n}: {look.__name__}"
    fa, fb = a.finish(), b.finish()
    assert [dumps(e) for e in fa] == [dumps(e) for e in fb], "finish"
    for look in observe:
        assert look(a) == look(b), look.__name__
    assert a.hits == b.hits


def lockstep(lean: Engine, plain: Engine, frames) -> None:
    """Feed (ts, frame, meta-args) to both engines, `plain` without its lanes; every
    observable must agree, after every frame (stats: stream.memuse, the same bytes held)."""
    plain.lean = False
    drive(lean, plain, frames, lean.inspect, plain.inspect)


# ---------------------------------------------------------------------- differential fixtures
TOTALS = {"taken": 0, "detected": 0, "udp_taken": 0, "runs": 0}


@pytest.mark.parametrize("name", SCENARIOS)
def test_fixture_same_with_and_without_the_lane(name):
    sc = EXPECTED["scenarios"][name]
    config = _load_config(str(DIFF / sc.get("config", "ipsbridge.yaml")))
    mode = sc.get("mode", "ips")
    rules = [str(DIFF / sc["rules"])]
    lean, plain = build_engine(config, mode=mode, paths=rules), build_engine(config, mode=mode, paths=rules)
    count = Counting(lean)
    hint = CHECKSUM_HINTS[config.pcap_file_checksum_checks]
    frames = [(rec.ts, rec.data, (rec.iface, (), cnt, (), rec.linktype, hint))
              for cnt, rec in enumerate(read_file(str(DIFF / sc["pcap"])), 1)]
    lockstep(lean, plain, frames)
    TOTALS["taken"] += count.taken
    TOTALS["detected"] += count.detected
    TOTALS["udp_taken"] += count.udp_taken
    TOTALS["runs"] += 1


def test_the_fixtures_exercise_the_lane():
    """After the fixture runs above (same module, in order): the lane took packets, and
    handed some to detection.  Run alone, this runs the fixtures itself."""
    if TOTALS["runs"] < len(SCENARIOS):
        for name in SCENARIOS:
            test_fixture_same_with_and_without_the_lane(name)
    assert TOTALS["taken"] > 500, TOTALS
    assert TOTALS["detected"] > 10, TOTALS


# ---------------------------------------------------------------------- random sessions
C, S = "198.51.100.1", "203.0.113.2"
RULES = """
alert tcp any any -> any any (msg:"evil anywhere"; flow:established; content:"evil"; sid:1;)
drop tcp any any -> any 80 (msg:"drop marker to server"; flow:established,to_server; content:"DROPME"; sid:2;)
alert tcp any 80 -> any any (msg:"server says secret"; flow:established,to_client; content:"secret"; nocase; sid:3;)
alert tcp any any -> any 80 (msg:"two-byte pattern"; content:"zq"; sid:4;)
alert ip any any -> 203.0.113.0/24 any (msg:"ip-only, first packet of a direction"; sid:5;)
alert tcp any any -> any 80 (msg:"pcre after a pattern"; content:"GET"; pcre:"/GET \\/[a-z]+x/"; sid:6;)
"""
NO_PLAIN_RULES = "\n".join(line for line in RULES.splitlines() if "sid:4;" not in line)


def parse(text: str) -> list:
    return [parse_rule(line) for line in text.splitlines() if line.strip()]

chunks = st.lists(st.sampled_from([b"a" * 7, b"evil", b"ev", b"il", b"DROP", b"ME", b"SeCrEt", b"zq", b"z",
                                   b"q", b"GET /abcx", b"x" * 300, b"y" * 1448]), min_size=1, max_size=14)
ops = st.lists(st.tuples(st.sampled_from(["c", "s", "ack", "retx", "swap", "fin"]), chunks), min_size=1, max_size=10)


def session(steps, sport: int, dport: int = 80) -> list[bytes]:
    """A handshake, then the steps: client/server data (each chunk a segment), a pure ACK,
    a retransmission of the last segment, two segments sent in swapped order, a FIN."""
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    seq = {"c": 1000, "s": 5000}
    out: list[bytes] = []

    def seg(side, flags, data=b"", at=None):
        s = seq[side] if at is None else at
        other = seq["s" if side == "c" else "c"]
        ip = IP(src=C, dst=S) if side == "c" else IP(src=S, dst=C)
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=s, ack=other) if side == "c" else \
            TCP(sport=dport, dport=sport, flags=flags, seq=s, ack=other)
        return bytes(e / ip / tcp / data)

    def send(side, flags, data=b""):
        f = seg(side, flags, data)
        seq[side] += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return f

    out.append(send("c", "S"))
    seq["c"] -= 0
    out.append(bytes(e / IP(src=S, dst=C) / TCP(sport=dport, dport=sport, flags="SA", seq=5000, ack=1001)))
    seq["s"] = 5001
    out.append(send("c", "A"))
    last = None
    for op, data in steps:
        if op in ("c", "s"):
            for d in data:
                last = send(op, "PA", d)
                out.append(last)
        elif op == "ack":
            out.append(send("c", "A"))
        elif op == "retx" and last is not None:
            out.append(last)
        elif op == "swap" and len(data) >= 2:
            a = send("c", "PA", data[0])
            b = send("c", "PA", data[1])
            out += [b, a]
        elif op == "fin":
            out.append(send("c", "FA"))
            out.append(send("s", "FA"))
            out.append(send("c", "A"))
            break
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, mode=st.sampled_from(["ips", "tap", "ids"]), plain_rule=st.booleans(),
       stream_bypass=st.booleans())
def test_random_sessions_same_with_and_without_the_lane(steps, mode, plain_rule, stream_bypass):
    rules = parse(RULES if plain_rule else NO_PLAIN_RULES)
    cfg = EngineSettings(mode=mode, stream=StreamSettings(bypass=stream_bypass, depth=6000))
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(lean, plain, frames)


# rules without a fast pattern whose `flags` some ACKs, data segments or FINs pass and some
# refuse (the flags prefilter, rules.detect._flags_gate)
FLAG_SPECS = ["FPU", "PA", "A", "A+", "FA", "*SR", "!A", "S,12", "0"]


def flags_rules(flags: str) -> str:
    """NO_PLAIN_RULES and a rule of the direction to the server with `flags` and no pattern."""
    return NO_PLAIN_RULES + f'\nalert tcp any any -> any 80 (msg:"flags {flags}"; flags:{flags}; sid:9;)\n'


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops, mode=st.sampled_from(["ips", "tap", "ids"]), flags=st.sampled_from(FLAG_SPECS))
def test_random_sessions_with_a_flags_rule_same_with_and_without_the_lane(steps, mode, flags):
    """A rule without a fast pattern but with `flags`: the lane takes the packets whose flags
    it refuses, and only those; what it matches (FIN+ACKs, data segments) still matches."""
    rules = parse(flags_rules(flags))
    cfg = EngineSettings(mode=mode, stream=StreamSettings(depth=6000))
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(lean, plain, frames)


FLAGS_STEPS = [("c", [b"GET /a HTTP/1.1\r\n\r\n", b"more"]), ("ack", [b""]), ("s", [b"x" * 1448, b"y" * 1448]),
               ("ack", [b""]), ("ack", [b""]), ("c", [b"tail"])]


@pytest.mark.parametrize("flags,to_lane", [(None, 8), ("FPU", 8), ("*SR", 8), ("A", 5), ("PA", 5), ("A+", 2)])
def test_a_flags_rule_keeps_only_the_packets_it_could_match_off_the_lane(flags, to_lane):
    """The session's 8 later packets (3 data segments and 3 pure ACKs from the client, 2
    data segments from the server) all take the lane with no pattern-less rule.  A rule to
    the server whose flags refuse ACK and ACK+PSH (FPU, *SR) changes nothing; `flags:A`
    keeps the client's 3 pure ACKs off it, `flags:PA` its 3 data segments, `flags:A+` all
    6; each such packet goes to the general path, where the rule matches it (and `*SR` the
    SYN, `flags:A` and `flags:A+` the handshake's ACK too)."""
    rules = parse(NO_PLAIN_RULES if flags is None else flags_rules(flags))
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    frames = session(FLAGS_STEPS, 40000)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert count.taken == to_lane
    if flags is not None:
        assert lean.hits.get((1, 9), 0) == {"FPU": 0, "*SR": 1, "A": 4, "PA": 3, "A+": 7}[flags]


APP_RULES = RULES + """
alert http any any -> any any (msg:"admin uri"; flow:to_server; http.uri; content:"/admin"; sid:21;)
alert http any any -> any any (msg:"evil server"; http.server; content:"evil"; sid:22;)
drop http any any -> any any (msg:"drop a body"; file.data; content:"DROPBODY"; sid:23;)
alert tcp any any -> any 80 (msg:"heartbeat-like 2-byte pattern"; content:"|18 03|"; sid:24;)
alert tcp any 80 -> any any (msg:"2-byte pattern from the server"; flow:to_client; content:"|18 03|"; sid:25;)
alert http any any -> any any (msg:"payload and a transaction"; flow:to_client; content:"qqq"; http.stat_code; content:"200"; sid:26;)
"""
http_chunks = st.lists(st.sampled_from([
    b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /adm",
    b"in HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 12\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", b"DROPBODY", b"body", b"\x18\x03", b"y" * 1448,
    # bodies over several segments, patterns split across them, a parser that gives up
    b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"DROP", b"BODY", b"\x18", b"\x03", b"qq", b"q",
    b"evil", b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]),
    min_size=1, max_size=8)
http_ops = st.lists(st.tuples(st.sampled_from(["c", "s", "ack", "ack", "retx", "fin"]), http_chunks),
                    min_size=1, max_size=10)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=http_ops, mode=st.sampled_from(["ips", "tap", "ids"]), stream_bypass=st.booleans())
def test_random_http_sessions_same_with_and_without_the_lane(steps, mode, stream_bypass):
    """With app-layer rules (an HTTP parser on the flow): the lane takes pure ACKs while
    the app layer has nothing to do on them, and in-order data segments once the flow's
    protocol is known, the parser fed as on the general path.  A body over several
    segments, patterns split across them (also 1-2 byte ones, and a rule with a payload
    part beside its transaction part), data on which detection fails, and a chunked
    request body the parser gives up on are among what is drawn."""
    rules = parse(APP_RULES)
    cfg = EngineSettings(mode=mode, stream=StreamSettings(bypass=stream_bypass, depth=6000))
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000) + session(steps, 40001))]
    lockstep(lean, plain, frames)


def test_an_http_session_takes_the_lane_on_its_pure_acks_and_its_data():
    """The 4 pure ACKs, the request and the response's 3 segments take the lane.  Three go
    on to detection: the request ("GET" is a fast pattern), and the two segments whose
    window holds "evil" (the header, and the body segment after it); the last one only to
    the parser and the transaction rules."""
    rules = parse(APP_RULES)
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    steps = [("c", [b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 2896\r\n\r\n", b"y" * 1448]),
             ("ack", [b""]), ("s", [b"y" * 1448]), ("ack", [b""]), ("ack", [b""])]
    frames = session(steps, 40000)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert count.taken == 8 and count.detected == 3, (count.taken, count.detected)
    assert (lean.hits[(1, 21)], lean.hits[(1, 22)]) == (1, 1)       # the transaction rules still fire


TLS_RULES = """
alert tcp any any -> any any (msg:"a packet rule"; content:"evil"; sid:1;)
alert tls any any -> any any (msg:"payload beside a TLS condition"; flow:to_server; tls.version:1.2; content:"qqq"; sid:31;)
"""


@pytest.mark.parametrize("handling", ["default", "full"])
def test_encrypted_tls_data_is_inspected_as_the_general_path_does(handling):
    """Once a TLS flow is encrypted (encryption-handling default), its payload is not
    inspected: a TLS rule whose payload part matches the client's encrypted record must not
    fire, lane or not; with "full" it fires.  (The record that makes the flow encrypted is
    still inspected, as in Suricata: the pattern is in the one after it.)  The encrypted
    segments are in-order data of a flow with a parser, so only the lane's own check keeps
    it off them."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "replay"))
    from app_tls import CCS, FORMATS, GROUPS, client_hello, hs, record, server_hello, sni

    from rules.applayer.tls import Settings as TlsSettings

    rules = parse(TLS_RULES)
    cfg = EngineSettings(mode="ips", app={"tls": TlsSettings(encryption_handling=handling)})
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    count = Counting(lean)
    steps = [("c", [record(22, client_hello([sni(b"www.example.com"), GROUPS, FORMATS]))]),
             ("s", [record(22, server_hello() + hs(14, b""))]),
             ("c", [record(22, hs(16, b"\x41" + bytes(65))) + CCS + record(22, bytes(40))]),
             ("s", [CCS + record(22, bytes(40))]), ("ack", [b""]),
             ("c", [record(23, b"y" * 40)]), ("c", [record(23, b"x" * 40 + b"qqq" + b"x" * 40)])]
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000, 443))])
    assert count.taken >= 3
    assert lean.hits.get((1, 31), 0) == (0 if handling == "default" else 1)


# a request the HTTP parser gives up on (gzip transfer coding), then pure ACKs
GAVE_UP_STEPS = [("c", [b"GET /admin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"]),
                 ("ack", [b""]), ("ack", [b""]), ("s", [b"HTTP/1.1 200 OK\r\n\r\n"]), ("ack", [b""])]


@pytest.mark.parametrize("policy", ["drop-packet", "pass-packet", "ignore"])
def test_a_parser_that_gave_up_leaves_its_pure_acks_to_the_general_path(policy):
    """app-layer.error-policy drop-packet or pass-packet answers the packet the parser gave
    up on before its transactions were inspected: the next packet of the flow, a pure ACK
    too, inspects them (and the rule on the request fires there)."""
    rules = parse(APP_RULES)
    cfg = EngineSettings(mode="ips", app_error_policy=policy)
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(GAVE_UP_STEPS, 40000))])
    assert lean.hits.get((1, 21)) == 1


def test_a_session_takes_the_lane_and_detects_across_segments():
    """The lane on its own: a long in-order session is taken by it, and a pattern split
    across two segments is still found (the lane hands the segment to detection)."""
    rules = parse(NO_PLAIN_RULES)
    e = Engine(rules, EngineSettings(mode="ips"))
    count = Counting(e)
    steps = [("c", [b"GET /abcx", b"x" * 300] * 5)] + [("s", [b"y" * 1448] * 4), ("ack", [b""])] * 3 \
        + [("c", [b"DR", b"OPME"]), ("c", [b"more"])]
    verdicts = [e.inspect(f, FrameMeta(1.7e9 + i * 0.001, "eth0")) for i, f in enumerate(session(steps, 40000))]
    assert count.taken >= 20
    assert count.detected >= 1
    drops = [i for i, r in enumerate(verdicts) if r.verdict]
    assert drops and verdicts[drops[0]].reason == "rule", [r.reason for r in verdicts]


@pytest.mark.parametrize("rules_text", [NO_PLAIN_RULES, APP_RULES], ids=["packet-rules", "app-layer"])
def test_a_pattern_only_the_other_direction_s_rules_want_runs_no_detection(rules_text):
    """"DROPME" is sid 2's fast pattern, a rule for the client's bytes (to port 80): in the
    server's segments it makes no candidate (Detector.window_candidates), so neither the
    segment holding it nor the ones whose window it is in go to detection -- with and
    without an app layer (the response body).  The same pattern from the client still
    does, and drops."""
    rules = parse(rules_text)
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    body = [b"y" * 1000, b"DROPME" + b"y" * 994, b"y" * 1000, b"y" * 1000]
    head = [b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n"] if rules_text == APP_RULES else []
    steps = [("c", [b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"]), ("ack", [b""]), ("s", head + body), ("ack", [b""])]
    frames = session(steps, 40000)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert count.taken >= 4 + len(head) and count.detected == 1, (count.taken, count.detected)   # the request ("GET")
    pid = lean.detector.index.pattern_db.patterns.index((b"DROPME", False))
    assert [k[pid] for _e, k in lean.detector._wanted.values() if pid in k] == [False]   # asked once, kept
    assert lean.c["drops"] == 0
    # from the client, the same bytes are wanted
    count.detected = 0
    frames = session([("c", [b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n", b"x" * 500 + b"DROPME"])], 40001)
    verdicts = [lean.inspect(f, FrameMeta(1.8e9 + i * 0.001, "eth0")) for i, f in enumerate(frames)]
    assert count.detected >= 1 and verdicts[-1].verdict and verdicts[-1].reason == "rule", count.detected


@pytest.mark.parametrize("steps", [
    [("s", [b"y" * 1448] * 7)],                                   # past the client's 8192-byte window
    [("c", [b"ev"]), ("retx", [b""]), ("c", [b"il"])],            # a retransmission between the halves
    [("swap", [b"evi", b"l!"]), ("c", [b"evil"])],                # out of order, then in order again
    [("c", [b"x" * 300] * 3), ("fin", [b""])],                    # the close
], ids=["past-window", "retransmission", "out-of-order", "close"])
def test_crafted_sessions_same_with_and_without_the_lane(steps):
    rules = parse(NO_PLAIN_RULES)
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))])
    assert count.taken >= 1


# ---------------------------------------------------------------------- UDP (Engine._lean_udp)
UDP_RULES = """
alert udp any any -> any any (msg:"evil anywhere"; content:"evil"; sid:11;)
drop udp any any -> any 7000 (msg:"drop marker"; content:"DROPME"; sid:12;)
alert udp any any -> any any (msg:"two-byte pattern"; content:"zq"; sid:13;)
alert ip any any -> 203.0.113.0/24 any (msg:"ip-only, first packet of a direction"; sid:14;)
alert udp any any -> any any (msg:"attack seen"; content:"attack"; flowbits:set,seen; sid:15;)
alert udp any any -> any any (msg:"again after attack"; content:"again"; flowbits:isset,seen; sid:16;)
alert dns any any -> any any (msg:"evil query"; dns.query; content:"evil.example"; nocase; sid:17;)
alert udp any any -> any any (msg:"marker on a DNS flow"; app-layer-protocol:dns; content:"MARK"; sid:18;)
"""
UDP_PLAIN_RULE = 'alert udp any any -> any 7000 (msg:"big datagram"; dsize:>600; sid:19;)'


def _dns(kind: str, name: str) -> bytes:
    """q: a query, a: an answer, z: an answer with the Z flag (an app event)."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    if kind == "q":
        return bytes(DNS(id=7, rd=1, qd=DNSQR(qname=name)))
    return bytes(DNS(id=7, qr=1, z=int(kind == "z"), qd=DNSQR(qname=name),
                     an=DNSRR(rrname=name, rdata="203.0.113.9")))


DATAGRAMS = [b"", b"data", b"evil", b"DROPME", b"zq", b"z", b"attack", b"again", b"MARK", b"x" * 700,
             "q:evil.example", "q:good.example", "a:good.example", "z:good.example"]
udp_steps = st.lists(st.tuples(st.sampled_from(["c", "s"]), st.sampled_from(DATAGRAMS)), min_size=1, max_size=24)


def udp_flow(steps, sport: int, dport: int, bad_csum_at: int = -1) -> list[bytes]:
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    out = []
    for i, (side, d) in enumerate(steps):
        if isinstance(d, str):
            d = _dns(d[0], d[2:])
        ip = IP(src=C, dst=S) if side == "c" else IP(src=S, dst=C)
        udp = UDP(sport=sport, dport=dport) if side == "c" else UDP(sport=dport, dport=sport)
        if i == bad_csum_at:
            udp.chksum = 0x1234
        out.append(bytes(e / ip / udp / d))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=udp_steps, mode=st.sampled_from(["ips", "tap", "ids"]), plain_rule=st.booleans(),
       dport=st.sampled_from([53, 7000, 5300]), bad_csum_at=st.integers(-1, 6), dns_both=st.booleans())
def test_random_udp_flows_same_with_and_without_the_lane(steps, mode, plain_rule, dport, bad_csum_at, dns_both):
    """Datagrams both ways with patterns, short patterns, flowbits, an IP-only rule, DNS
    queries and answers (either side first: a transaction rule waiting for the other
    direction's parser), answers with an app event (the parser of a direction no
    transaction rule applies to still runs), a bad checksum, empty payloads."""
    text = UDP_RULES if dns_both else UDP_RULES.replace("alert dns any any -> any any", "alert dns any any -> any 53")
    rules = parse(text + (UDP_PLAIN_RULE if plain_rule else ""))
    cfg = EngineSettings(mode=mode)
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = udp_flow(steps, 40000, dport, bad_csum_at) + udp_flow(steps, 40001, dport)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])


@pytest.mark.parametrize("dport", [53, 5300])
def test_udp_flows_take_the_lane_until_a_parser_starts(dport):
    """The lane on its own: after a direction's first datagram, clean datagrams take it; those
    holding a fast pattern, and on port 53 every query once the server answered DNS (a parser:
    the transaction rule must run), go the general path -- with the same results."""
    rules = parse(UDP_RULES)
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    steps = [("c", b"data")] * 10 + [("c", b"evil"), ("c", b"data")] \
        + [("s", "a:good.example")] + [("c", "q:evil.example"), ("c", "q:good.example")] * 3
    frames = udp_flow(steps, 40000, dport)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    # 9 after the first + 1 after the pattern; on 5300 (no DNS there) also the queries
    # without "evil" in them
    assert count.udp_taken == (10 if dport == 53 else 13), count.udp_taken


# ---------------------------------------------------------------------- ICMP echo (Engine._lean_udp)
ECHO_RULES = """
alert icmp any any -> any any (msg:"ping with a marker"; itype:8; content:"PINGME"; sid:31;)
drop icmp any any -> any any (msg:"drop marker in a request"; itype:8; icode:0; content:"DROPME"; sid:32;)
alert icmp any any -> any any (msg:"reply marker"; itype:0; content:"REPLYME"; sid:33;)
alert icmp any any -> any any (msg:"limited"; content:"LIMIT"; threshold:type limit, track by_src, count 1, seconds 60; sid:34;)
alert ip any any -> 203.0.113.0/24 any (msg:"ip-only, first packet of a direction"; sid:35;)
alert icmp any any -> any any (msg:"v6 request marker"; itype:128; content:"V6ME"; sid:36;)
alert icmp any any -> any any (msg:"odd code"; icode:>0; content:"CODE"; sid:37;)
"""
ECHO_PLAIN_RULE = 'alert icmp any any -> any any (msg:"big reply"; itype:0; dsize:>600; sid:38;)'
ECHO_PAYLOADS = [b"", b"data", b"PINGME", b"DROPME", b"REPLYME", b"LIMIT", b"V6ME", b"CODE", b"x" * 700]
echo_steps = st.lists(st.tuples(st.sampled_from(["c", "s"]), st.sampled_from(ECHO_PAYLOADS), st.sampled_from([0, 0, 0, 1])),
                      min_size=1, max_size=24)


def echo_flow(steps, ident: int, v6: bool = False, bad_csum_at: int = -1) -> list[bytes]:
    """Echo requests from the client ("c") and replies from the server ("s"), each with a
    payload and an ICMP code; one bad checksum if asked."""
    from scapy.all import ICMP, IPv6
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    out = []
    for i, (side, d, code) in enumerate(steps):
        if v6:
            ip = IPv6(src="2001:db8::1", dst="2001:db8::2") if side == "c" else IPv6(src="2001:db8::2", dst="2001:db8::1")
            msg = (ICMPv6EchoRequest if side == "c" else ICMPv6EchoReply)(id=ident, seq=i, code=code)
        else:
            ip = IP(src=C, dst=S) if side == "c" else IP(src=S, dst=C)
            msg = ICMP(type=8 if side == "c" else 0, code=code, id=ident, seq=i)
        if i == bad_csum_at:
            msg.cksum = 0x1234
        out.append(bytes(e / ip / msg / d))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=echo_steps, mode=st.sampled_from(["ips", "tap", "ids"]), plain_rule=st.booleans(),
       v6=st.booleans(), bad_csum_at=st.integers(-1, 6))
def test_random_echo_flows_same_with_and_without_the_lane(steps, mode, plain_rule, v6, bad_csum_at):
    """Echo requests and replies with patterns of request rules, reply rules and rules of
    either type, a drop rule, a threshold, an IP-only rule, codes other than 0, a bad
    checksum, empty and large payloads: the lane changes nothing."""
    rules = parse(ECHO_RULES + (ECHO_PLAIN_RULE if plain_rule else ""))
    cfg = EngineSettings(mode=mode)
    lean, plain = Engine(rules, cfg), Engine(rules, cfg)
    frames = echo_flow(steps, 7, v6, bad_csum_at) + echo_flow(steps, 8, v6)
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])


@pytest.mark.parametrize("v6", [False, True], ids=["icmp", "icmpv6"])
def test_echo_flows_take_the_lane_and_the_data_plane_s_scan_knows_the_types(v6):
    """After each direction's first echo, clean echoes take the lane, requests and replies;
    a request with a marker runs the rules (and alerts, as without the lane).  A ping's
    reply carries the request's payload, the pattern of an `itype:8` rule (sid 31): the
    engine's lane sends it down the general path (whose detection counts that rule as
    evaluated), but the scan the data plane is offered for the reply direction leaves the
    pattern out, so the data plane forwards such replies itself."""
    rules = parse(ECHO_RULES)
    lean, plain = Engine(rules, EngineSettings(mode="ips")), Engine(rules, EngineSettings(mode="ips"))
    count = Counting(lean)
    marker = b"V6ME" if v6 else b"PINGME"
    steps = [("c", b"data" + marker, 0), ("s", b"data" + marker, 0)] * 4 + [("c", b"data", 0), ("s", b"data", 0)] * 4
    frames = echo_flow(steps, 9, v6)
    seen: list = []
    lockstep(lean, plain, [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(frames)])
    assert count.udp_taken == 8, count.udp_taken          # the clean echoes after the first of each
    # the 4 markers, and on IPv4 the IP-only rule once
    assert sum(plain.hits.values()) == 4 + (0 if v6 else 1) and lean.hits == plain.hits
    other = Engine(rules, EngineSettings(mode="ips"))
    for i, f in enumerate(frames[:2]):
        seen.append(other.inspect(f, FrameMeta(1.7e9 + i * 0.001, "eth0")).bypass)
    request, reply = seen
    assert request.action == reply.action == "scan" and request.to_server and not reply.to_server
    assert request.scan(b"data" + marker) and not request.scan(b"data")
    assert not reply.scan(b"data" + marker)                # the itype:8 pattern is not the reply's
    assert reply.scan(b"REPLYME") if not v6 else not reply.scan(b"REPLYME")   # sid 33 is itype:0 (ICMPv4)


@pytest.mark.parametrize("v6", [False, True], ids=["icmp", "icmpv6"])
def test_an_echo_offer_says_which_echoes_may_leave_before_they_are_inspected(v6):
    """Bypass.late of an echo direction's offer: the fast patterns of the rules that take
    the direction and could change a verdict -- a drop (sid 32, itype:8) in the requests
    -- so a request holding only alert patterns may leave first, one holding DROPME not;
    the replies have no such rule: any of them may (None).  A threshold.config
    rate_filter that turns an alert rule into a drop puts that rule's pattern in too; a
    rate_filter to alert does not."""
    from rules.threshold_config import apply, parse as parse_thresholds

    marker = b"V6ME" if v6 else b"PINGME"
    frames = echo_flow([("c", b"data", 0), ("s", b"data", 0)], 9, v6)

    def offers(rate: str = ""):
        rules = parse(ECHO_RULES)
        if rate:
            assert not apply(parse_thresholds(rate).entries, rules)
        eng = Engine(rules, EngineSettings(mode="ips"))
        return [eng.inspect(f, FrameMeta(1.7e9 + i * 0.001, "eth0")).bypass for i, f in enumerate(frames)]

    request, reply = offers()
    if v6:
        # sid 32 (itype:8, an ICMPv4 type) cannot take an ICMPv6 request: nothing there drops
        assert request.late is None
    else:
        assert request.late(b"xxDROPMExx") and not request.late(b"data" + marker) and not request.late(b"LIMIT")
    assert reply.late is None
    sid = 36 if v6 else 31                                           # the request's alert rule
    request, reply = offers(f"rate_filter gen_id 1, sig_id {sid}, track by_src, count 1, seconds 60, "
                            "new_action drop, timeout 10\n")
    assert request.late(b"data" + marker) and reply.late is None
    request, reply = offers(f"rate_filter gen_id 1, sig_id {sid}, track by_src, count 1, seconds 60, "
                            "new_action alert, timeout 10\n")
    assert request.late is None if v6 else not request.late(b"data" + marker)
