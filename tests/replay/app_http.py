"""HTTP differential families: requests crafted so each buffer's exact content is
tested (rules that pin the buffer with startswith/endswith or bsize), over
segment splits, pipelining, normalization and the legacy modifiers."""
from __future__ import annotations

from app_scenarios import AppFamily

REQUESTS_RULES = r"""
# request line buffers (sid 9100xx)
alert http any any -> any any (msg:"method exact"; flow:to_server; http.method; content:"POST"; bsize:4; sid:910001;)
alert http any any -> any any (msg:"uri exact /index.html"; http.uri; content:"/index.html"; startswith; endswith; sid:910002;)
alert http any any -> any any (msg:"uri.raw keeps encoding"; http.uri.raw; content:"/a/./b/../c//d%41"; startswith; sid:910003;)
alert http any any -> any any (msg:"uri normalized path"; http.uri; content:"/a/c/dA"; startswith; sid:910004;)
alert http any any -> any any (msg:"uri normalized query"; http.uri; content:"?x=B+y"; endswith; sid:910005;)
alert http any any -> any any (msg:"uri query raw"; http.uri; content:"?x=%42+y"; endswith; sid:910006;)
alert http any any -> any any (msg:"protocol"; http.protocol; content:"HTTP/1.1"; bsize:8; sid:910007;)
alert http any any -> any any (msg:"request_line"; http.request_line; content:"GET /index.html HTTP/1.1"; bsize:24; sid:910008;)
alert http any any -> any any (msg:"absolute uri path only"; http.uri; content:"/abs/path"; startswith; endswith; sid:910009;)
alert http any any -> any any (msg:"absolute uri raw"; http.uri.raw; content:"http://Abs.Example.COM:8080/abs/path"; bsize:36; sid:910010;)
# headers (sid 9101xx)
alert http any any -> any any (msg:"host lowercase no port"; http.host; content:"www.example.com"; bsize:15; sid:910101;)
alert http any any -> any any (msg:"host.raw as sent"; http.host.raw; content:"WWW.Example.com:8080"; bsize:20; sid:910102;)
alert http any any -> any any (msg:"host from absolute uri"; http.host; content:"abs.example.com"; bsize:15; sid:910103;)
alert http any any -> any any (msg:"user agent"; http.user_agent; content:"TestAgent/1.0"; bsize:13; sid:910104;)
alert http any any -> any any (msg:"cookie"; http.cookie; content:"session=abc"; bsize:11; sid:910105;)
alert http any any -> any any (msg:"header has host line"; http.header; content:"Host|3a 20|WWW.Example.com:8080|0d 0a|"; sid:910106;)
alert http any any -> any any (msg:"header excludes cookie"; http.header; content:"Cookie"; sid:910107;)
alert http any any -> any any (msg:"header ends with crlfcrlf"; http.header; content:"|0d 0a 0d 0a|"; endswith; sid:910108;)
alert http any any -> any any (msg:"header ends with one crlf"; http.header; content:"TestAgent/1.0|0d 0a|"; endswith; sid:910109;)
alert http any any -> any any (msg:"header_names format"; http.header_names; content:"|0d 0a|Host|0d 0a|User-Agent|0d 0a|"; startswith; sid:910110;)
alert http any any -> any any (msg:"header_names end"; http.header_names; content:"Cookie|0d 0a 0d 0a|"; endswith; sid:910111;)
alert http any any -> any any (msg:"start begins with line"; http.start; content:"GET /index.html HTTP/1.1|0d 0a|Host"; startswith; sid:910112;)
alert http any any -> any any (msg:"start ends crlfcrlf"; http.start; content:"|0d 0a 0d 0a|"; endswith; sid:910113;)
alert http any any -> any any (msg:"header.raw"; flow:to_server; http.header.raw; content:"Host: WWW.Example.com:8080|0d 0a|"; startswith; sid:910114;)
alert http any any -> any any (msg:"accept"; http.accept; content:"text/html"; bsize:9; sid:910115;)
alert http any any -> any any (msg:"referer"; http.referer; content:"http://ref.example/"; bsize:19; sid:910116;)
alert http any any -> any any (msg:"repeated header joined"; http.header; content:"X-Dup: one, two|0d 0a|"; sid:910117;)
alert http any any -> any any (msg:"folded header"; http.user_agent; content:"Folded Agent"; bsize:12; sid:910118;)
# legacy modifiers and urilen (sid 9102xx)
alert http any any -> any any (msg:"legacy http_uri nocase after"; content:"INDEX"; http_uri; nocase; content:"GET"; http_method; sid:910201;)
alert http any any -> any any (msg:"legacy modifiers relative"; content:"/a"; http_uri; content:"dA"; http_uri; distance:0; sid:910202;)
alert http any any -> any any (msg:"urilen 11"; urilen:11; sid:910203;)
alert http any any -> any any (msg:"urilen raw >16"; urilen:>16,raw; http.method; content:"GET"; sid:910204;)
alert tcp any any -> any any (msg:"tcp rule with http buffer"; flow:established,to_server; http.host; content:"split.example"; sid:910205;)
alert http any any -> any any (msg:"http rule plain content"; content:"Split-Header"; sid:910206;)
# IPS: drop on host (the request's headers complete on the second segment)
drop http any any -> any any (msg:"drop split host"; flow:to_server; http.host; content:"split.example"; sid:910301;)
drop http any any -> any any (msg:"drop second pipelined"; http.uri; content:"/second"; sid:910302;)
alert http any any -> any any (msg:"pipelined third"; http.uri; content:"/third"; sid:910303;)
# pcre's HTTP flags (sid 9104xx)
alert http any any -> any any (msg:"pcre U"; pcre:"/\/index\.html$/U"; sid:910401;)
alert http any any -> any any (msg:"pcre M"; pcre:"/^GET$/M"; sid:910402;)
alert http any any -> any any (msg:"pcre W"; pcre:"/^www\.example\.com$/W"; sid:910403;)
alert http any any -> any any (msg:"pcre H"; flow:to_server; pcre:"/User-Agent: TestAgent/H"; sid:910404;)
alert http any any -> any any (msg:"pcre C"; pcre:"/^session=abc$/C"; sid:910405;)
alert http any any -> any any (msg:"pcre I keeps encoding"; pcre:"/%41\?/I"; sid:910406;)
alert http any any -> any any (msg:"pcre U relative"; content:"/a/"; http_uri; pcre:"/^c\/\/dA/UR"; sid:910407;)
# app-layer-protocol (sid 9105xx)
alert tcp any any -> any any (msg:"alp http"; flow:to_server; app-layer-protocol:http; content:"Split-Header"; sid:910501;)
alert tcp any any -> any any (msg:"alp not http on http"; app-layer-protocol:!http; content:"Split"; sid:910502;)
alert tcp any any -> any any (msg:"alp failed"; app-layer-protocol:failed; content:"HELLO"; sid:910503;)
alert tcp any any -> any any (msg:"alp not http on failed"; app-layer-protocol:!http; content:"HELLO"; sid:910504;)
alert tcp any any -> any any (msg:"alp not http on failed, reply"; flow:to_client; app-layer-protocol:!http; content:"WORLD"; sid:910505;)
# app-layer-event on header lines, as libhtp judges them (sid 9106xx)
alert http any any -> any any (msg:"ev missing colon"; flow:to_server; app-layer-event:http.request_field_missing_colon; sid:910601;)
alert http any any -> any any (msg:"ev header name with space"; flow:to_server; app-layer-event:http.request_header_invalid; sid:910602;)
"""


