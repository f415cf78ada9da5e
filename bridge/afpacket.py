"""AF_PACKET sockets for the bridge: constants, ring geometry and socket set-up.

Python's `socket` module exposes AF_PACKET but almost none of the SOL_PACKET
options, so the values from <linux/if_packet.h> are defined here.

Set-up order matters (see /work/shared/notes/afpacket-facts.md):

    socket(AF_PACKET, SOCK_RAW, 0)      protocol 0: receive nothing until bind
    PACKET_VERSION                      TPACKET_V2 inline, V3 only for IDS
    PACKET_RESERVE = 4                  headroom in front of the MAC header for a VLAN tag
    PACKET_LOSS                         ips/tap with tx-ring: before any ring (EBUSY after)
    PACKET_RX_RING                      the mmap ring
    PACKET_TX_RING                      ips/tap with tx-ring (default): frames sent to this port
    PACKET_IGNORE_OUTGOING              when the kernel has it (4.20+)
    PACKET_QDISC_BYPASS                 optional
    SO_RCVBUF                           buffer-size, when not 0
    SO_ATTACH_FILTER / SO_ATTACH_BPF    bpf-filter (IDS), or the kernel offload's socket filter
                                        (bridge.ebpf): before bind, so no frame gets in unfiltered
    bind((ifname, ETH_P_ALL))
    PACKET_ADD_MEMBERSHIP promisc       unless disable-promisc
    PACKET_FANOUT                       last: binding after joining fails with EINVAL

The ring is only *configured* here; it is mmapped by the process that reads it
(`bridge.ring`), so the supervisor can create every socket in a fixed order
and fork workers that inherit them.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass

from conf.model import Interface

# <linux/if_ether.h>
ETH_P_ALL = 0x0003
ETH_HLEN = 14
VLAN_HLEN = 4
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

# <linux/socket.h>
SOL_PACKET = 263

# <linux/if_packet.h>: socket options
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_RESERVE = 12
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_FANOUT = 18
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23

PACKET_MR_PROMISC = 1

# sll_pkttype
PACKET_HOST = 0
PACKET_BROADCAST = 1
PACKET_MULTICAST = 2
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4

TPACKET_V1 = 0
TPACKET_V2 = 1
TPACKET_V3 = 2

# fanout modes and flags
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_LB = 1
PACKET_FANOUT_CPU = 2
PACKET_FANOUT_ROLLOVER = 3
PACKET_FANOUT_RND = 4
PACKET_FANOUT_QM = 5
PACKET_FANOUT_FLAG_ROLLOVER = 0x1000
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
PACKET_FANOUT_FLAG_IGNORE_OUTGOING = 0x4000   # kernel 6.9+: the per-socket option does not apply to fanout members
PACKET_FANOUT_FLAG_DEFRAG = 0x8000

FANOUT_MODES = {
    "cluster_flow": PACKET_FANOUT_HASH,
    "cluster_round_robin": PACKET_FANOUT_LB,
    "cluster_cpu": PACKET_FANOUT_CPU,
    "cluster_rollover": PACKET_FANOUT_ROLLOVER,
    "cluster_random": PACKET_FANOUT_RND,
    "cluster_qm": PACKET_FANOUT_QM,
}

# tp_status bits (RX)
TP_STATUS_KERNEL = 0x0
TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
TP_STATUS_LOSING = 0x4
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_BLK_TMO = 0x20
TP_STATUS_VLAN_TPID_VALID = 0x40
TP_STATUS_CSUM_VALID = 0x80

# tp_status bits (TX)
TP_STATUS_AVAILABLE = 0x0
TP_STATUS_SEND_REQUEST = 0x1
TP_STATUS_SENDING = 0x2
TP_STATUS_WRONG_FORMAT = 0x4

TPACKET_ALIGNMENT = 16
TX_RING_FRAMES = 256          # TX ring slots per sending socket (flushed at the end of every drain)

# struct sizes
SOCKADDR_LL_LEN = 20          # struct sockaddr_ll
TPACKET2_HDR_LEN = 32         # struct tpacket2_hdr (incl. 4 bytes padding)
TPACKET3_HDR_LEN = 48         # struct tpacket3_hdr (incl. 8 bytes padding)
TPACKET_BLOCK_DESC_LEN = 48   # struct tpacket_block_desc (version, offset_to_priv, tpacket_hdr_v1)

SIOCGIFMTU = 0x8921
SO_ATTACH_FILTER = 26
SO_ATTACH_BPF = 50

VLAN_HEADROOM = 4             # PACKET_RESERVE: room to put one stripped tag back in place


def tpacket_align(x: int) -> int:
    return (x + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)


# tp_hdrlen as the kernel computes it: aligned header + sockaddr_ll
TPACKET2_HDRLEN = tpacket_align(TPACKET2_HDR_LEN) + SOCKADDR_LL_LEN
TPACKET3_HDRLEN = tpacket_align(TPACKET3_HDR_LEN) + SOCKADDR_LL_LEN


def fanout_arg(cluster_id: int, cluster_type: str, *, defrag: bool, rollover: bool,
               ignore_outgoing: bool = False) -> bytes:
    """The PACKET_FANOUT option value: group id in the low 16 bits, mode|flags above.

    Packed as an unsigned int: with the defrag flag the value does not fit a
    signed int, which `setsockopt(..., int)` would reject."""
    try:
        mode = FANOUT_MODES[cluster_type]
    except KeyError:
        raise ValueError(f"cluster-type {cluster_type!r}: expected one of {', '.join(FANOUT_MODES)}") from None
    if not 0 <= cluster_id <= 0xFFFF:
        raise ValueError(f"cluster-id {cluster_id}: must be 0..65535")
    flags = ((PACKET_FANOUT_FLAG_DEFRAG if defrag else 0) | (PACKET_FANOUT_FLAG_ROLLOVER if rollover else 0)
             | (PACKET_FANOUT_FLAG_IGNORE_OUTGOING if ignore_outgoing else 0))
    return struct.pack("=I", cluster_id | ((mode | flags) << 16))


@dataclass(frozen=True, slots=True)
class RingGeometry:
    """Sizes of one RX ring.  Frames never straddle blocks."""

    version: int
    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int
    block_timeout: int = 0     # ms, V3 only

    @property
    def size(self) -> int:
        return self.block_size * self.block_nr

    def req(self) -> bytes:
        if self.version == TPACKET_V3:
            # struct tpacket_req3: block_size, block_nr, frame_size, frame_nr,
            # retire_blk_tov, sizeof_priv, feature_req_word
            return struct.pack("=7I", self.block_size, self.block_nr, self.frame_size,
                               self.frame_nr, self.block_timeout, 0, 0)
        return struct.pack("=4I", self.block_size, self.block_nr, self.frame_size, self.frame_nr)


def ring_geometry(iface: Interface, mtu: int, page_size: int = 4096) -> RingGeometry:
    """Frame size from the MTU: header, sockaddr_ll, alignment, the reserve, the
    Ethernet header and one in-band VLAN tag.  Larger frames (GRO, defrag) arrive
    truncated (tp_snaplen < tp_len) and are counted, never forwarded cut."""
    v3 = iface.tpacket_v3 and iface.copy_mode is None
    hdrlen = TPACKET3_HDRLEN if v3 else TPACKET2_HDRLEN
    netoff = tpacket_align(hdrlen + 16) + VLAN_HEADROOM   # what tpacket_rcv uses for a 14-byte MAC header
    needed = netoff + mtu + VLAN_HEADROOM                # MAC header is inside netoff; room for one in-band tag
    if needed <= page_size:
        frame_size = 1 << (needed - 1).bit_length()      # a power of two divides the page: no waste
        block_size = page_size
    else:
        frame_size = tpacket_align(needed)
        block_size = -(-frame_size * 4 // page_size) * page_size
    if v3:
        block_size = max(iface.block_size, block_size)
        if block_size % page_size:
            raise ValueError(f"block-size {iface.block_size}: must be a multiple of the page size ({page_size})")
        block_nr = max(2, -(-iface.ring_size * frame_size // block_size))
        per_block = block_size // frame_size
        return RingGeometry(TPACKET_V3, block_size, block_nr, frame_size, per_block * block_nr,
                            iface.block_timeout)
    per_block = block_size // frame_size
    block_nr = max(1, -(-iface.ring_size // per_block))
    return RingGeometry(TPACKET_V2, block_size, block_nr, frame_size, per_block * block_nr)


def tx_ring_geometry(rx: RingGeometry, frames: int = TX_RING_FRAMES) -> RingGeometry:
    """A V2 TX ring with the RX ring's frame and block size (a slot holds the
    32-byte header, then MTU + Ethernet header + one tag)."""
    per_block = rx.block_size // rx.frame_size
    block_nr = max(1, -(-frames // per_block))
    return RingGeometry(TPACKET_V2, rx.block_size, block_nr, rx.frame_size, per_block * block_nr)


def get_mtu(ifname: str) -> int:
    """The interface MTU through SIOCGIFMTU (works in any network namespace, unlike /sys)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16si", ifname.encode()[:15], 0)
        out = fcntl.ioctl(s.fileno(), SIOCGIFMTU, ifr)
    return struct.unpack_from("16si", out)[1]


