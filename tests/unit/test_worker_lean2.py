"""The lean per-batch path of the worker (issue 8): rings handed over a batch at a time
(`V2Ring.batches`, `V3Ring.batches`), a batch's frames copied into the TX ring with one
`TxRing.put_many` before its RX slots go back to the kernel, `ring.ready()` as the cheap
look before a drain, and the clean-frame shortcut (the shared `rules.api.FORWARD`).
Rings in byte buffers and a model of the kernel's tpacket_snd: no kernel, no timing."""
from __future__ import annotations

import select as _select
import struct

import pytest

from bridge import afpacket as afp
from bridge.ring import (
    BATCH_FRAMES,
    SLL_PKTTYPE_V2,
    U32,
    V2_HDR,
    V3_HDR,
    TxRing,
    V2Ring,
    V3Ring,
)
from bridge.stats import Counters
from bridge.worker import SPIN_AFTER, SPIN_S, Worker, _Port
from conf.model import Config
from rules.api import FORWARD, ForwardAll, Inject, Result, Verdict

DST_SRC = bytes.fromhex("020000000002" "020000000001")
FS = 256                        # RX slot size in these rings


def frame(n: int, tag: int) -> bytes:
    """An n-byte IPv4 Ethernet frame whose payload bytes carry `tag` (0..255)."""
    return DST_SRC + b"\x08\x00" + bytes([tag]) * (n - 14)


def status_of(ring, i: int) -> int:
    return U32.unpack_from(ring.view, ring.offsets[i])[0]


