"""A growing HTTP body is prefiltered on the bytes it grew by (rules.detect_tx _grown), not
scanned whole again on every packet -- and that changes nothing a rule sees.

A 256 KiB response scanned its whole body (up to response-body-limit, 100 KiB) on every
one of its ~180 packets: with ET Open that was about 60 us of a frame's engine time.  The
scan now covers the added bytes and the `overlap` before them.  Checked here against the
engine with that switched off (every slot scanning whole, as before): the same alerts on
the same packets, whatever the body, the needles' places (across segment boundaries, the
minimal inspect size, the body limit) and the segment sizes.

Also here: the candidate list a transaction keeps settled per direction (rules without a
fast pattern, slots whose set is final) equals, on every packet, a fresh look at every slot.
"""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from rules.api import FrameMeta
from rules.applayer.http import Settings as HttpSettings
from rules.engine import Engine
from rules.parser import parse_rule
from rules.settings import EngineSettings

NEEDLES = [b"GROWING-NEEDLE-ONE", b"needle two", b"3333", b"\x00\xffNUL-FF"]
RULES = [
    'alert http any any -> any any (msg:"file.data one"; file.data; content:"GROWING-NEEDLE-ONE"; sid:1;)',
    'alert http any any -> any any (msg:"body two nocase"; http.response_body; content:"NEEDLE TWO"; nocase; sid:2;)',
    'alert http any any -> any any (msg:"file.data short"; file.data; content:"3333"; sid:3;)',
    'alert http any any -> any any (msg:"binary"; file.data; content:"|00 ff|NUL-FF"; sid:4;)',
    # two contents: the fast pattern found early, the other one only later in the body
    'alert http any any -> any any (msg:"two parts"; file.data; content:"needle two"; '
    'content:"GROWING-NEEDLE-ONE"; distance:0; sid:5;)',
    # transformed: scanned whole every time (not a growing slot)
    'alert http any any -> any any (msg:"dotprefixed"; file.data; dotprefix; content:"GROWING-NEEDLE-ONE"; sid:6;)',
]
# small sizes, so that bodies cross the minimal inspect size and the limit in a few segments
HTTP = HttpSettings(response_body_limit=6000, response_body_minimal_inspect_size=2000)


def _engine(grows: bool) -> Engine:
    e = Engine([parse_rule(r) for r in RULES], EngineSettings(mode="ips", app={"http": HTTP}))
    if not grows:
        for slots in e.detector.tx.slots.values():
            for slot in slots:
                slot.grows = False
    return e


def _session(e: Engine, requests: bytes, responses: bytes, req_sizes: list[int],
             resp_sizes: list[int]) -> tuple[list[list[int]], list[int]]:
    """A TCP session to port 80: `requests` in pieces of `req_sizes`, then `responses` in
    pieces of `resp_sizes` (cycled), each acknowledged, then the client's FIN and the
    server's.  Returns the sids alerted on each server piece and on the two FINs, and every
    sid alerted on the session."""
    c = Ether() / IP(src="198.51.100.1", dst="203.0.113.1")
    s = Ether() / IP(src="203.0.113.1", dst="198.51.100.1")
    t = [0.0]
    every: list[int] = []

    def send(p) -> list[int]:
        t[0] += 0.001
        r = e.inspect(bytes(p), FrameMeta(t[0], "eth0"))
        sids = sorted(ev.sid for ev in r.events if type(ev).__name__ == "Alert")
        every.extend(sids)
        return sids

    def pieces(data: bytes, sizes: list[int]):
        off = k = 0
        while off < len(data):
            piece = data[off:off + sizes[k % len(sizes)]]
            yield piece
            off += len(piece)
            k += 1

    cseq, sseq = 1000, 5000
    send(c / TCP(sport=40000, dport=80, flags="S", seq=cseq - 1))
    send(s / TCP(sport=80, dport=40000, flags="SA", seq=sseq - 1, ack=cseq))
    send(c / TCP(sport=40000, dport=80, flags="A", seq=cseq, ack=sseq))
    for piece in pieces(requests, req_sizes):
        send(c / TCP(sport=40000, dport=80, flags="PA", seq=cseq, ack=sseq) / piece)
        cseq += len(piece)
    out = []
    for piece in pieces(responses, resp_sizes):
        out.append(send(s / TCP(sport=80, dport=40000, flags="PA", seq=sseq, ack=cseq) / piece))
        sseq += len(piece)
        send(c / TCP(sport=40000, dport=80, flags="A", seq=cseq, ack=sseq))
    out.append(send(c / TCP(sport=40000, dport=80, flags="FA", seq=cseq, ack=sseq)))
    out.append(send(s / TCP(sport=80, dport=40000, flags="FA", seq=sseq, ack=cseq + 1)))
    return out, every


