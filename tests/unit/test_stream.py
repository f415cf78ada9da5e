"""The stream stage (rules.stream) through the engine: which packet a stream content
rule alerts on and what a drop holds, inline (ips) and in IDS mode.

The expected packet numbers are Suricata 7.0.10's, from runs of `suricata -r`
on the same crafted sessions (chunk randomization off): the window numbers
(content at offset 0 re-alerts until the window's right edge passes the chunk
size), the segment that completes split content, the early out-of-order
segment inspected alone, first-data-wins overlaps, the depth, IDS flushes on
a chunk / a client FIN / the flow's end.
"""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether

from rules.api import FrameMeta, Verdict
from rules.engine import Engine
from rules.events import Alert
from rules.parser import parse_rule
from rules.settings import EngineSettings, StreamSettings

C, S = "198.51.100.10", "203.0.113.20"
ALERT = 'alert tcp any any -> any any (msg:"f"; content:"forbidden"; sid:1;)'
DROP = 'drop tcp any any -> any any (msg:"f"; content:"forbidden"; sid:2;)'


class Session:
    """A TCP session crafted packet by packet (handshake included), with sequence numbers kept."""

    def __init__(self, sport: int = 40000, isn=(1000, 5000)):
        self.sport = sport
        self.cseq, self.sseq = isn[0] + 1, isn[1] + 1
        self.frames = [self._c("S", isn[0], 0), self._s("SA", isn[1], isn[0] + 1), self._c("A", self.cseq, self.sseq)]

    def _c(self, flags, seq, ack, data=b""):
        return bytes(Ether() / IP(src=C, dst=S) / TCP(sport=self.sport, dport=8080, flags=flags, seq=seq, ack=ack,
                                                       window=65535) / data)

    def _s(self, flags, seq, ack, data=b""):
        return bytes(Ether() / IP(src=S, dst=C) / TCP(sport=8080, dport=self.sport, flags=flags, seq=seq, ack=ack,
                                                       window=65535) / data)

    def c(self, data=b"", flags="PA", at=None):
        """Client data at the current sequence number (or at stream offset `at`)."""
        seq = self.cseq if at is None else 1001 + at
        self.frames.append(self._c(flags, seq, self.sseq, data))
        if at is None:
            self.cseq += len(data) + (1 if "F" in flags else 0)
        return len(self.frames)

    def s(self, data=b"", flags="A"):
        self.frames.append(self._s(flags, self.sseq, self.cseq, data))
        self.sseq += len(data) + (1 if "F" in flags else 0)
        return len(self.frames)


def run(frames, rules=(ALERT,), mode="ips", **stream):
    """(pcap_cnt of each alert as (cnt, sid), dropped pcap_cnts, end-of-flow alert sids, engine)."""
    e = Engine([parse_rule(r) for r in rules], EngineSettings.for_mode(mode, stream=StreamSettings(**stream)))
    alerts, drops = [], []
    for i, f in enumerate(frames, 1):
        r = e.inspect(f, FrameMeta(ts=1000.0 + i * 0.01, iface="", pcap_cnt=i))
        alerts += [(i, ev.sid) for ev in r.events if isinstance(ev, Alert)]
        if r.verdict != Verdict.FORWARD:
            drops.append(i)
    end = sorted(ev.sid for ev in e.finish() if isinstance(ev, Alert))
    assert e.stats()["engine.errors"] == 0
    return alerts, drops, end, e


# ---------------------------------------------------------------- split content, inline
@pytest.mark.parametrize("parts", [[b"forbi", b"dden"], [b"for", b"bid", b"den"],
                                   [b"fo", b"rb", b"i", b"d", b"d", b"e", b"n", b""]],
                         ids=["2-segments", "3-segments", "8-segments"])
def test_split_content_alerts_on_the_completing_segment_and_a_drop_holds_the_flow(parts):
    parts = [p for p in parts if p]
    ss = Session()
    last = [ss.c(p) for p in parts][-1]
    tail = ss.c(b"tail")
    ack = ss.s()
    alerts, _, _, _ = run(ss.frames)
    assert alerts == [(last, 1), (tail, 1)]          # and again on the next segment (its window holds it)
    _, drops, _, _ = run(ss.frames, (DROP,))
    assert drops == list(range(last, ack + 1))       # the rest of the flow, both directions


def test_packet_only_rules_never_see_split_content():
    ss = Session()
    ss.c(b"forbi")
    ss.c(b"dden")
    rules = ('alert tcp any any -> any any (msg:"p"; content:"forbidden"; flags:PA; sid:3;)',
             'alert tcp-pkt any any -> any any (msg:"t"; content:"forbidden"; sid:4;)',
             'alert tcp any any -> any any (msg:"n"; content:"forbidden"; flow:no_stream; sid:5;)',
             'alert tcp-stream any any -> any any (msg:"s"; content:"forbidden"; sid:6;)',
             'alert tcp any any -> any any (msg:"o"; content:"forbidden"; flow:only_stream; sid:7;)')
    alerts, _, _, _ = run(ss.frames, rules)
    assert alerts == [(5, 6), (5, 7)]


