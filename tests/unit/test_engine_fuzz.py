"""Engine.inspect never raises, never needs its safety net, and keeps its tables within
their caps: raw bytes, and sequences of real frames (built once with scapy) that
hypothesis mutates, truncates and splices, fed to one engine per sequence so flow,
stream, defrag and threshold state is exercised -- in ips, tap and ids mode.

After every frame: `engine.errors` is 0 (an exception the safety net in `inspect`
swallowed is a bug too), flows <= FlowSettings.max_flows, defrag trackers and
held fragments <= DefragSettings, stream sessions and held bytes <= their memcaps,
threshold entries <= the thresholds table's cap.
After the sequence, `finish()` (and a late `tick`) must give every byte and
session back: a table that does not return to zero leaks.

Small caps (4 flows, 3 TCP sessions, 6 KiB of segments, 3 defrag trackers, 3
threshold entries) so a short sequence reaches them.  IPSBRIDGE_FUZZ_SCALE=N runs N times the examples
(tests/bench/fuzz_long.py runs the same targets for much longer).
"""
from __future__ import annotations

import os
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, GRE, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE, FrameMeta, Result, Verdict
from rules.checksum import fill_l4_checksum, inet_checksum
from rules.engine import Engine
from rules.events import Drop
from rules.parser import parse_rule
from rules.settings import (
    FLOW_BYTES,
    DecodeOptions,
    DefragSettings,
    EngineSettings,
    FlowSettings,
    StreamSettings,
)
from rules.stream import SESSION_BYTES
from rules.thresholds import Thresholds

SCALE = int(os.environ.get("IPSBRIDGE_FUZZ_SCALE", "1"))
# reproducible in CI: the same examples every run, nothing read from or written to a database
FUZZ = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}

C4, S4, C6, S6 = "198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
BACK = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
ETH_HDR = bytes.fromhex("020000000002" "020000000001" "0800")
ETH_BACK = bytes.fromhex("020000000001" "020000000002" "0800")
ETH6_HDR = bytes.fromhex("020000000002" "020000000001" "86dd")
MASK32 = 0xFFFFFFFF

# Every family of keyword the engine runs: payload (content, pcre, byte_*, isdataat,
# dns.query), flow state (flow, flowbits, stream_size, stream-event), thresholds and
# detection_filter, header keywords, decoder events, IP-only rules, and each action.
RULES = [
    'alert tcp any any -> any 80 (msg:"cmd"; flow:established,to_server; content:"cmd.exe"; nocase; sid:1;)',
    'drop tcp any any -> any 80 (msg:"passwd"; flow:to_server; content:"/etc/passwd"; sid:2;)',
    'alert tcp any any -> any any (msg:"pcre"; pcre:"/GET\\s+\\/[a-z]+\\.exe/i"; sid:3;)',
    'alert tcp any any -> any any (msg:"set"; content:"LOGIN"; flowbits:set,login; flowbits:noalert; sid:4;)',
    'drop tcp any any -> any any (msg:"isset"; content:"DELE"; flowbits:isset,login; sid:5;)',
    ('alert tcp any any -> any any (msg:"thr"; content:"HTTP"; threshold:type both, track by_src, count 2, '
     'seconds 5; sid:6;)'),
    'alert udp any any -> any any (msg:"df"; content:"q"; detection_filter:track by_dst, count 3, seconds 2; sid:7;)',
    'alert tcp any any -> any any (msg:"size"; stream_size:client,>,20; sid:8;)',
    'alert tcp any any -> any any (msg:"overlap"; stream-event:reassembly_overlap_different_data; sid:9;)',
    'alert tcp any any -> any any (msg:"depth"; stream-event:reassembly_depth_reached; sid:10;)',
    'drop tcp any any -> any any (msg:"invalid ack"; stream-event:est_invalid_ack; sid:11;)',
    'reject tcp any any -> any 81 (msg:"rej"; content:"reject-me"; sid:12;)',
    'rejectboth udp any any -> any 5353 (msg:"rej u"; content:"R"; sid:13;)',
    'drop udp any any -> any 53 (msg:"dns"; dns.query; content:"evil.example"; nocase; endswith; sid:14;)',
    ('alert udp any any -> any any (msg:"bt"; byte_test:1,>,200,0; byte_jump:1,0,relative; '
     'isdataat:1,relative; sid:15;)'),
    'alert icmp any any -> any any (msg:"echo"; itype:8; icmp_seq:1; sid:16;)',
    'alert ip any any -> any any (msg:"ttl"; ttl:<3; sid:17;)',
    'drop ip 203.0.113.66 any -> any any (msg:"ip-only"; sid:18;)',
    'pass tcp any any -> any 8080 (msg:"pass"; flow:established; content:"ok"; sid:19;)',
    'alert tcp any any -> any any (msg:"bypass"; content:"BULK"; bypass; sid:20;)',
    'alert tcp any any -> any any (msg:"flags"; flags:SF,12; sid:21;)',
    'alert udp any any -> any any (msg:"dsize"; dsize:>1000; sid:22;)',
    'drop pkthdr any any -> any any (msg:"decoder"; decode-event:ipv4.trunc_pkt; sid:23;)',
    'alert ip any any -> any any (msg:"frag"; fragbits:M; sid:24;)',
    'alert tcp any any -> any any (msg:"neg"; content:"GET"; content:!"Host"; distance:0; sid:25;)',
    'alert tcp-stream any any -> any any (msg:"split"; content:"evil-split"; sid:26;)',
    ('alert udp any any -> any any (msg:"limit"; content:"x"; threshold:type limit, track by_rule, count 1, '
     'seconds 60; sid:27;)'),
    'alert ipv6 any any -> any any (msg:"v6"; ip_proto:17; sid:28;)',
    'alert tcp any any -> any any (msg:"sameip"; sameip; sid:29;)',
]

