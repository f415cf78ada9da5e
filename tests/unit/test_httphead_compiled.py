"""The compiled header-block split (rules/applayer/_httphead.c) answers what its Python
reference (rules.applayer.http.split_headers_py) answers: for header blocks built from the
lines that make libhtp's cases (folded lines, lines without a colon, repeated names in any
case, spaces in names, bare LF and CR LF, a block over the limit or not complete yet), and
for the HTTP differential scenarios replayed through the parser with each.  Its `join`
makes the http.header, http.header_names and http.start buffers as join_headers_py does."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules.applayer.http as http
from tests.unit.scenario_replay import replay, scenarios

COMPILED = http._SPLIT_HEADERS
PY = http.split_headers_py
JOIN = http._JOIN_HEADERS
JOIN_PY = http.join_headers_py
HTTP_SCENARIOS = scenarios("app_http")

_NAMES = [b"Host", b"host", b"HOST", b"User-Agent", b"Cookie", b"X-A", b"x-a", b"Bad Name", b"Tab\tName",
          b" Lead", b"", b"Content-Length", b"\xc3\xa9t\xc3\xa9"]
_VALUES = [b"", b"v", b" spaced  ", b"\tx\t", b"a:b:c", b"198.51.100.7:8080", b"\x00\xff", b"\x0bvt\x0c"]


@st.composite
def _line(draw) -> bytes:
    kind = draw(st.sampled_from(["header", "header", "header", "folded", "nocolon", "raw"]))
    if kind == "header":
        return draw(st.sampled_from(_NAMES)) + b":" + draw(st.sampled_from(_VALUES))
    if kind == "folded":
        return draw(st.sampled_from([b" ", b"\t", b" \t "])) + draw(st.sampled_from(_VALUES + [b"more"]))
    if kind == "nocolon":
        return draw(st.sampled_from([b"NoColon", b"nocolon", b"  padded  ", b"Host", b"\x0bx"]))
    return draw(st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b and b != b"\r"))


@st.composite
def _block(draw) -> bytes:
    lines = draw(st.lists(_line(), max_size=12))
    eols = [draw(st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])) for _ in lines]
    out = b"".join(ln + e for ln, e in zip(lines, eols))
    ending = draw(st.sampled_from([b"\r\n", b"\n", b"", b"\r"]))     # "" and "\r": not complete
    return out + ending + draw(st.binary(max_size=8))               # (bytes after the block stay)


def test_the_compiled_module_is_built_and_used():
    """The install builds it; the parser uses it (a silent fallback would hide a build break)."""
    assert COMPILED is not PY
    assert COMPILED.__module__ == "rules.applayer._httphead"
    assert JOIN is not JOIN_PY
    assert JOIN.__module__ == "rules.applayer._httphead"


@settings(max_examples=3000, deadline=None)
@given(_block(), st.sampled_from([0, 5, 20, 60, 4096]), st.booleans())
def test_compiled_split_answers_as_the_python_reference(block, limit, to_server):
    buf = bytearray(block)
    want = PY(bytearray(block), limit, to_server)
    got = COMPILED(buf, limit, to_server)
    assert got == want
    assert buf == block                         # (neither touches the buffer: the parser cuts it)


@pytest.mark.parametrize("block,to_server,want", [
    (b"Host: a\r\nhost: b\r\n\r\nrest", True,
     (20, [(b"Host", b"a, b")], {b"host": b"a, b"}, ())),
    (b"A: 1\r\n  folded \r\n\r\n", True, (19, [(b"A", b"1 folded")], {b"a": b"1 folded"}, ())),
    (b"NoColon\r\nBad Name: x\r\n\r\n", True,
     (24, [(b"NoColon", b""), (b"Bad Name", b"x")], {b"nocolon": b"", b"bad name": b"x"},
      ("http.request_field_missing_colon", "http.request_header_invalid"))),
    (b"NoColon\r\nBad Name: x\r\n\r\n", False,
     (24, [(b"NoColon", b""), (b"Bad Name", b"x")], {b"nocolon": b"", b"bad name": b"x"}, ())),
    (b"Host: a\r\n", True, None),               # no empty line yet
])
def test_known_blocks(block, to_server, want):
    """Cases written out, so a change to both twins at once still shows."""
    for impl in (PY, COMPILED):
        assert impl(bytearray(block), 4096, to_server) == want


def test_over_the_limit_is_false_complete_or_not():
    for impl in (PY, COMPILED):
        assert impl(bytearray(b"A: " + b"x" * 100 + b"\r\n\r\n"), 50, True) is False
        assert impl(bytearray(b"A: " + b"x" * 100), 50, True) is False
        assert impl(bytearray(b"A: " + b"x" * 40), 50, True) is None


def test_many_lines_grow_the_line_table():
    block = b"".join(b"H%d: %d\r\n" % (i, i) for i in range(500)) + b"\r\n"
    assert COMPILED(bytearray(block), 1 << 20, True) == PY(bytearray(block), 1 << 20, True)


def test_only_a_bytearray_is_taken():
    with pytest.raises(TypeError):
        COMPILED(b"A: 1\r\n\r\n", 100, True)


def _replay(sc: dict, attr: str, impl, monkeypatch) -> tuple[list, dict]:
    """Replay a scenario with `impl` as http.<attr>: each call's arguments (a bytearray as
    bytes, a list copied) and answer, and what came out."""
    calls: list = []

    def recorded(*args):
        got = impl(*args)
        calls.append(tuple(bytes(a) if isinstance(a, bytearray) else list(a) if isinstance(a, list) else a
                           for a in args) + (got,))
        return got

    monkeypatch.setattr(http, attr, recorded)
    return calls, replay(sc)


@pytest.mark.parametrize("name", sorted(HTTP_SCENARIOS))
def test_http_scenarios_replay_the_same_with_either(name, monkeypatch):
    sc = HTTP_SCENARIOS[name]
    c_calls, c_out = _replay(sc, "_SPLIT_HEADERS", COMPILED, monkeypatch)
    py_calls, py_out = _replay(sc, "_SPLIT_HEADERS", PY, monkeypatch)
    assert any(got for *_, got in c_calls)      # the scenario did reach a complete header block
    assert c_calls == py_calls
    assert c_out == py_out


# ---------------------------------------------------------------------------- join
_HEADER = st.tuples(st.sampled_from(_NAMES + [b"cookie", b"COOKIE", b"Set-Cookie", b"set-cookie", b"Cookie2"])
                    | st.binary(max_size=10),
                    st.sampled_from(_VALUES) | st.binary(max_size=40))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=30), st.lists(_HEADER, max_size=12), st.sampled_from([0, 1, 2]),
       st.sampled_from([b"cookie", b"set-cookie", b"", b"host"]))
def test_compiled_join_makes_what_the_python_reference_makes(line, headers, kind, skip):
    want = JOIN_PY(line, headers, kind, skip)
    got = JOIN(line, headers, kind, skip)
    assert got == want
    assert type(got) is type(want)


@pytest.mark.parametrize("kind,line,headers,skip,want", [
    (0, b"", [(b"Host", b"a"), (b"Cookie", b"c=1"), (b"X", b"")], b"cookie", b"Host: a\r\nX: \r\n"),
    (0, b"", [(b"COOKIE", b"c=1")], b"cookie", None),              # nothing left: no buffer
    (0, b"", [(b"Set-Cookie", b"s")], b"cookie", b"Set-Cookie: s\r\n"),
    (0, b"", [], b"cookie", None),
    (1, b"", [(b"Host", b"a"), (b"cookie", b"")], b"", b"\r\nHost\r\ncookie\r\n\r\n"),
    (1, b"", [], b"", None),
    (2, b"GET / HTTP/1.1", [(b"Host", b"a"), (b"Cookie", b"c")], b"",
     b"GET / HTTP/1.1\r\nHost: a\r\nCookie: c\r\n\r\n"),
    (2, b"HTTP/1.1 200 OK", [], b"", b"HTTP/1.1 200 OK\r\n\r\n"),
    (2, b"", [], b"", b"\r\n\r\n"),
])
def test_join_known_lists(kind, line, headers, skip, want):
    assert JOIN(line, headers, kind, skip) == want
    assert JOIN_PY(line, headers, kind, skip) == want


@pytest.mark.parametrize("args,exc", [
    ((b"", [(b"A", b"1", b"x")], 0, b""), TypeError),       # not a pair
    ((b"", [("A", b"1")], 0, b""), TypeError),              # a str name
    ((b"", [(b"A", "1")], 2, b""), TypeError),              # a str value
    ((b"", ((b"A", b"1"),), 0, b""), TypeError),            # not a list
    (("", [(b"A", b"1")], 2, b""), TypeError),              # a str line
    ((b"", [(b"A", b"1")], 3, b""), ValueError),            # no such buffer
])
def test_join_refuses_what_it_cannot_join(args, exc):
    with pytest.raises(exc):
        JOIN(*args)


@pytest.mark.parametrize("name", sorted(HTTP_SCENARIOS))
def test_http_scenarios_join_the_same_with_either(name, monkeypatch):
    sc = HTTP_SCENARIOS[name]
    c_calls, c_out = _replay(sc, "_JOIN_HEADERS", JOIN, monkeypatch)
    py_calls, py_out = _replay(sc, "_JOIN_HEADERS", JOIN_PY, monkeypatch)
    if name in ("app_http_requests", "app_http_requests_ids"):   # (every buffer is made there)
        assert {kind for _l, _h, kind, _s, _g in c_calls} == {0, 1, 2}
    assert c_calls == py_calls
    assert c_out == py_out
