"""Flow decisions (rules.api.Bypass): when the engine says a flow needs no more inspection,
on which frames it says so, and how frames handled without it keep the flow exact."""
from __future__ import annotations

import dataclasses

import pytest
from scapy.all import GRE, ICMP, IP, TCP, UDP, Ether, IPv6

from rules.api import FrameMeta, Verdict
from rules.engine import Engine
from rules.events import Alert
from rules.parser import parse_rule
from rules.settings import EngineSettings, StreamSettings

C, S = "198.51.100.1", "203.0.113.2"
C6, S6 = "2001:db8::1", "2001:db8::2"


def eng(*texts, mode="ips", **stream):
    st = StreamSettings(**stream) if stream else StreamSettings()
    return Engine([parse_rule(t) for t in texts], EngineSettings(mode=mode, stream=st))


def fr(l4, src=C, dst=S):
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4)


class Feed:
    """Frames into the engine.  Results show flow decisions only: a Bypass "scan" offer (an
    undecided UDP flow whose datagrams only a fast pattern can make match) is taken off
    unless `scans` (tested on its own below)."""

    def __init__(self, engine, scans=False):
        self.e = engine
        self.n = 0
        self.scans = scans

    def __call__(self, frame, ts=None):
        self.n += 1
        r = self.e.inspect(frame, FrameMeta(ts=1000.0 + self.n if ts is None else ts, iface="", pcap_cnt=self.n))
        if not self.scans and r.bypass is not None and r.bypass.action == "scan":
            r = dataclasses.replace(r, bypass=None)
        return r


class Tcp:
    """One TCP session, client C:sport -> server S:dport."""

    def __init__(self, feed, sport=40000, dport=80, src=C, dst=S):
        self.f, self.sport, self.dport, self.src, self.dst = feed, sport, dport, src, dst
        self.cseq, self.sseq = 101, 501

    def c(self, data=b"", flags="PA"):
        r = self.f(fr(TCP(sport=self.sport, dport=self.dport, flags=flags, seq=self.cseq, ack=self.sseq) / data,
                      self.src, self.dst))
        self.cseq += len(data)
        return r

    def s(self, data=b"", flags="PA"):
        r = self.f(fr(TCP(sport=self.dport, dport=self.sport, flags=flags, seq=self.sseq, ack=self.cseq) / data,
                      self.dst, self.src))
        self.sseq += len(data)
        return r

    def handshake(self):
        a = self.f(fr(TCP(sport=self.sport, dport=self.dport, flags="S", seq=100), self.src, self.dst))
        b = self.f(fr(TCP(sport=self.dport, dport=self.sport, flags="SA", seq=500, ack=101), self.dst, self.src))
        c = self.c(flags="A")
        return a, b, c


def sids(r):
    return sorted(e.sid for e in r.events if isinstance(e, Alert))


def udp(feed, data=b"x", sport=5000, dport=7000, back=False, ts=None):
    if back:
        return feed(fr(UDP(sport=dport, dport=sport) / data, S, C), ts)
    return feed(fr(UDP(sport=sport, dport=dport) / data), ts)


# ------------------------------------------------------------------ verdict decisions
def test_stream_drop_decides_the_flow_drop_on_established_frames():
    f = Feed(eng('drop tcp any any -> any 80 (content:"EVIL"; sid:1;)'))
    t = Tcp(f)
    t.handshake()
    assert t.c(b"hello").bypass is None
    r = t.c(b"..EVIL..")
    assert r.verdict == Verdict.DROP and sids(r) == [1]
    assert (r.bypass.action, r.bypass.reason, r.bypass.to_server) == ("drop", "drop", True)
    r = t.s(b"reply")
    assert r.verdict == Verdict.DROP and r.reason == "flow"
    assert (r.bypass.action, r.bypass.to_server) == ("drop", False)
    assert f.e.stats()["flow.decided.drop"] == 1


def test_udp_packet_drop_decides_nothing():
    f = Feed(eng('drop udp any any -> any 7000 (content:"X"; sid:1;)'))
    r = udp(f, b"X")
    assert r.verdict == Verdict.DROP and r.bypass is None
    assert udp(f, b"y").bypass is None


