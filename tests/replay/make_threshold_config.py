#!/usr/bin/env python3
"""Craft the threshold.config fixture and record what Suricata 7 logs on it.

    python3 tests/replay/make_threshold_config.py                  # files + expected.json
    python3 tests/replay/make_threshold_config.py --no-suricata    # files only

Writes, under tests/replay/threshold_config/:

- tc.pcap          UDP datagrams, every one its own flow (Suricata runs rules
                   without payload keywords once per flow direction), at fixed
                   times chosen to cross windows and rate_filter timeouts;
- tc.rules         one rule (or two) per destination port, each port one case;
- threshold.config every line type (threshold, event_filter, rate_filter with
                   each new_action, suppress with and without track/ip, gen_id
                   0 / sig_id 0 globals) and their interplay with the rules'
                   own threshold and detection_filter;
- ipsbridge.yaml   the config our replay gets (vars, threshold-file);
- expected.json    Suricata's EVE: alerts as [pcap_cnt, sid, action, metadata]
                   and drops as [pcap_cnt, drop object, embedded alert or
                   null], with the version that produced them.

Suricata runs as `suricata -r tc.pcap -S tc.rules --simulate-ips -k none
--runmode single -c <yaml> -l <tmp>` with the vars of make_differential.py,
`threshold-file` and the drop logger with `alerts: yes, flows: all`.
tests/replay/test_replay_threshold_config.py compares our replay with it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import make_differential as md  # same directory: the crafting helpers and Suricata's config
from make_differential import C1, C2, C3, S1, S2, Capture, udp

HERE = Path(__file__).resolve().parent
OUT = HERE / "threshold_config"
C9, S7 = "198.51.100.9", "203.0.113.7"
C6, S6 = md.C6, md.S6

RULES = r"""
# one case per destination port; threshold.config says what happens to each
alert udp any any -> any 6001 (msg:"limit via config"; metadata:former_category MALWARE, created_at 2020_01_01, tag b, tag a, Tag c; sid:1001; rev:2;)
alert udp any any -> any 6002 (msg:"event_filter threshold by_dst"; sid:1002;)
alert udp any any -> any 6003 (msg:"rule limit, config both"; threshold:type limit, track by_src, count 1, seconds 60; sid:1003;)
alert udp any any -> any 6004 (msg:"gid 5 global"; gid:5; sid:1004;)
alert udp any any -> any 6005 (msg:"gid 5 own threshold"; gid:5; threshold:type limit, track by_src, count 3, seconds 60; sid:1005;)
drop udp any any -> any 6006 (msg:"drop suppressed"; metadata:policy balanced; sid:1006;)
alert udp any any -> any 6007 (msg:"suppress by_src"; sid:1007;)
drop udp any any -> any 6008 (msg:"drop suppress by_either"; sid:1008;)
alert udp any any -> any 6009 (msg:"suppress by_dst var"; sid:1009;)
alert udp any any -> any 6010 (msg:"rate drop"; sid:1010;)
drop udp any any -> any 6011 (msg:"rate alert on drop"; sid:1011;)
alert udp any any -> any 6012 (msg:"rate pass"; priority:1; sid:1012;)
alert udp any any -> any 6012 (msg:"after rate pass"; priority:2; sid:1013;)
alert udp any any -> any 6014 (msg:"rate reject"; sid:1014;)
drop udp any any -> any 6015 (msg:"drop threshold type threshold"; threshold:type threshold, track by_src, count 3, seconds 60; sid:1015;)
drop udp any any -> any 6016 (msg:"drop threshold type both"; threshold:type both, track by_src, count 2, seconds 60; sid:1016;)
alert udp any any <> any 6017 (msg:"by_both symmetric"; threshold:type limit, track by_both, count 1, seconds 60; sid:1017;)
alert udp any any -> any 6018 (msg:"rate on rule with threshold"; threshold:type limit, track by_src, count 5, seconds 60; sid:1018;)
alert udp any any -> any 6019 (msg:"config threshold replaces detection_filter"; detection_filter:track by_src, count 2, seconds 60; sid:1019;)
drop udp any any -> any 6020 (msg:"drop rate alert by_src"; sid:1020;)
alert udp any any -> any 6021 (msg:"global gid 5 then per-sid"; gid:5; sid:1021;)
alert udp any any -> any 6022 (msg:"suppress list with IPv6"; sid:1022;)
alert udp any any -> any 6023 (msg:"gid 7 suppress by ip for sig_id 0"; gid:7; sid:1023;)
drop udp any any -> any 6024 (msg:"gid 8 all noalert"; gid:8; sid:1024;)
"""

THRESHOLD_CONFIG = r"""# threshold.config for tests/replay/threshold_config (make_threshold_config.py)
threshold gen_id 1, sig_id 1001, type limit, track by_src, count 2, seconds 10
event_filter gen_id 1, sig_id 1002, type threshold, track by_dst, count 3, seconds 10
threshold gen_id 1, sig_id 1003, type both, track by_src, count 2, seconds 60
threshold gen_id 5, sig_id 0, type limit, track by_rule, count 1, seconds 60
threshold gen_id 5, sig_id 1021, type limit, track by_rule, count 2, seconds 60
  # an indented comment
