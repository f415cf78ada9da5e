"""rules.applayer.tls (+ x509, rules.keywords.tls) against Suricata 7.0.10.

tls_suricata.json (made by make_tls_fixtures.py with the installed Suricata) holds TCP
sessions as segments and what Suricata made of them: its EVE tls record, the TLS events it
raised and which of its test rules alerted.  Here the same segments go through our parser,
whole and split at every byte, and the same rules are evaluated the way Suricata's IDS
pcap mode sees the data: a segment is parsed when the other side acknowledges it, and the
rules of a direction are evaluated on each packet of that direction.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.applayer import tls, x509
from rules.applayer.base import DONE
from rules.errors import RuleError
from rules.keywords import tls as kw
from rules.keywords._base import Ctx

FIX = json.loads((Path(__file__).parent / "tls_suricata.json").read_text())
SCEN = FIX["scenarios"]


def segments(name):
    return [(d == "c", bytes.fromhex(h)) for d, h in SCEN[name]["segments"]]


def feed_all(segs, split: int | None = None) -> tls.Parser:
    p = tls.Parser()
    for to_server, data in segs:
        if split is None:
            p.feed(data, to_server)
        else:
            for i in range(0, len(data), split):
                p.feed(data[i:i + split], to_server)
    return p


# ---------------------------------------------------------------------------- EVE fields
VERSION_NAMES = {0: "UNDETERMINED", 0x0200: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLS 1.1",
                 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


def eve_like(p: tls.Parser) -> dict:
    """Our state in the shape of Suricata's EVE tls record (the fields it logs)."""
    tx = p.tx
    s, c = tx.server, tx.client
    out = {}
    if s.subject is not None:
        out["subject"] = s.subject
    if s.issuer is not None:
        out["issuerdn"] = s.issuer
    if s.serial is not None:
        out["serial"] = s.serial
    if s.fingerprint is not None:
        out["fingerprint"] = s.fingerprint
    if c.sni is not None:
        out["sni"] = c.sni.decode()
    out["version"] = VERSION_NAMES.get(s.version, f"0x{s.version:04x}")
    if s.not_before is not None:
        def ts(t):
            return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        out["notbefore"], out["notafter"] = ts(s.not_before), ts(s.not_after)
    if s.certs:
        out["chain"] = [d.hex() for d in s.certs]
    for key, side in (("ja3", c), ("ja3s", s)):
        if side.ja3 is not None:
            out[key] = {"string": ",".join(side.ja3)}
            if side.ja3_hash:
                out[key]["hash"] = side.ja3_hash
    return out


WITH_TLS_RECORD = [n for n, s in SCEN.items() if s["tls"] is not None]


@pytest.mark.parametrize("name", WITH_TLS_RECORD)
def test_fields_like_suricata(name):
    p = feed_all(segments(name))
    assert p.error is None
    assert eve_like(p) == SCEN[name]["tls"]


@pytest.mark.parametrize("name", list(SCEN))
def test_events_like_suricata(name):
    p = feed_all(segments(name))
    assert p.error is None
    assert sorted(set(p.events)) == sorted(SCEN[name]["events"])


@pytest.mark.parametrize("name", list(SCEN))
def test_any_split_same_result(name):
    """Every segment fed one byte at a time, and in 7-byte pieces, gives the state and events
    of the whole segments (the record layer and handshake reassembly are split-proof)."""
    whole = feed_all(segments(name))
    for split in (1, 7):
        p = feed_all(segments(name), split)
        assert p.error is None
        assert eve_like(p) == eve_like(whole)
        assert sorted(set(p.events)) == sorted(set(whole.events))
        assert p.failed == whole.failed
        assert p.tx.progress == whole.tx.progress


def test_split_at_every_boundary_of_a_full_handshake():
    """The server's flight (ServerHello, two certificates, ServerHelloDone in one record) cut
    in two at every byte: the same result as whole."""
    (_, ch), (_, flight) = segments("tls12_full")[:2]
    ref = feed_all([(True, ch), (False, flight)])
    assert ref.tx.server.subject and len(ref.tx.server.certs) == 2
    for cut in range(1, len(flight)):
        p = tls.Parser()
        p.feed(ch, True)
        p.feed(flight[:cut], False)
        p.feed(flight[cut:], False)
        assert eve_like(p) == eve_like(ref), cut
        assert not p.events and not p.failed
        assert p.tx.progress == ref.tx.progress


# ---------------------------------------------------------------------------- rules, as Suricata sees them
def parse_kw(keyword, value, direction=None) -> list:
    ctx = Ctx(vars={}, classification={})
    ctx.keyword = keyword.name
    if direction is not None:
        ctx.fields["flow_to_server"] = direction
    keyword.parse(value, ctx)
    assert ctx.app_proto == "tls"
    return ctx.app_checks


def both_directions(keyword, value) -> list:
    """A rule without flow direction: Suricata evaluates it on the packets of both
    directions, each with that direction's side."""
    return parse_kw(keyword, value, True) + parse_kw(keyword, value, False)