# ---------------------------------------------------------------- the inline window
@pytest.mark.parametrize("size,count,alerting", [
    (100, 30, 25),        # right edges 100..2500 hold offset 0 in a 2560-byte window; 2600 does not
    (1000, 6, 2),         # 1000, 2000; not 3000
], ids=["100-byte-segments", "1000-byte-segments"])
def test_window_is_the_chunk_size_before_the_right_edge(size, count, alerting):
    ss = Session()
    first = ss.c(b"forbidden" + b"x" * (size - 9))
    for _ in range(count - 1):
        ss.c(b"y" * size)
    alerts, _, _, _ = run(ss.frames)
    assert alerts == [(first + k, 1) for k in range(alerting)]


def test_window_edge_exactly_at_the_chunk_size():
    ss = Session()
    ss.c(b"forbidden")
    for _ in range(25):
        ss.c(b"z" * 100)                 # right edge 2509
    edge = ss.c(b"z" * 51)               # right edge 2560: the window [0, 2560) still holds it
    after = ss.c(b"z")                   # 2561: no more
    alerts, _, _, _ = run(ss.frames)
    assert (edge, 1) in alerts and (after, 1) not in alerts


@pytest.mark.parametrize("big,realerts", [(1800, True), (1700, False)], ids=["over-2/3-chunk", "under"])
def test_a_big_payload_widens_its_window(big, realerts):
    """Over 2C/3 (1706 bytes) a packet's window is its length plus C/3 (853)."""
    ss = Session()
    first = ss.c(b"forbidden")
    ss.c(b"m" * (2600 - 9 - big))
    last = ss.c(b"b" * big)              # right edge 2600, window 2653 (1800) or 2560 (1700)
    alerts, _, _, _ = run(ss.frames)
    assert (first, 1) in alerts and ((last, 1) in alerts) == realerts


def test_chunk_size_is_per_direction():
    ss = Session()
    first = ss.c(b"forbidden" + b"x" * 91)
    for _ in range(14):
        ss.c(b"y" * 100)
    alerts, _, _, _ = run(ss.frames, toserver_chunk_size=1000)
    assert alerts == [(first + k, 1) for k in range(10)]


# ---------------------------------------------------------------- out of order, retransmissions, overlaps
def test_out_of_order_early_segment_alone_then_the_hole_filler_completes():
    ss = Session()
    early = ss.c(b"dden", at=5)
    filler = ss.c(b"forbi", at=0)
    ss.cseq += 9
    nxt = ss.c(b"tail")
    rules = (ALERT, 'alert tcp any any -> any any (msg:"d"; content:"dden"; sid:3;)')
    alerts, _, _, _ = run(ss.frames, rules)
    assert alerts == [(early, 3), (filler, 1), (filler, 3), (nxt, 1), (nxt, 3)]


def test_identical_retransmission_alerts_again_inline():
    ss = Session()
    first = ss.c(b"forbidden")
    again = ss.c(b"forbidden", at=0)
    alerts, _, _, _ = run(ss.frames)
    assert alerts == [(first, 1), (again, 1)]


def test_overlap_with_different_data_keeps_the_first_and_rewrites_the_forwarded_frame():
    ss = Session()
    ss.c(b"forbXdden")
    evil = ss.c(b"forbidden", at=0)
    rules = (DROP, 'alert tcp any any -> any any (msg:"x"; content:"forbXdden"; sid:3;)',
             'alert tcp any any -> any any (msg:"o"; stream-event:reassembly_overlap_different_data; sid:9;)')
    e = Engine([parse_rule(r) for r in rules], EngineSettings.for_mode("ips"))
    results = [e.inspect(f, FrameMeta(ts=1.0 + i, iface="", pcap_cnt=i + 1)) for i, f in enumerate(ss.frames)]
    r = results[evil - 1]
    assert r.verdict == Verdict.FORWARD                          # the receiver never gets "forbidden"
    assert sorted(ev.sid for ev in r.events if isinstance(ev, Alert)) == [3, 9]
    assert r.frame is not None and b"forbXdden" in r.frame and len(r.frame) == len(ss.frames[evil - 1])
    from rules.checksum import l4_checksum_ok
    assert l4_checksum_ok(r.frame, 14) is True


