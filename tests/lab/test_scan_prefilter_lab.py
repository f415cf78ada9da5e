"""Lab test: prefiltered UDP directions (the fast path's own pattern scan) on a live bridge.

A UDP flow through the bridge, with a drop rule whose content only some datagrams hold:
the clean datagrams are passed by the worker's fast path on its scan alone (counted
`bypass.scan_frames`), the ones with the pattern go to the engine and are dropped; what
arrives is exactly the clean ones, each once, and the frame accounting adds up.  Real
namespaces, veth pairs and AF_PACKET sockets; never skipped.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from netnslab import SERVER4

pytestmark = pytest.mark.lab

RULES = 'drop udp any any -> any 7200 (msg:"evil datagram"; content:"EVIL-DGRAM"; sid:1;)\n'
# a transaction rule whose header takes any UDP flow (as ET Open's DNS rules): the flow to
# 7200 still gets the scan, once its direction refused every protocol on its first datagram
DNS_RULE = 'alert dns any any -> any any (msg:"evil query"; dns.query; content:"evil.example"; sid:2;)\n'

# n datagrams client:sport -> server:7200; every 10th holds the pattern
SENDER = r"""
import socket, sys, time
host, sport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", sport))
for i in range(n):
    s.sendto((b"EVIL-DGRAM %06d" if i % 10 == 9 else b"clean %06d") % i, (host, 7200))
    if i % 20 == 19:
        time.sleep(0.005)
"""

# Every datagram on port 7200 until told to stop (a line on stdin), one per line.
SINK = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], 7200))
print("listening", flush=True)
got = []
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 60)
    if s in r:
        got.append(s.recv(4096))
    elif r:
        while select.select([s], [], [], 0.3)[0]:
            got.append(s.recv(4096))
        break
for g in got:
    print(g.decode(), flush=True)
"""


def write_config(lab, name: str, rules, bypass: str):
    """A bridge eth0 <-> eth1 in ips mode with `bypass` on both interfaces and one rule file."""
    return lab.write(name, f"""af-packet:
  - interface: eth0
    copy-mode: ips
    copy-iface: eth1
    bypass: {bypass}
  - interface: eth1
    copy-mode: ips
    copy-iface: eth0
    bypass: {bypass}
rule-files: [{rules}]
""")


