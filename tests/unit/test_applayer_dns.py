"""rules.applayer.dns and rules.keywords.dns_app.

The expected values marked "Suricata" were recorded from Suricata 7.0.10: each
message was written to a pcap (UDP to port 53 after a request where a response
is tested; TCP with a handshake, each feed below one segment), run with
`suricata -r x.pcap -S x.rules -k none --runmode single` and rules such as
`dns.query; content:"<name>"; startswith; endswith;`, `dns.query; bsize:N;`,
`dns.opcode:!255;` (one alert per transaction) and
`app-layer-event:dns.<event>;`, with eve `dns` and `anomaly` records read
back.  dns.opcode values were checked with `suricata -T`.
"""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.applayer import dns as D
from rules.applayer.base import DONE
from rules.errors import RuleError
from rules.keywords import dns_app
from rules.keywords._base import Ctx


# ---------------------------------------------------------------- message builders
def hdr(id=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!6H", id, flags, qd, an, ns, ar)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in labels) + b"\0"


def q(nm: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return nm + struct.pack("!HH", qtype, qclass)


def rr(rtype: int, data: bytes, owner: bytes = b"\xc0\x0c") -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, 60, len(data)) + data


def ptr(off: int) -> bytes:
    return bytes([0xC0 | (off >> 8), off & 0xFF])


def tcp(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


GOOD = hdr() + q(name(b"good", b"com"))
RESP = hdr(flags=0x8180, an=1) + q(name(b"good", b"com")) + rr(1, b"\x01\x02\x03\x04")
BAD = hdr() + ptr(12) + b"\x00\x01\x00\x01"          # a name that is a pointer to itself


def udp(*msgs, settings=None):
    """A UDP parser fed (to_server, message) pairs."""
    p = D.Parser(settings)
    for to_server, m in msgs:
        p.feed(m, to_server)
    return p


def request_names(msg: bytes):
    p = udp((True, msg))
    return [x[0] for x in p.txs[0].questions] if p.txs else None


def query_buffer(msg: bytes):
    p = udp((True, msg))
    return D.BUFFERS[0].get(p.txs[0]) if p.txs else "no tx"


# ---------------------------------------------------------------- names, as Suricata renders them
def _quirk(pointers: int) -> bytes:
    """16 labels of 63 (1023 characters), a pointer to a chain of `pointers` pointers,
    then a label of 63: the item limit (255) and the length limit (1025) meet."""
    qname = (b"\x3f" + b"q" * 63) * 16
    start = 12 + len(qname) + 2 + 4
    chain = b"".join(ptr(start + 2 * (i + 1)) for i in range(pointers))
    return hdr() + qname + ptr(start) + b"\x00\x01\x00\x01" + chain + b"\x3f" + b"z" * 63 + b"\0"


# (message, the question names of the request transaction or None: no transaction, events)
NAMES = {
    "plain": (hdr() + q(name(b"www", b"example", b"com")), [b"www.example.com"], []),
    "dot-inside-label": (hdr() + q(name(b"a.b", b"c")), [b"a.b.c"], []),
    "bytes-verbatim": (hdr() + q(name(b"a\x00\xff\x7f", b"c d")), [b"a\x00\xff\x7f.c d"], []),
    "case-kept": (hdr() + q(name(b"WWW", b"Example")), [b"WWW.Example"], []),
    "root-is-empty": (hdr(qd=2) + q(b"\0") + q(name(b"evil", b"com")), [b"", b"evil.com"], []),
    "pointer-into-header": (hdr(id=0x0341) + q(ptr(0)), [b"A\x01\x00"], []),
    "pointer-to-suffix": (hdr(qd=2) + q(name(b"www", b"example", b"com")) + q(b"\x03foo" + ptr(16)),
                          [b"www.example.com", b"foo.example.com"], []),
    "pointer-to-message-end": (hdr() + b"\x03abc" + ptr(22) + b"\x00\x01\x00\x01", [b"abc"], []),
    "255-labels": (hdr() + b"\x01a" * 255 + b"\0\x00\x01\x00\x01", [b".".join([b"a"] * 255)], []),
    "256-labels": (hdr() + b"\x01a" * 256 + b"\0\x00\x01\x00\x01", None, []),
    "300-labels": (hdr() + b"\x01a" * 300 + b"\0\x00\x01\x00\x01", None, []),
    "long-cut-to-1025": (hdr() + (b"\x3f" + b"b" * 63) * 20 + b"\0\x00\x01\x00\x01",
                         [b".".join([b"b" * 63] * 20)[:1025]], ["dns.name_too_long"]),
    "label-pointer-loop": (hdr() + b"\x3f" + b"a" * 63 + ptr(12) + b"\x00\x01\x00\x01",
                           [b".".join([b"a" * 63] * 17)[:1025]], ["dns.name_too_long"]),
    # 12 -> 14 -> 12: the item limit ends the name (empty); type/class are read after the first pointer
    "pointer-pointer-loop": (hdr() + ptr(14) + ptr(12) + b"\x00\x01\x00\x01", [b""],
                             ["dns.name_too_long", "dns.too_many_labels"]),
    "self-pointer-first": (hdr() + ptr(12) + b"\x00\x01\x00\x01", None, []),
    "self-pointer-after-pointer": (hdr() + b"\x01x" + ptr(20) + b"\x00\x01\x00\x01" + b"\x03abc" + ptr(24),
                                   [b"x.abc"], ["dns.infinite_loop"]),
    "label-type-0x40": (hdr() + b"\x41a\0\x00\x01\x00\x01", None, []),
    "no-terminator": (hdr() + b"\x03abc", None, []),
    "pointer-beyond-message": (hdr() + b"\xc0\xff\x00\x01\x00\x01", None, []),
    "items-limit-before-length-limit": (_quirk(238), [b".".join([b"q" * 63] * 16 + [b"z" * 63])],
                                        ["dns.name_too_long", "dns.too_many_labels"]),
    "items-limit-one-earlier": (_quirk(239), [b".".join([b"q" * 63] * 16)],
                                ["dns.name_too_long", "dns.too_many_labels"]),
    "length-limit-first": (_quirk(237), [(b".".join([b"q" * 63] * 16) + b"." + b"z" * 63)[:1025]],
                           ["dns.name_too_long"]),
}


@pytest.mark.parametrize("case", list(NAMES))
def test_names_as_suricata(case):
    msg, names, events = NAMES[case]
    p = udp((True, msg))
    assert ([x[0] for x in p.txs[0].questions] if p.txs else None) == names
    assert p.events == events


def test_name_lengths_as_suricata():
    # Suricata's dns.query bsize: 1025 (cut), 1087 (the 256th item is a label: not cut), 1023
    assert [len(request_names(_quirk(k))[0]) for k in (237, 238, 239)] == [1025, 1087, 1023]


def test_long_name_without_pointer_is_read_to_its_end():
    # cut at 1025, but the labels after the cut are still walked: the type follows the name
    msg = hdr(qd=2) + (b"\x3f" + b"b" * 63) * 20 + b"\0" + b"\x00\x10\x00\x01" + q(name(b"next"), 28)
    assert [(len(x[0]), x[1]) for x in udp((True, msg)).txs[0].questions] == [(1025, 16), (4, 28)]


def test_pointer_loop_reads_type_after_first_pointer():
    # Suricata logs rrtype 49164 (0xc00c): the question's type is read after the first pointer
    p = udp((True, NAMES["pointer-pointer-loop"][0]))
    assert p.txs[0].questions == [(b"", 0xC00C, 1)]


def test_query_buffer_stops_at_empty_name():
    # Suricata: no dns.query match for "evil.com" after a root question; before it, a match
    assert query_buffer(NAMES["root-is-empty"][0]) is None
    assert query_buffer(hdr(qd=2) + q(name(b"evil", b"com")) + q(b"\0")) == [b"evil.com"]
    assert query_buffer(hdr(qd=0)) is None


def test_query_buffer_is_requests_only():
    p = udp((True, GOOD), (False, RESP))
    assert [tx.to_server for tx in p.txs] == [True, False]
    assert D.BUFFERS[0].get(p.txs[0]) == [b"good.com"]
    assert p.txs[1].questions[0][0] == b"good.com"
    assert D.BUFFERS[0].get(p.txs[1]) is None


def test_buffer_table():
    (b,) = D.BUFFERS
    assert (b.name, b.proto, b.to_server, b.progress, b.multi) == ("dns.query", "dns", True, DONE, True)
    assert D.ALIASES == {"dns_query": "dns.query"}
    assert (D.PROTO, D.IPPROTOS, D.HEADER_NAMES) == ("dns", (6, 17), ("dns",))


def test_dns_names_for_packet_extractor():
    assert D.dns_names(GOOD) == [b"good.com"]
    assert D.dns_names(RESP) == []
    assert D.dns_names(BAD) == []
    assert D.dns_names(b"\x00" * 5) == []


# ---------------------------------------------------------------- transactions and events
def test_request_and_response_are_transactions_of_their_own():
    p = udp((True, GOOD), (False, RESP), (False, RESP))
    assert [(tx.id, tx.to_server, tx.msg_id) for tx in p.txs] == [(1, True, 0x1234), (2, False, 0x1234),
                                                                  (3, False, 0x1234)]
    assert all(tx.progress == [DONE, DONE] and tx.done() for tx in p.txs)
    assert p.events == [] and not p.failed


def test_response_without_request():
    p = udp((False, RESP))
    assert len(p.txs) == 1 and not p.txs[0].to_server


def test_unanswered_requests_are_bounded():
    p = udp(*[(True, hdr(id=i) + q(name(b"a"))) for i in range(10)], settings=D.Settings(max_txs=3))
    assert [tx.msg_id for tx in p.txs] == [7, 8, 9]


@pytest.mark.parametrize("flags,events", [
    (0x0140, ["dns.z_flag_set"]),
    (0x3900, ["dns.invalid_opcode"]),       # opcode 7
    (0x3100, []),                           # opcode 6
    (0x7940, ["dns.z_flag_set", "dns.invalid_opcode"]),
], ids=["z", "opcode7", "opcode6", "both"])
def test_header_events(flags, events):
    p = udp((True, hdr(flags=flags) + q(name(b"good", b"com"))))
    assert len(p.txs) == 1 and p.events == events


def test_udp_malformed_and_misdirected_raise_nothing():
    # Suricata: no transaction, and the event has no transaction to go on
    assert udp((True, BAD)).events == []
    p = udp((True, GOOD), (True, BAD))
    assert len(p.txs) == 1 and p.events == [] and not p.failed
    p = udp((True, GOOD), (True, RESP))          # a response sent to the server
    assert len(p.txs) == 1 and p.events == []
    p = udp((True, GOOD[:-2]))                   # the question's class cut off
    assert p.txs == [] and p.events == []


def test_udp_header_that_does_not_fit_is_ignored():
    p = udp((True, hdr(an=9) + q(name(b"good", b"com"))), (True, b"\x12\x34"), (True, GOOD))
    assert len(p.txs) == 1 and p.events == [] and not p.failed


def test_not_response_keeps_the_transaction():
    # a request-flagged message to the client: still a (response) transaction
    p = udp((True, GOOD), (False, GOOD))
    assert [tx.to_server for tx in p.txs] == [True, False] and p.events == []


def test_tcp_events_go_on_an_earlier_message_of_the_same_feed():
    # Suricata: good + malformed in one segment -> dns.malformed_data, and the parser stops
    p = D.Parser(ipproto=6)
    p.feed(tcp(GOOD) + tcp(BAD), True)
    assert len(p.txs) == 1 and p.events == ["dns.malformed_data"] and p.failed
    p = D.Parser(ipproto=6)
    p.feed(tcp(GOOD) + tcp(RESP), True)
    assert p.events == ["dns.not_request"] and p.failed
    p = D.Parser(ipproto=6)
    p.feed(tcp(GOOD) + tcp(GOOD), False)
    assert p.events == ["dns.not_response"] and len(p.txs) == 2 and not p.failed


def test_tcp_gives_up_after_a_bad_message():
    # Suricata: good, malformed, good in three segments -> one transaction, no event
    p = D.Parser(ipproto=6)
    for m in (GOOD, BAD, GOOD):
        p.feed(tcp(m), True)
    assert len(p.txs) == 1 and p.events == [] and p.failed
    p.feed(tcp(GOOD), False)
    assert len(p.txs) == 1
    p = D.Parser(ipproto=6)
    p.feed(tcp(hdr(an=9) + q(name(b"x"))), True)     # header counts do not fit
    assert p.failed and p.events == []


RDATA = {   # Suricata: does a response whose one answer has this rdata make a transaction?
    "A-empty": (1, b"", False), "A-1-byte": (1, b"\x01", True), "A-4-bytes": (1, b"\x01\x02\x03\x04", True),
    "CNAME-empty": (5, b"", False), "CNAME-root": (5, b"\x00", True), "CNAME-unterminated": (5, b"\x03abc", True),
    "CNAME-cut": (5, b"\x05ab", False), "MX-2": (15, b"\x00\x0a", True), "MX-1": (15, b"\x00", False),
    "SRV-5": (33, b"\x00" * 5, False), "SRV-6": (33, b"\x00" * 6, True),
    "SOA-19": (6, b"\x00\x00" + b"\x00" * 19, False), "SOA-20": (6, b"\x00\x00" + b"\x00" * 20, True),
    "TXT-empty": (16, b"", False), "TXT-over": (16, b"\x05ab", False), "TXT-then-over": (16, b"\x01a\x05ab", True),
    "SSHFP-1": (44, b"\x01", False), "SSHFP-2": (44, b"\x01\x02", True), "unknown-empty": (99, b"", False),
}


@pytest.mark.parametrize("case", list(RDATA))
def test_response_rdata_as_suricata(case):
    rtype, data, made = RDATA[case]
    p = udp((True, GOOD), (False, hdr(flags=0x8180, an=1) + q(name(b"good", b"com")) + rr(rtype, data)))
    assert (len(p.txs) == 2) is made


def test_response_record_cut_and_name_events_in_answers():
    cut = hdr(flags=0x8180, an=1) + q(name(b"good", b"com")) + ptr(12) + struct.pack("!HHIH", 1, 1, 60, 10) + b"\x01"
    assert len(udp((False, cut)).txs) == 0
    # an answer's name through a loop: the response is made, with the name events
    loop = hdr(flags=0x8180, qd=0, an=1) + ptr(14) + ptr(12) + struct.pack("!HIH", 1, 60, 1) + b"\x01"
    p = udp((False, loop))
    assert len(p.txs) == 1 and p.events == ["dns.name_too_long", "dns.too_many_labels"]
    # additional records are not parsed (only counted in the header check)
    extra = hdr(flags=0x8180, ar=1) + q(name(b"good", b"com")) + b"\xff\xff"
    assert len(udp((False, extra)).txs) == 1


SELF_CNAME = bytes.fromhex("12348180000100020000000004676f6f6403636f6d0000010001c00c000500010000003c0002c026"
                           "c00c000100010000003c000401020304")
ALIAS_CNAME = bytes.fromhex("12348180000100020000000004676f6f6403636f6d0000010001c00c000500010000003c0002c036"
                            "c00c000100010000003c00040102c036")


def test_pointer_to_itself_in_record_data():
    # Suricata: a CNAME whose data is a pointer to itself, with more of the message after
    # it, is no "pointer to itself" at first (its data ends before the message does): it
    # is followed once, then is one -> the response is made, dns.infinite_loop
    p = udp((True, GOOD), (False, SELF_CNAME))
    assert len(p.txs) == 2 and p.events == ["dns.infinite_loop"]
    # ...whereas a pointer from record data to the message's last two bytes, which hold
    # the same pointer, counts as one (Suricata compares the bytes): malformed
    p = udp((True, GOOD), (False, ALIAS_CNAME))
    assert len(p.txs) == 1 and p.events == []


def test_authority_records_are_parsed():
    # Suricata: an authority A record without data makes the response malformed; an NS one
    # with the root name is fine
    bad = hdr(flags=0x8180, ns=1) + q(name(b"good", b"com")) + rr(1, b"")
    ok = hdr(flags=0x8180, ns=1) + q(name(b"good", b"com")) + rr(2, b"\x00")
    assert len(udp((False, bad)).txs) == 0
    assert len(udp((False, ok)).txs) == 1


# ---------------------------------------------------------------- TCP framing
STREAM = tcp(GOOD) + b"\x00\x00" + tcp(hdr(id=7) + q(name(b"b", b"example"))) + tcp(hdr(id=9, qd=2) + q(name(b"c"))
                                                                                  + q(ptr(12 + 0)))


def _tcp_summary(chunks, to_server=True):
    p = D.Parser(ipproto=6)
    for c in chunks:
        p.feed(c, to_server)
    return [(tx.msg_id, [x[0] for x in tx.questions]) for tx in p.txs], p.events, p.failed


def test_tcp_several_messages_per_feed_and_zero_lengths():
    txs, events, failed = _tcp_summary([STREAM])
    assert [t[0] for t in txs] == [0x1234, 7, 9] and events == [] and not failed
    assert txs[1][1] == [b"b.example"]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_tcp_split_at_every_byte(cut):
    assert _tcp_summary([STREAM[:cut], STREAM[cut:]]) == _tcp_summary([STREAM])


def test_tcp_byte_by_byte_and_directions_held_apart():
    p = D.Parser(ipproto=6)
    resp = tcp(RESP)
    for i in range(max(len(STREAM), len(resp))):
        p.feed(STREAM[i:i + 1], True)
        p.feed(resp[i:i + 1], False)
    assert sorted((tx.to_server, tx.msg_id) for tx in p.txs) == [(False, 0x1234), (True, 7), (True, 9),
                                                                 (True, 0x1234)]


def test_tcp_incomplete_message_held_then_dropped_at_end():
    p = D.Parser(ipproto=6)
    p.feed(b"\xff\xff" + b"\x00" * 1000, True)
    assert len(p.held[True]) == 1002 and p.txs == []
    p.end(True)
    assert len(p.held[True]) == 0
    p.feed(tcp(GOOD), True)
    assert len(p.txs) == 1


def test_disabled_and_detection_only_do_not_parse():
    for mode in ("no", "detection-only"):
        assert udp((True, GOOD), settings=D.Settings(udp_enabled=mode)).txs == []
        p = D.Parser(D.Settings(tcp_enabled=mode), ipproto=6)
        p.feed(tcp(GOOD), True)
        assert p.txs == []


# ---------------------------------------------------------------- protocol detection
@pytest.mark.parametrize("data,to_server,sport,dport,ipproto,want", [
    (GOOD, True, 33333, 53, 17, True),
    (RESP, False, 53, 33333, 17, True),                 # the server's port is the response's source
    (GOOD, True, 33333, 5353, 17, False),               # Suricata: DNS on another port is not detected
    (GOOD, True, 53, 5353, 17, False),                  # a client port of 53 does not count
    (GOOD[:11], True, 1, 53, 17, False),                # under a header
    (hdr(an=9) + q(name(b"x")), True, 1, 53, 17, False),  # header counts do not fit
    (hdr() + b"\x41a\0\x00\x01\x00\x01", True, 1, 53, 17, False),  # a label type that does not parse
    (GOOD[:-2], True, 1, 53, 17, True),                 # cut short: still DNS
    (tcp(GOOD), True, 1, 53, 6, True),
    (tcp(GOOD)[:13], True, 1, 53, 6, None),             # under length + header: not known yet
    (tcp(GOOD)[:14], True, 1, 53, 6, True),             # the header fits the announced length
    (tcp(GOOD), True, 1, 5353, 6, False),
    (tcp(hdr() + b"\x41a\0\x00\x01\x00\x01"), True, 1, 53, 6, False),
    (tcp(hdr() + b"\x41a\0\x00\x01\x00\x01")[:16], True, 1, 53, 6, True),   # only the header is checked yet
    (tcp(hdr(an=9) + q(name(b"x"))), True, 1, 53, 6, False),
    (tcp(hdr(an=9) + q(name(b"x")))[:16], True, 1, 53, 6, False),   # the header alone already tells
    (b"\x00\x00" + GOOD[:12], True, 1, 53, 6, None),    # a zero length: not known at 14 bytes,
    (b"\x00\x00" + GOOD, True, 1, 53, 6, False),        # not DNS beyond (Suricata: never detected)
], ids=["udp-request", "udp-response", "udp-other-port", "udp-client-port-53", "udp-short", "udp-counts",
        "udp-label-type", "udp-cut", "tcp-request", "tcp-13-bytes", "tcp-14-bytes", "tcp-other-port",
        "tcp-label-type", "tcp-label-type-not-yet-seen", "tcp-counts", "tcp-counts-not-all-here", "tcp-zero-length-14",
        "tcp-zero-length"])
def test_probe(data, to_server, sport, dport, ipproto, want):
    assert D.probe(data, to_server, sport, dport, ipproto) is want


def test_probe_settings():
    assert D.probe(GOOD, True, 1, 5353, 17, D.Settings(udp_ports=frozenset({5353}))) is True
    assert D.probe(GOOD, True, 1, 53, 17, D.Settings(udp_enabled="no")) is False
    assert D.probe(GOOD, True, 1, 53, 17, D.Settings(udp_enabled="detection-only")) is True


def test_message_direction():
    assert D.message_to_server(GOOD) is True
    assert D.message_to_server(RESP) is False
    assert D.message_to_server(tcp(RESP), 6) is False
    assert D.message_to_server(b"\x00\x01") is None


# ---------------------------------------------------------------- dns.opcode
OPCODE_VALUES = {   # Suricata (suricata -T): accepted values and what they mean, None: refused
    "4": (False, 4), "!4": (True, 4), "! 4": (True, 4), "!!4": (True, 4), "! ! 4": (True, 4),
    "+4": (False, 4), "!+4": (True, 4), "04": (False, 4), "00000000004": (False, 4), "!\t4": (True, 4),
    "255": (False, 255), "256": None, "1000": None, "-1": None, "0x4": None, "!": None, "4,5": None,
    "4 4": None, '"4"': None, "+": None, "+!4": None, "٤": None,
}


@pytest.mark.parametrize("value", list(OPCODE_VALUES))
def test_opcode_values_as_suricata(value):
    assert dns_app.parse_opcode(value) == OPCODE_VALUES[value]


def _opcode_check(value):
    ctx = Ctx(vars={}, classification={})
    ctx.keyword = "dns.opcode"
    spec = dns_app.dns_opcode.parse(value, ctx)
    (side, progress, fn), = ctx.app_checks
    assert (ctx.app_proto, side, progress) == ("dns", None, DONE)      # either side: the rule's direction picks it
    return spec, fn


def test_opcode_matches_each_message_by_its_own_header():
    # Suricata: dns.opcode:4 alerts on a request with opcode 4 (to server) and on a response
    # with opcode 4 (to client), each on its own; !0 on either with opcode 4
    req4 = hdr(flags=0x2100) + q(name(b"good", b"com"))
    resp0 = hdr(flags=0x8180) + q(name(b"good", b"com"))
    p = udp((True, req4), (False, resp0))
    spec, is4 = _opcode_check("4")
    assert spec == "4" and [is4(tx) for tx in p.txs] == [True, False]
    spec, not0 = _opcode_check("! 0")
    assert spec == "!0" and [not0(tx) for tx in p.txs] == [True, False]
    _, is16 = _opcode_check("16")
    _, not16 = _opcode_check("!16")
    assert not any(is16(tx) for tx in p.txs) and all(not16(tx) for tx in p.txs)


def test_opcode_refused_value_and_other_protocol():
    ctx = Ctx(vars={}, classification={})
    ctx.keyword = "dns.opcode"
    with pytest.raises(RuleError, match="not an opcode"):
        dns_app.dns_opcode.parse("256", ctx)
    ctx.app_proto = "http"
    with pytest.raises(RuleError, match="already inspects http"):
        dns_app.dns_opcode.parse("4", ctx)


# ---------------------------------------------------------------- the decoder against a plain one
def reference_name(msg: bytes, off: int, limit: int):
    """The name algorithm written as one plain loop (no memo, no split at the first
    pointer): what decode_name must agree with."""
    n, pos, end, pivot, name, count, flags = len(msg), off, limit, -1, bytearray(), 0, 0
    while pos < end:
        ln = msg[pos]
        if ln == 0:
            pos += 1
            break
        if ln & 0xC0 == 0:
            if pos + 1 + ln > end:
                return None
            if not flags & D.TRUNCATED:
                name += (b"." if name else b"") + msg[pos + 1:pos + 1 + ln]
            pos += 1 + ln
        elif ln & 0xC0 == 0xC0:
            if pos + 2 > end:
                return None
            t = ((ln & 0x3F) << 8) | msg[pos + 1]
            if t > n:
                return None
            if msg[t:] == msg[pos:end]:
                if pivot < 0:
                    return None
                flags |= D.INFINITE_LOOP
                break
            if pivot < 0:
                pivot = pos + 2
            pos, end = t, n
        else:
            return None
        count += 1
        if count > 255:
            if pivot < 0:
                return None
            flags |= D.LABEL_LIMIT | D.TRUNCATED
            break
        if len(name) > 1025:
            del name[1025:]
            flags |= D.TRUNCATED
            if pivot >= 0:
                break
    return bytes(name), (pivot if pivot >= 0 else pos), flags


_item = st.one_of(
    st.binary(min_size=1, max_size=63).map(lambda b: bytes([len(b)]) + b),
    st.integers(0, 120).map(ptr),
    st.sampled_from([b"\x00", b"\x3f", b"\x41", b"\x80", b"\xc0"]),
)
_messages = st.lists(_item, max_size=40).map(b"".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_messages, starts=st.lists(st.integers(0, 200), min_size=1, max_size=6),
       limit_cut=st.integers(0, 8))
def test_decode_name_agrees_with_plain_loop(body, starts, limit_cut):
    msg = hdr(qd=3) + body
    memo: dict = {}
    for s in starts:
        s = min(s, len(msg))
        limit = max(s, len(msg) - limit_cut)
        got = D.decode_name(msg, s, limit, memo)
        want = reference_name(msg, s, limit)
        assert (got[1:] if got[0] == D.OK else None) == want


# ---------------------------------------------------------------- never raises, stays bounded
_framed = st.lists(st.one_of(_messages.map(lambda b: hdr(qd=2, an=1) + b), st.binary(max_size=80)), max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=_framed, cuts=st.lists(st.integers(0, 400), max_size=8), dirs=st.lists(st.booleans(), max_size=8))
def test_fuzz_tcp_never_raises_and_holds_at_most_one_message(msgs, cuts, dirs):
    wire = b"".join(struct.pack("!H", len(m) & 0xFFFF) + m for m in msgs)
    p = D.Parser(D.Settings(max_txs=4), ipproto=6)
    at = 0
    for i, c in enumerate(sorted(cuts) + [len(wire)]):
        d = dirs[i] if i < len(dirs) else True
        p.feed(wire[at:c], d)
        at = max(at, c)
        assert len(p.txs) <= 4 and len(p.events) <= 64
        assert all(len(h) <= D.MAX_TCP_MESSAGE for h in p.held)
        if p.held[d]:
            assert len(p.held[d]) < 2 or len(p.held[d]) < 2 + ((p.held[d][0] << 8) | p.held[d][1])
    p.end(True)
    p.end(False)
    for tx in p.txs:
        D.BUFFERS[0].get(tx)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=300), _messages.map(lambda b: hdr(qd=4, an=2, ns=1) + b)),
       flags=st.integers(0, 0xFFFF), to_server=st.booleans())
