"""Rule reload and the control socket, on the live bridge.

SIGUSR2, `ipsbridge reload` and the control socket's reload-rules re-read the
rule files while traffic flows; a reload with an invalid rule keeps the running
rules and says why; the control socket speaks Suricata's unix-command protocol
(the byte exchange suricatasc 7.0.10 makes) and `ipsbridge stats` prints the
live counters.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from netnslab import REPO, SERVER4, TcpTransfer

ALERT_ONLY = 'alert icmp any any -> any any (msg:"ping seen"; itype:8; sid:4242; rev:1;)\n'
DROP_PING = 'drop icmp any any -> any any (msg:"no ping"; itype:8; sid:4343; rev:1;)\n'


def wait_for(cond, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO))


def replies(lab, count: int = 3) -> int:
    out = lab.ping("client", SERVER4, count=count, interval=0.2, check=False).stdout
    for line in out.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    raise AssertionError(out)


def test_sigusr2_reloads_the_rules_and_a_new_drop_rule_takes_effect(lab):
    rules = lab.write("live.rules", ALERT_ONLY)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules),
                              "--unix-socket", str(lab.workdir / "ctl.sock"))
    assert replies(lab) == 3
    rules.write_text(ALERT_ONLY + DROP_PING)
    os.kill(bridge.pid, signal.SIGUSR2)
    assert wait_for(lambda: bridge.events("rules_reloaded") != []), bridge.log()
    (ev,) = bridge.events("rules_reloaded")
    assert ev["added"] == 1 and ev["removed"] == 0 and ev["added_sids"] == ["1:4343"]
    assert replies(lab) == 0                            # the new drop rule drops
    rules.write_text(ALERT_ONLY)                        # and a reload takes it away again
    os.kill(bridge.pid, signal.SIGUSR2)
    assert wait_for(lambda: len(bridge.events("rules_reloaded")) == 2), bridge.log()
    assert bridge.events("rules_reloaded")[1]["removed_sids"] == ["1:4343"]
    assert replies(lab) == 3
    assert bridge.proc.poll() is None
    totals = bridge.stop()
    assert totals["inspector"]["rules.reloads"] == 2
    assert totals["interfaces"]["eth0"]["dropped"].get("rule", 0) >= 3


def test_a_reload_with_an_invalid_rule_keeps_the_running_rules(lab):
    rules = lab.write("live.rules", DROP_PING)
    sock = str(lab.workdir / "ctl.sock")
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--unix-socket", sock)
    assert replies(lab, 2) == 0
    rules.write_text(DROP_PING + 'drop icmp any any -> any any (msg:"typo"; itpye:8; sid:4444;)\n')
    r = cli("reload", "--unix-socket", sock)
    assert r.returncode == 1, r
    assert "the running rules stay" in r.stderr and f"{rules}:2" in r.stderr and "itpye" in r.stderr, r.stderr
    assert replies(lab, 2) == 0                         # still the old rule set: pings dropped
    assert bridge.events("reload_failed") and not bridge.events("rules_reloaded")
    rules.write_text(ALERT_ONLY)                        # fixed: this one goes through
    r = cli("reload", "--unix-socket", sock)
    assert r.returncode == 0 and r.stdout.strip() == "reloaded", r
    assert replies(lab, 2) == 2
    bridge.stop()


def _exchange(sock_path: str, *commands: dict) -> list[dict]:
    """The byte exchange suricatasc makes: the version object without a newline, then one
    command per line; every answer is a JSON object ending with a newline."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    buf = b""
    out = []

    def answer():
        nonlocal buf
        while b"\n" not in buf:
            data = s.recv(4096)
            assert data, "connection closed"
            buf += data
        line, _, buf = buf.partition(b"\n")
        return json.loads(line)

    s.send(json.dumps({"version": "0.2"}).encode())
    out.append(answer())
    for c in commands:
        s.send((json.dumps(c) + "\n").encode())
        out.append(answer())
    s.close()
    return out


def test_the_control_socket_speaks_suricatas_protocol(lab):
    rules = lab.write("live.rules", ALERT_ONLY)
    sock = str(lab.workdir / "ctl.sock")
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--unix-socket", sock)
    assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
    assert replies(lab, 3) == 3
    time.sleep(1.5)                                      # a worker stats report (about once a second)
    hello, cmds, ifaces, stat, bad_iface, version, unknown, counters = _exchange(
        sock, {"command": "command-list"}, {"command": "iface-list"},
        {"command": "iface-stat", "arguments": {"iface": "eth0"}},
        {"command": "iface-stat", "arguments": {"iface": "nope"}},
        {"command": "version"}, {"command": "no-such-command"}, {"command": "dump-counters"})
    assert hello == {"return": "OK"}
    assert {"reload-rules", "ruleset-reload-nonblocking", "iface-stat", "dump-counters", "shutdown"} <= \
        set(cmds["message"]["commands"])
    assert ifaces == {"return": "OK", "message": {"count": 2, "ifaces": ["eth0", "eth1"]}}
    assert stat["return"] == "OK" and stat["message"]["pkts"] >= 3 and stat["message"]["drop"] == 0
    assert set(stat["message"]) == {"pkts", "drop", "invalid-checksums", "bypassed"}
    assert bad_iface == {"return": "NOK", "message": "Iface does not exist"}
    assert version["return"] == "OK" and version["message"].startswith("ipsbridge ")
    assert unknown["return"] == "NOK"
    c = counters["message"]
    assert c["interfaces"]["eth0"]["received"] >= 3 and c["uptime"] >= 1
    assert c["rules"]["top"][0]["sid"] == 4242 and c["rules"]["top"][0]["hits"] >= 3

    r = cli("stats", "--unix-socket", sock)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("uptime: ")
    eth0 = next(line.split() for line in lines if line.startswith("eth0"))
    assert eth0[1] == "ips" and int(eth0[2]) >= 3        # received
    assert any(line.split()[:1] == ["4242"] for line in lines), r.stdout
    r = cli("stats", "--json", "--unix-socket", sock)
    assert json.loads(r.stdout)["interfaces"]["eth1"]["mode"] == "ips"

    (shut,) = _exchange(sock, {"command": "shutdown"})[1:]
    assert shut["return"] == "OK"
    bridge.proc.wait(timeout=20)
    assert bridge.proc.returncode == 0
    assert not os.path.exists(sock)                     # removed on the way out