def _ok(t, body: bytes = b"ok") -> None:
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def s_requests(cap) -> None:
    from make_differential import C1, S1, S2, Tcp   # (imported here: make_differential imports this module)

    # 1: a plain GET with the usual headers
    t = Tcp(cap, C1, S1, 40001, 80).handshake()
    t.c(data=b"GET /index.html HTTP/1.1\r\nHost: WWW.Example.com:8080\r\nUser-Agent: TestAgent/1.0\r\n"
             b"Accept: text/html\r\nReferer: http://ref.example/\r\nCookie: session=abc\r\n\r\n")
    _ok(t)
    t.close()
    # 2: a POST with a normalizable URI and repeated / folded headers
    t = Tcp(cap, C1, S1, 40002, 80).handshake()
    t.c(data=b"POST /a/./b/../c//d%41?x=%42+y HTTP/1.1\r\nHost: www.example.com\r\nX-Dup: one\r\n"
             b"X-Dup: two\r\nUser-Agent: Folded\r\n Agent\r\nContent-Length: 0\r\n\r\n")
    _ok(t)
    t.close()
    # 3: an absolute URI
    t = Tcp(cap, C1, S2, 40003, 8080).handshake()
    t.c(data=b"GET http://Abs.Example.COM:8080/abs/path HTTP/1.1\r\nHost: other.example\r\n\r\n")
    _ok(t)
    t.close()
    # 4: a request split over three segments: the host completes on the last one
    t = Tcp(cap, C1, S1, 40004, 80).handshake()
    t.c(data=b"GET /sp")
    t.c(data=b"lit HTTP/1.1\r\nHost: split.exa")
    t.c(data=b"mple\r\nSplit-Header: 1\r\n\r\n")
    _ok(t)
    t.close()
    # 5: three pipelined requests in one segment, then their responses
    t = Tcp(cap, C1, S1, 40005, 80).handshake()
    t.c(data=b"GET /first HTTP/1.1\r\nHost: p.example\r\n\r\nGET /second HTTP/1.1\r\nHost: p.example\r\n\r\n"
             b"GET /third HTTP/1.1\r\nHost: p.example\r\n\r\n")
    _ok(t)
    _ok(t)
    _ok(t)
    t.close()
    # 7 (crafted before 6 in the file order below): header lines libhtp finds odd
    t = Tcp(cap, C1, S1, 40007, 80).handshake()
    t.c(data=b"GET /odd HTTP/1.1\r\nHost: odd.example\r\nNoColonHere\r\nBad Name: x\r\n\r\n")
    _ok(t)
    t.close()
    # 6: not HTTP on port 80 (detection fails once both sides spoke)
    t = Tcp(cap, C1, S1, 40006, 80).handshake()
    t.c(data=b"HELLO not http\r\n")
    t.s(data=b"WORLD not http either\r\n")
    t.c(data=b"HELLO again\r\n")
    t.s(data=b"WORLD again\r\n")
    t.close()

