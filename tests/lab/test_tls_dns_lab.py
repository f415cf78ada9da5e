"""TLS and DNS rules on the live bridge: real servers and clients in the namespaces.

    client ns                  eth0 [ipsbridge run --mode ips -S X.rules --eve] eth1   server ns
    python ssl client (SNI)                                                            python ssl server (4443)
    DNS client (UDP / TCP)                                                             DNS server (53, UDP + TCP)

TLS: a drop rule on tls.sni stops the handshake that names blocked.example at
its ClientHello: the server never sees the hello (its SNI callback never runs
for that name), the client's handshake times out, and the flow stays dropped
(the client's retransmissions are "flow drop" in EVE).  Handshakes with another
SNI complete and carry data intact, over TLS 1.2 and 1.3.  An alert rule on
tls.cert_subject (the CN of a certificate made for the test) fires on the TLS 1.2
handshake only: TLS 1.3 encrypts the server's certificate.

DNS over UDP: a drop rule on dns.query (nocase, endswith) drops the queries for
blocked.example and its subdomains in any case; the server never sees them, a
resolver-style retry on the same socket is a "flow drop".  Other names,
blocked.example.org among them, are answered (A 203.0.113.x).  An alert rule on
another name alerts without dropping.

DNS over TCP (2-byte length framing): on one connection the first query is
answered, the second (blocked) is dropped and the flow with it, so a third query
on that connection is never answered; a new connection is.

The certificate is made with openssl (netns-lab/install.sh installs it) or,
without it, python's cryptography; with neither the test fails and says what to
install.  Documentation addresses only; every helper process is started through
the lab (killed by PID at teardown) and the servers end on SIGTERM.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from netnslab import SERVER4, finish, spawn_listener

pytestmark = pytest.mark.lab

TLS_PORT = 4443          # not 443: TLS is detected by content, not by port
DNS_PORT = 53            # DNS is detected on its detection port only (Suricata 7's default, dp 53)
DOC_NET = ipaddress.ip_network("203.0.113.0/24")

SID_SNI, SID_CERT = 1000801, 1000802
SID_QUERY, SID_REPORT = 1000811, 1000812


# --------------------------------------------------------------------- shared helpers
def eve_records(path: Path) -> list[dict]:
    """The EVE file's records; a last line still being written is left out."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(pred, timeout: float = 20.0) -> bool:
    """Poll `pred` until it is true or the deadline passes (the asserts after it say what failed)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def alerts_by_sid(recs: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in recs:
        if r.get("event_type") == "alert":
            out.setdefault(r["alert"]["signature_id"], []).append(r)
    return out


def drops(recs: list[dict]) -> list[dict]:
    return [r for r in recs if r.get("event_type") == "drop"]


def drop_line(rec: dict) -> str:
    """A drop record in one line, for assertion messages: direction, ports, TCP flags, seq."""
    d = rec["drop"]
    flags = "".join(c for c, k in (("S", "syn"), ("F", "fin"), ("R", "rst"), ("P", "psh"), ("A", "ack")) if d.get(k))
    tcp = f" [{flags}] seq {d['tcpseq']}" if "tcpseq" in d else ""
    return (f"{rec.get('direction')} {rec.get('src_port')}->{rec.get('dest_port')}{tcp} "
            f"len {d.get('len')}: {d['reason']}")


def ports(rec: dict) -> set[int]:
    return {rec.get("src_port"), rec.get("dest_port")}


def dropped_by_reason(totals: dict) -> dict[str, int]:
    """The bridge's drops summed over both ports (a dropped TCP flow's later frames come
    from either side: the server's FIN when it closes is one)."""
    out: dict[str, int] = {}
    for counters in totals["interfaces"].values():
        for reason, n in counters["dropped"].items():
            out[reason] = out.get(reason, 0) + n
    return out


def start_bridge(lab, rules_text: str):
    rules = lab.write("lab.rules", rules_text)
    eve = lab.workdir / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--mode", "ips", "--stats-interval", "0",
                              "-S", str(rules), "--eve", str(eve))
    return bridge, eve


