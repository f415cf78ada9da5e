"""TCP stream scenario families for the differential fixtures.

make_differential.py turns every `Family` here into one pcap, one rules file
and one config (differential/stream_<what>.{pcap,rules,yaml}) and into one
scenario per mode, `stream_<what>_ips` and `stream_<what>_ids`: Suricata runs
with --simulate-ips (inline stream) or without it (IDS stream), our replay
with `--mode ips` or `--mode ids`, both on the same files.

A family is a list of cases; each case is one TCP flow with its own server
port and its own rules (`-> any PORT`, sids CASE_BASE + k), so that every
alert names its case, also the end-of-flow alerts of IDS mode, which carry
no pcap_cnt (they are recorded as pcap_cnt 0).  Flows follow each other in
time, never interleave, and (but for the midstream ones) start with a full
handshake.  Crafting is deterministic: fixed ISNs, IP ids, timestamps; the
random family draws from a seeded generator.

The scenarios reuse the experiments behind /work/notes/suricata-stream-facts.md
(/work/notes/stream-experiments/run.py); the comments give the section.
Only this module's own crafting is used: it does not import make_differential
(which imports it), it only calls `cap.add(pkt, dt)` on the Capture it gets.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

CLI, SRV = "198.51.100.10", "203.0.113.20"
CMAC, SMAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
DEPTH_DEFAULT = 1048576          # stream.reassembly.depth unless a family sets it (our default, suricata.yaml's 1mb)


# ---------------------------------------------------------------- crafting
class Session:
    """One TCP session addressed by stream offsets.

    Client offset 0 is the first byte after the client's SYN (seq cisn+1), the
    same for the server.  c_data(off, data) sends client data at that offset;
    s_ack(off) is a pure server ACK of client bytes [0, off).  Nothing is
    implicit: the caller decides every seq/ack."""

    def __init__(self, cap, sport: int, dport: int, cli=CLI, srv=SRV, cisn=1000, sisn=5000,
                 win=65535, wscale: int | None = 7):
        self.cap, self.sport, self.dport, self.cli, self.srv = cap, sport, dport, cli, srv
        self.cisn, self.sisn, self.win, self.wscale = cisn, sisn, win, wscale
        self.c_next = 0      # highest client offset sent
        self.s_next = 0
        self.c_acked = 0     # what the client acknowledges of the server stream
        self.ipid = 0

    def pkt(self, to_server: bool, flags: str, seq: int, ack: int, data: bytes = b"", opts=None):
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        self.ipid += 1
        if to_server:
            p = (Ether(src=CMAC, dst=SMAC) / IP(src=self.cli, dst=self.srv, id=self.ipid, ttl=64)
                 / TCP(sport=self.sport, dport=self.dport))
        else:
            p = (Ether(src=SMAC, dst=CMAC) / IP(src=self.srv, dst=self.cli, id=self.ipid, ttl=64)
                 / TCP(sport=self.dport, dport=self.sport))
        t = p["TCP"]
        t.flags = flags
        t.seq = seq & 0xFFFFFFFF
        t.ack = (ack & 0xFFFFFFFF) if "A" in flags else 0
        t.window = self.win
        if opts:
            t.options = opts
        return p / data if data else p

    def raw(self, to_server: bool, flags: str, seq: int, ack: int, data: bytes = b"", opts=None) -> int:
        return self.cap.add(self.pkt(to_server, flags, seq, ack, data, opts))

    def cseq(self, off: int) -> int:
        return self.cisn + 1 + off

    def sseq(self, off: int) -> int:
        return self.sisn + 1 + off

    def handshake(self) -> "Session":
        opts = [("WScale", self.wscale)] if self.wscale is not None else None
        self.raw(True, "S", self.cisn, 0, opts=opts)
        self.raw(False, "SA", self.sisn, self.cisn + 1, opts=opts)
        self.raw(True, "A", self.cisn + 1, self.sisn + 1)
        return self

    def c_data(self, off: int, data: bytes, flags="PA", ack_off: int | None = None) -> int:
        n = self.raw(True, flags, self.cseq(off), self.sseq(self.c_acked if ack_off is None else ack_off), data)
        self.c_next = max(self.c_next, off + len(data))
        return n

    def s_data(self, off: int, data: bytes, flags="PA", ack_off: int | None = None) -> int:
        n = self.raw(False, flags, self.sseq(off), self.cseq(self.c_next if ack_off is None else ack_off), data)
        self.s_next = max(self.s_next, off + len(data))
        return n

    def s_ack(self, off: int | None = None) -> int:
        return self.raw(False, "A", self.sseq(self.s_next), self.cseq(self.c_next if off is None else off))

    def c_ack(self, off: int | None = None) -> int:
        self.c_acked = self.s_next if off is None else off
        return self.raw(True, "A", self.cseq(self.c_next), self.sseq(self.c_acked))

    def close(self) -> None:
        """Client FIN, server FIN-ACK, client ACK."""
        self.raw(True, "FA", self.cseq(self.c_next), self.sseq(self.s_next))
        self.raw(False, "FA", self.sseq(self.s_next), self.cseq(self.c_next) + 1)
        self.raw(True, "A", self.cseq(self.c_next) + 1, self.sseq(self.s_next) + 1)


# ---------------------------------------------------------------- families
@dataclass
class Case:
    label: str
    build: Callable[[Session], None]
    rules: list            # (k, action, proto, direction, options, msg): sid = case base + k
    session: dict = field(default_factory=dict)    # Session keyword arguments (isn, wscale)


@dataclass
class Family:
    name: str              # stream_<what>: files stream_<what>.*, scenarios stream_<what>_<mode>
    covers: str            # what it covers (README)
    sid_base: int
    cases: list = field(default_factory=list)
    stream: dict = field(default_factory=dict)      # stream settings over STREAM_BASE (both engines)
    modes: tuple = ("ips", "ids")
    raw_rules: str = ""    # rules not tied to a case (random family)
    raw_build: Callable | None = None

    def add(self, label, build, rules, **session) -> None:
        self.cases.append(Case(label, build, rules, session))

    def port(self, i: int) -> int:
        return 7001 + i

    def case_sid(self, i: int) -> int:
        return self.sid_base + 100 * (i + 1)

    @property
    def rules(self) -> str:
        out = []
        for i, c in enumerate(self.cases):
            port, base = self.port(i), self.case_sid(i)
            for k, action, proto, direction, opts, msg in c.rules:
                hdr = {"to_server": f"any any -> any {port}", "to_client": f"any {port} -> any any",
                       "both": f"any any <> any {port}"}[direction]
                out.append(f'{action} {proto} {hdr} (msg:"{c.label}: {msg}"; {opts} sid:{base + k};)')
        return "\n".join(out) + "\n" + self.raw_rules

    def build(self, cap) -> None:
        for i, c in enumerate(self.cases):
            c.build(Session(cap, 40001 + i, self.port(i), **c.session))
        if self.raw_build is not None:
            self.raw_build(cap)


def R(k, opts, msg, action="alert", proto="tcp", direction="to_server"):
    return (k, action, proto, direction, opts, msg)


FORBIDDEN = R(1, 'content:"forbidden";', "forbidden")
DROP_FORBIDDEN = R(2, 'content:"forbidden";', "drop forbidden", action="drop")


# ------------------------------------------------- split content (facts §1, §6)
SPLITS = {
    "whole": [b"forbidden"],
    "split2": [b"forbi", b"dden"],
    "split3": [b"for", b"bid", b"den"],
    "split8": [b"fo", b"r", b"b", b"i", b"d", b"d", b"e", b"n"],
}


def b_split(s: Session, parts, ack: bool) -> None:
    """ack: the server ACKs every client segment, answers, three acked 10-byte
    tails follow, FIN close.  noack: the server is silent after the handshake,
    three tails, no FIN (IDS inspects only at the flow's end)."""
    s.handshake()
    off = 0
    for p in parts:
        s.c_data(off, p)
        off += len(p)
        if ack:
            s.s_ack(off)
    if ack:
        s.s_data(0, b"server says hello")
        s.c_ack()
    for i in range(3):
        d = b"tail-%d----" % i
        s.c_data(off, d)
        off += len(d)
        if ack:
            s.s_ack(off)
    if ack:
        s.close()


SPLIT_ALERT_RULES = [FORBIDDEN, R(3, 'content:"tail-";', "tail"),
                     R(4, 'content:"says hello";', "server hello", direction="to_client")]
SPLIT_DROP_RULES = [DROP_FORBIDDEN, R(3, 'content:"tail-";', "tail"),
                    R(4, 'content:"says hello";', "server hello", direction="to_client"),
                    R(5, "flags:+F;", "any FIN", direction="both")]


def f_split() -> Family:
    f = Family("stream_split", "content split over 1, 2, 3 and 8 segments, with and without server ACKs, "
               "later tails and a FIN close; drop variants (the flow drop, detection stops); "
               "a split over the sequence number wrap", 110000)
    for name, parts in SPLITS.items():
        for ack in (True, False):
            a = "ack" if ack else "noack"
            f.add(f"{name}_{a}", lambda s, p=parts, k=ack: b_split(s, p, k), SPLIT_ALERT_RULES)
            f.add(f"{name}_{a}_drop", lambda s, p=parts, k=ack: b_split(s, p, k), SPLIT_DROP_RULES)
    f.add("split3_ack_seqwrap", lambda s: b_split(s, SPLITS["split3"], True), SPLIT_ALERT_RULES,
          cisn=0xFFFFFFF8, sisn=0xFFFFFFFE)
    return f


# ------------------------------------------------- out of order (facts §2)
def b_ooo(s: Session, order, parts, ack: bool) -> None:
    """The parts of the content arrive in `order`; with ack, the server sends a
    (duplicate) ACK of the contiguous data after each, then everything
    closes."""
    s.handshake()
    offs = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
    have = set()
    for i in order:
        s.c_data(offs[i], parts[i])
        have.add(i)
        if ack:
            contiguous = 0
            for j in range(len(parts)):
                if j not in have:
                    break
                contiguous = offs[j] + len(parts[j])
            s.s_ack(contiguous)
    end = sum(len(p) for p in parts)
    s.c_data(end, b"tail------")
    if ack:
        s.s_ack(end + 10)
        s.close()


def b_late_fill(s: Session, ack: bool) -> None:
    """'dden' at 5 and two tails arrive; the hole [0,5) 'forbi' comes last."""
    s.handshake()
    for off, d in ((5, b"dden"), (9, b"tail-0----"), (19, b"tail-1----")):
        s.c_data(off, d)
        if ack:
            s.s_ack(0)
    s.c_data(0, b"forbi")
    if ack:
        s.s_ack(29)
    s.c_data(29, b"tail-2----")
    if ack:
        s.s_ack(39)
        s.close()


def b_gap(s: Session, ack: bool) -> None:
    """'forbidden' at 0, then data at 19 (hole 9..19), the hole filled, more data at 29;
    with ack the server acknowledges what it has contiguously (9, 9, 29, 39)."""
    s.handshake()
    for off, d, acked in ((0, b"forbidden", 9), (19, b"tail------", 9), (9, b"middle----", 29),
                          (29, b"end-------", 39)):
        s.c_data(off, d)
        if ack:
            s.s_ack(acked)
    if ack:
        s.close()


OOO_RULES = [FORBIDDEN, R(3, 'content:"dden";', "dden alone")]


def f_ooo() -> Family:
    f = Family("stream_ooo", "out-of-order segments (2 and 3 parts, with and without ACKs), a hole "
               "filled after later data, a gap then data after it; drop variants", 120000)
    for ack in (True, False):
        a = "ack" if ack else "noack"
        f.add(f"ooo2_{a}", lambda s, k=ack: b_ooo(s, [1, 0], [b"forbi", b"dden"], k), OOO_RULES)
        f.add(f"ooo2_{a}_drop", lambda s, k=ack: b_ooo(s, [1, 0], [b"forbi", b"dden"], k),
              [DROP_FORBIDDEN, R(3, 'content:"dden";', "dden alone"), R(4, 'content:"tail";', "tail")])
        f.add(f"ooo3_{a}", lambda s, k=ack: b_ooo(s, [2, 0, 1], [b"for", b"bid", b"den"], k), OOO_RULES)
        f.add(f"ooo3rev_{a}", lambda s, k=ack: b_ooo(s, [2, 1, 0], [b"for", b"bid", b"den"], k), OOO_RULES)
        f.add(f"late_fill_{a}", lambda s, k=ack: b_late_fill(s, k),
              OOO_RULES + [R(4, 'content:"tail-1";', "tail-1"), R(5, 'content:"forbiddentail";', "across")])
        f.add(f"gap_{a}", lambda s, k=ack: b_gap(s, k),
              [FORBIDDEN, R(4, 'content:"middle";', "middle"), R(5, 'content:"end---";', "end"),
               R(6, 'content:"dentail";', "across the hole")])
    return f


# ------------------------------------------------- identical retransmission (facts §3)
RETX_RULES = [
    FORBIDDEN,
    R(5, "stream-event:pkt_retransmission;", "ev retransmission"),
    R(6, "stream-event:pkt_spurious_retransmission;", "ev spurious retransmission"),
    R(7, "stream-event:est_pkt_before_last_ack;", "ev est_pkt_before_last_ack"),
    R(9, "stream-event:reassembly_overlap_different_data;", "ev overlap diff data"),
]


def b_retx(s: Session, variant: str) -> None:
    s.handshake()
    if variant == "before_ack":          # retransmitted before the ACK
        s.c_data(0, b"forbidden")
        s.c_data(0, b"forbidden")
        s.s_ack(9)
    elif variant == "after_ack":         # after the ACK: seq+len == last_ack
        s.c_data(0, b"forbidden")
        s.s_ack(9)
        s.c_data(0, b"forbidden")
        s.s_ack(9)
    elif variant == "after_ack_more":    # wholly before last_ack: seq+len < last_ack
        s.c_data(0, b"forbidden")
        s.c_data(9, b"more-data-")
        s.s_ack(19)
        s.c_data(0, b"forbidden")
        s.s_ack(19)
    elif variant == "before_ack_more":   # not acked, not the tail
        s.c_data(0, b"forbidden")
        s.c_data(9, b"more-data-")
        s.c_data(0, b"forbidden")
        s.s_ack(19)
    elif variant == "split_retx":        # the second half retransmitted after the ACK
        s.c_data(0, b"forbi")
        s.c_data(5, b"dden")
        s.s_ack(9)
        s.c_data(5, b"dden")
        s.s_ack(9)
    elif variant.startswith("srv_fin_"):    # the server's last data + FIN sent again while closing
        s.c_data(0, b"hello")
        s.s_ack(5)
        s.s_data(0, b"x" * 100)
        fin = (False, "FPA", s.sseq(100), s.cseq(5), b"forbidden" + b"y" * 59)
        cack = (True, "A", s.cseq(5), s.sseq(169))
        cfin = (True, "FA", s.cseq(5), s.sseq(169))
        lack = (False, "A", s.sseq(169), s.cseq(6))
        order = {"srv_fin_timewait": [fin, cack, cfin, fin, lack],    # after the client's ACK and FIN
                 "srv_fin_finwait2": [fin, cack, fin, cfin, lack],    # after its ACK, before its FIN
                 "srv_fin_finwait1": [fin, fin, cack, cfin, lack],    # before its ACK
                 "srv_data_timewait": [fin, cack, cfin, (False, "PA", s.sseq(0), s.cseq(5), b"x" * 100), lack]}
        for p in order[variant]:
            s.raw(*p)
        return
    elif variant == "after_fin":         # a retransmission once the client sent FIN
        s.c_data(0, b"forbidden")
        s.s_ack(9)
        s.raw(True, "FA", s.cseq(9), s.sseq(0))
        s.c_data(0, b"forbidden")
        s.raw(False, "FA", s.sseq(0), s.cseq(10))
        s.raw(True, "A", s.cseq(10), s.sseq(1))
        return
    s.c_data(s.c_next, b"tail------")
    s.s_ack(s.c_next)
    s.close()


def f_retx() -> Family:
    f = Family("stream_retx", "retransmissions of identical data: before the ACK, after it (right edge == "
               "last_ack), wholly before last_ack, before the ACK but not the tail, half of a split, after "
               "the FIN; the server's last data + FIN sent again in FIN_WAIT1/2 and TIME_WAIT (forwarded); a "
               "drop variant; retransmission stream events", 130000)
    for v in ("before_ack", "after_ack", "after_ack_more", "before_ack_more", "split_retx", "after_fin",
              "srv_fin_timewait", "srv_fin_finwait2", "srv_fin_finwait1", "srv_data_timewait"):
        f.add(v, lambda s, v=v: b_retx(s, v), RETX_RULES)
    f.add("before_ack_drop", lambda s: b_retx(s, "before_ack"), [DROP_FORBIDDEN] + RETX_RULES[1:])
    f.add("after_ack_more_drop", lambda s: b_retx(s, "after_ack_more"),
          [R(2, 'content:"forbidden"; content:"more"; distance:0;', "drop forbidden..more", action="drop"),
           R(3, 'content:"forbidden";', "forbidden")] + RETX_RULES[1:])
    return f


# ------------------------------------------------- overlap with different data (facts §4)
def b_overlap(s: Session, variant: str) -> None:
    s.handshake()
    if variant == "same":            # same seq and length, one byte differs
        s.c_data(0, b"forbXdden")
        s.c_data(0, b"forbidden")
    elif variant == "longer":        # same start, the new one longer
        s.c_data(0, b"forbX")
        s.c_data(0, b"forbidden")
    elif variant == "before":        # the new one starts before the old one
        s.c_data(4, b"Xdden")
        s.c_data(0, b"forbidden")
    elif variant == "inside_longer":  # starts inside the old one, ends past it
        s.c_data(0, b"forbX")
        s.c_data(2, b"rbidden")
    elif variant == "after_ack":     # 'same', the first copy acked
        s.c_data(0, b"forbXdden")
        s.s_ack(9)
        s.c_data(0, b"forbidden")
    elif variant == "middle":        # rewrites the middle of acked-but-buffered data
        s.c_data(0, b"forbXdden-tail")
        s.c_data(4, b"i")
    s.s_ack(s.c_next)
    s.c_data(s.c_next, b"tail------")
    s.s_ack(s.c_next)
    s.close()


OVERLAP_RULES = [FORBIDDEN, R(3, 'content:"forbXdden";', "forbXdden"),
                 R(9, "stream-event:reassembly_overlap_different_data;", "ev overlap diff data")]


def f_overlap() -> Family:
    f = Family("stream_overlap", "overlapping retransmissions with different data: same seq and length, "
               "same start and longer, starting before, starting inside and longer, after the ACK, one byte "
               "in the middle; reassembly_overlap_different_data; drop variants (a drop rule for the "
               "new data)", 140000)
    for v in ("same", "longer", "before", "inside_longer", "after_ack", "middle"):
        f.add(v, lambda s, v=v: b_overlap(s, v), OVERLAP_RULES)
    for v in ("same", "longer", "before"):
        f.add(f"{v}_drop", lambda s, v=v: b_overlap(s, v), [DROP_FORBIDDEN] + OVERLAP_RULES[1:])
    return f


# ------------------------------------------------- reassembly depth (facts §5)
DEPTH_RULES = [
    R(1, 'content:"AAAAAAAA";', "A before depth"),
    R(2, 'content:"BBBBBBBB";', "B across depth"),
    R(3, 'content:"CCCCCCCC";', "C after depth, own packet"),
    R(4, 'content:"DDDDDDDD";', "D after depth, split"),
    R(5, 'content:"EEEEEEEE";', "E straddling the depth in one packet"),
    R(6, "stream-event:reassembly_depth_reached;", "ev depth reached"),
]

DEPTH_LAYOUTS = {
    # seg [0,50) A@10, [50,96), [96,110) B@96 (crosses 100), [110,130) C, DDDD + DDDD, tail
    "a": [(0, b"." * 10 + b"AAAAAAAA" + b"." * 32), (50, b"." * 46), (96, b"BBBBBBBB" + b"......"),
          (110, b"..CCCCCCCC.........."), (130, b"DDDD"), (134, b"DDDD"), (138, b"..........")],
    # [0,96), [96,120) with E@98..106, C
    "b": [(0, b"." * 96), (96, b"..EEEEEEEE" + b"." * 14), (120, b"..CCCCCCCC..")],
    # [0,90), [90,110) with A@90..98 (content before the depth, packet across it), C
    "c": [(0, b"." * 90), (90, b"AAAAAAAA" + b"." * 12), (110, b"CCCCCCCC")],
    # [0,90), [90,100) A ends exactly at the depth, [100,110) B, [110,118) C
    "exact": [(0, b"." * 90), (90, b"AAAAAAAA.."), (100, b"BBBBBBBB.."), (110, b"CCCCCCCC")],
}


def b_depth(s: Session, layout: str, ack: bool) -> None:
    s.handshake()
    for off, d in DEPTH_LAYOUTS[layout]:
        s.c_data(off, d)
        if ack:
            s.s_ack(s.c_next)
    if ack:
        s.close()


def f_depth100() -> Family:
    f = Family("stream_depth100", "stream.reassembly.depth 100: content before, across and after the depth, "
               "a packet crossing it, content split after it; reassembly_depth_reached; with and without "
               "ACKs; a drop rule after the depth (drops the packet, not the flow)", 150000,
               stream={"reassembly": {"depth": 100}})
    for lay in DEPTH_LAYOUTS:
        for ack in (True, False):
            f.add(f"{lay}_{'ack' if ack else 'noack'}", lambda s, l=lay, k=ack: b_depth(s, l, k), DEPTH_RULES)
    f.add("a_ack_drop", lambda s: b_depth(s, "a", True),
          DEPTH_RULES[:2] + [R(3, 'content:"CCCCCCCC";', "drop C after depth", action="drop")] + DEPTH_RULES[3:])
    return f


def b_long(s: Session, ack: bool, n: int = 40) -> None:
    """n 100-byte client segments: 'forbidden' at 0, BEFOREDEPTH at 2950,
    ACROSSDEPTH at 2995..3006 (split by the packet boundary at 3000, the
    depth), INSIDECROSS at 3030 (in the first packet past the depth), AFTER at
    3500, SPLITAFTER at 3595..3605 (split between two packets after the depth)."""
    data = bytearray(b"." * (100 * n))
    for off, word in ((0, b"forbidden"), (2950, b"BEFOREDEPTH"), (2995, b"ACROSSDEPTH"),
                      (3030, b"INSIDECROSS"), (3500, b"AFTERDEPTH"), (3595, b"SPLITAFTER")):
        data[off:off + len(word)] = word
    s.handshake()
    for off in range(0, len(data), 100):
        s.c_data(off, bytes(data[off:off + 100]))
        if ack:
            s.s_ack(s.c_next)
    if ack:
        s.close()


LONG_RULES = [FORBIDDEN] + [R(k, f'content:"{w}";', w) for k, w in (
    (2, "BEFOREDEPTH"), (3, "ACROSSDEPTH"), (4, "INSIDECROSS"), (5, "AFTERDEPTH"), (6, "SPLITAFTER"))] + [
    R(9, "stream-event:reassembly_depth_reached;", "ev depth reached")]


def f_depth3000() -> Family:
    f = Family("stream_depth3000", "stream.reassembly.depth 3000: a 4000-byte transfer in 100-byte segments, "
               "content at 0 and just before the depth, split by the depth boundary, inside the crossing "
               "packet, after the depth whole and split; with and without ACKs", 160000,
               stream={"reassembly": {"depth": 3000}})
    f.add("long_ack", lambda s: b_long(s, True), LONG_RULES)
    f.add("long_noack", lambda s: b_long(s, False), LONG_RULES)
    return f


# ------------------------------------------------- inline window (facts §13)
def b_window(s: Session, sizes, content_off=0, ack=False, close=False, content=b"forbidden", to_client=False):
    """Segments of `sizes` filled with '.', `content` at stream offset content_off."""
    total = sum(sizes)
    data = bytearray(b"." * total)
    data[content_off:content_off + len(content)] = content
    s.handshake()
    if to_client:
        s.c_data(0, b"GIVE")
        s.s_ack(4)
    off = 0
    for sz in sizes:
        if to_client:
            s.s_data(off, bytes(data[off:off + sz]))
        else:
            s.c_data(off, bytes(data[off:off + sz]))
        off += sz
        if ack:
            if to_client:
                s.c_ack(off)
            else:
                s.s_ack(off)
    if close:
        s.close()


def b_middle_retx(s: Session, retx_off: int) -> None:
    data = bytearray(b"." * 3000)
    data[100:109] = b"forbidden"
    s.handshake()
    for off in range(0, 3000, 100):
        s.c_data(off, bytes(data[off:off + 100]))
    s.c_data(retx_off, bytes(data[retx_off:retx_off + 100]))


WINDOW_RULES = [FORBIDDEN]


def f_window() -> Family:
    f = Family("stream_window", "inline window with the default 2560-byte chunk: content at 0 then 100-byte "
               "and 1000-byte segments (re-alerts while the window holds it), the exact window edge "
               "(right edge 2560/2561), payloads over 2/3 of the chunk (1800) and under (1700), a "
               "retransmission in the middle of 3000 bytes, depth:20 relative to the window start", 170000)
    f.add("100x30_noack", lambda s: b_window(s, [100] * 30), WINDOW_RULES)
    f.add("1000x6_noack", lambda s: b_window(s, [1000] * 6), WINDOW_RULES)
    f.add("1000x6_ack", lambda s: b_window(s, [1000] * 6, ack=True, close=True), WINDOW_RULES)
    f.add("edge_2560", lambda s: b_window(s, [9] + [100] * 25 + [51, 1, 1]), WINDOW_RULES)
    f.add("bigpkt_1800", lambda s: b_window(s, [9, 800, 1800, 100]), WINDOW_RULES)
    f.add("bigpkt_1700", lambda s: b_window(s, [9, 900, 1700, 100]), WINDOW_RULES)
    f.add("middle_retx_1300", lambda s: b_middle_retx(s, 1300), WINDOW_RULES)
    f.add("middle_retx_1400", lambda s: b_middle_retx(s, 1400), WINDOW_RULES)
    f.add("depth_window", lambda s: b_window(s, [100] * 34, content_off=645),
          [FORBIDDEN, R(4, 'content:"forbidden"; depth:20;', "forbidden depth 20"),
           R(5, 'content:"forbidden"; offset:40; depth:60;', "forbidden offset 40 depth 60")])
    return f


def f_chunk1000() -> Family:
    f = Family("stream_chunk1000", "toserver and toclient chunk size 1000: the window in both directions, "
               "its edge (right edge 1000/1001), payloads over 2/3 of the chunk (700) and under (600), IDS "
               "flushes every 1000 acked bytes and misses content straddling two flushes", 180000,
               stream={"reassembly": {"toserver-chunk-size": 1000, "toclient-chunk-size": 1000}})
    f.add("100x15_noack", lambda s: b_window(s, [100] * 15), WINDOW_RULES)
    f.add("toclient_100x15", lambda s: b_window(s, [100] * 15, to_client=True),
          [R(1, 'content:"forbidden";', "forbidden to client", direction="to_client")])
    f.add("toclient_100x15_ack", lambda s: b_window(s, [100] * 15, ack=True, to_client=True, close=True),
          [R(1, 'content:"forbidden";', "forbidden to client", direction="to_client")])
    f.add("edge_1000", lambda s: b_window(s, [9] + [100] * 9 + [91, 1, 1]), WINDOW_RULES)
    f.add("bigpkt_700", lambda s: b_window(s, [9, 300, 700, 100]), WINDOW_RULES)
    f.add("bigpkt_600", lambda s: b_window(s, [9, 400, 600, 100]), WINDOW_RULES)
    f.add("ids_straddle", lambda s: b_window(s, [100] * 22, content_off=995, ack=True, close=True), WINDOW_RULES)
    f.add("ids_nostraddle", lambda s: b_window(s, [100] * 22, content_off=985, ack=True, close=True), WINDOW_RULES)
    f.add("ids_second_chunk", lambda s: b_window(s, [100] * 22, content_off=1500, ack=True, close=True),
          WINDOW_RULES)
    return f


# ------------------------------------------------- rule kinds (facts §6, §7, §12)
KIND_RULES = [
    FORBIDDEN,
    R(2, 'content:"forbidden"; depth:20;', "depth 20 (packet+stream)"),
    R(3, 'content:"forbidden"; offset:0;', "offset 0 (packet+stream)"),
    R(4, 'content:"forbidden"; dsize:>0;', "dsize (packet only)"),
    R(5, 'content:"forbidden"; flags:PA;', "flags PA (packet only)"),
    R(6, 'flow:only_stream; content:"forbidden";', "only_stream"),
    R(7, 'flow:no_stream; content:"forbidden";', "no_stream"),
    R(8, 'content:"forbidden";', "tcp-pkt", proto="tcp-pkt"),
    R(9, 'content:"forbidden";', "tcp-stream", proto="tcp-stream"),
    R(10, 'content:"forbidden"; depth:20;', "tcp-stream depth 20", proto="tcp-stream"),
    R(11, 'content:"forbidden"; stream_size:client,>,0;', "stream_size (packet+stream)"),
    R(12, 'flow:established,to_server; content:"forbidden";', "flow established"),
]
KIND_EVENTS = [
    R(21, "stream-event:est_packet_out_of_window;", "ev out of window"),
    R(22, "stream-event:est_pkt_before_last_ack;", "ev before last ack"),
    R(23, "stream-event:est_invalid_ack;", "ev invalid ack"),
]


def b_not_in_stream(s: Session, variant: str) -> None:
    if variant == "syn_data":
        s.raw(True, "S", s.cisn, 0, b"forbidden", opts=[("WScale", 7)])
        s.raw(False, "SA", s.sisn, s.cisn + 1, opts=[("WScale", 7)])
        s.raw(True, "A", s.cseq(0), s.sseq(0))
        s.c_data(0, b"hello")
        s.s_ack(5)
        s.close()
        return
    s.handshake()
    s.c_data(0, b"hello")
    s.s_ack(5)
    if variant == "out_of_window":
        s.raw(True, "PA", s.cseq(200000 * 128), s.sseq(0), b"forbidden")
    elif variant == "ack_ahead":      # acks server data never sent, but inside the (scaled) window
        s.raw(True, "PA", s.cseq(5), s.sseq(100000), b"forbidden")
        s.c_next = 14
        s.s_ack(14)
    elif variant == "invalid_ack":    # acks beyond what the server's window allows (65535 << 7)
        s.raw(True, "PA", s.cseq(5), s.sseq(20_000_000), b"forbidden")
        s.c_next = 14
        s.s_ack(14)
    elif variant == "before_last_ack":
        s.c_data(5, b"forbidden")
        s.c_data(14, b"more-data-")
        s.s_ack(24)
        s.c_data(5, b"forbidden")
    s.c_data(s.c_next, b"world")
    s.s_ack(s.c_next)
    s.close()


def b_kind_flow(s: Session, parts) -> None:
    """The content in `parts`, each acked, then a tail, FIN close."""
    s.handshake()
    off = 0
    for p in parts:
        s.c_data(off, p)
        off += len(p)
        s.s_ack(off)
    s.c_data(off, b"tail------")
    s.s_ack(off + 10)
    s.close()


def b_kind_noack(s: Session, parts) -> None:
    s.handshake()
    off = 0
    for p in parts:
        s.c_data(off, p)
        off += len(p)
    s.c_data(off, b"tail------")


def f_kinds() -> Family:
    f = Family("stream_kinds", "the same content as a plain stream rule, with depth/offset and stream_size "
               "(packet+stream), with dsize/flags (packet only), tcp-pkt, tcp-stream, flow:only_stream, "
               "flow:no_stream, flow:established, on whole and split payloads (acked, and never acked), and "
               "on packets not taken into the stream (SYN with data, out of window, an ACK beyond the "
               "window, wholly before last_ack); drop rules on such packets drop only that packet; an ACK "
               "of unsent data inside the window (taken in)", 190000)
    f.add("whole_ack", lambda s: b_kind_flow(s, [b"forbidden"]), KIND_RULES)
    f.add("split2_ack", lambda s: b_kind_flow(s, [b"forbi", b"dden"]), KIND_RULES)
    f.add("whole_noack", lambda s: b_kind_noack(s, [b"forbidden"]), KIND_RULES)
    f.add("split3_noack", lambda s: b_kind_noack(s, [b"for", b"bid", b"den"]), KIND_RULES)
    for v in ("syn_data", "out_of_window", "invalid_ack", "ack_ahead", "before_last_ack"):
        f.add(v, lambda s, v=v: b_not_in_stream(s, v), KIND_RULES + KIND_EVENTS)
    for v in ("syn_data", "out_of_window", "invalid_ack", "ack_ahead"):
        f.add(f"{v}_drop", lambda s, v=v: b_not_in_stream(s, v),
              [DROP_FORBIDDEN, R(3, 'content:"world";', "world after the dropped packet")])
    return f


def b_rst_data(s: Session) -> None:
    s.handshake()
    s.c_data(0, b"hello")
    s.s_ack(5)
    s.raw(True, "RA", s.cseq(5), s.sseq(0), b"forbidden")


def f_rst_data() -> Family:
    f = Family("stream_rst_data", "an RST carrying the content (not taken into the stream, inspected "
               "alone; a drop rule drops only that packet); IPS only: Suricata's IDS misses it (the RST "
               "flushes the stream, and its prefilter then searches only the stream)", 200000,
               modes=("ips",))
    f.add("rst_data", b_rst_data, KIND_RULES + [R(24, "stream-event:rst_with_data;", "ev rst with data")])
    f.add("rst_data_drop", b_rst_data, [DROP_FORBIDDEN, R(24, "stream-event:rst_with_data;", "ev rst with data")])
    return f


# ------------------------------------------------- dsize on packets without payload (facts §8)
DSIZE_RULES = [
    R(1, "dsize:!9;", "dsize !9", direction="both"),
    R(2, "dsize:<5;", "dsize <5", direction="both"),
    R(3, "dsize:0;", "dsize 0", direction="both"),
    R(4, "dsize:>=9;", "dsize >=9", direction="both"),    # >=0 is refused by Suricata 7.0.10
    R(5, "dsize:<=3;", "dsize <=3", direction="both"),
    R(6, "dsize:0<>5;", "dsize 0<>5", direction="both"),
    R(7, "dsize:>0;", "dsize >0", direction="both"),
    R(8, "flow:established,to_server; dsize:!9;", "dsize !9 established to_server"),
    R(10, "dsize:=9;", "dsize =9", direction="both"),
]


def b_dsize(s: Session) -> None:
    s.handshake()
    s.c_data(0, b"forbidden")       # 9 bytes
    s.s_ack(9)
    s.c_data(9, b"abc")             # 3 bytes
    s.s_ack(12)
    s.s_data(0, b"hello")           # 5 bytes
    s.c_ack()
    s.close()


def b_dsize_fin(s: Session) -> None:
    s.handshake()
    s.c_data(0, b"forbidden")
    s.s_ack(9)
    s.close()


def f_dsize() -> Family:
    f = Family("stream_dsize", "dsize:!9, <5, 0, >=9, <=3, 0<>5, >0, =9 on SYN, SYN-ACK, pure ACKs, FINs "
               "and data packets; in a flow whose rule group has no stream content rule and in flows "
               "that have one (an empty packet carrying an IDS stream flush)", 210000)
    f.add("no_content_rule", b_dsize, DSIZE_RULES)
    forbidden = R(11, 'content:"forbidden";', "forbidden")
    f.add("with_content_rule", b_dsize, DSIZE_RULES + [forbidden])
    f.add("fin_flush", b_dsize_fin, DSIZE_RULES + [forbidden])
    return f


# ------------------------------------------------- midstream / async-oneside (facts §9)
def b_midstream(s: Session, both_dirs: bool, whole: bool = False) -> None:
    if whole:
        s.c_data(0, b"forbidden")
    else:
        s.c_data(0, b"forbi")
        if both_dirs:
            s.s_ack(5)
        s.c_data(5, b"dden")
    if both_dirs:
        s.s_ack(9)
    s.c_data(9, b"tail------")
    if both_dirs:
        s.s_ack(19)
    s.c_data(19, b"tail2-----")
    if both_dirs:
        s.s_ack(29)
        s.close()


def f_midstream() -> Family:
    f = Family("stream_midstream", "stream.midstream true: sessions picked up without a handshake, content "
               "split and whole (also packet, packet+stream, only_stream and flow:established rules on the "
               "pick-up packet), with server ACKs and a FIN close, or client packets only; a drop variant",
               220000, stream={"midstream": True})
    nohs = {"wscale": None}
    f.add("split_both", lambda s: b_midstream(s, True), [FORBIDDEN, R(3, 'content:"tail2";', "tail2")], **nohs)
    f.add("split_both_drop", lambda s: b_midstream(s, True),
          [DROP_FORBIDDEN, R(3, 'content:"tail2";', "tail2")], **nohs)
    f.add("split_oneside", lambda s: b_midstream(s, False), [FORBIDDEN, R(3, 'content:"tail2";', "tail2")],
          **nohs)
    f.add("whole_both", lambda s: b_midstream(s, True, whole=True),
          [FORBIDDEN, R(2, 'content:"forbidden";', "tcp-pkt", proto="tcp-pkt"),
           R(4, 'content:"forbidden"; depth:20;', "depth 20"),
           R(5, 'flow:only_stream; content:"forbidden";', "only_stream"),
           R(6, "flow:established;", "established")], **nohs)
    return f


def b_async(s: Session) -> None:
    s.raw(True, "S", s.cisn, 0)
    s.raw(True, "A", s.cseq(0), s.sseq(0))
    s.c_data(0, b"forbi")
    s.c_data(5, b"dden")
    s.c_data(9, b"tail------")
    s.c_data(19, b"tail2-----")
    s.raw(True, "FA", s.cseq(29), s.sseq(0))


def f_async() -> Family:
    f = Family("stream_async", "stream.async-oneside true (midstream false): only the client's packets "
               "(SYN, ACK, split content, tails, FIN); a drop variant; a normal two-sided session next to "
               "them", 230000, stream={"async-oneside": True})
    nows = {"wscale": None}
    f.add("client_only", b_async, [FORBIDDEN, R(3, 'content:"tail2";', "tail2")], **nows)
    f.add("client_only_drop", b_async, [DROP_FORBIDDEN, R(3, 'content:"tail2";', "tail2")], **nows)
    f.add("two_sided", lambda s: b_split(s, SPLITS["split2"], True), SPLIT_ALERT_RULES)
    return f


# ------------------------------------------------- stream_size, tcp.hdr (facts §10)
def _ss_rules():
    out, k = [], 1
    for side, op, n in (("client", "=", 1), ("client", "=", 10), ("client", ">", 10), ("client", "<", 10),
                        ("client", "<=", 10), ("client", ">=", 11), ("client", "!=", 1),
                        ("server", "=", 1), ("server", "=", 6), ("server", ">", 6), ("server", "<", 6),
                        ("server", "!=", 6), ("both", ">", 5), ("both", "<", 7), ("both", "=", 1),
                        ("either", ">=", 10), ("either", "<", 2), ("either", "!=", 1), ("either", "=", 7),
                        ("client", "=", 11), ("client", "=", 12), ("server", "=", 7), ("both", ">=", 7)):
        out.append(R(k, f"stream_size:{side},{op},{n};", f"stream_size {side} {op} {n}", direction="both"))
        k += 1
    out += [
        R(40, 'tcp.hdr; content:"|18|"; offset:13; depth:1;', "tcp.hdr flags byte PA", direction="both"),
        R(41, 'tcp.hdr; content:"|02|"; offset:13; depth:1;', "tcp.hdr flags byte S", direction="both"),
        R(42, "tcp.hdr; bsize:>20;", "tcp.hdr longer than 20", direction="both"),
        R(43, 'tcp.hdr; content:"forbidden";', "tcp.hdr never holds the payload", direction="both"),
        R(44, 'tcp.hdr; content:"|11|"; offset:13; depth:1;', "tcp.hdr flags byte FA", direction="both"),
        R(45, 'tcp.hdr; content:"|03 03 07|";', "tcp.hdr wscale option", direction="both"),
        R(46, 'content:"forbi"; stream_size:client,>,5;', "content + stream_size"),
        R(47, 'content:"dden"; stream_size:server,=,1;', "content + stream_size server"),
    ]
    return out


def b_ss(s: Session, split: bool) -> None:
    s.handshake()
    if split:
        s.c_data(0, b"forbi")
        s.c_data(5, b"dden")
    else:
        s.c_data(0, b"forbidden")
    s.s_ack(9)
    s.s_data(0, b"hello")
    s.c_ack()
    s.c_data(9, b"x")
    s.s_ack(10)
    s.close()


def f_stream_size() -> Family:
    f = Family("stream_size", "stream_size client/server/both/either with =, !=, <, <=, >, >= (SYN and FIN "
               "count 1, data counts when seen), with content (packet+stream); tcp.hdr (header with options) "
               "with content/offset/depth and bsize", 240000)
    rules = _ss_rules()
    f.add("whole", lambda s: b_ss(s, False), rules)
    f.add("split", lambda s: b_ss(s, True), rules)
    return f


# ------------------------------------------------- seeded random family
RANDOM_ALPHABET = b"abcd"


def random_rules(seed: int, count: int, sid_base: int) -> tuple[str, list[bytes]]:
    """Seeded random content rules on any TCP traffic: single contents of 3..14
    letters (the long ones only match across segment boundaries now and then),
    two-content chains with distance/within, offset/depth (packet+stream),
    packet-only and stream-only kinds, nocase, and a few drop rules with long
    contents.  Returns the rules and the long contents, which the payloads
    plant on purpose."""
    rng = random.Random(seed)
    lines, planted = [], []

    def word(lo, hi):
        return bytes(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(lo, hi))).decode()

    for i in range(count):
        r = rng.random()
        action, proto = "alert", "tcp"
        if r < 0.45:
            w = word(3, 14)
            if len(w) >= 8:
                planted.append(w.encode())
            opts = f'content:"{w}";'
        elif r < 0.60:
            a, b = word(2, 5), word(2, 5)
            opts = f'content:"{a}"; content:"{b}"; distance:{rng.randint(0, 6)}; within:{rng.randint(len(b), len(b) + 10)};'
        elif r < 0.70:
            w = word(3, 6)
            off = rng.randint(0, 40)
            opts = f'content:"{w}"; offset:{off}; depth:{rng.randint(len(w), len(w) + 60)};'
        elif r < 0.78:
            w = word(3, 6).upper()
            opts = f'content:"{w}"; nocase;'
        elif r < 0.86:
            w = word(3, 7)
            kind = rng.choice(["dsize:>0;", "flow:no_stream;", "flow:only_stream;", "tcp-pkt", "tcp-stream",
                               "flow:to_client;", "flow:established,to_server;"])
            if kind.startswith("tcp-"):
                proto, opts = kind, f'content:"{w}";'
            else:
                opts = f'content:"{w}"; {kind}'
        elif r < 0.93:
            a = word(3, 5)
            opts = f'content:"{a}"; content:!"{word(2, 3)}"; distance:0; within:{rng.randint(3, 8)};'
        else:
            w = word(10, 16)
            planted.append(w.encode())
            action = "drop"
            opts = f'content:"{w}";'
        lines.append(f'{action} {proto} any any -> any any (msg:"random {i}"; {opts} sid:{sid_base + i};)')
    return "\n".join(lines) + "\n", planted


