"""The TX-ring send path (bridge.ring.TxRing, driven by Worker.drain) against a model of
the kernel's tpacket_snd (net/packet/af_packet.c): frames sent in ring order
from the kernel's head; with PACKET_LOSS a frame longer than MTU + 14 (+4 for
an 802.1Q tag) is skipped and left out of the returned byte count; a failing
transmit leaves that frame and the rest SEND_REQUEST and send() raises.
Every frame must end up forwarded or counted under an errno."""
from __future__ import annotations

import errno as _errno
import select as _select

import pytest

from bridge import afpacket as afp
from bridge.ring import SLL_PKTTYPE_V2, U32, V2_HDR, TxRing, V2Ring
from bridge.worker import Worker, _Port
from conf.model import Config
from rules.api import ForwardAll

DST_SRC = bytes.fromhex("020000000002" "020000000001")


def frame(n: int, tag: int = 0) -> bytes:
    """An n-byte IPv4 Ethernet frame whose payload bytes carry `tag`."""
    return DST_SRC + b"\x08\x00" + bytes([tag]) * (n - 14)


class KernelTx:
    """tpacket_snd on a TxRing's buffer."""

    def __init__(self, mtu: int = 1500, fail=()):
        self.mtu = mtu
        self.fail = list(fail)     # per transmit attempt: an errno to raise, or None (goes out)
        self.fail_code = next((f for f in fail if f), 0)
        self.head = 0
        self.sent: list[bytes] = []
        self.calls = 0
        self.tx: TxRing | None = None

    def send(self, data, flags=0):
        assert data == b"", "a socket with a TX ring only flushes"
        self.calls += 1
        tx, total = self.tx, 0
        while True:
            off = tx.offsets[self.head]
            if U32.unpack_from(tx.view, off)[0] != afp.TP_STATUS_SEND_REQUEST:
                return total
            n = U32.unpack_from(tx.view, off + 4)[0]
            body = bytes(tx.view[off + 32:off + 32 + n])
            vlan_ok = body[12:14] == b"\x81\x00" and n <= self.mtu + 18
            if n > self.mtu + 14 and not vlan_ok:          # PACKET_LOSS: skipped, not counted
                U32.pack_into(tx.view, off, afp.TP_STATUS_AVAILABLE)
            else:
                if self.fail and self.fail.pop(0):
                    raise OSError(self.fail_code, "fake xmit")     # the frame stays SEND_REQUEST
                self.sent.append(body)
                total += n
                U32.pack_into(tx.view, off, afp.TP_STATUS_AVAILABLE)
            self.head = (self.head + 1) % tx.frame_nr

    def fileno(self):
        return -1


class PS:
    def __init__(self, iface, sock):
        self.iface, self.sock, self.ignore_outgoing = iface, sock, True