def test_ip_only_pass_decides_the_flow_pass():
    f = Feed(eng(f"pass ip {C} any -> any any (sid:1;)", 'alert udp any any -> any any (content:"x"; sid:2;)'))
    r = udp(f, b"x")
    assert sids(r) == [] and (r.bypass.action, r.bypass.reason) == ("pass", "pass")
    assert udp(f, b"x", back=True).bypass.to_server is False


def test_bypass_keyword_alerts_then_decides():
    f = Feed(eng('alert tcp any any -> any 80 (content:"BIG"; bypass; sid:1;)',
                 'alert tcp any any -> any 80 (content:"later"; sid:2;)'))
    t = Tcp(f)
    t.handshake()
    r = t.c(b"..BIG..")
    assert sids(r) == [1] and (r.bypass.action, r.bypass.reason) == ("pass", "bypass")
    r = t.c(b"later")
    assert sids(r) == [] and r.bypass is not None
    assert f.e.stats()["flow.decided.bypass"] == 1


def test_bypass_keyword_loses_to_a_drop_on_the_same_packet():
    f = Feed(eng('alert tcp any any -> any 80 (content:"BIG"; bypass; sid:1;)',
                 'drop tcp any any -> any 80 (content:"BIG"; sid:2;)'))
    t = Tcp(f)
    t.handshake()
    r = t.c(b"BIG")
    assert r.verdict == Verdict.DROP and r.bypass.action == "drop"


# ------------------------------------------------------------------ stream.bypass
def test_stream_bypass_after_the_packet_reaching_the_depth():
    rules = ('alert tcp any any -> any 80 (content:"EVIL"; sid:1;)', 'alert tcp any any -> any 80 (flags:A+; sid:2;)')
    f = Feed(eng(*rules, bypass=True, depth=100))
    t = Tcp(f)
    t.handshake()
    assert t.c(b"." * 60).bypass is None
    r = t.c(b"." * 36 + b"EVIL" + b"." * 10)       # crosses the depth: still inspected
    assert sids(r) == [1, 2] and r.bypass.reason == "stream-depth"
    r = t.s(flags="A")
    assert sids(r) == [] and r.bypass.action == "pass" and r.bypass.to_server is False


def test_without_stream_bypass_the_depth_decides_nothing():
    f = Feed(eng('alert tcp any any -> any 80 (content:"EVIL"; sid:1;)', depth=100))
    t = Tcp(f)
    t.handshake()
    t.c(b"." * 150)
    r = t.c(b"..EVIL..")
    assert sids(r) == [1] and r.bypass is None


# ------------------------------------------------------------------ nothing can match
def test_flow_no_rule_applies_to_is_decided_on_its_first_packet():
    f = Feed(eng('alert udp any any -> any 53 (content:"x"; sid:1;)', 'alert tcp any any -> any 80 (sid:2;)'))
    r = udp(f)
    assert (r.bypass.action, r.bypass.reason) == ("pass", "no-rules")
    assert f.e.stats()["flow.decided.no-rules"] == 1


def test_ip_only_rule_of_the_unseen_direction_waits_for_it():
    f = Feed(eng(f"alert ip {S} any -> any any (sid:1;)"))
    assert udp(f).bypass is None                  # the reply could still match sid 1
    r = udp(f, back=True)
    assert sids(r) == [1] and r.bypass.reason == "no-rules"


@pytest.mark.parametrize("rule", [
    "alert udp any any -> any 7000 (dsize:>100; sid:1;)",
    'alert udp any any -> any any (content:"never"; sid:1;)',
    'alert udp any any -> any 7000 (content:"x"; threshold:type limit, track by_src, count 1, seconds 60; sid:1;)',
    "alert udp any 7000 -> any any (sid:1;)",           # only the reply direction
    "alert tcp-pkt any any -> any any (sid:1;)",
], ids=["header-keyword", "pattern", "threshold", "reverse-direction", "other-proto-only"])
def test_a_rule_that_could_match_a_later_packet_keeps_the_flow_undecided(rule):
    f = Feed(eng(rule))
    r = udp(f, b"y")
    if "tcp-pkt" in rule:
        assert r.bypass is not None               # a TCP rule says nothing about UDP flows
    else:
        assert r.bypass is None and udp(f, b"y").bypass is None


