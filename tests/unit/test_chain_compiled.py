"""The compiled content chain (rules/_chain.c) answers what its Python reference
(PayloadChain._m) answers for a chain made only of contents: for random chains of
contents -- nocase, negated, endswith, absolute offset/depth, relative distance/within
(negative distances too) -- on random buffers, with the step budget running out or not;
and a chain with any other item, or a buffer that is not bytes, stays on the Python path."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules.payload as payload
from rules.parser import parse_rule
from rules.payload import STEP_BUDGET, Content, IsDataAt, PayloadChain, content_spec

COMPILED = payload._CHAIN_MATCH


@st.composite
def _content(draw) -> Content:
    pattern = draw(st.sampled_from([b"a", b"b", b"ab", b"Ab", b"ba", b"aa", b"xA", b"bab", b"abx"]))
    nocase = draw(st.booleans())
    c = Content(pattern=pattern, nocase=nocase, lpattern=pattern.lower() if nocase else b"",
                negated=draw(st.booleans()) and draw(st.booleans()),
                endswith=draw(st.integers(0, 5)) == 0)
    if draw(st.booleans()):
        c.distance = draw(st.none() | st.integers(-4, 6))
        c.within = draw(st.none() | st.integers(1, 8))
        if c.distance is None and c.within is None:
            c.distance = 0
    else:
        c.offset = draw(st.none() | st.integers(0, 8))
        c.depth = draw(st.none() | st.integers(1, 10))
    return c


_BUF = st.lists(st.sampled_from([b"a", b"A", b"b", b"B", b"x", b"ab"]), max_size=24).map(b"".join)


def test_the_compiled_module_is_built_and_used():
    """The install builds it; chains use it (a silent fallback would hide a build break)."""
    assert COMPILED is not None and COMPILED.__module__ == "rules._chain"
    rule = parse_rule('alert http any any -> any any (http.uri; content:"/a"; content:"b"; distance:0; sid:1;)')
    chain = rule.app.bufs[0].chain
    assert chain.match_buffer(b"/a/b") and not chain.match_buffer(b"/b/a")
    assert chain._cspec == ((b"/a", 0, 0, 0, 0, 0), (b"b", payload.C_RELATIVE, 0, 0, 0, 0))


@settings(max_examples=5000, deadline=None)
@given(st.lists(_content(), min_size=1, max_size=5), _BUF)
def test_compiled_chain_answers_as_the_python_reference(items, buf):
    chain = PayloadChain(items)
    want = chain._m(0, buf, 0, [STEP_BUDGET, None])
    assert chain.match_buffer(buf) is want
    assert chain._cspec is not None and chain._cspec is not False      # (the compiled path was taken)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_content(), min_size=1, max_size=5), _BUF, st.integers(0, 12))
def test_compiled_chain_spends_the_step_budget_as_the_reference(items, buf, budget):
    """A retried content costs a step per try, shared by the whole match: with a small
    budget both give up at the same point."""
    chain = PayloadChain(items)
    assert COMPILED(buf, content_spec(chain.items), chain._next_rel, budget) is chain._m(0, buf, 0, [budget, None])


def test_retries_run_out_of_budget_on_a_long_buffer():
    """content:"a"; content:"b"; distance:0; within:1; on 5,000 "a"s with no "b": the
    first content is retried at each "a" until the 3,000 steps are spent (both say no)."""
    rule = parse_rule('alert http any any -> any any (http.uri; content:"a"; content:"b"; distance:0; within:1; sid:1;)')
    chain = rule.app.bufs[0].chain
    buf = b"a" * 5000
    assert chain.match_buffer(buf) is False
    assert chain._m(0, buf, 0, [STEP_BUDGET, None]) is False
    assert COMPILED(buf + b"b", chain._cspec, chain._next_rel, 10**6) is True
    assert COMPILED(buf + b"b", chain._cspec, chain._next_rel, STEP_BUDGET) is False   # too far for the budget


def test_a_retry_looks_from_the_next_byte_on():
    """A retried content's next occurrence may overlap the last one: "aa" at 0 fails the
    relative "ab" (window "aa"), "aa" at 1 (not at 2) lets it match."""
    chain = PayloadChain([Content(pattern=b"aa"), Content(pattern=b"ab", distance=-1, within=2)])
    assert chain._m(0, b"aaab", 0, [STEP_BUDGET, None]) is True
    assert chain.match_buffer(b"aaab") is True and chain._cspec
    assert chain.match_buffer(b"aaxab") is False


def test_a_chain_with_another_item_stays_python():
    chain = PayloadChain([Content(pattern=b"a"), IsDataAt(n=2, relative=True)])
    assert content_spec(chain.items) is None
    assert chain.match_buffer(b"xa12") is True and chain._cspec is None
    assert chain.match_buffer(b"xa1") is False


def test_a_buffer_that_is_not_bytes_takes_the_python_path(monkeypatch):
    chain = PayloadChain([Content(pattern=b"ab")])

    def refuse(*args):
        raise AssertionError("the compiled match was called")

    monkeypatch.setattr(payload, "_CHAIN_MATCH", refuse)
    chain._cspec = content_spec(chain.items)
    assert chain.match_buffer(bytearray(b"xab")) is True
    assert chain.match_buffer(bytearray(b"xba")) is False


def test_the_spec_is_made_at_the_first_match_not_before():
    """The parser may change a content after its chain is made (a negated fast pattern
    loses its endswith): the spec reads the items when the chain is first matched."""
    c = Content(pattern=b"a", negated=True, endswith=True)
    chain = PayloadChain([c])
    c.endswith = False
    assert chain.match_buffer(b"ab") is False            # "a" is there: the negated content fails
    assert chain._cspec == ((b"a", payload.C_NEGATED, 0, 0, 0, 0),)


@pytest.mark.parametrize("args", [
    (bytearray(b"a"), ((b"a", 0, 0, 0, 0, 0),), (False,), 10),       # not bytes
    (b"a", ((b"a", 0, 0, 0, 0),), (False,), 10),                     # a short spec item
    (b"a", (("a", 0, 0, 0, 0, 0),), (False,), 10),                   # a str pattern
    (b"a", ((b"a", 0, 0, 0, 0, 0),), (), 10),                        # next_rel of another length
])
def test_compiled_match_refuses_what_it_cannot_read(args):
    with pytest.raises(TypeError):
        COMPILED(*args)
