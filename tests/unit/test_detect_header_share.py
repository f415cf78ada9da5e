"""The header entry of a flow direction (Detector._plain: candidates by rule header) is
shared by every flow with the same protocol, addresses, direction and port classes:
checked against the walk it replaces, on rules whose port sets split the port space
in many places, on the edges of their intervals and on random ports."""
from __future__ import annotations

import random

import pytest
from scapy.all import IP, TCP, UDP, Ether, IPv6

from rules import detect
from rules.api import FrameMeta
from rules.decode import decode
from rules.detect import Detector
from rules.flow import FlowTable
from rules.parser import parse_rule
from rules.thresholds import Thresholds

C, S, O = "198.51.100.1", "203.0.113.2", "203.0.113.9"
C6, S6 = "2001:db8::1", "2001:db9::2"

RULES = (
    'alert tcp any any -> any 80 (msg:"web"; content:"GET"; sid:1;)',
    'alert tcp any any -> any 1024:2048 (msg:"range"; sid:2;)',
    'alert tcp any !1024:65535 -> any any (msg:"low source"; flags:S; sid:3;)',
    'alert tcp any [1000,3000:3010] <> any any (msg:"both ways"; sid:4;)',
    'alert tcp any any -> any ![22,80] (msg:"not ssh or web"; content:"x"; sid:5;)',
    'alert udp any any -> any 53 (msg:"dns"; content:"a"; sid:6;)',
    'alert udp any 53 -> any any (msg:"dns back"; flow:to_client; sid:7;)',
    'alert ip any any -> any any (msg:"ip only"; sid:8;)',
    'alert tcp 198.51.100.0/24 any -> 203.0.113.2 any (msg:"to S"; flow:to_server; sid:9;)',
    'alert tcp any any -> any 4000: (msg:"high"; content:"yy"; sid:10;)',
    'alert tcp 2001:db8::/32 any -> any any (msg:"v6 doc"; sid:11;)',
)
EDGES = (0, 1, 22, 53, 79, 80, 81, 999, 1000, 1001, 1023, 1024, 1025, 2047, 2048, 2049, 2999, 3000,
         3010, 3011, 3999, 4000, 4001, 65534, 65535)


def det() -> Detector:
    return Detector([parse_rule(t) for t in RULES])


def packet(src, dst, l4, table: FlowTable | None):
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    p = decode(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4), FrameMeta(ts=1.0, iface=""))[0]
    if table is not None:
        table.lookup(p)
    return p


def described(ent) -> tuple:
    """An entry by rule ids (the walk and the cache build equal, not identical, tuples)."""
    plain, nsrc, groups, later, short, gate = ent
    return ([s.rule.sid for s in plain], nsrc, [id(g) for g in groups], [s.rule.sid for s in later],
            [s.rule.sid for s in short], gate)


def test_the_port_classes_are_the_rules_interval_edges():
    d = det()
    ports, v4, _v6 = d._bounds
    for edge in (80, 81, 1024, 2049, 1000, 1001, 3000, 3011, 4000):
        assert edge in ports
    assert 0xC6336400 in v4 and 0xC6336500 in v4 and 0xCB007102 in v4 and 0xCB007103 in v4   # 198.51.100.0/24, 203.0.113.2


@pytest.mark.parametrize("tracked", [True, False], ids=["flow", "no flow"])
def test_the_shared_entry_is_the_walks_on_every_edge_and_random_ports(tracked):
    d = det()
    rnd = random.Random(7)
    ports = list(EDGES) + [rnd.randrange(65536) for _ in range(150)]
    checked = 0
    for proto in (TCP, UDP):
        for src, dst in ((C, S), (S, C), (C, O), (O, S), (C6, S6), (S6, C6)):
            for _ in range(60):
                sport, dport = rnd.choice(ports), rnd.choice(ports)
                l4 = proto(sport=sport, dport=dport, **({"flags": "S"} if proto is TCP else {}))
                p = packet(src, dst, l4, FlowTable() if tracked else None)
                assert described(d._plain(p)) == described(d._plain_walk(p)), (proto.__name__, src, dst, sport, dport)
                checked += 1
    assert checked == 720
    assert 0 < len(d._plain_cache) < checked          # shared: fewer entries than packets


