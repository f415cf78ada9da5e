"""The app layer's shortcut for body content (rules.applayer.http_body.Body.take_content,
rules.applayer.http.Parser.take, AppLayer.take_tcp, StreamEngine.app_next, used by
Engine._app_segment): a segment that only continues a plain body is taken without the
parser's general walk.  It must leave every piece of state as `feed` leaves it.  Checked
three ways: a body fed piece by piece through the shortcut (where it applies) against
`feed` alone; the HTTP parser the same way over whole messages; and engines in lockstep,
one with the shortcut and one without, over random HTTP sessions."""
from __future__ import annotations

import gzip

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.applayer.http import Parser
from rules.applayer.http import Settings as HttpSettings
from rules.applayer.http_body import Body
from rules.engine import Engine
from rules.settings import EngineSettings, StreamSettings
from tests.unit.test_engine_lean_lane import drive, parse, session
from tests.unit.test_lanes_compiled import Front, flow_table


def body_state(b: Body) -> tuple:
    return tuple(len(getattr(b, k)) if k == "_layers" else bytes(getattr(b, k)) if k == "data"
                 else list(getattr(b, k)) if isinstance(getattr(b, k), list) else getattr(b, k)
                 for k in Body.__slots__ if k != "_bytes")


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out


def chunked(data: bytes, size: int) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


bodies = st.tuples(st.sampled_from(["length", "chunked", "close", "gzip"]), st.integers(0, 5000),
                   st.integers(1, 3000), st.sampled_from([0, 1, 100, 2000, 100000]), st.booleans())


@settings(max_examples=300, deadline=None)
@given(kind=bodies, sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=5), extra=st.binary(max_size=20))
def test_body_take_content_leaves_the_state_feed_leaves(kind, sizes, extra):
    """Each piece through take_content where it takes it, else feed, against feed alone:
    the same state after every piece, whatever the framing, limit and piece sizes (the
    pieces run on past the body's end into what follows it)."""
    how, n, chunk, limit, to_server = kind
    content = bytes((i * 7) & 0xFF for i in range(n))
    if how == "chunked":
        wire, args = chunked(content, chunk), (True, None)
    elif how == "gzip":
        wire = gzip.compress(content)
        args = (False, len(wire))
    else:
        wire, args = content, (False, n if how == "length" else None)
    enc = b"gzip" if how == "gzip" else b""
    a = Body(*args, enc, limit, to_server=to_server)
    b = Body(*args, enc, limit, to_server=to_server)
    took = 0
    for piece in cut(wire + extra, sizes):
        if a.take_content(piece):
            took += 1
            used_a = len(piece)
        else:
            used_a = a.feed(piece)
        assert used_a == b.feed(piece)
        assert body_state(a) == body_state(b)
        if a.done:
            break
    if how == "close" and wire + extra or how == "length" and sizes[0] < n:
        assert took, "the shortcut never applied"


def test_body_take_content_refuses_what_feed_must_walk():
    """A coded body, a chunk-size line, the piece that completes a length, a done body."""
    coded = Body(False, 100, b"gzip", 1000, to_server=False)
    assert not coded.take_content(b"x")
    ch = Body(True, None, b"", 1000, to_server=False)
    assert not ch.take_content(b"5\r\n")               # a size line
    ch.feed(b"a\r\n")
    assert ch.take_content(b"12345")                   # in the chunk, 5 of 10 left after
    assert not ch.take_content(b"12345")               # ends the chunk: the walk's
    ln = Body(False, 10, b"", 1000, to_server=False)
    assert ln.take_content(b"123456789") and not ln.take_content(b"0")
    ln.feed(b"0")
    assert ln.done and not ln.take_content(b"x")
    close = Body(False, None, b"", 4, to_server=False)
    assert close.take_content(b"abcdef") and bytes(close.data) == b"abcd" and close.raw_len == 6


def parser_state(p: Parser) -> tuple:
    sides = tuple((bytes(s.buf), s.state, s.gone, s.tx.id if s.tx else None,
                   body_state(s.body) if s.body is not None else None) for s in p.sides)
    txs = tuple((tx.id, tuple(tx.progress), tuple(tx.body_grew),
                 *(body_state(b) if b is not None else None for b in (tx.req_body, tx.resp_body))) for tx in p.txs)
    return sides, txs, p.gen, list(p.events), p.failed


