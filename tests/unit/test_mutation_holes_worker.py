"""bridge.worker behaviour the mutation run (tests/bench/mutation.py) found unchecked by
the worker suites: counters that must add up over several drains, a drop result without
a reason, a payload the engine normalized, frame time to the nanosecond, the ForwardAll
shortcut's count, the watchdog's batch counter and timer, the pass-only kernel offload,
tick without a fast path, plain sends and their retries, EVE failures (retry time and
log rate), supervisor commands and the stats report.  Rings on byte buffers, fake
sockets; no kernel."""
from __future__ import annotations

import errno
import signal
import sys
import select as _select

import pytest

from bridge import afpacket as afp
from bridge import worker as worker_mod
from bridge.ring import BATCH_FRAMES, SLL_PKTTYPE_V2, V2_HDR, V2Ring
from bridge.stats import Counters
from bridge.worker import EVE_RETRY, Watchdog, Worker, _PassOnly, _Port
from conf.model import Config
from rules.api import FORWARD, Bypass, ForwardAll, InspectTimeout, Result, Verdict

DST_SRC = bytes.fromhex("020000000002" "020000000001")


def frame(k: int, n: int = 60) -> bytes:
    return DST_SRC + b"\x08\x00" + bytes([k % 256]) * (n - 14)


def ring(frames, nslots=256, nsec=0):
    fs = 256
    g = afp.RingGeometry(afp.TPACKET_V2, 16 * fs, -(-nslots // 16), fs, nslots)
    r = V2Ring(memoryview(bytearray(g.size)), g)
    for i, data in enumerate(frames):
        off = r.offsets[i]
        V2_HDR.pack_into(r.view, off, afp.TP_STATUS_USER, len(data), len(data), 80, 94, 1700000000 + i, nsec, 0, 0)
        r.view[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        r.view[off + 80:off + 80 + len(data)] = data
    return r


class Sock:
    def __init__(self, fail=()):
        self.sent: list[bytes] = []
        self.fail = list(fail)          # errnos raised by the next sends, in turn
        self.calls = 0

    def send(self, data, flags=0):
        self.calls += 1
        if self.fail:
            code = self.fail.pop(0)
            if code:
                raise OSError(code, "fake")
        self.sent.append(bytes(data))
        return len(data)

    def fileno(self):
        return -1


class PS:
    def __init__(self, iface, sock=None):
        self.iface, self.sock, self.ignore_outgoing = iface, sock or Sock(), True


class By:
    """An inspector answering each frame by its number: `results[k]` or FORWARD."""

    def __init__(self, results=None, raises=()):
        self.results, self.raises = results or {}, set(raises)
        self.ticks: list[float] = []

    def inspect(self, data, meta):
        k = bytes(data)[20]
        if k in self.raises:
            raise RuntimeError("bug")
        return self.results.get(k, FORWARD)

    def tick(self, now):
        self.ticks.append(now)
        return ()

    def stats(self):
        return {"engine.x": 1}


def worker(frames, inspector, mode="ips", **kw):
    out = Sock()
    port = _Port("eth0", PS("eth0"), ring(frames, **kw), mode, out)
    other = _Port("eth1", PS("eth1", out), ring([], 16), mode, port.ps.sock)
    return Worker([port, other], inspector, Config()), port, out


def refill(port, frames, nsec=0):
    port.ring = ring(frames, nsec=nsec)


@pytest.fixture(autouse=True)
def no_wait(monkeypatch):
    class NoPoll:
        def register(self, *a):
            pass

        def poll(self, *a):
            return []

    monkeypatch.setattr(_select, "poll", NoPoll)
    monkeypatch.setattr("bridge.worker._c_wait_pass", None)   # (its wait is poll() in C)


# ------------------------------------------------------------------ drain
def test_counters_add_up_over_drains():
    w, port, out = worker([frame(k) for k in range(3)], By(raises={1}))
    w.drain(port)
    refill(port, [frame(k) for k in range(4)])
    w.drain(port)
    c = port.counters
    assert (c.received, c.inspected, c.forwarded, c.inspector_errors) == (7, 7, 7, 2)


def test_a_drop_without_a_reason_counts_as_rule():
    w, port, out = worker([frame(0), frame(1)], By({1: Result(Verdict.DROP)}))
    w.drain(port)
    assert port.counters.dropped == {"rule": 1} and out.sent == [frame(0)]


@pytest.mark.parametrize("mode,new,forwarded,normalized", [
    ("ips", frame(9), frame(9), 1),
    ("ips", frame(9, 61), frame(1), 0),           # another length: never written into the ring
    ("tap", frame(9), frame(1), 0),               # a tap forwards what it saw
], ids=["ips-same-length", "ips-other-length", "tap"])
def test_a_normalized_payload_is_what_goes_out_inline(mode, new, forwarded, normalized):
    w, port, out = worker([frame(1)], By({1: Result(Verdict.FORWARD, frame=new)}), mode=mode)
    w.drain(port)
    assert out.sent == [forwarded] and port.counters.normalized == normalized


def test_frame_time_keeps_the_nanoseconds():
    w, port, _ = worker([frame(1)], By(), nsec=250_000_000)
    w.drain(port)
    assert w.last_ts == pytest.approx(1700000000.25, abs=1e-6)


def test_forward_all_counts_every_frame_over_drains():
    fa = ForwardAll()
    w, port, out = worker([frame(k) for k in range(5)], fa)
    w.drain(port)
    refill(port, [frame(k) for k in range(2)])
    w.drain(port)
    assert fa.seen == 7 and port.counters.inspected == 7 and len(out.sent) == 7


def test_the_watchdog_counts_batches():
    w, port, _ = worker([frame(k) for k in range(BATCH_FRAMES + 1)], By())
    w.watchdog = Watchdog(100.0, By.inspect.__code__)
    w.drain(port)
    assert w.watchdog.batch == 2
    refill(port, [frame(0)])
    w.drain(port)
    assert w.watchdog.batch == 3


# ------------------------------------------------------------------ the watchdog
def test_the_watchdog_timer_ticks_every_half_limit_until_stopped():
    wd = Watchdog(200.0, By.inspect.__code__)
    old = signal.getsignal(signal.SIGALRM)
    try:
        wd.start()
        first, every = signal.getitimer(signal.ITIMER_REAL)
        assert 99.0 < first <= 100.0 and every == 100.0
        wd.stop()
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_the_watchdog_fires_on_the_second_strike_of_one_batch():
    def inspecting(wd):
        wd.tick(signal.SIGALRM, sys._getframe())

    wd = Watchdog(1.0, inspecting.__code__)
    inspecting(wd)                               # the batch is seen
    inspecting(wd)                               # one strike
    with pytest.raises(InspectTimeout):
        inspecting(wd)
    assert (wd.fired, wd.strikes) == (1, 0)
    wd.tick(signal.SIGALRM, sys._getframe())     # not inspecting: forget
    assert (wd.seen, wd.strikes) == (-1, 0)


# ------------------------------------------------------------------ the rest of the worker
def test_the_kernel_offload_takes_pass_flows_only():
    calls = []

    class Kernel:
        def add(self, *a):
            calls.append(a[-2])
            return True

        def stats(self):
            return {"k": 1}

    po = _PassOnly(Kernel())
    assert po.add(1, 4, 17, 0, 1, 2, 3, 4, "drop", 0) is False and calls == []
    assert po.add(1, 4, 17, 0, 1, 2, 3, 4, "pass", 0) is True and calls == ["pass"]
    assert po.stats() == {"k": 1}


def test_tick_without_a_fast_path_reaches_the_inspector():
    insp = By()
    w, port, _ = worker([frame(1)], insp)
    assert w.fast is None
    w.drain(port)
    w.tick(w.last_ts_mono + 2.0)
    assert insp.ticks == [pytest.approx(w.last_ts + 2.0)] and port.counters.inspector_errors == 0


def test_send_any_without_a_tx_ring_sends_the_frame():
    w, port, out = worker([], By())
    s = Sock()
    assert w.send_any(s, b"frame-bytes", Counters()) == 0 and s.sent == [b"frame-bytes"]


@pytest.mark.parametrize("fail,code,calls", [
    ((errno.ENOBUFS, errno.EAGAIN), 0, 3),                      # retried, then out
    ((errno.ENOBUFS,) * 5, errno.ENOBUFS, 3),                   # SEND_TRIES attempts at most
    ((errno.ENETDOWN,), errno.ENETDOWN, 1),                     # not worth a retry
], ids=["transient", "persistent", "fatal"])
def test_plain_send_retries_only_what_is_worth_it(fail, code, calls):
    s = Sock(fail)
    assert Worker.send(s, b"x") == code and s.calls == calls


def test_plain_send_counts_the_callers_attempt():
    s = Sock([errno.ENOBUFS, errno.ENOBUFS])
    assert Worker.send(s, b"x", errno.ENOBUFS) == errno.ENOBUFS and s.calls == 2
    assert Worker.send(Sock(), b"x", errno.ENETDOWN) == errno.ENETDOWN


class Log:
    def __init__(self):
        self.lines: list[tuple] = []

    def warning(self, event, **kw):
        self.lines.append((event, kw))

    def info(self, event, **kw):
        self.lines.append((event, kw))


def test_an_eve_failure_waits_before_the_next_try_and_logs_sparingly(monkeypatch):
    w, port, _ = worker([], By())
    w.config = Config(eve_log="/nonexistent/dir/eve.json")
    w.log = Log()
    now = [1000.0]
    monkeypatch.setattr(worker_mod.time, "monotonic", lambda: now[0])
    w.write_events(["a", "b"])
    assert (w.eve_errors, w.eve_lost, w.eve_retry_at) == (1, 2, 1000.0 + EVE_RETRY)
    w.write_events(["c"])                              # inside the wait: lost, not tried
    assert (w.eve_errors, w.eve_lost) == (1, 3)
    event, kw = w.log.lines[0]
    assert event == "eve_write_failed" and kw["errors"] == 1 and kw["events_lost"] == 2 and kw["error"]
    for k in range(2, 2001):
        w._eve_failed(OSError(errno.ENOSPC, "full"), 0, 0.0)
    assert [kw["errors"] for _, kw in w.log.lines] == [1, 10, 100, 1000, 2000]
    w.reopen_eve()
    assert w.eve_retry_at == 0.0 and w.log.lines[-1] == ("eve_reopened", {"path": "/nonexistent/dir/eve.json"})


def test_a_reload_command_starts_a_reload_of_that_generation():
    class Ctl:
        def __init__(self, msgs):
            self.msgs = list(msgs)

        def poll(self):
            return bool(self.msgs)

        def recv(self):
            return self.msgs.pop(0)

    w, port, _ = worker([], By())
    got = []
    w.start_reload = lambda gen, cfg: got.append((gen, cfg))
    w.ctl = Ctl([("reload", 7, "config-7"), ("other",), ("reload", 8, "config-8")])
    assert w.control() is False and got == [(7, "config-7"), (8, "config-8")]

    class Closed:
        def poll(self):
            raise EOFError

    w.ctl = Closed()
    assert w.control() is True


def test_the_report_sends_counters_inspector_stats_and_eve_counts(monkeypatch):
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (5, 1))
    sent = []

    class Conn:
        def send(self, msg):
            sent.append(msg)

    w, port, _ = worker([frame(1)], By())
    w.conn = Conn()
    w.config = Config(eve_log="/nonexistent/eve.json")
    w.eve_errors, w.eve_lost = 2, 9
    w.drain(port)
    w.report("stats")
    (kind, index, pid, payload, insp, hits), = sent
    assert (kind, index) == ("stats", 0) and pid > 0 and hits == []
    assert payload["eth0"]["received"] == 1 and payload["eth0"]["kernel_packets"] == 5
    assert payload["eth0"]["kernel_drops"] == 1
    assert insp == {"engine.x": 1, "eve.errors": 2, "eve.events_lost": 9}


def test_a_fast_path_drop_in_ips_never_reaches_the_inspector_again():
    class Decide(By):
        def __init__(self):
            super().__init__()
            self.n = 0
            self.flow = object()

        def inspect(self, data, meta):
            self.n += 1
            return Result(Verdict.DROP, reason="rule", bypass=Bypass(self.flow, "drop", True, "drop"))

        def bypassed(self, *a):
            return True

    from scapy.all import IP, UDP, Ether
    f = bytes(Ether() / IP(src="198.51.100.1", dst="203.0.113.2") / UDP(sport=1, dport=2) / b"x")
    insp = Decide()
    w, port, out = worker([f] * 4, insp)
    w.drain(port)
    refill(port, [f] * 3)
    w.drain(port)
    c = port.counters
    assert insp.n == 1 and c.bypassed == 6 and c.inspected == 1 and c.dropped == {"rule": 1, "flow": 6}


def test_a_live_frame_has_no_pcap_number_and_no_tags():
    seen = []

    class Look(By):
        def inspect(self, data, meta):
            seen.append((meta.pcap_cnt, meta.vlan, meta.tpid, meta.iface))
            return FORWARD

    w, port, _ = worker([frame(1)], Look())
    w.drain(port)
    assert seen == [(0, (), (), "eth0")]


def test_finish_without_a_finish_method_is_no_error():
    class NoFinish:
        def inspect(self, data, meta):
            return FORWARD

        def tick(self, now):
            return ()

        def stats(self):
            return {}

    w, port, _ = worker([frame(1)], NoFinish())
    w.drain(port)
    w.finish()
    assert port.counters.inspector_errors == 0


def test_the_report_carries_the_fast_paths_counts_but_not_the_kernels(monkeypatch):
    monkeypatch.setattr(afp, "read_statistics", lambda sock: (0, 0))
    sent = []

    class Conn:
        def send(self, msg):
            sent.append(msg)

    class Decide(By):
        def inspect(self, data, meta):
            return Result(Verdict.FORWARD, bypass=Bypass(object(), "pass", True, "pass"))

        def bypassed(self, *a):
            return True

    w, port, _ = worker([frame(1)], Decide())
    w.conn = Conn()
    w.fast.stats = lambda: {"bypass.active": 1, "bypass.kernel.entries": 9}
    w.report("stats")
    insp = sent[0][4]
    assert insp["bypass.active"] == 1 and "bypass.kernel.entries" not in insp
