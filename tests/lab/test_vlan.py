"""VLAN through the bridge: 802.1Q and QinQ (802.1ad outer + 802.1Q inner).

The kernel strips the outer tag before the ring sees the frame (it arrives in
the ring header); the bridge must put it back with the original TPID and the
whole TCI (priority bits included, and a priority-only tag stays a tag).  We
check it where it matters: frames captured on the server's veth0 with
PACKET_AUXDATA (where the receiving kernel reports the tag it stripped) carry
the TPID, VLAN id and PCP the client sent; ping and TCP over the sub-interfaces
work; the bridge counts vlan_reinserted.

QinQ and MTU: Linux lets a packet socket send 4 bytes over MTU + Ethernet
header only for an 0x8100 outer tag, so a full-size 802.1ad frame needs ports
with MTU >= 1508 (the QinQ lab below; a sender's packet socket has the same
limit).  Kernels without the 8021q module get the VLAN end points from
Lab.add_vlan_tap (a tap device and a user-space tagger): the tags on the wire
are the same.
"""
from __future__ import annotations

import json

import pytest

from netnslab import finish, spawn_listener, tcp_transfer

pytestmark = pytest.mark.lab

Q_V4 = ("203.0.113.1", "203.0.113.2")       # 802.1Q vid 100, 203.0.113.0/28
QQ_V4 = ("203.0.113.17", "203.0.113.18")    # QinQ 200/300, 203.0.113.16/28
Q_V6 = ("2001:db8:100::1", "2001:db8:100::2")
QQ_V6 = ("2001:db8:300::1", "2001:db8:300::2")

# Capture on veth0, every incoming frame with the tag the kernel stripped
# (PACKET_AUXDATA) and the first in-band EtherType / TCI; only frames whose
# payload carries the test marker b"vlantest" are reported.
CAPTURE = r"""
import json, signal, socket, struct, sys
SOL_PACKET, PACKET_AUXDATA = 263, 8
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
s.bind(("veth0", 0x0003))
s.settimeout(0.2)
stop = False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print("listening", flush=True)
out = []
while not stop:
    try:
        data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(20))
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or b"vlantest" not in data:
        continue
    rec = {"marker": data[data.index(b"vlantest"):data.index(b"vlantest") + 12].decode(),
           "inband": data[12:14].hex(), "inband_tci": int.from_bytes(data[14:16], "big")}
    for level, kind, cdata in anc:
        if level == SOL_PACKET and kind == PACKET_AUXDATA:
            status, _len, _snap, _mac, _net, tci, tpid = struct.unpack("=IIIHHHH", cdata[:20])
            if status & TP_STATUS_VLAN_VALID:
                rec["tci"] = tci
                rec["tpid"] = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
    out.append(rec)
print(json.dumps(out), flush=True)
"""

SEND_TAGGED = r"""
from scapy.all import Ether, IP, UDP, Raw, sendp
from scapy.layers.l2 import Dot1Q, Dot1AD
base = Ether(dst="ff:ff:ff:ff:ff:ff")
l3 = IP(src="203.0.113.1", dst="203.0.113.2") / UDP(sport=4000, dport=4001)
frames = [
    base / Dot1Q(prio=5, vlan=100) / l3 / Raw(b"vlantest-q05"),
    base / Dot1Q(prio=4, vlan=0) / l3 / Raw(b"vlantest-p04"),       # priority-only tag
    base / Dot1AD(prio=3, vlan=200) / Dot1Q(prio=6, vlan=300) / l3 / Raw(b"vlantest-qq3"),
]
for f in frames:
    sendp(f, iface="veth0", verbose=False, count=3)
"""


class TagCapture:
    def __init__(self, lab, role="server"):
        self.proc = spawn_listener(lab, role, CAPTURE)

    def stop(self) -> list[dict]:
        self.proc.terminate()
        return json.loads(finish(self.proc, timeout=30))


def unaccounted(c: dict) -> int:
    return c["received"] - c["forwarded"] - sum(c["dropped"].values()) - sum(c["send_errors"].values())


