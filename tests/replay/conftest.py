"""Helpers for replay tests: craft pcaps with scapy, run `python3 -m bridge replay`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


class Replay:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def rules(self, text: str, name: str = "t.rules") -> Path:
        p = self.tmp / name
        p.write_text(text.strip() + "\n")
        return p

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.run([sys.executable, "-m", "bridge", *argv], capture_output=True, text=True, cwd=REPO,
                              env=env, timeout=300)
        if check:
            assert proc.returncode == 0, f"{argv} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    @staticmethod
    def eve(path: Path) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def replay(tmp_path) -> Replay:
    return Replay(tmp_path)