def test_wholly_acknowledged_retransmission_is_inspected_alone_and_its_drop_holds_the_packet():
    ss = Session()
    ss.c(b"forbi")
    ss.c(b"dden")
    ss.s()                                          # acknowledges all 9 bytes
    ss.c(b"0123456789")
    ss.s()
    old = ss.c(b"forbidden", at=0)                 # wholly before what the server acknowledged
    nxt = ss.c(b"more")
    rules = ('drop tcp any any -> any any (msg:"f"; content:"forbidden"; flow:to_server; sid:2;)',)
    e = Engine([parse_rule(r) for r in rules], EngineSettings.for_mode("ips"))
    verdicts = [e.inspect(f, FrameMeta(ts=1.0 + i, iface="", pcap_cnt=i + 1)).verdict
                for i, f in enumerate(ss.frames)]
    # the completing segment dropped the flow already; the old copy is dropped as part of it
    assert verdicts[4] == Verdict.DROP and verdicts[old - 1] == Verdict.DROP and verdicts[nxt - 1] == Verdict.DROP


# ---------------------------------------------------------------- packets not taken into the stream
def test_syn_with_data_is_inspected_alone_and_a_drop_holds_that_packet_only():
    frames = [bytes(Ether() / IP(src=C, dst=S) / TCP(sport=40000, dport=8080, flags="S", seq=1000) / b"forbidden")]
    ss = Session()
    frames += ss.frames[1:]
    ss.frames = frames
    after = ss.c(b"hello")
    alerts, drops, _, _ = run(ss.frames, (DROP,))
    assert alerts == [(1, 2)] and drops == [1] and after not in drops


# ---------------------------------------------------------------- depth
def test_depth_segment_crossing_is_inspected_alone_then_packets_one_by_one():
    ss = Session()
    ss.c(b"a" * 90)
    cross = ss.c(b"forbidden" + b"b" * 11)          # [90, 110) crosses depth 100
    later1 = ss.c(b"forbi")
    later2 = ss.c(b"dden")                          # split past the depth: never seen
    whole = ss.c(b"forbidden")
    rules = (ALERT, 'alert tcp any any -> any any (msg:"d"; stream-event:reassembly_depth_reached; sid:56;)')
    alerts, _, _, e = run(ss.frames, rules, depth=100)
    assert alerts == [(cross, 1), (cross, 56), (whole, 1)]
    assert later1 and later2 and e.stats()["stream.depth_reached"] == 1
    # the crossing packet's match is a stream match (flow drop); later ones hold the packet only
    _, drops, _, _ = run(ss.frames, (DROP,), depth=100)
    assert drops == list(range(cross, whole + 1))


def test_depth_zero_is_unlimited():
    ss = Session()
    for _ in range(20):
        ss.c(b"z" * 1000)
    last = ss.c(b"forbidden")
    alerts, _, _, _ = run(ss.frames, depth=0)
    assert alerts == [(last, 1)]


# ---------------------------------------------------------------- IDS timing
def test_ids_inspects_acknowledged_data_on_a_chunk_a_client_fin_or_the_end():
    ss = Session()
    ss.c(b"forbi")
    ss.s()
    ss.c(b"dden")
    ss.s()
    alerts, _, end, _ = run(ss.frames, mode="ids")
    assert alerts == [] and end == [1]                 # never flushed before the end of the flow
    fin = ss.c(flags="FA")
    alerts, _, end, _ = run(ss.frames, mode="ids")
    assert alerts == [(fin, 1)] and end == []          # the client's FIN closes its side: flushed there


def test_ids_flushes_a_chunk_of_acknowledged_data_on_the_next_packet_of_its_direction():
    ss = Session()
    ss.c(b"forbidden" + b"x" * 991)
    ss.s()
    ss.c(b"y" * 1000)
    ss.s()
    ss.c(b"y" * 1000)
    ss.s()                                             # 3000 acknowledged >= 2560
    nxt = ss.c(b"y" * 10)
    alerts, _, _, _ = run(ss.frames, mode="ids")
    assert alerts == [(nxt, 1)]


def test_ids_content_straddling_two_flushes_is_not_seen():
    """As Suricata: consecutive IDS inspections do not overlap."""
    ss = Session()
    ss.c(b"x" * 2555 + b"forbi")                      # first flush covers [0, 2560)
    ss.s()
    ss.c(b"dden" + b"y" * 2600)
    ss.s()
    ss.c(b"z")
    ss.c(flags="FA")
    alerts, _, end, _ = run(ss.frames, mode="ids")
    assert alerts == [] and end == []


# ---------------------------------------------------------------- keywords that read the session
def test_stream_size_counts_sequence_numbers_used():
    ss = Session()
    d = ss.c(b"012345678")
    a = ss.s()
    rules = ('alert tcp any any -> any any (msg:"c1"; stream_size:client,=,1; sid:10;)',
             'alert tcp any any -> any any (msg:"c10"; stream_size:client,=,10; sid:11;)',
             'alert tcp any any -> any any (msg:"both"; stream_size:both,>=,1; sid:12;)',
             'alert tcp any any -> any any (msg:"either"; stream_size:either,>,5; sid:13;)')
    alerts, _, _, _ = run(ss.frames, rules)
    by = {}
    for cnt, sid in alerts:
        by.setdefault(sid, []).append(cnt)
    assert by[10] == [1, 2, 3] and by[11] == [d, a] and by[13] == [d, a]
    assert by[12] == [2, 3, d, a]                      # the server side counts from its SYN-ACK