# Small caps: a sequence of a few dozen frames reaches each of them.
MAX_FLOWS = 4
SMALL_FLOW = FlowSettings(memcap=MAX_FLOWS * FLOW_BYTES)
SMALL_DEFRAG = DefragSettings(timeout=5.0, trackers=3, max_frags=8)


def small_stream(**kw) -> StreamSettings:
    base = {"memcap": 3 * SESSION_BYTES, "reassembly_memcap": 6 * 1024, "depth": 3000,
            "toserver_chunk_size": 300, "toclient_chunk_size": 200}
    base.update(kw)
    return StreamSettings(**base)


def _settings(mode: str, *, stream: StreamSettings | None = None, **kw) -> EngineSettings:
    return EngineSettings.for_mode(mode, stream=stream, flow=SMALL_FLOW, defrag=SMALL_DEFRAG, **kw)


# (name, settings): the three modes, and the variants that change what the stream stage does
CONFIGS = [
    ("ips", _settings("ips", stream=small_stream(midstream_policy="drop-flow", memcap_policy="drop-flow",
                                                 reassembly_memcap_policy="drop-packet"), decoder_events=True)),
    ("ips-midstream", _settings("ips", stream=small_stream(midstream=True, bypass=True, memcap_policy="pass-flow",
                                                           reassembly_memcap_policy="reject"),
                                exception_policy="drop-flow")),
    ("tap", _settings("tap", stream=small_stream(async_oneside=True, check_overlap_different_data=True))),
    ("ids", _settings("ids", stream=small_stream(midstream=True, depth=0))),
    ("ids-nocsum", _settings("ids", stream=small_stream(raw=False, inline="yes"),
                             decoder=DecodeOptions(checksum_validation=False, max_tunnel_depth=1,
                                                   l4_in_first_fragment=True))),
]
RULE_OBJS = [parse_rule(t) for t in RULES]


MAX_THRESHOLDS = 3     # threshold/detection_filter entries (rules.thresholds.MAX_ENTRIES in the engine)


def fresh(config: int) -> Engine:
    e = Engine(RULE_OBJS, CONFIGS[config][1])
    e.thresholds = Thresholds(max_entries=MAX_THRESHOLDS)     # a cap the sequences reach
    return e


