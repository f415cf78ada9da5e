"""The stream stage: TCP reassembly per flow and direction, and what the
detect stage inspects for each TCP packet -- Suricata 7's raw stream
inspection, in its inline (IPS) and its IDS form.

    streams = StreamEngine(settings, inline, scanner)
    view, policy = streams.update(pkt, flow)     # after the flow stage, before detect

`update` files the packet's payload into its direction's stream and returns
a `StreamView` -- the buffers payload rules inspect on this packet, and
whether the packet was taken into the stream -- and what else applies to the
packet (a memcap's exception policy, or "invalid" for stream.drop-invalid).  Everything below was checked packet by
packet against Suricata 7.0.10 (`suricata -r`, with and without
--simulate-ips, chunk randomization off); the differential fixtures in
tests/replay/differential/stream_*.pcap record it.

Taking a segment in.  A payload joins its direction's stream when the session
is tracked (`flow.tcp_session`), the packet is no SYN and no RST, its
checksum is not known bad, it is not wholly before what the receiver already
acknowledged (`est_pkt_before_last_ack`), not beyond the receiver's window
(`est_packet_out_of_window`), does not acknowledge more than the peer's last
acknowledged byte plus the window it was given (`est_invalid_ack`), and its
direction is below `stream.reassembly.depth`.  A segment that would cross the
depth is not taken at all (`reassembly_depth_reached`) and ends reassembly
for that direction.  Data sent again once the session is closing is a
retransmission Suricata fails (`pkt_retransmission`): inline it is dropped
when stream.drop-invalid is on.  The packet a session is picked up on
midstream is taken in but not inspected.  Overlapping data: inline, the first
data stays and the packet's own bytes are replaced by it
(`reassembly_overlap_different_data` when they differ), so the inspected and
the forwarded bytes are the ones the receiver already has; in IDS mode the
BSD policy decides (the held data stays, but a segment starting before a held
out-of-order one wins), and the event is raised only with
stream.reassembly.check-overlap-different-data or a rule that uses it, never
for an exact duplicate.  Out-of-order segments are held until the gap fills
(at most MAX_OOO_SEGMENTS per direction: `reassembly_insert_limit`).

Inline (IPS) inspection.  A packet taken into the stream is inspected over a
window of its direction's stream: the contiguous run of data that holds the
packet, cut to W bytes -- W is the chunk size C
(`stream.reassembly.to{server,client}-chunk-size`), or the payload length
plus C/3 for payloads over 2C/3.  The window ends at the packet's right edge
when the packet is the newest data, starts at its left edge when data follows
it, and is shared out around it otherwise (a retransmission, a segment that
filled a hole).  So content split over any number of segments matches on the
segment that completes it, and matches again on later segments while it is
inside their window -- Suricata alerts again there too, retransmissions
included.  A match on the window is a stream match: a drop holds the flow.
A packet with payload that was not taken in is inspected alone (a packet
match: a drop holds the packet only).

IDS inspection.  A packet taken into the stream is not inspected by stream
rules on its own.  A direction's acknowledged, not yet inspected data
[raw_progress, last_ack) is inspected on a packet of that direction when at
least C bytes of it are waiting, when the session is closing (Suricata's
states past TIME_WAIT: the client's FIN first, a RST, LAST_ACK, CLOSING,
CLOSED), or when the depth was just reached; at the end of the flow
(`flush`) whatever is left, acknowledged or not, is inspected on a pseudo
packet that has no pcap_cnt.  A direction whose receiver is never seen
(async-oneside) counts all its data as acknowledged.  Consecutive inspections
do not overlap, so in IDS mode content that straddles two of them is not seen
(as in Suricata).  stream.reassembly.raw: no turns IDS inspection of the
stream off (inline ignores it, as Suricata 7's inline inspection does).

Each byte is scanned by the prefilter once (plus the longest fast pattern's
length of overlap at segment boundaries): as the contiguous stream grows,
the new bytes are scanned and each fast pattern found is remembered with the
right edge of the region it was found in; a window's candidate rules are the
patterns remembered inside it.  Only windows that are not the newest data
(retransmissions, holes, early out-of-order segments) are scanned whole.

Memory: `stream.reassembly.memcap` bounds the bytes held in all streams of
the engine (segments past it are not taken in: the
`stream.reassembly.memcap-policy` applies), `stream.memcap` the sessions
(SESSION_BYTES each; past it a flow gets no session and the
`stream.memcap-policy` applies).  Data is freed up to the lower of what the
receiver acknowledged and what inspection still needs (one window before the
inspected data inline).
"""
from __future__ import annotations

from rules.packet import TH_ACK, TH_FIN, TH_RST, TH_SYN, Packet
from rules.settings import StreamSettings