# --------------------------------------------------------------------- TLS
def make_certificate(workdir: Path, cn: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for `cn` (subject O=ipsbridge lab, CN=cn): (cert, key)."""
    cert, key = workdir / "server.crt", workdir / "server.key"
    openssl = shutil.which("openssl")
    if openssl:
        proc = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
             "-subj", f"/O=ipsbridge lab/CN={cn}"],
            capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            pytest.fail(f"openssl req -x509 failed ({proc.returncode}): {proc.stderr}", pytrace=False)
        return cert, key
    try:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.fail("cannot make the TLS test certificate: neither the openssl command nor python's "
                    "cryptography is installed; install openssl (apt-get install openssl, or run "
                    "netns-lab/install.sh)", pytrace=False)
    pk = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipsbridge lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
           .sign(pk, hashes.SHA256()))
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cert, key


# Prints "hello SNI" when a ClientHello arrives (the SNI callback), "done SNI VERSION"
# when the handshake completes, "echoed SNI N" after echoing N bytes back.
TLS_SERVER = r"""
import signal, socket, ssl, struct, sys, threading
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
host, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
def say(*words):
    with lock:
        print(*words, flush=True)
mine = threading.local()
def on_sni(sock, name, ctx):
    mine.sni = name
    say("hello", name)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.sni_callback = on_sni
def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("eof after %d of %d bytes" % (len(data), n))
        data += chunk
    return data
def serve(conn):
    mine.sni = None
    conn.settimeout(30)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except OSError as e:
        say("failed", mine.sni, type(e).__name__)
        return
    say("done", mine.sni, tls.version())
    try:
        (n,) = struct.unpack("!I", recv_exact(tls, 4))
        tls.sendall(recv_exact(tls, n))
        say("echoed", mine.sni, n)
    except OSError as e:
        say("broken", mine.sni, type(e).__name__)
    finally:
        tls.close()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, port))
