"""Shared by every test: the repo root and netns-lab/ are importable."""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "netns-lab"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
