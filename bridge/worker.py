"""One worker process: drains its rings, asks the inspector, forwards or drops.

A worker of a bridged pair A<->B owns socket i on A and socket i on B (same
fanout slot in both groups, so both directions of a flow meet here); an IDS
worker owns one socket and never forwards.  Sockets are created and joined by
the supervisor before the fork; the worker mmaps their rings, builds its
Inspector (hyperscan state does not survive a fork) and loops:

    poll(all sockets, 200 ms) -> drain every ring until the first kernel-owned slot

Per frame (received on port P, peer Q):
  1. PACKET_OUTGOING frames (host-originated on the port; the socket option
     PACKET_IGNORE_OUTGOING does not apply to fanout members): skip, count.
  2. TP_STATUS_CSUMNOTREADY: fill the TCP/UDP/ICMP checksum in place.  On veth
     and in VMs, frames generated on the same host carry CHECKSUM_PARTIAL: the
     checksum field holds only the pseudo-header sum and the receiver would drop
     the frame (ping works, TCP never connects).
  3. inspector.inspect(frame, FrameMeta(ts, iface, vlan, 0, tpid, 1, checksum)); an exception
     counts `inspector_errors` and the frame is forwarded (fail-open, in ips and
     tap alike: a bug in a rule plug-in must not black-hole the link; the counter
     makes it visible).  `checksum` is the interface's `checksum-checks` applied to
     the frame's status word (`checksum_hint`): kernel (the default) skips validation
     of a frame the kernel marks TP_STATUS_CSUMNOTREADY (its checksum is ours, filled
     in step 2) or TP_STATUS_CSUM_VALID (the kernel or the NIC checked it), yes
     validates every frame, no none, auto leaves it to the engine's sample
     (rules.decode.ChecksumChecks).  stream.checksum-validation off overrides them all.
  4. ips: DROP/REJECT -> count dropped[reason] (and send Result.inject);
     tap: count would_drop[reason], forward anyway; IDS: stop here.
  5. Put a stripped VLAN tag back (in the 4 reserved bytes before tp_mac), then
     copy the frame into the next slot of Q's socket's TX ring (PACKET_TX_RING,
     `tx-ring: yes`, the default) and mark it SEND_REQUEST; the queued slots go
     out with one `send(b"")` at the end of the drain (or when half the TX ring
     is queued).  That one syscall per batch instead of per frame is worth about
     1.3x TCP throughput.  With `tx-ring: no`, one `send` of a memoryview slice
     of the RX ring per frame.

TX ring accounting (Worker.flush): send() returns the bytes of the frames it
transmitted; a frame the kernel refuses (longer than the egress MTU, e.g. after
the MTU was lowered at run time; PACKET_LOSS makes the kernel skip it instead of
blocking the ring) is missing from that sum and is found by re-reading the MTU,
then counted as EMSGSIZE/oversize like a plain send's error.  A failing send()
leaves the failing frame and those after it queued: retried (ENOBUFS/EAGAIN),
then reclaimed and counted under the errno.

Plain-send errors (and the TX ring's, as above) are counted by errno name: EMSGSIZE (larger than the peer MTU) also
counts `oversize` and is never retried; ENOBUFS/EAGAIN are retried 3 times with
a short wait for POLLOUT; ENETDOWN/ENXIO (peer link down) are counted and the
worker continues.  Link down/up: poll reports POLLERR, the worker reads
SO_ERROR (which clears it) and keeps polling; the kernel re-hooks the socket
when the link comes back.  An interface that is deleted and re-created needs a
new socket: not handled (the worker keeps running and sees nothing).

Counters are sent to the supervisor over a pipe about once a second and at exit
(after a last PACKET_STATISTICS read).

The frame handed to the inspector is a memoryview of the ring slot; the slot
goes back to the kernel as soon as the frame is done, so an inspector that keeps
bytes beyond `inspect()` (stream reassembly) must copy them.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from bridge import afpacket as afp
from bridge.afpacket import PacketSocket
from bridge.ring import SLL_PKTTYPE_V2, U32, V2_HDR, V2Ring, insert_vlan, open_ring
from bridge.stats import Counters, bump
from rules.api import CSUM_AUTO, CSUM_SKIP, CSUM_VALIDATE, FORWARD, ForwardAll, FrameMeta, Verdict
from rules.checksum import fill_l4_checksum
from rules.decode import LINKTYPE_ETHERNET

REPORT_INTERVAL = 1.0
POLL_MS = 200
HOLE_GRACE = 0.002          # s a kernel-owned head slot may block ready slots behind it before we skip it
EVE_RETRY = 1.0            # s before a failed EVE file is opened again
SEND_TRIES = 3

_CSUMNOTREADY = afp.TP_STATUS_CSUMNOTREADY
_SKIP = CSUM_SKIP
_ETHERNET = LINKTYPE_ETHERNET
_VLAN_VALID = afp.TP_STATUS_VLAN_VALID
_TPID_VALID = afp.TP_STATUS_VLAN_TPID_VALID
_OUTGOING = afp.PACKET_OUTGOING
_RETRY_ERRNOS = (errno.ENOBUFS, errno.EAGAIN)
_ETH_P_8021Q = afp.ETH_P_8021Q
_SLL_PKTTYPE = SLL_PKTTYPE_V2
_V2_UNPACK = V2_HDR.unpack_from
_RELEASE = U32.pack_into
_DONTWAIT = socket.MSG_DONTWAIT
_FORWARD_VERDICT = Verdict.FORWARD

# af-packet `checksum-checks` -> (status bits that make a frame CSUM_SKIP, the hint otherwise).
# Checked against Suricata 7.0.10 (source-af-packet.c, AFPReadFromRing): kernel skips
# CSUMNOTREADY frames; Suricata also skips them with `yes` and does not read CSUM_VALID --
# here `yes` validates every frame (a CSUMNOTREADY frame's checksum is filled in before it is
# inspected, so only one that could not be filled fails) and kernel also trusts CSUM_VALID.
CHECKSUM_CHECKS = {
    "kernel": (afp.TP_STATUS_CSUMNOTREADY | afp.TP_STATUS_CSUM_VALID, CSUM_VALIDATE),
    "yes": (0, CSUM_VALIDATE),
    "no": (0, CSUM_SKIP),
    "auto": (0, CSUM_AUTO),
}
_KERNEL_CSUM_MASK = CHECKSUM_CHECKS["kernel"][0]     # the default (conf.model.Interface)


def checksum_hint(checks: str, status: int) -> int:
    """FrameMeta.checksum for a frame with ring status word `status` read on an interface
    with `checksum-checks: <checks>` (the drain loops compute the same inline)."""
    mask, hint = CHECKSUM_CHECKS[checks]
    return CSUM_SKIP if status & mask else hint


@dataclass(slots=True)
class PortSpec:
    """A socket a worker reads from, and where its frames go."""

    sock: int                  # index into WorkerSpec.sockets
    mode: str | None           # "ips" | "tap" | None (IDS)
    peer: int | None           # index of the socket frames are sent on


@dataclass(slots=True)
class WorkerSpec:
    index: int
    label: str                 # "eth0:eth1" or "eth2" (IDS)
    slot: int                  # fanout slot (thread number) in every group it joined
    sockets: list[PacketSocket]
    ports: list[PortSpec]
    pid: int = 0


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, f"E{code}")


@dataclass(slots=True)
class _Port:
    name: str
    ps: PacketSocket
    ring: Any
    mode: str | None
    peer: socket.socket | None
    counters: Counters = field(default_factory=Counters)
    stalled_since: float = 0.0
    tx: Any = None             # the peer socket's TX ring (bridge.ring.TxRing) when it has one
    csum_mask: int = _KERNEL_CSUM_MASK   # checksum-checks (CHECKSUM_CHECKS): status bits -> CSUM_SKIP
    csum_hint: int = CSUM_VALIDATE       # ... and the hint for every other frame


class Worker:
    def __init__(self, spec: WorkerSpec, config, conn):
        self.spec = spec
        self.config = config
        self.conn = conn
        self.log = structlog.get_logger("ipsbridge.worker").bind(worker=spec.index, pid=os.getpid())
        self.stop = False
        self.last_ts = 0.0
        self.last_ts_mono = time.monotonic()
        self.eve = None
        self.eve_retry_at = 0.0           # monotonic time before which a failed EVE file is not reopened
        self.eve_errors = 0               # EVE open/write failures (each retried later, never for good)
        self.eve_lost = 0                 # events not written because of them
        self.reopen = False               # SIGHUP: reopen the EVE file (logrotate)
        self.ports: list[_Port] = []
        rings = {}
        for p in spec.ports:
            for k in (p.sock, p.peer):
                if k is not None and k not in rings:
                    rings[k] = open_ring(spec.sockets[k])
        self.tx_by_sock = {}      # socket object -> its TX ring: a socket with one can only send through it
        for k, ring in rings.items():
            if ring.tx is not None:
                self.tx_by_sock[spec.sockets[k].sock] = ring.tx
        for p in spec.ports:
            ps = spec.sockets[p.sock]
            peer = spec.sockets[p.peer].sock if p.peer is not None else None
            tx = rings[p.peer].tx if p.peer is not None else None
            mask, hint = CHECKSUM_CHECKS[_checksum_checks(config, ps.iface)]
            self.ports.append(_Port(ps.iface, ps, rings[p.sock], p.mode, peer, tx=tx,
                                    csum_mask=mask, csum_hint=hint))
        from bridge.hook import build_inspector

        self.inspector = build_inspector(config)

    # ---------------------------------------------------------------- main loop
    def run(self) -> None:
        poller = select.poll()
        by_fd = {}
        for port in self.ports:
            poller.register(port.ps.fileno(), select.POLLIN | select.POLLERR)
            by_fd[port.ps.fileno()] = port
        self.conn.send(("ready", self.spec.index, os.getpid()))
        next_report = time.monotonic() + REPORT_INTERVAL
        while not self.stop:
            try:
                events = poller.poll(POLL_MS)
            except InterruptedError:
                events = []
            readable = set()
            for fd, ev in events:
                if ev & select.POLLIN:
                    readable.add(fd)
                if ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    port = by_fd[fd]
                    port.counters.link_errors += 1
                    try:   # reading SO_ERROR clears it; the kernel re-hooks the socket on link up
                        port.ps.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    except OSError:
                        pass
                    if ev & select.POLLNVAL:
                        time.sleep(POLL_MS / 1000)   # never spin on a dead descriptor
            stalled = False
            for port in self.ports:
                if self.drain(port) or port.ps.fileno() not in readable:
                    port.stalled_since = 0.0
                    continue
                # the kernel says frames are ready, yet the head slot is still the kernel's
                stalled = True
                now = time.monotonic()
                if not port.stalled_since:
                    port.stalled_since = now
                elif now - port.stalled_since >= HOLE_GRACE:
                    port.counters.ring_holes += port.ring.skip_hole()
                    port.stalled_since = 0.0
            if stalled:
                time.sleep(0.0005)     # poll is level-triggered: do not spin while waiting out the grace
            if self.reopen:
                self.reopen = False
                self.reopen_eve()
            now = time.monotonic()
            if now >= next_report:
                next_report = now + REPORT_INTERVAL
                self.tick(now)
                self.report("stats")
        for port in self.ports:
            self.drain(port)
        self.finish()
        self._close_eve()
        self.report("final")

    def tick(self, mono_now: float) -> None:
        """Advance the inspector's clock: the latest frame time, moved on by the
        wall time elapsed since that frame (so flows still time out on an idle link)."""
        if not self.last_ts:
            return
        now = self.last_ts + (mono_now - self.last_ts_mono)
        try:
            events = self.inspector.tick(now)
        except Exception:
            self.ports[0].counters.inspector_errors += 1
            return
        if events and self.config.eve_log:
            self.write_events(events)

    def finish(self) -> None:
        """Shutdown: the inspector ends its flows (IDS stream data gets its last inspection).
        `finish` is optional for verdict-hook plug-ins."""
        finish = getattr(self.inspector, "finish", None)
        if finish is None:
            return
        try:
            events = finish()
        except Exception:
            self.ports[0].counters.inspector_errors += 1
            return
        if events and self.config.eve_log:
            self.write_events(events)

    def report(self, kind: str) -> None:
        for port in self.ports:
            pk, dr = afp.read_statistics(port.ps.sock)
            port.counters.kernel_packets += pk
            port.counters.kernel_drops += dr
        try:
            insp = dict(self.inspector.stats())
        except Exception:
            insp = {}
        if self.config.eve_log:
            insp["eve.errors"] = self.eve_errors
            insp["eve.events_lost"] = self.eve_lost
        payload = {port.name: port.counters.as_dict() for port in self.ports}
        try:
            self.conn.send((kind, self.spec.index, os.getpid(), payload, insp))
        except (BrokenPipeError, OSError):
            self.stop = True    # supervisor gone: nothing left to report to

    # ---------------------------------------------------------------- frames
    def drain(self, port: _Port) -> int:
        """Process every ready frame of the port's ring; returns how many slots were consumed."""
        if type(port.ring) is V2Ring:
            return self.drain_v2(port)
        return self.drain_generic(port)

    def drain_v2(self, port: _Port) -> int:
        """drain() for a TPACKET_V2 ring, the inline case: the same steps as
        drain_generic, with the ring walk inlined and the per-frame counters
        kept in locals (flushed once per drain) -- the Python per frame is a
        large share of the bridge's CPU.  With the ForwardAll inspector (no
        rules, no hook) no FrameMeta is built and inspect() is not called: its
        `seen` counter is advanced by the number of frames instead."""
        c = port.counters
        ring = port.ring
        view = ring.view
        offsets = ring.offsets
        n = ring.frame_nr
        i = ring.head
        unpack = _V2_UNPACK
        release = _RELEASE
        iface = port.name
        mode = port.mode
        csum_mask = port.csum_mask
        csum_hint = port.csum_hint
        peer = port.peer
        send = peer.send if peer is not None else None
        tx = port.tx
        if tx is not None:
            tx_put = tx.put
            tx_cap = tx.capacity
            tx_batch = tx.frame_nr // 2
        inspector = self.inspector
        forward_all = type(inspector) is ForwardAll
        inspect = inspector.inspect
        eve = self.config.eve_log
        received = forwarded = outgoing = inspected = 0
        sec = nsec = 0
        try:
            for _ in range(n):
                off = offsets[i]
                status, tp_len, snaplen, mac, net, sec_, nsec_, tci, tpid = unpack(view, off)
                if not status & 1:
                    break
                try:
                    if view[off + _SLL_PKTTYPE] == _OUTGOING:
                        outgoing += 1
                        continue
                    received += 1
                    sec = sec_
                    nsec = nsec_
                    mac += off
                    end = mac + snaplen
                    frame = view[mac:end]
                    if status & _CSUMNOTREADY:
                        if fill_l4_checksum(frame, net - mac + off):
                            c.csum_filled += 1
                        else:
                            c.csum_unfixable += 1
                    if status & _VLAN_VALID and not status & _TPID_VALID:
                        tpid = _ETH_P_8021Q
                    if forward_all:
                        inspected += 1
                    else:
                        if status & _VLAN_VALID:
                            meta = FrameMeta(sec_ + nsec_ * 1e-9, iface, (tci & 0x0FFF,), 0, (tpid,), _ETHERNET,
                                             _SKIP if status & csum_mask else csum_hint)
                        else:
                            meta = FrameMeta(sec_ + nsec_ * 1e-9, iface, (), 0, (), _ETHERNET,
                                             _SKIP if status & csum_mask else csum_hint)
                        try:
                            result = inspect(frame, meta)
                        except Exception:
                            c.inspector_errors += 1
                            result = FORWARD
                        inspected += 1
                        if result.events and eve:
                            self.write_events(result.events)
                        if mode is not None and result.verdict != _FORWARD_VERDICT:
                            reason = result.reason or "rule"
                            if mode == "ips":
                                bump(c.dropped, reason)
                                if result.inject:
                                    self.inject(port, result.inject)
                                continue
                            bump(c.would_drop, reason)
                        elif mode == "ips" and result.frame is not None and len(result.frame) == end - mac:
                            view[mac:end] = result.frame      # an overlap normalized to the stream's bytes
                            c.normalized += 1
                    if mode is None:
                        continue
                    if snaplen < tp_len:   # cut by the ring (GRO/defrag super-frame): never forward a cut frame
                        bump(c.dropped, "truncated")
                        c.oversize += 1
                        continue
                    if status & _VLAN_VALID:
                        mac = insert_vlan(view, mac, tpid, tci)
                        frame = view[mac:end]
                        c.vlan_reinserted += 1
                    if tx is not None:
                        if end - mac > tx_cap:     # larger than a slot: only after an MTU raise
                            bump(c.send_errors, "EMSGSIZE")
                            c.oversize += 1
                        elif tx_put(view, mac, end) or (self.tx_wait(tx, c) and tx_put(view, mac, end)):
                            if tx.queued >= tx_batch:
                                forwarded += self.flush(tx, c)
                        else:
                            bump(c.send_errors, "ENOBUFS")   # every slot still owned by the driver
                        continue
                    try:
                        send(frame, _DONTWAIT)
                        forwarded += 1
                    except OSError as e:
                        code = e.errno or errno.EIO
                        if code in _RETRY_ERRNOS:
                            code = self.send(peer, frame, code)
                        if code:
                            bump(c.send_errors, errno_name(code))
                            if code == errno.EMSGSIZE:
                                c.oversize += 1
                        else:
                            forwarded += 1
                except Exception:   # a bug here must not stop the bridge: account the frame as dropped
                    bump(c.dropped, "internal")
                finally:
                    release(view, off, 0)
                    i += 1
                    if i == n:
                        i = 0
        finally:
            if tx is not None and tx.queued:    # flush at the end of every drain: no added latency
                forwarded += self.flush(tx, c)
            ring.head = i
            c.received += received
            c.forwarded += forwarded
            c.ignored_outgoing += outgoing
            c.inspected += inspected
            if forward_all and inspected:
                inspector.seen += inspected
        if received:
            self.last_ts = sec + nsec * 1e-9
            self.last_ts_mono = time.monotonic()
        return received + outgoing

    def drain_generic(self, port: _Port) -> int:
        """Any ring (V3 for IDS), one frame at a time through ring.frames()."""
        c = port.counters
        ring = port.ring
        view = ring.view
        iface = port.name
        mode = port.mode
        peer = port.peer
        skip_outgoing = True    # always: the socket option does not cover fanout members (see afpacket)
        inspect = self.inspector.inspect
        eve = self.config.eve_log
        before = c.received
        before_out = c.ignored_outgoing
        ts = 0.0
        for (status, tp_len, snaplen, mac, net, sec, nsec, tci, tpid, pkttype) in ring.frames():
            if skip_outgoing and pkttype == _OUTGOING:
                c.ignored_outgoing += 1
                continue
            c.received += 1
            ts = sec + nsec * 1e-9
            try:
                end = mac + snaplen
                frame = view[mac:end]
                if status & _CSUMNOTREADY:
                    if fill_l4_checksum(frame, net - mac):
                        c.csum_filled += 1
                    else:
                        c.csum_unfixable += 1
                csum = CSUM_SKIP if status & port.csum_mask else port.csum_hint
                if status & _VLAN_VALID:
                    tpid = tpid if status & _TPID_VALID else afp.ETH_P_8021Q
                    meta = FrameMeta(ts, iface, (tci & 0x0FFF,), 0, (tpid,), _ETHERNET, csum)
                else:
                    meta = FrameMeta(ts, iface, (), 0, (), _ETHERNET, csum)
                try:
                    result = inspect(frame, meta)
                except Exception:
                    c.inspector_errors += 1
                    result = FORWARD
                c.inspected += 1
                if result.events and eve:
                    self.write_events(result.events)
                if mode is None:
                    continue
                if result.verdict != Verdict.FORWARD:
                    reason = result.reason or "rule"
                    if mode == "ips":
                        bump(c.dropped, reason)
                        if result.inject:
                            self.inject(port, result.inject)
                        continue
                    bump(c.would_drop, reason)
                elif mode == "ips" and result.frame is not None and len(result.frame) == end - mac:
                    view[mac:end] = result.frame              # an overlap normalized to the stream's bytes
                    c.normalized += 1
                if snaplen < tp_len:       # cut by the ring (GRO/defrag super-frame): never forward a cut frame
                    bump(c.dropped, "truncated")
                    c.oversize += 1
                    continue
                if status & _VLAN_VALID:
                    out = view[insert_vlan(view, mac, tpid, tci):end]
                    c.vlan_reinserted += 1
                else:
                    out = frame
                err = self.send(peer, out)
                if err:
                    bump(c.send_errors, errno_name(err))
                    if err == errno.EMSGSIZE:
                        c.oversize += 1
                else:
                    c.forwarded += 1
            except Exception:       # a bug here must not stop the bridge: account the frame as dropped
                bump(c.dropped, "internal")
        if c.received != before:
            self.last_ts = ts
            self.last_ts_mono = time.monotonic()
        return c.received - before + c.ignored_outgoing - before_out

    def flush(self, tx, c: Counters) -> int:
        """Hand the queued TX slots to the kernel with one send(); returns how many
        frames went out, and counts the others by errno on `c`.

        send() on a TX ring returns the bytes of the frames it transmitted.  A
        frame the kernel refuses (longer than the MTU, e.g. after the MTU was
        lowered) is skipped (PACKET_LOSS) and missing from that sum: when the sum
        falls short, the processed slots are checked against the current MTU and
        the refused ones counted as EMSGSIZE.  A failing send() (ENOBUFS, link
        down) leaves the frames from the failing one on as SEND_REQUEST: retried
        SEND_TRIES times, then reclaimed and counted under the errno, and the
        ring's head moved back to the first of them (the kernel's head is there)."""
        queued, expected, first = tx.queued, tx.qbytes, tx.first
        tx.queued = tx.qbytes = 0
        tx.first = tx.head
        if not queued:
            return 0
        sock = tx.sock
        got = 0
        code = 0
        for attempt in range(SEND_TRIES):
            if attempt:
                p = select.poll()
                p.register(sock.fileno(), select.POLLOUT)
                p.poll(1)
            try:
                got += sock.send(b"", _DONTWAIT)
                code = 0
                break
            except OSError as e:
                code = e.errno or errno.EIO
                if code not in _RETRY_ERRNOS:
                    break
        if not code and got == expected:
            return queued
        view, offsets, nr = tx.view, tx.offsets, tx.frame_nr
        limit = None
        sent = 0
        for k in range(queued):
            j = first + k
            if j >= nr:
                j -= nr
            off = offsets[j]
            status = U32.unpack_from(view, off)[0]
            if status & afp.TP_STATUS_SEND_REQUEST:       # never handed over: the tail from here on
                lost = queued - k
                for k2 in range(k, queued):
                    j2 = first + k2
                    if j2 >= nr:
                        j2 -= nr
                    U32.pack_into(view, offsets[j2], 0)
                bump(c.send_errors, errno_name(code or errno.EIO), lost)
                if code == errno.EMSGSIZE:
                    c.oversize += lost
                tx.head = tx.first = j
                return sent
            if got != expected:
                if limit is None:
                    try:
                        limit = afp.get_mtu(self.tx_iface(tx)) + afp.ETH_HLEN
                    except Exception:      # never raise here: the batch would go uncounted
                        limit = 1 << 30
                n = U32.unpack_from(view, off + 4)[0]
                if n > limit and not (n <= limit + afp.VLAN_HLEN and view[off + tx.DATA + 12] == 0x81
                                      and view[off + tx.DATA + 13] == 0x00):
                    bump(c.send_errors, "EMSGSIZE")
                    c.oversize += 1
                    continue
            sent += 1
        return sent

    def tx_iface(self, tx) -> str:
        for port in self.ports:
            if port.ps.sock is tx.sock:
                return port.ps.iface
        for ps in getattr(getattr(self, "spec", None), "sockets", ()):
            if ps.sock is tx.sock:
                return ps.iface
        raise OSError(errno.ENODEV, "TX ring of an unknown socket")

    def tx_wait(self, tx, c: Counters) -> bool:
        """The head slot is not free: flush what is queued, wait (bounded) for the
        driver to give the slot back; True when it is free."""
        for attempt in range(SEND_TRIES):
            if tx.queued:
                c.forwarded += self.flush(tx, c)
            if not U32.unpack_from(tx.view, tx.offsets[tx.head])[0]:
                return True
            p = select.poll()
            p.register(tx.sock.fileno(), select.POLLOUT)
            p.poll(1)
        return False

    def send_any(self, sock: socket.socket, data, c: Counters) -> int:
        """send() for frames outside the ring walk (injected RST/ICMP): through
        the socket's TX ring when it has one (plain send() would only flush it)."""
        tx = self.tx_by_sock.get(sock)
        if tx is None:
            return self.send(sock, data)
        n = len(data)
        if n > tx.capacity:
            return errno.EMSGSIZE
        if tx.queued:      # forwarded frames queued before it go first, counted as forwarded
            c.forwarded += self.flush(tx, c)
        if not (tx.put(data, 0, n) or (self.tx_wait(tx, c) and tx.put(data, 0, n))):
            return errno.ENOBUFS
        scratch = Counters()     # the injected frame's failure is an inject error, not a send error
        if self.flush(tx, scratch) == 1:
            return 0
        return errno.EIO

    @staticmethod
    def send(sock: socket.socket, data, first: int = 0) -> int:
        """Send one frame; 0 on success, else the errno (after bounded retries).
        `first`: the errno of an attempt the caller already made (it counts as one
        of the SEND_TRIES)."""
        attempt = 0
        if first:
            if first not in _RETRY_ERRNOS or SEND_TRIES < 2:
                return first
            attempt = 1
        while True:
            if attempt:
                p = select.poll()
                p.register(sock.fileno(), select.POLLOUT)
                p.poll(1)
            try:
                sock.send(data, socket.MSG_DONTWAIT)
                return 0
            except OSError as e:
                code = e.errno or errno.EIO
                attempt += 1
                if code in _RETRY_ERRNOS and attempt < SEND_TRIES:
                    continue
                return code

    def inject(self, port: _Port, injects) -> None:
        c = port.counters
        for inj in injects:
            sock = port.ps.sock if inj.back else port.peer
            if sock is None:
                continue
            if self.send_any(sock, inj.frame, c):
                c.inject_errors += 1
            else:
                c.injected += 1

    def write_events(self, events) -> None:
        """Append to the EVE file, opening it when needed.  A failure (a full disk, a
        directory gone) loses these events, is counted and logged, and the file is tried
        again a second later or at the next SIGHUP: EVE is never switched off for good."""
        if self.eve is None:
            now = time.monotonic()
            if now < self.eve_retry_at:
                self.eve_lost += len(events)
                return
            try:
                from bridge.eve import EveWriter

                self.eve = EveWriter(self.config.eve_log)
            except OSError as e:
                self._eve_failed(e, len(events), now)
                return
        try:
            self.eve.write(events)
        except OSError as e:
            self._eve_failed(e, len(events), time.monotonic())

    def _close_eve(self) -> None:
        if self.eve is not None:
            try:
                self.eve.close()
            except OSError:
                pass
            self.eve = None

    def _eve_failed(self, e: OSError, lost: int, now: float) -> None:
        self.eve_errors += 1
        self.eve_lost += lost
        self._close_eve()
        self.eve_retry_at = now + EVE_RETRY
        if self.eve_errors in (1, 10, 100) or self.eve_errors % 1000 == 0:   # not a line per batch
            self.log.warning("eve_write_failed", path=self.config.eve_log, error=str(e), errors=self.eve_errors,
                             events_lost=self.eve_lost, retry_in_s=EVE_RETRY)

    def reopen_eve(self) -> None:
        """SIGHUP: close the EVE file; the next events open it again by name (after logrotate
        moved it, a new file)."""
        self._close_eve()
        self.eve_retry_at = 0.0
        self.log.info("eve_reopened", path=self.config.eve_log)


def _checksum_checks(config, iface: str) -> str:
    """The `checksum-checks` of `iface`'s af-packet entry (Suricata's default, kernel, when
    the configuration has no entry for it)."""
    for entry in config.af_packet:
        if entry.interface == iface:
            return entry.checksum_checks
    return "kernel"


def worker_main(spec: WorkerSpec, config, conn, foreign_fds: list[int]) -> None:
    """Entry point in the forked child."""
    for fd in foreign_fds:        # other workers' sockets: holding them would keep dead slots in the groups
        try:
            os.close(fd)
        except OSError:
            pass
    w_stop = {"worker": None}

    def on_signal(signum, frame):
        if w_stop["worker"] is not None:
            w_stop["worker"].stop = True
        else:
            os._exit(0)

    def on_hup(signum, frame):
        if w_stop["worker"] is not None:
            w_stop["worker"].reopen = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    try:
        worker = Worker(spec, config, conn)
    except Exception as e:
        structlog.get_logger("ipsbridge.worker").error(
            "worker_setup_failed", worker=spec.index, label=spec.label, error=repr(e))
        try:
            conn.send(("error", spec.index, os.getpid(), repr(e)))
        except OSError:
            pass
        os._exit(3)
    w_stop["worker"] = worker
    worker.run()
