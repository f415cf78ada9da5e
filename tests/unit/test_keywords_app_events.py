"""app-layer-event: which names load (as suricata -T 7.0.10 takes them), the list of events the
parsers raise kept in step with their sources, and the transaction semantics: the event goes
to the transaction the feed moved, a rule without direction alerts once per direction."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from scapy.all import IP, TCP, UDP, Ether

from rules.api import FrameMeta
from rules.applayer import TX_EVENTS
from rules.engine import Engine
from rules.errors import RuleError
from rules.events import Alert
from rules.keywords.app_events import NOT_AS_SURICATA, RAISED, SUR_EVENTS
from rules.parser import parse_rule
from rules.settings import EngineSettings

REPO = Path(__file__).resolve().parents[2]


def load(header: str, value: str):
    return parse_rule(f'alert {header} any any -> any any (msg:"m"; app-layer-event:{value}; sid:1;)',
                      file="t.rules", line=5)


# (header protocol, value, what Suricata 7.0.10 does: "ok" loads, "error" refuses, "skip" skips the
# rule with a warning) and what ipsbridge does: "ok", "invalid", "unsupported"
CASES = [
    ("dns", "dns.z_flag_set", "ok", "ok"),
    ("tcp", "dns.malformed_data", "ok", "ok"),
    ("ip", "tls.invalid_record_type", "ok", "ok"),
    ("ip", " tls.INVALID_RECORD_TYPE ", "ok", "ok"),                       # TLS names in any case
    ("http", "http.invalid_transfer_encoding_value_in_request", "ok", "ok"),
    ("ip", "http1.invalid_transfer_encoding_value_in_request", "ok", "ok"),
    ("http", "http.request_header_invalid", "ok", "ok"),                  # a request header name with a space
    ("http", "http.response_header_invalid", "ok", "unsupported"),        # libhtp raised it on no line we craft
    ("ip", "APPLAYER_MISMATCH_PROTOCOL_BOTH_DIRECTIONS", "ok", "unsupported"),
    ("ip", "smtp.invalid_reply", "ok", "unsupported"),
    ("ip", "tls.certificate_invalid_validity", "ok", "unsupported"),      # a Suricata event not raised here
    ("http", "HTTP.request_header_invalid", "error", "invalid"),
    ("ip", "foo.bar", "error", "invalid"),
    ("ip", "applayer_nonsense", "error", "invalid"),
    ("icmp", "http.request_line_invalid", "error", "invalid"),
    ("tls", "http.request_line_invalid", "error", "invalid"),
    ("ip", "!http.request_line_invalid", "error", "invalid"),
    ("ip", "modbus.invalid_length", "error", "invalid"),
    ("dns", "dns.MALFORMED_DATA", "skip", "invalid"),                       # DNS names in lower case only
    ("tls", "tls.certificate_missing_element", "skip", "invalid"),
    ("http", "http.nonsense", "skip", "invalid"),
    ("udp", "tls.invalid_record_type", "skip", "invalid"),                 # no TLS over UDP
    ("ip", "http.", "skip", "invalid"),
]


@pytest.mark.parametrize("header,value,suricata,ours", CASES, ids=[f"{c[0]}-{c[1].strip()}" for c in CASES])
def test_names(header, value, suricata, ours):
    if ours == "ok":
        r = load(header, value)
        assert r.app is not None and r.app_proto == value.strip().split(".")[0].lower().replace("http1", "http")
        return
    with pytest.raises(RuleError) as ei:
        load(header, value)
    e = ei.value
    assert (e.file, e.line, e.keyword) == ("t.rules", 5, "app-layer-event")
    assert bool(e.unsupported) == (ours == "unsupported")
    if e.unsupported:
        assert e.unsupported.startswith("app-layer-event:")


def test_raised_is_what_the_parsers_raise():
    """RAISED lists the Suricata event names the parsers' sources raise, but for the ones
    raised on other traffic than Suricata's (NOT_AS_SURICATA)."""
    names = set()
    for mod in ("http.py", "http_body.py", "tls.py", "x509.py", "dns.py"):
        text = (REPO / "rules" / "applayer" / mod).read_text()
        names |= set(re.findall(r'"((?:http|tls|dns)\.[a-z0-9_]+)"', text))
    sur = {f"{p}.{e}" for p, evs in SUR_EVENTS.items() for e in evs}
    assert RAISED == (names & sur) - set(NOT_AS_SURICATA)


