"""Kernel offload of decided flows: two eBPF programs and their maps, built here.

In the kernel's receive path the AF_PACKET taps see a frame before tc ingress
(net/core/dev.c, `__netif_receive_skb_core`), so a decided flow leaves the
Python path through two programs that share one map of flows:

    SOCKET_FILTER  on every AF_PACKET socket of a port (taps, before the ring copy):
                   a frame of a flow in the map is kept out of the ring (and counted);
                   everything else passes whole
    SCHED_CLS      on the clsact ingress of each inline (ips/tap) port, direct-action:
                   pass -> bpf_redirect(peer ifindex, 0), drop -> TC_ACT_SHOT,
                   anything else -> TC_ACT_OK (up the stack, as without it)

IDS interfaces get the socket filter only.  Both programs first read a heartbeat
the supervisor writes at least once a second (`bpf_ktime_get_ns` is
CLOCK_MONOTONIC, `time.monotonic_ns()`): older than HEARTBEAT_STALE_NS and both
act as if the map were empty, so a dead or hung bridge leaves no redirect and
hides no frame from the ring.

Maps (created before the workers fork; the workers inherit the descriptors):

    flows    LRU_HASH  FlowKey -> FlowValue, bounded; the least recently used entry is
                       evicted when full (its flow silently returns to user space)
    totals   PERCPU_ARRAY[1] of 4 x u64: pass packets, pass bytes, drop packets, drop bytes
    heartbeat ARRAY[1] of u64: CLOCK_MONOTONIC ns of the supervisor's last write
    count    ARRAY[4] of i64, mmapable (BPF_F_MMAPABLE; mmap'd by the supervisor, shared
                       with the workers over fork): the entries `flows` holds, never
                       fewer (KernelOffload.add/remove, atomic adds), in all at [0] and
                       per protocol at [1] TCP, [2] UDP, [3] ICMP and ICMPv6.  While [0]
                       is 0 both programs return right after the heartbeat, before any
                       header read; while the frame's protocol has 0, before the lookup

    FlowKey (44 bytes, FLOW_KEY):  ifindex u32 | ipver u8 | proto u8 | vlan u16 |
                                   src[16] | dst[16] | sport | dport (the ports as on the
                                   wire, big-endian; everything else native order);
                                   IPv4 addresses fill the first 4 bytes, the rest is 0
    FlowValue (32 bytes, FLOW_VALUE): action u32 (1 pass, 2 drop) | redirect ifindex u32 |
                                   last-seen ns u64 | packets u64 | bytes u64 (atomic adds)

The key is parsed exactly as the user-space fast path (bridge.fastpath) slices it:
Ethernet; the outer VLAN only as the kernel stripped it (`skb->vlan_tci`, the id,
0 = none); then skb->protocol IPv4 with version 4 and IHL 5 and neither MF nor a
fragment offset, or IPv6 (version 6) whose next header is TCP or UDP directly; the
whole TCP (20 bytes) or UDP (8) header inside the IP packet, and the IP packet (total
length, payload length + 40) inside the frame.  ICMP echo requests and replies
(ICMPv4 in IPv4, ICMPv6 right after the IPv6 header) are keyed too, their 8-byte header
inside the IP packet, with the "ports" the fast path gives them: 0, type, 0, counterpart
type.  Anything else (IP options, fragments, a second VLAN tag, other ICMP messages,
extension headers, tunnels, truncated packets) is not offloaded, nor is a TCP segment with SYN, FIN or RST: those always reach the ring, so
the engine sees a flow start or end.  Offloaded frames are redirected as the skb
they are: VLAN tag and every byte as they came.  Bytes are counted as the
engine counts them: the frame's length (skb->len from the MAC header; a stripped VLAN
tag is not in it).

Header bytes are read with `bpf_skb_load_bytes` (one call for the IP header and the
first 14 bytes of L4), which also reads paged (non-linear) skbs -- the linear-only
`bpf_skb_load_bytes_relative` missed the data segments of a veth TCP transfer -- and
"the IP packet inside the frame" compares against skb->len, which counts the pages
too.  The socket filter counts what it keeps out of the ring (it sees every frame
first, on inline and IDS ports alike); the tc program only acts.  Offsets count
from skb->data, which is the MAC header wherever the programs run on traffic
(AF_PACKET taps push it back before the filter; cls_bpf at ingress too), so the
network header is at L3_OFFSET = 14 (the kernel has stripped the outer VLAN tag).
BPF_PROG_TEST_RUN of a socket filter starts at L3 instead: the unit tests load the
same socket filter assembled with l3=0 (`socket_filter_program(..., l3=0)`); the tc
program runs there as it is.

Programs are assembled in Python (`Asm`: named registers and opcodes, labels for
jumps; no compiler at run time) and loaded with the bpf() syscall through ctypes,
always with a verifier log, which goes into the error when the kernel refuses.
What the verifier asked for (checked on 6.18): a socket filter cannot read
skb->data (helpers only); stack accesses aligned to their size; the map-delete attr
zeroed after `key`.  tc attachment goes through pyroute2 (clsact, cls_bpf,
direct-action), with a filter name `ipsbridge:<pid>:<start time>` so a filter left
by a crashed bridge is recognised and removed (`remove_stale_filters`).
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import re
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

try:
    from bridge._ringpass import atomic_add as _atomic_add
except ImportError:                       # pragma: no cover - built by the install
    _atomic_add = None

# --------------------------------------------------------------------------- bpf() syscall
# <linux/bpf.h>
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_PROG_LOAD = 5
BPF_PROG_TEST_RUN = 10
BPF_OBJ_GET_INFO_BY_FD = 15

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_F_MMAPABLE = 1 << 10        # an array map user space can mmap (kernel 5.5+)

BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_SCHED_CLS = 3

BPF_ANY = 0
BPF_NOEXIST = 1

BPF_PSEUDO_MAP_FD = 1
BPF_OBJ_NAME_LEN = 16

# helpers (enum bpf_func_id)
FN_map_lookup_elem = 1
FN_ktime_get_ns = 5
FN_redirect = 23
FN_skb_load_bytes = 26

# struct __sk_buff field offsets
SKB_len = 0
SKB_protocol = 16
SKB_vlan_tci = 24
SKB_ifindex = 40

# tc verdicts (<linux/pkt_cls.h>)
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7

SOCKET_KEEP_WHOLE = 0xFFFFFFFF     # a socket filter's "keep this many bytes": all of it

_NR_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_ATTR_SIZE = 128                   # bytes of union bpf_attr we fill (the kernel zero-fills the rest)
LOG_SIZE = 1 << 22                 # verifier log buffer (level 1 of a ~100-instruction program: tens of KiB)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class OffloadUnavailable(Exception):
    """The kernel cannot do the offload here; str() is the reason, for the one warning."""


def bpf(cmd: int, attr) -> int:
    """syscall(__NR_bpf, cmd, &attr, sizeof attr); raises OSError with the errno."""
    nr = _NR_BPF.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf() syscall number unknown for {platform.machine()}")
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_long(cmd), ctypes.c_void_p(ctypes.addressof(attr)),
                        ctypes.c_long(ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _attr():
    return ctypes.create_string_buffer(_ATTR_SIZE)


def _name16(name: str) -> bytes:
    return name.encode()[:BPF_OBJ_NAME_LEN - 1]


# --------------------------------------------------------------------------- assembler
# Registers.  R0 return value, R1-R5 arguments (clobbered by calls), R6-R9 kept
# across calls, R10 the read-only frame pointer.
R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

# sizes of loads and stores
B, H, W, DW = 0x10, 0x08, 0x00, 0x18
_SIZE_BYTES = {B: 1, H: 2, W: 4, DW: 8}

# instruction classes, modes, sources
_LD, _LDX, _ST, _STX, _ALU, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
_K, _X = 0x00, 0x08

ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "or": 0x40, "and": 0x50, "lsh": 0x60, "rsh": 0x70,
           "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
_END, _TO_BE = 0xD0, 0x08
JMP_OPS = {"ja": 0x00, "jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60,
           "jsge": 0x70, "jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}
_CALL, _EXIT = 0x80, 0x90
_ATOMIC_ADD = 0x00

_INSN = struct.Struct("<BBhi")


@dataclass(slots=True)
class Insn:
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None      # label of a jump, resolved by Asm.assemble

    def encode(self, off: int) -> bytes:
        return _INSN.pack(self.code, (self.src << 4) | self.dst, off, self.imm)


class Asm:
    """A small eBPF assembler: one method per instruction shape, labels for jumps.

        a = Asm()
        a.mov(R6, R1)
        a.ldx(W, R2, R6, SKB_protocol)
        a.jne(R2, 0x0008, "miss")
        ...
        a.label("miss")
        a.mov(R0, 0)
        a.exit()
        code = a.assemble()

    Immediates are signed 32-bit (64-bit ALU sign-extends them); `ld_map_fd` is the
    one two-slot instruction.  `len(a)` counts slots, as the kernel does."""

    def __init__(self):
        self.insns: list[Insn] = []
        self.labels: dict[str, int] = {}
        self._slots = 0

    def __len__(self) -> int:
        return self._slots

    def _emit(self, insn: Insn, slots: int = 1) -> None:
        self.insns.append(insn)
        self._slots += slots

    def label(self, name: str) -> None:
        if name in self.labels:
            raise ValueError(f"label {name!r} defined twice")
        self.labels[name] = self._slots

    # ALU
    def alu(self, op: str, dst: int, src_or_imm: int, *, reg: bool = False, bits: int = 64) -> None:
        cls = _ALU64 if bits == 64 else _ALU
        if reg:
            self._emit(Insn(cls | ALU_OPS[op] | _X, dst, src_or_imm))
        else:
            self._emit(Insn(cls | ALU_OPS[op] | _K, dst, 0, 0, _imm32(src_or_imm)))

    def mov(self, dst: int, src: int) -> None:
        """dst = src (a register)."""
        self.alu("mov", dst, src, reg=True)

    def movi(self, dst: int, imm: int, *, bits: int = 64) -> None:
        """dst = imm (64-bit: sign-extended; bits=32: zero-extended)."""
        self.alu("mov", dst, imm, bits=bits)

    def addi(self, dst: int, imm: int) -> None:
        self.alu("add", dst, imm)

    def add(self, dst: int, src: int) -> None:
        self.alu("add", dst, src, reg=True)

    def sub(self, dst: int, src: int) -> None:
        self.alu("sub", dst, src, reg=True)

    def andi(self, dst: int, imm: int) -> None:
        self.alu("and", dst, imm)

    def to_be(self, dst: int, bits: int) -> None:
        """Byte-swap the low `bits` of dst on a little-endian host (network -> host order)."""
        self._emit(Insn(_ALU | _END | _TO_BE, dst, 0, 0, bits))

    # memory
    def ldx(self, size: int, dst: int, src: int, off: int) -> None:
        """dst = *(size *)(src + off)"""
        self._emit(Insn(_LDX | _MEM | size, dst, src, off))

    def stx(self, size: int, dst: int, off: int, src: int) -> None:
        """*(size *)(dst + off) = src"""
        self._emit(Insn(_STX | _MEM | size, dst, src, off))

    def st(self, size: int, dst: int, off: int, imm: int) -> None:
        """*(size *)(dst + off) = imm"""
        self._emit(Insn(_ST | _MEM | size, dst, 0, off, _imm32(imm)))

    def atomic_add(self, size: int, dst: int, off: int, src: int) -> None:
        """*(size *)(dst + off) += src, atomically (BPF_ATOMIC | BPF_ADD)."""
        self._emit(Insn(_STX | _ATOMIC | size, dst, src, off, _ATOMIC_ADD))

    def ld_map_fd(self, dst: int, fd: int) -> None:
        """dst = the map with this fd (ld_imm64 with BPF_PSEUDO_MAP_FD; two slots)."""
        self._emit(Insn(_LD | DW | _IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd), slots=2)

    # control
    def jmp(self, op: str, dst: int, src_or_imm: int, target: str, *, reg: bool = False) -> None:
        if reg:
            self._emit(Insn(_JMP | JMP_OPS[op] | _X, dst, src_or_imm, target=target))
        else:
            self._emit(Insn(_JMP | JMP_OPS[op] | _K, dst, 0, 0, _imm32(src_or_imm), target=target))

    def jeq(self, dst: int, imm: int, target: str) -> None:
        self.jmp("jeq", dst, imm, target)

    def jne(self, dst: int, imm: int, target: str) -> None:
        self.jmp("jne", dst, imm, target)

    def ja(self, target: str) -> None:
        self._emit(Insn(_JMP | JMP_OPS["ja"], target=target))

    def call(self, helper: int) -> None:
        self._emit(Insn(_JMP | _CALL, 0, 0, 0, helper))

    def exit(self) -> None:
        self._emit(Insn(_JMP | _EXIT))

    def assemble(self) -> bytes:
        out = bytearray()
        pc = 0
        for insn in self.insns:
            off = insn.off
            if insn.target is not None:
                if insn.target not in self.labels:
                    raise ValueError(f"jump to undefined label {insn.target!r}")
                off = self.labels[insn.target] - (pc + 1)
            out += insn.encode(off)
            if insn.code == _LD | DW | _IMM:
                out += _INSN.pack(0, 0, 0, 0)       # the second half of ld_imm64: the upper 32 bits
                pc += 2
            else:
                pc += 1
        return bytes(out)


def _imm32(value: int) -> int:
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"immediate {value} does not fit 32 bits")
    return value - (1 << 32) if value >= (1 << 31) else value


# --------------------------------------------------------------------------- layouts
ACTION_PASS, ACTION_DROP = 1, 2
ACTIONS = {"pass": ACTION_PASS, "drop": ACTION_DROP}

# FlowKey: ifindex, ipver, proto, vlan id, src, dst (native order), then the two ports
# big-endian as on the wire: callers pass socket.htons(port) for the "H" fields.
FLOW_KEY = struct.Struct("=IBBH16s16sHH")
FLOW_VALUE = struct.Struct("=IIQQQ")      # action, redirect ifindex, last-seen ns, packets, bytes
TOTALS = struct.Struct("=6Q")             # pass packets, pass bytes, drop packets, drop bytes,
                                          # fail-open packets, fail-open bytes (tc, stale heartbeat)
HEARTBEAT = struct.Struct("=Q")
INDEX = struct.Struct("=I")

K_IFINDEX, K_IPVER, K_PROTO, K_VLAN, K_SRC, K_DST, K_PORTS = 0, 4, 5, 6, 8, 24, 40
V_ACTION, V_REDIRECT, V_LAST, V_PACKETS, V_BYTES = 0, 4, 8, 16, 24
assert FLOW_KEY.size == 44 and FLOW_VALUE.size == 32

HEARTBEAT_STALE_NS = 1_000_000_000       # older than this: both programs step aside (or fail open)
FAILOPEN_PORTS = 64                      # entries of the fail-open map: inline ports
MAX_FLOWS_LIMIT = 1 << 18                # entries, one per flow direction (about 230 bytes of kernel
                                         # memory each, preallocated: 60 MB at most; measured on 6.18)

ETH_P_IP_BE = socket.htons(0x0800)       # skb->protocol is big-endian in its u32
ETH_P_IPV6_BE = socket.htons(0x86DD)
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6 = 6, 17, 1, 58
TCP_FIN_SYN_RST = 0x07
IPV4_MF_OFFSET_LE = 0xFF3F               # MF bit + fragment offset, as a little-endian load of bytes 6-7


def flow_key(ifindex: int, ipver: int, proto: int, vlan: int, src: bytes, dst: bytes,
             sport: int, dport: int) -> bytes:
    """The map key of one direction of a flow (what the programs build from a frame)."""
    alen = 4 if ipver == 4 else 16 if ipver == 6 else 0
    if not alen or len(src) != alen or len(dst) != alen:
        raise ValueError(f"flow key: IPv{ipver} with {len(src)}/{len(dst)}-byte addresses")
    return FLOW_KEY.pack(ifindex, ipver, proto, vlan & 0x0FFF, bytes(src), bytes(dst),
                         socket.htons(sport), socket.htons(dport))


# --------------------------------------------------------------------------- programs
# Stack frame, offsets from FP (each aligned to the size it is accessed with).
S_KEY = -48           # FlowKey, 44 bytes: -48 .. -5
S_FLAGS = -4          # the TCP flags byte (after the key)
S_HDR = -112          # L3 header + the first 14 bytes of L4 (TCP flags), up to 56 bytes: -112 .. -57
S_INDEX = -120        # u32 0, the index of the one-entry arrays
S_NOW = -128          # bpf_ktime_get_ns() of this run
L3_OFFSET = 14        # skb->data is the MAC header; the outer VLAN tag is stripped
TCP_FLAGS_AT = 13     # offset of the flags byte in the TCP header
TCP_HDR, UDP_HDR = 20, 8


def _emit_slot_lookup(a: Asm, map_fd: int, miss: str) -> None:
    """R0 = the value of the map's key at fp+S_INDEX (a u32 the caller stored there);
    jumps to `miss` when there is none.  Clobbers R1-R5."""
    a.ld_map_fd(R1, map_fd)
    a.mov(R2, FP)
    a.addi(R2, S_INDEX)
    a.call(FN_map_lookup_elem)
    a.jeq(R0, 0, miss)


def _emit_flow_lookup(a: Asm, flows_fd: int, heartbeat_fd: int, miss: str, l3: int, stale: str | None = None,
                      count_fd: int | None = None) -> None:
    """The shared front of both programs.  On entry R1 = skb; the network header is `l3`
    bytes after skb->data.  Falls through with R6 = skb, R7 = the flow's FlowValue,
    R8 = IP packet length and the time at fp+S_NOW; jumps to `miss` when the heartbeat
    is stale, the frame is not keyable, or its flow is not in the map.

    Helper calls per frame: ktime, one bpf_skb_load_bytes of the headers (two for an
    IPv4 packet under 34 bytes or an IPv6 one under 54: only UDP can be that short),
    the flow lookup (the one-entry array lookups are inlined by the verifier).  `stale`:
    where a stale heartbeat goes (default `miss`), with R6 = skb.  `count_fd`: the
    array of how many flows the workers have offloaded (KernelOffload.count): while
    none is, a fresh-heartbeat frame goes to `miss` before any header is read; while
    none of its protocol is, before the flow lookup."""
    stale = stale or miss
    a.mov(R6, R1)
    # heartbeat: now - last write must be <= HEARTBEAT_STALE_NS (signed: a write a hair
    # in the future counts as fresh; never written = 0 = stale)
    a.st(W, FP, S_INDEX, 0)
    _emit_slot_lookup(a, heartbeat_fd, stale)
    a.ldx(DW, R7, R0, 0)
    a.call(FN_ktime_get_ns)
    a.stx(DW, FP, S_NOW, R0)
    a.sub(R0, R7)
    a.jmp("jsgt", R0, HEARTBEAT_STALE_NS, stale)
    if count_fd is not None:                    # nothing offloaded: no key, no flow lookup
        a.st(W, FP, S_INDEX, COUNT_ALL)
        _emit_slot_lookup(a, count_fd, miss)
        a.ldx(DW, R2, R0, 0)
        a.jmp("jsle", R2, 0, miss)
    # key: ingress ifindex, VLAN id (0: none), addresses zeroed for IPv4
    a.ldx(W, R2, R6, SKB_ifindex)
    a.stx(W, FP, S_KEY + K_IFINDEX, R2)
    a.ldx(W, R2, R6, SKB_vlan_tci)
    a.andi(R2, 0x0FFF)
    a.stx(H, FP, S_KEY + K_VLAN, R2)
    for off in range(K_SRC, K_PORTS, 8):
        a.st(DW, FP, S_KEY + off, 0)
    a.ldx(W, R2, R6, SKB_protocol)
    a.jeq(R2, ETH_P_IP_BE, "ipv4")
    a.jeq(R2, ETH_P_IPV6_BE, "ipv6")
    a.ja(miss)

    def load_headers(l4: int, label: str) -> None:
        """The IP header and 14 bytes of L4 (through the TCP flags) into fp+S_HDR; for
        a shorter packet (UDP) the IP header and 8 bytes, the flags byte left 0 (a failed
        bpf_skb_load_bytes zeroes its whole destination)."""
        for length in (l4 + TCP_FLAGS_AT + 1, l4 + UDP_HDR):
            a.movi(R2, l3)
            a.mov(R1, R6)
            a.mov(R3, FP)
            a.addi(R3, S_HDR)
            a.movi(R4, length)
            a.call(FN_skb_load_bytes)
            a.jeq(R0, 0, label)
        a.ja(miss)                                              # not even that: not keyable
        a.label(label)
        a.ldx(B, R2, FP, S_HDR + l4 + TCP_FLAGS_AT)
        a.stx(B, FP, S_FLAGS, R2)

    def copy(size: int, src_off: int, dst_off: int) -> None:
        a.ldx(size, R2, FP, S_HDR + src_off)
        a.stx(size, FP, S_KEY + dst_off, R2)

    # IPv4: version 4, IHL 5, no MF, no fragment offset.  R8 = total length, R7 = L4 offset
    a.label("ipv4")
    load_headers(20, "ipv4_loaded")
    a.ldx(B, R2, FP, S_HDR)
    a.jne(R2, 0x45, miss)
    a.ldx(H, R2, FP, S_HDR + 6)
    a.andi(R2, IPV4_MF_OFFSET_LE)
    a.jne(R2, 0, miss)
    a.ldx(B, R9, FP, S_HDR + 9)                 # protocol
    a.ldx(H, R8, FP, S_HDR + 2)                 # total length
    a.to_be(R8, 16)
    copy(W, 12, K_SRC)
    copy(W, 16, K_DST)
    copy(W, 20, K_PORTS)                        # sport, dport as on the wire
    a.st(B, FP, S_KEY + K_IPVER, 4)
    a.movi(R7, 20)
    a.ja("l4")
    # IPv6: version 6, next header TCP/UDP directly (checked below); addresses and ports
    # contiguous.  R8 = payload length + 40, R7 = L4 offset
    a.label("ipv6")
    load_headers(40, "ipv6_loaded")
    a.ldx(B, R2, FP, S_HDR)
    a.andi(R2, 0xF0)
    a.jne(R2, 0x60, miss)
    a.ldx(B, R9, FP, S_HDR + 6)                 # next header
    a.ldx(H, R8, FP, S_HDR + 4)                 # payload length
    a.to_be(R8, 16)
    a.addi(R8, 40)
    for off in range(0, 32, 8):
        copy(DW, 8 + off, K_SRC + off)          # src, dst: 32 bytes
    copy(W, 40, K_PORTS)
    a.st(B, FP, S_KEY + K_IPVER, 6)
    a.movi(R7, 40)
    # L4: UDP, or TCP without SYN/FIN/RST; its whole header inside the IP packet, the IP
    # packet inside the frame (skb->len counts paged data too)
    a.label("l4")
    a.stx(B, FP, S_KEY + K_PROTO, R9)
    a.ldx(W, R2, R6, SKB_len)
    a.addi(R2, -l3)
    a.jmp("jgt", R8, R2, miss, reg=True)        # truncated: longer than the frame holds
    a.mov(R2, R7)
    a.addi(R2, UDP_HDR)                         # = ICMP_HDR
    # fp+S_INDEX: the protocol's slot of the count (set in each branch, read at "sized")
    a.st(W, FP, S_INDEX, COUNT_SLOTS[IPPROTO_UDP])
    a.jeq(R9, IPPROTO_UDP, "sized")
    a.st(W, FP, S_INDEX, COUNT_SLOTS[IPPROTO_ICMP])
    a.jeq(R9, IPPROTO_ICMP, "icmp4")
    a.jeq(R9, IPPROTO_ICMPV6, "icmp6")
    a.jne(R9, IPPROTO_TCP, miss)
    a.st(W, FP, S_INDEX, COUNT_SLOTS[IPPROTO_TCP])
    a.addi(R2, TCP_HDR - UDP_HDR)
    a.ldx(B, R3, FP, S_FLAGS)
    a.andi(R3, TCP_FIN_SYN_RST)
    a.jne(R3, 0, miss)
    a.ja("sized")
    # ICMP echo: the "ports" are the type and its counterpart (bridge.fastpath), bytes
    # 0, type, 0, counterpart; R3 = type, R4 = counterpart.  ICMPv4 only in IPv4 (R7 = 20),
    # ICMPv6 only in IPv6 (R7 = 40); any other message is not keyable
    # (label, L4 offset = the IP version's header, the two echo types differ only in `flip`)
    for label, l4, echo, flip in (("icmp4", 20, 0, 8), ("icmp6", 40, 128, 1)):
        a.label(label)
        a.jne(R7, l4, miss)
        a.ldx(B, R3, FP, S_HDR + l4)
        a.mov(R4, R3)
        a.andi(R4, 0xFF ^ flip)
        a.jne(R4, echo, miss)                   # ICMPv4 echo reply 0 / request 8, ICMPv6 request 128 / reply 129
        a.mov(R4, R3)
        a.alu("xor", R4, flip)
        a.ja("icmp_key")
    a.label("icmp_key")
    a.alu("lsh", R3, 8)
    a.alu("lsh", R4, 24)
    a.alu("or", R3, R4, reg=True)
    a.stx(W, FP, S_KEY + K_PORTS, R3)           # little-endian u32: bytes 0, type, 0, counterpart
    a.label("sized")
    a.jmp("jgt", R2, R8, miss, reg=True)        # L4 header longer than the IP packet
    if count_fd is not None:                    # nothing of this protocol offloaded
        _emit_slot_lookup(a, count_fd, miss)
        a.ldx(DW, R2, R0, 0)
        a.jmp("jsle", R2, 0, miss)
    a.ld_map_fd(R1, flows_fd)
    a.mov(R2, FP)
    a.addi(R2, S_KEY)
    a.call(FN_map_lookup_elem)
    a.jeq(R0, 0, miss)
    a.mov(R7, R0)


def _emit_failopen_peer(a: Asm, failopen_fd: int, none: str) -> None:
    """R0 = the fail-open peer ifindex of the frame's ingress port (R6 = skb); jumps to
    `none` when the port is not armed."""
    a.ldx(W, R2, R6, SKB_ifindex)
    a.stx(W, FP, S_INDEX, R2)
    _emit_slot_lookup(a, failopen_fd, none)
    a.ldx(W, R0, R0, 0)
    a.jeq(R0, 0, none)


def socket_filter_program(flows_fd: int, totals_fd: int, heartbeat_fd: int, failopen_fd: int | None = None, *,
                          l3: int = L3_OFFSET, count_fd: int | None = None) -> Asm:
    """SOCKET_FILTER: 0 (not into the ring) for a frame of an offloaded flow, after
    counting it in its entry and the per-CPU totals; SOCKET_KEEP_WHOLE otherwise.  With
    a stale heartbeat on a port armed for fail-open: 0 (the tc program forwards it; the
    ring must not get a copy a worker would forward again)."""
    a = Asm()
    _emit_flow_lookup(a, flows_fd, heartbeat_fd, "keep", l3, "stale" if failopen_fd is not None else None, count_fd)
    # bytes: the frame's length as the engine counts it (skb->len from the MAC header; a
    # test run starts at L3, so the header it lacks is added back there)
    a.ldx(W, R8, R6, SKB_len)
    a.addi(R8, L3_OFFSET - l3)
    a.movi(R2, 1)
    a.atomic_add(DW, R7, V_PACKETS, R2)
    a.atomic_add(DW, R7, V_BYTES, R8)
    a.ldx(DW, R1, FP, S_NOW)
    a.stx(DW, R7, V_LAST, R1)
    a.ldx(W, R9, R7, V_ACTION)
    a.st(W, FP, S_INDEX, 0)
    _emit_slot_lookup(a, totals_fd, "out")
    a.jne(R9, ACTION_DROP, "count")           # pass totals at +0, drop totals at +16
    a.addi(R0, 16)
    a.label("count")
    a.ldx(DW, R1, R0, 0)                      # per-CPU: no other writer, plain adds
    a.addi(R1, 1)
    a.stx(DW, R0, 0, R1)
    a.ldx(DW, R1, R0, 8)
    a.add(R1, R8)
    a.stx(DW, R0, 8, R1)
    a.label("out")
    a.movi(R0, 0)
    a.exit()
    a.label("keep")
    a.movi(R0, SOCKET_KEEP_WHOLE, bits=32)
    a.exit()
    if failopen_fd is not None:
        a.label("stale")
        _emit_failopen_peer(a, failopen_fd, "keep")
        a.movi(R0, 0)
        a.exit()
    return a


def tc_program(flows_fd: int, heartbeat_fd: int, failopen_fd: int | None = None, totals_fd: int | None = None, *,
               l3: int = L3_OFFSET, count_fd: int | None = None) -> Asm:
    """SCHED_CLS (direct-action, clsact ingress): redirect pass flows to the peer, shoot
    drop flows, TC_ACT_OK for everything else.  Counting is the socket filter's (it
    sees every frame first, on inline and IDS ports alike).  With a stale heartbeat: a
    port armed for fail-open redirects every frame to its peer, any other TC_ACT_OK."""
    a = Asm()
    _emit_flow_lookup(a, flows_fd, heartbeat_fd, "ok", l3, "stale" if failopen_fd is not None else None, count_fd)
    a.ldx(W, R2, R7, V_ACTION)
    a.jeq(R2, ACTION_DROP, "shot")
    a.jne(R2, ACTION_PASS, "ok")
    a.ldx(W, R1, R7, V_REDIRECT)
    a.jeq(R1, 0, "ok")
    a.movi(R2, 0)
    a.call(FN_redirect)                      # TC_ACT_REDIRECT: out of the peer's egress
    a.exit()
    a.label("shot")
    a.movi(R0, TC_ACT_SHOT)
    a.exit()
    a.label("ok")
    a.movi(R0, TC_ACT_OK)
    a.exit()
    if failopen_fd is not None:
        a.label("stale")
        _emit_failopen_peer(a, failopen_fd, "ok")
        a.mov(R9, R0)                             # the peer: callee-saved across the calls below
        if totals_fd is not None:                 # counted: fail-open frames and bytes (frame length)
            a.st(W, FP, S_INDEX, 0)
            _emit_slot_lookup(a, totals_fd, "send")
            a.ldx(DW, R1, R0, 32)
            a.addi(R1, 1)
            a.stx(DW, R0, 32, R1)
            a.ldx(W, R2, R6, SKB_len)
            a.ldx(DW, R1, R0, 40)
            a.add(R1, R2)
            a.stx(DW, R0, 40, R1)
            a.label("send")
        a.mov(R1, R9)
        a.movi(R2, 0)
        a.call(FN_redirect)
        a.exit()
    return a


# --------------------------------------------------------------------------- maps and programs
class BpfMap:
    """One map fd with fixed key/value sizes; lookups through preallocated buffers."""

    def __init__(self, map_type: int, key_size: int, value_size: int, max_entries: int, name: str, flags: int = 0):
        attr = _attr()
        struct.pack_into("=7I", attr, 0, map_type, key_size, value_size, max_entries, flags, 0, 0)
        struct.pack_into("16s", attr, 28, _name16(name))
        self.fd = bpf(BPF_MAP_CREATE, attr)
        self.key_size, self.value_size, self.max_entries = key_size, value_size, max_entries
        self.per_cpu = map_type == BPF_MAP_TYPE_PERCPU_ARRAY
        self.cpus = possible_cpus() if self.per_cpu else 1
        self._key = ctypes.create_string_buffer(key_size)
        self._value = ctypes.create_string_buffer(((value_size + 7) & ~7) * self.cpus)
        self._lookup = _attr()
        struct.pack_into("=IIQQQ", self._lookup, 0, self.fd, 0, ctypes.addressof(self._key),
                         ctypes.addressof(self._value), 0)
        self._update = _attr()
        struct.pack_into("=IIQQ", self._update, 0, self.fd, 0, ctypes.addressof(self._key),
                         ctypes.addressof(self._value))
        self._delete = _attr()                # everything after `key` stays zero
        struct.pack_into("=IIQ", self._delete, 0, self.fd, 0, ctypes.addressof(self._key))

    def lookup(self, key: bytes) -> bytes | None:
        """The value (per-CPU maps: every CPU's value, each padded to 8 bytes), or None."""
        self._key.raw = key
        try:
            bpf(BPF_MAP_LOOKUP_ELEM, self._lookup)
        except FileNotFoundError:
            return None
        return self._value.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        self._key.raw = key
        ctypes.memmove(self._value, value, len(value))
        struct.pack_into("=Q", self._update, 24, flags)
        bpf(BPF_MAP_UPDATE_ELEM, self._update)

    def delete(self, key: bytes) -> bool:
        self._key.raw = key
        try:
            bpf(BPF_MAP_DELETE_ELEM, self._delete)
        except FileNotFoundError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def possible_cpus() -> int:
    """Per-CPU map values come one per *possible* CPU (/sys/devices/system/cpu/possible)."""
    with open("/sys/devices/system/cpu/possible") as fh:
        text = fh.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n


class ProgramRefused(OSError):
    """BPF_PROG_LOAD failed; `log` is the verifier's explanation."""

    def __init__(self, err: int, name: str, log: str):
        tail = log.strip().splitlines()[-12:]
        super().__init__(err, f"the kernel refused program {name}: {os.strerror(err)}"
                         + ("\n  verifier: " + "\n  verifier: ".join(tail) if tail else ""))
        self.log = log


def load_program(prog_type: int, code: bytes, name: str, *, log_size: int = LOG_SIZE) -> int:
    """BPF_PROG_LOAD with a verifier log (level 1); ProgramRefused carries the log."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")      # the project's licence, GPL-2.0-only
    log = ctypes.create_string_buffer(log_size)
    attr = _attr()
    struct.pack_into("=IIQQIIQII16s", attr, 0, prog_type, len(code) // 8, ctypes.addressof(insns),
                     ctypes.addressof(license_), 1, log_size, ctypes.addressof(log), 0, 0, _name16(name))
    try:
        return bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise ProgramRefused(e.errno, name, log.value.decode(errors="replace")) from None


@dataclass(frozen=True, slots=True)
class ProgramInfo:
    insns: int            # instructions as assembled (slots)
    xlated_bytes: int     # after the verifier's rewrites (8 bytes per instruction)
    jited_bytes: int      # machine code, 0 without the JIT
    verified_insns: int   # instructions the verifier walked (all paths)


def program_info(fd: int, insns: int) -> ProgramInfo:
    info = ctypes.create_string_buffer(232)
    attr = _attr()
    struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    jited, xlated = struct.unpack_from("=II", info, 16)
    (verified,) = struct.unpack_from("=I", info, 216)
    return ProgramInfo(insns, xlated, jited, verified)


def program_stats(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a program on traffic: counted only while the sysctl
    kernel.bpf_stats_enabled is 1 (a measurement switch: it costs a little per run)."""
    info = ctypes.create_string_buffer(232)
    attr = _attr()
    struct.pack_into("=IIQ", attr, 0, fd, len(info), ctypes.addressof(info))
    bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    run_time, run_cnt = struct.unpack_from("=QQ", info, 192)
    return run_time, run_cnt


@dataclass(frozen=True, slots=True)
class RunResult:
    retval: int
    duration_ns: int     # mean per run, as the kernel measures it


def prog_test_run(prog_fd: int, data: bytes, *, ctx: bytes | None = None, repeat: int = 1) -> RunResult:
    """BPF_PROG_TEST_RUN: run a program on `data` without traffic.  A socket filter's
    run starts at L3 (Ethernet header pulled by eth_type_trans, skb->protocol set); a
    tc program's at L2.  `ctx` is a struct __sk_buff (e.g. ifindex); default: lo."""
    din = ctypes.create_string_buffer(data, len(data))
    dout = ctypes.create_string_buffer(len(data) + 256)
    cin = ctypes.create_string_buffer(ctx, len(ctx)) if ctx else None
    attr = _attr()
    struct.pack_into("=IIIIQQII", attr, 0, prog_fd, 0, len(data), len(dout), ctypes.addressof(din),
                     ctypes.addressof(dout), repeat, 0)
    if cin is not None:
        struct.pack_into("=IIQ", attr, 40, len(ctx), 0, ctypes.addressof(cin))
    bpf(BPF_PROG_TEST_RUN, attr)
    retval, = struct.unpack_from("=I", attr, 4)
    duration, = struct.unpack_from("=I", attr, 36)
    return RunResult(retval, duration)


# --------------------------------------------------------------------------- tc (pyroute2)
FILTER_PREFIX = "ipsbridge"
TC_H_CLSACT_INGRESS = 0xFFFFFFF2
TC_H_CLSACT_EGRESS = 0xFFFFFFF3
_FILTER_RE = re.compile(r"^ipsbridge:(?P<pid>\d+):(?P<start>\d+)$")


def _process_start(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot, /proc/PID/stat field 22), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def filter_name(pid: int | None = None) -> str:
    """`ipsbridge:<pid>:<start time>`: which process owns a filter, even after PID reuse."""
    pid = os.getpid() if pid is None else pid
    return f"{FILTER_PREFIX}:{pid}:{_process_start(pid) or 0}"


def filter_owner_alive(name: str) -> bool:
    m = _FILTER_RE.match(name)
    if not m:
        return False
    return _process_start(int(m["pid"])) == int(m["start"])


@dataclass(frozen=True, slots=True)
class TcFilter:
    ifindex: int
    parent: int
    prio: int
    handle: int
    name: str

    @property
    def ours(self) -> bool:
        return self.name.startswith(FILTER_PREFIX + ":")


def _ipr():
    from pyroute2 import IPRoute
    return IPRoute()


def list_filters(ipr, ifindex: int) -> list[TcFilter]:
    """bpf filters on the clsact hooks of a link (none when it has no clsact)."""
    out = []
    for parent in (TC_H_CLSACT_INGRESS, TC_H_CLSACT_EGRESS):
        try:
            msgs = ipr.get_filters(index=ifindex, parent=parent)
        except Exception:  # noqa: BLE001, S112 - no clsact qdisc: EINVAL / ENOENT depending on the kernel
            continue
        for msg in msgs:
            if msg.get_attr("TCA_KIND") != "bpf":
                continue
            opts = msg.get_attr("TCA_OPTIONS")
            name = opts.get_attr("TCA_BPF_NAME") if opts is not None else None
            if name is None:
                continue               # the chain's head message, no filter in it
            out.append(TcFilter(ifindex, parent, (msg["info"] >> 16) & 0xFFFF, msg["handle"], name))
    return out


def has_clsact(ipr, ifindex: int) -> bool:
    return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=ifindex))