BUF = {b.name: b for b in tls.BUFFERS}


class BufferCheck:
    """A sticky-buffer rule's test on one side: True (match), False (not yet) or None (can no
    longer match: Suricata gives up on a buffer rule once the side's progress is past the
    buffer's and the buffer does not match)."""

    def __init__(self, get, progress, pred):
        self.get, self.progress, self.pred = get, progress, pred

    def __call__(self, tx, side_progress):
        v = self.get(tx)
        if v is not None and self.pred(v):
            return True
        return None if side_progress > self.progress else False


def buffer_rule(name, pred, direction=None):
    """[(side, progress, BufferCheck)] for a sticky-buffer rule; no direction: both sides
    when the buffer exists on both (BOTH_SIDES), as Suricata registers it."""
    b = BUF[name]
    sides = [b.to_server] if direction is None else [direction]
    if direction is None and name in tls.BOTH_SIDES:
        sides = [True, False]
    out = []
    for side in sides:
        get, progress = (b.get, b.progress) if side == b.to_server else tls.BOTH_SIDES[name]
        out.append((side, progress, BufferCheck(get, progress, pred)))
    return out


RULES = {
    1: parse_kw(kw.tls_version, "1.2", True), 2: parse_kw(kw.tls_version, "1.2", False),
    3: parse_kw(kw.tls_version, "1.3", True), 4: parse_kw(kw.tls_version, "1.3", False),
    5: parse_kw(kw.tls_version, "1.0", True), 6: parse_kw(kw.tls_version, "1.0", False),
    7: parse_kw(kw.tls_version, "0x7f01", True),
    10: parse_kw(kw.ssl_version, "tls1.2", True), 11: parse_kw(kw.ssl_version, "tls1.2,tls1.3", False),
    12: parse_kw(kw.ssl_version, "!tls1.0", True), 13: parse_kw(kw.ssl_version, "sslv2", True),
    14: parse_kw(kw.ssl_version, "sslv3", False), 15: parse_kw(kw.ssl_version, "tls1.0", True),
    20: both_directions(kw.ssl_state, "client_hello"), 21: both_directions(kw.ssl_state, "server_hello"),
    22: both_directions(kw.ssl_state, "client_keyx"), 23: both_directions(kw.ssl_state, "server_keyx"),
    24: both_directions(kw.ssl_state, "!client_hello"),
    25: both_directions(kw.ssl_state, "client_hello|server_hello"),
    30: buffer_rule("tls.sni", lambda v: v == b"example.com"),
    31: buffer_rule("tls.sni", lambda v: len(v) == 0),
    32: buffer_rule("tls.cert_subject", lambda v: v.endswith(b"CN=leaf")),
    33: buffer_rule("tls.cert_issuer", lambda v: v.endswith(b"CN=Test CA")),
    34: buffer_rule("tls.certs", lambda v: any(c.startswith(b"\x30") for c in v), False),
    35: buffer_rule("tls.certs", lambda v: any(c.startswith(b"\x30") for c in v), True),
    36: buffer_rule("tls.cert_serial", lambda v: v.startswith(b"01:02")),
    37: buffer_rule("ja3s.hash", lambda v: len(v) == 32),
}


def test_rule_table_matches_fixture():
    assert sorted(RULES) == sorted(sid for sid, _ in FIX["rules"])


def suricata_view(segs):
    """Yield (parser, direction) per packet of the pcap make_tls_fixtures writes, after what
    Suricata's IDS mode parses on that packet: the other side's data it acknowledges.  Packets
    before the first parsed data are left out: the flow has no transaction yet."""
    p = tls.Parser()
    unacked = {True: [], False: []}
    packets = []
    for to_server, data in segs:
        packets += [(to_server, data), (not to_server, b"")]
    fed = False
    for to_server, data in packets:
        for d in unacked[not to_server]:
            p.feed(d, not to_server)
            fed = True
        unacked[not to_server] = []
        if data:
            unacked[to_server].append(data)
        if fed:
            yield p, to_server
    # FIN both ways: the client's FIN acknowledges the last server data; the ends are seen
    # after the last packet was inspected
    for d in unacked[False]:
        p.feed(d, False)
    yield p, True
    for d in unacked[True]:
        p.feed(d, True)
    yield p, False
    yield p, True
    p.end(True)
    p.end(False)


def alerted(segs) -> list[int]:
    """The sids of RULES that alert: a rule side is tested on packets of that direction once
    the transaction's side reached the progress it needs; a buffer rule side that can no
    longer match is not tested again."""
    fired, dead = set(), set()
    for p, direction in suricata_view(segs):
        tx = p.tx
        for sid, checks in RULES.items():
            if sid in fired:
                continue
            for i, (side, prog, fn) in enumerate(checks):
                if side != direction or (sid, i) in dead or tx.progress[side] < prog:
                    continue
                got = fn(tx, tx.progress[side]) if isinstance(fn, BufferCheck) else fn(tx)
                if got:
                    fired.add(sid)
                    break
                if got is None:
                    dead.add((sid, i))
    return sorted(fired)