def test_the_error_column_points_at_the_event():
    text = 'alert dns any any -> any any (msg:"m"; app-layer-event:dns.nope; sid:1;)'
    with pytest.raises(RuleError) as ei:
        parse_rule(text)
    assert ei.value.column == text.index("nope") + 1


# ---------------------------------------------------------------- transactions
C, S = "198.51.100.1", "203.0.113.2"


def dns_query(flags: int) -> bytes:
    return struct.pack("!6H", 7, flags, 1, 0, 0, 0) + b"\x01z\x07example\x00" + struct.pack("!HH", 1, 1)


class Run:
    def __init__(self, *rules):
        self.e = Engine([parse_rule(t) for t in rules], EngineSettings(mode="ips"))
        self.n = 0

    def __call__(self, frame: bytes) -> list[int]:
        self.n += 1
        r = self.e.inspect(frame, FrameMeta(ts=100.0 + self.n, iface="", pcap_cnt=self.n))
        assert self.e.stats()["engine.errors"] == 0
        return sorted(ev.sid for ev in r.events if isinstance(ev, Alert))


def test_a_dns_event_is_on_its_request():
    run = Run('alert dns any any -> any any (msg:"z"; app-layer-event:dns.z_flag_set; sid:1;)',
              'alert dns any any -> any any (msg:"op"; app-layer-event:dns.invalid_opcode; sid:2;)')
    assert run(bytes(Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=53) / dns_query(0x0140))) == [1]
    assert run(bytes(Ether() / IP(src=S, dst=C) / UDP(sport=53, dport=5000) / dns_query(0x8180))) == []
    assert run(bytes(Ether() / IP(src=C, dst=S) / UDP(sport=5001, dport=53) / dns_query(0x0100))) == []


def tls_session(run, hello: bytes) -> list[list[int]]:
    def fr(flags, seq, ack, data=b"", rev=False):
        ip = IP(src=S, dst=C) if rev else IP(src=C, dst=S)
        tcp = TCP(sport=443, dport=40000, flags=flags, seq=seq, ack=ack) if rev else \
            TCP(sport=40000, dport=443, flags=flags, seq=seq, ack=ack)
        return bytes(Ether() / ip / tcp / data)
    rec = b"\x16\x03\x01" + struct.pack("!H", len(hello)) + hello
    out = [run(fr("S", 100, 0)), run(fr("SA", 500, 101, rev=True)), run(fr("A", 101, 501)),
           run(fr("PA", 101, 501, rec)), run(fr("PA", 501, 101 + len(rec), b"\x15\x03\x01\x00\x02\x02\x28", rev=True))]
    return out


BAD_HELLO = bytes.fromhex("0100002d0303") + b"\x00" * 32 + bytes.fromhex("000002002f01000002ff01")


def test_a_rule_without_direction_alerts_once_per_direction():
    """As Suricata: the event is on the (one) TLS transaction, inspected in each direction."""
    run = Run('alert tls any any -> any any (msg:"len"; app-layer-event:tls.handshake_invalid_length; sid:1;)',
              'alert tls any any -> any any (msg:"len c2s"; flow:to_server; '
              'app-layer-event:tls.handshake_invalid_length; sid:2;)')
    assert tls_session(run, BAD_HELLO) == [[], [], [], [1, 2], [1]]


def test_events_go_to_the_transaction_the_feed_moved():
    run = Run('alert tls any any -> any any (msg:"len"; app-layer-event:tls.handshake_invalid_length; sid:1;)')
    tls_session(run, BAD_HELLO)
    (flow,) = list(run.e.flows.all())
    (tx,) = flow.app.parser.txs
    assert tx.found[TX_EVENTS] == {"tls.handshake_invalid_length"}
