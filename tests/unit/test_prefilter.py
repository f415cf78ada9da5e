"""Prefilter: hyperscan literal matching (caseless per pattern, escaping) and header grouping."""
from __future__ import annotations

import pytest

from rules.parser import parse_rule
from rules.prefilter import PatternDB, RuleIndex


class S:
    def __init__(self, text):
        self.rule = parse_rule(text)
        self.pid = -1
        self.order = 0


@pytest.mark.parametrize("patterns,data,found", [
    ([(b"GET", False)], b"xxGETxx", {0}),
    ([(b"GET", False)], b"xxgetxx", set()),
    ([(b"get", True)], b"xxGeTxx", {0}),
    ([(b"a.b", False)], b"axb", set()),                  # regex metacharacters are literal
    ([(b"a.b", False)], b"--a.b--", {0}),
    ([(b"\x00\xff|(", False)], b"z\x00\xff|(z", {0}),     # NUL, high bytes, '|', '('
    ([(b"ab", False), (b"AB", True), (b"zz", False)], b"..Ab..", {1}),
    ([(b"ab", False), (b"cd", False)], b"abcdab", {0, 1}),
], ids=["exact", "case-sensitive-miss", "caseless", "dot-literal-miss", "dot-literal-hit", "binary", "mixed",
        "singlematch-set"])
def test_pattern_db(patterns, data, found):
    assert PatternDB(patterns).scan(data) == found


def test_pattern_db_empty_is_fine():
    assert PatternDB([]).scan(b"anything") == set()


def _index(*texts):
    sigs = [S(t) for t in texts]
    for i, s in enumerate(sigs):
        s.order = i
    return sigs, RuleIndex(sigs)


def _members(groups):
    out = set()
    for g in groups:
        out.update(s.rule.sid for s in g.plain)
        for v in g.by_pid.values():
            out.update(s.rule.sid for s in v)
    return out


def test_groups_by_protocol_and_ports():
    sigs, idx = _index(
        'alert tcp any any -> any 80 (msg:"a"; sid:1;)',
        'alert tcp any any -> any [80,443] (msg:"b"; content:"x"; sid:2;)',
        'alert tcp any 80 -> any any (msg:"c"; sid:3;)',
        'alert udp any any -> any 53 (msg:"d"; sid:4;)',
        'alert ip any any -> any any (msg:"e"; sid:5;)',
        'alert tcp any any <> any 22 (msg:"f"; sid:6;)',
        'alert tcp any any -> any 1024: (msg:"g"; sid:7;)',
        'alert icmp any any -> any any (msg:"h"; sid:8;)',
    )
    assert _members(idx.groups(6, 40000, 80)) == {1, 2, 5, 6}
    assert _members(idx.groups(6, 80, 40000)) == {3, 5, 6, 7}
    assert _members(idx.groups(6, 40000, 443)) == {2, 5, 6}
    assert _members(idx.groups(17, 40000, 53)) == {4, 5}
    assert _members(idx.groups(17, 40000, 80)) == {5}
    assert _members(idx.groups(1, 0, 0)) == {5, 8}
    assert _members(idx.groups(58, 0, 0)) == {5, 8}
    assert _members(idx.groups(47, 0, 0)) == {5}


def test_content_rules_reached_only_through_their_pattern():
    sigs, idx = _index('alert tcp any any -> any 80 (msg:"a"; content:"needle"; nocase; sid:1;)',
                       'alert tcp any any -> any 80 (msg:"b"; content:"other"; sid:2;)',
                       'alert tcp any any -> any 80 (msg:"c"; content:!"neg"; sid:3;)')
    (g,) = idx.groups(6, 1, 80)
    assert {s.rule.sid for s in g.plain} == {3}          # only negated content: no fast pattern
    found = idx.pattern_db.scan(b"a NEEDLE here")
    hits = {s.rule.sid for pid in found for s in g.by_pid.get(pid, ())}
    assert hits == {1}


def test_same_pattern_shared_by_many_rules_has_one_id():
    sigs, idx = _index(*[f'alert tcp any any -> any {p} (msg:"x"; content:"shared"; sid:{p};)' for p in (1, 2, 3)])
    assert len(idx.pattern_db) == 1
