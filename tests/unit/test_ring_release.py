"""Every RX slot handed back to the kernel exactly once, and never read after (bridge.ring
V2Ring.batches, bridge.worker.Worker.drain), on the forward, drop, reject, bypass and
error paths.

The other unit tests' rings are plain bytearrays: handing a slot back means writing
TP_STATUS_KERNEL (0) into its status word, and writing it twice, or reading the frame
after it, leaves no trace there.  On a live ring it does: once a slot is the kernel's
it may hold the next frame at any moment, so a second release throws that frame away
(or hands the kernel a slot it is still filling), and a late read forwards or inspects
another frame's bytes.  `Guard` stands in for the ring's status words (V2Ring.words,
through which the ring hands slots back) and acts as that kernel would: it records a
release of a slot the reader does not hold (twice, or never given), and it overwrites a
released slot's frame at once, so any later read sees poison instead of the frame.

The Guard sees what Python writes through `words`; the compiled walk (bridge/_ringpass.c)
writes the ring's memory itself, so these tests take the Python walk (`python_walk`), which
also finishes every frame the compiled one stops at.  tests/unit/test_ring_pass.py runs the
same traffic through both walks and compares everything they leave behind."""
from __future__ import annotations

import errno
import functools

import pytest
from scapy.all import IP, UDP, Ether

from bridge import afpacket as afp
from bridge.ring import BATCH_FRAMES, SLL_PKTTYPE_V2, U32, V2_HDR, TxRing, V2Ring
from bridge.stats import unaccounted
from bridge.worker import FLOW_REASON, Worker, _Port
from conf.model import Config
from rules.api import FORWARD, Bypass, Inject, Result, Verdict

MAC = 80                               # tp_mac: frame data offset in a slot (4 bytes of headroom before it)
POISON = 0xEE


@pytest.fixture(autouse=True)
def python_walk(monkeypatch):
    """Worker.drain without the compiled walk (see the module docstring)."""
    import bridge.worker

    monkeypatch.setattr(bridge.worker, "_c_ring_pass", None)


@functools.cache
def frame(k: int, n: int = 64) -> bytes:
    """An n-byte IPv4/UDP frame (one flow) whose payload bytes are all its number `k`."""
    head = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=40000, dport=53, len=n - 34)
                 / (b"\0" * (n - 42)))
    return head[:42] + bytes([k % 256]) * (n - 42)


class Guard:
    """The status words of a V2 ring, watched (see the module docstring)."""

    def __init__(self, ring: V2Ring):
        self.ring = ring
        self.words = ring.words
        self.slot_at = {off >> 2: i for i, off in enumerate(ring.offsets)}
        self.errors: list[str] = []
        self.released: list[int] = []
        self.kernel_head = 0           # the next slot the kernel fills
        ring.words = self

    def __len__(self):
        return len(self.words)

    def __getitem__(self, k):
        return self.words[k]

    def __setitem__(self, k, value):
        if isinstance(k, slice):
            for i, v in zip(range(*k.indices(len(self.words))), value):
                self._set(i, v)
        else:
            self._set(k, value)

    def _set(self, i: int, v: int) -> None:
        slot = self.slot_at.get(i)
        if slot is None or v != afp.TP_STATUS_KERNEL:
            self.words[i] = v
            return
        if not self.words[i] & afp.TP_STATUS_USER:
            self.errors.append(f"slot {slot} handed back but it was not the reader's (twice, or never given)")
        self.words[i] = v
        self.released.append(slot)
        off = self.ring.offsets[slot]
        size = self.ring.frame_size
        self.ring.view[off + 4:off + size] = bytes([POISON]) * (size - 4)    # the kernel reuses it

    def deliver(self, frames: list[bytes], *, status: int = afp.TP_STATUS_USER, pkttype: int = afp.PACKET_HOST,
                snap: int | None = None) -> None:
        """The kernel writes `frames` into the next slots, which must be its own."""
        view = self.ring.view
        for data in frames:
            slot = self.kernel_head
            off = self.ring.offsets[slot]
            if self.words[off >> 2] & afp.TP_STATUS_USER:
                self.errors.append(f"slot {slot} still the reader's when the kernel needs it")
                return
            caplen = len(data) if snap is None else snap
            V2_HDR.pack_into(view, off, 0, len(data), caplen, MAC, MAC + 14, 1700000000 + slot, 0, 0, 0)
            view[off + SLL_PKTTYPE_V2] = pkttype
            view[off + MAC:off + MAC + caplen] = data[:caplen]
            U32.pack_into(view, off, status)                    # status last, as the kernel does
            self.kernel_head = (slot + 1) % self.ring.frame_nr


