"""Differential tests: our replay must decide what Suricata 7 decided.

For every scenario in tests/replay/differential/expected.json (written by
tests/replay/make_differential.py from real Suricata runs), run

    python3 -m bridge replay -c differential/CONFIG -r RULES \
        --mode MODE --eve OUT PCAP

(CONFIG, RULES, PCAP and MODE as recorded for the scenario: ipsbridge.yaml
and ips for most; the TCP stream families have their own config and an ips
and an ids scenario on the same files) and compare, as sets, the alerts
(pcap_cnt, signature_id, alert.action; pcap_cnt 0 for an alert on a flow's
end-of-flow pseudo packet) and the pcap_cnt of the dropped packets with
Suricata's.  A failure lists every difference with the rule's msg, so it
reads as a bug report.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DIFF = HERE / "differential"
REPO = HERE.parent.parent
EXPECTED = json.loads((DIFF / "expected.json").read_text())
SCENARIOS = sorted(EXPECTED["scenarios"])

sys.path.insert(0, str(HERE))
import make_differential  # noqa: E402  (same directory; shares the EVE reader and the crafting)


def rule_msgs(rules_path: Path) -> dict[int, str]:
    import re

    out = {}
    for line in rules_path.read_text().splitlines():
        m_sid = re.search(r"\bsid:\s*(\d+)", line)
        m_msg = re.search(r'\bmsg:\s*"([^"]*)"', line)
        if m_sid:
            out[int(m_sid.group(1))] = m_msg.group(1) if m_msg else ""
    return out


def replay_cmd(name: str, eve: Path) -> list[str]:
    sc = EXPECTED["scenarios"][name]
    return [sys.executable, "-m", "bridge", "replay", "-c", str(DIFF / sc.get("config", "ipsbridge.yaml")),
            "-r", str(DIFF / sc["rules"]), "--mode", sc.get("mode", "ips"), "--eve", str(eve),
            str(DIFF / sc["pcap"])]


def run_ours(name: str, tmp: Path) -> dict:
    eve = tmp / f"{name}.eve.json"
    cmd = replay_cmd(name, eve)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, (
        f"replay failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    assert eve.exists(), f"replay wrote no EVE file: {' '.join(cmd)}\n{proc.stderr}"
    res = make_differential.eve_decisions(eve.read_text().splitlines())
    # what the replay itself reports going wrong: engine exceptions (summary line), and on
    # stderr rules it refused and config warnings
    res["notes"] = ([l.strip() for l in proc.stdout.splitlines() if l.startswith("engine errors:")]
                    + [l.rstrip() for l in proc.stderr.splitlines() if l.strip()][:40])
    return res


def describe(name: str, ours: dict, theirs: dict) -> str:
    msgs = rule_msgs(DIFF / EXPECTED["scenarios"][name]["rules"])
    lines = []
    a_ours = {tuple(a) for a in ours["alerts"]}
    a_theirs = {tuple(a) for a in theirs["alerts"]}
    for cnt, sid, action in sorted(a_theirs - a_ours):
        lines.append(f"  pcap_cnt {cnt}: sid {sid} ({msgs.get(sid, '?')}) {action}: Suricata alerts, we do not")
    for cnt, sid, action in sorted(a_ours - a_theirs):
        lines.append(f"  pcap_cnt {cnt}: sid {sid} ({msgs.get(sid, '?')}) {action}: we alert, Suricata does not")
    d_ours, d_theirs = set(ours["drops"]), set(theirs["drops"])
    for cnt in sorted(d_theirs - d_ours):
        lines.append(f"  pcap_cnt {cnt}: Suricata drops, we forward")
    for cnt in sorted(d_ours - d_theirs):
        lines.append(f"  pcap_cnt {cnt}: we drop, Suricata forwards")
    sc = EXPECTED["scenarios"][name]
    head = (f"{name}: {len(lines)} differences from Suricata {EXPECTED['suricata_version']} "
            f"(mode {sc.get('mode', 'ips')}; pcap_cnt 0 = end of flow)")
    notes = [f"  replay: {n}" for n in ours.get("notes", [])]
    return "\n".join([head, *notes, *lines])


# Differences from Suricata kept on purpose, each with its reason (README.md, "Documented
# differences"): the comparison expects exactly these, so a new difference fails, and so does
# one that went away (then it is deleted here).
KNOWN = json.loads((DIFF / "known_differences.json").read_text())


def expected_for(name: str) -> dict:
    """Suricata's decisions, adjusted by the documented differences of the scenario."""
    theirs = EXPECTED["scenarios"][name]
    k = KNOWN.get(name)
    if k is None:
        return theirs
    alerts = {tuple(a) for a in theirs["alerts"]}
    drops = set(theirs["drops"])
    s_only = {tuple(a) for a in k["suricata_only_alerts"]}
    o_only = {tuple(a) for a in k["ours_only_alerts"]}
    assert s_only <= alerts and not o_only & alerts, f"{name}: a documented difference is not one"
    assert set(k["suricata_only_drops"]) <= drops and not set(k["ours_only_drops"]) & drops
    return {"alerts": sorted((alerts - s_only) | o_only),
            "drops": sorted((drops - set(k["suricata_only_drops"])) | set(k["ours_only_drops"]))}


@pytest.mark.parametrize("name", SCENARIOS)
def test_same_decisions_as_suricata(name, tmp_path):
    theirs = expected_for(name)
    ours = run_ours(name, tmp_path)
    same = ({tuple(a) for a in ours["alerts"]} == {tuple(a) for a in theirs["alerts"]}
            and set(ours["drops"]) == set(theirs["drops"]))
    assert same, describe(name, ours, theirs)


def test_known_differences_are_few_and_explained():
    assert set(KNOWN) <= set(SCENARIOS)
    for name, k in KNOWN.items():
        assert len(k["why"]) > 80, f"{name}: say why Suricata's behaviour is not followed"
        assert k["suricata_only_alerts"] or k["ours_only_alerts"] or k["suricata_only_drops"] or k["ours_only_drops"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_fixtures_are_reproducible(name, tmp_path):
    """The committed pcap is exactly what make_differential.py crafts today, and
    the committed rules are its rules: expected.json describes these bytes."""
    spec = make_differential.SCENARIOS[name]
    sc = EXPECTED["scenarios"][name]
    assert (sc["pcap"], sc["rules"], sc.get("config", "ipsbridge.yaml"), sc.get("mode", "ips")) == (
        f"{spec.files}.pcap", f"{spec.files}.rules", spec.config, spec.mode)
    cap = make_differential.Capture()
    spec.build(cap)
    cap.write(tmp_path / "x.pcap")
    assert (tmp_path / "x.pcap").read_bytes() == (DIFF / sc["pcap"]).read_bytes()
    assert (DIFF / sc["rules"]).read_text() == spec.rules.lstrip()
    if spec.stream is not None:
        assert (DIFF / spec.config).read_text() == make_differential.ipsbridge_yaml(spec.stream, spec.files)


def test_expectations_cover_every_scenario():
    assert set(EXPECTED["scenarios"]) == set(make_differential.SCENARIOS)
    assert EXPECTED["suricata_version"].startswith("7.")
    for name, sc in EXPECTED["scenarios"].items():
        assert sc["alerts"], f"{name}: Suricata raised no alert at all: the scenario tests nothing"
        assert "0 rules failed" in sc["rules_loaded"], f"{name}: {sc['rules_loaded']}"