def rx_ring(frames: list[bytes], nslots: int = 8, frame_size: int = 2048):
    buf = bytearray(nslots * frame_size)
    for i, data in enumerate(frames):
        off = i * frame_size
        V2_HDR.pack_into(buf, off, afp.TP_STATUS_USER, len(data), len(data), 80, 94, 1700000000, 0, 0, 0)
        buf[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        buf[off + 80:off + 80 + len(data)] = data
    return V2Ring(memoryview(buf), afp.RingGeometry(afp.TPACKET_V2, nslots * frame_size, 1, frame_size, nslots))


def setup(frames, kernel: KernelTx, tx_slots: int = 4):
    g = afp.RingGeometry(afp.TPACKET_V2, tx_slots * 2048, 1, 2048, tx_slots)
    tx = TxRing(memoryview(bytearray(g.size)), g, kernel, "eth1")
    kernel.tx = tx
    port = _Port("eth0", PS("eth0", object()), rx_ring(frames), "ips", kernel, tx=tx)
    w = Worker([port, _Port("eth1", PS("eth1", kernel), rx_ring([]), "ips", object())], ForwardAll(), Config())
    return w, port, tx


def unaccounted(c) -> int:
    return c.received - c.forwarded - sum(c.dropped.values()) - sum(c.send_errors.values())


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    class NoPoll:
        def register(self, *a):
            pass

        def poll(self, *a):
            return []

    monkeypatch.setattr(_select, "poll", NoPoll)
    monkeypatch.setattr("bridge.worker._c_wait_pass", None)   # (its wait is poll() in C)


def test_frames_go_out_in_order_with_one_send_per_drain():
    frames = [frame(60 + k, k) for k in range(3)]
    kernel = KernelTx()
    w, port, tx = setup(frames, kernel, tx_slots=8)
    assert w.drain(port) == 3
    assert kernel.sent == frames and kernel.calls == 1
    assert port.counters.forwarded == 3 and port.counters.send_errors == {} and unaccounted(port.counters) == 0
    assert tx.head == kernel.head == 3 and tx.queued == 0


def test_more_frames_than_slots_flushes_when_half_full_and_wraps():
    frames = [frame(60, k) for k in range(7)]
    kernel = KernelTx()
    w, port, tx = setup(frames, kernel, tx_slots=4)
    w.drain(port)
    assert kernel.sent == frames and port.counters.forwarded == 7
    assert tx.head == kernel.head == 7 % 4


def test_frames_over_a_lowered_mtu_are_counted_as_emsgsize(monkeypatch):
    monkeypatch.setattr(afp, "get_mtu", lambda name: {"eth1": 1400}[name])
    tagged = DST_SRC + b"\x81\x00\x00\x64\x08\x00" + b"t" * 1400      # 1418: 1400 + 14 + a 802.1Q tag
    frames = [frame(100, 1), frame(1514, 2), frame(1414, 3), frame(1415, 4), tagged]
    kernel = KernelTx(mtu=1400)
    w, port, tx = setup(frames, kernel, tx_slots=8)
    w.drain(port)
    c = port.counters
    assert kernel.sent == [frames[0], frames[2], tagged]
    assert c.forwarded == 3 and c.send_errors == {"EMSGSIZE": 2} and c.oversize == 2
    assert unaccounted(c) == 0


def test_transient_enobufs_is_retried():
    frames = [frame(60, k) for k in range(3)]
    kernel = KernelTx(fail=[_errno.ENOBUFS])
    w, port, tx = setup(frames, kernel)
    w.drain(port)
    assert kernel.sent == frames and port.counters.forwarded == 3 and port.counters.send_errors == {}


def test_persistent_failure_reclaims_the_unsent_tail_and_the_ring_stays_in_step():
    frames = [frame(60, k) for k in range(3)]
    kernel = KernelTx(fail=[None, _errno.ENETDOWN])   # first frame out, then the link is down (never retried)
    w, port, tx = setup(frames, kernel, tx_slots=8)
    w.drain(port)
    c = port.counters
    assert kernel.sent == [frames[0]]
    assert c.forwarded == 1 and c.send_errors == {"ENETDOWN": 2} and unaccounted(c) == 0
    assert tx.head == kernel.head == 1          # rewound to where the kernel stopped
    assert all(U32.unpack_from(tx.view, off)[0] == 0 for off in tx.offsets)
    # the link is back: the next frames go out from the right slot
    more = [frame(70, 9)]
    port.ring = rx_ring(more)
    w.drain(port)
    assert kernel.sent == [frames[0], more[0]] and c.forwarded == 2


def test_inject_goes_through_the_tx_ring_after_queued_frames():
    kernel = KernelTx()
    w, port, tx = setup([], kernel)
    assert tx.put(frame(60, 1), 0, 60)
    from rules.api import Inject
    w.inject(port, (Inject(frame(54, 7), back=False),))
    assert kernel.sent == [frame(60, 1), frame(54, 7)]
    assert port.counters.injected == 1 and port.counters.forwarded == 1 and port.counters.inject_errors == 0
