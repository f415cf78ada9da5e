"""The README's demo, run as a user runs it: `python3 netns-lab/lab.py demo`.

It must exit 0, and its table must say that UDP to 9999 and the TCP payload
marker were dropped (ips) or passed and counted (tap) while everything else
arrived, with the matching alerts from conf/example.rules in EVE.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def row(out: str, name: str) -> str:
    for line in out.splitlines():
        if line.startswith(name):
            return line
    raise AssertionError(f"no table row {name!r} in demo output:\n{out}")


def dropped_frames(port_row: str, column: int) -> int:
    """Sum of 'reason=n' entries in a column of the bridge-counters table row
    (columns: port, received, forwarded, dropped, would drop, send errors)."""
    cells = re.split(r"\s{2,}", port_row.strip())
    return sum(int(n) for n in re.findall(r"=(\d+)", cells[column]))


def run_demo(*args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "netns-lab" / "lab.py"), "demo", *args],
                          capture_output=True, text=True, timeout=300, cwd=str(REPO))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"demo exit {proc.returncode}:\n{out}"
    assert "everything behaved as the policy says" in out, out
    return out


def test_demo_ips_drops_the_blocked_and_passes_the_rest():
    out = run_demo()
    assert "-S " in out and "example.rules" in out, "demo did not use the rule engine"
    assert re.search(r"ping IPv4\s+5 echo requests\s+5 replies", row(out, "ping IPv4"))
    assert re.search(r"ping IPv6\s+5 echo requests\s+5 replies", row(out, "ping IPv6"))
    assert "sha256 equal" in row(out, "TCP 4 MiB")
    assert re.search(r"200 datagrams\s+200\s", row(out, "UDP to port 7000"))
    assert re.search(r"200 datagrams\s+0\s+none \(dropped\)\s+ok", row(out, "UDP to port 9999"))
    assert re.search(r"hello, no EVIL-PAYLOAD\s+hello, no EVIL-PAYLOAD\s+ok", row(out, "TCP with EVIL-PAYLOAD"))
    eth0 = row(out, "eth0 ")
    assert dropped_frames(eth0, 3) >= 201, eth0       # the 9999 burst and the marker (rule or flow drops)
    assert re.search(r"^1000001\s+blocked\s+.*\s[1-9]\d*\s*$", out, re.M), out   # one alert, then the flow is dropped
    assert re.search(r"^1000002\s+blocked\s", out, re.M), out
    assert re.search(r"^1000004\s+allowed\s", out, re.M), out
    assert "FAILED" not in out


def test_demo_tap_passes_everything_and_counts_would_drop():
    out = run_demo("--mode", "tap", "--threads", "2")
    assert re.search(r"200 datagrams\s+200\s+all \(tap", row(out, "UDP to port 9999"))
    assert "hello + EVIL-PAYLOAD" in row(out, "TCP with EVIL-PAYLOAD")
    eth0 = row(out, "eth0 ")
    assert dropped_frames(eth0, 3) == 0, eth0
    assert dropped_frames(eth0, 4) >= 201, eth0       # would-drop column
    assert re.search(r"^1000001\s+allowed\s+.*\s[1-9]\d*\s*$", out, re.M), out
    assert "FAILED" not in out
