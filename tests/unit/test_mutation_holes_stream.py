"""rules.stream behaviour the mutation run (tests/bench/mutation.py) found unchecked by the
stream suites, driven through StreamEngine.update packet by packet: the inline window of
a segment that is not the newest data (retransmissions, holes) -- cut to the chunk and
placed as the module docstring says: ending at the packet when it is the newest data,
starting at it when data follows, shared out around it otherwise -- the memory account
over out-of-order merges and prunes, the session count, window scaling and invalid
acknowledgments, IDS chunks per direction, the window scale option."""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether

from rules.api import FrameMeta
from rules.decode import DecodeOptions, decode
from rules.flow import FlowTable
from rules.settings import StreamSettings
from rules.stream import PRUNE_STEP, SESSION_BYTES, StreamEngine, window_scale

C, S = "198.51.100.1", "203.0.113.2"
OPTS = DecodeOptions(checksum_validation=False)
CISN, SISN = 1000, 5000


class Conn:
    """One TCP connection through a FlowTable and a StreamEngine of its own."""

    def __init__(self, inline=True, sport=40000, streams=None, table=None, **settings):
        self.s = StreamSettings(**settings)
        self.streams = streams or StreamEngine(self.s, inline)
        self.table = table or FlowTable(stream=self.s)
        self.sport = sport
        self.ts = 1.0

    def send(self, client: bool, flags: str, seq: int, ack: int = 0, data: bytes = b"", win: int = 65535,
             options=()):
        ip = IP(src=C, dst=S) if client else IP(src=S, dst=C)
        sp, dp = (self.sport, 80) if client else (80, self.sport)
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack, window=win, options=list(options))
        self.ts += 0.01
        p = decode(bytes(Ether() / ip / tcp / data), FrameMeta(ts=self.ts, iface=""), OPTS)[0]
        self.table.lookup(p)
        view, policy = self.streams.update(p, p.flow)
        return p, view, policy

    def handshake(self, cwin=65535, swin=65535, copts=(), sopts=()):
        self.send(True, "S", CISN, win=cwin, options=copts)
        self.send(False, "SA", SISN, CISN + 1, win=swin, options=sopts)
        return self.send(True, "A", CISN + 1, SISN + 1, win=cwin)

    def c(self, off: int, data: bytes, ack: int = SISN + 1):
        """Client data at stream offset `off`."""
        return self.send(True, "PA", CISN + 1 + off, ack, data)

    def s_ack(self, upto: int, win: int = 65535):
        return self.send(False, "A", SISN + 1, CISN + 1 + upto, win=win)


