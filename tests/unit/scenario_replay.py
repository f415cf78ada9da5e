"""Replay one differential scenario (tests/replay/differential/expected.json) through the
engine as `ipsbridge replay` does, for the tests that hold a compiled twin to its Python
reference: what came out (each event's frame number, type and sid; the dropped frames)."""
from __future__ import annotations

import json
from pathlib import Path

from bridge.replay import _engine, _load_config, run_stream

REPO = Path(__file__).resolve().parents[2]
DIFF = REPO / "tests" / "replay" / "differential"


def scenarios(prefix: str) -> dict:
    """The scenarios whose name starts with `prefix`."""
    every = json.loads((DIFF / "expected.json").read_text())["scenarios"]
    return {k: v for k, v in every.items() if k.startswith(prefix)}


def replay(sc: dict) -> dict:
    config = _load_config(str(DIFF / sc.get("config", "ipsbridge.yaml")))
    engine = _engine([str(DIFF / sc["rules"])], config, sc.get("mode", "ips"))
    events: list = []
    totals = run_stream(engine, [str(DIFF / sc["pcap"])], eve_sink=lambda cnt, evs: events.extend((cnt, e) for e in evs),
                        mode=sc.get("mode", "ips"))
    return {"events": [(c, type(e).__name__, getattr(e, "sid", None)) for c, e in events],
            "dropped": list(totals.dropped)}