@pytest.mark.parametrize("name", list(SCEN))
def test_rules_like_suricata(name):
    assert alerted(segments(name)) == SCEN[name]["sids"]


# ---------------------------------------------------------------------------- progress, give-up, bounds
def test_progress_steps():
    segs = segments("tls12_full")
    p = tls.Parser()
    p.feed(segs[0][1], True)                 # ClientHello
    assert p.tx.progress == [tls.IN_PROGRESS, tls.IN_PROGRESS]
    p.feed(segs[1][1], False)                # ServerHello .. ServerHelloDone: the certificate
    assert p.tx.progress == [tls.HANDSHAKE_DONE, tls.HANDSHAKE_DONE]
    p.end(True)
    assert p.tx.progress == [DONE, DONE] and p.tx.done()


def test_cert_ready_only_to_server_while_a_client_certificate_is_awaited():
    segs = segments("client_certificate")
    p = tls.Parser()
    p.feed(segs[0][1], True)
    p.feed(segs[1][1], False)                # server certificate + CertificateRequest
    assert p.tx.progress == [tls.IN_PROGRESS, tls.CERT_READY]
    p.feed(segs[2][1], True)                 # the client's certificate completes the handshake
    assert p.tx.progress == [tls.HANDSHAKE_DONE, tls.HANDSHAKE_DONE]
    assert p.tx.client.subject == "CN=client one"
    assert tls.BOTH_SIDES["tls.cert_subject"][0](p.tx) == b"CN=client one"


@pytest.mark.parametrize("name", ["unknown_record_tls12", "bad_record_version", "record_too_long", "empty_record",
                                  "short_handshake_record", "heartbleed"])
def test_gives_up(name):
    p = feed_all(segments(name))
    assert p.failed and p.error is None
    sni = p.tx.client.sni
    p.feed(segments("tls12_full")[0][1], True)      # nothing more is parsed
    assert p.tx.client.sni == sni and p.failed


def test_record_version_counts_byte_by_byte():
    # Suricata's differential (tests/replay/app_tls.py): tls.version:1.2 alerts on the packet
    # carrying only "16 03 03" of the ClientHello record
    p = tls.Parser()
    seen = []
    for b in b"\x16\x03\x03\x00":
        p.feed(bytes([b]), True)
        seen.append(p.tx.client.version)
    assert seen == [0, 0x0300, 0x0303, 0x0303]


def test_content_rules():
    # each case loaded alone with `suricata -T` (7.0.10): refused exactly where a problem is given
    assert tls.content_problem("ja3.hash", [b"e7d705a3286e19ea42f587b344ee6865"]) is None
    assert tls.content_problem("ja3.hash", [b"e7d705a3286e19ea42f587b344ee6865", b"ab"]) is None
    assert tls.content_problem("ja3.hash", [b"e7d705a3"])
    assert tls.content_problem("ja3s.hash", [b"x" * 31])
    assert tls.content_problem("tls.cert_serial", [b"0A"]) is None
    assert tls.content_problem("tls.cert_serial", [b"0A:FF"]) is None
    assert tls.content_problem("tls.cert_serial", [b"0AFF"])
    assert tls.content_problem("tls.cert_serial", [b"0A:FF", b"0AFF"]) is None     # the first one decides
    fp = b":".join([b"ab"] * 20)
    assert tls.content_problem("tls.cert_fingerprint", [fp]) is None
    assert tls.content_problem("tls.cert_fingerprint", [fp, b"ab:cd"])
    assert tls.content_problem("tls.sni", [b"x"]) is None
    assert set(tls.CONTENT_CASE) <= set(BUF)


def test_unknown_record_after_tls10_skips_the_rest_of_the_segment():
    p = feed_all(segments("unknown_record_tls10"))
    assert not p.failed
    assert not p.tx.current_flags & tls.ST_CLIENT_KEYX and not p.tx.flags & tls.ST_CLIENT_KEYX


def test_too_many_records_in_one_feed():
    # SSLv2 records of 3 bytes (the smallest): more than a sixth of the feed's bytes
    p = tls.Parser()
    p.feed(b"\x80\x01\x07" * 10, True)
    assert p.failed and tls.EV_TOO_MANY_RECORDS in p.events


def test_sslv2_record_left_incomplete_waits_for_one_more_byte():
    """Suricata asks for the SSLv2 record length after its header, one byte more than the
    record has: a hello completed by a later segment is read when a byte follows it
    (make_tls_fixtures.py --random: a split SSLv2 hello, tls.version:1.0 does not alert)."""
    hello = bytes.fromhex(SCEN["sslv2_compat_hello_443"]["segments"][0][1])
    p = tls.Parser()
    p.feed(hello, True)                          # whole: read at once
    assert p.tx.client.version == tls.TLS_10 and p.tx.flags & tls.ST_CLIENT_HELLO
    p = tls.Parser()
    p.feed(hello[:35], True)
    p.feed(hello[35:], True)
    assert p.tx.client.version == tls.SSL_2 and not p.tx.flags & tls.ST_CLIENT_HELLO
    p.feed(b"\x16", True)
    assert p.tx.client.version == tls.TLS_10 and p.tx.flags & tls.ST_CLIENT_HELLO
    p = tls.Parser()
    p.feed(hello[:35], True)
    p.feed(hello[35:], True)
    p.end(True)                                  # or at the end of the stream
    assert p.tx.client.version == tls.TLS_10 and p.tx.flags & tls.ST_CLIENT_HELLO


