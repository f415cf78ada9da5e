"""TLS differential families: handshakes crafted byte by byte (certificates too, built here
as DER with fixed contents and a dummy signature, so the pcap is the same on every run) and
rules that pin each TLS buffer's exact content (startswith + endswith, bsize), the version /
state conditions, JA3, and the inline decisions (drops on SNI / issuer, a flow whose parser
gives up, encrypted data).

What Suricata 7.0.10 does on them (--simulate-ips), beyond the buffers' formats:
- tls.cert_serial contents are upper-cased, tls.cert_fingerprint and ja3(s).hash contents
  lower-cased before matching (920104, 920105, 920005);
- a buffer registered at progress 0 (tls.sni, ja3.*) that is absent while the ClientHello is
  still arriving is tried again on later packets: the rule alerts on the packet completing
  it (920003-920006 on pcap 18);
- the packet whose data record makes the flow encrypted is still inspected as payload, the
  later ones are not (920201 on pcap 8, none on the TLS 1.3 client's data, pcap 32);
- a mutual-TLS handshake is done only with the client's certificate: the to-client
  certificate rules then alert at the flow's end (pcap_cnt 0);
- a TLS parser error (an unknown record type after TLS 1.2) drops that packet and the rest of
  the flow (the app-layer error exception policy, "auto" inline), pcap 23-27.
"""
from __future__ import annotations

import hashlib
import struct

from app_scenarios import AppFamily


# ---------------------------------------------------------------------------- DER, by hand
def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        ln = bytes([n])
    elif n < 0x100:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + ln + body


def _name(*rdns) -> bytes:
    """rdns: lists of (oid bytes, string tag, value)."""
    return _tlv(0x30, b"".join(_tlv(0x31, b"".join(_tlv(0x30, _tlv(6, o) + _tlv(t, v)) for o, t, v in rdn))
                               for rdn in rdns))


OID_CN, OID_C, OID_O, OID_OU, OID_EMAIL = b"\x55\x04\x03", b"\x55\x04\x06", b"\x55\x04\x0a", b"\x55\x04\x0b", \
    b"\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"
ECDSA_SHA256 = _tlv(0x30, _tlv(6, b"\x2a\x86\x48\xce\x3d\x04\x03\x02"))
SPKI = _tlv(0x30, _tlv(0x30, _tlv(6, b"\x2a\x86\x48\xce\x3d\x02\x01") + _tlv(6, b"\x2a\x86\x48\xce\x3d\x03\x01\x07"))
            + _tlv(3, b"\x00\x04" + bytes(range(64))))


def certificate(subject: bytes, issuer: bytes, serial: bytes, not_before=b"230501120000Z",
                not_after=b"491231000000Z") -> bytes:
    tbs = (_tlv(0xA0, _tlv(2, b"\x02")) + _tlv(2, serial) + ECDSA_SHA256 + issuer
           + _tlv(0x30, _tlv(0x17, not_before) + _tlv(0x17, not_after)) + subject + SPKI)
    return _tlv(0x30, _tlv(0x30, tbs) + ECDSA_SHA256 + _tlv(3, b"\x00" + _tlv(0x30, _tlv(2, b"\x01") * 2)))


CA_NAME = _name([(OID_C, 19, b"US")], [(OID_O, 12, b"Let's Encrypt")], [(OID_CN, 12, b"R3")])
LEAF_NAME = _name([(OID_C, 19, b"DE")], [(OID_O, 12, b"Example"), (OID_OU, 12, b"Ops")],
                  [(OID_EMAIL, 22, b"ops@example.com")], [(OID_CN, 12, b"www.example.com")])
LEAF = certificate(LEAF_NAME, CA_NAME, b"\x00\x9a\x12\x34\x56")
CA = certificate(CA_NAME, CA_NAME, b"\x01")
CLIENT = certificate(_name([(OID_CN, 12, b"client-7")]), CA_NAME, b"\x07")


# ---------------------------------------------------------------------------- TLS, by hand
def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def hs(htype: int, body: bytes) -> bytes:
    return bytes([htype]) + len(body).to_bytes(3, "big") + body


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def sni(name: bytes) -> bytes:
    return ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)


def u16s(values) -> bytes:
    return b"".join(struct.pack("!H", v) for v in values)


def client_hello(exts, ciphers=(0xC02B, 0xC02F, 0x009C), version=0x0303) -> bytes:
    e = b"".join(exts)
    return hs(1, struct.pack("!H", version) + bytes(range(32)) + b"\x00" + struct.pack("!H", 2 * len(ciphers))
              + u16s(ciphers) + b"\x01\x00" + struct.pack("!H", len(e)) + e)


def server_hello(exts=(), cipher=0xC02F) -> bytes:
    e = b"".join(exts)
    return hs(2, b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + struct.pack("!H", cipher) + b"\x00"
              + struct.pack("!H", len(e)) + e)


def cert_msg(ders) -> bytes:
    chain = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    return hs(11, len(chain).to_bytes(3, "big") + chain)


