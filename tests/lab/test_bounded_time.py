"""Bounded inspection time, on the live bridge.

A ReDoS-shaped rule under its trigger traffic costs microseconds per packet (PCRE2 with
Suricata's match limits), so the other flows keep their latency; a frame that holds the
inspector in a Python loop is stopped by the worker's watchdog within the time limit,
and the worker goes on.
"""
from __future__ import annotations

import re
import subprocess

from netnslab import SERVER4

SEND = r"""
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"a" * 60 + b"!"
for i in range(n):
    s.sendto(payload, (host, 7777))
    if i % 20 == 19:
        time.sleep(0.002)
"""


def rtts(out: str) -> list[float]:
    return sorted(float(x) for x in re.findall(r"time=([\d.]+) ms", out))


def test_a_redos_rule_under_its_trigger_traffic_leaves_other_flows_their_latency(lab):
    rules = lab.write("redos.rules", 'drop udp any any -> any 7777 (msg:"redos"; pcre:"/(a+)+$/"; sid:31337;)\n'
                                     'alert icmp any any -> any any (msg:"ping"; itype:8; sid:31338;)\n')
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--bypass", "off", "--stats-interval", "0")
    flood = lab.spawn("client", "python3", "-c", SEND, SERVER4, "20000",
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ping = lab.run("client", "ping", "-n", "-i", "0.01", "-c", "300", "-W", "1", SERVER4, timeout=60)
    flood.wait(timeout=60)
    times = rtts(ping.stdout)
    assert len(times) == 300, ping.stdout[-400:]
    p99 = times[int(len(times) * 0.99) - 1]
    assert p99 < 50.0, f"RTT p99 {p99} ms with the ReDoS traffic"
    totals = bridge.stop()
    assert totals["inspector"]["detect.pcre_limit_hits"] >= 1000      # the pattern was tried, and bounded
    assert totals["inspector"]["alerts"] >= 300


def test_a_frame_stuck_in_the_inspector_is_stopped_and_the_worker_goes_on(lab):
    conf = lab.write("stall.yaml", "af-packet:\n"
                                   "  - {interface: eth0, copy-mode: ips, copy-iface: eth1}\n"
                                   "  - {interface: eth1, copy-mode: ips, copy-iface: eth0}\n"
                                   "ipsbridge:\n  inspect-time-limit: 0.2\n"
                                   "  verdict-hook: tests.lab.hooks:staller\n")
    bridge = lab.start_bridge("-c", str(conf), "--stats-interval", "0")
    lab.python("client", "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
               "s.sendto(b'..STALL..', (sys.argv[1], 9))", SERVER4)
    ping = lab.ping("client", SERVER4, count=5, interval=0.2)        # the worker is free again
    assert ping.returncode == 0
    totals = bridge.stop()
    # the datagram, and the server's ICMP port-unreachable that quotes it (STALL and all)
    assert totals["inspector"]["worker.inspect_timeouts"] == 2
    assert totals["interfaces"]["eth0"]["inspector_errors"] == 1      # the hook is no engine: counted here
    assert totals["interfaces"]["eth1"]["inspector_errors"] == 1
    for c in totals["interfaces"].values():                           # and both frames were forwarded
        assert c["received"] == c["forwarded"]