REFUSED, TAKEN, DEPTH = 0, 1, 2      # what became of a segment: not taken in, taken, crossed the depth
_SLOW = TH_SYN | TH_FIN | TH_RST       # segments the bookkeeping fast path leaves to _track
MASK = 0xFFFFFFFF
HALF = 1 << 31
MAX_OOO_SEGMENTS = 1024        # held out-of-order segments per direction
PRUNE_STEP = 4096              # free held data in steps of at least this (a bytearray front cut moves the rest)
SESSION_BYTES = 1408           # one TCP session's state, for stream.memcap (tests/bench/bench_flow_memory.py: ~1,350)

# Suricata's TCP session states, as far as they decide IDS flushes (past TIME_WAIT: flush)
EST, FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSE_WAIT, LAST_ACK, CLOSING, CLOSED = range(8)
_FLUSH_STATES = frozenset((CLOSE_WAIT, LAST_ACK, CLOSING, CLOSED))

# stream events ipsbridge raises (the names `stream-event:` accepts)
EVENTS = frozenset((
    "reassembly_overlap_different_data", "reassembly_depth_reached", "reassembly_insert_limit",
    "reassembly_insert_memcap", "est_pkt_before_last_ack", "pkt_spurious_retransmission",
    "est_packet_out_of_window", "est_invalid_ack", "rst_with_data", "pkt_retransmission",
))


def window_scale(opts) -> int:
    """The window scale option of a SYN's options (-1: none)."""
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n or opts[i + 1] < 2:
            break
        if kind == 3 and opts[i + 1] == 3 and i + 2 < n:
            return min(opts[i + 2], 14)
        i += opts[i + 1]
    return -1


def _held_block(ooo: dict, left: int, right: int):
    """(offset, bytes) of the run of touching held segments that holds [left, right), or None
    (Suricata inspects an early segment with the data around it that is already held)."""
    lo = buf = None
    for o in sorted(ooo):
        seg = ooo[o]
        if buf is not None and o <= lo + len(buf):
            end = lo + len(buf)
            if o + len(seg) > end:
                buf += seg[end - o:]
            continue
        if buf is not None and lo <= left and right <= lo + len(buf):
            break
        lo, buf = o, bytearray(seg)
    if buf is not None and lo <= left and right <= lo + len(buf):
        return lo, bytes(buf)
    return None


class TcpStream:
    """One direction of a TCP session.  Offsets are bytes from the first data byte
    (the sequence number after the ISN), as Python ints: no wrap-around past 4 GiB."""

    __slots__ = ("base", "known", "next_seq", "data", "data_off", "end", "ooo", "ooo_bytes", "last_ack",
                 "raw_progress", "depth_reached", "done", "window", "wscale", "scale", "fin_seq", "fin_due",
                 "seen", "segs", "app_off", "app_eof")

    def __init__(self) -> None:
        self.base = 0              # sequence number of stream offset 0 (the ISN + 1)
        self.known = False         # base set (a SYN / SYN-ACK / midstream pickup saw this side)
        self.next_seq = 0          # highest seq + len (+1 for SYN/FIN) sent, as an offset from the ISN
        self.data = bytearray()    # contiguous data [data_off, end) still held
        self.data_off = 0
        self.end = 0               # right edge of the contiguous data (data_off + len(data))
        self.ooo: dict[int, bytes] = {}   # out-of-order segments past the contiguous data: offset -> bytes
        self.ooo_bytes = 0
        self.last_ack = 0          # offset the receiver acknowledged
        self.raw_progress = 0      # offset up to which inspection has run (IDS; inline: right edge)
        self.depth_reached = False
        self.done = False          # no more reassembly for this direction (depth reached)
        self.window = -1           # receive window the peer advertised, scaled (-1 unknown)
        self.wscale = -1           # this side's window scale from its SYN (-1 none)
        self.scale = 0             # shift for the windows this side advertises (both SYNs had the option)
        self.fin_seq = -1          # offset of this side's FIN (-1 none)
        self.fin_due = False       # the FIN is not in next_seq yet (it counts from the next packet)
        self.seen: dict[int, int] = {}    # prefilter id -> right edge of the last region it was found in
        self.segs: dict[int, int] = {}    # IDS overlap check only: segment offset -> length taken
        self.app_off = 0           # offset up to which the app layer has had the data (StreamEngine.app_ready)
        self.app_eof = False       # the app layer was told this direction ended

    def start(self, isn: int) -> None:
        self.base = (isn + 1) & MASK
        self.known = True

    def offset(self, seq: int) -> int:
        """Stream offset of `seq`, taken nearest the contiguous data (wrap-safe)."""
        ref = self.end
        d = (seq - self.base - ref) & MASK
        return ref + d - 4294967296 if d >= HALF else ref + d


class TcpSession:
    """Both directions of a TCP flow.  `done()` says the stream needs no more inspection:
    both directions are past the reassembly depth (later packets are inspected alone, as
    packets) -- the fact flow bypass builds on."""

    __slots__ = ("client", "server", "state", "charged", "fin_due", "simple")

    def __init__(self) -> None:
        self.client = TcpStream()
        self.server = TcpStream()
        self.state = EST
        self.charged = False       # counted against stream.memcap
        self.fin_due = False       # a side's FIN waits to be counted in its next_seq
        self.simple = False        # both sides known, no FIN, established: the bookkeeping fast path

    def done(self) -> bool:
        return self.client.done and self.server.done


