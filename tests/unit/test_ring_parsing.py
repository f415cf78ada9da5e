"""Ring walking, VLAN re-insertion and option packing on byte literals (no kernel)."""
from __future__ import annotations

import dataclasses
import struct

import pytest

from bridge import afpacket as afp
from bridge.ring import SLL_PKTTYPE_V2, V2_HDR, V3_HDR, V2Ring, V3Ring, insert_vlan
from conf.model import Interface

FRAME = bytes.fromhex("020000000002" "020000000001" "0800") + b"payload!"


# ------------------------------------------------------------------ VLAN re-insertion
@pytest.mark.parametrize(
    "tpid,tci,want",
    [
        (0x8100, 0xA064, "8100a064"),      # PCP 5, VID 100
        (0x8100, 0x0000, "81000000"),      # priority-only tag with tci 0 is still a tag
        (0x88A8, 0x012C, "88a8012c"),      # 802.1ad outer tag
        (0, 0x0064, "81000064"),           # no TPID known: 0x8100
    ],
    ids=["pcp5-vid100", "tci0", "qinq-outer", "default-tpid"],
)
def test_insert_vlan_moves_macs_back_and_writes_the_tag(tpid, tci, want):
    buf = bytearray(b"\xee" * 4 + FRAME)          # 4 reserved bytes in front of tp_mac
    view = memoryview(buf)
    start = insert_vlan(view, 4, tpid, tci)
    assert start == 0
    out = bytes(buf)
    assert out[:12] == FRAME[:12]
    assert out[12:16].hex() == want
    assert out[16:] == FRAME[12:]


# ------------------------------------------------------------------ fanout / geometry
def test_fanout_arg_packs_unsigned_with_flags():
    arg = afp.fanout_arg(99, "cluster_flow", defrag=True, rollover=False)
    assert struct.unpack("=I", arg)[0] == 99 | (0x8000 << 16)
    arg = afp.fanout_arg(7, "cluster_qm", defrag=False, rollover=True)
    assert struct.unpack("=I", arg)[0] == 7 | ((5 | 0x1000) << 16)


def test_fanout_arg_refuses_unknown_type():
    with pytest.raises(ValueError, match="cluster-type"):
        afp.fanout_arg(1, "cluster_bogus", defrag=False, rollover=False)


@pytest.mark.parametrize("mtu", [576, 1500, 4000, 9000], ids=lambda m: f"mtu{m}")
def test_v2_geometry_fits_mtu_plus_tag(mtu):
    g = afp.ring_geometry(Interface("eth0", copy_mode="ips", copy_iface="eth1"), mtu)
    assert g.version == afp.TPACKET_V2
    assert g.block_size % 4096 == 0 and g.block_size >= g.frame_size
    assert g.frame_size % afp.TPACKET_ALIGNMENT == 0
    assert g.frame_nr >= 2048
    macoff = afp.tpacket_align(afp.TPACKET2_HDRLEN + 16) + afp.VLAN_HEADROOM - afp.ETH_HLEN
    assert g.frame_size - macoff >= mtu + afp.ETH_HLEN + afp.VLAN_HLEN


def test_v3_only_for_ids():
    inline = afp.ring_geometry(Interface("eth0", copy_mode="ips", copy_iface="eth1", tpacket_v3=True), 1500)
    ids = afp.ring_geometry(Interface("eth0", tpacket_v3=True, block_size=65536, block_timeout=5), 1500)
    assert inline.version == afp.TPACKET_V2
    assert ids.version == afp.TPACKET_V3 and ids.block_size == 65536
    assert struct.unpack("=7I", ids.req())[4] == 5


