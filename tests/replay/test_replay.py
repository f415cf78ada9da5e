"""`ipsbridge replay` end to end: EVE lines, pass/drop pcaps, multi-file streams,
workers, pcapng, and `ipsbridge rules check`."""
from __future__ import annotations

import argparse

from scapy.all import IP, LLC, SNAP, TCP, UDP, Dot11, Ether, RadioTap, rdpcap, wrpcap, wrpcapng

from bridge.pcap import iter_pcaps

C, S = "198.51.100.1", "198.51.100.2"
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"

RULES = """
alert tcp any any -> any 80 (msg:"GET seen"; flow:to_server; content:"GET"; nocase; classtype:web-application-activity; sid:1001; rev:2;)
drop tcp any any -> any 80 (msg:"evil"; flow:to_server; content:"evil"; sid:1002;)
drop udp any any -> any 53 (msg:"bad dns"; content:"bad"; sid:1003;)
alert udp any any -> any 53 (msg:"dns"; sid:1004;)
"""


class Session:
    """A TCP session as a list of scapy packets with increasing times."""

    def __init__(self, sport, dport=80, t0=1000.0, src=C, dst=S):
        self.c, self.s, self.sp, self.dp = src, dst, sport, dport
        self.cseq, self.sseq, self.t = 100, 500, t0
        self.pkts = []

    def _add(self, p):
        self.t += 0.01
        p.time = self.t
        self.pkts.append(p)

    def cli(self, flags, data=b""):
        self._add(Ether(src=MAC_C, dst=MAC_S) / IP(src=self.c, dst=self.s) /
                  TCP(sport=self.sp, dport=self.dp, flags=flags, seq=self.cseq, ack=self.sseq) / data)
        self.cseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self

    def srv(self, flags, data=b""):
        self._add(Ether(src=MAC_S, dst=MAC_C) / IP(src=self.s, dst=self.c) /
                  TCP(sport=self.dp, dport=self.sp, flags=flags, seq=self.sseq, ack=self.cseq) / data)
        self.sseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self

    def handshake(self):
        self.cli("S")
        self.srv("SA")
        return self.cli("A")


def udp(sport, data, t):
    p = Ether(src=MAC_C, dst=MAC_S) / IP(src=C, dst=S) / UDP(sport=sport, dport=53) / data
    p.time = t
    return p


def traffic():
    a = Session(40000, t0=1000.0).handshake().cli("PA", b"get /index").srv("PA", b"ok")
    b = Session(40001, t0=1001.0).handshake().cli("PA", b"GET /evil").srv("PA", b"nope").cli("PA", b"more")
    dns = [udp(5000, b"good", 1002.0), udp(5000, b"bad", 1002.1), udp(5000, b"good again", 1002.2)]
    return a.pkts + b.pkts + dns      # 5 + 6 + 3 = 14 packets


def decisions(eve):
    # an alert at the end of a flow (IDS stream data inspected at flow timeout) has no pcap_cnt: 0
    alerts = sorted((e.get("pcap_cnt", 0), e["alert"]["signature_id"], e["alert"]["action"]) for e in eve
                    if e["event_type"] == "alert")
    drops = sorted((e["pcap_cnt"], e["drop"]["reason"]) for e in eve if e["event_type"] == "drop")
    return alerts, drops


# sid 1004 is header-only (Suricata's IP-only kind): once per flow direction, so only at 12
EXPECTED_ALERTS = [(4, 1001, "allowed"), (9, 1001, "allowed"), (9, 1002, "blocked"), (12, 1004, "allowed"),
                   (13, 1003, "blocked")]
# drop.reason as Suricata 7 writes it (rules.events.DROP_REASONS)
EXPECTED_DROPS = [(9, "rules"), (10, "flow drop"), (11, "flow drop"), (13, "rules")]