def test_two_connections_from_other_ephemeral_ports_share_one_entry():
    d = det()
    a = packet(C, S, TCP(sport=40001, dport=80, flags="S"), FlowTable())
    b = packet(C, S, TCP(sport=40002, dport=80, flags="S"), FlowTable())
    low = packet(C, S, TCP(sport=1000, dport=80, flags="S"), FlowTable())
    assert d._plain(a) is d._plain(b)
    assert d._plain(low) is not d._plain(a)
    assert 3 in described(d._plain(low))[0] and 3 not in described(d._plain(a))[0]   # !1024:65535 sources


def test_a_detection_run_uses_the_shared_entry_and_matches_as_the_walk_does():
    d = det()
    t = FlowTable()
    first = packet(C, S, TCP(sport=1000, dport=1500, flags="S"), t)
    assert sorted(s.rule.sid for s in d.run(first, first.flow, b"", Thresholds())) == [2, 3, 4, 8, 9]
    other = packet(C, S, TCP(sport=2000, dport=1500, flags="S"), t)      # another class: 3 and 4 are out
    assert sorted(s.rule.sid for s in d.run(other, other.flow, b"", Thresholds())) == [2, 8, 9]


def test_addresses_of_one_class_share_an_entry_and_the_cache_is_bounded(monkeypatch):
    d = det()
    for i in range(20):       # other servers than 203.0.113.2, all in the same sets of every rule
        d._plain(packet(C, f"203.0.113.{10 + i}", TCP(sport=40000 + i, dport=80, flags="S"), FlowTable()))
    assert len(d._plain_cache) == 1
    monkeypatch.setattr(detect, "_PLAIN_MAX", 8)
    d = det()
    for i in range(40):
        d._plain(packet(C, S, TCP(sport=40000, dport=i * 97, flags="S"), FlowTable()))
        assert len(d._plain_cache) <= 8


def test_a_port_set_other_than_the_parsers_turns_sharing_off():
    class Odd:
        def contains(self, port: int) -> bool:
            return port % 2 == 0

    r = parse_rule('alert tcp any any -> any any (msg:"odd"; sid:1;)')
    r.dport = Odd()           # (a rule built by hand: the parser makes interval sets)
    d = Detector([r])
    assert d._bounds is None
    even = packet(C, S, TCP(sport=40000, dport=80, flags="S"), FlowTable())
    odd = packet(C, S, TCP(sport=40000, dport=81, flags="S"), FlowTable())
    assert described(d._plain(even))[0] == [1] and described(d._plain(odd))[0] == []
    assert not d._plain_cache


def test_direction_and_flow_tracking_are_part_of_the_key():
    """The same addresses and ports as a flow's first packet, as its reply's reverse
    (to_client) and untracked: three entries, each the walk's (flow:to_server / to_client
    rules and tracked-only checks tell them apart)."""
    d = det()
    rnd = random.Random(11)
    for _ in range(80):
        sport, dport = rnd.choice(EDGES), rnd.choice(EDGES)
        proto = rnd.choice((TCP, UDP))
        t = FlowTable()
        fwd = packet(C, S, proto(sport=sport, dport=dport), t)
        back = packet(S, C, proto(sport=dport, dport=sport), t)
        echo = packet(S, C, proto(sport=dport, dport=sport), FlowTable())     # the same header, a new flow's first
        loose = packet(S, C, proto(sport=dport, dport=sport), None)
        loose_fwd = packet(C, S, proto(sport=sport, dport=dport), None)
        assert fwd.to_server and not back.to_server and echo.to_server
        for p in (fwd, back, echo, loose, loose_fwd):
            assert described(d._plain(p)) == described(d._plain_walk(p)), (proto.__name__, sport, dport)
    back = packet(S, C, UDP(sport=53, dport=40000), None)
    t = FlowTable()
    packet(C, S, UDP(sport=40000, dport=53), t)
    reply = packet(S, C, UDP(sport=53, dport=40000), t)
    assert 7 in described(d._plain(reply))[0] and 7 not in described(d._plain(back))[0]
    t = FlowTable()
    tracked = packet(C, S, TCP(sport=40000, dport=443), t)
    untracked = packet(C, S, TCP(sport=40000, dport=443), None)
    assert 9 in described(d._plain(tracked))[0] and 9 not in described(d._plain(untracked))[0]