SEGMENT_OVERLAP_NOTE = """Suricata 7.0.10 compares a new segment's bytes with the stored
segments before it by walking its segment tree backwards and stops at the first
segment that ends at or before the new one's start (stream-tcp-list.c
DoHandleDataCheckBackwards).  A segment lying inside an earlier, longer segment
but after another stored segment is therefore never compared with the long one:
its bytes overwrite what the stream held, even inline, and no
reassembly_overlap_different_data is raised.  That is a property of the
segment tree walk, not of the rules, so the random sessions make at most one
different-data overlap per message, inside one segment already sent."""


def random_flows(cap, seed: int, planted: list[bytes], flows: int, port: int = 7500) -> None:
    """Seeded random sessions: random client (and sometimes server) messages
    over RANDOM_ALPHABET with planted long contents, cut into 1..8 segments,
    sometimes reordered, with occasional duplicate retransmissions and at most
    one overlapping retransmission with different data per message (inside a
    segment already sent: SEGMENT_OVERLAP_NOTE), random server ACKs, and a FIN
    close or none."""
    rng = random.Random(seed)
    for fi in range(flows):
        s = Session(cap, 42001 + fi, port + fi, cisn=rng.randint(1, 0xFFFFFFFF), sisn=rng.randint(1, 0xFFFFFFFF),
                    wscale=7)
        s.handshake()
        msgs = rng.randint(1, 2)
        for _m in range(msgs):
            size = rng.randint(20, 300)
            data = bytearray(rng.choice(RANDOM_ALPHABET) for _ in range(size))
            for _ in range(rng.randint(0, 2)):
                if planted:
                    w = rng.choice(planted)
                    at = rng.randint(0, max(0, size - len(w)))
                    data[at:at + len(w)] = w
            data = bytes(data[:size])
            base = s.c_next
            nseg = rng.randint(1, 8)
            cuts = sorted(rng.sample(range(1, size), min(nseg - 1, size - 1)))
            bounds = list(zip([0] + cuts, cuts + [size]))
            order = list(range(len(bounds)))
            if len(order) > 1 and rng.random() < 0.35:
                i = rng.randrange(len(order) - 1)
                order[i], order[i + 1] = order[i + 1], order[i]
            if len(order) > 2 and rng.random() < 0.15:
                rng.shuffle(order)
            sent: set[int] = set()
            overlapped = False
            for idx in order:
                lo, hi = bounds[idx]
                s.c_data(base + lo, data[lo:hi])
                sent.add(idx)
                r = rng.random()
                if r < 0.12:                                   # duplicate retransmission
                    j = rng.choice(sorted(sent))
                    a, b = bounds[j]
                    s.c_data(base + a, data[a:b])
                elif r < 0.22 and not overlapped:              # overlapping, different data
                    # inside one segment already sent, after its start: see SEGMENT_OVERLAP_NOTE
                    j = rng.choice(sorted(sent))
                    a, b = bounds[j]
                    if b - a >= 2:
                        overlapped = True
                        a2 = rng.randint(a + 1, b - 1)
                        n = rng.randint(1, min(12, b - a2))
                        s.c_data(base + a2, bytes(rng.choice(RANDOM_ALPHABET) for _ in range(n)))
                if rng.random() < 0.5:                         # the server acks what is contiguous
                    contiguous = base
                    for k in range(len(bounds)):
                        if k not in sent:
                            break
                        contiguous = base + bounds[k][1]
                    s.s_ack(contiguous)
            s.c_next = base + size
            if rng.random() < 0.7:
                s.s_ack(s.c_next)
            if rng.random() < 0.4:                             # a server answer, acked
                ans = bytes(rng.choice(RANDOM_ALPHABET) for _ in range(rng.randint(5, 120)))
                s.s_data(s.s_next, ans)
                s.c_ack()
        if rng.random() < 0.7:
            s.close()


