"""The verdict stage (rules.verdict): a pure function of the matches, the mode and which
of them matched on the stream; and the exception-policy table.  The action order and
scopes are Suricata 7's (recorded in tests/replay/differential: actions, stream_*)."""
from __future__ import annotations

import pytest

from rules.api import Verdict
from rules.detect import Sig
from rules.parser import parse_rule
from rules.settings import POLICIES
from rules.verdict import POLICY_EFFECTS, decide


def sig(action: str, opts: str = 'content:"x";', sid: int = 1, proto: str = "tcp") -> Sig:
    return Sig(parse_rule(f'{action} {proto} any any -> any any (msg:"m"; {opts} sid:{sid};)'))


def order(*sigs: Sig) -> list[Sig]:
    """Signature order: the highest-ranked action first (what rules.detect returns)."""
    return sorted(sigs, key=lambda s: -s.rank)


@pytest.mark.parametrize("mode,blocked", [("ips", "blocked"), ("tap", "allowed"), ("ids", "allowed")])
def test_drop_with_alert_alongside(mode, blocked):
    d, a = sig("drop", sid=1), sig("alert", sid=2)
    dec = decide(order(a, d), mode, set())
    assert (dec.verdict, dec.sid, dec.flow, dec.passed) == (Verdict.DROP, 1, "", False)
    assert [(s.rule.sid, act) for s, act in dec.alerts] == [(1, blocked), (2, "allowed")]


def test_a_stream_match_holds_the_flow_a_packet_match_the_packet():
    d = sig("drop")
    assert decide([d], "ips", {id(d)}).flow == "drop"
    assert decide([d], "ips", set()).flow == ""
    iponly = sig("drop", opts="", sid=2, proto="ip")
    assert iponly.iponly and decide([iponly], "ips", set()).flow == "drop"


def test_pass_decides_and_silences_the_rest():
    p, d, a = sig("pass", sid=1), sig("drop", sid=2), sig("alert", sid=3)
    dec = decide(order(a, d, p), "ips", {id(p)})
    assert (dec.verdict, dec.passed, dec.flow, dec.alerts) == (Verdict.FORWARD, True, "pass", [])
    assert decide([p], "ips", set()).flow == ""          # a packet match passes the packet only


def test_reject_answers_only_when_it_decides():
    r, d = sig("rejectboth", sid=1), sig("drop", sid=2)
    dec = decide([r], "ips", set())
    assert (dec.verdict, dec.reject) == (Verdict.REJECT, "rejectboth")
    dec = decide(order(r, d), "ips", set())                # drop outranks reject
    assert (dec.verdict, dec.reject, dec.sid) == (Verdict.DROP, "", 2)


def test_noalert_matches_but_logs_nothing():
    d = sig("drop", opts='content:"x"; noalert;')
    dec = decide([d], "ips", set())
    assert dec.verdict == Verdict.DROP and dec.alerts == []


def test_no_match_forwards():
    dec = decide([], "ips", set())
    assert (dec.verdict, dec.flow, dec.alerts) == (Verdict.FORWARD, "", [])


@pytest.mark.parametrize("policy,verdict,flow,ignore", [
    ("drop-packet", Verdict.DROP, "", False),
    ("drop-flow", Verdict.DROP, "drop", False),
    ("reject", Verdict.REJECT, "drop", False),
    ("pass-packet", Verdict.FORWARD, "", False),
    ("pass-flow", Verdict.FORWARD, "pass", False),
    ("bypass", Verdict.FORWARD, "pass", False),
    ("ignore", Verdict.FORWARD, "", True),
])
def test_policy_effects(policy, verdict, flow, ignore):
    e = POLICY_EFFECTS[policy]
    assert (e.verdict, e.flow, e.ignore) == (verdict, flow, ignore)


def test_every_policy_has_an_effect():
    assert set(POLICY_EFFECTS) == set(POLICIES)
