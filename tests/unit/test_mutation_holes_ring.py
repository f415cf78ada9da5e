"""bridge.ring behaviour the mutation run (tests/bench/mutation.py) found unchecked: the
TX ring's slot layout with a gap at each block's end, the flush threshold of an odd
ring, a busy head slot (put, the bounded wait, ENOBUFS, send_now after a wait), send()
failing with EMSGSIZE or an errno Python does not name, the failing tail reclaimed
across the ring's end, the 802.1Q allowance over the MTU to the byte, the counters over
several slow-path flushes; an RX walk over a whole turn at once, V3's skip_hole, and
open_ring on a real mapping (a file stands in for the packet socket)."""
from __future__ import annotations

import errno
import select as _select
import struct

import pytest

from bridge import afpacket as afp
from bridge.ring import U32, V2_HDR, TxRing, V2Ring, V3Ring, open_ring
from bridge.stats import Counters

DST_SRC = bytes.fromhex("020000000002" "020000000001")


def frame(n: int, tag: int = 0) -> bytes:
    return DST_SRC + b"\x08\x00" + bytes([tag]) * (n - 14)


def tagged(n: int, tpid: bytes = b"\x81\x00") -> bytes:
    return DST_SRC + tpid + b"\x00\x64\x08\x00" + b"t" * (n - 18)


class Kernel:
    """tpacket_snd: SEND_REQUEST slots from the kernel's head go out in ring order; `stuck`
    takes them but never hands the slots back (TP_STATUS_SENDING); `fail` raises that errno on the frame at
    that position of the whole run (it stays SEND_REQUEST); frames longer than
    mtu + 14 (+4 for an 802.1Q tag) are skipped and left out of the byte count."""

    def __init__(self, mtu=1500, stuck=False, fail=None):
        self.mtu, self.stuck, self.fail = mtu, stuck, dict(fail or {})
        self.head = 0
        self.sent: list[bytes] = []
        self.calls = 0
        self.seen = 0
        self.tx: TxRing | None = None

    def send(self, data, flags=0):
        self.calls += 1
        tx, total = self.tx, 0
        while U32.unpack_from(tx.view, tx.offsets[self.head])[0] == afp.TP_STATUS_SEND_REQUEST:
            off = tx.offsets[self.head]
            n = U32.unpack_from(tx.view, off + 4)[0]
            body = bytes(tx.view[off + TxRing.DATA:off + TxRing.DATA + n])
            code = self.fail.pop(self.seen, None)
            if code:
                raise OSError(code, "fake xmit")
            self.seen += 1
            if self.stuck:                  # taken, but the driver never gives the slot back
                U32.pack_into(tx.view, off, afp.TP_STATUS_SENDING)
                total += n
                self.head = (self.head + 1) % tx.frame_nr
                continue
            if n <= self.mtu + 14 or (body[12:14] == b"\x81\x00" and n <= self.mtu + 18):
                self.sent.append(body)
                total += n
            U32.pack_into(tx.view, off, afp.TP_STATUS_AVAILABLE)
            self.head = (self.head + 1) % tx.frame_nr
        return total

    def fileno(self):
        return -1


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    class NoPoll:
        def register(self, *a):
            pass

        def poll(self, *a):
            return []

    monkeypatch.setattr(_select, "poll", NoPoll)
    monkeypatch.setattr("bridge.worker._c_wait_pass", None)   # (its wait is poll() in C)


def tx_ring(kernel: Kernel, slots: int, *, block: int | None = None, nblocks: int = 1) -> TxRing:
    g = afp.RingGeometry(afp.TPACKET_V2, block or slots * 2048, nblocks, 2048, slots)
    tx = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth1")
    kernel.tx = tx
    return tx


def test_tx_slots_never_straddle_a_block():
    k = Kernel()
    tx = tx_ring(k, 6, block=3 * 2048 + 512, nblocks=2)
    b = 3 * 2048 + 512
    assert tx.offsets == [0, 2048, 4096, b, b + 2048, b + 4096]
    c = Counters()
    tx.put_many(b"".join(frame(60, i) for i in range(6)), [x for i in range(6) for x in (60 * i, 60 * i + 60)], c)
    tx.flush(c)
    assert k.sent == [frame(60, i) for i in range(6)] and c.forwarded == 6


def test_an_odd_ring_flushes_at_half_rounded_down():
    k = Kernel()
    tx = tx_ring(k, 5)
    c = Counters()
    tx.put_many(frame(60, 1) + frame(60, 2), [0, 60, 60, 120], c)
    assert k.calls == 1 and k.sent == [frame(60, 1), frame(60, 2)] and tx.queued == 0


def test_put_wraps_and_refuses_a_busy_slot_without_touching_it():
    k = Kernel()
    tx = tx_ring(k, 2)
    c = Counters()
    assert tx.put(frame(60, 1), 0, 60) and tx.put(frame(60, 2), 0, 60)
    assert tx.head == 0 and (tx.queued, tx.qbytes) == (2, 120)
    assert tx.put(frame(60, 3), 0, 60) is False            # slot 0 still waits to be sent
    assert bytes(tx.view[TxRing.DATA:TxRing.DATA + 60]) == frame(60, 1)
    tx.flush(c)
    assert k.sent == [frame(60, 1), frame(60, 2)] and c.forwarded == 2
    assert tx.put(frame(60, 3), 0, 60) and tx.head == 1


