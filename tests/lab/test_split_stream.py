"""Inline TCP stream reassembly on the live bridge.

    client ns: a real TCP client     eth0 [ipsbridge run --mode ips      eth1    server ns: a real TCP server
    (TCP_NODELAY, one small write         -S split.rules --eve]                  and a packet capture on veth0
     per segment)

The rule drops a content that no single segment carries: the client writes it
in four pieces, each one its own segment.  The bridge must drop the segment
that completes it (reason "rule", EVE drop.reason "rules", alert "blocked") and
every later packet of the flow, both directions (reason "flow", EVE "flow drop"),
so the server's application never holds the marker; the clean twin -- the
same writes with one byte of the marker changed -- must arrive intact with no
drop.  A capture on the server's
veth0 shows what the bridge forwarded, segment by segment.

Out-of-order and retransmitted segments cannot be made with a real client
here (the lab's kernel has no netem to reorder them), so `test_crafted_segments_*` sends them
with scapy over a packet socket in the client namespace, as the other lab
tests send crafted frames, from an address the client's own stack does not
own (its kernel neither answers the server nor resets the session); the
server is still a real socket.

Timing: nothing waits a fixed time for the outcome.  The client paces on the
server application's acknowledgments, and the test waits for the bridge's
EVE records (written as each frame is decided) before the next step.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

import netnslab
from netnslab import SERVER4, SERVER6

pytestmark = pytest.mark.lab

PORT = 5101
SID = 1000101
MARKER = b"forbidden-payload-marker"
RULES = f'drop tcp any any -> any {PORT} (msg:"split marker"; content:"{MARKER.decode()}"; sid:{SID}; rev:1;)\n'

# the client's writes: the marker in four pieces between other data; the fifth
# write completes it
WRITES = [b"hello, here it comes: ", b"forbi", b"dden-pay", b"load-ma", b"rker",
          b" and more data after it\n", b"and the end\n"]
COMPLETING = 4
TWIN = WRITES[:COMPLETING] + [b"rkeX"] + WRITES[COMPLETING + 1:]     # one byte changed
assert MARKER in b"".join(WRITES) and MARKER not in b"".join(TWIN)
assert not any(MARKER in w for w in WRITES)

# ------------------------------------------------------------------ programs run in the namespaces
# The server acknowledges at application level ("<bytes so far>\n") when asked to, so
# the client can wait for each write to arrive before the next one: every write then
# leaves a socket with nothing queued and becomes one segment of its own.  SIGTERM:
# it writes to the client once more (the server -> client direction of a dropped flow
# must be dropped too) and reports.
SERVER = r"""
import json, select, signal, socket, sys
host, port, app_acks = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1); s.settimeout(60)
stop = False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
print("listening", flush=True)
c, peer = s.accept()
got, end = bytearray(), "stopped"
while not stop:
    if not select.select([c], [], [], 0.1)[0]:
        continue
    try:
        d = c.recv(65536)
    except ConnectionResetError:
        end = "reset"; break
    if not d:
        end = "eof"; break
    got += d
    if app_acks:
        c.sendall(b"%d\n" % len(got))
if end == "stopped":
    c.setblocking(False)
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except (BlockingIOError, ConnectionResetError):
        pass
    try:
        c.send(b"server-still-here\n")
    except OSError:
        pass
print(json.dumps({"peer_port": peer[1], "end": end, "data": got.hex()}), flush=True)
c.close()
"""

# A real client: TCP_NODELAY, one write at a time, each waited for until the server
# application acknowledged it.  A line on stdin means: give up waiting -- the
# rest is written anyway, then the connection is reset.
CLIENT = r"""
import json, select, socket, struct, sys, time
host, port, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
writes = [bytes.fromhex(x) for x in sys.argv[4].split(",")]
s = socket.create_connection((host, port), timeout=30, source_address=("", sport))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("connected", flush=True)
acked, buf, sent, stalled_at = 0, b"", 0, None
watch = [s, sys.stdin]
def wait_acked(total):
    global acked, buf
    deadline = time.monotonic() + 60
    while acked < total:
        r = select.select(watch, [], [], max(0.0, deadline - time.monotonic()))[0]
        if not r:
            return False
        if sys.stdin in r:
            if sys.stdin.readline():
                return False
            watch.remove(sys.stdin)      # no stdin: wait for the server only
            continue
        d = s.recv(4096)
        if not d:
            return False
        buf += d
        *lines, buf = buf.split(b"\n")
        if lines:
            acked = int(lines[-1])
    return True