def test_replay_eve_fields_and_verdicts(replay):
    pcap = replay.tmp / "t.pcap"
    wrpcap(str(pcap), traffic())
    eve = replay.tmp / "eve.json"
    proc = replay.run("replay", "-r", str(replay.rules(RULES)), "--eve", str(eve), "--write-pass",
                      str(replay.tmp / "pass.pcap"), "--write-drop", str(replay.tmp / "drop.pcap"), str(pcap))
    events = replay.eve(eve)
    assert decisions(events) == (EXPECTED_ALERTS, EXPECTED_DROPS)
    first = next(e for e in events if e["event_type"] == "alert")
    assert first["timestamp"].startswith("1970-01-01T00:16:40.") and first["timestamp"].endswith("+0000")
    assert first["src_ip"] == C and first["dest_ip"] == S and first["src_port"] == 40000
    assert first["dest_port"] == 80 and first["proto"] == "TCP" and first["direction"] == "to_server"
    assert first["flow_id"] > 0
    assert first["alert"]["signature"] == "GET seen" and first["alert"]["rev"] == 2
    assert first["alert"]["category"] and first["alert"]["severity"] in (1, 2, 3)
    # the dropped frames and only them in drop.pcap, the rest in pass.pcap, bytes unchanged
    frames = [d for _, d, _ in iter_pcaps(pcap)]
    dropped = [d for _, d, _ in iter_pcaps(replay.tmp / "drop.pcap")]
    passed = [d for _, d, _ in iter_pcaps(replay.tmp / "pass.pcap")]
    assert dropped == [frames[i - 1] for i in (9, 10, 11, 13)]
    assert passed == [f for i, f in enumerate(frames, 1) if i not in (9, 10, 11, 13)]
    assert len(rdpcap(str(replay.tmp / "pass.pcap"))) == 10
    # the summary names the sids with their msg
    assert "packets: 14" in proc.stdout and "sid 1002: evil" in proc.stdout and "pkt/s" in proc.stdout


def test_ids_mode_says_allowed_and_logs_no_drop(replay):
    pcap = replay.tmp / "t.pcap"
    wrpcap(str(pcap), traffic())
    eve = replay.tmp / "eve.json"
    replay.run("replay", "--mode", "ids", "-r", str(replay.rules(RULES)), "--eve", str(eve), str(pcap))
    alerts, drops = decisions(replay.eve(eve))
    assert drops == []
    assert {a[2] for a in alerts} == {"allowed"}
    # IDS inspects the TCP stream once the receiver acknowledged it, here only at the flow's end
    ends = [e for e in replay.eve(eve) if e["event_type"] == "alert" and "pcap_cnt" not in e]
    assert ends and {e["pkt_src"] for e in ends} == {"stream (flow timeout)"}


def test_session_split_across_files_is_one_stream(replay):
    pk = traffic()
    d = replay.tmp / "caps"
    d.mkdir()
    wrpcap(str(d / "part1.pcap"), pk[:8])       # the evil session's handshake ends in part1 ...
    wrpcap(str(d / "part2.pcap"), pk[8:])       # ... its data and the flow drop are in part2
    eve = replay.tmp / "eve.json"
    replay.run("replay", "-r", str(replay.rules(RULES)), "--eve", str(eve), str(d))
    assert decisions(replay.eve(eve)) == (EXPECTED_ALERTS, EXPECTED_DROPS)
    eve2 = replay.tmp / "eve2.json"
    replay.run("replay", "-r", str(replay.rules(RULES)), "--eve", str(eve2), str(d / "part1.pcap"),
               str(d / "part2.pcap"))
    assert decisions(replay.eve(eve2)) == (EXPECTED_ALERTS, EXPECTED_DROPS)


def test_workers_2_equals_workers_1(replay):
    pk = []
    t = 1000.0
    for i in range(12):
        s = Session(41000 + i, t0=t).handshake().cli("PA", b"GET /x" if i % 2 else b"evil GET").srv("PA", b"r")
        s.cli("PA", b"tail")
        pk += s.pkts
        t += 0.001
    pk += [udp(6000 + i, b"bad" if i % 3 == 0 else b"ok", 1100.0 + i) for i in range(10)]
    pk.sort(key=lambda p: float(p.time))
    pcap = replay.tmp / "w.pcap"
    wrpcap(str(pcap), pk)
    rules = replay.rules(RULES)
    out = {}
    for n in (1, 2):
        eve = replay.tmp / f"eve{n}.json"
        replay.run("replay", "--workers", str(n), "-r", str(rules), "--eve", str(eve),
                   "--write-drop", str(replay.tmp / f"d{n}.pcap"), str(pcap))
        events = replay.eve(eve)
        cnts = [e["pcap_cnt"] for e in events]
        assert cnts == sorted(cnts), "EVE must be in pcap_cnt order"
        out[n] = (decisions(events), (replay.tmp / f"d{n}.pcap").read_bytes())
    assert out[1] == out[2]
    assert len(out[1][0][0]) > 10 and len(out[1][0][1]) > 5