def guarded_ring(nslots: int = 16, *, gap: bool = False) -> Guard:
    """A V2 ring of 256-byte slots; `gap`: a block the slot size does not divide (slots not
    evenly spaced, so slots go back one write each instead of one strided write)."""
    fs = 256
    block = 3 * fs + 64 if gap else 4 * fs
    per_block = block // fs
    nblocks = -(-nslots // per_block)
    g = afp.RingGeometry(afp.TPACKET_V2, block, nblocks, fs, nslots)
    return Guard(V2Ring(memoryview(bytearray(block * nblocks)), g))


class KernelTx:
    """tpacket_snd on a TxRing: every SEND_REQUEST slot from the kernel's head goes out."""

    def __init__(self):
        self.head = 0
        self.sent: list[bytes] = []
        self.tx: TxRing | None = None

    def send(self, data, flags=0):
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


class PlainSock:
    """A peer socket without a TX ring: send() copies the frame out at once."""

    def __init__(self, fail: int = 0):
        self.sent: list[bytes] = []
        self.fail = fail

    def send(self, data, flags=0):
        if self.fail:
            raise OSError(self.fail, "refused")
        self.sent.append(bytes(data))
        return len(data)

    def fileno(self):
        return -1


class PS:
    def __init__(self, iface, sock):
        self.iface, self.sock, self.ignore_outgoing, self.ifindex = iface, sock, True, 0


class Judge:
    """An inspector deciding by the frame's number: `drop`, `reject` (with an inject) or
    `raise` sets; it checks every frame it is handed is the frame, not poison."""

    def __init__(self, drop=(), reject=(), raises=(), bypass=None):
        self.drop, self.reject, self.raises, self.bypass = set(drop), set(reject), set(raises), bypass
        self.seen: list[int] = []
        self.poisoned = 0
        self.flows: dict = {}

    def inspect(self, data, meta):
        body = bytes(data)
        k = body[-1]
        if body != frame(k, len(body)):
            self.poisoned += 1
        self.seen.append(k)
        if k in self.raises:
            raise RuntimeError("inspector bug")
        if self.bypass is not None:           # one flow: the first frame decides it
            flow = self.flows.setdefault("f", object())
            return Result(Verdict.DROP if self.bypass == "drop" else Verdict.FORWARD, reason="rule",
                          bypass=Bypass(flow, self.bypass, True, self.bypass))
        if k in self.drop:
            return Result(Verdict.DROP, reason="rule")
        if k in self.reject:
            return Result(Verdict.REJECT, reason="rule", inject=(Inject(b"INJ" + bytes([k]) * 57, back=False),))
        return FORWARD

    def bypassed(self, flow, ts, ps, bs, pc, bc):
        return True

    def tick(self, now):
        return ()

    def stats(self):
        return {}


def worker(guard: Guard, inspector, *, tx: bool, mode: str = "ips", sock=None, config=None):
    """eth0 (the guarded ring) forwarding to eth1, through a TX ring or plain send()."""
    if tx:
        kernel = KernelTx()
        g = afp.RingGeometry(afp.TPACKET_V2, 256 * 2048, 1, 2048, 256)
        txr = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth1")
        kernel.tx = txr
        port = _Port("eth0", PS("eth0", object()), guard.ring, mode, kernel, tx=txr)
        out = kernel
    else:
        out = sock or PlainSock()
        port = _Port("eth0", PS("eth0", object()), guard.ring, mode, out)
    other_ring = V2Ring(memoryview(bytearray(4 * 256)), afp.RingGeometry(afp.TPACKET_V2, 1024, 1, 256, 4))
    other = _Port("eth1", PS("eth1", out), other_ring, mode, object())
    return Worker([port, other], inspector, config or Config()), port, out


def drain_all(w: Worker, port: _Port, guard: Guard, frames: list[bytes], per_drain: int, **deliver) -> None:
    """The kernel delivers `per_drain` frames, the worker drains them; until all are in."""
    for i in range(0, len(frames), per_drain):
        guard.deliver(frames[i:i + per_drain], **deliver)
        w.drain(port)


def assert_each_slot_handed_back_once(guard: Guard, total: int) -> None:
    assert guard.errors == []
    n = guard.ring.frame_nr
    assert guard.released == [k % n for k in range(total)]        # once each, in ring order
    assert all(guard.words[off >> 2] == afp.TP_STATUS_KERNEL for off in guard.ring.offsets)


PATHS = [True, False]


# ------------------------------------------------------------------ the guard itself
def test_the_guard_sees_a_slot_handed_back_twice_and_poisons_a_released_one():
    g = guarded_ring(8)
    g.deliver([frame(1), frame(2)])
    it = g.ring.batches(size=1)
    (off, _hdr), = next(it)
    assert g.ring.view[off + MAC + 50] == 1
    next(it)                                          # the first slot goes back
    assert g.released == [0] and g.ring.view[off + MAC + 50] == POISON
    g.ring.words[off >> 2] = afp.TP_STATUS_KERNEL      # again: what a double release does
    assert g.errors == ["slot 0 handed back but it was not the reader's (twice, or never given)"]


@pytest.mark.parametrize("gap", [False, True], ids=["strided-release", "one-write-per-slot"])
def test_batches_hand_each_slot_back_once_over_several_turns(gap):
    g = guarded_ring(16, gap=gap)
    got = []
    for rnd in range(5):
        g.deliver([frame(rnd * 11 + k) for k in range(11)])      # 11 a turn: the batches wrap
        for batch in g.ring.batches(size=4):
            got += [g.ring.view[off + MAC + 50] for off, _ in batch]
    assert got == [k % 256 for k in range(55)]
    assert_each_slot_handed_back_once(g, 55)


# ------------------------------------------------------------------ the worker's paths
@pytest.mark.parametrize("tx", PATHS, ids=["tx-ring", "plain-send"])
@pytest.mark.parametrize("per_drain", [5, BATCH_FRAMES, BATCH_FRAMES + 3], ids=lambda n: f"{n}-per-drain")
def test_forward_path_releases_each_slot_once_after_its_frame_went_out(tx, per_drain):
    frames = [frame(k) for k in range(3 * per_drain)]
    g = guarded_ring(256 if per_drain > BATCH_FRAMES else 128)
    judge = Judge()
    w, port, out = worker(g, judge, tx=tx)
    drain_all(w, port, g, frames, per_drain)
    assert out.sent == frames                          # copied out before the slot went back
    assert judge.poisoned == 0 and judge.seen == [k % 256 for k in range(len(frames))]
    assert_each_slot_handed_back_once(g, len(frames))
    c = port.counters
    assert (c.received, c.forwarded) == (len(frames), len(frames)) and unaccounted(c.as_dict()) == 0


@pytest.mark.parametrize("tx", PATHS, ids=["tx-ring", "plain-send"])
@pytest.mark.parametrize("dropped", [{0}, {4}, {0, 1, 2, 3, 4, 5, 6, 7}, {3, 4, 11}], ids=["first", "last-of-batch",
                                                                                          "all", "scattered"])
def test_drop_path_releases_each_slot_once(tx, dropped):
    frames = [frame(k) for k in range(12)]
    g = guarded_ring(16)
    judge = Judge(drop=dropped)
    w, port, out = worker(g, judge, tx=tx)
    drain_all(w, port, g, frames, 5)
    assert out.sent == [f for k, f in enumerate(frames) if k not in dropped]
    assert judge.poisoned == 0
    assert_each_slot_handed_back_once(g, len(frames))
    c = port.counters
    assert c.dropped == {"rule": len(dropped)} and unaccounted(c.as_dict()) == 0


@pytest.mark.parametrize("tx", PATHS, ids=["tx-ring", "plain-send"])
def test_reject_path_with_an_inject_releases_each_slot_once(tx):
    frames = [frame(k) for k in range(10)]
    g = guarded_ring(16)
    w, port, out = worker(g, Judge(reject={2, 7}), tx=tx)
    drain_all(w, port, g, frames, 10)
    assert out.sent == frames[:2] + [b"INJ" + bytes([2]) * 57] + frames[3:7] + [b"INJ" + bytes([7]) * 57] + frames[8:]
    assert_each_slot_handed_back_once(g, len(frames))
    assert port.counters.dropped == {"rule": 2} and port.counters.injected == 2


@pytest.mark.parametrize("mode", ["ips", "tap", "ids"])
def test_drop_verdicts_in_every_mode_release_each_slot_once(mode):
    frames = [frame(k) for k in range(9)]
    g = guarded_ring(16)
    w, port, out = worker(g, Judge(drop={1, 5}), tx=False, mode=None if mode == "ids" else mode)
    drain_all(w, port, g, frames, 4)
    want = {"ips": [f for k, f in enumerate(frames) if k not in (1, 5)], "tap": frames, "ids": []}[mode]
    assert out.sent == want
    assert_each_slot_handed_back_once(g, len(frames))


@pytest.mark.parametrize("action", ["drop", "pass"])
def test_bypass_path_releases_each_slot_once(action):
    """The first frame decides the flow; the fast path then handles every later one
    without the inspector (dropped as "flow", or forwarded)."""
    frames = [frame(k) for k in range(12)]
    g = guarded_ring(16)
    judge = Judge(bypass=action)
    w, port, out = worker(g, judge, tx=True)
    assert w.fast is not None
    drain_all(w, port, g, frames, 5)
    assert judge.seen == [0] and judge.poisoned == 0
    assert out.sent == ([] if action == "drop" else frames)
    assert_each_slot_handed_back_once(g, len(frames))
    c = port.counters
    assert c.bypassed == 11 and unaccounted(c.as_dict()) == 0
    if action == "drop":
        assert c.dropped == {"rule": 1, FLOW_REASON: 11}


@pytest.mark.parametrize("tx", PATHS, ids=["tx-ring", "plain-send"])
def test_error_paths_release_each_slot_once(tx):
    """An inspector that raises (forwarded, counted), a frame cut by the ring (dropped as
    truncated), an outgoing frame (skipped): each slot still goes back once."""
    g = guarded_ring(16)
    w, port, out = worker(g, Judge(raises={1}), tx=tx)
    g.deliver([frame(0), frame(1)])
    g.deliver([frame(2, 300)], snap=100)               # cut: snaplen < tp_len
    g.deliver([frame(3)], pkttype=afp.PACKET_OUTGOING)
    g.deliver([frame(4)])
    w.drain(port)
    assert out.sent == [frame(0), frame(1), frame(4)]
    assert_each_slot_handed_back_once(g, 5)
    c = port.counters
    assert (c.inspector_errors, c.dropped, c.ignored_outgoing) == (1, {"truncated": 1}, 1)


def test_send_errors_release_each_slot_once():
    g = guarded_ring(16)
    w, port, out = worker(g, Judge(), tx=False, sock=PlainSock(fail=errno.EMSGSIZE))
    g.deliver([frame(k) for k in range(6)])
    w.drain(port)
    assert_each_slot_handed_back_once(g, 6)
    assert port.counters.send_errors == {"EMSGSIZE": 6}


def test_a_drain_that_stops_inside_a_batch_hands_back_only_what_it_finished():
    """The worker's own loop never stops inside a batch; a consumer that does (an exception
    out of the walk) leaves its slots to the next walk, which hands each back once."""
    g = guarded_ring(16)
    g.deliver([frame(k) for k in range(6)])
    it = g.ring.batches(size=4)
    next(it)
    it.close()                                         # stopped inside the first batch
    assert g.released == [] and g.ring.head == 0
    seen = [g.ring.view[off + MAC + 50] for batch in g.ring.batches(size=4) for off, _ in batch]
    assert seen == [0, 1, 2, 3, 4, 5]
    assert_each_slot_handed_back_once(g, 6)