@pytest.mark.parametrize("dns_rule", [False, True], ids=["packet-rules", "with-a-dns-rule"])
@pytest.mark.parametrize("bypass", ["kernel", "user"])
def test_clean_datagrams_pass_on_the_scan_alone_and_pattern_ones_are_dropped(lab, bypass, dns_rule):
    rules = lab.write("scan.rules", RULES + (DNS_RULE if dns_rule else ""))
    config = write_config(lab, "scan.yaml", rules, bypass)
    bridge = lab.start_bridge("-c", str(config), "--stats-interval", "0")
    sink = lab.spawn("server", sys.executable, "-c", SINK, SERVER4, stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "listening"
    n = 2000
    lab.python("client", SENDER, SERVER4, "40300", str(n))
    lab.ping("client", SERVER4, count=1, check=False)        # a round trip after the last datagram
    out, _err = sink.communicate("stop\n", timeout=30)
    got = out.split("\n")[:-1]
    clean = [f"clean {i:06d}" for i in range(n) if i % 10 != 9]
    assert sorted(got) == clean                              # every clean one, once; no evil one
    totals = bridge.stop()
    insp = totals["inspector"]
    evil = n // 10
    assert insp["bypass.scan_installed"] >= 1 and insp["bypass.scan_hits"] == evil, insp
    # all but the datagrams before the offer (the first) went by on the scan alone
    assert insp["bypass.scan_frames"] >= len(clean) - 5, insp
    assert insp["bypass.prefiltered"] == insp["bypass.scan_frames"], insp
    assert insp["drops.rule"] == evil, insp
    eth0 = totals["interfaces"]["eth0"]
    assert eth0["dropped"].get("rule") == evil, eth0
    assert eth0["received"] == eth0["forwarded"] + sum(eth0["dropped"].values()) + sum(eth0["send_errors"].values())
    assert eth0["received"] == eth0["inspected"] + eth0["bypassed"], eth0


# Echo requests of one flow (id 0x4242), seq 0..n-1: "PINGMARK" in each, "EVILPING" in every
# 10th instead; each request waits up to 0.3 s for its reply.  Prints the seqs answered.
PINGER = r"""
import select, socket, struct, sys, time
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
got = []
for i in range(n):
    body = (b"EVILPING" if i % 10 == 9 else b"PINGMARK") + bytes(48)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(struct.pack("!BBHHH", 8, 0, 0, 0x4242, i) + body), 0x4242, i) + body,
             (host, 0))
    deadline = time.monotonic() + 0.3
    while (left := deadline - time.monotonic()) > 0 and select.select([s], [], [], left)[0]:
        data = s.recv(2048)
        t, _code, _c, ident, seq = struct.unpack_from("!BBHHH", data, (data[0] & 15) * 4)
        if t == 0 and ident == 0x4242:
            got.append(seq)
            if seq == i:
                break
print(" ".join(map(str, got)), flush=True)
"""
ECHO_RULES = ('alert icmp any any -> any any (msg:"marked ping"; itype:8; content:"PINGMARK"; sid:10;)\n'
              'drop icmp any any -> any any (msg:"evil ping"; itype:8; content:"EVILPING"; sid:11;)\n')


@pytest.mark.parametrize("bypass", ["user", "off"])
def test_echoes_only_alert_rules_match_leave_before_inspection_and_a_drop_rule_still_drops(lab, bypass):
    """An echo flow whose requests match an alert rule: with the fast path the ring walk
    forwards them before the engine inspects them (`bypass.scan_late`: no rule that could
    drop them can match, the drop rule's pattern is not in them); those holding the drop
    rule's pattern are inspected first and dropped (a payload match drops the packet, not
    the flow).  EVE is the same as with `bypass: off` (every frame inspected before it
    leaves): an alert per request, in order."""
    rules = lab.write("echo.rules", ECHO_RULES)
    eve = lab.workdir / f"eve-{bypass}.json"
    config = write_config(lab, f"echo-{bypass}.yaml", rules, bypass)
    bridge = lab.start_bridge("-c", str(config), "--stats-interval", "0", "--eve", str(eve))
    n = 20
    out = lab.python("client", PINGER, SERVER4, str(n)).stdout.split()
    assert [int(x) for x in out] == [i for i in range(n) if i % 10 != 9]     # every one but the evil ones
    totals = bridge.stop()
    records = [json.loads(line) for line in eve.read_text().splitlines()]
    alerts = [r["alert"]["signature_id"] for r in records if r["event_type"] == "alert"]
    assert alerts == ([10] * 9 + [11]) * 2, alerts
    drops = [r for r in records if r["event_type"] == "drop"]
    assert [(r["icmp_type"], r["drop"]["reason"]) for r in drops] == [(8, "rules")] * 2, drops
    insp = totals["inspector"]
    if bypass == "user":
        # requests 1-8 after the offer (a hit each), then 10-18 while backing off; the evil
        # ones are inspected before they go (their scan for drop rules finds the pattern)
        assert 1 <= insp["bypass.scan_late"] <= 17, insp
    else:
        assert "bypass.scan_late" not in insp, insp
    eth0 = totals["interfaces"]["eth0"]
    assert eth0["dropped"] == {"rule": 2}, eth0
    assert not eth0["would_drop"], eth0
    assert eth0["received"] == eth0["forwarded"] + sum(eth0["dropped"].values()) + sum(eth0["send_errors"].values())
    assert eth0["received"] == eth0["inspected"] + eth0["bypassed"], eth0
