"""rules.detect behaviour the mutation run (tests/bench/mutation.py) found unchecked by the
detect suites: flowbits unset and toggle on one packet, pcre in a sticky buffer, a rule
whose payload does not match followed by one that does, `pkthdr` rules, the end-of-flow
pseudo packet (run_pseudo), many short fast patterns of other port groups, and the
header cache's trim."""
from __future__ import annotations

from scapy.all import IP, TCP, UDP, Ether

from rules.api import FrameMeta
from rules.decode import decode
from rules.detect import Detector
from rules.flow import FlowTable
from rules.parser import parse_rule
from rules.thresholds import Thresholds

C, S = "198.51.100.1", "203.0.113.2"


def det(*texts) -> Detector:
    return Detector([parse_rule(t) for t in texts])


def packet(l4, table: FlowTable | None = None, ts=1.0):
    p = decode(bytes(Ether() / IP(src=C, dst=S) / l4), FrameMeta(ts=ts, iface=""))[0]
    if table is not None:
        table.lookup(p)
    return p


def sids(matches) -> list[int]:
    return [s.rule.sid for s in matches]


def test_flowbits_unset_and_toggle_apply_in_rule_order_on_one_packet():
    d = det('alert udp any any -> any any (msg:"set"; flowbits:set,a; flowbits:set,b; flowbits:noalert; sid:1;)',
            'alert udp any any -> any any (msg:"unset"; flowbits:isset,a; flowbits:unset,a; sid:2;)',
            'alert udp any any -> any any (msg:"toggle"; flowbits:isset,b; flowbits:toggle,b; flowbits:toggle,c; sid:3;)',
            'alert udp any any -> any any (msg:"a gone"; flowbits:isnotset,a; sid:4;)',
            'alert udp any any -> any any (msg:"c on"; flowbits:isset,c; sid:5;)')
    t = FlowTable()
    p = packet(UDP(sport=1000, dport=53) / b"x", t)
    got = sids(d.run(p, p.flow, bytes(p.payload), Thresholds()))
    assert 1 in got and {2, 3, 4, 5} <= set(got)
    assert p.flow.flowbits == {"c"}                    # a unset, b toggled off, c toggled on


def test_a_pcre_in_a_sticky_buffer_is_counted_with_the_rest():
    d = det('alert dns any any -> any any (msg:"q"; dns.query; content:"example"; pcre:"/exa(m)ple/"; sid:1;)',
            'alert udp any any -> any any (msg:"p"; pcre:"/evil/"; sid:2;)')
    assert len(d._pcres) == 2 and d.stats()["detect.pcre_limit_hits"] == 0


def test_a_payload_that_does_not_match_does_not_stop_the_walk():
    d = det('alert udp any any -> any any (msg:"a"; content:"evil"; fast_pattern; content:"nothere"; priority:1; sid:1;)',
            'alert udp any any -> any any (msg:"b"; dsize:>0; priority:2; sid:2;)',
            'alert udp any any -> any any (msg:"c"; content:"evil"; priority:3; sid:3;)')
    p = packet(UDP(sport=1000, dport=53) / b"evil data")
    assert sids(d.run(p, None, bytes(p.payload), Thresholds())) == [2, 3]


def test_pkthdr_rules_on_a_frame_without_ip():
    d = det('alert pkthdr any any -> any any (msg:"a"; decode-event:ipv4.trunc_pkt; sid:1;)',
            'alert pkthdr any any -> any any (msg:"b"; sid:2;)',
            'alert pkthdr any any -> any any (msg:"c"; detection_filter:track by_src, count 1, seconds 60; '
            'priority:1; sid:3;)')
    p = decode(bytes(Ether(type=0x88B5) / b"not ip"), FrameMeta(ts=1.0, iface=""))[0]
    th = Thresholds()
    assert sids(d.run_nonip(p, th)) == [2]             # the event did not happen; df: count 1 not exceeded
    p.ts = 2.0
    assert sids(d.run_nonip(p, th)) == [3, 2]
    assert d.evaluated == 6


def end_packet(table):
    p = packet(TCP(sport=40000, dport=80, flags="A"), table)
    p.pcap_cnt = 0
    return p


def test_the_end_of_flow_pseudo_packet_runs_only_stream_rules_that_can_match():
    d = det('alert tcp any any -> any 80 (msg:"s"; content:"forbidden"; sid:1;)',
            'alert tcp any any -> any 80 (msg:"pkt"; content:"forbidden"; dsize:>0; sid:2;)',
            'alert tcp any any -> any 80 (msg:"other"; content:"elsewhere"; sid:3;)',
            'alert tcp any any -> any 80 (msg:"hdr"; flags:A; sid:4;)',
            'alert tcp any any -> any 9999 (msg:"port"; content:"forbidden"; sid:5;)',
            'alert tcp any any -> any 80 (msg:"bits"; content:"forbid"; flowbits:set,seen; sid:6;)',
            'alert tcp any any -> any 80 (msg:"df"; content:"forbidden"; '
            'detection_filter:track by_src, count 1, seconds 60; priority:1; sid:7;)',
            'alert tcp any any -> any 80 (msg:"flags"; content:"forbidden"; flags:S; sid:8;)')
    t = FlowTable()
    th = Thresholds()
    p = end_packet(t)
    hits: set = set()
    before = d.evaluated
    got = d.run_pseudo(p, (b"some forbidden data",), th, hits)
    assert sids(got) == [6, 1]                          # a flowbits setter first (signature order)
    assert hits == {id(s) for s in d.sigs if s.rule.sid in (1, 6, 7)}
    assert p.flow.flowbits == {"seen"}
    assert d.evaluated - before == 2
    got = d.run_pseudo(p, (b"x", b"forbidden again"), th, set())
    assert sids(got) == [6, 7, 1]                       # df: the second match goes through
    assert d.evaluated - before == 5
    assert d.run_pseudo(p, (b"nothing",), th, set()) == []