# ------------------------------------------------------------------ real traffic
def _tcp_session(ip, cli, srv, sport, dport, client_data, server_data, *, isn=1000, sisn=5000):
    """A TCP session as frames: handshake, client data in segments (one out of order, one
    retransmitted with other bytes), the server's answer, FINs."""
    def c(**kw):
        return ETH / ip(src=cli, dst=srv) / TCP(sport=sport, dport=dport, **kw)

    def s(**kw):
        return BACK / ip(src=srv, dst=cli) / TCP(sport=dport, dport=sport, **kw)

    out = [c(flags="S", seq=isn, options=[("MSS", 1460), ("WScale", 2), ("SAckOK", b"")]),
           s(flags="SA", seq=sisn, ack=isn + 1, options=[("MSS", 1460), ("WScale", 1)]),
           c(flags="A", seq=isn + 1, ack=sisn + 1)]
    seq = isn + 1
    segs = [client_data[i:i + 7] for i in range(0, len(client_data), 7)]
    if len(segs) > 2:
        segs[1], segs[2] = segs[2], segs[1]              # out of order
    offsets, o = {}, 0
    for part in [client_data[i:i + 7] for i in range(0, len(client_data), 7)]:
        offsets.setdefault(part, o)
        o += len(part)
    for part in segs:
        out.append(c(flags="PA", seq=seq + offsets[part], ack=sisn + 1) / part)
    out.append(c(flags="PA", seq=seq, ack=sisn + 1) / bytes(b ^ 1 for b in client_data[:5]))   # overlap, other data
    seq += len(client_data)
    out.append(s(flags="PA", seq=sisn + 1, ack=seq) / server_data)
    out.append(c(flags="A", seq=seq, ack=sisn + 1 + len(server_data)))
    out.append(c(flags="FA", seq=seq, ack=sisn + 1 + len(server_data)))
    out.append(s(flags="FA", seq=sisn + 1 + len(server_data), ack=seq + 1))
    out.append(c(flags="A", seq=seq + 1, ack=sisn + 2 + len(server_data)))
    out.append(c(flags="R", seq=seq + 1))
    return out