def test_fuzz_udp_never_raises(data, flags, to_server):
    if len(data) >= 4:
        data = data[:2] + struct.pack("!H", flags) + data[4:]
    for ipproto in (6, 17):
        D.probe(data, to_server, 53, 53, ipproto)
        D.message_to_server(data, ipproto)
    p = udp((to_server, data))
    assert len(p.txs) <= 1
    D.dns_names(data)
    for tx in p.txs:
        names = D.BUFFERS[0].get(tx)
        assert names is None or all(names)
        assert all(len(x[0]) <= 1025 + 64 for x in tx.questions)


def test_pathological_pointers_stay_cheap(monkeypatch):
    # 247 questions pointing into a pointer loop: two walks thanks to the memo (Suricata
    # accepts the message: one transaction, every name empty)
    n = (1500 - 16) // 6
    msg = hdr(qd=n) + ptr(14) + ptr(12) + b"\x00\x01" + (ptr(12) + b"\x00\x01\x00\x01") * (n - 1)
    walks = []
    follow = D._follow
    monkeypatch.setattr(D, "_follow", lambda *a: walks.append(a[1]) or follow(*a))
    p = udp((True, msg))
    assert len(p.txs) == 1 and [x[0] for x in p.txs[0].questions] == [b""] * n
    assert walks == [14, 12]