# ------------------------------------------------------------------ V2 ring walking
def v2_ring(frames: list[tuple[int, bytes]], nslots: int = 4, frame_size: int = 256):
    """A fake ring: slot i holds (status, frame bytes) at tp_mac = 80."""
    buf = bytearray(nslots * frame_size)
    for i, (status, data) in enumerate(frames):
        off = i * frame_size
        V2_HDR.pack_into(buf, off, status, len(data), len(data), 80, 94, 1700000000 + i, 500, 0x0064, 0x8100)
        buf[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        buf[off + 80:off + 80 + len(data)] = data
    g = afp.RingGeometry(afp.TPACKET_V2, nslots * frame_size, 1, frame_size, nslots)
    return buf, V2Ring(memoryview(buf), g)


def test_v2_yields_ready_frames_and_hands_slots_back():
    buf, ring = v2_ring([(afp.TP_STATUS_USER | afp.TP_STATUS_VLAN_VALID, FRAME), (afp.TP_STATUS_USER, FRAME)])
    seen = []
    for off, (status, _tp_len, snaplen, mac, _net, sec, _nsec, tci, tpid) in ring.frames():
        seen.append((status, bytes(ring.view[off + mac:off + mac + snaplen]), sec, tci, tpid,
                     ring.view[off + ring.PKTTYPE]))
    assert [s[1] for s in seen] == [FRAME, FRAME]
    assert seen[0][0] & afp.TP_STATUS_VLAN_VALID and seen[0][3] == 0x64 and seen[0][4] == 0x8100
    assert seen[1][2] == 1700000001
    assert struct.unpack_from("=I", buf, 0)[0] == afp.TP_STATUS_KERNEL
    assert struct.unpack_from("=I", buf, 256)[0] == afp.TP_STATUS_KERNEL
    assert ring.head == 2


def test_v2_stops_at_first_kernel_slot_and_never_scans_past_it():
    # slot 1 is still the kernel's; slot 2 looks ready but must not be read yet
    buf, ring = v2_ring([(afp.TP_STATUS_USER, FRAME), (afp.TP_STATUS_KERNEL, b""), (afp.TP_STATUS_USER, FRAME)])
    assert len(list(ring.frames())) == 1
    assert ring.head == 1
    assert struct.unpack_from("=I", buf, 512)[0] == afp.TP_STATUS_USER


def test_v2_slots_skip_the_gap_at_the_end_of_a_block():
    g = afp.ring_geometry(Interface("eth0", copy_mode="ips", copy_iface="eth1"), 9000)
    ring = V2Ring(memoryview(bytearray(g.size)), g)
    per_block = g.block_size // g.frame_size
    assert ring.offsets[per_block] == g.block_size
    assert max(ring.offsets) + g.frame_size <= g.size


def test_v2_wraps_around():
    buf, ring = v2_ring([(afp.TP_STATUS_USER, FRAME)] * 4)
    ring.head = 3
    assert len(list(ring.frames())) == 4       # 3, 0, 1, 2: one full turn, no more
    assert ring.head == 3


def test_v2_slot_released_only_after_consumer_is_done():
    buf, ring = v2_ring([(afp.TP_STATUS_USER, FRAME)])
    it = ring.frames()
    next(it)
    assert struct.unpack_from("=I", buf, 0)[0] == afp.TP_STATUS_USER   # still ours while in use
    assert list(it) == []
    assert struct.unpack_from("=I", buf, 0)[0] == afp.TP_STATUS_KERNEL


# ------------------------------------------------------------------ V3 blocks
def test_v3_walks_a_block_and_hands_it_back():
    bs = 4096
    buf = bytearray(2 * bs)
    first = 48
    off = first
    for i in range(3):
        nxt = 128 if i < 2 else 0
        V3_HDR.pack_into(buf, off, nxt, 1700000000, i, len(FRAME), len(FRAME), afp.TP_STATUS_USER,
                         68, 82, 0, 0, 0)
        buf[off + 68:off + 68 + len(FRAME)] = FRAME
        off += nxt
    struct.pack_into("=III", buf, 8, afp.TP_STATUS_USER, 3, first)
    ring = V3Ring(memoryview(buf), afp.RingGeometry(afp.TPACKET_V3, bs, 2, 2048, 4))
    got = [(nsec, bytes(ring.view[off + mac:off + mac + snap]))
           for off, (_s, _l, snap, mac, _n, _sec, nsec, _tci, _tpid) in ring.frames()]
    assert got == [(0, FRAME), (1, FRAME), (2, FRAME)]
    assert struct.unpack_from("=I", buf, 8)[0] == afp.TP_STATUS_KERNEL
    assert ring.head == 1


# ------------------------------------------------------------------ the worker's per-frame path, with fakes
import errno as _errno  # noqa: E402

from bridge.worker import Worker, _Port  # noqa: E402
from conf.model import Config  # noqa: E402
from rules.api import DROP_BY_HOOK, FORWARD, ForwardAll, Result, Verdict  # noqa: E402

UDP_FRAME = bytes.fromhex(
    "020000000002" "020000000001" "0800"
    "45000021000100004011" "0000" "cb007101" "cb007102"     # IPv4 203.0.113.1 -> .2, UDP, len 33
    "04d2162e000d" "1234"                                  # UDP 1234 -> 5678, len 13, partial csum
) + b"hello"


class FakeSock:
    def __init__(self, fail=()):
        self.sent: list[bytes] = []
        self.fail = list(fail)

    def send(self, data, flags=0):
        if self.fail:
            raise OSError(self.fail.pop(0), "fake")
        self.sent.append(bytes(data))
        return len(data)

    def fileno(self):
        return -1


class FakePS:
    def __init__(self, ignore_outgoing=True):
        self.ignore_outgoing = ignore_outgoing
        self.sock = object()          # this port's own socket (frames go out through the peer's)


def drain(port: _Port, inspector=None, config=None) -> Worker:
    """A worker over this one port, drained once."""
    w = Worker([port], inspector or ForwardAll(), config or Config())
    w.drain(port)
    return w


def port_with(frames, mode="ips", peer=None, ignore_outgoing=True, pkttype=afp.PACKET_HOST, vlan=(0, 0)):
    buf, ring = v2_ring([(s, d) for s, d in frames])
    for i in range(len(frames)):
        buf[i * 256 + SLL_PKTTYPE_V2] = pkttype
        struct.pack_into("=HH", buf, i * 256 + 24, *vlan)
    return _Port("eth0", FakePS(ignore_outgoing), ring, mode, peer or FakeSock())


def test_forward_counts_and_sends_a_slice():
    peer = FakeSock()
    port = port_with([(afp.TP_STATUS_USER, FRAME)] * 3, peer=peer)
    drain(port)
    c = port.counters
    assert (c.received, c.forwarded, c.inspected) == (3, 3, 3)
    assert peer.sent == [FRAME] * 3


def test_outgoing_frames_skipped_without_ignore_outgoing():
    port = port_with([(afp.TP_STATUS_USER, FRAME)] * 2, ignore_outgoing=False, pkttype=afp.PACKET_OUTGOING)
    drain(port)
    assert port.counters.ignored_outgoing == 2 and port.counters.received == 0


def test_vlan_tag_reinserted_before_send():
    peer = FakeSock()
    port = port_with([(afp.TP_STATUS_USER | afp.TP_STATUS_VLAN_VALID | afp.TP_STATUS_VLAN_TPID_VALID, FRAME)],
                     peer=peer, vlan=(0xA064, 0x88A8))
    seen = []

    class Spy(ForwardAll):
        def inspect(self, frame, meta):
            seen.append((bytes(frame), meta.vlan, meta.tpid))
            return FORWARD

    drain(port, Spy())
    assert seen == [(FRAME, (100,), (0x88A8,))]          # the inspector sees the untagged frame
    assert peer.sent == [FRAME[:12] + bytes.fromhex("88a8a064") + FRAME[12:]]
    assert port.counters.vlan_reinserted == 1


def test_checksum_filled_for_csumnotready():
    peer = FakeSock()
    port = port_with([(afp.TP_STATUS_USER | afp.TP_STATUS_CSUMNOTREADY, UDP_FRAME)], peer=peer)
    drain(port)
    from rules.checksum import l4_checksum_ok

    assert port.counters.csum_filled == 1
    assert l4_checksum_ok(peer.sent[0], 14) is True


@pytest.mark.parametrize("mode", ["ips", "tap", None], ids=["ips", "tap", "ids"])
def test_verdicts_per_mode(mode):
    peer = FakeSock()
    port = port_with([(afp.TP_STATUS_USER, FRAME)] * 2, mode=mode, peer=peer)

    class DropFirst(ForwardAll):
        def inspect(self, frame, meta):
            self.seen += 1
            return DROP_BY_HOOK if self.seen == 1 else Result(Verdict.FORWARD)

    drain(port, DropFirst())
    c = port.counters
    assert c.received == c.inspected == 2
    if mode == "ips":
        assert c.dropped == {"hook": 1} and c.forwarded == 1 and len(peer.sent) == 1
    elif mode == "tap":
        assert c.would_drop == {"hook": 1} and c.forwarded == 2 and c.dropped == {}
    else:
        assert c.forwarded == 0 and peer.sent == []


def test_inspector_exception_forwards_and_counts():
    class Boom(ForwardAll):
        def inspect(self, frame, meta):
            raise ValueError("bug")

    port = port_with([(afp.TP_STATUS_USER, FRAME)])
    drain(port, Boom())
    assert port.counters.inspector_errors == 1 and port.counters.forwarded == 1


@pytest.mark.parametrize(
    "fail,sent,errors,oversize",
    [
        ([_errno.EMSGSIZE], 0, {"EMSGSIZE": 1}, 1),                         # never retried
        ([_errno.ENOBUFS], 1, {}, 0),                                       # retried, then sent
        ([_errno.ENOBUFS] * 3, 0, {"ENOBUFS": 1}, 0),                       # bounded: 3 tries
        ([_errno.ENETDOWN], 0, {"ENETDOWN": 1}, 0),
    ],
    ids=["emsgsize", "enobufs-retry", "enobufs-gives-up", "enetdown"],
)
def test_send_errors_counted_by_errno(fail, sent, errors, oversize, monkeypatch):
    import select as _select

    class NoPoll:
        def register(self, *a):
            pass

        def poll(self, *a):
            return []

    monkeypatch.setattr(_select, "poll", NoPoll)
    monkeypatch.setattr("bridge.worker._c_wait_pass", None)   # (its wait is poll() in C)
    peer = FakeSock(fail)
    port = port_with([(afp.TP_STATUS_USER, FRAME)], peer=peer)
    drain(port)
    c = port.counters
    assert len(peer.sent) == sent and c.send_errors == errors and c.oversize == oversize
    assert c.received == c.forwarded + sum(c.send_errors.values())


def test_truncated_frame_is_never_forwarded():
    buf, ring = v2_ring([(afp.TP_STATUS_USER, FRAME)])
    struct.pack_into("=I", buf, 4, 65000)             # tp_len > tp_snaplen: cut by the ring
    peer = FakeSock()
    port = _Port("eth0", FakePS(), ring, "ips", peer)
    drain(port)
    assert peer.sent == [] and port.counters.dropped == {"truncated": 1} and port.counters.oversize == 1


def test_skip_hole_moves_to_the_next_ready_slot_only_when_head_is_kernel_owned():
    buf, ring = v2_ring([(afp.TP_STATUS_KERNEL, b""), (afp.TP_STATUS_KERNEL, b""), (afp.TP_STATUS_USER, FRAME)])
    assert list(ring.frames()) == []           # stuck behind the kernel-owned head
    assert ring.skip_hole() == 2 and ring.head == 2
    assert len(list(ring.frames())) == 1
    assert ring.skip_hole() == 0               # nothing ready anywhere: stay
    buf, ring = v2_ring([(afp.TP_STATUS_USER, FRAME)])
    assert ring.skip_hole() == 0 and ring.head == 0   # head ready: never skip


# ------------------------------------------------------------------ checksum-checks: the hint each frame gets
from bridge.worker import CHECKSUM_CHECKS  # noqa: E402
from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE  # noqa: E402

CSUM_STATUSES = [afp.TP_STATUS_USER, afp.TP_STATUS_USER | afp.TP_STATUS_CSUMNOTREADY,
                 afp.TP_STATUS_USER | afp.TP_STATUS_CSUM_VALID,
                 afp.TP_STATUS_USER | afp.TP_STATUS_CSUM_VALID | afp.TP_STATUS_VLAN_VALID]


class MetaSpy(ForwardAll):
    def __init__(self):
        super().__init__()
        self.metas = []

    def inspect(self, frame, meta):
        self.metas.append(dataclasses.replace(meta))     # the worker reuses its FrameMeta: copy
        return FORWARD


@pytest.mark.parametrize("checks,want", [
    ("kernel", [CSUM_VALIDATE, CSUM_SKIP, CSUM_SKIP, CSUM_SKIP]),
    ("yes", [CSUM_VALIDATE] * 4),
    ("no", [CSUM_SKIP] * 4),
    ("auto", [CSUM_AUTO] * 4),
])
def test_v2_drain_gives_each_frame_its_checksum_hint(checks, want):
    port = port_with([(s, UDP_FRAME) for s in CSUM_STATUSES], vlan=(0x0064, 0x8100))
    port.csum_mask, port.csum_hint = CHECKSUM_CHECKS[checks]
    spy = MetaSpy()
    drain(port, spy)
    assert [m.checksum for m in spy.metas] == want
    assert [m.vlan for m in spy.metas] == [(), (), (), (100,)] and {m.linktype for m in spy.metas} == {1}


def test_port_defaults_to_kernel_and_the_worker_reads_the_interface_entry():
    from bridge.worker import _checksum_checks
    from conf.model import Interface

    port = port_with([(afp.TP_STATUS_USER, FRAME)])
    assert (port.csum_mask, port.csum_hint) == CHECKSUM_CHECKS["kernel"]
    config = Config(af_packet=[Interface("eth0", checksum_checks="no"), Interface("eth1")])
    assert [_checksum_checks(config, i) for i in ("eth0", "eth1", "eth9")] == ["no", "kernel", "kernel"]


@pytest.mark.parametrize("checks,want", [("kernel", [CSUM_VALIDATE, CSUM_SKIP, CSUM_SKIP]),
                                         ("no", [CSUM_SKIP] * 3)])
def test_v3_drain_gives_each_frame_its_checksum_hint(checks, want):
    bs = 4096
    buf = bytearray(2 * bs)
    first = off = 48
    for i, status in enumerate(CSUM_STATUSES[:3]):
        nxt = 128 if i < 2 else 0
        V3_HDR.pack_into(buf, off, nxt, 1700000000, i, len(FRAME), len(FRAME), status, 68, 82, 0, 0, 0)
        buf[off + 68:off + 68 + len(FRAME)] = FRAME
        off += nxt
    struct.pack_into("=III", buf, 8, afp.TP_STATUS_USER, 3, first)
    ring = V3Ring(memoryview(buf), afp.RingGeometry(afp.TPACKET_V3, bs, 2, 2048, 4))
    mask, hint = CHECKSUM_CHECKS[checks]
    port = _Port("eth2", FakePS(), ring, None, None, csum_mask=mask, csum_hint=hint)
    spy = MetaSpy()
    drain(port, spy)
    assert [m.checksum for m in spy.metas] == want
