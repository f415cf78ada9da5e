"""One worker process: drains its rings, asks the inspector, forwards or drops.

A worker of a bridged pair A<->B owns socket i on A and socket i on B (same
fanout slot in both groups, so both directions of a flow meet here); an IDS
worker owns one socket and never forwards.  Sockets are created and joined by
the supervisor before the fork; the worker mmaps their rings, builds its
Inspector (hyperscan state does not survive a fork) and loops:

    poll(all sockets, 200 ms) -> drain every ring until the first kernel-owned slot
    (after a pass of SPIN_AFTER frames or more, the ring heads are watched for up
    to SPIN_S before the next poll: a worker asleep is woken for the next frame)

With the compiled walk on every port, the wait and the pass are one C call
(`wait_pass`, bridge/_ringpass.c): a frame that wakes the worker is forwarded with
no Python between the wake-up and its send (about 20 µs of interpreter per
wake-up with cold caches, on the path of every ping); the call hands back to this
loop whatever needs Python (the supervisor's pipe, a socket error, a frame the walk
does not take, a hole).

A drain with nothing waiting at the ring's head returns at once (`ring.ready()`).
One path per frame, for every ring kind (`ring.batches()`: V2 inline, up to 64
slots per batch, V3 only on IDS interfaces, which never forward, a block per
batch).  Per frame (received on port P, peer Q):
  1. PACKET_OUTGOING frames (host-originated on the port; the socket option
     PACKET_IGNORE_OUTGOING does not apply to fanout members): skip, count.
  2. TP_STATUS_CSUMNOTREADY: fill the TCP/UDP/ICMP checksum in place.  On veth
     and in VMs, frames generated on the same host carry CHECKSUM_PARTIAL: the
     checksum field holds only the pseudo-header sum and the receiver would drop
     the frame (ping works, TCP never connects).
  3. The fast path (bridge.fastpath, `bypass: user|kernel`): a frame of a decided
     flow is answered FORWARD or DROP from a fixed-offset key, with no FrameMeta,
     no decoding, no inspect (counted `bypassed`; a DROP is `dropped["flow"]`, the
     reason the engine gives the frames of a dropped flow).  Else:
  4. inspector.inspect(frame, meta) (an Engine's `front()`: the same, behind its
     compiled lanes): `meta` is the port's one FrameMeta with this
     frame's ts, checksum hint, VLAN and TPID set (rules.api.FrameMeta: valid during
     the call only).  An exception counts `inspector_errors` and the frame is
     forwarded (fail-open, in ips and tap alike: a bug in a rule plug-in must not
     black-hole the link; the counter makes it visible).  The checksum hint is the
     interface's `checksum-checks` applied to the frame's status word
     (`checksum_hint`): kernel (the default) skips validation of a frame the kernel
     marks TP_STATUS_CSUMNOTREADY (its checksum is ours, filled in step 2) or
     TP_STATUS_CSUM_VALID (the kernel or the NIC checked it), yes validates every
     frame, no none, auto leaves it to the engine's sample
     (rules.decode.ChecksumChecks).  stream.checksum-validation off overrides them
     all.  Result.bypass installs the flow in the fast path (both directions).
     Events are collected per drain and written to EVE once per poll pass,
     after every port's frames of the pass went out: an alert's EVE write
     does not hold up the frames already waiting on the other port (the reply
     to the frame that alerted, which a veth peer often delivers within the
     send of that frame).
  5. ips: DROP/REJECT -> count dropped[reason] (and send Result.inject);
     tap: count would_drop[reason], forward anyway; IDS: stop here.
  6. Put a stripped VLAN tag back (in the 4 reserved bytes before tp_mac), then
     note the frame for Q's socket's TX ring (bridge.ring.TxRing, `tx-ring: yes`,
     the default): at the end of the batch its frames are copied into the TX
     ring with one `TxRing.put_many`, in order, before the batch's RX slots go
     back to the kernel (an inject in the middle of a batch sends the frames
     noted before it first); the queued slots go out with one `send(b"")` at the
     end of the drain (or when half the TX ring is queued).  That one syscall
     per drain instead of per frame is worth about 1.3x TCP throughput.  With
     `tx-ring: no`, one `send` of a memoryview slice of the RX ring per frame.
     A clean frame (the inspector's shared `rules.api.FORWARD` result) skips
     steps 4's result checks and step 5.

The TX ring's accounting (a frame the kernel refused, a failing send, the ring's
head kept in step with the kernel's) lives in bridge.ring.TxRing; every frame
handed to it ends up `forwarded` or under `send_errors`.  Plain-send errors are
counted by errno name: EMSGSIZE (larger than the peer MTU) also counts
`oversize` and is never retried; ENOBUFS/EAGAIN are retried 3 times with a short
wait for POLLOUT; ENETDOWN/ENXIO (peer link down) are counted and the worker
continues.  Link down/up: poll reports POLLERR, the worker reads SO_ERROR (which
clears it) and keeps polling; the kernel re-hooks the socket when the link comes
back.  An interface that is deleted and re-created needs new sockets: the
supervisor notices the new ifindex and starts the pair's workers again on them
(bridge.supervisor.Supervisor.watch_links).

Time: about once a second the fast path pushes its flows' counts to the
inspector (`FastPath.sync`, kernel entries included) before and after
`inspector.tick(now)`, where now is the latest frame's time moved on by the wall
time since; at exit it pushes them once more, the inspector finishes its flows
and the fast path is cleared (user and kernel entries).  Counters go to the
supervisor over a pipe about once a second and at exit (after a last
PACKET_STATISTICS read), with the fast path's `bypass.*` counters beside the
inspector's.

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
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from bridge import afpacket as afp
from bridge.afpacket import PacketSocket
from bridge.fastpath import DROP as _FAST_DROP
from bridge.fastpath import FORWARD as _FAST_FORWARD
from bridge.fastpath import FastPath, FastPort
from bridge.ring import (
    RETRY_ERRNOS,
    V2Ring,
    SEND_TRIES,
    errno_name,
    insert_vlan,
    open_ring,
    wait_writable,
)
from bridge.stats import Counters, bump
from conf.model import Interface
from rules.api import (
    CSUM_AUTO,
    InspectTimeout,
    CSUM_SKIP,
    CSUM_VALIDATE,
    FORWARD,
    ForwardAll,
    FrameMeta,
)
from rules.checksum import fill_l4_checksum
from rules.decode import LINKTYPE_ETHERNET

REPORT_INTERVAL = 1.0
POLL_MS = 200
HOLE_GRACE = 0.002          # s a kernel-owned head slot may block ready slots behind it before we skip it
# After a busy pass (SPIN_AFTER frames or more), look at the rings' head slots for up to
# SPIN_S before sleeping in poll(): a worker that empties its rings faster than they fill
# otherwise sleeps between frames, and the kernel then wakes it for the next one in the
# softirq of whoever sent that frame (measured: a 64-byte UDP sender at 442 kpps with the
# prefilter scan answering its datagrams, 708 when every datagram went through the slower
# engine lane and the worker never slept).  Quiet traffic never spins.
SPIN_AFTER = 16
SPIN_S = 0.0001
EVE_RETRY = 1.0            # s before a failed EVE file is opened again
PAYLOAD_READ = 1 << 20     # bytes of compiled rules (a reload) read from the command pipe per loop turn
FLOW_REASON = "flow"       # dropped[...] of a frame of a dropped flow (the engine's reason for them)

_CSUMNOTREADY = afp.TP_STATUS_CSUMNOTREADY
_RARE_STATUS = afp.TP_STATUS_CSUMNOTREADY | afp.TP_STATUS_VLAN_VALID   # frames that need work before inspection
_SKIP = CSUM_SKIP
_VLAN_VALID = afp.TP_STATUS_VLAN_VALID
_TPID_VALID = afp.TP_STATUS_VLAN_TPID_VALID
_OUTGOING = afp.PACKET_OUTGOING
_ETH_P_8021Q = afp.ETH_P_8021Q
_DONTWAIT = socket.MSG_DONTWAIT
_NO_TAGS: tuple[int, ...] = ()

try:            # the compiled ring walk (bridge/_ringpass.c): built by the install
    from bridge._ringpass import drain_walk as _c_drain_walk
    from bridge._ringpass import ring_pass as _c_ring_pass
    from bridge._ringpass import wait_pass as _c_wait_pass
except ImportError:     # pragma: no cover - tests/unit/test_ring_pass.py fails when it was not built
    _c_ring_pass = _c_drain_walk = _c_wait_pass = None
_RING_PASS = _c_ring_pass      # drain_walk calls this one itself: not when a test swaps _c_ring_pass
_PASS_END, _PASS_FRAME, _PASS_FLUSH = 0, 1, 2                      # ring_pass's stops
_K_RARE, _K_HIT, _K_RESULT, _K_TXFULL, _K_FAILED = 0, 1, 2, 3, 4    # ... and how far it got with the frame

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
    with `checksum-checks: <checks>` (the drain loop computes the same inline)."""
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
    kernel: Any = None         # the bridge's bridge.ebpf.KernelOffload (inherited across the fork), or None


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
    index: int = 0             # position in Worker.ports (the fast path's port number); set by Worker
    peer_index: int | None = None        # the port that reads from `peer` (None: IDS); set by Worker
    meta: FrameMeta | None = None        # this port's FrameMeta, reused frame after frame; set by Worker
    # drain_walk's first argument (ring_pass's 13 fixed ones), and the (inspect call, fast
    # path, ring, TX ring) it was made with: made again when one changes (a rule swap); set by drain
    walk: tuple | None = None
    walk_of: tuple = ()


