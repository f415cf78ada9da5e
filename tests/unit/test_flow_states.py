"""TCP state transitions one packet at a time, and which `flow-timeouts` value applies
in each state (rules.flow).

Suricata 7 maps its TCP states onto three flow states, and the flow state picks the
timeout: SYN_SENT and SYN_RECV are FLOW_STATE_NEW (`new`), ESTABLISHED and the
half-closed states FIN_WAIT / CLOSE_WAIT are FLOW_STATE_ESTABLISHED (`established`),
both FINs seen or an RST are FLOW_STATE_CLOSED (`closed`); in emergency mode the
`emergency-*` value of the same state, and a bypassed flow `bypassed`.  ipsbridge's
`closing` is the half-closed state, so a closing flow lives as long as an established
one.  The defaults give `new` and `closed` the same 60 s, so the timeouts here are
all different numbers: a state that took another state's value would show."""
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

# one distinct number per (protocol, state): new, established, closed, emergency-new,
# emergency-established, emergency-closed, bypassed, emergency-bypassed
TCP_T = FlowTimeouts(101, 102, 103, 104, 105, 106, 107, 108)
UDP_T = FlowTimeouts(201, 202, 203, 204, 205, 206, 207, 208)
ICMP_T = FlowTimeouts(301, 302, 303, 304, 305, 306, 307, 308)
OTHER_T = FlowTimeouts(401, 402, 403, 404, 405, 406, 407, 408)
DISTINCT = {"tcp": TCP_T, "udp": UDP_T, "icmp": ICMP_T, "default": OTHER_T}


def pkt(layers, ts=0.0):
    return decode(bytes(ETH / layers), FrameMeta(ts=ts, iface="eth0"), OPTS)[0]


def c2s(flags, ts=0.0):
    return pkt(IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags=flags), ts)


def s2c(flags, ts=0.0):
    return pkt(IP(src=S4, dst=C4) / TCP(sport=80, dport=40000, flags=flags), ts)


def table(**stream) -> FlowTable:
    return FlowTable(FlowSettings(timeouts=dict(DISTINCT)), StreamSettings(**stream))


def states(t: FlowTable, seq: str) -> list[str]:
    """`seq`: packets as 'c:S s:SA c:A ...' (c client to server, s server to client)."""
    out = []
    for i, tok in enumerate(seq.split()):
        side, flags = tok.split(":")
        p = (c2s if side == "c" else s2c)(flags, float(i))
        t.lookup(p)
        out.append(p.flow.state)
    return out


# ---------------------------------------------------------------- transitions

HS = "c:S s:SA c:A"
TRANSITIONS = {
    "syn": ("c:S", ["syn_sent"]),
    "syn-ack-from-the-server": ("c:S s:SA", ["syn_sent", "syn_recv"]),
    "syn-ack-from-the-client-side": ("c:S c:SA", ["syn_sent", "syn_sent"]),
    "ack-in-syn-sent-without-async-oneside": ("c:S c:A", ["syn_sent", "syn_sent"]),
    "server-ack-in-syn-recv": ("c:S s:SA s:A", ["syn_sent", "syn_recv", "syn_recv"]),
    "client-ack-completes": (HS, ["syn_sent", "syn_recv", "established"]),
    "syn-ack-again-in-syn-recv": ("c:S s:SA s:SA", ["syn_sent", "syn_recv", "syn_recv"]),
    "syn-ack-from-the-client-in-syn-recv": ("c:S s:SA c:SA", ["syn_sent", "syn_recv", "syn_recv"]),
    "fin-from-the-client": (HS + " c:FA", ["syn_sent", "syn_recv", "established", "closing"]),
    "fin-from-the-server": (HS + " s:FA", ["syn_sent", "syn_recv", "established", "closing"]),
    "fins-both-ways-client-first": (HS + " c:FA s:FA", ["syn_sent", "syn_recv", "established", "closing", "closed"]),
    "fins-both-ways-server-first": (HS + " s:FA c:FA", ["syn_sent", "syn_recv", "established", "closing", "closed"]),
    "two-fins-from-one-side": (HS + " c:FA c:FA", ["syn_sent", "syn_recv", "established", "closing", "closing"]),
    "ack-after-one-fin": (HS + " c:FA s:A", ["syn_sent", "syn_recv", "established", "closing", "closing"]),
    "rst-in-syn-sent": ("c:S s:RA", ["syn_sent", "closed"]),
    "rst-in-established": (HS + " c:R", ["syn_sent", "syn_recv", "established", "closed"]),
    "rst-in-closing": (HS + " s:FA c:R", ["syn_sent", "syn_recv", "established", "closing", "closed"]),
    "fin-on-the-handshake-ack": ("c:S s:SA c:FA", ["syn_sent", "syn_recv", "closing"]),
    "rst-first-no-session": ("c:R c:S", ["new", "syn_sent"]),
    "syn-rst-first-no-session": ("c:SR", ["new"]),
    "data-in-established": (HS + " c:PA s:PA", ["syn_sent", "syn_recv", "established", "established", "established"]),
}


