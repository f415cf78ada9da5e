"""Signature order when priorities differ (rules.detect.signature_order, the detect
stage's matches, the verdict and the events).

What the code documents, as Suricata's default ordering (detect-engine-sigorder.c):
action first (pass, drop, reject, alert: Suricata's default action-order), then the
flowbits class (rules that only set, set and read, only read, none), then priority
(1 is the highest), then load order.  Each test puts the rule that must come first
*last* in the file, so load order alone can never give the expected answer."""
from __future__ import annotations

import pytest
from scapy.all import IP, UDP, Ether

from rules.api import FrameMeta, Verdict
from rules.classification import parse as parse_classification
from rules.detect import Detector, signature_order
from rules.engine import Engine
from rules.events import Alert, Drop
from rules.parser import parse_rule
from rules.settings import EngineSettings
from rules.thresholds import Thresholds
from rules.verdict import decide

C, S = "198.51.100.1", "203.0.113.2"


CLS = parse_classification("config classification: trojan-activity,A Network Trojan was detected,1\n")


def rule(action="alert", opts="", sid=1, header="ip any any -> any any"):
    return parse_rule(f'{action} {header} (msg:"m{sid}"; {opts} sid:{sid};)', classification=CLS)


def order(*rules) -> list[int]:
    return [r.sid for r in signature_order(list(rules))]


@pytest.mark.parametrize("first,second", [
    (2, 1), (3, 2), (3, 1), (255, 254), (255, 1), (4, 3),
], ids=["2-then-1", "default-3-then-2", "3-then-1", "255-then-254", "255-then-1", "4-then-3"])
def test_a_higher_priority_comes_first_whatever_the_load_order(first, second):
    a = rule(opts=f"priority:{first};", sid=1)
    b = rule(opts=f"priority:{second};", sid=2)
    assert order(a, b) == [2, 1]
    assert order(b, a) == [2, 1]


def test_the_default_priority_is_3_between_explicit_ones():
    ruleset = [rule(opts="priority:4;", sid=1), rule(sid=2), rule(opts="priority:2;", sid=3)]
    assert [r.priority for r in ruleset] == [4, 3, 2]
    assert order(*ruleset) == [3, 2, 1]


def test_a_classtype_priority_orders_like_an_explicit_one():
    by_class = rule(opts="classtype:trojan-activity;", sid=1)       # priority 1 from the classtype
    explicit = rule(opts="priority:2;", sid=2)
    assert by_class.priority == 1
    assert order(explicit, by_class) == [1, 2]
    overridden = rule(opts="classtype:trojan-activity; priority:3;", sid=3)
    assert order(overridden, explicit) == [2, 3]


def test_equal_priorities_keep_load_order():
    rs = [rule(opts="priority:2;", sid=s) for s in (7, 3, 5)]
    assert order(*rs) == [7, 3, 5]


@pytest.mark.parametrize("low,high", [
    ("pass", "drop"), ("drop", "reject"), ("reject", "alert"), ("pass", "alert"),
    ("drop", "rejectboth"), ("drop", "rejectsrc"), ("drop", "rejectdst"),
], ids=lambda a: a)
def test_action_outranks_priority(low, high):
    """The higher-ranked action first even with the lowest priority against the highest."""
    ranked = rule(low, "priority:255;", sid=1)
    other = rule(high, "priority:1;", sid=2)
    assert order(other, ranked) == [1, 2]


def test_flowbits_class_outranks_priority():
    reader = rule(opts="flowbits:isset,x; priority:1;", sid=1)
    both = rule(opts="flowbits:isset,y; flowbits:set,x; priority:1;", sid=2)
    setter = rule(opts="flowbits:set,y; priority:255;", sid=3)
    plain = rule(opts="priority:1;", sid=4)
    assert [r.flowbits_class for r in (setter, both, reader, plain)] == [0, 1, 2, 3]
    assert order(plain, reader, both, setter) == [3, 2, 1, 4]


