"""bridge.worker set-up and rule reloads, which the mutation run (tests/bench/mutation.py)
found reached by no unit test: from_spec (rings mapped from the spec's sockets -- files
stand in for them -- ports, peers, TX rings and checksum settings per interface),
start_watchdog, and a reload built in a thread then swapped in between two drains
(start_reload, swap_rules: success, failure, a reload asked for meanwhile, an engine
adopting the new rules)."""
from __future__ import annotations

import signal
import sys

import pytest

from bridge import afpacket as afp
from bridge import hook
from bridge.ring import TxRing, V2Ring
from bridge.worker import CHECKSUM_CHECKS, PortSpec, Worker, WorkerSpec, _Port
from conf.model import Config, Interface
from rules.api import FORWARD, ForwardAll


class FilePS:
    """A PacketSocket as the worker sees it; a file gives the ring mapping."""

    def __init__(self, path, iface: str):
        self.g = afp.RingGeometry(afp.TPACKET_V2, 4096, 2, 2048, 4)
        self.tg = afp.RingGeometry(afp.TPACKET_V2, 4096, 1, 2048, 2)
        self.geometry, self.tx_geometry = self.g, self.tg
        self.f = open(path, "w+b")
        self.f.truncate(self.g.size + self.tg.size)
        self.iface, self.sock, self.ignore_outgoing = iface, object(), True

    def fileno(self):
        return self.f.fileno()


def test_from_spec_maps_each_socket_once_and_pairs_the_ports(tmp_path):
    a, b = FilePS(tmp_path / "a", "eth0"), FilePS(tmp_path / "b", "eth1")
    spec = WorkerSpec(index=3, label="eth0:eth1", slot=0, sockets=[a, b],
                      ports=[PortSpec(0, "ips", 1), PortSpec(1, "ips", 0)], kernel=None)
    config = Config(af_packet=[Interface("eth0", checksum_checks="no"), Interface("eth1", checksum_checks="auto")])
    w = Worker.from_spec(spec, config, conn="conn", ctl="ctl")
    try:
        assert (w.index, w.conn, w.ctl, type(w.inspector)) == (3, "conn", "ctl", ForwardAll)
        p0, p1 = w.ports
        assert (p0.name, p0.ps, p0.mode, p0.peer) == ("eth0", a, "ips", b.sock)
        assert (p1.name, p1.ps, p1.mode, p1.peer) == ("eth1", b, "ips", a.sock)
        assert isinstance(p0.ring, V2Ring) and isinstance(p0.tx, TxRing)
        assert p0.tx is p1.ring.tx and p1.tx is p0.ring.tx        # frames go out on the peer's TX ring
        assert (p0.csum_mask, p0.csum_hint) == CHECKSUM_CHECKS["no"]
        assert (p1.csum_mask, p1.csum_hint) == CHECKSUM_CHECKS["auto"]
        assert w.tx_by_sock == {b.sock: p0.tx, a.sock: p1.tx}
    finally:
        for ps in (a, b):
            ps.f.close()


def test_from_spec_ids_port_has_no_peer(tmp_path):
    a = FilePS(tmp_path / "a", "eth2")
    spec = WorkerSpec(index=0, label="eth2", slot=1, sockets=[a], ports=[PortSpec(0, None, None)])
    w = Worker.from_spec(spec, Config(), conn=None)
    try:
        (p,) = w.ports
        assert (p.mode, p.peer, p.tx) == (None, None, None)
        assert (p.csum_mask, p.csum_hint) == CHECKSUM_CHECKS["kernel"]      # no entry: the default
    finally:
        a.f.close()


class Insp:
    def __init__(self, name="new"):
        self.name = name
        self.finished = False

    def inspect(self, frame, meta):
        return FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return {}

    def finish(self):
        self.finished = True
        return ()


class Conn:
    def __init__(self):
        self.sent = []

    def send(self, msg):
        self.sent.append(msg)


def plain_worker(inspector, config=None):
    port = _Port("eth0", type("PS", (), {"iface": "eth0", "sock": object(), "ignore_outgoing": True})(),
                 None, None, None)
    return Worker([port], inspector, config or Config(), Conn())


