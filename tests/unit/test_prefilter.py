"""Prefilter: hyperscan literal matching (caseless per pattern, escaping) and header grouping."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.parser import parse_rule
from rules.prefilter import AnyPattern, PatternDB, RuleIndex


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


_ADDRS = ["any", "198.51.100.0/24", "!198.51.100.0/24", "[198.51.100.7,203.0.113.0/25]", "203.0.113.9",
          "2001:db8::/32", "![2001:db8:1::/48,198.51.100.128/25]", "[198.51.100.0/26,2001:db8::5]"]
_PORTS = ["any", "80", "[80,443]", "1024:", "!53", "[1:100,!50]"]


def _random_rules(rng, n):
    out = []
    for i in range(n):
        proto = rng.choice(["tcp", "udp", "ip", "icmp"])
        sp = rng.choice(_PORTS) if proto in ("tcp", "udp") else "any"
        dp = rng.choice(_PORTS) if proto in ("tcp", "udp") else "any"
        opts = [f'msg:"r{i}"']
        if proto == "tcp" and rng.random() < 0.3:
            opts.append(rng.choice(["flow:to_server", "flow:to_client"]))
        if rng.random() < 0.4:
            opts.append(f'content:"{rng.choice(["abc", "xyz", "GET"])}"')
        out.append(f'alert {proto} {rng.choice(_ADDRS)} {sp} {rng.choice(["->", "<>"])} '
                   f'{rng.choice(_ADDRS)} {dp} ({"; ".join(opts)}; sid:{i + 1};)')
    return out


_V4 = [0xC6336400 + k for k in (0, 7, 9, 63, 64, 127, 128, 200, 255)] + [0xCB007109, 0xCB007180, 0x01020304]
_V6 = [0x20010DB8 << 96, (0x20010DB8 << 96) + 5, (0x20010DB80001 << 80) + 1, 1]


class _Pkt:
    def __init__(self, rng):
        self.ipver = rng.choice([4, 6])
        pool = _V4 if self.ipver == 4 else _V6
        self.src, self.dst = rng.choice(pool), rng.choice(pool)
        self.proto = rng.choice([6, 17, 1])
        self.sport, self.dport = rng.choice([0, 1, 50, 53, 80, 443, 1023, 1024, 40000]), rng.choice([50, 53, 80, 443, 2000])
        self.flow = rng.choice([None, object()])
        self.to_server = rng.choice([True, False])


def test_addr_pair_index_agrees_with_the_header_check():
    """The (source, destination) segment lookup plus the flow/port rest accepts exactly the
    buckets the plain per-bucket header check accepts."""
    import random

    from rules.detect import Sig as _Sig
    from rules.detect import header_ok as _header_ok
    from rules.detect import header_rest as _header_rest
    from rules.prefilter import AddrIndex, AddrPairIndex, _buckets

    rng = random.Random(5)
    for _ in range(20):
        sigs = [_Sig(parse_rule(t)) for t in _random_rules(rng, 40)]
        buckets = _buckets(sigs)
        for idx in (None, AddrIndex(buckets)):
            pairs = AddrPairIndex(buckets, idx)
            for _ in range(200):
                p = _Pkt(rng)
                want = {id(rep) for rep, _ in buckets if _header_ok(rep, p)}
                got = {id(rep) for rep, _, fwd, rev, free in pairs.lookup(p.ipver, p.src, p.dst)
                       if free or _header_rest(rep, p, fwd, rev)}
                assert got == want
    assert AddrPairIndex(buckets).lookup(0, 1, 2) is None


def test_warm_index_builds_the_same_groups_as_lazy_lookups():
    import random

    rng = random.Random(9)
    texts = _random_rules(rng, 300)
    _, lazy = _index(*texts)
    _, warm = _index(*texts)
    warm.warm()
    for proto in (6, 17, 1, 58, 47):
        for sport in (0, 1, 50, 53, 80, 443, 1023, 1024, 65535):
            for dport in (0, 50, 53, 80, 100, 443, 2000, 65535):
                a, b = lazy.groups(proto, sport, dport), warm.groups(proto, sport, dport)
                assert [[s.rule.sid for s in g.plain] for g in a] == [[s.rule.sid for s in g.plain] for g in b]
                assert [{k: [s.rule.sid for s in v] for k, v in g.by_pid.items()} for g in a] == \
                       [{k: [s.rule.sid for s in v] for k, v in g.by_pid.items()} for g in b]


# ------------------------------------------------------------------ AnyPattern (scan offers)
def test_any_pattern_is_true_when_a_database_holds_a_pattern_or_the_watched_state_has_a_parser():
    from rules.prefilter import AnyPattern, PatternDB

    class St:
        parser = None

    a, b = PatternDB([(b"evil", False)]), PatternDB([(b"zq", True)])
    scan = AnyPattern((a, PatternDB([]), b))
    assert scan.dbs == (a, b)                          # a database without patterns is not asked
    assert [scan(d) for d in (b"x evil x", b"..ZQ..", b"nothing", b"")] == [True, True, False, False]
    st = St()
    watched = scan.watching(st)
    assert watched.dbs == scan.dbs and not watched(b"nothing") and watched(b"evil")
    st.parser = object()
    assert watched(b"nothing") and not scan(b"nothing")
    # what the compiled ring walk is given: the watched state, each database's scan and scratch,
    # and a database of a few patterns as literals (caseless ones in lower case)
    assert watched.spec == (st, ((a._db.scan, a._scratch, ((b"evil", False),)), (b._db.scan, b._scratch, ((b"zq", True),))))
    assert AnyPattern(()).spec == (None, ()) and not AnyPattern(())(b"evil")


def test_any_pattern_without_hyperscan_has_no_compiled_form(monkeypatch):
    import rules.prefilter as pf

    monkeypatch.setattr(pf, "_hs", None)
    db = pf.PatternDB([(b"evil", False)])
    scan = pf.AnyPattern((db,))
    assert scan.spec is None and scan(b"so evil") and not scan(b"fine")


def test_the_compiled_walk_knows_the_fast_paths_entry_actions():
    import bridge._ringpass as rp
    from bridge import fastpath

    assert (rp.ENTRY_FORWARD, rp.ENTRY_SCAN) == (fastpath.FORWARD, fastpath.SCAN)


_literal = st.binary(min_size=1, max_size=2) | st.sampled_from([b"Ab", b"zZ", b"\x18\x03", b"a", b"\xff"])


@settings(max_examples=400, deadline=None)
@given(pats=st.lists(st.tuples(_literal, st.booleans()), min_size=1, max_size=20, unique=True),
       big=st.lists(st.tuples(st.binary(min_size=3, max_size=6), st.booleans()), max_size=3, unique=True),
       data=st.binary(max_size=40) | st.binary(min_size=500, max_size=600),
       plant=st.integers(0, 19))
def test_the_compiled_scan_answers_as_the_databases(pats, big, data, plant):
    """rules/_scan.h's compiled scan: a database of few patterns searched as literals in a
    short payload, the others asked through hyperscan, the same answer as AnyPattern's own
    (which asks hyperscan every time); payloads over the literal limit, more patterns than
    it takes, caseless patterns, patterns at the very end."""
    from rules._hotpath import scan

    pats = list(dict.fromkeys(pats))
    if plant < len(pats) and data:
        p, nc = pats[plant]
        data = data[:len(data) // 2] + (p.upper() if nc else p) + data[len(data) // 2:]
    dbs = [PatternDB(pats)] + ([PatternDB(big)] if big else [])
    ap = AnyPattern(dbs)
    assert scan(ap.spec, data) == int(ap(data))
