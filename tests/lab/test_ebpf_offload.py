"""The kernel offload (bridge.ebpf) on real veth ports in real namespaces.

A minimal forwarder (FORWARDER below) runs in the lab's bridge namespace: it creates
the KernelOffload, attaches the tc program to eth0 and eth1, opens one AF_PACKET
socket per port in the bridge's order (protocol 0, the socket filter, then bind
ETH_P_ALL), and forwards what its sockets receive, putting stripped VLAN tags back --
the bridge's data plane without the engine.  Told to, it decides one flow the way a
worker does after `Result.bypass`: both directions into the kernel map (the frame's
ingress port with the peer as redirect, the reverse on the peer).  It counts the
frames of each TCP/UDP port that reach it, so "the flow's frames stop reaching the
socket" is a count that stays flat while the transfer goes on.

The bridge itself (`python3 -m bridge run`, stream.bypass: yes, a 64 KiB depth) is
run end to end too: a TCP transfer past the depth leaves its rings (their counters
stay flat while it goes on) and arrives intact; a flow a drop rule decided stays
dropped, its retransmissions dropped in the kernel.

What is shown: an offloaded TCP flow leaves user space and arrives intact (sha256),
on plain Ethernet and on an 802.1Q VLAN (the tag survives the redirect); a drop
entry drops every later frame; removal and a stale heartbeat give the frames back to
user space; a SIGKILLed owner leaves no working redirect, and the next bridge start,
`check` and the lab clean its filters up; a bridge that may not use bpf() runs with
bypass: user.  Never skipped.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import netnslab
import pytest
from netnslab import CLIENT4, SERVER4, TcpTransfer, finish, spawn_listener

pytestmark = pytest.mark.lab

Q_V4 = ("203.0.113.1", "203.0.113.2")         # 802.1Q vid 100, 203.0.113.0/28

FORWARDER = r"""
import json, select, socket, struct, sys, time
from bridge import ebpf
from bridge.afpacket import (ETH_P_ALL, PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, PACKET_OUTGOING,
                             PACKET_STATISTICS, SO_ATTACH_BPF, SOL_PACKET, TP_STATUS_VLAN_TPID_VALID,
                             TP_STATUS_VLAN_VALID)
PORTS = ["eth0", "eth1"]
off = ebpf.KernelOffload.create(4096)
index = {n: socket.if_nametoindex(n) for n in PORTS}
for n in PORTS:
    off.attach_tc(index[n])
socks = {}
for n in PORTS:                          # the bridge's order: protocol 0, the filter, then bind
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, off.socket_filter_fd())
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((n, ETH_P_ALL))
    socks[n] = s
peer = {"eth0": "eth1", "eth1": "eth0"}
by_fd = {s.fileno(): n for n, s in socks.items()}
queued = {n: 0 for n in PORTS}           # PACKET_STATISTICS tp_packets: frames past the filter

def out(kind, **kw):
    print(json.dumps({"kind": kind, **kw}), flush=True)

def parse(data):
    et = data[12:14]
    if et == b"\x08\x00" and data[14] == 0x45:
        ipver, proto, src, dst, l4 = 4, data[23], data[26:30], data[30:34], 34
    elif et == b"\x86\xdd":
        ipver, proto, src, dst, l4 = 6, data[20], data[22:38], data[38:54], 54
    else:
        return None
    if proto not in (6, 17) or len(data) < l4 + 14:
        return None
    sport, dport = struct.unpack_from("!HH", data, l4)
    return ipver, proto, src, dst, sport, dport, data[l4 + 13] if proto == 6 else 0