for i, w in enumerate(writes):
    s.sendall(w)
    sent += len(w)
    if stalled_at is None:
        if not wait_acked(sent):
            stalled_at = i
    else:
        time.sleep(0.02)
if stalled_at is None:
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    while s.recv(4096):
        pass
    s.close()
else:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                          # a reset, which the bridge must drop as well
print(json.dumps({"stalled_at": stalled_at, "sent": sent}), flush=True)
"""

# Every TCP segment to PORT that arrives on the server's veth0 (IPv4 and IPv6):
# [client port, seq, flags, payload hex], in arrival order, printed at SIGTERM.
CAPTURE = r"""
import json, signal, socket, struct, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)   # SO_RCVBUFFORCE
s.bind(("veth0", 3))
s.settimeout(0.2)
segs, stop = [], False
def on_term(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def take(data, addr):
    if addr[2] == socket.PACKET_OUTGOING:
        return
    etype = struct.unpack_from("!H", data, 12)[0]
    if etype == 0x0800 and data[23] == 6:
        l4, end = 14 + (data[14] & 15) * 4, 14 + struct.unpack_from("!H", data, 16)[0]
    elif etype == 0x86DD and data[20] == 6:
        l4, end = 54, 54 + struct.unpack_from("!H", data, 18)[0]
    else:
        return
    sport, dport, seq = struct.unpack_from("!HHI", data, l4)
    if dport == port:
        segs.append([sport, seq, data[l4 + 13], data[l4 + (data[l4 + 12] >> 4) * 4:end].hex()])
print("listening", flush=True)
while not stop:
    try:
        take(*s.recvfrom(65536))
    except socket.timeout:
        pass
s.setblocking(False)
while True:
    try:
        take(*s.recvfrom(65536))
    except BlockingIOError:
        break
print(json.dumps(segs), flush=True)
"""

# A TCP session from scapy frames: handshake with the real server, then the planned
# segments ([stream offset, payload hex], offsets from the first data byte) in order,
# and a FIN at the end of the stream when asked.
CRAFTED = r"""
import json, socket, sys, time
from scapy.all import IP, TCP, Ether
src, dst, smac, dmac, dport, sport = sys.argv[1:5] + [int(sys.argv[5]), int(sys.argv[6])]
plan, fin_at = json.loads(sys.argv[7]), int(sys.argv[8])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("veth0", 0x0800))
s.settimeout(0.5)
isn = 0x10000000
head = Ether(src=smac, dst=dmac) / IP(src=src, dst=dst)
def send(flags, seq, ack, data=b""):
    s.send(bytes(head / TCP(sport=sport, dport=dport, flags=flags, seq=seq & 0xFFFFFFFF,
                            ack=ack, window=65535) / data))
send("S", isn, 0)
deadline, srv_isn = time.monotonic() + 30, None
while srv_isn is None:
    if time.monotonic() > deadline:
        sys.exit("no SYN-ACK from the server")
    try:
        p = Ether(s.recv(65536))
    except socket.timeout:
        send("S", isn, 0)
        continue
    if (TCP in p and p[IP].src == dst and p[TCP].sport == dport and p[TCP].dport == sport
            and p[TCP].flags & 0x12 == 0x12):
        srv_isn = p[TCP].seq
ack = (srv_isn + 1) & 0xFFFFFFFF
send("A", isn + 1, ack)
for off, data in plan:
    send("PA", isn + 1 + off, ack, bytes.fromhex(data))
if fin_at >= 0:
    send("FA", isn + 1 + fin_at, ack)
print("sent", flush=True)
"""


# ------------------------------------------------------------------ helpers
def start_bridge(lab):
    rules = lab.write("split.rules", RULES)
    eve = lab.workdir / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--mode", "ips", "--stats-interval", "0",
                              "-S", str(rules), "--eve", str(eve))
    return bridge, eve


def spawn(lab, role: str, code: str, *args: str, ready: str, stdin=None) -> subprocess.Popen:
    """A Python program in a namespace, returned once it printed its ready line.

    Unbuffered pipes: a buffered reader would read ahead past the ready line, and
    communicate() (which reads the descriptor) would then lose what it took -- a fast
    client's result line was lost that way on a loaded machine."""
    proc = lab.spawn(role, sys.executable, "-c", code, *args, stdin=stdin, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, bufsize=0)
    line = proc.stdout.readline().decode()
    if line.strip() != ready:
        proc.kill()
        raise netnslab.LabError(f"{role} program did not start: {line!r} {proc.stderr.read().decode()}")
    return proc


