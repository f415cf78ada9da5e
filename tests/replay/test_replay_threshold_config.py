"""threshold.config through `replay`: the same EVE as Suricata 7 on the same pcap.

tests/replay/threshold_config holds a pcap, its rules, a threshold.config with
every line type (and their interplay with the rules' own thresholds), and
Suricata 7.0.10's alerts and drop records on them (make_threshold_config.py).
Our replay, given the file through the configuration's `threshold-file`, must
log the same alerts (pcap_cnt, sid, action, metadata) and the same drop
records (every drop field, the reason, the embedded alert), nothing more.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIX = HERE / "threshold_config"
EXPECTED = json.loads((FIX / "expected.json").read_text())

sys.path.insert(0, str(HERE))
import make_threshold_config


def describe(ours: list, theirs: list, what: str) -> list[str]:
    o = {json.dumps(x, sort_keys=True) for x in ours}
    t = {json.dumps(x, sort_keys=True) for x in theirs}
    return ([f"  {what} only Suricata logs: {x}" for x in sorted(t - o)]
            + [f"  {what} only we log: {x}" for x in sorted(o - t)])


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    from conftest import Replay

    tmp = tmp_path_factory.mktemp("tc")
    eve = tmp / "eve.json"
    Replay(tmp).run("replay", "-c", str(FIX / "ipsbridge.yaml"), "-r", str(FIX / "tc.rules"),
                    "--mode", "ips", "--eve", str(eve), str(FIX / "tc.pcap"))
    return make_threshold_config.eve_records(eve.read_text().splitlines())


@pytest.mark.parametrize("what", ["alerts", "drops"])
def test_same_eve_as_suricata(ours, what):
    diff = describe(ours[what], EXPECTED[what], what)
    assert not diff, f"differences from Suricata {EXPECTED['suricata_version']}:\n" + "\n".join(diff)


def test_fixture_exercises_every_line_type():
    """The fixture is what it claims: each line type present, and Suricata's run shows
    each effect (a rate_filter drop, a rate_filter turning a drop into an alert, a
    suppressed drop rule that still drops, metadata)."""
    text = (FIX / "threshold.config").read_text()
    for kind in ("threshold ", "event_filter ", "rate_filter ", "suppress "):
        assert any(line.startswith(kind) for line in text.splitlines()), kind
    reasons = {d[1]["reason"] for d in EXPECTED["drops"]}
    assert reasons == {"rules", "threshold detection_filter"}
    assert [1011, "allowed"] in [a[1:3] for a in EXPECTED["alerts"]]         # drop rule, rate_filter alert
    assert any(d[2] and d[2]["signature_id"] == 1006 for d in EXPECTED["drops"])   # suppressed, still dropped
    assert all(a[1] != 1006 for a in EXPECTED["alerts"])
    assert any(a[3] for a in EXPECTED["alerts"])


def test_without_threshold_file_every_match_alerts(replay, tmp_path):
    """The same capture without threshold-file: the lines above are what made the
    difference (rule 1007, suppressed for one source, alerts for both; 1010 never drops)."""
    cfg = tmp_path / "no-threshold.yaml"
    text = (FIX / "ipsbridge.yaml").read_text()
    assert "threshold-file: threshold.config\n" in text
    cfg.write_text(text.replace("threshold-file: threshold.config\n", ""))
    eve = tmp_path / "eve.json"
    replay.run("replay", "-c", str(cfg), "-r", str(FIX / "tc.rules"), "--eve", str(eve), str(FIX / "tc.pcap"))
    got = make_threshold_config.eve_records(eve.read_text().splitlines())
    sid_1007 = [a for a in got["alerts"] if a[1] == 1007]
    assert len(sid_1007) == 4
    assert not any(d[2] and d[2]["signature_id"] == 1010 for d in got["drops"])
    with_file = [a for a in EXPECTED["alerts"] if a[1] == 1007]
    assert len(with_file) == 2