@pytest.fixture
def quiet_heap(monkeypatch):
    monkeypatch.setattr(hook, "resettle_heap", lambda: None)


@pytest.mark.parametrize("limit,inspector,armed", [
    (0.5, Insp(), True), (0.0, Insp(), False), (0.5, ForwardAll(), False),
], ids=["limit", "no-limit", "forward-all"])
def test_start_watchdog(limit, inspector, armed):
    old = signal.getsignal(signal.SIGALRM)
    w = plain_worker(inspector, Config(inspect_time_limit=limit))
    try:
        w.start_watchdog()
        assert (w.watchdog is not None) is armed
        if armed:
            assert w.watchdog.limit == limit and w.watchdog.codes == (Insp.inspect.__code__,)
            assert signal.getitimer(signal.ITIMER_REAL)[1] == limit / 2
            first = w.watchdog
            w.start_watchdog()                           # again: the old one stops, a new one runs
            assert w.watchdog is not first
            w.watchdog.stop()
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_the_watchdog_of_an_engine_also_watches_its_lane_detection():
    """An Engine's compiled lane runs detection through Engine._lane_detect, _lane_app and
    _lane_tx, with no inspect frame above them: the worker's watchdog watches them all."""
    from rules.engine import Engine
    from rules.settings import EngineSettings

    old = signal.getsignal(signal.SIGALRM)
    w = plain_worker(Engine([], EngineSettings()), Config(inspect_time_limit=0.5))
    try:
        w.start_watchdog()
        assert w.watchdog.codes == (Engine.inspect.__code__, Engine._lane_detect.__code__, Engine._lane_app.__code__,
                                    Engine._lane_tx.__code__)
        assert w.inspect_call() is w.inspect_call() and w.inspect_call() is not None
        w.watchdog.stop()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def built(w: Worker) -> tuple:
    w.reload_thread.join(5)
    return w.built


def test_a_reload_builds_in_a_thread_and_swaps_in_between_drains(monkeypatch, quiet_heap):
    new = Insp("new")
    configs = []
    monkeypatch.setattr(hook, "build_inspector", lambda config, settle=True: configs.append(settle) or new)
    old = Insp("old")
    w = plain_worker(old)
    interval = sys.getswitchinterval()
    cfg = Config(inspect_time_limit=0.0)
    w.start_reload(7, cfg)
    assert sys.getswitchinterval() == 0.001 and w.switch_interval == interval
    assert built(w) == (7, cfg, new, "") and configs == [False]     # built unsettled, in the thread
    w.swap_rules()
    assert w.inspector is new and old.finished and w.config is cfg
    assert (w.built, w.reload_thread) == (None, None) and sys.getswitchinterval() == interval
    (msg,) = w.conn.sent
    assert msg[0] == "reloaded" and msg[1] == 0 and msg[3:] == (7, True, "")


def test_a_failed_build_keeps_the_running_rules(monkeypatch, quiet_heap):
    def boom(config, settle=True):
        raise ValueError("bad rule")

    monkeypatch.setattr(hook, "build_inspector", boom)
    old = Insp("old")
    w = plain_worker(old)
    w.start_reload(8, Config())
    gen, cfg, new, error = built(w)
    assert (gen, new) == (8, None) and "bad rule" in error
    w.swap_rules()
    assert w.inspector is old and not old.finished
    assert w.conn.sent[0][3:5] == (8, False) and "bad rule" in w.conn.sent[0][5]


def test_a_reload_asked_for_while_one_builds_follows_it(monkeypatch, quiet_heap):
    made = []
    monkeypatch.setattr(hook, "build_inspector", lambda config, settle=True: made.append(config) or Insp())
    w = plain_worker(Insp("old"))
    first, second = Config(inspect_time_limit=0.0), Config(inspect_time_limit=0.0)
    w.start_reload(1, first)
    w.start_reload(2, second)                            # the first is still ours to swap
    assert w.reload_next == (2, second)
    built(w)
    w.swap_rules()
    assert w.reload_next is None and w.reload_thread is not None
    assert built(w)[:2] == (2, second)
    w.swap_rules()
    assert [m[3] for m in w.conn.sent] == [1, 2] and made == [first, second]


