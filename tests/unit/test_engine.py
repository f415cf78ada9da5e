"""Engine verdicts, flow marking, flowbits, thresholds, candidate selection, robustness."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st
from scapy.all import ICMP, IP, TCP, UDP, Ether, IPv6

from rules.api import FrameMeta, Verdict
from rules.checksum import l4_checksum_ok, ipv4_header_ok
from rules.engine import Engine
from rules.events import Alert, Drop
from rules.parser import parse_rule
from rules.settings import EngineSettings, StreamSettings

C, S = "198.51.100.1", "198.51.100.2"


def eng(*texts, mode="ips", **kw):
    return Engine([parse_rule(t) for t in texts], EngineSettings(mode=mode, **kw))


def fr(l4, src=C, dst=S):
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src=src, dst=dst) / l4)


class Feed:
    def __init__(self, engine):
        self.e = engine
        self.n = 0

    def __call__(self, frame, ts=None):
        self.n += 1
        return self.e.inspect(frame, FrameMeta(ts=1000.0 + self.n if ts is None else ts, iface="", pcap_cnt=self.n))


def alerts(r):
    return sorted((e.sid, e.action) for e in r.events if isinstance(e, Alert))


def drops(r):
    return [e.reason for e in r.events if isinstance(e, Drop)]


def tcp_session(feed, sport, dport, data_c2s):
    feed(fr(TCP(sport=sport, dport=dport, flags="S", seq=100)))
    feed(fr(TCP(sport=dport, dport=sport, flags="SA", seq=500, ack=101), src=S, dst=C))
    feed(fr(TCP(sport=sport, dport=dport, flags="A", seq=101, ack=501)))
    return feed(fr(TCP(sport=sport, dport=dport, flags="PA", seq=101, ack=501) / data_c2s))


ACTIONS = [
    'pass udp any any -> any 7000 (msg:"pass"; content:"X"; sid:1;)',
    'drop udp any any -> any 7000 (msg:"drop"; content:"X"; sid:2;)',
    'reject udp any any -> any 7000 (msg:"reject"; content:"X"; sid:3;)',
    'alert udp any any -> any 7000 (msg:"alert"; content:"X"; sid:4;)',
]


@pytest.mark.parametrize("present,verdict,expected", [
    ((1, 2, 3, 4), Verdict.FORWARD, []),
    ((2, 3, 4), Verdict.DROP, [(2, "blocked"), (3, "blocked"), (4, "allowed")]),
    ((3, 4), Verdict.REJECT, [(3, "blocked"), (4, "allowed")]),
    ((4,), Verdict.FORWARD, [(4, "allowed")]),
    ((1, 4), Verdict.FORWARD, []),
], ids=["pass-wins", "drop-beats-reject", "reject-beats-alert", "alert-only", "pass-suppresses-alert"])
def test_action_order(present, verdict, expected):
    e = eng(*[ACTIONS[i - 1] for i in present])
    r = Feed(e)(fr(UDP(sport=1111, dport=7000) / b"aXb"))
    assert r.verdict == verdict
    assert alerts(r) == expected
    if verdict != Verdict.FORWARD:
        assert drops(r) == ["rule"]


def test_ids_and_tap_compute_drop_but_say_allowed():
    for mode in ("ids", "tap"):
        e = eng(ACTIONS[1], mode=mode)
        r = Feed(e)(fr(UDP(sport=1, dport=7000) / b"X"))
        assert r.verdict == Verdict.DROP
        assert alerts(r) == [(2, "allowed")]
        assert drops(r) == []          # no EVE drop record where nothing is dropped


def test_tcp_payload_drop_marks_flow_and_later_packets_drop_with_reason_flow():
    e = eng('drop tcp any any -> any 80 (msg:"bad"; flow:to_server; content:"bad"; sid:10;)',
            'alert tcp any any -> any any (msg:"every data"; dsize:>0; sid:11;)')
    f = Feed(e)
    r = tcp_session(f, 40000, 80, b"bad stuff")
    assert r.verdict == Verdict.DROP and alerts(r) == [(10, "blocked"), (11, "allowed")]
    r = f(fr(TCP(sport=80, dport=40000, flags="PA", seq=501, ack=110) / b"reply", src=S, dst=C))
    assert r.verdict == Verdict.DROP and r.reason == "flow" and alerts(r) == [] and drops(r) == ["flow"]
    # another flow is untouched
    r = tcp_session(f, 40001, 80, b"fine")
    assert r.verdict == Verdict.FORWARD and alerts(r) == [(11, "allowed")]
    assert e.stats()["drops.flow"] == 1


def test_udp_drop_is_per_packet_like_suricata():
    e = eng('drop udp any any -> any 7001 (msg:"D"; content:"D"; sid:20;)')
    f = Feed(e)
    assert f(fr(UDP(sport=5, dport=7001) / b"D")).verdict == Verdict.DROP
    assert f(fr(UDP(sport=5, dport=7001) / b"A")).verdict == Verdict.FORWARD


def test_tcp_pass_on_payload_skips_rest_of_flow():
    e = eng('pass tcp any any -> any 80 (msg:"trusted"; content:"TRUSTED"; sid:30;)',
            'alert tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:31;)')
    f = Feed(e)
    r = tcp_session(f, 40100, 80, b"TRUSTED evil")
    assert r.verdict == Verdict.FORWARD and alerts(r) == []
    before = e.stats()["detect.evaluated"]
    r = f(fr(TCP(sport=40100, dport=80, flags="PA", seq=113, ack=501) / b"evil again"))
    assert alerts(r) == [] and e.stats()["detect.evaluated"] == before
    r = tcp_session(f, 40101, 80, b"evil")
    assert alerts(r) == [(31, "allowed")]


def test_flowbits_across_packets_and_same_packet_order():
    e = eng('alert udp any any -> any 9001 (msg:"check"; content:"CHK"; flowbits:isset,b; sid:41;)',
            'alert udp any any -> any 9001 (msg:"set"; content:"SET"; flowbits:set,b; flowbits:noalert; sid:40;)',
            'alert udp any 9001 -> any any (msg:"reply"; flowbits:isset,b; sid:42;)',
            'alert udp any any -> any 9001 (msg:"unset"; content:"UN"; flowbits:unset,b; flowbits:noalert; sid:43;)')
    f = Feed(e)
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"CHK"))) == []
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"SET"))) == []
    assert alerts(f(fr(UDP(sport=9001, dport=1) / b"r", src=S, dst=C))) == [(42, "allowed")]
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"CHK"))) == [(41, "allowed")]
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"UN"))) == []
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"CHK"))) == []
    # set and check in one packet: the setter is ordered before the reader (rule 41 is written first)
    assert alerts(f(fr(UDP(sport=1, dport=9001) / b"SET CHK"))) == [(41, "allowed")]
    # another flow has no bits
    assert alerts(f(fr(UDP(sport=2, dport=9001) / b"CHK"))) == []


@pytest.mark.parametrize("opt,times,expect", [
    ("threshold:type limit, track by_src, count 2, seconds 10", [0, 1, 2, 3, 11, 12, 13], [1, 1, 0, 0, 1, 1, 0]),
    ("threshold:type threshold, track by_src, count 3, seconds 5", [0, 1, 2, 3, 4, 5, 20], [0, 0, 1, 0, 0, 1, 0]),
    ("threshold:type both, track by_src, count 2, seconds 10", [0, 1, 2, 3, 11, 12], [0, 1, 0, 0, 0, 1]),
    ("detection_filter:track by_src, count 2, seconds 5", [0, 1, 2, 3, 10, 11, 12], [0, 0, 1, 1, 0, 0, 1]),
], ids=["limit", "threshold", "both", "detection_filter"])
def test_thresholds_by_packet_time(opt, times, expect):
    e = eng(f'alert udp any any -> any 5000 (msg:"t"; {opt}; sid:50;)')
    f = Feed(e)
    got = [len(alerts(f(fr(UDP(sport=1000 + i, dport=5000) / b"x"), ts=100.0 + t))) for i, t in enumerate(times)]
    assert got == expect


def test_threshold_tracks_sources_apart_and_drop_still_applies():
    e = eng('drop udp any any -> any 5006 (msg:"d"; threshold:type limit, track by_src, count 1, seconds 60; sid:51;)')
    f = Feed(e)
    r1 = f(fr(UDP(sport=1, dport=5006) / b"x"))
    r2 = f(fr(UDP(sport=2, dport=5006) / b"x"))
    r3 = f(fr(UDP(sport=3, dport=5006) / b"x", src="198.51.100.9"))
    assert [len(alerts(r)) for r in (r1, r2, r3)] == [1, 0, 1]
    assert [r.verdict for r in (r1, r2, r3)] == [Verdict.DROP] * 3


def test_candidate_selection_port_rule_never_evaluated_on_other_port():
    calls = []
    e = eng('alert udp any any -> any 80 (msg:"http"; sid:60;)', 'alert tcp any any -> any 53 (msg:"t53"; sid:61;)',
            'alert udp any 80 -> any any (msg:"from 80"; sid:62;)')
    e.detector.sigs[0].rule.checks.append(lambda p: calls.append(p.dport) or True)
    f = Feed(e)
    for i in range(20):
        f(fr(UDP(sport=3000 + i, dport=53) / b"q"))
    assert calls == [] and e.stats()["detect.evaluated"] == 0
    assert alerts(f(fr(UDP(sport=3000, dport=80) / b"q"))) == [(60, "allowed")]
    assert calls == [80]


def test_content_rule_not_evaluated_without_its_pattern():
    e = eng(*[f'alert tcp any any -> any any (msg:"r{i}"; content:"needle{i:04d}"; sid:{100 + i};)' for i in range(500)])
    f = Feed(e)
    r = f(fr(TCP(sport=1, dport=2, flags="PA") / b"haystack with NEEDLE0007 and needle0042"))
    assert alerts(r) == [(142, "allowed")]
    assert e.stats()["detect.evaluated"] == 1


def test_bidirectional_rule_matches_both_ways():
    e = eng('alert udp 203.0.113.9 7777 <> any any (msg:"bi"; sid:70;)')
    f = Feed(e)
    assert alerts(f(fr(UDP(sport=7777, dport=1) / b"a", src="203.0.113.9", dst=S))) == [(70, "allowed")]
    assert alerts(f(fr(UDP(sport=1, dport=7777) / b"a", src=S, dst="203.0.113.9"))) == [(70, "allowed")]
    assert alerts(f(fr(UDP(sport=1, dport=7777) / b"a", src=S, dst="203.0.113.8"))) == []


def test_reject_tcp_builds_valid_rst_both_ways():
    e = eng('rejectboth tcp any any -> any 80 (msg:"rej"; content:"rej"; sid:80;)')
    f = Feed(e)
    r = tcp_session(f, 40200, 80, b"rej this")
    assert r.verdict == Verdict.REJECT and len(r.inject) == 2
    back, fwd = r.inject
    assert back.back and not fwd.back
    pb = Ether(back.frame)
    assert pb[IP].src == S and pb[IP].dst == C and pb[TCP].flags == "RA"
    assert pb[TCP].seq == 501 and pb[TCP].ack == 101 + len(b"rej this")
    assert pb.dst == "02:00:00:00:00:01"
    pf = Ether(fwd.frame)
    assert pf[IP].src == C and pf[TCP].dport == 80 and pf[TCP].seq == 101 + len(b"rej this")
    for inj in r.inject:
        assert ipv4_header_ok(inj.frame, 14) and l4_checksum_ok(inj.frame, 14) is True


def test_reject_udp_sends_icmp_port_unreachable():
    e = eng('reject udp any any -> any 6004 (msg:"rej"; content:"rej"; sid:81;)')
    r = Feed(e)(fr(UDP(sport=45004, dport=6004) / b"rej udp"))
    assert r.verdict == Verdict.REJECT and len(r.inject) == 1
    p = Ether(r.inject[0].frame)
    assert p[IP].dst == C and p[ICMP].type == 3 and p[ICMP].code == 3
    assert l4_checksum_ok(r.inject[0].frame, 14) is True


def test_ipv6_rules_and_reject():
    e = eng('reject udp any any -> 2001:db8::/32 53 (msg:"v6"; sid:82;)')
    frame = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=53) / b"q")
    r = Feed(e)(frame)
    assert r.verdict == Verdict.REJECT
    assert l4_checksum_ok(r.inject[0].frame, 14) is True


def test_exception_policy_counts_and_decides():
    class Boom:
        def __call__(self, p):
            raise RuntimeError("keyword bug")

    for policy, verdict in (("ignore", Verdict.FORWARD), ("pass-flow", Verdict.FORWARD),
                            ("drop-packet", Verdict.DROP), ("drop-flow", Verdict.DROP)):
        e = eng('alert udp any any -> any any (msg:"x"; sid:90;)', exception_policy=policy)
        e.detector.sigs[0].rule.checks.append(Boom())
        f = Feed(e)
        r = f(fr(UDP(sport=1, dport=2) / b"x"))
        assert r.verdict == verdict and e.stats()["engine.errors"] == 1
        if policy in ("drop-flow", "pass-flow"):
            e.detector.sigs[0].rule.checks.pop()
            r = f(fr(UDP(sport=1, dport=2) / b"x"))
            if policy == "drop-flow":
                assert r.verdict == Verdict.DROP and r.reason == "flow"
            else:       # the flow left detection: the repaired rule does not alert on it
                assert r.verdict == Verdict.FORWARD and alerts(r) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_engine_never_raises_on_garbage(data):
    e = GARBAGE_ENGINE
    r = e.inspect(data, FrameMeta(ts=1.0, iface=""))
    assert e.stats()["engine.errors"] == 0
    # whatever the bytes, the verdict is the one the frame's own records give: dropped exactly
    # when a drop record says why (a matching drop/reject rule in ips mode always drops, and
    # logs its alert "blocked"), rejected exactly when there is an answer to send
    drops = [ev for ev in r.events if isinstance(ev, Drop)]
    alerts = {(ev.sid, ev.action) for ev in r.events if isinstance(ev, Alert)}
    if not drops:
        assert r.verdict == Verdict.FORWARD and r.reason == "" and r.inject == ()
        assert {sid for sid, _ in alerts} <= {1} and alerts <= {(1, "allowed")}
    else:
        assert r.verdict == (Verdict.REJECT if r.inject else Verdict.DROP) and drops[0].reason == r.reason
        if r.reason == "rule":
            assert drops[0].sid in (2, 3) and (drops[0].sid, "blocked") in alerts


GARBAGE_ENGINE = eng('alert ip any any -> any any (msg:"any"; sid:1;)',
                     'drop tcp any any -> any any (msg:"c"; content:"ab"; sid:2;)',
                     'reject udp any any -> any any (msg:"u"; content:"ab"; nocase; sid:3;)', decoder_events=True)


def test_tick_expires_flows():
    e = eng('alert udp any any -> any 1 (msg:"x"; sid:1;)')
    Feed(e)(fr(UDP(sport=5, dport=1)), ts=10.0)
    assert e.stats()["flow.active"] == 1
    e.tick(10.0 + 1000)
    assert e.stats()["flow.active"] == 0


def test_ip_only_rule_runs_once_per_flow_direction_and_its_drop_holds_the_flow():
    e = eng('alert udp 198.51.100.1 any -> any 53 (msg:"hdr"; sid:100;)',
            'alert udp any any -> any 53 (msg:"ttl"; ttl:64; sid:101;)',
            'drop ip 198.51.100.3 any -> any any (msg:"ip-only drop"; sid:102;)')
    f = Feed(e)
    got = [alerts(f(fr(UDP(sport=4000, dport=53) / b"q"))) for _ in range(3)]
    assert got == [[(100, "allowed"), (101, "allowed")], [(101, "allowed")], [(101, "allowed")]]
    r1 = f(fr(UDP(sport=9, dport=9) / b"u", src="198.51.100.3"))
    r2 = f(fr(UDP(sport=9, dport=9) / b"v", src=S, dst="198.51.100.3"))     # reply direction
    assert r1.verdict == Verdict.DROP and alerts(r1) == [(102, "blocked")]
    assert r2.verdict == Verdict.DROP and r2.reason == "flow" and alerts(r2) == []


def test_midstream_flow_follows_exception_policy_inline_only():
    rules = ['alert tcp any any -> any 7300 (msg:"mid"; content:"mid"; sid:110;)']
    data = fr(TCP(sport=5000, dport=7300, flags="PA", seq=1, ack=1) / b"mid data")
    e = Engine([parse_rule(t) for t in rules], EngineSettings.for_mode("ips"))
    f = Feed(e)
    r = f(data)
    assert r.verdict == Verdict.DROP and r.reason == "policy:midstream" and alerts(r) == []
    r = f(fr(TCP(sport=7300, dport=5000, flags="A", seq=1, ack=9), src=S, dst=C))
    assert r.verdict == Verdict.DROP and r.reason == "flow"
    e = Engine([parse_rule(t) for t in rules], EngineSettings.for_mode("ids"))
    assert alerts(Feed(e)(data)) == [(110, "allowed")]
    e = Engine([parse_rule(t) for t in rules], EngineSettings(mode="ips", stream=StreamSettings(midstream=True)))
    f = Feed(e)
    r = f(data)
    # picked up: the packet the session starts on is taken into the stream but not inspected
    # (Suricata 7: differential stream_midstream); the next segment's window holds its bytes
    assert r.verdict == Verdict.FORWARD and alerts(r) == []
    r = f(fr(TCP(sport=5000, dport=7300, flags="PA", seq=9, ack=1) / b" more"))
    assert r.verdict == Verdict.FORWARD and alerts(r) == [(110, "allowed")]
    # midstream on with midstream-policy pass-flow: a picked-up session leaves detection
    e = Engine([parse_rule(t) for t in rules],
               EngineSettings(mode="ips", stream=StreamSettings(midstream=True, midstream_policy="pass-flow")))
    f = Feed(e)
    assert alerts(f(data)) == []
    assert alerts(f(fr(TCP(sport=5000, dport=7300, flags="PA", seq=9, ack=1) / b" mid more"))) == []
    assert e.stats()["policy.midstream.pass-flow"] == 1


def test_header_cache_is_per_flow_direction_and_dies_with_the_flow():
    e = eng('alert udp 198.51.100.1 any -> any 53 (msg:"c2s"; ttl:64; sid:120;)',
            'alert udp any 53 -> 198.51.100.1 any (msg:"s2c"; ttl:64; sid:121;)')
    f = Feed(e)
    for _ in range(2):
        assert alerts(f(fr(UDP(sport=4000, dport=53) / b"q"), ts=10.0)) == [(120, "allowed")]
        assert alerts(f(fr(UDP(sport=53, dport=4000) / b"r", src=S, dst=C), ts=10.0)) == [(121, "allowed")]
    assert len(e.detector._hdr_cache) == 1
    e.tick(10.0 + 1000)
    assert e.detector._hdr_cache == {}


def test_fragments_reassembled_and_matched_on_the_completing_frame():
    from scapy.layers.inet import fragment

    e = eng('drop udp any any -> any 7201 (msg:"frag"; content:"BOUNDARY"; sid:130;)')
    dgram = IP(src=C, dst=S, id=77) / UDP(sport=1, dport=7201) / (b"a" * 20 + b"BOUNDARY" + b"b" * 40)
    frags = fragment(dgram, fragsize=24)
    assert len(frags) >= 3
    f = Feed(e)
    results = [f(bytes(Ether() / fr_)) for fr_ in frags]
    assert [r.verdict for r in results] == [Verdict.FORWARD] * (len(frags) - 1) + [Verdict.DROP]
    assert alerts(results[-1]) == [(130, "blocked")]
    assert e.stats()["defrag.reassembled"] == 1


def _gre(inner, ipid):
    from scapy.layers.l2 import GRE

    return bytes(Ether() / IP(src="203.0.113.100", dst="203.0.113.101", id=ipid) / GRE(proto=0x0800) / inner)


def test_tunnelled_packet_inspected_before_its_carrier():
    # Suricata runs the packet inside a GRE carrier through detection first: a rule
    # that can match both (limited to one alert) fires on the inner packet
    e = eng('alert ip any any -> any any (msg:"any"; ttl:64; '
            'threshold:type limit, track by_rule, count 1, seconds 60; sid:140;)')
    r = Feed(e)(_gre(IP(src=C, dst=S, ttl=64) / UDP(sport=1, dport=53) / b"q", 1))
    import ipaddress

    assert [(a.sid, a.pkt.src) for a in r.events if isinstance(a, Alert)] == [(140, int(ipaddress.ip_address(C)))]


def test_carrier_of_a_dropped_inner_packet_is_not_inspected():
    # the carrier of a dropped inner packet is dropped with it, uninspected: no alert and
    # no threshold count for a rule on the outer GRE packet (as suricata -r behaves)
    e = eng('drop udp any any -> any 53 (msg:"inner"; content:"drop-me"; sid:141;)',
            'alert ip any any -> any any (msg:"outer"; ip_proto:47; sid:142;)',
            'alert ip any any -> any any (msg:"outer 2nd"; ip_proto:47; '
            'threshold:type threshold, track by_rule, count 2, seconds 60; sid:143;)')
    f = Feed(e)
    rs = [f(_gre(IP(src=C, dst=S) / UDP(sport=1 + i, dport=53) / data, i))
          for i, data in enumerate([b"drop-me", b"hello", b"hello"])]
    assert rs[0].verdict == Verdict.DROP and alerts(rs[0]) == [(141, "blocked")]
    assert alerts(rs[1]) == [(142, "allowed")]
    assert alerts(rs[2]) == [(142, "allowed"), (143, "allowed")]


def test_fragment_completing_a_dropped_datagram_is_not_inspected():
    from scapy.layers.inet import fragment

    e = eng('drop udp any any -> any 7202 (msg:"dgram"; content:"BOUNDARY"; sid:144;)',
            'alert ip any any -> any any (msg:"last fragment"; fragbits:!M; sid:145;)')
    dgram = IP(src=C, dst=S, id=78) / UDP(sport=1, dport=7202) / (b"a" * 20 + b"BOUNDARY" + b"b" * 40)
    f = Feed(e)
    results = [f(bytes(Ether() / fr_)) for fr_ in fragment(dgram, fragsize=24)]
    last = results[-1]
    assert last.verdict == Verdict.DROP
    # the rebuilt datagram (no MF) alerts; the completing fragment itself is not inspected
    assert alerts(last) == [(144, "blocked"), (145, "allowed")]
    assert len([a for a in last.events if isinstance(a, Alert) and a.sid == 145]) == 1


def test_decoder_events_counted_and_optionally_reported():
    from rules.events import DecoderEvent

    short = bytes(Ether() / IP(src=C, dst=S) / UDP(sport=1, dport=2) / b"xxxx")[:30]
    quiet = eng('alert ip any any -> any any (msg:"x"; ttl:1; sid:1;)')
    r = Feed(quiet)(short)
    assert r.verdict == Verdict.FORWARD and r.events == ()
    assert quiet.stats()["decoder.packets_with_events"] == 1
    loud = eng('alert ip any any -> any any (msg:"x"; ttl:1; sid:1;)', decoder_events=True)
    r = Feed(loud)(short)
    assert [type(e) for e in r.events] == [DecoderEvent] and r.events[0].name.startswith("decoder.")
    # dropping malformed packets is a rule's job, as in Suricata
    name = r.events[0].name.removeprefix("decoder.")
    strict = eng(f'drop pkthdr any any -> any any (msg:"bad"; decode-event:{name}; sid:2;)')
    r = Feed(strict)(short)
    assert r.verdict == Verdict.DROP and r.reason == "rule" and alerts(r) == [(2, "blocked")]


@pytest.mark.parametrize("pad", [0, 300], ids=["short-payload", "long-payload"])
@pytest.mark.parametrize("extra", [0, 8], ids=["few-short-rules", "many-short-rules"])
def test_short_fast_patterns_found_outside_the_main_database(extra, pad):
    """1-2 byte fast patterns are kept out of the hyperscan database; their rules still match
    exactly when the payload holds the pattern (caseless per rule), through `bytes in` tests
    (few such rules, a short payload) or the short-pattern database (many, or a long
    payload)."""
    texts = ['alert udp any any -> any 53 (msg:"q"; content:"q"; sid:1;)',
             'alert udp any any -> any 53 (msg:"AB"; content:"AB"; nocase; sid:2;)',
             'alert udp any any -> any 53 (msg:"00 ff"; content:"|00 ff|"; sid:3;)',
             'alert udp any any -> any 53 (msg:"long"; content:"longer"; sid:4;)']
    texts += [f'alert udp any any -> any 53 (msg:"pad{i}"; content:"|f{i}|"; sid:{100 + i};)' for i in range(extra)]
    e = eng(*texts)
    assert e.stats()["prefilter.short_pattern_rules"] == 3 + extra
    f = Feed(e)
    p = b"." * pad
    assert sorted(alerts(f(fr(UDP(sport=4000, dport=53) / (p + b"xqx"))))) == [(1, "allowed")]
    assert sorted(alerts(f(fr(UDP(sport=4001, dport=53) / (b"..aB.." + p + b"\x00\xff longer"))))) == \
        [(2, "allowed"), (3, "allowed"), (4, "allowed")]
    assert alerts(f(fr(UDP(sport=4002, dport=53) / (b"Q a b " + p + b"\xff\x00")))) == []
    assert alerts(f(fr(UDP(sport=4003, dport=54) / b"q"))) == []
    assert alerts(f(fr(UDP(sport=4004, dport=53)))) == []


# (sid, pattern, caseless, offset, depth): None for an unanchored content
SHORT_TABLE = [(1, b"q", False, None, None), (2, b"ab", True, None, None), (3, b"\x00\xff", False, None, None),
               (5, b"\x18\x03", False, 0, 2), (4, b"Z", True, None, None), (6, b"kZ", True, 3, 4)] + \
    [(100 + i, bytes([0xF0 + i]), False, None, None) for i in range(8)]
_SHORT_SETS: dict = {}


def _short_set(many: bool):
    """(detector, the `short` of a flow direction's cached entry) for the rules of SHORT_TABLE
    (all of them: more than _SHORT_LOOP, looked for with their database; or the first four:
    `bytes in` tests in a short buffer)."""
    if many not in _SHORT_SETS:
        table = SHORT_TABLE if many else SHORT_TABLE[:4]
        texts = ['alert udp any any -> any 53 (msg:"s"; content:"%s"; %s%s%ssid:%d;)'
                 % ("".join("|%02x|" % c for c in pat), "nocase; " if nc else "",
                    f"offset:{off}; " if off else "", f"depth:{depth}; " if depth else "", sid)
                 for sid, pat, nc, off, depth in table]
        e = eng(*texts)
        Feed(e)(fr(UDP(sport=4000, dport=53) / b"."))
        (per_flow,) = e.detector._hdr_cache.values()
        (entry,) = per_flow.values()
        _SHORT_SETS[many] = (e.detector, entry[4], table)
    return _SHORT_SETS[many]


def _short_wanted(table, bufs, heads) -> list:
    """The sids of `table` a buffer holds the pattern of, by hand: anywhere in one of `bufs`,
    or for an anchored content within [offset, offset + depth) of one of `bufs` or `heads`."""
    want = []
    for sid, pat, nc, off, depth in table:
        where = [b for b in bufs] if depth is None else [b[off or 0:(off or 0) + depth] for b in bufs + heads]
        if any((pat.lower() in w.lower()) if nc else (pat in w) for w in where):
            want.append(sid)
    return sorted(want)


_SHORT_BYTES = st.binary(max_size=600) | st.lists(
    st.sampled_from([b"q", b"Q", b"aB", b"\x00", b"\xff", b"z", b"\xf3", b"\xf7", b".", b"x" * 300,
                     b"\x18\x03", b"\x18", b"\x03", b"kz", b"K", b"Z"])).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(bufs=st.lists(_SHORT_BYTES, min_size=1, max_size=2), head=st.none() | st.integers(0, 40),
       many=st.booleans())
def test_short_candidates_are_the_rules_whose_pattern_the_buffer_holds(bufs, head, many):
    """Detector.short_candidates (a database of the set's own patterns, or `bytes in` tests for
    a few in a short buffer) against the patterns looked for by hand, caseless per rule; a
    pattern its content anchors (`depth:2`, `offset:3; depth:4`) only at its place in each
    buffer, and in the head (an inline segment's payload: the last bytes of the window)."""
    from rules.detect import _SHORT_LOOP

    det, short, table = _short_set(many)
    assert (len(short) > _SHORT_LOOP) == many
    bufs = tuple(bufs)
    heads = () if head is None else (bufs[0][-head:] if head else b"",)
    assert sorted(s.rule.sid for s in det.short_candidates(short, bufs, heads)) == _short_wanted(table, bufs, heads)


def test_an_anchored_short_pattern_is_looked_for_only_at_its_place():
    """`content:"|18 03|"; depth:2;` (ET's heartbleed rules) keeps its place in the rule index,
    and a buffer holding the bytes elsewhere makes the rule no candidate; one holding them
    first does, in a window or at the start of the segment's payload inside it."""
    det, short, _table = _short_set(False)
    (hb,) = [s for s in short if s.rule.sid == 5]
    assert hb.fp_short[3:] == (0, 2)
    assert [s.fp_short[3:] for s in short if s.rule.sid != 5] == [(0, -1)] * 3
    assert det.short_candidates(short, (b"..\x18\x03..",)) == []
    assert det.short_candidates(short, (b"\x18\x03..",)) == [hb]
    window = b"x" * 500 + b"\x18\x03 rest of the segment"
    assert det.short_candidates(short, (window,)) == []
    assert det.short_candidates(short, (window,), (window[500:],)) == [hb]