GROUPS = ext(10, struct.pack("!H", 4) + u16s([29, 23]))
FORMATS = ext(11, b"\x01\x00")
CCS = record(20, b"\x01")
DONE = hs(14, b"")


def app_data(n: int, seed: int) -> bytes:
    return record(23, bytes((seed + 31 * i) & 0xFF for i in range(n)))


FINGERPRINT = hashlib.sha1(LEAF).digest().hex(":")

HANDSHAKE_RULES = r"""
# client side (sid 9200xx)
alert tls any any -> any any (msg:"sni exact"; tls.sni; content:"www.example.com"; startswith; endswith; sid:920001;)
alert tls any any -> any any (msg:"legacy tls_sni"; tls_sni; content:"example.com"; endswith; sid:920002;)
alert tls any any -> any any (msg:"sni split host"; tls.sni; content:"split.example.org"; bsize:17; sid:920003;)
alert tls any any -> any any (msg:"ja3 string"; ja3.string; content:"771,49195-49199-156,0-10-11,29-23,0"; bsize:35; sid:920004;)
alert tls any any -> any any (msg:"ja3 hash"; ja3.hash; content:"D83AE3A9C3698053A4D27433FFA6CFFF"; sid:920005;)
alert tls any any -> any any (msg:"ja3 hash any"; ja3_hash; bsize:32; sid:920006;)
alert tls any any -> any any (msg:"client version 1.2"; flow:to_server; tls.version:1.2; sid:920007;)
alert tls any any -> any any (msg:"client version 1.3"; flow:to_server; tls.version:1.3; sid:920008;)
alert tls any any -> any any (msg:"ssl_version"; flow:to_server; ssl_version:tls1.3; sid:920009;)
alert tls any any -> any any (msg:"client hello state"; flow:to_server; ssl_state:client_hello; sid:920010;)
# server side (sid 9201xx)
alert tls any any -> any any (msg:"subject exact"; flow:to_client; tls.cert_subject; content:"C=DE, O=Example + OU=Ops, Email=ops@example.com, CN=www.example.com"; bsize:67; sid:920101;)
alert tls any any -> any any (msg:"issuer exact"; tls.cert_issuer; content:"C=US, O=Let's Encrypt, CN=R3"; bsize:28; sid:920102;)
alert tls any any -> any any (msg:"serial"; tls.cert_serial; content:"00:9A:12:34:56"; bsize:14; sid:920103;)
alert tls any any -> any any (msg:"serial lowercase in rule"; tls.cert_serial; content:"00:9a:12"; startswith; sid:920104;)
alert tls any any -> any any (msg:"fingerprint, rule in upper case"; tls.cert_fingerprint; content:"@FP@"; bsize:59; sid:920105;)
alert tls any any -> any any (msg:"certs: the CA in the chain"; flow:to_client; tls.certs; content:"Let's Encrypt"; sid:920106;)
alert tls any any -> any any (msg:"chain of two"; tls.cert_chain_len:2; sid:920107;)
alert tls any any -> any any (msg:"server version 1.3"; flow:to_client; tls.version:1.3; sid:920108;)
alert tls any any -> any any (msg:"ja3s"; ja3s.string; content:"771,49199,"; startswith; sid:920109;)
alert tls any any -> any any (msg:"client certificate"; flow:to_server; tls.cert_subject; content:"CN=client-7"; bsize:11; sid:920110;)
alert tls any any -> any any (msg:"legacy subject"; tls_cert_subject; content:"CN=www.example.com"; endswith; sid:920111;)
# after the handshake (sid 9202xx)
alert tcp any any -> any any (msg:"encrypted payload byte"; flow:to_server; content:"|1f 3e 5d|"; sid:920201;)
alert tls any any -> any any (msg:"sni and payload"; flow:to_server; tls.sni; content:"www.example.com"; bsize:15; sid:920202;)
""".replace("@FP@", FINGERPRINT.upper())