def test_tcp_hdr_is_the_header_with_options():
    ss = Session()
    d = ss.c(b"forbidden")
    rules = ('alert tcp any any -> any any (msg:"psh"; tcp.hdr; content:"|18|"; offset:13; depth:1; sid:20;)',
             'alert tcp any any -> any any (msg:"nopl"; tcp.hdr; content:"forbidden"; sid:21;)')
    alerts, _, _, _ = run(ss.frames, rules)
    assert alerts == [(d, 20)]


@pytest.mark.parametrize("cmp,matches", [("!9", [4]), ("<5", [1, 2, 3, 4]), ("0", [1, 2, 3]), (">0", [4])],
                         ids=["not-9", "lt-5", "zero", "gt-0"])
def test_dsize_on_packets_without_payload(cmp, matches):
    ss = Session()
    ss.c(b"abc")
    alerts, _, _, _ = run(ss.frames, (f'alert tcp any any -> any any (msg:"d"; dsize:{cmp}; sid:30;)',))
    assert [cnt for cnt, _ in alerts] == matches


# ---------------------------------------------------------------- bounds
def test_reassembly_memcap_refuses_segments_and_its_policy_decides():
    ss = Session()
    ss.c(b"a" * 600)
    over = ss.c(b"forbidden")
    alerts, drops, _, e = run(ss.frames, (ALERT,), reassembly_memcap=600, reassembly_memcap_policy="drop-packet")
    assert drops == [over] and e.stats()["stream.reassembly_memcap_drop"] == 1
    alerts, drops, _, e = run(ss.frames, (ALERT,), reassembly_memcap=600)
    assert drops == [] and alerts == [(over, 1)]      # ignore: the packet is inspected alone


def test_each_stream_byte_is_prefiltered_once():
    """The prefilter scans what a segment adds (plus the longest pattern's overlap), not the
    whole window again on every packet."""
    ss = Session()
    for _ in range(50):
        ss.c(b"q" * 100)
    e = Engine([parse_rule(ALERT)], EngineSettings.for_mode("ips"))
    scanned = []
    scan = e.streams.scanner.scan
    e.streams.scanner.scan = lambda data: scanned.append(len(data)) or scan(data)
    for i, f in enumerate(ss.frames):
        e.inspect(f, FrameMeta(ts=1.0 + i, iface="", pcap_cnt=i + 1))
    assert sum(scanned) <= 50 * (100 + len("forbidden") - 1)


@pytest.mark.parametrize("cmp", [">=0", "<0", ">65535", "<=65535"])
def test_dsize_bounds_suricata_refuses_are_refused(cmp):
    from rules.errors import RuleError
    with pytest.raises(RuleError, match="Suricata refuses it"):
        parse_rule(f'alert tcp any any -> any any (msg:"d"; dsize:{cmp}; sid:30;)')


def test_past_the_depth_the_session_needs_no_more_stream_inspection_and_it_is_counted():
    ss = Session()
    ss.c(b"a" * 60)
    ss.s(b"b" * 60)
    ss.c(b"c" * 60)                      # crosses depth 100: client direction done
    ss.s(b"d" * 60)                      # server direction done too
    ss.c(b"e" * 30)
    e = Engine([parse_rule(ALERT)], EngineSettings.for_mode("ips", stream=StreamSettings(depth=100)))
    for i, f in enumerate(ss.frames):
        e.inspect(f, FrameMeta(ts=1.0 + i, iface="", pcap_cnt=i + 1))
        flow = next(iter(e.flows._flows.values()))
        assert flow.tcp is None or flow.tcp.done() == (i >= 6)     # from the server's crossing segment
    st = e.stats()
    assert st["stream.depth_reached"] == 2
    assert (st["stream.past_depth_segments"], st["stream.past_depth_bytes"]) == (1, 30)


def test_a_decided_flow_gives_its_stream_memory_back():
    ss = Session()
    ss.c(b"x" * 500)
    ss.c(b"forbidden")
    e = Engine([parse_rule(DROP)], EngineSettings.for_mode("ips"))
    for i, f in enumerate(ss.frames):
        e.inspect(f, FrameMeta(ts=1.0 + i, iface="", pcap_cnt=i + 1))
    st = e.stats()
    assert st["drops.rule"] == 1 and st["stream.memuse"] == 0 and st["stream.sessions"] == 0