def result(proc: subprocess.Popen, timeout: float = 60):
    """The JSON line a program prints last (it must exit 0)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise netnslab.LabError(f"still running after {timeout:.0f}s: {out!r} {err!r}")
    if proc.returncode != 0 or not out.strip():
        raise netnslab.LabError(f"exit {proc.returncode}, stdout {out!r}: {err.decode()}")
    return json.loads(out.decode().splitlines()[-1])


def eve_records(path) -> list[dict]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:              # a line still being appended
            pass
    return out


def of_flow(records: list[dict], cport: int) -> list[dict]:
    """The alert and drop records of the session from client port `cport` to PORT."""
    return [r for r in records if r.get("event_type") in ("alert", "drop")
            and {r.get("src_port"), r.get("dest_port")} == {cport, PORT}]


COUNTER_REASON = {"rules": "rule", "flow drop": "flow"}   # EVE drop.reason -> dropped[...] counter


def drops(records: list[dict], iface: str | None = None) -> list[str]:
    return [r["drop"]["reason"] for r in records
            if r["event_type"] == "drop" and (iface is None or r["in_iface"] == iface)]


def wait_until(cond, what: str, bridge, eve, timeout: float = 30):
    """Poll `cond()` until it is truthy (the bridge decides within milliseconds; the
    bound is for a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            tail = "\n".join(json.dumps(r) for r in eve_records(eve)[-20:])
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n--- EVE (last 20) ---\n"
                                 f"{tail}\n--- bridge ---\n{bridge.log()}")
        time.sleep(0.02)


def data_segments(segs: list, cport: int) -> list[tuple[int, bytes]]:
    """(seq, payload) of the data segments the server got from `cport`, in arrival order,
    repeats (retransmissions of the same bytes) left out."""
    out, seen = [], set()
    for sport, seq, _flags, payload in segs:
        key = (seq, payload)
        if sport == cport and payload and key not in seen:
            seen.add(key)
            out.append((seq, bytes.fromhex(payload)))
    return out


def unaccounted(c: dict) -> int:
    return c["received"] - c["forwarded"] - sum(c["dropped"].values()) - sum(c["send_errors"].values())


def stop_dropped_server(bridge, eve, server, cport: int) -> dict:
    """SIGTERM the server of a dropped flow: it writes to the client once more and closes;
    that data and its FIN must be dropped on eth1 (reason flow).  Returns its report."""
    server.send_signal(signal.SIGTERM)
    got = result(server)
    wait_until(lambda: any(r["event_type"] == "drop" and r["in_iface"] == "eth1" and r["drop"].get("fin")
                           for r in of_flow(eve_records(eve), cport)),
               "the server's last segment and FIN dropped on eth1", bridge, eve)
    return got


def check_totals(totals: dict, records: list[dict], n_rule_drops: int) -> None:
    """The counters say what EVE says: `n_rule_drops` rule drops on eth0 and one flow
    drop per later packet, on the port it arrived on; every frame accounted for."""
    ifs = totals["interfaces"]
    for name in ("eth0", "eth1"):
        c = ifs[name]
        reasons = drops(records, name)
        want = {}
        for reason in reasons:                # EVE has Suricata's reason names, the counters ours
            ours = COUNTER_REASON.get(reason, reason)
            want[ours] = want.get(ours, 0) + 1
        assert c["dropped"] == want, (name, c["dropped"], want)
        assert unaccounted(c) == 0 and c["inspector_errors"] == 0, (name, c)
    assert ifs["eth0"]["dropped"].get("rule", 0) == n_rule_drops
    assert "rule" not in ifs["eth1"]["dropped"]
    insp = totals["inspector"]
    assert insp["drops.rule"] == n_rule_drops
    # a flow drop is the engine's, or the fast path's once the engine decided the flow (bridge.stats)
    assert insp["drops.flow"] + insp.get("bypass.drop_frames", 0) == sum(
        ifs[n]["dropped"].get("flow", 0) for n in ("eth0", "eth1"))
    assert insp["alerts"] == n_rule_drops


def check_blocked(flow: list[dict], cport: int, server_ip: str) -> None:
    """One alert, blocked, on the completing segment; then only flow drops."""
    alerts = [r for r in flow if r["event_type"] == "alert"]
    assert len(alerts) == 1, alerts
    (a,) = alerts
    assert a["alert"]["signature_id"] == SID and a["alert"]["action"] == "blocked", a
    assert (a["src_port"], a["dest_port"], a["dest_ip"], a["direction"]) == (cport, PORT, server_ip, "to_server"), a
    reasons = drops(flow)
    assert reasons[0] == "rules" and set(reasons[1:]) == {"flow drop"}, reasons
    first = next(r for r in flow if r["event_type"] == "drop")
    assert first["alert"]["signature_id"] == SID and first["in_iface"] == "eth0", first
    assert "flow drop" in drops(flow, "eth0") and "flow drop" in drops(flow, "eth1"), reasons


