"""`ipsbridge replay` and `ipsbridge rules check` refuse with one line and an exit status,
never a traceback: configurations refused for the mode, outputs that cannot be written,
and a stdout whose reader left (`| head -1`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether, wrpcap

REPO = Path(__file__).resolve().parents[2]

RULE = 'alert udp any any -> any 53 (msg:"dns"; sid:1;)\n'


@pytest.fixture
def files(tmp_path):
    cap = tmp_path / "c.pcap"
    pkts = []
    for i in range(20):
        p = Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=5000 + i, dport=53) / b"q"
        p.time = 1000.0 + i
        pkts.append(p)
    wrpcap(str(cap), pkts)
    rules = tmp_path / "t.rules"
    rules.write_text(RULE)
    return tmp_path, str(cap), str(rules)


def bridge(*argv, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "bridge", *argv], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, cwd=REPO, env=env, timeout=120)


def refused(proc, status: int, *fragments: str) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    for f in fragments:
        assert f in proc.stderr, proc.stderr
    return proc.stderr.splitlines()


# ------------------------------------------------------------------ configurations refused for the mode
@pytest.mark.parametrize("yaml_text,mode,fragment", [
    ("stream:\n  midstream-policy: drop-flow\n", "ids", "midstream-policy: 'drop-flow' in ids mode"),
    ("stream:\n  midstream-policy: drop-flow\n", "tap", "midstream-policy: 'drop-flow' in tap mode"),
    ("exception-policy: drop-packet\n", "ips", "exception-policy: 'drop-packet' is also the default"),
], ids=["ids-drop-flow", "tap-drop-flow", "ips-master-drop-packet"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_replay_refuses_a_policy_suricata_refuses_in_that_mode(files, yaml_text, mode, fragment, workers):
    tmp, cap, rules = files
    cfg = tmp / "x.yaml"
    cfg.write_text(yaml_text)
    lines = refused(bridge("replay", "--mode", mode, "--workers", workers, "-c", str(cfg), "-r", rules, cap),
                    2, fragment, f"{cfg}:")
    assert lines[0] == "ipsbridge replay: configuration refused:" and len(lines) == 2


def test_the_same_file_replays_in_ips_mode(files):
    tmp, cap, rules = files
    cfg = tmp / "x.yaml"
    cfg.write_text("stream:\n  midstream-policy: drop-flow\n")
    proc = bridge("replay", "--mode", "ips", "-c", str(cfg), "-r", rules, cap)
    assert proc.returncode == 0 and "alerts: 20" in proc.stdout


@pytest.mark.parametrize("yaml_text,fragment", [
    ("stream:\n  midstream-policy: pass-packet\n", "midstream-policy: 'pass-packet' acts on one packet"),
    ("pcap-file:\n  checksum-checks: kernel\n", "pcap-file: checksum-checks: 'kernel'"),
    ("stream: [\n", "yaml: syntax error"),
], ids=["packet-policy", "pcap-kernel", "yaml"])
@pytest.mark.parametrize("command", ["replay", "rules-check"])
def test_config_refused_at_load_by_both_commands(files, yaml_text, fragment, command):
    tmp, cap, rules = files
    cfg = tmp / "x.yaml"
    cfg.write_text(yaml_text)
    argv = ("replay", "-c", str(cfg), "-r", rules, cap) if command == "replay" else \
        ("rules", "check", "-c", str(cfg), rules)
    lines = refused(bridge(*argv), 2, fragment)
    assert lines[0].endswith("configuration refused:") and len(lines) == 2


# ------------------------------------------------------------------ outputs that cannot be written
@pytest.mark.parametrize("option,path,reason", [
    ("--eve", "/nonexistent/dir/x.json", "No such file or directory"),
    ("--eve", "{tmp}", "Is a directory"),
    ("--write-drop", "/proc/x.pcap", "No such file or directory"),
    ("--write-pass", "{tmp}", "Is a directory"),
], ids=["eve-missing-dir", "eve-directory", "write-drop-proc", "write-pass-directory"])
def test_unwritable_outputs_are_refused_before_the_start(files, option, path, reason):
    tmp, cap, rules = files
    path = path.format(tmp=tmp)
    (line,) = refused(bridge("replay", option, path, "-r", rules, cap), 2, f"cannot write {path}: {reason}")
    assert line.startswith("ipsbridge replay: ")


# ------------------------------------------------------------------ stdout's reader gone (| head -1)
def closed_pipe() -> int:
    r, w = os.pipe()
    os.close(r)                     # every write to w now fails with EPIPE, as after `head -1` exits
    return w


@pytest.mark.parametrize("command", ["replay", "rules-check"])
def test_broken_pipe_ends_quietly_with_141(files, command):
    tmp, cap, rules = files
    argv = ("replay", "-r", rules, cap) if command == "replay" else ("rules", "check", rules)
    w = closed_pipe()
    try:
        proc = bridge(*argv, stdout=w)
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr.strip() == ""


def test_head_in_a_shell_pipeline(files):
    tmp, cap, rules = files
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", "-c", f'"{sys.executable}" -m bridge replay -r {rules} {cap} '
                           f'| head -1; echo "status ${{PIPESTATUS[0]}}"'],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.stdout.startswith("packets: 20 ") and "Traceback" not in proc.stderr
    assert proc.stdout.splitlines()[-1] in ("status 0", "status 141")    # 0 when head read it all in time
