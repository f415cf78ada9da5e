"""xbits: what the parser accepts and refuses (as suricata -T 7.0.10 does), the bit table's
semantics (expiry in whole seconds of packet time, no refresh, toggle, pairs, the memory
cap), and the engine: bits across flows, signature order, IP-only rules, a rule reload."""
from __future__ import annotations

from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether

from rules.api import FrameMeta
from rules.detect import signature_order
from rules.engine import Engine
from rules.errors import RuleError
from rules.events import Alert
from rules.keywords.xbits import DEFAULT_EXPIRE, PRUNE_ABOVE, XbitOp, XbitTable, strtoull_strict
from rules.packet import Packet
from rules.parser import parse_rule
from rules.settings import EngineSettings

A, B, C = "198.51.100.1", "203.0.113.2", "203.0.113.3"


def xop(value: str) -> XbitOp:
    r = parse_rule(f'alert ip any any -> any any (msg:"m"; xbits:{value}; sid:1;)', file="t.rules", line=3)
    return next(sp for kw, sp in r.options if kw == "xbits")


# (value, accepted by Suricata 7.0.10's suricata -T) -- recorded with /usr/bin/suricata
PARSE_CASES = [
    ("set,foo,track ip_src", True),
    ("set,foo,track ip_src,garbage", True),          # nothing after the last part is looked at
    ("set,foo bar,track ip_src", True),              # one name, with a space
    ("set,foo,track  ip_pair", True),
    ("set,foo|bar,track ip_src", True),              # one name, not a list
    ("set,foo ,track ip_src", True),
    ("set,foo,track ip_src,expire 3", True),
    ("isnotset,foo,track ip_src,expire 3", True),
    ("set,foo,track ip_src,expire 4294967295", True),
    ("set,foo,track ip_src, expire 10, expire 5", True),
    ("noalert", False),
    ("noalert,track ip_src", False),
    ("set,foo", False),                              # track is mandatory
    ("set,foo,track tx", False),                     # Suricata 8
    ("set,foo,track ip_src,expire 0", False),
    ("set,foo,track ip_src,expire 10x", False),
    ("SET,foo,track ip_src", False),
    ("set,foo,track ip_src,expire -1", False),
    ("set,foo,track ip_src,expire 4294967296", False),
    ("set , foo,track ip_src", False),
    ("set,foo,track ip_src ,expire 3", False),
    ("set,foo,track ip_src,expire 0x10", False),
]