def test_a_driver_that_never_gives_a_slot_back_is_enobufs_after_a_bounded_wait():
    k = Kernel(stuck=True)
    tx = tx_ring(k, 2)
    c = Counters()
    src = frame(60, 1) * 2 + b"\0" * 3000 + frame(60, 9)
    tx.put_many(src, [0, 60, 60, 120, 3120, 3180], c)      # the third frame sits far into src
    assert c.send_errors == {"ENOBUFS": 1} and c.oversize == 0 and c.forwarded == 2
    assert tx.wait(c) is False
    assert tx.send_now(frame(54, 7), Counters()) == errno.ENOBUFS


def test_send_is_put_many_of_one_frame():
    k = Kernel()
    tx = tx_ring(k, 2)                                     # flushes at one queued
    c = Counters()
    src = b"xx" + frame(60, 4)
    tx.send(src, 2, 62, c)
    assert k.sent == [frame(60, 4)] and c.forwarded == 1


class Completing:
    """select.poll while the driver finishes: the slots it held are available again."""

    def __init__(self, tx_of):
        self.tx_of = tx_of

    def __call__(self):
        return self

    def register(self, *a):
        pass

    def poll(self, *a):
        tx = self.tx_of()
        for off in tx.offsets:
            if U32.unpack_from(tx.view, off)[0] == afp.TP_STATUS_SENDING:
                U32.pack_into(tx.view, off, afp.TP_STATUS_AVAILABLE)
        return []


def test_a_frame_waits_for_the_driver_then_goes_whole(monkeypatch):
    k = Kernel(stuck=True)
    tx = tx_ring(k, 2)
    monkeypatch.setattr(_select, "poll", Completing(lambda: tx))
    c = Counters()
    tx.put_many(frame(60, 1) + frame(60, 2), [0, 60, 60, 120], c)          # both slots held by the driver
    src = b"pad" + frame(70, 3)
    tx.put_many(src, [3, 73], c)                          # head busy: waits, then the whole frame
    assert c.send_errors == {} and c.forwarded == 3
    assert bytes(tx.view[TxRing.DATA:TxRing.DATA + 70]) == frame(70, 3)
    tx.put_many(frame(60, 4), [0, 60], c)                 # the other slot held too: head busy again
    assert tx.head == 0 and U32.unpack_from(tx.view, 0)[0] == afp.TP_STATUS_SENDING
    assert tx.send_now(frame(54, 7), c) == 0              # the same wait for an injected frame
    assert bytes(tx.view[TxRing.DATA:TxRing.DATA + 54]) == frame(54, 7)
    assert U32.unpack_from(tx.view, 4)[0] == 54


def test_send_now_waits_for_a_busy_head_slot_then_sends_the_whole_frame():
    k = Kernel()
    tx = tx_ring(k, 2)
    c = Counters()
    assert tx.put(frame(60, 1), 0, 60) and tx.put(frame(60, 2), 0, 60)   # both slots queued, head busy
    assert tx.send_now(frame(54, 7), c) == 0
    assert k.sent == [frame(60, 1), frame(60, 2), frame(54, 7)] and c.forwarded == 2


def test_send_now_reports_an_errno_python_does_not_name_as_eio():
    k = Kernel(fail={0: 200})
    tx = tx_ring(k, 4)
    assert tx.send_now(frame(54, 7), Counters()) == errno.EIO


@pytest.mark.parametrize("rounds", [1, 2])
def test_emsgsize_from_send_is_oversize_for_every_frame_it_left(rounds):
    k = Kernel()
    tx = tx_ring(k, 8)
    c = Counters()
    for r in range(rounds):
        k.fail = {k.seen + 1: errno.EMSGSIZE}                 # the second frame of each round
        for i in range(3):
            assert tx.put(frame(60, i), 0, 60)
        tx.flush(c)
    assert c.send_errors == {"EMSGSIZE": 2 * rounds} and c.oversize == 2 * rounds
    assert c.forwarded == rounds


def test_a_failing_tail_is_reclaimed_across_the_rings_end():
    k = Kernel()
    tx = tx_ring(k, 4)
    c = Counters()
    for i in range(3):
        tx.put(frame(60, i), 0, 60)
    tx.flush(c)                                          # head at 3
    k.fail = {k.seen + 1: errno.ENETDOWN}
    for i in range(3):                                   # slots 3, 0, 1
        assert tx.put(frame(60, 10 + i), 0, 60)
    tx.flush(c)
    assert c.forwarded == 4 and c.send_errors == {"ENETDOWN": 2}
    assert tx.head == k.head == 0
    assert all(U32.unpack_from(tx.view, off)[0] == afp.TP_STATUS_AVAILABLE for off in tx.offsets)