def f_random() -> Family:
    rules, planted = random_rules(seed=41, count=100, sid_base=250001)
    f = Family("stream_random", "100 seeded random content rules (single and chained contents, offset/depth, "
               "nocase, negation, packet-only and stream-only kinds, a few drop rules with long contents) over "
               "14 seeded random sessions: 1..8 segments per message, reordering, duplicate retransmissions, "
               "an overlapping retransmission with different data inside one earlier segment, random ACKs, "
               "FIN or no FIN", 250000)
    f.raw_rules = rules
    f.raw_build = lambda cap: random_flows(cap, seed=42, planted=planted, flows=14)
    return f


def f_random_chunk() -> Family:
    rules, planted = random_rules(seed=43, count=100, sid_base=260001)
    f = Family("stream_random_chunk300", "as stream_random with other seeds and a chunk size of 300 in both "
               "directions, so that windows cut through the messages and IDS flushes happen mid-flow",
               260000, stream={"reassembly": {"toserver-chunk-size": 300, "toclient-chunk-size": 300}})
    f.raw_rules = rules
    f.raw_build = lambda cap: random_flows(cap, seed=44, planted=planted, flows=14)
    return f


# ------------------------------------------------- flow bypass (stream.bypass, the bypass keyword)
BYPASS_RULES = [
    R(1, 'content:"EVIL";', "EVIL to server"),
    R(2, 'content:"EVIL";', "EVIL to client", direction="to_client"),
    R(3, "flags:F+;", "a FIN", direction="both"),
    R(4, "flags:A+;", "an ACK to server"),
]