class _PassOnly:
    """The kernel offload for pass flows only.  With EVE on in ips mode every dropped frame
    gets its `drop` record (README, as replay does); a frame the kernel drops never reaches
    the worker, so a dropped flow stays in the user-space fast path, which still answers it
    without the engine (FastPath keeps the user-space entry when the kernel's add says no)."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel

    def add(self, ifindex, ipver, proto, vlan, src, dst, sport, dport, action: str, redirect: int) -> bool:
        if action != "pass":
            return False
        return self.kernel.add(ifindex, ipver, proto, vlan, src, dst, sport, dport, action, redirect)

    def __getattr__(self, name: str):
        return getattr(self.kernel, name)


class Watchdog:
    """Bounds the time one frame may hold `inspect`: SIGALRM every limit/2 s; when the
    main thread is inside the inspector's `inspect` (or the code given after it: an Engine's
    `_lane_detect` and `_lane_app`, which its compiled lane calls) on two ticks running and the ring
    batch being worked on is still the same one (`batch` is advanced once per batch, so
    the frame path pays nothing per frame), the handler raises rules.api.InspectTimeout
    there: the inspector answers that frame by its exception policy and counts it, and
    the worker moves on.  A batch is at most a ring's worth of frames, microseconds each:
    one that lasts `limit` has a frame stuck.  Python runs signal handlers between
    bytecodes, so a loop in Python stops within a tick; one C call (a regex, a pattern
    scan) runs to its end first (pcre has PCRE2's match limits for that)."""

    def __init__(self, limit: float, inspect_code, *more_codes) -> None:
        self.limit = limit
        self.codes = (inspect_code, *more_codes)   # inspect's, and what inspects without it
        self.batch = 0
        self.seen = -1
        self.strikes = 0
        self.fired = 0

    def start(self) -> None:
        signal.signal(signal.SIGALRM, self.tick)
        signal.setitimer(signal.ITIMER_REAL, self.limit / 2, self.limit / 2)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)

    def tick(self, signum, frame) -> None:
        f = frame
        codes = self.codes
        while f is not None and not any(f.f_code is c for c in codes):
            f = f.f_back
        if f is None:                     # not inspecting: nothing to bound
            self.seen = -1
            self.strikes = 0
            return
        if self.batch != self.seen:
            self.seen = self.batch
            self.strikes = 0
            return
        self.strikes += 1
        if self.strikes >= 2:
            self.strikes = 0
            self.fired += 1
            raise InspectTimeout(f"a frame held inspect for over {self.limit} s")