def add_qinq(lab, inner_mtu: int = 1500) -> str:
    """802.1ad 200 outside, 802.1Q 300 inside, addressed on client and server."""
    if lab.has_8021q():
        outer = lab.add_vlan(200, proto="802.1ad")
        inner = lab.add_vlan(300, proto="802.1Q", parent=outer, addr6=QQ_V6)
        for role, addr in (("client", QQ_V4[0]), ("server", QQ_V4[1])):
            lab.run(role, "ip", "link", "set", inner, "mtu", str(inner_mtu))
            lab.run(role, "ip", "addr", "add", f"{addr}/28", "dev", inner)
        return inner
    return lab.add_vlan_tap("vl300", [(0x88A8, 200), (0x8100, 300)], addr4=QQ_V4, addr6=QQ_V6, mtu=inner_mtu)


def add_dot1q(lab) -> str:
    """802.1Q 100, addressed on client and server."""
    if lab.has_8021q():
        name = lab.add_vlan(100, proto="802.1Q", addr6=Q_V6)
        for role, addr in (("client", Q_V4[0]), ("server", Q_V4[1])):
            lab.run(role, "ip", "addr", "add", f"{addr}/28", "dev", name)
        return name
    return lab.add_vlan_tap("vl100", [(0x8100, 100)], addr4=Q_V4, addr6=Q_V6)


def test_dot1q_tags_and_priority_survive_the_bridge(lab):
    add_dot1q(lab)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    lab.ping("client", Q_V4[1], count=3)
    lab.ping("client", Q_V6[1], count=3)
    lab.ping("client", Q_V4[1], count=2, size=1472)           # full-size 802.1Q frames (1518 bytes)
    sent, received = tcp_transfer(lab, Q_V4[1], 2 * 1024 * 1024, port=5003)
    assert sent == received

    cap = TagCapture(lab)
    lab.python("client", SEND_TAGGED)
    lab.ping("client", Q_V4[1], count=1)                      # a round trip: the tagged frames have crossed
    seen = cap.stop()
    totals = bridge.stop()

    by_marker = {}
    for rec in seen:
        by_marker.setdefault(rec["marker"], []).append(rec)
    q = by_marker.get("vlantest-q05", [])
    assert len(q) == 3, seen
    assert all(r.get("tpid") == 0x8100 and r.get("tci") == (5 << 13) | 100 for r in q), q
    p = by_marker.get("vlantest-p04", [])
    assert len(p) == 3, seen
    assert all(r.get("tpid") == 0x8100 and r.get("tci") == (4 << 13) | 0 for r in p), p
    qq = by_marker.get("vlantest-qq3", [])
    assert len(qq) == 3, seen
    assert all(r.get("tpid") == 0x88A8 and r.get("tci") == (3 << 13) | 200 for r in qq), qq
    assert all(r["inband"] == "8100" and r["inband_tci"] == (6 << 13) | 300 for r in qq), qq

    eth0, eth1 = totals["interfaces"]["eth0"], totals["interfaces"]["eth1"]
    assert eth0["vlan_reinserted"] > 1400 and eth1["vlan_reinserted"] > 100, (eth0, eth1)
    assert eth0["send_errors"] == {} and eth1["send_errors"] == {}
    assert unaccounted(eth0) == 0 and unaccounted(eth1) == 0


def test_qinq_ping_and_tcp_with_room_for_two_tags(lab_factory):
    lab = lab_factory(mtu=1508)              # carrier ports sized for QinQ, inner MTU 1500
    inner = add_qinq(lab, inner_mtu=1500)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    lab.ping("client", QQ_V4[1], count=3)
    lab.ping("client", QQ_V6[1], count=3)
    full = lab.ping("client", QQ_V4[1], count=3, size=1472, check=False)   # 1522-byte frames
    assert "3 packets transmitted, 3 received" in full.stdout, full.stdout
    sent, received = tcp_transfer(lab, QQ_V4[1], 2 * 1024 * 1024, port=5004)
    assert sent == received
    totals = bridge.stop()
    eth0, eth1 = totals["interfaces"]["eth0"], totals["interfaces"]["eth1"]
    assert eth0["send_errors"] == {} and eth1["send_errors"] == {}, (eth0, eth1)
    assert eth0["vlan_reinserted"] > 1400 and eth1["vlan_reinserted"] > 100
    assert unaccounted(eth0) == 0 and unaccounted(eth1) == 0
    assert inner
