"""The mmapped RX rings: walking ready slots, handing them back, VLAN re-insertion.

Both ring versions yield the same tuple per frame, with offsets absolute in the
ring's memoryview (no copies):

    (status, tp_len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid, pkttype)

Rules kept here:
  * read a slot's status word before anything else in the slot, and stop at the
    first slot the kernel still owns -- never scan past it;
  * hand a slot (V2) or a block (V3) back by writing TP_STATUS_KERNEL only after
    the consumer is done with it (the generator resumes after the consumer's
    loop body, so the release happens after the frame was forwarded or dropped).

Layouts (<linux/if_packet.h>, native byte order):

    tpacket2_hdr: tp_status u32, tp_len u32, tp_snaplen u32, tp_mac u16, tp_net u16,
                  tp_sec u32, tp_nsec u32, tp_vlan_tci u16, tp_vlan_tpid u16, 4 pad
    tpacket3_hdr: tp_next_offset u32, tp_sec u32, tp_nsec u32, tp_snaplen u32, tp_len u32,
                  tp_status u32, tp_mac u16, tp_net u16, hv1 {tp_rxhash u32, tp_vlan_tci u32,
                  tp_vlan_tpid u16, pad u16}, 8 pad
    tpacket_block_desc: version u32, offset_to_priv u32, bh1 {block_status u32, num_pkts u32,
                  offset_to_first_pkt u32, blk_len u32, seq_num u64, ts_first, ts_last}

With TPACKET_V2/V3 the struct sockaddr_ll follows the aligned header in the
frame; its sll_pkttype byte (offset 10) tells PACKET_OUTGOING frames apart.
"""
from __future__ import annotations

import mmap
import struct
from typing import Iterator

from bridge.afpacket import (
    ETH_P_8021Q,
    TPACKET2_HDR_LEN,
    TPACKET3_HDR_LEN,
    TPACKET_V3,
    PacketSocket,
    RingGeometry,
    tpacket_align,
)

V2_HDR = struct.Struct("=IIIHHIIHH")
V3_HDR = struct.Struct("=IIIIIIHHIIH")
BLOCK_HDR = struct.Struct("=III")          # block_status, num_pkts, offset_to_first_pkt (at offset 8)
U32 = struct.Struct("=I")
TAG = struct.Struct("!HH")

SLL_PKTTYPE_V2 = tpacket_align(TPACKET2_HDR_LEN) + 10
SLL_PKTTYPE_V3 = tpacket_align(TPACKET3_HDR_LEN) + 10

_STATUS_USER = 0x1


def insert_vlan(buf: memoryview | bytearray, mac: int, tpid: int, tci: int) -> int:
    """Put a stripped VLAN tag back in place, in front of the EtherType.

    Moves the 12 MAC address bytes 4 bytes back (into the PACKET_RESERVE
    headroom) and writes TPID + TCI where they were.  `tci` is written as is:
    priority bits are kept and a priority-only tag (tci 0) stays a tag.
    Returns the new start of the frame (mac - 4)."""
    start = mac - 4
    buf[start:start + 12] = bytes(buf[mac:mac + 12])   # 12-byte temporary: overlapping move
    TAG.pack_into(buf, start + 12, tpid or ETH_P_8021Q, tci)
    return start