def test_tcp_decided_at_syn_is_offered_once_established():
    f = Feed(eng("alert udp any any -> any any (sid:1;)"))
    t = Tcp(f)
    a, b, c = t.handshake()
    assert a.bypass is None and b.bypass is None   # handshake: not established yet
    assert c.bypass is not None and c.bypass.reason == "no-rules"
    assert t.c(b"data").bypass is not None
    assert t.c(flags="FA").bypass is None          # closing: FIN and later come to the engine
    assert t.s(flags="A").bypass is None


# ------------------------------------------------------------------ where it is never offered
def test_not_offered_for_tunnelled_or_fragmented_frames():
    e = eng("alert tcp any any -> any 80 (sid:1;)")
    f = Feed(e)
    inner = IP(src="198.51.100.9", dst="203.0.113.9") / UDP(sport=1, dport=2) / b"x"
    assert f(fr(GRE() / inner)).bypass is None
    big = IP(src=C, dst=S, id=7) / UDP(sport=1, dport=9) / (b"y" * 100)
    frames = [bytes(Ether() / p) for p in __import__("scapy.all", fromlist=["fragment"]).fragment(big, 40)]
    assert all(f(x).bypass is None for x in frames)
    assert f(fr(UDP(sport=1, dport=9) / b"z")).bypass is not None   # same flow as the datagram, whole


# ------------------------------------------------------------------ ICMP echo flows
def test_icmp_echo_flow_no_rule_applies_to_is_decided_and_offered_both_ways():
    f = Feed(eng("alert tcp any any -> any 80 (sid:1;)", 'alert udp any any -> any any (content:"x"; sid:2;)'))
    r = f(fr(ICMP(type=8, id=7) / b"ping"))
    assert (r.bypass.action, r.bypass.reason, r.bypass.to_server) == ("pass", "no-rules", True)
    r = f(fr(ICMP(type=0, id=7) / b"ping", S, C))
    assert r.bypass is not None and (r.bypass.to_server, r.bypass.flow.proto) == (False, 1)
    assert f.e.stats()["flow.decided.no-rules"] == 1


@pytest.mark.parametrize("rules", [
    ('alert http any any -> any any (http.uri; content:"/admin"; sid:1;)',
     'alert dns any any -> any any (dns.query; content:"evil"; sid:2;)'),
    ('alert http any any -> any any (http.uri; content:"/admin"; sid:1;)',
     'alert udp any any -> any any (content:"x"; sid:2;)'),
], ids=["app-rules-only", "app-and-udp-rules"])
def test_app_layer_rules_do_not_keep_an_echo_flow_undecided(rules):
    """Transactions come only from TCP and UDP parsers: `alert http any any -> any any` can
    never match a ping, so it does not keep the echo flow in the frame path."""
    f = Feed(eng(*rules))
    r = f(fr(ICMP(type=8, id=7) / b"ping"))
    assert (r.bypass.action, r.bypass.reason) == ("pass", "no-rules")


def test_an_http_rule_does_not_keep_a_udp_flow_out_of_the_scan_offer():
    """An HTTP rule (TCP only) cannot match a UDP flow, whatever its app layer: the first,
    empty datagram (nothing probed yet) already gets the offer of the UDP rule's pattern."""
    e = eng('alert http any any -> any any (http.uri; content:"/admin"; sid:1;)',
            'alert dns any any -> any 53 (dns.query; content:"evil"; sid:3;)',
            'alert udp any any -> any any (content:"EVIL"; sid:2;)')
    b = scan_offer(e, b"")
    assert b is not None and b.action == "scan" and not b.scan(b"clean") and b.scan(b"EVIL")
    assert scan_offer(e, b"", dport=53) is None        # the DNS rule could match there