@pytest.mark.parametrize("value,ok", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_accepts_what_suricata_accepts(value, ok):
    if ok:
        assert isinstance(xop(value), XbitOp)
    else:
        with pytest.raises(RuleError):
            xop(value)


def test_parsed_fields():
    assert xop("set,ET.a,track ip_pair,expire 15") == XbitOp("set", "ET.a", "ip_pair", 15)
    assert xop("isset, ET.PROPFIND,track ip_dst") == XbitOp("isset", "ET.PROPFIND", "ip_dst", DEFAULT_EXPIRE)
    assert xop("set,foo ,track ip_src").name == "foo "
    assert xop("set,foo,track ip_src, expire 10, expire 5").expire == 10
    assert xop("isset,a,track ip_src").read and not xop("toggle,a,track ip_src").read


@pytest.mark.parametrize("value,needle,message", [
    ("set,foo,track tx", "tx", "unknown track 'tx'"),
    ("set,foo,track ip_src,expire 0", "0;", "expire must be bigger than 0"),
    ("set,foo,track ip_src,expire 12q", "12q", "invalid expire '12q'"),
    ("noalert", "noalert", "use the noalert keyword"),
    ("frob,a,track ip_src", "frob", "unknown xbits command 'frob'"),
], ids=["track", "expire-0", "expire-nan", "noalert", "command"])
def test_errors_name_file_line_and_column(value, needle, message):
    text = f'alert ip any any -> any any (msg:"m"; xbits:{value}; sid:1;)'
    with pytest.raises(RuleError) as ei:
        parse_rule(text, file="t.rules", line=3)
    e = ei.value
    assert message in e.message and e.keyword == "xbits" and not e.unsupported
    assert (e.file, e.line) == ("t.rules", 3)
    assert e.column == text.index(needle, text.index("xbits:")) + 1


@pytest.mark.parametrize("text,value", [("10", 10), (" +7", 7), ("-1", (1 << 64) - 1), ("0", 0),
                                        ("", None), ("1 ", None), ("0x10", None), ("1e3", None)])
def test_strtoull_strict(text, value):
    assert strtoull_strict(text) == value


# ---------------------------------------------------------------- the table
def pk(src=A, dst=B, ts=1000.0, ipver=4):
    p = Packet()
    p.ipver = ipver
    p.src = int.from_bytes(bytes(int(x) for x in src.split(".")), "big")
    p.dst = int.from_bytes(bytes(int(x) for x in dst.split(".")), "big")
    p.ts = ts
    return p


def op(cmd, name="b", track="ip_src", expire=10):
    return XbitOp(cmd, name, track, expire)


def test_expiry_counts_whole_seconds():
    t = XbitTable()
    t.apply(op("set"), pk(ts=1000.9))                    # second 1000: set up to second 1010
    assert t.test(op("isset"), pk(ts=1010.99))
    assert not t.test(op("isset"), pk(ts=1011.0))
    assert t.test(op("isnotset"), pk(ts=1011.0))


def test_a_second_set_does_not_move_the_expiry():
    t = XbitTable()
    t.apply(op("set"), pk(ts=1000.0))
    t.apply(op("set", expire=100), pk(ts=1005.0))
    assert not t.test(op("isset"), pk(ts=1011.0))


def test_an_expired_bit_stays_for_set_and_toggle_until_checked():
    """As Suricata's HostBitSet / HostBitToggle: set has no effect on a bit still there,
    toggle clears it; isset drops it, after which set starts a new bit."""
    t = XbitTable()
    t.apply(op("set"), pk(ts=1000.0))
    t.apply(op("set"), pk(ts=1050.0))                     # expired but there: no effect
    assert not t.test(op("isset"), pk(ts=1051.0))          # dropped now
    t.apply(op("set"), pk(ts=1052.0))
    assert t.test(op("isset"), pk(ts=1062.0))
    t.apply(op("toggle"), pk(ts=1100.0))                   # expired and there: cleared
    assert t.test(op("isnotset"), pk(ts=1100.0)) and len(t) == 0


def test_tracks():
    t = XbitTable()
    t.apply(op("set", track="ip_dst"), pk(src=A, dst=B))
    assert t.test(op("isset"), pk(src=B, dst=C))                      # B's bit, read as a source
    assert not t.test(op("isset"), pk(src=A, dst=B))
    t.apply(op("set", name="p", track="ip_pair"), pk(src=A, dst=B))
    assert t.test(op("isset", name="p", track="ip_pair"), pk(src=B, dst=A))
    assert not t.test(op("isset", name="p", track="ip_pair"), pk(src=A, dst=C))
    assert not t.test(op("isset", name="p"), pk(src=A, dst=B))        # a pair's bit is not a host's


def test_toggle_and_unset():
    t = XbitTable()
    t.apply(op("toggle"), pk())
    assert t.test(op("isset"), pk())
    t.apply(op("toggle"), pk())
    assert t.test(op("isnotset"), pk())
    t.apply(op("set"), pk())
    t.apply(op("unset"), pk())
    assert t.test(op("isnotset"), pk()) and len(t) == 0
    t.apply(op("unset"), pk(src=C))                                   # nothing there: no entry made
    assert len(t) == 0


def test_a_packet_without_ip_has_no_host():
    t = XbitTable()
    t.apply(op("set"), pk(ipver=0))
    assert len(t) == 0
    assert not t.test(op("isset"), pk(ipver=0)) and t.test(op("isnotset"), pk(ipver=0))


def test_the_table_is_bounded_and_evictions_are_counted():
    t = XbitTable(max_entries=3)
    for i in range(5):
        t.apply(op("set"), pk(src=f"198.51.100.{i + 1}"))
    assert len(t) == 3 and t.evicted == 2
    assert t.test(op("isnotset"), pk(src="198.51.100.1"))             # the oldest went
    assert t.test(op("isset"), pk(src="198.51.100.5"))
    assert t.stats() == {"xbits.entries": 3, "xbits.evicted": 2}


def test_prune_drops_entries_whose_bits_all_expired_once_the_table_is_large():
    t = XbitTable()
    for i in range(PRUNE_ABOVE + 10):
        p = pk(src=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
        t.apply(op("set", expire=10 if i % 2 else 1000), p)
    t.prune(1010.0)                                   # expire 1010 <= 1010: timed out (HostBitsTimedoutCheck)
    assert len(t) == (PRUNE_ABOVE + 10) // 2
    small = XbitTable()
    small.apply(op("set"), pk())
    small.prune(5000.0)                               # below PRUNE_ABOVE: not walked
    assert len(small) == 1


# ---------------------------------------------------------------- the engine
def frame(src, dst, dport, data, sport=1000):
    return bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / data)


class Run:
    def __init__(self, *texts, engine=None):
        self.e = engine or Engine([parse_rule(t) for t in texts], EngineSettings(mode="ips"))
        self.n = 0

    def __call__(self, src, dst, dport, data, ts, sport=None):
        self.n += 1
        r = self.e.inspect(frame(src, dst, dport, data, sport or 1000 + self.n),
                           FrameMeta(ts=ts, iface="", pcap_cnt=self.n))
        return sorted(ev.sid for ev in r.events if isinstance(ev, Alert))


SET = 'alert udp any any -> any 7000 (msg:"set"; content:"SET"; xbits:set,b,track ip_src,expire 10; sid:1; priority:1;)'
CHK = 'alert udp any any -> any any (msg:"chk"; content:"CHK"; xbits:isset,b,track ip_src; sid:2; priority:3;)'


def test_a_bit_outlives_its_flow_and_expires_by_packet_time():
    run = Run(SET, CHK)
    assert run(A, B, 7000, b"SET", 100.0) == [1]
    assert run(A, C, 9000, b"CHK", 105.0) == [2]          # another flow, another destination
    assert run(B, C, 9000, b"CHK", 105.0) == []           # another host
    assert run(A, C, 9000, b"CHK", 111.0) == []           # second 111 > 100 + 10


def test_a_check_is_evaluated_before_a_set_on_the_same_packet():
    """Suricata's order: an xbits reader sorts before rules that only set (whatever the
    priorities), so the set is not seen on its own packet."""
    run = Run(SET, CHK)
    assert run(A, B, 7000, b"SETCHK", 100.0) == [1]
    assert run(A, B, 7000, b"CHK", 101.0) == [2]


def test_signature_order_keys():
    setter = parse_rule(SET)
    reader = parse_rule(CHK)
    pair = parse_rule('alert ip any any -> any any (msg:"p"; xbits:isset,b,track ip_pair; sid:3; priority:1;)')
    plain = parse_rule('alert ip any any -> any any (msg:"x"; sid:4; priority:1;)')
    order = [r.sid for r in signature_order([setter, plain, pair, reader])]
    # host readers, then pair readers, then (by priority) the setter and the plain rule in load order
    assert order == [2, 3, 1, 4]


def test_iponly_xbits_rule_runs_on_the_first_packet_of_each_flow_direction():
    mark = 'alert udp any any -> any 7200 (msg:"mark"; content:"BAD"; xbits:set,bad,track ip_src; noalert; sid:1;)'
    iponly = 'alert ip any any -> any any (msg:"bad host"; xbits:isset,bad,track ip_src; sid:2;)'
    run = Run(mark, iponly)
    assert parse_rule(iponly).iponly
    assert run(A, B, 7200, b"BAD", 100.0, sport=5000) == []
    assert run(A, B, 7200, b"more", 101.0, sport=5000) == []     # same flow: already evaluated
    assert run(A, B, 7200, b"new flow", 102.0, sport=5001) == [2]


def test_iponly_rules_run_first_on_their_packet():
    """Suricata's IP-only engine runs before the other rules: a payload rule sees the bit an
    IP-only rule set on the same packet, though it sorts before it (a reader); among IP-only
    rules the signature order holds; the alerts keep the signature order."""
    iponly_set = 'alert ip any any -> any any (msg:"set"; xbits:set,seen,track ip_dst; sid:1;)'
    reader = 'alert udp any any -> any 7202 (msg:"payload reader"; content:"a"; xbits:isset,seen,track ip_dst; sid:2;)'
    iponly_read = 'alert ip any any -> any any (msg:"iponly reader"; xbits:isset,seen,track ip_dst; sid:3;)'
    run = Run(iponly_set, reader, iponly_read)
    r = run.e.inspect(frame(A, B, 7202, b"a", 5000), FrameMeta(ts=100.0, iface="", pcap_cnt=1))
    sids = [ev.sid for ev in r.events if isinstance(ev, Alert)]
    assert sorted(sids) == [1, 2]                     # the IP-only reader ran before the IP-only set
    order = {s.rule.sid: s.order for s in run.e.detector.sigs}
    assert sids == sorted(sids, key=order.get)


def test_a_reload_keeps_the_bits():
    run = Run(SET, CHK)
    run(A, B, 7000, b"SET", 100.0)
    new = Engine([parse_rule(CHK)], EngineSettings(mode="ips"))
    run.e.adopt_rules(new)
    assert run(A, C, 9000, b"CHK", 102.0) == [2]
    assert run.e.stats()["xbits.entries"] == 1


def test_noalert_rule_still_sets():
    run = Run(SET.replace("sid:1;", "noalert; sid:1;"), CHK)
    assert run(A, B, 7000, b"SET", 100.0) == []
    assert run(A, B, 9000, b"CHK", 101.0) == [2]


def test_every_et_open_xbits_value_parses():
    import glob
    import re

    vals = set()
    for f in glob.glob("/work/shared/corpus/rules/et-open/*.rules"):
        for line in Path(f).read_text(errors="replace").splitlines():
            if line.startswith(("alert", "drop")):
                vals.update(re.findall(r"xbits:([^;]*);", line))
    assert len(vals) > 20
    for v in vals:
        assert isinstance(xop(v.strip()), XbitOp), v
