"""DNS differential families: requests and responses over UDP and TCP, crafted so
dns.query's exact content is tested (rules pinning the name with startswith /
endswith or bsize): odd labels, compression pointers, loops, the length and label
limits, an empty name ending the multi-buffer, several messages per TCP segment
and messages split over segments; dns.opcode on requests and responses; DNS on
another port than 53 (not detected)."""
from __future__ import annotations

import struct

from app_scenarios import AppFamily

RULES = r"""
# dns.query (sid 9200xx)
alert dns any any -> any any (msg:"query exact"; dns.query; content:"www.example.com"; startswith; endswith; sid:920001;)
alert dns any any -> any any (msg:"query nocase"; dns.query; content:"WWW.EXAMPLE.COM"; nocase; bsize:15; sid:920002;)
alert dns any any -> any any (msg:"legacy dns_query"; dns_query; content:"example"; sid:920003;)
alert dns any any -> any any (msg:"dot inside a label"; dns.query; content:"a.b.c"; bsize:5; sid:920004;)
alert dns any any -> any any (msg:"bytes verbatim"; dns.query; content:"x|00 ff 7f|.c d"; bsize:8; sid:920005;)
alert dns any any -> any any (msg:"second question"; dns.query; content:"second.example"; bsize:14; sid:920006;)
alert dns any any -> any any (msg:"after a root question"; dns.query; content:"hidden.example"; sid:920007;)
alert dns any any -> any any (msg:"pointer suffix"; dns.query; content:"foo.example.com"; bsize:15; sid:920008;)
alert dns any any -> any any (msg:"cut at 1025"; dns.query; bsize:1025; sid:920009;)
alert dns any any -> any any (msg:"not cut at the item limit"; dns.query; bsize:1087; sid:920010;)
alert dns any any -> any any (msg:"loop after pointer"; dns.query; content:"x.abc"; bsize:5; sid:920011;)
alert dns any any -> any any (msg:"response question is no query"; dns.query; content:"answered.example"; sid:920012;)
alert dns any any -> any any (msg:"tcp query"; dns.query; content:"tcp"; startswith; sid:920013;)
alert dns any any -> any any (msg:"other port"; dns.query; content:"port5353"; sid:920014;)
alert udp any any -> any any (msg:"udp rule with dns buffer"; dns.query; content:"udp-rule.example"; sid:920015;)
alert tcp any any -> any any (msg:"tcp rule with dns buffer"; dns.query; content:"tcp-rule.example"; sid:920016;)
# dns.opcode (sid 9201xx)
alert dns any any -> any any (msg:"opcode 4 to server"; flow:to_server; dns.opcode:4; sid:920101;)
alert dns any any -> any any (msg:"opcode 4 to client"; flow:to_client; dns.opcode:4; sid:920102;)
alert dns any any -> any any (msg:"opcode not 0 to server"; flow:to_server; dns.opcode:!0; sid:920103;)
alert dns any any -> any any (msg:"opcode 2 and query"; dns.opcode:2; dns.query; content:"status"; sid:920104;)
alert dns any any -> any any (msg:"opcode 4 either way"; dns.opcode:4; sid:920105;)
# dns rule with packet content only (sid 9202xx)
alert dns any any -> any any (msg:"dns rule packet content"; content:"|07|payload"; sid:920201;)
"""


def hdr(id=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack("!6H", id, flags, qd, an, ns, ar)


def name(*labels: bytes) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in labels) + b"\0"


def q(nm: bytes, qtype: int = 1) -> bytes:
    return nm + struct.pack("!HH", qtype, 1)


def ptr(off: int) -> bytes:
    return bytes([0xC0 | (off >> 8), off & 0xFF])


def answer(req: bytes, flags: int = 0x8180) -> bytes:
    """The request turned into a response with one A record for its first name."""
    return req[:2] + struct.pack("!HHH", flags, 1, 1) + req[8:] + ptr(12) + struct.pack("!HHIH", 1, 1, 60, 4) + \
        b"\xc0\x00\x02\x01"