def delete_filter(ipr, f: TcFilter) -> None:
    ipr.tc("del-filter", "bpf", f.ifindex, f.handle, parent=f.parent, prio=f.prio)


def _link_index(ipr, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def remove_stale_filters(ifnames: Iterable[str], *, all_owners: bool = False, ipr=None) -> list[str]:
    """Remove the ipsbridge tc filters whose owner process is gone (all of them with
    `all_owners`) from these links, then their clsact qdisc when nothing is left on it.
    `ipr`: a pyroute2 IPRoute/NetNS (default: an IPRoute in this network namespace).
    One line per thing removed, for logs and `check --fix`."""
    if ipr is None:
        with _ipr() as own:
            return remove_stale_filters(ifnames, all_owners=all_owners, ipr=own)
    done = []
    for name in ifnames:
        ifindex = _link_index(ipr, name)
        if ifindex is None:
            continue
        stale = [f for f in list_filters(ipr, ifindex)
                 if f.ours and (all_owners or not filter_owner_alive(f.name))]
        for f in stale:
            try:
                delete_filter(ipr, f)
                done.append(f"{name}: removed tc filter {f.name} (pref {f.prio})")
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                done.append(f"{name}: could not remove tc filter {f.name}: {exc}")
        if stale and has_clsact(ipr, ifindex) and not list_filters(ipr, ifindex):
            try:
                ipr.tc("del", "clsact", ifindex)
                done.append(f"{name}: removed the clsact qdisc it left empty")
            except Exception as exc:  # noqa: BLE001
                done.append(f"{name}: could not remove the clsact qdisc: {exc}")
    return done


def stale_filters(ifnames: Iterable[str]) -> list[tuple[str, TcFilter]]:
    """(link name, filter) for each ipsbridge filter on these links whose owner is gone."""
    out = []
    with _ipr() as ipr:
        for name in ifnames:
            ifindex = _link_index(ipr, name)
            if ifindex is not None:
                out += [(name, f) for f in list_filters(ipr, ifindex) if f.ours and not filter_owner_alive(f.name)]
    return out


# --------------------------------------------------------------------------- the offload
INT64 = struct.Struct("=q")


# the offloaded-flow count's slots: all flows, then one per protocol (ICMPv6 shares ICMP's)
COUNT_ALL = 0
COUNT_SLOTS = {IPPROTO_TCP: 1, IPPROTO_UDP: 2, IPPROTO_ICMP: 3, IPPROTO_ICMPV6: 3}


def _count_map() -> tuple[BpfMap, mmap.mmap] | None:
    """The offloaded-flow count: a BPF array of 4 int64 (COUNT_ALL, COUNT_SLOTS), mmap'd
    (shared with the workers over fork) and changed with bridge._ringpass.atomic_add.
    None when the kernel has no mmapable arrays or the compiled module is not built: the
    programs then look every frame up, as before."""
    if _atomic_add is None:
        return None
    try:
        m = BpfMap(BPF_MAP_TYPE_ARRAY, INDEX.size, INT64.size, 4, "ipsb_count", BPF_F_MMAPABLE)
    except OSError:
        return None
    try:
        mem = mmap.mmap(m.fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        m.close()
        return None
    return m, mem


@dataclass(slots=True)
class _Attached:
    ifindex: int
    made_clsact: bool


class KernelOffload:
    """The map, the programs and their attachment for one bridge process.

    Created by the supervisor before the sockets (the workers inherit the fds over
    fork and call add/read/remove); attach_tc, heartbeat and detach_all are the
    supervisor's.  Every method is a syscall or two: no per-frame work in Python."""

    def __init__(self, flows: BpfMap, totals: BpfMap, heartbeat_map: BpfMap, sock_fd: int, tc_fd: int,
                 info: dict[str, ProgramInfo], failopen: BpfMap | None = None,
                 count: tuple[BpfMap, mmap.mmap] | None = None):
        self.flows = flows
        # how many flows are in `flows` (or were: an entry the LRU evicted stays counted),
        # in all and per protocol, an mmap of the array the programs read first: while
        # none is they return at once (no header read, no lookup), while none of the
        # frame's protocol is, before the lookup.  Shared by every worker (inherited over
        # fork), changed with atomic adds: +1 before a new entry goes in, -1 after one is
        # deleted, so no count is ever below its entries.
        self.count_map, self.count = count if count is not None else (None, None)
        self.totals_map = totals
        self.heartbeat_map = heartbeat_map
        self.failopen = failopen
        self.armed: list[tuple[int, int]] = []    # (port, peer) ifindexes armed for fail-open
        self.sock_fd = sock_fd
        self.tc_fd = tc_fd
        self.info = info
        self.owner = os.getpid()
        self.name = filter_name()
        self.attached: list[_Attached] = []
        self._hb_key = INDEX.pack(0)

    # ---------------------------------------------------------------- life cycle
    @classmethod
    def create(cls, max_flows: int, *, fresh: bool = True) -> KernelOffload:
        """Maps and both programs.  Raises OffloadUnavailable(reason) when this kernel or
        this process cannot (no bpf(), no permission, a map type or a program refused).
        `fresh`: write the heartbeat at once; False leaves it stale until the caller's
        first heartbeat (fail-open: the kernel forwards until the workers are ready)."""
        max_flows = max(1, min(int(max_flows), MAX_FLOWS_LIMIT))
        made: list[BpfMap] = []
        fds: list[int] = []
        count = None
        try:
            try:
                flows = BpfMap(BPF_MAP_TYPE_LRU_HASH, FLOW_KEY.size, FLOW_VALUE.size, max_flows, "ipsb_flows")
                made.append(flows)
                totals = BpfMap(BPF_MAP_TYPE_PERCPU_ARRAY, INDEX.size, TOTALS.size, 1, "ipsb_totals")
                made.append(totals)
                hb = BpfMap(BPF_MAP_TYPE_ARRAY, INDEX.size, HEARTBEAT.size, 1, "ipsb_heartbeat")
                made.append(hb)
                fo = BpfMap(BPF_MAP_TYPE_HASH, INDEX.size, INDEX.size, FAILOPEN_PORTS, "ipsb_failopen")
                made.append(fo)
            except OSError as e:
                raise OffloadUnavailable(_why("creating a BPF map", e)) from None
            count = _count_map()
            if count is not None:
                made.append(count[0])
            cfd = count[0].fd if count is not None else None
            progs = {"ipsb_sock": (BPF_PROG_TYPE_SOCKET_FILTER,
                                   socket_filter_program(flows.fd, totals.fd, hb.fd, fo.fd, count_fd=cfd)),
                     "ipsb_tc": (BPF_PROG_TYPE_SCHED_CLS, tc_program(flows.fd, hb.fd, fo.fd, totals.fd, count_fd=cfd))}
            info = {}
            for name, (ptype, asm) in progs.items():
                try:
                    fd = load_program(ptype, asm.assemble(), name)
                except OSError as e:
                    raise OffloadUnavailable(_why(f"loading the {name} program", e)) from None
                fds.append(fd)
                try:
                    info[name] = program_info(fd, len(asm))
                except OSError:
                    info[name] = ProgramInfo(len(asm), 0, 0, 0)
        except BaseException:
            for m in made:
                m.close()
            if count is not None:
                count[1].close()
            for fd in fds:
                os.close(fd)
            raise
        self = cls(flows, totals, hb, fds[0], fds[1], info, fo, count)
        if fresh:
            self.heartbeat()
        return self

    def arm_failopen(self, ifindex: int, peer: int) -> None:
        """Fail open on `ifindex`: while the heartbeat is stale, every frame arriving there
        is forwarded out of `peer` by the tc program (and kept out of the rings)."""
        self.failopen.update(INDEX.pack(ifindex), INDEX.pack(peer))
        self.armed.append((ifindex, peer))

    def socket_filter_fd(self) -> int:
        """The SOCKET_FILTER program, for SO_ATTACH_BPF before bind (bridge.afpacket.open_socket)."""
        return self.sock_fd

    def attach_tc(self, ifindex: int) -> None:
        """The tc program on the link's clsact ingress, direct-action, named after this
        process.  Raises OffloadUnavailable when the kernel cannot (no clsact/cls_bpf)."""
        with _ipr() as ipr:
            made = False
            if not has_clsact(ipr, ifindex):
                try:
                    ipr.tc("add", "clsact", ifindex)
                    made = True
                except Exception as exc:  # noqa: BLE001 - NetlinkError: the kernel's errno
                    raise OffloadUnavailable(f"cannot add a clsact qdisc on ifindex {ifindex}: {exc} "
                                             f"(kernel without CONFIG_NET_SCH_INGRESS?)") from None
            try:
                ipr.tc("add-filter", "bpf", ifindex, ":1", fd=self.tc_fd, name=self.name,
                       parent=TC_H_CLSACT_INGRESS, classid=1, direct_action=True)
            except Exception as exc:  # noqa: BLE001
                if made:
                    try:
                        ipr.tc("del", "clsact", ifindex)
                    except Exception:  # noqa: BLE001, S110 - the attach error is the one to report
                        pass
                raise OffloadUnavailable(f"cannot attach the tc program on ifindex {ifindex}: {exc} "
                                         f"(kernel without CONFIG_NET_CLS_BPF?)") from None
        self.attached.append(_Attached(ifindex, made))

    def detach_all(self) -> None:
        """Remove this process's tc filters (and the clsact qdiscs it made, when empty).
        Only the creating process detaches: a forked worker's call does nothing."""
        if os.getpid() != self.owner or not self.attached:
            return
        with _ipr() as ipr:
            for att in self.attached:
                try:
                    for f in list_filters(ipr, att.ifindex):
                        if f.name == self.name:
                            delete_filter(ipr, f)
                    if att.made_clsact and not list_filters(ipr, att.ifindex):
                        ipr.tc("del", "clsact", att.ifindex)
                except Exception:  # noqa: BLE001, S110 - the link may be gone: nothing left to remove
                    pass
        self.attached.clear()

    def close(self, *, keep_filters: bool = False) -> None:
        """detach_all, then close the descriptors (a map lives on while a worker holds it).
        `keep_filters` (fail-open at exit): the tc filters stay, holding their program and
        maps, so the kernel goes on forwarding with the heartbeat stale; the next start or
        `ipsbridge check --fix` removes them."""
        if not keep_filters:
            self.detach_all()
        for m in (self.flows, self.totals_map, self.heartbeat_map, self.failopen, self.count_map):
            if m is not None:
                m.close()
        if self.count is not None:
            self.count.close()
            self.count = None
        for fd in (self.sock_fd, self.tc_fd):
            if fd >= 0:
                os.close(fd)
        self.sock_fd = self.tc_fd = -1

    def heartbeat(self, now_ns: int | None = None) -> None:
        """Tell the programs the bridge is alive (supervisor, at least once a second)."""
        self.heartbeat_map.update(self._hb_key, HEARTBEAT.pack(time.monotonic_ns() if now_ns is None else now_ns))

    def step_aside(self) -> None:
        """Make the heartbeat stale now: both programs let every frame through to the ring
        and the stack, as if the map were empty (shutdown, before the workers stop)."""
        self.heartbeat(0)

    # ---------------------------------------------------------------- flows (workers)
    def add(self, ifindex: int, ipver: int, proto: int, vlan: int, src: bytes, dst: bytes, sport: int,
            dport: int, action: str, redirect: int) -> bool:
        """Offload one direction of a flow: its frames arriving on `ifindex` are kept out
        of the ring and (tc) forwarded out of `redirect` or dropped.  An entry already
        there with the same action keeps its counters.  False when the kernel refuses."""
        code = ACTIONS[action]
        key = flow_key(ifindex, ipver, proto, vlan, src, dst, sport, dport)
        counted = False
        try:
            old = self.flows.lookup(key)
            if old is not None and FLOW_VALUE.unpack_from(old)[:2] == (code, redirect):
                return True
            if old is None and self.count is not None:
                self._count(proto, 1)                 # before the entry: the programs look it up
                counted = True
            self.flows.update(key, FLOW_VALUE.pack(code, redirect, time.monotonic_ns(), 0, 0))
        except OSError:
            if counted:
                self._count(proto, -1)
            return False
        return True

    def _count(self, proto: int, delta: int) -> None:
        """Add delta to the count of all flows and of the protocol's (the protocol's last
        when adding, first when removing: a program that sees it non-zero sees [0] so)."""
        slot = COUNT_SLOTS.get(proto)
        if delta < 0 and slot is not None:
            _atomic_add(self.count, delta, slot * INT64.size)
        _atomic_add(self.count, delta, 0)
        if delta > 0 and slot is not None:
            _atomic_add(self.count, delta, slot * INT64.size)

    def read(self, ifindex: int, ipver: int, proto: int, vlan: int, src: bytes, dst: bytes, sport: int,
             dport: int) -> tuple[int, int, int] | None:
        """(packets, bytes, last-seen CLOCK_MONOTONIC ns) of an entry, None when it is gone
        (removed, or evicted from the LRU: its flow is back in user space)."""
        raw = self.flows.lookup(flow_key(ifindex, ipver, proto, vlan, src, dst, sport, dport))
        if raw is None:
            return None
        _, _, last, packets, nbytes = FLOW_VALUE.unpack_from(raw)
        return packets, nbytes, last

    def remove(self, ifindex: int, ipver: int, proto: int, vlan: int, src: bytes, dst: bytes, sport: int,
               dport: int) -> None:
        if self.flows.delete(flow_key(ifindex, ipver, proto, vlan, src, dst, sport, dport)) and self.count is not None:
            self._count(proto, -1)                    # after the entry is gone

    def offloaded(self, proto: int | None = None) -> int | None:
        """The programs' count of offloaded flows, all or of one IP protocol (None: no
        count on this kernel)."""
        if self.count is None:
            return None
        return INT64.unpack_from(self.count, 0 if proto is None else COUNT_SLOTS[proto] * INT64.size)[0]

    def totals(self) -> dict[str, int]:
        """bypass.kernel.* summed over the CPUs."""
        raw = self.totals_map.lookup(INDEX.pack(0)) or b""
        sums = [0] * 6
        step = (TOTALS.size + 7) & ~7
        for off in range(0, len(raw) - step + 1, step):
            for i, v in enumerate(TOTALS.unpack_from(raw, off)):
                sums[i] += v
        return {"bypass.kernel.pass_frames": sums[0], "bypass.kernel.pass_bytes": sums[1],
                "bypass.kernel.drop_frames": sums[2], "bypass.kernel.drop_bytes": sums[3],
                "failopen.frames": sums[4], "failopen.bytes": sums[5]}


def _why(step: str, e: OSError) -> str:
    if isinstance(e, ProgramRefused) and e.errno != errno.EPERM:
        return f"{step}: {e.args[1]}"
    if e.errno in (errno.EPERM, errno.EACCES):
        return f"{step}: {e.strerror} (needs root or CAP_BPF + CAP_NET_ADMIN)"
    if e.errno == errno.ENOSYS:
        return f"{step}: this kernel has no bpf() syscall (CONFIG_BPF_SYSCALL)"
    if e.errno == errno.EINVAL and "map" in step:
        return f"{step}: {e.strerror} (kernel too old for LRU hash / per-CPU array maps? 4.10+)"
    return f"{step}: {e.strerror}"


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """python3 -m bridge.ebpf info              programs: instructions, JIT size, cost per run
       python3 -m bridge.ebpf cleanup [--all] IFACE...   remove ipsbridge tc filters whose
                                                   owner is gone (--all: every one) here"""
    import argparse

    p = argparse.ArgumentParser(prog="python3 -m bridge.ebpf", description="ipsbridge's kernel offload")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="load the programs, print their size and the cost of a run")
    c = sub.add_parser("cleanup", help="remove stale ipsbridge tc filters (this network namespace)")
    c.add_argument("--all", action="store_true", help="every ipsbridge filter, owner alive or not")
    c.add_argument("ifaces", nargs="+")
    args = p.parse_args(argv)
    if args.cmd == "cleanup":
        for line in remove_stale_filters(args.ifaces, all_owners=args.all):
            print(line)
        return 0
    try:
        off = KernelOffload.create(1024)
    except OffloadUnavailable as e:
        print(f"kernel offload unavailable: {e}")
        return 1
    try:
        for name, info in off.info.items():
            print(f"{name}: {info.insns} instructions, {info.xlated_bytes // 8} after the verifier, "
                  f"{info.jited_bytes} bytes JITed, {info.verified_insns} verified")
        # an IPv4 TCP segment of a bulk transfer: 198.51.100.1:40000 -> .2:80, ACK, 1000 bytes
        frame = bytes.fromhex("020000000002" "020000000001" "0800" "450004100001400040060000c6336401c6336402"
                              "9c4000500000000100000002501000ff00000000") + bytes(1000)
        off.add(1, 4, IPPROTO_TCP, 0, frame[26:30], frame[30:34], 40000, 80, "pass", 1)
        empty = Asm()
        empty.movi(R0, 0)
        empty.exit()
        base_fd = load_program(BPF_PROG_TYPE_SCHED_CLS, empty.assemble(), "ipsb_empty")
        base = prog_test_run(base_fd, frame, repeat=200_000).duration_ns
        os.close(base_fd)
        print(f"an empty program: {base} ns per run (the test harness's own share)")
        # a socket filter's test run starts at L3: time the l3=0 assembly of the same program
        sock_l3 = load_program(BPF_PROG_TYPE_SOCKET_FILTER, socket_filter_program(
            off.flows.fd, off.totals_map.fd, off.heartbeat_map.fd, l3=0).assemble(), "ipsb_sock_l3")
        for name, fd in (("ipsb_sock", sock_l3), ("ipsb_tc", off.tc_fd)):
            hit = prog_test_run(fd, frame, repeat=200_000)
            miss = prog_test_run(fd, frame[:34] + b"\x9c\x41" + frame[36:], repeat=200_000)
            assert hit.retval in (0, TC_ACT_REDIRECT) and miss.retval in (SOCKET_KEEP_WHOLE, TC_ACT_OK)
            print(f"{name}: {hit.duration_ns} ns per run on a hit, {miss.duration_ns} on a miss "
                  f"(BPF_PROG_TEST_RUN, mean of 200000)")
        os.close(sock_l3)
    finally:
        off.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