def stream(n: int) -> bytes:
    """n bytes where each 100-byte block is one letter: offsets show in the data."""
    return b"".join(bytes([65 + (i // 100) % 26]) for i in range(n))


DATA = stream(1000)


def window(view) -> tuple[int, int]:
    """(start, end) stream offsets of a one-buffer view over DATA (the blocks are unique)."""
    (buf,) = view.bufs
    start = DATA.find(buf)
    assert start >= 0 and DATA.count(buf) == 1, buf
    return start, start + len(buf)


def filled(chunk=300) -> Conn:
    cn = Conn(toserver_chunk_size=chunk, toclient_chunk_size=chunk)
    cn.handshake()
    for k in range(10):
        cn.c(100 * k, DATA[100 * k:100 * k + 100])
    return cn


@pytest.mark.parametrize("off,n,want", [
    (900, 100, (700, 1000)),      # the newest data: the window ends at it
    (0, 100, (0, 300)),           # data follows, none before: it starts at it
    (500, 100, (400, 700)),       # in the middle: shared out around it
    (50, 100, (0, 300)),          # 50 before it: the rest after
    (880, 100, (700, 1000)),      # 20 after it: the rest before
    (400, 250, (350, 700)),       # a payload over 2/3 of the chunk: n + chunk/3 wide
], ids=["newest", "first", "middle", "near-start", "near-end", "big"])
def test_the_window_of_a_retransmission(off, n, want):
    cn = filled()
    _, view, _ = cn.c(off, DATA[off:off + n])
    assert window(view) == want and view.covers


def test_the_window_of_the_segment_filling_a_hole():
    cn = Conn(toserver_chunk_size=300, toclient_chunk_size=300)
    cn.handshake()
    for k in range(10):
        if k != 4:
            cn.c(100 * k, DATA[100 * k:100 * k + 100])
    _, view, _ = cn.c(400, DATA[400:500])        # fills the hole: 400 before it, 500 after
    assert window(view) == (300, 600)


def test_an_early_segment_is_inspected_with_the_held_data_around_it():
    cn = Conn(toserver_chunk_size=300, toclient_chunk_size=300)
    cn.handshake()
    cn.c(0, DATA[:100])
    cn.c(500, DATA[500:600])
    _, view, _ = cn.c(600, DATA[600:700])        # held, out of order: its held run
    assert window(view) == (500, 700)


def test_memory_is_accounted_over_merges_and_prunes():
    cn = Conn()
    cn.handshake()
    cn.c(200, b"c" * 100)                        # held out of order
    cn.c(100, b"b" * 100)
    assert cn.streams.mem == 200
    cn.c(0, b"a" * 100)                          # fills the hole: everything merges
    assert cn.streams.mem == 300 and cn.streams.stats()["stream.memuse"] == 300
    big = b"x" * (PRUNE_STEP + 3000)
    cn.c(300, big)
    cn.s_ack(300 + len(big))                     # acknowledged: the front can go
    cn.c(300 + len(big), b"y" * 100)
    ssn = cn.table.all()[0].tcp
    held = len(ssn.client.data) + sum(len(v) for v in ssn.client.ooo.values())
    assert cn.streams.mem == held < 300 + len(big)


def test_sessions_are_counted_one_by_one_and_charged():
    streams = StreamEngine(StreamSettings(), True)
    table = FlowTable()
    for sport in (40000, 40001, 40002):
        Conn(sport=sport, streams=streams, table=table).handshake()
    assert streams.sessions == 3 and streams.stats()["stream.sessions"] == 3
    small = StreamEngine(StreamSettings(memcap=2 * SESSION_BYTES), True)
    t2 = FlowTable()
    policies = [Conn(sport=p, streams=small, table=t2).send(True, "S", CISN)[2] for p in (1, 2, 3)]
    assert policies == ["", "", "memcap"] and small.sessions == 2


@pytest.mark.parametrize("copts,sopts,fits", [
    ([("WScale", 2)], [("WScale", 3)], True),
    ([("WScale", 0)], [("WScale", 3)], True),    # a client scale of 0 is still an offer
    ([("WScale", 3)], [("WScale", 0)], False),   # the server's own scale (0) applies to its window
    ([("WScale", 2)], [], False),
    ([], [("WScale", 3)], False),
], ids=["both", "client-zero", "server-zero", "client-only", "server-only"])
def test_windows_scale_only_when_both_syns_offer_it(copts, sopts, fits):
    """The server advertises a window of 1 (8 bytes when its scale of 3 applies): 8 bytes
    of data fit it exactly or are out of window."""
    cn = Conn()
    cn.handshake(copts=copts, sopts=sopts)
    cn.send(False, "A", SISN + 1, CISN + 1, win=1)
    p, view, _ = cn.c(0, b"z" * 8)
    assert ("stream.est_packet_out_of_window" in p.events) is not fits


def test_an_ack_beyond_what_the_peer_may_have_sent_is_invalid():
    cn = Conn()
    cn.handshake()
    cn.c(0, b"q" * 100)
    cn.send(False, "A", SISN + 1, CISN + 1 + 100, win=50)          # the server's window: 50
    p, _, _ = cn.send(True, "A", CISN + 101, SISN + 1 + 65535 + 1)  # acks past the server's window
    assert "stream.est_invalid_ack" in p.events
    p, _, _ = cn.send(True, "A", CISN + 101, SISN + 1 + 65535)      # exactly its window: fine
    assert "stream.est_invalid_ack" not in p.events


def test_ids_flushes_each_direction_at_its_own_chunk():
    cn = Conn(inline=False, toserver_chunk_size=200, toclient_chunk_size=500)
    cn.handshake()
    cn.c(0, b"a" * 300)
    _, view, _ = cn.s_ack(300)
    _, view, _ = cn.c(300, b"b" * 10)                            # 300 acknowledged >= 200: flushed
    assert view.bufs and b"".join(view.bufs) == b"a" * 300
    for i in range(3):                                           # server data: 300 < 500, no flush
        cn.send(False, "PA", SISN + 1 + 100 * i, CISN + 311, b"s" * 100)
    cn.send(True, "A", CISN + 311, SISN + 301)
    _, view, _ = cn.send(False, "PA", SISN + 301, CISN + 311, b"t")
    assert not view.bufs


@pytest.mark.parametrize("opts,want", [
    (bytes([3, 3, 7]), 7),
    (bytes([1, 1, 3, 3, 20]), 14),              # capped at 14 (RFC 7323)
    (bytes([2, 4, 5, 180, 3, 3, 2]), 2),         # after an MSS option
    (bytes([0, 3, 3, 2]), -1),                  # end of options first
    (bytes([3, 4, 2, 0]), -1),                  # wrong length for a window scale
    (bytes([2, 1, 3, 3, 2]), -1),               # a length under 2: give up
    (bytes([3, 3]), -1),                        # cut
    (bytes([8, 10]) + bytes(8) + bytes([3, 3, 5]), 5),   # after a timestamp
], ids=["alone", "capped", "after-mss", "eol", "bad-len", "short-len", "cut", "after-ts"])
def test_window_scale_option(opts, want):
    assert window_scale(opts) == want


# ------------------------------------------------------------------ taking segments in
@pytest.mark.parametrize("inline,check,event,payload", [
    (True, False, True, b"x" * 100 + b"B" * 50),        # inline: the held data wins, the frame is rewritten
    (False, True, True, b"x" * 150),                    # IDS (BSD): the new segment starts first and wins
    (False, False, False, b"x" * 150),                  # IDS: the event only when asked for
], ids=["inline", "ids-check", "ids"])
def test_new_data_over_a_held_segment(inline, check, event, payload):
    cn = Conn(inline=inline, check_overlap_different_data=check)
    cn.handshake()
    cn.c(0, b"a" * 100)
    cn.c(200, b"B" * 100)                               # held
    p, view, _ = cn.c(100, b"x" * 150)                  # overlaps the held segment's first 50
    assert ("stream.reassembly_overlap_different_data" in p.events) is event
    assert view.payload == payload and view.rewritten is inline
    ssn = cn.table.all()[0].tcp
    assert bytes(ssn.client.data) == b"a" * 100 + payload[:100] + (b"B" * 100 if inline else b"x" * 50 + b"B" * 50)
    assert cn.streams.stats().get("stream.overlap_diff_data") == 1


def test_the_reassembly_memcap_to_the_byte():
    cn = Conn(reassembly_memcap=300)
    cn.handshake()
    assert cn.c(0, b"a" * 100)[2] == "" and cn.c(100, b"b" * 200)[2] == ""        # exactly the memcap
    p, view, policy = cn.c(300, b"c")
    assert (view, policy) == (None, "reassembly_memcap") and "stream.reassembly_insert_memcap" in p.events
    p, view, policy = cn.c(500, b"d")                                            # out of order too
    assert (view, policy) == (None, "reassembly_memcap")
    assert cn.streams.stats()["stream.reassembly_memcap_drop"] == 2 and cn.streams.mem == 300


def test_a_held_segment_again_keeps_the_longer_one():
    cn = Conn()
    cn.handshake()
    cn.c(500, b"h" * 100)
    cn.c(500, b"h" * 50)                                # shorter: the held one stays
    ssn = cn.table.all()[0].tcp
    assert ssn.client.ooo == {500: b"h" * 100} and cn.streams.mem == 100
    cn.c(500, b"h" * 150)                               # longer: replaces it
    assert ssn.client.ooo == {500: b"h" * 150} and ssn.client.ooo_bytes == 150 and cn.streams.mem == 150
    cn.c(500, b"H" * 150)                               # as long, other bytes: the first data stays
    assert ssn.client.ooo == {500: b"h" * 150}
    assert cn.streams.stats()["stream.ooo_segments"] == 2


def test_at_most_max_ooo_segments_are_held():
    from rules.stream import MAX_OOO_SEGMENTS
    cn = Conn()
    cn.handshake()
    for k in range(MAX_OOO_SEGMENTS):
        cn.c(10 + 2 * k, b"o")                          # one-byte holes between them
    ssn = cn.table.all()[0].tcp
    assert len(ssn.client.ooo) == MAX_OOO_SEGMENTS
    p, view, _ = cn.c(10 + 2 * MAX_OOO_SEGMENTS, b"o")
    assert view is None and "stream.reassembly_insert_limit" in p.events
    assert cn.streams.stats()["stream.ooo_limit"] == 1 and len(ssn.client.ooo) == MAX_OOO_SEGMENTS


def test_a_segment_starting_before_the_stream_keeps_what_is_in_it():
    cn = Conn()
    cn.handshake()
    _, view, _ = cn.send(True, "PA", CISN + 1 - 10, SISN + 1, b"0123456789abcdefghij")
    ssn = cn.table.all()[0].tcp
    assert bytes(ssn.client.data) == b"abcdefghij" and view.bufs == (b"abcdefghij",)
    _, view, _ = cn.send(True, "PA", CISN + 1 - 30, SISN + 1, b"z" * 20)          # wholly before it
    assert view is None and bytes(ssn.client.data) == b"abcdefghij"


def test_data_again_once_the_session_closes_is_an_invalid_retransmission():
    cn = Conn()
    cn.handshake()
    cn.c(0, b"r" * 100)
    cn.s_ack(100)
    cn.send(True, "FA", CISN + 101, SISN + 1)
    p, view, policy = cn.c(0, b"r" * 100)
    assert (view, policy) == (None, "invalid")
    assert {"stream.pkt_retransmission", "stream.pkt_spurious_retransmission"} <= set(p.events)
    p, view, policy = cn.c(50, b"r" * 50)               # part of what was sent: invalid as well
    assert policy == "invalid"


# ------------------------------------------------------------------ more windows and edges
def test_a_window_at_the_two_thirds_boundary():
    cn = filled()
    _, view, _ = cn.c(400, DATA[400:580])                # 180 <= 200 (2/3 of 300): the chunk wide
    assert window(view) == (340, 640)


def test_the_window_of_a_retransmission_starting_before_the_stream():
    cn = filled()
    _, view, _ = cn.send(True, "PA", CISN + 1 - 10, SISN + 1, b"z" * 10 + DATA[:100])
    assert window(view) == (0, 300)


def test_a_segment_with_one_byte_in_the_stream_is_taken():
    cn = Conn()
    cn.handshake()
    _, view, _ = cn.send(True, "PA", CISN + 1 - 10, SISN + 1, b"0123456789a")
    assert view is not None and bytes(cn.table.all()[0].tcp.client.data) == b"a"


def test_server_windows_use_the_to_client_chunk():
    cn = Conn(toserver_chunk_size=1000, toclient_chunk_size=300)
    cn.handshake()
    for k in range(10):
        cn.send(False, "PA", SISN + 1 + 100 * k, CISN + 1, DATA[100 * k:100 * k + 100])
    _, view, _ = cn.send(False, "PA", SISN + 501, CISN + 1, DATA[500:600])
    assert window(view) == (400, 700)


def test_a_retransmission_with_other_bytes_in_the_middle_keeps_the_first():
    cn = filled()
    p, view, policy = cn.c(500, b"Z" * 100)
    assert view.payload == DATA[500:600] and view.rewritten and policy == ""
    assert "stream.reassembly_overlap_different_data" in p.events
    assert window(view) == (400, 700)


def test_retransmissions_are_counted_and_need_no_policy():
    cn = filled()
    for off in (900, 0):                                 # the last segment, the first
        _, view, policy = cn.c(off, DATA[off:off + 100])
        assert policy == ""
    assert cn.streams.stats()["stream.retransmissions"] == 2
    cn.c(2000, b"h" * 10)
    _, _, policy = cn.c(2000, b"h" * 5)                  # a held segment again
    assert policy == ""


def test_the_reassembly_memcap_to_the_byte_with_held_data():
    cn = Conn(reassembly_memcap=300)
    cn.handshake()
    cn.c(200, b"h" * 100)                                # held: 100
    _, view, policy = cn.c(0, b"a" * 200)                # 100 + 200: exactly the memcap
    assert policy == "" and view is not None and cn.streams.mem == 300
    assert bytes(cn.table.all()[0].tcp.client.data) == b"a" * 200 + b"h" * 100


def test_an_rst_with_data_is_not_taken():
    cn = Conn()
    cn.handshake()
    p, view, _ = cn.send(True, "RA", CISN + 1, SISN + 1, b"bye")
    assert "stream.rst_with_data" in p.events and view is None


@pytest.mark.parametrize("setting", ["midstream", "async_oneside"])
def test_a_session_picked_up_at_the_syn_ack_keeps_its_window_scale(setting):
    cn = Conn(**{setting: True})
    cn.send(False, "SA", SISN, CISN + 1, options=[("WScale", 3)])
    cn.send(True, "A", CISN + 1, SISN + 1)
    cn.send(False, "A", SISN + 1, CISN + 1, win=1)
    p, view, _ = cn.c(0, b"z" * 8)
    assert "stream.est_packet_out_of_window" in p.events        # the client never offered a scale: 1 byte
    ssn = cn.table.all()[0].tcp
    assert ssn.server.wscale == 3


def test_an_ack_beyond_the_window_while_closing_is_invalid_too():
    """Once a FIN went by the session leaves the bookkeeping fast path: the same check."""
    cn = Conn()
    cn.handshake()
    cn.c(0, b"q" * 100)
    cn.send(False, "FA", SISN + 1, CISN + 101)
    p, _, _ = cn.send(True, "A", CISN + 101, SISN + 1 + 65535 + 1)
    assert "stream.est_invalid_ack" in p.events
    p, _, _ = cn.send(True, "A", CISN + 101, SISN + 2)           # acks the FIN: fine
    assert "stream.est_invalid_ack" not in p.events


def test_a_tcp_packet_without_a_session_gets_no_view_and_no_policy():
    cn = Conn()
    assert cn.c(0, b"midstream")[1:] == (None, "")


def closing_states(seq) -> list[str]:
    from rules import stream as st
    names = {getattr(st, n): n for n in ("EST", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK",
                                         "CLOSING", "CLOSED")}
    cn = Conn()
    cn.handshake()
    out = []
    for who, flags, seq_, ack in seq:
        cn.send(who == "c", flags, seq_, ack)
        out.append(names[cn.table.all()[0].tcp.state])
    return out


@pytest.mark.parametrize("seq,want", [
    ([("s", "FA", SISN + 1, CISN + 1), ("c", "A", CISN + 1, SISN + 2), ("c", "FA", CISN + 1, SISN + 2),
      ("s", "A", SISN + 2, CISN + 2)], ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSED"]),
    ([("c", "FA", CISN + 1, SISN + 1), ("s", "FA", SISN + 1, CISN + 2), ("c", "A", CISN + 2, SISN + 2)],
     ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]),
    ([("s", "FA", SISN + 1, CISN + 1), ("c", "FA", CISN + 1, SISN + 1), ("s", "A", SISN + 2, CISN + 2)],
     ["FIN_WAIT1", "CLOSING", "TIME_WAIT"]),
    ([("s", "FA", SISN + 1, CISN + 1), ("c", "FA", CISN + 1, SISN + 2)], ["FIN_WAIT1", "TIME_WAIT"]),
], ids=["server-closes-first", "client-closes-first", "simultaneous", "fin-acking-fin"])
def test_the_closing_states_ids_flushes_follow(seq, want):
    assert closing_states(seq) == want


# ------------------------------------------------------------------ after the front was freed
def uniq(n: int) -> bytes:
    """n bytes in 100-byte blocks, each block its own 4-digit number repeated."""
    return b"".join((b"%04d" % i) * 25 for i in range(-(-n // 100)))[:n]


BIG = uniq(8000)


def big_window(view) -> tuple[int, int]:
    (buf,) = view.bufs
    start = BIG.find(buf)
    assert start >= 0 and BIG.count(buf) == 1
    return start, start + len(buf)


def test_the_window_of_a_retransmission_after_the_front_was_freed():
    cn = Conn(toserver_chunk_size=300, toclient_chunk_size=300)
    cn.handshake()
    for k in range(60):
        cn.c(100 * k, BIG[100 * k:100 * k + 100])
    cn.s_ack(5000)
    cn.c(6000, BIG[6000:6100])                          # frees the front, up to what was acknowledged
    me = cn.table.all()[0].tcp.client
    assert me.data_off == 5000
    _, view, _ = cn.c(5050, BIG[5050:5150])            # 50 held before it: the rest of the window after
    assert big_window(view) == (5000, 5300)
    _, view, _ = cn.c(5500, BIG[5500:5600])            # in the middle: shared out
    assert big_window(view) == (5400, 5700)


def test_ids_flushes_after_the_front_was_freed_give_each_byte_once():
    cn = Conn(inline=False, toserver_chunk_size=300, toclient_chunk_size=300)
    cn.handshake()
    flushed = b""
    for k in range(80):
        _, view, _ = cn.c(100 * k, BIG[100 * k:100 * k + 100])
        flushed += b"".join(view.bufs) if view is not None and view.bufs else b""
        cn.s_ack(100 * k + 100)
    me = cn.table.all()[0].tcp.client
    assert me.data_off > 0
    assert flushed == BIG[:len(flushed)] and len(flushed) >= 7500
    assert cn.streams.mem == me.end - me.data_off


def test_ids_frees_exactly_up_to_what_was_inspected():
    cn = Conn(inline=False, toserver_chunk_size=300, toclient_chunk_size=300)
    cn.handshake()
    for k in range(80):
        cn.c(100 * k, BIG[100 * k:100 * k + 100])
        cn.s_ack(100 * k + 100)
    me = cn.table.all()[0].tcp.client
    # a prune frees up to where an inspection ended (flushes end on the acknowledged
    # segment boundaries here), not a byte short of it
    assert me.data_off > 0 and me.data_off % 100 == 0
    assert cn.streams.mem == len(me.data) == me.end - me.data_off


def test_a_packet_without_ack_acknowledges_nothing():
    cn = Conn()
    cn.handshake()
    cn.c(0, b"d" * 10)
    cn.send(False, "FA", SISN + 1, CISN + 11)           # out of the fast path from here
    p, _, _ = cn.send(True, "F", CISN + 11, SISN + 1 + 70000)       # the ack field is not valid
    assert "stream.est_invalid_ack" not in p.events
    assert cn.table.all()[0].tcp.server.last_ack == 0