def quirk(pointers: int) -> bytes:
    qname = (b"\x3f" + b"q" * 63) * 16
    start = 12 + len(qname) + 2 + 4
    chain = b"".join(ptr(start + 2 * (i + 1)) for i in range(pointers))
    return hdr() + qname + ptr(start) + b"\x00\x01\x00\x01" + chain + b"\x3f" + b"z" * 63 + b"\0"


def s_dns(cap) -> None:
    from make_differential import C1, C2, S1, S2, Tcp, udp   # (imported here: make_differential imports us)

    port = [50000]

    def exchange(msg: bytes, reply: bytes | None = None, dport: int = 53, cli=C1, srv=S1) -> None:
        port[0] += 1
        udp(cap, cli, srv, port[0], dport, msg)
        if reply is not None:
            udp(cap, srv, cli, dport, port[0], reply, rev=True)

    www = hdr() + q(name(b"www", b"example", b"com"))
    exchange(www, answer(www))
    exchange(hdr() + q(name(b"a.b", b"c")))
    exchange(hdr() + q(name(b"x\x00\xff\x7f", b"c d")))
    exchange(hdr(qd=2) + q(name(b"first", b"example")) + q(name(b"second", b"example")))
    exchange(hdr(qd=2) + q(b"\0") + q(name(b"hidden", b"example")))
    exchange(hdr(qd=2) + q(name(b"www", b"example", b"com")) + q(b"\x03foo" + ptr(16)))
    exchange(hdr() + (b"\x3f" + b"b" * 63) * 20 + b"\0\x00\x01\x00\x01")
    exchange(quirk(238))
    exchange(hdr() + b"\x01x" + ptr(20) + b"\x00\x01\x00\x01" + b"\x03abc" + ptr(24))
    exchange(hdr() + ptr(14) + ptr(12) + b"\x00\x01\x00\x01")            # pointer loop: empty name
    exchange(hdr() + ptr(12) + b"\x00\x01\x00\x01")                      # self pointer: malformed
    # a response whose question is not in dns.query (sent alone: the flow is the client's)
    ans = hdr() + q(name(b"answered", b"example"))
    exchange(hdr() + q(name(b"asked", b"example")), answer(ans))
    exchange(hdr() + q(name(b"port5353", b"example")), dport=5353)
    exchange(hdr() + q(name(b"udp-rule", b"example")))
    # opcodes: request 4 answered with 4, request 0 answered with 4, status (2)
    notify = hdr(flags=0x2100) + q(name(b"notify", b"example"))
    exchange(notify, answer(notify, flags=0xA180))
    exchange(hdr(flags=0x0100) + q(name(b"plain", b"example")), answer(hdr() + q(name(b"plain", b"example")),
                                                                      flags=0xA180))
    exchange(hdr(flags=0x1100) + q(name(b"status", b"example")))
    exchange(hdr() + q(name(b"payload", b"example")))

    # TCP: several messages per segment, a message split over segments, zero lengths
    def framed(m: bytes) -> bytes:
        return struct.pack("!H", len(m)) + m

    t = Tcp(cap, C2, S2, 41001, 53).handshake()
    one = framed(hdr(id=1) + q(name(b"tcp1", b"example")))
    two = framed(hdr(id=2) + q(name(b"tcp2", b"example")))
    three = framed(hdr(id=3, flags=0x2100) + q(name(b"tcp-rule", b"example")))
    t.c(data=one + b"\x00\x00" + two[:5])
    t.c(data=two[5:] + three[:1])
    t.c(data=three[1:])
    t.s(data=framed(answer(hdr(id=3, flags=0x2100) + q(name(b"tcp-rule", b"example")), flags=0xA180)))
    t.close()


FAMILIES = [
    AppFamily("app_dns", "DNS over UDP and TCP: dns.query exact names (dots inside labels, raw bytes, "
              "compression pointers, pointer loops, the 1025-character cut and the item-limit quirk, a root "
              "name ending the multi-buffer, a response's question not in it), dns_query, dns.opcode on "
              "requests and responses, TCP framing over segments, DNS on port 5353 not detected, udp/tcp "
              "rules with dns.query", RULES, s_dns, ("ips", "ids")),
]