def b_bypass(s: Session, layout: str) -> None:
    """stream.reassembly.depth 100 with stream.bypass: which packets are still inspected."""
    s.handshake()
    if layout == "one_side":           # the client crosses the depth; the server only ACKs
        for i in range(3):
            s.c_data(i * 60, b"." * 60)
            s.s_ack(s.c_next)
        s.c_data(180, b"..EVIL..")
        s.s_ack(s.c_next)
        s.s_data(0, b"..EVIL..")
        s.c_ack()
    elif layout == "cross":            # EVIL inside the packet that crosses the depth
        s.c_data(0, b"." * 60)
        s.s_ack(s.c_next)
        s.c_data(60, b"." * 36 + b"EVIL" + b"." * 10)
        s.s_ack(s.c_next)
        s.s_data(0, b"..EVIL..")
        s.c_ack()
        s.c_data(110, b"..EVIL..")
        s.s_ack(s.c_next)
    elif layout == "exact":            # data ends exactly at the depth, then more
        s.c_data(0, b"." * 50)
        s.s_ack(s.c_next)
        s.c_data(50, b"." * 50)
        s.s_ack(s.c_next)
        s.c_data(100, b"..EVIL..")
        s.s_ack(s.c_next)
    elif layout == "below":            # the depth is never reached: nothing is bypassed
        s.c_data(0, b"..EVIL..")
        s.s_ack(s.c_next)
        s.s_data(0, b"..EVIL..")
        s.c_ack()
    elif layout == "both":             # each side crosses in turn
        for i in range(3):
            s.c_data(i * 60, b"." * 60)
            s.s_ack(s.c_next)
            s.s_data(i * 60, b"," * 60)
            s.c_ack()
        s.c_data(180, b"..EVIL..")
        s.s_ack(s.c_next)
    s.close()