armed = None
entries = []
dropped = set()
seen = {}
beating, next_beat = True, 0.0
out("ready", pid=__import__("os").getpid(), name=off.name)
while True:
    now = time.monotonic()
    if beating and now >= next_beat:
        off.heartbeat()
        next_beat = now + 0.5
    ready, _, _ = select.select([0] + list(by_fd), [], [], 0.1)
    for fd in ready:
        if fd == 0:
            cmd = sys.stdin.readline().split()
            if not cmd or cmd[0] == "quit":
                off.close()
                out("bye")
                raise SystemExit(0)
            if cmd[0] == "arm":               # arm ACTION tcp|udp PORT [FLOWS]
                armed = (cmd[1], 6 if cmd[2] == "tcp" else 17, int(cmd[3]), int(cmd[4]) if cmd[4:] else 1)
            elif cmd[0] == "remove":
                for e in entries:
                    off.remove(*e)
                entries.clear()
                dropped.clear()
            elif cmd[0] == "pause":
                beating = False
            elif cmd[0] == "beat":
                beating, next_beat = True, 0.0
            elif cmd[0] == "progstats":      # with sysctl kernel.bpf_stats_enabled=1
                out("progstats", **{n: ebpf.program_stats(fd) for n, fd in (("sock", off.sock_fd), ("tc", off.tc_fd))})
            elif cmd[0] == "stats":
                for n, s in socks.items():
                    queued[n] += struct.unpack("=II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[0]
                out("stats", seen={str(k): v for k, v in seen.items()}, queued=queued,
                    kernel=[off.read(*e) for e in entries], totals=off.totals())
            out("ok", cmd=cmd[0])
            continue
        name = by_fd[fd]
        try:
            data, anc, _flags, addr = socks[name].recvmsg(65536, socket.CMSG_SPACE(20))
        except OSError:
            continue
        if addr[2] == PACKET_OUTGOING:
            continue
        tag, vlan = b"", 0
        for level, kind, c in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _l, _s, _m, _n, tci, tpid = struct.unpack("=IIIHHHH", c[:20])
                if status & TP_STATUS_VLAN_VALID:
                    tag = struct.pack("!HH", tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100, tci)
                    vlan = tci & 0x0FFF
        f = parse(data)
        if f is not None:
            ipver, proto, src, dst, sport, dport, flags = f
            for p in {sport, dport}:
                seen[p] = seen.get(p, 0) + 1
            me, other = index[name], index[peer[name]]
            fwd = (me, ipver, proto, vlan, src, dst, sport, dport)
            rev = (other, ipver, proto, vlan, dst, src, dport, sport)
            if (armed and proto == armed[1] and armed[2] in (sport, dport) and not flags & 0x07
                    and fwd not in entries and rev not in entries):
                action = armed[0]
                armed = (*armed[:3], armed[3] - 1) if armed[3] > 1 else None
                ok = [off.add(*fwd, action, other if action == "pass" else 0),
                      off.add(*rev, action, me if action == "pass" else 0)]
                entries += [fwd, rev]
                if action == "drop":
                    dropped.update({(vlan, src, dst, sport, dport), (vlan, dst, src, dport, sport)})
                out("installed", action=action, ok=ok, vlan=vlan, sport=sport, dport=dport, ingress=name)
            if (vlan, src, dst, sport, dport) in dropped:
                continue                 # the user-space entry: frames queued before the kernel's
        try:
            socks[peer[name]].send(data[:12] + tag + data[12:] if tag else data)
        except OSError:
            pass
"""

# A UDP flow with a fixed source port: `n` datagrams, then "end" to port+1.
UDP_FLOW = r"""
import socket, sys, time
host, sport, dport, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", sport))
for i in range(n):
    s.sendto(b"dgram-%06d" % i, (host, dport))
    if i % 20 == 19:
        time.sleep(0.005)
e = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    e.sendto(b"end", (host, dport + 1))
"""


class Forwarder:
    """FORWARDER in the bridge namespace; commands on stdin, JSON lines back."""

    def __init__(self, lab: netnslab.Lab):
        self.lab = lab
        self.proc = lab.spawn("bridge", sys.executable, "-c", FORWARDER, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=str(netnslab.REPO), env={**os.environ, "PYTHONPATH": str(netnslab.REPO)})
        self.lines: dict[str, queue.Queue] = {}
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        ready = self.next("ready")
        self.pid, self.filter = ready["pid"], ready["name"]

    def _pump(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            self.lines.setdefault(msg["kind"], queue.Queue()).put(msg)

    def next(self, kind: str, timeout: float = 30) -> dict:
        try:
            return self.lines.setdefault(kind, queue.Queue()).get(timeout=timeout)
        except queue.Empty:
            raise netnslab.LabError(f"forwarder: no {kind!r} line (exit {self.proc.poll()}):\n"
                                    + "".join(self.stderr)) from None

    def cmd(self, *words: str) -> None:
        self.proc.stdin.write(" ".join(words) + "\n")
        self.proc.stdin.flush()
        self.next("ok")

    def stats(self) -> dict:
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        got = self.next("stats")
        self.next("ok")
        return got

    def seen(self, port: int) -> int:
        return self.stats()["seen"].get(str(port), 0)

    def kernel_packets(self) -> int:
        return sum(e[0] for e in self.stats()["kernel"] if e)

    def wait_seen_grows(self, port: int, timeout: float = 15) -> int:
        """Poll until user space sees more frames of `port` (returns the new count)."""
        start = self.seen(port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = self.seen(port)
            if now > start:
                return now
        raise AssertionError(f"no frame of port {port} reached user space in {timeout:.0f}s")

    def quit(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.next("bye")
        self.proc.wait(timeout=10)


def tc_state(lab: netnslab.Lab) -> dict[str, str]:
    return {port: lab.run("bridge", "tc", "filter", "show", "dev", port, "ingress").stdout
            + lab.run("bridge", "tc", "qdisc", "show", "dev", port).stdout for port in ("eth0", "eth1")}


def assert_no_offload_left(lab: netnslab.Lab) -> None:
    for port, text in tc_state(lab).items():
        assert "ipsbridge" not in text and "clsact" not in text, f"{port}: {text}"


# --------------------------------------------------------------------------- offloaded flows
def test_offloaded_tcp_flow_leaves_user_space_and_arrives_intact(lab):
    fw = Forwarder(lab)
    assert all(fw.filter in text and "direct-action" in text for text in tc_state(lab).values())
    fw.cmd("arm", "pass", "tcp", "5001")
    xfer = TcpTransfer(lab, SERVER4, 48_000_000, port=5001, rate=8_000_000)     # paced: about 6 s
    installed = fw.next("installed")
    assert installed["ok"] == [True, True] and installed["dport"] == 5001

    # offloaded: the flow's frames stop reaching the socket while the kernel counts them
    time.sleep(0.3)                      # frames queued before the entry drain first
    a = fw.stats()
    time.sleep(1.0)
    b = fw.stats()
    assert b["seen"]["5001"] == a["seen"]["5001"], (a, b)
    assert sum(e[0] for e in b["kernel"]) > sum(e[0] for e in a["kernel"]) + 100, (a, b)
    assert b["kernel"][0][0] > 0 and b["kernel"][1][0] > 0        # data one way, ACKs the other
    assert b["totals"]["bypass.kernel.pass_frames"] >= sum(e[0] for e in b["kernel"])

    # heartbeat stale (no write for 2 s): both programs step aside, user space forwards again
    fw.cmd("pause")
    fw.wait_seen_grows(5001)
    c = fw.stats()
    time.sleep(0.5)
    d = fw.stats()
    assert d["kernel"] == c["kernel"] and d["seen"]["5001"] > c["seen"]["5001"], (c, d)

    # heartbeat back: offloaded again
    fw.cmd("beat")
    time.sleep(0.3)
    e = fw.stats()
    time.sleep(1.0)
    f = fw.stats()
    assert f["seen"]["5001"] == e["seen"]["5001"], (e, f)
    assert sum(x[0] for x in f["kernel"]) > sum(x[0] for x in e["kernel"]), (e, f)

    # removed: back to user space, and the transfer completes with every byte
    fw.cmd("remove")
    fw.wait_seen_grows(5001)
    sent, received = xfer.result()
    assert sent == received, (sent, received)
    assert int(sent.split()[0]) == 48_000_000

    fw.quit()
    assert_no_offload_left(lab)


def test_drop_entry_drops_every_later_frame_of_the_flow(lab):
    fw = Forwarder(lab)
    fw.cmd("arm", "drop", "udp", "7000")
    counter = spawn_listener(lab, "server", netnslab.UDP_COUNT, SERVER4, "7000")
    lab.python("client", UDP_FLOW, SERVER4, "40123", "7000", "2000")
    installed = fw.next("installed")
    distinct, total = map(int, finish(counter).split())
    assert installed["ok"] == [True, True] and installed["sport"] == 40123
    assert (distinct, total) == (0, 0)                  # not one datagram after the decision
    s = fw.stats()
    kernel = s["kernel"][0][0]
    in_user = s["seen"]["7000"]                         # the deciding one and those queued before the entry
    assert kernel > 1000 and kernel + in_user == 2000, s
    assert s["totals"]["bypass.kernel.drop_frames"] == kernel
    assert s["totals"]["bypass.kernel.drop_bytes"] == kernel * (14 + 20 + 8 + 12)     # frame lengths
    assert s["totals"]["bypass.kernel.pass_frames"] == 0
    # the flow's end marker (another port) and other flows still pass
    lab.ping("client", SERVER4, count=2)
    fw.quit()
    assert_no_offload_left(lab)


def test_offloaded_flow_on_a_vlan_keeps_its_tag(lab):
    lab.add_vlan_tap("vl100", [(0x8100, 100)], addr4=Q_V4)
    fw = Forwarder(lab)
    lab.ping("client", Q_V4[1], count=2)                # neighbours resolved through user space
    fw.cmd("arm", "pass", "tcp", "5002")
    xfer = TcpTransfer(lab, Q_V4[1], 16_000_000, port=5002, rate=4_000_000)
    installed = fw.next("installed")
    assert installed["vlan"] == 100
    time.sleep(0.3)
    a = fw.stats()
    time.sleep(1.0)
    b = fw.stats()
    assert b["seen"]["5002"] == a["seen"]["5002"], (a, b)
    assert sum(e[0] for e in b["kernel"]) > sum(e[0] for e in a["kernel"]) + 50
    # the server's tagger takes only frames with tag 0x8100/100: every byte arriving means
    # the redirected frames kept it
    sent, received = xfer.result()
    assert sent == received
    fw.quit()
    assert_no_offload_left(lab)


# --------------------------------------------------------------------------- the bridge, end to end
E2E_RULES = ('alert tcp any any -> any any (msg:"never in random bytes"; content:"NEVER-IN-RANDOM-BYTES-42"; sid:1;)\n'
             'drop tcp any any -> any 5002 (msg:"marker"; content:"DROPME-MARKER"; sid:2;)\n')


def e2e_config(lab: netnslab.Lab, depth: str = "64kb", rules_text: str = E2E_RULES) -> str:
    rules = lab.write("e2e.rules", rules_text)
    return str(lab.write("e2e.yaml", f"""af-packet:
  - interface: eth0
    copy-mode: ips
    copy-iface: eth1
  - interface: eth1
    copy-mode: ips
    copy-iface: eth0
stream:
  bypass: yes
  reassembly:
    depth: {depth}
rule-files: [{rules}]
"""))


# Sends 10,000 clean bytes, then a segment with the drop rule's marker and more data,
# keeps the connection open 3 s (the sender retransmits what is never acknowledged), closes.
DROP_SOURCE = r"""
import hashlib, os, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
clean = os.urandom(10_000)
s = socket.create_connection((host, port), timeout=10)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.sendall(clean)
time.sleep(0.3)
s.sendall(b"..DROPME-MARKER.." + os.urandom(20_000))
time.sleep(3)
s.close()
print(len(clean), hashlib.sha256(clean).hexdigest(), flush=True)
"""

# Counts what arrives until 2 s of silence (the connection is never closed cleanly).
IDLE_SINK = r"""
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(60)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(2)
h, n = hashlib.sha256(), 0
try:
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d); n += len(d)
except (socket.timeout, ConnectionError):
    pass