suppress gen_id 1, sig_id 1006
suppress gen_id 1, sig_id 1007, track by_src, ip 198.51.100.1
suppress gen_id 1, sig_id 1008, track by_either, ip 203.0.113.7
suppress gen_id 1, sig_id 1009, track by_dst, ip $HOME_NET
rate_filter gen_id 1, sig_id 1010, track by_src, count 2, seconds 10, \
  new_action drop, timeout 5
rate_filter gen_id 1, sig_id 1011, track by_rule, count 1, seconds 60, new_action alert, timeout 30
rate_filter gen_id 1, sig_id 1012, track by_src, count 1, seconds 60, new_action pass, timeout 30
rate_filter gen_id 1, sig_id 1014, track by_src, count 1, seconds 60, new_action reject, timeout 30
rate_filter gen_id 1, sig_id 1018, track by_src, count 1, seconds 60, new_action drop, timeout 30
threshold gen_id 1, sig_id 1019, type limit, track by_src, count 1, seconds 60
rate_filter gen_id 1, sig_id 1020, track by_src, count 1, seconds 60, new_action alert, timeout 30
suppress gen_id 1, sig_id 1022, track by_src, ip [2001:db8:1::/48, 198.51.100.9]
suppress gen_id 7, sig_id 0, track by_src, ip 198.51.100.3
suppress gen_id 8, sig_id 0
"""


def build(cap: Capture) -> None:
    ev: list[tuple] = []

    def add(t, src, dst, dport, sport=None):
        ev.append((t, src, dst, dport, sport))

    # 6001 limit 2 per 10 s by_src: C1 five times, C2 twice, C1 again after the window
    for t in (0, 1, 2, 3, 4, 11.5):
        add(t, C1, S1, 6001)
    for t in (5, 6):
        add(t, C2, S1, 6001)
    # 6002 every 3rd by destination
    for t in range(7):
        add(t + 0.1, C1 if t % 2 else C2, S2, 6002)
    # 6003 both, 2 by_src (the rule's limit 1 is replaced)
    for t in range(4):
        add(t + 0.2, C1, S1, 6003)
    # gid 5: a global limit 1 by_rule; 6005 keeps its own limit 3; 6021's own line after the global
    for t in range(4):
        add(t + 0.3, C1 if t % 2 else C2, S1, 6004)
    for t in range(5):
        add(t + 0.35, C1, S1, 6005)
    for t in range(4):
        add(t + 0.37, C1, S1, 6021)
    # 6006 a drop rule suppressed without track: still drops
    for t in range(2):
        add(t + 0.4, C1, S1, 6006)
    # 6007 suppressed for source C1 only
    for t in range(2):
        add(t + 0.45, C1, S1, 6007)
        add(t + 0.46, C2, S1, 6007)
    # 6008 by_either 203.0.113.7: as source or destination
    add(0.5, C1, S7, 6008)
    add(0.51, C1, S1, 6008)
    add(0.52, S7, C1, 6008)
    # 6009 by_dst $HOME_NET
    add(0.55, C1, S1, 6009)
    add(0.56, S1, C1, 6009)
    add(0.57, S1, C2, 6009)
    # 6010 rate_filter drop: count 2 in 10 s, timeout 5 s (whole seconds of packet time)
    for t in (0.6, 1.6, 2.6, 3.6, 7.6, 8.7, 8.9, 9.6, 10.9, 22.0, 23.0, 24.0, 25.0):
        add(t, C1, S1, 6010)
    # 6011 a drop rule a rate_filter turns into alert (by_rule)
    for t in range(3):
        add(t + 0.65, C1 if t % 2 else C2, S1, 6011)
    # 6012 rate_filter pass: the lower-priority 1013 on the same packet is not evaluated
    for t in range(3):
        add(t + 0.7, C1, S1, 6012)
    # 6014 rate_filter reject
    for t in range(3):
        add(t + 0.75, C1, S1, 6014)
    # 6015 / 6016 drop rules with their own threshold / both: no drop while withheld
    for t in range(5):
        add(t + 0.8, C1, S1, 6015)
    for t in range(4):
        add(t + 0.85, C1, S1, 6016)
    # 6017 by_both is one count for both directions of an address pair
    add(0.9, C1, S1, 6017)
    add(0.91, S1, C1, None, sport=6017)
    add(0.92, C1, S2, 6017)
    # 6018 the rule's threshold wins over a rate_filter; 6019 a threshold line replaces detection_filter
    for t in range(3):
        add(t + 0.95, C1, S1, 6018)
    for t in range(4):
        add(t + 0.97, C1, S1, 6019)
    # 6020 a drop rule a rate_filter turns into alert by_src
    for t in range(3):
        add(t + 0.98, C1, S1, 6020)
    # 6022 an IPv6 and an IPv4 member of a suppress list; 6023 / 6024 sig_id 0 suppressions
    add(1.1, C6, S6, 6022)
    add(1.11, C9, S1, 6022)
    add(1.12, C1, S1, 6022)
    add(1.13, C3, S1, 6023)
    add(1.14, C1, S1, 6023)
    add(1.15, C1, S1, 6024)
    ev.sort(key=lambda e: e[0])
    for n, (t, src, dst, dport, sport) in enumerate(ev):
        # every datagram its own flow (a port of its own), see the module docstring
        udp(cap, src, dst, sport or 30000 + n, dport or 30000 + n, b"x", at=t)


def ipsbridge_yaml() -> str:
    import yaml

    doc = {"vars": md.VARS, "classification-file": md.CLASSIFICATION, "threshold-file": "threshold.config"}
    return ("# Config our replay uses for the threshold.config fixture (make_threshold_config.py)\n"
            + yaml.safe_dump(doc, sort_keys=False))


def suricata_yaml(workdir: Path) -> str:
    import yaml

    doc = yaml.safe_load(md.suricata_yaml(OUT, "tc.rules").split("---\n", 1)[1])
    doc["threshold-file"] = str(OUT / "threshold.config")
    return "%YAML 1.1\n---\n" + yaml.safe_dump(doc, sort_keys=False)


def eve_records(lines) -> dict:
    """Alerts as [pcap_cnt, sid, action, metadata or None]; drops as [pcap_cnt, drop, alert or None]."""
    alerts, drops = [], []
    for line in lines:
        if not line.strip():
            continue
        ev = json.loads(line)
        if ev["event_type"] == "alert":
            a = ev["alert"]
            alerts.append([ev["pcap_cnt"], a["signature_id"], a["action"], a.get("metadata")])
        elif ev["event_type"] == "drop":
            embedded = ev.get("alert")
            if embedded is not None:
                embedded = {k: embedded[k] for k in ("action", "gid", "signature_id", "rev", "signature",
                                                     "category", "severity")}
            drops.append([ev["pcap_cnt"], ev["drop"], embedded])
    return {"alerts": sorted(alerts, key=lambda a: (a[0], a[1])), "drops": sorted(drops, key=lambda d: d[0])}


def run_suricata(workdir: Path) -> dict:
    cfg = workdir / "suricata.yaml"
    cfg.write_text(suricata_yaml(workdir))
    logdir = workdir / "log"
    logdir.mkdir()
    cmd = ["suricata", "-v", "-r", str(OUT / "tc.pcap"), "-S", str(OUT / "tc.rules"), "--simulate-ips",
           "-k", "none", "--runmode", "single", "-l", str(logdir), "-c", str(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"suricata failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    text = proc.stdout + proc.stderr
    if "0 rules failed" not in text:
        sys.exit(f"suricata did not load every rule:\n{text}")
    parsed = [line for line in text.splitlines() if "Threshold config parsed" in line]
    entries = sum(1 for line in THRESHOLD_CONFIG.splitlines() if line.strip() and not line.lstrip().startswith("#")
                  and not line.startswith("  new_action"))
    if not parsed or f"{entries} rule(s) found" not in parsed[0]:
        sys.exit(f"suricata did not read every threshold.config line ({entries} expected):\n{text}")
    return eve_records((logdir / "eve.json").read_text().splitlines())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-suricata", action="store_true", help="only write the pcap, rules and configs")
    args = ap.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    cap = Capture()
    build(cap)
    cap.write(OUT / "tc.pcap")
    (OUT / "tc.rules").write_text(RULES.lstrip())
    (OUT / "threshold.config").write_text(THRESHOLD_CONFIG)
    (OUT / "ipsbridge.yaml").write_text(ipsbridge_yaml())
    print(f"tc.pcap: {len(cap.frames)} packets")
    if args.no_suricata:
        return 0
    if not shutil.which("suricata"):
        sys.exit("suricata not found: needed for expected.json (use --no-suricata for the files only)")
    with tempfile.TemporaryDirectory(prefix="threshold-config-") as tmp:
        res = run_suricata(Path(tmp))
    version = subprocess.run(["suricata", "-V"], capture_output=True, text=True, check=False).stdout.strip().split("version ")[-1]
    expected = {"suricata_version": version,
                "command": "suricata -r tc.pcap -S tc.rules --simulate-ips -k none --runmode single "
                           "-c <make_threshold_config.suricata_yaml> -l DIR",
                "format": "alerts: [pcap_cnt, signature_id, alert.action, alert.metadata]; drops: [pcap_cnt, "
                          "drop object, embedded alert (its fixed fields) or null]",
                **res}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"suricata {version}: {len(res['alerts'])} alerts, {len(res['drops'])} drops")
    return 0


if __name__ == "__main__":
    sys.exit(main())
