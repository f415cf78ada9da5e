"""The HTTP/1.x parser (rules.applayer.http) and transaction matching (rules.detect_tx).

What Suricata does with each buffer is pinned by the differential fixtures
(tests/replay/app_http.py); here: the parser's own contract -- any split of the
stream gives the same transactions, pipelining, interim responses, HTTP/0.9,
limits, never raising -- and the detect stage's once-per-transaction rule.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.applayer import AppLayer
from rules.applayer.base import DONE
from rules.applayer.http import (
    LINE,
    Parser,
    Settings,
    _remove_dot_segments_walk,
    normalize_uri,
    probe,
    remove_dot_segments,
    split_uri,
)
from rules.parser import parse_rule

REQ = (b"GET /a/./b?q=%41 HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nUser-Agent: UA/1\r\nX-Dup: one\r\n"
       b"Cookie: c=1\r\nX-Dup: two\r\n\r\n")
REQ2 = b"POST /second HTTP/1.1\r\nHost: b.example\r\nContent-Length: 0\r\n\r\n"


def buffers(tx) -> dict:
    from rules.applayer.registry import BUFFERS

    return {name: b.get(tx) for name, b in BUFFERS.items() if b.proto == "http" and not b.body}


def feed_all(pieces, to_server=True, settings_=None) -> Parser:
    p = Parser(settings_)
    for piece in pieces:
        p.feed(piece, to_server)
    return p


def test_request_buffers():
    (tx,) = feed_all([REQ]).txs
    b = buffers(tx)
    assert tx.progress[1] == DONE and tx.progress[0] == 0
    assert b["http.method"] == b"GET" and b["http.protocol"] == b"HTTP/1.1"
    assert b["http.uri"] == b"/a/b?q=A" and b["http.uri.raw"] == b"/a/./b?q=%41"
    assert b["http.host"] == b"WWW.Example.com" and b["http.host.raw"] == b"WWW.Example.com:8080"
    assert b["http.user_agent"] == b"UA/1" and b["http.cookie"] == b"c=1"
    # repeated headers are one, in the first one's place; Cookie is not in http.header
    assert b["http.header"] == (b"Host: WWW.Example.com:8080\r\nUser-Agent: UA/1\r\nX-Dup: one, two\r\n")
    assert b["http.header_names"] == b"\r\nHost\r\nUser-Agent\r\nX-Dup\r\nCookie\r\n\r\n"
    assert b["http.request_line"] == b"GET /a/./b?q=%41 HTTP/1.1"
    assert b["http.start"].startswith(b"GET /a/./b?q=%41 HTTP/1.1\r\nHost: ") and b["http.start"].endswith(b"\r\n\r\n")
    assert b["http.header.raw"] == REQ[REQ.index(b"\r\n") + 2:]


@pytest.mark.parametrize("cut", range(1, len(REQ + REQ2)))
def test_any_split_gives_the_same_transactions(cut):
    data = REQ + REQ2
    whole = feed_all([data])
    split = feed_all([data[:cut], data[cut:]])
    assert [buffers(t) for t in split.txs] == [buffers(t) for t in whole.txs]
    assert [t.progress for t in split.txs] == [t.progress for t in whole.txs] == [[0, DONE], [0, DONE]]


def test_progress_moves_with_the_data():
    p = Parser()
    p.feed(b"GET /x HT", True)
    assert p.txs == []
    p.feed(b"TP/1.1\r\nHost: a", True)
    (tx,) = p.txs
    assert tx.progress[1] == LINE and buffers(tx)["http.host"] is None
    p.feed(b"\r\n\r\n", True)
    assert tx.progress[1] == DONE and buffers(tx)["http.host"] == b"a"


def test_responses_pair_with_requests_in_order_and_interim_responses_wait():
    p = feed_all([REQ + REQ2])
    p.feed(b"HTTP/1.1 100 Continue\r\n\r\n", False)
    assert p.txs[0].progress[0] == 0                       # an interim response: the real one follows
    p.feed(b"HTTP/1.1 404 Not Found\r\nServer: s1\r\nContent-Length: 0\r\n\r\n", False)
    p.feed(b"HTTP/1.1 200 OK\r\nServer: s2\r\nContent-Length: 0\r\n\r\n", False)
    t1, t2 = p.txs
    assert buffers(t1)["http.stat_code"] == b"404" and buffers(t1)["http.server"] == b"s1"
    assert buffers(t2)["http.stat_code"] == b"200" and buffers(t2)["http.stat_msg"] == b"OK"
    assert t1.done() and t2.done()


def test_http09_request_has_no_headers_and_is_complete():
    (tx,) = feed_all([b"GET /old\r\n"]).txs
    assert tx.progress[1] == DONE and buffers(tx)["http.uri"] == b"/old" and buffers(tx)["http.protocol"] is None


def test_a_header_block_past_the_limit_gives_up_the_direction():
    p = feed_all([b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 300 + b"\r\n"], settings_=Settings(header_limit=100))
    assert "http.request_field_too_long" in p.events
    p.feed(b"\r\nGET /next HTTP/1.1\r\n\r\n", True)
    assert len(p.txs) == 1 and p.txs[0].progress[1] == LINE


def test_open_transactions_are_bounded():
    p = feed_all([b"GET /%d HTTP/1.1\r\n\r\n" % i for i in range(20)], settings_=Settings(max_tx=5))
    assert len(p.txs) == 5 and buffers(p.txs[0])["http.uri"] == b"/15"
    assert "http.too_many_transactions" in p.events


@pytest.mark.parametrize("raw, norm", [
    (b"/a/b/..", b"/a"), (b"/a/./", b"/a"), (b"/a/b/../../..", b""), (b"//a//b", b"//a//b"),
    (b"/a%2Fb/../c", b"/c"), (b"/a?x=%2F", b"/a?x=/"), (b"http://H/x/../y?%41", b"/y?A"), (b"/a#f%41", b"/a#f%41"),
])
def test_normalize_uri(raw, norm):
    assert normalize_uri(raw) == norm


def test_remove_dot_segments_rfc_examples():
    assert remove_dot_segments(b"/a/b/c/./../../g") == b"/a/g"
    assert remove_dot_segments(b"mid/content=5/../6") == b"mid/6"


_PATH = st.lists(st.sampled_from([b"/", b".", b"..", b"a", b"b.c", b"%2e", b"\\", b"x."]), max_size=12).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(_PATH | st.binary(max_size=20))
def test_remove_dot_segments_shortcut_answers_as_the_walk(path):
    """A path without a leading "." and without "/." comes back as it is, without the walk:
    the walk gives the same answer for every path."""
    assert remove_dot_segments(path) == _remove_dot_segments_walk(path)


def _split_uri_scanning(raw: bytes):
    """split_uri as it was before its origin-form shortcut: the scheme looked for in every target."""
    scheme = authority = None
    rest = raw
    sep = raw.find(b"://")
    if sep > 0 and raw[:sep].isalpha() and b"/" not in raw[:sep]:
        scheme = raw[:sep]
        rest = raw[sep + 3:]
        end = len(rest)
        for ch in (b"/", b"?", b"#"):
            j = rest.find(ch)
            if 0 <= j < end:
                end = j
        authority, rest = rest[:end], rest[end:]
    cut = len(rest)
    for ch in (b"?", b"#"):
        j = rest.find(ch)
        if 0 <= j < cut:
            cut = j
    return scheme, authority, rest[:cut], (rest[cut:] if cut < len(rest) else None)


_TARGET = st.lists(st.sampled_from([b"/", b"http", b"://", b"h.example", b":8080", b"?", b"#", b"q=1", b"@", b"x"]),
                   max_size=10).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(_TARGET | st.binary(max_size=24))
def test_split_uri_shortcut_answers_as_the_scan(raw):
    assert split_uri(raw) == _split_uri_scanning(raw)


def test_split_uri_origin_form_and_absolute():
    assert split_uri(b"/a?x=http://h/") == (None, None, b"/a", b"?x=http://h/")
    assert split_uri(b"http://H.example:80/p?q#f") == (b"http", b"H.example:80", b"/p", b"?q#f")


def test_probe():
    assert probe(b"GET / HTTP/1.1\r\n", True, 1, 80) is True
    assert probe(b"GE", True, 1, 80) is None
    assert probe(b"\r\nPOST ", True, 1, 80) is True
    assert probe(b"\x16\x03\x01", True, 1, 443) is False
    assert probe(b"HTTP/1.1 200", False, 80, 1) is True
    assert probe(b"SSH-2.0", False, 22, 1) is False


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), st.booleans()), max_size=20))
def test_never_raises_and_stays_bounded(chunks):
    p = Parser(Settings(header_limit=512, max_tx=8))
    for data, to_server in chunks:
        p.feed(REQ[:len(data) % len(REQ)] + data if to_server else data, to_server)
    p.end(True)
    p.end(False)
    assert len(p.txs) <= 8
    assert all(len(s.buf) <= 512 + 200 + len(REQ) for s in p.sides)


# ---------------------------------------------------------------- transactions in the detect stage
def _engine(*rules):
    from rules.engine import Engine
    from rules.settings import EngineSettings

    return Engine([parse_rule(r) for r in rules], EngineSettings(mode="ips"))


def _session(e, requests: list[bytes]):
    """The sids alerted per client data segment of a TCP session through the engine."""
    from app_session import http_session

    return http_session(e, requests, per_segment=True)


def test_a_rule_fires_once_per_transaction_on_the_packet_completing_what_it_needs():
    e = _engine('alert http any any -> any any (msg:"uri"; http.uri; content:"/x"; sid:1;)',
                'alert http any any -> any any (msg:"host"; http.host; content:"h.example"; sid:2;)')
    got = _session(e, [b"GET /x HTTP/1.1\r\nHo", b"st: h.example\r\n\r\n", b"GET /x HTTP/1.1\r\nHost: h.example\r\n\r\n"])
    # the URI is known on the first segment, the host on the second; the second request again
    assert got == [[1], [2], [1, 2]]


def test_a_drop_on_a_transaction_drops_the_flow():
    from rules.api import Verdict

    e = _engine('drop http any any -> any any (msg:"uri"; http.uri; content:"/bad"; sid:1;)')
    _session(e, [b"GET /bad HTTP/1.1\r\n\r\n"])
    (flow,) = list(e.flows.all())
    assert flow.dropped and e.stats()["drops"] == 1 and Verdict.DROP


def test_no_app_rules_no_app_stage():
    e = _engine('alert tcp any any -> any any (msg:"c"; content:"x"; sid:1;)')
    assert e.app is None and e.streams.app_on is False


def test_app_layer_detection_fails_on_other_protocols():
    app = AppLayer({"http"})

    class F:                      # what the stage reads of a flow
        app = None
        pkts_toserver = pkts_toclient = 1
        cli_port, srv_port = 40000, 443

    f = F()
    app.feed_tcp(f, True, b"\x16\x03\x01\x00\x10")
    app.feed_tcp(f, False, b"\x16\x03\x03")
    assert f.app.proto == "failed" and f.app.parser is None
    assert app.stats()["app.detect_failed"] == 1


@pytest.mark.parametrize("request_, event", [
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\nxx", "http.invalid_transfer_encoding_value_in_request"),
    (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\nxx", "http.invalid_content_length_field_in_request"),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "http.invalid_request_chunk_len"),
])
def test_request_errors_libhtp_gives_up_on_stop_the_flow(request_, event):
    p = feed_all([request_])
    assert p.failed and event in p.events
    p.feed(b"GET /after HTTP/1.1\r\n\r\n", True)
    p.feed(b"HTTP/1.1 200 OK\r\n\r\n", False)
    assert len(p.txs) == 1 and p.txs[0].progress[0] == 0         # nothing parsed after it, either way


def test_content_length_read_as_libhtp_and_pipelining_goes_on():
    p = feed_all([b"POST / HTTP/1.1\r\nContent-Length: x5\r\n\r\nhelloGET /next HTTP/1.1\r\n\r\n"])
    assert not p.failed and [bytes(t.req_body.data) if t.req_body else None for t in p.txs] == [b"hello", None]
    assert buffers(p.txs[1])["http.uri"] == b"/next"


def test_a_parser_error_drops_the_flow_under_the_error_policy():
    from rules.engine import Engine
    from rules.settings import EngineSettings

    rule = parse_rule('alert http any any -> any any (msg:"uri"; http.uri; content:"/x"; sid:1;)')
    e = Engine([rule], EngineSettings(mode="ips", app_error_policy="drop-flow"))
    _session(e, [b"POST /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", b"more"])
    (flow,) = list(e.flows.all())
    assert flow.dropped == "policy:app_layer_error" and e.stats()["policy.app_layer_error.drop-flow"] == 1


@pytest.mark.parametrize("opt, error", [
    ("app-layer-protocol:smb;", "unsupported: app-layer-protocol 'smb'"),
    ("app-layer-protocol:http,final;", "with a mode"),
])
def test_app_layer_protocol_refuses_what_it_cannot_answer(opt, error):
    from rules.errors import RuleError

    with pytest.raises(RuleError) as ei:
        parse_rule(f'alert tcp any any -> any any (msg:"x"; {opt} sid:1;)')
    assert error in ei.value.message and ei.value.unsupported


def test_app_layer_protocol_probes_without_making_the_rule_an_http_rule():
    r = parse_rule('alert tcp any any -> any any (msg:"x"; app-layer-protocol:!http; content:"MZ"; sid:1;)')
    assert r.app_proto == "" and r.app_detect == frozenset({"http"}) and r.app is None
    e = _engine('alert tcp any any -> any any (msg:"x"; app-layer-protocol:!http; content:"MZ"; sid:1;)')
    assert e.app is not None


def test_tls_encryption_handling_bypass_decides_the_flow():
    """encryption-handling: bypass -- once the TLS session is encrypted the flow is decided
    (reason bypass: the data plane takes it out of the frame path); default only stops
    payload inspection."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from rules.api import FrameMeta
    from rules.applayer import tls
    from rules.engine import Engine
    from rules.settings import EngineSettings

    ch = bytes.fromhex("16030100") + bytes([0x2d]) + bytes.fromhex("010000290303") + bytes(32) + \
        bytes.fromhex("000002002f0100")
    sh = bytes.fromhex("16030300") + bytes([0x2a]) + bytes.fromhex("020000260303") + bytes(32) + \
        bytes.fromhex("00002f00")
    ccs_app = bytes.fromhex("140303000101") + bytes.fromhex("1703030005") + b"hello"
    rule = parse_rule('alert tls any any -> any any (msg:"sni"; tls.sni; content:"x"; sid:1;)')
    for mode, decided in (("bypass", "bypass"), ("default", "")):
        e = Engine([rule], EngineSettings(mode="ips", app={"tls": tls.Settings(encryption_handling=mode)}))
        c = Ether() / IP(src="198.51.100.1", dst="203.0.113.1")
        s = Ether() / IP(src="203.0.113.1", dst="198.51.100.1")
        seq_c, seq_s = 1000, 5000
        pkts = [c / TCP(sport=40000, dport=443, flags="S", seq=seq_c - 1),
                s / TCP(sport=443, dport=40000, flags="SA", seq=seq_s - 1, ack=seq_c),
                c / TCP(sport=40000, dport=443, flags="A", seq=seq_c, ack=seq_s),
                c / TCP(sport=40000, dport=443, flags="PA", seq=seq_c, ack=seq_s) / ch,
                s / TCP(sport=443, dport=40000, flags="PA", seq=seq_s, ack=seq_c + len(ch)) / sh,
                c / TCP(sport=40000, dport=443, flags="PA", seq=seq_c + len(ch), ack=seq_s + len(sh)) / ccs_app,
                s / TCP(sport=443, dport=40000, flags="PA", seq=seq_s + len(sh), ack=seq_c + len(ch) + len(ccs_app))
                / ccs_app]
        for i, p in enumerate(pkts):
            e.inspect(bytes(p), FrameMeta(0.01 * (i + 1), "eth0"))
        (flow,) = list(e.flows.all())
        assert flow.app.proto == "tls" and flow.decided == decided, (mode, flow.decided)


