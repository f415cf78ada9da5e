"""flowint: what the parser accepts and refuses (as suricata -T 7.0.10 does), the arithmetic
and comparisons (uint32, variables, values not set), and per-flow state in the engine."""
from __future__ import annotations

import pytest
from scapy.all import IP, UDP, Ether

from rules.api import FrameMeta
from rules.engine import Engine
from rules.errors import RuleError
from rules.events import Alert
from rules.keywords._state import VarState
from rules.keywords.flowint import FlowintOp
from rules.packet import Flow, Packet
from rules.parser import parse_rule
from rules.settings import EngineSettings


def fop(value: str) -> FlowintOp:
    r = parse_rule(f'alert ip any any -> any any (msg:"m"; flowint:{value}; sid:1;)', file="t.rules", line=4)
    return next(sp for kw, sp in r.options if kw == "flowint")


# (value, accepted by Suricata 7.0.10's suricata -T) -- recorded with /usr/bin/suricata
PARSE_CASES = [
    ("a,+,1", False),                 # a name has two characters at least
    ("ab,+,1", True),
    (" ET.x.y , + , 1 ", True),
    ("ab,+", False),                  # + needs a value
    ("ab,isset,5", True),             # the value is ignored
    ("ab,notset", True),
    ("ab,=,4294967296", False),
    ("ab,=,4294967295", True),
    ("ab,=,12345678901", False),
    ("ab,=,x", False),                # a variable name has two characters at least
    ("ab,=,x.y", False),              # and no dot
    ("ab,<=,xy", True),
    ("ab,+5", True),                  # the comma before the value is optional
    ("ab,=<,5", False),
    ("1ab,=,5", False),
    ("ab,-,-5", False),
    ("ab,ISSET", False),
    ("ab,isnotset", True),
    ("ab,>,x_1", True),
    ("ab,==,0005", True),
]


@pytest.mark.parametrize("value,ok", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_accepts_what_suricata_accepts(value, ok):
    if ok:
        assert isinstance(fop(value), FlowintOp)
    else:
        with pytest.raises(RuleError):
            fop(value)


def test_parsed_fields():
    assert fop(" ET.x.y , + , 1 ") == FlowintOp("ET.x.y", "+", 1, "")
    assert fop("ab,notset") == FlowintOp("ab", "isnotset")
    assert fop("ab,<=,xy") == FlowintOp("ab", "<=", 0, "xy")
    assert fop("ab,==,0005").value == 5
    assert fop("ab,>=,1").read and not fop("ab,-,1").read


def test_errors_carry_file_line_column():
    text = 'alert ip any any -> any any (msg:"m"; flowint:ab,=,4294967296; sid:1;)'
    with pytest.raises(RuleError) as ei:
        parse_rule(text, file="t.rules", line=4)
    e = ei.value
    assert (e.file, e.line, e.keyword) == ("t.rules", 4, "flowint")
    assert e.column == text.index("4294967296") + 1 and "out of range" in e.message


def fl(fid=1):
    return Flow(("k", fid), fid, 0.0)


def run_ops(state, flow, *values):
    out = []
    for v in values:
        o = fop(v)
        if o.read:
            out.append(o.test(Packet(), flow, state))
        else:
            o.apply(Packet(), flow, state)
    return out


@pytest.mark.parametrize("values,expected", [
    (("ab,isset", "ab,notset"), [False, True]),
    (("ab,+,5", "ab,==,5"), [True]),                         # + on a variable not set sets it
    (("ab,-,5", "ab,isset"), [False]),                       # - on one not set does nothing
    (("ab,=,1", "ab,-,2", "ab,==,4294967295"), [True]),      # uint32 wrap-around
    (("ab,=,4294967295", "ab,+,2", "ab,==,1"), [True]),
    (("ab,=,3", "ab,<,cd", "ab,>,cd", "ab,!=,cd"), [False, True, True]),   # cd not set: 0
    (("cd,=,9", "ab,=,cd", "ab,==,9", "ab,<=,9", "ab,>=,10"), [True, True, False]),
    (("ab,>,0",), [False]),                                  # a comparison needs the variable set
], ids=["isset", "add-new", "sub-new", "wrap-down", "wrap-up", "var-missing", "var-copy", "unset-compare"])
def test_semantics(values, expected):
    assert run_ops(VarState(), fl(), *values) == expected


def test_no_flow_no_match_not_even_isnotset():
    st = VarState()
    assert fop("ab,isnotset").test(Packet(), None, st) is False
    fop("ab,=,1").apply(Packet(), None, st)
    assert st.stats()["flowint.flows"] == 0


def test_values_are_per_flow_and_go_with_it():
    st = VarState()
    run_ops(st, fl(1), "ab,=,1")
    assert run_ops(st, fl(2), "ab,isset") == [False]
    assert run_ops(st, fl(1), "ab,isset") == [True]
    st.forget(1)
    assert run_ops(st, fl(1), "ab,isset") == [False]


def frame(dport, data, sport=1000):
    return bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=sport, dport=dport) / data)


def test_engine_setters_run_before_readers_and_the_flow_end_clears():
    e = Engine([parse_rule(t) for t in (
        'alert udp any any -> any 7100 (msg:"two"; flowint:cnt,==,2; sid:2;)',
        'alert udp any any -> any 7100 (msg:"add"; content:"ADD"; flowint:cnt,+,1; noalert; sid:1;)',
    )], EngineSettings(mode="ips"))
    seen = []
    for i, (data, sport) in enumerate(((b"ADD", 1000), (b"ADD", 1000), (b"x", 1000), (b"ADD", 1001), (b"ADD", 1001))):
        r = e.inspect(frame(7100, data, sport), FrameMeta(ts=100.0 + i, iface="", pcap_cnt=i + 1))
        seen.append([ev.sid for ev in r.events if isinstance(ev, Alert)])
    # the setter (sorted first) counts the second ADD before the check on the same packet
    assert seen == [[], [2], [2], [], [2]]
    assert e.stats()["flowint.flows"] == 2
    e.finish()
    assert e.stats()["flowint.flows"] == 0