def test_pcapng_input_and_in_process_call(replay, capsys):
    pcap = replay.tmp / "t.pcapng"
    wrpcapng(str(pcap), traffic())
    eve = replay.tmp / "eve.json"
    from bridge.replay import cmd_replay

    args = argparse.Namespace(config=None, rules=[str(replay.rules(RULES))], eve=str(eve), mode="ips",
                              write_pass=None, write_drop=None, workers=1, strict=False, pcap=[str(pcap)])
    assert cmd_replay(args) == 0
    assert decisions(replay.eve(eve)) == (EXPECTED_ALERTS, EXPECTED_DROPS)
    assert "packets: 14" in capsys.readouterr().out


def test_strict_and_bad_rules_exit_codes(replay):
    pcap = replay.tmp / "t.pcap"
    wrpcap(str(pcap), traffic())
    bad = replay.rules(RULES + 'alert tcp any any -> any 80 (msg:"broken"; content:"x"; nosuchkw; sid:9;)\n', "bad.rules")
    proc = replay.run("replay", "-r", str(bad), "--strict", str(pcap), check=False)
    assert proc.returncode == 2 and "nosuchkw" in proc.stderr
    proc = replay.run("replay", "-r", str(bad), str(pcap), check=False)
    assert proc.returncode == 0 and "nosuchkw" in proc.stderr and "packets: 14" in proc.stdout
    proc = replay.run("replay", "-r", str(bad), str(replay.tmp / "missing.pcap"), check=False)
    assert proc.returncode == 2 and "missing.pcap" in proc.stderr


def test_truncated_pcap_warns_and_replays_whole_records(replay):
    pcap = replay.tmp / "t.pcap"
    wrpcap(str(pcap), traffic())
    raw = pcap.read_bytes()
    pcap.write_bytes(raw[:-5])
    proc = replay.run("replay", "-r", str(replay.rules(RULES)), str(pcap))
    assert "truncated" in proc.stderr and "packets: 13" in proc.stdout


def test_raw_ip_pcap_replays_and_radiotap_is_refused_by_name(replay):
    # every link type replay reads: tests/replay/test_replay_linktypes.py
    pcap = replay.tmp / "raw.pcap"
    wrpcap(str(pcap), [IP(src=C, dst=S) / UDP(sport=5000, dport=53) / b"bad"], linktype=101)
    proc = replay.run("replay", "-r", str(replay.rules(RULES)), str(pcap))
    assert "link types: 101 RAW 1" in proc.stdout and "sid 1003: bad dns" in proc.stdout
    wifi = replay.tmp / "wifi.pcap"
    wrpcap(str(wifi), [RadioTap() / Dot11(type=2) / LLC() / SNAP() / IP(src=C, dst=S) / UDP()])
    proc = replay.run("replay", "-r", str(replay.rules(RULES)), str(wifi), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "link type 127 (IEEE802_11_RADIOTAP" in proc.stderr and "wifi.pcap" in proc.stderr


def test_rules_check(replay):
    good = replay.rules(RULES, "good.rules")
    proc = replay.run("rules", "check", str(good))
    assert "loaded 4 of 4" in proc.stdout and "checked in" in proc.stdout
    bad = replay.rules('alert tcp any any -> any 80 (msg:"x"; content:"a"; sid:1;)\n'
                       'alert tcp any any -> any 80 (msg:"y"; content:"b"; offset:-1; sid:2;)\n', "bad.rules")
    proc = replay.run("rules", "check", str(bad), check=False)
    assert proc.returncode == 1 and f"{bad}:2:" in proc.stdout