def test_sslv2_zero_length_waits_for_a_following_byte():
    p = tls.Parser()
    p.feed(b"\x80\x00\x01", True)
    assert not p.failed and not p.events
    p.feed(b"\x00", True)
    assert p.failed and p.events == [tls.EV_INVALID_SSLV2_HEADER, tls.EV_INVALID_SSL_RECORD]


def test_handshake_message_header_split_across_records_gives_up():
    ch = bytes.fromhex(SCEN["tls12_full"]["segments"][0][1])[5:]
    p = tls.Parser()
    p.feed(b"\x16\x03\x03\x00\x04" + ch[:4] + b"\x16\x03\x03\x00\x06" + ch[4:10], True)
    assert not p.failed and p.streams[1].hs_buf == ch[4:10]   # a message spanning records: buffered
    p.feed(b"\x16\x03\x03" + len(ch[10:]).to_bytes(2, "big") + ch[10:], True)
    assert p.tx.client.sni == b"example.com" and not p.events
    p = tls.Parser()
    p.feed(b"\x16\x03\x03\x00\x04" + ch[:4] + b"\x16\x03\x03\x00\x03" + ch[4:7], True)
    assert p.failed and p.events == [tls.EV_INVALID_SSL_RECORD]   # any handshake record under 4 bytes
    p = tls.Parser()
    p.feed(b"\x16\x03\x03\x00\x06" + ch[:6], True)      # 2 bytes of a second header left in the record
    assert not p.failed
    p = tls.Parser()
    p.feed(b"\x16\x03\x03\x00\x02" + ch[:2], True)
    assert p.failed and tls.EV_INVALID_SSL_RECORD in p.events


def test_oversized_handshake_message_is_skipped_not_held():
    s = tls.Settings(max_handshake_message=1000)
    p = tls.Parser(s)
    body = b"\x0b" + (5000).to_bytes(3, "big") + bytes(5000)
    recs = b"".join(b"\x16\x03\x03" + len(body[i:i + 1000]).to_bytes(2, "big") + body[i:i + 1000]
                    for i in range(0, len(body), 1000))
    p.feed(recs, False)
    assert not p.failed and p.streams[0].hs_buf is None and not p.tx.server.certs_seen
    p.feed(b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00", False)   # the next message is parsed again
    assert not p.failed and not p.events


def test_encryption_handling():
    segs = segments("tls12_full")
    for mode, inspect, bypass in (("default", False, False), ("bypass", False, True), ("full", True, False)):
        p = tls.Parser(tls.Settings(encryption_handling=mode))
        for ts, d in segs:
            p.feed(d, ts)
        assert p.no_inspect_payload is not inspect and p.bypass_ready is bypass


def test_ja3_off():
    p = tls.Parser(tls.Settings(ja3_fingerprints="no"))
    for ts, d in segments("tls12_full"):
        p.feed(d, ts)
    assert p.tx.client.ja3 is None and p.tx.server.ja3_hash is None
    assert BUF["ja3.hash"].get(p.tx) is None and BUF["ja3s.string"].get(p.tx) is None


def test_buffers_absent_are_none():
    tx = tls.TlsTx()
    for b in tls.BUFFERS:
        assert b.get(tx) is None, b.name
    for name, (get, _) in tls.BOTH_SIDES.items():
        assert get(tx) is None, name


def test_aliases_name_buffers():
    assert set(tls.ALIASES.values()) <= set(BUF)
    assert {"tls_sni", "ja3_hash", "tls_cert_subject"} <= set(tls.ALIASES)


# ---------------------------------------------------------------------------- fuzzing
def _valid_streams():
    return [segments(n) for n in ("tls12_full", "tls13", "client_certificate", "sslv2_compat_hello_443")]


def _bounded(p: tls.Parser) -> None:
    for s in p.streams:
        assert len(s.pend) <= tls.RECORD_HDR + tls.RECORD_MAX + 32768
        assert s.hs_buf is None or len(s.hs_buf) <= p.s.max_handshake_message
    assert len(p.events) <= 64


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12))
def test_fuzz_random_bytes_never_raise(chunks):
    p = tls.Parser()
    for ts, d in chunks:
        p.feed(d, ts)
        _bounded(p)
    p.end(True)
    assert p.error is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(1, 64))