@pytest.mark.parametrize("body,ok", [
    (tagged(1518), True),                        # MTU 1500 + 14 + the 4-byte tag
    (tagged(1519), False),
    (tagged(1518, b"\x88\xa8"), False),          # only an 802.1Q tag is allowed past the MTU
    (tagged(1518, b"\x81\x01"), False),
    (frame(1514), True),
    (frame(1515), False),
], ids=["8021q-at-limit", "8021q-one-over", "8021ad", "not-8021q", "untagged-at-limit", "untagged-one-over"])
def test_the_mtu_check_after_a_short_send_to_the_byte(body, ok, monkeypatch):
    monkeypatch.setattr(afp, "get_mtu", lambda name: 1500)
    k = Kernel(mtu=1500)
    tx = tx_ring(k, 8)
    c = Counters()
    tx.put(frame(1515, 1), 0, 1515)                      # always over: send() comes back short
    tx.put(body, 0, len(body))
    tx.flush(c)
    assert c.forwarded == (1 if ok else 0)
    assert c.send_errors == {"EMSGSIZE": 1 if ok else 2} and c.oversize == (1 if ok else 2)


def test_slow_path_flushes_add_up(monkeypatch):
    monkeypatch.setattr(afp, "get_mtu", lambda name: 1500)
    k = Kernel(mtu=1500)
    tx = tx_ring(k, 8)
    c = Counters()
    for _ in range(2):
        tx.put(frame(1600, 1), 0, 1600)
        tx.put(frame(60, 2), 0, 60)
        tx.flush(c)
    assert c.forwarded == 2 and c.send_errors == {"EMSGSIZE": 2}
    assert k.sent == [frame(60, 2)] * 2


# ------------------------------------------------------------------ RX rings
def test_a_walk_of_a_whole_ready_ring_at_once_hands_every_slot_back():
    n, fs = 16, 256
    g = afp.RingGeometry(afp.TPACKET_V2, 4 * fs, 4, fs, n)
    ring = V2Ring(memoryview(bytearray(g.size)), g)
    for i in range(n):
        V2_HDR.pack_into(ring.view, ring.offsets[i], afp.TP_STATUS_USER, 60, 60, 80, 94, 0, 0, 0, 0)
    ring.head = 5
    assert [len(b) for b in ring.batches(size=n)] == [n]
    assert ring.head == 5
    assert all(U32.unpack_from(ring.view, off)[0] == afp.TP_STATUS_KERNEL for off in ring.offsets)


def test_v3_skip_hole_moves_to_the_next_ready_block():
    bs = 4096
    g = afp.RingGeometry(afp.TPACKET_V3, bs, 4, 2048, 8)
    ring = V3Ring(memoryview(bytearray(4 * bs)), g)
    ring.head = 3
    struct.pack_into("=III", ring.view, 1 * bs + 8, afp.TP_STATUS_USER, 0, 48)
    assert ring.skip_hole() == 2 and ring.head == 1
    assert ring.skip_hole() == 0 and ring.head == 1    # the head block is ready: nothing to skip


class FilePS:
    """A packet socket as open_ring sees it; a file gives the mapping."""

    def __init__(self, f, g, tg=None):
        self._f, self.geometry, self.sock, self.iface = f, g, object(), "eth0"
        if tg is not None:
            self.tx_geometry = tg

    def fileno(self):
        return self._f.fileno()


@pytest.mark.parametrize("with_tx", [False, True], ids=["rx-only", "rx-and-tx"])
def test_open_ring_maps_rx_then_tx_shared(tmp_path, with_tx):
    g = afp.RingGeometry(afp.TPACKET_V2, 4096, 2, 2048, 4)
    tg = afp.RingGeometry(afp.TPACKET_V2, 4096, 1, 2048, 2) if with_tx else None
    path = tmp_path / "ring"
    with open(path, "w+b") as f:
        f.truncate(g.size + (tg.size if tg else 0))
        ring = open_ring(FilePS(f, g, tg))
        assert isinstance(ring, V2Ring) and len(ring.view) == g.size and ring.buf is ring.mm
        U32.pack_into(ring.view, ring.offsets[3], afp.TP_STATUS_USER)
        if with_tx:
            assert isinstance(ring.tx, TxRing) and len(ring.tx.view) == tg.size and ring.tx.base == g.size
            assert ring.tx.put(frame(60, 5), 0, 60)
        else:
            assert ring.tx is None
        ring.mm.flush()
        data = path.read_bytes()                       # MAP_SHARED: the writes are the file's
        assert U32.unpack_from(data, 3 * 2048)[0] == afp.TP_STATUS_USER
        if with_tx:
            assert data[g.size + TxRing.DATA:g.size + TxRing.DATA + 60] == frame(60, 5)
        del ring


def test_open_ring_v3():
    g = afp.RingGeometry(afp.TPACKET_V3, 4096, 2, 2048, 4)
    import tempfile
    with tempfile.TemporaryFile() as f:
        f.truncate(g.size)
        ring = open_ring(FilePS(f, g))
        assert isinstance(ring, V3Ring) and ring.tx is None and len(ring.view) == g.size
