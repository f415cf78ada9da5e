#!/usr/bin/env python3
"""Craft TLS sessions and record what Suricata 7 makes of them: tests/unit/tls_suricata.json.

    python3 tests/unit/make_tls_fixtures.py          # needs suricata, scapy, cryptography
    python3 tests/unit/make_tls_fixtures.py --random 300 7   # a check against suricata, no file

Each scenario is a TCP session (three-way handshake, the TLS bytes as data segments in the
listed order and split, each acknowledged, FIN both ways) written to a pcap and run through
`suricata -r x.pcap -k none --runmode single` with app-layer.protocols.tls.ja3-fingerprints
on and RULES loaded.  Recorded per scenario, with the segments (hex):

- tls: Suricata's EVE `tls` record (extended + certificate chain): sni, subject, issuerdn,
  serial, fingerprint, version (the server side's), notbefore/notafter, ja3, ja3s, chain;
  null when Suricata logged none (it logs a session once its handshake is done);
- events: the TLS app-layer events raised, as "tls.<name>": an `app-layer-event:` rule per
  event name (EVENTS) tells (EVE's anomaly records would miss the events raised after the
  transaction was logged);
- sids: the RULES that alerted (tls.version / ssl_version / ssl_state / buffer checks).

tests/unit/test_applayer_tls.py feeds the same segments to rules.applayer.tls and compares.
The certificates are made here with the `cryptography` package (not needed by the tests:
the DER bytes are in the segments); an ECDSA signature differs on each run, and so do the
recorded fingerprints -- the file is regenerated as a whole.
"""
from __future__ import annotations

import base64
import datetime
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "tls_suricata.json"

# Rules whose alerts are recorded: (sid, options).  The header is `tls any any -> any any`.
RULES = [
    (1, "flow:to_server; tls.version:1.2;"),
    (2, "flow:to_client; tls.version:1.2;"),
    (3, "flow:to_server; tls.version:1.3;"),
    (4, "flow:to_client; tls.version:1.3;"),
    (5, "flow:to_server; tls.version:1.0;"),
    (6, "flow:to_client; tls.version:1.0;"),
    (7, "flow:to_server; tls.version:0x7f01;"),
    (10, "flow:to_server; ssl_version:tls1.2;"),
    (11, "flow:to_client; ssl_version:tls1.2,tls1.3;"),
    (12, "flow:to_server; ssl_version:!tls1.0;"),
    (13, "flow:to_server; ssl_version:sslv2;"),
    (14, "flow:to_client; ssl_version:sslv3;"),
    (15, "flow:to_server; ssl_version:tls1.0;"),
    (20, "ssl_state:client_hello;"),
    (21, "ssl_state:server_hello;"),
    (22, "ssl_state:client_keyx;"),
    (23, "ssl_state:server_keyx;"),
    (24, "ssl_state:!client_hello;"),
    (25, "ssl_state:client_hello|server_hello;"),
    (30, 'tls.sni; content:"example.com"; startswith; endswith;'),
    (31, "tls.sni; bsize:0;"),
    (32, 'tls.cert_subject; content:"CN=leaf"; endswith;'),
    (33, 'tls.cert_issuer; content:"CN=Test CA"; endswith;'),
    (34, "flow:to_client; tls.certs; content:\"|30|\"; startswith;"),
    (35, "flow:to_server; tls.certs; content:\"|30|\"; startswith;"),
    (36, 'tls.cert_serial; content:"01:02"; startswith;'),
    (37, "ja3s.hash; bsize:32;"),
]

# every TLS event Suricata 7.0.10 knows (app-layer-ssl.c's table); each gets a rule, sid 100 + index
EVENTS = ["invalid_sslv2_header", "invalid_tls_header", "invalid_record_version", "invalid_record_type",
          "invalid_record_length", "invalid_handshake_message", "heartbeat_message", "invalid_heartbeat_message",
          "overflow_heartbeat_message", "dataleak_heartbeat_mismatch", "handshake_invalid_length",
          "multiple_sni_extensions", "invalid_sni_type", "invalid_sni_length", "too_many_records_in_packet",
          "invalid_certificate", "certificate_invalid_length", "certificate_invalid_version",
          "certificate_invalid_serial", "certificate_invalid_algorithmidentifier", "certificate_invalid_x509name",
          "certificate_invalid_date", "certificate_invalid_extensions", "certificate_invalid_der",
          "certificate_invalid_subject", "certificate_invalid_issuer", "certificate_invalid_validity",
          "error_message_encountered", "invalid_ssl_record"]