def test_a_client_that_sends_garbage_gets_nok_and_the_bridge_goes_on(lab):
    sock = str(lab.workdir / "ctl.sock")
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--unix-socket", sock)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock)
    s.send(b"this is not json}\n")
    reply = json.loads(s.recv(4096).split(b"\n")[0])
    assert reply["return"] == "NOK"
    assert s.recv(4096) == b""                          # and the connection is closed
    s.close()
    assert _exchange(sock, {"command": "uptime"})[1]["return"] == "OK"
    assert bridge.proc.poll() is None
    bridge.stop()


def test_reload_and_stats_say_clearly_when_no_bridge_listens(tmp_path):
    r = cli("reload", "--unix-socket", str(tmp_path / "none.sock"))
    assert r.returncode == 2 and "no such socket" in r.stderr, r
    r = cli("stats", "--unix-socket", str(tmp_path / "none.sock"))
    assert r.returncode == 2 and "no such socket" in r.stderr, r


def test_twenty_reloads_under_load_lose_nothing(lab):
    """A TCP transfer and a ping flood through the bridge while the rules are reloaded 20
    times: every frame is accounted for, none lost in the kernel, the transfer arrives
    intact, and a drop rule the last reload adds drops pings within a second."""
    rules = lab.write("live.rules", ALERT_ONLY)
    sock = str(lab.workdir / "ctl.sock")
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--unix-socket", sock)
    transfer = TcpTransfer(lab, SERVER4, 40_000_000, rate=20_000_000)
    flood = lab.spawn("client", "ping", "-n", "-q", "-i", "0.002", "-c", "2500", SERVER4,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for i in range(20):
        extra = f'alert tcp any any -> any any (msg:"gen {i}"; content:"gen{i}"; sid:{9000 + i};)\n'
        rules.write_text(ALERT_ONLY + extra)
        r = cli("reload", "--unix-socket", sock)
        assert r.returncode == 0, (i, r.stdout, r.stderr, bridge.log()[-2000:])
    sent, received = transfer.result(timeout=180)
    assert sent == received
    out, _ = flood.communicate(timeout=60)
    assert " 0% packet loss" in out, out
    rules.write_text(ALERT_ONLY + DROP_PING)
    t0 = time.monotonic()
    assert cli("reload", "--unix-socket", sock).returncode == 0
    assert time.monotonic() - t0 < 1.0 or replies(lab, 2) == 0
    assert replies(lab, 2) == 0
    totals = bridge.stop()
    assert totals["inspector"]["rules.reloads"] == 21
    for name, c in totals["interfaces"].items():
        dropped = sum(c["dropped"].values())
        errors = sum(c["send_errors"].values())
        assert c["received"] == c["forwarded"] + dropped + errors, (name, c)
        assert c["kernel_drops"] == 0, (name, c)


def test_eve_gets_a_stats_record_at_every_stats_interval(lab):
    rules = lab.write("live.rules", ALERT_ONLY)
    eve = lab.workdir / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--eve", str(eve),
                              "--stats-interval", "1", "--unix-socket", str(lab.workdir / "ctl.sock"))
    assert replies(lab, 3) == 3

    def stats_records():
        try:
            lines = eve.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(x) for x in lines if '"event_type":"stats"' in x]

    assert wait_for(lambda: any(r["stats"]["detect"]["alert"] >= 3 for r in stats_records()), 15), bridge.log()
    rec = stats_records()[-1]
    st = rec["stats"]
    assert rec["timestamp"].endswith("+0000") and st["uptime"] >= 1
    assert st["ips"]["accepted"] >= 6 and st["ips"]["blocked"] == 0
    assert st["capture"]["kernel_drops"] == 0 and st["capture"]["kernel_packets"] >= 6
    assert st["decoder"]["pkts"] >= 6
    bridge.stop()
    alerts = [json.loads(x) for x in eve.read_text().splitlines() if '"event_type":"alert"' in x]
    assert len(alerts) == 3                              # stats lines never broke an alert line