# request target -> http.uri as Suricata 7.0.10 (libhtp) normalizes it: each pair is
# pinned by an exact rule (content + bsize) on its own flow
URI_CASES = [
    (b'/a\\b\\c', b'/a\\b\\c'),          # backslashes stay
    (b'/a%2fb', b'/a%2fb'),                # %2F is not decoded in the path
    (b'/a%2Fb/../c', b'/c'),               # ... so "a%2Fb" is one segment
    (b'/%u0041', b'/%u0041'),              # no %u decoding
    (b'/a+b?c+d', b'/a+b?c+d'),
    (b'/A%41?%41', b'/AA?A'),              # path and query decoded
    (b'/a/%2e%2e/b', b'/b'),               # %2e decoded before dot segments go
    (b'/a/b/..', b'/a'),                   # a final /.. or /. leaves no slash
    (b'/a/b/.', b'/a/b'),
    (b'/./a', b'/a'),
    (b'/../a', b'/a'),
    (b'//a//b', b'//a//b'),                # repeated slashes stay
    (b'/a%zz', b'/a%zz'),
    (b'/a%4', b'/a%4'),
    (b'/a?b?c', b'/a?b?c'),
    (b'/a#frag', b'/a#frag'),              # the fragment stays
    (b'/a?x#frag', b'/a?x#frag'),
    (b'/a%00b', b'/a\x00b'),
    (b'/a/b/../../..', b''),               # empty: bsize:0
    (b'/%7e', b'/~'),
    (b'*', b'*'),
    (b'/a;b/../c', b'/c'),
    (b'http://h/x/../y', b'/y'),           # absolute: the path only
    (b'/a/./', b'/a'),
    (b'/a%20b', b'/a b'),
    (b'/\xc3\xa9', b'/\xc3\xa9'),
    (b'/a//../b', b'/a/b'),
    (b'/a/.%2e/b', b'/b'),
    (b'/a?x=%42+y', b'/a?x=B+y'),          # "+" stays
    (b'/a?x=%2F%3f', b'/a?x=/?'),          # %2F decoded in the query
    (b'/a#b?c', b'/a#b?c'),
    (b'/a%3fb?c', b'/a?b?c'),
    (b'/a%23b', b'/a#b'),
    (b'HTTP://H:8/Z/./q?%41', b'/Z/q?A'),
    (b'/a/b/c/./../../g', b'/a/g'),
    (b'mid/content=5/../6', b'mid/6'),
    (b'/a%5cb', b'/a\\b'),
    (b'/%41%42/../c', b'/c'),
    (b'/p?a/../b', b'/p?a/../b'),          # no dot segments in the query
]
URI_PORT = 41000


