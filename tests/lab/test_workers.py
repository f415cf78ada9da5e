"""Multi-worker pinning: with N workers per interface (fanout cluster_flow on
both eth0 and eth1, joined in the same order), every flow -- both directions --
is inspected by exactly one worker process, and the flows are spread over more
than one worker.

A recording verdict hook (tests.lab.flowhooks:record_flows) writes, per worker
PID, which flow it saw on which interface; many UDP request/response flows with
distinct source ports (IPv4 and IPv6) cross the bridge.

Also: a worker whose ring overflowed under a flood forwards again as soon as
the flood stops.
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from tests.lab.flowhooks import flow_key
from netnslab import CLIENT4, CLIENT6, SERVER4, SERVER6, finish, spawn_listener

pytestmark = pytest.mark.lab

SERVER_PORT = 7100

ECHO_SERVER = r"""
import select, socket, sys
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s4.bind((sys.argv[1], int(sys.argv[3])))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s6.bind((sys.argv[2], int(sys.argv[3])))
expected = int(sys.argv[4])
print("listening", flush=True)
n = 0
while n < expected:                  # every request answered, or 60 s without one (a loss)
    r, _, _ = select.select([s4, s6], [], [], 60)
    if not r:
        break
    for s in r:
        data, peer = s.recvfrom(2048)
        s.sendto(b"re:" + data, peer); n += 1
print(n, flush=True)
"""

CLIENTS = r"""
import select, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
src, dst, port, flows, rounds, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
socks = []
for i in range(flows):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((src, base + i)); s.settimeout(5)
    socks.append(s)
answered = 0
for r in range(rounds):
    for i, s in enumerate(socks):
        s.sendto(b"flow %d round %d" % (i, r), (dst, port))
    for i, s in enumerate(socks):
        try:
            if s.recv(2048) == b"re:flow %d round %d" % (i, r):
                answered += 1
        except socket.timeout:
            pass
print(answered, flush=True)
"""


def read_flow_logs(directory) -> dict[int, dict[str, dict[str, int]]]:
    logs = {}
    for name in os.listdir(directory):
        if name.startswith("flows-") and name.endswith(".json"):
            with open(os.path.join(directory, name)) as fh:
                obj = json.load(fh)
            logs[obj["pid"]] = obj["flows"]
    return logs


@pytest.mark.parametrize("threads", [2, 4])
def test_every_flow_pinned_to_one_worker(lab, tmp_path, monkeypatch, threads):
    flows4, flows6, rounds = 64, 16, 4
    logdir = tmp_path / "flows"
    logdir.mkdir()
    monkeypatch.setenv("IPSB_FLOWLOG_DIR", str(logdir))
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--threads", str(threads),
                              "--stats-interval", "0", "--verdict-hook", "tests.lab.flowhooks:record_flows")
    server = spawn_listener(lab, "server", ECHO_SERVER, SERVER4, SERVER6, str(SERVER_PORT),
                            str((flows4 + flows6) * rounds))
    ans4 = lab.python("client", CLIENTS, CLIENT4, SERVER4, str(SERVER_PORT), str(flows4), str(rounds), "41000")
    ans6 = lab.python("client", CLIENTS, CLIENT6, SERVER6, str(SERVER_PORT), str(flows6), str(rounds), "42000")
    echoed = int(finish(server))
    totals = bridge.stop()

    assert int(ans4.stdout) == flows4 * rounds, "IPv4 requests without an answer"
    assert int(ans6.stdout) == flows6 * rounds, "IPv6 requests without an answer"
    assert echoed == (flows4 + flows6) * rounds

    worker_pids = {w["pid"] for w in totals["workers"]}
    assert len(worker_pids) == threads, totals["workers"]
    logs = read_flow_logs(logdir)
    assert set(logs) <= worker_pids, (set(logs), worker_pids)

    expected = {netnslab_flow(CLIENT4, 41000 + i, SERVER4) for i in range(flows4)}
    expected |= {netnslab_flow(CLIENT6, 42000 + i, SERVER6) for i in range(flows6)}
    owners: dict[str, set[int]] = {key: set() for key in expected}
    for pid, flows in logs.items():
        for key, per_iface in flows.items():
            if key in owners:
                owners[key].add(pid)
    split = {k: sorted(v) for k, v in owners.items() if len(v) != 1}
    assert not split, f"flows seen by zero or several workers: {split}"
    for pid, flows in logs.items():
        for key in expected & set(flows):
            # both directions on the one owner: requests on eth0, answers on eth1, all of them
            assert flows[key] == {"eth0": rounds, "eth1": rounds}, (pid, key, flows[key])
    busy = {next(iter(v)) for v in owners.values()}
    assert len(busy) > 1, f"all {len(expected)} flows landed on one worker out of {threads}"


def netnslab_flow(client: str, sport: int, server: str) -> str:
    return flow_key(17, ipaddress.ip_address(client).packed, sport,
                    ipaddress.ip_address(server).packed, SERVER_PORT)


FLOOD = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 9))              # discard port: nobody listens, the server answers nothing
end, n, told = time.monotonic() + float(sys.argv[2]), 0, False
while time.monotonic() < end:
    for _ in range(256):
        try:
            s.send(b"x" * 18); n += 1     # 64-byte frames
        except OSError:
            pass
    if not told and n >= 4 * 2048:       # four rings' worth (ring-size 2048) sent
        print("overflowing", flush=True); told = True
print(n, flush=True)
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_forwarding_resumes_after_ring_overflow(lab, threads):
    """A flood of 64-byte frames faster than the workers can drain overflows the
    rings (kernel_drops, counted).  Once it stops, the next frames must be
    forwarded at once: the worker's ring position must stay in step with the
    kernel's however many frames the kernel dropped."""
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--threads", str(threads), "--stats-interval", "0")
    lab.ping("client", SERVER4, count=2)
    # On a busy 2-core box the workers could drain the flood as fast as the
    # starved sender made it (kernel_drops 0: the premise not met).  Hold them
    # while the first frames go in, so the rings overflow for sure, then let
    # them run against the rest of the flood.
    paused = bridge.pause_workers()
    try:
        sender = lab.spawn("client", sys.executable, "-c", FLOOD, SERVER4, "3", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        line = sender.stdout.readline()
    finally:
        bridge.resume_workers(paused)
    assert line.strip() == "overflowing", (line, sender.stderr.read())
    finish(sender, timeout=60)
    after = lab.ping("client", SERVER4, count=5, interval=0.2, check=False)
    totals = bridge.stop()
    eth0 = totals["interfaces"]["eth0"]
    assert eth0["kernel_drops"] > 0, f"the flood did not overflow the ring: {eth0}"
    assert "5 packets transmitted, 5 received" in after.stdout, (
        f"no forwarding after the ring overflowed: {after.stdout.splitlines()[-2:]} "
        f"eth0 received={eth0['received']} kernel_packets={eth0['kernel_packets']} "
        f"kernel_drops={eth0['kernel_drops']} (frames the kernel queued that the worker never read: "
        f"{eth0['kernel_packets'] - eth0['kernel_drops'] - eth0['received'] - eth0['ignored_outgoing']})")
    assert eth0["received"] == eth0["forwarded"]
