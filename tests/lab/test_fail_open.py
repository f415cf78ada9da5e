"""Fail-open (`--fail-open`, `ipsbridge: fail-open: yes`) on the live bridge.

When inspection stops -- the whole process tree killed with SIGKILL, or a worker that
stops reporting -- the tc program on each port forwards every frame to its peer
within about a second (the heartbeat goes stale after 1 s), and the socket filter
keeps those frames out of the rings.  When inspection comes back (a new bridge, the
worker resumes), frames go to the workers again, with no duplicates.  Without
fail-open, a killed bridge forwards nothing.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from netnslab import SERVER4, TcpTransfer

RULES = 'alert icmp any any -> any any (msg:"ping"; itype:8; sid:77;)\n'


def wait_for(cond, timeout: float = 20.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def pinger(lab, count: int, interval: float = 0.05) -> subprocess.Popen:
    return lab.spawn("client", "ping", "-n", "-i", str(interval), "-c", str(count), "-W", "1", SERVER4,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ping_result(proc: subprocess.Popen) -> tuple[int, int, str]:
    out, _ = proc.communicate(timeout=120)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)), int(m.group(2)), out


def kill_tree(bridge) -> None:
    """SIGKILL the supervisor and every worker at once: nothing gets to clean up."""
    (ready,) = bridge.events("ready")
    for pid in [bridge.pid, *ready["pids"]]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    bridge.proc.wait(timeout=10)


def test_traffic_keeps_flowing_across_a_sigkill_of_the_whole_bridge_and_returns_to_the_workers(lab):
    rules = lab.write("r.rules", RULES)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--fail-open", "--stats-interval", "0")
    assert bridge.events("fail_open_armed")
    transfer = TcpTransfer(lab, SERVER4, 30_000_000, rate=5_000_000)     # about 6 s
    ping = pinger(lab, 160)                                              # about 8 s
    time.sleep(2.0)
    kill_tree(bridge)
    sent, received = transfer.result(timeout=120)
    assert sent == received                                              # intact across the kill
    transmitted, got, out = ping_result(ping)
    assert transmitted - got <= 30, out                                  # at most about 1.5 s of pings lost
    # nobody inspects now: the kernel forwards
    assert lab.ping("client", SERVER4, count=3, interval=0.2).returncode == 0
    # inspection comes back: a new bridge takes over without a gap and without duplicates
    ping = pinger(lab, 120)
    time.sleep(1.0)
    again = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--fail-open", "--stats-interval", "0")
    assert len(again.events("stale_offload_removed")) >= 2, again.log()
    transmitted, got, out = ping_result(ping)
    assert "DUP!" not in out, out
    missing = sorted(set(range(1, transmitted + 1)) - {int(x) for x in re.findall(r"icmp_seq=(\d+)", out)})
    assert transmitted - got <= 2, (missing, again.log()[-4000:])
    totals = again.stop()
    assert totals["interfaces"]["eth0"]["forwarded"] > 0                 # the workers had the frames again
    assert totals["inspector"]["alerts"] > 0


def test_without_fail_open_a_killed_bridge_forwards_nothing(lab):
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    assert lab.ping("client", SERVER4, count=2, interval=0.2).returncode == 0
    kill_tree(bridge)
    time.sleep(1.5)
    assert lab.ping("client", SERVER4, count=3, interval=0.2, check=False).returncode != 0


def test_a_hung_worker_fails_open_and_inspection_resumes_when_it_does(lab):
    rules = lab.write("r.rules", RULES)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--fail-open", "--stats-interval", "0")
    pids = bridge.pause_workers()                                        # SIGSTOP: no reports, no forwarding
    try:
        assert wait_for(lambda: bridge.events("fail_open") != [], 10), bridge.log()
        assert lab.ping("client", SERVER4, count=5, interval=0.2).returncode == 0   # the kernel forwards
    finally:
        bridge.resume_workers(pids)
    assert wait_for(lambda: bridge.events("fail_open_ended") != [], 10), bridge.log()
    (ended,) = bridge.events("fail_open_ended")
    assert ended["seconds"] > 0
    ping = pinger(lab, 20, 0.1)
    transmitted, got, out = ping_result(ping)
    assert got == transmitted and "DUP!" not in out, out
    totals = bridge.stop()
    assert totals["inspector"]["alerts"] >= 20                           # inspected again after the hang
    assert totals["inspector"]["failopen.frames"] > 0                    # what the kernel forwarded, counted


def test_check_says_whether_fail_open_is_armed(lab):
    import sys

    from netnslab import REPO

    def check(*argv):
        return lab.run("bridge", sys.executable, "-m", "bridge", "check", *argv, check=False, timeout=60,
                       cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)})

    off = check("--bridge", "eth0:eth1")
    assert "fail-open: off" in off.stdout, off.stdout
    conf = lab.write("fo.yaml", "af-packet:\n"
                                "  - {interface: eth0, copy-mode: ips, copy-iface: eth1}\n"
                                "  - {interface: eth1, copy-mode: ips, copy-iface: eth0}\n"
                                "ipsbridge:\n  fail-open: yes\n")
    on = check("-c", str(conf))
    assert "fail-open: armed at start: the kernel forwards eth0->eth1, eth1->eth0" in on.stdout, on.stdout