def _hex(b: bytes) -> str:
    return "|" + " ".join("%02x" % c for c in b) + "|"


def uri_rules() -> str:
    out = []
    for i, (_raw, norm) in enumerate(URI_CASES):
        match = f'content:"{_hex(norm)}"; bsize:{len(norm)};' if norm else "bsize:0;"
        out.append(f'alert http any {URI_PORT + i} -> any any (msg:"uri case {i}"; flow:to_server; http.uri; '
                   f'{match} sid:{911000 + i};)')
    return "\n".join(out) + "\n"


def s_uri(cap) -> None:
    from make_differential import C1, S1, Tcp

    for i, (raw, _norm) in enumerate(URI_CASES):
        t = Tcp(cap, C1, S1, URI_PORT + i, 80).handshake()
        t.c(data=b"GET " + raw + b" HTTP/1.1\r\nHost: h\r\n\r\n")



RESPONSES_RULES = r"""
# response line and headers (sid 9120xx)
alert http any any -> any any (msg:"stat_code 404"; http.stat_code; content:"404"; bsize:3; sid:912001;)
alert http any any -> any any (msg:"stat_msg"; http.stat_msg; content:"Not Found"; bsize:9; sid:912002;)
alert http any any -> any any (msg:"response_line"; http.response_line; content:"HTTP/1.1 404 Not Found"; bsize:22; sid:912003;)
alert http any any -> any any (msg:"server"; http.server; content:"TestServer/2"; bsize:12; sid:912004;)
alert http any any -> any any (msg:"location"; http.location; content:"http://new.example/"; bsize:19; sid:912005;)
alert http any any -> any any (msg:"response content_type"; flow:to_client; http.content_type; content:"text/html"; startswith; sid:912006;)
alert http any any -> any any (msg:"response header"; flow:to_client; http.header; content:"Server: TestServer/2|0d 0a|"; sid:912007;)
alert http any any -> any any (msg:"set-cookie not in header"; flow:to_client; http.header; content:"Set-Cookie"; sid:912008;)
alert http any any -> any any (msg:"response header_names"; flow:to_client; http.header_names; content:"|0d 0a|Server|0d 0a|"; sid:912009;)
alert http any any -> any any (msg:"response cookie is set-cookie"; flow:to_client; http.cookie; content:"s=1"; bsize:3; sid:912011;)
alert http any any -> any any (msg:"stat_code with a request buffer both sides have"; flow:to_client; http.protocol; content:"HTTP/1.1"; http.stat_code; content:"404"; sid:912010;)
# bodies (sid 9121xx)
alert http any any -> any any (msg:"file.data plain"; flow:to_client; file.data; content:"PLAIN-MARKER"; sid:912101;)
alert http any any -> any any (msg:"file_data legacy"; flow:to_client; file_data; content:"PLAIN-MARKER"; sid:912102;)
alert http any any -> any any (msg:"response_body"; http.response_body; content:"PLAIN-MARKER"; sid:912103;)
alert http any any -> any any (msg:"chunked marker across chunks"; flow:to_client; file.data; content:"CHUNKED-MARKER"; sid:912104;)
alert http any any -> any any (msg:"gzip marker"; flow:to_client; file.data; content:"GZIP-MARKER"; sid:912105;)
alert http any any -> any any (msg:"gzip raw not seen"; flow:to_client; file.data; content:"|1f 8b 08|"; startswith; sid:912106;)
alert http any any -> any any (msg:"request_body"; http.request_body; content:"user=admin"; sid:912107;)
alert http any any -> any any (msg:"request_body chunked"; http.request_body; content:"CHUNKED-POST"; sid:912108;)
alert http any any -> any any (msg:"file.data to server"; flow:to_server; file.data; content:"user=admin"; sid:912109;)
alert http any any -> any any (msg:"body startswith"; flow:to_client; file.data; content:"<html>"; startswith; sid:912110;)
alert http any any -> any any (msg:"second pipelined body"; flow:to_client; file.data; content:"SECOND-BODY"; sid:912111;)
alert http any any -> any any (msg:"deflate marker"; flow:to_client; file.data; content:"DEFLATE-MARKER"; sid:912112;)
# IPS: a drop on a body marker that arrives in the response's third segment (sid 9122xx)
drop http any any -> any any (msg:"drop body marker"; flow:to_client; file.data; content:"EVIL-PAYLOAD"; sid:912201;)
# pcre's HTTP flags on responses and bodies (sid 9123xx)
alert http any any -> any any (msg:"pcre S"; pcre:"/^404$/S"; sid:912301;)
alert http any any -> any any (msg:"pcre Y"; pcre:"/^Not Found$/Y"; sid:912302;)
alert http any any -> any any (msg:"pcre Q"; flow:to_client; pcre:"/PLAIN-MARKER/Q"; sid:912303;)
alert http any any -> any any (msg:"pcre P"; pcre:"/user=admin&pass/P"; sid:912304;)
"""


