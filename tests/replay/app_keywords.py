"""The state and decoding keywords ET Open uses, one differential family (app_keywords):

- xbits per source host, destination host and IP pair: set / isset / isnotset / unset /
  toggle, the expiry in whole seconds of packet time (a set on a live bit does not move it),
  the signature order (a check before a set on the same packet), IP-only xbits rules on new
  flows (run before the other rules of the packet), xbits on TCP and HTTP rules across flows, a drop on a marked host;
- flowint: + (also on a variable not set), -, = (a value or another variable), the
  comparisons, isset / notset, uint32 wrap-around, setters ordered before readers, per flow;
  and ET's infostealer pattern (HTTP requests counted per flow with xbits set on the way);
- base64_decode / base64_data: exact decoded buffers of odd encodings (padding in the middle,
  partial blocks, a stop at the first byte outside the alphabet), relative / offset / bytes,
  the decoded buffer's own chain (relative contents, pcre, byte_test, negation, nocase),
  pkt_data after it, base64_decode without base64_data, the quirks (it ends its buffer's
  inspection; the content before it is not retried), on UDP and in HTTP request bodies split
  over segments and in http.uri;
- app-layer-event: DNS and TLS events on their transactions (a TLS event alerts once per
  direction), an HTTP request the parser gives up on (the flow is dropped before detection,
  as Suricata's app-layer.error-policy in ips mode).

Each part uses its own ports and times; traffic is crafted so the flows whose rules depend on
state set by another flow are checked only after that flow set it (our engine evaluates a
transaction still waiting on a check again at its flow's end, Suricata on the next packet of
that direction)."""
from __future__ import annotations

from app_scenarios import AppFamily

