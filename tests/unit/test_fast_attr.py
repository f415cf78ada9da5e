"""The compiled lanes read and write engine fields through a cache of slot offsets by
(class, name) (rules/_hotpath.c fa_get / fa_set, exposed as `_hotpath.attr`).  Whatever
the cache holds, the answer must be getattr's and setattr's: a class changed after a read,
a subclass that shadows a slot, a class with its own __getattribute__ / __setattr__, an
unset slot, a read-only member, an instance-dict attribute."""
from __future__ import annotations

import pickle
import types

import pytest

from rules import _hotpath
from rules.applayer import base as app_base
from rules.applayer import http
from rules.detect import Detector
from rules.engine import Engine
from rules.stream import Scanner, StreamEngine, StreamSettings

attr = _hotpath.attr


class Slotted:
    __slots__ = ("a", "b", "__dict__")


def test_slot_read_and_write_are_the_attributes():
    o = Slotted()
    o.a = [1]
    assert attr(o, "a") is o.a
    assert attr(o, "a", "x") is None
    assert o.a == "x"
    for _ in range(3):                      # (from the cache now)
        assert attr(o, "a") == "x"
    o.extra = 7                             # an instance-dict attribute: not a slot
    assert attr(o, "extra") == 7
    attr(o, "extra", 8)
    assert o.extra == 8


def test_unset_slot_raises_what_getattr_raises():
    o = Slotted()
    with pytest.raises(AttributeError) as ours:
        attr(o, "b")
    with pytest.raises(AttributeError) as theirs:
        getattr(o, "b")
    assert str(ours.value) == str(theirs.value)


def test_class_changed_after_a_read_is_looked_up_again():
    cls = types.new_class("Changing", (), {}, lambda ns: ns.update(__slots__=("a", "__dict__")))
    o = cls()
    o.a = 1
    assert attr(o, "a") == 1                # cached: a slot at its offset
    cls.a = property(lambda self: "property")
    assert attr(o, "a") == "property"
    with pytest.raises(AttributeError):
        attr(o, "a", 5)                     # a property without a setter
    assert o.a == "property"


def test_a_subclass_that_shadows_a_slot():
    class Sub(Slotted):
        a = property(lambda self: "shadow")

    base, sub = Slotted(), Sub()
    base.a = 1
    assert attr(base, "a") == 1
    assert attr(sub, "a") == "shadow"


def test_own_getattribute_and_setattr_are_called():
    seen = []

    class Hooked:
        __slots__ = ("a",)

        def __getattribute__(self, name):
            return "hooked"

        def __setattr__(self, name, value):
            seen.append((name, value))

    h = Hooked()
    assert attr(h, "a") == "hooked"
    attr(h, "a", 3)
    assert seen == [("a", 3)]


def test_read_only_member_of_a_builtin():
    s = slice(1, 2, 3)
    assert attr(s, "start") == 1
    with pytest.raises(AttributeError):
        attr(s, "start", 5)
    assert s.start == 1


def test_engine_classes_keep_the_lanes_fields_in_slots():
    """A field the lanes read on every segment that is not a plain slot still works (through
    getattr), at about 18 times the cost: the classes declare them."""
    wanted = {
        StreamEngine: ("inline", "track_segs", "chunk", "scanner", "mem", "s", "depth", "app_on"),
        Scanner: ("scan", "lengths", "overlap"),
        app_base.Parser: ("txs", "events", "failed", "no_inspect_payload", "bypass_ready", "gen", "tx_idle"),
        http.Parser: ("sides",),
        Engine: ("lean", "app", "detector"),
        Detector: ("_hdr_cache", "evaluated", "tx"),
    }
    for cls, names in wanted.items():
        for name in names:
            d = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)
            assert type(d).__name__ == "member_descriptor", f"{cls.__qualname__}.{name}"


def test_a_detector_pickles_with_its_slots():
    from tests.unit.test_engine_lean_lane import parse

    det = Detector(parse('alert tcp any any -> any any (msg:"m"; content:"abc"; sid:1;)'))
    det.evaluated = 5
    back = pickle.loads(pickle.dumps(det))
    assert (back.evaluated, back._hdr_cache, back.tx) == (5, {}, None)
    assert [s.rule.sid for s in back.sigs] == [1]


def test_slotted_engine_classes_pickle_and_keep_instance_attributes():
    streams = StreamEngine(StreamSettings(), True)
    streams.mem = 123
    streams.note = "an instance attribute"  # (tests replace methods on an instance)
    back = pickle.loads(pickle.dumps(streams))
    assert (back.mem, back.inline, back.chunk, back.note) == (123, True, streams.chunk, "an instance attribute")
    p = http.Parser()
    p.gen = 4
    q = pickle.loads(pickle.dumps(p))
    assert (q.gen, len(q.sides), q.txs) == (4, 2, [])
    assert attr(q, "gen") == 4 and attr(q, "sides") is q.sides
