"""A fast pattern its content anchors is looked for only at its place (rules.payload.
content_anchor): `content:"|18 03|"; depth:2;` (ET's heartbleed rules, packet payload) or
`http.host; content:"2"; depth:1;` (ET's "Dotted Quad Host M2", a transaction buffer) can only
match there, so a buffer holding the literal elsewhere makes the rule no candidate.

The place must be right, or a rule that would match is never tried: held here to the chain's
own matching on random chains and buffers (a chain that matches a buffer always has its fast
pattern at the place content_anchor gives), and on transactions through both candidate
selections (rules/_txdetect.c and its Python reference)."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rules.detect_tx as detect_tx
from rules.engine import Engine
from rules.payload import ByteJump, Content, IsDataAt, PayloadChain, Pcre, content_anchor
from rules.settings import EngineSettings
from tests.unit.test_engine_lean_lane import parse, session


def c(pattern: bytes, **kw) -> Content:
    it = Content(pattern, **kw)
    if it.nocase:
        it.lpattern = pattern.lower()
    return it


@pytest.mark.parametrize("items, lit, nocase, want", [
    ([c(b"\x18\x03", depth=2)], b"\x18\x03", False, (0, 2)),
    ([c(b"LP", offset=34, depth=2)], b"LP", False, (34, 36)),
    ([c(b"abc")], b"abc", False, None),                                    # no depth: anywhere
    ([c(b"\xac\xed", within=2)], b"\xac\xed", False, (0, 2)),              # first, relative to 0
    ([c(b"ab", distance=3, within=4)], b"ab", False, (3, 7)),
    ([c(b"ab", distance=-2, within=4)], b"ab", False, (0, 2)),
    ([c(b"x", depth=1), c(b"ab", distance=0, within=4)], b"ab", False, None),   # after a match: moves
    ([c(b"x", negated=True, depth=1), c(b"ab", within=4)], b"ab", False, (0, 4)),  # a negated one does not
    ([IsDataAt(5), c(b"ab", within=4)], b"ab", False, (0, 4)),
    ([Pcre(None, "/a/"), c(b"ab", within=4)], b"ab", False, None),
    ([ByteJump(1, 0), c(b"ab", within=4)], b"ab", False, None),
    ([c(b"ab", negated=True, depth=2)], b"ab", False, None),                 # negated: no place to be
    ([c(b"abcd", depth=4, fast_pattern_chop=(1, 2))], b"bc", False, None),   # a chopped literal
    ([c(b"Ab", nocase=True, depth=2)], b"aB", True, (0, 2)),
    ([c(b"Ab", depth=2)], b"Ab", True, None),                                # caseless literal, cased content
    ([c(b"zz"), c(b"ab", offset=1, depth=3)], b"ab", False, (1, 4)),         # absolute: anywhere in the chain
])
def test_the_place_of_a_fast_pattern(items, lit, nocase, want):
    assert content_anchor(items, lit, nocase) == want


_bytes = st.lists(st.sampled_from([b"a", b"b", b"ab", b"ba", b"x", b"A"]), max_size=12).map(b"".join)
_rarely = st.sampled_from([False, False, False, True])
_content = st.builds(
    lambda pat, neg, nocase, off, depth, dist, within, rel: c(
        pat, negated=neg, nocase=nocase,
        offset=None if rel else off, depth=None if rel else depth,
        distance=dist if rel else None, within=within if rel else None),
    st.sampled_from([b"a", b"b", b"ab", b"ba", b"x"]), _rarely, _rarely,
    st.none() | st.integers(0, 4), st.integers(1, 6) | st.none(),
    st.integers(-3, 4) | st.none(), st.integers(1, 6) | st.none(), st.booleans())


@st.composite
def _chain_and_buffer(draw):
    """A chain, and a buffer made mostly of its patterns with filler between (so that it
    often matches), or any buffer."""
    items = draw(st.lists(_content | st.builds(IsDataAt, st.integers(0, 6)), min_size=1, max_size=4))
    pats = [it.pattern for it in items if type(it) is Content]
    parts = draw(st.lists(st.sampled_from(pats + [b"x", b"y", b"yy"]) if pats else st.just(b"y"), max_size=8))
    buf = draw(st.just(b"".join(parts)) | _bytes)
    return items, buf


@settings(max_examples=3000, deadline=None)
@given(chain_buf=_chain_and_buffer(), pick=st.integers(0, 3))
@example(chain_buf=([c(b"x", depth=1), c(b"ab", distance=0, within=2)], b"xab"), pick=1)
def test_a_matching_chain_has_its_fast_pattern_at_its_place(chain_buf, pick):
    """Any content of the chain as its fast pattern: when the chain matches a buffer, the
    literal lies in [start, end) of it (caseless as the content).  (The example: a relative
    content after a match has no place of its own.)"""
    items, buf = chain_buf
    contents = [it for it in items if type(it) is Content]
    if not contents:
        return
    fp = contents[pick % len(contents)]
    lit = fp.lpattern if fp.nocase else fp.pattern
    at = content_anchor(items, lit, fp.nocase)
    if at is None or not PayloadChain(items).match(buf):
        return
    w = buf[at[0]:at[1]]
    assert lit in (w.lower() if fp.nocase else w), (items, buf, at)


TX_RULES = """
alert http any any -> any any (msg:"host starts with 2"; flow:to_server; http.host; content:"2"; depth:1; sid:1;)
alert http any any -> any any (msg:"host holds 2"; flow:to_server; http.host; content:"2"; sid:2;)
alert http any any -> any any (msg:"body starts ac ed"; flow:to_client; file.data; content:"|ac ed|"; within:2; sid:3;)
alert http any any -> any any (msg:"body holds ac ed"; flow:to_client; file.data; content:"|ac ed|"; sid:4;)
"""


def _run(host: bytes, body: bytes, impl, monkeypatch) -> tuple[dict, list]:
    """One request and response through an engine whose candidate selection is `impl`: the
    alerts by sid, and every call's candidates (sids)."""
    calls: list = []

    def recorded(txd, tx, d, memo, pkt, proto):
        got = impl(txd, tx, d, memo, pkt, proto)
        calls.append((d, [s.rule.sid for s in got]))
        return got

    monkeypatch.setattr(detect_tx, "_CANDIDATES", recorded)
    e = Engine(parse(TX_RULES), EngineSettings(mode="ips"))
    steps = [("c", [b"GET /x HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body]), ("ack", [b""]),
             ("fin", [b""])]
    front = e.front()
    from rules.api import FrameMeta

    for n, f in enumerate(session(steps, 40000), 1):
        front(f, FrameMeta(1.7e9 + n * 0.001, "eth0"))
    e.finish()
    return {sid: n for (_g, sid), n in e.hits.items()}, calls


@pytest.mark.parametrize("host, body, want", [
    (b"198.51.100.2", b"xx\xac\xed rest", {2: 1, 4: 1}),
    (b"2.0.0.1", b"\xac\xed rest", {1: 1, 2: 1, 3: 1, 4: 1}),
])
def test_anchored_transaction_patterns_through_both_candidate_selections(host, body, want, monkeypatch):
    """http.host `content:"2"; depth:1;` and file.data's first `content:"|ac ed|"; within:2;`:
    a candidate (and a match) only where the literal is at its place; the unanchored twins
    wherever it is.  The compiled selection answers as the Python one, call for call."""
    assert detect_tx._txdetect is not None
    got_c, calls_c = _run(host, body, detect_tx._txdetect.candidates, monkeypatch)
    got_py, calls_py = _run(host, body, detect_tx.TxDetector._candidates_py, monkeypatch)
    assert got_c == got_py == want
    assert calls_c == calls_py
    tried = {sid for _d, sids in calls_c for sid in sids}
    assert tried == set(want), calls_c        # 1 and 3 not even tried where their literal is elsewhere