def _alerts_per_segment(e: Engine, body: bytes, sizes: list[int]) -> list[list[int]]:
    """A GET and a Content-Length response sent in segments of `sizes` (cycled): the sids
    alerted on each server segment, then on the client's FIN and the server's."""
    req = b"GET /file HTTP/1.1\r\nHost: h.example\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    return _session(e, req, resp, [len(req)], sizes)[0]


def _body(size: int, places: list[tuple[int, int]], seed: int) -> bytes:
    body = bytearray(random.Random(seed).choice(b"abcdefghij .") for _ in range(size))
    for which, at in places:
        needle = NEEDLES[which % len(NEEDLES)]
        if at + len(needle) > size:
            at %= max(1, size - len(needle))
        body[at:at + len(needle)] = needle
    return bytes(body)


def test_a_needle_across_the_segments_after_the_minimal_inspect_size_alerts_where_a_whole_scan_does():
    # 1000-byte segments: the body holds 3000 - len(headers) bytes after the third, the
    # first scan (past the minimal inspect size, 2000); each needle starts before that end
    # and ends after it, so only the overlap finds it on the fourth
    head = len(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")
    edge = 3000 - head
    needle = NEEDLES[0]
    for at in range(edge - len(needle) + 1, edge):
        body = bytearray(b"." * 5000)
        body[at:at + len(needle)] = needle
        body = bytes(body)
        grown = _alerts_per_segment(_engine(True), body, [1000])
        assert grown == _alerts_per_segment(_engine(False), body, [1000]), at
        hits = [i for i, sids in enumerate(grown) if 1 in sids]
        assert hits == [3], (at, grown)          # the fourth data segment, as a whole scan


def test_a_needle_past_the_body_limit_never_alerts_in_either():
    body = b"." * 7000 + NEEDLES[0] + b"." * 100              # past response-body-limit (6000)
    grown = _alerts_per_segment(_engine(True), body, [1400])
    assert grown == _alerts_per_segment(_engine(False), body, [1400])
    assert all(1 not in sids for sids in grown)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(100, 9000),
       places=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 9000)), max_size=4),
       edges=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30), st.integers(1, 17)), max_size=3),
       sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_growing_scans_give_the_same_alerts_on_the_same_packets(size, places, edges, sizes, seed):
    """Needles anywhere, and needles across the end of the body as a segment leaves it
    (`edges`: which needle, which segment, how many of its bytes before the end)."""
    head = len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    ends = []
    total = 0
    for k in range(40):
        total += sizes[k % len(sizes)]
        ends.append(total - head)
    for which, seg, before in edges:
        places = places + [(which, max(0, ends[seg] - before))]
    body = _body(size, places, seed)
    assert _alerts_per_segment(_engine(True), body, sizes) == _alerts_per_segment(_engine(False), body, sizes)


def test_the_growing_body_is_scanned_on_its_new_bytes_only():
    """The prefilter sees each body byte about once (plus the overlaps), not the whole body
    per packet: counted through the slot databases' scan."""
    e = _engine(True)
    scanned: list[int] = []
    for slots in e.detector.tx.slots.values():
        for slot in slots:
            if slot.grows:
                real = slot.db.scan

                def counting(data, real=real):
                    scanned.append(len(data))
                    return real(data)

                slot.db.scan = counting
    _alerts_per_segment(e, b"x" * 5800, [500])
    growing = sum(1 for slots in e.detector.tx.slots.values() for sl in slots if sl.grows)
    assert growing >= 2 and scanned
    overlap = max(len(n) for n in NEEDLES)
    assert sum(scanned) <= growing * (5800 + overlap * len(scanned))


