"""rules.flow behaviour the mutation run (tests/bench/mutation.py) found unchecked by the
flow suites: `touch` (frames the data plane forwarded without a lookup), ICMP errors
joining the flow they quote, the counters over more than one event, keys of unpaired
ICMP types and port-less protocols, a midstream pickup on a flow's second packet, and
timeouts a partial `flow-timeouts` leaves at Suricata's defaults."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from rules.api import FrameMeta
from rules.decode import DecodeOptions, decode
from rules.flow import FlowTable
from rules.settings import DEFAULT_TIMEOUTS, FLOW_BYTES, FlowSettings, FlowTimeouts, StreamSettings

C4, S4 = "198.51.100.1", "203.0.113.2"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
OPTS = DecodeOptions(checksum_validation=False)


def pkt(layers, ts=0.0):
    return decode(bytes(ETH / layers), FrameMeta(ts=ts, iface="eth0"), OPTS)[0]


def udp(a=C4, b=S4, sp=5000, dp=53, ts=0.0):
    return pkt(IP(src=a, dst=b) / UDP(sport=sp, dport=dp) / b"q", ts)


def tcp(flags, a=C4, b=S4, sp=40000, dp=80, ts=0.0):
    return pkt(IP(src=a, dst=b) / TCP(sport=sp, dport=dp, flags=flags), ts)


# ------------------------------------------------------------------ touch
def test_touch_moves_the_flow_on_in_time_and_in_the_eviction_order():
    t = FlowTable(FlowSettings(memcap=2 * FLOW_BYTES))
    a, b = udp(sp=1, ts=0.0), udp(sp=2, ts=1.0)
    t.lookup(a)
    t.lookup(b)
    t.touch(a.flow, 5.0)
    assert a.flow.last_ts == 5.0
    t.touch(a.flow, 3.0)                              # an older time never moves it back
    assert a.flow.last_ts == 5.0
    t.lookup(udp(sp=3, ts=6.0))                       # the least recently active (b) is evicted
    assert t.take_ended() == [b.flow]


def test_touch_of_a_flow_no_longer_in_the_table_changes_the_table_not():
    t = FlowTable(FlowSettings(memcap=1 * FLOW_BYTES))
    a = udp(sp=1)
    t.lookup(a)
    t.lookup(udp(sp=2, ts=1.0))                       # a is evicted
    t.touch(a.flow, 2.0)
    assert [f.cli_port for f in t.all()] == [2]


def test_touch_establishes_a_flow_whose_second_direction_only_went_by_the_fast_path():
    t = FlowTable()
    q = udp()
    t.lookup(q)
    f = q.flow
    f.pkts_toclient += 2                              # two replies forwarded without a lookup
    t.touch(f, 1.0, n=2)
    assert f.state == "established" and f.est_after == 1
    assert f.established                              # from the first of those replies on
    t2 = FlowTable()
    q2 = udp()
    t2.lookup(q2)
    q2.flow.pkts_toserver += 1                        # one more query only: still one way
    t2.touch(q2.flow, 1.0)
    assert q2.flow.state == "new" and not q2.flow.established


def test_touch_never_establishes_tcp():
    t = FlowTable()
    s = tcp("S")
    t.lookup(s)
    s.flow.pkts_toclient += 1
    t.touch(s.flow, 1.0)
    assert s.flow.state == "syn_sent"


# ------------------------------------------------------------------ ICMP errors
def unreachable(quoted, frm=S4, to=C4):
    return pkt(IP(src=frm, dst=to) / ICMP(type=3, code=3) / bytes(quoted))


@pytest.mark.parametrize("quote_from_server", [False, True], ids=["quotes-client-packet", "quotes-server-packet"])
def test_an_unreachable_joins_the_quoted_flow_from_either_side(quote_from_server):
    t = FlowTable()
    q = udp(sp=5000, dp=53)
    t.lookup(q)
    quoted = (IP(src=S4, dst=C4) / UDP(sport=53, dport=5000) if quote_from_server
              else IP(src=C4, dst=S4) / UDP(sport=5000, dport=53))
    err = unreachable(quoted, frm=C4 if quote_from_server else S4, to=S4 if quote_from_server else C4)
    assert t.lookup(err) is q.flow
    assert err.to_server is quote_from_server         # sent by the client when it quotes the server
    assert (q.flow.pkts_toserver, q.flow.pkts_toclient) == (1, 0)      # not counted


@pytest.mark.parametrize("quote_sport,quote_dport", [(5000, 6000), (6000, 5000)], ids=["lower-port", "higher-port"])
def test_an_unreachable_joins_a_flow_between_two_ports_of_one_address(quote_sport, quote_dport):
    t = FlowTable()
    q = udp(a=C4, b=C4, sp=5000, dp=6000)
    t.lookup(q)
    err = unreachable(IP(src=C4, dst=C4) / UDP(sport=quote_sport, dport=quote_dport), frm=C4, to=C4)
    assert t.lookup(err) is q.flow


@pytest.mark.parametrize("quote", [
    lambda: bytes(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53))[:19],            # shorter than an IPv4 header
    lambda: bytes(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53))[:27],            # UDP header cut
    lambda: bytes(IP(src=C4, dst=S4) / TCP(sport=40000, dport=80))[:39],           # TCP header cut
    lambda: bytes(IP(src=C4, dst=S4, proto=89) / (b"\0" * 20)),                    # not TCP or UDP
    lambda: b"\x65" + bytes(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53))[1:],   # not IPv4
], ids=["short-ip", "short-udp", "short-tcp", "other-proto", "not-ipv4"])
def test_an_unreachable_with_a_short_or_foreign_quote_joins_nothing(quote):
    t = FlowTable()
    t.lookup(udp(sp=5000, dp=53))
    t.lookup(tcp("S"))
    err = pkt(IP(src=S4, dst=C4) / ICMP(type=3, code=3) / quote())
    assert t.lookup(err) is None and len(t) == 2


# ------------------------------------------------------------------ counters and keys
def test_counters_count_every_event():
    t = FlowTable(stream=StreamSettings(midstream=True))
    for sp in (1, 2, 3):
        t.lookup(tcp("A", sp=sp))                     # three midstream pickups
    assert t.stats()["flow.created"] == 3 and t.stats()["flow.midstream_pickups"] == 3
    t2 = FlowTable()
    for i in range(2):                                 # the same ports reused twice
        t2.lookup(tcp("S", ts=4.0 * i))
        t2.lookup(tcp("RA", a=S4, b=C4, sp=80, dp=40000, ts=4.0 * i + 1))
    again = tcp("S", ts=9.0)
    t2.lookup(again)
    assert t2.stats()["flow.tcp_reuse"] == 2 and t2.stats()["flow.created"] == 3
    f = again.flow                                     # the new flow has both ends
    assert (f.cli_port, f.srv_port, f.state) == (40000, 80, "syn_sent") and f.srv == again.dst and f.cli == again.src


def test_an_icmp_type_without_counterpart_is_keyed_on_255():
    from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
    t = FlowTable()
    p = pkt(IP(src=C4, dst=S4) / ICMP(type=42))
    t.lookup(p)
    assert (p.flow.cli_port, p.flow.srv_port) == (42, 255)
    p6 = pkt(IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6DestUnreach())
    t.lookup(p6)
    assert (p6.flow.cli_port, p6.flow.srv_port) == (1, 255)


def test_protocols_without_ports_have_port_zero():
    t = FlowTable()
    p = pkt(IP(src=C4, dst=S4, proto=89) / (b"\0" * 8))
    back = pkt(IP(src=S4, dst=C4, proto=89) / (b"\0" * 8))
    t.lookup(p)
    t.lookup(back)
    assert (p.flow.cli_port, p.flow.srv_port) == (0, 0) and back.flow is p.flow


def test_a_midstream_pickup_on_the_second_packet_is_established_from_the_third():
    """The first packet (no flags) starts no session; the server's ACK is picked up."""
    t = FlowTable(stream=StreamSettings(midstream=True))
    got = []
    for p in (tcp(""), tcp("A", a=S4, b=C4, sp=80, dp=40000), tcp("A")):
        t.lookup(p)
        got.append((p.flow.state, p.flow.established))
    assert got == [("new", False), ("established", False), ("established", True)]