def test_fuzz_mutated_handshakes_never_raise(which, flips, split):
    segs = _valid_streams()[which]
    data = [bytearray(d) for _, d in segs]
    for pos, val in flips:
        seg = data[pos % len(data)]
        if seg:
            seg[pos % len(seg)] = val
    p = tls.Parser()
    for (ts, _), d in zip(segs, data):
        for i in range(0, len(d), split):
            p.feed(bytes(d[i:i + split]), ts)
            _bounded(p)
    assert p.error is None
    for b in tls.BUFFERS:
        b.get(p.tx)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_x509_never_raises(der):
    cert, ev = x509.parse(der)
    assert (cert is None) == bool(ev)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_fuzz_x509_mutated_certificate(pos, val):
    der = bytearray(bytes.fromhex(SCEN["tls12_full"]["tls"]["chain"][0]))
    der[pos % len(der)] = val
    cert, ev = x509.parse(bytes(der))
    assert (cert is None) == bool(ev)


# ---------------------------------------------------------------------------- x509 details
def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    ln = bytes([n]) if n < 128 else bytes([0x80 | 2]) + n.to_bytes(2, "big")
    return bytes([tag]) + ln + body


def _name(*rdns) -> bytes:
    return _tlv(0x30, b"".join(_tlv(0x31, b"".join(_tlv(0x30, _tlv(6, oid) + _tlv(tag, val))
                                                    for oid, tag, val in rdn)) for rdn in rdns))


CN, O_ = b"\x55\x04\x03", b"\x55\x04\x0a"


def _cert(subject: bytes, serial=b"\x01", version=True, validity=None, ext=b"") -> bytes:
    alg = _tlv(0x30, _tlv(6, b"\x2a\x86\x48\xce\x3d\x04\x03\x02"))
    validity = validity or _tlv(0x30, _tlv(0x17, b"230101000000Z") + _tlv(0x17, b"300101000000Z"))
    spki = _tlv(0x30, _tlv(0x30, _tlv(6, b"\x2a\x86\x48\xce\x3d\x02\x01")) + _tlv(3, b"\x00\x04"))
    tbs = ((_tlv(0xA0, _tlv(2, b"\x02")) if version else b"") + _tlv(2, serial) + alg + _name([(CN, 12, b"ca")])
           + validity + subject + spki + ext)
    return _tlv(0x30, _tlv(0x30, tbs) + alg + _tlv(3, b"\x00\x01\x02"))


# each subject below was also sent to Suricata 7.0.10 in a certificate (EVE tls.subject)
@pytest.mark.parametrize("subject, expected", [
    (_name([(CN, 12, b"a")], [(O_, 19, b"b"), (CN, 22, b"c")]), "CN=a, O=b + CN=c"),
    (_name([(b"\x78\x05", 12, b"x")]), "OID(3.0.5)=x"),                 # asn1-rs: first byte / 40, % 40
    (_name([(b"\x88\x37", 12, b"x")]), "OID(3.16.55)=x"),               # (not 2.999)
    (_name([(b"\x2a\x83", 12, b"x")]), "OID(1.2.3)=x"),                 # an unfinished last arc counts
    (_name([(b"", 12, b"x")]), "OID()=x"),
    (_name([(b"\x2a" + b"\xff" * 10 + b"\x7f", 12, b"x")]), "OID(2a ff ff ff ff ff ff ff ff ff ff 7f)=x"),
    (_name([(b"\x2a\x83\x08\x81\x80\x80\x80\x00", 12, b"v")]), "OID(1.2.392.268435456)=v"),
    (_name([(CN, 20, b"caf\xe9")]), x509.INVALID_NAME),                   # T61String read as UTF-8 too
    (_name(), ""),
    (_name([(b"\x2a\x03", 12, b"x")]), "OID(1.2.3)=x"),
    (_name([(b"\x55\x04\x05", 12, b"7")]), "serialNumber=7"),
    (_name([(CN, 30, b"\x00A\x00")]), "CN=A\x00"),             # BMPString, odd last byte a unit of its own
                                                               # (Suricata: a NUL, certificate_invalid_subject)
    (_name([(CN, 4, b"\x01\xab")]), "CN=01AB"),                  # not a string type: uppercase hex
    (_name([(CN, 12, b"\xff")]), x509.INVALID_NAME),           # invalid UTF-8: the whole name
    (_name([(CN, 30, b"\xd8\x00")]), x509.INVALID_NAME),       # a lone surrogate
])
def test_x509_name_format(subject, expected):
    cert, ev = x509.parse(_cert(subject))
    assert ev == "" and cert.subject == expected and cert.issuer == "CN=ca"


def _tlv_min(tag: int, body: bytes) -> bytes:
    """DER with the shortest length form (the certificates Suricata was given)."""
    n = len(body)
    ln = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else b"\x82" + n.to_bytes(2, "big")
    return bytes([tag]) + ln + body


