"""A stdout whose reader is gone (`ipsbridge ... | head -1`) ends every command quietly with
141 (128 + SIGPIPE), never a BrokenPipeError traceback: bridge.cli.main, through the real
command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def with_closed_stdout(*argv) -> subprocess.CompletedProcess:
    r, w = os.pipe()
    os.close(r)                          # every write to w now fails with EPIPE, as after `head -1` exits
    try:
        return subprocess.run([sys.executable, "-m", "bridge", *argv], stdout=w, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, env=ENV, timeout=120, check=False)
    finally:
        os.close(w)


@pytest.fixture
def rules(tmp_path):
    r = tmp_path / "t.rules"
    r.write_text('alert udp any any -> any 53 (msg:"dns"; sid:1;)\n')
    return str(r)


@pytest.mark.parametrize("argv", [
    ("check", "--bridge", "nosuch0:nosuch1", "--bypass", "user"),        # problems printed on stdout
    ("rules", "check", "{rules}"),
    ("--help",),
    ("replay", "--help"),
], ids=["check", "rules-check", "help", "replay-help"])
def test_a_closed_stdout_ends_quietly_with_141(argv, rules):
    proc = with_closed_stdout(*(a.format(rules=rules) for a in argv))
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode in ((141,) if argv[0] != "--help" and argv[-1] != "--help" else (0, 141))


def test_check_piped_into_head(rules):
    argv = "check --bridge nosuch0:nosuch1 --bypass user"
    whole = subprocess.run([sys.executable, "-m", "bridge", *argv.split()], capture_output=True, text=True,
                           cwd=REPO, env=ENV, timeout=120, check=False)
    script = f'"{sys.executable}" -m bridge {argv} | head -1; echo "status ${{PIPESTATUS[0]}}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=REPO, env=ENV, timeout=120,
                          check=False)
    first, status = proc.stdout.splitlines()
    assert whole.returncode == 1 and "error: nosuch0: interface: no such network interface" in whole.stdout
    assert first == whole.stdout.splitlines()[0]
    assert status in ("status 1", "status 141") and "Traceback" not in proc.stderr  # 1: head read it all in time
