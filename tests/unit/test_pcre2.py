"""pcre: through PCRE2 as Suricata 7 runs it: PCRE2's own syntax (not the binding's
Python-style changes), Suricata's match limits (a ReDoS pattern is bounded and counted,
no match), the O, E and G modifiers, and 10.42's literal ``{,n}``."""
from __future__ import annotations

import pytest

from rules.api import FrameMeta, Verdict
from rules.engine import Engine
from rules.parser import parse_rule
from rules.settings import EngineSettings
from scapy.all import IP, UDP, Ether


def chain(opts: str):
    return parse_rule(f"alert tcp any any -> any any ({opts} sid:1;)").payload


@pytest.mark.parametrize("opts,buf,expected", [
    ('pcre:"/a\\x{41}/";', b"aA", True),                 # PCRE's \x{..}: the binding's ALT_BSUX is off
    ('pcre:"/ab{,2}c/";', b"ab{,2}c", True),            # PCRE2 10.42 (Suricata 7): {,n} is text
    ('pcre:"/ab{,2}c/";', b"abbc", False),
    ('pcre:"/[[:xdigit:]]{4}/";', b"..c0fe..", True),
    ('pcre:"/a$/E";', b"a\n", False),                   # E: $ only at the very end
    ('pcre:"/a$/";', b"a\n", True),
    ('pcre:"/<.+>/G";', b"<a><b>", True),               # G: ungreedy (the match is still found)
    ('pcre:"/^abc/";', b"xabc", False),
    ('content:"x"; pcre:"/^abc/R";', b"xabc", True),    # R: ^ anchors where the previous match ended
    ('pcre:"/ABC/i";', b"..abc", True),
], ids=["x-brace", "minless-brace-literal", "minless-brace-not-quantifier",
        "posix-class", "E-dollar-endonly", "dollar-before-final-newline", "G-ungreedy", "caret-start",
        "R-caret-relative", "i-caseless"])
def test_pcre2_semantics(opts, buf, expected):
    assert chain(opts).match(buf) is expected


def test_pythons_u_escape_is_refused_as_pcre2_refuses_it():
    from rules.errors import RuleError

    with pytest.raises(RuleError, match="invalid pcre: PCRE2 does not support"):
        chain('pcre:"/\\u0041/";')


def test_a_redos_pattern_stops_at_the_match_limit_no_match_and_counted():
    """Python's re spent tens of seconds on this; every run here ends at Suricata's limit."""
    p = chain('pcre:"/(a+)+$/";')
    for _ in range(100):
        assert p.match(b"a" * 40 + b"!") is False
    assert p.items[0].regex.limit_hits == 100


def test_O_lifts_suricatas_limit_to_pcre2s_own():
    limited = chain('pcre:"/(a|aa)+b/";')
    lifted = chain('pcre:"/(a|aa)+b/O";')
    buf = b"a" * 24 + b"b"
    assert lifted.match(buf) is True                    # PCRE2's default limit lets it through
    assert limited.match(buf) is limited.match(buf)     # (either way, never an exception)


def test_the_engine_counts_limit_hits_and_the_frame_is_forwarded():
    e = Engine([parse_rule('drop udp any any -> any any (pcre:"/(a+)+$/"; sid:9;)')], EngineSettings(mode="ips"))
    frame = bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=1, dport=2) / (b"a" * 40 + b"!"))
    r = e.inspect(frame, FrameMeta(1.0, "eth0"))
    assert r.verdict == Verdict.FORWARD
    assert e.stats()["detect.pcre_limit_hits"] == 1
    frame = bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=1, dport=2) / b"aaaa")
    assert e.inspect(frame, FrameMeta(2.0, "eth0")).verdict == Verdict.DROP


def test_limit_hits_are_counted_once_per_detector_that_uses_the_regex():
    """detect.pcre_limit_hits is a tally each regex adds to (no walk over every regex per
    report): two engines over the same parsed rules both count a hit, an engine built after
    the hit starts from it, and an unpickled engine (a reload's) goes on counting."""
    import pickle
    rules = [parse_rule('alert udp any any -> any any (msg:"slow"; pcre:"/(a+)+$/"; sid:1;)')]
    a, b = Engine(rules), Engine(rules)
    rx = rules[0].payload.items[0].regex
    assert rx.search(b"a" * 40 + b"!") is None
    assert a.stats()["detect.pcre_limit_hits"] == b.stats()["detect.pcre_limit_hits"] == 1
    c = Engine(rules)
    assert c.stats()["detect.pcre_limit_hits"] == 1
    d = pickle.loads(pickle.dumps(c))
    d_rx = d.detector._pcres[0].regex
    assert d_rx is not rx and d.stats()["detect.pcre_limit_hits"] == 1
    assert d_rx.search(b"a" * 40 + b"!") is None
    assert d.stats()["detect.pcre_limit_hits"] == 2 and c.stats()["detect.pcre_limit_hits"] == 1


def test_a_regex_answers_the_span_of_its_match():
    """PcreRegex calls the binding's compiled match directly: (start, end) of the whole match,
    from `pos` on (anchored there for match), on bytes or any bytes-like subject."""
    from rules.keywords.pcre import PcreRegex

    rx = PcreRegex(b"b+c", 0)
    assert rx.search(b"abbcxbc") == (1, 4)
    assert rx.search(b"abbcxbc", 2) == (2, 4)
    assert rx.search(b"abbcxbc", 4) == (5, 7)
    assert rx.search(memoryview(b"zzabbc")[2:]) == (1, 4)
    assert rx.search(b"abbc", 9) is None
    assert rx.match(b"abbc") is None and rx.match(b"abbc", 1) == (1, 4)
    slow = PcreRegex(b"(a+)+$", 0)
    assert slow.search(b"a" * 40 + b"!") is None and slow.limit_hits == 1