@pytest.mark.parametrize("seq,want", list(TRANSITIONS.values()), ids=list(TRANSITIONS))
def test_tcp_transitions(seq, want):
    assert states(table(), seq) == want


def test_fin_flags_record_which_side_closed():
    t = table()
    states(t, HS + " s:FA")
    (f,) = t.all()
    assert (f.fin_toserver, f.fin_toclient) == (False, True)
    t = table()
    states(t, HS + " c:FA")
    (f,) = t.all()
    assert (f.fin_toserver, f.fin_toclient) == (True, False)


def test_a_fin_on_the_handshake_ack_is_established_from_the_next_packet():
    t = table()
    states(t, "c:S s:SA c:FA")
    (f,) = t.all()
    assert f.fin_toserver and not f.fin_toclient and f.est_after == 3
    assert not f.established                       # the packet completing it is not established
    t.lookup(s2c("A", 3.0))
    assert f.established


@pytest.mark.parametrize("first,state,fin", [
    ("c:A", "established", (False, False)),
    ("c:FA", "closing", (True, False)),
    ("s:FA", "closing", (True, False)),            # its sender is taken as the client
    ("c:SA", "syn_recv", (False, False)),
    ("c:RA", "new", (False, False)),               # an RST is never picked up
], ids=["ack", "fin-from-client", "fin-from-server", "syn-ack", "rst"])
def test_midstream_pickup_states(first, state, fin):
    t = table(midstream=True)
    assert states(t, first) == [state]
    (f,) = t.all()
    assert (f.fin_toserver, f.fin_toclient) == fin
    assert f.midstream == (state != "new") and f.tcp_session == (state != "new")
    assert t.stats()["flow.midstream_pickups"] == (0 if state == "new" else 1)


def test_async_oneside_completes_only_on_the_clients_ack():
    assert states(table(async_oneside=True), "c:S s:A") == ["syn_sent", "syn_sent"]
    assert states(table(async_oneside=True), "c:S c:SA") == ["syn_sent", "syn_sent"]
    assert states(table(async_oneside=True), "c:S c:A") == ["syn_sent", "established"]
    assert states(table(async_oneside=True), "s:SA c:A") == ["syn_recv", "established"]


# ---------------------------------------------------------------- which timeout applies

STATE_TIMEOUT = {   # state reached -> (normal, emergency) timeout of TCP_T
    "syn_sent": ("c:S", TCP_T.new, TCP_T.emergency_new),
    "syn_recv": ("c:S s:SA", TCP_T.new, TCP_T.emergency_new),
    "established": (HS, TCP_T.established, TCP_T.emergency_established),
    "closing": (HS + " c:FA", TCP_T.established, TCP_T.emergency_established),
    "closing-server-fin": (HS + " s:FA", TCP_T.established, TCP_T.emergency_established),
    "closed-by-fins": (HS + " c:FA s:FA", TCP_T.closed, TCP_T.emergency_closed),
    "closed-by-rst": ("c:S s:RA", TCP_T.closed, TCP_T.emergency_closed),
    "no-session": ("c:PA s:A", TCP_T.new, TCP_T.emergency_new),
}