print(n, h.hexdigest(), flush=True)
"""


def quiet_hosts(lab: netnslab.Lab) -> None:
    """Permanent ARP entries and no IPv6 on client and server: nothing but the test's own
    traffic crosses the bridge, so every frame its rings count during a transfer belongs
    to the transfer.  (Stopping router solicitations alone left the MLD reports and the
    solicitation already scheduled in the seconds after the lab came up: one of them once
    reached a ring in the middle of a transfer.)"""
    mac = {role: lab.run(role, "cat", "/sys/class/net/veth0/address").stdout.strip() for role in ("client", "server")}
    for role, other, addr in (("client", "server", SERVER4), ("server", "client", CLIENT4)):
        lab.run(role, "ip", "neigh", "replace", addr, "lladdr", mac[other], "dev", "veth0", "nud", "permanent")
        lab.sysctl(role, "net.ipv6.conf.veth0.disable_ipv6", "1")


def test_bridge_offloads_a_bypassed_flow_its_rings_stay_flat_and_bytes_arrive(lab):
    quiet_hosts(lab)
    bridge = lab.start_bridge("-c", e2e_config(lab), "--stats-interval", "1")
    (info,) = bridge.events("kernel_offload")
    assert info["tc"] == ["eth0", "eth1"]
    xfer = TcpTransfer(lab, SERVER4, 64_000_000, port=5001, rate=8_000_000)   # paced: about 8 s
    n0 = len(bridge.events("stats"))                                          # connected from here on
    deadline = time.monotonic() + 30
    while len(bridge.events("stats")) < n0 + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = bridge.events("stats")[n0:n0 + 5]
    assert len(stats) == 5 and xfer.source.poll() is None     # five reports while the transfer goes on
    # past the depth (64 KiB, in the first second) the rings see nothing more: the 3rd to
    # 5th reports (the workers report once a second) count the same frames
    ring = [(e["interfaces"]["eth0"]["received"], e["interfaces"]["eth1"]["received"]) for e in stats]
    assert ring[2] == ring[3] == ring[4], ring
    sent, received = xfer.result()
    assert sent == received
    totals = bridge.stop()
    insp = totals["inspector"]
    eth0 = totals["interfaces"]["eth0"]
    assert insp["flow.decided.stream-depth"] == 1 and insp["bypass.installed"] == 1
    assert insp["bypass.kernel.pass_frames"] > 40_000, insp          # 64 MB in ~1448-byte segments
    assert insp["bypass.kernel.pass_bytes"] > 64_000_000
    assert eth0["received"] < 500, eth0                              # the handshake, the first 64 KiB, FIN
    assert eth0["received"] == eth0["forwarded"] + sum(eth0["dropped"].values()) + sum(eth0["send_errors"].values())
    assert_no_offload_left(lab)


def test_bridge_keeps_a_dropped_flow_dropped_in_the_kernel(lab):
    bridge = lab.start_bridge("-c", e2e_config(lab), "--stats-interval", "0")
    sink = spawn_listener(lab, "server", IDLE_SINK, SERVER4, "5002")
    clean = lab.python("client", DROP_SOURCE, SERVER4, "5002").stdout.strip()
    got = finish(sink)
    assert got == clean, (got, clean)           # the bytes before the marker, nothing after it
    totals = bridge.stop()
    insp = totals["inspector"]
    dropped = totals["interfaces"]["eth0"]["dropped"]
    assert insp["bypass.installed"] >= 1 and insp["bypass.kernel.drop_frames"] >= 2, insp   # retransmissions
    assert insp["bypass.kernel.pass_frames"] == 0
    assert dropped.get("rule", 0) + dropped.get("flow", 0) >= 1, dropped
    assert_no_offload_left(lab)


def test_bridge_offloads_a_ping_flow_no_rule_applies_to_and_inspects_one_a_rule_does(lab):
    """An ICMP echo flow that no rule can match (only TCP rules loaded) is decided on its first
    request and reply and leaves the rings: its later echoes go through the kernel, every reply
    arrives.  With an ICMP rule loaded, every echo is inspected and the rule alerts."""
    quiet_hosts(lab)
    bridge = lab.start_bridge("-c", e2e_config(lab), "--stats-interval", "0")
    ping = lab.ping("client", SERVER4, count=200, interval=0.005)
    assert " 200 received" in ping.stdout, ping.stdout
    totals = bridge.stop()
    insp = totals["inspector"]
    assert insp["flow.decided.no-rules"] >= 1 and insp["bypass.installed"] >= 1, insp
    assert insp["bypass.kernel.pass_frames"] >= 390, insp                  # 400 echoes, the first two inspected
    for port in ("eth0", "eth1"):
        assert totals["interfaces"][port]["received"] < 20, totals["interfaces"]
    assert_no_offload_left(lab)

    cfg = e2e_config(lab, rules_text=E2E_RULES + 'alert icmp any any -> any any (msg:"echo reply"; itype:0; sid:3;)\n')
    eve = lab.workdir / "icmp-eve.json"
    bridge = lab.start_bridge("-c", cfg, "--stats-interval", "0", "--eve", str(eve))
    ping = lab.ping("client", SERVER4, count=50, interval=0.005)
    assert " 50 received" in ping.stdout, ping.stdout
    totals = bridge.stop()
    assert totals["inspector"]["bypass.kernel.pass_frames"] == 0
    assert totals["interfaces"]["eth1"]["received"] >= 50        # every reply reached the engine
    alerts = [json.loads(line) for line in eve.read_text().splitlines() if '"alert"' in line]
    assert sum(1 for a in alerts if a["alert"]["signature_id"] == 3) == 50


def test_ids_interface_gets_the_socket_filter_and_no_tc_program(lab):
    bridge = lab.start_bridge("--ids", "eth0", "--stats-interval", "0")
    (info,) = bridge.events("kernel_offload")
    assert info["interfaces"] == ["eth0"] and info["tc"] == []
    assert_no_offload_left(lab)                 # no clsact, no tc filter: only the socket's filter
    totals = bridge.stop()
    assert totals["inspector"]["bypass.kernel.pass_frames"] == 0


# --------------------------------------------------------------------------- crash and cleanup
# Counts datagrams on PORT until told to stop (a line on stdin): "distinct total".
UDP_TALLY = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
seen, total = set(), 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 60)
    if s in r:
        seen.add(s.recv(4096)); total += 1
    elif r:
        while select.select([s], [], [], 0.2)[0]:      # what is still in flight
            seen.add(s.recv(4096)); total += 1
        break
print(len(seen), total, flush=True)
"""