def _reference_headers(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    """Header lines as libhtp makes them (the list before HttpTx kept an index): a folded line
    continues the value before it; a line without a colon is a name with an empty value;
    a name seen before (any case, a colon-less one too) joins its value to the first."""
    headers: list[tuple[bytes, bytes]] = []
    last = 0
    for ln in lines:
        if ln[:1] in (b" ", b"\t") and headers:
            n, v = headers[last]
            headers[last] = (n, v + b" " + ln.strip())
            continue
        colon = ln.find(b":")
        if colon < 0:
            last = len(headers)
            headers.append((ln.strip(), b""))
            continue
        name, value = ln[:colon].strip(), ln[colon + 1:].strip(b" \t")
        for i, (n, v) in enumerate(headers):
            if n.lower() == name.lower():
                headers[i] = (n, v + b", " + value)
                last = i
                break
        else:
            last = len(headers)
            headers.append((name, value))
    return headers


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.sampled_from([b"X-A: 1", b"x-a: 2", b"X-A:3", b"x-A", b"X-a", b"Host: h", b"HOST: k",
                                       b"Content-Length: 0", b" folded", b"\tmore", b"User-Agent: ua",
                                       b"user-agent: UA2", b"Cookie: c"]), max_size=12))
def test_header_lines_are_joined_and_indexed_as_libhtp_joins_them(lines):
    """The parsed headers (repeated names joined into the first, colon-less lines kept) and
    the name index the header buffers read (each lower-case name: the first such header's
    value) against the header list worked out by hand."""
    request = b"GET / HTTP/1.1\r\n" + b"".join(ln + b"\r\n" for ln in lines) + b"\r\n"
    (tx,) = feed_all([request]).txs
    want = _reference_headers(lines)
    assert tx.req_headers == want
    first: dict = {}
    for n, v in want:
        first.setdefault(n.lower(), v)
    assert tx.req_index == first
    assert buffers(tx)["http.user_agent"] == first.get(b"user-agent")