@pytest.mark.parametrize("seq,normal,emergency", list(STATE_TIMEOUT.values()), ids=list(STATE_TIMEOUT))
def test_timeout_of_each_tcp_state(seq, normal, emergency):
    t = table()
    states(t, seq)
    (f,) = t.all()
    assert t.timeout_of(f) == normal
    t.emergency = True
    assert t.timeout_of(f) == emergency


@pytest.mark.parametrize("seq", [HS + " c:FA", HS + " s:FA", HS + " c:FA s:FA", "c:S s:RA", "c:S s:SA", HS])
def test_expiry_is_exactly_at_the_states_timeout(seq):
    """Idle for the timeout: kept; a moment longer: gone (whatever the state)."""
    t = table()
    n = len(seq.split())
    states(t, seq)
    (f,) = t.all()
    limit = t.timeout_of(f)
    last = float(n - 1)
    assert t.expire(last + limit) == []
    assert t.expire(last + limit + 0.001) == [f] and len(t) == 0


def test_a_closing_flow_outlives_new_and_closed_timeouts():
    """FIN_WAIT / CLOSE_WAIT are established flows in Suricata: a half-closed
    connection (one side done, the other still sending) keeps its flow."""
    t = FlowTable()                                  # Suricata's defaults: 60 / 600 / 60
    tcp = DEFAULT_TIMEOUTS["tcp"]
    states(t, HS + " c:FA")
    assert t.expire(3.0 + max(tcp.new, tcp.closed) + 1) == []
    assert t.expire(3.0 + tcp.established) == []
    assert len(t.expire(3.0 + tcp.established + 1)) == 1


@pytest.mark.parametrize("layers,expected", [
    (lambda ts: IP(src=C4, dst=S4) / UDP(sport=5000, dport=53), UDP_T),
    (lambda ts: IP(src=C4, dst=S4) / ICMP(type=8), ICMP_T),
    (lambda ts: IP(src=C4, dst=S4, proto=89) / (b"\x00" * 8), OTHER_T),
    (lambda ts: IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S"), TCP_T),
], ids=["udp", "icmp", "other", "tcp"])
def test_each_protocol_has_its_own_timeouts(layers, expected):
    t = table()
    t.lookup(pkt(layers(0)))
    (f,) = t.all()
    assert f.timeouts is expected
    assert t.timeout_of(f) == expected.new


@pytest.mark.parametrize("reply,normal,emergency", [
    (False, UDP_T.new, UDP_T.emergency_new),
    (True, UDP_T.established, UDP_T.emergency_established),
], ids=["one-way", "both-ways"])
def test_udp_states_and_their_timeouts(reply, normal, emergency):
    t = table()
    t.lookup(pkt(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53)))
    if reply:
        t.lookup(pkt(IP(src=S4, dst=C4) / UDP(sport=53, dport=5000)))
    (f,) = t.all()
    assert f.state == ("established" if reply else "new")
    assert t.timeout_of(f) == normal
    t.emergency = True
    assert t.timeout_of(f) == emergency


@pytest.mark.parametrize("decided,normal,emergency", [
    ("bypass", TCP_T.bypassed, TCP_T.emergency_bypassed),
    ("stream-depth", TCP_T.bypassed, TCP_T.emergency_bypassed),
    ("drop", TCP_T.established, TCP_T.emergency_established),
    ("pass", TCP_T.established, TCP_T.emergency_established),
], ids=["bypass-keyword", "stream-bypass", "drop", "pass"])
def test_only_a_bypassed_flow_takes_the_bypassed_timeout(decided, normal, emergency):
    t = table()
    states(t, HS)
    (f,) = t.all()
    f.decided = decided
    assert t.timeout_of(f) == normal
    t.emergency = True
    assert t.timeout_of(f) == emergency