def test_an_engine_adopts_the_new_rules_and_keeps_its_flows(monkeypatch, quiet_heap):
    class Engine(Insp):
        def adopt_rules(self, new):
            self.adopted = new
            return 4

    new = Engine("new")
    monkeypatch.setattr(hook, "build_inspector", lambda config, settle=True: new)
    old = Engine("old")
    w = plain_worker(old)
    w.start_reload(3, Config())
    built(w)
    w.swap_rules()
    assert w.inspector is old and old.adopted is new and not old.finished
    assert w.conn.sent[0][3:] == (3, True, "4 flows reopened")


# ------------------------------------------------------------------ the main loop
class LoopPS:
    """A packet socket for Worker.run: a socketpair end to poll (readable when `ready`)."""

    def __init__(self, iface, ready: bool):
        import socket
        self.a, self.b = socket.socketpair()
        if ready:
            self.b.send(b"!")
        self.iface, self.ignore_outgoing = iface, True
        self.sock = self

    def fileno(self):
        return self.a.fileno()

    def getsockopt(self, *a):
        return 0

    def close(self):
        self.a.close()
        self.b.close()


def loop_ring(frames):
    from bridge.ring import SLL_PKTTYPE_V2, V2_HDR
    g = afp.RingGeometry(afp.TPACKET_V2, 4096, 4, 256, 16)
    r = V2Ring(memoryview(bytearray(g.size)), g)
    for i, data in enumerate(frames):
        off = r.offsets[i]
        V2_HDR.pack_into(r.view, off, afp.TP_STATUS_USER, len(data), len(data), 80, 94, 1700000000 + i, 0, 0, 0)
        r.view[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        r.view[off + 80:off + 80 + len(data)] = data
    return r


def test_the_main_loop_reports_ready_drains_swaps_reopens_and_reports_final(monkeypatch, quiet_heap):
    import multiprocessing
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (0, 0))
    frames = [bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes([k]) * 46 for k in range(3)]

    class StopAfter(Insp):
        def __init__(self, w_ref):
            super().__init__("old")
            self.w_ref, self.seen = w_ref, 0

        def inspect(self, frame, meta):
            self.seen += 1
            if self.seen == len(frames):
                self.w_ref[0].stop = True
            return FORWARD

    class Out:
        def __init__(self):
            self.sent = []

        def send(self, data, flags=0):
            self.sent.append(bytes(data))
            return len(data)

    ps0, ps1 = LoopPS("eth0", True), LoopPS("eth1", False)
    out = Out()
    ref = [None]
    insp = StopAfter(ref)
    ctl_parent, ctl_child = multiprocessing.Pipe()
    w = Worker([_Port("eth0", ps0, loop_ring(frames), "ips", out), _Port("eth1", ps1, loop_ring([]), "ips", ps0)],
               insp, Config(inspect_time_limit=0.0), Conn(), index=2, ctl=ctl_child)
    ref[0] = w
    w.reopen = True
    w.log = type("L", (), {"info": lambda *a, **k: None, "warning": lambda *a, **k: None})()
    new = Insp("new")
    w.built = (5, Config(inspect_time_limit=0.0), new, "")
    ctl_parent.close()                                   # the supervisor's end is gone: never read again
    try:
        w.run()
    finally:
        ps0.close()
        ps1.close()
        ctl_child.close()
    kinds = [m[0] for m in w.conn.sent]
    assert kinds[0] == "ready" and w.conn.sent[0][1] == 2 and kinds[-1] == "final"
    assert "reloaded" in kinds and w.inspector is new and insp.finished
    assert out.sent == frames and w.reopen is False and w.eve_retry_at == 0.0
    final = w.conn.sent[-1]
    assert final[3]["eth0"]["received"] == 3 and final[3]["eth0"]["forwarded"] == 3