@dataclass(slots=True)
class PacketSocket:
    """One configured AF_PACKET socket (not yet mmapped)."""

    sock: socket.socket
    iface: str
    ifindex: int
    geometry: RingGeometry
    ignore_outgoing: bool       # the fanout group ignores outgoing frames (the ring reader still checks)
    mtu: int
    tx_geometry: RingGeometry | None = None   # PACKET_TX_RING, mapped right after the RX ring

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def compile_bpf(expr: str) -> bytes:
    """Compile a capture filter to classic BPF with `tcpdump -ddd` (libpcap's
    compiler, Ethernet link type); returns the packed struct sock_filter array.
    Raises ValueError with tcpdump's message when the expression is wrong."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise ValueError("bpf-filter needs tcpdump (libpcap's filter compiler) on PATH")
    proc = subprocess.run([tcpdump, "-ddd", "-y", "EN10MB", expr], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise ValueError(f"bpf-filter {expr!r}: {proc.stderr.strip() or 'tcpdump failed'}")
    lines = proc.stdout.split("\n")
    n = int(lines[0])
    out = bytearray()
    for line in lines[1:n + 1]:
        code, jt, jf, k = (int(x) for x in line.split())
        out += struct.pack("=HBBI", code, jt, jf, k)
    return bytes(out)


def attach_bpf(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program, the buffer may go afterwards."""
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def inline_defrag_allowed(iface: Interface) -> bool:
    """The fanout defrag flag on a forwarding socket would hand the ring one
    reassembled datagram instead of its fragments: larger than the MTU it can
    never be sent (EMSGSIZE), so fragmented traffic would be black-holed.  It
    is honoured only on IDS interfaces; the supervisor warns when it is ignored."""
    return iface.copy_mode is None


