"""The mmapped RX rings: walking ready slots, handing them back, VLAN re-insertion.

Both ring versions give the same pair per frame: the offset of its header in
the ring's memoryview, and the header's fields with mac and net relative to it
(no copies; V2's is struct's tuple as it is):

    off, (status, tp_len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid)

and the frame's sll_pkttype byte is at `off + ring.PKTTYPE`.  `batches()` yields
them a list at a time (V2: up to BATCH_FRAMES slots; V3: one block), `frames()`
one at a time.

Rules kept here:
  * read a slot's status word before anything else in the slot, and stop at the
    first slot the kernel still owns -- never scan past it;
  * hand a slot (V2) or a block (V3) back by writing TP_STATUS_KERNEL only after
    the consumer is done with it: the generator resumes after the consumer's
    loop body, so a batch's slots go back after every frame of it was forwarded
    (copied into the TX ring) or dropped.  A consumer that copies a batch's
    frames out at its end (bridge.worker: one TxRing.put_many per batch) may
    still read and rewrite them until then.

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

import errno
import mmap
import select
import socket
import struct
from collections.abc import Iterator

from bridge import afpacket
from bridge.afpacket import (
    ETH_HLEN,
    ETH_P_8021Q,
    TP_STATUS_AVAILABLE,
    TP_STATUS_SEND_REQUEST,
    TPACKET2_HDR_LEN,
    TPACKET3_HDR_LEN,
    TPACKET_V3,
    VLAN_HLEN,
    PacketSocket,
    RingGeometry,
    tpacket_align,
)
from bridge.stats import Counters, bump

V2_HDR = struct.Struct("=IIIHHIIHH")
V3_HDR = struct.Struct("=IIIIIIHHIIH")
BLOCK_HDR = struct.Struct("=III")          # block_status, num_pkts, offset_to_first_pkt (at offset 8)
U32 = struct.Struct("=I")
TAG = struct.Struct("!HH")

SLL_PKTTYPE_V2 = tpacket_align(TPACKET2_HDR_LEN) + 10
SLL_PKTTYPE_V3 = tpacket_align(TPACKET3_HDR_LEN) + 10

_STATUS_USER = 0x1
BATCH_FRAMES = 64        # V2 slots handed out per batch: per-batch work amortized, few slots held back
_U32_PACK = U32.pack_into
_DONTWAIT = socket.MSG_DONTWAIT
SEND_TRIES = 3                                  # attempts per send (the first one included)
RETRY_ERRNOS = (errno.ENOBUFS, errno.EAGAIN)    # worth a short wait and another try


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

    PKTTYPE = SLL_PKTTYPE_V2

    def __init__(self, view: memoryview, g: RingGeometry):
        self.view = view
        self.buf = view          # what frames are copied from (open_ring: the mmap itself, cheaper to slice)
        self.words = view.cast("I")    # native u32s: a slot's status word at off >> 2 (cheaper than struct)
        self.frame_size = g.frame_size
        self.frame_nr = g.frame_nr
        per_block = g.block_size // g.frame_size
        self.offsets = [(i // per_block) * g.block_size + (i % per_block) * g.frame_size
                        for i in range(g.frame_nr)]
        # slots evenly spaced (the frame size divides the block size: every MTU up to a page):
        # a run of slots is handed back with one strided write of zeros
        self.stride = g.frame_size >> 2 if per_block * g.frame_size == g.block_size else 0
        self.zeros = memoryview(bytearray(4 * BATCH_FRAMES)).cast("I")
        self.head = 0
        # what the compiled walk reads of the ring in one lookup (bridge/_ringpass.c ring_facts):
        # fixed for the ring's life
        self.facts = (view, self.offsets, self.PKTTYPE)

    def ready(self) -> bool:
        """Whether the head slot is the reader's (a frame is waiting): a cheap look before a walk."""
        return bool(self.words[self.offsets[self.head] >> 2] & _STATUS_USER)

    def batches(self, size: int = BATCH_FRAMES) -> Iterator[list[tuple[int, tuple]]]:
        """Yield the ready frames as lists of at most `size` (offset, header) pairs, at most
        one full turn of the ring in all; a list's slots go back to the kernel, in ring
        order, when the consumer asks for the next list (or closes the generator after
        finishing with it).  A consumer that stops inside a list (an exception) leaves its
        slots, and `head`, where they were: those frames are read again by the next walk."""
        view = self.view
        words = self.words
        offsets = self.offsets
        n = self.frame_nr
        stride = self.stride
        zeros = self.zeros
        unpack = V2_HDR.unpack_from
        i = self.head
        left = n
        try:
            while left:
                chunk: list[tuple[int, tuple]] = []
                append = chunk.append
                j = i
                for _ in range(min(size, left)):
                    off = offsets[j]
                    hdr = unpack(view, off)
                    if not hdr[0] & _STATUS_USER:
                        break
                    append((off, hdr))
                    j += 1
                    if j == n:
                        j = 0
                if not chunk:
                    break
                yield chunk
                k = len(chunk)
                if stride and (j > i or not j) and k <= BATCH_FRAMES:   # one run, no wrap inside
                    first = offsets[i] >> 2
                    words[first:first + k * stride:stride] = zeros[:k]   # TP_STATUS_KERNEL, in ring order
                else:
                    for off, _hdr in chunk:
                        words[off >> 2] = 0     # TP_STATUS_KERNEL: the slot is the kernel's again
                i = j
                if k < size:                    # stopped at a kernel-owned slot
                    break
                left -= k
        finally:
            self.head = i

    def release_head(self) -> None:
        """Hand the slot at `head` back to the kernel and move on: the compiled walk
        (bridge/_ringpass.c) stopped at it, and the worker has finished that frame."""
        self.words[self.offsets[self.head] >> 2] = 0
        self.head = h = self.head + 1
        if h == self.frame_nr:
            self.head = 0

    def frames(self) -> Iterator[tuple[int, tuple]]:
        """Yield every ready frame, at most one full turn of the ring; each slot goes back
        to the kernel when the consumer asks for the next frame."""
        for chunk in self.batches(1):
            yield chunk[0]

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

    PKTTYPE = SLL_PKTTYPE_V3

    def __init__(self, view: memoryview, g: RingGeometry):
        self.view = view
        self.buf = view
        self.block_size = g.block_size
        self.block_nr = g.block_nr
        self.head = 0

    def ready(self) -> bool:
        """Whether the head block is the reader's."""
        return bool(U32.unpack_from(self.view, self.head * self.block_size + 8)[0] & _STATUS_USER)

    def batches(self, size: int = 0) -> Iterator[list[tuple[int, tuple]]]:
        """Yield each ready block's frames as one list (`size` is V2's: a block is handed
        back whole), at most one turn of the ring; the block goes back to the kernel when
        the consumer asks for the next list."""
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
                chunk = []
                for _k in range(num):
                    (nxt, sec, nsec, snaplen, tp_len, st, mac, net, _hash, tci, tpid) = unpack(view, off)
                    chunk.append((off, (st, tp_len, snaplen, mac, net, sec, nsec, tci & 0xFFFF, tpid)))
                    off += nxt
                if chunk:
                    yield chunk
                U32.pack_into(view, boff + 8, 0)
                b += 1
                if b == n:
                    b = 0
        finally:
            self.head = b

    def frames(self) -> Iterator[tuple[int, tuple]]:
        """Yield every ready frame, at most one turn of the ring (a block goes back to the
        kernel when the consumer asks for the frame after its last)."""
        for chunk in self.batches():
            yield from chunk

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
    """A TPACKET_V2 TX ring (PACKET_TX_RING) and its invariants, all kept here.

    The sender copies a frame into the slot at `head` (which must be
    TP_STATUS_AVAILABLE), writes tp_len, then TP_STATUS_SEND_REQUEST; one send()
    then hands every requested slot to the driver, in ring order, from the
    kernel's own head.  The kernel's head and ours stay equal as long as slots
    are filled in order and unsent slots are reclaimed from the first one on
    (`flush`).  Frame data starts right after the aligned header (no
    PACKET_TX_HAS_OFF).  Only this class moves `head`, `first`, `queued` and
    `qbytes`; callers use `send` (queue one frame, flushing when half the ring
    is queued), `flush` (one send() for everything queued) and `send_now` (one
    frame out at once: injected RST/ICMP).  Every frame handed to `send` ends up
    counted on the caller's Counters: `forwarded`, or `send_errors[errno]` (and
    `oversize` for EMSGSIZE)."""

    DATA = tpacket_align(TPACKET2_HDR_LEN)
    __slots__ = (
        "base",
        "batch",
        "buf",
        "capacity",
        "data_at",
        "facts",
        "fd",
        "first",
        "frame_nr",
        "head",
        "iface",
        "offsets",
        "qbytes",
        "queued",
        "sock",
        "view",
        "word_at",
        "words",
    )

    def __init__(self, view: memoryview, g: RingGeometry, sock, iface: str = "", buf=None, base: int = 0):
        self.view = view
        # frames are copied into buf[base + slot offset + DATA:]: the mmap itself when given (an mmap
        # slice assignment costs less than a memoryview's), else the view
        self.buf = view if buf is None else buf
        self.base = 0 if buf is None else base
        self.words = view.cast("I")    # native u32s: slot status at off >> 2, tp_len at (off >> 2) + 1
        self.sock = sock
        # the socket's descriptor, for the compiled drain's own send() (bridge/_ringpass.c
        # drain_walk, which hands anything but a whole batch sent to `sent`); -1: a socket
        # that is not a kernel one (tests), always flushed here
        self.fd = sock.fileno() if isinstance(sock, socket.socket) else -1
        self.iface = iface         # the egress interface (its MTU explains a frame the kernel refused)
        self.frame_nr = g.frame_nr
        per_block = g.block_size // g.frame_size
        self.offsets = [(i // per_block) * g.block_size + (i % per_block) * g.frame_size
                        for i in range(g.frame_nr)]
        self.word_at = [off >> 2 for off in self.offsets]                 # a slot's status word in `words`
        self.data_at = [self.base + off + self.DATA for off in self.offsets]   # its frame's first byte in `buf`
        self.capacity = g.frame_size - self.DATA
        self.batch = max(1, g.frame_nr // 2)   # flush when this many are queued
        self.head = 0          # next slot to fill
        self.first = 0         # first slot queued since the last flush
        self.queued = 0        # slots queued since the last flush
        self.qbytes = 0        # their tp_len sum (send() returns the bytes it handed over)
        # what the compiled walk reads of the ring in one lookup (bridge/_ringpass.c ring_facts)
        self.facts = (view, self.offsets, self.batch, self.capacity, self.DATA)

    def put(self, src, start: int, end: int) -> bool:
        """Queue src[start:end]; False when the head slot is not free."""
        view = self.view
        off = self.offsets[self.head]
        if U32.unpack_from(view, off)[0]:
            return False
        n = end - start
        d = self.base + off + self.DATA
        self.buf[d:d + n] = src[start:end]
        U32.pack_into(view, off + 4, n)
        U32.pack_into(view, off, TP_STATUS_SEND_REQUEST)     # written last
        self.head = h = self.head + 1
        if h == self.frame_nr:
            self.head = 0
        self.queued += 1
        self.qbytes += n
        return True

    def send(self, src, start: int, end: int, c: Counters) -> None:
        """Queue src[start:end] for the next flush: put_many with one frame."""
        self.put_many(src, (start, end), c)

    def put_many(self, src, spans, c: Counters) -> None:
        """Queue src[spans[0]:spans[1]], src[spans[2]:spans[3]], ... in that order for the
        next flush (flushed at once whenever half the ring is queued).  A frame larger than
        a slot (only after an MTU raise) is EMSGSIZE; when the driver still owns every slot
        after a bounded wait, ENOBUFS.  The per-frame work is kept in locals (the ring's
        fields are written back before a flush and at the end), the slot's words are
        written through `words` (the ring as native u32s: a third of the cost of struct),
        and its status word last."""
        words = self.words
        buf = self.buf
        word_at = self.word_at
        data_at = self.data_at
        capacity = self.capacity
        nr = self.frame_nr
        batch = self.batch
        h = self.head
        q = self.queued
        qb = self.qbytes
        it = iter(spans)
        try:
            for start, end in zip(it, it):
                try:
                    n = end - start
                    w = word_at[h]
                    if n > capacity or words[w]:       # too large, or the head slot is the driver's
                        self.head, self.queued, self.qbytes = h, q, qb
                        h = -1                         # the fields hold the state until reloaded
                        self._send_slow(src, start, end, c)
                        h, q, qb = self.head, self.queued, self.qbytes
                        continue
                    d = data_at[h]
                    buf[d:d + n] = src[start:end]
                    words[w + 1] = n                   # tp_len, then the status word, last
                    words[w] = TP_STATUS_SEND_REQUEST
                    qb += n
                    q += 1
                    h += 1
                    if h == nr:
                        h = 0
                    if q >= batch:
                        self.head, self.queued, self.qbytes = h, q, qb
                        h = -1
                        self.flush(c)
                        h, q, qb = self.head, self.queued, self.qbytes
                except Exception:  # noqa: BLE001 -- a bug must not lose the batch's other frames: this one is accounted
                    if h < 0:
                        h, q, qb = self.head, self.queued, self.qbytes
                    bump(c.dropped, "internal")
        finally:
            if h >= 0:
                self.head, self.queued, self.qbytes = h, q, qb

    def _send_slow(self, src, start: int, end: int, c: Counters) -> None:
        if end - start > self.capacity:
            bump(c.send_errors, "EMSGSIZE")
            c.oversize += 1
            return
        if not (self.wait(c) and self.put(src, start, end)):
            bump(c.send_errors, "ENOBUFS")
            return
        if self.queued >= self.batch:
            self.flush(c)

    def flush(self, c: Counters) -> int:
        """Hand the queued slots to the kernel with one send(); counts each frame on `c`
        (forwarded, or send_errors by errno) and returns how many went out.

        send() on a TX ring returns the bytes of the frames it transmitted.  A frame the
        kernel refuses (longer than the MTU, e.g. after the MTU was lowered) is skipped
        (PACKET_LOSS) and missing from that sum: when the sum falls short, the processed
        slots are checked against the current MTU and the refused ones counted as EMSGSIZE.
        A failing send() (ENOBUFS, link down) leaves the frames from the failing one on as
        SEND_REQUEST: retried SEND_TRIES times, then reclaimed and counted under the errno,
        and `head` moved back to the first of them (the kernel's head is there)."""
        if not self.queued:
            self.qbytes = 0
            self.first = self.head
            return 0
        try:
            return self.sent(c, self.sock.send(b"", _DONTWAIT), 0)
        except OSError as e:
            return self.sent(c, 0, e.errno or errno.EIO)

    def sent(self, c: Counters, got: int, code: int) -> int:
        """The rest of `flush` once its first send() returned `got` bytes (code 0) or failed
        with errno `code`: the retries, the queue emptied, the frames counted.  The compiled
        drain (bridge/_ringpass.c drain_walk) sends itself and comes here unless the whole
        batch went out."""
        queued, expected, first = self.queued, self.qbytes, self.first
        self.queued = self.qbytes = 0
        self.first = self.head
        sock = self.sock
        for _ in range(1, SEND_TRIES):
            if code not in RETRY_ERRNOS:
                break
            wait_writable(sock)
            try:
                got += sock.send(b"", _DONTWAIT)
                code = 0
            except OSError as e:
                code = e.errno or errno.EIO
        if not code and got == expected:
            c.forwarded += queued
            return queued
        view, offsets, nr = self.view, self.offsets, self.frame_nr
        limit = None
        sent = 0
        for k in range(queued):
            j = first + k
            if j >= nr:
                j -= nr
            off = offsets[j]
            if U32.unpack_from(view, off)[0] & TP_STATUS_SEND_REQUEST:   # never handed over: the tail
                lost = queued - k
                for k2 in range(k, queued):
                    j2 = first + k2
                    if j2 >= nr:
                        j2 -= nr
                    U32.pack_into(view, offsets[j2], TP_STATUS_AVAILABLE)
                bump(c.send_errors, errno_name(code or errno.EIO), lost)
                if code == errno.EMSGSIZE:
                    c.oversize += lost
                self.head = self.first = j
                break
            if got != expected:
                if limit is None:
                    limit = self._frame_limit()
                n = U32.unpack_from(view, off + 4)[0]
                if n > limit and not (n <= limit + VLAN_HLEN and view[off + self.DATA + 12] == 0x81
                                      and view[off + self.DATA + 13] == 0x00):
                    bump(c.send_errors, "EMSGSIZE")
                    c.oversize += 1
                    continue
            sent += 1
        c.forwarded += sent
        return sent

    def _frame_limit(self) -> int:
        """The longest untagged frame the egress interface takes now (MTU + Ethernet header)."""
        try:
            return afpacket.get_mtu(self.iface) + ETH_HLEN
        except Exception:  # noqa: BLE001 -- never raise here: the batch would go uncounted
            return 1 << 30

    def wait(self, c: Counters) -> bool:
        """The head slot is not free: flush what is queued, wait (bounded) for the driver
        to give the slot back; True when it is free."""
        for _attempt in range(SEND_TRIES):
            if self.queued:
                self.flush(c)
            if not U32.unpack_from(self.view, self.offsets[self.head])[0]:
                return True
            wait_writable(self.sock)
        return False

    def send_now(self, data, c: Counters) -> int:
        """Send one frame now (an injected RST/ICMP): the frames queued before it go first
        (counted on `c` as forwarded); returns 0, or the errno of this frame's failure --
        which is the caller's to count (an inject error, not a send error)."""
        n = len(data)
        if n > self.capacity:
            return errno.EMSGSIZE
        if self.queued:
            self.flush(c)
        if not (self.put(data, 0, n) or (self.wait(c) and self.put(data, 0, n))):
            return errno.ENOBUFS
        scratch = Counters()
        if self.flush(scratch) == 1:
            return 0
        return next((getattr(errno, name, errno.EIO) for name in scratch.send_errors), errno.EIO)


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, f"E{code}")


def wait_writable(sock, timeout_ms: int = 1) -> None:
    """A short, bounded wait for POLLOUT before a send is retried."""
    p = select.poll()
    p.register(sock.fileno(), select.POLLOUT)
    p.poll(timeout_ms)


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
    ring.mm = ring.buf = mm
    ring.tx = TxRing(whole[g.size:], tg, ps.sock, ps.iface, mm, g.size) if tg else None
    return ring