@pytest.mark.parametrize("rule", [
    "alert icmp any any -> any any (itype:0; sid:1;)",
    "alert ip any any -> any any (ttl:3; sid:1;)",
    "alert icmp any any -> any any (icmp_seq:9; sid:1;)",
], ids=["itype", "ip-header-keyword", "icmp-seq"])
def test_a_rule_that_could_match_a_later_icmp_packet_keeps_the_echo_flow_undecided(rule):
    f = Feed(eng(rule))
    assert f(fr(ICMP(type=8, id=7, seq=1))).bypass is None
    assert f(fr(ICMP(type=0, id=7, seq=1), S, C)).bypass is None
    assert f(fr(ICMP(type=8, id=7, seq=2))).bypass is None


def test_icmp_ip_only_rule_of_the_unseen_direction_waits_for_the_reply():
    f = Feed(eng(f"alert ip {S} any -> any any (sid:1;)"))
    assert f(fr(ICMP(type=8))).bypass is None         # the reply could still match sid 1
    r = f(fr(ICMP(type=0), S, C))
    assert sids(r) == [1] and r.bypass.reason == "no-rules"


def test_icmp_ip_only_pass_is_offered_and_a_packet_drop_decides_nothing():
    f = Feed(eng("pass icmp any any -> any any (sid:1;)", "drop icmp any any -> any any (sid:2;)"))
    r = f(fr(ICMP(type=8)))
    assert r.verdict == Verdict.FORWARD and (r.bypass.action, r.bypass.reason) == ("pass", "pass")
    f = Feed(eng("drop icmp any any -> any any (itype:8; sid:1;)"))
    assert [(r.verdict, r.bypass) for r in (f(fr(ICMP(type=8))), f(fr(ICMP(type=8))))] == [(Verdict.DROP, None)] * 2


def test_icmp_error_joined_to_a_decided_udp_flow_is_not_offered():
    f = Feed(eng("alert tcp any any -> any 80 (sid:1;)"))
    assert f(fr(UDP(sport=5000, dport=7000) / b"x")).bypass is not None
    quoted = IP(src=C, dst=S) / UDP(sport=5000, dport=7000) / b"x"
    r = f(fr(ICMP(type=3, code=3) / bytes(quoted)[:28], S, C))
    assert r.bypass is None                           # the UDP flow's key is not this frame's


def test_ipv6_udp_flow_is_offered():
    f = Feed(eng("alert tcp any any -> any any (sid:1;)"))
    r = f(fr(UDP(sport=1, dport=2) / b"x", C6, S6))
    assert r.bypass is not None and r.bypass.to_server is True


# ------------------------------------------------------------------ frames the data plane handled
def test_bypassed_counts_and_keeps_the_flow_alive_until_it_ends():
    e = eng("alert tcp any any -> any 80 (sid:1;)")
    f = Feed(e)
    r = udp(f, ts=100.0)
    flow = r.bypass.flow
    assert e.bypassed(flow, 250.0, 3, 300, 2, 200)
    assert (flow.pkts_toserver, flow.bytes_toserver, flow.pkts_toclient, flow.bytes_toclient) == (4, 343, 2, 200)
    assert flow.last_ts == 250.0 and e.stats()["bypass.frames"] == 5
    assert flow.state == "established"            # the replies went by only in the fast path
    e.tick(250.0 + 299)                           # established UDP: 300 s, not the new state's 30
    assert not flow.ended
    e.tick(250.0 + 301)
    assert flow.ended and not e.bypassed(flow, 600.0, 1, 10, 0, 0)


def test_one_way_udp_keeps_the_new_state_timeout():
    e = eng("alert tcp any any -> any 80 (sid:1;)")
    flow = udp(Feed(e), ts=100.0).bypass.flow
    e.bypassed(flow, 200.0, 5, 215, 0, 0)
    assert flow.state == "new"
    e.tick(200.0 + 31)
    assert flow.ended