def open_socket(iface: Interface, cluster_id: int, *, mtu: int | None = None,
                bpf: bytes | None = None, bpf_prog_fd: int | None = None) -> PacketSocket:
    """Create, configure, bind and join the fanout group, in the order the kernel needs.
    `bpf` (a classic filter from compile_bpf) or `bpf_prog_fd` (an eBPF SOCKET_FILTER
    program, the kernel offload's: bridge.ebpf) is attached before bind, so no
    unfiltered frame gets in.  A socket holds one filter: not both."""
    if bpf and bpf_prog_fd is not None:
        raise ValueError(f"{iface.interface}: a socket holds one filter: bpf-filter or the kernel offload's")
    name = iface.interface
    try:
        ifindex = socket.if_nametoindex(name)
    except OSError:
        raise OSError(errno.ENODEV, f"interface {name!r} does not exist in this network namespace") from None
    if mtu is None:
        mtu = get_mtu(name)
    geo = ring_geometry(iface, mtu)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.setsockopt(SOL_PACKET, PACKET_VERSION, geo.version)
        s.setsockopt(SOL_PACKET, PACKET_RESERVE, VLAN_HEADROOM)
        want_tx = iface.copy_mode is not None and geo.version != TPACKET_V3 and iface.tx_ring
        if want_tx:
            s.setsockopt(SOL_PACKET, PACKET_LOSS, 1)      # only before any ring exists
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, geo.req())
        tx_geo = None
        if want_tx:
            # before bind: setting a ring on a bound socket unhooks and re-hooks it, which
            # would move it in its fanout group.  PACKET_LOSS: a frame the kernel refuses
            # is skipped instead of blocking the ring for good (the sender checks lengths
            # before queueing, so it is still counted)
            tx_geo = tx_ring_geometry(geo)
            s.setsockopt(SOL_PACKET, PACKET_TX_RING, tx_geo.req())
        try:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass                             # old kernel: the ring reader skips PACKET_OUTGOING frames
        if iface.qdisc_bypass:
            s.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        if iface.buffer_size:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, iface.buffer_size)
        if bpf:
            attach_bpf(s, bpf)
        if bpf_prog_fd is not None:
            s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, bpf_prog_fd)
        s.bind((name, ETH_P_ALL))
        if not iface.disable_promisc:
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        # PACKET_IGNORE_OUTGOING (above) is a property of the socket's own hook; a fanout member
        # receives through the group's hook, which ignores outgoing frames only with the fanout
        # flag (6.9+).  Without it, host-originated frames on a port (IPv6 ND, DHCP) reach the
        # ring as PACKET_OUTGOING and would be forwarded to the peer: the ring reader skips them.
        ignore_outgoing = False
        defrag = iface.defrag and inline_defrag_allowed(iface)
        last_error = None
        for flag in (True, False):
            try:
                s.setsockopt(SOL_PACKET, PACKET_FANOUT,
                             fanout_arg(cluster_id, iface.cluster_type, defrag=defrag,
                                        rollover=iface.rollover, ignore_outgoing=flag))
                ignore_outgoing = flag
                last_error = None
                break
            except OSError as e:
                last_error = e
        if last_error is not None:
            e = last_error
            raise OSError(e.errno, f"joining fanout group cluster-id {cluster_id} ({iface.cluster_type}) failed: "
                          f"{e.strerror}; another process (a second ipsbridge or Suricata?) may use this "
                          f"cluster-id with other settings, or the group is full -- pick another cluster-id") from e
    except BaseException:
        s.close()
        raise
    return PacketSocket(s, name, ifindex, geo, ignore_outgoing, mtu, tx_geo)


def read_statistics(sock: socket.socket) -> tuple[int, int]:
    """(tp_packets, tp_drops) since the previous read: the kernel resets them on
    each read, and tp_packets already includes tp_drops.  Callers accumulate."""
    try:
        raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    except OSError:
        return 0, 0
    return struct.unpack("=II", raw)