def _udp_arrivals(lab, sport: int, n: int) -> tuple[int, int]:
    """(distinct, total) datagrams of a UDP flow from client:sport that reached the server."""
    counter = lab.spawn("server", sys.executable, "-c", UDP_TALLY, SERVER4, "7100", stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert counter.stdout.readline().strip() == "listening"
    lab.python("client", UDP_FLOW, SERVER4, str(sport), "7100", str(n))
    lab.ping("client", SERVER4, count=1, check=False)   # a round trip after the last datagram
    out, _err = counter.communicate("stop\n", timeout=30)
    distinct, total = map(int, out.split())
    return distinct, total


def test_a_killed_owner_leaves_no_working_redirect_and_is_cleaned_up(lab):
    fw = Forwarder(lab)
    fw.cmd("arm", "pass", "udp", "7100")
    assert _udp_arrivals(lab, 40200, 300) == (300, 300)  # decided on the first, the rest via the kernel
    assert fw.kernel_packets() >= 250
    os.kill(fw.pid, signal.SIGKILL)
    fw.proc.wait(timeout=10)
    state = tc_state(lab)
    assert all(fw.filter in text for text in state.values()), state     # a crash leaves the filter

    # nobody forwards now; a redirect still working would deliver the flow anyway
    time.sleep(2.5)                                     # the heartbeat is now older than 2 s
    assert _udp_arrivals(lab, 40200, 100) == (0, 0)

    # `check` reports the filters, the fix removes them
    proc = lab.run("bridge", sys.executable, "-m", "bridge", "check", "--bridge", "eth0:eth1", check=False,
                   cwd=str(netnslab.REPO), env={**os.environ, "PYTHONPATH": str(netnslab.REPO)})
    assert proc.returncode == 1
    for port in ("eth0", "eth1"):
        assert any(line.startswith(f"warning: {port}: offload-filters") and fw.filter in line
                   and "ipsbridge check --fix" in line for line in proc.stdout.splitlines()), proc.stdout
    fixed = lab.python("bridge", "from bridge import syscheck\n"
                       "from conf.model import Config, Interface\n"
                       "c = Config(af_packet=[Interface('eth0', copy_mode='ips', copy_iface='eth1'),"
                       " Interface('eth1', copy_mode='ips', copy_iface='eth0')])\n"
                       "print('\\n'.join(syscheck.fix_kernel_offload(c)))")
    assert fixed.stdout.count("removed tc filter") == 2 and fixed.stdout.count("clsact") == 2, fixed.stdout
    assert_no_offload_left(lab)


def test_a_dead_worker_is_restarted_and_a_killed_bridge_leaves_no_working_redirect(lab):
    """A worker killed with SIGKILL: its slot restarts with the offload's socket filter, the
    tc filters stay (the same owner); the supervisor killed too: the workers follow it
    (PR_SET_PDEATHSIG) and the next start removes the filters it left."""
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    assert all(f"ipsbridge:{bridge.pid}:" in text for text in tc_state(lab).values())
    (ready,) = bridge.events("ready")
    os.kill(ready["pids"][0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not bridge.events("worker_died") and time.monotonic() < deadline:
        time.sleep(0.1)
    (died,) = bridge.events("worker_died")
    assert died["action"] == "restarted"
    lab.ping("client", SERVER4, count=3)
    assert all(f"ipsbridge:{bridge.pid}:" in text for text in tc_state(lab).values())
    os.kill(bridge.pid, signal.SIGKILL)
    bridge.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(died["new_pid"]):
        time.sleep(0.1)
    assert not _alive(died["new_pid"]), "a worker outlived its supervisor"
    again = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    assert len(again.events("stale_offload_removed")) >= 2, again.log()
    again.stop()
    assert_no_offload_left(lab)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_next_bridge_removes_a_dead_bridges_filters_and_its_own_at_exit(lab):
    fw = Forwarder(lab)
    os.kill(fw.pid, signal.SIGKILL)
    fw.proc.wait(timeout=10)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    removed = [e["detail"] for e in bridge.events("stale_offload_removed")]
    assert sorted(removed) == sorted(f"{port}: removed {what}" for port in ("eth0", "eth1") for what in (
        f"tc filter {fw.filter} (pref 49152)", "the clsact qdisc it left empty")), bridge.log()
    (info,) = bridge.events("kernel_offload")
    assert info["tc"] == ["eth0", "eth1"]
    state = tc_state(lab)
    assert all(fw.filter not in text and f"ipsbridge:{bridge.pid}:" in text and "direct-action" in text
               for text in state.values()), state
    lab.ping("client", SERVER4, count=3)
    bridge.stop()
    assert_no_offload_left(lab)


def test_lab_teardown_removes_the_offload_filters(lab):
    gone = Forwarder(lab)
    os.kill(gone.pid, signal.SIGKILL)
    gone.proc.wait(timeout=10)
    alive = Forwarder(lab)                             # a second owner, running, on the same ports
    state = tc_state(lab)
    assert all(gone.filter in text and alive.filter in text for text in state.values()), state
    removed = netnslab.remove_offload_filters(lab.bridge)          # owners gone only
    assert sorted(removed) == [f"{p}: removed tc filter {gone.filter} (pref 49152)" for p in ("eth0", "eth1")]
    state = tc_state(lab)
    assert all(gone.filter not in text and alive.filter in text for text in state.values()), state
    os.kill(alive.pid, signal.SIGKILL)
    alive.proc.wait(timeout=10)
    removed = netnslab.remove_offload_filters(lab.bridge, all_owners=True)    # what Lab.down() does
    assert len(removed) == 4, removed                  # its two filters and the two clsact qdiscs
    assert_no_offload_left(lab)


def test_without_bpf_permission_the_bridge_runs_with_bypass_user(lab, monkeypatch):
    caps = "-bpf,-sys_admin,-perfmon"
    spawn = lab.spawn

    def spawn_without_bpf(role, *argv, **kw):
        return spawn(role, "setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *argv, **kw)

    monkeypatch.setattr(lab, "spawn", spawn_without_bpf)
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    monkeypatch.undo()
    (warning,) = bridge.events("kernel_offload_unavailable")
    assert warning["level"] == "warning" and warning["bypass"] == "user"
    assert "Operation not permitted" in warning["reason"], warning
    assert warning["interfaces"] == ["eth0", "eth1"]
    assert bridge.events("kernel_offload") == []
    assert_no_offload_left(lab)
    sent, received = netnslab.tcp_transfer(lab, SERVER4, 1_000_000, port=5003)
    assert sent == received
    bridge.stop()
