"""The user-space fast path: frames of decided flows, forwarded or dropped without the engine.

When the inspector decides a flow (a pass or drop that holds for the whole flow, the
`bypass` keyword, stream.bypass, no rule left that could match: `rules.api.Bypass` on
`Result.bypass`), the data plane installs the flow here, and every later frame of it is
looked up before the engine and answered FORWARD or DROP with no decoding and no
inspection.  Per worker; the worker (bridge.worker) and replay (bridge.replay) call it
the same way:

    fp = FastPath([FastPort(0, ifindex_a, 1), FastPort(1, ifindex_b, 0)], inspector, mode="ips")
    per frame:   v = fp.hit(port, buf, start, end, vlan, ts)   # MISS, FORWARD or DROP
                 if v == MISS: r = inspector.inspect(...);  if r.bypass: fp.install(port, ..., r.bypass, ts)
    per tick:    fp.sync(mono_to_ts); inspector.tick(now); fp.sync(mono_to_ts)
    shutdown:    fp.sync(); inspector.finish(); fp.clear()

The key.  Fixed offsets, sliced from the frame, never decoded: the 12 bytes src, dst,
sport, dport of IPv4 (L3+12..L3+24) or the 36 of IPv6 (L3+8..L3+44), in one dict per
port and protocol (TCP, UDP, ICMP echo); with a VLAN the key is `(vlan, bytes)`.  An ICMP
echo flow has no ports: the engine keys it on the message type and its counterpart
(rules.flow), so its key's "ports" are the two bytes 0, type and 0, counterpart (echo
request 8 <-> reply 0, ICMPv6 128 <-> 129), and reversing the key swaps them as it swaps
ports.  Keyable frames:
Ethernet, no VLAN tag in the bytes when the kernel stripped one (`vlan` given: an
in-band tag as well is QinQ, not keyable) or one in-band 802.1Q/802.1ad tag with a VLAN
id other than 0 (pcap replay); then IPv4 with IHL 5, no fragment bits (MF 0, offset 0)
and a total length that fits the frame, or IPv6 whose next header is TCP or UDP
directly, payload length fitting the frame; TCP with a whole 20-byte header, UDP with
its 8, an ICMP echo request or reply (ICMPv4 in IPv4, ICMPv6 right after the IPv6
header) with its 8.  Anything else (QinQ, IP options, fragments, extension headers,
other ICMP messages, other link types, truncated packets) is a MISS: it goes to the engine.  The hot case, an
untagged IPv4 frame of 48 bytes or more, is one `struct.unpack_from` and one dict
lookup (`hit`); the rest takes `_parse`, which gives the same keys.

Entries.  Each direction has its own entry, `[action, packets, bytes, last ts, flow]`,
in the table of the port its frames arrive on: the frame that carried the decision on
its ingress port, the reverse (src<->dst, sport<->dport) on the peer port -- both on the
one port when there is no peer (IDS, replay).  Both entries point to one per-flow record
(`_Flow`: the inspector's handle, the entries, where they live, the kernel entries).
Bytes per frame are the frame's length (from the Ethernet header; a kernel-stripped VLAN
tag is not in it), the unit the engine counts and `Inspector.bypassed` takes, so the
engine's flow counters stay exact.

TCP SYN, FIN or RST on a known flow never takes the fast path: the flow's counts are
pushed to `inspector.bypassed`, its entries (user and kernel) go, and the frame is a
MISS, so the engine sees the session close (or a new session on the same ports) as it
would without the fast path.  The engine gives no `Result.bypass` while a session is
closing, so the flow is not installed again.

Time.  `sync` pushes every flow's counts since the last call and the time of its last
frame to `inspector.bypassed(flow, ts, pkts_toserver, bytes_toserver, pkts_toclient,
bytes_toclient)`, which returns False once the inspector has ended the flow (timeout,
eviction, end of input): its entries go, and its next frame is inspected again.  Call it
before `inspector.tick(now)` (so the flow's last activity is known when timeouts are
checked) and again after it (so a flow that tick ended is forgotten at once, not a tick
later, and a new flow on the same key is inspected from its first frame).

Modes: ips installs pass and drop flows; tap only pass flows (a tap never drops: its drop
verdicts are counted, frame by frame, by the engine); ids (no copy-mode) both, nothing is
forwarded anyway -- a decided flow just stops costing inspection.

Prefiltered directions (Bypass "scan", `_install_scan`): an undecided UDP flow's direction,
or an ICMP echo flow's, whose later packets only a fast pattern in their payload can make
a rule match: one entry in the ingress port's table, and each later datagram's payload
(after the UDP header, up to the UDP length; after an echo's 8-byte header, up to the IP
end, code 0 only) is scanned: nothing found, FORWARD; else MISS, the engine inspects it.

Kernel (optional, `bridge.ebpf.KernelOffload`): `install` also adds each direction to the
kernel's map (ingress ifindex, redirect = the peer's ifindex; 0 without a peer), so the
kernel forwards or drops the flow's frames before they reach the ring; `sync` reads the
kernel's counts back (`kernel.read`: cumulative packets, bytes and last-seen
CLOCK_MONOTONIC ns; the difference since the previous read is pushed, the time converted
by `mono_to_ts`), and removal (FIN/RST, ended flows, `clear`) deletes the kernel entries.
Frames still in the ring when the kernel entry appears take the user-space entry.  With
`defer_kernel` (the worker sets it) the kernel entries are added by `commit`, which the
worker calls once its rings are drained, so few frames of the flow are still queued in a
ring when the kernel starts forwarding the flow's newer frames past it: a flow moving to
the kernel is reordered (and retransmitted) as little as possible.

Known limits, all of them the data plane not seeing what it does not decode: a frame of a
decided flow with malformed TCP options, an inconsistent UDP length or an ICMP echo code
other than 0 is forwarded or dropped without the engine's decoder event; a flow the engine evicted at its memcap keeps
its entries until the next `sync`; a flow's place in the engine's least-recently-used
order moves at `sync`, not per frame.

Counters (`stats`, per flow, not per entry): `bypass.installed`, `bypass.removed`,
`bypass.active`, `bypass.pass_frames`, `bypass.pass_bytes`, `bypass.drop_frames`,
`bypass.drop_bytes` (frames answered here), and the kernel's `bypass.kernel.*`.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rules.decode import ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TH_FIN, TH_RST, TH_SYN

MISS, FORWARD, DROP = 0, 1, 2
SCAN = 3                                          # an entry's action: FORWARD unless the payload scan finds something
SCAN_STREAK, SCAN_BACKOFF = 8, 256                # hits in a row, then datagrams handed over unscanned

ACTIONS = {"pass": FORWARD, "drop": DROP, "scan": SCAN}   # rules.api.Bypass.action -> the entry's action
ACTION_NAMES = {FORWARD: "pass", DROP: "drop", SCAN: "scan"}
MODES = ("ips", "tap", "ids")
_NO_DBS = (None, ())                             # a scan entry's compiled scan that asks no database
_ENDS = TH_SYN | TH_FIN | TH_RST                  # TCP flags that take a flow out of the fast path

# Untagged Ethernet + IPv4 with IHL 5 + the first 14 bytes of TCP (or 8 of UDP and 6 more),
# from the frame's first byte (48 bytes): ethertype|version-IHL|TOS, total length,
# flags-fragment offset|TTL|protocol, src dst sport dport (the key), TCP data offset|flags
_ETH_IP4 = struct.Struct("!12xIH2xI2x12s8xH")
_ETH_IP4_LEN = _ETH_IP4.size
_IP4_HEAD = (ETH_P_IP << 8) | 0x45                # ethertype IPv4, version 4, IHL 5
_IP4_FRAG_PROTO = 0x3FFF00FF                      # MF + fragment offset, protocol (TTL masked out)
_TCP4_MIN = 40                                    # IPv4 + TCP headers
_UDP4_MIN = 28
_TCP_HDR, _UDP_HDR = 20, 8
_ICMP_HDR = 8
_ICMP4_ECHO = (0, 8)                              # echo reply, request: the counterpart is type ^ 8
_ICMP6_ECHO = (128, 129)                          # ICMPv6 echo request, reply: type ^ 1


def icmp_echo_ports(ipver: int, itype: int) -> bytes | None:
    """The 4 "port" bytes of an ICMP echo flow key (0, type, 0, counterpart), None for
    any other message (not keyable)."""
    if ipver == 4:
        return bytes((0, itype, 0, itype ^ 8)) if itype in _ICMP4_ECHO else None
    return bytes((0, itype, 0, itype ^ 1)) if itype in _ICMP6_ECHO else None
_VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)


@dataclass(frozen=True, slots=True)
class FastPort:
    index: int                # position in the worker's port list
    ifindex: int              # 0 in replay
    peer: int | None          # index of the peer port (None: IDS, or replay with one "port")


class _Flow:
    """One decided flow: the inspector's handle and both directions' entries."""

    __slots__ = ("handle", "action", "toserver", "toclient", "where", "kernel", "kseen", "skey")

    def __init__(self, handle, action: int) -> None:
        self.handle = handle
        self.action = action
        self.toserver: list = []      # [action, packets, bytes, last ts, self] of each direction
        self.toclient: list = []
        self.where: list = []         # (table, key) of each installed entry
        self.kernel: list = []        # kernel map keys (ifindex, ipver, proto, vlan, src, dst, sport, dport, to_server)
        self.kseen: list = []         # [packets, bytes] read from each kernel entry so far
        self.skey: tuple = ()         # a prefiltered direction ("scan"): its key in FastPath._scans


def _reverse(key: bytes) -> bytes:
    """The key of the other direction: src<->dst, sport<->dport."""
    if len(key) == 12:
        return key[4:8] + key[0:4] + key[10:12] + key[8:10]
    return key[16:32] + key[0:16] + key[34:36] + key[32:34]


def _split(key: bytes) -> tuple[bytes, bytes, int, int]:
    """src, dst, sport, dport of a key."""
    a = len(key) - 4 >> 1
    return key[:a], key[a:2 * a], key[2 * a] << 8 | key[2 * a + 1], key[2 * a + 2] << 8 | key[2 * a + 3]


def _parse(buf, start: int, end: int, vlan: int):
    """(proto, key bytes, VLAN id, IP version, IP packet length, TCP flags, L4 offset) of a
    keyable frame, None for any other (module docstring).  Every case; `FastPath.hit` inlines the
    untagged IPv4 one."""
    n = end - start
    if n < 14:
        return None
    et = buf[start + 12] << 8 | buf[start + 13]
    off = start + 14
    if et in _VLAN_TPIDS:
        if vlan or n < 18:
            return None           # a stripped tag and one in the bytes: QinQ
        vlan = (buf[start + 14] << 8 | buf[start + 15]) & 0x0FFF
        if not vlan:
            return None           # a priority tag: the engine keys it apart from untagged frames
        et = buf[start + 16] << 8 | buf[start + 17]
        off = start + 18
    avail = end - off
    if et == ETH_P_IP:
        if avail < 20 or buf[off] != 0x45 or (buf[off + 6] & 0x3F) | buf[off + 7]:
            return None
        proto = buf[off + 9]
        ip_len = buf[off + 2] << 8 | buf[off + 3]
        l4, key_at, key_len, ipver = off + 20, off + 12, 12, 4
    elif et == ETH_P_IPV6:
        if avail < 40 or buf[off] >> 4 != 6:
            return None
        proto = buf[off + 6]
        ip_len = (buf[off + 4] << 8 | buf[off + 5]) + 40
        l4, key_at, key_len, ipver = off + 40, off + 8, 36, 6
    else:
        return None
    if ip_len > avail:
        return None               # truncated: the engine reports it
    if proto == IPPROTO_TCP:
        if ip_len < l4 - off + _TCP_HDR:
            return None
        flags = buf[l4 + 13]
    elif proto == IPPROTO_UDP:
        if ip_len < l4 - off + _UDP_HDR:
            return None
        flags = 0
    elif proto == (IPPROTO_ICMP if ipver == 4 else IPPROTO_ICMPV6):
        if ip_len < l4 - off + _ICMP_HDR:
            return None
        ports = icmp_echo_ports(ipver, buf[l4])
        if ports is None:
            return None
        return proto, bytes(buf[key_at:key_at + key_len - 4]) + ports, vlan, ipver, ip_len, 0, l4
    else:
        return None
    return proto, bytes(buf[key_at:key_at + key_len]), vlan, ipver, ip_len, flags, l4


class FastPath:
    """Decided flows of one worker, per port (see the module docstring)."""

    def __init__(self, ports: list[FastPort], inspector, *, kernel=None, mode: str = "ips") -> None:
        """mode ips|tap|ids; tap installs only pass flows; kernel: a bridge.ebpf.KernelOffload or None."""
        if mode not in MODES:
            raise ValueError(f"fast path mode {mode!r}: expected one of {', '.join(MODES)}")
        if [p.index for p in ports] != list(range(len(ports))):
            raise ValueError("fast path ports must be listed in index order, from 0")
        self.ports = list(ports)
        self.mode = mode
        self.kernel = kernel
        # an inspector without `bypassed` could never tell a flow ended: nothing is installed
        self._bypassed: Callable[..., bool] | None = getattr(inspector, "bypassed", None)
        self._tcp: list[dict] = [{} for _ in ports]
        self._udp: list[dict] = [{} for _ in ports]
        self._icmp: list[dict] = [{} for _ in ports]   # ICMP echo flows (ICMPv4 and ICMPv6)
        self._tables = {IPPROTO_TCP: self._tcp, IPPROTO_UDP: self._udp,
                        IPPROTO_ICMP: self._icmp, IPPROTO_ICMPV6: self._icmp}
        self._flows: dict[int, _Flow] = {}            # id(handle) -> flow (the flow holds the handle)
        # prefiltered flow directions (Bypass "scan"): (id(handle), to_server) -> flow
        self._scans: dict[tuple, _Flow] = {}
        self.installed = 0
        self.removed = 0
        self.scan_installed = 0
        self.scan_removed = 0
        self.scan_hits = 0                            # datagrams a scan found something in: inspected
        self.scan_backoff = 0                         # datagrams handed over unscanned (SCAN_BACKOFF)
        # Bypass.late: the compiled ring walk (bridge/_ringpass.c) forwards such an echo first
        # and queues it here, (port, frame bytes, ts, checksum hint), when the worker gives
        # it a list and `run_late`, which inspects what is queued; the walk calls it before
        # it asks hit() or the inspector about any other frame, and the worker whenever
        # another frame goes to Python and at the end of each pass (so the engine sees
        # frames in the order they came).  None: nothing is forwarded before inspection.
        self.late: list | None = None
        self.run_late: Callable[[list | None], None] | None = None
        self.scan_late = 0                            # echoes forwarded before inspection
        # frames and bytes counted in entries and already pushed, per action
        self._done = {FORWARD: [0, 0], DROP: [0, 0], SCAN: [0, 0]}
        # defer_kernel: `install` queues a flow's kernel entries and `commit` adds them.  The
        # worker commits once its rings are drained: frames of the flow still in a ring when
        # the kernel starts forwarding its newer ones would leave after them (reordered)
        self.defer_kernel = False
        self._kernel_pending: list[tuple] = []
        self._mono_to_ts: Callable[[int], float] | None = None    # the last one sync() was given

    # ------------------------------------------------------------------ per frame
    def port_tables(self, port: int) -> tuple[dict, dict, dict]:
        """The port's TCP, UDP and ICMP tables (changed in place, never replaced): a frame
        whose protocol's table is empty is a MISS without asking `hit` (the worker's
        compiled ring walk looks)."""
        return self._tcp[port], self._udp[port], self._icmp[port]

    def hit(self, port: int, buf, start: int, end: int, vlan: int, ts: float) -> int:
        """Per frame, before the engine: MISS (inspect it), FORWARD or DROP. buf[start:end] is the
        frame (a memoryview of the ring slot, or bytes). vlan: the kernel-stripped VLAN id, 0 if
        none (when 0 and the frame has an 802.1Q/802.1ad tag at offset 12 -- pcap replay -- that
        in-band tag is the VLAN). SYN/FIN/RST frames of a known flow: push counts, remove the
        flow's entries (user and kernel), return MISS."""
        tcp = self._tcp[port]
        udp = self._udp[port]
        if not tcp and not udp and not self._icmp[port]:
            return MISS
        if end - start >= _ETH_IP4_LEN:
            head, ip_len, frag_proto, key, flags = _ETH_IP4.unpack_from(buf, start)
            if head >> 8 == _IP4_HEAD and ip_len <= end - start - 14:
                frag_proto &= _IP4_FRAG_PROTO
                if vlan:
                    key = (vlan, key)
                if frag_proto == IPPROTO_TCP:
                    if ip_len < _TCP4_MIN:
                        return MISS
                    e = tcp.get(key)
                    if e is None:
                        return MISS
                    if flags & _ENDS:
                        self._end(e[4])
                        return MISS
                elif frag_proto == IPPROTO_UDP and ip_len >= _UDP4_MIN:
                    e = udp.get(key)
                    if e is None:
                        return MISS
                    if e[0] == SCAN:
                        return self._scan(e, buf, start + 34, start + 14 + ip_len, end - start, ts)
                elif frag_proto == IPPROTO_ICMP and ip_len >= 28:
                    icmp = self._icmp[port]
                    ports = icmp_echo_ports(4, buf[start + 34]) if icmp else None
                    if ports is None:
                        return MISS
                    e = icmp.get((vlan, key[1][:8] + ports) if vlan else key[:8] + ports)
                    if e is None:
                        return MISS
                    if e[0] == SCAN:
                        return self._scan(e, buf, start + 34, start + 14 + ip_len, end - start, ts, False)
                else:
                    return MISS
                e[1] += 1
                e[2] += end - start
                e[3] = ts
                return e[0]
        return self._hit_other(port, buf, start, end, vlan, ts)

    def _hit_other(self, port: int, buf, start: int, end: int, vlan: int, ts: float) -> int:
        """hit() for the frames the inline case does not take: short, tagged, IPv6."""
        k = _parse(buf, start, end, vlan)
        if k is None:
            return MISS
        proto, key, vlan, ipver, ip_len, flags, l4 = k
        e = self._tables[proto][port].get((vlan, key) if vlan else key)
        if e is None:
            return MISS
        if e[0] == SCAN:
            return self._scan(e, buf, l4, l4 - (20 if ipver == 4 else 40) + ip_len, end - start, ts,
                              proto == IPPROTO_UDP)
        if flags & _ENDS:
            self._end(e[4])
            return MISS
        e[1] += 1
        e[2] += end - start
        e[3] = ts
        return e[0]

    def _scan(self, e: list, buf, l4: int, ip_end: int, flen: int, ts: float, udp: bool = True) -> int:
        """A datagram of a prefiltered flow direction (entry `e`, its UDP header -- or, `udp`
        False, its ICMP echo header -- at `l4`, its IP packet ending at `ip_end`): FORWARD
        when its payload holds no fast pattern; MISS when it does, or its UDP length is not
        one the engine decodes quietly, or its echo code is not 0, which the engine's offer
        does not cover (the counts kept so far are pushed first, so the engine's flow
        counters are current when its rules run)."""
        if udp:
            ulen = buf[l4 + 4] << 8 | buf[l4 + 5]
        else:
            ulen = ip_end - l4 if buf[l4 + 1] == 0 else 0      # an echo's payload runs to the IP end
        if ulen >= 8 and l4 + ulen <= ip_end:
            streak = e[6]
            if streak < 0:                      # backing off: straight to the engine, no scan
                e[6] = streak + 1
                self.scan_backoff += 1
            else:
                scan = e[5]
                if scan is None or ulen == 8 or not scan(bytes(buf[l4 + 8:l4 + ulen])):
                    e[1] += 1
                    e[2] += flen
                    e[3] = ts
                    e[6] = 0
                    return FORWARD
                self.scan_hits += 1
                # a flow whose datagrams keep holding patterns would pay the scan twice (here
                # and in the engine): after SCAN_STREAK hits in a row, SCAN_BACKOFF datagrams go
                # to the engine unscanned, then the scan is tried again
                e[6] = -SCAN_BACKOFF if streak + 1 >= SCAN_STREAK else streak + 1
        if e[1]:
            f = e[4]
            if not self._push(f, self._mono_to_ts):
                self._remove(f)
        return MISS

    def lookup(self, port: int, buf, start: int, end: int, vlan: int) -> tuple[Any, bool] | None:
        """(the inspector's flow handle, to_server) of the entry the frame falls to, or None.
        Not for every frame: replay uses it to describe a frame the fast path dropped."""
        k = _parse(buf, start, end, vlan)
        if k is None:
            return None
        proto, key, vlan, _ipver, _ip_len, _flags, _l4 = k
        table = self._tables[proto][port]
        e = table.get((vlan, key) if vlan else key)
        if e is None:
            return None
        f = e[4]
        return f.handle, e is f.toserver

    # ------------------------------------------------------------------ decisions
    def install(self, port: int, buf, start: int, end: int, vlan: int, bypass, ts: float) -> bool:
        """After inspect() returned Result.bypass for this frame: add both directions (and the
        kernel entries when there is a kernel). False when the frame is not keyable or the mode
        does not allow it (tap + drop)."""
        action = ACTIONS.get(bypass.action)
        if action is None or (action == DROP and self.mode == "tap") or self._bypassed is None:
            return False
        if action == SCAN:
            # the engine offers it with every inspected datagram of the direction (those the
            # scan hands over, those while backing off): an entry already there is the common case
            old = self._scans.get((id(bypass.flow), bypass.to_server))
            if old is not None and old.handle is bypass.flow:
                return True
        k = _parse(buf, start, end, vlan)
        if k is None:
            return False
        proto, key, vlan, ipver, _ip_len, flags, _l4 = k
        if action == SCAN:
            return self._install_scan(port, proto, (vlan, key) if vlan else key, bypass, ts)
        if proto == IPPROTO_TCP and flags & _ENDS:
            return False                      # closing or starting: stays with the engine
        old = self._flows.get(id(bypass.flow))
        if old is not None:
            if old.handle is bypass.flow and old.action == action:
                return True                   # already installed (a frame that raced its entry)
            self._end(old)
        ingress = self.ports[port]
        peer = self.ports[ingress.peer] if ingress.peer is not None else ingress
        rkey = _reverse(key)
        tables = self._tables[proto]
        here = tables[port]
        there = tables[peer.index]
        fkey = (vlan, key) if vlan else key
        bkey = (vlan, rkey) if vlan else rkey
        for table, k_ in ((here, fkey), (there, bkey)):
            e = table.get(k_)
            if e is not None:
                self._end(e[4])               # an older flow on the same key (it ended in the engine)
        f = _Flow(bypass.flow, action)
        fwd = [action, 0, 0, ts, f, None]
        back = [action, 0, 0, ts, f, None]
        here[fkey] = fwd
        f.where.append((here, fkey))
        if there is not here or bkey != fkey:
            there[bkey] = back
            f.where.append((there, bkey))
        # else: src == dst and sport == dport, one key for both directions (the engine calls it to_server)
        if bypass.to_server:
            f.toserver, f.toclient = fwd, back
        else:
            f.toserver, f.toclient = back, fwd
        if self.kernel is not None:
            if self.defer_kernel:
                self._kernel_pending.append((f, ingress, peer, ipver, proto, vlan, key, rkey, bypass.to_server))
            else:
                self._kernel_add(f, ingress, peer, ipver, proto, vlan, key, rkey, bypass.to_server)
        self._flows[id(bypass.flow)] = f
        self.installed += 1
        return True

    def _install_scan(self, port: int, proto: int, key, bypass, ts: float) -> bool:
        """Bypass "scan": one entry, for the frame's direction on its ingress port (the other
        direction gets its own offer from its own frames); never in the kernel (it cannot
        scan).  An entry of another flow on the key goes first."""
        if proto != IPPROTO_UDP and proto != IPPROTO_ICMP and proto != IPPROTO_ICMPV6:
            return False
        skey = (id(bypass.flow), bypass.to_server)           # (install() returned already if it is there)
        table = self._tables[proto][port]
        e = table.get(key)
        if e is not None:
            self._end(e[4])                   # an older flow on the key (it ended in the engine)
        f = _Flow(bypass.flow, SCAN)
        scan = bypass.scan
        # ..., the scan, hits in a row (< 0: backing off), the scan as the compiled ring walk
        # runs it itself (rules.prefilter.AnyPattern.spec; None: it asks hit(); no scan at all:
        # no database to ask), and Bypass.late as the walk runs it (None: any frame; False:
        # none; a spec: those it finds nothing in)
        spec = _NO_DBS if scan is None else getattr(scan, "spec", None)
        late = bypass.late
        if late is not None and late is not False:
            late = getattr(late, "spec", None) or False
        entry = [SCAN, 0, 0, ts, f, scan, 0, spec, late]
        idle = [SCAN, 0, 0, ts, f, None, 0, None, False]   # the other direction: never in a table
        f.toserver, f.toclient = (entry, idle) if bypass.to_server else (idle, entry)
        table[key] = entry
        f.where.append((table, key))
        f.skey = skey
        self._scans[skey] = f
        self.scan_installed += 1
        return True

    @property
    def pending(self) -> bool:
        """Decided flows whose kernel entries wait for `commit` (defer_kernel)."""
        return bool(self._kernel_pending)

    def commit(self) -> int:
        """Add the kernel entries of the flows installed since the last call (defer_kernel),
        except those that left the fast path meanwhile; returns how many flows."""
        pending, self._kernel_pending = self._kernel_pending, []
        n = 0
        for args in pending:
            f = args[0]
            if self._flows.get(id(f.handle)) is f:
                self._kernel_add(*args)
                n += 1
        return n

    def _kernel_add(self, f: _Flow, ingress: FastPort, peer: FastPort, ipver: int, proto: int, vlan: int,
                    key: bytes, rkey: bytes, to_server: bool) -> None:
        name = ACTION_NAMES[f.action]
        has_peer = ingress.peer is not None
        sides = [(ingress.ifindex, key, peer.ifindex if has_peer else 0, to_server)]
        if has_peer or rkey != key:
            sides.append((peer.ifindex, rkey, ingress.ifindex if has_peer else 0, not to_server))
        for ifindex, k, redirect, ts_dir in sides:
            src, dst, sport, dport = _split(k)
            try:
                ok = self.kernel.add(ifindex, ipver, proto, vlan, src, dst, sport, dport, name, redirect)
            except OSError:
                ok = False
            if ok:
                f.kernel.append((ifindex, ipver, proto, vlan, src, dst, sport, dport, ts_dir))
                f.kseen.append([0, 0])

    # ------------------------------------------------------------------ time
    def sync(self, mono_to_ts: Callable[[int], float] | None = None) -> None:
        """Each tick, BEFORE inspector.tick(now): push every flow's new counts/last ts to
        inspector.bypassed(...) (kernel entries read with kernel.read; `mono_to_ts(ns)` converts the
        kernel's CLOCK_MONOTONIC ns to the frame-time domain), and forget flows it says ended.
        Called again right after the tick, it forgets the flows that tick ended."""
        if mono_to_ts is not None:
            self._mono_to_ts = mono_to_ts
        for f in list(self._flows.values()):
            if not self._push(f, mono_to_ts):
                self._remove(f)
        for f in list(self._scans.values()):
            if not self._push(f, mono_to_ts):
                self._remove(f)

    def _push(self, f: _Flow, mono_to_ts=None) -> bool:
        """Hand the flow's counts since the last push to the inspector; False: it ended there."""
        s, c = f.toserver, f.toclient
        ps, bs, pc, bc = s[1], s[2], c[1], c[2]
        last = max(s[3], c[3])
        s[1] = s[2] = c[1] = c[2] = 0
        done = self._done[f.action]
        done[0] += ps + pc
        done[1] += bs + bc
        if f.kernel:
            for entry, seen in zip(f.kernel, f.kseen):
                try:
                    got = self.kernel.read(*entry[:8])
                except OSError:
                    got = None
                if got is None:
                    continue
                pkts, nbytes, last_ns = got
                dp, db = pkts - seen[0], nbytes - seen[1]
                if dp <= 0:
                    continue
                seen[0], seen[1] = pkts, nbytes
                if entry[8]:
                    ps += dp
                    bs += db
                else:
                    pc += dp
                    bc += db
                if mono_to_ts is not None:
                    last = max(last, mono_to_ts(last_ns))
        try:
            return bool(self._bypassed(f.handle, last, ps, bs, pc, bc))
        except Exception:
            return False                       # an inspector that fails on it: inspect the flow again

    def _end(self, f: _Flow) -> None:
        """The flow leaves the fast path (FIN/RST/SYN, a newer flow on its key): counts pushed,
        entries gone."""
        self._push(f, self._mono_to_ts)
        self._remove(f)

    def _remove(self, f: _Flow) -> None:
        scan = f.action == SCAN
        owner, fkey = (self._scans, f.skey) if scan else (self._flows, id(f.handle))
        if owner.get(fkey) is not f:
            return                             # already gone
        del owner[fkey]
        for table, key in f.where:
            e = table.get(key)
            if e is not None and e[4] is f:
                del table[key]
        if self.kernel is not None:
            for entry in f.kernel:             # (none for a scan entry)
                try:
                    self.kernel.remove(*entry[:8])
                except OSError:
                    pass
        if scan:
            self.scan_removed += 1
        else:
            self.removed += 1

    def clear(self) -> None:
        """Remove everything (user and kernel): shutdown, reload.  Counts not pushed yet stay
        counted in `stats` but are not pushed (call `sync` first to push them)."""
        self._kernel_pending.clear()
        for f in [*self._flows.values(), *self._scans.values()]:
            s, c = f.toserver, f.toclient
            done = self._done[f.action]
            done[0] += s[1] + c[1]
            done[1] += s[2] + c[2]
            s[1] = s[2] = c[1] = c[2] = 0
            self._remove(f)

    # ------------------------------------------------------------------ counters
    @property
    def active(self) -> int:
        """Flows in the fast path now."""
        return len(self._flows)

    def stats(self) -> dict[str, int]:
        """bypass.* counters: flows installed/removed/active, frames and bytes answered here per
        action (including those not pushed yet), and the kernel's totals."""
        frames = {a: done[0] for a, done in self._done.items()}
        nbytes = {a: done[1] for a, done in self._done.items()}
        for f in [*self._flows.values(), *self._scans.values()]:
            frames[f.action] += f.toserver[1] + f.toclient[1]
            nbytes[f.action] += f.toserver[2] + f.toclient[2]
        out = {
            "bypass.installed": self.installed, "bypass.removed": self.removed, "bypass.active": len(self._flows),
            "bypass.pass_frames": frames[FORWARD], "bypass.pass_bytes": nbytes[FORWARD],
            "bypass.drop_frames": frames[DROP], "bypass.drop_bytes": nbytes[DROP],
            "bypass.scan_installed": self.scan_installed, "bypass.scan_removed": self.scan_removed,
            "bypass.scan_active": len(self._scans), "bypass.scan_frames": frames[SCAN],
            "bypass.scan_bytes": nbytes[SCAN], "bypass.scan_hits": self.scan_hits,
            "bypass.scan_backoff": self.scan_backoff, "bypass.scan_late": self.scan_late,
        }
        if self.kernel is not None:
            try:
                out.update(self.kernel.totals())
            except OSError:
                pass
        return out