def _fragments_v4(payload: bytes, ident: int):
    whole = IP(src=C4, dst=S4, id=ident) / UDP(sport=4444, dport=5353) / payload
    body = bytes(whole)[20:]
    frags = []
    for off in range(0, len(body), 16):
        chunk = body[off:off + 16]
        more = off + 16 < len(body)
        frags.append(ETH / IP(src=C4, dst=S4, id=ident, proto=17, flags="MF" if more else 0, frag=off // 8) / chunk)
    return frags


def _fragments_v6(payload: bytes, ident: int):
    # the UDP checksum covers the IPv6 pseudo header: build it whole, then cut it up
    body = bytes(IPv6(src=C6, dst=S6) / UDP(sport=4445, dport=5353) / payload)[40:]
    out = []
    for off in range(0, len(body), 16):
        more = int(off + 16 < len(body))
        out.append(ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=ident, m=more, offset=off // 8, nh=17)
                   / body[off:off + 16])
    return out


def _flows():
    """Each entry: the frames of one conversation, in order."""
    http = b"GET /cmd.exe HTTP/1.0\r\nX: LOGIN DELE evil-split\r\n\r\n"
    flows = []
    for sport in (40000, 40001, 40002, 40003, 40004):       # more sessions than the caps allow
        data = http if sport < 40002 else http.replace(b"DELE", b"LIST")      # some dropped, some not
        flows.append(_tcp_session(IP, C4, S4, sport, 80, data, b"HTTP/1.0 200 OK\r\n\r\nBULK body"))
    flows.append(_tcp_session(IP, C4, S4, 40010, 81, b"please reject-me now", b"no"))
    flows.append(_tcp_session(IP, C4, S4, 40011, 8080, b"ok fine" * 3, b"ok"))
    flows.append(_tcp_session(IPv6, C6, S6, 40020, 80, b"GET /etc/passwd HTTP/1.1\r\n\r\n", b"HTTP/1.1 403"))
    flows.append([ETH / IP(src=C4, dst=S4) / UDP(sport=3000 + i, dport=53)
                  / DNS(id=i, rd=1, qd=DNSQR(qname=name)) for i, name in
                  enumerate(["www.evil.example", "benign.example", "EVIL.EXAMPLE"])]
                 + [BACK / IP(src=S4, dst=C4) / UDP(sport=53, dport=3000) / DNS(id=0, qr=1)])
    flows.append([ETH / IP(src=C4, dst=S4) / ICMP(type=8, id=7, seq=1) / b"ping",
                  BACK / IP(src=S4, dst=C4) / ICMP(type=0, id=7, seq=1) / b"ping",
                  ETH / IP(src=C4, dst=S4, ttl=1) / ICMP(type=3, code=3) / IP(src=C4, dst=S4) / UDP(sport=1, dport=2),
                  ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(id=1, seq=1, data=b"v6")])
    flows.append([ETH / Dot1Q(vlan=10) / IP(src=C4, dst=S4) / UDP(sport=5000, dport=5353) / (b"R" + bytes([250, 3]) * 4),
                  ETH / Dot1Q(vlan=10) / Dot1Q(vlan=20) / IP(src=C4, dst=S4) / UDP(sport=5000, dport=9) / (b"x" * 1100),
                  ETH / IP(src="203.0.113.66", dst=S4) / UDP(sport=1, dport=2) / b"q",
                  ETH / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2) / b"q"])
    flows.append([ETH / IP(src=C4, dst=S4) / GRE() / IP(src="203.0.113.5", dst="203.0.113.6")
                  / TCP(sport=1234, dport=80, flags="PA") / b"GET /x.exe",
                  ETH / IP(src=C4, dst=S4) / UDP(sport=4000, dport=4789) / VXLAN(vni=5) / ETH
                  / IP(src="203.0.113.7", dst="203.0.113.8") / UDP(sport=6, dport=53) / DNS(qd=DNSQR(qname="evil.example")),
                  ETH / IP(src=C4, dst=S4) / GRE(proto=0x6558) / ETH / IPv6(src=C6, dst=S6) / TCP(flags="S")])
    flows.append(_fragments_v4(b"q" * 40 + b"R", 77) + _fragments_v6(b"R" * 40, 78))
    flows.append([ETH / ARP(), ETH / IP(src=C4, dst=S4, ihl=5, len=200) / UDP(sport=1, dport=2)])
    return [[bytes(p) for p in f] for f in flows]


def _bulk(sport: int, n: int = 12, size: int = 500):
    """A transfer past the reassembly depth (3000) and, two at once, past the 6 KiB memcap."""
    hs = _tcp_session(IP, C4, S4, sport, 80, b"", b"")[:3]
    body = [ETH / IP(src=C4, dst=S4) / TCP(sport=sport, dport=80, flags="PA", seq=1001 + i * size, ack=5001)
            / (bytes([65 + i]) * size) for i in range(n)]
    return hs + body


def _interleaved(*convs):
    out = []
    for i in range(max(len(c) for c in convs)):
        out += [c[i] for c in convs if i < len(c)]
    return out


# three transfers at once: together past stream.reassembly.memcap
FLOWS = _flows() + [[bytes(p) for p in _interleaved(_bulk(41000), _bulk(41001), _bulk(41002))]]
ALL_FRAMES = [fr for f in FLOWS for fr in f]
SESSION_PORTS = (40000, 40001, 40002, 40003, 40004, 40010, 41000, 41001, 41002)   # client ports of the sessions above


def _ip4(src: str, dst: str, proto: int, body: bytes, *, ident: int = 1, frag: int = 0, ttl: int = 64) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), ident, frag, ttl, proto, 0,
                                socket.inet_aton(src), socket.inet_aton(dst)))
    hdr[10:12] = inet_checksum(hdr).to_bytes(2, "big")
    return bytes(hdr) + body