def _resp(t, head: bytes, body: bytes, pieces=None) -> None:
    data = head + body
    if pieces is None:
        t.s(data=data)
        return
    at = 0
    for n in pieces:
        t.s(data=data[at:at + n])
        at += n
    if at < len(data):
        t.s(data=data[at:])


def s_responses(cap) -> None:
    import gzip
    import zlib

    from make_differential import C1, S1, Tcp

    # 1: a 404 with the usual headers and a small HTML body
    t = Tcp(cap, C1, S1, 42001, 80).handshake()
    t.c(data=b"GET /missing HTTP/1.1\r\nHost: a.example\r\n\r\n")
    body = b"<html>not here</html>"
    _resp(t, b"HTTP/1.1 404 Not Found\r\nServer: TestServer/2\r\nContent-Type: text/html; charset=utf-8\r\n"
             b"Set-Cookie: s=1\r\nContent-Length: %d\r\n\r\n" % len(body), body)
    t.close()
    # 2: a redirect, then a plain body with a marker
    t = Tcp(cap, C1, S1, 42002, 80).handshake()
    t.c(data=b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n")
    t.s(data=b"HTTP/1.1 302 Found\r\nLocation: http://new.example/\r\nContent-Length: 0\r\n\r\n")
    t.c(data=b"GET /new HTTP/1.1\r\nHost: a.example\r\n\r\n")
    body = b"<html>PLAIN-MARKER</html>"
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), body)
    t.close()
    # 3: chunked, the marker split across two chunks and three segments
    t = Tcp(cap, C1, S1, 42003, 80).handshake()
    t.c(data=b"GET /c HTTP/1.1\r\nHost: a.example\r\n\r\n")
    chunks = b"7\r\nCHUNKED\r\n7\r\n-MARKER\r\n0\r\n\r\n"
    _resp(t, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunks, pieces=[50, 12])
    t.close()
    # 4: gzip, and deflate
    t = Tcp(cap, C1, S1, 42004, 80).handshake()
    t.c(data=b"GET /g HTTP/1.1\r\nHost: a.example\r\n\r\n")
    gz = gzip.compress(b"<html>GZIP-MARKER</html>", mtime=0)
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz), gz)
    t.c(data=b"GET /d HTTP/1.1\r\nHost: a.example\r\n\r\n")
    df = zlib.compress(b"<html>DEFLATE-MARKER</html>")
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(df), df)
    t.close()
    # 5: POST bodies, Content-Length and chunked
    t = Tcp(cap, C1, S1, 42005, 80).handshake()
    form = b"user=admin&pass=x"
    t.c(data=b"POST /login HTTP/1.1\r\nHost: a.example\r\nContent-Length: %d\r\n\r\n" % len(form) + form)
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok")
    t.c(data=b"POST /up HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nCHUNKE\r\n")
    t.c(data=b"6\r\nD-POST\r\n0\r\n\r\n")
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", b"ok")
    t.close()
    # 6: two pipelined requests, their responses in one segment
    t = Tcp(cap, C1, S1, 42006, 80).handshake()
    t.c(data=b"GET /1 HTTP/1.1\r\nHost: a.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nSECOND-BODY")
    t.close()
    # 7: IPS: the marker arrives in the third segment of a longer body
    t = Tcp(cap, C1, S1, 42007, 80).handshake()
    t.c(data=b"GET /big HTTP/1.1\r\nHost: a.example\r\n\r\n")
    body = b"A" * 600 + b"EVIL-PAYLOAD" + b"B" * 300
    _resp(t, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), body, pieces=[300, 300, 300])
    t.c(flags="A")
    t.close()