def test_the_main_loop_skips_a_hole_the_kernel_left_after_a_grace(monkeypatch):
    """The socket is readable, the head slot still the kernel's, later slots ready: after
    HOLE_GRACE the loop moves past the hole (counted) and drains the rest."""
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (0, 0))
    frames = [bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes([k]) * 46 for k in range(3)]
    ring = loop_ring(frames)
    import struct as _struct
    _struct.pack_into("=I", ring.view, ring.offsets[0], 0)           # the hole: slot 0 is the kernel's

    class Out:
        def __init__(self):
            self.sent = []

        def send(self, data, flags=0):
            self.sent.append(bytes(data))
            if len(self.sent) == 2:
                ref[0].stop = True
            return len(data)

    ps0, ps1 = LoopPS("eth0", True), LoopPS("eth1", False)
    out, ref = Out(), [None]
    w = Worker([_Port("eth0", ps0, ring, "ips", out), _Port("eth1", ps1, loop_ring([]), "ips", ps0)],
               ForwardAll(), Config(inspect_time_limit=0.0), Conn())
    ref[0] = w
    try:
        w.run()
    finally:
        ps0.close()
        ps1.close()
    c = w.ports[0].counters
    assert c.ring_holes == 1 and out.sent == frames[1:] and w.ports[0].stalled_since == 0.0


# ------------------------------------------------------------------ the process entry point
@pytest.fixture
def own_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_worker_main_closes_foreign_fds_runs_until_sigterm_and_reopens_on_sighup(tmp_path, monkeypatch, own_signals):
    import os

    from bridge.worker import worker_main
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (0, 0))
    a = FilePS(tmp_path / "a", "eth2")
    spec = WorkerSpec(index=1, label="eth2", slot=0, sockets=[a], ports=[PortSpec(0, None, None)])
    r, w_ = os.pipe()

    class SignalOnReady(Conn):
        def send(self, msg):
            super().send(msg)
            if msg[0] == "ready":
                assert signal.getsignal(signal.SIGUSR2) == signal.SIG_IGN
                os.kill(os.getpid(), signal.SIGHUP)     # the loop reopens EVE, then SIGTERM stops it

    conn = SignalOnReady()
    reopened = []

    class Exited(BaseException):
        pass

    def no_exit(code):                                 # a running worker never leaves through os._exit
        raise Exited(code)

    from bridge import worker as worker_mod
    monkeypatch.setattr(worker_mod.os, "_exit", no_exit)

    def reopen(self):
        reopened.append(self.index)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Worker, "reopen_eve", reopen)
    try:
        worker_main(spec, Config(inspect_time_limit=0.0), conn, [w_], ctl=None)
        assert os.read(r, 1) == b""                   # the other workers' sockets are closed: EOF
    finally:
        a.f.close()
        os.close(r)
    assert [m[0] for m in conn.sent] == ["ready", "final"] and conn.sent[0][1] == 1
    assert reopened == [1]


def test_worker_main_reports_a_setup_failure_and_exits_3(monkeypatch, own_signals):
    import os

    from bridge import worker as worker_mod
    from bridge.worker import worker_main

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(worker_mod.os, "_exit", fake_exit)

    class Broken:
        iface, sock = "eth9", None
        geometry = afp.RingGeometry(afp.TPACKET_V2, 4096, 1, 2048, 2)

        def fileno(self):
            return 999_999                            # no such descriptor: mapping the ring fails

    spec = WorkerSpec(index=4, label="eth9", slot=0, sockets=[Broken()], ports=[PortSpec(0, None, None)])
    conn = Conn()
    with pytest.raises(Exited) as info:
        worker_main(spec, Config(), conn, [])
    assert info.value.args == (3,)
    (msg,) = conn.sent
    assert msg[0] == "error" and msg[1] == 4 and msg[2] == os.getpid() and msg[3]


def test_worker_main_exits_at_once_on_sigterm_before_the_worker_exists(monkeypatch, own_signals):
    import os

    from bridge import worker as worker_mod
    from bridge.worker import worker_main

    class Exited(BaseException):                      # os._exit leaves at once: no except clause sees it
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(worker_mod.os, "_exit", fake_exit)

    def slow_setup(spec, config, conn, ctl=None):
        os.kill(os.getpid(), signal.SIGTERM)          # the supervisor stops us while we set up
        raise AssertionError("not reached")

    monkeypatch.setattr(Worker, "from_spec", classmethod(lambda cls, *a, **k: slow_setup(*a, **k)))
    conn = Conn()
    with pytest.raises(Exited) as info:
        worker_main(WorkerSpec(index=0, label="x", slot=0, sockets=[], ports=[]), Config(), conn, [])
    assert info.value.args == (0,) and conn.sent == []