def test_udp_on_the_vxlan_port_is_decided_but_never_offered():
    f = Feed(eng("alert tcp any any -> any 80 (sid:1;)"))
    r = udp(f, b"not vxlan", dport=4789)
    assert r.bypass is None and r.verdict == Verdict.FORWARD
    assert f.e.stats()["flow.decided.no-rules"] == 1
    assert udp(f, b"not vxlan", sport=4789, dport=5000, back=True).bypass is None


def test_bypassed_flow_times_out_on_the_bypassed_timeout():
    e = eng('alert tcp any any -> any 80 (content:"x"; bypass; sid:1;)')
    f = Feed(e)
    t = Tcp(f)
    t.handshake()
    r = t.c(b"x")
    flow = r.bypass.flow
    e.tick(f.n + 1000.0 + 99)                     # bypassed: 100 s (established would be 600)
    assert not flow.ended
    e.tick(f.n + 1000.0 + 101)
    assert flow.ended


def test_a_touched_flow_is_not_expired_with_the_idle_ones():
    e = eng("alert tcp any any -> any 80 (sid:1;)")
    f = Feed(e)
    keep = udp(f, ts=10.0, sport=1).bypass.flow
    gone = udp(f, ts=11.0, sport=2).bypass.flow
    e.bypassed(keep, 35.0, 1, 10, 0, 0)
    e.tick(42.0)                                  # new-state timeout 30 s
    assert gone.ended and not keep.ended


# ------------------------------------------------------------------ prefiltered UDP directions ("scan")
def scan_offer(e, data=b"clean", **kw):
    return udp(Feed(e, scans=True), data, **kw).bypass


def test_udp_flow_whose_rules_all_need_a_fast_pattern_gets_a_scan_offer():
    e = eng('drop udp any any -> any 7000 (content:"EVIL"; sid:1;)',
            'alert udp any any -> any any (content:"attack"; nocase; sid:2;)')
    b = scan_offer(e)
    assert (b.action, b.reason, b.to_server) == ("scan", "prefilter", True)
    assert b.scan(b"..EVIL..") and b.scan(b"an ATTACK") and not b.scan(b"clean data")
    assert not b.flow.decided                          # an offer, not a decision


@pytest.mark.parametrize("rule", [
    "alert udp any any -> any any (dsize:>100; sid:3;)",                      # no pattern: every datagram
    'alert udp any any -> any any (content:!"EVIL"; sid:5;)',                 # matches when the pattern is absent
    'alert udp any any -> any any (pcre:"/ev[i1]l/"; sid:6;)',
    "alert udp any any -> any any (byte_test:1,>,0,0; sid:7;)",
])
def test_a_rule_that_can_match_without_a_fast_pattern_keeps_every_datagram_in_the_engine(rule):
    e = eng('drop udp any any -> any any (content:"EVIL"; sid:1;)', rule)
    f = Feed(e, scans=True)
    assert udp(f).bypass is None and udp(f, b"again").bypass is None


@pytest.mark.parametrize("n", [1, 3, 8])       # a few: `in` tests; many: the short database
def test_short_fast_patterns_are_scanned_too(n):
    shorts = [f'alert udp any any -> any any (content:"{c}"; nocase; sid:{10 + i};)' for i, c in
              enumerate("QRSTUVWXYZ"[:n])]
    e = eng('drop udp any any -> any any (content:"EVIL"; sid:1;)', *shorts,
            'alert udp any any -> any any (content:"|00 01|"; sid:30;)')
    b = scan_offer(e)
    assert b.action == "scan"
    assert b.scan(b"EVIL") and b.scan(b"..q..") and b.scan(b"\x00\x01") and not b.scan(b"\x00\x02abc")
    assert not b.scan(b"abcdefg") and bool(b.scan(b"z")) == (n >= 10)
    assert bool(b.scan(b"r")) == (n >= 2)


