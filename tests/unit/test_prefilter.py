"""Prefilter: hyperscan literal matching (caseless per pattern, escaping) and header grouping."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.parser import parse_rule
from rules import prefilter
from rules.prefilter import AnyPattern, PatternDB, RuleIndex

# every PatternDB test runs on each way of asking hyperscan: libhs called from C (what the
# install provides), the hyperscan module, and the pure-Python fallback
BACKENDS = ["libhs", "hyperscan-module", "python"]


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
@pytest.mark.parametrize("backend", BACKENDS)
def test_pattern_db(patterns, data, found, backend):
    db = PatternDB(patterns, backend=backend)
    assert db.scan(data) == found
    if backend != "python":           # hyperscan takes any buffer
        assert db.scan(memoryview(b"--" + data)) == found and db.scan(bytearray(data)) == found
    assert (db._hsdb is not None, db._db is not None) == (backend == "libhs", backend == "hyperscan-module")


@pytest.mark.parametrize("backend", BACKENDS)
def test_pattern_db_empty_is_fine(backend):
    assert PatternDB([], backend=backend).scan(b"anything") == set()


def test_the_install_gives_libhs_and_the_prefilter_uses_it():
    """netns-lab/install.sh installs Debian's libhyperscan5; without it every scan pays the
    hyperscan module's call (about 190 ns against 30), so this machine must have it."""
    assert prefilter.BACKEND == "libhs", prefilter.backend_note()
    assert prefilter.backend_note().startswith("libhs 5.")
    assert PatternDB([(b"x", False)])._hsdb is not None


def test_a_libhs_handle_keeps_its_database_alive():
    """The compiled scans get a capsule of the database: it holds the database, so a spec
    outliving every other reference still scans (no freed memory read)."""
    import gc

    from rules._hotpath import scan

    db = PatternDB([(b"evil", False)], backend="libhs")
    handle = db._hsdb.handle
    del db
    gc.collect()
    spec = (None, ((None, handle, None),))
    assert [scan(spec, d) for d in (b"so evil", b"fine")] == [1, 0]


def test_libhs_refuses_what_it_cannot_scan():
    from rules import _hotpath

    with pytest.raises(ValueError, match="0 expressions"):
        _hotpath.hs_compile([], [], frozenset())
    with pytest.raises(ValueError, match="expression 0 is not bytes"):
        _hotpath.hs_compile([b"a\x00b"], [0], frozenset())
    with pytest.raises(ValueError, match="expression 0"):
        _hotpath.hs_compile([b"(unclosed"], [0], frozenset())
    db = _hotpath.hs_compile([b"abc"], [8], None)
    with pytest.raises(TypeError):
        db.scan(12)
    with pytest.raises(ValueError, match="deserialize"):
        _hotpath.hs_load(b"not a database", None)
    import pickle
    back = pickle.loads(pickle.dumps(db))                  # its serialized bytes, loaded again
    assert back is not db and back.scan(b"abc") == {0} and back.scan(b"x") is None
    assert db.scan(b"xx") is None and db.scan(b"abc") == {0} and db.any(b"zabc") and not db.any(b"ab")
    assert _hotpath.hs_load(db.serialize(), None).scan(b"..abc") == {0}


_any_literal = st.binary(min_size=1, max_size=8) | st.sampled_from([b".", b"|", b"(", b"\\", b"\x00", b"aB", b"Zz9"])


@settings(max_examples=300, deadline=None)
@given(pats=st.lists(st.tuples(_any_literal, st.booleans()), min_size=1, max_size=30, unique=True),
       data=st.binary(max_size=200), plant=st.integers(0, 29))