def s_handshake(cap) -> None:
    from make_differential import C1, S1, S2, Tcp   # (imported here: make_differential imports this module)

    ch = record(22, client_hello([sni(b"www.example.com"), GROUPS, FORMATS]))
    flight = record(22, server_hello() + cert_msg([LEAF, CA]) + DONE)
    cke = record(22, hs(16, b"\x41" + bytes(65)))
    # 1: a TLS 1.2 handshake, one segment per flight, then encrypted data both ways
    t = Tcp(cap, C1, S1, 41001, 443).handshake()
    t.c(data=ch)
    t.s(data=flight)
    t.c(data=cke + CCS + record(22, bytes(40)))
    t.s(data=CCS + record(22, bytes(40)))
    t.c(data=app_data(64, 0x1F))
    t.s(data=app_data(64, 0x22))
    t.close()
    # 2: the same, every record split over segments, the certificate message over 100-byte records
    t = Tcp(cap, C1, S1, 41002, 443).handshake()
    ch2 = record(22, client_hello([sni(b"split.example.org"), GROUPS, FORMATS]))
    t.c(data=ch2[:3])
    t.c(data=ch2[3:40])
    t.c(data=ch2[40:])
    cm = cert_msg([LEAF, CA])
    recs = record(22, server_hello()) + b"".join(record(22, cm[i:i + 100]) for i in range(0, len(cm), 100)) \
        + record(22, DONE)
    for i in range(0, len(recs), 211):
        t.s(data=recs[i:i + 211])
    t.c(data=cke + CCS + record(22, bytes(40)))
    t.close()
    # 3: TLS 1.3 (supported_versions, GREASE values), the certificate encrypted
    t = Tcp(cap, C1, S2, 41003, 443).handshake()
    t.c(data=record(22, client_hello([ext(0x0A0A, b""), sni(b"tls13.example.com"),
                                      ext(10, struct.pack("!H", 6) + u16s([0x1A1A, 29, 23])), FORMATS,
                                      ext(43, b"\x06\x2a\x2a\x03\x04\x03\x03"), ext(51, b"\x00\x00")],
                                     ciphers=(0x3A3A, 0x1301, 0x1302)), 0x0301))
    t.s(data=record(22, server_hello([ext(43, b"\x03\x04"), ext(51, bytes(36))], cipher=0x1301)) + CCS
          + app_data(120, 0x40))
    t.c(data=CCS + app_data(50, 0x1F))
    t.close()
    # 4: mutual TLS: a CertificateRequest, the client's certificate
    t = Tcp(cap, C1, S1, 41004, 443).handshake()
    t.c(data=ch)
    t.s(data=record(22, server_hello() + cert_msg([LEAF]) + hs(13, b"\x01\x01\x00\x00\x00\x00") + DONE))
    t.c(data=record(22, cert_msg([CLIENT]) + hs(16, b"\x41" + bytes(65))))
    t.close()


FAMILIES = [
    AppFamily("app_tls_handshake", "TLS buffers and conditions: sni (and tls_sni), ja3/ja3s strings and "
              "hashes with GREASE left out, cert subject/issuer (Suricata's RDN format), serial (rule content "
              "upper-cased), fingerprint, certs, chain length, client certificates, tls.version/ssl_version/"
              "ssl_state, TLS 1.3, records and certificates split over segments and records, encrypted data",
              HANDSHAKE_RULES, s_handshake, ("ips", "ids")),
]


DECISIONS_RULES = r"""
drop tls any any -> any any (msg:"blocked sni"; tls.sni; content:"blocked.example"; bsize:15; sid:920301;)
drop tls any any -> any any (msg:"evil issuer"; flow:to_client; tls.cert_issuer; content:"CN=Evil CA"; endswith; sid:920302;)
alert tls any any -> any any (msg:"R3 issuer"; tls.cert_issuer; content:"CN=R3"; endswith; sid:920303;)
alert tls any any -> any any (msg:"any sni"; tls.sni; content:"."; sid:920304;)
alert tcp any any -> any any (msg:"data after the drop"; flow:to_server; content:"AFTER"; sid:920305;)
"""


def s_decisions(cap) -> None:
    from make_differential import C1, C2, S1, S2, Tcp

    flight = record(22, server_hello() + cert_msg([LEAF, CA]) + DONE)
    # 1: a blocked SNI: the ClientHello is dropped, so is everything after it on the flow
    t = Tcp(cap, C1, S1, 42001, 443).handshake()
    t.c(data=record(22, client_hello([sni(b"blocked.example"), GROUPS, FORMATS])))
    t.s(data=flight)
    t.c(data=b"AFTER")
    t.close()
    # 2: a certificate from an issuer the rules block, in the server's flight
    evil = certificate(LEAF_NAME, _name([(OID_CN, 12, b"Evil CA")]), b"\x05")
    t = Tcp(cap, C2, S2, 42002, 443).handshake()
    t.c(data=record(22, client_hello([sni(b"fine.example"), GROUPS, FORMATS])))
    t.s(data=record(22, server_hello() + cert_msg([evil]) + DONE))
    t.c(data=b"AFTER")
    t.close()
    # 3: the client's stream stops being TLS after its hello (an unknown record type in TLS
    # 1.2): the parser gives up, the server's certificate is not read
    t = Tcp(cap, C1, S1, 42003, 443).handshake()
    t.c(data=record(22, client_hello([sni(b"gave.up.example"), GROUPS, FORMATS])))
    t.c(data=record(30, b"not a record"))
    t.s(data=flight)
    t.close()
    # 4: not TLS on port 443
    t = Tcp(cap, C2, S1, 42004, 443).handshake()
    t.c(data=b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()


FAMILIES.append(
    AppFamily("app_tls_decisions", "TLS decisions inline: drop on an SNI and on a certificate issuer (the flow "
              "dropped from there), a flow whose TLS parser gives up (nothing after it read), HTTP on port 443",
              DECISIONS_RULES, s_decisions))