# ------------------------------------------------------------------ a real client, small writes
@pytest.mark.parametrize("host", [SERVER4, SERVER6], ids=["v4", "v6"])
def test_split_marker_dropped_and_clean_twin_intact(lab, host):
    bridge, eve = start_bridge(lab)
    cap = spawn(lab, "server", CAPTURE, str(PORT), ready="listening")

    # the marker: everything before the completing write arrives, then the flow is dead
    bad_port, twin_port = 41001, 41002
    server = spawn(lab, "server", SERVER, host, str(PORT), "1", ready="listening")
    client = spawn(lab, "client", CLIENT, host, str(PORT), str(bad_port), ",".join(w.hex() for w in WRITES),
                   ready="connected", stdin=subprocess.PIPE)
    # the rule drop, then the client's own retransmission of that segment (RTO / tail loss
    # probe) dropped as part of the flow: then the client may stop waiting for it
    wait_until(lambda: drops(of_flow(eve_records(eve), bad_port), "eth0")[:2] == ["rules", "flow drop"],
               "the completing segment dropped by the rule and its retransmission by the flow", bridge, eve)
    client.stdin.write(b"give up\n")
    sent = result(client)
    assert sent["stalled_at"] == COMPLETING, sent
    # the client wrote the rest and reset the connection: all of it dropped on eth0
    wait_until(lambda: any(r["event_type"] == "drop" and r["drop"].get("rst")
                           for r in of_flow(eve_records(eve), bad_port)),
               "the client's reset dropped", bridge, eve)
    got = stop_dropped_server(bridge, eve, server, bad_port)
    assert got["peer_port"] == bad_port and got["end"] == "stopped", got
    assert bytes.fromhex(got["data"]) == b"".join(WRITES[:COMPLETING])

    # the clean twin, same port, same writes, one byte different: intact, nothing dropped
    server = spawn(lab, "server", SERVER, host, str(PORT), "1", ready="listening")
    client = spawn(lab, "client", CLIENT, host, str(PORT), str(twin_port), ",".join(w.hex() for w in TWIN),
                   ready="connected", stdin=subprocess.DEVNULL)
    sent = result(client)
    got = result(server)
    assert sent == {"stalled_at": None, "sent": len(b"".join(TWIN))}, sent
    assert got["peer_port"] == twin_port and got["end"] == "eof", got
    assert bytes.fromhex(got["data"]) == b"".join(TWIN)

    cap.send_signal(signal.SIGTERM)
    segs = result(cap)
    totals = bridge.stop()
    records = eve_records(eve)

    # what the bridge forwarded, segment by segment: one segment per write, and of the
    # marker flow nothing from the completing write on -- no data, no FIN, no reset
    bad = data_segments(segs, bad_port)
    assert [p for _, p in bad] == WRITES[:COMPLETING], bad
    assert [p for _, p in data_segments(segs, twin_port)] == TWIN
    assert [s for s in segs if s[0] == bad_port and s[2] & 0x05] == []     # no FIN, no RST
    assert not any(MARKER.hex() in s[3] for s in segs)

    check_blocked(of_flow(records, bad_port), bad_port, host)
    assert of_flow(records, twin_port) == []        # the twin: no alert, no drop
    check_totals(totals, records, n_rule_drops=1)
    assert totals["interfaces"]["eth0"]["normalized"] == 0      # a real client never overlaps


# ------------------------------------------------------------------ crafted: out of order, retransmissions
PREFIX, SUFFIX = b"hello, here it comes: ", b" and more data after it\n"
STREAM = PREFIX + MARKER + SUFFIX
TWIN_STREAM = PREFIX + MARKER[:-1] + b"X" + SUFFIX
M = len(PREFIX)
A, B, C = M + 5, M + 13, M + 24          # the marker's pieces: [M, A) [A, B) [B, C)


def plan_out_of_order(s: bytes) -> list:
    """The marker's end and the rest come before its middle (held out of order); the
    middle fills the hole and completes the marker; then the middle again (a
    retransmission)."""
    return [(0, s[:A]), (B, s[B:]), (A, s[A:B]), (A, s[A:B])]