def test_a_partial_flow_timeouts_keeps_suricatas_defaults_for_the_rest():
    mine = FlowTimeouts(1, 2, 3, 4, 5, 6)
    t = FlowTable(FlowSettings(timeouts={"udp": mine}))
    flows = {}
    for name, p in (("udp", udp()), ("tcp", tcp("S")), ("icmp", pkt(IP(src=C4, dst=S4) / ICMP(type=8))),
                    ("default", pkt(IP(src=C4, dst=S4, proto=89) / (b"\0" * 8)))):
        t.lookup(p)
        flows[name] = p.flow.timeouts
    assert flows == {"udp": mine, "tcp": DEFAULT_TIMEOUTS["tcp"], "icmp": DEFAULT_TIMEOUTS["icmp"],
                     "default": DEFAULT_TIMEOUTS["default"]}


def test_the_floor_takes_every_protocols_timeouts():
    """A UDP flow past its short timeout behind a young TCP flow: the floor must be the
    shortest timeout of any protocol, not of the last one looked at."""
    quick = FlowTimeouts(2, 2, 2, 2, 2, 2, 2, 2)
    slow = FlowTimeouts(50, 50, 50, 50, 50, 50, 50, 50)
    t = FlowTable(FlowSettings(timeouts={"tcp": slow, "udp": quick, "icmp": slow, "default": slow}))
    t.lookup(tcp("S", ts=0.0))
    t.lookup(udp(ts=1.0))
    assert [f.proto for f in t.expire(5.0)] == [17]