def test_the_closed_timeout_counts_when_expire_stops_early():
    """expire() stops at the first flow fresher than every timeout (the rest are
    fresher still); a closed TCP flow's shorter timeout must be in that floor, or a
    closed flow behind a younger one is never found."""
    short = FlowTimeouts(new=50, established=50, closed=2, emergency_new=50, emergency_established=50,
                         emergency_closed=1, bypassed=50, emergency_bypassed=50)
    tall = FlowTimeouts(50, 50, 50, 50, 50, 50, 50, 50)
    t = FlowTable(FlowSettings(timeouts={"tcp": short, "udp": tall, "icmp": tall, "default": tall}))
    t.lookup(pkt(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53), ts=0.0))
    t.lookup(c2s("S", 1.0))
    t.lookup(s2c("RA", 1.0))                      # closed at 1.0, behind the UDP flow
    gone = t.expire(5.0)
    assert [f.proto for f in gone] == [6] and len(t) == 1


def test_the_emergency_floor_uses_emergency_timeouts():
    """In emergency mode the floor is the shortest emergency timeout: a UDP flow well
    inside its own must not hide a TCP flow behind it that is past its emergency-new."""
    udp = FlowTimeouts(50, 50, 50, 50, 50, 50, 50, 50)
    tcp = FlowTimeouts(new=50, established=50, closed=50, emergency_new=2, emergency_established=50,
                       emergency_closed=50, bypassed=50, emergency_bypassed=50)
    t = FlowTable(FlowSettings(memcap=2 * FLOW_BYTES, timeouts={"tcp": tcp, "udp": udp, "icmp": udp, "default": udp}))
    t.lookup(pkt(IP(src=C4, dst=S4) / UDP(sport=4999, dport=53), ts=0.0))
    t.lookup(pkt(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53), ts=0.0))
    t.lookup(c2s("S", 1.0))                         # the third flow evicts the first: emergency
    assert t.emergency
    gone = t.expire(5.0)
    assert [(f.proto, f.cli_port) for f in gone] == [(17, 4999), (6, 40000)]
    assert not t.emergency                          # one flow of two left


@pytest.mark.parametrize("left,emergency", [(8, True), (7, False)], ids=["8-of-10-stays", "7-of-10-leaves"])
def test_emergency_ends_at_the_recovery_share(left, emergency):
    """flow.emergency-recovery 30: emergency ends once the table is at 70% of its flows or less."""
    long = FlowTimeouts(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
    quick = FlowTimeouts(1000, 1000, 1000, 1, 1000, 1000, 1000, 1000)    # emergency-new 1 s
    t = FlowTable(FlowSettings(memcap=10 * FLOW_BYTES, emergency_recovery=30,
                               timeouts={"tcp": long, "udp": quick, "icmp": long, "default": long}))
    assert t.max_flows == 10
    for i in range(11 - left):                      # UDP (emergency-new 1 s): the first is evicted, the rest expire
        t.lookup(pkt(IP(src=C4, dst=S4) / UDP(sport=1000 + i, dport=53), ts=0.0))
    for i in range(left - 1):                       # TCP (emergency-new 1000 s): these stay
        t.lookup(pkt(IP(src=C4, dst=S4) / TCP(sport=2000 + i, dport=80, flags="S"), ts=0.0))
    t.lookup(pkt(IP(src=C4, dst=S4) / TCP(sport=3000, dport=80, flags="S"), ts=0.0))   # the 11th: evicts one
    assert t.emergency and len(t) == 10
    t.expire(5.0)
    assert len(t) == left
    assert t.emergency is emergency