def plan_retransmission_with_new_data(s: bytes) -> list:
    """A retransmission of the middle that carries the new data completing the marker (as
    Linux collapses segments when it retransmits); then the rest."""
    return [(0, s[:A]), (A, s[A:B]), (A, s[A:C]), (C, s[C:])]


def plan_overlap_different_data(s: bytes) -> list:
    """The same as above, but the retransmission carries other bytes where it overlaps:
    the receiver keeps the first ones, so must the bridge (it inspects and forwards those)."""
    return [(0, s[:A]), (A, s[A:B]), (A, b"Q" * (B - A) + s[B:C]), (C, s[C:])]


# plan -> (its function, index of the segment completing the marker, stream bytes the
# server's application gets when that segment is dropped)
PLANS = {
    "out-of-order": (plan_out_of_order, 2, A),
    "retransmission-new-data": (plan_retransmission_with_new_data, 2, B),
    "overlap-different-data": (plan_overlap_different_data, 2, B),
}


def first_data(plan: list) -> list:
    """Each segment's payload as a receiver holding the first data has it."""
    held: dict[int, int] = {}
    out = []
    for off, data in plan:
        out.append((off, bytes(held.setdefault(off + i, ch) for i, ch in enumerate(data))))
    return out


SPARE4 = "198.51.100.9"                   # in the lab's subnet, on no interface


def mac(lab, role: str) -> str:
    return lab.run(role, "cat", "/sys/class/net/veth0/address").stdout.strip()


@pytest.mark.parametrize("name", list(PLANS))
def test_crafted_segments_marker_dropped_and_twin_intact(lab, name):
    make, completing, delivered = PLANS[name]
    client_mac, server_mac = mac(lab, "client"), mac(lab, "server")
    # the server reaches the spare address at the client's MAC; the client's kernel, which
    # does not own it, drops what comes back without answering (no forwarding)
    lab.run("server", "ip", "neigh", "replace", SPARE4, "lladdr", client_mac, "dev", "veth0", "nud", "permanent")
    bridge, eve = start_bridge(lab)
    cap = spawn(lab, "server", CAPTURE, str(PORT), ready="listening")

    def session(sport: int, plan: list, fin: bool) -> subprocess.Popen:
        server = spawn(lab, "server", SERVER, SERVER4, str(PORT), "0", ready="listening")
        out = lab.python("client", CRAFTED, SPARE4, SERVER4, client_mac, server_mac, str(PORT), str(sport),
                         json.dumps([[off, data.hex()] for off, data in plan]),
                         str(max(off + len(data) for off, data in plan) if fin else -1))
        assert out.stdout.strip() == "sent", out
        return server

    bad_port, twin_port = 42001, 42002
    plan = make(STREAM)
    server = session(bad_port, plan, fin=False)
    after = len(plan) - completing - 1           # segments sent after the completing one
    wait_until(lambda: drops(of_flow(eve_records(eve), bad_port), "eth0") == ["rules"] + ["flow drop"] * after,
               f"one rule drop and {after} flow drops", bridge, eve)
    got = stop_dropped_server(bridge, eve, server, bad_port)
    assert bytes.fromhex(got["data"]) == STREAM[:delivered], got

    twin = make(TWIN_STREAM)
    server = session(twin_port, twin, fin=True)
    got = result(server)
    assert got["end"] == "eof" and bytes.fromhex(got["data"]) == TWIN_STREAM, got

    cap.send_signal(signal.SIGTERM)
    segs = result(cap)
    totals = bridge.stop()
    records = eve_records(eve)

    # forwarded: the marker session's segments before the completing one, the twin's all,
    # each with the first data where it overlapped (the bridge rewrites the others)
    forwarded = [(sport, bytes.fromhex(p)) for sport, _seq, _f, p in segs if p]
    assert [p for sport, p in forwarded if sport == bad_port] == [d for _, d in first_data(plan)[:completing]]
    assert [p for sport, p in forwarded if sport == twin_port] == [d for _, d in first_data(twin)]

    check_blocked(of_flow(records, bad_port), bad_port, SERVER4)
    assert of_flow(records, twin_port) == []
    check_totals(totals, records, n_rule_drops=1)
    # the twin's overlapping segment was forwarded rewritten (the marker's was dropped)
    overlap = name == "overlap-different-data"
    assert totals["interfaces"]["eth0"]["normalized"] == int(overlap)
    assert totals["inspector"].get("stream.overlap_diff_data", 0) == 2 * overlap   # both sessions saw it