def _walkable(port: _Port) -> bool:
    """Whether the compiled walk can take the port's ring: a V2 ring forwarding through a TX
    ring, or IDS (forwarding nothing)."""
    return type(port.ring) is V2Ring and (port.tx is not None or port.mode is None)


class _Drain:
    """What one `Worker.drain` of a port works with, and the counts it adds up (to the port's
    Counters once, at its end)."""

    __slots__ = ("port", "c", "view", "src", "pkttype_at", "ips", "forwards", "csum_mask", "csum_hint", "meta",
                 "pidx", "hit", "install", "tx_put", "inspect", "events", "received", "forwarded",
                 "outgoing", "inspected", "bypassed", "last_ts")

    def __init__(self, worker: Worker, port: _Port) -> None:
        ring = port.ring
        self.port = port
        self.c = port.counters
        self.view = ring.view
        self.src = ring.buf                 # the same bytes as view; the mmap when there is one (cheaper to slice)
        self.pkttype_at = ring.PKTTYPE
        self.ips = port.mode == "ips"
        self.forwards = port.mode is not None
        self.csum_mask = port.csum_mask
        self.csum_hint = port.csum_hint
        self.meta = port.meta
        self.pidx = port.index
        fast = worker.fast
        self.hit = fast.hit if fast is not None else None
        self.install = fast.install if fast is not None else None
        self.tx_put = port.tx.put_many if port.tx is not None else None
        self.inspect = worker.inspect_call()
        self.events: list | None = [] if worker.config.eve_log else None
        self.received = self.forwarded = self.outgoing = self.inspected = self.bypassed = 0
        self.last_ts = 0.0


