"""`run` refuses at start, and `check` reports, an eve-log that cannot be written -- one line
naming the path, why, the file:line it was configured at, and the fix -- through the real
command line.  The interfaces do not exist (they are refused too): nothing is opened."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.syscheck import output_refusal

REPO = Path(__file__).resolve().parents[2]
FIX = ("fix: point eve-log (or --eve) at a file in an existing directory ipsbridge may write to, "
       "e.g. /var/log/ipsbridge/eve.json")


def ipsbridge(*argv) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "bridge", *argv], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=120, check=False)


def config(tmp_path, eve_lines: str) -> Path:
    p = tmp_path / "ipsbridge.yaml"
    p.write_text("af-packet:\n  - interface: nosuch0\n    copy-mode: ips\n    copy-iface: nosuch1\n"
                 "  - interface: nosuch1\n    copy-mode: ips\n    copy-iface: nosuch0\n" + eve_lines)
    return p


def eve_lines(text: str) -> list[str]:
    lines = [x for x in text.splitlines() if "eve-log" in x and x.startswith(("refused:", "error:", "warning:"))]
    assert "Traceback" not in text
    return lines


# ipsbridge.eve-log at line 9, or outputs' eve-log filename (with default-log-dir) at line 12
OWN = ("ipsbridge:\n  eve-log: {path}\n", 9)
OUTPUTS = ("default-log-dir: {dir}\noutputs:\n  - fast:\n      enabled: no\n  - eve-log:\n      filename: {name}\n",
           13)
NOENT = "No such file or directory"
UNWRITABLE = [("/nonexistent/dir/eve.json", NOENT), ("/proc/eve.json", NOENT), ("{tmp}", "Is a directory")]


@pytest.mark.parametrize("path,reason", UNWRITABLE, ids=["missing-dir", "proc", "directory"])
@pytest.mark.parametrize("where", ["ipsbridge", "outputs"])
def test_run_refuses_an_unwritable_eve_log_from_the_file(tmp_path, path, reason, where):
    path = path.format(tmp=tmp_path)
    text, line = OWN if where == "ipsbridge" else OUTPUTS
    cfg = config(tmp_path, text.format(path=path, dir=os.path.dirname(path), name=os.path.basename(path)))
    if where == "outputs" and path == str(tmp_path):          # a directory named by dir + name
        cfg = config(tmp_path, text.format(dir=tmp_path.parent, name=tmp_path.name))
    proc = ipsbridge("run", "-c", str(cfg))
    assert proc.returncode == 2
    assert eve_lines(proc.stderr) == [f"refused: {cfg}:{line}: ipsbridge: eve-log: cannot write {path}: {reason} -- {FIX}"]


@pytest.mark.parametrize("path,reason", UNWRITABLE, ids=["missing-dir", "proc", "directory"])
def test_run_refuses_an_unwritable_eve_from_the_command_line(tmp_path, path, reason):
    path = path.format(tmp=tmp_path)
    cfg = config(tmp_path, OWN[0].format(path=tmp_path / "fine.json"))      # --eve replaces it
    proc = ipsbridge("run", "-c", str(cfg), "--eve", path)
    assert proc.returncode == 2
    assert eve_lines(proc.stderr) == [f"refused: ipsbridge: eve-log: cannot write {path}: {reason} -- {FIX}"]
    assert not (tmp_path / "fine.json").exists()


def test_check_reports_an_unwritable_eve_log_with_its_line(tmp_path):
    cfg = config(tmp_path, OWN[0].format(path="/nonexistent/dir/eve.json"))
    proc = ipsbridge("check", "-c", str(cfg), "--bypass", "user")
    assert proc.returncode == 1
    path = "/nonexistent/dir/eve.json"
    assert eve_lines(proc.stdout) == [f"error: {cfg}:9: ipsbridge: eve-log: cannot write {path}: {NOENT} -- {FIX}"]


@pytest.mark.parametrize("exists", [False, True], ids=["new", "existing"])
def test_a_writable_eve_log_is_no_problem_and_is_left_as_it_was(tmp_path, exists):
    eve = tmp_path / "eve.json"
    if exists:
        eve.write_text('{"event_type":"alert"}\n')
    cfg = config(tmp_path, OWN[0].format(path=eve))
    for command in ("check", "run"):
        proc = ipsbridge(command, "-c", str(cfg), "--bypass", "user")
        assert proc.returncode in (1, 2) and "nosuch0" in proc.stdout + proc.stderr    # the interfaces
        assert eve_lines(proc.stdout + proc.stderr) == []
        assert eve.exists() is exists
        if exists:
            assert eve.read_text() == '{"event_type":"alert"}\n'


def test_output_refusal(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert output_refusal(str(fifo)) is None                  # not opened: that would wait for a reader
    assert output_refusal(str(tmp_path / "new.json")) is None and not (tmp_path / "new.json").exists()
    assert output_refusal(str(tmp_path)) == f"cannot write {tmp_path}: Is a directory"
    assert output_refusal("/nonexistent/x") == "cannot write /nonexistent/x: No such file or directory"


@pytest.mark.parametrize("path,reason", UNWRITABLE, ids=["missing-dir", "proc", "directory"])
def test_run_refuses_an_unwritable_stats_json(tmp_path, path, reason):
    path = path.format(tmp=tmp_path)
    proc = ipsbridge("run", "-c", str(config(tmp_path, "")), "--stats-json", path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "--stats-json" in x]
    fix = "fix: give a file in an existing directory ipsbridge may write to"
    assert lines == [f"refused: --stats-json: cannot write {path}: {reason} -- {fix}"]
