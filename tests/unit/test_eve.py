"""EVE rendering: Suricata's field names and formats; the writer's whole-line appends."""
from __future__ import annotations

import json

from bridge.eve import EveWriter, to_eve, timestamp
from rules.events import Alert, DecoderEvent, Drop, PacketInfo

P = PacketInfo(ts=1700000000.123456, iface="eth0", pcap_cnt=7, vlan=(10, 20), flow_id=123456789, ipver=4,
               src=0xC6336401, dst=0xC6336402, sport=40000, dport=80, proto=6, to_server=True, length=60, ttl=64)


def test_timestamp_format():
    assert timestamp(1700000000.123456) == "2023-11-14T22:13:20.123456+0000"
    assert timestamp(0.0) == "1970-01-01T00:00:00.000000+0000"


def test_alert_fields():
    a = Alert(P, "blocked", "drop", 1, 2001, 3, "bad thing", "Attempted Admin", 1)
    d = to_eve(a)
    assert d["event_type"] == "alert" and d["timestamp"] == "2023-11-14T22:13:20.123456+0000"
    assert d["src_ip"] == "198.51.100.1" and d["dest_ip"] == "198.51.100.2"
    assert (d["src_port"], d["dest_port"], d["proto"]) == (40000, 80, "TCP")
    assert d["flow_id"] == 123456789 and d["in_iface"] == "eth0" and d["vlan"] == [10, 20]
    assert d["pcap_cnt"] == 7 and d["direction"] == "to_server"
    assert d["alert"] == {"action": "blocked", "gid": 1, "signature_id": 2001, "rev": 3, "signature": "bad thing",
                          "category": "Attempted Admin", "severity": 1}


def test_icmpv6_and_no_ports():
    p = PacketInfo(ts=1.0, ipver=6, src=0x20010DB8 << 96 | 1, dst=0x20010DB8 << 96 | 2, proto=58, icmp_type=128,
                   icmp_code=0)
    d = to_eve(Alert(p, "allowed", "alert", 1, 1, 0, "", "", 3))
    assert d["proto"] == "IPv6-ICMP" and d["src_ip"] == "2001:db8::1" and "src_port" not in d
    assert d["icmp_type"] == 128 and "direction" not in d and "vlan" not in d


def test_drop_and_anomaly():
    ip = bytes.fromhex("4500003c0001000040060000c6336401c6336402")     # IPv4, total length 60
    d = to_eve(Drop(P, "flow", ip_hdr=ip))
    assert d["event_type"] == "drop" and d["drop"]["reason"] == "flow drop" and d["drop"]["len"] == 60
    d = to_eve(DecoderEvent(P, "decoder.ipv4.trunc_pkt"))
    assert d["event_type"] == "anomaly" and d["anomaly"] == {"type": "decode", "event": "decoder.ipv4.trunc_pkt"}


def test_writer_appends_whole_lines(tmp_path):
    path = tmp_path / "eve.json"
    w1, w2 = EveWriter(path), EveWriter(str(path))
    a = Alert(P, "allowed", "alert", 1, 1, 0, "m", "", 3)
    for _ in range(50):
        w1.write((a, Drop(P, "rule", 1)))
        w2.write((a,))
    w1.close()
    w2.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 150
    assert all(json.loads(line)["timestamp"] for line in lines)