def _calib(ver=None, ser=None, alg=None, iss=None, val=None, sub=None, spki=None, rest=b"", outer_alg=None,
           sig=None, tail=b"") -> bytes:
    t = _tlv_min
    alg_ok = t(0x30, t(6, b"\x2a\x86\x48\xce\x3d\x04\x03\x02"))
    name = t(0x30, t(0x31, t(0x30, t(6, CN) + t(12, b"n"))))
    spki_ok = t(0x30, t(0x30, t(6, b"\x2a\x86\x48\xce\x3d\x02\x01") + t(6, b"\x2a\x86\x48\xce\x3d\x03\x01\x07"))
                + t(3, b"\x00\x04" + bytes(range(64))))
    tbs = t(0x30, (t(0xA0, t(2, b"\x02")) if ver is None else ver) + (t(2, b"\x01") if ser is None else ser)
            + (alg or alg_ok) + (iss or name)
            + (val or t(0x30, t(0x17, b"230101000000Z") + t(0x17, b"300101000000Z"))) + (sub or name)
            + (spki or spki_ok) + rest)
    return t(0x30, tbs + (outer_alg or alg_ok) + (sig or t(3, b"\x00\x01")) + tail)


_T = _tlv_min
_EXT_OK = _T(0xA3, _T(0x30, _T(0x30, _T(6, b"\x55\x1d\x13") + _T(4, _T(0x30, b"")))))
_CN_ATTR = _T(6, CN)
# Each certificate sent to Suricata 7.0.10 as a server's first certificate (the CA after it):
# the subject it logged for it, or the event it raised (then it took the CA's subject)
X509_SURICATA = {
    "ok": (_calib(rest=_EXT_OK), "CN=n", ""),
    "ext_no_octet_string": (_calib(rest=_T(0xA3, _T(0x30, _T(0x30, _T(6, b"\x55\x1d\x13"))))), None,
                            x509.EV_INVALID_CERTIFICATE),
    "ext_then_junk_in_tbs": (_calib(rest=_EXT_OK + b"\x05\x00"), None, x509.EV_INVALID_CERTIFICATE),
    "ext_tag_any_class": (_calib(rest=_T(0x83, _T(0x30, b""))), "CN=n", ""),
    "ext_empty_list": (_calib(rest=_T(0xA3, _T(0x30, b""))), "CN=n", ""),
    "ext_junk_after_list": (_calib(rest=_T(0xA3, _T(0x30, b"") + b"\x05\x00")), None, x509.EV_INVALID_CERTIFICATE),
    "name_wrong_tag": (_calib(sub=_T(0x31, _T(0x31, b""))), None, x509.EV_INVALID_DER),
    "name_overflows": (_calib(sub=b"\x30\x7f\x31\x00"), None, x509.EV_INVALID_CERTIFICATE),
    "algorithm_without_oid": (_calib(alg=_T(0x30, _T(4, b"\x2a"))), "CN=n", ""),
    "algorithm_wrong_tag": (_calib(alg=_T(0x31, _T(6, b"\x2a"))), None, x509.EV_INVALID_DER),
    "validity_wrong_tag": (_calib(val=_T(0x31, _T(0x17, b"230101000000Z") + _T(0x17, b"300101000000Z"))), None,
                           x509.EV_INVALID_DER),
    "validity_overflows": (_calib(val=b"\x30\x7f" + _T(0x17, b"230101000000Z")), None, x509.EV_INVALID_CERTIFICATE),
    "spki_not_bit_string": (_calib(spki=_T(0x30, _T(0x30, _T(6, b"\x2a")) + _T(4, b"\x00"))), None,
                            x509.EV_INVALID_CERTIFICATE),
    "spki_wrong_tag": (_calib(spki=_T(0x31, _T(0x30, _T(6, b"\x2a")) + _T(3, b"\x00"))), None, x509.EV_INVALID_DER),
    "version_over_u32": (_calib(ver=_T(0xA0, _T(2, b"\x01\x00\x00\x00\x00"))), None, x509.EV_INVALID_VERSION),
    "version_negative": (_calib(ver=_T(0xA0, _T(2, b"\xff"))), None, x509.EV_INVALID_VERSION),
    "version_not_integer": (_calib(ver=_T(0xA0, _T(4, b"\x02"))), None, x509.EV_INVALID_VERSION),
    "version_overflows": (_calib(ver=b"\xa0\x7f\x02\x01\x02"), None, x509.EV_INVALID_SERIAL),
    "uid_not_bit_string": (_calib(rest=_T(0xA1, _T(4, b"\x00"))), None, x509.EV_INVALID_EXTENSIONS),
    "uid": (_calib(rest=_T(0xA1, _T(3, b"\x00"))), "CN=n", ""),
    "uid_primitive": (_calib(rest=_T(0x81, b"\x00")), None, x509.EV_INVALID_CERTIFICATE),
    "signature_not_bit_string": (_calib(sig=_T(4, b"\x00")), None, x509.EV_INVALID_CERTIFICATE),
    "outer_algorithm_wrong_tag": (_calib(outer_alg=_T(0x31, b"")), None, x509.EV_INVALID_DER),
    "bytes_after_certificate": (_calib(tail=b"\x05\x00"), "CN=n", ""),
    "serial_negative_long": (_calib(ser=_T(2, b"\xff" * 30)), "CN=n", ""),
    "serial_empty": (_calib(ser=_T(2, b"")), "CN=n", ""),
    "serial_swallows_the_algorithm": (_calib(ser=b"\x02\x7f\x01"), None, x509.EV_INVALID_DER),
    "generalized_time_fraction": (_calib(val=_T(0x30, _T(0x18, b"20230101000000Z") + _T(0x18, b"20300101000000.5Z"))),
                                  "CN=n", ""),
    "utc_time_no_seconds": (_calib(val=_T(0x30, _T(0x17, b"2301010000Z") + _T(0x17, b"300101000000Z"))), "CN=n", ""),
    "utc_time_offset": (_calib(val=_T(0x30, _T(0x17, b"230101000000+0130") + _T(0x17, b"300101000000Z"))), "CN=n", ""),
    "generalized_time_no_zone": (_calib(val=_T(0x30, _T(0x18, b"20230101000000") + _T(0x17, b"300101000000Z"))),
                                 None, x509.EV_INVALID_DATE),
    "february_30": (_calib(val=_T(0x30, _T(0x17, b"230230000000Z") + _T(0x17, b"300101000000Z"))), None,
                    x509.EV_INVALID_DATE),
    "second_60": (_calib(val=_T(0x30, _T(0x17, b"231231235960Z") + _T(0x17, b"300101000000Z"))), None,
                  x509.EV_INVALID_DATE),
    "validity_third_element": (_calib(val=_T(0x30, _T(0x17, b"230101000000Z") + _T(0x17, b"300101000000Z")
                                             + _T(5, b""))), "CN=n", ""),
    "attribute_without_value": (_calib(sub=_T(0x30, _T(0x31, _T(0x30, _CN_ATTR)))), "", ""),
    "attribute_value_overflows": (_calib(sub=_T(0x30, _T(0x31, _T(0x30, _CN_ATTR + b"\x0c\x7fab")))), "", ""),
    "attribute_indefinite": (_calib(sub=_T(0x30, _T(0x31, _T(0x30, _CN_ATTR + b"\x0c\x80ab\x00\x00")))), "", ""),
    "length_not_minimal": (_calib(sub=_T(0x30, _T(0x31, _T(0x30, _CN_ATTR + b"\x0c\x81\x02ab")))), "CN=ab", ""),
    "empty_rdn_set": (_calib(sub=_T(0x30, _T(0x31, b""))), "", ""),
    "rdn_then_empty_set": (_calib(sub=_T(0x30, _T(0x31, _T(0x30, _CN_ATTR + _T(12, b"n"))) + _T(0x31, b"")
                                        + _T(0x31, _T(0x30, _CN_ATTR + _T(12, b"m"))))), "CN=n", ""),
    "tbs_indefinite": (_T(0x30, b"\x30\x80" + _T(0xA0, _T(2, b"\x02")) + _T(2, b"\x01") + b"\x00\x00"
                          + _T(0x30, _T(6, b"\x2a\x86\x48\xce\x3d\x04\x03\x02")) + _T(3, b"\x00\x01")),
                       None, x509.EV_INVALID_DER),
}