def b_bypass_keyword(s: Session) -> None:
    s.handshake()
    s.c_data(0, b"..BIG..")
    s.s_ack(s.c_next)
    s.c_data(7, b"..EVIL..")
    s.s_ack(s.c_next)
    s.s_data(0, b"..EVIL..")
    s.c_ack()
    s.close()


def f_bypass() -> Family:
    f = Family("stream_bypass", "stream.bypass: yes with stream.reassembly.depth 100: the packet on which "
               "either direction reaches the depth is inspected, every later packet of the flow (both "
               "directions, FIN included) is not; data ending exactly at the depth; a flow below the depth; "
               "a drop rule after the depth; the bypass keyword", 270000,
               stream={"bypass": True, "reassembly": {"depth": 100}})
    for lay in ("one_side", "cross", "exact", "below", "both"):
        f.add(lay, lambda s, l=lay: b_bypass(s, l), BYPASS_RULES)
    f.add("drop_after", lambda s: b_bypass(s, "one_side"),
          [R(1, 'content:"EVIL";', "drop EVIL after depth", action="drop")] + BYPASS_RULES[2:])
    f.add("keyword", b_bypass_keyword, [R(5, 'content:"BIG"; bypass;', "BIG bypasses")] + BYPASS_RULES)
    return f


FAMILIES = [f() for f in (f_split, f_ooo, f_retx, f_overlap, f_depth100, f_depth3000, f_window, f_chunk1000,
                          f_kinds, f_rst_data, f_dsize, f_midstream, f_async, f_stream_size, f_random,
                          f_random_chunk, f_bypass)]