def test_priority_orders_within_one_action_and_flowbits_class():
    rs = [rule("drop", "priority:3;", sid=1), rule("alert", "priority:1;", sid=2),
          rule("drop", "priority:1;", sid=3), rule("alert", "priority:2;", sid=4),
          rule("pass", "priority:9;", sid=5), rule("pass", "priority:8;", sid=6)]
    assert order(*rs) == [6, 5, 3, 1, 2, 4]


def packet(sport=5000, dport=53, payload=b"evil"):
    from rules.decode import decode
    return decode(bytes(Ether() / IP(src=C, dst=S) / UDP(sport=sport, dport=dport) / payload),
                  FrameMeta(ts=1.0, iface=""))[0]


def test_matches_from_several_header_groups_come_back_in_priority_order():
    """Candidates come from the dport group, the sport group and the fast-pattern scan:
    merged, they are sorted back into signature order."""
    rs = [rule(opts="priority:3;", sid=1, header="udp any any -> any 53"),
          rule(opts='content:"evil"; priority:2;', sid=2, header="udp any any -> any any"),
          rule(opts="priority:1;", sid=3, header="udp any 5000 -> any any"),
          rule(opts="priority:2;", sid=4, header="udp any any -> any any")]
    d = Detector(rs)
    p = packet()
    got = [s.rule.sid for s in d.run(p, None, bytes(p.payload), Thresholds())]
    assert got == [3, 2, 4, 1]


@pytest.mark.parametrize("texts,want", [
    ((("udp any any -> any 53", "priority:3;"), ("udp any 5000 -> any any", "priority:1;")), [2, 1]),
    ((("udp any any -> any 53", "priority:3;"), ("udp any any -> any any", 'content:"evil"; priority:1;')), [2, 1]),
    ((("udp any 5000 -> any any", "priority:2;"), ("udp any any -> any any", 'content:"evil"; priority:1;')), [2, 1]),
], ids=["dport-and-sport-groups", "port-group-and-pattern", "sport-group-and-pattern"])
def test_two_sources_of_candidates_are_merged_in_priority_order(texts, want):
    """Exactly two sources (the smallest merge): the later source holds the higher priority."""
    d = Detector([rule(opts=o, sid=i + 1, header=h) for i, (h, o) in enumerate(texts)])
    p = packet()
    assert [s.rule.sid for s in d.run(p, None, bytes(p.payload), Thresholds())] == want


def test_the_highest_priority_drop_decides_and_is_embedded():
    rs = [rule("drop", "priority:2;", sid=10), rule("drop", "priority:1;", sid=11), rule("alert", "priority:1;", sid=12)]
    d = Detector(rs)
    p = packet()
    matches = d.run(p, None, bytes(p.payload), Thresholds())
    dec = decide(matches, "ips", set())
    assert (dec.verdict, dec.sid) == (Verdict.DROP, 11)
    assert dec.embed_sig.rule.sid == 11
    assert [(s.rule.sid, a) for s, a in dec.alerts] == [(11, "blocked"), (10, "blocked"), (12, "allowed")]


def test_engine_events_follow_priority():
    texts = ['alert udp any any -> any any (msg:"low"; priority:3; sid:1;)',
             'alert udp any any -> any any (msg:"high"; priority:1; sid:2;)',
             'drop udp any any -> any any (msg:"d2"; priority:2; sid:3;)',
             'drop udp any any -> any any (msg:"d1"; priority:1; sid:4;)',
             'alert udp any any -> any any (msg:"mid"; priority:2; sid:5;)']
    e = Engine([parse_rule(t) for t in texts], EngineSettings(mode="ips"))
    r = e.inspect(bytes(Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=53) / b"q"), FrameMeta(ts=1.0, iface=""))
    assert r.verdict == Verdict.DROP
    alerts = [(ev.sid, ev.severity, ev.action) for ev in r.events if isinstance(ev, Alert)]
    assert alerts == [(4, 1, "blocked"), (3, 2, "blocked"), (2, 1, "allowed"), (5, 2, "allowed"), (1, 3, "allowed")]
    (drop,) = [ev for ev in r.events if isinstance(ev, Drop)]
    assert drop.sid == 4 and drop.alert is not None and drop.alert.sid == 4