class StreamView:
    """What payload rules inspect on one TCP packet.

    `bufs` None: the packet has no stream data and was not taken into the stream --
    rules inspect `payload` alone and a match is a packet match.  Otherwise the
    stream rules inspect `bufs` (the inline window, or the data an IDS flush
    releases; empty when there is nothing to inspect), and `found` holds the
    prefilter ids present in them when already known.  `payload` is the packet's
    payload as the receiver will get it (inline overlaps replace new bytes by the
    stream's), `rewritten` True when it differs from the packet's."""

    __slots__ = ("bufs", "payload", "found", "rewritten", "covers")

    def __init__(self, bufs, payload: bytes, found=None, rewritten: bool = False, covers: bool = False) -> None:
        self.bufs = bufs
        self.payload = payload
        self.found = found
        self.rewritten = rewritten
        self.covers = covers           # `bufs` hold the payload's bytes (inline): one scan serves both


class Scanner:
    """The prefilter as the stream stage uses it: `scan(data) -> set of ids` and the
    length of each id's pattern (the detect stage provides it)."""

    # (slots: the compiled lanes read these fields on every segment, by offset; __dict__
    # keeps any other attribute possible)
    __slots__ = ("scan", "lengths", "overlap", "__dict__")

    def __init__(self, scan, lengths: dict[int, int]) -> None:
        self.scan = scan
        self.lengths = lengths
        self.overlap = max(lengths.values(), default=1) - 1