# ---------------------------------------------------------------------- the header block's end
def _block_oracle(buf: bytes, limit: int):
    """Line by line, as the parser's definition says: lines end at "\\n" (one "\\r" before it
    dropped); the block ends at the first empty line; a non-empty line ending past `limit`,
    or no end yet in more than `limit` bytes, is too long.  ("wait", None), ("too_long", None)
    or ("ok", the block's bytes with its empty line)."""
    import re

    for m in re.finditer(rb"([^\n]*)\n", buf):
        line = m.group(1)
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line:
            return "ok", buf[:m.end()]
        if m.end() > limit:
            return "too_long", None
    return ("too_long" if len(buf) > limit else "wait"), None


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.sampled_from([b"Host: a", b"X-Y:z", b"\r\n", b"\n", b"\r", b" fold", b"\t", b"abc",
                                        b":", b"\r\r\n", b"\n\r\n", b"0123456789"]), max_size=14),
       limit=st.integers(1, 60))
def test_the_header_block_ends_where_its_lines_say(pieces, limit):
    """The block's end is found with two searches instead of a walk line by line: the same
    block, the same bytes left, the same too-long verdict as the line-by-line definition."""
    block = b"".join(pieces)
    p = Parser(Settings(header_limit=max(limit, 20)))
    limit = p.s.header_limit
    line = b"GET / HTTP/1.1\r\n"
    p.feed(line + block, True)
    want, raw = _block_oracle(block, limit)
    side = p.sides[1]
    if want == "ok":                   # (what follows the block is the next state's: a body, a request)
        assert p.txs[0].req_hdr_raw == raw
    elif want == "too_long":
        assert side.gone and "http.request_field_too_long" in p.events
    else:
        assert not side.gone and bytes(side.buf) == block and p.txs[0].req_hdr_raw == b""


@pytest.mark.parametrize("length, gone", [(18, False), (19, False), (20, True)])
def test_a_header_line_ending_exactly_at_the_limit_is_kept(length, gone):
    """header-limit 20: a header line whose "\\n" is the 20th byte of the block is in; the 21st
    is too long (and so is a block of 21 bytes with no end yet)."""
    p = Parser(Settings(header_limit=20))
    p.feed(b"GET / HTTP/1.1\r\n" + b"A:" + b"x" * (length - 2) + b"\n\n", True)
    assert p.sides[1].gone is gone
    if not gone:
        assert p.txs[0].req_headers == [(b"A", b"x" * (length - 2))]