def tcp_frame(sport: int, to_server: bool, seq: int, ack: int, flags: int, win: int, payload: bytes,
              wscale: int | None = None) -> bytes:
    """A TCP segment of the session on client port `sport` (client ISN 1000, server 5000 as in
    `_tcp_session`), with a right checksum: built by hand, scapy costs 100x more."""
    opts = b"" if wscale is None else bytes((3, 3, wscale, 1))
    doff = (20 + len(opts)) // 4
    src, dst, sp, dp = (C4, S4, sport, 80) if to_server else (S4, C4, 80, sport)
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & MASK32, ack & MASK32, doff << 4, flags, win, 0, 0) + opts + payload
    frame = bytearray((ETH_HDR if to_server else ETH_BACK) + _ip4(src, dst, 6, tcp))
    fill_l4_checksum(frame, 14)
    return bytes(frame)


def frag_frame(v6: bool, ident: int, offset: int, more: bool, payload: bytes) -> bytes:
    """One IPv4 or IPv6 fragment of a UDP datagram (offset in 8-byte units)."""
    if not v6:
        return ETH_HDR + _ip4(C4, S4, 17, payload, ident=ident, frag=(0x2000 if more else 0) | (offset & 0x1FFF))
    fh = struct.pack("!BBHI", 17, 0, (offset << 3) & 0xFFF8 | more, ident)
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(fh) + len(payload), 44, 64,
                      socket.inet_pton(socket.AF_INET6, C6), socket.inet_pton(socket.AF_INET6, S6))
    return ETH6_HDR + ip6 + fh + payload


def fix_checksums(frame: bytearray) -> None:
    """Make an (edited) untunnelled IPv4/IPv6 frame's checksums right again, where it can be
    read that far: the mutation then reaches the stream and detect stages instead of
    stopping at checksum validation."""
    l3 = 14
    while len(frame) >= l3 + 4 and frame[l3 - 2:l3] in (b"\x81\x00", b"\x88\xa8"):
        l3 += 4
    if len(frame) < l3 + 20:
        return
    if frame[l3 - 2:l3] == b"\x08\x00" and frame[l3] >> 4 == 4:
        ihl = (frame[l3] & 0x0F) * 4
        if ihl >= 20 and len(frame) >= l3 + ihl:
            frame[l3 + 10:l3 + 12] = b"\0\0"
            frame[l3 + 10:l3 + 12] = inet_checksum(frame[l3:l3 + ihl]).to_bytes(2, "big")
    if frame[l3 - 2:l3] in (b"\x08\x00", b"\x86\xdd"):
        fill_l4_checksum(frame, l3)


# ------------------------------------------------------------------ checks
def check_result(r: Result, frame: bytes, mode: str) -> None:
    assert isinstance(r, Result) and isinstance(r.events, tuple) and isinstance(r.inject, tuple)
    drops = [ev for ev in r.events if isinstance(ev, Drop)]
    if mode == "ips":      # dropped exactly when a drop record says why; rejected only with an answer
        assert (r.verdict != Verdict.FORWARD) == bool(drops)
        assert not drops or drops[0].reason == r.reason
        assert (r.verdict == Verdict.REJECT) <= bool(r.inject)
    else:                  # tap and ids never drop: no drop records, the verdict says what would be
        assert drops == []
    if r.frame is not None:                    # a rewritten payload keeps the frame's length
        assert r.verdict == Verdict.FORWARD and len(r.frame) == len(frame)


def check_bounds(e: Engine) -> None:
    st_ = e.stats()
    assert st_["engine.errors"] == 0, "inspect's safety net caught an exception"
    s = e.settings
    assert len(e.flows) == st_["flow.active"] <= s.flow.max_flows
    assert 0 <= len(e.defrag) <= s.defrag.trackers
    assert 0 <= e.defrag.held <= s.defrag.max_frags
    assert 0 <= e.streams.sessions and e.streams.sessions * SESSION_BYTES <= s.stream.memcap
    assert 0 <= e.streams.mem <= s.stream.reassembly_memcap
    assert len(e.thresholds) <= e.thresholds.max_entries == MAX_THRESHOLDS