ls.listen(8)
print("listening", flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# One handshake with SNI (verification off), at most TLS 1.2 when asked; then SIZE random
# bytes (4-byte length first) that the server echoes.  Prints one JSON line.
TLS_CLIENT = r"""
import json, os, socket, ssl, struct, sys
host, port, sni, maxver, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if maxver == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
raw = socket.create_connection((host, port), timeout=5)
sport = raw.getsockname()[1]
try:
    tls = ctx.wrap_socket(raw, server_hostname=sni)
except OSError as e:
    raw.close()
    print(json.dumps({"ok": False, "sport": sport, "error": type(e).__name__}))
    sys.exit(0)
version = tls.version()
data = os.urandom(size)
tls.settimeout(30)
tls.sendall(struct.pack("!I", size) + data)
back = b""
while len(back) < size:
    chunk = tls.recv(65536)
    if not chunk:
        break
    back += chunk
tls.close()
print(json.dumps({"ok": True, "sport": sport, "version": version,
                  "intact": back == data, "got": len(back)}))
"""


def tls_handshake(lab, sni: str, *, maxver: str = "1.3", size: int = 200_000) -> dict:
    out = lab.python("client", TLS_CLIENT, SERVER4, str(TLS_PORT), sni, maxver, str(size), timeout=90).stdout
    return json.loads(out.splitlines()[-1])


def test_tls_sni_rule_drops_the_handshake_and_cert_subject_alerts(lab):
    cn = f"lab-{secrets.token_hex(4)}.ipsbridge.test"
    cert, key = make_certificate(lab.workdir, cn)
    bridge, eve = start_bridge(lab, (
        f'drop tls any any -> any any (msg:"blocked sni"; flow:established,to_server; tls.sni; '
        f'content:"blocked.example"; endswith; sid:{SID_SNI}; rev:1;)\n'
        f'alert tls any any -> any any (msg:"lab certificate"; flow:established,to_client; '
        f'tls.cert_subject; content:"CN={cn}"; endswith; sid:{SID_CERT}; rev:1;)\n'))
    server = spawn_listener(lab, "server", TLS_SERVER, SERVER4, str(TLS_PORT), str(cert), str(key))
    try:
        tls12 = tls_handshake(lab, "ok.example", maxver="1.2")
        assert tls12["ok"] and tls12["intact"] and tls12["version"] == "TLSv1.2", tls12
        blocked = tls_handshake(lab, "blocked.example")
        assert not blocked["ok"] and blocked["error"] in ("TimeoutError", "ConnectionResetError"), blocked
        tls13 = tls_handshake(lab, "ok.example")
        assert tls13["ok"] and tls13["intact"] and tls13["version"] == "TLSv1.3", tls13

        def settled() -> bool:
            recs = eve_records(eve)
            by_sid = alerts_by_sid(recs)
            # the blocked hello's retransmissions reached the bridge as flow drops
            flow_drops = [d for d in drops(recs) if d["drop"]["reason"] == "flow drop"]
            return bool(by_sid.get(SID_SNI) and by_sid.get(SID_CERT) and flow_drops)
        wait_for(settled)
    finally:
        server.terminate()
        served = finish(server).splitlines()
    totals = bridge.stop()

    # the server: never a hello for blocked.example; both clean handshakes done and echoed
    assert not any("blocked.example" in line for line in served), served
    assert "done ok.example TLSv1.2" in served and "done ok.example TLSv1.3" in served, served
    assert served.count("echoed ok.example 200000") == 2, served

    recs = eve_records(eve)
    by_sid = alerts_by_sid(recs)
    sni = by_sid.get(SID_SNI, [])
    assert [(a["alert"]["action"], a["app_proto"]) for a in sni] == [("blocked", "tls")], sni
    assert blocked["sport"] in ports(sni[0]), (blocked, sni)
    # the certificate is in clear over TLS 1.2 only: one alert, on that flow
    cert_alerts = by_sid.get(SID_CERT, [])
    assert [(a["alert"]["action"], a["app_proto"]) for a in cert_alerts] == [("allowed", "tls")], cert_alerts
    assert tls12["sport"] in ports(cert_alerts[0]), (tls12, cert_alerts)
    # the ClientHello by the rule, the rest of that flow (retransmissions, FIN) by the flow;
    # nothing of the clean handshakes
    dropped = drops(recs)
    stray = [drop_line(d) for d in dropped if d["flow_id"] != sni[0]["flow_id"]]
    assert not stray, f"drops on flows no rule dropped: {stray}"
    assert [d["drop"]["reason"] for d in dropped] == ["rules"] + ["flow drop"] * (len(dropped) - 1), \
        [drop_line(d) for d in dropped]
    assert dropped_by_reason(totals) == {"rule": 1, "flow": len(dropped) - 1}, totals
    assert totals["inspector"].get("app.tls.flows", 0) == 3, totals["inspector"]


# --------------------------------------------------------------------- DNS
# Built by hand (a query, an answer with one A record from 203.0.113.0/24 derived from the
# name); shared by the server and the clients below.
DNS_WIRE = r"""
import struct, zlib

def encode_name(name):
    return b"".join(bytes([len(p)]) + p for p in name.encode().split(b".") if p) + b"\0"

def query(qid, name):
    return struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", 1, 1)

def decode_name(msg, off):
    parts, end = [], None
    for _ in range(128):
        n = msg[off]
        if n >= 0xC0:
            end = off + 2 if end is None else end
            off = ((n & 0x3F) << 8) | msg[off + 1]
        elif n == 0:
            return ".".join(parts), off + 1 if end is None else end
        else:
            parts.append(msg[off + 1:off + 1 + n].decode("latin-1"))
            off += 1 + n
    raise ValueError("name loop")

def address_for(name):
    return "203.0.113.%d" % (1 + zlib.crc32(name.lower().encode()) % 254)

def respond(msg):
    # a standard query for one name -> (response, name, address); None for anything else
    if len(msg) < 12:
        return None
    qid, flags, qd = struct.unpack_from("!3H", msg)
    if flags & 0xF800 or qd != 1:
        return None
    name, off = decode_name(msg, 12)
    qtype, _qclass = struct.unpack_from("!HH", msg, off)
    addr = address_for(name)
    answer = b""
    if qtype == 1:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes(int(x) for x in addr.split("."))
    head = struct.pack("!6H", qid, 0x8080 | (flags & 0x0100), 1, 1 if answer else 0, 0, 0)
    return head + msg[12:off + 4] + answer, name, addr

def parse_answer(msg):
    # -> (id, question name, [A addresses])
    qid, _flags, _qd, an = struct.unpack_from("!4H", msg)
    name, off = decode_name(msg, 12)
    off += 4
    addrs = []
    for _ in range(an):
        _n, off = decode_name(msg, off)
        rtype, _rclass, _ttl, rdlen = struct.unpack_from("!HHIH", msg, off)
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(".".join(str(b) for b in msg[off:off + 4]))
        off += rdlen
    return qid, name, addrs
"""

# UDP and TCP on one port; prints "udp NAME ADDR" / "tcp NAME ADDR" per query answered.
DNS_SERVER = DNS_WIRE + r"""
import signal, socket, sys, threading
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
host, port = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
def say(*words):
    with lock:
        print(*words, flush=True)
def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
def tcp_conn(c):
    c.settimeout(30)
    try:
        while True:
            head = recv_exact(c, 2)
            msg = head and recv_exact(c, struct.unpack("!H", head)[0])
            if not msg:
                break
            got = respond(msg)
            if got:
                say("tcp", got[1], got[2])
                c.sendall(struct.pack("!H", len(got[0])) + got[0])
    except OSError:
        pass
    finally:
        c.close()
def tcp_loop(ts):
    while True:
        c, _ = ts.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind((host, port))
ts = socket.socket()
ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ts.bind((host, port))
ts.listen(8)
threading.Thread(target=tcp_loop, args=(ts,), daemon=True).start()
print("listening", flush=True)
while True:
    msg, peer = us.recvfrom(4096)
    got = respond(msg)
    if got:
        say("udp", got[1], got[2])
        us.sendto(got[0], peer)
"""

# One UDP socket (one flow) per name, all sent at once; an unanswered query is sent once
# more on its socket after WAIT seconds, as a resolver retries.  Prints one JSON line:
# {name: {"sport", "tries", "answer": [addresses] or null}}.
DNS_UDP_CLIENT = DNS_WIRE + r"""
import json, select, socket, sys, time
host, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
WAIT, TRIES = 2.5, 2
state = {}
for i, name in enumerate(names):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, port))
    st = state[s] = {"name": name, "qid": 0x1000 + i, "sport": s.getsockname()[1], "tries": 0, "answer": None}
    st["pkt"] = query(st["qid"], name)
    s.send(st["pkt"]); st["tries"] = 1; st["sent"] = time.monotonic()
pending = set(state)
while pending:
    now = time.monotonic()
    for s in list(pending):
        st = state[s]
        if now - st["sent"] >= WAIT:
            if st["tries"] < TRIES:
                s.send(st["pkt"]); st["tries"] += 1; st["sent"] = now
            else:
                pending.discard(s)
    if not pending:
        break
    left = min(state[s]["sent"] for s in pending) + WAIT - time.monotonic()
    ready, _, _ = select.select(list(pending), [], [], max(0.0, left))
    for s in ready:
        qid, qname, addrs = parse_answer(s.recv(4096))
        if qid == state[s]["qid"] and qname == state[s]["name"]:
            state[s]["answer"] = addrs
            pending.discard(s)
print(json.dumps({st["name"]: {k: st[k] for k in ("sport", "tries", "answer")} for st in state.values()}))
"""

# One TCP connection; the names are asked in turn, each after the previous answer (or
# WAIT seconds without one).  Prints one JSON line: {"sport", "answers": [[addr] or null]}.
DNS_TCP_CLIENT = DNS_WIRE + r"""
import json, socket, sys
host, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
WAIT = 3.0
s = socket.create_connection((host, port), timeout=WAIT)
out = {"sport": s.getsockname()[1], "answers": []}
def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
for i, name in enumerate(names):
    q = query(0x2000 + i, name)
    s.sendall(struct.pack("!H", len(q)) + q)
    try:
        msg = recv_exact(struct.unpack("!H", recv_exact(2))[0])
    except OSError as e:
        out["answers"].append(None)
        out["error"] = type(e).__name__
        continue
    qid, qname, addrs = parse_answer(msg)
    out["answers"].append(addrs if (qid, qname) == (0x2000 + i, name) else ["mismatch", qname])
s.close()
print(json.dumps(out))
"""

DNS_RULES = (
    f'drop dns any any -> any any (msg:"blocked name"; dns.query; content:"blocked.example"; nocase; '
    f'endswith; sid:{SID_QUERY}; rev:1;)\n'
    f'alert dns any any -> any any (msg:"report name"; dns.query; content:"report.example"; endswith; '
    f'sid:{SID_REPORT}; rev:1;)\n'
)


def served_names(lines: list[str], transport: str) -> dict[str, str]:
    """{name: address} from the DNS server's "udp NAME ADDR" / "tcp NAME ADDR" lines."""
    out = {}
    for line in lines:
        kind, name, addr = line.split()
        if kind == transport:
            out[name] = addr
    return out


def test_dns_udp_query_rule_drops_the_blocked_names_and_answers_the_rest(lab):
    bridge, eve = start_bridge(lab, DNS_RULES)
    server = spawn_listener(lab, "server", DNS_SERVER, SERVER4, str(DNS_PORT))
    blocked_names = ["blocked.example", "WWW.Blocked.Example"]           # nocase, endswith
    clean_names = ["www.example.org", "blocked.example.org", "stats.report.example"]
    try:
        out = lab.python("client", DNS_UDP_CLIENT, SERVER4, str(DNS_PORT), *clean_names, *blocked_names,
                         timeout=60).stdout
        got = json.loads(out.splitlines()[-1])

        def settled() -> bool:
            recs = eve_records(eve)
            return (len(alerts_by_sid(recs).get(SID_QUERY, [])) >= len(blocked_names)
                    and sum(d["drop"]["reason"] == "flow drop" for d in drops(recs)) >= len(blocked_names))
        wait_for(settled)
    finally:
        server.terminate()
        served = finish(server).splitlines()
    totals = bridge.stop()

    answered = served_names(served, "udp")
    for name in clean_names:
        addr = answered.get(name)
        assert addr and ipaddress.ip_address(addr) in DOC_NET, (name, served)
        assert got[name]["answer"] == [addr], (name, got[name], addr)
    for name in blocked_names:
        assert got[name]["answer"] is None and got[name]["tries"] == 2, (name, got[name])
    assert set(answered) == set(clean_names), served          # the blocked queries never arrived

    recs = eve_records(eve)
    by_sid = alerts_by_sid(recs)
    blocked_alerts = by_sid.get(SID_QUERY, [])
    assert sorted((a["alert"]["action"], a["app_proto"], a["src_port"]) for a in blocked_alerts) == \
        sorted(("blocked", "dns", got[n]["sport"]) for n in blocked_names), blocked_alerts
    report = by_sid.get(SID_REPORT, [])
    assert [(a["alert"]["action"], a["app_proto"], a["src_port"]) for a in report] == \
        [("allowed", "dns", got["stats.report.example"]["sport"])], report
    assert set(by_sid) == {SID_QUERY, SID_REPORT}, sorted(by_sid)
    # per blocked flow: the query by the rule, its retry by the flow; nothing else dropped
    dropped = drops(recs)
    per_flow: dict[int, list[str]] = {}
    for d in dropped:
        per_flow.setdefault(d["flow_id"], []).append(d["drop"]["reason"])
    assert per_flow == {a["flow_id"]: ["rules", "flow drop"] for a in blocked_alerts}, dropped
    assert totals["interfaces"]["eth0"]["dropped"] == {"rule": 2, "flow": 2}, totals
    assert not totals["interfaces"]["eth1"]["dropped"], totals
    assert totals["inspector"].get("app.dns.flows", 0) == 5, totals["inspector"]


def test_dns_tcp_second_query_dropped_with_its_flow(lab):
    bridge, eve = start_bridge(lab, DNS_RULES)
    server = spawn_listener(lab, "server", DNS_SERVER, SERVER4, str(DNS_PORT))
    try:
        out = lab.python("client", DNS_TCP_CLIENT, SERVER4, str(DNS_PORT),
                         "first.report.example", "www.blocked.example", "third.example", timeout=60).stdout
        conn1 = json.loads(out.splitlines()[-1])
        out = lab.python("client", DNS_TCP_CLIENT, SERVER4, str(DNS_PORT), "after.example", timeout=60).stdout
        conn2 = json.loads(out.splitlines()[-1])

        def settled() -> bool:
            reasons = [d["drop"]["reason"] for d in drops(eve_records(eve))]
            return "rules" in reasons and "flow drop" in reasons
        wait_for(settled)
    finally:
        server.terminate()
        served = finish(server).splitlines()
    totals = bridge.stop()

    answered = served_names(served, "tcp")
    assert set(answered) == {"first.report.example", "after.example"}, served   # never the 2nd or 3rd
    assert conn1["answers"] == [[answered["first.report.example"]], None, None], (conn1, served)
    assert conn2["answers"] == [[answered["after.example"]]], (conn2, served)
    assert all(ipaddress.ip_address(a) in DOC_NET for a in answered.values()), served

    recs = eve_records(eve)
    by_sid = alerts_by_sid(recs)
    blocked = by_sid.get(SID_QUERY, [])
    assert [(a["alert"]["action"], a["app_proto"], a["src_port"]) for a in blocked] == \
        [("blocked", "dns", conn1["sport"])], blocked
    report = by_sid.get(SID_REPORT, [])
    assert [(a["alert"]["action"], a["app_proto"], a["src_port"]) for a in report] == \
        [("allowed", "dns", conn1["sport"])], report
    assert report[0]["flow_id"] == blocked[0]["flow_id"], (report, blocked)
    # the second query's segment by the rule; the flow's later segments (retransmissions,
    # the third query, FIN) by the flow; the second connection untouched
    dropped = drops(recs)
    stray = [drop_line(d) for d in dropped if d["flow_id"] != blocked[0]["flow_id"]]
    assert not stray, f"drops on flows no rule dropped: {stray}"
    assert [d["drop"]["reason"] for d in dropped] == ["rules"] + ["flow drop"] * (len(dropped) - 1), \
        [drop_line(d) for d in dropped]
    assert dropped_by_reason(totals) == {"rule": 1, "flow": len(dropped) - 1}, totals
    assert totals["inspector"].get("app.dns.flows", 0) == 2, totals["inspector"]
