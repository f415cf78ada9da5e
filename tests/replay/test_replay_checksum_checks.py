"""`pcap-file.checksum-checks` end to end, against what Suricata 7.0.10 did on the same files.

The capture: 250 TCP sessions of 5 packets (SYN, SYN/ACK, ACK, "GET /evil", the server's
ACK), every TCP checksum wrong (0xdead), as a capture taken before checksum offload
filled them in.  Rule: `alert tcp any any -> any 80 (content:"evil")`.

Recorded with `suricata -r bad.pcap --runmode single -c X.yaml [--simulate-ips]` (7.0.10,
no `-k`), X.yaml: `stream: {checksum-validation: yes, midstream: no}`,
`exception-policy: auto`, `pcap-file: {checksum-checks: auto|yes|no}`:

- auto: packets 1-999 validated -- their stream engine ignores each one, so a data packet
  is matched on its own (IDS alerts at pcap_cnt 4, 9, ..., 999); at packet 1000 it logs
  "More than 1/10th of packets have an invalid checksum, assuming checksum offloading is
  used (999/1000)" and validates nothing from then on: sessions 201-250 are tracked and
  their data is inspected at the flow's end in IDS mode (50 alerts without pcap_cnt).
  Inline (--simulate-ips) every data packet alerts, and packet 1000 -- session 200's last,
  the first not validated, on a session whose handshake the stream never took -- is
  dropped by the midstream exception policy (exception-policy auto: drop-flow).
- yes: every packet validated: 250 alerts on the data packets, no drop.
- no: nothing validated: IDS 250 alerts at flow end, inline 250 on the data packets.

And the sample's threshold: 1000 TCP SYNs of which the first 100 (or 101) have a bad
checksum, then one all-bad session: with 100 Suricata logs "Less than 1/10th ...
(100/1000)" and keeps validating (alert on the data packet, 1004); with 101 "More than
1/10th ... (101/1000)" and stops (alert at flow end).
"""
from __future__ import annotations

import pytest
from scapy.all import IP, TCP, Ether, wrpcap

C, S = "198.51.100.1", "198.51.100.2"
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"
RULE = 'alert tcp any any -> any 80 (msg:"evil"; content:"evil"; sid:1;)'
SESSIONS = 250
DATA = [5 * i + 4 for i in range(SESSIONS)]          # pcap_cnt of each "GET /evil"


def sessions(n: int, t0: float, bad: bool = True) -> list:
    out, t = [], t0
    for i in range(n):
        sp, cseq, sseq = 20000 + i, 1000, 5000
        for p in (
            Ether(src=MAC_C, dst=MAC_S) / IP(src=C, dst=S) / TCP(sport=sp, dport=80, flags="S", seq=cseq),
            Ether(src=MAC_S, dst=MAC_C) / IP(src=S, dst=C) / TCP(sport=80, dport=sp, flags="SA", seq=sseq,
                                                                 ack=cseq + 1),
            Ether(src=MAC_C, dst=MAC_S) / IP(src=C, dst=S) / TCP(sport=sp, dport=80, flags="A", seq=cseq + 1,
                                                                 ack=sseq + 1),
            Ether(src=MAC_C, dst=MAC_S) / IP(src=C, dst=S) / TCP(sport=sp, dport=80, flags="PA", seq=cseq + 1,
                                                                 ack=sseq + 1) / b"GET /evil",
            Ether(src=MAC_S, dst=MAC_C) / IP(src=S, dst=C) / TCP(sport=80, dport=sp, flags="A", seq=sseq + 1,
                                                                 ack=cseq + 10),
        ):
            t += 0.001
            if bad:
                p[TCP].chksum = 0xDEAD
            p.time = round(t, 6)
            out.append(p)
    return out


@pytest.fixture(scope="module")
def bad_pcap(tmp_path_factory):
    path = tmp_path_factory.mktemp("csum") / "bad.pcap"
    wrpcap(str(path), sessions(SESSIONS, 1700000000.0))
    return path


def config(replay, checks: str):
    p = replay.tmp / f"{checks}.yaml"
    p.write_text("vars:\n  address-groups:\n    HOME_NET: '[198.51.100.0/24]'\n    EXTERNAL_NET: '!$HOME_NET'\n"
                 "stream:\n  checksum-validation: yes\n  midstream: no\n"
                 f"exception-policy: auto\npcap-file:\n  checksum-checks: {checks}\n")
    return p


def run(replay, pcap, checks: str, mode: str):
    eve = replay.tmp / f"{checks}-{mode}.json"
    proc = replay.run("replay", "-c", str(config(replay, checks)), "-r", str(replay.rules(RULE)), "--mode", mode,
                      "--eve", str(eve), str(pcap))
    events = replay.eve(eve)
    alerts = sorted(e.get("pcap_cnt", 0) for e in events if e["event_type"] == "alert")
    drops = sorted((e["pcap_cnt"], e["drop"]["reason"]) for e in events if e["event_type"] == "drop")
    return alerts, drops, proc.stdout


# what Suricata 7.0.10 did (module docstring): alerts by pcap_cnt (0: at the flow's end), drops
SURICATA = {
    ("auto", "ids"): ([0] * 50 + [c for c in DATA if c < 1000], []),
    ("yes", "ids"): (DATA, []),
    ("no", "ids"): ([0] * SESSIONS, []),
    ("auto", "ips"): (DATA, [1000]),
    ("yes", "ips"): (DATA, []),
    ("no", "ips"): (DATA, []),
}


@pytest.mark.parametrize("checks,mode", list(SURICATA), ids=lambda v: v)
def test_all_checksums_wrong_as_suricata(replay, bad_pcap, checks, mode):
    alerts, drops, out = run(replay, bad_pcap, checks, mode)
    want_alerts, want_drops = SURICATA[(checks, mode)]
    assert alerts == want_alerts
    assert [cnt for cnt, _ in drops] == want_drops
    assert all(reason == "stream midstream" for _, reason in drops)
    turned_off = "checksum validation: off from packet 1000 on" in out
    assert turned_off == (checks == "auto")
    if turned_off:
        assert "999 invalid TCP checksums in the 1000-packet sample" in out


@pytest.mark.parametrize("bad_syns,alert_at", [(100, 1004), (101, 0)], ids=["100-stays-on", "101-turns-off"])
def test_the_sample_threshold_as_suricata(replay, bad_syns, alert_at):
    syns, t = [], 1690000000.0
    for i in range(1000):
        p = Ether(src=MAC_C, dst=MAC_S) / IP(src=C, dst=S) / TCP(sport=30000 + i, dport=443, flags="S", seq=7)
        if i < bad_syns:
            p[TCP].chksum = 0xDEAD
        t += 0.001
        p.time = round(t, 6)
        syns.append(p)
    pcap = replay.tmp / f"syn{bad_syns}.pcap"
    wrpcap(str(pcap), syns + sessions(1, 1690000002.0))
    alerts, drops, _ = run(replay, pcap, "auto", "ids")
    assert alerts == [alert_at] and drops == []