def check_drained(e: Engine, last_ts: float) -> None:
    """The input ended: every flow, session, held byte and fragment is given back."""
    e.finish()
    e.tick(last_ts + 10_000)
    check_bounds(e)
    st_ = e.stats()
    assert len(e.flows) == 0 and st_["flow.active"] == 0
    assert e.streams.sessions == 0, "TCP sessions still charged against stream.memcap after finish()"
    assert e.streams.mem == 0, f"{e.streams.mem} bytes still charged against stream.reassembly.memcap"
    assert len(e.defrag) == 0 and e.defrag.held == 0


# ------------------------------------------------------------------ sequences
META_VLANS = [(), (7,), (7, 8)]
CSUMS = [CSUM_VALIDATE, CSUM_SKIP, CSUM_AUTO]


@st.composite
def mutated_frame(draw) -> bytes:
    """A real frame, as is or mutated: byte edits, truncation, splice with another frame,
    inserted or deleted bytes; checksums made right again or not."""
    flow = draw(st.sampled_from(FLOWS))
    raw = bytearray(draw(st.sampled_from(flow)))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["edit", "edit", "truncate", "splice", "insert", "delete"]))
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        if op == "edit":
            raw[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del raw[i:]
        elif op == "splice":
            other = draw(st.sampled_from(ALL_FRAMES))
            raw[i:] = other[draw(st.integers(0, len(other))):]
        elif op == "insert":
            raw[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[i:i + draw(st.integers(1, 8))]
    if draw(st.booleans()):
        fix_checksums(raw)
    return bytes(raw)


# one step: a frame (a whole conversation in order, one frame of it mutated, or random bytes),
# how far time moves on, and now and then a tick
TRIGGERS = [b"cmd.exe", b"LOGIN", b"DELE", b"HTTP", b"reject-me", b"BULK", b"evil-split", b"/etc/passwd", b"ok"]
payloads = st.one_of(st.just(b""), st.binary(max_size=40), st.sampled_from(TRIGGERS),
                     st.builds(lambda b, n: b * n, st.sampled_from([b"A", b"GET ", b"evil-"]), st.integers(1, 700)))


@st.composite
def tcp_segment(draw) -> bytes:
    """A well-formed segment of one of the sessions, with the sequence and acknowledgment
    numbers near the stream (or anywhere), any flags, window and payload: what the
    stream stage's bookkeeping has to survive."""
    to_server = draw(st.booleans())
    base = 1000 if to_server else 5000
    peer = 5000 if to_server else 1000
    near = st.integers(-3000, 9000)
    seq = base + draw(st.one_of(near, st.integers(0, MASK32)))
    ack = peer + draw(st.one_of(near, st.integers(0, MASK32)))
    flags = draw(st.one_of(st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x19, 0x04, 0x14, 0x01]),
                           st.integers(0, 255)))
    return tcp_frame(draw(st.sampled_from(SESSION_PORTS)), to_server, seq, ack, flags,
                     draw(st.sampled_from([0, 1, 512, 65535])), draw(payloads),
                     draw(st.one_of(st.none(), st.integers(0, 20))))


@st.composite
def fragment(draw) -> bytes:
    """A fragment of one of a few datagrams: offsets that overlap, leave holes, run past
    64 KiB; more than the trackers and the held-fragment budget allow."""
    return frag_frame(draw(st.booleans()), draw(st.integers(1, 5)),
                      draw(st.one_of(st.integers(0, 12), st.integers(0, 0x1FFF))),
                      draw(st.booleans()), draw(st.binary(min_size=0, max_size=48)))


frame_step = st.one_of(
    st.tuples(st.just("flow"), st.integers(0, len(FLOWS) - 1)),
    st.tuples(st.just("frame"), mutated_frame()),
    st.tuples(st.just("frame"), tcp_segment()),
    st.tuples(st.just("frame"), fragment()),
    st.tuples(st.just("frame"), st.binary(max_size=120)),
    st.tuples(st.just("tick"), st.floats(0, 120, allow_nan=False)),
)


