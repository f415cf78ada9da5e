"""HTTP rules on the live bridge: a real HTTP server and client in the namespaces.

    client ns: urllib requests     eth0 [ipsbridge run --mode ips -S http.rules --eve] eth1   server ns:
    (Host header chosen per test)                                                              python http.server

A drop rule on http.host drops the request that names the blocked host: the
server never answers it (the client times out), the flow is dropped both ways,
and EVE has the alert (app_proto http) and the drop.  A request for another
host over the same bridge is answered intact.  A second rule on http.uri
alerts without dropping.  The request is written in two segments, so the host
is only known once the second one arrives: the stream and app layer, not a
packet, decide.
"""
from __future__ import annotations

import json
import time

import pytest

from netnslab import SERVER4, finish, spawn_listener

pytestmark = pytest.mark.lab

PORT = 8088
RULES = (
    'drop http any any -> any any (msg:"blocked host"; flow:established,to_server; http.host; '
    'content:"blocked.example"; endswith; sid:1000701; rev:1;)\n'
    'alert http any any -> any any (msg:"report uri"; http.uri; content:"/report"; startswith; sid:1000702; rev:1;)\n'
)

SERVER = r"""
import http.server, signal, socketserver, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello " + self.headers.get("Host", "") + " " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("served", self.headers.get("Host"), self.path, flush=True)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
srv = S((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
srv.serve_forever()
"""

# one request in two segments (TCP_NODELAY, a pause between them): the Host header is split
CLIENT = r"""
import json, socket, sys, time
host, port, vhost, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection((host, port), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = f"GET {path} HTTP/1.1\r\nHost: {vhost}\r\nConnection: close\r\n\r\n".encode()
cut = req.index(b"Host: ") + 9
s.sendall(req[:cut]); time.sleep(0.2); s.sendall(req[cut:])
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    print(json.dumps({"ok": True, "response": data.decode(errors="replace")}))
except socket.timeout:
    print(json.dumps({"ok": False, "response": data.decode(errors="replace")}))
"""


def request(lab, vhost: str, path: str) -> dict:
    out = lab.python("client", CLIENT, SERVER4, str(PORT), vhost, path, timeout=60).stdout
    return json.loads(out.splitlines()[-1])


def eve_records(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_http_host_rule_drops_the_request_and_the_clean_one_passes(lab):
    rules = lab.write("http.rules", RULES)
    eve = lab.workdir / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--mode", "ips", "--stats-interval", "0",
                              "-S", str(rules), "--eve", str(eve))
    server = spawn_listener(lab, "server", SERVER, SERVER4, str(PORT))
    try:
        clean = request(lab, "www.example", "/report/today")
        assert clean["ok"] and clean["response"].startswith("HTTP/1.0 200") and \
            clean["response"].endswith("hello www.example /report/today"), clean
        blocked = request(lab, "blocked.example", "/index.html")
        assert not blocked["ok"] and blocked["response"] == "", blocked
        again = request(lab, "other.example", "/")
        assert again["ok"] and again["response"].endswith("hello other.example /"), again
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(r.get("event_type") == "drop" for r in eve_records(eve)):
            time.sleep(0.1)
    finally:
        server.terminate()
        served = finish(server)
    totals = bridge.stop()
    assert "served blocked.example" not in served, served          # the server never saw it
    assert "served www.example /report/today" in served and "served other.example /" in served, served
    recs = eve_records(eve)
    alerts = [r for r in recs if r.get("event_type") == "alert"]
    by_sid = {}
    for a in alerts:
        by_sid.setdefault(a["alert"]["signature_id"], []).append(a)
    assert [a["alert"]["action"] for a in by_sid.get(1000701, [])] == ["blocked"], alerts
    assert by_sid[1000701][0]["app_proto"] == "http", by_sid[1000701][0]
    assert [a["alert"]["action"] for a in by_sid.get(1000702, [])] == ["allowed"], alerts
    # the blocked request's flow: its completing segment by the rule, the rest of it by the flow
    drops = [r for r in recs if r.get("event_type") == "drop" and r["drop"]["reason"] in ("rules", "flow drop")]
    assert [r["drop"]["reason"] for r in drops][:1] == ["rules"], drops
    assert len({r["flow_id"] for r in drops}) == 1 and drops[0]["flow_id"] == by_sid[1000701][0]["flow_id"], drops
    dropped = totals["interfaces"]["eth0"]["dropped"]
    assert dropped.get("rule", 0) == 1, totals
    assert totals["inspector"].get("app.http.flows", 0) == 3, totals["inspector"]
