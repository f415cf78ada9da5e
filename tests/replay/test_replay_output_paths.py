"""`ipsbridge replay` refuses what cannot work before it starts, in one line with the fix and
exit 2, and loses nothing: outputs that cannot be written, an output that is also an input or
another output (nothing is created or truncated), a --workers count outside 1..4 per CPU
(never silently changed); a capture that claims an absurd length stops with one line naming
the file and the packet, after what came before it was inspected and logged."""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Ether, wrpcap

from bridge.offline import _workers
from bridge.replay import cmd_replay
from conf.validate import cpu_count, max_threads

REPO = Path(__file__).resolve().parents[2]
RULE = 'alert udp any any -> any 53 (msg:"dns"; sid:1;)\n'
OUTPUT_FIX = "fix: give a file in an existing directory ipsbridge may write to"


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


def replay(*argv) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "bridge", "replay", *argv], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=False)


def one_line(proc, status: int) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 or status == 2 and lines[0].startswith("usage:"), proc.stderr
    return lines[-1]


# ------------------------------------------------------------------ --workers
@pytest.mark.parametrize("value", ["0", "-1", "-3", str(max_threads() + 1), "x", "1.5"])
def test_a_workers_count_outside_the_bound_is_a_usage_error(files, value):
    _, cap, rules = files
    line = one_line(replay("-r", rules, "--workers", value, cap), 2)
    n, c = max_threads(), cpu_count()
    shown = value if value.lstrip("-").isdigit() else repr(value)         # a number, or the text given
    assert line == (f"ipsbridge replay: error: argument --workers: {shown} is not a worker count (1..{n}) -- "
                    f"fix: use 1..{n} (4 per CPU, this machine has {c}): more workers than CPUs only add "
                    "context switches")


def test_the_workers_bound_at_both_ends():
    assert _workers("1") == 1 and _workers(str(max_threads())) == max_threads()
    for bad in ("0", str(max_threads() + 1)):
        with pytest.raises(argparse.ArgumentTypeError):
            _workers(bad)


@pytest.mark.parametrize("workers", [0, -2, None, True])
def test_cmd_replay_refuses_rather_than_changes_a_bad_count(files, capsys, workers):
    tmp, cap, rules = files
    args = argparse.Namespace(config=None, rules=[rules], eve=str(tmp / "e.json"), mode="ips", write_pass=None,
                              write_drop=None, workers=workers, strict=False, pcap=[cap], bypass="user")
    rc = cmd_replay(args)
    if workers is None:                  # not given: the default, one
        assert rc == 0 and "workers: 1" in capsys.readouterr().out
        return
    assert rc == 2 and "--workers: " in capsys.readouterr().err and not (tmp / "e.json").exists()


# ------------------------------------------------------------------ outputs
@pytest.mark.parametrize("option,path,reason", [
    ("--eve", "/nonexistent/dir/x.json", "No such file or directory"),
    ("--eve", "{tmp}", "Is a directory"),
    ("--eve", "/proc/x.json", "No such file or directory"),
    ("--write-pass", "/proc/x.pcap", "No such file or directory"),
    ("--write-pass", "/nonexistent/dir/p.pcap", "No such file or directory"),
    ("--write-drop", "/proc/x.pcap", "No such file or directory"),
    ("--write-drop", "{tmp}", "Is a directory"),
], ids=["eve-missing-dir", "eve-dir", "eve-proc", "pass-proc", "pass-missing-dir", "drop-proc", "drop-dir"])
def test_an_unwritable_output_is_one_line_naming_it(files, option, path, reason):
    tmp, cap, rules = files
    path = path.format(tmp=tmp)
    line = one_line(replay(option, path, "-r", rules, cap), 2)
    assert line == f"ipsbridge replay: {option}: cannot write {path}: {reason} -- {OUTPUT_FIX}"


def test_a_refused_output_creates_and_truncates_nothing(files):
    tmp, cap, rules = files
    kept = tmp / "pass.pcap"
    kept.write_bytes(b"an earlier run's capture")
    proc = replay("--eve", str(tmp / "new.json"), "--write-pass", str(kept), "--write-drop", "/proc/x.pcap",
                  "-r", rules, cap)
    assert "--write-drop: cannot write /proc/x.pcap" in one_line(proc, 2)
    assert kept.read_bytes() == b"an earlier run's capture" and not (tmp / "new.json").exists()


@pytest.mark.parametrize("option", ["--write-pass", "--write-drop", "--eve"])
def test_an_output_that_is_an_input_is_refused(files, option):
    _, cap, rules = files
    before = Path(cap).read_bytes()
    line = one_line(replay(option, cap, "-r", rules, cap), 2)
    assert line == (f"ipsbridge replay: {option}: {cap} is also a capture being read, which writing it would "
                    "destroy -- fix: write the output to another file")
    assert Path(cap).read_bytes() == before


def test_two_outputs_on_one_file_are_refused(files):
    tmp, cap, rules = files
    out = str(tmp / "out.pcap")
    line = one_line(replay("--write-pass", out, "--write-drop", out, "-r", rules, cap), 2)
    assert line == f"ipsbridge replay: --write-pass and --write-drop both write {out} -- fix: give each output its own file"


# ------------------------------------------------------------------ a capture with an absurd length
def append_absurd_record(cap: str) -> None:
    with open(cap, "ab") as f:
        f.write(struct.pack("<IIII", 2000, 0, 0xFFFFFFF0, 60) + b"x" * 60)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_absurd_record_stops_with_one_line_after_logging_what_came_before(files, workers):
    tmp, cap, rules = files
    append_absurd_record(cap)
    eve = tmp / "eve.json"
    line = one_line(replay("--workers", workers, "--eve", str(eve), "-r", rules, cap), 1)
    assert line == (f"ipsbridge replay: {cap}: packet 21: captured length 4294967280 is bigger than the snapshot "
                    "length 65535; the file is damaged there (libpcap, hence tcpdump and Suricata, refuses it too)")
    alerts = [json.loads(x) for x in eve.read_text().splitlines()]
    assert [a["pcap_cnt"] for a in alerts if a["event_type"] == "alert"] == list(range(1, 21))


def test_an_absurd_pcapng_block_is_refused_before_anything_is_written(files):
    tmp, _, rules = files
    ng = tmp / "c.pcapng"
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
    ng.write_bytes(shb + idb + struct.pack("<II", 6, 0x7FFFFFF0) + b"x" * 64)
    eve = tmp / "eve.json"
    line = one_line(replay("--eve", str(eve), "-r", rules, str(ng)), 2)
    assert line == (f"ipsbridge replay: {ng}: packet 1: pcapng block of {0x7FFFFFF0} bytes is bigger than the "
                    "maximum 16777216; the file is damaged there (libpcap, hence tcpdump and Suricata, refuses it too)")
    assert not eve.exists()