def run_sequence(config: int, steps, linktype: int = 1) -> Engine:
    e = fresh(config)
    ts = 1_000.0
    n = 0
    for i, (kind, arg) in enumerate(steps):
        if kind == "tick":
            ts += arg
            e.tick(ts)
            check_bounds(e)
            continue
        frames = FLOWS[arg] if kind == "flow" else [arg]
        for frame in frames:
            n += 1
            ts += 0.01
            meta = FrameMeta(ts=ts, iface=("eth0", "eth1")[i & 1], vlan=META_VLANS[i % 3], pcap_cnt=n,
                             linktype=linktype, checksum=CSUMS[n % 3])
            r = e.inspect(frame, meta)
            check_result(r, frame, e.settings.mode)
            check_bounds(e)
    check_drained(e, ts)
    return e


def test_rules_all_load():
    e = fresh(0)
    assert e.stats()["rules.loaded"] == len(RULES)


def test_real_traffic_alone_reaches_the_caps_and_drains():
    """The unmutated conversations, every one in turn, in each configuration: the caps are
    reached (so the fuzz tests below exercise eviction) and the tables drain."""
    for config in range(len(CONFIGS)):
        e = run_sequence(config, [("flow", i) for i in range(len(FLOWS))])
        st_ = e.stats()
        name = CONFIGS[config][0]
        assert st_["flow.evicted"] > 0 and st_["alerts"] > 0 and st_["defrag.reassembled"] >= 1, name
        assert st_.get("stream.reassembly_memcap_drop", 0) > 0 or st_.get("stream.memcap_drop", 0) > 0, name
        assert st_["thresholds.evicted"] > 0, name


@settings(max_examples=150 * SCALE, **FUZZ)
@given(st.integers(0, len(CONFIGS) - 1), st.lists(frame_step, min_size=1, max_size=25))
def test_mutated_sequences(config, steps):
    run_sequence(config, steps)


@settings(max_examples=300 * SCALE, **FUZZ)
@given(st.integers(0, len(CONFIGS) - 1), st.lists(st.binary(max_size=200), min_size=1, max_size=8),
       st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276]))
def test_raw_bytes_of_every_link_type(config, frames, linktype):
    run_sequence(config, [("frame", f) for f in frames], linktype)


@settings(max_examples=200 * SCALE, **FUZZ)
@given(st.integers(0, len(CONFIGS) - 1), st.lists(mutated_frame(), min_size=1, max_size=12))
def test_mutated_frames_after_every_conversation(config, frames):
    """State first (every conversation, every cap reached), then the mutated frames."""
    run_sequence(config, [("flow", i) for i in range(len(FLOWS))] + [("frame", f) for f in frames])


HANDSHAKES = [("frame", tcp_frame(p, True, 1000, 0, 0x02, 65535, b"", 2)) for p in SESSION_PORTS[:4]] + \
             [("frame", tcp_frame(p, False, 5000, 1001, 0x12, 65535, b"", 1)) for p in SESSION_PORTS[:4]] + \
             [("frame", tcp_frame(p, True, 1001, 5001, 0x10, 65535, b"")) for p in SESSION_PORTS[:4]]


@settings(max_examples=200 * SCALE, **FUZZ)
@given(st.integers(0, len(CONFIGS) - 1), st.lists(tcp_segment(), min_size=1, max_size=30))
def test_tcp_segments_on_open_sessions(config, segments):
    """Handshakes first (more sessions than stream.memcap allows), then any segments."""
    run_sequence(config, HANDSHAKES + [("frame", f) for f in segments])


@settings(max_examples=200 * SCALE, **FUZZ)
@given(st.integers(0, len(CONFIGS) - 1),
       st.lists(st.one_of(st.tuples(st.just("frame"), fragment()),
                          st.tuples(st.just("tick"), st.floats(0, 8, allow_nan=False))), min_size=1, max_size=30))
def test_fragments(config, steps):
    run_sequence(config, steps)