MESSAGES = st.sampled_from([
    b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + b"a" * 3000,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"b" * 3000, 1100),
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n" + gzip.compress(b"c" * 10)[:30],
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\n" + b"d" * 2500,
])


@settings(max_examples=200, deadline=None)
@given(msgs=st.lists(MESSAGES, min_size=1, max_size=3), sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=4),
       min_inspect=st.sampled_from([0, 1000, 2000, 40000]), limit=st.sampled_from([500, 2600, 100000]))
def test_parser_take_leaves_the_state_feed_leaves(msgs, sizes, min_inspect, limit):
    """A response stream (after as many requests) cut into pieces: take where it applies,
    else feed, against feed alone -- the same parser state, gen and body growth marks after
    every piece, bodies crossing their minimal inspect size and their limit included."""
    s = HttpSettings(response_body_minimal_inspect_size=min_inspect, response_body_limit=limit)
    a, b = Parser(s), Parser(s)
    for p in (a, b):
        p.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * len(msgs), True)
    taken = 0
    for piece in cut(b"".join(msgs), sizes):
        for tx in a.txs + b.txs:
            tx.body_grew = [False, False]          # (detection resets them after each packet)
        if a.take(piece, False):
            taken += 1
        else:
            a.feed(piece, False)
        b.feed(piece, False)
        assert parser_state(a) == parser_state(b)
    if any(m.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 3000") for m in msgs) and max(sizes) < 1000:
        assert taken


RULES = """
alert tcp any any -> any any (msg:"a packet pattern"; content:"evil"; sid:1;)
alert http any any -> any any (msg:"admin uri"; flow:to_server; http.uri; content:"/admin"; sid:21;)
drop http any any -> any any (msg:"drop a body"; file.data; content:"DROPBODY"; sid:23;)
alert http any any -> any any (msg:"a mark in a complete body"; file.data; content:"MARK"; isdataat:!1,relative; sid:46;)
alert http any any -> any any (msg:"a marked packet of a 200"; flow:to_client; pkt_data; content:"BIG"; http.stat_code; content:"200"; sid:40;)
"""
http_chunks = st.lists(st.sampled_from([
    b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", b"POST /up HTTP/1.1\r\nContent-Length: 3000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"bb8\r\n", b"\r\n0\r\n\r\n",
    b"y" * 1448, b"y" * 600, b"BIG", b"DROP", b"BODY", b"MARK", b"evil"]), min_size=1, max_size=8)
http_ops = st.lists(st.tuples(st.sampled_from(["c", "s", "s", "ack", "retx", "fin"]), http_chunks),
                    min_size=1, max_size=10)


def app_detail(engine: Engine) -> list:
    """Each flow's HTTP parser state (parser_state), its idle marks, the progress marks the
    app layer last saw (AppLayer._events) and its transactions' detection state."""
    out = []
    for f in engine.flows.table().values():
        p = f.app.parser if f.app is not None else None
        if p is not None:
            out.append((parser_state(p), list(p.tx_idle), dict(f.app.marks),
                        [(tuple(sorted(d) for d in tx.inspected), tuple(tx.final)) for tx in p.txs]))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=http_ops, mode=st.sampled_from(["ips", "tap"]), min_inspect=st.sampled_from([0, 2000, 40000]))
def test_random_http_sessions_same_with_and_without_the_shortcut(steps, mode, min_inspect):
    """Two engines over the same traffic, the second with the shortcut off (its stream
    never says the segment is the app layer's next alone): the same results, stats, flow
    table, app state and transaction state after every frame."""
    rules = parse(RULES)
    http = HttpSettings(response_body_minimal_inspect_size=min_inspect, request_body_minimal_inspect_size=min_inspect)
    cfg = EngineSettings(mode=mode, stream=StreamSettings(depth=0), app={"http": http})
    a, b = Engine(rules, cfg), Engine(rules, cfg)
    b.streams.app_next = lambda flow, me, n: False
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))]
    drive(a, b, frames, a.front(), b.front(), observe=(Engine.stats, flow_table, app_detail))


FALLBACKS = 3                 # the handshake