class StreamEngine:
    # (slots: the compiled lanes read these fields on every segment, by offset; __dict__
    # keeps any other attribute possible, as tests replace methods on an instance)
    __slots__ = ("s", "inline", "check_overlap", "track_segs", "scanner", "app_on", "chunk", "depth", "mem",
                 "sessions", "c", "__dict__")

    def __init__(self, settings: StreamSettings, inline: bool, scanner: Scanner | None = None,
                 check_overlap: bool = False) -> None:
        self.s = settings
        self.inline = inline
        # IDS: compare overlapping data (inline always does); on by the setting or because a
        # loaded rule uses the overlap event, as in Suricata.  IDS never reports an exact
        # duplicate (same start and length), so segment boundaries are kept for it.
        self.check_overlap = check_overlap or settings.check_overlap_different_data
        self.track_segs = self.check_overlap and not inline
        self.scanner = scanner
        # the app layer (rules.applayer) wants each direction's in-order bytes (app_ready): when
        # on, data the app layer has not had yet is kept
        self.app_on = False
        self.chunk = (settings.toserver_chunk_size, settings.toclient_chunk_size)
        self.depth = settings.depth
        self.mem = 0                       # bytes held in all streams
        self.sessions = 0
        self.c: dict[str, int] = {}

    def _count(self, key: str, n: int = 1) -> None:
        self.c[key] = self.c.get(key, 0) + n

    def stats(self) -> dict[str, int]:
        out = {f"stream.{k}": v for k, v in self.c.items()}
        out["stream.memuse"] = self.mem
        out["stream.sessions"] = self.sessions
        return out

    @staticmethod
    def _event(pkt: Packet, name: str) -> None:
        pkt.events = pkt.events + ("stream." + name,)

    def _overlap(self, pkt: Packet) -> None:
        """Overlapping data differs: counted, and the event raised inline (always checked)
        or in IDS mode when the check is on."""
        self._count("overlap_diff_data")
        if self.inline or self.check_overlap:
            self._event(pkt, "reassembly_overlap_different_data")

    # ------------------------------------------------------------------ per packet
    def update(self, pkt: Packet, flow) -> tuple[StreamView | None, str]:
        """File `pkt` (a TCP packet of `flow`) into its stream.  Returns (view, policy):
        view None when stream inspection does not apply (no session: inspect the packet
        alone); policy names what applies to the packet besides: an exception policy
        ("memcap", "reassembly_memcap"), "invalid" (a segment the stream engine finds
        invalid: stream.drop-invalid), or ""."""
        ssn = flow.tcp
        policy = ""
        pickup = False
        if ssn is None:
            if not flow.tcp_session:
                return None, ""
            if (self.sessions + 1) * SESSION_BYTES > self.s.memcap:
                self._count("memcap_drop")
                return None, "memcap"
            ssn = flow.tcp = TcpSession()
            ssn.charged = True
            self.sessions += 1
            pickup = self._begin(ssn, pkt, flow)
        elif ssn.fin_due:
            self._count_fins(ssn)
        to_server = pkt.to_server
        if to_server:
            me, peer = ssn.client, ssn.server
        else:
            me, peer = ssn.server, ssn.client
        flags = pkt.tcp_flags
        payload = pkt.payload
        n = len(payload)
        off = -1
        if flags & _SLOW or not ssn.simple:
            ack_ok = self._track(ssn, me, peer, pkt, flags, to_server, n)
        else:                                   # an established segment: acknowledgment, window, next_seq
            ack_ok = True
            if flags & TH_ACK:
                ref = peer.end
                d = (pkt.ack - peer.base - ref) & MASK
                ack = ref + d - 4294967296 if d >= HALF else ref + d
                if peer.window >= 0 and ack > peer.last_ack + peer.window:
                    ack_ok = False              # acknowledges more than the peer may have sent
                    self._event(pkt, "est_invalid_ack")
                elif ack > peer.last_ack:
                    peer.last_ack = ack
                peer.window = pkt.win << me.scale
            if not n:
                if self.inline:         # a pure ACK: nothing to take in or inspect
                    return None, ""
            else:
                ref = me.end
                d = (pkt.seq - me.base - ref) & MASK
                off = ref + d - 4294967296 if d >= HALF else ref + d
                right = off + n
                if me.next_seq < right + 1 < me.next_seq + (1 << 30):
                    me.next_seq = right + 1
                # the common case, the next in-order segment, taken in without the general path
                if (off == ref and ack_ok and not pickup and not me.ooo and not me.done and pkt.csum_ok is not False
                        and self.fits_in_order(me, right, n)):
                    return self._append(ssn, me, peer, bytes(payload), n, to_server), ""
        status = REFUSED
        rewritten = False
        if n:
            pl = bytes(payload)
            if off < 0:
                off = me.offset(pkt.seq)
            if ssn.state == CLOSE_WAIT and to_server and off + n <= me.last_ack \
                    and not flags & (TH_SYN | TH_RST | TH_FIN):
                # the client's data again, already acknowledged, after its FIN: Suricata's
                # CLOSE_WAIT handler fails the packet (dropped inline: drop-invalid).  In the
                # other closing states (FIN_WAIT1/2, TIME_WAIT, ...) a retransmission goes on as
                # in ESTABLISHED (checked with suricata --simulate-ips: a server's FIN+data sent
                # again in TIME_WAIT is forwarded)
                self._event(pkt, "pkt_retransmission")
                self._event(pkt, "pkt_spurious_retransmission")
                return None, "invalid"
            if ack_ok and self._acceptable(me, peer, pkt, flags, n, off):
                status, pl, rewritten, policy = self._insert(me, pkt, pl, n, off)
        else:
            pl = b""
        if self.inline:
            if status == REFUSED:
                return None, policy
            if pickup:                  # the packet a session is picked up on is not inspected
                return StreamView((), pl, None, rewritten), policy
            if status == TAKEN:
                bufs, found = self._window(me, off, n, to_server)
                if bufs is not None:
                    return StreamView(bufs, pl, found, rewritten, True), policy
            else:                       # the segment crossed the depth: reassembly ends here
                self._end_direction(me)
            # the stream does not hold the packet's bytes: its window is the packet alone,
            # still a stream inspection
            return StreamView((pl,), pl, None, rewritten, True), policy
        # IDS: stream data only when this direction is due a flush
        flush = self._ids_flush(ssn, me, peer, to_server)
        if flush:
            return StreamView(flush, pl, None, rewritten), policy
        return (StreamView((), pl, None, rewritten) if status != REFUSED else None), policy

    def _begin(self, ssn: TcpSession, pkt: Packet, flow) -> bool:
        """Sequence bases from the packet that started the session.  True when the session
        was picked up midstream on a packet without SYN."""
        flags = pkt.tcp_flags
        cli, srv = ssn.client, ssn.server
        if flags & TH_SYN and not flags & TH_ACK:          # the client's SYN
            cli.start(pkt.seq)
            cli.next_seq = 1
            cli.wscale = window_scale(pkt.tcp_opts)
            return False
        if flags & TH_SYN:                                   # picked up at the SYN-ACK
            srv.start(pkt.seq)
            srv.next_seq = 1
            srv.wscale = window_scale(pkt.tcp_opts)
            cli.start(pkt.ack - 1)
            cli.next_seq = 1
            return False
        # midstream pickup on a packet of the client (its sender is the client)
        me, peer = (cli, srv) if pkt.to_server else (srv, cli)
        me.start(pkt.seq - 1)
        me.next_seq = 0
        if flags & TH_ACK:
            peer.start(pkt.ack - 1)
            peer.next_seq = 1
        return True

    @staticmethod
    def _count_fins(ssn: TcpSession) -> None:
        """A FIN counts in next_seq (stream_size) from the packet after it, as in Suricata."""
        for me in (ssn.client, ssn.server):
            if me.fin_due:
                me.fin_due = False
                if me.next_seq < me.fin_seq + 2:
                    me.next_seq = me.fin_seq + 2
        ssn.fin_due = False

    def _track(self, ssn: TcpSession, me: TcpStream, peer: TcpStream, pkt: Packet, flags: int,
               to_server: bool, n: int) -> bool:
        """Sequence bookkeeping off the fast path: SYNs (bases, window scales), a side seen
        for the first time, FINs and RSTs (the session state IDS flushes follow).  Returns
        False when the packet acknowledges more than the peer may have sent."""
        if flags & TH_SYN:
            if flags & TH_ACK:
                if not me.known:
                    me.start(pkt.seq)
                    me.next_seq = 1
                if me.wscale < 0:
                    me.wscale = window_scale(pkt.tcp_opts)
                if me.wscale >= 0 and peer.wscale >= 0:      # both offered it: windows scale from now on
                    me.scale, peer.scale = me.wscale, peer.wscale
                peer.window = pkt.win             # a SYN's window is never scaled
            return True
        if not me.known:                 # async/one-sided: first packet seen from this side
            me.start(pkt.seq - 1)
            me.next_seq = 0
        ack_ok = True
        if flags & TH_ACK and peer.known:
            ack = peer.offset(pkt.ack)
            if peer.window >= 0 and ack > peer.last_ack + peer.window:
                ack_ok = False
                self._event(pkt, "est_invalid_ack")
            elif ack > peer.last_ack:
                peer.last_ack = ack
            peer.window = pkt.win << me.scale
        right = me.offset(pkt.seq) + n
        if me.next_seq < right + 1 < me.next_seq + (1 << 30):
            me.next_seq = right + 1
        if flags & TH_FIN and me.fin_seq < 0:
            me.fin_seq = right
            me.fin_due = ssn.fin_due = True        # counted in next_seq from the next packet on
        if flags & TH_RST:
            ssn.state = CLOSED
            ssn.simple = False
            return ack_ok
        st = ssn.state
        acks_peer_fin = bool(flags & TH_ACK) and peer.fin_seq >= 0 and peer.offset(pkt.ack) > peer.fin_seq
        if flags & TH_FIN:
            if st == EST:
                ssn.state = CLOSE_WAIT if to_server else FIN_WAIT1
            elif st == FIN_WAIT1 and to_server:
                ssn.state = TIME_WAIT if acks_peer_fin else CLOSING
            elif st == FIN_WAIT2 and to_server:
                ssn.state = TIME_WAIT
            elif st == CLOSE_WAIT and not to_server:
                ssn.state = LAST_ACK
        elif acks_peer_fin:
            if st == FIN_WAIT1 and to_server:
                ssn.state = FIN_WAIT2
            elif st in (TIME_WAIT, CLOSING) and not to_server:
                ssn.state = CLOSED if st == TIME_WAIT else TIME_WAIT
            elif st == LAST_ACK and to_server:
                ssn.state = CLOSED
        ssn.simple = (ssn.state == EST and ssn.client.known and ssn.server.known
                      and ssn.client.fin_seq < 0 and ssn.server.fin_seq < 0)
        return ack_ok

    def _acceptable(self, me: TcpStream, peer: TcpStream, pkt: Packet, flags: int, n: int, off: int) -> bool:
        """Does this payload (at stream offset `off`) join its stream?  Raises the stream
        event that says why not."""
        if flags & TH_RST:
            self._event(pkt, "rst_with_data")
            return False
        if me.done:                             # past the depth: no more stream inspection
            self._count("past_depth_segments")
            self._count("past_depth_bytes", n)
            return False
        if flags & TH_SYN or pkt.csum_ok is False:
            return False
        if off + n <= me.last_ack:              # all of it was acknowledged already
            self._event(pkt, "pkt_spurious_retransmission")
            if off + n < me.last_ack:
                self._event(pkt, "est_pkt_before_last_ack")
                return False
        if me.window >= 0 and off + n > me.last_ack + me.window:
            self._event(pkt, "est_packet_out_of_window")
            return False
        return True

    def _insert(self, me: TcpStream, pkt: Packet, pl: bytes, n: int, off: int) -> tuple[int, bytes, bool, str]:
        """Put the payload (at stream offset `off`) into the stream.  Returns (status,
        payload as inspected, rewritten, policy): TAKEN; DEPTH, the segment crosses the
        depth (not held, but handled as taken, as Suricata does); REFUSED, a bound was hit."""
        right = off + n
        whole = pl
        if off < 0:                                   # starts before the stream: keep what is in it
            pl, n, off = pl[-off:], n + off, 0
            if n <= 0:
                return REFUSED, whole, False, ""
        depth = self.depth
        if depth and right > depth:
            if not me.depth_reached:
                me.depth_reached = True
                self._event(pkt, "reassembly_depth_reached")
                self._count("depth_reached")
            return DEPTH, whole, False, ""
        # overlap with the contiguous data already held
        rewritten = False
        end = me.end
        if off < end:
            lo = max(off, me.data_off)
            hi = min(right, end)
            if lo < hi and not (self.track_segs and me.segs.get(off) == n):
                old = me.data[lo - me.data_off:hi - me.data_off]
                if old != pl[lo - off:hi - off]:
                    # the stream keeps its data: inline the first data wins; in IDS mode (BSD
                    # policy) too, as the segment does not start before the data it overlaps
                    self._overlap(pkt)
                    pl = pl[:lo - off] + bytes(old) + pl[hi - off:]
                    rewritten = self.inline
            if right <= end:
                self._count("retransmissions")
                return TAKEN, pl, rewritten, ""
            tail_off, tail = end, pl[end - off:]
        else:
            tail_off, tail = off, pl
        # into the held out-of-order segments, or onto the contiguous data
        if tail_off > end:
            if len(me.ooo) >= MAX_OOO_SEGMENTS:
                self._event(pkt, "reassembly_insert_limit")
                self._count("ooo_limit")
                return REFUSED, pl, rewritten, ""
            old = me.ooo.get(tail_off)
            if old is not None and len(old) >= len(tail):
                return TAKEN, pl, rewritten, ""
            if self.mem + len(tail) > self.s.reassembly_memcap:
                self._event(pkt, "reassembly_insert_memcap")
                self._count("reassembly_memcap_drop")
                return REFUSED, pl, rewritten, "reassembly_memcap"
            if old is not None:
                me.ooo_bytes -= len(old)
                self.mem -= len(old)
            me.ooo[tail_off] = tail
            if self.track_segs:
                me.segs[off] = n
            me.ooo_bytes += len(tail)
            self.mem += len(tail)
            self._count("ooo_segments")
            return TAKEN, pl, rewritten, ""
        if self.mem + len(tail) > self.s.reassembly_memcap:
            self._event(pkt, "reassembly_insert_memcap")
            self._count("reassembly_memcap_drop")
            return REFUSED, pl, rewritten, "reassembly_memcap"
        if me.ooo:
            # held segments the new data overlaps: inline they came first and win; in IDS mode
            # the new segment starts before them and wins (BSD)
            tail_end = tail_off + len(tail)
            for o in sorted(me.ooo):
                if o >= tail_end:
                    break
                seg = me.ooo[o]
                a, b = max(o, tail_off), min(o + len(seg), tail_end)
                if a < b and seg[a - o:b - o] != tail[a - tail_off:b - tail_off]:
                    self._overlap(pkt)
                    if self.inline:
                        tail = tail[:a - tail_off] + seg[a - o:b - o] + tail[b - tail_off:]
                        rewritten = True
            if rewritten:
                pl = pl[:tail_off - off] + tail
        grow_from = end
        me.data += tail
        me.end = end + len(tail)
        self.mem += len(tail)
        if self.track_segs:
            me.segs[off] = n
        if me.ooo:
            self._merge(me)
        self._scan_new(me, grow_from)
        return TAKEN, pl, rewritten, ""

    def _append(self, ssn: TcpSession, me: TcpStream, peer: TcpStream, pl: bytes, n: int,
                to_server: bool) -> StreamView:
        """Take an in-order segment (nothing held out of order) and give its view: inline, the
        window ending at it, with the patterns seen there; IDS, taken but not inspected."""
        self.take_in_order(me, pl, n)
        if not self.inline:
            return StreamView(self._ids_flush(ssn, me, peer, to_server), pl)
        buf, found = self.inline_window(me, n, to_server, True)
        return StreamView((buf,), pl, found, False, True)

    def fits_in_order(self, me: TcpStream, right: int, n: int) -> bool:
        """Can the `n` bytes ending at `right`, the next in-order segment, be taken in
        without the general path: nothing of it acknowledged yet, inside the receiver's
        window, within the reassembly depth and memcap."""
        return (right >= me.last_ack and (me.window < 0 or right <= me.last_ack + me.window)
                and (not self.depth or right <= self.depth)
                and self.mem + n <= self.s.reassembly_memcap)

    def take_in_order(self, me: TcpStream, pl, n: int) -> None:
        """Append the `n` bytes of `pl`, the next in-order segment, to the contiguous data
        (nothing held out of order) and prefilter what they add."""
        grow_from = me.end
        me.data += pl
        me.end = grow_from + n
        self.mem += n
        if self.track_segs:
            me.segs[grow_from] = n
        self._scan_new(me, grow_from)

    def inline_window(self, me: TcpStream, n: int, to_server: bool, want_buf: bool):
        """Inline, after `take_in_order` of an `n`-byte segment: (window bytes, prefilter ids
        seen in the window, None without a prefilter) of the window ending at it.  The
        bytes are built only with `want_buf` or when some id lies in the window (else
        None: no rule with a fast pattern can match there)."""
        right = me.end
        c = self.chunk[0 if to_server else 1]
        lo = right - (c if n <= (c // 3) * 2 else n + c // 3)
        if lo < me.data_off:
            lo = me.data_off
        if self.scanner is None:
            found = None
        elif me.seen:
            found = self._seen_in(me, lo)
        else:
            found = set()
        buf = bytes(me.data[lo - me.data_off:]) if want_buf or found else None
        me.raw_progress = right
        if right - me.data_off > c + PRUNE_STEP:
            self._prune(me, c)
        return buf, found

    def _merge(self, me: TcpStream) -> None:
        """Append the held segments the contiguous data now reaches (first data wins)."""
        ooo = me.ooo
        while ooo:
            end = me.end
            nxt = min(ooo)
            if nxt > end:
                return
            seg = ooo.pop(nxt)
            me.ooo_bytes -= len(seg)
            self.mem -= len(seg)
            if nxt + len(seg) > end:
                part = seg[end - nxt:]
                me.data += part
                me.end = end + len(part)
                self.mem += len(part)

    def _scan_new(self, me: TcpStream, grow_from: int) -> None:
        """Prefilter the bytes the contiguous data just grew by (with the longest pattern's
        overlap before them) and remember where each pattern was seen."""
        sc = self.scanner
        if sc is None:
            return
        lo = max(me.data_off, grow_from - sc.overlap)
        right = me.end
        found = sc.scan(bytes(me.data[lo - me.data_off:]))
        if found:
            seen = me.seen
            for pid in found:           # kept in order of right edge: the oldest sightings first
                seen.pop(pid, None)
                seen[pid] = right

    # ------------------------------------------------------------------ inline window
    def _window(self, me: TcpStream, left: int, n: int, to_server: bool):
        """(buffers, prefilter ids or None) of the inline window of a taken packet at stream
        offset `left`, or (None, None) when the stream does not hold the packet's bytes."""
        c = self.chunk[0 if to_server else 1]
        w = c if n <= (c // 3) * 2 else n + c // 3
        right = left + n
        if left < 0:
            left = 0
        # the contiguous run holding the packet
        if me.data_off <= left and right <= me.end:
            b_lo, b_hi, src, src_off = me.data_off, me.end, me.data, me.data_off
            newest = right == me.end and not me.ooo
        else:
            hit = _held_block(me.ooo, left, right)
            if hit is None:
                return None, None
            b_lo, src = hit
            src_off = b_lo
            b_hi = b_lo + len(src)
            newest = False
        if b_hi - b_lo > w:
            if right == b_hi:
                b_lo = b_hi - w
            elif left == b_lo:
                b_hi = b_lo + w
            else:
                before, after = left - b_lo, b_hi - right
                half = (w - n) // 2
                if after >= half:
                    if before >= half:
                        before = after = half
                    else:
                        after = (w - n) - before
                elif before >= half:
                    before = (w - n) - after
                b_lo, b_hi = left - before, right + after
        buf = bytes(src[b_lo - src_off:b_hi - src_off])
        me.raw_progress = max(me.raw_progress, b_hi)
        self._prune(me, c)
        if newest and self.scanner is not None and b_hi == me.end:
            found = self._seen_in(me, b_lo)
            return (buf,), found
        return (buf,), None

    def _seen_in(self, me: TcpStream, lo: int) -> set:
        """Prefilter ids whose last sighting can lie in the newest window, which starts at
        `lo`.  The windows of later in-order segments start at `lo` or after, so sightings
        ending before it are dropped for good (they are the oldest: `seen` is in order)."""
        seen = me.seen
        while seen:
            pid = next(iter(seen))
            if seen[pid] >= lo:
                break
            del seen[pid]
        lengths = self.scanner.lengths
        return {pid for pid, edge in seen.items() if edge - lengths[pid] >= lo}

    def _prune(self, me: TcpStream, c: int) -> None:
        """Free data no later window can need: below the lower of the acknowledged offset
        and one chunk before the inspected data, and never past the contiguous data (after a
        hole the receiver may acknowledge, and an inline window of held segments inspect,
        bytes beyond it: cutting there charged back bytes never held, and the memcap drifted)."""
        keep = min(me.last_ack, me.raw_progress - (c if self.inline else 0), me.end)
        if self.app_on and me.app_off < keep:
            keep = me.app_off                 # the app layer has not had it yet
        cut = keep - me.data_off
        if cut > PRUNE_STEP:
            del me.data[:cut]
            me.data_off = keep
            self.mem -= cut
            if me.seen:
                lengths = self.scanner.lengths if self.scanner else {}
                for pid in [p for p, e in me.seen.items() if e - lengths.get(p, 1) < keep]:
                    del me.seen[pid]
            if me.segs:
                for o in [o for o in me.segs if o < keep]:
                    del me.segs[o]

    # ------------------------------------------------------------------ IDS flushes
    def _ids_flush(self, ssn: TcpSession, me: TcpStream, peer: TcpStream, to_server: bool) -> tuple:
        """The data an IDS flush releases on a packet of this direction, or () (always with
        stream.reassembly.raw off).  A direction whose receiver is never seen (async-oneside)
        counts all its data as acknowledged."""
        if not me.known or not self.s.raw:
            return ()
        c = self.chunk[0 if to_server else 1]
        ack = min(me.last_ack, me.end) if peer.known else me.end
        due = (ack - me.raw_progress >= c or ssn.state in _FLUSH_STATES or
               (me.depth_reached and not me.done))
        if not due:
            return ()
        out = self._release(me, ack)
        if me.depth_reached:
            self._end_direction(me)
        return out

    def _release(self, me: TcpStream, upto: int) -> tuple:
        lo = max(me.raw_progress, me.data_off)
        if upto <= lo:
            return ()
        buf = bytes(me.data[lo - me.data_off:upto - me.data_off])
        me.raw_progress = upto
        self._prune(me, 0)
        return (buf,) if buf else ()

    def _end_direction(self, me: TcpStream) -> None:
        """Depth reached: no more reassembly; the held data goes (unacknowledged data unseen)."""
        me.done = True
        self.mem -= len(me.data) + me.ooo_bytes
        me.data_off = me.end
        me.data = bytearray()
        me.ooo.clear()
        me.ooo_bytes = 0
        me.seen.clear()

    # ------------------------------------------------------------------ the app layer's data
    def app_ready(self, flow, to_server: bool) -> list[tuple[bool, bytes | None]]:
        """What the app layer gets on this packet, [(to_server, data)], data None meaning that
        direction ended; as Suricata hands it over.  Inline: the packet's own direction's data
        as it arrives, and both directions' end once the session is closed.  IDS: the other
        direction's data once this packet acknowledged it (a direction whose receiver is never
        seen, async-oneside: as it arrives), and its end once its FIN is acknowledged -- so
        the app layer, and the rules on its transactions, see a request on the server's
        acknowledgment, a response's rules run on the packet acknowledging the client's FIN."""
        ssn = flow.tcp
        out: list[tuple[bool, bytes | None]] = []
        if ssn is None:
            return out
        me, peer = (ssn.client, ssn.server) if to_server else (ssn.server, ssn.client)
        if self.inline:
            self._app_take(me, me.end, to_server, out)
            if ssn.state == CLOSED:
                self._app_end(ssn.client, True, out)
                self._app_end(ssn.server, False, out)
            return out
        self._app_take(peer, min(peer.last_ack, peer.end) if me.known else peer.end, not to_server, out)
        if not peer.known:
            self._app_take(me, me.end, to_server, out)
        if peer.fin_seq >= 0 and peer.last_ack > peer.fin_seq:
            self._app_end(peer, not to_server, out)
        return out

    def app_next(self, flow, me: TcpStream, n: int) -> bool:
        """Inline, after `take_in_order` of an `n`-byte segment: True when `app_ready` would
        hand the app layer that segment alone (the direction's app data ends where it
        starts, the session is not closed), now marked handed over; else False, nothing
        changed."""
        ssn = flow.tcp
        lo = me.end - n
        if not self.inline or ssn is None or ssn.state == CLOSED or me.app_off != lo or lo < me.data_off:
            return False
        me.app_off = me.end
        return True

    @staticmethod
    def _app_end(me: TcpStream, to_server: bool, out: list) -> None:
        if not me.app_eof:
            me.app_eof = True
            out.append((to_server, None))

    def app_rest(self, flow) -> list[tuple[bool, bytes]]:
        """What the app layer has not had of either direction, acknowledged or not (the flow
        ends, or a RST closes it)."""
        ssn = flow.tcp
        out: list[tuple[bool, bytes]] = []
        if ssn is not None:
            self._app_take(ssn.client, ssn.client.end, True, out)
            self._app_take(ssn.server, ssn.server.end, False, out)
        return out

    @staticmethod
    def _app_take(me: TcpStream, upto: int, to_server: bool, out: list) -> None:
        lo = me.app_off if me.app_off > me.data_off else me.data_off
        if upto > lo:
            out.append((to_server, bytes(me.data[lo - me.data_off:upto - me.data_off])))
        if upto > me.app_off:
            me.app_off = upto

    def flush(self, flow) -> list[tuple[bool, tuple]]:
        """End of the flow: in IDS mode, the data of each direction never inspected,
        acknowledged or not -> [(to_server, buffers)].  The session stays until `release`
        (keywords such as stream_size read it while that data is inspected)."""
        ssn = flow.tcp
        out = []
        if ssn is None:
            return out
        if ssn.fin_due:
            self._count_fins(ssn)
        if not self.inline and self.s.raw:
            for to_server, me in ((True, ssn.client), (False, ssn.server)):
                if me.known and not me.done:
                    bufs = self._release(me, me.end)
                    if bufs:
                        out.append((to_server, bufs))
        return out

    def release(self, flow) -> None:
        """Forget the flow's session (it ended or was evicted)."""
        ssn = flow.tcp
        if ssn is None:
            return
        for me in (ssn.client, ssn.server):
            self.mem -= len(me.data) + me.ooo_bytes
            me.data = bytearray()
            me.ooo.clear()
            me.ooo_bytes = 0
        if ssn.charged:
            self.sessions -= 1
            ssn.charged = False
        flow.tcp = None
