"""A `fast_pattern` on a negated content (rules.parser._fast_pattern, rules.payload
.choose_fast_pattern, the prefilter and the scan offer).

A rule like `content:!"evil"; fast_pattern;` matches when "evil" is *absent*.  Suricata
puts such a pattern in the MPM only to rule the signature out when it is found; a
prefilter that can only make a rule a candidate when its pattern is present must not
use it at all: the rule is then always a candidate (no fast pattern), and its own
matching decides.  Used as an ordinary fast pattern, the rule would never even be
evaluated on the traffic it is written to match."""
from __future__ import annotations

import pytest
from scapy.all import IP, UDP, Ether

from rules.api import FrameMeta, Verdict
from rules.decode import decode
from rules.detect import Detector
from rules.engine import Engine
from rules.parser import parse_rule
from rules.payload import Content, choose_fast_pattern
from rules.settings import EngineSettings
from rules.thresholds import Thresholds

C, S = "198.51.100.1", "203.0.113.2"

NEGATED_FP = {
    "only-negated": ('content:!"evil"; fast_pattern;', b"good data", b"so evil"),
    "negated-with-positive": ('content:"GET"; content:!"evil"; fast_pattern;', b"GET good", b"GET evil"),
    "negated-short": ('content:!"ev"; fast_pattern;', b"good data", b"every"),
    "negated-nocase": ('content:!"EVIL"; nocase; fast_pattern;', b"good data", b"so evil"),
    "negated-first-positive-after": ('content:!"evil"; fast_pattern; content:"GET";', b"GET good", b"GET evil"),
    # no explicit fast_pattern: a rule whose contents are all negated gets none either
    "only-negated-implicit": ('content:!"evil";', b"good data", b"so evil"),
    "two-negated-implicit": ('content:!"evil"; content:!"worse";', b"good data", b"worse"),
}


def frame(payload: bytes, sport=5000) -> bytes:
    return bytes(Ether() / IP(src=C, dst=S) / UDP(sport=sport, dport=53) / payload)


def sids(detector: Detector, payload: bytes) -> list[int]:
    p = decode(frame(payload), FrameMeta(ts=1.0, iface=""))[0]
    return [s.rule.sid for s in detector.run(p, None, bytes(p.payload), Thresholds())]


@pytest.mark.parametrize("opts,clean,dirty", list(NEGATED_FP.values()), ids=list(NEGATED_FP))
def test_a_negated_fast_pattern_is_no_prefilter_literal(opts, clean, dirty):
    r = parse_rule(f'alert udp any any -> any any (msg:"neg"; {opts} sid:1;)')
    assert r.fast_pattern is None and r.fast_pattern_nocase is False
    d = Detector([r])
    (sig,) = d.sigs
    assert sig.pid == -1 and sig.fp_short is None            # neither database: a plain candidate
    assert sids(d, clean) == [1]
    assert sids(d, dirty) == []


@pytest.mark.parametrize("opts,clean,dirty", list(NEGATED_FP.values()), ids=list(NEGATED_FP))
def test_the_engine_alerts_when_the_negated_pattern_is_absent(opts, clean, dirty):
    e = Engine([parse_rule(f'drop udp any any -> any any (msg:"neg"; {opts} sid:1;)')], EngineSettings(mode="ips"))
    assert e.inspect(frame(clean), FrameMeta(ts=1.0, iface="")).verdict == Verdict.DROP
    assert e.inspect(frame(dirty, sport=5001), FrameMeta(ts=2.0, iface="")).verdict == Verdict.FORWARD


def test_beside_pattern_rules_the_negated_one_still_runs_on_clean_datagrams():
    """With other rules in the pattern database, a clean datagram finds no pattern at all:
    the negated rule must still be evaluated (and match)."""
    d = Detector([parse_rule('alert udp any any -> any any (msg:"p"; content:"attack"; sid:1;)'),
                  parse_rule('alert udp any any -> any any (msg:"n"; content:!"evil"; fast_pattern; sid:2;)'),
                  parse_rule('alert udp any any -> any any (msg:"q"; content:"xy"; sid:3;)')])
    assert sids(d, b"clean") == [2]
    assert sids(d, b"attack") == [1, 2]
    assert sids(d, b"attack evil") == [1]


@pytest.mark.parametrize("opts", [o for o, _, _ in NEGATED_FP.values()], ids=list(NEGATED_FP))
def test_no_scan_offer_for_a_flow_a_negated_fast_pattern_rule_applies_to(opts):
    """The UDP scan offer lets the data plane forward datagrams in which the prefilter
    finds nothing; a negated-fast-pattern rule matches exactly those, so no offer."""
    e = Engine([parse_rule('drop udp any any -> any any (msg:"p"; content:"attack"; sid:1;)'),
                parse_rule(f'alert udp any any -> any any (msg:"n"; {opts} sid:2;)')], EngineSettings(mode="ips"))
    for k in range(2):
        r = e.inspect(frame(b"GET clean" if k else b"GET evil"), FrameMeta(ts=1.0 + k, iface=""))
        assert r.bypass is None


def c(pattern: bytes, negated=False, fast=False) -> Content:
    return Content(pattern=pattern, negated=negated, fast_pattern=fast)


def test_choose_fast_pattern_prefers_any_positive_content_over_a_longer_negated_one():
    short = c(b"ab")
    assert choose_fast_pattern([c(b"much longer", negated=True), short]) is short
    assert choose_fast_pattern([short, c(b"much longer", negated=True)]) is short


def test_choose_fast_pattern_returns_an_explicit_negated_one_as_written():
    neg = c(b"evil", negated=True, fast=True)
    assert choose_fast_pattern([c(b"GET request"), neg]) is neg
    only = c(b"evil", negated=True)
    assert choose_fast_pattern([only]) is only              # the parser then gives no literal
    assert choose_fast_pattern([]) is None