def _long_body(call: str) -> tuple[list, Front | None, int]:
    """A 20-segment response body through `inspect` or `front()`: what Parser.take answered,
    the front (its fallbacks counted) and how often the compiled lane called _lane_app."""
    rules = parse(RULES)
    eng = Engine(rules, EngineSettings(mode="ips"))
    took = []
    orig = Parser.take
    lane_app = eng._lane_app
    apps = []

    def counted(self, data, to_server):
        r = orig(self, data, to_server)
        took.append(r)
        return r

    def app(*args):
        apps.append(1)
        return lane_app(*args)

    Parser.take = counted
    eng._lane_app = app
    try:
        steps = [("c", [b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"]),
                 ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 28960\r\n\r\n"])]
        steps += [("ack", [b""]), ("s", [b"y" * 1448])] * 20
        front = Front(eng) if call == "front" else None
        from rules.api import FrameMeta
        for i, f in enumerate(session(steps, 40000)):
            (front or eng.inspect)(f, FrameMeta(1.7e9 + i * 0.001, "eth0"))
    finally:
        Parser.take = orig
    return took, front, len(apps)


def test_a_long_body_is_taken_through_the_shortcut():
    """A 20-segment response body: through `inspect`, every segment but the last goes
    through Parser.take; through `front()`, the compiled body lane takes those 19 itself
    (no Parser.take, no _lane_app: only the request, the headers and the last segment
    reach Python), and only the handshake falls back to `inspect`."""
    took, _, _ = _long_body("inspect")
    assert took.count(True) == 19, took
    took, front, apps = _long_body("front")
    assert took.count(True) == 0 and apps == 3, (took, apps)
    # the compiled lane answers every ACK between them too: a body segment whose transaction
    # rules are idle leaves nothing fed for the ACK to run
    assert front.fallbacks == FALLBACKS, front.fallbacks


def test_a_body_crossing_its_minimal_inspect_size_is_inspected_on_that_segment():
    """The segment through the shortcut that brings the body to its minimal inspect size
    runs the body rules on that very packet (the parser was fed: detection runs), as
    without the shortcut."""
    rules = parse(RULES)
    http = HttpSettings(response_body_minimal_inspect_size=2000)
    cfg = EngineSettings(mode="ips", app={"http": http})
    a, b = Engine(rules, cfg), Engine(rules, cfg)
    b.streams.app_next = lambda flow, me, n: False
    steps = [("c", [b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 6000\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"y" * 1448]), ("ack", [b""]), ("s", [b"y" * 700 + b"DROPBODY" + b"y" * 700]), ("ack", [b""]),
             ("s", [b"y" * 1448])]
    frames = [(1.7e9 + i * 0.001, f, ("eth0",)) for i, f in enumerate(session(steps, 40000))]
    got = []
    front = a.front()

    def watched(frame, meta):
        r = front(frame, meta)
        got.append(r.verdict.name)
        return r

    drive(a, b, frames, watched, b.front(), observe=(Engine.stats, flow_table, app_detail))
    assert got.index("DROP") == 8, got           # the segment holding DROPBODY, past 2000 bytes


def test_take_tcp_notes_progress_as_feed_tcp_does():
    """AppLayer.take_tcp sees the transactions' progress as feed_tcp would (its marks): here
    the request's body was cut short by the client's FIN (AppLayer.end, which notes
    nothing) before the response's body goes on."""
    from types import SimpleNamespace

    from rules.applayer import AppLayer, AppState

    def flow():
        st = AppState()
        st.proto, st.parser = "http", Parser(HttpSettings())
        return SimpleNamespace(app=st)

    apps, flows = (AppLayer(["http"]), AppLayer(["http"])), (flow(), flow())
    for app, f in zip(apps, flows):
        app.feed_tcp(f, True, b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
        app.feed_tcp(f, False, b"HTTP/1.1 413 Too Large\r\nContent-Length: 5000\r\n\r\nzz")
        app.end(f, True)
    assert apps[0].take_tcp(flows[0].app, False, b"z" * 100)
    apps[1].feed_tcp(flows[1], False, b"z" * 100)
    assert flows[0].app.marks == flows[1].app.marks and flows[0].app.fed and flows[1].app.fed
    assert parser_state(flows[0].app.parser) == parser_state(flows[1].app.parser)
