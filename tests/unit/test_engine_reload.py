"""Engine.adopt_rules: a rule reload swaps the rules and keeps the flows.  What a running
flow keeps (its drop or pass decision, its reassembled stream) and what the new rules
see (new flows, undecided flows, UDP flows no old rule applied to)."""
from __future__ import annotations

from rules.api import Verdict
from tests.unit.test_engine_decisions import Feed, Tcp, eng, sids, udp


def reload(engine, *texts, mode="ips"):
    return engine.adopt_rules(eng(*texts, mode=mode))


def test_a_rule_added_by_a_reload_drops_new_flows():
    f = Feed(eng('alert udp any any -> any 9 (content:"zzz"; sid:1;)'))
    assert udp(f, b"EVIL", sport=5000).verdict == Verdict.FORWARD
    reload(f.e, 'drop udp any any -> any 7000 (content:"EVIL"; sid:2;)')
    r = udp(f, b"EVIL", sport=5001)
    assert r.verdict == Verdict.DROP and sids(r) == [2]
    st = f.e.stats()
    assert st["rules.loaded"] == 1 and st["rules.reloads"] == 1


def test_a_removed_rule_stops_matching_at_once():
    f = Feed(eng('drop udp any any -> any 7000 (content:"EVIL"; sid:2;)'))
    assert udp(f, b"EVIL").verdict == Verdict.DROP
    reload(f.e, 'alert udp any any -> any 9 (content:"zzz"; sid:1;)')
    assert udp(f, b"EVIL", sport=5001).verdict == Verdict.FORWARD


def test_udp_flow_decided_for_want_of_rules_is_inspected_by_the_new_rules():
    f = Feed(eng('alert tcp any any -> any 80 (content:"x"; sid:1;)'))
    r = udp(f, b"hello")
    assert r.bypass is not None and r.bypass.reason == "no-rules"
    assert reload(f.e, 'drop udp any any -> any 7000 (content:"EVIL"; sid:2;)') == 1
    r = udp(f, b"..EVIL..")
    assert r.verdict == Verdict.DROP and sids(r) == [2]


def test_a_dropped_flow_stays_dropped_across_a_reload():
    f = Feed(eng('drop tcp any any -> any 80 (content:"EVIL"; sid:1;)'))
    t = Tcp(f)
    t.handshake()
    assert t.c(b"EVIL").verdict == Verdict.DROP
    reload(f.e, 'alert udp any any -> any 9 (content:"zzz"; sid:1;)')
    r = t.c(b"harmless")
    assert r.verdict == Verdict.DROP and r.reason == "flow"


def test_a_stream_keeps_its_reassembly_across_a_reload():
    """The first half of a split pattern arrives before the reload, the second after: the new
    rule sees the pattern across the two segments (the stream was kept)."""
    f = Feed(eng('alert tcp any any -> any 80 (flow:established; content:"nomatch"; sid:1;)'))
    t = Tcp(f)
    t.handshake()
    assert t.c(b"....EV").verdict == Verdict.FORWARD
    reload(f.e, 'drop tcp any any -> any 80 (flow:established; content:"EVIL"; sid:7;)')
    r = t.c(b"IL....")
    assert r.verdict == Verdict.DROP and sids(r) == [7]


def test_udp_prefilter_offers_of_the_old_rules_are_dropped():
    """A UDP flow's 'scan' offer carries the old rules' prefilter: after a reload the next
    datagram is inspected by the new rules and a new offer made from them."""
    f = Feed(eng('drop udp any any -> any 7000 (content:"AAAA"; sid:1;)'), scans=True)
    r = udp(f, b"hello")
    assert r.bypass is not None and r.bypass.action == "scan"
    old_scan = r.bypass
    reload(f.e, 'drop udp any any -> any 7000 (content:"BBBB"; sid:2;)')
    r = udp(f, b"..BBBB..")
    assert r.verdict == Verdict.DROP and sids(r) == [2]
    r = udp(f, b"hello again")
    assert r.bypass is not None and r.bypass.action == "scan" and r.bypass is not old_scan


def test_rule_hits_count_alerts_per_rule_most_first():
    f = Feed(eng('alert udp any any -> any 7000 (msg:"a"; content:"A"; sid:1;)',
                 'alert udp any any -> any 7000 (msg:"b"; content:"B"; sid:2;)'))
    for data in (b"A", b"AB", b"B", b"B"):
        udp(f, data, sport=6000 + len(data))
    assert f.e.rule_hits() == [(1, 2, 3, "b"), (1, 1, 2, "a")]
    assert f.e.rule_hits(top=1) == [(1, 2, 3, "b")]


def test_rule_hits_name_a_rule_by_its_message_after_a_reload():
    """The messages rule_hits reports come from the rules in force: a reload that renames a
    rule renames it in the report too (hits go on counting by gid:sid)."""
    f = Feed(eng('alert udp any any -> any 7000 (msg:"old name"; content:"A"; sid:1;)'))
    udp(f, b"A", sport=6001)
    assert f.e.rule_hits() == [(1, 1, 1, "old name")]
    reload(f.e, 'alert udp any any -> any 7000 (msg:"new name"; content:"A"; sid:1;)')
    udp(f, b"A", sport=6002)
    assert f.e.rule_hits() == [(1, 1, 2, "new name")]


def test_rule_hits_name_a_renamed_rule_by_its_new_message_before_it_hits_again():
    f = Feed(eng('alert udp any any -> any 7000 (msg:"old name"; content:"A"; sid:1;)',
                 'alert udp any any -> any 7000 (msg:"gone"; content:"B"; sid:2;)'))
    udp(f, b"AB", sport=6001)
    reload(f.e, 'alert udp any any -> any 7000 (msg:"new name"; content:"A"; sid:1;)')
    assert f.e.rule_hits() == [(1, 1, 1, "new name"), (1, 2, 1, "")]