RULES = r"""
# xbits per host (sid 9300xx)
alert udp any any -> any 7000 (msg:"xb set src expire 10"; content:"SET"; xbits:set,b1,track ip_src,expire 10; sid:930001; priority:1;)
alert udp any any -> any 7000 (msg:"xb isset src"; content:"CHK"; xbits:isset,b1,track ip_src; sid:930002; priority:3;)
alert udp any any -> any 7000 (msg:"xb isnotset src"; content:"CHK"; xbits:isnotset,b1,track ip_src; sid:930003;)
alert udp any any -> any 7001 (msg:"xb setter on the same packet"; content:"X"; xbits:set,b2,track ip_src; sid:930004; priority:3;)
alert udp any any -> any 7001 (msg:"xb reader on the same packet"; content:"X"; xbits:isset,b2,track ip_src; sid:930005; priority:1;)
alert udp any any -> any 7002 (msg:"xb pair set"; content:"PS"; xbits:set,p,track ip_pair; noalert; sid:930006;)
alert udp any any -> any any (msg:"xb pair isset"; content:"PC"; xbits:isset,p,track ip_pair; sid:930007;)
alert udp any any -> any 7003 (msg:"xb dst set"; content:"DS"; xbits:set,d,track ip_dst; sid:930008;)
alert udp any any -> any any (msg:"xb src isset of dst bit"; content:"DC"; xbits:isset,d,track ip_src; sid:930009;)
alert udp any any -> any 7004 (msg:"xb toggle"; content:"TG"; xbits:toggle,t,track ip_src; sid:930010;)
alert udp any any -> any 7004 (msg:"xb toggled isset"; content:"TC"; xbits:isset,t,track ip_src; sid:930011;)
alert udp any any -> any 7004 (msg:"xb unset"; content:"UN"; xbits:unset,t,track ip_src; sid:930012;)
alert udp any any -> any 7005 (msg:"xb name with a space"; content:"NS"; xbits:set,two words,track ip_src,expire 5,ignored; sid:930013;)
alert udp any any -> any 7005 (msg:"xb other name"; content:"NC"; xbits:isset,two,track ip_src; sid:930014;)
alert udp any any -> any 7005 (msg:"xb same name"; content:"NC"; xbits:isset,two words,track ip_src; sid:930015;)
# xbits: IP-only, TCP, HTTP across flows, drop (sid 9301xx)
alert udp any any -> any 7200 (msg:"xb mark bad"; content:"BAD"; xbits:set,bad,track ip_src,expire 60; sid:930101;)
alert ip any any -> any any (msg:"xb iponly bad src"; xbits:isset,bad,track ip_src; sid:930102;)
alert tcp any any -> any 80 (msg:"xb tcp from bad"; flow:established,to_server; content:"GET"; xbits:isset,bad,track ip_src; sid:930103;)
alert ip any any -> any any (msg:"xb iponly setter"; xbits:set,seen,track ip_dst,expire 60; noalert; sid:930104;)
alert udp any any -> any 7201 (msg:"xb seen dst"; xbits:isset,seen,track ip_dst; sid:930105;)
alert udp any any -> any 7202 (msg:"xb payload rule sees the iponly set"; content:"a"; xbits:isset,seen,track ip_dst; sid:930112;)
alert http any any -> any any (msg:"xb http set pair"; flow:to_server; http.uri; content:"/mark"; xbits:set,hp,track ip_pair,expire 30; sid:930106;)
alert http any any -> any any (msg:"xb http isset pair"; flow:to_server; http.uri; content:"/check"; xbits:isset,hp,track ip_pair; sid:930107;)
alert http any any -> any any (msg:"xb http isset pair response"; flow:to_client; http.stat_code; content:"200"; xbits:isset,hp,track ip_pair; sid:930108;)
alert http any any -> any any (msg:"xb http isnotset pair"; flow:to_server; http.uri; content:"/check"; xbits:isnotset,hp,track ip_pair; sid:930109;)
alert udp any any -> any 7300 (msg:"xb block"; content:"BLOCK"; xbits:set,blocked,track ip_src; noalert; sid:930110;)
drop udp any any -> any 7301 (msg:"xb drop blocked"; xbits:isset,blocked,track ip_src; sid:930111;)
# flowint (sid 9302xx)
alert udp any any -> any 7100 (msg:"fi add"; content:"ADD"; flowint:cnt,+,1; sid:930201;)
alert udp any any -> any 7100 (msg:"fi cnt==2"; flowint:cnt,==,2; sid:930202;)
alert udp any any -> any 7100 (msg:"fi cnt>=3"; content:"Q"; flowint:cnt,>=,3; sid:930203;)
alert udp any any -> any 7100 (msg:"fi notset"; content:"Q"; flowint:cnt,notset; sid:930204;)
alert udp any any -> any 7100 (msg:"fi isset"; content:"Q"; flowint:cnt,isset; sid:930205;)
alert udp any any -> any 7100 (msg:"fi sub"; content:"SUB"; flowint:cnt,-,5; sid:930206;)
alert udp any any -> any 7100 (msg:"fi wrapped"; content:"Q"; flowint:cnt,>,4000000000; sid:930207;)
alert udp any any -> any 7100 (msg:"fi set other"; content:"SETO"; flowint:other,=,7; sid:930208;)
alert udp any any -> any 7100 (msg:"fi cnt < other"; content:"Q"; flowint:cnt,<,other; sid:930209;)
alert udp any any -> any 7100 (msg:"fi cnt != missing"; content:"Q"; flowint:cnt,!=,missing; sid:930210;)
alert udp any any -> any 7100 (msg:"fi copy var"; content:"COPY"; flowint:cp,=,other; sid:930211;)
alert udp any any -> any 7100 (msg:"fi cp==7"; content:"Q"; flowint:cp,==,7; sid:930212;)
alert udp any any -> any 7100 (msg:"fi sub not set"; content:"SUBX"; flowint:nx,-,1; sid:930213;)
alert udp any any -> any 7100 (msg:"fi nx isset"; content:"Q"; flowint: nx , isset ; sid:930214;)
alert udp any any -> any 7100 (msg:"fi le ge"; content:"R"; flowint:cnt,<=,4294967289; flowint:cnt,>=,4294967289; sid:930215;)
# ET's infostealer pattern: dll downloads counted per flow (sid 9303xx)
alert http any any -> any any (msg:"fi dll download"; flow:established,to_server; http.method; content:"GET"; http.uri; content:".dll"; endswith; xbits:set,ET.is.1,track ip_src,expire 15; xbits:set,ET.is.2,track ip_pair,expire 15; flowint: ET.dll.download, +, 1; sid:930301;)
alert http any any -> any any (msg:"fi three dlls"; flow:established,to_server; http.uri; content:".dll"; endswith; flowint:ET.dll.download,>=,3; sid:930302;)
alert http any any -> any any (msg:"xb stealer post"; flow:established,to_server; http.method; content:"POST"; xbits:isset,ET.is.1,track ip_src; xbits:isset,ET.is.2,track ip_pair; sid:930303;)
# base64_decode / base64_data (sid 9304xx; 9305xx: one exact rule per encoding, B64_CASES)
alert udp any any -> any 8001 (msg:"b64 decode without data"; content:"K"; base64_decode:relative; sid:930401;)
alert udp any any -> any 8001 (msg:"b64 empty data list"; content:"K"; base64_decode:relative; base64_data; sid:930402;)
alert udp any any -> any 8002 (msg:"b64 terminal"; content:"KKKK"; base64_decode:relative; isdataat:500; byte_test:1,=,200,0; base64_data; content:"hello"; sid:930403;)
alert udp any any -> any 8003 (msg:"b64 no retry"; content:"K"; base64_decode:relative; base64_data; content:"hello"; sid:930404;)
alert udp any any -> any 8004 (msg:"b64 offset"; base64_decode:offset 2; base64_data; content:"hello"; startswith; sid:930405;)
alert udp any any -> any 8005 (msg:"b64 bytes cut"; content:"K"; base64_decode:bytes 8,relative; base64_data; content:"hello "; endswith; sid:930406;)
alert udp any any -> any 8005 (msg:"b64 bytes cut no world"; content:"K"; base64_decode:bytes 8,relative; base64_data; content:"world"; sid:930407;)
alert udp any any -> any 8006 (msg:"b64 offset past the end"; content:"K"; base64_decode:offset 16,relative; base64_data; content:"|00|"; sid:930408;)
alert udp any any -> any 8006 (msg:"b64 offset relative"; content:"K"; base64_decode:offset 4,relative; base64_data; content:"lo world"; startswith; sid:930409;)
alert udp any any -> any 8007 (msg:"b64 data relative"; base64_decode; base64_data; content:"hel"; content:"wor"; distance:3; within:3; sid:930410;)
alert udp any any -> any 8007 (msg:"b64 data pcre"; base64_decode; base64_data; pcre:"/^hello\s+w/"; sid:930411;)
alert udp any any -> any 8007 (msg:"b64 data negated"; base64_decode; base64_data; content:!"bye"; sid:930412;)
alert udp any any -> any 8007 (msg:"b64 data depth"; base64_decode; base64_data; content:"world"; depth:11; sid:930413;)
alert udp any any -> any 8007 (msg:"b64 data isdataat"; base64_decode; base64_data; content:"hello"; isdataat:6,relative; sid:930414;)
alert udp any any -> any 8007 (msg:"b64 pkt_data after"; base64_decode; base64_data; content:"HELLO"; nocase; pkt_data; content:"aGVs"; sid:930415;)
alert udp any any -> any 8007 (msg:"b64 data byte_test"; base64_decode; base64_data; byte_test:1,=,104,0; sid:930416;)
alert udp any any -> any 8008 (msg:"b64 after pcre"; pcre:"/K+/"; base64_decode:relative; base64_data; content:"hello"; sid:930417;)
alert udp any any -> any 8008 (msg:"b64 bytes 0 is the default"; base64_decode:bytes 0,offset 3; base64_data; content:"world"; sid:930418;)
alert udp any any -> any 8009 (msg:"b64 after negated content"; content:!"Z"; base64_decode; base64_data; content:"hello"; sid:930419;)
alert http any any -> any any (msg:"b64 http body"; flow:to_server; http.request_body; content:"<data>"; base64_decode:bytes 300, offset 0, relative; base64_data; content:"<!DOCTYPE"; content:"SYSTEM"; distance:0; sid:930420;)
alert http any any -> any any (msg:"b64 http uri"; http.uri; content:"q="; base64_decode:relative; base64_data; content:"hello"; sid:930421;)
alert http any any -> any any (msg:"b64 http body other"; flow:to_server; http.request_body; content:"<data>"; base64_decode:relative; base64_data; content:"nothere"; sid:930422;)
# app-layer-event (sid 9306xx)
alert dns any any -> any any (msg:"ev dns z flag"; app-layer-event:dns.z_flag_set; sid:930601;)
alert dns any any -> any any (msg:"ev dns opcode"; app-layer-event:dns.invalid_opcode; sid:930602;)
alert dns any any -> any any (msg:"ev dns malformed"; app-layer-event:dns.malformed_data; sid:930603;)
alert udp any any -> any any (msg:"ev dns on udp rule with query"; app-layer-event:dns.z_flag_set; dns.query; content:"z.example"; sid:930604;)
alert tls any any -> any any (msg:"ev tls handshake length"; app-layer-event:tls.handshake_invalid_length; sid:930605;)
alert tls any any -> any any (msg:"ev tls handshake length to server"; flow:to_server; app-layer-event:tls.handshake_invalid_length; sid:930606;)
alert tls any any -> any any (msg:"ev tls record type"; app-layer-event:tls.invalid_record_type; sid:930607;)
alert http any any -> any any (msg:"ev http te ET"; flow:established,to_server; app-layer-event:http.invalid_transfer_encoding_value_in_request; http.method; content:"POST"; sid:930608;)
"""