class Worker:
    """The per-frame path over a list of ports (see the module docstring).  `from_spec`
    builds it in the worker process from the sockets the supervisor opened; tests build it
    from rings on byte buffers and fake sockets."""

    def __init__(self, ports: list[_Port], inspector, config, conn=None, *, index: int = 0,
                 kernel=None, ctl=None) -> None:
        self.config = config
        self.conn = conn
        self.ctl = ctl                    # the supervisor's commands (a rule reload), or None
        self.kernel = kernel
        self.reload_thread: threading.Thread | None = None
        self.reload_next: tuple | None = None     # a reload asked for while one builds: (generation, config[, data])
        self.built: tuple | None = None           # (generation, config, inspector or None, error) from the thread
        self.incoming: tuple | None = None        # compiled rules being read: (generation, config, buffer, bytes read)
        self.switch_interval = sys.getswitchinterval()
        self.index = index
        self.log = structlog.get_logger("ipsbridge.worker").bind(worker=index, pid=os.getpid())
        self.stop = False
        self.last_ts = 0.0
        self.last_ts_mono = time.monotonic()
        self.eve = None
        self.eve_retry_at = 0.0           # monotonic time before which a failed EVE file is not reopened
        self.eve_errors = 0               # EVE open/write failures (each retried later, never for good)
        self.eve_lost = 0                 # events not written because of them
        self.reopen = False               # SIGHUP: reopen the EVE file (logrotate)
        self.inspector = inspector
        self._call_of = self._call = None     # inspect_call()'s inspector and its callable
        self.ports = ports
        by_sock: dict[int, int] = {}
        for i, port in enumerate(ports):
            port.index = i
            by_sock[id(port.ps.sock)] = i
        self.tx_by_sock: dict[Any, Any] = {}    # socket -> its TX ring: a socket with one can only send through it
        for port in ports:
            port.peer_index = by_sock.get(id(port.peer)) if port.peer is not None else None
            port.meta = FrameMeta(0.0, port.name, _NO_TAGS, 0, _NO_TAGS, LINKTYPE_ETHERNET, port.csum_hint)
            if port.tx is not None:
                self.tx_by_sock[port.peer] = port.tx
        self.fast = self._fast_path(kernel)
        self.watchdog: Watchdog | None = None

    def inspect_call(self):
        """What the frame path calls per frame: None for ForwardAll (nothing is inspected),
        the inspector's `front()` when it has one (rules.engine.Engine: `inspect` behind the
        compiled lanes; made once per inspector), else its `inspect`."""
        insp = self.inspector
        if self._call_of is not insp:
            self._call_of = insp
            self._call = (None if type(insp) is ForwardAll else insp.front() if hasattr(insp, "front")
                          else insp.inspect)
        return self._call

    def start_watchdog(self) -> None:
        """ipsbridge.inspect-time-limit (0: none) for an inspector with an `inspect`."""
        limit = self.config.inspect_time_limit
        if self.watchdog is not None:
            self.watchdog.stop()
            self.watchdog = None
        if limit > 0 and type(self.inspector) is not ForwardAll:
            cls = type(self.inspector)
            # an Engine's compiled lane runs detection outside inspect (Engine.LANE_ENTRIES)
            lane = tuple(getattr(cls, name).__code__ for name in getattr(cls, "LANE_ENTRIES", ()))
            self.watchdog = Watchdog(limit, cls.inspect.__code__, *lane)
            self.watchdog.start()

    @classmethod
    def from_spec(cls, spec: WorkerSpec, config, conn, ctl=None) -> Worker:
        """In the worker process: map the rings of the spec's sockets, build the inspector."""
        rings = {}
        for p in spec.ports:
            for k in (p.sock, p.peer):
                if k is not None and k not in rings:
                    rings[k] = open_ring(spec.sockets[k])
        ports = []
        for p in spec.ports:
            ps = spec.sockets[p.sock]
            peer = spec.sockets[p.peer].sock if p.peer is not None else None
            tx = rings[p.peer].tx if p.peer is not None else None
            mask, hint = CHECKSUM_CHECKS[_interface(config, ps.iface).checksum_checks]
            ports.append(_Port(ps.iface, ps, rings[p.sock], p.mode, peer, tx=tx, csum_mask=mask, csum_hint=hint))
        from bridge.hook import build_inspector

        return cls(ports, build_inspector(config), config, conn, index=spec.index, kernel=spec.kernel, ctl=ctl)

    def _fast_path(self, kernel) -> FastPath | None:
        """The fast path for these ports: none when an interface says `bypass: off` or the
        inspector never decides flows (no `bypassed`: ForwardAll, verdict hooks); the kernel
        offload only when every interface says `bypass: kernel` (the supervisor switched an
        interface it could not offload to `user`)."""
        if not hasattr(self.inspector, "bypassed"):
            return None
        settings = [_interface(self.config, p.name).bypass for p in self.ports]
        if "off" in settings:
            return None
        modes = {p.mode for p in self.ports}
        mode = "tap" if "tap" in modes else "ips" if "ips" in modes else "ids"
        fports = [FastPort(p.index, getattr(p.ps, "ifindex", 0), p.peer_index) for p in self.ports]
        use_kernel = kernel if all(s == "kernel" for s in settings) else None
        if use_kernel is not None and self.config.eve_log and mode == "ips":
            use_kernel = _PassOnly(use_kernel)
        fp = FastPath(fports, self.inspector, kernel=use_kernel, mode=mode)
        fp.defer_kernel = use_kernel is not None       # committed by run() once the rings are drained
        if _c_ring_pass is not None:
            # the compiled walk may forward an echo before it is inspected (FastPath.late)
            fp.late = []
            fp.run_late = self.run_late
        return fp

    # ---------------------------------------------------------------- main loop
    def run(self) -> None:
        poller = select.poll()
        by_fd = {}
        for port in self.ports:
            poller.register(port.ps.fileno(), select.POLLIN | select.POLLERR)
            by_fd[port.ps.fileno()] = port
        ctl_fd = -1
        if self.ctl is not None:
            ctl_fd = self.ctl.fileno()
            poller.register(ctl_fd, select.POLLIN)
        self.start_watchdog()
        self.conn.send(("ready", self.index, os.getpid()))
        next_report = time.monotonic() + REPORT_INTERVAL
        compiled = _c_wait_pass is not None and all(map(_walkable, self.ports))
        spec: tuple = ()             # wait_pass's arguments (_wait_spec), made again when they change
        stalled = False
        while not self.stop:
            events: list = []        # the pass's EVE events, written once its frames are out
            try:
                r = None
                if compiled and not stalled and _c_ring_pass is _RING_PASS:
                    # the wait and the pass in C; a port that stalled last pass keeps Python's
                    if not spec or spec[0] is not self.inspector or spec[1] is not self.fast \
                            or spec[2] is not self.watchdog or spec[3] is not self.config or spec[4] != ctl_fd:
                        spec = self._wait_spec(ctl_fd)
                    r = _c_wait_pass(spec[5], POLL_MS, spec[6], events if spec[7] else None, self.watchdog, self)
                    if type(r) is int:
                        consumed = r + self._pass_end(events)
                        polled = None
                    else:
                        polled = r if type(r) is list else r[3] if r is not None else ()
                else:
                    try:
                        polled = poller.poll(POLL_MS)
                    except InterruptedError:
                        polled = []
                if polled is not None:
                    readable = set()
                    for fd, ev in polled:
                        if fd == ctl_fd:
                            if self.control():
                                poller.unregister(ctl_fd)     # the supervisor is gone
                                ctl_fd = -1
                            continue
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
                    if type(r) is tuple:     # wait_pass drained the ports before r[0]
                        stalled, consumed = self._pass(readable, events, r[0], r[2])
                        consumed += r[1]
                    else:
                        stalled, consumed = self._pass(readable, events)
            finally:                 # (even when a drain fails: what the pass found is logged)
                if events:
                    self.write_events(events)
            if stalled:
                time.sleep(0.0005)     # poll is level-triggered: do not spin while waiting out the grace
            elif consumed >= SPIN_AFTER:
                self._spin(SPIN_S)     # (then poll() finds the frame that came, without sleeping)
            if self.reopen:
                self.reopen = False
                self.reopen_eve()
            if self.built is not None:
                self.swap_rules()
            now = time.monotonic()
            if now >= next_report:
                next_report = now + REPORT_INTERVAL
                self.tick(now)
                self.report("stats")
        self.shutdown()
        self.report("final")

    def _wait_spec(self, ctl_fd: int) -> tuple:
        """wait_pass's arguments for the ports and the supervisor's pipe (`ctl_fd`, -1: none),
        after what they were made from (the inspector, the fast path, the watchdog, the
        config and ctl_fd): (those five, fds, per port (walk, slots, TX ring, counters,
        ForwardAll inspector or None), EVE on)."""
        ports = []
        for port in self.ports:
            walk = self._walk(port)
            ports.append((walk, port.ring.frame_nr, port.tx, port.counters,
                          self.inspector if walk[2] is None else None))
        fds = tuple(p.ps.fileno() for p in self.ports) + ((ctl_fd,) if ctl_fd >= 0 else ())
        return (self.inspector, self.fast, self.watchdog, self.config, ctl_fd, fds, tuple(ports),
                bool(self.config.eve_log))

    def _pass(self, readable: set, events: list, start: int = 0, walked: tuple | None = None) -> tuple[bool, int]:
        """One pass over the rings: drain every port (its events into `events`), then hand the
        flows decided meanwhile to the kernel.  (stalled, slots consumed): stalled when a ring
        the kernel said was readable still had a kernel-owned slot at its head (a hole,
        skipped after HOLE_GRACE).  From port `start` on (wait_pass drained those before it),
        that port's drain going on from `walked` (drain_walk's answer at a frame for Python)
        when given."""
        stalled = False
        consumed = 0
        ports = self.ports
        for i in range(start, len(ports)):
            port = ports[i]
            n = self.drain(port, events) if walked is None or i != start else self.drain(port, events, walked)
            consumed += n
            if n or port.ps.fileno() not in readable:
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
        return stalled, consumed + self._pass_end(events)

    def _pass_end(self, events: list) -> int:
        """A pass's end, once the rings are drained: the echoes forwarded before inspection are
        inspected (run_late), and the flows decided meanwhile go to the kernel, then what
        reached the rings meanwhile leaves at once (their frames keep their order); the slots
        that consumed."""
        fast = self.fast
        if fast is None:
            return 0
        if fast.late:
            self.run_late(events if self.config.eve_log else None)
        consumed = 0
        if fast.pending:
            fast.commit()
            for port in self.ports:
                consumed += self.drain(port, events)
        return consumed

    def run_late(self, events: list | None) -> None:
        """Inspect the frames the compiled ring walk forwarded before inspecting them, in the
        order they came (FastPath.late: ICMP echoes that no rule able to change the verdict
        can match, rules.api.Bypass.late).  The walk calls this before it asks about any
        other frame, `_frame` before the Python path takes one, and `_pass` once the rings
        are drained: the engine sees every frame in order, and these go out without waiting
        for it.  Their events go into `events` (None: EVE off) and a flow decision they bring
        is installed; a verdict other than forward (the rules say it cannot be) is counted
        in would_drop, as a tap counts the drops it does not make."""
        fast = self.fast
        items = fast.late.copy()
        fast.late.clear()
        inspect = self.inspect_call()
        for pidx, frame, ts, checksum in items:
            port = self.ports[pidx]
            c = port.counters
            meta = port.meta
            meta.ts = ts
            meta.checksum = checksum
            try:
                result = inspect(frame, meta)
            except Exception:
                c.inspector_errors += 1
                result = FORWARD
            c.inspected += 1
            if result is FORWARD:
                continue
            if result.events and events is not None:
                events.extend(result.events)
            if result.bypass is not None:
                fast.install(pidx, frame, 0, len(frame), 0, result.bypass, ts)
            if result.verdict or result.inject or result.frame is not None:
                bump(c.would_drop, f"late.{result.reason or 'rule'}")

    def _spin(self, seconds: float) -> bool:
        """Look at the rings' head slots (memory, no system call) for up to `seconds`; True
        as soon as one holds a frame.  (SPIN_AFTER)"""
        rings = [port.ring for port in self.ports]
        clock = time.perf_counter
        deadline = clock() + seconds
        while True:
            for ring in rings:
                if ring.ready():
                    return True
            if clock() >= deadline:
                return False

    # ---------------------------------------------------------------- rule reload
    def control(self) -> bool:
        """Read the supervisor's commands; True when its end of the pipe is closed.
        ("reload", generation, config): build the rules (start_reload).  ("reload",
        generation, config, size): the supervisor compiled them, and `size` bytes follow on
        the pipe; they are read as they come, never waiting for more and at most
        PAYLOAD_READ bytes per call, so the frame loop goes on between the reads."""
        try:
            if self.incoming is not None and not self.read_payload():
                return False
            while self.ctl.poll():
                msg = self.ctl.recv()
                if msg[0] == "reload":
                    if len(msg) > 3:
                        self.incoming = (msg[1], msg[2], bytearray(msg[3]), 0)
                        if not self.read_payload():
                            return False
                    else:
                        self.start_reload(msg[1], msg[2])
        except (EOFError, OSError):
            return True
        return False

    def read_payload(self) -> bool:
        """More of the compiled rules, as much as the pipe holds now (up to PAYLOAD_READ);
        True once all are in (the build thread then loads them)."""
        generation, config, buf, got = self.incoming
        view = memoryview(buf)
        fd = self.ctl.fileno()
        budget = PAYLOAD_READ
        try:
            while got < len(buf) and budget > 0 and self.ctl.poll():
                n = os.readv(fd, [view[got:got + min(budget, len(buf) - got)]])
                if n == 0:
                    raise EOFError("the supervisor closed the command pipe")
                got += n
                budget -= n
        finally:
            view.release()
        if got < len(buf):
            self.incoming = (generation, config, buf, got)
            return False
        self.incoming = None
        self.start_reload(generation, config, buf)
        return True

    def start_reload(self, generation: int, config, data=None) -> None:
        """Build the new rules in a thread (the frames keep flowing through the old ones), or
        with `data` load the ones the supervisor compiled (bridge.reload.load_inspector); the
        loop swaps them in once built (swap_rules).  Python runs one thread at a time: the
        switch interval drops to 1 ms meanwhile so the frame loop waits at most that long
        for its turn (as long as the thread runs Python code)."""
        if self.reload_thread is not None:
            self.reload_next = (generation, config) if data is None else (generation, config, data)
            return

        def build():
            try:
                if data is None:
                    from bridge.hook import build_inspector

                    new = build_inspector(config, settle=False)
                else:
                    from bridge.reload import load_inspector

                    new = load_inspector(data)
                self.built = (generation, config, new, "")
            except Exception as e:  # noqa: BLE001 - a failed build keeps the running rules
                self.built = (generation, config, None, repr(e))

        self.switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        self.reload_thread = threading.Thread(target=build, name="rule-build", daemon=True)
        self.reload_thread.start()

    def swap_rules(self) -> None:
        """Between two drains: the built rules replace the running ones.  An engine adopts
        the new rules and keeps its flows; another kind of inspector (none before, a verdict
        hook) is replaced.  The fast path's entries were decided by the old rules: they go
        (decided flows come back to the engine once and are offered again)."""
        generation, config, new, error = self.built
        self.built = None
        self.reload_thread = None
        sys.setswitchinterval(self.switch_interval)
        ok = new is not None
        detail = error
        if ok:
            old = self.inspector
            adopt = getattr(old, "adopt_rules", None)
            if adopt is not None and type(new) is type(old):
                reopened = adopt(new)
                detail = f"{reopened} flows reopened"
                if self.fast is not None:
                    self.fast.clear()
            else:
                try:
                    events = old.finish() if hasattr(old, "finish") else ()
                except Exception:
                    events = ()
                if events and self.config.eve_log:
                    self.write_events(events)
                self.inspector = new
                if self.fast is not None:
                    self.fast.clear()
                self.fast = self._fast_path(self.kernel)
                self.start_watchdog()
            del new, old
            self.config = config
            from bridge.hook import resettle_heap

            resettle_heap()
        try:
            self.conn.send(("reloaded", self.index, os.getpid(), generation, ok, detail))
        except OSError:
            pass
        if self.reload_next is not None:
            nxt, self.reload_next = self.reload_next, None
            self.start_reload(*nxt)

    def shutdown(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        self._shutdown()

    def _shutdown(self) -> None:
        """The end of the run: the frames still in the rings, then `finish`, then the fast
        path cleared (its kernel entries too: no stale redirect outlives the worker)."""
        for port in self.ports:
            self.drain(port)
        try:
            self.finish()
        finally:
            if self.fast is not None:
                self.fast.clear()
            self._close_eve()

    def mono_to_ts(self, mono_ns: int) -> float:
        """A CLOCK_MONOTONIC time (ns; the kernel offload's last-seen) in frame time: the latest
        frame's time moved on by the wall time since it."""
        return self.last_ts + (mono_ns * 1e-9 - self.last_ts_mono)

    def tick(self, mono_now: float) -> None:
        """Advance the inspector's clock: the latest frame time, moved on by the wall time
        elapsed since that frame (so flows still time out on an idle link).  The fast path's
        counts reach the inspector first (its flows' last activity), and the flows the tick
        ended leave the fast path right after it."""
        if not self.last_ts:
            return
        now = self.last_ts + (mono_now - self.last_ts_mono)
        fast = self.fast
        try:
            if fast is not None:
                fast.sync(self.mono_to_ts)
            events = self.inspector.tick(now)
            if fast is not None:
                fast.sync(self.mono_to_ts)
        except Exception:
            self.ports[0].counters.inspector_errors += 1
            return
        if events and self.config.eve_log:
            self.write_events(events)

    def finish(self) -> None:
        """Shutdown: the fast path's last counts go to the inspector, which ends its flows (IDS
        stream data gets its last inspection).  `finish` is optional for verdict-hook plug-ins."""
        try:
            if self.fast is not None and self.last_ts:
                self.fast.sync(self.mono_to_ts)
            finish = getattr(self.inspector, "finish", None)
            events = finish() if finish is not None else ()
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
        if self.fast is not None:
            try:     # the kernel's totals are the whole bridge's: the supervisor reports them once
                insp.update((k, v) for k, v in self.fast.stats().items() if not k.startswith("bypass.kernel."))
            except Exception:
                pass
        if self.watchdog is not None:
            insp["worker.inspect_timeouts"] = self.watchdog.fired
        if self.config.eve_log:
            insp["eve.errors"] = self.eve_errors
            insp["eve.events_lost"] = self.eve_lost
        payload = {port.name: port.counters.as_dict() for port in self.ports}
        try:
            hits = self.inspector.rule_hits() if hasattr(self.inspector, "rule_hits") else []
        except Exception:
            hits = []
        try:
            self.conn.send((kind, self.index, os.getpid(), payload, insp, hits))
        except (BrokenPipeError, OSError):
            self.stop = True    # supervisor gone: nothing left to report to

    # ---------------------------------------------------------------- frames
    def drain(self, port: _Port, events: list | None = None, walked: tuple | None = None) -> int:
        """Process every ready frame of the port's ring (at most one turn of it); returns how
        many slots were consumed.  Its EVE events are added to `events` for the caller to
        write (`run`: once per pass), or written at its end when `events` is None.  `walked`:
        drain_walk's answer at a frame for Python, made by wait_pass, to go on from.

        The common frame takes the compiled walk (bridge/_ringpass.c, `ring_pass`): a V2
        ring forwarding through a TX ring (or IDS, forwarding nothing).  It reads each
        slot, asks the fast path and the inspector (an IPv4 UDP frame's fast-path entry it
        looks up and answers itself when it only forwards: a pass flow's, or a prefiltered
        direction's whose scan finds nothing), copies a frame to forward (the fast
        path's FORWARD, the inspector's shared FORWARD result, a Result that only forwards:
        its alerts join the drain's EVE events) into the TX ring and hands its slot back,
        and stops at any frame that needs more (a checksum to fill, a VLAN tag, a cut
        frame, a fast-path drop, a Result to act on, a TX slot not free): `_frame` finishes
        that one, its slot goes back (`release_head`), and the walk goes on.  Without the
        compiled module, on a V3 ring or without a TX ring, `ring.batches()` hands the
        frames over a batch at a time and `_frame` takes each.  The loop over the walk is
        itself compiled (`drain_walk`, used when `events` is given or EVE is off): it
        calls the walk, flushes the TX ring with its own send() (TxRing.fd; anything but
        the whole batch sent goes to TxRing.sent), counts and returns, so a drain whose
        frames are all the walk's runs no Python in this method beyond the call (a ping
        through the lab: 131 -> 111 µs RTT with no rules); a frame that needs Python
        comes back from it, and the loop below goes on from that frame.  The TX ring is kicked (one send()) whenever half of
        it is queued and once at the end of the drain, the per-frame counters are added
        once per drain, EVE events are collected once per drain (see above), and with the ForwardAll
        inspector (no rules, no hook) no FrameMeta is set and inspect() is not called: its
        `seen` counter is advanced by the number of frames instead."""
        ring = port.ring
        if walked is None and not ring.ready():   # nothing waiting (the other port of a busy one): no set-up
            return 0
        tx = port.tx
        compiled = _c_ring_pass is not None and _walkable(port)
        consumed = 0
        left = ring.frame_nr if compiled else 0
        first = None
        eve = self.config.eve_log
        if walked is not None:       # wait_pass's drain_walk stopped at a frame for Python
            consumed, left, *first = walked
        elif compiled and _c_ring_pass is _RING_PASS and (events is not None or not eve):
            # the whole loop in C while every frame is the walk's (drain_walk): the common drain
            # runs no Python here at all; a frame that needs Python comes back with the counts
            # of those before it already added, and the loop below goes on from it
            walk = self._walk(port)
            r = _c_drain_walk(walk, events if eve else None, left, self.watchdog, tx, port.counters,
                              self.inspector if walk[2] is None else None, self)
            if type(r) is int:
                return r
            consumed, left, *first = r
        d = _Drain(self, port)
        c = port.counters
        frame = self._frame
        wd = self.watchdog
        try:
            if compiled:
                release = ring.release_head
                args = self._walk(port) + (d.events,)
                if first is not None:            # drain_walk stopped at this frame
                    stop, off, hdr, kind, value = first
                    if kind == _K_RARE:
                        left -= 1
                    frame(d, off, hdr, kind, value)
                    release()
                while left > 0:
                    if wd is not None:
                        wd.batch += 1
                    stop, received, outgoing, inspected, bypassed, errors, last_ts, off, hdr, kind, value = \
                        _c_ring_pass(*args, left)
                    d.received += received
                    d.outgoing += outgoing
                    d.inspected += inspected
                    d.bypassed += bypassed
                    left -= received + outgoing
                    if errors:
                        c.inspector_errors += errors
                    if last_ts >= 0:
                        d.last_ts = last_ts
                    if stop == _PASS_END:
                        break
                    if stop == _PASS_FLUSH:
                        tx.flush(c)
                        continue
                    if kind == _K_RARE:          # not counted by the walk: one slot more
                        left -= 1
                    frame(d, off, hdr, kind, value)
                    release()
            else:
                for batch in ring.batches():
                    if wd is not None:
                        wd.batch += 1
                    for off, hdr in batch:
                        frame(d, off, hdr, _K_RARE, None)
        finally:
            if tx is not None and tx.queued:    # flush at the end of every drain: no added latency
                tx.flush(c)
            c.received += d.received
            c.forwarded += d.forwarded
            c.ignored_outgoing += d.outgoing
            c.inspected += d.inspected
            c.bypassed += d.bypassed
            if d.inspect is None and d.inspected:
                self.inspector.seen += d.inspected
        if d.events:
            if events is None:
                self.write_events(d.events)
            else:
                events.extend(d.events)
        if d.received:
            self.last_ts = d.last_ts
            self.last_ts_mono = time.monotonic()
        return consumed + d.received + d.outgoing

    def _walk(self, port: _Port) -> tuple:
        """ring_pass's 13 fixed arguments for `port` (drain_walk's first): made once, and again
        when the inspect call, the fast path, the ring or the TX ring changed (a rule swap)."""
        call = self.inspect_call()
        fast = self.fast
        ring, tx = port.ring, port.tx
        of = port.walk_of
        if port.walk is None or of[0] is not call or of[1] is not fast or of[2] is not ring or of[3] is not tx:
            port.walk = (ring, tx, call, port.meta, FORWARD, fast.hit if fast else None, port.index,
                         port.csum_mask, port.csum_hint, _SKIP, fast.install if fast else None,
                         _FAST_FORWARD, fast.port_tables(port.index) if fast else None)
            port.walk_of = (call, fast, ring, tx)
        return port.walk

    def _frame(self, d: _Drain, off: int, hdr: tuple, kind: int, value) -> None:
        """One frame of `d.port`'s ring at slot offset `off` (header `hdr`), taken as far as
        the compiled walk got with it (`kind`, bridge/_ringpass.c: _K_RARE nothing done, _K_HIT
        the fast path answered `value`, _K_RESULT inspected with Result `value`, _K_TXFULL
        inspected clean with the TX head slot busy, _K_FAILED the fast path raised): counted,
        then forwarded (copied into the TX ring, or sent), dropped or only looked at, as the
        port's mode and the verdict say.  Its slot is the caller's to hand back."""
        status, tp_len, snaplen, mac, net, sec, nsec, tci, tpid = hdr
        fast = self.fast
        if fast is not None and fast.late:    # forwarded earlier, inspected first (run_late)
            self.run_late(d.events)
        port = d.port
        c = d.c
        view = d.view
        if kind == _K_RARE:
            if view[off + d.pkttype_at] == _OUTGOING:
                d.outgoing += 1
                return
            d.received += 1
        try:
            mac += off
            end = mac + snaplen
            rare = status & _RARE_STATUS
            vid = 0
            if rare:
                if status & _CSUMNOTREADY:
                    if fill_l4_checksum(view[mac:end], net + off - mac):
                        c.csum_filled += 1
                    else:
                        c.csum_unfixable += 1
                if status & _VLAN_VALID:
                    vid = tci & 0x0FFF
                    if not status & _TPID_VALID:
                        tpid = _ETH_P_8021Q
            ts = sec + nsec * 1e-9
            d.last_ts = ts
            if kind == _K_FAILED:              # the fast path raised on it: as any bug here
                bump(c.dropped, "internal")
                return
            verdict = value if kind == _K_HIT else 0
            if kind == _K_RARE and d.hit is not None:
                verdict = d.hit(d.pidx, view, mac, end, vid, ts)
            if verdict:
                d.bypassed += 1                     # a decided flow: no FrameMeta, no inspect
                if verdict == _FAST_DROP:
                    if d.ips:
                        if d.events is not None:    # the engine's drop record of the frame
                            d.events.append(self.flow_drop_event(port, view, mac, end, vid, tpid, status, ts))
                        bump(c.dropped, FLOW_REASON)
                        return
                    if d.forwards:                  # tap: never installed (a tap never drops)
                        bump(c.would_drop, FLOW_REASON)
            elif d.inspect is not None:
                if kind == _K_RESULT:
                    result = value
                elif kind == _K_TXFULL:
                    result = FORWARD
                else:
                    result = self._inspect_one(d, view, mac, end, status, vid, tpid, ts)
                if result is not FORWARD:           # the shared clean-frame result: nothing to read
                    if result.events and d.events is not None:
                        d.events.extend(result.events)
                    if result.bypass is not None and d.install is not None:
                        d.install(d.pidx, view, mac, end, vid, result.bypass, ts)
                    if result.verdict:              # DROP or REJECT (Verdict.FORWARD is 0)
                        if d.ips:
                            bump(c.dropped, result.reason or "rule")
                            if result.inject:
                                self.inject(port, result.inject)
                            return
                        if d.forwards:
                            bump(c.would_drop, result.reason or "rule")
                    elif d.ips and result.frame is not None and len(result.frame) == end - mac:
                        view[mac:end] = result.frame      # an overlap normalized to the stream's bytes
                        c.normalized += 1
            elif kind == _K_RARE:
                d.inspected += 1
            if not d.forwards:
                return
            if snaplen < tp_len:   # cut by the ring (GRO/defrag super-frame): never forward a cut frame
                bump(c.dropped, "truncated")
                c.oversize += 1
                return
            if rare and status & _VLAN_VALID:
                mac = insert_vlan(view, mac, tpid, tci)
                c.vlan_reinserted += 1
            if d.tx_put is not None:
                d.tx_put(d.src, (mac, end), c)    # counted as forwarded (or by errno) when flushed
                return
            frame = view[mac:end]
            peer = port.peer
            try:
                peer.send(frame, _DONTWAIT)
                d.forwarded += 1
            except OSError as e:
                code = e.errno or errno.EIO
                if code in RETRY_ERRNOS:
                    code = self.send(peer, frame, code)
                if code:
                    bump(c.send_errors, errno_name(code))
                    if code == errno.EMSGSIZE:
                        c.oversize += 1
                else:
                    d.forwarded += 1
        except Exception:   # a bug here must not stop the bridge: account the frame as dropped
            bump(c.dropped, "internal")

    @staticmethod
    def _inspect_one(d: _Drain, view, mac: int, end: int, status: int, vid: int, tpid: int, ts: float):
        """The inspector's Result for one frame the Python path takes (its FrameMeta set, a
        stripped VLAN tag in it for that call only); an exception in it is counted and the
        frame forwarded."""
        meta = d.meta
        meta.ts = ts
        meta.checksum = _SKIP if status & d.csum_mask else d.csum_hint
        tagged = bool(status & _VLAN_VALID)
        if tagged:
            meta.vlan = (vid,)
            meta.tpid = (tpid,)
        try:
            result = d.inspect(view[mac:end], meta)
        except Exception:
            d.c.inspector_errors += 1
            result = FORWARD
        finally:
            if tagged:
                meta.vlan = meta.tpid = _NO_TAGS
        d.inspected += 1
        return result

    def flow_drop_event(self, port: _Port, view, mac: int, end: int, vid: int, tpid: int, status: int, ts: float):
        """The `drop` event (reason "flow") the engine gives a frame of a dropped flow, for a
        frame the fast path dropped: EVE stays the same with and without the fast path, as
        in replay (bridge.replay.flow_drop_event builds it from the decoded frame)."""
        from bridge.replay import flow_drop_event

        meta = port.meta
        meta.ts = ts
        meta.checksum = _SKIP
        tagged = bool(status & _VLAN_VALID)
        if tagged:
            meta.vlan = (vid,)
            meta.tpid = (tpid,)
        try:
            found = self.fast.lookup(port.index, view, mac, end, vid)
            flow, to_server = found if found is not None else (None, None)
            return flow_drop_event(bytes(view[mac:end]), meta, flow, to_server)
        finally:
            if tagged:      # the port's FrameMeta has no tags between frames (the ring walk relies on it)
                meta.vlan = meta.tpid = _NO_TAGS

    def send_any(self, sock: socket.socket, data, c: Counters) -> int:
        """send() for frames outside the ring walk (injected RST/ICMP): through
        the socket's TX ring when it has one (plain send() would only flush it)."""
        tx = self.tx_by_sock.get(sock)
        if tx is None:
            return self.send(sock, data)
        return tx.send_now(data, c)

    @staticmethod
    def send(sock: socket.socket, data, first: int = 0) -> int:
        """Send one frame; 0 on success, else the errno (after bounded retries).
        `first`: the errno of an attempt the caller already made (it counts as one
        of the SEND_TRIES)."""
        attempt = 0
        if first:
            if first not in RETRY_ERRNOS or SEND_TRIES < 2:
                return first
            attempt = 1
        while True:
            if attempt:
                wait_writable(sock)
            try:
                sock.send(data, _DONTWAIT)
                return 0
            except OSError as e:
                code = e.errno or errno.EIO
                attempt += 1
                if code in RETRY_ERRNOS and attempt < SEND_TRIES:
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


def _interface(config, iface: str) -> Interface:
    """`iface`'s af-packet entry (the defaults -- checksum-checks kernel, bypass kernel -- when
    the configuration has none for it)."""
    for entry in config.af_packet:
        if entry.interface == iface:
            return entry
    return Interface(iface)


def _checksum_checks(config, iface: str) -> str:
    """The `checksum-checks` of `iface`'s af-packet entry."""
    return _interface(config, iface).checksum_checks


def worker_main(spec: WorkerSpec, config, conn, foreign_fds: list[int], ctl=None,
                supervisor_pid: int = 0) -> None:
    """Entry point in the forked child.  The worker stops (SIGTERM) when the supervisor
    dies, whatever killed it: no worker forwards unmanaged (fail-open is the kernel's job)."""
    if supervisor_pid:
        _die_with_parent(supervisor_pid)
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
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)     # reloads come from the supervisor, over `ctl`
    try:
        worker = Worker.from_spec(spec, config, conn, ctl)
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


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG: SIGTERM when the forking thread's process exits.  Set after the
    fork, so the parent may already be gone: then stop now."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(0)
