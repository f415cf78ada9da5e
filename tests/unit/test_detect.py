"""The detect stage (rules.detect) on its own: signature order, candidates, IP-only
rules, and what each rule kind inspects when the stream offers a view."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, UDP, Ether

from rules.api import FrameMeta
from rules.decode import decode
from rules.detect import PKT, PKT_STREAM, STREAM, Detector, signature_order
from rules.flow import FlowTable
from rules.parser import parse_rule
from rules.stream import StreamView
from rules.thresholds import Thresholds

C, S = "198.51.100.1", "203.0.113.1"


def packet(l4, table: FlowTable | None = None):
    p = decode(bytes(Ether() / IP(src=C, dst=S) / l4), FrameMeta(ts=1.0, iface=""))[0]
    if table is not None:
        table.lookup(p)
    return p


def sids(matches) -> list[int]:
    return [s.rule.sid for s in matches]


def test_signature_order_is_action_then_flowbits_then_priority_then_load_order():
    texts = ['alert ip any any -> any any (msg:"a"; priority:1; sid:1;)',
             'drop ip any any -> any any (msg:"d"; sid:2;)',
             'alert ip any any -> any any (msg:"r"; flowbits:isset,x; sid:3;)',
             'alert ip any any -> any any (msg:"s"; flowbits:set,x; sid:4;)',
             'pass ip any any -> any any (msg:"p"; sid:5;)',
             'alert ip any any -> any any (msg:"b"; priority:2; sid:6;)']
    assert [r.sid for r in signature_order([parse_rule(t) for t in texts])] == [5, 2, 4, 3, 1, 6]


def test_candidates_come_from_header_groups_and_the_fast_pattern_scan():
    d = Detector([parse_rule(t) for t in (
        'alert udp any any -> any 53 (msg:"dns"; content:"evil"; sid:1;)',
        'alert udp any any -> any 54 (msg:"other port"; content:"evil"; sid:2;)',
        'alert udp any any -> any any (msg:"no pattern"; dsize:>0; sid:3;)')])
    p = packet(UDP(sport=5000, dport=53) / b"an evil query")
    assert sids(d.run(p, None, bytes(p.payload), Thresholds())) == [1, 3]
    before = d.evaluated
    p = packet(UDP(sport=5000, dport=53) / b"harmless")
    assert sids(d.run(p, None, bytes(p.payload), Thresholds())) == [3]
    assert d.evaluated - before == 1            # the pattern rules were never candidates


def test_ip_only_rules_run_on_the_first_packet_of_a_flow_direction():
    d = Detector([parse_rule('alert ip 198.51.100.1 any -> any any (msg:"hdr"; sid:1;)')])
    table = FlowTable()
    got = []
    for _ in range(3):
        p = packet(UDP(sport=5000, dport=53) / b"x", table)
        got.append(sids(d.run(p, p.flow, bytes(p.payload), Thresholds())))
    assert got == [[1], [], []]


@pytest.mark.parametrize("text,kind", [
    ('alert tcp any any -> any any (msg:"s"; content:"forbidden"; sid:1;)', STREAM),
    ('alert tcp any any -> any any (msg:"b"; content:"forbidden"; depth:20; sid:1;)', PKT_STREAM),
    ('alert tcp any any -> any any (msg:"p"; content:"forbidden"; dsize:>0; sid:1;)', PKT),
    ('alert tcp-pkt any any -> any any (msg:"t"; content:"forbidden"; sid:1;)', PKT),
    ('alert tcp any any -> any any (msg:"o"; content:"forbidden"; flow:only_stream; sid:1;)', STREAM),
])
def test_each_kind_inspects_its_buffers(text, kind):
    d = Detector([parse_rule(text)])
    (sig,) = d.sigs
    assert sig.kind == kind
    p = packet(TCP(sport=5000, dport=80, flags="PA") / b"dden")
    window = StreamView((b"forbidden",), b"dden", None, False, True)       # split: the window holds it
    hits: set = set()
    matched = sids(d.run(p, None, b"dden", Thresholds(), window, hits))
    assert matched == ([] if kind == PKT else [1])
    assert (id(sig) in hits) == (kind != PKT)
    whole = packet(TCP(sport=5000, dport=80, flags="PA") / b"forbidden")
    alone = sids(d.run(whole, None, b"forbidden", Thresholds(), None, set()))      # not taken in
    assert alone == ([] if "only_stream" in text else [1])