class V2Ring:
    """TPACKET_V2: one status word per frame.  Frames never straddle a block, so
    with jumbo frames (frame size not dividing the block) there is a gap at the
    end of each block: slot offsets are precomputed."""

    def __init__(self, view: memoryview, g: RingGeometry):
        self.view = view
        self.frame_size = g.frame_size
        self.frame_nr = g.frame_nr
        per_block = g.block_size // g.frame_size
        self.offsets = [(i // per_block) * g.block_size + (i % per_block) * g.frame_size
                        for i in range(g.frame_nr)]
        self.head = 0

    def frames(self) -> Iterator[tuple]:
        """Yield every ready frame, at most one full turn of the ring."""
        view = self.view
        offsets = self.offsets
        n = self.frame_nr
        i = self.head
        unpack = V2_HDR.unpack_from
        release = U32.pack_into
        try:
            for _ in range(n):
                off = offsets[i]
                status, tp_len, snaplen, mac, net, sec, nsec, tci, tpid = unpack(view, off)
                if not status & _STATUS_USER:
                    break
                yield (status, tp_len, snaplen, off + mac, off + net, sec, nsec, tci, tpid,
                       view[off + SLL_PKTTYPE_V2])
                release(view, off, 0)
                i += 1
                if i == n:
                    i = 0
        finally:
            self.head = i

    def skip_hole(self) -> int:
        """Recovery, not the normal path: the slot at head is still the kernel's
        but later slots are ready.  Seen on kernel 6.18 under overload while
        forwarding (a slot the kernel accounted but left TP_STATUS_KERNEL): without
        this the reader waits at the hole until the kernel laps the ring, and
        the link stalls.  The caller only asks after the hole persisted (a
        writer still copying into the slot takes microseconds).  Moves head to
        the next ready slot; returns the number of slots skipped (0: none ready)."""
        view, offsets, n, h = self.view, self.offsets, self.frame_nr, self.head
        if U32.unpack_from(view, offsets[h])[0] & _STATUS_USER:
            return 0
        for k in range(1, n):
            j = h + k
            if j >= n:
                j -= n
            if U32.unpack_from(view, offsets[j])[0] & _STATUS_USER:
                self.head = j
                return k
        return 0


class V3Ring:
    """TPACKET_V3 (IDS only): the kernel hands over whole blocks, closed when full
    or when block-timeout expires; the block goes back in one write."""

    def __init__(self, view: memoryview, g: RingGeometry):
        self.view = view
        self.block_size = g.block_size
        self.block_nr = g.block_nr
        self.head = 0

    def frames(self) -> Iterator[tuple]:
        view = self.view
        bs = self.block_size
        n = self.block_nr
        b = self.head
        unpack = V3_HDR.unpack_from
        try:
            for _ in range(n):
                boff = b * bs
                status, num, first = BLOCK_HDR.unpack_from(view, boff + 8)
                if not status & _STATUS_USER:
                    break
                off = boff + first
                for _k in range(num):
                    (nxt, sec, nsec, snaplen, tp_len, st, mac, net, _hash, tci, tpid) = unpack(view, off)
                    yield (st, tp_len, snaplen, off + mac, off + net, sec, nsec, tci & 0xFFFF, tpid,
                           view[off + SLL_PKTTYPE_V3])
                    off += nxt
                U32.pack_into(view, boff + 8, 0)
                b += 1
                if b == n:
                    b = 0
        finally:
            self.head = b

    def skip_hole(self) -> int:
        """As V2Ring.skip_hole, per block."""
        view, bs, n, h = self.view, self.block_size, self.block_nr, self.head
        if U32.unpack_from(view, h * bs + 8)[0] & _STATUS_USER:
            return 0
        for k in range(1, n):
            j = (h + k) % n
            if U32.unpack_from(view, j * bs + 8)[0] & _STATUS_USER:
                self.head = j
                return k
        return 0


class TxRing:
    """A TPACKET_V2 TX ring (PACKET_TX_RING): the sender copies a frame into the
    slot at `head` (which must be TP_STATUS_AVAILABLE), writes tp_len, then
    TP_STATUS_SEND_REQUEST; one send() then hands every requested slot to the
    driver, in ring order, from the kernel's own head.  The kernel's head and
    ours stay equal as long as slots are filled in order and unsent slots are
    reclaimed from the first one on (see Worker.flush).  Frame data starts
    right after the aligned header (no PACKET_TX_HAS_OFF)."""

    DATA = tpacket_align(TPACKET2_HDR_LEN)

    def __init__(self, view: memoryview, g: RingGeometry, sock):
        self.view = view
        self.sock = sock
        self.frame_nr = g.frame_nr
        per_block = g.block_size // g.frame_size
        self.offsets = [(i // per_block) * g.block_size + (i % per_block) * g.frame_size
                        for i in range(g.frame_nr)]
        self.capacity = g.frame_size - self.DATA
        self.head = 0          # next slot to fill
        self.first = 0         # first slot queued since the last flush
        self.queued = 0        # slots queued since the last flush
        self.qbytes = 0        # their tp_len sum (send() returns the bytes it handed over)

    def put(self, src, start: int, end: int) -> bool:
        """Queue src[start:end]; False when the head slot is not free."""
        view = self.view
        off = self.offsets[self.head]
        if U32.unpack_from(view, off)[0]:
            return False
        n = end - start
        d = off + 32
        view[d:d + n] = src[start:end]
        U32.pack_into(view, off + 4, n)
        U32.pack_into(view, off, 1)        # TP_STATUS_SEND_REQUEST, written last
        self.head = h = self.head + 1
        if h == self.frame_nr:
            self.head = 0
        self.queued += 1
        self.qbytes += n
        return True


def open_ring(ps: PacketSocket) -> V2Ring | V3Ring:
    """mmap the socket's RX ring (MAP_SHARED) and wrap it.  The rings take any
    writable buffer, so tests can drive them with a bytearray.  A socket with a
    TX ring maps both (RX first, TX right after, one mapping as the kernel
    requires); the TX ring is `ring.tx`, else None."""
    g = ps.geometry
    tg = getattr(ps, "tx_geometry", None)
    size = g.size + (tg.size if tg else 0)
    mm = mmap.mmap(ps.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    whole = memoryview(mm)
    ring = (V3Ring if g.version == TPACKET_V3 else V2Ring)(whole[:g.size] if tg else whole, g)
    ring.mm = mm
    ring.tx = TxRing(whole[g.size:], tg, ps.sock) if tg else None
    return ring