def test_many_short_patterns_of_another_port_group_are_not_candidates():
    shorts = [f'alert udp any any -> any 53 (msg:"s"; content:"{c}{c}"; sid:{10 + i};)' for i, c in enumerate("abcdef")]
    d = det(*shorts, 'alert udp any any -> any 80 (msg:"o"; content:"zq"; sid:99;)')
    p = packet(UDP(sport=1000, dport=53) / b"..zq..cc..")
    assert sids(d.run(p, None, bytes(p.payload), Thresholds())) == [12]


def test_trim_clears_the_header_cache_only_past_four_times_the_flows():
    d = det('alert udp any any -> any any (msg:"a"; sid:1;)')
    d._hdr_cache.update({i: {} for i in range(4096)})
    d.trim(0)                                           # 4 x max(0, 1024): kept
    assert len(d._hdr_cache) == 4096
    d.trim(2000)
    assert len(d._hdr_cache) == 4096
    d._hdr_cache[5000] = {}
    d.trim(10)
    assert d._hdr_cache == {}
    d._hdr_cache.update({i: {} for i in range(9000)})
    d.trim(2000)                                        # 4 x 2000 = 8000 < 9000
    assert d._hdr_cache == {}


def test_a_pseudo_packet_without_a_flow_skips_flowbits():
    d = det('alert tcp any any -> any 80 (msg:"bits"; content:"forbid"; flowbits:set,seen; sid:1;)')
    p = end_packet(FlowTable())
    p.flow = None
    assert sids(d.run_pseudo(p, (b"forbidden",), Thresholds(), set())) == [1]


def test_an_ids_view_finds_patterns_in_the_packet_payload_too():
    """IDS: the view's buffers do not hold the packet's bytes (covers False): a rule that
    inspects the stream and then the packet must find its pattern in the payload."""
    from rules.stream import StreamView
    d = det('alert tcp any any -> any any (msg:"both"; content:"forbidden"; depth:20; sid:1;)')
    p = packet(TCP(sport=40000, dport=80, flags="PA") / b"forbidden")
    view = StreamView((b"nothing of it",), b"forbidden", None, False, False)
    assert sids(d.run(p, None, b"forbidden", Thresholds(), view, set())) == [1]


def test_a_packet_header_buffer_is_read_from_the_packet():
    d = det('alert tcp any any -> any any (msg:"psh"; tcp.hdr; content:"|18|"; offset:13; depth:1; sid:1;)')
    p = packet(TCP(sport=40000, dport=80, flags="PA") / b"data")
    assert sids(d.run(p, None, bytes(p.payload), Thresholds())) == [1]
    q = packet(TCP(sport=40000, dport=80, flags="A") / b"data")
    assert sids(d.run(q, None, bytes(q.payload), Thresholds())) == []


def test_many_address_specific_rules_go_through_the_address_indexes():
    """More than 8 header buckets: candidates come from the address index and the
    address-pair index, which must give what a header check of each rule gives."""
    texts = [f'alert udp 198.51.100.{i} any -> any any (msg:"a"; dsize:>0; sid:{i};)' for i in range(1, 11)]
    texts += [f'alert udp 198.51.100.{i} any -> any 53 (msg:"p"; dsize:>0; sid:{10 + i};)' for i in range(1, 7)]
    texts.append('alert udp any any -> 203.0.113.9 any (msg:"d"; dsize:>0; sid:17;)')
    d = det(*texts)
    always = d.index.groups(17, 5000, 53)[0]
    assert always.plain_idx is not None and always.plain_pairs is not None

    def got(src, dst, dport):
        p = decode(bytes(Ether() / IP(src=src, dst=dst) / UDP(sport=5000, dport=dport) / b"x"),
                   FrameMeta(ts=1.0, iface=""))[0]
        return sids(d.run(p, None, bytes(p.payload), Thresholds()))

    assert got("198.51.100.3", S, 53) == [3, 13]
    assert got("198.51.100.3", S, 54) == [3]
    assert got("198.51.100.20", "203.0.113.9", 53) == [17]
    assert got(S, "198.51.100.3", 53) == []


def test_a_pseudo_packet_rule_whose_pattern_is_absent_does_not_end_the_walk():
    d = det('alert tcp any any -> any 80 (msg:"first"; content:"absent"; priority:1; sid:1;)',
            'alert tcp any any -> any 80 (msg:"then"; content:"present"; priority:2; sid:2;)')
    p = end_packet(FlowTable())
    assert sids(d.run_pseudo(p, (b"data present",), Thresholds(), set())) == [2]