def v2_ring(frames: list[bytes], nslots: int, *, status: int = afp.TP_STATUS_USER, head: int = 0,
            gap: bool = False) -> V2Ring:
    """`frames` in the slots from `head` on (wrapping); `gap`: a block size the frame size does
    not divide (jumbo-like geometry, slots not evenly spaced)."""
    block = 3 * FS + 64 if gap else 4 * FS
    per_block = block // FS
    nblocks = -(-nslots // per_block)
    g = afp.RingGeometry(afp.TPACKET_V2, block, nblocks, FS, nslots)
    ring = V2Ring(memoryview(bytearray(block * nblocks)), g)
    for k, data in enumerate(frames):
        off = ring.offsets[(head + k) % nslots]
        V2_HDR.pack_into(ring.view, off, status, len(data), len(data), 80, 94, 1700000000 + k, 0, 0, 0)
        ring.view[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        ring.view[off + 80:off + 80 + len(data)] = data
    ring.head = head
    return ring


class KernelTx:
    """tpacket_snd on a TxRing's buffer: every SEND_REQUEST slot from the kernel's head goes
    out, in ring order, and is made AVAILABLE again."""

    def __init__(self):
        self.head = 0
        self.sent: list[bytes] = []
        self.calls = 0
        self.tx: TxRing | None = None

    def send(self, data, flags=0):
        assert data == b"", "a socket with a TX ring only flushes"
        self.calls += 1
        tx, total = self.tx, 0
        while U32.unpack_from(tx.view, tx.offsets[self.head])[0] == afp.TP_STATUS_SEND_REQUEST:
            off = tx.offsets[self.head]
            n = U32.unpack_from(tx.view, off + 4)[0]
            self.sent.append(bytes(tx.view[off + TxRing.DATA:off + TxRing.DATA + n]))
            total += n
            U32.pack_into(tx.view, off, afp.TP_STATUS_AVAILABLE)
            self.head = (self.head + 1) % tx.frame_nr
        return total

    def fileno(self):
        return -1


class PS:
    def __init__(self, iface, sock):
        self.iface, self.sock, self.ignore_outgoing = iface, sock, True


def tx_ring(kernel: KernelTx, slots: int) -> TxRing:
    g = afp.RingGeometry(afp.TPACKET_V2, slots * 2048, 1, 2048, slots)
    tx = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth1")
    kernel.tx = tx
    return tx


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    class NoPoll:
        def register(self, *a):
            pass

        def poll(self, *a):
            return []

    monkeypatch.setattr(_select, "poll", NoPoll)
    monkeypatch.setattr("bridge.worker._c_wait_pass", None)   # (its wait is poll() in C)


def bridge(frames: list[bytes], inspector=None, *, rx_slots: int = 256, tx_slots: int = 512, head: int = 0):
    """A worker whose eth0 ring holds `frames`, forwarding through eth1's TX ring."""
    kernel = KernelTx()
    tx = tx_ring(kernel, tx_slots)
    port = _Port("eth0", PS("eth0", object()), v2_ring(frames, rx_slots, head=head), "ips", kernel, tx=tx)
    other = _Port("eth1", PS("eth1", kernel), v2_ring([], 8), "ips", object())
    return Worker([port, other], inspector or ForwardAll(), Config()), port, kernel


def accounted(c: Counters) -> bool:
    return c.received == c.forwarded + sum(c.dropped.values()) + sum(c.send_errors.values())


# ------------------------------------------------------------------ V2 batches
@pytest.mark.parametrize("gap", [False, True], ids=["even-slots", "gap-at-block-end"])
@pytest.mark.parametrize("head", [0, 5, 13], ids=["head-0", "head-5", "head-13"])
def test_v2_batches_cover_one_turn_in_order_and_hand_every_slot_back(gap, head):
    frames = [frame(60, k) for k in range(16)]
    ring = v2_ring(frames, 16, head=head, gap=gap)
    got = []
    sizes = []
    for batch in ring.batches(size=3):
        sizes.append(len(batch))
        got += [bytes(ring.view[off + h[3]:off + h[3] + h[2]]) for off, h in batch]
    assert got == frames                              # every frame once, in ring order from head
    assert sizes == [3, 3, 3, 3, 3, 1]                # one full turn, no more
    assert ring.head == head
    assert all(status_of(ring, i) == afp.TP_STATUS_KERNEL for i in range(16))


def test_v2_a_batch_stays_the_readers_until_the_next_is_asked_for():
    ring = v2_ring([frame(60, k) for k in range(5)], 8)
    it = ring.batches(size=2)
    first = next(it)
    assert [off for off, _ in first] == ring.offsets[:2]
    assert [status_of(ring, i) for i in range(5)] == [afp.TP_STATUS_USER] * 5
    second = next(it)
    assert len(second) == 2
    assert [status_of(ring, i) for i in range(5)] == [0, 0] + [afp.TP_STATUS_USER] * 3
    assert len(next(it)) == 1                        # stops at slot 5, the kernel's
    with pytest.raises(StopIteration):
        next(it)
    assert ring.head == 5 and all(status_of(ring, i) == 0 for i in range(8))


def test_v2_a_walk_stopped_inside_a_batch_leaves_its_slots_for_the_next_walk():
    ring = v2_ring([frame(60, k) for k in range(4)], 8)
    it = ring.batches(size=2)
    next(it)
    next(it)            # the first batch went back to the kernel
    it.close()          # the consumer stopped inside the second
    assert ring.head == 2
    assert [status_of(ring, i) for i in range(4)] == [0, 0, afp.TP_STATUS_USER, afp.TP_STATUS_USER]
    assert [len(b) for b in ring.batches(size=2)] == [2]


def test_v2_batches_never_look_past_a_kernel_owned_slot():
    ring = v2_ring([frame(60, 1), frame(60, 2)], 8)
    V2_HDR.pack_into(ring.view, ring.offsets[3], afp.TP_STATUS_USER, 60, 60, 80, 94, 0, 0, 0, 0)   # beyond a hole
    assert [len(b) for b in ring.batches(size=64)] == [2]
    assert ring.head == 2 and status_of(ring, 3) == afp.TP_STATUS_USER


def test_ready_is_the_head_slot_status():
    ring = v2_ring([frame(60, 1)], 8, head=7)
    assert ring.ready()
    list(ring.batches())
    assert not ring.ready() and ring.head == 0


def test_v3_batches_are_blocks_handed_back_after_their_last_frame():
    bs = 4096
    g = afp.RingGeometry(afp.TPACKET_V3, bs, 2, 2048, 4)
    ring = V3Ring(memoryview(bytearray(2 * bs)), g)
    for b, count in ((0, 2), (1, 1)):
        struct.pack_into("=III", ring.view, b * bs + 8, afp.TP_STATUS_USER, count, 48)
        off = b * bs + 48
        for k in range(count):
            V3_HDR.pack_into(ring.view, off, 128 if k < count - 1 else 0, 1700000000, k, 60, 60,
                             afp.TP_STATUS_USER, 68, 82, 0, 0, 0)
            off += 128
    assert ring.ready()
    it = ring.batches()
    assert len(next(it)) == 2
    assert U32.unpack_from(ring.view, 8)[0] == afp.TP_STATUS_USER        # still ours
    assert len(next(it)) == 1
    assert U32.unpack_from(ring.view, 8)[0] == afp.TP_STATUS_KERNEL
    assert list(it) == [] and not ring.ready() and ring.head == 0


# ------------------------------------------------------------------ TxRing.put_many
def test_put_many_queues_in_order_and_flushes_at_half_the_ring():
    kernel = KernelTx()
    tx = tx_ring(kernel, 8)
    src = b"".join(frame(64, k) for k in range(10))
    spans = [x for k in range(10) for x in (k * 64, k * 64 + 64)]
    c = Counters()
    tx.put_many(src, spans, c)
    assert kernel.calls == 2 and len(kernel.sent) == 8        # flushed at 4 queued, twice
    assert tx.queued == 2 and tx.head == 10 % 8
    tx.flush(c)
    assert kernel.sent == [frame(64, k) for k in range(10)] and c.forwarded == 10


def test_put_many_accounts_a_frame_it_cannot_copy_and_sends_the_rest():
    kernel = KernelTx()
    tx = tx_ring(kernel, 8)
    src = frame(64, 1) + frame(64, 2)
    c = Counters()
    tx.put_many(src, [0, 64, 64, "x", 64, 128], c)            # a broken span in the middle
    tx.flush(c)
    assert kernel.sent == [frame(64, 1), frame(64, 2)]
    assert c.forwarded == 2 and c.dropped == {"internal": 1}


def test_put_many_too_large_is_emsgsize_and_the_next_frames_go_on():
    kernel = KernelTx()
    tx = tx_ring(kernel, 4)
    src = frame(64, 1) + frame(3000, 2) + frame(64, 3)
    c = Counters()
    tx.put_many(src, [0, 64, 64, 3064, 3064, 3128], c)
    tx.flush(c)
    assert kernel.sent == [frame(64, 1), frame(64, 3)]
    assert c.send_errors == {"EMSGSIZE": 1} and c.oversize == 1 and c.forwarded == 2


# ------------------------------------------------------------------ the drain
@pytest.mark.parametrize("count", [1, BATCH_FRAMES, BATCH_FRAMES + 1, 200], ids=lambda n: f"{n}-frames")
def test_drain_forwards_every_frame_once_in_order_with_one_kick(count):
    frames = [frame(60 + k % 7, k % 256) for k in range(count)]
    w, port, kernel = bridge(frames, head=250)             # wraps around the 256-slot ring
    assert w.drain(port) == count
    assert kernel.sent == frames and kernel.calls == 1
    c = port.counters
    assert c.received == c.forwarded == c.inspected == count and accounted(c)
    assert all(status_of(port.ring, i) == afp.TP_STATUS_KERNEL for i in range(256))


def test_drain_with_nothing_waiting_sets_nothing_up():
    w, port, kernel = bridge([])
    assert w.drain(port) == 0
    assert kernel.calls == 0 and port.counters.as_dict() == Counters().as_dict()
    assert w.last_ts == 0.0


class Rejector:
    """Drops (REJECT) the frames whose tag byte is in `which`, with an inject out of the peer;
    clean frames get the shared FORWARD, and frames tagged 7 a FORWARD carrying an event."""

    def __init__(self, which):
        self.which = which
        self.seen = 0

    def inspect(self, data, meta):
        self.seen += 1
        tag = data[20]
        if tag in self.which:
            return Result(Verdict.REJECT, reason="rule", inject=(Inject(b"INJ%d" % tag + b"\0" * 56, back=False),))
        if tag == 7:
            return Result(Verdict.FORWARD, events=("event",))
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return {}


def test_an_inject_inside_a_batch_goes_out_after_the_frames_before_it():
    frames = [frame(60, k) for k in range(6)]
    w, port, kernel = bridge(frames, Rejector({3}))
    w.drain(port)
    assert kernel.sent == frames[:3] + [b"INJ3" + b"\0" * 56] + frames[4:]
    c = port.counters
    assert c.forwarded == 5 and c.dropped == {"rule": 1} and c.injected == 1 and accounted(c)


def test_a_result_that_is_not_the_shared_forward_is_still_read():
    frames = [frame(60, k) for k in range(9)]
    w, port, kernel = bridge(frames, Rejector(set()))
    written = []
    w.config = Config(eve_log="/nonexistent/eve.json")
    w.write_events = written.extend
    w.drain(port)
    assert kernel.sent == frames and written == ["event"]


class _Conn:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


class _PollPS(PS):
    """A PacketSocket `run` can register with the poller (NoPoll: nothing is ever ready,
    the pass drains every port anyway)."""

    def __init__(self, iface, sock, fd):
        super().__init__(iface, sock)
        self.fd = fd

    def fileno(self):
        return self.fd


def test_a_pass_writes_its_eve_events_after_the_frames_of_every_port_went_out():
    """An alert on one port must not hold up what waits on the other: the reply to the frame
    that alerted is often in the peer's ring as soon as that frame is sent (veth).  One pass
    of `run` drains both ports, then writes the pass's events once."""
    k0, k1 = KernelTx(), KernelTx()
    tx_on_eth1, tx_on_eth0 = tx_ring(k1, 8), tx_ring(k0, 8)
    request, reply = frame(60, 7), frame(60, 0)      # tag 7: forwarded with an event
    eth0 = _Port("eth0", _PollPS("eth0", k0, 100), v2_ring([request], 8), "ips", k1, tx=tx_on_eth1)
    eth1 = _Port("eth1", _PollPS("eth1", k1, 101), v2_ring([reply], 8), "ips", k0, tx=tx_on_eth0)
    w = Worker([eth0, eth1], Rejector(set()), Config(eve_log="/nonexistent/eve.json", inspect_time_limit=0),
               _Conn())
    writes = []

    class EndOfPass(Exception):
        pass

    def write_events(events):
        writes.append((list(events), list(k1.sent), list(k0.sent)))
        raise EndOfPass

    w.write_events = write_events
    with pytest.raises(EndOfPass):
        w.run()
    # the pass's one write: its one event, with both frames already sent on
    assert writes == [(["event"], [request], [reply])]
    assert eth0.counters.forwarded == eth1.counters.forwarded == 1
    assert [m[0] for m in w.conn.sent] == ["ready"]


def test_a_pass_that_fails_midway_still_writes_the_events_it_found():
    k0, k1 = KernelTx(), KernelTx()
    eth0 = _Port("eth0", _PollPS("eth0", k0, 100), v2_ring([frame(60, 7)], 8), "ips", k1, tx=tx_ring(k1, 8))
    eth1 = _Port("eth1", _PollPS("eth1", k1, 101), v2_ring([frame(60, 0)], 8), "ips", k0, tx=tx_ring(k0, 8))
    w = Worker([eth0, eth1], Rejector(set()), Config(eve_log="/nonexistent/eve.json", inspect_time_limit=0),
               _Conn())
    written = []
    w.write_events = written.extend
    drain = w.drain

    def failing(port, events=None):
        if port is eth1:
            raise RuntimeError("the second port's drain fails")
        return drain(port, events)

    w.drain = failing
    with pytest.raises(RuntimeError):
        w.run()
    assert written == ["event"] and k1.sent == [frame(60, 7)]


def test_a_drain_on_its_own_still_writes_its_events_at_its_end():
    w, port, kernel = bridge([frame(60, 7), frame(60, 1)], Rejector(set()))
    w.config = Config(eve_log="/nonexistent/eve.json")
    written = []
    w.write_events = lambda events: written.append((list(events), len(kernel.sent)))
    w.drain(port)
    assert written == [(["event"], 2)]
    collected: list = []
    w2, port2, kernel2 = bridge([frame(60, 7)], Rejector(set()))
    w2.config = Config(eve_log="/nonexistent/eve.json")
    w2.write_events = lambda events: pytest.fail("a drain given a list only collects")
    w2.drain(port2, collected)
    assert collected == ["event"] and len(kernel2.sent) == 1


def test_spin_sees_a_frame_at_a_ring_head_and_gives_up_on_empty_rings():
    w, port, kernel = bridge([frame(60, 1)])
    assert w._spin(0.001) is True
    w.drain(port)
    assert w._spin(0.001) is False


@pytest.mark.parametrize("count, spins", [(SPIN_AFTER, 1), (SPIN_AFTER - 1, 0)])
def test_a_busy_pass_looks_at_the_rings_before_sleeping_a_quiet_one_does_not(count, spins):
    """After a pass of SPIN_AFTER frames or more the worker watches the ring heads a moment
    before poll() (a worker asleep is woken by the kernel for the next frame, in its
    sender's softirq); after a quieter pass it sleeps at once."""
    k0, k1 = KernelTx(), KernelTx()
    frames = [frame(60, k) for k in range(count)]
    eth0 = _Port("eth0", _PollPS("eth0", k0, 100), v2_ring(frames, 64), "ips", k1, tx=tx_ring(k1, 64))
    eth1 = _Port("eth1", _PollPS("eth1", k1, 101), v2_ring([], 8), "ips", k0, tx=tx_ring(k0, 8))
    w = Worker([eth0, eth1], Rejector(set()), Config(inspect_time_limit=0), _Conn())
    spun = []
    w._spin = spun.append
    passes = []
    one_pass = w._pass

    class Done(Exception):
        pass

    def counted(readable, events):
        if passes:
            raise Done
        passes.append(1)
        return one_pass(readable, events)

    w._pass = counted
    with pytest.raises(Done):
        w.run()
    assert k1.sent == frames and spun == [SPIN_S] * spins