HELLO = b"aGVsbG8gd29ybGQ="       # "hello world"
# encodings whose decoded bytes each rule 9305xx pins exactly (content, startswith, endswith)
B64_CASES = [b"aGVsbG8=", b"aGVsbG8", b"aGVsbA", b"aGVsb", b"Zg==", b"Zg=", b"Zg==Zm8=", b"Z=g=", b"aGVs bG8=",
             b"aGVsbG8gd29ybGQ!rest", b"aG!", b"aGV!", b"a!", b"aGVsbG8\r\nd29y", b"AB==CD", b"QUJD\x80", b"QU=D",
             b"=QUJD", b"QUJD===", b"++//", b"QUJDREVG" * 3]


def b64_rules() -> str:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from rules.keywords.base64 import decode_reference

    out = []
    for i, enc in enumerate(B64_CASES):
        dec = " ".join(f"{b:02x}" for b in decode_reference(enc))
        out.append(f'alert udp any any -> any {8100 + i} (msg:"b64 exact {i}"; content:"K"; base64_decode:relative; '
                   f'base64_data; content:"|{dec}|"; startswith; endswith; sid:{930500 + i};)')
    return RULES + "\n".join(out) + "\n"


def s_keywords(cap) -> None:
    from make_differential import BASE_TS, C1, C2, C3, S1, S2, S3, Tcp, udp   # (make_differential imports us)

    def at(t: float) -> None:
        cap.t = BASE_TS + t

    # -- xbits per source host: expiry in whole seconds, no refresh by a second set
    udp(cap, C1, S1, 1000, 7000, b"CHK", at=0)
    udp(cap, C1, S1, 1001, 7000, b"SETCHK", at=1)          # the check runs before the set
    udp(cap, C1, S1, 1002, 7000, b"CHK", at=5)
    udp(cap, C1, S1, 1003, 7000, b"SET", at=8)             # already set: still expires at 1+10
    udp(cap, C1, S1, 1004, 7000, b"CHK", at=11.5)          # second 11: set
    udp(cap, C1, S1, 1005, 7000, b"CHK", at=12.0)          # second 12: expired
    # -- a check and a set on the same packet, whatever the priorities
    udp(cap, C1, S1, 1006, 7001, b"X", at=20)
    udp(cap, C1, S1, 1007, 7001, b"X", at=21)
    # -- IP pair (either order), destination bits read as source
    udp(cap, C2, S2, 1010, 7002, b"PS", at=22)
    udp(cap, S2, C2, 1011, 9999, b"PC", at=23)
    udp(cap, C2, S1, 1012, 9999, b"PC", at=24)
    udp(cap, C3, S3, 1013, 7003, b"DS", at=25)
    udp(cap, S3, C3, 1014, 9999, b"DC", at=26)
    udp(cap, C3, S3, 1015, 9999, b"DC", at=27)
    # -- toggle and unset
    udp(cap, C1, S1, 1020, 7004, b"TGTC", at=30)
    udp(cap, C1, S1, 1021, 7004, b"TC", at=31)
    udp(cap, C1, S1, 1022, 7004, b"TG", at=32)
    udp(cap, C1, S1, 1023, 7004, b"TC", at=33)
    udp(cap, C1, S1, 1024, 7004, b"TG", at=34)
    udp(cap, C1, S1, 1025, 7004, b"UNTC", at=35)
    udp(cap, C1, S1, 1026, 7004, b"TC", at=36)
    # -- a name with a space is one name; text after the last part is ignored
    udp(cap, C2, S1, 1030, 7005, b"NS", at=37)
    udp(cap, C2, S1, 1031, 7005, b"NC", at=38)
    # -- IP-only rules on the first packet of each flow direction; a TCP rule on a marked host
    udp(cap, C1, S1, 1100, 7200, b"BAD", at=40)
    udp(cap, C1, S1, 1101, 7200, b"xx", at=41)
    at(42)
    t = Tcp(cap, C1, S2, 40000, 80).handshake()
    t.c(data=b"GET / HTTP/1.0\r\n\r\n")
    t.s(data=b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()
    udp(cap, C2, S3, 1102, 7201, b"a", at=45)
    udp(cap, C2, S3, 1103, 7201, b"b", at=46)
    udp(cap, C2, "203.0.113.77", 1104, 7202, b"a", at=47)    # IP-only rules run first: the set is seen
    # -- HTTP: a pair marked by one flow, checked by later ones (a pair never marked: isnotset)
    at(50)
    for i, (cli, uri) in enumerate(((C3, b"/mark"), (C3, b"/check"), (C2, b"/check"))):
        t = Tcp(cap, cli, S3, 41000 + i, 80).handshake()
        t.c(data=b"GET " + uri + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        t.close()
    # -- a drop on a marked host (only C3 is marked)
    udp(cap, C3, S1, 1200, 7300, b"BLOCK", at=60)
    udp(cap, C3, S1, 1201, 7301, b"after", at=61)
    udp(cap, C3, S1, 1201, 7301, b"again", at=62)
    udp(cap, C2, S1, 1202, 7301, b"other", at=63)
    # -- flowint on one UDP flow, then a new flow (its own integers)
    for i, data in enumerate((b"Q", b"ADD", b"Q", b"ADDQ", b"ADDQ", b"SUBQ", b"SETOQ", b"COPYQ", b"SUBXQ", b"R")):
        udp(cap, C1, S1, 1300, 7100, data, at=70 + i)
    udp(cap, C1, S1, 1301, 7100, b"Q", at=81)
    # -- ET's infostealer pattern: three dlls on one keep-alive flow, then a POST on another
    at(90)
    t = Tcp(cap, C2, S2, 42000, 80).handshake()
    for name in (b"sqlite3", b"mozglue", b"nss3"):
        t.c(data=b"GET /lib/" + name + b".dll HTTP/1.1\r\nHost: stealer.example\r\n\r\n")
        t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nMZ")
    t.close()
    t = Tcp(cap, C2, S2, 42001, 80).handshake()
    t.c(data=b"POST /gate HTTP/1.1\r\nHost: stealer.example\r\nContent-Length: 4\r\n\r\ndata")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()
    t = Tcp(cap, C1, S2, 42002, 80).handshake()          # another host: neither bit
    t.c(data=b"POST /gate HTTP/1.1\r\nHost: stealer.example\r\nContent-Length: 4\r\n\r\ndata")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()
    # -- base64 on UDP
    for i, data in enumerate((b"K" + HELLO, b"KKKK" + HELLO, b"K!!!!K" + HELLO, b"xx" + HELLO, b"K" + HELLO,
                              b"K" + HELLO, HELLO, b"KKK" + HELLO, HELLO)):
        udp(cap, C1, S1, 3000 + i, 8001 + i, data, at=120 + i)
    for i, enc in enumerate(B64_CASES):
        udp(cap, C1, S1, 3100 + i, 8100 + i, b"K" + enc, at=130 + i)
    # -- base64 in an HTTP request body split over segments, and in the URI
    at(160)
    doc = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    import base64 as _b64
    body = b"<x><data>" + _b64.b64encode(doc) + b"</data></x>"
    t = Tcp(cap, C2, S2, 44000, 80).handshake()
    t.c(data=b"POST /x?q=" + HELLO[:8] + b" HTTP/1.1\r\nHost: h\r\nContent-Length: " + str(len(body)).encode()
        + b"\r\n\r\n" + body[:20])
    t.c(data=body[20:50])
    t.c(data=body[50:])
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()
    # -- app-layer-event: DNS requests, TLS handshakes, an HTTP request the parser gives up on
    import struct

    def dns(flags: int, *labels: bytes) -> bytes:
        return struct.pack("!6H", 0x1234, flags, 1, 0, 0, 0) + b"".join(
            bytes([len(lb)]) + lb for lb in labels) + b"\0" + struct.pack("!HH", 1, 1)
    udp(cap, C2, S2, 50001, 53, dns(0x0140, b"z", b"example"), at=170)
    udp(cap, S2, C2, 53, 50001, dns(0x8180, b"z", b"example"), at=171, rev=True)
    udp(cap, C2, S2, 50002, 53, dns(0x0100 | (9 << 11), b"op", b"example"), at=172)
    udp(cap, C2, S2, 50003, 53, dns(0x0100, b"ok", b"example"), at=173)
    udp(cap, C2, S2, 50003, 53, dns(0x0100, b"ok", b"example")[:12] + b"\x05abc", at=174)
    at(180)
    hello = bytes.fromhex("0100002d0303") + b"\x00" * 32 + bytes.fromhex("000002002f01000002ff01")
    t = Tcp(cap, C3, S3, 45003, 443).handshake()            # a bad handshake length, then an alert back
    t.c(data=b"\x16\x03\x01" + struct.pack("!H", len(hello)) + hello)
    t.s(data=b"\x15\x03\x01\x00\x02\x02\x28")
    t.close()
    t = Tcp(cap, C3, S3, 45004, 443).handshake()            # then a record of an unknown type
    t.c(data=b"\x16\x03\x01" + struct.pack("!H", len(hello)) + hello)
    t.c(data=b"\x19\x03\x01\x00\x02ab")
    t.close()
    t = Tcp(cap, C1, S1, 45005, 80).handshake()
    t.c(data=b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    t.close()


FAMILIES = [
    AppFamily("app_keywords", "xbits (host and IP-pair bits, expiry, order, IP-only, TCP/HTTP across flows, "
              "drop), flowint (arithmetic, comparisons, variables, wrap-around, order, per flow), ET's "
              "infostealer xbits+flowint pattern, base64_decode/base64_data (decoding, options, quirks, HTTP "
              "body and uri), app-layer-event (DNS, TLS, HTTP)", b64_rules(), s_keywords),
]
