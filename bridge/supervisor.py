"""The supervisor: creates every socket in a fixed order, forks the workers,
logs `ready`, periodic `stats` and final `totals`.

Pairing.  For a bridged pair A<->B with `threads: N` the supervisor opens
A0..A(N-1) (each joins A's fanout group, in that order) and then B0..B(N-1);
worker i inherits Ai and Bi, so it holds slot i in both groups and sees both
directions of the flows that hash to slot i.  IDS interfaces (no copy-mode) get
N single-socket workers.  After the fork every worker closes the sockets that
are not its own, and the supervisor closes all of them: a socket stays in its
fanout group only while its worker lives.

Logging: structlog JSON lines on stderr, configured once per process.
    {"event": "ready", ...}    once, when every worker has mapped its rings, built
                               its inspector and entered its poll loop
    {"event": "stats", ...}    every config.stats_interval seconds (0: off)
    {"event": "totals", ...}   at exit (also written to `stats_json`)

Kernel offload (bridge.ebpf), when an interface has `bypass: kernel` (the default):
before any socket, stale ipsbridge tc filters (owner gone) are removed from the
configured ports, the KernelOffload (map, programs) is created and its tc program
attached to the clsact ingress of every inline port with `bypass: kernel`; then each
socket of such a port gets the socket filter before it is bound.  The workers inherit
it (WorkerSpec.kernel).  The heartbeat is written every HEARTBEAT_INTERVAL; at exit
the programs step aside (stale heartbeat) before the workers stop, and the tc filters
go once they are gone -- on every exit path (setup failure, a dead worker, signals).
If the kernel cannot (OffloadUnavailable), one warning names the reason and those
interfaces run with `bypass: user`.

Exit: SIGINT/SIGTERM (or the control socket's shutdown) -> workers stop, report
final counters (after a last PACKET_STATISTICS read) -> totals -> 0.

A worker that dies unexpectedly is logged (`worker_died`, with its exit code) and
restarted in its slot (`restart`: new sockets join both fanout groups last); a
slot that dies RESTART_LIMIT times within RESTART_WINDOW stops the bridge with
exit status 1.  Workers get SIGTERM when the supervisor dies (PR_SET_PDEATHSIG).

SIGUSR2 and the control socket (bridge.control, Suricata's unix-command
protocol) reload the rules: bridge.reload validates and compiles them in a
thread, then every worker gets them on its command pipe (the serialized engine,
or ("reload", generation, config) to build itself) and answers ("reloaded", ...)
once it runs them.  SIGHUP: the workers reopen EVE.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import multiprocessing.connection as mpc
import os
import signal
import socket
import time
from typing import Any

import structlog

from bridge import afpacket as afp
from bridge import ebpf
from bridge.control import ControlError, ControlServer, Pending
from bridge.logs import configure_logging
from bridge.reload import Reloader
from bridge.stats import empty, eve_stats, merge, rates
from bridge.worker import PortSpec, WorkerSpec, worker_main
from rules.prefilter import backend_note as prefilter_note

SHUTDOWN_TIMEOUT = 5.0
RESTART_LIMIT = 5             # restarts of one worker slot ...
RESTART_WINDOW = 60.0         # ... within this many seconds, then the bridge stops (a crash loop)
LINK_CHECK_INTERVAL = 1.0     # s between checks for interfaces deleted and created again
HEARTBEAT_INTERVAL = 0.25     # s between heartbeats to the kernel offload (stale after 1 s)
WORKER_SILENCE = 2.5          # s without a report after which a worker counts as hung (fail-open)
OFFLOAD_MIN_FLOWS = 4096      # kernel map entries, at least (one per flow direction)


class SetupError(Exception):
    pass


def plan(config) -> list[tuple[str, list]]:
    """Groups of interfaces in socket-creation order: ("pair", [A, B]) or ("ids", [A])."""
    groups: list[tuple[str, list]] = []
    seen: set[str] = set()
    by_name = {i.interface: i for i in config.af_packet}
    for iface in config.af_packet:
        if iface.interface in seen:
            continue
        if iface.copy_mode:
            peer = by_name.get(iface.copy_iface or "")
            if peer is None:
                raise SetupError(f"{iface.interface}: copy-iface {iface.copy_iface!r} is not an af-packet entry")
            if peer.copy_iface != iface.interface or not peer.copy_mode:
                raise SetupError(f"{iface.interface} <-> {peer.interface}: both entries need copy-mode and "
                                 f"copy-iface pointing at each other")
            if peer.threads != iface.threads:
                raise SetupError(f"{iface.interface} ({iface.threads} threads) <-> {peer.interface} "
                                 f"({peer.threads} threads): threads must be equal or they cannot peer")
            seen.update((iface.interface, peer.interface))
            groups.append(("pair", [iface, peer]))
        else:
            seen.add(iface.interface)
            groups.append(("ids", [iface]))
    return groups


def cluster_ids(config) -> dict[str, int]:
    """Configured cluster-ids; missing ones get 99, 98, ... (Suricata's scheme), skipping used ids."""
    used = {i.cluster_id for i in config.af_packet if i.cluster_id is not None}
    out: dict[str, int] = {}
    nxt = 99
    for i in config.af_packet:
        if i.cluster_id is not None:
            out[i.interface] = i.cluster_id
            continue
        while nxt in used:
            nxt -= 1
        out[i.interface] = nxt
        used.add(nxt)
    return out


def offload_capacity(config) -> int:
    """Kernel map entries: both directions of as many flows as the workers' engines track."""
    workers = sum(ifaces[0].threads for _kind, ifaces in plan(config))
    return max(OFFLOAD_MIN_FLOWS, min(ebpf.MAX_FLOWS_LIMIT, 2 * workers * config.flow.max_flows))


def remove_stale(names: list[str], log) -> None:
    try:
        for line in ebpf.remove_stale_filters(names):
            log.warning("stale_offload_removed", detail=line,
                        reason="left by an ipsbridge that is gone (crash, SIGKILL, or a fail-open exit)")
    except Exception as exc:  # noqa: BLE001 - never fatal: a stale filter steps aside by itself
        log.warning("stale_offload_check_failed", error=str(exc))


def setup_failopen(config, log) -> ebpf.KernelOffload:
    """fail-open: the offload's programs on every inline port, armed to forward to the peer
    while the heartbeat is stale, which it is until the workers are ready: the kernel
    forwards from now on, with no gap after a previous bridge's fail-open filters (ours
    are attached first, then theirs removed).  Every interface with `bypass: kernel` also
    gets the flow offload.  Raises SetupError when the kernel cannot: fail-open was asked
    for, and running without it would be a silent change."""
    names = [i.interface for i in config.af_packet]
    try:
        offload = ebpf.KernelOffload.create(offload_capacity(config), fresh=False)
    except ebpf.OffloadUnavailable as e:
        raise SetupError(f"fail-open needs the kernel offload's eBPF programs: {e} "
                         f"('ipsbridge check' says what is missing; or set ipsbridge.fail-open: no)") from None
    try:
        index = {}
        for i in config.af_packet:
            if i.copy_mode:
                index[i.interface] = socket.if_nametoindex(i.interface)
        for i in config.af_packet:
            if i.copy_mode:
                offload.attach_tc(index[i.interface])
                offload.arm_failopen(index[i.interface], index[i.copy_iface])
    except (ebpf.OffloadUnavailable, OSError) as e:
        offload.close()
        raise SetupError(f"fail-open: {e}") from None
    remove_stale(names, log)
    log.info("fail_open_armed", ports=[f"{i.interface}->{i.copy_iface}" for i in config.af_packet if i.copy_mode],
             note="the kernel forwards between the ports until the workers are ready, and again whenever "
                  "inspection stops (heartbeat older than 1 s)")
    for i in config.af_packet:
        if i.bypass == "kernel" and i.bpf_filter:
            i.bypass = "user"
    return offload


def setup_offload(config, log) -> ebpf.KernelOffload | None:
    """Crash cleanup, then the kernel offload for the interfaces with `bypass: kernel`
    (tc on the inline ones).  None when no interface wants it or the kernel cannot;
    then those interfaces are switched to `bypass: user` (one warning with the reason).
    With fail-open: setup_failopen."""
    if config.fail_open:
        return setup_failopen(config, log)
    names = [i.interface for i in config.af_packet]
    remove_stale(names, log)
    want = [i for i in config.af_packet if i.bypass == "kernel"]
    filtered = [i for i in want if i.bpf_filter]
    if filtered:
        for i in filtered:
            i.bypass = "user"
        log.warning("kernel_offload_unavailable", interfaces=[i.interface for i in filtered], bypass="user",
                    reason="bpf-filter is set: a socket holds one filter, and it is the capture filter's")
        want = [i for i in want if not i.bpf_filter]
    if not want:
        return None
    offload = None
    try:
        offload = ebpf.KernelOffload.create(offload_capacity(config))
        for i in want:
            if i.copy_mode:
                try:
                    ifindex = socket.if_nametoindex(i.interface)
                except OSError as e:
                    raise ebpf.OffloadUnavailable(f"{i.interface}: {e.strerror}") from None
                offload.attach_tc(ifindex)
    except ebpf.OffloadUnavailable as e:
        if offload is not None:
            offload.close()
        for i in want:
            i.bypass = "user"
        log.warning("kernel_offload_unavailable", interfaces=[i.interface for i in want], bypass="user",
                    reason=str(e), hint="'ipsbridge check' says what is missing")
        return None
    log.info("kernel_offload", interfaces=[i.interface for i in want],
             tc=[i.interface for i in want if i.copy_mode], max_flows=offload.flows.max_entries,
             programs={name: info.insns for name, info in offload.info.items()})
    return offload


def open_iface_socket(iface, cluster_id: int, offload: ebpf.KernelOffload | None) -> afp.PacketSocket:
    """One socket of `iface`, in its fanout group (joined last), with its filters."""
    bpf = None
    if iface.bpf_filter:
        if iface.copy_mode:   # conf.validate refuses this; never black-hole inline traffic
            raise SetupError(f"{iface.interface}: bpf-filter on an ips/tap interface would drop "
                             f"every frame it does not match")
        try:
            bpf = afp.compile_bpf(iface.bpf_filter)
        except ValueError as e:
            raise SetupError(f"{iface.interface}: {e}") from e
    # fail-open: every inline port's sockets get it (a stale heartbeat keeps frames out of the
    # ring while the kernel forwards them); otherwise those with bypass: kernel
    wants = iface.bypass == "kernel" or (offload is not None and bool(offload.armed) and bool(iface.copy_mode))
    if wants and iface.bpf_filter:
        wants = False
    prog = offload.socket_filter_fd() if offload is not None and wants else None
    try:
        return afp.open_socket(iface, cluster_id, bpf=bpf, bpf_prog_fd=prog)
    except OSError as e:
        raise SetupError(f"{iface.interface}: cannot open the AF_PACKET socket: {e}") from e


def build_workers(config, offload: ebpf.KernelOffload | None = None) -> list[WorkerSpec]:
    """Open every socket in the pairing order and describe the workers (nothing forked yet).
    Sockets of an interface with `bypass: kernel` get the offload's socket filter before bind."""
    ids = cluster_ids(config)
    ignored = [i.interface for i in config.af_packet if i.defrag and not afp.inline_defrag_allowed(i)]
    if ignored:
        structlog.get_logger("ipsbridge").info(
            "defrag_ignored_inline", interfaces=ignored,
            reason="the fanout defrag flag hands the ring reassembled datagrams that cannot be forwarded; "
                   "fragments are forwarded as they are (set defrag: no to silence this)")
    specs: list[WorkerSpec] = []
    opened: list[afp.PacketSocket] = []
    try:
        for kind, ifaces in plan(config):
            n = ifaces[0].threads
            per_iface: list[list[afp.PacketSocket]] = []
            for iface in ifaces:
                socks = []
                for _ in range(n):
                    ps = open_iface_socket(iface, ids[iface.interface], offload)
                    opened.append(ps)
                    socks.append(ps)
                per_iface.append(socks)
            if kind == "pair":
                a, b = ifaces
                if per_iface[0][0].mtu != per_iface[1][0].mtu:
                    structlog.get_logger("ipsbridge").warning(
                        "mtu_mismatch", interfaces=[a.interface, b.interface],
                        mtu=[per_iface[0][0].mtu, per_iface[1][0].mtu],
                        hint="frames larger than the smaller MTU fail with EMSGSIZE (counted as oversize)")
                for slot in range(n):
                    specs.append(WorkerSpec(
                        index=len(specs), label=f"{a.interface}:{b.interface}", slot=slot,
                        sockets=[per_iface[0][slot], per_iface[1][slot]],
                        ports=[PortSpec(0, a.copy_mode, 1), PortSpec(1, b.copy_mode, 0)], kernel=offload))
            else:
                for slot in range(n):
                    specs.append(WorkerSpec(index=len(specs), label=ifaces[0].interface, slot=slot,
                                            sockets=[per_iface[0][slot]], ports=[PortSpec(0, None, None)],
                                            kernel=offload))
    except BaseException:
        for ps in opened:
            ps.close()
        raise
    return specs


class Supervisor:
    def __init__(self, config, stats_json: str | None, reconfigure=None):
        self.config = config
        self.stats_json = stats_json
        self.log = structlog.get_logger("ipsbridge")
        self.stop_signal: int | None = None
        self.hup = False
        self.usr2 = False
        self.t0 = time.monotonic()
        self.ctls: dict[int, Any] = {}              # worker index -> our end of its command pipe
        self.hits: dict[int, list] = {}             # worker index -> its rule_hits()
        self.control: ControlServer | None = None
        self.ifindex: dict[str, int] = {}           # interface -> ifindex its sockets are bound to
        self.next_link_check = 0.0
        self.restarts: dict[int, int] = {}          # worker index -> times its slot was restarted
        self.restart_times: dict[int, list[float]] = {}
        self.retired: dict[str, dict] = {}          # interface -> counters of workers that died
        self.retired_inspector: dict[str, int] = {}
        self.reloader = Reloader(config, reconfigure, self.log, self.send_ctl, dup_ctl=self.dup_ctl)
        self.procs: list[multiprocessing.Process] = []
        self.conns: dict[Any, int] = {}            # connection -> worker index
        self.latest: dict[int, dict] = {}          # worker index -> {iface: counters}
        self.inspector: dict[int, dict] = {}
        self.final: set[int] = set()
        self.ready: set[int] = set()
        self.pids: dict[int, int] = {}
        self.specs: list[WorkerSpec] = []
        self.offload: ebpf.KernelOffload | None = None
        self.kernel_totals: dict[str, int] = {}     # the offload's last totals (kept after close)
        self.next_heartbeat = 0.0
        self.last_report: dict[int, float] = {}     # worker index -> monotonic time of its last message
        self.failed_open: float | None = None       # fail-open: since when a stop of inspection lets the kernel forward
        self.announced = False

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        for i in self.config.af_packet:
            try:
                self.ifindex[i.interface] = socket.if_nametoindex(i.interface)
            except OSError:
                pass                              # build_workers refuses it with the reason
        self.offload = setup_offload(self.config, self.log)
        self.specs = build_workers(self.config, self.offload)
        all_fds = [ps.fileno() for spec in self.specs for ps in spec.sockets]
        for spec in self.specs:
            mine = {ps.fileno() for ps in spec.sockets}
            self.procs.append(self.spawn(spec, self.config, [fd for fd in all_fds if fd not in mine]))
        for spec in self.specs:
            for ps in spec.sockets:
                ps.close()

    def spawn(self, spec: WorkerSpec, config, foreign_fds: list[int]) -> multiprocessing.Process:
        """Fork the worker of `spec` with its pipes (reports to us, commands from us)."""
        ctx = multiprocessing.get_context("fork")
        r, w = ctx.Pipe(duplex=False)
        cr, cw = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker_main, name=f"ipsbridge-w{spec.index}",
                        args=(spec, config, w, foreign_fds, cr, os.getpid()), daemon=False)
        p.start()
        w.close()
        cr.close()
        old = self.ctls.get(spec.index)
        if old is not None:
            old.close()
        self.ctls[spec.index] = cw
        self.pids[spec.index] = p.pid
        self.conns[r] = spec.index
        return p

    # ------------------------------------------------------------------ interfaces re-created
    def watch_links(self, now: float) -> None:
        """About once a second: an interface deleted and created again has a new ifindex,
        and a packet socket stays bound to the old device (and its fanout group): the
        workers of its pair (or IDS group) are stopped and started again on new sockets,
        in the pairing order.  Their flows start again; the other pairs never stop.  An
        interface that is gone waits until it is back."""
        if now < self.next_link_check:
            return
        self.next_link_check = now + LINK_CHECK_INTERVAL
        for kind, ifaces in plan(self.config):
            names = [i.interface for i in ifaces]
            try:
                current = {n: socket.if_nametoindex(n) for n in names}
            except OSError:
                continue                      # not all there (yet): the old sockets wait
            if all(self.ifindex.get(n) == current[n] for n in names):
                continue
            self.rebind(kind, ifaces, current)

    def rebind(self, kind: str, ifaces: list, current: dict[str, int]) -> None:
        names = {i.interface for i in ifaces}
        idxs = [s.index for s in self.specs if any(ps.iface in names for ps in s.sockets)]
        self.log.warning("interface_recreated", interfaces=sorted(names),
                         ifindex={n: [self.ifindex.get(n), current[n]] for n in sorted(names)},
                         action=f"restarting workers {idxs} on new sockets")
        _signal([self.procs[i] for i in idxs], signal.SIGTERM)   # stop them, their last counters kept
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while time.monotonic() < deadline and any(self.procs[i].is_alive() for i in idxs):
            for obj in mpc.wait(list(self.conns) + [self.procs[i].sentinel for i in idxs], timeout=0.2):
                if obj in self.conns:
                    self.handle(obj)
        for idx in idxs:
            p = self.procs[idx]
            if p.is_alive():
                p.kill()
            p.join(1)
            self.final.discard(idx)
            self.retire(idx)
        if self.offload is not None:
            for i in ifaces:
                if i.copy_mode and (i.bypass == "kernel" or self.offload.armed):
                    try:
                        self.offload.attach_tc(current[i.interface])
                        if self.offload.armed:
                            self.offload.arm_failopen(current[i.interface], current[i.copy_iface])
                    except (ebpf.OffloadUnavailable, OSError) as e:
                        self.log.error("offload_reattach_failed", interface=i.interface, error=str(e))
        ids = cluster_ids(self.config)
        opened: dict[str, list] = {}
        try:
            for i in ifaces:                       # the pairing order: A0..An-1, then B0..Bn-1
                opened[i.interface] = [open_iface_socket(i, ids[i.interface], self.offload) for _ in idxs]
        except SetupError as e:
            for socks in opened.values():
                for ps in socks:
                    ps.close()
            self.log.error("interface_rebind_failed", interfaces=sorted(names), error=str(e),
                           action="retrying at the next check")
            return
        for slot, idx in enumerate(idxs):
            spec = self.specs[idx]
            socks = [opened[ps.iface][slot] for ps in spec.sockets]
            self.specs[idx] = dataclasses.replace(spec, sockets=socks)
            self.procs[idx] = self.spawn(self.specs[idx], self.reloader.config, self.control_fds())
        for socks in opened.values():
            for ps in socks:
                ps.close()
        self.ifindex.update(current)
        self.log.info("interface_rebound", interfaces=sorted(names), workers=idxs)

    def retire(self, idx: int) -> None:
        """A worker that is gone (died, or stopped to be started again): the counters it
        last reported stay in the totals (its gauges go with it), and its slot waits for
        the new worker's "ready"."""
        for name, c in self.latest.pop(idx, {}).items():
            merge(self.retired.setdefault(name, empty()), c)
        merge(self.retired_inspector, {k: v for k, v in self.inspector.pop(idx, {}).items() if not _gauge(k)})
        self.ready.discard(idx)

    def control_fds(self) -> list[int]:
        """The control socket's descriptors, which a worker forked later closes."""
        return [c.fileno() for c in self.control.waitables()] if self.control is not None else []

    def restart(self, idx: int) -> bool:
        """A dead worker's slot gets a new worker.  Its sockets left both fanout groups when
        it died: the kernel moved each group's last member into the hole, the same move in
        both groups, so every other worker still holds one slot in both.  The new sockets
        join each group last, again in both: flows keep landing on one worker (the flows of
        two slots change worker, and their state starts again there).  It runs the rules
        now in force (the last reload's).  False when the slot restarted too often lately
        (RESTART_LIMIT in RESTART_WINDOW s): a crash loop stops the bridge."""
        now = time.monotonic()
        recent = [t for t in self.restart_times.get(idx, []) if now - t < RESTART_WINDOW]
        if len(recent) >= RESTART_LIMIT:
            return False
        spec = self.specs[idx]
        by_name = {i.interface: i for i in self.config.af_packet}
        ids = cluster_ids(self.config)
        socks: list[afp.PacketSocket] = []
        try:
            for old in spec.sockets:
                socks.append(open_iface_socket(by_name[old.iface], ids[old.iface], self.offload))
        except SetupError as e:
            for ps in socks:
                ps.close()
            self.log.error("worker_restart_failed", worker=idx, error=str(e))
            return False
        self.retire(idx)
        new_spec = dataclasses.replace(spec, sockets=socks)
        self.specs[idx] = new_spec
        self.procs[idx] = self.spawn(new_spec, self.reloader.config, self.control_fds())
        for ps in socks:
            ps.close()
        recent.append(now)
        self.restart_times[idx] = recent
        self.restarts[idx] = self.restarts.get(idx, 0) + 1
        return True

    def on_signal(self, signum, frame) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def on_usr2(self, signum, frame) -> None:
        """SIGUSR2: reload the rules (as Suricata's)."""
        self.usr2 = True

    def send_ctl(self, index: int, msg: tuple) -> bool:
        conn = self.ctls.get(index)
        if conn is None:
            return False
        try:
            conn.send(msg)
        except OSError:
            return False
        return True

    def dup_ctl(self, index: int) -> int | None:
        """A duplicate of worker `index`'s command pipe (write end), for the reload thread that
        writes it the compiled rules; it stays valid when a restart replaces the pipe."""
        conn = self.ctls.get(index)
        if conn is None:
            return None
        try:
            return os.dup(conn.fileno())
        except OSError:
            return None

    def on_hup(self, signum, frame) -> None:
        """SIGHUP (logrotate): the workers reopen the EVE file; nothing stops.  The
        supervisor's own log is stderr, which has no file to reopen."""
        self.hup = True

    # ------------------------------------------------------------------ loop
    def handle(self, conn) -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            del self.conns[conn]
            return
        kind, index, pid = msg[0], msg[1], msg[2]
        self.last_report[index] = time.monotonic()
        if kind == "ready":
            self.ready.add(index)
            if self.restarts.get(index):
                # a restarted worker's sockets joined the fanout groups before it built its
                # engine: its slot's frames waited in the rings until now
                self.log.info("worker_ready", worker=index, pid=pid, restarts=self.restarts[index])
        elif kind in ("stats", "final"):
            self.latest[index] = msg[3]
            self.inspector[index] = msg[4]
            if len(msg) > 5:
                self.hits[index] = msg[5]
            if kind == "final":
                self.final.add(index)
        elif kind == "reloaded":
            self.reloader.worker_done(index, msg[3], msg[4], msg[5])
        elif kind == "error":
            self.log.error("worker_setup_failed", worker=index, pid=pid, error=msg[3])

    def dead_worker(self) -> tuple[int, int] | None:
        for spec, p in zip(self.specs, self.procs):
            if spec.index not in self.final and not p.is_alive():
                return spec.index, p.exitcode
        return None

    def totals(self) -> dict[str, Any]:
        interfaces: dict[str, dict] = {}
        for iface in self.config.af_packet:
            interfaces[iface.interface] = {"mode": iface.copy_mode or "ids", **empty()}
        workers = []
        insp: dict[str, int] = dict(self.retired_inspector)
        for name, c in self.retired.items():
            merge(interfaces.setdefault(name, empty()), c)
        for spec in self.specs:
            counters = self.latest.get(spec.index, {})
            for name, c in counters.items():
                merge(interfaces.setdefault(name, empty()), c)
            merge(insp, self.inspector.get(spec.index, {}))
            workers.append({"worker": spec.index, "pid": self.pids.get(spec.index), "label": spec.label,
                            "slot": spec.slot, "interfaces": counters, "restarts": self.restarts.get(spec.index, 0),
                            "inspector": self.inspector.get(spec.index, {})})
        if self.restarts:
            insp["workers.restarts"] = sum(self.restarts.values())
        if self.offload is not None or self.kernel_totals:
            # one map for the whole bridge: its totals once, not summed over the workers
            insp.update(self.read_kernel_totals())
        return {"interfaces": interfaces, "workers": workers, "inspector": insp}

    # ------------------------------------------------------------------ kernel offload
    def read_kernel_totals(self) -> dict[str, int]:
        if self.offload is not None:
            try:
                self.kernel_totals = self.offload.totals()
            except OSError:
                pass
        return dict(self.kernel_totals)

    def healthy(self, now: float) -> bool:
        """Every worker is ready and reported within WORKER_SILENCE (a hung or restarting
        worker makes the whole bridge fail open, not only its slot)."""
        if len(self.ready) != len(self.specs):
            return False
        return all(now - self.last_report.get(s.index, 0.0) <= WORKER_SILENCE for s in self.specs)

    def heartbeat(self, now: float) -> None:
        if self.offload is None or now < self.next_heartbeat:
            return
        self.next_heartbeat = now + HEARTBEAT_INTERVAL
        if self.config.fail_open and not self.healthy(now):
            # (at start, until every worker is ready, the kernel forwards too: not an event)
            if self.failed_open is None and self.announced:
                self.failed_open = now
                self.log.error("fail_open", reason="a worker is not ready or has not reported for "
                               f"{WORKER_SILENCE} s", action="the kernel forwards uninspected within 1 s")
            return
        if self.failed_open is not None:
            self.log.info("fail_open_ended", seconds=round(now - self.failed_open, 1))
            self.failed_open = None
        try:
            self.offload.heartbeat()
        except OSError as e:   # never seen; the programs then step aside after 2 s: fail-safe
            self.log.error("offload_heartbeat_failed", error=str(e))

    def close_offload(self) -> None:
        """Detach the tc programs and close the maps (after the workers are gone).  With
        fail-open the tc programs stay: the kernel goes on forwarding (stale heartbeat)
        until the next start or `ipsbridge check --fix` removes them."""
        if self.offload is None:
            return
        self.read_kernel_totals()
        keep = bool(self.config.fail_open and self.offload.armed)
        if keep:
            self.log.warning("fail_open_left", ports=[i.interface for i in self.config.af_packet if i.copy_mode],
                             note="the kernel forwards uninspected between the ports until the next start; "
                                  "'ipsbridge check --fix' removes it")
        try:
            self.offload.close(keep_filters=keep)
        except Exception as exc:  # noqa: BLE001 - best effort on the way out, logged
            self.log.error("offload_cleanup_failed", error=str(exc),
                           fix="ipsbridge check --fix removes filters left behind")
        self.offload = None

    def run(self) -> int:
        # before the workers exist: neither signal may ever be fatal
        old_hup = signal.signal(signal.SIGHUP, self.on_hup)
        old_usr2 = signal.signal(signal.SIGUSR2, self.on_usr2)
        try:
            self.start()
            self.open_control()
        except SetupError as e:
            self.log.error("setup_failed", error=str(e))
            self.shutdown()
            signal.signal(signal.SIGHUP, old_hup)
            signal.signal(signal.SIGUSR2, old_usr2)
            return 1
        except BaseException:
            self.shutdown()
            signal.signal(signal.SIGHUP, old_hup)
            signal.signal(signal.SIGUSR2, old_usr2)
            raise
        self.reloader.load_initial()
        old = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        old[signal.SIGHUP] = old_hup
        old[signal.SIGUSR2] = old_usr2
        status = 0
        try:
            status = self.loop()
        finally:
            self.shutdown()
            for s, h in old.items():
                signal.signal(s, h)
        if status == 0 and self.dead_worker_at_exit:
            status = 1
        totals = self.totals()
        self.log.info("totals", **totals)
        if self.stats_json:
            tmp = self.stats_json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(totals, f, indent=2, sort_keys=True)
            os.replace(tmp, self.stats_json)
        return status

    dead_worker_at_exit = False

    def loop(self) -> int:
        interval = self.config.stats_interval or 0
        announced = False
        t0 = time.monotonic()
        next_stats = t0 + interval if interval else None
        prev, prev_t = {}, t0
        while self.stop_signal is None:
            self.heartbeat(time.monotonic())
            self.watch_links(time.monotonic())
            if self.usr2:
                self.usr2 = False
                self.reloader.request(why="SIGUSR2")
            self.reloader.poll([s.index for s, p in zip(self.specs, self.procs) if p.is_alive()])
            if self.hup:
                self.hup = False
                self.log.info("reopen", reason="SIGHUP", eve=self.config.eve_log)
                _signal(self.procs, signal.SIGHUP)
            ctl = self.control.waitables() if self.control is not None else []
            waitables = list(self.conns) + [p.sentinel for p in self.procs] + ctl
            timeout = 0.05 if self.reloader.state == "validating" else HEARTBEAT_INTERVAL
            ready = mpc.wait(waitables, timeout=timeout)
            for obj in ready:
                if obj in self.conns:
                    self.handle(obj)
            if ctl and ready:
                self.control.handle_ready(ready)
            # messages first, then deaths: a worker's last words arrive before its sentinel
            dead = self.dead_worker()
            if dead is not None:
                while any(c.poll() for c in list(self.conns)):
                    for c in list(self.conns):
                        if c.poll():
                            self.handle(c)
                dead = self.dead_worker()
            if dead is not None:
                idx, code = dead
                self.reloader.worker_gone(idx)
                spec = self.specs[idx]
                pid = self.pids[idx]
                self.procs[idx].join(1)
                if self.restart(idx):
                    self.log.error("worker_died", worker=idx, pid=pid, label=spec.label, slot=spec.slot,
                                   exit_code=code, action="restarted", new_pid=self.pids[idx],
                                   restarts=self.restarts[idx])
                    continue
                self.log.error("worker_died", worker=idx, pid=pid, label=spec.label,
                               slot=spec.slot, exit_code=code,
                               action=f"shutting the bridge down (restarted {RESTART_LIMIT} times within "
                                      f"{RESTART_WINDOW:.0f} s, or its sockets could not be opened again)")
                self.dead_worker_at_exit = True
                return 1
            if not announced and len(self.ready) == len(self.specs):
                announced = self.announced = True
                self.heartbeat(time.monotonic() + HEARTBEAT_INTERVAL)   # fail-open: hand over at once
                self.log.info("ready", workers=len(self.specs), pids=[p.pid for p in self.procs],
                              interfaces=[i.interface for i in self.config.af_packet],
                              pairs=sorted({s.label for s in self.specs}), prefilter=prefilter_note())
            now = time.monotonic()
            if next_stats is not None and now >= next_stats:
                next_stats = now + interval
                cur = self.totals()["interfaces"]
                self.log.info("stats", uptime=round(now - t0, 1), interfaces=cur,
                              rates=rates(cur, prev, now - prev_t))
                self.write_eve_stats(now - t0)
                prev, prev_t = cur, now
        self.log.info("stopping", signal=signal.Signals(self.stop_signal).name)
        return 0

    def write_eve_stats(self, uptime: float) -> None:
        """An EVE `stats` record (Suricata's shape) at every stats interval, appended to the
        EVE file the workers write (O_APPEND, one write: lines never interleave).  A failure
        is counted and logged once in a while; the next interval tries again."""
        if not self.config.eve_log:
            return
        from bridge.eve import EveWriter, timestamp

        line = json.dumps({"timestamp": timestamp(time.time()), "event_type": "stats",
                           "stats": eve_stats(self.totals(), uptime)}, separators=(",", ":"))
        try:
            with EveWriter(self.config.eve_log) as w:
                w.write_lines([line])
        except OSError as e:
            self.eve_stats_errors += 1
            if self.eve_stats_errors in (1, 10, 100) or self.eve_stats_errors % 1000 == 0:
                self.log.warning("eve_stats_write_failed", path=self.config.eve_log, error=str(e),
                                 errors=self.eve_stats_errors)

    eve_stats_errors = 0

    # ------------------------------------------------------------------ control socket
    def open_control(self) -> None:
        """unix-command: yes -> the socket or a refusal; auto -> the socket, or a warning and
        none when it cannot be had (another instance holds the path); no -> none."""
        mode = self.config.unix_command
        if mode == "no":
            return
        server = ControlServer(self.config.unix_command_path, self.control_handlers(),
                               {"reload-rules": self.cmd_reload, "ruleset-reload-rules": self.cmd_reload})
        try:
            server.open()
        except ControlError as e:
            if mode == "yes":
                raise SetupError(f"{e} (set unix-command.enabled: no to run without it)") from e
            self.log.warning("control_socket_unavailable", error=str(e),
                             fix="set unix-command.filename to a free path, or enabled: no")
            return
        self.control = server
        self.log.info("control_socket", path=server.path)

    def control_handlers(self) -> dict:
        ok = lambda v: (lambda args: (True, v))   # noqa: E731
        h = {
            "version": ok("ipsbridge 0.1.0"),
            "running-mode": ok("workers"),
            "capture-mode": ok("AF_PACKET_DEV"),
            "uptime": lambda args: (True, int(time.monotonic() - self.t0)),
            "iface-list": self.cmd_iface_list,
            "iface-stat": self.cmd_iface_stat,
            "dump-counters": lambda args: (True, self.counters()),
            "ruleset-reload-nonblocking": self.cmd_reload_nonblocking,
            "ruleset-reload-time": lambda args: (True, [{"id": 0, "last_reload": _iso(self.reloader.info.when)}]),
            "ruleset-stats": lambda args: (True, [{"id": 0, "rules_loaded": self.reloader.info.loaded,
                                                   "rules_failed": len(self.reloader.info.failed)}]),
            "ruleset-failed-rules": lambda args: (True, list(self.reloader.info.failed)),
            "reopen-log-files": self.cmd_reopen,
            "shutdown": self.cmd_shutdown,
        }
        names = sorted(set(h) | {"reload-rules", "ruleset-reload-rules", "command-list", "help"})
        h["command-list"] = h["help"] = lambda args: (True, {"count": len(names), "commands": names})
        return h

    def cmd_iface_list(self, args):
        names = [i.interface for i in self.config.af_packet]
        return True, {"count": len(names), "ifaces": names}

    def cmd_iface_stat(self, args):
        name = args.get("iface")
        c = self.totals()["interfaces"].get(name) if isinstance(name, str) else None
        if c is None:
            return False, "Iface does not exist"
        # Suricata's fields: packets seen, capture (kernel) drops, bad checksums, bypassed
        return True, {"pkts": c["received"] + c["kernel_drops"], "drop": c["kernel_drops"],
                      "invalid-checksums": c["csum_unfixable"], "bypassed": c["bypassed"]}

    def cmd_reload(self, pending: Pending, args) -> None:
        self.reloader.request(lambda ok, msg: self.control.answer(pending, ok, msg), why="control socket")

    def cmd_reload_nonblocking(self, args):
        if self.reloader.state != "idle":
            return False, "Reload already in progress"
        self.reloader.request(why="control socket (nonblocking)")
        return True, "done"

    def cmd_reopen(self, args):
        self.hup = True
        return True, "done"

    def cmd_shutdown(self, args):
        if self.stop_signal is None:
            self.stop_signal = signal.SIGTERM
        return True, "Closing ipsbridge"

    def counters(self) -> dict[str, Any]:
        """dump-counters: the totals, uptime, reloads and the rules that hit most."""
        out = self.totals()
        out["uptime"] = int(time.monotonic() - self.t0)
        out["reloads"] = {"done": self.reloader.reloads, "failed": self.reloader.failed_reloads,
                          "generation": self.reloader.generation}
        merged: dict[tuple[int, int], list] = {}
        for hits in self.hits.values():
            for gid, sid, n, msg in hits:
                e = merged.setdefault((gid, sid), [0, msg])
                e[0] += n
        top = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))[:50]
        out["rules"] = {"top": [{"gid": g, "sid": s, "hits": n, "msg": m} for (g, s), (n, m) in top]}
        return out

    def shutdown(self) -> None:
        """Stop the workers; the kernel offload steps aside first (its frames reach the
        rings again while the workers still forward) and is removed once they are gone."""
        if self.offload is not None:
            try:
                self.offload.step_aside()
            except OSError:
                pass
        try:
            self._stop_workers()
        finally:
            self.close_offload()
            if self.control is not None:
                self.control.close()
                self.control = None

    def _stop_workers(self) -> None:
        _signal(self.procs, signal.SIGTERM)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while self.conns and time.monotonic() < deadline:
            for obj in mpc.wait(list(self.conns), timeout=0.2):
                self.handle(obj)
        for p in self.procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                self.log.error("worker_kill", pid=p.pid, reason="no exit after SIGTERM")
                p.kill()
                p.join(1)
        missing = [s.index for s in self.specs if s.index not in self.final]
        if missing:
            self.log.warning("final_counters_missing", workers=missing,
                             note="totals use the last periodic report of these workers")


def _signal(procs, sig: int) -> None:
    """`sig` to every worker process still alive (one that just exited is no error)."""
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass


def _gauge(key: str) -> bool:
    """An inspector value that is a level, not a count (a dead worker's is gone with it)."""
    return key.endswith((".active", ".memuse", ".sessions", ".emergency")) or key.startswith("rules.")


def _iso(ts: float) -> str | None:
    if not ts:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def run(config, *, stats_json: str | None = None, reconfigure=None) -> int:
    """Run the bridge until SIGINT/SIGTERM.  0 on a clean stop, 1 on a setup
    failure or a worker that died.  `reconfigure() -> (Config | None, problems)` builds
    the configuration again as at start, for rule reloads (SIGUSR2, the control socket)."""
    configure_logging()
    return Supervisor(config, stats_json, reconfigure).run()