def _naive_candidates(det, tx, d, memo, pkt, proto):
    """The candidate list as it was worked out on every packet before ("cands", d) kept the
    settled part: every slot looked at, found sets read from tx.found or computed afresh
    (without storing anything)."""
    from rules.detect import _order_key

    out = []
    for s in det.sigs:       # the rules without a fast pattern whose part for direction d is of `proto`
        for sp in (s.rule.app, s.rule.app.other):
            if sp is not None and sp.to_server == d and sp.fp is None and sp.proto == proto \
                    and det._ok(memo, det.bucket[s.order], pkt):
                out.append(s)
    for slot in det.slots[d]:
        if slot.proto != proto or tx.progress[slot.side] < slot.progress:
            continue
        got = tx.found.get(id(slot))
        if got is None:
            got = set()
            for v in slot.values(tx):
                if v:
                    got |= slot.db.scan(v)
        for pid in got:
            out.extend(s for s in slot.by_pid[pid] if det._ok(memo, det.bucket[s.order], pkt))
    return sorted(out, key=_order_key)


def test_the_settled_candidates_are_the_ones_a_fresh_look_finds():
    """Requests and responses pipelined on one flow (header, URI and body rules, both
    directions): on every call the candidates equal what a look at every slot gives, and
    a rule of another protocol is never among them."""
    rules = RULES + [
        'alert http any any -> any any (msg:"uri"; http.uri; content:"/file"; sid:10;)',
        'alert http any any -> any any (msg:"ua"; http.user_agent; content:"agent"; sid:11;)',
        'alert http any any -> any any (msg:"server"; http.server; content:"srv"; file.data; content:"3333"; sid:12;)',
        'alert http any any -> any any (msg:"no fast pattern"; http.stat_code; pcre:"/^2/"; sid:13;)',
        # as ET's JARM rules: a TLS rule whose content is the payload's, so no fast pattern of
        # a TLS buffer; never a candidate on an HTTP transaction
        'alert tls any any -> any any (msg:"tls, no fast pattern"; tls.version:1.2; content:"|16 03|"; sid:14;)',
    ]
    e = Engine([parse_rule(r) for r in rules], EngineSettings(mode="ips", app={"http": HTTP}))
    det = e.detector.tx
    real = det._candidates
    calls = []

    def checked(tx, d, memo, pkt, proto):
        want = _naive_candidates(det, tx, d, memo, pkt, proto)
        got = real(tx, d, memo, pkt, proto)
        assert list(got) == want
        calls.append(len(got))
        return got

    det._candidates = checked
    reqs = b"".join(b"GET /file%d HTTP/1.1\r\nHost: h\r\nUser-Agent: agent%d\r\n\r\n" % (i, i) for i in range(3))
    body = _body(4500, [(2, 3000), (0, 100)], 3)
    resps = b"".join(b"HTTP/1.1 200 OK\r\nServer: srv\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                     for _ in range(3))
    _per_piece, sids = _session(e, reqs, resps, [50], [700])
    assert len(calls) > 20 and max(calls) >= 2
    # each transaction: uri, user agent, stat code, the body needles (3333, and the one at 100
    # as itself and dotprefixed), the server with a body needle
    assert sorted(sids) == sorted([10, 11, 13, 1, 3, 6, 12] * 3)


def test_file_data_and_the_response_body_are_one_slot_scanned_once():
    """file.data is the body http.response_body is (one getter): one database holds the fast
    patterns of both buffers' rules, and the body is scanned once for them."""
    e = _engine(True)
    resp = [sl for sl in e.detector.tx.slots[False] if sl.grows and not sl.side]
    assert len(resp) == 1, resp
    sids = {s.rule.sid for sigs in resp[0].by_pid.values() for s in sigs}
    assert sids == {1, 2, 3, 4, 5}, sids           # file.data (1, 3, 4, 5) and http.response_body (2)
    body = _body(5000, [(0, 2500), (1, 4000)], 7)
    got = _alerts_per_segment(e, body, [700])
    assert sorted(s for seg in got for s in seg) == [1, 2, 6]       # (5 wants needle two first)