EVENT_SID = 100

C_ADDR, S_ADDR = "198.51.100.7", "203.0.113.9"


# ---------------------------------------------------------------------------- TLS bytes
def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def handshake(htype: int, body: bytes) -> bytes:
    return bytes([htype]) + len(body).to_bytes(3, "big") + body


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def sni_ext(name: bytes, ntype: int = 0) -> bytes:
    return ext(0, struct.pack("!HBH", len(name) + 3, ntype, len(name)) + name)


def u16s(values) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def groups_ext(groups) -> bytes:
    return ext(10, struct.pack("!H", 2 * len(groups)) + u16s(groups))


def formats_ext(formats) -> bytes:
    return ext(11, bytes([len(formats)]) + bytes(formats))


def versions_ext(versions) -> bytes:
    return ext(43, bytes([2 * len(versions)]) + u16s(versions))


DEFAULT_EXTS = [sni_ext(b"example.com"), groups_ext([29, 23]), formats_ext([0])]


def client_hello(exts=None, ciphers=(0xC02F, 0xC030, 0x009C), version=0x0303, sid=b"", raw_exts=None) -> bytes:
    e = b"".join(DEFAULT_EXTS if exts is None else exts)
    ext_block = raw_exts if raw_exts is not None else struct.pack("!H", len(e)) + e
    body = (struct.pack("!H", version) + bytes(range(32)) + bytes([len(sid)]) + sid
            + struct.pack("!H", 2 * len(ciphers)) + u16s(ciphers) + b"\x01\x00" + ext_block)
    return handshake(1, body)


def server_hello(exts=(), cipher=0xC02F, version=0x0303, sid=b"") -> bytes:
    e = b"".join(exts)
    body = (struct.pack("!H", version) + bytes(range(32, 64)) + bytes([len(sid)]) + sid
            + struct.pack("!H", cipher) + b"\x00" + struct.pack("!H", len(e)) + e)
    return handshake(2, body)


def certificate(ders) -> bytes:
    chain = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return handshake(11, len(chain).to_bytes(3, "big") + chain)


SERVER_DONE = handshake(14, b"")
CCS = record(20, b"\x01")


def app_data(n: int = 40) -> bytes:
    return record(23, bytes((i * 7) & 0xFF for i in range(n)))