@pytest.mark.parametrize("name", list(X509_SURICATA))
def test_x509_like_suricata(name):
    der, subject, event = X509_SURICATA[name]
    cert, ev = x509.parse(der)
    assert ev == event
    assert (cert.subject if cert else None) == subject


# the certificate's own header and length, each sent to Suricata 7.0.10 the same way
@pytest.mark.parametrize("der, event", [
    (b"", x509.EV_INVALID_LENGTH),
    (b"\x30", x509.EV_INVALID_LENGTH),
    (b"\x02", x509.EV_INVALID_LENGTH),
    (b"\x30\x82\x01", x509.EV_INVALID_LENGTH),
    (b"\x30\x05\x02\x01", x509.EV_INVALID_CERTIFICATE),          # content past the end
    (b"\x02\x82\x1a\x31" + bytes(40), x509.EV_INVALID_CERTIFICATE),   # judged before the tag
    (b"\x02\x01\x00", x509.EV_INVALID_DER),
    (b"\x30\x03\x02\x01\x00", x509.EV_INVALID_DER),           # recorded in tls_suricata.json too
])
def test_x509_errors(der, event):
    assert x509.parse(der) == (None, event)


def test_x509_serial_and_times():
    cert, _ = x509.parse(_cert(_name(), serial=b"\x00\x9a\x01", version=False, validity=_tlv(
        0x30, _tlv(0x18, b"19691231235959Z") + _tlv(0x17, b"491231235959+0100"))))
    assert cert.serial == "00:9A:01"
    assert cert.not_before == -1 and cert.not_after == 2524607999 - 3600


def test_fingerprint_is_sha1_of_the_der():
    p = feed_all(segments("tls12_full"))
    der = p.tx.server.certs[0]
    assert p.tx.server.fingerprint == ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())