TX_DONE_RULES = r"""
alert http any any -> any any (msg:"uri"; flow:to_server; http.uri; content:"/x"; sid:920001;)
alert http any any -> any any (msg:"uri and a payload byte"; flow:to_server; http.uri; content:"/y"; content:"Q"; sid:920002;)
alert http any any -> any any (msg:"uri and no zzz in the packet"; flow:to_server; http.uri; content:"/x"; pkt_data; content:!"zzz"; sid:920003;)
alert http any any -> any any (msg:"200 and no HTTP in the packet"; flow:to_client; http.stat_code; content:"200"; pkt_data; content:!"HTTP"; sid:920004;)
alert http any any -> any any (msg:"body and no abc in the packet"; flow:to_client; file.data; content:"def"; pkt_data; content:!"abc"; sid:920005;)
"""


def s_tx_done(cap) -> None:
    """Rules with a packet keyword beside their transaction buffers, that the packet
    inspecting the transaction fails: no later packet of the direction (an ACK, a FIN, the
    next request) and no flow end makes them alert once the direction's side of the
    transaction is complete and was inspected."""
    from make_differential import C1, S1, Tcp

    # 1: request, response, the client's ACK, close
    t = Tcp(cap, C1, S1, 43001, 80).handshake()
    t.c(data=b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: zzz\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    t.c("A")
    t.close()
    # 2: a body over three segments with ACKs between, then a second request on the session
    t = Tcp(cap, C1, S1, 43002, 80).handshake()
    t.c(data=b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: zzz\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    t.c("A")
    t.s(data=b"def")
    t.c("A")
    t.s(data=b"ghi")
    t.c("A")
    t.c(data=b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    t.close()
    # 3: request and response, never closed (the flow ends with the capture)
    t = Tcp(cap, C1, S1, 43003, 80).handshake()
    t.c(data=b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: zzz\r\n\r\n")
    t.s(data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    t.c("A")


FAMILIES = [
    AppFamily("app_http_requests", "HTTP request buffers: method, uri (normalized: dot segments, "
              "repeated slashes, percent-decoding; absolute URIs), uri.raw, protocol, request_line, host "
              "(lower case, no port) and host.raw, user_agent, cookie, header (cookie left out, endings), "
              "header_names, start, header.raw, accept, referer, repeated and folded headers, legacy "
              "modifiers, urilen, a request split over segments, pipelining, drops",
              REQUESTS_RULES, s_requests, ("ips", "ids")),
    AppFamily("app_http_uri", "http.uri normalization, one exact rule per request target: percent-decoding "
              "(not %2F in the path, %2F in the query), dot segments as libhtp removes them, backslashes, "
              "repeated slashes, fragments and absolute URIs", uri_rules(), s_uri),
    AppFamily("app_http_responses", "HTTP responses and bodies: stat_code, stat_msg, response_line, server, "
              "location, response content_type / header (Set-Cookie left out) / header_names, request buffers "
              "in a response rule, file.data / file_data / response_body on Content-Length, chunked (a marker "
              "across chunks and segments), gzip and deflate bodies, request bodies (Content-Length, chunked, "
              "file.data to server), pipelined bodies, a drop on a marker in a body's third segment",
              RESPONSES_RULES, s_responses, ("ips", "ids")),
    AppFamily("app_http_tx_done", "a transaction inspected complete per direction: rules with dsize or a payload "
              "byte beside their buffers, failed on the packet inspecting it, do not alert on a later ACK, FIN or "
              "request, or at the flow's end", TX_DONE_RULES, s_tx_done),
]