def test_scan_offer_per_direction_and_none_when_no_pattern_rule_applies():
    e = eng('drop udp any any -> any 7000 (content:"EVIL"; sid:1;)',
            f"alert ip {S} any -> any any (sid:9;)")       # IP-only: the reply's first packet only
    f = Feed(e, scans=True)
    b = udp(f).bypass
    assert b.action == "scan" and b.scan is not None
    r = udp(f, back=True)                                   # first of its direction: sid 9 runs
    assert sids(r) == [9] and r.bypass.action == "scan" and r.bypass.to_server is False
    assert r.bypass.scan is None                            # nothing can match the replies any more


def test_a_datagram_drop_keeps_the_scan_and_a_flow_decision_replaces_it():
    e = eng('drop udp any any -> any any (content:"EVIL"; sid:1;)',
            'drop udp any any -> any 7001 (sid:2;)')     # IP-only: drops the flow
    f = Feed(e, scans=True)
    assert udp(f).bypass.action == "scan"
    r = udp(f, b"EVIL")                                  # a datagram drop: the flow goes on
    assert r.verdict == Verdict.DROP and r.bypass.action == "scan"
    assert udp(f, b"clean").bypass.action == "scan"
    r = udp(f, b"clean", dport=7001)
    assert r.verdict == Verdict.DROP and r.bypass.action == "drop"


def test_prefiltered_datagrams_counted_through_bypassed():
    e = eng('drop udp any any -> any any (content:"EVIL"; sid:1;)')
    f = Feed(e, scans=True)
    b = udp(f, ts=10.0).bypass
    assert e.bypassed(b.flow, 12.0, 5, 300, 0, 0)
    st = e.stats()
    assert st["bypass.prefiltered"] == 5 and st["bypass.frames"] == 0
    assert b.flow.pkts_toserver == 6 and b.flow.last_ts == 12.0


def test_no_scan_offer_on_vxlan_ports_or_for_fragments():
    e = eng('drop udp any any -> any any (content:"EVIL"; sid:1;)')
    assert scan_offer(e, sport=5000, dport=4789) is None
    frag = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src=C, dst=S, flags="MF", frag=0, proto=17) / (b"\x13\x88\x1b\x58\x00\x20\x00\x00" + b"x" * 16))
    assert Feed(e, scans=True)(frag).bypass is None


def test_a_udp_direction_waiting_for_a_parser_gets_a_scan_offer_that_ends_with_one():
    """Transaction rules apply to a UDP flow only once it has a parser.  A direction that
    refused every protocol cannot start one, so its offer stands on the packet rules'
    fast patterns -- until the other direction's first datagram is DNS: the old offer's scan
    then hands every datagram over, the engine offers no more, and the queries match."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    e = eng('alert dns any any -> any any (dns.query; content:"evil.example"; nocase; sid:1;)',
            'alert udp any any -> any any (content:"MARKER"; sid:2;)')
    f = Feed(e, scans=True)
    b = udp(f, b"not dns", dport=53).bypass
    assert b is not None and b.action == "scan"
    assert not b.scan(b"junk") and b.scan(b"a MARKER")
    assert udp(f, b"more junk", dport=53).bypass is b          # the same offer while nothing changes
    answer = bytes(DNS(id=1, qr=1, qd=DNSQR(qname="good.example"), an=DNSRR(rrname="good.example",
                                                                           rdata="203.0.113.9")))
    udp(f, answer, dport=53, back=True)                        # the server speaks DNS: a parser
    assert b.scan(b"junk")                                     # the old offer hands everything over
    r = udp(f, bytes(DNS(id=2, rd=1, qd=DNSQR(qname="evil.example"))), dport=53)
    assert sids(r) == [1] and r.bypass is None


def test_a_udp_direction_another_flow_never_answers_keeps_its_scan():
    e = eng('alert dns any any -> any any (dns.query; content:"evil.example"; nocase; sid:1;)',
            'alert udp any any -> any any (content:"MARKER"; sid:2;)')
    f = Feed(e, scans=True)
    b = udp(f, b"not dns", dport=53).bypass
    for i in range(5):
        assert not b.scan(b"junk %d" % i)
        assert udp(f, b"junk %d" % i, dport=53).bypass is b
    assert sids(udp(f, b"MARKER", dport=53)) == [2]