# ---------------------------------------------------------------------------- probe
# the cases with a full record were run through Suricata 7.0.10 (a client sending them first,
# EVE flow app_proto): 16 03 01 on 8443 tls, 16 03 04 on 443 none, 01 03 03 on 80 tls,
# 17 03 03 on 443 none, 80 2e 01 03 01 on 443 tls and on 8443 none, 80 2e 01 00 02 on 8443 tls
@pytest.mark.parametrize("data, to_server, dport, expected", [
    (b"\x16\x03\x01\x02\x00\x01", True, 8443, True),
    (b"\x16\x03\x04\x02\x00", True, 443, False),           # no 0x0304 record version in the patterns
    (b"\x01\x03\x03", True, 80, True),
    (b"\x16\x03", True, 443, None),
    (b"\x17\x03\x03\x00\x10", False, 0, True),
    (b"\x15\x03\x00\x00\x02", False, 0, True),
    (b"\x17\x03\x03", True, 443, False),                    # application data first from a client
    (b"\x80\x2e\x01\x03\x01", True, 443, True),            # SSLv2-compatible hello on a detection port
    (b"\x80\x2e\x01\x03\x01", True, 8443, False),
    (b"\x80\x2e\x01\x00\x02", True, 8443, True),           # a real SSLv2 hello anywhere
    (b"\x80\x2e\x01\x00", True, 8443, None),
    (b"GET / HTTP/1.1\r\n", True, 443, False),
])
def test_probe(data, to_server, dport, expected):
    assert tls.probe(data, to_server, 40000, dport) is expected


def test_probe_detection_ports_from_settings():
    hello = b"\x80\x2e\x01\x03\x01"
    assert tls.probe(hello, True, 40000, 8443, 6, tls.Settings(detection_ports=(443, 8443))) is True
    assert tls.probe(hello, True, 40000, 443, 6, tls.Settings(detection_ports=(8443,))) is False


# ---------------------------------------------------------------------------- keyword values
@pytest.mark.parametrize("keyword, value", [
    (kw.tls_version, "1.4"), (kw.tls_version, "tls1.2"), (kw.tls_version, "0x303"), (kw.tls_version, "1 2"),
    (kw.ssl_version, ""), (kw.ssl_version, "tls1.2,tls1.2"), (kw.ssl_version, "tls1.2,!tls1.0"),
    (kw.ssl_version, "tls1.4"),
    (kw.ssl_state, "client_hello|"), (kw.ssl_state, "hello"), (kw.ssl_state, "client_hello server_hello"),
])
def test_keyword_values_refused(keyword, value):
    with pytest.raises(RuleError):
        parse_kw(keyword, value)


def test_keyword_values_accepted():
    assert parse_kw(kw.tls_version, '"1.2"', True)[0][2](_tx(client=tls.TLS_12))
    assert parse_kw(kw.tls_version, "0x7f12", True)[0][2](_tx(client=0x7F12))
    assert parse_kw(kw.tls_version, "1.3", True)[0][2](_tx(client=0x7F12))     # a TLS 1.3 draft is 1.3
    assert not parse_kw(kw.tls_version, "0x0304", True)[0][2](_tx(client=0x7F12))
    assert parse_kw(kw.ssl_version, "SSLv3 tls1.0", False)[0][2](_tx(server=tls.SSL_3))
    assert parse_kw(kw.ssl_state, "!client_hello, server_keyx")[0][2](_tx(current=tls.ST_SERVER_KEYX))
    (side, progress, fn), = parse_kw(kw.cert_chain_len, ">1")
    assert side is False and progress == tls.CERT_READY


def test_direction_less_version_matches_either_side():
    (side, _, fn), = parse_kw(kw.tls_version, "1.3")
    assert side is True
    assert fn(_tx(client=tls.TLS_12, server=tls.TLS_13)) and fn(_tx(client=tls.TLS_13, server=tls.TLS_12))
    assert not fn(_tx(client=tls.TLS_12, server=tls.TLS_12))


def _tx(client=0, server=0, current=0) -> tls.TlsTx:
    tx = tls.TlsTx()
    tx.client.version, tx.server.version, tx.current_flags = client, server, current
    return tx


def test_handcrafted_client_hello_round_trip():
    """A ClientHello built here field by field gives back the same fields and Suricata's JA3 form."""
    sni = b"a.example"
    exts = (struct.pack("!HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni
            + struct.pack("!HHH", 10, 4, 2) + struct.pack("!H", 29)
            + struct.pack("!HHB", 11, 2, 1) + b"\x00")
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x04\x13\x01\x0a\x0a" + b"\x01\x00" + struct.pack("!H", len(exts)) + exts
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    p = tls.Parser()
    p.feed(b"\x16\x03\x01" + len(msg).to_bytes(2, "big") + msg, True)
    assert p.tx.client.sni == sni and p.tx.client.version == tls.TLS_12
    assert ",".join(p.tx.client.ja3) == "771,4865,0-10-11,29,0"
    assert p.tx.client.ja3_hash == hashlib.md5(b"771,4865,0-10-11,29,0").hexdigest()
    assert p.tx.current_flags == tls.ST_CLIENT_HELLO