# ---------------------------------------------------------------------------- certificates
def make_certs():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID as N

    def name(attrs):
        rdns = []
        for a in attrs:
            group = a if isinstance(a, list) else [a]
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(*t) for t in group]))
        return x509.Name(rdns)

    def cert(subject, issuer, serial, key, signer, nb, na):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
             .public_key(key.public_key()).serial_number(serial)
             .not_valid_before(nb).not_valid_after(na))
        return b.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    utc = datetime.timezone.utc
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = [(N.COUNTRY_NAME, "US"), (N.ORGANIZATION_NAME, "Let's Encrypt"), (N.COMMON_NAME, "Test CA")]
    leaf_name = [(N.COUNTRY_NAME, "DE"), (N.STATE_OR_PROVINCE_NAME, "Berlin"), (N.LOCALITY_NAME, "Berlin"),
                 [(N.ORGANIZATION_NAME, "Example"), (N.ORGANIZATIONAL_UNIT_NAME, "Ops")],
                 (N.EMAIL_ADDRESS, "ops@example.com"), (N.DOMAIN_COMPONENT, "example"),
                 (N.SERIAL_NUMBER, "42"), (N.BUSINESS_CATEGORY, "Private Organization"),
                 (x509.ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.3"), "DE"),
                 (x509.ObjectIdentifier("1.2.3.4.5"), "custom"),
                 (N.GIVEN_NAME, "Ann", _ASN1Type.BMPString),
                 (N.TITLE, "T", _ASN1Type.UniversalString),
                 (N.COMMON_NAME, "leaf")]
    leaf = cert(leaf_name, ca_name, 0x0102A0FF, leaf_key, ca_key,
                datetime.datetime(2023, 5, 1, 12, 0, 0, tzinfo=utc), datetime.datetime(2049, 12, 31, tzinfo=utc))
    ca = cert(ca_name, ca_name, 0x80, ca_key, ca_key,
              datetime.datetime(2020, 1, 1, tzinfo=utc), datetime.datetime(2060, 1, 1, tzinfo=utc))
    client = cert([(N.COMMON_NAME, "client one")], ca_name, 7, ec.generate_private_key(ec.SECP256R1()), ca_key,
                  datetime.datetime(2023, 1, 1, tzinfo=utc), datetime.datetime(2033, 1, 1, tzinfo=utc))
    return leaf, ca, client


# ---------------------------------------------------------------------------- scenarios
def scenarios(leaf: bytes, ca: bytes, client_cert: bytes) -> dict[str, list[tuple[str, bytes]]]:
    """name -> [(direction "c"/"s", segment bytes)] in pcap order."""
    full_server = record(22, server_hello() + certificate([leaf, ca]) + SERVER_DONE)
    ch = record(22, client_hello())
    tls13_ch = record(22, client_hello(
        exts=[sni_ext(b"example.com"), groups_ext([0x2A2A, 29, 23]), formats_ext([0]),
              ext(0x3A3A, b""), versions_ext([0x8A8A, 0x0304, 0x0303]), ext(51, b"\x00\x00")],
        ciphers=(0x0A0A, 0x1301, 0x1302, 0xC02F)), 0x0301)
    big = certificate([leaf, ca])
    frag = [record(22, big[i:i + 100]) for i in range(0, len(big), 100)]
    ssl2_hello = bytes([0x80, 0x2E, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10]) + bytes(21) + bytes(16)
    hb_req = record(24, b"\x01\x40\x00" + b"A" * 4)             # asks for 16 KiB back: heartbleed
    return {
        "tls12_full": [("c", ch), ("s", full_server), ("c", record(22, handshake(16, b"\x41" + bytes(65)))),
                       ("c", CCS), ("c", record(22, bytes(40))), ("s", CCS), ("s", record(22, bytes(40))),
                       ("c", app_data()), ("s", app_data())],
        "tls12_one_segment_per_side": [("c", ch + record(22, handshake(16, b"\x41" + bytes(65))) + CCS),
                                       ("s", full_server + CCS + record(22, bytes(40)))],
        "tls12_split_records": [("c", ch[:3]), ("c", ch[3:20]), ("c", ch[20:]),
                                ("s", full_server[:7]), ("s", full_server[7:300]), ("s", full_server[300:])],
        "cert_spanning_records": [("c", ch), ("s", record(22, server_hello())), *[("s", f) for f in frag],
                                  ("s", record(22, SERVER_DONE))],
        "tls13": [("c", tls13_ch), ("s", record(22, server_hello(exts=[ext(43, b"\x03\x04"), ext(51, bytes(36))]))),
                  ("s", CCS), ("s", app_data(60)), ("c", CCS), ("c", app_data(30))],
        "sni_with_nul": [("c", record(22, client_hello(exts=[sni_ext(b"exa\x00mple.com")]))),
                         ("s", full_server)],
        "sni_empty_ext_and_second_sni": [("c", record(22, client_hello(
            exts=[ext(0, b""), sni_ext(b"example.com"), sni_ext(b"other.org")]))), ("s", full_server)],
        "sni_bad_type": [("c", record(22, client_hello(exts=[groups_ext([23]), sni_ext(b"x.org", 5),
                                                             formats_ext([0])]))), ("s", full_server)],
        "sni_too_long": [("c", record(22, client_hello(exts=[sni_ext(b"a" * 256), groups_ext([23])]))),
                         ("s", full_server)],
        "ext_list_overruns": [("c", record(22, client_hello(raw_exts=b"\x00\x40" + groups_ext([23])))),
                              ("s", full_server)],
        "truncated_hello": [("c", record(22, handshake(1, b"\x03\x03" + bytes(20)))), ("s", full_server)],
        "garbage_first_cert": [("c", ch), ("s", record(22, server_hello() + certificate([b"\x30\x03\x02\x01\x00",
                                                                                         b"", leaf, ca])
                                                        + SERVER_DONE))],
        "cert_length_overrun": [("c", ch), ("s", record(22, server_hello()
                                                        + handshake(11, b"\x00\x00\x06\x00\x00\x20" + bytes(3))
                                                        + SERVER_DONE))],
        "client_certificate": [("c", ch), ("s", record(22, server_hello() + certificate([leaf])
                                                       + handshake(13, b"\x01\x01\x00\x00\x00\x00")
                                                       + SERVER_DONE)),
                               ("c", record(22, certificate([client_cert]) + handshake(16, b"\x41" + bytes(65))))],
        "unknown_handshake_type": [("c", record(22, client_hello() + handshake(99, b"abc"))), ("s", full_server)],
        "unknown_record_tls10": [("c", record(22, client_hello(version=0x0301), 0x0301)),
                                 ("c", record(30, b"junk", 0x0301) + record(22, handshake(16, bytes(10)), 0x0301)),
                                 ("s", record(22, server_hello(version=0x0301), 0x0301))],
        "unknown_record_tls12": [("c", ch), ("c", record(30, b"junk")), ("s", full_server)],
        "bad_record_version": [("c", ch), ("s", record(22, server_hello(), 0x0305))],
        "record_too_long": [("c", ch), ("s", b"\x16\x03\x03\x44\x01" + bytes(100))],
        "empty_record": [("c", ch), ("s", record(22, b""))],
        "short_handshake_record": [("c", ch), ("s", record(22, b"\x02\x00"))],
        "heartbleed": [("c", ch), ("s", full_server), ("c", hb_req)],
        "heartbeat_ok": [("c", ch), ("s", full_server), ("c", record(24, b"\x01\x00\x04" + b"ping" + bytes(16))),
                         ("s", record(24, b"\x02\x00\x04" + b"ping" + bytes(16)))],
        "sslv2_compat_hello_443": [("c", ssl2_hello), ("s", full_server)],
        "session_resumed": [("c", record(22, client_hello(sid=b"\x11" * 32))),
                            ("s", record(22, server_hello(sid=b"\x11" * 32))), ("s", CCS),
                            ("s", record(22, bytes(40))), ("c", CCS), ("c", app_data())],
        "alert_after_hello": [("c", ch), ("s", record(21, b"\x02\x28"))],
        "grease_everywhere": [("c", record(22, client_hello(
            exts=[ext(0xDADA, b""), sni_ext(b"example.com"), groups_ext([0x1A1A, 29]), formats_ext([0, 1, 2]),
                  ext(0xFAFA, b"\x00")], ciphers=(0x2A2A, 0x1301, 0xEAEA, 0xC02F)))),
            ("s", record(22, server_hello(exts=[ext(0xAAAA, b""), ext(0xFF01, b"\x00")])))],
    }


# ---------------------------------------------------------------------------- pcap + Suricata
def write_pcap(path: Path, segments: list[tuple[str, bytes]], dport: int = 443) -> None:
    from scapy.all import IP, TCP, Ether, wrpcap
    sport = 40000
    frames = []
    cseq, sseq = 1000, 5000

    def c2s(flags, payload=b""):
        return Ether() / IP(src=C_ADDR, dst=S_ADDR) / TCP(sport=sport, dport=dport, flags=flags, seq=cseq,
                                                          ack=sseq if flags != "S" else 0) / payload

    def s2c(flags, payload=b""):
        return Ether() / IP(src=S_ADDR, dst=C_ADDR) / TCP(sport=dport, dport=sport, flags=flags, seq=sseq,
                                                          ack=cseq) / payload

    frames.append(c2s("S"))
    cseq += 1
    frames.append(s2c("SA"))
    sseq += 1
    frames.append(c2s("A"))
    for d, data in segments:
        if d == "c":
            frames.append(c2s("PA", data))
            cseq += len(data)
            frames.append(s2c("A"))
        else:
            frames.append(s2c("PA", data))
            sseq += len(data)
            frames.append(c2s("A"))
    frames.append(c2s("FA"))
    cseq += 1
    frames.append(s2c("FA"))
    sseq += 1
    frames.append(c2s("A"))
    for i, f in enumerate(frames):
        f.time = 1_700_000_000 + i * 0.01
    wrpcap(str(path), frames)


SURICATA_YAML = """%YAML 1.1
---
vars:
  address-groups: {{HOME_NET: "[198.51.100.0/24]", EXTERNAL_NET: "!$HOME_NET"}}
  port-groups: {{HTTP_PORTS: "80"}}
default-rule-path: {rule_dir}
rule-files: [tls.rules]
app-layer:
  protocols:
    tls: {{enabled: yes, detection-ports: {{dp: 443}}, ja3-fingerprints: yes}}
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - alert
        - tls: {{extended: yes, custom: [subject, issuer, serial, fingerprint, sni, version, not_before,
                 not_after, chain, ja3, ja3s]}}
logging: {{default-log-level: notice, outputs: [{{console: {{enabled: yes}}}}]}}
stream: {{midstream: false, async-oneside: false}}
"""


def run_suricata(pcap: Path, work: Path) -> list[dict]:
    rules = [f"alert tls any any -> any any (msg:\"t{sid}\"; {opts} sid:{sid};)" for sid, opts in RULES]
    rules += [f"alert tls any any -> any any (msg:\"e{i}\"; app-layer-event:tls.{ev}; sid:{EVENT_SID + i};)"
              for i, ev in enumerate(EVENTS)]
    (work / "tls.rules").write_text("\n".join(rules) + "\n")
    (work / "suricata.yaml").write_text(SURICATA_YAML.format(rule_dir=work))
    log = Path(tempfile.mkdtemp(dir=work, prefix="log"))
    r = subprocess.run(["suricata", "-r", str(pcap), "-c", str(work / "suricata.yaml"), "-l", str(log),
                        "-k", "none", "--runmode", "single"], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"suricata failed: {r.stderr[-2000:]}")
    eve = log / "eve.json"
    return [json.loads(line) for line in eve.read_text().splitlines()] if eve.exists() else []


def record_scenario(name: str, segments, work: Path) -> dict:
    pcap = work / f"{name}.pcap"
    write_pcap(pcap, segments)
    eve = run_suricata(pcap, work)
    tls = [e["tls"] for e in eve if e["event_type"] == "tls"]
    fired = {e["alert"]["signature_id"] for e in eve if e["event_type"] == "alert"}
    events = [f"tls.{ev}" for i, ev in enumerate(EVENTS) if EVENT_SID + i in fired]
    sids = sorted(sid for sid in fired if sid < EVENT_SID)
    if tls and "chain" in tls[-1]:
        tls[-1]["chain"] = [base64.b64decode(c).hex() for c in tls[-1]["chain"]]
    return {"segments": [[d, data.hex()] for d, data in segments], "tls": tls[-1] if tls else None,
            "events": events, "sids": sids}


def random_check(seed: int, n: int) -> None:
    """Mutate the recorded sessions at random (byte changes, deletions, insertions, new
    segment cuts), run them all through Suricata in one pcap (a flow per session) and print
    where our parser (events, the EVE fields when the handshake is done) and the test rules
    (test_applayer_tls.alerted) disagree.  Not a fixture: a check to run after changes.
    Differences left in 600 sessions (seeds 5 and 11, 29 differ) and why: a side whose
    first bytes are not a TLS record header or shorter than 3 bytes (Suricata's detection
    holds or skips that side's data: the app-layer stage's business, not the parser's), and
    alerts at the flow's end (Suricata inspects after the stream's end in some cases).  The
    events and EVE fields agree on every other session."""
    import random
    import sys as _sys
    from scapy.all import IP, TCP, Ether, wrpcap

    _sys.path.insert(0, str(HERE))
    _sys.path.insert(0, str(HERE.parent.parent))
    import test_applayer_tls as t
    from rules.applayer import tls as ours

    rng = random.Random(seed)
    base = [t.segments(name) for name in t.SCEN]
    flows = []
    for _ in range(n):
        segs = [(ts, bytearray(d)) for ts, d in rng.choice(base)]
        for _ in range(rng.randint(1, 4)):
            seg = segs[rng.randrange(len(segs))][1]
            if not seg:
                continue
            pos, op = rng.randrange(len(seg)), rng.random()
            if op < 0.6:
                seg[pos] = rng.randrange(256)
            elif op < 0.8:
                del seg[pos:pos + rng.randint(1, 8)]
            else:
                seg[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        out = []
        for ts, d in segs:
            d = bytes(d)
            if d and rng.random() < 0.3:
                c = rng.randrange(len(d))
                out += [(ts, d[:c]), (ts, d[c:])]
            else:
                out.append((ts, d))
        flows.append([(ts, d) for ts, d in out if d])
    frames = []
    for i, segs in enumerate(flows):
        sport, cseq, sseq = 10000 + i, 1000, 5000

        def pkt(to_server, flags, payload=b""):
            if to_server:
                return Ether() / IP(src=C_ADDR, dst=S_ADDR) / TCP(
                    sport=sport, dport=443, flags=flags, seq=cseq, ack=sseq if flags != "S" else 0) / payload
            return Ether() / IP(src=S_ADDR, dst=C_ADDR) / TCP(
                sport=443, dport=sport, flags=flags, seq=sseq, ack=cseq) / payload

        frames.append(pkt(True, "S"))
        cseq += 1
        frames.append(pkt(False, "SA"))
        sseq += 1
        frames.append(pkt(True, "A"))
        for ts, d in segs:
            frames.append(pkt(ts, "PA", d))
            if ts:
                cseq += len(d)
            else:
                sseq += len(d)
            frames.append(pkt(not ts, "A"))
        frames.append(pkt(True, "FA"))
        cseq += 1
        frames.append(pkt(False, "FA"))
        sseq += 1
        frames.append(pkt(True, "A"))
    for j, f in enumerate(frames):
        f.time = 1_700_000_000 + j * 0.001
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wrpcap(str(work / "r.pcap"), frames)
        eve = run_suricata(work / "r.pcap", work)
    by_flow: dict[int, list] = {}
    for e in eve:
        port = e["src_port"] if e["src_port"] != 443 else e["dest_port"]
        by_flow.setdefault(port - 10000, []).append(e)
    bad = 0
    for i, segs in enumerate(flows):
        es = by_flow.get(i, [])
        logged = [e["tls"] for e in es if e["event_type"] == "tls"]
        for rec in logged:
            if "chain" in rec:
                rec["chain"] = [base64.b64decode(c).hex() for c in rec["chain"]]
        fired = {e["alert"]["signature_id"] for e in es if e["event_type"] == "alert"}
        events = sorted(f"tls.{ev}" for k, ev in enumerate(EVENTS) if EVENT_SID + k in fired)
        snap = None
        for p, _ in t.suricata_view(segs):
            if snap is None and p.tx.flags & ours.F_HANDSHAKE_DONE:
                try:
                    snap = t.eve_like(p)
                except UnicodeDecodeError:
                    snap = False
        diffs = []
        if sorted(set(p.events)) != events:
            diffs.append(f"events ours {sorted(set(p.events))} suricata {events}")
        if logged and snap and snap != logged[-1]:
            diffs.append("fields " + ", ".join(k for k in set(snap) | set(logged[-1])
                                               if snap.get(k) != logged[-1].get(k)))
        sids = t.alerted(segs)
        theirs = sorted(s for s in fired if s < EVENT_SID)
        if sids != theirs:
            diffs.append(f"sids only ours {sorted(set(sids) - set(theirs))} only suricata "
                         f"{sorted(set(theirs) - set(sids))}")
        if diffs:
            bad += 1
            print(i, "; ".join(diffs), [("c" if ts else "s", d[:5].hex()) for ts, d in segs])
    print(f"{bad} of {n} sessions differ")


def main() -> None:
    if sys.argv[1:2] == ["--random"]:
        random_check(int(sys.argv[3]) if len(sys.argv) > 3 else 1, int(sys.argv[2]) if len(sys.argv) > 2 else 300)
        return
    leaf, ca, client_cert = make_certs()
    out = {"suricata": subprocess.run(["suricata", "-V"], capture_output=True, text=True).stdout.strip(),
           "rules": [[sid, opts] for sid, opts in RULES], "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, segments in scenarios(leaf, ca, client_cert).items():
            out["scenarios"][name] = record_scenario(name, segments, Path(tmp))
            s = out["scenarios"][name]
            print(f"{name:32s} events={s['events']} sids={s['sids']}")
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