def test_libhs_finds_what_the_hyperscan_module_finds(pats, data, plant):
    """The two hyperscan builds (Debian's libhs, the module's own copy) find the same ids:
    every byte value, caseless and not, regex metacharacters as literals."""
    pats = list(dict.fromkeys(pats))
    if plant < len(pats):
        p, nc = pats[plant]
        data = data[:len(data) // 3] + (p.swapcase() if nc else p) + data[len(data) // 3:]
    want = PatternDB(pats, backend="python").scan(data)
    assert PatternDB(pats, backend="libhs").scan(data) == want
    assert PatternDB(pats, backend="hyperscan-module").scan(data) == want
    assert AnyPattern([PatternDB(pats, backend="libhs")])(data) == bool(want)


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
@pytest.mark.parametrize("backend", ["libhs", "hyperscan-module"])
def test_any_pattern_is_true_when_a_database_holds_a_pattern_or_the_watched_state_has_a_parser(backend):
    class St:
        parser = None

    a, b = PatternDB([(b"evil", False)], backend=backend), PatternDB([(b"zq", True)], backend=backend)
    scan = AnyPattern((a, PatternDB([], backend=backend), b))
    assert scan.dbs == (a, b)                          # a database without patterns is not asked
    assert [scan(d) for d in (b"x evil x", b"..ZQ..", b"nothing", b"")] == [True, True, False, False]
    st = St()
    watched = scan.watching(st)
    assert watched.dbs == scan.dbs and not watched(b"nothing") and watched(b"evil")
    st.parser = object()
    assert watched(b"nothing") and not scan(b"nothing")
    # what the compiled ring walk is given: the watched state, each database's scan and scratch
    # (libhs: the HsDatabase and its handle), and a database of a few patterns as literals
    # (caseless ones in lower case)
    if backend == "libhs":          # libhs is asked even for a few patterns: cheaper than the walk
        assert watched.spec[0] is st and [c[0] for c in watched.spec[1]] == [a._hsdb, b._hsdb]
        assert all(type(c[1]).__name__ == "PyCapsule" and c[2] is None for c in watched.spec[1])
    else:
        calls = ((a._db.scan, a._scratch, ((b"evil", False),)), (b._db.scan, b._scratch, ((b"zq", True),)))
        assert watched.spec == (st, calls)
    assert AnyPattern(()).spec == (None, ()) and not AnyPattern(())(b"evil")


def test_any_pattern_without_hyperscan_has_no_compiled_form(monkeypatch):
    import rules.prefilter as pf

    monkeypatch.setattr(pf, "_hs", None)
    monkeypatch.setattr(pf, "BACKEND", "python")
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
    for backend in ("libhs", "hyperscan-module"):
        _compiled_scan_case(pats, big, data, plant, backend)


def _compiled_scan_case(pats, big, data, plant, backend):
    """rules/_scan.h's compiled scan: a database of few patterns searched as literals in a
    short payload, the others asked through hyperscan, the same answer as AnyPattern's own
    (which asks hyperscan every time); payloads over the literal limit, more patterns than
    it takes, caseless patterns, patterns at the very end."""
    from rules._hotpath import scan

    pats = list(dict.fromkeys(pats))
    if plant < len(pats) and data:
        p, nc = pats[plant]
        data = data[:len(data) // 2] + (p.upper() if nc else p) + data[len(data) // 2:]
    dbs = [PatternDB(pats, backend=backend)] + ([PatternDB(big, backend=backend)] if big else [])
    ap = AnyPattern(dbs)
    assert scan(ap.spec, data) == int(ap(data))


class _Watched:
    parser = None


@pytest.mark.parametrize("backend", ["libhs", "hyperscan-module"])
def test_any_pattern_pickles_as_its_databases_and_rebuilds_its_compiled_form(backend):
    """A reload ships the engine pickled (bridge.reload): an AnyPattern's spec holds a capsule
    or a scratch, so it is rebuilt from the databases where it is loaded."""
    import pickle

    from rules._hotpath import scan

    ap = AnyPattern((PatternDB([(b"evil", False), (b"zq", True)], backend=backend),)).watching(_Watched())
    back = pickle.loads(pickle.dumps(ap))
    assert back is not ap and back.spec is not None and back.spec[1][0][0] is not ap.spec[1][0][0]
    assert [back(d) for d in (b"so evil", b"ZQ", b"fine")] == [True, True, False]
    assert [scan(back.spec, d) for d in (b"so evil", b"ZQ", b"fine")] == [1, 1, 0]
    assert back.watch is not None and back.watch.parser is None


def test_check_warns_when_the_prefilter_cannot_call_libhs(monkeypatch):
    from bridge import syscheck

    assert syscheck._prefilter_problems() == []
    monkeypatch.setattr(prefilter, "BACKEND", "hyperscan-module")
    monkeypatch.setattr(prefilter, "_LIBHS_NOTE", "libhs.so.5: cannot open shared object file")
    (p,) = syscheck._prefilter_problems()
    assert p.severity == "warning" and p.key == "hyperscan" and "libhyperscan5" in p.fix
    assert "the hyperscan module (libhs.so.5: cannot open shared object file; install" in p.message
